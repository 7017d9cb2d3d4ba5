/* autoscaler.c: the scaling policy of autoscaler.h, one pure function that swarmd and
 * tools/swarm-sim both call. It reads no clock and keeps no state of its own: the time comes
 * in, and what must survive a call lives in the caller's struct swarm_as_memory.
 */
#include "runtime/autoscaler.h"

#include "runtime/balancer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>

void swarm_as_config_default(struct swarm_as_config *cfg)
{
	*cfg = (struct swarm_as_config){
		.target_util = 0.6,
		.hysteresis = 0.1,
		.panic_ratio = 2.0,
		.panic_delay_frac = 0.5,
		.stable_window_ns = 60ull * 1000000000ull,
		.cooldown_ns = 30ull * 1000000000ull,
		.peak_window_ns = 1800ull * 1000000000ull,
		.peak_util = 0.8,
		.drain_all = 1,
	};
}

const char *swarm_as_reason_name(uint32_t reason)
{
	switch (reason) {
	case SWARM_AS_R_DEMAND:
		return "demand";
	case SWARM_AS_R_PANIC:
		return "panic";
	case SWARM_AS_R_MIN:
		return "min";
	case SWARM_AS_R_MAX:
		return "max";
	case SWARM_AS_R_FROM_ZERO:
		return "from_zero";
	}
	return "?";
}

/* A measured rate or fraction: NaN, negative and infinite values (a broken window, a clock
 * that went back) read as 0, "nothing measured", which never scales up on its own. */
static double sane(double x) { return (x >= 0.0 && isfinite(x)) ? x : 0.0; }

/* Devices for n device-equivalents of full busy, rounded up and saturating. The tiny relative
 * slack keeps 420 req/s at 100 req/s and 0.6, which doubles make 7.000000000000001, from
 * asking for an eighth device; any n above 0 still asks for one. */
static uint64_t devices(double n)
{
	if (!(n > 0.0))
		return 0;
	n = ceil(n * (1.0 - 1e-12));
	return n >= (double)UINT32_MAX ? UINT32_MAX : (uint64_t)n;
}

/* Devices to carry work (device-equivalents) at util each. */
static uint64_t devices_for(double work, double util) { return devices(work / util); }

static uint64_t elapsed(uint64_t now, uint64_t since)
{
	return now > since ? now - since : 0; /* a time from the future counts as just now */
}

/* 0 means "none" in swarm_as_memory, so an event at time 0 is stored as 1 ns. */
static uint64_t stamp(uint64_t now) { return now ? now : 1; }

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static int config_ok(const struct swarm_as_config *c)
{
	return c->target_util > 0.0 && c->target_util <= 1.0 && c->hysteresis >= 0.0 &&
	       c->hysteresis < c->target_util && c->panic_ratio > 1.0 &&
	       c->panic_delay_frac > 0.0 &&
	       (!c->peak_window_ns || (c->peak_util > 0.0 && c->peak_util <= 1.0));
}

/* The burst memory: the devices the recent peak needed stay in service for the peak window,
 * sized at the best rate a device has shown (full batches), which a device at low load never
 * shows; 0 when it is off or has nothing. */
static uint64_t peak_hold(const struct swarm_as_config *cfg, const struct swarm_as_model *m,
			  double service)
{
	const double peak = sane(m->rate_peak), best = fmax(sane(m->service_peak), service);
	if (!cfg->peak_window_ns || !(peak > 0.0) || !(best > 0.0))
		return 0;
	return devices_for(peak / best, cfg->peak_util);
}

/* The queue trigger: 0 while the queueing delay, queue_depth / (active * service), is within
 * panic_delay_frac of the objective; past it, the devices that would serve the queue within
 * that delay (always more than are active), at once, up to panic_ratio times what the
 * arrivals need (rate_short or rate_peak at target_util) or the active devices, whichever is
 * more: requests that wait while devices warm are lost to the objective, so every second the
 * queue takes to clear after the warm-up loses a second of arrivals more, and a burst that
 * outgrew what is in service is the case the burst memory could not see coming. What it
 * wakes beyond the need leaves at once when the panic is over (drain_all). Devices warming
 * count towards it. */
