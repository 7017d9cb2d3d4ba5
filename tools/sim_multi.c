/* sim_multi.c: swarm-sim's multi-model simulation (see sim_multi.h, docs/simulator.md "Many
 * models"). As tools/sim.c for one model, three kinds of event in time order: a device's
 * event (its warm-up ends, a load completes, its batch completes), an arrival (from one
 * model's trace) and a tick (measure each model as swarmd would, let swarm_as_decide say how
 * many hosts each wants and swarm_fleet_plan where, then carry out the plan). At equal times
 * devices go first, then arrivals, then the tick; an idle device takes its next batch only
 * once everything at that instant has happened.
 *
 * A model on a device (a slot) is LOADING, LOADED, LEAVING (let go by the plan or its device
 * parking: no new requests, its queued ones finish), CACHED (let go and idle: still resident,
 * as swarmd keeps a released version, until evicted for another model, taken back by its own
 * or dropped with its device parked) or not there. A device serves one model's batch at a
 * time: when idle it takes up to that model's max_batch requests of the model whose oldest
 * waiting request is the oldest. Requests go to the active device with the model LOADED that
 * has the fewest requests (all models, queued and in service); with none, they are held per
 * model, and later arrivals join them while any are held; a device with the model loaded and
 * nothing of its own for it takes its batches from there, oldest first. Nothing here is
 * shared between runs.
 *
 * This file is the engine; the policy's decisions and the placement's actions are in
 * tools/sim_multi_place.c, the state both share in tools/sim_multi_internal.h.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/invariant.h"
#include "tools/sim_multi_internal.h"

/* ---- device and slot states -------------------------------------------------------------- */

/* Integrates the counts up to now: call before any of them changes. */
static void advance(struct sim *s)
{
	uint64_t dt = s->now - s->last_change;
	s->dev_ns += (uint64_t)s->n_on * dt;
	for (uint32_t m = 0; m < s->n_mod; m++) {
		s->mod[m].host_ns += (uint64_t)s->mod[m].n_loaded * dt;
		s->mod[m].tick_host_ns += (uint64_t)s->mod[m].n_loaded * dt;
	}
	s->last_change = s->now;
	if (s->n_on > s->r->peak_devices)
		s->r->peak_devices = s->n_on;
}

/* The earliest of device d's events. */
static uint64_t dev_next(const struct sim *s, uint32_t d)
{
	const struct dev *dv = &s->dev[d];
	uint64_t t = dv->batch_end;
	if (dv->state == DEV_WARMING && dv->warm_end < t)
		t = dv->warm_end;
	const struct slot *sl = &s->slot[(size_t)d * s->n_mod];
	for (uint32_t m = 0; m < s->n_mod; m++)
		if (sl[m].state == SLOT_LOADING && sl[m].load_end < t)
			t = sl[m].load_end;
	return t;
}

void msim_dev_resched(struct sim *s, uint32_t d)
{
	sim_heap_update(&s->dev_heap, d, dev_next(s, d));
}

void msim_set_dev(struct sim *s, uint32_t d, uint32_t state)
{
	advance(s);
	struct dev *dv = &s->dev[d];
	s->n_on += (state != DEV_PARKED) - (dv->state != DEV_PARKED);
	if (state == DEV_PARKED)
		SWARM_INVARIANT(dv->used == 0 && dv->requests == 0);
	dv->state = state;
}

/* Moves slot (d, m) to state, keeping the counts and the device's memory. */
void msim_set_slot(struct sim *s, uint32_t d, uint32_t m, uint32_t state)
{
	struct slot *sl = slot_of(s, d, m);
	struct model *md = &s->mod[m];
	if (sl->state == state)
		return;
	SWARM_INVARIANT(state != SLOT_NONE || !sl->q.len); /* unloaded with requests on it */
	advance(s);
	md->n_hosts -= sl->state == SLOT_LOADING || sl->state == SLOT_LOADED;
	md->n_loaded -= sl->state == SLOT_LOADED;
	md->n_leaving -= sl->state == SLOT_LEAVING;
	md->n_cached -= sl->state == SLOT_CACHED;
	if (sl->state == SLOT_NONE)
		s->dev[d].used += md->cfg->bytes;
	if (state == SLOT_NONE)
		s->dev[d].used -= md->cfg->bytes;
	sl->state = state;
	md->n_hosts += state == SLOT_LOADING || state == SLOT_LOADED;
	md->n_loaded += state == SLOT_LOADED;
	md->n_leaving += state == SLOT_LEAVING;
	md->n_cached += state == SLOT_CACHED;
	if (md->n_hosts > md->r->peak_hosts)
		md->r->peak_hosts = md->n_hosts;
}

