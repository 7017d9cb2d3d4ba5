"""test_cuda.py: tensors in the caller's GPU memory, passed by CUDA IPC handle
(Request.set_input_device / set_output_device). Without a GPU, everything up to the driver:
the argument checks, a DeviceBuffer's handle written into the slot and a CPU worker's answer
(NotSupported, after which the session serves on), the reading of __cuda_array_interface__
and of a CUDA DLPack capsule. With PyTorch on a GPU, a CUDA tensor's handle and offset; the
CUDA worker's side needs a CUDA build of swarm on a GPU and is skipped with that reason."""
from __future__ import annotations

import ctypes
import errno

import numpy as np
import pytest

import swarm
from swarm import _cuda

FAKE = bytes((0x5A ^ i) for i in range(64))


def test_a_cpu_worker_answers_a_device_request_with_not_supported(client):
    with client.open("identity", max_rows=4) as s:
        r = s.request(2)
        r.set_input_device("x", swarm.DeviceBuffer(FAKE, offset=128, nbytes=128))
        r.set_output_device(0, swarm.DeviceBuffer(FAKE))
        r.submit()
        with pytest.raises(swarm.NotSupported) as e:
            r.wait(10)
        assert e.value.errno == errno.ENOTSUP
        r.release()
        x = np.full((1, 64), 6, np.uint8)
        np.testing.assert_array_equal(s.run(x)["y"], x)  # the session serves on


def test_the_handle_and_offset_go_into_the_slot(client):
    with client.open("identity", max_rows=4) as s, s.request(1) as r:
        r.set_input_device(0, swarm.DeviceBuffer(FAKE, offset=4096))
        # the 72-byte descriptor sits at the start of the tensor's area (max_rows long)
        raw = ctypes.string_at(r.input(0).ctypes.data, 72)
        assert raw[:64] == FAKE
        assert int.from_bytes(raw[64:72], "little") == 4096


def test_device_argument_checks(client):
    with client.open("identity", max_rows=4) as s:
        with s.request(1) as r:
            with pytest.raises(swarm.InvalidArgument, match="64 bytes"):
                r.set_input_device(0, swarm.DeviceBuffer(FAKE[:63]))
            with pytest.raises(swarm.InvalidArgument, match="holds 100 bytes"):
                r.set_input_device(0, swarm.DeviceBuffer(FAKE, nbytes=100))
            with pytest.raises(swarm.InvalidArgument, match="'x'"):
                r.set_input_device(1, swarm.DeviceBuffer(FAKE))
            with pytest.raises(swarm.InvalidArgument, match="no GPU tensor"):
                r.set_input_device(0, [0] * 64)
            with pytest.raises(swarm.InvalidArgument, match="DLPack device type 1"):
                r.set_input_device(0, np.zeros((1, 64), np.uint8))
            with pytest.raises(swarm.InvalidArgument, match="DLPack device type 1"):
                r.set_output_device(0, _OnCpu())
            r.submit()
            with pytest.raises(swarm.InvalidArgument, match="already submitted"):
                r.set_input_device(0, swarm.DeviceBuffer(FAKE))
            r.wait()
    with client.open("identity", max_rows=1) as s, s.request(1) as r:
        # a 64-byte tensor area cannot hold the 72-byte descriptor
        with pytest.raises(swarm.InvalidArgument, match="72-byte"):
            r.set_input_device(0, swarm.DeviceBuffer(FAKE))


class _OnCpu:
    def __dlpack_device__(self):
        return (1, 0)


class _FakeCuda:
    """An object that looks like a CUDA array to the interface readers."""

    def __init__(self, ptr, shape, typestr="|u1", strides=None):
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape,
                                         "typestr": typestr, "strides": strides,
                                         "version": 3}


def test_cuda_array_interface_is_checked_before_the_driver(monkeypatch):
    seen = []

    class Driver:
        def handle_of(self, ptr):
            seen.append(ptr)
            return FAKE, 256, 1 << 20

    monkeypatch.setattr(_cuda, "_driver", Driver())
    assert _cuda._pointer_of(_FakeCuda(0x7000, (2, 64)), 128) == (FAKE, 256)
    assert seen == [0x7000]
    with pytest.raises(swarm.InvalidArgument, match="holds 64 bytes"):
        _cuda._pointer_of(_FakeCuda(0x7000, (1, 64)), 128)
    with pytest.raises(swarm.InvalidArgument, match="C-contiguous"):
        _cuda._pointer_of(_FakeCuda(0x7000, (2, 64), strides=(1, 2)), 128)
    assert _cuda._pointer_of(_FakeCuda(0x7000, (2, 16), "<f4", (64, 4)), 128)[1] == 256


def test_a_cuda_dlpack_capsule_is_read_not_consumed(monkeypatch):
    """A numpy array's real capsule, presented as if it were on CUDA: the reader finds its
    data pointer, shape and strides (DLPack 1.0's versioned layout)."""
    class Driver:
        def handle_of(self, ptr):
            return FAKE, ptr, 1 << 20

    monkeypatch.setattr(_cuda, "_driver", Driver())
    a = np.zeros((2, 16), np.float32)

    class OnCuda:
        def __dlpack_device__(self):
            return (2, 0)

        def __dlpack__(self, **kw):
            return a.__dlpack__(**kw)

    handle, off = _cuda._pointer_of(OnCuda(), 128)
    assert handle == FAKE and off == a.ctypes.data


def test_no_driver_is_not_supported(monkeypatch):
    monkeypatch.setattr(_cuda, "_driver", None)
    monkeypatch.setattr(ctypes, "CDLL", _no_cdll)
    with pytest.raises(swarm.NotSupported, match="libcuda"):
        _cuda._cuda()


def _no_cdll(name, *a, **k):
    raise OSError(f"{name}: cannot open shared object file")


def _torch_cuda():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: a CUDA tensor "
                                "needs it (the DeviceBuffer path is tested above)")
    if not torch.cuda.is_available():
        pytest.skip("no GPU here (torch.cuda.is_available() is False)")
    return torch


def test_a_torch_cuda_tensor_gives_its_ipc_handle_and_offset():
    torch = _torch_cuda()
    t = torch.zeros(4, 64, dtype=torch.uint8, device="cuda")
    handle, off = _cuda._pointer_of(t[2:], 128)
    assert len(handle) == 64 and off >= 128
    assert _cuda._pointer_of(t, 256)[0] == handle  # one allocation, one handle


def test_a_cuda_worker_runs_a_request_on_a_torch_tensor():
    _torch_cuda()
    pytest.skip("needs a CUDA build of swarm serving a node-list model on this GPU "
                "(docs/devices.md, 'Client tensors in GPU memory'): bench/gpu-check.sh's run")
