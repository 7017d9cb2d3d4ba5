/* ctl.c: the worker's side of the control socket. swarmd sends ATTACH, DETACH, SWITCH, LOAD,
 * UNLOAD and WEIGHTS_OFFER; the worker answers ATTACH_REPLY, DETACHED, SWITCHED and LOADED, and
 * says on its own when it broke off a session (DETACHED) or holds or let go of a shareable
 * device copy of weights (WEIGHTS_SHARE, WEIGHTS_UNSHARE). Each message type has one handler,
 * found through a table; worker_ctl_handle takes one received message and its descriptors,
 * so that tests and the fuzzer call it without a swarmd. What goes to swarmd waits in an
 * outbox when the socket is full: nothing is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "registry/loader.h"
#include "runtime/log.h"
#include "runtime/worker/worker.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#endif

#define FANOUT_TIMEOUT_MS 60000 /* a LOAD's collective, when swarmd names no timeout */

/* A message that finds the socket full goes at the loop's next pass (handle_events flushes;
 * a pass comes at least every tick); SWARM_OUTBOX_MAX waiting means swarmd stopped reading. */
int ctl_send(struct worker *w, const void *msg, size_t len, const int *fds, int nfds)
{
	if (w->ctl < 0)
		return -ENOTCONN;
	int rc = swarm_outbox_send(&w->out, w->ctl, msg, len, fds, nfds);
	if (rc == -ENOBUFS) {
		swarm_log(SWARM_LOG_ERROR, "event=swarmd_unresponsive waiting=%zu",
			  swarm_outbox_pending(&w->out));
		swarmd_lost(w);
	}
	return rc;
}

void send_detached(struct worker *w, uint64_t id, int reason, const char *text)
{
	struct swarm_msg_detached m;
	swarm_msg_init(&m.h, SWARM_MSG_DETACHED, sizeof m, 0);
	m.session_id = id;
	m.reason = reason;
	swarm_copy_str(m.text, sizeof m.text, text);
	ctl_send(w, &m, sizeof m, NULL, 0);
}

void send_residency(struct worker *w, const char *model, uint32_t version, int loaded,
		    const char *sha, uint64_t weights_bytes, uint64_t other_bytes)
{
	struct swarm_msg_residency m;
	if (w->ctl < 0)
		return;
	swarm_msg_init(&m.h, SWARM_MSG_RESIDENCY, sizeof m, 0);
	swarm_copy_str(m.model, sizeof m.model, model);
	m.version = version;
	m.loaded = loaded ? 1 : 0;
	swarm_copy_str(m.weights_sha, sizeof m.weights_sha, sha);
	m.weights_bytes = weights_bytes;
	m.other_bytes = other_bytes;
	ctl_send(w, &m, sizeof m, NULL, 0);
}

void send_weights(struct worker *w, uint16_t type, const char *sha,
		  const struct swarm_dev_weights *dw, int fd)
{
	struct swarm_msg_weights m;
	if (w->ctl < 0)
		return;
	swarm_msg_init(&m.h, type, sizeof m, 0);
	m.gpu = w->gpu;
	swarm_copy_str(m.sha, sizeof m.sha, sha);
	m.bytes = dw ? swarm_dev_weights_bytes(dw) : 0;
	m.layout = dw ? swarm_dev_weights_layout(dw) : 0;
	int rc = ctl_send(w, &m, sizeof m, fd >= 0 ? &fd : NULL, fd >= 0);
	if (rc)
		swarm_log(SWARM_LOG_WARN, "event=weights_share_send_failed sha=%.16s error=\"%s\"",
			  sha, strerror(-rc));
}

/* swarmd is gone: sessions already attached keep being served (docs/control-plane.md), and
 * the worker leaves once it holds none, since no new one can arrive. */
void swarmd_lost(struct worker *w)
{
	if (w->ctl < 0)
		return;
	swarm_log(SWARM_LOG_WARN, "event=swarmd_lost sessions=%u", w->n_sessions);
	swarm_loop_del(w->loop, w->ctl, TAG_CTL);
	close(w->ctl);
	w->ctl = -1;
	swarm_outbox_clear(&w->out);
	if (w->n_sessions == 0)
		w->stop = 1;
}

/* Keeps an offer; its fd is the worker's now. One for another GPU is of no use here, and one
 * for a blob already offered or already on the device here adds nothing: those are closed. */
