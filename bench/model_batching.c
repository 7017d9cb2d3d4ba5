/* model_batching.c: swarm-bench's batching case (model_bench.h): BENCH_MODEL_CLIENTS client
 * threads of one row a request, closed loop, against a swarmd of one device, for max_batch 1
 * and then a few (max_batch, queue delay) deploys, with the worker's busy time per request and
 * the in-process graph's time per row at a few batch sizes. */
#include "bench/model_harness.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MB_LOAD_SECONDS 1.0 /* per round and mode (half with quick, one round) */
#define MB_LOAD_ROUNDS 3
#define MB_SAMPLES_PER_CLIENT (1u << 16) /* latencies kept per client and run */
#define MB_SAMPLES_PER_MODE (1u << 20)   /* and per mode, over its rounds */

/* The deploys of the batching case, after max_batch 1. The first is the default, the one
 * reported against the target; the others show why it is the default.
 *
 * max_batch 16 is the number of clients: each has one request in flight, so no batch can
 * hold more, and a batch that holds all of them runs at once instead of waiting out its
 * delay. The delay bounds how long the first request of a batch waits for the others to come
 * back from their clients: after a batch completes, 16 clients sharing one core must each be
 * woken, check their output, refill and resubmit, about 5 us each here, so 100 us lets a
 * batch fill; and 100 us is under half of what the production-shaped ranker's batch of 16
 * computes (about 215 us here), so a batch that does not fill waits less than it saves.
 *   16/0    runs whatever is ready: batches fragment into the first few clients back;
 *   16/400  waits longer for a straggler (a client the scheduler put off), for nothing more;
 *   8/100   half the clients a batch, so that one batch computes while the other's clients
 *           turn around (OpenBLAS's 8-row GEMM is slower per row than its 16-row one here);
 *   256/50  max_batch above the number of clients: every batch waits out its whole delay. */
static const struct {
	uint32_t max_batch, delay_us;
} mb_modes[] = { { 16, 100 }, { 16, 0 }, { 16, 400 }, { 8, 100 }, { 256, 50 } };
_Static_assert(sizeof mb_modes / sizeof mb_modes[0] < BENCH_MODEL_MAX_MODES,
	       "more deploys than bench_model_batching holds");

struct mb_load {
	const char *sock, *model;
	const struct mb_inputs *in;
	int *arrived;               /* clients with a session (or a failure), atomic */
	int *go, *measuring, *stop; /* written by the main thread, read by the clients */
};

struct mb_client {
	pthread_t t;
	const struct mb_load *load;
	int index;
	uint64_t *ns; /* MB_SAMPLES_PER_CLIENT */
	size_t n_ns;
	uint64_t requests; /* completed while measuring */
	int error;
};

