#!/usr/bin/env bash
# test_gpu_check.sh: bench/gpu-check.sh run here, with no GPU, over a build folder of stub
# programs, so that the first run on a lent GPU is not the first run of the harness.
#
#   tests/bench/test_gpu_check.sh [SOURCE_DIR]
#
# The stubs succeed, fail, hang past their caps (with a child of their own), print rows before
# they are cut off, and report a platform's refusal; the folder's device-env.sh reassigns the
# variables a caller might use (as an old one reassigned $here). GPU_CHECK_SCALE runs every
# cap at a few percent of its size. Checked: the budget holds; the caps are printed and add up
# to at most the budget; rows printed before a step was killed are in $OUT and the table; the
# torch script is found; python3 gets the host's library path, not the bundled one; each step
# says ok, FAILED, TIMED OUT or unsupported here; nothing a killed step started survives; the
# exit status; and the no-GPU path (exit 2).
set -uo pipefail # no -e: every check below reports, then checks_done decides
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
check=$src/bench/gpu-check.sh
work=$(mktemp -d /tmp/swarm-gpu-check-test.XXXXXX) || exit 1
cleanup() {
	pkill -KILL -f '^sleep 30(01|02)$' 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/bench/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

fake=$work/build-gpu
mkdir -p "$fake/bin" "$fake/device-lib" "$work/path" "$work/out" || exit 1
# Packed, as bench/gpu-prepare.sh leaves it: unpacked for the run, removed after it.
echo stub >"$fake/device-lib/libstub.so.1"
tar -C "$fake" -cJf "$fake/device-lib.tar.xz" device-lib && rm -rf "$fake/device-lib" || exit 1
stub() { # NAME BODY: a bash program in the fake build's bin/
	printf '#!/usr/bin/env bash\n%s\n' "$2" >"$fake/bin/$1"
	chmod +x "$fake/bin/$1"
}

# ---- the build folder ------------------------------------------------------------------------
cat >"$fake/device-env.sh" <<EOF
# A hostile device-env.sh: it reassigns what a caller might name its own.
here=$work/nowhere build=$work/nowhere bin=$work/nowhere logs=$work/nowhere
GC_TORCH=/nowhere GC_BIN=/nowhere GC_BENCH_DIR=/nowhere budget=1 start=0 table=
export SWARM_HOST_LD_LIBRARY_PATH=/clobbered
export LD_LIBRARY_PATH="$fake/device-lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "device-env: libcublas.so.13 in /stub" >&2
EOF
echo "CMAKE_CACHEFILE_DIR:INTERNAL=/elsewhere/build-gpu" >"$fake/CMakeCache.txt"

stub cuda-gate '
if [ "${1:-}" = --info ]; then echo "libcublas.so.13: /stub/libcublas.so.13 (the loader'"'"'s path)"; fi
if [ -n "${STUB_NO_GPU:-}" ]; then echo "SKIP: no CUDA GPU on this machine (stub)"; exit 77; fi
echo "cuda: 1 GPU(s)"'

# h2d+load: two rows and a refusal, then a hang (with a child) past the step cap.
stub swarm-gpu-bench '
case "$*" in
*"--only h2d,load"*)
	torch=
	while (($#)); do [ "$1" = --torch ] && torch=$2; shift; done
	if [ -r "$torch" ] && [ "${torch##*/}" = gpu_load_torch.py ]; then
		echo "row: torch script | found | $torch | ok"
	else
		echo "row: torch script | MISSING | $torch | FAILED"
	fi
	echo "row: h2d session segment (registered) | 25.10 GB/s (median 24.90) | malloc-host 25.30, pageable 12.00 GB/s | 99% of malloc-host, 2.09x pageable"
	echo "unsupported here: O_DIRECT refused by the filesystem (Invalid argument): pread"
	echo "row: load 4.0 GiB mmap | 0.400 s, 10.74 GB/s | 42% of pinned 25.30 GB/s | 80% pinned MISSED, 3x torch pending"
	sleep 3001 &
	sleep 3001
	;;
*"--only gather"*)
	echo "row: batch gather 16 sessions | copies won 6 of 6 (40 us sum) | old memcpy gather + upload: 90 us sum | faster than old; default copies: keep"
	;;
*)
	echo "swarm-gpu-bench: skipped: no GPU (stub)"
	;;
esac'