static uint64_t queue_devices(const struct swarm_as_config *cfg, const struct swarm_as_model *m,
			      double service)
{
	if (!m->latency_p99_ns || !m->active || !m->queue_depth)
		return 0;
	const double delay_s = m->queue_depth / ((double)m->active * service);
	const double budget_s = cfg->panic_delay_frac * (double)m->latency_p99_ns * 1e-9;
	if (!(delay_s > budget_s))
		return 0;
	/* budget_s * service may underflow to 0: then as many as may be. */
	const double per_device = budget_s * service;
	uint64_t q = per_device > 0.0 ? devices(m->queue_depth / per_device) : UINT32_MAX;
	/* The cap: a backlog the arrivals do not renew (one held while a model's first device
	 * loaded) is cleared by a few devices, and must not take a pool shared by models. */
	const double now =
		fmax(fmax(sane(m->rate_short), sane(m->rate_peak)) / service / cfg->target_util,
		     (double)m->active);
	const uint64_t cap = devices(cfg->panic_ratio * now);
	return q < cap ? q : cap;
}

/* What the policy makes of one model: its target, and what the scale-down checks need. */
struct model_plan {
	uint64_t target;
	uint64_t in_service;
	int panic;
	int from_zero; /* nothing in service and something waits or arrives */
	double work;   /* device-equivalents of load, the larger of the two windows */
	int idle;      /* no arrivals in either window, no busy time, nothing waiting */
};

static struct model_plan plan_model(const struct swarm_as_config *cfg,
				    const struct swarm_as_model *m, uint32_t min, uint32_t max)
{
	struct model_plan p = { 0 };
	const double util = cfg->target_util;
	const double rate_long = sane(m->rate_long), rate_short = sane(m->rate_short);
	const double service = sane(m->service_rate);
	double busy = sane(m->busy);
	if (busy > 1.0)
		busy = 1.0;

	p.in_service = (uint64_t)m->active + m->warming; /* draining devices are leaving */
	const uint64_t serving = p.in_service ? p.in_service : 1;
	const double busy_work = (double)m->active * busy;

	uint64_t stable;
	if (service > 0.0) {
		stable = devices_for(rate_long / service, util);
		p.work = fmax(rate_long, rate_short) / service;
	} else {
		stable = devices_for(busy_work, util);
		p.work = busy_work;
	}
	p.idle = !(rate_long > 0.0) && !(rate_short > 0.0) && !(busy_work > 0.0) &&
		 m->queue_depth == 0 && m->waiting_opens == 0;

	/* Panic. Each trigger says the stable window is too slow to follow what is happening
	 * now. */
	uint64_t urgent = 0;
	if (service > 0.0) {
		urgent = devices_for(rate_short / service, util);
		if ((double)urgent >= cfg->panic_ratio * (double)serving)
			p.panic = 1;
		const uint64_t q = queue_devices(cfg, m, service);
		if (q)
			p.panic = 1;
		if (q > urgent)
			urgent = q;
	}
	if (m->latency_p99_ns && m->active && m->p99_ns > m->latency_p99_ns)
		p.panic = 1;

	const uint64_t hold = peak_hold(cfg, m, service);
	if (hold > stable)
		stable = hold;

	p.target = stable;
	if (p.panic) {
		const uint64_t b = devices_for(busy_work, util);
		if (urgent > p.target)
			p.target = urgent;
		if (b > p.target)
			p.target = b;
	}
	/* Scale from zero: any arrival, queued request or held open keeps (or brings) one
	 * device, so a model parks only after a whole window with nothing at all. */
	if (!p.idle && p.target == 0)
		p.target = 1;
	p.from_zero = p.in_service == 0 && !p.idle;

	if (p.target < min)
		p.target = min;
	if (p.target > max)
		p.target = max;
	return p;
}

