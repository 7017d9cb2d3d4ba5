/* test_failures.c: what a failure costs, against a real swarmd with one CPU device (so that
 * every session shares the one worker): a client killed mid-request, a worker killed, a
 * hostile client writing its own segment, a client that never collects its completions, a
 * full submission queue. In each case the damage stays with the one session that caused or
 * suffered it, and everybody else keeps being served correctly. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "ipc/ring.h"

static void setup(void) { h_start("cpu:1", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_failures, .init = setup, .fini = teardown, .timeout = 90);

/* ---- helpers ------------------------------------------------------------------------------ */

static swarm_session *open_identity_or_fail(swarm_client *c, uint32_t slots, uint32_t qd)
{
	swarm_session_opts o = h_identity_opts();
	if (slots)
		o.slots = slots;
	if (qd)
		o.queue_depth = qd;
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "identity", 0, &o, &s);
	if (rc)
		h_print_log("session open failed");
	cr_assert_eq(rc, 0, "open identity (slots %u, queue_depth %u): %d (%s) [%s]", o.slots,
		     o.queue_depth, rc, swarm_strerror(rc), swarm_client_error(c));
	return s;
}

static void roundtrips_or_fail(swarm_session *s, uint64_t tag, int n, const char *when)
{
	for (int i = 0; i < n; i++) {
		uint32_t rows = 1 + (uint32_t)((tag + (uint64_t)i) % 64);
		int rc = h_identity_roundtrip(s, rows, tag + (uint64_t)i, 5 * H_SEC);
		if (rc)
			h_print_log(when);
		cr_assert_eq(rc, 0, "%s: round trip %d (rows %u): %d (%s)", when, i, rows, rc,
			     rc == H_EMISMATCH ? "output mismatch" : swarm_strerror(rc));
	}
}

static pid_t the_worker_or_fail(void)
{
	pid_t w[8];
	int n = h_worker_pids(w, 8);
	cr_assert_eq(n, 1, "swarmd %d has %d swarm-worker children, want 1", (int)h_swarmd_pid(),
		     n);
	return w[0];
}

static void stop_worker(pid_t w)
{
	cr_assert_eq(kill(w, SIGSTOP), 0, "SIGSTOP %d: %s", (int)w, strerror(errno));
	cr_assert_eq(h_wait_stopped(w, 2 * H_SEC), 0, "worker %d not stopped (state %c)", (int)w,
		     h_proc_state(w));
}

static void swarmd_alive_or_fail(pid_t expect)
{
	cr_assert_eq(h_swarmd_pid(), expect, "swarmd pid changed");
	cr_assert(h_alive(expect), "swarmd %d died", (int)expect);
	cr_assert_eq(waitpid(expect, NULL, WNOHANG), 0, "swarmd %d exited", (int)expect);
}

/* Waits up to 2 s for the fd counts of swarmd and the worker to come back to (at most) their
 * baselines, doing honest round trips on s all the while. */
static void fds_back_to_baseline(pid_t d, int base_d, pid_t w, int base_w, swarm_session *s)
{
	uint64_t start = h_now_ns(), end = start + 2 * H_SEC;
	int now_d, now_w;
	uint64_t tag = 500000;
	for (;;) {
		now_d = h_count_fds(d);
		now_w = h_count_fds(w);
		if (now_d <= base_d && now_w <= base_w)
			break;
		if (h_now_ns() >= end)
			break;
		roundtrips_or_fail(s, tag, 1, "honest session while the dead client is cleaned up");
		tag++;
		h_sleep_ms(10);
	}
	fprintf(stderr, "fds after %.0f ms: swarmd %d (baseline %d), worker %d (baseline %d)\n",
		(double)(h_now_ns() - start) / 1e6, now_d, base_d, now_w, base_w);
	if (now_d > base_d || now_w > base_w)
		h_print_log("fds not released");
	cr_assert_leq(now_d, base_d,
		      "swarmd %d holds %d fds 2 s after the client died, "
		      "baseline %d",
		      (int)d, now_d, base_d);
	cr_assert_leq(now_w, base_w,
		      "worker %d holds %d fds 2 s after the client died, "
		      "baseline %d",
		      (int)w, now_w, base_w);
}

