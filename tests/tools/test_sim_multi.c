/* test_sim_multi.c: swarm-sim's multi-model mode (tools/sim_multi.h) against figures computed by
 * hand: a model let go and evicted for another on a one-device pool (exact times, loads,
 * evictions, unloads, device-seconds, attainment), a host let go while it has requests (they
 * finish first), a model let go and taken back while still cached (no second load), two
 * models sized by the policy on three devices, static's round-robin placement, a model larger
 * than a device, determinism; and the models file's errors, one test per kind.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/sim_multi.h"

/* Writes text to a fresh temporary file; its path in path (at least 32 bytes). */
static void write_tmp(char *path, const char *text)
{
	strcpy(path, "/tmp/swarm-sim-multi-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	size_t len = strlen(text);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
}

struct fixture {
	char path[64], csv[4][64];
	size_t n_csv;
	struct swarm_sim_models ms;
	struct swarm_sim_multi_opts o;
	struct swarm_sim_multi_report r;
	char err[512];
};

/* Writes the csv traces (NULL-terminated), then the models file, where "CSV0".."CSV3" stand
 * for the traces' paths; parses it and sets the options to their defaults. */
static void setup(struct fixture *f, const char *models, const char *const *csvs)
{
	memset(f, 0, sizeof *f);
	for (; csvs && csvs[f->n_csv]; f->n_csv++)
		write_tmp(f->csv[f->n_csv], csvs[f->n_csv]);
	char text[2048];
	size_t o = 0;
	for (const char *p = models; *p && o < sizeof text - 64;) {
		if (!strncmp(p, "CSV", 3) && p[3] >= '0' && p[3] < '0' + (int)f->n_csv) {
			o += (size_t)snprintf(text + o, sizeof text - o, "%s", f->csv[p[3] - '0']);
			p += 4;
		} else {
			text[o++] = *p++;
		}
	}
	text[o] = '\0';
	write_tmp(f->path, text);
	int rc = swarm_sim_models_parse(f->path, &f->ms, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "parse: %d %s", rc, f->err);
	swarm_sim_multi_opts_default(&f->o);
	f->o.models = f->ms.v;
	f->o.n_models = f->ms.n;
}

static void run(struct fixture *f)
{
	int rc = swarm_sim_multi_run(&f->o, &f->r, f->err, sizeof f->err);
	cr_assert_eq(rc, 0, "swarm_sim_multi_run: %d %s", rc, f->err);
}

static void teardown(struct fixture *f)
{
	swarm_sim_multi_report_free(&f->r);
	swarm_sim_models_free(&f->ms);
	unlink(f->path);
	for (size_t i = 0; i < f->n_csv; i++)
		unlink(f->csv[i]);
}

/* The tick at t_s (ticks are kept). */
static const struct swarm_sim_model_tick *at(const struct fixture *f, double t_s, size_t m)
{
	for (size_t i = 0; i < f->r.n_ticks; i++)
		if (fabs(f->r.ticks[i].t_s - t_s) < 1e-6)
			return &f->r.model_ticks[i * f->r.n_models + m];
	cr_assert_fail("no tick at %g s", t_s);
	return NULL;
}

static uint32_t on_at(const struct fixture *f, double t_s)
{
	for (size_t i = 0; i < f->r.n_ticks; i++)
		if (fabs(f->r.ticks[i].t_s - t_s) < 1e-6)
			return f->r.ticks[i].on;
	cr_assert_fail("no tick at %g s", t_s);
	return 0;
}

#define assert_u64(a, b)                                                           \
	cr_assert_eq((uint64_t)(a), (uint64_t)(b), "%s = %llu, expected %llu", #a, \
		     (unsigned long long)(a), (unsigned long long)(b))
#define assert_near(a, b, tol)                                                              \
	cr_assert(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a, \
		  (double)(a), (double)(b))

/* ---- hand-computed runs ------------------------------------------------------------------ */

/* The pool of the cases timed by hand: n devices of 1G, a 1 s warm-up, a stable window of
 * 10 s and a cool-down of 5 s (short enough to follow), no burst memory (the cases are of
 * placement: a model lets its hosts go when its target falls), 60 s, the ticks kept. */
static void hand_pool(struct fixture *f, uint32_t n)
{
	f->o.devices = n;
	f->o.device_memory = 1ull << 30;
	f->o.warmup_ms = 1000;
	f->o.as.stable_window_ns = 10000000000ull;
	f->o.as.cooldown_ns = 5000000000ull;
	f->o.as.peak_window_ns = 0;
	f->o.duration_s = 60;
	f->o.keep_ticks = 1;
}

/* One device of 1G, two models of 1G each, b first in the file; 10 ms per request, a 1 s
 * warm-up, a 0.5 s load, 1 s ticks, a stable window of 10 s and a cool-down of 5 s.
 *   a arrives at 0.5, 2.5, 4.5 s. The first finds nothing and wakes device 0 at once (from
 *     zero): warm at 1.5 s, a loaded at 2.0 s; it is served at 2.0-2.01 (1.51 s), the others
 *     in 10 ms. a's last arrival leaves both windows at the tick of 15 s: its target is 0
 *     from then, and a whole stable window later (25 s) the policy drains it.
 *   b arrives at 20.5 s: nothing hosts it and the only device is full of a, still wanted (a
 *     host, never reclaimable), so the placement has nowhere to put it: it is held. At 25 s
 *     a's want is 0: the plan lets a go first (REMOVE: its idle copy is CACHED, still
 *     resident, and counted reclaimable), then gives b (short a host) device 0 by evicting
 *     it. So a is evicted (1), never unloaded (0), and never seen cached at a tick. b is
 *     loaded by 25.5 s and the held request served by 25.51 s: 5.01 s, over b's 5 s
 *     objective. b's arrival at 27.5 s takes 10 ms. b's windows empty at 38 s; at 48 s its
 *     drain lets it go (CACHED) and, the device then hosting nothing wanted, the same plan
 *     parks it, which drops b's copy: an unload of b (1), no eviction (0).
 * No ADD finds its model resident: no hit. Device 0 is on from 0.5 s to 48 s: 47.5
 * device-seconds. */
Test(tools_sim_multi, model_let_go_is_evicted_for_the_next)
{
	static const char *const csvs[] = { "20.5\n27.5\n", "0.5\n2.5\n4.5\n", NULL };
	struct fixture f;
	setup(&f,
	      "# b first: it is served first\n"
	      "b trace=csv:CSV0 base_us=10000 per_row_us=0 max_batch=1 bytes=1G "
	      "objective_us=5000000 load_ms=500\n"
	      "\n"
	      "a trace=csv:CSV1 base_us=10000 per_row_us=0 max_batch=1 bytes=1G "
	      "objective_us=10000000 load_ms=500\n",
	      csvs);
	hand_pool(&f, 1);
	run(&f);
	const struct swarm_sim_model_report *b = &f.r.models[0], *a = &f.r.models[1];
	assert_u64(a->requests, 3);
	assert_u64(a->met, 3);
	assert_u64(a->loads, 1);
	assert_u64(a->hits, 0);
	assert_u64(a->evictions, 1);
	assert_u64(a->unloads, 0);
	assert_near(a->max_us, 1510000, 1);
	assert_near(a->p50_us, 10000, 1);
	assert_u64(b->requests, 2);
	assert_u64(b->met, 1);
	assert_near(b->attainment, 0.5, 1e-12);
	assert_u64(b->loads, 1);
	assert_u64(b->hits, 0);
	assert_u64(b->evictions, 0);
	assert_u64(b->unloads, 1);
	assert_near(b->max_us, 5010000, 1);
	assert_u64(f.r.hits, 0);
	assert_u64(f.r.wakes, 1);
	assert_u64(f.r.parks, 1);
	assert_u64(f.r.adds_no_room, 0);
	assert_u64(f.r.peak_devices, 1);
	assert_near(f.r.device_seconds, 47.5, 1e-9);
	assert_near(f.r.attainment, 4.0 / 5.0, 1e-12);
	/* a's host: warming at 1 s, active from 2 s until 24 s, gone at 25 s (evicted in the
	 * plan that let it go: not cached at the tick). */
	assert_u64(at(&f, 1, 1)->warming, 1);
	assert_u64(at(&f, 2, 1)->active, 1);
	assert_u64(at(&f, 24, 1)->active, 1);
	assert_u64(at(&f, 25, 1)->active + at(&f, 25, 1)->warming, 0);
	assert_u64(at(&f, 25, 1)->cached, 0);
	/* b held from 20.5 s (wanting one host it cannot have), loading at 25 s, active at 26 s
	 * until 47 s; nothing on at 48 s. */
	assert_u64(at(&f, 22, 0)->want, 1);
	assert_u64(at(&f, 22, 0)->active + at(&f, 22, 0)->warming, 0);
	assert_u64(at(&f, 22, 0)->queue, 1);
	assert_u64(at(&f, 25, 0)->warming, 1);
	assert_u64(at(&f, 26, 0)->active, 1);
	assert_u64(at(&f, 47, 0)->active, 1);
	assert_u64(on_at(&f, 47), 1);
	assert_u64(at(&f, 48, 0)->active, 0);
	assert_u64(at(&f, 48, 0)->cached, 0); /* dropped with its device */
	assert_u64(on_at(&f, 48), 0);
	teardown(&f);
}

/* Two devices of 1G, one model of 1G taking 0.1 s a request (batches of one), a 100 s
 * objective (no panic from latency), stable window 10 s, cool-down 5 s, warm-up 1 s, load
 * 0.5 s. 30 requests at 0.01..0.30 s wake device 0 at once (warm 1.01, loaded 1.51 s); at the
 * tick of 2 s, 4 served in 0.49 s busy (8.2 req/s) against 15 req/s arriving asks for
 * ceil(15 / 8.2 / 0.6) = 4, capped at the pool: device 1 is woken (loaded 3.5 s; the last of
 * the 30 is served 3.91-4.01 s on device 0, 3.71 s after it came) and that tick's panic holds
 * any scale-down until 12 s. From the tick of 5 s the target is 1 (30 requests in 5 s at
 * 10 req/s: one device at 0.6). A request at 8.0 s keeps a service rate measured; two at
 * 14.95 and 14.96 s go to devices 0 and 1 and are in service at the tick of 15 s, a stable
 * window into the low target: the policy drains one (work 0.33 req/s / 5.26 req/s per device
 * <= 0.5) and the placement lets go of device 0 (equal requests, the more loaded). With a
 * request on it, its copy is LEAVING at that tick (draining 1, cached 0), finishes at
 * 15.05 s and stays resident, idle (CACHED); device 0, hosting nothing wanted and serving
 * nothing, parks at the tick of 16 s, which drops the cached copy (an unload). The target is
 * 0 from 25 s (no arrival left in either window), so at 35 s the last host is let go (cached)
 * and device 1 parked in the same plan, dropping it (the second unload). Loads 2, unloads 2,
 * no eviction (nothing else wanted room), no hit (no ADD after a REMOVE).
 * Device-seconds: 0.01 to 16 and 2 to 35, 48.99. */
Test(tools_sim_multi, host_let_go_with_requests_finishes_them_first)
{
	char csv[512];
	size_t o = 0;
	for (int i = 1; i <= 30; i++)
		o += (size_t)snprintf(csv + o, sizeof csv - o, "%.2f\n", i / 100.0);
	snprintf(csv + o, sizeof csv - o, "8.0\n14.95\n14.96\n");
	const char *const csvs[] = { csv, NULL };
	struct fixture f;
	setup(&f,
	      "a trace=csv:CSV0 base_us=100000 per_row_us=0 max_batch=1 bytes=1G "
	      "objective_us=100000000 load_ms=500\n",
	      csvs);
	hand_pool(&f, 2);
	run(&f);
	const struct swarm_sim_model_report *a = &f.r.models[0];
	assert_u64(a->requests, 33);
	assert_u64(a->met, 33);
	assert_u64(a->loads, 2);
	assert_u64(a->unloads, 2);
	assert_u64(a->evictions, 0);
	assert_u64(a->hits, 0);
	assert_u64(f.r.wakes, 2);
	assert_u64(f.r.parks, 2);
	assert_u64(at(&f, 2, 0)->want, 2);
	assert_u64(at(&f, 3, 0)->warming, 1);
	assert_u64(at(&f, 4, 0)->active, 2);
	assert_u64(at(&f, 5, 0)->target, 1);
	assert_u64(at(&f, 14, 0)->active, 2);
	assert_u64(at(&f, 15, 0)->active, 1);
	assert_u64(at(&f, 15, 0)->draining, 1);
	assert_u64(at(&f, 15, 0)->cached, 0);
	assert_u64(on_at(&f, 15), 2);
	assert_u64(at(&f, 16, 0)->draining, 0);
	assert_u64(at(&f, 16, 0)->cached, 0);
	assert_u64(on_at(&f, 16), 1);
	assert_u64(at(&f, 24, 0)->target, 1);
	assert_u64(at(&f, 25, 0)->target, 0);
	assert_u64(at(&f, 34, 0)->active, 1);
	assert_u64(on_at(&f, 35), 0);
	assert_near(a->max_us, 3710000, 1);
	assert_near(f.r.device_seconds, 48.99, 1e-9);
	teardown(&f);
}

/* One device of 2G, a first then b, both of 1G; 10 ms per request, a 0.5 s load, the pool of
 * hand_pool. b has no arrival and min=1: it keeps the device in service throughout.
 *   a arrives at 0.5 s: nothing hosts it, so it wakes device 0 at once (from zero): warm at
 *     1.5 s, a loaded at 2.0 s, the request served at 2.0-2.01 (1.51 s). At the tick of 1 s b
 *     (min 1) is given device 0 too (in service, warming, with 1G free): its load waits for
 *     a's, 2.0-2.5 s (one load at a time on a device). a's arrivals at 2.5 and 4.5 s take
 *     10 ms each; as in model_let_go_is_evicted_for_the_next a's target is 0 from 15 s and
 *     its drain at 25 s lets it go: its idle copy is CACHED (still resident: the device is
 *     full, 2G of 2G) and the device, hosting b, stays on.
 *   a arrives at 30.5 s: no host, so the policy is called at once (from zero, a WAKE); the
 *     plan finds no free room on device 0 but 1G reclaimable there (a's own cached copy) and
 *     adds a to it. The ADD finds a resident: LOADED at once, no load (a hit), and the held
 *     request served at 30.5-30.51 s: 10 ms, where a second load would have made it 510 ms.
 *     Its last arrival leaves both windows at 41 s and its drain at 51 s caches it again,
 *     until the end (60 s).
 * So a: 4 requests met, 1 load, 1 hit, no eviction (nothing else wanted its room), no unload
 * (the device never parks); host_s 23 (2.0 to 25 s) + 20.5 (30.5 to 51 s) = 43.5. b: 1 load,
 * host_s 57.5 (2.5 to 60 s). One wake, no park: device 0 on from 0.5 s to 60 s, 59.5
 * device-seconds. */
Test(tools_sim_multi, model_let_go_is_taken_back_while_cached)
{
	static const char *const csvs[] = { "0.5\n2.5\n4.5\n30.5\n", NULL };
	struct fixture f;
	setup(&f,
	      "a trace=csv:CSV0 base_us=10000 per_row_us=0 max_batch=1 bytes=1G "
	      "objective_us=10000000 load_ms=500\n"
	      "b trace=steps:0@0 base_us=10000 per_row_us=0 max_batch=1 bytes=1G min=1 "
	      "load_ms=500\n",
	      csvs);
	hand_pool(&f, 1);
	f.o.device_memory = 2ull << 30;
	run(&f);
	const struct swarm_sim_model_report *a = &f.r.models[0], *b = &f.r.models[1];
	assert_u64(a->requests, 4);
	assert_u64(a->met, 4);
	assert_u64(a->loads, 1);
	assert_u64(a->hits, 1);
	assert_u64(a->evictions, 0);
	assert_u64(a->unloads, 0);
	assert_u64(a->peak_hosts, 1);
	assert_near(a->max_us, 1510000, 1);
	assert_near(a->p50_us, 10000, 1);
	assert_near(a->host_seconds, 43.5, 1e-9);
	assert_u64(b->requests, 0);
	assert_u64(b->loads, 1);
	assert_u64(b->hits + b->evictions + b->unloads, 0);
	assert_near(b->host_seconds, 57.5, 1e-9);
	assert_u64(f.r.loads, 2);
	assert_u64(f.r.hits, 1);
	assert_u64(f.r.wakes, 1);
	assert_u64(f.r.parks, 0);
	assert_u64(f.r.adds_no_room, 0);
	assert_near(f.r.device_seconds, 59.5, 1e-9);
	/* a: a host until 24 s, cached from 25 s to 30 s, a host again from 31 s (taken back,
	 * never loading), cached again from 51 s to the end; b a host throughout. */
	assert_u64(at(&f, 24, 0)->active, 1);
	assert_u64(at(&f, 24, 0)->cached, 0);
	assert_u64(at(&f, 25, 0)->active + at(&f, 25, 0)->warming, 0);
	assert_u64(at(&f, 25, 0)->cached, 1);
	assert_u64(at(&f, 30, 0)->cached, 1);
	assert_u64(at(&f, 31, 0)->active, 1);
	assert_u64(at(&f, 31, 0)->cached, 0);
	assert_u64(at(&f, 50, 0)->active, 1);
	assert_u64(at(&f, 51, 0)->active, 0);
	assert_u64(at(&f, 51, 0)->cached, 1);
	assert_u64(at(&f, 60, 0)->cached, 1);
	assert_u64(at(&f, 60, 1)->active, 1);
	assert_u64(on_at(&f, 60), 1);
	teardown(&f);
}

/* The first arrival of model i of o's traces (the seed the simulation derives). */
static double first_arrival_s(const struct swarm_sim_multi_opts *o, size_t i, double end_s)
{
	struct swarm_sim_gen g;
	swarm_sim_gen_init(&g, &o->models[i].trace, o->seed + i * 0x9E3779B97F4A7C15ull, end_s);
	return (double)swarm_sim_gen_next(&g) / 1e9;
}

/* Three devices of 1G, one model each. 10 ms per request and batches of one: a device serves
 * 100 req/s, so at target_util 0.6 a at 100 req/s needs ceil(100 / 60) = 2 devices and b at
 * 30 req/s needs 1. Each model's first arrival wakes a device for it at once; at the
 * tick of 2 s a is active on one device with its short window at ~100 req/s, twice what one
 * device may carry: it panics and is given the third device. Neither ever drains (a's load,
 * ~1 device, over 1 device left would be above 0.5; b has arrivals). So loads are 2 and 1,
 * no eviction, and the device-seconds are (end - a's first arrival) + (end - b's) + (end - 2),
 * where the end is the last completion (at or after 120 s). */
Test(tools_sim_multi, policy_gives_each_model_the_devices_its_rate_needs)
{
	struct fixture f;
	setup(&f,
	      "a trace=steps:100@0 base_us=10000 per_row_us=0 max_batch=1 bytes=1G load_ms=500\n"
	      "b trace=steps:30@0 base_us=10000 per_row_us=0 max_batch=1 bytes=1G load_ms=500\n",
	      NULL);
	f.o.devices = 3;
	f.o.device_memory = 1ull << 30;
	f.o.warmup_ms = 1000;
	f.o.duration_s = 120;
	f.o.keep_ticks = 1;
	run(&f);
	const struct swarm_sim_model_report *a = &f.r.models[0], *b = &f.r.models[1];
	assert_u64(a->loads, 2);
	assert_u64(b->loads, 1);
	assert_u64(f.r.evictions + f.r.unloads + f.r.parks, 0);
	assert_u64(f.r.wakes, 3);
	assert_u64(on_at(&f, 2), 3);
	for (double t = 10; t <= 120; t += 10) {
		assert_u64(at(&f, t, 0)->active, 2);
		assert_u64(at(&f, t, 1)->active, 1);
		assert_u64(at(&f, t, 0)->target, 2);
		assert_u64(at(&f, t, 1)->target, 1);
	}
	double a0 = first_arrival_s(&f.o, 0, 120), b0 = first_arrival_s(&f.o, 1, 120);
	double end = f.r.duration_s;
	cr_assert(end >= 120 && end < 121, "duration %g s", end);
	assert_near(f.r.device_seconds, (end - a0) + (end - b0) + (end - 2), 1e-6);
	/* The misses by hand: a's first device serves from 1.5 s, with ~150 requests held; it
	 * serves as fast as they arrive until the second is loaded (woken at 2 s: 3.5 s); the
	 * two then clear the backlog of ~150 at a net 100 req/s by ~5 s: the ~500 requests
	 * arriving before then wait over 50 ms. b's ~45 held clear at a net 70 req/s by ~2.1 s:
	 * ~63 missed. Poisson arrivals: bounds, not exact counts. */
	uint64_t a_missed = a->requests - a->met, b_missed = b->requests - b->met;
	cr_assert(a_missed >= 400 && a_missed <= 650, "a missed %llu",
		  (unsigned long long)a_missed);
	cr_assert(b_missed >= 40 && b_missed <= 90, "b missed %llu", (unsigned long long)b_missed);
	teardown(&f);
}

/* Static on four devices of 2G, three models of 1G (m0, m1, m2): round 1 places m0, m1, m2 on
 * devices 0, 1, 2; round 2 m0 on 3, m1 on 0 (the cursor wrapped), m2 on 1; round 3 m0 on 2,
 * m1 on 3, and m2 finds every device full or holding it. So 3, 3 and 2 loads, four devices on
 * for the whole run, and (one request each, 10 ms) everything met. */
Test(tools_sim_multi, static_places_round_robin_where_it_fits)
{
	static const char *const csvs[] = { "1.0\n", NULL };
	struct fixture f;
	setup(&f,
	      "m0 trace=csv:CSV0 base_us=10000 per_row_us=0\n"
	      "m1 trace=csv:CSV0 base_us=10000 per_row_us=0\n"
	      "m2 trace=csv:CSV0 base_us=10000 per_row_us=0\n",
	      csvs);
	f.o.policy = SWARM_SIM_MULTI_STATIC;
	f.o.devices = 4;
	f.o.device_memory = 2ull << 30;
	f.o.duration_s = 10;
	run(&f);
	assert_u64(f.r.models[0].loads, 3);
	assert_u64(f.r.models[1].loads, 3);
	assert_u64(f.r.models[2].loads, 2);
	assert_near(f.r.device_seconds, 40, 1e-9);
	assert_u64(f.r.met, 3);
	assert_near(f.r.models[2].p50_us, 10000, 1);
	teardown(&f);
}

/* A model larger than a device is never loaded and its requests are refused (missed); the
 * other is served as if it were alone. */
Test(tools_sim_multi, model_larger_than_a_device_is_refused)
{
	static const char *const csvs[] = { "1.0\n2.0\n", NULL };
	struct fixture f;
	setup(&f,
	      "huge trace=csv:CSV0 bytes=3G min=1\n"
	      "small trace=csv:CSV0 bytes=1G base_us=10000 per_row_us=0 load_ms=0\n",
	      csvs);
	f.o.devices = 2;
	f.o.device_memory = 2ull << 30;
	f.o.warmup_ms = 0;
	f.o.duration_s = 10;
	run(&f);
	const struct swarm_sim_model_report *h = &f.r.models[0], *s = &f.r.models[1];
	cr_assert(h->too_big);
	assert_u64(h->requests, 2);
	assert_u64(h->refused, 2);
	assert_u64(h->met, 0);
	assert_u64(h->loads, 0);
	assert_u64(h->peak_hosts, 0);
	cr_assert(!s->too_big);
	assert_u64(s->met, 2);
	assert_u64(s->loads, 1);
	assert_near(s->max_us, 10000, 1); /* woken and loaded at once */
	assert_u64(f.r.refused, 2);
	teardown(&f);
	/* Static too. */
	setup(&f, "huge trace=csv:CSV0 bytes=3G\n", (const char *const[]){ "1.0\n", NULL });
	f.o.policy = SWARM_SIM_MULTI_STATIC;
	f.o.devices = 1;
	f.o.device_memory = 2ull << 30;
	run(&f);
	assert_u64(f.r.models[0].refused, 1);
	assert_u64(f.r.models[0].loads, 0);
	teardown(&f);
}

Test(tools_sim_multi, same_seed_same_run)
{
	const char *models = "a trace=mmpp:50,400,20,5,300 bytes=2G\n"
			     "b trace=sine:100,80,120,300 bytes=3G\n"
			     "c trace=steps:20@0,200@100,0@200 bytes=4G min=1 load_ms=2000\n";
	struct fixture f1, f2;
	setup(&f1, models, NULL);
	setup(&f2, models, NULL);
	f1.o.devices = f2.o.devices = 6;
	f1.o.device_memory = f2.o.device_memory = 6ull << 30;
	f1.o.seed = f2.o.seed = 7;
	run(&f1);
	run(&f2);
	cr_assert_gt(f1.r.requests, 10000);
	assert_u64(f1.r.requests, f2.r.requests);
	assert_u64(f1.r.met, f2.r.met);
	assert_u64(f1.r.batches, f2.r.batches);
	assert_u64(f1.r.decisions, f2.r.decisions);
	cr_assert_eq(f1.r.device_seconds, f2.r.device_seconds);
	for (size_t m = 0; m < 3; m++) {
		cr_assert_eq(memcmp(&f1.r.models[m], &f2.r.models[m], sizeof f1.r.models[m]), 0,
			     "model %zu differs", m);
		/* Every copy loaded is evicted, dropped with its device or still resident at the
		 * end; a hit loads nothing. */
		const struct swarm_sim_model_report *mr = &f1.r.models[m];
		cr_assert_geq(mr->loads, mr->evictions + mr->unloads,
			      "model %zu: %llu loads, %llu evictions, %llu unloads", m,
			      (unsigned long long)mr->loads, (unsigned long long)mr->evictions,
			      (unsigned long long)mr->unloads);
	}
	/* Another seed, other arrivals. */
	swarm_sim_multi_report_free(&f2.r);
	f2.o.seed = 8;
	run(&f2);
	cr_assert_neq(f1.r.requests, f2.r.requests);
	teardown(&f1);
	teardown(&f2);
}

Test(tools_sim_multi, bad_options_are_einval)
{
	struct fixture f;
	setup(&f, "a trace=steps:1@0\n", NULL);
	char err[256];
	struct swarm_sim_multi_opts o = f.o;
	o.devices = 65;
	cr_assert_eq(swarm_sim_multi_run(&o, &f.r, err, sizeof err), -EINVAL);
	cr_assert(strstr(err, "devices"), "%s", err);
	o = f.o;
	o.device_memory = 0;
	cr_assert_eq(swarm_sim_multi_run(&o, &f.r, err, sizeof err), -EINVAL);
	o = f.o;
	o.n_models = 0;
	cr_assert_eq(swarm_sim_multi_run(&o, &f.r, err, sizeof err), -EINVAL);
	teardown(&f);
}

/* ---- the models file --------------------------------------------------------------------- */

/* Parses text as a models file: the error must be -EINVAL, name the file and line and say
 * what. */
static void bad_file(const char *text, unsigned line, const char *what)
{
	char path[64], err[512], where[96];
	write_tmp(path, text);
	struct swarm_sim_models ms;
	int rc = swarm_sim_models_parse(path, &ms, err, sizeof err);
	unlink(path);
	cr_assert_eq(rc, -EINVAL, "rc %d for %s", rc, text);
	snprintf(where, sizeof where, "%s:%u: ", path, line);
	cr_assert(strstr(err, where), "'%s' does not name %s", err, where);
	cr_assert(strstr(err, what), "'%s' does not say '%s'", err, what);
}

Test(tools_sim_models, comments_blank_lines_and_defaults)
{
	char path[64], err[512];
	struct swarm_sim_models ms;
	write_tmp(path, "# models\n\n   \n  a   trace=steps:5@0\t bytes=512M min=1 max=3\n"
			"b trace=sine:10,5,60,600 base_us=1 per_row_us=2 max_batch=4 bytes=2048 "
			"objective_us=7 load_ms=9\n");
	int rc = swarm_sim_models_parse(path, &ms, err, sizeof err);
	unlink(path);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(ms.n, 2);
	cr_assert_str_eq(ms.v[0].name, "a");
	assert_u64(ms.v[0].bytes, 512ull << 20);
	assert_u64(ms.v[0].min_devices, 1);
	assert_u64(ms.v[0].max_devices, 3);
	assert_near(ms.v[0].base_us, 2000, 0);
	assert_near(ms.v[0].per_row_us, 1000, 0);
	assert_u64(ms.v[0].max_batch, 8);
	assert_near(ms.v[0].objective_us, 50000, 0);
	assert_near(ms.v[0].load_ms, 500, 0);
	cr_assert_eq(ms.v[0].trace.kind, SWARM_SIM_TRACE_STEPS);
	cr_assert_str_eq(ms.v[1].name, "b");
	assert_u64(ms.v[1].bytes, 2048);
	assert_u64(ms.v[1].max_batch, 4);
	assert_near(ms.v[1].objective_us, 7, 0);
	assert_near(ms.v[1].load_ms, 9, 0);
	cr_assert_eq(ms.v[1].trace.kind, SWARM_SIM_TRACE_SINE);
	swarm_sim_models_free(&ms);
}

Test(tools_sim_models, comment_only_at_a_line_start)
{
	bad_file("a trace=steps:1@0 # fast\n", 1, "'#' is not key=value");
}

Test(tools_sim_models, missing_trace)
{
	bad_file("a trace=steps:1@0\nb bytes=1G\n", 2, "no trace=");
}

Test(tools_sim_models, unknown_key)
{
	bad_file("a trace=steps:1@0 size=1G\n", 1, "unknown key 'size'");
}

Test(tools_sim_models, not_key_value)
{
	bad_file("\na trace=steps:1@0 fast\n", 2, "'fast' is not key=value");
}

Test(tools_sim_models, name_missing)
{
	bad_file("trace=steps:1@0\n", 1, "starts with the model's name");
}

Test(tools_sim_models, bad_number)
{
	bad_file("a trace=steps:1@0 base_us=fast\n", 1, "base_us: 'fast' is not a number");
}

Test(tools_sim_models, number_out_of_range)
{
	bad_file("a trace=steps:1@0 max_batch=0\n", 1, "max_batch: '0' is not an integer");
	bad_file("a trace=steps:1@0 min=1.5\n", 1, "min: '1.5' is not an integer");
	bad_file("a trace=steps:1@0 load_ms=-1\n", 1, "load_ms: '-1' is not a number");
}

Test(tools_sim_models, bad_size)
{
	bad_file("a trace=steps:1@0 bytes=1Q\n", 1, "bytes: '1Q' is not a size");
	bad_file("a trace=steps:1@0 bytes=0\n", 1, "bytes: '0' is not a size");
}

Test(tools_sim_models, key_given_twice)
{
	bad_file("a trace=steps:1@0 bytes=1G bytes=2G\n", 1, "bytes given twice");
}

Test(tools_sim_models, model_given_twice)
{
	bad_file("a trace=steps:1@0\na trace=steps:2@0\n", 2, "model 'a' given twice");
}

Test(tools_sim_models, bad_trace)
{
	bad_file("a trace=steps:1@0\nb trace=sine:1,2\n", 2, "trace: ");
}

Test(tools_sim_models, min_above_max)
{
	bad_file("a trace=steps:1@0 min=3 max=2\n", 1, "min is above max");
}

Test(tools_sim_models, no_model)
{
	char path[64], err[512];
	write_tmp(path, "# nothing\n\n");
	struct swarm_sim_models ms;
	int rc = swarm_sim_models_parse(path, &ms, err, sizeof err);
	unlink(path);
	cr_assert_eq(rc, -EINVAL);
	cr_assert(strstr(err, "no model"), "%s", err);
	rc = swarm_sim_models_parse("/nonexistent/models.txt", &ms, err, sizeof err);
	cr_assert_eq(rc, -ENOENT, "%d %s", rc, err);
}
