/* op_vision.c: the op contracts (op.h) of convolution and pooling, reductions and layout ops
 * (reshape, transpose, slice, pad, gather, cast, resize): their parameter checks, shape
 * inference and kernel dims, for the table in op.c. Shapes may carry the batch as a symbol
 * (op.c says how every rule treats it).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kernels/op_rules.h"

/* ---- convolution and pooling ----------------------------------------------------------- */

static int32_t or1(int32_t v) { return v ? v : 1; }

/* One spatial dim's output size of a window kh (dilated by d, stride s) over in padded by pb
 * and pe, floor or (ceil_mode) ceil, or -1 when none fits. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t dl, int64_t pb, int64_t pe,
			  int ceil_mode)
{
	int64_t span = in + pb + pe - dl * (k - 1) - 1;
	if (span < 0)
		return -1;
	int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
	/* The last window must start inside the input or its leading pad (PyTorch's and ONNX
	 * Runtime's rule for ceil_mode). */
	if (ceil_mode && (o - 1) * s >= in + pb)
		o--;
	return o;
}

/* The window parameters, checked: strides and dilations >= 1, pads >= 0 (4 or none). */
static int window_params(struct swarm_op_args *a, int64_t pads[4])
{
	const struct swarm_op_params *p = a->p;
	if (p->stride[0] < 0 || p->stride[1] < 0 || p->dilation[0] < 0 || p->dilation[1] < 0)
		return refuse(a, 0, "strides and dilations must be positive");
	if (p->n_pads != 0 && p->n_pads != 4)
		return refuse(a, 0, "pads has %u values, not 4 (top, left, bottom, right)",
			      p->n_pads);
	for (int i = 0; i < 4; i++) {
		pads[i] = p->n_pads ? p->pads[i] : 0;
		if (pads[i] < 0 || pads[i] > 1 << 20)
			return refuse(a, 0, "pads[%d] = %lld is out of range", i,
				      (long long)pads[i]);
	}
	return 0;
}

static bool fused_act_ok(uint32_t act)
{
	return act == SWARM_OP_IDENTITY || act == SWARM_OP_RELU || act == SWARM_OP_GELU ||
	       act == SWARM_OP_SIGMOID || act == SWARM_OP_TANH || act == SWARM_OP_HARDSIGMOID ||
	       act == SWARM_OP_HARDSWISH || act == SWARM_OP_LEAKY_RELU || act == SWARM_OP_CLIP;
}

int op_conv_params(const struct swarm_op_params *p) { return fused_act_ok(p->act); }

/* The 4-dim float X [N, C, H, W] every 2-D spatial op takes. */
static int nchw(struct swarm_op_args *a, const char *op)
{
	const struct swarm_tensor *x = a->in[0];
	if (!is_float(x->dtype) || x->ndim != 4 || x->shape[1] < 0 || x->shape[2] < 0 ||
	    x->shape[3] < 0)
		return refuse(a, IN(0), "%s takes a float X [N, C, H, W]", op);
	return 0;
}

