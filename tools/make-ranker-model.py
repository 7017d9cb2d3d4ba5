#!/usr/bin/env python3
"""Writes a DLRM-style ranker as a node-list graph: a safetensors weights file and its JSON
manifest, ready for `swarm registry publish`.

usage: tools/make-ranker-model.py OUT_DIR [--seed N] [--vocab V] [--max-rows N] [--slots N]
                                  [--max-batch N] [--max-queue-delay-us US]

The model (docs/graph.md): inputs "dense" f32 [-1, 13] and "sparse0".."sparse2" i64 [-1, 8]
(8 ids per row, one bag per row); dense through an MLP (13 -> 64 relu -> 16 relu); each sparse
input summed over its table "emb0".."emb2" f32 [V, 16] (embedding_bag, two inputs); the four
[B, 16] tensors concatenated; a top MLP (64 -> 64 relu -> 1) and a sigmoid; output "score"
f32 [-1, 1]. It writes OUT_DIR/ranker.safetensors and OUT_DIR/ranker.json and prints the
weights path.

Weights are deterministic from the seed, and bench/model_bench.c makes the same bytes in C:
one 64-bit LCG (Knuth's MMIX constants) whose state starts at seed XOR 0x9E3779B97F4A7C15;
each draw steps it and takes u = (state >> 40) / 2^24, exact in a float; a value is
(2u - 1) * bound computed in double, rounded once to f32. Tensors are drawn in the order of
RANKER_TENSORS below, each row-major. Bounds: Kaiming-uniform sqrt(6 / fan_in) for linear
weights, 1 / sqrt(fan_in) for biases (PyTorch's), sqrt(1 / V) for tables (DLRM's).
Standard library only.
"""
import argparse
import json
import math
import os
import struct
import sys

from safetensors_writer import write_safetensors  # tools/safetensors_writer.py

DENSE = 13
SPARSE = 3
BAG = 8
DIM = 16
BOT = [64, DIM]  # dense MLP widths after the input
TOP = [64, 1]    # top MLP widths after the concat

LCG_MUL = 6364136223846793005
LCG_ADD = 1442695040888963407
SEED_MIX = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


class Lcg:
    def __init__(self, seed):
        self.state = (seed ^ SEED_MIX) & MASK64

    def uniform(self, bound):
        self.state = (self.state * LCG_MUL + LCG_ADD) & MASK64
        u = (self.state >> 40) / float(1 << 24)
        return (2.0 * u - 1.0) * bound


def ranker_tensors(vocab):
    """(name, shape, bound) in the order the weights are drawn and written."""
    t = []
    for i in range(SPARSE):
        t.append(("emb%d" % i, [vocab, DIM], math.sqrt(1.0 / vocab)))
    fan = DENSE
    for i, width in enumerate(BOT):
        t.append(("bot%d_w" % i, [width, fan], math.sqrt(6.0 / fan)))
        t.append(("bot%d_b" % i, [width], 1.0 / math.sqrt(fan)))
        fan = width
    fan = DIM * (1 + SPARSE)
    for i, width in enumerate(TOP):
        t.append(("top%d_w" % i, [width, fan], math.sqrt(6.0 / fan)))
        t.append(("top%d_b" % i, [width], 1.0 / math.sqrt(fan)))
        fan = width
    return t


def ranker_graph():
    nodes = []
    for i in range(SPARSE):
        nodes.append({"op": "embedding_bag", "inputs": ["emb%d" % i, "sparse%d" % i],
                      "output": "e%d" % i, "mode": "sum"})
    x = "dense"
    for i in range(len(BOT)):
        nodes.append({"op": "linear", "inputs": [x, "bot%d_w" % i, "bot%d_b" % i],
                      "output": "bot%d" % i, "act": "relu"})
        x = "bot%d" % i
    nodes.append({"op": "concat", "inputs": [x] + ["e%d" % i for i in range(SPARSE)],
                  "output": "cat"})
    x = "cat"
    for i in range(len(TOP)):
        node = {"op": "linear", "inputs": [x, "top%d_w" % i, "top%d_b" % i],
                "output": "top%d" % i}
        if i + 1 < len(TOP):
            node["act"] = "relu"
        nodes.append(node)
        x = "top%d" % i
    nodes.append({"op": "sigmoid", "inputs": [x], "output": "score"})
    return nodes


def positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1, not %d" % v)
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=1, help="weights seed (default 1)")
    p.add_argument("--vocab", type=positive, default=10000, help="rows per table (default 10000)")
    p.add_argument("--max-rows", type=positive, default=64)
    p.add_argument("--slots", type=positive, default=8)
    p.add_argument("--max-batch", type=positive, default=256)
    p.add_argument("--max-queue-delay-us", type=int, default=200)
    a = p.parse_args()
    if a.seed < 0 or a.seed > MASK64:
        p.error("--seed must be 0..2^64-1")
    if not 0 <= a.max_queue_delay_us <= 10000000:
        p.error("--max-queue-delay-us must be 0..10000000")

    os.makedirs(a.out_dir, exist_ok=True)
    rng = Lcg(a.seed)
    tensors, specs = [], []
    for name, shape, bound in ranker_tensors(a.vocab):
        n = math.prod(shape)
        data = struct.pack("<%df" % n, *[rng.uniform(bound) for _ in range(n)])
        tensors.append((name, "F32", shape, data))
        specs.append({"name": name, "dtype": "f32", "shape": shape})
    weights = os.path.join(a.out_dir, "ranker.safetensors")
    write_safetensors(weights, tensors)

    inputs = [{"name": "dense", "dtype": "f32", "shape": [-1, DENSE]}]
    inputs += [{"name": "sparse%d" % i, "dtype": "i64", "shape": [-1, BAG]} for i in range(SPARSE)]
    manifest = {
        "format": 1,
        "inputs": inputs,
        "outputs": [{"name": "score", "dtype": "f32", "shape": [-1, 1]}],
        "graph": {"nodes": ranker_graph()},
        "weights": specs,
        "deploy": {"max_rows": a.max_rows, "slots": a.slots, "max_batch": a.max_batch,
                   "max_queue_delay_us": a.max_queue_delay_us},
    }
    with open(os.path.join(a.out_dir, "ranker.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
