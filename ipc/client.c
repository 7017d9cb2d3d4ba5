/* client.c: libswarm, the client end of the control socket and of each session segment.
 *
 * Control path (rare): connect and hello, open and close, over SOCK_SEQPACKET. Data path
 * (per request): take a free slot from a private stack, let the caller fill it in place,
 * push its index on the submission queue, ring the worker's eventfd only if it sleeps, and
 * collect completions from the completion queue, spinning first and then sleeping on the
 * segment's futex. Nothing on the data path allocates or copies tensor bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "ipc/proto.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "ipc/seqlock.h"
#include "swarm/swarm.h"

#define DEFAULT_SPIN_NS 50000ull
#define SAMPLE_EVERY 8 /* requests per latency sample (a power of two) */

enum req_state {
	REQ_FREE = 0,
	REQ_HELD,
	REQ_SUBMITTED,
	REQ_DONE
};

struct swarm_request {
	struct swarm_session *s;
	uint32_t slot;
	uint32_t rows;
	uint32_t state; /* an enum req_state */
	uint32_t flags;  /* as pushed, for a resubmission */
	uint32_t sq_pos; /* the submission queue index it was pushed at */
	uint32_t resubmit; /* lost with a worker, waiting for room to be pushed again */
	int32_t status;
	uint32_t reported; /* swarm_session_poll has returned it */
	uint64_t deadline_ns;
	uint16_t device_inputs, device_outputs; /* tensors in the client's GPU memory */
	struct swarm_slot_header *hdr;
};

struct swarm_session {
	struct swarm_client *c;
	struct swarm_session *next; /* in the client's list */
	uint64_t id;
	int memfd, sq_efd, cq_efd;
	void *base;
	struct swarm_seg_header *h;
	struct swarm_seg_geometry geo; /* private copy, read once at open */
	struct swarm_ring_producer sq;
	struct swarm_ring_consumer cq;
	uint64_t spin_ns;
	uint32_t in_flight;
	uint32_t submits;
	uint32_t epoch;       /* the segment's epoch last recovered from */
	uint32_t n_resubmit;  /* requests marked resubmit */
	uint32_t n_free;
	uint32_t *free_slots;       /* a stack of free slot indices */
	struct swarm_request *reqs; /* one per slot */
	swarm_tensor_spec inputs[SWARM_MAX_TENSORS];
	swarm_tensor_spec outputs[SWARM_MAX_TENSORS];
};

struct swarm_client {
	int sock;
	uint32_t seq;
	int64_t timeout_ms; /* each control call's send and its reply's wait; 0: no limit */
	int timed_out;      /* a call ran out of time: its reply may still come, so no call
			     * may follow on this connection */
	struct swarm_session *sessions;
	char error[SWARM_MSG_TEXT_MAX];
};

static __thread char last_error[2 * SWARM_MSG_TEXT_MAX];

SWARM_API const char *swarm_last_error(void) { return last_error; }

static void set_error(struct swarm_client *c, const char *fmt, const char *a)
{
	snprintf(last_error, sizeof last_error, fmt, a);
	if (c)
		swarm_copy_str(c->error, sizeof c->error, last_error);
}

/* One request and its reply on the control socket. fds (may be NULL) receives up to *nfds
 * descriptors. Returns the reply's type or -errno. */
/* A call ran out of c->timeout_ms: the connection is done for control calls (a late reply
 * would answer the next one). Its sessions' data plane goes on. */
static int timed_out(struct swarm_client *c, const char *doing)
{
	char text[160];
	snprintf(text, sizeof text,
		 "swarmd did not %s within %lld ms; this connection takes no more control calls "
		 "(reconnect)",
		 doing, (long long)c->timeout_ms);
	set_error(c, "%s", text);
	c->timed_out = 1;
	return -ETIMEDOUT;
}

/* One request and its reply on the control socket, each within c->timeout_ms. fds (may be
 * NULL) receives up to *nfds descriptors. Returns the reply's type or -errno (-ETIMEDOUT when
 * swarmd did not take the request or answer it in time; -ENOTCONN on a connection that
 * timed out before). */
