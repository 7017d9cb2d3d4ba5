#!/usr/bin/env bash
# run.sh: `swarm import onnx` and `swarm run` end to end, every output against ONNX Runtime.
#
#   tests/onnx/run.sh [BUILD_DIR]      (default: build)
#
# 1. Fetches the rapidocr wheel (PyPI, about 27 MB) into ${SWARM_CACHE:-$HOME/.cache/swarm}
#    once and unpacks its two pretrained models (tools/fetch-rapidocr.sh); installs numpy,
#    onnx, onnxruntime and pillow into ${SWARM_CACHE}/pylib where python3 lacks them
#    (tools/install-pydeps.sh --test).
# 2. Refusals: every file and command line of the broken corpus (tests/onnx/broken.py) is
#    refused with its exit status and the words it must say, and nothing is published.
# 3. Imports the small exporter-style models of tests/onnx/zoo.py and both rapidocr models,
#    serves them with BUILD_DIR/bin/swarmd --devices cpu:1, runs each with `swarm run` on its
#    inputs (rendered text for rapidocr: tests/onnx/make_inputs.py), and compares every output
#    with ONNX Runtime on one CPU thread (tests/onnx/compare.py): relative error
#    max|swarm - ort| / max|ort| at most 1e-4. The classifier must also call the upright line
#    upright and the turned one turned, and the detector find every line of the page.
# 4. `swarm run`'s own errors (an unknown input, a wrong dtype or shape, a missing input) name
#    the input and what the model expects; --repeat with --json prints p50_ns and p99_ns.
#
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
BUILD=$(readlink -f "${1:-build}" 2>/dev/null || true)
[[ -n $BUILD && -d $BUILD ]] || BUILD=$ROOT/${1:-build}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
PY=${PYTHON:-python3}
TOL=1e-4
DET_SIZE=320x448 # H x W: not square, so that a swapped H and W shows
PAGE_LINES=4     # the lines of text tests/onnx/make_inputs.py renders on its page
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

# shellcheck source=../lib/check.sh
. "$ROOT/tests/lib/check.sh"
log() { echo "onnx: $*"; }
die() {
	echo "onnx: $*" >&2
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}

# judge WHAT RC WANT SAYS WORDS...: a refusal that exits WANT and whose $TMP/err holds every
# word passes (saying SAYS), else fails showing the output.
judge()
{
	local what=$1 rc=$2 want=$3 says=$4 w missing=""
	shift 4
	for w in "$@"; do
		grep -qF -- "$w" "$TMP/err" || missing+=" [$w]"
	done
	if [[ $rc == "$want" && -z $missing ]]; then
		ok "$what: $says"
	else
		bad "$what: exit $rc (expected $want), missing words:${missing:- none}"
		sed 's/^/        | /' "$TMP/err"
	fi
}

TMP=""
# shellcheck source=tests/lib/serve.sh
. "$ROOT/tests/lib/serve.sh"
trap serve_cleanup EXIT
trap 'exit 130' INT TERM

for b in swarm swarmd; do
	[[ -x $BUILD/bin/$b ]] || die "$BUILD/bin/$b is missing: build first (cmake --build $BUILD)"
done
SWARM=$BUILD/bin/swarm

# ---- 1. the models and the Python packages --------------------------------------------------
MODELS=$("$ROOT/tools/fetch-rapidocr.sh") || die "cannot fetch the rapidocr models"
"$ROOT/tools/install-pydeps.sh" --test || die "cannot install the Python packages"
export PYTHONPATH=$CACHE/pylib${PYTHONPATH:+:$PYTHONPATH}

TMP=$(mktemp -d /tmp/swarm-onnx-XXXXXX)
REG=$TMP/registry
"$SWARM" registry --registry "$REG" init >/dev/null || die "registry init failed"

# ---- 2. refusals ------------------------------------------------------------------------------
log "refusals: the broken corpus (tests/onnx/broken.py)"
"$PY" "$ROOT/tests/onnx/broken.py" "$TMP/broken/models" || die "tests/onnx/broken.py failed"
while IFS='|' read -r file args want phrases; do
	rc=0
	# shellcheck disable=SC2086 # args are words
	"$SWARM" import onnx "$file" --name broken --registry "$REG" $args >"$TMP/err" 2>&1 || rc=$?
	IFS=';' read -r -a words <<<"$phrases"
	judge "$(basename "$file")${args:+ $args}" "$rc" "$want" \
		"refused (exit $rc): $(grep -v '^[0-9]* of' "$TMP/err" | head -1 | cut -c1-110)" \
		"${words[@]}"
