/* concat.cu: out is rows rows (the product of the dims before the axis) of total elements
 * (d->cols); input k, of w = its dim on the axis times the elements a step of the axis,
 * goes to columns [off, off + w) of every row: one grid-stride pass over the input's
 * elements, reads contiguous, writes contiguous within each row. */
#include "concat.cuh"

static __global__ void concat_f32(const float *x, float *o, int64_t rows, int64_t w, int64_t total,
				  int64_t off)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	const int64_t n = rows * w;

	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
		const int64_t r = e / w;
		o[r * total + off + (e - r * w)] = x[e];
	}
}

int swarm_cuda_op_concat(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const int ax = n->p.axis < 0 ? (int)n->in[0]->ndim + n->p.axis : n->p.axis;
	int64_t off = 0;

	for (uint32_t k = 0; k < n->n_in; k++) {
		const int64_t w = n->in[k]->shape[ax] * d->count;
		if (w > 0 && d->rows > 0) {
			concat_f32<<<swarm_cuda_blocks(d->rows * w, SWARM_CUDA_THREADS),
				     SWARM_CUDA_THREADS, 0, c->stream>>>(
				(const float *)n->in[k]->data, (float *)n->out->data, d->rows, w,
				d->cols, off);
			CUDA_CHECK_LAUNCH();
		}
		off += w;
	}
	return 0;
}
