"""test_client.py: every call of the swarm package against a real swarmd, and every error
class it raises, with the text swarmd or the library gave."""
from __future__ import annotations

import errno
import math
import os
import pickle
import signal
import time

import numpy as np
import pytest

import swarm
from conftest import stopped
from swarm import errors


def test_library_is_the_builds_and_speaks_abi_2():
    from conftest import LIB
    assert os.path.realpath(swarm.library_path()) == os.path.realpath(LIB)
    assert swarm.library_version().count(".") == 2, swarm.library_version()
    assert swarm.ABI_VERSION == 2
    assert swarm.default_socket().endswith("swarmd.sock")


def test_connect_and_close_as_context_manager(swarmd):
    with swarm.connect(swarmd.socket) as c:
        assert not c.closed
        assert c.error == ""
        assert swarmd.socket in repr(c)
    assert c.closed
    with pytest.raises(swarm.Closed):
        c.open("identity")
    c.close()  # idempotent


def test_connect_takes_a_path_object_and_a_timeout(swarmd):
    from pathlib import Path
    for t in (None, 5.0, math.inf):
        with swarm.connect(Path(swarmd.socket), timeout=t) as c:
            c.set_timeout(2.5)
            c.set_timeout(math.inf)
    with pytest.raises(swarm.InvalidArgument, match="timeout"):
        swarm.connect(swarmd.socket, timeout=-1)


def test_connect_uses_swarm_socket_from_the_environment(swarmd, monkeypatch):
    monkeypatch.setenv("SWARM_SOCKET", swarmd.socket)
    with swarm.connect() as c:
        assert c.open("identity", max_rows=1).info().model == "identity"


def test_connect_to_no_daemon_raises_connection_refused(tmp_path):
    path = str(tmp_path / "none.sock")
    with pytest.raises(swarm.ConnectionRefused) as e:
        swarm.connect(path, timeout=2)
    assert path in str(e.value) and "[ECONNREFUSED]" in str(e.value)
    assert e.value.errno == errno.ECONNREFUSED and isinstance(e.value, ConnectionError)
    assert str(e.value).count("no swarmd listens") == 1, str(e.value)


def test_open_gives_specs_of_identity_and_affine(client):
    with client.open("identity", max_rows=4) as s:
        (x,), (y,) = s.inputs, s.outputs
        assert (x.name, x.dtype, x.shape, x.row_bytes, x.swarm_dtype) == (
            "x", np.dtype(np.uint8), (-1, 64), 64, "u8")
        assert (y.name, y.index, y.shape) == ("y", 0, (-1, 64))
        assert (s.model, s.version, s.max_rows) == ("identity", 1, 4)
    with client.open("affine", version=1, max_rows=2, slots=3, queue_depth=2) as s:
        assert s.inputs[0].dtype == np.float32 and s.inputs[0].shape == (-1, 16)
        assert (s.slots, s.queue_depth, s.max_rows) == (3, 2, 2)
        assert "affine" in repr(s)
    assert s.closed and "closed" in repr(s)


def test_session_info_names_device_numa_cores_and_worker(client, swarmd):
    with client.open("affine") as s:
        i = s.info()
        assert i.device in ("cpu:0", "cpu:1") and i.device_index in (0, 1)
        assert i.numa_node >= -1 and i.cpus
        assert i.worker_pid in swarmd.workers()
        assert (i.model, i.version, i.slots) == ("affine", 1, s.slots)
        assert i.session_id > 0
        assert isinstance(i.mem_policy, str)


def test_open_unknown_model_or_version_raises_model_not_found_with_swarmds_text(client):
    with pytest.raises(swarm.ModelNotFound) as e:
        client.open("no-such-model")
    assert e.value.errno == errno.ENOENT
    assert "no-such-model" in str(e.value) and e.value.detail
    assert isinstance(e.value, LookupError)
    with pytest.raises(swarm.ModelNotFound, match="version 9"):
        client.open("affine", version=9)


