/* test_hostile.c: a hostile client against a real swarmd (issue 15's suite, growing): each
 * attack is made through the public API or the raw control socket, an honest client works
 * beside or after it, and swarmd must answer, keep serving and stop cleanly (h_stop checks
 * the exit status, the workers and the sanitizer log). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "ipc/proto.h"

static void setup(void) { h_start("cpu:1", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_hostile, .init = setup, .fini = teardown, .timeout = 60);

/* An open refused with -EINVAL, in bounded time (a hung swarmd fails the test by the suite's
 * timeout, libswarm's calls having none of their own yet). */
static void open_refused(swarm_client *c, const swarm_session_opts *o, const char *what)
{
	swarm_session *s = NULL;
	const uint64_t t0 = h_now_ns();
	int rc = swarm_session_open(c, "identity", 0, o, &s);
	cr_assert_eq(rc, -EINVAL, "%s: open returned %d (%s) [%s], want -EINVAL", what, rc,
		     swarm_strerror(rc), swarm_client_error(c));
	cr_assert_null(s, "%s: a refused open gave a session", what);
	cr_assert_not_null(strstr(swarm_client_error(c), "out of range"),
			   "%s: the refusal does not say what is out of range: [%s]", what,
			   swarm_client_error(c));
	cr_assert_lt(h_now_ns() - t0, 5 * H_SEC, "%s: the refusal took %.1f s", what,
		     (double)(h_now_ns() - t0) / 1e9);
}

/* Connects a client and opens a working identity session on it, or fails the test. */
static swarm_session *client_with_session(swarm_client **c)
{
	*c = h_connect_or_fail();
	swarm_session *s = NULL;
	swarm_session_opts ok = h_identity_opts();
	cr_assert_eq(h_open_working(*c, "identity", &ok, &s, 10 * H_SEC), 0, "[%s]",
		     swarm_client_error(*c));
	return s;
}

/* A new client opens an identity session and does checked round trips on it. */
static void honest_round_trips_or_fail(const char *when)
{
	swarm_client *honest;
	swarm_session *s = client_with_session(&honest);
	for (uint64_t k = 0; k < 8; k++)
		cr_assert_eq(h_identity_roundtrip(s, 1 + (uint32_t)(k % 4), k, 5 * H_SEC), 0,
			     "%s: round trip %llu", when, (unsigned long long)k);
	swarm_session_close(s);
	swarm_disconnect(honest);
}

/* Defect 1 of issue 15: slots above 2^31 with queue_depth 0 made swarmd round the depth up in
 * a uint32 loop that never ended, before slots was range-checked: every client hung and
 * SIGTERM went unheard. Every field is range-checked before arithmetic now. */
Test(e2e_hostile, open_with_slots_above_2_31_is_refused_and_swarmd_keeps_serving)
{
	swarm_client *attacker = h_connect_or_fail();
	const uint32_t slots[] = { 0x80000001u, 0xffffffffu, 0x80000000u };
	for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
		swarm_session_opts o = { .slots = slots[i], .queue_depth = 0, .max_rows = 1 };
		char what[64];
		snprintf(what, sizeof what, "slots %#x, queue_depth 0", slots[i]);
		open_refused(attacker, &o, what);
	}
	/* and a depth far past any slot count, with slots in range */
	swarm_session_opts deep = { .slots = 8, .queue_depth = 0x80000000u, .max_rows = 1 };
	open_refused(attacker, &deep, "slots 8, queue_depth 2^31");

	/* the attacker's own connection still works, and so does an honest client's */
	swarm_session *s = NULL;
	swarm_session_opts ok = h_identity_opts();
	cr_assert_eq(h_open_working(attacker, "identity", &ok, &s, 10 * H_SEC), 0,
		     "the attacker's connection no longer opens a good session [%s]",
		     swarm_client_error(attacker));
	swarm_session_close(s);
	honest_round_trips_or_fail("an honest client after the attack");
	swarm_disconnect(attacker);
	h_stop();
}

/* ---- a client with hundreds of sessions dies ------------------------------------------------ */

#define MANY_SESSIONS 250 /* of the worker's 256 places: one is the honest client's */

/* What a child given to h_fork_ready holds: where it says it is ready. */
struct ready_args {
	int ready_fd;
};

/* For h_fork: opens MANY_SESSIONS small sessions, says so on ready_fd, then waits to be
 * killed. Exit codes: 2 no connection, 3 an open failed, 4 never killed. */
static int child_many_sessions(void *arg)
{
	const struct ready_args *a = arg;
	swarm_client *c;
	if (h_connect(&c))
		return 2;
	swarm_session_opts o = { .slots = 1, .queue_depth = 1, .max_rows = 1 };
	for (int i = 0; i < MANY_SESSIONS; i++) {
		swarm_session *s;
		int rc = swarm_session_open(c, "identity", 0, &o, &s);
		if (rc) {
			fprintf(stderr, "child: open %d: %d (%s) [%s]\n", i, rc, swarm_strerror(rc),
				swarm_client_error(c));
			return 3;
		}
	}
	if (write(a->ready_fd, "r", 1) != 1)
		return 3;
	h_sleep_ms(60000);
	return 4;
}

static pid_t only_worker_or_fail(void)
{
	pid_t w[8];
	int n = h_worker_pids(w, 8);
	cr_assert_eq(n, 1, "swarmd has %d workers, want 1", n);
	return w[0];
}

/* Defect 2 of issue 15: a client with about 200 sessions or more died; swarmd sent every
 * DETACH at once, the worker answered with as many DETACHED on its non-blocking socket and
 * dropped those that did not fit (swarmd ignored its own failed sends too), and swarmd kept
 * those sessions (and their memfd and two eventfds) forever: 86, 175, 294 stuck over three
 * rounds. Ten rounds here, each side stopped while the other writes to it, and swarmd's and
 * the worker's descriptors come back to their baselines after each. */
/* A connection may hold 250 sessions here (by default half the places, 128 on one device):
 * the most allowed, as the issue asks. */
static void setup_many(void)
{
	static const char *const args[] = { "--max-sessions-per-client", "250", NULL };
	h_start("cpu:1", args);
}

