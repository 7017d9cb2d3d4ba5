/* batcher.c: dynamic batching, with Triton's semantics (docs/control-plane.md, "Dynamic
 * batching"). Requests of every session of a version wait in the version's queue, a FIFO ring
 * with room for every slot of its sessions, until max_batch rows are ready or the oldest has
 * waited delay_ns (0: run what is ready); then they run as one batch.
 *
 * A batch runs one of three ways: a lone live request in place in its slot (no copy); on a
 * staged device (a GPU) straight from the slots, one part each; elsewhere gathered into the
 * version's buffers, run once and scattered back. Requests whose deadline passed complete
 * with -ETIMEDOUT without running; the others share the run's status. The executor is reached
 * only through version_run and the graph's parts call, so tests drive this file with a fake.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/worker/worker.h"

int queue_reserve(struct version *v, uint32_t more)
{
	if (v->max_batch <= 1)
		return 0;
	v->q_need += more;
	if (v->q_need <= v->q_cap)
		return 0;
	uint32_t cap = v->q_need;
	struct queued *q = malloc(cap * sizeof *q);
	if (!q) {
		v->q_need -= more;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < v->q_n; i++)
		q[i] = v->q[(v->q_head + i) % v->q_cap];
	free(v->q);
	v->q = q;
	v->q_head = 0;
	v->q_cap = cap;
	return 0;
}

void queue_purge(struct version *v, struct session *s)
{
	if (v->max_batch <= 1)
		return;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < v->q_n; i++) {
		struct queued e = v->q[(v->q_head + i) % v->q_cap];
		if (e.s == s) {
			v->q_rows -= e.rows;
			continue;
		}
		v->q[(v->q_head + kept++) % v->q_cap] = e;
	}
	v->q_n = kept;
	v->q_need -= s->geo.nslots; /* the ring keeps its size for the next session */
}

void queue_push(struct version *v, const struct queued *e)
{
	v->q[(v->q_head + v->q_n++) % v->q_cap] = *e;
	v->q_rows += e->rows;
}

/* Marks each of the k requests of a batch: -ETIMEDOUT when its deadline passed by now, else
 * 1 (to run). Returns how many are live; *rows gets their rows. */
static uint32_t batch_expire(const struct queued *b, uint32_t k, uint64_t now, int32_t *status,
			     uint32_t *rows)
{
	uint32_t live = 0;
	*rows = 0;
	for (uint32_t i = 0; i < k; i++) {
		struct swarm_slot_header *hdr =
			swarm_seg_slot(b[i].s->base, &b[i].s->geo, b[i].slot);
		status[i] =
			(b[i].flags & SWARM_SQE_DEADLINE) &&
					now > __atomic_load_n(&hdr->deadline_ns, __ATOMIC_RELAXED) ?
				-ETIMEDOUT :
				1; /* 1: to run */
		if (status[i] == 1) {
			live++;
			*rows += b[i].rows;
		}
	}
	return live;
}

/* The slot of a queued request, where its tensors are at its session's offsets. */
static char *slot_base(const struct queued *e)
{
	return (char *)swarm_seg_slot(e->s->base, &e->s->geo, e->slot);
}

/* One live request: it runs in place in its slot, as if it had never been queued. */
static void batch_run_alone(const struct queued *b, uint32_t k, uint64_t now, int32_t *status)
{
	for (uint32_t i = 0; i < k; i++)
		if (status[i] == 1)
			status[i] = run_in_place(b[i].s, b[i].slot, b[i].flags, b[i].rows, now);
}

/* A staged graph: each live request's slot is its part, which the device copies in and out. */
static void batch_run_parts(struct version *v, uint32_t k, int32_t *status)
{
	const struct queued *b = v->batch;
	uint32_t n = 0;
	for (uint32_t i = 0; i < k; i++) {
		if (status[i] != 1)
			continue;
		const struct swarm_seg_geometry *g = &b[i].s->geo;
		char *base = slot_base(&b[i]);
		const void **in = &v->part_in[(size_t)n * v->n_in];
		void **out = &v->part_out[(size_t)n * v->n_out];
		for (uint32_t t = 0; t < v->n_in; t++)
			in[t] = base + g->tensor_offset[t];
		for (uint32_t t = 0; t < v->n_out; t++)
			out[t] = base + g->tensor_offset[v->n_in + t];
		v->parts[n++] = (struct swarm_graph_part){ in, out, b[i].rows };
	}
	int rc = swarm_graph_run_parts(v->graph, v->parts, n);
	for (uint32_t i = 0; i < k; i++)
		if (status[i] == 1)
			status[i] = rc;
}

/* Gathers each live request's rows after the previous one's, input by input, runs rows rows
 * once, and scatters the outputs back; a failed run writes no output and fails every live
 * request of the batch. */
