#!/usr/bin/env python3
"""check_manifests.py: the deployment files (Containerfile, deploy/kubernetes/*.yaml) read
against each other and against the build, since neither a container engine nor a Kubernetes
schema checker is on Debian 12 (kubeconform and kubeval are not packaged). Two checks:

  check_manifests.py structure SOURCE_DIR BUILD_DIR
      Every manifest parses (duplicate keys are errors, as the API server's strict decoding
      makes them), has apiVersion, kind and metadata.name, and is a kind this checker knows.
      Workloads: selectors match their template's labels, mounts name declared volumes, no
      hostIPC/hostPID/hostNetwork (the point of docs/deploy.md). swarmd's DaemonSet: the
      socket's directory is a hostPath mount, the client Deployment mounts the same host path
      and its SWARM_SOCKET names the same socket, the Prometheus annotations, the probes and
      the metrics port all agree with --metrics, a GPU limit is set, and the clients may pass
      --allow-group. HPA and KEDA target the Deployment and read metrics that exist in the
      adapter's rules. Containerfile: known instructions, stages referenced after they are
      defined, COPY sources present, every top-level folder copied or named as left out,
      EXPOSE and HEALTHCHECK on --metrics' port, VOLUME holding the socket, a non-root USER,
      and the runtime stage's packages covering every library that the built programs name
      (readelf NEEDED, mapped to Debian packages with dpkg -S).

  check_manifests.py flags SOURCE_DIR BUILD_DIR
      Every swarmd option in the Containerfile's ENTRYPOINT and the DaemonSet's command and
      args is one `swarmd --help` of this build lists; then, against a live swarmd started
      with --metrics 127.0.0.1:0, every swarm_* metric the manifests query is a family its
      /metrics exposes. A swarmd without --metrics is a failure: the manifests' probes and
      scrapes need it.

Exit 0 when all hold, 1 listing every failure.
"""
import ctypes
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import yaml
except ImportError:
    print("check_manifests: FAIL: python3-yaml is not installed (tools/install-deps.sh)")
    sys.exit(1)

FAILURES = []

KNOWN_KINDS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "DaemonSet": "apps/v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ScaledObject": "keda.sh/v1alpha1",
}
WORKLOADS = ("DaemonSet", "Deployment")

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
                "SHELL", "MAINTAINER"}
# Top-level folders the image does not need: tests (SWARM_TESTS=OFF), the deployment files
# themselves, CI scripts, and the Python client (a client installs it where it runs, with
# pip: docs/python.md; swarmd's image serves, it calls nothing from Python).
NOT_COPIED = {"tests", "deploy", "python"}
# Libraries every Debian image has (libc6, libgcc-s1 are Essential).
BASE_PACKAGES = {"libc6", "libgcc-s1"}
PROGRAMS = ("swarmd", "swarm-worker", "swarm", "swarm-bench")


def fail(where, why):
    FAILURES.append(f"{where}: {why}")


# ---- YAML ----------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_manifests(kdir):
    """[(file, index, doc)] of every document under kdir; parse errors are failures."""
    docs = []
    files = sorted(f for f in os.listdir(kdir) if f.endswith((".yaml", ".yml")))
    if not files:
        fail(kdir, "no manifests")
    for f in files:
        path = os.path.join(kdir, f)
        try:
            with open(path) as fh:
                for i, d in enumerate(yaml.load_all(fh, Loader=StrictLoader)):
                    if d is not None:
                        docs.append((f, i, d))
        except yaml.YAMLError as e:
            fail(f, f"does not parse: {e}")
    return docs