TestSuite(e2e_hostile_many, .init = setup_many, .fini = teardown, .timeout = 180);

Test(e2e_hostile_many, a_client_with_250_sessions_dies_ten_times_and_all_is_released)
{
	swarm_client *honest;
	swarm_session *s = client_with_session(&honest);
	const pid_t d = h_swarmd_pid(), w = only_worker_or_fail();
	h_sleep_ms(100);
	const int base_d = h_count_fds(d), base_w = h_count_fds(w);
	cr_assert_gt(base_d, 0);
	cr_assert_gt(base_w, 0);
	uint64_t tag = 1;
	for (int round = 0; round < 10; round++) {
		struct ready_args a = { .ready_fd = -1 };
		int ready;
		pid_t child =
			h_fork_ready(child_many_sessions, &a, &a.ready_fd, 60 * H_SEC, &ready);
		cr_assert_gt(child, 0);
		if (!ready) {
			int st = h_child_wait(child, 1 * H_SEC);
			h_print_log("the client with many sessions did not get them");
			cr_assert_fail("round %d: the child never opened its %d sessions (exit %d)",
				       round, MANY_SESSIONS, st);
		}
		const int held_d = h_count_fds(d);
		cr_assert_geq(held_d, base_d + 3 * MANY_SESSIONS,
			      "round %d: swarmd holds %d fds with %d sessions open, baseline %d: "
			      "the sessions are not what this test thinks",
			      round, held_d, MANY_SESSIONS, base_d);
		/* Both directions past their socket's buffer, whatever the machine's speed: the
		 * worker stopped while swarmd sends its 250 DETACHes, then swarmd stopped while the
		 * worker answers with as many DETACHED. No assertion until both run again. */
		kill(w, SIGSTOP);
		int stopped_w = h_wait_stopped(w, 2 * H_SEC);
		kill(child, SIGKILL);
		int st = h_child_wait(child, 10 * H_SEC);
		h_sleep_ms(300);
		kill(d, SIGSTOP);
		int stopped_d = h_wait_stopped(d, 2 * H_SEC);
		kill(w, SIGCONT);
		h_sleep_ms(300);
		kill(d, SIGCONT);
		cr_assert_eq(stopped_w, 0, "round %d: the worker did not stop", round);
		cr_assert_eq(stopped_d, 0, "round %d: swarmd did not stop", round);
		cr_assert_eq(st, 256 + SIGKILL, "round %d: the child's status %d", round, st);
		int now_d = -1, now_w = -1;
		for (uint64_t end = h_now_ns() + 10 * H_SEC; h_now_ns() < end; h_sleep_ms(20)) {
			now_d = h_count_fds(d);
			now_w = h_count_fds(w);
			if (now_d <= base_d && now_w <= base_w)
				break;
			cr_assert_eq(h_identity_roundtrip(s, 1, tag, 5 * H_SEC), 0,
				     "round %d: the honest client's round trip failed", round);
			tag++;
		}
		if (now_d > base_d || now_w > base_w)
			h_print_log("descriptors not released");
		cr_assert_leq(
			now_d, base_d,
			"round %d: swarmd holds %d fds 10 s after the client died, baseline %d "
			"(%d held with the sessions)",
			round, now_d, base_d, held_d);
		cr_assert_leq(now_w, base_w,
			      "round %d: the worker holds %d fds 10 s after the client died, "
			      "baseline %d",
			      round, now_w, base_w);
	}
	cr_assert_eq(only_worker_or_fail(), w, "the worker was replaced");
	for (uint64_t k = 0; k < 16; k++)
		cr_assert_eq(h_identity_roundtrip(s, 1 + (uint32_t)(k % 4), tag + k, 5 * H_SEC), 0);
	swarm_session_close(s);
	swarm_disconnect(honest);
	h_stop();
}

/* ---- a swarmd that stops answering ---------------------------------------------------------- */

/* Part of defect 1 of issue 15: with swarmd stuck, libswarm's control calls had no time limit
 * and a client blocked forever (its swarm_session_close too). Every control call now gives
 * up after its limit with -ETIMEDOUT, the connection then refuses further control calls with
 * -ENOTCONN at once, and the session's data plane is not touched by any of it. */
Test(e2e_hostile, control_calls_time_out_on_a_stopped_swarmd)
{
	swarm_client *c;
	swarm_session *s = client_with_session(&c);
	swarm_session_opts ok = h_identity_opts();
	cr_assert_eq(swarm_client_set_timeout(c, 300), 0);
	cr_assert_eq(swarm_client_set_timeout(c, -1), -EINVAL);
	const pid_t d = h_swarmd_pid();
	kill(d, SIGSTOP);
	int stopped = h_wait_stopped(d, 2 * H_SEC);

	uint64_t t0 = h_now_ns();
	swarm_session *s2 = NULL;
	int open_rc = swarm_session_open(c, "identity", 0, &ok, &s2);
	const double open_s = (double)(h_now_ns() - t0) / 1e9;
	char open_err[256];
	snprintf(open_err, sizeof open_err, "%s", swarm_client_error(c));
	/* the worker still serves the open session while swarmd is stopped */
	int rt = h_identity_roundtrip(s, 2, 77, 5 * H_SEC);
	swarm_client *c2 = NULL;
	t0 = h_now_ns();
	int conn_rc = swarm_connect_timeout(h_socket(), 300, &c2);
	const double conn_s = (double)(h_now_ns() - t0) / 1e9;
	kill(d, SIGCONT);

	cr_assert_eq(stopped, 0, "swarmd did not stop");
	cr_assert_eq(open_rc, -ETIMEDOUT, "open on a stopped swarmd returned %d (%s)", open_rc,
		     swarm_strerror(open_rc));
	cr_assert_null(s2);
	cr_assert_lt(open_s, 3.0, "the open took %.1f s with a 0.3 s limit", open_s);
	cr_assert_not_null(strstr(open_err, "300 ms"), "the message does not say the limit: %s",
			   open_err);
	cr_assert_eq(rt, 0, "the data plane stopped with swarmd: %d", rt);
	cr_assert_eq(conn_rc, -ETIMEDOUT, "connect to a stopped swarmd returned %d (%s)", conn_rc,
		     swarm_strerror(conn_rc));
	cr_assert_null(c2);
	cr_assert_lt(conn_s, 3.0, "the connect took %.1f s with a 0.3 s limit", conn_s);

	/* the timed-out connection takes no more control calls, at once */
	t0 = h_now_ns();
	swarm_session *s3 = NULL;
	cr_assert_eq(swarm_session_open(c, "identity", 0, &ok, &s3), -ENOTCONN);
	cr_assert_lt(h_now_ns() - t0, 1 * H_SEC);
	/* its session still works, and closes without waiting */
	cr_assert_eq(h_identity_roundtrip(s, 3, 78, 5 * H_SEC), 0);
	cr_assert_eq(swarm_session_close(s), -ENOTCONN);
	swarm_disconnect(c);

	/* swarmd, running again, serves a new client */
	swarm_client *honest = h_connect_or_fail();
	swarm_session *hs = NULL;
	cr_assert_eq(h_open_working(honest, "identity", &ok, &hs, 10 * H_SEC), 0, "[%s]",
		     swarm_client_error(honest));
	cr_assert_eq(h_identity_roundtrip(hs, 4, 79, 5 * H_SEC), 0);
	swarm_session_close(hs);
	swarm_disconnect(honest);
	h_stop();
}

