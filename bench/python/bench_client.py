#!/usr/bin/env python3
"""The Python client's side of swarm-bench's python case (bench/cases_python.c runs it).

    bench_client.py probe
    bench_client.py identity --socket PATH [--iters N] [--warmup N]
    bench_client.py ranker --socket PATH --model NAME --data DIR --sets N [--iters N]

probe     prints "ok python X numpy Y swarm Z (libswarm V)", or "skip REASON" when numpy or
          the package cannot be imported (exit status 0 both ways).
identity  the 64 B round trip of the built-in identity model with the request API, timed
          from request to release as swarm-bench's spin row is (request, write the input view,
          submit, wait, read the output view into a buffer, release), the client spinning as
          by default; then a Python unix socket echo of the same 64 B (a Python child process
          echoing on a stream socketpair). Every reply is compared with what was sent, out of
          the timed span. Prints "result identity ..." and "result echo ...".
ranker    session.run() on MODEL at batch 1, cycling through the SETS input rows that
          swarm-bench wrote to DIR (in<i>.bin, raw rows of input i in the session's dtype) and
          checking every output against ref.bin (the in-process graph's f32 outputs, which the
          same worker kernels give bit for bit). Prints "result ranker ...".

Result lines: "result NAME p50=NS p99=NS p999=NS n=COUNT", nearest-rank percentiles in ns of
time.perf_counter_ns (CLOCK_MONOTONIC on Linux, the C side's clock). Everything else goes to
stderr.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time


def percentiles(ns):
    """(p50, p99, p99.9), nearest rank, as bench_stats_ns computes them."""
    v = sorted(ns)
    n = len(v)

    def rank(permille):
        k = (n * permille + 999) // 1000
        return v[max(1, min(n, k)) - 1]

    return rank(500), rank(990), rank(999)


def result(name, ns):
    p50, p99, p999 = percentiles(ns)
    print("result %s p50=%d p99=%d p999=%d n=%d" % (name, p50, p99, p999, len(ns)), flush=True)


def probe():
    try:
        import numpy
    except ImportError as e:
        print("skip numpy cannot be imported by %s (%s): tools/install-pydeps.sh puts it in "
              "~/.cache/swarm/pylib" % (sys.executable, e))
        return 0
    try:
        import swarm
    except Exception as e:  # ImportError, or the library lookup's own error
        print("skip the swarm package (python/) cannot be imported by %s: %s: %s"
              % (sys.executable, type(e).__name__, e))
        return 0
    lib = getattr(swarm, "library_version", None)
    lib = lib() if callable(lib) else getattr(swarm, "__version__", "?")
    print("ok python %s numpy %s swarm package %s (libswarm %s)"
          % (sys.version.split()[0], numpy.__version__, getattr(swarm, "__version__", "?"), lib))
    return 0


# ---- placement -----------------------------------------------------------------------------

def cpulist(text):
    """The cpus of a kernel cpulist such as "0-3,8"."""
    out = set()
    for part in (text or "").split(","):
        if part.strip():
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _shared_cpus(session):
    """(the cpus the session's worker shares with this process, its device, its cpulist)."""
    info = session.info()
    cpus = info.cpus if isinstance(info.cpus, str) else ",".join(map(str, info.cpus))
    return cpulist(cpus) & os.sched_getaffinity(0), info.device, cpus


def open_apart(client, model, **kw):
    """A session on model whose worker does not run on this process's cpus. swarmd places a
    session on the least loaded device, and the device that the C side just loaded may still
    count as busy, sending this session to the idle device beside the client (the same core:
    a figure of time slicing). Then this process moves to a cpu the worker does not use (on
    two cpus: the two sides swap cores, the same pair as the C side's); where there is none,
    the figure stands with a warning."""
    session = client.open(model, **kw)
    try:
        shared, device, cpus = _shared_cpus(session)
    except Exception:  # the figure stands without the check
        return session
    if not shared:
        return session
    free = set(range(os.cpu_count() or 1)) - cpulist(cpus)
    if free:
        try:
            os.sched_setaffinity(0, {min(free)})
            print("bench_client: the session's worker (%s) runs on cpus %s, this client's: "
                  "moved the client to cpu %d" % (device, cpus, min(free)), file=sys.stderr)
            return session
        except OSError:
            pass
    print("bench_client: warning: the session's worker (%s, cpus %s) runs on this client's "
          "cpus %s; this measures time slicing" % (device, cpus, sorted(shared)),
          file=sys.stderr)
    return session


# ---- identity ------------------------------------------------------------------------------

def identity(a):
    import numpy as np
    import swarm

    n, warm = a.iters, a.warmup
    ns = [0] * n
    sent = np.zeros((1, 64), dtype=np.uint8)
    reply = np.empty((1, 64), dtype=np.uint8)
    base = np.arange(64, dtype=np.uint8)
    perf = time.perf_counter_ns
    with swarm.connect(a.socket) as client, \
            open_apart(client, "identity", max_rows=1, slots=4, queue_depth=4) as session:
        for i in range(warm + n):
            np.add(base, i & 0xFF, out=sent[0], casting="unsafe")
            t0 = perf()
            r = session.request(1)
            r.input(0)[...] = sent
            r.submit()
            r.wait()
            reply[...] = r.output(0)
            r.release()
            t1 = perf()
            if i >= warm:
                ns[i - warm] = t1 - t0
            if not np.array_equal(reply, sent):
                print("bench_client: round trip %d: the output differs from the input" % i,
                      file=sys.stderr)
                return 1
    result("identity", ns)
    return echo(n, warm)


def echo(n, warm):
    """A Python unix socket echo of 64 B: this process against a Python child."""
    import numpy as np

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the echo server, on cpu 0 as swarm-bench's peers are
        a.close()
        try:
            if os.cpu_count() and os.cpu_count() >= 2:
                os.sched_setaffinity(0, {0})
            buf = bytearray(64)
            view = memoryview(buf)
            while True:
                got = 0
                while got < 64:
                    k = b.recv_into(view[got:])
                    if k == 0:
                        os._exit(0)
                    got += k
                b.sendall(view)
        finally:
            os._exit(0)
    b.close()
    ns = [0] * n
    msg = bytearray(64)
    buf = bytearray(64)
    view = memoryview(buf)
    perf = time.perf_counter_ns
    try:
        for i in range(warm + n):
            msg[0] = i & 0xFF
            t0 = perf()
            a.sendall(msg)
            got = 0
            while got < 64:
                k = a.recv_into(view[got:])
                if k == 0:
                    raise ConnectionError("the echo child went away")
                got += k
            t1 = perf()
            if i >= warm:
                ns[i - warm] = t1 - t0
            if buf != msg:
                print("bench_client: echo %d: the reply differs" % i, file=sys.stderr)
                return 1
    finally:
        a.close()
        os.waitpid(pid, 0)
    del np
    result("echo", ns)
    return 0


# ---- ranker --------------------------------------------------------------------------------

def ranker(a):
    import numpy as np
    import swarm

    with swarm.connect(a.socket) as client, \
            open_apart(client, a.model, max_rows=1) as session:
        feeds = []
        sets = []
        for i, spec in enumerate(session.inputs):
            shape = tuple(int(d) for d in spec.shape[1:])
            data = np.fromfile(os.path.join(a.data, "in%d.bin" % i), dtype=spec.dtype)
            sets.append((spec.name, data.reshape((a.sets, 1) + shape)))
        out = session.outputs[0]
        ref = np.fromfile(os.path.join(a.data, "ref.bin"), dtype=np.float32)
        ref = ref.reshape(a.sets, -1)
        for s in range(a.sets):
            feeds.append({name: data[s] for name, data in sets})
        warm = max(100, a.iters // 10)
        ns = [0] * a.iters
        perf = time.perf_counter_ns
        for i in range(warm + a.iters):
            s = i % a.sets
            t0 = perf()
            got = session.run(feeds[s])
            t1 = perf()
            if i >= warm:
                ns[i - warm] = t1 - t0
            y = got[out.name]
            if not np.array_equal(y.reshape(-1), ref[s]):
                diff = np.abs(y.reshape(-1).astype(np.float64) - ref[s]).max()
                print("bench_client: call %d (set %d): session.run()'s output differs from "
                      "the in-process one (max |diff| %g)" % (i, s, diff), file=sys.stderr)
                return 1
    result("ranker", ns)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("probe")
    p = sub.add_parser("identity")
    p.add_argument("--socket", required=True)
    p.add_argument("--iters", type=int, default=100000)
    p.add_argument("--warmup", type=int, default=10000)
    p = sub.add_parser("ranker")
    p.add_argument("--socket", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--sets", type=int, required=True)
    p.add_argument("--iters", type=int, default=100000)
    a = ap.parse_args(argv)
    if a.cmd == "probe":
        return probe()
    if a.cmd == "identity":
        return identity(a)
    return ranker(a)


if __name__ == "__main__":
    sys.exit(main())