static int infer_conv(struct swarm_op_args *a, struct swarm_tensor *out, bool transpose)
{
	const struct swarm_tensor *x = a->in[0], *w = a->in[1];
	const struct swarm_op_params *p = a->p;
	const char *op = transpose ? "conv_transpose2d" : "conv2d";
	int64_t pads[4];
	int rc = nchw(a, op);
	if (rc || (rc = window_params(a, pads)))
		return rc;
	int64_t g = p->group ? p->group : 1, C = x->shape[1];
	if (w->ndim != 4 || w->dtype != x->dtype || w->shape[2] < 1 || w->shape[3] < 1)
		return refuse(a, IN(1), "%s's weight is 4-dim, of X's dtype", op);
	int64_t M = transpose ? w->shape[1] * g : w->shape[0];
	bool ok = transpose ? w->shape[0] == C && C % g == 0 :
			      C % g == 0 && M % g == 0 && w->shape[1] * g == C;
	if (!ok)
		return refuse(a, IN(0) | IN(1),
			      transpose ?
				      "conv_transpose2d takes X [N, C, H, W] and W [C, M / "
				      "group, kh, kw]" :
				      "conv2d takes X [N, C, H, W] and W [M, C / group, kh, kw]");
	if (a->n_in == 3) {
		const struct swarm_tensor *b = a->in[2];
		if (b->ndim != 1 || b->dtype != x->dtype || b->shape[0] != M)
			return refuse(a, IN(1) | IN(2), "%s's bias is [M], M the output channels",
				      op);
	}
	if (!fused_act_ok(p->act))
		return refuse(a, 0, "act %u is not an activation %s can fuse", p->act, op);
	like(out, x);
	out->shape[1] = M;
	for (int i = 0; i < 2; i++) {
		int64_t in = x->shape[2 + i], k = w->shape[2 + i], s = or1(p->stride[i]),
			dl = or1(p->dilation[i]), o;
		if (transpose) {
			if (p->out_pad[i] < 0 || p->out_pad[i] >= (s > dl ? s : dl))
				return refuse(a, 0,
					      "output_padding must be below the stride or "
					      "dilation");
			o = s * (in - 1) + p->out_pad[i] + dl * (k - 1) + 1 - pads[i] - pads[i + 2];
		} else {
			o = window_out(in, k, s, dl, pads[i], pads[i + 2], 0);
		}
		if (o < 1)
			return refuse(a, IN(0) | IN(1), "%s leaves no output on spatial dim %d", op,
				      i);
		out->shape[2 + i] = o;
	}
	return 0;
}

int op_infer_conv2d(struct swarm_op_args *a, struct swarm_tensor *out)
{
	return infer_conv(a, out, false);
}

int op_infer_conv_transpose2d(struct swarm_op_args *a, struct swarm_tensor *out)
{
	return infer_conv(a, out, true);
}

/* The GEMMs a conv becomes (M x C/g*kh*kw by C/g*kh*kw x H'W') take int dims. */
int op_dims_conv(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *w = n->in[1], *o = n->out;
	d->batch = o->shape[0];
	d->has_bias = n->n_in == 3;
	return fits_int(w->shape[0] * w->shape[1]) &&
			       fits_int(w->shape[1] * w->shape[2] * w->shape[3]) &&
			       fits_int(o->shape[2] * o->shape[3]) &&
			       fits_int(n->in[0]->shape[2] * n->in[0]->shape[3]) ?
		       0 :
		       -EINVAL;
}

int op_infer_pool(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	const struct swarm_op_params *p = a->p;
	const char *op = a->op == SWARM_OP_MAX_POOL2D ? "max_pool2d" : "avg_pool2d";
	int64_t pads[4];
	int rc = nchw(a, op);
	if (rc || (rc = window_params(a, pads)))
		return rc;
	if (p->kernel[0] < 1 || p->kernel[1] < 1)
		return refuse(a, 0, "%s needs kernel_shape of two positive sizes", op);
	like(out, x);
	for (int i = 0; i < 2; i++) {
		int64_t k = p->kernel[i];
		if (pads[i] >= k || pads[i + 2] >= k)
			return refuse(a, 0,
				      "a pad as wide as the window leaves windows of pad only");
		int64_t o = window_out(x->shape[2 + i], k, or1(p->stride[i]), or1(p->dilation[i]),
				       pads[i], pads[i + 2], p->ceil_mode != 0);
		if (o < 1)
			return refuse(a, IN(0), "the window is larger than the padded input");
		out->shape[2 + i] = o;
	}
	return 0;
}

