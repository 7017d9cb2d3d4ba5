/* sim_main.c: the `swarm-sim` command line (docs/simulator.md). Parses the options into a
 * struct swarm_sim_opts, runs one simulation (or, with --compare, the policy and static
 * provisioning at the maximum and at the minimum on the same trace, in parallel threads, then
 * the clairvoyant schedule) and the lower bound of tools/sim_bound.c, and prints the figures,
 * a table, JSON, a per-tick CSV or an SVG chart. With --models it hands
 * the options to the multi-model mode (tools/sim_multi_main.c). Exit status: 0, 1 when a
 * run or an output fails, 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/build_info.h"
#include "runtime/size.h"
#include "tools/json_out.h"
#include "tools/sim.h"
#include "tools/sim_multi.h"
#include "tools/sim_seeds_cli.h"

__attribute__((format(printf, 1, 2))) static _Noreturn void bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "swarm-sim: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(swarm-sim --help lists the options)\n");
	exit(2);
}

static double opt_double(const char *name, const char *arg, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (end == arg || *end || errno || !isfinite(v) || v < lo || v > hi) {
		char range[96];
		snprintf(range, sizeof range, "a number from %g to %g", lo, hi);
		fprintf(stderr, "swarm-sim: --%s: '%s' is not %s\n", name, arg, range);
		fprintf(stderr, "(swarm-sim --help lists the options)\n");
		exit(2);
	}
	return v;
}

static uint64_t opt_u64(const char *name, const char *arg, uint64_t lo, uint64_t hi)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (end == arg || *end || errno || arg[0] == '-' || v < lo || v > hi) {
		fprintf(stderr,
			"swarm-sim: --%s: '%s' is not an integer from %" PRIu64 " to %" PRIu64
			"\n(swarm-sim --help lists the options)\n",
			name, arg, lo, hi);
		exit(2);
	}
	return v;
}

static uint64_t s_ns(double s) { return (uint64_t)llround(s * 1e9); }

enum {
	OPT_TRACE = 256,
	OPT_POLICY,
	OPT_COMPARE,
	OPT_MIN,
	OPT_MAX,
	OPT_START,
	OPT_BASE,
	OPT_PER_ROW,
	OPT_MAX_BATCH,
	OPT_WARMUP,
	OPT_TICK,
	OPT_OBJECTIVE,
	OPT_DURATION,
	OPT_SEED,
	OPT_SHORT,
	OPT_STABLE,
	OPT_COOLDOWN,
	OPT_UTIL,
	OPT_HYST,
	OPT_PANIC_RATIO,
	OPT_PANIC_DELAY,
	OPT_MAX_OUT,
	OPT_JSON,
	OPT_SVG,
	OPT_TICKS,
	OPT_MEASURE,
	OPT_BACKLOG,
	OPT_PEAK_WINDOW,
	OPT_PEAK_UTIL,
	OPT_DRAIN,
	OPT_MODELS,
	OPT_DEVICES,
	OPT_DEVICE_MEMORY,
	OPT_SEEDS,
	OPT_END,
};

static const struct option long_opts[] = {
	{ "trace", required_argument, NULL, OPT_TRACE },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "compare", no_argument, NULL, OPT_COMPARE },
	{ "min", required_argument, NULL, OPT_MIN },
	{ "max", required_argument, NULL, OPT_MAX },
	{ "start", required_argument, NULL, OPT_START },
	{ "base-us", required_argument, NULL, OPT_BASE },
	{ "per-row-us", required_argument, NULL, OPT_PER_ROW },
	{ "max-batch", required_argument, NULL, OPT_MAX_BATCH },
	{ "warmup-ms", required_argument, NULL, OPT_WARMUP },
	{ "tick-ms", required_argument, NULL, OPT_TICK },
	{ "objective-us", required_argument, NULL, OPT_OBJECTIVE },
	{ "duration-s", required_argument, NULL, OPT_DURATION },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "short-window-s", required_argument, NULL, OPT_SHORT },
	{ "stable-window-s", required_argument, NULL, OPT_STABLE },
	{ "cooldown-s", required_argument, NULL, OPT_COOLDOWN },
	{ "target-util", required_argument, NULL, OPT_UTIL },
	{ "hysteresis", required_argument, NULL, OPT_HYST },
	{ "panic-ratio", required_argument, NULL, OPT_PANIC_RATIO },
	{ "panic-delay-frac", required_argument, NULL, OPT_PANIC_DELAY },
	{ "max-outstanding", required_argument, NULL, OPT_MAX_OUT },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "svg", required_argument, NULL, OPT_SVG },
	{ "ticks-csv", required_argument, NULL, OPT_TICKS },
	{ "measure", required_argument, NULL, OPT_MEASURE },
	{ "backlog", required_argument, NULL, OPT_BACKLOG },
	{ "peak-window-s", required_argument, NULL, OPT_PEAK_WINDOW },
	{ "peak-util", required_argument, NULL, OPT_PEAK_UTIL },
	{ "drain", required_argument, NULL, OPT_DRAIN },
	{ "models", required_argument, NULL, OPT_MODELS },
	{ "devices", required_argument, NULL, OPT_DEVICES },
	{ "device-memory", required_argument, NULL, OPT_DEVICE_MEMORY },
	{ "seeds", required_argument, NULL, OPT_SEEDS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'v' },
	{ 0 },
};

struct cli {
	struct swarm_sim_opts o;
	const char *trace_spec, *json, *svg, *ticks_csv;
	int compare, clairvoyant;
	struct swarm_sim_seeds_cli seeds;  /* --seeds */
	struct swarm_sim_bound bound;      /* computed once static at --max has run */
	struct swarm_sim_multi_cli multi;  /* --models */
	uint8_t seen[OPT_END - OPT_TRACE]; /* the long options given */
};

