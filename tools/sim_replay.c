/* sim_replay.c: `swarm-sim --replay FILE` (docs/autoscaler.md "Replaying swarmd's
 * decisions"): reads a trace that swarmd --autoscale-trace wrote, calls the policy on every
 * decision's input as swarmd did, and says whether every decision came out the same. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/as_trace.h"
#include "tools/sim.h"

void swarm_sim_replay_usage(FILE *f)
{
	fprintf(f,
		"\n"
		"replaying swarmd's decisions:\n"
		"  swarm-sim --replay FILE          read what swarmd --autoscale-trace FILE wrote,\n"
		"                                  decide again on every decision's input with\n"
		"                                  the same policy, and check that each decision\n"
		"                                  comes out the same (exit 1 when one does not)\n");
}

int swarm_sim_replay_main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "swarm-sim: --replay takes one trace file and no other option\n");
		return 2;
	}
	const char *path = argv[2];
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "swarm-sim: --replay %s: %s\n", path, strerror(errno));
		return 2;
	}
	struct swarm_as_replay r;
	char err[512];
	int rc = swarm_as_trace_replay(f, &r, err, sizeof err);
	fclose(f);
	if (rc) {
		fprintf(stderr, "swarm-sim: --replay %s: %s\n", path,
			rc == -ENOMEM ? "out of memory" : err);
		return 2;
	}
	printf("replay %s: %" PRIu64 " decisions, %" PRIu64 " model inputs, %" PRIu64
	       " actions (%" PRIu64 " devices woken, %" PRIu64 " drained): %" PRIu64
	       " decisions differ\n",
	       path, r.decisions, r.models, r.actions, r.wakes, r.drains, r.mismatches);
	if (r.mismatches)
		printf("first difference, at line %" PRIu64 ": %s\n", r.first_mismatch_line,
		       r.first_mismatch);
	return r.mismatches ? 1 : 0;
}