def test_open_out_of_range_options_raise_invalid_argument(client):
    with pytest.raises(swarm.InvalidArgument) as e:
        client.open("affine", max_rows=1 << 30)
    assert e.value.errno == errno.EINVAL and isinstance(e.value, ValueError)
    with pytest.raises(swarm.InvalidArgument):
        client.open("affine", queue_depth=3)


@pytest.mark.parametrize("fresh_swarmd", [("cpu:1", ["--max-sessions-per-client", "1"])],
                         indirect=True)
def test_a_limit_raises_quota_exceeded_naming_the_option(fresh_swarmd):
    with swarm.connect(fresh_swarmd.socket) as c:
        first = c.open("identity", max_rows=1)  # kept: a dropped session closes
        with pytest.raises(swarm.QuotaExceeded) as e:
            c.open("identity", max_rows=1)
        assert e.value.errno == errno.EDQUOT
        assert "max-sessions-per-client" in str(e.value)
        first.close()
        c.open("identity", max_rows=1).close()


def test_request_round_trip_through_views_identity(client):
    with client.open("identity", max_rows=4) as s:
        with s.request(3) as r:
            assert (r.rows, r.session) == (3, s) and 0 <= r.slot < s.slots
            x = r.input("x")
            assert x.shape == (3, 64) and x.dtype == np.uint8 and x.flags.writeable
            x[:] = np.arange(192, dtype=np.uint8).reshape(3, 64)
            r.submit()
            r.wait()
            y = r.output("y")
            assert y.shape == (3, 64) and not y.flags.writeable
            np.testing.assert_array_equal(y, x)
            assert r.done and r.poll()
            r.wait()  # again: done, no error
            assert "done" in repr(r)
        assert "released" in repr(r)


def test_affine_outputs_follow_the_inputs_written_through_the_view(client):
    with client.open("affine", max_rows=8) as s:
        rng = np.random.default_rng(1)
        for rows in (1, 8, 3):
            with s.request(rows) as r:
                x = rng.standard_normal((rows, 16)).astype(np.float32)
                r.input(0)[...] = x
                r.submit()
                r.wait(5.0)
                np.testing.assert_array_equal(r.output(0), 2 * x + 1)


def test_run_copies_in_and_out_from_dict_list_or_array(client):
    with client.open("affine", max_rows=8) as s:
        x = np.arange(32, dtype=np.float32).reshape(2, 16)
        for arg in ({"x": x}, {0: x}, [x], x, (x,)):
            out = s.run(arg)
            assert list(out) == ["y"]
            np.testing.assert_array_equal(out["y"], 2 * x + 1)
            assert out["y"].flags.owndata and out["y"].flags.writeable
        out = s.run({"x": x.astype(np.float16)}, timeout=5)  # same-kind cast
        np.testing.assert_array_equal(out["y"], 2 * x + 1)
        with pytest.raises(swarm.InvalidArgument, match="'nope'.*'x'"):
            s.run({"nope": x})
        with pytest.raises(swarm.InvalidArgument, match="missing"):
            s.run({})
        with pytest.raises(swarm.InvalidArgument, match="2 inputs given"):
            s.run({"x": x, 0: x})
        with pytest.raises(swarm.InvalidArgument, match="shape"):
            s.run({"x": np.zeros((2, 15), np.float32)})
        with pytest.raises(swarm.InvalidArgument, match="2 inputs given"):
            s.run([x, x])
        with pytest.raises(TypeError):
            s.run({"x": x.astype(np.complex64)})
        with pytest.raises(swarm.InvalidArgument, match="max_rows 8"):
            s.run({"x": np.zeros((9, 16), np.float32)})
        assert len(s._pending) == 0


def test_bad_tensor_index_or_name_raises_invalid_argument_naming_the_tensors(client):
    with client.open("affine", max_rows=1) as s, s.request() as r:
        for bad in (1, -2, "z", 2.0):
            with pytest.raises(swarm.InvalidArgument, match="'x'"):
                r.input(bad)
        with pytest.raises(swarm.InvalidArgument, match="'y'"):
            r.output("x")
        assert r.input(np.int64(0)) is r.input(0) is r.input(-1)  # Python's indexing


