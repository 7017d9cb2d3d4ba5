/* test_json.c: the tools' JSON documents (tools/json_out.h) escape what they carry. A string
 * with quotes, a backslash, control characters, non-ASCII text and one byte that is not UTF-8
 * goes into a field of each document (`swarm status|topo|run --json`, `swarm-sim --json`,
 * `swarm-bench --json`) and must parse back with jansson as it went in, the bad byte as
 * U+FFFD; the helpers' own rules (numbers as their formats print them, NaN as null, uint64
 * saturation) are pinned too. The documents are read from the real programs; `swarm run` and
 * a live `swarm status` start a swarmd through the e2e harness. */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "ipc/proto.h"
#include "runtime/autoscaler.h"
#include "tools/cmd.h"
#include "tools/json_out.h"

/* Everything an escaper can get wrong, and the same as it must read back. Short enough for a
 * device name (32 bytes) and free of '/', so that it can also be a file's name. */
#define NASTY "q\"b\\s\t\n\r\x01\x1f\x7f \xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\xff"
#define NASTY_READ "q\"b\\s\t\n\r\x01\x1f\x7f \xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\xef\xbf\xbd"

static void teardown(void) { h_teardown(); }

TestSuite(tools_json, .fini = teardown, .timeout = 60);

/* Parses text as JSON or fails the test, showing it. */
static json_t *parse_or_fail(const char *text, const char *what)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	cr_assert_not_null(j, "%s is not JSON (%s, line %d column %d):\n%s", what, e.text, e.line,
			   e.column, text);
	return j;
}

/* doc as swarm_json_write writes it, parsed back. */
static json_t *round_trip(json_t *doc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	cr_assert_eq(swarm_json_write(f, doc), 0);
	fclose(f);
	json_t *j = parse_or_fail(buf, "swarm_json_write's output");
	free(buf);
	return j;
}

/* Runs argv, which must exit 0, and returns its stdout parsed. */
static json_t *run_json_or_fail(const char *const *argv)
{
	static char out[1 << 16];
	int status = h_run(argv, out, sizeof out);
	cr_assert_eq(status, 0, "%s exited %d; stdout:\n%s", argv[0], status, out);
	return parse_or_fail(out, argv[0]);
}

static const char *str_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	cr_assert(json_is_string(v), "\"%s\" is not a string", key);
	return json_string_value(v);
}

/* A fresh directory under /tmp (its path in dir). */
static void tmp_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/swarm-json-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void rm_rf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- the helpers ------------------------------------------------------------------------ */

Test(tools_json, a_nasty_string_and_key_parse_back_equal)
{
	json_t *doc = json_object();
	cr_assert_eq(swarm_json_set(doc, NASTY, swarm_json_str(NASTY)), 0);
	json_t *back = round_trip(doc);
	json_t *v = json_object_get(back, NASTY_READ);
	cr_assert(json_is_string(v), "the key did not read back as %s", NASTY_READ);
	cr_assert_str_eq(json_string_value(v), NASTY_READ);
	json_decref(back);
}

Test(tools_json, bytes_that_are_not_utf8_become_u_fffd_each)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "a\xff"
		  "b",
		  "a\xef\xbf\xbd"
		  "b" },
		{ "\xc3", "\xef\xbf\xbd" }, /* a sequence cut short (a truncated buffer) */
		{ "\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd" },                 /* an overlong NUL */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* a surrogate */
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf" }, /* U+10FFFF, the last one */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *s = swarm_json_str(cases[i].in);
		cr_assert_not_null(s, "case %zu gave no string", i);
		cr_assert_str_eq(json_string_value(s), cases[i].out, "case %zu", i);
		json_decref(s);
	}
}

