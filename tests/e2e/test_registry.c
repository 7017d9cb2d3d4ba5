/* test_registry.c: serving models from the registry, end to end.
 *
 * A registry is made in a temporary directory with versions of an affine model whose weights
 * (scale and bias, f32 [16]) differ per version, then swarmd serves it. The hot-swap test
 * hammers the model from several clients while v2 is published and activated and v1 is
 * rolled back to: no request may fail, and every output must be exactly one version's. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "registry/registry.h"
#include "registry/safetensors.h"

#define WIDTH 16
#define CLIENTS 4

static char reg_dir[512];
static char work_dir[256];

/* Writes the weights of version (scale, bias) and the affine manifest; returns their paths. */
static const char *deploy_json = "{\"max_rows\": 64, \"slots\": 4}";

static void make_version(float scale, float bias, char *weights, char *manifest, size_t len)
{
	float s[WIDTH], b[WIDTH];
	for (int i = 0; i < WIDTH; i++) {
		s[i] = scale;
		b[i] = bias;
	}
	int64_t shape[1] = { WIDTH };
	struct swarm_st_write_tensor t[2] = {
		{ .name = "bias", .dtype = SWARM_ST_F32, .ndim = 1, .shape = shape, .data = b },
		{ .name = "scale", .dtype = SWARM_ST_F32, .ndim = 1, .shape = shape, .data = s },
	};
	snprintf(weights, len, "%s/w-%g-%g.safetensors", work_dir, scale, bias);
	cr_assert_eq(swarm_st_write(weights, t, 2), 0, "write %s", weights);
	snprintf(manifest, len, "%s/manifest.json", work_dir);
	FILE *f = fopen(manifest, "w");
	cr_assert_not_null(f);
	fputs("{\"format\": 1,\n"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],\n"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],\n"
	      " \"graph\": {\"builtin\": \"affine\"},\n"
	      " \"weights\": [{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [16]},\n"
	      "             {\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": [16]}],\n"
	      " \"deploy\": ",
	      f);
	fputs(deploy_json, f);
	fputs("}\n", f);
	fclose(f);
}

static uint32_t publish_as(const char *model, float scale, float bias, int activate)
{
	char w[512], m[512], err[512];
	make_version(scale, bias, w, m, sizeof w);
	uint32_t v = 0;
	const char *meta[1] = { "source=test" };
	int rc = swarm_registry_publish(reg_dir, model, w, m, meta, 1, activate, &v, err,
					sizeof err);
	cr_assert_eq(rc, 0, "publish scale %g: %d: %s", scale, rc, err);
	return v;
}

static uint32_t publish(float scale, float bias, int activate)
{
	return publish_as("scaler", scale, bias, activate);
}

static void setup(void)
{
	h_registry_make("reg-e2e", work_dir, sizeof work_dir, reg_dir, sizeof reg_dir);
}

static void teardown(void) { h_registry_remove(work_dir); }

TestSuite(e2e_registry, .init = setup, .fini = teardown, .timeout = 120);

static void start(void)
{
	const char *extra[] = { "--registry", reg_dir, NULL };
	h_start("cpu:2", extra);
}

/* One request of rows rows with inputs exact in f32; returns which version's output came
 * back (1 for scale 2 bias 1, 2 for scale 3 bias -0.5), 0 for neither, or a negative errno. */
static int one_request(swarm_session *s, uint32_t rows, uint32_t seed)
{
	swarm_request *r;
	int rc = swarm_request_alloc(s, rows, &r);
	if (rc)
		return rc;
	float *x = swarm_request_input(r, 0);
	for (uint32_t i = 0; i < rows * WIDTH; i++)
		x[i] = (float)((int)((seed * 2654435761u + i * 40503u) % 2000) - 1000) / 8.0f;
	rc = swarm_request_submit(r, 0);
	if (!rc)
		rc = swarm_request_wait(r, 5 * H_SEC);
	if (rc) {
		swarm_request_release(r);
		return rc;
	}
	const float *y = swarm_request_output(r, 0);
	int v1 = 1, v2 = 1;
	for (uint32_t i = 0; i < rows * WIDTH; i++) {
		v1 &= y[i] == 2.0f * x[i] + 1.0f;
		v2 &= y[i] == 3.0f * x[i] - 0.5f;
	}
	swarm_request_release(r);
	return v1 ? 1 : v2 ? 2 : 0;
}

