/* event_loop.h: the wake-up source of the worker and of swarmd. One io_uring with a multishot
 * poll per watched fd (session eventfds, control sockets, timerfds); where io_uring cannot be
 * set up (some sandboxed kernels refuse it) the same interface runs on epoll, and says so
 * once. A watched fd reports its tag each time new data arrives (edge-triggered on both
 * backends), so a caller that does not need the data may leave it unread. */
#ifndef SWARM_RUNTIME_EVENT_LOOP_H
#define SWARM_RUNTIME_EVENT_LOOP_H

#include <stdint.h>

enum swarm_loop_backend {
	SWARM_LOOP_IO_URING = 1,
	SWARM_LOOP_EPOLL = 2
};

struct swarm_loop;

/* Creates a loop; force_epoll skips io_uring (SWARM_NO_IO_URING=1 asks for it). Returns 0
 * or -errno; (*out)->backend tells which one runs. */
int swarm_loop_create(int force_epoll, struct swarm_loop **out);
void swarm_loop_destroy(struct swarm_loop *l);
enum swarm_loop_backend swarm_loop_backend(const struct swarm_loop *l);

/* A reported tag with this bit set means "writable" (swarm_loop_watch_out); the callers'
 * own tags must leave it clear. */
#define SWARM_LOOP_OUT (1ull << 63)

/* Watches fd for readability with tag (tags are the caller's, below SWARM_LOOP_OUT).
 * Returns 0 or -errno (-EINVAL for a tag with SWARM_LOOP_OUT set). */
int swarm_loop_add(struct swarm_loop *l, int fd, uint64_t tag);

/* Watches fd (added with tag) for writability too while on: each time it becomes writable
 * the loop reports tag | SWARM_LOOP_OUT. Turn it on after a send met EAGAIN and off once
 * nothing waits to be sent; a report may still come after off (the handler must bear one).
 * Turn it off before swarm_loop_del. Returns 0 or -errno. */
int swarm_loop_watch_out(struct swarm_loop *l, int fd, uint64_t tag, int on);

/* Stops watching fd (registered with tag) for readability. Call before closing fd. Returns 0
 * or -errno. */
int swarm_loop_del(struct swarm_loop *l, int fd, uint64_t tag);

/* Collects up to max tags of ready fds, waiting at most timeout_ns (0: just look, < 0: no
 * limit). With io_uring, a look with nothing to submit makes no system call. Returns the
 * count or -errno. */
int swarm_loop_wait(struct swarm_loop *l, int64_t timeout_ns, uint64_t *tags, int max);

/* True when a look (timeout 0) costs no system call, so the busy loop may look every pass. */
int swarm_loop_cheap_peek(const struct swarm_loop *l);

#endif /* SWARM_RUNTIME_EVENT_LOOP_H */
