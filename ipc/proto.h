/* proto.h: the control-socket protocol, between clients and swarmd and between swarmd and
 * its workers.
 *
 * The socket is a unix SOCK_SEQPACKET socket: one message per packet, never split or merged.
 * Every message is a fixed-layout struct that starts with swarm_msg_hdr (magic, ABI version,
 * type, length, sequence number); file descriptors travel beside it with SCM_RIGHTS. A
 * receiver checks the header and the exact length for the type before it reads a field, and
 * treats strings as untrusted (it NUL-terminates them itself). No policy lives here.
 */
#ifndef SWARM_IPC_PROTO_H
#define SWARM_IPC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/segment.h"
#include "swarm/swarm.h"

#define SWARM_PROTO_MAGIC 0x50525753u /* "SWRP" */
#define SWARM_MSG_TEXT_MAX 256
#define SWARM_MSG_MAX_FDS 4
#define SWARM_STATUS_MAX_DEVICES 64
#define SWARM_STATUS_MAX_SESSIONS 256
#define SWARM_STATUS_MAX_RESIDENT 256 /* model versions resident, over every device */
#define SWARM_STATUS_MAX_SCALED 64    /* model versions the autoscaler follows */

enum swarm_msg_type {
	/* client <-> swarmd */
	SWARM_MSG_HELLO = 1,
	SWARM_MSG_HELLO_REPLY = 2,
	SWARM_MSG_OPEN = 3,
	SWARM_MSG_OPEN_REPLY = 4, /* fds: segment memfd, submit eventfd, complete eventfd */
	SWARM_MSG_CLOSE = 5,
	SWARM_MSG_CLOSE_REPLY = 6,
	SWARM_MSG_STATUS = 7,
	SWARM_MSG_STATUS_REPLY = 8,
	SWARM_MSG_DEVICE = 9,        /* `swarm device`: take a device out of service or back */
	SWARM_MSG_DEVICE_REPLY = 10, /* a swarm_msg_reply */
	SWARM_MSG_MODEL = 11,        /* `swarm model`: load a version on devices, or unload it */
	SWARM_MSG_MODEL_REPLY = 12,  /* a swarm_msg_reply, once done (a load: once loaded) */
	/* swarmd <-> worker */
	SWARM_MSG_WORKER_READY = 32,
	SWARM_MSG_ATTACH = 33, /* fds: segment memfd, submit eventfd, complete eventfd */
	SWARM_MSG_ATTACH_REPLY = 34,
	SWARM_MSG_DETACH = 35,
	SWARM_MSG_DETACHED = 36, /* reply to DETACH, or the worker's own decision */
	SWARM_MSG_SWITCH = 37,   /* serve a session with another version from now on */
	SWARM_MSG_SWITCHED = 38,
	/* shared device weights (docs/control-plane.md, "Shared weights"): a swarm_msg_weights */
	SWARM_MSG_WEIGHTS_SHARE = 39,   /* worker: I hold this blob shareably; fd: its handle */
	SWARM_MSG_WEIGHTS_UNSHARE = 40, /* worker: I unloaded it (no fd) */
	SWARM_MSG_WEIGHTS_OFFER = 41,   /* swarmd: map this copy if you load the blob; fd */
	SWARM_MSG_LOAD = 48,   /* load a version before any session needs it (--preload) */
	SWARM_MSG_LOADED = 49, /* the reply, once the weights are on the device */
	SWARM_MSG_RESIDENCY = 50, /* worker: a version was loaded or unloaded, and its bytes */
	SWARM_MSG_UNLOAD = 51,    /* swarmd: let go of an idle version (an eviction) */
	SWARM_MSG_TYPE_MAX = 52,
};

struct swarm_msg_hdr {
	uint32_t magic;
	uint16_t abi;
	uint16_t type;
	uint32_t len; /* the whole message, header included */
	uint32_t seq; /* a reply carries the request's seq */
};

