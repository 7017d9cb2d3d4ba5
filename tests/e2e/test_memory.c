/* test_memory.c: device memory accounting against a real swarmd (docs/placement.md): every
 * device's budget (--device-memory, or half its NUMA node's memory shared by its devices), the
 * model versions resident on it with their bytes as the worker measured them and their
 * sessions, in `swarm status --json`, through loads, unloads and a worker's death; and a bad
 * --device-memory refused at startup. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e/harness.h"

static char work_dir[256], reg_dir[320];
static struct h_mlp mlp;

#define MIB (1024ull * 1024)

/* Publishes net as name (x f32 [-1, 16] -> y f32 [-1, 4]) with deploy (a JSON object). */
static void publish_mlp(const struct h_mlp *net, const char *name, const char *deploy)
{
	h_mlp_publish(net, reg_dir, work_dir, name,
		      "[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}]",
		      "[{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}]", "", deploy);
}

/* n MLPs from seeds seed0.. published as PREFIX0.., deploy as publish_mlp's. */
static void publish_family(struct h_mlp *nets, int n, const char *prefix, uint32_t seed0,
			   const char *deploy)
{
	for (int i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof name, "%s%d", prefix, i);
		h_mlp_make(&nets[i], seed0 + (uint32_t)i, 0.0005f);
		publish_mlp(&nets[i], name, deploy);
	}
}

static void setup(void)
{
	h_registry_make("mem-e2e", work_dir, sizeof work_dir, reg_dir, sizeof reg_dir);
	h_mlp_make(&mlp, 7, 0.0005f);
	/* max_batch 8: the worker plans its arena at 8 rows and gathers batches of 8. */
	publish_mlp(&mlp, "mlp", "{\"max_rows\": 8, \"slots\": 4, \"max_batch\": 8}");
}

static void teardown(void) { h_registry_remove(work_dir); }

TestSuite(e2e_memory, .init = setup, .fini = teardown, .timeout = 120);

/* `swarm registry show mlp --json`'s memory estimate of its version 1, total bytes. */
static uint64_t registry_estimate(void)
{
	char out[1 << 14];
	const char *argv[] = { SWARM_BIN_DIR "/swarm",
			       "registry",
			       "--registry",
			       reg_dir,
			       "show",
			       "mlp@1",
			       "--json",
			       NULL };
	int rc = h_run(argv, out, sizeof out);
	cr_assert_eq(rc, 0, "swarm registry show exited %d: %s", rc, out);
	json_error_t e;
	json_t *j = json_loads(out, 0, &e);
	cr_assert_not_null(j, "show JSON: %s: %s", e.text, out);
	json_t *mem = json_object_get(json_array_get(json_object_get(j, "versions"), 0), "memory");
	cr_assert(json_is_object(mem), "no memory estimate: %s", out);
	uint64_t total = h_num(mem, "total_bytes");
	json_decref(j);
	return total;
}

/* The device index a session is served by. */
static int device_of(swarm_session *s)
{
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	return info.device_index;
}

static uint64_t blob_bytes(void)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/mlp.safetensors", work_dir);
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* Waits until device i's resident list has n entries (the worker's RESIDENCY is on its way
 * while a reply may already have come). */
static json_t *status_when(int i, size_t n)
{
	for (uint64_t end = h_now_ns() + 5 * H_SEC;; h_sleep_ms(20)) {
		json_t *st = h_status();
		if (json_array_size(json_object_get(h_device_memory(st, i), "models")) == n ||
		    h_now_ns() > end)
			return st;
		json_decref(st);
	}
}

/* One row through the MLP, checked against its float64 reference: 0, or a negative errno,
 * or 1 for a wrong output. */
static int mlp_roundtrip_of(swarm_session *s, const struct h_mlp *net, uint32_t seed)
{
	swarm_request *r;
	int rc = swarm_request_alloc(s, 1, &r);
	if (rc)
		return rc;
	float *x = swarm_request_input(r, 0);
	for (int k = 0; k < 16; k++)
		x[k] = h_affine_x(seed, (uint64_t)k);
	rc = swarm_request_submit(r, 0);
	if (!rc)
		rc = swarm_request_wait(r, 10 * H_SEC);
	double want[4];
	h_mlp_reference(net, x, want);
	const float *y = swarm_request_output(r, 0);
	for (int k = 0; !rc && k < 4; k++)
		if (y[k] - want[k] > 1e-3 || want[k] - y[k] > 1e-3)
			rc = 1;
	swarm_request_release(r);
	return rc;
}

static int mlp_roundtrip(swarm_session *s, uint32_t seed)
{
	return mlp_roundtrip_of(s, &mlp, seed);
}

