/* unary.cuh: RELU, GELU (erf form), SIGMOID and TANH, elementwise over f32; and the activation
 * functions themselves, which linear.cu fuses after its GEMM.
 */
#ifndef SWARM_KERNELS_CUDA_UNARY_CUH
#define SWARM_KERNELS_CUDA_UNARY_CUH

#include "cuda_common.cuh"

/* act(v) for an activation op (IDENTITY for none), in the same float formulas as the CPU's
 * (kernels/cpu/ops.c); expf, erff and tanhf are CUDA's accurate versions (no fast math). */
template <uint32_t ACT> static __device__ __forceinline__ float swarm_act(float v)
{
	if (ACT == SWARM_OP_RELU)
		return v > 0.0f ? v : 0.0f;
	if (ACT == SWARM_OP_GELU)
		return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f)); /* 1/sqrt(2) */
	if (ACT == SWARM_OP_SIGMOID)
		return 1.0f / (1.0f + expf(-v));
	if (ACT == SWARM_OP_TANH)
		return tanhf(v);
	return v;
}

/* out = op(in) for n->op in RELU, GELU, SIGMOID, TANH; d from swarm_node_check. */
int swarm_cuda_op_unary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_UNARY_CUH */
