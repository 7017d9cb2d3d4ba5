#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_swarmd_msgs (tests/fuzz/corpus/swarmd_msgs): short
conversations of a client and a worker with swarmd, in the target's record format
([kind][len, 2 bytes LE][message]; kind bit 0 worker, bit 1 which one, bit 7 fix the header).
The sizes are those of ipc/proto.h at ABI 2; a change there means running this again."""
import os
import struct
import sys

MAGIC, ABI = 0x50525753, 2
HELLO, OPEN, CLOSE, STATUS, DEVICE, MODEL = 1, 3, 5, 7, 9, 11
READY, ATTACH_REPLY, DETACHED, SWITCHED, SHARE, UNSHARE, LOADED, RESIDENCY = (
    32, 34, 36, 38, 39, 40, 49, 50)
SIZE = {HELLO: 32, OPEN: 88, CLOSE: 24, STATUS: 16, DEVICE: 56, MODEL: 104, READY: 480,
        ATTACH_REPLY: 288, DETACHED: 288, SWITCHED: 288, SHARE: 112, UNSHARE: 112, LOADED: 360,
        RESIDENCY: 160}


def msg(mtype, body=b"", seq=1):
    m = struct.pack("<IHHII", MAGIC, ABI, mtype, SIZE[mtype], seq) + body
    return m + b"\0" * (SIZE[mtype] - len(m))


def rec(m, worker=False, which=0, fix=True):
    kind = (1 if worker else 0) | (which << 1) | (0x80 if fix else 0)
    return struct.pack("<BH", kind, len(m)) + m


def hello():
    return rec(msg(HELLO, struct.pack("<iiiI", os.getpid(), 0, 0, 0)))


def open_(model=b"identity", version=0, slots=0, depth=0, rows=0):
    name = model + b"\0" * (48 - len(model))
    return rec(msg(OPEN, name + struct.pack("<Ii4I", version, -1, slots, depth, rows, 0)))


def for_session(mtype, k, rest=b"", which=0):
    return rec(msg(mtype, struct.pack("<Q", k) + rest), worker=True, which=which)


SEEDS = {
    "open_attach_close": hello() + open_() + for_session(ATTACH_REPLY, 0, struct.pack("<iI", 0, 0))
    + rec(msg(CLOSE, struct.pack("<Q", 1))) + for_session(DETACHED, 0),
    "open_refused": hello() + open_(b"affine") + for_session(ATTACH_REPLY, 0, struct.pack("<iI", -12, 0)),
    "open_then_client_dies": hello() + open_() + open_() + for_session(ATTACH_REPLY, 1, struct.pack("<iI", 0, 0)),
    "violation": hello() + open_() + for_session(ATTACH_REPLY, 0, struct.pack("<iI", 0, 0))
    + for_session(DETACHED, 0, struct.pack("<iI", -74, 0)),
    "switched": hello() + open_() + for_session(ATTACH_REPLY, 0, struct.pack("<iI", 0, 0))
    + for_session(SWITCHED, 0, struct.pack("<Ii", 7, 0)),
    "options_out_of_range": hello() + open_(slots=0x80000001) + open_(slots=8, depth=3)
    + open_(b"nosuch") + open_(rows=1 << 30),
    "status_device": hello() + rec(msg(STATUS)) + rec(msg(DEVICE, b"cpu:0\0".ljust(32, b"\0") + struct.pack("<I", 1))),
    "ready_loaded": rec(msg(READY), worker=True) + rec(msg(LOADED, seq=0x50000000), worker=True, which=1)
    + rec(msg(UNSHARE), worker=True),
    "model_ops": hello() + rec(msg(MODEL, struct.pack("<II", 1, 0) + b"affine".ljust(48, b"\0")
                                   + b"cpu:0".ljust(32, b"\0")))
    + rec(msg(MODEL, struct.pack("<II", 2, 0) + b"affine".ljust(48, b"\0") + b"\0" * 32))
    + rec(msg(LOADED, seq=0x60000000), worker=True),
    "residency": rec(msg(READY), worker=True)
    + rec(msg(RESIDENCY, b"affine".ljust(48, b"\0") + struct.pack("<II", 1, 1) + b"\0" * 72
              + struct.pack("<QQ", 1 << 20, 4096)), worker=True)
    + hello() + open_(b"affine") + rec(msg(RESIDENCY, b"affine".ljust(48, b"\0")
                                           + struct.pack("<II", 1, 0)), worker=True),
    "no_hello": open_() + rec(msg(CLOSE, struct.pack("<Q", 1))),
    "two_clients": hello() + rec(msg(HELLO), which=1) + open_() + open_(b"affine")
    + for_session(ATTACH_REPLY, 0, struct.pack("<iI", 0, 0)),
    "bad_abi": rec(struct.pack("<IHHII", MAGIC, 1, HELLO, 32, 1) + b"\0" * 16, fix=False),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "swarmd_msgs")
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
