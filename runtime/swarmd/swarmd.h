/* swarmd.h: the hub of swarmd's modules (runtime/swarmd/). swarmd is the control plane: it
 * listens on a unix SOCK_SEQPACKET socket, starts one swarm-worker per device and watches it
 * through a pidfd, creates a sealed segment for every session, puts the session on a device
 * chosen by the balancer, and hands the segment and its eventfds to the client and the worker
 * with SCM_RIGHTS. It never touches a tensor.
 *
 * The modules, each owning its own state (docs/control-plane.md, "swarmd's modules"):
 *   main.c        start, the event loop (runtime/event_loop.c), shut-down
 *   options.c     the command line, into cfg
 *   ctl_server.c  the listening socket, credentials, one handler per client message
 *   status.c      `swarm status` and `swarm device drain|resume`
 *   supervisor.c  starting, watching and restarting workers; one handler per worker message
 *   sessions.c    open, pending opens, close, limits
 *   placement.c   where sessions are served: pick, rebalance, moves, the placement seqlock
 *   autoscale.c   the demand history and the autoscaler's decisions carried out
 *   models.c      resolving model versions, the registry and its watcher, switches
 *   preload.c     --preload and the NCCL fan-out
 *   memory.c      each device's memory budget and resident model versions
 *   model_ops.c   `swarm model load|unload`: an operator's pins and evictions
 *   health.c      liveness and readiness, readable from any thread (health.h)
 *   counters.c    swarmd's own counters for the metrics, readable from any thread
 *   metrics.c     --metrics: Prometheus metrics and health over HTTP, on a thread of its own
 *   notify.c      sd_notify: READY, STATUS, WATCHDOG, STOPPING (notify.h)
 *
 * What this header shares: the options (cfg, written once by options.c and main.c before
 * the loop starts, read-only after), the devices and sessions every module reads (d), and the
 * functions modules call across. Everything else stays static in its module. swarmd is one
 * thread, but for metrics.c's, which reads only atomics (stats pages, counters.c, health.c)
 * and what is fixed before the loop starts: nothing here is locked.
 */
#ifndef SWARM_RUNTIME_SWARMD_H
#define SWARM_RUNTIME_SWARMD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ipc/outbox.h"
#include "ipc/proto.h"
#include "ipc/segment.h"
#include "registry/manifest.h"
#include "kernels/builtin.h"
#include "runtime/autoscaler.h"
#include "runtime/balancer.h"
#include "runtime/event_loop.h"
#include "runtime/fleet.h"
#include "runtime/plan.h"
#include "runtime/residency.h"
#include "runtime/stats.h"
#include "runtime/topology.h"
#include "runtime/weight_share.h"

#define MAX_DEVICES SWARM_STATUS_MAX_DEVICES
#define MAX_ALLOW 32
#define MAX_PRELOAD 8 /* --preload models */
#define TICK_MS 100   /* rebalancing, load smoothing, the autoscaler, hello deadlines */

/* ---- the event loop's watches (main.c) -------------------------------------------------------
 * Each watched fd has a struct watch inside the object it belongs to (a connection, a device,
 * or one of main.c's own), so a report leads straight to its object. The loop's tag is not the
 * object's address but a slot and a generation: io_uring may still deliver a report for an fd
 * after it was unwatched (its removal is asynchronous) or two reports in one batch, and such a
 * stale report must find nothing rather than an object freed or reused since. */
enum watch_kind {
	W_LISTEN = 1,
	W_SIGNAL,
	W_CONN,
	W_DEV_CTL,
	W_DEV_PID,
	W_REGISTRY,
	W_TIMER,
};

struct watch {
	int kind;
	uint64_t tag; /* while watched: its slot and generation; 0 when not watched */
};

/* Watches fd for readability under w; stops watching it (w's pending reports are dropped).
 * swarmd_watch returns 0 or -errno. */
