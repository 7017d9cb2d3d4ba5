#!/usr/bin/env python3
"""test_metrics.py: swarmd's metrics and health endpoints (--metrics) and `swarm health`,
end to end, against a real swarmd and its workers from this build (docs/metrics.md).

One case a run, each registered in ctest (tests/CMakeLists.txt):
  options     bad --metrics values are refused at startup, each with its message; a port in
              use is a startup error
  endpoint    requests made by example-client, scraped while it runs and after: counters
              exact and never going backwards (a worker killed included), histograms
              cumulative with +Inf equal to _count, health 200, 404 elsewhere
  status      `swarm status` exits 1 when no device is in service, `swarm health` 0/1/2,
              /health/ready 503 with the reason while the only device is drained
  weights     a registry model's weight loads counted per device: loads, bytes, time, rate
  refusals    a limit's refusals and the opens they failed, and a silent connection's hello
              timeout, counted by limit and reason
  promtool    `promtool check metrics` on a scrape (Debian's prometheus package)
  prometheus  a real Prometheus server scrapes swarmd and answers a query on
              swarm_requests_total through its HTTP API

Everything it starts (swarmd, example-client, prometheus) is killed when it ends, even on a
failure. A missing tool (promtool, prometheus) is a skip with the reason (exit 77), never a
pass. Waits are bounded but nothing asserts on how long anything took.
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
procs = []  # everything started, killed at exit
tmpdirs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    for d in tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait_for(what, pred, bound_s=60.0):
    """Polls pred until it returns a true value (returned); fails after bound_s."""
    end = time.monotonic() + bound_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail("gave up waiting for " + what)
        time.sleep(0.05)


class Swarmd:
    """A swarmd on a socket of its own with --metrics on a free port."""

    def __init__(self, bindir, devices="cpu:2", extra=()):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="swarm-metrics-")
        tmpdirs.append(self.dir)
        self.sock = os.path.join(self.dir, "swarmd.sock")
        self.logpath = os.path.join(self.dir, "swarmd.log")
        self.log = open(self.logpath, "w")
        self.p = subprocess.Popen(
            [os.path.join(bindir, "swarmd"), "--socket", self.sock, "--devices", devices,
             "--metrics", "127.0.0.1:0", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        procs.append(self.p)
        self.port = int(wait_for("swarmd's metrics_listening line", self._port))
        wait_for("swarmd's event=ready", lambda: "event=ready" in self.text())
        self.base = "http://127.0.0.1:%d" % self.port

    def text(self):
        with open(self.logpath) as f:
            return f.read()

    def _port(self):
        if self.p.poll() is not None:
            fail("swarmd exited %d:\n%s" % (self.p.returncode, self.text()))
        m = re.search(r"event=metrics_listening url=\S+ port=(\d+)", self.text())
        return m and m.group(1)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=30)
        self.log.close()

    def swarm(self, *args):
        r = subprocess.run([os.path.join(self.bindir, "swarm"), *args, "--socket", self.sock],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def client(self, sessions, requests, rows=4, wait=True):
        p = subprocess.Popen(
            [os.path.join(self.bindir, "example-client"), "--socket", self.sock, "--sessions",
             str(sessions), "--requests", str(requests), "--rows", str(rows)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        if wait:
            out = p.communicate(timeout=300)[0]
            check(p.returncode == 0, "example-client exited %d:\n%s" % (p.returncode, out))
        return p


def http(url, method="GET"):
    """(status, content type, body) of a request."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """The samples of an exposition: {(name, ((label, value), ...)): float}, and the
    families' types {name: type}. Fails on a line that is not the format."""
    samples, types = {}, {}
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ")
            types[name] = typ
            continue
        if ln.startswith("#") or not ln:
            continue
        m = LINE.match(ln)
        check(m, "not an exposition line: %r" % ln)
        labels = tuple(LABEL.findall(m.group(3) or ""))
        key = (m.group(1), labels)
        check(key not in samples, "sample twice: %r" % ln)
        samples[key] = float(m.group(4))
    return samples, types


def scrape(sd):
    status, ctype, body = http(sd.base + "/metrics")
    check(status == 200, "/metrics answered %d: %s" % (status, body))
    check(ctype == CONTENT_TYPE, "/metrics Content-Type %r, want %r" % (ctype, CONTENT_TYPE))
    samples, types = parse(body)
    check_histograms(samples, types)
    return samples


def total(samples, name, **want):
    """The sum of name's samples whose labels include want."""
    s = 0.0
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == name and all(d.get(k) == v2 for k, v2 in want.items()):
            s += v
    return s


