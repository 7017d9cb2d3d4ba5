#!/usr/bin/env python3
"""compare.py: one model's outputs from `swarm run` against ONNX Runtime on the same inputs.

usage: compare.py MODEL.onnx --in NAME=FILE.npy ... --got DIR [--tol T] [--label L]
                  [--expect-class ROW=CLASS ...] [--expect-bands N]

For every output of the model, reads DIR/OUTPUT.npy (the name made safe as `swarm run` does)
and prints one line "ok|FAIL  L OUTPUT [shape]: relative error E (tolerance T)", where
E = max|swarm - ort| / max|ort|. ONNX Runtime runs on the CPU with one intra-op thread.
--expect-class checks that row ROW's argmax is CLASS (in both runtimes); --expect-bands that
the first output's probability map has N horizontal bands of text (rows over 0.3).
The last line is "N passed, N failed"; the exit status is 1 on any failure.
"""
import argparse
import os
import re
import sys

import numpy as np
import onnxruntime as ort


def safe(name):
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "output" if s in ("", ".", "..") else s


def bands(prob, thr=0.3):
    rows = (prob > thr).any(axis=-1)
    return int(np.count_nonzero(rows[1:] & ~rows[:-1]) + rows[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--in", dest="ins", action="append", default=[])
    ap.add_argument("--got", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--label", default="")
    ap.add_argument("--expect-class", action="append", default=[])
    ap.add_argument("--expect-bands", type=int)
    o = ap.parse_args()
    label = o.label or os.path.basename(o.model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(o.model, so, providers=["CPUExecutionProvider"])
    feeds = {k: np.load(v) for k, v in (s.split("=", 1) for s in o.ins)}
    names = [x.name for x in sess.get_outputs()]
    refs = sess.run(None, feeds)
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        print("  %s  %s %s" % ("ok  " if ok else "FAIL", label, what))
        passed, failed = passed + ok, failed + (not ok)

    gots = []
    for name, ref in zip(names, refs):
        path = os.path.join(o.got, safe(name) + ".npy")
        try:
            got = np.load(path)
        except OSError as e:
            check(False, "%s: %s" % (name, e))
            gots.append(None)
            continue
        gots.append(got)
        if got.shape != ref.shape or got.dtype != ref.dtype:
            check(False, "%s: swarm gave %s %s, ONNX Runtime %s %s" %
                  (name, got.dtype, got.shape, ref.dtype, ref.shape))
            continue
        scale = float(np.abs(ref).max()) or 1.0
        err = float(np.abs(got.astype(np.float64) - ref).max()) / scale
        check(bool(err <= o.tol), "%s %s: relative error %.2e (tolerance %.0e)" %
              (name, list(ref.shape), err, o.tol))
    for e in o.expect_class:
        row, cls = (int(v) for v in e.split("="))
        for who, out in (("swarm", gots[0]), ("ONNX Runtime", refs[0])):
            got = None if out is None else int(np.argmax(out[row]))
            check(got == cls, "row %d: %s says class %s (expected %d)" % (row, who, got, cls))
    if o.expect_bands is not None:
        for who, out in (("swarm", gots[0]), ("ONNX Runtime", refs[0])):
            n = None if out is None else bands(out[0, 0])
            check(n == o.expect_bands, "%s finds %s lines of text (expected %d)" %
                  (who, n, o.expect_bands))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