Test(e2e_memory, status_counts_each_resident_version_and_its_sessions)
{
	const char *extra[] = { "--registry", reg_dir, "--device-memory", "64M", NULL };
	h_start("cpu:2", extra);
	json_t *st = h_status();
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(h_num(h_device_memory(st, i), "budget_bytes"), 64 * MIB);
		cr_assert_eq(h_num(h_device_memory(st, i), "used_bytes"), 0);
	}
	json_decref(st);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s;
	cr_assert_eq(swarm_session_open(c, "mlp", 0, NULL, &s), 0, "%s", swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip(s, 1), 0);
	int dv = device_of(s);
	st = status_when(dv, 1);
	json_t *m = h_resident(st, dv, "mlp");
	cr_assert_not_null(m, "mlp is not resident on device %d", dv);
	cr_assert_eq(h_num(m, "version"), 1);
	cr_assert_eq(h_num(m, "weights_bytes"), blob_bytes(), "the blob's size, counted in full");
	/* The arena of an MLP 16 -> 32 -> 4 at 8 rows, 8 rows of x and y to gather, and the CPU
	 * device's packed copies of w1 and w2, at least their f32 bytes. */
	uint64_t gather = 8 * (16 * 4 + 4 * 4), packed = (32 * 16 + 4 * 32) * 4;
	cr_assert_geq(h_num(m, "other_bytes"), gather + 8 * 32 * 4 + packed, "other_bytes %llu",
		      (unsigned long long)h_num(m, "other_bytes"));
	cr_assert_eq(h_num(m, "bytes"), h_num(m, "weights_bytes") + h_num(m, "other_bytes"));
	cr_assert_eq(h_num(m, "sessions"), 1);
	cr_assert_eq(h_num(h_device_memory(st, dv), "used_bytes"), h_num(m, "bytes"));
	cr_assert_eq(h_num(h_device_memory(st, 1 - dv), "used_bytes"), 0);
	/* What the registry estimates before any load is what the worker measured. */
	cr_assert_eq(registry_estimate(), h_num(m, "bytes"), "estimate %llu, measured %llu",
		     (unsigned long long)registry_estimate(),
		     (unsigned long long)h_num(m, "bytes"));
	json_decref(st);

	/* The worker dies: its versions are no longer counted; the session is attached again
	 * (here or on the other device) and the new worker's load counts once more. */
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	kill(info.worker_pid, SIGKILL);
	cr_assert_gt(h_wait_new_worker(info.worker_pid, 10 * H_SEC), 0, "no new worker");
	cr_assert_eq(mlp_roundtrip(s, 3), 0, "a request after the worker died");
	/* The session may come back to the new worker or stay where it was evacuated to: wait
	 * for the one device that serves it to count mlp, and nothing else to. */
	for (uint64_t end = h_now_ns() + 5 * H_SEC;; h_sleep_ms(20)) {
		st = h_status();
		json_t *m0 = h_resident(st, 0, "mlp"), *m1 = h_resident(st, 1, "mlp");
		dv = device_of(s);
		if ((m0 != NULL) + (m1 != NULL) == 1 && h_resident(st, dv, "mlp"))
			break;
		cr_assert_lt(h_now_ns(), end, "after the worker died: session on device %d, %s", dv,
			     json_dumps(st, JSON_COMPACT));
		json_decref(st);
	}
	m = h_resident(st, dv, "mlp");
	cr_assert_eq(h_num(m, "sessions"), 1);
	cr_assert_eq(h_num(h_device_memory(st, dv), "used_bytes"), h_num(m, "bytes"));
	cr_assert_eq(h_num(h_device_memory(st, 1 - dv), "used_bytes"), 0, "counted once");
	json_decref(st);

	/* The last session closes: the version stays resident, idle, until it must make room;
	 * a session opened again finds it loaded. */
	uint64_t used = h_num(h_device_memory(st = h_status(), dv), "used_bytes");
	json_decref(st);
	cr_assert_eq(swarm_session_close(s), 0);
	st = h_status();
	m = h_resident(st, dv, "mlp");
	cr_assert_not_null(m, "mlp left device %d with its last session", dv);
	cr_assert_eq(h_num(m, "sessions"), 0);
	cr_assert(json_is_false(json_object_get(m, "pinned")));
	cr_assert_eq(h_num(h_device_memory(st, dv), "used_bytes"), used);
	json_decref(st);
	int loads = h_log_count("event=weights_loaded model=mlp ");
	cr_assert_eq(swarm_session_open(c, "mlp", 0, NULL, &s), 0, "%s", swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip(s, 4), 0);
	cr_assert_eq(device_of(s), dv, "the device that has it resident");
	cr_assert_eq(h_log_count("event=weights_loaded model=mlp "), loads, "loaded again");
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_memory, default_budget_is_half_the_nodes_memory_shared_by_its_devices)
{
	const char *extra[] = { "--registry", reg_dir, NULL };
	h_start("cpu:2", extra);
	json_t *st = h_status();
	uint64_t b0 = h_num(h_device_memory(st, 0), "budget_bytes");
	uint64_t b1 = h_num(h_device_memory(st, 1), "budget_bytes");
	json_decref(st);
	cr_assert_gt(b0, 0);
	uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	if (access("/sys/devices/system/node/node1", F_OK) != 0) {
		/* One node: both devices on it, a quarter of the machine each. */
		cr_assert_eq(b0, b1);
		cr_assert(b0 * 4 > phys * 9 / 10 && b0 * 4 < phys * 11 / 10,
			  "budget %llu, machine %llu", (unsigned long long)b0,
			  (unsigned long long)phys);
	}
	cr_assert(h_log_contains("event=device_memory"), "the budget is not logged");
	h_stop();
}

