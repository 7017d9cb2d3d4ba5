/* autoscale.c: the autoscaler (--autoscale, docs/autoscaler.md) carried out, per model. Every
 * tick the sessions' rings give each model version's arrivals (how far their clients' sq_tail
 * moved) and the workers' stats pages its requests served and compute time; they are kept
 * for AS_HISTORY ticks as that model's demand, and in one-second slots for the policy's burst
 * memory (struct swarm_as_peak). The pure policy
 * (runtime/autoscaler.c) decides per model how many devices it should be on; the pure
 * placement (runtime/fleet.c) decides which: a device in service with room, one where an idle
 * version can be evicted, or a parked device woken for it; and which devices in service host
 * nothing needed and are parked. This module gathers their input and carries out what they
 * return: it wakes and drains devices, loads each model where it is placed (a LOAD ahead of
 * its sessions, so that they move to a device that has it), and moves sessions off devices
 * their model was let go from. New sessions of a placed model go to its hosts (as_hosts).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/as_trace.h"
#include "runtime/log.h"
#include "runtime/swarmd/counters.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define AS_HISTORY 600            /* ticks of demand kept: 60 s */
#define AS_SHORT_NS 6000000000ull /* the autoscaler's short (panic) window */
#define AS_BUSY_TICKS 10          /* busy and service time over the last second */
#define AS_MODELS 64              /* model versions followed at once */
#define FLEET_SEQ 0x70000000u     /* a LOAD's seq: this plus the model's slot */

/* One model version the autoscaler follows: while it has sessions, opens waiting for it, or
 * hosts. */
struct as_model {
	int used;
	char name[SWARM_NAME_MAX];
	uint32_t version;
	uint64_t hosts; /* devices it is placed on */
	uint64_t req[AS_HISTORY], busy_ns[AS_HISTORY]; /* requests served, compute time */
	uint64_t arr[AS_HISTORY];  /* requests submitted to its sessions' rings */
	struct swarm_as_peak peak; /* the burst memory: one-second slots of the peak window */
	uint64_t seen_req[MAX_DEVICES], seen_busy[MAX_DEVICES]; /* the pages at the last tick */
	pid_t seen_pid[MAX_DEVICES];                            /* whose pages those were */
	struct swarm_as_memory mem;
	uint64_t mem_id; /* names mem in --autoscale-trace: a new id, a memory from zero */
	uint32_t target, reason;
	struct swarm_as_model in; /* this decision's input */
	struct resolved res;      /* resolved this decision; res_ok 0 when it did not resolve */
	int res_ok;
	int in_use; /* it had sessions or opens waiting at this decision */
	uint32_t sessions_on[MAX_DEVICES];
};

static struct {
	struct as_model m[AS_MODELS];
	uint32_t pos, n; /* the history rings' next tick and ticks filled (every model's) */
	uint64_t next_mem_id;
	FILE *trace;      /* --autoscale-trace, opened at the first decision */
	int trace_failed; /* it could not be written: said once, then left */
} as;

static struct as_model *find(const char *name, uint32_t version)
{
	for (int k = 0; k < AS_MODELS; k++)
		if (as.m[k].used && as.m[k].version == version && !strcmp(as.m[k].name, name))
			return &as.m[k];
	return NULL;
}

/* name@version's slot, a new one when it has none; NULL when all AS_MODELS are taken (said
 * once: such a model goes wherever placement by memory puts it, unscaled). */
static struct as_model *follow(const char *name, uint32_t version)
{
	struct as_model *e = find(name, version);
	for (int k = 0; !e && k < AS_MODELS; k++)
		if (!as.m[k].used) {
			e = &as.m[k];
			memset(e, 0, sizeof *e);
			e->used = 1;
			e->mem_id = ++as.next_mem_id;
			swarm_copy_str(e->name, sizeof e->name, name);
			e->version = version;
		}
	static int said;
	if (!e && !said++)
		swarm_log(
			SWARM_LOG_WARN,
			"event=autoscale_models_full model=%s version=%u limit=%d "
			"reason=\"more model versions in use than the autoscaler follows: the rest "
			"are placed by memory alone\"",
			name, version, AS_MODELS);
	return e;
}

