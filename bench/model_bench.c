/* model_bench.c: swarm-bench's cases on a real model (model_bench.h). The ranker of
 * tools/make-ranker-model.py is made here byte for byte (the same LCG, bounds and order), so
 * the benchmark needs no Python; each case publishes it into a registry of its own, serves it
 * from a swarmd of its own and measures it against the same graph run in this process. */
#include "bench/model_bench.h"
#include "bench/daemon.h"

#include <swarm/swarm.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "registry/manifest.h"
#include "registry/registry.h"
#include "registry/safetensors.h"

/* ---- the ranker: tools/make-ranker-model.py's model with its defaults -------------------- */

#define RK_DENSE 13
#define RK_SPARSE 3
#define RK_BAG 8
#define RK_DIM 16
#define RK_HIDDEN 64
#define RK_VOCAB 10000
#define RK_SEED 1
#define RK_MAX_ROWS 64
#define RK_SLOTS 8
#define RK_N_TENSORS (RK_SPARSE + 8)
#define RK_N_INPUTS (1 + RK_SPARSE)

#define MB_INPUT_SEED 12345
#define MB_SETS 512 /* distinct input rows, used in turn */
#define MB_WAIT_NS (10ll * 1000 * 1000 * 1000)
#define MB_SPIN_FOREVER_NS 1000000000ull /* the overhead client spins 1 s before it sleeps */
#define MB_DAEMON_SPIN_US 1000u          /* swarmd --spin-us of the overhead case */
#define MB_OVERHEAD_ITERS 100000
#define MB_OVERHEAD_BLOCK 5000 /* in-process and swarm alternate in blocks of this many */
#define MB_BLOCK_WARMUP 100    /* unmeasured calls before each block */
#define MB_LOAD_SECONDS 1.0    /* per round and mode (half with quick, in one round) */
#define MB_LOAD_ROUNDS 3
#define MB_SAMPLES_PER_CLIENT (1u << 16) /* latencies kept per client and run */
#define MB_SAMPLES_PER_MODE (1u << 20)   /* and per mode, over its rounds */

/* The deploys of the batching case: max_batch 1, then 256 with these queue delays. */
static const uint32_t mb_delays_us[] = { 0, 50, 200 };
_Static_assert(sizeof(mb_delays_us) / sizeof(mb_delays_us[0]) <= BENCH_MODEL_MAX_DELAYS,
	       "more delays than bench_model_batching holds");

/* Knuth's MMIX LCG; each draw is u = the top 24 bits / 2^24, exact in a float. */
struct rk_lcg {
	uint64_t state;
};

static void rk_lcg_init(struct rk_lcg *g, uint64_t seed)
{
	g->state = seed ^ 0x9E3779B97F4A7C15ull;
}

static uint64_t rk_lcg_next(struct rk_lcg *g)
{
	g->state = g->state * 6364136223846793005ull + 1442695040888963407ull;
	return g->state;
}

/* (2u - 1) * bound in double, as the Python tool computes it before packing to f32. */
static double rk_uniform(struct rk_lcg *g, double bound)
{
	double u = (double)(rk_lcg_next(g) >> 40) / (double)(1u << 24);

	return (2.0 * u - 1.0) * bound;
}

struct rk_tensor {
	char name[16];
	uint32_t ndim;
	int64_t shape[2];
	double bound;
};

/* The tensors in the order they are drawn and written (ranker_tensors() of the tool). */
static void rk_tensors(struct rk_tensor t[RK_N_TENSORS])
{
	static const struct {
		const char *name;
		int64_t out, in;
	} lin[] = { { "bot0", RK_HIDDEN, RK_DENSE },
		    { "bot1", RK_DIM, RK_HIDDEN },
		    { "top0", RK_HIDDEN, RK_DIM * (1 + RK_SPARSE) },
		    { "top1", 1, RK_HIDDEN } };
	int k = 0;

	for (int i = 0; i < RK_SPARSE; i++) {
		t[k] = (struct rk_tensor){ .ndim = 2,
					   .shape = { RK_VOCAB, RK_DIM },
					   .bound = sqrt(1.0 / RK_VOCAB) };
		snprintf(t[k++].name, sizeof t[0].name, "emb%d", i);
	}
	for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
		t[k] = (struct rk_tensor){ .ndim = 2,
					   .shape = { lin[i].out, lin[i].in },
					   .bound = sqrt(6.0 / (double)lin[i].in) };
		snprintf(t[k++].name, sizeof t[0].name, "%s_w", lin[i].name);
		t[k] = (struct rk_tensor){ .ndim = 1,
					   .shape = { lin[i].out },
					   .bound = 1.0 / sqrt((double)lin[i].in) };
		snprintf(t[k++].name, sizeof t[0].name, "%s_b", lin[i].name);
	}
}