/* The source of device d's next batch of model m: its own queue, or (loaded, device active)
 * the model's held requests; NULL when neither has any. */
static struct sim_fifo *batch_source(struct sim *s, uint32_t d, uint32_t m)
{
	struct slot *sl = slot_of(s, d, m);
	if (sl->q.len)
		return &sl->q;
	if (sl->state == SLOT_LOADED && s->dev[d].state == DEV_ACTIVE && s->mod[m].held.len)
		return &s->mod[m].held;
	return NULL;
}

/* The model whose oldest waiting request device d could serve is the oldest; UINT32_MAX
 * when it has nothing to serve. */
static uint32_t next_model(struct sim *s, uint32_t d)
{
	uint32_t best = UINT32_MAX;
	uint64_t best_t = NEVER;
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct sim_fifo *src = batch_source(s, d, m);
		if (src && (best == UINT32_MAX || sim_fifo_head(src) < best_t)) {
			best = m;
			best_t = sim_fifo_head(src);
		}
	}
	return best;
}

void msim_kick(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->pending || dv->in_batch || (dv->state != DEV_ACTIVE && dv->state != DEV_DRAINING))
		return;
	if (next_model(s, d) == UINT32_MAX)
		return;
	dv->pending = 1;
	s->pending[s->n_pending++] = d;
}

static int start_batch(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->in_batch || (dv->state != DEV_ACTIVE && dv->state != DEV_DRAINING))
		return 0;
	uint32_t m = next_model(s, d);
	if (m == UINT32_MAX)
		return 0;
	struct slot *sl = slot_of(s, d, m);
	struct model *md = &s->mod[m];
	uint32_t b;
	if (sl->q.len) {
		b = sl->q.len < md->cfg->max_batch ? (uint32_t)sl->q.len : md->cfg->max_batch;
	} else {
		for (b = 0; b < md->cfg->max_batch && md->held.len; b++)
			if (sim_fifo_push(&sl->q, sim_fifo_pop(&md->held)) < 0)
				return -ENOMEM;
		dv->requests += b;
	}
	dv->in_batch = b;
	dv->batch_model = m;
	dv->batch_start = s->now;
	dv->batch_end = s->now + md->svc_ns[b];
	sl->last_used = s->now;
	md->in_service += b;
	s->r->batches++;
	msim_dev_resched(s, d);
	return 0;
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

/* Unloads slot (d, m), counted as what; parks a draining device left with nothing. */
void msim_unload(struct sim *s, uint32_t d, uint32_t m, uint64_t *what)
{
	msim_set_slot(s, d, m, SLOT_NONE);
	(*what)++;
	if (s->dev[d].state == DEV_DRAINING && !s->dev[d].requests && !s->dev[d].used)
		msim_set_dev(s, d, DEV_PARKED);
}

static void record(struct sim *s, struct model *md, uint64_t arrival)
{
	uint64_t lat = s->now - arrival;
	sim_lat_add(&md->lat, lat);
	if (lat <= md->objective_ns)
		md->r->met++;
	swarm_hist_add(&md->hist[s->tick_no % s->k_short], lat);
	swarm_hist_add(&md->p99_sum, lat);
}

static void batch_done(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	uint32_t m = dv->batch_model;
	struct model *md = &s->mod[m];
	struct slot *sl = slot_of(s, d, m);
	uint64_t from = dv->batch_start > s->last_tick_ns ? dv->batch_start : s->last_tick_ns;
	md->busy_ns += s->now - from;
	dv->busy_tick_ns += s->now - from;
	md->served += dv->in_batch;
	for (uint32_t i = 0; i < dv->in_batch; i++)
		record(s, md, sim_fifo_pop(&sl->q));
	md->outstanding -= dv->in_batch;
	md->in_service -= dv->in_batch;
	s->outstanding -= dv->in_batch;
	dv->requests -= dv->in_batch;
	dv->in_batch = 0;
	dv->batch_end = NEVER;
	/* Let go and done: it stays resident, idle, unless its device is parking. */
	if (sl->state == SLOT_LEAVING && !sl->q.len) {
		if (dv->state == DEV_DRAINING)
			msim_unload(s, d, m, &md->r->unloads);
		else
			msim_set_slot(s, d, m, SLOT_CACHED);
	}
	msim_kick(s, d);
}

