/* ranker.c: tools/make-ranker-model.py's rankers, made in C (ranker.h). Any change to the
 * draws, bounds, tensor order or graph here must be made there too: bench/check-ranker.sh
 * (ctest bench_ranker_matches_tool) compares the tensor bytes of the two and their headers
 * and manifests as JSON. */
#include "bench/ranker.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "registry/safetensors.h"

#define RK_MAX_TENSORS (BENCH_RANKER_SPARSE + 4 * BENCH_RANKER_MAX_LAYERS)

const struct bench_ranker bench_ranker_small = {
	.name = "small",
	.flags = "",
	.shape = "dim 16, bottom 13-64-16, top 64-64-1",
	.n_bot = 2,
	.bot = { 64, 16 },
	.n_top = 2,
	.top = { 64, 1 },
};

const struct bench_ranker bench_ranker_production = {
	.name = "production",
	.flags = "--bottom 512,256,64 --top 512,256,1",
	.shape = "dim 64, bottom 13-512-256-64, top 256-512-256-1",
	.n_bot = 3,
	.bot = { 512, 256, 64 },
	.n_top = 3,
	.top = { 512, 256, 1 },
};

const struct bench_ranker_deploy bench_ranker_tool_deploy = { 64, 8, 256, 200 };

void bench_lcg_init(struct bench_lcg *g, uint64_t seed) { g->state = seed ^ 0x9E3779B97F4A7C15ull; }

uint64_t bench_lcg_next(struct bench_lcg *g)
{
	g->state = g->state * 6364136223846793005ull + 1442695040888963407ull;
	return g->state;
}

double bench_lcg_uniform(struct bench_lcg *g, double bound)
{
	double u = (double)(bench_lcg_next(g) >> 40) / (double)(1u << 24);

	return (2.0 * u - 1.0) * bound;
}

struct rk_tensor {
	char name[16];
	uint32_t ndim;
	int64_t shape[2];
	double bound;
};

static int rk_dim(const struct bench_ranker *r) { return r->bot[r->n_bot - 1]; }

/* The tensors in the order they are drawn and written (ranker_tensors() of the tool).
 * Returns how many. */
static int rk_tensors(const struct bench_ranker *r, struct rk_tensor t[RK_MAX_TENSORS])
{
	const int dim = rk_dim(r);
	int k = 0;

	for (int i = 0; i < BENCH_RANKER_SPARSE; i++) {
		t[k] = (struct rk_tensor){ .ndim = 2,
					   .shape = { BENCH_RANKER_VOCAB, dim },
					   .bound = sqrt(1.0 / BENCH_RANKER_VOCAB) };
		snprintf(t[k++].name, sizeof t[0].name, "emb%d", i);
	}
	for (int mlp = 0; mlp < 2; mlp++) {
		const int n = mlp ? r->n_top : r->n_bot;
		const int *width = mlp ? r->top : r->bot;
		const char *prefix = mlp ? "top" : "bot";
		int fan = mlp ? dim * (1 + BENCH_RANKER_SPARSE) : BENCH_RANKER_DENSE;

		for (int i = 0; i < n; i++) {
			t[k] = (struct rk_tensor){ .ndim = 2,
						   .shape = { width[i], fan },
						   .bound = sqrt(6.0 / (double)fan) };
			snprintf(t[k++].name, sizeof t[0].name, "%s%d_w", prefix, i);
			t[k] = (struct rk_tensor){ .ndim = 1,
						   .shape = { width[i] },
						   .bound = 1.0 / sqrt((double)fan) };
			snprintf(t[k++].name, sizeof t[0].name, "%s%d_b", prefix, i);
			fan = width[i];
		}
	}
	return k;
}

int bench_ranker_weights_write_seeded(const struct bench_ranker *r, uint64_t seed, const char *path)
{
	struct rk_tensor t[RK_MAX_TENSORS];
	struct swarm_st_write_tensor w[RK_MAX_TENSORS] = { 0 };
	float *data[RK_MAX_TENSORS] = { 0 };
	struct bench_lcg g;
	int n = rk_tensors(r, t), rc = 0;

	bench_lcg_init(&g, seed);
	for (int i = 0; i < n; i++) {
		size_t count = (size_t)t[i].shape[0] * (t[i].ndim == 2 ? (size_t)t[i].shape[1] : 1);

		data[i] = malloc(count * sizeof(float));
		if (!data[i]) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < count; j++)
			data[i][j] = (float)bench_lcg_uniform(&g, t[i].bound);
		w[i] = (struct swarm_st_write_tensor){ .name = t[i].name,
						       .dtype = SWARM_ST_F32,
						       .ndim = t[i].ndim,
						       .shape = t[i].shape,
						       .data = data[i] };
	}
	rc = swarm_st_write(path, w, (uint32_t)n);
out:
	if (rc)
		fprintf(stderr, "swarm-bench: writing %s: %s\n", path, strerror(-rc));
	for (int i = 0; i < n; i++)
		free(data[i]);
	return rc;
}

