/* softmax.cuh: SOFTMAX over the last dim of f32 X [.., D]. */
#ifndef SWARM_KERNELS_CUDA_SOFTMAX_CUH
#define SWARM_KERNELS_CUDA_SOFTMAX_CUH

#include "cuda_common.cuh"

/* One warp per row; out may be X. d from swarm_node_check. */
int swarm_cuda_op_softmax(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			  const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_SOFTMAX_CUH */
