/* balancer.h: which device serves a new session. A pure function over a snapshot, so that
 * tests and the simulator call it directly (docs/balancing.md). */
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
	SWARM_DEVICE_STANDBY = 5, /* worker started and ready, kept out of service: the
				   * autoscaler's warm spare, in service at once when woken */
};

const char *swarm_device_state_name(int state);

struct swarm_balancer_device {
	int state;            /* a swarm_device_state */
	int numa_node;        /* -1 unknown */
	uint32_t sessions;    /* sessions attached */
	uint32_t capacity;    /* sessions it can take */
	uint32_t has_model;   /* serves the session's model (pick); ignored by rebalance */
	uint32_t queue_depth; /* requests waiting in its queues (its stats page) */
	float busy;           /* fraction of time spent computing, 0 to 1, smoothed by the
			       * caller (swarmd: an EWMA with a 5 s time constant), which is
			       * what keeps load moves from following noise */
};

/* Picks the device for a session: an ACTIVE device with room that serves the model; among
 * those the nearest to client_numa (distance(a, b) gives the NUMA distance; NULL, or a client
 * node of -1: all equal; a device of node -1 is farther than any known node), then the
 * least loaded (fewest sessions, then the lower busy fraction in steps of 1/16, then the
 * shorter queue), then the lowest index. Sessions come first in the load because they are
 * what placement controls at once: busy fractions lag a burst of opens by a window.
 * Returns the index or -ENODEV. */
int swarm_balancer_pick(const struct swarm_balancer_device *devs, size_t n, int client_numa,
			int (*distance)(void *ctx, int a, int b), void *ctx);

/* ---- moving sessions ----------------------------------------------------------------------- */

/* A session as the rebalancer sees it. */
struct swarm_balancer_session {
	int device;             /* the device serving it now, -1 none (its worker died) */
	int client_numa;        /* -1 unknown */
	uint64_t serves;        /* bit i: device i serves its model */
	uint64_t last_move_ns;  /* when it last moved, 0 never */
};

struct swarm_balancer_config {
	/* Move for evenness when a device holds at least this many sessions more than
	 * another of the same distance to the client (2: a move never overshoots). */
	uint32_t spread_gap;
	/* Move for load when busy fractions differ by at least this much (0 disables) ... */
	float busy_gap;
	/* ... and the busier device holds at least two sessions. */
	uint64_t session_cooldown_ns; /* a session does not move again before this */
	uint64_t move_interval_ns;    /* and no load move comes sooner after another */
};

/* Defaults: spread_gap 2, busy_gap 0.3, a session moves at most once in 10 s, and load moves
 * come at least 1 s apart. */
void swarm_balancer_config_default(struct swarm_balancer_config *cfg);

enum swarm_move_reason {
	SWARM_MOVE_NONE = 0,
	SWARM_MOVE_EVACUATE = 1, /* its device left service (draining, parked, failed) or died */
	SWARM_MOVE_SPREAD = 2,   /* session counts uneven past spread_gap */
	SWARM_MOVE_BUSY = 3,     /* busy fractions uneven past busy_gap */
	SWARM_MOVE_MEMORY = 4,   /* its version is evicted from its device to make room
				  * (runtime/residency.h); it goes where the version is resident */
};

struct swarm_balancer_move {
	size_t session; /* index into the sessions given */
	int to;         /* device index */
	int reason;     /* a swarm_move_reason */
};

/* The one move that most needs making, a pure function of the snapshot: first a session
 * whose device is not ACTIVE (to the device swarm_balancer_pick would give it), then, at most
 * one per move_interval_ns after last_move_any_ns, a session from the device with the most
 * sessions to one with spread_gap fewer at no greater NUMA distance from its client, then one
 * from a device busier by busy_gap onto one that holds fewer sessions. Sessions inside their cool-down do not move for load.
 * Returns 1 with *mv set, 0 when nothing should move, -ENODEV when an evacuee has nowhere
 * to go (mv->session names it). Apply the move to the snapshot and call again for the next. */
int swarm_balancer_rebalance(const struct swarm_balancer_device *devs, size_t n_devs,
			     const struct swarm_balancer_session *ss, size_t n_ss,
			     const struct swarm_balancer_config *cfg, uint64_t now_ns,
			     uint64_t last_move_any_ns, int (*distance)(void *ctx, int a, int b),
			     void *ctx, struct swarm_balancer_move *mv);

#endif /* SWARM_RUNTIME_BALANCER_H */
