/* fleet.c: the placement of models on devices of fleet.h, one pure function that swarmd and
 * tools/swarm-sim both call. It keeps no state: what is loaded where comes in, the actions that
 * move it to what the models want go out.
 */
#include "runtime/fleet.h"

#include "runtime/balancer.h"

#include <errno.h>
#include <string.h>

/* The plan's view of one device: what it will have once the actions so far are done. */
struct slot {
	int on;           /* in service: active or warming (woken by the plan included) */
	int spare;        /* a warm spare (woken first) */
	int can_wake;     /* parked or a spare, and not being stopped */
	uint64_t free;    /* budget - used, less what the plan gave */
	uint64_t reclaim; /* reclaimable bytes not yet taken by the plan */
	double load;
	uint32_t sessions;
};

static int in_service(const struct swarm_fleet_device *dv)
{
	return !dv->parking &&
	       (dv->state == SWARM_DEVICE_ACTIVE || dv->state == SWARM_DEVICE_WARMING);
}

uint32_t swarm_fleet_in_service(const struct swarm_fleet_model *m,
				const struct swarm_fleet_device *devs, size_t n_devs)
{
	uint32_t n = 0;
	for (size_t i = 0; i < n_devs && i < SWARM_FLEET_MAX_DEVICES; i++)
		n += (m->hosts >> i & 1) && in_service(&devs[i]);
	return n;
}

static void slots_init(const struct swarm_fleet_device *devs, size_t n, struct slot *s)
{
	for (size_t i = 0; i < n; i++) {
		const struct swarm_fleet_device *dv = &devs[i];
		s[i] = (struct slot){
			.on = in_service(dv),
			.spare = dv->state == SWARM_DEVICE_STANDBY,
			.can_wake = !dv->parking && (dv->state == SWARM_DEVICE_PARKED ||
						     dv->state == SWARM_DEVICE_STANDBY),
			.free = dv->used < dv->budget ? dv->budget - dv->used : 0,
			.reclaim = dv->reclaimable,
			.load = dv->load,
			.sessions = dv->sessions,
		};
		if (dv->budget == UINT64_MAX)
			s[i].free = UINT64_MAX;
		if (s[i].reclaim > dv->used)
			s[i].reclaim = dv->used;
	}
}

/* 1 when a is a better device in service to give a model than b (b < 0: none yet): the least
 * loaded, then the most free memory, then the lowest index. */
static int better_host(const struct slot *s, size_t a, long b)
{
	if (b < 0)
		return 1;
	if (s[a].load != s[b].load)
		return s[a].load < s[b].load;
	if (s[a].free != s[b].free)
		return s[a].free > s[b].free;
	return 0; /* a > b by the scan's order */
}

/* The device to give model m a new host on, and how (evict, wake); -1 when there is none. */
static long pick_host(const struct swarm_fleet_model *m, uint64_t hosts, const struct slot *s,
		      size_t n, int *evict, int *wake, int *cached)
{
	long best = -1;
	*evict = *wake = *cached = 0;
	/* A cached copy, while its bytes are still reclaimable (an earlier model's eviction may
	 * have been counted on them). */
	for (size_t i = 0; i < n; i++)
		if (s[i].on && (m->allowed >> i & 1) && !(hosts >> i & 1) && (m->cached >> i & 1) &&
		    s[i].reclaim >= m->bytes && better_host(s, i, best))
			best = (long)i;
	if (best >= 0) {
		*cached = 1;
		return best;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i].on && (m->allowed >> i & 1) && !(hosts >> i & 1) &&
		    s[i].free >= m->bytes && better_host(s, i, best))
			best = (long)i;
	if (best >= 0)
		return best;
	for (size_t i = 0; i < n; i++) /* free < bytes here, or the loop above took it */
		if (s[i].on && (m->allowed >> i & 1) && !(hosts >> i & 1) &&
		    s[i].reclaim >= m->bytes - s[i].free && better_host(s, i, best))
			best = (long)i;
	if (best >= 0) {
		*evict = 1;
		return best;
	}
	/* A warm spare that has the model loaded already (it preloads the likely one), then
	 * any spare, then a parked device. */
	for (size_t i = 0; i < n; i++)
		if (s[i].can_wake && s[i].spare && (m->allowed >> i & 1) && (m->cached >> i & 1) &&
		    !(hosts >> i & 1)) {
			*wake = *cached = 1;
			return (long)i;
		}
	for (int spare = 1; spare >= 0; spare--)
		for (size_t i = 0; i < n; i++)
			if (s[i].can_wake && s[i].spare == spare && (m->allowed >> i & 1) &&
			    !(hosts >> i & 1) && s[i].free >= m->bytes) {
				*wake = 1;
				return (long)i;
			}
	return -1;
}

/* The host of m in service to let go: the fewest of m's sessions, then the most loaded, then
 * the highest index. -1 when none. */
