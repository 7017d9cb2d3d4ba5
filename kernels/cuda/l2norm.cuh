/* l2norm.cuh: L2NORM over the last dim of f32 X [.., D]: x / max(||x||, eps). */
#ifndef SWARM_KERNELS_CUDA_L2NORM_CUH
#define SWARM_KERNELS_CUDA_L2NORM_CUH

#include "cuda_common.cuh"

/* One warp per row; out may be X. d from swarm_node_check (d->eps is the eps to use). */
int swarm_cuda_op_l2norm(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_L2NORM_CUH */
