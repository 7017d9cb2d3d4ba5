/* sim_seeds_cli.h: `swarm-sim --seeds` (tools/sim_seeds_cli.c), the command line's output of
 * swarm_sim_seeds_run: a line per seed, the worst seeds, the medians and the goal, as text or
 * JSON. tools/sim_main.c parses the options and calls it. */
#ifndef SWARM_TOOLS_SIM_SEEDS_CLI_H
#define SWARM_TOOLS_SIM_SEEDS_CLI_H

#include <jansson.h>
#include <stdint.h>

#include "tools/sim.h"

struct swarm_sim_seeds_cli {
	uint64_t first, last;   /* the seeds, first <= last */
	const char *trace_spec; /* for the header */
	const char *json;       /* --json FILE, "-" for stdout instead of the text; or NULL */
};

/* Runs o (its trace set; o->seed and o->static_devices are ignored) on c's seeds in as many
 * threads as there are CPUs and prints them; with c->json, writes config (a JSON object of
 * the configuration, consumed; NULL without --json) with the seeds, their figures and the
 * summary added. Returns the exit status: 0, 1 (a run or the output failed), 2 (bad
 * options). */
int swarm_sim_seeds_cli(const struct swarm_sim_opts *o, const struct swarm_sim_seeds_cli *c,
			json_t *config);

#endif /* SWARM_TOOLS_SIM_SEEDS_CLI_H */
