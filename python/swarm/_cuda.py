"""_cuda.py: tensors in the caller's GPU memory, passed to a request by CUDA IPC handle.

swarm_request_set_input_device / _output_device take the 64 bytes of a CUDA IPC memory handle
of the allocation that holds the tensor, and the tensor's byte offset in it. This module gets
them from what a GPU library hands out:

- an object with __cuda_array_interface__ (a PyTorch CUDA tensor, a CuPy or Numba array), or
  with __dlpack__ and a CUDA __dlpack_device__ (JAX, and the others): its data pointer;
- from that pointer, through the CUDA driver (libcuda.so.1, loaded on first use, so that the
  package needs no CUDA at all until a GPU tensor is passed): cuMemGetAddressRange for the
  allocation's base (the offset is the pointer less the base) and cuIpcGetMemHandle for the
  handle;
- or a DeviceBuffer that carries a handle and an offset made elsewhere.

The tensor must be C-contiguous, hold rows * row_bytes bytes of the spec's dtype, and live on
the GPU that Session.info() names. The worker opens the handle (a CPU worker completes the
request with NotSupported).
"""
from __future__ import annotations

import ctypes
import errno as _errno
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from .errors import InvalidArgument, NotSupported, error_for

IPC_HANDLE_BYTES = 64
_KDL_CUDA = 2
_KDL_CUDA_MANAGED = 13


@dataclass(frozen=True)
class DeviceBuffer:
    """A tensor in GPU memory named by its CUDA IPC handle (the 64 bytes of
    cuIpcGetMemHandle / cudaIpcGetMemHandle on its allocation), its byte offset in that
    allocation, and optionally its size in bytes (checked against the request when given)."""

    handle: bytes
    offset: int = 0
    nbytes: Optional[int] = None


class _Driver:
    """The few CUDA driver calls needed, bound on first use."""

    def __init__(self) -> None:
        try:
            self.cu = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            raise NotSupported(_errno.ENOTSUP, f"no CUDA driver (libcuda.so.1): {e}",
                               "GPU tensor") from None
        cu = self.cu
        cu.cuInit.argtypes = [ctypes.c_uint]
        cu.cuMemGetAddressRange_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64),
                                               ctypes.POINTER(ctypes.c_size_t),
                                               ctypes.c_uint64]
        cu.cuIpcGetMemHandle.argtypes = [ctypes.c_char_p, ctypes.c_uint64]
        self.check(cu.cuInit(0), "cuInit")

    def check(self, rc: int, what: str) -> None:
        if rc:
            name = ctypes.c_char_p()
            self.cu.cuGetErrorName(rc, ctypes.byref(name))
            raise InvalidArgument(_errno.EINVAL, f"{what}: CUDA error {rc} "
                                  f"({(name.value or b'?').decode()})", "GPU tensor")

    def handle_of(self, ptr: int) -> Tuple[bytes, int, int]:
        """(IPC handle, offset of ptr in its allocation, bytes from ptr to its end)."""
        base, size = ctypes.c_uint64(), ctypes.c_size_t()
        self.check(self.cu.cuMemGetAddressRange_v2(ctypes.byref(base), ctypes.byref(size),
                                                   ptr), "cuMemGetAddressRange")
        buf = ctypes.create_string_buffer(IPC_HANDLE_BYTES)
        self.check(self.cu.cuIpcGetMemHandle(buf, base.value), "cuIpcGetMemHandle")
        off = ptr - base.value
        return buf.raw, off, size.value - off


_driver: Optional[_Driver] = None