/* ---- limits per client and per user ---------------------------------------------------------- */

TestSuite(e2e_limits, .fini = teardown, .timeout = 60);

/* Opens identity sessions on c with o until one is refused; returns how many opened and the
 * refusal in *rc (the sessions stay open: the connection's close frees them). */
static int open_until_refused(swarm_client *c, const swarm_session_opts *o, int most, int *rc)
{
	int n = 0;
	*rc = 0;
	for (; n < most; n++) {
		swarm_session *s = NULL;
		if ((*rc = swarm_session_open(c, "identity", 0, o, &s)))
			break;
	}
	return n;
}

/* Defect 3 of issue 15: one client opened all 512 places of two devices and every other open
 * got -ENODEV. By default a connection holds at most half the places. */
Test(e2e_limits, a_greedy_client_holds_half_the_places_and_an_honest_one_still_opens)
{
	h_start("cpu:2", NULL);
	swarm_client *greedy = h_connect_or_fail();
	swarm_session_opts tiny = { .slots = 1, .queue_depth = 1, .max_rows = 1 };
	int rc;
	int n = open_until_refused(greedy, &tiny, 600, &rc);
	cr_assert_eq(rc, -EDQUOT, "the greedy client's open %d returned %d (%s) [%s]", n + 1, rc,
		     swarm_strerror(rc), swarm_client_error(greedy));
	cr_assert_eq(n, 256, "the greedy client got %d sessions, the default limit is 256", n);
	cr_assert_not_null(strstr(swarm_client_error(greedy), "--max-sessions-per-client"),
			   "the refusal does not name its limit: %s", swarm_client_error(greedy));
	cr_assert(h_log_contains("event=open_failed"), "the refusal left no line in the log");
	cr_assert(h_log_contains("error=EDQUOT"), "the refusal's line lacks its error");
	honest_round_trips_or_fail("beside a greedy client at its limit");
	swarm_disconnect(greedy);
	h_stop();
}

Test(e2e_limits, a_user_limit_counts_every_connection_of_the_uid)
{
	static const char *const args[] = { "--max-sessions-per-user", "3", NULL };
	h_start("cpu:1", args);
	swarm_client *a = h_connect_or_fail(), *b = h_connect_or_fail();
	swarm_session_opts tiny = { .slots = 1, .queue_depth = 1, .max_rows = 1 };
	int rc;
	cr_assert_eq(open_until_refused(a, &tiny, 2, &rc), 2, "[%s]", swarm_client_error(a));
	int n = open_until_refused(b, &tiny, 10, &rc);
	cr_assert_eq(n, 1, "the user's second connection got %d sessions beside 2, limit 3", n);
	cr_assert_eq(rc, -EDQUOT, "%d (%s)", rc, swarm_strerror(rc));
	cr_assert_not_null(strstr(swarm_client_error(b), "holds 3 sessions"), "%s",
			   swarm_client_error(b));
	/* a session freed gives the place back */
	swarm_disconnect(a);
	swarm_session *s = NULL;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; h_now_ns() < end; h_sleep_ms(20))
		if ((rc = swarm_session_open(b, "identity", 0, &tiny, &s)) != -EDQUOT)
			break;
	cr_assert_eq(rc, 0, "after the first connection closed: %d [%s]", rc,
		     swarm_client_error(b));
	swarm_disconnect(b);
	h_stop();
}

Test(e2e_limits, segment_bytes_are_bounded_per_session_and_per_user)
{
	static const char *const args[] = { "--max-session-bytes", "256K", "--max-user-bytes", "1M",
					    NULL };
	h_start("cpu:1", args);
	swarm_client *c = h_connect_or_fail();
	/* 64 slots of 64 rows of 64 bytes in and out: about 512 KiB, above 256 KiB */
	swarm_session_opts big = { .slots = 64, .queue_depth = 64, .max_rows = 64 };
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "identity", 0, &big, &s);
	cr_assert_eq(rc, -EDQUOT, "a session above --max-session-bytes: %d", rc);
	cr_assert_not_null(strstr(swarm_client_error(c), "--max-session-bytes"), "%s",
			   swarm_client_error(c));
	/* 16 slots: about 128 KiB each, so the user's 1 MiB ends after a few */
	swarm_session_opts mid = { .slots = 16, .queue_depth = 16, .max_rows = 64 };
	int n = open_until_refused(c, &mid, 64, &rc);
	cr_assert_eq(rc, -EDQUOT, "after %d sessions: %d", n, rc);
	cr_assert(n >= 4 && n <= 8, "%d sessions of about 128 KiB within 1 MiB", n);
	cr_assert_not_null(strstr(swarm_client_error(c), "--max-user-bytes"), "%s",
			   swarm_client_error(c));
	/* the user's bytes come back with its sessions */
	swarm_disconnect(c);
	h_sleep_ms(200);
	honest_round_trips_or_fail("after the user's sessions at its byte limit closed");
	h_stop();
}

