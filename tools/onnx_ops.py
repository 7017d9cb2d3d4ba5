"""onnx_ops.py: the ONNX importer's mapping onto swarm's ops (tools/import-onnx.py, step 4 of
its docstring): the Builder that names swarm's tensors and stores weights once, one converter
per ONNX op type (MAP), and the check that every output keeps the batch in dim 0. A converter
raises Unsupported naming what swarm lacks."""
import hashlib
import re

from onnx_common import BATCHES, INT_BIG, MAX_DIMS, TENSOR_NAME_MAX, Unsupported, attr, np, onnx


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
