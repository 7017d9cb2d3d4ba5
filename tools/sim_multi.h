/* sim_multi.h: swarm-sim's multi-model mode (docs/simulator.md "Many models"). Several models,
 * each with its own arrival trace, service time and memory size, share a pool of devices
 * with a memory budget each. The autoscaler's policy (swarm_as_decide) decides per model how
 * many devices should host it, and the placement (swarm_fleet_plan, runtime/fleet.h) which
 * devices load or let go of which model and which devices are woken or parked: the very
 * functions swarmd calls. Or, as the baseline, a static placement decided at time 0.
 *
 * Two parts: the models file (tools/sim_models.c: parse it, one model a line) and the
 * simulation (tools/sim_multi.c: swarm_sim_multi_run). Nothing here keeps global state: runs
 * are independent and may go on in parallel threads.
 */
#ifndef SWARM_TOOLS_SIM_MULTI_H
#define SWARM_TOOLS_SIM_MULTI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/autoscaler.h"
#include "runtime/fleet.h"
#include "tools/sim.h"

/* ---- the models file --------------------------------------------------------------------- */

#define SWARM_SIM_MODEL_NAME_MAX 64
#define SWARM_SIM_MAX_MODELS 256

/* One model of a models file. Owns its trace (swarm_sim_models_free). */
struct swarm_sim_model {
	char name[SWARM_SIM_MODEL_NAME_MAX];
	char *trace_spec;             /* as written */
	struct swarm_sim_trace trace; /* parsed */
	double base_us, per_row_us;   /* a batch of b takes base_us + per_row_us * b */
	uint32_t max_batch;
	uint64_t bytes;       /* what it takes on a device */
	uint32_t min_devices; /* the policy's minimum hosts (0: scale to zero) */
	uint32_t max_devices; /* its maximum hosts; 0: the pool's size */
	double objective_us;  /* its latency objective */
	double load_ms;       /* loading it on a device in service takes this */
};

struct swarm_sim_models {
	struct swarm_sim_model *v;
	size_t n;
};

/* Parses a models file (format in docs/simulator.md "Many models": one model a line, `NAME
 * trace=SPEC key=value...`, blank lines and '#' comments). Returns 0 with out filled (free it
 * with swarm_sim_models_free), or -EINVAL (a malformed line: "FILE:LINE: what" in err; or no
 * model at all), -ENOENT or another -errno (the file, or a trace's csv file), -ENOMEM. */
int swarm_sim_models_parse(const char *path, struct swarm_sim_models *out, char *err,
			   size_t err_len);

/* Frees what ms owns; ms is invalid after it. */
void swarm_sim_models_free(struct swarm_sim_models *ms);

/* ---- the simulation ---------------------------------------------------------------------- */

enum swarm_sim_multi_policy {
	SWARM_SIM_MULTI_AUTO = 0,   /* swarm_as_decide, then swarm_fleet_plan, every tick */
	SWARM_SIM_MULTI_STATIC = 1, /* every device on, the placement of time 0 kept */
};

struct swarm_sim_multi_opts {
	const struct swarm_sim_model *models; /* in the order the policy serves them */
	size_t n_models;                      /* 1 to SWARM_SIM_MAX_MODELS */
	uint64_t seed;            /* model i's arrivals use seed + i * 0x9E3779B97F4A7C15 */
	uint32_t devices;         /* the pool; 1 to SWARM_FLEET_MAX_DEVICES; default 8 */
	uint64_t device_memory;   /* each device's budget in bytes; default 16G */
	uint32_t policy;          /* a swarm_sim_multi_policy */
	double warmup_ms;         /* PARKED -> WARMING -> ACTIVE; default 5000 */
	double tick_ms;           /* default 1000 */
	double duration_s;        /* 0: the longest trace's */
	double short_window_s;    /* rate_short's window; default 6 */
	uint64_t max_outstanding; /* per model, as swarm_sim_opts's; default 1 << 24 */
	struct swarm_as_config as;
	int keep_ticks; /* fill report->ticks and report->model_ticks */
};

/* Every option at its default; models left NULL. */
void swarm_sim_multi_opts_default(struct swarm_sim_multi_opts *o);

