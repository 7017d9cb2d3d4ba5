/* graph.h: the graph executor. It turns a node list (kernels/graph_desc.h: what a manifest's
 * "graph": {"nodes": [...]} describes, docs/graph.md) into a plan for one device and one max
 * batch, once, and then runs that plan per batch without allocating.
 *
 * Building resolves every node input to a model input, a weight or an earlier node's
 * output, infers every intermediate's dtype and shape from the op contracts in device.h
 * (refusing what does not fit, naming the node), and plans one arena for the intermediates
 * with liveness-based reuse: a tensor lives from the node that produces it to the last node
 * that reads it, and tensors whose lifetimes do not overlap share bytes (greedy first-fit,
 * 64-byte aligned). On a device whose memory is host memory (dev->i->host_memory, the CPU),
 * inputs and outputs are the caller's buffers and never in the arena.
 *
 * On a device whose memory is not host memory (host_memory 0, the GPU), the build also places
 * one staging buffer per model input and output, sized for max_batch, at the end of the
 * arena (the same one allocation), and a run copies through them: upload the caller's inputs,
 * run the nodes on the staging buffers, download into the caller's outputs, synchronise.
 * Every pointer the nodes see is then fixed, so on a device with the capture hooks the nodes
 * of a run of r rows (r <= SWARM_GRAPH_CAPTURE_ROWS) run directly the first time (a warm-up
 * that loads every kernel outside a capture), are captured at the second run of r rows, and
 * replayed by every later one; the copies stay outside the capture,
 * since the caller's pointers change from run to run. A capture that fails turns capture off
 * for the graph, which then runs its nodes directly.
 *
 * A graph is not thread-safe: one thread runs it at a time (its tensors carry the batch).
 */
#ifndef SWARM_KERNELS_GRAPH_H
#define SWARM_KERNELS_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/device.h"
#include "kernels/graph_desc.h"

struct swarm_graph;

/* Rows values that get a captured node list on a device with graph capture: 1..64. An exec
 * holds exact shapes, so each rows value needs its own; launch overhead, which replay saves,
 * matters for small batches, where the kernels themselves take microseconds; above 64 rows
 * the kernels' own time dominates and the nodes run directly. Rounding rows up to a power of
 * two instead would run padding rows, whose stale ids could fail an embedding. */
#define SWARM_GRAPH_CAPTURE_ROWS 64

/* Looks a weight up by name for swarm_graph_build: the tensor (device memory of the graph's
 * device, fixed shape), or NULL when there is no weight of that name. The tensor's storage
 * must outlive the graph; the struct itself is copied. */
typedef const struct swarm_tensor *(*swarm_graph_weight_fn)(void *ctx, const char *name);

/* Builds the plan of d's node list for dev and batches of up to max_batch rows, allocating
 * its arena (intermediates, constants and, on a staged device, the staging buffers) once
 * through dev. Returns 0 with *out set, -EINVAL
 * with the node and the problem in err (an unresolved or misused name, a shape or dtype that
 * does not fit, an output no node produces), -ENOTSUP when the device does not take a node,
 * -ENOMEM. d and the callback are not used after it returns. Thread-safe. */
int swarm_graph_build(const struct swarm_graph_desc *d, swarm_graph_weight_fn weight, void *ctx,
		      struct swarm_device *dev, uint32_t max_batch, struct swarm_graph **out,
		      char *err, size_t err_len);

/* Runs the graph on rows (1..max_batch) rows: inputs[i] and outputs[i] are buffers of
 * rows * row_bytes bytes for the model's inputs and outputs, in its order.
 * On a host-memory device they are device memory (= host memory), bound as they are: every
 * node runs through dev->i->run, nothing is allocated, and on a device with synchronize the
 * work may still be queued (synchronize before reading the outputs).
 * On a staged device (host_memory 0) they are host memory: the inputs are uploaded, the nodes
 * run (replayed from a capture where the device has one), the outputs downloaded, and the
 * device synchronised before it returns, so the outputs are ready. The second run of each
 * rows value up to SWARM_GRAPH_CAPTURE_ROWS captures (the device allocates the exec then);
 * later ones allocate nothing.
 * Returns 0, -EINVAL (rows out of range), the first failing copy's or node's code, or
 * synchronize's (-EINVAL for an index found out of range on the device); after a failure
 * the outputs are undefined. */
int swarm_graph_run(struct swarm_graph *g, uint32_t rows, const void *const *inputs,
		    void *const *outputs);

