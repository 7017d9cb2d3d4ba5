/* sim.h: swarm-sim, a discrete-event simulator that replays an arrival trace for one model
 * on a pool of simulated devices and lets the autoscaler's policy (runtime/autoscaler.h,
 * swarm_as_decide, the very function swarmd calls) decide how many are in service, so that a
 * policy is judged on more devices than any test machine has (docs/autoscaler.md,
 * docs/simulator.md).
 *
 * Three parts, one file each: the traces (tools/sim_trace.c: parse a spec, then generate its
 * arrivals, reproducibly from a seed), the simulation (tools/sim.c: swarm_sim_run) and its
 * outputs (tools/sim_svg.c: the SVG chart); its options' defaults and checks are in
 * tools/sim_opts.c; many seeds of one configuration are tools/sim_seeds.c; how good a policy
 * can get on a trace (a lower bound on device-seconds, and a clairvoyant schedule that sees the
 * trace in advance) is tools/sim_bound.c. tools/sim_main.c is the command line. Nothing here
 * keeps global state: runs are independent and may go on in parallel threads.
 */
#ifndef SWARM_TOOLS_SIM_H
#define SWARM_TOOLS_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/autoscaler.h"

/* ---- traces ------------------------------------------------------------------------------ */

enum swarm_sim_trace_kind {
	SWARM_SIM_TRACE_STEPS = 1, /* steps:R1@T1,R2@T2,... */
	SWARM_SIM_TRACE_SINE = 2,  /* sine:MEAN,AMP,PERIOD_S,DURATION_S */
	SWARM_SIM_TRACE_MMPP = 3,  /* mmpp:LOW,HIGH,MEAN_LOW_S,MEAN_HIGH_S,DURATION_S */
	SWARM_SIM_TRACE_CSV = 4,   /* csv:FILE, one arrival time in seconds per line */
	/* mmppn:rates=..;dwells=..;... and the classes bursty:, onoff: and heavytail: */
	SWARM_SIM_TRACE_MMPPN = 5,
};

#define SWARM_SIM_MMPP_MAX_STATES 8u

/* An N-state Markov-modulated Poisson process with a multiplicative sinusoidal swing: in
 * state i arrivals are Poisson at rate[i] * (1 + swing sin(2 pi t / swing_period_s)); the
 * state lasts a random dwell (exponential of mean dwell_s[i], or Pareto of shape alpha[i] and
 * the same mean), then moves to j with probability next[i][j]. Over a long trace the fraction
 * of time in state i is p_i dwell_s[i] / sum_j p_j dwell_s[j], p the stationary distribution
 * of next (a semi-Markov process). */
struct swarm_sim_mmppn {
	uint32_t n;                                /* states, 2 to SWARM_SIM_MMPP_MAX_STATES */
	uint32_t start;                            /* the state at time 0 */
	double rate[SWARM_SIM_MMPP_MAX_STATES];    /* req/s before the swing, >= 0 */
	double dwell_s[SWARM_SIM_MMPP_MAX_STATES]; /* mean time in the state, > 0 */
	double alpha[SWARM_SIM_MMPP_MAX_STATES];   /* 0: exponential dwell; > 1: Pareto */
	/* next[i][j]: the probability that state i moves to j; each row sums to 1, and the
	 * diagonal is 0 (a state ends by moving to another). */
	double next[SWARM_SIM_MMPP_MAX_STATES][SWARM_SIM_MMPP_MAX_STATES];
	double swing;          /* 0 to 1: the rates' relative amplitude over time */
	double swing_period_s; /* > 0 */
};

/* One step: rate (requests/s) from t_s on, until the next step's t_s. */
struct swarm_sim_step {
	double rate;
	double t_s;
};

