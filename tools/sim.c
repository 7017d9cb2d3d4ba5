/* sim.c: swarm-sim's discrete-event simulation (see sim.h). One model on a pool of devices;
 * three kinds of event in time order: an arrival (from the trace), a device's event (its
 * batch completes, or its warm-up ends) and a tick (measure as swarmd would, then let
 * swarm_as_decide act). At equal times devices go first, then arrivals, then the tick. An idle
 * device takes its next batch only once everything at that instant has happened, so that
 * simultaneous arrivals, and one arriving as a batch completes, share a batch.
 *
 * A device serves its queue in batches: when idle it takes up to max_batch queued requests
 * at once and is busy for base_us + per_row_us * b. Requests go to the active device with
 * the fewest requests (queued and in service). With none active they are held in one queue,
 * and later arrivals join it while it is not empty; an active device with nothing of its own
 * takes its batches from there, oldest first, so that the backlog of a scale from zero spreads
 * over the devices as they come instead of landing on the first. Nothing here is shared
 * between runs.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/invariant.h"
#include "runtime/histogram.h"
#include "tools/sim.h"
#include "tools/sim_internal.h"

#define NEVER SIM_NEVER
/* The simulation stops this long after the trace's end even with requests left (a policy
 * that never wakes a device for held requests); they count as missed. */
#define SIM_GRACE_NS (24ull * 3600 * 1000000000)
/* swarmd's busy EWMA time constant (BUSY_TAU_NS in runtime/swarmd/placement.c). */
#define SIM_BUSY_TAU_NS 5e9

enum dev_state {
	DEV_PARKED,
	DEV_WARMING,
	DEV_ACTIVE,
	DEV_DRAINING,
};

struct dev {
	struct sim_fifo q;     /* its requests: the batch in service first, then the waiting */
	uint64_t next_ns;      /* the batch's completion or the warm-up's end; NEVER */
	uint64_t batch_start;  /* when the batch in service started */
	uint32_t in_batch;     /* requests in service, 0 when idle */
	uint32_t state;        /* a dev_state */
	int32_t act_pos;       /* in sim.act, -1 when not active */
	uint8_t pending;       /* in sim.pending */
	uint64_t busy_tick_ns; /* busy in the tick being measured */
	double busy_ewma;      /* --measure swarmd: swarmd's smoothed busy fraction */
};

struct sim {
	const struct swarm_sim_opts *o;
	struct swarm_sim_report *r;
	char *err;
	size_t err_len;

	struct dev *dev;
	uint32_t n_dev;
	uint32_t *act; /* the ACTIVE devices, in no order */
	uint32_t n_act, n_warming, n_draining, n_on;
	struct sim_heap heap; /* devices with an event, on their next_ns */
	uint32_t *pending;    /* idle devices with requests, to start at the end of the instant */
	uint32_t n_pending;
	struct sim_fifo held; /* arrivals while nothing is active */

	uint64_t svc_ns[1 + 65536]; /* a batch of b takes svc_ns[b]; only max_batch filled */
	uint64_t warmup_ns, tick_ns, objective_ns, end_ns;

	uint64_t now, last_change;
	uint64_t dev_ns;      /* integral of devices not PARKED */
	uint64_t outstanding; /* held, queued and in service */
	uint64_t in_service;  /* of which in service */

	/* The tick being measured. */
	uint64_t tick_no, last_tick_ns;
	uint64_t serving_ns; /* integral of ACTIVE + DRAINING devices in the tick */
	uint64_t tick_arrivals, tick_missed;
	uint64_t arrivals, served, busy_ns;              /* totals, for the windows */
	struct sim_window w_arr, w_in, w_served, w_busy; /* w_arr: the rates' count (see tick) */
	uint64_t k_long, k_short;                        /* the windows in ticks */
	struct swarm_hist *hist;   /* k_short per-tick latency histograms (as a stats page's) */
	struct swarm_hist p99_sum; /* the sum of hist[] */
	double service_rate;       /* the last measured, 0 before any */
	struct swarm_as_model m;   /* the last measurement */
	struct swarm_as_memory mem;
	struct swarm_as_peak peak; /* the policy's burst memory (as swarmd keeps it) */
	uint32_t target;

	struct sim_lat lat;
	size_t ticks_cap;
};

