/* softmax.cu: one warp per row (rows grid-strided over the warps of the grid), three passes
 * over the row: its max, the sum of exp(x - max), then exp(x - max) / sum. Subtracting the max
 * keeps expf from overflowing, and the sum is at least 1 (the max contributes exp(0)). */
#include "softmax.cuh"

#include <math.h>

static __global__ void softmax_f32(const float *x, float *o, int64_t rows, int64_t D)
{
	const int lane = threadIdx.x % 32;
	const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);

	/* r depends on the warp only, so all 32 lanes of a warp stay in the loop together, as the
	 * shuffles need. */
	for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
	     r += warps) {
		const float *xr = x + r * D;
		float *orow = o + r * D;
		float mx = -INFINITY;

		for (int64_t i = lane; i < D; i += 32)
			mx = fmaxf(mx, xr[i]);
		mx = swarm_warp_max(mx);
		float sum = 0.0f;
		for (int64_t i = lane; i < D; i += 32)
			sum += expf(xr[i] - mx);
		const float inv = 1.0f / swarm_warp_sum(sum);
		/* Each lane writes only the elements it read: in place is safe. */
		for (int64_t i = lane; i < D; i += 32)
			orow[i] = expf(xr[i] - mx) * inv;
	}
}

int swarm_cuda_op_softmax(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			  const struct swarm_node_dims *d)
{
	const int64_t rows_per_block = SWARM_CUDA_THREADS / 32;

	if (d->rows == 0 || d->cols == 0)
		return 0;
	softmax_f32<<<swarm_cuda_blocks(d->rows, rows_per_block), SWARM_CUDA_THREADS, 0, c->stream>>>(
		(const float *)n->in[0]->data, (float *)n->out->data, d->rows, d->cols);
	CUDA_CHECK_LAUNCH();
	return 0;
}
