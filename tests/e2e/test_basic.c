/* test_basic.c: one well-behaved client against a real swarmd with one CPU device: the
 * models' specifications, exact outputs, the error statuses of the client API, the
 * event-loop (fd) flow, the sealed segment, the ABI check and `swarm status`. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "ipc/proto.h"

static void setup(void) { h_start("cpu:1", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_basic, .init = setup, .fini = teardown, .timeout = 60);

static swarm_session *open_or_fail(swarm_client *c, const char *model, const swarm_session_opts *o)
{
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, model, 0, o, &s);
	if (rc)
		h_print_log("session open failed");
	cr_assert_eq(rc, 0, "swarm_session_open(%s): %d (%s) [%s]", model, rc, swarm_strerror(rc),
		     swarm_client_error(c));
	cr_assert_not_null(s);
	return s;
}

static swarm_session *open_identity(swarm_client *c)
{
	swarm_session_opts o = h_identity_opts();
	return open_or_fail(c, "identity", &o);
}

static void check_spec(const swarm_tensor_spec *t, const char *name, uint32_t dtype, int64_t inner,
		       const char *what)
{
	cr_assert_not_null(t, "%s spec is NULL", what);
	cr_assert_str_eq(t->name, name, "%s name: got \"%s\" want \"%s\"", what, t->name, name);
	cr_assert_eq(t->dtype, dtype, "%s dtype: got %u want %u", what, t->dtype, dtype);
	cr_assert_eq(t->ndim, 2, "%s ndim: got %u want 2", what, t->ndim);
	cr_assert_eq(t->shape[0], -1, "%s shape[0]: got %lld want -1", what,
		     (long long)t->shape[0]);
	cr_assert_eq(t->shape[1], inner, "%s shape[1]: got %lld want %lld", what,
		     (long long)t->shape[1], (long long)inner);
	cr_assert_eq(t->row_bytes, 64, "%s row_bytes: got %llu want 64", what,
		     (unsigned long long)t->row_bytes);
}

Test(e2e_basic, affine_specs_read_back)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_or_fail(c, "affine", NULL);
	cr_assert_eq(swarm_session_num_inputs(s), 1, "inputs: %u", swarm_session_num_inputs(s));
	cr_assert_eq(swarm_session_num_outputs(s), 1, "outputs: %u", swarm_session_num_outputs(s));
	check_spec(swarm_session_input_spec(s, 0), "x", SWARM_DTYPE_F32, 16, "affine input 0");
	check_spec(swarm_session_output_spec(s, 0), "y", SWARM_DTYPE_F32, 16, "affine output 0");
	cr_assert_null(swarm_session_input_spec(s, 1), "input spec 1 should be NULL");
	cr_assert_null(swarm_session_output_spec(s, 1), "output spec 1 should be NULL");

	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_assert_eq(info.max_rows, 1024, "affine default max_rows: got %u", info.max_rows);
	cr_assert_eq(info.slots, 8, "default slots: got %u", info.slots);
	cr_assert_eq(info.queue_depth, 8, "default queue_depth: got %u", info.queue_depth);
	cr_assert_str_eq(info.model, "affine", "info.model: \"%s\"", info.model);

	swarm_session *si = open_identity(c);
	check_spec(swarm_session_input_spec(si, 0), "x", SWARM_DTYPE_U8, 64, "identity input 0");
	check_spec(swarm_session_output_spec(si, 0), "y", SWARM_DTYPE_U8, 64, "identity output 0");
	cr_assert_eq(swarm_session_info_get(si, &info), 0);
	cr_assert_eq(info.max_rows, 64, "identity max_rows from opts: got %u", info.max_rows);
	swarm_session_close(si);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, affine_thousand_requests_of_varied_rows_are_exact)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_or_fail(c, "affine", NULL);
	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t rows = i == 0 ? 1 : i == 1 ? 1024 : 1 + (i * 7919u) % 1024u;
		int rc = h_affine_roundtrip(s, rows, 1000 + i, 5 * H_SEC);
		cr_assert_eq(rc, 0, "request %u (rows %u): %d (%s)", i, rows, rc,
			     rc == H_EMISMATCH ? "output mismatch" : swarm_strerror(rc));
	}
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, identity_echoes_64_bytes)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	swarm_request *r;
	int rc = swarm_request_alloc(s, 1, &r);
	cr_assert_eq(rc, 0, "alloc: %d", rc);
	uint8_t *in = swarm_request_input(r, 0);
	cr_assert_not_null(in);
	cr_assert_eq((uintptr_t)in % 64, 0, "input %p not 64-byte aligned", (void *)in);
	for (int i = 0; i < 64; i++)
		in[i] = (uint8_t)(0xA5 ^ (i * 37));
	cr_assert_null(swarm_request_input(r, 1), "input 1 should be NULL");
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	rc = swarm_request_wait(r, 5 * H_SEC);
	cr_assert_eq(rc, 0, "wait: %d (%s)", rc, swarm_strerror(rc));
	const uint8_t *out = swarm_request_output(r, 0);
	cr_assert_not_null(out);
	cr_assert_eq((uintptr_t)out % 64, 0, "output %p not 64-byte aligned", (const void *)out);
	/* an echo that only reads the input back would prove nothing */
	cr_assert(out >= in + 64 * 64 || out + 64 * 64 <= in,
		  "output %p overlaps input %p (max_rows 64 of 64 B)", (const void *)out,
		  (void *)in);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(out[i], (uint8_t)(0xA5 ^ (i * 37)), "byte %d: got 0x%02x want 0x%02x",
			     i, out[i], (uint8_t)(0xA5 ^ (i * 37)));
	cr_assert_eq(swarm_request_rows(r), 1, "rows: %u", swarm_request_rows(r));
	cr_assert_eq(swarm_request_release(r), 0);
	/* and a few more, every slot reused */
	for (uint64_t t = 0; t < 64; t++) {
		rc = h_identity_roundtrip(s, 1 + (uint32_t)(t % 64), t, 5 * H_SEC);
		cr_assert_eq(rc, 0, "round trip %llu: %d", (unsigned long long)t, rc);
	}
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, session_info_names_a_cpu_device_and_a_live_worker)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	swarm_session_info info;
	memset(&info, 0x7f, sizeof info);
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	int idx = -1;
	char tail = 0;
	int n = sscanf(info.device_name, "cpu:%d%c", &idx, &tail);
	cr_assert_eq(n, 1, "device_name \"%.32s\" is not cpu:N", info.device_name);
	cr_assert_eq(idx, info.device_index, "device_name %s vs device_index %d", info.device_name,
		     info.device_index);
	cr_assert_eq(info.device_index, 0, "one device: index %d", info.device_index);
	cr_assert_gt(info.worker_pid, 0, "worker_pid %d", info.worker_pid);
	cr_assert(h_alive(info.worker_pid), "worker pid %d does not exist", info.worker_pid);
	pid_t w[8];
	int nw = h_worker_pids(w, 8);
	cr_assert_eq(nw, 1, "swarmd %d has %d workers, want 1", (int)h_swarmd_pid(), nw);
	cr_assert_eq(w[0], info.worker_pid, "info names worker %d, swarmd's child is %d",
		     info.worker_pid, (int)w[0]);
	cr_assert_gt(info.session_id, 0, "session_id %llu", (unsigned long long)info.session_id);
	cr_assert(info.numa_node >= -1, "numa_node %d", info.numa_node);
	cr_assert(strnlen(info.cpus, sizeof info.cpus) < sizeof info.cpus, "cpus unterminated");
	cr_assert_str_eq(info.model, "identity", "model \"%s\"", info.model);
	cr_assert_eq(info.slots, 8, "slots %u", info.slots);
	fprintf(stderr, "session %llu on %s (index %d, numa %d, cpus \"%s\", worker %d)\n",
		(unsigned long long)info.session_id, info.device_name, info.device_index,
		info.numa_node, info.cpus, info.worker_pid);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, unknown_model_returns_enoent)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "no-such-model", 0, NULL, &s);
	cr_assert_eq(rc, -ENOENT, "open(no-such-model): %d (%s), want -ENOENT", rc,
		     swarm_strerror(rc));
	cr_assert_null(s, "no session on failure");
	/* the connection stays usable */
	s = open_identity(c);
	cr_assert_eq(h_identity_roundtrip(s, 1, 5, 5 * H_SEC), 0);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, rows_zero_and_above_max_rows_return_einval)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_or_fail(c, "affine", NULL);
	swarm_request *r = NULL;
	int rc = swarm_request_alloc(s, 0, &r);
	cr_assert_eq(rc, -EINVAL, "alloc(rows 0): %d, want -EINVAL", rc);
	rc = swarm_request_alloc(s, 1025, &r);
	cr_assert_eq(rc, -EINVAL, "alloc(rows 1025 > max 1024): %d, want -EINVAL", rc);
	rc = swarm_request_alloc(s, UINT32_MAX, &r);
	cr_assert_eq(rc, -EINVAL, "alloc(rows UINT32_MAX): %d, want -EINVAL", rc);
	cr_assert_eq(h_affine_roundtrip(s, 1024, 9, 5 * H_SEC), 0, "rows == max_rows works");

	swarm_session *si = open_identity(c);
	rc = swarm_request_alloc(si, 65, &r);
	cr_assert_eq(rc, -EINVAL, "identity alloc(rows 65 > max 64): %d, want -EINVAL", rc);
	cr_assert_eq(h_identity_roundtrip(si, 64, 9, 5 * H_SEC), 0, "rows == max_rows works");
	swarm_session_close(si);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

