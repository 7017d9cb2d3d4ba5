"""onnx_rewrite.py: the ONNX importer's graph rewrites (tools/import-onnx.py, step 4 of its
docstring): what exporters spell in several nodes, made one before the nodes are mapped onto
swarm's ops (a per-channel affine after a Conv folded into it, GELU and hard-swish spelled out
made one node), with Identity and Dropout read through."""
from onnx_common import attr, helper, np, toposort


def read_through(spec, graph_outputs):
    """Identity and Dropout (inference: identity) read through, so patterns see across them:
    their readers read their input instead, and they leave spec's nodes."""
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


def rewrite(spec, graph_outputs):
    """Rewrites spec's nodes in place, until nothing changes: an Add, Sub, Mul or Div of a
    per-channel constant after a Conv or ConvTranspose folded into its weights and bias
    (Paddle writes the bias as an Add); GELU spelled with Erf made one Gelu node; hard-swish spelled with Add,
    Clip (or HardSigmoid), Mul and Div made one HardSwish node. A tensor inside a pattern
    must have one reader and be no graph output. Both specialisations get the same rewrites
    (the patterns do not depend on the batch), so their node lists stay alike."""
    k = [0]
    read_through(spec, graph_outputs)

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
