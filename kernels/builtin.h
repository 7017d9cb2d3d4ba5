/* builtin.h: the models every worker serves without a registry.
 *
 * Until the registry (and the graph executor) exist, a model is a name, a version, its
 * declared input and output specifications, its deployment defaults, and a function that
 * computes its outputs for a number of rows. Both built-ins run on the CPU:
 *   identity  y = x   (u8 [-1, 64]: 64 bytes a row; for benchmarks, up to 16 MiB a request)
 *   affine    y = scale * x + bias, elementwise (f32 [-1, 16]; weights "scale" and "bias",
 *             f32 [16] each; served without a registry with scale 2 and bias 1)
 * A registry manifest names one as its graph ({"graph": {"builtin": "affine"}}) and supplies
 * the weights from its safetensors file.
 */
#ifndef SWARM_KERNELS_BUILTIN_H
#define SWARM_KERNELS_BUILTIN_H

#include <stdint.h>

#include "swarm/swarm.h"

enum swarm_builtin_id {
	SWARM_MODEL_IDENTITY = 1,
	SWARM_MODEL_AFFINE = 2,
};

#define SWARM_BUILTIN_MAX_WEIGHTS 4

/* A weight tensor a built-in model needs. */
struct swarm_weight_spec {
	const char *name;
	uint32_t dtype; /* a swarm_dtype */
	uint32_t ndim;
	int64_t shape[4];
};

struct swarm_model_desc {
	const char *name;
	uint32_t id; /* a swarm_builtin_id */
	uint32_t version;
	uint32_t n_inputs;
	uint32_t n_outputs;
	swarm_tensor_spec inputs[SWARM_MAX_TENSORS];
	swarm_tensor_spec outputs[SWARM_MAX_TENSORS];
	uint32_t default_slots;
	uint32_t max_rows; /* the largest request the model accepts */
	uint32_t n_weights;
	struct swarm_weight_spec weights[SWARM_BUILTIN_MAX_WEIGHTS];
	const void *default_weights[SWARM_BUILTIN_MAX_WEIGHTS]; /* served without a registry */
	/* Computes rows rows: in[i] and out[i] point at tensor i of one request (rows *
	 * row_bytes bytes each), w[i] at weight i (in the order of weights[]). The request
	 * memory may be shared with an untrusted client: the function must stay in bounds
	 * whatever the bytes hold. Returns 0 or -errno. */
	int (*run)(const void *const *in, void *const *out, uint32_t rows, const void *const *w);
};

/* The model called name at version (0: the newest), or NULL. */
const struct swarm_model_desc *swarm_builtin_find(const char *name, uint32_t version);

/* The model with this id, or NULL. */
const struct swarm_model_desc *swarm_builtin_by_id(uint32_t id);

/* The built-in models, for listings: *n receives their count. */
const struct swarm_model_desc *swarm_builtin_all(uint32_t *n);

#endif /* SWARM_KERNELS_BUILTIN_H */
