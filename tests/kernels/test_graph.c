/* test_graph.c: the graph executor (kernels/graph.h) on the CPU device. Models come from
 * manifest JSON through swarm_manifest_parse, as they would in production: an MLP, a
 * DLRM-style ranker and a small BERT-style encoder, each against a float64 reference computed
 * here; rows run alone or in a batch giving the same per-row results; the arena's liveness
 * reuse; one test per refusal (each names the node or output); and no device allocation once
 * built (the CPU device wrapped in one that counts).
 *
 * The staged path (a device whose memory is not host memory) runs on the CPU device dressed
 * as such a device: outputs equal to the bit with the direct CPU run, one upload per input
 * and one download per output per run, a capture per rows value and replays after it, direct
 * runs after a failed capture, and the error an asynchronous device reports at synchronize.
 *
 * swarm_graph_run_parts (a batch run straight from many requests' buffers) runs on the
 * library's staged CPU device (kernels/cpu/staged_device.h), which refuses any node or copy
 * that touches host memory where its own belongs: outputs equal to the bit with one
 * contiguous run, random splits, the most parts, odd row sizes and unaligned buffers, with
 * and without upload_many, and a copy that fails part-way.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/segment.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/staged_device.h"
#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "registry/manifest.h"
#include "registry/safetensors.h"

/* The executor's view of a parsed manifest (registry/manifest.h), for swarm_graph_build. */
static const struct swarm_graph_desc *man_desc(const struct swarm_manifest *m)
{
	static struct swarm_graph_desc d;
	swarm_manifest_graph_desc(m, &d);
	return &d;
}

/* ---- a CPU device that counts what it is asked to do ----------------------------------- */

struct counting {
	struct swarm_device dev;
	struct swarm_device *inner;
	int allocs, frees, runs;
	int prepared, released; /* weights the inner CPU device packed, and freed */
};

static struct counting *cnt(struct swarm_device *d) { return d->ctx; }

static void *cnt_alloc(struct swarm_device *d, size_t n)
{
	cnt(d)->allocs++;
	return cnt(d)->inner->i->alloc(cnt(d)->inner, n);
}

static void cnt_free(struct swarm_device *d, void *p)
{
	cnt(d)->frees++;
	cnt(d)->inner->i->free(cnt(d)->inner, p);
}

static int cnt_upload(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	return cnt(d)->inner->i->upload(cnt(d)->inner, dst, src, n);
}

static int cnt_download(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	return cnt(d)->inner->i->download(cnt(d)->inner, dst, src, n);
}

static int cnt_supports(struct swarm_device *d, const struct swarm_node *n)
{
	return cnt(d)->inner->i->supports_op(cnt(d)->inner, n);
}

static int cnt_run(struct swarm_device *d, const struct swarm_node *n)
{
	cnt(d)->runs++;
	return cnt(d)->inner->i->run(cnt(d)->inner, n);
}

static int cnt_prepare(struct swarm_device *d, const struct swarm_node *n, uint32_t consts,
		       void **prep)
{
	int rc = cnt(d)->inner->i->prepare(cnt(d)->inner, n, consts, prep);
	cnt(d)->prepared += rc == 0 && *prep;
	return rc;
}

static void cnt_release(struct swarm_device *d, void *prep)
{
	cnt(d)->released++;
	cnt(d)->inner->i->release(cnt(d)->inner, prep);
}

static size_t cnt_prep_bytes(struct swarm_device *d, const void *prep)
{
	return cnt(d)->inner->i->prep_bytes(cnt(d)->inner, prep);
}

/* The CPU's prepare, release and prep_bytes pass through: every graph here runs LINEAR on packed
 * weights, as a worker's graph does. */
static const struct swarm_device_i counting_i = {
	.name = "counting-cpu",
	.alloc = cnt_alloc,
	.free = cnt_free,
	.upload = cnt_upload,
	.download = cnt_download,
	.supports_op = cnt_supports,
	.run = cnt_run,
	.prepare = cnt_prepare,
	.release = cnt_release,
	.prep_bytes = cnt_prep_bytes,
	.host_memory = 1,
};

static struct counting dev;

static void dev_setup(void)
{
	memset(&dev, 0, sizeof dev);
	int rc = swarm_device_cpu_create(1, &dev.inner);
	cr_assert_eq(rc, 0, "swarm_device_cpu_create = %d", rc);
	dev.dev.i = &counting_i;
	dev.dev.ctx = &dev;
}

static void free_weights(void);

static void dev_teardown(void)
{
	free_weights();
	if (dev.inner)
		dev.inner->i->destroy(dev.inner);
}

TestSuite(kernels_graph, .init = dev_setup, .fini = dev_teardown);

/* ---- weights: host f32 (or index) tensors, looked up by name --------------------------- */

#define MAX_W 32

struct weights {
	uint32_t n;
	char name[MAX_W][64];
	struct swarm_tensor t[MAX_W];
};

static struct weights ws;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void free_weights(void)
{
	for (uint32_t i = 0; i < ws.n; i++)
		free(ws.t[i].data);
}

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / (double)(1ull << 53);
}

/* A weight of shape [d0] (d1 == 0) or [d0, d1], uniform in [-scale, scale]. */
static float *add_w(const char *name, int64_t d0, int64_t d1, double scale)
{
	cr_assert_lt(ws.n, MAX_W);
	uint32_t i = ws.n++;
	snprintf(ws.name[i], sizeof ws.name[i], "%s", name);
	struct swarm_tensor *t = &ws.t[i];
	t->dtype = SWARM_DTYPE_F32;
	t->ndim = d1 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1;
	size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
	float *f = malloc(n * sizeof *f);
	cr_assert_not_null(f);
	for (size_t k = 0; k < n; k++)
		f[k] = (float)((2 * urand() - 1) * scale);
	t->data = f;
	return f;
}

static const struct swarm_tensor *lookup(void *ctx, const char *name)
{
	struct weights *w = ctx;
	for (uint32_t i = 0; i < w->n; i++)
		if (strcmp(w->name[i], name) == 0)
			return &w->t[i];
	return NULL;
}

/* ---- manifests -------------------------------------------------------------------------- */

static struct swarm_manifest man;
static char err[512];

static void parse(const char *json)
{
	int rc = swarm_manifest_parse(json, strlen(json), &man, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_manifest_parse = %d: %s", rc, err);
}

static struct swarm_graph *build(uint32_t max_batch)
{
	struct swarm_graph *g = NULL;
	int rc = swarm_graph_build(man_desc(&man), lookup, &ws, &dev.dev, max_batch, &g, err,
				   sizeof err);
	cr_assert_eq(rc, 0, "swarm_graph_build = %d: %s", rc, err);
	cr_assert_not_null(g);
	return g;
}

/* The build of json fails with -EINVAL and a message containing each of want[]. */
static void expect_refusal(const char *json, const char *want1, const char *want2)
{
	parse(json);
	struct swarm_graph *g = (struct swarm_graph *)1;
	int rc = swarm_graph_build(man_desc(&man), lookup, &ws, &dev.dev, 8, &g, err, sizeof err);
	cr_assert_eq(rc, -EINVAL, "rc %d, want -EINVAL (err \"%s\")", rc, err);
	cr_log_info("%s", err);
	cr_assert_null(g, "a refused build left a graph");
	cr_assert(strstr(err, want1), "err \"%s\" does not contain \"%s\"", err, want1);
	if (want2)
		cr_assert(strstr(err, want2), "err \"%s\" does not contain \"%s\"", err, want2);
	cr_assert_eq(dev.allocs, dev.frees, "%d allocs, %d frees", dev.allocs, dev.frees);
}

/* ---- float64 references ----------------------------------------------------------------- */

enum act {
	A_NONE,
	A_RELU,
	A_SIGMOID
};

/* out[r][n] = act(sum_k x[r][k] w[n][k] + b[n]) */
static void ref_linear(const double *x, int rows, int K, const float *w, const float *b, int N,
		       enum act act, double *out)
{
	for (int r = 0; r < rows; r++)
		for (int n = 0; n < N; n++) {
			double s = b ? b[n] : 0;
			for (int k = 0; k < K; k++)
				s += x[r * K + k] * w[n * K + k];
			if (act == A_RELU && s < 0)
				s = 0;
			if (act == A_SIGMOID)
				s = 1 / (1 + exp(-s));
			out[r * N + n] = s;
		}
}

static void expect_close(const float *got, const double *want, size_t n, double tol,
			 const char *what)
{
	for (size_t i = 0; i < n; i++)
		cr_assert(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])),
			  "%s[%zu] = %.9g, want %.9g", what, i, got[i], want[i]);
}

static float *random_f32(size_t n)
{
	float *f = malloc(n * sizeof *f);
	cr_assert_not_null(f);
	for (size_t i = 0; i < n; i++)
		f[i] = (float)(2 * urand() - 1);
	return f;
}

static double *to_f64(const float *f, size_t n)
{
	double *d = malloc(n * sizeof *d);
	cr_assert_not_null(d);
	for (size_t i = 0; i < n; i++)
		d[i] = f[i];
	return d;
}

/* ---- the MLP ---------------------------------------------------------------------------- */

#define MLP_JSON                                                                             \
	"{\"format\": 1,"                                                                    \
	" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"         \
	" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}],"         \
	" \"graph\": {\"nodes\": ["                                                          \
	"  {\"op\": \"linear\", \"inputs\": [\"x\", \"w1\", \"b1\"], \"output\": \"h1\","    \
	"   \"act\": \"relu\"},"                                                             \
	"  {\"op\": \"linear\", \"inputs\": [\"h1\", \"w2\", \"b2\"], \"output\": \"y\"}]}," \
	" \"weights\": [{\"name\": \"w1\", \"dtype\": \"f32\", \"shape\": [32, 16]},"        \
	"   {\"name\": \"b1\", \"dtype\": \"f32\", \"shape\": [32]},"                        \
	"   {\"name\": \"w2\", \"dtype\": \"f32\", \"shape\": [4, 32]},"                     \
	"   {\"name\": \"b2\", \"dtype\": \"f32\", \"shape\": [4]}]}"

struct mlp {
	float *w1, *b1, *w2, *b2;
};

static struct mlp mlp_weights(void)
{
	struct mlp m;
	m.w1 = add_w("w1", 32, 16, 0.5);
	m.b1 = add_w("b1", 32, 0, 0.5);
	m.w2 = add_w("w2", 4, 32, 0.5);
	m.b2 = add_w("b2", 4, 0, 0.5);
	return m;
}

static void mlp_ref(const struct mlp *m, const float *x, int rows, double *y)
{
	double *xd = to_f64(x, (size_t)rows * 16), *h = malloc(sizeof(double) * rows * 32);
	ref_linear(xd, rows, 16, m->w1, m->b1, 32, A_RELU, h);
	ref_linear(h, rows, 32, m->w2, m->b2, 4, A_NONE, y);
	free(xd);
	free(h);
}

Test(kernels_graph, mlp_matches_float64_reference)
{
	struct mlp w = mlp_weights();
	parse(MLP_JSON);
	struct swarm_graph *g = build(8);
	cr_assert_eq(swarm_graph_nodes(g), 2);

	float *x = random_f32(8 * 16), y[8 * 4];
	double want[8 * 4];
	const void *in[] = { x };
	void *out[] = { y };
	int rc = swarm_graph_run(g, 8, in, out);
	cr_assert_eq(rc, 0, "swarm_graph_run = %d", rc);
	mlp_ref(&w, x, 8, want);
	expect_close(y, want, 8 * 4, 1e-5, "y");
	swarm_graph_free(g);
	free(x);
}

/* ---- the DLRM-style ranker -------------------------------------------------------------- */

/* Dense features [B, 8] through a dense MLP; two embedding tables, one bag per row ([B, 3]
 * i64 ids summed, [B, 2] i32 ids averaged); all three concatenated; a top MLP to one logit and
 * a sigmoid. */
#define DLRM_JSON                                                                               \
	"{\"format\": 1,"                                                                       \
	" \"inputs\": [{\"name\": \"dense\", \"dtype\": \"f32\", \"shape\": [-1, 8]},"          \
	"   {\"name\": \"ids0\", \"dtype\": \"i64\", \"shape\": [-1, 3]},"                      \
	"   {\"name\": \"ids1\", \"dtype\": \"i32\", \"shape\": [-1, 2]}],"                     \
	" \"outputs\": [{\"name\": \"p\", \"dtype\": \"f32\", \"shape\": [-1, 1]}],"            \
	" \"graph\": {\"nodes\": ["                                                             \
	"  {\"op\": \"embedding_bag\", \"inputs\": [\"t0\", \"ids0\"], \"output\": \"e0\","     \
	"   \"mode\": \"sum\"},"                                                                \
	"  {\"op\": \"embedding_bag\", \"inputs\": [\"t1\", \"ids1\"], \"output\": \"e1\","     \
	"   \"mode\": \"mean\"},"                                                               \
	"  {\"op\": \"linear\", \"inputs\": [\"dense\", \"wd\", \"bd\"], \"output\": \"d1\","   \
	"   \"act\": \"relu\"},"                                                                \
	"  {\"op\": \"concat\", \"inputs\": [\"d1\", \"e0\", \"e1\"], \"output\": \"cat\"},"    \
	"  {\"op\": \"linear\", \"inputs\": [\"cat\", \"wt1\", \"bt1\"], \"output\": \"t\","    \
	"   \"act\": \"relu\"},"                                                                \
	"  {\"op\": \"linear\", \"inputs\": [\"t\", \"wt2\", \"bt2\"], \"output\": \"logit\"}," \
	"  {\"op\": \"sigmoid\", \"inputs\": [\"logit\"], \"output\": \"p\"}]},"                \
	" \"weights\": []}"

#define V0 50
#define V1 30

struct dlrm {
	float *t0, *t1, *wd, *bd, *wt1, *bt1, *wt2, *bt2;
};

