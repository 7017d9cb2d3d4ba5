/* residency.h: device memory for many models on few devices: what a device's resident model
 * versions use (weights counted once per device when versions share a blob), and which device
 * a version goes to and what leaves it to make room. Pure functions over a snapshot, as the
 * balancer's are, so that swarmd, the tests and the simulator call the same code
 * (docs/placement.md). */
#ifndef SWARM_RUNTIME_RESIDENCY_H
#define SWARM_RUNTIME_RESIDENCY_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/balancer.h"

#define SWARM_RES_MAX_RESIDENT 64 /* model versions resident on one device */

/* A model version resident on a device, or one that wants to be. */
struct swarm_res_version {
	uint64_t key;         /* names the model version (the caller's: unique per name@version) */
	uint64_t weights_key; /* names its weights blob; versions of one key share one copy on
			       * a device (0: shares with nothing) */
	uint64_t weights_bytes; /* that copy's bytes on the device */
	uint64_t other_bytes;   /* its own: the arena planned at max_batch, per-session buffers */
	uint32_t sessions;      /* sessions it serves on this device now */
	uint32_t movable;       /* those sessions could move to another device that has it */
	uint32_t pinned;        /* never evicted (--preload, or an operator's load) */
	uint32_t priority;      /* deploy.priority, 0..100: the lower is evicted first */
	uint64_t last_used_ns;  /* its last request or open here; 0 never */
};

struct swarm_res_device {
	struct swarm_balancer_device bal; /* state, node, sessions, capacity, load; has_model is
					   * the model's constraints (kind, list): 0 excludes it */
	uint64_t budget_bytes;
	const struct swarm_res_version *resident;
	uint32_t n_resident; /* at most SWARM_RES_MAX_RESIDENT */
};

/* Bytes the resident versions of dv use: each version's other_bytes, and each weights blob's
 * bytes once (a version of weights_key 0 counts its own). */
uint64_t swarm_res_used(const struct swarm_res_device *dv);

/* Bytes loading v on dv adds: its other_bytes, and its weights unless a resident version
 * holds the same blob. 0 when v is resident already. */
uint64_t swarm_res_need(const struct swarm_res_device *dv, const struct swarm_res_version *v);

/* Bytes v takes on a device that holds nothing else. */
uint64_t swarm_res_cost(const struct swarm_res_version *v);

struct swarm_res_choice {
	int device;       /* the device, -1 when refused */
	int resident;     /* 1: v is resident there already, nothing is loaded */
	uint64_t need;    /* bytes the load adds there (0 when resident) */
	uint32_t n_evict; /* resident versions to evict there first, least recently used first */
	uint32_t evict[SWARM_RES_MAX_RESIDENT]; /* their indices in that device's resident[] */
	uint64_t evict_bytes;                   /* what evicting them frees */
	uint32_t evict_moving;   /* of them, how many have sessions that must move first */
	uint64_t cost;           /* swarm_res_cost(v), for a refusal's text */
	uint64_t largest_budget; /* the largest budget of a device the model may use */
};

/* Where a session of v goes (client_numa and distance as swarm_balancer_pick takes them):
 * to a device that needs the least eviction for it: none where v is resident or fits in the
 * free bytes (among those, NUMA distance, then load: swarm_balancer_pick, so that sessions
 * spread as without budgets; on a tie one that has v resident); else the fewest sessions to move,
 * then the fewest bytes evicted, then NUMA distance and load. A device's evictions: idle versions
 * (no session, not pinned) before ones whose sessions can move elsewhere (movable); within each,
 * the lowest priority first, then those that do not hold v's weights blob before those that do;
 * then the least recently used. Only
 * devices that swarm_balancer_pick could give count: active, with room for a session, has_model
 * set. Returns 0 with *out filled (resident: v is there already), or with out->device -1: -EFBIG
 * when v's cost is larger than every allowed device's budget (out->cost, out->largest_budget say by
 * how much), -ENOSPC when it fits a budget but no allowed device can make room now (the residents
 * are pinned or have sessions that cannot move), -ENODEV when no allowed device is active with room
 * for a session. */
int swarm_res_place(const struct swarm_res_device *devs, size_t n,
		    const struct swarm_res_version *v, int client_numa,
		    int (*distance)(void *ctx, int a, int b), void *ctx,
		    struct swarm_res_choice *out);

#endif /* SWARM_RUNTIME_RESIDENCY_H */
