/* check.c: the host-side checks every device runs on a node before its op (see check.h and
 * the contracts in kernels/device.h). One function per op checks input count, dtypes, shapes
 * (against each other and against out) and parameters, and fills what the device's kernels
 * need; swarm_node_check is the one switch over ops. Nothing here reads tensor data.
 */
#include "kernels/check.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "swarm/swarm.h"

/* Largest element count accepted: keeps every byte size (8 bytes an element at most) and
 * every sum of counts below INT64_MAX. */
#define ELEMS_MAX (INT64_MAX / 16)

#define F32_ONLY SWARM_DTYPE_BIT(SWARM_DTYPE_F32)

/* Checks one tensor: present, of a dtype in the set dts, at least min_ndim dims, a valid size,
 * and storage when it has elements. The product of its non-zero dims is bounded too, so that a
 * product of any of its dims (dims_prod) cannot overflow even when a zero dim makes elems 0.
 * Returns its element count, or -1. */
static int64_t tensor_check(const struct swarm_tensor *t, uint32_t dts, uint32_t min_ndim)
{
	if (!t || t->dtype >= 32 || !(dts & SWARM_DTYPE_BIT(t->dtype)) || t->ndim < min_ndim ||
	    t->ndim > SWARM_TENSOR_MAX_DIMS)
		return -1;
	int64_t e = swarm_tensor_elems(t);
	if (e < 0)
		return -1;
	int64_t nz = 1;
	for (uint32_t i = 0; i < t->ndim; i++) {
		int64_t d = t->shape[i];
		if (d == 0)
			continue;
		if (nz > ELEMS_MAX / d)
			return -1;
		nz *= d;
	}
	if (e > 0 && !t->data)
		return -1;
	return e;
}

/* A tensor of exactly dtype dt, otherwise as tensor_check. */
static int64_t typed_check(const struct swarm_tensor *t, uint32_t dt, uint32_t min_ndim)
{
	if (!t || t->dtype != dt)
		return -1;
	return tensor_check(t, SWARM_DTYPE_BIT(dt), min_ndim);
}

/* An index tensor: i32 or i64, otherwise as tensor_check. */
static int64_t index_check(const struct swarm_tensor *t, uint32_t min_ndim)
{
	return tensor_check(t, SWARM_DTYPE_BIT(SWARM_DTYPE_I32) | SWARM_DTYPE_BIT(SWARM_DTYPE_I64),
			    min_ndim);
}

/* The product of dims [from, to) of a tensor that passed tensor_check (cannot overflow). */
static int64_t dims_prod(const struct swarm_tensor *t, uint32_t from, uint32_t to)
{
	int64_t p = 1;
	for (uint32_t i = from; i < to; i++)
		p *= t->shape[i];
	return p;
}

static int dims_equal(const struct swarm_tensor *a, const struct swarm_tensor *b, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		if (a->shape[i] != b->shape[i])
			return 0;
	}
	return 1;
}

/* out must be of dtype dt with exactly the shape (ndim, shape) and storage. Returns its elems
 * or -1. */
static int64_t out_check(const struct swarm_tensor *out, uint32_t dt, uint32_t ndim,
			 const int64_t *shape)
{
	int64_t e = typed_check(out, dt, ndim);
	if (e < 0 || out->ndim != ndim)
		return -1;
	for (uint32_t i = 0; i < ndim; i++) {
		if (out->shape[i] != shape[i])
			return -1;
	}
	return e;
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

int swarm_act_ok(uint32_t act)
{
	return act == SWARM_OP_IDENTITY || act == SWARM_OP_RELU || act == SWARM_OP_GELU ||
	       act == SWARM_OP_SIGMOID || act == SWARM_OP_TANH;
}

/* IDENTITY, RELU, GELU, SIGMOID, TANH: one f32 X, out like X. */
static int check_elementwise(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 1)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0];
	if (tensor_check(x, F32_ONLY, 0) < 0)
		return -EINVAL;
	d->elems = out_check(n->out, SWARM_DTYPE_F32, x->ndim, x->shape);
	return d->elems < 0 ? -EINVAL : 0;
}

static int check_linear(const struct swarm_node *n, uint32_t fdts, struct swarm_node_dims *d)
{
	if (n->n_in != 2 && n->n_in != 3)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0], *w = n->in[1];
	const struct swarm_tensor *b = n->n_in == 3 ? n->in[2] : NULL;
	if (tensor_check(x, fdts, 1) < 0 || typed_check(w, x->dtype, 2) < 0 || w->ndim != 2 ||
	    !swarm_act_ok(n->p.act))
		return -EINVAL;
	int64_t N = w->shape[0], K = w->shape[1];
	if (x->shape[x->ndim - 1] != K)
		return -EINVAL;
	if (b && (typed_check(b, x->dtype, 1) < 0 || b->ndim != 1 || b->shape[0] != N))
		return -EINVAL;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, x->shape, sizeof(shape));
	shape[x->ndim - 1] = N;
	d->elems = out_check(n->out, x->dtype, x->ndim, shape);
	if (d->elems < 0)
		return -EINVAL;
	int64_t M = dims_prod(x, 0, x->ndim - 1);
	if (!fits_int(M) || !fits_int(N) || !fits_int(K))
		return -EINVAL;
	d->dtype = x->dtype;
	d->rows = d->m = M;
	d->n = N;
	d->k = K;
	d->has_bias = b != NULL;
	return 0;
}

