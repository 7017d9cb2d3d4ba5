/* serve.c: the sessions of a worker and their requests. A session is attached with the
 * segment, eventfds and geometry swarmd sends; each pass takes what its client submitted,
 * runs it in place in its slot (or on the device, for tensors in GPU memory; or queues it for
 * a batch), and completes it, never waiting for a client: completions that find no room wait
 * privately until it appears.
 *
 * Nothing in a segment is trusted: the geometry is swarmd's copy, every submission entry is
 * read once and checked, and a session whose indices make no sense is detached with a reason
 * (a client can only break its own session).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "runtime/log.h"
#include "runtime/worker/worker.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/ipc_mem.h"
#endif

#define SAMPLES_PER_PASS 64 /* latency samples kept per session per pass */

void wake_client(struct session *s)
{
	/* The handshake's producer side: our CQ release store (or state store) happened
	 * before; the fence orders it before the load of the client's flag. */
	swarm_fence();
	uint32_t how = __atomic_load_n(&s->h->client_sleep.v, __ATOMIC_RELAXED);
	if (how == SWARM_SEG_SLEEP_FUTEX) {
		/* Release pairs with the client's acquire load of the bell before it sleeps. */
		__atomic_add_fetch(&s->h->cq_doorbell.v, 1, __ATOMIC_RELEASE);
		swarm_futex_wake(&s->h->cq_doorbell.v);
	} else if (how == SWARM_SEG_SLEEP_EVENTFD) {
		swarm_eventfd_signal(s->cq_efd);
	}
}

void session_free(struct worker *w, struct session *s)
{
	if (s->version)
		queue_purge(s->version, s);
	version_count_session(s->version, -1);
	version_put(w, s->version);
	swarm_loop_del(w->loop, s->sq_efd, s->index);
	if (s->stats)
		memset(s->stats, 0, sizeof *s->stats);
	if (s->registered)
		w->dev->i->unregister_host(w->dev, s->base);
#ifdef SWARM_HAVE_CUDA
	for (uint32_t i = 0; i < IPC_CACHE; i++)
		if (s->ipc[i].ptr)
			(void)swarm_cuda_ipc_close(w->gpu, s->ipc[i].ptr);
#endif
	munmap(s->base, s->geo.segment_bytes);
	close(s->memfd);
	close(s->sq_efd);
	close(s->cq_efd);
	if (s->client_pidfd >= 0)
		close(s->client_pidfd);
	free(s->slot_state);
	free(s->pending);
	free(s->pending_status);
	w->sessions[s->index] = NULL;
	struct session *last = w->active[--w->n_sessions];
	w->active[s->pos] = last;
	last->pos = s->pos;
	swarm_stat_set32(&w->stats->sessions, w->n_sessions);
	free(s);
	if (w->ctl < 0 && w->n_sessions == 0)
		w->stop = 1; /* orphaned by swarmd and nothing left to serve */
}

/* Drops a session that broke the protocol: its client learns it from the state word and
 * swarmd from a DETACHED message; every other session goes on. */
static void session_violation(struct worker *w, struct session *s, const char *why)
{
	swarm_log(SWARM_LOG_WARN, "event=session_detached session=%llu reason=\"%s\"",
		  (unsigned long long)s->id, why);
	/* Release pairs with the client's acquire load of state in session_lost. */
	__atomic_store_n(&s->h->state.v, SWARM_SEG_STATE_DETACHED, __ATOMIC_RELEASE);
	wake_client(s);
	send_detached(w, s->id, -EBADMSG, why);
	swarm_stat_add(&w->stats->errors, 1);
	session_free(w, s);
}

int session_complete(struct session *s, uint32_t slot, int32_t status)
{
	if (s->n_pending == 0) {
		int err = swarm_ring_push(&s->cq, swarm_cqe_pack(slot, status));
		if (err != -EAGAIN) {
			if (!err)
				s->slot_state[slot] = SLOT_IDLE;
			return err;
		}
	}
	uint32_t at = (s->pending_head + s->n_pending) % s->geo.nslots;
	s->pending[at] = slot;
	s->pending_status[at] = status;
	s->n_pending++;
	s->slot_state[slot] = SLOT_PENDING_CQ;
	return 0;
}

