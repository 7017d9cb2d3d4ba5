/* memory.c: each device's memory as swarmd counts it (docs/placement.md): its budget, set
 * when its worker is ready (a GPU's free memory less --device-memory-reserve, a CPU device's
 * --device-memory or a share of its NUMA node), and the model versions resident on it, from
 * its worker's RESIDENCY messages, with when each was last used (its stats page's request
 * count moving, or a session opened on it). runtime/residency.h's pure functions do the
 * arithmetic; this module keeps the tables and turns them into its snapshots. */
#include <stdio.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/residency.h"
#include "runtime/swarmd/swarmd.h"

/* FNV-1a, 64 bits: the residency snapshot's keys (a name@version, a weights blob). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t version_key(const char *model, uint32_t version)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, model, strlen(model));
	return fnv(h, &version, sizeof version) | 1; /* never 0 */
}

static uint64_t weights_key(const char *sha)
{
	return sha[0] ? fnv(0xcbf29ce484222325ull, sha, strlen(sha)) | 1 : 0;
}

static struct resident *find(const struct device *dv, const char *model, uint32_t version)
{
	for (uint32_t i = 0; i < dv->n_res; i++)
		if (dv->res[i].version == version && !strcmp(dv->res[i].model, model))
			return (struct resident *)&dv->res[i];
	return NULL;
}

/* The budget of a CPU device without --device-memory: half its NUMA node's memory, shared
 * by the devices on that node (the other half is the node's for clients, the page cache and
 * everything else). Without a known node: half the first node's. */
static uint64_t cpu_default_budget(const struct device *dv)
{
	struct swarm_numa_info ni = { 0 };
	int node = dv->plan.numa_node >= 0 ? dv->plan.numa_node : 0;
	if (swarm_topology_numa_info(d.topo, node, &ni) || ni.memory == 0)
		return 0;
	uint32_t peers = 0;
	for (int i = 0; i < d.n_dev; i++)
		peers += d.dev[i].gpu < 0 && d.dev[i].plan.numa_node == dv->plan.numa_node;
	return ni.memory / 2 / (peers ? peers : 1);
}

void mem_worker_ready(struct device *dv, const struct swarm_msg_worker_ready *m)
{
	uint64_t budget;
	const char *from;
	if (m->mem_total) {
		budget = m->mem_free > cfg.mem.gpu_reserve ? m->mem_free - cfg.mem.gpu_reserve : 0;
		if (cfg.mem.budget && cfg.mem.budget < budget)
			budget = cfg.mem.budget;
		from = cfg.mem.budget && cfg.mem.budget == budget ? "--device-memory" :
								    "free less the reserve";
	} else if (cfg.mem.budget) {
		budget = cfg.mem.budget;
		from = "--device-memory";
	} else {
		budget = cpu_default_budget(dv);
		from = "half the NUMA node's memory, shared by its devices";
	}
	dv->mem_total = m->mem_total;
	dv->mem_budget = budget;
	dv->mem_known = 1;
	dv->n_res = 0; /* a new worker holds nothing yet */
	swarm_log(SWARM_LOG_INFO,
		  "event=device_memory device=%s budget_bytes=%llu total_bytes=%llu "
		  "free_bytes=%llu from=\"%s\"",
		  dv->plan.name, (unsigned long long)budget, (unsigned long long)m->mem_total,
		  (unsigned long long)m->mem_free, from);
}

