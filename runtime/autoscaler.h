/* autoscaler.h: how many devices each model should have in service, as a pure function of
 * the time, the configuration, each model's demand and the devices' states (docs/autoscaler.md). swarmd calls it every tick with what the workers' stats
 * pages say and carries out its actions; tools/swarm-sim calls the very same function on a
 * simulated cluster of up to thousands of devices, so a policy is judged before it runs.
 *
 * The policy, per model:
 *   - the stable target: ceil(arrival_rate / (service_rate * target_util)), from the long
 *     window's arrival rate; with no service rate measured yet, ceil(active * busy /
 *     target_util);
 *   - panic (as Knative's): when the short window's rate asks for at least panic_ratio times
 *     the devices in service, or the queueing delay (queue_depth / (active * service_rate))
 *     passes panic_delay_frac of the latency objective, or the observed p99 passes the
 *     objective: the target comes from the short window, scale-up is immediate, and nothing
 *     scales down until the panic has been over for a stable window;
 *   - scale up at once to the target (waking parked devices; warming ones count as coming);
 *   - scale down by one device at a time, only after the target has stayed below the devices
 *     in service for stable_window_ns, at least cooldown_ns after the model's last scale
 *     event, and only when the devices left would run at most target_util - hysteresis;
 *   - the target is kept within [min_devices, max_devices]; the last device of a model that
 *     has sessions is never drained unless min_devices is 0; with min_devices 0 and nothing in
 *     service, a waiting open (or any arrival) wakes one device: the first request is held
 *     until it is warm, never failed.
 */
#ifndef SWARM_RUNTIME_AUTOSCALER_H
#define SWARM_RUNTIME_AUTOSCALER_H

#include <stddef.h>
#include <stdint.h>

struct swarm_as_config {
	double target_util;         /* busy fraction aimed at per device; default 0.6 */
	double hysteresis;          /* scale down only to target_util - this; default 0.1 */
	double panic_ratio;         /* short-window target / in service; default 2.0 */
	double panic_delay_frac;    /* queueing delay / objective that panics; default 0.5 */
	uint64_t stable_window_ns;  /* low demand this long before a scale-down; default 60 s */
	uint64_t cooldown_ns;       /* after any scale event of the model; default 30 s */
	/* Burst memory: capacity for the highest one-second rate of the last peak_window_ns is
	 * kept in service, sized at peak_util of the best service rate measured in that
	 * window; 0 turns it off. Default 1800 s and 0.8. */
	uint64_t peak_window_ns;
	double peak_util;
	int drain_all; /* a scale-down takes every device above the target at once (default 1);
			* 0: one device a cool-down */
};

/* Defaults as above. */
void swarm_as_config_default(struct swarm_as_config *cfg);

/* One model: its deployment configuration and its demand, as measured by the caller. */
struct swarm_as_model {
	uint32_t min_devices;      /* 0 allowed: scale to zero */
	uint32_t max_devices;      /* at least min_devices (0 is taken as min_devices) */
	uint64_t latency_p99_ns;   /* the objective, 0 for none */
	double rate_long;          /* arrivals per second over the stable window */
	double rate_short;         /* arrivals per second over the last few seconds */
	double service_rate;       /* requests per second one device serves at full busy, 0
				    * when not measured yet */
	double busy;               /* mean busy fraction of its devices in service, 0..1 */
	uint32_t queue_depth;      /* requests waiting on its devices */
	uint64_t p99_ns;           /* observed p99 latency, 0 unknown */
	uint32_t sessions;         /* sessions open on the model */
	uint32_t waiting_opens;    /* opens held for lack of a device in service */
	double rate_peak;          /* the highest one-second arrival rate in the peak window
				    * (swarm_as_peak_get), 0 unknown */
	double service_peak;       /* the best one-second service rate in it, 0 unknown */
	/* devices of the model by state (the caller's count) */
	uint32_t active, warming, draining;
};

/* What the policy remembers between calls, one per model; zero it before the first call. */
struct swarm_as_memory {
	uint64_t last_scale_ns;  /* the model's last scale event, 0 none */
	uint64_t low_since_ns;   /* since when the target has been below the devices in
				  * service, 0 when it is not */
	uint64_t panic_until_ns; /* no scale-down before this (a panic and a window after) */
};

