"""_lib.py: finding, checking and binding libswarm through ctypes.

ctypes rather than cffi: it ships with every CPython, so `pip install ./python` needs neither a
compiler nor a binary wheel, and with the prototypes fixed once here a call costs about what a
cffi ABI-mode call does. The hot path (alloc, submit, wait, release) binds each function once,
with its argument and result types, so that no call converts more than it must.

The library is looked up, in order: $SWARM_LIBRARY (a path; when set, nothing else is tried),
the loader's path by soname (libswarm.so.2: LD_LIBRARY_PATH, the ld.so cache, the system
folders), then the build folders of the source tree this package sits in
(python/../build*/lib). Its ABI is its soname's number, read from the ELF file itself, and must
be SWARM_ABI_VERSION (swarm.h): this package lays out swarm.h's structs as ABI 2 has them.
"""
from __future__ import annotations

import ctypes
import os
import struct
from ctypes import (POINTER, c_char, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32,
                    c_uint64, c_void_p)
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import LibraryNotFound, ProtocolMismatch

SWARM_ABI_VERSION = 2
SONAME = f"libswarm.so.{SWARM_ABI_VERSION}"
SWARM_NAME_MAX = 48
SWARM_MAX_DIMS = 6
SWARM_MAX_TENSORS = 8
SWARM_CPUS_MAX = 128
SWARM_IPC_HANDLE_BYTES = 64
SWARM_REQUEST_NO_RETRY = 0x1


class TensorSpecC(ctypes.Structure):
    _fields_ = [("name", c_char * SWARM_NAME_MAX), ("dtype", c_uint32), ("ndim", c_uint32),
                ("shape", c_int64 * SWARM_MAX_DIMS), ("row_bytes", c_uint64)]


class SessionOptsC(ctypes.Structure):
    _fields_ = [("slots", c_uint32), ("queue_depth", c_uint32), ("max_rows", c_uint32),
                ("reserved", c_uint32)]


class SessionInfoC(ctypes.Structure):
    _fields_ = [("session_id", c_uint64), ("device_index", c_int32),
                ("device_name", c_char * 32), ("numa_node", c_int32),
                ("cpus", c_char * SWARM_CPUS_MAX), ("mem_policy", c_char * 48),
                ("worker_pid", c_int32), ("model", c_char * SWARM_NAME_MAX),
                ("model_version", c_uint32), ("slots", c_uint32), ("queue_depth", c_uint32),
                ("max_rows", c_uint32)]


# The sizes swarm.h gives these structs on x86-64 and aarch64 (LP64): a layout that drifts
# from the header fails here, at import, not in a corrupted call.
assert ctypes.sizeof(TensorSpecC) == 112
assert ctypes.sizeof(SessionOptsC) == 16
assert ctypes.sizeof(SessionInfoC) == 296

