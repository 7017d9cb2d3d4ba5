/* test_autoscale.c: swarmd --autoscale with three CPU devices (docs/autoscaler.md): devices
 * start parked but one; a burst of clients brings parked devices into service; when the burst
 * ends they drain back to the minimum; every request succeeds with its right output
 * throughout. With --autoscale-idle 0 every device parks, and a first open waits for one to
 * warm up rather than failing. Short windows (2 s stable, 1 s cool-down) keep the test short;
 * a target utilisation of 0.2 makes the affine model's cheap requests a burst worth waking for.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "ipc/client.h"

static void teardown(void) { h_teardown(); }

TestSuite(e2e_autoscale, .fini = teardown, .timeout = 120);

#define CLIENTS 6

/* The windows short, so that a burst of seconds scales up and back down within a test; the
 * burst memory (a peak window of 3 s) too. */
static const char *const as_args[] = { "--autoscale", "--autoscale-window-s",
				       "2",           "--autoscale-cooldown-s",
				       "1",           "--autoscale-util",
				       "0.2",         "--autoscale-peak-window-s",
				       "3",           NULL };

/* swarmd on devices with as_args and one more option and its value. */
static void start_with(const char *devices, const char *opt, const char *val)
{
	const char *args[16];
	int n = 0;
	for (; as_args[n]; n++)
		args[n] = as_args[n];
	args[n++] = opt;
	args[n++] = val;
	args[n] = NULL;
	h_start(devices, args);
}

/* Waits up to timeout for the log to hold at least n lines with needle. */
static int log_wait(const char *needle, int n, int64_t timeout_ns)
{
	for (uint64_t end = h_now_ns() + (uint64_t)timeout_ns; h_now_ns() < end; h_sleep_ms(50))
		if (h_log_count(needle) >= n)
			return 0;
	return -ETIMEDOUT;
}

/* The simulator's policy, given each decision's input as swarmd measured it (the trace
 * swarmd wrote), decides every one the same (docs/autoscaler.md "Replaying swarmd's
 * decisions"); the trace holds decisions and at least one wake. Removes the trace. */
static void replay_or_fail(const char *trace)
{
	char out[2048];
	const char *argv[] = { SWARM_BIN_DIR "/swarm-sim", "--replay", trace, NULL };
	int rc = h_run(argv, out, sizeof out);
	fprintf(stderr, "%s", out);
	cr_assert_eq(rc, 0, "swarm-sim --replay exited %d: %s", rc, out);
	cr_assert(strstr(out, ": 0 decisions differ"), "%s", out);
	unsigned long decisions = 0, woken = 0;
	const char *at = strstr(out, ": ");
	cr_assert(at && sscanf(at, ": %lu decisions", &decisions) == 1, "%s", out);
	at = strstr(out, "actions (");
	cr_assert(at && sscanf(at, "actions (%lu devices woken", &woken) == 1, "%s", out);
	cr_assert_gt(decisions, 10, "%s", out);
	cr_assert_geq(woken, 1, "the trace holds no wake: %s", out);
	unlink(trace);
}

/* Waits up to 20 s for every device woken so far to park again (cpu:1 and cpu:2 parked at
 * the start: two parks more than the wakes) and for a log line holding both what and model;
 * fails the test with swarmd's log, saying when, if they do not. */
static void parked_back_or_fail(const char *what, const char *model, const char *when)
{
	const int wakes = h_log_count("event=autoscale action=wake");
	int back = -ETIMEDOUT;
	for (uint64_t end = h_now_ns() + 20 * H_SEC; back && h_now_ns() < end; h_sleep_ms(100))
		if (h_log_count("event=device_parked device=cpu:") - 2 >= wakes &&
		    h_log_count2(what, model) >= 1)
			back = 0;
	if (back)
		h_print_log(when);
	cr_assert_eq(back, 0, "%s: %d wakes, %d parks, %d \"%s\"", when, wakes,
		     h_log_count("event=device_parked device=cpu:") - 2, h_log_count2(what, model),
		     what);
}

