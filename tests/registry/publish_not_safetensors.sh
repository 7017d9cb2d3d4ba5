#!/bin/bash
# publish_not_safetensors.sh: `swarm registry publish` given weights that are not a
# safetensors file (an ONNX model, a text file, a zip, an empty file) refuses them, naming the
# file and what it looks like, before saying anything about a header length; a real
# safetensors file beside them is published, so the refusals are the files' fault.
#
# usage: publish_not_safetensors.sh SOURCE_DIR BIN_DIR
set -u
src=$1
bin=$2
work=$(mktemp -d /tmp/swarm-notst-XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0

"$bin/swarm" registry --registry "$work/reg" init >/dev/null || { echo "FAIL: init"; exit 1; }
python3 "$src/tools/make-affine-model.py" "$work/m" >/dev/null || { echo "FAIL: model"; exit 1; }

# An ONNX ModelProto's first bytes (ir_version 8, producer "pytorch"), then a graph field.
printf '\x08\x08\x12\x07pytorch\x1a\x052.1.0\x3a\x90\x01\x0a\x2b\x12\x00\x00' >"$work/model.onnx"
printf 'scale = [2.0] * 16\nbias = [1.0] * 16\n' >"$work/weights.txt"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("data.pkl", b"x" * 64)' \
	"$work/model.pt" || { echo "FAIL: zip"; exit 1; }
: >"$work/empty.safetensors"

check() { # FILE WHAT: publish FILE as weights; expect a refusal naming it and WHAT
	local file=$1 what=$2 out rc
	out=$("$bin/swarm" registry --registry "$work/reg" publish bad --weights "$file" \
		--manifest "$work/m/affine.json" 2>&1)
	rc=$?
	local first=${out%%header length*}
	if [ $rc -eq 0 ]; then
		echo "FAIL: $file was published"; fails=$((fails + 1))
	elif [[ $out != *"weights $file: not a safetensors file"* || $out != *"$what"* ]]; then
		echo "FAIL: $file: expected \"not a safetensors file\" and \"$what\", got: $out"
		fails=$((fails + 1))
	elif [ "$first" != "$out" ]; then
		echo "FAIL: $file: the message speaks of a header length: $out"; fails=$((fails + 1))
	else
		echo "ok: $file: $out"
	fi
}

check "$work/model.onnx" "an ONNX model"
check "$work/weights.txt" "a text file"
check "$work/model.pt" "a zip archive"
check "$work/empty.safetensors" "it is empty"

if ! out=$("$bin/swarm" registry --registry "$work/reg" publish good \
	--weights "$work/m/affine.safetensors" --manifest "$work/m/affine.json" 2>&1); then
	echo "FAIL: the real safetensors file was refused: $out"; fails=$((fails + 1))
fi
[ $fails -eq 0 ] && echo "all refusals named the file" || exit 1