/* Whether one device may leave now, beyond the target being below what is in service. */
static int may_drain(uint64_t now, const struct swarm_as_config *cfg,
		     const struct swarm_as_model *m, const struct swarm_as_memory *mem,
		     const struct model_plan *p, uint32_t min)
{
	const uint64_t left = p->in_service - 1;
	if (!mem->low_since_ns || elapsed(now, mem->low_since_ns) < cfg->stable_window_ns)
		return 0;
	if (mem->last_scale_ns && elapsed(now, mem->last_scale_ns) < cfg->cooldown_ns)
		return 0;
	if (now < mem->panic_until_ns || p->panic)
		return 0;
	if (left < min)
		return 0;
	if (left == 0)
		/* The last device: never while sessions hold the model up (unless its minimum
		 * is 0), and only when nothing arrives or waits. */
		return (m->sessions == 0 || min == 0) && p->idle;
	/* The devices left must run at most target_util - hysteresis: the band between that
	 * and target_util is what keeps a load near a boundary from scaling back and forth. */
	return p->work / (double)left <= (cfg->target_util - cfg->hysteresis) * (1.0 + 1e-12);
}

/* How many devices one scale-down takes (may_drain said one may): all above the target, as
 * long as those left run at most target_util - hysteresis and the last one stays by
 * may_drain's rule. */
static uint32_t drain_count(const struct swarm_as_config *cfg, const struct swarm_as_model *m,
			    const struct model_plan *p, uint32_t min)
{
	uint64_t keep = p->target > min ? p->target : min;
	const uint64_t need = devices_for(p->work, cfg->target_util - cfg->hysteresis);
	if (need > keep)
		keep = need;
	if (keep == 0 && !((m->sessions == 0 || min == 0) && p->idle))
		keep = 1;
	if (keep >= p->in_service)
		return 1; /* may_drain's check allowed one */
	return (uint32_t)(p->in_service - keep);
}

int swarm_as_decide(uint64_t now_ns, const struct swarm_as_config *cfg,
		    const struct swarm_as_model *models, struct swarm_as_memory *mem,
		    size_t n_models, uint32_t parked, struct swarm_as_action *out, size_t max,
		    uint32_t *target_out)
{
	if (!cfg || !config_ok(cfg) || n_models > INT_MAX)
		return -EINVAL;
	if (n_models && (!models || !mem))
		return -EINVAL;
	if (max && !out)
		return -EINVAL;

	size_t n_out = 0;
	for (size_t i = 0; i < n_models; i++) {
		const struct swarm_as_model *m = &models[i];
		struct swarm_as_memory *mm = &mem[i];
		const uint32_t min = m->min_devices;
		const uint32_t maxd = m->max_devices < min ? min : m->max_devices; /* 0 too */

		const struct model_plan p = plan_model(cfg, m, min, maxd);
		if (target_out)
			target_out[i] = (uint32_t)p.target;

		if (p.panic)
			mm->panic_until_ns = add_sat(now_ns, cfg->stable_window_ns);
		if (p.target < p.in_service) {
			if (!mm->low_since_ns)
				mm->low_since_ns = stamp(now_ns);
		} else {
			mm->low_since_ns = 0;
		}

		struct swarm_as_action a = { .model = (uint32_t)i, .count = 1 };
		if (p.in_service > maxd) {
			/* Above the maximum (it was lowered): no window, no cool-down. */
			a.kind = SWARM_AS_DRAIN;
			a.reason = SWARM_AS_R_MAX;
		} else if (p.target > p.in_service) {
			const uint64_t want = p.target - p.in_service;
			if (!parked)
				continue;
			a.kind = SWARM_AS_WAKE;
			a.count = want < parked ? (uint32_t)want : parked;
			if (p.panic)
				a.reason = SWARM_AS_R_PANIC;
			else if (p.from_zero && min == 0)
				a.reason = SWARM_AS_R_FROM_ZERO;
			else if (p.in_service < min)
				a.reason = SWARM_AS_R_MIN;
			else
				a.reason = SWARM_AS_R_DEMAND;
		} else if (p.target < p.in_service && may_drain(now_ns, cfg, m, mm, &p, min)) {
			a.kind = SWARM_AS_DRAIN;
			a.reason = SWARM_AS_R_DEMAND;
			if (cfg->drain_all)
				a.count = drain_count(cfg, m, &p, min);
		} else {
			continue;
		}
		if (n_out == max)
			continue; /* no room: not taken, so not remembered and no budget spent */
		if (a.kind == SWARM_AS_WAKE)
			parked -= a.count;
		out[n_out++] = a;
		mm->last_scale_ns = stamp(now_ns);
	}
	return (int)n_out;
}