def check_histograms(samples, types):
    """Every histogram series: buckets ascending in le and never decreasing, +Inf equal to
    _count, and _sum present."""
    series = {}
    for (n, labels), v in samples.items():
        if n.endswith("_bucket") and types.get(n[:-7]) == "histogram":
            d = dict(labels)
            le = d.pop("le")
            series.setdefault((n[:-7], tuple(sorted(d.items()))), []).append(
                (float("inf") if le == "+Inf" else float(le), v))
    for (name, labels), buckets in series.items():
        buckets.sort()
        counts = [c for _, c in buckets]
        check(all(a <= b for a, b in zip(counts, counts[1:])),
              "%s%s buckets not cumulative: %r" % (name, labels, buckets))
        check(buckets[-1][0] == float("inf"), "%s%s has no +Inf bucket" % (name, labels))
        key = tuple(sorted(labels))
        cnt = [v for (n, l), v in samples.items()
               if n == name + "_count" and tuple(sorted(l)) == key]
        sm = [v for (n, l), v in samples.items()
              if n == name + "_sum" and tuple(sorted(l)) == key]
        check(len(cnt) == 1 and len(sm) == 1, "%s%s lacks _count or _sum" % (name, labels))
        check(counts[-1] == cnt[0], "%s%s: +Inf %g, _count %g" % (name, labels, counts[-1],
                                                                  cnt[0]))


def check_monotonic(before, after, what):
    """No counter (nor histogram bucket, count or sum) went backwards from before to after."""
    for key, v in before.items():
        n = key[0]
        if not (n.endswith("_total") or n.endswith("_bucket") or n.endswith("_count")
                or n.endswith("_sum")):
            continue
        check(key in after, "%s: %r vanished" % (what, key))
        check(after[key] >= v, "%s: %r went from %g to %g" % (what, key, v, after[key]))


# ---- the cases ----------------------------------------------------------------------------


