/* client.h: libswarm's own structures, shared by its control path (client.c) and its data
 * path (session.c). Not installed: the public API is include/swarm/swarm.h, whose handles
 * are opaque. */
#ifndef SWARM_IPC_CLIENT_H
#define SWARM_IPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/proto.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
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
	uint32_t state;    /* an enum req_state */
	uint32_t flags;    /* as pushed, for a resubmission */
	uint32_t sq_pos;   /* the submission queue index it was pushed at */
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
	uint32_t epoch;      /* the segment's epoch last recovered from */
	uint32_t n_resubmit; /* requests marked resubmit */
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

/* Maps the segment of bytes that swarmd sent for s (s->memfd and id set), checks its magic,
 * ABI, id and geometry, and sets up the slots and queues. Returns 0, or -errno with why in
 * text (len bytes). On failure nothing stays mapped or allocated but s itself. */
int swarm_session_attach(struct swarm_session *s, uint64_t bytes, char *text, size_t len);

/* Frees what swarm_session_attach set up (the mapping, the slots). */
void swarm_session_detach(struct swarm_session *s);

#endif /* SWARM_IPC_CLIENT_H */