/* Writes the weights file of seed RK_SEED to path. Returns 0 or -errno. */
static int rk_weights_write(const char *path)
{
	struct rk_tensor t[RK_N_TENSORS];
	struct swarm_st_write_tensor w[RK_N_TENSORS] = { 0 };
	float *data[RK_N_TENSORS] = { 0 };
	struct rk_lcg g;
	int rc = 0;

	rk_tensors(t);
	rk_lcg_init(&g, RK_SEED);
	for (int i = 0; i < RK_N_TENSORS; i++) {
		size_t n = (size_t)t[i].shape[0] * (t[i].ndim == 2 ? (size_t)t[i].shape[1] : 1);

		data[i] = malloc(n * sizeof(float));
		if (!data[i]) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < n; j++)
			data[i][j] = (float)rk_uniform(&g, t[i].bound);
		w[i] = (struct swarm_st_write_tensor){ .name = t[i].name,
						       .dtype = SWARM_ST_F32,
						       .ndim = t[i].ndim,
						       .shape = t[i].shape,
						       .data = data[i] };
	}
	rc = swarm_st_write(path, w, RK_N_TENSORS);
	if (rc)
		fprintf(stderr, "swarm-bench: writing %s: %s\n", path, strerror(-rc));
out:
	for (int i = 0; i < RK_N_TENSORS; i++)
		free(data[i]);
	return rc;
}

static int rk_appendf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *pos)
		return -ENOSPC;
	*pos += (size_t)n;
	return 0;
}

/* The manifest (ranker.json of the tool) with deploy {max_rows 64, slots 8, max_batch,
 * max_queue_delay_us} into buf. Returns 0 or -ENOSPC. */
static int rk_manifest(char *buf, size_t len, uint32_t max_batch, uint32_t delay_us)
{
	struct rk_tensor t[RK_N_TENSORS];
	size_t pos = 0;
	int rc;

	rk_tensors(t);
	rc = rk_appendf(
		buf, len, &pos,
		"{\"format\": 1,\n"
		" \"inputs\": [{\"name\": \"dense\", \"dtype\": \"f32\", \"shape\": [-1, %d]}",
		RK_DENSE);
	for (int i = 0; rc == 0 && i < RK_SPARSE; i++)
		rc = rk_appendf(
			buf, len, &pos,
			",\n  {\"name\": \"sparse%d\", \"dtype\": \"i64\", \"shape\": [-1, %d]}", i,
			RK_BAG);
	if (rc == 0)
		rc = rk_appendf(buf, len, &pos,
				"],\n \"outputs\": [{\"name\": \"score\", \"dtype\": \"f32\", "
				"\"shape\": [-1, 1]}],\n \"graph\": {\"nodes\": [\n");
	for (int i = 0; rc == 0 && i < RK_SPARSE; i++)
		rc = rk_appendf(
			buf, len, &pos,
			"  {\"op\": \"embedding_bag\", \"inputs\": [\"emb%d\", \"sparse%d\"], "
			"\"output\": \"e%d\", \"mode\": \"sum\"},\n",
			i, i, i);
	if (rc == 0)
		rc = rk_appendf(
			buf, len, &pos,
			"  {\"op\": \"linear\", \"inputs\": [\"dense\", \"bot0_w\", \"bot0_b\"], "
			"\"output\": \"bot0\", \"act\": \"relu\"},\n"
			"  {\"op\": \"linear\", \"inputs\": [\"bot0\", \"bot1_w\", \"bot1_b\"], "
			"\"output\": \"bot1\", \"act\": \"relu\"},\n"
			"  {\"op\": \"concat\", \"inputs\": [\"bot1\", \"e0\", \"e1\", \"e2\"], "
			"\"output\": \"cat\"},\n"
			"  {\"op\": \"linear\", \"inputs\": [\"cat\", \"top0_w\", \"top0_b\"], "
			"\"output\": \"top0\", \"act\": \"relu\"},\n"
			"  {\"op\": \"linear\", \"inputs\": [\"top0\", \"top1_w\", \"top1_b\"], "
			"\"output\": \"top1\"},\n"
			"  {\"op\": \"sigmoid\", \"inputs\": [\"top1\"], \"output\": \"score\"}]},\n"
			" \"weights\": [");
	for (int i = 0; rc == 0 && i < RK_N_TENSORS; i++) {
		if (t[i].ndim == 2)
			rc = rk_appendf(
				buf, len, &pos,
				"%s{\"name\": \"%s\", \"dtype\": \"f32\", \"shape\": [%lld, "
				"%lld]}",
				i ? ",\n  " : "", t[i].name, (long long)t[i].shape[0],
				(long long)t[i].shape[1]);
		else
			rc = rk_appendf(
				buf, len, &pos,
				"%s{\"name\": \"%s\", \"dtype\": \"f32\", \"shape\": [%lld]}",
				i ? ",\n  " : "", t[i].name, (long long)t[i].shape[0]);
	}
	if (rc == 0)
		rc = rk_appendf(buf, len, &pos,
				"],\n \"deploy\": {\"max_rows\": %d, \"slots\": %d, "
				"\"max_batch\": %u, \"max_queue_delay_us\": %u}}\n",
				RK_MAX_ROWS, RK_SLOTS, max_batch, delay_us);
	return rc;
}