Test(e2e_memory, a_bad_device_memory_is_refused_at_startup)
{
	const char *bad[] = { "12X", "-5", "1Q", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char out[4096];
		const char *argv[] = { SWARM_BIN_DIR "/swarmd", "--device-memory", bad[i], NULL };
		int rc = h_run(argv, out, sizeof out);
		cr_assert_eq(rc, 2, "--device-memory \"%s\": exit %d", bad[i], rc);
	}
}

/* ---- placement by memory: five MLPs on two devices that hold two each -------------------- */

#define NETS 5
static struct h_mlp nets[NETS];

static void publish_nets(void)
{
	publish_family(nets, NETS, "m", 100, "{\"max_rows\": 8, \"slots\": 4, \"max_batch\": 8}");
}

/* Opens m<i>: 0 with *s set, or the open's negative errno. */
static int open_net(swarm_client *c, int i, swarm_session **s)
{
	char name[16];
	snprintf(name, sizeof name, "m%d", i);
	return swarm_session_open(c, name, 0, NULL, s);
}

/* Every open session answers exactly: no request fails through evictions. */
static void check_all(swarm_session **s, uint32_t seed)
{
	for (int i = 0; i < NETS; i++)
		if (s[i])
			cr_assert_eq(mlp_roundtrip_of(s[i], &nets[i], seed), 0, "m%d", i);
}

/* Resident versions on each device never exceed its budget. */
static void check_budgets(uint64_t budget)
{
	json_t *st = h_status();
	for (int d = 0; d < 2; d++)
		cr_assert_leq(h_num(h_device_memory(st, d), "used_bytes"), budget,
			      "device %d over its budget: %s", d, json_dumps(st, JSON_COMPACT));
	json_decref(st);
}

Test(e2e_memory, versions_spread_evict_the_least_recently_used_idle_one_and_come_back)
{
	publish_nets();
	/* An MLP costs 10896 bytes on a CPU device (4624, and 6272 of its two LINEAR weights
	 * packed): 24000 hold two, not three. */
	const char *extra[] = { "--registry", reg_dir, "--device-memory", "24000", NULL };
	h_start("cpu:2", extra);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s[NETS] = { 0 };
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(open_net(c, i, &s[i]), 0, "m%d: %s", i, swarm_client_error(c));
		check_all(s, (uint32_t)i);
	}
	check_budgets(24000);
	cr_assert_eq(h_log_count("event=version_evicted"), 0, "four fit in two devices of two");
	/* Both devices full of versions in use: a fifth is refused, saying why. */
	swarm_session *extra_s = NULL;
	int rc = open_net(c, 4, &extra_s);
	cr_assert_eq(rc, -ENOSPC, "m4 with every resident version in use: %d (%s)", rc,
		     swarm_client_error(c));
	cr_assert(strstr(swarm_client_error(c), "no device can make room for model m4@1"), "%s",
		  swarm_client_error(c));
	/* m1 goes idle and the others are used after it: m4 evicts m1 and serves. */
	cr_assert_eq(swarm_session_close(s[1]), 0);
	s[1] = NULL;
	h_sleep_ms(150); /* a tick, so that the uses below are later than m1's */
	check_all(s, 10);
	h_sleep_ms(150);
	cr_assert_eq(open_net(c, 4, &s[4]), 0, "m4: %s", swarm_client_error(c));
	check_all(s, 11);
	cr_assert(h_log_contains("event=version_evicted") &&
			  h_log_count("event=version_evicted device=") == 1 &&
			  h_log_count("model=m1 version=1 bytes=") >= 1,
		  "m1 was not the one evicted");
	check_budgets(24000);
	/* m1 again: nothing is idle now, so it waits for room; m2 goes idle and m1 returns in
	 * its place, loaded again, answering exactly. */
	rc = open_net(c, 1, &s[1]);
	cr_assert_eq(rc, -ENOSPC, "m1 with no idle version to evict: %d", rc);
	s[1] = NULL;
	cr_assert_eq(swarm_session_close(s[2]), 0);
	s[2] = NULL;
	cr_assert_eq(open_net(c, 1, &s[1]), 0, "m1 back: %s", swarm_client_error(c));
	check_all(s, 12);
	check_budgets(24000);
	cr_assert_eq(h_log_count("event=version_evicted device="), 2);
	for (int i = 0; i < NETS; i++)
		if (s[i])
			swarm_session_close(s[i]);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_memory, a_version_larger_than_every_budget_is_refused_at_open_with_the_sizes)
{
	const char *extra[] = { "--registry", reg_dir, "--device-memory", "4K", NULL };
	h_start("cpu:2", extra);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "mlp", 0, NULL, &s);
	cr_assert_eq(rc, -EFBIG, "open: %d (%s)", rc, swarm_client_error(c));
	char want[128];
	snprintf(want, sizeof want, "(%llu bytes)", (unsigned long long)registry_estimate());
	cr_assert(strstr(swarm_client_error(c), want) &&
			  strstr(swarm_client_error(c), "4096 bytes"),
		  "the text gives the model's size %s and the largest budget: %s", want,
		  swarm_client_error(c));
	/* The built-ins cost nothing and still open. */
	cr_assert_eq(swarm_session_open(c, "identity", 0, NULL, &s), 0);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* `swarm model ARGS...` against the test's swarmd: its exit status, stdout in out. */
