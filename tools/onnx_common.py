"""onnx_common.py: what every part of the ONNX importer (tools/import-onnx.py) shares: swarm's
limits, how it fails (a message and an exit status), the onnx and numpy packages (refused with
one message when missing), and the small readers of an ONNX graph (a node's label and
attributes, a tensor's dims, the topological check)."""
import sys

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


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def tensor_dims(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


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
