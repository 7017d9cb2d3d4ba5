/* embedding.cu: EMBEDDING and EMBEDDING_BAG (one file: they share the id check). For each
 * node two launches on the stream: validate (a grid-stride pass over the ids and offsets that
 * sets *flag on the first bad value it meets; every writer writes 1, so the races are benign)
 * and the gather, which reads *flag first and returns when it is set. Kernel boundaries on one
 * stream order the flag's write before the gather's read. The gather still bounds-checks each
 * id, so that no read can leave the table whatever the flag says.
 *
 * The gathers give one block to a row (an id or a bag) and spread D over its threads, so the
 * table reads and the output writes are coalesced. A bag sums its rows in order, and MEAN
 * multiplies by 1 / count, as the CPU does.
 */
#include "embedding.cuh"

template <typename I>
static __global__ void ids_validate(const I *ids, int64_t L, int64_t V, int *flag)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < L; i += stride) {
		const int64_t id = (int64_t)ids[i];
		if (id < 0 || id >= V)
			*flag = 1;
	}
}

/* Bag b is [offs[b], end) with end = offs[b + 1], or L for the last bag. */
template <typename J>
static __global__ void offsets_validate(const J *offs, int64_t B, int64_t L, int *flag)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;

	for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < B; b += stride) {
		const int64_t begin = (int64_t)offs[b];
		const int64_t end = b + 1 < B ? (int64_t)offs[b + 1] : L;
		if ((b == 0 && begin != 0) || end < begin || end > L)
			*flag = 1;
	}
}

template <typename I>
static __global__ void embedding_gather(const float *table, const I *ids, float *o, int64_t L,
					int64_t V, int64_t D, const int *flag)
{
	if (*flag)
		return;
	for (int64_t i = blockIdx.x; i < L; i += gridDim.x) {
		const int64_t id = (int64_t)ids[i];
		if (id < 0 || id >= V)
			continue; /* never after a clean validate */
		const float *src = table + id * D;
		float *dst = o + i * D;
		for (int64_t k = threadIdx.x; k < D; k += blockDim.x)
			dst[k] = src[k];
	}
}

template <typename I, typename J>
static __global__ void embedding_bag_gather(const float *table, const I *ids, const J *offs,
					    float *o, int64_t L, int64_t B, int64_t V, int64_t D,
					    int mean, const int *flag)
{
	if (*flag)
		return;
	for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
		const int64_t begin = (int64_t)offs[b];
		const int64_t end = b + 1 < B ? (int64_t)offs[b + 1] : L;
		const float scale = end > begin ? 1.0f / (float)(end - begin) : 1.0f;
		for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
			float acc = 0.0f;
			for (int64_t j = begin; j < end; j++) {
				const int64_t id = (int64_t)ids[j];
				if (id >= 0 && id < V) /* always, after a clean validate */
					acc += table[id * D + k];
			}
			o[b * D + k] = mean ? acc * scale : acc;
		}
	}
}

template <typename I>
static int ids_check(struct swarm_cuda_ctx *c, const void *ids, int64_t L, int64_t V)
{
	if (L == 0)
		return 0;
	ids_validate<I>
		<<<swarm_cuda_blocks(L, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0, c->stream>>>(
			(const I *)ids, L, V, c->err_flag);
	CUDA_CHECK_LAUNCH();
	return 0;
}

template <typename J>
static int offsets_check(struct swarm_cuda_ctx *c, const void *offs, int64_t B, int64_t L)
{
	if (B == 0)
		return 0;
	offsets_validate<J>
		<<<swarm_cuda_blocks(B, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0, c->stream>>>(
			(const J *)offs, B, L, c->err_flag);
	CUDA_CHECK_LAUNCH();
	return 0;
}

template <typename I>
static int embedding_launch(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	const int64_t L = d->count, V = d->vocab, D = d->cols;
	int ret = ids_check<I>(c, n->in[1]->data, L, V);

	if (ret || L == 0 || D == 0)
		return ret;
	embedding_gather<I><<<swarm_cuda_blocks(L, 1), 128, 0, c->stream>>>(
		(const float *)n->in[0]->data, (const I *)n->in[1]->data, (float *)n->out->data, L,
		V, D, c->err_flag);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_op_embedding(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	if (n->in[1]->dtype == SWARM_DTYPE_I32)
		return embedding_launch<int32_t>(c, n, d);
	return embedding_launch<int64_t>(c, n, d);
}

template <typename I, typename J>
static int embedding_bag_launch(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				const struct swarm_node_dims *d)
{
	const int64_t L = d->count, B = d->batch, V = d->vocab, D = d->cols;
	int ret = ids_check<I>(c, n->in[1]->data, L, V);

	if (!ret)
		ret = offsets_check<J>(c, n->in[2]->data, B, L);
	if (ret || B == 0 || D == 0)
		return ret;
	embedding_bag_gather<I, J><<<swarm_cuda_blocks(B, 1), 128, 0, c->stream>>>(
		(const float *)n->in[0]->data, (const I *)n->in[1]->data, (const J *)n->in[2]->data,
		(float *)n->out->data, L, B, V, D, n->p.bag_mode == SWARM_BAG_MEAN, c->err_flag);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_op_embedding_bag(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				const struct swarm_node_dims *d)
{
	const int ids32 = n->in[1]->dtype == SWARM_DTYPE_I32;
	const int offs32 = n->in[2]->dtype == SWARM_DTYPE_I32;

	if (ids32 && offs32)
		return embedding_bag_launch<int32_t, int32_t>(c, n, d);
	if (ids32)
		return embedding_bag_launch<int32_t, int64_t>(c, n, d);
	if (offs32)
		return embedding_bag_launch<int64_t, int32_t>(c, n, d);
	return embedding_bag_launch<int64_t, int64_t>(c, n, d);
}
