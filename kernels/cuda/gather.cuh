/* gather.cuh: the CUDA device's upload_many and download_many (gather.cu), and the table of
 * host regions registered with the device that its kernel strategy reads and writes in place.
 * The strategies and how one is chosen are in gather.h.
 */
#ifndef SWARM_KERNELS_CUDA_GATHER_CUH
#define SWARM_KERNELS_CUDA_GATHER_CUH

#include "cuda_common.cuh"
#include "gather.h"

/* One range pinned by register_host: where the GPU reaches it (dev, NULL when it cannot:
 * such a range is copied, never read by a kernel) and whether the device may only read it
 * (registered read-only: a scatter kernel must not write it). */
struct swarm_cuda_host_region {
	char *host;
	size_t bytes;
	char *dev;
	int read_only;
};

struct swarm_cuda_gather {
	int mode;          /* an enum swarm_cuda_gather_mode */
	int unmapped_said; /* a registered range with no device address was reported once */
	int batch_off;     /* cudaMemcpyBatchAsync refused a batch once: one copy a piece */
	struct swarm_cuda_host_region *regions; /* n of cap, unordered */
	uint32_t n, cap;
};

/* Makes c->gather, in the mode SWARM_CUDA_GATHER names (else copies). Returns 0 or -ENOMEM. */
int swarm_cuda_gather_init(struct swarm_cuda_ctx *c);
void swarm_cuda_gather_release(struct swarm_cuda_ctx *c);

/* Notes that register_host pinned [p, p + bytes) (read_only: with cudaHostRegisterReadOnly),
 * with its device address from cudaHostGetDevicePointer (none: the range is only copied),
 * and that unregister_host released the range starting at p. A range that cannot be noted
 * (no memory to grow the table) is only ever copied, never read by a kernel. Not on the
 * request path: the table grows here, per session attach. */
void swarm_cuda_gather_note_register(struct swarm_cuda_ctx *c, void *p, size_t bytes,
				     int read_only);
void swarm_cuda_gather_note_unregister(struct swarm_cuda_ctx *c, void *p);

/* upload_many (to_device 1) and download_many (0) as device.h has them, by c's mode. */
int swarm_cuda_copy_many(struct swarm_cuda_ctx *c, const struct swarm_copy *pieces, uint32_t n,
			 int to_device);

#endif /* SWARM_KERNELS_CUDA_GATHER_CUH */
