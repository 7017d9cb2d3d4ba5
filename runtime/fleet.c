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
		      size_t n, int *evict, int *wake)
{
	long best = -1;
	*evict = *wake = 0;
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

int swarm_fleet_plan(const struct swarm_fleet_model *models, size_t n_models,
		     const struct swarm_fleet_device *devs, size_t n_devs, uint32_t min_in_service,
		     struct swarm_fleet_action *out, size_t max, uint32_t *short_out)
{
	if ((n_models && !models) || (n_devs && !devs) || (max && !out) ||
	    n_devs > SWARM_FLEET_MAX_DEVICES)
		return -EINVAL;
	struct slot s[SWARM_FLEET_MAX_DEVICES];
	slots_init(devs, n_devs, s);
	uint64_t wanted = 0; /* devices that host a model wanted there, after the plan */
	size_t n_out = 0;

	for (size_t k = 0; k < n_models; k++) {
		const struct swarm_fleet_model *m = &models[k];
		uint64_t hosts = m->hosts;
		uint32_t have = swarm_fleet_in_service(m, devs, n_devs);
		uint32_t lack = 0;
		while (have < m->want) {
			int evict, wake;
			long i = pick_host(m, hosts, s, n_devs, &evict, &wake);
			if (i < 0) {
				lack = m->want - have;
				break;
			}
			struct swarm_fleet_action a = { .kind = SWARM_FLEET_ADD,
							.model = (uint32_t)k,
							.device = (uint32_t)i,
							.wake = (uint32_t)wake,
							.evict = (uint32_t)evict };
			if (!emit(out, max, &n_out, a)) {
				lack = m->want - have;
				break;
			}
			if (evict) {
				uint64_t from_free = s[i].free < m->bytes ? s[i].free : m->bytes;
				s[i].reclaim -= m->bytes - from_free;
				s[i].free -= from_free;
			} else if (s[i].free != UINT64_MAX) {
				s[i].free -= m->bytes;
			}
			if (wake) {
				s[i].on = 1;
				s[i].can_wake = 0;
			}
			hosts |= 1ull << i;
			have++;
		}
		while (have > m->want) {
			long i = pick_leaver(m, hosts, s, n_devs);
			if (i < 0)
				break;
			struct swarm_fleet_action a = { .kind = SWARM_FLEET_REMOVE,
							.model = (uint32_t)k,
							.device = (uint32_t)i };
			if (!emit(out, max, &n_out, a))
				break;
			hosts &= ~(1ull << i);
			have--;
		}
		if (short_out)
			short_out[k] = lack;
		if (m->want)
			wanted |= hosts;
	}

	uint32_t on = 0;
	for (size_t i = 0; i < n_devs; i++)
		on += s[i].on;
	for (size_t i = n_devs; i-- > 0 && on > min_in_service;) {
		if (!s[i].on || (wanted >> i & 1) || s[i].sessions)
			continue;
		struct swarm_fleet_action a = { .kind = SWARM_FLEET_PARK,
						.model = UINT32_MAX,
						.device = (uint32_t)i };
		if (!emit(out, max, &n_out, a))
			break;
		s[i].on = 0;
		on--;
	}
	return (int)n_out;
}