static int swarm_model(char *out, size_t len, const char *verb, const char *ref, const char *device)
{
	const char *argv[] = {
		SWARM_BIN_DIR "/swarm",     "model", verb, ref, "--socket", h_socket(),
		device ? "--device" : NULL, device,  NULL
	};
	return h_run(argv, out, len);
}

/* On how many devices model is resident, and on how many pinned. */
static void count_resident(const char *model, int *resident_on, int *pinned_on)
{
	json_t *st = h_status();
	*resident_on = *pinned_on = 0;
	for (int i = 0; i < 2; i++) {
		json_t *m = h_resident(st, i, model);
		*resident_on += m != NULL;
		*pinned_on += m && json_is_true(json_object_get(m, "pinned"));
	}
	json_decref(st);
}

Test(e2e_memory, an_operators_load_pins_a_version_and_unload_lets_it_go)
{
	publish_nets();
	const char *extra[] = { "--registry", reg_dir, "--device-memory", "24000", NULL };
	h_start("cpu:2", extra);
	char out[1024];
	int res, pin;
	cr_assert_eq(swarm_model(out, sizeof out, "load", "m0", "cpu:1"), 0, "%s", out);
	cr_assert(strstr(out, "m0@1 is loaded and pinned"), "%s", out);
	json_t *st = h_status();
	json_t *m = h_resident(st, 1, "m0");
	cr_assert(m && json_is_true(json_object_get(m, "pinned")) && !h_resident(st, 0, "m0"),
		  "m0 pinned on cpu:1 only: %s", json_dumps(st, JSON_COMPACT));
	json_decref(st);
	cr_assert_eq(swarm_model(out, sizeof out, "load", "m0", "cpu:9"), 1, "no such device");
	cr_assert_eq(swarm_model(out, sizeof out, "load", "nosuch", NULL), 1, "no such model");
	cr_assert_eq(swarm_model(out, sizeof out, "frob", "m0", NULL), 2, "bad usage");

	/* Pressure on both devices: every other version comes and goes, m0 stays. */
	swarm_client *c = h_connect_or_fail();
	for (int round = 0; round < 2; round++)
		for (int i = 1; i < NETS; i++) {
			swarm_session *s;
			cr_assert_eq(open_net(c, i, &s), 0, "m%d: %s", i, swarm_client_error(c));
			cr_assert_eq(mlp_roundtrip_of(s, &nets[i], (uint32_t)i), 0);
			swarm_session_close(s);
		}
	cr_assert_gt(h_log_count("event=version_evicted device="), 0, "nothing was evicted");
	cr_assert_eq(h_log_count("event=version_evicted device=cpu:1 model=m0 "), 0);
	count_resident("m0", &res, &pin);
	cr_assert(res == 1 && pin == 1, "m0 resident on %d, pinned on %d", res, pin);

	/* In use: not unloaded. Idle: unpinned and gone. */
	swarm_session *s;
	cr_assert_eq(open_net(c, 0, &s), 0, "%s", swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip_of(s, &nets[0], 9), 0);
	cr_assert_eq(swarm_model(out, sizeof out, "unload", "m0", NULL), 1,
		     "unload of a version in use");
	swarm_session_close(s);
	for (int k = 0; k < 50 && swarm_model(out, sizeof out, "unload", "m0", NULL); k++)
		h_sleep_ms(20); /* the close reaches swarmd */
	cr_assert(strstr(out, "m0@1 unloaded from"), "%s", out);
	count_resident("m0", &res, &pin);
	cr_assert(res == 0 && pin == 0, "m0 resident on %d, pinned on %d", res, pin);
	cr_assert_eq(swarm_model(out, sizeof out, "unload", "m0", NULL), 1, "not resident");
	/* Load everywhere: both devices. */
	cr_assert_eq(swarm_model(out, sizeof out, "load", "m0", NULL), 0, "%s", out);
	count_resident("m0", &res, &pin);
	cr_assert(res == 2 && pin == 2, "m0 resident on %d, pinned on %d", res, pin);

	/* cpu:1's worker dies: its replacement starts empty, and loads and pins m0 again. */
	st = h_status();
	pid_t old = (pid_t)h_num(json_array_get(json_object_get(st, "devices"), 1), "pid");
	json_decref(st);
	cr_assert_gt(old, 0);
	cr_assert_eq(kill(old, SIGKILL), 0);
	cr_assert_gt(h_wait_new_worker(old, 10 * H_SEC), 0, "no new worker for cpu:1");
	for (uint64_t end = h_now_ns() + 10 * H_SEC; h_now_ns() < end; h_sleep_ms(50)) {
		count_resident("m0", &res, &pin);
		if (res == 2 && pin == 2)
			break;
	}
	if (pin != 2)
		h_print_log("the pin after the worker's death");
	cr_assert(res == 2 && pin == 2, "after cpu:1's worker died m0 is resident on %d, pinned "
				       "on %d",
		  res, pin);
	cr_assert_eq(h_log_count("event=model_pin_reload device=cpu:1 model=m0 version=1"), 1);
	cr_assert_eq(swarm_model(out, sizeof out, "unload", "m0", "cpu:1"), 0, "%s", out);
	swarm_disconnect(c);
	h_stop();
}

