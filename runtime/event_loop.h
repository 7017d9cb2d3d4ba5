/* event_loop.h: the worker's wake-up source. One io_uring with a multishot poll per watched
 * fd (session eventfds, the control socket, the housekeeping timerfd); where io_uring cannot
 * be set up (some sandboxed kernels refuse it) the same interface runs on epoll, and says so
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

/* Watches fd for readability with tag (tags are the caller's; UINT64_MAX is reserved).
 * Returns 0 or -errno. */
int swarm_loop_add(struct swarm_loop *l, int fd, uint64_t tag);

/* Stops watching fd (registered with tag). Call before closing fd. Returns 0 or -errno. */
int swarm_loop_del(struct swarm_loop *l, int fd, uint64_t tag);

/* Collects up to max tags of ready fds, waiting at most timeout_ns (0: just look, < 0: no
 * limit). With io_uring, a look with nothing to submit makes no system call. Returns the
 * count or -errno. */
int swarm_loop_wait(struct swarm_loop *l, int64_t timeout_ns, uint64_t *tags, int max);

/* True when a look (timeout 0) costs no system call, so the busy loop may look every pass. */
int swarm_loop_cheap_peek(const struct swarm_loop *l);

#endif /* SWARM_RUNTIME_EVENT_LOOP_H */