/* A parsed trace. Owns steps and times_ns (swarm_sim_trace_free). */
struct swarm_sim_trace {
	uint32_t kind;                /* a swarm_sim_trace_kind */
	double duration_s;            /* where the trace ends (see swarm_sim_trace_parse) */
	struct swarm_sim_step *steps; /* steps: increasing t_s */
	size_t n_steps;
	/* sine: rate(t) = max(0, mean + amp sin(2 pi t / period + phase)); phase is 0 for
	 * sine: and -pi/2 for diurnal: (which starts at its trough) */
	double mean, amp, period_s, phase;
	double low, high;               /* mmpp: the two states' rates, starting low */
	double mean_low_s, mean_high_s; /* mmpp: mean time in each state (exponential) */
	struct swarm_sim_mmppn mmppn;   /* mmppn and its classes; mmpp too (its generator) */
	uint64_t *times_ns;             /* csv: the arrivals, sorted */
	size_t n_times;
};

/* Parses spec into tr (zeroed first). The duration is the spec's for every generated kind
 * but steps (sine, diurnal, mmpp, mmppn, bursty, onoff, heavytail), the last
 * arrival for csv, and the last step's time plus 60 s for steps. Returns 0, or -EINVAL (a
 * malformed spec or csv line, with the line number), -ENOENT or another -errno (the file),
 * with a message in err. tr owns memory on success only. */
int swarm_sim_trace_parse(const char *spec, struct swarm_sim_trace *tr, char *err, size_t err_len);

/* Frees what tr owns; tr is invalid after it. */
void swarm_sim_trace_free(struct swarm_sim_trace *tr);

/* The arrivals of a trace, one at a time. Poisson within each rate segment (steps, the
 * states of mmpp and mmppn), thinned for sine and mmppn's swing, replayed for csv: the same
 * seed gives the same times. */
struct swarm_sim_gen {
	const struct swarm_sim_trace *tr;
	uint64_t rng[4];
	double t_s;         /* the last arrival, or the start of the current segment */
	double end_s;       /* no arrival at or after this */
	double state_end_s; /* mmpp, mmppn: when the current state ends */
	size_t idx;         /* steps: the current step + 1 (0 before the first); csv: next time */
	uint32_t state;     /* mmpp, mmppn: the current state (mmpp: 0 low, 1 high) */
};

/* Starts tr's arrivals from 0 up to (excluding) end_s. tr must outlive g. */
void swarm_sim_gen_init(struct swarm_sim_gen *g, const struct swarm_sim_trace *tr, uint64_t seed,
			double end_s);

/* The next arrival in ns, non-decreasing; UINT64_MAX when there is none. */
uint64_t swarm_sim_gen_next(struct swarm_sim_gen *g);

/* Moves g's modulating chain (mmpp, mmppn and its classes) to its next state, skipping the
 * arrivals left in the current one, and returns it; g->t_s is then when it began and
 * g->state_end_s when it ends. For tests and tools that want the states alone. */
uint32_t swarm_sim_gen_next_state(struct swarm_sim_gen *g);

/* A uniform double in (0, 1] from a xoshiro256** state (seeded by swarm_sim_gen_init). */
double swarm_sim_uniform(uint64_t rng[4]);

/* ---- the simulation ---------------------------------------------------------------------- */

#define SWARM_SIM_MAX_DEVICES 4096u

/* A schedule's switch of one device. */
enum swarm_sim_switch_kind {
	SWARM_SIM_SWITCH_OFF = 0,  /* drain it (a warming one parks at once) */
	SWARM_SIM_SWITCH_WAKE = 1, /* wake it: WARMING for the warm-up, then ACTIVE; a draining
				    * one is ACTIVE again at once (it never stopped being warm) */
	SWARM_SIM_SWITCH_WARM = 2, /* at time 0 only: ACTIVE already, as the policy's --start */
};

struct swarm_sim_switch {
	uint64_t t_ns;
	uint32_t device; /* below max_devices */
	uint32_t kind;   /* a swarm_sim_switch_kind */
};

