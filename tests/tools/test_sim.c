/* test_sim.c: swarm-sim's simulation (tools/sim.h) against figures computed by hand on tiny
 * traces: exact latencies, queueing and batching of simultaneous arrivals, device-seconds,
 * the warm-up delay when scaling from zero, the policy scaling up and back down on a step;
 * the trace parser's errors (with line numbers) and generators, the multi-state classes'
 * statistics against their stationary distributions; the SVG's shape.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/sim.h"

/* Writes text to a fresh temporary file and returns "csv:PATH" (static storage). */
static const char *csv_trace(const char *text)
{
	static char spec[64];
	char path[] = "/tmp/swarm-sim-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	size_t len = strlen(text);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(spec, sizeof spec, "csv:%s", path);
	return spec;
}

static void csv_unlink(const char *spec) { unlink(spec + 4); }

struct fixture {
	struct swarm_sim_trace tr;
	struct swarm_sim_opts o;
	struct swarm_sim_report r;
	char err[256];
};

/* Parses spec and sets the options of the hand-computed cases: batches of one taking 10 ms
 * flat, static on one device. */
static void setup(struct fixture *f, const char *spec)
{
	memset(f, 0, sizeof *f);
	int rc = swarm_sim_trace_parse(spec, &f->tr, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "parse %s: %d %s", spec, rc, f->err);
	swarm_sim_opts_default(&f->o);
	f->o.trace = &f->tr;
	f->o.static_devices = 1;
	f->o.base_us = 10000;
	f->o.per_row_us = 0;
	f->o.max_batch = 1;
}

static void run(struct fixture *f)
{
	int rc = swarm_sim_run(&f->o, &f->r, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "swarm_sim_run: %d %s", rc, f->err);
}

static void teardown(struct fixture *f)
{
	swarm_sim_report_free(&f->r);
	swarm_sim_trace_free(&f->tr);
}

#define assert_near(a, b, tol)                                                              \
	cr_assert(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a, \
		  (double)(a), (double)(b))

/* ---- hand-computed runs ------------------------------------------------------------------ */

Test(tools_sim, three_arrivals_on_one_device_take_the_batch_time)
{
	const char *spec = csv_trace("# three arrivals, one a second\n1.0\n2.0\n3.0\n");
	struct fixture f;
	setup(&f, spec);
	f.o.duration_s = 4;
	run(&f);
	cr_assert_eq(f.r.requests, 3, "requests %llu", (unsigned long long)f.r.requests);
	cr_assert_eq(f.r.met, 3);
	assert_near(f.r.attainment, 1.0, 0);
	assert_near(f.r.p50_us, 10000, 1e-6);
	assert_near(f.r.p99_us, 10000, 1e-6);
	assert_near(f.r.max_us, 10000, 1e-6);
	assert_near(f.r.duration_s, 4, 1e-9);
	assert_near(f.r.device_seconds, 4, 1e-9);
	cr_assert_eq(f.r.batches, 3);
	cr_assert_eq(f.r.wakes + f.r.drains, 0);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, csv_trace_ends_at_its_last_arrival_plus_the_tail)
{
	/* No --duration: the trace ends at 3.0 s, its last request completes at 3.01 s, and
	 * the run (and the device-seconds of one device) lasts until then. */
	const char *spec = csv_trace("1.0\n2.0\n3.0\n");
	struct fixture f;
	setup(&f, spec);
	run(&f);
	assert_near(f.r.duration_s, 3.01, 1e-9);
	assert_near(f.r.device_seconds, 3.01, 1e-9);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, simultaneous_arrivals_queue_behind_each_other)
{
	/* max_batch 1: the second waits for the first: 10 ms and 20 ms. */
	const char *spec = csv_trace("1.0\n1.0\n");
	struct fixture f;
	setup(&f, spec);
	f.o.duration_s = 2;
	f.o.objective_us = 15000;
	run(&f);
	cr_assert_eq(f.r.requests, 2);
	cr_assert_eq(f.r.met, 1, "met %llu", (unsigned long long)f.r.met);
	assert_near(f.r.attainment, 0.5, 0);
	assert_near(f.r.p50_us, 10000, 1e-6);
	assert_near(f.r.p99_us, 20000, 1e-6);
	assert_near(f.r.max_us, 20000, 1e-6);
	assert_near(f.r.mean_us, 15000, 1e-6);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, simultaneous_arrivals_share_a_batch)
{
	/* max_batch 2, 10 ms + 5 ms per row: one batch of two, 20 ms for both; the third,
	 * arriving while it runs, waits for it and runs alone: 1.020 + 0.015 - 1.005. */
	const char *spec = csv_trace("1.0\n1.0\n1.005\n");
	struct fixture f;
	setup(&f, spec);
	f.o.duration_s = 2;
	f.o.max_batch = 2;
	f.o.per_row_us = 5000;
	run(&f);
	cr_assert_eq(f.r.batches, 2, "batches %llu", (unsigned long long)f.r.batches);
	assert_near(f.r.p50_us, 20000, 1e-6);
	assert_near(f.r.max_us, 30000, 1e-3);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, shortest_queue_spreads_simultaneous_arrivals)
{
	/* Two devices, two simultaneous arrivals: one each, both 10 ms. */
	const char *spec = csv_trace("1.0\n1.0\n");
	struct fixture f;
	setup(&f, spec);
	f.o.duration_s = 2;
	f.o.static_devices = 2;
	run(&f);
	assert_near(f.r.max_us, 10000, 1e-6);
	assert_near(f.r.device_seconds, 4, 1e-9);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, static_n_uses_n_device_seconds_per_second)
{
	struct fixture f;
	setup(&f, "steps:50@0,200@5");
	f.o.static_devices = 3;
	f.o.duration_s = 10;
	run(&f);
	/* The run ends at 10 s or with the last request in service then. */
	cr_assert(f.r.duration_s >= 10 && f.r.duration_s < 10.1, "duration %.6f", f.r.duration_s);
	assert_near(f.r.device_seconds, 3 * f.r.duration_s, 1e-6);
	assert_near(f.r.mean_devices, 3, 1e-9);
	cr_assert_eq(f.r.peak_devices, 3);
	cr_assert_eq(f.r.wakes + f.r.drains, 0);
	cr_assert_eq(f.r.decisions, 0, "static runs never ask the policy");
	teardown(&f);
}