Test(tools_json, numbers_read_as_their_formats_print_them_and_nan_is_null)
{
	json_t *doc = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "fixed",
				swarm_json_number("%.3f", 1.23456), "whole_fixed",
				swarm_json_number("%.3f", 3000.0), "g_int",
				swarm_json_number("%g", 2000.0), "g_real",
				swarm_json_number("%g", 0.6), "nan", swarm_json_number("%.3f", NAN),
				"inf", swarm_json_number("%.4f", -INFINITY));
	char *text = json_dumps(doc, JSON_REAL_PRECISION(15));
	cr_assert(strstr(text, "\"fixed\": 1.235,"), "%s", text);
	free(text);
	json_t *back = round_trip(doc);
	cr_assert(json_is_real(json_object_get(back, "fixed")));
	cr_assert_eq(json_real_value(json_object_get(back, "fixed")), 1.235);
	cr_assert(json_is_real(json_object_get(back, "whole_fixed")), "3000.000 is a real");
	cr_assert(json_is_integer(json_object_get(back, "g_int")), "%%g's 2000 is an integer");
	cr_assert_eq(json_integer_value(json_object_get(back, "g_int")), 2000);
	cr_assert_eq(json_real_value(json_object_get(back, "g_real")), 0.6);
	cr_assert(json_is_null(json_object_get(back, "nan")));
	cr_assert(json_is_null(json_object_get(back, "inf")));
	json_decref(back);
}

Test(tools_json, u64_above_int64_max_is_int64_max)
{
	json_t *a = swarm_json_u64(UINT64_MAX), *b = swarm_json_u64(INT64_MAX);
	json_t *c = swarm_json_u64(1ull << 40);
	cr_assert_eq(json_integer_value(a), INT64_MAX);
	cr_assert_eq(json_integer_value(b), INT64_MAX);
	cr_assert_eq(json_integer_value(c), 1ll << 40);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

/* ---- swarm status --json ---------------------------------------------------------------- */

/* Its keys, in order, as scripts read them. */
static void assert_keys(json_t *obj, const char *const *keys, const char *what)
{
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		cr_assert_not_null(keys[n], "%s has an extra key \"%s\"", what, k);
		cr_assert_str_eq(k, keys[n], "%s: key %zu is \"%s\", want \"%s\"", what, n, k,
				 keys[n]);
		n++;
	}
	cr_assert_null(keys[n], "%s lacks \"%s\"", what, keys[n]);
}

static const char *const status_keys[] = { "swarmd_pid",     "uptime_s",  "devices",
					   "total_sessions", "sessions",  "ready",
					   "ready_reason",   "autoscale", NULL };
static const char *const status_scaled_keys[] = { "name",         "version",     "target",
						  "hosts",        "active",      "warming",
						  "sessions",     "rate_long",   "rate_short",
						  "service_rate", "last_reason", NULL };
static const char *const status_device_keys[] = { "index",
						  "name",
						  "state",
						  "pid",
						  "numa_node",
						  "cpus",
						  "mem_policy",
						  "io",
						  "busy",
						  "moves_in",
						  "sessions",
						  "queue_depth",
						  "restarts",
						  "requests",
						  "errors",
						  "busy_ns",
						  "batches",
						  "p50_ns",
						  "p99_ns",
						  "weights_bytes_loaded",
						  "weights_mbps_last",
						  "memory",
						  NULL };
static const char *const status_memory_keys[] = { "budget_bytes", "used_bytes", "models",
						  NULL };
static const char *const status_resident_keys[] = {
	"name",		  "version",  "bytes",	      "weights_bytes", "other_bytes",
	"weights_shared", "pinned",   "host",	      "sessions",      "last_used_ns",
	"idle_ns",	  NULL
};
static const char *const status_session_keys[] = {
	"id",    "device",   "client_pid", "client_numa", "model",  "version", "in_flight",
	"moves", "requests", "errors",     "p50_ns",      "p99_ns", NULL
};

