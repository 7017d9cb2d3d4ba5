/* ops.c: the CPU device's ops (see ops.h and the contracts in kernels/device.h).
 *
 * Every op first checks its node: input count, dtypes, shapes (against each other and against
 * out), and every index input against the table, so that a refused node has written nothing.
 * GEMMs go through OpenBLAS (cblas_sgemm, row-major); everything else is plain loops over
 * contiguous floats that gcc -O2 vectorises. BLAS takes int dimensions, so a GEMM dimension
 * above INT_MAX is refused with -EINVAL rather than split.
 */
#include "kernels/cpu/ops.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "swarm/swarm.h"

/* Largest element count accepted: keeps every byte size (8 bytes an element at most) and
 * every sum of counts below INT64_MAX. */
#define ELEMS_MAX (INT64_MAX / 16)

/* Checks one tensor: present, of dtype dt, at least min_ndim dims, a valid size, and storage
 * when it has elements. The product of its non-zero dims is bounded too, so that a product
 * of any of its dims (dims_prod) cannot overflow even when a zero dim makes elems 0.
 * Returns its element count, or -1. */
static int64_t tensor_check(const struct swarm_tensor *t, uint32_t dt, uint32_t min_ndim)
{
	if (!t || t->dtype != dt || t->ndim < min_ndim || t->ndim > SWARM_TENSOR_MAX_DIMS)
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

static int is_index_dtype(uint32_t dt) { return dt == SWARM_DTYPE_I32 || dt == SWARM_DTYPE_I64; }

/* An index tensor: i32 or i64, otherwise as tensor_check. */
static int64_t index_check(const struct swarm_tensor *t, uint32_t min_ndim)
{
	if (!t || !is_index_dtype(t->dtype))
		return -1;
	return tensor_check(t, t->dtype, min_ndim);
}

static int64_t index_at(const struct swarm_tensor *t, int64_t i)
{
	if (t->dtype == SWARM_DTYPE_I32)
		return ((const int32_t *)t->data)[i];
	return ((const int64_t *)t->data)[i];
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

/* out must be f32 with exactly the shape (ndim, shape) and storage. Returns its elems or -1. */
static int64_t out_check(const struct swarm_tensor *out, uint32_t ndim, const int64_t *shape)
{
	int64_t e = tensor_check(out, SWARM_DTYPE_F32, ndim);
	if (e < 0 || out->ndim != ndim)
		return -1;
	for (uint32_t i = 0; i < ndim; i++) {
		if (out->shape[i] != shape[i])
			return -1;
	}
	return e;
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

void swarm_cpu_ws_free(struct swarm_cpu_ws *ws)
{
	free(ws->buf);
	ws->buf = NULL;
	ws->cap = 0;
}

/* Returns at least count floats of scratch, or NULL when out of memory. */
static float *ws_get(struct swarm_cpu_ws *ws, size_t count)
{
	if (count <= ws->cap)
		return ws->buf;
	if (count > SIZE_MAX / sizeof(float))
		return NULL;
	float *p = realloc(ws->buf, count * sizeof(float));
	if (!p)
		return NULL;
	ws->buf = p;
	ws->cap = count;
	return p;
}

/* ---- elementwise kernels ------------------------------------------------------------------ */

/* gcc -O2 (its very-cheap cost model) vectorises only loops whose trip count is a known
 * multiple of the vector width and that need no runtime alias check. So the hot loops work in
 * blocks of VB: load the block into a local array, compute, then store (which also makes
 * in-place use, o == x, safe), and a scalar loop does the tail. Reductions keep VB partial
 * sums, which also rounds better than one running sum. erff, expf and tanhf stay scalar:
 * glibc has no vector variants without -ffast-math. */
#define VB 8

static void k_relu(float *o, const float *x, int64_t n)
{
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		float t[VB];
		for (int j = 0; j < VB; j++)
			t[j] = x[i + j];
		for (int j = 0; j < VB; j++)
			o[i + j] = t[j] > 0.0f ? t[j] : 0.0f;
	}
	for (; i < n; i++)
		o[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* o = a + b (relu: then max(., 0)) over n; o may be a. */
static void k_add(float *o, const float *a, const float *b, int64_t n, int relu)
{
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		float t[VB];
		for (int j = 0; j < VB; j++)
			t[j] = a[i + j] + b[i + j];
		if (relu) {
			for (int j = 0; j < VB; j++)
				t[j] = t[j] > 0.0f ? t[j] : 0.0f;
		}
		for (int j = 0; j < VB; j++)
			o[i + j] = t[j];
	}
	for (; i < n; i++) {
		float v = a[i] + b[i];
		o[i] = relu && v < 0.0f ? 0.0f : v;
	}
}

static void k_mul(float *o, const float *a, const float *b, int64_t n)
{
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		float t[VB];
		for (int j = 0; j < VB; j++)
			t[j] = a[i + j] * b[i + j];
		for (int j = 0; j < VB; j++)
			o[i + j] = t[j];
	}
	for (; i < n; i++)
		o[i] = a[i] * b[i];
}

/* o = x * s over n; o may be x. */
static void k_scale(float *o, const float *x, float s, int64_t n)
{
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		float t[VB];
		for (int j = 0; j < VB; j++)
			t[j] = x[i + j] * s;
		for (int j = 0; j < VB; j++)
			o[i + j] = t[j];
	}
	for (; i < n; i++)
		o[i] = x[i] * s;
}

/* sq 0: the sum of x over n (c unused); sq 1: the sum of (x - c)^2. */
static float k_sum(const float *x, float c, int64_t n, int sq)
{
	float acc[VB] = { 0 };
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		for (int j = 0; j < VB; j++) {
			float v = sq ? (x[i + j] - c) * (x[i + j] - c) : x[i + j];
			acc[j] += v;
		}
	}
	float s = 0.0f;
	for (; i < n; i++)
		s += sq ? (x[i] - c) * (x[i] - c) : x[i];
	for (int j = 0; j < VB; j++)
		s += acc[j];
	return s;
}