Test(tools_sim, scale_from_zero_holds_the_request_for_the_warm_up)
{
	/* Nothing in service: the arrival at 1 s is held, wakes a device at once, which is
	 * warm at 3 s; the request completes at 3.010 s. The device is on from 1 s to 4 s. */
	const char *spec = csv_trace("1.0\n");
	struct fixture f;
	setup(&f, spec);
	f.o.static_devices = 0;
	f.o.min_devices = 0;
	f.o.start_devices = 0;
	f.o.max_devices = 4;
	f.o.warmup_ms = 2000;
	f.o.duration_s = 4;
	run(&f);
	cr_assert_eq(f.r.requests, 1);
	cr_assert_eq(f.r.refused + f.r.unfinished, 0, "held, never dropped");
	assert_near(f.r.max_us, 2010000, 1e-3);
	assert_near(f.r.p50_us, 2010000, 1e-3);
	assert_near(f.r.attainment, 0, 0);
	cr_assert_eq(f.r.wakes, 1, "wakes %llu", (unsigned long long)f.r.wakes);
	cr_assert_eq(f.r.wakes_by_reason[SWARM_AS_R_FROM_ZERO], 1);
	assert_near(f.r.device_seconds, 3, 1e-9);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, swarmd_measure_wakes_from_zero_at_its_next_tick)
{
	/* As swarmd: the held request is seen at the next tick (2 s), the device is warm at
	 * 4 s, the request completes at 4.010 s: 2.510 s after its arrival at 1.5 s. */
	const char *spec = csv_trace("1.5\n");
	struct fixture f;
	setup(&f, spec);
	f.o.static_devices = 0;
	f.o.min_devices = 0;
	f.o.start_devices = 0;
	f.o.warmup_ms = 2000;
	f.o.duration_s = 5;
	f.o.measure = SWARM_SIM_MEASURE_SWARMD;
	run(&f);
	assert_near(f.r.max_us, 2510000, 1e-3);
	cr_assert_eq(f.r.wakes_by_reason[SWARM_AS_R_FROM_ZERO], 1);
	assert_near(f.r.device_seconds, 3, 1e-9);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, requests_arriving_during_the_warm_up_are_held_too)
{
	/* Arrivals at 1.0 and 2.0 while the device warms until 3.0: both run from 3.0, one
	 * batch of two (max_batch 8, 10 ms flat): 2.010 s and 1.010 s. */
	const char *spec = csv_trace("1.0\n2.0\n");
	struct fixture f;
	setup(&f, spec);
	f.o.static_devices = 0;
	f.o.min_devices = 0;
	f.o.start_devices = 0;
	f.o.max_batch = 8;
	f.o.warmup_ms = 2000;
	f.o.duration_s = 4;
	run(&f);
	cr_assert_eq(f.r.batches, 1);
	assert_near(f.r.max_us, 2010000, 1e-3);
	assert_near(f.r.mean_us, 1510000, 1e-3);
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, held_backlog_spreads_over_the_devices_as_they_come)
{
	/* 3000 req/s from nothing, 2 s warm-ups: 6000 requests are held before the first device
	 * is warm. Alone at 800 req/s it would take 7.5 s over them; the devices woken after it
	 * take their share of the backlog, so none waits that long. */
	struct fixture f;
	setup(&f, "steps:3000@1");
	f.o.static_devices = 0;
	f.o.min_devices = 0;
	f.o.start_devices = 0;
	f.o.max_devices = 32;
	f.o.base_us = 2000;
	f.o.per_row_us = 1000;
	f.o.max_batch = 8;
	f.o.warmup_ms = 2000;
	f.o.duration_s = 60;
	run(&f);
	cr_assert_eq(f.r.refused + f.r.unfinished, 0);
	cr_assert(f.r.max_us < 6e6, "max latency %.0f us", f.r.max_us);
	cr_assert_geq(f.r.peak_devices, 8, "peak %u", f.r.peak_devices);
	teardown(&f);
}

