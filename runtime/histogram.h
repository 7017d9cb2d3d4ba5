/* histogram.h: a log-linear latency histogram of fixed size, for shared stats pages.
 *
 * Values below 16 have a bucket each; above, every power of two is split into 8 buckets, so
 * a bucket is at most 12.5% wide. 336 buckets cover 0 to 2^44 ns (about 4.9 hours); larger
 * values land in the last one. One writer (the worker) adds with relaxed atomic increments;
 * readers (swarmd, swarm status) may see a count mid-update, never a torn word.
 */
#ifndef SWARM_RUNTIME_HISTOGRAM_H
#define SWARM_RUNTIME_HISTOGRAM_H

#include <stdint.h>

#define SWARM_HIST_SUB_BITS 3
#define SWARM_HIST_BUCKETS 336

struct swarm_hist {
	uint64_t count[SWARM_HIST_BUCKETS];
};

/* The bucket of value v. */
uint32_t swarm_hist_bucket(uint64_t v);

/* The smallest value that falls in bucket b. */
uint64_t swarm_hist_bucket_low(uint32_t b);

/* Adds one observation (single writer). */
static inline void swarm_hist_add(struct swarm_hist *h, uint64_t v)
{
	uint64_t *c = &h->count[swarm_hist_bucket(v)];
	/* Relaxed: one writer; readers only need each word whole. */
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* Total observations. */
uint64_t swarm_hist_total(const struct swarm_hist *h);

/* The value at quantile q (0..1): the middle of the bucket holding the nearest-rank
 * observation, 0 when empty. */
uint64_t swarm_hist_quantile(const struct swarm_hist *h, double q);

#endif /* SWARM_RUNTIME_HISTOGRAM_H */
