/* fleet.h: which devices host which models (docs/autoscaler.md "Per model", docs/placement.md).
 *
 * The autoscaler decides per model how many devices it should be loaded on (swarm_as_decide,
 * runtime/autoscaler.h: its per-model WAKE and DRAIN counts). swarm_fleet_plan turns those
 * counts into placements: on which device each model is loaded or let go, which parked
 * devices must be woken because the models' placements need one more, and which devices in
 * service host nothing needed and may be parked. It is a pure function, as the policy is:
 * swarmd (runtime/swarmd/autoscale.c) and tools/swarm-sim call it alike.
 *
 * The rules, per model in the order given (the caller puts the most important first), every
 * model that shrinks before any that grows:
 *   - a model above its want loses hosts: the one with the fewest of its sessions, then
 *     the most loaded, then the highest index (woken last). It stays resident there, idle:
 *     its bytes count as reclaimable for the models that grow after it;
 *   - a model below its want gains hosts: first a device in service where it is still
 *     resident, idle (cached: no load, its bytes already counted), the least loaded, while
 *     the device's reclaimable bytes still cover it (no earlier model was given them); then
 *     a device in service it may use that has the free memory for it without evicting
 *     anything, the least loaded (then the one with
 *     the most free memory, then the lowest index); then one where evicting versions that
 *     nothing needs (reclaimable bytes) makes the room; then a parked device woken for it (a
 *     warm spare that has it loaded first, then any warm spare, then the lowest-numbered
 *     parked device). A device chosen for a model
 *     counts its bytes at once, so that two models are not both given the same room;
 *   - then a device in service (active or warming) that hosts no model wanted on it, has no
 *     session, and is not needed to keep min_in_service devices, is parked, highest index
 *     first.
 * A model whose want no device can meet gets what there is; the shortfall is reported.
 */
#ifndef SWARM_RUNTIME_FLEET_H
#define SWARM_RUNTIME_FLEET_H

#include <stddef.h>
#include <stdint.h>

#define SWARM_FLEET_MAX_DEVICES 64 /* hosts are bit masks */
#define SWARM_FLEET_MAX_MODELS 1024

struct swarm_fleet_model {
	uint32_t want;    /* devices it should be loaded on; 0: none (scaled to zero) */
	uint64_t hosts;   /* devices it is loaded or loading on now (bit i: device i) */
	uint64_t cached;  /* devices where it is resident but not a host: an idle copy, counted in
			   * that device's used and reclaimable bytes */
	uint64_t allowed; /* devices it may use (its deploy constraints) */
	uint64_t bytes;   /* what it costs on a device that does not have it */
	const uint32_t *sessions; /* its sessions per device (n_devs long), NULL: none known */
};

struct swarm_fleet_device {
	int state;            /* a swarm_device_state (SWARM_DEVICE_ACTIVE, ...) */
	int parking;          /* its worker is being stopped: neither given models nor woken */
	uint64_t budget;      /* its memory budget in bytes, UINT64_MAX for no bound */
	uint64_t used;        /* bytes resident on it now, whatever the model */
	uint64_t reclaimable; /* of used, what evicting idle, unpinned versions would free */
	double load;          /* its busy fraction, 0..1 */
	uint32_t sessions;    /* sessions it serves, all models */
};

enum swarm_fleet_action_kind {
	SWARM_FLEET_ADD = 1,    /* load model on device (woken first when wake is 1) */
	SWARM_FLEET_REMOVE = 2, /* let model go from device: its sessions move, then unload */
	SWARM_FLEET_PARK = 3,   /* take device out of service: it hosts nothing wanted */
};

struct swarm_fleet_action {
	uint32_t kind;   /* a swarm_fleet_action_kind */
	uint32_t model;  /* index into the models given; UINT32_MAX for PARK */
	uint32_t device; /* index into the devices given */
	uint32_t wake;   /* ADD: the device is parked (or a warm spare) and must be woken */
	uint32_t evict;  /* ADD: room is made by evicting reclaimable bytes */
};

/* Plans the placements for models[0..n_models) on devs[0..n_devs) (n_devs at most
 * SWARM_FLEET_MAX_DEVICES) as above, writing at most max actions to out. short_out
 * (n_models long, may be NULL) receives per model how many hosts it still lacks after the
 * plan. min_in_service: devices (active or warming) never parked below. Returns the number of
 * actions, or -EINVAL (a NULL array with a non-zero count, more than SWARM_FLEET_MAX_DEVICES
 * devices or SWARM_FLEET_MAX_MODELS models). Pure. */
int swarm_fleet_plan(const struct swarm_fleet_model *models, size_t n_models,
		     const struct swarm_fleet_device *devs, size_t n_devs, uint32_t min_in_service,
		     struct swarm_fleet_action *out, size_t max, uint32_t *short_out);

/* A model's hosts among devices in service (active or warming, not parking). */
uint32_t swarm_fleet_in_service(const struct swarm_fleet_model *m,
				const struct swarm_fleet_device *devs, size_t n_devs);

#endif /* SWARM_RUNTIME_FLEET_H */