struct hammer {
	pthread_t t;
	volatile int stop;
	long requests, failures, mixed, seen[3];
	int last;
	int first_error;
	uint32_t seed;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	if (h_connect(&c) || swarm_session_open(c, "scaler", 0, NULL, &s)) {
		h->failures++;
		h->first_error = -ENOTCONN;
		if (c)
			swarm_disconnect(c);
		return NULL;
	}
	swarm_session_set_spin(s, 0); /* 4 clients and 2 workers share 2 cores */
	while (!h->stop) {
		int v = one_request(s, 1 + h->seed % 8, h->seed);
		h->seed++;
		h->requests++;
		if (v < 0) {
			if (!h->first_error)
				h->first_error = v;
			h->failures++;
		} else if (v == 0) {
			h->mixed++;
		} else {
			h->seen[v]++;
			__atomic_store_n(&h->last, v, __ATOMIC_RELEASE);
		}
	}
	swarm_disconnect(c);
	return NULL;
}

/* Waits until every hammer has answered with version want at least once more. */
static int wait_all_see(struct hammer *hs, int want, int64_t timeout_ns)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ns;
	while (h_now_ns() < end) {
		int all = 1;
		for (int i = 0; i < CLIENTS; i++)
			all &= __atomic_load_n(&hs[i].last, __ATOMIC_ACQUIRE) == want;
		if (all)
			return 0;
		h_sleep_ms(5);
	}
	return -ETIMEDOUT;
}

Test(e2e_registry, hot_swap_and_rollback_under_load_fail_no_request)
{
	cr_assert_eq(publish(2.0f, 1.0f, 1), 1u);
	start();
	struct hammer hs[CLIENTS] = { 0 };
	for (int i = 0; i < CLIENTS; i++) {
		hs[i].seed = 1000u * (uint32_t)i + 1;
		cr_assert_eq(pthread_create(&hs[i].t, NULL, hammer_run, &hs[i]), 0);
	}
	int rc = wait_all_see(hs, 1, 10 * H_SEC);
	cr_assert_eq(rc, 0, "the clients never got v1's output");

	uint32_t v2 = publish(3.0f, -0.5f, 1); /* publish and activate in one step */
	cr_assert_eq(v2, 2u);
	int saw_v2 = wait_all_see(hs, 2, 10 * H_SEC);

	char err[512];
	uint32_t back = 0;
	int rb = swarm_registry_rollback(reg_dir, "scaler", &back, err, sizeof err);
	int saw_v1_again = rb == 0 ? wait_all_see(hs, 1, 10 * H_SEC) : -1;
	h_sleep_ms(100);
	for (int i = 0; i < CLIENTS; i++) {
		hs[i].stop = 1;
		pthread_join(hs[i].t, NULL);
	}
	long total = 0;
	for (int i = 0; i < CLIENTS; i++) {
		total += hs[i].requests;
		cr_expect_eq(hs[i].failures, 0,
			     "client %d: %ld of %ld requests failed (first: %d %s)", i,
			     hs[i].failures, hs[i].requests, hs[i].first_error,
			     swarm_strerror(hs[i].first_error));
		cr_expect_eq(hs[i].mixed, 0,
			     "client %d: %ld outputs were neither v1's nor v2's (mixed versions)",
			     i, hs[i].mixed);
	}
	if (saw_v2 || saw_v1_again)
		h_print_log("swap");
	cr_assert_eq(saw_v2, 0, "after activating v2 not every client saw its output");
	cr_assert_eq(rb, 0, "rollback: %s", err);
	cr_assert_eq(back, 1u, "rollback went to %u, want 1", back);
	cr_assert_eq(saw_v1_again, 0, "after the rollback not every client saw v1 again");
	cr_assert_gt(total, 100, "only %ld requests ran", total);
	cr_assert(h_log_contains("event=session_switched"), "swarmd logged no switch");
	h_stop();
}

