#!/usr/bin/env bash
# test_gpu_bench_torch.sh: swarm-gpu-bench's runner of the torch baseline (its load row), with
# no GPU, through --torch-file and a stub in place of python3 and bench/gpu_load_torch.py:
#
#   tests/bench/test_gpu_bench_torch.sh BUILD/bin/swarm-gpu-bench
#
# The child gets $SWARM_HOST_LD_LIBRARY_PATH as its LD_LIBRARY_PATH (none when that is empty,
# the inherited one when it is unset), never the bundled libraries; a script that hangs is
# killed with everything it started at --torch-timeout, and the loads it printed still count;
# a missing script or interpreter, or a failing script, is a "skipped" row saying why.
set -uo pipefail # no -e: every check below reports, then checks_done decides
bench=${1:?usage: test_gpu_bench_torch.sh SWARM_GPU_BENCH}
work=$(mktemp -d /tmp/swarm-gpu-bench-torch.XXXXXX) || exit 1
trap 'pkill -KILL -f "^sleep 3003$" 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=tests/bench/checks.sh
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

# The stub "torch script", run by bash as --python: reports its library path, prints loads.
cat >"$work/torch.sh" <<'EOF'
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH-<unset>} file=$1 loads=$2"
echo "torch_load seconds=1.5 bytes=10"
echo "torch_load seconds=0.5 bytes=10"
case ${MODE:-} in
hang) sleep 3003 & sleep 3003 ;;
fail) exit 3 ;;
esac
echo "torch_load seconds=1.0 bytes=10"
EOF
run() { "$bench" --python bash --torch "$work/torch.sh" --torch-file /the/model --loads 3 "$@" 2>&1; }

out=$(LD_LIBRARY_PATH=/bundled SWARM_HOST_LD_LIBRARY_PATH=/host/lib run)
expect_text "the host's library path" "$out" 'torch: LD_LIBRARY_PATH=/host/lib file=/the/model loads=3'
expect_text "the median of three loads" "$out" '^row: load torch safetensors \| 1\.000 s \(median\) \|  \| median of 3 load'

out=$(LD_LIBRARY_PATH=/bundled SWARM_HOST_LD_LIBRARY_PATH= run)
expect_text "an empty host path: none at all" "$out" 'torch: LD_LIBRARY_PATH=<unset> '

out=$(unset SWARM_HOST_LD_LIBRARY_PATH; LD_LIBRARY_PATH=/plain run)
expect_text "no host path given: the inherited one" "$out" 'torch: LD_LIBRARY_PATH=/plain '

t0=$(date +%s%3N)
out=$(MODE=hang run --torch-timeout 1)
took=$(($(date +%s%3N) - t0))
expect_text "a hanging script is killed at its timeout" "$out" 'torch: killed after 1 s'
expect_text "the loads printed before still count" "$out" '^row: load torch safetensors \| 1\.000 s \(median\) \|  \| killed after 1 s: the median of the 2 load'
((took < 3000)) && ok "killed in $took ms" || bad "took $took ms to kill a 1 s timeout"
sleep 0.2
if pgrep -f '^sleep 3003$' >/dev/null; then bad "the script's child survived"; else ok "its child is gone too"; fi

out=$(MODE=fail run)
expect_text "loads of a failing script still count" "$out" '^row: load torch safetensors \| 1\.000 s \(median\) \|  \| median of 2 load\(s\); the script then failed \(status'
sed -i 's/^echo "torch_load.*//' "$work/torch.sh"
out=$(MODE=fail run)
expect_text "a failing script: skipped, with its status" "$out" '^row: load torch safetensors \| skipped \|  \| the script failed \(status'
out=$(run)
expect_text "a script that prints no load: skipped" "$out" '^row: load torch safetensors \| skipped \|  \| the script printed no result'

out=$("$bench" --python bash --torch "$work/none.sh" --torch-file /the/model 2>&1)
expect_text "a missing script: skipped, saying so" "$out" '\| skipped \|  \| the torch script .*none\.sh: No such file'
out=$("$bench" --python "$work/no-python" --torch "$work/torch.sh" --torch-file /the/model 2>&1)
expect_text "a missing interpreter: skipped, saying so" "$out" '\| skipped \|  \| cannot run .*no-python: No such file'
out=$("$bench" --torch-file /the/model 2>&1)
expect_text "no script given: skipped, saying so" "$out" '\| skipped \|  \| no --torch script given'

checks_done test_gpu_bench_torch
