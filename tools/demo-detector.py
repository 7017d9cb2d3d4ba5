#!/usr/bin/env python3
"""demo-detector.py: the demo's text detector, before and after swarm runs it.

usage: demo-detector.py render DIR [--size HxW]   a page of text: DIR/page.png and, as the
                                                  detector takes it, DIR/page.npy
       demo-detector.py show PROB.npy DIR         the detector's output: DIR/page-prob.png
                                                  (the text probability map) and the lines
                                                  of text it finds, printed

The page and its preprocessing are the test's (tests/onnx/make_inputs.py).
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "onnx"))
from make_inputs import det_input, render_page  # noqa: E402


def lines_of(prob, thr=0.3):
    """Boxes (x0, y0, x1, y1) of the bands of rows holding text, and each band's columns."""
    on = prob > thr
    rows = on.any(axis=1)
    boxes, y = [], 0
    while y < len(rows):
        if not rows[y]:
            y += 1
            continue
        y0 = y
        while y < len(rows) and rows[y]:
            y += 1
        cols = np.nonzero(on[y0:y].any(axis=0))[0]
        boxes.append((int(cols[0]), y0, int(cols[-1]) + 1, y))
    return boxes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("dir")
    r.add_argument("--size", default="640x640")
    s = sub.add_parser("show")
    s.add_argument("prob")
    s.add_argument("dir")
    o = ap.parse_args()
    if o.cmd == "render":
        h, w = (int(v) for v in o.size.split("x"))
        os.makedirs(o.dir, exist_ok=True)
        page = render_page(h, w)
        page.save(os.path.join(o.dir, "page.png"))
        np.save(os.path.join(o.dir, "page.npy"), det_input(page))
        print("rendered %s (%dx%d)" % (os.path.join(o.dir, "page.png"), w, h))
        return
    prob = np.load(o.prob)[0, 0]
    out = os.path.join(o.dir, "page-prob.png")
    Image.fromarray((np.clip(prob, 0, 1) * 255).astype(np.uint8)).save(out)
    boxes = lines_of(prob)
    print("text probability map: %s (%d lines of text found)" % (out, len(boxes)))
    for x0, y0, x1, y1 in boxes:
        print("  line at x %d..%d, y %d..%d" % (x0, x1, y0, y1))


if __name__ == "__main__":
    main()