Test(e2e_autoscale, a_burst_wakes_parked_devices_and_they_drain_back_after_it)
{
	char trace[128];
	snprintf(trace, sizeof trace, "/tmp/swarm-e2e-astrace-%d.txt", (int)getpid());
	unlink(trace);
	start_with("cpu:3", "--autoscale-trace", trace);
	cr_assert(h_log_contains("event=device_parked device=cpu:1 reason=autoscale"),
		  "cpu:1 did not start parked");
	cr_assert(h_log_contains("event=device_parked device=cpu:2 reason=autoscale"),
		  "cpu:2 did not start parked");

	pid_t pids[CLIENTS];
	struct h_load_args args[CLIENTS];
	h_start_load(pids, args, CLIENTS, 5 * H_SEC, 0);
	int woke = log_wait("event=autoscale action=wake", 1, 5 * H_SEC);
	if (woke)
		h_print_log("no wake during the burst");
	cr_assert_eq(woke, 0, "the burst woke no device");
	cr_assert_eq(log_wait("event=device_active device=cpu:1", 1, 5 * H_SEC), 0,
		     "cpu:1 did not come into service");
	h_wait_load_or_fail(pids, CLIENTS, "the burst");

	/* The burst is over: back to one device in service (the idle floor), the others
	 * parked through a drain, within the window, the cool-down and some slack. */
	parked_back_or_fail("event=autoscale action=drain", "", "devices did not drain back");
	cr_assert(h_log_contains("drain_ms="), "no drain duration logged");
	cr_assert(h_log_contains("warm_ms="), "no warm-up duration logged");

	/* Still serving after it all. */
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = h_open_working(c, "affine", NULL, &s, 10 * H_SEC);
	cr_assert_eq(rc, 0, "open after the burst: %s", swarm_strerror(rc));
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();

	replay_or_fail(trace);
}

/* The autoscaler follows a burst generated by swarm-sim's trace generator: six clients
 * submit at the arrivals of "steps:" (a quiet second, two seconds of a burst each client can
 * barely keep up with, then quiet again; each client its own seed), every request checked;
 * devices are woken for it with their reasons in the log, and go back after it; and the
 * simulator's policy decides every decision as swarmd did. */
Test(e2e_autoscale, a_generated_burst_is_followed_and_every_request_is_checked)
{
	char trace[128];
	snprintf(trace, sizeof trace, "/tmp/swarm-e2e-astrace-gen-%d.txt", (int)getpid());
	unlink(trace);
	start_with("cpu:3", "--autoscale-trace", trace);
	pid_t pids[CLIENTS];
	struct h_load_args args[CLIENTS];
	h_start_load_trace(pids, args, CLIENTS, 6 * H_SEC, "steps:500@0,150000@1,500@3");
	int woke = log_wait("event=autoscale action=wake", 1, 6 * H_SEC);
	if (woke)
		h_print_log("no wake during the generated burst");
	cr_assert_eq(woke, 0, "the generated burst woke no device");
	h_wait_load_or_fail(pids, CLIENTS, "the generated burst");
	cr_assert(h_log_contains("event=autoscale action=wake device=cpu:"), "no wake logged");
	cr_assert(h_log_contains(" reason=panic") || h_log_contains(" reason=demand"),
		  "the wake's reason is not logged");

	/* After it: back to the idle floor, the woken devices parked. */
	parked_back_or_fail("event=autoscale action=drain", "",
			    "devices did not drain back after the generated burst");
	h_stop();
	replay_or_fail(trace);
}

/* The largest rate_short, rate_long and rate_peak in a decision trace's model records. */
static double trace_max_rate(const char *trace)
{
	FILE *f = fopen(trace, "r");
	cr_assert_not_null(f, "%s", trace);
	char line[1024];
	double most = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "model ", 6))
			continue;
		/* model ID NAME VERSION MIN MAX LATENCY RATE_LONG RATE_SHORT ... RATE_PEAK SP */
		char *tok[24];
		int n = 0;
		for (char *t = strtok(line, " \n"); t && n < 24; t = strtok(NULL, " \n"))
			tok[n++] = t;
		cr_assert_eq(n, 21, "a model record of %d fields", n);
		const double r[3] = { strtod(tok[7], NULL), strtod(tok[8], NULL),
				      strtod(tok[19], NULL) };
		for (int i = 0; i < 3; i++)
			if (r[i] > most)
				most = r[i];
	}
	fclose(f);
	return most;
}

