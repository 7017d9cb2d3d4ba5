/* sim_multi_place.c: the policy and the placement of swarm-sim's multi-model simulation (see
 * sim_multi.h, sim_multi_internal.h): each model's measurement goes to swarm_as_decide, its
 * WAKE and DRAIN counts become how many hosts it wants, swarm_fleet_plan says where, and the
 * plan's ADD, REMOVE and PARK are carried out here in the order given, as swarmd would.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ipc/invariant.h"
#include "runtime/balancer.h"
#include "tools/sim_multi_internal.h"

/* ---- the placement's actions ------------------------------------------------------------- */

/* Whether slot (d, m) may be evicted, and so counts in the placement's reclaimable bytes:
 * CACHED (let go, idle), what swarmd's idle, unpinned versions are. Never a host (LOADING or
 * LOADED: swarmd pins a host's version), whatever its model's want: a host the plan lets go
 * it counts as reclaimable itself (its REMOVE, before any ADD), so reporting it here too
 * would count it twice, and a host of a model above its want is not evictable, since which
 * of its hosts goes is the plan's choice. Never LEAVING: it has requests (swarmd: sessions)
 * until it is CACHED. */
static int reclaimable(struct sim *s, uint32_t d, uint32_t m)
{
	return slot_of(s, d, m)->state == SLOT_CACHED;
}

/* Makes room for bytes on device d by evicting CACHED copies, least recently used first
 * (each an eviction of its model). Returns whether the room is there. */
static int make_room(struct sim *s, uint32_t d, uint64_t bytes)
{
	uint64_t budget = s->o->device_memory;
	while (budget - s->dev[d].used < bytes) {
		uint32_t pick = UINT32_MAX;
		for (uint32_t m = 0; m < s->n_mod; m++)
			if (reclaimable(s, d, m) &&
			    (pick == UINT32_MAX ||
			     slot_of(s, d, m)->last_used < slot_of(s, d, pick)->last_used))
				pick = m;
		if (pick == UINT32_MAX)
			return 0;
		msim_set_slot(s, d, pick, SLOT_NONE);
		s->mod[pick].r->evictions++;
	}
	return 1;
}

static void act_add(struct sim *s, uint32_t d, uint32_t m)
{
	struct dev *dv = &s->dev[d];
	struct slot *sl = slot_of(s, d, m);
	struct model *md = &s->mod[m];
	if (sl->state == SLOT_LOADING || sl->state == SLOT_LOADED)
		return;
	if (sl->state == SLOT_LEAVING || sl->state == SLOT_CACHED) {
		/* Still resident (finishing its requests, or idle): a host again, no load; one
		 * let go while loading goes on loading. A parked device has nothing resident. */
		SWARM_INVARIANT(dv->state != DEV_PARKED);
		int loading = sl->state == SLOT_CACHED && sl->load_end > s->now;
		msim_set_slot(s, d, m, loading ? SLOT_LOADING : SLOT_LOADED);
		if (!loading)
			sl->last_used = s->now;
		md->r->hits++;
		if (dv->state == DEV_DRAINING)
			msim_set_dev(s, d, DEV_ACTIVE); /* its park is called off */
		msim_kick(s, d);
		msim_dev_resched(s, d);
		return;
	}
	if (dv->state == DEV_PARKED) {
		msim_set_dev(s, d, DEV_WARMING);
		dv->warm_end = s->now + s->warmup_ns;
		dv->loader_free = 0;
		s->r->wakes++;
	} else if (dv->state == DEV_DRAINING) {
		msim_set_dev(s, d, DEV_ACTIVE); /* its park is called off */
	}
	if (!make_room(s, d, md->cfg->bytes)) {
		s->r->adds_no_room++;
		return;
	}
	uint64_t start = s->now;
	if (dv->state == DEV_WARMING && dv->warm_end > start)
		start = dv->warm_end;
	if (dv->loader_free > start)
		start = dv->loader_free;
	msim_set_slot(s, d, m, SLOT_LOADING);
	sl->load_end = start + md->load_ns;
	dv->loader_free = sl->load_end;
	md->r->loads++;
	msim_dev_resched(s, d);
}

