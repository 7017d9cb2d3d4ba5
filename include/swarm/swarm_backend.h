/* swarm_backend.h: custom model backends, for what a graph of swarm's ops cannot express.
 *
 * A backend is a shared object that exports swarm_backend_entry(), returning a table of four
 * functions. A model's manifest names it in place of a graph:
 *
 *   "graph": {"backend": "libmy_backend.so", "config": "free-form text for init"}
 *
 * A relative name is looked up in swarmd's --backend-dir; an absolute path is used as is.
 * The worker serving the model loads it (dlopen), checks its ABI version, then calls
 * init once, load once with a view of the version's weights (the mapped safetensors file:
 * read-only, valid until destroy), execute once per batch, and destroy when the version is
 * unloaded. All calls come from the worker's one thread; a backend needs no locking unless it
 * starts threads of its own. A backend runs inside the worker process: it is trusted code,
 * as the registry that names it is.
 *
 * Errors: each function returns 0 or a negative errno; execute's error becomes the status of
 * every request of the batch.
 */
#ifndef SWARM_SWARM_BACKEND_H
#define SWARM_SWARM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/swarm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend ABI version; a backend built against another is refused. */
#define SWARM_BACKEND_ABI_VERSION 1u

/* A weight tensor of the version, in the mapped weights file. */
struct swarm_backend_tensor {
	const char *name;
	uint32_t dtype; /* a swarm_dtype; 0 for a safetensors dtype swarm does not compute on */
	uint32_t ndim;
	int64_t shape[8];
	const void *data; /* read-only */
	uint64_t bytes;
};

struct swarm_backend_weights {
	uint32_t n;
	const struct swarm_backend_tensor *tensors;
};

/* What load learns about the model. */
struct swarm_backend_model {
	uint32_t n_inputs, n_outputs;
	const swarm_tensor_spec *inputs; /* shape[0] is -1, the batch */
	const swarm_tensor_spec *outputs;
	uint32_t max_batch; /* the most rows execute will be given */
	const char *config; /* the manifest's graph.config, "" when absent */
};

/* One batch: rows rows of each input (rows * row_bytes bytes, row after row), to be answered
 * with rows rows of each output. */
struct swarm_backend_batch {
	uint32_t rows;
	const void *const *inputs;
	void *const *outputs;
};

struct swarm_backend {
	uint32_t abi_version; /* SWARM_BACKEND_ABI_VERSION */
	uint32_t struct_size; /* sizeof(struct swarm_backend) */
	const char *name;
	/* Creates the backend's state. */
	int (*init)(const struct swarm_backend_model *model, void **state);
	/* Takes the weights (keep pointers into them; they stay mapped until destroy). */
	int (*load)(void *state, const struct swarm_backend_weights *weights);
	/* Computes one batch. */
	int (*execute)(void *state, const struct swarm_backend_batch *batch);
	/* Frees the state; nothing is called after it. */
	void (*destroy)(void *state);
};

/* The one symbol a backend exports. */
#define SWARM_BACKEND_ENTRY "swarm_backend_entry"
typedef const struct swarm_backend *(*swarm_backend_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* SWARM_SWARM_BACKEND_H */