void mem_residency(struct device *dv, const struct swarm_msg_residency *m)
{
	char model[SWARM_NAME_MAX], sha[72];
	swarm_copy_str(model, sizeof model, m->model);
	swarm_copy_str(sha, sizeof sha, m->weights_sha);
	struct resident *r = find(dv, model, m->version);
	if (!m->loaded) {
		/* A reservation (loading) is for a load queued after this unload: an evicted
		 * version opened again before its UNLOAD reached the worker. Its RESIDENCY
		 * (loaded) comes next; dropping the reservation now would let another open
		 * count on bytes that are about to be taken. */
		if (r && !r->loading)
			*r = dv->res[--dv->n_res];
		return;
	}
	if (!r) {
		if (dv->n_res == SWARM_RES_MAX_RESIDENT) {
			swarm_log(SWARM_LOG_WARN,
				  "event=residency_full device=%s model=%s version=%u "
				  "reason=\"more than %d versions resident: not counted\"",
				  dv->plan.name, model, m->version, SWARM_RES_MAX_RESIDENT);
			return;
		}
		r = &dv->res[dv->n_res++];
		memset(r, 0, sizeof *r);
		memcpy(r->model, model, sizeof r->model);
		r->version = m->version;
		r->last_used_ns = swarm_now_ns();
		r->priority = 50; /* a load swarmd did not ask for: the default */
	}
	memcpy(r->sha, sha, sizeof r->sha);
	r->weights_bytes = m->weights_bytes;
	r->other_bytes = m->other_bytes;
	r->loading = 0; /* measured now, no longer the estimate */
	/* Only a load that took more than its estimate (a GPU's staged arena) gets here. */
	struct swarm_res_device snap;
	static struct swarm_res_version res_v[SWARM_RES_MAX_RESIDENT];
	mem_snapshot(dv, &snap, res_v);
	uint64_t used = swarm_res_used(&snap);
	if (used > dv->mem_budget)
		swarm_log(SWARM_LOG_WARN,
			  "event=over_budget device=%s used_bytes=%llu budget_bytes=%llu model=%s "
			  "version=%u bytes=%llu reason=\"the load took more than its estimate\"",
			  dv->plan.name, (unsigned long long)used,
			  (unsigned long long)dv->mem_budget, model, m->version,
			  (unsigned long long)(m->weights_bytes + m->other_bytes));
}

void mem_worker_gone(struct device *dv) { dv->n_res = 0; }

void mem_touch(struct device *dv, const char *model, uint32_t version, uint64_t now)
{
	struct resident *r = find(dv, model, version);
	if (r)
		r->last_used_ns = now;
}

const struct swarm_model_stats *mem_page(const struct device *dv, const char *model,
					 uint32_t version)
{
	if (!dv->stats)
		return NULL;
	for (uint32_t i = 0; i < SWARM_STATS_MAX_MODELS; i++) {
		const struct swarm_model_stats *m = &dv->stats->models[i];
		/* Acquire pairs with the worker's release store of valid (stats.c). */
		if (__atomic_load_n(&m->valid, __ATOMIC_ACQUIRE) && m->version == version &&
		    !strncmp(m->name, model, sizeof m->name))
			return m;
	}
	return NULL;
}

/* Requests of model@version on dv's stats page so far (0 when it has no entry). */
static uint64_t page_requests(const struct device *dv, const struct resident *r)
{
	const struct swarm_model_stats *m = mem_page(dv, r->model, r->version);
	return m ? swarm_stat_get(&m->requests) : 0;
}

void mem_tick(uint64_t now)
{
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		for (uint32_t k = 0; k < dv->n_res; k++) {
			uint64_t n = page_requests(dv, &dv->res[k]);
			if (n != dv->res[k].seen_requests) {
				dv->res[k].seen_requests = n;
				dv->res[k].last_used_ns = now;
			}
		}
	}
}

/* 1 when r is pinned on dv: one of its --preload versions (loaded or on its way), or an
 * operator's load (`swarm model load`): never evicted. */
int mem_pinned(const struct device *dv, const struct resident *r)
{
	if (r->op_pinned)
		return 1;
	for (int k = 0; k < cfg.n_preload; k++)
		if ((dv->pre_state[k] == PRE_SENT || dv->pre_state[k] == PRE_DONE) &&
		    dv->pre_version[k] == r->version && !strcmp(cfg.preload[k].name, r->model))
			return 1;
	return 0;
}

/* Sessions that dv serves with model@version now. One whose client closed it (detaching)
 * is not counted: its DETACH is on dv's socket before any UNLOAD swarmd sends later, so the
 * worker lets it go first. */
static uint32_t sessions_of(const struct device *dv, const struct resident *r)
{
	uint32_t n = 0;
	for (struct session *s = d.sessions; s; s = s->next)
		n += s->device == dv->index && s->state != S_DETACHING &&
		     s->version == r->version && !strcmp(s->model_name, r->model);
	return n;
}

