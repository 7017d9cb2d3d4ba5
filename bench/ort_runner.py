#!/usr/bin/env python3
"""ort_runner.py: ONNX Runtime as swarm-bench's baseline for the ONNX cases: a child process
that loads one model on the CPU with one intra-op thread (or --threads) and one inter-op thread
(ORT's defaults otherwise: every graph optimisation on), then answers swarm-bench on stdin/stdout so that its
blocks interleave with swarm's on the same core.

usage: ort_runner.py MODEL.onnx [--threads=N] NAME=INPUT.npy ...
       (each input: [rows, ...], rows >= any ROWS; N intra-op threads, default 1)

commands, one a line; each answer is one line:
  run ROWS N          -> "ns T1 ... TN": N runs on the first ROWS rows, each timed around
                         session.run (perf_counter_ns; the Python call's few microseconds
                         included)
  save ROWS PREFIX    -> "ok": the outputs of one run as PREFIX.K.npy, K the output's index
  prof ROWS N         -> "prof OP:NS ...": ORT's own profile of N runs, the mean ns per run
                         spent in each op type, largest first
  quit
Anything unexpected is answered "error WHY".
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


THREADS = 1


def session(path, profile=False, prefix=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    # Its pool's threads would spin for a while after each call, on the cpus that swarm's
    # block, interleaved with ORT's, runs on next: measured, they took a second thread's
    # worth from swarm's two (the detector: 135 ms with them spinning, 77 without). Off,
    # ORT itself ran as fast or faster (68 ms, not 73-80).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = prefix
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    global THREADS
    path = sys.argv[1]
    feeds = {}
    for a in sys.argv[2:]:
        if a.startswith("--threads="):
            THREADS = int(a.split("=", 1)[1])
            continue
        k, v = a.split("=", 1)
        feeds[k] = np.load(v)
    sess = session(path)
    sess.run(None, {k: v[:1] for k, v in feeds.items()})
    print("ready %s" % ort.__version__, flush=True)
    for line in sys.stdin:
        w = line.split()
        try:
            if not w or w[0] == "quit":
                break
            rows = int(w[1])
            f = {k: np.ascontiguousarray(v[:rows]) for k, v in feeds.items()}
            if w[0] == "run":
                ts = []
                for _ in range(int(w[2])):
                    t0 = time.perf_counter_ns()
                    sess.run(None, f)
                    ts.append(time.perf_counter_ns() - t0)
                print("ns " + " ".join(str(t) for t in ts), flush=True)
            elif w[0] == "save":
                for k, o in enumerate(sess.run(None, f)):
                    np.save("%s.%d.npy" % (w[2], k), o)
                print("ok", flush=True)
            elif w[0] == "prof":
                n = int(w[2])
                tmp = tempfile.mkdtemp(prefix="swarm-ort-prof-")
                ps = session(path, True, os.path.join(tmp, "p"))
                ps.run(None, f)  # warm-up, not counted: its events come first
                for _ in range(n):
                    ps.run(None, f)
                prof = ps.end_profiling()
                with open(prof) as fh:
                    events = json.load(fh)
                by_op, runs = {}, 0
                for e in events:
                    if e.get("cat") == "Session" and e.get("name") == "model_run":
                        runs += 1
                node_events = [e for e in events if e.get("cat") == "Node" and
                               e.get("name", "").endswith("_kernel_time")]
                # drop the warm-up run's nodes: the first len/ (n + 1) of them
                per_run = len(node_events) // (n + 1) if n + 1 else 0
                for e in node_events[per_run:]:
                    op = e.get("args", {}).get("op_name", "?")
                    by_op[op] = by_op.get(op, 0) + e.get("dur", 0) * 1000
                os.remove(prof)
                os.rmdir(tmp)
                items = sorted(by_op.items(), key=lambda kv: -kv[1])
                print("prof " + " ".join("%s:%d" % (k, v // max(n, 1)) for k, v in items),
                      flush=True)
            else:
                print("error unknown command %s" % w[0], flush=True)
        except Exception as e:  # the answer says why; swarm-bench reports it
            print("error %s" % str(e).replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
