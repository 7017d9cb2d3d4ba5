/* test_metrics_text.c: the Prometheus exposition writer (runtime/swarmd/metrics_text.h) and
 * the stats page's model table and power-of-two histograms (runtime/stats.h) it exposes:
 * label values escaped, HELP escaped, histograms cumulative with +Inf equal to _count, the
 * bucket bounds exact, failure reasons, and a model table that a new worker adopts.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/stats.h"
#include "runtime/swarmd/metrics_text.h"

/* The text written so far (the writer keeps it NUL-terminated). */
static char *finish(struct mtext *t)
{
	size_t len = 0;
	char *s = mtext_finish(t, &len);
	cr_assert_not_null(s, "the writer failed");
	cr_assert_eq(strlen(s), len, "length %zu, text %zu", len, strlen(s));
	return s;
}

Test(metrics_text, label_value_escapes_backslash_quote_and_newline)
{
	struct mtext t;
	mtext_init(&t);
	struct mlabel l[2] = { { "model", "a\\b\"c\nd" }, { "device", "cpu:0" } };
	mtext_sample(&t, "swarm_requests_total", l, 2, 7);
	char *s = finish(&t);
	cr_assert_str_eq(s, "swarm_requests_total{model=\"a\\\\b\\\"c\\nd\",device=\"cpu:0\"} 7\n");
	free(s);
}

Test(metrics_text, a_plain_label_value_goes_as_it_is)
{
	struct mtext t;
	mtext_init(&t);
	mtext_sample(&t, "x", &(struct mlabel){ "model", "ranker-v2_é" }, 1, 1);
	char *s = finish(&t);
	cr_assert_str_eq(s, "x{model=\"ranker-v2_é\"} 1\n");
	free(s);
}

Test(metrics_text, help_escapes_backslash_and_newline_not_quotes)
{
	struct mtext t;
	mtext_init(&t);
	mtext_family(&t, "swarm_x_total", "counter", "a \"b\" c\\d\ne");
	char *s = finish(&t);
	cr_assert_str_eq(s,
			 "# HELP swarm_x_total a \"b\" c\\\\d\\ne\n# TYPE swarm_x_total counter\n");
	free(s);
}

Test(metrics_text, sample_without_labels_and_values)
{
	struct mtext t;
	mtext_init(&t);
	mtext_sample(&t, "a", NULL, 0, 0);
	mtext_sample(&t, "b", NULL, 0, 18446744073709551615.0); /* 2^64: not exact, %.17g */
	mtext_sample(&t, "c", NULL, 0, 0.25);
	mtext_sample(&t, "d", NULL, 0, 9007199254740991.0); /* 2^53 - 1: an integer */
	char *s = finish(&t);
	cr_assert_str_eq(s, "a 0\nb 1.8446744073709552e+19\nc 0.25\nd 9007199254740991\n");
	free(s);
}

/* The counts of each `_bucket` line of s in order, the +Inf one last; *n their number. */
static void bucket_counts(const char *s, uint64_t *out, int *n, uint64_t *count, double *sum)
{
	*n = 0;
	for (const char *p = s; (p = strstr(p, "_bucket{")); p++) {
		const char *sp = strchr(p, '}');
		out[(*n)++] = strtoull(sp + 2, NULL, 10);
	}
	const char *c = strstr(s, "_count{");
	const char *m = strstr(s, "_sum{");
	cr_assert(c && m, "no _count or _sum in:\n%s", s);
	*count = strtoull(strchr(c, '}') + 2, NULL, 10);
	*sum = strtod(strchr(m, '}') + 2, NULL);
}

Test(metrics_text, histogram_is_cumulative_and_inf_equals_count)
{
	struct swarm_p2hist h;
	memset(&h, 0, sizeof h);
	uint64_t values[] = { 0, 1, 2, 3, 255, 256, 257, 1000, 1u << 20, 1ull << 40, 1ull << 62 };
	uint64_t sum = 0;
	for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
		swarm_p2_add(&h, values[i]);
		sum += values[i];
	}
	struct mtext t;
	mtext_init(&t);
	mtext_histogram(&t, "lat_seconds", &(struct mlabel){ "device", "cpu:0" }, 1, &h, 8, 36,
			1e-9);
	char *s = finish(&t);
	uint64_t c[64], count;
	double got_sum;
	int n;
	bucket_counts(s, c, &n, &count, &got_sum);
	cr_assert_eq(n, 36 - 8 + 1 + 1, "%d bucket lines:\n%s", n, s);
	for (int i = 1; i < n; i++)
		cr_assert_geq(c[i], c[i - 1], "bucket %d (%llu) below bucket %d (%llu):\n%s", i,
			      (unsigned long long)c[i], i - 1, (unsigned long long)c[i - 1], s);
	cr_assert_eq(c[n - 1], count, "+Inf %llu, _count %llu", (unsigned long long)c[n - 1],
		     (unsigned long long)count);
	cr_assert_eq(count, 11);
	/* le=2^8 ns holds 0, 1, 2, 3, 255 and 256 (<= 256): exactly six */
	cr_assert(strstr(s, "lat_seconds_bucket{device=\"cpu:0\",le=\"2.56e-07\"} 6\n"), "%s", s);
	cr_assert(strstr(s, "lat_seconds_bucket{device=\"cpu:0\",le=\"5.12e-07\"} 7\n"), "%s", s);
	/* 2^40 and 2^62 ns are beyond the last bound (2^36 ns): only in +Inf */
	cr_assert(strstr(s, "le=\"68.719476736\"} 9\n"), "%s", s);
	cr_assert(strstr(s, "le=\"+Inf\"} 11\n"), "%s", s);
	cr_assert_float_eq(got_sum, (double)sum * 1e-9, (double)sum * 1e-15);
	free(s);
}

