/* memory_harness.h: what swarm-bench's two many-model cases share, internal to bench/: the
 * memory case (cases_memory.c: the open of a resident version against a load and an
 * eviction) and the memory-zipf case (cases_zipf.c: 20 models under a shifting Zipf load on
 * budgets that hold 8 a device, against budgets that hold all). Both publish rankers of one
 * shape drawn from seeds of their own (distinct blobs), size --device-memory from the
 * registry's estimate of one of them, check every output against its graph run in this
 * process, and read swarmd's log for the loads and evictions it made.
 *
 * who, in every function, names the case in messages ("memory", "memory-zipf"). Functions
 * return 0 or a negative errno, having said what failed on stderr; mh_call_checked is
 * thread-safe (the models are read only once made). */
#ifndef SWARM_BENCH_MEMORY_HARNESS_H
#define SWARM_BENCH_MEMORY_HARNESS_H

#include <stdint.h>

#include <swarm/swarm.h>

#include "bench/model_harness.h"
#include "bench/ranker.h"
#include "bench/swarm_bench.h"

/* A case's model options: swarm-bench's directory, peer cpu and --quick, swarmd --devices
 * devices (a string that outlives the options). */
struct bench_model_opts mh_opts(const struct bench_ctx *ctx, const char *devices);

/* One published model: ranker r from a seed of its own, its input sets and their outputs in
 * this process. */
struct mh_model {
	char name[24]; /* published as <prefix>-<i> (room for any int) */
	struct mb_model md;
	struct mb_inputs in;
};

/* Makes model i into m: ranker r with deploy d from seed BENCH_RANKER_SEED + i, n_sets input
 * sets run in process, published into e's registry as <prefix>-<i>. */
int mh_model_make(struct mh_model *m, struct mb_env *e, const struct bench_ranker *r,
		  const struct bench_ranker_deploy *d, const char *prefix, int i, int n_sets);

/* Frees what mh_model_make made (also after it failed, or on a zeroed m). */
void mh_model_free(struct mh_model *m);

/* *cost: what model costs a device, the registry's estimate (swarm_version_cost_estimate,
 * what `swarm registry show` prints; equal to what a worker on a CPU device measures). */
int mh_cost(const char *who, const struct mb_env *e, const char *model, uint64_t *cost);

/* Starts a swarmd --devices devices (topology: NULL for swarmd's own plan) with
 * --device-memory budget on e's registry, logging to <e->dir>/<log_name>.log, and connects
 * to it (*cl; NULL when out is not wanted). */
int mh_swarmd_start(const char *who, struct mb_env *e, const char *log_name, const char *devices,
		    const char *topology, uint64_t budget, swarm_client **cl);

/* Ends a run that returned rc: disconnects cl (may be NULL) and stops swarmd. Returns rc, or
 * swarmd's stop status when rc is 0. */
int mh_swarmd_stop(struct mb_env *e, swarm_client *cl, int rc);

/* One request of one row on set through s, timed from alloc to release into *ns (may be
 * NULL), then its output checked against m's in-process one. Returns 0, -EBADMSG when the
 * output is wrong, or the request's error (each said). */
int mh_call_checked(const char *who, const struct mh_model *m, swarm_session *s, int set,
		    uint64_t *ns);

/* Calls line(arg, text) on each line of the log at path, until one returns non-zero, which is
 * returned. Returns 0, that value, or -errno when the log cannot be read. */
int mh_log_scan(const char *who, const char *path, int (*line)(void *arg, const char *text),
		void *arg);

#endif /* SWARM_BENCH_MEMORY_HARNESS_H */