/* Moves queued completions into the CQ as room appears. Returns how many moved, or
 * -EBADMSG. */
static int flush_pending(struct session *s)
{
	int moved = 0;
	while (s->n_pending) {
		uint32_t slot = s->pending[s->pending_head];
		int err = swarm_ring_push(&s->cq,
					  swarm_cqe_pack(slot, s->pending_status[s->pending_head]));
		if (err == -EAGAIN)
			break;
		if (err)
			return err;
		s->slot_state[slot] = SLOT_IDLE;
		s->pending_head = (s->pending_head + 1) % s->geo.nslots;
		s->n_pending--;
		moved++;
	}
	return moved;
}

/* Runs one request: its slot, flags and rows come from the submission entry (already
 * range-checked); a header field is read once, and only when the flags say it is set. now
 * is when the pass took the request. Returns its status. */
int32_t run_in_place(struct session *s, uint32_t slot, uint32_t flags, uint32_t rows, uint64_t now)
{
	struct swarm_slot_header *hdr = swarm_seg_slot(s->base, &s->geo, slot);
	int32_t status = 0;
	if (rows == 0 || rows > s->geo.max_rows) {
		status = -EINVAL;
	} else if ((flags & SWARM_SQE_DEADLINE) &&
		   now > __atomic_load_n(&hdr->deadline_ns, __ATOMIC_RELAXED)) {
		status = -ETIMEDOUT;
	} else {
		const void *in[SWARM_MAX_TENSORS];
		void *out[SWARM_MAX_TENSORS];
		char *base = (char *)hdr;
		for (uint32_t i = 0; i < s->geo.n_inputs; i++)
			in[i] = base + s->geo.tensor_offset[i];
		for (uint32_t i = 0; i < s->geo.n_outputs; i++)
			out[i] = base + s->geo.tensor_offset[s->geo.n_inputs + i];
		status = version_run(s->version, in, out, rows);
	}
	return status;
}

#ifdef SWARM_HAVE_CUDA
/* The device pointer of tensor t's bytes for a request of rows rows whose descriptor is d:
 * the allocation opened once per session (the cache), the offset and length checked against
 * its size. Returns 0, -EINVAL (a handle the driver refuses, a range outside the allocation)
 * or the open's error. */
static int ipc_tensor(struct worker *w, struct session *s, const struct swarm_slot_device_desc *d,
		      uint64_t bytes, void **out)
{
	struct ipc_entry *e = NULL, *victim = &s->ipc[0];
	for (uint32_t i = 0; i < IPC_CACHE && !e; i++) {
		struct ipc_entry *c = &s->ipc[i];
		if (c->ptr && memcmp(c->handle, d->handle, sizeof c->handle) == 0)
			e = c;
		else if (!c->ptr || (victim->ptr && c->used < victim->used))
			victim = c;
	}
	if (!e) {
		void *p;
		size_t n;
		int err = swarm_cuda_ipc_open(w->gpu, d->handle, &p, &n);
		if (err)
			return err;
		/* Closing the oldest entry first: the last request that used it has completed
		 * (requests run one at a time here, synchronised). */
		if (victim->ptr)
			(void)swarm_cuda_ipc_close(w->gpu, victim->ptr);
		e = victim;
		memcpy(e->handle, d->handle, sizeof e->handle);
		e->ptr = p;
		e->bytes = n;
	}
	e->used = ++s->ipc_uses;
	if (d->offset > e->bytes || bytes > e->bytes - d->offset)
		return -EINVAL;
	*out = (char *)e->ptr + d->offset;
	return 0;
}
#endif

/* Runs one request with SWARM_SQE_DEVICE: its header's masks are read once, and each tensor
 * they name is the client's GPU memory, described at the start of its slot area. Only a
 * node-list graph on a CUDA device takes it, alone (never batched); anywhere else it
 * completes with -ENOTSUP. Returns its status. */