enum swarm_as_action_kind {
	SWARM_AS_WAKE = 1,  /* bring count parked devices into service for model */
	SWARM_AS_DRAIN = 2, /* take count devices of model out of service (drain, then park) */
};

struct swarm_as_action {
	uint32_t kind;  /* a swarm_as_action_kind */
	uint32_t model; /* index into the models given */
	uint32_t count;
	uint32_t reason; /* a swarm_as_reason */
};

enum swarm_as_reason {
	SWARM_AS_R_DEMAND = 1,  /* the stable target moved */
	SWARM_AS_R_PANIC = 2,   /* queueing threatens the objective */
	SWARM_AS_R_MIN = 3,     /* below min_devices */
	SWARM_AS_R_MAX = 4,     /* above max_devices */
	SWARM_AS_R_FROM_ZERO = 5, /* a request waits and nothing is in service */
};

/* A reason's name ("panic"), for logs and the simulator. */
const char *swarm_as_reason_name(uint32_t reason);

/* Per model: the target (devices it should have in service) and the actions that move it
 * there. mem[i] belongs to models[i] and is updated. parked is how many devices are free to
 * wake (a WAKE never asks for more; models are served in order). target_out (n_models long,
 * may be NULL) receives each model's target. Returns the number of actions written (at most
 * max), or -EINVAL. Pure: the same inputs give the same outputs. */
int swarm_as_decide(uint64_t now_ns, const struct swarm_as_config *cfg,
		    const struct swarm_as_model *models, struct swarm_as_memory *mem,
		    size_t n_models, uint32_t parked, struct swarm_as_action *out, size_t max,
		    uint32_t *target_out);

/* The peak window's measurements of one model, kept by its caller: one-second slots of
 * arrivals, requests served and busy time. Zero it before the first call. */
#define SWARM_AS_PEAK_SLOTS 1800u /* the longest peak window: 1800 s */
#define SWARM_AS_SLOT_NS 1000000000ull

struct swarm_as_peak {
	int started;         /* a call was made */
	uint64_t first;      /* the first slot written (slot n: [n s, n + 1 s)) */
	uint64_t slot;       /* the newest slot written */
	uint64_t last_ns;    /* the latest call's time */
	double best_service; /* the best slot's service rate ever: a device's capacity, which
			      * only full batches show */
	/* slot % SWARM_AS_PEAK_SLOTS */
	uint64_t arrivals[SWARM_AS_PEAK_SLOTS], served[SWARM_AS_PEAK_SLOTS];
	uint64_t busy_ns[SWARM_AS_PEAK_SLOTS];
};

/* Adds what happened since the last call (arrivals, requests served, device busy time
 * summed over the model's devices) at now_ns, which does not go back. Time with no call
 * counts as slots with nothing. */
void swarm_as_peak_add(struct swarm_as_peak *p, uint64_t now_ns, uint64_t arrivals, uint64_t served,
		       uint64_t busy_ns);

/* Over the complete slots of the last window_ns, the highest arrival rate (req/s); and the
 * best service rate of any slot so far (requests per busy second, of slots with at least
 * 10 ms busy). 0 when there is none. */
void swarm_as_peak_get(const struct swarm_as_peak *p, uint64_t window_ns, double *rate_peak,
		       double *service_peak);

/* A device as the choice of warm spares sees it (which device hosts what, and which to wake
 * or park, is runtime/fleet.h's). */
struct swarm_as_device {
	int state;         /* a swarm_device_state (SWARM_DEVICE_ACTIVE, ...) */
	int parking;       /* its worker is being stopped */
	int to_standby;    /* warming to become a warm spare */
};

/* The parked devices to start as warm spares so that standby spares are kept (those ready
 * and those warming to be one count): their indices, highest first, into out (at most max).
 * Returns the count. */
size_t swarm_as_spares(const struct swarm_as_device *devs, size_t n, uint32_t standby, int *out,
		       size_t max);

#endif /* SWARM_RUNTIME_AUTOSCALER_H */
