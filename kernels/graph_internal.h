/* graph_internal.h: the structures of the graph executor (graph.h), shared by its build
 * (graph.c), its fusions and arena plan (graph_plan.c) and its runs (graph_run.c). Internal
 * to kernels/. */
#ifndef SWARM_KERNELS_GRAPH_INTERNAL_H
#define SWARM_KERNELS_GRAPH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/graph.h"
#include "kernels/op.h"

#define ARENA_ALIGN 64
#define SHAPE_STR 96

enum tensor_kind {
	T_INPUT,  /* a model input: the caller's buffer, bound per run */
	T_OUTPUT, /* a node output that is a model output: the caller's buffer */
	T_WEIGHT, /* from the weight callback */
	T_INTER,  /* a node output in the arena */
	T_CONST,  /* built here (EMBEDDING_BAG offsets), after the arena's reused part */
	T_VIEW,   /* another tensor's bytes under another shape (EMBEDDING_BAG ids as [B*K]) */
	T_FUSED,  /* what a fusion left unstored (a fused concat's or conv's output): a shape */
};

struct gtensor {
	struct swarm_tensor t; /* what the nodes point at */
	uint32_t kind;         /* an enum tensor_kind */
	uint32_t io;           /* T_INPUT, T_OUTPUT: the model's index of it */
	int64_t batch_mult;    /* 0: fixed shape; else shape[0] = rows * batch_mult */
	int32_t base;          /* T_VIEW: the tensor it views */
	int32_t first, last;   /* producing node (-1 for inputs, weights) and last reader */
	size_t bytes;          /* at max_batch */
	size_t offset;         /* T_INTER, T_CONST: in the arena */
};

struct swarm_graph {
	struct swarm_device *dev;
	uint32_t max_batch;
	uint32_t n_inputs, n_outputs, n_nodes, n_tensors;
	int32_t input_t[SWARM_MAX_TENSORS];
	int32_t output_t[SWARM_MAX_TENSORS];
	struct gtensor *tensors;
	struct swarm_node *nodes;
	void *arena;
	size_t arena_bytes, naive_bytes;
	size_t prepared_bytes; /* the device's prep_bytes summed over the nodes' preps */
	/* The device's memory is not host memory: inputs and outputs are T_INPUT and T_OUTPUT
	 * tensors with staging buffers in the arena, and runs copy through them. */
	bool staged;
	/* Captured node lists (staged devices with capture hooks): execs[rows - 1] for rows
	 * 1..n_execs, NULL until that rows value first runs. capture_off is set for good when
	 * a capture fails, and runs then go direct. */
	void **execs;
	uint8_t *warm; /* warm[rows - 1]: that rows value has run once directly */
	uint32_t n_execs;
	bool capture_off;
	/* Staged devices: room for one copy list of swarm_graph_run_parts (a piece per part and
	 * input, or per part and output: max_batch * max(n_inputs, n_outputs)), made at build
	 * so that a run allocates nothing. */
	struct swarm_copy *pieces;
	uint32_t n_pieces;
	void *owned; /* device memory freed with the graph (swarm_graph_adopt), or NULL */
	void *held;  /* a reference dropped with held_put when the graph goes (swarm_graph_hold) */
	void (*held_put)(void *ref);
	uint64_t *prof; /* swarm_graph_profile's per-node sums, or NULL */
};

/* What only the build needs. */
struct build {
	const struct swarm_graph_desc *m;
	const struct swarm_graph_spec *spec;
	swarm_graph_weight_fn weight;
	void *ctx;
	struct swarm_graph *g;
	int32_t *name_t; /* per spec name: its tensor, -1 before it exists */
	int32_t (*node_in)[SWARM_NODE_MAX_INPUTS]; /* per node: its inputs' tensors */
	uint32_t *node_n_in;
	int32_t *node_out;
	bool *elided;      /* per node: a reshape made a view, or a concat fused, not run */
	int32_t *parts_of; /* per node: the concat fused into its input 0, or -1 */
	int32_t *sum_of;   /* per node: the tensor a fused ADD adds to its output, or -1 */
	char *err;
	size_t err_len;
	size_t cap; /* the tensors the graph has room for */
};

/* Writes a refusal into the build's error text (printf-style). Returns rc. */
__attribute__((format(printf, 3, 4))) int graph_fail(struct build *b, int rc, const char *fmt, ...);

/* ---- graph_plan.c: fusions, sizes and the arena ------------------------------------------- */

void graph_fuse_concats(struct build *b);
void graph_fuse_sums(struct build *b);
int graph_size_tensors(struct build *b);
int graph_plan_arena(struct build *b);
int graph_place(struct build *b);
void graph_provisional_node(const struct build *b, uint32_t j, struct swarm_node *node);

#endif /* SWARM_KERNELS_GRAPH_INTERNAL_H */