static struct dlrm dlrm_weights(void)
{
	struct dlrm d;
	d.t0 = add_w("t0", V0, 8, 1.0);
	d.t1 = add_w("t1", V1, 8, 1.0);
	d.wd = add_w("wd", 8, 8, 0.5);
	d.bd = add_w("bd", 8, 0, 0.5);
	d.wt1 = add_w("wt1", 16, 24, 0.4);
	d.bt1 = add_w("bt1", 16, 0, 0.4);
	d.wt2 = add_w("wt2", 1, 16, 0.4);
	d.bt2 = add_w("bt2", 1, 0, 0.4);
	return d;
}

struct dlrm_in {
	float *dense;
	int64_t *ids0;
	int32_t *ids1;
};

static struct dlrm_in dlrm_inputs(int rows)
{
	struct dlrm_in in = { random_f32((size_t)rows * 8), malloc(sizeof(int64_t) * rows * 3),
			      malloc(sizeof(int32_t) * rows * 2) };
	for (int i = 0; i < rows * 3; i++)
		in.ids0[i] = (int64_t)(urand() * V0);
	for (int i = 0; i < rows * 2; i++)
		in.ids1[i] = (int32_t)(urand() * V1);
	return in;
}

static void dlrm_in_free(struct dlrm_in *in)
{
	free(in->dense);
	free(in->ids0);
	free(in->ids1);
}

static void dlrm_ref(const struct dlrm *w, const struct dlrm_in *in, int rows, double *p)
{
	double *dense = to_f64(in->dense, (size_t)rows * 8);
	double d1[8], cat[24], t[16];
	for (int r = 0; r < rows; r++) {
		ref_linear(dense + r * 8, 1, 8, w->wd, w->bd, 8, A_RELU, d1);
		for (int j = 0; j < 8; j++) {
			double s0 = 0, s1 = 0;
			for (int k = 0; k < 3; k++)
				s0 += w->t0[in->ids0[r * 3 + k] * 8 + j];
			for (int k = 0; k < 2; k++)
				s1 += w->t1[in->ids1[r * 2 + k] * 8 + j];
			cat[j] = d1[j];
			cat[8 + j] = s0;
			cat[16 + j] = s1 / 2;
		}
		ref_linear(cat, 1, 24, w->wt1, w->bt1, 16, A_RELU, t);
		ref_linear(t, 1, 16, w->wt2, w->bt2, 1, A_SIGMOID, p + r);
	}
	free(dense);
}

Test(kernels_graph, dlrm_ranker_matches_float64_reference)
{
	struct dlrm w = dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *g = build(16);
	struct dlrm_in in = dlrm_inputs(16);
	float p[16];
	double want[16];
	const void *ins[] = { in.dense, in.ids0, in.ids1 };
	void *outs[] = { p };
	int rc = swarm_graph_run(g, 16, ins, outs);
	cr_assert_eq(rc, 0, "swarm_graph_run = %d", rc);
	dlrm_ref(&w, &in, 16, want);
	expect_close(p, want, 16, 1e-5, "p");
	dlrm_in_free(&in);
	swarm_graph_free(g);
}

/* Each row's result is the same whether it runs alone, in a part of a batch or in a full
 * one: nothing leaks between rows, and the batch dimension follows rows. */
Test(kernels_graph, rows_are_independent_of_the_batch)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *g = build(16);
	struct dlrm_in in = dlrm_inputs(16);
	float full[16], part[16];
	const void *ins[] = { in.dense, in.ids0, in.ids1 };
	void *outs_full[] = { full }, *outs_part[] = { part };
	cr_assert_eq(swarm_graph_run(g, 16, ins, outs_full), 0);

	const uint32_t sizes[] = { 1, 5, 11, 16 };
	for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
		uint32_t rows = sizes[s];
		/* Run rows starting at row first, so that a row moves within the batch. */
		for (uint32_t first = 0; first + rows <= 16; first += rows) {
			const void *sub[] = { in.dense + first * 8, in.ids0 + first * 3,
					      in.ids1 + first * 2 };
			for (uint32_t r = 0; r < 16; r++)
				part[r] = NAN;
			int rc = swarm_graph_run(g, rows, sub, outs_part);
			cr_assert_eq(rc, 0, "rows %u: swarm_graph_run = %d", rows, rc);
			for (uint32_t r = 0; r < rows; r++)
				cr_assert(fabsf(part[r] - full[first + r]) <= 1e-6f,
					  "rows %u, row %u: %.9g alone, %.9g in the full batch",
					  rows, first + r, part[r], full[first + r]);
			cr_assert(rows == 16 || isnan(part[rows]),
				  "rows %u: row %u written past the batch", rows, rows);
		}
	}
	dlrm_in_free(&in);
	swarm_graph_free(g);
}

/* ---- a BERT-style encoder: embedding, layernorm, attention, add, mean_pool, l2norm ------ */

#define S 4
#define D 8
#define H 2
#define VOC 20

#define ENC_JSON                                                                                    \
	"{\"format\": 1,"                                                                           \
	" \"inputs\": [{\"name\": \"ids\", \"dtype\": \"i64\", \"shape\": [-1, 4]},"                \
	"   {\"name\": \"mask\", \"dtype\": \"f32\", \"shape\": [-1, 4]}],"                         \
	" \"outputs\": [{\"name\": \"emb\", \"dtype\": \"f32\", \"shape\": [-1, 8]}],"              \
	" \"graph\": {\"nodes\": ["                                                                 \
	"  {\"op\": \"embedding\", \"inputs\": [\"tok\", \"ids\"], \"output\": \"x\"},"             \
	"  {\"op\": \"layernorm\", \"inputs\": [\"x\", \"g\", \"b\"], \"output\": \"x1\","          \
	"   \"eps\": 1e-12},"                                                                       \
	"  {\"op\": \"linear\", \"inputs\": [\"x1\", \"wq\", \"bq\"], \"output\": \"q\"},"          \
	"  {\"op\": \"linear\", \"inputs\": [\"x1\", \"wk\", \"bk\"], \"output\": \"k\"},"          \
	"  {\"op\": \"linear\", \"inputs\": [\"x1\", \"wv\", \"bv\"], \"output\": \"v\"},"          \
	"  {\"op\": \"attention\", \"inputs\": [\"q\", \"k\", \"v\", \"mask\"], \"output\": \"a\"," \
	"   \"heads\": 2},"                                                                         \
	"  {\"op\": \"add\", \"inputs\": [\"x1\", \"a\"], \"output\": \"x2\"},"                     \
	"  {\"op\": \"mean_pool\", \"inputs\": [\"x2\", \"mask\"], \"output\": \"pooled\"},"        \
	"  {\"op\": \"l2norm\", \"inputs\": [\"pooled\"], \"output\": \"emb\"}]},"                  \
	" \"weights\": []}"

Test(kernels_graph, encoder_matches_float64_reference)
{
	const float *tok = add_w("tok", VOC, D, 1.0);
	const float *gam = add_w("g", D, 0, 1.0), *bet = add_w("b", D, 0, 0.5);
	const float *wq = add_w("wq", D, D, 0.5), *bq = add_w("bq", D, 0, 0.2);
	const float *wk = add_w("wk", D, D, 0.5), *bk = add_w("bk", D, 0, 0.2);
	const float *wv = add_w("wv", D, D, 0.5), *bv = add_w("bv", D, 0, 0.2);
	parse(ENC_JSON);
	struct swarm_graph *g = build(3);

	enum {
		B = 3
	};
	int64_t ids[B * S];
	float mask[B * S] = { 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0 }, emb[B * D];
	for (int i = 0; i < B * S; i++)
		ids[i] = (int64_t)(urand() * VOC);
	const void *ins[] = { ids, mask };
	void *outs[] = { emb };
	int rc = swarm_graph_run(g, B, ins, outs);
	cr_assert_eq(rc, 0, "swarm_graph_run = %d", rc);

	double x1[B * S * D], q[B * S * D], k[B * S * D], v[B * S * D], want[B * D];
	for (int t = 0; t < B * S; t++) {
		double mean = 0, var = 0;
		for (int d = 0; d < D; d++)
			mean += tok[ids[t] * D + d];
		mean /= D;
		for (int d = 0; d < D; d++)
			var += pow(tok[ids[t] * D + d] - mean, 2);
		var /= D;
		for (int d = 0; d < D; d++)
			x1[t * D + d] =
				(tok[ids[t] * D + d] - mean) / sqrt(var + 1e-12) * gam[d] + bet[d];
	}
	ref_linear(x1, B * S, D, wq, bq, D, A_NONE, q);
	ref_linear(x1, B * S, D, wk, bk, D, A_NONE, k);
	ref_linear(x1, B * S, D, wv, bv, D, A_NONE, v);
	const int dh = D / H;
	for (int b = 0; b < B; b++) {
		double pooled[D] = { 0 }, kept = 0, x2[S][D];
		for (int i = 0; i < S; i++)
			for (int h = 0; h < H; h++) {
				double sc[S], mx = -INFINITY, sum = 0;
				for (int j = 0; j < S; j++) {
					sc[j] = -INFINITY;
					if (mask[b * S + j] == 0)
						continue;
					double dot = 0;
					for (int e = 0; e < dh; e++)
						dot += q[(b * S + i) * D + h * dh + e] *
						       k[(b * S + j) * D + h * dh + e];
					sc[j] = dot / sqrt(dh);
					mx = fmax(mx, sc[j]);
				}
				for (int j = 0; j < S; j++)
					sum += sc[j] == -INFINITY ? 0 : exp(sc[j] - mx);
				for (int e = 0; e < dh; e++) {
					double a = 0;
					for (int j = 0; j < S; j++)
						if (sc[j] != -INFINITY)
							a += exp(sc[j] - mx) / sum *
							     v[(b * S + j) * D + h * dh + e];
					x2[i][h * dh + e] = x1[(b * S + i) * D + h * dh + e] + a;
				}
			}
		for (int i = 0; i < S; i++) {
			if (mask[b * S + i] == 0)
				continue;
			kept++;
			for (int d = 0; d < D; d++)
				pooled[d] += x2[i][d];
		}
		double norm = 0;
		for (int d = 0; d < D; d++)
			norm += pow(pooled[d] / kept, 2);
		for (int d = 0; d < D; d++)
			want[b * D + d] = pooled[d] / kept / fmax(sqrt(norm), 1e-12);
	}
	expect_close(emb, want, B * D, 1e-4, "emb");
	swarm_graph_free(g);
}

/* ---- liveness-based reuse --------------------------------------------------------------- */

#define CHAIN_NODE(in, w, b, out, act)                                                            \
	"{\"op\": \"linear\", \"inputs\": [\"" in "\", \"" w "\", \"" b "\"], \"output\": \"" out \
	"\"" act "}"

#define CHAIN_JSON                                                                                                                                                         \
	"{\"format\": 1,"                                                                                                                                                  \
	" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"                                                                                       \
	" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}],"                                                                                       \
	" \"graph\": {\"nodes\": [" CHAIN_NODE("x", "w0", "b0", "h0", ", \"act\": \"relu\"") "," CHAIN_NODE("h0", "w1", "b1", "h1", ", \"act\": \"relu\"") "," CHAIN_NODE( \
		"h1", "w2", "b2", "h2",                                                                                                                                    \
		", \"act\": \"relu\"") "," CHAIN_NODE("h2", "w3", "b3", "h3",                                                                                              \
						      ", \"act\": \"relu\"") "," CHAIN_NODE("h3",                                                                          \
											    "w4",                                                                          \
											    "b4",                                                                          \
											    "h4",                                                                          \
											    ", \"act\": \"relu\"") "," CHAIN_NODE("h4",                                    \
																  "w5",                                    \
																  "b5",                                    \
																  "y",                                     \
																  "") "]}, \"weights\": []}"

Test(kernels_graph, chain_of_six_linears_reuses_the_arena)
{
	const int dims[7] = { 16, 32, 32, 32, 32, 32, 4 };
	const float *w[6], *b[6];
	for (int i = 0; i < 6; i++) {
		char wn[16], bn[16];
		snprintf(wn, sizeof wn, "w%d", i);
		snprintf(bn, sizeof bn, "b%d", i);
		w[i] = add_w(wn, dims[i + 1], dims[i], 0.4);
		b[i] = add_w(bn, dims[i + 1], 0, 0.4);
	}
	parse(CHAIN_JSON);
	struct swarm_graph *g = build(10);

	/* Five intermediates of 10 x 32 floats (1280 bytes, a multiple of 64); each lives from
	 * its node to the next, so two buffers serve all five. */
	size_t arena = swarm_graph_arena_bytes(g), naive = swarm_graph_naive_bytes(g);
	cr_assert_eq(naive, 5 * 1280, "naive %zu", naive);
	cr_assert_eq(arena, 2 * 1280, "arena %zu, naive %zu", arena, naive);
	cr_assert_lt(arena, naive);

	float *x = random_f32(10 * 16), y[10 * 4];
	const void *ins[] = { x };
	void *outs[] = { y };
	cr_assert_eq(swarm_graph_run(g, 10, ins, outs), 0);

	double *cur = to_f64(x, 10 * 16), *next = NULL, want[10 * 4];
	for (int i = 0; i < 6; i++) {
		next = i < 5 ? malloc(sizeof(double) * 10 * dims[i + 1]) : want;
		ref_linear(cur, 10, dims[i], w[i], b[i], dims[i + 1], i < 5 ? A_RELU : A_NONE,
			   next);
		free(cur);
		cur = i < 5 ? next : NULL;
	}
	expect_close(y, want, 10 * 4, 1e-5, "y");
	free(x);
	cr_assert_eq(dev.prepared, 6, "each linear's weight packed once at build: %d",
		     dev.prepared);
	/* Each packing: its header, then W^T in the GEMM's panels, rounded up to 64 bytes; at
	 * least the weight's own f32 bytes. */
	size_t want_prep = 0, f32 = 0;
	for (int i = 0; i < 6; i++) {
		size_t floats = swarm_gemm_packed_floats(dims[i], dims[i + 1]);
		cr_assert_gt(floats, 0);
		want_prep +=
			(sizeof(struct swarm_cpu_packed) + floats * sizeof(float) + 63) / 64 * 64;
		f32 += (size_t)dims[i] * dims[i + 1] * sizeof(float);
	}
	size_t prep = swarm_graph_prepared_bytes(g);
	cr_assert_eq(prep, want_prep, "prepared %zu bytes, the packings %zu", prep, want_prep);
	cr_assert_geq(prep, f32, "prepared %zu bytes, less than the weights' %zu", prep, f32);
	swarm_graph_free(g);
	cr_assert_eq(dev.released, 6, "each packing freed with the graph: %d", dev.released);
}

