/* test_autoscaler.c: the scaling policy of runtime/autoscaler.h, called directly: the stable
 * target and its fallback, hysteresis on a noisy load (a small simulated cluster, 30 minutes
 * of 1 s ticks), the stable window and cool-down, panic, min and max, the last device, scale
 * from zero, the parked budget, purity, and bad inputs.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime/autoscaler.h"
#include "runtime/balancer.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC) /* tests start well after 0, which the memory reads as "never" */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Uniform in [-1, 1]. */
static double rng_sym(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / (double)(1ull << 52) - 1.0;
}

/* The defaults, but one device per scale-down: most tests below are of the rules that gate
 * each scale-down (the stable window, the cool-down, the band), which drain_all keeps; its
 * own tests are under "Bursts". */
static struct swarm_as_config defaults(void)
{
	struct swarm_as_config c;
	swarm_as_config_default(&c);
	c.drain_all = 0;
	return c;
}

/* A model served at 100 requests/s per device, min 1, max 16, a 100 ms objective, sessions
 * open, `active` devices in service and a steady rate on both windows. */
static struct swarm_as_model model(uint32_t active, double rate)
{
	return (struct swarm_as_model){
		.min_devices = 1,
		.max_devices = 16,
		.latency_p99_ns = 100 * 1000000ull,
		.rate_long = rate,
		.rate_short = rate,
		.service_rate = 100.0,
		.busy = active ? fmin(1.0, rate / (active * 100.0)) : 0.0,
		.sessions = 4,
		.active = active,
	};
}

static const char *kind_name(uint32_t kind)
{
	return kind == SWARM_AS_WAKE ? "wake" : kind == SWARM_AS_DRAIN ? "drain" : "?";
}

/* One model, room for 4 actions (at most one may come). */
struct one {
	int n;
	uint32_t target;
	struct swarm_as_action a[4];
};

static struct one decide1(uint64_t now, const struct swarm_as_config *cfg,
			  const struct swarm_as_model *m, struct swarm_as_memory *mem,
			  uint32_t parked)
{
	struct one r;
	memset(&r, 0xa5, sizeof(r));
	r.n = swarm_as_decide(now, cfg, m, mem, 1, parked, r.a, 4, &r.target);
	cr_assert(r.n == 0 || r.n == 1, "one model gave %d actions", r.n);
	if (r.n == 1)
		cr_assert_eq(r.a[0].model, 0, "action for model %u of 1", r.a[0].model);
	return r;
}

static void expect_none(const struct one *r, const char *what)
{
	cr_assert_eq(r->n, 0, "%s: expected no action, got %s %u reason %s (target %u)", what,
		     kind_name(r->a[0].kind), r->a[0].count, swarm_as_reason_name(r->a[0].reason),
		     r->target);
}

static void expect_action(const struct one *r, uint32_t kind, uint32_t count, uint32_t reason,
			  const char *what)
{
	cr_assert_eq(r->n, 1, "%s: expected %s %u (%s), got no action (target %u)", what,
		     kind_name(kind), count, swarm_as_reason_name(reason), r->target);
	cr_assert(r->a[0].kind == kind && r->a[0].count == count && r->a[0].reason == reason,
		  "%s: expected %s %u (%s), got %s %u (%s), target %u", what, kind_name(kind),
		  count, swarm_as_reason_name(reason), kind_name(r->a[0].kind), r->a[0].count,
		  swarm_as_reason_name(r->a[0].reason), r->target);
}

/* Applies an action to the model's counts, as swarmd would before its next tick. */
static void apply(struct swarm_as_model *m, const struct one *r)
{
	if (r->n != 1)
		return;
	if (r->a[0].kind == SWARM_AS_WAKE) {
		m->warming += r->a[0].count;
	} else {
		cr_assert(m->active >= r->a[0].count, "drain %u of %u active", r->a[0].count,
			  m->active);
		m->active -= r->a[0].count;
		m->draining += r->a[0].count;
	}
}

/* ---- the small things -------------------------------------------------------------------- */

Test(runtime_autoscaler, config_defaults)
{
	struct swarm_as_config c;
	swarm_as_config_default(&c);
	cr_assert(c.peak_window_ns == 1800 * SEC && c.peak_util == 0.8 && c.drain_all == 1,
		  "burst defaults: peak window %llu ns, peak util %g, drain_all %d",
		  (unsigned long long)c.peak_window_ns, c.peak_util, c.drain_all);
	cr_assert(c.target_util == 0.6 && c.hysteresis == 0.1 && c.panic_ratio == 2.0 &&
			  c.panic_delay_frac == 0.5,
		  "defaults: util %g hysteresis %g panic_ratio %g panic_delay_frac %g",
		  c.target_util, c.hysteresis, c.panic_ratio, c.panic_delay_frac);
	cr_assert_eq(c.stable_window_ns, 60 * SEC, "stable window %llu ns",
		     (unsigned long long)c.stable_window_ns);
	cr_assert_eq(c.cooldown_ns, 30 * SEC, "cooldown %llu ns",
		     (unsigned long long)c.cooldown_ns);
}

Test(runtime_autoscaler, reason_names)
{
	cr_assert_str_eq(swarm_as_reason_name(SWARM_AS_R_DEMAND), "demand");
	cr_assert_str_eq(swarm_as_reason_name(SWARM_AS_R_PANIC), "panic");
	cr_assert_str_eq(swarm_as_reason_name(SWARM_AS_R_MIN), "min");
	cr_assert_str_eq(swarm_as_reason_name(SWARM_AS_R_MAX), "max");
	cr_assert_str_eq(swarm_as_reason_name(SWARM_AS_R_FROM_ZERO), "from_zero");
	cr_assert_str_eq(swarm_as_reason_name(0), "?");
	cr_assert_str_eq(swarm_as_reason_name(99), "?");
}

/* ---- the stable target ------------------------------------------------------------------- */

Test(runtime_autoscaler, stable_target_from_long_rate)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(3, 250.0); /* 250 / (100 * 0.6) = 4.17 -> 5 */
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 5, "target %u for 250 req/s at 100/device, util 0.6", r.target);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_DEMAND, "3 in service, target 5");
	cr_assert_eq(mem.last_scale_ns, T0, "last_scale_ns %llu, now %llu",
		     (unsigned long long)mem.last_scale_ns, (unsigned long long)T0);
}

Test(runtime_autoscaler, exact_multiple_asks_no_extra_device)
{
	/* 420 / 100 / 0.6 is 7.000000000000001 in doubles, and 6 * 0.9 / 0.6 is
	 * 9.000000000000002: still 7 and 9 devices. */
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(7, 420.0);
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 7, "target %u for 420 req/s", r.target);
	expect_none(&r, "exactly at the target");

	m = model(9, 0.0);
	m.service_rate = 0.0;
	m.active = 6;
	m.warming = 3;
	m.busy = 0.9;
	r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 9, "target %u for busy 0.9 on 6", r.target);
	expect_none(&r, "exactly at the busy target");
}

Test(runtime_autoscaler, scale_up_is_immediate_despite_cooldown)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { .last_scale_ns = T0 - SEC }; /* scaled a second ago */
	struct swarm_as_model m = model(3, 300.0); /* target 5, under 2 * 3: no panic */
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_DEMAND, "a second after the last event");
}

Test(runtime_autoscaler, warming_devices_count_no_double_wake)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(1, 280.0); /* target 5 */
	m.rate_short = 60.0;                       /* a slow rise: no panic */
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	expect_action(&r, SWARM_AS_WAKE, 4, SWARM_AS_R_DEMAND, "1 in service, target 5");
	apply(&m, &r);
	/* The four warm up for a minute while the load stays: nothing more is woken. */
	for (uint64_t t = 1; t <= 60; t++) {
		r = decide1(T0 + t * SEC, &cfg, &m, &mem, 10 - 4);
		cr_assert_eq(r.target, 5, "t=%llus target %u", (unsigned long long)t, r.target);
		expect_none(&r, "while 4 devices warm (active 1, warming 4)");
	}
	/* Half of them ready, half still warming: still nothing. */
	m.active = 3;
	m.warming = 2;
	r = decide1(T0 + 61 * SEC, &cfg, &m, &mem, 6);
	expect_none(&r, "active 3, warming 2, target 5");
}

