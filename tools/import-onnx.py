#!/usr/bin/env python3
"""import-onnx.py: turns an ONNX model into a swarm model (a manifest whose graph is a node list
over swarm's op table, and a safetensors weights file) and publishes it. `swarm import onnx`
runs it; docs/onnx.md is its manual.

usage: import-onnx.py MODEL.onnx --name NAME [--registry DIR] [--activate]
                      [--input NAME=DIMS ...] [--check] [--out DIR]
                      [--max-rows N] [--max-batch N] [--slots N] [--swarm PATH]

What it does, in order:
  1. Loads the model with the `onnx` package and refuses what it cannot trust: a file that is
     not a model (truncated, malformed), an opset outside 11..21, a graph that is not acyclic,
     external data outside the model's folder.
  2. Fixes every input's dims but the batch (dim 0): from the model, or from --input NAME=DIMS
     (DIMS like 1x3x48x320, the batch first and included; the batch stays symbolic in the
     served model, the value given is only used to infer the other shapes).
  3. Specialises the graph twice, at two batch sizes: ONNX's shape inference, then constant
     folding (the Shape/Gather/Unsqueeze/Concat chains exporters emit for static shapes, and
     every node whose inputs are all constant, evaluated by onnx's reference implementation),
     until nothing changes. A dim that differs between the two is the batch: it must be dim 0
     of its tensor, never moved or merged.
  4. Maps each remaining node onto swarm's ops: Identity and Dropout removed, BatchNormalization
     folded into the Conv before it, an activation fused into the Conv before it, Gemm and
     MatMul with a constant weight made linear (a bias Add fused), constants made weights
     (identical ones stored once). Anything else is refused naming the node, its op type and
     what is missing; --check lists every such node of a model without publishing.
  5. Writes NAME.json (the manifest) and NAME.safetensors to --out (default a temporary
     folder), then runs `swarm registry publish` unless --check.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROG = "swarm import onnx"
SWARM_NAME_MAX = 47  # a model input's or output's name (include/swarm/swarm.h, NUL excluded)
TENSOR_NAME_MAX = 127  # a tensor's name in the graph and the weights file
MAX_DIMS = 6
MAX_NODES = 2048
MAX_IO = 8
MANIFEST_MAX_WEIGHTS = 2048
OPSETS = range(11, 22)
BATCHES = (3, 5)  # the two batch sizes the graph is specialised at
INT_BIG = 2**62


def fail(msg, code=1):
    print("%s: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(code)


try:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper, shape_inference
    from onnx.reference import ReferenceEvaluator
except ImportError as e:  # pragma: no cover - the message is the point
    fail("needs the onnx and numpy Python packages (%s): pip install onnx numpy, or run "
         "tools/install-deps.sh" % e)


class Unsupported(Exception):
    """A node swarm cannot run: why names what is missing."""

    def __init__(self, node, why):
        super().__init__(why)
        self.node = node
        self.why = why


def node_label(node):
    return "node \"%s\" (%s)" % (node.name or (node.output[0] if node.output else "?"),
                                 node.op_type)


# ---- loading and the checks that come before trusting the file --------------------------------


def load_model(path):
    if not os.path.isfile(path):
        fail("%s: no such file" % path)
    if os.path.getsize(path) == 0:
        fail("%s: the file is empty (0 bytes): not an ONNX model" % path)
    try:
        m = onnx.load_model(path, load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends: a truncated or foreign file
        fail("%s: not a readable ONNX model (%s: %s)" % (path, type(e).__name__, e))
    if not m.graph.node:
        fail("%s: the model's graph has no nodes (truncated, or not an ONNX model)" % path)
    base = os.path.dirname(os.path.abspath(path))
    external = [t for t in m.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    for t in external:
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        full = os.path.realpath(os.path.join(base, loc))
        if not loc or os.path.isabs(loc) or not full.startswith(os.path.realpath(base) + os.sep):
            fail("%s: initializer \"%s\" keeps its data at \"%s\", outside the model's folder: "
                 "refused" % (path, t.name, loc))
        if not os.path.isfile(full):
            fail("%s: initializer \"%s\": its external data file %s is missing" %
                 (path, t.name, full))
    if external:
        try:
            from onnx.external_data_helper import load_external_data_for_model
            load_external_data_for_model(m, base)
        except Exception as e:
            fail("%s: cannot load its external data: %s" % (path, e))
    opset = None
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            opset = o.version
        elif o.domain not in ("ai.onnx.ml",):
            fail("%s: operator set domain \"%s\" is not ONNX's: swarm runs ONNX's operators "
                 "only" % (path, o.domain))
    if opset is None:
        fail("%s: the model imports no ONNX operator set" % path)
    if opset not in OPSETS:
        fail("%s: opset %d; swarm imports opsets %d to %d (convert it with "
             "onnx.version_converter)" % (path, opset, OPSETS[0], OPSETS[-1]))
    for n in m.graph.node:
        if n.domain not in ("", "ai.onnx"):
            fail("%s: %s is from domain \"%s\", not ONNX's" % (path, node_label(n), n.domain))
    toposort(m.graph.node, {t.name for t in m.graph.initializer} |
             {i.name for i in m.graph.input}, path)
    return m, opset


def toposort(nodes, known, path):
    """Checks that the nodes can run in some order: every input made before it is read, no
    cycle (the ONNX rule: nodes are listed topologically; a file that breaks it is refused)."""
    made = set(known) | {""}
    pending = list(nodes)
    order = []
    while pending:
        rest = [n for n in pending if not all(i in made for i in n.input)]
        ready = [n for n in pending if all(i in made for i in n.input)]
        if not ready:
            missing = [i for i in rest[0].input if i not in made]
            fail("%s: the graph has a cycle, or reads a tensor nothing makes: %s reads \"%s\"" %
                 (path, node_label(rest[0]), missing[0]))
        for n in ready:
            made.update(n.output)
            order.append(n)
        pending = rest
    return order


# ---- specialising at a batch size: shape inference and constant folding --------------------------


def tensor_dims(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


FOLDABLE_BLOCKLIST = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                      "Multinomial", "Bernoulli"}


def evaluate(node, values, opset):
    """Runs one node on constant inputs with onnx's reference implementation."""
    inputs = [i for i in node.input if i]
    vis = [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(values[i].dtype),
                                         None) for i in inputs]
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
            for o in node.output if o]
    g = helper.make_graph([node], "fold", vis, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    ref = ReferenceEvaluator(m)
    res = ref.run(None, {i: values[i] for i in inputs})
    return {o: np.asarray(r) for o, r in zip([o for o in node.output if o], res)}


class Spec:
    """The graph at one batch size: the nodes left after folding, the constants, and every
    tensor's dims and element type."""

    def __init__(self):
        self.nodes = []
        self.consts = {}
        self.dims = {}
        self.etype = {}


def specialise(model, opset, input_dims, batch):
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inits = set(consts)
    inputs = [i for i in g.input if i.name not in inits]
    nodes = list(g.node)
    # Constant nodes are values already.
    for n in list(nodes):
        if n.op_type == "Constant":
            consts.update(evaluate(n, consts, opset))
            nodes.remove(n)
    for _ in range(64):
        m = helper.make_model(
            helper.make_graph(nodes, "spec", [
                helper.make_tensor_value_info(i.name, i.type.tensor_type.elem_type,
                                              [batch] + list(input_dims[i.name][1:]))
                for i in inputs
            ], list(g.output), [numpy_helper.from_array(v, k) for k, v in consts.items()
                                if k in needed_inputs(nodes)]),
            opset_imports=[helper.make_opsetid("", opset)])
        try:
            m = shape_inference.infer_shapes(m, check_type=False, strict_mode=False,
                                             data_prop=True)
        except Exception as e:
            fail("ONNX's shape inference failed on the model: %s" % e)
        vinfo = {v.name: v for v in list(m.graph.value_info) + list(m.graph.input) +
                 list(m.graph.output)}
        dims = {k: tensor_dims(v) for k, v in vinfo.items()}
        etype = {k: v.type.tensor_type.elem_type for k, v in vinfo.items()}
        folded = False
        keep = []
        for n in nodes:
            ins = [i for i in n.input if i]
            if n.op_type in ("Shape", "Size") and ins[0] not in consts:
                d = dims.get(ins[0])
                if d is not None and all(x is not None for x in d):
                    shp = np.array(d, dtype=np.int64)
                    if n.op_type == "Size":
                        consts[n.output[0]] = np.array(int(np.prod(shp)), dtype=np.int64)
                    else:
                        start = attr(n, "start", 0)
                        end = attr(n, "end", None)
                        consts[n.output[0]] = shp[start:end]
                    folded = True
                    continue
            if ins and all(i in consts for i in ins) and n.op_type not in FOLDABLE_BLOCKLIST:
                try:
                    consts.update(evaluate(n, consts, opset))
                except Exception as e:
                    fail("%s: folding it failed: %s" % (node_label(n), e))
                folded = True
                continue
            keep.append(n)
        nodes = keep
        if not folded:
            s = Spec()
            s.nodes, s.consts, s.dims, s.etype = nodes, consts, dims, etype
            for k, v in consts.items():
                s.dims[k] = list(v.shape)
            return s
    fail("constant folding did not settle after 64 rounds")


def needed_inputs(nodes):
    return {i for n in nodes for i in n.input}


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


# ---- rewrites: what exporters spell in several nodes, as one ------------------------------------


def rewrite(spec, graph_outputs):
    """Rewrites spec's nodes in place, until nothing changes: an Add, Sub, Mul or Div of a
    per-channel constant after a Conv or ConvTranspose folded into its weights and bias
    (Paddle writes the bias as an Add); GELU spelled with Erf made one Gelu node; hard-swish spelled with Add,
    Clip (or HardSigmoid), Mul and Div made one HardSwish node. A tensor inside a pattern
    must have one reader and be no graph output. Both specialisations get the same rewrites
    (the patterns do not depend on the batch), so their node lists stay alike."""
    k = [0]
    # Identity and Dropout (inference: identity) read through, so patterns see across them.
    alias = {}
    keep = []
    for n in spec.nodes:
        if n.op_type in ("Identity", "Dropout") and n.output[0] not in graph_outputs and \
                all(o == "" for o in n.output[1:]) and n.input[0] not in spec.consts:
            alias[n.output[0]] = alias.get(n.input[0], n.input[0])
            continue
        keep.append(n)
    if alias:
        for n in keep:
            for j, i in enumerate(n.input):
                if i in alias:
                    n.input[j] = alias[i]
        spec.nodes = keep

    def fresh(hint, arr):
        k[0] += 1
        name = "%s.fold%d" % (hint, k[0])
        spec.consts[name] = arr
        spec.dims[name] = list(arr.shape)
        return name

    while True:
        users = {}
        for n in spec.nodes:
            for i in n.input:
                users.setdefault(i, []).append(n)
        made = {o: n for n in spec.nodes for o in n.output}

        def sole(name, ops):
            u = users.get(name, [])
            if len(u) != 1 or name in graph_outputs or u[0].op_type not in ops:
                return None
            return u[0]

        def scalar(name, want=None, rel=1e-4):
            c = spec.consts.get(name)
            if c is None or c.size != 1:
                return None
            v = float(np.asarray(c).reshape(-1)[0])
            if want is not None and abs(v - want) > rel * abs(want):
                return None
            return v

        def other(n, name):
            """n's input that is not name (a binary node), or None."""
            if len(n.input) != 2:
                return None
            if n.input[0] == name:
                return n.input[1]
            return n.input[0] if n.input[1] == name else None

        changed = False
        for n in list(spec.nodes):
            if n not in spec.nodes:
                continue
            new = None
            if n.op_type in ("Conv", "ConvTranspose") and len(n.input) >= 2 and \
                    n.input[1] in spec.consts:
                new = fold_conv_affine(spec, n, sole, fresh)
            elif n.op_type == "Erf":
                new = match_gelu(spec, n, sole, made, scalar, other)
            elif n.op_type in ("Clip", "HardSigmoid"):
                new = match_hardswish(spec, n, sole, made, scalar, other)
            if new is None:
                continue
            node, gone = new
            at = spec.nodes.index(gone[0]) if gone[0] in spec.nodes else spec.nodes.index(n)
            spec.nodes = [m for m in spec.nodes if all(m is not g for g in gone)]
            spec.nodes.insert(min(at, len(spec.nodes)), node)
            changed = True
            break
        if not changed:
            # keep the list in an order that runs (a fused node sits where its first one did)
            spec.nodes = toposort(spec.nodes, set(spec.consts) | set(spec.dims), "the model")
            return


def fold_conv_affine(spec, conv, sole, fresh):
    """Conv or ConvTranspose then Add/Sub/Mul/Div of a constant that is one value, or one per
    output channel ([C, 1, 1] or [1, C, 1, 1]): the same node with that folded into its
    weights and bias (a Mul or Div after a grouped ConvTranspose is left alone)."""
    out = conv.output[0]
    n = sole(out, {"Add", "Sub", "Mul", "Div"})
    if n is None or len(n.input) != 2:
        return None
    c_name = n.input[1] if n.input[0] == out else n.input[0]
    if c_name == out or c_name not in spec.consts:
        return None
    if n.op_type in ("Sub", "Div") and n.input[0] != out:
        return None  # c - x, c / x: not affine in the conv's output the same way
    W = spec.consts[conv.input[1]].astype(np.float64)
    transposed = conv.op_type == "ConvTranspose"
    group = 1
    for a in conv.attribute:
        if a.name == "group":
            group = a.i
    if W.ndim != 4:
        return None
    # output channels: a Conv's weight is [C, ...], a ConvTranspose's [C_in, C / group, ...]
    C = W.shape[1] * group if transposed else W.shape[0]
    if transposed and group != 1 and n.op_type in ("Mul", "Div"):
        return None
    c = np.asarray(spec.consts[c_name], dtype=np.float64)
    od = spec.dims.get(n.output[0])
    if od is None or len(od) != 4 or od != spec.dims.get(out):
        return None  # the constant broadcasts the output to another shape
    if c.size == 1:
        v = np.full(C, float(c.reshape(-1)[0]))
    elif c.size == C and c.ndim >= 3 and c.shape[-1] == 1 and c.shape[-2] == 1:
        v = c.reshape(-1)
    else:
        return None
    B = spec.consts[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and \
        conv.input[2] else np.zeros(C)
    if n.op_type == "Add":
        B = B + v
    elif n.op_type == "Sub":
        B = B - v
    else:
        k = v if n.op_type == "Mul" else 1.0 / v
        W = W * (k[None, :, None, None] if transposed else k[:, None, None, None])
        B = B * k
    w = fresh(conv.input[1], W.astype(np.float32))
    b = fresh(out + ".bias", B.astype(np.float32))
    node = helper.make_node(conv.op_type, [conv.input[0], w, b], [n.output[0]], name=conv.name)
    node.attribute.extend(conv.attribute)
    return node, [conv, n]


def match_gelu(spec, erf, sole, made, scalar, other):
    """x / sqrt(2) (or x * (1 / sqrt(2))) -> Erf -> + 1 -> * x -> * 0.5 (in either order of
    the last two, the 0.5 possibly applied to x first): Gelu(x)."""
    u = erf.input[0]
    d = made.get(u)
    if d is None or sole(u, {"Erf"}) is None or len(d.input) != 2:
        return None
    if d.op_type == "Div" and scalar(d.input[1], np.sqrt(2)):
        x = d.input[0]
    elif d.op_type == "Mul" and scalar(d.input[1], 1 / np.sqrt(2)):
        x = d.input[0]
    elif d.op_type == "Mul" and scalar(d.input[0], 1 / np.sqrt(2)):
        x = d.input[1]
    else:
        return None
    a = sole(erf.output[0], {"Add"})
    if a is None or not scalar(other(a, erf.output[0]) or "", 1.0):
        return None
    m = sole(a.output[0], {"Mul"})
    if m is None:
        return None
    y = other(m, a.output[0])
    gone = [d, erf, a, m]
    if y == x:  # (x * (1 + erf)) * 0.5
        h = sole(m.output[0], {"Mul"})
        if h is None or not scalar(other(h, m.output[0]) or "", 0.5):
            return None
        gone.append(h)
        out = h.output[0]
    else:  # (x * 0.5) * (1 + erf)
        h = made.get(y)
        if h is None or h.op_type != "Mul" or sole(y, {"Mul"}) is None or \
                other(h, x) is None or not scalar(other(h, x), 0.5):
            return None
        gone.insert(0, h)
        out = m.output[0]
    return helper.make_node("Gelu", [x], [out], name=erf.name + ".gelu"), gone


def match_hardswish(spec, n, sole, made, scalar, other):
    """x * Clip(x + 3, 0, 6) / 6 (the / 6 as * (1/6), before or after the * x), or
    x * HardSigmoid(x, 1/6, 0.5): HardSwish(x)."""
    if n.op_type == "HardSigmoid":
        if abs(attr(n, "alpha", 0.2) - 1 / 6) > 1e-4 or abs(attr(n, "beta", 0.5) - 0.5) > 1e-6:
            return None
        x = n.input[0]
        m = sole(n.output[0], {"Mul"})
        if m is None or other(m, n.output[0]) != x:
            return None
        return helper.make_node("HardSwish", [x], [m.output[0]], name=n.name + ".hs"), [n, m]
    lo = scalar(n.input[1], None) if len(n.input) > 1 and n.input[1] else attr(n, "min", None)
    hi = scalar(n.input[2], None) if len(n.input) > 2 and n.input[2] else attr(n, "max", None)
    if lo is None or hi is None or abs(lo) > 1e-6 or abs(hi - 6) > 1e-5:
        return None
    a = made.get(n.input[0])
    if a is None or a.op_type != "Add" or sole(n.input[0], {"Clip"}) is None:
        return None
    x = a.input[0] if scalar(a.input[1], 3.0) else a.input[1] if scalar(a.input[0], 3.0) \
        else None
    if x is None:
        return None
    first = sole(n.output[0], {"Mul", "Div"})
    if first is None:
        return None
    if first.op_type == "Mul" and other(first, n.output[0]) == x:
        last = sole(first.output[0], {"Mul", "Div"})
        c = other(last, first.output[0]) if last is not None else None
    elif (first.op_type == "Div" and first.input[0] == n.output[0] and
          scalar(first.input[1], 6.0)) or \
            (first.op_type == "Mul" and scalar(other(first, n.output[0]) or "", 1 / 6)):
        last = sole(first.output[0], {"Mul"})
        if last is None or other(last, first.output[0]) != x:
            return None
        return helper.make_node("HardSwish", [x], [last.output[0]], name=n.name + ".hs"), \
            [a, n, first, last]
    else:
        return None
    if last is None or c is None:
        return None
    if not ((last.op_type == "Div" and last.input[1] == c and scalar(c, 6.0)) or
            (last.op_type == "Mul" and scalar(c, 1 / 6))):
        return None
    return helper.make_node("HardSwish", [x], [last.output[0]], name=n.name + ".hs"), \
        [a, n, first, last]


# ---- the mapping onto swarm's ops ------------------------------------------------------------------


class Builder:
    def __init__(self, s3, s5, graph_outputs, input_names):
        self.s3, self.s5 = s3, s5
        self.nodes = []
        self.weights = {}  # swarm name -> np.float32 array (or int64 for gather indices)
        self.by_hash = {}
        self.alias = {}  # ONNX name -> ONNX name it is the same tensor as
        self.names = {}  # ONNX name -> swarm name
        self.used = set()
        self.graph_outputs = set(graph_outputs)
        self.input_names = set(input_names)
        consumers = {}
        for n in s3.nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        self.consumers = consumers
        self.skip = set()  # nodes folded into another
        for name in list(input_names) + list(graph_outputs):
            self.used.add(name)
            self.names[name] = name

    # names ----------------------------------------------------------------------------------

    def resolve(self, name):
        while name in self.alias:
            name = self.alias[name]
        return name

    def sname(self, onnx_name):
        """The swarm name of an ONNX tensor: its own where it fits, else a short one."""
        onnx_name = self.resolve(onnx_name)
        if onnx_name in self.names:
            return self.names[onnx_name]
        n = onnx_name
        if (len(n.encode()) > TENSOR_NAME_MAX or not n or n in self.used or
                not all(32 <= ord(c) < 127 for c in n)):
            k = len(self.used)
            while "t%d" % k in self.used:
                k += 1
            n = "t%d" % k
        self.used.add(n)
        self.names[onnx_name] = n
        return n

    # facts about tensors ------------------------------------------------------------------------

    def const(self, name):
        name = self.resolve(name)
        return self.s3.consts.get(name) if name else None

    def dims(self, name):
        """Dims with the batch as -1 (dim 0 only; elsewhere the caller has been refused)."""
        name = self.resolve(name)
        d3, d5 = self.s3.dims.get(name), self.s5.dims.get(name)
        if d3 is None or any(x is None for x in d3):
            return None
        return [-1 if (i == 0 and d5 and d5[0] != d3[0]) else x for i, x in enumerate(d3)]

    def rank(self, name):
        d = self.dims(name)
        return None if d is None else len(d)

    def sole_consumer(self, name, op_types):
        """The one node that reads name, when it is of one of op_types and name is no graph
        output."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0] if users[0].op_type in op_types else None

    # outputs --------------------------------------------------------------------------------------

    def weight(self, arr, hint):
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float64 or arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        if arr.dtype not in (np.float32, np.int64, np.int32):
            raise ValueError("a constant of dtype %s" % arr.dtype)
        if arr.ndim > MAX_DIMS:
            raise ValueError("a constant of %d dims" % arr.ndim)
        key = hashlib.sha256(arr.dtype.str.encode() + repr(arr.shape).encode() +
                             arr.tobytes()).hexdigest()
        if key in self.by_hash:
            return self.by_hash[key]
        hint = re.sub(r"[^A-Za-z0-9._/-]", "_", hint)
        name = "w." + hint
        if len(name.encode()) > TENSOR_NAME_MAX - 8:
            name = "w.%d" % len(self.weights)
        base, k = name, 1
        while name in self.used:
            name = "%s.%d" % (base, k)
            k += 1
        self.used.add(name)
        self.weights[name] = arr
        self.by_hash[key] = name
        return name

    def operand(self, node, name, hint):
        """A node input as a swarm tensor name: a runtime tensor's, or a weight made of the
        constant."""
        c = self.const(name)
        if c is not None:
            if c.dtype not in (np.float32, np.float64, np.float16):
                raise Unsupported(node, "a constant operand of dtype %s" % c.dtype)
            return self.weight(c.astype(np.float32), hint)
        return self.sname(name)

    def emit(self, op, inputs, output, **attrs):
        n = {"op": op, "inputs": inputs, "output": self.sname(output)}
        for k, v in attrs.items():
            if v is not None:
                n[k] = v
        self.nodes.append(n)
        return n


def norm_axis(axis, rank):
    return axis + rank if axis < 0 else axis


def pads_2d(node, b, x_dims, kernel, strides, dilations, transpose=False):
    """Conv and pool pads (top, left, bottom, right) from pads or auto_pad."""
    auto = attr(node, "auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        p = list(attr(node, "pads", [0, 0, 0, 0]) or [0, 0, 0, 0])
        if auto == "VALID":
            p = [0, 0, 0, 0]
        if len(p) != 4:
            raise Unsupported(node, "pads of %d values (2-D only)" % len(p))
        return [p[0], p[1], p[2], p[3]]
    if auto not in ("SAME_UPPER", "SAME_LOWER") or transpose:
        raise Unsupported(node, "auto_pad %s" % auto)
    out = []
    for i in range(2):
        inp = x_dims[2 + i]
        o = -(-inp // strides[i])
        total = max(0, (o - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inp)
        lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
        out.append((lo, total - lo))
    return [out[0][0], out[1][0], out[0][1], out[1][1]]


FUSABLE_ACTS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSigmoid":
                "hardsigmoid", "HardSwish": "hardswish", "LeakyRelu": "leaky_relu",
                "Clip": "clip", "Gelu": "gelu"}


def act_attrs(b, n):
    """The swarm act attributes of an activation node (None when it cannot be fused)."""
    kind = FUSABLE_ACTS[n.op_type]
    a = {"act": kind}
    if kind == "gelu" and attr(n, "approximate", "none") != "none":
        return None
    if kind == "hardsigmoid":
        a["alpha"], a["beta"] = float(attr(n, "alpha", 0.2)), float(attr(n, "beta", 0.5))
    elif kind == "leaky_relu":
        a["alpha"] = float(attr(n, "alpha", 0.01))
    elif kind == "clip":
        lo, hi = clip_bounds(b, n)
        if lo is False:
            return None
        a["min"], a["max"] = lo, hi
    return a


def clip_bounds(b, n):
    """Clip's min and max (None: unbounded), from its inputs (opset 11 on) or attributes;
    (False, False) when one is a runtime tensor."""
    if len(n.input) > 1:
        vals = []
        for i in (1, 2):
            name = n.input[i] if len(n.input) > i else ""
            if not name:
                vals.append(None)
                continue
            c = b.const(name)
            if c is None:
                return False, False
            vals.append(float(np.asarray(c).reshape(-1)[0]))
        return vals[0], vals[1]
    lo, hi = attr(n, "min", None), attr(n, "max", None)
    return (float(lo) if lo is not None else None, float(hi) if hi is not None else None)


def fuse_act(b, out_name, attrs):
    """Looks for an activation that alone reads out_name; fuses it (the act's output becomes
    the node's). Returns the name the node should produce."""
    n = b.sole_consumer(out_name, set(FUSABLE_ACTS))
    if n is None:
        return out_name
    a = act_attrs(b, n)
    if a is None:
        return out_name
    attrs.update({k: v for k, v in a.items() if v is not None})
    b.skip.add(id(n))
    return n.output[0]


def conv(b, n):
    x, w = n.input[0], n.input[1]
    W = b.const(w)
    xd = b.dims(x)
    if W is None:
        raise Unsupported(n, "a weight that is not a constant")
    if W.ndim != 4 or xd is None or len(xd) != 4:
        raise Unsupported(n, "a %d-D convolution (2-D only)" % (W.ndim - 2 if W.ndim else 0))
    W = W.astype(np.float32)
    bias = b.const(n.input[2]).astype(np.float32) if len(n.input) > 2 and n.input[2] else None
    strides = list(attr(n, "strides", [1, 1]))
    dil = list(attr(n, "dilations", [1, 1]))
    group = int(attr(n, "group", 1))
    out = n.output[0]
    # BatchNormalization right after, with constant parameters: folded into the weights.
    bn = b.sole_consumer(out, {"BatchNormalization"})
    if bn is not None and all(b.const(i) is not None for i in bn.input[1:5]):
        s, bb, mean, var = (b.const(i).astype(np.float64) for i in bn.input[1:5])
        eps = float(attr(bn, "epsilon", 1e-5))
        k = s / np.sqrt(var + eps)
        W = (W.astype(np.float64) * k[:, None, None, None]).astype(np.float32)
        bias = ((bias.astype(np.float64) if bias is not None else 0) - mean) * k + bb
        bias = bias.astype(np.float32)
        b.skip.add(id(bn))
        out = bn.output[0]
    pads = pads_2d(n, b, xd, W.shape[2:], strides, dil)
    a = {"strides": strides, "dilations": dil, "pads": pads,
         "group": group if group != 1 else None}
    out = fuse_act(b, out, a)
    ins = [b.sname(x), b.weight(W, out + ".weight")]
    if bias is not None:
        ins.append(b.weight(bias, out + ".bias"))
    b.emit("conv2d", ins, out, **a)


def conv_transpose(b, n):
    x, w = n.input[0], n.input[1]
    W = b.const(w)
    xd = b.dims(x)
    if W is None or W.ndim != 4 or xd is None or len(xd) != 4:
        raise Unsupported(n, "a weight that is not a constant 4-D tensor (2-D only)")
    strides = list(attr(n, "strides", [1, 1]))
    dil = list(attr(n, "dilations", [1, 1]))
    group = int(attr(n, "group", 1))
    opad = list(attr(n, "output_padding", [0, 0]))
    od = b.dims(n.output[0])
    if attr(n, "output_shape", None) is not None or attr(n, "auto_pad", "NOTSET") != "NOTSET":
        # the pads that give the output shape ONNX's shape inference found
        if od is None:
            raise Unsupported(n, "output_shape or auto_pad with an output of unknown shape")
        pads = []
        for i in range(2):
            total = strides[i] * (xd[2 + i] - 1) + opad[i] + dil[i] * (W.shape[2 + i] - 1) + 1 - od[2 + i]
            pads.append((total // 2, total - total // 2) if attr(n, "auto_pad", "") != "SAME_LOWER"
                        else (total - total // 2, total // 2))
        pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    else:
        pads = list(attr(n, "pads", [0, 0, 0, 0]))
    bias = b.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    a = {"strides": strides, "dilations": dil, "pads": pads, "group": group if group != 1 else None,
         "output_padding": opad if any(opad) else None}
    out = fuse_act(b, n.output[0], a)
    ins = [b.sname(x), b.weight(W.astype(np.float32), out + ".weight")]
    if bias is not None:
        ins.append(b.weight(bias.astype(np.float32), out + ".bias"))
    b.emit("conv_transpose2d", ins, out, **a)


def gemm(b, n):
    A, B = n.input[0], n.input[1]
    W = b.const(B)
    if W is None or b.const(A) is not None:
        raise Unsupported(n, "Gemm of two runtime tensors (swarm's linear takes a constant B)")
    if attr(n, "transA", 0):
        raise Unsupported(n, "transA")
    W = W.astype(np.float32)
    if not attr(n, "transB", 0):
        W = W.T
    W = W * float(attr(n, "alpha", 1.0))
    ins = [b.sname(A), b.weight(np.ascontiguousarray(W), n.output[0] + ".weight")]
    if len(n.input) > 2 and n.input[2]:
        C = b.const(n.input[2])
        if C is None:
            raise Unsupported(n, "a runtime C")
        C = (C.astype(np.float32) * float(attr(n, "beta", 1.0))).reshape(-1)
        if C.size == 1:
            C = np.full(W.shape[0], C[0], dtype=np.float32)
        if C.size != W.shape[0]:
            raise Unsupported(n, "a C that is not one value per output column")
        ins.append(b.weight(C, n.output[0] + ".bias"))
    a = {}
    out = fuse_linear_act(b, n.output[0], a)
    b.emit("linear", ins, out, **a)


def fuse_linear_act(b, out, a):
    n = b.sole_consumer(out, {"Relu", "Sigmoid", "Tanh"})
    if n is None:
        return out
    a["act"] = FUSABLE_ACTS[n.op_type]
    b.skip.add(id(n))
    return n.output[0]


def matmul(b, n):
    A, B = n.input[0], n.input[1]
    Wb = b.const(B)
    if Wb is not None and Wb.ndim == 2 and b.const(A) is None:
        W = np.ascontiguousarray(Wb.astype(np.float32).T)
        ins = [b.sname(A), b.weight(W, n.output[0] + ".weight")]
        out = n.output[0]
        add = b.sole_consumer(out, {"Add"})
        if add is not None:
            other = add.input[1] if add.input[0] == out else add.input[0]
            c = b.const(other)
            if c is not None and c.reshape(-1).size == W.shape[0] and \
                    c.ndim >= 1 and c.shape[-1] == W.shape[0]:
                ins.append(b.weight(c.astype(np.float32).reshape(-1), out + ".bias"))
                b.skip.add(id(add))
                out = add.output[0]
        a = {}
        out = fuse_linear_act(b, out, a)
        b.emit("linear", ins, out, **a)
        return
    if b.const(A) is not None or Wb is not None:
        raise Unsupported(n, "MatMul with a constant operand that is not a 2-D right-hand weight")
    ra, rb = b.rank(A), b.rank(B)
    if ra is None or rb is None or ra != rb or ra < 2:
        raise Unsupported(n, "MatMul of runtime tensors of ranks %s and %s (swarm's matmul "
                          "takes the same rank, same leading dims)" % (ra, rb))
    b.emit("matmul", [b.sname(A), b.sname(B)], n.output[0])


BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min",
          "PRelu": "prelu"}


def binary(b, n):
    if len(n.input) != 2:
        raise Unsupported(n, "%d operands (2 only)" % len(n.input))
    op = BINARY[n.op_type]
    x, y = n.input
    ins = [b.operand(n, x, n.output[0] + ".a"), b.operand(n, y, n.output[0] + ".b")]
    b.emit(op, ins, n.output[0])


UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Exp": "exp",
         "Log": "log", "Sqrt": "sqrt", "HardSwish": "hardswish", "Softmax": "softmax"}


def unary(b, n):
    op = UNARY[n.op_type]
    if op == "softmax":
        r = b.rank(n.input[0])
        axis = attr(n, "axis", -1 if b.opset >= 13 else 1)
        if r is None or norm_axis(axis, r) != r - 1:
            raise Unsupported(n, "softmax over axis %s of a %s-dim tensor (the last dim only)"
                              % (axis, r))
    b.emit(op, [b.sname(n.input[0])], n.output[0])


def activation(b, n):
    a = act_attrs(b, n)
    if a is None:
        raise Unsupported(n, "a runtime min or max")
    op = a.pop("act")
    b.emit(op, [b.sname(n.input[0])], n.output[0], **a)


def gelu(b, n):
    if attr(n, "approximate", "none") != "none":
        raise Unsupported(n, "the tanh approximation")
    b.emit("gelu", [b.sname(n.input[0])], n.output[0])


def pow_(b, n):
    e = b.const(n.input[1])
    if e is None or e.size != 1:
        raise Unsupported(n, "an exponent that is not one constant")
    if b.const(n.input[0]) is not None:
        raise Unsupported(n, "a constant base")
    b.emit("pow", [b.sname(n.input[0])], n.output[0], exponent=float(e.reshape(-1)[0]))


def pool(b, n):
    xd = b.dims(n.input[0])
    if xd is None or len(xd) != 4:
        raise Unsupported(n, "a pool over other than 2 spatial dims")
    if len(n.output) > 1 and n.output[1]:
        raise Unsupported(n, "MaxPool's indices output")
    k = list(attr(n, "kernel_shape"))
    s = list(attr(n, "strides", [1, 1]))
    d = list(attr(n, "dilations", [1, 1]))
    if n.op_type == "AveragePool" and any(x != 1 for x in d):
        raise Unsupported(n, "dilated average pooling")
    if attr(n, "storage_order", 0):
        raise Unsupported(n, "storage_order 1")
    a = {"kernel_shape": k, "strides": s, "pads": pads_2d(n, b, xd, k, s, d),
         "ceil_mode": int(attr(n, "ceil_mode", 0)) or None}
    if n.op_type == "MaxPool":
        a["dilations"] = d if any(x != 1 for x in d) else None
        b.emit("max_pool2d", [b.sname(n.input[0])], n.output[0], **a)
    else:
        a["count_include_pad"] = int(attr(n, "count_include_pad", 0)) or None
        b.emit("avg_pool2d", [b.sname(n.input[0])], n.output[0], **a)


def global_pool(b, n):
    if n.op_type == "GlobalMaxPool":
        r = b.rank(n.input[0])
        b.emit("reduce_max", [b.sname(n.input[0])], n.output[0], axes=list(range(2, r)),
               keepdims=1)
        return
    b.emit("global_avg_pool", [b.sname(n.input[0])], n.output[0])


def resize(b, n):
    xd, od = b.dims(n.input[0]), b.dims(n.output[0])
    if xd is None or len(xd) != 4 or od is None:
        raise Unsupported(n, "a resize of other than a 4-dim [N, C, H, W] tensor")
    mode = attr(n, "mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise Unsupported(n, "mode %s (nearest and linear only)" % mode)
    coord = attr(n, "coordinate_transformation_mode", "half_pixel" if n.op_type == "Resize"
                 else "asymmetric")
    if coord not in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"):
        raise Unsupported(n, "coordinate_transformation_mode %s" % coord)
    nearest = attr(n, "nearest_mode", "round_prefer_floor" if n.op_type == "Resize" else "floor")
    if nearest not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        raise Unsupported(n, "nearest_mode %s" % nearest)
    if attr(n, "antialias", 0) or attr(n, "axes", None) is not None or \
            attr(n, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise Unsupported(n, "antialias, axes or keep_aspect_ratio_policy")
    if xd[0] != od[0] or xd[1] != od[1]:
        raise Unsupported(n, "a resize of the batch or channel dims")
    scales = None
    idx = 2 if n.op_type == "Resize" and b.opset >= 11 else 1
    if len(n.input) > idx and n.input[idx]:
        sc = b.const(n.input[idx])
        if sc is None:
            raise Unsupported(n, "runtime scales")
        if sc.size == 4:
            scales = [float(sc[2]), float(sc[3])]
    a = {"mode": mode, "coordinate_transformation_mode": coord, "nearest_mode": nearest}
    if scales is not None:
        a["scales"] = scales
        # the output floor(H * scale) must be what ONNX's shape inference said
        if [int(xd[2] * scales[0]), int(xd[3] * scales[1])] != od[2:]:
            a["sizes"] = od[2:]
    else:
        a["sizes"] = od[2:]
    b.emit("resize", [b.sname(n.input[0])], n.output[0], **a)


REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max"}


def reduce(b, n):
    r = b.rank(n.input[0])
    axes = attr(n, "axes", None)
    if len(n.input) > 1 and n.input[1]:
        c = b.const(n.input[1])
        if c is None:
            raise Unsupported(n, "runtime axes")
        axes = [int(v) for v in c.reshape(-1)]
    if axes is None or len(axes) == 0:
        if attr(n, "noop_with_empty_axes", 0):
            b.alias[n.output[0]] = n.input[0]
            return
        axes = list(range(r))
    axes = sorted({norm_axis(int(v), r) for v in axes})
    b.emit(REDUCE[n.op_type], [b.sname(n.input[0])], n.output[0], axes=axes,
           keepdims=int(attr(n, "keepdims", 1)))


def reshape_like(b, n):
    od = b.dims(n.output[0])
    if od is None:
        raise Unsupported(n, "an output whose shape is not known after folding")
    b.emit("reshape", [b.sname(n.input[0])], n.output[0], shape=od)


def transpose(b, n):
    r = b.rank(n.input[0])
    perm = attr(n, "perm", list(range(r - 1, -1, -1)) if r is not None else None)
    if perm is None:
        raise Unsupported(n, "an input of unknown rank")
    b.emit("transpose", [b.sname(n.input[0])], n.output[0], perm=[int(v) for v in perm])


def slice_(b, n):
    r = b.rank(n.input[0])
    xd = b.dims(n.input[0])
    if b.opset >= 10:
        vals = []
        for i in range(1, 5):
            name = n.input[i] if len(n.input) > i else ""
            c = b.const(name) if name else None
            if name and c is None:
                raise Unsupported(n, "runtime starts, ends, axes or steps")
            vals.append(None if c is None else [int(v) for v in c.reshape(-1)])
        starts, ends, axes, steps = vals
    else:
        starts, ends, axes, steps = attr(n, "starts"), attr(n, "ends"), attr(n, "axes"), None
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    spec = sorted(zip([norm_axis(a, r) for a in axes], starts, ends, steps))
    keep = []
    for ax, st, en, sp in spec:
        if ax == 0 and xd[0] == -1:
            if st == 0 and sp == 1 and en >= 2**31 - 1:
                continue  # the whole batch: no cut
            raise Unsupported(n, "a slice of the batch dimension")
        en = max(min(en, INT_BIG), -INT_BIG)
        st = max(min(st, INT_BIG), -INT_BIG)
        keep.append((ax, st, en, sp))
    if not keep:
        b.alias[n.output[0]] = n.input[0]
        return
    b.emit("slice", [b.sname(n.input[0])], n.output[0], axes=[k[0] for k in keep],
           starts=[k[1] for k in keep], ends=[k[2] for k in keep],
           steps=[k[3] for k in keep] if any(k[3] != 1 for k in keep) else None)


def split(b, n):
    r = b.rank(n.input[0])
    axis = norm_axis(int(attr(n, "axis", 0)), r)
    xd = b.dims(n.input[0])
    if axis == 0 and xd[0] == -1:
        raise Unsupported(n, "a split of the batch dimension")
    start = 0
    for o in n.output:
        od = b.dims(o)
        if od is None:
            raise Unsupported(n, "outputs of unknown shape")
        if o:
            b.emit("slice", [b.sname(n.input[0])], o, axes=[axis], starts=[start],
                   ends=[start + od[axis]])
        start += od[axis]


def gather(b, n):
    data, idx = n.input
    r = b.rank(data)
    axis = norm_axis(int(attr(n, "axis", 0)), r)
    d = b.const(data)
    if d is not None and d.dtype not in (np.float32, np.float64, np.float16):
        raise Unsupported(n, "a Gather of %s data" % d.dtype)
    din = b.weight(d.astype(np.float32), n.output[0] + ".data") if d is not None else b.sname(data)
    c = b.const(idx)
    iin = b.weight(c.astype(np.int64), n.output[0] + ".indices") if c is not None else b.sname(idx)
    b.emit("gather", [din, iin], n.output[0], axis=axis)


def pad(b, n):
    r = b.rank(n.input[0])
    mode = attr(n, "mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise Unsupported(n, "mode %s" % mode)
    if b.opset >= 11:
        pads = b.const(n.input[1])
        if pads is None:
            raise Unsupported(n, "runtime pads")
        pads = [int(v) for v in pads.reshape(-1)]
        value = 0.0
        if len(n.input) > 2 and n.input[2]:
            v = b.const(n.input[2])
            if v is None:
                raise Unsupported(n, "a runtime constant value")
            value = float(v.reshape(-1)[0]) if v.size else 0.0
        if len(n.input) > 3 and n.input[3]:
            axes = b.const(n.input[3])
            if axes is None:
                raise Unsupported(n, "runtime axes")
            full = [0] * (2 * r)
            ax = [norm_axis(int(a), r) for a in axes.reshape(-1)]
            for k, a in enumerate(ax):
                full[a], full[r + a] = pads[k], pads[len(ax) + k]
            pads = full
    else:
        pads, value = list(attr(n, "pads")), float(attr(n, "value", 0.0))
    if any(p < 0 for p in pads):
        raise Unsupported(n, "negative pads (crops)")
    b.emit("pad", [b.sname(n.input[0])], n.output[0], pads=pads, mode=mode,
           value=value if value else None)


def concat(b, n):
    r = b.rank(n.output[0])
    axis = norm_axis(int(attr(n, "axis")), r)
    ins = [b.operand(n, i, "%s.in%d" % (n.output[0], k)) for k, i in enumerate(n.input)]
    if len(ins) > 8:
        raise Unsupported(n, "%d inputs (8 at most)" % len(ins))
    b.emit("concat", ins, n.output[0], axis=axis)


FLOAT_TYPES = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.FLOAT16: "f16",
               onnx.TensorProto.BFLOAT16: "bf16"}


def cast(b, n):
    to = attr(n, "to")
    src = b.s3.etype.get(b.resolve(n.input[0]))
    if to == src:
        b.alias[n.output[0]] = n.input[0]
        return
    if to not in FLOAT_TYPES or src not in FLOAT_TYPES:
        raise Unsupported(n, "a cast of a runtime tensor to %s (float to float only)" %
                          onnx.TensorProto.DataType.Name(to))
    b.emit("cast", [b.sname(n.input[0])], n.output[0], to=FLOAT_TYPES[to])


def batchnorm(b, n):
    ps = [b.const(i) for i in n.input[1:5]]
    if any(p is None for p in ps):
        raise Unsupported(n, "runtime scale, bias, mean or variance")
    ins = [b.sname(n.input[0])] + [b.weight(p.astype(np.float32), "%s.%s" % (n.output[0], k))
                                   for p, k in zip(ps, ("scale", "bias", "mean", "var"))]
    b.emit("batchnorm", ins, n.output[0], eps=float(attr(n, "epsilon", 1e-5)))


def layernorm(b, n):
    r = b.rank(n.input[0])
    if norm_axis(int(attr(n, "axis", -1)), r) != r - 1:
        raise Unsupported(n, "a layer norm over other than the last dim")
    g = b.const(n.input[1])
    bias = b.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    if g is None:
        raise Unsupported(n, "a runtime scale")
    if bias is None:
        bias = np.zeros_like(g)
    b.emit("layernorm", [b.sname(n.input[0]), b.weight(g.astype(np.float32), n.output[0] + ".g"),
                         b.weight(bias.astype(np.float32), n.output[0] + ".b")],
           n.output[0], eps=float(attr(n, "epsilon", 1e-5)))


def identity(b, n):
    b.alias[n.output[0]] = n.input[0]


MAP = {
    "Conv": conv, "ConvTranspose": conv_transpose, "Gemm": gemm, "MatMul": matmul,
    "MaxPool": pool, "AveragePool": pool, "GlobalAveragePool": global_pool,
    "GlobalMaxPool": global_pool, "Resize": resize, "Upsample": resize,
    "ReduceMean": reduce, "ReduceSum": reduce, "ReduceMax": reduce,
    "Reshape": reshape_like, "Flatten": reshape_like, "Squeeze": reshape_like,
    "Unsqueeze": reshape_like, "Transpose": transpose, "Slice": slice_, "Split": split,
    "Gather": gather, "Pad": pad, "Concat": concat, "Cast": cast,
    "BatchNormalization": batchnorm, "LayerNormalization": layernorm,
    "Identity": identity, "Dropout": identity, "Gelu": gelu, "Pow": pow_,
    "HardSigmoid": activation, "LeakyRelu": activation, "Clip": activation,
}
for k in BINARY:
    MAP[k] = binary
for k in UNARY:
    MAP[k] = unary


def check_batch(b, node):
    """Every output of node keeps the batch in dim 0, never elsewhere, never merged."""
    for o in node.output:
        if not o:
            continue
        d3, d5 = b.s3.dims.get(o), b.s5.dims.get(o)
        if d3 is None or d5 is None:
            continue
        for i, (p, q) in enumerate(zip(d3, d5)):
            if p == q:
                continue
            if i == 0 and (p, q) == BATCHES:
                continue
            raise Unsupported(node, "its output \"%s\" has dim %d %s with the batch (%s at "
                                    "batch %d, %s at %d): swarm keeps the batch in dim 0 alone" %
                              (o, i, "merged" if i == 0 else "moved or mixed", p, BATCHES[0], q,
                               BATCHES[1]))


# ---- the command ---------------------------------------------------------------------------------


def parse_dims(text):
    try:
        dims = [int(x) for x in text.lower().split("x")]
    except ValueError:
        fail("--input: \"%s\" is not dims like 1x3x48x320" % text, 2)
    if not dims or any(d < 1 for d in dims):
        fail("--input: \"%s\": every dim must be a positive integer" % text, 2)
    return dims


def io_dtype(etype, name):
    m = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.FLOAT16: "f16",
         onnx.TensorProto.BFLOAT16: "bf16", onnx.TensorProto.INT64: "i64",
         onnx.TensorProto.INT32: "i32", onnx.TensorProto.UINT8: "u8"}
    if etype not in m:
        fail("input or output \"%s\" is of type %s, which swarm does not serve" %
             (name, onnx.TensorProto.DataType.Name(etype)))
    return m[etype]


def main():
    ap = argparse.ArgumentParser(prog=PROG, description="Import an ONNX model into swarm's "
                                 "registry (docs/onnx.md).")
    ap.add_argument("model", help="the .onnx file")
    ap.add_argument("--name", help="the model's name in the registry (1..47 bytes: letters, "
                    "digits, - _ .)")
    ap.add_argument("--registry", help="the registry folder (default: swarm's)")
    ap.add_argument("--activate", action="store_true", help="make the new version active")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=DIMS",
                    help="an input's dims, batch first (1x3x48x320); the batch stays symbolic")
    ap.add_argument("--check", action="store_true",
                    help="list every node swarm cannot run, publish nothing")
    ap.add_argument("--out", help="where to write NAME.json and NAME.safetensors (kept)")
    ap.add_argument("--no-publish", action="store_true",
                    help="write the files to --out and stop (no registry needed)")
    ap.add_argument("--max-rows", type=int, default=1, help="rows a request may carry (1)")
    ap.add_argument("--max-batch", type=int, default=8, help="rows a batch may gather (8)")
    ap.add_argument("--slots", type=int, default=4, help="slots a session gets (4)")
    ap.add_argument("--swarm", default="swarm", help="the swarm command that publishes")
    o = ap.parse_args()
    if not o.check and not o.name:
        fail("give --name NAME (or --check)", 2)
    if o.no_publish and not o.out:
        fail("--no-publish needs --out DIR (where the files go)", 2)
    if o.name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,46}", o.name):
        fail("--name \"%s\": 1..47 letters, digits, '.', '_' or '-'" % o.name, 2)
    for v, what in ((o.max_rows, "--max-rows"), (o.max_batch, "--max-batch"), (o.slots,
                                                                                 "--slots")):
        if v < 1 or v > 65536:
            fail("%s %d: 1..65536" % (what, v), 2)

    model, opset = load_model(o.model)
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    given = {}
    for spec in o.input:
        if "=" not in spec:
            fail("--input \"%s\": give NAME=DIMS" % spec, 2)
        k, v = spec.split("=", 1)
        if k not in {i.name for i in inputs}:
            fail("--input %s: the model has no input of that name (it has: %s)" %
                 (k, ", ".join(i.name for i in inputs)), 2)
        given[k] = parse_dims(v)
    if not inputs or len(inputs) > MAX_IO or len(g.output) > MAX_IO:
        fail("the model has %d inputs and %d outputs; swarm serves 1..%d of each" %
             (len(inputs), len(g.output), MAX_IO))
    input_dims = {}
    for i in inputs:
        d = tensor_dims(i) or []
        if i.name in given:
            if d and len(given[i.name]) != len(d):
                fail("--input %s: %d dims given, the model's input has %d" %
                     (i.name, len(given[i.name]), len(d)), 2)
            d = given[i.name]
        if not d:
            fail("input %s has no shape: give --input %s=DIMS" % (i.name, i.name))
        missing = [k for k, x in enumerate(d) if k > 0 and x is None]
        if missing:
            sym = [getattr(dm, "dim_param", "") for dm in i.type.tensor_type.shape.dim]
            fail("input %s has dynamic dims other than the batch (%s): give them with "
                 "--input %s=%s" %
                 (i.name, ", ".join("dim %d%s" % (k, " \"%s\"" % sym[k] if k < len(sym) and
                                                  sym[k] else "") for k in missing), i.name,
                  "x".join(str(x) if x else "?" for x in [1] + list(d[1:]))))
        if len(d) > MAX_DIMS or len(d) < 1:
            fail("input %s has %d dims; swarm takes 1..%d" % (i.name, len(d), MAX_DIMS))
        input_dims[i.name] = d
    for t in list(inputs) + list(g.output):
        if len(t.name.encode()) > SWARM_NAME_MAX or not t.name:
            fail("input or output \"%s\" has a name of %d bytes; swarm's limit is %d" %
                 (t.name, len(t.name.encode()), SWARM_NAME_MAX))

    s3 = specialise(model, opset, input_dims, BATCHES[0])
    s5 = specialise(model, opset, input_dims, BATCHES[1])
    for spec in (s3, s5):
        rewrite(spec, {t.name for t in g.output})
    if [n.output[0] for n in s3.nodes] != [n.output[0] for n in s5.nodes]:
        fail("the graph folds differently at two batch sizes: a node's work depends on the "
             "batch in a way swarm cannot serve")
    b = Builder(s3, s5, [t.name for t in g.output], [i.name for i in inputs])
    b.opset = opset
    problems = []
    for n in s3.nodes:
        if id(n) in b.skip:
            continue
        try:
            check_batch(b, n)
            fn = MAP.get(n.op_type)
            if fn is None:
                raise Unsupported(n, "no swarm op for %s" % n.op_type)
            fn(b, n)
        except Unsupported as e:
            problems.append(e)
            if not o.check:
                break
        except ValueError as e:
            problems.append(Unsupported(n, str(e)))
            if not o.check:
                break
    if problems:
        for e in problems:
            print("%s: %s: %s" % (PROG, node_label(e.node), e.why), file=sys.stderr)
        if o.check:
            print("%d of %d nodes cannot run on swarm" % (len(problems), len(s3.nodes)))
            sys.exit(1)
        fail("nothing published: %s cannot run on swarm (--check lists every such node)" %
             node_label(problems[0].node))
    # Graph outputs that are aliases of other tensors (an Identity at the end): the tensor
    # takes the output's name where nothing else is called by it, else a copy.
    renamed = set()
    for out in g.output:
        src = b.resolve(out.name)
        if src == out.name:
            continue
        own = b.sname(src)
        internal = (src not in b.graph_outputs and src not in b.input_names and
                    b.const(src) is None and own not in renamed)
        if internal and any(n["output"] == own for n in b.nodes):
            for n in b.nodes:
                n["inputs"] = [out.name if i == own else i for i in n["inputs"]]
                if n["output"] == own:
                    n["output"] = out.name
            renamed.add(own)
            continue
        b.nodes.append({"op": "identity", "inputs": [b.operand(None, src, out.name + ".const")],
                        "output": out.name})
    if len(b.weights) > MANIFEST_MAX_WEIGHTS:
        fail("the imported graph has %d weights; swarm's limit is %d" %
             (len(b.weights), MANIFEST_MAX_WEIGHTS))
    if len(b.nodes) > MAX_NODES:
        fail("the imported graph has %d nodes; swarm's limit is %d" % (len(b.nodes), MAX_NODES))

    def spec_of(t, is_input):
        dims = b.dims(t.name)
        if dims is None:
            fail("the shape of %s \"%s\" is not known after folding" %
                 ("input" if is_input else "output", t.name))
        if dims[0] != -1:
            fail("%s \"%s\" has no batch dimension in dim 0 (its dims: %s)" %
                 ("input" if is_input else "output", t.name, dims))
        et = b.s3.etype.get(t.name, t.type.tensor_type.elem_type)
        return {"name": t.name, "dtype": io_dtype(et, t.name), "shape": dims}

    manifest = {
        "format": 1,
        "inputs": [spec_of(i, True) for i in inputs],
        "outputs": [spec_of(t, False) for t in g.output],
        "graph": {"nodes": b.nodes},
        "weights": [{"name": k, "dtype": {"float32": "f32", "int64": "i64", "int32": "i32"}[
            str(v.dtype)], "shape": list(v.shape)} for k, v in
                    b.weights.items()],
        "deploy": {"max_rows": o.max_rows, "max_batch": max(o.max_batch, o.max_rows),
                   "slots": o.slots},
    }
    n_params = sum(int(v.size) for v in b.weights.values())
    summary = "%s: %d ONNX nodes became %d swarm nodes and %d weights (%.2f M values)" % (
        os.path.basename(o.model), len(g.node), len(b.nodes), len(b.weights), n_params / 1e6)
    if o.check:
        print(summary)
        print("every node maps onto swarm's ops")
        return
    out_dir = o.out or tempfile.mkdtemp(prefix="swarm-import-")
    os.makedirs(out_dir, exist_ok=True)
    mpath = os.path.join(out_dir, o.name + ".json")
    wpath = os.path.join(out_dir, o.name + ".safetensors")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from safetensors_writer import write_safetensors  # tools/safetensors_writer.py
    st = {"float32": "F32", "int64": "I64", "int32": "I32"}
    # widest first keeps every tensor aligned to its dtype
    items = sorted(b.weights.items(), key=lambda kv: -kv[1].dtype.itemsize)
    write_safetensors(wpath, [(k, st[str(v.dtype)], list(v.shape), v.tobytes())
                              for k, v in items])
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1)
    print(summary)
    if o.no_publish:
        print("wrote %s and %s" % (mpath, wpath))
        return
    cmd = [o.swarm, "registry", "publish", o.name, "--weights", wpath, "--manifest", mpath]
    if o.registry:
        cmd += ["--registry", o.registry]
    if o.activate:
        cmd.append("--activate")
    rc = subprocess.call(cmd)
    if not o.out:
        shutil.rmtree(out_dir, ignore_errors=True)
    if rc:
        fail("publishing failed (%s exited %d): nothing was published" % (" ".join(cmd), rc))


if __name__ == "__main__":
    main()
