/* onnx_bench.c: an imported ONNX model in process against ONNX Runtime (bench/onnx_bench.h). */
#include "bench/onnx_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>

#include "kernels/cpu/gemm.h"
#include "kernels/graph.h"
#include "kernels/op.h"
#include "registry/loader.h"
#include "registry/manifest.h"
#include "runtime/device_weights.h"
#include "swarm/swarm.h"
#include "tools/npy.h"

#define OB_LINE_MAX (1 << 20)
#define OB_MAX_ITERS 4096 /* timed runs a side, a batch size */
#define OB_ROUNDS 5

/* ---- the ONNX Runtime child -------------------------------------------------------------- */

struct ob_child {
	pid_t pid;
	FILE *to, *from;
	char *line; /* the last answer */
};

static void ob_child_stop(struct ob_child *c)
{
	if (c->to) {
		fputs("quit\n", c->to);
		fclose(c->to);
	}
	if (c->from)
		fclose(c->from);
	if (c->pid > 0) {
		int st;
		for (int i = 0; i < 50 && waitpid(c->pid, &st, WNOHANG) == 0; i++)
			usleep(100 * 1000);
		if (waitpid(c->pid, &st, WNOHANG) == 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
		}
	}
	free(c->line);
	memset(c, 0, sizeof *c);
}

/* Sends cmd and reads the one-line answer into c->line. 0, or -EPIPE when the child is gone. */
static int ob_ask(struct ob_child *c, const char *cmd)
{
	if (cmd && (fputs(cmd, c->to) < 0 || fflush(c->to) != 0))
		return -EPIPE;
	if (!fgets(c->line, OB_LINE_MAX, c->from))
		return -EPIPE;
	c->line[strcspn(c->line, "\n")] = 0;
	return 0;
}