static void keep_offer(struct worker *w, struct swarm_msg_weights *m, int fd)
{
	m->sha[sizeof m->sha - 1] = 0;
	for (struct version *x = w->versions; x; x = x->next)
		if (x->dw && !strcmp(x->sha, m->sha)) {
			close(fd);
			return;
		}
	int rc = -EXDEV;
	if (m->gpu == w->gpu)
		rc = swarm_wshare_add(&w->offers, m->gpu, m->sha, m->bytes, m->layout, -1, fd);
	else
		close(fd);
	if (rc && rc != -EEXIST)
		swarm_log(SWARM_LOG_WARN,
			  "event=weights_offer_refused sha=%.16s gpu=%d error=\"%s\"", m->sha,
			  m->gpu, strerror(-rc));
}

/* Serves a session with another version from the next pass on: between two passes, so at
 * a request boundary. The new version is loaded beside the old one, which is unmapped when
 * its last session lets go. */
static void handle_switch(struct worker *w, const struct swarm_msg_switch *m)
{
	struct swarm_msg_switched r;
	swarm_msg_init(&r.h, SWARM_MSG_SWITCHED, sizeof r, m->h.seq);
	r.session_id = m->session_id;
	r.version = m->v.version;
	struct session *s = session_find(w, m->session_id);
	struct version *v = NULL;
	if (!s) {
		r.status = -ENOENT;
		swarm_copy_str(r.text, sizeof r.text, "no such session on this worker");
	} else if (!(v = version_get(w, &m->v, r.text, sizeof r.text))) {
		r.status = -EBADMSG;
	} else if (!version_fits(v, &s->geo)) {
		r.status = -EINVAL;
		swarm_copy_str(r.text, sizeof r.text,
			       "the new version's inputs or outputs differ from the session's");
		version_put(w, v);
	} else if (queue_reserve(v, s->geo.nslots)) {
		r.status = -ENOMEM;
		swarm_copy_str(r.text, sizeof r.text, "out of memory for the batch queue");
		version_put(w, v);
	} else {
		/* What the session has waiting runs on the version it was submitted to. */
		struct version *old = s->version;
		int64_t ignored = -1;
		run_version_batches(w, old, swarm_now_ns(), 1, &ignored);
		queue_purge(old, s);
		s->version = v;
		version_count_session(old, -1);
		version_count_session(v, 1);
		version_put(w, old);
		swarm_log(SWARM_LOG_INFO, "event=session_switched session=%llu model=%s version=%u",
			  (unsigned long long)s->id, v->model, v->number);
	}
	ctl_send(w, &r, sizeof r, NULL, 0);
}

/* ---- LOAD: preloading, and the NCCL fan-out (docs/devices.md, "NCCL fan-out") ------------ */

/* One LOAD's part in a fan-out, the context of its loader hook. */
struct fanout {
	struct worker *w;
	const struct swarm_msg_load *m;
	int timeout_ms;
	int tried;          /* this rank called the broadcast */
	int received, sent; /* the broadcast reached this rank / went out from it */
	int fell_back;      /* a receiver whose broadcast failed copied from the registry */
	double gbps;
	char note[160];
};

#ifdef SWARM_HAVE_CUDA
/* One broadcast of the fan-out over the bytes at buf: 0 or -errno, with why in f->note. */
static int fanout_broadcast(struct fanout *f, void *buf, uint64_t bytes)
{
	const struct swarm_msg_load *m = f->m;
	f->tried = 1;
	int rc = swarm_nccl_broadcast_timeout(f->w->dev, m->nccl_id, (int)m->nranks, (int)m->rank,
					      (int)m->root, buf, bytes, f->timeout_ms, &f->gbps);
	if (rc)
		snprintf(f->note, sizeof f->note, "broadcast failed (%s): %s", strerror(-rc),
			 swarm_cuda_last_error());
	return rc;
}

/* A receiver's fill: the root's broadcast, else (0) the copy from the mapping after all. */
static int fanout_fill(void *ctx, void *dev_base, uint64_t bytes)
{
	struct fanout *f = ctx;
	if (fanout_broadcast(f, dev_base, bytes)) {
		f->fell_back = 1;
		return 0;
	}
	f->received = 1;
	return 1;
}

/* The root's: its copy is done, so it sends. Its own weights are good either way. */
static int fanout_loaded(void *ctx, void *dev_base, uint64_t bytes)
{
	struct fanout *f = ctx;
	f->sent = fanout_broadcast(f, dev_base, bytes) == 0;
	return 0;
}
#endif