int swarmd_watch(int fd, struct watch *w);
void swarmd_unwatch(int fd, struct watch *w);
/* Watches fd (watched under w) for writability too while on. */
int swarmd_watch_out(int fd, struct watch *w, int on);
/* w's handler stopped before its fd was drained (a bound for fairness): the loop calls it
 * again on its next pass, as if the fd had reported again (unless w is unwatched first). */
void swarmd_again(struct watch *w);

/* ---- the options (options.c) ----------------------------------------------------------------- */

struct swarmd_config {
	char socket_path[108];
	char worker_path[PATH_MAX];
	uint64_t spin_us;
	int log_level;
	int log_format; /* --log-format: a swarm_log_format, passed on to the workers */
	/* limits per client and per user (0: none), docs/control-plane.md "Limits and trust" */
	struct {
		uint32_t per_client;    /* sessions of one connection (default: half the places) */
		uint32_t per_user;      /* sessions of one uid, all its connections */
		uint64_t session_bytes; /* one session's segment */
		uint64_t user_bytes;    /* the segments of one uid's sessions together (default:
					 * half the machine's memory) */
	} lim;
	int lim_client_given, lim_user_bytes_given, lim_conns_user_given;
	uid_t allow_uid[MAX_ALLOW];
	int n_allow_uid; /* swarmd's own uid first, then those of --allow-user */
	gid_t allow_gid[MAX_ALLOW];
	int n_allow_gid;
	gid_t admin_gid[MAX_ALLOW]; /* --admin-group */
	int n_admin_gid;
	uint32_t max_conns, max_conns_per_user; /* 0: no limit */
	uint64_t hello_timeout_ns;
	char registry_dir[PATH_MAX];
	int registry_given;         /* --registry: it must exist (only the default may be absent) */
	char backend_dir[PATH_MAX]; /* where a manifest's relative backend name is found */
	int verify_blobs;
	const char *topo_xml;              /* --topology, NULL for this machine */
	struct swarm_plan_request devices; /* --devices, --instances */
	struct swarm_balancer_config bal;
	/* --preload: models every device loads as soon as its worker is ready */
	struct {
		char name[SWARM_NAME_MAX];
		uint32_t version; /* 0: the active one, followed as it changes */
	} preload[MAX_PRELOAD];
	int n_preload;
	struct {
		int on;              /* --autoscale */
		uint32_t idle_floor; /* devices kept in service with no session open */
		uint32_t standby;    /* warm spares to keep (--autoscale-standby) */
		char trace[PATH_MAX]; /* --autoscale-trace: every decision written there */
		struct swarm_as_config cfg;
	} as;
	/* device memory (memory.c, docs/placement.md) */
	struct {
		uint64_t budget;      /* --device-memory: every device's budget; 0: the default */
		uint64_t gpu_reserve; /* --device-memory-reserve: a GPU's free memory kept back */
	} mem;
	/* --metrics ADDR:PORT: the metrics and health endpoints (metrics.c); off by default */
	struct {
		int on;
		struct sockaddr_storage addr; /* AF_INET or AF_INET6, port 0: any free one */
		char text[64];                /* as given, for the logs */
	} metrics;
};

extern struct swarmd_config cfg;

/* Sets cfg's defaults, then parses argv into it. Returns 0, 1 after --help, or 2 after saying
 * what is wrong on stderr. */
int swarmd_options(int argc, char **argv);

/* ---- devices, sessions, and what every module reads ------------------------------------------ */

enum sess_state {
	S_ATTACHING = 1, /* sent to the worker, waiting for its reply */
	S_ACTIVE,
	S_DETACHING, /* the client closed; waiting for the worker to let go */
	S_LOST,      /* no device can serve it, or it broke the protocol: no worker holds it */
	S_MOVING,    /* the old worker was asked to let go; it then attaches to move_to */
	S_HOMELESS,  /* its worker died: waiting for a device (HOMELESS_WAIT_NS at most) */
};

