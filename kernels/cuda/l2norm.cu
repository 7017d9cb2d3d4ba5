/* l2norm.cu: one warp per row: the sum of squares, then the row times 1 / max(norm, eps) (a
 * zero row stays zero). */
#include "l2norm.cuh"

static __global__ void l2norm_f32(const float *x, float *o, int64_t rows, int64_t D, float eps)
{
	const int lane = threadIdx.x % 32;
	const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);

	for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
	     r += warps) {
		const float *xr = x + r * D;
		float *orow = o + r * D;
		float sq = 0.0f;

		for (int64_t i = lane; i < D; i += 32)
			sq += xr[i] * xr[i];
		const float norm = sqrtf(swarm_warp_sum(sq));
		const float inv = 1.0f / (norm > eps ? norm : eps);
		for (int64_t i = lane; i < D; i += 32)
			orow[i] = xr[i] * inv;
	}
}

int swarm_cuda_op_l2norm(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const int64_t rows_per_block = SWARM_CUDA_THREADS / 32;

	if (d->rows == 0 || d->cols == 0)
		return 0;
	l2norm_f32<<<swarm_cuda_blocks(d->rows, rows_per_block), SWARM_CUDA_THREADS, 0, c->stream>>>(
		(const float *)n->in[0]->data, (float *)n->out->data, d->rows, d->cols, d->eps);
	CUDA_CHECK_LAUNCH();
	return 0;
}
