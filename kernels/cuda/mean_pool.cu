/* mean_pool.cu: one thread per output element (b, k), grid-strided: it walks the S tokens of
 * row b in order, adds the kept ones' element k and counts them, then multiplies by 1 / count
 * as the CPU does. Neighbouring threads read neighbouring k, so the reads of X are coalesced;
 * the mask reads are the same address across a warp (one broadcast). */
#include "mean_pool.cuh"

static __global__ void mean_pool_f32(const float *x, const float *mask, float *o, int64_t B,
				     int64_t S, int64_t D)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	const int64_t n = B * D;

	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
		const int64_t b = e / D, k = e - b * D;
		const float *keep = mask + b * S;
		float acc = 0.0f;
		int64_t count = 0;

		for (int64_t s = 0; s < S; s++) {
			if (keep[s] == 0.0f)
				continue;
			acc += x[(b * S + s) * D + k];
			count++;
		}
		o[e] = count > 0 ? acc * (1.0f / (float)count) : 0.0f;
	}
}

int swarm_cuda_op_mean_pool(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	const int64_t e = d->batch * d->cols;

	if (e == 0)
		return 0;
	mean_pool_f32<<<swarm_cuda_blocks(e, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0, c->stream>>>(
		(const float *)n->in[0]->data, (const float *)n->in[1]->data, (float *)n->out->data,
		d->batch, d->seq, d->cols);
	CUDA_CHECK_LAUNCH();
	return 0;
}