static int32_t run_device(struct worker *w, struct session *s, uint32_t slot, uint32_t flags,
			  uint32_t rows, uint64_t now)
{
	struct swarm_slot_header *hdr = swarm_seg_slot(s->base, &s->geo, slot);
	if (rows == 0 || rows > s->geo.max_rows)
		return -EINVAL;
	if ((flags & SWARM_SQE_DEADLINE) &&
	    now > __atomic_load_n(&hdr->deadline_ns, __ATOMIC_RELAXED))
		return -ETIMEDOUT;
	uint32_t din = __atomic_load_n(&hdr->device_inputs, __ATOMIC_RELAXED);
	uint32_t dout = __atomic_load_n(&hdr->device_outputs, __ATOMIC_RELAXED);
	if ((din >> s->geo.n_inputs) || (dout >> s->geo.n_outputs))
		return -EINVAL;
	if (!(din | dout))
		return run_in_place(s, slot, flags, rows, now);
	if (w->dev->i->host_memory || !w->dev->i->copy_d2d || !s->version->graph)
		return -ENOTSUP; /* GPU memory asked of a device that has none */
#ifdef SWARM_HAVE_CUDA
	const void *in[SWARM_MAX_TENSORS];
	void *out[SWARM_MAX_TENSORS];
	char *base = (char *)hdr;
	for (uint32_t t = 0; t < s->geo.n_inputs + s->geo.n_outputs; t++) {
		int is_in = t < s->geo.n_inputs;
		uint32_t k = is_in ? t : t - s->geo.n_inputs;
		void *p = base + s->geo.tensor_offset[t];
		if (((is_in ? din : dout) >> k) & 1) {
			/* The client's set_*_device checked the area holds a descriptor; the
			 * worker checks again, since the geometry is swarmd's, not the client's. */
			if (swarm_seg_tensor_area(&s->geo, t) <
			    sizeof(struct swarm_slot_device_desc))
				return -EINVAL;
			struct swarm_slot_device_desc d; /* read once */
			memcpy(&d, p, sizeof d);
			int err = ipc_tensor(w, s, &d, (uint64_t)rows * s->geo.tensor_row_bytes[t],
					     &p);
			if (err)
				return err;
		}
		if (is_in)
			in[k] = p;
		else
			out[k] = p;
	}
	return swarm_graph_run_dev(s->version->graph, rows, in, out, din, dout);
#else
	return -ENOTSUP;
#endif
}

/* run_in_place (run_device for a request with tensors in GPU memory), counted in the stats
 * page. */
static int32_t run_request(struct worker *w, struct session *s, uint32_t slot, uint32_t flags,
			   uint32_t rows, uint64_t now)
{
	int32_t status = flags & SWARM_SQE_DEVICE ? run_device(w, s, slot, flags, rows, now) :
						    run_in_place(s, slot, flags, rows, now);
	swarm_stat_add(&w->stats->requests, 1);
	swarm_stat_add(&s->stats->requests, 1);
	if (status) {
		swarm_stat_add(&w->stats->errors, 1);
		swarm_stat_add(&s->stats->errors, 1);
	}
	if (s->version->ms)
		swarm_model_stats_request(s->version->ms, rows, status);
	return status;
}

void record_latency(struct worker *w, struct session *s, uint64_t stamp, uint64_t t1)
{
	/* The client's clock is the same CLOCK_MONOTONIC; a hostile value only skews its own
	 * figures, and one out of range is dropped. */
	if (stamp && stamp <= t1 && t1 - stamp < 60000000000ull) {
		swarm_hist_add(&s->stats->latency, t1 - stamp);
		swarm_hist_add(&w->stats->latency, t1 - stamp);
		if (s->version && s->version->ms)
			swarm_p2_add(&s->version->ms->latency_ns, t1 - stamp);
	}
}

/* Takes the entry at the head of s's submission queue, then runs and completes it, or queues
 * it for its batch; t0 is the pass's clock. Returns NULL, or why the session broke the
 * protocol (a constant, or written in buf). *stamp gets the client's submit stamp of a request
 * completed here (0: none, or queued); *ran counts the requests run here (not queued). */