/* An option of the simulated model and its devices into o: 1, or 0 when opt is not one. */
static int parse_model_opt(int opt, struct swarm_sim_opts *o)
{
	switch (opt) {
	case OPT_MIN:
		o->min_devices = (uint32_t)opt_u64("min", optarg, 0, SWARM_SIM_MAX_DEVICES);
		return 1;
	case OPT_MAX:
		o->max_devices = (uint32_t)opt_u64("max", optarg, 1, SWARM_SIM_MAX_DEVICES);
		return 1;
	case OPT_START:
		o->start_devices = (uint32_t)opt_u64("start", optarg, 0, SWARM_SIM_MAX_DEVICES);
		return 1;
	case OPT_BASE:
		o->base_us = opt_double("base-us", optarg, 0, 1e9);
		return 1;
	case OPT_PER_ROW:
		o->per_row_us = opt_double("per-row-us", optarg, 0, 1e9);
		return 1;
	case OPT_MAX_BATCH:
		o->max_batch = (uint32_t)opt_u64("max-batch", optarg, 1, 65536);
		return 1;
	case OPT_WARMUP:
		o->warmup_ms = opt_double("warmup-ms", optarg, 0, 1e9);
		return 1;
	case OPT_TICK:
		o->tick_ms = opt_double("tick-ms", optarg, 0.001, 1e9);
		return 1;
	case OPT_OBJECTIVE:
		o->objective_us = opt_double("objective-us", optarg, 1e-3, 1e15);
		return 1;
	case OPT_DURATION:
		o->duration_s = opt_double("duration-s", optarg, 1e-9, 1e9);
		return 1;
	case OPT_SEED:
		/* INT64_MAX: the largest integer --json can write (tools/json_out.h) */
		o->seed = opt_u64("seed", optarg, 0, INT64_MAX);
		return 1;
	case OPT_MAX_OUT:
		o->max_outstanding = opt_u64("max-outstanding", optarg, 1, UINT64_MAX);
		return 1;
	}
	return 0;
}

/* An option of the policy (which one, its settings, what it measures) into o: 1, or 0 when
 * opt is not one. */
