/* worker.c: swarm-worker, one process per device in service, started by swarmd.
 *
 * It binds itself to its device's cores and NUMA node before it allocates anything, then
 * runs one event loop: it drains ready requests from every attached session, runs them,
 * completes them, and sleeps (io_uring, else epoll) only after a spin budget with nothing
 * to do. Sessions arrive and leave through messages on the control socket from swarmd.
 *
 * The worker trusts nothing in a segment: the geometry comes from swarmd, every field of a
 * request is read once into a local and checked, and a session whose queue indices make no
 * sense is detached. A client can only break its own session.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "ipc/outbox.h"
#include "ipc/proto.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "kernels/builtin.h"
#include "kernels/cpu/staged_device.h"
#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "runtime/executor.h"
#include "registry/registry.h"
#include "runtime/event_loop.h"
#include "runtime/log.h"
#include "runtime/stats.h"
#include "runtime/topology.h"
#include "runtime/weight_share.h"
#include "swarm/swarm.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/ipc_mem.h"
#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#endif

/* Loop tags: the control socket, the timer, and sessions by their table index. */
#define TAG_CTL 0xffff0001ull
#define TAG_TIMER 0xffff0002ull
#define TICK_NS 100000000ll
#define MAX_EVENTS 64
#define SAMPLES_PER_PASS 64     /* latency samples kept per session per pass */
#define BATCH_MAX_REQUESTS 1024 /* requests in one batch (their statuses live on the stack) */
#define IPC_CACHE 16            /* clients' GPU allocations kept open per session */
#define FANOUT_TIMEOUT_MS 60000 /* a LOAD's collective, when swarmd names no timeout */
/* One request's tensors never evict each other: least-recently-used eviction then always
 * finds an entry that an earlier request used. */
_Static_assert(IPC_CACHE >= 2 * SWARM_MAX_TENSORS, "a request's allocations fit the cache");

enum slot_state {
	SLOT_IDLE = 0,
	SLOT_RUNNING,
	SLOT_PENDING_CQ
};

/* A model version this worker holds: its weights mapped once, shared by every session that
 * uses it, unmapped when the last one lets go. */
struct version {
	struct version *next;
	char model[SWARM_NAME_MAX];
	uint32_t number;
	char sha[72];                        /* "" for a built-in model's own weights */
	const struct swarm_model_desc *desc; /* the built-in model it is, or NULL */
	struct swarm_weights w;              /* w.map is NULL for a built-in's own weights */
	/* what runs its requests (runtime/executor.h): the built-in, the node-list graph
	 * planned on the worker's device, or a custom backend; NULL only while loading */
	struct swarm_executor *exec;
	struct swarm_graph *graph; /* exec's graph when it is one, else NULL */
	/* the device copy of the weights graph reads, on a device with its own memory (a GPU):
	 * one per blob, shared by every version of it here, perhaps mapped from another
	 * worker's (docs/devices.md, "Shared weights"); NULL on the CPU */
	struct swarm_dev_weights *dw;
	uint32_t refs;
	/* Dynamic batching (Triton's semantics): requests of every session of this version
	 * wait here until max_batch rows are ready or the oldest has waited delay_ns (0: run
	 * what is ready), then run as one batch. max_batch <= 1: each request runs alone, in
	 * place in its slot. */
	uint32_t max_batch;
	uint64_t delay_ns;
	struct queued *q; /* a FIFO ring of q_cap entries: room for every slot of its sessions */
	uint32_t q_head, q_n, q_cap, q_rows;
	uint32_t q_need; /* slots of the sessions using the version: the room the ring must have */
	struct queued *batch; /* the batch being run, max_batch entries */
	uint32_t n_in, n_out;
	uint64_t in_row[SWARM_MAX_TENSORS], out_row[SWARM_MAX_TENSORS];
	void *bin[SWARM_MAX_TENSORS], *bout[SWARM_MAX_TENSORS]; /* gathered rows, max_batch each */
	int pinned; /* bin and bout are registered with the device (register_host) */
	int preloaded;       /* held by a LOAD (--preload): one of refs, kept for the worker's life */
	/* A graph on a staged device (a GPU) gathers nothing on the host: a batch runs as one
	 * part per request, straight from the slots (swarm_graph_run_parts), and bin and bout
	 * stay NULL. parts has an entry per request a batch can hold, and part_in and part_out
	 * n_in and n_out pointers per entry. */
	struct swarm_graph_part *parts;
	const void **part_in;
	void **part_out;
};

/* A request waiting for its batch. */
struct queued {
	struct session *s;
	uint32_t slot, rows, flags;
	uint64_t arrived_ns;
	uint64_t t_submit_ns; /* the client's stamp, 0 when the request carries none */
};

/* A client's GPU allocation, opened by its CUDA IPC handle (device-memory requests) and kept
 * open until the session goes or a newer one needs the entry, so that the open (a driver
 * call that maps memory) is not paid per request. */
struct ipc_entry {
	uint8_t handle[SWARM_IPC_HANDLE_BYTES];
	void *ptr; /* NULL: the entry is free */
	size_t bytes;
	uint64_t used; /* the session's request count when last used, for eviction */
};

struct session {
	uint64_t id;
	uint32_t index; /* in the worker's table and its stats page */
	uint32_t pos;   /* in the worker's dense active list */
	uint32_t woken; /* the batch round that last woke its client */
	int memfd, sq_efd, cq_efd;
	int client_pidfd; /* its client (pidfd_open), -1 unknown: see reap_orphans */
	void *base;
	struct swarm_seg_header *h;
	struct swarm_seg_geometry geo; /* swarmd's copy; never re-read from the segment */
	struct version *version;
	struct swarm_ring_consumer sq;
	struct swarm_ring_producer cq;
	uint8_t *slot_state; /* an enum slot_state per slot */
	uint32_t *pending;   /* completions waiting for room in the CQ, FIFO */
	int32_t *pending_status;
	uint32_t pending_head, n_pending;
	struct swarm_session_stats *stats;
	int registered;                  /* the segment is pinned with the device (register_host) */
	struct ipc_entry ipc[IPC_CACHE]; /* device-memory requests' allocations (CUDA) */
	uint64_t ipc_uses;
};

struct worker {
	int device_index;
	char name[32];
	char cpus[SWARM_CPUS_MAX];
	int numa_node;
	uint64_t spin_ns;
	int ctl;
	struct swarm_outbox out; /* replies waiting for ctl to take them: none is dropped */
	int timer;
	struct swarm_loop *loop;
	struct swarm_worker_stats *stats;
	struct session *sessions[SWARM_WORKER_MAX_SESSIONS]; /* by index (stats page, loop tag) */
	struct session *active[SWARM_WORKER_MAX_SESSIONS];   /* the first n_sessions, dense */
	uint32_t n_sessions;
	struct version *versions;
	struct swarm_device *dev; /* where node-list graphs run: the CPU device, or the GPU */
	int gpu;                  /* --gpu: the CUDA ordinal of dev, -1 for the CPU device */
	char backend_dir[PATH_MAX];
	uint32_t batch_round;
	char registry[PATH_MAX];
	int verify_blobs;
	struct swarm_load_opts load; /* how a GPU's weights are read (--load-mode) */
	/* other workers' device copies of blobs that swarmd offered (WEIGHTS_OFFER) before the
	 * attach that needs them, kept until a load takes them: the broker's table, keyed by
	 * (GPU, SHA), exporter -1 */
	struct swarm_wshare offers;
	volatile sig_atomic_t stop;
};

static volatile sig_atomic_t g_stop;

static void on_term(int sig)
{
	(void)sig;
	g_stop = 1; /* read by the loop after every pass; a sleep ends at the next tick */
}

static void swarmd_lost(struct worker *w);