/* Switches in non-decreasing t_ns. The caller owns v. */
struct swarm_sim_schedule {
	struct swarm_sim_switch *v;
	size_t n;
};

/* What the policy is given each tick (docs/simulator.md "What the policy sees"). */
enum swarm_sim_measure {
	/* Arrival rates, p99 over the short window, busy over the last tick, every waiting
	 * request; an arrival that finds nothing in service calls the policy at once. */
	SWARM_SIM_MEASURE_ARRIVALS = 0,
	/* As runtime/swarmd/autoscale.c measures today: arrival rates (from the rings), no p99,
	 * busy as its 5 s EWMA, the queues of active devices only; held requests wait for the next
	 * tick. */
	SWARM_SIM_MEASURE_SWARMD = 1,
};

/* What happens to requests queued on a device when another has nothing to do. */
enum swarm_sim_backlog {
	/* An active device with nothing queued takes the oldest waiting requests (up to a
	 * batch, at most half of them) of the device with the most waiting: a backlog spreads
	 * over the devices that come into service after it built up. */
	SWARM_SIM_BACKLOG_MOVE = 0,
	/* Requests stay on the device they were queued on (until 2026-12-06). */
	SWARM_SIM_BACKLOG_STAY = 1,
};

struct swarm_sim_opts {
	const struct swarm_sim_trace *trace;
	uint64_t seed;             /* arrivals' seed; default 1 */
	uint32_t static_devices;   /* > 0: this many devices always on, no policy ("static:N");
				    * 0: the policy decides ("auto") */
	uint32_t min_devices;      /* the model's minimum (auto); default 1 */
	uint32_t max_devices;      /* the model's maximum and the pool's size; default 64 */
	uint32_t start_devices;    /* auto: devices active at time 0; default min_devices */
	double base_us;            /* a batch of b takes base_us + per_row_us * b; default 2000 */
	double per_row_us;         /* default 1000 */
	uint32_t max_batch;        /* requests a device takes from its queue at once; default 8 */
	double warmup_ms;          /* PARKED -> WARMING -> ACTIVE after this; default 5000 */
	double tick_ms;            /* measure and decide this often; default 1000 */
	double objective_us;       /* the latency objective; default 50000 */
	double duration_s;         /* 0: the trace's */
	double short_window_s;     /* rate_short's window; default 6 (the stable window, the
				    * window of rate_long, is as.stable_window_ns) */
	uint64_t max_outstanding;  /* arrivals beyond this many waiting requests are refused
				    * (memory guard, reported); default 1 << 24 */
	struct swarm_as_config as; /* the policy's settings; swarm_as_config_default */
	uint32_t measure;          /* a swarm_sim_measure: what the policy is given */
	uint32_t backlog;          /* a swarm_sim_backlog; default SWARM_SIM_BACKLOG_MOVE */
	int keep_ticks;            /* fill report->ticks */
	/* Non-NULL: no policy; the devices follow this schedule, fixed in advance ("clairvoyant",
	 * tools/sim_bound.c). Every device starts parked unless switched SWARM_SIM_SWITCH_WARM at
	 * 0. static_devices must be 0; max_devices is the pool. */
	const struct swarm_sim_schedule *schedule;
};

/* Every option at its default; trace left NULL. */
void swarm_sim_opts_default(struct swarm_sim_opts *o);

/* 0 when every option of o is in its range, else -EINVAL with the option and its range in
 * err (swarm_sim_run checks this first). Thread-safe. */
int swarm_sim_opts_check(const struct swarm_sim_opts *o, char *err, size_t err_len);

/* What a tick saw, after the policy's actions. */
struct swarm_sim_tick {
	double t_s;
	double offered; /* arrivals in the tick per second */
	double rate_long, rate_short, service_rate, busy;
	uint32_t active, warming, draining;
	uint32_t target; /* the policy's target (auto), else the static count */
	uint32_t queue;  /* waiting requests, held ones included */
	uint64_t p99_ns; /* over the short window */
	uint64_t missed; /* requests completed in the tick over the objective */
};

