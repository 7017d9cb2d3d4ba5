/* op.c: the table of op contracts (op.h). One entry per op: its name, arity, parameters, dtype
 * rule, shape inference and the dims its kernels need. The rules of convolution, pooling,
 * reductions and layout ops are op_vision.c's; what both share is op_rules.h. The contracts in words are in
 * kernels/device.h and docs/graph.md; the code below is their one implementation.
 *
 * Shapes may carry the batch dimension as a symbol (a negative dim 0) while a graph is being
 * built: every rule compares dims for equality (the symbol equals only itself) and copies
 * them, and refuses arithmetic on the symbol, so that two shapes that agree at one batch size
 * by chance are still told apart.
 */
#include "kernels/op.h"

#include "kernels/op_rules.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "swarm/swarm.h"





/* The first count dims of a and b are equal (the symbol only to itself). */
static bool dims_equal(const struct swarm_tensor *a, const struct swarm_tensor *b, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		if (a->shape[i] != b->shape[i])
			return false;
	return true;
}

static bool same_shape(const struct swarm_tensor *a, const struct swarm_tensor *b)
{
	return a->ndim == b->ndim && dims_equal(a, b, a->ndim);
}




/* ---- elementwise, rows --------------------------------------------------------------------- */

static int infer_identity(struct swarm_op_args *a, struct swarm_tensor *out)
{
	like(out, a->in[0]);
	return 0;
}

/* RELU, GELU, SIGMOID, TANH: one float tensor, out like it. */
static int infer_unary(struct swarm_op_args *a, struct swarm_tensor *out)
{
	if (!is_float(a->in[0]->dtype))
		return refuse(a, IN(0), "it takes a float tensor");
	like(out, a->in[0]);
	return 0;
}

/* SOFTMAX, L2NORM: a float X [.., D], out like X. */
static int infer_rows(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	if (!is_float(x->dtype) || x->ndim < 1)
		return refuse(a, IN(0), "it takes a float tensor [.., D]");
	like(out, x);
	return 0;
}

static int dims_rows(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	d->cols = x->shape[x->ndim - 1];
	d->rows = dims_prod(x, 0, x->ndim - 1);
	return 0;
}


static int dims_l2norm(const struct swarm_node *n, struct swarm_node_dims *d)
{
	dims_rows(n, d);
	d->eps = eps_or(n->p.eps, 1e-12f);
	return d->eps > 0.0f ? 0 : -EINVAL;
}

static int infer_layernorm(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	if (!is_float(x->dtype) || x->ndim < 1)
		return refuse(a, IN(0), "layernorm takes a float X [.., D]");
	for (uint32_t j = 1; j < 3; j++) {
		const struct swarm_tensor *p = a->in[j];
		if (p->ndim != 1 || p->dtype != x->dtype || p->shape[0] != x->shape[x->ndim - 1])
			return refuse(a, IN(0) | IN(j),
				      "layernorm takes X [.., D], gamma [D], beta [D]");
	}
	if (eps_or(a->p->eps, 1e-5f) < 0)
		return refuse(a, 0, "eps %g is not a positive number", (double)a->p->eps);
	like(out, x);
	return 0;
}

static int dims_layernorm(const struct swarm_node *n, struct swarm_node_dims *d)
{
	dims_rows(n, d);
	d->eps = eps_or(n->p.eps, 1e-5f);
	return d->eps > 0.0f ? 0 : -EINVAL;
}

/* ---- GEMMs ----------------------------------------------------------------------------------- */

static int linear_params(const struct swarm_op_params *p) { return swarm_act_ok(p->act); }