static void k_gelu(float *o, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		o[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

static void k_sigmoid(float *o, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		o[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void k_tanh(float *o, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		o[i] = tanhf(x[i]);
}

int swarm_cpu_act_ok(uint32_t act)
{
	return act == SWARM_OP_IDENTITY || act == SWARM_OP_RELU || act == SWARM_OP_GELU ||
	       act == SWARM_OP_SIGMOID || act == SWARM_OP_TANH;
}

/* o = act(o + bias) over one row of n, in one pass (the switch stays outside the loops). */
static void k_bias_act(float *o, const float *bias, int64_t n, uint32_t act)
{
	switch (act) {
	case SWARM_OP_RELU:
		if (bias)
			k_add(o, o, bias, n, 1);
		else
			k_relu(o, o, n);
		break;
	case SWARM_OP_GELU:
		if (bias) {
			for (int64_t i = 0; i < n; i++) {
				float v = o[i] + bias[i];
				o[i] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
			}
		} else {
			k_gelu(o, o, n);
		}
		break;
	case SWARM_OP_SIGMOID:
		if (bias) {
			for (int64_t i = 0; i < n; i++)
				o[i] = 1.0f / (1.0f + expf(-(o[i] + bias[i])));
		} else {
			k_sigmoid(o, o, n);
		}
		break;
	case SWARM_OP_TANH:
		if (bias) {
			for (int64_t i = 0; i < n; i++)
				o[i] = tanhf(o[i] + bias[i]);
		} else {
			k_tanh(o, o, n);
		}
		break;
	default: /* IDENTITY */
		if (bias)
			k_add(o, o, bias, n, 0);
		break;
	}
}

/* ---- ops ------------------------------------------------------------------------------------ */

int swarm_cpu_identity(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 1)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0];
	int64_t e = tensor_check(x, SWARM_DTYPE_F32, 0);
	if (e < 0 || out_check(n->out, x->ndim, x->shape) < 0)
		return -EINVAL;
	if (e > 0 && n->out->data != x->data)
		memmove(n->out->data, x->data, (size_t)e * sizeof(float));
	return 0;
}

int swarm_cpu_linear(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 2 && n->n_in != 3)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0], *w = n->in[1];
	const struct swarm_tensor *b = n->n_in == 3 ? n->in[2] : NULL;
	if (tensor_check(x, SWARM_DTYPE_F32, 1) < 0 || tensor_check(w, SWARM_DTYPE_F32, 2) < 0 ||
	    w->ndim != 2 || !swarm_cpu_act_ok(n->p.act))
		return -EINVAL;
	int64_t N = w->shape[0], K = w->shape[1];
	if (x->shape[x->ndim - 1] != K)
		return -EINVAL;
	if (b && (tensor_check(b, SWARM_DTYPE_F32, 1) < 0 || b->ndim != 1 || b->shape[0] != N))
		return -EINVAL;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, x->shape, sizeof(shape));
	shape[x->ndim - 1] = N;
	if (out_check(n->out, x->ndim, shape) < 0)
		return -EINVAL;
	int64_t M = dims_prod(x, 0, x->ndim - 1);
	if (!fits_int(M) || !fits_int(N) || !fits_int(K))
		return -EINVAL;
	if (M == 0 || N == 0)
		return 0;
	float *o = n->out->data;
	const float *bias = b ? b->data : NULL;
	if (K == 0)
		memset(o, 0, (size_t)(M * N) * sizeof(float));
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f,
			    x->data, (int)K, w->data, (int)K, 0.0f, o, (int)N);
	/* Row by row, while the row is still in cache from the GEMM's last touch. */
	for (int64_t r = 0; r < M; r++)
		k_bias_act(o + r * N, bias, N, n->p.act);
	return 0;
}

