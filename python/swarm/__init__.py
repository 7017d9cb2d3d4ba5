"""swarm: the Python client of swarm, a single-node inference runtime.

    import numpy as np, swarm

    with swarm.connect() as client, client.open("affine", max_rows=8) as session:
        with session.request(rows=2) as r:
            r.input("x")[:] = np.arange(32, dtype=np.float32).reshape(2, 16)
            r.submit()
            r.wait()
            print(r.output("y"))          # a read-only view of the slot: no copy
        print(session.run({"x": np.ones((1, 16), np.float32)}))   # copies in and out

The package binds libswarm (libswarm.so.2) through ctypes: see docs/python.md for where it
looks for it, the zero-copy rules and lifetimes, asyncio and DLPack.
"""
from ._client import (Client, Request, Session, SessionInfo, TensorSpec, connect)
from ._cuda import DeviceBuffer
from .errors import (Busy, Closed, ConnectionRefused, DeviceMemoryFull, Error, InvalidArgument,
                     LibraryNotFound, ModelNotFound, ModelTooLarge, NoDevice, NotConnected,
                     NotSupported, OutOfMemory, PermissionDenied, ProtocolMismatch, QueueFull,
                     QuotaExceeded, SessionDetached, SessionLost, Timeout)

__version__ = "0.2.0"
ABI_VERSION = 2


def library_version() -> str:
    """The version of the libswarm loaded (swarm_version()), such as "0.2.0"."""
    from . import _lib
    return _lib.load().lib_version


def library_path() -> str:
    """The path of the libswarm loaded."""
    from . import _lib
    return _lib.load().path


def default_socket() -> str:
    """The socket connect() uses when given none and $SWARM_SOCKET is unset."""
    import ctypes
    from . import _lib
    from .errors import error_for
    buf = ctypes.create_string_buffer(4096)
    rc = _lib.load().default_socket(buf, len(buf))
    if rc:
        raise error_for(rc, "default_socket")
    return buf.value.decode()


__all__ = [
    "ABI_VERSION", "Busy", "Client", "Closed", "ConnectionRefused", "DeviceBuffer",
    "DeviceMemoryFull", "Error", "InvalidArgument", "LibraryNotFound", "ModelNotFound",
    "ModelTooLarge", "NoDevice", "NotConnected",
    "NotSupported", "OutOfMemory", "PermissionDenied", "ProtocolMismatch", "QueueFull",
    "QuotaExceeded", "Request", "Session", "SessionDetached", "SessionInfo", "SessionLost",
    "TensorSpec", "Timeout", "connect", "default_socket", "library_path", "library_version",
]