/* ---- the environment: temporary directory, registry, swarmd ------------------------------ */

struct mb_env {
	const struct bench_model_opts *o;
	char dir[PATH_MAX - 64]; /* "" until made */
	char reg[PATH_MAX];
	char weights[PATH_MAX];
	char sock[108];             /* sizeof(sun_path) */
	struct bench_swarmd swarmd; /* its log lives in dir */
};

static int mb_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "swarm-bench: could not remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Makes the directory, writes the weights and an empty registry. */
static int mb_env_init(struct mb_env *e, const struct bench_model_opts *o)
{
	const char *tmp = getenv("TMPDIR");
	char err[512];
	int rc;

	memset(e, 0, sizeof *e);
	e->o = o;
	snprintf(e->dir, sizeof e->dir, "%s/swarm-bench-model.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(e->dir)) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: mkdtemp %s: %s\n", e->dir, strerror(-rc));
		e->dir[0] = '\0';
		return rc;
	}
	snprintf(e->reg, sizeof e->reg, "%s/registry", e->dir);
	snprintf(e->weights, sizeof e->weights, "%s/ranker.safetensors", e->dir);
	snprintf(e->swarmd.log, sizeof e->swarmd.log, "%s/swarmd.log", e->dir);
	if (snprintf(e->sock, sizeof e->sock, "%s/swarmd.sock", e->dir) >= (int)sizeof e->sock) {
		fprintf(stderr, "swarm-bench: socket path in %s too long\n", e->dir);
		return -ENAMETOOLONG;
	}
	rc = rk_weights_write(e->weights);
	if (rc)
		return rc;
	rc = swarm_registry_init(e->reg, err, sizeof err);
	if (rc)
		fprintf(stderr, "swarm-bench: registry init %s: %s\n", e->reg, err);
	return rc;
}

/* Writes the manifest of (max_batch, delay_us) into buf and publishes the weights with it as
 * model name. */
static int mb_publish(struct mb_env *e, const char *name, uint32_t max_batch, uint32_t delay_us,
		      char *buf, size_t len)
{
	char path[PATH_MAX + 64], err[512];
	uint32_t version = 0;
	FILE *f;
	int rc = rk_manifest(buf, len, max_batch, delay_us);

	if (rc)
		return rc;
	snprintf(path, sizeof path, "%s/%s.json", e->dir, name);
	f = fopen(path, "we");
	if (!f || fputs(buf, f) < 0 || fclose(f) != 0) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: writing %s: %s\n", path, strerror(-rc));
		return rc;
	}
	rc = swarm_registry_publish(e->reg, name, e->weights, path, NULL, 0, 1, &version, err,
				    sizeof err);
	if (rc)
		fprintf(stderr, "swarm-bench: publish %s: %s\n", name, err);
	return rc;
}

/* Starts swarmd --devices devices --registry on the environment's registry and waits until
 * it takes connections. */
static int mb_swarmd_start(struct mb_env *e, const char *devices, unsigned spin_us)
{
	return bench_swarmd_start(&e->swarmd, e->o->exe_dir, e->sock, devices, spin_us, e->reg,
				  NULL);
}

