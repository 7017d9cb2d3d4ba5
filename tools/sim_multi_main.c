/* sim_multi_main.c: `swarm-sim --models` (docs/simulator.md "Many models"), called by
 * tools/sim_main.c once the options are read: parses the models file, runs the policy (or
 * static, or with --compare both on the same traces, in parallel threads) and prints the
 * figures per model and in total, as a table or JSON. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/json_out.h"
#include "tools/sim_multi.h"

struct multi_run {
	const char *name;
	struct swarm_sim_multi_opts o;
	struct swarm_sim_multi_report r;
	int rc;
	char err[256];
};

static void *multi_thread(void *arg)
{
	struct multi_run *run = arg;
	run->rc = swarm_sim_multi_run(&run->o, &run->r, run->err, sizeof run->err);
	return NULL;
}

/* A size in the largest of G, M, K (of 1024) that divides it, else bytes. */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "TGMK";
	for (int i = 0; i < 4; i++) {
		unsigned shift = 40 - 10 * (unsigned)i;
		if (v && v % (1ull << shift) == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", v >> shift, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

void swarm_sim_multi_usage(FILE *f)
{
	struct swarm_sim_multi_opts d;
	swarm_sim_multi_opts_default(&d);
	char mem[32];
	fmt_size(mem, sizeof mem, d.device_memory);
	fprintf(f,
		"\n"
		"many models (docs/simulator.md \"Many models\"; instead of --trace):\n"
		"  --models FILE                   one model a line: NAME trace=SPEC [base_us=X]\n"
		"                                  [per_row_us=Y] [max_batch=N] [bytes=SIZE] [min=N]\n"
		"                                  [max=N] [objective_us=X] [load_ms=X]\n"
		"  --devices N                     the pool (default %u, up to %u)\n"
		"  --device-memory SIZE            each device's memory, K/M/G/T of 1024 (default %s)\n"
		"  --policy auto|static            static: every device on, the models placed\n"
		"                                  round-robin where they fit at time 0\n"
		"  --compare                       auto and static on the same traces\n"
		"  the measurement and policy options above apply; --warmup-ms, --tick-ms,\n"
		"  --duration-s, --seed, --max-outstanding (per model) and --json too\n"
		"\n"
		"example:\n"
		"  swarm-sim --models models.txt --devices 4 --device-memory 24G --compare\n",
		d.devices, SWARM_FLEET_MAX_DEVICES, mem);
}

static void print_run(const struct swarm_sim_multi_cli *c, const struct multi_run *run)
{
	const struct swarm_sim_multi_opts *o = &run->o;
	const struct swarm_sim_multi_report *r = &run->r;
	char mem[32];
	fmt_size(mem, sizeof mem, o->device_memory);
	printf("policy %s: %s, %zu models, %u devices of %s, %.0f s simulated, seed %" PRIu64 "\n",
	       run->name, c->models_path, o->n_models, o->devices, mem, r->duration_s, o->seed);
	printf("%-16s %9s %8s %8s %9s %9s %6s %5s %6s %7s %5s %9s\n", "model", "requests", "missed",
	       "attain%", "p50_ms", "p99_ms", "loads", "hits", "evict", "unloads", "peak",
	       "host_s");
	for (size_t m = 0; m < r->n_models; m++) {
		const struct swarm_sim_model_report *mr = &r->models[m];
		printf("%-16s %9" PRIu64 " %8" PRIu64 " %8.3f %9.2f %9.2f %6" PRIu64 " %5" PRIu64
		       " %6" PRIu64 " %7" PRIu64 " %5u %9.1f%s\n",
		       o->models[m].name, mr->requests, mr->requests - mr->met,
		       100 * mr->attainment, mr->p50_us / 1e3, mr->p99_us / 1e3, mr->loads,
		       mr->hits, mr->evictions, mr->unloads, mr->peak_hosts, mr->host_seconds,
		       mr->too_big ? "  (larger than a device: never loaded)" : "");
	}
	printf("%-16s %9" PRIu64 " %8" PRIu64 " %8.3f %9s %9s %6" PRIu64 " %5" PRIu64 " %6" PRIu64
	       " %7" PRIu64 "\n",
	       "total", r->requests, r->requests - r->met, 100 * r->attainment, "", "", r->loads,
	       r->hits, r->evictions, r->unloads);
	printf("device-seconds %.1f (mean %.2f devices, peak %u); %" PRIu64 " wakes, %" PRIu64
	       " parks, %" PRIu64 " refused, %" PRIu64 " unfinished",
	       r->device_seconds, r->mean_devices, r->peak_devices, r->wakes, r->parks, r->refused,
	       r->unfinished);
	if (r->adds_no_room)
		printf(", %" PRIu64 " loads found no room", r->adds_no_room);
	if (o->policy == SWARM_SIM_MULTI_AUTO)
		printf(", %" PRIu64 " decisions", r->decisions);
	printf("\n");
}

static json_t *json_model(const struct swarm_sim_model *m, const struct swarm_sim_model_report *r)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
			 "s:I, s:o, s:b}",
			 "name", swarm_json_str(m->name), "trace", swarm_json_str(m->trace_spec),
			 "bytes", swarm_json_u64(m->bytes), "requests", swarm_json_u64(r->requests),
			 "met", swarm_json_u64(r->met), "refused", swarm_json_u64(r->refused),
			 "unfinished", swarm_json_u64(r->unfinished), "attainment",
			 swarm_json_number("%.6f", r->attainment), "p50_us",
			 swarm_json_number("%.3f", r->p50_us), "p99_us",
			 swarm_json_number("%.3f", r->p99_us), "loads", swarm_json_u64(r->loads),
			 "hits", swarm_json_u64(r->hits), "evictions", swarm_json_u64(r->evictions),
			 "unloads", swarm_json_u64(r->unloads), "peak_hosts",
			 (json_int_t)r->peak_hosts, "host_seconds",
			 swarm_json_number("%.3f", r->host_seconds), "too_big", r->too_big);
}