/* A tensor read by a later node stays alive until then, so it never shares bytes with what
 * is produced in between. */
Test(kernels_graph, skip_connection_keeps_its_tensor_alive)
{
	for (int i = 0; i < 3; i++) {
		char wn[16];
		snprintf(wn, sizeof wn, "w%d", i);
		add_w(wn, 16, 16, 0.4);
	}
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
	      " \"graph\": {\"nodes\": ["
	      "  {\"op\": \"linear\", \"inputs\": [\"x\", \"w0\"], \"output\": \"a\"},"
	      "  {\"op\": \"linear\", \"inputs\": [\"a\", \"w1\"], \"output\": \"b\"},"
	      "  {\"op\": \"linear\", \"inputs\": [\"b\", \"w2\"], \"output\": \"c\"},"
	      "  {\"op\": \"linear\", \"inputs\": [\"c\", \"w0\"], \"output\": \"d\"},"
	      "  {\"op\": \"add\", \"inputs\": [\"a\", \"d\"], \"output\": \"y\"}]},"
	      " \"weights\": []}");
	struct swarm_graph *g = build(4);
	/* a lives from node 0 to node 4, across all the others; b (nodes 1-2) and d (3-4) may
	 * share, c (2-3) overlaps both: 3 buffers of 256 bytes rather than 4. */
	cr_assert_eq(swarm_graph_naive_bytes(g), 4 * 256);
	cr_assert_eq(swarm_graph_arena_bytes(g), 3 * 256, "arena %zu", swarm_graph_arena_bytes(g));

	float *x = random_f32(4 * 16), y[4 * 16];
	double *xd = to_f64(x, 4 * 16), a[64], b[64], c[64], d[64];
	const void *ins[] = { x };
	void *outs[] = { y };
	cr_assert_eq(swarm_graph_run(g, 4, ins, outs), 0);
	ref_linear(xd, 4, 16, ws.t[0].data, NULL, 16, A_NONE, a);
	ref_linear(a, 4, 16, ws.t[1].data, NULL, 16, A_NONE, b);
	ref_linear(b, 4, 16, ws.t[2].data, NULL, 16, A_NONE, c);
	ref_linear(c, 4, 16, ws.t[0].data, NULL, 16, A_NONE, d);
	for (int i = 0; i < 64; i++)
		d[i] += a[i];
	expect_close(y, d, 64, 1e-5, "y");
	free(x);
	free(xd);
	swarm_graph_free(g);
}

/* ---- no allocation once built ----------------------------------------------------------- */

Test(kernels_graph, run_allocates_nothing)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *g = build(16);
	/* One allocation at build: the arena, intermediates and bag offsets together. */
	cr_assert_eq(dev.allocs, 1, "%d allocations at build", dev.allocs);
	struct dlrm_in in = dlrm_inputs(16);
	float p[16];
	const void *ins[] = { in.dense, in.ids0, in.ids1 };
	void *outs[] = { p };
	for (uint32_t rows = 1; rows <= 16; rows++)
		cr_assert_eq(swarm_graph_run(g, rows, ins, outs), 0);
	cr_assert_eq(dev.allocs, 1, "%d allocations after 16 runs", dev.allocs);
	cr_assert_eq(dev.runs, 16 * 7, "%d node runs", dev.runs);
	dlrm_in_free(&in);
	swarm_graph_free(g);
	cr_assert_eq(dev.frees, 1, "%d frees", dev.frees);
}

Test(kernels_graph, run_refuses_rows_out_of_range)
{
	mlp_weights();
	parse(MLP_JSON);
	struct swarm_graph *g = build(4);
	float x[5 * 16] = { 0 }, y[5 * 4];
	const void *ins[] = { x };
	void *outs[] = { y };
	cr_assert_eq(swarm_graph_run(g, 0, ins, outs), -EINVAL);
	cr_assert_eq(swarm_graph_run(g, 5, ins, outs), -EINVAL);
	cr_assert_eq(dev.runs, 0);
	swarm_graph_free(g);
}

/* ---- a device whose memory is not host memory ------------------------------------------- */

/* The CPU device dressed as a GPU: host_memory 0, so the executor stages through device
 * buffers; it counts copies and synchronisations, defers every node's error to synchronize
 * (as an asynchronous device reports an index found out of range), checks that no node ever
 * sees a buffer that is not its own (or a weight), and, in its second table, has capture
 * hooks that record the node list with its tensors' shapes as they were, and replay that
 * record, as a CUDA graph does. */

#define FAKE_MAX_ALLOCS 8
#define FAKE_MAX_NODES 32

struct fake_exec {
	uint32_t n;
	struct swarm_node nodes[FAKE_MAX_NODES];
	struct swarm_tensor t[FAKE_MAX_NODES][SWARM_NODE_MAX_INPUTS + 1];
};

struct staged {
	struct swarm_device dev;
	struct swarm_device *inner;
	void *alloc_p[FAKE_MAX_ALLOCS];
	size_t alloc_n[FAKE_MAX_ALLOCS];
	int allocs, frees, uploads, downloads, syncs, streams, d2ds;
	size_t up_bytes, down_bytes, stream_bytes, d2d_bytes;
	int runs;     /* nodes run directly */
	int recorded; /* nodes recorded while capturing */
	int replayed; /* nodes run by replays */
	int capture_begins, captures, replays, exec_frees;
	int foreign; /* nodes that saw a pointer outside device memory and the weights */
	int pending; /* the error the next synchronize reports */
	bool fail_capture_end;
	struct fake_exec *rec; /* the capture in progress, or NULL */
};

static struct staged st;

static struct staged *stg(struct swarm_device *d) { return d->ctx; }

static void *stg_alloc(struct swarm_device *d, size_t n)
{
	struct staged *s = stg(d);
	void *p = s->inner->i->alloc(s->inner, n);
	for (int i = 0; p && i < FAKE_MAX_ALLOCS; i++)
		if (!s->alloc_p[i]) {
			s->alloc_p[i] = p;
			s->alloc_n[i] = n;
			s->allocs++;
			return p;
		}
	cr_assert_fail("the fake device ran out of allocation slots");
	return NULL;
}

static void stg_free(struct swarm_device *d, void *p)
{
	struct staged *s = stg(d);
	for (int i = 0; i < FAKE_MAX_ALLOCS; i++)
		if (s->alloc_p[i] == p)
			s->alloc_p[i] = NULL;
	s->frees++;
	s->inner->i->free(s->inner, p);
}

static int stg_upload(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	stg(d)->uploads++;
	stg(d)->up_bytes += n;
	return stg(d)->inner->i->upload(stg(d)->inner, dst, src, n);
}

/* upload_stream as the CUDA device's contract has it: synchronous, a rate when asked; a fill
 * is called in increasing offsets, a chunk of 1 MiB at a time, into a 4 KiB-aligned buffer. */
static int stg_upload_stream(struct swarm_device *d, void *dst, const struct swarm_upload_src *src,
			     size_t n, double *gbps)
{
	const size_t chunk = 1 << 20;
	stg(d)->streams++;
	stg(d)->stream_bytes += n;
	if (gbps)
		*gbps = 1.0;
	if (!src->fill || src->register_host)
		return stg(d)->inner->i->upload(stg(d)->inner, dst, src->host, n);
	char *buf = aligned_alloc(4096, chunk + SWARM_UPLOAD_FILL_SLACK);
	int rc = buf ? 0 : -ENOMEM;
	for (size_t off = 0, start = 0; !rc && off < n; off += chunk) {
		size_t len = n - off < chunk ? n - off : chunk;
		rc = src->fill(src->ctx, buf, chunk + SWARM_UPLOAD_FILL_SLACK, src->base + off, len,
			       &start);
		if (!rc)
			rc = stg(d)->inner->i->upload(stg(d)->inner, (char *)dst + off, buf + start,
						      len);
	}
	free(buf);
	return rc;
}

static int stg_download(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	stg(d)->downloads++;
	stg(d)->down_bytes += n;
	return stg(d)->inner->i->download(stg(d)->inner, dst, src, n);
}

/* copy_d2d: "device memory" is host memory here, so a memcpy, counted. */
static int stg_d2d(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	stg(d)->d2ds++;
	stg(d)->d2d_bytes += n;
	memcpy(dst, src, n);
	return 0;
}

static int stg_sync(struct swarm_device *d)
{
	struct staged *s = stg(d);
	int rc = s->pending;
	s->syncs++;
	s->pending = 0;
	return rc;
}

static int stg_supports(struct swarm_device *d, const struct swarm_node *n)
{
	return stg(d)->inner->i->supports_op(stg(d)->inner, n);
}

/* 1 when the bytes of t lie in one of the fake device's allocations or in a weight. */
static bool stg_owns(const struct staged *s, const struct swarm_tensor *t)
{
	const char *p = t->data;
	for (int i = 0; i < FAKE_MAX_ALLOCS; i++) {
		const char *a = s->alloc_p[i];
		if (a && p >= a && p < a + s->alloc_n[i])
			return true;
	}
	for (uint32_t i = 0; i < ws.n; i++)
		if (p == ws.t[i].data)
			return true;
	return false;
}

/* Runs one node on the CPU; its error is kept for the next synchronize. */
static void stg_exec_node(struct staged *s, const struct swarm_node *n)
{
	bool own = stg_owns(s, n->out);
	for (uint32_t j = 0; j < n->n_in; j++)
		own = own && stg_owns(s, n->in[j]);
	s->foreign += !own;
	int rc = s->inner->i->run(s->inner, n);
	if (rc && !s->pending)
		s->pending = rc;
}

static int stg_run(struct swarm_device *d, const struct swarm_node *n)
{
	struct staged *s = stg(d);
	if (!s->rec) {
		s->runs++;
		stg_exec_node(s, n);
		return 0;
	}
	/* Recorded, not run: the node and its tensors as they are now. */
	struct fake_exec *e = s->rec;
	cr_assert_lt(e->n, FAKE_MAX_NODES);
	struct swarm_node *c = &e->nodes[e->n];
	*c = *n;
	for (uint32_t j = 0; j < n->n_in; j++) {
		e->t[e->n][j] = *n->in[j];
		c->in[j] = &e->t[e->n][j];
	}
	e->t[e->n][SWARM_NODE_MAX_INPUTS] = *n->out;
	c->out = &e->t[e->n][SWARM_NODE_MAX_INPUTS];
	e->n++;
	s->recorded++;
	return 0;
}

static int stg_capture_begin(struct swarm_device *d)
{
	struct staged *s = stg(d);
	cr_assert_null(s->rec, "capture_begin while capturing");
	s->capture_begins++;
	s->rec = calloc(1, sizeof *s->rec);
	return s->rec ? 0 : -ENOMEM;
}

static int stg_capture_end(struct swarm_device *d, void **exec)
{
	struct staged *s = stg(d);
	cr_assert_not_null(s->rec, "capture_end without capture_begin");
	struct fake_exec *e = s->rec;
	s->rec = NULL;
	*exec = NULL;
	if (s->fail_capture_end) {
		free(e);
		return -EIO;
	}
	s->captures++;
	*exec = e;
	return 0;
}

static int stg_replay(struct swarm_device *d, void *exec)
{
	struct staged *s = stg(d);
	const struct fake_exec *e = exec;
	s->replays++;
	for (uint32_t k = 0; k < e->n; k++) {
		s->replayed++;
		stg_exec_node(s, &e->nodes[k]);
	}
	return 0;
}

static void stg_exec_free(struct swarm_device *d, void *exec)
{
	stg(d)->exec_frees++;
	free(exec);
}

static const struct swarm_device_i staged_i = {
	.name = "staged-cpu",
	.alloc = stg_alloc,
	.free = stg_free,
	.upload = stg_upload,
	.download = stg_download,
	.synchronize = stg_sync,
	.supports_op = stg_supports,
	.run = stg_run,
	.host_memory = 0,
};

static const struct swarm_device_i staged_capture_i = {
	.name = "staged-capture-cpu",
	.alloc = stg_alloc,
	.free = stg_free,
	.upload = stg_upload,
	.download = stg_download,
	.synchronize = stg_sync,
	.supports_op = stg_supports,
	.run = stg_run,
	.host_memory = 0,
	.capture_begin = stg_capture_begin,
	.capture_end = stg_capture_end,
	.replay = stg_replay,
	.exec_free = stg_exec_free,
};

static const struct swarm_device_i staged_stream_i = {
	.name = "staged-stream-cpu",
	.alloc = stg_alloc,
	.free = stg_free,
	.upload = stg_upload,
	.download = stg_download,
	.synchronize = stg_sync,
	.supports_op = stg_supports,
	.run = stg_run,
	.host_memory = 0,
	.upload_stream = stg_upload_stream,
};

static const struct swarm_device_i staged_d2d_i = {
	.name = "staged-d2d-cpu",
	.alloc = stg_alloc,
	.free = stg_free,
	.upload = stg_upload,
	.download = stg_download,
	.synchronize = stg_sync,
	.supports_op = stg_supports,
	.run = stg_run,
	.host_memory = 0,
	.copy_d2d = stg_d2d,
};

/* The fake device over the suite's CPU device, with or without capture hooks. */
static struct swarm_device *staged_dev(bool capture)
{
	memset(&st, 0, sizeof st);
	st.inner = dev.inner;
	st.dev.i = capture ? &staged_capture_i : &staged_i;
	st.dev.ctx = &st;
	return &st.dev;
}

/* The fake device with an upload_stream, as the CUDA device has. */
static struct swarm_device *staged_stream_dev(void)
{
	staged_dev(false);
	st.dev.i = &staged_stream_i;
	return &st.dev;
}

