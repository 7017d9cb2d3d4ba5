/* attention.cuh: ATTENTION: Q, K, V [B, S, H * Dh] (f32, f16 or bf16, all one dtype), mask
 * [B, S] (f32, 1 keep, 0 padding; optional); out like Q =
 * softmax(Q K^T / sqrt(Dh), masked keys excluded) V per head. A query row whose keys are all
 * masked gives zeros, as on the CPU.
 */
#ifndef SWARM_KERNELS_CUDA_ATTENTION_CUH
#define SWARM_KERNELS_CUDA_ATTENTION_CUH

#include "cuda_common.cuh"

/* d from swarm_node_check. Returns 0 once queued, -ENOTSUP when Dh is too large for the
 * kernel's shared memory (Dh above about 6000), or a CUDA error's errno. */
int swarm_cuda_op_attention(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_ATTENTION_CUH */