/* Whether this worker takes part in m's fan-out as a rank (1) or loads alone (0); why it
 * loads alone, when it was asked to take part, goes in f->note. */
static int fanout_ranks(const struct worker *w, const struct swarm_msg_load *m, struct fanout *f)
{
	int ranks = m->nranks >= 2 && m->rank < m->nranks && m->root < m->nranks;
	if (m->nranks >= 2 && !ranks)
		snprintf(f->note, sizeof f->note,
			 "bad fan-out (rank %u, root %u of %u): loaded alone", m->rank, m->root,
			 m->nranks);
#ifdef SWARM_HAVE_CUDA
	if (ranks && w->gpu < 0) {
		snprintf(f->note, sizeof f->note, "a CPU device takes no part in a fan-out");
		ranks = 0;
	}
#else
	(void)w;
	if (ranks)
		snprintf(f->note, sizeof f->note, "built without CUDA: no fan-out");
	ranks = 0;
#endif
	return ranks;
}

/* Loads m's version, as a rank of its fan-out (ranks) or alone. A receiver skips the SHA-256
 * pass, and verifies the bytes after all when its broadcast failed and it copied from the
 * registry. Returns the version with a reference taken, or NULL with the reason in why. */
static struct version *load_version(struct worker *w, const struct swarm_msg_load *m,
				    struct fanout *f, int ranks, char *why, size_t why_len)
{
	int root = ranks && m->rank == m->root;
	struct swarm_weights_hook hook = { 0 };
#ifdef SWARM_HAVE_CUDA
	hook.ctx = f;
	if (ranks && root)
		hook.loaded = fanout_loaded;
	else if (ranks)
		hook.fill = fanout_fill;
#endif
	int verify = ranks && !root ? 0 : w->verify_blobs;
	struct version *x = version_load(w, &m->v, ranks ? &hook : NULL, verify, why, why_len);
	if (x && f->fell_back && w->verify_blobs && x->w.map) {
		char hex[65];
		swarm_sha256_hex(x->w.map, x->w.bytes, hex);
		if (strcmp(hex, m->v.weights_sha)) {
			snprintf(why, why_len,
				 "weights changed on disk: blob %.16s... has SHA-256 %.16s...",
				 m->v.weights_sha, hex);
			version_put(w, x);
			x = NULL;
		}
	}
	return x;
}

/* Keeps x loaded for the worker's life with the reference the LOAD took, unless an earlier
 * LOAD did (then that one is dropped). Another version of the model preloaded before (the
 * active one moved on) is let go: its sessions, if any, keep it until they switch. */
static void preload_keep(struct worker *w, struct version *x)
{
	if (x->preloaded) {
		version_put(w, x); /* preloaded before: it holds one already */
		return;
	}
	x->preloaded = 1; /* the reference taken by the LOAD stays */
	for (struct version *y = w->versions; y;) {
		struct version *next = y->next;
		if (y != x && y->preloaded && !strcmp(y->model, x->model)) {
			y->preloaded = 0;
			version_put(w, y);
		}
		y = next;
	}
}

/* Fills LOADED's outcome for x (NULL: failed, why already in r->text), logs it and sends it. */
static void send_loaded(struct worker *w, const struct swarm_msg_load *m,
			struct swarm_msg_loaded *r, const struct version *x, const struct fanout *f,
			int ranks, int already, uint64_t t0)
{
	r->status = x ? 0 : -EBADMSG;
	r->how = !x          ? 0 :
		 f->received ? SWARM_LOAD_RECEIVED :
		 f->sent     ? SWARM_LOAD_SENT :
		 already     ? SWARM_LOAD_ALREADY :
			       SWARM_LOAD_REGISTRY;
	r->bytes = x && x->dw ? swarm_dev_weights_bytes(x->dw) : 0;
	r->ns = swarm_now_ns() - t0;
	r->gbps = f->gbps;
	if (x && f->note[0])
		swarm_copy_str(r->text, sizeof r->text, f->note);
	static const char *const how[] = { "failed", "registry", "received", "sent", "already" };
	swarm_log(x ? SWARM_LOG_INFO : SWARM_LOG_WARN,
		  "event=preloaded model=%s version=%u how=%s ranks=%u rank=%u bytes=%llu ms=%.1f "
		  "gbps=%.2f note=\"%s\"",
		  r->model, r->version, how[r->how], ranks ? m->nranks : 1, ranks ? m->rank : 0,
		  (unsigned long long)r->bytes, (double)r->ns / 1e6, r->gbps, r->text);
	ctl_send(w, r, sizeof *r, NULL, 0);
}