/* A client connection (ctl_server.c owns the list). */
struct conn {
	struct watch w;
	int fd;
	pid_t pid;
	uid_t uid;
	int numa_node;
	int hello_done;
	int refused; /* SO_PEERCRED said no; answer the hello with -EACCES */
	int admin;   /* may change service for others: root, swarmd's user, --admin-group */
	uint64_t accepted_ns;    /* its hello is due within cfg.hello_timeout_ns of this */
	struct swarm_outbox out; /* replies its socket has not taken yet */
	int watch_out;           /* fd is watched for writability (out is not empty) */
	int stalled;             /* it stopped reading its replies: closed at its next turn */
	struct conn *next;
};

struct session {
	uint64_t id;
	struct conn *client; /* NULL once the client has gone */
	uid_t uid;           /* its client's, counted against the user's limits until freed */
	int device;          /* -1 when no worker holds it */
	int count_dev;       /* the device whose load it counts in (its target while it moves),
			      * -1 none (it is going away) */
	int state;
	int reattach;    /* S_ATTACHING: a move, not an open (no OPEN_REPLY) */
	int move_to;     /* S_MOVING: where it goes, -1 to pick again */
	int move_reason; /* a swarm_move_reason */
	int client_numa; /* the node of the thread that opened it, -1 unknown */
	uint32_t moves;
	uint32_t recovery_head; /* the submission index the next worker starts at */
	uint64_t move_start_ns;
	uint64_t last_move_ns;
	uint64_t homeless_since_ns;
	struct swarm_seg_geometry geo;
	uint32_t min_devices, max_devices; /* its model's deployment configuration */
	uint64_t allowed; /* bit i: its model may use device i (deploy.device_kind, devices) */
	uint32_t latency_p99_us;
	int memfd, sq_efd, cq_efd;
	void *base;
	uint64_t bytes;
	const struct swarm_model_desc *model; /* the graph (a built-in for now) */
	char model_name[SWARM_NAME_MAX];
	uint32_t version;  /* served now */
	int follow;        /* opened by name: follows the model's active version */
	int from_registry; /* weights from the registry, not the built-in's own */
	uint32_t open_seq;
	/* The submission ring's indices at the autoscaler's last tick (as_seen 0: not read
	 * yet): its arrivals are what sq_tail moved since (autoscale.c). */
	uint32_t as_tail, as_head;
	int as_seen;
	struct session *next;
};

/* An open waiting for a device to come into service (sessions.c). */
struct pending_open {
	struct conn *client;
	struct swarm_msg_open msg;
	uint64_t deadline_ns;
	struct pending_open *next;
};

enum pre_state {
	PRE_NONE = 0,
	PRE_SENT,
	PRE_DONE,
	PRE_FAILED
};

/* A model version resident on a device, as its worker's RESIDENCY said (memory.c). */
struct resident {
	char model[SWARM_NAME_MAX];
	uint32_t version;
	char sha[72]; /* its weights blob, "" for a built-in's own */
	uint64_t weights_bytes, other_bytes;
	uint64_t last_used_ns;
	uint64_t seen_requests; /* its stats page's request count at the last tick */
	int loading;            /* reserved by an attach, not yet loaded: bytes estimated */
	uint32_t priority;      /* deploy.priority: the lower is evicted first */
	int op_pinned;          /* `swarm model load` pinned it here */
};