Test(e2e_registry, session_opened_at_a_version_stays_on_it)
{
	cr_assert_eq(publish(2.0f, 1.0f, 1), 1u);
	start();
	swarm_client *c = NULL;
	cr_assert_eq(h_connect(&c), 0);
	swarm_session *pinned = NULL, *follow = NULL;
	cr_assert_eq(swarm_session_open(c, "scaler", 1, NULL, &pinned), 0, "%s",
		     swarm_client_error(c));
	cr_assert_eq(swarm_session_open(c, "scaler", 0, NULL, &follow), 0, "%s",
		     swarm_client_error(c));
	cr_assert_eq(one_request(pinned, 2, 7), 1);
	publish(3.0f, -0.5f, 1);
	uint64_t end = h_now_ns() + 10 * H_SEC;
	int v = 1;
	while (h_now_ns() < end && (v = one_request(follow, 2, 9)) == 1)
		h_sleep_ms(5);
	cr_assert_eq(v, 2, "the session opened by name never moved to v2 (last %d)", v);
	/* swarmd rewrites the session info when the worker confirms the switch, a moment
	 * after the worker starts serving v2. */
	swarm_session_info info;
	end = h_now_ns() + 5 * H_SEC;
	do {
		swarm_session_info_get(follow, &info);
		if (info.model_version == 2)
			break;
		h_sleep_ms(2);
	} while (h_now_ns() < end);
	cr_assert_eq(info.model_version, 2u, "session info says version %u", info.model_version);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(one_request(pinned, 2, 100 + (uint32_t)i), 1,
			     "the session opened at version 1 left it");
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_registry, unknown_version_is_enoent_with_a_hint)
{
	publish(2.0f, 1.0f, 1);
	start();
	swarm_client *c = NULL;
	cr_assert_eq(h_connect(&c), 0);
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "scaler", 9, NULL, &s);
	cr_assert_eq(rc, -ENOENT, "open scaler@9: %d", rc);
	cr_assert(strstr(swarm_client_error(c), "no version 9") != NULL, "message: %s",
		  swarm_client_error(c));
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_registry, blob_changed_on_disk_is_refused_at_load)
{
	publish(2.0f, 1.0f, 1);
	char err[512];
	struct swarm_registry *r;
	cr_assert_eq(swarm_registry_open(reg_dir, &r, err, sizeof err), 0, "%s", err);
	struct swarm_reg_version v;
	cr_assert_eq(swarm_registry_find_version(r, "scaler", 1, &v), 0);
	swarm_registry_close(r);
	char path[512];
	swarm_registry_blob_path(reg_dir, v.weights_sha, path, sizeof path);
	/* Flip one byte of the last weight: same size, other bytes. */
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f, "open %s", path);
	fseek(f, -1, SEEK_END);
	int ch = fgetc(f);
	fseek(f, -1, SEEK_END);
	fputc(ch ^ 0x40, f);
	fclose(f);
	start();
	swarm_client *c = NULL;
	cr_assert_eq(h_connect(&c), 0);
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "scaler", 0, NULL, &s);
	cr_assert_neq(rc, 0, "a session on a corrupt blob opened");
	cr_assert(strstr(swarm_client_error(c), "changed on disk") != NULL,
		  "the client was not told why: \"%s\"", swarm_client_error(c));
	cr_assert(h_log_contains("changed on disk"), "the worker did not say why");
	swarm_disconnect(c);
	h_stop();
}

/* ---- dynamic batching ------------------------------------------------------------------- */

struct pair_client {
	pthread_t t;
	uint32_t seed;
	long done, wrong, differ, failed;
};

