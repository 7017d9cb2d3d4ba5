/* worker.h: the hub of swarm-worker, one process per device in service, started by swarmd.
 *
 * The worker binds itself to its device's cores and NUMA node before it allocates anything,
 * then runs one event loop: it drains ready requests from every attached session, runs them,
 * completes them, and sleeps (io_uring, else epoll) only after a spin budget with nothing to
 * do. Sessions arrive and leave through messages on the control socket from swarmd.
 *
 * The worker trusts nothing in a segment: the geometry comes from swarmd, every field of a
 * request is read once into a local and checked, and a session whose queue indices make no
 * sense is detached. A client can only break its own session.
 *
 * This header holds the state the modules share and the calls they make across:
 *   main.c     options, binding, the device, start and exit
 *   loop.c     the worker's state set up and torn down, and the main loop
 *   ctl.c      messages from and to swarmd, one handler per message type
 *   version.c  model versions held: loading, fitting, releasing
 *   serve.c    sessions: attach, requests run in place or on the device, completions
 *   batcher.c  the batch queue of a version and the ways a batch runs
 * Everything runs on the worker's one thread; nothing here is thread-safe.
 */
#ifndef SWARM_RUNTIME_WORKER_WORKER_H
#define SWARM_RUNTIME_WORKER_WORKER_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/outbox.h"
#include "ipc/proto.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "kernels/builtin.h"
#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "runtime/event_loop.h"
#include "runtime/executor.h"
#include "runtime/stats.h"
#include "runtime/weight_share.h"
#include "swarm/swarm.h"

/* Loop tags: the control socket, the timer, and sessions by their table index. */
#define TAG_CTL 0xffff0001ull
#define TAG_TIMER 0xffff0002ull
#define BATCH_MAX_REQUESTS 1024 /* requests in one batch (their statuses live on the stack) */
#define IPC_CACHE 16            /* clients' GPU allocations kept open per session */
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
	/* its entry in the stats page's model table (runtime/stats.h): what the metrics count
	 * per model and version; NULL only for a worker without a stats page */
	struct swarm_model_stats *ms;
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
	int pinned;    /* bin and bout are registered with the device (register_host) */
	int preloaded; /* held by a LOAD (--preload): one of refs, kept for the worker's life */
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
	/* swarmd's workers keep a version loaded when nothing holds it, until swarmd's UNLOAD
	 * (docs/placement.md); 0 (tests that drive a worker alone): the last reference unloads */
	int keep_idle;
	struct swarm_load_opts load; /* how a GPU's weights are read (--load-mode) */
	/* other workers' device copies of blobs that swarmd offered (WEIGHTS_OFFER) before the
	 * attach that needs them, kept until a load takes them: the broker's table, keyed by
	 * (GPU, SHA), exporter -1 */
	struct swarm_wshare offers;
	volatile sig_atomic_t stop;
};

/* ---- loop.c: the worker's state and its main loop ------------------------------------ */

/* Set by SIGTERM and SIGINT (main.c's handler); the loop reads it after every pass. */
extern volatile sig_atomic_t worker_sigterm;

/* Gives w the defaults main starts from: no swarmd (ctl -1), the CPU (gpu -1), no NUMA
 * binding, a 50 us spin budget, blobs verified, an empty offer table. */
void worker_defaults(struct worker *w);

/* Creates w's event loop (epoll when force_epoll) and its housekeeping timer, and watches
 * them and w->ctl, made non-blocking. w->dev and w->stats must be set. Returns 0 or -errno,
 * logged; worker_fini undoes what was done. */
int worker_open_loop(struct worker *w, int force_epoll);

/* Sets w up without swarmd, for the tests and the fuzzer: worker_defaults, the CPU device
 * with one thread, a fresh stats page, the loop on epoll, ctl (-1: none) as the control
 * socket, which w then owns. Returns 0 or -errno; release with worker_fini. */
int worker_init_bare(struct worker *w, int ctl);