static int call(struct swarm_client *c, void *msg, void *reply, size_t reply_len, int *fds,
		int *nfds)
{
	if (c->timed_out) {
		if (nfds)
			*nfds = 0;
		set_error(c, "%s",
			  "an earlier control call on this connection timed out; reconnect");
		return -ENOTCONN;
	}
	struct swarm_msg_hdr *h = msg;
	h->seq = ++c->seq;
	int err = swarm_msg_send(c->sock, msg, h->len, NULL, 0);
	if (err == -EAGAIN || err == -EWOULDBLOCK)
		return timed_out(c, "take the request");
	/* swarmd may have answered and closed before the request went (a connection refused
	 * at accept): its answer is still there to read */
	if (err && err != -EPIPE && err != -ECONNRESET)
		return err;
	int got_fds = nfds ? *nfds : 0;
	int n = swarm_msg_recv(c->sock, reply, reply_len, fds, &got_fds);
	/* a peer that closed with our request unread makes the first read ECONNRESET, with its
	 * answer still queued behind */
	if (n == -ECONNRESET) {
		got_fds = nfds ? *nfds : 0;
		n = swarm_msg_recv(c->sock, reply, reply_len, fds, &got_fds);
	}
	if (nfds)
		*nfds = got_fds;
	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return err ? -ENOTCONN : timed_out(c, "answer");
	if (n == 0)
		return -ENOTCONN;
	if (n < 0)
		return n == -ECONNRESET ? -ENOTCONN : n;
	return swarm_msg_check(reply, (size_t)n);
}

SWARM_API int swarm_connect(const char *socket_path, swarm_client **out)
{
	return swarm_connect_timeout(socket_path, swarm_timeout_ms_default(), out);
}

SWARM_API int swarm_client_set_timeout(swarm_client *c, int64_t timeout_ms)
{
	if (!c || timeout_ms < 0)
		return -EINVAL;
	int err = swarm_sock_set_timeout(c->sock, timeout_ms);
	if (!err)
		c->timeout_ms = timeout_ms;
	return err;
}

SWARM_API int swarm_connect_timeout(const char *socket_path, int64_t timeout_ms, swarm_client **out)
{
	char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (!out || timeout_ms < 0)
		return -EINVAL;
	if (!socket_path || !*socket_path)
		socket_path = getenv("SWARM_SOCKET");
	if (!socket_path || !*socket_path) {
		int err = swarm_default_socket(def, sizeof def);
		if (err)
			return err;
		socket_path = def;
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof addr.sun_path)
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, socket_path);

	struct swarm_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int err;
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		err = -errno;
		goto err_free;
	}
	c->timeout_ms = timeout_ms;
	if ((err = swarm_sock_set_timeout(c->sock, timeout_ms)))
		goto err_close;
	if (connect(c->sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
		err = -errno;
		if (err == -ENOENT)
			err = -ECONNREFUSED;
		if (err == -EACCES || err == -EPERM) { /* the file system said no, not swarmd */
			err = -EACCES;
			set_error(c, "%s",
				  "the socket's file permissions keep this user out (swarmd's "
				  "--allow-user and --allow-group open it to others)");
		}
		if (err == -EAGAIN) /* its backlog stayed full for the whole limit */
			err = timed_out(c, "accept the connection");
		goto err_close;
	}

	struct swarm_msg_hello hello;
	swarm_msg_init(&hello.h, SWARM_MSG_HELLO, sizeof hello, 0);
	hello.pid = getpid();
	hello.cpu = sched_getcpu();
	hello.numa_node = -1; /* swarmd maps the cpu to its node */
	struct swarm_msg_reply reply;
	int type = call(c, &hello, &reply, sizeof reply, NULL, NULL);
	if (type == -EPROTO) {
		snprintf(last_error, sizeof last_error,
			 "ABI mismatch: this client speaks swarm ABI %u, swarmd speaks ABI %u; "
			 "rebuild the client against the installed libswarm",
			 SWARM_ABI_VERSION, (unsigned)reply.h.abi);
		err = -EPROTO;
		goto err_close;
	}
	if (type != SWARM_MSG_HELLO_REPLY) {
		err = type < 0 ? type : -EBADMSG;
		goto err_close;
	}
	if (reply.status) {
		reply.text[sizeof reply.text - 1] = 0;
		set_error(c, "%s", reply.text);
		err = reply.status;
		goto err_close;
	}
	*out = c;
	return 0;

err_close:
	if (err != -EPROTO) {
		/* Truncation only shortens a message. */
		int n = snprintf(last_error, sizeof last_error,
				 "cannot connect to swarmd at %s: %s%s%s", socket_path,
				 swarm_strerror(err), c->error[0] ? ": " : "", c->error);
		(void)n;
	}
	close(c->sock);
err_free:
	free(c);
	return err;
}

