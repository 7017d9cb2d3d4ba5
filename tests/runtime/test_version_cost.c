/* test_version_cost.c: a model version's memory cost (runtime/version_cost.h), estimated from a
 * registry as a CPU worker would allocate it, and `swarm registry show` printing it.
 *
 * Each test publishes into its own mkdtemp registry: a small MLP as a node-list graph (x f32
 * [-1, 16] -> linear 32 relu -> linear 4 -> y), the built-in "affine", or a custom backend
 * (never loaded). The arena and the prepared bytes are checked against the same graph
 * planned here directly with swarm_graph_build on a CPU device, over the same weights file
 * mapped on its own, and the prepared bytes against the CPU's packing of the MLP's two
 * LINEAR weights (kernels/cpu/gemm.h, ops.h).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "kernels/device.h"
#include "kernels/graph.h"
#include "lib/tmp_dir.h"
#include "registry/loader.h"
#include "registry/manifest.h"
#include "registry/registry.h"
#include "registry/safetensors.h"
#include "runtime/version_cost.h"

#ifndef SWARM_BIN_DIR
#define SWARM_BIN_DIR "build/bin"
#endif

static char root[256];                        /* the test's mkdtemp directory */
static char reg[512];                         /* root/reg: the registry */
static char wpath[PATH_MAX], mpath[PATH_MAX]; /* the last published weights and manifest */
static char manifest_text[2048];              /* the last published manifest */
static char err[1024];

static void setup(void)
{
	tmp_dir_make(root, sizeof root, "cost");
	snprintf(reg, sizeof reg, "%s/reg", root);
	int rc = swarm_registry_init(reg, err, sizeof err);
	cr_assert_eq(rc, 0, "init %s: %d %s", reg, rc, err);
}

static void teardown(void) { tmp_dir_remove(root); }

TestSuite(runtime_version_cost, .init = setup, .fini = teardown, .timeout = 60);

/* ---- fixtures ---------------------------------------------------------------------------- */

#define MLP_GRAPH                                                                       \
	"{\"nodes\": ["                                                                 \
	"{\"op\": \"linear\", \"inputs\": [\"x\", \"w1\", \"b1\"], \"output\": \"h1\"," \
	" \"act\": \"relu\"},"                                                          \
	"{\"op\": \"linear\", \"inputs\": [\"h1\", \"w2\", \"b2\"], \"output\": \"y\"}]}"
#define MLP_WEIGHTS                                                     \
	"[{\"name\": \"w1\", \"dtype\": \"f32\", \"shape\": [32, 16]}," \
	" {\"name\": \"b1\", \"dtype\": \"f32\", \"shape\": [32]},"     \
	" {\"name\": \"w2\", \"dtype\": \"f32\", \"shape\": [4, 32]},"  \
	" {\"name\": \"b2\", \"dtype\": \"f32\", \"shape\": [4]}]"
#define AFFINE_WEIGHTS                                                 \
	"[{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [16]}," \
	" {\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": [16]}]"

#define MLP_IN_ROW 64u  /* x: 16 f32 */
#define MLP_OUT_ROW 16u /* y: 4 f32 */

enum model {
	MLP,
	AFFINE,
	BACKEND
};

/* The model's weights file at wpath: the MLP's w1, b1, w2, b2, or affine's scale and bias
 * (the backend's too). */
static void write_weights(enum model kind)
{
	static float data[32 * 16];
	for (int i = 0; i < 32 * 16; i++)
		data[i] = 0.01f * (float)(i % 97) - 0.3f;
	const int64_t s_w1[] = { 32, 16 }, s_b1[] = { 32 }, s_w2[] = { 4, 32 }, s_b2[] = { 4 };
	const int64_t s16[] = { 16 };
	const struct swarm_st_write_tensor mlp[] = {
		{ "w1", SWARM_ST_F32, 2, s_w1, data },
		{ "b1", SWARM_ST_F32, 1, s_b1, data },
		{ "w2", SWARM_ST_F32, 2, s_w2, data },
		{ "b2", SWARM_ST_F32, 1, s_b2, data },
	};
	const struct swarm_st_write_tensor affine[] = {
		{ "scale", SWARM_ST_F32, 1, s16, data },
		{ "bias", SWARM_ST_F32, 1, s16, data },
	};
	snprintf(wpath, sizeof wpath, "%s/w.safetensors", root);
	int rc = kind == MLP ? swarm_st_write(wpath, mlp, 4) : swarm_st_write(wpath, affine, 2);
	cr_assert_eq(rc, 0, "writing %s: %d", wpath, rc);
}

