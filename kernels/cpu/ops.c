/* ops.c: the CPU device's ops (see ops.h and the contracts in kernels/device.h).
 *
 * The device checks a node against the op table (kernels/check.h) before it calls an op here
 * with the dims it derived; an op then checks every index value against the table, so that a
 * refused node has written nothing. GEMMs (linear, matmul, attention's products) go through
 * the packed GEMM of kernels/cpu/gemm.h, LINEAR's weights packed once at graph build
 * (swarm_node.prep); everything else is plain loops over contiguous floats that gcc -O2
 * vectorises, or explicit 8-lane code (simd.h). A GEMM dimension above INT_MAX is refused
 * with -EINVAL by the shared checks, as when BLAS took int dimensions.
 */
#include "kernels/cpu/ops.h"

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/simd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/check.h"
#include "swarm/swarm.h"

static int64_t index_at(const struct swarm_tensor *t, int64_t i)
{
	if (t->dtype == SWARM_DTYPE_I32)
		return ((const int32_t *)t->data)[i];
	return ((const int64_t *)t->data)[i];
}

void swarm_cpu_ws_free(struct swarm_cpu_ws *ws)
{
	free(ws->buf);
	ws->buf = NULL;
	ws->cap = 0;
}

/* Big blocks on huge pages: on 4 KiB pages a kernel's speed depended on where its scratch
 * lay modulo 4 KiB, up to twice (a 1x1 conv 384 -> 192 at 20x28, one thread, its packed
 * block of inputs moved by 1 KiB steps: 2.2, 3.0, 4.0, 4.8 ms), so that a process's luck
 * with malloc decided the detector's speed; on huge pages every placement ran at 2.2-2.3 ms.
 * The same holds for the graph's arena, which cpu_alloc takes from here. The advice is only
 * advice: where the kernel gives no huge pages, 4 KiB pages do the same work. */