static int device_up(const struct device *dv)
{
	return dv->state == SWARM_DEVICE_ACTIVE && dv->ctl >= 0 && !dv->parking;
}

uint64_t as_hosts(const char *model, uint32_t version)
{
	const struct as_model *e = cfg.as.on ? find(model, version) : NULL;
	if (!e)
		return 0;
	/* Only while one of them is in service: else (its hosts all went) anywhere. */
	for (int i = 0; i < d.n_dev && i < 64; i++)
		if ((e->hosts >> i & 1) && d.dev[i].state != SWARM_DEVICE_FAILED &&
		    d.dev[i].state != SWARM_DEVICE_PARKED &&
		    d.dev[i].state != SWARM_DEVICE_DRAINING)
			return e->hosts;
	return 0;
}

uint64_t as_hosts_loaded(const char *model, uint32_t version)
{
	uint64_t hosts = as_hosts(model, version), loaded = 0;
	for (int i = 0; i < d.n_dev && i < 64; i++)
		if ((hosts >> i & 1) && device_up(&d.dev[i]) &&
		    mem_loaded(&d.dev[i], model, version))
			loaded |= 1ull << i;
	return loaded;
}

/* 1 when s counts as its model's demand: open, its client there, not lost or closing. */
static int in_use(const struct session *s)
{
	return s->state != S_LOST && s->state != S_DETACHING && s->client;
}

int as_pins(const struct device *dv, const char *model, uint32_t version)
{
	const struct as_model *e = cfg.as.on && dv->index < 64 ? find(model, version) : NULL;
	if (!e || !(e->hosts >> dv->index & 1))
		return 0;
	if (e->in.waiting_opens)
		return 1;
	/* Its sessions as they are now: a client that closed its last one a moment ago leaves
	 * an idle version, which the next open may evict. */
	for (const struct session *s = d.sessions; s; s = s->next)
		if (in_use(s) && s->version == version && !strcmp(s->model_name, model))
			return 1;
	return 0;
}

void as_unloaded(const struct device *dv, const char *model, uint32_t version)
{
	struct as_model *e = dv->index < 64 ? find(model, version) : NULL;
	if (e && (e->hosts >> dv->index & 1)) {
		e->hosts &= ~(1ull << dv->index);
		swarm_log(SWARM_LOG_INFO,
			  "event=autoscale_release device=%s reason=evicted model=%s version=%u",
			  dv->plan.name, model, version);
	}
}

void as_placed(const struct resolved *res, int di)
{
	struct as_model *e = cfg.as.on && di >= 0 && di < 64 ? follow(res->name, res->version) :
							       NULL;
	if (e && !(e->hosts >> di & 1)) {
		e->hosts |= 1ull << di;
		swarm_log(SWARM_LOG_INFO,
			  "event=autoscale_place device=%s model=%s version=%u reason=open",
			  d.dev[di].plan.name, res->name, res->version);
	}
}

int as_may_wake_for(const struct resolved *res)
{
	if (!cfg.as.on)
		return 0;
	uint64_t fits = mem_fits_mask(res->name, res->version) & mem_allowed(res);
	for (int i = 0; i < d.n_dev && i < 64; i++) {
		const struct device *dv = &d.dev[i];
		if ((fits >> i & 1) && !dv->parking &&
		    (dv->state == SWARM_DEVICE_PARKED || dv->state == SWARM_DEVICE_STANDBY))
			return 1;
	}
	return 0;
}

void as_fill_status(struct swarm_msg_status_reply *r)
{
	r->autoscale = cfg.as.on != 0;
	for (int k = 0; cfg.as.on && k < AS_MODELS && r->n_scaled < SWARM_STATUS_MAX_SCALED; k++) {
		const struct as_model *e = &as.m[k];
		if (!e->used)
			continue;
		struct swarm_status_scaled *o = &r->scaled[r->n_scaled++];
		swarm_copy_str(o->model, sizeof o->model, e->name);
		o->version = e->version;
		o->target = e->target;
		o->hosts = e->hosts;
		o->rate_long = e->in.rate_long;
		o->rate_short = e->in.rate_short;
		o->service_rate = e->in.service_rate;
		o->sessions = e->in.sessions;
		o->active = e->in.active;
		o->warming = e->in.warming;
		o->reason = e->reason;
	}
	for (uint32_t i = 0; i < r->n_resident && i < SWARM_STATUS_MAX_RESIDENT; i++) {
		struct swarm_status_resident *o = &r->resident[i];
		const struct as_model *e = cfg.as.on ? find(o->model, o->version) : NULL;
		o->host = e && o->device_index >= 0 && o->device_index < 64 &&
			  (e->hosts >> o->device_index & 1);
	}
}

