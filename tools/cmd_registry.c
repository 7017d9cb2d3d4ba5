/* cmd_registry.c: `swarm registry ...`, the command line of the model registry.
 *
 * Human-readable output by default, --json for scripts (one JSON document on stdout). Exit
 * status: 0 success, 1 the operation failed, 2 bad usage, 3 `verify` found problems, 4 no
 * such registry, model or version. Errors go to stderr and say what to do next.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/registry.h"
#include "runtime/version_cost.h"
#include "tools/cmd.h"
#include "tools/json_out.h"

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_PROBLEMS = 3,
	EXIT_NOT_FOUND = 4
};

#define MAX_META SWARM_REG_MAX_META

struct opts {
	const char *registry;
	const char *weights;
	const char *manifest;
	const char *meta[MAX_META + 1];
	int n_meta;
	int activate;
	int json;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm registry [--registry DIR] [--json] <command> [args]\n"
		"\n"
		"commands:\n"
		"  init                                  create an empty registry\n"
		"  publish NAME --weights F.safetensors --manifest F.json [--meta k=v ...]\n"
		"          [--activate]                  add a version (the first one is activated)\n"
		"  list                                  models, their versions and active version\n"
		"  show NAME[@VERSION]                   a model, or one version in detail, with its\n"
		"                                        memory cost as a CPU worker would plan it\n"
		"  activate NAME@VERSION                 make a version the active one\n"
		"  rollback NAME                         go back to the previously active version\n"
		"  remove NAME@VERSION                   delete a version (not the active one)\n"
		"  verify                                check the catalog and every blob's SHA-256\n"
		"\n"
		"The registry is --registry DIR, else $SWARM_REGISTRY, else\n"
		"$XDG_DATA_HOME/swarm/registry, else ~/.local/share/swarm/registry.\n"
		"Exit status: 0 ok, 1 failed, 2 bad usage, 3 verify found problems, 4 not found.\n");
}

static int exit_for(int rc)
{
	if (rc == 0)
		return EXIT_OK;
	return rc == -ENOENT ? EXIT_NOT_FOUND : EXIT_FAIL;
}

static int fail(const char *cmd, int rc, const char *err)
{
	fprintf(stderr, "swarm registry %s: %s\n", cmd, err && *err ? err : strerror(-rc));
	return exit_for(rc);
}

/* Splits NAME@VERSION. need_version: the version is required. Returns 0 or -EINVAL. */
static void fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A version's memory cost, or why there is none (swarm_version_cost_estimate). */
struct cost {
	int rc;
	struct swarm_version_cost c;
	char why[512];
};

static void cost_of(const struct swarm_registry *r, const char *name, uint32_t version,
		    struct cost *out)
{
	out->why[0] = 0;
	out->rc = swarm_version_cost_estimate(r, name, version, &out->c, out->why, sizeof out->why);
	if (out->rc && !out->why[0])
		snprintf(out->why, sizeof out->why, "%s", strerror(-out->rc));
}

/* bytes as "12.3 MiB" (B, KiB, MiB, GiB, TiB). */
static const char *fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)bytes;
	int u = 0;
	for (; x >= 1024.0 && u < 4; u++)
		x /= 1024.0;
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", x, unit[u]);
	return buf;
}

/* Sets obj's "memory" to the cost's parts in bytes, or to null and "memory_error" to why. */
static void cost_json(json_t *obj, const struct cost *k)
{
	if (k->rc) {
		json_object_set_new(obj, "memory", json_null());
		json_object_set_new(obj, "memory_error", swarm_json_str(k->why));
		return;
	}
	json_object_set_new(obj, "memory",
			    json_pack("{s:o, s:o, s:o, s:o, s:o}", "weights_bytes",
				      swarm_json_u64(k->c.weights), "arena_bytes",
				      swarm_json_u64(k->c.arena), "prepared_bytes",
				      swarm_json_u64(k->c.prepared), "batch_bytes",
				      swarm_json_u64(k->c.batch), "total_bytes",
				      swarm_json_u64(swarm_version_cost_total(&k->c))));
}