int swarm_cpu_matmul(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *a = n->in[0], *b = n->in[1];
	if (tensor_check(a, SWARM_DTYPE_F32, 2) < 0 || tensor_check(b, SWARM_DTYPE_F32, 2) < 0 ||
	    a->ndim != b->ndim || !dims_equal(a, b, a->ndim - 2))
		return -EINVAL;
	uint32_t nd = a->ndim;
	int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[nd - 1];
	if (b->shape[nd - 2] != K)
		return -EINVAL;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, a->shape, sizeof(shape));
	shape[nd - 1] = N;
	if (out_check(n->out, nd, shape) < 0)
		return -EINVAL;
	if (!fits_int(M) || !fits_int(N) || !fits_int(K))
		return -EINVAL;
	int64_t batch = dims_prod(a, 0, nd - 2);
	if (batch == 0 || M == 0 || N == 0)
		return 0;
	float *o = n->out->data;
	if (K == 0) {
		memset(o, 0, (size_t)(batch * M * N) * sizeof(float));
		return 0;
	}
	const float *pa = a->data, *pb = b->data;
	for (int64_t i = 0; i < batch; i++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
			    pa + i * M * K, (int)K, pb + i * K * N, (int)N, 0.0f, o + i * M * N,
			    (int)N);
	return 0;
}

/* ADD and MUL: checks A, B (a suffix of A's shape) and out; sets the element counts. */
static int binary_check(const struct swarm_node *n, int64_t *ea, int64_t *eb)
{
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *a = n->in[0], *b = n->in[1];
	*ea = tensor_check(a, SWARM_DTYPE_F32, 0);
	*eb = tensor_check(b, SWARM_DTYPE_F32, 0);
	if (*ea < 0 || *eb < 0 || b->ndim > a->ndim)
		return -EINVAL;
	for (uint32_t i = 0; i < b->ndim; i++) {
		if (b->shape[i] != a->shape[a->ndim - b->ndim + i])
			return -EINVAL;
	}
	if (out_check(n->out, a->ndim, a->shape) < 0)
		return -EINVAL;
	return 0;
}

int swarm_cpu_add(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	int64_t ea, eb;
	if (binary_check(n, &ea, &eb) < 0)
		return -EINVAL;
	if (ea == 0)
		return 0;
	const float *a = n->in[0]->data, *b = n->in[1]->data;
	float *o = n->out->data;
	/* B repeats every eb elements of A (eb divides ea: B's shape is a suffix of A's). */
	for (int64_t base = 0; base < ea; base += eb)
		k_add(o + base, a + base, b, eb, 0);
	return 0;
}

int swarm_cpu_mul(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	int64_t ea, eb;
	if (binary_check(n, &ea, &eb) < 0)
		return -EINVAL;
	if (ea == 0)
		return 0;
	const float *a = n->in[0]->data, *b = n->in[1]->data;
	float *o = n->out->data;
	for (int64_t base = 0; base < ea; base += eb)
		k_mul(o + base, a + base, b, eb);
	return 0;
}