/* python3 runner model NAME=FILE... on this cpu; reads its "ready VERSION". */
static int ob_child_start(struct ob_child *c, const char *runner, char *const *args, int n_args,
			  char *version, size_t vlen, char *why, size_t wlen)
{
	int in[2], out[2];
	memset(c, 0, sizeof *c);
	if (!(c->line = malloc(OB_LINE_MAX)) || pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		snprintf(why, wlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	char **av = calloc((size_t)n_args + 4, sizeof *av);
	if (!av)
		return -ENOMEM;
	const char *py = getenv("PYTHON");
	av[0] = (char *)(py && *py ? py : "python3");
	av[1] = (char *)runner;
	for (int i = 0; i < n_args; i++)
		av[2 + i] = args[i];
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execvp(av[0], av);
		fprintf(stderr, "swarm-bench: cannot run %s: %s\n", av[0], strerror(errno));
		_exit(127);
	}
	free(av);
	close(in[0]);
	close(out[1]);
	if (c->pid < 0) {
		close(in[1]);
		close(out[0]);
		snprintf(why, wlen, "fork: %s", strerror(errno));
		return -errno;
	}
	c->to = fdopen(in[1], "w");
	c->from = fdopen(out[0], "r");
	if (!c->to || !c->from || ob_ask(c, NULL) || strncmp(c->line, "ready ", 6) != 0) {
		snprintf(why, wlen,
			 "ONNX Runtime did not start (%s): install it with "
			 "tools/install-pydeps.sh --test",
			 runner);
		return -ENOENT;
	}
	snprintf(version, vlen, "%s", c->line + 6);
	return 0;
}

/* ---- the swarm side ----------------------------------------------------------------------- */

struct ob_model {
	struct swarm_manifest *m;
	struct swarm_weights w;
	bool loaded;
	struct swarm_device *dev;
	struct swarm_graph *g;
	struct swarm_npy in[SWARM_MAX_TENSORS];
	void *out[SWARM_MAX_TENSORS];
	uint32_t max_rows;
};

static void ob_model_close(struct ob_model *md)
{
	swarm_graph_free(md->g);
	if (md->dev)
		md->dev->i->destroy(md->dev);
	if (md->loaded)
		swarm_weights_unload(&md->w);
	for (int i = 0; i < SWARM_MAX_TENSORS; i++) {
		free(md->in[i].data);
		free(md->out[i]);
	}
	free(md->m);
	memset(md, 0, sizeof *md);
}

static int ob_exists(const char *path) { return access(path, R_OK) == 0; }

/* why: path is missing, and what makes it. */
static void ob_missing(char *why, size_t wlen, const char *path, const char *dir)
{
	snprintf(why, wlen, "no %.240s (bench/onnx-prepare.sh %.200s makes it)", path, dir);
}

/* Opens dir/name's manifest, weights and inputs; a missing file is out->why and 1. */
static int ob_model_open(struct ob_model *md, const struct bench_onnx_opts *o, uint32_t max_rows,
			 char *why, size_t wlen)
{
	char path[4096], err[512];
	memset(md, 0, sizeof *md);
	md->max_rows = max_rows;
	snprintf(path, sizeof path, "%s/%s.json", o->dir, o->name);
	FILE *f = ob_exists(path) ? fopen(path, "rb") : NULL;
	if (!f) {
		ob_missing(why, wlen, path, o->dir);
		return 1;
	}
	char *json = malloc(SWARM_MANIFEST_MAX_BYTES + 1);
	size_t n = json ? fread(json, 1, SWARM_MANIFEST_MAX_BYTES + 1, f) : 0;
	fclose(f);
	md->m = malloc(sizeof *md->m);
	int rc = !json || !md->m ? -ENOMEM : swarm_manifest_parse(json, n, md->m, err, sizeof err);
	free(json);
	if (rc) {
		fprintf(stderr, "swarm-bench: %s: %s\n", path, err);
		return rc;
	}
	for (uint32_t i = 0; i < md->m->n_inputs; i++) {
		const swarm_tensor_spec *sp = &md->m->inputs[i];
		snprintf(path, sizeof path, "%s/%s.%s.npy", o->dir, o->name, sp->name);
		if (!ob_exists(path)) {
			ob_missing(why, wlen, path, o->dir);
			return 1;
		}
		if (swarm_npy_read(path, &md->in[i], err, sizeof err)) {
			fprintf(stderr, "swarm-bench: %s\n", err);
			return -EINVAL;
		}
		const struct swarm_npy *d = &md->in[i];
		if (d->dtype != sp->dtype || d->ndim != sp->ndim || d->shape[0] < max_rows ||
		    d->bytes / (size_t)d->shape[0] != sp->row_bytes) {
			fprintf(stderr,
				"swarm-bench: %s: not %u rows or more of input %s (%s, %" PRIu64
				" bytes a row)\n",
				path, max_rows, sp->name, swarm_npy_dtype_name(sp->dtype),
				sp->row_bytes);
			return -EINVAL;
		}
	}
	snprintf(path, sizeof path, "%s/%s.safetensors", o->dir, o->name);
	if ((rc = swarm_weights_load(path, 0, NULL, 0, &md->w, err, sizeof err)) != 0) {
		fprintf(stderr, "swarm-bench: %s: %s\n", path, err);
		return rc;
	}
	md->loaded = true;
	if ((rc = swarm_device_cpu_create(o->threads > 1 ? o->threads : 1, &md->dev)) != 0)
		return rc;
	rc = swarm_graph_from_weights(md->m, md->w.map, &md->w.st, md->dev, max_rows, &md->g, err,
				      sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: the graph of %s: %s\n", o->name, err);
		return rc;
	}
	for (uint32_t i = 0; i < md->m->n_outputs; i++)
		if (!(md->out[i] = calloc(max_rows, md->m->outputs[i].row_bytes)))
			return -ENOMEM;
	return 0;
}

static int ob_run(struct ob_model *md, uint32_t rows)
{
	const void *in[SWARM_MAX_TENSORS];
	for (uint32_t i = 0; i < md->m->n_inputs; i++)
		in[i] = md->in[i].data;
	return swarm_graph_run(md->g, rows, in, md->out);
}

/* max|swarm - ort| / max|ort| over output k (f32 only; other dtypes must be equal). */
static int ob_compare(struct ob_model *md, uint32_t rows, const char *prefix, double *rel)
{
	*rel = 0;
	for (uint32_t k = 0; k < md->m->n_outputs; k++) {
		char path[4400], err[512];
		struct swarm_npy r;
		snprintf(path, sizeof path, "%s.%u.npy", prefix, k);
		if (swarm_npy_read(path, &r, err, sizeof err)) {
			fprintf(stderr, "swarm-bench: ONNX Runtime's output: %s\n", err);
			return -EIO;
		}
		unlink(path);
		const swarm_tensor_spec *sp = &md->m->outputs[k];
		if (r.bytes != rows * sp->row_bytes || r.dtype != sp->dtype) {
			fprintf(stderr,
				"swarm-bench: output %s: ONNX Runtime gave %zu bytes of %s, swarm "
				"%" PRIu64 " of %s\n",
				sp->name, r.bytes, swarm_npy_dtype_name(r.dtype),
				rows * sp->row_bytes, swarm_npy_dtype_name(sp->dtype));
			free(r.data);
			return -EINVAL;
		}
		double maxd = 0, maxr = 0;
		if (sp->dtype == SWARM_DTYPE_F32) {
			const float *a = md->out[k], *b = r.data;
			for (size_t j = 0; j < r.bytes / 4; j++) {
				maxd = fmax(maxd, fabs((double)a[j] - b[j]));
				maxr = fmax(maxr, fabs((double)b[j]));
			}
		} else if (memcmp(md->out[k], r.data, r.bytes) != 0) {
			maxd = maxr = 1;
		}
		free(r.data);
		*rel = fmax(*rel, maxr > 0 ? maxd / maxr : maxd);
	}
	return 0;
}

/* ---- profiles ------------------------------------------------------------------------------- */

static int ob_op_cmp(const void *a, const void *b)
{
	double x = ((const struct bench_onnx_op *)a)->ns, y = ((const struct bench_onnx_op *)b)->ns;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Adds ns (and flops) to op name's entry of ops (n of them, room for cap). */
static void ob_op_add(struct bench_onnx_op *ops, int *n, int cap, const char *name, double ns,
		      double flops)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(ops[i].name, name)) {
			ops[i].ns += ns;
			ops[i].flops += flops;
			return;
		}
	if (*n < cap) {
		snprintf(ops[*n].name, sizeof ops[*n].name, "%s", name);
		ops[*n].flops = flops;
		ops[(*n)++].ns = ns;
	}
}

