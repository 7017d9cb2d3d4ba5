#!/usr/bin/env python3
"""manifest_onnx.py: a swarm node-list model (manifest JSON + safetensors) written as an ONNX
graph of the same weights, for swarm-bench's comparison with ONNX Runtime; and a float64 NumPy
evaluation of the same node list that checks the ONNX graph before anyone times it.

usage: bench/manifest_onnx.py MANIFEST.json WEIGHTS.safetensors OUT.onnx
                              [--check NAME=INPUT.npy ...] [--tol T]

The graph is what an exporter (torch.onnx, Hugging Face Optimum) writes for the same model,
opset 17, so that ONNX Runtime's own graph optimisations (MatMul+Add fusion, LayerNormalization,
GELU and attention fusion where it has them) get the graph they were written for:

  linear        MatMul(x, W^T as an initializer) + Add(bias), then the activation
  attention     per head: Reshape/Transpose, MatMul(Q, K^T) * 1/sqrt(head_dim), + (mask - 1) *
                10000 (BERT's extended mask), Softmax, MatMul(., V), Transpose/Reshape back
  gelu          x * 0.5 * (1 + Erf(x / sqrt(2)))
  layernorm     LayerNormalization (axis -1)
  embedding     Gather; embedding_bag (ids [B, L], one bag a row) Gather + ReduceSum/Mean
  mean_pool     Mul by the mask, ReduceSum, Div by the mask's count (at least 1e-9)
  l2norm        x / max(ReduceL2(x), eps)
  add, mul, sub, div, relu, sigmoid, tanh, softmax, concat: their ONNX namesakes

--check runs the ONNX graph with onnxruntime and the node list in float64 NumPy on the given
inputs and fails (exit status 1) when max |ort - f64| / max |f64| over any output exceeds T
(default 1e-5). Other ops make the script exit 2 naming the op. Needs numpy and onnx (and
onnxruntime for --check).
"""
import argparse
import json
import math
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
          "F16": np.float16, "U8": np.uint8, "I8": np.int8}


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dt = np.dtype(DTYPES[t["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(buf, dtype=dt, count=(b - a) // dt.itemsize,
                                  offset=base + a).reshape(t["shape"])
    return out


class Exporter:
    """Builds the ONNX nodes of one manifest; names are the manifest's own."""

    def __init__(self, manifest, weights):
        from onnx import TensorProto, helper, numpy_helper
        self.h, self.TP, self.nh = helper, TensorProto, numpy_helper
        self.m, self.w = manifest, weights
        self.nodes, self.inits, self.made = [], [], set()
        self.uid = 0

    def tmp(self, base):
        self.uid += 1
        return "%s/_%d" % (base, self.uid)

    def const(self, name, array):
        if name not in self.made:
            self.made.add(name)
            self.inits.append(self.nh.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, name):
        return self.const(name, self.w[name])

    def node(self, op, ins, out=None, **attrs):
        out = out or self.tmp(op)
        self.nodes.append(self.h.make_node(op, ins, [out], **attrs))
        return out

    def act(self, kind, x, out):
        if kind in (None, "", "identity", "none"):
            return self.node("Identity", [x], out)
        if kind == "relu":
            return self.node("Relu", [x], out)
        if kind == "sigmoid":
            return self.node("Sigmoid", [x], out)
        if kind == "tanh":
            return self.node("Tanh", [x], out)
        if kind == "gelu":
            r = self.node("Div", [x, self.const("c.sqrt2", np.array(math.sqrt(2), np.float32))])
            e = self.node("Erf", [r])
            e1 = self.node("Add", [e, self.const("c.one", np.array(1, np.float32))])
            xh = self.node("Mul", [x, self.const("c.half", np.array(0.5, np.float32))])
            return self.node("Mul", [xh, e1], out)
        raise SystemExit("manifest_onnx: activation %r has no ONNX form here" % kind)

    def linear(self, nd):
        x, w = nd["inputs"][0], nd["inputs"][1]
        wt = w + ".T"
        self.const(wt, np.ascontiguousarray(self.w[w].T))
        y = self.node("MatMul", [x, wt])
        if len(nd["inputs"]) > 2:
            y = self.node("Add", [y, self.weight(nd["inputs"][2])])
        return self.act(nd.get("act"), y, nd["output"])

    def attention(self, nd, spec):
        q, k, v = nd["inputs"][:3]
        H = int(nd["heads"])
        E = spec[q][-1]
        Dh = E // H
        shp = self.const("c.heads.%d.%d" % (H, Dh), np.array([0, 0, H, Dh], np.int64))

        def heads(t, perm):
            r = self.node("Reshape", [t, shp])
            return self.node("Transpose", [r], perm=perm)

        qh, kt, vh = heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]), heads(v, [0, 2, 1, 3])
        s = self.node("MatMul", [qh, kt])
        s = self.node("Mul", [s, self.const("c.scale.%d" % Dh,
                                            np.array(1 / math.sqrt(Dh), np.float32))])
        if len(nd["inputs"]) > 3:
            m = nd["inputs"][3]
            ext = m + "/extended"
            if ext not in self.made:  # [B, 1, 1, S]: (mask - 1) * 10000, once a mask
                self.made.add(ext)
                u = self.node("Unsqueeze", [m, self.const("c.axes12", np.array([1, 2], np.int64))])
                d = self.node("Sub", [u, self.const("c.one", np.array(1, np.float32))])
                self.node("Mul", [d, self.const("c.1e4", np.array(10000, np.float32))], ext)
            s = self.node("Add", [s, ext])
        p = self.node("Softmax", [s], axis=-1)
        c = self.node("MatMul", [p, vh])
        c = self.node("Transpose", [c], perm=[0, 2, 1, 3])
        back = self.const("c.merge.%d" % E, np.array([0, 0, E], np.int64))
        return self.node("Reshape", [c, back], nd["output"])

    def mean_pool(self, x, m, out):
        """out = the mean of x's rows where the mask m is 1: sum(x * m) / max(sum(m), 1e-9)."""
        mu = self.node("Unsqueeze", [m, self.const("c.axis_last", np.array([-1], np.int64))])
        s = self.node("ReduceSum", [self.node("Mul", [x, mu]),
                                    self.const("c.axis1", np.array([1], np.int64))],
                      keepdims=0)
        c = self.node("ReduceSum", [mu, self.const("c.axis1", np.array([1], np.int64))],
                      keepdims=0)
        c = self.node("Max", [c, self.const("c.1e-9", np.array(1e-9, np.float32))])
        self.node("Div", [s, c], out)

    def export(self, path):
        h, TP = self.h, self.TP
        onnx_type = {"f32": TP.FLOAT, "i64": TP.INT64, "i32": TP.INT32, "u8": TP.UINT8,
                     "f16": TP.FLOAT16}
        spec = {}  # tensor -> shape with the batch as -1 (for attention's E)
        for t in self.m["inputs"]:
            spec[t["name"]] = t["shape"]
        for name, a in self.w.items():
            spec[name] = list(a.shape)
        for nd in self.m["graph"]["nodes"]:
            op, ins, out = nd["op"], nd["inputs"], nd["output"]
            simple = {"add": "Add", "mul": "Mul", "sub": "Sub", "div": "Div", "relu": "Relu",
                      "sigmoid": "Sigmoid", "tanh": "Tanh", "identity": "Identity"}
            for i in ins if op != "linear" else ():  # linear makes its own W^T
                if i in self.w:
                    self.weight(i)
            if op in simple:
                self.node(simple[op], ins, out)
            elif op == "gelu":
                self.act("gelu", ins[0], out)
            elif op == "linear":
                self.linear(nd)
                spec[out] = spec[ins[0]][:-1] + [self.w[ins[1]].shape[0]]
                continue
            elif op == "layernorm":
                self.node("LayerNormalization", ins, out, axis=-1,
                          epsilon=float(nd.get("eps", 1e-5)))
            elif op == "softmax":
                self.node("Softmax", ins, out, axis=-1)
            elif op == "embedding":
                self.node("Gather", ins, out, axis=0)
                spec[out] = spec[ins[1]] + [self.w[ins[0]].shape[1]]
                continue
            elif op == "embedding_bag":
                if len(ins) != 2:
                    raise SystemExit("manifest_onnx: embedding_bag with offsets has no form here")
                g = self.node("Gather", ins, axis=0)
                if nd.get("mode", "sum") == "mean":  # opset 17: ReduceMean's axes are an attribute
                    self.node("ReduceMean", [g], out, axes=[1], keepdims=0)
                else:
                    self.node("ReduceSum", [g, self.const("c.axis1", np.array([1], np.int64))],
                              out, keepdims=0)
                spec[out] = [-1, self.w[ins[0]].shape[1]]
                continue
            elif op == "concat":
                self.node("Concat", ins, out, axis=int(nd.get("axis", -1)))
                spec[out] = spec[ins[0]][:-1] + [sum(spec[i][-1] for i in ins)]
                continue
            elif op == "attention":
                self.attention(nd, spec)
            elif op == "mean_pool":
                self.mean_pool(ins[0], ins[1], out)
                spec[out] = [-1, spec[ins[0]][-1]]
                continue
            elif op == "l2norm":
                n = self.node("ReduceL2", [ins[0]], axes=[-1], keepdims=1)
                eps = float(nd.get("eps", 1e-12))
                n = self.node("Max", [n, self.const("c.eps.%g" % eps, np.array(eps, np.float32))])
                self.node("Div", [ins[0], n], out)
            else:
                raise SystemExit("manifest_onnx: op %r has no ONNX form here" % op)
            spec[out] = spec.get(ins[0], [-1])
        g_in = [h.make_tensor_value_info(t["name"], onnx_type[t["dtype"]],
                                         ["batch"] + list(t["shape"][1:]))
                for t in self.m["inputs"]]
        g_out = [h.make_tensor_value_info(t["name"], onnx_type[t["dtype"]],
                                          ["batch"] + list(t["shape"][1:]))
                 for t in self.m["outputs"]]
        graph = h.make_graph(self.nodes, "swarm", g_in, g_out, self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)],
                             producer_name="swarm bench/manifest_onnx.py")
        model.ir_version = 8
        import onnx
        onnx.checker.check_model(model)
        onnx.save(model, path)


