/* device_weights.h: a version's weights on the device that runs it, and the graph built on
 * them: uploading a mapped safetensors blob to a device (streamed through the blob reader,
 * registry/blob_reader.h), sharing one device copy among versions and among workers on one
 * GPU, and building a manifest's node list on the result (kernels/graph.h). The registry
 * (registry/loader.h) maps and verifies blobs; this half is the runtime's, since it joins
 * the registry's files with kernels/' devices.
 */
#ifndef SWARM_RUNTIME_DEVICE_WEIGHTS_H
#define SWARM_RUNTIME_DEVICE_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/graph.h"
#include "registry/blob_reader.h"
#include "registry/loader.h"
#include "registry/manifest.h"
#include "registry/safetensors.h"

/* What copying a weights file to a device took (swarm_graph_from_weights_report). */
struct swarm_weights_upload {
	uint64_t bytes;    /* tensor bytes copied; 0 on a host-memory device (nothing copied) */
	uint64_t ns;       /* wall time of the copies and the final synchronize */
	double gbps;       /* bytes / ns, in 1e9 bytes a second; 0 when nothing was copied */
	uint32_t copies;   /* calls that copied: 1 when the whole data region went at once */
	uint32_t streamed; /* 1: through the device's upload_stream; 0: through upload */
	int mode;          /* the enum swarm_load_mode the bytes were read with (never auto) */
	int fell_back;     /* 1: not the mode asked for, note says why */
	char note[192];    /* the reader's note: what auto measured, why it fell back, or "" */
};

/* Copies bytes at file offset off of a mapped blob (map) to dst on dev as the loader does:
 * upload_stream through r (its fill, or with r in register mode the mapping itself, falling
 * back to pread when the device refuses), from the mapping when r is NULL, with upload where
 * the device has no upload_stream. Synchronous for upload_stream; upload's copies may still be
 * queued (synchronize). Returns 0 or -errno (r's error says more). */
int swarm_weights_stream(struct swarm_device *dev, struct swarm_blob_reader *r, void *dst,
			 const void *map, uint64_t off, uint64_t bytes);

/* A say in where a GPU load's weights come from (swarm_load_opts.hook): the NCCL fan-out's
 * receivers fill the allocation from the root's broadcast, and its root broadcasts once its
 * own copy is done (docs/devices.md, "NCCL fan-out"). */
struct swarm_weights_hook {
	/* Called with the device allocation planned for the file, before anything is copied into
	 * it. The layout depends only on the file's header, so every device loading the same blob
	 * plans the same bytes. Returns 1 when it filled all bytes itself (nothing is read from
	 * the blob), 0 to have the blob read as usual (a fan-out that failed falls back so), or a
	 * negative errno to fail the load. NULL: the blob is read. A hook that may fill needs the
	 * blob opened without verification (swarm_weights_open's verify 0): a hash taken as the
	 * bytes are read sees none when it fills. */
	int (*fill)(void *ctx, void *dev_base, uint64_t bytes);
	/* Called once the allocation holds the weights, before the graph is built; a negative
	 * return fails the load. NULL: nothing. */
	int (*loaded)(void *ctx, void *dev_base, uint64_t bytes);
	void *ctx;
};

/* How swarm_graph_from_weights_load reads the blob for a device (see blob_reader.h). */
struct swarm_load_opts {
	int mode;         /* an enum swarm_load_mode; SWARM_LOAD_AUTO when zeroed */
	unsigned threads; /* pread's threads, the caller's included; 0: 4 */
	int no_uring;     /* 1: no io_uring (direct falls back to pread) */
	/* NULL, or the hook of a load that is part of a fan-out (not called on a host-memory
	 * device, which allocates nothing; when fill fills, up->bytes counts nothing read) */
	const struct swarm_weights_hook *hook;
};

/* Builds m's node-list graph for dev with its weights from a mapped safetensors file (map,
 * parsed as st). On a host-memory device (the CPU) the ops read the mapping itself; on any
 * other device (a GPU) every tensor of the file is copied once into one device allocation
 * (each 256-byte aligned), synchronised, and adopted by the graph, which frees it. The copy
 * goes through the device's upload_stream where it has one (else upload), in as few pieces as
 * the layout allows: the whole data region at once when every tensor's distance from the
 * region's start is a multiple of 256 bytes, else stretches of tensors that are. Returns
 * what swarm_graph_build returns, or -ENOMEM or the copy's error, with a message in err;
 * on failure nothing stays allocated. */
int swarm_graph_from_weights(const struct swarm_manifest *m, const void *map,
			     const struct swarm_st_file *st, struct swarm_device *dev,
			     uint32_t max_batch, struct swarm_graph **out, char *err,
			     size_t err_len);

/* The same, and fills *up (when not NULL; zeroed first) with what the copy took. */
int swarm_graph_from_weights_report(const struct swarm_manifest *m, const void *map,
				    const struct swarm_st_file *st, struct swarm_device *dev,
				    uint32_t max_batch, struct swarm_graph **out,
				    struct swarm_weights_upload *up, char *err, size_t err_len);

