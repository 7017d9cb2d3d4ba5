/* op.c: the table of op contracts (op.h). One entry per op: its name, arity, parameters, dtype
 * rule, shape inference and the dims its kernels need. The contracts in words are in
 * kernels/device.h and docs/graph.md; the code below is their one implementation.
 *
 * Shapes may carry the batch dimension as a symbol (a negative dim 0) while a graph is being
 * built: every rule compares dims for equality (the symbol equals only itself) and copies
 * them, and refuses arithmetic on the symbol, so that two shapes that agree at one batch size
 * by chance are still told apart.
 */
#include "kernels/op.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "swarm/swarm.h"

__attribute__((format(printf, 3, 4))) static int refuse(struct swarm_op_args *a, uint32_t blame,
							const char *fmt, ...)
{
	if (a->why && a->why_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(a->why, a->why_len, fmt, ap);
		va_end(ap);
	}
	a->blame = blame;
	return -EINVAL;
}

#define IN(j) (1u << (j))

static bool is_float(uint32_t d)
{
	return d == SWARM_DTYPE_F32 || d == SWARM_DTYPE_F16 || d == SWARM_DTYPE_BF16;
}

static bool is_index(uint32_t d) { return d == SWARM_DTYPE_I32 || d == SWARM_DTYPE_I64; }

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

/* The product of dims [from, to) of a concrete tensor that passed check.c's tensor checks
 * (its non-zero dims' product is bounded: no overflow). */
static int64_t dims_prod(const struct swarm_tensor *t, uint32_t from, uint32_t to)
{
	int64_t p = 1;
	for (uint32_t i = from; i < to; i++)
		p *= t->shape[i];
	return p;
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* out = x, data cleared: the start of every rule. */
static void like(struct swarm_tensor *out, const struct swarm_tensor *x)
{
	*out = *x;
	out->data = NULL;
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

/* eps, or def when eps is 0; -1 when it is not a positive finite number. */
static float eps_or(float eps, float def)
{
	if (eps == 0.0f)
		return def;
	return eps > 0.0f && eps < __builtin_inff() ? eps : -1.0f;
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

/* ---- binary ---------------------------------------------------------------------------------- */

/* ADD, MUL: A, and B whose shape is a suffix of A's (B repeats over A's leading dims). */
static int infer_binary(struct swarm_op_args *a, struct swarm_tensor *out)
{
	const struct swarm_tensor *x = a->in[0], *y = a->in[1];
	if (!is_float(x->dtype))
		return refuse(a, IN(0), "add and mul take float tensors");
	bool ok = y->dtype == x->dtype && y->ndim <= x->ndim;
	for (uint32_t i = 0; ok && i < y->ndim; i++)
		ok = y->shape[y->ndim - 1 - i] == x->shape[x->ndim - 1 - i];
	if (!ok)
		return refuse(a, IN(0) | IN(1),
			      "the second's shape must be a suffix of the first's");
	like(out, x);
	return 0;
}

static int dims_binary(const struct swarm_node *n, struct swarm_node_dims *d)
{
	d->count = swarm_tensor_elems(n->in[1]);
	return 0;
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
	if (x->ndim < 1)
		return refuse(a, IN(0), "concat takes tensors of at least one dimension");
	int64_t last = 0;
	for (uint32_t j = 0; j < a->n_in; j++) {
		const struct swarm_tensor *y = a->in[j];
		if (y->dtype != x->dtype || y->ndim != x->ndim || !dims_equal(x, y, x->ndim - 1))
			return refuse(a, IN(0) | IN(j),
				      "concat takes tensors equal but in the last dim");
		if (y->shape[y->ndim - 1] < 0 ||
		    __builtin_add_overflow(last, y->shape[y->ndim - 1], &last))
			return refuse(a, IN(j), "concat cannot join on the batch dimension");
	}
	like(out, x);
	out->shape[x->ndim - 1] = last;
	return 0;
}

static int dims_concat(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *o = n->out;
	d->rows = dims_prod(o, 0, o->ndim - 1);
	d->cols = o->shape[o->ndim - 1];
	return 0;
}

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

/* ---- the table ------------------------------------------------------------------------------- */

#define UNARY(nm)                                                          \
	{                                                                  \
		.name = nm, .min_in = 1, .max_in = 1, .infer = infer_unary \
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
	[SWARM_OP_ADD] = { .name = "add",
			   .min_in = 2,
			   .max_in = 2,
			   .infer = infer_binary,
			   .dims = dims_binary },
	[SWARM_OP_MUL] = { .name = "mul",
			   .min_in = 2,
			   .max_in = 2,
			   .infer = infer_binary,
			   .dims = dims_binary },
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
			      .infer = infer_concat,
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

static const char *const attr_names[SWARM_ATTR_COUNT] = { "act", "mode", "heads", "eps" };

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