/* Zeroes the per-run counters (the build uploads the bag offsets). */
static void staged_reset_counts(void)
{
	st.uploads = st.downloads = st.syncs = 0;
	st.up_bytes = st.down_bytes = 0;
	st.runs = st.recorded = st.replayed = 0;
}

static struct swarm_graph *build_on(struct swarm_device *d, uint32_t max_batch)
{
	struct swarm_graph *g = NULL;
	int rc = swarm_graph_build(man_desc(&man), lookup, &ws, d, max_batch, &g, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_graph_build on %s = %d: %s", d->i->name, rc, err);
	cr_assert_not_null(g);
	return g;
}

/* DLRM rows first..first+rows-1 on the staged graph and on the CPU graph: 0 and outputs equal
 * to the bit (the same CPU kernels on the same bytes), nothing written past rows. */
static void expect_same_as_cpu(struct swarm_graph *staged, struct swarm_graph *cpu,
			       const struct dlrm_in *in, uint32_t first, uint32_t rows)
{
	float got[128], want[128];
	cr_assert_leq(rows, 127);
	const void *sub[] = { in->dense + first * 8, in->ids0 + first * 3, in->ids1 + first * 2 };
	void *o_got[] = { got }, *o_want[] = { want };
	for (uint32_t r = 0; r <= rows; r++)
		got[r] = NAN;
	int rc = swarm_graph_run(cpu, rows, sub, o_want);
	cr_assert_eq(rc, 0, "rows %u: CPU swarm_graph_run = %d", rows, rc);
	rc = swarm_graph_run(staged, rows, sub, o_got);
	cr_assert_eq(rc, 0, "rows %u at %u: staged swarm_graph_run = %d", rows, first, rc);
	for (uint32_t r = 0; r < rows; r++)
		cr_assert(memcmp(&got[r], &want[r], sizeof got[r]) == 0,
			  "rows %u at %u, row %u: staged %.9g, CPU %.9g", rows, first, r, got[r],
			  want[r]);
	cr_assert(isnan(got[rows]), "rows %u: row %u written past the batch (%.9g)", rows, rows,
		  got[rows]);
}

/* Buffers flagged as device memory are copied device to device instead of uploaded or
 * downloaded, with the same outputs; a device without copy_d2d, or the host-memory CPU,
 * refuses the flags with -ENOTSUP. */
Test(kernels_graph, device_buffers_copy_device_to_device)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(16);
	struct dlrm_in in = dlrm_inputs(16);
	const void *ins[] = { in.dense, in.ids0, in.ids1 };
	float want[16], got[16];
	void *o_want[] = { want }, *o_got[] = { got };
	int rc = swarm_graph_run(cpu, 5, ins, o_want);
	cr_assert_eq(rc, 0, "CPU swarm_graph_run = %d", rc);
	rc = swarm_graph_run_dev(cpu, 5, ins, o_got, 1, 0);
	cr_assert_eq(rc, -ENOTSUP, "device input on the CPU graph: %d, want -ENOTSUP", rc);

	struct swarm_graph *g = build_on(staged_dev(false), 16);
	rc = swarm_graph_run_dev(g, 5, ins, o_got, 0, 1);
	cr_assert_eq(rc, -ENOTSUP, "device output without copy_d2d: %d, want -ENOTSUP", rc);
	swarm_graph_free(g);

	staged_dev(false);
	st.dev.i = &staged_d2d_i;
	g = build_on(&st.dev, 16);
	staged_reset_counts();
	st.d2ds = 0;
	st.d2d_bytes = 0;
	/* dense (input 0) and p (output 0) in "device memory": 5 rows of 8 f32 and of 1 f32 */
	rc = swarm_graph_run_dev(g, 5, ins, o_got, 1, 1);
	cr_assert_eq(rc, 0, "staged swarm_graph_run_dev = %d", rc);
	cr_assert_eq(st.d2ds, 2, "device-to-device copies: %d, want 2", st.d2ds);
	cr_assert_eq(st.d2d_bytes, 5 * 8 * 4 + 5 * 4, "d2d bytes %zu", st.d2d_bytes);
	cr_assert_eq(st.uploads, 2, "uploads: %d, want 2 (ids0, ids1)", st.uploads);
	cr_assert_eq(st.downloads, 0, "downloads: %d, want 0", st.downloads);
	cr_assert_eq(st.syncs, 1, "synchronizations: %d", st.syncs);
	for (int r = 0; r < 5; r++)
		cr_assert(memcmp(&got[r], &want[r], sizeof got[r]) == 0,
			  "row %d: d2d %.9g, CPU %.9g", r, got[r], want[r]);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
	dlrm_in_free(&in);
}

Test(kernels_graph, staged_outputs_equal_direct_cpu_outputs)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(16);
	struct swarm_graph *g = build_on(staged_dev(false), 16);
	/* One allocation: the arena, with the staging buffers of dense [16, 8] f32 (512 bytes),
	 * ids0 [16, 3] i64 (384), ids1 [16, 2] i32 (128) and p [16, 1] f32 (64) after what the
	 * CPU graph plans. */
	cr_assert_eq(st.allocs, 1, "%d allocations at build", st.allocs);
	size_t extra = 512 + 384 + 128 + 64;
	cr_assert_eq(swarm_graph_arena_bytes(g), swarm_graph_arena_bytes(cpu) + extra,
		     "staged arena %zu, CPU arena %zu + staging %zu", swarm_graph_arena_bytes(g),
		     swarm_graph_arena_bytes(cpu), extra);
	cr_assert_eq(swarm_graph_naive_bytes(g), swarm_graph_naive_bytes(cpu) + extra);
	/* The CPU packed the DLRM's linear weights; a device without prepare prepared nothing. */
	cr_assert_gt(swarm_graph_prepared_bytes(cpu), 0, "the CPU graph prepared nothing");
	cr_assert_eq(swarm_graph_prepared_bytes(g), 0, "the staged graph prepared %zu bytes",
		     swarm_graph_prepared_bytes(g));

	struct dlrm_in in = dlrm_inputs(16);
	const uint32_t sizes[] = { 16, 5, 1, 11 };
	for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
		for (uint32_t first = 0; first + sizes[s] <= 16; first += sizes[s])
			expect_same_as_cpu(g, cpu, &in, first, sizes[s]);
	cr_assert_eq(st.foreign, 0, "%d nodes saw a buffer that is not device memory", st.foreign);
	cr_assert_eq(st.allocs, 1, "%d allocations after the runs", st.allocs);
	cr_assert_eq(st.captures + st.capture_begins, 0, "a device without hooks captured");
	dlrm_in_free(&in);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
	cr_assert_eq(st.frees, st.allocs, "%d allocs, %d frees", st.allocs, st.frees);
}

Test(kernels_graph, staged_run_uploads_each_input_and_downloads_each_output_once)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *g = build_on(staged_dev(false), 16);
	struct dlrm_in in = dlrm_inputs(16);
	const void *ins[] = { in.dense, in.ids0, in.ids1 };
	float p[16];
	void *outs[] = { p };
	for (uint32_t rows = 1; rows <= 16; rows++) {
		staged_reset_counts();
		int rc = swarm_graph_run(g, rows, ins, outs);
		cr_assert_eq(rc, 0, "rows %u: swarm_graph_run = %d", rows, rc);
		cr_assert_eq(st.uploads, 3, "rows %u: %d uploads, want one per input", rows,
			     st.uploads);
		cr_assert_eq(st.up_bytes, rows * (8 * 4 + 3 * 8 + 2 * 4),
			     "rows %u: %zu bytes uploaded", rows, st.up_bytes);
		cr_assert_eq(st.downloads, 1, "rows %u: %d downloads", rows, st.downloads);
		cr_assert_eq(st.down_bytes, rows * 4, "rows %u: %zu bytes downloaded", rows,
			     st.down_bytes);
		cr_assert_eq(st.syncs, 1, "rows %u: %d synchronizes", rows, st.syncs);
		cr_assert_eq(st.runs, 7, "rows %u: %d node runs", rows, st.runs);
	}
	cr_assert_eq(st.allocs, 1, "%d allocations", st.allocs);
	dlrm_in_free(&in);
	swarm_graph_free(g);
}

Test(kernels_graph, capture_happens_once_per_rows_then_replays)
{
	dlrm_weights();
	parse(DLRM_JSON);
	/* max_batch 80: rows up to SWARM_GRAPH_CAPTURE_ROWS (64) are captured, 80 runs direct. */
	struct swarm_graph *cpu = build(80);
	struct swarm_graph *g = build_on(staged_dev(true), 80);
	struct dlrm_in in = dlrm_inputs(96);
	staged_reset_counts();

	/* Each run reads other rows of the inputs: the copies, outside the capture, follow the
	 * caller's pointers while the replayed nodes keep theirs. */
	const uint32_t rows[] = { 4, 4, 7, 4, 7, 80, 80, 4 };
	const uint32_t first[] = { 0, 9, 2, 30, 50, 16, 0, 92 };
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
		expect_same_as_cpu(g, cpu, &in, first[i], rows[i]);

	/* The first run of 4 and of 7 rows goes direct (a warm-up: kernels load outside any
	 * capture); the second captures; every later one replays. */
	cr_assert_eq(st.capture_begins, 2, "%d captures begun, want 2 (rows 4 and 7)",
		     st.capture_begins);
	cr_assert_eq(st.captures, 2, "%d captures", st.captures);
	cr_assert_eq(st.recorded, 2 * 7, "%d nodes recorded", st.recorded);
	cr_assert_eq(st.replays, 4, "%d replays, want one per run of 4 or 7 rows but the first",
		     st.replays);
	cr_assert_eq(st.replayed, 4 * 7, "%d nodes replayed", st.replayed);
	cr_assert_eq(st.runs, 4 * 7,
		     "%d nodes run directly, want the first runs of 4 and 7 and both of 80",
		     st.runs);
	cr_assert_eq(st.uploads, 8 * 3, "%d uploads", st.uploads);
	cr_assert_eq(st.downloads, 8, "%d downloads", st.downloads);
	cr_assert_eq(st.syncs, 8, "%d synchronizes", st.syncs);
	cr_assert_eq(st.foreign, 0, "%d nodes saw a buffer that is not device memory", st.foreign);
	cr_assert_eq(swarm_graph_captured(g), 2, "%u execs held", swarm_graph_captured(g));
	cr_assert_eq(st.allocs, 1, "%d device allocations", st.allocs);
	dlrm_in_free(&in);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
	cr_assert_eq(st.exec_frees, 2, "%d execs freed", st.exec_frees);
}

Test(kernels_graph, failing_capture_end_falls_back_to_direct_runs)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(16);
	struct swarm_graph *g = build_on(staged_dev(true), 16);
	st.fail_capture_end = true;
	struct dlrm_in in = dlrm_inputs(16);
	staged_reset_counts();

	const uint32_t rows[] = { 4, 4, 5, 4 };
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
		expect_same_as_cpu(g, cpu, &in, (uint32_t)i, rows[i]);

	/* A warm-up run, then one try, whose recorded nodes never ran; then direct runs only,
	 * this one included. */
	cr_assert_eq(st.capture_begins, 1, "%d captures begun, want 1 (no retry)",
		     st.capture_begins);
	cr_assert_eq(st.recorded, 7, "%d nodes recorded", st.recorded);
	cr_assert_eq(st.captures + st.replays, 0, "%d captures, %d replays", st.captures,
		     st.replays);
	cr_assert_eq(st.runs, 4 * 7, "%d nodes run directly", st.runs);
	cr_assert_eq(swarm_graph_captured(g), 0);
	dlrm_in_free(&in);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
	cr_assert_eq(st.exec_frees, 0, "%d execs freed", st.exec_frees);
}

/* An id out of range is found on the device: the run returns synchronize's -EINVAL, whether
 * the nodes ran directly or from a replay, and the next good run succeeds. */
Test(kernels_graph, staged_run_returns_the_error_found_at_synchronize)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(16);
	for (int capture = 0; capture < 2; capture++) {
		struct swarm_graph *g = build_on(staged_dev(capture), 16);
		struct dlrm_in in = dlrm_inputs(16);
		expect_same_as_cpu(g, cpu, &in, 0, 4);
		int64_t good = in.ids0[1];
		in.ids0[1] = V0 + 3;
		const void *ins[] = { in.dense, in.ids0, in.ids1 };
		float p[16];
		void *outs[] = { p };
		int syncs = st.syncs;
		int rc = swarm_graph_run(g, 4, ins, outs);
		cr_assert_eq(rc, -EINVAL, "capture %d: id %d of a table of %d rows: rc %d", capture,
			     V0 + 3, V0, rc);
		cr_assert_eq(st.syncs, syncs + 1, "capture %d: %d synchronizes", capture,
			     st.syncs - syncs);
		in.ids0[1] = good;
		expect_same_as_cpu(g, cpu, &in, 0, 4);
		/* With capture: the first run warms up directly, the second and third replay. */
		cr_assert_eq(st.replays, capture ? 2 : 0, "capture %d: %d replays", capture,
			     st.replays);
		dlrm_in_free(&in);
		swarm_graph_free(g);
	}
	swarm_graph_free(cpu);
}

/* The weights a loader uploaded go with the graph. */
Test(kernels_graph, adopted_memory_is_freed_with_the_graph)
{
	mlp_weights();
	parse(MLP_JSON);
	struct swarm_graph *g = build_on(staged_dev(false), 4);
	void *w = st.dev.i->alloc(&st.dev, 256);
	cr_assert_not_null(w);
	cr_assert_eq(swarm_graph_adopt(g, w), 0);
	cr_assert_eq(swarm_graph_adopt(g, w), -EBUSY, "a second adoption was taken");
	cr_assert_eq(swarm_graph_adopt(g, NULL), -EINVAL);
	swarm_graph_free(g);
	cr_assert_eq(st.frees, 2, "%d frees, want the arena and the adopted memory", st.frees);
}

