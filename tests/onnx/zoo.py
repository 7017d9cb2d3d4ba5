#!/usr/bin/env python3
"""zoo.py: small ONNX models written the way exporters write them, over every op family the
importer maps, with random weights and inputs (seeded: the same files every run).

usage: zoo.py OUTDIR

Writes OUTDIR/NAME.onnx, OUTDIR/NAME.IN.npy per input, and OUTDIR/cases.txt, one line a model:
    NAME|IMPORT ARGS|INPUT=FILE ...
tests/onnx/run.sh imports each with `swarm import onnx`, serves it, runs it with `swarm run`
and compares every output with ONNX Runtime (tests/onnx/compare.py). The models are not
fitted to swarm: they are what PyTorch (Shape/Gather/Concat reshape chains, decomposed
LayerNorm, Erf GELU), TensorFlow/Keras (NHWC inputs with Transposes, SAME padding) and
PaddlePaddle (BatchNormalization after ConvTranspose) emit, at opsets 11, 13, 17 and 21.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

RNG = np.random.default_rng(13)


class G:
    """A graph under construction: nodes, initializers, unique names."""

    def __init__(self, name):
        self.name, self.nodes, self.inits, self.k = name, [], [], 0

    def t(self, hint="t"):
        self.k += 1
        return "%s_%d" % (hint, self.k)

    def const(self, arr, hint="w"):
        n = self.t(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def w(self, *shape, scale=None):
        fan = np.prod(shape[1:]) if len(shape) > 1 else shape[0]
        s = scale if scale is not None else 1.0 / np.sqrt(fan)
        return self.const((RNG.standard_normal(shape) * s).astype(np.float32))

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.t(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(h.make_node(op_type, inputs, outs, name=self.t("n_" + op_type),
                                      **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, inputs, outputs, opset):
        g = h.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
        m.ir_version = 8 if opset <= 18 else 10
        onnx.checker.check_model(m)
        return m


def vi(name, elem, dims):
    return h.make_tensor_value_info(name, elem, dims)


def keras_nhwc():
    """A Keras-style CNN: NHWC input, Transposes around NCHW convs, SAME padding, relu6,
    depthwise with dilation, ceil-mode max pool, mean over H and W, dense, softmax."""
    g = G("keras_nhwc")
    x = g.op("Transpose", ["x"], perm=[0, 3, 1, 2])
    y = g.op("Conv", [x, g.w(8, 3, 3, 3), g.w(8)], kernel_shape=[3, 3], strides=[2, 2],
             auto_pad="SAME_UPPER")
    y = g.op("Relu", [y])
    y = g.op("Conv", [y, g.w(8, 1, 3, 3), g.w(8)], kernel_shape=[3, 3], group=8,
             dilations=[2, 2], pads=[2, 2, 2, 2])
    y = g.op("Clip", [y, g.const(np.float32(0)), g.const(np.float32(6))])
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1],
             ceil_mode=1)
    y = g.op("Transpose", [y], perm=[0, 2, 3, 1])
    y = g.op("ReduceMean", [y], axes=[1, 2], keepdims=0)
    y = g.op("MatMul", [y, g.w(8, 10)])
    y = g.op("Add", [y, g.w(10)])
    g.nodes.append(h.make_node("Softmax", [y], ["probs"], axis=-1))
    m = g.model([vi("x", T.FLOAT, ["N", 33, 31, 3])], [vi("probs", T.FLOAT, ["N", 10])], 13)
    return m, {"x": RNG.uniform(0, 1, (2, 33, 31, 3)).astype(np.float32)}, []


def encoder():
    """A PyTorch-style transformer encoder layer: decomposed LayerNorm, attention with the
    head split through Shape/Gather/Concat reshape chains, Erf GELU, residuals; a second
    output reduced over the sequence."""
    g = G("encoder")
    S, E, H = 12, 32, 4
    D = E // H

    def layernorm(x):
        mu = g.op("ReduceMean", [x], axes=[-1])
        d = g.op("Sub", [x, mu])
        v = g.op("ReduceMean", [g.op("Pow", [d, g.const(np.float32(2))])], axes=[-1])
        s = g.op("Sqrt", [g.op("Add", [v, g.const(np.float32(1e-5))])])
        return g.op("Add", [g.op("Mul", [g.op("Div", [d, s]), g.w(E, scale=1)]), g.w(E)])

    def heads(x):
        n = g.op("Unsqueeze", [g.op("Gather", [g.op("Shape", [x]), g.const(np.int64(0))],
                                    axis=0), g.const(np.array([0], np.int64))])
        shape = g.op("Concat", [n, g.const(np.array([S, H, D], np.int64))], axis=0)
        return g.op("Transpose", [g.op("Reshape", [x, shape])], perm=[0, 2, 1, 3])

    x = layernorm("x")
    q, k, v = (heads(g.op("Add", [g.op("MatMul", [x, g.w(E, E)]), g.w(E)])) for _ in range(3))
    s = g.op("Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                     g.const(np.float32(np.sqrt(D)))])
    a = g.op("MatMul", [g.op("Softmax", [s], axis=-1), v])
    a = g.op("Reshape", [g.op("Transpose", [a], perm=[0, 2, 1, 3]),
                         g.const(np.array([-1, S, E], np.int64))])
    x1 = g.op("Add", ["x", g.op("Add", [g.op("MatMul", [a, g.w(E, E)]), g.w(E)])])
    f = g.op("Add", [g.op("MatMul", [layernorm(x1), g.w(E, 2 * E)]), g.w(2 * E)])
    gelu = g.op("Mul", [g.op("Mul", [f, g.const(np.float32(0.5))]),
                        g.op("Add", [g.op("Erf", [g.op("Div", [f, g.const(np.float32(
                            np.sqrt(2)))])]), g.const(np.float32(1))])])
    g.nodes.append(h.make_node("Add", [x1, g.op("MatMul", [gelu, g.w(2 * E, E)])], ["hidden"]))
    g.nodes.append(h.make_node("ReduceMax", ["hidden"], ["pooled"], axes=[1], keepdims=0))
    m = g.model([vi("x", T.FLOAT, ["batch", S, E])],
                [vi("hidden", T.FLOAT, ["batch", S, E]), vi("pooled", T.FLOAT, ["batch", E])],
                13)
    return m, {"x": RNG.standard_normal((2, S, E)).astype(np.float32)}, []


def upsample():
    """A decoder head at opset 11 (Paddle/DBNet style): grouped ConvTranspose, an unfolded
    BatchNormalization, LeakyRelu, Resize in three modes, reflect and edge Pad, average pool
    counting the pad, a skip concat, PRelu, a 1x1 conv and a sigmoid."""
    g = G("upsample")
    C, Hh, W = 4, 6, 10
    y = g.op("ConvTranspose", ["x", g.w(C, 3, 4, 4), g.w(6)], kernel_shape=[4, 4],
             strides=[2, 2], pads=[1, 1, 1, 1], group=2)
    y = g.op("BatchNormalization", [y, g.w(6, scale=1), g.w(6), g.w(6),
                                    g.const(RNG.uniform(0.5, 2, 6).astype(np.float32))],
             epsilon=1e-3)
    y = g.op("LeakyRelu", [y], alpha=0.1)
    empty = g.const(np.zeros(0, np.float32))
    near = g.op("Resize", [y, empty, g.const(np.array([1, 1, 2, 2], np.float32))],
                mode="nearest", coordinate_transformation_mode="asymmetric",
                nearest_mode="floor")
    nc = g.op("Slice", [g.op("Shape", ["x"]), g.const(np.array([0], np.int64)),
                        g.const(np.array([2], np.int64))])
    sizes = g.op("Concat", [nc, g.const(np.array([4 * Hh, 4 * W], np.int64))], axis=0)
    lin = g.op("Resize", ["x", empty, empty, sizes], mode="linear",
               coordinate_transformation_mode="align_corners")
    half = g.op("Resize", ["x", empty, g.const(np.array([1, 1, 4, 4], np.float32))],
                mode="linear", coordinate_transformation_mode="half_pixel")
    r = g.op("Pad", [near, g.const(np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64))],
             mode="reflect")
    r = g.op("AveragePool", [r], kernel_shape=[3, 5], strides=[1, 1], pads=[0, 0, 0, 0])
    e = g.op("Pad", [half, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="edge")
    e = g.op("AveragePool", [e], kernel_shape=[3, 3], count_include_pad=1, pads=[0, 0, 0, 0])
    cat = g.op("Concat", [r, lin, e], axis=1)
    cat = g.op("PRelu", [cat, g.const(RNG.uniform(0, 0.3, (6 + 2 * C, 1, 1)).astype(
        np.float32))])
    g.nodes.append(h.make_node("Sigmoid", [g.op("Conv", [cat, g.w(1, 6 + 2 * C, 1, 1),
                                                        g.w(1)])], ["prob"]))
    m = g.model([vi("x", T.FLOAT, ["N", C, "H", "W"])], [vi("prob", T.FLOAT, ["N", 1, "h", "w"])],
                11)
    return m, {"x": RNG.standard_normal((2, C, Hh, W)).astype(np.float32)}, \
        ["--input", "x=1x%dx%dx%d" % (C, Hh, W)]


def misc():
    """Elementwise, layout and index ops at opset 17: gather with runtime indices, strided and
    negative slices, split, the math ops, hard activations, casts through float16, reduce
    sum and max, constant padding, broadcasting both ways."""
    g = G("misc")
    x = "x"
    emb = g.op("Gather", [g.w(20, 10, scale=1), "ids"], axis=0)       # [N, 4, 10]
    emb = g.op("ReduceSum", [emb, g.const(np.array([1], np.int64))], keepdims=1)
    emb = g.op("Squeeze", [emb, g.const(np.array([1], np.int64))])  # [N, 10]
    a, b = g.op("Split", [x, g.const(np.array([2, 4], np.int64))], n_out=2, axis=1)
    s = g.op("Slice", [x, g.const(np.array([-1, 1], np.int64)),
                       g.const(np.array([-100, 20], np.int64)),
                       g.const(np.array([1, 2], np.int64)),
                       g.const(np.array([-1, 2], np.int64))])       # [N, 6, 10] reversed
    u = g.op("Exp", [g.op("Min", [a, g.const(np.float32(2))])])
    u = g.op("Log", [g.op("Add", [u, g.const(np.float32(1))])])
    v = g.op("Sqrt", [g.op("Max", [b, g.const(np.float32(0.25))])])
    v = g.op("Pow", [v, g.const(np.float32(3))])
    w = g.op("HardSwish", [g.op("Sub", [g.const(np.float32(1)), s])])
    w = g.op("HardSigmoid", [w], alpha=0.3, beta=0.4)
    w = g.op("Div", [w, g.op("Add", [g.w(1, 10, scale=0.1), g.const(np.float32(2))])])
    w = g.op("ReduceMax", [w], axes=[1], keepdims=1)                  # [N, 1, 10]
    cat = g.op("Concat", [u, v], axis=1)                              # [N, 6, 20]
    cat = g.op("Add", [cat, g.op("Concat", [w, w], axis=2)])
    h16 = g.op("Cast", [cat], to=T.FLOAT16)
    cat = g.op("Cast", [h16], to=T.FLOAT)
    p = g.op("Pad", [cat, g.const(np.array([0, 1, 2, 0, 0, 3], np.int64)),
                     g.const(np.float32(0.5))], mode="constant")      # [N, 7, 25]
    f = g.op("Flatten", [p], axis=1)
    g.nodes.append(h.make_node("Concat", [f, emb], ["out"], axis=1))
    m = g.model([vi("x", T.FLOAT, ["N", 6, 20]), vi("ids", T.INT64, ["N", 4])],
                [vi("out", T.FLOAT, ["N", 7 * 25 + 10])], 17)
    return m, {"x": RNG.standard_normal((2, 6, 20)).astype(np.float32),
               "ids": RNG.integers(0, 20, (2, 4)).astype(np.int64)}, []


def opset21():
    """Opset 21's spellings: ReduceMean's axes as an input, Split into num_outputs, a
    GlobalAveragePool head, a Gemm with transB (torch.nn.Linear)."""
    g = G("opset21")
    y = g.op("Conv", ["x", g.w(6, 3, 3, 3), g.w(6)], kernel_shape=[3, 3], pads=[1, 0, 1, 2])
    y = g.op("BatchNormalization", [y, g.w(6, scale=1), g.w(6), g.w(6),
                                    g.const(RNG.uniform(0.5, 2, 6).astype(np.float32))])
    y = g.op("Relu", [y])
    a, b = g.op("Split", [y], n_out=2, axis=1, num_outputs=2)
    m = g.op("ReduceMean", [a, g.const(np.array([2, 3], np.int64))], keepdims=0)
    p = g.op("Flatten", [g.op("GlobalAveragePool", [b])])
    c = g.op("Concat", [m, p], axis=1)
    g.nodes.append(h.make_node("Gemm", [c, g.w(5, 6), g.w(5)], ["logits"], transB=1))
    model = g.model([vi("x", T.FLOAT, ["N", 3, 9, 7])], [vi("logits", T.FLOAT, ["N", 5])], 21)
    return model, {"x": RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)}, []


def fusions():
    """The spellings the importer rewrites, each beside one it must leave alone: a Conv then
    Add/Mul/Sub/Div of per-channel constants (folded), an Add of a [W]-shaped constant (not
    per channel: kept), hard-swish as Add/Clip/Mul/Div and as HardSigmoid*x, GELU as
    (x * 0.5) * (1 + erf(x * (1/sqrt 2))), a Conv whose output is also read elsewhere, and
    ConvTransposes with per-channel Add, Mul and Sub after them (folded but for a grouped
    one's Mul)."""
    g = G("fusions")
    C, W = 6, 9
    y = g.op("Conv", ["x", g.w(C, 3, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = g.op("Add", [y, g.w(1, C, 1, 1)])
    y = g.op("Mul", [g.w(C, 1, 1, scale=1), y])
    y = g.op("Sub", [y, g.const(np.float32(0.25))])
    y = g.op("Div", [y, g.const(RNG.uniform(1, 2, (C, 1, 1)).astype(np.float32))])
    y = g.op("Add", [y, g.w(W)])                                       # along W: kept
    hs = g.op("Div", [g.op("Mul", [y, g.op("Clip", [g.op("Add", [y, g.const(np.float32(3))]),
                                                     g.const(np.float32(0)),
                                                     g.const(np.float32(6))])]),
                      g.const(np.float32(6))])
    c2 = g.op("Conv", [hs, g.w(C, C, 1, 1), g.w(C)], kernel_shape=[1, 1])
    hs2 = g.op("Mul", [c2, g.op("HardSigmoid", [c2], alpha=1 / 6, beta=0.5)])
    c3 = g.op("Conv", [hs2, g.w(C, 1, 3, 3)], kernel_shape=[3, 3], group=C,
              pads=[1, 1, 1, 1])
    u = g.op("Mul", [c3, g.const(np.float32(1 / np.sqrt(2)))])
    gelu = g.op("Mul", [g.op("Mul", [c3, g.const(np.float32(0.5))]),
                        g.op("Add", [g.op("Erf", [u]), g.const(np.float32(1))])])
    shared = g.op("Conv", [gelu, g.w(C, C, 1, 1)], kernel_shape=[1, 1])
    twice = g.op("Add", [shared, g.const(np.float32(1))])              # shared: kept
    g.nodes.append(h.make_node("Add", [twice, shared], ["out"]))
    # Paddle's detector head: a ConvTranspose with no bias, its bias an Add of [C, 1, 1], then
    # Relu (folded, then fused); one with a bias, then Mul and Sub (folded); a grouped one
    # then Mul (its weights are [C_in, C / group, ...]: kept)
    t = g.op("ConvTranspose", ["out", g.w(C, C, 2, 2)], kernel_shape=[2, 2], strides=[2, 2])
    t = g.op("Relu", [g.op("Add", [t, g.w(C, 1, 1)])])
    t = g.op("ConvTranspose", [t, g.w(C, 2, 2, 2), g.w(2)], kernel_shape=[2, 2], strides=[2, 2])
    t = g.op("Mul", [t, g.w(1, 2, 1, 1, scale=1)])
    g.nodes.append(h.make_node("Sub", [t, g.const(np.float32(0.5))], ["up"]))
    gt = g.op("ConvTranspose", ["out", g.w(C, 1, 2, 2)], kernel_shape=[2, 2], strides=[2, 2],
              group=C)
    g.nodes.append(h.make_node("Mul", [gt, g.w(C, 1, 1, scale=1)], ["up_grouped"]))
    m = g.model([vi("x", T.FLOAT, ["N", 3, 7, W])],
                [vi("out", T.FLOAT, ["N", C, 7, W]), vi("up", T.FLOAT, ["N", 2, 28, 4 * W]),
                 vi("up_grouped", T.FLOAT, ["N", C, 14, 2 * W])], 13)
    return m, {"x": RNG.standard_normal((2, 3, 7, W)).astype(np.float32)}, []


MODELS = [keras_nhwc, encoder, upsample, misc, opset21, fusions]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = []
    for make in MODELS:
        m, inputs, args = make()
        name = make.__name__
        onnx.save(m, os.path.join(out, name + ".onnx"))
        files = []
        for k, v in inputs.items():
            f = os.path.join(out, "%s.%s.npy" % (name, k))
            np.save(f, v)
            files.append("%s=%s" % (k, f))
        lines.append("%s|%s|%s" % (name, " ".join(args), " ".join(files)))
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