static void batch_run_gathered(struct version *v, uint32_t k, uint32_t rows, int32_t *status)
{
	const struct queued *b = v->batch;
	uint64_t at = 0;
	for (uint32_t i = 0; i < k; i++) {
		if (status[i] != 1)
			continue;
		const struct swarm_seg_geometry *g = &b[i].s->geo;
		char *base = slot_base(&b[i]);
		for (uint32_t t = 0; t < v->n_in; t++)
			memcpy((char *)v->bin[t] + at * v->in_row[t], base + g->tensor_offset[t],
			       b[i].rows * v->in_row[t]);
		at += b[i].rows;
	}
	int rc = version_run(v, (const void *const *)v->bin, v->bout, rows);
	at = 0;
	for (uint32_t i = 0; i < k; i++) {
		if (status[i] != 1)
			continue;
		if (rc == 0) {
			char *base = slot_base(&b[i]);
			for (uint32_t t = 0; t < v->n_out; t++)
				memcpy(base + b[i].s->geo.tensor_offset[v->n_in + t],
				       (char *)v->bout[t] + at * v->out_row[t],
				       b[i].rows * v->out_row[t]);
		}
		at += b[i].rows;
		status[i] = rc;
	}
}

/* Counts, completes and samples the k requests of a batch that began at now, then wakes every
 * client whose request completed, once. */
static void batch_complete(struct worker *w, struct version *v, uint32_t k, const int32_t *status,
			   uint64_t now)
{
	const struct queued *b = v->batch;
	uint32_t round = ++w->batch_round;
	uint64_t t1 = swarm_now_ns();
	if (v->ms)
		swarm_p2_add(&v->ms->compute_ns, t1 - now);
	for (uint32_t i = 0; i < k; i++) {
		struct session *s = b[i].s;
		swarm_stat_add(&w->stats->requests, 1);
		swarm_stat_add(&s->stats->requests, 1);
		if (status[i]) {
			swarm_stat_add(&w->stats->errors, 1);
			swarm_stat_add(&s->stats->errors, 1);
		}
		if (v->ms) {
			swarm_model_stats_request(v->ms, b[i].rows, status[i]);
			/* the client's stamp to the batch's start; one from the future is dropped
			 */
			if (b[i].t_submit_ns && b[i].t_submit_ns <= now)
				swarm_p2_add(&v->ms->queue_ns, now - b[i].t_submit_ns);
		}
		/* A corrupt completion queue is found again, and the session detached, by the
		 * next serve_session; here the request simply is not delivered. */
		session_complete(s, b[i].slot, status[i]);
		record_latency(w, s, b[i].t_submit_ns, t1);
	}
	for (uint32_t i = 0; i < k; i++)
		if (b[i].s->woken != round) {
			b[i].s->woken = round;
			wake_client(b[i].s);
		}
	swarm_stat_add(&w->stats->busy_ns, t1 - now);
}

/* Runs the k requests in v->batch as one batch, the way that fits (see the top). */
static void exec_batch(struct worker *w, struct version *v, uint32_t k, uint64_t now)
{
	int32_t status[BATCH_MAX_REQUESTS]; /* k <= BATCH_MAX_REQUESTS: run_version_batches */
	uint32_t rows;
	uint32_t live = batch_expire(v->batch, k, now, status, &rows);
	if (live == 1) {
		batch_run_alone(v->batch, k, now, status);
	} else if (live > 1) {
		if (v->parts)
			batch_run_parts(v, k, status);
		else
			batch_run_gathered(v, k, rows, status);
		swarm_stat_add(&w->stats->batches, 1);
		if (v->ms)
			swarm_stat_add(&v->ms->batches, 1);
	}
	if (live && v->ms)
		swarm_p2_add(&v->ms->batch_rows, rows);
	batch_complete(w, v, k, status, now);
}

int run_version_batches(struct worker *w, struct version *v, uint64_t now, int force,
			int64_t *wait_ns)
{
	int ran = 0;
	while (v->q_n) {
		uint64_t oldest = v->q[v->q_head].arrived_ns;
		if (!force && v->q_rows < v->max_batch && v->delay_ns &&
		    now - oldest < v->delay_ns) {
			int64_t left = (int64_t)(v->delay_ns - (now - oldest));
			if (*wait_ns < 0 || left < *wait_ns)
				*wait_ns = left;
			break;
		}
		uint32_t k = 0, rows = 0;
		while (v->q_n && k < v->max_batch && k < BATCH_MAX_REQUESTS) {
			struct queued *e = &v->q[v->q_head];
			if (k && rows + e->rows > v->max_batch)
				break;
			v->batch[k++] = *e;
			rows += e->rows;
			v->q_rows -= e->rows;
			v->q_head = (v->q_head + 1) % v->q_cap;
			v->q_n--;
		}
		exec_batch(w, v, k, now);
		ran += (int)k;
		now = swarm_now_ns();
	}
	return ran;
}

int run_batches(struct worker *w, int64_t *wait_ns)
{
	int ran = 0;
	uint64_t now = 0;
	for (struct version *v = w->versions; v; v = v->next) {
		if (!v->q_n)
			continue;
		if (!now)
			now = swarm_now_ns();
		ran += run_version_batches(w, v, now, 0, wait_ns);
	}
	return ran;
}
