/* sim_multi_internal.h: the state of a run of swarm-sim's multi-model simulation, shared by
 * its engine (tools/sim_multi.c: devices, batches, arrivals, ticks) and its policy and
 * placement (tools/sim_multi_place.c: swarm_as_decide, swarm_fleet_plan, carrying out the
 * plan). Internal to those two files.
 */
#ifndef SWARM_TOOLS_SIM_MULTI_INTERNAL_H
#define SWARM_TOOLS_SIM_MULTI_INTERNAL_H

#include <stdint.h>

#include "runtime/histogram.h"
#include "tools/sim_internal.h"
#include "tools/sim_multi.h"

#define NEVER SIM_NEVER
/* As tools/sim.c: stop a simulated day after the end with requests left (counted missed). */
#define SIM_GRACE_NS (24ull * 3600 * 1000000000)

enum dev_state {
	DEV_PARKED,
	DEV_WARMING,
	DEV_ACTIVE,
	DEV_DRAINING
};

/* A model on a device. LOADING and LOADED are its hosts; LEAVING was let go (REMOVE, or its
 * device parking) with requests queued there, which finish first; CACHED was let go and is
 * idle, still resident (its bytes used), as swarmd keeps a released version: evicted for
 * another model's ADD (least recently used first), taken back by an ADD of its own model
 * without a load, dropped when its device parks. A copy let go while loading is CACHED with
 * its load going on (load_end still ahead). */
enum slot_state {
	SLOT_NONE,
	SLOT_LOADING,
	SLOT_LOADED,
	SLOT_LEAVING,
	SLOT_CACHED
};

/* Model m on device d. */
struct slot {
	struct sim_fifo q;  /* its requests on d: the batch in service first */
	uint64_t load_end;  /* LOADING (or CACHED while its load goes on): when it is ready */
	uint64_t last_used; /* its last batch's start or its load's end: least-recently-used */
	uint32_t state;     /* a slot_state */
};

struct dev {
	uint64_t warm_end;     /* WARMING: when it becomes ACTIVE */
	uint64_t batch_end;    /* the batch in service's completion, NEVER when idle */
	uint64_t batch_start;  /* when it started */
	uint64_t loader_free;  /* loads on a device are one after another: when the last ends */
	uint64_t used;         /* bytes resident: its slots not NONE (CACHED ones included) */
	uint64_t requests;     /* requests on it, all models, queued and in service */
	uint64_t busy_tick_ns; /* busy in the tick being measured */
	uint32_t in_batch;     /* requests in service, 0 when idle */
	uint32_t batch_model;
	uint32_t state; /* a dev_state */
	uint8_t pending;
};

/* A model's state in a run. */
struct model {
	const struct swarm_sim_model *cfg;
	struct swarm_sim_model_report *r;
	struct swarm_sim_gen gen;
	struct sim_fifo held;
	uint64_t *svc_ns; /* a batch of b takes svc_ns[b], b <= max_batch */
	uint64_t objective_ns, load_ns;
	uint64_t outstanding, in_service;
	uint64_t arrivals, served, busy_ns; /* totals, for the windows */
	struct sim_window w_arr, w_served, w_busy;
	struct swarm_hist *hist;   /* k_short per-tick latency histograms */
	struct swarm_hist p99_sum; /* their sum */
	double service_rate;       /* the last measured, 0 before any */
	uint32_t n_hosts;          /* slots LOADING or LOADED */
	uint32_t n_loaded;         /* slots LOADED (on active devices, always) */
	uint32_t n_leaving;        /* slots LEAVING */
	uint32_t n_cached;         /* slots CACHED */
	uint64_t host_ns;          /* integral of n_loaded */
	uint64_t tick_host_ns;     /* of which in the tick being measured */
	struct swarm_as_model m;   /* the last measurement */
	struct swarm_as_peak peak; /* the policy's burst memory (as swarmd keeps it) */
	struct sim_lat lat;
};

struct sim {
	const struct swarm_sim_multi_opts *o;
	struct swarm_sim_multi_report *r;
	char *err;
	size_t err_len;

	uint32_t n_dev, n_mod;
	struct dev *dev;
	struct slot *slot; /* n_dev * n_mod, device-major */
	struct model *mod;
	struct sim_heap dev_heap; /* devices with an event */
	struct sim_heap arr_heap; /* models with an arrival to come */
	uint32_t *pending;        /* idle devices with work, started at the end of the instant */
	uint32_t n_pending;
	uint32_t n_on;

	uint64_t warmup_ns, tick_ns, end_ns;
	uint64_t now, last_change, last_tick_ns, tick_no;
	uint64_t dev_ns; /* integral of devices not PARKED */
	uint64_t outstanding;
	uint64_t k_long, k_short;
	uint64_t all_mask;

	/* The policy and the placement, per model (auto). */
	struct swarm_as_model *as_in;
	struct swarm_as_memory *mem;
	struct swarm_as_action *as_out;
	uint32_t *target, *want;
	struct swarm_fleet_model *fm;
	struct swarm_fleet_device *fd;
	uint32_t *sessions; /* fm[m].sessions: n_mod * n_dev */
	struct swarm_fleet_action *acts;
	size_t max_acts;
	size_t ticks_cap;
};

static inline struct slot *slot_of(struct sim *s, uint32_t d, uint32_t m)
{
	return &s->slot[(size_t)d * s->n_mod + m];
}

/* ---- the engine (tools/sim_multi.c) ---- */

/* Moves device d to state (a dev_state), keeping the counts. */
void msim_set_dev(struct sim *s, uint32_t d, uint32_t state);
/* Moves slot (d, m) to state (a slot_state), keeping the counts and the device's memory. */
void msim_set_slot(struct sim *s, uint32_t d, uint32_t m, uint32_t state);
/* Device d starts its next batch once the current instant is over, if it has one. */
void msim_kick(struct sim *s, uint32_t d);
/* Unloads slot (d, m), counted in *what; parks a draining device left with nothing. */
void msim_unload(struct sim *s, uint32_t d, uint32_t m, uint64_t *what);
/* Puts device d in the event heap at its next event. */
void msim_dev_resched(struct sim *s, uint32_t d);

/* ---- the policy and the placement (tools/sim_multi_place.c) ---- */

/* The counts of model m's hosts and queue, as swarmd would give them. */
void msim_model_counts(const struct sim *s, uint32_t m, struct swarm_as_model *am);
/* Lets the policy decide for models [first, first + n) (the others keep the hosts they
 * have) from their measurements in s->as_in, then places: 0 or -EPROTO. */
int msim_decide(struct sim *s, uint32_t first, uint32_t n);

#endif /* SWARM_TOOLS_SIM_MULTI_INTERNAL_H */