# name: (restype, argtypes). Functions that may block (connect, open, close, wait) are called
# through a CDLL, which lets other Python threads run meanwhile; the data path's non-blocking
# calls go through a PyDLL, which keeps the GIL and so saves its release and re-take.
_BLOCKING = {
    "swarm_connect": (c_int, [c_char_p, POINTER(c_void_p)]),
    "swarm_connect_timeout": (c_int, [c_char_p, c_int64, POINTER(c_void_p)]),
    "swarm_disconnect": (None, [c_void_p]),
    "swarm_session_open": (c_int, [c_void_p, c_char_p, c_uint32, POINTER(SessionOptsC),
                                   POINTER(c_void_p)]),
    "swarm_session_close": (c_int, [c_void_p]),
    "swarm_request_wait": (c_int, [c_void_p, c_int64]),
}
_FAST = {
    "swarm_version": (c_char_p, []),
    "swarm_strerror": (c_char_p, [c_int]),
    "swarm_client_set_timeout": (c_int, [c_void_p, c_int64]),
    "swarm_client_error": (c_char_p, [c_void_p]),
    "swarm_last_error": (c_char_p, []),
    "swarm_default_socket": (c_int, [c_void_p, c_size_t]),
    "swarm_session_num_inputs": (c_uint32, [c_void_p]),
    "swarm_session_num_outputs": (c_uint32, [c_void_p]),
    "swarm_session_input_spec": (POINTER(TensorSpecC), [c_void_p, c_uint32]),
    "swarm_session_output_spec": (POINTER(TensorSpecC), [c_void_p, c_uint32]),
    "swarm_session_info_get": (c_int, [c_void_p, POINTER(SessionInfoC)]),
    "swarm_session_set_spin": (None, [c_void_p, c_uint64]),
    "swarm_session_fd": (c_int, [c_void_p]),
    "swarm_session_arm": (c_int, [c_void_p]),
    "swarm_session_poll": (c_int, [c_void_p, c_void_p, c_int]),
    "swarm_request_alloc": (c_int, [c_void_p, c_uint32, c_void_p]),
    "swarm_request_input": (c_void_p, [c_void_p, c_uint32]),
    "swarm_request_output": (c_void_p, [c_void_p, c_uint32]),
    "swarm_request_set_deadline": (None, [c_void_p, c_uint64]),
    "swarm_request_set_input_device": (c_int, [c_void_p, c_uint32, c_char_p, c_size_t,
                                               c_uint64]),
    "swarm_request_set_output_device": (c_int, [c_void_p, c_uint32, c_char_p, c_size_t,
                                                c_uint64]),
    "swarm_request_submit": (c_int, [c_void_p, c_uint32]),
    "swarm_request_poll": (c_int, [c_void_p]),
    "swarm_request_release": (c_int, [c_void_p]),
    "swarm_request_rows": (c_uint32, [c_void_p]),
    "swarm_request_slot": (c_uint32, [c_void_p]),
    "swarm_now_ns": (c_uint64, []),
}


class Lib:
    """libswarm, loaded and checked: each C function is an attribute of the same name less
    its `swarm_` prefix (lib.request_alloc)."""

    def __init__(self, path: str, cdll: ctypes.CDLL, pydll: ctypes.PyDLL, cdll2: ctypes.CDLL,
                 pydll2: ctypes.PyDLL):
        self.path = path
        self._cdll = cdll
        for table, dll in ((_BLOCKING, cdll), (_FAST, pydll)):
            for name, (res, args) in table.items():
                fn = getattr(dll, name)
                fn.restype = res
                fn.argtypes = args
                setattr(self, name[len("swarm_"):], fn)
        # The data path again, without argument types: given ctypes objects (c_void_p,
        # c_int64) and small ints, a call converts nothing and costs about half as much.
        # Only _client.py calls these, with exactly those types.
        self.f_alloc = pydll2.swarm_request_alloc  # (c_void_p session, int rows, byref out)
        self.f_submit = pydll2.swarm_request_submit  # (c_void_p request, int flags)
        self.f_wait = cdll2.swarm_request_wait  # (c_void_p request, c_int64 ns): drops the GIL
        self.f_poll = pydll2.swarm_request_poll  # (c_void_p request)
        self.f_release = pydll2.swarm_request_release  # (c_void_p request)
        # (c_void_p request, int rows, int flags); None in a libswarm before it, where a
        # released slot goes back to libswarm and every request costs an alloc and a release.
        self.f_again = getattr(pydll2, "swarm_request_submit_again", None)
        self.lib_version: str = self.version().decode()