/* ---- under load: 20 models, 2 devices that hold 8 each, a Zipf popularity that shifts -------- */

#define ZIPF_MODELS 20
#define ZIPF_THREADS 4
#define ZIPF_ROUNDS 50

static struct h_mlp zipf_nets[ZIPF_MODELS];

struct zipf_client {
	pthread_t t;
	uint32_t seed;
	int opens, requests, failures, first_error, first_model;
};

/* A model index drawn from a Zipf (s = 1) popularity over ZIPF_MODELS; after the shift the
 * ranks are reversed, so that the cold models become the hot ones. */
static int zipf_pick(uint64_t *state, int shifted)
{
	static double cdf[ZIPF_MODELS];
	if (cdf[ZIPF_MODELS - 1] == 0) {
		double sum = 0;
		for (int k = 0; k < ZIPF_MODELS; k++)
			cdf[k] = sum += 1.0 / (k + 1);
		for (int k = 0; k < ZIPF_MODELS; k++)
			cdf[k] /= sum;
	}
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	double u = (double)(*state >> 11) / 9007199254740992.0;
	int k = 0;
	while (k < ZIPF_MODELS - 1 && u > cdf[k])
		k++;
	return shifted ? ZIPF_MODELS - 1 - k : k;
}

static void *zipf_run(void *arg)
{
	struct zipf_client *z = arg;
	swarm_client *c = NULL;
	if (swarm_connect(h_socket(), &c)) {
		z->failures++;
		return NULL;
	}
	uint64_t state = z->seed;
	for (int round = 0; round < ZIPF_ROUNDS; round++) {
		int k = zipf_pick(&state, round >= ZIPF_ROUNDS / 2);
		char name[16];
		snprintf(name, sizeof name, "z%d", k);
		swarm_session *s;
		int rc = swarm_session_open(c, name, 0, NULL, &s);
		for (int r = 0; !rc && r < 3; r++, z->requests++)
			rc = mlp_roundtrip_of(s, &zipf_nets[k],
					      z->seed + (uint32_t)(round * 3 + r));
		if (rc && !z->failures++) {
			z->first_error = rc;
			z->first_model = k;
		}
		z->opens++;
		if (rc == 0 || rc == 1)
			swarm_session_close(s);
	}
	swarm_disconnect(c);
	return NULL;
}

/* The 20-model workload on swarmd with extra (NULL-terminated) after the registry and the
 * budgets; every open and request checked, every budget kept. swarmd is left running. */