int bench_ranker_weights_write(const struct bench_ranker *r, const char *path)
{
	return bench_ranker_weights_write_seeded(r, BENCH_RANKER_SEED, path);
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

/* The graph's nodes of ranker r, appended to buf at *pos: an embedding bag a sparse input,
 * the bottom MLP, the concat, the top MLP and the sigmoid, then the opening of "weights". */
static int rk_manifest_nodes(const struct bench_ranker *r, char *buf, size_t len, size_t *pos)
{
	int rc = 0;

	for (int i = 0; rc == 0 && i < BENCH_RANKER_SPARSE; i++)
		rc = rk_appendf(
			buf, len, pos,
			"  {\"op\": \"embedding_bag\", \"inputs\": [\"emb%d\", \"sparse%d\"], "
			"\"output\": \"e%d\", \"mode\": \"sum\"},\n",
			i, i, i);
	/* The bottom MLP, relu after every layer, from "dense". */
	for (int i = 0; rc == 0 && i < r->n_bot; i++) {
		char x[16] = "dense";

		if (i)
			snprintf(x, sizeof x, "bot%d", i - 1);
		rc = rk_appendf(buf, len, pos,
				"  {\"op\": \"linear\", \"inputs\": [\"%s\", \"bot%d_w\", "
				"\"bot%d_b\"], \"output\": \"bot%d\", \"act\": \"relu\"},\n",
				x, i, i, i);
	}
	if (rc == 0)
		rc = rk_appendf(buf, len, pos, "  {\"op\": \"concat\", \"inputs\": [\"bot%d\"",
				r->n_bot - 1);
	for (int i = 0; rc == 0 && i < BENCH_RANKER_SPARSE; i++)
		rc = rk_appendf(buf, len, pos, ", \"e%d\"", i);
	if (rc == 0)
		rc = rk_appendf(buf, len, pos, "], \"output\": \"cat\"},\n");
	/* The top MLP, relu after every layer but the last, from "cat". */
	for (int i = 0; rc == 0 && i < r->n_top; i++) {
		char x[16] = "cat";

		if (i)
			snprintf(x, sizeof x, "top%d", i - 1);
		rc = rk_appendf(buf, len, pos,
				"  {\"op\": \"linear\", \"inputs\": [\"%s\", \"top%d_w\", "
				"\"top%d_b\"], \"output\": \"top%d\"%s},\n",
				x, i, i, i, i + 1 < r->n_top ? ", \"act\": \"relu\"" : "");
	}
	if (rc == 0)
		rc = rk_appendf(buf, len, pos,
				"  {\"op\": \"sigmoid\", \"inputs\": [\"top%d\"], \"output\": "
				"\"score\"}]},\n \"weights\": [",
				r->n_top - 1);
	return rc;
}

int bench_ranker_manifest(const struct bench_ranker *r, const struct bench_ranker_deploy *d,
			  char *buf, size_t len)
{
	struct rk_tensor t[RK_MAX_TENSORS];
	const int n = rk_tensors(r, t);
	size_t pos = 0;
	int rc;

	rc = rk_appendf(
		buf, len, &pos,
		"{\"format\": 1,\n"
		" \"inputs\": [{\"name\": \"dense\", \"dtype\": \"f32\", \"shape\": [-1, %d]}",
		BENCH_RANKER_DENSE);
	for (int i = 0; rc == 0 && i < BENCH_RANKER_SPARSE; i++)
		rc = rk_appendf(
			buf, len, &pos,
			",\n  {\"name\": \"sparse%d\", \"dtype\": \"i64\", \"shape\": [-1, %d]}", i,
			BENCH_RANKER_BAG);
	if (rc == 0)
		rc = rk_appendf(buf, len, &pos,
				"],\n \"outputs\": [{\"name\": \"score\", \"dtype\": \"f32\", "
				"\"shape\": [-1, 1]}],\n \"graph\": {\"nodes\": [\n");
	if (rc == 0)
		rc = rk_manifest_nodes(r, buf, len, &pos);
	for (int i = 0; rc == 0 && i < n; i++) {
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
				"],\n \"deploy\": {\"max_rows\": %u, \"slots\": %u, "
				"\"max_batch\": %u, \"max_queue_delay_us\": %u}}\n",
				d->max_rows, d->slots, d->max_batch, d->delay_us);
	if (rc)
		fprintf(stderr, "swarm-bench: the %s ranker's manifest is over %zu bytes\n",
			r->name, len);
	return rc;
}

int bench_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int rc = 0;

	if (!f)
		rc = -errno;
	else if (fputs(text, f) < 0)
		rc = -EIO;
	if (f && fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc)
		fprintf(stderr, "swarm-bench: writing %s: %s\n", path, strerror(-rc));
	return rc;
}

int bench_ranker_write_dir(const struct bench_ranker *r, const char *dir)
{
	char path[4096], manifest[16384];
	int rc;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: mkdir %s: %s\n", dir, strerror(-rc));
		return rc;
	}
	if (snprintf(path, sizeof path, "%s/ranker.safetensors", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	rc = bench_ranker_weights_write(r, path);
	if (rc == 0)
		rc = bench_ranker_manifest(r, &bench_ranker_tool_deploy, manifest, sizeof manifest);
	if (rc)
		return rc;
	snprintf(path, sizeof path, "%s/ranker.json", dir);
	return bench_write_text(path, manifest);
}