/* Writes the MLP's weights (mlp_weights) as dir/w.safetensors, dir made from its template. */
static void write_mlp_blob(char *dir, char *path, size_t path_len)
{
	struct mlp w = mlp_weights();
	const int64_t s_w1[] = { 32, 16 }, s_b1[] = { 32 }, s_w2[] = { 4, 32 }, s_b2[] = { 4 };
	const struct swarm_st_write_tensor t[] = {
		{ "w1", SWARM_ST_F32, 2, s_w1, w.w1 },
		{ "b1", SWARM_ST_F32, 1, s_b1, w.b1 },
		{ "w2", SWARM_ST_F32, 2, s_w2, w.w2 },
		{ "b2", SWARM_ST_F32, 1, s_b2, w.b2 },
	};
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(path, path_len, "%s/w.safetensors", dir);
	int rc = swarm_st_write(path, t, 4);
	cr_assert_eq(rc, 0, "swarm_st_write = %d", rc);
}

/* A registry blob's weights on such a device: uploaded once into one allocation the graph
 * frees, the nodes reading only device memory, the outputs those of the mapping on the CPU. */
Test(kernels_graph, weights_from_a_blob_are_uploaded_for_a_staged_device)
{
	char dir[] = "/tmp/swarm-test-graph-XXXXXX", path[64];
	write_mlp_blob(dir, path, sizeof path);
	struct swarm_weights blob;
	int rc = swarm_weights_load(path, 0, NULL, 0, &blob, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_weights_load = %d: %s", rc, err);
	unlink(path);
	rmdir(dir);
	parse(MLP_JSON);

	struct swarm_graph *cpu = NULL, *g = NULL;
	rc = swarm_graph_from_weights(&man, blob.map, &blob.st, &dev.dev, 8, &cpu, err, sizeof err);
	cr_assert_eq(rc, 0, "on the CPU: %d: %s", rc, err);
	struct swarm_weights_upload up;
	rc = swarm_graph_from_weights_report(&man, blob.map, &blob.st, staged_dev(false), 8, &g,
					     &up, err, sizeof err);
	cr_assert_eq(rc, 0, "on the staged device: %d: %s", rc, err);
	cr_assert_eq(st.allocs, 2, "%d allocations, want the weights and the arena", st.allocs);
	/* One copy a stretch: w1 and b1 (2048 + 128 bytes), then w2 and b2, since b1's 128
	 * bytes put w2 off the 256-byte grid in the file. */
	cr_assert_eq(st.uploads, 2, "%d uploads at build, want one per stretch", st.uploads);
	cr_assert_eq(up.bytes, 2704, "report: %llu bytes, want 2704", (unsigned long long)up.bytes);
	cr_assert_eq(up.copies, 2, "report: %u copies, want 2", up.copies);
	cr_assert_eq(up.streamed, 0, "report: streamed without an upload_stream");

	float *x = random_f32(8 * 16), y[8 * 4], want[8 * 4];
	const void *ins[] = { x };
	void *o_y[] = { y }, *o_want[] = { want };
	cr_assert_eq(swarm_graph_run(cpu, 8, ins, o_want), 0);
	rc = swarm_graph_run(g, 8, ins, o_y);
	cr_assert_eq(rc, 0, "staged swarm_graph_run = %d", rc);
	cr_assert_eq(st.foreign, 0, "%d nodes read a weight from the host mapping", st.foreign);
	for (int i = 0; i < 8 * 4; i++)
		cr_assert(memcmp(&y[i], &want[i], sizeof y[i]) == 0, "y[%d] = %.9g, CPU %.9g", i,
			  y[i], want[i]);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
	cr_assert_eq(st.frees, 2, "%d frees, want the weights and the arena", st.frees);
	swarm_weights_unload(&blob);
	free(x);
}

/* A blob whose tensors all start on the 256-byte grid of its data region goes to a device
 * with an upload_stream in one streamed copy of the whole region, and computes as on the CPU;
 * the mapping is all it reads. */
Test(kernels_graph, weights_on_the_grid_are_streamed_in_one_copy)
{
	struct mlp w = mlp_weights();
	const int64_t s_w1[] = { 32, 16 }, s_w2[] = { 4, 32 }, s_b2[] = { 4 };
	/* The MLP without b1: w1 (2048 bytes), w2 (512) and b2 (16, last) all start on the
	 * grid. */
	const struct swarm_st_write_tensor t[] = {
		{ "w1", SWARM_ST_F32, 2, s_w1, w.w1 },
		{ "w2", SWARM_ST_F32, 2, s_w2, w.w2 },
		{ "b2", SWARM_ST_F32, 1, s_b2, w.b2 },
	};
	char dir[] = "/tmp/swarm-test-graph-XXXXXX", path[64];
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/w.safetensors", dir);
	int rc = swarm_st_write(path, t, 3);
	cr_assert_eq(rc, 0, "swarm_st_write = %d", rc);
	struct swarm_weights blob;
	rc = swarm_weights_load(path, 0, NULL, 0, &blob, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_weights_load = %d: %s", rc, err);
	unlink(path);
	rmdir(dir);
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}],"
	      " \"graph\": {\"nodes\": ["
	      "  {\"op\": \"linear\", \"inputs\": [\"x\", \"w1\"], \"output\": \"h1\","
	      "   \"act\": \"relu\"},"
	      "  {\"op\": \"linear\", \"inputs\": [\"h1\", \"w2\", \"b2\"], \"output\": \"y\"}]},"
	      " \"weights\": [{\"name\": \"w1\", \"dtype\": \"f32\", \"shape\": [32, 16]},"
	      "   {\"name\": \"w2\", \"dtype\": \"f32\", \"shape\": [4, 32]},"
	      "   {\"name\": \"b2\", \"dtype\": \"f32\", \"shape\": [4]}]}");

	struct swarm_graph *cpu = NULL, *g = NULL;
	rc = swarm_graph_from_weights(&man, blob.map, &blob.st, &dev.dev, 8, &cpu, err, sizeof err);
	cr_assert_eq(rc, 0, "on the CPU: %d: %s", rc, err);
	struct swarm_weights_upload up;
	rc = swarm_graph_from_weights_report(&man, blob.map, &blob.st, staged_stream_dev(), 8, &g,
					     &up, err, sizeof err);
	cr_assert_eq(rc, 0, "on the staged device: %d: %s", rc, err);
	const uint64_t region = blob.st.file_bytes - blob.st.data_offset;
	cr_assert_eq(st.streams, 1, "%d streamed copies, want 1", st.streams);
	cr_assert_eq(st.stream_bytes, region, "streamed %zu bytes, want the region's %llu",
		     st.stream_bytes, (unsigned long long)region);
	cr_assert_eq(st.uploads, 0, "%d plain uploads beside upload_stream", st.uploads);
	cr_assert(up.bytes == region && up.copies == 1 && up.streamed == 1 && up.gbps > 0,
		  "report: %llu bytes, %u copies, streamed %u, %.3f GB/s; want %llu, 1, 1, > 0",
		  (unsigned long long)up.bytes, up.copies, up.streamed, up.gbps,
		  (unsigned long long)region);

	float *x = random_f32(8 * 16), y[8 * 4], want[8 * 4];
	const void *ins[] = { x };
	void *o_y[] = { y }, *o_want[] = { want };
	cr_assert_eq(swarm_graph_run(cpu, 8, ins, o_want), 0);
	rc = swarm_graph_run(g, 8, ins, o_y);
	cr_assert_eq(rc, 0, "staged swarm_graph_run = %d", rc);
	cr_assert_eq(st.foreign, 0, "%d nodes read a weight from the host mapping", st.foreign);
	for (int i = 0; i < 8 * 4; i++)
		cr_assert(memcmp(&y[i], &want[i], sizeof y[i]) == 0, "y[%d] = %.9g, CPU %.9g", i,
			  y[i], want[i]);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
	swarm_weights_unload(&blob);
	free(x);
}

/* The loader's path for a GPU (swarm_weights_open without touching, then
 * swarm_graph_from_weights_load): in every reader mode, verifying as it reads, the weights on
 * the device compute as the mapping on the CPU; a hash that differs fails with -EBADMSG and
 * leaves nothing allocated. */
Test(kernels_graph, weights_loaded_through_the_reader_in_every_mode)
{
	char dir[] = "/tmp/swarm-test-graph-XXXXXX", path[64], sha[65], bad[65];
	write_mlp_blob(dir, path, sizeof path);
	struct swarm_weights blob;
	int rc = swarm_weights_load(path, 0, NULL, 0, &blob, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_weights_load = %d: %s", rc, err);
	swarm_sha256_hex(blob.map, blob.bytes, sha);
	memcpy(bad, sha, sizeof bad);
	bad[0] = bad[0] == 'a' ? 'b' : 'a';
	parse(MLP_JSON);
	struct swarm_graph *cpu = NULL;
	rc = swarm_graph_from_weights(&man, blob.map, &blob.st, &dev.dev, 8, &cpu, err, sizeof err);
	cr_assert_eq(rc, 0, "on the CPU: %d: %s", rc, err);
	float *x = random_f32(8 * 16), y[8 * 4], want[8 * 4];
	const void *ins[] = { x };
	void *o_y[] = { y }, *o_want[] = { want };
	cr_assert_eq(swarm_graph_run(cpu, 8, ins, o_want), 0);

	for (int mode = 0; mode < SWARM_LOAD_MODE_COUNT; mode++) {
		struct swarm_load_opts lo = { .mode = mode, .threads = 3 };
		struct swarm_weights_upload up;
		struct swarm_weights wv;
		struct swarm_graph *g = NULL;
		rc = swarm_weights_open(path, 0, sha, 1, 0, &wv, err, sizeof err);
		cr_assert_eq(rc, 0, "%s: open: %d: %s", swarm_load_mode_name(mode), rc, err);
		cr_assert_str_eq(wv.sha, sha, "the verification was not left to the upload");
		rc = swarm_graph_from_weights_load(&man, &wv, staged_stream_dev(), 8, &lo, &g, &up,
						   err, sizeof err);
		cr_assert_eq(rc, 0, "%s: %d: %s", swarm_load_mode_name(mode), rc, err);
		cr_assert(up.mode != SWARM_LOAD_AUTO && up.streamed && up.copies == 2,
			  "%s: ran as %s, streamed %u, %u copies", swarm_load_mode_name(mode),
			  swarm_load_mode_name(up.mode), up.streamed, up.copies);
		cr_assert_eq(swarm_graph_run(g, 8, ins, o_y), 0);
		cr_assert(memcmp(y, want, sizeof y) == 0, "%s: outputs differ from the CPU's",
			  swarm_load_mode_name(mode));
		swarm_graph_free(g);
		swarm_weights_unload(&wv);

		rc = swarm_weights_open(path, 0, bad, 1, 0, &wv, err, sizeof err);
		cr_assert_eq(rc, 0, "%s: open with a wrong hash: %d: %s",
			     swarm_load_mode_name(mode), rc, err);
		rc = swarm_graph_from_weights_load(&man, &wv, staged_stream_dev(), 8, &lo, &g, &up,
						   err, sizeof err);
		cr_assert_eq(rc, -EBADMSG, "%s, wrong hash: %d (%s)", swarm_load_mode_name(mode),
			     rc, err);
		cr_assert(strstr(err, "changed on disk") && !g && st.allocs == st.frees,
			  "%s: \"%s\", graph %p, %d allocations and %d frees",
			  swarm_load_mode_name(mode), err, (void *)g, st.allocs, st.frees);
		swarm_weights_unload(&wv);
	}
	unlink(path);
	rmdir(dir);
	swarm_graph_free(cpu);
	swarm_weights_unload(&blob);
	free(x);
}

/* ---- refusals --------------------------------------------------------------------------- */

/* A one-input, one-output manifest around the given node list. */
#define NODES(list)                                                                  \
	"{\"format\": 1,"                                                            \
	" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}]," \
	" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}]," \
	" \"graph\": {\"nodes\": [" list "]}, \"weights\": []}"

#define LIN(in, w, out) \
	"{\"op\": \"linear\", \"inputs\": [\"" in "\", \"" w "\"], \"output\": \"" out "\"}"

/* ---- reshape as a view ------------------------------------------------------------------- */

#define IO_GRAPH(out_shape, list)                                                          \
	"{\"format\": 1,"                                                                  \
	" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"       \
	" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": " out_shape "}]," \
	" \"graph\": {\"nodes\": [" list "]}, \"weights\": []}"
#define RESHAPE(in, out, shape)                                              \
	"{\"op\": \"reshape\", \"inputs\": [\"" in "\"], \"output\": \"" out \
	"\", \"shape\": " shape "}"
#define LINEAR(in, w, b, out)                                                                     \
	"{\"op\": \"linear\", \"inputs\": [\"" in "\", \"" w "\", \"" b "\"], \"output\": \"" out \
	"\"}"

/* Reshapes between nodes are views: they run nothing and take no arena, and the result is the
 * same to the bit as the graph without them; a reshape that makes a model output copies into
 * the caller's buffer. */
