"""test_aio.py: asyncio over the sessions' eventfds: many requests in flight from one event
loop and no thread, await on a request, run_async waiting for slots, cancellation, and a
worker killed with SIGKILL under that load without one failed request (as tests/e2e's
a_worker_killed_under_load_reruns_its_requests_exactly_once does in C)."""
from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import numpy as np
import pytest

import swarm


def _affine_input(seed: int, rows: int = 1) -> np.ndarray:
    return (np.arange(rows * 16, dtype=np.float32).reshape(rows, 16) + seed) / 8


async def _load(sessions, n_per_session, check):
    async def one(s, seed):
        x = _affine_input(seed)
        out = await s.run_async({"x": x})
        check(seed, x, out["y"])
    await asyncio.gather(*(one(s, k * 1000 + j) for k, s in enumerate(sessions)
                           for j in range(n_per_session)))


def test_two_hundred_requests_in_flight_on_four_sessions_from_one_loop(client):
    threads = threading.active_count()
    sessions = [client.open("affine", max_rows=1, slots=8) for _ in range(4)]
    seen = {}

    def check(seed, x, y):
        np.testing.assert_array_equal(y, 2 * x + 1)
        seen[seed] = True

    t0 = time.monotonic()
    asyncio.run(_load(sessions, 50, check))
    assert len(seen) == 200, len(seen)
    assert time.monotonic() - t0 < 30
    assert threading.active_count() == threads  # no thread was started
    for s in sessions:
        assert s._aio is not None and not s._aio.waiters and not s._aio.reading
        s.close()


def test_await_a_request_submits_and_completes_it(client):
    async def main(s):
        with s.request(2) as r:
            r.input(0)[:] = 3
            done = await r  # submits a held request
            assert done is r and r.done
            np.testing.assert_array_equal(r.output(0), np.full((2, 16), 7, np.float32))
        with s.request() as r:
            r.input(0)[:] = 1
            r.submit()
            await r
            await r  # again: done
            assert (r.output(0) == 3).all()
        many = [s.request() for _ in range(s.slots)]
        for k, r in enumerate(many):
            r.input(0)[:] = k
            r.submit()
        for k, r in enumerate(reversed(many)):  # awaited out of order
            await r
            assert (r.output(0) == 2 * (len(many) - 1 - k) + 1).all()
            r.release()
    with client.open("affine", max_rows=2, slots=4) as s:
        asyncio.run(main(s))


def test_run_async_waits_for_a_slot_when_all_are_in_flight(client):
    with client.open("identity", max_rows=1, slots=2) as s:
        async def main():
            xs = [np.full((1, 64), k, np.uint8) for k in range(40)]
            outs = await asyncio.gather(*(s.run_async(x) for x in xs))
            for x, o in zip(xs, outs):
                np.testing.assert_array_equal(o["y"], x)
        asyncio.run(main())
        with s.request(), s.request():  # both slots held, none in flight: no wait
            with pytest.raises(swarm.QueueFull):
                asyncio.run(s.run_async(np.zeros((1, 64), np.uint8)))


def test_a_cancelled_await_leaves_the_session_usable(client):
    with client.open("identity", max_rows=1, slots=2) as s:
        pid = s.info().worker_pid
        os.kill(pid, signal.SIGSTOP)
        try:
            async def main():
                r = s.request()
                r.submit()
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(_await(r), 0.05)
                return r
            r = asyncio.run(main())
        finally:
            os.kill(pid, signal.SIGCONT)
        r.wait(10)
        r.release()
        assert asyncio.run(s.run_async(np.ones((1, 64), np.uint8)))["y"].sum() == 64


async def _await(r):
    return await r


def test_await_raises_the_requests_failure(client, past_deadline):
    with client.open("identity", max_rows=1) as s:
        r = past_deadline(s)
        with pytest.raises(swarm.Timeout, match="deadline"):
            asyncio.run(_await(r))
        r.release()