Test(runtime_autoscaler, draining_devices_do_not_count)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(1, 150.0); /* target 3 */
	m.rate_short = 60.0;
	m.draining = 3;
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_DEMAND, "active 1, draining 3, target 3");
}

Test(runtime_autoscaler, unknown_service_rate_falls_back_to_busy)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(4, 1000.0);
	m.service_rate = 0.0; /* not measured yet: the rates say nothing about devices */
	m.busy = 0.9;         /* 4 * 0.9 / 0.6 = 6 */
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 6, "target %u from busy %g on %u active", r.target, m.busy,
		     m.active);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_DEMAND, "busy fallback");

	/* Warming devices do no work: busy is over the active ones only. */
	m.warming = 2;
	r = decide1(T0 + SEC, &cfg, &m, &mem, 8);
	cr_assert_eq(r.target, 6, "target %u with 2 warming", r.target);
	expect_none(&r, "busy fallback, 2 already warming");

	/* A light load on busy alone scales down too, after the window. */
	struct swarm_as_memory mem2 = { 0 };
	m = model(4, 0.0);
	m.service_rate = 0.0;
	m.rate_long = m.rate_short = 50.0; /* arrivals, but no service rate to divide by */
	m.busy = 0.2;                      /* 0.8 device-equivalents: target 2 */
	int drains = 0;
	for (uint64_t t = 0; t <= 120; t++) {
		r = decide1(T0 + t * SEC, &cfg, &m, &mem2, 10);
		cr_assert_eq(r.target, 2, "t=%llus target %u from busy %g on %u",
			     (unsigned long long)t, r.target, m.busy, m.active);
		if (r.n) {
			expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND,
				      "busy fallback, low");
			cr_assert_geq(t, 60, "drained at t=%llus, before the window",
				      (unsigned long long)t);
			drains++;
			m.busy = m.busy * m.active / (m.active - 1);
			apply(&m, &r);
		}
	}
	cr_assert_eq(drains, 2, "drains %d from 4 to a target of 2 in 120 s (active now %u)",
		     drains, m.active);
}

/* ---- hysteresis: a noisy constant load does not flap ------------------------------------- */

#define SIM_WINDOW 60 /* the long window, s */
#define SIM_SHORT 5   /* the short window, s */

/* One model on a simulated cluster, 1 s ticks. Arrivals each second jitter uniformly by
 * `jitter` around `base`; the windows are the means over the last 60 s and 5 s, as swarmd's
 * stats give them; devices warm for 20 s and drain for 5 s; a fluid queue builds when the
 * active devices serve less than arrives. */
struct sim {
	struct swarm_as_config cfg;
	struct swarm_as_model m;
	struct swarm_as_memory mem;
	uint32_t parked;
	double ring[SIM_WINDOW];
	uint64_t ticks;
	double backlog;
	uint64_t warm_at[64], drained_at[64];
	uint32_t n_warm, n_drain;
	int wakes, drains, reversals, last_kind;
	uint64_t last_event_s;
};

static void sim_init(struct sim *s, double base, uint32_t active)
{
	memset(s, 0, sizeof(*s));
	s->cfg = defaults();
	s->m = model(active, base);
	s->m.max_devices = 64;
	s->m.latency_p99_ns = 500 * 1000000ull;
	s->parked = 64 - active;
	for (int i = 0; i < SIM_WINDOW; i++)
		s->ring[i] = base; /* the load has been there a while */
}

/* One second. rate_long and rate_short of -1 are the windows' means; others replace them
 * (a caller whose windows are themselves noisy). */
static void sim_tick_rates(struct sim *s, double arrivals, double rate_long, double rate_short)
{
	const uint64_t now_s = 1000 + ++s->ticks;
	struct swarm_as_model *m = &s->m;
	/* Devices that finished warming or draining. */
	for (uint32_t i = 0; i < s->n_warm;) {
		if (s->warm_at[i] <= now_s) {
			m->warming--;
			m->active++;
			s->warm_at[i] = s->warm_at[--s->n_warm];
		} else {
			i++;
		}
	}
	for (uint32_t i = 0; i < s->n_drain;) {
		if (s->drained_at[i] <= now_s) {
			m->draining--;
			s->parked++;
			s->drained_at[i] = s->drained_at[--s->n_drain];
		} else {
			i++;
		}
	}
	s->ring[s->ticks % SIM_WINDOW] = arrivals;
	double sum = 0.0, short_sum = 0.0;
	for (int i = 0; i < SIM_WINDOW; i++)
		sum += s->ring[i];
	for (int i = 0; i < SIM_SHORT; i++)
		short_sum += s->ring[(s->ticks + SIM_WINDOW - (uint64_t)i) % SIM_WINDOW];
	const double capacity = m->active * m->service_rate;
	s->backlog = fmax(0.0, s->backlog + arrivals - capacity);
	m->rate_long = rate_long < 0.0 ? sum / SIM_WINDOW : rate_long;
	m->rate_short = rate_short < 0.0 ? short_sum / SIM_SHORT : rate_short;
	m->busy = capacity > 0.0 ? fmin(1.0, (arrivals + s->backlog) / capacity) : 0.0;
	m->queue_depth = (uint32_t)s->backlog;

	struct one r = decide1(now_s * SEC, &s->cfg, m, &s->mem, s->parked);
	if (!r.n)
		return;
	const uint32_t kind = r.a[0].kind, count = r.a[0].count;
	if (s->last_kind && s->last_kind != (int)kind)
		s->reversals++;
	s->last_kind = (int)kind;
	s->last_event_s = s->ticks;
	if (kind == SWARM_AS_WAKE) {
		cr_assert_leq(count, s->parked, "woke %u of %u parked", count, s->parked);
		s->wakes++;
		s->parked -= count;
		m->warming += count;
		for (uint32_t i = 0; i < count; i++)
			s->warm_at[s->n_warm++] = now_s + 20;
	} else {
		cr_assert(count == 1 || s->cfg.drain_all, "drained %u at once", count);
		cr_assert_leq(count, m->active, "drained %u of %u active", count, m->active);
		s->drains++;
		m->active -= count;
		m->draining += count;
		for (uint32_t i = 0; i < count; i++)
			s->drained_at[s->n_drain++] = now_s + 5;
	}
}

static void sim_tick(struct sim *s, double arrivals) { sim_tick_rates(s, arrivals, -1.0, -1.0); }

Test(runtime_autoscaler, hysteresis_no_flapping_on_noisy_constant_load)
{
	/* From steady state (the devices the nominal load asks for), across loads that put the
	 * target on and between every boundary from 1 to 10 devices, with several seeds:
	 * 30 minutes each. The only event allowed is one scale-up where the jittered mean
	 * crosses a boundary the nominal load sits just under; never a move back. */
	for (int step = 0; step < 40; step++) {
		const double base = 40.0 + step * 14.5; /* 40 .. 605 req/s: 1 .. 11 devices */
		const uint32_t start = (uint32_t)ceil(base / 60.0 * (1.0 - 1e-12));
		for (uint64_t seed = 1; seed <= 3; seed++) {
			struct sim s;
			sim_init(&s, base, start);
			uint64_t rng = 0x9e3779b97f4a7c15ull * seed + (uint64_t)step;
			for (int t = 0; t < 30 * 60; t++)
				sim_tick(&s, base * (1.0 + 0.15 * rng_sym(&rng)));
			cr_assert(
				s.wakes + s.drains <= 1 && s.reversals == 0,
				"base %.1f req/s from %u devices, seed %llu: %d wakes, %d drains, "
				"%d reversals, last at %llus, active %u warming %u",
				base, start, (unsigned long long)seed, s.wakes, s.drains,
				s.reversals, (unsigned long long)s.last_event_s, s.m.active,
				s.m.warming);
		}
	}
}

