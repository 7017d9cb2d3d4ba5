"""errors.py: every negative errno of libswarm as an exception.

swarm.h's functions return 0 or a negative errno; the binding raises the class of that errno
(ERRNO_CLASSES), carrying the errno, swarm_strerror()'s meaning and the client's last error
text (what swarmd said, or what the library wrote), e.g.

    swarm.ModelNotFound: open 'nope': no such model or version [ENOENT]: swarmd: no model
    'nope' in the registry

Classes that have a natural built-in counterpart also derive from it (Timeout is a
TimeoutError, InvalidArgument a ValueError, ...), so that generic handlers catch them too.
"""
from __future__ import annotations

import errno as _errno
from typing import Dict, Optional, Type


class Error(Exception):
    """Base of every swarm error.

    Attributes: errno (positive, 0 when the error is the binding's own), strerror (swarm's
    meaning of it), detail (the client's last error text, "" when none), op (what was being
    done)."""

    def __init__(self, errno: int, detail: str = "", op: str = "", strerror: str = ""):
        self.errno = abs(errno)
        self.strerror = strerror
        self.detail = detail
        self.op = op
        parts = []
        if op:
            parts.append(op)
        name = _errno.errorcode.get(self.errno, str(self.errno))
        if strerror and strerror not in detail:
            parts.append(f"{strerror} [{name}]")
        if detail:
            # swarmd's text often ends in the meaning already: say it once
            parts.append(detail if not strerror or strerror not in detail else
                         f"{detail} [{name}]")
        Exception.__init__(self, ": ".join(parts) or self.__class__.__name__)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __reduce__(self):
        return (self.__class__, (self.errno, self.detail, self.op, self.strerror))


class LibraryNotFound(Error):
    """libswarm could not be loaded; the message names each place tried."""


class Closed(Error):
    """The client, session or request was closed or released before this call."""


class QueueFull(Error):
    """-EAGAIN: every slot is held or in flight, or the submission queue is full."""


class Timeout(Error, TimeoutError):
    """-ETIMEDOUT: a wait or a control call ran out of time, or a request's deadline passed
    before it ran."""


class ProtocolMismatch(Error):
    """-EPROTO: libswarm, swarmd and this package do not speak the same ABI."""


class ModelNotFound(Error, LookupError):
    """-ENOENT: no such model or version."""


class InvalidArgument(Error, ValueError):
    """-EINVAL: a bad argument, or a request the worker refused."""


class Busy(Error):
    """-EBUSY: the request is in flight and cannot be released yet."""


class SessionLost(Error):
    """-ECONNABORTED: the session's worker died and no device could take it over (or the
    request opted out of being run again)."""


class SessionDetached(SessionLost):
    """-EBADMSG: the worker detached the session because its segment broke the protocol."""


class PermissionDenied(Error, PermissionError):
    """-EACCES: swarmd refused this user."""


class ConnectionRefused(Error, ConnectionRefusedError):
    """-ECONNREFUSED: no swarmd listens on the socket."""


class NotConnected(Error, ConnectionError):
    """-ENOTCONN: swarmd went away, or the connection timed out before."""


class NotSupported(Error):
    """-ENOTSUP: a request asked for GPU memory on a device that has none."""


class NoDevice(Error):
    """-ENODEV: no device in service can take the session."""


class QuotaExceeded(Error):
    """-EDQUOT: a per-client or per-user limit of swarmd; the message names the option."""


class ModelTooLarge(Error):
    """-EFBIG: the model needs more device memory than any device's budget; the message
    gives both sizes."""


class DeviceMemoryFull(Error):
    """-ENOSPC: no device can make room for the model now (what is resident there is in use
    or preloaded); opening it again once sessions close may succeed."""


class OutOfMemory(Error):
    """-ENOMEM: memory ran out (in the client or in swarmd)."""


ERRNO_CLASSES: Dict[int, Type[Error]] = {
    _errno.EAGAIN: QueueFull,
    _errno.ETIMEDOUT: Timeout,
    _errno.EPROTO: ProtocolMismatch,
    _errno.ENOENT: ModelNotFound,
    _errno.EINVAL: InvalidArgument,
    _errno.EBUSY: Busy,
    _errno.ECONNABORTED: SessionLost,
    _errno.EBADMSG: SessionDetached,
    _errno.EACCES: PermissionDenied,
    _errno.ECONNREFUSED: ConnectionRefused,
    _errno.ENOTCONN: NotConnected,
    _errno.ENOTSUP: NotSupported,
    _errno.ENODEV: NoDevice,
    _errno.EDQUOT: QuotaExceeded,
    _errno.EFBIG: ModelTooLarge,
    _errno.ENOSPC: DeviceMemoryFull,
    _errno.ENOMEM: OutOfMemory,
}


def error_for(err: int, op: str = "", detail: str = "",
              strerror: Optional[str] = None) -> Error:
    """The exception for err (a negative errno from libswarm), not raised."""
    if strerror is None:
        from . import _lib
        try:
            strerror = _lib.load().strerror(-abs(err)).decode(errors="replace")
        except Error:
            strerror = _errno.errorcode.get(abs(err), "")
    cls = ERRNO_CLASSES.get(abs(err), Error)
    return cls(err, detail, op, strerror)
