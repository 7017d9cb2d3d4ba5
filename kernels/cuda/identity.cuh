/* identity.cuh: IDENTITY, out = in[0], as one device-to-device copy on the stream. */
#ifndef SWARM_KERNELS_CUDA_IDENTITY_CUH
#define SWARM_KERNELS_CUDA_IDENTITY_CUH

#include "cuda_common.cuh"

/* Queues the copy; out == in is a no-op. Returns 0, -ENOTSUP when out and in overlap without
 * being the same (cudaMemcpyAsync does not define it), or the CUDA error's errno. */
int swarm_cuda_op_identity(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			   const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_IDENTITY_CUH */
