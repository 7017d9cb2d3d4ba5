/* layout.cu: reductions, transpose, reshape, slice, gather, pad and cast on the CUDA device
 * (layout.cuh). One thread per output element, its input offsets found from its index over
 * shapes and strides the host passes by value; the rules are the CPU's (kernels/cpu/layout.c).
 */
#include "layout.cuh"

#include "kernels/op.h"
#include "kernels/op_math.h"

#define MAXD SWARM_TENSOR_MAX_DIMS

/* Up to MAXD dims and an element stride per dim. */
struct dims_arg {
	int nd;
	int64_t shape[MAXD], step[MAXD];
};

/* The offset of element e of a row-major walk of d (the last dim fastest). */
static __device__ __forceinline__ int64_t walk(const dims_arg &d, int64_t e)
{
	int64_t off = 0;
	for (int k = d.nd - 1; k >= 0; k--) {
		off += (e % d.shape[k]) * d.step[k];
		e /= d.shape[k];
	}
	return off;
}

static void strides_of(const struct swarm_tensor *t, int64_t *s)
{
	int64_t step = 1;
	for (int i = (int)t->ndim - 1; i >= 0; i--) {
		s[i] = step;
		step *= t->shape[i];
	}
}

/* ---- reductions ------------------------------------------------------------------------------ */

static __global__ void reduce_f32(const float *x, float *o, dims_arg kept, dims_arg red,
				  int64_t n_red, int is_max, float scale, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const float *base = x + walk(kept, e);
		float acc = is_max ? -INFINITY : 0.0f;
		for (int64_t r = 0; r < n_red; r++) {
			const float v = base[walk(red, r)];
			if (is_max)
				acc = v > acc || v != v ? v : acc;
			else
				acc += v;
		}
		o[e] = is_max ? acc : acc * scale;
	}
}

int swarm_cuda_op_reduce(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	int64_t xs[MAXD];
	dims_arg kept, red;
	int64_t n_red = 1;
	strides_of(x, xs);
	kept.nd = red.nd = 0;
	for (uint32_t i = 0; i < x->ndim; i++) {
		dims_arg &t = n->p.axes & (1u << i) ? red : kept;
		t.shape[t.nd] = x->shape[i];
		t.step[t.nd++] = xs[i];
		if (n->p.axes & (1u << i))
			n_red *= x->shape[i];
	}
	if (kept.nd == 0) {
		kept.nd = 1;
		kept.shape[0] = 1;
		kept.step[0] = 0;
	}
	const bool is_max = n->op == SWARM_OP_REDUCE_MAX;
	const float scale =
		n->op == SWARM_OP_REDUCE_MEAN && n_red > 0 ? (float)(1.0 / (double)n_red) : 1.0f;
	if (d->elems == 0)
		return 0;
	reduce_f32<<<swarm_cuda_blocks(d->elems, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
		     c->stream>>>((const float *)x->data, (float *)n->out->data, kept, red, n_red,
				  is_max, scale, d->elems);
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* ---- transpose, slice, reshape --------------------------------------------------------------- */

/* out[e] = src[base + walk(d, e)]: transpose (steps permuted) and slice (steps scaled). */
static __global__ void strided_copy(const float *src, float *o, dims_arg d, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride)
		o[e] = src[walk(d, e)];
}

static int copy_launch(struct swarm_cuda_ctx *c, const float *src, float *o, const dims_arg &d,
		       int64_t total)
{
	if (total == 0)
		return 0;
	strided_copy<<<swarm_cuda_blocks(total, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
		       c->stream>>>(src, o, d, total);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_op_transpose(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	int64_t xs[MAXD];
	dims_arg a;
	strides_of(x, xs);
	a.nd = (int)x->ndim;
	for (uint32_t i = 0; i < x->ndim; i++) {
		a.shape[i] = n->out->shape[i];
		a.step[i] = xs[n->p.perm[i]]; /* output dim i walks input dim perm[i] */
	}
	return copy_launch(c, (const float *)x->data, (float *)n->out->data, a, d->elems);
}

int swarm_cuda_op_slice(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			const struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	int64_t base;
	dims_arg a;
	a.nd = (int)x->ndim;
	swarm_slice_plan(x, &n->p, a.step, &base);
	for (uint32_t i = 0; i < x->ndim; i++)
		a.shape[i] = n->out->shape[i];
	return copy_launch(c, (const float *)x->data + base, (float *)n->out->data, a, d->elems);
}

int swarm_cuda_op_reshape(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			  const struct swarm_node_dims *d)
{
	if (d->elems == 0 || n->out->data == n->in[0]->data)
		return 0;
	CUDA_CHECK_RET(cudaMemcpyAsync(n->out->data, n->in[0]->data,
				       (size_t)d->elems * sizeof(float), cudaMemcpyDeviceToDevice,
				       c->stream));
	return 0;
}

/* ---- gather ---------------------------------------------------------------------------------- */

/* ONNX's rule: an index in [-dim, dim), negative from the end. Any other sets *flag. */
template <typename I>
static __global__ void gather_validate(const I *idx, int64_t count, int64_t dim, int *flag)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
		const int64_t v = (int64_t)idx[i];
		if (v < -dim || v >= dim)
			*flag = 1;
	}
}

/* out [outer, count, inner] from x [outer, dim, inner]; nothing when *flag is set. */
template <typename I>
static __global__ void gather_f32(const float *x, const I *idx, float *o, int64_t count,
				  int64_t dim, int64_t inner, int64_t total, const int *flag)
{
	if (*flag)
		return;
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const int64_t k = e % inner, i = (e / inner) % count, r = e / (inner * count);
		int64_t v = (int64_t)idx[i];
		v = v < 0 ? v + dim : v;
		if (v >= 0 && v < dim) /* always, after a clean validate */
			o[e] = x[(r * dim + v) * inner + k];
	}
}

