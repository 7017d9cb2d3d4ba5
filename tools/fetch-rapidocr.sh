#!/usr/bin/env bash
# fetch-rapidocr.sh: the two pretrained image models of the rapidocr wheel (PyPI, about 27 MB):
# fetches the wheel into ${SWARM_CACHE:-$HOME/.cache/swarm}/pypi once (SHA-256 checked),
# unpacks its ONNX models into ${SWARM_CACHE}/rapidocr-3.10.0/ once, and prints that folder:
#   ch_ppocr_mobile_v2.0_cls_mobile.onnx  a MobileNetV3-style text-direction classifier,
#                                         x [N, 3, 48, 192] -> [N, 2] (0 upright, 1 turned 180)
#   PP-OCRv6_det_small.onnx               a DBNet text detector, x [N, 3, H, W] (H, W multiples
#                                         of 32) -> a text probability map [N, 1, H, W]
set -euo pipefail
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
PY=${PYTHON:-python3}
CACHE=${SWARM_CACHE:-$HOME/.cache/swarm}
MODELS="ch_ppocr_mobile_v2.0_cls_mobile.onnx PP-OCRv6_det_small.onnx"
DIR=$CACHE/rapidocr-3.10.0

WHEEL=$("$HERE/fetch-wheel.sh" rapidocr 3.10.0 rapidocr-3.10.0-py3-none-any.whl \
	2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050 \
	"the rapidocr models (about 27 MB)")
missing=0
for m in $MODELS; do
	[[ -s $DIR/$m ]] || missing=1
done
if ((missing)); then
	mkdir -p "$DIR"
	"$PY" - "$WHEEL" "$DIR" $MODELS <<'PY'
import os, sys, zipfile
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        data = z.read("rapidocr/models/" + n)
        tmp = os.path.join(out, n + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(out, n))
PY
	echo "fetch-rapidocr: unpacked $MODELS into $DIR" >&2
fi
echo "$DIR"