/* LOAD: loads m's version as the message says and keeps it loaded (one reference, for the
 * worker's life), then answers LOADED. A rank of a fan-out always takes its part in the
 * collective, so that the others are not left to time out: a root that had the version
 * already sends from it; a receiver that had it receives in place (the same blob's bytes,
 * written over themselves). A receiver skips the SHA-256 pass: the root verified the blob it
 * sends, and the receiver's point is not to read it; if its broadcast fails it copies from
 * the registry and verifies then, as a plain load does. */
static void handle_load(struct worker *w, const struct swarm_msg_load *m)
{
	struct swarm_msg_loaded r;
	swarm_msg_init(&r.h, SWARM_MSG_LOADED, sizeof r, m->h.seq);
	swarm_copy_str(r.model, sizeof r.model, m->v.model);
	r.version = m->v.version;
	uint64_t t0 = swarm_now_ns();
	struct fanout f = { .w = w, .m = m };
	f.timeout_ms = m->timeout_ms ? (int)m->timeout_ms : FANOUT_TIMEOUT_MS;
	int ranks = fanout_ranks(w, m, &f);
	struct version *x = NULL;
	for (struct version *y = w->versions; y && !x; y = y->next)
		if (!strcmp(y->sha, m->v.weights_sha) && !strcmp(y->model, m->v.model) &&
		    y->number == m->v.version && !!y->desc == !!m->v.builtin_id)
			x = y;
	int already = x != NULL;
	if (x)
		x->refs++;
	else
		x = load_version(w, m, &f, ranks, r.text, sizeof r.text);
#ifdef SWARM_HAVE_CUDA
	/* A rank whose weights did not go through an upload here (the version was loaded, or
	 * its device copy came from another version of the blob or from another worker on the
	 * GPU) takes its part all the same (see above). */
	if (x && ranks && !f.tried) {
		int root = m->rank == m->root;
		if (x->dw && !fanout_broadcast(&f, swarm_dev_weights_base(x->dw),
					       swarm_dev_weights_bytes(x->dw)))
			f.sent = root, f.received = !root;
		else if (!x->dw && !f.note[0])
			snprintf(f.note, sizeof f.note,
				 "the version has no device weights to broadcast");
	}
#endif
	if (x)
		preload_keep(w, x);
	send_loaded(w, m, &r, x, &f, ranks, already, t0);
}

/* ---- the table: one handler per message type ------------------------------------------ */

/* The messages swarmd sends a worker, as received. */
union ctl_msg {
	struct swarm_msg_hdr h;
	struct swarm_msg_attach attach;
	struct swarm_msg_detach detach;
	struct swarm_msg_switch sw;
	struct swarm_msg_load load;
	struct swarm_msg_weights weights;
	struct swarm_msg_unload unload;
};