static int check_matmul(const struct swarm_node *n, uint32_t fdts, struct swarm_node_dims *d)
{
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *a = n->in[0], *b = n->in[1];
	if (tensor_check(a, fdts, 2) < 0 || typed_check(b, a->dtype, 2) < 0 || a->ndim != b->ndim ||
	    !dims_equal(a, b, a->ndim - 2))
		return -EINVAL;
	uint32_t nd = a->ndim;
	int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[nd - 1];
	if (b->shape[nd - 2] != K)
		return -EINVAL;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, a->shape, sizeof(shape));
	shape[nd - 1] = N;
	d->elems = out_check(n->out, a->dtype, nd, shape);
	if (d->elems < 0)
		return -EINVAL;
	if (!fits_int(M) || !fits_int(N) || !fits_int(K))
		return -EINVAL;
	d->dtype = a->dtype;
	d->batch = dims_prod(a, 0, nd - 2);
	d->m = M;
	d->n = N;
	d->k = K;
	return 0;
}

/* ADD and MUL: A, B whose shape is a suffix of A's, out like A. */
static int check_binary(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *a = n->in[0], *b = n->in[1];
	int64_t ea = tensor_check(a, F32_ONLY, 0), eb = tensor_check(b, F32_ONLY, 0);
	if (ea < 0 || eb < 0 || b->ndim > a->ndim)
		return -EINVAL;
	for (uint32_t i = 0; i < b->ndim; i++) {
		if (b->shape[i] != a->shape[a->ndim - b->ndim + i])
			return -EINVAL;
	}
	if (out_check(n->out, SWARM_DTYPE_F32, a->ndim, a->shape) < 0)
		return -EINVAL;
	d->elems = ea;
	d->count = eb;
	return 0;
}

/* SOFTMAX, LAYERNORM, L2NORM: X [.., D] (f32) and out like X. */
static int check_rows(const struct swarm_node *n, struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0];
	if (tensor_check(x, F32_ONLY, 1) < 0)
		return -EINVAL;
	d->elems = out_check(n->out, SWARM_DTYPE_F32, x->ndim, x->shape);
	if (d->elems < 0)
		return -EINVAL;
	d->cols = x->shape[x->ndim - 1];
	d->rows = dims_prod(x, 0, x->ndim - 1);
	return 0;
}

/* eps, or def when eps is 0; -1 when it is not a positive finite number. */
static float eps_or(float eps, float def)
{
	if (eps == 0.0f)
		return def;
	return eps > 0.0f && !isinf(eps) ? eps : -1.0f;
}

static int check_softmax(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 1)
		return -EINVAL;
	return check_rows(n, d);
}

static int check_layernorm(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 3 || check_rows(n, d) < 0)
		return -EINVAL;
	const struct swarm_tensor *g = n->in[1], *b = n->in[2];
	if (tensor_check(g, F32_ONLY, 1) < 0 || g->ndim != 1 || g->shape[0] != d->cols ||
	    tensor_check(b, F32_ONLY, 1) < 0 || b->ndim != 1 || b->shape[0] != d->cols)
		return -EINVAL;
	d->eps = eps_or(n->p.eps, 1e-5f);
	return d->eps > 0.0f ? 0 : -EINVAL;
}

static int check_l2norm(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 1 || check_rows(n, d) < 0)
		return -EINVAL;
	d->eps = eps_or(n->p.eps, 1e-12f);
	return d->eps > 0.0f ? 0 : -EINVAL;
}

static int check_embedding(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *t = n->in[0], *ids = n->in[1];
	int64_t L = index_check(ids, 0);
	if (tensor_check(t, F32_ONLY, 2) < 0 || t->ndim != 2 || L < 0 ||
	    ids->ndim >= SWARM_TENSOR_MAX_DIMS)
		return -EINVAL;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, ids->shape, ids->ndim * sizeof(int64_t));
	shape[ids->ndim] = t->shape[1];
	d->elems = out_check(n->out, SWARM_DTYPE_F32, ids->ndim + 1, shape);
	if (d->elems < 0)
		return -EINVAL;
	d->count = L;
	d->vocab = t->shape[0];
	d->cols = t->shape[1];
	return 0;
}

