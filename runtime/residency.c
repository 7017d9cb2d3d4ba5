/* residency.c: device memory accounting and the placement of model versions by memory (see
 * residency.h). Snapshots are small (64 devices, 64 versions each) and an open is rare next
 * to a request, so the eviction plan simply recounts a device's use after each step: that
 * keeps shared weights exact whichever versions leave. */
#include "runtime/residency.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define MAX_DEVS 64

/* Bytes used by dv's resident versions not marked in gone (NULL: none gone). */
static uint64_t used_without(const struct swarm_res_device *dv, const uint8_t *gone)
{
	uint64_t used = 0;
	for (uint32_t i = 0; i < dv->n_resident; i++) {
		const struct swarm_res_version *x = &dv->resident[i];
		if (gone && gone[i])
			continue;
		used += x->other_bytes;
		int counted = 0;
		for (uint32_t j = 0; x->weights_key && j < i && !counted; j++)
			counted = !(gone && gone[j]) &&
				  dv->resident[j].weights_key == x->weights_key;
		if (!counted)
			used += x->weights_bytes;
	}
	return used;
}

/* Bytes loading v adds to dv's residents not marked in gone. */
static uint64_t need_without(const struct swarm_res_device *dv, const uint8_t *gone,
			     const struct swarm_res_version *v)
{
	int shared = 0;
	for (uint32_t i = 0; i < dv->n_resident; i++) {
		if (gone && gone[i])
			continue;
		if (dv->resident[i].key == v->key)
			return 0;
		shared |= v->weights_key && dv->resident[i].weights_key == v->weights_key;
	}
	return v->other_bytes + (shared ? 0 : v->weights_bytes);
}

uint64_t swarm_res_used(const struct swarm_res_device *dv) { return used_without(dv, NULL); }

uint64_t swarm_res_need(const struct swarm_res_device *dv, const struct swarm_res_version *v)
{
	return need_without(dv, NULL, v);
}

uint64_t swarm_res_cost(const struct swarm_res_version *v)
{
	return v->other_bytes + v->weights_bytes;
}

/* The next version to evict from dv to make room for v: idle ones (no session) before ones
 * whose sessions must move; within each, the lowest priority first, then those that do not
 * hold v's weights before those that do (evicting a holder of v's blob frees only its own bytes, v
 * needs the blob again), then the least recently used, then the lower index. Never a pinned one,
 * nor one whose sessions cannot move. -1 when none is left. */
static int next_victim(const struct swarm_res_device *dv, const uint8_t *gone,
		       const struct swarm_res_version *v)
{
	int best = -1;
	uint64_t best_rank[4] = { 0 };
	for (uint32_t i = 0; i < dv->n_resident; i++) {
		const struct swarm_res_version *x = &dv->resident[i];
		if (gone[i] || x->pinned || (x->sessions && !x->movable))
			continue;
		uint64_t rank[4] = { x->sessions != 0, x->priority,
				     v->weights_key && x->weights_key == v->weights_key,
				     x->last_used_ns };
		int k = 0;
		while (best >= 0 && k < 3 && rank[k] == best_rank[k])
			k++;
		if (best < 0 || rank[k] < best_rank[k]) {
			best = (int)i;
			memcpy(best_rank, rank, sizeof rank);
		}
	}
	return best;
}

static int resident_on(const struct swarm_res_device *dv, uint64_t key)
{
	for (uint32_t i = 0; i < dv->n_resident; i++)
		if (dv->resident[i].key == key)
			return 1;
	return 0;
}

/* Plans the evictions that make room for v on dv into c (device, need and the eviction
 * fields). Returns 1 when v fits after them, 0 when it cannot. */
static int plan_device(const struct swarm_res_device *dv, const struct swarm_res_version *v,
		       struct swarm_res_choice *c)
{
	uint8_t gone[SWARM_RES_MAX_RESIDENT] = { 0 };
	uint64_t used = used_without(dv, gone), used0 = used;
	c->n_evict = 0;
	c->evict_moving = 0;
	if (resident_on(dv, v->key)) { /* loaded: nothing to make room for */
		c->need = 0;
		c->evict_bytes = 0;
		return 1;
	}
	for (;;) {
		uint64_t need = need_without(dv, gone, v);
		if (used <= dv->budget_bytes && need <= dv->budget_bytes - used) {
			c->need = need;
			c->evict_bytes = used0 - used;
			return 1;
		}
		int k = next_victim(dv, gone, v);
		if (k < 0)
			return 0;
		gone[k] = 1;
		c->evict[c->n_evict++] = (uint32_t)k;
		c->evict_moving += dv->resident[k].sessions != 0;
		used = used_without(dv, gone);
	}
}