static void device_event(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->state == DEV_WARMING && dv->warm_end <= s->now)
		msim_set_dev(s, d, DEV_ACTIVE);
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct slot *sl = slot_of(s, d, m);
		if (sl->state == SLOT_LOADING && sl->load_end <= s->now) {
			msim_set_slot(s, d, m, SLOT_LOADED);
			sl->last_used = s->now;
		}
	}
	if (dv->in_batch && dv->batch_end <= s->now)
		batch_done(s, d);
	msim_kick(s, d);
	msim_dev_resched(s, d);
}

/* ---- arrivals and ticks ------------------------------------------------------------------ */

/* The active device with model m loaded that has the fewest requests (the lowest of equals);
 * UINT32_MAX when there is none. */
static uint32_t route(const struct sim *s, uint32_t m)
{
	uint32_t best = UINT32_MAX;
	for (uint32_t d = 0; d < s->n_dev; d++)
		if (s->slot[(size_t)d * s->n_mod + m].state == SLOT_LOADED &&
		    s->dev[d].state == DEV_ACTIVE &&
		    (best == UINT32_MAX || s->dev[d].requests < s->dev[best].requests))
			best = d;
	return best;
}

static int arrival(struct sim *s, uint32_t m, uint64_t t)
{
	struct model *md = &s->mod[m];
	md->r->requests++;
	md->arrivals++;
	if (md->r->too_big || md->outstanding >= s->o->max_outstanding ||
	    (s->o->policy == SWARM_SIM_MULTI_STATIC && !md->n_hosts)) {
		/* Nothing will ever hold it, or the memory guard. */
		md->r->refused++;
		return 0;
	}
	md->outstanding++;
	s->outstanding++;
	uint32_t d = md->held.len ? UINT32_MAX : route(s, m);
	if (d == UINT32_MAX) {
		if (sim_fifo_push(&md->held, t) < 0)
			return -ENOMEM;
		for (uint32_t e = 0; e < s->n_dev; e++)
			if (slot_of(s, e, m)->state == SLOT_LOADED)
				msim_kick(s, e);
		/* swarmd answers an open held for lack of a device at once: so does the
		 * simulator, for this model alone, with its last tick's measurements, when the
		 * model has no host at all and this is the first request held (one open; the
		 * requests after it wait for the tick, as a session's would, so that a model
		 * the placement cannot fit does not call the policy on every arrival). */
		if (s->o->policy == SWARM_SIM_MULTI_AUTO && !md->n_hosts && md->held.len == 1) {
			struct swarm_as_model *am = &s->as_in[m];
			*am = md->m;
			msim_model_counts(s, m, am);
			am->sessions = 1;
			return msim_decide(s, m, 1);
		}
		return 0;
	}
	struct slot *sl = slot_of(s, d, m);
	if (sim_fifo_push(&sl->q, t) < 0)
		return -ENOMEM;
	s->dev[d].requests++;
	msim_kick(s, d);
	return 0;
}