static int parse_policy_opt(int opt, struct swarm_sim_opts *o)
{
	switch (opt) {
	case OPT_POLICY:
		if (!strcmp(optarg, "auto"))
			o->static_devices = 0;
		else if (!strcmp(optarg, "static"))
			o->static_devices = UINT32_MAX; /* --models only: checked in check_args */
		else if (!strncmp(optarg, "static:", 7))
			o->static_devices = (uint32_t)opt_u64("policy static:N", optarg + 7, 1,
							      SWARM_SIM_MAX_DEVICES);
		else
			bad_usage("--policy: '%s' is neither auto nor static:N", optarg);
		return 1;
	case OPT_SHORT:
		o->short_window_s = opt_double("short-window-s", optarg, 1e-6, 1e7);
		return 1;
	case OPT_STABLE:
		o->as.stable_window_ns = s_ns(opt_double("stable-window-s", optarg, 1e-6, 1e7));
		return 1;
	case OPT_COOLDOWN:
		o->as.cooldown_ns = s_ns(opt_double("cooldown-s", optarg, 0, 1e7));
		return 1;
	case OPT_UTIL:
		o->as.target_util = opt_double("target-util", optarg, 1e-6, 1);
		return 1;
	case OPT_PEAK_WINDOW:
		o->as.peak_window_ns =
			s_ns(opt_double("peak-window-s", optarg, 0, SWARM_AS_PEAK_SLOTS));
		return 1;
	case OPT_PEAK_UTIL:
		o->as.peak_util = opt_double("peak-util", optarg, 1e-6, 1);
		return 1;
	case OPT_DRAIN:
		if (!strcmp(optarg, "all"))
			o->as.drain_all = 1;
		else if (!strcmp(optarg, "one"))
			o->as.drain_all = 0;
		else
			bad_usage("--drain: '%s' is neither all nor one", optarg);
		return 1;
	case OPT_HYST:
		o->as.hysteresis = opt_double("hysteresis", optarg, 0, 1);
		return 1;
	case OPT_PANIC_RATIO:
		o->as.panic_ratio = opt_double("panic-ratio", optarg, 1, 1e6);
		return 1;
	case OPT_PANIC_DELAY:
		o->as.panic_delay_frac = opt_double("panic-delay-frac", optarg, 1e-9, 1e6);
		return 1;
	case OPT_MEASURE:
		if (!strcmp(optarg, "arrivals"))
			o->measure = SWARM_SIM_MEASURE_ARRIVALS;
		else if (!strcmp(optarg, "swarmd"))
			o->measure = SWARM_SIM_MEASURE_SWARMD;
		else
			bad_usage("--measure: '%s' is neither arrivals nor swarmd", optarg);
		return 1;
	case OPT_BACKLOG:
		if (!strcmp(optarg, "move"))
			o->backlog = SWARM_SIM_BACKLOG_MOVE;
		else if (!strcmp(optarg, "stay"))
			o->backlog = SWARM_SIM_BACKLOG_STAY;
		else
			bad_usage("--backlog: '%s' is neither move nor stay", optarg);
		return 1;
	}
	return 0;
}

/* The options of one model's run, which --models gives per model. */
static const int single_only[] = { OPT_TRACE,   OPT_MIN,     OPT_MAX,       OPT_START,
				   OPT_BASE,    OPT_PER_ROW, OPT_MAX_BATCH, OPT_OBJECTIVE,
				   OPT_MEASURE, OPT_BACKLOG, OPT_SVG,       OPT_TICKS,
				   OPT_SEEDS };

static const char *opt_name(int opt)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val == opt)
			return lo->name;
	return "?";
}

static void check_multi_args(struct cli *c)
{
	for (size_t i = 0; i < sizeof single_only / sizeof single_only[0]; i++)
		if (c->seen[single_only[i] - OPT_TRACE])
			bad_usage("--%s is for one model: with --models, a model's line sets it",
				  opt_name(single_only[i]));
	if (c->o.static_devices && c->o.static_devices != UINT32_MAX)
		bad_usage("--policy static:N is for one model: with --models, --policy static");
	if (c->compare && c->o.static_devices)
		bad_usage("--compare runs auto and static itself: drop --policy");
	if (c->clairvoyant)
		bad_usage("--policy clairvoyant is for one model");
	if (!(c->o.as.hysteresis < c->o.as.target_util))
		bad_usage("--hysteresis must be below --target-util");
	if (!(c->o.as.panic_ratio > 1))
		bad_usage("--panic-ratio must be above 1");
	c->multi.compare = c->compare;
	c->multi.json = c->json;
}

/* --seeds A..B or N (1..N) into c. */
static void parse_seeds(struct cli *c, const char *arg)
{
	const char *dots = strstr(arg, "..");
	char first[32];
	if (!dots) {
		c->seeds.first = 1;
		c->seeds.last = opt_u64("seeds", arg, 1, 100000);
		return;
	}
	snprintf(first, sizeof first, "%.*s", (int)(dots - arg), arg);
	c->seeds.first = opt_u64("seeds (first)", first, 0, INT64_MAX);
	c->seeds.last = opt_u64("seeds (last)", dots + 2, 0, INT64_MAX);
	if (c->seeds.last < c->seeds.first || c->seeds.last - c->seeds.first >= 100000)
		bad_usage("--seeds: '%s' is not A..B with A <= B, at most 100000 seeds", arg);
}

