/* outbox.h: control messages that are never dropped. A peer's socket is non-blocking (swarmd
 * and a worker must never wait on each other); when it is full, what does not go now waits
 * here, in order, with copies of its descriptors, and goes when the socket takes it. A bound
 * on what may wait turns a peer that stopped reading into a clear failure, not a growing
 * queue. Before, a burst (a client holding hundreds of sessions died: as many DETACHes, and
 * as many DETACHED back) lost every message past the socket's buffer, and swarmd kept those
 * sessions forever. */
#ifndef SWARM_IPC_OUTBOX_H
#define SWARM_IPC_OUTBOX_H

#include <stddef.h>

/* Messages that may wait for one peer: a client with the most sessions allowed dying sends
 * as many DETACHes at once, and each gets a DETACHED back. */
#define SWARM_OUTBOX_MAX 8192

struct swarm_outbox_msg;

struct swarm_outbox {
	struct swarm_outbox_msg *head, *tail;
	size_t count;
	size_t most; /* the longest the queue has been, for the logs */
};

/* Sends msg (len bytes, nfds descriptors beside it) on sock now when nothing waits before it
 * and the socket takes it, else queues a copy (the descriptors duplicated: the caller keeps
 * and closes its own). Returns 0 (sent or queued), -ENOBUFS when SWARM_OUTBOX_MAX messages
 * already wait (the peer stopped reading), or the -errno of a peer that is gone (then nothing
 * is queued). */
int swarm_outbox_send(struct swarm_outbox *o, int sock, const void *msg, size_t len, const int *fds,
		      int nfds);

/* Sends what waits, in order, until the socket would block. Returns 0 when nothing waits any
 * more, 1 when some still wait (watch the socket for writability), or the -errno of a peer
 * that is gone. */
int swarm_outbox_flush(struct swarm_outbox *o, int sock);

/* Messages waiting. */
size_t swarm_outbox_pending(const struct swarm_outbox *o);

/* Drops everything waiting (the peer is gone), closing the copied descriptors. */
void swarm_outbox_clear(struct swarm_outbox *o);

#endif /* SWARM_IPC_OUTBOX_H */