/* Multiply-adds times 2 of the GEMM-shaped nodes at their current shapes; 0 for the rest. */
static double ob_flops(const struct swarm_node *nd)
{
	const struct swarm_tensor *x = nd->in[0], *o = nd->out;
	const double out = (double)swarm_tensor_elems(o);
	switch (nd->op) {
	case SWARM_OP_LINEAR: /* out [.., N], K = X's last dim */
		return 2.0 * out * (double)x->shape[x->ndim - 1];
	case SWARM_OP_MATMUL:
		return 2.0 * out * (double)x->shape[x->ndim - 1];
	case SWARM_OP_ATTENTION: /* Q K^T and P V: 2 * 2 * B * S * S * E */
		return x->ndim == 3 ? 4.0 * out * (double)x->shape[1] : 0.0;
	case SWARM_OP_CONV2D:
		if (nd->in[1]->ndim == 4) {
			const int64_t *w = nd->in[1]->shape;
			return 2.0 * out * (double)(w[1] * w[2] * w[3]);
		}
		return 0.0;
	default:
		return 0.0;
	}
}

static void ob_top(const struct bench_onnx_op *all, int n, struct bench_onnx_op *top, int *n_top)
{
	struct bench_onnx_op tmp[SWARM_OP_COUNT + 64];
	memcpy(tmp, all, (size_t)n * sizeof *all);
	qsort(tmp, (size_t)n, sizeof *tmp, ob_op_cmp);
	*n_top = n < BENCH_ONNX_TOP_OPS ? n : BENCH_ONNX_TOP_OPS;
	memcpy(top, tmp, (size_t)*n_top * sizeof *top);
}

/* A node's op, a conv's kernel size named: conv2d 3x3 dw. */
static void ob_node_name(const struct swarm_node *nd, char *name, size_t size)
{
	const char *op = swarm_op_info(nd->op)->name;
	if ((nd->op == SWARM_OP_CONV2D || nd->op == SWARM_OP_CONV_TRANSPOSE2D) &&
	    nd->in[1]->ndim == 4) {
		const int64_t *w = nd->in[1]->shape;
		bool dw = nd->op == SWARM_OP_CONV2D && w[1] == 1 && nd->p.group > 1 &&
			  nd->p.group == nd->in[0]->shape[1];
		snprintf(name, size, "%s %lldx%lld%s", op, (long long)w[2], (long long)w[3],
			 dw ? " dw" : "");
	} else {
		snprintf(name, size, "%s", op);
	}
}