def case_options(bindir):
    bad = ["1.2.3.4", "1.2.3.4:", ":9464", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:80x",
           "localhost:9464", "[::1]", "[::1:9464", "::1:9464", "1.2.3.4.5:80", ""]
    for v in bad:
        r = subprocess.run([os.path.join(bindir, "swarmd"), "--metrics", v],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2, "--metrics %r: exit %d, want 2" % (v, r.returncode))
        check("--metrics takes ADDR:PORT" in r.stderr and v in r.stderr,
              "--metrics %r: no message naming it: %r" % (v, r.stderr))
        print("refused --metrics %r" % v)
    r = subprocess.run([os.path.join(bindir, "swarmd"), "--help"], capture_output=True,
                       text=True, timeout=30)
    check("--metrics ADDR:PORT" in r.stdout, "--help does not document --metrics")
    # A port in use: a startup error, logged, and no swarmd left behind.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    d = tempfile.mkdtemp(prefix="swarm-metrics-")
    tmpdirs.append(d)
    p = subprocess.Popen([os.path.join(bindir, "swarmd"), "--socket", d + "/s.sock",
                          "--devices", "cpu:1", "--metrics", "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(p)
    out = p.communicate(timeout=60)[0]
    holder.close()
    check(p.returncode == 1, "a port in use: exit %d, want 1:\n%s" % (p.returncode, out))
    check("event=startup_failed metrics=127.0.0.1:%d" % port in out,
          "a port in use: no startup_failed line:\n%s" % out)
    print("a port in use: refused at startup")


def case_endpoint(bindir):
    sd = Swarmd(bindir)
    for path, code, body in (("/health/live", 200, "live\n"), ("/health/ready", 200, "ready\n"),
                             ("/nope", 404, None), ("/metrics/", 404, None)):
        st, _, b = http(sd.base + path)
        check(st == code, "%s answered %d, want %d" % (path, st, code))
        check(body is None or b == body, "%s said %r, want %r" % (path, b, body))
    st, _, _ = http(sd.base + "/metrics", method="POST")
    check(st == 405, "POST /metrics answered %d, want 405" % st)
    first = scrape(sd)
    check(total(first, "swarm_ready") == 1, "swarm_ready is not 1 on a ready swarmd")
    check(total(first, "swarm_requests_total") == 0, "requests counted before any")
    S, N, ROWS = 2, 4000, 4
    # Scraped while the client runs: every scrape parses, and nothing goes backwards.
    client = sd.client(S, N, ROWS, wait=False)
    prev, scrapes = first, 0
    while client.poll() is None or scrapes == 0:
        cur = scrape(sd)
        check_monotonic(prev, cur, "under load")
        prev, scrapes = cur, scrapes + 1
    out = client.communicate()[0]
    check(client.returncode == 0, "example-client exited %d:\n%s" % (client.returncode, out))
    after = scrape(sd)
    check_monotonic(prev, after, "after the load")
    got = total(after, "swarm_requests_total", model="affine", version="1")
    check(got == S * N, "swarm_requests_total{model=affine} %g, want %d" % (got, S * N))
    got = total(after, "swarm_rows_total", model="affine")
    check(got == S * N * ROWS, "swarm_rows_total %g, want %d" % (got, S * N * ROWS))
    check(total(after, "swarm_request_failures_total") == 0, "failures counted")
    check(total(after, "swarm_session_opens_total") == S, "opens %g, want %d"
          % (total(after, "swarm_session_opens_total"), S))
    lat = total(after, "swarm_request_latency_seconds_count", model="affine")
    check(0 < lat <= S * N, "latency samples %g, want 1..%d" % (lat, S * N))
    check(total(after, "swarm_compute_seconds_count", model="affine") > 0, "no compute runs")
    check(total(after, "swarm_device_state", state="active") == 2, "not 2 devices active")
    print("%d scrapes under load; %d requests counted exactly" % (scrapes, S * N))
    kill_a_worker(sd, after, S * N)
    more = 500
    sd.client(1, more, ROWS)
    final = scrape(sd)
    got = total(final, "swarm_requests_total", model="affine")
    check(got == S * N + more, "after a worker died and more requests: %g, want %d"
          % (got, S * N + more))
    sd.stop()
    print("counters stayed exact and monotonic across a worker's death")


def kill_a_worker(sd, before, want):
    """SIGKILLs the worker that served the most, waits for its device to serve again, and
    checks that no counter went backwards."""
    rc, out, err = sd.swarm("status", "--json")
    check(rc == 0, "swarm status --json exited %d: %s" % (rc, err))
    devs = json.loads(out)["devices"]
    victim = max(devs, key=lambda d: d["requests"])
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted():
        s = scrape(sd)
        return (total(s, "swarm_worker_restarts_total", device=victim["name"]) >= 1
                and total(s, "swarm_device_state", device=victim["name"], state="active") == 1
                and s)
    after = wait_for("the killed worker's device to serve again", restarted)
    check_monotonic(before, after, "after a worker was killed")
    got = total(after, "swarm_requests_total", model="affine")
    check(got == want, "after the kill: %g requests, want %d" % (got, want))
    print("killed worker pid %d on %s; restarted" % (victim["pid"], victim["name"]))


def case_status(bindir):
    sd = Swarmd(bindir, devices="cpu:1")
    rc, out, err = sd.swarm("status")
    check(rc == 0, "swarm status on a serving swarmd exited %d: %s" % (rc, err))
    rc, out, err = sd.swarm("health")
    check(rc == 0 and out == "ready\n", "swarm health: %d %r %r" % (rc, out, err))
    rc, out, err = sd.swarm("status", "--check")
    check(rc == 0 and out == "ready\n", "swarm status --check: %d %r" % (rc, out))
    rc, out, err = sd.swarm("device", "drain", "cpu:0")
    check(rc == 0, "swarm device drain: %d %s %s" % (rc, out, err))
    wait_for("cpu:0 parked", lambda: json.loads(sd.swarm("status", "--json")[1])["devices"][0]
             ["state"] == "parked")
    rc, out, err = sd.swarm("status")
    check(rc == 1, "swarm status with no device in service exited %d, want 1" % rc)
    check("no device is in service" in err, "swarm status said nothing of it: %r" % err)
    check("cpu:0" in out, "swarm status printed no table: %r" % out)
    rc, out, err = sd.swarm("status", "--json")
    check(rc == 1, "swarm status --json with no device in service exited %d" % rc)
    doc = json.loads(out)
    check(doc["ready"] is False and doc["ready_reason"], "JSON readiness: %r" % doc)
    rc, out, err = sd.swarm("health")
    check(rc == 1 and out.startswith("not ready: ") and "no device" in out,
          "swarm health with no device: %d %r %r" % (rc, out, err))
    st, _, body = http(sd.base + "/health/ready")
    check(st == 503 and "no device" in body, "/health/ready: %d %r" % (st, body))
    st, _, _ = http(sd.base + "/health/live")
    check(st == 200, "/health/live on a live swarmd with no device: %d" % st)
    s = scrape(sd)
    check(total(s, "swarm_ready") == 0, "swarm_ready is not 0 when not ready")
    check(total(s, "swarm_device_state", device="cpu:0", state="parked") == 1, "not parked")
    check(total(s, "swarm_device_drain_seconds_count", device="cpu:0") == 1, "drain not timed")
    rc, out, err = sd.swarm("device", "resume", "cpu:0")
    check(rc == 0, "swarm device resume: %d %s %s" % (rc, out, err))
    wait_for("swarm health 0 after resume", lambda: sd.swarm("health")[0] == 0)
    st, _, _ = http(sd.base + "/health/ready")
    check(st == 200, "/health/ready after resume: %d" % st)
    sd.stop()
    rc, out, err = sd.swarm("health")
    check(rc == 2 and "cannot reach" in err, "swarm health, no swarmd: %d %r" % (rc, err))
    rc, out, err = sd.swarm("status")
    check(rc == 1, "swarm status, no swarmd: %d" % rc)
    rc, out, err = sd.swarm("health", "--bogus")
    check(rc == 2, "swarm health --bogus: %d" % rc)
    print("swarm status and swarm health exit as documented")


def case_weights(bindir):
    here = os.path.dirname(os.path.abspath(__file__))
    d = tempfile.mkdtemp(prefix="swarm-metrics-reg-")
    tmpdirs.append(d)
    r = subprocess.run([sys.executable, os.path.join(here, "..", "..", "tools",
                                                     "make-affine-model.py"), d + "/m"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "make-affine-model.py: %s%s" % (r.stdout, r.stderr))
    swarm = os.path.join(bindir, "swarm")
    for args in (["init"], ["publish", "affine", "--weights", d + "/m/affine.safetensors",
                            "--manifest", d + "/m/affine.json"]):
        r = subprocess.run([swarm, "registry", "--registry", d + "/reg", *args],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "swarm registry %s: %s%s" % (args[0], r.stdout, r.stderr))
    blob = os.path.getsize(d + "/m/affine.safetensors")
    sd = Swarmd(bindir, extra=("--registry", d + "/reg"))
    S, N = 2, 300
    sd.client(S, N)
    s = scrape(sd)
    check(total(s, "swarm_requests_total", model="affine", version="1") == S * N,
          "requests of the registry's affine")
    served = [dict(l)["device"] for (n, l), v in s.items()
              if n == "swarm_requests_total" and v > 0]
    check(served, "no device served")
    for dev in served:
        loads = total(s, "swarm_weight_loads_total", model="affine", device=dev)
        check(loads >= 1, "%s: %g weight loads" % (dev, loads))
        got = total(s, "swarm_weight_load_bytes_total", model="affine", device=dev)
        check(got == loads * blob, "%s: %g bytes loaded, want %g x %d" % (dev, got, loads, blob))
        check(total(s, "swarm_weight_load_seconds_total", model="affine", device=dev) > 0,
              "%s: no load time" % dev)
        check(total(s, "swarm_weight_load_bytes_per_second", model="affine", device=dev) > 0,
              "%s: no load rate" % dev)
        check(total(s, "swarm_weight_upload_bytes_total", model="affine", device=dev) == 0,
              "%s: a CPU device uploaded weights" % dev)
    print("weight loads counted on %s (%d-byte blob)" % (", ".join(served), blob))
    sd.stop()


def case_refusals(bindir):
    sd = Swarmd(bindir, devices="cpu:1",
                extra=("--max-sessions-per-client", "1", "--hello-timeout-ms", "200"))
    p = sd.client(2, 10, wait=False)
    out = p.communicate(timeout=120)[0]
    check(p.returncode != 0, "a second session past the limit was not refused:\n" + out)
    s = scrape(sd)
    check(total(s, "swarm_refusals_total", limit="sessions_per_client") == 1,
          "refusals{sessions_per_client} %g, want 1"
          % total(s, "swarm_refusals_total", limit="sessions_per_client"))
    check(total(s, "swarm_open_failures_total", reason="limit") == 1, "open failures by limit")
    check(total(s, "swarm_open_failures_total") == 1, "other open failures counted")
    check(total(s, "swarm_session_opens_total") == 1, "opens %g, want 1"
          % total(s, "swarm_session_opens_total"))
    # A connection that never says hello is closed at its deadline, and counted.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(sd.sock)
    wait_for("the hello timeout counted", lambda: total(
        scrape(sd), "swarm_refusals_total", limit="hello_timeout") == 1)
    c.close()
    others = total(scrape(sd), "swarm_refusals_total") - 2
    check(others == 0, "%g refusals counted under other limits" % others)
    print("refusals counted by limit; the failed open by reason")
    sd.stop()


def case_autoscale(bindir):
    """The autoscaler's decisions: with every device parked, a first open makes it wake one;
    each decision it logs (event=autoscale action= reason=) is counted under its labels, and
    nothing else is."""
    sd = Swarmd(bindir, devices="cpu:2", extra=("--autoscale", "--autoscale-idle", "0"))
    sd.client(1, 200)

    def logged():
        n = {}
        for a, r in re.findall(r"event=autoscale action=(\w+) device=\S+ reason=(\w+)",
                               sd.text()):
            n[(a, r)] = n.get((a, r), 0) + 1
        return n
    seen = {}

    def agree():
        # The log before and after the scrape alike: no decision was made in between, so
        # the scrape must count exactly what the log says.
        before = logged()
        s = scrape(sd)
        if logged() != before:
            return False
        seen.clear()
        seen.update(before)
        got = {(a, r): total(s, "swarm_autoscale_decisions_total", action=a, reason=r)
               for (a, r) in before}
        return got == before and total(s, "swarm_autoscale_decisions_total") == sum(
            before.values())
    wait_for("the decisions counted as logged (log: %s)" % logged(), agree, bound_s=30)
    check(sum(n for (a, _), n in seen.items() if a == "wake") >= 1,
          "no wake decision was logged: %s" % seen)
    print("autoscaler decisions counted by action and reason: %s" % seen)
    sd.stop()


def need_tool(name):
    """The path of one of the prometheus package's programs; the case is skipped without."""
    tool = shutil.which(name)
    if not tool:
        print("SKIP: %s not found (Debian: apt-get install prometheus; "
              "tools/install-deps.sh installs it)" % name)
        sys.exit(SKIP)
    return tool


def case_promtool(bindir):
    tool = need_tool("promtool")
    sd = Swarmd(bindir)
    sd.client(2, 300)
    sd.swarm("device", "drain", "cpu:1")  # a drain and its histogram too
    wait_for("cpu:1 parked", lambda: total(scrape(sd), "swarm_device_drain_seconds_count",
                                           device="cpu:1") == 1)
    body = http(sd.base + "/metrics")[2]
    r = subprocess.run([tool, "check", "metrics"], input=body, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "promtool check metrics exited %d:\n%s%s" %
          (r.returncode, r.stdout, r.stderr))
    print("promtool check metrics: clean (%d lines)" % len(body.splitlines()))
    sd.stop()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def case_prometheus(bindir):
    tool = need_tool("prometheus")
    sd = Swarmd(bindir)
    S, N = 2, 700
    sd.client(S, N)
    cfg = os.path.join(sd.dir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: swarmd\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % sd.port)
    port = free_port()
    plog = open(os.path.join(sd.dir, "prometheus.log"), "w")
    p = subprocess.Popen([tool, "--config.file=" + cfg,
                          "--storage.tsdb.path=" + os.path.join(sd.dir, "tsdb"),
                          "--web.listen-address=127.0.0.1:%d" % port],
                         stdout=plog, stderr=subprocess.STDOUT)
    procs.append(p)
    api = "http://127.0.0.1:%d/api/v1/query?query=" % port

    def query(q):
        if p.poll() is not None:
            with open(plog.name) as f:
                fail("prometheus exited %d:\n%s" % (p.returncode, f.read()[-4000:]))
        try:
            st, _, body = http(api + urllib.parse.quote(q))
        except (urllib.error.URLError, ConnectionError, OSError):
            return None
        if st != 200:
            return None
        res = json.loads(body)["data"]["result"]
        return res and float(res[0]["value"][1])

    got = wait_for("prometheus to answer sum(swarm_requests_total) == %d" % (S * N),
                   lambda: query('sum(swarm_requests_total{model="affine"})') == S * N, 120)
    check(query('up{job="swarmd"}') == 1, "prometheus says up{job=swarmd} is not 1")
    print("prometheus answered sum(swarm_requests_total) = %d" % (S * N))
    p.terminate()
    p.wait(timeout=30)
    sd.stop()
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the build's bin directory")
    ap.add_argument("--case", required=True,
                    choices=["options", "endpoint", "status", "weights", "refusals",
                             "autoscale", "promtool", "prometheus"])
    a = ap.parse_args()
    for prog in ("swarmd", "swarm-worker", "swarm", "example-client"):
        check(os.access(os.path.join(a.bin, prog), os.X_OK),
              "%s is not built in %s" % (prog, a.bin))
    globals()["case_" + a.case](a.bin)
    print("PASS")


if __name__ == "__main__":
    main()