/* Sends a message to swarmd. Nothing is dropped when the socket is full: it waits in w->out
 * and goes at the loop's next pass (handle_events flushes; a pass comes at least every tick).
 * A swarmd that stopped reading (SWARM_OUTBOX_MAX waiting) is treated as gone. Returns 0 or
 * -errno. */
static int ctl_send(struct worker *w, const void *msg, size_t len, const int *fds, int nfds)
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

static void send_detached(struct worker *w, uint64_t id, int reason, const char *text)
{
	struct swarm_msg_detached m;
	swarm_msg_init(&m.h, SWARM_MSG_DETACHED, sizeof m, 0);
	m.session_id = id;
	m.reason = reason;
	swarm_copy_str(m.text, sizeof m.text, text);
	ctl_send(w, &m, sizeof m, NULL, 0);
}

/* Wakes the client if it sleeps: after completions, or when the session dies. */
static void wake_client(struct session *s)
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

/* Loads the custom backend a manifest names (an absolute path, or a bare name in swarmd's
 * --backend-dir), given the version's weights, as x's executor. */
static int backend_load(struct worker *w, struct version *x, const struct swarm_manifest *m,
			uint32_t max_batch, char *why, size_t why_len)
{
	char path[PATH_MAX];
	if (m->graph_backend[0] == '/') {
		swarm_copy_str(path, sizeof path, m->graph_backend);
	} else if (!w->backend_dir[0] || strchr(m->graph_backend, '/')) {
		snprintf(why, why_len,
			 "backend \"%.64s\": give an absolute path, or a bare name with swarmd "
			 "--backend-dir",
			 m->graph_backend);
		return -ENOENT;
	} else if (snprintf(path, sizeof path, "%s/%s", w->backend_dir, m->graph_backend) >=
		   (int)sizeof path) {
		snprintf(why, why_len, "backend path too long");
		return -ENAMETOOLONG;
	}
	return swarm_executor_backend(path, m, &x->w, max_batch, &x->exec, why, why_len);
}

/* Finds or loads the version v names. Loading maps the blob, touches (and verifies) it, and
 * binds the model's weights by name, dtype and shape. Returns it with a reference taken, or
 * NULL with the reason in why. */
static void version_free_buffers(struct worker *w, struct version *x)
{
	for (uint32_t i = 0; i < SWARM_MAX_TENSORS; i++) {
		if (x->pinned && x->bin[i])
			w->dev->i->unregister_host(w->dev, x->bin[i]);
		if (x->pinned && x->bout[i])
			w->dev->i->unregister_host(w->dev, x->bout[i]);
		free(x->bin[i]);
		free(x->bout[i]);
	}
	free(x->parts);
	free(x->part_in);
	free(x->part_out);
	free(x->batch);
	free(x->q);
}

/* Pins a version's gather buffers with a device that copies to its own memory, so that a
 * batch's copies are DMA like a lone request's from its slot. All or none: a refusal is
 * logged and costs speed only. */
static void pin_batch_buffers(struct worker *w, struct version *x)
{
	struct swarm_device *d = w->dev;
	if (!d->i->register_host || !d->i->unregister_host)
		return;
	uint32_t n = 0;
	int rc = 0;
	void *buf[2 * SWARM_MAX_TENSORS];
	size_t bytes[2 * SWARM_MAX_TENSORS];
	for (uint32_t i = 0; i < x->n_in; i++) {
		buf[n] = x->bin[i];
		bytes[n++] = (x->max_batch * x->in_row[i] + 63) / 64 * 64;
	}
	for (uint32_t i = 0; i < x->n_out; i++) {
		buf[n] = x->bout[i];
		bytes[n++] = (x->max_batch * x->out_row[i] + 63) / 64 * 64;
	}
	uint32_t done = 0;
	for (; done < n && !(rc = d->i->register_host(d, buf[done], bytes[done])); done++) {
	}
	if (!rc) {
		x->pinned = 1;
		return;
	}
	while (done-- > 0)
		d->i->unregister_host(d, buf[done]);
	swarm_log(SWARM_LOG_WARN, "event=register_host_failed model=%s version=%u error=\"%s\"",
		  x->model, x->number, strerror(-rc));
}

/* Reads and parses a manifest blob into a new manifest (free it). NULL with why on failure. */
static struct swarm_manifest *load_manifest(struct worker *w, const char *sha, char *why,
					    size_t why_len)
{
	char path[PATH_MAX];
	if (!w->registry[0] || swarm_registry_blob_path(w->registry, sha, path, sizeof path)) {
		snprintf(why, why_len, "no registry to load manifest %s from", sha);
		return NULL;
	}
	struct swarm_manifest *m = malloc(sizeof *m);
	char *buf = malloc(SWARM_MANIFEST_MAX_BYTES);
	FILE *f = m && buf ? fopen(path, "rb") : NULL;
	size_t n = f ? fread(buf, 1, SWARM_MANIFEST_MAX_BYTES, f) : 0;
	if (f)
		fclose(f);
	if (!f || swarm_manifest_parse(buf, n, m, why, why_len)) {
		if (!f)
			snprintf(why, why_len, "cannot read manifest blob %.16s...", sha);
		free(m);
		m = NULL;
	}
	free(buf);
	return m;
}

/* Sends swarmd a WEIGHTS_SHARE or WEIGHTS_UNSHARE for the blob sha, with fd (-1: none). */
static void send_weights(struct worker *w, uint16_t type, const char *sha,
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
		swarm_log(SWARM_LOG_WARN, "event=weights_offer_refused sha=%.16s gpu=%d error=\"%s\"",
			  m->sha, m->gpu, strerror(-rc));
}

/* Maps the offered copy of x's blob, if swarmd offered one, into x->dw. The offer is used up
 * either way (the mapping holds its own reference). A copy that does not fit is logged and
 * left: the caller loads from the blob. */
static void take_offer(struct worker *w, struct version *x)
{
	const struct swarm_wshare_entry *o = swarm_wshare_find(&w->offers, w->gpu, x->sha);
	if (!o)
		return;
	char why[SWARM_MSG_TEXT_MAX] = "";
	int rc = swarm_dev_weights_import(w->dev, &x->w.st, o->fd, o->bytes, o->layout, &x->dw,
					  why, sizeof why);
	if (rc)
		swarm_log(SWARM_LOG_WARN,
			  "event=weights_import_failed model=%s version=%u sha=%.16s error=\"%s\" "
			  "fallback=upload",
			  x->model, x->number, x->sha, why);
	swarm_wshare_drop(&w->offers, -1, x->sha); /* closes its fd */
}

/* Builds x's node-list graph on the worker's device. Where the device has memory of its own
 * (a GPU) the graph reads a device copy of the blob, the first of: another loaded version's
 * of the same blob (a swap that changed only the deployment, a rollback while the old one
 * is loaded); the copy of another worker on the GPU that swarmd offered; a new one, made
 * shareable and announced to swarmd. On the CPU the graph reads the mapping. */
static int version_graph(struct worker *w, struct version *x, const struct swarm_manifest *m,
			 uint32_t rows, const struct swarm_load_opts *load,
			 struct swarm_weights_upload *up, char *why, size_t why_len)
{
	struct swarm_device *d = w->dev;
	if (d->i->host_memory)
		return swarm_graph_from_weights_load(m, &x->w, d, rows, load, &x->graph, up, why,
						     why_len);
	const char *how = "shared";
	for (struct version *o = w->versions; o && !x->dw; o = o->next)
		if (o->dw && !strcmp(o->sha, x->sha))
			x->dw = swarm_dev_weights_get(o->dw);
	if (!x->dw) {
		how = "imported";
		take_offer(w, x);
	}
	if (!x->dw) {
		how = "uploaded";
		int rc = swarm_dev_weights_load(d, &x->w, w->gpu >= 0, load, &x->dw, up, why,
						why_len);
		if (rc)
			return rc;
		int fd = -1;
		if (swarm_dev_weights_export(x->dw, &fd) == 0) {
			send_weights(w, SWARM_MSG_WEIGHTS_SHARE, x->sha, x->dw, fd);
			close(fd);
		}
	}
	swarm_log(SWARM_LOG_INFO,
		  "event=weights_device_copy model=%s version=%u sha=%.16s how=%s shareable=%d "
		  "refs=%u bytes=%llu",
		  x->model, x->number, x->sha, how, swarm_dev_weights_shared(x->dw),
		  swarm_dev_weights_refs(x->dw),
		  (unsigned long long)swarm_dev_weights_bytes(x->dw));
	return swarm_graph_from_dev_weights(m, &x->w.st, x->dw, rows, &x->graph, why, why_len);
}