/* The "  memory      ..." line of a version: the total and its parts, and what the arena is. */
static void print_cost(const struct cost *k)
{
	char t[32], w[32], a[32], p[32], b[32], how[96];
	const struct swarm_version_cost *c = &k->c;
	if (k->rc) {
		printf("  memory      unknown: %s\n", k->why);
		return;
	}
	if (c->kind == SWARM_VERSION_COST_BUILTIN)
		snprintf(how, sizeof how, "a built-in model: no arena");
	else if (c->kind == SWARM_VERSION_COST_BACKEND)
		snprintf(how, sizeof how, "a custom backend: its own memory is not counted");
	else if (c->rows == c->max_batch)
		snprintf(how, sizeof how, "planned on the CPU at max_batch %u", c->max_batch);
	else
		snprintf(how, sizeof how,
			 "planned on the CPU for %u rows: max_rows, above max_batch %u", c->rows,
			 c->max_batch);
	printf("  memory      %s = %s weights + %s arena + %s prepared + %s batch (%s)\n",
	       fmt_bytes(swarm_version_cost_total(c), t, sizeof t),
	       fmt_bytes(c->weights, w, sizeof w), fmt_bytes(c->arena, a, sizeof a),
	       fmt_bytes(c->prepared, p, sizeof p), fmt_bytes(c->batch, b, sizeof b), how);
}

static json_t *version_json(const struct swarm_reg_version *v, const struct cost *k)
{
	char when[32];
	fmt_time(v->created_ns, when, sizeof when);
	json_t *meta = json_object();
	for (uint32_t i = 0; i < v->n_meta && i < SWARM_REG_MAX_META; i++)
		swarm_json_set(meta, v->meta[i].key, swarm_json_str(v->meta[i].value));
	const struct swarm_deploy_config *c = &v->deploy;
	json_t *obj = json_pack(
		"{s:s, s:I, s:b, s:s, s:s, s:I, s:s, s:I, s:o, s:{s:I, s:I, s:I, s:I, "
		"s:I, s:I, s:I}}",
		"model", v->model, "version", (json_int_t)v->version, "active", v->active,
		"created", when, "weights_sha256", v->weights_sha, "weights_bytes",
		(json_int_t)v->weights_bytes, "manifest_sha256", v->manifest_sha, "manifest_bytes",
		(json_int_t)v->manifest_bytes, "meta", meta, "deploy", "max_rows",
		(json_int_t)c->max_rows, "max_batch", (json_int_t)c->max_batch,
		"max_queue_delay_us", (json_int_t)c->max_queue_delay_us, "slots",
		(json_int_t)c->slots, "min_devices", (json_int_t)c->min_devices, "max_devices",
		(json_int_t)c->max_devices, "latency_p99_us", (json_int_t)c->latency_p99_us);
	if (obj)
		cost_json(obj, k);
	return obj;
}

static void print_version(const struct swarm_reg_version *v, const struct cost *k)
{
	char when[32];
	fmt_time(v->created_ns, when, sizeof when);
	const struct swarm_deploy_config *c = &v->deploy;
	printf("%s@%u%s\n", v->model, v->version, v->active ? "  (active)" : "");
	printf("  created     %s\n", when);
	printf("  weights     %s  %" PRIu64 " bytes\n", v->weights_sha, v->weights_bytes);
	printf("  manifest    %s  %" PRIu64 " bytes\n", v->manifest_sha, v->manifest_bytes);
	printf("  deploy      max_rows %u, max_batch %u, max_queue_delay %u us, slots %u, "
	       "devices %u..%u, p99 objective %u us\n",
	       c->max_rows, c->max_batch, c->max_queue_delay_us, c->slots, c->min_devices,
	       c->max_devices, c->latency_p99_us);
	for (uint32_t i = 0; i < v->n_meta && i < SWARM_REG_MAX_META; i++)
		printf("  meta        %s=%s\n", v->meta[i].key, v->meta[i].value);
	print_cost(k);
}

static int open_reader(const char *dir, struct swarm_registry **r, const char *cmd)
{
	char err[512];
	int rc = swarm_registry_open(dir, r, err, sizeof err);
	if (rc)
		return fail(cmd, rc, err);
	return 0;
}