struct swarm_sim_report {
	uint64_t requests;             /* arrivals */
	uint64_t met;                  /* completed with latency <= the objective */
	uint64_t refused;              /* over max_outstanding (counted as missed) */
	uint64_t unfinished;           /* still waiting a day after the trace's end (missed) */
	double attainment;             /* met / requests (1 when there are none) */
	double p50_us, p99_us, max_us; /* over completed requests (0.1% resolution, exact
					* when a bucket holds one value; max exact) */
	double mean_us;
	double duration_s;      /* simulated: the trace's end, or the last completion after */
	double device_seconds;  /* integral of devices not PARKED over the run */
	double mean_devices;    /* device_seconds / duration_s */
	uint32_t peak_devices;  /* most devices not PARKED at once */
	uint64_t wakes, drains; /* devices woken and taken out of service (scale events) */
	uint64_t wakes_by_reason[8], drains_by_reason[8]; /* by swarm_as_reason */
	uint64_t decisions;                               /* calls to swarm_as_decide */
	uint64_t batches;
	uint64_t moved; /* requests taken from another device's queue (the backlog moving) */
	struct swarm_sim_tick *ticks; /* keep_ticks: one per tick */
	size_t n_ticks;
};

/* Runs one simulation. Returns 0 with the report filled (free it with
 * swarm_sim_report_free), or -EINVAL (bad options, a message in err), -ENOMEM, or -EPROTO
 * (the policy failed, a message in err). Thread-safe: runs share nothing. */
int swarm_sim_run(const struct swarm_sim_opts *o, struct swarm_sim_report *r, char *err,
		  size_t err_len);

/* Frees the report's ticks; the figures stay. */
void swarm_sim_report_free(struct swarm_sim_report *r);

/* ---- many seeds -------------------------------------------------------------------------- */

/* Issue 19's goal: the policy's attainment within SWARM_SIM_GOAL_POINTS percentage points of
 * static provisioning at the maximum, at no more than SWARM_SIM_GOAL_SHARE of its
 * device-seconds. */
#define SWARM_SIM_GOAL_POINTS 1.0
#define SWARM_SIM_GOAL_SHARE 0.60

/* The policy's run a against ref (static at the maximum) on the same trace: its attainment
 * below ref's in points into *points, its device-seconds as a share of ref's into *share.
 * Returns 1 when the goal is met, else 0. */
int swarm_sim_goal(const struct swarm_sim_report *a, const struct swarm_sim_report *ref,
		   double *points, double *share);

/* One seed of swarm_sim_seeds_run. */
struct swarm_sim_seed_result {
	uint64_t seed;
	struct swarm_sim_report autos; /* the policy's run (no ticks kept) */
	struct swarm_sim_report max;   /* static at the maximum, the same trace */
	double points, share;          /* swarm_sim_goal's */
	int met;
	double bound;    /* swarm_sim_bound's device-seconds for static's attainment */
	double vs_bound; /* the policy's device-seconds / bound */
};

struct swarm_sim_seeds_summary {
	size_t n, n_met;
	size_t worst_points; /* the index of the most points below (the first of equals) */
	size_t worst_share;  /* the index of the largest device-seconds share */
	double median_points, median_share; /* the mean of the middle two when n is even */
	size_t worst_vs_bound;              /* the index of the largest vs_bound */
	double median_vs_bound;
	int all_met;
};

/* Runs o's policy (o->static_devices must be 0) and static at o->max_devices on the seeds
 * first to last, in up to threads threads, into out (last - first + 1 of them), and each
 * seed's lower bound for static's attainment (swarm_sim_bound). Returns 0,
 * or the first failing seed's -errno with a message naming it in err. Thread-safe. */
int swarm_sim_seeds_run(const struct swarm_sim_opts *o, uint64_t first, uint64_t last,
			unsigned threads, struct swarm_sim_seed_result *out, char *err,
			size_t err_len);