/* ---- who may connect ------------------------------------------------------------------------- */

TestSuite(e2e_access, .fini = teardown, .timeout = 60);

struct as_user {
	uid_t uid;
	int want;             /* swarm_connect's result */
	const char *want_say; /* a piece of swarm_last_error() on a refusal */
};

/* For h_fork: becomes uid (and its own group), connects, and on success opens a session and
 * does a checked round trip. Exit codes: 0 as wanted, 2 setuid failed, 3 connect's result
 * differs, 4 the refusal's message lacks its piece, 5 the session failed. */
static int child_as_user(void *arg)
{
	const struct as_user *a = arg;
	if (setgroups(0, NULL) < 0 || setgid((gid_t)a->uid) < 0 || setuid(a->uid) < 0)
		return 2;
	swarm_client *c = NULL;
	int rc = swarm_connect(h_socket(), &c);
	if (rc != a->want) {
		fprintf(stderr, "uid %u: connect %d (%s) [%s], want %d\n", (unsigned)a->uid, rc,
			swarm_strerror(rc), swarm_last_error(), a->want);
		return 3;
	}
	if (rc) {
		if (!strstr(swarm_last_error(), a->want_say)) {
			fprintf(stderr, "uid %u: the refusal says [%s], not \"%s\"\n",
				(unsigned)a->uid, swarm_last_error(), a->want_say);
			return 4;
		}
		return 0;
	}
	swarm_session *s = NULL;
	swarm_session_opts o = h_identity_opts();
	if (h_open_working(c, "identity", &o, &s, 10 * H_SEC) ||
	    h_identity_roundtrip(s, 2, 5, 5 * H_SEC))
		return 5;
	swarm_session_close(s);
	swarm_disconnect(c);
	return 0;
}

static void run_as_or_fail(uid_t uid, int want, const char *say)
{
	struct as_user a = { .uid = uid, .want = want, .want_say = say };
	pid_t p = h_fork(child_as_user, &a);
	cr_assert_gt(p, 0);
	int st = h_child_wait(p, 20 * H_SEC);
	if (st)
		h_print_log("a client of another user");
	cr_assert_eq(st, 0, "uid %u (want %d): the child exited %d", (unsigned)uid, want, st);
}

/* Defect 6 of issue 15: the socket was 0660, swarmd's user and group, so a user named with
 * --allow-user could not connect at all, and libswarm called the file system's EACCES "swarmd
 * refused this user". Now --allow-user opens the socket's mode and the credential check does
 * the refusing, and libswarm tells the two refusals apart. Acting as other users needs root. */
Test(e2e_access, allow_user_lets_that_user_in_and_refuses_the_others)
{
	if (geteuid() != 0)
		cr_skip_test("needs root, to act as other users");
	static const char *const args[] = { "--allow-user", "65534", NULL };
	h_start("cpu:1", args);
	cr_assert_eq(chmod(h_dir(), 0711), 0, "chmod %s", h_dir());
	struct stat st;
	cr_assert_eq(stat(h_socket(), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0666, "the socket's mode is %o", st.st_mode & 0777);
	run_as_or_fail(65534, 0, "");
	run_as_or_fail(54321, -EACCES, "is not allowed to use this swarmd");
	honest_round_trips_or_fail("swarmd's own user beside them");
	h_stop();
}

Test(e2e_access, without_allow_user_the_file_says_no_and_libswarm_says_so)
{
	if (geteuid() != 0)
		cr_skip_test("needs root, to act as other users");
	h_start("cpu:1", NULL);
	cr_assert_eq(chmod(h_dir(), 0711), 0, "chmod %s", h_dir());
	struct stat st;
	cr_assert_eq(stat(h_socket(), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660, "the socket's mode is %o", st.st_mode & 0777);
	run_as_or_fail(65534, -EACCES, "file permissions keep this user out");
	h_stop();
}

/* ---- admin operations ------------------------------------------------------------------------ */

/* One DEVICE message (action on the device named) over a connection of our own, as `swarm
 * device` sends it. Returns the reply's status, with its text in text; -EPROTO when no
 * reply came. */
static int device_call(uint32_t action, const char *name, char *text, size_t len)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", h_socket());
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || swarm_sock_set_timeout(fd, 5000) ||
	    connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		snprintf(text, len, "cannot connect: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EPROTO;
	}
	struct swarm_msg_hello hello;
	swarm_msg_init(&hello.h, SWARM_MSG_HELLO, sizeof hello, 1);
	hello.pid = getpid();
	hello.cpu = -1;
	hello.numa_node = -1;
	struct swarm_msg_reply r;
	int n = swarm_msg_send(fd, &hello, sizeof hello, NULL, 0);
	if (n == 0)
		n = swarm_msg_recv(fd, &r, sizeof r, NULL, NULL);
	int rc = -EPROTO;
	if (n > 0 && swarm_msg_check(&r, (size_t)n) == SWARM_MSG_HELLO_REPLY && r.status == 0) {
		struct swarm_msg_device m;
		swarm_msg_init(&m.h, SWARM_MSG_DEVICE, sizeof m, 2);
		m.action = action;
		snprintf(m.name, sizeof m.name, "%s", name);
		n = swarm_msg_send(fd, &m, sizeof m, NULL, 0);
		if (n == 0)
			n = swarm_msg_recv(fd, &r, sizeof r, NULL, NULL);
		if (n > 0 && swarm_msg_check(&r, (size_t)n) == SWARM_MSG_DEVICE_REPLY) {
			rc = r.status;
			r.text[sizeof r.text - 1] = 0;
			snprintf(text, len, "%s", r.text);
		}
	}
	close(fd);
	return rc;
}

/* For h_fork: becomes uid 65534, asks to drain cpu:1. Exit 0 when refused with -EPERM and a
 * message that says what it takes; 2 setuid failed, 3 another answer. */
static int child_drain_as_nobody(void *arg)
{
	(void)arg;
	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
		return 2;
	char text[SWARM_MSG_TEXT_MAX] = "";
	int rc = device_call(SWARM_DEVICE_DRAIN, "cpu:1", text, sizeof text);
	if (rc != -EPERM || !strstr(text, "--admin-group")) {
		fprintf(stderr, "drain as uid 65534: %d [%s], want -EPERM naming --admin-group\n",
			rc, text);
		return 3;
	}
	return 0;
}

/* Defect 5 of issue 15: any client could take every device out of service with `swarm device
 * drain`. Now that needs root, swarmd's own user or a member of --admin-group; others get
 * -EPERM saying so, and nothing changes. */
Test(e2e_access, only_an_admin_drains_a_device)
{
	if (geteuid() != 0)
		cr_skip_test("needs root, to act as another user");
	static const char *const args[] = { "--allow-user", "65534", NULL };
	h_start("cpu:2", args);
	cr_assert_eq(chmod(h_dir(), 0711), 0, "chmod %s", h_dir());
	pid_t p = h_fork(child_drain_as_nobody, NULL);
	cr_assert_gt(p, 0);
	int st = h_child_wait(p, 20 * H_SEC);
	cr_assert_eq(st, 0, "the non-admin's drain: child exited %d", st);
	cr_assert(h_log_contains("event=admin_refused"), "the refusal left no line in the log");
	cr_assert(!h_log_contains("event=device_draining"), "a non-admin's drain changed service");
	/* root may */
	char text[SWARM_MSG_TEXT_MAX] = "";
	int rc = device_call(SWARM_DEVICE_DRAIN, "cpu:1", text, sizeof text);
	cr_assert_eq(rc, 0, "root's drain: %d [%s]", rc, text);
	for (uint64_t end = h_now_ns() + 10 * H_SEC;
	     !h_log_contains("event=device_parked device=cpu:1") && h_now_ns() < end;)
		h_sleep_ms(20);
	rc = device_call(SWARM_DEVICE_RESUME, "cpu:1", text, sizeof text);
	cr_assert_eq(rc, 0, "root's resume: %d [%s]", rc, text);
	honest_round_trips_or_fail("after the drains");
	h_stop();
}

/* ---- idle connections ------------------------------------------------------------------------ */

/* A raw connection that never says hello. Returns the fd, or fails the test. */
static int silent_connection(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", h_socket());
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

/* 1 when swarmd has closed fd's connection (a read sees its end, or its refusal first). */
static int closed_by_swarmd(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLIN | POLLHUP));
}