int swarm_cpu_unary(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 1)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0];
	int64_t e = tensor_check(x, SWARM_DTYPE_F32, 0);
	if (e < 0 || out_check(n->out, x->ndim, x->shape) < 0)
		return -EINVAL;
	float *o = n->out->data;
	const float *in = x->data;
	switch (n->op) {
	case SWARM_OP_RELU:
		k_relu(o, in, e);
		break;
	case SWARM_OP_GELU:
		k_gelu(o, in, e);
		break;
	case SWARM_OP_SIGMOID:
		k_sigmoid(o, in, e);
		break;
	case SWARM_OP_TANH:
		k_tanh(o, in, e);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* Checks X [.., D] and out of X's shape; sets rows and D. */
static int rows_check(const struct swarm_node *n, int64_t *rows, int64_t *d)
{
	const struct swarm_tensor *x = n->in[0];
	if (tensor_check(x, SWARM_DTYPE_F32, 1) < 0 || out_check(n->out, x->ndim, x->shape) < 0)
		return -EINVAL;
	*d = x->shape[x->ndim - 1];
	*rows = dims_prod(x, 0, x->ndim - 1);
	return 0;
}

int swarm_cpu_softmax(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	int64_t rows, D;
	if (n->n_in != 1 || rows_check(n, &rows, &D) < 0)
		return -EINVAL;
	if (D == 0)
		return 0;
	for (int64_t r = 0; r < rows; r++) {
		const float *x = (const float *)n->in[0]->data + r * D;
		float *o = (float *)n->out->data + r * D;
		float mx = x[0];
		for (int64_t i = 1; i < D; i++)
			mx = x[i] > mx ? x[i] : mx;
		float sum = 0.0f;
		for (int64_t i = 0; i < D; i++) {
			o[i] = expf(x[i] - mx);
			sum += o[i];
		}
		/* sum >= 1: the max contributes exp(0) */
		k_scale(o, o, 1.0f / sum, D);
	}
	return 0;
}

int swarm_cpu_layernorm(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	int64_t rows, D;
	if (n->n_in != 3 || rows_check(n, &rows, &D) < 0)
		return -EINVAL;
	const struct swarm_tensor *g = n->in[1], *b = n->in[2];
	if (tensor_check(g, SWARM_DTYPE_F32, 1) < 0 || g->ndim != 1 || g->shape[0] != D ||
	    tensor_check(b, SWARM_DTYPE_F32, 1) < 0 || b->ndim != 1 || b->shape[0] != D)
		return -EINVAL;
	float eps = n->p.eps == 0.0f ? 1e-5f : n->p.eps;
	if (!(eps > 0.0f) || isinf(eps))
		return -EINVAL;
	if (D == 0)
		return 0;
	const float *gamma = g->data, *beta = b->data;
	for (int64_t r = 0; r < rows; r++) {
		const float *x = (const float *)n->in[0]->data + r * D;
		float *o = (float *)n->out->data + r * D;
		/* Two passes (mean, then the mean of squared deviations): the one-pass
		 * E[x^2] - E[x]^2 cancels badly when the mean is large against the spread. */
		float mean = k_sum(x, 0.0f, D, 0) / (float)D;
		float sq = k_sum(x, mean, D, 1);
		float inv = 1.0f / sqrtf(sq / (float)D + eps);
		int64_t i = 0;
		for (; i + VB <= D; i += VB) {
			float t[VB];
			for (int j = 0; j < VB; j++)
				t[j] = (x[i + j] - mean) * inv * gamma[i + j] + beta[i + j];
			for (int j = 0; j < VB; j++)
				o[i + j] = t[j];
		}
		for (; i < D; i++)
			o[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
	}
	return 0;
}

int swarm_cpu_embedding(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *t = n->in[0], *ids = n->in[1];
	int64_t L = index_check(ids, 0);
	if (tensor_check(t, SWARM_DTYPE_F32, 2) < 0 || t->ndim != 2 || L < 0 ||
	    ids->ndim >= SWARM_TENSOR_MAX_DIMS)
		return -EINVAL;
	int64_t V = t->shape[0], D = t->shape[1];
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, ids->shape, ids->ndim * sizeof(int64_t));
	shape[ids->ndim] = D;
	if (out_check(n->out, ids->ndim + 1, shape) < 0)
		return -EINVAL;
	for (int64_t i = 0; i < L; i++) {
		int64_t id = index_at(ids, i);
		if (id < 0 || id >= V)
			return -EINVAL;
	}
	if (D == 0)
		return 0;
	const float *table = t->data;
	float *o = n->out->data;
	for (int64_t i = 0; i < L; i++)
		memcpy(o + i * D, table + index_at(ids, i) * D, (size_t)D * sizeof(float));
	return 0;
}

int swarm_cpu_embedding_bag(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 3)
		return -EINVAL;
	const struct swarm_tensor *t = n->in[0], *ids = n->in[1], *offs = n->in[2];
	int64_t L = index_check(ids, 1), B = index_check(offs, 1);
	if (tensor_check(t, SWARM_DTYPE_F32, 2) < 0 || t->ndim != 2 || L < 0 || ids->ndim != 1 ||
	    B < 0 || offs->ndim != 1)
		return -EINVAL;
	if (n->p.bag_mode != SWARM_BAG_SUM && n->p.bag_mode != SWARM_BAG_MEAN)
		return -EINVAL;
	int64_t V = t->shape[0], D = t->shape[1];
	int64_t shape[2] = { B, D };
	if (out_check(n->out, 2, shape) < 0)
		return -EINVAL;
	for (int64_t i = 0; i < L; i++) {
		int64_t id = index_at(ids, i);
		if (id < 0 || id >= V)
			return -EINVAL;
	}
	if (B > 0 && index_at(offs, 0) != 0)
		return -EINVAL;
	for (int64_t b = 0; b < B; b++) {
		int64_t end = b + 1 < B ? index_at(offs, b + 1) : L;
		if (end < index_at(offs, b) || end > L)
			return -EINVAL;
	}
	if (D == 0)
		return 0;
	const float *table = t->data;
	for (int64_t b = 0; b < B; b++) {
		int64_t begin = index_at(offs, b), end = b + 1 < B ? index_at(offs, b + 1) : L;
		float *o = (float *)n->out->data + b * D;
		memset(o, 0, (size_t)D * sizeof(float));
		for (int64_t j = begin; j < end; j++) {
			k_add(o, o, table + index_at(ids, j) * D, D, 0);
		}
		if (n->p.bag_mode == SWARM_BAG_MEAN && end > begin)
			k_scale(o, o, 1.0f / (float)(end - begin), D);
	}
	return 0;
}

