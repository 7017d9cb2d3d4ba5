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
	       c->hysteresis < c->target_util && c->panic_ratio > 1.0 && c->panic_delay_frac > 0.0;
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
	 * now. A queue panic asks for the devices that would serve the queue within the delay
	 * the objective allows (always more than are active, by its trigger), but at most
	 * panic_ratio times the active ones: a queue says capacity is short, not by how much,
	 * and one that built up while devices warm would otherwise wake ever more devices that
	 * arrive after the ones already coming. Devices warming count towards it, so the
	 * growth is one step per warm-up, as long as the queue lasts. */
	uint64_t urgent = 0;
	const double objective_s = (double)m->latency_p99_ns * 1e-9;
	if (service > 0.0) {
		urgent = devices_for(rate_short / service, util);
		if ((double)urgent >= cfg->panic_ratio * (double)serving)
			p.panic = 1;
		if (m->latency_p99_ns && m->active && m->queue_depth) {
			const double delay_s = m->queue_depth / ((double)m->active * service);
			const double budget_s = cfg->panic_delay_frac * objective_s;
			if (delay_s > budget_s) {
				p.panic = 1;
				/* budget_s * service may underflow to 0: then as many as may be. */
				const double per_device = budget_s * service;
				uint64_t q = per_device > 0.0 ?
						     devices(m->queue_depth / per_device) :
						     UINT32_MAX;
				const uint64_t step = devices(cfg->panic_ratio * m->active);
				if (q > step)
					q = step;
				if (q > urgent)
					urgent = q;
			}
		}
	}
	if (m->latency_p99_ns && m->active && m->p99_ns > m->latency_p99_ns)
		p.panic = 1;

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
