"""safetensors_writer.py: writes a safetensors file with the standard library only, for the
model tools in this folder (make-affine-model.py, make-ranker-model.py, import-minilm.py).

Layout: an 8-byte little-endian header length, a JSON header padded with spaces so that the
data starts 8-byte aligned, then the tensors' bytes in the order given, without gaps. Callers
give tensors whose sizes keep each one aligned to its dtype (all f32 here, or widest first).
"""
import json
import os
import struct


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes), written in that order, through a
    temporary file renamed into place."""
    header, offset = {}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - (8 + len(raw)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, _, _, data in tensors:
            f.write(data)
    os.replace(tmp, path)