struct device {
	struct watch ctl_w;
	struct watch pid_w;
	int index;
	struct swarm_device_plan plan;
	int gpu; /* the CUDA ordinal its worker drives (--gpu), -1 for a CPU device */
	int state;
	pid_t pid;
	int pidfd;
	int ctl;
	struct swarm_outbox out; /* what waits for ctl to take it: no message is dropped */
	int watch_out;           /* ctl is watched for writability too (out is not empty) */
	int stats_fd;
	struct swarm_worker_stats *stats;
	uint32_t sessions;
	uint32_t restarts;
	uint32_t io_backend;
	uint64_t window_start_ns;
	uint32_t window_restarts;
	int parking;    /* drained: its worker is being stopped, not to be restarted */
	int to_standby; /* its worker was started as the autoscaler's warm spare */
	uint32_t moves_in;
	float busy; /* EWMA of the busy fraction (BUSY_TAU_NS) */
	uint64_t busy_ns_last, busy_t_last;
	char mem_policy[48]; /* as its worker read it back from the kernel */
	char bound_cpus[SWARM_CPUS_MAX];
	uint64_t state_since_ns;          /* when it entered its state, for the transition logs */
	/* --preload: per preloaded model, where its worker is (a pre_state) and which version
	 * it was asked to load */
	uint8_t pre_state[MAX_PRELOAD];
	uint32_t pre_version[MAX_PRELOAD];
	/* memory.c: the budget, set when its worker is ready, and what is resident on it */
	uint64_t mem_budget;
	int mem_known;      /* mem_budget was set by a worker's WORKER_READY */
	uint64_t mem_total; /* a GPU's own memory, 0 for host memory */
	struct resident res[SWARM_RES_MAX_RESIDENT];
	uint32_t n_res;
};

struct swarmd {
	struct swarm_loop *loop;
	struct swarm_topology *topo;
	struct device dev[MAX_DEVICES];
	int n_dev;
	struct session *sessions;     /* sessions.c creates and frees them */
	struct pending_open *pending; /* sessions.c */
	uint64_t started_ns;
	int ready;    /* every device of the start is serving (or parked by the autoscaler) */
	int stopping; /* SIGTERM or SIGINT: no restart, no new work */
	/* device copies of weights that GPU workers offer to share (weight_share.h) */
	struct swarm_wshare shares;
};

extern struct swarmd d;

/* What a session serves: a graph, a version, and where its weights are. */
struct resolved {
	const struct swarm_model_desc *desc;
	char name[SWARM_NAME_MAX];
	uint32_t version;
	int from_registry;
	char weights_sha[72];
	uint64_t weights_bytes;
	uint32_t default_slots;
	uint32_t max_rows;
	uint32_t max_batch; /* dynamic batching: 0 or 1 off (the built-ins' default) */
	uint32_t min_devices, max_devices, latency_p99_us; /* the deployment configuration */
	uint32_t max_queue_delay_us;
	/* the model's tensors: the built-in's, or a node-list manifest's (desc NULL) */
	uint32_t n_inputs, n_outputs;
	swarm_tensor_spec inputs[SWARM_MAX_TENSORS], outputs[SWARM_MAX_TENSORS];
	char manifest_sha[72];
	uint64_t manifest_bytes;
	struct swarm_placement_config place; /* deploy.device_kind, devices, priority */
};

/* ---- ctl_server.c ------------------------------------------------------------------------- */

int ctl_listen(void); /* the socket, watched; 0 or -errno (logged by the caller) */
void ctl_handle_listen(void);
void ctl_handle_client(struct conn *c);
void ctl_client_writable(struct conn *c); /* c's socket takes replies again */
void ctl_hello_deadlines(uint64_t now);
void ctl_close_all(void);
/* A connection on fd, accepted, of a peer with credentials cred (ok: allowed to use swarmd),
 * on the list of connections but not yet watched. NULL when out of memory. */
struct conn *ctl_adopt(int fd, const struct ucred *cred, int ok);
/* c goes: its socket closed and unwatched, its pending opens dropped, its sessions let go,
 * c freed. */
void ctl_client_gone(struct conn *c);
/* A reply (REPLY-shaped types) or OPEN_REPLY to a client, through its outbox: none is lost
 * to a full socket. */
void ctl_send_reply(struct conn *c, uint16_t type, uint32_t seq, int status, const char *text);
void ctl_send_open_reply(struct conn *c, uint32_t seq, int status, struct session *s,
			 const char *text);