Test(runtime_autoscaler, hysteresis_settles_after_initial_scale_up)
{
	/* From one device under a load that needs four: the initial moves (a scale-up, the
	 * panic while the others warm, which wakes what would clear its queue at once, and
	 * the scale-down after it, all the devices beyond the need at once) happen early; the
	 * last 20 of the 30 minutes are quiet, and nothing flaps. */
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim s;
		sim_init(&s, 220.0, 1);
		s.cfg.drain_all = 1;
		uint64_t rng = seed * 7919;
		for (int t = 0; t < 30 * 60; t++)
			sim_tick(&s, 220.0 * (1.0 + 0.15 * rng_sym(&rng)));
		cr_assert_geq(s.wakes, 1, "seed %llu: never scaled up (active %u)",
			      (unsigned long long)seed, s.m.active);
		cr_assert(s.last_event_s <= 10 * 60 && s.reversals <= 1,
			  "seed %llu: %d wakes, %d drains, %d reversals, last event at %llus, "
			  "active %u",
			  (unsigned long long)seed, s.wakes, s.drains, s.reversals,
			  (unsigned long long)s.last_event_s, s.m.active);
		cr_assert(s.m.active >= 4 && s.m.active <= 5, "seed %llu: settled on %u devices",
			  (unsigned long long)seed, s.m.active);
	}
}

Test(runtime_autoscaler, wider_hysteresis_holds_when_the_windows_themselves_jitter)
{
	/* A harsher caller: both windows jitter +-15% independently every tick (swarmd's 60 s
	 * mean varies by a few percent). The default band (0.5 to 0.6, a ratio of 1.2) is
	 * narrower than that noise (1.15 / 0.85 = 1.35); a band of 0.4 to 0.6 (1.5) is wider,
	 * and then the only moves are up, once the noise has found the top of its range. */
	for (int step = 0; step < 80; step++) {
		const double base = 40.0 + step * 7.25;
		const uint32_t start = (uint32_t)ceil(base / 60.0 * (1.0 - 1e-12));
		for (uint64_t seed = 1; seed <= 2; seed++) {
			struct sim s;
			sim_init(&s, base, start);
			s.cfg.hysteresis = 0.2;
			uint64_t rng = 0x2545f4914f6cdd1dull * seed + (uint64_t)step;
			for (int t = 0; t < 30 * 60; t++) {
				const double l = base * (1.0 + 0.15 * rng_sym(&rng));
				const double sh = base * (1.0 + 0.15 * rng_sym(&rng));
				sim_tick_rates(&s, base, l, sh);
			}
			cr_assert(s.drains == 0 && s.wakes <= 2,
				  "base %.1f req/s from %u devices, seed %llu, hysteresis 0.2: "
				  "%d wakes, %d drains, last at %llus, active %u",
				  base, start, (unsigned long long)seed, s.wakes, s.drains,
				  (unsigned long long)s.last_event_s, s.m.active);
		}
	}
}

Test(runtime_autoscaler, scale_down_needs_the_hysteresis_band)
{
	/* 3 in service at 110 req/s: the target is 2, but 2 devices would run at 0.55, above
	 * 0.6 - 0.1: nothing drains, however long. At 100 req/s (0.5 each) one drains. */
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(3, 110.0);
	for (uint64_t t = 0; t <= 600; t++) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 10);
		cr_assert_eq(r.target, 2, "t=%llus target %u", (unsigned long long)t, r.target);
		expect_none(&r, "2 devices left would run at 0.55");
	}
	m = model(3, 100.0);
	struct one r = decide1(T0 + 601 * SEC, &cfg, &m, &mem, 10);
	expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND, "2 left at 0.5");

	/* The short window counts too: a rising short rate keeps the devices. */
	struct swarm_as_memory mem2 = mem;
	mem2.last_scale_ns = 0;
	m.rate_short = 115.0;
	r = decide1(T0 + 602 * SEC, &cfg, &m, &mem2, 10);
	expect_none(&r, "long 100, short 115: 2 left would run at 0.575");
}

/* ---- stable window and cool-down -------------------------------------------------------- */

Test(runtime_autoscaler, scale_down_waits_for_the_stable_window)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(8, 50.0); /* target 1 */
	for (uint64_t t = 0; t < 60; t++) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 0);
		cr_assert_eq(r.target, 1, "t=%llus target %u", (unsigned long long)t, r.target);
		expect_none(&r, "inside the stable window");
		cr_assert_eq(mem.low_since_ns, T0, "low_since %llu, want %llu",
			     (unsigned long long)mem.low_since_ns, (unsigned long long)T0);
	}
	struct one r = decide1(T0 + 60 * SEC, &cfg, &m, &mem, 0);
	expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND, "window over, target 1 of 8");

	/* A target back at what is in service restarts the window. */
	struct swarm_as_memory mem2 = { 0 };
	m = model(4, 50.0);
	decide1(T0, &cfg, &m, &mem2, 0);
	m.rate_long = m.rate_short = 200.0; /* target 4 for one tick */
	r = decide1(T0 + 30 * SEC, &cfg, &m, &mem2, 0);
	expect_none(&r, "target back to 4");
	cr_assert_eq(mem2.low_since_ns, 0, "low_since %llu after the target came back",
		     (unsigned long long)mem2.low_since_ns);
	m.rate_long = m.rate_short = 50.0;
	for (uint64_t t = 31; t < 91; t++) {
		r = decide1(T0 + t * SEC, &cfg, &m, &mem2, 0);
		expect_none(&r, "the window restarted at 31 s");
	}
	r = decide1(T0 + 91 * SEC, &cfg, &m, &mem2, 0);
	expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND, "window over at 91 s");
}

Test(runtime_autoscaler, cooldown_after_any_scale_event)
{
	struct swarm_as_config cfg = defaults();
	/* Low for long, but a scale event 10 s ago. */
	struct swarm_as_memory mem = { .last_scale_ns = T0 - 10 * SEC,
				       .low_since_ns = T0 - 300 * SEC };
	struct swarm_as_model m = model(8, 50.0);
	for (uint64_t t = 0; t < 20; t++) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 0);
		expect_none(&r, "within the cool-down");
	}
	/* Then one device per cool-down, each a scale event of its own. */
	uint64_t last = 0;
	int drains = 0;
	for (uint64_t t = 20; t <= 20 + 7 * 30; t++) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 0);
		if (!r.n)
			continue;
		expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND, "low, cooled down");
		if (drains)
			cr_assert_eq(t - last, 30, "drains %llus apart, cool-down 30 s",
				     (unsigned long long)(t - last));
		cr_assert_eq(mem.last_scale_ns, T0 + t * SEC, "last_scale %llu at t=%llus",
			     (unsigned long long)mem.last_scale_ns, (unsigned long long)t);
		last = t;
		drains++;
		apply(&m, &r);
	}
	cr_assert_eq(m.active, 1, "active %u after %d drains toward a target of 1", m.active,
		     drains);

	/* A scale-up is an event too: no scale-down within its cool-down. */
	struct swarm_as_memory mem2 = { .low_since_ns = T0 - 300 * SEC };
	m = model(3, 200.0);
	struct one r = decide1(T0, &cfg, &m, &mem2, 10);
	expect_action(&r, SWARM_AS_WAKE, 1, SWARM_AS_R_DEMAND, "200 req/s on 3");
	cr_assert_eq(mem2.low_since_ns, 0, "low_since %llu after a scale-up",
		     (unsigned long long)mem2.low_since_ns);
}

/* ---- panic --------------------------------------------------------------------------------- */

