/* stats.h: the worker's stats page, a small shared memfd that swarmd creates, the worker
 * writes and swarmd (and through it `swarm status` and the metrics endpoint) reads without
 * asking.
 *
 * One writer: the worker, with relaxed atomic stores of whole words. Readers may see a
 * snapshot that is a few requests old, never a torn word.
 *
 * Two parts. The head (everything before models) is the worker's own: swarmd zeroes it when
 * it starts a new worker on the device (swarm_stats_reset_worker). The model table lives as
 * long as the page, across workers: the counters there (per model and version, what
 * Prometheus scrapes) never go backwards while swarmd runs, since a new worker adopts the
 * entries its predecessor filled and goes on counting from them. Only one worker of a device
 * lives at a time (swarmd starts the next after the last has exited), so each word still has
 * one writer at a time.
 */
#ifndef SWARM_RUNTIME_STATS_H
#define SWARM_RUNTIME_STATS_H

#include <errno.h>
#include <stdint.h>

#include "runtime/histogram.h"
#include "swarm/swarm.h"

#define SWARM_STATS_MAGIC 0x3154415453525753ull /* "SWRSTAT1" */
#define SWARM_WORKER_MAX_SESSIONS 256
#define SWARM_STATS_MAX_MODELS 64 /* (model, version) entries; the last one counts the rest */
#define SWARM_P2_BUCKETS 40

/* A histogram with power-of-two bounds, for Prometheus: bucket 0 holds values up to 1, bucket
 * i >= 1 those in (2^(i-1), 2^i], the last one everything above. Summed from bucket 0 up to
 * i, the counts are exactly the observations <= 2^i (a cumulative `le` bucket). sum is the
 * sum of the observations (`_sum`). */
struct swarm_p2hist {
	uint64_t count[SWARM_P2_BUCKETS];
	uint64_t sum;
};

/* Why a request failed, from its status (swarm_fail_reason): the `reason` label. */
enum swarm_fail_reason {
	SWARM_FAIL_DEADLINE = 0, /* -ETIMEDOUT: its deadline passed before it ran */
	SWARM_FAIL_BAD_REQUEST,  /* -EINVAL, -E2BIG, -ERANGE: rows or tensors out of bounds */
	SWARM_FAIL_UNSUPPORTED,  /* -ENOTSUP: asked what the device or model cannot do */
	SWARM_FAIL_EXECUTION,    /* anything else the executor returned */
	SWARM_FAIL_N
};

/* One (model, version) a worker of the device has served. The worker that first serves it
 * writes name and version, then publishes valid with a release store; readers load valid
 * with acquire before they read the name. */
struct swarm_model_stats {
	uint32_t valid;   /* 0: free; 1: name and version are set (release, see above) */
	uint32_t version; /* 0 in the overflow entry */
	char name[SWARM_NAME_MAX];
	uint32_t sessions; /* attached now (a gauge; swarmd zeroes it when the worker dies) */
	uint32_t reserved;
	uint64_t requests;
	uint64_t rows;
	uint64_t batches; /* runs of more than one request together (dynamic batching) */
	uint64_t failures[SWARM_FAIL_N];
	/* Weight loads: how many, the blob bytes mapped and the time it took (mapping, first
	 * touch, verify, the copy to a GPU), the bytes copied to the device (0 on the CPU, which
	 * computes on the mapping), and the last load's rate in bytes a second. */
	uint64_t loads;
	uint64_t load_bytes;
	uint64_t load_ns;
	uint64_t upload_bytes;
	uint64_t load_bytes_per_s;
	struct swarm_p2hist latency_ns; /* the client's submit stamp to completion */
	struct swarm_p2hist queue_ns;   /* the client's submit stamp to the start of its run */
	struct swarm_p2hist compute_ns; /* one run: a batch, or a pass over a session's requests */
	struct swarm_p2hist batch_rows; /* rows of each run of a batching version */
};

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
	/* Kept across workers (see the top); swarm_stats_reset_worker stops before it. */
	struct swarm_model_stats models[SWARM_STATS_MAX_MODELS];
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

/* The bucket of v in a swarm_p2hist. */
static inline uint32_t swarm_p2_bucket(uint64_t v)
{
	if (v <= 1)
		return 0;
	uint32_t b = 64u - (uint32_t)__builtin_clzll(v - 1);
	return b < SWARM_P2_BUCKETS ? b : SWARM_P2_BUCKETS - 1;
}

/* Adds one observation (single writer). */
static inline void swarm_p2_add(struct swarm_p2hist *h, uint64_t v)
{
	swarm_stat_add(&h->count[swarm_p2_bucket(v)], 1);
	swarm_stat_add(&h->sum, v);
}

/* The reason label of a failed request's status (a negative errno). */
static inline enum swarm_fail_reason swarm_fail_reason(int32_t status)
{
	switch (status) {
	case -ETIMEDOUT:
		return SWARM_FAIL_DEADLINE;
	case -EINVAL:
	case -E2BIG:
	case -ERANGE:
		return SWARM_FAIL_BAD_REQUEST;
	case -ENOTSUP:
		return SWARM_FAIL_UNSUPPORTED;
	default:
		return SWARM_FAIL_EXECUTION;
	}
}

/* A reason's label value ("deadline"). */
const char *swarm_fail_reason_name(uint32_t reason);

/* The worker's entry for (model, version) in s's table: the one a worker of the device filled
 * before, else a free one, named now; when the table is full, the last entry, which counts
 * every model that found no room (model "_other", version 0). Writer only. */
struct swarm_model_stats *swarm_stats_model(struct swarm_worker_stats *s, const char *model,
					    uint32_t version);

/* One request of m completed with status (counts, and its failure by reason). */
static inline void swarm_model_stats_request(struct swarm_model_stats *m, uint32_t rows,
					     int32_t status)
{
	swarm_stat_add(&m->requests, 1);
	swarm_stat_add(&m->rows, rows);
	if (status)
		swarm_stat_add(&m->failures[swarm_fail_reason(status)], 1);
}

/* swarmd, once the page's worker has exited: the model table's gauges (sessions) go to 0. */
void swarm_stats_worker_gone(struct swarm_worker_stats *s);

/* swarmd, before a new worker starts on the page (the last one has exited): zeroes the head
 * and the model table's gauges; the model table's counters stay. */
void swarm_stats_reset_worker(struct swarm_worker_stats *s);

/* Creates the page as a memfd and maps it. Returns the fd (*out the mapping) or -errno. */
int swarm_stats_create(struct swarm_worker_stats **out);

/* Maps a page received from swarmd. Returns 0 or -errno. */
int swarm_stats_map(int fd, struct swarm_worker_stats **out);

void swarm_stats_unmap(struct swarm_worker_stats *s);

#endif /* SWARM_RUNTIME_STATS_H */