def _elf_dynamic(path: str) -> Tuple[Optional[str], List[str]]:
    """(DT_SONAME, [DT_NEEDED...]) of the ELF shared object at path. Raises ValueError when
    the file is no 64-bit little-endian ELF."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: List[Tuple[int, int, int]] = []
    dynamic = None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None, []

    def file_offset(vaddr: int) -> int:
        for v, o, n in loads:
            if v <= vaddr < v + n:
                return vaddr - v + o
        raise ValueError(f"{path}: address {vaddr:#x} outside its loaded segments")

    strtab, soname, needed = None, None, []
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 5:
            strtab = val
        elif tag == 14:
            soname = val
        elif tag == 1:
            needed.append(val)
    if strtab is None:
        return None, []
    base = file_offset(strtab)

    def string(k: int) -> str:
        return data[base + k:data.index(b"\0", base + k)].decode()

    return (string(soname) if soname is not None else None), [string(k) for k in needed]


def _asan_missing(path: str) -> bool:
    """True when path is a sanitizer build of libswarm and the ASan runtime is not in this
    process: loading it would abort the interpreter."""
    try:
        _, needed = _elf_dynamic(path)
    except (OSError, ValueError):
        return False
    if not any(n.startswith("libasan") for n in needed):
        return False
    with open("/proc/self/maps") as f:
        return "libasan" not in f.read()


def _loaded_path(cdll: ctypes.CDLL, fallback: str) -> str:
    """Where the loader found the library: the file in /proc/self/maps whose mapping holds its
    symbol swarm_version."""
    try:
        addr = ctypes.cast(cdll.swarm_version, c_void_p).value
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if lo <= addr < hi and len(parts) == 6:
                    return parts[5].strip()
    except (OSError, ValueError, AttributeError):
        pass
    return fallback


def _build_dirs() -> List[Path]:
    """The lib folders of the build trees beside the package's source tree, newest first."""
    root = Path(__file__).resolve().parent.parent.parent
    if not (root / "include" / "swarm" / "swarm.h").is_file():
        return []
    found = [d / "lib" for d in root.glob("build*") if (d / "lib" / SONAME).exists()]
    # build/ first (the documented one), then the others, newest first.
    return sorted(found, key=lambda d: (d.parent.name != "build",
                                        -(d / SONAME).stat().st_mtime))


def _candidates() -> Tuple[List[str], bool]:
    env = os.environ.get("SWARM_LIBRARY")
    if env:
        return [env], True
    return [SONAME] + [str(d / SONAME) for d in _build_dirs()], False


_lib: Optional[Lib] = None


def load() -> Lib:
    """Loads and checks libswarm once; raises LibraryNotFound (naming every place tried and why
    each failed) or ProtocolMismatch (a libswarm of another ABI)."""
    global _lib
    if _lib is not None:
        return _lib
    names, from_env = _candidates()
    tried = []
    for name in names:
        if os.sep in name and _asan_missing(name):
            tried.append(f"{name}: a sanitizer build; preload the ASan runtime "
                         "(LD_PRELOAD=$(gcc -print-file-name=libasan.so)) to use it")
            continue
        try:
            cdll = ctypes.CDLL(name)
        except OSError as e:
            tried.append(f"{name}: {e}")
            continue
        path = _loaded_path(cdll, name)
        try:
            soname, _ = _elf_dynamic(path)
        except (OSError, ValueError) as e:
            raise ProtocolMismatch(0, f"cannot read the ABI of {path}: {e}") from None
        if soname != SONAME:
            raise ProtocolMismatch(
                0, f"{path} is {soname or 'a library with no soname'}, this package speaks "
                f"swarm ABI {SWARM_ABI_VERSION} ({SONAME}): install the matching libswarm "
                f"or Python package")
        # Separate function objects for the typed and untyped bindings of the same symbols.
        lib = Lib(path, cdll, ctypes.PyDLL(path, handle=cdll._handle),
                  ctypes.CDLL(path, handle=cdll._handle), ctypes.PyDLL(path, handle=cdll._handle))
        _lib = lib
        return lib
    where = ("$SWARM_LIBRARY" if from_env else
             "$SWARM_LIBRARY (unset), the loader path, the source tree's build folders")
    raise LibraryNotFound(
        0, f"libswarm not found; looked in {where}:\n  " + "\n  ".join(tried) +
        "\nset SWARM_LIBRARY to the path of libswarm.so.2, or install libswarm "
        "(docs/install.md)")
