/* balancer.c: the device-placement policy for new sessions (see balancer.h). */
#include "runtime/balancer.h"

#include <errno.h>
#include <limits.h>

const char *swarm_device_state_name(int state)
{
	switch (state) {
	case SWARM_DEVICE_PARKED:
		return "parked";
	case SWARM_DEVICE_WARMING:
		return "warming";
	case SWARM_DEVICE_ACTIVE:
		return "active";
	case SWARM_DEVICE_DRAINING:
		return "draining";
	case SWARM_DEVICE_FAILED:
		return "failed";
	case SWARM_DEVICE_STANDBY:
		return "standby";
	}
	return "?";
}

/* The NUMA distance from a client to a device: 0 for everyone when either is unknown to the
 * caller; a device of unknown node is farther than any known one. */
static int client_distance(int client_numa, const struct swarm_balancer_device *d,
			   int (*distance)(void *ctx, int a, int b), void *ctx)
{
	if (!distance || client_numa < 0)
		return 0;
	return d->numa_node >= 0 ? distance(ctx, client_numa, d->numa_node) : INT_MAX;
}

/* Busy fractions compared in steps of 1/16: closer than that is noise, and equal steps fall
 * through to the queue depth and the index, which keeps the choice deterministic. */
static int busy_step(float busy)
{
	if (!(busy > 0.0f)) /* also NaN */
		return 0;
	if (busy >= 1.0f)
		return 16;
	return (int)(busy * 16.0f);
}

/* <0 when a is less loaded than b, 0 when equal, >0 when more. */
static int load_cmp(const struct swarm_balancer_device *a, const struct swarm_balancer_device *b)
{
	if (a->sessions != b->sessions)
		return a->sessions < b->sessions ? -1 : 1;
	int ba = busy_step(a->busy), bb = busy_step(b->busy);
	if (ba != bb)
		return ba < bb ? -1 : 1;
	if (a->queue_depth != b->queue_depth)
		return a->queue_depth < b->queue_depth ? -1 : 1;
	return 0;
}

static int eligible(const struct swarm_balancer_device *d)
{
	return d->state == SWARM_DEVICE_ACTIVE && d->has_model && d->sessions < d->capacity;
}

int swarm_balancer_pick(const struct swarm_balancer_device *devs, size_t n, int client_numa,
			int (*distance)(void *ctx, int a, int b), void *ctx)
{
	int best = -ENODEV;
	int best_dist = 0;
	for (size_t i = 0; i < n; i++) {
		const struct swarm_balancer_device *d = &devs[i];
		if (!eligible(d))
			continue;
		int dist = client_distance(client_numa, d, distance, ctx);
		/* Strictly better only: ties keep the lower index, so the choice is
		 * deterministic. */
		if (best < 0 || dist < best_dist ||
		    (dist == best_dist && load_cmp(d, &devs[best]) < 0)) {
			best = (int)i;
			best_dist = dist;
		}
	}
	return best;
}

void swarm_balancer_config_default(struct swarm_balancer_config *cfg)
{
	*cfg = (struct swarm_balancer_config){
		.spread_gap = 2,
		.busy_gap = 0.3f,
		.session_cooldown_ns = 10ull * 1000 * 1000 * 1000,
		.move_interval_ns = 1ull * 1000 * 1000 * 1000,
	};
}

#define REBALANCE_MAX_DEVS 64 /* a session's serves mask has 64 bits */

/* The snapshot as one session sees it: has_model from its serves mask. */
static void view_for(const struct swarm_balancer_device *devs, size_t n,
		     const struct swarm_balancer_session *s, struct swarm_balancer_device *view)
{
	for (size_t i = 0; i < n; i++) {
		view[i] = devs[i];
		view[i].has_model = (uint32_t)((s->serves >> i) & 1u);
	}
}

/* What the three kinds of move below look at. */
struct rebalance {
	const struct swarm_balancer_device *devs;
	size_t n_devs;
	const struct swarm_balancer_session *ss;
	size_t n_ss;
	const struct swarm_balancer_config *cfg;
	uint64_t now_ns;
	int (*distance)(void *ctx, int a, int b);
	void *ctx;
	struct swarm_balancer_device view[REBALANCE_MAX_DEVS];
};

/* 1. Evacuees: wherever pick would send a new session like them. */
static int move_evacuee(struct rebalance *r, struct swarm_balancer_move *mv)
{
	for (size_t k = 0; k < r->n_ss; k++) {
		const struct swarm_balancer_session *s = &r->ss[k];
		if (s->device >= 0 && (size_t)s->device < r->n_devs &&
		    r->devs[s->device].state == SWARM_DEVICE_ACTIVE)
			continue;
		view_for(r->devs, r->n_devs, s, r->view);
		int to = swarm_balancer_pick(r->view, r->n_devs, s->client_numa, r->distance,
					     r->ctx);
		if (to >= 0 && to != s->device) {
			*mv = (struct swarm_balancer_move){ k, to, SWARM_MOVE_EVACUATE };
			return 1;
		}
	}
	return 0;
}