/* Defect 4 of issue 15: 3000 silent connections were held, with no limit and no deadline for
 * the hello, and new clients hung. Now swarmd holds at most --max-connections, refuses the
 * next with -EUSERS naming the limit, and closes a connection that has not said hello within
 * --hello-timeout-ms; an honest client is served again as soon as that frees a place. */
Test(e2e_limits, silent_connections_are_bounded_and_closed_at_their_deadline)
{
	static const char *const args[] = { "--max-connections", "8", "--hello-timeout-ms", "700",
					    NULL };
	h_start("cpu:1", args);
	int silent[8];
	for (int i = 0; i < 8; i++)
		silent[i] = silent_connection();
	h_sleep_ms(100); /* accepted */
	swarm_client *c = NULL;
	int rc = swarm_connect(h_socket(), &c);
	cr_assert_eq(rc, -EUSERS, "a ninth connection: %d (%s) [%s]", rc, swarm_strerror(rc),
		     swarm_last_error());
	cr_assert_not_null(strstr(swarm_last_error(), "--max-connections"), "%s",
			   swarm_last_error());
	/* the deadline closes the silent ones; then a client is served again */
	uint64_t t0 = h_now_ns();
	for (uint64_t end = t0 + 5 * H_SEC; h_now_ns() < end; h_sleep_ms(20))
		if ((rc = swarm_connect(h_socket(), &c)) == 0)
			break;
	cr_assert_eq(rc, 0, "no connection 5 s after the silent ones' deadline: %d [%s]", rc,
		     swarm_last_error());
	cr_assert_lt(h_now_ns() - t0, 3 * H_SEC);
	int closed = 0;
	for (int i = 0; i < 8; i++) {
		closed += closed_by_swarmd(silent[i]);
		close(silent[i]);
	}
	cr_assert_eq(closed, 8, "%d of the 8 silent connections were closed", closed);
	cr_assert(h_log_contains("event=hello_timeout"), "no hello_timeout in the log");
	swarm_disconnect(c);
	honest_round_trips_or_fail("after the silent connections");
	h_stop();
}

/* CPU seconds swarmd has used (user and system), from /proc. */
static double swarmd_cpu_s(void)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)h_swarmd_pid());
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	cr_assert_not_null(p);
	unsigned long ut = 0, st = 0;
	/* after the comm: state, then 10 fields, then utime and stime */
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
		     2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* At its file descriptor limit swarmd busy-looped on accept failing with EMFILE. Now a
 * reserve descriptor takes the waiting connection and closes it with -EMFILE, and swarmd
 * stays idle; once descriptors come back, an honest client is served. */
Test(e2e_limits, out_of_descriptors_swarmd_refuses_without_spinning)
{
	static const char *const args[] = { "--hello-timeout-ms", "0", NULL };
	h_start("cpu:1", args);
	const pid_t d = h_swarmd_pid();
	const int base = h_count_fds(d);
	cr_assert_gt(base, 0);
	struct rlimit lim = { .rlim_cur = (rlim_t)base + 12, .rlim_max = (rlim_t)base + 12 };
	struct rlimit old;
	cr_assert_eq(prlimit(d, RLIMIT_NOFILE, NULL, &old), 0, "prlimit: %s", strerror(errno));
	lim.rlim_max = old.rlim_max;
	cr_assert_eq(prlimit(d, RLIMIT_NOFILE, &lim, NULL), 0, "prlimit: %s", strerror(errno));
	int silent[40];
	for (int i = 0; i < 40; i++)
		silent[i] = silent_connection();
	h_sleep_ms(200);
	const double cpu0 = swarmd_cpu_s();
	h_sleep_ms(1000);
	const double busy = swarmd_cpu_s() - cpu0;
	int refused = 0;
	for (int i = 0; i < 40; i++)
		refused += closed_by_swarmd(silent[i]);
	for (int i = 0; i < 40; i++)
		close(silent[i]);
	cr_assert_lt(busy, 0.3, "swarmd used %.2f s of CPU in 1 s at its fd limit", busy);
	cr_assert_geq(refused, 20, "only %d of 40 connections past the limit were refused",
		      refused);
	cr_assert_eq(prlimit(d, RLIMIT_NOFILE, &old, NULL), 0);
	honest_round_trips_or_fail("after the descriptors came back");
	h_stop();
}