/* Publishes kind as name with deploy max_rows and max_batch; returns its version. */
static uint32_t publish(const char *name, enum model kind, int max_rows, int max_batch)
{
	write_weights(kind);
	const char *graph = kind == MLP    ? MLP_GRAPH :
			    kind == AFFINE ? "{\"builtin\": \"affine\"}" :
					     "{\"backend\": \"/nonexistent/libcost.so\"}";
	snprintf(manifest_text, sizeof manifest_text,
		 "{\"format\": 1,\n"
		 " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],\n"
		 " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, %d]}],\n"
		 " \"graph\": %s,\n \"weights\": %s,\n"
		 " \"deploy\": {\"max_rows\": %d, \"max_batch\": %d}}\n",
		 kind == MLP ? 4 : 16, graph, kind == MLP ? MLP_WEIGHTS : AFFINE_WEIGHTS, max_rows,
		 max_batch);
	snprintf(mpath, sizeof mpath, "%s/m.json", root);
	FILE *f = fopen(mpath, "w");
	cr_assert_not_null(f, "fopen %s: %s", mpath, strerror(errno));
	fputs(manifest_text, f);
	cr_assert_eq(fclose(f), 0);
	uint32_t v = 0;
	int rc = swarm_registry_publish(reg, name, wpath, mpath, NULL, 0, 1, &v, err, sizeof err);
	cr_assert_eq(rc, 0, "publish %s: %d %s", name, rc, err);
	return v;
}

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* The estimate of name@version, which must succeed. */
static struct swarm_version_cost estimate(const char *name, uint32_t version)
{
	struct swarm_registry *r;
	int rc = swarm_registry_open(reg, &r, err, sizeof err);
	cr_assert_eq(rc, 0, "open %s: %d %s", reg, rc, err);
	struct swarm_version_cost c;
	rc = swarm_version_cost_estimate(r, name, version, &c, err, sizeof err);
	swarm_registry_close(r);
	cr_assert_eq(rc, 0, "estimate %s@%u: %d %s", name, version, rc, err);
	return c;
}

/* The arena of the last published manifest's graph planned directly for rows rows on a CPU
 * device, over wpath mapped here, and what the device prepared of its weights (*prepared,
 * when not NULL). */
static uint64_t direct_plan(uint32_t rows, uint64_t *prepared)
{
	static struct swarm_manifest m;
	int rc = swarm_manifest_parse(manifest_text, strlen(manifest_text), &m, err, sizeof err);
	cr_assert_eq(rc, 0, "parse: %d %s", rc, err);
	struct swarm_weights w;
	rc = swarm_weights_load(wpath, 0, NULL, 0, &w, err, sizeof err);
	cr_assert_eq(rc, 0, "load %s: %d %s", wpath, rc, err);
	struct swarm_device *cpu;
	cr_assert_eq(swarm_device_cpu_create(1, &cpu), 0);
	struct swarm_weights_view view = { .map = w.map, .st = &w.st };
	struct swarm_graph_desc d;
	swarm_manifest_graph_desc(&m, &d);
	struct swarm_graph *g = NULL;
	rc = swarm_graph_build(&d, swarm_weights_view_lookup, &view, cpu, rows, &g, err,
			       sizeof err);
	cr_assert_eq(rc, 0, "build for %u rows: %d %s", rows, rc, err);
	uint64_t bytes = swarm_graph_arena_bytes(g);
	if (prepared)
		*prepared = swarm_graph_prepared_bytes(g);
	swarm_graph_free(g);
	cpu->i->destroy(cpu);
	swarm_weights_unload(&w);
	return bytes;
}