Test(tools_sim, policy_scales_up_on_a_step_and_back_down)
{
	/* 50 req/s, then 3000 (about ten devices' worth at 0.6) for 40 s, then 50 again,
	 * with short windows so that the test takes a fraction of a second. */
	struct fixture f;
	setup(&f, "steps:50@0,3000@20,50@60");
	f.o.static_devices = 0;
	f.o.min_devices = 1;
	f.o.max_devices = 32;
	f.o.base_us = 2000;
	f.o.per_row_us = 1000;
	f.o.max_batch = 8;
	f.o.warmup_ms = 500;
	f.o.short_window_s = 2;
	f.o.as.stable_window_ns = 10000000000ull;
	f.o.as.cooldown_ns = 1000000000ull;
	f.o.as.peak_window_ns = 20000000000ull; /* the burst memory shorter than the run */
	f.o.duration_s = 150;
	f.o.keep_ticks = 1;
	run(&f);
	cr_assert_eq(f.r.n_ticks, 150, "ticks %zu", f.r.n_ticks);
	const struct swarm_sim_tick *before = &f.r.ticks[18], *during = &f.r.ticks[50],
				    *after = &f.r.ticks[149];
	cr_assert_eq(before->active, 1, "at %.0f s: %u active", before->t_s, before->active);
	cr_assert_geq(during->active, 8, "at %.0f s: %u active", during->t_s, during->active);
	cr_assert_leq(after->active + after->warming, 2, "at %.0f s: %u active, %u warming",
		      after->t_s, after->active, after->warming);
	cr_assert_geq(f.r.wakes, 7, "wakes %llu", (unsigned long long)f.r.wakes);
	cr_assert_geq(f.r.drains, 6, "drains %llu", (unsigned long long)f.r.drains);
	cr_assert_eq(f.r.decisions, 150);
	cr_assert_eq(f.r.refused + f.r.unfinished, 0);
	/* Fewer device-seconds than 32 always on, more than 1. */
	cr_assert(f.r.device_seconds < 32 * 150 && f.r.device_seconds > 150, "device_s %.1f",
		  f.r.device_seconds);
	teardown(&f);
}

Test(tools_sim, swarmd_measure_scales_up_and_down_without_p99)
{
	/* The step of the test above, measured as swarmd does (arrivals, a busy EWMA, no
	 * p99) at its 100 ms tick. */
	struct fixture f;
	setup(&f, "steps:50@0,3000@20,50@60");
	f.o.static_devices = 0;
	f.o.max_devices = 32;
	f.o.base_us = 2000;
	f.o.per_row_us = 1000;
	f.o.max_batch = 8;
	f.o.warmup_ms = 500;
	f.o.tick_ms = 100;
	f.o.short_window_s = 2;
	f.o.as.stable_window_ns = 10000000000ull;
	f.o.as.cooldown_ns = 1000000000ull;
	f.o.as.peak_window_ns = 20000000000ull;
	f.o.duration_s = 150;
	f.o.keep_ticks = 1;
	f.o.measure = SWARM_SIM_MEASURE_SWARMD;
	run(&f);
	cr_assert_eq(f.r.n_ticks, 1500, "ticks %zu", f.r.n_ticks);
	uint32_t peak = 0;
	for (size_t i = 0; i < f.r.n_ticks; i++) {
		cr_assert_eq(f.r.ticks[i].p99_ns, 0, "swarmd passes no p99");
		if (f.r.ticks[i].active > peak)
			peak = f.r.ticks[i].active;
	}
	cr_assert_geq(peak, 8, "peak %u active", peak);
	const struct swarm_sim_tick *after = &f.r.ticks[1499];
	cr_assert_leq(after->active + after->warming, 2, "at %.0f s: %u active, %u warming",
		      after->t_s, after->active, after->warming);
	teardown(&f);
}

Test(tools_sim, a_backlog_moves_to_the_devices_woken_after_it)
{
	/* 4 devices of 800 req/s at full batches; 1 active when 2400 req/s start: for the
	 * 2 s warm-up the queue grows by 1600 a second on the first device. Woken later, the
	 * others take the oldest of it (--backlog move), or leave it where it is (stay). */
	struct swarm_sim_report r[2];
	for (int i = 0; i < 2; i++) {
		struct fixture f;
		setup(&f, "steps:2400@0");
		f.o.static_devices = 0;
		f.o.max_devices = 4;
		f.o.base_us = 2000;
		f.o.per_row_us = 1000;
		f.o.max_batch = 8;
		f.o.warmup_ms = 2000;
		f.o.duration_s = 20;
		f.o.seed = 3;
		f.o.backlog = i ? SWARM_SIM_BACKLOG_STAY : SWARM_SIM_BACKLOG_MOVE;
		run(&f);
		r[i] = f.r;
		cr_assert_eq(f.r.refused + f.r.unfinished, 0);
		teardown(&f);
	}
	cr_assert_gt(r[0].moved, 1000, "moved %llu", (unsigned long long)r[0].moved);
	cr_assert_eq(r[1].moved, 0, "stay moved %llu", (unsigned long long)r[1].moved);
	cr_assert_eq(r[0].requests, r[1].requests, "the same trace");
	/* Shared, the backlog is over sooner: its last request waits less. (Attainment may go
	 * either way: the oldest, already late, move ahead of newer requests on the devices
	 * they move to, as a session's queue does when it moves with its ring.) */
	cr_assert_lt(r[0].max_us, r[1].max_us, "max %.0f us moving, %.0f staying", r[0].max_us,
		     r[1].max_us);
	cr_assert_eq(r[0].met + (r[0].requests - r[0].met), r[1].requests);
}

