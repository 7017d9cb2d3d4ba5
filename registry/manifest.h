/* manifest.h: a model version's JSON manifest, parsed with jansson and checked.
 *
 *   {
 *     "format": 1,
 *     "inputs":  [{"name": "x", "dtype": "f32", "shape": [-1, 16]}],
 *     "outputs": [{"name": "y", "dtype": "f32", "shape": [-1, 16]}],
 *     "graph":   {"builtin": "affine"},       or {"nodes": [{"op": "linear", ...}, ...]}
 *     "weights": [{"name": "scale", "dtype": "f32", "shape": [16]}, ...],
 *     "deploy":  {"max_rows": 1024, "max_batch": 64, "max_queue_delay_us": 100,
 *                 "slots": 8, "min_devices": 1, "max_devices": 1, "latency_p99_us": 1000}
 *   }
 *
 * dtypes are swarm's names (f32, f16, bf16, i32, i64, u8); shape[0] of an input or output is
 * -1, the batch dimension; weights have fixed shapes. "graph" names a built-in model or gives a
 * node list (docs/graph.md): the parser checks its structure (keys, op names, input counts,
 * parameters) and swarm_graph_build (kernels/graph.h) resolves the names and checks the shapes.
 * Every field is required except "deploy" and its members,
 * which default as documented in docs/manifest.md (the full format, limits and errors).
 * Unknown keys are refused at every level, so that a typo is not silently ignored.
 */
#ifndef SWARM_REGISTRY_MANIFEST_H
#define SWARM_REGISTRY_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/device.h"
#include "kernels/graph_desc.h"
#include "registry/safetensors.h"
#include "swarm/swarm.h"

#define SWARM_MANIFEST_MAX_WEIGHTS 2048
#define SWARM_MAX_BATCH_ROWS \
	65536 /* deploy.max_batch: the worker's batch buffers hold this many rows */
#define SWARM_MANIFEST_MAX_BYTES (1u << 20)

struct swarm_deploy_config {
	uint32_t max_rows;           /* the largest request; default 1024 */
	uint32_t max_batch;          /* rows per batch; default max_rows */
	uint32_t max_queue_delay_us; /* default 0: run what is ready */
	uint32_t slots;              /* slots per session; default 8 */
	uint32_t min_devices;        /* default 1 */
	uint32_t max_devices;        /* default 1; at least min_devices */
	uint32_t latency_p99_us;     /* the objective; default 0: none */
	uint32_t reserved;
};

#define SWARM_DEPLOY_MAX_DEVICES 16 /* deploy.devices: names it lists at most */

enum swarm_device_kind_constraint {
	SWARM_PLACE_ANY = 0,
	SWARM_PLACE_CPU = 1,
	SWARM_PLACE_GPU = 2,
};

/* Where the model may be placed, and how it ranks when room is short (docs/placement.md):
 * deploy.device_kind, deploy.devices, deploy.priority. Not in the registry's catalog (whose
 * deploy record is fixed): swarmd reads it from the manifest. */
struct swarm_placement_config {
	uint32_t kind;      /* a swarm_device_kind_constraint; default SWARM_PLACE_ANY */
	uint32_t priority;  /* 0..100, default 50: the lower is evicted first */
	uint32_t n_devices; /* 0: any device */
	char devices[SWARM_DEPLOY_MAX_DEVICES][32]; /* "cpu:1", "gpu:0" (and its instances) */
};

struct swarm_manifest_weight {
	char name[SWARM_ST_NAME_MAX];
	uint32_t dtype; /* a swarm_dtype */
	uint32_t ndim;
	int64_t shape[SWARM_ST_MAX_DIMS];
};

struct swarm_manifest {
	uint32_t format;
	uint32_t n_inputs;
	uint32_t n_outputs;
	swarm_tensor_spec inputs[SWARM_MAX_TENSORS]; /* row_bytes filled in by the parser */
	swarm_tensor_spec outputs[SWARM_MAX_TENSORS];
	char graph_builtin[SWARM_NAME_MAX]; /* "" when the graph is a node list or a backend */
	char graph_backend[256];            /* a custom backend's shared object, or "" */
	char graph_config[1024];            /* its configuration text, "" when none */
	struct swarm_graph_spec graph;      /* n_nodes 0 when the graph is builtin */
	uint32_t n_weights;
	struct swarm_manifest_weight weights[SWARM_MANIFEST_MAX_WEIGHTS];
	struct swarm_deploy_config deploy;
	struct swarm_placement_config place;
};

/* Parses and checks a manifest of len bytes (not necessarily NUL-terminated; at most
 * SWARM_MANIFEST_MAX_BYTES). Returns 0 with *m filled (row_bytes and deploy defaults
 * included), or -EINVAL with *m zeroed and a message naming the field and the problem in err
 * ("inputs[0].shape[0]: the batch dimension must be -1, not 4"). Thread-safe. */
int swarm_manifest_parse(const char *json, size_t len, struct swarm_manifest *m, char *err,
			 size_t err_len);

/* Checks the manifest against a parsed weights file: every weight it names exists with the
 * same dtype and shape (tensors the manifest does not name are allowed). Returns 0 or -EINVAL
 * with the weight and the difference in err. Thread-safe. */
int swarm_manifest_check_weights(const struct swarm_manifest *m, const struct swarm_st_file *st,
				 char *err, size_t err_len);

/* The executor's view of m's node list (kernels/graph_desc.h): pointers into m, valid while m
 * is. m must have a node list (graph.n_nodes > 0). */
void swarm_manifest_graph_desc(const struct swarm_manifest *m, struct swarm_graph_desc *d);

/* The swarm dtype for a name ("f32"), 0 when unknown. */
uint32_t swarm_dtype_from_name(const char *name);

#endif /* SWARM_REGISTRY_MANIFEST_H */