/* --seeds runs the policy against static at --max itself, without the per-run outputs. */
static void check_seeds_args(const struct cli *c)
{
	static const int not_with_seeds[] = { OPT_SEED, OPT_POLICY, OPT_SVG, OPT_TICKS };
	if (!c->seen[OPT_SEEDS - OPT_TRACE])
		return;
	for (size_t i = 0; i < sizeof not_with_seeds / sizeof not_with_seeds[0]; i++)
		if (c->seen[not_with_seeds[i] - OPT_TRACE])
			bad_usage("--%s does not go with --seeds (which runs auto and static at "
				  "--max on each seed)",
				  opt_name(not_with_seeds[i]));
}

/* The options that depend on each other, once all are read. */
static void check_args(struct cli *c)
{
	const struct swarm_sim_opts *o = &c->o;
	if (c->multi.models_path) {
		check_multi_args(c);
		return;
	}
	if (c->seen[OPT_DEVICES - OPT_TRACE] || c->seen[OPT_DEVICE_MEMORY - OPT_TRACE])
		bad_usage("--devices and --device-memory go with --models");
	check_seeds_args(c);
	if (o->static_devices == UINT32_MAX)
		bad_usage("--policy static needs the count for one model: static:N");
	if (!c->trace_spec)
		bad_usage("--trace is required (e.g. --trace steps:100@0,400@60)");
	if (c->compare && (o->static_devices || c->clairvoyant))
		bad_usage("--compare runs auto, static and clairvoyant itself: drop --policy");
	if (o->min_devices > o->max_devices)
		bad_usage("--min is above --max");
	if (o->start_devices != UINT32_MAX && o->start_devices > o->max_devices)
		bad_usage("--start is above --max");
	if (!(o->as.hysteresis < o->as.target_util))
		bad_usage("--hysteresis must be below --target-util");
	if (!(o->as.panic_ratio > 1))
		bad_usage("--panic-ratio must be above 1");
}

