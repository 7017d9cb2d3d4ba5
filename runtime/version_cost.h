/* version_cost.h: what a loaded model version costs a device in memory (issue 18, DESIGN.md
 * "Many models, few devices"): its weights, the arena its graph plans at the largest batch it
 * runs, what the device prepared of its weights (the CPU's packed copies), and dynamic
 * batching's gather buffers. The residency policy (runtime/residency.h)
 * counts weights once per device where versions share a blob, and the rest per version.
 *
 * swarm_version_cost_estimate computes the cost before anything is loaded, from the registry,
 * as a worker on a CPU device would allocate it (`swarm registry show` prints it); the rules
 * it follows (swarm_version_plan_rows, swarm_version_batch_buffer_bytes) are the worker's
 * own, so that an estimate and a worker's load agree on the CPU. A worker on a GPU plans a
 * staged arena (staging buffers for every input and output at the end of it,
 * kernels/graph.h), so what it measures may be more.
 */
#ifndef SWARM_RUNTIME_VERSION_COST_H
#define SWARM_RUNTIME_VERSION_COST_H

#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

/* What computes on a version, which decides what its arena is. */
enum swarm_version_cost_kind {
	SWARM_VERSION_COST_GRAPH = 0, /* a node-list graph: arena as planned */
	SWARM_VERSION_COST_BUILTIN,   /* a built-in model: no arena */
	SWARM_VERSION_COST_BACKEND,   /* a custom backend: its own memory is not seen (arena 0) */
};

struct swarm_version_cost {
	uint64_t weights;   /* the weights blob's bytes on the device (on the CPU counted at full
			     * size, although it reads them in place from the mapping) */
	uint64_t arena;     /* swarm_graph_arena_bytes of the plan for rows rows; 0 for a built-in
			     * model or a custom backend */
	uint64_t batch;     /* dynamic batching's gather buffers: max_batch rows of every input and
			     * output; 0 when max_batch <= 1 */
	uint64_t prepared;  /* swarm_graph_prepared_bytes of that plan: the CPU device's packed
			     * copies of LINEAR's and the convs' weights, beside the weights; 0
			     * for a built-in model or a custom backend */
	uint32_t rows;      /* the rows the arena is planned for (swarm_version_plan_rows) */
	uint32_t max_batch; /* deploy.max_batch, which batch is sized for */
	int kind;           /* an enum swarm_version_cost_kind */
};

/* weights + arena + batch + prepared, saturating at UINT64_MAX. */
uint64_t swarm_version_cost_total(const struct swarm_version_cost *c);

/* One gather buffer's bytes: max_batch rows of row bytes, rounded up to 64 (it is allocated
 * 64-byte aligned, and pinned at that size where the device pins). */
uint64_t swarm_version_batch_buffer_bytes(uint32_t max_batch, uint64_t row);

/* The gather buffers' bytes for inputs and outputs of the given row bytes: one buffer of
 * swarm_version_batch_buffer_bytes for each, 0 when max_batch <= 1 (no batching). Saturates
 * at UINT64_MAX. */
uint64_t swarm_version_cost_batch(const uint64_t *in_row, uint32_t n_in, const uint64_t *out_row,
				  uint32_t n_out, uint32_t max_batch);

/* The rows a version's graph is planned for: the largest request (deploy.max_rows) or the
 * largest batch (deploy.max_batch), whichever is more, and at least 1. */
uint32_t swarm_version_plan_rows(uint32_t max_rows, uint32_t max_batch);

/* The cost of name@version (0: the active version) of the open registry r, as a worker on a
 * CPU device would allocate it: maps the version's weights blob read-only (no copy, no
 * verification), builds its node-list graph on a CPU device of its own for
 * swarm_version_plan_rows rows as the worker does, reads the arena and the prepared bytes,
 * and frees everything. A
 * built-in model or a custom backend is not loaded (arena 0; kind says which). Returns 0, or
 * -ENOENT (no such model or version, or a blob is missing), -EBADMSG, -EINVAL (the graph
 * does not plan on the CPU), -ENOTSUP (an op the CPU does not run) or -ENOMEM, with a
 * message in err; *out is zeroed on failure. Thread-safe as far as r is (one per thread). */
int swarm_version_cost_estimate(const struct swarm_registry *r, const char *name, uint32_t version,
				struct swarm_version_cost *out, char *err, size_t err_len);

#endif /* SWARM_RUNTIME_VERSION_COST_H */