def _cuda() -> _Driver:
    global _driver
    if _driver is None:
        _driver = _Driver()
    return _driver


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32),
                ("device_id", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("dtype", ctypes.c_uint8 * 4), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


def _dlpack_pointer(obj: Any) -> Tuple[int, Tuple[int, ...], Optional[Tuple[int, ...]], int]:
    """(data pointer, shape, strides in elements or None, item bits) of a CUDA DLPack
    tensor. The capsule is read, never consumed: the object keeps its memory."""
    cap = obj.__dlpack__()
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    name = api.PyCapsule_GetName(cap)
    p = api.PyCapsule_GetPointer(cap, name)
    # DLManagedTensor starts with its DLTensor; the versioned one (DLPack 1.x) with a
    # version and a manager context and deleter before it... and flags after the deleter.
    if name == b"dltensor_versioned":
        p += 8 + 8 + 8 + 8
    t = _DLTensor.from_address(p)
    shape = tuple(t.shape[k] for k in range(t.ndim))
    strides = tuple(t.strides[k] for k in range(t.ndim)) if t.strides else None
    return t.data + t.byte_offset, shape, strides, t.dtype[1]


def _pointer_of(tensor: Any, nbytes: int) -> Tuple[bytes, int]:
    """The IPC handle and offset of a GPU tensor of exactly nbytes bytes, C-contiguous."""
    if isinstance(tensor, DeviceBuffer):
        if len(tensor.handle) != IPC_HANDLE_BYTES:
            raise InvalidArgument(_errno.EINVAL, f"a CUDA IPC handle is {IPC_HANDLE_BYTES} "
                                  f"bytes, not {len(tensor.handle)}", "GPU tensor")
        if tensor.nbytes is not None and tensor.nbytes != nbytes:
            raise InvalidArgument(_errno.EINVAL, f"the buffer holds {tensor.nbytes} bytes, "
                                  f"the request's tensor is {nbytes}", "GPU tensor")
        return bytes(tensor.handle), int(tensor.offset)
    cai = getattr(tensor, "__cuda_array_interface__", None)
    if cai is not None:
        ptr = int(cai["data"][0])
        shape = tuple(cai["shape"])
        item = np.dtype(cai["typestr"]).itemsize
        strides = cai.get("strides")
        if strides is not None and tuple(strides) != _c_strides(shape, item):
            raise InvalidArgument(_errno.EINVAL, "the GPU tensor is not C-contiguous",
                                  "GPU tensor")
    elif hasattr(tensor, "__dlpack_device__"):
        dev, _ = tensor.__dlpack_device__()
        if int(dev) not in (_KDL_CUDA, _KDL_CUDA_MANAGED):
            raise InvalidArgument(_errno.EINVAL, f"the tensor is on DLPack device type "
                                  f"{int(dev)}, not CUDA (2)", "GPU tensor")
        ptr, shape, strides, bits = _dlpack_pointer(tensor)
        item = max(1, bits // 8)
        if strides is not None and tuple(x * item for x in strides) != _c_strides(shape, item):
            raise InvalidArgument(_errno.EINVAL, "the GPU tensor is not C-contiguous",
                                  "GPU tensor")
    else:
        raise InvalidArgument(_errno.EINVAL, f"{type(tensor).__name__} is no GPU tensor (no "
                              "__cuda_array_interface__, no CUDA __dlpack__, no DeviceBuffer)",
                              "GPU tensor")
    have = int(np.prod(shape, dtype=np.int64)) * item
    if have != nbytes:
        raise InvalidArgument(_errno.EINVAL, f"the GPU tensor holds {have} bytes (shape "
                              f"{shape}), the request's tensor is {nbytes}", "GPU tensor")
    handle, off, room = _cuda().handle_of(ptr)
    if room < nbytes:
        raise InvalidArgument(_errno.EINVAL, "the GPU tensor runs past its allocation",
                              "GPU tensor")
    return handle, off


def _c_strides(shape: Tuple[int, ...], item: int) -> Tuple[int, ...]:
    out, acc = [], item
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return tuple(reversed(out))


def set_device(req: Any, is_input: bool, i: Any, tensor: Any) -> None:
    from ._client import _HELD
    s = req.session
    specs = s.inputs if is_input else s.outputs
    k = s._index(s._in_index if is_input else s._out_index, specs, i,
                 "input" if is_input else "output")
    if req._state != _HELD:
        raise req._state_error(f"set_{'input' if is_input else 'output'}_device")
    handle, off = _pointer_of(tensor, req.rows * specs[k].row_bytes)
    fn = s._lib.request_set_input_device if is_input else s._lib.request_set_output_device
    if req._slot.cp is None:
        raise req._closed("set_device")
    req._slot.dirty = True  # set or not, only a release in libswarm clears it
    rc = fn(req._slot.cp, k, handle, IPC_HANDLE_BYTES, off)
    if rc:
        raise error_for(rc, f"set_{'input' if is_input else 'output'}_device({specs[k].name!r})",
                        "the slot's tensor area is smaller than the 72-byte descriptor"
                        if rc == -_errno.EINVAL else "")