/* ---- a worker whose swarmd is gone ----------------------------------------------------------- */

/* For h_fork: opens a session, says so, then does round trips until killed. Exit codes: 2 no
 * session, 3 a round trip failed. */
static int child_loop(void *arg)
{
	const struct ready_args *a = arg;
	swarm_client *c;
	if (h_connect(&c))
		return 2;
	swarm_session *s = NULL;
	swarm_session_opts o = h_identity_opts();
	if (h_open_working(c, "identity", &o, &s, 10 * H_SEC))
		return 2;
	if (write(a->ready_fd, "r", 1) != 1)
		return 2;
	for (uint64_t k = 0; k < 100000000; k++)
		if (h_identity_roundtrip(s, 1, k, 5 * H_SEC))
			return 3;
	return 0;
}

/* Defect 7 of issue 15: after swarmd was killed, a worker holding a session whose client had
 * died was still up 14 minutes later. A worker whose swarmd is gone serves its sessions while
 * their clients live (the alive client's round trips go on), lets go of each whose client
 * exits, and leaves when none is left. */
Test(e2e_limits, a_worker_whose_swarmd_is_gone_leaves_with_its_last_client)
{
	h_start("cpu:1", NULL);
	pid_t workers[4];
	cr_assert_eq(h_worker_pids(workers, 4), 1);
	const pid_t w = workers[0];
	pid_t kids[2];
	for (int i = 0; i < 2; i++) {
		struct ready_args a = { .ready_fd = -1 };
		int ready;
		kids[i] = h_fork_ready(child_loop, &a, &a.ready_fd, 10 * H_SEC, &ready);
		cr_assert(kids[i] > 0 && ready, "client %d got no session", i);
	}
	h_kill_swarmd();
	/* the first client dies: its session goes, the worker stays for the second */
	kill(kids[0], SIGKILL);
	cr_assert_eq(h_child_wait(kids[0], 5 * H_SEC), 256 + SIGKILL);
	h_sleep_ms(1000);
	cr_assert(h_alive(w), "the worker left while a live client still had a session");
	cr_assert(h_alive(kids[1]), "the live client's round trips failed without swarmd");
	/* the last client dies: the worker leaves within a few ticks */
	kill(kids[1], SIGKILL);
	cr_assert_eq(h_child_wait(kids[1], 5 * H_SEC), 256 + SIGKILL);
	uint64_t t0 = h_now_ns();
	while (h_alive(w) && h_now_ns() - t0 < 5 * H_SEC)
		h_sleep_ms(20);
	const int alive = h_alive(w);
	if (alive)
		kill(w, SIGKILL);
	cr_assert(!alive, "the worker %d was still up 5 s after its last client died", (int)w);
}

/* ---- exactly once after a worker dies ------------------------------------------------------- */

TestSuite(e2e_recovery, .fini = teardown, .timeout = 90);

/* One try: a request of 262144 rows (16 MiB each way) submitted with flags; as soon as its
 * output starts to appear the serving worker is stopped, then killed. Returns the request's
 * status after recovery, with *wrong set when its output is not its input (a completion). */
static int killed_mid_request(swarm_session *s, uint32_t flags, int *wrong)
{
	const uint32_t rows = 262144;
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	swarm_request *r = NULL;
	cr_assert_eq(swarm_request_alloc(s, rows, &r), 0);
	uint8_t *in = swarm_request_input(r, 0);
	volatile const uint8_t *out = swarm_request_output(r, 0);
	h_pattern(in, (size_t)rows * 64, 4242);
	/* a byte 1 MiB in, not the first: memcpy writes its first and last vectors after its
	 * loop, so the first byte shows only when the copy is done */
	const size_t at = (size_t)1 << 20;
	memset((void *)(out + at), in[at] ^ 0xff, 64);
	cr_assert_eq(swarm_request_submit(r, flags), 0);
	uint64_t end = h_now_ns() + 5 * H_SEC;
	while (out[at] != in[at] && h_now_ns() < end)
		;
	kill(info.worker_pid, SIGSTOP);
	kill(info.worker_pid, SIGKILL);
	int rc = swarm_request_wait(r, 20 * H_SEC);
	*wrong = rc == 0 && memcmp((const void *)out, in, (size_t)rows * 64) != 0;
	swarm_request_release(r);
	return rc;
}

/* Defect 8 of issue 15: a request submitted with SWARM_REQUEST_NO_RETRY ran again after its
 * worker died (the worker moved its queue's head only after a whole pass, so the next worker
 * took the interrupted pass again), and -ECONNABORTED never appeared. The worker now takes
 * each request, moving the head past it, before it runs it: a NO_RETRY request it took and
 * did not complete fails with -ECONNABORTED, and one that may run again completes, once. */
