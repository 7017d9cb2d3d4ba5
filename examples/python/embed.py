#!/usr/bin/env python3
"""Sentence embeddings from all-MiniLM-L6-v2 served by swarm, from Python.

The Python twin of examples/minilm_client.c: it tokenises each sentence with the model's own
vocabulary (vocab.txt, written by tools/import-minilm.py) as BERT uncased does, sends the
sentences as the rows of as few requests as the session allows, writing the token ids and the
attention mask straight into the request's slot (numpy views, no copy), and prints the first
dims of each embedding and the cosine similarity of every pair, as the C client does.

    python3 examples/python/embed.py --socket /tmp/x/swarmd.sock --vocab model/vocab.txt
    python3 examples/python/embed.py --json --tokens "A sentence." "Another one."

The tokeniser is BERT's BasicTokenizer (uncased) and WordPiece in pure Python (the standard
library's unicodedata for categories and NFD), no `tokenizers` package needed:

  clean     drop NUL, U+FFFD and control/format characters; whitespace becomes a space
  CJK       each CJK ideograph becomes a word of its own
  split     on whitespace; each word lowercased, NFD-normalised, combining marks dropped,
            then split so that every punctuation character is a word of its own
  WordPiece greedy longest match from the left, continuations looked up as "##" + rest; a word
            with a part that matches nothing, or longer than 100 characters, is one [UNK]
  frame     [CLS] pieces [SEP], pieces beyond S - 2 dropped, padded with [PAD]; the mask is 1
            for a real token and 0 for padding

Needs numpy and the swarm package (python/ on PYTHONPATH, or `pip install ./python`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import unicodedata
from typing import Dict, List, Sequence, Tuple

import numpy as np

DEFAULT_SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing the guitar.",
    "The new movie is awesome.",
    "The new film is so great!",
    "The stock market fell sharply today.",
    "Cats sleep most of the day.",
]

MAX_WORD_CHARS = 100  # BERT's max_input_chars_per_word: a longer word is [UNK]


class WordPiece:
    """BERT uncased tokenisation over a vocab.txt (one token a line, the id its line number)."""

    def __init__(self, vocab: Dict[str, int]):
        self.vocab = vocab
        missing = [t for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]") if t not in vocab]
        if missing:
            raise ValueError("the vocabulary lacks %s" % ", ".join(missing))
        self.unk, self.cls = vocab["[UNK]"], vocab["[CLS]"]
        self.sep, self.pad = vocab["[SEP]"], vocab["[PAD]"]
        self.tokens = {i: t for t, i in vocab.items()}

    @classmethod
    def from_file(cls, path: str) -> "WordPiece":
        vocab: Dict[str, int] = {}
        with open(path, "rb") as f:
            data = f.read().decode("utf-8")
        lines = data.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for i, line in enumerate(lines):
            if line.endswith("\r"):
                line = line[:-1]
            vocab[line] = i  # a repeated token maps to its last line, as BERT's load_vocab
        return cls(vocab)

    # ---- BasicTokenizer ----------------------------------------------------------------

    @staticmethod
    def _is_space(ch: str) -> bool:
        return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"

    @staticmethod
    def _is_dropped(ch: str) -> bool:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            return True
        return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")

    @staticmethod
    def _is_punct(ch: str) -> bool:
        cp = ord(ch)
        # All ASCII non-letters-or-digits count, $ + < = > ^ ` | ~ included, as in BERT.
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    @staticmethod
    def _is_cjk(cp: int) -> bool:
        return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
                or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F
                or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
                or 0x2F800 <= cp <= 0x2FA1F)

    def basic(self, text: str) -> List[str]:
        """The words of text: cleaned, CJK split, lowercased, unaccented, punctuation split."""
        chars = []
        for ch in text:
            if self._is_dropped(ch):
                continue
            if self._is_space(ch):
                chars.append(" ")
            elif self._is_cjk(ord(ch)):
                chars.extend((" ", ch, " "))
            else:
                chars.append(ch)
        words: List[str] = []
        for w in "".join(chars).split():
            w = unicodedata.normalize("NFD", w.lower())
            w = "".join(c for c in w if unicodedata.category(c) != "Mn")
            cur = []
            for c in w:
                if self._is_punct(c):
                    if cur:
                        words.append("".join(cur))
                        cur = []
                    words.append(c)
                else:
                    cur.append(c)
            if cur:
                words.append("".join(cur))
        return words

    # ---- WordPiece ---------------------------------------------------------------------

    def wordpiece(self, word: str) -> List[int]:
        """Greedy longest-match-first pieces of one word, as ids."""
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        ids: List[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = -1
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece, -1)
                if found >= 0:
                    break
                end -= 1
            if found < 0:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def tokenize(self, text: str) -> List[int]:
        """The WordPiece ids of text, without [CLS] and [SEP]."""
        out: List[int] = []
        for w in self.basic(text):
            out.extend(self.wordpiece(w))
        return out

    def encode(self, text: str, seq_len: int) -> Tuple[List[int], List[float]]:
        """[CLS] ids [SEP] [PAD]... of length seq_len and its attention mask."""
        pieces = self.tokenize(text)[:seq_len - 2]
        ids = [self.cls] + pieces + [self.sep]
        n = len(ids)
        return ids + [self.pad] * (seq_len - n), [1.0] * n + [0.0] * (seq_len - n)

    def encode_batch(self, texts: Sequence[str], seq_len: int) -> Tuple[np.ndarray, np.ndarray]:
        """ids int64 [n, seq_len] and mask float32 [n, seq_len] of the sentences."""
        ids = np.empty((len(texts), seq_len), dtype=np.int64)
        mask = np.empty((len(texts), seq_len), dtype=np.float32)
        for i, t in enumerate(texts):
            ids[i], mask[i] = self.encode(t, seq_len)
        return ids, mask


def _spec(specs, name: str):
    for s in specs:
        if s.name == name:
            return s
    return None


def embed(session, tok: WordPiece, sentences: Sequence[str], wait_s: float = 30.0):
    """(ids, mask, embeddings) of the sentences through session, a MiniLM session: as many
    sentences a request as its max_rows allows, written straight into the slot."""
    s_ids = _spec(session.inputs, "input_ids")
    s_mask = _spec(session.inputs, "attention_mask")
    s_emb = _spec(session.outputs, "embedding")
    if (s_ids is None or s_mask is None or s_emb is None
            or np.dtype(s_ids.dtype) != np.int64 or len(s_ids.shape) != 2
            or np.dtype(s_mask.dtype) != np.float32 or len(s_mask.shape) != 2
            or s_mask.shape[1] != s_ids.shape[1] or s_ids.shape[1] < 2
            or np.dtype(s_emb.dtype) != np.float32 or len(s_emb.shape) != 2):
        raise SystemExit("embed: the model does not take input_ids i64 [-1, S] and "
                         "attention_mask f32 [-1, S] and return embedding f32 [-1, D]")
    seq_len, dims = int(s_ids.shape[1]), int(s_emb.shape[1])
    ids, mask = tok.encode_batch(sentences, seq_len)
    emb = np.empty((len(sentences), dims), dtype=np.float32)
    max_rows = max(1, int(session.info().max_rows or 1))
    for first in range(0, len(sentences), max_rows):
        rows = min(max_rows, len(sentences) - first)
        with session.request(rows) as r:
            r.input("input_ids")[...] = ids[first:first + rows]
            r.input("attention_mask")[...] = mask[first:first + rows]
            r.submit()
            r.wait(wait_s)
            emb[first:first + rows] = r.output("embedding")
    return ids, mask, emb


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    aa, bb = float(a64 @ a64), float(b64 @ b64)
    return float(a64 @ b64) / math.sqrt(aa * bb) if aa > 0 and bb > 0 else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Embeds each SENTENCE (default: a few examples) with the sentence encoder "
        "MODEL (default minilm, imported by tools/import-minilm.py) and prints the first 8 "
        "dims of each embedding and their cosine similarities.")
    ap.add_argument("--socket", help="swarmd's socket (default: $SWARM_SOCKET, else swarm's)")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--vocab", default="vocab.txt", help="the model's vocab.txt")
    ap.add_argument("--json", action="store_true",
                    help='print {"model", "sentences", ["tokens",] "embeddings"} instead')
    ap.add_argument("--tokens", action="store_true", help="print the token ids too")
    ap.add_argument("sentences", nargs="*")
    a = ap.parse_args(argv)
    sentences = a.sentences or DEFAULT_SENTENCES
    try:
        tok = WordPiece.from_file(a.vocab)
    except (OSError, ValueError) as e:
        print("embed: %s: %s (give --vocab, written by tools/import-minilm.py)" % (a.vocab, e),
              file=sys.stderr)
        return 1

    import swarm  # after the argument parsing, so that --help works without the package

    try:
        with swarm.connect(a.socket) as client, client.open(a.model) as session:
            info = session.info()
            ids, mask, emb = embed(session, tok, sentences)
    except swarm.Error as e:
        print("embed: %s" % e, file=sys.stderr)
        return 1

    if a.json:
        doc = {"model": a.model, "sentences": list(sentences)}
        if a.tokens:
            doc["tokens"] = ids.tolist()
        # %.9g round-trips a float32, as the C client prints it
        doc["embeddings"] = [[float("%.9g" % x) for x in row] for row in emb.tolist()]
        json.dump(doc, sys.stdout, ensure_ascii=False)
        print()
        return 0

    n, seq_len, dims = len(sentences), ids.shape[1], emb.shape[1]
    print("model %s@%u on %s: %d sentence(s), %d tokens each, %d dims\n"
          % (a.model, info.version, info.device, n, seq_len, dims))
    for i, s in enumerate(sentences):
        print("[%d] %s" % (i, s))
        print("    " + "".join("%+.4f " % x for x in emb[i, :8]) + "...")
        if a.tokens:
            real = ids[i, mask[i] != 0]
            print("    tokens: " + " ".join(tok.tokens[int(t)] for t in real))
    print("\ncosine similarity\n     " + "".join(" [%d]   " % j for j in range(n)))
    for i in range(n):
        print("[%d] " % i + "".join(" %+.3f" % cosine(emb[i], emb[j]) for j in range(n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