Test(kernels_graph, reshape_is_a_view_that_runs_nothing)
{
	mlp_weights();
	const uint32_t rows = 5;
	float x[5 * 16], y1[5 * 4], y2[5 * 4], y3[5 * 4];
	for (int i = 0; i < 5 * 16; i++)
		x[i] = (float)((i * 7) % 13) * 0.25f - 1.0f;
	const void *in[] = { x };

	parse(IO_GRAPH("[-1, 4]", LINEAR("x", "w1", "b1", "h1") "," LIN("h1", "w2", "y")));
	struct swarm_graph *plain = build(8);
	void *o1[] = { y1 };
	cr_assert_eq(swarm_graph_run(plain, rows, in, o1), 0);

	parse(IO_GRAPH(
		"[-1, 4]",
		RESHAPE("x", "r1", "[-1, 4, 4]") "," RESHAPE("r1", "r2", "[-1, 16]") "," LINEAR(
			"r2", "w1", "b1",
			"h1") "," RESHAPE("h1", "h2",
					  "[-1, 2, 16]") "," RESHAPE("h2", "h3",
								     "[-1, 32]") "," LIN("h3", "w2",
											 "y")));
	struct swarm_graph *g = build(8);
	cr_assert_eq(swarm_graph_nodes(g), 2, "%u nodes run, not 2", swarm_graph_nodes(g));
	cr_assert_eq(swarm_graph_arena_bytes(g), swarm_graph_arena_bytes(plain),
		     "views took arena bytes: %zu, %zu", swarm_graph_arena_bytes(g),
		     swarm_graph_arena_bytes(plain));
	int before = dev.runs;
	void *o2[] = { y2 };
	cr_assert_eq(swarm_graph_run(g, rows, in, o2), 0);
	cr_assert_eq(dev.runs - before, 2, "%d node runs", dev.runs - before);
	cr_assert_eq(memcmp(y1, y2, sizeof y1), 0, "the reshapes changed the result");

	/* A reshape as the last node: a copy into the output. */
	parse(IO_GRAPH("[-1, 2, 2]",
		       LINEAR("x", "w1", "b1", "h1") "," LIN("h1", "w2", "h2") "," RESHAPE(
			       "h2", "y", "[-1, 2, 2]")));
	struct swarm_graph *last = build(8);
	cr_assert_eq(swarm_graph_nodes(last), 3);
	void *o3[] = { y3 };
	cr_assert_eq(swarm_graph_run(last, rows, in, o3), 0);
	cr_assert_eq(memcmp(y1, y3, sizeof y1), 0, "the copying reshape changed the result");
	swarm_graph_free(plain);
	swarm_graph_free(g);
	swarm_graph_free(last);
}

/* A view keeps its base alive: the arena may not reuse the input of a reshape while a later
 * node still reads the reshaped tensor. */
Test(kernels_graph, a_view_keeps_its_base_alive)
{
	mlp_weights();
	float x[3 * 16], y1[3 * 4], y2[3 * 4];
	for (int i = 0; i < 3 * 16; i++)
		x[i] = (float)((i * 5) % 11) * 0.3f - 1.2f;
	const void *in[] = { x };
	/* h1 is read, through its view v, after two more nodes have come and gone. */
	parse(IO_GRAPH(
		"[-1, 4]",
		LINEAR("x", "w1", "b1", "h1") "," RESHAPE(
			"h1", "v",
			"[-1, 32]") ","
				    "{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"a\"},"
				    "{\"op\": \"relu\", \"inputs\": [\"a\"], \"output\": \"b\"},"
				    "{\"op\": \"add\", \"inputs\": [\"v\", \"h1\"], \"output\": \"s\"}," LIN(
					    "s", "w2", "y")));
	struct swarm_graph *g = build(8);
	void *o1[] = { y1 };
	cr_assert_eq(swarm_graph_run(g, 3, in, o1), 0);
	parse(IO_GRAPH("[-1, 4]",
		       LINEAR("x", "w1", "b1",
			      "h1") ","
				    "{\"op\": \"add\", \"inputs\": [\"h1\", \"h1\"], \"output\": "
				    "\"s\"}," LIN("s", "w2", "y")));
	struct swarm_graph *want = build(8);
	void *o2[] = { y2 };
	cr_assert_eq(swarm_graph_run(want, 3, in, o2), 0);
	cr_assert_eq(memcmp(y1, y2, sizeof y1), 0, "the view read bytes that were reused");
	swarm_graph_free(g);
	swarm_graph_free(want);
}

Test(kernels_graph, reshape_must_keep_the_batch_dimension)
{
	mlp_weights();
	expect_refusal(IO_GRAPH("[-1, 4]", RESHAPE("x", "r", "[4, 16]") "," LIN("r", "w2", "y")),
		       "graph.nodes[0] (reshape -> \"r\")",
		       "reshape must keep the batch dimension as shape[0] = -1");
}

Test(kernels_graph, refuses_use_before_produce)
{
	mlp_weights();
	expect_refusal(NODES(LIN("h1", "w2", "y") "," LIN("x", "w1", "h1")),
		       "graph.nodes[0] (linear -> \"y\")",
		       "inputs[0] \"h1\": used before graph.nodes[1] produces it");
}

Test(kernels_graph, refuses_unknown_input_name)
{
	mlp_weights();
	expect_refusal(NODES(LIN("x", "w1", "h1") "," LIN("h1", "w9", "y")),
		       "graph.nodes[1] (linear -> \"y\")", "inputs[1] \"w9\": no input, weight");
}

Test(kernels_graph, refuses_shape_mismatch_between_nodes)
{
	mlp_weights();
	add_w("w3", 4, 16, 1.0); /* takes K = 16, but h1 has 32 features */
	expect_refusal(NODES(LIN("x", "w1", "h1") "," LIN("h1", "w3", "y")),
		       "graph.nodes[1] (linear -> \"y\")",
		       "inputs[0] \"h1\" is f32 [B, 32] and inputs[1] \"w3\" is f32 [4, 16]");
}

Test(kernels_graph, refuses_output_never_produced)
{
	mlp_weights();
	expect_refusal(NODES(LIN("x", "w1", "h1") "," LIN("h1", "w2", "z")),
		       "outputs[0] \"y\": no node produces it", NULL);
}

Test(kernels_graph, refuses_duplicate_output)
{
	mlp_weights();
	expect_refusal(
		NODES(LIN("x", "w1", "h1") "," LIN("x", "w1", "h1") "," LIN("h1", "w2", "y")),
		"graph.nodes[1] (linear -> \"h1\")", "produced twice, first by graph.nodes[0]");
}

Test(kernels_graph, refuses_output_named_like_an_input_or_weight)
{
	mlp_weights();
	expect_refusal(NODES(LIN("x", "w1", "x") "," LIN("x", "w2", "y")),
		       "graph.nodes[0] (linear -> \"x\")", "is the name of inputs[0]");
	expect_refusal(NODES(LIN("x", "w1", "w2") "," LIN("w2", "w2", "y")),
		       "graph.nodes[0] (linear -> \"w2\")", "is the name of a weight");
}

Test(kernels_graph, refuses_output_of_the_wrong_shape)
{
	mlp_weights();
	expect_refusal(NODES(LIN("x", "w1", "y")), "graph.nodes[0] (linear -> \"y\")",
		       "produces f32 [B, 32], but outputs[0] is f32 [B, 4]");
}

Test(kernels_graph, refuses_wrong_dtype_for_ids)
{
	add_w("t0", 10, 4, 1.0);
	expect_refusal("{\"format\": 1,"
		       " \"inputs\": [{\"name\": \"ids\", \"dtype\": \"f32\", \"shape\": [-1, 3]}],"
		       " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}],"
		       " \"graph\": {\"nodes\": [{\"op\": \"embedding_bag\", \"inputs\": [\"t0\", "
		       "\"ids\"], \"output\": \"y\"}]}, \"weights\": []}",
		       "graph.nodes[0] (embedding_bag -> \"y\")",
		       "inputs[1] \"ids\" is f32 [B, 3]");
}

/* A weight of max_batch rows agrees with the batch at max_batch only: still refused. */
Test(kernels_graph, refuses_a_weight_in_place_of_the_batch)
{
	add_w("w1", 32, 16, 1.0);
	add_w("bias8", 8, 32, 1.0); /* 8 == max_batch in expect_refusal */
	add_w("w2", 4, 32, 1.0);
	expect_refusal(
		NODES(LIN("x", "w1",
			  "h1") ","
				"{\"op\": \"add\", \"inputs\": [\"bias8\", \"h1\"], \"output\": "
				"\"h2\"}," LIN("h2", "w2", "y")),
		"graph.nodes[1] (add -> \"h2\")", "the shapes do not broadcast");
}

Test(kernels_graph, refuses_builtin_manifest)
{
	expect_refusal("{\"format\": 1,"
		       " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
		       " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
		       " \"graph\": {\"builtin\": \"affine\"}, \"weights\": []}",
		       "graph: no nodes", "built-in");
}

Test(kernels_graph, refuses_op_the_device_lacks)
{
	/* f16 linear is CUDA's: the graph is sound, the CPU device does not take it. */
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f16\", \"shape\": [-1, 16]}],"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f16\", \"shape\": [-1, 16]}],"
	      " \"graph\": {\"nodes\": [{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": "
	      "\"y\"}]}, \"weights\": []}");
	struct swarm_graph *g = NULL;
	int rc = swarm_graph_build(man_desc(&man), lookup, &ws, &dev.dev, 4, &g, err, sizeof err);
	cr_assert_eq(rc, -ENOTSUP, "rc %d (err \"%s\")", rc, err);
	cr_assert(strstr(err, "graph.nodes[0] (relu -> \"y\")"), "err \"%s\"", err);
	cr_assert_null(g);
	cr_assert_eq(dev.allocs, dev.frees);
}

/* ---- swarm_graph_run_parts ---------------------------------------------------------------- */

/* The suite's weights copied into d's memory (the staged CPU device refuses nodes that read
 * host memory), looked up through dws. */
static struct weights dws;

static void weights_to(struct swarm_device *d)
{
	dws = ws;
	for (uint32_t i = 0; i < ws.n; i++) {
		size_t bytes =
			(size_t)swarm_tensor_elems(&ws.t[i]) * swarm_dtype_size(ws.t[i].dtype);
		dws.t[i].data = d->i->alloc(d, bytes);
		cr_assert_not_null(dws.t[i].data);
		int rc = d->i->upload(d, dws.t[i].data, ws.t[i].data, bytes);
		cr_assert_eq(rc, 0, "uploading weight %s: %d", ws.name[i], rc);
	}
}

static void weights_drop(struct swarm_device *d)
{
	for (uint32_t i = 0; i < dws.n; i++)
		d->i->free(d, dws.t[i].data);
	dws.n = 0;
}

static struct swarm_device *staged_lib(uint32_t flags)
{
	struct swarm_device *d = NULL;
	int rc = swarm_device_staged_cpu_create(1, flags, &d);
	cr_assert_eq(rc, 0, "swarm_device_staged_cpu_create = %d", rc);
	weights_to(d);
	return d;
}

static struct swarm_graph *build_dev_weights(struct swarm_device *d, uint32_t max_batch)
{
	struct swarm_graph *g = NULL;
	int rc = swarm_graph_build(man_desc(&man), lookup, &dws, d, max_batch, &g, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_graph_build on %s = %d: %s", d->i->name, rc, err);
	return g;
}

#define PARTS_MAX 64
#define GUARD 0xA5

/* A batch of parts over the rows of contiguous host arrays: part p gets its own copy of its
 * rows, 1 byte past a 64-byte boundary (so no buffer is aligned), and an output buffer with
 * guard bytes after it. */
struct parts {
	uint32_t n, n_in, n_out;
	size_t in_row[SWARM_MAX_TENSORS], out_row[SWARM_MAX_TENSORS];
	struct swarm_graph_part p[PARTS_MAX];
	const void *in[PARTS_MAX][SWARM_MAX_TENSORS];
	void *out[PARTS_MAX][SWARM_MAX_TENSORS];
	char *mem[PARTS_MAX][2 * SWARM_MAX_TENSORS];
};

static void parts_make(struct parts *ps, const uint32_t *rows, uint32_t n, const void *const *src)
{
	uint32_t at = 0;
	ps->n = n;
	for (uint32_t p = 0; p < n; p++) {
		ps->p[p] = (struct swarm_graph_part){ ps->in[p], ps->out[p], rows[p] };
		for (uint32_t t = 0; t < ps->n_in + ps->n_out; t++) {
			bool in = t < ps->n_in;
			size_t bytes = rows[p] * (in ? ps->in_row[t] : ps->out_row[t - ps->n_in]);
			char *m = aligned_alloc(64, (bytes + 1 + 64 + 63) / 64 * 64);
			cr_assert_not_null(m);
			ps->mem[p][t] = m;
			memset(m, GUARD, bytes + 1 + 64);
			if (in) {
				memcpy(m + 1, (const char *)src[t] + at * ps->in_row[t], bytes);
				ps->in[p][t] = m + 1;
			} else {
				ps->out[p][t - ps->n_in] = m + 1;
			}
		}
		at += rows[p];
	}
}

/* Every part's outputs equal the contiguous run's rows to the bit, and nothing was written
 * past them. */
static void parts_check(const struct parts *ps, const void *const *want, const char *what)
{
	uint32_t at = 0;
	for (uint32_t p = 0; p < ps->n; p++) {
		for (uint32_t o = 0; o < ps->n_out; o++) {
			size_t bytes = ps->p[p].rows * ps->out_row[o];
			const unsigned char *got = ps->out[p][o];
			cr_assert(memcmp(got, (const char *)want[o] + at * ps->out_row[o], bytes) ==
					  0,
				  "%s: part %u (%u rows at row %u), output %u differs", what, p,
				  ps->p[p].rows, at, o);
			for (size_t k = 0; k < 64; k++)
				cr_assert_eq(got[bytes + k], GUARD,
					     "%s: part %u output %u written %zu bytes past its end",
					     what, p, o, k);
		}
		at += ps->p[p].rows;
	}
}

static void parts_free(struct parts *ps)
{
	for (uint32_t p = 0; p < ps->n; p++)
		for (uint32_t t = 0; t < ps->n_in + ps->n_out; t++)
			free(ps->mem[p][t]);
	ps->n = 0;
}

static struct parts *parts_new_dlrm(void)
{
	struct parts *ps = calloc(1, sizeof *ps);
	cr_assert_not_null(ps);
	ps->n_in = 3;
	ps->n_out = 1;
	ps->in_row[0] = 8 * sizeof(float);
	ps->in_row[1] = 3 * sizeof(int64_t);
	ps->in_row[2] = 2 * sizeof(int32_t);
	ps->out_row[0] = sizeof(float);
	return ps;
}

/* Random splits of random batch sizes, on the staged device with and without upload_many:
 * each part's outputs are those of the same rows run as one contiguous batch on the CPU. */
Test(kernels_graph, run_parts_equals_one_contiguous_run)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(16);
	struct dlrm_in in = dlrm_inputs(16);
	const void *src[] = { in.dense, in.ids0, in.ids1 };
	float want[16];
	const void *w[] = { want };
	struct parts *ps = parts_new_dlrm();
	for (uint32_t flags = 0; flags <= SWARM_STAGED_NO_MANY; flags++) {
		struct swarm_device *d = staged_lib(flags);
		struct swarm_graph *g = build_dev_weights(d, 16);
		cr_assert_eq(swarm_graph_staged(g), 1);
		for (int trial = 0; trial < 60; trial++) {
			uint32_t total = 1 + (uint32_t)(urand() * 16),
				 k = 1 + (uint32_t)(urand() * 5);
			uint32_t rows[PARTS_MAX], n = 0, left = total;
			while (left) {
				uint32_t r = 1 + (uint32_t)(urand() * k);
				rows[n++] = r < left ? r : left;
				left -= rows[n - 1];
			}
			void *o[] = { want };
			int rc = swarm_graph_run(cpu, total, src, o);
			cr_assert_eq(rc, 0, "CPU run of %u rows: %d", total, rc);
			parts_make(ps, rows, n, src);
			rc = swarm_graph_run_parts(g, ps->p, n);
			cr_assert_eq(rc, 0, "flags %u: run_parts of %u parts, %u rows: %d", flags,
				     n, total, rc);
			parts_check(ps, w, flags ? "piece by piece" : "upload_many");
			parts_free(ps);
		}
		swarm_graph_free(g);
		weights_drop(d);
		d->i->destroy(d);
	}
	free(ps);
	dlrm_in_free(&in);
	swarm_graph_free(cpu);
}