Test(runtime_autoscaler, panic_on_a_step_to_four_times_the_load)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(2, 110.0);
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	expect_none(&r, "steady at 110 req/s on 2");
	/* The short window sees 4x at once; the long one has barely moved. */
	m.rate_short = 440.0; /* 440 / 60 = 7.3 -> 8 >= 2 * 2 */
	m.rate_long = 115.0;
	m.busy = 1.0;
	r = decide1(T0 + SEC, &cfg, &m, &mem, 20);
	cr_assert_eq(r.target, 8, "panic target %u for a short rate of %g", r.target, m.rate_short);
	expect_action(&r, SWARM_AS_WAKE, 6, SWARM_AS_R_PANIC, "step to 4x");
	cr_assert_eq(mem.panic_until_ns, T0 + SEC + cfg.stable_window_ns, "panic_until %llu",
		     (unsigned long long)mem.panic_until_ns);
}

Test(runtime_autoscaler, panic_on_a_queue_while_rates_lag)
{
	/* The rates say 2 devices are right, but 150 requests wait on 2 devices at 100/s each:
	 * 0.75 s of queueing against a 100 ms objective. */
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(2, 110.0);
	m.queue_depth = 150;
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	cr_assert_gt(r.target, 2, "target %u with a queue of %u (rates %g/%g)", r.target,
		     m.queue_depth, m.rate_long, m.rate_short);
	cr_assert_eq(r.n, 1, "no action for a queue of %u on 2 devices", m.queue_depth);
	cr_assert(r.a[0].kind == SWARM_AS_WAKE && r.a[0].reason == SWARM_AS_R_PANIC,
		  "%s %u (%s) for a queue", kind_name(r.a[0].kind), r.a[0].count,
		  swarm_as_reason_name(r.a[0].reason));
	cr_assert_eq(r.a[0].count, r.target - 2, "woke %u toward a target of %u", r.a[0].count,
		     r.target);
	cr_assert_eq(mem.panic_until_ns, T0 + cfg.stable_window_ns, "panic_until %llu",
		     (unsigned long long)mem.panic_until_ns);

	/* Under the threshold (40 ms of queueing, budget 50 ms): no panic, no wake. */
	struct swarm_as_memory mem2 = { 0 };
	m.queue_depth = 8;
	r = decide1(T0, &cfg, &m, &mem2, 20);
	expect_none(&r, "40 ms of queue against a 50 ms budget");
	cr_assert_eq(mem2.panic_until_ns, 0, "panic_until %llu without a panic",
		     (unsigned long long)mem2.panic_until_ns);

	/* No objective: a queue alone never panics. */
	struct swarm_as_memory mem3 = { 0 };
	m.queue_depth = 10000;
	m.latency_p99_ns = 0;
	r = decide1(T0, &cfg, &m, &mem3, 20);
	expect_none(&r, "no objective");
}

Test(runtime_autoscaler, panic_on_observed_p99)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(4, 230.0); /* target 4 */
	m.busy = 0.95;                             /* busier than the rates say */
	m.p99_ns = 150 * 1000000ull;               /* over the 100 ms objective */
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	/* 4 * 0.95 / 0.6 = 6.33 -> 7 */
	cr_assert_eq(r.target, 7, "target %u with p99 %llu ns over the objective", r.target,
		     (unsigned long long)m.p99_ns);
	expect_action(&r, SWARM_AS_WAKE, 3, SWARM_AS_R_PANIC, "p99 over the objective");
}

Test(runtime_autoscaler, no_scale_down_until_a_window_after_the_panic)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(2, 110.0);
	m.rate_short = 440.0;
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	expect_action(&r, SWARM_AS_WAKE, 6, SWARM_AS_R_PANIC, "step to 4x");
	apply(&m, &r);
	m.active += m.warming;
	m.warming = 0;
	/* Panicking for 20 s more, then the burst is gone at once. */
	for (uint64_t t = 1; t <= 20; t++) {
		m.rate_short = 900.0; /* 15 < 2 * 8: no longer a panic by ratio */
		m.p99_ns = 200 * 1000000ull;
		r = decide1(T0 + t * SEC, &cfg, &m, &mem, 20);
		cr_assert_eq(mem.panic_until_ns, T0 + (t + 60) * SEC, "t=%llus panic_until %llu",
			     (unsigned long long)t, (unsigned long long)mem.panic_until_ns);
		apply(&m, &r);
		m.active += m.warming;
		m.warming = 0;
	}
	const uint64_t until = mem.panic_until_ns;
	const uint32_t peak = m.active;
	m.rate_long = m.rate_short = 50.0;
	m.p99_ns = 0;
	uint64_t first_drain = 0;
	for (uint64_t t = 21; t <= 200; t++) {
		r = decide1(T0 + t * SEC, &cfg, &m, &mem, 20);
		if (r.n) {
			expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND, "after the panic");
			if (!first_drain)
				first_drain = T0 + t * SEC;
			apply(&m, &r);
		}
	}
	cr_assert(first_drain >= until, "first drain at %llu, panic over at %llu",
		  (unsigned long long)first_drain, (unsigned long long)until);
	cr_assert_lt(m.active, peak, "never scaled down from %u after the panic", peak);
}

Test(runtime_autoscaler, a_panic_blocks_scale_down_even_with_a_low_target)
{
	/* A tail over the objective on a lightly loaded model (a slow request, not a shortage):
	 * the target stays low, but nothing drains until a stable window after the panic, even
	 * though the low window alone would have allowed it. */
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(8, 50.0);
	m.busy = 0.1;
	m.p99_ns = 200 * 1000000ull;
	for (uint64_t t = 0; t <= 20; t++) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 0);
		cr_assert_lt(r.target, 8, "t=%llus target %u", (unsigned long long)t, r.target);
		expect_none(&r, "panicking");
	}
	cr_assert_eq(mem.low_since_ns, T0, "low since %llu", (unsigned long long)mem.low_since_ns);
	m.p99_ns = 20 * 1000000ull;
	for (uint64_t t = 21; t < 80; t++) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 0);
		expect_none(&r, "within a stable window after the panic");
	}
	struct one r = decide1(T0 + 80 * SEC, &cfg, &m, &mem, 0);
	expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND, "a window after the panic");
}

/* ---- min and max ------------------------------------------------------------------------- */

Test(runtime_autoscaler, min_devices)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(0, 0.0);
	m.min_devices = 2;
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 2, "target %u with min 2 and no load", r.target);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_MIN, "below min");

	/* At min with no load: never below it, however long. */
	struct swarm_as_memory mem2 = { 0 };
	m = model(2, 0.0);
	m.min_devices = 2;
	m.sessions = 0;
	for (uint64_t t = 0; t <= 600; t += 5) {
		r = decide1(T0 + t * SEC, &cfg, &m, &mem2, 10);
		expect_none(&r, "at min 2, no load");
	}

	/* Below min with the wake budget short: as many as there are. */
	struct swarm_as_memory mem3 = { 0 };
	m = model(1, 0.0);
	m.min_devices = 4;
	r = decide1(T0, &cfg, &m, &mem3, 2);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_MIN, "below min 4, 2 parked");
}

Test(runtime_autoscaler, max_devices)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(1, 10000.0);
	m.max_devices = 4;
	struct one r = decide1(T0, &cfg, &m, &mem, 100);
	cr_assert_eq(r.target, 4, "target %u with max 4 under 10000 req/s", r.target);
	cr_assert_eq(r.n, 1, "no wake toward max");
	cr_assert_eq(r.a[0].count, 3, "woke %u from 1 toward max 4", r.a[0].count);

	/* Above max (it was lowered): one drain per call, at once, whatever the window,
	 * cool-down, panic or load. */
	struct swarm_as_memory mem2 = { .last_scale_ns = T0, .panic_until_ns = T0 + 60 * SEC };
	m = model(7, 10000.0);
	m.max_devices = 4;
	for (int i = 0; i < 3; i++) {
		r = decide1(T0 + (uint64_t)i, &cfg, &m, &mem2, 100);
		cr_assert_eq(r.target, 4, "target %u above max", r.target);
		expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_MAX, "above max 4");
		apply(&m, &r);
	}
	r = decide1(T0 + 3, &cfg, &m, &mem2, 100);
	expect_none(&r, "at max");
	cr_assert_eq(m.active, 4, "active %u", m.active);
}