/* Model m's measurement at the end of tick k into md->m. */
static void measure(struct sim *s, uint32_t m, uint64_t k)
{
	struct model *md = &s->mod[m];
	struct swarm_as_model *am = &md->m;
	sim_window_set(&md->w_arr, k, md->arrivals);
	sim_window_set(&md->w_served, k, md->served);
	sim_window_set(&md->w_busy, k, md->busy_ns);
	double tick_s = (double)s->tick_ns / 1e9;
	uint64_t n_long = k < s->k_long ? k : s->k_long;
	uint64_t n_short = k < s->k_short ? k : s->k_short;
	am->rate_long = (double)sim_window_sum(&md->w_arr, k, n_long) / ((double)n_long * tick_s);
	am->rate_short =
		(double)sim_window_sum(&md->w_arr, k, n_short) / ((double)n_short * tick_s);
	uint64_t busy_long = sim_window_sum(&md->w_busy, k, n_long);
	if (busy_long)
		md->service_rate = (double)sim_window_sum(&md->w_served, k, n_long) /
				   ((double)busy_long / 1e9);
	am->service_rate = md->service_rate;
	uint64_t busy_tick = sim_window_sum(&md->w_busy, k, 1);
	swarm_as_peak_add(&md->peak, s->now, sim_window_sum(&md->w_arr, k, 1),
			  sim_window_sum(&md->w_served, k, 1), busy_tick);
	swarm_as_peak_get(&md->peak, s->o->as.peak_window_ns, &am->rate_peak, &am->service_peak);
	am->busy = md->tick_host_ns ? (double)busy_tick / (double)md->tick_host_ns : 0;
	if (am->busy > 1)
		am->busy = 1;
	am->p99_ns = swarm_hist_quantile(&md->p99_sum, 0.99);
	am->sessions = sim_window_sum(&md->w_arr, k, n_long) || md->outstanding ? 1 : 0;
	msim_model_counts(s, m, am);
}

static int keep_tick(struct sim *s)
{
	struct swarm_sim_multi_report *r = s->r;
	if (r->n_ticks == s->ticks_cap) {
		size_t ncap = s->ticks_cap ? s->ticks_cap * 2 : 1024;
		struct swarm_sim_multi_tick *nt = realloc(r->ticks, ncap * sizeof *nt);
		if (!nt)
			return -ENOMEM;
		r->ticks = nt;
		struct swarm_sim_model_tick *nm =
			realloc(r->model_ticks, ncap * s->n_mod * sizeof *nm);
		if (!nm)
			return -ENOMEM;
		r->model_ticks = nm;
		s->ticks_cap = ncap;
	}
	r->ticks[r->n_ticks] = (struct swarm_sim_multi_tick){ (double)s->now / 1e9, s->n_on };
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct swarm_as_model am = { 0 };
		msim_model_counts(s, m, &am);
		r->model_ticks[r->n_ticks * s->n_mod + m] = (struct swarm_sim_model_tick){
			.active = am.active,
			.warming = am.warming,
			.draining = am.draining,
			.cached = s->mod[m].n_cached,
			.target = s->target[m],
			.want = s->want[m],
			.queue = am.queue_depth,
		};
	}
	r->n_ticks++;
	return 0;
}

static int tick(struct sim *s)
{
	advance(s);
	/* Busy time of the batches still in service, up to the tick. */
	for (uint32_t d = 0; d < s->n_dev; d++) {
		struct dev *dv = &s->dev[d];
		if (dv->in_batch) {
			uint64_t from = dv->batch_start > s->last_tick_ns ? dv->batch_start :
									    s->last_tick_ns;
			s->mod[dv->batch_model].busy_ns += s->now - from;
			dv->busy_tick_ns += s->now - from;
		}
	}
	uint64_t k = ++s->tick_no;
	for (uint32_t m = 0; m < s->n_mod; m++) {
		measure(s, m, k);
		s->as_in[m] = s->mod[m].m;
	}
	int rc = 0;
	if (s->o->policy == SWARM_SIM_MULTI_AUTO)
		rc = msim_decide(s, 0, s->n_mod);
	if (!rc && s->o->keep_ticks)
		rc = keep_tick(s);

	/* The next tick starts. */
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct model *md = &s->mod[m];
		struct swarm_hist *old = &md->hist[k % s->k_short];
		for (uint32_t b = 0; b < SWARM_HIST_BUCKETS; b++)
			md->p99_sum.count[b] -= old->count[b];
		memset(old, 0, sizeof *old);
		md->tick_host_ns = 0;
	}
	for (uint32_t d = 0; d < s->n_dev; d++)
		s->dev[d].busy_tick_ns = 0;
	s->last_tick_ns = s->now;
	return rc;
}

/* ---- a run ------------------------------------------------------------------------------- */

