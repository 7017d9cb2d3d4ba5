"""test_views.py: the arrays over the slots are the slots (no copy, inside the session's
segment, written and read by the worker), and none of them ever outlives its memory or sees
its slot reused: after release, after session close, after client close; DLPack into NumPy
(and PyTorch where it is installed)."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import swarm


def _mapping_of(addr: int):
    """The /proc/self/maps line whose range holds addr, or None."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line.strip()
    return None


def _c_addresses(r):
    lib = swarm._lib.load()
    return lib.request_input(r._slot.cp, 0), lib.request_output(r._slot.cp, 0)


def test_input_is_the_same_array_over_the_slot_every_call_no_copy(client):
    with client.open("identity", max_rows=4) as s, s.request(2) as r:
        a, b = r.input(0), r.input("x")
        assert a is b and np.shares_memory(a, b)
        cin, cout = _c_addresses(r)
        assert a.ctypes.data == cin  # swarm_request_input's pointer
        assert r.output(0).ctypes.data == cout  # swarm_request_output's
        assert a.base is not None and not a.flags.owndata
        assert cin % 64 == 0 and cout % 64 == 0


def test_every_slots_tensors_lie_inside_the_sessions_segment(client):
    with client.open("identity", max_rows=2, slots=4) as s:
        rs = [s.request(2) for _ in range(4)]
        maps = {_mapping_of(r.output(0).ctypes.data) for r in rs}
        maps |= {_mapping_of(r.input(0).ctypes.data) for r in rs}
        assert len(maps) == 1, maps
        (m,) = maps
        assert "memfd:" in m, m  # the session's sealed memfd, mapped shared
        lo, hi = (int(x, 16) for x in m.split()[0].split("-"))
        for r in rs:
            y = r.output(0)
            assert lo <= y.ctypes.data and y.ctypes.data + y.nbytes <= hi
            r.release()


def test_writing_through_the_input_view_is_what_the_worker_reads(client):
    with client.open("identity", max_rows=1, slots=1) as s:
        for k in range(5):
            with s.request() as r:
                x = r.input(0)
                x[0, :] = (np.arange(64) * (k + 1)) % 256
                r.submit()
                r.wait()
                np.testing.assert_array_equal(r.output(0), x)
            del x


def test_output_views_are_read_only_unless_asked_writable(client):
    with client.open("affine", max_rows=1) as s, s.request() as r:
        r.input(0)[:] = 1
        r.submit()
        r.wait()
        y = r.output(0)
        with pytest.raises(ValueError):
            y[0, 0] = 5
        w = r.output("y", writable=True)
        assert np.shares_memory(w, y) and w.flags.writeable
        w[0, 0] = 7
        assert y[0, 0] == 7 and y[0, 1] == 3


def test_a_view_alive_at_release_keeps_its_slot_from_reuse(client):
    with client.open("identity", max_rows=1, slots=2) as s:
        r = s.request()
        r.input(0)[:] = 11
        r.submit()
        r.wait()
        y = r.output(0)
        kept = y[0, :8]  # a derived view counts too
        slot = r.slot
        r.release()
        for k in range(20):  # other requests never get that slot while y lives
            with s.request() as o:
                assert o.slot != slot
                o.input(0)[:] = k
                o.submit()
                o.wait()
        assert (y == 11).all() and (kept == 11).all()
        a = s.request()
        with pytest.raises(swarm.QueueFull, match="still viewed"):
            s.request()
        a.release()
        del y, kept
        both = [s.request(), s.request()]  # the slot came back
        assert slot in {b.slot for b in both}
        for b in both:
            b.release()


@pytest.mark.parametrize("make", [
    lambda a: memoryview(a),
    lambda a: np.asarray(a).view(np.int8),
    lambda a: a.reshape(-1),
    lambda a: np.from_dlpack(a),
    lambda a: a.__dlpack__(),
], ids=["memoryview", "view", "reshape", "from_dlpack", "capsule"])
def test_anything_made_from_a_view_keeps_the_slot(client, make):
    with client.open("identity", max_rows=1, slots=1) as s:
        r = s.request()
        held = make(r.input(0))
        r.release()
        with pytest.raises(swarm.QueueFull):
            s.request()
        del held
        s.request().release()