stub swarm-bench '
case "$*" in
*gpu-identity,gpu-ranker*)
	echo "swarm-bench: GPU identity 64B b1 overhead: skipped: no GPU (stub)"
	echo "swarm-bench: GPU ranker b1 overhead: skipped: no GPU (stub)" ;;
*gpu-identity*)
	echo "row: GPU identity 64B b1 overhead | swarm p50 9000 ns, p99 12000 ns | in-process p50 8000 ns, p99 9000 ns | added 1000 ns at p50: MET (<= 2 us)" ;;
*gpu-ranker*)
	echo "swarm-bench: failed: Input/output error"
	exit 1 ;;
*spin,overhead*)
	echo "64B spin  ns 271 390" ;;
esac'

# The test binaries, as Criterion prints them.
synth() { echo "[====] Synthesis: Tested: $1 | Passing: $2 | Failing: $3 | Crashing: 0"; }
stub test_kernels_backend_ops '
[ "$CRITERION_TEST_PATTERN" = "kernels_backend_ops_cuda/*" ] || { echo "wrong pattern $CRITERION_TEST_PATTERN"; exit 3; }
echo "'"$(synth 38 38 0)"'"'
stub test_kernels_cuda '
[ "$CRITERION_TEST_PATTERN" = "kernels_cuda_gpu/*" ] || { echo "wrong pattern $CRITERION_TEST_PATTERN"; exit 3; }
echo "'"$(synth 2 2 0)"'"'
stub test_kernels_cuda_device '
echo "[FAIL] kernels_cuda_device_gpu::table_and_memory_round_trip: (0.01s)"
echo "'"$(synth 9 8 1)"'"
exit 1'
stub test_kernels_cuda_share '
echo "[SKIP] kernels_cuda_share_gpu::import_refuses_a_bad_fd_and_a_larger_size: unsupported here: alloc_shared: cuMemCreate failed: CUDA_ERROR_NOT_SUPPORTED"
echo "'"$(synth 4 4 0)"'"'
stub test_kernels_cuda_stream '
sleep 3002 &
sleep 3002'

# ---- programs of the image, first on PATH -----------------------------------------------------
cat >"$work/path/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
case "$*" in
-L) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-stub)" ;;
*) echo "name, driver_version"; echo "NVIDIA H100 80GB HBM3, 580.00" ;;
esac
EOF
cat >"$work/path/python3" <<EOF
#!/usr/bin/env bash
echo "\${LD_LIBRARY_PATH-<unset>}" >>"$work/python-env.txt"
echo "torch 2.11.0 CUDA 13.0 safetensors 0.6 GPU True"
EOF
chmod +x "$work/path/"*

# ---- the run ----------------------------------------------------------------------------------
scale=8
budget_ms=$((360 * 10 * scale))
t0=$(date +%s%3N)
(cd "$work" && env PATH="$work/path:$PATH" LD_LIBRARY_PATH=/host/lib OUT="$work/out" \
	GPU_CHECK_SCALE=$scale bash "$check" build-gpu) >"$work/run.txt" 2>&1
rc=$?
took=$(($(date +%s%3N) - t0))
echo "--- gpu-check over the stubs: exit $rc in $took ms (budget $budget_ms ms); its output:"
cat "$work/run.txt"
echo "---"
run=$work/run.txt

[ $rc -eq 1 ] && ok "exit 1: steps failed" || bad "exit $rc, want 1"
# The budget holds: the steps' caps add up to it; the unpacking and the table are outside.
((took <= budget_ms + 3000)) && ok "took $took ms, within the budget of $budget_ms ms" ||
	bad "took $took ms, over the budget of $budget_ms ms"
caps=$(grep -o 'caps: .*' "$run" | head -n 1)
sum=$(grep -oE '[a-z+ ]+ [0-9]+\.[0-9]+s,' <<<"${caps%%tests each*}" | grep -oE '[0-9]+\.[0-9]+' |
	awk '{s += $1 * 1000} END {printf "%d", s}')
[ -n "$caps" ] && ((sum > 0 && sum <= budget_ms)) && ok "caps printed, $sum ms in all <= $budget_ms" ||
	bad "caps not printed or over the budget: '$caps' ($sum ms)"