/* A client writes nonsense into its ring's submission index (2^31 submissions at once):
 * swarmd counts no more arrivals than the worker took plus a full ring, so nothing is woken
 * for it, and the others are served. */
Test(e2e_autoscale, a_client_that_claims_2_31_submissions_wakes_nothing)
{
	char trace[128];
	snprintf(trace, sizeof trace, "/tmp/swarm-e2e-astrace-bad-%d.txt", (int)getpid());
	unlink(trace);
	start_with("cpu:3", "--autoscale-trace", trace);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = h_open_working(c, "affine", NULL, &s, 10 * H_SEC);
	cr_assert_eq(rc, 0, "open: %s", swarm_strerror(rc));
	h_sleep_ms(300); /* the autoscaler has read the ring once */
	const double depth = s->geo.queue_depth;
	uint32_t tail = __atomic_load_n(&s->h->sq_tail.v, __ATOMIC_RELAXED);
	__atomic_store_n(&s->h->sq_tail.v, tail + 0x80000000u, __ATOMIC_RELEASE);
	h_sleep_ms(2000);
	cr_assert_eq(h_log_count("event=autoscale action=wake"), 0,
		     "a claimed burst woke a device");
	/* Another client is served. */
	swarm_client *c2 = h_connect_or_fail();
	swarm_session *s2 = NULL;
	rc = h_open_working(c2, "affine", NULL, &s2, 10 * H_SEC);
	cr_assert_eq(rc, 0, "open beside it: %s", swarm_strerror(rc));
	swarm_session_close(s2);
	swarm_disconnect(c2);
	swarm_disconnect(c);
	h_stop();
	/* At most a ring (queue_depth entries) a 100 ms tick (10 a second) beyond what was
	 * served, which is little here: no more than 1e5 a second. Unbounded, 2^31. */
	const double most = trace_max_rate(trace);
	cr_assert_lt(most, 10.0 * depth + 1e5, "a rate of %g", most);
	unlink(trace);
}