/* Drops x's reference to its device copy (its graph, freed before, dropped its own). When no
 * other version here uses the blob, swarmd is told that this worker no longer offers it; the
 * memory stays for as long as other workers map it. x is not in w->versions. */
static void version_drop_weights(struct worker *w, struct version *x)
{
	if (!x->dw)
		return;
	int shared = swarm_dev_weights_shared(x->dw);
	swarm_dev_weights_put(x->dw);
	x->dw = NULL;
	for (struct version *o = w->versions; o; o = o->next)
		if (o->dw && !strcmp(o->sha, x->sha))
			return;
	if (shared && w->gpu >= 0)
		send_weights(w, SWARM_MSG_WEIGHTS_UNSHARE, x->sha, NULL, -1);
}

/* Finds or loads the version v names. Loading maps the weights blob, touches (and verifies)
 * it, and either binds a built-in graph's weights by name, dtype and shape, or plans the
 * manifest's node list on the worker's device with the weights read in place. Returns it
 * with a reference taken, or NULL with the reason in why. */
static struct version *version_load(struct worker *w, const struct swarm_msg_version *v,
				    const struct swarm_weights_hook *hook, int verify, char *why,
				    size_t why_len)
{
	char model[SWARM_NAME_MAX], sha[72];
	swarm_copy_str(model, sizeof model, v->model);
	swarm_copy_str(sha, sizeof sha, v->weights_sha);
	struct swarm_load_opts load = w->load;
	load.hook = hook;
	const struct swarm_model_desc *desc = NULL;
	if (v->builtin_id) {
		desc = swarm_builtin_by_id(v->builtin_id);
		if (!desc) {
			snprintf(why, why_len, "unknown built-in graph %u", v->builtin_id);
			return NULL;
		}
	} else if (!sha[0]) {
		snprintf(why, why_len, "a node-list graph without weights");
		return NULL;
	}
	for (struct version *x = w->versions; x; x = x->next)
		if (x->desc == desc && !strcmp(x->sha, sha) && !strcmp(x->model, model) &&
		    x->number == v->version) {
			x->refs++;
			return x;
		}
	struct version *x = calloc(1, sizeof *x);
	struct swarm_manifest *m = NULL;
	struct swarm_weights_upload up = { 0 }; /* stays zero for built-ins and backends */
	if (!x) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	memcpy(x->model, model, sizeof x->model);
	memcpy(x->sha, sha, sizeof x->sha);
	x->number = v->version;
	x->desc = desc;
	x->max_batch = v->max_batch;
	x->delay_ns = (uint64_t)v->max_queue_delay_us * 1000;
	const swarm_tensor_spec *ins, *outs;
	if (desc) {
		x->n_in = desc->n_inputs;
		x->n_out = desc->n_outputs;
		ins = desc->inputs;
		outs = desc->outputs;
	} else {
		char msha[72];
		swarm_copy_str(msha, sizeof msha, v->manifest_sha);
		if (!(m = load_manifest(w, msha, why, why_len)))
			goto err_free;
		x->n_in = m->n_inputs;
		x->n_out = m->n_outputs;
		ins = m->inputs;
		outs = m->outputs;
	}
	for (uint32_t i = 0; i < x->n_in; i++)
		x->in_row[i] = ins[i].row_bytes;
	for (uint32_t i = 0; i < x->n_out; i++)
		x->out_row[i] = outs[i].row_bytes;
	const void *ptrs[SWARM_BUILTIN_MAX_WEIGHTS] = { 0 }; /* a built-in's weights */
	if (!sha[0]) {
		for (uint32_t i = 0; i < desc->n_weights; i++)
			ptrs[i] = desc->default_weights[i];
	} else {
		char path[PATH_MAX];
		if (!w->registry[0] ||
		    swarm_registry_blob_path(w->registry, sha, path, sizeof path)) {
			snprintf(why, why_len, "no registry to load weights %s from", sha);
			goto err_free;
		}
		/* Only what computes on the mapping needs its pages touched; a GPU's upload reads
		 * the blob itself (and verifies it as it reads). */
		int touch = w->dev->i->host_memory || desc || (m && m->graph_backend[0]);
		if (swarm_weights_open(path, v->weights_bytes, sha, verify, touch, &x->w, why,
				       why_len))
			goto err_free;
		for (uint32_t i = 0; desc && i < desc->n_weights; i++) {
			const struct swarm_weight_spec *ws = &desc->weights[i];
			const struct swarm_st_tensor *t = swarm_st_find(&x->w.st, ws->name);
			int ok = t && swarm_st_to_swarm_dtype(t->dtype) == ws->dtype &&
				 t->ndim == ws->ndim;
			for (uint32_t k = 0; ok && k < ws->ndim; k++)
				ok = t->shape[k] == ws->shape[k];
			if (!ok) {
				snprintf(why, why_len,
					 "weights %s: tensor \"%s\" missing or not as %s needs",
					 sha, ws->name, desc->name);
				goto err_unload;
			}
			ptrs[i] = (const char *)x->w.map + t->offset;
		}
		if (m) {
			/* The plan covers the largest batch the version will run. */
			uint32_t rows = m->deploy.max_rows > x->max_batch ? m->deploy.max_rows :
									    x->max_batch;
			if (!rows)
				rows = 1;
			if (m->graph_backend[0] ?
				    backend_load(w, x, m, rows, why, why_len) :
				    version_graph(w, x, m, rows, &load, &up, why, why_len))
				goto err_unload;
			if (x->graph && swarm_executor_graph_take(x->graph, &x->exec)) {
				snprintf(why, why_len, "out of memory");
				goto err_unload;
			}
		}
		if (up.bytes) {
			double mbps = up.gbps * 1e3;
			swarm_stat_add(&w->stats->weights_bytes_loaded, up.bytes);
			swarm_stat_set32(&w->stats->weights_mbps_last,
					 mbps >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)mbps);
		}
		static int fallback_logged;
		if (up.fell_back && !fallback_logged++)
			swarm_log(SWARM_LOG_WARN, "event=load_mode_fallback mode=%s reason=\"%s\"",
				  swarm_load_mode_name(w->load.mode), up.note);
		/* gbps: mapping, first touch (and verify); upload_*: the copy to the device
		 * (verified as read), none on a host-memory device; mode: how it read the blob. */
		double s_ = (double)x->w.load_ns / 1e9;
		swarm_log(SWARM_LOG_INFO,
			  "event=weights_loaded model=%s version=%u bytes=%zu ms=%.2f gbps=%.2f "
			  "verified=%d graph=%s upload=%s mode=%s mode_note=\"%s\" "
			  "upload_bytes=%llu upload_copies=%u upload_ms=%.2f upload_gbps=%.2f",
			  model, x->number, x->w.bytes, s_ * 1e3,
			  s_ > 0 ? (double)x->w.bytes / s_ / 1e9 : 0.0, verify,
			  desc ? desc->name : x->exec->i->kind,
			  !up.bytes   ? "none" :
			  up.streamed ? "streamed" :
					"plain",
			  up.bytes ? swarm_load_mode_name(up.mode) : "none", up.note,
			  (unsigned long long)up.bytes, up.copies, (double)up.ns / 1e6, up.gbps);
	}
	free(m);
	m = NULL;
	if (desc && swarm_executor_builtin(desc, ptrs, &x->exec)) {
		snprintf(why, why_len, "out of memory");
		goto err_unload;
	}
	if (x->max_batch > 1) {
		uint32_t n = x->max_batch < BATCH_MAX_REQUESTS ? x->max_batch : BATCH_MAX_REQUESTS;
		/* A staged graph copies each request's rows from its slot to the device: no
		 * gather buffers, a part table instead. */
		int parts = x->graph && swarm_graph_staged(x->graph);
		x->batch = calloc(n, sizeof *x->batch);
		int ok = x->batch != NULL;
		if (parts) {
			ok = ok && (x->parts = calloc(n, sizeof *x->parts)) &&
			     (x->part_in = calloc((size_t)n * (x->n_in + 1), sizeof *x->part_in)) &&
			     (x->part_out =
				      calloc((size_t)n * (x->n_out + 1), sizeof *x->part_out));
		}
		for (uint32_t i = 0; ok && !parts && i < x->n_in; i++)
			ok = (x->bin[i] = aligned_alloc(64, (x->max_batch * x->in_row[i] + 63) /
								    64 * 64)) != NULL;
		for (uint32_t i = 0; ok && !parts && i < x->n_out; i++)
			ok = (x->bout[i] = aligned_alloc(64, (x->max_batch * x->out_row[i] + 63) /
								     64 * 64)) != NULL;
		if (!ok) {
			snprintf(why, why_len, "out of memory for batches of %u rows",
				 x->max_batch);
			goto err_unload;
		}
		if (x->graph && !parts) /* built-ins and backends compute on the host */
			pin_batch_buffers(w, x);
		swarm_log(SWARM_LOG_INFO, "event=batching model=%s version=%u max_batch=%u path=%s",
			  x->model, x->number, x->max_batch, parts ? "slots" : "gather");
	}
	x->refs = 1;
	x->next = w->versions;
	w->versions = x;
	return x;