# Rows printed before the h2d+load step was killed: in $OUT's log, in rows.txt, in the table.
expect "a killed step's rows are in its log" "$work/out/gpu-bench.log" '^row: load 4\.0 GiB mmap'
expect "a killed step's rows are in rows.txt" "$work/out/rows.txt" '^\[h2d\+load\] row: h2d session segment'
table=$(sed -n '/^==== gpu-check summary/,$p' "$run")
[ -n "$table" ] && ok "the summary table prints" || bad "no summary table"
printf '%s\n' "$table" >"$work/table.txt"
expect "the table comes last" "$work/table.txt" '^gpu: cuda: 1 GPU'
expect "the table holds the killed step's rows" "$work/table.txt" '\[h2d\+load\] row: load 4\.0 GiB mmap \|'
expect "the table holds the refusal" "$work/table.txt" '\[h2d\+load\] unsupported here: O_DIRECT refused'
expect "h2d+load ran past its cap" "$work/table.txt" '^h2d\+load .*TIMED OUT at its cap'
expect "the torch script is found despite device-env.sh" "$work/out/gpu-bench.log" '^row: torch script \| found \| '"$src"'/bench/gpu_load_torch.py'
expect "the facts say where the torch script is" "$work/out/info.log" 'torch script: '"$src"'/bench/gpu_load_torch.py \(found\)'
expect "the facts have the libraries' places" "$work/out/info.log" 'libcublas.so.13: /stub/libcublas.so.13'
expect "rt identity ok" "$work/table.txt" '^rt identity +[0-9.]+s +ok'
expect "its row is in the table" "$work/table.txt" '\[rt identity\] row: GPU identity 64B b1 overhead'
expect "rt ranker failed" "$work/table.txt" '^rt ranker .*FAILED \(exit 1\)'
expect "gather ok after two failures" "$work/table.txt" '^gather +[0-9.]+s +ok'
expect "backend ops: patterns and counts" "$work/table.txt" '^test_kernels_backend_ops_gpu .*ok; 38 tests, 38 passed, 0 failed'
expect "a failing test binary" "$work/table.txt" '^test_kernels_cuda_device_gpu .*FAILED \(exit 1\); 9 tests, 8 passed, 1 failed'
expect "a refusal is not a failure" "$work/table.txt" '^test_kernels_cuda_share_gpu .*ok; 4 tests, 4 passed, 0 failed, 0 crashed; 1 unsupported here'
expect "a hanging test binary is cut at its cap" "$work/table.txt" '^test_kernels_cuda_stream_gpu .*TIMED OUT at its cap'
expect "the CPU reference runs after a hang" "$work/table.txt" '^cpu ref +[0-9.]+s +ok'
if grep -q 'device-lib\|clobbered' "$work/python-env.txt" 2>/dev/null; then
	bad "python3 got the bundled library path: $(cat "$work/python-env.txt")"
elif [ "$(sort -u "$work/python-env.txt")" = /host/lib ]; then
	ok "python3 got the host's library path"
else
	bad "python3 got '$(cat "$work/python-env.txt" 2>/dev/null)', want /host/lib"
fi
expect "the bundled libraries were unpacked for the run" "$work/out/info.log" "^LD_LIBRARY_PATH=$fake/device-lib:/host/lib\$"
[ ! -e "$fake/device-lib" ] && ok "and removed after it (the folder must still travel)" ||
	bad "device-lib was left unpacked in the build folder"
sleep 0.2
if pgrep -f '^sleep 30(01|02)$' >/dev/null; then
	bad "a killed step's child survived: $(pgrep -af '^sleep 30(01|02)$')"
else
	ok "nothing a killed step started survives"
fi

# ---- no GPU: nothing measured, exit 2 -----------------------------------------------------------
rm -rf "$work/out2"
(cd "$work" && env PATH="$work/path:$PATH" STUB_NO_GPU=1 OUT="$work/out2" GPU_CHECK_SCALE=$scale \
	bash "$check" "$fake") >"$work/run2.txt" 2>&1
rc=$?
[ $rc -eq 2 ] && ok "no GPU: exit 2" || { bad "no GPU: exit $rc, want 2"; cat "$work/run2.txt"; }
expect "no GPU: says so" "$work/run2.txt" 'no GPU here, so nothing was measured'
expect "no GPU: the bench's skip path ran" "$work/run2.txt" '^swarm-gpu-bench \(skip path\) .*ok'

# ---- refusals of the script itself -------------------------------------------------------------
msg=$(bash "$check" "$work/no-such-build" 2>&1)
rc=$?
[ $rc -eq 1 ] && [[ $msg == *"no build folder"* ]] && ok "a missing build folder: exit 1, says so" ||
	bad "a missing build folder: exit $rc: $msg"

checks_done test_gpu_check