/* Handles one message already received from c (n bytes; n < 0: what recv said of a message
 * too long). Returns 0, or -1 when c is gone (closed and freed). Callable without a running
 * loop (the fuzz target drives it). */
int ctl_client_message(struct conn *c, const void *msg, int n);

/* ---- status.c ----------------------------------------------------------------------------- */

void status_fill(struct swarm_msg_status_reply *r);
/* `swarm device drain|resume`: 0 or -errno, with what happened in text. */
int status_device_control(struct swarm_msg_device *m, char *text, size_t len);

/* ---- supervisor.c ------------------------------------------------------------------------- */

int sup_start_worker(struct device *dv);
void sup_worker_died(struct device *dv);
void sup_handle_worker(struct device *dv); /* its control socket is readable */
/* Handles one message of n bytes received from dv's worker, with the nfds fds that came with
 * it (taken: kept or closed). Callable without a running loop (the fuzz target drives it). */
void sup_worker_message(struct device *dv, const void *msg, int n, int *fds, int nfds);
void sup_worker_writable(struct device *dv); /* ... writable */
void sup_check_all_ready(void);
void sup_stop_all(void);
/* Sends a message to dv's worker; nothing is dropped (ipc/outbox.h). 0 or -errno. */
int sup_send(struct device *dv, const void *msg, size_t len, const int *fds, int nfds);
/* A DETACH of session id to dv's worker (flags: SWARM_DETACH_MOVE or 0). */
int sup_send_detach(struct device *dv, uint64_t id, uint32_t flags);
/* Offers dv's worker a shared device copy of v's weights, where another worker has one. */
void sup_offer_weights(struct device *dv, const struct swarm_msg_version *v);
int sup_device_wake(struct device *dv, const char *why);
void sup_device_drain(struct device *dv, const char *why);
int sup_any_warming(void);

/* ---- sessions.c --------------------------------------------------------------------------- */

struct swarm_seg_header *session_hdr(struct session *s);
struct session *session_find(uint64_t id);
void session_free(struct session *s);
void session_count(struct session *s, int di);
void session_uncount(struct session *s);
void session_wake(struct session *s);
void session_mark(struct session *s, uint32_t seg_state);
/* Opens a session for c. Returns 1 when the open was parked to wait for a device, else 0
 * (the client has its reply). */
int session_open(struct conn *c, const struct swarm_msg_open *m, int may_park);
void session_close(struct conn *c, const struct swarm_msg_close *m);
/* An open of model@version (0: the active one) by c failed with status (-errno): logged
 * once (event=open_failed, with the client's pid and uid and the reason) and answered. Every
 * refusal of an open goes through here. */
void session_open_failed(struct conn *c, uint32_t seq, const char *model, uint32_t version,
			 int status, const char *reason);
/* Hands s to dv's worker: an ATTACH with its segment and eventfds. 0 or -errno. */
int session_send_attach(struct session *s, struct device *dv, const struct resolved *res);
void sessions_try_pending(void);
/* c has gone: its pending opens are dropped and its sessions let go. */
void sessions_client_gone(struct conn *c);
void sessions_free_all(void);
/* The worker answered the ATTACH of an open. */
void session_attached(struct session *s, struct device *dv, const struct swarm_msg_attach_reply *m);

/* ---- placement.c -------------------------------------------------------------------------- */

/* The balancer's view of the devices (n = d.n_dev). */
void place_snapshot(struct swarm_balancer_device *snap);
int place_device_os_node(const struct device *dv);
void place_rebalance(void);
/* The devices s may be served by: its model's constraints, room for its version, and, where
 * the autoscaler has placed its model, the hosts that have it loaded (bit i: device i). */