def dig(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def check_identity(f, i, d):
    where = f"{f}[{i}]"
    kind, api = d.get("kind"), d.get("apiVersion")
    name = dig(d, "metadata", "name")
    if not isinstance(kind, str) or not isinstance(api, str) or not isinstance(name, str):
        fail(where, "needs apiVersion, kind and metadata.name")
        return None
    if kind not in KNOWN_KINDS:
        fail(where, f"kind {kind} is not one this checker knows: add it here with its checks")
    elif KNOWN_KINDS[kind] != api:
        fail(where, f"{kind} is served as {KNOWN_KINDS[kind]}, not {api}")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        fail(where, f"metadata.name {name!r} is not a DNS-1123 label")
    return f"{kind}/{name}"


def check_workload(where, d):
    """Selector, containers, mounts and host namespaces of a DaemonSet or Deployment."""
    sel = dig(d, "spec", "selector", "matchLabels") or {}
    labels = dig(d, "spec", "template", "metadata", "labels") or {}
    if not sel:
        fail(where, "spec.selector.matchLabels is empty")
    for k, v in sel.items():
        if labels.get(k) != v:
            fail(where, f"selector {k}={v} does not match the template's labels {labels}")
    pod = dig(d, "spec", "template", "spec") or {}
    for host in ("hostIPC", "hostPID", "hostNetwork"):
        if pod.get(host):
            fail(where, f"{host}: true; docs/deploy.md says swarm needs none")
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    containers = pod.get("containers") or []
    if not containers:
        fail(where, "no containers")
    for c in containers + (pod.get("initContainers") or []):
        if not c.get("name") or not c.get("image"):
            fail(where, "a container without name or image")
        for m in c.get("volumeMounts", []):
            if m.get("name") not in volumes:
                fail(where, f"container {c.get('name')} mounts undeclared volume {m.get('name')}")
    return pod, volumes


def swarmd_container(pod):
    for c in pod.get("containers", []):
        cmd = c.get("command") or []
        if cmd and os.path.basename(str(cmd[0])) == "swarmd":
            return c
    return None


def flag_value(argv, flag):
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def metrics_port(argv):
    v = flag_value(argv, "--metrics")
    m = re.fullmatch(r"(.*):(\d+)", v or "")
    return int(m.group(2)) if m else None


def mount_of(container, volumes, path):
    """(mount, volume) whose mountPath is path, or (None, None)."""
    for m in container.get("volumeMounts", []):
        if m.get("mountPath") == path:
            return m, volumes.get(m.get("name"))
    return None, None


def probe_port(container, probe):
    """The port number an httpGet probe names (a number or a port's name)."""
    port = dig(container, probe, "httpGet", "port")
    if isinstance(port, str) and not port.isdigit():
        for p in container.get("ports", []):
            if p.get("name") == port:
                return p.get("containerPort")
        return None
    return int(port) if port is not None else None


def check_swarmd_daemonset(where, d, pod, volumes):
    """swarmd's DaemonSet; returns what the clients must agree with, or None."""
    c = swarmd_container(pod)
    if not c:
        fail(where, "no container whose command runs swarmd")
        return None
    argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    sock = flag_value(argv, "--socket")
    port = metrics_port(argv)
    if not sock or not sock.startswith("/"):
        fail(where, "swarmd needs --socket with an absolute path")
        return None
    if port is None:
        fail(where, "swarmd needs --metrics ADDR:PORT for its probes and Prometheus")
    sock_dir = os.path.dirname(sock)
    m, vol = mount_of(c, volumes, sock_dir)
    host_dir = dig(vol, "hostPath", "path") if vol else None
    if not host_dir:
        fail(where, f"the socket's directory {sock_dir} is not a hostPath mount")
    elif m.get("readOnly"):
        fail(where, f"{sock_dir} is mounted read-only: swarmd creates its socket there")
    ann = dig(d, "spec", "template", "metadata", "annotations") or {}
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics"}
    for k, v in want.items():
        if ann.get(k) != v:
            fail(where, f"annotation {k} is {ann.get(k)!r}, want {v!r} (strings, as the API)")
    ports = [p.get("containerPort") for p in c.get("ports", [])]
    if port not in ports:
        fail(where, f"--metrics port {port} is not among the container's ports {ports}")
    for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live"),
                        ("startupProbe", None)):
        if probe not in c:
            if path:
                fail(where, f"no {probe}")
            continue
        got = dig(c, probe, "httpGet", "path")
        if path and got != path:
            fail(where, f"{probe} asks {got}, want {path}")
        if got not in ("/health/ready", "/health/live"):
            fail(where, f"{probe} asks {got}, which swarmd does not serve")
        if probe_port(c, probe) != port:
            fail(where, f"{probe} is on port {probe_port(c, probe)}, not --metrics' {port}")
    if "nvidia.com/gpu" not in (dig(c, "resources", "limits") or {}):
        fail(where, "no nvidia.com/gpu limit (the NVIDIA device plugin's resource)")
    groups = [str(g) for i, a in enumerate(argv) if a == "--allow-group" and i + 1 < len(argv)
              for g in [argv[i + 1]]]
    sc = pod.get("securityContext") or {}
    if not sc.get("runAsNonRoot") or not sc.get("runAsUser"):
        fail(where, "swarmd should run as a non-root uid (runAsNonRoot, runAsUser)")
    return {"host_dir": host_dir, "socket": os.path.basename(sock), "groups": groups,
            "uid": sc.get("runAsUser"), "namespace": dig(d, "metadata", "namespace")}