int mem_loaded(const struct device *dv, const char *model, uint32_t version)
{
	const struct resident *r = find(dv, model, version);
	return r && !r->loading;
}

int mem_resident(const struct device *dv, const char *model, uint32_t version)
{
	return find(dv, model, version) != NULL;
}

/* Where s (on device from) could move so that its version can leave from: an active device
 * its model may use that has the version loaded and room for a session, the one with the
 * fewest sessions; -1 when none. */
static int move_target(int from, const struct session *s)
{
	int best = -1;
	for (int j = 0; j < d.n_dev && j < 64; j++) {
		const struct device *dv = &d.dev[j];
		if (j == from || dv->state != SWARM_DEVICE_ACTIVE || dv->ctl < 0 || dv->parking ||
		    dv->sessions >= SWARM_WORKER_MAX_SESSIONS || !(s->allowed >> j & 1) ||
		    !mem_loaded(dv, s->model_name, s->version))
			continue;
		if (best < 0 || dv->sessions < d.dev[best].sessions)
			best = j;
	}
	return best;
}

/* 1 when every session dv serves with r's version has somewhere to move, or is moving away
 * already (an earlier open's room). */
static int sessions_can_move(const struct device *dv, const struct resident *r)
{
	for (struct session *s = d.sessions; s; s = s->next) {
		if (s->device != dv->index || s->state == S_DETACHING || s->version != r->version ||
		    strcmp(s->model_name, r->model))
			continue;
		if (s->state == S_MOVING && s->move_to != dv->index)
			continue;
		if (s->state != S_ACTIVE || move_target(dv->index, s) < 0)
			return 0;
	}
	return 1;
}

/* dv's budget for placement: the one its worker's WORKER_READY set; before any (a parked
 * device the autoscaler may wake) what it will be where that is known without the worker (a
 * CPU device's, --device-memory), else no bound (a GPU's free memory is not known yet: a
 * model is not refused as too large for a device nobody has measured). */
static uint64_t budget_of(const struct device *dv)
{
	if (dv->mem_known)
		return dv->mem_budget;
	if (cfg.mem.budget)
		return cfg.mem.budget;
	return dv->gpu < 0 ? cpu_default_budget(dv) : UINT64_MAX;
}

void mem_snapshot(const struct device *dv, struct swarm_res_device *out,
		  struct swarm_res_version res[SWARM_RES_MAX_RESIDENT])
{
	memset(out, 0, sizeof *out);
	out->budget_bytes = budget_of(dv);
	out->resident = res;
	out->n_resident = dv->n_res;
	for (uint32_t k = 0; k < dv->n_res; k++) {
		const struct resident *r = &dv->res[k];
		res[k] = (struct swarm_res_version){
			.key = version_key(r->model, r->version),
			.weights_key = weights_key(r->sha),
			.weights_bytes = r->weights_bytes,
			.other_bytes = r->other_bytes,
			.sessions = sessions_of(dv, r),
			.pinned = mem_pinned(dv, r) || r->loading ||
				  as_pins(dv, r->model, r->version),
			.movable = sessions_can_move(dv, r),
			.priority = r->priority,
			.last_used_ns = r->last_used_ns,
		};
	}
}

void mem_fill_status(struct swarm_msg_status_reply *r)
{
	r->now_ns = swarm_now_ns();
	for (int i = 0; i < d.n_dev; i++) {
		const struct device *dv = &d.dev[i];
		struct swarm_res_device snap;
		struct swarm_res_version res[SWARM_RES_MAX_RESIDENT];
		mem_snapshot(dv, &snap, res);
		struct swarm_status_device *o = &r->devices[i];
		o->mem_budget = dv->mem_budget;
		o->mem_used = swarm_res_used(&snap);
		o->n_resident = dv->n_res;
		for (uint32_t k = 0; k < dv->n_res && r->n_resident < SWARM_STATUS_MAX_RESIDENT;
		     k++) {
			struct swarm_status_resident *e = &r->resident[r->n_resident++];
			e->device_index = dv->index;
			e->version = dv->res[k].version;
			swarm_copy_str(e->model, sizeof e->model, dv->res[k].model);
			e->weights_bytes = res[k].weights_bytes;
			e->other_bytes = res[k].other_bytes;
			e->last_used_ns = res[k].last_used_ns;
			e->sessions = res[k].sessions;
			e->pinned = res[k].pinned;
			for (uint32_t j = 0; j < dv->n_res; j++)
				e->shared |= j != k && res[k].weights_key &&
					     res[j].weights_key == res[k].weights_key;
		}
	}
}

