#!/bin/sh
# autoscale-sim.sh: the autoscaler's policy against static provisioning on a bursty trace,
# from the simulator (docs/simulator.md). The goal: attainment of the latency objective
# within one percentage point of static provisioning at the maximum, at no more than 60% of
# its device-seconds. Prints swarm-sim's --compare table for the policy at its default
# settings (three seeds, to show the spread), then with one setting changed (a 5 s cool-down),
# then at the defaults with demand measured as swarmd measures it today (--measure swarmd).
# Each table ends with the clairvoyant row and the lower bound (docs/simulator.md "The
# clairvoyant bound"): vs_bound is each run's device-seconds over a floor that no schedule
# reaching static's attainment goes under.
#
# Usage: bench/autoscale-sim.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR holds bin/swarm-sim (default: build); with OUT_DIR, each run's JSON and the
#   policy's SVG chart are written there. Takes several minutes on two cores (the
#   clairvoyant schedule is replayed 7 times per table).
#
# The service it stands for: one model on up to 64 devices; a batch of b requests takes
# 2 ms + 1 ms * b, up to 8 per batch (a device serves about 330 req/s one at a time, 800 at
# full batches); a device takes 3 s to warm (start a worker, load the weights, run the
# warm-up); the objective is 50 ms. Load: a two-state Markov-modulated Poisson process,
# 2000 req/s (about 10 devices at the policy's 0.6 target) with bursts to 12000 req/s
# (about 36 devices' worth at one-at-a-time service, all 64 at the policy's target), a
# burst every 20 minutes on average lasting 5 minutes on average, for 4 simulated hours.
# The policy starts with the 10 devices of the low state (not 1: a cold start under full
# load is not what this measures).
set -eu

BUILD=${1:-build}
OUT=${2:-}
SIM=$BUILD/bin/swarm-sim
if [ ! -x "$SIM" ]; then
	echo "autoscale-sim.sh: no $SIM (cmake --build $BUILD --target swarm-sim)" >&2
	exit 2
fi
[ -z "$OUT" ] || mkdir -p "$OUT"

TRACE=mmpp:2000,12000,1200,300,14400
SERVICE="--max 64 --min 1 --start 10 --base-us 2000 --per-row-us 1000 --max-batch 8 \
--warmup-ms 3000 --objective-us 50000 --tick-ms 1000 --short-window-s 6"

run() {
	name=$1
	shift
	if [ -n "$OUT" ]; then
		set -- "$@" --json "$OUT/$name.json" --svg "$OUT/$name.svg"
	fi
	# shellcheck disable=SC2086 # SERVICE is a list of options
	"$SIM" --trace "$TRACE" $SERVICE --compare "$@"
}

echo "== the policy at swarm_as_config_default (target_util 0.6, hysteresis 0.1,"
echo "   panic_ratio 2, panic_delay_frac 0.5, stable window 60 s, cool-down 30 s)"
for seed in 1 2 3; do
	echo
	run "default-seed$seed" --seed "$seed"
done
echo
echo "== the same with a 5 s cool-down (every other setting at its default)"
echo
run "cooldown5-seed1" --seed 1 --cooldown-s 5
echo
echo "== the defaults, measured as swarmd measures today (arrival rates from the rings, no p99,"
echo "   busy as a 5 s EWMA) at its 100 ms tick"
echo
run "swarmd-seed1" --seed 1 --measure swarmd --tick-ms 100
