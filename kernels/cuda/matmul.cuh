/* matmul.cuh: MATMUL, out [.., M, N] = A [.., M, K] B [.., K, N] over the same leading dims;
 * f32, f16 or bf16 (all one dtype), computed in f32. */
#ifndef SWARM_KERNELS_CUDA_MATMUL_CUH
#define SWARM_KERNELS_CUDA_MATMUL_CUH

#include "cuda_common.cuh"

/* One cublasGemmStridedBatchedEx over the leading dims. d from swarm_node_check. */
int swarm_cuda_op_matmul(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_MATMUL_CUH */