static void *mb_client_run(void *arg)
{
	struct mb_client *cl = arg;
	const struct mb_load *ld = cl->load;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc = swarm_connect(ld->sock, &c);
	float out[MB_RANKER_OUT];
	char who[64];

	snprintf(who, sizeof who, "client %d on %s", cl->index, ld->model);
	if (rc)
		fprintf(stderr, "swarm-bench: client %d: connect: %s\n", cl->index,
			swarm_strerror(rc));
	else
		/* 16 clients share one core: each sleeps at once when it waits, since while it
		 * spun the others (whose requests the batch waits for) could not run. */
		rc = mb_session_open(c, ld->model, ld->in, 2, 0, &s);
	__atomic_add_fetch(ld->arrived, 1, __ATOMIC_RELEASE);
	/* Pairs with the main thread's release store of go, once every client arrived. */
	while (!__atomic_load_n(ld->go, __ATOMIC_ACQUIRE))
		usleep(1000);
	for (size_t i = (size_t)cl->index * 97; rc == 0; i++) {
		int set = (int)(i % (size_t)ld->in->n_sets);
		uint64_t t0, t1;

		/* Pairs with the main thread's release stores of stop and measuring. */
		if (__atomic_load_n(ld->stop, __ATOMIC_ACQUIRE))
			break;
		t0 = swarm_now_ns();
		rc = mb_swarm_call(s, ld->in, set, out);
		t1 = swarm_now_ns();
		if (rc) {
			fprintf(stderr, "swarm-bench: %s: request %zu: %s\n", who, i,
				swarm_strerror(rc));
			break;
		}
		if (!mb_check(who, out, ld->in, set)) {
			rc = -EBADMSG;
			break;
		}
		if (__atomic_load_n(ld->measuring, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(ld->stop, __ATOMIC_ACQUIRE)) {
			cl->requests++;
			if (cl->n_ns < MB_SAMPLES_PER_CLIENT)
				cl->ns[cl->n_ns++] = t1 - t0;
		}
	}
	cl->error = rc;
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	return NULL;
}

static void mb_sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* CPU time of this process (every thread), in ns. */
static uint64_t mb_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What the runs of one mode add up to. */
struct mb_acc {
	uint64_t requests;
	uint64_t ns;                      /* measured time */
	uint64_t cpu_ns;                  /* this process's cpu time (the clients') in it */
	struct bench_device_stats worker; /* the worker's counters in it */
	uint64_t *lat;                    /* latencies, MB_SAMPLES_PER_MODE */
	size_t n_lat;
	bool worker_ok; /* every run read the worker's counters */
};

/* BENCH_MODEL_CLIENTS clients on model for warm + seconds; adds the measured part to acc.
 * scratch holds BENCH_MODEL_CLIENTS * MB_SAMPLES_PER_CLIENT. */
static int mb_load_run(struct mb_env *e, const char *model, const struct mb_inputs *in, double warm,
		       double seconds, uint64_t *scratch, struct mb_acc *acc)
{
	if (in->out_n > MB_RANKER_OUT)
		return -EINVAL; /* the clients' output rows are on their stacks */
	struct mb_client cl[BENCH_MODEL_CLIENTS] = { 0 };
	int arrived = 0, go = 0, measuring = 0, stop = 0, started = 0, rc = 0;
	struct mb_load ld = { e->sock, model, in, &arrived, &go, &measuring, &stop };
	struct bench_device_stats w0 = { 0 }, w1 = { 0 };
	uint64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;
	bool w_ok = false;

	for (int i = 0; i < BENCH_MODEL_CLIENTS; i++) {
		cl[i] = (struct mb_client){ .load = &ld,
					    .index = i,
					    .ns = scratch + (size_t)i * MB_SAMPLES_PER_CLIENT };
		rc = -pthread_create(&cl[i].t, NULL, mb_client_run, &cl[i]);
		if (rc) {
			fprintf(stderr, "swarm-bench: cannot start client thread %d: %s\n", i,
				strerror(-rc));
			break;
		}
		started++;
	}
	if (rc)
		__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	/* Pairs with the clients' release increments. */
	while (rc == 0 && __atomic_load_n(&arrived, __ATOMIC_ACQUIRE) < started)
		usleep(1000);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	if (rc == 0) {
		mb_sleep_s(warm);
		/* Pairs with the clients' acquire loads. */
		__atomic_store_n(&measuring, 1, __ATOMIC_RELEASE);
		w_ok = bench_swarmd_device_stats(e->sock, 0, &w0) == 0;
		t0 = swarm_now_ns();
		c0 = mb_cpu_ns();
		mb_sleep_s(seconds);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	t1 = swarm_now_ns();
	c1 = mb_cpu_ns();
	if (rc == 0)
		w_ok = w_ok && bench_swarmd_device_stats(e->sock, 0, &w1) == 0;
	for (int i = 0; i < started; i++) {
		size_t room = MB_SAMPLES_PER_MODE - acc->n_lat;
		size_t n = cl[i].n_ns < room ? cl[i].n_ns : room;

		pthread_join(cl[i].t, NULL);
		if (cl[i].error && !rc)
			rc = cl[i].error;
		acc->requests += cl[i].requests;
		memcpy(acc->lat + acc->n_lat, cl[i].ns, n * sizeof *acc->lat);
		acc->n_lat += n;
	}
	acc->ns += t1 - t0;
	acc->cpu_ns += c1 - c0;
	acc->worker_ok = acc->worker_ok && w_ok;
	acc->worker.requests += w1.requests - w0.requests;
	acc->worker.busy_ns += w1.busy_ns - w0.busy_ns;
	acc->worker.batches += w1.batches - w0.batches;
	return rc;
}

static void mb_acc_result(struct mb_acc *acc, struct bench_model_load *out)
{
	out->requests = acc->requests;
	out->rps = acc->ns ? (double)acc->requests / ((double)acc->ns / 1e9) : 0;
	out->lat = bench_model_stats_of(acc->lat, acc->n_lat);
	out->client_cpus = acc->ns ? (double)acc->cpu_ns / (double)acc->ns : 0;
	out->worker_busy =
		acc->worker_ok && acc->ns ? (double)acc->worker.busy_ns / (double)acc->ns : NAN;
	out->worker_ns = acc->worker_ok && acc->worker.requests ?
				 (double)acc->worker.busy_ns / (double)acc->worker.requests :
				 NAN;
}

/* The deploys of the batching case into d and the names they are published under: max_batch 1,
 * then mb_modes; said on stderr with the rounds and seconds each takes. */
static void mb_batching_deploys(const struct bench_ranker *r, int rounds, double seconds,
				struct bench_ranker_deploy *d, char (*name)[SWARM_NAME_MAX])
{
	const int n_modes = 1 + (int)(sizeof mb_modes / sizeof mb_modes[0]);

	fprintf(stderr,
		"swarm-bench: the %s ranker (%s), %d clients of one row, %d round%s of %.1f s per "
		"deploy: max_batch 1",
		r->name, r->shape, BENCH_MODEL_CLIENTS, rounds, rounds > 1 ? "s" : "", seconds);
	d[0] = (struct bench_ranker_deploy){ 64, 2, 1, 0 };
	snprintf(name[0], sizeof name[0], "ranker-b1");
	for (int m = 1; m < n_modes; m++) {
		d[m] = (struct bench_ranker_deploy){ 64, 2, mb_modes[m - 1].max_batch,
						     mb_modes[m - 1].delay_us };
		snprintf(name[m], sizeof name[m], "ranker-b%u-q%u", d[m].max_batch, d[m].delay_us);
		fprintf(stderr, ", %u/%u us", d[m].max_batch, d[m].delay_us);
	}
	fprintf(stderr, "\n");
}

/* The in-process graph, planned for 64 rows as the worker's is: its time per row at the
 * batch sizes of out->graph_rows, with in's sets made and checked on the way. */
static int mb_batching_graph(const struct bench_model_opts *o, const struct mb_model *md,
			     struct mb_inputs *in, struct bench_model_batching *out)
{
	static const uint32_t graph_rows[BENCH_MODEL_GRAPH_SIZES] = { 1, 8, BENCH_MODEL_CLIENTS,
								      64 };
	struct mb_local l = { 0 };
	int rc = mb_inputs_alloc(in, md->m, md->n_sets);

	if (rc == 0)
		rc = mb_local_open_cpu(&l, md->weights, md->m);
	if (rc)
		return rc;
	rc = mb_inputs_make(&l, in, md);
	memcpy(out->graph_rows, graph_rows, sizeof graph_rows);
	if (rc == 0)
		rc = mb_local_per_row(&l, in, graph_rows, BENCH_MODEL_GRAPH_SIZES,
				      o->quick ? 0.1 : 0.3, out->graph);
	mb_local_close(&l);
	return rc;
}

/* Starts e's swarmd: one device, so that every session is on one worker whose batches can
 * take them all; on its own core, so that the clients (on this process's cpu) never take time
 * from it, nor its BLAS threads from them. */
static int mb_batching_swarmd(const struct bench_model_opts *o, struct mb_env *e)
{
	char topo[PATH_MAX + 16];
	const char *topology = NULL;
	int rc = mb_topology_one_core(o, e, topo, sizeof topo, &topology);

	if (rc == 0)
		rc = mb_swarmd_start(e, "cpu:1", topology, NULL);
	return rc;
}

/* out's figures from what the runs of each deploy added up to. */
static void mb_batching_results(struct mb_acc *acc, const struct bench_ranker_deploy *d,
				int n_modes, struct bench_model_batching *out)
{
	mb_acc_result(&acc[0], &out->off);
	out->off.max_batch = 1;
	for (int m = 1; m < n_modes; m++) {
		struct bench_model_load *t = &out->on[m - 1];

		mb_acc_result(&acc[m], t);
		t->max_batch = d[m].max_batch;
		t->delay_us = d[m].delay_us;
	}
	out->n_on = n_modes - 1;
}

int bench_model_batching_run(const struct bench_model_opts *o, const struct bench_ranker *r,
			     struct bench_model_batching *out)
{
	const int rounds = o->quick ? 1 : MB_LOAD_ROUNDS;
	const double seconds = o->quick ? MB_LOAD_SECONDS / 2 : MB_LOAD_SECONDS;
	const double warm = seconds / 10;
	const int n_modes = 1 + (int)(sizeof mb_modes / sizeof mb_modes[0]);
	uint64_t *scratch =
		calloc((size_t)BENCH_MODEL_CLIENTS * MB_SAMPLES_PER_CLIENT, sizeof *scratch);
	struct mb_acc acc[BENCH_MODEL_MAX_MODES] = { 0 };
	struct bench_ranker_deploy d[BENCH_MODEL_MAX_MODES];
	char name[BENCH_MODEL_MAX_MODES][SWARM_NAME_MAX];
	struct mb_model md = { 0 };
	char *text = malloc(MB_MANIFEST_MAX);
	struct mb_inputs in = { 0 };
	struct mb_env e;
	int rc = 0, rc2;

	for (int m = 0; m < n_modes; m++) {
		acc[m].worker_ok = true;
		if (!(acc[m].lat = calloc(MB_SAMPLES_PER_MODE, sizeof *acc[m].lat)))
			rc = -ENOMEM;
	}
	if (!scratch || !text || rc) {
		rc = -ENOMEM;
		goto out_free;
	}
	memset(out, 0, sizeof *out);
	out->ranker = r;
	out->seconds = seconds * rounds;
	mb_batching_deploys(r, rounds, seconds, d, name);

	/* One weights file, published with a manifest per deploy. */
	rc = mb_env_init(&e, o);
	if (rc == 0)
		rc = mb_model_ranker(&md, &e, r, &d[0]);
	for (int m = 0; rc == 0 && m < n_modes; m++) {
		rc = bench_ranker_manifest(r, &d[m], text, MB_MANIFEST_MAX);
		if (rc == 0)
			rc = mb_publish(&e, name[m], md.weights, text);
	}
	if (rc == 0)
		rc = mb_batching_graph(o, &md, &in, out);
	if (rc == 0)
		rc = mb_batching_swarmd(o, &e);

	/* Rounds of every mode in turn, so that the machine's noise falls on all of them. */
	for (int round = 0; rc == 0 && round < rounds; round++)
		for (int m = 0; rc == 0 && m < n_modes; m++)
			rc = mb_load_run(&e, name[m], &in, warm, seconds, scratch, &acc[m]);
	if (rc == 0)
		mb_batching_results(acc, d, n_modes, out);
	mb_inputs_free(&in);
	mb_model_free(&md);
	rc2 = mb_env_fini(&e);
	if (!rc)
		rc = rc2;
out_free:
	for (int m = 0; m < n_modes; m++)
		free(acc[m].lat);
	free(scratch);
	free(text);
	return rc;
}