/* ---- demand ------------------------------------------------------------------------------ */

/* What session s's client submitted since the last tick: how far its ring's sq_tail moved.
 * The client writes that index, so a hostile one could say anything: no more counts than
 * the worker took plus a full ring (an honest client never has more in the ring). */
static uint64_t session_arrivals(struct session *s)
{
	const struct swarm_seg_header *h = session_hdr(s);
	const uint32_t tail = __atomic_load_n(&h->sq_tail.v, __ATOMIC_ACQUIRE);
	const uint32_t head = __atomic_load_n(&h->sq_head.v, __ATOMIC_ACQUIRE);
	uint64_t n = 0;
	if (s->as_seen) {
		const uint64_t most = (uint64_t)(uint32_t)(head - s->as_head) + s->geo.queue_depth;
		n = (uint32_t)(tail - s->as_tail);
		if (n > most)
			n = most;
	}
	s->as_tail = tail;
	s->as_head = head;
	s->as_seen = 1;
	return n;
}

/* Each followed model's arrivals, from its sessions' rings, into this tick's arr. */
static void measure_arrivals(void)
{
	for (int k = 0; k < AS_MODELS; k++)
		as.m[k].arr[as.pos] = 0;
	for (struct session *s = d.sessions; s; s = s->next) {
		if (!s->base || !in_use(s))
			continue;
		struct as_model *e = find(s->model_name, s->version);
		const uint64_t n = session_arrivals(s);
		if (e)
			e->arr[as.pos] += n;
	}
}

/* Each followed model's arrivals, requests served and compute time since the last tick (the
 * workers' stats pages), into its history. */
static void measure(uint64_t now)
{
	measure_arrivals();
	for (int k = 0; k < AS_MODELS; k++) {
		struct as_model *e = &as.m[k];
		uint64_t req = 0, busy = 0;
		for (int i = 0; e->used && i < d.n_dev; i++) {
			struct device *dv = &d.dev[i];
			const struct swarm_model_stats *p =
				dv->pid > 0 ? mem_page(dv, e->name, e->version) : NULL;
			if (!p)
				continue;
			uint64_t r = swarm_stat_get(&p->requests);
			uint64_t b = swarm_stat_get(&p->compute_ns.sum);
			if (e->seen_pid[i] != dv->pid) /* a new worker: its counters start at 0 */
				e->seen_req[i] = e->seen_busy[i] = 0;
			req += r >= e->seen_req[i] ? r - e->seen_req[i] : r;
			busy += b >= e->seen_busy[i] ? b - e->seen_busy[i] : b;
			e->seen_req[i] = r;
			e->seen_busy[i] = b;
			e->seen_pid[i] = dv->pid;
		}
		e->req[as.pos] = req;
		e->busy_ns[as.pos] = busy;
		if (e->used)
			swarm_as_peak_add(&e->peak, now, e->arr[as.pos], req, busy);
	}
	as.pos = (as.pos + 1) % AS_HISTORY;
	if (as.n < AS_HISTORY)
		as.n++;
}

/* Sums of e's last ticks (up to the window) of demand: arrivals, requests served, busy. */
static void window(const struct as_model *e, uint64_t window_ns, uint64_t *arr, uint64_t *req,
		   uint64_t *busy, double *seconds)
{
	uint32_t ticks = (uint32_t)(window_ns / (TICK_MS * 1000000ull));
	if (ticks == 0)
		ticks = 1;
	if (ticks > as.n)
		ticks = as.n;
	*arr = *req = *busy = 0;
	for (uint32_t i = 0; i < ticks; i++) {
		uint32_t k = (as.pos + AS_HISTORY - 1 - i) % AS_HISTORY;
		*arr += e->arr[k];
		*req += e->req[k];
		*busy += e->busy_ns[k];
	}
	*seconds = ticks ? (double)ticks * TICK_MS / 1000.0 : 1.0;
}

