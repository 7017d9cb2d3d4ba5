/* segment.h: the layout of a session segment, the shared memory between one client and the
 * worker that serves it.
 *
 * A segment is one sealed memfd: a header page, the submission queue (client to worker), the
 * completion queue (worker to client), then nslots slots of a fixed stride. Everything in it
 * is fixed-width and addressed by offsets. swarmd computes the geometry (swarm_seg_geometry)
 * before it creates the memfd, then initialises the header in a second step.
 *
 * Trust: the client can write every byte of its segment. The worker therefore never reads the
 * geometry from the header: it gets its own copy from swarmd in the attach message, and
 * reads each request field once, into a local, before it checks it.
 */
#ifndef SWARM_IPC_SEGMENT_H
#define SWARM_IPC_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/swarm.h"

#define SWARM_SEG_MAGIC 0x314745534d525753ull /* "SWRMSEG1" little-endian */
#define SWARM_CACHELINE 64u
/* What two sides writing different words must keep between them: two lines, because the
 * adjacent-line prefetchers of current x86 parts move 128-byte pairs (Folly and the C++
 * hardware_destructive_interference_size use 128 for the same reason). */
#define SWARM_SHARE_GAP 128u
#define SWARM_SEG_HEADER_BYTES 4096u
#define SWARM_SLOT_HEADER_BYTES 64u
#define SWARM_TENSOR_ALIGN 64u
#define SWARM_SEG_MAX_SLOTS 4096u
#define SWARM_SEG_MAX_BYTES (64ull << 30)

/* Session state word, written by swarmd or the worker, read by the client. */
enum swarm_seg_state {
	SWARM_SEG_STATE_INIT = 0,
	SWARM_SEG_STATE_ACTIVE = 1,
	SWARM_SEG_STATE_WORKER_LOST = 2, /* no device can serve it: in-flight requests are lost */
	SWARM_SEG_STATE_DETACHED = 3,    /* the worker dropped it: protocol violation */
};

/* Values of the client's sleep word (what the worker must do after a completion). */
enum swarm_seg_sleep {
	SWARM_SEG_AWAKE = 0,
	SWARM_SEG_SLEEP_FUTEX = 1,   /* wake the futex on cq_doorbell */
	SWARM_SEG_SLEEP_EVENTFD = 2, /* write the session's completion eventfd */
};

/* The geometry of a segment, computed by swarm_seg_geometry_init; the worker keeps a private
 * copy of it, sent by swarmd, and never re-reads it from shared memory. */
struct swarm_seg_geometry {
	uint32_t nslots;
	uint32_t queue_depth; /* submission queue entries, a power of two */
	uint32_t cq_depth;    /* completion queue entries: nslots rounded up to a power of two */
	uint32_t max_rows;
	uint32_t n_inputs;
	uint32_t n_outputs;
	uint64_t slot_stride;
	uint64_t sq_offset;
	uint64_t cq_offset;
	uint64_t slots_offset;
	uint64_t segment_bytes;
	/* per tensor, inputs first then outputs: offset inside a slot and bytes per row */
	uint64_t tensor_offset[2 * SWARM_MAX_TENSORS];
	uint64_t tensor_row_bytes[2 * SWARM_MAX_TENSORS];
};
_Static_assert(sizeof(struct swarm_seg_geometry) == 320, "geometry travels in messages");

/* The request header at the start of every slot, written by the client before submit and
 * read by the worker only when the submission entry's flags say a field is set (so that a
 * plain request moves no header cache line at all). */
struct swarm_slot_header {
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; read when SWARM_SQE_DEADLINE is set */
	uint64_t t_submit_ns; /* client's clock at submit; read when SWARM_SQE_STAMPED is set */
	/* Read when SWARM_SQE_DEVICE is set: bit i set means input (output) i is in the
	 * client's GPU memory, and that tensor's area of the slot starts with a
	 * swarm_slot_device_desc instead of its bytes. */
	uint16_t device_inputs;
	uint16_t device_outputs;
	uint8_t reserved[44];
};
_Static_assert(sizeof(struct swarm_slot_header) == SWARM_SLOT_HEADER_BYTES, "slot header");
_Static_assert(offsetof(struct swarm_slot_header, device_inputs) == 16, "slot header");
_Static_assert(SWARM_MAX_TENSORS <= 16, "a device mask fits 16 bits");