/* 2. Evenness: the session whose move narrows the widest gap between its device and one no
 * farther from its client. Moving from a count of c + gap to c never makes the target the
 * fuller one, so these moves cannot bounce and need no cool-down. */
static int move_for_evenness(struct rebalance *r, struct swarm_balancer_move *mv)
{
	int best_gap = 0;
	for (size_t k = 0; k < r->n_ss; k++) {
		const struct swarm_balancer_session *s = &r->ss[k];
		if (s->device < 0 || (size_t)s->device >= r->n_devs)
			continue;
		const struct swarm_balancer_device *from = &r->devs[s->device];
		int from_dist = client_distance(s->client_numa, from, r->distance, r->ctx);
		view_for(r->devs, r->n_devs, s, r->view);
		for (size_t i = 0; i < r->n_devs; i++) {
			if ((int)i == s->device || !eligible(&r->view[i]))
				continue;
			int dist =
				client_distance(s->client_numa, &r->view[i], r->distance, r->ctx);
			int gap = (int)from->sessions - (int)r->view[i].sessions;
			/* A nearer device with room always wins: it is where the session
			 * would have been opened. */
			if (dist < from_dist)
				gap = INT_MAX / 2 - dist;
			else if (dist > from_dist || gap < (int)r->cfg->spread_gap)
				continue;
			if (gap > best_gap) {
				best_gap = gap;
				*mv = (struct swarm_balancer_move){ k, (int)i, SWARM_MOVE_SPREAD };
			}
		}
	}
	return best_gap > 0;
}

/* 3. Load: off the busiest device (hot) onto the idlest one that holds fewer sessions (so that
 * evenness does not move it back), never farther from the client, never a session still in
 * its cool-down. */
static int move_for_load(struct rebalance *r, int hot, struct swarm_balancer_move *mv)
{
	const struct swarm_balancer_device *h = &r->devs[hot];
	float best_drop = 0.0f;
	int found = 0;
	for (size_t k = 0; k < r->n_ss; k++) {
		const struct swarm_balancer_session *s = &r->ss[k];
		if (s->device != hot ||
		    (s->last_move_ns && r->now_ns - s->last_move_ns < r->cfg->session_cooldown_ns))
			continue;
		int from_dist = client_distance(s->client_numa, h, r->distance, r->ctx);
		view_for(r->devs, r->n_devs, s, r->view);
		for (size_t i = 0; i < r->n_devs; i++) {
			/* After the move the target holds one more and the source one less:
			 * keep that difference under spread_gap, or evenness moves it back. */
			if ((int)i == hot || !eligible(&r->view[i]) ||
			    r->view[i].sessions + 2 >= h->sessions + r->cfg->spread_gap ||
			    client_distance(s->client_numa, &r->view[i], r->distance, r->ctx) >
				    from_dist)
				continue;
			float drop = h->busy - r->view[i].busy;
			if (drop >= r->cfg->busy_gap && drop > best_drop) {
				best_drop = drop;
				found = 1;
				*mv = (struct swarm_balancer_move){ k, (int)i, SWARM_MOVE_BUSY };
			}
		}
	}
	return found;
}

int swarm_balancer_rebalance(const struct swarm_balancer_device *devs, size_t n_devs,
			     const struct swarm_balancer_session *ss, size_t n_ss,
			     const struct swarm_balancer_config *cfg, uint64_t now_ns,
			     uint64_t last_move_any_ns, int (*distance)(void *ctx, int a, int b),
			     void *ctx, struct swarm_balancer_move *mv)
{
	struct rebalance r = { .devs = devs,
			       .n_devs = n_devs > REBALANCE_MAX_DEVS ? REBALANCE_MAX_DEVS : n_devs,
			       .ss = ss,
			       .n_ss = n_ss,
			       .cfg = cfg,
			       .now_ns = now_ns,
			       .distance = distance,
			       .ctx = ctx };
	if (move_evacuee(&r, mv) || move_for_evenness(&r, mv))
		return 1;
	/* Load moves: one per interval. */
	if (!(cfg->busy_gap > 0.0f) ||
	    (last_move_any_ns && now_ns - last_move_any_ns < cfg->move_interval_ns))
		return 0;
	int hot = -1;
	for (size_t i = 0; i < r.n_devs; i++) {
		if (devs[i].state != SWARM_DEVICE_ACTIVE || devs[i].sessions < 2)
			continue;
		if (hot < 0 || devs[i].busy > devs[hot].busy)
			hot = (int)i;
	}
	return hot >= 0 && move_for_load(&r, hot, mv);
}