size_t swarm_as_spares(const struct swarm_as_device *devs, size_t n, uint32_t standby, int *out,
		       size_t max)
{
	uint32_t spares = 0;
	for (size_t i = 0; i < n; i++)
		spares += devs[i].state == SWARM_DEVICE_STANDBY ||
			  (devs[i].state == SWARM_DEVICE_WARMING && devs[i].to_standby);
	size_t k = 0;
	for (size_t i = n; i-- > 0 && spares < standby && k < max;) {
		if (devs[i].state != SWARM_DEVICE_PARKED || devs[i].parking)
			continue;
		out[k++] = (int)i;
		spares++;
	}
	return k;
}

/* A slot's service rate (requests per busy second), 0 when it was busy under 10 ms. */
static double slot_service(const struct swarm_as_peak *p, uint64_t slot)
{
	const uint64_t k = slot % SWARM_AS_PEAK_SLOTS;
	if (p->busy_ns[k] < 10000000ull)
		return 0.0;
	return (double)p->served[k] / ((double)p->busy_ns[k] * 1e-9);
}

void swarm_as_peak_add(struct swarm_as_peak *p, uint64_t now_ns, uint64_t arrivals, uint64_t served,
		       uint64_t busy_ns)
{
	/* What happened up to now_ns belongs to the slot that holds now_ns - 1 ns: a call
	 * at a slot's end completes it. */
	const uint64_t slot = now_ns ? (now_ns - 1) / SWARM_AS_SLOT_NS : 0;
	if (p->started && slot > p->slot) {
		const double sv = slot_service(p, p->slot);
		if (sv > p->best_service)
			p->best_service = sv;
	}
	if (!p->started || slot > p->slot) {
		const uint64_t from = p->started ? p->slot + 1 : slot;
		const uint64_t n = slot - from + 1;
		for (uint64_t i = n > SWARM_AS_PEAK_SLOTS ? n - SWARM_AS_PEAK_SLOTS : 0; i < n;
		     i++) {
			const uint64_t k = (from + i) % SWARM_AS_PEAK_SLOTS;
			p->arrivals[k] = p->served[k] = p->busy_ns[k] = 0;
		}
		if (!p->started)
			p->first = slot;
		p->started = 1;
		p->slot = slot;
	}
	const uint64_t k = p->slot % SWARM_AS_PEAK_SLOTS; /* a time from the past: the newest */
	p->arrivals[k] += arrivals;
	p->served[k] += served;
	p->busy_ns[k] += busy_ns;
	if (now_ns > p->last_ns)
		p->last_ns = now_ns;
}

void swarm_as_peak_get(const struct swarm_as_peak *p, uint64_t window_ns, double *rate_peak,
		       double *service_peak)
{
	double rate = 0.0, service = p->best_service;
	/* The complete slots (their end at or before the last call) within the window, and
	 * still in the ring; slots after the newest written had nothing. */
	const uint64_t end = p->last_ns / SWARM_AS_SLOT_NS;
	const uint64_t want = window_ns / SWARM_AS_SLOT_NS;
	uint64_t lo = end > want ? end - want : 0;
	if (lo < p->first)
		lo = p->first;
	if (p->slot >= SWARM_AS_PEAK_SLOTS && lo < p->slot - SWARM_AS_PEAK_SLOTS + 1)
		lo = p->slot - SWARM_AS_PEAK_SLOTS + 1;
	const uint64_t hi = end < p->slot + 1 ? end : p->slot + 1;
	for (uint64_t sl = lo; p->started && sl < hi; sl++) {
		const uint64_t k = sl % SWARM_AS_PEAK_SLOTS;
		const double r = (double)p->arrivals[k] * 1e9 / (double)SWARM_AS_SLOT_NS;
		if (r > rate)
			rate = r;
		const double sv = slot_service(p, sl);
		if (sv > service)
			service = sv;
	}
	*rate_peak = rate;
	*service_peak = service;
}