Test(tools_sim, schedule_switches_the_devices_it_names)
{
	/* Device 0 warm at 0 and drained at 2.5 s; device 1 woken at 1 s, warm at 2 s, on to
	 * the end (5 s): 2.5 + 4 device-seconds. The arrival at 0.5 s is served by device 0,
	 * the one at 3.5 s by device 1, 10 ms each. */
	const char *spec = csv_trace("0.5\n3.5\n");
	struct fixture f;
	setup(&f, spec);
	struct swarm_sim_switch sw[] = {
		{ 0, 0, SWARM_SIM_SWITCH_WARM },
		{ 1000000000ull, 1, SWARM_SIM_SWITCH_WAKE },
		{ 2500000000ull, 0, SWARM_SIM_SWITCH_OFF },
	};
	struct swarm_sim_schedule sched = { sw, 3 };
	f.o.static_devices = 0;
	f.o.max_devices = 2;
	f.o.warmup_ms = 1000;
	f.o.duration_s = 5;
	f.o.schedule = &sched;
	run(&f);
	cr_assert_eq(f.r.met, 2, "met %llu", (unsigned long long)f.r.met);
	assert_near(f.r.max_us, 10000, 1e-6);
	assert_near(f.r.device_seconds, 6.5, 1e-9);
	cr_assert_eq(f.r.wakes, 1);
	cr_assert_eq(f.r.drains, 1);
	cr_assert_eq(f.r.decisions, 0, "a schedule asks no policy");
	teardown(&f);
	csv_unlink(spec);
}

Test(tools_sim, same_seed_same_run)
{
	struct fixture a, b;
	setup(&a, "mmpp:100,2000,20,5,120");
	setup(&b, "mmpp:100,2000,20,5,120");
	a.o.static_devices = b.o.static_devices = 0;
	run(&a);
	run(&b);
	cr_assert_eq(a.r.requests, b.r.requests);
	cr_assert_eq(a.r.met, b.r.met);
	cr_assert_eq(a.r.wakes, b.r.wakes);
	assert_near(a.r.device_seconds, b.r.device_seconds, 0);
	assert_near(a.r.p99_us, b.r.p99_us, 0);
	teardown(&a);
	teardown(&b);
}

Test(tools_sim, bad_options_are_einval)
{
	struct fixture f;
	setup(&f, "steps:10@0");
	f.o.max_batch = 0;
	cr_assert_eq(swarm_sim_run(&f.o, &f.r, f.err, sizeof f.err), -EINVAL);
	cr_assert(strstr(f.err, "max batch"), "err: %s", f.err);
	f.o.max_batch = 1;
	f.o.static_devices = 0;
	f.o.min_devices = 5;
	f.o.max_devices = 4;
	cr_assert_eq(swarm_sim_run(&f.o, &f.r, f.err, sizeof f.err), -EINVAL);
	cr_assert(strstr(f.err, "min devices"), "err: %s", f.err);
	teardown(&f);
}

/* ---- traces ------------------------------------------------------------------------------ */

static void parse_fails(const char *spec, int want, const char *needle)
{
	struct swarm_sim_trace tr;
	char err[256] = "";
	int rc = swarm_sim_trace_parse(spec, &tr, err, sizeof err);
	cr_assert_eq(rc, want, "%s: rc %d, expected %d (%s)", spec, rc, want, err);
	cr_assert(strstr(err, needle), "%s: message '%s' lacks '%s'", spec, err, needle);
}

Test(tools_sim_trace, csv_error_names_the_line)
{
	const char *spec = csv_trace("# header\n0.5\n\n1.5 # a comment\nabc\n2.5\n");
	parse_fails(spec, -EINVAL, "line 5");
	csv_unlink(spec);
	spec = csv_trace("0.5\n1.0,2.0\n");
	parse_fails(spec, -EINVAL, "line 2");
	csv_unlink(spec);
	spec = csv_trace("0.5\n-1\n");
	parse_fails(spec, -EINVAL, "line 2");
	csv_unlink(spec);
	spec = csv_trace("# nothing\n\n");
	parse_fails(spec, -EINVAL, "no arrivals");
	csv_unlink(spec);
	parse_fails("csv:/nonexistent/swarm-sim.csv", -ENOENT, "cannot open");
}

Test(tools_sim_trace, csv_comments_blank_lines_and_order)
{
	const char *spec = csv_trace("# t\r\n 3.0 \n\n1.0 # first\n2.0\r\n");
	struct swarm_sim_trace tr;
	char err[256];
	cr_assert_eq(swarm_sim_trace_parse(spec, &tr, err, sizeof err), 0, "%s", err);
	cr_assert_eq(tr.n_times, 3);
	cr_assert_eq(tr.times_ns[0], 1000000000ull);
	cr_assert_eq(tr.times_ns[2], 3000000000ull);
	assert_near(tr.duration_s, 3, 0);
	swarm_sim_trace_free(&tr);
	csv_unlink(spec);
}

Test(tools_sim_trace, spec_errors)
{
	parse_fails("steps:100@5,200@3", -EINVAL, "times must increase");
	parse_fails("steps:100", -EINVAL, "RATE@TIME");
	parse_fails("steps:-5@0", -EINVAL, ">= 0");
	parse_fails("steps:", -EINVAL, "no step");
	parse_fails("sine:100,50,60", -EINVAL, "MEAN,AMP,PERIOD_S,DURATION_S");
	parse_fails("sine:100,50,0,60", -EINVAL, "MEAN,AMP,PERIOD_S,DURATION_S");
	parse_fails("mmpp:1,2,3,4", -EINVAL, "LOW,HIGH");
	parse_fails("mmpp:1,2,3,4,5x", -EINVAL, "LOW,HIGH");
	parse_fails("poisson:5", -EINVAL, "unknown trace");
}

