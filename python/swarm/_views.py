"""_views.py: numpy arrays over a slot's memory, and what keeps them from dangling.

Each slot of a session gets, once, two small exporter objects (_Mem): one over its input
tensors (writable) and one over its outputs (read-only), and numpy arrays over them of the
slot's full max_rows. A request of n rows is handed the first n rows of those arrays, cached
per slot, so that `request.input(0)` costs a list index and never copies.

Lifetimes. Every array a request lends (and every view, slice, memoryview or DLPack capsule
made from one) holds a reference to the cached array or, through numpy's base chain, to the
slot's _Mem. So the slot knows, by counting references, whether any view of it is still
alive:

- Request.release() with no view alive returns the slot at once. With views alive, the
  slot stays held until they are gone (checked when the session next needs a slot, polls or
  closes): a view never sees the slot reused by another request.
- Session.close() with views alive closes the session (no new requests), but unmaps the
  segment only when the last view dies (_Mem.__del__ counts them down), so a view never
  points into unmapped memory.
"""
from __future__ import annotations

import sys
from ctypes import byref, c_char
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

_getrefcount = sys.getrefcount
_EMPTY = np.empty(0)


class _Mem:
    """Exports [addr, addr + nbytes) to numpy through the array interface; calls on_death,
    when set, once no array refers to it any more."""

    __slots__ = ("__array_interface__", "on_death")

    def __init__(self, addr: int, nbytes: int, readonly: bool):
        self.__array_interface__ = {
            "version": 3,
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (addr, readonly),
        }
        self.on_death: Optional[Callable[[], None]] = None

    def __del__(self) -> None:
        cb = self.on_death
        if cb is not None:
            self.on_death = None
            cb()


def pointer_arg(addr: int):
    """addr as a ctypes argument that converts at the least cost: a byref() of a char at
    addr is passed as the pointer addr, copied as it is (a c_void_p looks its format up on
    every call: about 400 more instructions a call, by callgrind)."""
    return byref(c_char.from_address(addr))


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _region(ptrs: Sequence[int], sizes: Sequence[int]) -> Tuple[int, int]:
    lo = min(ptrs)
    hi = max(p + n for p, n in zip(ptrs, sizes))
    return lo, hi - lo


class Slot:
    """One slot of a session: its request pointer, its memory, the arrays lent over it.

    ins/outs are the arrays of the current rows; `baseline` is the sum of the reference counts
    of everything the slot holds when nobody else holds any of it."""

    __slots__ = ("ptr", "cp", "index", "rows", "ins", "outs", "_in_full", "_out_full", "_min",
                 "_mout", "_rin", "_rout", "_tracked", "_baseline", "req", "dirty")

    def __init__(self, ptr: int, index: int, in_ptrs: List[int], out_ptrs: List[int],
                 in_specs: Sequence, out_specs: Sequence, max_rows: int):
        self.ptr = ptr
        self.cp = pointer_arg(ptr)  # the argument of the untyped calls
        self.index = index
        self.req = None
        self.dirty = False  # a deadline or device tensor was set since libswarm's alloc
        in_sizes = [max_rows * s.row_bytes for s in in_specs]
        out_sizes = [max_rows * s.row_bytes for s in out_specs]
        self._min = self._mout = None
        self._rin = self._rout = _EMPTY  # stays so for a model with no outputs (or inputs)
        self._in_full = self._tensors(in_ptrs, in_sizes, in_specs, max_rows, False, False)
        # Outputs are lent read-only (set_rows), over memory exported writable so that
        # writable_output can lend a writable one too.
        self._out_full = self._tensors(out_ptrs, out_sizes, out_specs, max_rows, False,
                                       True)
        self.rows = 0
        self._tracked: Tuple[np.ndarray, ...] = ()
        self.ins: Tuple[np.ndarray, ...] = ()
        self.outs: Tuple[np.ndarray, ...] = ()
        self._baseline = 0

    def _tensors(self, ptrs, sizes, specs, max_rows, readonly,
                 outputs) -> Tuple[np.ndarray, ...]:
        if not ptrs:
            return ()
        lo, n = _region(ptrs, sizes)
        mem = _Mem(lo, n, readonly)
        # Every array made from raw (slices, views, reshapes) has raw as its numpy base:
        # the collapse of base chains stops at raw, whose base is no ndarray.
        raw = np.asarray(mem)
        if outputs:
            self._mout, self._rout = mem, raw
        else:
            self._min, self._rin = mem, raw
        out = []
        for p, size, spec in zip(ptrs, sizes, specs):
            a = raw[p - lo:p - lo + size].view(spec.dtype)
            out.append(a.reshape((max_rows,) + tuple(spec.shape[1:])))
        return tuple(out)

    def set_rows(self, rows: int) -> None:
        """Lends arrays of rows rows from now on. Only while no view of the slot is alive."""
        self.ins = tuple(a[:rows] for a in self._in_full)
        self.outs = tuple(_read_only(a[:rows]) for a in self._out_full)
        self._tracked = (self._rin, self._rout) + self.ins + self.outs
        self.rows = rows
        # No local of this frame refers to an array now: the count is the slot's own.
        self._baseline = self._refs()

    def writable_output(self, k: int) -> np.ndarray:
        """A writable array of output k of the current rows (counted through its base)."""
        return self._out_full[k][:self.rows]

    def _refs(self) -> int:
        return sum(map(_getrefcount, self._tracked))

    def views_alive(self) -> bool:
        """True while an array lent from this slot (or anything made from one) is alive."""
        return self._refs() != self._baseline

    def disarm(self, closer: "Closer") -> None:
        """At session close: drops the slot's own arrays; closer counts down each of the
        slot's exporters when the last view over it dies (at once when none is alive)."""
        mems = [m for m in (self._min, self._mout) if m is not None]
        closer.expect(len(mems))
        for m in mems:
            m.on_death = closer.done
        self._min = self._mout = None
        self._rin = self._rout = _EMPTY
        self._in_full = self._out_full = self.ins = self.outs = self._tracked = ()
        self.req = None
        self.cp = None  # the slot's requests now raise Closed instead of calling libswarm
        del mems  # the last references the slot held: exporters with no view die now


class Closer:
    """Calls finish once every exporter it expects has died. Holds one count of its own
    until release(), so that exporters dying while the session is being closed cannot
    finish early."""

    __slots__ = ("pending", "finish")

    def __init__(self, finish: Callable[[], None]):
        self.pending = 1
        self.finish: Optional[Callable[[], None]] = finish

    def expect(self, n: int) -> None:
        self.pending += n

    def done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.finish is not None:
            fin, self.finish = self.finish, None
            fin()

    release = done
