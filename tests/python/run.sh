#!/usr/bin/env bash
# run.sh: the Python client's tests (tests/python) with pytest, as ctest runs them.
#
#   tests/python/run.sh BUILD_DIR [pytest arguments...]
#
# Installs pytest (and numpy) into ${SWARM_CACHE:-~/.cache/swarm}/pylib where python3 lacks
# them (tools/install-pydeps.sh --test), then runs pytest under `python3 -X dev` (so that a
# view outliving its memory would show as a crash or a warning, not pass quietly) against
# BUILD_DIR's libswarm and swarmd. pytest missing after that is a failure, never a skip.
# The examples' and the benchmark's tests (test_examples*.py, test_bench*.py) have their own
# ctest entries and are left out here.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
BUILD=$(readlink -f "${1:?usage: tests/python/run.sh BUILD_DIR [pytest args]}")
shift
PY=${PYTHON:-python3}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
export PYTHONPATH=$CACHE/pylib${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1

if ! "$PY" -c "import pytest, numpy" 2>/dev/null; then
	PYTHON=$PY "$ROOT/tools/install-pydeps.sh" --test
fi
if ! "$PY" -c "import pytest" 2>/dev/null; then
	echo "tests/python: pytest cannot be imported by $PY even after tools/install-pydeps.sh" >&2
	exit 1
fi
export SWARM_BUILD_DIR=$BUILD
# A sanitizer build's libswarm needs the ASan runtime loaded first (ctest sets this there).
if [[ -n ${SWARM_PY_PRELOAD:-} ]]; then
	export LD_PRELOAD=$SWARM_PY_PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}
fi
cd "$ROOT/tests/python"
exec "$PY" -X dev -m pytest -p no:cacheprovider -ra \
	--ignore-glob='test_examples*' --ignore-glob='test_bench*' "$@"