/* max_batch parts of one row each run; one more part, a part of 0 rows, rows summed over
 * max_batch, or no parts are refused with -EINVAL, before anything is copied. */
Test(kernels_graph, run_parts_takes_max_batch_parts_and_refuses_more)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(12);
	struct dlrm_in in = dlrm_inputs(13);
	const void *src[] = { in.dense, in.ids0, in.ids1 };
	float want[12];
	void *o[] = { want };
	const void *w[] = { want };
	struct parts *ps = parts_new_dlrm();
	struct swarm_device *d = staged_lib(0);
	struct swarm_graph *g = build_dev_weights(d, 12);
	uint32_t rows[PARTS_MAX];
	for (int i = 0; i < 13; i++)
		rows[i] = 1;

	cr_assert_eq(swarm_graph_run(cpu, 12, src, o), 0);
	parts_make(ps, rows, 12, src);
	int rc = swarm_graph_run_parts(g, ps->p, 12);
	cr_assert_eq(rc, 0, "12 parts of 1 row, max_batch 12: %d", rc);
	parts_check(ps, w, "max parts");
	parts_free(ps);

	parts_make(ps, rows, 13, src);
	cr_assert_eq(swarm_graph_run_parts(g, ps->p, 13), -EINVAL, "13 parts on max_batch 12");
	ps->p[3].rows = 0;
	cr_assert_eq(swarm_graph_run_parts(g, ps->p, 5), -EINVAL, "a part of 0 rows");
	ps->p[3].rows = 1;
	ps->p[0].rows = 9;
	cr_assert_eq(swarm_graph_run_parts(g, ps->p, 5), -EINVAL, "13 rows on max_batch 12");
	ps->p[0].rows = 1;
	ps->p[2].inputs = NULL;
	cr_assert_eq(swarm_graph_run_parts(g, ps->p, 5), -EINVAL, "a part without inputs");
	cr_assert_eq(swarm_graph_run_parts(g, ps->p, 0), -EINVAL, "no parts");
	cr_assert_eq(swarm_graph_run_parts(g, NULL, 1), -EINVAL, "NULL parts");
	parts_free(ps);

	/* The host-memory CPU graph takes no parts: its caller gathers. */
	cr_assert_eq(swarm_graph_staged(cpu), 0);
	parts_make(ps, rows, 2, src);
	cr_assert_eq(swarm_graph_run_parts(cpu, ps->p, 2), -ENOTSUP);
	parts_free(ps);

	free(ps);
	swarm_graph_free(g);
	weights_drop(d);
	d->i->destroy(d);
	dlrm_in_free(&in);
	swarm_graph_free(cpu);
}

/* Rows of 7 and 3 floats (28 and 12 bytes: no row a multiple of 16) through two outputs, parts
 * in unaligned buffers: equal to the contiguous run. */
Test(kernels_graph, run_parts_odd_row_sizes)
{
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 7]},"
	      "   {\"name\": \"z\", \"dtype\": \"f32\", \"shape\": [-1, 3]}],"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 7]},"
	      "   {\"name\": \"s\", \"dtype\": \"f32\", \"shape\": [-1, 3]}],"
	      " \"graph\": {\"nodes\": ["
	      "  {\"op\": \"tanh\", \"inputs\": [\"x\"], \"output\": \"y\"},"
	      "  {\"op\": \"sigmoid\", \"inputs\": [\"z\"], \"output\": \"s\"}]},"
	      " \"weights\": []}");
	struct swarm_graph *cpu = build(9);
	float *x = random_f32(9 * 7), *z = random_f32(9 * 3), y[9 * 7], sg[9 * 3];
	const void *src[] = { x, z };
	void *o[] = { y, sg };
	const void *w[] = { y, sg };
	struct parts *ps = calloc(1, sizeof *ps);
	cr_assert_not_null(ps);
	ps->n_in = ps->n_out = 2;
	ps->in_row[0] = ps->out_row[0] = 28;
	ps->in_row[1] = ps->out_row[1] = 12;
	for (uint32_t flags = 0; flags <= SWARM_STAGED_NO_MANY; flags++) {
		struct swarm_device *d = staged_lib(flags);
		struct swarm_graph *g = build_dev_weights(d, 9);
		const uint32_t splits[][4] = { { 9 }, { 1, 8 }, { 2, 3, 4 }, { 4, 1, 1, 3 } };
		const uint32_t n_splits[] = { 1, 2, 3, 4 };
		for (int k = 0; k < 4; k++) {
			cr_assert_eq(swarm_graph_run(cpu, 9, src, o), 0);
			parts_make(ps, splits[k], n_splits[k], src);
			int rc = swarm_graph_run_parts(g, ps->p, n_splits[k]);
			cr_assert_eq(rc, 0, "flags %u split %d: %d", flags, k, rc);
			parts_check(ps, w, "odd rows");
			parts_free(ps);
		}
		swarm_graph_free(g);
		weights_drop(d);
		d->i->destroy(d);
	}
	free(ps);
	free(x);
	free(z);
	swarm_graph_free(cpu);
}

/* The staged device with its upload_many (or upload) failing after some pieces, and a
 * synchronize that counts: run_parts returns that error, still synchronises once, and runs no
 * node after it. */
static struct swarm_device *fail_inner;
static int fail_after, fail_calls, fail_pieces, fail_syncs;

static int fail_upload_many(struct swarm_device *d, const struct swarm_copy *c, uint32_t n)
{
	fail_calls++;
	fail_pieces += (int)n;
	if ((int)n <= fail_after)
		return fail_inner->i->upload_many(d, c, n);
	int rc = fail_inner->i->upload_many(d, c, (uint32_t)fail_after);
	return rc ? rc : -EIO;
}

static int fail_upload(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	if (fail_calls++ >= fail_after)
		return -EIO;
	return fail_inner->i->upload(d, dst, src, n);
}

static int fail_sync(struct swarm_device *d)
{
	(void)d;
	fail_syncs++;
	return 0;
}

Test(kernels_graph, run_parts_returns_an_upload_failing_part_way)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct dlrm_in in = dlrm_inputs(16);
	const void *src[] = { in.dense, in.ids0, in.ids1 };
	struct parts *ps = parts_new_dlrm();
	const uint32_t rows[] = { 2, 3, 1, 4 };
	for (uint32_t flags = 0; flags <= SWARM_STAGED_NO_MANY; flags++) {
		fail_inner = staged_lib(flags);
		struct swarm_device_i fi = *fail_inner->i;
		fi.synchronize = fail_sync;
		if (flags)
			fi.upload = fail_upload; /* the graph's own piece-by-piece path */
		else
			fi.upload_many = fail_upload_many;
		struct swarm_device fd = { &fi, fail_inner->ctx };
		struct swarm_graph *g = build_dev_weights(&fd, 16);
		fail_after = 5;
		fail_calls = fail_pieces = fail_syncs = 0;
		parts_make(ps, rows, 4, src);
		int rc = swarm_graph_run_parts(g, ps->p, 4);
		cr_assert_eq(rc, -EIO, "flags %u: a failing upload gave %d", flags, rc);
		cr_assert_eq(fail_syncs, 1, "flags %u: %d synchronizes after the failure", flags,
			     fail_syncs);
		if (flags)
			cr_assert_eq(fail_calls, 6,
				     "piece by piece: %d uploads, want 6 (the "
				     "sixth failing, none after)",
				     fail_calls);
		else
			cr_assert(fail_calls == 1 && fail_pieces == 12,
				  "upload_many: %d calls of %d pieces, want 1 of 12 (4 parts x 3 "
				  "inputs)",
				  fail_calls, fail_pieces);
		parts_free(ps);
		/* With nothing failing it runs again, the same graph. */
		fail_after = 1000;
		fail_calls = fail_pieces = 0;
		parts_make(ps, rows, 4, src);
		rc = swarm_graph_run_parts(g, ps->p, 4);
		cr_assert_eq(rc, 0, "flags %u: after the failure: %d", flags, rc);
		cr_assert_eq(fail_calls, flags ? 12 : 1, "flags %u: %d upload calls", flags,
			     fail_calls);
		parts_free(ps);
		swarm_graph_free(g);
		weights_drop(fail_inner);
		fail_inner->i->destroy(fail_inner);
	}
	free(ps);
	dlrm_in_free(&in);
}

/* On the counting fake with capture hooks: run_parts of the same summed rows warms up, then
 * captures, then replays, as swarm_graph_run does, one upload a piece (the fake has no
 * upload_many) and one download a part. */
Test(kernels_graph, run_parts_captures_and_replays_by_summed_rows)
{
	dlrm_weights();
	parse(DLRM_JSON);
	struct swarm_graph *cpu = build(16);
	struct swarm_graph *g = build_on(staged_dev(true), 16);
	struct dlrm_in in = dlrm_inputs(16);
	const void *src[] = { in.dense, in.ids0, in.ids1 };
	float want[16];
	void *o[] = { want };
	const void *w[] = { want };
	struct parts *ps = parts_new_dlrm();
	const uint32_t splits[][3] = { { 1, 4, 2 }, { 3, 3, 1 }, { 5, 1, 1 } };
	cr_assert_eq(swarm_graph_run(cpu, 7, src, o), 0);
	for (int k = 0; k < 3; k++) {
		staged_reset_counts();
		parts_make(ps, splits[k], 3, src);
		int rc = swarm_graph_run_parts(g, ps->p, 3);
		cr_assert_eq(rc, 0, "run %d: %d", k, rc);
		parts_check(ps, w, "captured");
		parts_free(ps);
		cr_assert_eq(st.uploads, 9, "run %d: %d uploads, want 3 parts x 3 inputs", k,
			     st.uploads);
		cr_assert_eq(st.downloads, 3, "run %d: %d downloads", k, st.downloads);
		cr_assert_eq(st.syncs, 1, "run %d: %d synchronizes", k, st.syncs);
		cr_assert_eq(st.foreign, 0, "a node saw a host buffer");
	}
	cr_assert_eq(st.captures, 1, "%d captures of 7 rows", st.captures);
	cr_assert_eq(st.replays, 2, "%d replays", st.replays);
	cr_assert_eq(swarm_graph_captured(g), 1);
	free(ps);
	dlrm_in_free(&in);
	swarm_graph_free(g);
	swarm_graph_free(cpu);
}

/* The library's staged CPU device catches a caller that hands it host memory where its own
 * belongs (the e2e test of the worker's batch path relies on it): copies whose device side,
 * and nodes whose tensors, are not in its allocations fail with -EFAULT; a graph whose weights
 * are host memory fails its run. */
Test(kernels_graph, staged_cpu_device_refuses_host_memory)
{
	struct swarm_device *d = NULL;
	cr_assert_eq(swarm_device_staged_cpu_create(1, 0, &d), 0);
	cr_expect_eq(d->i->host_memory, 0);
	float host[8] = { 1, -2, 3, -4, 5, -6, 7, -8 }, back[8];
	float *mem = d->i->alloc(d, sizeof host);
	cr_assert_not_null(mem);
	cr_expect_eq(d->i->upload(d, back, host, sizeof host), -EFAULT, "upload to host memory");
	cr_expect_eq(d->i->upload(d, mem + 4, host, sizeof host), -EFAULT, "upload past the end");
	cr_expect_eq(d->i->download(d, back, host, sizeof host), -EFAULT, "download from host");
	struct swarm_copy bad[2] = { { mem, host, 16 }, { back, host, 16 } };
	cr_expect_eq(d->i->upload_many(d, bad, 2), -EFAULT, "upload_many with a host dst");
	cr_assert_eq(d->i->upload(d, mem, host, sizeof host), 0);

	struct swarm_tensor tin = {
		.data = mem, .dtype = SWARM_DTYPE_F32, .ndim = 1, .shape = { 8 }
	};
	struct swarm_tensor tout = tin, thost = tin;
	thost.data = back;
	struct swarm_node n = { .op = SWARM_OP_RELU, .n_in = 1, .in = { &thost }, .out = &tout };
	cr_expect_eq(d->i->run(d, &n), -EFAULT, "a node reading host memory");
	n.in[0] = &tin;
	n.out = &thost;
	cr_expect_eq(d->i->run(d, &n), -EFAULT, "a node writing host memory");
	n.out = &tout;
	cr_assert_eq(d->i->run(d, &n), 0, "relu in place on device memory");
	cr_assert_eq(d->i->download(d, back, mem, sizeof back), 0);
	for (int i = 0; i < 8; i++)
		cr_expect_eq(back[i], host[i] > 0 ? host[i] : 0.0f, "relu[%d] = %f", i, back[i]);
	d->i->free(d, mem);

	/* Host weights, as the suite's lookup gives them: the run, not the build, refuses. */
	mlp_weights();
	parse(MLP_JSON);
	struct swarm_graph *g = NULL;
	cr_assert_eq(swarm_graph_build(man_desc(&man), lookup, &ws, d, 4, &g, err, sizeof err), 0,
		     "%s", err);
	float x[4 * 16] = { 0 }, y[4 * 4];
	const void *in[] = { x };
	void *out[] = { y };
	cr_expect_eq(swarm_graph_run(g, 2, in, out), -EFAULT);
	swarm_graph_free(g);
	d->i->destroy(d);
}