/* ---- a client killed mid-request ------------------------------------------------------ */

static int child_submit_then_die(void *arg)
{
	(void)arg;
	swarm_client *c;
	if (h_connect(&c))
		return 2;
	swarm_session_opts o = h_identity_opts();
	swarm_session *s;
	if (h_open_working(c, "identity", &o, &s, 5 * H_SEC))
		return 3;
	for (int i = 0; i < 8; i++) {
		swarm_request *r;
		if (swarm_request_alloc(s, 64, &r))
			return 4;
		h_pattern(swarm_request_input(r, 0), 64 * 64, (uint64_t)i);
		if (swarm_request_submit(r, 0))
			return 5;
	}
	raise(SIGKILL);
	return 6;
}

struct looper_args {
	int ready_fd;
};

static int child_loop_until_killed(void *arg)
{
	struct looper_args *a = arg;
	swarm_client *c;
	if (h_connect(&c))
		return 2;
	swarm_session_opts o = h_identity_opts();
	swarm_session *s;
	if (h_open_working(c, "identity", &o, &s, 5 * H_SEC))
		return 3;
	char one = 1;
	if (write(a->ready_fd, &one, 1) != 1)
		return 4;
	uint64_t end = h_now_ns() + 30 * H_SEC; /* the parent kills us long before */
	for (uint64_t i = 0; h_now_ns() < end; i++) {
		int rc = h_identity_roundtrip(s, 1 + (uint32_t)(i % 64), i, 5 * H_SEC);
		if (rc)
			return 5;
	}
	return 6;
}

static void client_killed_case(int parent_kills)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity_or_fail(c, 0, 0);
	roundtrips_or_fail(s, 1, 20, "honest session before");
	pid_t d = h_swarmd_pid(), w = the_worker_or_fail();
	h_sleep_ms(100);
	int base_d = h_count_fds(d), base_w = h_count_fds(w);
	cr_assert_gt(base_d, 0, "fds of swarmd: %d", base_d);
	cr_assert_gt(base_w, 0, "fds of worker: %d", base_w);

	pid_t child;
	int st;
	if (!parent_kills) {
		child = h_fork(child_submit_then_die, NULL);
		cr_assert_gt(child, 0);
		roundtrips_or_fail(s, 1000, 50, "honest session while the client dies");
		st = h_child_wait(child, 10 * H_SEC);
	} else {
		int p[2];
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		struct looper_args a = { .ready_fd = p[1] };
		child = h_fork(child_loop_until_killed, &a);
		cr_assert_gt(child, 0);
		close(p[1]);
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int pr = poll(&pf, 1, 10000);
		char b = 0;
		ssize_t got = pr == 1 ? read(p[0], &b, 1) : -1;
		close(p[0]);
		if (got != 1) {
			st = h_child_wait(child, 1 * H_SEC);
			cr_assert_fail("looping client never got going: poll %d, exit %d", pr, st);
		}
		fprintf(stderr, "while the client loops: swarmd %d fds, worker %d fds\n",
			h_count_fds(d), h_count_fds(w));
		roundtrips_or_fail(s, 1000, 50, "honest session beside the looping client");
		kill(child, SIGKILL);
		st = h_child_wait(child, 10 * H_SEC);
	}
	cr_assert_eq(st, 256 + SIGKILL, "the client should have died of SIGKILL: status %d", st);

	roundtrips_or_fail(s, 2000, 20, "honest session right after the client died");
	fds_back_to_baseline(d, base_d, w, base_w, s);
	swarmd_alive_or_fail(d);
	cr_assert_eq(the_worker_or_fail(), w, "the worker changed");
	roundtrips_or_fail(s, 3000, 50, "honest session after");
	/* and a new client can take the freed place */
	swarm_client *c2 = h_connect_or_fail();
	swarm_session *s2 = open_identity_or_fail(c2, 0, 0);
	roundtrips_or_fail(s2, 4000, 20, "new session after");
	swarm_session_close(s2);
	swarm_disconnect(c2);
	swarm_session_close(s);
	swarm_disconnect(c);
}

