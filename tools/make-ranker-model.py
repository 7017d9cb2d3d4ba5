#!/usr/bin/env python3
"""Writes a DLRM-style ranker as a node-list graph: a safetensors weights file and its JSON
manifest, ready for `swarm registry publish`.

usage: tools/make-ranker-model.py OUT_DIR [--seed N] [--vocab V] [--max-rows N] [--slots N]
                                  [--max-batch N] [--max-queue-delay-us US]
                                  [--dim D] [--hidden H] [--bottom W,..,D] [--top W,..,1]

The model (docs/graph.md): inputs "dense" f32 [-1, 13] and "sparse0".."sparse2" i64 [-1, 8]
(8 ids per row, one bag per row); dense through the bottom MLP (relu after every layer),
whose last width is the embedding dim D; each sparse input summed over its table
"emb0".."emb2" f32 [V, D] (embedding_bag, two inputs); the four [B, D] tensors concatenated;
the top MLP (relu after every layer but the last, whose width is 1) and a sigmoid; output
"score" f32 [-1, 1]. It writes OUT_DIR/ranker.safetensors and OUT_DIR/ranker.json and prints
the weights path.

Sizes. By default D = 16, the bottom MLP is 13 -> 64 -> 16 and the top 64 -> 64 -> 1 (about
a microsecond a row on one core). --hidden H sets the 64s, --dim D the 16; --bottom and --top
give every width after each MLP's input instead (the DLRM paper's notation without the
input): the production-shaped ranker of swarm-bench's batching case is

    tools/make-ranker-model.py OUT_DIR --bottom 512,256,64 --top 512,256,1

that is D = 64, bottom 13-512-256-64, top 256-512-256-1 (1.7 MB of MLP weights, about 30 us
a row at batch 1 on one core).

Weights are deterministic from the seed and the sizes, and bench/ranker.c makes the same
tensors in C (`swarm-bench --write-rankers DIR` writes both sizes; bench/check-ranker.sh,
ctest bench_ranker_matches_tool, checks that the tensor bytes are identical and the header
and manifest equal as JSON):
one 64-bit LCG (Knuth's MMIX constants) whose state starts at seed XOR 0x9E3779B97F4A7C15;
each draw steps it and takes u = (state >> 40) / 2^24, exact in a float; a value is
(2u - 1) * bound computed in double, rounded once to f32. Tensors are drawn in the order of
ranker_tensors() below, each row-major. Bounds: Kaiming-uniform sqrt(6 / fan_in) for linear
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
DIM = 16     # the embedding dim, and the bottom MLP's last width
HIDDEN = 64  # the other width of each default MLP: bottom [HIDDEN, DIM], top [HIDDEN, 1]

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


def ranker_tensors(vocab, bot, top):
    """(name, shape, bound) in the order the weights are drawn and written. bot and top are
    the MLPs' widths after their inputs; bot[-1] is the embedding dim, top[-1] is 1."""
    dim = bot[-1]
    t = []
    for i in range(SPARSE):
        t.append(("emb%d" % i, [vocab, dim], math.sqrt(1.0 / vocab)))
    fan = DENSE
    for i, width in enumerate(bot):
        t.append(("bot%d_w" % i, [width, fan], math.sqrt(6.0 / fan)))
        t.append(("bot%d_b" % i, [width], 1.0 / math.sqrt(fan)))
        fan = width
    fan = dim * (1 + SPARSE)
    for i, width in enumerate(top):
        t.append(("top%d_w" % i, [width, fan], math.sqrt(6.0 / fan)))
        t.append(("top%d_b" % i, [width], 1.0 / math.sqrt(fan)))
        fan = width
    return t


def ranker_graph(bot, top):
    nodes = []
    for i in range(SPARSE):
        nodes.append({"op": "embedding_bag", "inputs": ["emb%d" % i, "sparse%d" % i],
                      "output": "e%d" % i, "mode": "sum"})
    x = "dense"
    for i in range(len(bot)):
        nodes.append({"op": "linear", "inputs": [x, "bot%d_w" % i, "bot%d_b" % i],
                      "output": "bot%d" % i, "act": "relu"})
        x = "bot%d" % i
    nodes.append({"op": "concat", "inputs": [x] + ["e%d" % i for i in range(SPARSE)],
                  "output": "cat"})
    x = "cat"
    for i in range(len(top)):
        node = {"op": "linear", "inputs": [x, "top%d_w" % i, "top%d_b" % i],
                "output": "top%d" % i}
        if i + 1 < len(top):
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


def widths(text):
    try:
        w = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("must be a comma list of widths, not %r" % text)
    if not w or any(x < 1 for x in w):
        raise argparse.ArgumentTypeError("widths must be at least 1: %r" % text)
    return w


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=1, help="weights seed (default 1)")
    p.add_argument("--vocab", type=positive, default=10000, help="rows per table (default 10000)")
    p.add_argument("--max-rows", type=positive, default=64)
    p.add_argument("--slots", type=positive, default=8)
    p.add_argument("--max-batch", type=positive, default=256)
    p.add_argument("--max-queue-delay-us", type=int, default=200)
    p.add_argument("--dim", type=positive, help="embedding dim, the bottom MLP's last width "
                   "(default %d, or the last of --bottom)" % DIM)
    p.add_argument("--hidden", type=positive, default=HIDDEN,
                   help="the hidden width of the default MLPs (default %d)" % HIDDEN)
    p.add_argument("--bottom", type=widths, metavar="W,..,D",
                   help="bottom MLP widths after the 13 dense inputs, ending in the dim "
                   "(default HIDDEN,DIM)")
    p.add_argument("--top", type=widths, metavar="W,..,1",
                   help="top MLP widths after the concat, ending in 1 (default HIDDEN,1)")
    a = p.parse_args()
    if a.seed < 0 or a.seed > MASK64:
        p.error("--seed must be 0..2^64-1")
    if not 0 <= a.max_queue_delay_us <= 10000000:
        p.error("--max-queue-delay-us must be 0..10000000")
    bot = a.bottom or [a.hidden, a.dim or DIM]
    top = a.top or [a.hidden, 1]
    if a.dim and bot[-1] != a.dim:
        p.error("--bottom must end in the dim (%d), not %d" % (a.dim, bot[-1]))
    if top[-1] != 1:
        p.error("--top must end in 1 (the score), not %d" % top[-1])

    os.makedirs(a.out_dir, exist_ok=True)
    rng = Lcg(a.seed)
    tensors, specs = [], []
    for name, shape, bound in ranker_tensors(a.vocab, bot, top):
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
        "graph": {"nodes": ranker_graph(bot, top)},
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