def check_client(where, d, pod, volumes, served):
    """A Deployment that mounts swarmd's host directory; False when it mounts none."""
    for c in pod.get("containers", []):
        for m in c.get("volumeMounts", []):
            vol = volumes.get(m.get("name")) or {}
            if dig(vol, "hostPath", "path") != served["host_dir"]:
                continue
            env = {e.get("name"): e.get("value") for e in c.get("env", [])}
            want = os.path.join(m["mountPath"], served["socket"])
            if env.get("SWARM_SOCKET") != want:
                fail(where, f"SWARM_SOCKET is {env.get('SWARM_SOCKET')!r}, the socket is "
                     f"at {want} in this container")
            sc = pod.get("securityContext") or {}
            sup = [str(g) for g in sc.get("supplementalGroups", [])]
            if sc.get("runAsUser") != served["uid"] and not set(sup) & set(served["groups"]):
                fail(where, f"runs as uid {sc.get('runAsUser')}, not swarmd's "
                     f"{served['uid']}, and has none of its --allow-group {served['groups']}")
            return True
    return False


def adapter_metrics(docs):
    """Names prometheus-adapter's external rules define (ConfigMaps with config.yaml)."""
    names = set()
    for f, i, d in docs:
        if d.get("kind") != "ConfigMap" or "config.yaml" not in (d.get("data") or {}):
            continue
        try:
            cfg = yaml.load(d["data"]["config.yaml"], Loader=StrictLoader) or {}
        except yaml.YAMLError as e:
            fail(f"{f}[{i}]", f"config.yaml does not parse: {e}")
            continue
        for rule in cfg.get("externalRules", []) + cfg.get("rules", []):
            if not rule.get("seriesQuery") or not rule.get("metricsQuery"):
                fail(f"{f}[{i}]", "a rule without seriesQuery or metricsQuery")
            names.add(dig(rule, "name", "as") or rule.get("seriesQuery"))
    return names


def check_scalers(docs, deployments):
    defined = adapter_metrics(docs)
    for f, i, d in docs:
        where, kind = f"{f}[{i}]", d.get("kind")
        if kind not in ("HorizontalPodAutoscaler", "ScaledObject"):
            continue
        ref = dig(d, "spec", "scaleTargetRef") or {}
        key = (dig(d, "metadata", "namespace"), ref.get("name"))
        if ref.get("kind", "Deployment") != "Deployment" or key not in deployments:
            fail(where, f"scaleTargetRef {ref} is no Deployment of these manifests")
        if kind == "HorizontalPodAutoscaler":
            lo, hi = dig(d, "spec", "minReplicas", default=1), dig(d, "spec", "maxReplicas")
            if not isinstance(hi, int) or lo > hi:
                fail(where, f"minReplicas {lo} and maxReplicas {hi}")
            for m in dig(d, "spec", "metrics", default=[]) or [None]:
                name = dig(m, "external", "metric", "name") if m else None
                if not m or m.get("type") != "External" or name not in defined:
                    fail(where, f"metric {name} is not an external metric of the adapter "
                         f"rules ({sorted(defined)})")
        else:
            for t in dig(d, "spec", "triggers", default=[]) or [None]:
                md = (t or {}).get("metadata") or {}
                if (t or {}).get("type") != "prometheus" or not md.get("query") or \
                        not re.fullmatch(r"[0-9.]+", str(md.get("threshold", ""))):
                    fail(where, "each trigger: type prometheus, a query, a numeric threshold")


