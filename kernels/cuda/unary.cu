/* unary.cu: the elementwise functions over f32, one grid-stride pass (in place allowed), and the
 * conv epilogue (a bias per channel, then the fused activation). */
#include "unary.cuh"

template <uint32_t ACT>
static __global__ void unary_f32(const float *x, float *o, int64_t n, swarm_cuda_act_params p)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		o[i] = swarm_act_p<ACT>(x[i], p);
}

template <uint32_t ACT>
static __global__ void bias_act_f32(float *o, const float *bias, int64_t channels, int64_t hw,
				    int64_t n, swarm_cuda_act_params p)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		const float v = bias ? o[i] + bias[(i / hw) % channels] : o[i];
		o[i] = swarm_act_p<ACT>(v, p);
	}
}

/* Calls LAUNCH(OP) for the op of the table named by op; -EINVAL for any other. */
#define SWARM_CUDA_ACT_SWITCH(op, LAUNCH)     \
	switch (op) {                         \
	case SWARM_OP_IDENTITY:               \
		LAUNCH(SWARM_OP_IDENTITY);    \
		break;                        \
	case SWARM_OP_RELU:                   \
		LAUNCH(SWARM_OP_RELU);        \
		break;                        \
	case SWARM_OP_GELU:                   \
		LAUNCH(SWARM_OP_GELU);        \
		break;                        \
	case SWARM_OP_SIGMOID:                \
		LAUNCH(SWARM_OP_SIGMOID);     \
		break;                        \
	case SWARM_OP_TANH:                   \
		LAUNCH(SWARM_OP_TANH);        \
		break;                        \
	case SWARM_OP_ERF:                    \
		LAUNCH(SWARM_OP_ERF);         \
		break;                        \
	case SWARM_OP_EXP:                    \
		LAUNCH(SWARM_OP_EXP);         \
		break;                        \
	case SWARM_OP_LOG:                    \
		LAUNCH(SWARM_OP_LOG);         \
		break;                        \
	case SWARM_OP_SQRT:                   \
		LAUNCH(SWARM_OP_SQRT);        \
		break;                        \
	case SWARM_OP_HARDSIGMOID:            \
		LAUNCH(SWARM_OP_HARDSIGMOID); \
		break;                        \
	case SWARM_OP_HARDSWISH:              \
		LAUNCH(SWARM_OP_HARDSWISH);   \
		break;                        \
	case SWARM_OP_LEAKY_RELU:             \
		LAUNCH(SWARM_OP_LEAKY_RELU);  \
		break;                        \
	case SWARM_OP_CLIP:                   \
		LAUNCH(SWARM_OP_CLIP);        \
		break;                        \
	case SWARM_OP_POW:                    \
		LAUNCH(SWARM_OP_POW);         \
		break;                        \
	default:                              \
		return -EINVAL;               \
	}

int swarm_cuda_op_unary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			const struct swarm_node_dims *d)
{
	const float *x = (const float *)n->in[0]->data;
	float *o = (float *)n->out->data;
	const int64_t e = d->elems;
	const unsigned int blocks = swarm_cuda_blocks(e, SWARM_CUDA_THREADS);
	const swarm_cuda_act_params p = swarm_cuda_act_params_of(&n->p);

	if (e == 0)
		return 0;
#define UNARY_LAUNCH(OP) unary_f32<OP><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(x, o, e, p)
	SWARM_CUDA_ACT_SWITCH(n->op, UNARY_LAUNCH)
#undef UNARY_LAUNCH
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_bias_act(struct swarm_cuda_ctx *c, uint32_t act, const struct swarm_op_params *p,
			float *o, const float *bias, int64_t channels, int64_t hw, int64_t total)
{
	const unsigned int blocks = swarm_cuda_blocks(total, SWARM_CUDA_THREADS);
	const swarm_cuda_act_params ap = swarm_cuda_act_params_of(p);

	if (total == 0 || (!bias && act == SWARM_OP_IDENTITY))
		return 0;
#define BIAS_ACT_LAUNCH(OP)                                                               \
	bias_act_f32<OP><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(o, bias, channels, \
								       hw > 0 ? hw : 1, total, ap)
	SWARM_CUDA_ACT_SWITCH(act, BIAS_ACT_LAUNCH)
#undef BIAS_ACT_LAUNCH
	CUDA_CHECK_LAUNCH();
	return 0;
}
