/* graph_desc.h: the description of a graph that the executor (kernels/graph.h) consumes: the
 * model's inputs and outputs, and its node list by tensor names. It belongs to kernels/, which
 * runs it; the registry produces it from a manifest's "graph": {"nodes": [...]}
 * (registry/manifest.h, swarm_manifest_graph_desc) and an importer produces the manifest.
 *
 * A plain C header: no registry type, so kernels/ includes nothing of registry/.
 */
#ifndef SWARM_KERNELS_GRAPH_DESC_H
#define SWARM_KERNELS_GRAPH_DESC_H

#include <stdint.h>

#include "kernels/device.h"
#include "swarm/swarm.h"

#define SWARM_GRAPH_MAX_NODES 2048
#define SWARM_GRAPH_MAX_NAMES 4096 /* distinct tensor names in one node list */
#define SWARM_GRAPH_NAME_MAX 128  /* a tensor name, NUL included (safetensors' limit too) */

/* One node: its op, its inputs and output as indexes into swarm_graph_spec.names, and the
 * op's parameters (those an op does not take stay zero; swarm_op_info says which it takes). */
struct swarm_graph_node_spec {
	uint32_t op;   /* an enum swarm_op */
	uint32_t n_in; /* checked against the op: 1..SWARM_NODE_MAX_INPUTS */
	uint16_t in[SWARM_NODE_MAX_INPUTS];
	uint16_t out;
	uint16_t reserved;
	struct swarm_op_params p;
};

/* A node list, in order of execution, and the names it uses. */
struct swarm_graph_spec {
	uint32_t n_nodes;
	uint32_t n_names;
	struct swarm_graph_node_spec nodes[SWARM_GRAPH_MAX_NODES];
	char names[SWARM_GRAPH_MAX_NAMES][SWARM_GRAPH_NAME_MAX];
};

/* What swarm_graph_build takes: the model's inputs and outputs (shape[0] of each is -1, the
 * batch dimension; names resolved against spec's), and the node list. Pointers, not copies:
 * they need live only through the build. */
struct swarm_graph_desc {
	uint32_t n_inputs, n_outputs; /* at most SWARM_MAX_TENSORS each */
	const swarm_tensor_spec *inputs;
	const swarm_tensor_spec *outputs;
	const struct swarm_graph_spec *spec;
};

#endif /* SWARM_KERNELS_GRAPH_DESC_H */