void as_tick(uint64_t now)
{
	measure(now);
	as_decide(now);
}

/* ---- the policy's input ------------------------------------------------------------------ */

/* Sessions, their deployment bounds and objectives, and the opens waiting, per model. */
static void sessions_input(void)
{
	for (struct session *s = d.sessions; s; s = s->next) {
		if (!in_use(s))
			continue;
		struct as_model *e = follow(s->model_name, s->version);
		if (!e)
			continue;
		struct swarm_as_model *m = &e->in;
		if (!m->sessions || s->min_devices > m->min_devices)
			m->min_devices = s->min_devices;
		if (s->max_devices && (!m->max_devices || s->max_devices < m->max_devices))
			m->max_devices = s->max_devices;
		uint64_t obj = (uint64_t)s->latency_p99_us * 1000;
		if (obj && (!m->latency_p99_ns || obj < m->latency_p99_ns))
			m->latency_p99_ns = obj;
		m->sessions++;
		if (s->device >= 0 && s->device < MAX_DEVICES)
			e->sessions_on[s->device]++;
	}
	for (struct pending_open *p = d.pending; p; p = p->next) {
		char name[SWARM_NAME_MAX], text[SWARM_MSG_TEXT_MAX];
		struct resolved r;
		swarm_copy_str(name, sizeof name, p->msg.model);
		if (models_resolve(name, p->msg.version, &r, text, sizeof text))
			continue; /* refused when it is tried again */
		struct as_model *e = follow(r.name, r.version);
		if (e) {
			e->in.waiting_opens++;
			/* Its bounds once it is open; until then a device, from zero. */
			if (!e->in.sessions)
				e->in.max_devices = r.max_devices;
		}
	}
}

/* e's hosts by state, its demand over the windows, its bounds, into e->in. */
static void model_input(struct as_model *e)
{
	struct swarm_as_model *m = &e->in;
	uint64_t la, lr, lb, sa, sr, sb, ba, br, bb;
	double ls, ss, bs;
	window(e, cfg.as.cfg.stable_window_ns, &la, &lr, &lb, &ls);
	window(e, AS_SHORT_NS, &sa, &sr, &sb, &ss);
	window(e, AS_BUSY_TICKS * TICK_MS * 1000000ull, &ba, &br, &bb, &bs);
	/* Arrival rates from the rings; the service rate from what the workers served. */
	m->rate_long = (double)la / ls;
	m->rate_short = (double)sa / ss;
	m->service_rate = lb ? (double)lr / ((double)lb / 1e9) : 0.0;
	swarm_as_peak_get(&e->peak, cfg.as.cfg.peak_window_ns, &m->rate_peak, &m->service_peak);
	uint32_t usable = 0;
	uint64_t allowed = e->res_ok ? mem_allowed(&e->res) : ~0ull;
	for (int i = 0; i < d.n_dev && i < 64; i++) {
		struct device *dv = &d.dev[i];
		usable += dv->state != SWARM_DEVICE_FAILED && (allowed >> i & 1);
		if (dv->state == SWARM_DEVICE_PARKED || dv->state == SWARM_DEVICE_STANDBY ||
		    dv->state == SWARM_DEVICE_FAILED)
			e->hosts &= ~(1ull << i); /* its worker is gone, and the model with it */
		if (!(e->hosts >> i & 1) || dv->parking)
			continue;
		if (dv->state == SWARM_DEVICE_ACTIVE && mem_loaded(dv, e->name, e->version)) {
			m->active++;
			m->queue_depth +=
				__atomic_load_n(&dv->stats->queue_depth, __ATOMIC_RELAXED);
		} else if (dv->state == SWARM_DEVICE_ACTIVE || dv->state == SWARM_DEVICE_WARMING) {
			m->warming++;
		} else if (dv->state == SWARM_DEVICE_DRAINING) {
			m->draining++;
		}
	}
	m->busy = m->active ? (double)bb / 1e9 / bs / m->active : 0.0;
	if (!m->sessions && !m->waiting_opens)
		m->min_devices = 0; /* nothing holds it up: it may go to zero */
	if (!m->max_devices || m->max_devices > usable)
		m->max_devices = usable;
	if (m->min_devices > m->max_devices)
		m->min_devices = m->max_devices;
}

