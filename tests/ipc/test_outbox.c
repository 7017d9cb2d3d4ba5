/* test_outbox.c: ipc/outbox.h on a real non-blocking SOCK_SEQPACKET pair: nothing is lost or
 * reordered when the peer's queue is full, descriptors travel with their message, a peer that
 * stops reading hits the bound, and a peer that is gone is an error. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/outbox.h"
#include "ipc/proto.h"

static int sv[2];

static void setup(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
	close(sv[0]);
	close(sv[1]);
}

TestSuite(ipc_outbox, .init = setup, .fini = teardown, .timeout = 30);

struct num_msg {
	uint64_t n;
	char pad[120];
};

/* Reads every message waiting on fd, checking they count up from *next. Returns how many. */
static int drain_in_order(int fd, uint64_t *next)
{
	int got = 0;
	struct num_msg m;
	for (;;) {
		int nfds = 0;
		int r = swarm_msg_recv(fd, &m, sizeof m, NULL, &nfds);
		if (r == -EAGAIN)
			return got;
		cr_assert_eq(r, (int)sizeof m, "recv: %d", r);
		cr_assert_eq(m.n, *next, "message %llu arrived where %llu was due",
			     (unsigned long long)m.n, (unsigned long long)*next);
		(*next)++;
		got++;
	}
}

Test(ipc_outbox, a_burst_past_the_sockets_buffer_arrives_whole_and_in_order)
{
	struct swarm_outbox o = { 0 };
	const uint64_t total = 5000; /* far past what one socket's buffer holds */
	for (uint64_t i = 0; i < total; i++) {
		struct num_msg m = { .n = i };
		cr_assert_eq(swarm_outbox_send(&o, sv[0], &m, sizeof m, NULL, 0), 0, "send %llu",
			     (unsigned long long)i);
	}
	cr_assert_gt(swarm_outbox_pending(&o), 0, "the burst never filled the socket: no test");
	uint64_t next = 0;
	for (int rounds = 0; next < total && rounds < 100000; rounds++) {
		drain_in_order(sv[1], &next);
		int rc = swarm_outbox_flush(&o, sv[0]);
		cr_assert_geq(rc, 0, "flush: %d", rc);
	}
	drain_in_order(sv[1], &next);
	cr_assert_eq(next, total, "%llu of %llu messages arrived", (unsigned long long)next,
		     (unsigned long long)total);
	cr_assert_eq(swarm_outbox_pending(&o), 0);
	cr_assert_eq(swarm_outbox_flush(&o, sv[0]), 0, "nothing waits, flush says otherwise");
}

Test(ipc_outbox, descriptors_wait_with_their_message_and_the_callers_stay_its_own)
{
	struct swarm_outbox o = { 0 };
	struct num_msg m = { 0 };
	/* fill the socket so that the next message must wait */
	while (swarm_msg_send(sv[0], &m, sizeof m, NULL, 0) == 0)
		m.n++;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct num_msg with_fd = { .n = 777 };
	cr_assert_eq(swarm_outbox_send(&o, sv[0], &with_fd, sizeof with_fd, &p[0], 1), 0);
	cr_assert_eq(swarm_outbox_pending(&o), 1);
	close(p[0]); /* the caller's copy: the queued message holds its own */
	/* read the filler, then the queued message goes, with a working descriptor */
	struct num_msg r;
	int nfds = 0;
	while (swarm_msg_recv(sv[1], &r, sizeof r, NULL, &nfds) > 0)
		;
	cr_assert_eq(swarm_outbox_flush(&o, sv[0]), 0);
	int fd = -1;
	nfds = 1;
	cr_assert_eq(swarm_msg_recv(sv[1], &r, sizeof r, &fd, &nfds), (int)sizeof r);
	cr_assert_eq(r.n, 777);
	cr_assert_eq(nfds, 1, "the descriptor did not travel");
	cr_assert_eq(write(p[1], "x", 1), 1);
	char c = 0;
	cr_assert_eq(read(fd, &c, 1), 1, "the descriptor that arrived is not the pipe's");
	cr_assert_eq(c, 'x');
	close(fd);
	close(p[1]);
}

Test(ipc_outbox, a_peer_that_stops_reading_hits_the_bound)
{
	struct swarm_outbox o = { 0 };
	struct num_msg m = { 0 };
	int rc = 0;
	uint64_t sent = 0;
	while ((rc = swarm_outbox_send(&o, sv[0], &m, sizeof m, NULL, 0)) == 0 &&
	       sent < 4 * SWARM_OUTBOX_MAX)
		sent++;
	cr_assert_eq(rc, -ENOBUFS, "after %llu messages the outbox returned %d, not -ENOBUFS",
		     (unsigned long long)sent, rc);
	cr_assert_eq(swarm_outbox_pending(&o), SWARM_OUTBOX_MAX);
	swarm_outbox_clear(&o);
	cr_assert_eq(swarm_outbox_pending(&o), 0);
}

Test(ipc_outbox, a_peer_that_is_gone_is_an_error_not_a_queue)
{
	struct swarm_outbox o = { 0 };
	struct num_msg m = { 0 };
	while (swarm_outbox_send(&o, sv[0], &m, sizeof m, NULL, 0) == 0 &&
	       swarm_outbox_pending(&o) == 0)
		;
	cr_assert_gt(swarm_outbox_pending(&o), 0);
	close(sv[1]);
	sv[1] = -1;
	int rc = swarm_outbox_flush(&o, sv[0]);
	cr_assert(rc == -EPIPE || rc == -ECONNRESET, "flush to a closed peer: %d", rc);
	rc = swarm_outbox_send(&o, sv[0], &m, sizeof m, NULL, 0);
	cr_assert(rc == -EPIPE || rc == -ECONNRESET, "send to a closed peer: %d", rc);
	swarm_outbox_clear(&o);
}
