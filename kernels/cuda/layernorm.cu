/* layernorm.cu: one warp per row, two passes for the statistics as on the CPU (the mean, then
 * the mean of squared deviations: the one-pass E[x^2] - E[x]^2 cancels badly when the mean is
 * large against the spread), then the normalised, scaled and shifted row. */
#include "layernorm.cuh"

static __global__ void layernorm_f32(const float *x, const float *gamma, const float *beta,
				     float *o, int64_t rows, int64_t D, float eps)
{
	const int lane = threadIdx.x % 32;
	const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);

	for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
	     r += warps) {
		const float *xr = x + r * D;
		float *orow = o + r * D;
		float sum = 0.0f;

		for (int64_t i = lane; i < D; i += 32)
			sum += xr[i];
		const float mean = swarm_warp_sum(sum) / (float)D;
		float sq = 0.0f;
		for (int64_t i = lane; i < D; i += 32) {
			const float t = xr[i] - mean;
			sq += t * t;
		}
		const float inv = 1.0f / sqrtf(swarm_warp_sum(sq) / (float)D + eps);
		for (int64_t i = lane; i < D; i += 32)
			orow[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
	}
}

int swarm_cuda_op_layernorm(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	const int64_t rows_per_block = SWARM_CUDA_THREADS / 32;

	if (d->rows == 0 || d->cols == 0)
		return 0;
	layernorm_f32<<<swarm_cuda_blocks(d->rows, rows_per_block), SWARM_CUDA_THREADS, 0,
			c->stream>>>((const float *)n->in[0]->data, (const float *)n->in[1]->data,
				     (const float *)n->in[2]->data, (float *)n->out->data, d->rows,
				     d->cols, d->eps);
	CUDA_CHECK_LAUNCH();
	return 0;
}
