"""swarm-bench's python case (bench/cases_python.c, bench/python/bench_client.py) kept from
rotting: a --quick run of `swarm-bench --cases python` whose three rows must be measured (not
skipped: this test runs where numpy and the package are on PYTHONPATH), with sane numbers and
every output checked by the case itself. It asserts that the case works, never how fast
anything is (targets are read from the benchmark's table, not from tests).

SWARM_BUILD_DIR names the build (default build/). Runs under pytest, or alone:
python3 tests/python/test_bench_python.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SWARM_BUILD_DIR") or os.path.join(ROOT, "build")
ROWS = ("python 64B identity", "python vs py socket echo", "python ranker b1 run()")


def _bench(*args):
    with tempfile.TemporaryDirectory(prefix="swarm-pybench-") as tmp:
        out = os.path.join(tmp, "bench.json")
        env = dict(os.environ)
        env.setdefault("SWARM_BENCH_PYTHON", sys.executable)  # the interpreter of this test
        p = subprocess.run([os.path.join(BUILD, "bin", "swarm-bench"), "--cases", "python",
                            "--json", out] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=600, env=env)
        assert p.returncode == 0, "swarm-bench exited %d:\n%s\n%s" % (p.returncode, p.stdout,
                                                                      p.stderr[-4000:])
        with open(out) as f:
            return json.load(f), p.stdout


def test_python_case_quick():
    doc, table = _bench("--quick")
    rows = {r["name"]: r for r in doc["cases"]}
    for name in ROWS:
        assert name in rows, "no row %r in:\n%s" % (name, table)
        r = rows[name]
        assert not r.get("skipped"), "%s skipped: %s" % (name, r.get("note"))
        assert 0 < r["p50"] <= r["p99"] <= r["p999"], r
        assert 0 < r["baseline"]["p50"] <= r["baseline"]["p99"], r
        assert r["ratio"] > 0, r
    ident = rows["python 64B identity"]
    assert ident["baseline"]["name"] == "C client, same swarmd"
    assert ident["target"] == "added <= 2 us at p50" and ident["met"] in (True, False)
    echo = rows["python vs py socket echo"]
    # the same Python round trip, against the echo: ratio = echo p50 / python p50
    assert echo["p50"] == ident["p50"]
    assert abs(echo["ratio"] - echo["baseline"]["p50"] / echo["p50"]) < 1e-3 * echo["ratio"]
    rk = rows["python ranker b1 run()"]
    assert rk["baseline"]["name"] == "same graph in-process" and rk["target"] is None
    assert "every output equal to the in-process one" in rk["note"]
    assert "python 64B identity" in table


def test_python_case_skips_with_the_reason():
    """Without an importable package the rows are skipped, saying why, and the run succeeds."""
    env_py = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = ""
    try:
        os.environ["SWARM_BENCH_PYTHON"] = sys.executable + "-definitely-missing"
        doc, _ = _bench("--quick")
    finally:
        os.environ["PYTHONPATH"] = env_py
        del os.environ["SWARM_BENCH_PYTHON"]
    rows = {r["name"]: r for r in doc["cases"]}
    for name in ROWS:
        assert rows[name].get("skipped") is True, rows[name]
        assert rows[name]["note"].startswith("skipped: "), rows[name]


if __name__ == "__main__":
    failed = 0
    for name, fn in sorted((k, v) for k, v in globals().items() if k.startswith("test_")):
        try:
            fn()
            print("ok    %s" % name)
        except Exception as e:
            failed += 1
            print("FAIL  %s: %s: %s" % (name, type(e).__name__, e))
    print("%d failed" % failed)
    sys.exit(1 if failed else 0)