/* ---- devices ----------------------------------------------------------------------------- */

/* Integrates the device counts up to now: call before any of them changes. */
static void advance(struct sim *s)
{
	uint64_t dt = s->now - s->last_change;
	s->dev_ns += (uint64_t)s->n_on * dt;
	s->serving_ns += (uint64_t)(s->n_act + s->n_draining) * dt;
	s->last_change = s->now;
	if (s->n_on > s->r->peak_devices)
		s->r->peak_devices = s->n_on;
}

static void act_add(struct sim *s, uint32_t d)
{
	s->dev[d].act_pos = (int32_t)s->n_act;
	s->act[s->n_act++] = d;
}

static void act_remove(struct sim *s, uint32_t d)
{
	uint32_t i = (uint32_t)s->dev[d].act_pos;
	uint32_t last = s->act[--s->n_act];
	s->act[i] = last;
	s->dev[last].act_pos = (int32_t)i;
	s->dev[d].act_pos = -1;
}

static void set_state(struct sim *s, uint32_t d, uint32_t state)
{
	struct dev *dv = &s->dev[d];
	advance(s);
	switch (dv->state) {
	case DEV_WARMING:
		s->n_warming--;
		break;
	case DEV_ACTIVE:
		act_remove(s, d);
		break;
	case DEV_DRAINING:
		s->n_draining--;
		break;
	}
	s->n_on += (state != DEV_PARKED) - (dv->state != DEV_PARKED);
	dv->state = state;
	switch (state) {
	case DEV_WARMING:
		s->n_warming++;
		break;
	case DEV_ACTIVE:
		act_add(s, d);
		break;
	case DEV_DRAINING:
		s->n_draining++;
		break;
	}
}

/* Requests waiting in the devices' queues (neither held nor in service). */
static uint64_t queued_waiting(const struct sim *s)
{
	return s->outstanding - s->in_service - s->held.len;
}

/* Whether device d has work to start: its own, or (active) the held requests, or (active,
 * the backlog moving) another's waiting requests. */
static int has_work(const struct sim *s, const struct dev *dv)
{
	if (dv->q.len)
		return 1;
	if (dv->state != DEV_ACTIVE)
		return 0;
	return s->held.len || (s->o->backlog == SWARM_SIM_BACKLOG_MOVE && queued_waiting(s) > 0);
}

/* Active device d, about to start a batch of the own requests it has (fewer than a batch),
 * fills it from the device with the most waiting: the oldest of them, at most half the
 * difference (rounded up), so that the two end with queues as even as a batch allows
 * instead of handing requests back and forth. Arrivals go to the shortest queue; this is
 * the same balance for what queued before a device came into service. */
static int take_backlog(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	uint32_t from = UINT32_MAX;
	size_t most = dv->q.len;
	for (uint32_t i = 0; i < s->n_dev; i++) {
		const struct dev *v = &s->dev[i];
		size_t waiting = v->q.len - v->in_batch;
		if (i != d && waiting > most) {
			most = waiting;
			from = i;
		}
	}
	if (from == UINT32_MAX)
		return 0;
	size_t k = (most - dv->q.len + 1) / 2;
	if (k > s->o->max_batch - dv->q.len)
		k = s->o->max_batch - dv->q.len;
	s->r->moved += k;
	return sim_fifo_move(&s->dev[from].q, s->dev[from].in_batch, k, &dv->q);
}

/* An idle device in service with requests queued takes its next batch; an active one with
 * none of its own takes it from the held requests. */
static int start_batch(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->in_batch || (dv->state != DEV_ACTIVE && dv->state != DEV_DRAINING))
		return 0;
	if (!dv->q.len && dv->state == DEV_ACTIVE) {
		for (uint32_t i = 0; i < s->o->max_batch && s->held.len; i++)
			if (sim_fifo_push(&dv->q, sim_fifo_pop(&s->held)) < 0)
				return -ENOMEM;
	}
	if (dv->state == DEV_ACTIVE && s->o->backlog == SWARM_SIM_BACKLOG_MOVE &&
	    dv->q.len < s->o->max_batch && queued_waiting(s) > dv->q.len && take_backlog(s, d) < 0)
		return -ENOMEM;
	if (!dv->q.len)
		return 0;
	uint32_t b = dv->q.len < s->o->max_batch ? (uint32_t)dv->q.len : s->o->max_batch;
	dv->in_batch = b;
	s->in_service += b;
	dv->batch_start = s->now;
	dv->next_ns = s->now + s->svc_ns[b];
	s->r->batches++;
	sim_heap_update(&s->heap, d, s->dev[d].next_ns);
	return 0;
}