static void zipf_workload(const char *const *extra)
{
	publish_family(zipf_nets, ZIPF_MODELS, "z", 500,
		       "{\"max_rows\": 8, \"slots\": 4, \"max_batch\": 8}");
	/* 10896 bytes an MLP: 90000 hold 8 of them, not 9. */
	const char *args[16] = { "--registry", reg_dir, "--device-memory", "90000" };
	int n = 4;
	for (int i = 0; extra[i] && n < 15; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	h_start("cpu:2", args);
	struct zipf_client z[ZIPF_THREADS] = { 0 };
	for (int i = 0; i < ZIPF_THREADS; i++) {
		z[i].seed = 77 + 1000 * (uint32_t)i;
		cr_assert_eq(pthread_create(&z[i].t, NULL, zipf_run, &z[i]), 0);
	}
	int opens = 0, requests = 0;
	for (int i = 0; i < ZIPF_THREADS; i++) {
		pthread_join(z[i].t, NULL);
		opens += z[i].opens;
		requests += z[i].requests;
		cr_expect_eq(
			z[i].failures, 0, "client %d: %d of %d opens failed (first: m%d, %d %s)", i,
			z[i].failures, z[i].opens, z[i].first_model, z[i].first_error,
			z[i].first_error == 1 ? "wrong output" : swarm_strerror(z[i].first_error));
	}
	cr_assert_eq(opens, ZIPF_THREADS * ZIPF_ROUNDS);
	cr_assert_eq(requests, 3 * opens, "every open ran its three checked requests");
	int evicted = h_log_count("event=version_evicted device=");
	int loads = h_log_count("event=weights_loaded model=z");
	fprintf(stderr, "zipf: %d opens, %d loads, %d evictions\n", opens, loads, evicted);
	cr_assert_gt(evicted, 0, "20 models in room for 16: something must have been evicted");
	cr_assert_lt(loads, opens, "resident versions were not reused");
	check_budgets(90000);
	cr_assert_eq(h_log_count("event=over_budget"), 0, "a device went over its budget");
}

Test(e2e_memory, twenty_models_on_two_devices_of_eight_under_a_shifting_zipf_load)
{
	const char *none[] = { NULL };
	zipf_workload(none);
	h_stop();
}

/* The same under the autoscaler, both devices kept in service: each model placed on its own
 * hosts, a host pinned only while its model is in use, so that the idle ones can still be
 * evicted for the next model (else opens would find every version pinned). */
Test(e2e_memory, twenty_models_under_the_autoscaler_evict_idle_hosts)
{
	const char *as[] = { "--autoscale", "--autoscale-idle", "2", NULL };
	zipf_workload(as);
	cr_assert_gt(h_log_count("event=autoscale_place device="), 0,
		     "the autoscaler placed no model");
	h_stop();
}

Test(e2e_memory, deploy_devices_and_kind_bound_where_a_model_goes)
{
	publish_mlp(&mlp, "on1", "{\"max_rows\": 8, \"slots\": 4, \"devices\": [\"cpu:1\"]}");
	publish_mlp(&mlp, "gpuonly", "{\"max_rows\": 8, \"slots\": 4, \"device_kind\": \"gpu\"}");
	const char *extra[] = { "--registry", reg_dir, NULL };
	h_start("cpu:2", extra);
	swarm_client *c = h_connect_or_fail();
	/* Four sessions would spread two and two; this model may use cpu:1 only. */
	swarm_session *s[4];
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(swarm_session_open(c, "on1", 0, NULL, &s[i]), 0, "%s",
			     swarm_client_error(c));
		cr_assert_eq(device_of(s[i]), 1, "session %d on device %d", i, device_of(s[i]));
		cr_assert_eq(mlp_roundtrip(s[i], (uint32_t)i), 0);
	}
	/* Sessions of another model still spread over both. */
	swarm_session *other;
	cr_assert_eq(swarm_session_open(c, "mlp", 0, NULL, &other), 0);
	cr_assert_eq(device_of(other), 0, "the less loaded device");
	/* No device of the kind: refused at once, saying why (never parked). */
	swarm_session *g = NULL;
	uint64_t t0 = h_now_ns();
	int rc = swarm_session_open(c, "gpuonly", 0, NULL, &g);
	cr_assert_eq(rc, -ENODEV, "open: %d (%s)", rc, swarm_client_error(c));
	cr_assert(strstr(swarm_client_error(c), "may use only GPU devices"), "%s",
		  swarm_client_error(c));
	cr_assert_lt(h_now_ns() - t0, 2 * H_SEC, "the open waited for a device");
	for (int i = 0; i < 4; i++)
		swarm_session_close(s[i]);
	swarm_session_close(other);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_memory, a_registry_model_opens_from_zero_with_every_device_parked)
{
	/* Parked devices have no worker to say their budget: a CPU device's is known anyway,
	 * and the open wakes one rather than being refused as too large. */
	const char *extra[] = { "--registry", reg_dir,       "--device-memory",
				"64M",        "--autoscale", "--autoscale-idle",
				"0",          NULL };
	h_start("cpu:2", extra);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "mlp", 0, NULL, &s);
	cr_assert_eq(rc, 0, "open from zero: %d (%s)", rc, swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip(s, 5), 0);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_memory, a_version_in_use_is_evicted_once_its_sessions_have_moved)
{
	publish_nets();
	/* m1 may use cpu:0 only, m2 cpu:1 only, m3 cpu:0 only; m0 anywhere. Budgets hold two. */
	const char *place[4] = { "", "\"devices\": [\"cpu:0\"], ", "\"devices\": [\"cpu:1\"], ",
				 "\"devices\": [\"cpu:0\"], " };
	for (int i = 1; i < 4; i++) {
		char name[16], deploy[160];
		snprintf(name, sizeof name, "m%d", i);
		snprintf(deploy, sizeof deploy, "{%s\"max_rows\": 8, \"slots\": 4}", place[i]);
		publish_mlp(&nets[i], name, deploy);
	}
	const char *extra[] = { "--registry", reg_dir, "--device-memory", "24000", NULL };
	h_start("cpu:2", extra);
	char out[1024];
	/* cpu:1: m0 pinned and m2 in use; cpu:0: m0 and m1 in use. */
	cr_assert_eq(swarm_model(out, sizeof out, "load", "m0", "cpu:1"), 0, "%s", out);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s0, *s1, *s2, *s3;
	cr_assert_eq(open_net(c, 2, &s2), 0, "%s", swarm_client_error(c));
	cr_assert_eq(open_net(c, 0, &s0), 0, "%s", swarm_client_error(c));
	cr_assert_eq(device_of(s0), 0, "m0's session on the idle device");
	cr_assert_eq(open_net(c, 1, &s1), 0, "%s", swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip_of(s0, &nets[0], 1), 0);
	/* m3 needs room on cpu:0: m1's session cannot move, m0's can (cpu:1 has m0). */
	int rc = open_net(c, 3, &s3);
	cr_assert_eq(rc, 0, "m3: %d (%s)", rc, swarm_client_error(c));
	cr_assert_eq(device_of(s3), 0);
	/* m3's open may be answered once s0 has left cpu:0 (m0 idle there, evicted), before
	 * cpu:1's worker has taken s0 and swarmd has published where it is: wait for that. */
	for (uint64_t end = h_now_ns() + 5 * H_SEC; device_of(s0) != 1 && h_now_ns() < end;)
		h_sleep_ms(10);
	cr_assert_eq(device_of(s0), 1, "m0's session moved to where m0 is pinned");
	for (int k = 0; k < 5; k++) {
		cr_assert_eq(mlp_roundtrip_of(s0, &nets[0], 10 + (uint32_t)k), 0);
		cr_assert_eq(mlp_roundtrip_of(s1, &nets[1], 20 + (uint32_t)k), 0);
		cr_assert_eq(mlp_roundtrip_of(s2, &nets[2], 30 + (uint32_t)k), 0);
		cr_assert_eq(mlp_roundtrip_of(s3, &nets[3], 40 + (uint32_t)k), 0);
	}
	cr_assert(h_log_contains("reason=memory"), "no move for memory logged");
	cr_assert_eq(h_log_count("event=version_evicted device=cpu:0 model=m0 "), 1);
	check_budgets(24000);
	swarm_disconnect(c);
	h_stop();
}