Test(tools_json, status_strings_and_counters_read_back)
{
	struct swarm_msg_status_reply *r = calloc(1, sizeof *r);
	r->swarmd_pid = 42;
	r->uptime_ns = 1234567890;
	r->n_devices = 1;
	r->n_sessions = 1;
	r->total_sessions = 1;
	struct swarm_status_device *dv = &r->devices[0];
	snprintf(dv->name, sizeof dv->name, "%s", NASTY);
	snprintf(dv->cpus, sizeof dv->cpus, "%s", NASTY);
	snprintf(dv->mem_policy, sizeof dv->mem_policy, "%s", NASTY);
	dv->io_backend = 1;
	dv->busy = 0.25f;
	dv->requests = UINT64_MAX;
	dv->busy_ns = 1ull << 40;
	struct swarm_status_session *s = &r->sessions[0];
	s->session_id = 7;
	s->device_index = -1;
	snprintf(s->model, sizeof s->model, "%s", NASTY);
	s->model_version = 3;
	dv->mem_budget = 1ull << 33;
	dv->mem_used = 3000;
	r->n_resident = 2;
	r->now_ns = 5000;
	for (int k = 0; k < 2; k++) {
		struct swarm_status_resident *e = &r->resident[k];
		e->device_index = k; /* the second is another device's: not listed */
		snprintf(e->model, sizeof e->model, "%s", NASTY);
		e->version = 2;
		e->weights_bytes = 1000;
		e->other_bytes = 2000;
		e->last_used_ns = 1000;
		e->sessions = 4;
		e->shared = 1;
	}

	json_t *off = round_trip(swarm_status_json(r));
	cr_assert(json_is_null(json_object_get(off, "autoscale")), "no --autoscale: null");
	json_decref(off);
	r->autoscale = 1;
	r->n_scaled = 1;
	snprintf(r->scaled[0].model, sizeof r->scaled[0].model, "%s", NASTY);
	r->scaled[0].version = 2;
	r->scaled[0].target = 3;
	r->scaled[0].hosts = 0x3; /* device 1 is not listed (one device) */
	r->scaled[0].rate_long = 123.44;
	r->scaled[0].reason = SWARM_AS_R_PANIC;
	r->resident[0].host = 1;

	json_t *j = round_trip(swarm_status_json(r));
	free(r);
	assert_keys(j, status_keys, "the status");
	json_t *sc = json_array_get(json_object_get(json_object_get(j, "autoscale"), "models"), 0);
	assert_keys(sc, status_scaled_keys, "an autoscaled model");
	cr_assert_str_eq(str_at(sc, "name"), NASTY_READ);
	cr_assert_eq(json_integer_value(json_object_get(sc, "target")), 3);
	cr_assert_eq(json_array_size(json_object_get(sc, "hosts")), 1);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(sc, "hosts"), 0)),
			 NASTY_READ);
	cr_assert_eq(json_real_value(json_object_get(sc, "rate_long")), 123.4);
	cr_assert_str_eq(str_at(sc, "last_reason"), "panic");
	cr_assert_eq(json_real_value(json_object_get(j, "uptime_s")), 1.235);
	json_t *d = json_array_get(json_object_get(j, "devices"), 0);
	assert_keys(d, status_device_keys, "a device");
	cr_assert_str_eq(str_at(d, "name"), NASTY_READ);
	cr_assert_str_eq(str_at(d, "cpus"), NASTY_READ);
	cr_assert_str_eq(str_at(d, "mem_policy"), NASTY_READ);
	cr_assert_str_eq(str_at(d, "io"), "io_uring");
	cr_assert_eq(json_real_value(json_object_get(d, "busy")), 0.25);
	cr_assert_eq(json_integer_value(json_object_get(d, "requests")), INT64_MAX);
	cr_assert_eq(json_integer_value(json_object_get(d, "busy_ns")), 1ll << 40);
	json_t *mem = json_object_get(d, "memory");
	assert_keys(mem, status_memory_keys, "a device's memory");
	cr_assert_eq(json_integer_value(json_object_get(mem, "budget_bytes")), 1ll << 33);
	cr_assert_eq(json_integer_value(json_object_get(mem, "used_bytes")), 3000);
	json_t *models = json_object_get(mem, "models");
	cr_assert_eq(json_array_size(models), 1, "only device 0's resident version");
	json_t *m = json_array_get(models, 0);
	assert_keys(m, status_resident_keys, "a resident version");
	cr_assert_str_eq(str_at(m, "name"), NASTY_READ);
	cr_assert_eq(json_integer_value(json_object_get(m, "bytes")), 3000);
	cr_assert_eq(json_integer_value(json_object_get(m, "idle_ns")), 4000);
	cr_assert_eq(json_integer_value(json_object_get(m, "sessions")), 4);
	cr_assert(json_is_true(json_object_get(m, "weights_shared")));
	cr_assert(json_is_true(json_object_get(m, "host")));
	json_t *ss = json_array_get(json_object_get(j, "sessions"), 0);
	assert_keys(ss, status_session_keys, "a session");
	cr_assert_str_eq(str_at(ss, "model"), NASTY_READ);
	cr_assert_eq(json_integer_value(json_object_get(ss, "device")), -1);
	cr_assert_eq(json_integer_value(json_object_get(ss, "version")), 3);
	json_decref(j);
}

/* ---- swarm topo --json ------------------------------------------------------------------ */

