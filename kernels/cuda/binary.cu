/* binary.cu: ADD, SUB, MUL, DIV, MAX, MIN and PRELU over f32 with numpy broadcasting: the host
 * plans the loop nest once per node (swarm_broadcast_plan: dims of 1 dropped, runs merged, a
 * stride of 0 where an input is broadcast), and each thread finds its element's offsets in A
 * and B from its output index. out may alias A or B, so no __restrict__. */
#include "binary.cuh"

#include "kernels/op.h"
#include "kernels/op_math.h"

/* The plan by value: at most SWARM_TENSOR_MAX_DIMS dims. */
struct bcast_arg {
	int nd;
	int64_t shape[SWARM_TENSOR_MAX_DIMS], sa[SWARM_TENSOR_MAX_DIMS], sb[SWARM_TENSOR_MAX_DIMS];
};

template <uint32_t OP> static __device__ __forceinline__ float binary_op(float x, float y)
{
	switch (OP) {
	case SWARM_OP_ADD:
		return x + y;
	case SWARM_OP_SUB:
		return x - y;
	case SWARM_OP_MUL:
		return x * y;
	case SWARM_OP_DIV:
		return x / y;
	case SWARM_OP_MAX: /* NaN propagates, as numpy's maximum and the CPU's */
		return swarm_max_nan(x, y);
	case SWARM_OP_MIN:
		return swarm_min_nan(x, y);
	default: /* PRELU: y is the slope */
		return x >= 0.0f ? x : y * x;
	}
}

template <uint32_t OP>
static __global__ void binary_f32(const float *a, const float *b, float *o, int64_t n, bcast_arg p)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		int64_t rest = i, oa = 0, ob = 0;
		for (int k = p.nd - 1; k >= 0; k--) {
			const int64_t at = rest % p.shape[k];
			rest /= p.shape[k];
			oa += at * p.sa[k];
			ob += at * p.sb[k];
		}
		o[i] = binary_op<OP>(a[oa], b[ob]);
	}
}

int swarm_cuda_op_binary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const float *a = (const float *)n->in[0]->data, *b = (const float *)n->in[1]->data;
	float *o = (float *)n->out->data;
	const int64_t e = d->elems;
	const unsigned int blocks = swarm_cuda_blocks(e, SWARM_CUDA_THREADS);
	struct swarm_bcast plan;
	bcast_arg p;

	if (e == 0)
		return 0;
	swarm_broadcast_plan(n->in[0], n->in[1], n->out, &plan);
	p.nd = plan.nd;
	for (int k = 0; k < plan.nd; k++) {
		p.shape[k] = plan.shape[k];
		p.sa[k] = plan.sa[k];
		p.sb[k] = plan.sb[k];
	}
#define BINARY_LAUNCH(OP) \
	binary_f32<OP><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(a, b, o, e, p)
	switch (n->op) {
	case SWARM_OP_ADD:
		BINARY_LAUNCH(SWARM_OP_ADD);
		break;
	case SWARM_OP_SUB:
		BINARY_LAUNCH(SWARM_OP_SUB);
		break;
	case SWARM_OP_MUL:
		BINARY_LAUNCH(SWARM_OP_MUL);
		break;
	case SWARM_OP_DIV:
		BINARY_LAUNCH(SWARM_OP_DIV);
		break;
	case SWARM_OP_MAX:
		BINARY_LAUNCH(SWARM_OP_MAX);
		break;
	case SWARM_OP_MIN:
		BINARY_LAUNCH(SWARM_OP_MIN);
		break;
	case SWARM_OP_PRELU:
		BINARY_LAUNCH(SWARM_OP_PRELU);
		break;
	default:
		return -EINVAL;
	}
#undef BINARY_LAUNCH
	CUDA_CHECK_LAUNCH();
	return 0;
}