def check_kubernetes(kdir):
    docs = load_manifests(kdir)
    served, clients, deployments = None, 0, set()
    for f, i, d in docs:
        ident = check_identity(f, i, d)
        if not ident or d["kind"] not in WORKLOADS:
            continue
        where = f"{f}: {ident}"
        pod, volumes = check_workload(where, d)
        if d["kind"] == "DaemonSet" and swarmd_container(pod):
            served = check_swarmd_daemonset(where, d, pod, volumes)
    for f, i, d in docs:
        if d.get("kind") == "Deployment":
            deployments.add((dig(d, "metadata", "namespace"), dig(d, "metadata", "name")))
            if served:
                pod = dig(d, "spec", "template", "spec") or {}
                volumes = {v.get("name"): v for v in pod.get("volumes", [])}
                clients += check_client(f"{f}: Deployment", d, pod, volumes, served)
    if not served:
        fail(kdir, "no DaemonSet running swarmd")
    elif served["host_dir"] and not clients:
        fail(kdir, f"no client Deployment mounts swarmd's {served['host_dir']}")
    check_scalers(docs, deployments)
    return docs


# ---- Containerfile ----------------------------------------------------------------------------


def containerfile_lines(path):
    """[(line number, instruction, arguments)]: continuations joined, comments dropped."""
    out, buf, start = [], "", 0
    with open(path) as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#") or (not buf and not line.strip()):
                continue
            if not buf:
                start = n
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            word, _, rest = buf.strip().partition(" ")
            out.append((start, word, rest.strip()))
            buf = ""
    if buf:
        fail(path, f"line {start}: a continuation runs past the end of the file")
    return out


def exec_form(where, args):
    """The JSON array of an exec-form instruction, or None (a failure)."""
    try:
        v = json.loads(args)
        if isinstance(v, list) and all(isinstance(a, str) for a in v):
            return v
    except json.JSONDecodeError:
        pass
    fail(where, f"not an exec-form JSON array: {args}")
    return None


def apt_packages(run_args):
    """Packages an `apt-get install` in a RUN names."""
    pkgs = []
    for cmd in re.split(r"&&|;", run_args):
        words = shlex.split(cmd)
        if "apt-get" in words and "install" in words:
            pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def parse_stages(path):
    """[{name, base, instrs: [(n, word, args)]}] and the ARGs declared before the first FROM."""
    stages, global_args = [], set()
    for n, word, args in containerfile_lines(path):
        where = f"Containerfile:{n}"
        if word.upper() != word or word not in INSTRUCTIONS:
            fail(where, f"unknown instruction {word} (or not upper case)")
            continue
        if word == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            if not m:
                fail(where, f"FROM {args}")
                continue
            for var in re.findall(r"\$\{?(\w+)", m.group(1)):
                if var not in global_args:
                    fail(where, f"FROM uses ${var}, which no ARG before the first FROM declares")
            stages.append({"name": m.group(2), "base": m.group(1), "instrs": []})
        elif not stages:
            if word != "ARG":
                fail(where, f"{word} before the first FROM")
            global_args.add(args.split("=")[0])
        else:
            stages[-1]["instrs"].append((n, word, args))
    if not stages:
        fail(path, "no FROM")
    return stages


