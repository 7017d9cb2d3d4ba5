/* histogram.c: bucket arithmetic and quantiles for swarm_hist (see histogram.h). */
#include "runtime/histogram.h"

#include <math.h>

#define SUB (1u << SWARM_HIST_SUB_BITS)

uint32_t swarm_hist_bucket(uint64_t v)
{
	if (v < 2 * SUB)
		return (uint32_t)v;
	uint32_t msb = 63u - (uint32_t)__builtin_clzll(v);
	uint32_t shift = msb - SWARM_HIST_SUB_BITS;
	uint32_t b = (shift + 1) * SUB + (uint32_t)((v >> shift) & (SUB - 1));
	return b < SWARM_HIST_BUCKETS ? b : SWARM_HIST_BUCKETS - 1;
}

uint64_t swarm_hist_bucket_low(uint32_t b)
{
	if (b < 2 * SUB)
		return b;
	uint32_t shift = b / SUB - 1;
	return (uint64_t)(SUB + b % SUB) << shift;
}

uint64_t swarm_hist_total(const struct swarm_hist *h)
{
	uint64_t t = 0;
	for (uint32_t i = 0; i < SWARM_HIST_BUCKETS; i++)
		t += __atomic_load_n(&h->count[i], __ATOMIC_RELAXED);
	return t;
}

uint64_t swarm_hist_quantile(const struct swarm_hist *h, double q)
{
	uint64_t total = swarm_hist_total(h);
	if (total == 0)
		return 0;
	if (!(q >= 0)) /* also NaN */
		q = 0;
	if (q > 1)
		q = 1;
	uint64_t rank = (uint64_t)ceil(q * (double)total);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t b = 0; b < SWARM_HIST_BUCKETS; b++) {
		seen += __atomic_load_n(&h->count[b], __ATOMIC_RELAXED);
		if (seen >= rank) {
			uint64_t lo = swarm_hist_bucket_low(b);
			uint64_t hi = b + 1 < SWARM_HIST_BUCKETS ? swarm_hist_bucket_low(b + 1) :
								   lo;
			return lo + (hi - lo) / 2;
		}
	}
	return swarm_hist_bucket_low(SWARM_HIST_BUCKETS - 1);
}