struct swarm_msg_hello {
	struct swarm_msg_hdr h;
	int32_t pid;
	int32_t cpu;       /* where the client's thread ran at connect, -1 unknown */
	int32_t numa_node; /* that cpu's NUMA node, -1 unknown */
	uint32_t reserved;
};

/* The generic reply: HELLO_REPLY, CLOSE_REPLY. */
struct swarm_msg_reply {
	struct swarm_msg_hdr h;
	int32_t status;      /* 0 or -errno */
	uint32_t server_abi; /* what swarmd speaks */
	char text[SWARM_MSG_TEXT_MAX];
};

struct swarm_msg_open {
	struct swarm_msg_hdr h;
	char model[SWARM_NAME_MAX];
	uint32_t version;
	int32_t cpu; /* where the opening thread runs (sched_getcpu), -1 unknown */
	swarm_session_opts opts;
};

enum swarm_device_action {
	SWARM_DEVICE_DRAIN = 1,  /* move its sessions away, stop its worker: PARKED */
	SWARM_DEVICE_RESUME = 2, /* start its worker again: WARMING, then ACTIVE */
};

struct swarm_msg_device {
	struct swarm_msg_hdr h;
	uint32_t action; /* a swarm_device_action */
	uint32_t reserved;
	char name[32]; /* "cpu:1", "gpu:0" */
};

enum swarm_model_action {
	SWARM_MODEL_LOAD = 1,   /* load it and keep it (pinned) on the devices */
	SWARM_MODEL_UNLOAD = 2, /* unpin it and let it go where no session uses it */
};

struct swarm_msg_model {
	struct swarm_msg_hdr h;
	uint32_t action;  /* a swarm_model_action */
	uint32_t version; /* 0: the active one */
	char model[SWARM_NAME_MAX];
	char device[32]; /* "cpu:1", "gpu:0"; "": every device in service */
};

struct swarm_msg_open_reply {
	struct swarm_msg_hdr h;
	int32_t status;
	uint32_t reserved;
	uint64_t session_id;
	uint64_t segment_bytes;
	char text[SWARM_MSG_TEXT_MAX];
};

struct swarm_msg_close {
	struct swarm_msg_hdr h;
	uint64_t session_id;
};

/* STATUS_REPLY: what `swarm status` prints. Percentiles are in ns, from the histograms. */
struct swarm_status_device {
	int32_t index;
	int32_t state; /* a swarm_device_state */
	int32_t pid;
	int32_t numa_node;
	char name[32];
	char cpus[SWARM_CPUS_MAX]; /* the worker's cores as the kernel reports them */
	char mem_policy[48];       /* its memory policy as the kernel reports it ("bind:0") */
	uint32_t sessions;
	uint32_t queue_depth;
	uint32_t restarts;
	uint32_t io_backend; /* 1 io_uring, 2 epoll */
	uint64_t requests;
	uint64_t errors;
	uint64_t busy_ns;
	uint64_t batches;
	uint64_t p50_ns;
	uint64_t p99_ns;
	float busy; /* smoothed busy fraction, what the balancer sees */
	uint32_t moves_in;
	uint64_t weights_bytes_loaded; /* weights copied to the device, every version */
	uint32_t weights_mbps_last;    /* the last copy's rate, MB/s; 0: none (the CPU) */
	uint32_t n_resident;           /* model versions resident (in the reply's resident[]) */
	uint64_t mem_budget;           /* bytes its model versions may use (docs/placement.md) */
	uint64_t mem_used;             /* bytes they use, shared weights counted once */
};

/* A model version resident on a device: loaded by its worker, with or without sessions. */
struct swarm_status_resident {
	int32_t device_index;
	uint32_t version;
	char model[SWARM_NAME_MAX];
	uint64_t weights_bytes; /* its weights on the device (shared with other versions of the
				 * same blob there: counted once in the device's mem_used) */
	uint64_t other_bytes;   /* its arena, batch buffers and per-session buffers */
	uint64_t last_used_ns;  /* CLOCK_MONOTONIC of its last request or open there, 0 never */
	uint32_t sessions;      /* sessions it serves there */
	uint32_t shared;        /* 1: another version there holds the same weights blob */
	uint32_t pinned;        /* 1: never evicted (preloaded there, or its load is on its way) */
	uint32_t host;          /* 1: the autoscaler has placed its model here (a host) */
};

