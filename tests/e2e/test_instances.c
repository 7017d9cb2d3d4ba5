/* test_instances.c: swarmd --instances N, several workers per device (as Triton's
 * instance_group count), end to end on CPU devices: each instance is a device of its own
 * ("cpu:0/0", "cpu:0/1"), with its own worker and its share of the device's cores, sessions
 * are spread over them, and bad counts are refused at startup. On a GPU the instances of one
 * GPU also share one copy of identical weights; on the CPU that sharing is a no-op (the
 * weights are the page cache's mapping), so only the instance plumbing runs here.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "e2e/harness.h"

static void teardown(void) { h_teardown(); }

TestSuite(e2e_instances, .fini = teardown, .timeout = 60);

static void info_or_fail(swarm_session *s, swarm_session_info *info)
{
	cr_assert_eq(swarm_session_info_get(s, info), 0);
}

Test(e2e_instances, two_instances_of_one_device_are_two_devices)
{
	const char *extra[] = { "--instances", "2", NULL };
	h_start("cpu:1", extra);
	cr_expect(h_log_contains("event=instances_planned devices=1 instances=2 workers=2"),
		  "no instances_planned event in the log");
	pid_t pids[8];
	int n = h_worker_pids(pids, 8);
	cr_expect_eq(n, 2, "%d workers for one device with two instances", n);

	swarm_client *c[2];
	swarm_session *s[2];
	swarm_session_info info[2];
	for (int i = 0; i < 2; i++) {
		c[i] = h_connect_or_fail();
		int rc = h_open_working(c[i], "affine", NULL, &s[i], 10 * H_SEC);
		if (rc)
			h_print_log("affine open failed");
		cr_assert_eq(rc, 0, "open %d: %d (%s)", i, rc, swarm_strerror(rc));
		info_or_fail(s[i], &info[i]);
	}
	/* The balancer spreads the two sessions, one an instance. */
	cr_assert_neq(info[0].device_index, info[1].device_index, "both on device %d",
		      info[0].device_index);
	for (int i = 0; i < 2; i++) {
		int k = info[i].device_index;
		char want[32];
		snprintf(want, sizeof want, "cpu:0/%d", k);
		cr_expect_str_eq(info[i].device_name, want, "device %d is named \"%.32s\"", k,
				 info[i].device_name);
		int rc = h_affine_roundtrip(s[i], 3, (uint32_t)(7 + i), 5 * H_SEC);
		cr_expect_eq(rc, 0, "round trip on %s: %d (%s)", want, rc, swarm_strerror(rc));
	}
	cr_expect_neq(info[0].worker_pid, info[1].worker_pid, "one worker serves both instances");
	/* Each its own share of the cores, where there are two to share. */
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		cr_expect_str_neq(info[0].cpus, info[1].cpus, "both instances bound to %s",
				  info[0].cpus);
	for (int i = 0; i < 2; i++) {
		swarm_session_close(s[i]);
		swarm_disconnect(c[i]);
	}
	h_stop();
}

/* Runs swarmd with args (its output to /dev/null) and returns its exit status. */
static int run_swarmd(const char *const *args)
{
	const char *argv[16] = { SWARM_BIN_DIR "/swarmd" };
	int n = 1;
	for (; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return h_child_wait(pid, 10 * H_SEC);
}

Test(e2e_instances, bad_instance_counts_are_refused_at_startup)
{
	char sock[64];
	snprintf(sock, sizeof sock, "/tmp/swarm-e2e-inst-%d.sock", (int)getpid());
	const char *zero[] = { "--socket", sock, "--devices", "cpu:1", "--instances", "0", NULL };
	cr_expect_eq(run_swarmd(zero), 2, "--instances 0 was taken");
	const char *word[] = { "--socket", sock, "--devices", "cpu:1", "--instances", "two", NULL };
	cr_expect_eq(run_swarmd(word), 2, "--instances two was taken");
	/* 40 devices of 2 instances: more workers than swarmd serves. */
	const char *many[] = { "--socket", sock, "--devices", "cpu:40", "--instances", "2", NULL };
	cr_expect_eq(run_swarmd(many), 1, "80 workers were planned");
	unlink(sock);
}

/* The devices of `swarm topo --json` (args after "topo"): "name=cpus;" for each, in order. */
static void topo_devices(const char *const *args, char *list, size_t len)
{
	const char *argv[12] = { SWARM_BIN_DIR "/swarm", "topo", "--json" };
	int n = 3;
	for (int i = 0; args[i] && n < 11; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	static char out[65536];
	int rc = h_run(argv, out, sizeof out);
	cr_assert_eq(rc, 0, "swarm topo exited %d: %s", rc, out);
	json_error_t jerr;
	json_t *doc = json_loads(out, 0, &jerr);
	cr_assert_not_null(doc, "swarm topo --json is not JSON (%s): %s", jerr.text, out);
	json_t *devs = json_object_get(doc, "devices"), *dv;
	size_t k, at = 0;
	list[0] = 0;
	json_array_foreach(devs, k, dv)
	{
		const char *name = "", *cpus = "";
		cr_assert_eq(json_unpack(dv, "{s:s, s:s}", "name", &name, "cpus", &cpus), 0);
		at += (size_t)snprintf(list + at, len - at, "%s=%s;", name, cpus);
		cr_assert_lt(at, len);
	}
	json_decref(doc);
}

/* swarm topo planned with its own copy of the planner once and ignored --instances; it now
 * shows, for the same options, the devices and cores swarmd runs. */
Test(e2e_instances, swarm_topo_plans_what_swarmd_runs)
{
	const char *extra[] = { "--instances", "2", NULL };
	h_start("cpu:2", extra);
	char running[4096], planned[4096];
	const char *live[] = { "--socket", h_socket(), NULL };
	topo_devices(live, running, sizeof running);
	const char *plan[] = { "--devices", "cpu:2", "--instances", "2", NULL };
	topo_devices(plan, planned, sizeof planned);
	fprintf(stderr, "running: %s\nplanned: %s\n", running, planned);
	cr_assert_str_eq(planned, running, "swarm topo plans %s, swarmd runs %s", planned, running);
	cr_assert(strstr(running, "cpu:1/1="), "no fourth worker in %s", running);
	h_stop();
}