static void parse_args(int argc, char **argv, struct cli *c)
{
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		const char *name = optind > 1 ? argv[optind - 1] : "";
		if (opt >= OPT_TRACE && opt < OPT_END)
			c->seen[opt - OPT_TRACE] = 1;
		if (opt == OPT_POLICY && !strcmp(optarg, "clairvoyant")) {
			c->clairvoyant = 1;
			continue;
		}
		if (parse_model_opt(opt, &c->o) || parse_policy_opt(opt, &c->o))
			continue;
		switch (opt) {
		case 'h':
			swarm_sim_usage(stdout);
			exit(0);
		case 'v':
			swarm_build_print_version("swarm-sim");
			exit(0);
		case OPT_TRACE:
			c->trace_spec = optarg;
			break;
		case OPT_COMPARE:
			c->compare = 1;
			break;
		case OPT_SEEDS:
			parse_seeds(c, optarg);
			break;
		case OPT_MODELS:
			c->multi.models_path = optarg;
			break;
		case OPT_DEVICES:
			c->multi.devices =
				(uint32_t)opt_u64("devices", optarg, 1, SWARM_FLEET_MAX_DEVICES);
			break;
		case OPT_DEVICE_MEMORY:
			if (swarm_size_parse(optarg, &c->multi.device_memory) ||
			    !c->multi.device_memory)
				bad_usage(
					"--device-memory: '%s' is not a size above 0 (digits, then "
					"K, M, G or T)",
					optarg);
			break;
		case OPT_JSON:
			c->json = optarg;
			break;
		case OPT_SVG:
			c->svg = optarg;
			break;
		case OPT_TICKS:
			c->ticks_csv = optarg;
			break;
		case ':':
			bad_usage("%s needs a value", name);
		default:
			bad_usage("unknown option '%s'", name);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	check_args(c);
}

/* ---- runs -------------------------------------------------------------------------------- */

struct run {
	char name[32];
	struct swarm_sim_opts o;
	struct swarm_sim_report r;
	int rc;
	char err[256];
	int clairvoyant;                 /* replay clairvoyant schedules (tools/sim_bound.c) */
	uint64_t target_met;             /* clairvoyant: static at --max's */
	struct swarm_sim_clairvoyant cv; /* clairvoyant: the replay kept */
};

static void *run_thread(void *arg)
{
	struct run *run = arg;
	if (run->clairvoyant)
		run->rc = swarm_sim_clairvoyant_run(&run->o, run->target_met, &run->r, &run->cv,
						    run->err, sizeof run->err);
	else
		run->rc = swarm_sim_run(&run->o, &run->r, run->err, sizeof run->err);
	return NULL;
}

static void run_name(struct run *run)
{
	if (run->clairvoyant)
		snprintf(run->name, sizeof run->name, "clairvoyant");
	else if (run->o.static_devices)
		snprintf(run->name, sizeof run->name, "static:%u", run->o.static_devices);
	else
		snprintf(run->name, sizeof run->name, "auto");
}

static void print_one(const struct cli *c, const struct run *run)
{
	const struct swarm_sim_opts *o = &run->o;
	const struct swarm_sim_report *r = &run->r;
	printf("trace            %s (%.0f s simulated, seed %" PRIu64 ")\n", c->trace_spec,
	       r->duration_s, o->seed);
	if (run->clairvoyant)
		printf("policy           clairvoyant (devices sized at %.1f%% of %.0f req/s, %u "
		       "replays, %s static:%u's attainment)\n",
		       100 * run->cv.utilization, c->bound.device_rate, run->cv.replays,
		       run->cv.reached ? "reaching" : "NOT reaching", o->max_devices);
	else if (o->static_devices)
		printf("policy           static:%u\n", o->static_devices);
	else
		printf("policy           auto (min %u, max %u, %u decisions)\n", o->min_devices,
		       o->max_devices, (unsigned)r->decisions);
	printf("requests         %" PRIu64 " (%" PRIu64 " refused, %" PRIu64 " unfinished, %" PRIu64
	       " moved to another device)\n",
	       r->requests, r->refused, r->unfinished, r->moved);
	printf("attainment       %.3f%% (latency <= %g us)\n", 100 * r->attainment,
	       o->objective_us);
	printf("latency          p50 %.3f ms, p99 %.3f ms, max %.3f ms, mean %.3f ms\n",
	       r->p50_us / 1e3, r->p99_us / 1e3, r->max_us / 1e3, r->mean_us / 1e3);
	printf("device-seconds   %.1f (mean %.2f devices, peak %u)\n", r->device_seconds,
	       r->mean_devices, r->peak_devices);
	printf("bound            at least %.1f device-seconds to reach static:%u's attainment; "
	       "this run %.3fx\n",
	       c->bound.device_seconds, o->max_devices,
	       r->device_seconds / c->bound.device_seconds);
	printf("scale events     %" PRIu64 " (%" PRIu64 " wakes, %" PRIu64 " drains)",
	       r->wakes + r->drains, r->wakes, r->drains);
	const char *sep = ": ";
	for (uint32_t i = 1; i < 8; i++) {
		if (r->wakes_by_reason[i]) {
			printf("%swake/%s %" PRIu64, sep, swarm_as_reason_name(i),
			       r->wakes_by_reason[i]);
			sep = ", ";
		}
		if (r->drains_by_reason[i]) {
			printf("%sdrain/%s %" PRIu64, sep, swarm_as_reason_name(i),
			       r->drains_by_reason[i]);
			sep = ", ";
		}
	}
	printf("\n");
}

/* The goal of the issue: attainment within 1 point of static-max at <= 60% of its
 * device-seconds. */
#define GOAL_PP SWARM_SIM_GOAL_POINTS
#define GOAL_FRAC SWARM_SIM_GOAL_SHARE

static void print_table(const struct cli *c, struct run *runs, size_t n)
{
	const struct swarm_sim_report *ref = &runs[1].r; /* static at max */
	printf("trace %s, %.0f s simulated, seed %" PRIu64 ", objective %g us\n", c->trace_spec,
	       runs[0].r.duration_s, c->o.seed, c->o.objective_us);
	printf("%-11s %10s %9s %8s %9s %9s %10s %10s %7s %8s %5s %6s %8s\n", "policy", "requests",
	       "refused", "attain%", "p50_ms", "p99_ms", "max_ms", "device_s", "vs_max", "mean_dev",
	       "peak", "scale", "vs_bound");
	for (size_t i = 0; i < n; i++) {
		const struct swarm_sim_report *r = &runs[i].r;
		printf("%-11s %10" PRIu64 " %9" PRIu64 " %8.3f %9.2f %9.2f %10.1f %10.0f %6.1f%% "
		       "%8.2f %5u %6" PRIu64 " %8.3f\n",
		       runs[i].name, r->requests, r->refused + r->unfinished, 100 * r->attainment,
		       r->p50_us / 1e3, r->p99_us / 1e3, r->max_us / 1e3, r->device_seconds,
		       100 * r->device_seconds / ref->device_seconds, r->mean_devices,
		       r->peak_devices, r->wakes + r->drains,
		       r->device_seconds / c->bound.device_seconds);
	}
	double pp, frac;
	int met = swarm_sim_goal(&runs[0].r, ref, &pp, &frac);
	printf("goal: attainment within %.0f point of %s at <= %.0f%% of its device-seconds: %s "
	       "(auto %.3f points below, at %.1f%%)\n",
	       GOAL_PP, runs[1].name, 100 * GOAL_FRAC, met ? "MET" : "MISSED", pp, 100 * frac);
	const struct run *cv = &runs[3];
	printf("bound: no schedule reaches %s's attainment in fewer than %.0f device-seconds; "
	       "clairvoyant (devices sized at %.1f%% of %.0f req/s) %s it in %.0f, %.3fx the "
	       "bound\n",
	       runs[1].name, c->bound.device_seconds, 100 * cv->cv.utilization,
	       c->bound.device_rate, cv->cv.reached ? "reached" : "did NOT reach",
	       cv->r.device_seconds, cv->r.device_seconds / c->bound.device_seconds);
}

static json_t *json_run(const struct run *run)
{
	const struct swarm_sim_report *r = &run->r;
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, "
			 "s:o, s:o, s:o, s:o, s:o, s:o}",
			 "policy", swarm_json_str(run->name), "requests",
			 swarm_json_u64(r->requests), "met", swarm_json_u64(r->met), "refused",
			 swarm_json_u64(r->refused), "unfinished", swarm_json_u64(r->unfinished),
			 "attainment", swarm_json_number("%.6f", r->attainment), "p50_us",
			 swarm_json_number("%.3f", r->p50_us), "p99_us",
			 swarm_json_number("%.3f", r->p99_us), "max_us",
			 swarm_json_number("%.3f", r->max_us), "mean_us",
			 swarm_json_number("%.3f", r->mean_us), "duration_s",
			 swarm_json_number("%.3f", r->duration_s), "device_seconds",
			 swarm_json_number("%.3f", r->device_seconds), "mean_devices",
			 swarm_json_number("%.4f", r->mean_devices), "peak_devices",
			 (json_int_t)r->peak_devices, "wakes", swarm_json_u64(r->wakes), "drains",
			 swarm_json_u64(r->drains), "scale_events",
			 swarm_json_u64(r->wakes + r->drains), "decisions",
			 swarm_json_u64(r->decisions), "batches", swarm_json_u64(r->batches),
			 "moved", swarm_json_u64(r->moved));
}

