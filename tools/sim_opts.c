/* sim_opts.c: swarm-sim's options (see sim.h): their defaults, and the check swarm_sim_run
 * makes of them before it allocates anything, each refusal saying the option's range. Apart
 * from the simulation so that tools/sim.c holds the simulation alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tools/sim.h"
#include "tools/sim_internal.h"

void swarm_sim_opts_default(struct swarm_sim_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seed = 1;
	o->min_devices = 1;
	o->max_devices = 64;
	o->start_devices = UINT32_MAX; /* min_devices */
	o->base_us = 2000;
	o->per_row_us = 1000;
	o->max_batch = 8;
	o->warmup_ms = 5000;
	o->tick_ms = 1000;
	o->objective_us = 50000;
	o->short_window_s = 6;
	o->max_outstanding = 1u << 24;
	swarm_as_config_default(&o->as);
}

const char *sim_check_timing(double warmup_ms, double tick_ms, double duration_s,
			     double short_window_s, uint64_t stable_window_ns)
{
	if (!(warmup_ms >= 0) || warmup_ms > 1e9)
		return "warm-up: >= 0 ms";
	if (!(tick_ms >= 0.001) || tick_ms > 1e9)
		return "tick: at least 1 us";
	if (!(duration_s >= 0) || duration_s > 1e9)
		return "duration: >= 0 s";
	if (!(short_window_s > 0) || short_window_s > 1e7)
		return "short window: > 0 s";
	if (stable_window_ns == 0 || stable_window_ns > 1e16)
		return "stable window: > 0 s";
	return NULL;
}

/* NULL when a clairvoyant schedule names devices of the pool in time order. */
static const char *check_schedule(const struct swarm_sim_opts *o)
{
	const struct swarm_sim_schedule *sc = o->schedule;
	if (o->static_devices)
		return "schedule: not with static devices";
	for (size_t i = 0; i < sc->n; i++) {
		if (sc->v[i].device >= o->max_devices)
			return "schedule: a device beyond max devices";
		if (i && sc->v[i].t_ns < sc->v[i - 1].t_ns)
			return "schedule: switches out of time order";
		if (sc->v[i].kind == SWARM_SIM_SWITCH_WARM && sc->v[i].t_ns)
			return "schedule: a WARM switch after time 0";
	}
	return NULL;
}

int swarm_sim_opts_check(const struct swarm_sim_opts *o, char *err, size_t err_len)
{
	const char *bad = NULL;
	if (!o->trace)
		bad = "no trace";
	else if (o->static_devices > SWARM_SIM_MAX_DEVICES)
		bad = "static devices: at most 4096";
	else if (!o->static_devices &&
		 (o->max_devices < 1 || o->max_devices > SWARM_SIM_MAX_DEVICES))
		bad = "max devices: 1 to 4096";
	else if (!o->static_devices && o->min_devices > o->max_devices)
		bad = "min devices above max devices";
	else if (!o->static_devices && o->start_devices != UINT32_MAX &&
		 o->start_devices > o->max_devices)
		bad = "start devices above max devices";
	else if (!(o->base_us >= 0) || !(o->per_row_us >= 0) || !(o->base_us + o->per_row_us > 0) ||
		 o->base_us + o->per_row_us * o->max_batch > 1e12)
		bad = "service time: base and per-row >= 0, and a batch of one must take time";
	else if (o->max_batch < 1 || o->max_batch > 65536)
		bad = "max batch: 1 to 65536";
	else if (!(o->objective_us > 0) || o->objective_us > 1e15)
		bad = "objective: > 0 us";
	else if (o->backlog != SWARM_SIM_BACKLOG_MOVE && o->backlog != SWARM_SIM_BACKLOG_STAY)
		bad = "backlog: move or stay";
	else if (o->schedule && (bad = check_schedule(o)))
		;
	else
		bad = sim_check_timing(o->warmup_ms, o->tick_ms, o->duration_s, o->short_window_s,
				       o->as.stable_window_ns);
	if (bad) {
		snprintf(err, err_len, "%s", bad);
		return -EINVAL;
	}
	return 0;
}
