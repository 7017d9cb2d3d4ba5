/* sim_usage.c: swarm-sim's --help (docs/simulator.md "Options"): every option of the
 * single-model mode with its default, then the multi-model mode's and --replay's. */
#include <inttypes.h>
#include <stdio.h>

#include "tools/sim.h"
#include "tools/sim_multi.h"

/* The trace specs of --help. */
static const char usage_traces[] =
	"  --trace steps:R1@T1,R2@T2,...   R req/s from T s on (0 before T1); ends 60 s\n"
	"                                  after the last step\n"
	"  --trace sine:MEAN,AMP,PERIOD_S,DURATION_S   diurnal: MEAN + AMP sin(2 pi t/PERIOD)\n"
	"  --trace mmpp:LOW,HIGH,MEAN_LOW_S,MEAN_HIGH_S,DURATION_S\n"
	"                                  bursts: LOW and HIGH req/s, exponential stays of\n"
	"                                  the given means, starting LOW\n"
	"  --trace diurnal:MEAN,SWING,DURATION_S   MEAN (1 - SWING cos(2 pi t/DURATION)):\n"
	"                                  a day over the trace, from the night's trough\n"
	"  --trace 'mmppn:rates=R,..;dwells=D,..[;next=ROW/..][;alpha=A,..][;swing=S]\n"
	"           [;period=P][;start=I];duration=S'\n"
	"                                  N states (2 to 8) of R req/s and mean stays D s,\n"
	"                                  moving by the weights of next (default: to each\n"
	"                                  other state equally), Pareto stays where alpha\n"
	"                                  > 1, rates times 1 + S sin(2 pi t/P)\n"
	"  --trace bursty:DURATION_S       issue 19's class: 300, 4000 and 12000 req/s,\n"
	"                                  stays of 40, 25 and 4 s, swing 0.5 over DURATION\n"
	"  --trace onoff:HIGH,MEAN_ON_S,MEAN_OFF_S,DURATION_S   HIGH or nothing, starting off\n"
	"  --trace heavytail:BASE,PEAK,MEAN_GAP_S,MEAN_BURST_S,ALPHA,DURATION_S\n"
	"                                  bursts at PEAK of Pareto(ALPHA) lengths\n"
	"  --trace csv:FILE                one arrival time (s) per line, '#' comments;\n"
	"                                  ends at the last arrival\n";

/* The output options, the examples and the exit status. */
static const char usage_output[] =
	"output:\n"
	"  --json FILE                     the figures as JSON ('-': stdout, instead of\n"
	"                                  the text)\n"
	"  --svg FILE                      load and devices over time (auto's with --compare)\n"
	"  --ticks-csv FILE                what every tick measured and decided\n"
	"  -h, --help                      this text\n"
	"      --version                   print swarm-sim's version and exit\n"
	"\n"
	"example:\n"
	"  swarm-sim --trace mmpp:2000,12000,1200,300,14400 --start 10 --warmup-ms 3000 \\\n"
	"      --compare --svg run.svg\n"
	"  swarm-sim --trace csv:arrivals.csv --policy static:4 --json -\n"
	"\n"
	"Exit status: 0, 1 when a run or an output fails, 2 on bad usage.\n";

