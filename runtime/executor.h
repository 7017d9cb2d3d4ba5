/* executor.h: what runs a loaded model version's requests, behind one small interface with
 * three implementations: a built-in model (kernels/builtin.h), a node-list graph planned on the
 * worker's device (kernels/graph.h), and a custom backend (include/swarm/swarm_backend.h). The
 * worker holds one per version and runs, checks and frees it without knowing which it is; the
 * graph's further abilities (a batch straight from the clients' slots, requests whose tensors
 * are in GPU memory) are reached through swarm_executor_graph.
 *
 * Not thread-safe: one thread (the worker's) uses an executor.
 */
#ifndef SWARM_RUNTIME_EXECUTOR_H
#define SWARM_RUNTIME_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/builtin.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "registry/manifest.h"

struct swarm_executor;

struct swarm_executor_i {
	const char *kind; /* "builtin", "nodes" or "backend": what the logs call it */
	/* Runs rows rows: in[i] and out[i] hold rows * row_bytes bytes of the model's tensor i
	 * (host memory; the graph's device staging, if any, is its own business). Returns 0 or
	 * -errno; the outputs are ready when it returns. */
	int (*run)(struct swarm_executor *x, const void *const *in, void *const *out,
		   uint32_t rows);
	/* 1 when a request of max_rows rows can run (the model's or the plan's limit), else 0 */
	int (*fits)(const struct swarm_executor *x, uint32_t max_rows);
	/* Frees everything the executor holds; x is invalid after it. */
	void (*free)(struct swarm_executor *x);
};

struct swarm_executor {
	const struct swarm_executor_i *i;
};

/* A built-in model over its weights (weights[i] for desc->weights[i], memory that outlives
 * the executor: a mapping, or the model's defaults). Returns 0 or -ENOMEM. */
int swarm_executor_builtin(const struct swarm_model_desc *desc, const void *const *weights,
			   struct swarm_executor **out);

/* A planned graph, which the executor now owns (freed with it). Returns 0, -EINVAL (g NULL)
 * or -ENOMEM (g is then still the caller's). */
int swarm_executor_graph_take(struct swarm_graph *g, struct swarm_executor **out);

/* The custom backend at path (a shared object implementing swarm_backend.h) for manifest m,
 * given the tensors of w (mapped, which must outlive the executor) and batches of up to
 * max_batch rows. Returns 0, -ENOENT (cannot load), -EPROTO (no entry point, another ABI),
 * -ENOMEM, or the backend's init or load error, with the reason in why; nothing stays loaded
 * on failure. */
int swarm_executor_backend(const char *path, const struct swarm_manifest *m,
			   const struct swarm_weights *w, uint32_t max_batch,
			   struct swarm_executor **out, char *why, size_t why_len);

/* The graph of a graph executor, NULL for the other kinds (and for NULL). */
struct swarm_graph *swarm_executor_graph(const struct swarm_executor *x);

/* x->i->free(x), and nothing for NULL. */
void swarm_executor_free(struct swarm_executor *x);

#endif /* SWARM_RUNTIME_EXECUTOR_H */
