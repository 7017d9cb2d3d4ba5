/* layout.c: the CPU device's ops that move or reduce elements rather than compute them (ops.h):
 * reductions over any set of dims, transpose, reshape (a copy: the graph executor makes most
 * reshapes views), slice with steps, gather on any axis, pad (constant, reflect, edge), and
 * cast between f32, f16 and bf16. Every index a client could have sent (gather's) is checked
 * before the first write.
 */
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "swarm/swarm.h"

#include "kernels/op.h"
#include "kernels/op_math.h"

/* Row-major strides of t (elements). */
static void strides_of(const struct swarm_tensor *t, int64_t *s)
{
	int64_t step = 1;
	for (int i = (int)t->ndim - 1; i >= 0; i--) {
		s[i] = step;
		step *= t->shape[i];
	}
}

/* ---- reductions ------------------------------------------------------------------------------ */

/* Reduces x viewed as [outer, red, inner] over red into o [outer, inner]: sum or max, the
 * inner elements a vector's lanes. inner 1 (the reduced dims last) sums each row in 8 partial
 * sums. */
SWARM_INLINE void swarm_cpu_reduce_block_body(const float *x, float *o, int64_t outer, int64_t red,
					      int64_t inner, bool is_max, float scale)
{
	for (int64_t a = 0; a < outer; a++) {
		const float *xa = x + a * red * inner;
		float *oa = o + a * inner;
		if (inner == 1) {
			/* 8 partial results in a vector, the tail and the lanes folded after */
			swarm_v8 acc = SWARM_V8_SET1(is_max ? -INFINITY : 0.0f);
			int64_t r = 0;
			if (is_max) {
				for (; r + 8 <= red; r += 8) {
					const swarm_v8 v = SWARM_V8_LOAD(xa + r);
					acc = SWARM_V8_SELECT((v > acc) | (v != v), v, acc);
				}
			} else {
				for (; r + 8 <= red; r += 8)
					acc += SWARM_V8_LOAD(xa + r);
			}
			float lanes[8], t = is_max ? -INFINITY : 0.0f;
			SWARM_V8_STORE(lanes, acc);
			for (int j = 0; j < 8; j++)
				t = is_max ? (lanes[j] > t || lanes[j] != lanes[j] ? lanes[j] : t) :
					     t + lanes[j];
			for (; r < red; r++)
				t = is_max ? (xa[r] > t || xa[r] != xa[r] ? xa[r] : t) : t + xa[r];
			oa[0] = is_max ? t : t * scale;
			continue;
		}
		memcpy(oa, xa, (size_t)inner * sizeof(float));
		for (int64_t r = 1; r < red; r++) {
			const float *xr = xa + r * inner;
			if (is_max) {
				for (int64_t i = 0; i < inner; i++) {
					const float v = xr[i], c = oa[i];
					oa[i] = v > c || v != v ? v : c;
				}
			} else {
				for (int64_t i = 0; i < inner; i++)
					oa[i] += xr[i];
			}
		}
		for (int64_t i = 0; !is_max && scale != 1.0f && i < inner; i++)
			oa[i] *= scale;
	}
}

SWARM_CPU_MULTI_VOID(, swarm_cpu_reduce_block,
		     (const float *x, float *o, int64_t outer, int64_t red, int64_t inner,
		      bool is_max, float scale),
		     (x, o, outer, red, inner, is_max, scale))

/* Reduces the dims of n's input over the mask axes when they are one consecutive run (NCHW's
 * channels, or its H and W): one pass over [outer, red, inner], in floats, vectorised.
 * Returns 0, or 1 when the axes are not one run. */
static int reduce_run(const struct swarm_node *n, const struct swarm_node_dims *d, bool is_max)
{
	const struct swarm_tensor *x = n->in[0];
	const uint32_t axes = n->p.axes;
	int first = -1, last = -1;
	for (int i = 0; i < (int)x->ndim; i++)
		if (axes & (1u << i)) {
			if (first < 0)
				first = i;
			last = i;
		}
	for (int i = first; first >= 0 && i <= last; i++)
		if (!(axes & (1u << i)))
			return 1;
	if (first < 0)
		return 1;
	int64_t outer = 1, inner = 1, red = 1;
	for (int i = 0; i < (int)x->ndim; i++) {
		if (i < first)
			outer *= x->shape[i];
		else if (i > last)
			inner *= x->shape[i];
		else
			red *= x->shape[i];
	}
	float *o = n->out->data;
	if (red == 0) {
		for (int64_t i = 0; i < d->elems; i++)
			o[i] = is_max ? -INFINITY : 0.0f;
		return 0;
	}
	const float scale = n->op == SWARM_OP_REDUCE_MEAN ? (float)(1.0 / (double)red) : 1.0f;
	swarm_cpu_reduce_block(x->data, o, outer, red, inner, is_max, scale);
	return 0;
}

