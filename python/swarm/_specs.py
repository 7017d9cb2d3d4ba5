"""_specs.py: what a session says about its model: tensor specs, where it is served, dtypes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

_DTYPES: Dict[int, Tuple[str, Any]] = {
    1: ("f32", np.dtype(np.float32)),
    2: ("f16", np.dtype(np.float16)),
    3: ("bf16", None),  # ml_dtypes.bfloat16 when installed, else uint16 (the raw bits)
    4: ("i32", np.dtype(np.int32)),
    5: ("i64", np.dtype(np.int64)),
    6: ("u8", np.dtype(np.uint8)),
}


def _np_dtype(code: int) -> Tuple[str, np.dtype]:
    name, dt = _DTYPES.get(code, (f"dtype{code}", np.dtype(np.uint8)))
    if name == "bf16":
        try:
            import ml_dtypes  # type: ignore
            dt = np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            dt = np.dtype(np.uint16)
    return name, dt


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model. shape[0] is the batch dimension (-1): a request of n
    rows has shape (n,) + shape[1:]. dtype is numpy's; swarm_dtype swarm's name ("f32",
    "bf16", ...: bf16 is ml_dtypes.bfloat16 where that package is installed, else uint16)."""

    index: int
    name: str
    dtype: np.dtype
    shape: Tuple[int, ...]
    row_bytes: int
    swarm_dtype: str


@dataclass(frozen=True)
class SessionInfo:
    """Where a session is served now (swarm_session_info_get); it changes when the session
    moves to another device."""

    session_id: int
    device_index: int
    device: str
    numa_node: int
    cpus: str
    mem_policy: str
    worker_pid: int
    model: str
    version: int
    slots: int
    queue_depth: int
    max_rows: int