/* Reserves what res will take on dv until its worker's RESIDENCY says what it took: a load on
 * its way is counted (and not evicted), so that opens decided meanwhile see it. */
void mem_expect(struct device *dv, const struct resolved *res)
{
	if (find(dv, res->name, res->version) || dv->n_res == SWARM_RES_MAX_RESIDENT)
		return;
	struct resident *r = &dv->res[dv->n_res++];
	memset(r, 0, sizeof *r);
	swarm_copy_str(r->model, sizeof r->model, res->name);
	r->version = res->version;
	swarm_copy_str(r->sha, sizeof r->sha, res->weights_sha);
	models_cost(res, &r->weights_bytes, &r->other_bytes);
	r->loading = 1;
	r->priority = res->place.priority;
	r->last_used_ns = swarm_now_ns();
}

void mem_attach_failed(struct device *dv, const char *model, uint32_t version)
{
	struct resident *r = find(dv, model, version);
	if (r && r->loading)
		*r = dv->res[--dv->n_res]; /* the load never happened */
}

/* The UNLOAD of entry k's version to dv's worker (flags: SWARM_UNLOAD_*), logged as event with why,
 * and the entry out of the table (its RESIDENCY, loaded 0, finds nothing when it comes). */
static void unload_entry(struct device *dv, uint32_t k, uint32_t flags, const char *event,
			 const char *why)
{
	struct resident *r = &dv->res[k];
	struct swarm_msg_unload m;
	memset(&m, 0, sizeof m);
	swarm_msg_init(&m.h, SWARM_MSG_UNLOAD, sizeof m, 0);
	swarm_copy_str(m.model, sizeof m.model, r->model);
	m.version = r->version;
	m.flags = flags;
	int rc = sup_send(dv, &m, sizeof m, NULL, 0);
	swarm_log(SWARM_LOG_INFO,
		  "event=%s device=%s model=%s version=%u bytes=%llu idle_ms=%.0f reason=\"%s\" "
		  "send=%s",
		  event, dv->plan.name, r->model, r->version,
		  (unsigned long long)(r->weights_bytes + r->other_bytes),
		  (double)(swarm_now_ns() - r->last_used_ns) / 1e6, why, rc ? "failed" : "ok");
	as_unloaded(dv, r->model, r->version);
	*r = dv->res[--dv->n_res];
}

/* The text of a refusal to place res (its cost and the largest budget). */
static void refusal_text(int rc, const struct resolved *res, const struct swarm_res_choice *c,
			 char *text, size_t len)
{
	char cost[32], budget[32];
	swarm_fmt_bytes(cost, sizeof cost, c->cost);
	swarm_fmt_bytes(budget, sizeof budget, c->largest_budget);
	if (rc == -EFBIG)
		snprintf(
			text, len,
			"model %s@%u needs %s (%llu bytes) of device memory, more than the largest "
			"device budget, %s (%llu bytes; swarmd --device-memory)",
			res->name, res->version, cost, (unsigned long long)c->cost, budget,
			(unsigned long long)c->largest_budget);
	else
		snprintf(
			text, len,
			"no device can make room for model %s@%u (%s, %llu bytes) now: the versions "
			"resident on every device that could hold it are in use or preloaded",
			res->name, res->version, cost, (unsigned long long)c->cost);
}

/* The plan c evicts versions from dv whose sessions must move first: starts their moves (to
 * where each version is loaded) and returns -EINPROGRESS with text; the open waits and is
 * tried again once they have moved (the versions are idle then). Nothing is unloaded yet. */
