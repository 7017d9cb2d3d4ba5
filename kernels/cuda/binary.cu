/* binary.cu: ADD and MUL over f32, one grid-stride pass; the element of B for A's element i
 * is i % nb (no division when B is as large as A). out may alias A or B, so no __restrict__. */
#include "binary.cuh"

template <bool MUL>
static __global__ void binary_f32(const float *a, const float *b, float *o, int64_t n, int64_t nb)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		const float bv = b[nb == n ? i : i % nb];
		o[i] = MUL ? a[i] * bv : a[i] + bv;
	}
}

int swarm_cuda_op_binary(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const float *a = (const float *)n->in[0]->data, *b = (const float *)n->in[1]->data;
	float *o = (float *)n->out->data;
	const int64_t e = d->elems, nb = d->count;
	const unsigned int blocks = swarm_cuda_blocks(e, SWARM_CUDA_THREADS);

	/* nb >= 1 whenever e >= 1: B's dims are some of A's. */
	if (e == 0)
		return 0;
	if (n->op == SWARM_OP_MUL)
		binary_f32<true><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(a, b, o, e, nb);
	else
		binary_f32<false><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(a, b, o, e, nb);
	CUDA_CHECK_LAUNCH();
	return 0;
}