def check_copies(stages, src):
    """COPY --from names an earlier stage; plain COPY sources exist; every top-level folder of
    the repository is copied or named in NOT_COPIED."""
    copied = set()
    for k, st in enumerate(stages):
        earlier = {s["name"] for s in stages[:k]} | {str(j) for j in range(k)}
        for n, word, args in st["instrs"]:
            if word not in ("COPY", "ADD"):
                continue
            words = args.split()
            opts = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            frm = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
            if frm:
                if frm[0] not in earlier:
                    fail(f"Containerfile:{n}", f"--from={frm[0]} is no earlier stage")
                continue
            for p in paths[:-1]:
                if not os.path.exists(os.path.join(src, p)):
                    fail(f"Containerfile:{n}", f"COPY source {p} is not in the repository")
                copied.add(p.rstrip("/").split("/")[0])
    for d in top_level_dirs(src):
        if d not in copied and d not in NOT_COPIED:
            fail("Containerfile", f"the repository's folder {d}/ is neither copied into the "
                 "build stage nor named as not needed (NOT_COPIED in this checker)")


def top_level_dirs(src):
    try:
        out = subprocess.run(["git", "-C", src, "ls-files"], capture_output=True, text=True,
                             check=True).stdout.split("\n")
        dirs = {f.split("/")[0] for f in out if "/" in f}
    except (OSError, subprocess.CalledProcessError):
        dirs = {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))
                and not re.fullmatch(r"build(-.*)?|demo-out", d)}
    return sorted(d for d in dirs if not d.startswith("."))


def check_containerfile(src, build):
    path = os.path.join(src, "Containerfile")
    stages = parse_stages(path)
    if len(stages) < 2:
        fail(path, "a build stage and a runtime stage are expected")
        return None
    check_copies(stages, src)
    build_st, run_st = stages[0], stages[-1]
    by = {}
    for n, word, args in run_st["instrs"]:
        by.setdefault(word, []).append((n, args))
    if not any("cmake --install" in a for _, w, a in build_st["instrs"] if w == "RUN"):
        fail(path, "the build stage does not `cmake --install`")
    if not any("--from=" in a for _, a in by.get("COPY", [])):
        fail(path, "the runtime stage copies nothing from the build stage")
    entry = by.get("ENTRYPOINT", [(0, "")])[-1]
    argv = exec_form(f"Containerfile:{entry[0]}", entry[1]) or []
    if not argv or os.path.basename(argv[0]) != "swarmd":
        fail(path, f"ENTRYPOINT {argv} does not run swarmd")
    port, sock = metrics_port(argv), flag_value(argv, "--socket")
    exposed = {int(p.split("/")[0]) for _, a in by.get("EXPOSE", []) for p in a.split()}
    if port is None or port not in exposed:
        fail(path, f"EXPOSE {sorted(exposed)} does not hold --metrics' port {port}")
    health = " ".join(a for _, a in by.get("HEALTHCHECK", []))
    if not re.search(rf"\b{port}\b.*/health/(live|ready)", health):
        fail(path, f"HEALTHCHECK does not ask /health/live or /health/ready on port {port}")
    vols = set()
    for n, a in by.get("VOLUME", []):
        vols |= set(exec_form(f"Containerfile:{n}", a) or []) if a.startswith("[") else set(
            a.split())
    if not sock or os.path.dirname(sock) not in vols:
        fail(path, f"VOLUME {sorted(vols)} does not hold the socket's directory ({sock})")
    user = by.get("USER", [(0, "root")])[-1][1].split(":")[0]
    if user in ("root", "0"):
        fail(path, "the runtime stage runs as root")
    runtime_pkgs = [p for _, a in by.get("RUN", []) for p in apt_packages(a)]
    build_pkgs = [p for _, w, a in build_st["instrs"] if w == "RUN" for p in apt_packages(a)]
    check_build_packages(src, build_pkgs)
    check_runtime_libraries(build, runtime_pkgs)
    return argv