Test(e2e_failures, client_killed_after_submit_releases_its_session)
{
	client_killed_case(0);
	h_stop();
}

Test(e2e_failures, client_killed_while_looping_releases_its_session)
{
	client_killed_case(1);
	h_stop();
}

/* ---- a worker killed ------------------------------------------------------------------ */

/* The only device's worker dies with a request in flight: the session waits for the
 * replacement worker, which runs the request; the client sees latency, not an error. */
Test(e2e_failures, worker_killed_in_flight_request_runs_on_its_replacement)
{
	pid_t d = h_swarmd_pid();
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity_or_fail(c, 0, 0);
	roundtrips_or_fail(s, 1, 5, "before");
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	pid_t w = info.worker_pid;
	cr_assert_eq(the_worker_or_fail(), w, "info names worker %d", (int)w);

	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 1, &r), 0);
	h_pattern(swarm_request_input(r, 0), 64, 9);
	stop_worker(w);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	h_sleep_ms(20);
	uint64_t t0 = h_now_ns();
	cr_assert_eq(kill(w, SIGKILL), 0, "SIGKILL %d: %s", (int)w, strerror(errno));
	int rc = swarm_request_wait(r, 10 * H_SEC);
	double ms = (double)(h_now_ns() - t0) / 1e6;
	fprintf(stderr, "wait after the worker's SIGKILL: %d (%s) after %.1f ms\n", rc,
		swarm_strerror(rc), ms);
	if (rc)
		h_print_log("worker killed");
	cr_assert_eq(rc, 0, "wait: %d (%s) after %.1f ms, want the request run again", rc,
		     swarm_strerror(rc), ms);
	uint8_t want[64];
	h_pattern(want, sizeof want, 9);
	cr_assert_eq(memcmp(swarm_request_output(r, 0), want, sizeof want), 0,
		     "the re-run request's output differs from its input");
	cr_assert_eq(swarm_request_release(r), 0);

	pid_t nw = h_wait_new_worker(w, 5 * H_SEC);
	if (nw <= 0)
		h_print_log("no replacement worker");
	cr_assert_gt(nw, 0, "no replacement worker for %d within 5 s", (int)w);
	cr_assert(!h_alive(w), "old worker %d still alive", (int)w);
	swarmd_alive_or_fail(d);

	/* The first session moved to the replacement worker and goes on. swarmd publishes the
	 * new placement when the worker confirms the attach, which may come just after the
	 * worker has already served the request. */
	for (uint64_t end = h_now_ns() + 2 * H_SEC; h_now_ns() < end; h_sleep_ms(1)) {
		cr_assert_eq(swarm_session_info_get(s, &info), 0);
		if (info.worker_pid == nw)
			break;
	}
	if (info.worker_pid != nw)
		h_print_log("moved session");
	cr_assert_eq(info.worker_pid, nw, "the session names worker %d, the new one is %d",
		     info.worker_pid, (int)nw);
	roundtrips_or_fail(s, 300, 20, "the moved session");

	swarm_session_opts o = h_identity_opts();
	swarm_session *s2;
	rc = h_open_working(c, "identity", &o, &s2, 5 * H_SEC);
	if (rc)
		h_print_log("no working session after the restart");
	cr_assert_eq(rc, 0, "session after the worker restart: %d (%s)", rc, swarm_strerror(rc));
	cr_assert_eq(swarm_session_info_get(s2, &info), 0);
	cr_assert_eq(info.worker_pid, nw, "new session served by %d, the new worker is %d",
		     info.worker_pid, (int)nw);
	roundtrips_or_fail(s2, 100, 100, "after the worker restart");
	swarm_session_close(s);
	swarm_session_close(s2);

	/* and a second client from scratch */
	swarm_client *c2 = h_connect_or_fail();
	swarm_session *s3 = open_identity_or_fail(c2, 0, 0);
	roundtrips_or_fail(s3, 200, 20, "new client after the worker restart");
	swarm_session_close(s3);
	swarm_disconnect(c2);
	swarm_disconnect(c);
	h_stop();
}