Test(runtime_autoscaler, max_zero_means_min_and_max_below_min_clamps)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(1, 10000.0);
	m.min_devices = 2;
	m.max_devices = 0;
	struct one r = decide1(T0, &cfg, &m, &mem, 100);
	cr_assert_eq(r.target, 2, "target %u with min 2, max 0", r.target);
	expect_action(&r, SWARM_AS_WAKE, 1, SWARM_AS_R_PANIC, "10000 req/s, max 0 = min 2");

	struct swarm_as_memory mem2 = { 0 };
	m = model(1, 0.0);
	m.min_devices = 3;
	m.max_devices = 1;
	r = decide1(T0, &cfg, &m, &mem2, 100);
	cr_assert_eq(r.target, 3, "target %u with min 3, max 1", r.target);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_MIN, "max below min");
}

/* ---- the last device and scale from zero ------------------------------------------------- */

Test(runtime_autoscaler, last_device_kept_while_sessions_min_one)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(1, 0.0);
	m.sessions = 3;
	for (uint64_t t = 0; t <= 900; t += 3) {
		struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 10);
		cr_assert_eq(r.target, 1, "target %u with min 1", r.target);
		expect_none(&r, "last device, 3 sessions, min 1");
	}
}

Test(runtime_autoscaler, min_zero_drains_to_zero_even_with_sessions)
{
	struct swarm_as_config cfg = defaults();
	for (uint32_t sessions = 0; sessions <= 2; sessions += 2) {
		struct swarm_as_memory mem = { 0 };
		struct swarm_as_model m = model(1, 0.0);
		m.min_devices = 0;
		m.sessions = sessions;
		uint64_t drained = 0;
		for (uint64_t t = 0; t <= 120 && !drained; t++) {
			struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 10);
			cr_assert_eq(r.target, 0, "target %u, idle, min 0", r.target);
			if (r.n) {
				expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_DEMAND,
					      "idle, min 0");
				drained = t;
			}
		}
		cr_assert_eq(drained, 60, "sessions %u: drained the last device at %llus", sessions,
			     (unsigned long long)drained);
	}
}

Test(runtime_autoscaler, last_device_kept_while_anything_arrives_min_zero)
{
	/* Any arrival in the window, a queued request or a held open keeps one device. */
	struct swarm_as_config cfg = defaults();
	for (int what = 0; what < 4; what++) {
		struct swarm_as_memory mem = { 0 };
		struct swarm_as_model m = model(1, 0.0);
		m.min_devices = 0;
		m.sessions = 0;
		if (what == 0)
			m.rate_long = 0.01;
		else if (what == 1)
			m.rate_short = 0.2;
		else if (what == 2)
			m.queue_depth = 1;
		else
			m.waiting_opens = 1;
		for (uint64_t t = 0; t <= 300; t += 5) {
			struct one r = decide1(T0 + t * SEC, &cfg, &m, &mem, 10);
			cr_assert_eq(r.target, 1, "case %d: target %u", what, r.target);
			expect_none(&r, "one device with something arriving");
		}
	}
}

Test(runtime_autoscaler, scale_from_zero)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(0, 0.0);
	m.min_devices = 0;
	m.sessions = 0;
	m.waiting_opens = 1;
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 1, "target %u with a waiting open", r.target);
	expect_action(&r, SWARM_AS_WAKE, 1, SWARM_AS_R_FROM_ZERO,
		      "an open waits, nothing in service");
	apply(&m, &r);
	r = decide1(T0 + SEC, &cfg, &m, &mem, 9);
	expect_none(&r, "the one device is warming");

	/* A request of an open session (its device was parked), and arrivals alone, too. */
	for (int what = 0; what < 3; what++) {
		struct swarm_as_memory mem2 = { 0 };
		m = model(0, 0.0);
		m.min_devices = 0;
		if (what == 0)
			m.queue_depth = 1;
		else if (what == 1)
			m.rate_short = 0.5;
		else
			m.rate_long = 0.5;
		r = decide1(T0, &cfg, &m, &mem2, 10);
		expect_action(&r, SWARM_AS_WAKE, 1, SWARM_AS_R_FROM_ZERO, "from zero");
	}

	/* Nothing waits: nothing wakes. No device to wake: the target stands, no action. */
	struct swarm_as_memory mem3 = { 0 };
	m = model(0, 0.0);
	m.min_devices = 0;
	r = decide1(T0, &cfg, &m, &mem3, 10);
	cr_assert_eq(r.target, 0, "target %u idle at zero", r.target);
	expect_none(&r, "idle at zero");
	m.waiting_opens = 3;
	r = decide1(T0, &cfg, &m, &mem3, 0);
	cr_assert_eq(r.target, 1, "target %u with nothing parked", r.target);
	expect_none(&r, "nothing parked");
	cr_assert_eq(mem3.last_scale_ns, 0, "an action not taken was remembered at %llu",
		     (unsigned long long)mem3.last_scale_ns);
}

/* ---- several models ---------------------------------------------------------------------- */

Test(runtime_autoscaler, parked_budget_shared_in_order)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_model m[4];
	struct swarm_as_memory mem[4] = { 0 };
	for (int i = 0; i < 4; i++)
		m[i] = model(1, 230.0); /* target 4 each: 3 to wake */
	m[2] = model(5, 50.0);          /* wants fewer: not a waker */
	struct swarm_as_action a[8];
	uint32_t target[4];
	int n = swarm_as_decide(T0, &cfg, m, mem, 4, 5, a, 8, target);
	cr_assert_eq(n, 2, "actions %d with 5 parked for 3 + 3 + 3", n);
	cr_assert(a[0].model == 0 && a[0].kind == SWARM_AS_WAKE && a[0].count == 3,
		  "first: model %u %s %u", a[0].model, kind_name(a[0].kind), a[0].count);
	cr_assert(a[1].model == 1 && a[1].kind == SWARM_AS_WAKE && a[1].count == 2,
		  "second: model %u %s %u", a[1].model, kind_name(a[1].kind), a[1].count);
	cr_assert(target[0] == 4 && target[1] == 4 && target[2] == 1 && target[3] == 4,
		  "targets %u %u %u %u", target[0], target[1], target[2], target[3]);
	cr_assert_eq(mem[3].last_scale_ns, 0, "model 3 woke nothing but remembered %llu",
		     (unsigned long long)mem[3].last_scale_ns);
}

Test(runtime_autoscaler, actions_beyond_max_are_not_taken_nor_remembered)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_model m[2] = { model(1, 230.0), model(1, 230.0) };
	struct swarm_as_memory mem[2] = { 0 };
	struct swarm_as_action a[1];
	int n = swarm_as_decide(T0, &cfg, m, mem, 2, 10, a, 1, NULL);
	cr_assert_eq(n, 1, "actions %d with room for 1", n);
	cr_assert_eq(a[0].model, 0, "action for model %u", a[0].model);
	cr_assert(mem[0].last_scale_ns == T0 && mem[1].last_scale_ns == 0, "last_scale %llu %llu",
		  (unsigned long long)mem[0].last_scale_ns,
		  (unsigned long long)mem[1].last_scale_ns);
	/* No room at all: the targets still come back. */
	uint32_t target[2] = { 0, 0 };
	struct swarm_as_memory mem2[2] = { 0 };
	n = swarm_as_decide(T0, &cfg, m, mem2, 2, 10, NULL, 0, target);
	cr_assert(n == 0 && target[0] == 4 && target[1] == 4, "n %d targets %u %u", n, target[0],
		  target[1]);
}