/* [N, C, ...] to [N, C, 1, ...]. */
int op_infer_global_pool(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	if (!is_float(x->dtype) || x->ndim < 3)
		return refuse(a, IN(0), "global_avg_pool takes a float X [N, C, spatial..]");
	like(out, x);
	for (uint32_t i = 2; i < x->ndim; i++)
		out->shape[i] = 1;
	return 0;
}

int op_dims_global_pool(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	d->rows = dims_prod(x, 0, 2);
	d->cols = dims_prod(x, 2, x->ndim);
	return 0;
}

int op_resize_params(const struct swarm_op_params *p)
{
	return p->mode <= SWARM_RESIZE_LINEAR && p->coord <= SWARM_COORD_PYTORCH_HALF_PIXEL &&
	       p->nearest <= SWARM_NEAREST_CEIL;
}

int op_infer_resize(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	const struct swarm_op_params *p = a->p;
	int rc = nchw(a, "resize");
	if (rc)
		return rc;
	if (!op_resize_params(p))
		return refuse(a, 0, "mode, coordinate_transformation_mode or nearest_mode unknown");
	like(out, x);
	for (int i = 0; i < 2; i++) {
		int64_t o = p->sizes[i];
		if (o == 0) {
			double s = p->scales[i];
			if (!(s > 0.0 && s < 1e6))
				return refuse(a, 0, "resize needs sizes or positive scales");
			o = (int64_t)((double)x->shape[2 + i] * s);
		}
		if (o < 1 || o > (1 << 24))
			return refuse(a, IN(0), "resize's output size %lld is out of range",
				      (long long)o);
		out->shape[2 + i] = o;
	}
	return 0;
}

int op_infer_batchnorm(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	if (!is_float(x->dtype) || x->ndim < 2 || x->shape[1] < 0)
		return refuse(a, IN(0), "batchnorm takes a float X [N, C, ..]");
	for (uint32_t j = 1; j < 5; j++) {
		const struct swarm_tensor *q = a->in[j];
		if (q->ndim != 1 || q->dtype != x->dtype || q->shape[0] != x->shape[1])
			return refuse(
				a, IN(0) | IN(j),
				"batchnorm takes X [N, C, ..] and scale, bias, mean, var [C]");
	}
	if (eps_or(a->p->eps, 1e-5f) < 0)
		return refuse(a, 0, "eps %g is not a positive number", (double)a->p->eps);
	like(out, x);
	return 0;
}

int op_dims_batchnorm(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	d->batch = x->shape[0];
	d->cols = x->shape[1];
	d->count = dims_prod(x, 2, x->ndim); /* elements per channel and sample */
	d->eps = eps_or(n->p.eps, 1e-5f);
	return 0;
}

/* ---- reductions ------------------------------------------------------------------------------ */

int op_infer_reduce(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	uint32_t axes = a->p->axes;
	if (!is_float(x->dtype))
		return refuse(a, IN(0), "it reduces a float tensor");
	if (axes == 0 || axes >> x->ndim)
		return refuse(a, IN(0), "axes must name dims of X (one at least)");
	if ((axes & 1) && x->ndim && x->shape[0] < 0)
		return refuse(a, IN(0), "it cannot reduce over the batch dimension");
	like(out, x);
	uint32_t o = 0;
	for (uint32_t i = 0; i < x->ndim; i++) {
		if (!(axes & (1u << i)))
			out->shape[o++] = x->shape[i];
		else if (a->p->keepdims)
			out->shape[o++] = 1;
	}
	out->ndim = o;
	return 0;
}

/* ---- layout ---------------------------------------------------------------------------------- */

int op_infer_transpose(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	const struct swarm_op_params *p = a->p;
	uint32_t seen = 0;
	if (p->n_shape != x->ndim)
		return refuse(a, IN(0), "perm has %u dims, X has %u", p->n_shape, x->ndim);
	like(out, x);
	for (uint32_t i = 0; i < x->ndim; i++) {
		int64_t d = p->perm[i];
		if (d < 0 || d >= x->ndim || (seen & (1u << d)))
			return refuse(a, 0, "perm is not a permutation of X's dims");
		seen |= 1u << d;
		out->shape[i] = x->shape[d];
	}
	if (x->ndim && x->shape[0] < 0 && p->perm[0] != 0)
		return refuse(a, IN(0), "transpose would move the batch dimension from dim 0");
	return 0;
}

