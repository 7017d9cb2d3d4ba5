"""_aio.py: asyncio over a session's eventfd (swarm_session_fd, swarm_session_arm).

One driver per session and event loop watches the session's fd with loop.add_reader while
any request of the session is awaited. Awaiting a request that has not completed registers a
future under its slot and arms the session (swarm_session_arm: the worker then writes the
eventfd on its next completion instead of waking a futex); when the fd is readable the driver
collects the completions (swarm_session_poll), resolves their futures and arms again. So one
event loop keeps any number of requests in flight on any number of sessions, without threads
and without spinning; a completion costs one eventfd write and one epoll wake-up.
"""
from __future__ import annotations

import asyncio
import errno as _errno
from ctypes import c_void_p
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _client
from .errors import Closed, QueueFull, error_for

_EAGAIN = -_errno.EAGAIN


class _Driver:
    def __init__(self, session: Any, loop: asyncio.AbstractEventLoop):
        self.s = session
        self.loop = loop
        self.lib = session._lib
        self.h = session._h
        self.fd = self.lib.session_fd(self.h)
        self.done = (c_void_p * session.slots)()
        self.waiters: Dict[int, Tuple[Any, asyncio.Future]] = {}
        self.slot_waiters: "list[asyncio.Future]" = []  # run_async waiting for a slot
        self.active = 0  # run_async calls holding a slot
        self.reading = False

    def watch(self, req: Any) -> "asyncio.Future[int]":
        fut = self.loop.create_future()
        self.waiters[req._slot.ptr] = (req, fut)
        if not self.reading:
            self.loop.add_reader(self.fd, self.on_ready)
            self.reading = True
        self.arm()
        return fut

    def arm(self) -> None:
        while self.waiters:
            if self.lib.session_arm(self.h) == 0:
                return
            self.collect()  # completions were already waiting
        self.idle()

    def idle(self) -> None:
        if self.reading and not self.waiters:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def on_ready(self) -> None:
        self.collect()
        self.arm()

    def collect(self) -> None:
        n = self.lib.session_poll(self.h, self.done, len(self.done))
        if n < 0:
            waiters, self.waiters = self.waiters, {}
            for req, fut in waiters.values():
                if not fut.done():
                    fut.set_result(n)
            return
        for k in range(n):
            w = self.waiters.pop(self.done[k], None)
            if w is not None and not w[1].done():
                w[1].set_result(self.lib.f_poll(w[0]._slot.cp))
        if n:
            self.wake_slot_waiters()

    def wake_slot_waiters(self) -> None:
        sw, self.slot_waiters = self.slot_waiters, []
        for f in sw:
            if not f.done():
                f.set_result(None)

    def close(self) -> None:
        """The session closes: every awaiter fails with Closed."""
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
        waiters, self.waiters = self.waiters, {}
        for _, fut in waiters.values():
            if not fut.done():
                fut.set_exception(Closed(0, "the session was closed while awaited"))
        for f in self.slot_waiters:
            if not f.done():
                f.set_exception(Closed(0, "the session was closed while awaited"))
        self.slot_waiters = []


def _driver(session: Any) -> _Driver:
    loop = asyncio.get_running_loop()
    d = session._aio
    if d is None or d.loop is not loop:
        if d is not None:
            d.close()
        session._handle()
        d = session._aio = _Driver(session, loop)
    return d


async def wait(req: Any) -> Any:
    """await request: submits it if it is still held, then waits for its completion on the
    event loop. Returns the request; raises its failure as Request.wait does."""
    from ._client import _HELD, _SUBMITTED
    if req._state == _HELD:
        req.submit()
    if req._state == _SUBMITTED:
        rc = req.session._lib.f_poll(req._slot.cp)
        if rc == _EAGAIN:
            d = _driver(req.session)
            fut = d.watch(req)
            try:
                rc = await fut
            except asyncio.CancelledError:
                d.waiters.pop(req._slot.ptr, None)
                d.idle()
                raise
        req._finish(rc)
    else:
        req.wait(0)  # done: its status; released: Closed
    return req


async def _slot_event(d: _Driver) -> None:
    """Waits until a request of the session completes or is released."""
    fut = d.loop.create_future()
    d.slot_waiters.append(fut)
    await fut


async def run(session: Any, inputs: Any, deadline: Optional[float]) -> Dict[str, np.ndarray]:
    from ._client import _SUBMITTED
    rows, pairs = session._pairs(inputs)
    d = _driver(session)
    while True:
        try:
            r = session.request(rows, deadline=deadline)
            break
        except QueueFull:
            if not d.waiters and not d.active:
                raise  # no request of this loop will give a slot back
            await _slot_event(d)
    d.active += 1
    try:
        with r:
            session._fill(r, pairs)
            while True:
                rc = _client._send(r._slot.cp, r.rows, 0)
                if rc != _EAGAIN:
                    break
                if not d.waiters:
                    raise error_for(rc, "submit", "the submission queue is full")
                await _slot_event(d)
            if rc:
                raise error_for(rc, "submit", session.client.error)
            r._state = _SUBMITTED
            await wait(r)
            return dict(zip(session._out_names, [o.copy() for o in r._slot.outs]))
    finally:
        d.active -= 1