int swarm_cpu_reduce(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	const uint32_t axes = n->p.axes;
	const float *xd = x->data;
	float *o = n->out->data;
	const bool is_max = n->op == SWARM_OP_REDUCE_MAX;
	if (reduce_run(n, d, is_max) == 0)
		return 0;
	/* Any other axes: the output's stride for each input dim (0 where it is reduced), out
	 * as kept dims. */
	int64_t os[SWARM_TENSOR_MAX_DIMS], kept = 1, red = 1;
	for (int i = (int)x->ndim - 1; i >= 0; i--) {
		if (axes & (1u << i)) {
			os[i] = 0;
			red *= x->shape[i];
		} else {
			os[i] = kept;
			kept *= x->shape[i];
		}
	}
	/* Accumulate in doubles (sums of many floats), then scale or copy out. */
	double *acc = (double *)swarm_cpu_ws_get(ws, (size_t)d->elems * 2 + 2);
	if (!acc)
		return -ENOMEM;
	for (int64_t i = 0; i < d->elems; i++)
		acc[i] = is_max ? -INFINITY : 0.0;
	int64_t idx[SWARM_TENSOR_MAX_DIMS] = { 0 }, off = 0;
	const int64_t total = swarm_tensor_elems(x);
	for (int64_t e = 0; e < total; e++) {
		double v = xd[e];
		if (is_max)
			acc[off] = v > acc[off] || v != v ? v : acc[off];
		else
			acc[off] += v;
		for (int k = (int)x->ndim - 1; k >= 0; k--) {
			off += os[k];
			if (++idx[k] < x->shape[k])
				break;
			off -= os[k] * x->shape[k];
			idx[k] = 0;
		}
	}
	const double scale = n->op == SWARM_OP_REDUCE_MEAN && red > 0 ? 1.0 / (double)red : 1.0;
	for (int64_t i = 0; i < d->elems; i++)
		o[i] = (float)(is_max ? acc[i] : acc[i] * scale);
	return 0;
}

/* ---- transpose, reshape -----------------------------------------------------------------------
 */

/* Copies out's elems elements (of out's shape, nd dims) from src, output dim i stepping src by
 * step[i] elements: the one loop of transpose (steps permuted) and slice (steps scaled). */
static void strided_copy(float *o, const int64_t *shape, uint32_t nd, const float *src,
			 const int64_t *step, int64_t elems)
{
	if (elems == 0)
		return;
	if (nd == 0) {
		o[0] = src[0];
		return;
	}
	const int last = (int)nd - 1;
	const int64_t inner = shape[last], s = step[last];
	int64_t idx[SWARM_TENSOR_MAX_DIMS] = { 0 }, off = 0;
	/* An odometer over the outer dims; each turn copies one innermost row. */
	for (int64_t done = 0; done < elems; done += inner) {
		if (s == 1) {
			memcpy(o + done, src + off, (size_t)inner * sizeof(float));
		} else {
			for (int64_t k = 0; k < inner; k++)
				o[done + k] = src[off + k * s];
		}
		for (int k = last - 1; k >= 0; k--) {
			off += step[k];
			if (++idx[k] < shape[k])
				break;
			off -= step[k] * shape[k];
			idx[k] = 0;
		}
	}
}

int swarm_cpu_transpose(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d)
{
	(void)ws;
	const struct swarm_tensor *x = n->in[0];
	int64_t xs[SWARM_TENSOR_MAX_DIMS], step[SWARM_TENSOR_MAX_DIMS];
	strides_of(x, xs);
	/* Output dim i walks input dim perm[i]. */
	for (uint32_t i = 0; i < x->ndim; i++)
		step[i] = xs[n->p.perm[i]];
	strided_copy(n->out->data, n->out->shape, x->ndim, x->data, step, d->elems);
	return 0;
}

int swarm_cpu_reshape(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		      const struct swarm_node_dims *d)
{
	(void)ws;
	if (d->elems > 0 && n->out->data != n->in[0]->data)
		memmove(n->out->data, n->in[0]->data, (size_t)d->elems * sizeof(float));
	return 0;
}

/* ---- slice, gather, pad ---------------------------------------------------------------------- */

int swarm_cpu_slice(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		    const struct swarm_node_dims *d)
{
	(void)ws;
	const struct swarm_tensor *x = n->in[0];
	int64_t step[SWARM_TENSOR_MAX_DIMS], base;
	swarm_slice_plan(x, &n->p, step, &base);
	strided_copy(n->out->data, n->out->shape, x->ndim, (const float *)x->data + base, step,
		     d->elems);
	return 0;
}