static const char *serve_one(struct worker *w, struct session *s, uint64_t t0, uint64_t *stamp,
			     uint32_t *ran, char *buf, size_t buf_len)
{
	uint64_t e = swarm_ring_peek(&s->sq, 0); /* read once */
	uint32_t slot = swarm_sqe_slot(e);
	*stamp = 0;
	if (slot >= s->geo.nslots) {
		snprintf(buf, buf_len, "slot id %u out of range (%u slots)", slot, s->geo.nslots);
		return buf;
	}
	if (s->slot_state[slot] != SLOT_IDLE) {
		snprintf(buf, buf_len, "slot %u submitted while still the worker's", slot);
		return buf;
	}
	s->slot_state[slot] = SLOT_RUNNING;
	/* Taken: the head moves past it before it runs, so that after a crash the recovery
	 * point tells taken requests (before it: completed, or run again by the client unless
	 * they opted out) from those never taken (after it: the next worker's). Advanced once
	 * per pass, a crash mid-pass had the next worker run the whole pass again, the
	 * completed and the opted-out ones too. */
	swarm_ring_advance(&s->sq, 1);
	uint32_t flags = swarm_sqe_flags(e), rows = swarm_sqe_rows(e);
	uint64_t submitted = 0;
	if (flags & SWARM_SQE_STAMPED)
		submitted = __atomic_load_n(&swarm_seg_slot(s->base, &s->geo, slot)->t_submit_ns,
					    __ATOMIC_RELAXED);
	struct version *v = s->version;
	/* A request with tensors in GPU memory runs alone, never gathered. */
	if (v->max_batch > 1 && rows >= 1 && rows <= s->geo.max_rows &&
	    !(flags & SWARM_SQE_DEVICE)) {
		/* Waits for its batch; completed by run_batches. */
		queue_push(v, &(struct queued){ s, slot, rows, flags, t0, submitted });
		return NULL;
	}
	/* Its wait: the client's stamp to this pass's start (a hostile stamp skews only its
	 * own model's figures, and one from the future is dropped). */
	if (submitted && submitted <= t0 && v->ms)
		swarm_p2_add(&v->ms->queue_ns, t0 - submitted);
	int32_t status = run_request(w, s, slot, flags, rows, t0);
	*stamp = submitted;
	(*ran)++;
	if (session_complete(s, slot, status))
		return "completion queue indices are corrupt";
	return NULL;
}

/* Takes, runs and completes everything ready in one session. Returns the requests served,
 * or -1 when the session was detached (s is freed then). */
static int serve_session(struct worker *w, struct session *s)
{
	int moved = 0;
	const char *why = NULL;
	char buf[128];
	if (s->n_pending) {
		moved = flush_pending(s);
		if (moved < 0) {
			why = "completion queue indices are corrupt";
			goto violation;
		}
	}
	int64_t n = swarm_ring_available(&s->sq);
	if (n < 0) {
		snprintf(buf, sizeof buf, "submission queue indices are corrupt (tail %u, head %u)",
			 __atomic_load_n(&s->h->sq_tail.v, __ATOMIC_RELAXED), s->sq.head_local);
		why = buf;
		goto violation;
	}
	if (n == 0) {
		if (moved)
			wake_client(s);
		return moved;
	}
	swarm_stat_set32(&s->stats->in_flight, (uint32_t)n);
	/* One clock read before the batch (deadlines) and one after the client can see its
	 * completions (stats): none between a request and its completion. */
	uint64_t t0 = swarm_now_ns();
	uint64_t stamps[SAMPLES_PER_PASS];
	uint32_t n_stamps = 0, ran = 0;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		uint64_t stamp;
		if ((why = serve_one(w, s, t0, &stamp, &ran, buf, sizeof buf)))
			goto violation;
		if (stamp && n_stamps < SAMPLES_PER_PASS)
			stamps[n_stamps++] = stamp;
	}
	wake_client(s);
	uint64_t t1 = swarm_now_ns();
	swarm_stat_set32(&s->stats->in_flight, 0);
	swarm_stat_add(&w->stats->busy_ns, t1 - t0);
	/* The pass is one run of the requests it ran in place (those queued for a batch count
	 * when their batch runs). */
	if (ran && s->version->ms)
		swarm_p2_add(&s->version->ms->compute_ns, t1 - t0);
	/* The pass's end stands for each request's completion. */
	for (uint32_t i = 0; i < n_stamps; i++)
		record_latency(w, s, stamps[i], t1);
	return (int)n + moved;