static json_t *json_doc(const struct cli *c, const struct run *runs, size_t n)
{
	const struct swarm_sim_opts *o = &c->o;
	json_t *jruns = json_array();
	const struct swarm_sim_bound *b = &c->bound;
	const struct run *cv = NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *jr = json_run(&runs[i]);
		json_object_set_new(
			jr, "vs_bound",
			swarm_json_number("%.4f", runs[i].r.device_seconds / b->device_seconds));
		json_array_append_new(jruns, jr);
		if (runs[i].clairvoyant)
			cv = &runs[i];
	}
	json_t *doc = json_pack(
		"{s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:s, s:s, s:{s:o, s:o, s:o, "
		"s:o, s:o, s:o, s:o, s:o, s:b}, s:o}",
		"trace", swarm_json_str(c->trace_spec), "seed", swarm_json_u64(o->seed),
		"min_devices", (json_int_t)o->min_devices, "max_devices",
		(json_int_t)o->max_devices, "base_us", swarm_json_number("%g", o->base_us),
		"per_row_us", swarm_json_number("%g", o->per_row_us), "max_batch",
		(json_int_t)o->max_batch, "warmup_ms", swarm_json_number("%g", o->warmup_ms),
		"tick_ms", swarm_json_number("%g", o->tick_ms), "objective_us",
		swarm_json_number("%g", o->objective_us), "short_window_s",
		swarm_json_number("%g", o->short_window_s), "measure",
		o->measure == SWARM_SIM_MEASURE_SWARMD ? "swarmd" : "arrivals", "backlog",
		o->backlog == SWARM_SIM_BACKLOG_STAY ? "stay" : "move", "config", "target_util",
		swarm_json_number("%g", o->as.target_util), "hysteresis",
		swarm_json_number("%g", o->as.hysteresis), "panic_ratio",
		swarm_json_number("%g", o->as.panic_ratio), "panic_delay_frac",
		swarm_json_number("%g", o->as.panic_delay_frac), "stable_window_s",
		swarm_json_number("%g", o->as.stable_window_ns / 1e9), "cooldown_s",
		swarm_json_number("%g", o->as.cooldown_ns / 1e9), "peak_window_s",
		swarm_json_number("%g", o->as.peak_window_ns / 1e9), "peak_util",
		swarm_json_number("%g", o->as.peak_util), "drain_all", o->as.drain_all, "runs",
		jruns);
	if (n) { /* a run's document (--seeds writes its own, with json_doc(c, NULL, 0)) */
		json_object_set_new(doc, "bound_device_seconds",
				    swarm_json_number("%.3f", b->device_seconds));
		json_object_set_new(doc, "clairvoyant_device_seconds",
				    cv ? swarm_json_number("%.3f", cv->r.device_seconds) :
					 json_null());
		json_object_set_new(
			doc, "bound",
			json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
				  "level_device_seconds",
				  swarm_json_number("%.3f", b->level_device_seconds),
				  "fluid_device_seconds",
				  swarm_json_number("%.3f", b->fluid_device_seconds), "device_rate",
				  swarm_json_number("%.3f", b->device_rate), "slot_s",
				  swarm_json_number("%g", b->slot_s), "allowed_misses",
				  swarm_json_u64(b->allowed_misses), "clairvoyant_utilization",
				  cv ? swarm_json_number("%.4f", cv->cv.utilization) : json_null(),
				  "clairvoyant_reached",
				  cv ? json_boolean(cv->cv.reached) : json_null(),
				  "clairvoyant_replays",
				  cv ? swarm_json_u64(cv->cv.replays) : json_null()));
	}
	if (c->compare && n) {
		double pp, frac;
		int met = swarm_sim_goal(&runs[0].r, &runs[1].r, &pp, &frac);
		json_object_set_new(
			doc, "goal",
			json_pack("{s:o, s:o, s:b}", "attainment_points_below_static_max",
				  swarm_json_number("%.4f", pp), "device_seconds_vs_static_max",
				  swarm_json_number("%.4f", frac), "met", met));
	}
	return doc;
}

