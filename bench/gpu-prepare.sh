#!/usr/bin/env bash
# gpu-prepare.sh: builds, on this machine (nvcc, no GPU), the folder that bench/gpu-check.sh
# runs over on a lent GPU machine, small enough to travel (the device tool carries at most
# 64 MiB). docs/gpu-check.md says how the two fit together.
#
#   bench/gpu-prepare.sh [OUT]        (default build-gpu; run from the repository root)
#
# It configures and builds build-gpu-full (RelWithDebInfo, as the tests build, with
# CMAKE_CUDA_ARCHITECTURES=90), then makes
# OUT with only what the GPU machine runs: bin/ (debug info stripped; no fuzzers), lib/'s
# shared objects, CMakeCache.txt (gpu-check reads where the build was made), and the Debian
# libraries that machine lacks, found by ../shared/device/bundle.sh and packed as
# device-lib.tar.xz (libopenblas alone is 35 MiB unpacked), which gpu-check.sh unpacks there.
# Exit 1 when something fails or OUT would not travel.
set -euo pipefail
out=${1:-build-gpu}
full=build-gpu-full
limit_mib=60 # under the carry limit of 64 MiB, with room for the working tree's own files
bundle=../shared/device/bundle.sh

[ -f CMakeLists.txt ] && [ -d bench ] || { echo "gpu-prepare: run from the repository root" >&2; exit 1; }
[ -x "$bundle" ] || [ -f "$bundle" ] || { echo "gpu-prepare: no $bundle (the shared device tools)" >&2; exit 1; }
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu-prepare: no nvcc" >&2; exit 1; }

cmake -S . -B "$full" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_C_COMPILER_LAUNCHER=$(command -v ccache || true) -DCMAKE_CUDA_COMPILER_LAUNCHER=$(command -v ccache || true) >/dev/null
cmake --build "$full" -j"$(nproc)"
grep -q '^SWARM_HAVE_CUDA:INTERNAL=1\|swarm: CUDA device 1' "$full/CMakeCache.txt" 2>/dev/null ||
	[ -x "$full/bin/cuda-gate" ] || { echo "gpu-prepare: $full has no CUDA device built in" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for f in "$full"/bin/*; do
	case ${f##*/} in fuzz_*) continue ;; esac
	cp -p "$f" "$out/bin/"
done
cp -P "$full"/lib/*.so* "$out/lib/"
cp "$full/CMakeCache.txt" "$out/"
# Debug info is most of each binary's size; symbols stay for backtraces.
find "$out/bin" "$out/lib" -type f -exec strip --strip-debug {} + 2>/dev/null || true

bash "$bundle" "$out"
[ -f "$out/device-env.sh" ] || { echo "gpu-prepare: bundle.sh wrote no device-env.sh" >&2; exit 1; }
tar -C "$out" -cJf "$out/device-lib.tar.xz" device-lib
rm -rf "$out/device-lib"

mib=$(du -sm "$out" | cut -f1)
echo "gpu-prepare: $out is $mib MiB ($(ls "$out/bin" | wc -l) programs, $(tar -tJf "$out/device-lib.tar.xz" | grep -c '\.so') bundled libraries packed)"
if ((mib > limit_mib)); then
	echo "gpu-prepare: $out is over $limit_mib MiB: it would not travel" >&2
	exit 1
fi
echo "gpu-prepare: now run bench/gpu-check.sh $out on the GPU machine, carrying [\"$out\"]"