void swarm_sim_usage(FILE *f)
{
	struct swarm_sim_opts d;
	swarm_sim_opts_default(&d);
	fprintf(f,
		"usage: swarm-sim --trace SPEC [options]\n"
		"\n"
		"Replays an arrival trace for one model on a pool of simulated devices, with the\n"
		"autoscaler's policy (swarm_as_decide, as swarmd runs it) or a fixed number of\n"
		"devices, and reports latency-objective attainment and device-seconds.\n"
		"\n"
		"trace (arrivals are Poisson within each rate segment, from --seed):\n"
		"%s"
		"  --duration-s S                  simulate S seconds instead of the trace's length\n"
		"  --seed N                        arrivals' seed (default %" PRIu64 ")\n"
		"\n"
		"provisioning:\n"
		"  --policy auto|static:N|clairvoyant  the policy (default), N devices always on,\n"
		"                                  or a schedule that sees the whole trace ahead\n"
		"  --compare                       auto, static at --max, static at --min (at\n"
		"                                  least 1) and clairvoyant on the same trace\n"
		"  (every report: device-seconds against a lower bound for static's attainment)\n"
		"  --seeds A..B|N                  auto and static at --max on each seed from A to B\n"
		"                                  (N: 1..N), in parallel: a line per seed, the\n"
		"                                  worst seeds, the medians and the goal on all\n"
		"  --min N                         the model's minimum devices (default %u; 0: scale\n"
		"                                  to zero, requests held until a device is warm)\n"
		"  --max N                         its maximum, and the pool's size (default %u, up\n"
		"                                  to %u)\n"
		"  --start N                       auto: devices active at time 0 (default --min)\n"
		"\n"
		"service model (a device serves its queue in batches):\n"
		"  --base-us X --per-row-us Y      a batch of b requests takes X + Y*b us\n"
		"                                  (default %g and %g)\n"
		"  --max-batch N                   requests taken from the queue at once (default %u)\n"
		"  --warmup-ms X                   PARKED -> WARMING -> ACTIVE takes X ms (default %g)\n"
		"  --objective-us X                the latency objective (default %g)\n"
		"  --max-outstanding N             arrivals beyond N waiting requests are refused and\n"
		"                                  missed, a memory guard (default %" PRIu64 ")\n"
		"  --backlog move|stay             move (default): a device starting a batch fills\n"
		"                                  it with the oldest waiting requests of the one\n"
		"                                  with the most (at most half the difference);\n"
		"                                  stay: queued requests stay where they queued\n"
		"\n"
		"measurement and policy (swarm_as_config; defaults are swarm_as_config_default's):\n"
		"  --tick-ms X                     measure and decide every X ms (default %g;\n"
		"                                  swarmd's is 100)\n"
		"  --measure arrivals|swarmd       what the policy is given: arrival rates, the\n"
		"                                  short window's p99, all queued requests\n"
		"                                  (default); or as swarmd measures today: rates of\n"
		"                                  arrivals (from the rings), no p99, busy as a 5 s\n"
		"                                  EWMA\n"
		"  --short-window-s S              rate_short's window (default %g)\n"
		"  --stable-window-s S             the policy's stable window and rate_long's window\n"
		"                                  (default %g)\n"
		"  --cooldown-s S                  after any scale event (default %g)\n"
		"  --target-util F                 busy fraction aimed at (default %g)\n"
		"  --hysteresis F                  scale down only to target-util - F (default %g)\n"
		"  --panic-ratio F                 short-window target / in service (default %g)\n"
		"  --panic-delay-frac F            queueing delay / objective that panics (default %g)\n"
		"  --peak-window-s S               the burst memory: capacity for the busiest second\n"
		"                                  of the last S s is held (default %g; 0 off, <= 1800)\n"
		"  --peak-util F                   the utilisation it is held at (default %g)\n"
		"  --drain all|one                 a scale-down takes all beyond the need at once,\n"
		"                                  or one device a cool-down (default %s)\n"
		"\n",
		usage_traces, d.seed, d.min_devices, d.max_devices, SWARM_SIM_MAX_DEVICES,
		d.base_us, d.per_row_us, d.max_batch, d.warmup_ms, d.objective_us,
		d.max_outstanding, d.tick_ms, d.short_window_s, d.as.stable_window_ns / 1e9,
		d.as.cooldown_ns / 1e9, d.as.target_util, d.as.hysteresis, d.as.panic_ratio,
		d.as.panic_delay_frac, d.as.peak_window_ns / 1e9, d.as.peak_util,
		d.as.drain_all ? "all" : "one");
	fputs(usage_output, f);
	swarm_sim_multi_usage(f);
	swarm_sim_replay_usage(f);
}