static uint64_t direct_arena(uint32_t rows) { return direct_plan(rows, NULL); }

/* The CPU device's packing of a LINEAR weight [n, k]: its header and W^T in the GEMM's
 * panels, rounded up to 64 bytes (cpu_prepare). */
static uint64_t packed_linear_bytes(int64_t n, int64_t k)
{
	size_t floats = swarm_gemm_packed_floats(k, n);
	cr_assert_gt(floats, 0, "no packing for [%lld, %lld]", (long long)n, (long long)k);
	return (sizeof(struct swarm_cpu_packed) + floats * sizeof(float) + 63) / 64 * 64;
}

/* ---- the estimate -------------------------------------------------------------------------- */

Test(runtime_version_cost, a_graph_costs_its_blob_its_plan_and_its_gather_buffers)
{
	uint32_t v = publish("mlp", MLP, 16, 16);
	struct swarm_version_cost c = estimate("mlp", v);
	uint64_t prepared = 0;
	uint64_t blob = file_bytes(wpath), arena = direct_plan(16, &prepared);
	uint64_t batch = 16ull * (MLP_IN_ROW + MLP_OUT_ROW);
	cr_assert_eq(c.weights, blob, "weights %llu, the blob holds %llu",
		     (unsigned long long)c.weights, (unsigned long long)blob);
	cr_assert_gt(arena, 0, "the direct plan has no arena");
	cr_assert_eq(c.arena, arena, "arena %llu, the same graph planned here: %llu",
		     (unsigned long long)c.arena, (unsigned long long)arena);
	cr_assert_eq(c.batch, batch, "batch %llu, want 16 * (%u + %u) = %llu",
		     (unsigned long long)c.batch, MLP_IN_ROW, MLP_OUT_ROW,
		     (unsigned long long)batch);
	cr_assert_eq(c.prepared, prepared, "prepared %llu, the same graph built here: %llu",
		     (unsigned long long)c.prepared, (unsigned long long)prepared);
	cr_assert_eq(swarm_version_cost_total(&c), blob + arena + batch + prepared, "total %llu",
		     (unsigned long long)swarm_version_cost_total(&c));
	cr_assert_eq(c.kind, SWARM_VERSION_COST_GRAPH, "kind %d", c.kind);
	cr_assert_eq(c.rows, 16, "rows %u", c.rows);
	cr_assert_eq(c.max_batch, 16, "max_batch %u", c.max_batch);
}

/* The CPU device packs both of the MLP's LINEAR weights when it builds the graph: a second
 * copy beside the blob, at least as large as the weights' own f32 bytes. */
Test(runtime_version_cost, a_linear_graph_costs_its_packed_weights)
{
	publish("mlp", MLP, 16, 16);
	struct swarm_version_cost c = estimate("mlp", 0);
	uint64_t want = packed_linear_bytes(32, 16) + packed_linear_bytes(4, 32);
	uint64_t f32 = (32 * 16 + 4 * 32) * sizeof(float);
	cr_assert_eq(c.prepared, want, "prepared %llu, the two packings %llu",
		     (unsigned long long)c.prepared, (unsigned long long)want);
	cr_assert_geq(c.prepared, f32, "prepared %llu, less than w1 and w2's %llu f32 bytes",
		      (unsigned long long)c.prepared, (unsigned long long)f32);
	uint64_t rest = c.weights + c.arena + c.batch;
	cr_assert_eq(swarm_version_cost_total(&c), rest + c.prepared,
		     "total %llu, without the packings %llu",
		     (unsigned long long)swarm_version_cost_total(&c), (unsigned long long)rest);
	/* the packings do not depend on the rows planned */
	publish("mlp", MLP, 64, 8);
	struct swarm_version_cost at64 = estimate("mlp", 0);
	cr_assert_eq(at64.prepared, want, "prepared %llu for 64 rows",
		     (unsigned long long)at64.prepared);
}

