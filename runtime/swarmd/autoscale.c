/* autoscale.c: the autoscaler (--autoscale, docs/autoscaler.md) carried out. Every tick the
 * workers' stats pages give the requests served and the busy time; they are kept for
 * AS_HISTORY ticks as the demand of one pool (every device serves every model, so the pool is
 * sized by the demand of all of them, within the deployment bounds of the models that have
 * sessions). The decisions, how many devices and which ones to wake, drain or keep as warm
 * spares, are the pure policy's (runtime/autoscaler.c); this module gathers its input and
 * applies what it returns.
 */
#include <errno.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/swarmd/counters.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define AS_HISTORY 600            /* ticks of demand kept: 60 s */
#define AS_SHORT_NS 6000000000ull /* the autoscaler's short (panic) window */

static struct {
	uint64_t req[AS_HISTORY], busy_ns[AS_HISTORY];
	uint32_t pos, n;
	uint32_t target;
	struct swarm_as_memory mem;
} as;

/* Sums of the last ticks (up to the window) of the demand history. */
static void as_window(uint64_t window_ns, uint64_t *req, uint64_t *busy, double *seconds)
{
	uint32_t ticks = (uint32_t)(window_ns / (TICK_MS * 1000000ull));
	if (ticks == 0)
		ticks = 1;
	if (ticks > as.n)
		ticks = as.n;
	*req = *busy = 0;
	for (uint32_t i = 0; i < ticks; i++) {
		uint32_t k = (as.pos + AS_HISTORY - 1 - i) % AS_HISTORY;
		*req += as.req[k];
		*busy += as.busy_ns[k];
	}
	*seconds = (double)ticks * TICK_MS / 1000.0;
}

void as_tick(uint64_t now)
{
	uint64_t req = 0, busy = 0;
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		if (dv->pid <= 0)
			continue;
		uint64_t r = swarm_stat_get(&dv->stats->requests);
		uint64_t b = swarm_stat_get(&dv->stats->busy_ns);
		/* A restarted worker starts its counters at zero. */
		req += r >= dv->as_requests ? r - dv->as_requests : r;
		busy += b >= dv->as_busy_ns ? b - dv->as_busy_ns : b;
		dv->as_requests = r;
		dv->as_busy_ns = b;
	}
	as.req[as.pos] = req;
	as.busy_ns[as.pos] = busy;
	as.pos = (as.pos + 1) % AS_HISTORY;
	if (as.n < AS_HISTORY)
		as.n++;
	as_decide(now);
}

/* The devices: counted by state into m, and the busy fraction and queue of those in service.
 * Returns the parked ones (warm spares included: a spare is woken first, at once). */
static uint32_t devices_input(struct swarm_as_model *m, uint32_t *usable)
{
	uint32_t parked = 0;
	double busy_sum = 0;
	*usable = 0;
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		*usable += dv->state != SWARM_DEVICE_FAILED;
		switch (dv->state) {
		case SWARM_DEVICE_ACTIVE:
			m->active++;
			busy_sum += dv->busy;
			m->queue_depth +=
				__atomic_load_n(&dv->stats->queue_depth, __ATOMIC_RELAXED);
			break;
		case SWARM_DEVICE_WARMING:
			m->warming++;
			break;
		case SWARM_DEVICE_DRAINING:
			m->draining++;
			break;
		case SWARM_DEVICE_PARKED:
		case SWARM_DEVICE_STANDBY:
			parked++;
			break;
		}
	}
	m->busy = m->active ? busy_sum / m->active : 0.0;
	return parked;
}

/* The sessions' deployment bounds and objectives, and the opens waiting, into m. */
static void sessions_input(struct swarm_as_model *m, uint32_t usable)
{
	for (struct session *s = d.sessions; s; s = s->next) {
		if (s->state == S_LOST || s->state == S_DETACHING || !s->client)
			continue;
		m->min_devices = m->sessions && m->min_devices > s->min_devices ? m->min_devices :
										  s->min_devices;
		m->max_devices = s->max_devices > m->max_devices ? s->max_devices : m->max_devices;
		uint64_t obj = (uint64_t)s->latency_p99_us * 1000;
		if (obj && (!m->latency_p99_ns || obj < m->latency_p99_ns))
			m->latency_p99_ns = obj;
		m->sessions++;
	}
	if (!m->sessions) {
		m->min_devices = cfg.as.idle_floor;
		m->max_devices = usable;
	}
	for (struct pending_open *p = d.pending; p; p = p->next)
		m->waiting_opens++;
	if (m->max_devices > usable)
		m->max_devices = usable;
	if (m->min_devices > m->max_devices)
		m->min_devices = m->max_devices;
}