def test_rows_out_of_range_raise_invalid_argument(client):
    with client.open("affine", max_rows=4) as s:
        for rows in (0, 5, -1, 1 << 40, np.int64(9)):
            with pytest.raises(swarm.InvalidArgument, match="max_rows 4"):
                s.request(rows)
        with pytest.raises(swarm.InvalidArgument, match="integer"):
            s.request(1.5)
        with s.request(np.int32(3)) as r:
            assert r.rows == 3 and r.input(0).shape == (3, 16)


def test_an_infinite_deadline_is_none(client):
    with client.open("identity", max_rows=1) as s, s.request(deadline=math.inf) as r:
        r.submit()
        r.wait(10)


def test_all_slots_held_raises_queue_full(client):
    with client.open("identity", max_rows=1, slots=2) as s:
        a, b = s.request(), s.request()
        with pytest.raises(swarm.QueueFull) as e:
            s.request()
        assert e.value.errno == errno.EAGAIN and "2 slots" in str(e.value)
        a.release()
        s.request().release()
        b.release()


def test_submit_and_wait_in_the_wrong_state_raise(client):
    with client.open("identity", max_rows=1) as s:
        r = s.request()
        with pytest.raises(swarm.InvalidArgument, match="not submitted"):
            r.wait()
        with pytest.raises(swarm.InvalidArgument, match="not submitted"):
            r.poll()
        r.submit()
        with pytest.raises(swarm.InvalidArgument, match="already submitted"):
            r.submit()
        with pytest.raises(swarm.InvalidArgument, match="already submitted"):
            r.set_deadline(1)
        r.wait()
        r.release()
        r.release()  # idempotent
        for call in (r.submit, r.wait, r.poll, r.input, r.output):
            with pytest.raises(swarm.Closed):
                call()


def test_in_flight_request_busy_poll_false_and_wait_timeout(client):
    with client.open("identity", max_rows=1) as s:
        pid = s.info().worker_pid
        stopped(pid)
        try:
            r = s.request()
            r.input()[:] = 5
            r.submit()
            assert r.poll() is False and not r.done
            with pytest.raises(swarm.Busy) as e:
                r.release()
            assert e.value.errno == errno.EBUSY
            t0 = time.monotonic()
            with pytest.raises(swarm.Timeout) as e:
                r.wait(0.05)
            assert time.monotonic() - t0 >= 0.04
            assert isinstance(e.value, TimeoutError) and "in flight" in str(e.value)
        finally:
            os.kill(pid, signal.SIGCONT)
        r.wait(10)
        assert (r.output() == 5).all()
        r.release()


def test_wait_forever_returns_once_the_worker_resumes(client):
    with client.open("identity", max_rows=1) as s:
        s.spin = 0
        assert s.spin == 0
        pid = s.info().worker_pid
        stopped(pid)
        with s.request() as r:
            r.submit()
            import threading
            threading.Timer(0.3, os.kill, (pid, signal.SIGCONT)).start()
            t0 = time.monotonic()
            r.wait()  # None: in slices, past the 0.1 s of one
            assert time.monotonic() - t0 > 0.2
        s.spin = 50e-6
        with pytest.raises(swarm.InvalidArgument):
            s.spin = -1


def test_a_passed_deadline_completes_with_timeout_without_running(client):
    with client.open("identity", max_rows=1) as s:
        pid = s.info().worker_pid
        stopped(pid)
        try:
            r = s.request(deadline=0.01)
            r.input()[:] = 9
            r.submit()
            time.sleep(0.05)
        finally:
            os.kill(pid, signal.SIGCONT)
        with pytest.raises(swarm.Timeout, match="deadline"):
            r.wait(10)
        with pytest.raises(swarm.Timeout, match="deadline"):
            r.poll()  # the status stays
        r.release()
        with pytest.raises(swarm.Timeout):
            s.run(np.zeros((1, 64), np.uint8), deadline=0)


