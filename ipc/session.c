/* session.c: libswarm's data path, per request: take a free slot from a private stack, let
 * the caller fill it in place, push its index on the submission queue, ring the worker's
 * eventfd only if it sleeps, and collect completions from the completion queue, spinning
 * first and then sleeping on the segment's futex. Nothing here allocates or copies tensor
 * bytes. When swarmd moves the session to another worker (a new epoch), the requests the old
 * one took and did not complete are run again, each completing exactly once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ipc/client.h"
#include "ipc/doorbell.h"
#include "ipc/proto.h"
#include "ipc/seqlock.h"

int swarm_session_attach(struct swarm_session *s, uint64_t bytes, char *text, size_t len)
{
	s->spin_ns = DEFAULT_SPIN_NS;
	int err = swarm_seg_map(s->memfd, bytes, &s->base);
	if (err)
		return err;
	s->h = s->base;
	/* Acquire pairs with the release store of magic in swarm_seg_create. */
	if (__atomic_load_n(&s->h->magic, __ATOMIC_ACQUIRE) != SWARM_SEG_MAGIC ||
	    s->h->abi_version != SWARM_ABI_VERSION || s->h->session_id != s->id) {
		snprintf(text, len, "the session segment has a bad magic, ABI or id");
		err = -EPROTO;
		goto err_unmap;
	}
	s->geo = s->h->geo;
	if (swarm_seg_geometry_check(&s->geo) || s->geo.segment_bytes != bytes) {
		snprintf(text, len, "the session segment has an inconsistent geometry");
		err = -EBADMSG;
		goto err_unmap;
	}
	memcpy(s->inputs, s->h->inputs, sizeof s->inputs);
	memcpy(s->outputs, s->h->outputs, sizeof s->outputs);
	s->free_slots = calloc(s->geo.nslots, sizeof *s->free_slots);
	s->reqs = calloc(s->geo.nslots, sizeof *s->reqs);
	if (!s->free_slots || !s->reqs) {
		err = -ENOMEM;
		goto err_free;
	}
	for (uint32_t i = 0; i < s->geo.nslots; i++) {
		/* Pop order 0, 1, 2...: the stack holds the highest index at the bottom. */
		s->free_slots[i] = s->geo.nslots - 1 - i;
		s->reqs[i].s = s;
		s->reqs[i].slot = i;
		s->reqs[i].hdr = swarm_seg_slot(s->base, &s->geo, i);
	}
	s->n_free = s->geo.nslots;
	swarm_ring_producer_init(&s->sq, &s->h->sq_tail.v, &s->h->sq_head.v,
				 (uint64_t *)((char *)s->base + s->geo.sq_offset),
				 s->geo.queue_depth);
	swarm_ring_consumer_init(&s->cq, &s->h->cq_head.v, &s->h->cq_tail.v,
				 (const uint64_t *)((char *)s->base + s->geo.cq_offset),
				 s->geo.cq_depth);
	return 0;

err_free:
	free(s->free_slots);
	free(s->reqs);
	s->free_slots = NULL;
	s->reqs = NULL;
err_unmap:
	munmap(s->base, bytes);
	s->base = NULL;
	return err;
}

void swarm_session_detach(struct swarm_session *s)
{
	munmap(s->base, s->geo.segment_bytes);
	free(s->free_slots);
	free(s->reqs);
	s->base = NULL;
	s->free_slots = NULL;
	s->reqs = NULL;
}

static int reap(swarm_session *s);

/* Pushes one request's entry, remembering where it went. */
static int push(swarm_session *s, struct swarm_request *r)
{
	uint32_t pos = s->sq.tail_local;
	int err = swarm_ring_push(&s->sq, swarm_sqe_pack(r->slot, r->flags, r->rows));
	if (!err)
		r->sq_pos = pos;
	return err;
}

/* Rings the worker if it sleeps. The handshake: the push's release store, then a full
 * fence, then the worker's flag; pairs with the worker's store of worker_sleep, fence,
 * re-check of the queue. */
static void ring_worker(swarm_session *s)
{
	swarm_fence();
	if (__atomic_load_n(&s->h->worker_sleep.v, __ATOMIC_RELAXED))
		swarm_eventfd_signal(s->sq_efd);
}

/* Pushes the requests still marked for resubmission while the queue has room. */
static void resubmit_marked(swarm_session *s)
{
	int pushed = 0;
	for (uint32_t i = 0; i < s->geo.nslots && s->n_resubmit; i++) {
		struct swarm_request *r = &s->reqs[i];
		if (!r->resubmit)
			continue;
		if (push(s, r))
			break; /* full: the next check tries again */
		r->resubmit = 0;
		s->n_resubmit--;
		pushed = 1;
	}
	if (pushed)
		ring_worker(s);
}