static int write_json(const struct cli *c, const struct run *runs, size_t n)
{
	return swarm_json_write_path(c->json, json_doc(c, runs, n));
}

static int write_svg(const char *path, const struct cli *c, const struct run *run)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	char title[512];
	snprintf(title, sizeof title, "swarm-sim %s, %s: attainment %.2f%%, %.0f device-seconds",
		 run->name, c->trace_spec, 100 * run->r.attainment, run->r.device_seconds);
	int rc = swarm_sim_write_svg(f, &run->r, title);
	if (fclose(f) && !rc)
		rc = -errno;
	return rc;
}

/* --trace into tr and c->o.trace, or exit 2: the trace is an option, a bad one bad usage. */
static void parse_trace(struct cli *c, struct swarm_sim_trace *tr)
{
	char err[512];
	if (swarm_sim_trace_parse(c->trace_spec, tr, err, sizeof err)) {
		fprintf(stderr, "swarm-sim: --trace: %s\n", err);
		exit(2);
	}
	c->o.trace = tr;
}

/* --seeds (tools/sim_seeds_cli.c), the configuration's JSON from json_doc: the exit status. */
static int run_seeds(struct cli *c, struct swarm_sim_trace *tr)
{
	c->seeds.trace_spec = c->trace_spec;
	c->seeds.json = c->json;
	int status = swarm_sim_seeds_cli(&c->o, &c->seeds, c->json ? json_doc(c, NULL, 0) : NULL);
	swarm_sim_trace_free(tr);
	return status;
}

/* The runs whose clairvoyant flag is `clairvoyant`, one thread each: they share only the
 * trace, read-only. */
