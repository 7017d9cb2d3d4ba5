#!/usr/bin/env bash
# install-deps.sh: installs the Debian/Ubuntu packages that swarm's build and tests need, and
# only those that are missing. Safe to run again: with everything present it changes nothing
# and runs no apt-get at all. Needs root, or sudo for apt-get. Never reads stdin.
#
# It does not install CUDA: where /usr/local/cuda/bin/nvcc is missing, the build skips the
# CUDA device (and its tests) and says so.
set -euo pipefail

PACKAGES=(
	build-essential  # gcc, make, libc headers
	cmake
	pkg-config
	liburing-dev     # the worker's io_uring event loop
	libhwloc-dev     # topology and NUMA binding
	hwloc            # lstopo, for looking at the topology by hand
	libjemalloc-dev  # swarmd's and the workers' allocator
	libcriterion-dev # the test suites
	libjansson-dev   # the registry's JSON (safetensors headers, manifests)
	libssl-dev       # SHA-256 of registry blobs (libcrypto)
	libopenblas-dev  # swarm-bench's GEMM baseline
	clang            # the libFuzzer targets (the registry's parsers)
	libclang-rt-14-dev # libFuzzer's runtime for clang 14
	python3          # importers and tools
	python3-pip      # tools/install-pydeps.sh: onnx and numpy for `swarm import onnx`
	procps           # pgrep and pkill: the gpu-check harness test's process checks
	xz-utils         # bench/gpu-prepare.sh packs the bundled libraries with tar -J
	libmicrohttpd-dev # swarmd --metrics: the Prometheus and health endpoints
	libsystemd-dev   # swarmd's sd_notify (Type=notify, watchdog); optional at build time
	systemd          # systemd-analyze: the unit files' verify and security tests
	prometheus       # promtool and a real Prometheus server for the metrics tests
	util-linux       # unshare: the client-in-other-namespaces test
	help2man         # the man pages of swarmd and swarm, made from their --help
	python3-yaml     # tests/deploy/check_manifests.py: the Kubernetes manifests parsed
	python3-venv     # tests/python: `pip install ./python` into a fresh venv, as docs/python.md says
)

installed()
{
	local status
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	[[ $status == "install ok installed" ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
	if ! installed "$pkg"; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#PACKAGES[@]} packages already installed (${PACKAGES[*]})"
else
	echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
	if ((EUID == 0)); then
		sudo=()
	elif command -v sudo >/dev/null 2>&1; then
		# -n: fail rather than prompt, since stdin may not be a terminal.
		sudo=(sudo -n)
	else
		echo "install-deps: not root and no sudo; install these as root: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" </dev/null
	for pkg in "${missing[@]}"; do
		if ! installed "$pkg"; then
			echo "install-deps: $pkg is still not installed" >&2
			exit 1
		fi
	done
	echo "install-deps: installed ${missing[*]}"
fi

if [[ -x /usr/local/cuda/bin/nvcc ]]; then
	echo "install-deps: nvcc found at /usr/local/cuda/bin/nvcc: the CUDA device will be built"
else
	echo "install-deps: no /usr/local/cuda/bin/nvcc: the build skips the CUDA device and its tests (install the CUDA toolkit to build it)"
fi