err_unload:
	/* The executor owns the graph once it holds it; before, the graph is still x's. */
	if (x->exec)
		swarm_executor_free(x->exec);
	else
		swarm_graph_free(x->graph);
	version_drop_weights(w, x);
	version_free_buffers(w, x);
	swarm_weights_unload(&x->w);
err_free:
	free(m);
	free(x);
	return NULL;
}

static struct version *version_get(struct worker *w, const struct swarm_msg_version *v, char *why,
				   size_t why_len)
{
	return version_load(w, v, NULL, w->verify_blobs, why, why_len);
}

/* 1 when a session of geometry g can be served by v: the same tensors, row for row, and no
 * more rows a request than v's plan takes. */
static int version_fits(const struct version *v, const struct swarm_seg_geometry *g)
{
	if (g->n_inputs != v->n_in || g->n_outputs != v->n_out)
		return 0;
	for (uint32_t i = 0; i < v->n_in; i++)
		if (g->tensor_row_bytes[i] != v->in_row[i])
			return 0;
	for (uint32_t i = 0; i < v->n_out; i++)
		if (g->tensor_row_bytes[v->n_in + i] != v->out_row[i])
			return 0;
	return v->exec->i->fits(v->exec, g->max_rows);
}

/* Runs rows rows of v by its executor. */
static int version_run(struct version *v, const void *const *in, void *const *out, uint32_t rows)
{
	return v->exec->i->run(v->exec, in, out, rows);
}

static void version_put(struct worker *w, struct version *v)
{
	if (!v || --v->refs)
		return;
	for (struct version **p = &w->versions; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	if (v->w.map)
		swarm_log(SWARM_LOG_INFO, "event=weights_unloaded model=%s version=%u bytes=%zu",
			  v->model, v->number, v->w.bytes);
	swarm_executor_free(v->exec); /* and its graph */
	version_drop_weights(w, v);
	swarm_weights_unload(&v->w);
	version_free_buffers(w, v);
	free(v);
}

/* Makes room in v's queue for every slot of a session about to use it (the ring never
 * grows on the request path). Returns 0 or -ENOMEM. */
static int queue_reserve(struct version *v, uint32_t more)
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

/* Forgets what s has waiting in v's queue (s is going away), and gives its room back. */
static void queue_purge(struct version *v, struct session *s)
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

static void session_free(struct worker *w, struct session *s)
{
	if (s->version)
		queue_purge(s->version, s);
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

/* Pushes a completion, or queues it privately when the client has not made room: the
 * worker never waits for a client. Returns 0, or -EBADMSG when the CQ indices are corrupt. */
static int complete(struct session *s, uint32_t slot, int32_t status)
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
static int32_t run_in_place(struct session *s, uint32_t slot, uint32_t flags, uint32_t rows,
			    uint64_t now)
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
	return status;
}

static void record_latency(struct worker *w, struct session *s, uint64_t stamp, uint64_t t1);

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
	uint32_t n_stamps = 0;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		uint64_t e = swarm_ring_peek(&s->sq, 0); /* read once */
		uint32_t slot = swarm_sqe_slot(e);
		if (slot >= s->geo.nslots) {
			snprintf(buf, sizeof buf, "slot id %u out of range (%u slots)", slot,
				 s->geo.nslots);
			why = buf;
			goto violation;
		}
		if (s->slot_state[slot] != SLOT_IDLE) {
			snprintf(buf, sizeof buf, "slot %u submitted while still the worker's",
				 slot);
			why = buf;
			goto violation;
		}
		s->slot_state[slot] = SLOT_RUNNING;
		/* Taken: the head moves past it before it runs, so that after a crash the
		 * recovery point tells taken requests (before it: completed, or run again by
		 * the client unless they opted out) from those never taken (after it: the next
		 * worker's). Advanced once per pass, a crash mid-pass had the next worker run
		 * the whole pass again, the completed and the opted-out ones too. */
		swarm_ring_advance(&s->sq, 1);
		uint32_t flags = swarm_sqe_flags(e), rows = swarm_sqe_rows(e);
		uint64_t stamp = 0;
		if (flags & SWARM_SQE_STAMPED)
			stamp = __atomic_load_n(
				&swarm_seg_slot(s->base, &s->geo, slot)->t_submit_ns,
				__ATOMIC_RELAXED);
		struct version *v = s->version;
		/* A request with tensors in GPU memory runs alone, never gathered. */
		if (v->max_batch > 1 && rows >= 1 && rows <= s->geo.max_rows &&
		    !(flags & SWARM_SQE_DEVICE)) {
			/* Waits for its batch; completed by run_batches. */
			v->q[(v->q_head + v->q_n++) % v->q_cap] =
				(struct queued){ s, slot, rows, flags, t0, stamp };
			v->q_rows += rows;
			continue;
		}
		int32_t status = run_request(w, s, slot, flags, rows, t0);
		if (stamp && n_stamps < SAMPLES_PER_PASS)
			stamps[n_stamps++] = stamp;
		if (complete(s, slot, status)) {
			why = "completion queue indices are corrupt";
			goto violation;
		}
	}
	wake_client(s);
	uint64_t t1 = swarm_now_ns();
	swarm_stat_set32(&s->stats->in_flight, 0);
	swarm_stat_add(&w->stats->busy_ns, t1 - t0);
	/* The pass's end stands for each request's completion. */
	for (uint32_t i = 0; i < n_stamps; i++)
		record_latency(w, s, stamps[i], t1);
	return (int)n + moved;

violation:
	session_violation(w, s, why);
	return -1;
}

