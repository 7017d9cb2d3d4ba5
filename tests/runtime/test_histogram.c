/* test_histogram.c: the log-linear histogram of runtime/histogram.h: exact small buckets,
 * bucket order and bounds, the 12.5% width bound, the last bucket, totals and quantiles.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/histogram.h"

#define LAST (SWARM_HIST_BUCKETS - 1u)

/* A seeded generator, so that a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* A random value of random magnitude: uniform bits up to a random top bit. */
static uint64_t rng_value(uint64_t *s)
{
	unsigned bits = (unsigned)(rng_next(s) % 64) + 1;
	uint64_t v = rng_next(s);
	return bits == 64 ? v : v & ((UINT64_C(1) << bits) - 1);
}

static struct swarm_hist *hist_new(void)
{
	struct swarm_hist *h = calloc(1, sizeof *h);
	cr_assert_not_null(h);
	return h;
}

/* Every value the bound tests check: 0..4096, powers of two and their neighbours, random. */
static size_t sample_values(uint64_t *out, size_t max)
{
	size_t n = 0;
	for (uint64_t v = 0; v <= 4096 && n < max; v++)
		out[n++] = v;
	for (unsigned k = 1; k < 64 && n + 3 <= max; k++) {
		uint64_t p = UINT64_C(1) << k;
		out[n++] = p - 1;
		out[n++] = p;
		out[n++] = p + 1;
	}
	out[n++] = UINT64_MAX;
	uint64_t s = 0x9e3779b97f4a7c15u;
	while (n < max)
		out[n++] = rng_value(&s);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

Test(runtime_histogram, values_below_16_have_a_bucket_each)
{
	for (uint64_t v = 0; v < 16; v++) {
		cr_assert_eq(swarm_hist_bucket(v), (uint32_t)v, "bucket(%" PRIu64 ") = %u", v,
			     swarm_hist_bucket(v));
		cr_assert_eq(swarm_hist_bucket_low((uint32_t)v), v,
			     "bucket_low(%" PRIu64 ") = %" PRIu64, v,
			     swarm_hist_bucket_low((uint32_t)v));
	}
	cr_assert_eq(swarm_hist_bucket(16), 16u, "bucket(16) = %u", swarm_hist_bucket(16));
}

Test(runtime_histogram, bucket_is_monotonic_over_a_dense_sweep)
{
	uint32_t prev = swarm_hist_bucket(0);
	for (uint64_t v = 1; v <= 1u << 20; v++) {
		uint32_t b = swarm_hist_bucket(v);
		cr_assert(b == prev || b == prev + 1,
			  "bucket(%" PRIu64 ") = %u after bucket(%" PRIu64 ") = %u", v, b, v - 1,
			  prev);
		prev = b;
	}
}

Test(runtime_histogram, bucket_is_monotonic_over_random_and_power_of_two_values)
{
	enum {
		N = 20000
	};
	static uint64_t v[N];
	size_t n = sample_values(v, N);
	qsort(v, n, sizeof v[0], cmp_u64);
	for (size_t i = 1; i < n; i++) {
		uint32_t a = swarm_hist_bucket(v[i - 1]), b = swarm_hist_bucket(v[i]);
		cr_assert_leq(a, b, "bucket(%" PRIu64 ") = %u > bucket(%" PRIu64 ") = %u", v[i - 1],
			      a, v[i], b);
	}
}

Test(runtime_histogram, bucket_low_bounds_each_value)
{
	enum {
		N = 20000
	};
	static uint64_t v[N];
	size_t n = sample_values(v, N);
	for (size_t i = 0; i < n; i++) {
		uint32_t b = swarm_hist_bucket(v[i]);
		cr_assert_lt(b, SWARM_HIST_BUCKETS, "bucket(%" PRIu64 ") = %u", v[i], b);
		uint64_t lo = swarm_hist_bucket_low(b);
		cr_assert_leq(lo, v[i], "v %" PRIu64 " bucket %u low %" PRIu64, v[i], b, lo);
		if (b < LAST) {
			uint64_t hi = swarm_hist_bucket_low(b + 1);
			cr_assert_lt(v[i], hi,
				     "v %" PRIu64 " bucket %u next bucket starts at %" PRIu64, v[i],
				     b, hi);
		}
	}
}

Test(runtime_histogram, bucket_of_bucket_low_is_the_bucket)
{
	for (uint32_t b = 0; b < SWARM_HIST_BUCKETS; b++) {
		uint64_t lo = swarm_hist_bucket_low(b);
		cr_assert_eq(swarm_hist_bucket(lo), b, "bucket(bucket_low(%u) = %" PRIu64 ") = %u",
			     b, lo, swarm_hist_bucket(lo));
		if (b > 0)
			cr_assert_gt(lo, swarm_hist_bucket_low(b - 1),
				     "bucket_low(%u) = %" PRIu64 " <= bucket_low(%u) = %" PRIu64, b,
				     lo, b - 1, swarm_hist_bucket_low(b - 1));
	}
}

Test(runtime_histogram, bucket_width_is_at_most_one_eighth_above_16)
{
	for (uint32_t b = 16; b < LAST; b++) {
		uint64_t lo = swarm_hist_bucket_low(b), hi = swarm_hist_bucket_low(b + 1);
		/* (hi - lo) / lo <= 1/8 */
		cr_assert_leq((hi - lo) * 8, lo,
			      "bucket %u spans [%" PRIu64 ", %" PRIu64 "): %.4f of its low", b, lo,
			      hi, (double)(hi - lo) / (double)lo);
	}
}

Test(runtime_histogram, buckets_cover_up_to_2_pow_44)
{
	uint64_t top = UINT64_C(1) << 44;
	cr_assert_eq(swarm_hist_bucket(top - 1), LAST, "bucket(2^44 - 1) = %u, last %u",
		     swarm_hist_bucket(top - 1), LAST);
	cr_assert_lt(swarm_hist_bucket(top - top / 8 - 1), LAST,
		     "bucket(2^44 - 2^41 - 1) = %u should be below the last (%u)",
		     swarm_hist_bucket(top - top / 8 - 1), LAST);
	cr_assert_eq(swarm_hist_bucket_low(LAST), top - top / 16,
		     "bucket_low(last) = %" PRIu64 ", want 15 * 2^40 = %" PRIu64,
		     swarm_hist_bucket_low(LAST), top - top / 16);
}

Test(runtime_histogram, huge_values_land_in_the_last_bucket)
{
	const uint64_t huge[] = {
		UINT64_C(1) << 44, (UINT64_C(1) << 44) + 1,     UINT64_C(1) << 50,
		UINT64_C(1) << 63, (UINT64_C(1) << 63) + 12345, UINT64_MAX - 1,
		UINT64_MAX,
	};
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
		cr_assert_eq(swarm_hist_bucket(huge[i]), LAST, "bucket(%" PRIu64 ") = %u, last %u",
			     huge[i], swarm_hist_bucket(huge[i]), LAST);
}

Test(runtime_histogram, huge_values_count_and_report_the_last_bucket)
{
	struct swarm_hist *h = hist_new();
	swarm_hist_add(h, UINT64_MAX);
	swarm_hist_add(h, UINT64_C(1) << 60);
	cr_assert_eq(swarm_hist_total(h), 2u, "total %" PRIu64, swarm_hist_total(h));
	cr_assert_eq(h->count[LAST], 2u, "last bucket count %" PRIu64, h->count[LAST]);
	uint64_t q = swarm_hist_quantile(h, 1.0);
	cr_assert_eq(q, swarm_hist_bucket_low(LAST), "p100 %" PRIu64 ", last bucket low %" PRIu64,
		     q, swarm_hist_bucket_low(LAST));
	free(h);
}

Test(runtime_histogram, add_counts_in_the_value_bucket)
{
	struct swarm_hist *h = hist_new();
	const uint64_t vs[] = { 0, 3, 3, 15, 16, 17, 1000, 1000000 };
	for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
		swarm_hist_add(h, vs[i]);
	cr_assert_eq(swarm_hist_total(h), 8u, "total %" PRIu64, swarm_hist_total(h));
	cr_assert_eq(h->count[3], 2u, "count[3] %" PRIu64, h->count[3]);
	cr_assert_eq(h->count[16], 2u, "count[16] (16 and 17) %" PRIu64, h->count[16]);
	uint32_t b = swarm_hist_bucket(1000000);
	cr_assert_eq(h->count[b], 1u, "count[%u] %" PRIu64, b, h->count[b]);
	free(h);
}

Test(runtime_histogram, empty_histogram_gives_zero)
{
	struct swarm_hist *h = hist_new();
	cr_assert_eq(swarm_hist_total(h), 0u, "total %" PRIu64, swarm_hist_total(h));
	const double qs[] = { 0, 0.5, 0.99, 1, -1, 2 };
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
		cr_assert_eq(swarm_hist_quantile(h, qs[i]), 0u, "quantile(%g) = %" PRIu64, qs[i],
			     swarm_hist_quantile(h, qs[i]));
	free(h);
}

Test(runtime_histogram, small_values_give_exact_quantiles)
{
	struct swarm_hist *h = hist_new();
	for (uint64_t v = 1; v <= 10; v++)
		swarm_hist_add(h, v);
	/* Nearest rank: ceil(q * 10). */
	cr_assert_eq(swarm_hist_quantile(h, 0.5), 5u, "p50 %" PRIu64, swarm_hist_quantile(h, 0.5));
	cr_assert_eq(swarm_hist_quantile(h, 0.51), 6u, "p51 %" PRIu64,
		     swarm_hist_quantile(h, 0.51));
	cr_assert_eq(swarm_hist_quantile(h, 0.9), 9u, "p90 %" PRIu64, swarm_hist_quantile(h, 0.9));
	cr_assert_eq(swarm_hist_quantile(h, 1.0), 10u, "p100 %" PRIu64,
		     swarm_hist_quantile(h, 1.0));
	cr_assert_eq(swarm_hist_quantile(h, 0.0), 1u, "p0 %" PRIu64, swarm_hist_quantile(h, 0.0));
	free(h);
}

Test(runtime_histogram, uniform_quantiles_are_within_one_eighth)
{
	enum {
		N = 100000
	};
	struct swarm_hist *h = hist_new();
	for (uint64_t v = 1; v <= N; v++)
		swarm_hist_add(h, v);
	cr_assert_eq(swarm_hist_total(h), (uint64_t)N, "total %" PRIu64, swarm_hist_total(h));
	const double qs[] = { 0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0 };
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
		/* The exact nearest-rank quantile of 1..N is its rank. */
		double exact = ceil(qs[i] * N);
		if (exact < 1)
			exact = 1;
		double got = (double)swarm_hist_quantile(h, qs[i]);
		cr_assert_leq(fabs(got - exact), exact * 0.125,
			      "quantile(%g) = %.0f, exact %.0f (off by %.2f%%)", qs[i], got, exact,
			      100 * fabs(got - exact) / exact);
	}
	free(h);
}