int swarm_cpu_concat(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in < 1 || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	const struct swarm_tensor *x0 = n->in[0];
	if (tensor_check(x0, SWARM_DTYPE_F32, 1) < 0)
		return -EINVAL;
	uint32_t nd = x0->ndim;
	int64_t total = 0;
	for (uint32_t k = 0; k < n->n_in; k++) {
		const struct swarm_tensor *x = n->in[k];
		if (tensor_check(x, SWARM_DTYPE_F32, 1) < 0 || x->ndim != nd ||
		    !dims_equal(x, x0, nd - 1))
			return -EINVAL;
		total += x->shape[nd - 1]; /* each at most ELEMS_MAX: no overflow in 8 */
	}
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	memcpy(shape, x0->shape, sizeof(shape));
	shape[nd - 1] = total;
	if (out_check(n->out, nd, shape) < 0)
		return -EINVAL;
	int64_t rows = dims_prod(x0, 0, nd - 1);
	float *o = n->out->data;
	for (int64_t r = 0; r < rows; r++) {
		for (uint32_t k = 0; k < n->n_in; k++) {
			int64_t d = n->in[k]->shape[nd - 1];
			if (d == 0)
				continue;
			memcpy(o, (const float *)n->in[k]->data + r * d, (size_t)d * sizeof(float));
			o += d;
		}
	}
	return 0;
}

/* Softmax of one row of scores in place over the kept keys (keep NULL: all kept); masked keys
 * get exactly 0, so they cannot affect the output. A row with no kept key becomes zeros. */
static void masked_softmax_row(float *s, const float *keep, int64_t S)
{
	float mx = -INFINITY;
	for (int64_t j = 0; j < S; j++) {
		if (!keep || keep[j] != 0.0f)
			mx = s[j] > mx ? s[j] : mx;
	}
	if (mx == -INFINITY) {
		memset(s, 0, (size_t)S * sizeof(float));
		return;
	}
	float sum = 0.0f;
	for (int64_t j = 0; j < S; j++) {
		s[j] = (!keep || keep[j] != 0.0f) ? expf(s[j] - mx) : 0.0f;
		sum += s[j];
	}
	k_scale(s, s, 1.0f / sum, S);
}