/* What a tensor's area of a slot holds, instead of the tensor, when the client keeps that
 * tensor in GPU memory (swarm_request_set_input_device / _output_device): the CUDA IPC
 * memory handle of the allocation and the tensor's byte offset inside it. The tensor's
 * size is rows * row_bytes, as for host bytes. The worker reads it once, when the slot
 * header's mask says so. */
struct swarm_slot_device_desc {
	uint8_t handle[SWARM_IPC_HANDLE_BYTES]; /* cudaIpcMemHandle_t's bytes */
	uint64_t offset;
};
_Static_assert(sizeof(struct swarm_slot_device_desc) == 72, "device descriptor");
_Static_assert(offsetof(struct swarm_slot_device_desc, offset) == 64, "device descriptor");

/* A submission queue entry carries the request itself: its slot (16 bits), its flags (16
 * bits: the public SWARM_REQUEST_* flags below 0x100, swarm's own above) and its rows (32
 * bits). The worker reads it once and checks every field. */
#define SWARM_SQE_DEADLINE 0x8000u /* the slot header holds a deadline */
#define SWARM_SQE_STAMPED 0x4000u  /* the slot header holds the submit time (sampled) */
#define SWARM_SQE_DEVICE 0x2000u   /* the slot header holds device masks (GPU tensors) */
#define SWARM_SQE_PUBLIC_FLAGS 0x00ffu
_Static_assert(SWARM_SEG_MAX_SLOTS <= 0x10000u, "a slot index fits 16 bits");

static inline uint64_t swarm_sqe_pack(uint32_t slot, uint32_t flags, uint32_t rows)
{
	return (uint64_t)(slot & 0xffffu) | ((uint64_t)(flags & 0xffffu) << 16) |
	       ((uint64_t)rows << 32);
}
static inline uint32_t swarm_sqe_slot(uint64_t e) { return (uint32_t)(e & 0xffffu); }
static inline uint32_t swarm_sqe_flags(uint64_t e) { return (uint32_t)((e >> 16) & 0xffffu); }
static inline uint32_t swarm_sqe_rows(uint64_t e) { return (uint32_t)(e >> 32); }

#define SWARM_ALIGNED_LINE __attribute__((aligned(SWARM_SHARE_GAP)))

/* A word alone on its pair of cache lines, so that the two sides never share a line (or a
 * prefetched pair) they write. */
struct swarm_seg_line {
	uint32_t v;
	uint8_t pad[SWARM_SHARE_GAP - 4];
} SWARM_ALIGNED_LINE;

struct swarm_seg_header {
	/* identity: written once by swarmd before the segment is handed out */
	uint64_t magic;
	uint32_t abi_version;
	uint32_t header_bytes;
	uint64_t session_id;
	struct swarm_seg_geometry geo;
	char model[SWARM_NAME_MAX];
	uint32_t model_version;
	uint32_t reserved0;
	swarm_tensor_spec inputs[SWARM_MAX_TENSORS];
	swarm_tensor_spec outputs[SWARM_MAX_TENSORS];

	/* placement: written by swarmd, rewritten when the session moves */
	int32_t device_index;
	int32_t numa_node;
	int32_t worker_pid;
	uint32_t placement_gen; /* a seqlock: odd while swarmd rewrites the placement */
	char device_name[32];
	char cpus[SWARM_CPUS_MAX];
	/* Bumped each time the session is attached to a worker again (it moved, or its worker
	 * died); recovery_head is where the new worker started taking submissions. A request
	 * the client pushed before recovery_head (the old worker took it) and that has no
	 * completion was lost with the old worker: the client submits it again (see
	 * docs/balancing.md). */
	uint32_t epoch;
	uint32_t recovery_head;
	char mem_policy[48]; /* the worker's memory policy as the kernel reports it */