/* Records one latency sample of a request stamped by its client. */
static void record_latency(struct worker *w, struct session *s, uint64_t stamp, uint64_t t1)
{
	/* The client's clock is the same CLOCK_MONOTONIC; a hostile value only skews its own
	 * figures, and one out of range is dropped. */
	if (stamp && stamp <= t1 && t1 - stamp < 60000000000ull) {
		swarm_hist_add(&s->stats->latency, t1 - stamp);
		swarm_hist_add(&w->stats->latency, t1 - stamp);
	}
}

/* Runs the k requests in v->batch as one batch: expired ones complete with -ETIMEDOUT, a
 * lone request runs in place in its slot, more run once as one batch: on a staged device
 * straight from their slots (one part each), else gathered into v's buffers and scattered
 * back. Every client whose request completed is woken once. */
static void exec_batch(struct worker *w, struct version *v, uint32_t k, uint64_t now)
{
	struct queued *b = v->batch;
	int32_t status[BATCH_MAX_REQUESTS]; /* k <= BATCH_MAX_REQUESTS: run_version_batches */
	uint32_t live = 0, rows = 0;
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
			rows += b[i].rows;
		}
	}
	if (live == 1) {
		for (uint32_t i = 0; i < k; i++)
			if (status[i] == 1)
				status[i] =
					run_in_place(b[i].s, b[i].slot, b[i].flags, b[i].rows, now);
	} else if (live > 1 && v->parts) {
		/* Each live request's slot is its part: the device copies it in and out. */
		uint32_t n = 0;
		for (uint32_t i = 0; i < k; i++) {
			if (status[i] != 1)
				continue;
			struct session *s = b[i].s;
			char *base = (char *)swarm_seg_slot(s->base, &s->geo, b[i].slot);
			const void **in = &v->part_in[(size_t)n * v->n_in];
			void **out = &v->part_out[(size_t)n * v->n_out];
			for (uint32_t t = 0; t < v->n_in; t++)
				in[t] = base + s->geo.tensor_offset[t];
			for (uint32_t t = 0; t < v->n_out; t++)
				out[t] = base + s->geo.tensor_offset[v->n_in + t];
			v->parts[n++] = (struct swarm_graph_part){ in, out, b[i].rows };
		}
		int rc = swarm_graph_run_parts(v->graph, v->parts, n);
		for (uint32_t i = 0; i < k; i++)
			if (status[i] == 1)
				status[i] = rc;
		swarm_stat_add(&w->stats->batches, 1);
	} else if (live > 1) {
		/* Gather: each request's rows after the previous one's, input by input. */
		uint64_t at = 0;
		for (uint32_t i = 0; i < k; i++) {
			if (status[i] != 1)
				continue;
			struct session *s = b[i].s;
			char *base = (char *)swarm_seg_slot(s->base, &s->geo, b[i].slot);
			for (uint32_t t = 0; t < v->n_in; t++)
				memcpy((char *)v->bin[t] + at * v->in_row[t],
				       base + s->geo.tensor_offset[t], b[i].rows * v->in_row[t]);
			at += b[i].rows;
		}
		int rc = version_run(v, (const void *const *)v->bin, v->bout, rows);
		at = 0;
		for (uint32_t i = 0; i < k; i++) {
			if (status[i] != 1)
				continue;
			struct session *s = b[i].s;
			if (rc == 0) {
				char *base = (char *)swarm_seg_slot(s->base, &s->geo, b[i].slot);
				for (uint32_t t = 0; t < v->n_out; t++)
					memcpy(base + s->geo.tensor_offset[v->n_in + t],
					       (char *)v->bout[t] + at * v->out_row[t],
					       b[i].rows * v->out_row[t]);
			}
			at += b[i].rows;
			status[i] = rc;
		}
		swarm_stat_add(&w->stats->batches, 1);
	}
	uint32_t round = ++w->batch_round;
	uint64_t t1 = swarm_now_ns();
	for (uint32_t i = 0; i < k; i++) {
		struct session *s = b[i].s;
		swarm_stat_add(&w->stats->requests, 1);
		swarm_stat_add(&s->stats->requests, 1);
		if (status[i]) {
			swarm_stat_add(&w->stats->errors, 1);
			swarm_stat_add(&s->stats->errors, 1);
		}
		/* A corrupt completion queue is found again, and the session detached, by the
		 * next serve_session; here the request simply is not delivered. */
		complete(s, b[i].slot, status[i]);
		record_latency(w, s, b[i].t_submit_ns, t1);
	}
	for (uint32_t i = 0; i < k; i++)
		if (b[i].s->woken != round) {
			b[i].s->woken = round;
			wake_client(b[i].s);
		}
	swarm_stat_add(&w->stats->busy_ns, t1 - now);
}

/* Runs v's waiting requests in batches of at most max_batch rows, oldest first, while a
 * batch is due: enough rows, the oldest waited delay_ns, no delay, or force. Returns the
 * requests run; *wait_ns gets how long until the next one is due (unchanged when none). */
