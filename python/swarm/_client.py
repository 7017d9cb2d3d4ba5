"""_client.py: Client, Session and Request, mirroring swarm.h.

A Client is one connection to swarmd (swarm_connect); Client.open opens a Session on a model
(swarm_session_open: one shared segment of its own); Session.request takes a slot
(swarm_request_alloc) and returns a Request whose input and output tensors are numpy arrays
over the slot itself. Threads: as in C, a session and its requests are used by one thread at
a time; open one session per thread.

The hot path (request, input, submit, wait, output, release) makes two C calls, submit and
wait (a released slot stays the session's for the next request: Session._free), and no
allocation beyond the Request object: the arrays are cached per slot (_views.Slot).
"""
from __future__ import annotations

import errno as _errno
import math
import operator
import os
import sys
import weakref
from ctypes import ArgumentError, byref, c_int64, c_void_p
from typing import (Any, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union)

import numpy as np

from . import _lib
from ._specs import SessionInfo, TensorSpec, _np_dtype
from ._views import Closer, Slot, pointer_arg
from .errors import Closed, Error, InvalidArgument, QueueFull, error_for

Index = Union[int, str]

_EAGAIN = -_errno.EAGAIN
_ETIMEDOUT = -_errno.ETIMEDOUT
_EBUSY = -_errno.EBUSY
# A wait with no end runs in slices of this many ns, so that Ctrl-C (a Python signal handler,
# run between bytecodes) interrupts it within the slice.
_WAIT_SLICE_NS = 100_000_000
_WAIT_SLICE = c_int64(_WAIT_SLICE_NS)
_getrefcount = sys.getrefcount

# The data path's untyped bindings (_lib.Lib.f_*), module globals so that a call looks up one
# name; set by _bind when the first client loads the library.
_alloc: Any = None
_send: Any = None  # (request, rows, flags): submit, or submit again a completed request
_wait: Any = None
_poll: Any = None
_release: Any = None
# True when a released slot stays the session's (Session._free) to be sent again by
# swarm_request_submit_again: a request then costs no alloc and no release in libswarm.
_keep = False


def _bind(lib: "_lib.Lib") -> None:
    global _alloc, _send, _wait, _poll, _release, _keep
    _alloc, _wait, _poll, _release = lib.f_alloc, lib.f_wait, lib.f_poll, lib.f_release
    _keep = lib.f_again is not None
    if _keep:
        _send = lib.f_again
    else:
        submit = lib.f_submit
        _send = lambda cp, rows, flags: submit(cp, flags)  # noqa: E731

def _seconds_to_ns(seconds: Optional[float], what: str) -> int:
    if seconds is None:
        return -1
    if seconds != seconds or seconds < 0:
        raise InvalidArgument(_errno.EINVAL, f"{what} must be >= 0 seconds or None, "
                              f"not {seconds!r}")
    if math.isinf(seconds):
        return -1
    return int(seconds * 1e9)


def _rows_arg(rows: Any, max_rows: int) -> int:
    try:
        n = operator.index(rows)
    except TypeError:
        raise InvalidArgument(_errno.EINVAL, f"rows must be an integer, not "
                              f"{type(rows).__name__}") from None
    if not 1 <= n <= max_rows:
        raise InvalidArgument(_errno.EINVAL, f"rows {n} out of 1..max_rows {max_rows}")
    return n


def connect(socket: Union[str, "os.PathLike[str]", None] = None,
            timeout: Optional[float] = None) -> "Client":
    """Connects to swarmd at socket (else $SWARM_SOCKET, else the default socket) and checks
    that both speak the same ABI. timeout bounds each control call (connect, open, close) in
    seconds: None takes the library's ($SWARM_TIMEOUT_MS, else 10 s), math.inf none.
    Raises ConnectionRefused, PermissionDenied, ProtocolMismatch, Timeout, ..."""
    return Client(socket, timeout)


_H = TypeVar("_H", bound="_Handle")


class _Handle:
    """A client or session: a context manager that closes it, and closed when collected
    (``_h`` is its libswarm handle, ``None`` once closed)."""

    _h: Any

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_h", None) is not None:
            self.close()