violation:
	session_violation(w, s, why);
	return -1;
}

int serve_all(struct worker *w)
{
	int total = 0;
	/* Backwards: a session detached on the way is replaced by the last, already served. */
	for (uint32_t i = w->n_sessions; i-- > 0;) {
		int n = serve_session(w, w->active[i]);
		if (n > 0)
			total += n;
	}
	swarm_stat_set32(&w->stats->queue_depth, (uint32_t)total);
	return total;
}

/* Maps s's segment (fds: memfd, submit and complete eventfds, which s takes on success),
 * pins it with the device, allocates its slot tables, and watches its eventfd. Returns 0 or
 * -errno with why; on failure the caller undoes what was done (session_undo). */
static int session_map(struct worker *w, struct session *s, const int *fds, char *why,
		       size_t why_len)
{
	int err = swarm_seg_map(fds[0], s->geo.segment_bytes, &s->base);
	if (err) {
		snprintf(why, why_len, "cannot map the segment: %s", strerror(-err));
		s->base = NULL;
		return err;
	}
	s->memfd = fds[0];
	s->sq_efd = fds[1];
	s->cq_efd = fds[2];
	s->h = s->base;
	/* Pinned once here, the slots are DMA'd to and from the GPU in place (zero copy to the
	 * GPU; docs/devices.md, register_host). A refusal costs speed, not correctness: copies
	 * from pageable memory work. */
	if (w->dev->i->register_host && w->dev->i->unregister_host) {
		int rc = w->dev->i->register_host(w->dev, s->base, s->geo.segment_bytes);
		s->registered = rc == 0;
		if (rc)
			swarm_log(SWARM_LOG_WARN,
				  "event=register_host_failed session=%llu bytes=%llu error=\"%s\"",
				  (unsigned long long)s->id,
				  (unsigned long long)s->geo.segment_bytes, strerror(-rc));
	}
	s->slot_state = calloc(s->geo.nslots, 1);
	s->pending = calloc(s->geo.nslots, sizeof *s->pending);
	s->pending_status = calloc(s->geo.nslots, sizeof *s->pending_status);
	if (!s->slot_state || !s->pending || !s->pending_status)
		return -ENOMEM;
	swarm_ring_consumer_init(&s->sq, &s->h->sq_head.v, &s->h->sq_tail.v,
				 (const uint64_t *)((char *)s->base + s->geo.sq_offset),
				 s->geo.queue_depth);
	swarm_ring_producer_init(&s->cq, &s->h->cq_tail.v, &s->h->cq_head.v,
				 (uint64_t *)((char *)s->base + s->geo.cq_offset), s->geo.cq_depth);
	err = swarm_loop_add(w->loop, s->sq_efd, s->index);
	if (err)
		snprintf(why, why_len, "cannot watch the session's eventfd: %s", strerror(-err));
	return err;
}

/* Undoes a session_attach that failed after its version was taken: its client's pidfd, its
 * queue room and version reference, and what session_map did. The descriptors that came
 * with the ATTACH stay the caller's. */
static void session_undo(struct worker *w, struct session *s)
{
	if (s->client_pidfd >= 0)
		close(s->client_pidfd);
	queue_purge(s->version, s);
	version_put(w, s->version);
	if (s->registered)
		w->dev->i->unregister_host(w->dev, s->base);
	if (s->base)
		munmap(s->base, s->geo.segment_bytes);
	free(s->slot_state);
	free(s->pending);
	free(s->pending_status);
	free(s);
}