/* Device d starts its next batch once the current instant is over. */
static void kick(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->pending || dv->in_batch || !has_work(s, dv))
		return;
	dv->pending = 1;
	s->pending[s->n_pending++] = d;
}

static int start_pending(struct sim *s)
{
	int rc = 0;
	for (uint32_t i = 0; i < s->n_pending; i++) {
		s->dev[s->pending[i]].pending = 0;
		if (!rc)
			rc = start_batch(s, s->pending[i]);
	}
	s->n_pending = 0;
	return rc;
}

/* The active device with the fewest requests (the first of equals in sim.act). */
static uint32_t shortest_queue(const struct sim *s)
{
	uint32_t best = s->act[0];
	size_t best_len = s->dev[best].q.len;
	for (uint32_t i = 1; i < s->n_act && best_len; i++) {
		uint32_t d = s->act[i];
		if (s->dev[d].q.len < best_len) {
			best = d;
			best_len = s->dev[d].q.len;
		}
	}
	return best;
}

static void record(struct sim *s, uint64_t arrival)
{
	uint64_t lat = s->now - arrival;
	sim_lat_add(&s->lat, lat);
	if (lat <= s->objective_ns)
		s->r->met++;
	else
		s->tick_missed++;
	swarm_hist_add(&s->hist[s->tick_no % s->k_short], lat);
	swarm_hist_add(&s->p99_sum, lat);
}

static void batch_done(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	uint64_t from = dv->batch_start > s->last_tick_ns ? dv->batch_start : s->last_tick_ns;
	s->busy_ns += s->now - from;
	dv->busy_tick_ns += s->now - from;
	s->served += dv->in_batch;
	for (uint32_t i = 0; i < dv->in_batch; i++)
		record(s, sim_fifo_pop(&dv->q));
	s->outstanding -= dv->in_batch;
	s->in_service -= dv->in_batch;
	dv->in_batch = 0;
	dv->next_ns = NEVER;
	sim_heap_update(&s->heap, d, s->dev[d].next_ns);
	if (has_work(s, dv))
		kick(s, d);
	else if (dv->state == DEV_DRAINING)
		set_state(s, d, DEV_PARKED);
}

static int device_event(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->state == DEV_WARMING) {
		dv->next_ns = NEVER;
		sim_heap_update(&s->heap, d, s->dev[d].next_ns);
		set_state(s, d, DEV_ACTIVE);
		dv->busy_ewma = 0;
		kick(s, d); /* the held requests, if any */
		return 0;
	}
	SWARM_INVARIANT(dv->in_batch);
	batch_done(s, d);
	return 0;
}

/* ---- the policy's actions ---------------------------------------------------------------- */

/* Parked device d starts its warm-up. */
static void wake_one(struct sim *s, uint32_t d)
{
	set_state(s, d, DEV_WARMING);
	s->dev[d].next_ns = s->now + s->warmup_ns;
	sim_heap_update(&s->heap, d, s->dev[d].next_ns);
}

static void wake(struct sim *s, uint32_t count, uint32_t reason)
{
	for (uint32_t d = 0; d < s->n_dev && count; d++) {
		if (s->dev[d].state != DEV_PARKED)
			continue;
		wake_one(s, d);
		count--;
		s->r->wakes++;
		s->r->wakes_by_reason[reason < 8 ? reason : 0]++;
	}
}

/* Takes device d out of service: a warming one parks, an active one drains (parks at once
 * with nothing queued). */
static void take_out(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->state == DEV_WARMING) {
		dv->next_ns = NEVER;
		sim_heap_update(&s->heap, d, dv->next_ns);
		set_state(s, d, DEV_PARKED);
	} else if (dv->state == DEV_ACTIVE) {
		set_state(s, d, dv->q.len ? DEV_DRAINING : DEV_PARKED);
	}
}