static int move_for_room(struct device *dv, const struct swarm_res_choice *c,
			 const struct resolved *res, char *text, size_t len)
{
	int moving = 0;
	for (uint32_t e = 0; e < c->n_evict; e++) {
		const struct resident *r = &dv->res[c->evict[e]];
		for (struct session *s = d.sessions; s; s = s->next) {
			if (s->device != dv->index || s->state != S_ACTIVE ||
			    s->version != r->version || strcmp(s->model_name, r->model))
				continue;
			int to = move_target(dv->index, s);
			if (to >= 0) {
				place_move(s, to, SWARM_MOVE_MEMORY);
				moving++;
			}
		}
	}
	snprintf(text, len,
		 "making room for %s@%u on %s: %d session(s) of the versions it evicts move to "
		 "devices that have them first",
		 res->name, res->version, dv->plan.name, moving);
	swarm_log(SWARM_LOG_INFO,
		  "event=room_by_moving device=%s for_model=%s for_version=%u sessions=%d",
		  dv->plan.name, res->name, res->version, moving);
	return -EINPROGRESS;
}

/* model@version as a worker measured it on some device, NULL when none has it loaded. */
static const struct resident *measured(const char *model, uint32_t version)
{
	for (int i = 0; i < d.n_dev; i++)
		if (mem_loaded(&d.dev[i], model, version))
			return find(&d.dev[i], model, version);
	return NULL;
}

uint64_t mem_fits_mask(const char *model, uint32_t version)
{
	const struct resident *known = measured(model, version);
	uint64_t mask = 0;
	static struct swarm_res_version res_v[SWARM_RES_MAX_RESIDENT];
	for (int i = 0; i < d.n_dev && i < 64; i++) {
		struct swarm_res_device dv;
		mem_snapshot(&d.dev[i], &dv, res_v);
		struct swarm_res_version want = { .key = version_key(model, version) };
		if (known) {
			want.weights_key = weights_key(known->sha);
			want.weights_bytes = known->weights_bytes;
			want.other_bytes = known->other_bytes;
		}
		uint64_t used = swarm_res_used(&dv), need = swarm_res_need(&dv, &want);
		if (used <= dv.budget_bytes && need <= dv.budget_bytes - used)
			mask |= 1ull << i;
	}
	return mask;
}

/* What res costs on a device that lacks it: its measured cost where a worker has it loaded,
 * else the registry's estimate. */
static void cost_of(const struct resolved *res, struct swarm_res_version *want)
{
	const struct resident *known = measured(res->name, res->version);
	if (known) {
		want->weights_bytes = known->weights_bytes;
		want->other_bytes = known->other_bytes;
	} else {
		models_cost(res, &want->weights_bytes, &want->other_bytes);
	}
}

uint64_t mem_cost(const struct resolved *res)
{
	struct swarm_res_version want = { 0 };
	cost_of(res, &want);
	return want.weights_bytes + want.other_bytes;
}

void mem_fleet_device(const struct device *dv, struct swarm_fleet_device *out)
{
	struct swarm_res_device snap;
	static struct swarm_res_version res_v[SWARM_RES_MAX_RESIDENT];
	mem_snapshot(dv, &snap, res_v);
	*out = (struct swarm_fleet_device){
		.state = dv->state,
		.parking = dv->parking,
		.budget = snap.budget_bytes,
		.used = swarm_res_used(&snap),
		.load = dv->busy,
		.sessions = dv->sessions,
	};
	/* Idle, unpinned versions (a host's is pinned): what an eviction could free. */
	for (uint32_t k = 0; k < snap.n_resident; k++)
		if (!res_v[k].pinned && !res_v[k].sessions)
			out->reclaimable += res_v[k].weights_bytes + res_v[k].other_bytes;
}

/* 1 when device name dv_name is the constraint's name, or one of its instances
 * ("gpu:0/1" of "gpu:0"). */
static int name_matches(const char *dv_name, const char *want)
{
	size_t n = strlen(want);
	return !strncmp(dv_name, want, n) && (dv_name[n] == 0 || dv_name[n] == '/');
}

uint64_t mem_allowed(const struct resolved *res)
{
	const struct swarm_placement_config *p = &res->place;
	uint64_t mask = 0;
	for (int i = 0; i < d.n_dev && i < 64; i++) {
		const struct device *dv = &d.dev[i];
		int ok = p->kind == SWARM_PLACE_ANY ||
			 (p->kind == SWARM_PLACE_GPU) == (dv->gpu >= 0);
		int listed = p->n_devices == 0;
		for (uint32_t k = 0; k < p->n_devices && k < SWARM_DEPLOY_MAX_DEVICES; k++)
			listed |= name_matches(dv->plan.name, p->devices[k]);
		if (ok && listed)
			mask |= 1ull << i;
	}
	return mask;
}