/* Sends the same inputs to a batched and an unbatched session of the same weights: the two
 * outputs must be identical, and exactly 2x + 1, request after request. */
static void *pair_run(void *arg)
{
	struct pair_client *p = arg;
	swarm_client *c = NULL;
	swarm_session *b = NULL, *u = NULL;
	if (h_connect(&c) || swarm_session_open(c, "batched", 0, NULL, &b) ||
	    swarm_session_open(c, "single", 0, NULL, &u)) {
		p->failed++;
		if (c)
			swarm_disconnect(c);
		return NULL;
	}
	swarm_session_set_spin(b, 0);
	swarm_session_set_spin(u, 0);
	for (int it = 0; it < 300; it++) {
		uint32_t rows = 1 + (p->seed + (uint32_t)it) % 7;
		swarm_request *rb, *ru;
		if (swarm_request_alloc(b, rows, &rb) || swarm_request_alloc(u, rows, &ru)) {
			p->failed++;
			break;
		}
		float *xb = swarm_request_input(rb, 0), *xu = swarm_request_input(ru, 0);
		for (uint32_t i = 0; i < rows * WIDTH; i++)
			xb[i] = xu[i] =
				(float)((int)((p->seed * 7919u + (uint32_t)it * 104729u + i * 31u) %
					      4000) -
					2000) /
				8.0f;
		int rc = swarm_request_submit(rb, 0);
		if (!rc)
			rc = swarm_request_submit(ru, 0);
		if (!rc)
			rc = swarm_request_wait(rb, 5 * H_SEC);
		if (!rc)
			rc = swarm_request_wait(ru, 5 * H_SEC);
		if (rc) {
			p->failed++;
		} else {
			const float *yb = swarm_request_output(rb, 0),
				    *yu = swarm_request_output(ru, 0);
			for (uint32_t i = 0; i < rows * WIDTH; i++) {
				if (yb[i] != 2.0f * xb[i] + 1.0f) {
					p->wrong++;
					break;
				}
				if (memcmp(&yb[i], &yu[i], sizeof(float))) {
					p->differ++;
					break;
				}
			}
			p->done++;
		}
		swarm_request_release(rb);
		swarm_request_release(ru);
	}
	swarm_disconnect(c);
	return NULL;
}

Test(e2e_registry, batching_on_and_off_give_identical_outputs_and_never_mix_sessions)
{
	deploy_json = "{\"max_rows\": 64, \"slots\": 4, \"max_batch\": 256, "
		      "\"max_queue_delay_us\": 2000}";
	publish_as("batched", 2.0f, 1.0f, 1);
	deploy_json = "{\"max_rows\": 64, \"slots\": 4, \"max_batch\": 1}";
	publish_as("single", 2.0f, 1.0f, 1);
	const char *extra[] = { "--registry", reg_dir, NULL };
	h_start("cpu:1", extra);
	enum {
		N = 6
	};
	struct pair_client pc[N] = { 0 };
	for (int i = 0; i < N; i++) {
		pc[i].seed = 17u * (uint32_t)i + 3;
		cr_assert_eq(pthread_create(&pc[i].t, NULL, pair_run, &pc[i]), 0);
	}
	long done = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(pc[i].t, NULL);
		done += pc[i].done;
		cr_expect_eq(pc[i].failed, 0, "client %d: %ld failures", i, pc[i].failed);
		cr_expect_eq(pc[i].wrong, 0,
			     "client %d: %ld batched outputs were not 2x + 1 of "
			     "its own inputs (mixed with another request?)",
			     i, pc[i].wrong);
		cr_expect_eq(pc[i].differ, 0,
			     "client %d: %ld outputs differ between batching on "
			     "and off",
			     i, pc[i].differ);
	}
	cr_assert_eq(done, N * 300L, "only %ld of %d request pairs completed", done, N * 300);
	/* Batching happened: the device ran batches of more than one request. */
	long batches = h_status_batches();
	cr_assert_gt(batches, 0, "no batch of more than one request ran");
	h_stop();
}

