"""test_install.py: the package as a user installs it: `pip install ./python` into a folder
(--target) and into a fresh venv, a pure wheel, `import swarm` from there against the
build's libswarm; and the library lookup: $SWARM_LIBRARY, the loader path by soname, a
missing library named with every place tried, a libswarm of another ABI refused with
ProtocolMismatch. pip runs with --no-deps (numpy comes from the private pylib) and, where the
interpreter has setuptools and wheel (Debian's python3-pip depends on both), with
--no-build-isolation, so that nothing is downloaded; elsewhere pip fetches setuptools as
pyproject.toml asks."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import LIB, ROOT

PYLIB = Path(os.environ.get("SWARM_CACHE", Path.home() / ".cache" / "swarm")) / "pylib"

# Run in a child python: import the installed swarm, connect, run identity once.
PROBE = """
import sys, numpy as np, swarm
print("file", swarm.__file__)
print("lib", swarm.library_path())
with swarm.connect(sys.argv[1]) as c, c.open("identity", max_rows=1) as s:
    y = s.run(np.arange(64, dtype=np.uint8).reshape(1, 64))["y"]
    assert (y == np.arange(64)).all()
print("ok")
"""


@pytest.fixture
def source(tmp_path):
    """A copy of python/, so that the build's byproducts stay out of the source tree."""
    dst = tmp_path / "src"
    shutil.copytree(ROOT / "python", dst,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    return dst


def _offline(python) -> bool:
    """True when python can build the package without downloading anything."""
    return subprocess.run([str(python), "-c", "import setuptools, wheel"],
                          capture_output=True).returncode == 0


def _pip(cmd, *args, python=sys.executable, cwd=None):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore")
    env.pop("PYTHONPATH", None)  # the venv's pip must not see the pylib's packages
    extra = ["--no-deps"]
    if _offline(python):
        extra.append("--no-build-isolation")
        env["PIP_NO_INDEX"] = "1"
    p = subprocess.run([str(python), "-m", "pip", cmd, *extra, *args], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=300)
    assert p.returncode == 0, f"pip {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def _probe(python, pythonpath, socket, cwd, **env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SWARM_LIBRARY")}
    env.update(PYTHONPATH=os.pathsep.join(map(str, pythonpath)), **env_extra)
    p = subprocess.run([str(python), "-c", PROBE, socket], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=120)
    return p


def test_pip_install_target_then_import_from_there(swarmd, source, tmp_path):
    target = tmp_path / "site"
    _pip("install", "--target", str(target), str(source))
    assert (target / "swarm" / "py.typed").is_file()
    p = _probe(sys.executable, [target, PYLIB], swarmd.socket, tmp_path,
               SWARM_LIBRARY=str(LIB))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"file {target}" in p.stdout and p.stdout.rstrip().endswith("ok")


def test_installed_package_finds_libswarm_on_the_loader_path(swarmd, source, tmp_path):
    target = tmp_path / "site"
    _pip("install", "--target", str(target), str(source))
    p = _probe(sys.executable, [target, PYLIB], swarmd.socket, tmp_path,
               LD_LIBRARY_PATH=str(LIB.parent))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"lib {os.path.realpath(LIB)}" in p.stdout


def test_pip_install_into_a_fresh_venv(swarmd, source, tmp_path):
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                          text=True, timeout=300)
    if made.returncode:
        pytest.skip(f"python3 -m venv failed (Debian: apt install python3-venv): "
                    f"{made.stderr.strip()[-300:]}")
    py = venv / "bin" / "python"
    _pip("install", str(source), python=py)
    p = _probe(py, [PYLIB], swarmd.socket, tmp_path, SWARM_LIBRARY=str(LIB))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"file {venv}" in p.stdout


def test_wheel_is_pure_python_and_carries_py_typed(source, tmp_path):
    out = tmp_path / "wheels"
    _pip("wheel", "-w", str(out), str(source))
    (whl,) = out.glob("*.whl")
    assert whl.name.endswith("-py3-none-any.whl"), whl.name
    names = zipfile.ZipFile(whl).namelist()
    assert "swarm/py.typed" in names and "swarm/_lib.py" in names
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(whl).read(meta).decode()
    assert "Requires-Dist: numpy" in text and "Requires-Python: >=3.9" in text


def _child(code, **env_extra):
    env = {k: v for k, v in os.environ.items() if k != "SWARM_LIBRARY"}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), str(PYLIB)])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)


def test_missing_library_names_every_place_tried(tmp_path):
    p = _child("import swarm\ntry:\n swarm.connect('/nonexistent')\n"
               "except swarm.LibraryNotFound as e:\n print('E', e)\n",
               SWARM_LIBRARY=str(tmp_path / "libswarm.so.2"))
    assert p.returncode == 0 and "E libswarm not found" in p.stdout, p.stdout + p.stderr
    assert str(tmp_path / "libswarm.so.2") in p.stdout and "$SWARM_LIBRARY" in p.stdout


def test_import_needs_no_library():
    p = _child("import swarm; print(swarm.__version__, swarm.Error)",
               SWARM_LIBRARY="/nonexistent/libswarm.so.2")
    assert p.returncode == 0, p.stderr


def test_a_libswarm_of_another_abi_is_refused_with_protocol_mismatch(tmp_path):
    data = LIB.read_bytes()
    assert data.count(b"libswarm.so.2\0") == 1
    other = tmp_path / "libswarm.so.9"
    other.write_bytes(data.replace(b"libswarm.so.2\0", b"libswarm.so.9\0"))
    p = _child("import swarm\ntry:\n swarm.connect('/nonexistent')\n"
               "except swarm.ProtocolMismatch as e:\n print('E', e)\n",
               SWARM_LIBRARY=str(other))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "libswarm.so.9" in p.stdout and "ABI 2" in p.stdout, p.stdout