static void close_fds(const int *fds, int nfds)
{
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* ATTACH: a session to serve, with its segment memfd and its two eventfds; ATTACH_REPLY. */
static void on_attach(struct worker *w, union ctl_msg *m, int *fds, int nfds)
{
	char why[SWARM_MSG_TEXT_MAX] = "";
	int err = -EINVAL;
	if (nfds != 3)
		snprintf(why, sizeof why, "attach without its 3 descriptors");
	else
		err = session_attach(w, &m->attach, fds, why, sizeof why);
	if (err) {
		swarm_log(SWARM_LOG_WARN, "event=attach_failed session=%llu error=\"%s\"",
			  (unsigned long long)m->attach.session_id, why);
		close_fds(fds, nfds);
	}
	struct swarm_msg_attach_reply r;
	swarm_msg_init(&r.h, SWARM_MSG_ATTACH_REPLY, sizeof r, m->h.seq);
	r.session_id = m->attach.session_id;
	r.status = err;
	swarm_copy_str(r.text, sizeof r.text, why);
	ctl_send(w, &r, sizeof r, NULL, 0);
}

/* DETACH: the session closes, or moves to another worker (its batched requests run first);
 * DETACHED, also for a session this worker does not hold. */
static void on_detach(struct worker *w, union ctl_msg *m, int *fds, int nfds)
{
	(void)fds, (void)nfds;
	struct session *s = session_find(w, m->detach.session_id);
	int moving = (m->detach.flags & SWARM_DETACH_MOVE) != 0;
	if (s && moving)
		session_hand_over(w, s);
	if (s)
		session_free(w, s);
	send_detached(w, m->detach.session_id, 0, moving ? "moved" : "closed");
}

static void on_switch(struct worker *w, union ctl_msg *m, int *fds, int nfds)
{
	(void)fds, (void)nfds;
	handle_switch(w, &m->sw);
}

static void on_load(struct worker *w, union ctl_msg *m, int *fds, int nfds)
{
	(void)fds, (void)nfds;
	handle_load(w, &m->load);
}

/* UNLOAD: swarmd evicts an idle version. One still held stays (swarmd's view was behind). */
static void on_unload(struct worker *w, union ctl_msg *m, int *fds, int nfds)
{
	(void)fds, (void)nfds;
	char model[SWARM_NAME_MAX];
	swarm_copy_str(model, sizeof model, m->unload.model);
	if (m->unload.flags & SWARM_UNLOAD_UNPIN)
		version_unpin(w, model, m->unload.version);
	int rc = version_drop(w, model, m->unload.version);
	if (rc)
		swarm_log(SWARM_LOG_WARN, "event=unload_refused model=%s version=%u reason=%s",
			  model, m->unload.version, rc == -EBUSY ? "held" : "not_loaded");
}

/* WEIGHTS_OFFER: another worker's device copy of a blob, as one fd; one without is malformed. */
static void on_weights_offer(struct worker *w, union ctl_msg *m, int *fds, int nfds)
{
	if (nfds != 1) {
		close_fds(fds, nfds);
		swarm_log(SWARM_LOG_WARN, "event=ctl_bad_message result=%d", m->h.type);
		return;
	}
	keep_offer(w, &m->weights, fds[0]);
}

/* A handler gets a checked message (magic, ABI, a type it handles, that type's exact length).
 * takes_fds: it gets the descriptors that came with it and keeps or closes them; otherwise
 * they are closed before it runs. */
static const struct {
	void (*fn)(struct worker *w, union ctl_msg *m, int *fds, int nfds);
	int takes_fds;
} handlers[SWARM_MSG_TYPE_MAX] = {
	[SWARM_MSG_ATTACH] = { on_attach, 1 },
	[SWARM_MSG_DETACH] = { on_detach, 0 },
	[SWARM_MSG_SWITCH] = { on_switch, 0 },
	[SWARM_MSG_LOAD] = { on_load, 0 },
	[SWARM_MSG_UNLOAD] = { on_unload, 0 },
	[SWARM_MSG_WEIGHTS_OFFER] = { on_weights_offer, 1 },
};

/* Checks the n bytes received into m and hands them to their type's handler. */
static void ctl_dispatch(struct worker *w, union ctl_msg *m, size_t n, int *fds, int nfds)
{
	int type = swarm_msg_check(m, n);
	if (type <= 0 || type >= SWARM_MSG_TYPE_MAX || !handlers[type].fn) {
		close_fds(fds, nfds);
		swarm_log(SWARM_LOG_WARN, "event=ctl_bad_message result=%d", type);
		return;
	}
	if (!handlers[type].takes_fds)
		close_fds(fds, nfds);
	handlers[type].fn(w, m, fds, nfds);
}

void worker_ctl_handle(struct worker *w, const void *buf, size_t n, int *fds, int nfds)
{
	union ctl_msg m;
	if (n > sizeof m) {
		/* as swarm_msg_recv reports a packet larger than any the worker takes */
		close_fds(fds, nfds);
		swarm_log(SWARM_LOG_WARN, "event=ctl_error error=\"%s\"", strerror(EMSGSIZE));
		return;
	}
	if (n)
		memcpy(&m, buf, n);
	ctl_dispatch(w, &m, n, fds, nfds);
}

int worker_ctl_drain(struct worker *w)
{
	for (;;) {
		union ctl_msg m;
		int fds[SWARM_MSG_MAX_FDS], nfds = SWARM_MSG_MAX_FDS;
		int n = swarm_msg_recv(w->ctl, &m, sizeof m, fds, &nfds);
		if (n == -EAGAIN)
			return 0;
		if (n == 0 || n == -ECONNRESET)
			return -1;
		if (n < 0) {
			swarm_log(SWARM_LOG_WARN, "event=ctl_error error=\"%s\"", strerror(-n));
			return n == -EMSGSIZE ? 0 : -1;
		}
		ctl_dispatch(w, &m, (size_t)n, fds, nfds);
	}
}