/* swarm_graph_run for callers some of whose buffers are already device memory of g's
 * device: bit i of in_dev (out_dev) set means inputs[i] (outputs[i]) is device memory, and
 * is copied device to device (dev->i->copy_d2d) into (out of) its staging buffer instead of
 * uploaded (downloaded). With both masks 0 it is swarm_graph_run. Returns what
 * swarm_graph_run does, and -ENOTSUP for a mask bit on a device that is not staged or has
 * no copy_d2d (the CPU). */
int swarm_graph_run_dev(struct swarm_graph *g, uint32_t rows, const void *const *inputs,
			void *const *outputs, uint32_t in_dev, uint32_t out_dev);

/* One request of a batch for swarm_graph_run_parts: rows rows, its inputs[i] and outputs[i]
 * host buffers of rows * row_bytes bytes for the model's inputs and outputs, in its order
 * (a client's slot, where the worker runs it). */
struct swarm_graph_part {
	const void *const *inputs;
	void *const *outputs;
	uint32_t rows;
};

/* Runs n_parts requests as one batch of their summed rows (1..max_batch) on a staged device
 * (host_memory 0) without gathering them on the host: part p's rows follow part p-1's in the
 * staging buffers. One dev->i->upload_many of every part's every input (piece by piece with
 * upload where the device has none), the nodes as swarm_graph_run runs them for the summed
 * rows (replayed from a capture where the device has one), one download_many of every output
 * into its part (or download piece by piece), then synchronize: the outputs are ready when it
 * returns. Allocates nothing (its piece table is made at build). Returns 0, -EINVAL (no parts,
 * a part of 0 rows or with a NULL buffer list, rows summed over max_batch, an output that does
 * not scale with the batch), -ENOTSUP on a host-memory device (the caller gathers into
 * contiguous buffers and calls swarm_graph_run), or the first failing copy's or node's code,
 * or synchronize's; after a failure every part's outputs are undefined. */
int swarm_graph_run_parts(struct swarm_graph *g, const struct swarm_graph_part *parts,
			  uint32_t n_parts);

/* 1 when g runs on a staged device (its memory is not host memory: inputs and outputs are
 * copied through staging buffers, and swarm_graph_run_parts takes batches), else 0. */
int swarm_graph_staged(const struct swarm_graph *g);

/* Gives g device memory of its device (mem from dev->i->alloc: the weights a loader
 * uploaded for it) to free in swarm_graph_free. Returns 0, -EINVAL, or -EBUSY when g already
 * holds some (it holds one). */
int swarm_graph_adopt(struct swarm_graph *g, void *mem);

/* Gives g a reference to something its nodes read and others may share (a refcounted copy
 * of weights, loader.h's swarm_dev_weights): put(ref) is called once, when g is freed, after
 * everything that points into it. Returns 0, -EINVAL, or -EBUSY when g already holds one. */
int swarm_graph_hold(struct swarm_graph *g, void (*put)(void *ref), void *ref);

/* Frees the captured execs, the arena, adopted memory and the plan, and drops the held
 * reference; g is invalid after it.
 * NULL is a no-op. */
void swarm_graph_free(struct swarm_graph *g);

/* Rows values that have a captured node list now (0 without capture). */
uint32_t swarm_graph_captured(const struct swarm_graph *g);

/* The arena's bytes as planned (intermediates with reuse, constants and staging buffers
 * included), and the bytes the intermediates would take without reuse (each 64-byte aligned,
 * constants and staging buffers included). */
size_t swarm_graph_arena_bytes(const struct swarm_graph *g);
size_t swarm_graph_naive_bytes(const struct swarm_graph *g);

/* The bytes the device's prepare made of the graph's weights at build (the CPU's packed
 * copies of LINEAR's and the convs' weights, held beside the weights themselves until
 * swarm_graph_free): its prep_bytes summed over the nodes; 0 where the device prepares
 * nothing or has no prep_bytes, and for NULL. */
size_t swarm_graph_prepared_bytes(const struct swarm_graph *g);

/* Nodes in the plan (the description's, in its order, without the reshapes made views). */
uint32_t swarm_graph_nodes(const struct swarm_graph *g);

/* Node k of the plan (NULL past the end): its op, tensors and parameters, for a profile. */
const struct swarm_node *swarm_graph_node(const struct swarm_graph *g, uint32_t k);

/* Per-node profiling, for benchmarks: with ns set (swarm_graph_nodes(g) entries), every later
 * run adds each node's time to ns[k], measured on the host around the device's run call (on an
 * asynchronous device that is the time to enqueue it, not to execute it); NULL stops it. A
 * replayed capture is one call and is not profiled. */
void swarm_graph_profile(struct swarm_graph *g, uint64_t *ns);

/* The largest batch the plan takes (swarm_graph_build's max_batch). */
uint32_t swarm_graph_max_batch(const struct swarm_graph *g);

#endif /* SWARM_KERNELS_GRAPH_H */