/* ---- a node-list graph, served end to end ------------------------------------------------ */

static struct h_mlp mlp;

Test(e2e_registry, node_list_graph_is_served_batched_and_matches_a_reference)
{
	h_mlp_make(&mlp, 12345, 0.0005f);
	h_mlp_publish(&mlp, reg_dir, work_dir, "mlp",
		      "[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}]",
		      "[{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}]", "",
		      "{\"max_rows\": 64, \"slots\": 4, \"max_batch\": 128, "
		      "\"max_queue_delay_us\": 500}");
	int rc;
	start();
	swarm_client *c = NULL;
	cr_assert_eq(h_connect(&c), 0);
	swarm_session *s[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(swarm_session_open(c, "mlp", 0, NULL, &s[i]), 0, "%s",
			     swarm_client_error(c));
	cr_assert_eq(swarm_session_output_spec(s[0], 0)->row_bytes, 16u);
	double worst = 0;
	for (int it = 0; it < 200; it++) {
		swarm_request *r[3];
		uint32_t rows[3];
		/* Three sessions in flight at once, so that the worker batches them. */
		for (int i = 0; i < 3; i++) {
			rows[i] = 1 + (uint32_t)(it * 3 + i) % 9;
			cr_assert_eq(swarm_request_alloc(s[i], rows[i], &r[i]), 0);
			float *x = swarm_request_input(r[i], 0);
			for (uint32_t k = 0; k < rows[i] * 16; k++)
				x[k] = (float)((int)((it * 131 + i * 17 + (int)k * 7) % 200) -
					       100) /
					       50.0f +
				       0.01f;
			cr_assert_eq(swarm_request_submit(r[i], 0), 0);
		}
		for (int i = 0; i < 3; i++) {
			rc = swarm_request_wait(r[i], 5 * H_SEC);
			cr_assert_eq(rc, 0, "request %d/%d: %d %s", it, i, rc, swarm_strerror(rc));
			const float *x = swarm_request_input(r[i], 0);
			const float *y = swarm_request_output(r[i], 0);
			for (uint32_t row = 0; row < rows[i]; row++) {
				double ref[4];
				h_mlp_reference(&mlp, x + row * 16, ref);
				for (int j = 0; j < 4; j++) {
					double d = fabs(ref[j] - y[row * 4 + j]);
					if (d > worst)
						worst = d;
					cr_assert_leq(d, 1e-4 * (1 + fabs(ref[j])),
						      "request %d session %d row %u y[%d]: %f, "
						      "reference %f",
						      it, i, row, j, y[row * 4 + j], ref[j]);
				}
			}
			swarm_request_release(r[i]);
		}
	}
	swarm_disconnect(c);
	cr_assert(h_log_contains("graph=nodes"), "the worker did not load a node-list graph");
	h_stop();
}

/* ---- a custom backend (include/swarm/swarm_backend.h) ------------------------------------- */

static void publish_backend_model(const char *backend, const char *config)
{
	float bias[WIDTH];
	for (int i = 0; i < WIDTH; i++)
		bias[i] = 0.25f * (float)i - 1.0f;
	int64_t shape[1] = { WIDTH };
	struct swarm_st_write_tensor t = {
		.name = "bias", .dtype = SWARM_ST_F32, .ndim = 1, .shape = shape, .data = bias
	};
	char weights[512], manifest[512], err[512];
	snprintf(weights, sizeof weights, "%s/bias.safetensors", work_dir);
	snprintf(manifest, sizeof manifest, "%s/backend.json", work_dir);
	cr_assert_eq(swarm_st_write(weights, &t, 1), 0);
	FILE *f = fopen(manifest, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"format\": 1,\n"
		" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],\n"
		" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],\n"
		" \"graph\": {\"backend\": \"%s\", \"config\": \"%s\"},\n"
		" \"weights\": [{\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": [16]}],\n"
		" \"deploy\": {\"max_rows\": 32, \"slots\": 4}}\n",
		backend, config);
	fclose(f);
	uint32_t v = 0;
	int rc = swarm_registry_publish(reg_dir, "custom", weights, manifest, NULL, 0, 1, &v, err,
					sizeof err);
	cr_assert_eq(rc, 0, "publish: %s", err);
}