/* Lets model m go from device d, as swarmd does: it stays resident. Idle, it is CACHED at
 * once; with requests queued there it is LEAVING, and CACHED once they are done (sim_multi.c,
 * batch_done); loading, it is CACHED and its load goes on (its last use the load's end). */
static void act_remove(struct sim *s, uint32_t d, uint32_t m)
{
	struct slot *sl = slot_of(s, d, m);
	if (sl->state == SLOT_LOADING)
		sl->last_used = sl->load_end;
	if (sl->state == SLOT_LOADING || (sl->state == SLOT_LOADED && !sl->q.len))
		msim_set_slot(s, d, m, SLOT_CACHED);
	else if (sl->state == SLOT_LOADED)
		msim_set_slot(s, d, m, SLOT_LEAVING);
	msim_dev_resched(s, d);
}

static void act_park(struct sim *s, uint32_t d)
{
	struct dev *dv = &s->dev[d];
	if (dv->state == DEV_PARKED || dv->state == DEV_DRAINING)
		return;
	/* Its worker stops: everything resident goes (an unload each), once its requests are
	 * done for a copy that has some. */
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct slot *sl = slot_of(s, d, m);
		if (sl->state == SLOT_LOADING || sl->state == SLOT_CACHED ||
		    (sl->state == SLOT_LOADED && !sl->q.len)) {
			msim_set_slot(s, d, m, SLOT_NONE);
			s->mod[m].r->unloads++;
		} else if (sl->state == SLOT_LOADED) {
			msim_set_slot(s, d, m, SLOT_LEAVING);
		}
	}
	s->r->parks++;
	msim_set_dev(s, d, dv->requests ? DEV_DRAINING : DEV_PARKED);
	msim_dev_resched(s, d);
}

static int dev_fleet_state(uint32_t state)
{
	switch (state) {
	case DEV_WARMING:
		return SWARM_DEVICE_WARMING;
	case DEV_ACTIVE:
		return SWARM_DEVICE_ACTIVE;
	case DEV_DRAINING:
		return SWARM_DEVICE_DRAINING;
	}
	return SWARM_DEVICE_PARKED;
}

/* Gives the placement each model's want (s->want) and carries out its plan: the actions in
 * the order given, as swarmd would. */