/* ---- hostile clients ---------------------------------------------------------------------- */

struct hostile {
	swarm_client *c;
	swarm_session *s;
	swarm_session_info info;
	struct h_seg seg;
	pid_t swarmd, worker, honest;
};

static void hostile_begin(struct hostile *x)
{
	memset(x, 0, sizeof *x);
	x->swarmd = h_swarmd_pid();
	x->c = h_connect_or_fail();
	x->s = open_identity_or_fail(x->c, 0, 0);
	roundtrips_or_fail(x->s, 1, 10, "hostile session's honest start");
	cr_assert_eq(swarm_session_info_get(x->s, &x->info), 0);
	x->worker = x->info.worker_pid;
	cr_assert_eq(the_worker_or_fail(), x->worker);
	int rc = h_seg_find(x->info.session_id, &x->seg);
	cr_assert_eq(rc, 0, "segment of session %llu: %d", (unsigned long long)x->info.session_id,
		     rc);
	/* What libswarm pushed last: a slot index (shown to help read a failure). */
	uint32_t t = __atomic_load_n(&x->seg.hdr->sq_tail.v, __ATOMIC_ACQUIRE);
	uint32_t hd = __atomic_load_n(&x->seg.hdr->sq_head.v, __ATOMIC_ACQUIRE);
	fprintf(stderr,
		"segment: %zu bytes, %u slots, queue depth %u, sq_tail %u sq_head %u, "
		"last entry 0x%llx\n",
		x->seg.bytes, x->seg.geo.nslots, x->seg.geo.queue_depth, t, hd,
		(unsigned long long)x->seg.sq[(t - 1) & (x->seg.geo.queue_depth - 1)]);

	/* An honest client in another process, served by the same worker throughout. */
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	static struct h_honest_args a;
	a.duration_ns = 3 * H_SEC;
	a.tag_base = 1u << 20;
	a.ready_fd = p[1];
	x->honest = h_fork(h_honest_client, &a);
	cr_assert_gt(x->honest, 0);
	close(p[1]);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	int pr = poll(&pf, 1, 10000);
	char b;
	ssize_t got = pr == 1 ? read(p[0], &b, 1) : -1;
	close(p[0]);
	if (got != 1) {
		int st = h_child_wait(x->honest, 1 * H_SEC);
		cr_assert_fail("honest client never got going: exit %d", st);
	}
}

static void hostile_end(struct hostile *x)
{
	cr_assert(h_alive(x->worker), "the worker %d died of a hostile segment", (int)x->worker);
	cr_assert_eq(the_worker_or_fail(), x->worker, "the worker was replaced");
	swarmd_alive_or_fail(x->swarmd);
	/* an honest session of another client in this process */
	swarm_client *c2 = h_connect_or_fail();
	swarm_session *s2 = open_identity_or_fail(c2, 0, 0);
	roundtrips_or_fail(s2, 7000, 200, "honest session after the attack");
	int st = h_child_wait(x->honest, 10 * H_SEC);
	cr_assert_eq(st, 0, "the honest client in another process failed: exit %d", st);
	cr_assert_eq(the_worker_or_fail(), x->worker, "the worker was replaced");
	swarm_session_close(s2);
	swarm_disconnect(c2);
	h_seg_unmap(&x->seg);
	swarm_session_close(x->s);
	swarm_disconnect(x->c);
}

/* The worker must detach the session (state DETACHED in its segment) within 5 s, and the
 * client API then reports -EBADMSG for it. */