static void sim_free(struct sim *s)
{
	for (size_t i = 0; s->slot && i < (size_t)s->n_dev * s->n_mod; i++)
		free(s->slot[i].q.v);
	for (uint32_t m = 0; s->mod && m < s->n_mod; m++) {
		struct model *md = &s->mod[m];
		free(md->held.v);
		free(md->svc_ns);
		free(md->w_arr.cum);
		free(md->w_served.cum);
		free(md->w_busy.cum);
		free(md->hist);
		sim_lat_free(&md->lat);
	}
	free(s->slot);
	free(s->mod);
	free(s->dev);
	free(s->dev_heap.v);
	free(s->dev_heap.pos);
	free(s->arr_heap.v);
	free(s->arr_heap.pos);
	free(s->pending);
	free(s->as_in);
	free(s->mem);
	free(s->as_out);
	free(s->target);
	free(s->want);
	free(s->fm);
	free(s->fd);
	free(s->sessions);
	free(s->acts);
	free(s);
}

static uint64_t ms_ns(double ms) { return (uint64_t)llround(ms * 1e6); }

void swarm_sim_multi_opts_default(struct swarm_sim_multi_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seed = 1;
	o->devices = 8;
	o->device_memory = 16ull << 30;
	o->policy = SWARM_SIM_MULTI_AUTO;
	o->warmup_ms = 5000;
	o->tick_ms = 1000;
	o->short_window_s = 6;
	o->max_outstanding = 1u << 24;
	swarm_as_config_default(&o->as);
}

static int opts_check(const struct swarm_sim_multi_opts *o, char *err, size_t err_len)
{
	const char *bad = NULL;
	if (!o->models || o->n_models < 1 || o->n_models > SWARM_SIM_MAX_MODELS)
		bad = "models: 1 to 256";
	else if (o->devices < 1 || o->devices > SWARM_FLEET_MAX_DEVICES)
		bad = "devices: 1 to 64";
	else if (o->device_memory == 0)
		bad = "device memory: above 0";
	else if (o->policy != SWARM_SIM_MULTI_AUTO && o->policy != SWARM_SIM_MULTI_STATIC)
		bad = "policy: auto or static";
	else if (o->max_outstanding < 1)
		bad = "max outstanding: at least 1";
	else
		bad = sim_check_timing(o->warmup_ms, o->tick_ms, o->duration_s, o->short_window_s,
				       o->as.stable_window_ns);
	for (size_t m = 0; !bad && m < o->n_models; m++) {
		const struct swarm_sim_model *md = &o->models[m];
		if (md->max_batch < 1 || md->max_batch > 65536 || !(md->base_us >= 0) ||
		    !(md->per_row_us >= 0) || !(md->base_us + md->per_row_us > 0) ||
		    md->base_us + md->per_row_us * md->max_batch > 1e12 || !(md->load_ms >= 0) ||
		    !(md->objective_us > 0) || md->bytes == 0 ||
		    (md->max_devices && md->min_devices > md->max_devices))
			bad = "a model's service time, batch, size, objective or min/max";
	}
	if (bad) {
		snprintf(err, err_len, "%s", bad);
		return -EINVAL;
	}
	return 0;
}

static int model_setup(struct sim *s, uint32_t m)
{
	const struct swarm_sim_multi_opts *o = s->o;
	struct model *md = &s->mod[m];
	const struct swarm_sim_model *c = &o->models[m];
	md->cfg = c;
	md->r = &s->r->models[m];
	md->r->too_big = c->bytes > o->device_memory;
	md->objective_ns = (uint64_t)llround(c->objective_us * 1e3);
	md->load_ns = ms_ns(c->load_ms);
	size_t wlen = (s->k_long > s->k_short ? s->k_long : s->k_short) + 1;
	md->svc_ns = calloc(c->max_batch + 1, sizeof *md->svc_ns);
	md->w_arr = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	md->w_served = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	md->w_busy = (struct sim_window){ calloc(wlen, sizeof(uint64_t)), wlen };
	md->hist = calloc(s->k_short, sizeof *md->hist);
	if (sim_lat_init(&md->lat) || !md->svc_ns || !md->w_arr.cum || !md->w_served.cum ||
	    !md->w_busy.cum || !md->hist)
		return -ENOMEM;
	for (uint32_t b = 1; b <= c->max_batch; b++)
		md->svc_ns[b] = (uint64_t)llround((c->base_us + c->per_row_us * b) * 1e3);
	uint32_t max = c->max_devices && c->max_devices < s->n_dev ? c->max_devices : s->n_dev;
	md->m.min_devices = c->min_devices < max ? c->min_devices : max;
	md->m.max_devices = max;
	md->m.latency_p99_ns = md->objective_ns;
	swarm_sim_gen_init(&md->gen, &c->trace, o->seed + m * 0x9E3779B97F4A7C15ull,
			   (double)s->end_ns / 1e9);
	sim_heap_update(&s->arr_heap, m, swarm_sim_gen_next(&md->gen));
	return 0;
}