/* A model version as the autoscaler follows it (--autoscale): its policy's last decision. */
struct swarm_status_scaled {
	char model[SWARM_NAME_MAX];
	uint32_t version;
	uint32_t target;       /* devices the policy wants it on */
	uint64_t hosts;        /* bit i: device i is one of its hosts */
	double rate_long;      /* requests a second over the stable window */
	double rate_short;     /* over the short window */
	double service_rate;   /* requests a second of its compute, 0 not measured yet */
	uint32_t sessions;     /* its sessions open */
	uint32_t active;       /* hosts in service with it loaded */
	uint32_t warming;      /* hosts warming or loading it */
	uint32_t reason;       /* its last scale action's swarm_as_reason, 0 none */
};

struct swarm_status_session {
	uint64_t session_id;
	int32_t device_index;
	int32_t client_pid;
	char model[SWARM_NAME_MAX];
	uint32_t model_version;
	uint32_t in_flight;
	uint32_t moves; /* times it was attached to a worker again */
	int32_t client_numa;
	uint64_t requests;
	uint64_t errors;
	uint64_t p50_ns;
	uint64_t p99_ns;
};

struct swarm_msg_status_reply {
	struct swarm_msg_hdr h;
	int32_t swarmd_pid;
	uint32_t n_devices;
	uint32_t n_sessions; /* sessions listed (at most SWARM_STATUS_MAX_SESSIONS) */
	uint32_t total_sessions;
	uint64_t uptime_ns;
	struct swarm_status_device devices[SWARM_STATUS_MAX_DEVICES];
	struct swarm_status_session sessions[SWARM_STATUS_MAX_SESSIONS];
	/* Readiness as /health/ready says it (runtime/swarmd/health.h), for `swarm health`:
	 * ready 1 or 0, the reason code, and the reason in words ("ready" when ready). At the
	 * end, so that the fields above keep their offsets. */
	int32_t ready;
	int32_t ready_reason;
	char ready_text[SWARM_MSG_TEXT_MAX];
	uint32_t n_resident; /* resident[] entries, every device's (at most ..._MAX_RESIDENT) */
	uint32_t reserved;
	uint64_t now_ns; /* swarmd's CLOCK_MONOTONIC when it answered: last_used_ns's age */
	struct swarm_status_resident resident[SWARM_STATUS_MAX_RESIDENT];
	uint32_t autoscale; /* 1: --autoscale is on, and scaled[] is its view */
	uint32_t n_scaled;
	struct swarm_status_scaled scaled[SWARM_STATUS_MAX_SCALED];
};

/* The exit status of a worker that could not open its device (swarm-worker --gpu N where
 * swarm_device_cuda_create fails): swarmd takes the device out of service rather than
 * restart a worker that would fail the same way. The worker logs why before it exits. */
#define SWARM_WORKER_EXIT_NO_DEVICE 3

struct swarm_msg_worker_ready {
	struct swarm_msg_hdr h;
	int32_t device_index;
	int32_t pid;
	int32_t numa_node;
	uint32_t io_backend; /* 1 io_uring, 2 epoll */
	char cpus[SWARM_CPUS_MAX];     /* read back from the kernel after binding */
	char mem_policy[48];           /* read back from the kernel: "bind:0", "default" */
	char text[SWARM_MSG_TEXT_MAX]; /* binding notes ("membind unsupported: ...") */
	uint64_t mem_total; /* the device's own memory (a GPU's); 0: host memory (the CPU) */
	uint64_t mem_free;  /* of it, free when the worker opened the device */
};