/* shape[0] == -1 keeps dim 0 as it is (the batch, symbol or rows); the rest of shape must hold
 * the rest of X's elements. A tensor with the batch in dim 0 must keep it so. */
int op_infer_reshape(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	const struct swarm_op_params *p = a->p;
	uint32_t n = p->n_shape;
	bool keep0 = n > 0 && p->shape[0] == -1;
	if (n > SWARM_TENSOR_MAX_DIMS || (keep0 && x->ndim == 0))
		return refuse(a, IN(0), "shape has %u dims", n);
	if (x->ndim && x->shape[0] < 0 && !keep0)
		return refuse(a, IN(0), "reshape must keep the batch dimension as shape[0] = -1");
	int64_t have = 1, want = 1;
	for (uint32_t i = keep0 ? 1 : 0; i < x->ndim; i++)
		if (__builtin_mul_overflow(have, x->shape[i], &have))
			return refuse(a, IN(0), "too many elements");
	like(out, x);
	out->ndim = n;
	for (uint32_t i = 0; i < n; i++) {
		int64_t d = p->shape[i];
		if (i == 0 && keep0) {
			out->shape[0] = x->shape[0];
			continue;
		}
		if (d < 0 || __builtin_mul_overflow(want, d, &want))
			return refuse(a, 0, "shape[%u] = %lld is not a size", i, (long long)d);
		out->shape[i] = d;
	}
	if (have != want)
		return refuse(a, IN(0), "reshape gives %lld elements %s, X has %lld",
			      (long long)want, keep0 ? "a row" : "in all", (long long)have);
	return 0;
}

/* One dim's slice, numpy's rule: negative start and end count from the end, both are
 * clamped into range, the step may be negative. Writes the first index and the count. */
static void slice_dim(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first,
		      int64_t *count)
{
	if (start < 0)
		start += dim;
	if (end < 0)
		end += dim;
	if (step > 0) {
		start = start < 0 ? 0 : start > dim ? dim : start;
		end = end < 0 ? 0 : end > dim ? dim : end;
		*count = end > start ? (end - start + step - 1) / step : 0;
	} else {
		start = start < 0 ? -1 : start > dim - 1 ? dim - 1 : start;
		end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
		*count = start > end ? (start - end - step - 1) / -step : 0;
	}
	*first = start;
}

void swarm_slice_dim(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first,
		     int64_t *count)
{
	slice_dim(dim, start, end, step, first, count);
}

void swarm_slice_plan(const struct swarm_tensor *x, const struct swarm_op_params *p, int64_t *step,
		      int64_t *base)
{
	int64_t stride = 1;
	*base = 0;
	for (int i = (int)x->ndim - 1; i >= 0; i--) {
		int64_t first = 0, count = x->shape[i], st = 1;
		if (p->axes & (1u << i)) {
			st = p->steps[i];
			swarm_slice_dim(x->shape[i], p->starts[i], p->ends[i], st, &first, &count);
		}
		*base += first * stride;
		step[i] = st * stride;
		stride *= x->shape[i];
	}
}

int op_infer_slice(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	const struct swarm_op_params *p = a->p;
	if (p->axes == 0 || p->axes >> x->ndim)
		return refuse(a, IN(0), "axes must name dims of X (one at least)");
	if ((p->axes & 1) && x->shape[0] < 0)
		return refuse(a, IN(0), "slice cannot cut the batch dimension");
	like(out, x);
	for (uint32_t i = 0; i < x->ndim; i++) {
		if (!(p->axes & (1u << i)))
			continue;
		if (p->steps[i] == 0)
			return refuse(a, 0, "steps[%u] is 0", i);
		int64_t first, count;
		slice_dim(x->shape[i], p->starts[i], p->ends[i], p->steps[i], &first, &count);
		out->shape[i] = count;
	}
	return 0;
}