static uint64_t count_arrivals(const char *spec, uint64_t seed, double end_s)
{
	struct swarm_sim_trace tr;
	char err[256];
	cr_assert_eq(swarm_sim_trace_parse(spec, &tr, err, sizeof err), 0, "%s", err);
	struct swarm_sim_gen g;
	swarm_sim_gen_init(&g, &tr, seed, end_s > 0 ? end_s : tr.duration_s);
	uint64_t n = 0, prev = 0, t;
	while ((t = swarm_sim_gen_next(&g)) != UINT64_MAX) {
		cr_assert_geq(t, prev, "arrivals go back in time");
		prev = t;
		n++;
	}
	swarm_sim_trace_free(&tr);
	return n;
}

Test(tools_sim_trace, generators_give_their_mean_rate)
{
	/* Poisson counts: within 5 standard deviations (sqrt of the mean). */
	uint64_t n = count_arrivals("steps:0@0,1000@10,0@110", 1, 0);
	assert_near(n, 100000, 5 * sqrt(100000));
	n = count_arrivals("sine:500,400,100,1000", 1, 0);
	assert_near(n, 500000, 5 * sqrt(500000));
	/* mmpp: the states' times are random too; a long run is near the stationary mean,
	 * (100 * 30 + 2000 * 10) / 40 = 575 req/s. */
	n = count_arrivals("mmpp:100,2000,30,10,20000", 1, 0);
	assert_near(n / 20000.0, 575, 575 * 0.05);
}

Test(tools_sim_trace, seed_decides_the_arrivals)
{
	uint64_t a = count_arrivals("steps:1000@0", 1, 10);
	cr_assert_eq(a, count_arrivals("steps:1000@0", 1, 10));
	cr_assert_neq(a, count_arrivals("steps:1000@0", 2, 10));
}

/* ---- mmppn and the classes ---------------------------------------------------------------- */

/* Parses spec or fails the test. */
static void parse_ok(const char *spec, struct swarm_sim_trace *tr)
{
	char err[256];
	int rc = swarm_sim_trace_parse(spec, tr, err, sizeof err);
	cr_assert_eq(rc, 0, "parse %s: %d %s", spec, rc, err);
}

/* Walks spec's modulating chain (no arrivals) for end_s seconds: the fraction of the time
 * spent in each state into frac, and how often each state moved to each other in moves. */
static void walk_states(const char *spec, uint64_t seed, double end_s, double *frac,
			uint64_t moves[][SWARM_SIM_MMPP_MAX_STATES])
{
	struct swarm_sim_trace tr;
	parse_ok(spec, &tr);
	struct swarm_sim_gen g;
	swarm_sim_gen_init(&g, &tr, seed, end_s);
	double time[SWARM_SIM_MMPP_MAX_STATES] = { 0 };
	uint32_t state = g.state;
	while (g.state_end_s < end_s) {
		time[state] += g.state_end_s - g.t_s;
		uint32_t next = swarm_sim_gen_next_state(&g);
		cr_assert_neq(next, state, "state %u moved to itself", state);
		moves[state][next]++;
		state = next;
	}
	time[state] += end_s - g.t_s;
	for (uint32_t i = 0; i < tr.mmppn.n; i++)
		frac[i] = time[i] / end_s;
	swarm_sim_trace_free(&tr);
}

Test(tools_sim_trace, bursty_spends_the_stationary_share_of_time_in_each_state)
{
	/* The chain moves from each state to each other with probability 1/2: its transition
	 * matrix is doubly stochastic, so it visits the three states equally often (1/3 each).
	 * A state's share of the time is its visits times its mean stay over the sum of these:
	 * 40 / 69 quiet, 25 / 69 busy, 4 / 69 flash (a semi-Markov process). Over 10^6 s, about
	 * 43000 stays: each share within 3% of itself, each move within 3% of 1/2. */
	double frac[SWARM_SIM_MMPP_MAX_STATES];
	uint64_t moves[SWARM_SIM_MMPP_MAX_STATES][SWARM_SIM_MMPP_MAX_STATES] = { { 0 } };
	walk_states("bursty:1000000", 7, 1e6, frac, moves);
	const double want[3] = { 40.0 / 69, 25.0 / 69, 4.0 / 69 };
	for (int i = 0; i < 3; i++) {
		assert_near(frac[i], want[i], 0.03 * want[i]);
		uint64_t out = 0;
		for (int j = 0; j < 3; j++)
			out += moves[i][j];
		for (int j = 0; j < 3; j++)
			if (j != i)
				assert_near((double)moves[i][j] / (double)out, 0.5, 0.015);
	}
}

Test(tools_sim_trace, heavytail_bursts_take_their_mean_share_of_time)
{
	/* Exponential gaps of mean 120 s, Pareto bursts of mean 10 s (shape 2.5: a finite
	 * variance, so that the mean converges): 10 / 130 of the time in bursts. */
	double frac[SWARM_SIM_MMPP_MAX_STATES];
	uint64_t moves[SWARM_SIM_MMPP_MAX_STATES][SWARM_SIM_MMPP_MAX_STATES] = { { 0 } };
	walk_states("heavytail:300,12000,120,10,2.5,2000000", 3, 2e6, frac, moves);
	assert_near(frac[1], 10.0 / 130, 0.05 * 10.0 / 130);
}