static int64_t index_at(const struct swarm_tensor *t, int64_t i)
{
	if (t->dtype == SWARM_DTYPE_I32)
		return ((const int32_t *)t->data)[i];
	return ((const int64_t *)t->data)[i];
}

int swarm_cpu_gather(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d)
{
	(void)ws;
	const struct swarm_tensor *idx = n->in[1];
	const int64_t outer = d->rows, dim = d->vocab, inner = d->cols, count = d->count;
	/* Every index first (ONNX's: negative counts from the end): nothing is written for a
	 * node with one out of range. */
	for (int64_t i = 0; i < count; i++) {
		int64_t v = index_at(idx, i);
		if (v < -dim || v >= dim)
			return -EINVAL;
	}
	const float *x = n->in[0]->data;
	float *o = n->out->data;
	for (int64_t r = 0; r < outer; r++)
		for (int64_t i = 0; i < count; i++) {
			int64_t v = index_at(idx, i);
			v = v < 0 ? v + dim : v;
			memcpy(o + (r * count + i) * inner, x + (r * dim + v) * inner,
			       (size_t)inner * sizeof(float));
		}
	return 0;
}

int swarm_cpu_pad(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		  const struct swarm_node_dims *d)
{
	(void)ws;
	const struct swarm_tensor *x = n->in[0], *o = n->out;
	const uint32_t nd = x->ndim;
	int64_t xs[SWARM_TENSOR_MAX_DIMS], idx[SWARM_TENSOR_MAX_DIMS] = { 0 };
	strides_of(x, xs);
	const float *xd = x->data;
	float *od = o->data;
	const float value = n->p.value;
	for (int64_t e = 0; e < d->elems; e++) {
		int64_t off = 0;
		bool inside = true;
		for (uint32_t k = 0; k < nd && inside; k++) {
			int64_t s = swarm_pad_src(n->p.mode, idx[k], n->p.pads[k], x->shape[k]);
			inside = s >= 0;
			off += s * xs[k];
		}
		od[e] = inside ? xd[off] : value;
		for (int k = (int)nd - 1; k >= 0; k--) {
			if (++idx[k] < o->shape[k])
				break;
			idx[k] = 0;
		}
	}
	return 0;
}

/* ---- cast -------------------------------------------------------------------------------------
 */

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	uint32_t bits;
	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | (man << 13);
	} else if (exp) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man) {
		/* subnormal: normalise */
		int e = -1;
		do {
			man <<= 1;
			e++;
		} while (!(man & 0x400));
		bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
	} else {
		bits = sign;
	}
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* Round to nearest, ties to even, as every GPU and numpy do. */
static uint16_t float_to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof x);
	uint32_t sign = (x >> 16) & 0x8000, absx = x & 0x7fffffffu;
	if (absx >= 0x7f800000u) /* inf or NaN */
		return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
	if (absx >= 0x477ff000u) /* rounds to infinity */
		return (uint16_t)(sign | 0x7c00);
	if (absx < 0x38800000u) { /* subnormal or zero */
		if (absx < 0x33000000u)
			return (uint16_t)sign;
		uint32_t e = absx >> 23, man = (absx & 0x7fffff) | 0x800000;
		uint32_t shift = 126 - e; /* 14..24 */
		uint32_t v = man >> shift, rem = man & ((1u << shift) - 1),
			 half = 1u << (shift - 1);
		if (rem > half || (rem == half && (v & 1)))
			v++;
		return (uint16_t)(sign | v);
	}
	uint32_t v = ((absx >> 13) - (112 << 10)), rem = absx & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (v & 1)))
		v++;
	return (uint16_t)(sign | v);
}

static float bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

static uint16_t float_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof x);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40); /* a quiet NaN */
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

int swarm_cpu_cast(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		   const struct swarm_node_dims *d)
{
	(void)ws;
	const uint32_t from = n->in[0]->dtype, to = n->out->dtype;
	const void *x = n->in[0]->data;
	void *o = n->out->data;
	for (int64_t i = 0; i < d->elems; i++) {
		float v = from == SWARM_DTYPE_F32 ? ((const float *)x)[i] :
			  from == SWARM_DTYPE_F16 ? half_to_float(((const uint16_t *)x)[i]) :
						    bf16_to_float(((const uint16_t *)x)[i]);
		if (to == SWARM_DTYPE_F32)
			((float *)o)[i] = v;
		else if (to == SWARM_DTYPE_F16)
			((uint16_t *)o)[i] = float_to_half(v);
		else
			((uint16_t *)o)[i] = float_to_bf16(v);
	}
	return 0;
}
