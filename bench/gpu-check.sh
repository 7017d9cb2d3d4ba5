#!/usr/bin/env bash
# gpu-check.sh: the GPU data path's one prepared check (docs/gpu-check.md), run on a lent GPU
# machine over a build made elsewhere (bench/gpu-prepare.sh). It builds nothing and never
# changes a GPU setting (no nvidia-smi -pm/-ac/-r/-pl/-lgc/-c/-mig): it only reads them.
#
#   bench/gpu-check.sh [BUILD_DIR]     (default build-gpu; from anywhere)
#
# The steps, most valuable first, each under its own cap; the caps add up to the budget (six
# minutes), so that no step can starve a later one and the whole run ends in time:
#   facts       the card, driver, kernel, where each CUDA library loads from, torch's import
#   h2d+load    swarm-gpu-bench --only h2d,load: pinned against pageable and cudaMallocHost,
#               the >= 4 GiB weight load in every mode against PyTorch's safetensors
#   rt identity / rt ranker   swarm-bench's GPU round trips against the same graph in-process
#   gather      swarm-gpu-bench --only gather: which upload_many mode should be the default
#   tests       the CUDA test suites, each binary under its own cap within the group's
#   cpu ref     swarm-bench's CPU spin and overhead rows, for reference
# Every line a step prints goes to its log under $OUT (else a temporary folder) the moment it
# is printed, and its rows ("row: ...") and "unsupported here: ..." lines to rows.txt, so a run
# cut off still returns what it measured. The summary table comes last.
#
# Exit: 0 every step passed; 1 a step failed or ran past its cap; 2 no GPU (nothing measured).
#
# The 4 GiB model file is written to $GPU_CHECK_DIR, else the build folder (a disk: /tmp may be
# memory, where O_DIRECT and a cold page cache mean nothing), and removed after.
#
# Tested without a GPU by tests/bench/test_gpu_check.sh over stub programs: GPU_CHECK_SCALE
# (percent, default 100) scales every cap and the budget, so that the test runs in seconds.
set -u

# ---- paths, resolved before anything is sourced (a sourced file may set any variable) ------
GC_SELF=$(readlink -f "${BASH_SOURCE[0]}")
GC_BENCH_DIR=$(dirname "$GC_SELF")
GC_TORCH=$GC_BENCH_DIR/gpu_load_torch.py
GC_BUILD_ARG=${1:-build-gpu}
# The library path as it was before device-env.sh put the bundled Debian libraries first: the
# image's own programs (python3 with PyTorch) get this one. A device-env.sh sourced before this
# script ran saved it in SWARM_HOST_LD_LIBRARY_PATH. Empty means: no LD_LIBRARY_PATH.
GC_HOST_LD=${SWARM_HOST_LD_LIBRARY_PATH-${LD_LIBRARY_PATH-}}
readonly GC_SELF GC_BENCH_DIR GC_TORCH GC_BUILD_ARG GC_HOST_LD

if [ ! -d "$GC_BUILD_ARG/bin" ]; then
	echo "gpu-check: no build folder $GC_BUILD_ARG/bin (run bench/gpu-prepare.sh where it was built, and carry it)" >&2
	exit 1
fi
GC_BUILD=$(cd "$GC_BUILD_ARG" && pwd -P)
GC_BIN=$GC_BUILD/bin
readonly GC_BUILD GC_BIN

# Runs CMD with the host's library path (above), not the bundled one.
host_env() {
	if [ -n "$GC_HOST_LD" ]; then
		env LD_LIBRARY_PATH="$GC_HOST_LD" "$@"
	else
		env -u LD_LIBRARY_PATH "$@"
	fi
}