Test(e2e_registry, custom_backend_shared_object_is_served)
{
	publish_backend_model(SWARM_LIB_DIR "/libswarm_example_backend.so", "factor=3");
	start();
	swarm_client *c = NULL;
	cr_assert_eq(h_connect(&c), 0);
	swarm_session *s = NULL;
	cr_assert_eq(swarm_session_open(c, "custom", 0, NULL, &s), 0, "%s", swarm_client_error(c));
	for (int it = 0; it < 100; it++) {
		swarm_request *r;
		uint32_t rows = 1 + (uint32_t)it % 32;
		cr_assert_eq(swarm_request_alloc(s, rows, &r), 0);
		float *x = swarm_request_input(r, 0);
		for (uint32_t i = 0; i < rows * WIDTH; i++)
			x[i] = (float)((int)((uint32_t)it * 37u + i * 11u) % 400 - 200) / 8.0f;
		cr_assert_eq(swarm_request_submit(r, 0), 0);
		int rc = swarm_request_wait(r, 5 * H_SEC);
		cr_assert_eq(rc, 0, "request %d: %d %s", it, rc, swarm_strerror(rc));
		const float *y = swarm_request_output(r, 0);
		for (uint32_t i = 0; i < rows * WIDTH; i++) {
			float want = 3.0f * x[i] + (0.25f * (float)(i % WIDTH) - 1.0f);
			cr_assert_eq(y[i], want, "request %d element %u: %f, want %f", it, i, y[i],
				     want);
		}
		swarm_request_release(r);
	}
	swarm_disconnect(c);
	cr_assert(h_log_contains("graph=backend"), "the worker did not load the backend");
	h_stop();
}

Test(e2e_registry, missing_backend_is_refused_with_the_reason)
{
	publish_backend_model("/nonexistent/libnothing.so", "");
	start();
	swarm_client *c = NULL;
	cr_assert_eq(h_connect(&c), 0);
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "custom", 0, NULL, &s);
	cr_assert_neq(rc, 0, "a session on a missing backend opened");
	cr_assert(strstr(swarm_client_error(c), "cannot load backend") != NULL, "message: %s",
		  swarm_client_error(c));
	swarm_disconnect(c);
	h_stop();
}

/* ---- --preload (docs/devices.md, "NCCL fan-out"): loads before any session ---------------- */

/* Waits up to timeout_ns for needle in swarmd's log: 1 found, 0 not. */
static int wait_log(const char *needle, int64_t timeout_ns)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ns;
	while (!h_log_contains(needle)) {
		if (h_now_ns() > end)
			return 0;
		h_sleep_ms(20);
	}
	return 1;
}

static void start_preloading(const char *what)
{
	const char *extra[] = { "--registry", reg_dir, "--preload", what, NULL };
	h_start("cpu:2", extra);
}

Test(e2e_registry, preload_loads_every_device_before_any_session)
{
	publish(2.0f, 1.0f, 1);
	start_preloading("scaler");
	/* CPU devices load alone (their weights are the page cache's): no fan-out. */
	for (int i = 0; i < 2; i++) {
		char needle[128];
		snprintf(needle, sizeof needle,
			 "event=device_preloaded device=cpu:%d model=scaler version=1 status=0 "
			 "how=registry",
			 i);
		if (!wait_log(needle, 10 * H_SEC)) {
			h_print_log("no preload");
			cr_assert_fail("no \"%s\" in swarmd's log", needle);
		}
	}
	cr_expect(!h_log_contains("event=fanout_start"), "a fan-out among CPU devices");
	cr_expect(!h_log_contains("event=session_"), "a session before any was opened");
	/* The version a session then opens is the one loaded: served, and right. */
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	cr_assert_eq(swarm_session_open(c, "scaler", 0, NULL, &s), 0);
	cr_expect_eq(one_request(s, 3, 7), 1, "the preloaded v1 did not answer");
	swarm_disconnect(c);
	h_stop();
}