/* Lets go of every session and of the versions held by LOADs, and of swarmd's offers: what
 * the worker holds for others. w stays usable (the tests and the fuzzer reuse it). */
void worker_release(struct worker *w);

/* worker_release, then the loop, the timer, the device, ctl and the stats page. */
void worker_fini(struct worker *w);

/* Serves until w->stop or worker_sigterm: passes over the sessions and batches while there
 * is work, spinning spin_ns, then sleeping in the loop. */
void worker_run(struct worker *w);

/* ---- ctl.c: messages from and to swarmd ------------------------------------------------ */

/* Sends a message to swarmd. Nothing is dropped when the socket is full: it waits in w->out
 * and goes at the loop's next pass. A swarmd that stopped reading is treated as gone.
 * Returns 0 or -errno (-ENOTCONN without swarmd). */
int ctl_send(struct worker *w, const void *msg, size_t len, const int *fds, int nfds);

/* Tells swarmd that session id left this worker: reason 0 when asked, -EBADMSG for a
 * protocol violation. */
void send_detached(struct worker *w, uint64_t id, int reason, const char *text);

/* Sends swarmd a WEIGHTS_SHARE or WEIGHTS_UNSHARE for the blob sha, with fd (-1: none). */
/* RESIDENCY to swarmd: model@version loaded (1) or let go (0), with its bytes. */
void send_residency(struct worker *w, const char *model, uint32_t version, int loaded,
		    const char *sha, uint64_t weights_bytes, uint64_t other_bytes);
void send_weights(struct worker *w, uint16_t type, const char *sha,
		  const struct swarm_dev_weights *dw, int fd);

/* swarmd is gone: sessions already attached keep being served, and the worker leaves once it
 * holds none, since no new one can arrive. */
void swarmd_lost(struct worker *w);

/* Handles one received control message of n bytes and the nfds descriptors that came with
 * it, which it takes (keeps or closes) in every case. Any bytes are safe: what is not a
 * well-formed message of a type the worker handles is logged and dropped. Replies go
 * through ctl_send. Needs no running swarmd (w->ctl may be -1). */
void worker_ctl_handle(struct worker *w, const void *buf, size_t n, int *fds, int nfds);

/* Handles every message waiting on the control socket. Returns 0, or -1 when swarmd is
 * gone. */
int worker_ctl_drain(struct worker *w);

/* ---- version.c: model versions held ------------------------------------------------------ */

/* Finds or loads the version v names, with the loader hook (NULL: none) and verify deciding
 * whether the blob's SHA-256 is checked. Returns it with a reference taken, or NULL with the
 * reason in why. */
struct version *version_load(struct worker *w, const struct swarm_msg_version *v,
			     const struct swarm_weights_hook *hook, int verify, char *why,
			     size_t why_len);

/* version_load as sessions need it: no hook, verified as --no-verify says. */
struct version *version_get(struct worker *w, const struct swarm_msg_version *v, char *why,
			    size_t why_len);

/* Holds exec as the version v names (model, weights_sha, version, and its batching), with the
 * tensors of geometry g: what version_load does once it has made an executor, for tests
 * that run a fake one. On success the version owns exec (freed with it) and has one
 * reference; NULL with why when out of memory (exec is still the caller's). */
struct version *version_adopt(struct worker *w, const struct swarm_msg_version *v,
			      struct swarm_executor *exec, const struct swarm_seg_geometry *g,
			      char *why, size_t why_len);

/* 1 when a session of geometry g can be served by v: the same tensors, row for row, and no
 * more rows a request than v's plan takes. */
int version_fits(const struct version *v, const struct swarm_seg_geometry *g);

/* Drops a reference to v (NULL: nothing). The last one unloads it, or, with w->keep_idle
 * (swarmd's workers), leaves it loaded and idle until version_drop. */
void version_put(struct worker *w, struct version *v);

/* UNLOAD: unloads the idle versions model@number. Returns 0, -ENOENT (none loaded), or -EBUSY
 * (a session or preload holds one; it stays). */
