/* binary.cuh: ADD and MUL with suffix broadcast: B's shape is a suffix of A's, so B repeats
 * every count (B's elements) elements of A. */
#ifndef SWARM_KERNELS_CUDA_BINARY_CUH
#define SWARM_KERNELS_CUDA_BINARY_CUH

#include "cuda_common.cuh"

/* out = A + B or A * B (n->op); out may be A. d from swarm_node_check. */
int swarm_cuda_op_binary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_BINARY_CUH */