Test(runtime_histogram, quantile_is_monotonic_in_q)
{
	struct swarm_hist *h = hist_new();
	uint64_t s = 42;
	for (int i = 0; i < 50000; i++)
		swarm_hist_add(h, rng_value(&s) >> 20);
	uint64_t prev = 0;
	for (int i = 0; i <= 1000; i++) {
		double q = i / 1000.0;
		uint64_t v = swarm_hist_quantile(h, q);
		cr_assert_geq(v, prev, "quantile(%g) = %" PRIu64 " < previous %" PRIu64, q, v,
			      prev);
		prev = v;
	}
	free(h);
}

Test(runtime_histogram, quantile_clamps_q_to_0_and_1)
{
	struct swarm_hist *h = hist_new();
	for (uint64_t v = 1; v <= 1000; v++)
		swarm_hist_add(h, v * 7);
	uint64_t lo = swarm_hist_quantile(h, 0), hi = swarm_hist_quantile(h, 1);
	const double below[] = { -0.0001, -1, -1e300, -INFINITY };
	const double above[] = { 1.0001, 2, 1e300, INFINITY };
	for (size_t i = 0; i < 4; i++) {
		uint64_t b = swarm_hist_quantile(h, below[i]), a = swarm_hist_quantile(h, above[i]);
		cr_assert_eq(b, lo, "quantile(%g) = %" PRIu64 ", quantile(0) = %" PRIu64, below[i],
			     b, lo);
		cr_assert_eq(a, hi, "quantile(%g) = %" PRIu64 ", quantile(1) = %" PRIu64, above[i],
			     a, hi);
	}
	free(h);
}

Test(runtime_histogram, nan_quantile_is_the_minimum)
{
	struct swarm_hist h = { 0 };
	for (uint64_t v = 1; v <= 100; v++)
		swarm_hist_add(&h, v);
	uint64_t q = swarm_hist_quantile(&h, NAN);
	cr_assert_eq(q, swarm_hist_quantile(&h, 0.0), "NaN must read as q=0: got %llu",
		     (unsigned long long)q);
}