/* On how many devices model@version is resident and pinned (swarm status --json). */
static int resident_pinned(const char *model, uint32_t version)
{
	char out[1 << 16];
	const char *argv[] = { SWARM_BIN_DIR "/swarm", "status", "--socket", h_socket(), "--json",
			       NULL };
	cr_assert_eq(h_run(argv, out, sizeof out), 0, "%s", out);
	json_t *st = json_loads(out, 0, NULL), *dv, *m;
	cr_assert_not_null(st, "%s", out);
	size_t i, k;
	int n = 0;
	json_array_foreach (json_object_get(st, "devices"), i, dv)
		json_array_foreach (json_object_get(json_object_get(dv, "memory"), "models"), k, m)
			n += !strcmp(json_string_value(json_object_get(m, "name")), model) &&
			     json_integer_value(json_object_get(m, "version")) == version &&
			     json_is_true(json_object_get(m, "pinned"));
	json_decref(st);
	return n;
}

Test(e2e_registry, preload_follows_the_active_version_and_lets_the_old_one_go)
{
	publish(2.0f, 1.0f, 1);
	start_preloading("scaler");
	cr_assert(wait_log("device=cpu:1 model=scaler version=1 status=0", 10 * H_SEC) &&
			  wait_log("device=cpu:0 model=scaler version=1 status=0", 10 * H_SEC),
		  "v1 was not preloaded");
	publish(3.0f, -0.5f, 1);
	int ok = wait_log("device=cpu:0 model=scaler version=2 status=0", 10 * H_SEC) &&
		 wait_log("device=cpu:1 model=scaler version=2 status=0", 10 * H_SEC);
	if (!ok)
		h_print_log("v2 not preloaded");
	cr_assert(ok, "the new active version was not preloaded on both devices");
	/* No session holds v1: once v2 is in, v1 is no longer pinned on either device (it
	 * stays resident, idle, until room is needed: placement.md). */
	int pinned_v1 = 1, pinned_v2 = 0;
	for (uint64_t end = h_now_ns() + 5 * H_SEC; h_now_ns() < end; h_sleep_ms(20)) {
		pinned_v1 = resident_pinned("scaler", 1);
		pinned_v2 = resident_pinned("scaler", 2);
		if (pinned_v1 == 0 && pinned_v2 == 2)
			break;
	}
	cr_expect_eq(pinned_v1, 0, "v1 still pinned on %d device(s)", pinned_v1);
	cr_expect_eq(pinned_v2, 2, "v2 pinned on %d device(s), want both", pinned_v2);
	h_stop();
}

Test(e2e_registry, preload_of_a_pinned_version_stays_on_it)
{
	publish(2.0f, 1.0f, 1);
	publish(3.0f, -0.5f, 1);
	start_preloading("scaler@1");
	cr_assert(wait_log("device=cpu:0 model=scaler version=1 status=0", 10 * H_SEC),
		  "scaler@1 was not preloaded");
	cr_expect(!h_log_contains("model=scaler version=2 status=0"), "v2 was preloaded");
	h_stop();
}

Test(e2e_registry, preload_of_an_unknown_model_is_logged_and_serving_goes_on)
{
	start_preloading("nosuch,scaler@9");
	cr_expect(wait_log("event=preload_skipped model=nosuch reason=\"no model", 10 * H_SEC),
		  "no preload_skipped for an unknown model");
	cr_expect(wait_log("event=preload_skipped model=scaler reason=", 10 * H_SEC),
		  "no preload_skipped for a missing version");
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	swarm_session_opts o = h_identity_opts();
	cr_assert_eq(h_open_working(c, "identity", &o, &s, 5 * H_SEC), 0);
	swarm_disconnect(c);
	h_stop();
}