class Client(_Handle):
    """A connection to swarmd. Close it (or use it as a context manager): its sessions are
    closed with it."""

    def __init__(self, socket: Union[str, "os.PathLike[str]", None] = None,
                 timeout: Optional[float] = None):
        lib = _lib.load()
        if _alloc is None:
            _bind(lib)
        self._lib = lib
        self._h: Optional[int] = None
        self._closing = False
        self._live = 0  # sessions whose segment is still mapped
        self._sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()
        path = os.fsencode(socket) if socket is not None else None
        self.socket: Optional[str] = os.fsdecode(path) if path is not None else None
        h = c_void_p()
        if timeout is None:
            rc = lib.connect(path, byref(h))
        else:
            rc = lib.connect_timeout(path, self._timeout_ms(timeout), byref(h))
        if rc:
            raise error_for(rc, f"connect {self.socket or '(default socket)'}",
                            lib.last_error().decode(errors="replace"))
        self._h = h.value

    @staticmethod
    def _timeout_ms(timeout: float) -> int:
        if timeout != timeout or timeout < 0:
            raise InvalidArgument(_errno.EINVAL, f"timeout must be >= 0 seconds, math.inf "
                                  f"or None, not {timeout!r}")
        if math.isinf(timeout):
            return 0
        return max(1, int(timeout * 1000))

    def _handle(self) -> int:
        if self._h is None or self._closing:
            raise Closed(0, "the client is closed")
        return self._h

    @property
    def error(self) -> str:
        """The last error message swarmd sent (or the library wrote), "" when none."""
        if self._h is None:
            return ""
        return self._lib.client_error(self._h).decode(errors="replace")

    def set_timeout(self, timeout: float) -> None:
        """Bounds this client's later control calls to timeout seconds (math.inf: none)."""
        rc = self._lib.client_set_timeout(self._handle(), self._timeout_ms(timeout))
        if rc:
            raise error_for(rc, "set_timeout", self.error)

    def open(self, model: str, version: Optional[int] = None, *,
             max_rows: Optional[int] = None, slots: Optional[int] = None,
             queue_depth: Optional[int] = None, spin: Optional[float] = None) -> "Session":
        """Opens a session on model (version None: its active version). max_rows (the
        largest request, in rows), slots (requests held or in flight at once) and
        queue_depth (submission queue entries, a power of two) default to the model's;
        spin is how long wait() spins before it sleeps, in seconds (default 50 us).
        Raises ModelNotFound, InvalidArgument, NoDevice, QuotaExceeded, Timeout, ..."""
        h = self._handle()
        opts = _lib.SessionOptsC(slots or 0, queue_depth or 0, max_rows or 0, 0)
        out = c_void_p()
        rc = self._lib.session_open(h, model.encode(), version or 0, byref(opts), byref(out))
        if rc:
            v = f" version {version}" if version else ""
            raise error_for(rc, f"open {model!r}{v}", self.error)
        s = Session(self, out.value)
        self._live += 1
        self._sessions.add(s)
        if spin is not None:
            s.spin = spin
        return s

    def _session_closed(self) -> None:
        self._live -= 1
        if self._closing and self._live == 0:
            self._disconnect()

    def _disconnect(self) -> None:
        h, self._h = self._h, None
        if h is not None:
            self._lib.disconnect(h)

    def close(self) -> None:
        """Closes every session of this client, then the connection. A session whose arrays
        are still referenced keeps its memory mapped (and the connection open) until they
        are gone. Idempotent."""
        if self._h is None or self._closing:
            return
        self._closing = True
        for s in list(self._sessions):
            s.close()
        if self._live == 0:
            self._disconnect()

    @property
    def closed(self) -> bool:
        return self._h is None or self._closing

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<swarm.Client {self.socket or '(default socket)'} {state}>"