/* 1 when a's eviction is smaller than b's: fewer sessions to move, then fewer bytes. */
static int less_eviction(const struct swarm_res_choice *a, const struct swarm_res_choice *b)
{
	if (a->evict_moving != b->evict_moving)
		return a->evict_moving < b->evict_moving;
	return a->evict_bytes < b->evict_bytes;
}

/* pick, or a device that has v resident and that the balancer ranks as high (its tie-break
 * keeps the first of equals: the resident one, put first): no load where none is needed. */
static int prefer_resident(const struct swarm_res_device *devs, struct swarm_balancer_device *bal,
			   size_t n, const struct swarm_res_version *v, int pick, int client_numa,
			   int (*distance)(void *ctx, int a, int b), void *ctx)
{
	if (resident_on(&devs[pick], v->key))
		return pick;
	uint32_t keep[MAX_DEVS];
	for (size_t i = 0; i < n; i++) {
		keep[i] = bal[i].has_model;
		bal[i].has_model = keep[i] && resident_on(&devs[i], v->key);
	}
	int r = swarm_balancer_pick(bal, n, client_numa, distance, ctx);
	for (size_t i = 0; i < n; i++)
		bal[i].has_model = keep[i];
	if (r < 0)
		return pick;
	struct swarm_balancer_device two[2] = { bal[r], bal[pick] };
	two[0].has_model = two[1].has_model = 1;
	/* The balancer sees only these two; NUMA distances are the devices' own. */
	return swarm_balancer_pick(two, 2, client_numa, distance, ctx) == 0 ? r : pick;
}

int swarm_res_place(const struct swarm_res_device *devs, size_t n,
		    const struct swarm_res_version *v, int client_numa,
		    int (*distance)(void *ctx, int a, int b), void *ctx,
		    struct swarm_res_choice *out)
{
	memset(out, 0, sizeof *out);
	out->device = -1;
	out->cost = swarm_res_cost(v);
	if (n > MAX_DEVS)
		return -EINVAL;
	struct swarm_balancer_device bal[MAX_DEVS];
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		if (devs[i].n_resident > SWARM_RES_MAX_RESIDENT)
			return -EINVAL;
		bal[i] = devs[i].bal;
		if (devs[i].bal.has_model && devs[i].budget_bytes > out->largest_budget)
			out->largest_budget = devs[i].budget_bytes;
		any |= swarm_balancer_pick(&bal[i], 1, -1, NULL, NULL) == 0;
	}
	if (out->cost > out->largest_budget)
		return -EFBIG;
	if (!any)
		return -ENODEV;
	/* Each device's plan; the devices of the least eviction stay marked for the balancer
	 * (a device that has v, or room for it, evicts nothing). */
	struct swarm_res_choice best = { .device = -1 }, c;
	for (size_t i = 0; i < n; i++) {
		int ok = swarm_balancer_pick(&bal[i], 1, -1, NULL, NULL) == 0 &&
			 plan_device(&devs[i], v, &c);
		bal[i].has_model = 0;
		if (!ok)
			continue;
		bal[i].has_model = 1;
		c.device = (int)i;
		if (best.device < 0 || less_eviction(&c, &best)) {
			for (size_t j = 0; best.device >= 0 && j < i; j++)
				bal[j].has_model = 0; /* strictly worse than this one */
			best = c;
		} else if (less_eviction(&best, &c)) {
			bal[i].has_model = 0;
		}
	}
	if (best.device < 0)
		return -ENOSPC;
	/* Among the devices of the least eviction (those still marked), the balancer's choice;
	 * it was planned above, so planning it again succeeds. */
	int pick = swarm_balancer_pick(bal, n, client_numa, distance, ctx);
	assert(pick >= 0);
	pick = prefer_resident(devs, bal, n, v, pick, client_numa, distance, ctx);
	int fits = plan_device(&devs[pick], v, &best);
	assert(fits);
	(void)fits;
	best.device = pick;
	best.resident = resident_on(&devs[pick], v->key);
	best.cost = out->cost;
	best.largest_budget = out->largest_budget;
	*out = best;
	return 0;
}
