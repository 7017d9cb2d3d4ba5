/* graph.h: the graph executor. It turns a manifest's node list ("graph": {"nodes": [...]},
 * docs/graph.md) into a plan for one device and one max batch, once, and then runs that plan
 * per batch without allocating.
 *
 * Building resolves every node input to a manifest input, a weight or an earlier node's
 * output, infers every intermediate's dtype and shape from the op contracts in device.h
 * (refusing what does not fit, naming the node), and plans one arena for the intermediates
 * with liveness-based reuse: a tensor lives from the node that produces it to the last node
 * that reads it, and tensors whose lifetimes do not overlap share bytes (greedy first-fit,
 * 64-byte aligned). Inputs and outputs are the caller's buffers and never in the arena.
 * A graph is not thread-safe: one thread runs it at a time (its tensors carry the batch).
 */
#ifndef SWARM_KERNELS_GRAPH_H
#define SWARM_KERNELS_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/device.h"
#include "registry/manifest.h"

struct swarm_graph;

/* Looks a weight up by name for swarm_graph_build: the tensor (device memory of the graph's
 * device, fixed shape), or NULL when there is no weight of that name. The tensor's storage
 * must outlive the graph; the struct itself is copied. */
typedef const struct swarm_tensor *(*swarm_graph_weight_fn)(void *ctx, const char *name);

/* Builds the plan of m's node list for dev and batches of up to max_batch rows, allocating
 * its arena (intermediates and constants) once through dev. Returns 0 with *out set, -EINVAL
 * with the node and the problem in err (an unresolved or misused name, a shape or dtype that
 * does not fit, an output no node produces), -ENOTSUP when the device does not take a node,
 * -ENOMEM. m and the callback are not used after it returns. Thread-safe. */
int swarm_graph_build(const struct swarm_manifest *m, swarm_graph_weight_fn weight, void *ctx,
		      struct swarm_device *dev, uint32_t max_batch, struct swarm_graph **out,
		      char *err, size_t err_len);

/* Runs the graph on rows (1..max_batch) rows: inputs[i] and outputs[i] are device memory of
 * rows * row_bytes bytes for the manifest's inputs and outputs, in its order. Runs every node
 * through dev->i->run and allocates nothing. Returns 0, -EINVAL (rows out of range), or the
 * first failing node's code. On a device with synchronize, the work may still be queued:
 * synchronize before reading the outputs. */
int swarm_graph_run(struct swarm_graph *g, uint32_t rows, const void *const *inputs,
		    void *const *outputs);

/* Frees the arena and the plan; g is invalid after it. NULL is a no-op. */
void swarm_graph_free(struct swarm_graph *g);

/* The arena's bytes as planned (intermediates with reuse, constants included), and the bytes
 * the intermediates would take without reuse (each 64-byte aligned, constants included). */
size_t swarm_graph_arena_bytes(const struct swarm_graph *g);
size_t swarm_graph_naive_bytes(const struct swarm_graph *g);

/* Nodes in the plan (the manifest's, in its order). */
uint32_t swarm_graph_nodes(const struct swarm_graph *g);

/* The largest batch the plan takes (swarm_graph_build's max_batch). */
uint32_t swarm_graph_max_batch(const struct swarm_graph *g);

#endif /* SWARM_KERNELS_GRAPH_H */