def test_leaving_the_block_in_flight_frees_the_slot_on_completion(client):
    with client.open("identity", max_rows=1, slots=1) as s:
        pid = s.info().worker_pid
        stopped(pid)
        try:
            with pytest.raises(RuntimeError):
                with s.request() as r:
                    r.submit()
                    raise RuntimeError("boom")
            with pytest.raises(swarm.QueueFull):
                s.request()
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
        for _ in range(100):
            try:
                s.request().release()
                break
            except swarm.QueueFull:
                time.sleep(0.02)
        else:
            pytest.fail("the slot of the request left in flight never came back")


def test_poll_reports_each_completion_once(client):
    with client.open("identity", max_rows=1, slots=4) as s:
        rs = [s.request() for _ in range(3)]
        for r in rs:
            r.submit()
        seen = []
        end = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < end:
            seen += s.poll()
        assert sorted(r.slot for r in seen) == sorted(r.slot for r in rs)
        assert s.poll() == []
        for r in rs:
            r.wait()
            r.release()


def test_fd_and_arm_for_other_event_loops(client):
    import select
    with client.open("identity", max_rows=1) as s:
        assert s.fd >= 0
        with s.request() as r:
            s.spin = 0
            assert s.arm() is False
            r.submit()
            ready, _, _ = select.select([s.fd], [], [], 5)
            assert ready == [s.fd]
            assert [x.slot for x in s.poll()] == [r.slot]
            r.wait()


def test_closed_session_and_client_refuse_calls_with_closed(swarmd):
    c = swarm.connect(swarmd.socket)
    s = c.open("identity", max_rows=1)
    r = s.request()
    c.close()
    assert s.closed and c.closed
    for call in (s.request, s.info, s.poll, s.arm, lambda: s.fd, lambda: s.run(
            np.zeros((1, 64), np.uint8)), r.submit, r.input):
        with pytest.raises(swarm.Closed):
            call()
    r.release()  # a no-op after close
    s.close()


def test_a_stopped_swarmd_loses_the_session_with_session_lost(fresh_swarmd):
    c = swarm.connect(fresh_swarmd.socket)
    s = c.open("identity", max_rows=1)
    s.run(np.zeros((1, 64), np.uint8))
    fresh_swarmd.proc.send_signal(signal.SIGTERM)
    fresh_swarmd.proc.wait(10)
    with pytest.raises(swarm.SessionLost) as e:
        for _ in range(100):
            s.run(np.zeros((1, 64), np.uint8), timeout=10)
            time.sleep(0.02)
    assert e.value.errno == errno.ECONNABORTED
    with pytest.raises(swarm.SessionLost):
        s.poll()
    with pytest.raises(swarm.NotConnected):
        c.open("identity")
    c.close()


def test_every_errno_swarm_h_names_has_its_class():
    want = {
        errno.EAGAIN: swarm.QueueFull, errno.ETIMEDOUT: swarm.Timeout,
        errno.EPROTO: swarm.ProtocolMismatch, errno.ENOENT: swarm.ModelNotFound,
        errno.EINVAL: swarm.InvalidArgument, errno.EBUSY: swarm.Busy,
        errno.ECONNABORTED: swarm.SessionLost, errno.EBADMSG: swarm.SessionDetached,
        errno.EACCES: swarm.PermissionDenied, errno.ECONNREFUSED: swarm.ConnectionRefused,
        errno.ENOTCONN: swarm.NotConnected, errno.ENOTSUP: swarm.NotSupported,
        errno.ENODEV: swarm.NoDevice, errno.EDQUOT: swarm.QuotaExceeded,
        errno.ENOMEM: swarm.OutOfMemory, errno.EFBIG: swarm.ModelTooLarge,
        errno.ENOSPC: swarm.DeviceMemoryFull,
    }
    assert errors.ERRNO_CLASSES == want
    for e, cls in want.items():
        err = errors.error_for(-e, "op", "what swarmd said")
        assert type(err) is cls and isinstance(err, swarm.Error)
        assert err.errno == e and err.detail == "what swarmd said" and err.op == "op"
        assert err.strerror and err.strerror in str(err)  # swarm_strerror's text
        assert errno.errorcode[e] in str(err) and "what swarmd said" in str(err)
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and str(back) == str(err)
    other = errors.error_for(-errno.EIO, "op")
    assert type(other) is swarm.Error and other.errno == errno.EIO
    assert issubclass(swarm.SessionDetached, swarm.SessionLost)
    assert issubclass(swarm.Timeout, TimeoutError)
    assert issubclass(swarm.ConnectionRefused, ConnectionError)
    assert issubclass(swarm.PermissionDenied, PermissionError)