static pid_t worker_of(swarm_session *s)
{
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_assert(h_alive(info.worker_pid), "worker %d not alive", info.worker_pid);
	return info.worker_pid;
}

static void stop_worker(pid_t w)
{
	cr_assert_eq(kill(w, SIGSTOP), 0, "SIGSTOP %d", (int)w);
	cr_assert_eq(h_wait_stopped(w, 2 * H_SEC), 0, "worker %d not stopped (state %c)", (int)w,
		     h_proc_state(w));
}

Test(e2e_basic, release_of_in_flight_request_returns_ebusy)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	pid_t w = worker_of(s);
	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 1, &r), 0);
	h_pattern(swarm_request_input(r, 0), 64, 42);
	stop_worker(w);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	int rc = swarm_request_release(r);
	kill(w, SIGCONT);
	cr_assert_eq(rc, -EBUSY, "release in flight: %d (%s), want -EBUSY", rc, swarm_strerror(rc));
	rc = swarm_request_wait(r, 5 * H_SEC);
	cr_assert_eq(rc, 0, "wait after SIGCONT: %d (%s)", rc, swarm_strerror(rc));
	uint8_t want[64];
	h_pattern(want, 64, 42);
	cr_assert_eq(memcmp(swarm_request_output(r, 0), want, 64), 0, "output differs");
	cr_assert_eq(swarm_request_release(r), 0, "release after completion");
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, expired_deadline_completes_with_etimedout)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_or_fail(c, "affine", NULL);
	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 4, &r), 0);
	h_affine_fill(swarm_request_input(r, 0), 4, 3);
	swarm_request_set_deadline(r, swarm_now_ns() - 1000000);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	uint64_t t0 = h_now_ns();
	int rc = swarm_request_wait(r, 5 * H_SEC);
	double ms = (double)(h_now_ns() - t0) / 1e6;
	cr_assert_eq(rc, -ETIMEDOUT, "expired deadline: status %d (%s), want -ETIMEDOUT", rc,
		     swarm_strerror(rc));
	cr_assert_lt(ms, 4000.0, "the status came from the worker, not the wait's end: %.1f ms",
		     ms);
	cr_assert_eq(swarm_request_poll(r), -ETIMEDOUT, "poll repeats the status: %d",
		     swarm_request_poll(r));
	cr_assert_eq(swarm_request_release(r), 0, "release a completed request");
	/* a deadline in the future runs normally */
	cr_assert_eq(swarm_request_alloc(s, 4, &r), 0);
	h_affine_fill(swarm_request_input(r, 0), 4, 4);
	swarm_request_set_deadline(r, swarm_now_ns() + 10 * H_SEC);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	rc = swarm_request_wait(r, 5 * H_SEC);
	cr_assert_eq(rc, 0, "future deadline: %d (%s)", rc, swarm_strerror(rc));
	cr_assert_eq(h_affine_check(swarm_request_output(r, 0), 4, 4), -1);
	swarm_request_release(r);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* A completed request sent again in its slot: new rows and inputs, exact outputs, the same
 * pointers, a fresh completion for swarm_session_poll, and -EINVAL in every state and for
 * every rows where it must not run. */