/* Static: every device active, and the models placed round-robin at time 0 (sim_multi.h,
 * docs/simulator.md): rounds over the models in order, each placed on the first device from
 * a cursor on (wrapping) that does not hold it and has the room, the cursor moving past it;
 * a model at its maximum hosts is skipped; a round that places nothing ends it. */
static void static_setup(struct sim *s)
{
	for (uint32_t d = 0; d < s->n_dev; d++)
		msim_set_dev(s, d, DEV_ACTIVE);
	uint32_t cursor = 0;
	for (int placed = 1; placed;) {
		placed = 0;
		for (uint32_t m = 0; m < s->n_mod; m++) {
			struct model *md = &s->mod[m];
			if (md->n_hosts >= md->m.max_devices || md->r->too_big)
				continue;
			for (uint32_t i = 0; i < s->n_dev; i++) {
				uint32_t d = (cursor + i) % s->n_dev;
				if (slot_of(s, d, m)->state != SLOT_NONE ||
				    s->o->device_memory - s->dev[d].used < md->cfg->bytes)
					continue;
				msim_set_slot(s, d, m, SLOT_LOADED);
				md->r->loads++;
				cursor = (d + 1) % s->n_dev;
				placed = 1;
				break;
			}
		}
	}
}

static int sim_setup(struct sim *s)
{
	const struct swarm_sim_multi_opts *o = s->o;
	s->n_dev = o->devices;
	s->n_mod = (uint32_t)o->n_models;
	s->all_mask = s->n_dev == 64 ? UINT64_MAX : (1ull << s->n_dev) - 1;
	s->tick_ns = ms_ns(o->tick_ms);
	s->warmup_ns = ms_ns(o->warmup_ms);
	double dur = o->duration_s;
	for (size_t m = 0; !(o->duration_s > 0) && m < o->n_models; m++)
		if (o->models[m].trace.duration_s > dur)
			dur = o->models[m].trace.duration_s;
	s->end_ns = (uint64_t)llround(dur * 1e9);
	s->k_long = (o->as.stable_window_ns + s->tick_ns - 1) / s->tick_ns;
	s->k_short = (uint64_t)ceil(o->short_window_s * 1e9 / (double)s->tick_ns - 1e-9);
	if (s->k_short < 1)
		s->k_short = 1;
	s->max_acts = (size_t)s->n_mod * s->n_dev * 2 + s->n_dev;
	s->r->n_models = s->n_mod;
	s->r->models = calloc(s->n_mod, sizeof *s->r->models);
	s->dev = calloc(s->n_dev, sizeof *s->dev);
	s->slot = calloc((size_t)s->n_dev * s->n_mod, sizeof *s->slot);
	s->mod = calloc(s->n_mod, sizeof *s->mod);
	s->dev_heap.v = calloc(s->n_dev, sizeof *s->dev_heap.v);
	s->dev_heap.pos = malloc(s->n_dev * sizeof *s->dev_heap.pos);
	s->arr_heap.v = calloc(s->n_mod, sizeof *s->arr_heap.v);
	s->arr_heap.pos = malloc(s->n_mod * sizeof *s->arr_heap.pos);
	s->pending = calloc(s->n_dev, sizeof *s->pending);
	s->as_in = calloc(s->n_mod, sizeof *s->as_in);
	s->mem = calloc(s->n_mod, sizeof *s->mem);
	s->as_out = calloc(s->n_mod, sizeof *s->as_out);
	s->target = calloc(s->n_mod, sizeof *s->target);
	s->want = calloc(s->n_mod, sizeof *s->want);
	s->fm = calloc(s->n_mod, sizeof *s->fm);
	s->fd = calloc(s->n_dev, sizeof *s->fd);
	s->sessions = calloc((size_t)s->n_mod * s->n_dev, sizeof *s->sessions);
	s->acts = calloc(s->max_acts, sizeof *s->acts);
	if (!s->r->models || !s->dev || !s->slot || !s->mod || !s->dev_heap.v || !s->dev_heap.pos ||
	    !s->arr_heap.v || !s->arr_heap.pos || !s->pending || !s->as_in || !s->mem ||
	    !s->as_out || !s->target || !s->want || !s->fm || !s->fd || !s->sessions || !s->acts)
		return -ENOMEM;
	for (uint32_t d = 0; d < s->n_dev; d++) {
		s->dev[d].batch_end = NEVER;
		s->dev_heap.pos[d] = -1;
	}
	for (uint32_t m = 0; m < s->n_mod; m++)
		s->arr_heap.pos[m] = -1;
	for (uint32_t m = 0; m < s->n_mod; m++) {
		int rc = model_setup(s, m);
		if (rc)
			return rc;
	}
	if (o->policy == SWARM_SIM_MULTI_STATIC)
		static_setup(s);
	return 0;
}