/* ---- a concat fused into the conv that reads it ------------------------------------------ */

/* A weight of shape [d0, d1, d2, d3], uniform in [-scale, scale]. */
static void add_w4(const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3, double scale)
{
	add_w(name, d0 * d1 * d2 * d3, 0, scale);
	struct swarm_tensor *t = &ws.t[ws.n - 1];
	t->ndim = 4;
	t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3;
}

/* The manifest parsed last, built on the CPU device at max_batch 3 unfused (g[0]) and with
 * the fusions SWARM_GRAPH_FUSE lists in fuse (g[1]). */
static void build_fused_pair(const char *fuse, struct swarm_graph *g[2])
{
	for (int f = 0; f < 2; f++) {
		setenv("SWARM_GRAPH_FUSE", f ? fuse : "0", 1);
		int rc = swarm_graph_build(man_desc(&man), lookup, &ws, dev.inner, 3, &g[f], err,
					   sizeof err);
		cr_assert_eq(rc, 0, "swarm_graph_build = %d: %s", rc, err);
	}
	unsetenv("SWARM_GRAPH_FUSE");
}

/* Both graphs of build_fused_pair give the same bits on the same random inputs (n_in of them,
 * in_elems[i] a row), at 1 to 3 rows, for each of their n_out outputs (out_elems[o] a row);
 * then freed. */
static void expect_fused_same_bits(struct swarm_graph *g[2], int n_in, const size_t *in_elems,
				   int n_out, const size_t *out_elems)
{
	float *x[4];
	const void *ins[4];
	for (int i = 0; i < n_in; i++)
		ins[i] = x[i] = random_f32(3 * in_elems[i]);
	for (uint32_t rows = 1; rows <= 3; rows++) {
		float *got[2][5];
		for (int f = 0; f < 2; f++) {
			for (int o = 0; o < n_out; o++)
				got[f][o] = calloc(rows * out_elems[o], sizeof(float));
			cr_assert_eq(swarm_graph_run(g[f], rows, ins, (void **)got[f]), 0);
		}
		for (int o = 0; o < n_out; o++)
			cr_assert_arr_eq(got[0][o], got[1][o], rows * out_elems[o] * sizeof(float),
					 "output %d at %u rows differs when fused", o, rows);
		for (int f = 0; f < 2; f++)
			for (int o = 0; o < n_out; o++)
				free(got[f][o]);
	}
	for (int i = 0; i < n_in; i++)
		free(x[i]);
	swarm_graph_free(g[0]);
	swarm_graph_free(g[1]);
}

/* c = concat(a, x) read only by a 3x3 conv, and h = concat(a, a) read only by a grouped 3x3
 * conv (each group's channels from its part): fused on the CPU device (not run, not stored;
 * the convs read a and x where they lie). d = concat(x, a) read by a 1x1 conv (a GEMM, which
 * reads its input whole: kept) and e = concat(a, x), a model output read by a conv too
 * (kept). Every output has the same bits as with SWARM_GRAPH_FUSE=0, at every row count. */
Test(kernels_graph, concat_fused_into_the_direct_conv_that_reads_it)
{
	add_w4("wa", 4, 3, 3, 3, 0.5);
	add_w("ba", 4, 0, 0.5);
	add_w4("wy", 5, 7, 3, 3, 0.3);
	add_w("by", 5, 0, 0.3);
	add_w4("wz", 2, 7, 1, 1, 0.3);
	add_w4("wq", 3, 7, 2, 2, 0.3);
	add_w4("wh", 4, 4, 3, 3, 0.3);
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 3, 9, 11]}],"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 5, 5, 6]},"
	      "  {\"name\": \"z\", \"dtype\": \"f32\", \"shape\": [-1, 2, 9, 11]},"
	      "  {\"name\": \"e\", \"dtype\": \"f32\", \"shape\": [-1, 7, 9, 11]},"
	      "  {\"name\": \"q\", \"dtype\": \"f32\", \"shape\": [-1, 3, 8, 10]},"
	      "  {\"name\": \"k\", \"dtype\": \"f32\", \"shape\": [-1, 4, 9, 11]}],"
	      " \"graph\": {\"nodes\": ["
	      "  {\"op\": \"conv2d\", \"inputs\": [\"x\", \"wa\", \"ba\"], \"output\": \"a\","
	      "   \"pads\": [1, 1, 1, 1], \"act\": \"relu\"},"
	      "  {\"op\": \"concat\", \"inputs\": [\"a\", \"x\"], \"output\": \"c\", \"axis\": 1},"
	      "  {\"op\": \"concat\", \"inputs\": [\"x\", \"a\"], \"output\": \"d\", \"axis\": -3},"
	      "  {\"op\": \"concat\", \"inputs\": [\"a\", \"x\"], \"output\": \"e\", \"axis\": 1},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"c\", \"wy\", \"by\"], \"output\": \"y\","
	      "   \"strides\": [2, 2], \"pads\": [1, 1, 1, 1]},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"d\", \"wz\"], \"output\": \"z\"},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"e\", \"wq\"], \"output\": \"q\"},"
	      "  {\"op\": \"concat\", \"inputs\": [\"a\", \"a\"], \"output\": \"h\", \"axis\": 1},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"h\", \"wh\"], \"output\": \"k\","
	      "   \"pads\": [1, 1, 1, 1], \"group\": 2}]},"
	      " \"weights\": []}");
	struct swarm_graph *g[2];
	build_fused_pair("concat", g);
	cr_assert_eq(swarm_graph_nodes(g[0]), 9, "unfused: every node runs");
	cr_assert_eq(swarm_graph_nodes(g[1]), 7,
		     "fused: c's and h's concats are not run, d's and e's are");
	/* a, d, e, y, z, q, k: the parts on y and k */
	for (uint32_t k = 0; k < swarm_graph_nodes(g[1]); k++) {
		const struct swarm_node *n = swarm_graph_node(g[1], k);
		cr_assert_eq(n->n_parts, k == 3 || k == 6 ? 2u : 0u, "node %u has %u parts", k,
			     n->n_parts);
	}
	/* c's and h's 3 rows, each rounded up to the arena's 64-byte alignment */
	const size_t c_bytes = ((size_t)3 * 7 * 9 * 11 * sizeof(float) + 63) & ~(size_t)63,
		     h_bytes = ((size_t)3 * 8 * 9 * 11 * sizeof(float) + 63) & ~(size_t)63;
	cr_assert_eq(swarm_graph_naive_bytes(g[0]) - swarm_graph_naive_bytes(g[1]),
		     c_bytes + h_bytes, "c and h take no bytes when fused: %zu and %zu",
		     swarm_graph_naive_bytes(g[0]), swarm_graph_naive_bytes(g[1]));

	const size_t outs[5] = { 5 * 5 * 6, 2 * 9 * 11, 7 * 9 * 11, 3 * 8 * 10, 4 * 9 * 11 };
	const size_t in = 3 * 9 * 11;
	expect_fused_same_bits(g, 1, &in, 5, outs);
}

/* ---- an add fused into the conv that makes one of its operands ---------------------------- */

/* s1 = x + relu(conv3x3(x)) and s2 = s1 + conv1x1(s1): fused (the direct conv and the GEMM
 * add the other operand after the activation); s3 = s2 + dwconv(s2): kept (the CPU's
 * depthwise conv does not add); s4 = d + s3 with d a model output: kept; s5 = e + f with e
 * made before f: fused into f. Every output has the same bits as unfused, at every row
 * count. */
Test(kernels_graph, add_fused_into_the_conv_that_makes_an_operand)
{
	add_w4("wa", 4, 4, 3, 3, 0.4);
	add_w("ba", 4, 0, 0.4);
	add_w4("wb", 4, 4, 1, 1, 0.4);
	add_w4("wc", 4, 1, 3, 3, 0.4);
	add_w4("wd", 4, 4, 1, 1, 0.4);
	add_w4("we", 4, 4, 1, 1, 0.4);
	add_w4("wf", 4, 4, 2, 2, 0.4);
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 4, 7, 9]}],"
	      " \"outputs\": [{\"name\": \"d\", \"dtype\": \"f32\", \"shape\": [-1, 4, 7, 9]},"
	      "  {\"name\": \"s4\", \"dtype\": \"f32\", \"shape\": [-1, 4, 7, 9]},"
	      "  {\"name\": \"s5\", \"dtype\": \"f32\", \"shape\": [-1, 4, 7, 9]}],"
	      " \"graph\": {\"nodes\": ["
	      "  {\"op\": \"conv2d\", \"inputs\": [\"x\", \"wa\", \"ba\"], \"output\": \"a\","
	      "   \"pads\": [1, 1, 1, 1], \"act\": \"relu\"},"
	      "  {\"op\": \"add\", \"inputs\": [\"x\", \"a\"], \"output\": \"s1\"},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"s1\", \"wb\"], \"output\": \"b\"},"
	      "  {\"op\": \"add\", \"inputs\": [\"b\", \"s1\"], \"output\": \"s2\"},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"s2\", \"wc\"], \"output\": \"c\","
	      "   \"pads\": [1, 1, 1, 1], \"group\": 4},"
	      "  {\"op\": \"add\", \"inputs\": [\"s2\", \"c\"], \"output\": \"s3\"},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"s3\", \"wd\"], \"output\": \"d\"},"
	      "  {\"op\": \"add\", \"inputs\": [\"d\", \"s3\"], \"output\": \"s4\"},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"s4\", \"we\"], \"output\": \"e\"},"
	      "  {\"op\": \"conv2d\", \"inputs\": [\"s4\", \"wf\"], \"output\": \"f\","
	      "   \"pads\": [0, 0, 1, 1]},"
	      "  {\"op\": \"add\", \"inputs\": [\"e\", \"f\"], \"output\": \"s5\"}]},"
	      " \"weights\": []}");
	struct swarm_graph *g[2];
	build_fused_pair("sum", g);
	cr_assert_eq(swarm_graph_nodes(g[0]), 11, "unfused: every node runs");
	cr_assert_eq(swarm_graph_nodes(g[1]), 8, "fused: s1's, s2's and s5's adds are not run");
	/* a, b, c, s3, d, s4, e, f: the sums on a, b and f */
	const bool summed[8] = { true, true, false, false, false, false, false, true };
	for (uint32_t k = 0; k < 8; k++) {
		const struct swarm_node *n = swarm_graph_node(g[1], k);
		cr_assert_eq(n->sum != NULL, summed[k], "node %u (%s): sum %p", k,
			     swarm_op_name(n->op), (const void *)n->sum);
	}

	const size_t outs[3] = { 4 * 7 * 9, 4 * 7 * 9, 4 * 7 * 9 };
	const size_t in = 4 * 7 * 9;
	expect_fused_same_bits(g, 1, &in, 3, outs);
}

/* s1 = m + x with m = x * g (g per channel): fused into the mul; s2 = s1 + r with r a nearest
 * 2x upsampling of y: fused into the resize; s3 = q + s2 with q a bilinear one: fused too; s4
 * = s3 + g (g broadcast, not of s4's shape): kept. The same bits as unfused. */
Test(kernels_graph, add_fused_into_a_binary_op_and_a_resize)
{
	add_w4("g", 1, 4, 1, 1, 1.0);
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 4, 6, 8]},"
	      "  {\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4, 3, 4]}],"
	      " \"outputs\": [{\"name\": \"s4\", \"dtype\": \"f32\", \"shape\": [-1, 4, 6, 8]}],"
	      " \"graph\": {\"nodes\": ["
	      "  {\"op\": \"mul\", \"inputs\": [\"x\", \"g\"], \"output\": \"m\"},"
	      "  {\"op\": \"add\", \"inputs\": [\"m\", \"x\"], \"output\": \"s1\"},"
	      "  {\"op\": \"resize\", \"inputs\": [\"y\"], \"output\": \"r\", \"mode\": \"nearest\","
	      "   \"coordinate_transformation_mode\": \"asymmetric\", \"nearest_mode\": \"floor\","
	      "   \"scales\": [2.0, 2.0]},"
	      "  {\"op\": \"add\", \"inputs\": [\"s1\", \"r\"], \"output\": \"s2\"},"
	      "  {\"op\": \"resize\", \"inputs\": [\"y\"], \"output\": \"q\", \"mode\": \"linear\","
	      "   \"coordinate_transformation_mode\": \"half_pixel\", \"sizes\": [6, 8]},"
	      "  {\"op\": \"add\", \"inputs\": [\"q\", \"s2\"], \"output\": \"s3\"},"
	      "  {\"op\": \"add\", \"inputs\": [\"s3\", \"g\"], \"output\": \"s4\"}]},"
	      " \"weights\": []}");
	struct swarm_graph *g[2];
	build_fused_pair("sum", g);
	cr_assert_eq(swarm_graph_nodes(g[0]), 7, "unfused: every node runs");
	cr_assert_eq(swarm_graph_nodes(g[1]), 4, "fused: only s4's add is run");
	for (uint32_t k = 0; k < 4; k++) {
		const struct swarm_node *n = swarm_graph_node(g[1], k);
		cr_assert_eq(n->sum != NULL, k < 3, "node %u (%s): sum %p", k, swarm_op_name(n->op),
			     (const void *)n->sum);
	}
	const size_t ins[2] = { 4 * 6 * 8, 4 * 3 * 4 }, outs[1] = { 4 * 6 * 8 };
	expect_fused_same_bits(g, 2, ins, 1, outs);
}