/* Counts spec's arrivals (seed 1) in each of n equal parts of its duration. */
static void count_parts(const char *spec, uint64_t seed, uint64_t *count, size_t n)
{
	struct swarm_sim_trace tr;
	parse_ok(spec, &tr);
	struct swarm_sim_gen g;
	swarm_sim_gen_init(&g, &tr, seed, tr.duration_s);
	memset(count, 0, n * sizeof *count);
	uint64_t t;
	while ((t = swarm_sim_gen_next(&g)) != UINT64_MAX)
		count[(size_t)((double)t / 1e9 / tr.duration_s * (double)n)]++;
	swarm_sim_trace_free(&tr);
}

/* bursty's rates, swing and transitions with stays 100 times shorter (0.4, 0.25 and
 * 0.04 s), so that 4000 s hold some 17000 stays and the state's randomness averages out:
 * the same stationary mean, (300 * 40 + 4000 * 25 + 12000 * 4) / 69 = 2318.8 req/s. */
#define FAST_BURSTY "mmppn:rates=300,4000,12000;dwells=0.4,0.25,0.04;swing=0.5;duration=4000"

Test(tools_sim_trace, bursty_mean_rate_and_swing)
{
	/* One period of 1 + 0.5 sin(2 pi t / 4000 s), from the mean: over the first quarter the
	 * sine averages 2 / pi, over the middle half 0, over the last quarter -2 / pi. So
	 * 2318.8 req/s times 1.318, 1 and 0.682; within 3%. */
	uint64_t q[4];
	count_parts(FAST_BURSTY, 1, q, 4);
	double mean = 160000.0 / 69, quarter_s = 1000;
	assert_near((q[0] + q[1] + q[2] + q[3]) / 4000.0, mean, 0.03 * mean);
	assert_near(q[0] / quarter_s, mean * (1 + 1 / M_PI), 0.03 * mean * (1 + 1 / M_PI));
	assert_near((q[1] + q[2]) / (2 * quarter_s), mean, 0.03 * mean);
	assert_near(q[3] / quarter_s, mean * (1 - 1 / M_PI), 0.03 * mean * (1 - 1 / M_PI));
}

Test(tools_sim_trace, diurnal_starts_at_its_trough)
{
	/* 1000 (1 - 0.8 cos(2 pi t / 400)): cos averages 2 / pi over the first and the last
	 * quarters, -2 / pi over the middle half. */
	uint64_t q[4];
	count_parts("diurnal:1000,0.8,400", 1, q, 4);
	double edge = 1000 * (1 - 0.8 * 2 / M_PI), middle = 1000 * (1 + 0.8 * 2 / M_PI);
	assert_near(q[0] / 100.0, edge, 0.03 * edge);
	assert_near(q[3] / 100.0, edge, 0.03 * edge);
	assert_near((q[1] + q[2]) / 200.0, middle, 0.03 * middle);
}

Test(tools_sim_trace, onoff_and_heavytail_give_their_mean_rate)
{
	/* On a quarter of the time (mean stays 1 s on, 3 s off): 1000 req/s. */
	uint64_t n;
	count_parts("onoff:4000,1,3,20000", 1, &n, 1);
	assert_near(n / 20000.0, 1000, 1000 * 0.03);
	/* 100 req/s, bursts of 5000 a twelfth of the time (gaps of 11 s, bursts of 1 s, Pareto
	 * 2.5): 100 * 11/12 + 5000 / 12 = 508.3 req/s; within 5%. */
	count_parts("heavytail:100,5000,11,1,2.5,40000", 1, &n, 1);
	assert_near(n / 40000.0, 508.3, 508.3 * 0.05);
}

Test(tools_sim_trace, bursty_seed_decides_the_arrivals)
{
	uint64_t a[8], b[8];
	count_parts("bursty:600", 5, a, 8);
	count_parts("bursty:600", 5, b, 8);
	cr_assert_arr_eq(a, b, sizeof a, "the same seed gave different arrivals");
	count_parts("bursty:600", 6, b, 8);
	cr_assert(memcmp(a, b, sizeof a), "seeds 5 and 6 gave the same arrivals");
}

Test(tools_sim_trace, mmpp_is_the_two_state_mmppn)
{
	/* mmpp is generated as mmppn: the same seed gives the very same arrivals. */
	struct swarm_sim_trace a, b;
	parse_ok("mmpp:100,2000,30,10,3000", &a);
	parse_ok("mmppn:rates=100,2000;dwells=30,10;duration=3000", &b);
	struct swarm_sim_gen ga, gb;
	swarm_sim_gen_init(&ga, &a, 9, 3000);
	swarm_sim_gen_init(&gb, &b, 9, 3000);
	uint64_t n = 0, t;
	do {
		t = swarm_sim_gen_next(&ga);
		cr_assert_eq(swarm_sim_gen_next(&gb), t, "arrival %llu differs",
			     (unsigned long long)n);
		n++;
	} while (t != UINT64_MAX);
	cr_assert_gt(n, 100000, "%llu arrivals", (unsigned long long)n);
	swarm_sim_trace_free(&a);
	swarm_sim_trace_free(&b);
}