/* The figures, once the run is over. */
static void report(struct sim *s)
{
	struct swarm_sim_multi_report *r = s->r;
	r->duration_s = (double)s->now / 1e9;
	r->device_seconds = (double)s->dev_ns / 1e9;
	r->mean_devices = r->duration_s > 0 ? r->device_seconds / r->duration_s : 0;
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct model *md = &s->mod[m];
		struct swarm_sim_model_report *mr = md->r;
		mr->unfinished = md->outstanding;
		mr->attainment = mr->requests ? (double)mr->met / (double)mr->requests : 1;
		mr->p50_us = sim_lat_quantile_us(&md->lat, 0.50);
		mr->p99_us = sim_lat_quantile_us(&md->lat, 0.99);
		mr->max_us = (double)md->lat.max / 1e3;
		mr->mean_us = sim_lat_mean_us(&md->lat);
		mr->host_seconds = (double)md->host_ns / 1e9;
		r->requests += mr->requests;
		r->met += mr->met;
		r->refused += mr->refused;
		r->unfinished += mr->unfinished;
		r->loads += mr->loads;
		r->hits += mr->hits;
		r->evictions += mr->evictions;
		r->unloads += mr->unloads;
	}
	r->attainment = r->requests ? (double)r->met / (double)r->requests : 1;
}

int swarm_sim_multi_run(const struct swarm_sim_multi_opts *o, struct swarm_sim_multi_report *r,
			char *err, size_t err_len)
{
	memset(r, 0, sizeof *r);
	int rc = opts_check(o, err, err_len);
	if (rc)
		return rc;
	struct sim *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->o = o;
	s->r = r;
	s->err = err;
	s->err_len = err_len;
	rc = sim_setup(s);
	if (rc)
		goto out;

	uint64_t next_tick = s->tick_ns;
	/* Until the traces are over, their requests are done and the ticks reach the end. */
	for (;;) {
		uint64_t t_dev = sim_heap_top(&s->dev_heap);
		uint64_t t_arr = sim_heap_top(&s->arr_heap);
		if (!s->outstanding && t_arr == NEVER && next_tick > s->end_ns && !s->n_pending)
			break;
		if (s->n_pending && t_dev > s->now && t_arr > s->now && next_tick > s->now) {
			rc = start_pending(s);
		} else if (t_dev <= t_arr && t_dev <= next_tick) {
			s->now = t_dev;
			device_event(s, s->dev_heap.v[0].id);
		} else if (t_arr <= next_tick) {
			uint32_t m = s->arr_heap.v[0].id;
			s->now = t_arr;
			rc = arrival(s, m, t_arr);
			sim_heap_update(&s->arr_heap, m, swarm_sim_gen_next(&s->mod[m].gen));
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
	report(s);
out:
	sim_free(s);
	if (rc)
		swarm_sim_multi_report_free(r);
	return rc;
}

void swarm_sim_multi_report_free(struct swarm_sim_multi_report *r)
{
	free(r->models);
	free(r->ticks);
	free(r->model_ticks);
	r->models = NULL;
	r->ticks = NULL;
	r->model_ticks = NULL;
	r->n_models = 0;
	r->n_ticks = 0;
}