/* The worst seeds and the medians of n > 0 results. */
void swarm_sim_seeds_summarize(const struct swarm_sim_seed_result *v, size_t n,
			       struct swarm_sim_seeds_summary *s);

/* ---- how good can it get (tools/sim_bound.c, docs/simulator.md "The clairvoyant bound") -- */

struct swarm_sim_bound {
	double device_seconds;       /* the lower bound: the larger of the two below */
	double level_device_seconds; /* the devices that must be on, integrated over the grid */
	double fluid_device_seconds; /* the requests to meet, served at the best rate */
	double device_rate;          /* a device's best rate, req/s (full batches) */
	double slot_s;               /* the grid's step */
	uint64_t requests, allowed_misses;
	uint32_t peak; /* the most devices the bound has on at once */
};

/* A lower bound on the device-seconds of any way of switching o's pool (max_devices, the
 * warm-up, o->start_devices warm at 0) that misses at most allowed_misses of o's trace's
 * requests. Computed from the arrivals alone (no run); o's policy is ignored. Returns 0, or
 * -EINVAL (bad options, a message in err) or -ENOMEM. Thread-safe. */
int swarm_sim_bound(const struct swarm_sim_opts *o, uint64_t allowed_misses,
		    struct swarm_sim_bound *b, char *err, size_t err_len);

/* The clairvoyant schedule of o's trace with devices sized at util (0 < util <= 1) of their
 * best rate: each slot's serving devices cover every window of arrivals that holds it, each
 * woken a warm-up ahead. Free sc with swarm_sim_schedule_free. Returns 0, -EINVAL, -ENOMEM. */
int swarm_sim_schedule_build(const struct swarm_sim_opts *o, double util,
			     struct swarm_sim_schedule *sc, char *err, size_t err_len);
void swarm_sim_schedule_free(struct swarm_sim_schedule *sc);

struct swarm_sim_clairvoyant {
	double utilization; /* the util of the replay kept */
	uint32_t replays;   /* runs of the search */
	int reached;        /* that replay met target_met */
	size_t switches;    /* its schedule's */
};

/* Replays clairvoyant schedules of o's trace, util bisected down from 1, and keeps in r the
 * cheapest that meets at least target_met requests (or, if none does, the one that meets
 * most). Returns 0 with r filled (swarm_sim_report_free), or swarm_sim_run's errors. */
int swarm_sim_clairvoyant_run(const struct swarm_sim_opts *o, uint64_t target_met,
			      struct swarm_sim_report *r, struct swarm_sim_clairvoyant *c,
			      char *err, size_t err_len);

/* ---- outputs ----------------------------------------------------------------------------- */

/* Writes an SVG chart of r's ticks (which must have been kept): offered load (req/s, left
 * axis), devices active and warming (right axis), the policy's target, over time, with axes,
 * labels and a legend; title is escaped. Returns 0 or -EIO. */
int swarm_sim_write_svg(FILE *f, const struct swarm_sim_report *r, const char *title);

/* Writes r's ticks (which must have been kept) to path as CSV, one line per tick: what was
 * measured, the devices by state, the target, the requests completed over the objective.
 * Returns 0 or -errno. */
int swarm_sim_write_ticks_csv(const char *path, const struct swarm_sim_report *r);

/* swarm-sim's --help text (tools/sim_usage.c). */
void swarm_sim_usage(FILE *f);

/* ---- replaying swarmd's decisions (tools/sim_replay.c) ---------------------------------- */

/* `swarm-sim --replay FILE` (argv[1] is "--replay"): 0 when every decision of the trace
 * comes out the same, 1 when one does not, 2 on bad usage or a malformed trace. */
int swarm_sim_replay_main(int argc, char **argv);
void swarm_sim_replay_usage(FILE *f);

#endif /* SWARM_TOOLS_SIM_H */