int version_drop(struct worker *w, const char *model, uint32_t number);

/* Drops the reference a LOAD took on model@number (its preload), if one did. */
void version_unpin(struct worker *w, const char *model, uint32_t number);

/* Unloads every idle version (at the worker's end). */
void versions_free_idle(struct worker *w);

/* One more (delta 1) or one fewer (-1) session uses v: its model's sessions gauge. */
static inline void version_count_session(struct version *v, int delta)
{
	if (v && v->ms)
		swarm_stat_set32(&v->ms->sessions,
				 __atomic_load_n(&v->ms->sessions, __ATOMIC_RELAXED) +
					 (uint32_t)delta);
}

/* Runs rows rows of v by its executor. Returns 0 or -errno. */
static inline int version_run(struct version *v, const void *const *in, void *const *out,
			      uint32_t rows)
{
	return v->exec->i->run(v->exec, in, out, rows);
}

/* ---- serve.c: sessions and their requests -------------------------------------------------- */

/* Attaches the session of m with its three descriptors (segment memfd, submit and complete
 * eventfds), which it owns on success; on failure the caller still owns and closes them.
 * Returns 0 or -errno with the reason in why. */
int session_attach(struct worker *w, const struct swarm_msg_attach *m, const int *fds, char *why,
		   size_t why_len);

/* The attached session of that id, or NULL. */
struct session *session_find(struct worker *w, uint64_t id);

/* Lets s go (its version reference, its queue entries, its mapping and descriptors); s is
 * invalid after it. A worker without swarmd stops once it holds no session. */
void session_free(struct worker *w, struct session *s);

/* Lets a session go at a request boundary because it moves to another worker: its batched
 * requests run now and its completions are pushed while the client has room. */
void session_hand_over(struct worker *w, struct session *s);

/* Wakes s's client if it sleeps: after completions, or when the session dies. */
void wake_client(struct session *s);

/* Pushes a completion, or queues it privately when the client has not made room: the
 * worker never waits for a client. Returns 0, or -EBADMSG when the CQ indices are corrupt. */
int session_complete(struct session *s, uint32_t slot, int32_t status);

/* Runs one request in its slot (rows and flags already read from its entry). now is when
 * its pass took it, for its deadline. Returns its status. */
int32_t run_in_place(struct session *s, uint32_t slot, uint32_t flags, uint32_t rows, uint64_t now);

/* Records one latency sample of a request stamped by its client (0: none), completed at t1. */
void record_latency(struct worker *w, struct session *s, uint64_t stamp, uint64_t t1);

/* One pass over every session: takes, runs (or queues for a batch) and completes what is
 * ready. Returns the requests served. */
int serve_all(struct worker *w);

/* With swarmd gone, lets go of the sessions whose client has exited or is unknown. */
void reap_orphans(struct worker *w);

/* ---- batcher.c: dynamic batching ----------------------------------------------------------- */

/* Makes room in v's queue for every slot of a session about to use it (the ring never
 * grows on the request path). Returns 0 or -ENOMEM. */
int queue_reserve(struct version *v, uint32_t more);

/* Forgets what s has waiting in v's queue (s is going away), and gives its room back. */
void queue_purge(struct version *v, struct session *s);

/* Queues a request to wait for its batch; queue_reserve made room for it. */
void queue_push(struct version *v, const struct queued *e);

/* Runs v's waiting requests in batches of at most max_batch rows, oldest first, while a
 * batch is due: enough rows, the oldest waited delay_ns, no delay, or force. Returns the
 * requests run; *wait_ns gets how long until the next one is due (unchanged when none). */
int run_version_batches(struct worker *w, struct version *v, uint64_t now, int force,
			int64_t *wait_ns);

/* run_version_batches over every version with requests waiting. */
int run_batches(struct worker *w, int64_t *wait_ns);

#endif /* SWARM_RUNTIME_WORKER_WORKER_H */