/* The models in the order the placement serves them: the higher deploy priority first, then
 * the busier (more devices' worth of work). */
static int by_importance(const void *a, const void *b)
{
	const struct as_model *x = *(struct as_model *const *)a, *y = *(struct as_model *const *)b;
	uint32_t px = x->res_ok ? x->res.place.priority : 0,
		 py = y->res_ok ? y->res.place.priority : 0;
	if (px != py)
		return px > py ? -1 : 1;
	double wx = x->in.service_rate > 0 ? x->in.rate_short / x->in.service_rate : 0;
	double wy = y->in.service_rate > 0 ? y->in.rate_short / y->in.service_rate : 0;
	return wx > wy ? -1 : wx < wy;
}

/* ---- carrying it out --------------------------------------------------------------------- */

/* Sends e's LOAD to dv, making room first (evicting idle versions); 0 or -errno. */
static int load_on(struct as_model *e, struct device *dv)
{
	char text[SWARM_MSG_TEXT_MAX];
	int rc;
	if (dv->state == SWARM_DEVICE_STANDBY) {
		/* A spare takes no session (placement passes it by): it only needs the room. */
		if (!(mem_fits_mask(e->name, e->version) >> dv->index & 1))
			return -ENOSPC;
	} else if ((rc = mem_place_in(&e->res, -1, 1ull << dv->index, text, sizeof text)) !=
		   dv->index) {
		return rc < 0 ? rc : -EAGAIN; /* no room now: tried again next tick */
	}
	struct swarm_msg_load m;
	memset(&m, 0, sizeof m);
	swarm_msg_init(&m.h, SWARM_MSG_LOAD, sizeof m, FLEET_SEQ + (uint32_t)(e - as.m));
	models_fill_version(&m.v, &e->res);
	m.nranks = 1;
	sup_offer_weights(dv, &m.v);
	if ((rc = sup_send(dv, &m, sizeof m, NULL, 0)))
		return rc;
	mem_expect(dv, &e->res);
	swarm_log(SWARM_LOG_INFO, "event=autoscale_load device=%s model=%s version=%u",
		  dv->plan.name, e->name, e->version);
	return 0;
}

int as_loaded(struct device *dv, const struct swarm_msg_loaded *m)
{
	uint32_t k = m->h.seq - FLEET_SEQ;
	if (m->h.seq < FLEET_SEQ || k >= AS_MODELS)
		return 0;
	struct as_model *e = &as.m[k];
	if (!m->status || !e->used)
		return 1; /* its RESIDENCY has counted it */
	char text[SWARM_MSG_TEXT_MAX];
	swarm_copy_str(text, sizeof text, m->text);
	mem_attach_failed(dv, e->name, e->version);
	if (dv->index < 64)
		e->hosts &= ~(1ull << dv->index);
	swarm_log(SWARM_LOG_WARN,
		  "event=autoscale_load_failed device=%s model=%s version=%u status=%d "
		  "reason=\"%s\"",
		  dv->plan.name, e->name, e->version, m->status, text);
	return 1;
}

/* Each host in service loads e where it lacks it; each of e's sessions on a device that is no
 * longer its host moves to the least used host that has it loaded. */
static void reconcile(struct as_model *e)
{
	for (int i = 0; e->res_ok && i < d.n_dev && i < 64; i++)
		if ((e->hosts >> i & 1) && device_up(&d.dev[i]) &&
		    !mem_resident(&d.dev[i], e->name, e->version))
			load_on(e, &d.dev[i]);
	uint64_t loaded = as_hosts_loaded(e->name, e->version);
	if (!loaded)
		return;
	for (struct session *s = d.sessions; s; s = s->next) {
		if (s->state != S_ACTIVE || s->device < 0 || s->device >= 64 ||
		    (e->hosts >> s->device & 1) || s->version != e->version ||
		    strcmp(s->model_name, e->name))
			continue;
		int to = -1;
		for (int i = 0; i < d.n_dev && i < 64; i++)
			if ((loaded & s->allowed) >> i & 1 &&
			    (to < 0 || d.dev[i].sessions < d.dev[to].sessions))
				to = i;
		if (to >= 0)
			place_move(s, to, SWARM_MOVE_EVACUATE);
	}
}