/* Stops swarmd and removes the directory. Returns swarmd's stop status. */
static int mb_env_fini(struct mb_env *e)
{
	int rc = bench_swarmd_stop(&e->swarmd);

	if (e->dir[0])
		nftw(e->dir, mb_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

static struct bench_model_stats mb_stats(uint64_t *v, size_t n);

/* ---- inputs and the in-process graph ---------------------------------------------------- */

/* MB_SETS input rows and the in-process score of each (at batch 1). */
struct mb_inputs {
	float dense[MB_SETS][RK_DENSE];
	int64_t sparse[RK_SPARSE][MB_SETS][RK_BAG];
	float ref[MB_SETS];
};

static void mb_inputs_make(struct mb_inputs *in)
{
	struct rk_lcg g;

	rk_lcg_init(&g, MB_INPUT_SEED);
	for (int s = 0; s < MB_SETS; s++) {
		for (int j = 0; j < RK_DENSE; j++)
			in->dense[s][j] = (float)rk_uniform(&g, 1.0);
		for (int f = 0; f < RK_SPARSE; f++)
			for (int j = 0; j < RK_BAG; j++)
				in->sparse[f][s][j] = (int64_t)((rk_lcg_next(&g) >> 33) % RK_VOCAB);
	}
}

/* The ranker's graph on a one-thread CPU device, over the same weights file. */
struct mb_local {
	struct swarm_device *dev;
	struct swarm_weights w;
	struct swarm_graph *g;
	void *in[RK_N_INPUTS];
	void *out;
	bool loaded;
};

static const size_t mb_in_row[RK_N_INPUTS] = { RK_DENSE * sizeof(float), RK_BAG * sizeof(int64_t),
					       RK_BAG * sizeof(int64_t), RK_BAG * sizeof(int64_t) };
_Static_assert(RK_N_INPUTS == 4, "mb_in_row lists four inputs");
_Static_assert(BENCH_MODEL_CLIENTS <= RK_MAX_ROWS, "the local buffers hold RK_MAX_ROWS rows");

static void mb_local_close(struct mb_local *l)
{
	swarm_graph_free(l->g);
	for (int i = 0; i < RK_N_INPUTS; i++)
		if (l->in[i])
			l->dev->i->free(l->dev, l->in[i]);
	if (l->out)
		l->dev->i->free(l->dev, l->out);
	if (l->loaded)
		swarm_weights_unload(&l->w);
	if (l->dev)
		l->dev->i->destroy(l->dev);
	memset(l, 0, sizeof *l);
}

/* Parses manifest, loads the weights file and builds the graph for the batch the worker plans
 * (the larger of max_rows and max_batch). */
static int mb_local_open(struct mb_local *l, const char *weights, const char *manifest)
{
	struct swarm_manifest *m = calloc(1, sizeof *m);
	char err[512];
	uint32_t rows;
	int rc;

	memset(l, 0, sizeof *l);
	if (!m)
		return -ENOMEM;
	rc = swarm_manifest_parse(manifest, strlen(manifest), m, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: the ranker manifest: %s\n", err);
		goto out;
	}
	rc = swarm_device_cpu_create(1, &l->dev);
	if (rc) {
		fprintf(stderr, "swarm-bench: cpu device: %s\n", strerror(-rc));
		goto out;
	}
	rc = swarm_weights_load(weights, 0, NULL, 0, &l->w, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: load %s: %s\n", weights, err);
		goto out;
	}
	l->loaded = true;
	rows = m->deploy.max_rows > m->deploy.max_batch ? m->deploy.max_rows : m->deploy.max_batch;
	rc = swarm_graph_from_weights(m, l->w.map, &l->w.st, l->dev, rows, &l->g, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: the ranker graph: %s\n", err);
		goto out;
	}
	for (int i = 0; i < RK_N_INPUTS && rc == 0; i++)
		if (!(l->in[i] = l->dev->i->alloc(l->dev, RK_MAX_ROWS * mb_in_row[i])))
			rc = -ENOMEM;
	if (rc == 0 && !(l->out = l->dev->i->alloc(l->dev, RK_MAX_ROWS * sizeof(float))))
		rc = -ENOMEM;
out:
	free(m);
	if (rc)
		mb_local_close(l);
	return rc;
}

/* Writes set s of in into the request's four inputs (the slot's, or the local buffers). */
static inline void mb_fill(void *const dst[RK_N_INPUTS], const struct mb_inputs *in, int s)
{
	memcpy(dst[0], in->dense[s], sizeof in->dense[s]);
	for (int f = 0; f < RK_SPARSE; f++)
		memcpy(dst[1 + f], in->sparse[f][s], sizeof in->sparse[f][s]);
}

/* One in-process call on set s: copy in, run, read the score. */
static inline int mb_local_call(struct mb_local *l, const struct mb_inputs *in, int s, float *score)
{
	int rc;

	mb_fill(l->in, in, s);
	rc = swarm_graph_run(l->g, 1, (const void *const *)l->in, &l->out);
	memcpy(score, l->out, sizeof *score);
	return rc;
}

/* The in-process graph's time per row at batches of rows rows (consecutive sets), for about
 * seconds: each batch's ns divided by rows, as percentiles over batches. */
static int mb_local_per_row(struct mb_local *l, const struct mb_inputs *in, uint32_t rows,
			    double seconds, struct bench_model_stats *out)
{
	enum {
		MAX_RUNS = 20000
	};
	uint64_t *ns = calloc(MAX_RUNS, sizeof *ns), end;
	size_t n = 0;
	int rc = 0;

	if (!ns)
		return -ENOMEM;
	end = swarm_now_ns() + (uint64_t)(seconds * 1e9);
	for (size_t i = 0; rc == 0 && n < MAX_RUNS && swarm_now_ns() < end; i++) {
		void *dst[RK_N_INPUTS];
		uint64_t t0;

		for (uint32_t r = 0; r < rows; r++) {
			for (int k = 0; k < RK_N_INPUTS; k++)
				dst[k] = (char *)l->in[k] + r * mb_in_row[k];
			mb_fill(dst, in, (int)((i * rows + r) % MB_SETS));
		}
		t0 = swarm_now_ns();
		rc = swarm_graph_run(l->g, rows, (const void *const *)l->in, &l->out);
		if (i >= 100) /* warm-up */
			ns[n++] = (swarm_now_ns() - t0) / rows;
	}
	*out = mb_stats(ns, n);
	free(ns);
	return rc;
}

/* 1 when a score through swarm matches the in-process one: bit-equal at batch 1 on the same
 * kernels, within a float rounding or two when batched (other GEMM shapes). */
static bool mb_close(float got, float want)
{
	return fabsf(got - want) <= 1e-6f + 1e-5f * fabsf(want);
}

/* ---- statistics ---------------------------------------------------------------------------- */

static int mb_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static size_t mb_rank(size_t n, unsigned permille)
{
	size_t rank = (n * permille + 999) / 1000;

	return rank == 0 ? 0 : rank - 1;
}

static struct bench_model_stats mb_stats(uint64_t *v, size_t n)
{
	if (n == 0)
		return (struct bench_model_stats){ 0 };
	qsort(v, n, sizeof *v, mb_cmp_u64);
	return (struct bench_model_stats){ (double)v[mb_rank(n, 500)], (double)v[mb_rank(n, 990)],
					   (double)v[mb_rank(n, 999)] };
}

/* ---- a request through swarm ----------------------------------------------------------- */

/* One request of one row on set s; *score gets the output. */
static int mb_swarm_call(swarm_session *s, const struct mb_inputs *in, int set, float *score)
{
	swarm_request *r;
	void *dst[RK_N_INPUTS];
	int rc = swarm_request_alloc(s, 1, &r);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < RK_N_INPUTS; i++)
		dst[i] = swarm_request_input(r, i);
	mb_fill(dst, in, set);
	rc = swarm_request_submit(r, 0);
	if (rc == 0)
		rc = swarm_request_wait(r, MB_WAIT_NS);
	if (rc == 0)
		memcpy(score, swarm_request_output(r, 0), sizeof *score);
	if (rc != -ETIMEDOUT || swarm_request_poll(r) != -EAGAIN)
		swarm_request_release(r);
	return rc;
}

/* Opens a session on model and checks that it is the ranker's signature. */
static int mb_session_open(swarm_client *c, const char *model, uint32_t slots, uint64_t spin_ns,
			   swarm_session **out)
{
	const swarm_session_opts opts = { .slots = slots, .queue_depth = slots, .max_rows = 1 };
	const swarm_tensor_spec *sp;
	swarm_session *s;
	int rc = swarm_session_open(c, model, 0, &opts, &s);

	if (rc) {
		fprintf(stderr, "swarm-bench: open a session on %s: %s: %s\n", model,
			swarm_strerror(rc), swarm_client_error(c));
		return rc;
	}
	bool ok = swarm_session_num_inputs(s) == RK_N_INPUTS && swarm_session_num_outputs(s) == 1;
	for (uint32_t i = 0; ok && i < RK_N_INPUTS; i++)
		ok = (sp = swarm_session_input_spec(s, i)) && sp->row_bytes == mb_in_row[i];
	if (ok)
		ok = (sp = swarm_session_output_spec(s, 0)) && sp->row_bytes == sizeof(float);
	if (!ok) {
		fprintf(stderr, "swarm-bench: model %s does not have the ranker's tensors\n",
			model);
		swarm_session_close(s);
		return -EPROTO;
	}
	swarm_session_set_spin(s, spin_ns);
	*out = s;
	return 0;
}

/* 1 when cpulist ("0-3,8") names cpu. */
static bool mb_cpulist_has(const char *list, int cpu)
{
	while (*list) {
		char *end;
		long lo = strtol(list, &end, 10), hi = lo;

		if (end == list)
			return false;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (cpu >= lo && cpu <= hi)
			return true;
		if (*end && *end != ',')
			return false;
		list = *end ? end + 1 : end;
	}
	return false;
}

/* ---- overhead ------------------------------------------------------------------------------ */

/* Parses a cpulist ("0-3,8") into set. Returns 0 or -EINVAL. */
static int mb_cpulist_parse(const char *list, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*list) {
		char *end;
		long lo = strtol(list, &end, 10), hi = lo;

		if (end == list || lo < 0)
			return -EINVAL;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (hi < lo || hi >= CPU_SETSIZE || (*end && *end != ','))
			return -EINVAL;
		for (long c = lo; c <= hi; c++)
			CPU_SET((int)c, set);
		list = *end ? end + 1 : end;
	}
	return CPU_COUNT(set) ? 0 : -EINVAL;
}

