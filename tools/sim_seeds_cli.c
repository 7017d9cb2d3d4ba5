/* sim_seeds_cli.c: `swarm-sim --seeds A..B` (docs/simulator.md "Many seeds"): the policy and
 * static provisioning at the maximum on every seed (swarm_sim_seeds_run, in parallel), a line
 * per seed and a summary by issue 19's goal: the worst seed by points below static, the worst
 * by device-seconds share, the medians, and whether the goal was met on every seed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/json_out.h"
#include "tools/sim_seeds_cli.h"

static void print_seeds(const struct swarm_sim_opts *o, const struct swarm_sim_seeds_cli *c,
			const struct swarm_sim_seed_result *v, size_t n,
			const struct swarm_sim_seeds_summary *s)
{
	printf("trace %s, %.0f s, seeds %" PRIu64 "..%" PRIu64
	       ", objective %g us: auto against static:%u\n",
	       c->trace_spec, o->duration_s > 0 ? o->duration_s : o->trace->duration_s, c->first,
	       c->last, o->objective_us, o->max_devices);
	printf("%-10s %10s %9s %8s %8s %13s %10s %9s %9s  %s\n", "seed", "requests", "auto%",
	       "static%", "points", "auto_device_s", "share%", "bound_s", "vs_bound", "goal");
	for (size_t i = 0; i < n; i++)
		printf("%-10" PRIu64 " %10" PRIu64 " %9.3f %8.3f %8.3f %13.0f %10.1f %9.0f %9.2f  %s\n",
		       v[i].seed, v[i].autos.requests, 100 * v[i].autos.attainment,
		       100 * v[i].max.attainment, v[i].points, v[i].autos.device_seconds,
		       100 * v[i].share, v[i].bound, v[i].vs_bound, v[i].met ? "met" : "MISSED");
	const struct swarm_sim_seed_result *wp = &v[s->worst_points], *ws = &v[s->worst_share];
	printf("worst points below:   seed %" PRIu64 ", %.3f points below at %.1f%%\n", wp->seed,
	       wp->points, 100 * wp->share);
	printf("worst share:          seed %" PRIu64 ", %.1f%% at %.3f points below\n", ws->seed,
	       100 * ws->share, ws->points);
	printf("median:               %.3f points below, %.1f%% of static's device-seconds\n",
	       s->median_points, 100 * s->median_share);
	printf("against the bound:    median %.2fx, worst seed %" PRIu64 " %.2fx (the lower bound "
	       "for static's attainment)\n",
	       s->median_vs_bound, v[s->worst_vs_bound].seed, v[s->worst_vs_bound].vs_bound);
	printf("goal: attainment within %.0f point of static:%u at <= %.0f%% of its "
	       "device-seconds on every seed: %s (%zu of %zu seeds)\n",
	       SWARM_SIM_GOAL_POINTS, o->max_devices, 100 * SWARM_SIM_GOAL_SHARE,
	       s->all_met ? "MET" : "MISSED", s->n_met, n);
}

static json_t *json_seed(const struct swarm_sim_seed_result *r)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o}", "seed",
			 swarm_json_u64(r->seed), "requests", swarm_json_u64(r->autos.requests),
			 "auto_attainment", swarm_json_number("%.6f", r->autos.attainment),
			 "static_attainment", swarm_json_number("%.6f", r->max.attainment),
			 "attainment_points_below_static_max", swarm_json_number("%.4f", r->points),
			 "auto_device_seconds", swarm_json_number("%.3f", r->autos.device_seconds),
			 "static_device_seconds", swarm_json_number("%.3f", r->max.device_seconds),
			 "device_seconds_vs_static_max", swarm_json_number("%.4f", r->share), "met",
			 r->met, "bound_device_seconds", swarm_json_number("%.3f", r->bound),
			 "vs_bound", swarm_json_number("%.4f", r->vs_bound));
}

/* doc (the configuration, consumed) with the seeds, each seed's figures and the summary. */
static int write_json(json_t *doc, const struct swarm_sim_seeds_cli *c,
		      const struct swarm_sim_seed_result *v, size_t n,
		      const struct swarm_sim_seeds_summary *s)
{
	json_t *jv = json_array();
	json_object_del(doc, "seed");
	json_object_del(doc, "runs");
	for (size_t i = 0; i < n; i++)
		json_array_append_new(jv, json_seed(&v[i]));
	json_object_set_new(doc, "seeds",
			    json_pack("{s:o, s:o}", "first", swarm_json_u64(c->first), "last",
				      swarm_json_u64(c->last)));
	json_object_set_new(doc, "results", jv);
	json_object_set_new(doc, "summary",
			    json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:b, s:o, s:o}",
				      "worst_points_seed", swarm_json_u64(v[s->worst_points].seed),
				      "worst_share_seed", swarm_json_u64(v[s->worst_share].seed),
				      "median_points_below",
				      swarm_json_number("%.4f", s->median_points), "median_share",
				      swarm_json_number("%.4f", s->median_share), "seeds",
				      (json_int_t)n, "seeds_met", (json_int_t)s->n_met, "all_met",
				      s->all_met, "median_vs_bound",
				      swarm_json_number("%.4f", s->median_vs_bound),
				      "worst_vs_bound_seed",
				      swarm_json_u64(v[s->worst_vs_bound].seed)));
	return swarm_json_write_path(c->json, doc);
}

int swarm_sim_seeds_cli(const struct swarm_sim_opts *opts, const struct swarm_sim_seeds_cli *c,
			json_t *config)
{
	size_t n = (size_t)(c->last - c->first) + 1;
	struct swarm_sim_seed_result *v = calloc(n, sizeof *v);
	if (!v) {
		fprintf(stderr, "swarm-sim: %s\n", strerror(ENOMEM));
		json_decref(config);
		return 1;
	}
	struct swarm_sim_opts o = *opts;
	o.static_devices = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	char err[512];
	int rc = swarm_sim_seeds_run(&o, c->first, c->last, cpus > 0 ? (unsigned)cpus : 1, v, err,
				     sizeof err);
	int status = 0;
	if (rc) {
		fprintf(stderr, "swarm-sim: %s\n", err);
		status = rc == -EINVAL ? 2 : 1;
	} else {
		struct swarm_sim_seeds_summary s;
		swarm_sim_seeds_summarize(v, n, &s);
		if (!c->json || strcmp(c->json, "-"))
			print_seeds(&o, c, v, n, &s);
		if (c->json && (rc = write_json(config, c, v, n, &s))) {
			fprintf(stderr, "swarm-sim: --json %s: %s\n", c->json, strerror(-rc));
			status = 1;
		}
		config = NULL; /* write_json consumed it */
	}
	json_decref(config);
	for (size_t i = 0; i < n; i++) {
		swarm_sim_report_free(&v[i].autos);
		swarm_sim_report_free(&v[i].max);
	}
	free(v);
	return status;
}