/* The session was attached to a worker again (swarmd bumped the epoch): collect what the old
 * worker completed, then run again, on the new worker, every request it took and did not
 * complete, unless the request opted out (those fail with -ECONNABORTED). Each request thus
 * completes exactly once. */
/* What recover copies under the placement seqlock. */
struct recovery_copy {
	const struct swarm_seg_header *h;
	uint32_t epoch, head;
};

static void copy_recovery(void *ctx)
{
	struct recovery_copy *rc = ctx;
	rc->epoch = __atomic_load_n(&rc->h->epoch, __ATOMIC_RELAXED);
	rc->head = __atomic_load_n(&rc->h->recovery_head, __ATOMIC_RELAXED);
}

static void recover(swarm_session *s)
{
	struct recovery_copy rc = { .h = s->h };
	/* No whole copy (swarmd died mid-write): nothing is recovered on a torn head; the
	 * next check tries again, and swarmd's death marks the session lost. */
	if (swarm_seqlock_read(&s->h->placement_gen, copy_recovery, &rc))
		return;
	uint32_t epoch = rc.epoch, head = rc.head;
	s->epoch = epoch;
	reap(s);
	for (uint32_t i = 0; i < s->geo.nslots; i++) {
		struct swarm_request *r = &s->reqs[i];
		/* Pushed before the new worker's first entry: the old worker had taken it. */
		if (r->state != REQ_SUBMITTED || r->resubmit || (int32_t)(r->sq_pos - head) >= 0)
			continue;
		if (r->flags & SWARM_REQUEST_NO_RETRY) {
			r->status = -ECONNABORTED;
			r->state = REQ_DONE;
			s->in_flight--;
			continue;
		}
		r->resubmit = 1;
		s->n_resubmit++;
	}
	resubmit_marked(s);
}

/* The session's loss, as an errno, or 0 while it is served (recovering first when it was
 * attached to a worker again since the last look). */
static int session_check(swarm_session *s)
{
	/* Acquire pairs with the release store of state by swarmd or the worker, made before
	 * they ring the doorbell. */
	uint32_t st = __atomic_load_n(&s->h->state.v, __ATOMIC_ACQUIRE);
	if (st == SWARM_SEG_STATE_WORKER_LOST)
		return -ECONNABORTED;
	if (st == SWARM_SEG_STATE_DETACHED)
		return -EBADMSG;
	/* Relaxed: the epoch sits on a line that changes only when the session moves;
	 * recover() reads it again under the seqlock. */
	uint32_t epoch = __atomic_load_n(&s->h->epoch, __ATOMIC_RELAXED);
	if (epoch != s->epoch)
		recover(s);
	else if (s->n_resubmit)
		resubmit_marked(s);
	return 0;
}

/* Moves every visible completion into its request. Returns how many, or -EBADMSG when the
 * completion queue makes no sense (a worker bug: the client trusts its worker, but never
 * indexes out of bounds on its word). */
static int reap(swarm_session *s)
{
	int64_t n = swarm_ring_available(&s->cq);
	if (n <= 0)
		return (int)n;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		uint64_t e = swarm_ring_peek(&s->cq, i);
		uint32_t slot = swarm_cqe_slot(e);
		if (slot >= s->geo.nslots || s->reqs[slot].state != REQ_SUBMITTED)
			continue; /* not ours to complete: ignore rather than corrupt a request */
		s->reqs[slot].status = swarm_cqe_status(e);
		s->reqs[slot].state = REQ_DONE;
		s->in_flight--;
	}
	swarm_ring_advance(&s->cq, (uint32_t)n);
	return (int)n;
}

SWARM_API int swarm_session_arm(swarm_session *s)
{
	if (reap(s) > 0)
		return 1;
	swarm_eventfd_drain(s->cq_efd); /* -EAGAIN when already zero */
	/* Relaxed store then full fence: the handshake of doorbell.h. */
	__atomic_store_n(&s->h->client_sleep.v, SWARM_SEG_SLEEP_EVENTFD, __ATOMIC_RELAXED);
	swarm_fence();
	if (!swarm_ring_empty(&s->cq) || session_check(s)) {
		__atomic_store_n(&s->h->client_sleep.v, SWARM_SEG_AWAKE, __ATOMIC_RELAXED);
		return 1;
	}
	return 0;
}