class Session(_Handle):
    """A session on one model: one shared segment, its slots and queues. Made by
    Client.open; close it (or use it as a context manager) to give its memory back."""

    def __init__(self, client: Client, handle: int):
        lib = client._lib
        self._lib = lib
        self.client = client
        self._h: Optional[int] = handle
        self.inputs: Tuple[TensorSpec, ...] = tuple(
            self._spec(lib.session_input_spec(handle, i).contents, i)
            for i in range(lib.session_num_inputs(handle)))
        self.outputs: Tuple[TensorSpec, ...] = tuple(
            self._spec(lib.session_output_spec(handle, i).contents, i)
            for i in range(lib.session_num_outputs(handle)))
        self._in_index = {t.name: t.index for t in self.inputs}
        self._inner = [tuple(t.shape[1:]) for t in self.inputs]  # run()'s checks
        self._in_dtypes = [t.dtype for t in self.inputs]
        self._out_names = [t.name for t in self.outputs]
        self._out_index = {t.name: t.index for t in self.outputs}
        info = self.info()
        self.model: str = info.model
        self.version: int = info.version
        self.max_rows: int = info.max_rows
        self.slots: int = info.slots
        self.queue_depth: int = info.queue_depth
        self._slots: Dict[int, Slot] = {}
        self._pending: List[Slot] = []  # released, their views still alive
        # Released, no view alive, still held in libswarm (see _keep): request() takes one
        # of these before it asks libswarm for a slot.
        self._free: List[Slot] = []
        self._orphans: List["Request"] = []  # released while in flight: freed on completion
        self._out = c_void_p()
        self._out_ref = byref(self._out)
        self._hv: Any = pointer_arg(handle)  # the untyped calls' argument
        self._aio: Any = None
        self._spin_ns = 50_000

    @staticmethod
    def _spec(c: "_lib.TensorSpecC", i: int) -> TensorSpec:
        name, dt = _np_dtype(c.dtype)
        return TensorSpec(i, c.name.decode(), dt, tuple(c.shape[:c.ndim]), c.row_bytes, name)

    def _handle(self) -> int:
        h = self._h
        if h is None:
            raise Closed(0, "the session is closed")
        return h

    def info(self) -> SessionInfo:
        """Where the session is served now: device, NUMA node, cores, worker, version."""
        c = _lib.SessionInfoC()
        rc = self._lib.session_info_get(self._handle(), byref(c))
        if rc:
            raise error_for(rc, "session info")
        d = lambda b: b.decode(errors="replace")  # noqa: E731
        return SessionInfo(c.session_id, c.device_index, d(c.device_name), c.numa_node,
                           d(c.cpus), d(c.mem_policy), c.worker_pid, d(c.model),
                           c.model_version, c.slots, c.queue_depth, c.max_rows)

    @property
    def spin(self) -> float:
        """How long wait() spins before it sleeps, in seconds (0: sleeps at once)."""
        return self._spin_ns / 1e9

    @spin.setter
    def spin(self, seconds: float) -> None:
        ns = _seconds_to_ns(seconds, "spin")
        if ns < 0:
            raise InvalidArgument(_errno.EINVAL, "spin must be finite")
        self._lib.session_set_spin(self._handle(), ns)
        self._spin_ns = ns

    @property
    def fd(self) -> int:
        """The eventfd that becomes readable on a completion once arm() returned False (for
        event loops other than asyncio's). Owned by the session."""
        return self._lib.session_fd(self._handle())

    def arm(self) -> bool:
        """Asks the worker to signal fd on the next completion: False when armed (wait for
        fd, then poll()), True when completions are already waiting."""
        return bool(self._lib.session_arm(self._handle()))

    def poll(self) -> List["Request"]:
        """The requests that completed since they were last reported, without blocking.
        Raises SessionLost / SessionDetached when the session is lost."""
        h = self._handle()
        self._reclaim()
        arr = (c_void_p * self.slots)()
        n = self._lib.session_poll(h, arr, self.slots)
        if n < 0:
            raise error_for(n, "poll", self.client.error)
        done = []
        for k in range(n):
            sl = self._slots.get(arr[k])
            # A kept slot lent again (held) may still carry its previous completion.
            if sl is not None and sl.req is not None and sl.req._state != _HELD:
                done.append(sl.req)
        return done

    def _new_slot(self, ptr: int) -> Slot:
        lib = self._lib
        idx = lib.request_slot(ptr)
        ins = [lib.request_input(ptr, i) for i in range(len(self.inputs))]
        outs = [lib.request_output(ptr, i) for i in range(len(self.outputs))]
        sl = Slot(ptr, idx, ins, outs, self.inputs, self.outputs, self.max_rows)
        self._slots[ptr] = sl
        return sl

    def _reclaim_pending(self) -> int:
        """Frees the slots released while views were alive whose views are gone."""
        keep = []
        g = _getrefcount
        for sl in self._pending:
            if sum(map(g, sl._tracked)) != sl._baseline:  # sl.views_alive(), inline
                keep.append(sl)
            else:
                self._give_back(sl)
        n = len(self._pending) - len(keep)
        self._pending = keep
        return n

    def _give_back(self, sl: Slot) -> None:
        """A released slot with no view alive: kept for the next request (no call into
        libswarm) unless a deadline or device tensor was set on it, which only a release
        clears."""
        if _keep and not sl.dirty:
            self._free.append(sl)
        else:
            sl.dirty = False
            _release(sl.cp)

    def _reclaim(self) -> int:
        """Frees the slots whose requests were released while views were alive, and those
        released in flight that have completed since. Returns how many it freed."""
        n = self._reclaim_pending()
        if n and not self._orphans:
            return n  # enough for now: the scan below is for dropped requests
        for sl in list(self._slots.values()):
            r = sl.req
            # Dropped by the caller unreleased: only the slot refers to it (the count is
            # the slot's, r's and getrefcount's argument). Released now, or when it
            # completes if it is in flight.
            if r is not None and sys.getrefcount(r) <= 3:
                r.release(_defer_busy=True)
                n += r._state == _RELEASED and r not in self._orphans
            del r
        if self._orphans:
            orphans, self._orphans = self._orphans, []
            for r in orphans:
                r._state = _SUBMITTED
                r.release(_defer_busy=True)  # back on the list while still in flight
            n += len(orphans) - len(self._orphans)
        return n

    def request(self, rows: int = 1, *, deadline: Optional[float] = None) -> "Request":
        """Takes a free slot for a request of rows rows (1..max_rows). deadline: seconds
        from now by which the request must have started, else it completes with Timeout
        without running. Raises QueueFull when every slot is held or in flight."""
        h = self._hv
        if h is None:
            raise Closed(0, "the session is closed")
        free = self._free
        if free:  # a kept slot: no call into libswarm
            if free[-1].rows != rows:  # checked while the slot is still in the list
                free[-1].set_rows(_rows_arg(rows, self.max_rows))
            sl = free.pop()
            r = Request(self, sl, sl.rows)
            sl.req = r
            if deadline is not None:
                r.set_deadline(deadline)
            return r
        try:
            rc = _alloc(h, rows, self._out_ref)
        except ArgumentError:  # not a Python int: numpy's, or no integer at all
            rows = _rows_arg(rows, self.max_rows)
            rc = _alloc(h, rows, self._out_ref)
        if rc:
            if rc == _EAGAIN and self._reclaim():
                if self._free:  # the reclaimed slots were kept
                    return self.request(rows, deadline=deadline)
                rc = _alloc(h, rows, self._out_ref)
            if rc:
                raise self._alloc_error(rc, rows)
        ptr = self._out.value
        sl = self._slots.get(ptr)
        if sl is None:
            sl = self._new_slot(ptr)
        if sl.rows != rows:
            sl.set_rows(rows)
        r = Request(self, sl, rows)
        sl.req = r  # for poll, close, and to find it again if the caller drops it
        if deadline is not None:
            r.set_deadline(deadline)
        return r

    def _alloc_error(self, rc: int, rows: int) -> Error:
        if rc == _EAGAIN:
            held = len(self._pending)
            why = (f"; {held} of them released but still viewed by arrays alive" if held
                   else "")
            return QueueFull(-rc, f"all {self.slots} slots are held or in flight{why}",
                             "request", "no free slot")
        return error_for(rc, f"request of {rows} rows (max_rows {self.max_rows})")

    def _index(self, names: Dict[str, int], specs: Sequence[TensorSpec], i: Index,
               what: str) -> int:
        if isinstance(i, str):
            try:
                return names[i]
            except KeyError:
                pass
        elif isinstance(i, (int, np.integer)) and 0 <= i < len(specs):
            return int(i)
        known = ", ".join(repr(t.name) for t in specs)
        raise InvalidArgument(_errno.EINVAL, f"no {what} {i!r} (the model's {what}s: "
                              f"{known})")

    def _pairs(self, inputs: Any) -> Tuple[int, List[Tuple[int, np.ndarray]]]:
        """(rows, [(input index, array)]) of run()'s inputs: a dict {name or index: array}, a
        list or tuple in the model's order, or one array; rows is their first dimension.
        Raises InvalidArgument for a missing or unknown input or a wrong shape."""
        t = type(inputs)
        if t is dict or (t is not np.ndarray and t is not list and t is not tuple
                         and isinstance(inputs, Mapping)):
            names = self._in_index
            if len(inputs) != len(self.inputs):
                given = {k if isinstance(k, str) else self.inputs[self._index(
                    names, self.inputs, k, "input")].name for k in inputs}
                missing = sorted(set(names) - given)
                raise InvalidArgument(_errno.EINVAL, f"inputs missing: {missing}" if missing
                                      else f"{len(inputs)} inputs given, the model has "
                                      f"{len(self.inputs)}")
            items: Any = [(names[k] if type(k) is str and k in names else
                           self._index(names, self.inputs, k, "input"), a)
                          for k, a in inputs.items()]
        else:
            if t is not list and t is not tuple:
                inputs = (inputs,)
            if len(inputs) != len(self.inputs):
                raise InvalidArgument(_errno.EINVAL, f"{len(inputs)} inputs given, the "
                                      f"model has {len(self.inputs)}")
            items = enumerate(inputs)
        pairs, rows = [], -1
        for i, a in items:
            src = a if type(a) is np.ndarray else np.asarray(a)
            shape = src.shape
            if rows < 0:
                if not shape:
                    raise InvalidArgument(_errno.EINVAL, "an input needs a batch dimension")
                rows = shape[0]
            if shape[0:1] != (rows,) or shape[1:] != self._inner[i]:
                raise InvalidArgument(_errno.EINVAL, f"input {self.inputs[i].name!r} has "
                                      f"shape {shape}, the request needs "
                                      f"{(rows,) + self._inner[i]}")
            pairs.append((i, src))
        return rows, pairs

    def _fill(self, r: "Request", pairs: List[Tuple[int, np.ndarray]]) -> None:
        sl = r._slot
        for i, src in pairs:
            # No view in a local: an exception's traceback would keep it (and so the slot)
            # alive after the request's release.
            if src.dtype == self._in_dtypes[i]:
                sl.ins[i][...] = src
            else:  # numpy's assignment would cast unsafely: refuse what same_kind refuses
                np.copyto(sl.ins[i], src, casting="same_kind")

    def run(self, inputs: Any, *, timeout: Optional[float] = None,
            deadline: Optional[float] = None) -> Dict[str, np.ndarray]:
        """One request, copying in and out: inputs is a dict {name or index: array}, a list
        in the model's order, or one array; the rows are their first dimension. Returns
        {output name: a new array}. Raises as request(), submit() and wait() do."""
        rows, pairs = self._pairs(inputs)
        with self.request(rows, deadline=deadline) as r:
            self._fill(r, pairs)
            r.submit()
            r.wait(timeout)
            return dict(zip(self._out_names, [o.copy() for o in r._slot.outs]))

    async def run_async(self, inputs: Any, *, deadline: Optional[float] = None
                        ) -> Dict[str, np.ndarray]:
        """run() for asyncio: waits for a free slot, a place in the queue and the completion
        on the event loop (the session's fd), never blocking it."""
        from . import _aio
        return await _aio.run(self, inputs, deadline)

    def _finish_close(self) -> None:
        h, self._h = self._h, None
        self._hv = None
        if h is not None:
            self._lib.session_close(h)
            self.client._session_closed()

    def close(self) -> None:
        """Closes the session: its requests become invalid (those in flight included). Its
        memory is unmapped once no array over it is alive any more. Idempotent."""
        if self._h is None or getattr(self, "_closer", None) is not None:
            return
        if self._aio is not None:
            self._aio.close()
        closer = Closer(self._finish_close)
        self._closer = closer
        self._hv = None  # no request from now on
        for sl in self._slots.values():
            r = sl.req
            if r is not None:
                r._state = _RELEASED
            sl.disarm(closer)
        self._slots.clear()
        self._pending = []
        self._free = []
        self._orphans = []
        closer.release()

    @property
    def closed(self) -> bool:
        return self._h is None or getattr(self, "_closer", None) is not None

    def __repr__(self) -> str:
        return (f"<swarm.Session {getattr(self, 'model', '?')} v{getattr(self, 'version', 0)}"
                f"{' closed' if self.closed else ''}>")