Test(tools_json, topo_source_and_devices_from_read_back)
{
	char dir[64], xml[256], sock[256], cmd[600];
	tmp_dir(dir, sizeof dir);
	snprintf(xml, sizeof xml, "%s/%s.xml", dir, NASTY);
	snprintf(cmd, sizeof cmd, "cp %s/tests/runtime/topologies/1s-1gpu.xml \"$X\"",
		 SWARM_SOURCE_DIR);
	setenv("X", xml, 1);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	char want[300];
	snprintf(want, sizeof want, "%s/%s.xml", dir, NASTY_READ);

	const char *a1[] = { SWARM_BIN_DIR "/swarm", "topo", "--json", "--topology", xml, NULL };
	json_t *j = run_json_or_fail(a1);
	cr_assert_str_eq(str_at(j, "source"), want);
	cr_assert_eq(json_array_size(json_object_get(j, "gpus")), 1);
	json_decref(j);

	/* No swarmd listens there: the plan says why, naming the socket. */
	snprintf(sock, sizeof sock, "%s/%s.sock", dir, NASTY);
	snprintf(want, sizeof want, "%s/%s.sock", dir, NASTY_READ);
	const char *a2[] = { SWARM_BIN_DIR "/swarm", "topo", "--json", "--socket", sock, NULL };
	j = run_json_or_fail(a2);
	const char *from = str_at(j, "devices_from");
	cr_assert(strstr(from, want), "devices_from \"%s\" does not name %s", from, want);
	json_decref(j);
	rm_rf(dir);
}

/* ---- swarm-sim --json ------------------------------------------------------------------- */

Test(tools_json, sim_trace_reads_back)
{
	char dir[64], csv[256], spec[300], want[300];
	tmp_dir(dir, sizeof dir);
	snprintf(csv, sizeof csv, "%s/%s.csv", dir, NASTY);
	FILE *f = fopen(csv, "w");
	cr_assert_not_null(f, "%s: %s", csv, strerror(errno));
	fputs("0.1\n0.2\n", f);
	fclose(f);
	snprintf(spec, sizeof spec, "csv:%s", csv);
	snprintf(want, sizeof want, "csv:%s/%s.csv", dir, NASTY_READ);
	const char *argv[] = { SWARM_BIN_DIR "/swarm-sim",
			       "--trace",
			       spec,
			       "--policy",
			       "static:1",
			       "--json",
			       "-",
			       NULL };
	json_t *j = run_json_or_fail(argv);
	cr_assert_str_eq(str_at(j, "trace"), want);
	json_t *run = json_array_get(json_object_get(j, "runs"), 0);
	cr_assert_eq(json_integer_value(json_object_get(run, "requests")), 2);
	json_decref(j);
	rm_rf(dir);
}

/* --seeds: one result per seed, in order, and the summary over them. On 4 devices at 100
 * req/s the policy keeps one device and loses nothing: a quarter of static's
 * device-seconds at the same attainment, the goal met on every seed. */
Test(tools_json, sim_seeds_reads_back)
{
	const char *argv[] = { SWARM_BIN_DIR "/swarm-sim",
			       "--trace",
			       "steps:100@0",
			       "--duration-s",
			       "20",
			       "--max",
			       "4",
			       "--seeds",
			       "2..4",
			       "--json",
			       "-",
			       NULL };
	json_t *j = run_json_or_fail(argv);
	json_t *results = json_object_get(j, "results");
	cr_assert_eq(json_array_size(results), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *r = json_array_get(results, i);
		cr_assert_eq(json_integer_value(json_object_get(r, "seed")), (json_int_t)(2 + i));
		cr_assert_gt(json_integer_value(json_object_get(r, "requests")), 1500);
		double share =
			json_number_value(json_object_get(r, "device_seconds_vs_static_max"));
		cr_assert(fabs(share - 0.25) < 0.01, "seed %zu: share %g", 2 + i, share);
		/* The bound is a lower bound: no run of any policy goes below it. */
		double vs = json_number_value(json_object_get(r, "vs_bound"));
		cr_assert(vs >= 1.0 && vs < 2.0, "seed %zu: vs_bound %g", 2 + i, vs);
		cr_assert_gt(json_number_value(json_object_get(r, "bound_device_seconds")), 0);
	}
	json_t *s = json_object_get(j, "summary");
	cr_assert_eq(json_integer_value(json_object_get(s, "seeds_met")), 3);
	cr_assert(json_is_true(json_object_get(s, "all_met")));
	cr_assert(fabs(json_number_value(json_object_get(s, "median_share")) - 0.25) < 0.01);
	cr_assert_geq(json_number_value(json_object_get(s, "median_vs_bound")), 1.0);
	json_decref(j);
}