def _affine_round_trip(s, rows, seed):
    x = np.random.default_rng(seed).standard_normal((rows, 16)).astype(np.float32)
    with s.request(rows) as r:
        r.input(0)[...] = x
        r.submit()
        r.wait(5.0)
        np.testing.assert_array_equal(r.output(0), 2 * x + 1)
        return r.slot


def test_released_slots_are_kept_and_sent_again_with_any_rows(client):
    from swarm import _client
    assert _client._keep, "this build's libswarm has swarm_request_submit_again"
    with client.open("affine", max_rows=8, slots=2) as s:
        first = _affine_round_trip(s, 1, 0)
        assert [sl.index for sl in s._free] == [first]  # kept, not given back to libswarm
        for k, rows in enumerate((1, 8, 3, 3, 1, 8)):
            assert _affine_round_trip(s, rows, k + 1) == first  # the same slot, new rows
        for bad in (0, 9, 1.5):  # refused while the kept slot stays free
            with pytest.raises(swarm.InvalidArgument):
                s.request(bad)
        held = [s.request(2), s.request(2)]  # both slots: none was lost
        with pytest.raises(swarm.QueueFull):
            s.request()
        for r in held:
            r.release()
        assert len(s._free) == 2


def test_a_kept_slot_lent_again_is_not_reported_by_poll(client):
    with client.open("identity", max_rows=1, slots=1) as s:
        with s.request() as r:
            r.submit()
            r.wait(5.0)  # completed, never reported by poll
        with s.request() as r2:
            assert r2.slot == r.slot
            assert s.poll() == []  # held: its slot's previous completion is not its own
            r2.input(0)[:] = 4
            r2.submit()
            end = time.monotonic() + 5
            done = []
            while not done and time.monotonic() < end:
                done = s.poll()
            assert done == [r2]
            r2.wait()
            assert (r2.output(0) == 4).all()


def test_a_slot_with_a_deadline_goes_back_and_its_next_request_has_none(client, past_deadline):
    with client.open("identity", max_rows=1, slots=1) as s:
        r = past_deadline(s)
        with pytest.raises(swarm.Timeout):
            r.wait(5.0)
        r.release()
        assert s._free == []  # a deadline is cleared only by libswarm's release and alloc
        for k in range(3):  # the same slot, no deadline any more
            with s.request() as r:
                r.input(0)[:] = k
                r.submit()
                r.wait(5.0)
                assert (r.output(0) == k).all()


def test_without_submit_again_every_slot_goes_back_to_libswarm(client, monkeypatch):
    from swarm import _client
    lib = swarm._lib.load()
    monkeypatch.setattr(lib, "f_again", None)  # a libswarm before swarm_request_submit_again
    _client._bind(lib)
    try:
        assert not _client._keep
        with client.open("affine", max_rows=8, slots=2) as s:
            for k, rows in enumerate((1, 8, 3)):
                _affine_round_trip(s, rows, k)
                assert s._free == []
    finally:
        monkeypatch.undo()
        _client._bind(lib)
    assert _client._keep