static int infer_linear(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0], *w = a->in[1];
	if (!is_float(x->dtype) || x->ndim < 1)
		return refuse(a, IN(0), "linear takes a float tensor [.., K]");
	if (w->ndim != 2 || w->dtype != x->dtype || w->shape[1] != x->shape[x->ndim - 1])
		return refuse(a, IN(0) | IN(1), "linear takes X [.., K] and W [N, K]");
	if (a->n_in == 3) {
		const struct swarm_tensor *b = a->in[2];
		if (b->ndim != 1 || b->dtype != x->dtype || b->shape[0] != w->shape[0])
			return refuse(a, IN(1) | IN(2), "linear's bias is [N] for W [N, K]");
	}
	if (!linear_params(a->p))
		return refuse(a, 0, "act %u is not relu, gelu, sigmoid or tanh", a->p->act);
	like(out, x);
	out->shape[x->ndim - 1] = w->shape[0];
	return 0;
}

static int dims_linear(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0], *w = n->in[1];
	d->rows = d->m = dims_prod(x, 0, x->ndim - 1);
	d->n = w->shape[0];
	d->k = w->shape[1];
	d->has_bias = n->n_in == 3;
	return fits_int(d->m) && fits_int(d->n) && fits_int(d->k) ? 0 : -EINVAL;
}

static int infer_matmul(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0], *y = a->in[1];
	if (!is_float(x->dtype) || x->ndim < 2)
		return refuse(a, IN(0), "matmul takes a float A [.., M, K]");
	if (y->dtype != x->dtype || y->ndim != x->ndim ||
	    y->shape[y->ndim - 2] != x->shape[x->ndim - 1] || !dims_equal(x, y, x->ndim - 2))
		return refuse(a, IN(0) | IN(1),
			      "matmul takes A [.., M, K] and B [.., K, N] with the same leading "
			      "dims");
	like(out, x);
	out->shape[x->ndim - 1] = y->shape[y->ndim - 1];
	return 0;
}

static int dims_matmul(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *a = n->in[0], *b = n->in[1];
	uint32_t nd = a->ndim;
	d->batch = dims_prod(a, 0, nd - 2);
	d->m = a->shape[nd - 2];
	d->k = a->shape[nd - 1];
	d->n = b->shape[nd - 1];
	return fits_int(d->m) && fits_int(d->n) && fits_int(d->k) ? 0 : -EINVAL;
}

/* ---- lookups --------------------------------------------------------------------------------- */

static int infer_embedding(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *t = a->in[0], *ids = a->in[1];
	if (!is_float(t->dtype) || t->ndim != 2)
		return refuse(a, IN(0), "embedding takes a float table [V, D]");
	if (!is_index(ids->dtype) || ids->ndim >= SWARM_TENSOR_MAX_DIMS)
		return refuse(a, IN(1), "embedding takes i32 or i64 ids of 0..5 dimensions");
	like(out, ids);
	out->dtype = t->dtype;
	out->shape[out->ndim++] = t->shape[1];
	return 0;
}

static int dims_embedding(const struct swarm_node *n, struct swarm_node_dims *d)
{
	d->count = swarm_tensor_elems(n->in[1]);
	d->vocab = n->in[0]->shape[0];
	d->cols = n->in[0]->shape[1];
	return 0;
}

/* Two forms: ids [L] and offsets [B] (the bags' first ids), or, in a graph, ids [B, K] alone:
 * a bag of K ids per row (the executor turns that into the first form). */
static int bag_params(const struct swarm_op_params *p)
{
	return p->bag_mode == SWARM_BAG_SUM || p->bag_mode == SWARM_BAG_MEAN;
}