Test(e2e_autoscale, from_zero_a_first_open_waits_for_a_device_to_warm)
{
	start_with("cpu:2", "--autoscale-idle", "0");
	cr_assert(h_log_contains("event=device_parked device=cpu:0 reason=autoscale"),
		  "cpu:0 did not start parked");
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	uint64_t t0 = h_now_ns();
	int rc = swarm_session_open(c, "affine", 0, NULL, &s);
	double ms = (double)(h_now_ns() - t0) / 1e6;
	if (rc)
		h_print_log("open from zero");
	cr_assert_eq(rc, 0, "open with every device parked: %d (%s) after %.0f ms", rc,
		     swarm_strerror(rc), ms);
	fprintf(stderr, "open from zero took %.1f ms\n", ms);
	cr_assert(h_log_contains("reason=from_zero"), "no wake from zero logged");
	cr_assert_eq(h_affine_roundtrip(s, 4, 7, 5 * H_SEC), 0, "round trip after the wake");
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* Per model (docs/autoscaler.md "Per model"): a burst on one model places it on more
 * devices (woken for it), while a model with a session and no demand stays on the one device
 * it was opened on; when the burst is over the woken devices, hosting nothing needed, park. */
Test(e2e_autoscale, a_busy_model_gets_devices_and_an_idle_one_stays_on_one)
{
	h_start("cpu:3", as_args);
	swarm_client *c = h_connect_or_fail();
	swarm_session *idle = NULL;
	int rc = h_open_working(c, "identity", NULL, &idle, 10 * H_SEC);
	cr_assert_eq(rc, 0, "open identity: %s", swarm_strerror(rc));
	cr_assert_eq(h_log_count2("event=autoscale_place device=cpu:0", "model=identity"), 1,
		     "identity was not placed on cpu:0 at its open");

	pid_t pids[CLIENTS];
	struct h_load_args args[CLIENTS];
	h_start_load(pids, args, CLIENTS, 5 * H_SEC, 0);
	int woke = -ETIMEDOUT;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; woke && h_now_ns() < end; h_sleep_ms(50))
		if (h_log_count2("event=autoscale action=wake", "model=affine") >= 1)
			woke = 0;
	if (woke)
		h_print_log("the burst woke no device for affine");
	cr_assert_eq(woke, 0, "the burst woke no device for affine");
	/* swarm status shows the autoscaler's view: affine on two hosts or more, identity on
	 * cpu:0 alone with a target of 1. */
	json_t *st = h_status();
	json_t *models = json_object_get(json_object_get(st, "autoscale"), "models"), *m;
	size_t k;
	int seen = 0;
	json_array_foreach(models, k, m)
	{
		const char *name = json_string_value(json_object_get(m, "name"));
		json_t *hosts = json_object_get(m, "hosts");
		if (!strcmp(name, "affine")) {
			seen |= 1;
			cr_assert_geq(json_array_size(hosts), 2, "affine's hosts: %s",
				      json_dumps(m, JSON_COMPACT));
		} else if (!strcmp(name, "identity")) {
			seen |= 2;
			cr_assert_eq(json_array_size(hosts), 1);
			cr_assert_str_eq(json_string_value(json_array_get(hosts, 0)), "cpu:0");
			cr_assert_eq(h_num(m, "target"), 1);
		}
	}
	cr_assert_eq(seen, 3, "the status's autoscale view: %s", json_dumps(st, JSON_COMPACT));
	json_decref(st);
	/* Its sessions spread onto the device woken for it once it has affine loaded. */
	int moved = log_wait("event=session_moving", 1, 5 * H_SEC);
	h_wait_load_or_fail(pids, CLIENTS, "the burst");
	cr_assert_eq(moved, 0, "no affine session moved to the device woken for it");
	cr_assert_eq(h_log_count2("event=autoscale_place ", "model=identity") +
			     h_log_count2("event=autoscale action=wake", "model=identity"),
		     1, "identity, with no demand, was placed or woken for beyond its open");
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(idle, &info), 0);
	cr_assert_eq(info.device_index, 0, "identity's session left cpu:0");

	/* The burst is over: affine lets its extra devices go, and they park. */
	parked_back_or_fail("event=autoscale_release", "model=affine",
			    "affine's devices did not park after the burst");
	swarm_session_close(idle);
	swarm_disconnect(c);
	h_stop();
}

/* A warm spare loads the model most likely to need another device before any wake, so that
 * the wake finds it loaded. */
Test(e2e_autoscale, a_warm_spare_preloads_the_model_in_demand)
{
	start_with("cpu:3", "--autoscale-standby", "1");
	cr_assert_eq(log_wait("event=device_standby device=cpu:2", 1, 5 * H_SEC), 0,
		     "cpu:2 did not become a warm spare");
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = h_open_working(c, "affine", NULL, &s, 10 * H_SEC);
	cr_assert_eq(rc, 0, "open affine: %s", swarm_strerror(rc));
	cr_assert_eq(h_affine_roundtrip(s, 4, 7, 5 * H_SEC), 0);
	int loaded = log_wait("event=autoscale_spare_load device=cpu:2 model=affine", 1, 5 * H_SEC);
	if (loaded)
		h_print_log("the spare loaded nothing");
	cr_assert_eq(loaded, 0, "the spare did not load affine");
	json_t *st = NULL;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; h_now_ns() < end; h_sleep_ms(50)) {
		st = h_status();
		if (h_resident(st, 2, "affine"))
			break;
		json_decref(st);
		st = NULL;
	}
	cr_assert_not_null(st, "the spare's affine never showed in its resident table");
	const char *state = json_string_value(
		json_object_get(json_array_get(json_object_get(st, "devices"), 2), "state"));
	cr_assert_str_eq(state, "standby", "cpu:2 holds affine but is %s", state);
	json_decref(st);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* A warm spare: with --autoscale-standby 1 one parked device's worker is started and kept
 * ready out of service; a burst brings it into service at once (no worker start), and
 * another spare is started in its place. */
