/* mean_pool.cuh: MEAN_POOL of f32 X [B, S, D] over the kept tokens of mask [B, S] (f32, 1 keep,
 * 0 padding); out [B, D], zeros for a row with no kept token. */
#ifndef SWARM_KERNELS_CUDA_MEAN_POOL_CUH
#define SWARM_KERNELS_CUDA_MEAN_POOL_CUH

#include "cuda_common.cuh"

/* d from swarm_node_check. */
int swarm_cuda_op_mean_pool(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_MEAN_POOL_CUH */