/* Takes count devices out of service: warming ones first (the latest to be ready: the
 * cheapest to give up), then the active ones with the fewest requests, which drain. */
static void drain(struct sim *s, uint32_t count, uint32_t reason)
{
	while (count) {
		uint32_t pick = UINT32_MAX;
		if (s->n_warming) {
			for (uint32_t d = 0; d < s->n_dev; d++)
				if (s->dev[d].state == DEV_WARMING &&
				    (pick == UINT32_MAX ||
				     s->dev[d].next_ns >= s->dev[pick].next_ns))
					pick = d;
		} else if (s->n_act) {
			pick = shortest_queue(s);
		} else {
			return;
		}
		take_out(s, pick);
		count--;
		s->r->drains++;
		s->r->drains_by_reason[reason < 8 ? reason : 0]++;
	}
}

/* A clairvoyant schedule's switch (sim.h): it names the device, and is counted as a scale
 * event of reason 0 when it changes the device's state. */
static void switch_device(struct sim *s, const struct swarm_sim_switch *sw)
{
	struct dev *dv = &s->dev[sw->device];
	uint32_t before = dv->state;
	if (sw->kind == SWARM_SIM_SWITCH_OFF) {
		take_out(s, sw->device);
		if (dv->state != before) {
			s->r->drains++;
			s->r->drains_by_reason[0]++;
		}
		return;
	}
	if (sw->kind == SWARM_SIM_SWITCH_WARM && before == DEV_PARKED) {
		set_state(s, sw->device, DEV_ACTIVE);
	} else if (before == DEV_PARKED || before == DEV_DRAINING) {
		if (before == DEV_PARKED)
			wake_one(s, sw->device);
		else
			set_state(s, sw->device, DEV_ACTIVE);
		s->r->wakes++;
		s->r->wakes_by_reason[0]++;
	}
	kick(s, sw->device);
}

static int decide(struct sim *s, const struct swarm_as_model *m)
{
	struct swarm_as_action out[8];
	uint32_t target = 0;
	int n = swarm_as_decide(s->now, &s->o->as, m, &s->mem, 1, s->n_dev - s->n_on, out, 8,
				&target);
	s->r->decisions++;
	if (n < 0) {
		snprintf(s->err, s->err_len, "swarm_as_decide failed at %.3f s: %s", s->now / 1e9,
			 strerror(-n));
		return -EPROTO;
	}
	s->target = target;
	for (int i = 0; i < n; i++) {
		if (out[i].model != 0) {
			snprintf(s->err, s->err_len, "swarm_as_decide named model %u of 1",
				 out[i].model);
			return -EPROTO;
		}
		if (out[i].kind == SWARM_AS_WAKE)
			wake(s, out[i].count, out[i].reason);
		else if (out[i].kind == SWARM_AS_DRAIN)
			drain(s, out[i].count, out[i].reason);
	}
	return 0;
}

/* The counts of the model's devices, as swarmd would give them. */
static void model_counts(const struct sim *s, struct swarm_as_model *m)
{
	uint64_t waiting = s->outstanding - s->in_service;
	m->queue_depth = waiting < UINT32_MAX ? (uint32_t)waiting : UINT32_MAX;
	m->waiting_opens = s->held.len ? 1 : 0;
	m->active = s->n_act;
	m->warming = s->n_warming;
	m->draining = s->n_draining;
}

/* ---- arrivals and ticks ------------------------------------------------------------------ */

static int arrival(struct sim *s, uint64_t t)
{
	s->r->requests++;
	s->arrivals++;
	s->tick_arrivals++;
	if (s->outstanding >= s->o->max_outstanding) {
		s->r->refused++;
		return 0;
	}
	s->outstanding++;
	if (!s->n_act || s->held.len) {
		/* Behind the held ones: the active devices are all busy with them. */
		if (sim_fifo_push(&s->held, t) < 0)
			return -ENOMEM;
		if (s->n_act)
			return 0;
		/* swarmd answers an open held for lack of a device at once, not at its next
		 * tick: so does the simulator, with the last tick's measurements. */
		if (!s->o->static_devices && !s->o->schedule && !s->n_warming &&
		    s->o->measure != SWARM_SIM_MEASURE_SWARMD) {
			struct swarm_as_model m = s->m;
			model_counts(s, &m);
			m.sessions = 1;
			return decide(s, &m);
		}
		return 0;
	}
	uint32_t d = shortest_queue(s);
	if (sim_fifo_push(&s->dev[d].q, t) < 0)
		return -ENOMEM;
	kick(s, d);
	return 0;
}

