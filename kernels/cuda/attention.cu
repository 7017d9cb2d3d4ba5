/* attention.cu: a simple exact attention kernel, for sequences of up to a few hundred tokens
 * (BERT-style encoders), not a flash-attention: one block per query row (b, i, h), rows
 * grid-strided. The block keeps in shared memory the query row times 1/sqrt(Dh) (Dh floats),
 * its output accumulator (Dh floats) and the scores of one chunk of ATT_CHUNK keys, and walks
 * the keys chunk by chunk with the online softmax:
 *
 *   scores s_j = q . k_j for the chunk (one warp per key: lanes over Dh, a warp sum);
 *   masked keys get -inf, and never count: a chunk whose keys are all masked is skipped;
 *   cm = the chunk's max, nm = max(m, cm), corr = exp(m - nm) (0 while m is still -inf);
 *   p_j = exp(s_j - nm); l = l * corr + sum p_j; acc[d] = acc[d] * corr + sum p_j v_j[d];
 *   m = nm.
 *
 * At the end out[d] = acc[d] / l, or 0 when l is 0 (every key masked). So shared memory does
 * not grow with S, and every quantity is computed in f32 whatever T is (f16 and bf16 are
 * converted on load and rounded once on store). m, l, cm and the chunk sums are computed by
 * every thread from the same shared values in the same order, so they agree across the block
 * without another reduction; acc[d] belongs to thread d % blockDim throughout.
 */
#include "attention.cuh"

#include <math.h>

#define ATT_THREADS 128
#define ATT_CHUNK 128
/* Dynamic shared memory a launch may use without opting in (cudaFuncSetAttribute). */
#define ATT_SMEM_MAX (48 * 1024)

template <typename T>
static __global__ void attention_kernel(const T *q, const T *k, const T *v, const float *mask, T *o,
					int64_t B, int64_t S, int64_t H, int64_t Dh, float scale)
{
	extern __shared__ float sm[];
	float *qs = sm;         /* [Dh] the query row, times scale */
	float *acc = sm + Dh;   /* [Dh] the output accumulator */
	float *p = sm + 2 * Dh; /* [ATT_CHUNK] the chunk's scores, then its weights */
	const int64_t E = H * Dh, rows = B * S * H;
	const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;

	for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
		const int64_t h = r % H, bi = r / H; /* bi = b * S + i */
		const int64_t b = bi / S;
		const int64_t row = bi * E + h * Dh;    /* (b, i, head h) in Q and out */
		const int64_t kv0 = b * S * E + h * Dh; /* (b, 0, head h) in K and V */
		const float *keep = mask ? mask + b * S : nullptr;

		for (int64_t d = threadIdx.x; d < Dh; d += blockDim.x) {
			qs[d] = swarm_to_f32(q[row + d]) * scale;
			acc[d] = 0.0f;
		}
		__syncthreads();
		float m = -INFINITY, l = 0.0f;
		for (int64_t j0 = 0; j0 < S; j0 += ATT_CHUNK) {
			const int cn = (int)(S - j0 < ATT_CHUNK ? S - j0 : ATT_CHUNK);

			for (int jj = warp; jj < cn; jj += nwarps) {
				const int64_t j = j0 + jj;
				float s = -INFINITY;
				/* keep[j] is the same for the whole warp: the shuffles inside
				 * swarm_warp_sum see all 32 lanes or none. */
				if (!keep || keep[j] != 0.0f) {
					const T *kr = k + kv0 + j * E;
					float dot = 0.0f;
					for (int64_t d = lane; d < Dh; d += 32)
						dot += qs[d] * swarm_to_f32(kr[d]);
					s = swarm_warp_sum(dot);
				}
				if (lane == 0)
					p[jj] = s;
			}
			__syncthreads();
			float cm = -INFINITY;
			for (int jj = 0; jj < cn; jj++)
				cm = fmaxf(cm, p[jj]);
			__syncthreads(); /* all have read the scores before they are overwritten */
			if (cm == -INFINITY)
				continue; /* every key of the chunk masked (uniform: cm is) */
			const float nm = fmaxf(m, cm);
			const float corr = expf(m - nm); /* exp(-inf) = 0 on the first kept chunk */
			for (int jj = threadIdx.x; jj < cn; jj += blockDim.x)
				p[jj] = p[jj] == -INFINITY ? 0.0f : expf(p[jj] - nm);
			__syncthreads();
			float csum = 0.0f;
			for (int jj = 0; jj < cn; jj++)
				csum += p[jj];
			l = l * corr + csum;
			for (int64_t d = threadIdx.x; d < Dh; d += blockDim.x) {
				const T *vc = v + kv0 + j0 * E + d;
				float a = acc[d] * corr;
				for (int jj = 0; jj < cn; jj++)
					a += p[jj] * swarm_to_f32(vc[jj * E]);
				acc[d] = a;
			}
			m = nm;
			__syncthreads(); /* the weights are read before the next chunk's scores */
		}
		const float inv = l > 0.0f ? 1.0f / l : 0.0f;
		for (int64_t d = threadIdx.x; d < Dh; d += blockDim.x)
			o[row + d] = swarm_from_f32<T>(acc[d] * inv);
		__syncthreads(); /* qs and acc are rewritten for the next row */
	}
}

template <typename T>
static int attention_launch(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d, size_t smem)
{
	const int64_t rows = d->batch * d->seq * d->heads;
	const float scale = 1.0f / sqrtf((float)d->head_dim);

	attention_kernel<T><<<swarm_cuda_blocks(rows, 1), ATT_THREADS, smem, c->stream>>>(
		(const T *)n->in[0]->data, (const T *)n->in[1]->data, (const T *)n->in[2]->data,
		d->has_mask ? (const float *)n->in[3]->data : nullptr, (T *)n->out->data, d->batch,
		d->seq, d->heads, d->head_dim, scale);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_op_attention(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	if (d->batch == 0 || d->seq == 0 || d->head_dim == 0)
		return 0;
	/* head_dim <= E fits an int (swarm_node_check), so this cannot overflow. */
	const size_t smem = (size_t)(2 * d->head_dim + ATT_CHUNK) * sizeof(float);
	if (smem > ATT_SMEM_MAX) {
		swarm_cuda_set_error("attention: head dim %lld needs %zu bytes of shared memory, "
				     "above %d",
				     (long long)d->head_dim, smem, ATT_SMEM_MAX);
		return -ENOTSUP;
	}
	switch (d->dtype) {
	case SWARM_DTYPE_F16:
		return attention_launch<__half>(c, n, d, smem);
	case SWARM_DTYPE_BF16:
		return attention_launch<__nv_bfloat16>(c, n, d, smem);
	default:
		return attention_launch<float>(c, n, d, smem);
	}
}