done <"$TMP/broken/models/cases.txt"
if "$SWARM" registry --registry "$REG" list 2>/dev/null | grep -q '^broken '; then
	bad "a refused model was published"
else
	ok "nothing of the broken corpus was published"
fi

# ---- 3. import, serve, run, compare --------------------------------------------------------------
log "import: the exporter-style zoo (tests/onnx/zoo.py) and the rapidocr models"
"$PY" "$ROOT/tests/onnx/zoo.py" "$TMP/zoo" || die "tests/onnx/zoo.py failed"
"$PY" "$ROOT/tests/onnx/make_inputs.py" "$TMP/in" --det-size "$DET_SIZE" ||
	die "tests/onnx/make_inputs.py failed"
H=${DET_SIZE%x*} W=${DET_SIZE#*x}
CASES=$TMP/cases.txt
cp "$TMP/zoo/cases.txt" "$CASES"
cp "$MODELS/ch_ppocr_mobile_v2.0_cls_mobile.onnx" "$TMP/zoo/cls.onnx"
cp "$MODELS/PP-OCRv6_det_small.onnx" "$TMP/zoo/det.onnx"
echo "cls|--input x=1x3x48x192|x=$TMP/in/cls_x.npy" >>"$CASES"
echo "det|--input x=1x3x${H}x${W}|x=$TMP/in/det_x.npy" >>"$CASES"

while IFS='|' read -r name args _; do
	# shellcheck disable=SC2086
	if "$SWARM" import onnx "$TMP/zoo/$name.onnx" --check $args >"$TMP/check" 2>&1; then
		ok "$name: --check: $(tail -1 "$TMP/check")"
	else
		bad "$name: --check refused it"
		sed 's/^/        | /' "$TMP/check"
	fi
	# shellcheck disable=SC2086
	if "$SWARM" import onnx "$TMP/zoo/$name.onnx" --name "$name" --registry "$REG" --activate \
		--max-rows 2 $args >"$TMP/import" 2>&1; then
		ok "$name: imported: $(head -1 "$TMP/import" | sed 's/^[^:]*: //')"
	else
		bad "$name: import failed"
		sed 's/^/        | /' "$TMP/import"
	fi
done <"$CASES"

# The fusions model's rewrites, node by node: each pattern folded or fused, and the three that
# must stay (an Add along W, an Add of a tensor read twice, a Mul after a grouped
# ConvTranspose) kept.
if "$SWARM" import onnx "$TMP/zoo/fusions.onnx" --name fusions --out "$TMP/fusions" \
	--no-publish >"$TMP/import" 2>&1 && "$PY" - "$TMP/fusions/fusions.json" >"$TMP/cmp" 2>&1 <<'EOF'
import json, sys
got = [n["op"] + ("+" + n["act"] if n.get("act") else "")
       for n in json.load(open(sys.argv[1]))["graph"]["nodes"]]
want = ["conv2d", "add", "hardswish", "conv2d+hardswish", "conv2d+gelu", "conv2d", "add", "add",
        "conv_transpose2d+relu", "conv_transpose2d", "conv_transpose2d", "mul"]
if got != want:
    sys.exit("the fusions model became %s, not %s" % (got, want))
EOF
then
	ok "fusions: every rewrite made, the three that must stay kept"
else
	bad "fusions: the rewrites differ"
	sed 's/^/        | /' "$TMP/import" "$TMP/cmp"
fi

serve_start "$REG" --devices cpu:1

log "run: every output of swarm run against ONNX Runtime (relative error <= $TOL)"
while IFS='|' read -r name _ ins; do
	run=() cmp=()
	for i in $ins; do
		run+=(--in "$i")
		cmp+=(--in "$i")
	done
	case $name in
	cls) cmp+=(--expect-class 0=0 --expect-class 1=1) ;;
	det) cmp+=(--expect-bands "$PAGE_LINES") ;;
	esac
	if ! timeout 120 "$SWARM" run "$name" --socket "$TMP/swarmd.sock" "${run[@]}" \
		--out "$TMP/out/$name" >"$TMP/run" 2>&1; then
		bad "$name: swarm run failed"
		sed 's/^/        | /' "$TMP/run" "$TMP/swarmd.log" | tail -20
		continue
	fi
	"$PY" "$ROOT/tests/onnx/compare.py" "$TMP/zoo/$name.onnx" "${cmp[@]}" \
		--got "$TMP/out/$name" --tol "$TOL" --label "$name" >"$TMP/cmp" 2>&1 || true
	grep -E '^  (ok|FAIL)' "$TMP/cmp" || sed 's/^/        | /' "$TMP/cmp"
	p=$(tail -1 "$TMP/cmp" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
	if [[ -n $p ]]; then
		passed=$((passed + ${p% *}))
		failed=$((failed + ${p#* }))
	else
		bad "$name: tests/onnx/compare.py did not finish"
	fi
done <"$CASES"

# ---- 4. swarm run's errors and its timing -----------------------------------------------------
log "swarm run: errors name the input and the spec; --repeat --json"
"$PY" - "$TMP/in" <<'EOF'
import sys, numpy as np
d = sys.argv[1]
np.save(d + "/i64.npy", np.zeros((1, 3, 48, 192), np.int64))
np.save(d + "/shape.npy", np.zeros((1, 3, 48, 191), np.float32))
EOF
# expect_run WHAT EXIT WORDS... -- ARGS...: swarm run ARGS exits EXIT saying every word
expect_run()
{
	local what=$1 want=$2 words=() rc=0
	shift 2
	while [[ $1 != -- ]]; do
		words+=("$1")
		shift
	done
	shift
	"$SWARM" run "$@" --socket "$TMP/swarmd.sock" --out "$TMP/out/err" >"$TMP/err" 2>&1 || rc=$?
	judge "$what" "$rc" "$want" "exit $rc: $(head -1 "$TMP/err" | cut -c1-120)" "${words[@]}"
}
expect_run "an unknown input" 2 "nosuch" "x float32 [-1, 3, 48, 192]" -- cls --in nosuch=x.npy
expect_run "a wrong dtype" 2 "input x" "int64" "float32 [-1, 3, 48, 192]" -- \
	cls --in "x=$TMP/in/i64.npy"
expect_run "a wrong shape" 2 "input x" "(1, 3, 48, 191)" "[-1, 3, 48, 192]" -- \
	cls --in "x=$TMP/in/shape.npy"
expect_run "a missing input" 2 "input ids" "int64 [-1, 4]" "--in ids=" -- \
	misc --in "x=$TMP/zoo/misc.x.npy"
expect_run "a file that is not .npy" 2 "input x" "not a .npy file" -- \
	cls --in "x=$TMP/zoo/cls.onnx"
expect_run "an unknown model" 1 "nosuchmodel" -- nosuchmodel --in "x=$TMP/in/cls_x.npy"

if "$SWARM" run cls --socket "$TMP/swarmd.sock" --in "x=$TMP/in/cls_x.npy" --repeat 20 --json \
	--out "$TMP/out/json" >"$TMP/json" 2>&1 &&
	"$PY" - "$TMP/json" <<'EOF'; then
import json, os, sys
j = json.load(open(sys.argv[1]))
assert j["p50_ns"] > 0 and j["p99_ns"] >= j["p50_ns"], j
path = j["outputs"]["save_infer_model/scale_0.tmp_1"]
assert os.path.basename(path) == "save_infer_model_scale_0.tmp_1.npy", path
assert os.path.isfile(path), path
print("p50 %.1f us, p99 %.1f us over %d runs" % (j["p50_ns"] / 1e3, j["p99_ns"] / 1e3,
                                                  j["repeat"]))
EOF
	ok "--repeat 20 --json: one object with p50_ns, p99_ns and the outputs' files (an unsafe output name made safe)"
else
	bad "--repeat 20 --json"
	sed 's/^/        | /' "$TMP/json"
fi

echo "$passed passed, $failed failed"
((failed == 0))