static int cmd_list(const char *dir, char **args, const struct opts *o)
{
	(void)args;
	struct swarm_registry *r;
	int rc = open_reader(dir, &r, "list");
	if (rc)
		return rc;
	int n = swarm_registry_model_count(r);
	json_t *models = json_array();
	if (!o->json && n == 0)
		printf("no models in %s; add one with `swarm registry publish`\n", dir);
	else if (!o->json)
		printf("%-24s %-8s %s\n", "MODEL", "ACTIVE", "VERSIONS");
	for (int i = 0; i < n; i++) {
		struct swarm_reg_model m;
		if (swarm_registry_model_at(r, i, &m))
			continue;
		json_t *vs = json_array();
		char list[512] = "";
		size_t used = 0;
		for (uint32_t k = 0; k < m.n_versions && k < 256; k++) {
			json_array_append_new(vs, json_integer(m.versions[k]));
			int w = snprintf(list + used, sizeof list - used, "%s%u", k ? "," : "",
					 m.versions[k]);
			if (w > 0 && (size_t)w < sizeof list - used)
				used += (size_t)w;
		}
		if (o->json) {
			json_array_append_new(models, json_pack("{s:s, s:I, s:o}", "name", m.name,
								"active_version",
								(json_int_t)m.active_version,
								"versions", vs));
		} else {
			json_decref(vs);
			char active[16];
			snprintf(active, sizeof active, m.active_version ? "%u" : "-",
				 m.active_version);
			printf("%-24s %-8s %s\n", m.name, active, list);
		}
	}
	if (o->json)
		swarm_json_write(stdout,
				 json_pack("{s:o, s:I, s:o}", "registry", swarm_json_str(dir),
					   "generation", (json_int_t)swarm_registry_generation(r),
					   "models", models));
	else
		json_decref(models);
	swarm_registry_close(r);
	return EXIT_OK;
}

static int cmd_show(const char *dir, char **args, const struct opts *o)
{
	const char *ref = args[0];
	char name[SWARM_NAME_MAX];
	uint32_t version;
	if (swarm_cmd_split_ref(ref, name, sizeof name, &version, 0)) {
		fprintf(stderr, "swarm registry show: \"%s\" is not NAME or NAME@VERSION\n", ref);
		return EXIT_USAGE;
	}
	struct swarm_registry *r;
	int rc = open_reader(dir, &r, "show");
	if (rc)
		return rc;
	struct swarm_reg_model m;
	if (swarm_registry_find_model(r, name, &m)) {
		swarm_registry_close(r);
		fprintf(stderr,
			"swarm registry show: no model %s in %s; `swarm registry list` "
			"lists them\n",
			name, dir);
		return EXIT_NOT_FOUND;
	}
	json_t *vs = json_array();
	int found = 0;
	for (uint32_t k = 0; k < m.n_versions && k < 256; k++) {
		if (version && m.versions[k] != version)
			continue;
		struct swarm_reg_version v;
		if (swarm_registry_find_version(r, name, m.versions[k], &v))
			continue;
		found++;
		struct cost cost;
		cost_of(r, name, v.version, &cost);
		if (o->json)
			json_array_append_new(vs, version_json(&v, &cost));
		else
			print_version(&v, &cost);
	}
	if (version && !found) {
		json_decref(vs);
		swarm_registry_close(r);
		fprintf(stderr, "swarm registry show: model %s has no version %u\n", name, version);
		return EXIT_NOT_FOUND;
	}
	json_t *hist = json_array();
	for (uint32_t k = 0; k < m.n_history && k < 64; k++) {
		char when[32];
		fmt_time(m.history[k].when_ns, when, sizeof when);
		const char *what = m.history[k].action == 2 ? "rollback" : "activate";
		if (o->json)
			json_array_append_new(hist, json_pack("{s:I, s:s, s:s}", "version",
							      (json_int_t)m.history[k].version,
							      "action", what, "when", when));
		else if (!version)
			printf("history     %s %s to %u\n", when, what, m.history[k].version);
	}
	if (o->json)
		swarm_json_write(stdout, json_pack("{s:s, s:I, s:o, s:o}", "name", m.name,
						   "active_version", (json_int_t)m.active_version,
						   "versions", vs, "history", hist));
	else {
		json_decref(vs);
		json_decref(hist);
	}
	swarm_registry_close(r);
	return EXIT_OK;
}

