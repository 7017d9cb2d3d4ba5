#!/usr/bin/env python3
"""compute_inputs.py: the inputs of swarm-bench's compute comparison (bench/onnx-prepare.sh),
written as DIR/NAME.INPUT.npy, one file per input of the model's manifest.

usage: bench/compute_inputs.py minilm SOURCE MANIFEST.json DIR NAME ROWS
       bench/compute_inputs.py random MANIFEST.json DIR NAME ROWS [--seed N]
       bench/compute_inputs.py check-minilm SOURCE DIR NAME MODEL.onnx

minilm: ROWS real sentences of growing length (the longest run past the sequence length and
are truncated), tokenised by tests/minilm/reference.py's WordPiece code; writes input_ids and
attention_mask, and the float64 reference embeddings as NAME.ref.npy.
random: inputs drawn from a seeded generator: f32 standard normal, integer ids uniform over
the rows of the table the manifest's embedding or embedding_bag node reads them from.
check-minilm: runs MODEL.onnx with onnxruntime (one thread) on NAME's inputs and fails (exit
status 1) unless every row's 1 - cos(onnx, reference) <= 1e-6: the ONNX graph of the
benchmark is checked against the independent float64 reference before it is timed.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "minilm"))

WORDS = ("the quick brown fox jumps over a lazy dog while markets open early and "
         "engineers measure latency on shared machines before lunch").split()


def sentences(rows):
    """rows sentences, the k-th about 6 + 20k words: short queries up to long passages."""
    out = []
    for k in range(rows):
        n = 6 + 20 * k
        out.append(" ".join(WORDS[(k + i) % len(WORDS)] for i in range(n)) + ".")
    return out


def minilm(source, manifest, d, name, rows):
    import reference as ref
    with open(manifest) as f:
        m = json.load(f)
    S = m["inputs"][0]["shape"][1]
    st, cfg, vocab_text = ref.read_source(source)
    lines = vocab_text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {t.rstrip("\r"): i for i, t in enumerate(lines)}
    ids, masks = zip(*(ref.tokenize(s, vocab, S) for s in sentences(rows)))
    ids = np.array(ids, np.int64)
    masks = np.array(masks, np.float32)
    np.save(os.path.join(d, name + ".input_ids.npy"), ids)
    np.save(os.path.join(d, name + ".attention_mask.npy"), masks)
    emb = ref.encode(ref.load_safetensors(st), cfg, ids, masks)
    np.save(os.path.join(d, name + ".ref.npy"), emb)
    print("compute_inputs: %s: %d rows of %d tokens (%s real)" %
          (name, rows, S, ",".join(str(int(r.sum())) for r in masks)))


def random_inputs(manifest, d, name, rows, seed):
    with open(manifest) as f:
        m = json.load(f)
    wshape = {w["name"]: w["shape"] for w in m.get("weights", [])}
    table_of = {}
    for nd in m["graph"]["nodes"]:
        if nd["op"] in ("embedding", "embedding_bag"):
            for i in nd["inputs"][1:2]:
                table_of[i] = wshape[nd["inputs"][0]][0]
    rng = np.random.default_rng(seed)
    for t in m["inputs"]:
        shape = [rows] + list(t["shape"][1:])
        if t["dtype"] == "f32":
            a = rng.standard_normal(shape).astype(np.float32)
        elif t["dtype"] in ("i64", "i32"):
            if t["name"] not in table_of:
                raise SystemExit("compute_inputs: %s: ids %s feed no table" % (name, t["name"]))
            a = rng.integers(0, table_of[t["name"]], shape).astype(
                np.int64 if t["dtype"] == "i64" else np.int32)
        else:
            raise SystemExit("compute_inputs: %s: dtype %s" % (name, t["dtype"]))
        np.save(os.path.join(d, "%s.%s.npy" % (name, t["name"])), a)
    print("compute_inputs: %s: %d random rows" % (name, rows))


def check_minilm(d, name, model):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = {k: np.load(os.path.join(d, "%s.%s.npy" % (name, k)))
             for k in ("input_ids", "attention_mask")}
    got = sess.run(None, feeds)[0].astype(np.float64)
    want = np.load(os.path.join(d, name + ".ref.npy"))
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    worst = float((1 - cos).max())
    print("compute_inputs: %s: ONNX graph vs the float64 reference: max 1 - cos %.1e" %
          (model, worst))
    return 0 if worst <= 1e-6 else 1


def main(a):
    if len(a) == 6 and a[0] == "minilm":
        minilm(a[1], a[2], a[3], a[4], int(a[5]))
    elif len(a) in (5, 7) and a[0] == "random":
        random_inputs(a[1], a[2], a[3], int(a[4]), int(a[6]) if len(a) == 7 else 1)
    elif len(a) == 5 and a[0] == "check-minilm":
        return check_minilm(a[2], a[3], a[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
