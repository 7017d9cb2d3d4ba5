/* test_sim_bound.c: swarm-sim's clairvoyant bound (tools/sim_bound.c): the lower bound against
 * values derived by hand on evenly spaced arrivals (one burst, two bursts a short gap apart,
 * two a long gap apart), the clairvoyant schedule's replay reaching static provisioning's
 * attainment on them, the bound below every policy's device-seconds on seeded bursty
 * traces, and determinism.
 *
 * The hand cases: 2000 req/s evenly spaced (50 per 25 ms slot), batches of up to 8 at
 * 2 ms + 1 ms a row (800 req/s at best), objective 50 ms (slots of 25 ms), warm-up 1 s.
 * Slot i's devices come from windows of m slots within slots i+1 .. i+37 ((1 s - 50 ms) /
 * 25 ms - 1): ceil(50 m * 10 ms / (8 * (25 m + 50) ms)) = ceil(2.5 m / (m + 2)): 1 for m = 1,
 * 2 for m = 2..8, 3 from m = 9. A burst of slots S..E (E the last) is thus needed at 1 in
 * slot S-37, 2 in S-36..S-30, 3 from S-29 to E-9, 2 in E-8..E-2, 1 in E-1: 3 (E - S + 21)
 * + 30 slot-devices.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/sim.h"

/* Writes 2000 req/s evenly spaced over each [from, to) of the bursts to a temporary csv and
 * returns its "csv:PATH" (static storage). */
static const char *even_bursts(const double (*bursts)[2], size_t n)
{
	static char spec[64];
	char path[] = "/tmp/swarm-sim-bound-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	FILE *f = fdopen(fd, "w");
	cr_assert(f);
	for (size_t b = 0; b < n; b++) {
		long k_end = lround((bursts[b][1] - bursts[b][0]) * 2000);
		for (long k = 0; k < k_end; k++)
			fprintf(f, "%.4f\n", bursts[b][0] + (double)k / 2000);
	}
	cr_assert_eq(fclose(f), 0);
	snprintf(spec, sizeof spec, "csv:%s", path);
	return spec;
}

/* A trace and the hand cases' options: the defaults' service (800 req/s at best), 8
 * devices, 1 warm at 0, a 1 s warm-up. */
struct fixture {
	struct swarm_sim_trace tr;
	struct swarm_sim_opts o;
	char err[256];
};

/* The pool of the hand cases. */
static void hand_pool(struct swarm_sim_opts *o)
{
	o->max_devices = 8;
	o->start_devices = 1;
	o->warmup_ms = 1000;
}

static void setup(struct fixture *f, const char *spec)
{
	memset(f, 0, sizeof *f);
	cr_assert_eq(swarm_sim_trace_parse(spec, &f->tr, f->err, sizeof f->err), 0, "%s: %s", spec,
		     f->err);
	swarm_sim_opts_default(&f->o);
	f->o.trace = &f->tr;
	hand_pool(&f->o);
}

static struct swarm_sim_bound bound(struct fixture *f, uint64_t misses)
{
	struct swarm_sim_bound b;
	int rc = swarm_sim_bound(&f->o, misses, &b, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "swarm_sim_bound: %d %s", rc, f->err);
	return b;
}

static struct swarm_sim_report run(struct fixture *f, uint32_t static_devices)
{
	struct swarm_sim_opts o = f->o;
	o.static_devices = static_devices;
	struct swarm_sim_report r;
	int rc = swarm_sim_run(&o, &r, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "swarm_sim_run: %d %s", rc, f->err);
	return r;
}

#define assert_near(a, b, tol)                                                              \
	cr_assert(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a, \
		  (double)(a), (double)(b))

/* The clairvoyant replay reaches static at the maximum's attainment, at no fewer
 * device-seconds than the bound and within `within` of it. */
static void clairvoyant_reaches_static(struct fixture *f, const struct swarm_sim_bound *b,
				       double within)
{
	struct swarm_sim_report st = run(f, f->o.max_devices), r;
	struct swarm_sim_clairvoyant c;
	int rc = swarm_sim_clairvoyant_run(&f->o, st.met, &r, &c, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "clairvoyant: %d %s", rc, f->err);
	cr_assert(c.reached, "met %llu of static's %llu at util %.3f", (unsigned long long)r.met,
		  (unsigned long long)st.met, c.utilization);
	cr_assert_geq(r.met, st.met);
	cr_assert(r.device_seconds >= b->device_seconds, "clairvoyant %.3f below the bound %.3f",
		  r.device_seconds, b->device_seconds);
	cr_assert(r.device_seconds <= within * b->device_seconds,
		  "clairvoyant %.3f above %.2f x the bound %.3f", r.device_seconds, within,
		  b->device_seconds);
	swarm_sim_report_free(&st);
	swarm_sim_report_free(&r);
}

/* The bound of evenly spaced bursts over duration_s, which must be want; and the replay. */
static struct swarm_sim_bound hand_case(const double (*bursts)[2], size_t n, double duration_s,
					double want)
{
	const char *spec = even_bursts(bursts, n);
	struct fixture f;
	setup(&f, spec);
	f.o.duration_s = duration_s;
	struct swarm_sim_bound b = bound(&f, 0);
	assert_near(b.device_seconds, want, 1e-9);
	clairvoyant_reaches_static(&f, &b, 1.05);
	swarm_sim_trace_free(&f.tr);
	unlink(spec + 4);
	return b;
}

