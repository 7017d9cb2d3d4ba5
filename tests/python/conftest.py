"""conftest.py: fixtures of the Python client's tests.

The tests run the package from the source tree (python/) against a build's libswarm and
swarmd: $SWARM_BUILD_DIR (ctest sets it), else build/ beside the source. SWARM_LIBRARY is
set to that build's libswarm.so.2, so the package under test never picks up another one.
Every swarmd started here runs in its own process group on a private socket, and is killed
(with its workers) when its fixture ends, whatever the test did; its folder (socket, log) is
removed then, unless SWARM_KEEP_TEST_DIRS=1.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SWARM_BUILD_DIR", ROOT / "build")).resolve()
BIN = BUILD / "bin"
LIB = BUILD / "lib" / "libswarm.so.2"

os.environ["SWARM_LIBRARY"] = str(LIB)
os.environ.pop("SWARM_SOCKET", None)
if os.environ.get("SWARM_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(ROOT / "python"))


class Swarmd:
    """A swarmd of this build on a private socket."""

    def __init__(self, devices: str = "cpu:2", extra: Optional[List[str]] = None):
        if not (BIN / "swarmd").is_file():
            pytest.fail(f"no swarmd in {BIN}: build first, or set SWARM_BUILD_DIR")
        self.dir = tempfile.mkdtemp(prefix="swarm-pytest-")
        self.socket = os.path.join(self.dir, "swarmd.sock")
        self.log_path = os.path.join(self.dir, "swarmd.log")
        self._log = open(self.log_path, "wb")
        cmd = [str(BIN / "swarmd"), "--socket", self.socket, "--devices", devices] + (
            extra or [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 15
        while "event=ready" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > end:
                log = self.log()
                self.stop()
                pytest.fail(f"swarmd not ready (exit {self.proc.returncode}):\n{log}")
            time.sleep(0.02)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def workers(self) -> List[int]:
        """The pids of swarmd's live worker processes."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                out.append(int(d))
        return sorted(out)

    def wait_workers(self, n: int, timeout: float = 10.0) -> List[int]:
        end = time.monotonic() + timeout
        while True:
            w = self.workers()
            if len(w) >= n or time.monotonic() > end:
                return w
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole process group (workers included)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        if os.environ.get("SWARM_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def swarmd() -> Iterator[Swarmd]:
    """One swarmd with two CPU devices, shared by a module's tests."""
    d = Swarmd("cpu:2")
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def fresh_swarmd(request: pytest.FixtureRequest) -> Iterator[Swarmd]:
    """A swarmd of the test's own (parametrise with indirect=True: devices, or (devices,
    [extra options]))."""
    param = getattr(request, "param", "cpu:2")
    devices, extra = (param, None) if isinstance(param, str) else param
    d = Swarmd(devices, extra)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def client(swarmd: Swarmd):
    import swarm
    c = swarm.connect(swarmd.socket, timeout=10)
    try:
        yield c
    finally:
        c.close()


def stopped(pid: int) -> None:
    """SIGSTOPs pid and returns once it is stopped (state T)."""
    os.kill(pid, signal.SIGSTOP)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.005)
    raise AssertionError(f"worker {pid} did not stop")


@pytest.fixture
def past_deadline():
    """past_deadline(session): a submitted request whose deadline passed while the session's
    worker was stopped, so that it completes with swarm.Timeout without running."""
    def make(session):
        pid = session.info().worker_pid
        stopped(pid)
        try:
            r = session.request(deadline=0.005)
            r.submit()
            time.sleep(0.03)
        finally:
            os.kill(pid, signal.SIGCONT)
        return r
    return make
