#!/usr/bin/env python3
"""Writes a model for the built-in affine graph (y = scale * x + bias over f32 [-1, 16]):
a safetensors weights file and its JSON manifest, ready for `swarm registry publish`.

usage: tools/make-affine-model.py OUT_DIR [--scale S] [--bias B] [--max-rows N] [--slots N]

It uses only the standard library: the safetensors layout is an 8-byte little-endian header
length, a JSON header padded with spaces to a multiple of 8, then the tensors' bytes.
"""
import argparse
import json
import os
import struct
import sys

from safetensors_writer import write_safetensors  # tools/safetensors_writer.py

WIDTH = 16


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--bias", type=float, default=1.0)
    p.add_argument("--max-rows", type=int, default=1024)
    p.add_argument("--slots", type=int, default=8)
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    f32 = lambda v: struct.pack("<%df" % WIDTH, *([v] * WIDTH))
    weights = os.path.join(a.out_dir, "affine.safetensors")
    write_safetensors(weights, [("scale", "F32", [WIDTH], f32(a.scale)),
                                ("bias", "F32", [WIDTH], f32(a.bias))])
    manifest = {
        "format": 1,
        "inputs": [{"name": "x", "dtype": "f32", "shape": [-1, WIDTH]}],
        "outputs": [{"name": "y", "dtype": "f32", "shape": [-1, WIDTH]}],
        "graph": {"builtin": "affine"},
        "weights": [{"name": "scale", "dtype": "f32", "shape": [WIDTH]},
                    {"name": "bias", "dtype": "f32", "shape": [WIDTH]}],
        "deploy": {"max_rows": a.max_rows, "slots": a.slots},
    }
    with open(os.path.join(a.out_dir, "affine.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
