/* binary.cuh: ADD, SUB, MUL, DIV, MAX, MIN and PRELU with numpy broadcasting. */
#ifndef SWARM_KERNELS_CUDA_BINARY_CUH
#define SWARM_KERNELS_CUDA_BINARY_CUH

#include "cuda_common.cuh"

/* out = A op B (n->op), each broadcast as numpy does; out may be A or B. d from
 * swarm_node_check. */
int swarm_cuda_op_binary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_BINARY_CUH */