static long pick_leaver(const struct swarm_fleet_model *m, uint64_t hosts, const struct slot *s,
			size_t n)
{
	long best = -1;
	for (size_t i = 0; i < n; i++) {
		if (!s[i].on || !(hosts >> i & 1))
			continue;
		uint32_t si = m->sessions ? m->sessions[i] : 0;
		if (best >= 0) {
			uint32_t sb = m->sessions ? m->sessions[best] : 0;
			if (si > sb || (si == sb && s[i].load < s[best].load))
				continue;
		}
		best = (long)i;
	}
	return best;
}

static int emit(struct swarm_fleet_action *out, size_t max, size_t *n, struct swarm_fleet_action a)
{
	if (*n == max)
		return 0;
	out[(*n)++] = a;
	return 1;
}

/* What the plan has written so far. */
struct out {
	struct swarm_fleet_action *a;
	size_t max, n;
};

/* Gives s[i] model m's bytes: from its free memory, then (evict) from its reclaimable; a
 * cached copy's bytes are there already. */
static void take_room(struct slot *s, const struct swarm_fleet_model *m, int evict, int cached)
{
	if (cached) { /* its bytes are there already, and no longer reclaimable */
		s->reclaim -= s->reclaim < m->bytes ? s->reclaim : m->bytes;
	} else if (evict) {
		uint64_t from_free = s->free < m->bytes ? s->free : m->bytes;
		s->reclaim -= m->bytes - from_free;
		s->free -= from_free;
	} else if (s->free != UINT64_MAX) {
		s->free -= m->bytes;
	}
}

/* Model k's hosts let go down to its want (shrink) or gained up to it (grow); hosts is
 * updated, and what it still lacks after growing is returned. A host let go keeps the model
 * resident, idle: its bytes become reclaimable, for the models that grow after. */
static uint32_t plan_model(const struct swarm_fleet_model *m, uint32_t k, int grow, size_t n_devs,
			   struct slot *s, struct out *o, uint64_t *hosts)
{
	uint32_t have = 0;
	for (size_t i = 0; i < n_devs; i++)
		have += (*hosts >> i & 1) && s[i].on;
	while (!grow && have > m->want) {
		long i = pick_leaver(m, *hosts, s, n_devs);
		struct swarm_fleet_action a = { .kind = SWARM_FLEET_REMOVE,
						.model = k,
						.device = (uint32_t)i };
		if (i < 0 || !emit(o->a, o->max, &o->n, a))
			break;
		*hosts &= ~(1ull << i);
		s[i].reclaim += m->bytes;
		have--;
	}
	while (grow && have < m->want) {
		int evict, wake, cached;
		long i = pick_host(m, *hosts, s, n_devs, &evict, &wake, &cached);
		struct swarm_fleet_action a = { .kind = SWARM_FLEET_ADD,
						.model = k,
						.device = (uint32_t)i,
						.wake = (uint32_t)wake,
						.evict = (uint32_t)evict };
		if (i < 0 || !emit(o->a, o->max, &o->n, a))
			return m->want - have;
		take_room(&s[i], m, evict, cached);
		if (wake) {
			s[i].on = 1;
			s[i].can_wake = 0;
		}
		*hosts |= 1ull << i;
		have++;
	}
	return 0;
}

int swarm_fleet_plan(const struct swarm_fleet_model *models, size_t n_models,
		     const struct swarm_fleet_device *devs, size_t n_devs, uint32_t min_in_service,
		     struct swarm_fleet_action *out, size_t max, uint32_t *short_out)
{
	if ((n_models && !models) || (n_devs && !devs) || (max && !out) ||
	    n_devs > SWARM_FLEET_MAX_DEVICES || n_models > SWARM_FLEET_MAX_MODELS)
		return -EINVAL;
	struct slot s[SWARM_FLEET_MAX_DEVICES];
	slots_init(devs, n_devs, s);
	struct out o = { out, max, 0 };
	uint64_t hosts[SWARM_FLEET_MAX_MODELS];
	for (size_t k = 0; k < n_models; k++)
		hosts[k] = models[k].hosts;
	/* Every model shrinks first, so that the room it lets go serves those that grow. */
	for (int grow = 0; grow <= 1; grow++)
		for (size_t k = 0; k < n_models; k++) {
			uint32_t lack =
				plan_model(&models[k], (uint32_t)k, grow, n_devs, s, &o, &hosts[k]);
			if (grow && short_out)
				short_out[k] = lack;
		}
	uint64_t wanted = 0; /* devices that host a model wanted there, after the plan */
	for (size_t k = 0; k < n_models; k++)
		if (models[k].want)
			wanted |= hosts[k];

	uint32_t on = 0;
	for (size_t i = 0; i < n_devs; i++)
		on += s[i].on;
	for (size_t i = n_devs; i-- > 0 && on > min_in_service;) {
		if (!s[i].on || (wanted >> i & 1) || s[i].sessions)
			continue;
		struct swarm_fleet_action a = { .kind = SWARM_FLEET_PARK,
						.model = UINT32_MAX,
						.device = (uint32_t)i };
		if (!emit(out, max, &o.n, a))
			break;
		s[i].on = 0;
		on--;
	}
	return (int)o.n;
}