static int run_version_batches(struct worker *w, struct version *v, uint64_t now, int force,
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

static int run_batches(struct worker *w, int64_t *wait_ns)
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

/* One pass over every session. Returns the requests served. */
static int serve_all(struct worker *w)
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

static int handle_attach(struct worker *w, const struct swarm_msg_attach *m, int *fds, int nfds,
			 char *why, size_t why_len)
{
	if (nfds != 3) {
		snprintf(why, why_len, "attach without its 3 descriptors");
		return -EINVAL;
	}
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
	int err = swarm_seg_map(fds[0], s->geo.segment_bytes, &s->base);
	if (err) {
		snprintf(why, why_len, "cannot map the segment: %s", strerror(-err));
		queue_purge(v, s);
		version_put(w, v);
		free(s);
		return err;
	}
	s->memfd = fds[0];
	s->sq_efd = fds[1];
	s->cq_efd = fds[2];
	s->h = s->base;
	/* Pinned once here, the slots are DMA'd to and from the GPU in place (DESIGN: zero copy
	 * to the GPU). A refusal costs speed, not correctness: copies from pageable memory work. */
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
	if (!s->slot_state || !s->pending || !s->pending_status) {
		err = -ENOMEM;
		goto err_free;
	}
	swarm_ring_consumer_init(&s->sq, &s->h->sq_head.v, &s->h->sq_tail.v,
				 (const uint64_t *)((char *)s->base + s->geo.sq_offset),
				 s->geo.queue_depth);
	swarm_ring_producer_init(&s->cq, &s->h->cq_tail.v, &s->h->cq_head.v,
				 (uint64_t *)((char *)s->base + s->geo.cq_offset), s->geo.cq_depth);
	err = swarm_loop_add(w->loop, s->sq_efd, idx);
	if (err) {
		snprintf(why, why_len, "cannot watch the session's eventfd: %s", strerror(-err));
		goto err_free;
	}
	s->stats = &w->stats->session[idx];
	memset(s->stats, 0, sizeof *s->stats);
	__atomic_store_n(&s->stats->session_id, s->id, __ATOMIC_RELAXED);
	w->sessions[idx] = s;
	s->pos = w->n_sessions;
	w->active[w->n_sessions++] = s;
	swarm_stat_set32(&w->stats->sessions, w->n_sessions);
	swarm_log(SWARM_LOG_DEBUG, "event=session_attached session=%llu model=%s slots=%u",
		  (unsigned long long)s->id, v->model, s->geo.nslots);
	return 0;

err_free:
	queue_purge(v, s);
	version_put(w, v);
	if (s->registered)
		w->dev->i->unregister_host(w->dev, s->base);
	munmap(s->base, s->geo.segment_bytes);
	free(s->slot_state);
	free(s->pending);
	free(s->pending_status);
	free(s);
	return err;
}

static struct session *find_session(struct worker *w, uint64_t id)
{
	for (uint32_t i = 0; i < w->n_sessions; i++)
		if (w->active[i]->id == id)
			return w->active[i];
	return NULL;
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
	struct session *s = find_session(w, m->session_id);
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

/* Loads m's version as the message says and keeps it loaded (one reference, for the worker's
 * life), then answers LOADED. A rank of a fan-out always takes its part in the collective, so
 * that the others are not left to time out: a root that had the version already sends from
 * it; a receiver that had it receives in place (the same blob's bytes, written over
 * themselves). A receiver skips the SHA-256 pass: the root verified the blob it sends, and the
 * receiver's point is not to read it; if its broadcast fails it copies from the registry and
 * verifies then, as a plain load does. */
static void handle_load(struct worker *w, const struct swarm_msg_load *m)
{
	struct swarm_msg_loaded r;
	swarm_msg_init(&r.h, SWARM_MSG_LOADED, sizeof r, m->h.seq);
	swarm_copy_str(r.model, sizeof r.model, m->v.model);
	r.version = m->v.version;
	uint64_t t0 = swarm_now_ns();
	struct fanout f = { .w = w, .m = m };
	f.timeout_ms = m->timeout_ms ? (int)m->timeout_ms : FANOUT_TIMEOUT_MS;
	int ranks = m->nranks >= 2 && m->rank < m->nranks && m->root < m->nranks;
	if (m->nranks >= 2 && !ranks)
		snprintf(f.note, sizeof f.note, "bad fan-out (rank %u, root %u of %u): loaded alone",
			 m->rank, m->root, m->nranks);
#ifdef SWARM_HAVE_CUDA
	if (ranks && w->gpu < 0) {
		snprintf(f.note, sizeof f.note, "a CPU device takes no part in a fan-out");
		ranks = 0;
	}
#else
	if (ranks)
		snprintf(f.note, sizeof f.note, "built without CUDA: no fan-out");
	ranks = 0;
#endif
	int root = ranks && m->rank == m->root;
	struct version *x = NULL;
	for (struct version *y = w->versions; y && !x; y = y->next)
		if (!strcmp(y->sha, m->v.weights_sha) && !strcmp(y->model, m->v.model) &&
		    y->number == m->v.version && !!y->desc == !!m->v.builtin_id)
			x = y;
	int already = x != NULL;
	if (x) {
		x->refs++;
	} else {
		struct swarm_weights_hook hook = { 0 };
#ifdef SWARM_HAVE_CUDA
		hook.ctx = &f;
		if (ranks && root)
			hook.loaded = fanout_loaded;
		else if (ranks)
			hook.fill = fanout_fill;
#endif
		int verify = ranks && !root ? 0 : w->verify_blobs;
		x = version_load(w, &m->v, ranks ? &hook : NULL, verify, r.text, sizeof r.text);
		if (x && f.fell_back && w->verify_blobs && x->w.map) {
			char hex[65];
			swarm_sha256_hex(x->w.map, x->w.bytes, hex);
			if (strcmp(hex, m->v.weights_sha)) {
				snprintf(r.text, sizeof r.text,
					 "weights changed on disk: blob %.16s... has SHA-256 %.16s...",
					 m->v.weights_sha, hex);
				version_put(w, x);
				x = NULL;
			}
		}
	}
#ifdef SWARM_HAVE_CUDA
	/* A rank whose weights did not go through an upload here (the version was loaded, or
	 * its device copy came from another version of the blob or from another worker on the
	 * GPU) takes its part all the same (see above). */
	if (x && ranks && !f.tried) {
		if (x->dw && !fanout_broadcast(&f, swarm_dev_weights_base(x->dw),
					       swarm_dev_weights_bytes(x->dw)))
			f.sent = root, f.received = !root;
		else if (!x->dw && !f.note[0])
			snprintf(f.note, sizeof f.note,
				 "the version has no device weights to broadcast");
	}
#endif
	if (x && !x->preloaded) {
		x->preloaded = 1; /* the reference taken above stays */
		/* Another version of the model preloaded before (the active one moved on) is
		 * let go: its sessions, if any, keep it until they switch. */
		for (struct version *y = w->versions; y;) {
			struct version *next = y->next;
			if (y != x && y->preloaded && !strcmp(y->model, x->model)) {
				y->preloaded = 0;
				version_put(w, y);
			}
			y = next;
		}
	} else if (x) {
		version_put(w, x); /* preloaded before: it holds one already */
	}
	r.status = x ? 0 : -EBADMSG;
	r.how = !x           ? 0 :
		f.received   ? SWARM_LOAD_RECEIVED :
		f.sent       ? SWARM_LOAD_SENT :
		already      ? SWARM_LOAD_ALREADY :
			       SWARM_LOAD_REGISTRY;
	r.bytes = x && x->dw ? swarm_dev_weights_bytes(x->dw) : 0;
	r.ns = swarm_now_ns() - t0;
	r.gbps = f.gbps;
	if (x && f.note[0])
		swarm_copy_str(r.text, sizeof r.text, f.note);
	static const char *const how[] = { "failed", "registry", "received", "sent", "already" };
	swarm_log(x ? SWARM_LOG_INFO : SWARM_LOG_WARN,
		  "event=preloaded model=%s version=%u how=%s ranks=%u rank=%u bytes=%llu ms=%.1f "
		  "gbps=%.2f%s%s%s",
		  r.model, r.version, how[r.how], ranks ? m->nranks : 1, ranks ? m->rank : 0,
		  (unsigned long long)r.bytes, (double)r.ns / 1e6, r.gbps,
		  r.text[0] ? " note=\"" : "", r.text, r.text[0] ? "\"" : "");
	ctl_send(w, &r, sizeof r, NULL, 0);
}

/* Lets a session go at a request boundary because it moves to another worker: what it has
 * waiting in a batch runs now, and its completions are pushed while the client has room.
 * What cannot be pushed (a client that does not read its completions) is dropped: the
 * client runs those requests again on the new worker (docs/balancing.md). After this the
 * worker no longer touches the segment. */
static void session_hand_over(struct worker *w, struct session *s)
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

/* Handles every message waiting on the control socket. Returns -1 when swarmd is gone. */
static int handle_ctl(struct worker *w)
{
	for (;;) {
		union {
			struct swarm_msg_hdr h;
			struct swarm_msg_attach attach;
			struct swarm_msg_detach detach;
			struct swarm_msg_switch sw;
			struct swarm_msg_load load;
			struct swarm_msg_weights weights;
		} m;
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
		int type = swarm_msg_check(&m, (size_t)n);
		if (type == SWARM_MSG_ATTACH) {
			char why[SWARM_MSG_TEXT_MAX] = "";
			int err = handle_attach(w, &m.attach, fds, nfds, why, sizeof why);
			if (err) {
				swarm_log(SWARM_LOG_WARN,
					  "event=attach_failed session=%llu error=\"%s\"",
					  (unsigned long long)m.attach.session_id, why);
				for (int i = 0; i < nfds; i++)
					close(fds[i]);
			}
			struct swarm_msg_attach_reply r;
			swarm_msg_init(&r.h, SWARM_MSG_ATTACH_REPLY, sizeof r, m.h.seq);
			r.session_id = m.attach.session_id;
			r.status = err;
			swarm_copy_str(r.text, sizeof r.text, why);
			ctl_send(w, &r, sizeof r, NULL, 0);
			continue;
		}
		if (type == SWARM_MSG_WEIGHTS_OFFER && nfds == 1) {
			keep_offer(w, &m.weights, fds[0]);
			continue;
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (type == SWARM_MSG_SWITCH) {
			handle_switch(w, &m.sw);
		} else if (type == SWARM_MSG_LOAD) {
			handle_load(w, &m.load);
		} else if (type == SWARM_MSG_DETACH) {
			struct session *s = find_session(w, m.detach.session_id);
			int moving = (m.detach.flags & SWARM_DETACH_MOVE) != 0;
			if (s && moving)
				session_hand_over(w, s);
			if (s)
				session_free(w, s);
			send_detached(w, m.detach.session_id, 0, moving ? "moved" : "closed");
		} else {
			swarm_log(SWARM_LOG_WARN, "event=ctl_bad_message result=%d", type);
		}
	}
}

/* swarmd is gone: sessions already attached keep being served (docs/control-plane.md), and
 * the worker leaves once it holds none, since no new one can arrive. */
static void swarmd_lost(struct worker *w)
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

/* swarmd is gone, so no DETACH will come: a session whose client has exited (its pidfd
 * readable), or whose client swarmd did not know, is let go here, and the worker leaves once
 * it holds none. Before, a worker holding a session of a dead client outlived a killed
 * swarmd for as long as nobody stopped it. Called every tick while swarmd is gone. */
static void reap_orphans(struct worker *w)
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

/* Handles what the loop reports. Returns how many events were more than a timer tick. */
static int handle_events(struct worker *w, int64_t timeout_ns)
{
	uint64_t tags[MAX_EVENTS];
	int n = swarm_loop_wait(w->loop, timeout_ns, tags, MAX_EVENTS);
	int work = 0;
	for (int i = 0; i < n; i++) {
		work += tags[i] != TAG_TIMER;
		if (tags[i] == TAG_CTL) {
			if (handle_ctl(w) < 0)
				swarmd_lost(w);
		} else if (tags[i] == TAG_TIMER) {
			uint64_t ticks;
			if (read(w->timer, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
				swarm_log(SWARM_LOG_WARN, "event=timer_error");
			__atomic_store_n(&w->stats->heartbeat_ns, swarm_now_ns(), __ATOMIC_RELAXED);
			if (w->ctl < 0)
				reap_orphans(w);
		}
		/* A session's eventfd needs no read: the pass after the wake-up serves its
		 * queue, and both backends report each new write (multishot poll, EPOLLET), so
		 * the counter only grows, by one per sleep of the worker. That saves a system
		 * call per wake-up. */
	}
	/* replies that found swarmd's socket full go now if it takes them */
	if (w->ctl >= 0 && swarm_outbox_pending(&w->out) && swarm_outbox_flush(&w->out, w->ctl) < 0)
		swarmd_lost(w);
	return work;
}

static void set_sleep_flags(struct worker *w, uint32_t v)
{
	for (uint32_t i = 0; i < w->n_sessions; i++)
		__atomic_store_n(&w->active[i]->h->worker_sleep.v, v, __ATOMIC_RELAXED);
}

static int any_ready(struct worker *w)
{
	for (uint32_t i = 0; i < w->n_sessions; i++) {
		struct session *s = w->active[i];
		if (swarm_ring_available(&s->sq) != 0 || s->n_pending)
			return 1;
	}
	return 0;
}

static void run(struct worker *w)
{
	uint64_t idle_since = 0;
	uint32_t pass = 0;
	int cheap = swarm_loop_cheap_peek(w->loop);
	while (!w->stop && !g_stop) {
		int64_t wait_ns = -1; /* until the next batch is due; -1: none waits */
		int served = serve_all(w);
		served += run_batches(w, &wait_ns);
		pass++;
		if (served) {
			idle_since = 0;
			if (cheap || (pass & 255) == 0)
				handle_events(w, 0);
			continue;
		}
		uint64_t now = swarm_now_ns();
		if (!idle_since)
			idle_since = now;
		if (now - idle_since < w->spin_ns) {
			swarm_cpu_relax();
			if (cheap || (pass & 255) == 0)
				handle_events(w, 0);
			continue;
		}
		/* Sleep: announce it in every session, fence, look once more (the handshake;
		 * pairs with the client's push, fence, load of worker_sleep). */
		set_sleep_flags(w, 1);
		swarm_fence();
		int woken_by_work = 1;
		if (!any_ready(w))
			woken_by_work = handle_events(w, wait_ns) > 0;
		set_sleep_flags(w, 0);
		/* A housekeeping tick alone does not earn a new spin budget: sleep again. */
		if (woken_by_work)
			idle_since = 0;
	}
}

/* The CUDA device on GPU ordinal, or -errno with why in why ("no CUDA GPU: ..."). */
static int open_gpu(int ordinal, struct swarm_device **out, char *why, size_t why_len)
{
	int err = swarm_device_cuda_create(ordinal, out);
	if (!err)
		return 0;
#ifdef SWARM_HAVE_CUDA
	const char *detail = swarm_cuda_last_error();
#else
	const char *detail = "";
#endif
	if (err == -ENOTSUP)
		snprintf(
			why, why_len,
			"no CUDA GPU: CUDA is not built into this swarm-worker (configured without "
			"nvcc or with -DSWARM_CUDA=OFF)");
	else
		snprintf(why, why_len, "no CUDA GPU: cannot open GPU %d: %s%s%s", ordinal,
			 detail && *detail ? detail : "", detail && *detail ? "; " : "",
			 strerror(-err));
	return err;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm-worker --ctl-fd N --stats-fd N --device-index N --name NAME\n"
		"                    --cpus LIST [--numa NODE] [--gpu ORDINAL] [--spin-us N]\n"
		"                    [--log-level L]\n"
		"Serves one device for swarmd, which starts it; not meant to be run by hand.\n"
		"  --ctl-fd N      the control socket inherited from swarmd\n"
		"  --stats-fd N    the stats page memfd inherited from swarmd\n"
		"  --cpus LIST     cores to bind to (cpulist, e.g. 0-3)\n"
		"  --gpu ORDINAL   run node-list graphs on CUDA GPU ORDINAL (default: on the CPU\n"
		"                  device, with a thread per bound core); exits 3 with the reason\n"
		"                  logged when that GPU cannot be opened\n"
		"  --numa NODE     NUMA node for memory (-1: leave it)\n"
		"  --spin-us N     spin this long with nothing to do before sleeping (default 50)\n"
		"  --registry DIR  the model registry to load weights blobs from\n"
		"  --no-verify     do not check a blob's SHA-256 when loading it\n"
		"  --load-mode M   how a GPU's weights are read: auto (default), mmap, pread,\n"
		"                  direct or register (docs/registry.md, \"Loading\")\n"
		"  --backend-dir D where manifests' custom backends named without a path are\n"
		"                  found\n"
		"Environment: SWARM_NO_IO_URING=1 uses epoll in place of io_uring (and no\n"
		"io_uring for direct loads); SWARM_LOAD_MODE=M as --load-mode (the option wins);\n"
		"SWARM_LOAD_THREADS=N pread threads (default: the bound cores, at most 16).\n"
		"SWARM_WORKER_STAGED=1 (tests only; without --gpu) runs node-list graphs on the\n"
		"staged CPU device, whose memory is its own, as a GPU's is.\n");
}

int main(int argc, char **argv)
{
	struct worker w = { .ctl = -1,
			    .numa_node = -1,
			    .spin_ns = 50000,
			    .device_index = -1,
			    .verify_blobs = 1,
			    .gpu = -1 };
	swarm_wshare_init(&w.offers);
	int stats_fd = -1, level = SWARM_LOG_INFO;
	const char *load_mode = getenv("SWARM_LOAD_MODE");
	static const struct option opts[] = { { "ctl-fd", required_argument, 0, 'c' },
					      { "stats-fd", required_argument, 0, 's' },
					      { "device-index", required_argument, 0, 'd' },
					      { "name", required_argument, 0, 'n' },
					      { "cpus", required_argument, 0, 'C' },
					      { "numa", required_argument, 0, 'N' },
					      { "spin-us", required_argument, 0, 'S' },
					      { "log-level", required_argument, 0, 'l' },
					      { "registry", required_argument, 0, 'r' },
					      { "no-verify", no_argument, 0, 'V' },
					      { "backend-dir", required_argument, 0, 'B' },
					      { "gpu", required_argument, 0, 'G' },
					      { "load-mode", required_argument, 0, 'L' },
					      { "help", no_argument, 0, 'h' },
					      { 0, 0, 0, 0 } };
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		switch (o) {
		case 'c':
			w.ctl = atoi(optarg);
			break;
		case 's':
			stats_fd = atoi(optarg);
			break;
		case 'd':
			w.device_index = atoi(optarg);
			break;
		case 'n':
			swarm_copy_str(w.name, sizeof w.name, optarg);
			break;
		case 'C':
			swarm_copy_str(w.cpus, sizeof w.cpus, optarg);
			break;
		case 'N':
			w.numa_node = atoi(optarg);
			break;
		case 'S':
			w.spin_ns = strtoull(optarg, NULL, 10) * 1000;
			break;
		case 'l':
			level = swarm_log_parse_level(optarg);
			break;
		case 'r':
			swarm_copy_str(w.registry, sizeof w.registry, optarg);
			break;
		case 'V':
			w.verify_blobs = 0;
			break;
		case 'B':
			swarm_copy_str(w.backend_dir, sizeof w.backend_dir, optarg);
			break;
		case 'G': {
			char *end;
			long g = strtol(optarg, &end, 10);
			if (!*optarg || *end || g < 0 || g > INT_MAX) {
				fprintf(stderr,
					"swarm-worker: --gpu takes an ordinal, not \"%s\"\n",
					optarg);
				return 2;
			}
			w.gpu = (int)g;
			break;
		}
		case 'L':
			load_mode = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	swarm_log_init("worker", level < 0 ? SWARM_LOG_INFO : level);
	if (load_mode && *load_mode && (w.load.mode = swarm_load_mode_parse(load_mode)) < 0) {
		fprintf(stderr,
			"swarm-worker: --load-mode takes auto, mmap, pread, direct or "
			"register, not \"%s\"\n",
			load_mode);
		return 2;
	}
	if (w.ctl < 0 || stats_fd < 0 || w.device_index < 0 || !w.cpus[0]) {
		usage(stderr);
		return 2;
	}
	/* Bind first: everything allocated after this lands on the device's node. */
	char note[SWARM_MSG_TEXT_MAX];
	int err = swarm_topology_bind_self(w.cpus, w.numa_node, note, sizeof note);
	if (err)
		swarm_log(SWARM_LOG_WARN, "event=bind_failed cpus=%s error=\"%s\"", w.cpus, note);
	if (swarm_stats_map(stats_fd, &w.stats)) {
		swarm_log(SWARM_LOG_ERROR, "event=stats_map_failed");
		return 1;
	}
	close(stats_fd);
	w.stats->pid = getpid();
	w.stats->device_index = w.device_index;
	w.stats->magic = SWARM_STATS_MAGIC;

	if (w.gpu >= 0) {
		char why[320];
		err = open_gpu(w.gpu, &w.dev, why, sizeof why);
		if (err) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=device_failed device=%s gpu=%d reason=\"%s\"", w.name,
				  w.gpu, why);
			return SWARM_WORKER_EXIT_NO_DEVICE;
		}
		swarm_log(SWARM_LOG_INFO, "event=device_open device=%s kind=%s gpu=%d", w.name,
			  w.dev->i->name ? w.dev->i->name : "?", w.gpu);
	} else {
		/* Node-list graphs run on the CPU device, its threads on the cores bound above. */
		cpu_set_t cpus;
		int threads = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
		/* SWARM_WORKER_STAGED=1: the staged CPU device, a test device whose memory is
		 * its own, so that the GPU's batch path runs without a GPU (docs/devices.md). */
		const char *staged = getenv("SWARM_WORKER_STAGED");
		threads = threads > 0 ? threads : 1;
		err = staged && *staged == '1' ?
			      swarm_device_staged_cpu_create(threads, 0, &w.dev) :
			      swarm_device_cpu_create(threads, &w.dev);
		if (!err && w.dev->i->host_memory == 0)
			swarm_log(SWARM_LOG_INFO,
				  "event=device_open device=%s kind=%s note=\"a test device\"",
				  w.name, w.dev->i->name);
		if (err) {
			swarm_log(SWARM_LOG_ERROR, "event=device_failed error=\"%s\"",
				  strerror(-err));
			return 1;
		}
	}
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	const char *no_uring = getenv("SWARM_NO_IO_URING");
	const char *load_threads = getenv("SWARM_LOAD_THREADS");
	/* After binding: the default counts the cores bound to. */
	w.load.threads = load_threads && atoi(load_threads) > 0 ? (unsigned)atoi(load_threads) :
								  swarm_load_default_threads();
	w.load.no_uring = no_uring && *no_uring == '1';
	err = swarm_loop_create(no_uring && *no_uring == '1', &w.loop);
	if (err) {
		swarm_log(SWARM_LOG_ERROR, "event=loop_failed error=\"%s\"", strerror(-err));
		return 1;
	}
	w.timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	if (w.timer < 0 || timerfd_settime(w.timer, 0, &its, NULL) < 0 ||
	    swarm_loop_add(w.loop, w.timer, TAG_TIMER) || swarm_loop_add(w.loop, w.ctl, TAG_CTL)) {
		swarm_log(SWARM_LOG_ERROR, "event=loop_setup_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	int fl = fcntl(w.ctl, F_GETFL);
	if (fl < 0 || fcntl(w.ctl, F_SETFL, fl | O_NONBLOCK) < 0) {
		swarm_log(SWARM_LOG_ERROR, "event=ctl_fd_invalid fd=%d", w.ctl);
		return 1;
	}

	struct swarm_msg_worker_ready ready;
	swarm_msg_init(&ready.h, SWARM_MSG_WORKER_READY, sizeof ready, 0);
	ready.device_index = w.device_index;
	ready.pid = getpid();
	ready.numa_node = w.numa_node;
	ready.io_backend = swarm_loop_backend(w.loop);
	/* What the kernel gives back, not what was asked: swarm topo and its test compare
	 * these with /proc. */
	if (swarm_topology_read_binding(ready.cpus, sizeof ready.cpus, ready.mem_policy,
					sizeof ready.mem_policy))
		swarm_copy_str(ready.cpus, sizeof ready.cpus, w.cpus);
	swarm_copy_str(ready.text, sizeof ready.text, note);
	swarm_log(SWARM_LOG_INFO,
		  "event=worker_ready device=%s cpus=%s numa=%d io=%s mem=\"%s\" bind=\"%s\"",
		  w.name, ready.cpus, w.numa_node,
		  ready.io_backend == SWARM_LOOP_IO_URING ? "io_uring" : "epoll", ready.mem_policy,
		  note);
	if (ctl_send(&w, &ready, sizeof ready, NULL, 0)) {
		swarm_log(SWARM_LOG_ERROR, "event=ctl_send_failed");
		return 1;
	}
	run(&w);
	while (w.n_sessions)
		session_free(&w, w.active[0]);
	/* What is left is held by preloads (LOAD), one reference each. */
	for (struct version *v = w.versions, *next; v; v = next) {
		next = v->next;
		if (v->preloaded) {
			v->preloaded = 0;
			version_put(&w, v);
		}
	}
	swarm_loop_destroy(w.loop);
	w.dev->i->destroy(w.dev);
	close(w.timer);
	if (w.ctl >= 0)
		close(w.ctl);
	swarm_stats_unmap(w.stats);
	swarm_log(SWARM_LOG_INFO, "event=worker_exit device=%s", w.name);
	return 0;
}
