#!/usr/bin/env bash
# install-pydeps.sh: the Python packages swarm's tools need, installed with pip into
# ${SWARM_CACHE:-$HOME/.cache/swarm}/pylib (never into the system's Python), and only those
# that python3 cannot import already. `swarm import onnx` and the scripts put that folder on
# PYTHONPATH themselves.
#
#   tools/install-pydeps.sh          numpy and onnx: what `swarm import onnx` needs
#   tools/install-pydeps.sh --demo   also pillow (the demo renders a page and saves a PNG)
#   tools/install-pydeps.sh --test   also pillow and onnxruntime (the reference the ONNX tests
#                                    compare with), and pytest (the Python client's tests,
#                                    tests/python)
#
# The versions are pinned so that every machine compares with the same reference; where a
# pinned wheel does not exist for this Python, the newest release is taken instead, and said.
set -euo pipefail
PY=${PYTHON:-python3}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONPATH=$CACHE/pylib${PYTHONPATH:+:$PYTHONPATH}

# module pip-requirement
WANT=("numpy numpy==2.4.6" "onnx onnx==1.23.2")
if [[ ${1:-} == --test ]]; then
	WANT+=("onnxruntime onnxruntime==1.32.0" "PIL pillow==13.0.0" "pytest pytest==9.2.0")
elif [[ ${1:-} == --demo ]]; then
	WANT+=("PIL pillow==13.0.0")
elif (($#)); then
	echo "usage: tools/install-pydeps.sh [--demo | --test]" >&2
	exit 2
fi

need=()
for w in "${WANT[@]}"; do
	if ! "$PY" -c "import ${w%% *}" 2>/dev/null; then
		need+=("${w#* }")
	fi
done
if ((${#need[@]} == 0)); then
	echo "install-pydeps: ${#WANT[@]} package(s) already importable"
	exit 0
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
	echo "install-pydeps: $PY has no pip (tools/install-deps.sh installs python3-pip)" >&2
	exit 1
fi
mkdir -p "$CACHE/pylib"
echo "install-pydeps: pip install --target $CACHE/pylib ${need[*]}"
if ! "$PY" -m pip install -q --upgrade --only-binary=:all: --target "$CACHE/pylib" "${need[@]}"; then
	loose=("${need[@]%%==*}")
	echo "install-pydeps: the pinned versions failed; trying the newest: ${loose[*]}" >&2
	"$PY" -m pip install -q --upgrade --only-binary=:all: --target "$CACHE/pylib" "${loose[@]}" || {
		echo "install-pydeps: pip install failed" >&2
		exit 1
	}
fi
for w in "${WANT[@]}"; do
	"$PY" -c "import ${w%% *}" || {
		echo "install-pydeps: ${w%% *} still cannot be imported" >&2
		exit 1
	}
done
echo "install-pydeps: installed ${need[*]}"
