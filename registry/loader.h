/* loader.h: loading a version's weights blob for computing on it in place or on a device (the
 * device half, uploading and sharing the tensors and building graphs on them, is
 * runtime/device_weights.h).
 *
 * The blob is mmap'd read-only and shared, so that every worker (and every version that
 * shares the blob) uses the page cache's one copy; the CPU device computes on the mapping
 * itself. For the CPU, loading touches every page once (the first touch, so that the first
 * request does not pay for page faults) and, unless asked not to, verifies the blob's SHA-256
 * in the same pass, so a blob whose bytes changed on disk is refused here. For a device with
 * memory of its own (a GPU) the pages are not touched: the upload reads the blob (the blob
 * reader's modes, registry/blob_reader.h) and hashes it as it goes. It reports bytes and time.
 * No device and no graph here: the registry reads blobs, the runtime puts them on devices.
 */
#ifndef SWARM_REGISTRY_LOADER_H
#define SWARM_REGISTRY_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/safetensors.h"

struct swarm_weights {
	void *map;
	size_t bytes;
	struct swarm_st_file st;
	uint64_t load_ns; /* mmap, first touch (and verify), parse */
	char *path;       /* the blob's, for the upload's reader */
	char sha[65];     /* a verification left to the upload (touch 0), or "" */
};

/* SHA-256 of buf as 64 lowercase hex digits and a NUL. */
void swarm_sha256_hex(const void *buf, size_t len, char out[65]);

/* Maps path, checks that it holds exactly bytes bytes (0: any size), touches every page,
 * checks its SHA-256 against sha_hex when verify is set (NULL or verify 0: no check), and
 * parses it as safetensors. Returns 0, -ENOENT, -EBADMSG (size or hash differs: the message
 * says which) or -EINVAL (not a valid safetensors file), with a message in err. */
int swarm_weights_load(const char *path, uint64_t bytes, const char *sha_hex, int verify,
		       struct swarm_weights *out, char *err, size_t err_len);

/* The same, but with touch 0 the pages are left alone (no first touch) and a verification is
 * left to the upload, which reads every byte anyway (out->sha is set):
 * swarm_graph_from_weights_load (runtime/device_weights.h) then verifies. For a device whose
 * memory is not host memory. */
int swarm_weights_open(const char *path, uint64_t bytes, const char *sha_hex, int verify, int touch,
		       struct swarm_weights *out, char *err, size_t err_len);

/* Unmaps and frees what swarm_weights_load made. */
void swarm_weights_unload(struct swarm_weights *w);

/* t (a tensor of a parsed file) as a kernels tensor: its dtype and shape, data as given.
 * Returns 0, or -EINVAL when no kernels tensor can hold it (more than SWARM_TENSOR_MAX_DIMS
 * dims, a dtype swarm does not compute on). */
int swarm_st_tensor_fill(const struct swarm_st_tensor *t, void *data, struct swarm_tensor *out);

/* A swarm_graph_weight_fn (kernels/graph.h) over a mapped file, for a device whose memory is
 * host memory (the CPU computes on the mapping): ctx is a struct swarm_weights_view with map
 * and st set; the returned tensor points into the mapping and lives in the view until the
 * next lookup (swarm_graph_build copies it). */
struct swarm_weights_view {
	const void *map;
	const struct swarm_st_file *st;
	struct swarm_tensor t;
};
const struct swarm_tensor *swarm_weights_view_lookup(void *ctx, const char *name);

#endif /* SWARM_REGISTRY_LOADER_H */