SWARM_API const char *swarm_client_error(const swarm_client *c) { return c ? c->error : ""; }

SWARM_API void swarm_disconnect(swarm_client *c)
{
	if (!c)
		return;
	while (c->sessions)
		swarm_session_close(c->sessions);
	close(c->sock);
	free(c);
}

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

SWARM_API int swarm_session_open(swarm_client *c, const char *model, uint32_t version,
				 const swarm_session_opts *opts, swarm_session **out)
{
	if (!c || !model || !out || strlen(model) >= SWARM_NAME_MAX)
		return -EINVAL;
	if (opts && opts->queue_depth && !is_pow2(opts->queue_depth))
		return -EINVAL;
	struct swarm_msg_open m;
	swarm_msg_init(&m.h, SWARM_MSG_OPEN, sizeof m, 0);
	swarm_copy_str(m.model, sizeof m.model, model);
	m.version = version;
	/* The balancer places the session near the thread that opens it. */
	m.cpu = sched_getcpu();
	if (opts)
		m.opts = *opts;

	struct swarm_msg_open_reply r;
	int fds[3], nfds = 3;
	int type = call(c, &m, &r, sizeof r, fds, &nfds);
	int err;
	if (type != SWARM_MSG_OPEN_REPLY) {
		err = type < 0 ? type : -EBADMSG;
		goto err_fds;
	}
	r.text[sizeof r.text - 1] = 0;
	if (r.status) {
		set_error(c, "%s", r.text);
		err = r.status;
		goto err_fds;
	}
	if (nfds != 3) {
		set_error(c, "%s", "swarmd sent a session without its descriptors");
		err = -EBADMSG;
		goto err_fds;
	}

	struct swarm_session *s = calloc(1, sizeof *s);
	if (!s) {
		err = -ENOMEM;
		goto err_fds;
	}
	s->c = c;
	s->id = r.session_id;
	s->memfd = fds[0];
	s->sq_efd = fds[1];
	s->cq_efd = fds[2];
	s->spin_ns = DEFAULT_SPIN_NS;
	err = swarm_seg_map(s->memfd, r.segment_bytes, &s->base);
	if (err)
		goto err_session;
	s->h = s->base;
	/* Acquire pairs with the release store of magic in swarm_seg_create. */
	if (__atomic_load_n(&s->h->magic, __ATOMIC_ACQUIRE) != SWARM_SEG_MAGIC ||
	    s->h->abi_version != SWARM_ABI_VERSION || s->h->session_id != s->id) {
		set_error(c, "%s", "the session segment has a bad magic, ABI or id");
		err = -EPROTO;
		goto err_unmap;
	}
	s->geo = s->h->geo;
	if (swarm_seg_geometry_check(&s->geo) || s->geo.segment_bytes != r.segment_bytes) {
		set_error(c, "%s", "the session segment has an inconsistent geometry");
		err = -EBADMSG;
		goto err_unmap;
	}
	memcpy(s->inputs, s->h->inputs, sizeof s->inputs);
	memcpy(s->outputs, s->h->outputs, sizeof s->outputs);
	s->free_slots = calloc(s->geo.nslots, sizeof *s->free_slots);
	s->reqs = calloc(s->geo.nslots, sizeof *s->reqs);
	if (!s->free_slots || !s->reqs) {
		err = -ENOMEM;
		goto err_unmap;
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
	s->next = c->sessions;
	c->sessions = s;
	*out = s;
	return 0;

err_unmap:
	munmap(s->base, r.segment_bytes);
err_session:
	free(s->free_slots);
	free(s->reqs);
	free(s);
	/* The three fds are closed below; tell swarmd to forget the session. */
	{
		struct swarm_msg_close cm;
		struct swarm_msg_reply cr;
		swarm_msg_init(&cm.h, SWARM_MSG_CLOSE, sizeof cm, 0);
		cm.session_id = r.session_id;
		call(c, &cm, &cr, sizeof cr, NULL, NULL);
	}
err_fds:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return err;
}

SWARM_API int swarm_session_close(swarm_session *s)
{
	if (!s)
		return -EINVAL;
	struct swarm_client *c = s->c;
	for (struct swarm_session **p = &c->sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	munmap(s->base, s->geo.segment_bytes);
	close(s->memfd);
	close(s->sq_efd);
	close(s->cq_efd);
	struct swarm_msg_close m;
	struct swarm_msg_reply r;
	swarm_msg_init(&m.h, SWARM_MSG_CLOSE, sizeof m, 0);
	m.session_id = s->id;
	int type = call(c, &m, &r, sizeof r, NULL, NULL);
	free(s->free_slots);
	free(s->reqs);
	free(s);
	if (type != SWARM_MSG_CLOSE_REPLY)
		return type < 0 ? type : -EBADMSG;
	return r.status;
}

SWARM_API uint32_t swarm_session_num_inputs(const swarm_session *s) { return s->geo.n_inputs; }
SWARM_API uint32_t swarm_session_num_outputs(const swarm_session *s) { return s->geo.n_outputs; }

SWARM_API const swarm_tensor_spec *swarm_session_input_spec(const swarm_session *s, uint32_t i)
{
	return i < s->geo.n_inputs ? &s->inputs[i] : NULL;
}

SWARM_API const swarm_tensor_spec *swarm_session_output_spec(const swarm_session *s, uint32_t i)
{
	return i < s->geo.n_outputs ? &s->outputs[i] : NULL;
}

/* What swarm_session_info_get copies under the placement seqlock. */
struct placement_copy {
	const struct swarm_seg_header *h;
	swarm_session_info *info;
};

static void copy_placement(void *ctx)
{
	const struct placement_copy *pc = ctx;
	const struct swarm_seg_header *h = pc->h;
	swarm_session_info *info = pc->info;
	info->device_index = h->device_index;
	info->numa_node = h->numa_node;
	info->worker_pid = h->worker_pid;
	info->model_version = h->model_version;
	memcpy(info->device_name, h->device_name, sizeof info->device_name);
	memcpy(info->cpus, h->cpus, sizeof info->cpus);
	memcpy(info->mem_policy, h->mem_policy, sizeof info->mem_policy);
}

SWARM_API int swarm_session_info_get(const swarm_session *s, swarm_session_info *info)
{
	if (!s || !info)
		return -EINVAL;
	const struct swarm_seg_header *h = s->h;
	memset(info, 0, sizeof *info);
	/* swarmd rewrites the placement when the session moves: a whole copy or none. */
	struct placement_copy pc = { h, info };
	int rc = swarm_seqlock_read(&h->placement_gen, copy_placement, &pc);
	if (rc) {
		memset(info, 0, sizeof *info);
		return rc;
	}
	info->device_name[sizeof info->device_name - 1] = 0;
	info->cpus[sizeof info->cpus - 1] = 0;
	info->mem_policy[sizeof info->mem_policy - 1] = 0;
	info->session_id = s->id;
	swarm_copy_str(info->model, sizeof info->model, h->model);
	info->slots = s->geo.nslots;
	info->queue_depth = s->geo.queue_depth;
	info->max_rows = s->geo.max_rows;
	return 0;
}

SWARM_API void swarm_session_set_spin(swarm_session *s, uint64_t spin_ns) { s->spin_ns = spin_ns; }

SWARM_API int swarm_session_fd(const swarm_session *s) { return s->cq_efd; }

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
	if (!r || r->state != REQ_HELD || i >= r->s->geo.n_inputs)
		return -EINVAL;
	int err = set_device(r, i, ipc_handle, handle_len, offset);
	if (!err)
		r->device_inputs |= (uint16_t)(1u << i);
	return err;
}

SWARM_API int swarm_request_set_output_device(swarm_request *r, uint32_t i,
					      const void *ipc_handle, size_t handle_len,
					      uint64_t offset)
{
	if (!r || r->state != REQ_HELD || i >= r->s->geo.n_outputs)
		return -EINVAL;
	int err = set_device(r, r->s->geo.n_inputs + i, ipc_handle, handle_len, offset);
	if (!err)
		r->device_outputs |= (uint16_t)(1u << i);
	return err;
}

SWARM_API uint32_t swarm_request_rows(const swarm_request *r) { return r->rows; }
SWARM_API uint32_t swarm_request_slot(const swarm_request *r) { return r->slot; }

SWARM_API int swarm_request_submit(swarm_request *r, uint32_t flags)
{
	if (!r || r->state != REQ_HELD)
		return -EINVAL;
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