Test(e2e_recovery, a_no_retry_request_its_worker_took_fails_with_econnaborted)
{
	h_start("cpu:2", NULL);
	swarm_client *c = h_connect_or_fail();
	swarm_session_opts o = { .slots = 2, .queue_depth = 2, .max_rows = 262144 };
	swarm_session *s = NULL;
	cr_assert_eq(h_open_working(c, "identity", &o, &s, 10 * H_SEC), 0, "[%s]",
		     swarm_client_error(c));
	int aborted = 0, tries = 0, wrong = 0;
	/* the kill must land while the worker copies; on a loaded machine the copy may finish
	 * first, and that try shows only that the request completed once */
	for (; tries < 40 && !aborted; tries++) {
		int rc = killed_mid_request(s, SWARM_REQUEST_NO_RETRY, &wrong);
		cr_assert(rc == -ECONNABORTED || (rc == 0 && !wrong),
			  "try %d: a NO_RETRY request its worker died in returned %d%s", tries, rc,
			  wrong ? " with a wrong output" : "");
		aborted = rc == -ECONNABORTED;
		/* the session goes on, on the other device or the dead one's replacement */
		cr_assert_eq(h_identity_roundtrip(s, 4, 100 + (uint64_t)tries, 20 * H_SEC), 0,
			     "try %d: the session's next request failed", tries);
	}
	cr_assert(aborted, "in %d tries no NO_RETRY request its worker took ended in -ECONNABORTED",
		  tries);
	/* a request that may run again completes, with its own output */
	int rc = killed_mid_request(s, 0, &wrong);
	cr_assert_eq(rc, 0, "a retryable request its worker died in: %d", rc);
	cr_assert(!wrong, "its output is not its input");
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* ---- garbage and floods, an honest client beside each -----------------------------------------
 */

/* swarmd's resident memory in KiB, from /proc. */
static long swarmd_rss_kb(void)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)h_swarmd_pid());
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert_gt(kb, 0, "no VmRSS for swarmd");
	return kb;
}

static int silent_connection(void);

/* A raw connection that has said hello (the reply read), or fails the test. */
static int hello_connection(void)
{
	int fd = silent_connection();
	struct swarm_msg_hello m;
	memset(&m, 0, sizeof m);
	swarm_msg_init(&m.h, SWARM_MSG_HELLO, sizeof m, 1);
	m.pid = getpid();
	m.cpu = -1;
	m.numa_node = -1;
	struct swarm_msg_reply r;
	cr_assert_eq(swarm_msg_send(fd, &m, sizeof m, NULL, 0), 0);
	int n = swarm_msg_recv(fd, &r, sizeof r, NULL, NULL);
	cr_assert(n > 0 && swarm_msg_check(&r, (size_t)n) == SWARM_MSG_HELLO_REPLY && !r.status,
		  "no hello reply (%d)", n);
	return fd;
}

/* The sessions swarmd holds, from its STATUS reply (the raw protocol, as `swarm status`). */
static uint32_t swarmd_sessions(void)
{
	int fd = hello_connection();
	struct swarm_msg_hdr q;
	swarm_msg_init(&q, SWARM_MSG_STATUS, sizeof q, 2);
	struct swarm_msg_status_reply *r = malloc(sizeof *r);
	cr_assert_not_null(r);
	cr_assert_eq(swarm_msg_send(fd, &q, sizeof q, NULL, 0), 0);
	int n = swarm_msg_recv(fd, r, sizeof *r, NULL, NULL);
	cr_assert_eq(swarm_msg_check(r, (size_t)(n > 0 ? n : 0)), SWARM_MSG_STATUS_REPLY,
		     "no status reply (%d)", n);
	uint32_t total = r->total_sessions;
	free(r);
	close(fd);
	return total;
}

static int workers_fds0; /* the workers' descriptors when swarmd's were taken (settled_fds) */

/* The descriptors of every worker together (their pids may change only if one dies, which
 * no attack here may cause: a worker's death fails the comparison). */
static int worker_fds(void)
{
	pid_t pids[16];
	int n = h_worker_pids(pids, 16), total = 0;
	for (int i = 0; i < n; i++)
		total += h_count_fds(pids[i]);
	return total;
}

/* swarmd's descriptors once they stop changing (a client that just left may not have been
 * seen to go yet). */
static int settled_fds(void)
{
	int n = h_count_fds(h_swarmd_pid());
	for (int tries = 0; tries < 50; tries++) {
		h_sleep_ms(100);
		int m = h_count_fds(h_swarmd_pid());
		if (m == n)
			break;
		n = m;
	}
	workers_fds0 = worker_fds();
	return n;
}

/* An honest client in a child doing checked round trips for duration: started, ready. */
static pid_t honest_beside(struct h_honest_args *a, int64_t duration)
{
	int ready = 0;
	*a = (struct h_honest_args){ .duration_ns = duration, .tag_base = 7 << 20 };
	pid_t p = h_fork_ready(h_honest_client, a, &a->ready_fd, 10 * H_SEC, &ready);
	cr_assert(p > 0 && ready, "the honest client did not start");
	return p;
}

/* After an attack: the honest client did all its round trips right, and swarmd is back to
 * its baseline of descriptors and sessions, its memory within slack_kb of where it was. */
static void back_to_baseline(pid_t honest, int fds0, long rss0, long slack_kb, const char *what)
{
	cr_assert_eq(h_child_wait(honest, 30 * H_SEC), 0, "%s: the honest client failed", what);
	int fds = -1;
	uint32_t sessions = UINT32_MAX;
	int wfds = -1;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; h_now_ns() < end; h_sleep_ms(50)) {
		fds = h_count_fds(h_swarmd_pid());
		wfds = worker_fds();
		if (fds == fds0 && wfds == workers_fds0 && (sessions = swarmd_sessions()) == 0)
			break;
	}
	const long rss = swarmd_rss_kb();
	fprintf(stderr,
		"%s: swarmd fds %d (baseline %d), sessions %u, rss %ld kB (baseline %ld); workers' "
		"fds %d (baseline %d)\n",
		what, fds, fds0, sessions, rss, rss0, wfds, workers_fds0);
	cr_assert_eq(fds, fds0, "%s: swarmd holds %d fds, %d before", what, fds, fds0);
	cr_assert_eq(wfds, workers_fds0, "%s: the workers hold %d fds, %d before", what, wfds,
		     workers_fds0);
	cr_assert_eq(sessions, 0, "%s: swarmd still holds %u sessions", what, sessions);
	cr_assert_lt(rss - rss0, slack_kb, "%s: swarmd's memory grew from %ld to %ld kB", what,
		     rss0, rss);
}

/* Sends one raw packet on a fresh connection (after a valid hello when hello is set) and
 * returns 1 when swarmd closed the connection within 2 s. */