def check_build_packages(src, pkgs):
    """The build stage installs only packages tools/install-deps.sh names (CI's build)."""
    with open(os.path.join(src, "tools", "install-deps.sh")) as fh:
        text = fh.read()
    block = re.search(r"^PACKAGES=\(\n(.*?)^\)", text, re.M | re.S)
    listed = set(re.findall(r"^\s+([a-z0-9][a-z0-9.+-]+)", block.group(1) if block else "",
                            re.M))
    if not pkgs:
        fail("Containerfile", "the build stage installs no packages")
    for p in pkgs:
        if p not in listed:
            fail("Containerfile", f"build package {p} is not in tools/install-deps.sh")


def dpkg_owner(path):
    """The Debian package that installed path (through symlinks, merged /usr), or None."""
    cands = [path, os.path.realpath(path)]
    cands += [c[4:] if c.startswith("/usr/lib/") else "/usr" + c for c in list(cands)]
    for c in cands:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def installed_closure(pkgs):
    """pkgs and every installed package they depend on (Depends, Pre-Depends), as apt would
    bring them into the runtime stage; read from dpkg's database, so no network is needed.
    A dependency that is not installed here is left out, which can only make the check
    stricter."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Pre-Depends}, ${Depends}", p],
                           capture_output=True, text=True)
        for alt in r.stdout.split(","):
            for dep in alt.split("|"):
                name = dep.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def sanitizer_build(build):
    """True when BUILD was configured with SWARM_SANITIZE=ON (its programs then also need
    the sanitizers' runtimes, which no image carries)."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as fh:
            return re.search(r"^SWARM_SANITIZE:BOOL=(ON|1|TRUE)$", fh.read(), re.M) is not None
    except OSError:
        return False


def check_runtime_libraries(build, runtime_pkgs):
    """Each library a program names (NEEDED) is in a runtime package or one it depends on:
    read against the build."""
    if not runtime_pkgs:
        fail("Containerfile", "the runtime stage installs no packages")
    have = installed_closure(set(runtime_pkgs) | BASE_PACKAGES)
    sanitized = sanitizer_build(build)
    for prog in PROGRAMS:
        exe = os.path.join(build, "bin", prog)
        if not os.path.exists(exe):
            fail("build", f"{exe} is missing: build first")
            continue
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            run(["readelf", "-d", exe]))
        listing = run(["ldd", exe])
        where = dict(re.findall(r"^\s*(\S+) => (/\S+)", listing, re.M))
        # The dynamic loader, which ldd lists by its path alone, may be NEEDED too (a
        # library using thread-local storage needs ld-linux for __tls_get_addr).
        for path in re.findall(r"^\s*(/\S+) \(0x", listing, re.M):
            where.setdefault(os.path.basename(path), path)
        for lib in needed:
            if lib.startswith("libswarm.so"):
                continue
            pkg = dpkg_owner(where[lib]) if lib in where else None
            if sanitized and re.fullmatch(r"lib(asan|ubsan|lsan|tsan)\d+", pkg or ""):
                continue
            if pkg is None:
                fail("Containerfile", f"{prog} needs {lib}, which no Debian package provides")
            elif pkg not in have:
                fail("Containerfile", f"{prog} needs {lib} from {pkg}, which the runtime "
                     f"stage does not install ({' '.join(runtime_pkgs)}, and what they "
                     "depend on)")


def run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(" ".join(argv), f"failed: {e}")
        return ""


# ---- swarmd's options and metrics -----------------------------------------------------------


def swarmd_argvs(src, docs):
    """{where: argv} of every swarmd command line the deployment files hold."""
    out = {}
    for n, word, args in containerfile_lines(os.path.join(src, "Containerfile")):
        if word in ("ENTRYPOINT", "CMD") and args.startswith("["):
            v = exec_form(f"Containerfile:{n}", args) or []
            if v and os.path.basename(v[0]) == "swarmd":
                out[f"Containerfile:{n} {word}"] = v
    for f, i, d in docs:
        for c in dig(d, "spec", "template", "spec", "containers", default=[]) or []:
            cmd = c.get("command") or []
            if cmd and os.path.basename(str(cmd[0])) == "swarmd":
                out[f"{f}: {c.get('name')}"] = [str(a) for a in cmd + (c.get("args") or [])]
    return out