/* A decision logged: a device woken or drained is event=autoscale action=wake|drain (what the
 * metrics count, swarm_autoscale_decisions_total), a model placed on or let go from a device
 * in service is event=autoscale_place or autoscale_release (action NULL). */
static void log_action(const char *event, const char *action, const struct device *dv,
		       const struct as_model *e, uint32_t reason)
{
	const char *why = swarm_as_reason_name(reason), *model = e ? e->name : "-";
	uint32_t version = e ? e->version : 0, target = e ? e->target : 0;
	uint32_t active = e ? e->in.active : 0, warming = e ? e->in.warming : 0;
	double rate = e ? e->in.rate_long : 0.0;
	if (action)
		swarm_log(SWARM_LOG_INFO,
			  "event=autoscale action=%s device=%s reason=%s model=%s version=%u "
			  "target=%u rate=%.0f active=%u warming=%u",
			  action, dv->plan.name, why, model, version, target, rate, active,
			  warming);
	else
		swarm_log(SWARM_LOG_INFO,
			  "event=%s device=%s reason=%s model=%s version=%u target=%u rate=%.0f "
			  "active=%u warming=%u",
			  event, dv->plan.name, why, model, version, target, rate, active, warming);
}

static void apply(const struct swarm_fleet_action *acts, int n, struct as_model **order)
{
	for (int k = 0; k < n; k++) {
		const struct swarm_fleet_action *a = &acts[k];
		struct device *dv = &d.dev[a->device];
		struct as_model *e = a->kind == SWARM_FLEET_PARK ? NULL : order[a->model];
		switch (a->kind) {
		case SWARM_FLEET_ADD:
			e->hosts |= 1ull << a->device;
			if (a->wake)
				log_action("autoscale", "wake", dv, e, e->reason);
			else
				log_action("autoscale_place", NULL, dv, e, e->reason);
			if (a->wake) {
				counters_autoscale(1, e->reason);
				sup_device_wake(dv, swarm_as_reason_name(e->reason));
			}
			break;
		case SWARM_FLEET_REMOVE:
			e->hosts &= ~(1ull << a->device);
			log_action("autoscale_release", NULL, dv, e, e->reason);
			break;
		case SWARM_FLEET_PARK:
			log_action("autoscale", "drain", dv, NULL, SWARM_AS_R_DEMAND);
			counters_autoscale(0, SWARM_AS_R_DEMAND);
			sup_device_drain(dv, "idle");
			break;
		}
	}
}

/* Warm spares: the configured number of parked devices kept started; each spare that holds
 * nothing loads the model most likely to need another device next (the busiest per device it
 * has), so that a wake for it finds it loaded. */
static void keep_spares(struct as_model **order, size_t n)
{
	struct swarm_as_device view[MAX_DEVICES];
	int wake[MAX_DEVICES];
	for (int i = 0; i < d.n_dev; i++)
		view[i] = (struct swarm_as_device){ .state = d.dev[i].state,
						    .parking = d.dev[i].parking,
						    .to_standby = d.dev[i].to_standby };
	size_t nw = swarm_as_spares(view, (size_t)d.n_dev, cfg.as.standby, wake, MAX_DEVICES);
	for (size_t k = 0; k < nw; k++) {
		d.dev[wake[k]].to_standby = 1;
		sup_device_wake(&d.dev[wake[k]], "standby");
	}
	struct as_model *next = NULL;
	double pressure = 0;
	for (size_t k = 0; k < n; k++) {
		struct as_model *e = order[k];
		uint32_t on = e->in.active + e->in.warming;
		double p = e->in.service_rate > 0 ?
				   e->in.rate_short / e->in.service_rate / (on ? on : 1) :
				   0;
		if (e->res_ok && e->in.sessions && (!next || p > pressure)) {
			next = e;
			pressure = p;
		}
	}
	for (int i = 0; next && i < d.n_dev && i < 64; i++) {
		struct device *dv = &d.dev[i];
		if (dv->state == SWARM_DEVICE_STANDBY && dv->ctl >= 0 && !dv->parking &&
		    dv->n_res == 0 && (mem_allowed(&next->res) >> i & 1) && !load_on(next, dv))
			swarm_log(SWARM_LOG_INFO,
				  "event=autoscale_spare_load device=%s model=%s version=%u",
				  dv->plan.name, next->name, next->version);
	}
}

