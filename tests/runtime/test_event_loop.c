/* test_event_loop.c: runtime/event_loop.h on both backends: readability reports, writability
 * reports (swarm_loop_watch_out) with their SWARM_LOOP_OUT bit, and a removed watch that
 * reports no more.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/event_loop.h"

/* Waits up to 200 ms for reports; 1 when one of them is want. */
static int reported(struct swarm_loop *l, uint64_t want)
{
	uint64_t tags[16];
	for (int tries = 0; tries < 4; tries++) {
		int n = swarm_loop_wait(l, 50000000, tags, 16);
		cr_assert_geq(n, 0, "swarm_loop_wait: %d", n);
		for (int i = 0; i < n; i++)
			if (tags[i] == want)
				return 1;
	}
	return 0;
}

static void writable_after_full(int force_epoll)
{
	struct swarm_loop *l;
	cr_assert_eq(swarm_loop_create(force_epoll, &l), 0);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	const uint64_t tag = 42;
	cr_assert_eq(swarm_loop_add(l, sv[0], tag), 0);
	cr_assert_eq(swarm_loop_add(l, sv[0], tag | SWARM_LOOP_OUT), -EINVAL);
	char buf[512] = { 0 };
	int sent = 0;
	while (send(sv[0], buf, sizeof buf, MSG_DONTWAIT) > 0)
		sent++;
	cr_assert_gt(sent, 0);
	cr_assert_eq(swarm_loop_watch_out(l, sv[0], tag, 1), 0);
	cr_assert(!reported(l, tag | SWARM_LOOP_OUT), "writable reported while full");
	while (recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
	cr_assert(reported(l, tag | SWARM_LOOP_OUT), "not reported writable once drained");
	/* readability still reports, without the bit */
	cr_assert_eq(send(sv[1], buf, 8, 0), 8);
	cr_assert(reported(l, tag), "a message in, not reported readable");
	cr_assert_eq(swarm_loop_watch_out(l, sv[0], tag, 0), 0);
	cr_assert_eq(swarm_loop_del(l, sv[0], tag), 0);
	cr_assert_eq(send(sv[1], buf, 8, 0), 8);
	uint64_t tags[16];
	int n = swarm_loop_wait(l, 50000000, tags, 16);
	for (int i = 0; i < n; i++)
		cr_assert_neq(tags[i] & ~SWARM_LOOP_OUT, tag, "a removed watch reported");
	close(sv[0]);
	close(sv[1]);
	swarm_loop_destroy(l);
}

Test(runtime_event_loop, writable_reported_once_room_comes_io_uring_or_fallback)
{
	writable_after_full(0);
}

Test(runtime_event_loop, writable_reported_once_room_comes_epoll) { writable_after_full(1); }

/* A watch removed and its fd closed lets the file go, even after the completion ring
 * overflowed (a multishot poll the kernel ended is armed again, and a removal must take
 * every poll of the watch): the peer then sees its end. swarmd once kept a client's socket
 * open this way, held by a poll no one could reach. */
static void del_releases_the_file_after_overflow(int force_epoll)
{
	struct swarm_loop *l;
	cr_assert_eq(swarm_loop_create(force_epoll, &l), 0);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	const uint64_t tag = 7;
	cr_assert_eq(swarm_loop_add(l, sv[0], tag), 0);
	cr_assert_eq(swarm_loop_watch_out(l, sv[0], tag, 1), 0);
	static char big[4096];
	uint64_t tags[8];
	for (int round = 0; round < 6; round++) {
		/* more writability changes than the completion ring holds, unharvested, so that
		 * the kernel ends the multishot poll; then the watch is turned off and on again
		 * before the ended poll's last report is read (and armed again) */
		for (int i = 0; i < 1500; i++) {
			while (send(sv[0], big, sizeof big, MSG_DONTWAIT) > 0)
				;
			while (recv(sv[1], big, sizeof big, MSG_DONTWAIT) > 0)
				;
		}
		cr_assert_eq(swarm_loop_watch_out(l, sv[0], tag, 0), 0);
		cr_assert_eq(swarm_loop_watch_out(l, sv[0], tag, 1), 0);
		for (int i = 0; i < 400; i++)
			(void)swarm_loop_wait(l, 0, tags, 8);
	}
	cr_assert_eq(swarm_loop_watch_out(l, sv[0], tag, 0), 0);
	cr_assert_eq(swarm_loop_del(l, sv[0], tag), 0);
	(void)swarm_loop_wait(l, 1000000, tags, 8);
	close(sv[0]);
	char buf[16];
	ssize_t n = -1;
	for (int tries = 0; tries < 100; tries++) {
		n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		if (n < 0)
			usleep(10000);
	}
	cr_assert(n == 0 || (n < 0 && errno != EAGAIN),
		  "the closed fd's file is still held: its peer reads %zd (%s)", n,
		  n < 0 ? strerror(errno) : "data");
	close(sv[1]);
	swarm_loop_destroy(l);
}

Test(runtime_event_loop, del_releases_the_file_after_overflow_io_uring_or_fallback)
{
	del_releases_the_file_after_overflow(0);
}

Test(runtime_event_loop, del_releases_the_file_after_overflow_epoll)
{
	del_releases_the_file_after_overflow(1);
}