static int place(struct sim *s)
{
	for (uint32_t m = 0; m < s->n_mod; m++) {
		struct swarm_fleet_model *f = &s->fm[m];
		uint32_t *ses = &s->sessions[(size_t)m * s->n_dev];
		*f = (struct swarm_fleet_model){
			.want = s->want[m],
			.allowed = s->mod[m].r->too_big ? 0 : s->all_mask,
			.bytes = s->mod[m].cfg->bytes,
			.sessions = ses,
		};
		for (uint32_t d = 0; d < s->n_dev; d++) {
			const struct slot *sl = slot_of(s, d, m);
			if (sl->state == SLOT_LOADING || sl->state == SLOT_LOADED)
				f->hosts |= 1ull << d;
			else if (sl->state == SLOT_CACHED)
				f->cached |= 1ull << d;
			ses[d] = sl->q.len < UINT32_MAX ? (uint32_t)sl->q.len : UINT32_MAX;
		}
	}
	for (uint32_t d = 0; d < s->n_dev; d++) {
		const struct dev *dv = &s->dev[d];
		uint64_t rec = 0;
		for (uint32_t m = 0; m < s->n_mod; m++)
			if (reclaimable(s, d, m))
				rec += s->mod[m].cfg->bytes;
		double load = (double)dv->busy_tick_ns / (double)s->tick_ns;
		s->fd[d] = (struct swarm_fleet_device){
			.state = dev_fleet_state(dv->state),
			.parking = dv->state == DEV_DRAINING,
			.budget = s->o->device_memory,
			.used = dv->used,
			.reclaimable = rec,
			.load = load < 1 ? load : 1,
			.sessions = dv->requests < UINT32_MAX ? (uint32_t)dv->requests : UINT32_MAX,
		};
	}
	int n = swarm_fleet_plan(s->fm, s->n_mod, s->fd, s->n_dev, 0, s->acts, s->max_acts, NULL);
	if (n < 0) {
		snprintf(s->err, s->err_len, "swarm_fleet_plan failed at %.3f s: %s", s->now / 1e9,
			 strerror(-n));
		return -EPROTO;
	}
	for (int i = 0; i < n; i++) {
		const struct swarm_fleet_action *a = &s->acts[i];
		if (a->device >= s->n_dev ||
		    (a->kind != SWARM_FLEET_PARK && a->model >= s->n_mod)) {
			snprintf(s->err, s->err_len,
				 "swarm_fleet_plan named device %u, model %u of %u and %u",
				 a->device, a->model, s->n_dev, s->n_mod);
			return -EPROTO;
		}
		if (a->kind == SWARM_FLEET_ADD)
			act_add(s, a->device, a->model);
		else if (a->kind == SWARM_FLEET_REMOVE)
			act_remove(s, a->device, a->model);
		else if (a->kind == SWARM_FLEET_PARK)
			act_park(s, a->device);
	}
	return 0;
}

/* The counts of model m's hosts and queue, as swarmd would give them. */
void msim_model_counts(const struct sim *s, uint32_t m, struct swarm_as_model *am)
{
	const struct model *md = &s->mod[m];
	uint64_t waiting = md->outstanding - md->in_service;
	am->queue_depth = waiting < UINT32_MAX ? (uint32_t)waiting : UINT32_MAX;
	am->waiting_opens = md->held.len ? 1 : 0;
	am->active = md->n_loaded;
	am->warming = md->n_hosts - md->n_loaded;
	am->draining = md->n_leaving;
}

/* Lets the policy decide for models [first, first + n) (the others keep the hosts they have)
 * from their measurements in s->as_in, then places. */
int msim_decide(struct sim *s, uint32_t first, uint32_t n)
{
	/* The policy's budget of parked devices is the single-model one; here a WAKE asks for
	 * one more host, which a device in service with room may give as well as a parked one:
	 * the budget is the hosts the models could still gain. */
	uint64_t budget = 0;
	for (uint32_t m = first; m < first + n; m++)
		budget += s->n_dev - s->mod[m].n_hosts;
	int k = swarm_as_decide(s->now, &s->o->as, &s->as_in[first], &s->mem[first], n,
				budget < UINT32_MAX ? (uint32_t)budget : UINT32_MAX, s->as_out,
				s->n_mod, &s->target[first]);
	s->r->decisions++;
	if (k < 0) {
		snprintf(s->err, s->err_len, "swarm_as_decide failed at %.3f s: %s", s->now / 1e9,
			 strerror(-k));
		return -EPROTO;
	}
	for (uint32_t m = 0; m < s->n_mod; m++)
		s->want[m] = s->mod[m].n_hosts;
	for (int i = 0; i < k; i++) {
		const struct swarm_as_action *a = &s->as_out[i];
		if (a->model >= n) {
			snprintf(s->err, s->err_len, "swarm_as_decide named model %u of %u",
				 a->model, n);
			return -EPROTO;
		}
		uint32_t m = first + a->model;
		if (a->kind == SWARM_AS_WAKE)
			s->want[m] += a->count;
		else if (a->kind == SWARM_AS_DRAIN)
			s->want[m] -= a->count < s->want[m] ? a->count : s->want[m];
	}
	for (uint32_t m = 0; m < s->n_mod; m++)
		if (s->mod[m].r->too_big)
			s->want[m] = 0;
	return place(s);
}