/* The models followed now, their input filled, most important first, into order. */
static size_t gather(struct as_model **order)
{
	for (int k = 0; k < AS_MODELS; k++) {
		memset(&as.m[k].in, 0, sizeof as.m[k].in);
		memset(as.m[k].sessions_on, 0, sizeof as.m[k].sessions_on);
	}
	sessions_input();
	size_t n = 0;
	for (int k = 0; k < AS_MODELS; k++) {
		struct as_model *e = &as.m[k];
		if (!e->used)
			continue;
		if (!e->in.sessions && !e->in.waiting_opens && !e->hosts) {
			e->used = 0; /* nothing holds it: forgotten */
			continue;
		}
		e->in_use = e->in.sessions || e->in.waiting_opens;
		char text[SWARM_MSG_TEXT_MAX];
		e->res_ok = !models_resolve(e->name, e->version, &e->res, text, sizeof text);
		model_input(e);
		order[n++] = e;
	}
	qsort(order, n, sizeof *order, by_importance);
	return n;
}

/* --autoscale-trace: the decision's input and answer, for swarm-sim --replay (as_trace.h). */
static void trace(uint64_t now, struct as_model **order, const struct swarm_as_model *in, size_t n,
		  const struct swarm_as_action *acts, int na, const uint32_t *targets)
{
	if (!cfg.as.trace[0] || as.trace_failed)
		return;
	int rc = 0;
	if (!as.trace) {
		as.trace = fopen(cfg.as.trace, "we");
		rc = as.trace ? swarm_as_trace_begin(as.trace, &cfg.as.cfg) : -errno;
	}
	const char *names[AS_MODELS];
	uint32_t versions[AS_MODELS];
	uint64_t ids[AS_MODELS];
	for (size_t k = 0; k < n; k++) {
		names[k] = order[k]->name;
		versions[k] = order[k]->version;
		ids[k] = order[k]->mem_id;
	}
	if (!rc)
		rc = swarm_as_trace_decision(as.trace, now, (uint32_t)d.n_dev, in, names, versions,
					     ids, n, acts, (size_t)na, targets);
	if (rc) {
		as.trace_failed = 1;
		swarm_log(SWARM_LOG_ERROR,
			  "event=autoscale_trace_failed path=%s reason=\"%s: no more of the trace "
			  "is written\"",
			  cfg.as.trace, strerror(rc == -EIO ? EIO : -rc));
	}
}

/* The policy's per-model decision, as each model's wanted device count for the placement, into
 * fm. Returns 0, or the policy's -errno. */