Test(metrics_text, p2_buckets_hold_exactly_up_to_their_power_of_two)
{
	cr_assert_eq(swarm_p2_bucket(0), 0);
	cr_assert_eq(swarm_p2_bucket(1), 0);
	for (uint32_t i = 1; i < SWARM_P2_BUCKETS - 1; i++) {
		uint64_t p = 1ull << i;
		cr_assert_eq(swarm_p2_bucket(p), i, "2^%u in bucket %u", i, swarm_p2_bucket(p));
		cr_assert_eq(swarm_p2_bucket(p + 1), i + 1, "2^%u+1 in bucket %u", i,
			     swarm_p2_bucket(p + 1));
		cr_assert_eq(swarm_p2_bucket(p / 2 + 1), i, "2^%u/2+1", i);
	}
	cr_assert_eq(swarm_p2_bucket(UINT64_MAX), SWARM_P2_BUCKETS - 1);
}

Test(metrics_text, failure_reasons_by_status)
{
	cr_assert_str_eq(swarm_fail_reason_name(swarm_fail_reason(-ETIMEDOUT)), "deadline");
	cr_assert_str_eq(swarm_fail_reason_name(swarm_fail_reason(-EINVAL)), "bad_request");
	cr_assert_str_eq(swarm_fail_reason_name(swarm_fail_reason(-ENOTSUP)), "unsupported");
	cr_assert_str_eq(swarm_fail_reason_name(swarm_fail_reason(-EIO)), "execution");
	cr_assert_str_eq(swarm_fail_reason_name(SWARM_FAIL_N), "unknown");
}

Test(metrics_text, model_table_entries_are_found_again_and_survive_a_new_worker)
{
	struct swarm_worker_stats *st;
	int fd = swarm_stats_create(&st);
	cr_assert_geq(fd, 0, "swarm_stats_create: %d", fd);
	struct swarm_model_stats *a = swarm_stats_model(st, "ranker", 2);
	struct swarm_model_stats *b = swarm_stats_model(st, "ranker", 3);
	cr_assert_neq(a, b, "two versions share an entry");
	cr_assert_eq(swarm_stats_model(st, "ranker", 2), a);
	cr_assert_str_eq(a->name, "ranker");
	cr_assert_eq(a->valid, 1);
	swarm_model_stats_request(a, 4, 0);
	swarm_model_stats_request(a, 2, -ETIMEDOUT);
	swarm_stat_set32(&a->sessions, 3);
	swarm_stat_add(&st->requests, 2);
	/* The worker dies and the next one starts: its own head goes, the table stays. */
	swarm_stats_reset_worker(st);
	cr_assert_eq(st->requests, 0);
	cr_assert_eq(a->sessions, 0, "the sessions gauge outlived its worker");
	cr_assert_eq(swarm_stats_model(st, "ranker", 2), a, "not adopted");
	cr_assert_eq(a->requests, 2);
	cr_assert_eq(a->rows, 6);
	cr_assert_eq(a->failures[SWARM_FAIL_DEADLINE], 1);
	swarm_stats_unmap(st);
	close(fd);
}

Test(metrics_text, a_full_table_counts_the_rest_as_other)
{
	struct swarm_worker_stats *st;
	int fd = swarm_stats_create(&st);
	cr_assert_geq(fd, 0);
	char name[16];
	for (uint32_t i = 0; i < SWARM_STATS_MAX_MODELS - 1; i++) {
		snprintf(name, sizeof name, "m%u", i);
		cr_assert_eq(swarm_stats_model(st, name, 1), &st->models[i]);
	}
	struct swarm_model_stats *o = swarm_stats_model(st, "late", 1);
	cr_assert_eq(o, &st->models[SWARM_STATS_MAX_MODELS - 1]);
	cr_assert_str_eq(o->name, "_other");
	cr_assert_eq(o->version, 0);
	cr_assert_eq(swarm_stats_model(st, "later", 9), o);
	swarm_stats_unmap(st);
	close(fd);
}