# ---- the facts: this script run again as a child (GC_FACTS_CHILD=1), under the step's cap ----
if [ "${GC_FACTS_CHILD:-}" = 1 ]; then
	echo "date: $(date -u +%FT%TZ)  host: $(uname -srm)  cpus: $(nproc)"
	echo "build folder: $GC_BUILD (recorded at $(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$GC_BUILD/CMakeCache.txt" 2>/dev/null))"
	echo "torch script: $GC_TORCH ($([ -r "$GC_TORCH" ] && echo found || echo MISSING))"
	echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
	echo "host LD_LIBRARY_PATH, for python3: ${GC_HOST_LD:-(none)}"
	echo "--- nvidia-smi (read only)"
	if command -v nvidia-smi >/dev/null; then
		timeout 10 nvidia-smi -L 2>&1
		timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current,persistence_mode,clocks.sm,clocks.max.sm --format=csv 2>&1
	else
		echo "(no nvidia-smi)"
	fi
	echo "--- io_uring: $(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null | sed 's/^/io_uring_disabled=/' || echo 'no /proc/sys/kernel/io_uring_disabled')"
	echo "--- cuda-gate --info: where cuBLAS, cuBLASLt and NCCL load from, and the GPU"
	timeout 15 "$GC_BIN/cuda-gate" --info 2>&1
	echo "--- python3 (with the host's LD_LIBRARY_PATH): $(command -v python3 || echo none)"
	host_env timeout 25 python3 -c "import torch, safetensors; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'safetensors', safetensors.__version__, 'GPU', torch.cuda.is_available())" 2>&1 | tail -n 3
	echo "--- ldd $GC_BIN/swarm-gpu-bench (what resolves where)"
	ldd "$GC_BIN/swarm-gpu-bench" 2>&1 | grep -E 'not found|device-lib|cuda|nccl|blas' || true
	exit 0
fi

GC_LOGS=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
GC_ROWS=$GC_LOGS/rows.txt
readonly GC_LOGS GC_ROWS
mkdir -p "$GC_LOGS"
: >"$GC_ROWS"

# ---- time: milliseconds, every cap scaled by GPU_CHECK_SCALE percent ------------------------
GC_SCALE=${GPU_CHECK_SCALE:-100}
[[ $GC_SCALE =~ ^[0-9]+$ ]] && ((GC_SCALE > 0)) || { echo "gpu-check: GPU_CHECK_SCALE must be a positive integer (percent)" >&2; exit 1; }
if [ -n "${EPOCHREALTIME:-}" ]; then
	now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t / 1000)); }
else
	now_ms() { date +%s%3N; }
fi
scaled() { echo $(($1 * 10 * GC_SCALE)); } # seconds -> scaled milliseconds
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
GC_START=$(now_ms)

# The caps, in seconds at scale 100. Their sum is the budget: a step can only use less than
# its cap, so every later step keeps all of its own.
declare -A CAP=(
	[facts]=30 [h2d+load]=120 [rt identity]=35 [rt ranker]=35 [gather]=20 [tests]=105
	[cpu ref]=15
)
GC_ORDER=(facts "h2d+load" "rt identity" "rt ranker" gather tests "cpu ref")
GC_TEST_CAP=40     # one test binary, within the tests' group
GC_TORCH_TIMEOUT=60 # torch's three loads and its import, within h2d+load
GC_BUDGET=360
total=0
for s in "${GC_ORDER[@]}"; do total=$((total + CAP[$s])); done
if ((total > GC_BUDGET)); then
	echo "gpu-check: the caps add up to $total s, over the budget of $GC_BUDGET s" >&2
	exit 1
fi
GC_BUDGET_MS=$(scaled $GC_BUDGET)

table=()
failed=0