Test(tools_sim_bound, one_burst_needs_three_devices_and_their_warm_up)
{
	/* Slots 400..2799: 3 * (2399 + 21) + 30 = 7290 slot-devices of 25 ms. */
	const double bursts[][2] = { { 10, 70 } };
	struct swarm_sim_bound b = hand_case(bursts, 1, 80, 182.25);
	cr_assert_eq(b.requests, 120000);
	assert_near(b.device_rate, 800, 1e-9);
	assert_near(b.slot_s, 0.025, 1e-12);
	assert_near(b.level_device_seconds, 182.25, 1e-9);
	assert_near(b.fluid_device_seconds, 150, 1e-9);
	cr_assert_eq(b.peak, 3);
}

Test(tools_sim_bound, a_gap_shorter_than_the_warm_up_is_kept_on)
{
	/* Slots 400..1199 and 1220..2019: the 0.5 s gap keeps 3 on throughout (slot i needs 3
	 * while either burst holds 9 of its next 37 slots): one burst from 400 to 2019, 3 *
	 * (1619 + 21) + 30 = 4950 slot-devices: a 40 s burst's 122.25 plus 3 * 0.5 s. */
	const double bursts[][2] = { { 10, 30 }, { 30.5, 50.5 } };
	hand_case(bursts, 2, 60, 123.75);
}

Test(tools_sim_bound, a_gap_longer_than_the_warm_up_is_parked_and_warmed_again)
{
	/* Slots 400..1199 and 1400..2199: two bursts of 3 * (799 + 21) + 30 = 2490 slot-devices
	 * each, none in between: 124.5, where a 40 s burst alone is 122.25. */
	const double bursts[][2] = { { 10, 30 }, { 35, 55 } };
	hand_case(bursts, 2, 65, 124.5);
}

Test(tools_sim_bound, misses_allowed_lower_the_bound)
{
	/* 50 misses allowed take 50 from every window: a window of 9 slots then needs
	 * ceil(400 * 10 / (8 * 275)) = 2, so 3 only from 11 slots; never more than with none. */
	const double bursts[][2] = { { 10, 70 } };
	const char *spec = even_bursts(bursts, 1);
	struct fixture f;
	setup(&f, spec);
	f.o.duration_s = 80;
	struct swarm_sim_bound none = bound(&f, 0), some = bound(&f, 50);
	cr_assert(some.device_seconds < none.device_seconds, "%.3f vs %.3f", some.device_seconds,
		  none.device_seconds);
	assert_near(some.fluid_device_seconds, (120000 - 50) / 800.0, 1e-9);
	swarm_sim_trace_free(&f.tr);
	unlink(spec + 4);
}

Test(tools_sim_bound, bound_is_below_every_policy_on_bursty_traces)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct fixture f;
		setup(&f, "mmpp:500,4000,30,10,300");
		f.o.seed = seed;
		f.o.max_devices = 16;
		f.o.start_devices = 2;
		f.o.warmup_ms = 2000;
		struct swarm_sim_bound b = bound(&f, 0);
		struct swarm_sim_report at = run(&f, 0), st = run(&f, 16), s6 = run(&f, 6);
		cr_assert_eq(st.met, st.requests, "seed %llu: static:16 misses",
			     (unsigned long long)seed);
		cr_assert(b.device_seconds <= at.device_seconds && b.device_seconds > 0,
			  "seed %llu: bound %.1f, auto %.1f", (unsigned long long)seed,
			  b.device_seconds, at.device_seconds);
		cr_assert(b.device_seconds <= st.device_seconds,
			  "seed %llu: bound %.1f, static %.1f", (unsigned long long)seed,
			  b.device_seconds, st.device_seconds);
		/* The bound for static:6's misses (if any) is below its device-seconds too. */
		struct swarm_sim_bound b6 = bound(&f, s6.requests - s6.met);
		cr_assert(b6.device_seconds <= s6.device_seconds,
			  "seed %llu: bound %.1f, static:6 %.1f", (unsigned long long)seed,
			  b6.device_seconds, s6.device_seconds);
		clairvoyant_reaches_static(&f, &b, 1.2);
		swarm_sim_report_free(&at);
		swarm_sim_report_free(&st);
		swarm_sim_report_free(&s6);
		swarm_sim_trace_free(&f.tr);
	}
}

Test(tools_sim_bound, same_seed_same_bound_and_schedule)
{
	struct fixture f;
	setup(&f, "mmpp:500,4000,30,10,300");
	f.o.max_devices = 16;
	struct swarm_sim_bound a = bound(&f, 0), b = bound(&f, 0);
	cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
	struct swarm_sim_schedule x, y;
	cr_assert_eq(swarm_sim_schedule_build(&f.o, 0.9, &x, f.err, sizeof f.err), 0, "%s", f.err);
	cr_assert_eq(swarm_sim_schedule_build(&f.o, 0.9, &y, f.err, sizeof f.err), 0, "%s", f.err);
	cr_assert_eq(x.n, y.n);
	cr_assert_gt(x.n, 0);
	cr_assert_eq(memcmp(x.v, y.v, x.n * sizeof *x.v), 0);
	f.o.seed = 2;
	struct swarm_sim_bound c = bound(&f, 0);
	cr_assert(c.device_seconds != a.device_seconds, "another seed, the same bound %.3f",
		  a.device_seconds);
	swarm_sim_schedule_free(&x);
	swarm_sim_schedule_free(&y);
	cr_assert_eq(swarm_sim_schedule_build(&f.o, 1.5, &x, f.err, sizeof f.err), -EINVAL);
	swarm_sim_trace_free(&f.tr);
}