static int infer_embedding_bag(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *t = a->in[0], *ids = a->in[1];
	if (!is_float(t->dtype) || t->ndim != 2)
		return refuse(a, IN(0), "embedding_bag takes a float table [V, D]");
	if (!bag_params(a->p))
		return refuse(a, 0, "bag mode %u is not sum or mean", a->p->bag_mode);
	like(out, t);
	if (a->n_in == 2) {
		if (!is_index(ids->dtype) || ids->ndim != 2)
			return refuse(
				a, IN(1),
				"embedding_bag with two inputs takes i32 or i64 ids [B, K], one "
				"bag of K ids per row");
		out->shape[0] = ids->shape[0];
		return 0;
	}
	const struct swarm_tensor *offs = a->in[2];
	if (!is_index(ids->dtype) || ids->ndim != 1)
		return refuse(a, IN(1), "embedding_bag with offsets takes i32 or i64 ids [L]");
	if (!is_index(offs->dtype) || offs->ndim != 1)
		return refuse(a, IN(2), "embedding_bag takes i32 or i64 offsets [B]");
	out->shape[0] = offs->shape[0];
	return 0;
}

static int dims_embedding_bag(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 3) /* a device runs the offsets form only */
		return -EINVAL;
	d->count = n->in[1]->shape[0];
	d->batch = n->in[2]->shape[0];
	d->vocab = n->in[0]->shape[0];
	d->cols = n->in[0]->shape[1];
	return 0;
}

/* ---- shapes ---------------------------------------------------------------------------------- */


static int infer_concat(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0];
	int ax = norm_axis(a->p->axis, x->ndim);
	if (x->ndim < 1 || ax < 0)
		return refuse(a, IN(0), "concat's axis %d is not a dim of it", a->p->axis);
	int64_t sum = 0;
	for (uint32_t j = 0; j < a->n_in; j++) {
		const struct swarm_tensor *y = a->in[j];
		bool ok = y->dtype == x->dtype && y->ndim == x->ndim;
		for (uint32_t i = 0; ok && i < x->ndim; i++)
			ok = (int)i == ax || y->shape[i] == x->shape[i];
		if (!ok)
			return refuse(a, IN(0) | IN(j), "concat takes tensors equal but on dim %d",
				      ax);
		if (y->shape[ax] < 0 || __builtin_add_overflow(sum, y->shape[ax], &sum))
			return refuse(a, IN(j), "concat cannot join on the batch dimension");
	}
	like(out, x);
	out->shape[ax] = sum;
	return 0;
}

static int dims_concat(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *o = n->out;
	int ax = norm_axis(n->p.axis, o->ndim);
	/* rows: the product of the dims before axis; cols: out's elements a row */
	d->rows = dims_prod(o, 0, (uint32_t)ax);
	d->cols = dims_prod(o, (uint32_t)ax, o->ndim);
	d->count = dims_prod(o, (uint32_t)ax + 1, o->ndim); /* elements per step of axis */
	return 0;
}

static void concat_defaults(struct swarm_op_params *p) { p->axis = -1; }

/* ---- attention and pooling ------------------------------------------------------------------- */

static int attention_params(const struct swarm_op_params *p) { return p->heads >= 1; }

static int infer_attention(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *q = a->in[0];
	if (!is_float(q->dtype) || q->ndim != 3)
		return refuse(a, IN(0), "attention takes a float Q [B, S, H * Dh]");
	for (uint32_t j = 1; j < 3; j++)
		if (a->in[j]->dtype != q->dtype || !same_shape(a->in[j], q))
			return refuse(a, IN(0) | IN(j),
				      "attention takes Q, K, V of one shape [B, S, H * Dh]");
	uint32_t h = a->p->heads;
	if (h == 0 || (q->shape[2] >= 0 && q->shape[2] % h != 0))
		return refuse(a, 0, "heads %u does not divide the width %lld", h,
			      (long long)q->shape[2]);
	if (a->n_in == 4) {
		const struct swarm_tensor *m = a->in[3];
		if (m->dtype != SWARM_DTYPE_F32 || m->ndim != 2 || !dims_equal(m, q, 2))
			return refuse(a, IN(0) | IN(3),
				      "attention's mask is f32 [B, S] for Q [B, S, E]");
	}
	like(out, q);
	return 0;
}

