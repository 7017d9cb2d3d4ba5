/* layernorm.cuh: LAYERNORM of f32 X [.., D] with gamma [D], beta [D] and eps. */
#ifndef SWARM_KERNELS_CUDA_LAYERNORM_CUH
#define SWARM_KERNELS_CUDA_LAYERNORM_CUH

#include "cuda_common.cuh"

/* One warp per row; out may be X. d from swarm_node_check (d->eps is the eps to use). */
int swarm_cuda_op_layernorm(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_LAYERNORM_CUH */
