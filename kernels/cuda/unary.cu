/* unary.cu: RELU, GELU, SIGMOID, TANH over f32, one grid-stride pass (in place allowed). */
#include "unary.cuh"

template <uint32_t ACT> static __global__ void unary_f32(const float *x, float *o, int64_t n)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		o[i] = swarm_act<ACT>(x[i]);
}

int swarm_cuda_op_unary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			const struct swarm_node_dims *d)
{
	const float *x = (const float *)n->in[0]->data;
	float *o = (float *)n->out->data;
	const int64_t e = d->elems;
	const unsigned int blocks = swarm_cuda_blocks(e, SWARM_CUDA_THREADS);

	if (e == 0)
		return 0;
	switch (n->op) {
	case SWARM_OP_RELU:
		unary_f32<SWARM_OP_RELU><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(x, o, e);
		break;
	case SWARM_OP_GELU:
		unary_f32<SWARM_OP_GELU><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(x, o, e);
		break;
	case SWARM_OP_SIGMOID:
		unary_f32<SWARM_OP_SIGMOID><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(x, o, e);
		break;
	case SWARM_OP_TANH:
		unary_f32<SWARM_OP_TANH><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(x, o, e);
		break;
	default:
		return -EINVAL;
	}
	CUDA_CHECK_LAUNCH();
	return 0;
}