static int dims_attention(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *q = n->in[0];
	int64_t S = q->shape[1], E = q->shape[2];
	d->batch = q->shape[0];
	d->seq = S;
	d->heads = n->p.heads;
	d->head_dim = E / d->heads;
	d->cols = E;
	d->has_mask = n->n_in == 4;
	return fits_int(S) && fits_int(E) && !(S > 0 && S > INT64_MAX / S) ? 0 : -EINVAL;
}

static int infer_mean_pool(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0], *m = a->in[1];
	if (!is_float(x->dtype) || x->ndim != 3)
		return refuse(a, IN(0), "mean_pool takes a float X [B, S, D]");
	if (m->dtype != SWARM_DTYPE_F32 || m->ndim != 2 || !dims_equal(m, x, 2))
		return refuse(a, IN(0) | IN(1), "mean_pool's mask is f32 [B, S] for X [B, S, D]");
	like(out, x);
	out->ndim = 2;
	out->shape[1] = x->shape[2];
	return 0;
}

static int dims_mean_pool(const struct swarm_node *n, struct swarm_node_dims *d)
{
	d->batch = n->in[0]->shape[0];
	d->seq = n->in[0]->shape[1];
	d->cols = n->in[0]->shape[2];
	return 0;
}

/* ---- more elementwise -------------------------------------------------------------------- */

/* ADD, MUL, SUB, DIV, MAX, MIN, PRELU: numpy broadcasting. Shapes are aligned at their last
 * dims; each pair of dims must be equal or one of them 1; the batch symbol broadcasts over 1
 * only, and must end up in dim 0. */
static int infer_broadcast(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0], *y = a->in[1];
	if (!is_float(x->dtype) || y->dtype != x->dtype)
		return refuse(a, IN(0) | IN(1), "it takes two float tensors of one dtype");
	uint32_t nd = x->ndim > y->ndim ? x->ndim : y->ndim;
	like(out, x->ndim >= y->ndim ? x : y);
	for (uint32_t i = 0; i < nd; i++) {
		int64_t dx = i + x->ndim >= nd ? x->shape[i + x->ndim - nd] : 1;
		int64_t dy = i + y->ndim >= nd ? y->shape[i + y->ndim - nd] : 1;
		int64_t o = dx == dy ? dx : dx == 1 ? dy : dy == 1 ? dx : 0;
		if (o == 0 && dx != dy)
			return refuse(a, IN(0) | IN(1), "the shapes do not broadcast (dim %u)", i);
		if (o < 0 && i != 0)
			return refuse(a, IN(0) | IN(1),
				      "the batch dimension would leave dim 0 when broadcast");
		out->shape[i] = o;
	}
	out->ndim = nd;
	return 0;
}

/* t's strides, aligned to nd dims of the output (0 for a broadcast or missing dim). */
static void bcast_strides(const struct swarm_tensor *t, uint32_t nd, int64_t *s)
{
	int64_t step = 1;
	for (int i = (int)nd - 1; i >= 0; i--) {
		int j = i - (int)(nd - t->ndim);
		int64_t dim = j >= 0 ? t->shape[j] : 1;
		s[i] = dim == 1 ? 0 : step;
		step *= dim;
	}
}

void swarm_broadcast_plan(const struct swarm_tensor *a, const struct swarm_tensor *b,
			  const struct swarm_tensor *o, struct swarm_bcast *p)
{
	int64_t sa[SWARM_TENSOR_MAX_DIMS], sb[SWARM_TENSOR_MAX_DIMS];
	bcast_strides(a, o->ndim, sa);
	bcast_strides(b, o->ndim, sb);
	p->nd = 0;
	for (uint32_t i = 0; i < o->ndim; i++) {
		int64_t dim = o->shape[i];
		if (dim == 1)
			continue; /* a dim of 1 moves nothing */
		int k = p->nd - 1;
		/* Merge into the previous dim when, for each input, this dim continues it: a
		 * contiguous run (stride prev = stride * dim) or broadcast in both. */
		if (k >= 0 && p->sa[k] == sa[i] * dim && p->sb[k] == sb[i] * dim) {
			p->shape[k] *= dim;
			p->sa[k] = sa[i];
			p->sb[k] = sb[i];
			continue;
		}
		p->shape[p->nd] = dim;
		p->sa[p->nd] = sa[i];
		p->sb[p->nd] = sb[i];
		p->nd++;
	}
	if (p->nd == 0) {
		p->nd = 1;
		p->shape[0] = 1;
		p->sa[0] = p->sb[0] = 0;
	}
}

