#!/usr/bin/env python3
"""Many ranker requests in flight from one asyncio loop, with a latency summary.

The DLRM-style ranker of tools/make-ranker-model.py (inputs "dense" f32 [-1, 13] and
"sparse0".."sparse2" i64 [-1, 8], output "score" f32 [-1, 1]) published in swarm's registry,
served by swarmd. This client opens SESSIONS sessions and keeps INFLIGHT requests in flight
on each, from one thread: each request is written straight into its slot (numpy views),
submitted, and awaited (`await request`, which the swarm package drives from the session's
eventfd: swarm_session_fd/swarm_session_arm, no thread per request). It prints the latency of
a request (alloc to release) at p50/p90/p99 and the throughput.

    python3 tools/make-ranker-model.py /tmp/ranker
    swarm registry publish ranker --weights /tmp/ranker/ranker.safetensors \\
        --manifest /tmp/ranker/ranker.json          # see docs/registry.md
    python3 examples/python/ranker.py --socket /tmp/x/swarmd.sock --requests 20000

--check WEIGHTS (the ranker.safetensors the model was published from) also computes every
request's score in NumPy (float64) from the weights and fails when one differs by more than
1e-5: what the test of this example runs. --json prints the summary as one JSON object.

Needs numpy and the swarm package (python/ on PYTHONPATH, or `pip install ./python`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from typing import Dict, List, Optional

import numpy as np

DENSE, SPARSE, BAG = 13, 3, 8


def load_safetensors(path: str) -> Dict[str, np.ndarray]:
    """The F32 tensors of a safetensors file (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack_from("<Q", buf, 0)[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(buf, dtype="<f4", count=(b - a) // 4,
                                  offset=8 + n + a).reshape(t["shape"])
    return out


def reference(w: Dict[str, np.ndarray], dense: np.ndarray, sparse: List[np.ndarray]) -> np.ndarray:
    """The ranker's scores in float64: the graph of tools/make-ranker-model.py."""
    x = dense.astype(np.float64)
    i = 0
    while "bot%d_w" % i in w:
        x = np.maximum(x @ w["bot%d_w" % i].T.astype(np.float64) + w["bot%d_b" % i], 0.0)
        i += 1
    bags = [w["emb%d" % k].astype(np.float64)[sparse[k]].sum(axis=1) for k in range(SPARSE)]
    x = np.concatenate([x] + bags, axis=1)
    i = 0
    while "top%d_w" % i in w:
        x = x @ w["top%d_w" % i].T.astype(np.float64) + w["top%d_b" % i]
        if "top%d_w" % (i + 1) in w:
            x = np.maximum(x, 0.0)
        i += 1
    return 1.0 / (1.0 + np.exp(-x))


class Workload:
    """Deterministic inputs: request k gets row k % rows of each input."""

    def __init__(self, rows: int, vocab: int, seed: int):
        g = np.random.default_rng(seed)
        self.dense = g.standard_normal((rows, DENSE)).astype(np.float32)
        self.sparse = [g.integers(0, vocab, (rows, BAG), dtype=np.int64) for _ in range(SPARSE)]
        self.rows = rows


async def run_session(session, work: Workload, first: int, count: int, stride: int,
                      inflight: int, lat: List[int], scores: np.ndarray) -> None:
    """Requests first, first + stride, ... (count of them) on one session, inflight at once."""
    names = ["sparse%d" % k for k in range(SPARSE)]
    perf = time.perf_counter_ns
    pending = iter(range(count))

    async def worker() -> None:
        for j in pending:
            k = first + j * stride
            row = k % work.rows
            t0 = perf()
            with session.request(1) as r:
                r.input("dense")[0] = work.dense[row]
                for n, sp in zip(names, work.sparse):
                    r.input(n)[0] = sp[row]
                r.submit()
                await r
                scores[k] = r.output("score")[0, 0]
            lat[k] = perf() - t0

    await asyncio.gather(*(worker() for _ in range(inflight)))


async def run(args) -> Dict:
    import swarm

    work = Workload(args.rows, args.vocab, args.seed)
    lat = [0] * args.requests
    scores = np.full(args.requests, np.nan, dtype=np.float32)
    with swarm.connect(args.socket) as client:
        sessions = [client.open(args.model, max_rows=1, slots=args.inflight,
                                queue_depth=_pow2(args.inflight))
                    for _ in range(args.sessions)]
        try:
            info = sessions[0].info()
            t0 = time.perf_counter()
            await asyncio.gather(*(
                run_session(s, work, i, len(range(i, args.requests, args.sessions)),
                            args.sessions, args.inflight, lat, scores)
                for i, s in enumerate(sessions)))
            seconds = time.perf_counter() - t0
        finally:
            for s in sessions:
                s.close()
    v = sorted(lat)

    def pct(p: float) -> float:
        return v[max(0, min(len(v) - 1, int(np.ceil(p * len(v))) - 1))] / 1000.0

    out = {
        "model": args.model, "device": info.device, "sessions": args.sessions,
        "inflight_per_session": args.inflight, "requests": args.requests,
        "seconds": seconds, "throughput_rps": args.requests / seconds,
        "latency_us": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
                       "max": v[-1] / 1000.0},
        "score_mean": float(np.mean(scores)),
    }
    if args.check:
        w = load_safetensors(args.check)
        rows = np.arange(args.requests) % work.rows
        ref = reference(w, work.dense[rows], [sp[rows] for sp in work.sparse])[:, 0]
        err = np.abs(scores.astype(np.float64) - ref)
        out["check"] = {"max_abs_diff": float(np.nanmax(err)) if np.isfinite(err).any() else None,
                        "missing": int(np.isnan(scores).sum()),
                        "ok": bool(np.all(err <= 1e-5))}
    return out


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", help="swarmd's socket (default: $SWARM_SOCKET, else swarm's)")
    ap.add_argument("--model", default="ranker")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=8, help="requests in flight per session")
    ap.add_argument("--rows", type=int, default=1024, help="distinct input rows, used in turn")
    ap.add_argument("--vocab", type=int, default=10000,
                    help="rows of each embedding table (make-ranker-model.py --vocab)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", metavar="WEIGHTS",
                    help="compare every score with a NumPy reference over this safetensors")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.requests < 1 or a.sessions < 1 or a.inflight < 1 or a.rows < 1:
        ap.error("--requests, --sessions, --inflight and --rows must be at least 1")

    import swarm

    try:
        s = asyncio.run(run(a))
    except swarm.Error as e:
        print("ranker: %s" % e, file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(s))
    else:
        lu = s["latency_us"]
        print("%s on %s: %d requests, %d sessions x %d in flight, one asyncio loop"
              % (s["model"], s["device"], s["requests"], s["sessions"],
                 s["inflight_per_session"]))
        print("latency (request to release): p50 %.1f us  p90 %.1f us  p99 %.1f us  "
              "max %.1f us" % (lu["p50"], lu["p90"], lu["p99"], lu["max"]))
        print("throughput: %.0f requests/s over %.2f s" % (s["throughput_rps"], s["seconds"]))
        if "check" in s:
            c = s["check"]
            print("check against the NumPy reference: %s (max |diff| %s, %d missing)"
                  % ("ok" if c["ok"] else "FAILED", c["max_abs_diff"], c["missing"]))
    if "check" in s and not s["check"]["ok"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
