/* as_trace.h: the autoscaler's decisions as swarmd made them, written to a file and read back
 * (docs/autoscaler.md "Replaying swarmd's decisions").
 *
 * swarmd --autoscale-trace FILE writes, for every call of swarm_as_decide, what it gave the
 * policy and what the policy answered: the time, the configuration, every model's input and
 * which policy memory it belongs to, and the actions and targets. swarm-sim --replay FILE
 * reads it back and calls the same policy on the same input, with memories of its own that
 * start at zero where swarmd's did, and checks that every decision comes out the same: the
 * simulator and swarmd make the same decisions for the same demand, by construction and by
 * test. Numbers are written as C99 hexadecimal floats, so that they read back exactly.
 *
 * The format, one record a line, fields separated by one space:
 *   swarm-autoscale-trace 2
 *   config UTIL HYST PANIC_RATIO PANIC_DELAY_FRAC STABLE_WINDOW_NS COOLDOWN_NS
 *          PEAK_WINDOW_NS PEAK_UTIL DRAIN_ALL
 *   decide NOW_NS PARKED N_MODELS
 *   model MEMORY_ID NAME VERSION MIN MAX LATENCY_P99_NS RATE_LONG RATE_SHORT SERVICE_RATE
 *         BUSY QUEUE_DEPTH P99_NS SESSIONS WAITING ACTIVE WARMING DRAINING TARGET
 *         RATE_PEAK SERVICE_PEAK
 *   action KIND MODEL COUNT REASON
 * (a config and a model record are one line each; version 1, before the burst memory, is
 * not read). Each decide is followed by its N_MODELS model lines, in the
 * order given to the policy, then its actions. MEMORY_ID names the caller's struct
 * swarm_as_memory: a new id is a memory zeroed before its first call. Lines starting with
 * '#' are comments.
 */
#ifndef SWARM_RUNTIME_AS_TRACE_H
#define SWARM_RUNTIME_AS_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/autoscaler.h"

/* The header and the configuration. Returns 0 or -EIO. */
int swarm_as_trace_begin(FILE *f, const struct swarm_as_config *cfg);

/* One decision: models[i] (with names[i], versions[i] and memory ids ids[i]), the parked
 * count, the actions and targets swarm_as_decide returned. Returns 0 or -EIO. */
int swarm_as_trace_decision(FILE *f, uint64_t now_ns, uint32_t parked,
			    const struct swarm_as_model *models, const char *const *names,
			    const uint32_t *versions, const uint64_t *ids, size_t n,
			    const struct swarm_as_action *acts, size_t n_acts,
			    const uint32_t *targets);

/* What a replay found. */
struct swarm_as_replay {
	uint64_t decisions;           /* decide records */
	uint64_t models;              /* model records */
	uint64_t actions;             /* action records, as traced */
	uint64_t wakes, drains;       /* devices in them */
	uint64_t mismatches;          /* decisions whose actions or targets differ */
	uint64_t first_mismatch_line; /* 0: none */
	char first_mismatch[256];     /* what differed there */
};

/* Reads a trace from f and replays every decision through swarm_as_decide, comparing its
 * actions and targets with the traced ones. Returns 0 with *out filled (mismatches may be
 * non-zero), or -EINVAL for a malformed trace (the line number and why in err), -ENOMEM. */
int swarm_as_trace_replay(FILE *f, struct swarm_as_replay *out, char *err, size_t err_len);

#endif /* SWARM_RUNTIME_AS_TRACE_H */