static int dims_broadcast(const struct swarm_node *n, struct swarm_node_dims *d)
{
	d->count = swarm_tensor_elems(n->in[1]);
	return 0;
}

/* PRELU: X and a slope that broadcasts to X (out like X). */
static int infer_prelu(struct swarm_op_args *a, struct swarm_tensor *out)
{
	int rc = infer_broadcast(a, out);
	if (rc == 0 && !same_shape(out, a->in[0]))
		return refuse(a, IN(0) | IN(1), "prelu's slope must broadcast to X's shape");
	return rc;
}

static void hardsigmoid_defaults(struct swarm_op_params *p)
{
	p->alpha = 0.2f;
	p->beta = 0.5f;
}

static void leaky_defaults(struct swarm_op_params *p) { p->alpha = 0.01f; }

static void clip_defaults(struct swarm_op_params *p)
{
	p->alpha = -__builtin_inff();
	p->beta = __builtin_inff();
}

static int clip_params(const struct swarm_op_params *p) { return !(p->alpha > p->beta); }

/* ---- the table ------------------------------------------------------------------------------- */

#define UNARY(nm)                                                          \
	{                                                                  \
		.name = nm, .min_in = 1, .max_in = 1, .infer = infer_unary \
	}

#define ACT_ATTRS \
	(SWARM_ATTR_ACT | SWARM_ATTR_ALPHA | SWARM_ATTR_BETA | SWARM_ATTR_MIN | SWARM_ATTR_MAX)
#define WINDOW_ATTRS (SWARM_ATTR_STRIDES | SWARM_ATTR_DILATIONS | SWARM_ATTR_PADS)
#define BINARY(nm)                                                              \
	{                                                                       \
		.name = nm, .min_in = 2, .max_in = 2, .infer = infer_broadcast, \
		.dims = dims_broadcast                                          \
	}