static int keep_tick(struct sim *s, const struct swarm_as_model *m)
{
	struct swarm_sim_report *r = s->r;
	if (r->n_ticks == s->ticks_cap) {
		size_t ncap = s->ticks_cap ? s->ticks_cap * 2 : 1024;
		struct swarm_sim_tick *nt = realloc(r->ticks, ncap * sizeof *nt);
		if (!nt)
			return -ENOMEM;
		r->ticks = nt;
		s->ticks_cap = ncap;
	}
	double tick_s = (double)s->tick_ns / 1e9;
	r->ticks[r->n_ticks++] = (struct swarm_sim_tick){
		.t_s = (double)s->now / 1e9,
		.offered = (double)s->tick_arrivals / tick_s,
		.rate_long = m->rate_long,
		.rate_short = m->rate_short,
		.service_rate = m->service_rate,
		.busy = m->busy,
		.active = s->n_act,
		.warming = s->n_warming,
		.draining = s->n_draining,
		.target = s->target,
		.queue = m->queue_depth,
		.p99_ns = m->p99_ns,
		.missed = s->tick_missed,
	};
	return 0;
}

/* Busy time of the batches still in service, up to the tick; swarmd's smoothed busy fraction of
 * each device in service (runtime/swarmd/placement.c place_update_load), summed over the
 * active ones into *busy_sum with their queues into *queue_active. */
static void measure_busy(struct sim *s, int swarmd, double *busy_sum, uint64_t *queue_active)
{
	double a = (double)s->tick_ns / SIM_BUSY_TAU_NS;
	for (uint32_t i = 0; i < s->n_dev; i++) {
		struct dev *dv = &s->dev[i];
		if (dv->in_batch) {
			uint64_t from = dv->batch_start > s->last_tick_ns ? dv->batch_start :
									    s->last_tick_ns;
			s->busy_ns += s->now - from;
			dv->busy_tick_ns += s->now - from;
		}
		if (swarmd && (dv->state == DEV_ACTIVE || dv->state == DEV_DRAINING)) {
			double frac = (double)dv->busy_tick_ns / (double)s->tick_ns;
			dv->busy_ewma += (a < 1 ? a : 1) * ((frac < 1 ? frac : 1) - dv->busy_ewma);
			if (dv->state == DEV_ACTIVE) {
				*busy_sum += dv->busy_ewma;
				*queue_active += dv->q.len - dv->in_batch;
			}
		}
		dv->busy_tick_ns = 0;
	}
}