static int check_embedding_bag(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 3)
		return -EINVAL;
	const struct swarm_tensor *t = n->in[0], *ids = n->in[1], *offs = n->in[2];
	int64_t L = index_check(ids, 1), B = index_check(offs, 1);
	if (tensor_check(t, F32_ONLY, 2) < 0 || t->ndim != 2 || L < 0 || ids->ndim != 1 || B < 0 ||
	    offs->ndim != 1)
		return -EINVAL;
	if (n->p.bag_mode != SWARM_BAG_SUM && n->p.bag_mode != SWARM_BAG_MEAN)
		return -EINVAL;
	int64_t shape[2] = { B, t->shape[1] };
	d->elems = out_check(n->out, SWARM_DTYPE_F32, 2, shape);
	if (d->elems < 0)
		return -EINVAL;
	d->count = L;
	d->batch = B;
	d->vocab = t->shape[0];
	d->cols = t->shape[1];
	return 0;
}

static int check_concat(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in < 1 || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	const struct swarm_tensor *x0 = n->in[0];
	if (tensor_check(x0, F32_ONLY, 1) < 0)
		return -EINVAL;
	uint32_t nd = x0->ndim;
	int64_t total = 0;
	for (uint32_t k = 0; k < n->n_in; k++) {
		const struct swarm_tensor *x = n->in[k];
		if (tensor_check(x, F32_ONLY, 1) < 0 || x->ndim != nd || !dims_equal(x, x0, nd - 1))
			return -EINVAL;
		total += x->shape[nd - 1]; /* each at most ELEMS_MAX: no overflow in 8 */
	}
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, x0->shape, sizeof(shape));
	shape[nd - 1] = total;
	d->elems = out_check(n->out, SWARM_DTYPE_F32, nd, shape);
	if (d->elems < 0)
		return -EINVAL;
	d->rows = dims_prod(x0, 0, nd - 1);
	d->cols = total;
	return 0;
}

static int check_attention(const struct swarm_node *n, uint32_t fdts, struct swarm_node_dims *d)
{
	if (n->n_in != 3 && n->n_in != 4)
		return -EINVAL;
	const struct swarm_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
	const struct swarm_tensor *m = n->n_in == 4 ? n->in[3] : NULL;
	if (tensor_check(q, fdts, 3) < 0 || q->ndim != 3 || typed_check(k, q->dtype, 3) < 0 ||
	    k->ndim != 3 || !dims_equal(q, k, 3) || typed_check(v, q->dtype, 3) < 0 ||
	    v->ndim != 3 || !dims_equal(q, v, 3))
		return -EINVAL;
	int64_t B = q->shape[0], S = q->shape[1], E = q->shape[2], H = n->p.heads;
	if (H < 1 || E % H != 0)
		return -EINVAL;
	if (m && (typed_check(m, SWARM_DTYPE_F32, 2) < 0 || m->ndim != 2 || m->shape[0] != B ||
		  m->shape[1] != S))
		return -EINVAL;
	d->elems = out_check(n->out, q->dtype, 3, q->shape);
	if (d->elems < 0)
		return -EINVAL;
	if (!fits_int(S) || !fits_int(E) || (S > 0 && S > INT64_MAX / S))
		return -EINVAL;
	d->dtype = q->dtype;
	d->batch = B;
	d->seq = S;
	d->heads = H;
	d->head_dim = E / H;
	d->cols = E;
	d->has_mask = m != NULL;
	return 0;
}

static int check_mean_pool(const struct swarm_node *n, struct swarm_node_dims *d)
{
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0], *m = n->in[1];
	if (tensor_check(x, F32_ONLY, 3) < 0 || x->ndim != 3 || tensor_check(m, F32_ONLY, 2) < 0 ||
	    m->ndim != 2 || !dims_equal(x, m, 2))
		return -EINVAL;
	int64_t shape[2] = { x->shape[0], x->shape[2] };
	d->elems = out_check(n->out, SWARM_DTYPE_F32, 2, shape);
	if (d->elems < 0)
		return -EINVAL;
	d->batch = x->shape[0];
	d->seq = x->shape[1];
	d->cols = x->shape[2];
	return 0;
}