Test(e2e_autoscale, a_warm_spare_comes_into_service_at_once)
{
	start_with("cpu:3", "--autoscale-standby", "1");
	int spare = log_wait("event=device_standby device=cpu:2", 1, 5 * H_SEC);
	if (spare)
		h_print_log("no spare");
	cr_assert_eq(spare, 0, "cpu:2 did not become a warm spare");

	pid_t pids[CLIENTS];
	struct h_load_args largs[CLIENTS];
	h_start_load(pids, largs, CLIENTS, 3 * H_SEC, 0);
	int woke = log_wait("from=standby", 1, 5 * H_SEC);
	if (woke)
		h_print_log("the spare was not woken");
	cr_assert_eq(woke, 0, "the burst did not take the warm spare");
	/* immediate: the spare served with the worker it warmed as a spare, never starting a
	 * new one (the cold start's ACTIVE line names the worker's worker_pid; the spare's says
	 * from=standby), and that worker is still the one alive */
	cr_assert_eq(h_log_count("event=device_active device=cpu:2 warm_ms="),
		     h_log_count("event=device_active device=cpu:2 warm_ms=0.0 from=standby"),
		     "cpu:2 started a new worker instead of taking its warm one");
	const char *const sp = "event=device_standby device=cpu:2 warm_ms=";
	int spare_pid = -1;
	FILE *lf = fopen(h_log_path(), "r");
	cr_assert_not_null(lf, "cannot read swarmd's log");
	char line[2048];
	while (spare_pid < 0 && fgets(line, sizeof line, lf)) {
		const char *at = strstr(line, sp), *pid = at ? strstr(at, " worker_pid=") : NULL;
		if (pid)
			spare_pid = atoi(pid + 12);
	}
	fclose(lf);
	cr_assert_gt(spare_pid, 0, "the spare's standby line names no pid");
	cr_assert(h_alive((pid_t)spare_pid), "the spare's worker %d is gone after its wake",
		  spare_pid);
	/* Its place is taken by a new spare: cpu:1 started as one, unless the burst's demand
	 * woke it into service first (a second wake in the same decision takes the lowest
	 * parked device; with every device then in service there is none left to be a spare:
	 * seen on a loaded machine under ASan) */
	int replaced = -ETIMEDOUT;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; replaced && h_now_ns() < end; h_sleep_ms(50))
		if (h_log_count("event=device_standby device=cpu:1") >= 1 ||
		    h_log_count("event=autoscale action=wake device=cpu:1") >= 1)
			replaced = 0;
	if (replaced)
		h_print_log("no new spare");
	cr_assert_eq(replaced, 0, "no new spare after the first was taken, nor cpu:1 woken");
	h_wait_load_or_fail(pids, CLIENTS, "the burst");
	h_stop();
}

/* A target utilisation at or below the scale-down hysteresis (0.1) is refused at start with
 * the reason: the policy would refuse it on every tick and scale nothing, silently. */
Test(e2e_autoscale, a_utilisation_below_the_hysteresis_is_refused)
{
	const char *bad[] = { "0.05", "0.1", "0", "1.5" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char cmd[512];
		snprintf(cmd, sizeof cmd,
			 "timeout 10 %s/swarmd --socket /tmp/swarm-refused-%d.sock --devices cpu:1 "
			 "--autoscale --autoscale-util %s 2>&1",
			 SWARM_BIN_DIR, (int)getpid(), bad[i]);
		FILE *p = popen(cmd, "r");
		cr_assert_not_null(p);
		char out[1024] = "";
		size_t n = fread(out, 1, sizeof out - 1, p);
		out[n] = 0;
		int st = pclose(p);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2,
			  "--autoscale-util %s: exit status %d, not 2: %s", bad[i],
			  WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
		cr_assert(strstr(out, "--autoscale-util takes a fraction above the scale-down "
				      "hysteresis"),
			  "--autoscale-util %s: no reason given: %s", bad[i], out);
	}
}