static void expect_detached(struct hostile *x, const char *attack)
{
	uint64_t t0 = h_now_ns(), end = t0 + 5 * H_SEC;
	uint32_t state;
	while ((state = h_seg_state(&x->seg)) != SWARM_SEG_STATE_DETACHED && h_now_ns() < end)
		h_sleep_ms(2);
	swarm_request *done[8];
	int prc = swarm_session_poll(x->s, done, 8);
	fprintf(stderr, "%s: segment state %u after %.1f ms; swarm_session_poll %d (%s)\n", attack,
		state, (double)(h_now_ns() - t0) / 1e6, prc, swarm_strerror(prc));
	if (state != SWARM_SEG_STATE_DETACHED)
		h_print_log(attack);
	cr_assert_eq(state, SWARM_SEG_STATE_DETACHED,
		     "%s: segment state %u 5 s later, want DETACHED (%u)", attack, state,
		     SWARM_SEG_STATE_DETACHED);
	cr_assert(prc == 0 || prc == -EBADMSG, "%s: session poll %d (%s)", attack, prc,
		  swarm_strerror(prc));
	/* and every later request on it fails with -EBADMSG, promptly */
	swarm_request *r;
	int rc = swarm_request_alloc(x->s, 1, &r);
	if (rc == 0) {
		h_pattern(swarm_request_input(r, 0), 64, 1);
		rc = swarm_request_submit(r, 0);
		if (rc == 0)
			rc = swarm_request_wait(r, 5 * H_SEC);
		else
			swarm_request_release(r);
	}
	cr_assert_eq(rc, -EBADMSG, "%s: a request on the detached session: %d (%s)", attack, rc,
		     swarm_strerror(rc));
}

static void push_raw_tail(struct hostile *x, uint32_t tail)
{
	/* Release, as libswarm's own push: the entries we wrote are visible before the tail. */
	__atomic_store_n(&x->seg.hdr->sq_tail.v, tail, __ATOMIC_RELEASE);
	h_kick_eventfds();
}

Test(e2e_failures, hostile_sq_entry_with_slot_out_of_range_detaches_only_that_session)
{
	struct hostile x;
	hostile_begin(&x);
	uint32_t t = __atomic_load_n(&x.seg.hdr->sq_tail.v, __ATOMIC_RELAXED);
	uint32_t mask = x.seg.geo.queue_depth - 1;
	__atomic_store_n(&x.seg.sq[t & mask], (uint64_t)x.seg.geo.nslots + 1000, __ATOMIC_RELAXED);
	push_raw_tail(&x, t + 1);
	expect_detached(&x, "slot out of range");
	hostile_end(&x);
	h_stop();
}

Test(e2e_failures, hostile_sq_entry_with_huge_slot_detaches_only_that_session)
{
	struct hostile x;
	hostile_begin(&x);
	uint32_t t = __atomic_load_n(&x.seg.hdr->sq_tail.v, __ATOMIC_RELAXED);
	uint32_t mask = x.seg.geo.queue_depth - 1;
	__atomic_store_n(&x.seg.sq[t & mask], UINT64_MAX, __ATOMIC_RELAXED);
	push_raw_tail(&x, t + 1);
	expect_detached(&x, "slot UINT64_MAX");
	hostile_end(&x);
	h_stop();
}