static void report_line(void *ctx, const char *line)
{
	json_t *problems = ctx;
	if (problems)
		json_array_append_new(problems, swarm_json_str(line));
	else
		printf("problem: %s\n", line);
}

/* init: make the registry's directory and catalog. */
static int cmd_init(const char *dir, char **args, const struct opts *o)
{
	char err[1024] = "";
	(void)args;
	int rc = swarm_registry_init(dir, err, sizeof err);
	if (rc)
		return fail("init", rc, err);
	if (o->json)
		swarm_json_write(stdout, json_pack("{s:o}", "registry", swarm_json_str(dir)));
	else
		printf("registry ready at %s\n", dir);
	return EXIT_OK;
}

/* publish NAME: add a version from --weights and --manifest, active with --activate. */
static int cmd_publish(const char *dir, char **args, const struct opts *o)
{
	char err[1024] = "";
	uint32_t version = 0;
	if (!o->weights || !o->manifest) {
		fprintf(stderr, "swarm registry publish: needs --weights F and --manifest F\n");
		return EXIT_USAGE;
	}
	int rc = swarm_registry_publish(dir, args[0], o->weights, o->manifest, o->meta, o->n_meta,
					o->activate, &version, err, sizeof err);
	if (rc)
		return fail("publish", rc, err);
	struct swarm_registry *r;
	struct cost cost = { .rc = -ENOENT, .why = "the registry could not be read back" };
	int active = 0;
	if (swarm_registry_open(dir, &r, NULL, 0) == 0) {
		struct swarm_reg_version v;
		active = swarm_registry_find_version(r, args[0], version, &v) == 0 && v.active;
		cost_of(r, args[0], version, &cost);
		swarm_registry_close(r);
	}
	if (o->json) {
		json_t *doc = json_pack("{s:s, s:I, s:b}", "model", args[0], "version",
					(json_int_t)version, "active", active);
		if (doc)
			cost_json(doc, &cost);
		swarm_json_write(stdout, doc);
		return EXIT_OK;
	}
	printf("published %s@%u%s\n", args[0], version, active ? " (active)" : "");
	uint64_t total = swarm_version_cost_total(&cost.c);
	char t[32];
	if (cost.rc)
		printf("memory unknown: %s\n", cost.why);
	else
		printf("memory %s (%" PRIu64 " bytes) as a CPU worker would plan it; "
		       "`swarm registry show %s@%u` gives the parts\n",
		       fmt_bytes(total, t, sizeof t), total, args[0], version);
	return EXIT_OK;
}

/* Splits the NAME@VERSION that subcommand cmd needs: 0, or -1 after saying what to give. */
static int need_ref(const char *cmd, const char *ref, char *name, size_t len, uint32_t *version)
{
	if (!swarm_cmd_split_ref(ref, name, len, version, 1))
		return 0;
	fprintf(stderr, "swarm registry %s: give NAME@VERSION, not \"%s\"\n", cmd, ref);
	return -1;
}

/* activate NAME@VERSION: make that version the one served. */
static int cmd_activate(const char *dir, char **args, const struct opts *o)
{
	char name[SWARM_NAME_MAX], err[1024] = "";
	uint32_t version = 0;
	if (need_ref("activate", args[0], name, sizeof name, &version))
		return EXIT_USAGE;
	int rc = swarm_registry_activate(dir, name, version, err, sizeof err);
	if (rc)
		return fail("activate", rc, err);
	if (o->json)
		swarm_json_write(stdout, json_pack("{s:s, s:I}", "model", name, "active_version",
						   (json_int_t)version));
	else
		printf("%s@%u is active\n", name, version);
	return EXIT_OK;
}