int session_attach(struct worker *w, const struct swarm_msg_attach *m, const int *fds, char *why,
		   size_t why_len)
{
	if (swarm_seg_geometry_check(&m->geo)) {
		snprintf(why, why_len, "inconsistent geometry");
		return -EINVAL;
	}
	uint32_t idx = 0;
	while (idx < SWARM_WORKER_MAX_SESSIONS && w->sessions[idx])
		idx++;
	if (idx == SWARM_WORKER_MAX_SESSIONS) {
		snprintf(why, why_len, "worker full (%d sessions)", SWARM_WORKER_MAX_SESSIONS);
		return -ENOSPC;
	}
	struct version *v = version_get(w, &m->v, why, why_len);
	if (!v)
		return -EBADMSG;
	if (!version_fits(v, &m->geo)) {
		snprintf(why, why_len, "the segment's tensors do not fit %s@%u", v->model,
			 v->number);
		version_put(w, v);
		return -EINVAL;
	}
	if (queue_reserve(v, m->geo.nslots)) {
		snprintf(why, why_len, "out of memory for the batch queue");
		version_put(w, v);
		return -ENOMEM;
	}
	struct session *s = calloc(1, sizeof *s);
	if (!s) {
		version_put(w, v);
		return -ENOMEM;
	}
	s->id = m->session_id;
	s->index = idx;
	s->geo = m->geo;
	s->version = v;
	s->client_pidfd = m->client_pid > 0 ? (int)syscall(SYS_pidfd_open, m->client_pid, 0) : -1;
	int err = session_map(w, s, fds, why, why_len);
	if (err) {
		session_undo(w, s);
		return err;
	}
	s->stats = &w->stats->session[idx];
	memset(s->stats, 0, sizeof *s->stats);
	version_count_session(v, 1);
	__atomic_store_n(&s->stats->session_id, s->id, __ATOMIC_RELAXED);
	w->sessions[idx] = s;
	s->pos = w->n_sessions;
	w->active[w->n_sessions++] = s;
	swarm_stat_set32(&w->stats->sessions, w->n_sessions);
	swarm_log(SWARM_LOG_DEBUG, "event=session_attached session=%llu model=%s slots=%u",
		  (unsigned long long)s->id, v->model, s->geo.nslots);
	return 0;
}

struct session *session_find(struct worker *w, uint64_t id)
{
	for (uint32_t i = 0; i < w->n_sessions; i++)
		if (w->active[i]->id == id)
			return w->active[i];
	return NULL;
}

/* What it has waiting in a batch runs now (session_hand_over in worker.h). What cannot be pushed (a
 * client that does not read its completions) is dropped: the client runs those requests again on
 * the new worker (docs/balancing.md). After this the worker no longer touches the segment. */
void session_hand_over(struct worker *w, struct session *s)
{
	int64_t ignored = -1;
	if (s->version && s->version->q_n)
		run_version_batches(w, s->version, swarm_now_ns(), 1, &ignored);
	int left = s->n_pending;
	if (left && flush_pending(s) >= 0)
		left = (int)s->n_pending;
	wake_client(s);
	swarm_log(SWARM_LOG_INFO, "event=session_handed_over session=%llu sq_head=%u dropped=%d",
		  (unsigned long long)s->id, s->sq.head_local, left);
}

/* swarmd is gone, so no DETACH will come: a session whose client has exited (its pidfd
 * readable), or whose client swarmd did not know, is let go here, and the worker leaves once
 * it holds none. Before, a worker holding a session of a dead client outlived a killed
 * swarmd for as long as nobody stopped it. Called every tick while swarmd is gone. */
void reap_orphans(struct worker *w)
{
	for (uint32_t i = 0; i < w->n_sessions;) {
		struct session *s = w->active[i];
		struct pollfd pf = { .fd = s->client_pidfd, .events = POLLIN };
		if (s->client_pidfd >= 0 && poll(&pf, 1, 0) == 0) {
			i++;
			continue;
		}
		swarm_log(SWARM_LOG_INFO, "event=session_orphaned session=%llu reason=\"%s\"",
			  (unsigned long long)s->id,
			  s->client_pidfd >= 0 ? "its client exited and swarmd is gone" :
						 "swarmd is gone and its client is unknown");
		__atomic_store_n(&s->h->state.v, SWARM_SEG_STATE_WORKER_LOST, __ATOMIC_RELEASE);
		session_free(w, s); /* the last active session moves into slot i */
	}
	if (w->n_sessions == 0)
		w->stop = 1;
}