Test(tools_sim_trace, mmppn_next_and_start_are_followed)
{
	/* 0 -> 1 -> 2 -> 0 only, from state 2. */
	double frac[SWARM_SIM_MMPP_MAX_STATES];
	uint64_t moves[SWARM_SIM_MMPP_MAX_STATES][SWARM_SIM_MMPP_MAX_STATES] = { { 0 } };
	walk_states("mmppn:rates=1,2,3;dwells=1,1,2;next=0,5,0/0,0,1/2,0,0;start=2;duration=9", 1,
		    10000, frac, moves);
	cr_assert(moves[0][1] && moves[1][2] && moves[2][0], "a move of the cycle is missing");
	cr_assert_eq(moves[0][2] + moves[1][0] + moves[2][1], 0, "a move against the cycle");
	/* Each state once per cycle: shares 1/4, 1/4, 1/2. */
	assert_near(frac[2], 0.5, 0.03);
	struct swarm_sim_trace tr;
	parse_ok("mmppn:rates=1,2,3;dwells=1,1,2;next=0,5,0/0,0,1/2,0,0;start=2;duration=9", &tr);
	struct swarm_sim_gen g;
	swarm_sim_gen_init(&g, &tr, 1, 9);
	cr_assert_eq(g.state, 2);
	swarm_sim_trace_free(&tr);
}

Test(tools_sim_trace, mmppn_errors_name_the_field_and_its_range)
{
	const char *ok = "mmppn:rates=1,2;dwells=1,1;duration=5";
	struct swarm_sim_trace tr;
	parse_ok(ok, &tr);
	swarm_sim_trace_free(&tr);
	parse_fails("mmppn:rates=1;dwells=1;duration=5", -EINVAL, "rates: '1' is not 2 to 8");
	parse_fails("mmppn:rates=1,-2;dwells=1,1;duration=5", -EINVAL, "rates >= 0");
	parse_fails("mmppn:rates=1,2,3,4,5,6,7,8,9;dwells=1,1;duration=5", -EINVAL, "2 to 8");
	parse_fails("mmppn:rates=1,2;dwells=1,0;duration=5", -EINVAL, "dwells > 0");
	parse_fails("mmppn:rates=1,2;dwells=1,1,1;duration=5", -EINVAL, "one value");
	parse_fails("mmppn:rates=1,2;dwells=1,1", -EINVAL, "are required");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=0", -EINVAL, "duration: '0'");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5x", -EINVAL, "seconds > 0");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;swing=1.5", -EINVAL, "0 to 1");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;period=-1", -EINVAL, "period:");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;start=2", -EINVAL, "from 0 to 1");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;start=0.5", -EINVAL, "start:");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;alpha=0,1", -EINVAL, "above 1");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;next=1,1/1,0", -EINVAL, "diagonal");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;next=0,0/1,0", -EINVAL, "not all 0");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;next=0,1", -EINVAL, "one row");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;next=0,1,1/1,0,1/1,1,0", -EINVAL,
		    "one row");
	parse_fails("mmppn:rates=1,2;dwells=1,1;duration=5;speed=2", -EINVAL, "'speed=2'");
	parse_fails("mmppn:rates=1,2;rates=1,2;dwells=1,1;duration=5", -EINVAL, "given once");
	parse_fails("mmppn:rates;dwells=1,1;duration=5", -EINVAL, "KEY=VALUE");
}