static json_t *json_run(const struct multi_run *run)
{
	const struct swarm_sim_multi_report *r = &run->r;
	json_t *models = json_array();
	for (size_t m = 0; m < r->n_models; m++)
		json_array_append_new(models, json_model(&run->o.models[m], &r->models[m]));
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, "
			 "s:o, s:o, s:o, s:o, s:o}",
			 "policy", run->name, "requests", swarm_json_u64(r->requests), "met",
			 swarm_json_u64(r->met), "refused", swarm_json_u64(r->refused),
			 "unfinished", swarm_json_u64(r->unfinished), "attainment",
			 swarm_json_number("%.6f", r->attainment), "duration_s",
			 swarm_json_number("%.3f", r->duration_s), "device_seconds",
			 swarm_json_number("%.3f", r->device_seconds), "mean_devices",
			 swarm_json_number("%.4f", r->mean_devices), "peak_devices",
			 (json_int_t)r->peak_devices, "loads", swarm_json_u64(r->loads), "hits",
			 swarm_json_u64(r->hits), "evictions", swarm_json_u64(r->evictions),
			 "unloads", swarm_json_u64(r->unloads), "wakes", swarm_json_u64(r->wakes),
			 "parks", swarm_json_u64(r->parks), "loads_without_room",
			 swarm_json_u64(r->adds_no_room), "decisions", swarm_json_u64(r->decisions),
			 "models", models);
}