/* One model's figures. */
struct swarm_sim_model_report {
	uint64_t requests, met;
	uint64_t refused;    /* over max_outstanding, or no device can ever hold it (missed) */
	uint64_t unfinished; /* still waiting a day after the end (missed) */
	double attainment;   /* met / requests (1 when there are none) */
	double p50_us, p99_us, max_us, mean_us;
	uint64_t loads;      /* loads started on a device */
	uint64_t hits;       /* ADDs that found it resident (CACHED or LEAVING): no load */
	uint64_t evictions;  /* a CACHED copy evicted to make room for another model's ADD */
	uint64_t unloads;    /* copies dropped with their device parked (PARK) */
	uint32_t peak_hosts; /* most devices it was loaded (or loading) on at once */
	double host_seconds; /* integral of the devices it is loaded on, ready to serve */
	int too_big;         /* bytes above the device memory: never loaded, all refused */
};

/* What a tick saw for one model, after the actions. */
struct swarm_sim_model_tick {
	uint32_t active;   /* hosts loaded on an active device */
	uint32_t warming;  /* hosts loading, or on a warming device */
	uint32_t draining; /* hosts let go, still finishing requests (LEAVING) */
	uint32_t cached;   /* copies let go, idle and still resident (CACHED) */
	uint32_t target;   /* the policy's target (auto) */
	uint32_t want;     /* what was given to the placement (auto) */
	uint32_t queue;    /* its waiting requests, held ones included */
};

struct swarm_sim_multi_tick {
	double t_s;
	uint32_t on; /* devices not PARKED */
};

struct swarm_sim_multi_report {
	struct swarm_sim_model_report *models; /* n_models */
	size_t n_models;
	uint64_t requests, met, refused, unfinished;
	double attainment; /* over all models' requests */
	double duration_s, device_seconds, mean_devices;
	uint32_t peak_devices;
	uint64_t loads, hits, evictions, unloads;
	uint64_t wakes, parks; /* devices woken (for an ADD) and parked (PARK) */
	uint64_t adds_no_room; /* ADDs the device had no room for even after evicting */
	uint64_t decisions;    /* calls to swarm_as_decide */
	uint64_t batches;
	struct swarm_sim_multi_tick *ticks;       /* keep_ticks: one per tick */
	struct swarm_sim_model_tick *model_ticks; /* keep_ticks: n_ticks * n_models, by tick */
	size_t n_ticks;
};

/* Runs one simulation. Returns 0 with the report filled (free it with
 * swarm_sim_multi_report_free), or -EINVAL (bad options, a message in err), -ENOMEM, or
 * -EPROTO (the policy or the placement failed, a message in err). Thread-safe. */
int swarm_sim_multi_run(const struct swarm_sim_multi_opts *o, struct swarm_sim_multi_report *r,
			char *err, size_t err_len);

/* Frees what the report holds; r is invalid after it. */
void swarm_sim_multi_report_free(struct swarm_sim_multi_report *r);

/* ---- the command line (tools/sim_multi_main.c, in swarm-sim) --------------------------- */

/* What `swarm-sim --models` adds to the one-model options. */
struct swarm_sim_multi_cli {
	const char *models_path;
	uint32_t devices;       /* 0: the default */
	uint64_t device_memory; /* 0: the default */
	int compare;            /* auto and static, in parallel threads */
	const char *json;       /* NULL, a path, or "-" for stdout */
};

/* Prints --help's section on --models (after the one-model options). */
void swarm_sim_multi_usage(FILE *f);

/* Runs swarm-sim's multi-model mode: the models file, then the runs, then the report (text,
 * JSON or both). shared gives the options that apply to every model (the policy's settings,
 * the tick, the warm-up, the seed, the duration; static_devices UINT32_MAX for --policy
 * static). Returns the exit status: 0, 1 when a run or an output fails, 2 on bad usage (a
 * malformed models file included). */
int swarm_sim_multi_cli(const struct swarm_sim_opts *shared, const struct swarm_sim_multi_cli *c);

#endif /* SWARM_TOOLS_SIM_MULTI_H */