/* Runs n calls of one side starting at call number first (set first % MB_SETS); samples go to
 * ns (when not NULL), scores are checked against in->ref. */
static int mb_overhead_block(struct mb_local *l, swarm_session *s, const struct mb_inputs *in,
			     size_t first, size_t n, uint64_t *ns)
{
	for (size_t i = first; i < first + n; i++) {
		int set = (int)(i % MB_SETS);
		float score = 0;
		uint64_t t0 = swarm_now_ns();
		int rc = s ? mb_swarm_call(s, in, set, &score) : mb_local_call(l, in, set, &score);
		uint64_t t1 = swarm_now_ns();

		if (rc) {
			fprintf(stderr, "swarm-bench: overhead: %s call %zu: %s\n",
				s ? "swarm" : "in-process", i, swarm_strerror(rc));
			return rc;
		}
		if (!mb_close(score, in->ref[set])) {
			fprintf(stderr,
				"swarm-bench: overhead: call %zu: swarm gave %.9g, in-process "
				"%.9g\n",
				i, (double)score, (double)in->ref[set]);
			return -EBADMSG;
		}
		if (ns)
			ns[i - first] = t1 - t0;
	}
	return 0;
}

int bench_model_overhead_run(const struct bench_model_opts *o, struct bench_model_overhead *out)
{
	const size_t iters = o->quick ? MB_OVERHEAD_ITERS / 10 : MB_OVERHEAD_ITERS;
	const size_t block = o->quick ? MB_OVERHEAD_BLOCK / 5 : MB_OVERHEAD_BLOCK;
	const size_t warmup = block;
	struct mb_inputs *in = calloc(1, sizeof *in);
	uint64_t *a = calloc(iters, sizeof *a), *b = calloc(iters, sizeof *b);
	struct mb_local l = { 0 };
	struct mb_env e;
	char manifest[8192];
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc, rc2;

	if (!in || !a || !b) {
		free(in);
		free(a);
		free(b);
		return -ENOMEM;
	}
	fprintf(stderr,
		"swarm-bench: ranker at batch 1, swarm (max_batch 1, spinning) against the same "
		"graph in-process (%zu calls each)\n",
		iters);
	rc = mb_env_init(&e, o);
	if (rc == 0)
		rc = mb_publish(&e, "ranker-b1", 1, 0, manifest, sizeof manifest);
	if (rc == 0)
		rc = mb_local_open(&l, e.weights, manifest);
	if (rc)
		goto out;
	mb_inputs_make(in);
	for (int i = 0; i < MB_SETS && rc == 0; i++)
		rc = mb_local_call(&l, in, i, &in->ref[i]);
	if (rc == 0)
		rc = mb_swarmd_start(&e, o->devices, MB_DAEMON_SPIN_US);
	if (rc == 0 && (rc = swarm_connect(e.sock, &c)) != 0)
		fprintf(stderr, "swarm-bench: connect: %s\n", swarm_strerror(rc));
	if (rc == 0)
		rc = mb_session_open(c, "ranker-b1", 4, MB_SPIN_FOREVER_NS, &s);
	if (rc)
		goto out;
	swarm_session_info info;
	if (swarm_session_info_get(s, &info) == 0 && mb_cpulist_has(info.cpus, sched_getcpu()))
		fprintf(stderr,
			"swarm-bench: warning: the ranker's worker (%s, cpus %s) may share this "
			"benchmark's cpu %d; the overhead case measures time slicing\n",
			info.device_name, info.cpus, sched_getcpu());

	/* The in-process calls run on the worker's cores, so that both sides compute on the
	 * same core and the difference is what swarm adds, not how two cores differ. */
	cpu_set_t mine, theirs;
	bool move = sched_getaffinity(0, sizeof mine, &mine) == 0 &&
		    mb_cpulist_parse(info.cpus, &theirs) == 0;
	snprintf(out->inproc_cpus, sizeof out->inproc_cpus, "%s", move ? info.cpus : "this one");

	/* Warm both up, then alternate blocks so that the machine's noise falls on both. */
	for (size_t done = 0; rc == 0 && done < warmup + iters; done += block) {
		size_t n = warmup + iters - done < block ? warmup + iters - done : block;
		bool keep = done >= warmup;

		/* Past the worker's spin (its cores are then free) and onto them. */
		usleep(2 * MB_DAEMON_SPIN_US);
		if (move)
			sched_setaffinity(0, sizeof theirs, &theirs);
		rc = mb_overhead_block(&l, NULL, in, done + iters, MB_BLOCK_WARMUP, NULL);
		if (rc == 0)
			rc = mb_overhead_block(&l, NULL, in, done, n,
					       keep ? b + done - warmup : NULL);
		if (move)
			sched_setaffinity(0, sizeof mine, &mine);
		if (rc == 0)
			rc = mb_overhead_block(&l, s, in, done + iters, MB_BLOCK_WARMUP, NULL);
		if (rc == 0)
			rc = mb_overhead_block(&l, s, in, done, n, keep ? a + done - warmup : NULL);
	}
	if (rc == 0) {
		out->swarm = mb_stats(a, iters);
		out->inproc = mb_stats(b, iters);
		out->iters = iters;
	}
out:
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	mb_local_close(&l);
	rc2 = mb_env_fini(&e);
	free(in);
	free(a);
	free(b);
	return rc ? rc : rc2;
}