/* A random model, sometimes with absurd values. */
static struct swarm_as_model random_model(uint64_t *rng)
{
	static const double odd[] = { NAN, -1.0, INFINITY, -INFINITY, 0.0, 1e300, 5e-324 };
	struct swarm_as_model m = {
		.min_devices = (uint32_t)(rng_next(rng) % 4),
		.max_devices = (uint32_t)(rng_next(rng) % 12),
		.latency_p99_ns = (rng_next(rng) % 3) * 50 * 1000000ull,
		.rate_long = (double)(rng_next(rng) % 2000),
		.rate_short = (double)(rng_next(rng) % 4000),
		.service_rate = (double)(rng_next(rng) % 3) * 80.0,
		.busy = (double)(rng_next(rng) % 101) / 100.0,
		.queue_depth = (uint32_t)(rng_next(rng) % 3 ? 0 : rng_next(rng) % 500),
		.p99_ns = (rng_next(rng) % 4) * 60 * 1000000ull,
		.sessions = (uint32_t)(rng_next(rng) % 3),
		.waiting_opens = (uint32_t)(rng_next(rng) % 4 == 0),
		.active = (uint32_t)(rng_next(rng) % 10),
		.warming = (uint32_t)(rng_next(rng) % 3),
		.draining = (uint32_t)(rng_next(rng) % 2),
	};
	if (rng_next(rng) % 8 == 0)
		m.rate_long = odd[rng_next(rng) % 7];
	if (rng_next(rng) % 8 == 0)
		m.rate_short = odd[rng_next(rng) % 7];
	if (rng_next(rng) % 8 == 0)
		m.service_rate = odd[rng_next(rng) % 7];
	if (rng_next(rng) % 8 == 0)
		m.busy = odd[rng_next(rng) % 7];
	return m;
}

Test(runtime_autoscaler, pure_and_deterministic_with_invariants)
{
	struct swarm_as_config cfg = defaults();
	uint64_t rng = 0x5eed;
	for (int round = 0; round < 2000; round++) {
		enum {
			N = 6
		};
		struct swarm_as_model m[N], m_copy[N];
		struct swarm_as_memory mem[N], mem_b[N];
		for (int i = 0; i < N; i++) {
			m[i] = random_model(&rng);
			mem[i] = (struct swarm_as_memory){
				.last_scale_ns =
					rng_next(&rng) % 2 ? T0 - rng_next(&rng) % (90 * SEC) : 0,
				.low_since_ns =
					rng_next(&rng) % 2 ? T0 - rng_next(&rng) % (90 * SEC) : 0,
				.panic_until_ns =
					rng_next(&rng) % 4 ? 0 : T0 + rng_next(&rng) % (9 * SEC),
			};
		}
		memcpy(m_copy, m, sizeof(m));
		memcpy(mem_b, mem, sizeof(mem));
		const uint32_t parked = (uint32_t)(rng_next(&rng) % 16);
		struct swarm_as_action a[N], b[N];
		uint32_t ta[N], tb[N];
		memset(a, 0, sizeof(a));
		memset(b, 0, sizeof(b));
		int na = swarm_as_decide(T0, &cfg, m, mem, N, parked, a, N, ta);
		int nb = swarm_as_decide(T0, &cfg, m, mem_b, N, parked, b, N, tb);
		cr_assert(na >= 0 && na == nb, "round %d: %d then %d actions", round, na, nb);
		cr_assert(!memcmp(a, b, sizeof(a)) && !memcmp(ta, tb, sizeof(ta)) &&
				  !memcmp(mem, mem_b, sizeof(mem)),
			  "round %d: the same inputs gave different outputs", round);
		cr_assert(!memcmp(m, m_copy, sizeof(m)), "round %d: the models were written",
			  round);

		/* Model by model, in order: what its counts and target call for. */
		uint32_t left = parked;
		int k = 0;
		for (uint32_t i = 0; i < N; i++) {
			const struct swarm_as_model *x = &m[i];
			const uint32_t maxd = x->max_devices < x->min_devices ? x->min_devices :
										x->max_devices;
			const uint32_t in = x->active + x->warming;
			const struct swarm_as_action *act = k < na && a[k].model == i ? &a[k++] :
											NULL;
			if (in > maxd) {
				cr_assert(act && act->kind == SWARM_AS_DRAIN && act->count == 1 &&
						  act->reason == SWARM_AS_R_MAX,
					  "round %d model %u: %u in service over max %u, no drain",
					  round, i, in, maxd);
			} else if (ta[i] > in) {
				const uint32_t want = ta[i] - in < left ? ta[i] - in : left;
				if (!want) {
					cr_assert(!act,
						  "round %d model %u: acted with nothing parked",
						  round, i);
					continue;
				}
				cr_assert(act && act->kind == SWARM_AS_WAKE && act->count == want,
					  "round %d model %u: in service %u, target %u, %u parked "
					  "left: expected wake %u, got %s %u",
					  round, i, in, ta[i], left, want,
					  act ? kind_name(act->kind) : "nothing",
					  act ? act->count : 0);
				left -= want;
			} else if (ta[i] < in) {
				cr_assert(!act || (act->kind == SWARM_AS_DRAIN && act->count == 1 &&
						   act->reason == SWARM_AS_R_DEMAND),
					  "round %d model %u: target %u below %u: %s %u", round, i,
					  ta[i], in, kind_name(act->kind), act->count);
				cr_assert(!act || (in - 1 >= x->min_devices &&
						   !(x->sessions && x->min_devices && in == 1)),
					  "round %d model %u: drained from %u, min %u, sessions %u",
					  round, i, in, x->min_devices, x->sessions);
			} else {
				cr_assert(!act, "round %d model %u: at target %u, yet %s %u", round,
					  i, ta[i], kind_name(act->kind), act->count);
			}
		}
		cr_assert_eq(k, na, "round %d: %d actions, %d accounted for", round, na, k);
		for (int i = 0; i < N; i++) {
			const uint32_t maxd = m[i].max_devices < m[i].min_devices ?
						      m[i].min_devices :
						      m[i].max_devices;
			cr_assert(ta[i] >= m[i].min_devices && ta[i] <= maxd,
				  "round %d model %d: target %u outside [%u, %u]", round, i, ta[i],
				  m[i].min_devices, maxd);
		}
	}
}

/* ---- bad inputs -------------------------------------------------------------------------- */

Test(runtime_autoscaler, bad_rates_read_as_zero)
{
	struct swarm_as_config cfg = defaults();
	const double bad[] = { NAN, -1.0, -INFINITY, INFINITY };
	for (int i = 0; i < 4; i++) {
		struct swarm_as_memory mem = { 0 };
		struct swarm_as_model m = model(2, 0.0);
		m.rate_long = m.rate_short = bad[i];
		m.busy = bad[i];
		struct one r = decide1(T0, &cfg, &m, &mem, 10);
		cr_assert_eq(r.target, 1, "rates and busy %g: target %u", bad[i], r.target);
		expect_none(&r, "bad rates");
		cr_assert_eq(mem.panic_until_ns, 0, "rates %g panicked", bad[i]);
		/* A bad service rate falls back to busy. */
		m = model(3, 100.0);
		m.service_rate = bad[i];
		m.busy = 0.5; /* 1.5 / 0.6 = 2.5 -> 3 */
		r = decide1(T0, &cfg, &m, &mem, 10);
		cr_assert_eq(r.target, 3, "service rate %g: target %u", bad[i], r.target);
	}
	/* busy over 1 reads as 1. */
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(3, 0.0);
	m.service_rate = 0.0;
	m.busy = 7.0;
	struct one r = decide1(T0, &cfg, &m, &mem, 10);
	cr_assert_eq(r.target, 5, "busy 7 on 3: target %u", r.target);
}