/* The devices as swarm_as_pick and swarm_as_spares see them. */
static void devices_view(struct swarm_as_device *v)
{
	for (int i = 0; i < d.n_dev; i++)
		v[i] = (struct swarm_as_device){ .state = d.dev[i].state,
						 .sessions = d.dev[i].sessions,
						 .parking = d.dev[i].parking,
						 .to_standby = d.dev[i].to_standby };
}

/* Carries out the policy's actions, each on the device swarm_as_pick names. */
static void apply(const struct swarm_as_action *acts, int n, const struct swarm_as_model *m)
{
	struct swarm_as_device view[MAX_DEVICES];
	for (int k = 0; k < n; k++) {
		const char *why = swarm_as_reason_name(acts[k].reason);
		for (uint32_t c = 0; c < acts[k].count; c++) {
			devices_view(view);
			int i = swarm_as_pick(view, (size_t)d.n_dev, acts[k].kind);
			if (i < 0)
				break;
			struct device *pick = &d.dev[i];
			swarm_log(
				SWARM_LOG_INFO,
				"event=autoscale action=%s device=%s reason=%s target=%u rate=%.0f "
				"active=%u warming=%u",
				acts[k].kind == SWARM_AS_WAKE ? "wake" : "drain", pick->plan.name,
				why, as.target, m->rate_long, m->active, m->warming);
			counters_autoscale(acts[k].kind == SWARM_AS_WAKE, acts[k].reason);
			if (acts[k].kind == SWARM_AS_WAKE)
				sup_device_wake(pick, why);
			else
				sup_device_drain(pick, why);
		}
	}
}

/* Keeps the warm spares the configuration asks for. */
static void keep_spares(void)
{
	struct swarm_as_device view[MAX_DEVICES];
	int wake[MAX_DEVICES];
	devices_view(view);
	size_t n = swarm_as_spares(view, (size_t)d.n_dev, cfg.as.standby, wake, MAX_DEVICES);
	for (size_t k = 0; k < n; k++) {
		d.dev[wake[k]].to_standby = 1;
		sup_device_wake(&d.dev[wake[k]], "standby");
	}
}

/* The policy's decision on the demand history as it stands, carried out. Called on every
 * tick, and at once when an open finds nothing in service (a tick later would add up to
 * 100 ms to a scale-up from zero). */
void as_decide(uint64_t now)
{
	struct swarm_as_model m = { 0 };
	uint64_t lr, lb, sr, sb;
	double ls, ss;
	as_window(cfg.as.cfg.stable_window_ns, &lr, &lb, &ls);
	as_window(AS_SHORT_NS, &sr, &sb, &ss);
	m.rate_long = (double)lr / ls;
	m.rate_short = (double)sr / ss;
	m.service_rate = lb ? (double)lr / ((double)lb / 1e9) : 0.0;
	uint32_t usable;
	uint32_t parked = devices_input(&m, &usable);
	sessions_input(&m, usable);

	struct swarm_as_action acts[8];
	uint32_t target = 0;
	int n = swarm_as_decide(now, &cfg.as.cfg, &m, &as.mem, 1, parked, acts, 8, &target);
	if (n < 0) { /* options are checked at start: a bug, said once rather than hidden */
		static int said;
		if (!said++)
			swarm_log(
				SWARM_LOG_ERROR,
				"event=autoscale_error reason=\"the policy refused its input: %s\"",
				strerror(-n));
		return;
	}
	if (target != as.target)
		swarm_log(SWARM_LOG_DEBUG,
			  "event=autoscale_target target=%u active=%u warming=%u rate=%.0f "
			  "service_rate=%.0f busy=%.2f queue=%u sessions=%u min=%u max=%u",
			  target, m.active, m.warming, m.rate_long, m.service_rate, m.busy,
			  m.queue_depth, m.sessions, m.min_devices, m.max_devices);
	as.target = target;
	apply(acts, n, &m);
	if (n > 0)
		place_rebalance();
	keep_spares();
}