static int decide(uint64_t now, struct as_model **order, size_t n, struct swarm_fleet_model *fm)
{
	struct swarm_as_model in[AS_MODELS];
	struct swarm_as_memory mem[AS_MODELS];
	for (size_t k = 0; k < n; k++) {
		in[k] = order[k]->in;
		mem[k] = order[k]->mem;
	}
	struct swarm_as_action acts[2 * AS_MODELS];
	uint32_t targets[AS_MODELS];
	int na = swarm_as_decide(now, &cfg.as.cfg, in, mem, n, (uint32_t)d.n_dev, acts,
				 2 * AS_MODELS, targets);
	if (na < 0)
		return na;
	trace(now, order, in, n, acts, na, targets);
	for (size_t k = 0; k < n; k++) {
		struct as_model *e = order[k];
		e->mem = mem[k];
		if (targets[k] != e->target)
			swarm_log(SWARM_LOG_DEBUG,
				  "event=autoscale_target model=%s version=%u target=%u active=%u "
				  "warming=%u rate=%.0f service_rate=%.0f busy=%.2f queue=%u "
				  "sessions=%u min=%u max=%u",
				  e->name, e->version, targets[k], e->in.active, e->in.warming,
				  e->in.rate_long, e->in.service_rate, e->in.busy,
				  e->in.queue_depth, e->in.sessions, e->in.min_devices,
				  e->in.max_devices);
		e->target = targets[k];
		int64_t want = (int64_t)e->in.active + e->in.warming;
		for (int j = 0; j < na; j++) {
			if (acts[j].model != k)
				continue;
			want += acts[j].kind == SWARM_AS_WAKE ? (int64_t)acts[j].count :
								-(int64_t)acts[j].count;
			e->reason = acts[j].reason;
		}
		uint64_t cached = 0; /* resident where it is not a host: idle, left loaded */
		for (int i = 0; i < d.n_dev && i < 64; i++)
			if (!(e->hosts >> i & 1) && mem_resident(&d.dev[i], e->name, e->version))
				cached |= 1ull << i;
		fm[k] = (struct swarm_fleet_model){
			.want = want > 0 ? (uint32_t)want : 0,
			.hosts = e->hosts,
			.cached = cached,
			.allowed = e->res_ok ? mem_allowed(&e->res) : 0,
			.bytes = e->res_ok ? mem_cost(&e->res) : UINT64_MAX,
			.sessions = e->sessions_on,
		};
		/* Gone from the registry: kept where it is until it closes. Nobody using it: no
		 * new host (demand comes through sessions), and its hosts go by the policy. */
		if (!e->res_ok || (!e->in_use && fm[k].want > e->in.active + e->in.warming))
			fm[k].want = e->in.active + e->in.warming;
	}
	return 0;
}

/* The devices as the placement sees them, into fd; returns how many. */
static size_t fleet_devices(struct swarm_fleet_device *fd)
{
	int nd = d.n_dev < SWARM_FLEET_MAX_DEVICES ? d.n_dev : SWARM_FLEET_MAX_DEVICES;
	for (int i = 0; i < nd; i++) {
		mem_fleet_device(&d.dev[i], &fd[i]);
		if (d.dev[i].to_standby && d.dev[i].state == SWARM_DEVICE_WARMING) {
			fd[i].state = SWARM_DEVICE_STANDBY; /* a spare on its way: not in service,
							     */
			fd[i].parking = 1;                  /* and not to be woken twice */
		}
	}
	return (size_t)nd;
}

/* The policy's decision on the demand as it stands, carried out. Called on every tick, and at
 * once when an open finds nothing in service (a tick later would add up to 100 ms to a
 * scale-up from zero). */
void as_decide(uint64_t now)
{
	if (!d.ready || d.stopping)
		return;
	struct as_model *order[AS_MODELS];
	size_t n = gather(order);
	struct swarm_fleet_model fm[AS_MODELS];
	int rc = decide(now, order, n, fm);
	if (rc < 0) { /* options are checked at start: a bug, said once rather than hidden */
		static int said;
		if (!said++)
			swarm_log(
				SWARM_LOG_ERROR,
				"event=autoscale_error reason=\"the policy refused its input: %s\"",
				strerror(-rc));
		return;
	}
	struct swarm_fleet_device fd[SWARM_FLEET_MAX_DEVICES];
	size_t nd = fleet_devices(fd);
	struct swarm_fleet_action plan[4 * AS_MODELS];
	uint32_t lack[AS_MODELS];
	int np = swarm_fleet_plan(fm, n, fd, nd, cfg.as.idle_floor, plan,
				  sizeof plan / sizeof *plan, lack);
	if (np > 0)
		apply(plan, np, order);
	for (size_t k = 0; k < n; k++) {
		if (np >= 0 && lack[k])
			swarm_log(SWARM_LOG_DEBUG,
				  "event=autoscale_short model=%s version=%u devices=%u "
				  "reason=\"no device in service or parked has room for it\"",
				  order[k]->name, order[k]->version, lack[k]);
		reconcile(order[k]);
	}
	if (np > 0)
		place_rebalance();
	keep_spares(order, n);
}