/* swarm's nodes, each its fastest of runs runs, summed per op (a conv's kernel size named:
 * conv2d 3x3 dw). */
static int ob_profile_swarm(struct ob_model *md, uint32_t rows, int runs,
			    struct bench_onnx_batch *b)
{
	uint32_t n = swarm_graph_nodes(md->g);
	/* each node's fastest of runs runs: the machine's noise only ever adds */
	uint64_t *ns = calloc(n ? 2 * (size_t)n : 2, sizeof *ns), *one = ns + n;
	if (!ns)
		return -ENOMEM;
	int rc = 0;
	for (int r = 0; r < runs && rc == 0; r++) {
		memset(one, 0, n * sizeof *one);
		swarm_graph_profile(md->g, one);
		rc = ob_run(md, rows);
		swarm_graph_profile(md->g, NULL);
		for (uint32_t k = 0; k < n; k++)
			ns[k] = r == 0 || one[k] < ns[k] ? one[k] : ns[k];
	}
	runs = 1;
	struct bench_onnx_op all[SWARM_OP_COUNT + 64];
	int n_all = 0;
	for (uint32_t k = 0; k < n; k++) {
		const struct swarm_node *nd = swarm_graph_node(md->g, k);
		char name[32];
		ob_node_name(nd, name, sizeof name);
		ob_op_add(all, &n_all, (int)(sizeof all / sizeof *all), name, (double)ns[k] / runs,
			  ob_flops(nd));
	}
	const char *prof = getenv("SWARM_BENCH_PROFILE");
	for (uint32_t k = 0; prof && prof[0] == '2' && k < n; k++) { /* every node */
		const struct swarm_node *nd = swarm_graph_node(md->g, k);
		const struct swarm_tensor *x = nd->in[0], *o = nd->out;
		const double flops = ob_flops(nd);
		char name[32];
		ob_node_name(nd, name, sizeof name);
		fprintf(stderr,
			"swarm-bench: node %3u %-20s in [%lld %lld %lld %lld] out [%lld %lld %lld "
			"%lld] %8.3f ms %6.2f GFLOP/s%s%s\n",
			k, name, (long long)x->shape[0], (long long)(x->ndim > 1 ? x->shape[1] : 0),
			(long long)(x->ndim > 2 ? x->shape[2] : 0),
			(long long)(x->ndim > 3 ? x->shape[3] : 0), (long long)o->shape[0],
			(long long)(o->ndim > 1 ? o->shape[1] : 0),
			(long long)(o->ndim > 2 ? o->shape[2] : 0),
			(long long)(o->ndim > 3 ? o->shape[3] : 0), (double)ns[k] / runs / 1e6,
			flops / ((double)ns[k] / runs + 1), nd->p.act ? " then " : "",
			nd->p.act ? swarm_op_info(nd->p.act)->name : "");
	}
	free(ns);
	if (prof) { /* every op type, for whoever tunes the kernels */
		qsort(all, (size_t)n_all, sizeof *all, ob_op_cmp);
		for (int i = 0; i < n_all; i++)
			fprintf(stderr, "swarm-bench: profile b%u: %-24s %10.3f ms %7.2f GFLOP/s\n",
				rows, all[i].name, all[i].ns / 1e6,
				all[i].ns > 0 ? all[i].flops / all[i].ns : 0.0);
	}
	ob_top(all, n_all, b->swarm_ops, &b->n_swarm_ops);
	return rc;
}

