/* test_balance.c: placement and moving sessions against a real swarmd with two CPU devices
 * (docs/balancing.md): eight clients spread four and four; a device drained under load and
 * resumed, with no request failing; a worker killed with SIGKILL under load, with every
 * request completing exactly once with its right output; a request that opted out of being
 * run again; and the workers' binding, read back from the kernel, against `swarm topo`.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "e2e/harness.h"

static void setup(void) { h_start("cpu:2", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_balance, .init = setup, .fini = teardown, .timeout = 120);

#define CLIENTS 8

static swarm_session *open_affine_or_fail(swarm_client *c)
{
	swarm_session *s = NULL;
	int rc = h_open_working(c, "affine", NULL, &s, 10 * H_SEC);
	if (rc)
		h_print_log("affine open failed");
	cr_assert_eq(rc, 0, "open affine: %d (%s)", rc, swarm_strerror(rc));
	return s;
}

static int device_of(swarm_session *s)
{
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	return info.device_index;
}

/* Runs `swarm ARGS...` from this build; returns its exit status, its stdout in out. */
static int run_swarm(char *out, size_t out_len, const char *const *args)
{
	const char *argv[16] = { SWARM_BIN_DIR "/swarm" };
	for (int n = 1; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	return h_run(argv, out, out_len);
}

static void device_cmd_or_fail(const char *verb, const char *name)
{
	char out[1024];
	const char *args[] = { "device", verb, name, "--socket", h_socket(), NULL };
	int rc = run_swarm(out, sizeof out, args);
	if (rc)
		h_print_log("swarm device failed");
	cr_assert_eq(rc, 0, "swarm device %s %s exited %d: %s", verb, name, rc, out);
}

/* Waits up to 10 s until the sessions' devices count to want0 and want1. */
static void wait_spread_or_fail(swarm_session **s, int n, int want0, int want1)
{
	int c0 = 0, c1 = 0;
	for (uint64_t end = h_now_ns() + 10 * H_SEC; h_now_ns() < end; h_sleep_ms(20)) {
		c0 = c1 = 0;
		for (int i = 0; i < n; i++) {
			/* A session moves when its client looks: give each a round trip. */
			int rc = h_affine_roundtrip(s[i], 1, (uint32_t)i, 5 * H_SEC);
			cr_assert_eq(rc, 0, "round trip on session %d while settling: %d (%s)", i, rc,
				     swarm_strerror(rc));
			int dv = device_of(s[i]);
			c0 += dv == 0;
			c1 += dv == 1;
		}
		if (c0 == want0 && c1 == want1)
			return;
	}
	h_print_log("sessions did not settle");
	cr_assert_fail("sessions on devices 0/1: %d/%d, want %d/%d", c0, c1, want0, want1);
}

Test(e2e_balance, eight_clients_on_two_devices_spread_four_and_four)
{
	swarm_client *c[CLIENTS];
	swarm_session *s[CLIENTS];
	int per[2] = { 0, 0 };
	for (int i = 0; i < CLIENTS; i++) {
		c[i] = h_connect_or_fail();
		s[i] = open_affine_or_fail(c[i]);
		int dv = device_of(s[i]);
		cr_assert(dv == 0 || dv == 1, "session %d on device %d", i, dv);
		per[dv]++;
	}
	cr_assert_eq(per[0], 4, "device 0 serves %d of 8", per[0]);
	cr_assert_eq(per[1], 4, "device 1 serves %d of 8", per[1]);
	for (int i = 0; i < CLIENTS; i++) {
		swarm_session_close(s[i]);
		swarm_disconnect(c[i]);
	}
	h_stop();
}


Test(e2e_balance, a_device_drained_under_load_fails_no_request_and_comes_back)
{
	pid_t pids[CLIENTS];
	struct h_load_args args[CLIENTS];
	h_start_load(pids, args, CLIENTS, 4 * H_SEC, 0);
	h_sleep_ms(800);
	device_cmd_or_fail("drain", "cpu:1");
	h_sleep_ms(800);
	h_wait_load_or_fail(pids, CLIENTS, "drain under load");
	cr_assert(h_log_contains("event=device_parked device=cpu:1"),
		  "the drained device did not park");

	/* Back in service: new sessions spread onto it again, and old ones move over. */
	swarm_client *c[CLIENTS];
	swarm_session *s[CLIENTS];
	for (int i = 0; i < CLIENTS / 2; i++) {
		c[i] = h_connect_or_fail();
		s[i] = open_affine_or_fail(c[i]);
		cr_assert_eq(device_of(s[i]), 0, "opened on %d while cpu:1 is parked",
			     device_of(s[i]));
	}
	device_cmd_or_fail("resume", "cpu:1");
	wait_spread_or_fail(s, CLIENTS / 2, 2, 2);
	for (int i = 0; i < CLIENTS / 2; i++) {
		swarm_session_close(s[i]);
		swarm_disconnect(c[i]);
	}
	h_stop();
}

Test(e2e_balance, a_worker_killed_under_load_reruns_its_requests_exactly_once)
{
	pid_t pids[CLIENTS];
	struct h_load_args args[CLIENTS];
	pid_t w[4];
	cr_assert_eq(h_worker_pids(w, 4), 2, "two workers");
	h_start_load(pids, args, CLIENTS, 4 * H_SEC, 0);
	h_sleep_ms(1000);
	cr_assert_eq(kill(w[1], SIGKILL), 0);
	h_wait_load_or_fail(pids, CLIENTS, "worker SIGKILL under load");
	cr_assert(h_log_contains("event=worker_died"), "no worker death logged");
	cr_assert(h_log_contains("event=session_moved"), "no session moved");
	h_stop();
}

Test(e2e_balance, a_request_that_opts_out_fails_when_its_worker_dies)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_affine_or_fail(c);
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	pid_t w = info.worker_pid;
	/* Stop the worker so that both requests are in its hands, or at least queued for it,
	 * when it dies; then kill it. */
	cr_assert_eq(kill(w, SIGSTOP), 0);
	cr_assert_eq(h_wait_stopped(w, 5 * H_SEC), 0);
	swarm_request *once, *again;
	cr_assert_eq(swarm_request_alloc(s, 1, &once), 0);
	cr_assert_eq(swarm_request_alloc(s, 1, &again), 0);
	h_affine_fill(swarm_request_input(once, 0), 1, 11);
	h_affine_fill(swarm_request_input(again, 0), 1, 12);
	cr_assert_eq(swarm_request_submit(once, SWARM_REQUEST_NO_RETRY), 0);
	cr_assert_eq(swarm_request_submit(again, 0), 0);
	/* The stopped worker has not taken them: mark them taken, as a worker that read them
	 * and died before completing would leave them, by moving the head it owns. */
	struct h_seg seg;
	cr_assert_eq(h_seg_find(swarm_session_info_get(s, &info) == 0 ? info.session_id : 0,
				&seg),
		     0);
	__atomic_store_n(&seg.hdr->sq_head.v, __atomic_load_n(&seg.hdr->sq_tail.v, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
	cr_assert_eq(kill(w, SIGKILL), 0);
	kill(w, SIGCONT);
	int rc = swarm_request_wait(once, 10 * H_SEC);
	cr_assert_eq(rc, -ECONNABORTED, "the opted-out request: %d (%s)", rc, swarm_strerror(rc));
	rc = swarm_request_wait(again, 10 * H_SEC);
	if (rc)
		h_print_log("re-run failed");
	cr_assert_eq(rc, 0, "the re-run request: %d (%s)", rc, swarm_strerror(rc));
	cr_assert_lt(h_affine_check(swarm_request_output(again, 0), 1, 12), 0,
		     "re-run output wrong");
	swarm_request_release(once);
	swarm_request_release(again);
	cr_assert_eq(h_affine_roundtrip(s, 3, 99, 5 * H_SEC), 0, "session works after the move");
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_assert_neq(info.worker_pid, w, "still names the dead worker %d", (int)w);
	h_seg_unmap(&seg);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* ---- binding, read back from the kernel ------------------------------------------------------ */

/* The value of "key:" in /proc/pid/status, trimmed. */
static int proc_status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int rc = -ENOENT;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		char *v = line + kl + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\n")] = 0;
		snprintf(out, len, "%s", v);
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

/* The memory policy of pid's stack as /proc/pid/numa_maps shows it ("bind:0", "default"): a
 * mapping with no policy of its own shows the process's (its main thread's). */
static int numa_maps_policy(pid_t pid, char *out, size_t len)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/numa_maps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int rc = -ENOENT;
	while (fgets(line, sizeof line, f)) {
		if (!strstr(line, " stack"))
			continue;
		/* "ADDR POLICY stack ...", where the policy may hold a space ("prefer (many):0"). */
		char *pol = strchr(line, ' ');
		char *end = pol ? strstr(pol, " stack") : NULL;
		if (pol && end) {
			snprintf(out, len, "%.*s", (int)(end - pol - 1), pol + 1);
			rc = 0;
		}
		break;
	}
	fclose(f);
	return rc;
}

Test(e2e_balance, worker_binding_read_back_from_the_kernel_matches_swarm_topo)
{
	char out[16384];
	const char *args[] = { "topo", "--json", "--socket", h_socket(), NULL };
	int rc = run_swarm(out, sizeof out, args);
	cr_assert_eq(rc, 0, "swarm topo exited %d: %s", rc, out);
	json_error_t jerr;
	json_t *doc = json_loads(out, 0, &jerr);
	cr_assert_not_null(doc, "swarm topo --json is not JSON (%s, line %d): %s", jerr.text,
			   jerr.line, out);
	json_t *devs = json_object_get(doc, "devices"), *dv;
	cr_assert(json_is_array(devs), "no devices in %s", out);
	int checked = 0;
	size_t k;
	json_array_foreach(devs, k, dv)
	{
		char kcpus[512], kpol[64];
		const char *name = "", *cpus = "", *pol = "";
		json_int_t pid_j = 0;
		cr_assert_eq(json_unpack(dv, "{s:s, s:I, s:s, s:s}", "name", &name, "pid", &pid_j,
					 "cpus", &cpus, "mem_policy", &pol),
			     0, "device %zu lacks name, pid, cpus or mem_policy in %s", k, out);
		pid_t pid = (pid_t)pid_j;
		cr_assert_gt(pid, 0, "%s has no pid in %s", name, out);
		cr_assert_eq(proc_status_field(pid, "Cpus_allowed_list", kcpus, sizeof kcpus), 0);
		cr_assert_str_eq(cpus, kcpus, "%s (pid %d): swarm topo says cpus %s, the kernel %s",
				 name, (int)pid, cpus, kcpus);
		cr_assert_eq(numa_maps_policy(pid, kpol, sizeof kpol), 0, "no stack in numa_maps");
		if (strncmp(pol, "refused", 7) == 0)
			cr_assert_str_eq(kpol, "default", "%s: membind refused, but the kernel says %s",
					 name, kpol);
		else
			cr_assert_str_eq(pol, kpol,
					 "%s (pid %d): swarm topo says memory %s, the kernel %s",
					 name, (int)pid, pol, kpol);
		fprintf(stderr, "%s pid %d: cpus %s, memory %s (kernel: %s, %s)\n", name, (int)pid,
			cpus, pol, kcpus, kpol);
		checked++;
	}
	json_decref(doc);
	cr_assert_eq(checked, 2, "checked %d devices in %s", checked, out);

	/* The session-info call says the same of the worker that serves the session. */
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_affine_or_fail(c);
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	char kcpus[512], kpol[64];
	cr_assert_eq(proc_status_field(info.worker_pid, "Cpus_allowed_list", kcpus, sizeof kcpus),
		     0);
	cr_assert_eq(numa_maps_policy(info.worker_pid, kpol, sizeof kpol), 0);
	cr_assert_str_eq(info.cpus, kcpus, "session info: cpus %s, the kernel %s", info.cpus,
			 kcpus);
	cr_assert_str_eq(info.mem_policy, kpol, "session info: memory %s, the kernel %s",
			 info.mem_policy, kpol);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}