/* rollback NAME: the previously active version becomes active again. */
static int cmd_rollback(const char *dir, char **args, const struct opts *o)
{
	char err[1024] = "";
	uint32_t version = 0;
	int rc = swarm_registry_rollback(dir, args[0], &version, err, sizeof err);
	if (rc)
		return fail("rollback", rc, err);
	if (o->json)
		swarm_json_write(stdout, json_pack("{s:s, s:I}", "model", args[0], "active_version",
						   (json_int_t)version));
	else
		printf("%s rolled back: %s@%u is active\n", args[0], args[0], version);
	return EXIT_OK;
}

/* remove NAME@VERSION: drop an inactive version and its blobs. */
static int cmd_remove(const char *dir, char **args, const struct opts *o)
{
	char name[SWARM_NAME_MAX], err[1024] = "";
	uint32_t version = 0;
	if (need_ref("remove", args[0], name, sizeof name, &version))
		return EXIT_USAGE;
	int rc = swarm_registry_remove(dir, name, version, err, sizeof err);
	if (rc)
		return fail("remove", rc, err);
	if (o->json)
		swarm_json_write(stdout, json_pack("{s:s, s:I}", "model", name, "removed_version",
						   (json_int_t)version));
	else
		printf("removed %s@%u\n", name, version);
	return EXIT_OK;
}

/* verify: check the catalog and every blob; EXIT_PROBLEMS when something is wrong. */
static int cmd_verify(const char *dir, char **args, const struct opts *o)
{
	char err[1024] = "";
	(void)args;
	json_t *problems = o->json ? json_array() : NULL;
	int rc = swarm_registry_verify(dir, report_line, problems, err, sizeof err);
	if (rc < 0) {
		json_decref(problems);
		return fail("verify", rc, err);
	}
	if (o->json)
		swarm_json_write(stdout,
				 json_pack("{s:o, s:b, s:o}", "registry", swarm_json_str(dir), "ok",
					   rc == 0, "problems", problems));
	else if (rc == 0)
		printf("registry %s verified: the catalog and every blob are intact\n", dir);
	else
		printf("registry %s: %d problem(s)\n", dir, rc);
	return rc ? EXIT_PROBLEMS : EXIT_OK;
}

/* Each subcommand, the number of arguments it takes after its name, and its handler. */
static const struct subcommand {
	const char *name;
	int nargs;
	int (*run)(const char *dir, char **args, const struct opts *o);
} subcommands[] = {
	{ "init", 0, cmd_init },         { "list", 0, cmd_list },
	{ "show", 1, cmd_show },         { "publish", 1, cmd_publish },
	{ "activate", 1, cmd_activate }, { "rollback", 1, cmd_rollback },
	{ "remove", 1, cmd_remove },     { "verify", 0, cmd_verify },
};

/* The options into o: -1 to go on with the subcommand at argv[optind], else the exit status. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "registry", required_argument, 0, 'r' }, { "weights", required_argument, 0, 'w' },
		{ "manifest", required_argument, 0, 'm' }, { "meta", required_argument, 0, 'M' },
		{ "activate", no_argument, 0, 'a' },       { "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },           { 0, 0, 0, 0 }
	};
	optind = 1;
	for (int c; (c = getopt_long(argc, argv, "h", lopts, NULL)) != -1;) {
		switch (c) {
		case 'r':
			o->registry = optarg;
			break;
		case 'w':
			o->weights = optarg;
			break;
		case 'm':
			o->manifest = optarg;
			break;
		case 'M':
			if (o->n_meta == MAX_META) {
				fprintf(stderr, "swarm registry: at most %d --meta\n", MAX_META);
				return EXIT_USAGE;
			}
			o->meta[o->n_meta++] = optarg;
			break;
		case 'a':
			o->activate = 1;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}

int swarm_cmd_registry(int argc, char **argv)
{
	struct opts o = { 0 };
	int rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		return rc;
	const char *cmd = argv[optind];
	char **args = argv + optind + 1;
	int nargs = argc - optind - 1;
	char dir[PATH_MAX];
	if (swarm_registry_path(o.registry, dir, sizeof dir)) {
		fprintf(stderr, "swarm registry: the registry path is too long\n");
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
		if (!strcmp(cmd, subcommands[i].name) && nargs == subcommands[i].nargs)
			return subcommands[i].run(dir, args, &o);
	fprintf(stderr, "swarm registry: unknown command or wrong arguments: %s\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
