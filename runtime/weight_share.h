/* weight_share.h: swarmd's table of device weights that workers offer to share (the broker
 * of docs/control-plane.md, "Shared weights").
 *
 * A GPU worker that has copied a weights blob to its GPU in a shareable allocation sends
 * swarmd a file descriptor for it (SWARM_MSG_WEIGHTS_SHARE); swarmd keeps one entry per
 * (GPU, blob SHA-256) here, and hands a duplicate of the fd to another worker on the same GPU
 * that is about to load the same blob, which then maps the first copy instead of making its
 * own. The table owns its fds: it closes one when its entry goes (the exporter unloaded the
 * blob, or died). Importers hold their own references to the memory, so an entry's going
 * never takes memory away from anyone. A pure module: no sockets, no CUDA, no policy beyond
 * the table's; swarmd is single-threaded, and so is the table.
 *
 * A worker keeps the offers it receives in a table of its own (exporter -1), until the load
 * that needs one takes it.
 */
#ifndef SWARM_RUNTIME_WEIGHT_SHARE_H
#define SWARM_RUNTIME_WEIGHT_SHARE_H

#include <stdint.h>

#define SWARM_WSHARE_MAX 32     /* entries: blobs times GPUs that are shared at once */
#define SWARM_WSHARE_SHA_MAX 72 /* as swarm_msg_version's weights_sha */

struct swarm_wshare_entry {
	int fd;       /* the exporter's shareable handle; -1: the entry is free */
	int gpu;      /* the CUDA ordinal the memory lives on */
	int exporter; /* swarmd's device index of the worker that exported it */
	uint32_t reserved;
	uint64_t bytes;  /* the device allocation's size */
	uint64_t layout; /* the loader's layout fingerprint (swarm_dev_weights_layout) */
	char sha[SWARM_WSHARE_SHA_MAX];
};

struct swarm_wshare {
	struct swarm_wshare_entry e[SWARM_WSHARE_MAX];
};

/* Empties the table (no fd is closed: use it on a fresh table only). */
void swarm_wshare_init(struct swarm_wshare *t);

/* Records that exporter offers fd for blob sha on gpu. The table takes fd in every case: it
 * keeps it, or closes it when it returns an error. Returns 0; -EEXIST when an entry for (gpu,
 * sha) is already there (the first stays: it is as good as any, and importers of it are
 * not disturbed); -ENOSPC when the table is full; -EINVAL for a bad fd, gpu, sha or size. */
int swarm_wshare_add(struct swarm_wshare *t, int gpu, const char *sha, uint64_t bytes,
		     uint64_t layout, int exporter, int fd);

/* The entry for (gpu, sha), or NULL. Valid until the next add or drop. */
const struct swarm_wshare_entry *swarm_wshare_find(const struct swarm_wshare *t, int gpu,
						   const char *sha);

/* The entry to offer device (swarmd's index) about to load blob sha on gpu: the (gpu, sha)
 * entry unless device is its exporter (it has the copy already); NULL for a CPU device (gpu
 * < 0), an empty sha, or no entry. */
const struct swarm_wshare_entry *swarm_wshare_offer(const struct swarm_wshare *t, int gpu,
						    const char *sha, int device);

/* Drops exporter's entry for sha (it unloaded the blob), closing its fd. Returns 1 when there
 * was one, else 0. */
int swarm_wshare_drop(struct swarm_wshare *t, int exporter, const char *sha);

/* Drops every entry of exporter (its worker died or stopped). Returns how many. */
int swarm_wshare_drop_exporter(struct swarm_wshare *t, int exporter);

/* Entries in use. */
int swarm_wshare_count(const struct swarm_wshare *t);

#endif /* SWARM_RUNTIME_WEIGHT_SHARE_H */