Test(e2e_failures, hostile_rows_above_max_rows_fails_only_that_request)
{
	struct hostile x;
	hostile_begin(&x);
	const uint32_t bad[] = { x.seg.geo.max_rows + 1, UINT32_MAX, 0 };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		swarm_request *r;
		cr_assert_eq(swarm_request_alloc(x.s, 1, &r), 0);
		h_pattern(swarm_request_input(r, 0), 64, 5);
		/* Stop the worker so that our write lands between libswarm's submit and the
		 * worker's read: rewrite the rows of the entry just pushed. */
		stop_worker(x.worker);
		int rc = swarm_request_submit(r, 0);
		uint32_t t = __atomic_load_n(&x.seg.hdr->sq_tail.v, __ATOMIC_RELAXED) - 1;
		uint64_t *e = &x.seg.sq[t & (x.seg.geo.queue_depth - 1)];
		uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);
		__atomic_store_n(e, swarm_sqe_pack(swarm_sqe_slot(v), swarm_sqe_flags(v), bad[i]),
				 __ATOMIC_RELAXED);
		kill(x.worker, SIGCONT);
		cr_assert_eq(rc, 0, "submit: %d", rc);
		rc = swarm_request_wait(r, 5 * H_SEC);
		if (rc != -EINVAL)
			h_print_log("bad rows");
		cr_assert_eq(rc, -EINVAL,
			     "rows %u in the submission entry (max_rows %u): status %d (%s), "
			     "want -EINVAL",
			     bad[i], x.seg.geo.max_rows, rc, swarm_strerror(rc));
		cr_assert_eq(swarm_request_release(r), 0);
	}
	/* a bad request is not a broken session: it goes on serving */
	cr_assert_eq(h_seg_state(&x.seg), SWARM_SEG_STATE_ACTIVE, "state %u", h_seg_state(&x.seg));
	roundtrips_or_fail(x.s, 300, 50, "the session that sent bad rows");
	hostile_end(&x);
	h_stop();
}

Test(e2e_failures, hostile_sq_tail_far_past_queue_depth_detaches_only_that_session)
{
	struct hostile x;
	hostile_begin(&x);
	uint32_t t = __atomic_load_n(&x.seg.hdr->sq_tail.v, __ATOMIC_RELAXED);
	push_raw_tail(&x, t + 1000 * x.seg.geo.queue_depth);
	expect_detached(&x, "sq_tail skipped far ahead");
	hostile_end(&x);
	h_stop();
}

Test(e2e_failures, hostile_sq_tail_moved_backwards_detaches_only_that_session)
{
	struct hostile x;
	hostile_begin(&x);
	uint32_t t = __atomic_load_n(&x.seg.hdr->sq_tail.v, __ATOMIC_RELAXED);
	push_raw_tail(&x, t - 5); /* wraps below the head: 2^32 - 5 entries "pending" */
	expect_detached(&x, "sq_tail moved backwards");
	hostile_end(&x);
	h_stop();
}

/* ---- a client that never collects -------------------------------------------------------- */

static int child_fill_and_stall(void *arg)
{
	struct looper_args *a = arg;
	swarm_client *c;
	if (h_connect(&c))
		return 2;
	swarm_session_opts o = h_identity_opts();
	swarm_session *s;
	if (h_open_working(c, "identity", &o, &s, 5 * H_SEC))
		return 3;
	for (int i = 0; i < 8; i++) {
		swarm_request *r;
		int rc = swarm_request_alloc(s, 64, &r);
		if (rc) {
			fprintf(stderr, "stalling client: alloc %d: %d\n", i, rc);
			return 4;
		}
		h_pattern(swarm_request_input(r, 0), 64 * 64, (uint64_t)i);
		uint64_t end = h_now_ns() + 5 * H_SEC;
		while ((rc = swarm_request_submit(r, 0)) == -EAGAIN && h_now_ns() < end)
			h_sleep_ms(1);
		if (rc) {
			fprintf(stderr, "stalling client: submit %d: %d\n", i, rc);
			return 5;
		}
	}
	swarm_request *r;
	int rc = swarm_request_alloc(s, 1, &r);
	if (rc != -EAGAIN) {
		fprintf(stderr, "stalling client: a 9th alloc of 8 slots returned %d\n", rc);
		return 6;
	}
	char one = 1;
	if (write(a->ready_fd, &one, 1) != 1)
		return 7;
	h_sleep_ms(60000); /* never collect; the parent kills us */
	return 8;
}

