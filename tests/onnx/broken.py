#!/usr/bin/env python3
"""broken.py: a corpus of ONNX files and command lines that `swarm import onnx` must refuse,
each with what its error has to say. Nothing of any of them may be published.

usage: broken.py OUTDIR

Writes the files into OUTDIR and OUTDIR/cases.txt, one line a case:
    FILE|EXTRA ARGS|EXIT STATUS|PHRASE;PHRASE...
tests/onnx/run.sh runs `swarm import onnx FILE --name broken EXTRA ARGS` on each and checks
the exit status, that stderr holds every phrase, and that the registry is still empty.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper


def model(nodes, inputs, outputs, inits=(), opset=13, domains=()):
    g = h.make_graph(nodes, "broken", inputs, outputs, list(inits))
    ops = [h.make_opsetid("", opset)] + [h.make_opsetid(d, 1) for d in domains]
    m = h.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m


def x_in(dims=("N", 4)):
    return h.make_tensor_value_info("x", T.FLOAT, list(dims))


def y_out(dims=("N", 4)):
    return h.make_tensor_value_info("y", T.FLOAT, list(dims))


def relu():
    return model([h.make_node("Relu", ["x"], ["y"], name="r")], [x_in()], [y_out()])


def external(location):
    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = T.EXTERNAL
    w.external_data.add(key="location", value=location)
    w.external_data.add(key="length", value="16")
    return model([h.make_node("Add", ["x", "w"], ["y"], name="add")], [x_in()], [y_out()],
                 [w])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = []

    def save(name, m_or_bytes, args, code, phrases):
        path = os.path.join(out, name)
        if isinstance(m_or_bytes, bytes):
            with open(path, "wb") as f:
                f.write(m_or_bytes)
        else:
            onnx.save(m_or_bytes, path)
        cases.append("%s|%s|%d|%s" % (path, args, code, ";".join(phrases)))

    big = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(1024, 4), "w")
    full = model([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                 [h.make_tensor_value_info("x", T.FLOAT, ["N", 1024])], [y_out()], [big])
    blob = full.SerializeToString()
    save("empty.onnx", b"", "", 1, ["empty"])
    save("truncated.onnx", blob[: len(blob) * 3 // 5], "", 1, ["not a readable ONNX model"])
    save("garbage.onnx", np.random.default_rng(7).bytes(3000), "", 1,
         ["not a readable ONNX model"])
    save("text.onnx", b"this is not a model\n", "", 1, ["not a readable ONNX model"])
    # external data: outside the folder (relative and absolute), and missing
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), "outside.bin"), "wb") as f:
        f.write(np.ones(4, np.float32).tobytes())
    save("external_outside.onnx", external("../outside.bin"), "", 1,
         ["\"w\"", "outside the model's folder"])
    save("external_absolute.onnx", external("/etc/hostname"), "", 1,
         ["outside the model's folder"])
    save("external_missing.onnx", external("weights.bin"), "", 1, ["\"w\"", "is missing"])
    save("cycle.onnx", model([h.make_node("Add", ["x", "b"], ["a"], name="first"),
                              h.make_node("Relu", ["a"], ["b"], name="second"),
                              h.make_node("Identity", ["a"], ["y"], name="out")],
                             [x_in()], [y_out()]), "", 1, ["cycle"])
    save("dangling.onnx", model([h.make_node("Add", ["x", "nowhere"], ["y"], name="add")],
                                [x_in()], [y_out()]), "", 1, ["\"nowhere\""])
    m = relu()
    m.opset_import[0].version = 9
    save("opset9.onnx", m, "", 1, ["opset 9", "11 to 21"])
    save("foreign.onnx", model([h.make_node("FusedGemm", ["x", "x"], ["y"], name="fused",
                                            domain="com.microsoft")], [x_in()], [y_out()],
                               domains=["com.microsoft"]), "", 1, ["com.microsoft"])
    unsup = model([h.make_node("TopK", ["x", "k"], ["v", "i"], name="topk", axis=1),
                   h.make_node("Relu", ["v"], ["r"], name="fine"),
                   h.make_node("Einsum", ["r", "r"], ["y"], name="einsum",
                               equation="ij,ij->ij")],
                  [x_in()], [h.make_tensor_value_info("y", T.FLOAT, ["N", 2])],
                  [numpy_helper.from_array(np.array([2], np.int64), "k")])
    save("unsupported.onnx", unsup, "", 1, ["\"topk\" (TopK)", "nothing published"])
    cases.append("%s|--check|1|\"topk\" (TopK);\"einsum\" (Einsum);2 of" %
                 os.path.join(out, "unsupported.onnx"))
    dyn = model([h.make_node("Relu", ["x"], ["y"], name="r")], [x_in(("N", 3, "H", "W"))],
                [y_out(("N", 3, "H", "W"))])
    save("dynamic.onnx", dyn, "", 1, ["dim 2 \"H\"", "dim 3 \"W\"", "--input x=1x3x?x?"])
    cases.append("%s|--input x=1x3xfoox4|2|1x3xfoox4" % os.path.join(out, "dynamic.onnx"))
    cases.append("%s|--input nosuch=1x3x4x4|2|nosuch" % os.path.join(out, "dynamic.onnx"))
    cases.append("%s|--input x=1x3x4|2|--input x: 3 dims given" %
                 os.path.join(out, "dynamic.onnx"))
    moved = model([h.make_node("Transpose", ["x"], ["y"], name="swap", perm=[1, 0])],
                  [x_in(("N", 4))], [y_out((4, "N"))])
    save("batch_moved.onnx", moved, "", 1, ["\"swap\" (Transpose)", "batch"])
    strings = model([h.make_node("Identity", ["x"], ["y"], name="id")],
                    [h.make_tensor_value_info("x", T.STRING, ["N", 4])],
                    [h.make_tensor_value_info("y", T.STRING, ["N", 4])])
    save("strings.onnx", strings, "", 1, ["\"x\"", "STRING"])
    cases.append("%s||1|no such file" % os.path.join(out, "does-not-exist.onnx"))
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")


if __name__ == "__main__":
    main()