static int write_json(const struct swarm_sim_multi_cli *c, const struct multi_run *runs, size_t n)
{
	const struct swarm_sim_multi_opts *o = &runs[0].o;
	json_t *jruns = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(jruns, json_run(&runs[i]));
	json_t *doc = json_pack(
		"{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o}, s:o}",
		"models_file", swarm_json_str(c->models_path), "seed", swarm_json_u64(o->seed),
		"devices", (json_int_t)o->devices, "device_memory",
		swarm_json_u64(o->device_memory), "warmup_ms",
		swarm_json_number("%g", o->warmup_ms), "tick_ms",
		swarm_json_number("%g", o->tick_ms), "short_window_s",
		swarm_json_number("%g", o->short_window_s), "config", "target_util",
		swarm_json_number("%g", o->as.target_util), "hysteresis",
		swarm_json_number("%g", o->as.hysteresis), "panic_ratio",
		swarm_json_number("%g", o->as.panic_ratio), "panic_delay_frac",
		swarm_json_number("%g", o->as.panic_delay_frac), "stable_window_s",
		swarm_json_number("%g", o->as.stable_window_ns / 1e9), "cooldown_s",
		swarm_json_number("%g", o->as.cooldown_ns / 1e9), "runs", jruns);
	if (n == 2)
		json_object_set_new(
			doc, "auto_vs_static",
			json_pack("{s:o, s:o}", "attainment_points_below",
				  swarm_json_number("%.4f", 100 * (runs[1].r.attainment -
								   runs[0].r.attainment)),
				  "device_seconds_ratio",
				  swarm_json_number("%.4f", runs[0].r.device_seconds /
								    runs[1].r.device_seconds)));
	return swarm_json_write_path(c->json, doc);
}

int swarm_sim_multi_cli(const struct swarm_sim_opts *shared, const struct swarm_sim_multi_cli *c)
{
	char err[512];
	struct swarm_sim_models ms;
	int rc = swarm_sim_models_parse(c->models_path, &ms, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-sim: --models: %s\n",
			rc == -ENOMEM ? strerror(ENOMEM) : err);
		return 2; /* the models file is an option: a bad one is bad usage */
	}
	struct swarm_sim_multi_opts o;
	swarm_sim_multi_opts_default(&o);
	o.models = ms.v;
	o.n_models = ms.n;
	o.seed = shared->seed;
	if (c->devices)
		o.devices = c->devices;
	if (c->device_memory)
		o.device_memory = c->device_memory;
	o.policy = shared->static_devices ? SWARM_SIM_MULTI_STATIC : SWARM_SIM_MULTI_AUTO;
	o.warmup_ms = shared->warmup_ms;
	o.tick_ms = shared->tick_ms;
	o.duration_s = shared->duration_s;
	o.short_window_s = shared->short_window_s;
	o.max_outstanding = shared->max_outstanding;
	o.as = shared->as;

	struct multi_run runs[2] = { { .o = o }, { .o = o } };
	size_t n = c->compare ? 2 : 1;
	runs[0].name = o.policy == SWARM_SIM_MULTI_STATIC ? "static" : "auto";
	if (c->compare) {
		runs[1].o.policy = SWARM_SIM_MULTI_STATIC;
		runs[1].name = "static";
	}
	/* The runs share only the models and their traces, read-only. */
	pthread_t th;
	int started = n > 1 && !pthread_create(&th, NULL, multi_thread, &runs[1]);
	multi_thread(&runs[0]);
	if (started)
		pthread_join(th, NULL);
	else if (n > 1)
		multi_thread(&runs[1]);

	int status = 0;
	for (size_t i = 0; i < n; i++) {
		if (runs[i].rc) {
			fprintf(stderr, "swarm-sim: %s: %s\n", runs[i].name,
				runs[i].rc == -ENOMEM ? strerror(ENOMEM) : runs[i].err);
			status = runs[i].rc == -EINVAL ? 2 : 1;
		}
	}
	if (!status) {
		if (!c->json || strcmp(c->json, "-")) {
			for (size_t i = 0; i < n; i++) {
				if (i)
					printf("\n");
				print_run(c, &runs[i]);
			}
			if (n == 2)
				printf("\nauto against static: %.3f points of attainment below, at "
				       "%.1f%% of its device-seconds\n",
				       100 * (runs[1].r.attainment - runs[0].r.attainment),
				       100 * runs[0].r.device_seconds / runs[1].r.device_seconds);
		}
		if (c->json && (rc = write_json(c, runs, n))) {
			fprintf(stderr, "swarm-sim: --json %s: %s\n", c->json, strerror(-rc));
			status = 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		swarm_sim_multi_report_free(&runs[i].r);
	swarm_sim_models_free(&ms);
	return status;
}
