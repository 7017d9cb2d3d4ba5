/* stats.h: the worker's stats page, a small shared memfd that swarmd creates, the worker
 * writes and swarmd (and through it `swarm status`) reads without asking.
 *
 * One writer: the worker, with relaxed atomic stores of whole words. Readers may see a
 * snapshot that is a few requests old, never a torn word.
 */
#ifndef SWARM_RUNTIME_STATS_H
#define SWARM_RUNTIME_STATS_H

#include <stdint.h>

#include "runtime/histogram.h"
#include "swarm/swarm.h"

#define SWARM_STATS_MAGIC 0x3154415453525753ull /* "SWRSTAT1" */
#define SWARM_WORKER_MAX_SESSIONS 256

struct swarm_session_stats {
	uint64_t session_id; /* 0: the entry is free */
	uint64_t requests;
	uint64_t errors;
	uint32_t in_flight;
	uint32_t reserved;
	struct swarm_hist latency; /* client submit to completion, ns */
};

struct swarm_worker_stats {
	uint64_t magic;
	int32_t pid;
	int32_t device_index;
	uint64_t heartbeat_ns; /* CLOCK_MONOTONIC of the worker's last timer tick */
	uint64_t requests;
	uint64_t errors;
	uint64_t busy_ns;     /* time spent running requests */
	uint64_t batches; /* batches of more than one request run (dynamic batching) */
	uint32_t queue_depth; /* requests taken and not yet completed */
	uint32_t sessions;
	struct swarm_hist latency;
	struct swarm_session_stats session[SWARM_WORKER_MAX_SESSIONS];
	/* Weights copied to the device (not a host-memory device's, which computes on the
	 * mapping): bytes over every version loaded, and the rate of the last copy in MB/s
	 * (1e6 bytes a second; 0 before the first). */
	uint64_t weights_bytes_loaded;
	uint32_t weights_mbps_last;
	uint32_t reserved;
};

/* Single-writer updates. */
static inline void swarm_stat_add(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline void swarm_stat_set32(uint32_t *c, uint32_t v)
{
	__atomic_store_n(c, v, __ATOMIC_RELAXED);
}
static inline uint64_t swarm_stat_get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Creates the page as a memfd and maps it. Returns the fd (*out the mapping) or -errno. */
int swarm_stats_create(struct swarm_worker_stats **out);

/* Maps a page received from swarmd. Returns 0 or -errno. */
int swarm_stats_map(int fd, struct swarm_worker_stats **out);

void swarm_stats_unmap(struct swarm_worker_stats *s);

#endif /* SWARM_RUNTIME_STATS_H */