uint64_t place_serves(const struct session *s);
void place_update_load(uint64_t now);
/* Moves s (active) to device to at a request boundary, for reason (a swarm_move_reason). */
void place_move(struct session *s, int to, int reason);
/* The seqlock'd placement fields of a session's segment (ipc/seqlock.h). */
void place_publish(struct session *s, const struct device *dv, int moved);
void place_lose(struct session *s, const char *why);
/* The worker serves s with version now: published in the segment. */
void place_switched(struct session *s, uint32_t version);
/* The old worker let the session go (DETACHED after a move's DETACH). */
void place_let_go(struct session *s);
/* The new worker answered the ATTACH of a move. */
void place_moved(struct session *s, struct device *dv, int status, const char *text);
/* A session whose worker died: placed again when a device can take it. */
void place_evacuate(struct session *s, uint64_t now);

/* ---- autoscale.c -------------------------------------------------------------------------- */

void as_tick(uint64_t now);
void as_decide(uint64_t now);
/* The devices model@version is placed on by the autoscaler (bit i: device i), for
 * placement: a new session goes to one of them, a session moves only among them. 0 when the
 * autoscaler is off or has not placed the model (then every device may take it). */
uint64_t as_hosts(const char *model, uint32_t version);
/* Of those, the ones in service with it loaded (where a session can move now); 0 as above. */
uint64_t as_hosts_loaded(const char *model, uint32_t version);
/* 1 when the autoscaler is on and a parked device (or a spare) could take res: an open that
 * finds no room in service waits for it to be woken rather than being refused. */
int as_may_wake_for(const struct resolved *res);
/* A session of res was placed on device di: it is one of the model's hosts from now on. */
void as_placed(const struct resolved *res, int di);
/* 1 when model@version on dv is pinned by the autoscaler: dv is one of its hosts and the
 * model has sessions or an open waiting (a host of a model nobody uses may be evicted). */
int as_pins(const struct device *dv, const char *model, uint32_t version);
/* model@version left dv (evicted or unloaded): dv is no longer one of its hosts. */
void as_unloaded(const struct device *dv, const char *model, uint32_t version);
/* The autoscaler's view in a status reply: each model it follows (its target, hosts, demand)
 * and which resident versions are hosts. After mem_fill_status. */
void as_fill_status(struct swarm_msg_status_reply *r);
/* A worker's LOADED: 1 when it answers a LOAD the autoscaler sent (handled), else 0. */
int as_loaded(struct device *dv, const struct swarm_msg_loaded *m);

/* ---- models.c ----------------------------------------------------------------------------- */

/* Finds what name@version means: the registry's model first, else a built-in. Returns 0, or
 * -errno with a message for the client in text. */
int models_resolve(const char *name, uint32_t version, struct resolved *r, char *text, size_t len);
void models_fill_version(struct swarm_msg_version *v, const struct resolved *r);
/* Opens the registry and watches it (under w). Without the default one, the built-ins are
 * served; a named registry (--registry, $SWARM_REGISTRY) that is missing, or any that is
 * corrupt, is a startup error. Returns 0 or -1 (logged, with a hint). */
int models_open(struct watch *w);
int models_have_registry(void);
/* r's cost on a device before any worker loaded it: the registry's estimate on the CPU
 * (runtime/version_cost.h; cached), 0 for a built-in's own weights. Returns 0, or -errno
 * (logged) with the weights alone counted. */
int models_cost(const struct resolved *r, uint64_t *weights, uint64_t *other);
void models_handle_event(void); /* the registry's directory changed */
void models_close(void);

/* ---- memory.c ----------------------------------------------------------------------------- */

/* dv's worker is ready: its budget (logged) from m's memory figures and the options. */
void mem_worker_ready(struct device *dv, const struct swarm_msg_worker_ready *m);
/* dv's worker loaded or let go of a version. */
void mem_residency(struct device *dv, const struct swarm_msg_residency *m);
void mem_worker_gone(struct device *dv); /* nothing is resident on dv any more */
/* model@version was used on dv at now (a session opened or moved onto it). */
void mem_touch(struct device *dv, const char *model, uint32_t version, uint64_t now);
void mem_tick(uint64_t now); /* last use from the stats pages' request counts */
/* dv as runtime/residency.h sees it; res holds the versions (out->resident points to it). */
void mem_snapshot(const struct device *dv, struct swarm_res_device *out,
		  struct swarm_res_version res[SWARM_RES_MAX_RESIDENT]);
