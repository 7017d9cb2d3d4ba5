/* doorbell.c: futex and eventfd wake-ups (see doorbell.h for the handshake). */
#include "ipc/doorbell.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int swarm_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
	if (r == 0)
		return 0;
	if (errno == EAGAIN)
		return 0; /* the word moved before we slept: that is a wake-up */
	return -errno;
}

int swarm_futex_wake(uint32_t *word)
{
	long r = syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	return r < 0 ? -errno : (int)r;
}

int swarm_eventfd_signal(int fd)
{
	uint64_t one = 1;
	for (;;) {
		ssize_t n = write(fd, &one, sizeof one);
		if (n == (ssize_t)sizeof one)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0; /* the counter is saturated: the reader will wake anyway */
		return n < 0 ? -errno : -EIO;
	}
}

int swarm_eventfd_drain(int fd)
{
	uint64_t v;
	for (;;) {
		ssize_t n = read(fd, &v, sizeof v);
		if (n == (ssize_t)sizeof v)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}