/* Which version of which model a worker must serve, and where its weights are. */
struct swarm_msg_version {
	uint32_t builtin_id; /* the graph: a swarm_builtin_id, or 0 for the manifest's nodes */
	uint32_t version;
	char model[SWARM_NAME_MAX];
	char weights_sha[72];   /* hex SHA-256 of the blob in the registry; "" for the built-in's */
	uint64_t weights_bytes; /* 0 for the built-in's own weights */
	uint32_t max_batch;     /* dynamic batching: rows per batch; 0 or 1: off */
	uint32_t max_queue_delay_us;
	char manifest_sha[72]; /* builtin_id 0: the manifest whose node list is the graph */
	uint64_t manifest_bytes;
};

struct swarm_msg_attach {
	struct swarm_msg_hdr h;
	uint64_t session_id;
	struct swarm_msg_version v;
	struct swarm_seg_geometry geo;
	int32_t client_pid; /* the session's client, -1 when gone or unknown: a worker whose
			     * swarmd is gone serves a session only while its client lives */
	uint32_t reserved;
};

struct swarm_msg_switch {
	struct swarm_msg_hdr h;
	uint64_t session_id;
	struct swarm_msg_version v;
};

struct swarm_msg_switched {
	struct swarm_msg_hdr h;
	uint64_t session_id;
	uint32_t version;
	int32_t status;
	char text[SWARM_MSG_TEXT_MAX];
};

struct swarm_msg_attach_reply {
	struct swarm_msg_hdr h;
	uint64_t session_id;
	int32_t status;
	uint32_t reserved;
	char text[SWARM_MSG_TEXT_MAX]; /* why a refusal */
};

/* DETACH flags. */
#define SWARM_DETACH_MOVE 0x1u /* the session moves: finish its batched requests first */

struct swarm_msg_detach {
	struct swarm_msg_hdr h;
	uint64_t session_id;
	uint32_t flags;
	uint32_t reserved;
};

struct swarm_msg_detached {
	struct swarm_msg_hdr h;
	uint64_t session_id;
	int32_t reason; /* 0 when asked, -EBADMSG for a protocol violation */
	uint32_t reserved;
	char text[SWARM_MSG_TEXT_MAX];
};

/* LOAD: load v now and keep it loaded for the worker's life. nranks >= 2 makes the load one
 * rank of an NCCL fan-out (runtime/fanout.h): the root (rank == root) loads from the registry
 * and broadcasts, every other rank receives its weights from the root instead of reading the
 * blob, and any rank whose broadcast fails or times out loads from the registry after all. */
struct swarm_msg_load {
	struct swarm_msg_hdr h;
	struct swarm_msg_version v;
	uint32_t nranks; /* 0 or 1: load alone */
	uint32_t rank;
	uint32_t root;
	uint32_t timeout_ms; /* for the whole collective; 0: the worker's default */
	uint8_t nccl_id[128]; /* SWARM_NCCL_ID_BYTES, from swarmd */
};

/* How a LOADED version got its weights. */
enum swarm_load_how {
	SWARM_LOAD_REGISTRY = 1, /* read from the registry's blob */
	SWARM_LOAD_RECEIVED = 2, /* broadcast to it by the fan-out's root */
	SWARM_LOAD_SENT = 3,     /* read from the registry, then broadcast to the others */
	SWARM_LOAD_ALREADY = 4,  /* it was loaded already */
};

struct swarm_msg_loaded {
	struct swarm_msg_hdr h;
	char model[SWARM_NAME_MAX];
	uint32_t version;
	int32_t status; /* 0 or -errno: not loaded */
	uint32_t how;   /* a swarm_load_how */
	uint32_t reserved;
	uint64_t bytes;   /* weight bytes put on the device (0 on the CPU) */
	uint64_t ns;      /* the whole load */
	double gbps;      /* the broadcast's rate, or the upload's; 0 when none */
	char text[SWARM_MSG_TEXT_MAX]; /* a fan-out that fell back, and why; a failure's reason */
};

/* RESIDENCY: the worker loaded a model version (loaded 1: from then on it holds what the
 * bytes say) or let it go (0). Sent before the ATTACH_REPLY or LOADED that the load served,
 * so that swarmd's count of a device's memory is never behind what its replies imply. */
