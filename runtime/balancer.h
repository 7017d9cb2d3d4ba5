/* balancer.h: which device serves a new session. A pure function over a snapshot, so that
 * tests and the simulator call it directly (DESIGN.md "Topology and balancer"). */
#ifndef SWARM_RUNTIME_BALANCER_H
#define SWARM_RUNTIME_BALANCER_H

#include <stddef.h>
#include <stdint.h>

enum swarm_device_state {
	SWARM_DEVICE_PARKED = 0,
	SWARM_DEVICE_WARMING = 1, /* worker started, not ready yet */
	SWARM_DEVICE_ACTIVE = 2,
	SWARM_DEVICE_DRAINING = 3,
	SWARM_DEVICE_FAILED = 4, /* restarted too often; out of service */
};

const char *swarm_device_state_name(int state);

struct swarm_balancer_device {
	int state;          /* a swarm_device_state */
	int numa_node;      /* -1 unknown */
	uint32_t sessions;  /* sessions attached */
	uint32_t capacity;  /* sessions it can take */
	uint32_t has_model; /* serves the session's model */
};

/* Picks the device for a session: an ACTIVE device with room that serves the model; among
 * those the nearest to client_numa (distance(a, b) gives the NUMA distance; NULL, or a client
 * node of -1: all equal; a device of node -1 is farther than any known node), then the
 * fewest sessions, then the lowest index. Returns the index or -ENODEV. */
int swarm_balancer_pick(const struct swarm_balancer_device *devs, size_t n, int client_numa,
			int (*distance)(void *ctx, int a, int b), void *ctx);

#endif /* SWARM_RUNTIME_BALANCER_H */