SWARM_API int swarm_session_poll(swarm_session *s, swarm_request **done, int max)
{
	__atomic_store_n(&s->h->client_sleep.v, SWARM_SEG_AWAKE, __ATOMIC_RELAXED);
	reap(s);
	int n = 0;
	for (uint32_t i = 0; i < s->geo.nslots && n < max; i++) {
		struct swarm_request *r = &s->reqs[i];
		if (r->state == REQ_DONE && !r->reported) {
			r->reported = 1;
			done[n++] = r;
		}
	}
	if (n == 0) {
		int lost = session_check(s);
		if (lost)
			return lost;
	}
	return n;
}

SWARM_API int swarm_request_alloc(swarm_session *s, uint32_t rows, swarm_request **out)
{
	if (!s || !out || rows == 0 || rows > s->geo.max_rows)
		return -EINVAL;
	if (s->n_free == 0)
		return -EAGAIN;
	struct swarm_request *r = &s->reqs[s->free_slots[--s->n_free]];
	r->rows = rows;
	r->state = REQ_HELD;
	r->status = 0;
	r->reported = 0;
	r->deadline_ns = 0;
	r->device_inputs = 0;
	r->device_outputs = 0;
	*out = r;
	return 0;
}

SWARM_API void *swarm_request_input(swarm_request *r, uint32_t i)
{
	if (!r || i >= r->s->geo.n_inputs)
		return NULL;
	return (char *)r->hdr + r->s->geo.tensor_offset[i];
}

SWARM_API const void *swarm_request_output(const swarm_request *r, uint32_t i)
{
	if (!r || i >= r->s->geo.n_outputs)
		return NULL;
	return (const char *)r->hdr + r->s->geo.tensor_offset[r->s->geo.n_inputs + i];
}

SWARM_API void swarm_request_set_deadline(swarm_request *r, uint64_t deadline_ns)
{
	r->deadline_ns = deadline_ns;
}

/* Writes tensor t's device descriptor at the start of its slot area (the slot is the
 * caller's while held) and returns 0, or -EINVAL. */
static int set_device(swarm_request *r, uint32_t t, const void *handle, size_t handle_len,
		      uint64_t offset)
{
	const struct swarm_seg_geometry *g = &r->s->geo;
	if (!handle || handle_len != SWARM_IPC_HANDLE_BYTES ||
	    swarm_seg_tensor_area(g, t) < sizeof(struct swarm_slot_device_desc))
		return -EINVAL;
	struct swarm_slot_device_desc d;
	memcpy(d.handle, handle, sizeof d.handle);
	d.offset = offset;
	memcpy((char *)r->hdr + g->tensor_offset[t], &d, sizeof d);
	return 0;
}

SWARM_API int swarm_request_set_input_device(swarm_request *r, uint32_t i, const void *ipc_handle,
					     size_t handle_len, uint64_t offset)
{
	if (!r || (r->state != REQ_HELD && r->state != REQ_DONE) || i >= r->s->geo.n_inputs)
		return -EINVAL;
	int err = set_device(r, i, ipc_handle, handle_len, offset);
	if (!err)
		r->device_inputs |= (uint16_t)(1u << i);
	return err;
}

SWARM_API int swarm_request_set_output_device(swarm_request *r, uint32_t i, const void *ipc_handle,
					      size_t handle_len, uint64_t offset)
{
	if (!r || (r->state != REQ_HELD && r->state != REQ_DONE) || i >= r->s->geo.n_outputs)
		return -EINVAL;
	int err = set_device(r, r->s->geo.n_inputs + i, ipc_handle, handle_len, offset);
	if (!err)
		r->device_outputs |= (uint16_t)(1u << i);
	return err;
}

SWARM_API uint32_t swarm_request_rows(const swarm_request *r) { return r->rows; }
SWARM_API uint32_t swarm_request_slot(const swarm_request *r) { return r->slot; }