Test(runtime_version_cost, version_0_is_the_active_version)
{
	publish("mlp", MLP, 8, 8);
	uint32_t v2 = publish("mlp", MLP, 32, 32);
	struct swarm_version_cost active = estimate("mlp", 0), two = estimate("mlp", v2);
	cr_assert_eq(active.rows, 32, "the active version %u planned for %u rows", v2, active.rows);
	cr_assert_eq(active.arena, two.arena, "active %llu, @%u %llu",
		     (unsigned long long)active.arena, v2, (unsigned long long)two.arena);
}

/* The worker plans for the largest request as well as the largest batch. */
Test(runtime_version_cost, the_arena_is_planned_for_max_rows_when_above_max_batch)
{
	publish("mlp", MLP, 64, 8);
	struct swarm_version_cost c = estimate("mlp", 0);
	uint64_t at64 = direct_arena(64), at8 = direct_arena(8);
	cr_assert_neq(at64, at8, "the plan does not grow with rows (%llu)",
		      (unsigned long long)at64);
	cr_assert_eq(c.rows, 64, "rows %u, want max_rows 64", c.rows);
	cr_assert_eq(c.arena, at64, "arena %llu, planned for 64 rows %llu, for 8 %llu",
		     (unsigned long long)c.arena, (unsigned long long)at64,
		     (unsigned long long)at8);
	cr_assert_eq(c.batch, 8ull * (MLP_IN_ROW + MLP_OUT_ROW), "batch %llu at max_batch 8",
		     (unsigned long long)c.batch);
}

Test(runtime_version_cost, max_batch_1_has_no_gather_buffers)
{
	publish("mlp", MLP, 16, 1);
	struct swarm_version_cost c = estimate("mlp", 0);
	cr_assert_eq(c.batch, 0, "batch %llu at max_batch 1", (unsigned long long)c.batch);
	cr_assert_eq(c.arena, direct_arena(16), "arena %llu", (unsigned long long)c.arena);
}

Test(runtime_version_cost, a_builtin_model_costs_no_arena)
{
	publish("aff", AFFINE, 16, 4);
	struct swarm_version_cost c = estimate("aff", 0);
	uint64_t blob = file_bytes(wpath);
	cr_assert_eq(c.kind, SWARM_VERSION_COST_BUILTIN, "kind %d", c.kind);
	cr_assert_eq(c.arena, 0, "arena %llu", (unsigned long long)c.arena);
	cr_assert_eq(c.prepared, 0, "prepared %llu", (unsigned long long)c.prepared);
	cr_assert_eq(c.weights, blob, "weights %llu, blob %llu", (unsigned long long)c.weights,
		     (unsigned long long)blob);
	cr_assert_eq(c.batch, 4ull * (64 + 64), "batch %llu", (unsigned long long)c.batch);
	cr_assert_eq(swarm_version_cost_total(&c), blob + c.batch, "total %llu",
		     (unsigned long long)swarm_version_cost_total(&c));
}

Test(runtime_version_cost, a_custom_backend_costs_no_arena_and_is_not_loaded)
{
	publish("custom", BACKEND, 16, 16);
	struct swarm_version_cost c = estimate("custom", 0);
	cr_assert_eq(c.kind, SWARM_VERSION_COST_BACKEND, "kind %d", c.kind);
	cr_assert_eq(c.arena, 0, "arena %llu", (unsigned long long)c.arena);
	cr_assert_eq(c.prepared, 0, "prepared %llu", (unsigned long long)c.prepared);
	cr_assert_eq(c.weights, file_bytes(wpath), "weights %llu", (unsigned long long)c.weights);
}

