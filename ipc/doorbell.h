/* doorbell.h: how one side of a session wakes the other.
 *
 * Towards the worker: the session's submit eventfd, which the worker's io_uring (or epoll)
 * watches. Towards the client: a futex on the segment's cq_doorbell word, or the session's
 * complete eventfd for clients with their own event loop. Both follow the sleeping-flag
 * handshake of docs/data-plane.md: the consumer announces that it will sleep, issues a full fence,
 * looks at the queue once more, then sleeps; the producer publishes, issues a full fence, and
 * wakes only if the flag is set. So a busy pair makes no system call at all.
 */
#ifndef SWARM_IPC_DOORBELL_H
#define SWARM_IPC_DOORBELL_H

#include <stdint.h>

/* A full fence: the store before it is visible before any load after it (the handshake). */
static inline void swarm_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static inline void swarm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Sleeps while *word == expected, at most timeout_ns (< 0: no limit). The futex is shared
 * between processes (never FUTEX_PRIVATE). Returns 0 when woken or the value differed,
 * -ETIMEDOUT, or -EINTR. */
int swarm_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wakes every waiter on word. Returns the number woken or -errno. */
int swarm_futex_wake(uint32_t *word);

/* Adds 1 to an eventfd. Returns 0 or -errno (EAGAIN on a saturated counter counts as 0). */
int swarm_eventfd_signal(int fd);

/* Reads (and so resets) a non-blocking eventfd. Returns 0 or -errno (-EAGAIN when zero). */
int swarm_eventfd_drain(int fd);

#endif /* SWARM_IPC_DOORBELL_H */
