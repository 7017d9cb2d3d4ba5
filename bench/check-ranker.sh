#!/usr/bin/env bash
# check-ranker.sh: the rankers swarm-bench makes in C (bench/ranker.c) are the ones
# tools/make-ranker-model.py writes, for each size the benchmark uses: the same tensor bytes
# in the weights file, its header and the manifest equal as JSON (the two writers order the
# header's keys differently).
#
#   bench/check-ranker.sh [BUILD_DIR]      (default: build)
#
# Needs python3 (the tool uses the standard library only). The last line is "N passed, N
# failed"; the exit status is non-zero on any difference.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
BUILD=$(readlink -f "${1:-build}" 2>/dev/null || true)
[[ -n $BUILD && -d $BUILD ]] || BUILD=$ROOT/${1:-build}
PY=${PYTHON:-python3}
BENCH=$BUILD/bin/swarm-bench
[[ -x $BENCH ]] || { echo "check-ranker: $BENCH is missing: build first" >&2; exit 1; }

TMP=$(mktemp -d /tmp/swarm-check-ranker-XXXXXX)
trap 'rm -rf -- "$TMP"' EXIT

# Each line: DIR: tools/make-ranker-model.py DIR FLAGS...
"$BENCH" --write-rankers "$TMP/c" >"$TMP/written"
passed=0 failed=0
while IFS= read -r line; do
	dir=${line%%:*}
	flags=${line#*make-ranker-model.py "$dir"}
	flags=${flags# }
	name=$(basename "$dir")
	# shellcheck disable=SC2086 # flags are words
	"$PY" "$ROOT/tools/make-ranker-model.py" "$TMP/py/$name" $flags >/dev/null
	# The header is compared as JSON (swarm_st_write sorts its keys, the tool keeps its
	# drawing order), the tensor bytes after it exactly.
	if why=$("$PY" - "$dir/ranker.safetensors" "$TMP/py/$name/ranker.safetensors" <<'PYEOF'
import json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack_from("<Q", raw)[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]
(ha, da), (hb, db) = load(sys.argv[1]), load(sys.argv[2])
if ha != hb:
    print("headers differ at %s" % [k for k in sorted(set(ha) | set(hb)) if ha.get(k) != hb.get(k)][:5])
    sys.exit(1)
if da != db:
    at = next(i for i in range(min(len(da), len(db))) if da[i] != db[i]) if len(da) == len(db) else -1
    print("tensor bytes differ (%d and %d bytes, first at %d)" % (len(da), len(db), at))
    sys.exit(1)
print("%d tensors, %d bytes" % (len(ha), len(da)))
PYEOF
	); then
		echo "  ok    $name: ranker.safetensors: the same header and tensor bytes ($why; flags: ${flags:-none})"
		passed=$((passed + 1))
	else
		echo "  FAIL  $name: ranker.safetensors: $why"
		failed=$((failed + 1))
	fi
	if "$PY" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
		"$dir/ranker.json" "$TMP/py/$name/ranker.json"; then
		echo "  ok    $name: ranker.json equal as JSON"
		passed=$((passed + 1))
	else
		echo "  FAIL  $name: ranker.json differs as JSON"
		diff <("$PY" -m json.tool --sort-keys "$dir/ranker.json") \
			<("$PY" -m json.tool --sort-keys "$TMP/py/$name/ranker.json") | head -20 || true
		failed=$((failed + 1))
	fi
done <"$TMP/written"
[[ $((passed + failed)) -gt 0 ]] || { echo "check-ranker: swarm-bench wrote no ranker" >&2; failed=1; }
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