static void run_parallel(struct run *runs, size_t n, int clairvoyant)
{
	pthread_t th[4];
	int started[4] = { 0 };
	for (size_t i = 0; i < n; i++)
		if (runs[i].clairvoyant == clairvoyant)
			started[i] = !pthread_create(&th[i], NULL, run_thread, &runs[i]);
	for (size_t i = 0; i < n; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else if (runs[i].clairvoyant == clairvoyant)
			run_thread(&runs[i]);
	}
}

/* The lower bound for static at --max's (runs[1]) attainment, and that as the clairvoyant
 * runs' target: 0, or the exit status of a failure. */
static int run_bound(struct cli *c, struct run *runs, size_t n)
{
	const struct swarm_sim_report *ref = &runs[1].r;
	if (runs[1].rc)
		return 0; /* reported with the runs */
	char err[256];
	int rc = swarm_sim_bound(&c->o, ref->requests - ref->met, &c->bound, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-sim: bound: %s\n", rc == -ENOMEM ? strerror(ENOMEM) : err);
		return rc == -EINVAL ? 2 : 1;
	}
	for (size_t i = 0; i < n; i++)
		runs[i].target_met = ref->met;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--replay"))
		return swarm_sim_replay_main(argc, argv);
	struct cli c = { 0 };
	swarm_sim_opts_default(&c.o);
	parse_args(argc, argv, &c);
	if (c.multi.models_path)
		return swarm_sim_multi_cli(&c.o, &c.multi);

	struct swarm_sim_trace trace;
	parse_trace(&c, &trace);
	if (c.seen[OPT_SEEDS - OPT_TRACE])
		return run_seeds(&c, &trace);
	int rc;

	/* runs[1] is static at --max, the reference of the bound: printed with --compare,
	 * run alongside otherwise. */
	struct run runs[4];
	size_t n = c.compare ? 4 : 1, n_all = c.compare ? 4 : 2;
	for (size_t i = 0; i < n_all; i++) {
		memset(&runs[i], 0, sizeof runs[i]);
		runs[i].o = c.o;
	}
	runs[0].o.keep_ticks = c.svg || c.ticks_csv;
	runs[0].clairvoyant = c.clairvoyant;
	runs[1].o.static_devices = c.o.max_devices;
	if (c.compare) {
		runs[0].o.static_devices = 0;
		runs[2].o.static_devices = c.o.min_devices ? c.o.min_devices : 1;
		runs[3].clairvoyant = 1;
	}
	for (size_t i = 0; i < n_all; i++)
		run_name(&runs[i]);

	/* The clairvoyant runs need static's attainment, so they come second. */
	run_parallel(runs, n_all, 0);
	int status = run_bound(&c, runs, n_all);
	if (!status)
		run_parallel(runs, n_all, 1);
	for (size_t i = 0; i < n_all; i++) {
		if (runs[i].rc) {
			fprintf(stderr, "swarm-sim: %s: %s\n", runs[i].name,
				runs[i].rc == -ENOMEM ? strerror(ENOMEM) : runs[i].err);
			status = runs[i].rc == -EINVAL ? 2 : 1;
		}
	}
	if (!status) {
		/* --json -: stdout is the JSON's alone, for a pipe. */
		int json_stdout = c.json && !strcmp(c.json, "-");
		if (c.compare && !json_stdout)
			print_table(&c, runs, n);
		else if (!json_stdout)
			print_one(&c, &runs[0]);
		if (c.json && (rc = write_json(&c, runs, n))) {
			fprintf(stderr, "swarm-sim: --json %s: %s\n", c.json, strerror(-rc));
			status = 1;
		}
		if (c.ticks_csv && (rc = swarm_sim_write_ticks_csv(c.ticks_csv, &runs[0].r))) {
			fprintf(stderr, "swarm-sim: --ticks-csv %s: %s\n", c.ticks_csv,
				strerror(-rc));
			status = 1;
		}
		if (c.svg && (rc = write_svg(c.svg, &c, &runs[0]))) {
			fprintf(stderr, "swarm-sim: --svg %s: %s\n", c.svg, strerror(-rc));
			status = 1;
		}
	}
	for (size_t i = 0; i < n_all; i++)
		swarm_sim_report_free(&runs[i].r);
	swarm_sim_trace_free(&trace);
	return status;
}