/* "prof OP:NS OP:NS ..." from the runner. */
static int ob_profile_ort(struct ob_child *c, uint32_t rows, int runs, struct bench_onnx_batch *b)
{
	char cmd[64];
	snprintf(cmd, sizeof cmd, "prof %u %d\n", rows, runs);
	if (ob_ask(c, cmd) || strncmp(c->line, "prof", 4) != 0)
		return -EPROTO;
	struct bench_onnx_op all[SWARM_OP_COUNT + 64];
	int n_all = 0;
	char *save = NULL;
	for (char *t = strtok_r(c->line + 4, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *colon = strrchr(t, ':');
		if (!colon)
			continue;
		*colon = 0;
		ob_op_add(all, &n_all, (int)(sizeof all / sizeof *all), t, atof(colon + 1), 0.0);
	}
	ob_top(all, n_all, b->ort_ops, &b->n_ort_ops);
	return 0;
}

/* ---- the machine's GEMM peak --------------------------------------------------------------- */

void bench_onnx_gemm_peak(double *swarm_gflops, double *openblas_gflops)
{
	enum {
		M = 192,
		N = 1024,
		K = 1024,
		TRIES = 12
	};
	*swarm_gflops = *openblas_gflops = 0;
	float *a = aligned_alloc(64, (size_t)M * K * sizeof(float));
	float *w = aligned_alloc(64, (size_t)N * K * sizeof(float));
	float *c = aligned_alloc(64, (size_t)M * N * sizeof(float));
	float *bp = aligned_alloc(64, swarm_gemm_packed_floats(K, N) * sizeof(float));
	if (!a || !w || !c || !bp)
		goto out;
	for (size_t i = 0; i < (size_t)M * K; i++)
		a[i] = (float)(i % 17) * 0.01f - 0.08f;
	for (size_t i = 0; i < (size_t)N * K; i++)
		w[i] = (float)(i % 13) * 0.01f - 0.06f;
	swarm_gemm_pack_wt(bp, w, N, K, K);
	openblas_set_num_threads(1);
	const double flops = 2.0 * M * N * K;
	uint64_t best_s = UINT64_MAX, best_o = UINT64_MAX;
	for (int t = 0; t < TRIES; t++) { /* interleaved: the noise falls on both */
		uint64_t t0 = swarm_now_ns();
		swarm_gemm(M, N, K, 1.0f, a, K, bp, c, N, NULL, NULL, SWARM_OP_IDENTITY, NULL, 1);
		uint64_t t1 = swarm_now_ns();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, w, K,
			    0.0f, c, N);
		uint64_t t2 = swarm_now_ns();
		best_s = t1 - t0 < best_s ? t1 - t0 : best_s;
		best_o = t2 - t1 < best_o ? t2 - t1 : best_o;
	}
	*swarm_gflops = flops / (double)best_s;
	*openblas_gflops = flops / (double)best_o;
out:
	free(a);
	free(w);
	free(c);
	free(bp);
}

/* ---- the measurement ------------------------------------------------------------------------ */