Test(runtime_version_cost, a_missing_model_or_version_returns_enoent_with_text)
{
	publish("mlp", MLP, 16, 16);
	struct swarm_registry *r;
	cr_assert_eq(swarm_registry_open(reg, &r, err, sizeof err), 0, "%s", err);
	struct swarm_version_cost c = { .weights = 1, .arena = 2, .batch = 3, .prepared = 4 };
	int rc = swarm_version_cost_estimate(r, "mlp", 9, &c, err, sizeof err);
	cr_expect_eq(rc, -ENOENT, "mlp@9: %d %s", rc, err);
	cr_expect(strstr(err, "no version 9") != NULL, "mlp@9: \"%s\"", err);
	cr_expect_eq(swarm_version_cost_total(&c), 0, "not zeroed: %llu",
		     (unsigned long long)swarm_version_cost_total(&c));
	rc = swarm_version_cost_estimate(r, "nothing", 0, &c, err, sizeof err);
	cr_expect_eq(rc, -ENOENT, "nothing: %d %s", rc, err);
	cr_expect(strstr(err, "no model nothing") != NULL, "nothing: \"%s\"", err);
	swarm_registry_close(r);
}

/* The weights blob of name's active version, removed. */
static void remove_weights_blob(const char *name)
{
	struct swarm_registry *r;
	struct swarm_reg_version rv;
	cr_assert_eq(swarm_registry_open(reg, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(swarm_registry_find_version(r, name, 0, &rv), 0);
	swarm_registry_close(r);
	char path[PATH_MAX];
	cr_assert_eq(swarm_registry_blob_path(reg, rv.weights_sha, path, sizeof path), 0);
	cr_assert_eq(unlink(path), 0, "unlink %s: %s", path, strerror(errno));
}

Test(runtime_version_cost, a_missing_weights_blob_fails_with_the_reason)
{
	publish("mlp", MLP, 16, 16);
	remove_weights_blob("mlp");
	struct swarm_registry *r;
	cr_assert_eq(swarm_registry_open(reg, &r, err, sizeof err), 0, "%s", err);
	struct swarm_version_cost c;
	int rc = swarm_version_cost_estimate(r, "mlp", 0, &c, err, sizeof err);
	swarm_registry_close(r);
	cr_assert_eq(rc, -ENOENT, "%d %s", rc, err);
	cr_assert(strstr(err, "cannot open weights") != NULL, "\"%s\"", err);
}

Test(runtime_version_cost, each_gather_buffer_rounds_up_to_64_bytes)
{
	const uint64_t in[] = { 3, 64 }, out[] = { 5 };
	/* 4 * 3 = 12 -> 64, 4 * 64 = 256, 4 * 5 = 20 -> 64 */
	uint64_t got = swarm_version_cost_batch(in, 2, out, 1, 4);
	cr_assert_eq(got, 64 + 256 + 64, "batch %llu", (unsigned long long)got);
	got = swarm_version_cost_batch(in, 2, out, 1, 1);
	cr_assert_eq(got, 0, "max_batch 1 gave %llu", (unsigned long long)got);
	got = swarm_version_cost_batch(in, 2, out, 1, 0);
	cr_assert_eq(got, 0, "max_batch 0 gave %llu", (unsigned long long)got);
	const uint64_t huge[] = { UINT64_MAX / 2, UINT64_MAX / 2 };
	got = swarm_version_cost_batch(huge, 2, NULL, 0, 4);
	cr_assert_eq(got, UINT64_MAX, "no saturation: %llu", (unsigned long long)got);
	uint32_t rows = swarm_version_plan_rows(0, 0);
	cr_assert_eq(rows, 1, "plan rows for 0, 0: %u", rows);
}

/* ---- swarm registry show --------------------------------------------------------------------- */

/* Runs `swarm registry --registry reg ARGS` and returns its stdout (static), which it must
 * exit 0 with. */
static const char *run_swarm(const char *args)
{
	static char out[1 << 16];
	char cmd[2 * PATH_MAX + 1024];
	snprintf(cmd, sizeof cmd, "'%s/swarm' registry --registry '%s' %s", SWARM_BIN_DIR, reg,
		 args);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p, "popen %s: %s", cmd, strerror(errno));
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	int status = pclose(p);
	cr_assert_eq(status, 0, "%s exited with status %d; stdout:\n%s", cmd, status, out);
	return out;
}

/* versions[0].memory of `show --json name`, parsed (the caller decrefs doc). */
static json_t *show_memory(const char *name, json_t **doc, json_t **version)
{
	char args[128];
	snprintf(args, sizeof args, "--json show %s", name);
	const char *out = run_swarm(args);
	json_error_t e;
	*doc = json_loads(out, 0, &e);
	cr_assert_not_null(*doc, "show --json is not JSON (%s):\n%s", e.text, out);
	*version = json_array_get(json_object_get(*doc, "versions"), 0);
	cr_assert(json_is_object(*version), "no versions[0] in:\n%s", out);
	json_t *mem = json_object_get(*version, "memory");
	cr_assert_not_null(mem, "no \"memory\" in:\n%s", out);
	return mem;
}

static uint64_t u64_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
	return (uint64_t)json_integer_value(v);
}

