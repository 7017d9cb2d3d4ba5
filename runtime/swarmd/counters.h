/* counters.h: what swarmd counts of its own events for the metrics endpoint (metrics.c):
 * opens and why they failed, refusals by limit, the autoscaler's decisions by reason, and
 * each device's state, sessions, restarts and warm-up and drain durations.
 *
 * One writer, swarmd's loop thread, with relaxed atomic stores of whole words
 * (swarm_stat_add); the metrics thread reads them with relaxed loads and may see a snapshot a
 * few events old, never a torn word. Counters only grow. Device fields are copied from
 * swarmd's own state by counters_publish, once per loop pass, so that no other thread ever
 * reads struct device (swarmd.h: nothing there is locked).
 */
#ifndef SWARM_RUNTIME_SWARMD_COUNTERS_H
#define SWARM_RUNTIME_SWARMD_COUNTERS_H

#include <stdint.h>

#include "ipc/proto.h"
#include "runtime/stats.h"

/* The limit that refused a client (--max-*, --hello-timeout-ms): the `limit` label. */
enum swarmd_limit {
	SWARMD_LIM_SESSIONS_PER_CLIENT = 0,
	SWARMD_LIM_SESSIONS_PER_USER,
	SWARMD_LIM_SESSION_BYTES,
	SWARMD_LIM_USER_BYTES,
	SWARMD_LIM_CONNECTIONS,
	SWARMD_LIM_CONNECTIONS_PER_USER,
	SWARMD_LIM_HELLO_TIMEOUT,
	SWARMD_LIM_N
};

/* Why an open failed, from the status its reply carried: the `reason` label. */
enum swarmd_open_fail {
	SWARMD_OPEN_NO_MODEL = 0, /* -ENOENT, -ESRCH, -ENAMETOOLONG: no such model or version */
	SWARMD_OPEN_BAD_OPTIONS,  /* -EINVAL: slots or rows out of range */
	SWARMD_OPEN_LIMIT,        /* -EDQUOT: a limit (swarm_refusals_total says which) */
	SWARMD_OPEN_NO_DEVICE,    /* -ENODEV: no device in service (in time) */
	SWARMD_OPEN_WORKER,       /* -ECONNABORTED or the worker's refusal */
	SWARMD_OPEN_OTHER,        /* out of memory, descriptors, ... */
	SWARMD_OPEN_N
};

#define SWARMD_AS_REASONS 8 /* enum swarm_as_reason values are below this */

struct swarmd_device_counters {
	uint32_t state;               /* a swarm_device_state */
	uint32_t sessions;            /* sessions placed on it */
	uint64_t restarts;            /* its worker started again after dying */
	struct swarm_p2hist warm_ns;  /* WARMING: worker started to ready */
	struct swarm_p2hist drain_ns; /* DRAINING: drain asked to parked */
};

struct swarmd_counters {
	uint64_t opens; /* sessions opened */
	uint64_t open_failures[SWARMD_OPEN_N];
	uint64_t refusals[SWARMD_LIM_N];
	uint64_t autoscale[2][SWARMD_AS_REASONS]; /* [0] wake, [1] drain; by swarm_as_reason */
	uint32_t n_dev;                           /* written before the metrics thread starts */
	struct swarmd_device_counters dev[SWARM_STATUS_MAX_DEVICES];
};

/* Read by the metrics thread (relaxed loads), written by the loop thread alone. */
extern struct swarmd_counters swarmd_ctr;

/* Loop thread: a client refused by limit. */
void counters_refusal(enum swarmd_limit limit);
/* Loop thread: an open answered with status (0: opened). */
void counters_open(int status);
/* Loop thread: one autoscaler action (wake 1 or drain 0) for a swarm_as_reason. */
void counters_autoscale(int wake, uint32_t reason);
/* Loop thread, once a pass: copies the devices' state, sessions and restarts, and times the
 * warm-ups and drains that ended since the last pass. */
void counters_publish(uint64_t now);

/* The label values. */
const char *counters_limit_name(uint32_t limit);
const char *counters_open_fail_name(uint32_t reason);

#endif /* SWARM_RUNTIME_SWARMD_COUNTERS_H */