/* The same for a blob from swarm_weights_open: on a device whose memory is not host memory
 * the tensors are read from the file by a blob reader in o's mode (NULL: auto) and streamed
 * with upload_stream (a fill per chunk; register: the mapping itself, falling back to pread
 * where the device refuses), and a verification left by swarm_weights_open is done on the
 * bytes as they are read: a blob whose hash differs fails with -EBADMSG and nothing stays
 * allocated. up (when not NULL) says which mode ran and why. */
int swarm_graph_from_weights_load(const struct swarm_manifest *m, const struct swarm_weights *w,
				  struct swarm_device *dev, uint32_t max_batch,
				  const struct swarm_load_opts *o, struct swarm_graph **out,
				  struct swarm_weights_upload *up, char *err, size_t err_len);

/* One copy of a weights file's tensors in the memory of a device whose memory is not host
 * memory (a GPU), laid out as swarm_graph_from_weights does (each 256-byte aligned), and
 * shared, refcounted, by every graph built on it: versions of a model in one worker whose
 * blob is the same, and, where it was allocated shareably, other workers on the same GPU
 * that import it (docs/devices.md, "Shared weights"). Not thread-safe: one thread (the
 * worker's) takes and drops references. */
struct swarm_dev_weights;

/* Allocates dw on dev (a device with host_memory 0) and copies st's tensors from map into it,
 * as swarm_graph_from_weights_report does (up as there, may be NULL). shareable: allocate
 * with dev's alloc_shared, so that swarm_dev_weights_export works; where the device has none
 * or refuses, the copy is private and swarm_dev_weights_shared says 0. Returns 0 with *out
 * holding one reference, -EINVAL (a host-memory device), -ENOMEM or the copy's error, with a
 * message in err; nothing stays allocated on failure. */
int swarm_dev_weights_upload(struct swarm_device *dev, const void *map,
			     const struct swarm_st_file *st, int shareable,
			     struct swarm_dev_weights **out, struct swarm_weights_upload *up,
			     char *err, size_t err_len);

/* Maps another process's copy of the same file (fd from its swarm_dev_weights_export, which
 * stays the caller's to close) instead of copying: st is this process's parse of the file,
 * and bytes and layout are what the exporter claimed; both must equal this process's own plan
 * of st, and the device must map bytes of the allocation. Returns 0 with *out holding one
 * reference, -ENOTSUP (the device cannot import), -EBADMSG (bytes or layout differ: the
 * message gives both), -EINVAL (the device refused the fd: bad, too small, another GPU),
 * -ENOMEM; the caller then loads from the blob. */
int swarm_dev_weights_import(struct swarm_device *dev, const struct swarm_st_file *st, int fd,
			     uint64_t bytes, uint64_t layout, struct swarm_dev_weights **out,
			     char *err, size_t err_len);

/* swarm_dev_weights_upload for a blob from swarm_weights_open, read as
 * swarm_graph_from_weights_load reads it: by a blob reader in o's mode (NULL: auto), with a
 * verification swarm_weights_open left done on the bytes as they are read, and o's hook. */
int swarm_dev_weights_load(struct swarm_device *dev, const struct swarm_weights *w, int shareable,
			   const struct swarm_load_opts *o, struct swarm_dev_weights **out,
			   struct swarm_weights_upload *up, char *err, size_t err_len);

/* Takes one more reference (returns dw), or drops one; the last frees the device memory
 * (free_shared for a shared or imported copy: other processes' mappings stay valid). */
struct swarm_dev_weights *swarm_dev_weights_get(struct swarm_dev_weights *dw);
void swarm_dev_weights_put(struct swarm_dev_weights *dw);

/* A new fd for a shareable copy (the caller sends and closes it): 0, -ENOTSUP for a private
 * copy, or export_shared's error. */
int swarm_dev_weights_export(const struct swarm_dev_weights *dw, int *fd);

/* References held; the allocation's planned size; the layout fingerprint an importer checks;
 * 1 when the copy is shareable memory (allocated so, or imported). */
uint32_t swarm_dev_weights_refs(const struct swarm_dev_weights *dw);
uint64_t swarm_dev_weights_bytes(const struct swarm_dev_weights *dw);
/* The device address of the allocation (every tensor at its planned offset in it). */
void *swarm_dev_weights_base(const struct swarm_dev_weights *dw);
uint64_t swarm_dev_weights_layout(const struct swarm_dev_weights *dw);
int swarm_dev_weights_shared(const struct swarm_dev_weights *dw);

/* The device address of st's tensor name in dw (st: the file dw was made from), or NULL when
 * the file has no such tensor. */
const void *swarm_dev_weights_data(const struct swarm_dev_weights *dw,
				   const struct swarm_st_file *st, const char *name);

/* Builds m's graph on dw's device reading its weights from dw (st: the file dw was made
 * from). The graph takes its own reference, dropped when it is freed, so the caller may put
 * its own at once. Returns what swarm_graph_build returns, or -EINVAL when st is not dw's
 * file, with a message in err. */
int swarm_graph_from_dev_weights(const struct swarm_manifest *m, const struct swarm_st_file *st,
				 struct swarm_dev_weights *dw, uint32_t max_batch,
				 struct swarm_graph **out, char *err, size_t err_len);

#endif /* SWARM_RUNTIME_DEVICE_WEIGHTS_H */