def queried_metrics(docs):
    """swarm_* names in the PromQL of the adapter rules and KEDA triggers."""
    text = []
    for f, i, d in docs:
        if d.get("kind") == "ConfigMap" and "config.yaml" in (d.get("data") or {}):
            cfg = yaml.load(d["data"]["config.yaml"], Loader=StrictLoader) or {}
            for rule in cfg.get("externalRules", []) + cfg.get("rules", []):
                text += [str(rule.get("seriesQuery", "")), str(rule.get("metricsQuery", ""))]
        for t in dig(d, "spec", "triggers", default=[]) or []:
            text.append(str(dig(t, "metadata", "query", default="")))
    names = set(re.findall(r"\bswarm_[a-z0-9_]+", " ".join(text)))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def die_with_parent():
    """In the child before exec: SIGKILL when this checker dies, even killed past its
    finally (ctest's timeout), so that no swarmd outlives the test."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def live_families(build, tmp):
    """Metric families of a swarmd started with --metrics 127.0.0.1:0 (set, or None)."""
    log = os.path.join(tmp, "swarmd.log")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SWARM_REGISTRY", "SWARM_SOCKET", "XDG_RUNTIME_DIR")}
    env.update(HOME=tmp, XDG_DATA_HOME=os.path.join(tmp, "no-data"))
    with open(log, "w") as lf:
        p = subprocess.Popen([os.path.join(build, "bin", "swarmd"), "--socket",
                              os.path.join(tmp, "swarmd.sock"), "--devices", "cpu:1",
                              "--metrics", "127.0.0.1:0"], stdout=lf, stderr=lf, env=env,
                             start_new_session=True, preexec_fn=die_with_parent)
    try:
        port = None
        for _ in range(300):
            with open(log) as fh:
                text = fh.read()
            m = re.search(r"event=metrics_listening .*port=(\d+)", text)
            if m and "event=ready" in text:
                port = m.group(1)
                break
            if p.poll() is not None:
                break
            time.sleep(0.1)
        if not port:
            fail("swarmd --metrics", f"no event=metrics_listening and event=ready:\n{text}")
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            body = r.read().decode()
        return set(re.findall(r"^# TYPE (\S+) ", body, re.M))
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def check_flags(src, build, docs):
    """0 when all hold (failures are collected by fail)."""
    swarmd = os.path.join(build, "bin", "swarmd")
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", run([swarmd, "--help"])))
    if not known:
        fail(swarmd, "--help lists no options")
    has_metrics = "--metrics" in known
    argvs = swarmd_argvs(src, docs)
    if not argvs:
        fail(src, "no swarmd command line in the Containerfile or the manifests")
    for where, argv in argvs.items():
        for a in argv[1:]:
            flag = a.split("=")[0]
            if not flag.startswith("--"):
                continue
            if flag not in known:
                fail(where, f"swarmd has no option {flag} (swarmd --help of {build})")
    if not has_metrics:
        fail(build, "swarmd --help lists no --metrics: the probes and scrapes need it")
        return 0
    with tempfile.TemporaryDirectory(prefix="swarm-deploy-flags.") as tmp:
        families = live_families(build, tmp)
    for name in sorted(queried_metrics(docs)):
        if families is not None and name not in families:
            fail("deploy/kubernetes", f"the queries use {name}, which swarmd's /metrics "
                 f"does not expose ({' '.join(sorted(families))})")
    return 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("structure", "flags"):
        print(__doc__)
        return 2
    mode, src, build = sys.argv[1:]
    kdir = os.path.join(src, "deploy", "kubernetes")
    if mode == "structure":
        docs = check_kubernetes(kdir)
        check_containerfile(src, build)
        what = f"{len(docs)} manifests and the Containerfile"
    else:
        docs = load_manifests(kdir)
        check_flags(src, build, docs)
        what = "swarmd's options in the Containerfile and the DaemonSet"
    for f in FAILURES:
        print(f"check_manifests {mode}: FAIL: {f}")
    if FAILURES:
        return 1
    print(f"check_manifests {mode}: {what}: all checks hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