static int tick(struct sim *s)
{
	advance(s);
	int swarmd = s->o->measure == SWARM_SIM_MEASURE_SWARMD;
	double busy_sum = 0;
	uint64_t queue_active = 0;
	measure_busy(s, swarmd, &busy_sum, &queue_active);
	uint64_t k = ++s->tick_no;
	sim_window_set(&s->w_arr, k, s->arrivals);
	sim_window_set(&s->w_in, k, s->arrivals);
	sim_window_set(&s->w_served, k, s->served);
	sim_window_set(&s->w_busy, k, s->busy_ns);
	double tick_s = (double)s->tick_ns / 1e9;
	uint64_t n_long = k < s->k_long ? k : s->k_long;
	uint64_t n_short = k < s->k_short ? k : s->k_short;

	struct swarm_as_model *m = &s->m;
	m->rate_long = (double)sim_window_sum(&s->w_arr, k, n_long) / ((double)n_long * tick_s);
	m->rate_short = (double)sim_window_sum(&s->w_arr, k, n_short) / ((double)n_short * tick_s);
	uint64_t busy_long = sim_window_sum(&s->w_busy, k, n_long);
	if (busy_long)
		s->service_rate =
			(double)sim_window_sum(&s->w_served, k, n_long) / ((double)busy_long / 1e9);
	m->service_rate = s->service_rate;
	uint64_t busy_tick = sim_window_sum(&s->w_busy, k, 1);
	swarm_as_peak_add(&s->peak, s->now, sim_window_sum(&s->w_arr, k, 1),
			  sim_window_sum(&s->w_served, k, 1), busy_tick);
	swarm_as_peak_get(&s->peak, s->o->as.peak_window_ns, &m->rate_peak, &m->service_peak);
	m->busy = s->serving_ns ? (double)busy_tick / (double)s->serving_ns : 0;
	if (m->busy > 1)
		m->busy = 1;
	/* p99 over the short window (p99_sum holds its ticks' histograms, of the stats page's
	 * resolution); swarmd passes none. */
	m->p99_ns = swarmd ? 0 : swarm_hist_quantile(&s->p99_sum, 0.99);
	m->sessions = sim_window_sum(&s->w_in, k, n_long) || s->outstanding ? 1 : 0;
	model_counts(s, m);
	if (swarmd) {
		m->busy = m->active ? busy_sum / m->active : 0;
		/* Held requests wait on the active devices too, once there are some (in swarmd,
		 * in the queues of the sessions that were waiting for a device). */
		if (s->n_act)
			queue_active += s->held.len;
		m->queue_depth = queue_active < UINT32_MAX ? (uint32_t)queue_active : UINT32_MAX;
	}

	int rc = 0;
	if (s->o->schedule)
		s->target = s->n_on; /* what the schedule has on, for the chart and the ticks */
	else if (!s->o->static_devices)
		rc = decide(s, m);
	if (!rc && s->o->keep_ticks)
		rc = keep_tick(s, m);

	/* The next tick starts: its histogram slot (the window's oldest tick leaves the sum),
	 * its counters. */
	struct swarm_hist *old = &s->hist[k % s->k_short];
	for (uint32_t b = 0; b < SWARM_HIST_BUCKETS; b++)
		s->p99_sum.count[b] -= old->count[b];
	memset(old, 0, sizeof *old);
	s->last_tick_ns = s->now;
	s->serving_ns = 0;
	s->tick_arrivals = 0;
	s->tick_missed = 0;
	return rc;
}

/* ---- a run ------------------------------------------------------------------------------- */

static void sim_free(struct sim *s)
{
	for (uint32_t i = 0; s->dev && i < s->n_dev; i++)
		free(s->dev[i].q.v);
	free(s->dev);
	free(s->act);
	free(s->heap.v);
	free(s->heap.pos);
	free(s->pending);
	free(s->held.v);
	free(s->w_arr.cum);
	free(s->w_in.cum);
	free(s->w_served.cum);
	free(s->w_busy.cum);
	free(s->hist);
	sim_lat_free(&s->lat);
	free(s);
}

static uint64_t ms_ns(double ms) { return (uint64_t)llround(ms * 1e6); }

static int sim_setup(struct sim *s, const struct swarm_sim_opts *o)
{
	s->n_dev = o->static_devices ? o->static_devices : o->max_devices;
	s->tick_ns = ms_ns(o->tick_ms);
	s->warmup_ns = ms_ns(o->warmup_ms);
	s->objective_ns = (uint64_t)llround(o->objective_us * 1e3);
	double dur = o->duration_s > 0 ? o->duration_s : o->trace->duration_s;
	s->end_ns = (uint64_t)llround(dur * 1e9);
	for (uint32_t b = 1; b <= o->max_batch; b++)
		s->svc_ns[b] = (uint64_t)llround((o->base_us + o->per_row_us * b) * 1e3);
	s->k_long = (o->as.stable_window_ns + s->tick_ns - 1) / s->tick_ns;
	s->k_short = (uint64_t)ceil(o->short_window_s * 1e9 / (double)s->tick_ns - 1e-9);
	if (s->k_short < 1)
		s->k_short = 1;
	size_t wlen = (s->k_long > s->k_short ? s->k_long : s->k_short) + 1;
	s->dev = calloc(s->n_dev, sizeof *s->dev);
	s->act = calloc(s->n_dev, sizeof *s->act);
	s->heap.v = calloc(s->n_dev, sizeof *s->heap.v);
	s->heap.pos = malloc(s->n_dev * sizeof *s->heap.pos);
	s->pending = calloc(s->n_dev, sizeof *s->pending);
	s->w_arr = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	s->w_in = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	s->w_served = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	s->w_busy = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	s->hist = calloc(s->k_short, sizeof *s->hist);
	if (sim_lat_init(&s->lat))
		return -ENOMEM;
	if (!s->dev || !s->act || !s->heap.v || !s->heap.pos || !s->pending || !s->w_arr.cum ||
	    !s->w_in.cum || !s->w_served.cum || !s->w_busy.cum || !s->hist)
		return -ENOMEM;
	for (uint32_t d = 0; d < s->n_dev; d++) {
		s->dev[d] = (struct dev){ .next_ns = NEVER, .act_pos = -1 };
		s->heap.pos[d] = -1;
	}
	uint32_t start = o->start_devices == UINT32_MAX ? o->min_devices : o->start_devices;
	if (o->static_devices)
		start = o->static_devices;
	if (o->schedule)
		start = 0; /* its WARM switches at 0 */
	for (uint32_t d = 0; d < start; d++)
		set_state(s, d, DEV_ACTIVE);
	s->target = start;
	s->m.min_devices = o->static_devices ? o->static_devices : o->min_devices;
	s->m.max_devices = o->static_devices ? o->static_devices : o->max_devices;
	s->m.latency_p99_ns = s->objective_ns;
	return 0;
}