def test_closing_a_session_fails_its_awaiters_with_closed(client):
    s = client.open("identity", max_rows=1)
    pid = s.info().worker_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        async def main():
            r = s.request()
            r.submit()
            task = asyncio.ensure_future(_await(r))
            await asyncio.sleep(0.02)
            s.close()
            with pytest.raises(swarm.Closed):
                await task
        asyncio.run(main())
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("fresh_swarmd", ["cpu:2"], indirect=True)
def test_a_worker_killed_under_asyncio_load_fails_no_request(fresh_swarmd):
    workers = fresh_swarmd.wait_workers(2)
    assert len(workers) == 2, workers
    c = swarm.connect(fresh_swarmd.socket)
    sessions = [c.open("affine", max_rows=1, slots=8) for _ in range(8)]
    served_by = {s.info().worker_pid for s in sessions}
    assert served_by == set(workers), (served_by, workers)
    done = {"n": 0, "bad": 0}
    errors = []

    stop = {"now": False}

    async def client_loop(s, k):
        seed = k * 10_000_000
        while not stop["now"]:
            rs = []
            for j in range(6):
                r = s.request()
                r.input(0)[...] = _affine_input(seed + j)
                r.submit()
                rs.append((r, seed + j))
            for r, sd in rs:
                try:
                    await r
                except swarm.Error as e:  # a failed request fails the test below
                    errors.append(f"session {k} request {sd}: {e}")
                    r.release()
                    continue
                if not np.array_equal(r.output(0), 2 * _affine_input(sd) + 1):
                    done["bad"] += 1
                done["n"] += 1
                r.release()
            seed += 6

    async def main():
        tasks = [asyncio.ensure_future(client_loop(s, k)) for k, s in enumerate(sessions)]
        await asyncio.sleep(1.0)
        os.kill(workers[1], signal.SIGKILL)
        await asyncio.sleep(2.0)  # the load goes on through the move
        stop["now"] = True
        await asyncio.gather(*tasks)

    asyncio.run(main())
    end = time.monotonic() + 10
    while "event=session_moved" not in fresh_swarmd.log() and time.monotonic() < end:
        time.sleep(0.05)  # swarmd logs the move when the new worker confirms it
    log = fresh_swarmd.log()
    assert not errors, "\n".join(errors[:10]) + "\n" + log[-4000:]
    assert done["bad"] == 0
    assert done["n"] > 100, done
    assert "event=worker_died" in log
    assert "event=session_moved" in log, log[-3000:]
    # every session still serves, the moved ones on the other worker or its replacement
    for s in sessions:
        np.testing.assert_array_equal(s.run(_affine_input(5))["y"], 2 * _affine_input(5) + 1)
    c.close()


@pytest.mark.parametrize("fresh_swarmd", ["cpu:1"], indirect=True)
def test_a_worker_killed_with_a_request_in_flight_runs_it_on_its_replacement(fresh_swarmd):
    (w,) = fresh_swarmd.wait_workers(1)
    with swarm.connect(fresh_swarmd.socket) as c, c.open("identity", max_rows=1) as s:
        assert s.info().worker_pid == w
        r = s.request()
        r.input(0)[:] = np.arange(64, dtype=np.uint8)
        os.kill(w, signal.SIGSTOP)
        r.submit()
        time.sleep(0.02)
        os.kill(w, signal.SIGKILL)
        r.wait(10)  # the client sees latency, not an error
        np.testing.assert_array_equal(r.output(0)[0], np.arange(64, dtype=np.uint8))
        r.release()
        end = time.monotonic() + 5
        while s.info().worker_pid == w and time.monotonic() < end:
            s.run(np.zeros((1, 64), np.uint8))
            time.sleep(0.01)
        assert s.info().worker_pid != w
        for k in range(50):
            x = np.full((1, 64), k, np.uint8)
            np.testing.assert_array_equal(s.run(x)["y"], x)