template <typename I>
static int gather_launch(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const I *idx = (const I *)n->in[1]->data;
	if (d->count > 0) {
		gather_validate<I>
			<<<swarm_cuda_blocks(d->count, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
			   c->stream>>>(idx, d->count, d->vocab, c->err_flag);
		CUDA_CHECK_LAUNCH();
	}
	if (d->elems == 0)
		return 0;
	gather_f32<I><<<swarm_cuda_blocks(d->elems, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
			c->stream>>>((const float *)n->in[0]->data, idx, (float *)n->out->data,
				     d->count, d->vocab, d->cols > 0 ? d->cols : 1, d->elems,
				     c->err_flag);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_op_gather(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	return n->in[1]->dtype == SWARM_DTYPE_I32 ? gather_launch<int32_t>(c, n, d) :
						    gather_launch<int64_t>(c, n, d);
}

/* ---- pad ------------------------------------------------------------------------------------- */

struct pad_arg {
	int nd;
	uint32_t mode;
	float value;
	int64_t out[MAXD], in[MAXD], step[MAXD], begin[MAXD];
};

static __global__ void pad_f32(const float *x, float *o, pad_arg a, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		int64_t rest = e, off = 0;
		bool inside = true;
		for (int k = a.nd - 1; k >= 0; k--) {
			const int64_t s =
				swarm_pad_src(a.mode, rest % a.out[k], a.begin[k], a.in[k]);
			rest /= a.out[k];
			inside = inside && s >= 0;
			off += s * a.step[k];
		}
		o[e] = inside ? x[off] : a.value;
	}
}

int swarm_cuda_op_pad(struct swarm_cuda_ctx *c, const struct swarm_node *n,
		      const struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	pad_arg a;
	a.nd = (int)x->ndim;
	a.mode = n->p.mode;
	a.value = n->p.value;
	strides_of(x, a.step);
	for (uint32_t i = 0; i < x->ndim; i++) {
		a.out[i] = n->out->shape[i];
		a.in[i] = x->shape[i];
		a.begin[i] = n->p.pads[i];
	}
	if (d->elems == 0)
		return 0;
	pad_f32<<<swarm_cuda_blocks(d->elems, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0, c->stream>>>(
		(const float *)x->data, (float *)n->out->data, a, d->elems);
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* ---- cast ------------------------------------------------------------------------------------ */

template <typename S, typename T>
static __global__ void cast_kernel(const S *x, T *o, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride)
		o[e] = swarm_from_f32<T>(swarm_to_f32(x[e]));
}

template <typename S>
static int cast_from(struct swarm_cuda_ctx *c, const void *x, void *o, uint32_t to, int64_t total)
{
	const unsigned int blocks = swarm_cuda_blocks(total, SWARM_CUDA_THREADS);
	switch (to) {
	case SWARM_DTYPE_F32:
		cast_kernel<S, float><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(
			(const S *)x, (float *)o, total);
		break;
	case SWARM_DTYPE_F16:
		cast_kernel<S, __half><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(
			(const S *)x, (__half *)o, total);
		break;
	case SWARM_DTYPE_BF16:
		cast_kernel<S, __nv_bfloat16><<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(
			(const S *)x, (__nv_bfloat16 *)o, total);
		break;
	default:
		return -EINVAL;
	}
	CUDA_CHECK_LAUNCH();
	return 0;
}

int swarm_cuda_op_cast(struct swarm_cuda_ctx *c, const struct swarm_node *n,
		       const struct swarm_node_dims *d)
{
	const void *x = n->in[0]->data;
	void *o = n->out->data;
	if (d->elems == 0)
		return 0;
	switch (n->in[0]->dtype) {
	case SWARM_DTYPE_F32:
		return cast_from<float>(c, x, o, n->out->dtype, d->elems);
	case SWARM_DTYPE_F16:
		return cast_from<__half>(c, x, o, n->out->dtype, d->elems);
	case SWARM_DTYPE_BF16:
		return cast_from<__nv_bfloat16>(c, x, o, n->out->dtype, d->elems);
	default:
		return -EINVAL;
	}
}