static const struct swarm_op_info ops[SWARM_OP_COUNT] = {
	[SWARM_OP_IDENTITY] = { .name = "identity",
				.min_in = 1,
				.max_in = 1,
				.infer = infer_identity },
	[SWARM_OP_LINEAR] = { .name = "linear",
			      .min_in = 2,
			      .max_in = 3,
			      .attrs = SWARM_ATTR_ACT,
			      .flags = SWARM_OPF_GEMM,
			      .params_ok = linear_params,
			      .infer = infer_linear,
			      .dims = dims_linear },
	[SWARM_OP_MATMUL] = { .name = "matmul",
			      .min_in = 2,
			      .max_in = 2,
			      .flags = SWARM_OPF_GEMM,
			      .infer = infer_matmul,
			      .dims = dims_matmul },
	[SWARM_OP_ADD] = BINARY("add"),
	[SWARM_OP_MUL] = BINARY("mul"),
	[SWARM_OP_RELU] = UNARY("relu"),
	[SWARM_OP_GELU] = UNARY("gelu"),
	[SWARM_OP_SIGMOID] = UNARY("sigmoid"),
	[SWARM_OP_TANH] = UNARY("tanh"),
	[SWARM_OP_SOFTMAX] = { .name = "softmax",
			       .min_in = 1,
			       .max_in = 1,
			       .infer = infer_rows,
			       .dims = dims_rows },
	[SWARM_OP_LAYERNORM] = { .name = "layernorm",
				 .min_in = 3,
				 .max_in = 3,
				 .attrs = SWARM_ATTR_EPS,
				 .infer = infer_layernorm,
				 .dims = dims_layernorm },
	[SWARM_OP_EMBEDDING] = { .name = "embedding",
				 .min_in = 2,
				 .max_in = 2,
				 .index_in = IN(1),
				 .infer = infer_embedding,
				 .dims = dims_embedding },
	[SWARM_OP_EMBEDDING_BAG] = { .name = "embedding_bag",
				     .min_in = 2,
				     .max_in = 3,
				     .attrs = SWARM_ATTR_MODE,
				     .index_in = IN(1) | IN(2),
				     .params_ok = bag_params,
				     .infer = infer_embedding_bag,
				     .dims = dims_embedding_bag },
	[SWARM_OP_CONCAT] = { .name = "concat",
			      .min_in = 1,
			      .max_in = SWARM_NODE_MAX_INPUTS,
			      .attrs = SWARM_ATTR_AXIS,
			      .infer = infer_concat,
			      .defaults = concat_defaults,
			      .dims = dims_concat },
	[SWARM_OP_ATTENTION] = { .name = "attention",
				 .min_in = 3,
				 .max_in = 4,
				 .attrs = SWARM_ATTR_HEADS,
				 .required = SWARM_ATTR_HEADS,
				 .flags = SWARM_OPF_GEMM,
				 .f32_in = IN(3),
				 .params_ok = attention_params,
				 .infer = infer_attention,
				 .dims = dims_attention },
	[SWARM_OP_MEAN_POOL] = { .name = "mean_pool",
				 .min_in = 2,
				 .max_in = 2,
				 .f32_in = IN(1),
				 .infer = infer_mean_pool,
				 .dims = dims_mean_pool },
	[SWARM_OP_L2NORM] = { .name = "l2norm",
			      .min_in = 1,
			      .max_in = 1,
			      .attrs = SWARM_ATTR_EPS,
			      .infer = infer_rows,
			      .dims = dims_l2norm },

	[SWARM_OP_SUB] = BINARY("sub"),
	[SWARM_OP_DIV] = BINARY("div"),
	[SWARM_OP_MAX] = BINARY("max"),
	[SWARM_OP_MIN] = BINARY("min"),
	[SWARM_OP_POW] = { .name = "pow",
			   .min_in = 1,
			   .max_in = 1,
			   .attrs = SWARM_ATTR_EXPONENT,
			   .required = SWARM_ATTR_EXPONENT,
			   .infer = infer_unary },
	[SWARM_OP_PRELU] = { .name = "prelu",
			     .min_in = 2,
			     .max_in = 2,
			     .infer = infer_prelu,
			     .dims = dims_broadcast },
	[SWARM_OP_ERF] = UNARY("erf"),
	[SWARM_OP_EXP] = UNARY("exp"),
	[SWARM_OP_LOG] = UNARY("log"),
	[SWARM_OP_SQRT] = UNARY("sqrt"),
	[SWARM_OP_HARDSIGMOID] = { .name = "hardsigmoid",
				   .min_in = 1,
				   .max_in = 1,
				   .attrs = SWARM_ATTR_ALPHA | SWARM_ATTR_BETA,
				   .defaults = hardsigmoid_defaults,
				   .infer = infer_unary },
	[SWARM_OP_HARDSWISH] = UNARY("hardswish"),
	[SWARM_OP_LEAKY_RELU] = { .name = "leaky_relu",
				  .min_in = 1,
				  .max_in = 1,
				  .attrs = SWARM_ATTR_ALPHA,
				  .defaults = leaky_defaults,
				  .infer = infer_unary },
	[SWARM_OP_CLIP] = { .name = "clip",
			    .min_in = 1,
			    .max_in = 1,
			    .attrs = SWARM_ATTR_MIN | SWARM_ATTR_MAX,
			    .defaults = clip_defaults,
			    .params_ok = clip_params,
			    .infer = infer_unary },
	[SWARM_OP_CONV2D] = { .name = "conv2d",
			      .min_in = 2,
			      .max_in = 3,
			      .attrs = ACT_ATTRS | WINDOW_ATTRS | SWARM_ATTR_GROUP,
			      .params_ok = op_conv_params,
			      .infer = op_infer_conv2d,
			      .dims = op_dims_conv },
	[SWARM_OP_CONV_TRANSPOSE2D] = { .name = "conv_transpose2d",
					.min_in = 2,
					.max_in = 3,
					.attrs = ACT_ATTRS | WINDOW_ATTRS | SWARM_ATTR_GROUP |
						 SWARM_ATTR_OUT_PAD,
					.params_ok = op_conv_params,
					.infer = op_infer_conv_transpose2d,
					.dims = op_dims_conv },
	[SWARM_OP_MAX_POOL2D] = { .name = "max_pool2d",
				  .min_in = 1,
				  .max_in = 1,
				  .attrs = WINDOW_ATTRS | SWARM_ATTR_KERNEL | SWARM_ATTR_CEIL_MODE,
				  .required = SWARM_ATTR_KERNEL,
				  .infer = op_infer_pool },
	[SWARM_OP_AVG_POOL2D] = { .name = "avg_pool2d",
				  .min_in = 1,
				  .max_in = 1,
				  .attrs = WINDOW_ATTRS | SWARM_ATTR_KERNEL | SWARM_ATTR_CEIL_MODE |
					   SWARM_ATTR_COUNT_INCLUDE_PAD,
				  .required = SWARM_ATTR_KERNEL,
				  .infer = op_infer_pool },
	[SWARM_OP_GLOBAL_AVG_POOL] = { .name = "global_avg_pool",
				       .min_in = 1,
				       .max_in = 1,
				       .infer = op_infer_global_pool,
				       .dims = op_dims_global_pool },
	[SWARM_OP_RESIZE] = { .name = "resize",
			      .min_in = 1,
			      .max_in = 1,
			      .attrs = SWARM_ATTR_MODE | SWARM_ATTR_COORD | SWARM_ATTR_NEAREST |
				       SWARM_ATTR_SCALES | SWARM_ATTR_SIZES,
			      .params_ok = op_resize_params,
			      .infer = op_infer_resize },
	[SWARM_OP_BATCHNORM] = { .name = "batchnorm",
				 .min_in = 5,
				 .max_in = 5,
				 .attrs = SWARM_ATTR_EPS,
				 .infer = op_infer_batchnorm,
				 .dims = op_dims_batchnorm },
	[SWARM_OP_REDUCE_MEAN] = { .name = "reduce_mean",
				   .min_in = 1,
				   .max_in = 1,
				   .attrs = SWARM_ATTR_AXES | SWARM_ATTR_KEEPDIMS,
				   .required = SWARM_ATTR_AXES,
				   .infer = op_infer_reduce },
	[SWARM_OP_REDUCE_SUM] = { .name = "reduce_sum",
				  .min_in = 1,
				  .max_in = 1,
				  .attrs = SWARM_ATTR_AXES | SWARM_ATTR_KEEPDIMS,
				  .required = SWARM_ATTR_AXES,
				  .infer = op_infer_reduce },
	[SWARM_OP_REDUCE_MAX] = { .name = "reduce_max",
				  .min_in = 1,
				  .max_in = 1,
				  .attrs = SWARM_ATTR_AXES | SWARM_ATTR_KEEPDIMS,
				  .required = SWARM_ATTR_AXES,
				  .infer = op_infer_reduce },
	[SWARM_OP_TRANSPOSE] = { .name = "transpose",
				 .min_in = 1,
				 .max_in = 1,
				 .attrs = SWARM_ATTR_PERM,
				 .required = SWARM_ATTR_PERM,
				 .infer = op_infer_transpose },
	[SWARM_OP_RESHAPE] = { .name = "reshape",
			       .min_in = 1,
			       .max_in = 1,
			       .attrs = SWARM_ATTR_SHAPE,
			       .required = SWARM_ATTR_SHAPE,
			       .infer = op_infer_reshape },
	[SWARM_OP_SLICE] = { .name = "slice",
			     .min_in = 1,
			     .max_in = 1,
			     .attrs = SWARM_ATTR_AXES | SWARM_ATTR_STARTS | SWARM_ATTR_ENDS |
				      SWARM_ATTR_STEPS,
			     .required = SWARM_ATTR_STARTS | SWARM_ATTR_ENDS,
			     .infer = op_infer_slice },
	[SWARM_OP_GATHER] = { .name = "gather",
			      .min_in = 2,
			      .max_in = 2,
			      .attrs = SWARM_ATTR_AXIS,
			      .index_in = IN(1),
			      .infer = op_infer_gather,
			      .dims = op_dims_gather },
	[SWARM_OP_PAD] = { .name = "pad",
			   .min_in = 1,
			   .max_in = 1,
			   .attrs = SWARM_ATTR_PADS | SWARM_ATTR_MODE | SWARM_ATTR_VALUE,
			   .required = SWARM_ATTR_PADS,
			   .params_ok = op_pad_params,
			   .infer = op_infer_pad },
	[SWARM_OP_CAST] = { .name = "cast",
			    .min_in = 1,
			    .max_in = 1,
			    .attrs = SWARM_ATTR_TO,
			    .required = SWARM_ATTR_TO,
			    .flags = SWARM_OPF_CAST,
			    .params_ok = op_cast_params,
			    .infer = op_infer_cast },
};