Test(e2e_basic, submit_again_runs_a_completed_request_in_its_slot)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_or_fail(c, "affine", NULL);
	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 4, &r), 0);
	float *in = swarm_request_input(r, 0);
	const float *out = swarm_request_output(r, 0);
	h_affine_fill(in, 4, 10);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	cr_assert_eq(swarm_request_wait(r, 5 * H_SEC), 0);
	cr_assert_eq(h_affine_check(out, 4, 10), -1);
	cr_assert_eq(swarm_request_submit(r, 0), -EINVAL, "plain submit of a completed request");
	cr_assert_eq(swarm_request_submit_again(r, 0, 0), -EINVAL, "rows 0");
	cr_assert_eq(swarm_request_submit_again(r, 1025, 0), -EINVAL, "rows above max_rows");
	cr_assert_eq(swarm_request_poll(r), 0, "a refused submit_again leaves r completed");
	for (uint32_t k = 0; k < 50; k++) {
		uint32_t rows = 1 + (k * 97u) % 1024u;
		h_affine_fill(in, rows, 11 + k);
		int rc = swarm_request_submit_again(r, rows, 0);
		cr_assert_eq(rc, 0, "submit_again %u (rows %u): %d (%s)", k, rows, rc,
			     swarm_strerror(rc));
		cr_assert_eq(swarm_request_wait(r, 5 * H_SEC), 0);
		cr_assert_eq(swarm_request_rows(r), rows);
		cr_assert_eq(swarm_request_input(r, 0), in, "the slot stays the same");
		cr_assert_eq(h_affine_check(out, rows, 11 + k), -1, "round %u (rows %u)", k, rows);
	}
	/* The completion is reported again to the fd flow. */
	swarm_request *done[4];
	while (swarm_session_poll(s, done, 4) > 0)
		; /* those of the loop above */
	h_affine_fill(in, 2, 99);
	cr_assert_eq(swarm_request_submit_again(r, 2, 0), 0);
	int n = 0;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; n == 0 && h_now_ns() < end;)
		n = swarm_session_poll(s, done, 4);
	cr_assert_eq(n, 1, "session_poll after submit_again: %d", n);
	cr_assert_eq(done[0], r);
	cr_assert_eq(h_affine_check(out, 2, 99), -1);
	/* A deadline stays set until cleared. */
	swarm_request_set_deadline(r, swarm_now_ns() - 1000000);
	cr_assert_eq(swarm_request_submit_again(r, 2, 0), 0);
	cr_assert_eq(swarm_request_wait(r, 5 * H_SEC), -ETIMEDOUT);
	cr_assert_eq(swarm_request_submit_again(r, 2, 0), 0);
	cr_assert_eq(swarm_request_wait(r, 5 * H_SEC), -ETIMEDOUT, "the deadline is kept");
	swarm_request_set_deadline(r, 0);
	h_affine_fill(in, 3, 7);
	cr_assert_eq(swarm_request_submit_again(r, 3, 0), 0);
	cr_assert_eq(swarm_request_wait(r, 5 * H_SEC), 0, "deadline cleared");
	cr_assert_eq(h_affine_check(out, 3, 7), -1);
	/* In flight, and released: refused. */
	pid_t w = worker_of(s);
	stop_worker(w);
	cr_assert_eq(swarm_request_submit_again(r, 3, 0), 0);
	int rc = swarm_request_submit_again(r, 3, 0);
	kill(w, SIGCONT);
	cr_assert_eq(rc, -EINVAL, "submit_again in flight: %d", rc);
	cr_assert_eq(swarm_request_wait(r, 5 * H_SEC), 0);
	cr_assert_eq(swarm_request_release(r), 0);
	cr_assert_eq(swarm_request_submit_again(r, 3, 0), -EINVAL, "after release");
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, wait_timeout_returns_etimedout_and_request_completes_later)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	pid_t w = worker_of(s);
	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 2, &r), 0);
	h_pattern(swarm_request_input(r, 0), 128, 7);
	stop_worker(w);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	uint64_t t0 = h_now_ns();
	int rc = swarm_request_wait(r, 50 * H_MS);
	double ms = (double)(h_now_ns() - t0) / 1e6;
	int prc = swarm_request_poll(r);
	kill(w, SIGCONT);
	cr_assert_eq(rc, -ETIMEDOUT, "wait(50 ms) on a stopped worker: %d (%s)", rc,
		     swarm_strerror(rc));
	cr_assert(ms >= 45.0 && ms < 2000.0, "wait(50 ms) took %.1f ms", ms);
	cr_assert_eq(prc, -EAGAIN, "poll while in flight: %d, want -EAGAIN", prc);
	rc = swarm_request_wait(r, 5 * H_SEC);
	cr_assert_eq(rc, 0, "second wait: %d (%s)", rc, swarm_strerror(rc));
	uint8_t want[128];
	h_pattern(want, 128, 7);
	cr_assert_eq(memcmp(swarm_request_output(r, 0), want, 128), 0, "output differs");
	cr_assert_eq(swarm_request_release(r), 0);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, session_fd_arm_poll_flow_collects_every_completion)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	int fd = swarm_session_fd(s);
	cr_assert_geq(fd, 0, "swarm_session_fd: %d", fd);
	for (uint64_t round = 0; round < 200; round++) {
		uint32_t nreq = 1 + (uint32_t)(round % 4);
		swarm_request *rs[4];
		for (uint32_t i = 0; i < nreq; i++) {
			cr_assert_eq(swarm_request_alloc(s, 1, &rs[i]), 0, "alloc");
			h_pattern(swarm_request_input(rs[i], 0), 64, round * 4 + i);
			cr_assert_eq(swarm_request_submit(rs[i], 0), 0, "submit");
		}
		uint32_t got = 0;
		uint64_t end = h_now_ns() + 5 * H_SEC;
		while (got < nreq) {
			cr_assert_lt(h_now_ns(), end, "round %llu: %u of %u completions in 5 s",
				     (unsigned long long)round, got, nreq);
			int armed = swarm_session_arm(s);
			cr_assert(armed == 0 || armed == 1, "arm: %d", armed);
			if (armed == 0) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				int pr = poll(&p, 1, 5000);
				cr_assert_eq(pr, 1, "round %llu: poll on the session fd: %d (%s)",
					     (unsigned long long)round, pr,
					     pr < 0 ? strerror(errno) : "no event in 5 s");
			}
			swarm_request *done[8];
			int n = swarm_session_poll(s, done, 8);
			cr_assert_geq(n, 0, "swarm_session_poll: %d (%s)", n, swarm_strerror(n));
			for (int k = 0; k < n; k++) {
				uint32_t i = 0;
				while (i < nreq && rs[i] != done[k])
					i++;
				cr_assert_lt(i, nreq, "poll reported a request we did not submit");
				cr_assert_eq(swarm_request_poll(done[k]), 0, "status");
				uint8_t want[64];
				h_pattern(want, 64, round * 4 + i);
				cr_assert_eq(memcmp(swarm_request_output(done[k], 0), want, 64), 0,
					     "round %llu request %u output differs",
					     (unsigned long long)round, i);
				cr_assert_eq(swarm_request_release(done[k]), 0);
				rs[i] = NULL;
				got++;
			}
		}
	}
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, ftruncate_of_session_memfd_fails_with_eperm)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	struct h_seg seg;
	int rc = h_seg_find(info.session_id, &seg);
	cr_assert_eq(rc, 0, "no /memfd:swarm-session fd holds session %llu: %d",
		     (unsigned long long)info.session_id, rc);
	size_t bytes = seg.bytes;
	int fd = seg.fd;
	cr_assert_eq(seg.hdr->abi_version, SWARM_ABI_VERSION, "segment abi %u",
		     seg.hdr->abi_version);
	cr_assert_eq(seg.geo.segment_bytes, bytes, "geometry says %llu, fstat %zu",
		     (unsigned long long)seg.geo.segment_bytes, bytes);
	h_seg_unmap(&seg);
	errno = 0;
	rc = ftruncate(fd, (off_t)(bytes / 2));
	int e = errno;
	cr_assert(rc == -1 && e == EPERM, "ftruncate shrink: rc %d errno %d (%s), want EPERM", rc,
		  e, strerror(e));
	errno = 0;
	rc = ftruncate(fd, (off_t)(bytes * 2));
	e = errno;
	cr_assert(rc == -1 && e == EPERM, "ftruncate grow: rc %d errno %d (%s), want EPERM", rc, e,
		  strerror(e));
	cr_assert_eq(h_identity_roundtrip(s, 8, 99, 5 * H_SEC), 0, "session still works");
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, abi_mismatch_returns_eproto_naming_both_versions)
{
	int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_geq(sock, 0, "socket: %s", strerror(errno));
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", h_socket());
	cr_assert_eq(connect(sock, (struct sockaddr *)&a, sizeof a), 0, "connect %s: %s",
		     h_socket(), strerror(errno));
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	struct swarm_msg_hello hello;
	swarm_msg_init(&hello.h, SWARM_MSG_HELLO, sizeof hello, 1);
	hello.h.abi = SWARM_ABI_VERSION + 1;
	hello.pid = getpid();
	hello.cpu = -1;
	hello.numa_node = -1;
	ssize_t n = send(sock, &hello, sizeof hello, MSG_NOSIGNAL);
	cr_assert_eq(n, (ssize_t)sizeof hello, "send: %zd (%s)", n, strerror(errno));

	static char buf[SWARM_MSG_MAX_BYTES];
	n = recv(sock, buf, sizeof buf, 0);
	cr_assert_eq(n, (ssize_t)sizeof(struct swarm_msg_reply),
		     "reply: %zd bytes (%s), want a swarm_msg_reply of %zu", n,
		     n < 0 ? strerror(errno) : "", sizeof(struct swarm_msg_reply));
	struct swarm_msg_reply rep;
	memcpy(&rep, buf, sizeof rep);
	rep.text[SWARM_MSG_TEXT_MAX - 1] = 0;
	cr_assert_eq(rep.h.magic, SWARM_PROTO_MAGIC, "magic 0x%x", rep.h.magic);
	cr_assert_eq(rep.h.type, SWARM_MSG_HELLO_REPLY, "type %u", rep.h.type);
	cr_assert_eq(rep.status, -EPROTO, "status %d, want -EPROTO (%d); text \"%s\"", rep.status,
		     -EPROTO, rep.text);
	cr_assert_eq(rep.server_abi, SWARM_ABI_VERSION, "server_abi %u", rep.server_abi);
	char ours[16], theirs[16];
	snprintf(ours, sizeof ours, "%u", SWARM_ABI_VERSION + 1);
	snprintf(theirs, sizeof theirs, "%u", SWARM_ABI_VERSION);
	cr_assert(strstr(rep.text, ours) && strstr(rep.text, theirs),
		  "text \"%s\" should name both versions %s and %s", rep.text, ours, theirs);
	close(sock);

	/* swarmd is unharmed: an honest client still gets served */
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c);
	cr_assert_eq(h_identity_roundtrip(s, 1, 1, 5 * H_SEC), 0);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* 1 when json holds "key" : value (a whole number, any spacing). */