int op_infer_gather(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0], *idx = a->in[1];
	int ax = norm_axis(a->p->axis, x->ndim);
	if (!is_float(x->dtype) || ax < 0)
		return refuse(a, IN(0), "gather takes float data and an axis among its dims");
	if (!is_index(idx->dtype) || x->ndim - 1 + idx->ndim > SWARM_TENSOR_MAX_DIMS)
		return refuse(a, IN(1), "gather takes i32 or i64 indices of few enough dims");
	if (ax == 0 && x->shape[0] < 0)
		return refuse(a, IN(0), "gather cannot pick along the batch dimension");
	like(out, x);
	uint32_t o = 0;
	for (int i = 0; i < ax; i++)
		out->shape[o++] = x->shape[i];
	for (uint32_t i = 0; i < idx->ndim; i++)
		out->shape[o++] = idx->shape[i];
	for (uint32_t i = (uint32_t)ax + 1; i < x->ndim; i++)
		out->shape[o++] = x->shape[i];
	out->ndim = o;
	for (uint32_t i = 1; i < o; i++)
		if (out->shape[i] < 0)
			return refuse(a, IN(0) | IN(1),
				      "gather would move the batch dimension from dim 0");
	return 0;
}

int op_dims_gather(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	int ax = norm_axis(n->p.axis, x->ndim);
	d->rows = dims_prod(x, 0, (uint32_t)ax);           /* outer */
	d->vocab = x->shape[ax];                           /* the indexed dim */
	d->cols = dims_prod(x, (uint32_t)ax + 1, x->ndim); /* inner */
	d->count = swarm_tensor_elems(n->in[1]);           /* indices */
	return 0;
}

int op_pad_params(const struct swarm_op_params *p) { return p->mode <= SWARM_PAD_EDGE; }

int op_infer_pad(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	const struct swarm_op_params *p = a->p;
	if (!is_float(x->dtype))
		return refuse(a, IN(0), "pad takes a float tensor");
	if (p->n_pads != 2 * x->ndim)
		return refuse(a, IN(0), "pads has %u values, X has %u dims (2 a dim)", p->n_pads,
			      x->ndim);
	if (!op_pad_params(p))
		return refuse(a, 0, "mode %u is not constant, reflect or edge", p->mode);
	like(out, x);
	for (uint32_t i = 0; i < x->ndim; i++) {
		int64_t b = p->pads[i], e = p->pads[x->ndim + i], d = x->shape[i];
		if (b < 0 || e < 0 || b > (1 << 24) || e > (1 << 24))
			return refuse(a, 0, "pads must be 0..%d (negative pads are not taken)",
				      1 << 24);
		if (d < 0) {
			if (b || e)
				return refuse(a, IN(0), "pad cannot grow the batch dimension");
			continue;
		}
		if ((b || e) && p->mode == SWARM_PAD_REFLECT && (b >= d || e >= d))
			return refuse(a, IN(0), "reflect pads must be below the dim's size");
		if ((b || e) && p->mode == SWARM_PAD_EDGE && d == 0)
			return refuse(a, IN(0), "edge pads an empty dim");
		out->shape[i] = d + b + e;
	}
	return 0;
}

int op_cast_params(const struct swarm_op_params *p) { return is_float(p->to); }

int op_infer_cast(struct swarm_op_args *a, struct swarm_tensor *out)
{
	if (!is_float(a->in[0]->dtype) || !op_cast_params(a->p))
		return refuse(a, IN(0), "cast converts between f32, f16 and bf16");
	like(out, a->in[0]);
	out->dtype = a->p->to;
	return 0;
}