void *swarm_cpu_alloc(size_t bytes)
{
	const size_t huge = (size_t)2 << 20;
	if (bytes > SIZE_MAX - huge)
		return NULL;
	if (bytes < SWARM_CPU_HUGE_MIN) /* a zero-byte tensor still gets a distinct pointer */
		return aligned_alloc(64, bytes ? (bytes + 63) & ~(size_t)63 : 64);
	const size_t len = (bytes + huge - 1) & ~(huge - 1);
	void *p = NULL;
	if (posix_memalign(&p, huge, len))
		return NULL;
	(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

/* Returns at least count floats of scratch, or NULL when out of memory. What it held is kept
 * when it grows. */
float *swarm_cpu_ws_get(struct swarm_cpu_ws *ws, size_t count)
{
	if (count <= ws->cap)
		return ws->buf;
	if (count > SIZE_MAX / sizeof(float))
		return NULL;
	float *p = swarm_cpu_alloc(count * sizeof(float));
	if (!p)
		return NULL;
	if (ws->cap)
		memcpy(p, ws->buf, ws->cap * sizeof(float));
	free(ws->buf);
	ws->buf = p;
	ws->cap = count;
	return p;
}

/* ---- elementwise kernels ------------------------------------------------------------------ */

/* gcc -O2 (its very-cheap cost model) vectorises only loops whose trip count is a known
 * multiple of the vector width and that need no runtime alias check. So the hot loops work in
 * blocks of VB: load the block into a local array, compute, then store (which also makes
 * in-place use, o == x, safe), and a scalar loop does the tail. Reductions keep VB partial
 * sums, which also rounds better than one running sum. GELU, sigmoid and exp go through
 * kernels/cpu/simd.h's branch-free functions, which vectorise; tanhf stays libm's. */
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

SWARM_INLINE void k_gelu_body(float *o, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		o[i] = swarm_gelu(x[i]);
}

SWARM_CPU_MULTI_VOID(static, k_gelu, (float *o, const float *x, int64_t n), (o, x, n))

SWARM_INLINE void k_sigmoid_body(float *o, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		o[i] = 1.0f / (1.0f + swarm_expf(-x[i]));
}

SWARM_CPU_MULTI_VOID(static, k_sigmoid, (float *o, const float *x, int64_t n), (o, x, n))

static void k_tanh(float *o, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		o[i] = tanhf(x[i]);
}

/* ---- ops ------------------------------------------------------------------------------------ */

int swarm_cpu_identity(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		       const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	if (d.elems > 0 && n->out->data != n->in[0]->data)
		memmove(n->out->data, n->in[0]->data, (size_t)d.elems * sizeof(float));
	return 0;
}

int swarm_cpu_linear(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *dp)
{
	const struct swarm_node_dims d = *dp;
	int64_t M = d.m, N = d.n, K = d.k;
	if (M == 0 || N == 0)
		return 0;
	const float *bias = d.has_bias ? n->in[2]->data : NULL;
	const struct swarm_cpu_packed *pk = n->prep;
	const float *bp;
	if (pk && pk->layout == SWARM_CPU_PACK_GEMM && pk->k == K && pk->n == N) {
		bp = pk->b; /* packed once when the graph was built */
	} else {
		/* a weight that is not the graph's (or a node run alone): packed for this run */
		float *b = K > 0 ? swarm_cpu_ws_get(ws, swarm_gemm_packed_floats(K, N)) : NULL;
		if (K > 0 && !b)
			return -ENOMEM;
		if (b)
			swarm_gemm_pack_wt(b, n->in[1]->data, N, K, K);
		bp = b;
	}
	swarm_gemm(M, N, K, 1.0f, n->in[0]->data, K, bp, n->out->data, N, bias, NULL, n->p.act,
		   &n->p, ws->threads);
	return 0;
}

int swarm_cpu_matmul(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *dp)
{
	const struct swarm_node_dims d = *dp;
	int64_t M = d.m, N = d.n, K = d.k, batch = d.batch;
	if (batch == 0 || M == 0 || N == 0)
		return 0;
	float *o = n->out->data;
	/* both operands are the request's: each B is packed for this run (a constant one is a
	 * LINEAR, packed once: the importer makes it one) */
	float *bp = K > 0 ? swarm_cpu_ws_get(ws, swarm_gemm_packed_floats(K, N)) : NULL;
	if (K > 0 && !bp)
		return -ENOMEM;
	const float *pa = n->in[0]->data, *pb = n->in[1]->data;
	for (int64_t i = 0; i < batch; i++) {
		if (bp)
			swarm_gemm_pack_b(bp, pb + i * K * N, K, N, N);
		swarm_gemm(M, N, K, 1.0f, pa + i * M * K, K, bp, o + i * M * N, N, NULL, NULL,
			   SWARM_OP_IDENTITY, NULL, ws->threads);
	}
	return 0;
}

int swarm_cpu_unary(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		    const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	int64_t e = d.elems;
	float *o = n->out->data;
	const float *in = n->in[0]->data;
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

/* o = the softmax of x over n entries, over the kept ones where masked (keep[i] != 0); the
 * others get exactly 0, so they cannot affect anything. A row with nothing kept becomes zeros.
 * o may be x. masked is a constant at each call, so each loop vectorises. */
SWARM_INLINE void softmax_row(float *o, const float *x, const float *keep, int64_t n,
			      const bool masked)
{
	const swarm_v8 zero = SWARM_V8_SET1(0.0f), ninf = SWARM_V8_SET1(-INFINITY);
	swarm_v8 vm = ninf;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		swarm_v8 v = SWARM_V8_LOAD(x + i);
		if (masked)
			v = SWARM_V8_SELECT(SWARM_V8_LOAD(keep + i) != zero, v, ninf);
		vm = SWARM_V8_SELECT(v > vm, v, vm);
	}
	float mx = -INFINITY, lanes[8];
	for (; i < n; i++) {
		const float v = !masked || keep[i] != 0.0f ? x[i] : -INFINITY;
		mx = v > mx ? v : mx;
	}
	SWARM_V8_STORE(lanes, vm);
	for (int j = 0; j < 8; j++)
		mx = lanes[j] > mx ? lanes[j] : mx;
	if (mx == -INFINITY) {
		memset(o, 0, (size_t)n * sizeof(float));
		return;
	}
	/* x - max is at most 0 for a kept entry; a masked one may be anything: clamped into
	 * exp's range (never inf), then dropped */
	const swarm_v8 vmx = SWARM_V8_SET1(mx), lo = SWARM_V8_SET1(-87.3f),
		       hi = SWARM_V8_SET1(88.3f);
	swarm_v8 vs = zero;
	for (i = 0; i + 8 <= n; i += 8) {
		swarm_v8 v = SWARM_V8_LOAD(x + i) - vmx;
		v = SWARM_V8_SELECT(v < lo, lo, v);
		v = SWARM_V8_SELECT(v > hi, hi, v);
		swarm_v8_exp(&v);
		if (masked)
			v = SWARM_V8_SELECT(SWARM_V8_LOAD(keep + i) != zero, v, zero);
		SWARM_V8_STORE(o + i, v);
		vs += v;
	}
	float sum = 0.0f;
	for (; i < n; i++) {
		const float e = swarm_expf(x[i] - mx);
		o[i] = !masked || keep[i] != 0.0f ? e : 0.0f;
		sum += o[i];
	}
	SWARM_V8_STORE(lanes, vs);
	for (int j = 0; j < 8; j++)
		sum += lanes[j];
	/* sum >= 1: the max contributes exp(0) */
	k_scale(o, o, 1.0f / sum, n);
}

SWARM_INLINE void k_softmax_row_body(float *o, const float *x, const float *keep, int64_t n)
{
	if (keep)
		softmax_row(o, x, keep, n, true);
	else
		softmax_row(o, x, NULL, n, false);
}

SWARM_CPU_MULTI_VOID(static, k_softmax_row,
		     (float *o, const float *x, const float *keep, int64_t n), (o, x, keep, n))

int swarm_cpu_softmax(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		      const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	int64_t rows = d.rows, D = d.cols;
	if (D == 0)
		return 0;
	for (int64_t r = 0; r < rows; r++)
		k_softmax_row((float *)n->out->data + r * D, (const float *)n->in[0]->data + r * D,
			      NULL, D);
	return 0;
}

int swarm_cpu_layernorm(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	int64_t rows = d.rows, D = d.cols;
	float eps = d.eps;
	if (D == 0)
		return 0;
	const float *gamma = n->in[1]->data, *beta = n->in[2]->data;
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

int swarm_cpu_embedding(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	const struct swarm_tensor *ids = n->in[1];
	int64_t L = d.count, V = d.vocab, D = d.cols;
	/* The ids may come from a client: all checked before the first write. */
	for (int64_t i = 0; i < L; i++) {
		int64_t id = index_at(ids, i);
		if (id < 0 || id >= V)
			return -EINVAL;
	}
	if (D == 0)
		return 0;
	const float *table = n->in[0]->data;
	float *o = n->out->data;
	for (int64_t i = 0; i < L; i++)
		memcpy(o + i * D, table + index_at(ids, i) * D, (size_t)D * sizeof(float));
	return 0;
}

int swarm_cpu_embedding_bag(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			    const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	const struct swarm_tensor *ids = n->in[1], *offs = n->in[2];
	int64_t L = d.count, B = d.batch, V = d.vocab, D = d.cols;
	/* Ids and offsets may come from a client: all checked before the first write. */
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
	const float *table = n->in[0]->data;
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

int swarm_cpu_concat(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	/* rows: the product of the dims before the axis; input k adds its dim on the axis
	 * times count (the elements a step of the axis) to each row */
	int ax = n->p.axis < 0 ? (int)n->in[0]->ndim + n->p.axis : n->p.axis;
	float *o = n->out->data;
	for (int64_t r = 0; r < d.rows; r++) {
		for (uint32_t k = 0; k < n->n_in; k++) {
			int64_t w = n->in[k]->shape[ax] * d.count;
			if (w == 0)
				continue;
			memcpy(o, (const float *)n->in[k]->data + r * w, (size_t)w * sizeof(float));
			o += w;
		}
	}
	return 0;
}

int swarm_cpu_attention(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *dp)
{
	const struct swarm_node_dims d = *dp;
	const struct swarm_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
	const struct swarm_tensor *m = d.has_mask ? n->in[3] : NULL;
	int64_t B = d.batch, S = d.seq, E = d.cols, H = d.heads, Dh = d.head_dim;
	if (B == 0 || S == 0 || Dh == 0)
		return 0;
	/* per head: the scores P [S, S], then the head's keys (as B = K_h^T) and values packed
	 * for the GEMM; all of it stays in L1 or L2 for BERT's sizes */
	const size_t kp = swarm_gemm_packed_floats(Dh, S), vp = swarm_gemm_packed_floats(S, Dh);
	float *P = swarm_cpu_ws_get(ws, (size_t)(S * S) + kp + vp + 32);
	if (!P)
		return -ENOMEM;
	/* the packed operands on 64-byte lines, as the GEMM's loads like them */
	float *Kp = swarm_cpu_line(P + S * S), *Vp = swarm_cpu_line(Kp + kp);
	float scale = 1.0f / sqrtf((float)Dh);
	for (int64_t b = 0; b < B; b++) {
		const float *keep = m ? (const float *)m->data + b * S : NULL;
		for (int64_t h = 0; h < H; h++) {
			int64_t off = b * S * E + h * Dh;
			const float *qh = (const float *)q->data + off;
			const float *kh = (const float *)k->data + off;
			const float *vh = (const float *)v->data + off;
			float *oh = (float *)n->out->data + off;
			swarm_gemm_pack_wt(Kp, kh, S, Dh, E);
			swarm_gemm_pack_b(Vp, vh, S, Dh, E);
			swarm_gemm(S, S, Dh, scale, qh, E, Kp, P, S, NULL, NULL, SWARM_OP_IDENTITY,
				   &n->p, 1);
			for (int64_t i = 0; i < S; i++)
				k_softmax_row(P + i * S, P + i * S, keep, S);
			swarm_gemm(S, Dh, S, 1.0f, P, S, Vp, oh, E, NULL, NULL, SWARM_OP_IDENTITY,
				   &n->p, 1);
		}
	}
	return 0;
}

int swarm_cpu_mean_pool(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	int64_t B = d.batch, S = d.seq, D = d.cols;
	if (D == 0)
		return 0;
	const float *x = n->in[0]->data, *mask = n->in[1]->data;
	for (int64_t b = 0; b < B; b++) {
		const float *keep = mask + b * S;
		float *o = (float *)n->out->data + b * D;
		memset(o, 0, (size_t)D * sizeof(float));
		int64_t count = 0;
		for (int64_t s = 0; s < S; s++) {
			if (keep[s] == 0.0f)
				continue;
			k_add(o, o, x + (b * S + s) * D, D, 0);
			count++;
		}
		if (count > 0)
			k_scale(o, o, 1.0f / (float)count, D);
	}
	return 0;
}

int swarm_cpu_l2norm(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *dp)
{
	(void)ws;
	const struct swarm_node_dims d = *dp;
	int64_t rows = d.rows, D = d.cols;
	float eps = d.eps;
	for (int64_t r = 0; r < rows; r++) {
		const float *x = (const float *)n->in[0]->data + r * D;
		float *o = (float *)n->out->data + r * D;
		float norm = sqrtf(k_sum(x, 0.0f, D, 1));
		k_scale(o, x, 1.0f / (norm > eps ? norm : eps), D);
	}
	return 0;
}