static int json_has_number(const char *json, const char *key, uint64_t value)
{
	char k[64];
	snprintf(k, sizeof k, "\"%s\"", key);
	for (const char *p = strstr(json, k); p; p = strstr(p + 1, k)) {
		const char *q = p + strlen(k);
		q += strspn(q, " \t\r\n");
		if (*q != ':')
			continue;
		q++;
		q += strspn(q, " \t\r\n");
		char *end;
		errno = 0;
		unsigned long long v = strtoull(q, &end, 10);
		if (end != q && errno == 0 && v == value)
			return 1;
	}
	return 0;
}

Test(e2e_basic, status_json_lists_the_device_and_the_open_session)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_or_fail(c, "affine", NULL);
	cr_assert_eq(h_affine_roundtrip(s, 3, 1, 5 * H_SEC), 0);
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);

	char cmd[512];
	snprintf(cmd, sizeof cmd, "timeout 10 %s/swarm status --socket %s --json 2>&1",
		 SWARM_BIN_DIR, h_socket());
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p, "popen(%s): %s", cmd, strerror(errno));
	static char out[1 << 16];
	size_t len = 0, n;
	while (len < sizeof out - 1 && (n = fread(out + len, 1, sizeof out - 1 - len, p)) > 0)
		len += n;
	out[len] = 0;
	int st = pclose(p);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "`%s` exit %d; output:\n%s", cmd,
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
	const char *first = out + strspn(out, " \t\r\n");
	cr_assert(*first == '{' || *first == '[', "not JSON:\n%s", out);
	char dev[48];
	snprintf(dev, sizeof dev, "\"%s\"", info.device_name);
	cr_assert(strstr(out, dev), "no device %s in:\n%s", dev, out);
	cr_assert(json_has_number(out, "id", info.session_id) ||
			  json_has_number(out, "session_id", info.session_id),
		  "no session \"id\": %llu in:\n%s", (unsigned long long)info.session_id, out);
	cr_assert(json_has_number(out, "client_pid", (uint64_t)getpid()),
		  "no \"client_pid\": %d in:\n%s", (int)getpid(), out);
	cr_assert(strstr(out, "\"affine\""), "no model \"affine\" in:\n%s", out);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_basic, connect_to_a_dead_socket_says_which_and_why)
{
	char path[512];
	snprintf(path, sizeof path, "%s/nobody-listens.sock", h_dir());
	swarm_client *c = NULL;
	int rc = swarm_connect(path, &c);
	cr_assert_eq(rc, -ECONNREFUSED, "connect(%s): %d (%s), want -ECONNREFUSED", path, rc,
		     swarm_strerror(rc));
	cr_assert_null(c, "no client on failure");
	cr_assert(strstr(swarm_last_error(), path) != NULL,
		  "swarm_last_error() should name the socket: \"%s\"", swarm_last_error());
	h_stop();
}

Test(e2e_basic, unknown_model_message_names_the_model)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "no-such-model", 0, NULL, &s);
	cr_assert_eq(rc, -ENOENT, "open: %d", rc);
	cr_assert(strstr(swarm_last_error(), "no-such-model") != NULL, "swarm_last_error(): \"%s\"",
		  swarm_last_error());
	cr_assert_str_eq(swarm_client_error(c), swarm_last_error());
	swarm_disconnect(c);
	h_stop();
}