/* Submits r, held: the body of swarm_request_submit and swarm_request_submit_again. */
static int submit_held(swarm_request *r, uint32_t flags)
{
	swarm_session *s = r->s;
	int lost = session_check(s);
	if (lost)
		return lost;
	if (flags & ~SWARM_SQE_PUBLIC_FLAGS)
		return -EINVAL;
	/* The header line is touched only when it carries something: a deadline, or the
	 * submit time of one request in SAMPLE_EVERY (for the stats page's histograms). */
	if (r->deadline_ns) {
		r->hdr->deadline_ns = r->deadline_ns;
		flags |= SWARM_SQE_DEADLINE;
	}
	if (r->device_inputs | r->device_outputs) {
		r->hdr->device_inputs = r->device_inputs;
		r->hdr->device_outputs = r->device_outputs;
		flags |= SWARM_SQE_DEVICE;
	}
	if ((s->submits++ & (SAMPLE_EVERY - 1)) == 0) {
		r->hdr->t_submit_ns = swarm_now_ns();
		flags |= SWARM_SQE_STAMPED;
	}
	r->flags = flags;
	int err = push(s, r);
	if (err)
		return err;
	r->state = REQ_SUBMITTED;
	r->resubmit = 0;
	s->in_flight++;
	ring_worker(s);
	return 0;
}

SWARM_API int swarm_request_submit(swarm_request *r, uint32_t flags)
{
	if (!r || r->state != REQ_HELD)
		return -EINVAL;
	return submit_held(r, flags);
}

SWARM_API int swarm_request_submit_again(swarm_request *r, uint32_t rows, uint32_t flags)
{
	if (!r || (r->state != REQ_HELD && r->state != REQ_DONE) || rows == 0 ||
	    rows > r->s->geo.max_rows)
		return -EINVAL;
	/* Held from here on, as alloc leaves a request: a failed submit leaves it the
	 * caller's, and its old status is gone (the caller asked for a new one). */
	r->state = REQ_HELD;
	r->status = 0;
	r->reported = 0;
	r->rows = rows;
	return submit_held(r, flags);
}

SWARM_API int swarm_request_poll(swarm_request *r)
{
	if (!r)
		return -EINVAL;
	if (r->state == REQ_SUBMITTED)
		reap(r->s);
	if (r->state == REQ_DONE)
		return r->status;
	if (r->state != REQ_SUBMITTED)
		return -EINVAL;
	int lost = session_check(r->s);
	return lost ? lost : -EAGAIN;
}

SWARM_API int swarm_request_wait(swarm_request *r, int64_t timeout_ns)
{
	int rc = swarm_request_poll(r);
	if (rc != -EAGAIN)
		return rc;
	swarm_session *s = r->s;
	uint64_t start = swarm_now_ns();
	uint64_t end = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
	uint64_t spin_end = start + s->spin_ns;
	if (spin_end > end)
		spin_end = end;
	/* Spin: no system call while the worker answers within the budget. */
	for (uint32_t i = 0;; i++) {
		swarm_cpu_relax();
		reap(s);
		if (r->state == REQ_DONE)
			return r->status;
		if ((i & 63) == 0) {
			int lost = session_check(s);
			if (lost)
				return lost;
			if (swarm_now_ns() >= spin_end)
				break;
		}
	}
	/* Sleep: announce it, fence, look once more, then wait on the doorbell. */
	uint32_t *bell = &s->h->cq_doorbell.v;
	for (;;) {
		__atomic_store_n(&s->h->client_sleep.v, SWARM_SEG_SLEEP_FUTEX, __ATOMIC_RELAXED);
		swarm_fence();
		/* Acquire pairs with the worker's (or swarmd's) release increment of the bell. */
		uint32_t seen = __atomic_load_n(bell, __ATOMIC_ACQUIRE);
		reap(s);
		int lost = session_check(s);
		if (r->state == REQ_DONE || lost) {
			__atomic_store_n(&s->h->client_sleep.v, SWARM_SEG_AWAKE, __ATOMIC_RELAXED);
			return r->state == REQ_DONE ? r->status : lost;
		}
		uint64_t now = swarm_now_ns();
		if (now >= end) {
			__atomic_store_n(&s->h->client_sleep.v, SWARM_SEG_AWAKE, __ATOMIC_RELAXED);
			return -ETIMEDOUT;
		}
		int64_t left = end == UINT64_MAX ? -1 : (int64_t)(end - now);
		swarm_futex_wait(bell, seen, left);
	}
}

SWARM_API int swarm_request_release(swarm_request *r)
{
	if (!r)
		return -EINVAL;
	if (r->state == REQ_SUBMITTED) {
		reap(r->s);
		if (r->state == REQ_SUBMITTED && !session_check(r->s))
			return -EBUSY;
		if (r->state == REQ_SUBMITTED)
			r->s->in_flight--; /* lost with its worker: the slot is ours again */
	}
	if (r->state == REQ_FREE)
		return -EINVAL;
	r->state = REQ_FREE;
	r->s->free_slots[r->s->n_free++] = r->slot;
	return 0;
}