static int ob_batch(struct ob_model *md, struct ob_child *c, const struct bench_onnx_opts *o,
		    uint32_t rows, const char *tmpdir, struct bench_onnx_batch *b)
{
	char cmd[4200];
	int rc;
	b->rows = rows;
	/* correctness first: one run each, every output compared */
	if ((rc = ob_run(md, rows)) != 0) {
		fprintf(stderr, "swarm-bench: %s at %u rows: %s\n", o->name, rows,
			swarm_strerror(rc));
		return rc;
	}
	snprintf(cmd, sizeof cmd, "save %u %s/out\n", rows, tmpdir);
	if (ob_ask(c, cmd) || strcmp(c->line, "ok") != 0) {
		fprintf(stderr, "swarm-bench: ONNX Runtime on %s: %s\n", o->name, c->line);
		return -EPROTO;
	}
	snprintf(cmd, sizeof cmd, "%s/out", tmpdir);
	if ((rc = ob_compare(md, rows, cmd, &b->rel_err)) != 0)
		return rc;
	/* a warm-up run each to size the blocks */
	uint64_t t0 = swarm_now_ns();
	if ((rc = ob_run(md, rows)) != 0)
		return rc;
	double one = (double)(swarm_now_ns() - t0);
	int per_block = (int)(o->seconds * 1e9 / 2 / OB_ROUNDS / (one > 1 ? one : 1));
	if (per_block < 1)
		per_block = 1;
	if (per_block * OB_ROUNDS > OB_MAX_ITERS)
		per_block = OB_MAX_ITERS / OB_ROUNDS;
	uint64_t *sw = calloc(OB_MAX_ITERS, sizeof *sw), *ort = calloc(OB_MAX_ITERS, sizeof *ort);
	size_t n_sw = 0, n_ort = 0;
	rc = sw && ort ? 0 : -ENOMEM;
	for (int round = 0; rc == 0 && round < OB_ROUNDS; round++) {
		for (int i = 0; rc == 0 && i < per_block; i++) {
			t0 = swarm_now_ns();
			rc = ob_run(md, rows);
			sw[n_sw++] = swarm_now_ns() - t0;
		}
		snprintf(cmd, sizeof cmd, "run %u %d\n", rows, per_block);
		if (rc == 0 && (ob_ask(c, cmd) || strncmp(c->line, "ns ", 3) != 0)) {
			fprintf(stderr, "swarm-bench: ONNX Runtime on %s: %s\n", o->name, c->line);
			rc = -EPROTO;
		}
		char *p = c->line + 3;
		while (rc == 0 && *p && n_ort < OB_MAX_ITERS) {
			char *e;
			unsigned long long v = strtoull(p, &e, 10);
			if (e == p)
				break;
			ort[n_ort++] = v;
			p = e;
		}
	}
	if (rc == 0) {
		b->iters = n_sw < n_ort ? n_sw : n_ort;
		b->swarm = bench_model_stats_of(sw, n_sw);
		b->ort = bench_model_stats_of(ort, n_ort);
		int runs = 3;
		if (o->profile)
			rc = ob_profile_swarm(md, rows, runs, b);
		if (o->profile && rc == 0 && ob_profile_ort(c, rows, runs, b) != 0)
			b->n_ort_ops = 0; /* a profile that fails leaves the timing standing */
	}
	free(sw);
	free(ort);
	return rc;
}

int bench_onnx_compute(const struct bench_onnx_opts *o, struct bench_onnx_result *out)
{
	memset(out, 0, sizeof *out);
	uint32_t max_rows = 1;
	for (int i = 0; i < o->n_rows; i++)
		if (o->rows[i] > max_rows)
			max_rows = o->rows[i];
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.onnx", o->dir, o->name);
	if (!ob_exists(path)) {
		out->skipped = true;
		ob_missing(out->why, sizeof out->why, path, o->dir);
		return 0;
	}
	struct ob_model md;
	int rc = ob_model_open(&md, o, max_rows, out->why, sizeof out->why);
	if (rc) {
		ob_model_close(&md);
		out->skipped = rc > 0;
		return rc > 0 ? 0 : rc;
	}
	out->nodes = swarm_graph_nodes(md.g);
	/* the runner's arguments: the model, its threads, then NAME=FILE per input */
	char *args[2 + SWARM_MAX_TENSORS];
	char argbuf[2 + SWARM_MAX_TENSORS][4200];
	snprintf(argbuf[0], sizeof argbuf[0], "%s", path);
	snprintf(argbuf[1], sizeof argbuf[1], "--threads=%d", o->threads > 1 ? o->threads : 1);
	args[0] = argbuf[0];
	args[1] = argbuf[1];
	for (uint32_t i = 0; i < md.m->n_inputs; i++) {
		snprintf(argbuf[2 + i], sizeof argbuf[2 + i], "%s=%s/%s.%s.npy",
			 md.m->inputs[i].name, o->dir, o->name, md.m->inputs[i].name);
		args[2 + i] = argbuf[2 + i];
	}
	char tmpdir[] = "/tmp/swarm-bench-onnx.XXXXXX";
	if (!mkdtemp(tmpdir)) {
		ob_model_close(&md);
		return -errno;
	}
	struct ob_child c;
	rc = ob_child_start(&c, o->runner, args, 2 + (int)md.m->n_inputs, out->ort_version,
			    sizeof out->ort_version, out->why, sizeof out->why);
	if (rc) {
		out->skipped = true;
		rc = 0;
	}
	for (int i = 0; !out->skipped && rc == 0 && i < o->n_rows; i++) {
		rc = ob_batch(&md, &c, o, o->rows[i], tmpdir, &out->b[i]);
		out->n_batches = i + 1;
	}
	ob_child_stop(&c);
	rmdir(tmpdir);
	ob_model_close(&md);
	return rc;
}