/* Per model under the autoscaler (docs/autoscaler.md "Per model"): a model whose deploy asks
 * for two devices at least is loaded on two as soon as it is open, one of them woken for it;
 * one allowed a single device keeps all its sessions there, and is resident nowhere else,
 * although two devices are in service and it has six sessions (without per-model placement
 * the balancer spreads them over both). */
Test(e2e_memory, per_model_min_and_max_devices_are_kept)
{
	struct h_mlp nets[2];
	h_mlp_make(&nets[0], 31, 0.0005f);
	h_mlp_make(&nets[1], 32, 0.0005f);
	publish_mlp(&nets[0], "wide",
		    "{\"max_rows\": 8, \"slots\": 4, \"min_devices\": 2, \"max_devices\": 3}");
	publish_mlp(&nets[1], "narrow", "{\"max_rows\": 8, \"slots\": 4, \"max_devices\": 1}");
	const char *extra[] = { "--registry",  reg_dir,
				"--autoscale", "--autoscale-idle",
				"1",           "--autoscale-window-s",
				"2",           "--autoscale-cooldown-s",
				"1",           NULL };
	h_start("cpu:3", extra);
	swarm_client *c = h_connect_or_fail();
	swarm_session *w = NULL;
	int rc = swarm_session_open(c, "wide", 0, NULL, &w);
	cr_assert_eq(rc, 0, "open wide: %d (%s)", rc, swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip_of(w, &nets[0], 1), 0);
	int on = 0;
	for (uint64_t end = h_now_ns() + 10 * H_SEC; on < 2 && h_now_ns() < end; h_sleep_ms(50)) {
		json_t *st = h_status();
		on = 0;
		for (int i = 0; i < 3; i++)
			on += h_resident(st, i, "wide") != NULL;
		json_decref(st);
	}
	if (on != 2)
		h_print_log("wide is not on two devices");
	cr_assert_eq(on, 2, "wide (min_devices 2) is resident on %d devices", on);
	cr_assert_geq(h_log_count2("event=autoscale action=wake",
				   "reason=min model=wide version=1"),
		      1, "no device was woken for wide's minimum");

	/* Two devices are in service now (at least): wide's. */
	swarm_session *n[6];
	for (int k = 0; k < 6; k++) {
		rc = swarm_session_open(c, "narrow", 0, NULL, &n[k]);
		cr_assert_eq(rc, 0, "open narrow %d: %d (%s)", k, rc, swarm_client_error(c));
	}
	for (int round = 0; round < 50; round++)
		for (int k = 0; k < 6; k++)
			cr_assert_eq(mlp_roundtrip_of(n[k], &nets[1], (uint32_t)(round * 6 + k)),
				     0);
	int dev = device_of(n[0]);
	for (int k = 1; k < 6; k++)
		cr_assert_eq(device_of(n[k]), dev, "narrow's session %d is on %d, not %d", k,
			     device_of(n[k]), dev);
	json_t *st = h_status();
	for (int i = 0; i < 3; i++)
		cr_assert_eq(h_resident(st, i, "narrow") != NULL, i == dev,
			     "narrow (max_devices 1) resident on device %d", i);
	json_decref(st);
	cr_assert_eq(mlp_roundtrip_of(w, &nets[0], 2), 0);
	for (int k = 0; k < 6; k++)
		swarm_session_close(n[k]);
	swarm_session_close(w);
	swarm_disconnect(c);
	h_stop();
}