int swarm_sim_run(const struct swarm_sim_opts *o, struct swarm_sim_report *r, char *err,
		  size_t err_len)
{
	memset(r, 0, sizeof *r);
	int rc = swarm_sim_opts_check(o, err, err_len);
	if (rc)
		return rc;
	struct sim *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->o = o;
	s->r = r;
	s->err = err;
	s->err_len = err_len;
	rc = sim_setup(s, o);
	if (rc)
		goto out;

	struct swarm_sim_gen gen;
	swarm_sim_gen_init(&gen, o->trace, o->seed, (double)s->end_ns / 1e9);
	uint64_t next_arr = swarm_sim_gen_next(&gen);
	uint64_t next_tick = s->tick_ns;
	const struct swarm_sim_schedule *sched = o->schedule;
	size_t sw = 0;
	/* Until the trace is over, its requests are done and the ticks have reached its end. */
	while (s->outstanding || next_arr != NEVER || next_tick <= s->end_ns) {
		uint64_t t_dev = sim_heap_top(&s->heap);
		uint64_t next_sw = sched && sw < sched->n ? sched->v[sw].t_ns : NEVER;
		if (s->n_pending && t_dev > s->now && next_arr > s->now && next_tick > s->now &&
		    next_sw > s->now) {
			/* The instant is over: idle devices with requests start (later events). */
			rc = start_pending(s);
			if (rc)
				goto out;
			continue;
		}
		if (t_dev <= next_arr && t_dev <= next_tick && t_dev <= next_sw) {
			s->now = t_dev;
			rc = device_event(s, s->heap.v[0].id);
		} else if (next_sw <= next_arr && next_sw <= next_tick) {
			s->now = next_sw;
			switch_device(s, &sched->v[sw++]);
		} else if (next_arr <= next_tick) {
			s->now = next_arr;
			rc = arrival(s, next_arr);
			next_arr = swarm_sim_gen_next(&gen);
		} else {
			s->now = next_tick;
			if (s->now > s->end_ns + SIM_GRACE_NS)
				break;
			rc = tick(s);
			next_tick += s->tick_ns;
		}
		if (rc)
			goto out;
	}
	if (s->now < s->end_ns)
		s->now = s->end_ns;
	advance(s);

	r->unfinished = s->outstanding;
	r->duration_s = (double)s->now / 1e9;
	r->device_seconds = (double)s->dev_ns / 1e9;
	r->mean_devices = r->duration_s > 0 ? r->device_seconds / r->duration_s : 0;
	r->attainment = r->requests ? (double)r->met / (double)r->requests : 1;
	r->p50_us = sim_lat_quantile_us(&s->lat, 0.50);
	r->p99_us = sim_lat_quantile_us(&s->lat, 0.99);
	r->max_us = (double)s->lat.max / 1e3;
	r->mean_us = sim_lat_mean_us(&s->lat);
out:
	sim_free(s);
	if (rc)
		swarm_sim_report_free(r);
	return rc;
}

void swarm_sim_report_free(struct swarm_sim_report *r)
{
	free(r->ticks);
	r->ticks = NULL;
	r->n_ticks = 0;
}