int swarm_cpu_attention(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	if (n->n_in != 3 && n->n_in != 4)
		return -EINVAL;
	const struct swarm_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
	const struct swarm_tensor *m = n->n_in == 4 ? n->in[3] : NULL;
	if (tensor_check(q, SWARM_DTYPE_F32, 3) < 0 || q->ndim != 3 ||
	    tensor_check(k, SWARM_DTYPE_F32, 3) < 0 || k->ndim != 3 || !dims_equal(q, k, 3) ||
	    tensor_check(v, SWARM_DTYPE_F32, 3) < 0 || v->ndim != 3 || !dims_equal(q, v, 3))
		return -EINVAL;
	int64_t B = q->shape[0], S = q->shape[1], E = q->shape[2], H = n->p.heads;
	if (H < 1 || E % H != 0)
		return -EINVAL;
	if (m && (tensor_check(m, SWARM_DTYPE_F32, 2) < 0 || m->ndim != 2 || m->shape[0] != B ||
		  m->shape[1] != S))
		return -EINVAL;
	if (out_check(n->out, 3, q->shape) < 0)
		return -EINVAL;
	if (!fits_int(S) || !fits_int(E) || (S > 0 && S > INT64_MAX / S))
		return -EINVAL;
	int64_t Dh = E / H;
	if (B == 0 || S == 0 || Dh == 0)
		return 0;
	float *P = ws_get(ws, (size_t)(S * S));
	if (!P)
		return -ENOMEM;
	float scale = 1.0f / sqrtf((float)Dh);
	for (int64_t b = 0; b < B; b++) {
		const float *keep = m ? (const float *)m->data + b * S : NULL;
		for (int64_t h = 0; h < H; h++) {
			int64_t off = b * S * E + h * Dh;
			const float *qh = (const float *)q->data + off;
			const float *kh = (const float *)k->data + off;
			const float *vh = (const float *)v->data + off;
			float *oh = (float *)n->out->data + off;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)S,
				    (int)Dh, scale, qh, (int)E, kh, (int)E, 0.0f, P, (int)S);
			for (int64_t i = 0; i < S; i++)
				masked_softmax_row(P + i * S, keep, S);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)Dh,
				    (int)S, 1.0f, P, (int)S, vh, (int)E, 0.0f, oh, (int)E);
		}
	}
	return 0;
}

int swarm_cpu_mean_pool(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	if (n->n_in != 2)
		return -EINVAL;
	const struct swarm_tensor *x = n->in[0], *m = n->in[1];
	if (tensor_check(x, SWARM_DTYPE_F32, 3) < 0 || x->ndim != 3 ||
	    tensor_check(m, SWARM_DTYPE_F32, 2) < 0 || m->ndim != 2 || !dims_equal(x, m, 2))
		return -EINVAL;
	int64_t B = x->shape[0], S = x->shape[1], D = x->shape[2];
	int64_t shape[2] = { B, D };
	if (out_check(n->out, 2, shape) < 0)
		return -EINVAL;
	if (D == 0)
		return 0;
	for (int64_t b = 0; b < B; b++) {
		const float *keep = (const float *)m->data + b * S;
		float *o = (float *)n->out->data + b * D;
		memset(o, 0, (size_t)D * sizeof(float));
		int64_t count = 0;
		for (int64_t s = 0; s < S; s++) {
			if (keep[s] == 0.0f)
				continue;
			k_add(o, o, (const float *)x->data + (b * S + s) * D, D, 0);
			count++;
		}
		if (count > 0)
			k_scale(o, o, 1.0f / (float)count, D);
	}
	return 0;
}

int swarm_cpu_l2norm(struct swarm_cpu_ws *ws, const struct swarm_node *n)
{
	(void)ws;
	int64_t rows, D;
	if (n->n_in != 1 || rows_check(n, &rows, &D) < 0)
		return -EINVAL;
	float eps = n->p.eps == 0.0f ? 1e-12f : n->p.eps;
	if (!(eps > 0.0f) || isinf(eps))
		return -EINVAL;
	for (int64_t r = 0; r < rows; r++) {
		const float *x = (const float *)n->in[0]->data + r * D;
		float *o = (float *)n->out->data + r * D;
		float norm = sqrtf(k_sum(x, 0.0f, D, 1));
		k_scale(o, x, 1.0f / (norm > eps ? norm : eps), D);
	}
	return 0;
}