const struct swarm_op_info *swarm_op_info(uint32_t op)
{
	return op < SWARM_OP_COUNT && ops[op].name ? &ops[op] : NULL;
}

const char *swarm_op_name(uint32_t op)
{
	const struct swarm_op_info *i = swarm_op_info(op);
	return i ? i->name : NULL;
}

int swarm_op_from_name(const char *name)
{
	for (int op = 0; name && op < SWARM_OP_COUNT; op++)
		if (ops[op].name && strcmp(ops[op].name, name) == 0)
			return op;
	return -1;
}

/* The manifest's spelling of each attribute, in enum swarm_attr's bit order (ONNX's names
 * where ONNX has the attribute). */
static const char *const attr_names[SWARM_ATTR_COUNT] = {
	"act",
	"mode",
	"heads",
	"eps",
	"alpha",
	"beta",
	"min",
	"max",
	"exponent",
	"value",
	"axis",
	"axes",
	"keepdims",
	"coordinate_transformation_mode",
	"nearest_mode",
	"to",
	"group",
	"ceil_mode",
	"count_include_pad",
	"kernel_shape",
	"strides",
	"dilations",
	"output_padding",
	"scales",
	"sizes",
	"pads",
	"shape",
	"perm",
	"starts",
	"ends",
	"steps",
};

const char *swarm_attr_name(uint32_t attr)
{
	for (int i = 0; i < SWARM_ATTR_COUNT; i++)
		if (attr == 1u << i)
			return attr_names[i];
	return NULL;
}

int swarm_op_infer(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_op_info *info = swarm_op_info(a->op);
	a->blame = 0;
	if (!info)
		return -ENOTSUP;
	if (a->n_in < info->min_in || a->n_in > info->max_in || !a->in || !a->p)
		return refuse(a, 0, "%s takes %u..%u inputs, not %u", info->name, info->min_in,
			      info->max_in, a->n_in);
	for (uint32_t j = 0; j < a->n_in; j++)
		if (!a->in[j] || a->in[j]->ndim > SWARM_TENSOR_MAX_DIMS)
			return refuse(a, 0, "inputs[%u] is missing or has over %d dims", j,
				      SWARM_TENSOR_MAX_DIMS);
	return info->infer(a, out);
}
