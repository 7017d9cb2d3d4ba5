/* linear.cuh: LINEAR, out [.., N] = act(X [.., K] W^T + bias), W [N, K] (PyTorch's layout),
 * bias [N] optional; f32, f16 or bf16 (X, W, bias and out all one dtype), computed in f32.
 */
#ifndef SWARM_KERNELS_CUDA_LINEAR_CUH
#define SWARM_KERNELS_CUDA_LINEAR_CUH

#include "cuda_common.cuh"

/* The GEMM through cuBLASLt with bias and RELU fused into its epilogue; GELU, SIGMOID and
 * TANH (and anything when cuBLASLt has no algorithm) in one fused bias + activation pass of
 * our own after it. d from swarm_node_check. Returns 0 once queued, or the errno of the
 * failing CUDA or cuBLAS call. */
int swarm_cuda_op_linear(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_LINEAR_CUH */