/* ---- batching ------------------------------------------------------------------------------ */

struct mb_load {
	const char *sock, *model;
	const struct mb_inputs *in;
	int *arrived;               /* clients with a session (or a failure), atomic */
	int *go, *measuring, *stop; /* written by the main thread, read by the clients */
};

struct mb_client {
	pthread_t t;
	const struct mb_load *load;
	int index;
	uint64_t *ns; /* MB_SAMPLES_PER_CLIENT */
	size_t n_ns;
	uint64_t requests; /* completed while measuring */
	int error;
};

static void *mb_client_run(void *arg)
{
	struct mb_client *cl = arg;
	const struct mb_load *ld = cl->load;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc = swarm_connect(ld->sock, &c);

	if (rc)
		fprintf(stderr, "swarm-bench: client %d: connect: %s\n", cl->index,
			swarm_strerror(rc));
	else
		/* 16 clients share a core: they sleep at once instead of spinning. */
		rc = mb_session_open(c, ld->model, 2, 0, &s);
	__atomic_add_fetch(ld->arrived, 1, __ATOMIC_RELEASE);
	/* Pairs with the main thread's release store of go, once every client arrived. */
	while (!__atomic_load_n(ld->go, __ATOMIC_ACQUIRE))
		usleep(1000);
	for (size_t i = (size_t)cl->index * 97; rc == 0; i++) {
		int set = (int)(i % MB_SETS);
		float score = 0;
		uint64_t t0, t1;

		/* Pairs with the main thread's release stores of stop and measuring. */
		if (__atomic_load_n(ld->stop, __ATOMIC_ACQUIRE))
			break;
		t0 = swarm_now_ns();
		rc = mb_swarm_call(s, ld->in, set, &score);
		t1 = swarm_now_ns();
		if (rc) {
			fprintf(stderr, "swarm-bench: client %d on %s: request %zu: %s\n",
				cl->index, ld->model, i, swarm_strerror(rc));
			break;
		}
		if (!mb_close(score, ld->in->ref[set])) {
			fprintf(stderr,
				"swarm-bench: client %d on %s: set %d: swarm gave %.9g, "
				"in-process %.9g\n",
				cl->index, ld->model, set, (double)score, (double)ld->in->ref[set]);
			rc = -EBADMSG;
			break;
		}
		if (__atomic_load_n(ld->measuring, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(ld->stop, __ATOMIC_ACQUIRE)) {
			cl->requests++;
			if (cl->n_ns < MB_SAMPLES_PER_CLIENT)
				cl->ns[cl->n_ns++] = t1 - t0;
		}
	}
	cl->error = rc;
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	return NULL;
}

static void mb_sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* CPU time of this process (every thread), in ns. */
static uint64_t mb_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What the runs of one mode add up to. */
struct mb_acc {
	uint64_t requests;
	uint64_t ns;     /* measured time */
	uint64_t cpu_ns; /* this process's cpu time (the clients') in it */
	uint64_t *lat;   /* latencies, MB_SAMPLES_PER_MODE */
	size_t n_lat;
};

/* BENCH_MODEL_CLIENTS clients on model for warm + seconds; adds the measured part to acc.
 * scratch holds BENCH_MODEL_CLIENTS * MB_SAMPLES_PER_CLIENT. */
static int mb_load_run(struct mb_env *e, const char *model, const struct mb_inputs *in, double warm,
		       double seconds, uint64_t *scratch, struct mb_acc *acc)
{
	struct mb_client cl[BENCH_MODEL_CLIENTS] = { 0 };
	int arrived = 0, go = 0, measuring = 0, stop = 0, started = 0, rc = 0;
	struct mb_load ld = { e->sock, model, in, &arrived, &go, &measuring, &stop };
	uint64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;

	for (int i = 0; i < BENCH_MODEL_CLIENTS; i++) {
		cl[i] = (struct mb_client){ .load = &ld,
					    .index = i,
					    .ns = scratch + (size_t)i * MB_SAMPLES_PER_CLIENT };
		rc = -pthread_create(&cl[i].t, NULL, mb_client_run, &cl[i]);
		if (rc) {
			fprintf(stderr, "swarm-bench: cannot start client thread %d: %s\n", i,
				strerror(-rc));
			break;
		}
		started++;
	}
	if (rc)
		__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	/* Pairs with the clients' release increments. */
	while (rc == 0 && __atomic_load_n(&arrived, __ATOMIC_ACQUIRE) < started)
		usleep(1000);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	if (rc == 0) {
		mb_sleep_s(warm);
		/* Pairs with the clients' acquire loads. */
		__atomic_store_n(&measuring, 1, __ATOMIC_RELEASE);
		t0 = swarm_now_ns();
		c0 = mb_cpu_ns();
		mb_sleep_s(seconds);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	t1 = swarm_now_ns();
	c1 = mb_cpu_ns();
	for (int i = 0; i < started; i++) {
		size_t room = MB_SAMPLES_PER_MODE - acc->n_lat;
		size_t n = cl[i].n_ns < room ? cl[i].n_ns : room;

		pthread_join(cl[i].t, NULL);
		if (cl[i].error && !rc)
			rc = cl[i].error;
		acc->requests += cl[i].requests;
		memcpy(acc->lat + acc->n_lat, cl[i].ns, n * sizeof *acc->lat);
		acc->n_lat += n;
	}
	acc->ns += t1 - t0;
	acc->cpu_ns += c1 - c0;
	return rc;
}

static void mb_acc_result(struct mb_acc *acc, struct bench_model_load *out)
{
	out->requests = acc->requests;
	out->rps = acc->ns ? (double)acc->requests / ((double)acc->ns / 1e9) : 0;
	out->lat = mb_stats(acc->lat, acc->n_lat);
	out->client_cpus = acc->ns ? (double)acc->cpu_ns / (double)acc->ns : 0;
}

int bench_model_batching_run(const struct bench_model_opts *o, struct bench_model_batching *out)
{
	const int rounds = o->quick ? 1 : MB_LOAD_ROUNDS;
	const double seconds = o->quick ? MB_LOAD_SECONDS / 2 : MB_LOAD_SECONDS;
	const double warm = seconds / 10;
	const int n_delays = (int)(sizeof mb_delays_us / sizeof mb_delays_us[0]);
	const int n_modes = 1 + n_delays; /* max_batch 1, then each delay */
	struct mb_inputs *in = calloc(1, sizeof *in);
	uint64_t *scratch =
		calloc((size_t)BENCH_MODEL_CLIENTS * MB_SAMPLES_PER_CLIENT, sizeof *scratch);
	struct mb_acc acc[1 + BENCH_MODEL_MAX_DELAYS] = { 0 };
	struct mb_local l = { 0 };
	struct mb_env e;
	char manifest[8192], name[1 + BENCH_MODEL_MAX_DELAYS][SWARM_NAME_MAX];
	int rc = 0, rc2;

	for (int m = 0; m < n_modes; m++)
		if (!(acc[m].lat = calloc(MB_SAMPLES_PER_MODE, sizeof *acc[m].lat)))
			rc = -ENOMEM;
	if (!in || !scratch || rc) {
		rc = -ENOMEM;
		goto out_free;
	}
	memset(out, 0, sizeof *out);
	out->seconds = seconds * rounds;
	fprintf(stderr,
		"swarm-bench: ranker, %d clients of one row, %d round%s of %.1f s per mode: "
		"max_batch 1, then 256 with queue delays",
		BENCH_MODEL_CLIENTS, rounds, rounds > 1 ? "s" : "", seconds);
	for (int i = 0; i < n_delays; i++)
		fprintf(stderr, "%s %u", i ? "," : "", mb_delays_us[i]);
	fprintf(stderr, " us\n");

	rc = mb_env_init(&e, o);
	for (int i = 0; rc == 0 && i < n_delays; i++) {
		snprintf(name[1 + i], sizeof name[0], "ranker-q%u", mb_delays_us[i]);
		rc = mb_publish(&e, name[1 + i], 256, mb_delays_us[i], manifest, sizeof manifest);
	}
	snprintf(name[0], sizeof name[0], "ranker-b1");
	if (rc == 0)
		rc = mb_publish(&e, name[0], 1, 0, manifest, sizeof manifest);
	if (rc == 0)
		rc = mb_local_open(&l, e.weights, manifest);
	if (rc)
		goto out;
	mb_inputs_make(in);
	for (int i = 0; i < MB_SETS && rc == 0; i++)
		rc = mb_local_call(&l, in, i, &in->ref[i]);
	if (rc == 0)
		rc = mb_local_per_row(&l, in, 1, 0.3, &out->graph_b1);
	if (rc == 0)
		rc = mb_local_per_row(&l, in, BENCH_MODEL_CLIENTS, 0.3, &out->graph_b16);
	mb_local_close(&l);
	/* One device: every session on one worker, whose batches can then take all of them. */
	if (rc == 0)
		rc = mb_swarmd_start(&e, "cpu:1", MB_DAEMON_SPIN_US);

	/* Rounds of every mode in turn, so that the machine's noise falls on all of them. */
	for (int r = 0; rc == 0 && r < rounds; r++)
		for (int m = 0; rc == 0 && m < n_modes; m++)
			rc = mb_load_run(&e, name[m], in, warm, seconds, scratch, &acc[m]);
	if (rc)
		goto out;
	mb_acc_result(&acc[0], &out->off);
	out->off.max_batch = 1;
	for (int i = 0; i < n_delays; i++) {
		struct bench_model_load *t = &out->tried[i];

		mb_acc_result(&acc[1 + i], t);
		t->max_batch = 256;
		t->delay_us = mb_delays_us[i];
	}
	out->n_tried = n_delays;
	int best = -1, any = 0;
	for (int i = 0; i < out->n_tried; i++) {
		const struct bench_model_load *t = &out->tried[i];

		if (t->lat.p99 <= out->off.lat.p99 && (best < 0 || t->rps > out->tried[best].rps))
			best = i;
		if (t->rps > out->tried[any].rps)
			any = i;
	}
	out->best = best >= 0 ? best : any;
out:
	rc2 = mb_env_fini(&e);
	if (!rc)
		rc = rc2;
out_free:
	for (int m = 0; m < n_modes; m++)
		free(acc[m].lat);
	free(in);
	free(scratch);
	return rc;
}