def test_a_request_dropped_without_release_gives_its_slot_back(client):
    with client.open("identity", max_rows=1, slots=1) as s:
        for _ in range(3):
            s.request()  # dropped at once
        r = s.request()
        r.submit()
        del r  # dropped in flight: back once it completes
        gc.collect()
        for _ in range(200):
            try:
                s.request().release()
                break
            except swarm.QueueFull:
                import time
                time.sleep(0.01)
        else:
            pytest.fail("the slot of a request dropped in flight never came back")


def test_a_view_alive_at_session_close_keeps_the_segment_mapped_until_it_dies(client):
    s = client.open("identity", max_rows=1)
    with s.request() as r:
        r.input(0)[:] = 42
        r.submit()
        r.wait()
        y = r.output(0)
    live = client._live
    s.close()
    assert s.closed
    with pytest.raises(swarm.Closed):
        s.request()
    gc.collect()
    addr = y.ctypes.data
    assert _mapping_of(addr) is not None and (y == 42).all()  # still mapped, still ours
    assert client._live == live  # swarm_session_close not called yet
    del y
    gc.collect()
    assert client._live == live - 1
    assert _mapping_of(addr) is None  # unmapped once the last view died


def test_a_view_alive_at_client_close_keeps_the_connection_until_it_dies(swarmd):
    c = swarm.connect(swarmd.socket)
    s = c.open("affine", max_rows=1)
    x = s.request().input(0)  # the request is dropped; its view lives
    x[:] = 3
    c.close()
    assert c.closed and s.closed
    assert c._h is not None  # disconnect deferred
    assert (x == 3).all()
    addr = x.ctypes.data
    del x
    gc.collect()
    assert c._h is None and _mapping_of(addr) is None


def test_a_session_dropped_with_views_alive_unmaps_after_them(swarmd):
    c = swarm.connect(swarmd.socket)
    r = c.open("identity", max_rows=1).request()
    x = r.input(0)
    del r
    gc.collect()  # the session object is gone; x keeps its memory
    x[:] = 1
    addr = x.ctypes.data
    assert _mapping_of(addr) is not None
    del x
    gc.collect()
    assert _mapping_of(addr) is None
    c.close()


def test_dlpack_into_numpy_shares_the_slot(client):
    with client.open("identity", max_rows=2) as s, s.request(2) as r:
        x = r.input(0)
        assert x.__dlpack_device__() == (1, 0)  # kDLCPU
        d = np.from_dlpack(x)
        assert d.ctypes.data == x.ctypes.data and d.shape == (2, 64)
        d[:] = 77  # written through the DLPack import
        r.submit()
        r.wait()
        y = np.from_dlpack(r.output(0))  # read-only: DLPack 1.0 carries the flag
        assert y.ctypes.data == r.output(0).ctypes.data and (y == 77).all()
        assert not y.flags.writeable


def test_dlpack_into_pytorch_shares_the_slot():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed here: the "
                                "NumPy DLPack test covers the protocol")
    from conftest import Swarmd
    d = Swarmd("cpu:1")
    try:
        with swarm.connect(d.socket) as c, c.open("affine", max_rows=2) as s:
            with s.request(2) as r:
                t = torch.from_dlpack(r.input(0))
                assert t.data_ptr() == r.input(0).ctypes.data
                t.copy_(torch.arange(32, dtype=torch.float32).reshape(2, 16))
                r.submit()
                r.wait()
                y = torch.from_dlpack(r.output(0, writable=True))
                assert y.data_ptr() == r.output(0).ctypes.data
                assert torch.equal(y, 2 * t + 1)
                del t, y
    finally:
        d.stop()
