/* unary.cuh: the elementwise functions of the op table over f32 (RELU, GELU in its erf form,
 * SIGMOID, TANH, ERF, EXP, LOG, SQRT, HARDSIGMOID, HARDSWISH, LEAKY_RELU, CLIP, POW), as ops
 * and as the activations linear.cu and conv.cu fuse after their GEMMs and sums.
 */
#ifndef SWARM_KERNELS_CUDA_UNARY_CUH
#define SWARM_KERNELS_CUDA_UNARY_CUH

#include "cuda_common.cuh"

#include "kernels/op_math.h"

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

/* What the functions with parameters take (swarm_op_params' alpha, beta and exponent: clip's
 * min and max are its alpha and beta), passed to a kernel by value. */
struct swarm_cuda_act_params {
	float alpha, beta, exponent;
};

static inline swarm_cuda_act_params swarm_cuda_act_params_of(const struct swarm_op_params *p)
{
	return swarm_cuda_act_params{ p->alpha, p->beta, p->exponent };
}

/* Every function of the table, parameters included; the ones without go to swarm_act. */
template <uint32_t ACT>
static __device__ __forceinline__ float swarm_act_p(float v, swarm_cuda_act_params p)
{
	switch (ACT) {
	case SWARM_OP_ERF:
		return erff(v);
	case SWARM_OP_EXP:
		return expf(v);
	case SWARM_OP_LOG:
		return logf(v);
	case SWARM_OP_SQRT:
		return sqrtf(v);
	case SWARM_OP_HARDSIGMOID:
		return swarm_hardsigmoid(v, p.alpha, p.beta);
	case SWARM_OP_HARDSWISH:
		return v * swarm_hardsigmoid(v, 1.0f / 6.0f, 0.5f);
	case SWARM_OP_LEAKY_RELU:
		return v >= 0.0f ? v : p.alpha * v;
	case SWARM_OP_CLIP: {
		const float c = v < p.alpha ? p.alpha : v;
		return c > p.beta ? p.beta : c;
	}
	case SWARM_OP_POW:
		return p.exponent == 2.0f ? v * v :
		       p.exponent == 0.5f ? sqrtf(v) :
					    powf(v, p.exponent);
	default:
		return swarm_act<ACT>(v);
	}
}

/* out = op(in) for n->op any of the functions above; d from swarm_node_check. */
int swarm_cuda_op_unary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			const struct swarm_node_dims *d);

/* o = act(o + bias[channel]) over total floats laid out [.., channels, hw] (bias NULL: none;
 * act IDENTITY and no bias: nothing queued): the epilogue of conv2d and conv_transpose2d. */
int swarm_cuda_bias_act(struct swarm_cuda_ctx *c, uint32_t act, const struct swarm_op_params *p,
			float *o, const float *bias, int64_t channels, int64_t hw, int64_t total);

#endif /* SWARM_KERNELS_CUDA_UNARY_CUH */