struct swarm_msg_residency {
	struct swarm_msg_hdr h;
	char model[SWARM_NAME_MAX];
	uint32_t version;
	uint32_t loaded;
	char weights_sha[72];   /* its weights blob, "" for a built-in's own */
	uint64_t weights_bytes; /* the blob's bytes on the device (on the CPU: its mapping) */
	uint64_t other_bytes;   /* its arena at max_batch, batch buffers, per-session buffers */
};

/* UNLOAD: a worker keeps a version loaded when its last session or preload lets go, until
 * swarmd evicts it with this (docs/placement.md). A version something still holds stays;
 * the worker logs it. Its RESIDENCY (loaded 0) follows the unload. */
#define SWARM_UNLOAD_UNPIN 0x1u /* drop the reference a LOAD took first (`swarm model unload`) */

struct swarm_msg_unload {
	struct swarm_msg_hdr h;
	char model[SWARM_NAME_MAX];
	uint32_t version;
	uint32_t flags; /* SWARM_UNLOAD_* */
};

/* WEIGHTS_SHARE, WEIGHTS_UNSHARE and WEIGHTS_OFFER: one copy of a weights blob in a GPU's
 * memory, allocated shareably (device.h, alloc_shared), named by the blob and checked by size
 * and layout. SHARE and OFFER carry one fd, the allocation's shareable handle; swarmd sends
 * an OFFER just before the ATTACH or SWITCH that needs the blob, on the same socket, so the
 * worker has it when it loads. Every field is a claim of a peer: the importer checks bytes and
 * layout against its own plan and loads from the blob when anything differs. */
struct swarm_msg_weights {
	struct swarm_msg_hdr h;
	int32_t gpu; /* the CUDA ordinal the memory lives on */
	uint32_t reserved;
	char sha[72];    /* the weights blob's hex SHA-256, as swarm_msg_version's */
	uint64_t bytes;  /* the device allocation's size */
	uint64_t layout; /* the loader's fingerprint of where each tensor sits in it */
};

/* The largest message. */
#define SWARM_MSG_MAX_BYTES sizeof(struct swarm_msg_status_reply)

/* Fills the header of a message of type type and len bytes. */
void swarm_msg_init(struct swarm_msg_hdr *h, uint16_t type, uint32_t len, uint32_t seq);

/* The exact length of a message of type, 0 for an unknown type. */
uint32_t swarm_msg_len(uint16_t type);

/* Checks a received packet of n bytes: magic, a known type, the exact length for it, and the
 * ABI version. Returns the type, -EBADMSG for a malformed packet, or -EPROTO when only the
 * ABI version differs (then h->abi holds the peer's version and the rest is unread). */
int swarm_msg_check(const void *buf, size_t n);

/* Sends one message with up to SWARM_MSG_MAX_FDS fds. Retries EINTR. Returns 0 or -errno. */
int swarm_msg_send(int sock, const void *msg, size_t len, const int *fds, int nfds);

/* The control calls' time limit, in milliseconds: $SWARM_TIMEOUT_MS (0: none), else
 * SWARM_TIMEOUT_DEFAULT_MS. A stuck swarmd must never block a client or the CLI forever. */
#define SWARM_TIMEOUT_DEFAULT_MS 10000
int64_t swarm_timeout_ms_default(void);

/* Bounds every blocking connect, send and receive on sock to timeout_ms (0: no bound); past
 * it they fail with EAGAIN. Returns 0 or -errno. */
int swarm_sock_set_timeout(int sock, int64_t timeout_ms);

/* Receives one message into buf (cap bytes) and up to *nfds fds (the count received is
 * written back; surplus fds are closed). Returns the byte count, 0 when the peer closed, or
 * -errno (-EMSGSIZE when the packet or its fds were truncated: the fds are closed). */
int swarm_msg_recv(int sock, void *buf, size_t cap, int *fds, int *nfds);

/* Copies src into a fixed field of dst_len bytes, always NUL-terminated. */
void swarm_copy_str(char *dst, size_t dst_len, const char *src);

#endif /* SWARM_IPC_PROTO_H */