void mem_fill_status(struct swarm_msg_status_reply *r);
/* Bit i: device i has model@version resident or room for it without evicting anything (a
 * move's targets). A version no worker has loaded counts as its weights alone: 0 bytes. */
uint64_t mem_fits_mask(const char *model, uint32_t version);
/* The devices res's model may use (deploy.device_kind, deploy.devices): bit i, device i. */
uint64_t mem_allowed(const struct resolved *res);
/* The device for a session of res among the devices of mask allowed (bit i: device i), and
 * its model's deploy constraints (runtime/residency.h's swarm_res_place: resident first,
 * else where it fits with the least eviction, whose UNLOADs it sends). Returns its index,
 * -ENODEV (none active with room: the caller may wait), -EINPROGRESS (sessions move first to
 * make room), or -EFBIG / -ENOSPC with the client's text. */
int mem_place_in(const struct resolved *res, int client_numa, uint64_t allowed, char *text,
		 size_t len);
/* 1 when r may not be evicted from dv: preloaded there, or pinned by an operator. */
int mem_pinned(const struct device *dv, const struct resident *r);
/* An operator's pin on dv's model@version (on 1) or its end (0). -ENOENT: not resident. */
int mem_pin(struct device *dv, const char *model, uint32_t version, int on);
/* `swarm model unload` on dv: unpins and unloads model@version. 0, or -ENOENT (not
 * resident), -EBUSY (sessions use it), -EPERM (--preload's), with text. */
int mem_unload(struct device *dv, const char *model, uint32_t version, char *text, size_t len);
/* An ATTACH of res goes to dv: its load is reserved until the worker's RESIDENCY. */
void mem_expect(struct device *dv, const struct resolved *res);
/* dv's worker refused an attach of model@version: a reservation for it goes. */
void mem_attach_failed(struct device *dv, const char *model, uint32_t version);
/* model@version on dv's stats page, NULL when it has no entry there. */
const struct swarm_model_stats *mem_page(const struct device *dv, const char *model,
					 uint32_t version);
/* 1 when model@version is loaded on dv (mem_loaded), or loaded or on its way (mem_resident). */
int mem_loaded(const struct device *dv, const char *model, uint32_t version);
int mem_resident(const struct device *dv, const char *model, uint32_t version);
/* What res costs on a device that lacks it: measured where loaded somewhere, else estimated. */
uint64_t mem_cost(const struct resolved *res);
/* dv as the autoscaler's placement (runtime/fleet.h) sees it: budget, used, reclaimable. */
void mem_fleet_device(const struct device *dv, struct swarm_fleet_device *out);

/* ---- model_ops.c -------------------------------------------------------------------------- */

/* A MODEL message of c, an admin: loads (answered once every device has loaded it or failed)
 * or unloads (answered at once). */
void model_ops_request(struct conn *c, const struct swarm_msg_model *m);
/* A LOADED of dv's worker: 1 when it answered an operator's LOAD (handled), 0 otherwise. */
int model_ops_loaded(struct device *dv, const struct swarm_msg_loaded *m);
void model_ops_worker_gone(struct device *dv); /* its pending loads fail */
void model_ops_client_gone(struct conn *c);    /* its loads go on, unanswered */
void model_ops_free_all(void);                 /* at the end: pending loads, unanswered */
/* Loads the operators' pins again where a worker started again without them. */
void model_ops_step(void);

/* ---- preload.c ---------------------------------------------------------------------------- */

/* 1 when dv's worker can take a LOAD now: ready, in service or a warm spare. */
int preload_ready(const struct device *dv);
void preload_step(void);
void preload_done(struct device *dv, const struct swarm_msg_loaded *m);

#endif /* SWARM_RUNTIME_SWARMD_H */