/* --compare's runs, with the clairvoyant row and every run against the bound. */
Test(tools_json, sim_compare_gives_the_bound)
{
	const char *argv[] = { SWARM_BIN_DIR "/swarm-sim",
			       "--trace",
			       "steps:400@0,2400@20",
			       "--duration-s",
			       "60",
			       "--max",
			       "8",
			       "--warmup-ms",
			       "1000",
			       "--compare",
			       "--json",
			       "-",
			       NULL };
	json_t *j = run_json_or_fail(argv);
	double bound = json_number_value(json_object_get(j, "bound_device_seconds"));
	cr_assert_gt(bound, 0);
	json_t *runs = json_object_get(j, "runs");
	cr_assert_eq(json_array_size(runs), 4);
	json_t *cv = json_array_get(runs, 3);
	cr_assert_str_eq(str_at(cv, "policy"), "clairvoyant");
	cr_assert_eq(json_number_value(json_object_get(cv, "device_seconds")),
		     json_number_value(json_object_get(j, "clairvoyant_device_seconds")));
	for (size_t i = 0; i < 4; i++) {
		json_t *r = json_array_get(runs, i);
		double ds = json_number_value(json_object_get(r, "device_seconds"));
		double vs = json_number_value(json_object_get(r, "vs_bound"));
		cr_assert(fabs(vs - ds / bound) < 1e-3, "%s: vs_bound %.4f, %.3f / %.3f",
			  str_at(r, "policy"), vs, ds, bound);
	}
	/* static at the maximum and the clairvoyant replay reach the attainment: not below. */
	cr_assert_geq(json_number_value(json_object_get(json_array_get(runs, 1), "vs_bound")), 1);
	cr_assert_geq(json_number_value(json_object_get(cv, "vs_bound")), 1);
	cr_assert(
		json_is_true(json_object_get(json_object_get(j, "bound"), "clairvoyant_reached")));
	json_decref(j);
}

/* The multi-model mode: the models file's path and a model's name (no blanks in a name). */
Test(tools_json, sim_models_read_back)
{
	char dir[64], path[256], want[300];
	tmp_dir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/%s.txt", dir, NASTY);
	snprintf(want, sizeof want, "%s/%s.txt", dir, NASTY_READ);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs("q\"b\\s\x01\xc3\xa9\xff trace=steps:5@0 bytes=1K\nbig trace=steps:5@0 bytes=2K\n",
	      f);
	fclose(f);
	const char *argv[] = { SWARM_BIN_DIR "/swarm-sim",
			       "--models",
			       path,
			       "--device-memory",
			       "1K",
			       "--duration-s",
			       "10",
			       "--json",
			       "-",
			       NULL };
	json_t *j = run_json_or_fail(argv);
	cr_assert_str_eq(str_at(j, "models_file"), want);
	json_t *run = json_array_get(json_object_get(j, "runs"), 0);
	json_t *models = json_object_get(run, "models");
	cr_assert_eq(json_array_size(models), 2);
	cr_assert_str_eq(str_at(json_array_get(models, 0), "name"),
			 "q\"b\\s\x01\xc3\xa9\xef\xbf\xbd");
	cr_assert(json_is_true(json_object_get(json_array_get(models, 1), "too_big")));
	cr_assert(json_is_false(json_object_get(json_array_get(models, 0), "too_big")));
	json_decref(j);
	rm_rf(dir);
}

/* ---- swarm-bench --json ----------------------------------------------------------------- */

