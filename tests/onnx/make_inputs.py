#!/usr/bin/env python3
"""make_inputs.py: real, deterministic inputs for the rapidocr models, rendered with Pillow.

usage: make_inputs.py OUTDIR [--det-size HxW] [--rows N]

Writes, preprocessed as rapidocr does (BGR, per-channel normalisation):
  cls_x.npy    [2, 3, 48, 192]  a rendered text line, upright and turned 180 degrees
  det_x.npy    [1, 3, H, W]     a rendered page of text lines (default 320x448)
  page.png     the page, as rendered
With --rows N (a benchmark's inputs), each file holds N rows: lines of different texts, upright
and turned in turn, and pages whose lines start at different places.
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LINE = "swarm 0.13: 64 B round trips"
PAGE = [
    "Bring your own model",
    "ONNX import, vision ops,",
    "measured against ORT.",
    "Invoice 2026-12-05  total 1,234.50",
]


def font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def cls_input(img):
    """rapidocr's classifier: height 48, width scaled (at most 192), right-padded with 0."""
    img = img.convert("RGB")
    w = min(192, max(1, round(img.width * 48 / img.height)))
    a = np.asarray(img.resize((w, 48), Image.BILINEAR), dtype=np.float32)[:, :, ::-1]
    a = (a / 255.0 - 0.5) / 0.5
    x = np.zeros((3, 48, 192), np.float32)
    x[:, :, :w] = a.transpose(2, 0, 1)
    return x


def det_input(img):
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    a = np.asarray(img.convert("RGB"), dtype=np.float32)[:, :, ::-1] / 255.0
    return ((a - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def render_line(text, size=28):
    f = font(size)
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=f)
    img = Image.new("RGB", (box[2] + 16, box[3] + 16), "white")
    ImageDraw.Draw(img).text((8, 8), text, fill="black", font=f)
    return img


def render_page(h, w, shift=0):
    img = Image.new("RGB", (w, h), (250, 248, 240))
    d = ImageDraw.Draw(img)
    y = 24 + 3 * shift
    for i, text in enumerate(PAGE):
        d.text((20 + 8 * i + 5 * shift, y), text, fill=(20, 20, 20), font=font(22 if i else 30))
        y += 52
    d.rectangle((16, y, w - 16, y + 2), fill=(90, 90, 90))
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--det-size", default="320x448", help="HxW of the page, multiples of 32")
    ap.add_argument("--rows", type=int, help="rows of each file (a benchmark's inputs)")
    o = ap.parse_args()
    h, w = (int(v) for v in o.det_size.split("x"))
    os.makedirs(o.outdir, exist_ok=True)
    if o.rows:
        lines = [render_line(PAGE[i // 2 % len(PAGE)]) for i in range(o.rows)]
        cls = [cls_input(ln if i % 2 == 0 else ln.rotate(180)) for i, ln in enumerate(lines)]
        det = [det_input(render_page(h, w, i))[0] for i in range(o.rows)]
        np.save(os.path.join(o.outdir, "cls_x.npy"), np.stack(cls))
        np.save(os.path.join(o.outdir, "det_x.npy"), np.stack(det))
        return
    line = render_line(LINE)
    np.save(os.path.join(o.outdir, "cls_x.npy"),
            np.stack([cls_input(line), cls_input(line.rotate(180))]))
    page = render_page(h, w)
    page.save(os.path.join(o.outdir, "page.png"))
    np.save(os.path.join(o.outdir, "det_x.npy"), det_input(page))


if __name__ == "__main__":
    main()