Test(runtime_autoscaler, huge_counts_and_rates_saturate)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_memory mem = { .last_scale_ns = UINT64_MAX, .low_since_ns = UINT64_MAX };
	struct swarm_as_model m = model(UINT32_MAX, 1e300);
	m.p99_ns = UINT64_MAX; /* a panic, whose window saturates */
	m.warming = UINT32_MAX;
	m.max_devices = UINT32_MAX;
	m.min_devices = 0;
	m.queue_depth = UINT32_MAX;
	struct one r = decide1(UINT64_MAX, &cfg, &m, &mem, UINT32_MAX);
	cr_assert_eq(r.target, UINT32_MAX, "target %u", r.target);
	/* 2^33 in service, above a max of 2^32 - 1: one drain. */
	expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_MAX, "in service over UINT32_MAX");
	cr_assert_eq(mem.panic_until_ns, UINT64_MAX, "panic_until %llu",
		     (unsigned long long)mem.panic_until_ns);

	struct swarm_as_memory mem2 = { 0 };
	m = model(1, 1e300);
	m.max_devices = 0;
	m.min_devices = 0;
	r = decide1(T0, &cfg, &m, &mem2, 10);
	cr_assert_eq(r.target, 0, "max 0 = min 0: target %u", r.target);
	expect_action(&r, SWARM_AS_DRAIN, 1, SWARM_AS_R_MAX, "min 0, max 0, one in service");
}

Test(runtime_autoscaler, bad_arguments_are_einval)
{
	struct swarm_as_config cfg = defaults();
	struct swarm_as_model m = model(1, 100.0);
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_action a[2];
	cr_assert_eq(swarm_as_decide(T0, NULL, &m, &mem, 1, 1, a, 2, NULL), -EINVAL);
	cr_assert_eq(swarm_as_decide(T0, &cfg, NULL, &mem, 1, 1, a, 2, NULL), -EINVAL);
	cr_assert_eq(swarm_as_decide(T0, &cfg, &m, NULL, 1, 1, a, 2, NULL), -EINVAL);
	cr_assert_eq(swarm_as_decide(T0, &cfg, &m, &mem, 1, 1, NULL, 2, NULL), -EINVAL);
	cr_assert_eq(swarm_as_decide(T0, &cfg, NULL, NULL, 0, 1, NULL, 0, NULL), 0);

	struct swarm_as_config bad[8];
	for (int i = 0; i < 8; i++)
		bad[i] = cfg;
	bad[0].target_util = 0.0;
	bad[1].target_util = 1.5;
	bad[2].target_util = NAN;
	bad[3].hysteresis = -0.1;
	bad[4].hysteresis = 0.6; /* as much as target_util: nothing could ever scale down */
	bad[5].panic_ratio = 1.0;
	bad[6].panic_ratio = NAN;
	bad[7].panic_delay_frac = 0.0;
	for (int i = 0; i < 8; i++) {
		int rc = swarm_as_decide(T0, &bad[i], &m, &mem, 1, 1, a, 2, NULL);
		cr_assert_eq(rc, -EINVAL,
			     "config %d (util %g hysteresis %g panic_ratio %g delay_frac %g): %d",
			     i, bad[i].target_util, bad[i].hysteresis, bad[i].panic_ratio,
			     bad[i].panic_delay_frac, rc);
	}
	cr_assert(mem.last_scale_ns == 0 && mem.low_since_ns == 0 && mem.panic_until_ns == 0,
		  "memory written by a rejected call");

	/* Infinity disables a panic trigger; it is not an error. */
	struct swarm_as_config off = cfg;
	off.panic_ratio = INFINITY;
	off.panic_delay_frac = INFINITY;
	struct swarm_as_model burst = model(2, 110.0);
	burst.rate_short = 4000.0;
	burst.queue_depth = 5000;
	struct one r = decide1(T0, &off, &burst, &mem, 10);
	expect_none(&r, "panic triggers off");
}

Test(runtime_autoscaler, time_zero_and_clock_going_back)
{
	struct swarm_as_config cfg = defaults();
	cfg.stable_window_ns = 0;
	cfg.cooldown_ns = 0;
	/* An event at time 0 is still remembered (memory uses 0 for none). */
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(1, 200.0);
	m.rate_short = 60.0;
	struct one r = decide1(0, &cfg, &m, &mem, 10);
	expect_action(&r, SWARM_AS_WAKE, 3, SWARM_AS_R_DEMAND, "at time 0");
	cr_assert_neq(mem.last_scale_ns, 0, "an event at time 0 was forgotten");

	/* Memory from the future (a clock that went back): the window and cool-down restart
	 * rather than pass. */
	struct swarm_as_config d = defaults();
	struct swarm_as_memory fut = { .last_scale_ns = T0 + 100 * SEC,
				       .low_since_ns = T0 + 100 * SEC };
	m = model(4, 50.0);
	r = decide1(T0, &d, &m, &fut, 10);
	expect_none(&r, "memory from the future");
}

/* ---- which parked devices become warm spares (swarm_as_spares) -------------------------- */

#define DEV(st)                            \
	{                                  \
		.state = SWARM_DEVICE_##st \
	}

/* ---- bursts ------------------------------------------------------------------------------ */

Test(runtime_autoscaler, burst_memory_holds_capacity_for_the_recent_peak)
{
	/* 100 req/s now on 2 devices, but a second of 1200 req/s in the peak window, and
	 * devices that have shown 100 req/s: ceil(1200 / (100 * 0.8)) = 15 stay in service. */
	struct swarm_as_config cfg;
	swarm_as_config_default(&cfg);
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(15, 100.0);
	m.rate_peak = 1200.0;
	m.service_peak = 100.0;
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	cr_assert_eq(r.target, 15, "target %u under a peak of %g", r.target, m.rate_peak);
	expect_none(&r, "the peak's devices are in service");
	r = decide1(T0 + 10 * 60 * SEC, &cfg, &m, &mem, 20);
	expect_none(&r, "ten minutes later, the peak still in the window");

	/* From 2 devices: a wake to the peak's 15, for demand. */
	struct swarm_as_memory mem2 = { 0 };
	m.active = 2;
	r = decide1(T0, &cfg, &m, &mem2, 20);
	expect_action(&r, SWARM_AS_WAKE, 13, SWARM_AS_R_DEMAND, "up to the peak's devices");

	/* The best rate seen, 150 req/s at full batches, against 100 on average: 10 devices. */
	m.service_peak = 150.0;
	m.active = 15;
	struct swarm_as_memory mem3 = { 0 };
	r = decide1(T0, &cfg, &m, &mem3, 20);
	cr_assert_eq(r.target, 10, "target %u at a best rate of %g", r.target, m.service_peak);

	/* Off (a peak window of 0): the stable target alone, ceil(100 / (100 * 0.6)) = 2. */
	cfg.peak_window_ns = 0;
	struct swarm_as_memory mem4 = { 0 };
	r = decide1(T0, &cfg, &m, &mem4, 20);
	cr_assert_eq(r.target, 2, "target %u with the burst memory off", r.target);
}

