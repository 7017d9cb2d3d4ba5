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
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The importer's parts, beside this file: onnx_common.py checks for onnx and numpy first.
from onnx_common import (BATCHES, MANIFEST_MAX_WEIGHTS, MAX_DIMS, MAX_IO, MAX_NODES, OPSETS,
                         PROG, SWARM_NAME_MAX, Unsupported, attr, fail, helper, node_label, np,
                         numpy_helper, onnx, ReferenceEvaluator, shape_inference, tensor_dims,
                         toposort)
from onnx_ops import MAP, Builder, check_batch  # the mapping onto swarm's ops
from onnx_rewrite import rewrite  # the graph rewrites


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


# ---- specialising at a batch size: shape inference and constant folding --------------------------


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


def parse_args():
    """The command line, its values checked (exit status 2 when one is wrong)."""
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
    return o


def given_dims(o, inputs):
    """The --input NAME=DIMS given, by input name."""
    given = {}
    for spec in o.input:
        if "=" not in spec:
            fail("--input \"%s\": give NAME=DIMS" % spec, 2)
        k, v = spec.split("=", 1)
        if k not in {i.name for i in inputs}:
            fail("--input %s: the model has no input of that name (it has: %s)" %
                 (k, ", ".join(i.name for i in inputs)), 2)
        given[k] = parse_dims(v)
    return given


def input_dims_of(o, g, inputs):
    """Every input's dims, from the model or --input, all fixed but the batch; the inputs' and
    outputs' count and names checked against swarm's limits."""
    given = given_dims(o, inputs)
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
    return input_dims


def map_nodes(o, b, s3):
    """Each node of s3 onto swarm's ops through b; with --check, every node that cannot run is
    listed and the importer exits 1, else the first one ends it."""
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


def name_outputs(b, g):
    """Graph outputs that are aliases of other tensors (an Identity at the end): the tensor
    takes the output's name where nothing else is called by it, else a copy."""
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


def make_manifest(o, b, g, inputs):
    """The manifest: inputs and outputs with the batch as -1 in dim 0, the graph, the weights'
    table and the deploy settings."""
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

    return {
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


def write_and_publish(o, b, manifest, summary):
    """NAME.json and NAME.safetensors into --out (or a temporary folder), then `swarm registry
    publish` unless --no-publish."""
    out_dir = o.out or tempfile.mkdtemp(prefix="swarm-import-")
    os.makedirs(out_dir, exist_ok=True)
    mpath = os.path.join(out_dir, o.name + ".json")
    wpath = os.path.join(out_dir, o.name + ".safetensors")
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


def main():
    o = parse_args()
    model, opset = load_model(o.model)
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    input_dims = input_dims_of(o, g, inputs)

    s3 = specialise(model, opset, input_dims, BATCHES[0])
    s5 = specialise(model, opset, input_dims, BATCHES[1])
    for spec in (s3, s5):
        rewrite(spec, {t.name for t in g.output})
    if [n.output[0] for n in s3.nodes] != [n.output[0] for n in s5.nodes]:
        fail("the graph folds differently at two batch sizes: a node's work depends on the "
             "batch in a way swarm cannot serve")
    b = Builder(s3, s5, [t.name for t in g.output], [i.name for i in inputs])
    b.opset = opset
    map_nodes(o, b, s3)
    name_outputs(b, g)
    manifest = make_manifest(o, b, g, inputs)
    n_params = sum(int(v.size) for v in b.weights.values())
    summary = "%s: %d ONNX nodes became %d swarm nodes and %d weights (%.2f M values)" % (
        os.path.basename(o.model), len(g.node), len(b.nodes), len(b.weights), n_params / 1e6)
    if o.check:
        print(summary)
        print("every node maps onto swarm's ops")
        return
    write_and_publish(o, b, manifest, summary)


if __name__ == "__main__":
    main()
