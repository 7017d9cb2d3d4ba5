#!/bin/sh
# autoscale-bursty.sh: the autoscaler's policy against static provisioning at the maximum on
# issue 19's trace class, 20 seeds of each length, from the simulator (docs/simulator.md
# "The bursty class"). The goal: on every seed, attainment of the latency objective within
# one percentage point of static provisioning at the maximum, at no more than 60% of its
# device-seconds. Prints swarm-sim --seeds for each length (a line per seed, the worst seeds,
# the medians), then one table: per length the worst seed by points below static and by
# device-seconds share, the medians, and the seeds that met the goal.
#
# Usage: bench/autoscale-bursty.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR holds bin/swarm-sim (default: build); with OUT_DIR, each length's JSON is
#   written there (bursty-LEN.json). Takes about 2 minutes on two cores.
#
# The trace: bursty:LEN, a three-state Markov-modulated Poisson process (quiet 300 req/s,
# busy 4000, flash 12000; mean stays 40, 25 and 4 s; from each state to each other with
# equal probability; rates swinging +-50% over one period of the trace, from the mean). The
# service is swarm-sim's defaults: up to 64 devices, at least 1 (1 active at the start), a
# batch of b requests in 2 ms + 1 ms * b up to 8, a 5 s warm-up, a 50 ms objective, a
# decision every second, the policy at swarm_as_config_default (docs/simulator.md "The
# bursty class at the defaults" has the results and where the misses are).
set -eu

BUILD=${1:-build}
OUT=${2:-}
SIM=$BUILD/bin/swarm-sim
if [ ! -x "$SIM" ]; then
	echo "autoscale-bursty.sh: no $SIM (cmake --build $BUILD --target swarm-sim)" >&2
	exit 2
fi
[ -z "$OUT" ] || mkdir -p "$OUT"
SEEDS=${SEEDS:-1..20}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

for len in 600 1800 3600; do
	set -- --trace "bursty:$len" --seeds "$SEEDS"
	# --json FILE writes the JSON besides the text, from the same runs.
	[ -z "$OUT" ] || set -- "$@" --json "$OUT/bursty-$len.json"
	echo "== bursty:$len, seeds $SEEDS"
	"$SIM" "$@" | tee "$TMP/$len.txt"
	echo
done

echo "== summary: auto against static:64 on bursty:LEN, seeds $SEEDS"
printf '%-8s  %-22s  %-22s  %-15s  %-22s  %s\n' length_s "worst points (seed, %)" \
	"worst % (seed, points)" "median points, %" "vs bound: median, worst" "goal (seeds met)"
for len in 600 1800 3600; do
	awk -v len="$len" '
	/^worst points below:/ { wp = $6 " (" $5 " " $10 ")" }
	/^worst share:/ { ws = $5 " (" $4 " " $7 ")" }
	/^median:/ { m = $2 ", " $5 }
	/^against the bound:/ { b = $5 " " $9 " (seed " $8 ")" }
	/^goal:/ { g = $(NF - 4) " (" substr($(NF - 3), 2) " of " $(NF - 1) ")" }
	END { printf "%-8s  %-22s  %-22s  %-15s  %-22s  %s\n", len, wp, ws, m, b, g }
	' "$TMP/$len.txt"
done