int swarm_node_check(const struct swarm_node *n, uint32_t float_dtypes, struct swarm_node_dims *d)
{
	memset(d, 0, sizeof(*d));
	d->dtype = SWARM_DTYPE_F32;
	if (!n || !n->out || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	/* f32 is every device's; the set only ever widens it. */
	uint32_t fdts = (float_dtypes | F32_ONLY) & (F32_ONLY | SWARM_DTYPE_BIT(SWARM_DTYPE_F16) |
						     SWARM_DTYPE_BIT(SWARM_DTYPE_BF16));
	switch (n->op) {
	case SWARM_OP_IDENTITY:
	case SWARM_OP_RELU:
	case SWARM_OP_GELU:
	case SWARM_OP_SIGMOID:
	case SWARM_OP_TANH:
		return check_elementwise(n, d);
	case SWARM_OP_LINEAR:
		return check_linear(n, fdts, d);
	case SWARM_OP_MATMUL:
		return check_matmul(n, fdts, d);
	case SWARM_OP_ADD:
	case SWARM_OP_MUL:
		return check_binary(n, d);
	case SWARM_OP_SOFTMAX:
		return check_softmax(n, d);
	case SWARM_OP_LAYERNORM:
		return check_layernorm(n, d);
	case SWARM_OP_L2NORM:
		return check_l2norm(n, d);
	case SWARM_OP_EMBEDDING:
		return check_embedding(n, d);
	case SWARM_OP_EMBEDDING_BAG:
		return check_embedding_bag(n, d);
	case SWARM_OP_CONCAT:
		return check_concat(n, d);
	case SWARM_OP_ATTENTION:
		return check_attention(n, fdts, d);
	case SWARM_OP_MEAN_POOL:
		return check_mean_pool(n, d);
	default:
		return -ENOTSUP;
	}
}

static int all_f32(const struct swarm_node *n)
{
	for (uint32_t i = 0; i < n->n_in; i++) {
		if (n->in[i]->dtype != SWARM_DTYPE_F32)
			return 0;
	}
	return 1;
}

static int is_index(const struct swarm_tensor *t)
{
	return t->dtype == SWARM_DTYPE_I32 || t->dtype == SWARM_DTYPE_I64;
}

/* Inputs [0, count) all of in[0]'s dtype, one of fdts. */
static int same_float(const struct swarm_node *n, uint32_t count, uint32_t fdts)
{
	uint32_t dt = n->in[0]->dtype;
	if (dt >= 32 || !(fdts & SWARM_DTYPE_BIT(dt)))
		return 0;
	for (uint32_t i = 1; i < count; i++) {
		if (n->in[i]->dtype != dt)
			return 0;
	}
	return 1;
}

int swarm_node_supported(const struct swarm_node *n, uint32_t float_dtypes)
{
	if (!n || n->n_in > SWARM_NODE_MAX_INPUTS)
		return 0;
	for (uint32_t i = 0; i < n->n_in; i++) {
		if (!n->in[i])
			return 0;
	}
	uint32_t fdts = float_dtypes | SWARM_DTYPE_BIT(SWARM_DTYPE_F32);
	int gemm = n->op == SWARM_OP_LINEAR || n->op == SWARM_OP_MATMUL ||
		   n->op == SWARM_OP_ATTENTION;
	/* out has the GEMM ops' float dtype, f32 for the rest. */
	uint32_t out_dt = gemm && n->n_in >= 1 ? n->in[0]->dtype : SWARM_DTYPE_F32;
	if (n->out && n->out->dtype != out_dt)
		return 0;
	switch (n->op) {
	case SWARM_OP_IDENTITY:
	case SWARM_OP_RELU:
	case SWARM_OP_GELU:
	case SWARM_OP_SIGMOID:
	case SWARM_OP_TANH:
	case SWARM_OP_SOFTMAX:
	case SWARM_OP_L2NORM:
		return n->n_in == 1 && all_f32(n);
	case SWARM_OP_LINEAR:
		return (n->n_in == 2 || n->n_in == 3) && same_float(n, n->n_in, fdts) &&
		       swarm_act_ok(n->p.act);
	case SWARM_OP_MATMUL:
		return n->n_in == 2 && same_float(n, 2, fdts);
	case SWARM_OP_ADD:
	case SWARM_OP_MUL:
	case SWARM_OP_MEAN_POOL:
		return n->n_in == 2 && all_f32(n);
	case SWARM_OP_LAYERNORM:
		return n->n_in == 3 && all_f32(n);
	case SWARM_OP_EMBEDDING:
		return n->n_in == 2 && n->in[0]->dtype == SWARM_DTYPE_F32 && is_index(n->in[1]);
	case SWARM_OP_EMBEDDING_BAG:
		return n->n_in == 3 && n->in[0]->dtype == SWARM_DTYPE_F32 && is_index(n->in[1]) &&
		       is_index(n->in[2]) &&
		       (n->p.bag_mode == SWARM_BAG_SUM || n->p.bag_mode == SWARM_BAG_MEAN);
	case SWARM_OP_CONCAT:
		return n->n_in >= 1 && all_f32(n);
	case SWARM_OP_ATTENTION:
		return (n->n_in == 3 || n->n_in == 4) && same_float(n, 3, fdts) &&
		       (n->n_in == 3 || n->in[3]->dtype == SWARM_DTYPE_F32) && n->p.heads >= 1;
	default:
		return 0;
	}
}