_HELD, _SUBMITTED, _DONE, _RELEASED = 0, 1, 2, 3


class Request:
    """One request: a slot of its session, held by the caller until submit(), by the worker
    until it completes, then by the caller again until release(). Use it as a context
    manager to release it (a request dropped unreleased gives its slot back when the
    session next runs out of free slots, once no array over it is alive). input(i) and output(i) are numpy arrays over the slot itself.

    A Request is not thread-safe, as its session is not: one thread at a time."""

    # _status is set when the request completes, and read only after that.
    __slots__ = ("session", "_slot", "rows", "_state", "_status")

    def __init__(self, session: Session, slot: Slot, rows: int):
        self.session = session
        self._slot = slot
        self.rows = rows
        self._state = _HELD

    @property
    def slot(self) -> int:
        """The index of the request's slot in the session's segment (for logs)."""
        return self._slot.index

    def _closed(self, what: str) -> Error:
        return Closed(0, f"{what}: the session is closed")

    def input(self, i: Index = 0) -> np.ndarray:
        """Input i (an index or a name) as a writable numpy array over the slot, shape
        (rows,) + spec.shape[1:]: write it before submit(). The same array every call."""
        if self._state == _RELEASED:
            raise Closed(0, "input: the request was released")
        try:
            return self._slot.ins[i]  # type: ignore[index]
        except (IndexError, TypeError):
            s = self.session
            k = s._index(s._in_index, s.inputs, i, "input")
            if self._slot.cp is None:
                raise self._closed("input") from None
            return self._slot.ins[k]

    def output(self, i: Index = 0, *, writable: bool = False) -> np.ndarray:
        """Output i (an index or a name) as a numpy array over the slot: read it once the
        request has completed. Read-only, and the same array every call; writable=True
        gives a writable one instead (the slot is the caller's after completion), for
        consumers that cannot take a read-only array (DLPack before 1.0, such as older
        PyTorch)."""
        if self._state == _RELEASED:
            raise Closed(0, "output: the request was released")
        if not writable:
            try:
                return self._slot.outs[i]  # type: ignore[index]
            except (IndexError, TypeError):
                pass
        s = self.session
        k = s._index(s._out_index, s.outputs, i, "output")
        if self._slot.cp is None:
            raise self._closed("output")
        return self._slot.writable_output(k) if writable else self._slot.outs[k]

    def set_deadline(self, seconds: float) -> None:
        """The request must start within seconds from now, else it completes with Timeout
        without running. Before submit()."""
        if self._state != _HELD:
            raise self._state_error("set_deadline")
        cp = self._slot.cp
        if cp is None:
            raise self._closed("set_deadline")
        lib = self.session._lib
        ns = _seconds_to_ns(seconds, "deadline")
        lib.request_set_deadline(cp, 0 if ns < 0 else lib.now_ns() + ns)  # inf: none
        self._slot.dirty = True

    def set_input_device(self, i: Index, tensor: Any) -> None:
        """Input i is tensor, in the caller's GPU memory (an object with
        __cuda_array_interface__ or a CUDA DLPack, or a swarm.DeviceBuffer): its CUDA IPC
        handle goes in the slot instead of the bytes. Before submit(); the tensor must stay
        alive and unchanged until the request completes."""
        from . import _cuda
        _cuda.set_device(self, True, i, tensor)

    def set_output_device(self, i: Index, tensor: Any) -> None:
        """Output i is written by the worker into tensor, in the caller's GPU memory (as
        set_input_device); output(i) then holds no bytes."""
        from . import _cuda
        _cuda.set_device(self, False, i, tensor)

    def submit(self, *, no_retry: bool = False) -> None:
        """Hands the slot to the worker. no_retry: the request is not idempotent and is
        never run again on another device if its worker dies (it fails with SessionLost).
        Raises QueueFull when the submission queue is full (the request stays the
        caller's: submit again later)."""
        if self._state != _HELD:
            raise self._state_error("submit")
        sl = self._slot
        rc = _send(sl.cp, self.rows, 1 if no_retry else 0)
        if rc:
            if sl.cp is None:
                raise self._closed("submit")
            raise error_for(rc, "submit", self.session.client.error)
        self._state = _SUBMITTED

    def _state_error(self, what: str) -> Error:
        if self._state == _RELEASED:
            return Closed(0, f"{what}: the request was released")
        if self._state == _HELD:
            return InvalidArgument(_errno.EINVAL, f"{what}: the request was not submitted")
        return InvalidArgument(_errno.EINVAL, f"{what}: the request was already submitted")

    def _finish(self, rc: int) -> None:
        self._state = _DONE
        self._status = rc
        if rc:
            raise self._status_error()

    def _status_error(self) -> Error:
        rc = self._status
        if self._slot.cp is None:
            return self._closed("request")
        if rc == _ETIMEDOUT:
            return error_for(rc, "request", "its deadline passed before it ran")
        if rc == -_errno.EINVAL:
            return error_for(rc, "request", "the worker refused it")
        return error_for(rc, "request", self.session.client.error)

    def _not_in_flight(self, what: str) -> bool:
        """For wait and poll of a request not in flight: True when done, else raises."""
        if self._state == _DONE:
            if self._status:
                raise self._status_error()
            return True
        raise self._state_error(what)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits for the request to complete, spinning first (Session.spin), then sleeping.
        timeout in seconds, None: no end. Raises Timeout when the wait runs out (the
        request stays in flight: wait again), or the request's own failure (Timeout for a
        passed deadline, InvalidArgument when the worker refused it, SessionLost)."""
        if self._state != _SUBMITTED:
            self._not_in_flight("wait")
            return
        cp = self._slot.cp
        if timeout is None:
            rc = _wait(cp, _WAIT_SLICE)
            while rc == _ETIMEDOUT:
                rc = _poll(cp)
                if rc != _EAGAIN:
                    break
                rc = _wait(cp, _WAIT_SLICE)
        else:
            lib = self.session._lib
            end = lib.now_ns() + _seconds_to_ns(timeout, "timeout")
            while True:
                left = end - lib.now_ns()
                rc = _wait(cp, c_int64(max(0, min(left, _WAIT_SLICE_NS))))
                if rc != _ETIMEDOUT:
                    break
                rc = _poll(cp)
                if rc != _EAGAIN:
                    break
                if lib.now_ns() >= end:
                    raise error_for(_ETIMEDOUT, f"wait ({timeout} s)",
                                    "the request is still in flight")
        self._state = _DONE  # _finish, inline: this is the hot path
        self._status = rc
        if rc:
            raise self._status_error()

    def poll(self) -> bool:
        """True once the request has completed (raising its failure, as wait() does), False
        while it is in flight. Never blocks."""
        if self._state != _SUBMITTED:
            return self._not_in_flight("poll")
        rc = _poll(self._slot.cp)
        if rc == _EAGAIN:
            return False
        self._finish(rc)
        return True

    @property
    def done(self) -> bool:
        """True once the request has completed, successfully or not."""
        if self._state == _SUBMITTED:
            rc = _poll(self._slot.cp)
            if rc != _EAGAIN:
                self._state, self._status = _DONE, rc
        return self._state == _DONE

    def release(self, *, _defer_busy: bool = False) -> None:
        """Returns the slot to the session. Raises Busy while the request is in flight.
        Arrays lent by input()/output() stay valid: while any is alive the slot is not
        reused. Idempotent."""
        st = self._state
        if st == _RELEASED:
            return
        s = self.session
        sl = self._slot
        if st == _SUBMITTED:
            rc = _poll(sl.cp)
            if rc == _EAGAIN:
                if _defer_busy:
                    s._orphans.append(self)
                    self._state = _RELEASED
                    return
                raise error_for(_EBUSY, "release", "the request is in flight: wait() first")
            self._status = rc
        self._state = _RELEASED
        sl.req = None
        if sl.cp is None:
            return  # the session is closed: its slots went with it
        if sum(map(_getrefcount, sl._tracked)) != sl._baseline:  # sl.views_alive(), inline
            s._pending.append(sl)
        elif _keep and not sl.dirty:  # s._give_back(sl), inline
            s._free.append(sl)
        else:
            s._give_back(sl)
        aio = s._aio
        if aio is not None and aio.slot_waiters:
            aio.wake_slot_waiters()

    def __enter__(self) -> "Request":
        return self

    def __exit__(self, *exc: Any) -> None:
        # Leaving the block while the request is in flight (an exception, a timeout): the
        # slot goes back when the request completes.
        self.release(_defer_busy=True)

    def __await__(self):
        from . import _aio
        return _aio.wait(self).__await__()

    def __repr__(self) -> str:
        state = ("held", "submitted", "done", "released")[self._state]
        return f"<swarm.Request slot {self._slot.index} rows {self.rows} {state}>"