Test(runtime_autoscaler, a_scale_down_takes_every_device_beyond_the_need_at_once)
{
	struct swarm_as_config cfg;
	swarm_as_config_default(&cfg);
	struct swarm_as_memory mem = { 0 };
	/* 12 devices for 100 req/s (2 needed): the stable window, then one drain of 10. */
	struct swarm_as_model m = model(12, 100.0);
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	expect_none(&r, "the target just fell");
	r = decide1(T0 + cfg.stable_window_ns, &cfg, &m, &mem, 20);
	expect_action(&r, SWARM_AS_DRAIN, 10, SWARM_AS_R_DEMAND, "all beyond the target");
	apply(&m, &r);
	r = decide1(T0 + cfg.stable_window_ns + SEC, &cfg, &m, &mem, 20);
	expect_none(&r, "at the target");

	/* The band still holds: 290 req/s on 12 devices, target ceil(2.9 / 0.6) = 5, but 5
	 * devices would run at 0.58 > 0.5: the drain keeps ceil(2.9 / 0.5) = 6. */
	struct swarm_as_memory mem2 = { 0 };
	m = model(12, 290.0);
	r = decide1(T0, &cfg, &m, &mem2, 20);
	cr_assert_eq(r.target, 5, "target %u", r.target);
	r = decide1(T0 + cfg.stable_window_ns, &cfg, &m, &mem2, 20);
	expect_action(&r, SWARM_AS_DRAIN, 6, SWARM_AS_R_DEMAND, "down to the band");

	/* The minimum stays, and the last device with sessions. */
	struct swarm_as_memory mem3 = { 0 };
	m = model(12, 0.0);
	m.min_devices = 3;
	r = decide1(T0, &cfg, &m, &mem3, 20);
	r = decide1(T0 + cfg.stable_window_ns, &cfg, &m, &mem3, 20);
	expect_action(&r, SWARM_AS_DRAIN, 9, SWARM_AS_R_DEMAND, "down to the minimum");
	struct swarm_as_memory mem4 = { 0 };
	m = model(12, 0.0);
	r = decide1(T0, &cfg, &m, &mem4, 20);
	r = decide1(T0 + cfg.stable_window_ns, &cfg, &m, &mem4, 20);
	expect_action(&r, SWARM_AS_DRAIN, 11, SWARM_AS_R_DEMAND, "the last device stays");
}

Test(runtime_autoscaler, a_queue_panic_wakes_what_clears_the_queue_at_once)
{
	/* 10000 requests wait on 2 devices of 100 req/s, a 100 ms objective, and a second of
	 * 1000 req/s has just been seen: each device clears 5 within the 50 ms budget, so 2000
	 * would be needed; the cap, twice what the arrivals need (2 * 1000 / 100 / 0.6 = 33.3,
	 * so 34), is above the maximum, 16: all 14 wake at once, not a doubling per warm-up. */
	struct swarm_as_config cfg;
	swarm_as_config_default(&cfg);
	cfg.peak_window_ns = 0; /* the queue alone */
	struct swarm_as_memory mem = { 0 };
	struct swarm_as_model m = model(2, 110.0);
	m.queue_depth = 10000;
	m.rate_peak = 1000.0;
	struct one r = decide1(T0, &cfg, &m, &mem, 20);
	expect_action(&r, SWARM_AS_WAKE, 14, SWARM_AS_R_PANIC, "the queue's devices");
	/* Devices warming count: with the 14 coming, nothing more. */
	apply(&m, &r);
	r = decide1(T0 + SEC, &cfg, &m, &mem, 20);
	expect_none(&r, "the devices for the queue are warming");

	/* The same queue at 110 req/s (one held while the first device warmed, say): twice
	 * the larger of the active devices and what the arrivals need (110 / 100 / 0.6 = 1.8):
	 * 4, so 2 wake, and the pool is not taken for a backlog the arrivals do not renew. */
	struct swarm_as_memory mem2 = { 0 };
	m = model(2, 110.0);
	m.queue_depth = 10000;
	r = decide1(T0, &cfg, &m, &mem2, 20);
	expect_action(&r, SWARM_AS_WAKE, 2, SWARM_AS_R_PANIC, "twice the need");
}

/* ---- the burst memory's measurements ------------------------------------------------------ */

Test(runtime_autoscaler_peak, the_highest_complete_second_within_the_window)
{
	static struct swarm_as_peak p; /* large: not on the stack */
	memset(&p, 0, sizeof p);
	double rate, service;
	swarm_as_peak_get(&p, 300 * SEC, &rate, &service);
	cr_assert(rate == 0.0 && service == 0.0, "nothing yet: %g %g", rate, service);
	/* Ticks of 100 ms from 1000 s: 10 arrivals each, but 70 in the ticks of second 1005. */
	for (uint64_t t = 1; t <= 100; t++) {
		uint64_t now = T0 + t * SEC / 10;
		uint64_t n = (t > 50 && t <= 60) ? 70 : 10;
		swarm_as_peak_add(&p, now, n, n, 50000000ull); /* 50 ms busy a tick */
	}
	swarm_as_peak_get(&p, 300 * SEC, &rate, &service);
	cr_assert_eq(rate, 700.0, "peak %g req/s", rate);
	/* 700 served in 0.5 s busy: 1400 req/s, the best second. */
	cr_assert_eq(service, 1400.0, "best service %g", service);
	/* The window: 3 s back from 1010 s holds 1007..1009, not 1005. */
	swarm_as_peak_get(&p, 3 * SEC, &rate, &service);
	cr_assert_eq(rate, 100.0, "peak over 3 s %g", rate);
	cr_assert_eq(service, 1400.0, "the best service is kept beyond the window: %g", service);

	/* A second still open does not count: 5000 arrivals at 1010.5 s. */
	swarm_as_peak_add(&p, T0 + 10 * SEC + SEC / 2, 5000, 0, 0);
	swarm_as_peak_get(&p, 300 * SEC, &rate, &service);
	cr_assert_eq(rate, 700.0, "an open second counted: %g", rate);
	/* Complete at 1011 s. */
	swarm_as_peak_add(&p, T0 + 11 * SEC, 0, 0, 0);
	swarm_as_peak_get(&p, 300 * SEC, &rate, &service);
	cr_assert_eq(rate, 5000.0, "the completed second: %g", rate);

	/* A gap of ten minutes with no call: the old seconds are gone. */
	swarm_as_peak_add(&p, T0 + 700 * SEC, 3, 3, 1000000ull);
	swarm_as_peak_get(&p, 300 * SEC, &rate, &service);
	cr_assert_eq(rate, 3.0, "after the gap %g", rate);
	/* 1 ms busy is under the 10 ms a rate needs: the best stays. */
	cr_assert_eq(service, 1400.0, "best %g", service);

	/* A time from the past adds to the newest second, and nothing breaks. */
	swarm_as_peak_add(&p, T0, 4, 4, 0);
	swarm_as_peak_add(&p, T0 + 701 * SEC, 0, 0, 0);
	swarm_as_peak_get(&p, 300 * SEC, &rate, &service);
	cr_assert_eq(rate, 7.0, "a past time's arrivals: %g", rate);
}

Test(runtime_autoscaler_peak, a_window_longer_than_the_ring_reads_the_ring)
{
	static struct swarm_as_peak p;
	memset(&p, 0, sizeof p);
	for (uint64_t t = 1; t <= 2 * SWARM_AS_PEAK_SLOTS; t++)
		swarm_as_peak_add(&p, t * SEC, t, 0, 0);
	double rate, service;
	swarm_as_peak_get(&p, 100000 * SEC, &rate, &service);
	cr_assert_eq(rate, 2.0 * SWARM_AS_PEAK_SLOTS, "peak %g", rate);
	swarm_as_peak_get(&p, 0, &rate, &service);
	cr_assert_eq(rate, 0.0, "an empty window: %g", rate);
}

Test(runtime_autoscaler_pick, spares_are_the_highest_parked_devices_up_to_the_count)
{
	struct swarm_as_device devs[] = { DEV(ACTIVE), DEV(PARKED), DEV(PARKED), DEV(PARKED),
					  DEV(PARKED) };
	devs[4].parking = 1;
	int out[8];
	size_t n = swarm_as_spares(devs, 5, 2, out, 8);
	cr_assert_eq(n, 2, "%zu spares to start, want 2", n);
	cr_assert(out[0] == 3 && out[1] == 2, "spares %d and %d, want 3 and 2", out[0], out[1]);
	/* one ready and one warming to be a spare already count */
	devs[3].state = SWARM_DEVICE_STANDBY;
	devs[2].state = SWARM_DEVICE_WARMING;
	devs[2].to_standby = 1;
	n = swarm_as_spares(devs, 5, 2, out, 8);
	cr_assert_eq(n, 0, "%zu spares to start with two kept already", n);
	n = swarm_as_spares(devs, 5, 3, out, 8);
	cr_assert(n == 1 && out[0] == 1, "%zu spares (first %d), want device 1", n, out[0]);
}