Test(tools_sim_trace, class_errors_name_their_fields)
{
	static const struct {
		const char *spec, *needle;
	} bad[] = {
		{ "bursty:", "DURATION_S" },
		{ "bursty:0", "DURATION_S (> 0" },
		{ "bursty:600,1", "DURATION_S" },
		{ "onoff:100,1,1", "HIGH,MEAN_ON_S,MEAN_OFF_S,DURATION_S" },
		{ "onoff:-1,1,1,60", "HIGH >= 0" },
		{ "onoff:100,0,1,60", "times > 0" },
		{ "heavytail:1,2,3,4,5", "BASE,PEAK,MEAN_GAP_S,MEAN_BURST_S,ALPHA" },
		{ "heavytail:1,2,3,4,1,60", "ALPHA > 1" },
		{ "heavytail:1,2,0,4,1.5,60", "times > 0" },
		{ "diurnal:100,0.5", "MEAN,SWING,DURATION_S" },
		{ "diurnal:100,1.5,60", "SWING from 0 to 1" },
		{ "diurnal:-1,0.5,60", "MEAN >= 0" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		parse_fails(bad[i].spec, -EINVAL, bad[i].needle);
}

/* ---- many seeds --------------------------------------------------------------------------- */

Test(tools_sim_seeds, each_seed_is_its_own_pair_of_runs)
{
	/* Seeds 3 to 7 of a short bursty trace on 8 devices (the rest at swarm-sim's
	 * defaults), in 3 threads: each seed's figures are those of the policy and of static:8
	 * run alone on that seed. */
	struct fixture f;
	setup(&f, "mmpp:100,3000,20,5,120");
	swarm_sim_opts_default(&f.o);
	f.o.trace = &f.tr;
	f.o.max_devices = 8;
	struct swarm_sim_seed_result v[5];
	int rc = swarm_sim_seeds_run(&f.o, 3, 7, 3, v, f.err, sizeof f.err);
	cr_assert_eq(rc, 0, "seeds_run: %d %s", rc, f.err);
	int differ = 0;
	for (size_t i = 0; i < 5; i++) {
		cr_assert_eq(v[i].seed, 3 + i);
		struct swarm_sim_opts o = f.o;
		struct swarm_sim_report a, m;
		o.seed = 3 + i;
		cr_assert_eq(swarm_sim_run(&o, &a, f.err, sizeof f.err), 0, "%s", f.err);
		o.static_devices = 8;
		cr_assert_eq(swarm_sim_run(&o, &m, f.err, sizeof f.err), 0, "%s", f.err);
		cr_assert_eq(v[i].autos.requests, a.requests, "seed %zu", 3 + i);
		cr_assert_eq(v[i].autos.met, a.met, "seed %zu", 3 + i);
		cr_assert_eq(v[i].max.met, m.met, "seed %zu", 3 + i);
		assert_near(v[i].autos.device_seconds, a.device_seconds, 0);
		assert_near(v[i].max.device_seconds, m.device_seconds, 0);
		assert_near(v[i].points, 100 * (m.attainment - a.attainment), 1e-12);
		assert_near(v[i].share, a.device_seconds / m.device_seconds, 1e-12);
		cr_assert_eq(v[i].met, v[i].points <= 1 && v[i].share <= 0.6);
		differ |= v[i].autos.requests != v[0].autos.requests;
		swarm_sim_report_free(&a);
		swarm_sim_report_free(&m);
	}
	cr_assert(differ, "five seeds gave the same number of requests");
	cr_assert_eq(swarm_sim_seeds_run(&f.o, 7, 3, 3, v, f.err, sizeof f.err), -EINVAL);
	teardown(&f);
}

/* A result with only what the summary reads. */
static struct swarm_sim_seed_result seed_result(uint64_t seed, double points, double share)
{
	return (struct swarm_sim_seed_result){
		.seed = seed, .points = points, .share = share, .met = points <= 1 && share <= 0.6
	};
}

Test(tools_sim_seeds, summary_names_the_worst_seeds_and_the_medians)
{
	struct swarm_sim_seed_result v[5] = { seed_result(1, 0.5, 0.7), seed_result(2, 2.0, 0.3),
					      seed_result(3, 0.1, 0.5), seed_result(4, 2.0, 0.2),
					      seed_result(5, 0.2, 0.55) };
	struct swarm_sim_seeds_summary s;
	swarm_sim_seeds_summarize(v, 4, &s);
	cr_assert_eq(s.n, 4);
	cr_assert_eq(s.worst_points, 1, "worst by points: %zu (the first of equals)",
		     s.worst_points);
	cr_assert_eq(s.worst_share, 0, "worst by share: %zu", s.worst_share);
	assert_near(s.median_points, (0.5 + 2.0) / 2, 1e-12);
	assert_near(s.median_share, (0.3 + 0.5) / 2, 1e-12);
	cr_assert_eq(s.n_met, 1);
	cr_assert_eq(s.all_met, 0);
	/* An odd count: the middle one. Seeds 3 and 5 alone meet the goal. */
	swarm_sim_seeds_summarize(v, 5, &s);
	assert_near(s.median_points, 0.5, 1e-12);
	assert_near(s.median_share, 0.5, 1e-12);
	cr_assert_eq(s.n_met, 2);
	swarm_sim_seeds_summarize(v + 2, 1, &s);
	cr_assert_eq(s.all_met, 1);
	cr_assert_eq(s.worst_points, 0);
}

/* ---- the SVG ----------------------------------------------------------------------------- */

Test(tools_sim_svg, is_a_whole_svg_with_a_legend)
{
	struct fixture f;
	setup(&f, "steps:100@0,1500@30");
	f.o.static_devices = 0;
	f.o.duration_s = 90;
	f.o.keep_ticks = 1;
	run(&f);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	cr_assert_not_null(m);
	cr_assert_eq(swarm_sim_write_svg(m, &f.r, "a <title> & more"), 0);
	fclose(m);
	cr_assert(len > 100 && !strncmp(buf, "<svg ", 5), "starts: %.20s", buf);
	cr_assert(!strcmp(buf + len - 7, "</svg>\n"), "ends: %s", buf + len - 20);
	cr_assert(strstr(buf, "offered load"), "no load in the legend");
	cr_assert(strstr(buf, "devices active"), "no devices in the legend");
	cr_assert(strstr(buf, "class=\"legend\""), "no legend group");
	cr_assert(strstr(buf, "a &lt;title&gt; &amp; more"), "title not escaped");
	cr_assert(strstr(buf, "time (seconds)"), "no time axis label");
	/* Every element opened is closed: as many '<' as '>', and <g> as </g>. */
	size_t lt = 0, gt = 0, g_open = 0, g_close = 0;
	for (const char *p = buf; *p; p++) {
		lt += *p == '<';
		gt += *p == '>';
		g_open += !strncmp(p, "<g>", 3) || !strncmp(p, "<g ", 3);
		g_close += !strncmp(p, "</g>", 4);
	}
	cr_assert_eq(lt, gt, "%zu '<' and %zu '>'", lt, gt);
	cr_assert_eq(g_open, g_close, "%zu <g> and %zu </g>", g_open, g_close);
	cr_assert_eq(strstr(buf, "nan") || strstr(buf, "inf"), 0, "a NaN or inf in the SVG");
	free(buf);
	teardown(&f);
}