	/* the hot words, each on its own line; comments say who alone writes each */
	struct swarm_seg_line sq_tail;      /* client: next submission index */
	struct swarm_seg_line sq_head;      /* worker: next submission to take */
	struct swarm_seg_line cq_tail;      /* worker: next completion index */
	struct swarm_seg_line cq_head;      /* client: next completion to read */
	struct swarm_seg_line worker_sleep; /* worker: 1 while it sleeps (eventfd wakes it) */
	struct swarm_seg_line client_sleep; /* client: a swarm_seg_sleep value */
	struct swarm_seg_line cq_doorbell;  /* worker and swarmd: futex word, bumped per wake */
	struct swarm_seg_line state;        /* swarmd and worker: a swarm_seg_state */
};
_Static_assert(sizeof(struct swarm_seg_header) <= SWARM_SEG_HEADER_BYTES, "header fits a page");
_Static_assert(offsetof(struct swarm_seg_header, sq_tail) % SWARM_SHARE_GAP == 0, "line");
_Static_assert(offsetof(struct swarm_seg_header, state) % SWARM_SHARE_GAP == 0, "line");

/* A completion queue entry: the slot index and the request's status (0 or -errno). */
static inline uint64_t swarm_cqe_pack(uint32_t slot, int32_t status)
{
	return (uint64_t)slot | ((uint64_t)(uint32_t)status << 32);
}
static inline uint32_t swarm_cqe_slot(uint64_t e) { return (uint32_t)e; }
static inline int32_t swarm_cqe_status(uint64_t e) { return (int32_t)(uint32_t)(e >> 32); }

/* Byte size of one element of dtype, 0 for an unknown dtype. */
uint32_t swarm_dtype_size(uint32_t dtype);
const char *swarm_dtype_name(uint32_t dtype);

/* The queue depth of an open that asks for none: nslots rounded up to a power of two; 0 (which
 * swarm_seg_geometry_init refuses) when nslots is 0 or above SWARM_SEG_MAX_SLOTS. */
uint32_t swarm_seg_default_depth(uint32_t nslots);

/* Computes the geometry for a model's tensors and the session options (already resolved
 * against the model's defaults). Returns 0 or -EINVAL (a count out of range, a size that
 * overflows or passes SWARM_SEG_MAX_BYTES). */
int swarm_seg_geometry_init(struct swarm_seg_geometry *g, const swarm_tensor_spec *inputs,
			    uint32_t n_inputs, const swarm_tensor_spec *outputs, uint32_t n_outputs,
			    uint32_t nslots, uint32_t queue_depth, uint32_t max_rows);

/* Checks a geometry received from elsewhere (the worker checks swarmd's): every offset and
 * stride consistent and inside segment_bytes. Returns 0 or -EINVAL. */
int swarm_seg_geometry_check(const struct swarm_seg_geometry *g);

/* Creates a sealed memfd of g->segment_bytes (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
 * maps it, prefers NUMA node os_node (the kernel's number; -1: leave the default) for its
 * pages before anything touches them, and writes the header. Returns the fd (*base_out holds
 * the mapping) or -errno. */
int swarm_seg_create(const struct swarm_seg_geometry *g, uint64_t session_id, const char *model,
		     uint32_t model_version, const swarm_tensor_spec *inputs,
		     const swarm_tensor_spec *outputs, int os_node, void **base_out);

/* Sets the memory policy of a mapped segment to prefer NUMA node os_node for the pages
 * faulted from now on; with move, also asks the kernel to move the pages already there
 * (it moves only pages no other process maps, unless this process has CAP_SYS_NICE).
 * Returns 0 or -errno (-EINVAL for a node out of range, what mbind says otherwise). */
int swarm_seg_bind_node(void *base, uint64_t bytes, int os_node, int move);

/* Maps an existing segment of exactly bytes bytes, after checking with fstat that the fd
 * is at least that large and sealed against shrinking. Returns 0 or -errno. */
int swarm_seg_map(int fd, uint64_t bytes, void **base_out);

static inline struct swarm_slot_header *swarm_seg_slot(void *base,
						       const struct swarm_seg_geometry *g,
						       uint32_t slot)
{
	return (struct swarm_slot_header *)((char *)base + g->slots_offset +
					    (uint64_t)slot * g->slot_stride);
}

/* Bytes of tensor t's area in a slot (inputs first, then outputs; t < n_inputs + n_outputs):
 * up to the next tensor's offset, or to the end of the slot for the last. */
static inline uint64_t swarm_seg_tensor_area(const struct swarm_seg_geometry *g, uint32_t t)
{
	uint64_t end = t + 1 < g->n_inputs + g->n_outputs ? g->tensor_offset[t + 1] :
							    g->slot_stride;
	return end - g->tensor_offset[t];
}

#endif /* SWARM_IPC_SEGMENT_H */
