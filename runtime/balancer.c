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
	}
	return "?";
}

int swarm_balancer_pick(const struct swarm_balancer_device *devs, size_t n, int client_numa,
			int (*distance)(void *ctx, int a, int b), void *ctx)
{
	int best = -ENODEV;
	int best_dist = 0;
	uint32_t best_load = 0;
	for (size_t i = 0; i < n; i++) {
		const struct swarm_balancer_device *d = &devs[i];
		if (d->state != SWARM_DEVICE_ACTIVE || !d->has_model || d->sessions >= d->capacity)
			continue;
		/* A client of unknown node sees every device as equal; a known client sees a
		 * device of unknown node as farther than any known one. */
		int dist = 0;
		if (distance && client_numa >= 0)
			dist = d->numa_node >= 0 ? distance(ctx, client_numa, d->numa_node) :
						   INT_MAX;
		/* Strictly better only: ties keep the lower index, so the choice is
		 * deterministic. */
		if (best < 0 || dist < best_dist ||
		    (dist == best_dist && d->sessions < best_load)) {
			best = (int)i;
			best_dist = dist;
			best_load = d->sessions;
		}
	}
	return best;
}