# Kills whatever a step left running from the build folder (a swarmd or worker whose parent
# was killed): timeout kills the step's process group, but not what left it.
sweep() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case $exe in "$GC_BIN"/*) kill -KILL "${p#/proc/}" 2>/dev/null ;; esac
	done
}

# step NAME CAP_MS LOG CMD...: runs CMD under its cap (cut to what is left of the budget), its
# output appended to LOG as it comes, its "row:" and "unsupported here:" lines to rows.txt;
# prints the step's last lines and records a table row. Returns CMD's status (124: cut off).
step() {
	local name=$1 cap=$2 log=$3
	shift 3
	local t0 left lim grace rc from note unsup
	GC_LAST_LOG=$log
	GC_LAST_FROM=$(($([ -f "$log" ] && wc -l <"$log" || echo 0) + 2))
	t0=$(now_ms)
	left=$((GC_BUDGET_MS - (t0 - GC_START)))
	lim=$((cap < left ? cap : left))
	if ((lim < 500)); then
		table+=("$(printf '%-30s %7ss  %-44s' "$name" "$(secs "$cap")" "NOT RUN: no time left (its group's or the budget)")")
		failed=1
		return 124
	fi
	grace=$((lim / 20 > 3000 ? 3000 : lim / 20))
	from=$((GC_LAST_FROM - 1))
	echo "=== $name (cap $(secs "$lim") s) ===" | tee -a "$log"
	timeout -k "$(secs "$grace")" "$(secs $((lim - grace)))" "$@" >>"$log" 2>&1 </dev/null
	rc=$?
	sweep
	tail -n +"$((from + 1))" "$log" | grep -E '^(row: |unsupported here: )' | sed "s/^/[$name] /" >>"$GC_ROWS"
	tail -n +"$((from + 1))" "$log" | tail -n 15
	unsup=$(tail -n +"$((from + 1))" "$log" | grep -o 'unsupported here: .*' | cut -c1-60 | sort -u | wc -l)
	note=ok
	if ((rc == 124 || rc == 137)); then
		note="TIMED OUT at its cap"
	elif ((rc != 0)); then
		note="FAILED (exit $rc)"
	fi
	local synth
	synth=$(tail -n +"$((from + 1))" "$log" | grep -o 'Synthesis: Tested: [0-9]* | Passing: [0-9]* | Failing: [0-9]* | Crashing: [0-9]*' | tail -n 1 |
		sed 's/Synthesis: Tested: \([0-9]*\) | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\)/\1 tests, \2 passed, \3 failed, \4 crashed/')
	[ -n "$synth" ] && note="$note; $synth"
	((unsup > 0)) && note="$note; $unsup unsupported here"
	table+=("$(printf '%-30s %7ss  %-44s %6ss' "$name" "$(secs "$cap")" "$note" "$(secs $(($(now_ms) - t0)))")")
	echo "--- $name: $note"
	((rc == 0)) || failed=1
	return $rc
}

# The output of the last step run.
last_out() { tail -n +"$GC_LAST_FROM" "$GC_LAST_LOG"; }

print_table() {
	echo
	echo "==== gpu-check summary: $(secs $(($(now_ms) - GC_START))) s of a $(secs "$GC_BUDGET_MS") s budget; logs in $GC_LOGS ===="
	printf '%-30s %8s  %-44s %7s\n' step cap result took
	printf '%s\n' "${table[@]}"
	if [ -s "$GC_ROWS" ]; then
		echo
		echo "rows (the last of each name; a row printed again later, filled, replaces the first):"
		# Each row by its step and name, the last version kept, in the order first seen.
		awk -F' [|] ' '/\] row: /{k=$1; if(!(k in seen)){order[++n]=k}; seen[k]=$0; next}
			{other[++m]=$0}
			END{for(i=1;i<=n;i++) print seen[order[i]]; for(i=1;i<=m;i++) print other[i]}' "$GC_ROWS"
	fi
	[ -n "${gpu_line:-}" ] && echo "gpu: $gpu_line"
}

# ---- the bundled libraries -------------------------------------------------------------------
# bench/gpu-prepare.sh packs them (they would not travel unpacked).
# Unpacked for this run only, and removed at its end: left there, the folder would no longer
# travel (49 MiB unpacked).
if [ -f "$GC_BUILD/device-lib.tar.xz" ] && [ ! -d "$GC_BUILD/device-lib" ]; then
	tar -C "$GC_BUILD" -xJf "$GC_BUILD/device-lib.tar.xz" ||
		{ echo "gpu-check: cannot unpack $GC_BUILD/device-lib.tar.xz" >&2; exit 1; }
	trap 'rm -rf "$GC_BUILD/device-lib"' EXIT
fi
# device-env.sh is sourced in a child shell, and only the library path comes back: whatever
# else it sets (an older one reassigned $here) cannot touch this script's variables.
if [ -f "$GC_BUILD/device-env.sh" ]; then
	ld=$(host_env bash -c 'source "$1" >&2 && printf "%s" "${LD_LIBRARY_PATH-}"' _ "$GC_BUILD/device-env.sh" 2>>"$GC_LOGS/info.log")
	export LD_LIBRARY_PATH=$ld
else
	echo "no $GC_BUILD/device-env.sh (run ../shared/device/bundle.sh there where it was built)" >>"$GC_LOGS/info.log"
fi
# The image's own programs (python3 with PyTorch, through swarm-gpu-bench's torch row) get the
# path as it was (swarm-gpu-bench reads this; empty there means: no LD_LIBRARY_PATH).
export SWARM_HOST_LD_LIBRARY_PATH=$GC_HOST_LD

echo "gpu-check: budget $GC_BUDGET s at scale $GC_SCALE%; caps: $(for s in "${GC_ORDER[@]}"; do printf '%s %ss, ' "$s" "$(secs "$(scaled "${CAP[$s]}")")"; done)tests each binary <= $(secs "$(scaled $GC_TEST_CAP)")s, torch <= $(secs "$(scaled $GC_TORCH_TIMEOUT)")s; logs in $GC_LOGS"

# ---- 1. the facts ------------------------------------------------------------------------------
step facts "$(scaled "${CAP[facts]}")" "$GC_LOGS/info.log" env GC_FACTS_CHILD=1 bash "$GC_SELF" "$GC_BUILD"
# The gate's answer, from the facts (cuda-gate --info ends with it), else asked again.
gpu_line=$(last_out | grep -E '^(cuda: [0-9]+ GPU|SKIP: )' | tail -n 1)
[ -n "$gpu_line" ] || gpu_line=$(timeout "$(secs "$(scaled 20)")" "$GC_BIN/cuda-gate" 2>&1 | tail -n 1)
echo "cuda-gate: $gpu_line"
if [[ $gpu_line != cuda:* ]]; then
	table+=("$(printf '%-30s %s' GPU "NONE: $gpu_line")")
	step "swarm-gpu-bench (skip path)" "$(scaled 20)" "$GC_LOGS/gpu-bench.log" "$GC_BIN/swarm-gpu-bench"
	step "swarm-bench gpu rows (skip path)" "$(scaled 30)" "$GC_LOGS/gpu-roundtrip.log" \
		"$GC_BIN/swarm-bench" --cases gpu-identity,gpu-ranker
	print_table
	echo "gpu-check: no GPU here, so nothing was measured and no CUDA test ran (exit 2)."
	exit 2
fi

# ---- 2. the benchmarks that answer the open questions ------------------------------------------
torch_s=$(($(scaled $GC_TORCH_TIMEOUT) / 1000))
step "h2d+load" "$(scaled "${CAP[h2d+load]}")" "$GC_LOGS/gpu-bench.log" \
	"$GC_BIN/swarm-gpu-bench" --only h2d,load --torch "$GC_TORCH" --torch-timeout "$((torch_s > 0 ? torch_s : 1))" \
	--dir "${GPU_CHECK_DIR:-$GC_BUILD}"
# Full counts on the GPU (100000 calls a side); --json keeps every figure. swarm-bench starts
# its swarmd --devices gpu from beside itself, so a carried build folder works. A GPU row it
# reports skipped although the gate found a GPU is a failure of the check, not a result.
for c in identity ranker; do
	step "rt $c" "$(scaled "${CAP[rt $c]}")" "$GC_LOGS/gpu-roundtrip.log" \
		"$GC_BIN/swarm-bench" --cases "gpu-$c" --json "$GC_LOGS/gpu-roundtrip-$c.json"
	if last_out | grep -q ": skipped: "; then
		table+=("$(printf '%-30s %s' "rt $c" 'SKIPPED although cuda-gate found a GPU: FAILED')")
		failed=1
	fi
done
step gather "$(scaled "${CAP[gather]}")" "$GC_LOGS/gpu-bench.log" "$GC_BIN/swarm-gpu-bench" --only gather

# ---- 3. the CUDA test suites: their GPU halves (CI runs the rest), each binary capped -------------
# The binaries run directly with the CRITERION_TEST_PATTERN each ctest entry of
# tests/CMakeLists.txt sets: a carried folder's CTestTestfile.cmake names the build machine's
# paths. Every test_kernels_cuda[_X] binary holds a suite kernels_cuda[_X]_gpu; a new one is
# picked up without an edit here. The whole op table against the CPU goes first.
jobs=$(nproc)
((jobs > 8)) && jobs=8
tests_end=$(($(now_ms) + $(scaled "${CAP[tests]}")))
run_test() { # NAME PATTERN BINARY ARGS...
	local name=$1 pat=$2 left
	shift 2
	left=$((tests_end - $(now_ms)))
	local cap=$(($(scaled $GC_TEST_CAP) < left ? $(scaled $GC_TEST_CAP) : left))
	if [ ! -x "$1" ]; then
		table+=("$(printf '%-30s %7s   %s' "$name" - "not built (no $1)")")
		return
	fi
	step "$name" "$cap" "$GC_LOGS/tests.log" env CRITERION_TEST_PATTERN="$pat" "$@" --verbose -j"$jobs"
}
run_test test_kernels_backend_ops_gpu 'kernels_backend_ops_cuda/*' "$GC_BIN/test_kernels_backend_ops"
for t in "$GC_BIN"/test_kernels_cuda*; do
	[ -x "$t" ] || continue
	suite=${t##*/test_}
	run_test "test_${suite}_gpu" "${suite}_gpu/*" "$t"
done

# ---- 4. for reference, the CPU's round trips -------------------------------------------------
step "cpu ref" "$(scaled "${CAP[cpu ref]}")" "$GC_LOGS/cpu-bench.log" \
	"$GC_BIN/swarm-bench" --cases spin,overhead --quick

print_table
exit $failed