Test(e2e_failures, client_that_never_collects_does_not_starve_others)
{
	struct looper_args a = { .ready_fd = -1 };
	int ready;
	pid_t child = h_fork_ready(child_fill_and_stall, &a, &a.ready_fd, 10 * H_SEC, &ready);
	cr_assert_gt(child, 0);
	if (!ready) {
		int st = h_child_wait(child, 1 * H_SEC);
		cr_assert_fail("the stalling client never filled its slots: exit %d", st);
	}
	pid_t w = the_worker_or_fail();
	h_sleep_ms(100);

	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity_or_fail(c, 0, 0);
	uint64_t t0 = h_now_ns();
	roundtrips_or_fail(s, 1, 2000, "beside a client that never collects");
	double ms = (double)(h_now_ns() - t0) / 1e6;
	fprintf(stderr, "2000 round trips beside a stalled session: %.1f ms\n", ms);
	/* affine too: another model on the same worker */
	swarm_session *sa = NULL;
	int rc = swarm_session_open(c, "affine", 0, NULL, &sa);
	cr_assert_eq(rc, 0, "open affine: %d", rc);
	for (uint32_t i = 0; i < 200; i++) {
		rc = h_affine_roundtrip(sa, 1 + (i * 37) % 1024, i, 5 * H_SEC);
		cr_assert_eq(rc, 0, "affine %u: %d", i, rc);
	}
	cr_assert(h_alive(child), "the stalling client died early");
	kill(child, SIGKILL);
	int st = h_child_wait(child, 5 * H_SEC);
	cr_assert_eq(st, 256 + SIGKILL, "stalling client status %d", st);
	cr_assert_eq(the_worker_or_fail(), w, "the worker changed");
	roundtrips_or_fail(s, 9000, 50, "after the stalling client died");
	swarm_session_close(sa);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* ---- a full submission queue -------------------------------------------------------------- */

Test(e2e_failures, submit_to_full_queue_returns_eagain)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity_or_fail(c, 8, 4);
	roundtrips_or_fail(s, 1, 5, "before");
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_assert_eq(info.queue_depth, 4, "queue_depth %u", info.queue_depth);
	cr_assert_eq(info.slots, 8, "slots %u", info.slots);
	pid_t w = info.worker_pid;

	swarm_request *r[5];
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(swarm_request_alloc(s, 1, &r[i]), 0, "alloc %d", i);
		h_pattern(swarm_request_input(r[i], 0), 64, 100 + (uint64_t)i);
	}
	stop_worker(w);
	int rcs[5];
	for (int i = 0; i < 5; i++)
		rcs[i] = swarm_request_submit(r[i], 0);
	kill(w, SIGCONT);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(rcs[i], 0, "submit %d of 4: %d (%s)", i, rcs[i],
			     swarm_strerror(rcs[i]));
	cr_assert_eq(rcs[4], -EAGAIN, "5th submit to a queue of 4: %d (%s), want -EAGAIN", rcs[4],
		     swarm_strerror(rcs[4]));
	for (int i = 0; i < 4; i++) {
		int rc = swarm_request_wait(r[i], 5 * H_SEC);
		cr_assert_eq(rc, 0, "request %d after SIGCONT: %d (%s)", i, rc, swarm_strerror(rc));
		uint8_t want[64];
		h_pattern(want, 64, 100 + (uint64_t)i);
		cr_assert_eq(memcmp(swarm_request_output(r[i], 0), want, 64), 0,
			     "request %d output", i);
		cr_assert_eq(swarm_request_release(r[i]), 0);
	}
	/* the refused one stayed ours and goes through now */
	int rc = swarm_request_submit(r[4], 0);
	cr_assert_eq(rc, 0, "resubmit: %d", rc);
	rc = swarm_request_wait(r[4], 5 * H_SEC);
	cr_assert_eq(rc, 0, "resubmitted request: %d", rc);
	uint8_t want[64];
	h_pattern(want, 64, 104);
	cr_assert_eq(memcmp(swarm_request_output(r[4], 0), want, 64), 0, "request 4 output");
	cr_assert_eq(swarm_request_release(r[4]), 0);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}
