#!/usr/bin/env bash
# onnx-prepare.sh: the models of swarm-bench's onnx case, in DIR (default
# ${SWARM_CACHE:-~/.cache/swarm}/onnx-bench, where swarm-bench looks):
#   NAME.onnx, NAME.json + NAME.safetensors (swarm import onnx --out DIR --no-publish),
#   NAME.x.npy (8 rows of real input: rendered text lines and pages), models.txt
# for the rapidocr text-direction classifier (cls, 3x48x192) and text detector (det, at
# 3x320x448). Fetches the rapidocr wheel and onnx/onnxruntime/pillow into the cache once.
#
#   bench/onnx-prepare.sh [DIR] [BUILD_DIR]      (BUILD_DIR default: build)
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
DIR=${1:-$CACHE/onnx-bench}
BUILD=${2:-$ROOT/build}
PY=${PYTHON:-python3}
ROWS=8
DET=320x448

[[ -x $BUILD/bin/swarm ]] || {
	echo "onnx-prepare: $BUILD/bin/swarm is missing: build first" >&2
	exit 1
}
MODELS=$("$ROOT/tools/fetch-rapidocr.sh")
"$ROOT/tools/install-pydeps.sh" --test
export PYTHONPATH=$CACHE/pylib${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$DIR"
cp "$MODELS/ch_ppocr_mobile_v2.0_cls_mobile.onnx" "$DIR/cls.onnx"
cp "$MODELS/PP-OCRv6_det_small.onnx" "$DIR/det.onnx"
"$BUILD/bin/swarm" import onnx "$DIR/cls.onnx" --name cls --input x=1x3x48x192 \
	--max-rows $ROWS --out "$DIR" --no-publish
"$BUILD/bin/swarm" import onnx "$DIR/det.onnx" --name det --input "x=1x3x${DET/x/x}" \
	--max-rows $ROWS --out "$DIR" --no-publish
"$PY" "$ROOT/tests/onnx/make_inputs.py" "$DIR/inputs" --det-size "$DET" --rows $ROWS
mv "$DIR/inputs/cls_x.npy" "$DIR/cls.x.npy"
mv "$DIR/inputs/det_x.npy" "$DIR/det.x.npy"
rmdir "$DIR/inputs"
printf 'cls\ndet\n' >"$DIR/models.txt"
echo "onnx-prepare: $DIR is ready: build/bin/swarm-bench --cases onnx --onnx $DIR"