int mem_place_in(const struct resolved *res, int client_numa, uint64_t allowed, char *text,
		 size_t len)
{
	allowed &= mem_allowed(res);
	if (!allowed) {
		snprintf(text, len,
			 "model %s@%u may use only %s devices%s%s (its deploy section), and this "
			 "swarmd has none of them",
			 res->name, res->version,
			 res->place.kind == SWARM_PLACE_GPU ? "GPU" :
			 res->place.kind == SWARM_PLACE_CPU ? "CPU" :
							      "these",
			 res->place.n_devices ? ": " : "",
			 res->place.n_devices ? res->place.devices[0] : "");
		return -ENODEV;
	}
	struct swarm_balancer_device bal[MAX_DEVICES];
	struct swarm_res_device devs[MAX_DEVICES];
	static struct swarm_res_version res_v[MAX_DEVICES][SWARM_RES_MAX_RESIDENT];
	place_snapshot(bal);
	for (int i = 0; i < d.n_dev; i++) {
		mem_snapshot(&d.dev[i], &devs[i], res_v[i]);
		devs[i].bal = bal[i];
		devs[i].bal.has_model = i < 64 && (allowed >> i & 1);
	}
	struct swarm_res_version want = {
		.key = version_key(res->name, res->version),
		.weights_key = weights_key(res->weights_sha),
	};
	cost_of(res, &want);
	struct swarm_res_choice c;
	int rc = swarm_res_place(devs, (size_t)d.n_dev, &want, client_numa, swarm_topology_distance,
				 d.topo, &c);
	if (rc) {
		if (rc != -ENODEV)
			refusal_text(rc, res, &c, text, len);
		return rc;
	}
	struct device *dv = &d.dev[c.device];
	if (c.evict_moving)
		return move_for_room(dv, &c, res, text, len);
	/* By name: unload_entry() fills each hole with the table's last entry, so indices
	 * move. */
	struct resident gone[SWARM_RES_MAX_RESIDENT];
	char why[SWARM_NAME_MAX + 48];
	snprintf(why, sizeof why, "room for %s@%u", res->name, res->version);
	for (uint32_t e = 0; e < c.n_evict; e++)
		gone[e] = dv->res[c.evict[e]];
	for (uint32_t e = 0; e < c.n_evict; e++) {
		struct resident *r = find(dv, gone[e].model, gone[e].version);
		if (r)
			unload_entry(dv, (uint32_t)(r - dv->res), 0, "version_evicted", why);
	}
	return c.device;
}

int mem_pin(struct device *dv, const char *model, uint32_t version, int on)
{
	struct resident *r = find(dv, model, version);
	if (!r)
		return -ENOENT;
	r->op_pinned = on;
	return 0;
}

int mem_unload(struct device *dv, const char *model, uint32_t version, char *text, size_t len)
{
	struct resident *r = find(dv, model, version);
	if (!r) {
		snprintf(text, len, "%s@%u is not resident on %s", model, version, dv->plan.name);
		return -ENOENT;
	}
	struct resident copy = *r;
	copy.op_pinned = 0;
	if (mem_pinned(dv, &copy)) {
		snprintf(text, len, "%s@%u is preloaded on %s (swarmd --preload): it stays", model,
			 version, dv->plan.name);
		return -EPERM;
	}
	struct swarm_res_device snap;
	static struct swarm_res_version res_v[SWARM_RES_MAX_RESIDENT];
	mem_snapshot(dv, &snap, res_v);
	uint32_t sessions = res_v[r - dv->res].sessions;
	if (sessions || r->loading) {
		snprintf(text, len, "%s serves %u session(s) of %s@%u%s: close them first",
			 dv->plan.name, sessions, model, version, r->loading ? " (loading)" : "");
		return -EBUSY;
	}
	unload_entry(dv, (uint32_t)(r - dv->res), SWARM_UNLOAD_UNPIN, "version_unloaded",
		     "swarm model unload");
	return 0;
}