Test(runtime_version_cost, show_json_gives_the_estimate)
{
	publish("mlp", MLP, 16, 16);
	struct swarm_version_cost c = estimate("mlp", 0);
	json_t *doc, *version;
	json_t *mem = show_memory("mlp", &doc, &version);
	cr_expect_eq(u64_at(mem, "weights_bytes"), c.weights, "weights_bytes %llu, want %llu",
		     (unsigned long long)u64_at(mem, "weights_bytes"),
		     (unsigned long long)c.weights);
	cr_expect_eq(u64_at(mem, "arena_bytes"), c.arena, "arena_bytes %llu, want %llu",
		     (unsigned long long)u64_at(mem, "arena_bytes"), (unsigned long long)c.arena);
	cr_assert_gt(c.prepared, 0, "the MLP's weights are not packed");
	cr_expect_eq(u64_at(mem, "prepared_bytes"), c.prepared, "prepared_bytes %llu, want %llu",
		     (unsigned long long)u64_at(mem, "prepared_bytes"),
		     (unsigned long long)c.prepared);
	cr_expect_eq(u64_at(mem, "batch_bytes"), c.batch, "batch_bytes %llu, want %llu",
		     (unsigned long long)u64_at(mem, "batch_bytes"), (unsigned long long)c.batch);
	cr_expect_eq(u64_at(mem, "total_bytes"), swarm_version_cost_total(&c),
		     "total_bytes %llu, want %llu", (unsigned long long)u64_at(mem, "total_bytes"),
		     (unsigned long long)swarm_version_cost_total(&c));
	json_decref(doc);
	const char *text = run_swarm("show mlp@1");
	cr_expect(strstr(text, "  memory      ") && strstr(text, " weights + ") &&
			  strstr(text, " arena + ") && strstr(text, " prepared + ") &&
			  strstr(text, "planned on the CPU"),
		  "no memory line in:\n%s", text);
}

Test(runtime_version_cost, show_says_why_when_there_is_no_estimate)
{
	publish("mlp", MLP, 16, 16);
	remove_weights_blob("mlp");
	json_t *doc, *version;
	json_t *mem = show_memory("mlp", &doc, &version);
	cr_expect(json_is_null(mem), "memory is not null");
	json_t *why = json_object_get(version, "memory_error");
	cr_expect(json_is_string(why) && strstr(json_string_value(why), "cannot open weights"),
		  "memory_error: %s", json_is_string(why) ? json_string_value(why) : "(none)");
	json_decref(doc);
	const char *text = run_swarm("show mlp");
	cr_expect(strstr(text, "  memory      unknown: ") && strstr(text, "cannot open weights"),
		  "the memory line does not say why in:\n%s", text);
}

Test(runtime_version_cost, publish_prints_the_total)
{
	publish("mlp", MLP, 16, 16); /* writes the files; the CLI publishes them again */
	struct swarm_version_cost c = estimate("mlp", 1);
	char args[2 * PATH_MAX + 64], want[64];
	snprintf(args, sizeof args, "publish mlp --weights '%s' --manifest '%s'", wpath, mpath);
	const char *out = run_swarm(args);
	snprintf(want, sizeof want, "%llu bytes", (unsigned long long)swarm_version_cost_total(&c));
	cr_expect(strstr(out, "published mlp@2") && strstr(out, want),
		  "want \"published mlp@2\" and \"%s\" in:\n%s", want, out);
}