Test(tools_json, bench_socket_and_note_read_back)
{
	char dir[64], minilm[256], sock[256], out[256], want[300];
	tmp_dir(dir, sizeof dir);
	snprintf(minilm, sizeof minilm, "%s/%s", dir, NASTY); /* no MiniLM there: skipped */
	snprintf(sock, sizeof sock, "%s/%s.sock", dir, NASTY);
	snprintf(out, sizeof out, "%s/bench.json", dir);
	const char *argv[] = { SWARM_BIN_DIR "/swarm-bench",
			       "--cases",
			       "minilm",
			       "--minilm",
			       minilm,
			       "--socket",
			       sock,
			       "--json",
			       out,
			       NULL };
	char text[4096];
	int status = h_run(argv, text, sizeof text);
	cr_assert_eq(status, 0, "swarm-bench exited %d: %s", status, text);
	json_error_t e;
	json_t *j = json_load_file(out, 0, &e);
	cr_assert_not_null(j, "%s is not JSON (%s, line %d)", out, e.text, e.line);
	snprintf(want, sizeof want, "%s/%s.sock", dir, NASTY_READ);
	cr_assert_str_eq(str_at(j, "swarmd"), want);
	json_t *c = json_array_get(json_object_get(j, "cases"), 0);
	cr_assert(json_is_true(json_object_get(c, "skipped")));
	snprintf(want, sizeof want, "%s/%s", dir, NASTY_READ);
	cr_assert(strstr(str_at(c, "note"), want), "the note \"%s\" does not name %s",
		  str_at(c, "note"), want);
	json_decref(j);
	rm_rf(dir);
}

/* ---- swarm run --json and a live swarm status --json ------------------------------------- */

/* Writes rows of the affine model's input (f32 [rows, 16]) as a .npy file at path. */
static void write_affine_npy(const char *path, uint32_t rows)
{
	char hdr[128];
	int n = snprintf(hdr, sizeof hdr,
			 "{'descr': '<f4', 'fortran_order': False, 'shape': (%u, 16), }", rows);
	int pad = 64 - (10 + n + 1) % 64;
	memset(hdr + n, ' ', (size_t)pad);
	hdr[n + pad] = '\n';
	uint16_t hlen = (uint16_t)(n + pad + 1);
	float x[16 * 4];
	h_affine_fill(x, rows, 5);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fwrite(&hlen, 2, 1, f);
	fwrite(hdr, 1, hlen, f);
	fwrite(x, sizeof(float), (size_t)rows * 16, f);
	cr_assert_eq(fclose(f), 0);
}

Test(tools_json, run_output_paths_read_back)
{
	h_start("cpu:1", NULL);
	char in[300], arg[320], outdir[300], want[320];
	snprintf(in, sizeof in, "%s/x.npy", h_dir());
	write_affine_npy(in, 3);
	snprintf(arg, sizeof arg, "x=%s", in);
	snprintf(outdir, sizeof outdir, "%s/%s", h_dir(), NASTY);
	const char *argv[] = { SWARM_BIN_DIR "/swarm",
			       "run",
			       "affine",
			       "--socket",
			       h_socket(),
			       "--in",
			       arg,
			       "--out",
			       outdir,
			       "--repeat",
			       "3",
			       "--json",
			       NULL };
	json_t *j = run_json_or_fail(argv);
	cr_assert_str_eq(str_at(j, "model"), "affine");
	cr_assert_eq(json_integer_value(json_object_get(j, "rows")), 3);
	cr_assert(json_is_integer(json_object_get(j, "p50_ns")));
	snprintf(want, sizeof want, "%s/%s/y.npy", h_dir(), NASTY_READ);
	cr_assert_str_eq(str_at(json_object_get(j, "outputs"), "y"), want);
	json_decref(j);
	h_stop();
}

Test(tools_json, live_status_parses_with_every_key)
{
	h_start("cpu:1", NULL);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	cr_assert_eq(swarm_session_open(c, "affine", 0, NULL, &s), 0, "%s", swarm_client_error(c));
	cr_assert_eq(h_affine_roundtrip(s, 2, 1, 5 * H_SEC), 0);
	const char *argv[] = {
		SWARM_BIN_DIR "/swarm", "status", "--socket", h_socket(), "--json", NULL
	};
	json_t *j = run_json_or_fail(argv);
	assert_keys(j, status_keys, "the status");
	json_t *dv = json_array_get(json_object_get(j, "devices"), 0);
	assert_keys(dv, status_device_keys, "a device");
	json_t *mem = json_object_get(dv, "memory");
	assert_keys(mem, status_memory_keys, "a device's memory");
	assert_keys(json_array_get(json_object_get(mem, "models"), 0), status_resident_keys,
		    "a resident version");
	json_t *ss = json_array_get(json_object_get(j, "sessions"), 0);
	assert_keys(ss, status_session_keys, "a session");
	cr_assert_str_eq(str_at(ss, "model"), "affine");
	cr_assert_eq(json_integer_value(json_object_get(ss, "client_pid")), getpid());
	json_decref(j);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}