static int garbage_closes(const void *buf, size_t len, int hello)
{
	int fd = hello ? hello_connection() : silent_connection();
	cr_assert_eq(send(fd, buf, len, 0), (ssize_t)len, "send: %s", strerror(errno));
	int closed = 0;
	for (uint64_t end = h_now_ns() + 2 * H_SEC; !closed && h_now_ns() < end;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) == 1) {
			char b[4096];
			ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
			closed = n == 0 || (n < 0 && errno != EAGAIN);
		}
	}
	close(fd);
	return closed;
}

/* Garbage on the control socket: short packets, bad magic, a valid header of an unknown type,
 * of a worker's type, with a length that lies, a packet larger than any message, random
 * bytes. Each closes only that connection; the honest client beside is never disturbed. */
Test(e2e_hostile, garbage_on_the_control_socket_closes_only_that_connection)
{
	const int fds0 = settled_fds();
	const long rss0 = swarmd_rss_kb();
	struct h_honest_args a;
	pid_t honest = honest_beside(&a, 3 * H_SEC);
	uint8_t buf[4096];
	struct swarm_msg_hdr h;
	swarm_msg_init(&h, SWARM_MSG_STATUS, sizeof h, 1);
	int closed = 0, tried = 0;
	for (int hello = 0; hello < 2; hello++) {
		closed += garbage_closes("x", 1, hello), tried++;
		struct swarm_msg_hdr bad = h;
		bad.magic ^= 1;
		closed += garbage_closes(&bad, sizeof bad, hello), tried++;
		bad = h;
		bad.type = 200;
		closed += garbage_closes(&bad, sizeof bad, hello), tried++;
		bad = h;
		bad.type = SWARM_MSG_ATTACH_REPLY; /* a worker's message from a client */
		memset(buf, 0, sizeof buf);
		memcpy(buf, &bad, sizeof bad);
		closed += garbage_closes(buf, sizeof(struct swarm_msg_attach_reply), hello),
			tried++;
		bad = h;
		bad.len = 4000;
		memcpy(buf, &bad, sizeof bad);
		closed += garbage_closes(buf, sizeof bad, hello), tried++;
		memcpy(buf, &h, sizeof h);
		closed += garbage_closes(buf, sizeof buf, hello), tried++; /* too long a packet */
		uint64_t x = 0x9e3779b97f4a7c15ull;
		for (size_t i = 0; i < sizeof buf; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		for (size_t len = 3; len < sizeof buf; len = len * 3 + 1)
			closed += garbage_closes(buf, len, hello), tried++;
	}
	cr_assert_eq(closed, tried, "swarmd closed %d of %d garbage connections", closed, tried);
	cr_assert(h_log_contains("event=client_bad_message"), "no client_bad_message logged");
	back_to_baseline(honest, fds0, rss0, 4096, "garbage");
	h_stop();
}

/* A flood of connections and of opens and closes from many clients at once, an honest client
 * beside: swarmd serves them all, and is back to its descriptors, no session and its memory
 * once they have gone. */
static int open_close_flood(void *arg)
{
	(void)arg;
	for (int k = 0; k < 40; k++) {
		swarm_client *c = NULL;
		if (swarm_connect(h_socket(), &c))
			return 2;
		for (int j = 0; j < 5; j++) {
			swarm_session_opts o = h_identity_opts();
			swarm_session *s = NULL;
			if (swarm_session_open(c, "identity", 0, &o, &s))
				return 3;
			if (j % 2 == 0 && swarm_session_close(s))
				return 4;
		}
		swarm_disconnect(c); /* the sessions left open go with it */
	}
	return 0;
}

Test(e2e_hostile, a_flood_of_connections_and_opens_leaves_swarmd_as_it_was)
{
	honest_round_trips_or_fail("warm-up"); /* the identity version is loaded before the baseline
						*/
	const int fds0 = settled_fds();
	const long rss0 = swarmd_rss_kb();
	struct h_honest_args a;
	pid_t honest = honest_beside(&a, 4 * H_SEC);
	pid_t flood[6];
	for (int i = 0; i < 6; i++)
		flood[i] = h_fork(open_close_flood, NULL);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(h_child_wait(flood[i], 60 * H_SEC), 0, "flooder %d failed", i);
	back_to_baseline(honest, fds0, rss0, 8192, "1,200 opens from 240 connections");
	h_stop();
}

/* A client that sends requests and never reads the replies: before, each reply its full
 * socket did not take was dropped; now they wait in its outbox, and at 32 waiting the client
 * is closed (event=client_unresponsive). An honest client is served throughout, and swarmd
 * is back to its baseline. */
Test(e2e_hostile, a_client_that_never_reads_its_replies_is_closed)
{
	const int fds0 = settled_fds();
	const long rss0 = swarmd_rss_kb();
	struct h_honest_args a;
	pid_t honest = honest_beside(&a, 3 * H_SEC);
	int fd = hello_connection();
	struct swarm_msg_hdr q;
	swarm_msg_init(&q, SWARM_MSG_STATUS, sizeof q, 2);
	int sent = 0;
	for (uint64_t end = h_now_ns() + 10 * H_SEC;
	     sent < 2000 && h_now_ns() < end && !h_log_contains("event=client_unresponsive");) {
		if (send(fd, &q, sizeof q, MSG_DONTWAIT) == (ssize_t)sizeof q)
			sent++;
		else
			h_sleep_ms(5);
	}
	for (uint64_t end = h_now_ns() + 5 * H_SEC;
	     !h_log_contains("event=client_unresponsive") && h_now_ns() < end;)
		h_sleep_ms(20);
	cr_assert(h_log_contains("event=client_unresponsive"),
		  "%d requests never read, and swarmd did not close the client", sent);
	/* its socket ends after what was queued in it (a reset when swarmd closed it with
	 * requests unread) */
	char *buf = malloc(1 << 20);
	cr_assert_not_null(buf);
	int end_seen = 0;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; !end_seen && h_now_ns() < end;) {
		ssize_t n = recv(fd, buf, 1 << 20, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			end_seen = 1;
		else if (n < 0)
			h_sleep_ms(10);
	}
	free(buf);
	close(fd);
	cr_assert(end_seen, "the unresponsive client's connection was not closed");
	back_to_baseline(honest, fds0, rss0, 8192, "a client that never reads");
	h_stop();
}