/* Under the autoscaler a device is woken when the models' placements need one more: with
 * cpu:0 full of versions in use, an open of a third waits for cpu:1 to be woken for it rather
 * than being refused for lack of room. */
Test(e2e_memory, an_open_with_no_room_in_service_wakes_a_device_for_it)
{
	publish_nets();
	const char *extra[] = { "--registry", reg_dir,       "--device-memory",
				"24000",      "--autoscale", NULL };
	h_start("cpu:2", extra);
	cr_assert(h_log_contains("event=device_parked device=cpu:1 reason=autoscale"),
		  "cpu:1 did not start parked");
	swarm_client *c = h_connect_or_fail();
	swarm_session *s[3];
	for (int i = 0; i < 2; i++) {
		int rc = open_net(c, i, &s[i]);
		cr_assert_eq(rc, 0, "open m%d: %d (%s)", i, rc, swarm_client_error(c));
		cr_assert_eq(device_of(s[i]), 0);
	}
	int rc = open_net(c, 2, &s[2]);
	if (rc)
		h_print_log("m2's open");
	cr_assert_eq(rc, 0, "open m2 with cpu:0 full: %d (%s)", rc, swarm_client_error(c));
	cr_assert_eq(device_of(s[2]), 1, "m2 is not on the device woken for it");
	cr_assert_eq(h_log_count2("event=autoscale action=wake device=cpu:1", "model=m2"), 1,
		     "cpu:1 was not woken for m2");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(mlp_roundtrip_of(s[i], &nets[i], (uint32_t)i), 0, "m%d's output", i);
	for (int i = 0; i < 3; i++)
		swarm_session_close(s[i]);
	swarm_disconnect(c);
	h_stop();
}

/* Two versions of one model publishing the same weights blob share one copy on a device:
 * counted once in its used bytes, and each marked shared. */
Test(e2e_memory, a_weights_copy_shared_by_two_versions_is_counted_once)
{
	/* mlp@2: the same weights as mlp@1 (setup's), another deploy. */
	publish_mlp(&mlp, "mlp", "{\"max_rows\": 8, \"slots\": 4, \"max_batch\": 4}");
	const char *extra[] = { "--registry", reg_dir, "--device-memory", "64M", NULL };
	h_start("cpu:1", extra);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s1, *s2;
	cr_assert_eq(swarm_session_open(c, "mlp", 1, NULL, &s1), 0, "%s", swarm_client_error(c));
	cr_assert_eq(swarm_session_open(c, "mlp", 2, NULL, &s2), 0, "%s", swarm_client_error(c));
	cr_assert_eq(mlp_roundtrip(s1, 1), 0);
	cr_assert_eq(mlp_roundtrip(s2, 2), 0);
	json_t *st = status_when(0, 2);
	json_t *models = json_object_get(h_device_memory(st, 0), "models"), *m;
	cr_assert_eq(json_array_size(models), 2, "%s", json_dumps(st, JSON_COMPACT));
	uint64_t weights = 0, other = 0;
	size_t k;
	json_array_foreach(models, k, m)
	{
		cr_assert(json_is_true(json_object_get(m, "weights_shared")),
			  "version %llu not marked shared", (unsigned long long)h_num(m, "version"));
		cr_assert_eq(h_num(m, "weights_bytes"), blob_bytes());
		weights = h_num(m, "weights_bytes");
		other += h_num(m, "other_bytes");
	}
	cr_assert_eq(h_num(h_device_memory(st, 0), "used_bytes"), weights + other,
		     "used %llu: the blob (%llu) once and each version's own (%llu)",
		     (unsigned long long)h_num(h_device_memory(st, 0), "used_bytes"),
		     (unsigned long long)weights, (unsigned long long)other);
	json_decref(st);
	swarm_session_close(s1);
	swarm_session_close(s2);
	swarm_disconnect(c);
	h_stop();
}