# ---- the float64 reference ---------------------------------------------------------------------

def _act(kind, x):
    if kind in (None, "", "identity", "none"):
        return x
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "gelu":
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    raise SystemExit("manifest_onnx: activation %r" % kind)


def evaluate(manifest, weights, feeds):
    """The node list in float64 (indices stay integers); returns {output name: array}."""
    env = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in weights.items()}
    env.update({k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in feeds.items()})
    for nd in manifest["graph"]["nodes"]:
        op, x = nd["op"], [env[i] for i in nd["inputs"]]
        if op in ("add", "mul", "sub", "div"):
            y = {"add": np.add, "mul": np.multiply, "sub": np.subtract, "div": np.divide}[op](*x)
        elif op in ("relu", "sigmoid", "tanh", "gelu", "identity"):
            y = _act(op, x[0])
        elif op == "linear":
            y = x[0] @ x[1].T + (x[2] if len(x) > 2 else 0)
            y = _act(nd.get("act"), y)
        elif op == "layernorm":
            mu = x[0].mean(-1, keepdims=True)
            var = ((x[0] - mu) ** 2).mean(-1, keepdims=True)
            y = (x[0] - mu) / np.sqrt(var + float(nd.get("eps", 1e-5))) * x[1] + x[2]
        elif op == "softmax":
            e = np.exp(x[0] - x[0].max(-1, keepdims=True))
            y = e / e.sum(-1, keepdims=True)
        elif op == "embedding":
            y = x[0][x[1]]
        elif op == "embedding_bag":
            g = x[0][x[1]]
            y = g.mean(1) if nd.get("mode", "sum") == "mean" else g.sum(1)
        elif op == "concat":
            y = np.concatenate(x, axis=int(nd.get("axis", -1)))
        elif op == "attention":
            q, k, v = x[:3]
            B, S, E = q.shape
            H = int(nd["heads"])
            Dh = E // H
            qh = q.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)
            kh = k.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)
            vh = v.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)
            s = qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(Dh)
            if len(x) > 3:  # masked keys get exactly zero weight, as swarm computes it
                s = np.where(x[3][:, None, None, :] != 0, s, -np.inf)
            s = s - s.max(-1, keepdims=True)
            e = np.exp(s)
            p = e / e.sum(-1, keepdims=True)
            y = (p @ vh).transpose(0, 2, 1, 3).reshape(B, S, E)
        elif op == "mean_pool":
            m = x[1][..., None]
            y = (x[0] * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        elif op == "l2norm":
            n = np.sqrt((x[0] ** 2).sum(-1, keepdims=True))
            y = x[0] / np.maximum(n, float(nd.get("eps", 1e-12)))
        else:
            raise SystemExit("manifest_onnx: op %r has no reference here" % op)
        env[nd["output"]] = y
    return {t["name"]: env[t["name"]] for t in manifest["outputs"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest")
    p.add_argument("weights")
    p.add_argument("out")
    p.add_argument("--check", nargs="*", default=[], metavar="NAME=INPUT.npy")
    p.add_argument("--tol", type=float, default=1e-5)
    a = p.parse_args()
    with open(a.manifest) as f:
        manifest = json.load(f)
    if "nodes" not in manifest.get("graph", {}):
        raise SystemExit("manifest_onnx: %s has no node list" % a.manifest)
    weights = read_safetensors(a.weights)
    Exporter(manifest, weights).export(a.out)
    if not a.check:
        return 0
    import onnxruntime as ort
    feeds = {}
    for c in a.check:
        k, v = c.split("=", 1)
        feeds[k] = np.load(v)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(a.out, so, providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    want = evaluate(manifest, weights, feeds)
    worst = 0.0
    for name, w in want.items():
        g = got[name].astype(np.float64)
        err = np.abs(g - w).max() / max(np.abs(w).max(), 1e-30)
        worst = max(worst, err)
        print("manifest_onnx: %s: output %s matches the float64 node list to %.1e" %
              (a.out, name, err))
    if worst > a.tol:
        print("manifest_onnx: %s: relative error %.1e is over %.0e" % (a.out, worst, a.tol),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
