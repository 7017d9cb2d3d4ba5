/* swarm_bench.c: bench/swarm-bench, round trips through the runtime against the transports
 * they replace, all measured in one process run.
 *
 * It drives the built-in identity model (input "x", output "y", u8, [-1, 64]) through a swarmd
 * of its own (started from beside this binary, one per wake-up mode) or through one given with
 * --socket, and compares each case with its baseline from bench/baselines.c: 64 B with both
 * sides spinning against a cache-line ping-pong, 64 B with both sides sleeping against a futex
 * ping-pong, the spinning round trip against a unix socket and a TCP loopback echo, and 1 MiB
 * and 16 MiB tensors against memcpy of the same bytes. The model cases (bench/model_bench.c)
 * serve real models from a registry and swarmd of their own: the overhead of a DLRM-style
 * ranker and of all-MiniLM-L6-v2 (when its imported weights are there) against the same graph
 * run in this process, dynamic batching of a small and a production-shaped ranker against
 * unbatched, and the time a parked device takes to serve its first request against one
 * already serving; and on the GPU, a node-list identity of 64 B and the ranker through a swarmd
 * --devices gpu against the same graph on the CUDA device in this process (skipped, saying
 * why, where there is no GPU). It prints a table (and --json, one record per case) with each
 * target and whether it was met. Missed targets are reported, not failed, and a case whose
 * inputs are missing is reported as skipped with the reason: the exit status is non-zero only
 * when something could not be measured.
 *
 * This file holds main, what it owns (bench_ctx) and the helpers every case uses; the cases
 * are in cases_*.c, the options in bench_opts.c, the table and JSON in bench_report.c, all
 * joined by swarm_bench.h.
 */
#include "bench/swarm_bench.h"
#include "bench/baselines.h"
#include "bench/ranker.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct bench_counts bench_full_counts = {
	.spin = 200000,
	.sleep = 50000,
	.socket = 50000,
	.bw_1m = 2000,
	.bw_16m = 200,
};

/* ---- statistics ---------------------------------------------------------------------------- */

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank index of the permille-th percentile of n sorted samples. */
static size_t bench_rank(size_t n, unsigned permille)
{
	size_t rank = (n * permille + 999) / 1000;

	return rank == 0 ? 0 : rank - 1;
}

struct bench_stats bench_stats_ns(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	return (struct bench_stats){
		.p50 = (double)v[bench_rank(n, 500)],
		.p99 = (double)v[bench_rank(n, 990)],
		.p999 = (double)v[bench_rank(n, 999)],
	};
}

struct bench_stats bench_stats_gbps(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return (struct bench_stats){
		.p50 = v[bench_rank(n, 500)],
		.p99 = v[bench_rank(n, 10)],
		.p999 = v[bench_rank(n, 1)],
	};
}

static int bench_cmp_gbps(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* GB/s over a few repetitions: p50 the median, p99 and p99.9 the worst. */
struct bench_stats bench_reps(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, bench_cmp_gbps);
	return (struct bench_stats){ v[n / 2], v[n - 1], v[n - 1] };
}

/* ---- the run ------------------------------------------------------------------------------- */

void bench_progress(const char *what, size_t n, const char *unit)
{
	fprintf(stderr, "swarm-bench: %s (%zu %s)\n", what, n, unit);
}

size_t bench_warmup(size_t iters) { return iters / 10 + 1; }

struct bench_row *bench_row_add(struct bench_report *rep, const char *name, const char *unit)
{
	struct bench_row *row = &rep->rows[rep->n++];

	snprintf(row->name, sizeof(row->name), "%s", name);
	row->unit = unit;
	return row;
}

/* A reported row (no target): s against the baseline b, ratio of their p50s. */
void bench_row_measured(struct bench_row *row, struct bench_stats s, const char *base,
			struct bench_stats b)
{
	row->s = s;
	row->base_name = base;
	row->b = b;
	row->ratio = b.p50 > 0 ? s.p50 / b.p50 : 0;
	row->target = NULL;
}

/* Finds this binary's directory and, without --socket, makes the temporary directory. */
static int bench_ctx_init(struct bench_ctx *ctx)
{
	const char *tmpdir = getenv("TMPDIR");
	ssize_t n = readlink("/proc/self/exe", ctx->exe_dir, sizeof(ctx->exe_dir) - 1);
	char *slash;

	if (n <= 0) {
		int rc = n < 0 ? -errno : -ENOENT;
		fprintf(stderr, "swarm-bench: readlink /proc/self/exe: %s\n", strerror(-rc));
		return rc;
	}
	ctx->exe_dir[n] = '\0';
	slash = strrchr(ctx->exe_dir, '/');
	if (slash)
		*slash = '\0';

	ctx->cap = ctx->o.n.spin;
	if (ctx->o.n.sleep > ctx->cap)
		ctx->cap = ctx->o.n.sleep;
	if (ctx->o.n.socket > ctx->cap)
		ctx->cap = ctx->o.n.socket;
	if (ctx->o.n.bw_1m > ctx->cap)
		ctx->cap = ctx->o.n.bw_1m;
	if (ctx->o.n.bw_16m > ctx->cap)
		ctx->cap = ctx->o.n.bw_16m;
	ctx->ns = calloc(ctx->cap, sizeof(*ctx->ns));
	ctx->gbps = calloc(ctx->cap, sizeof(*ctx->gbps));
	if (!ctx->ns || !ctx->gbps) {
		fprintf(stderr, "swarm-bench: out of memory\n");
		return -ENOMEM;
	}

	if (ctx->o.socket)
		return 0;
	if (!tmpdir || !*tmpdir)
		tmpdir = "/tmp";
	errno = ENAMETOOLONG;
	if (snprintf(ctx->tmp, sizeof(ctx->tmp), "%s/swarm-bench.XXXXXX", tmpdir) >=
		    (int)sizeof(ctx->tmp) ||
	    !mkdtemp(ctx->tmp)) {
		int rc = -errno;
		fprintf(stderr, "swarm-bench: cannot make a temporary directory in %s: %s\n",
			tmpdir, strerror(-rc));
		ctx->tmp[0] = '\0';
		return rc;
	}
	if (snprintf(ctx->sock, sizeof(ctx->sock), "%s/swarmd.sock", ctx->tmp) >=
	    (int)sizeof(ctx->sock)) {
		fprintf(stderr, "swarm-bench: socket path in %s too long\n", ctx->tmp);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Removes the temporary directory: the socket and the logs swarmd left there. */
static void bench_ctx_fini(struct bench_ctx *ctx)
{
	static const char *const names[] = { "swarmd.sock", "swarmd-spin0.log" };
	char path[PATH_MAX + 32];

	free(ctx->ns);
	free(ctx->gbps);
	if (!ctx->tmp[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", ctx->tmp, names[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/swarmd-spin%u.log", ctx->tmp, BENCH_DAEMON_SPIN_US);
	unlink(path);
	if (rmdir(ctx->tmp) != 0)
		fprintf(stderr, "swarm-bench: could not remove %s: %s\n", ctx->tmp,
			strerror(errno));
}

/* --write-rankers: each ranker of the model cases into dir/<name>/, for bench/check-ranker.sh
 * to compare with tools/make-ranker-model.py's. */
static int bench_write_rankers(const char *dir)
{
	const struct bench_ranker *const r[] = { &bench_ranker_small, &bench_ranker_production };
	char sub[PATH_MAX];
	int rc = 0;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "swarm-bench: mkdir %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; rc == 0 && i < sizeof r / sizeof r[0]; i++) {
		if (snprintf(sub, sizeof sub, "%s/%s", dir, r[i]->name) >= (int)sizeof sub)
			return -ENAMETOOLONG;
		rc = bench_ranker_write_dir(r[i], sub);
		if (rc == 0)
			printf("%s: tools/make-ranker-model.py %s %s\n", sub, sub, r[i]->flags);
	}
	return rc;
}

/* given, else $env (env may be NULL), else ${SWARM_CACHE:-$HOME/.cache/swarm}/sub, into buf:
 * where a case finds what it was prepared with. */
const char *bench_cache_dir(const char *given, const char *env, const char *sub, char *buf,
			    size_t len)
{
	const char *e = env ? getenv(env) : NULL, *cache = getenv("SWARM_CACHE");
	const char *home = getenv("HOME");

	if (given)
		snprintf(buf, len, "%s", given);
	else if (e && *e)
		snprintf(buf, len, "%s", e);
	else if (cache && *cache)
		snprintf(buf, len, "%s/%s", cache, sub);
	else
		snprintf(buf, len, "%s/.cache/swarm/%s", home && *home ? home : "/tmp", sub);
	return buf;
}

int main(int argc, char **argv)
{
	struct bench_ctx ctx = { 0 };
	struct bench_report rep = { 0 };
	struct bench_machine m;
	int rc;

	rc = bench_opts_parse(argc, argv, &ctx.o);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (ctx.o.write_rankers)
		return bench_write_rankers(ctx.o.write_rankers) ? 1 : 0;
	/* A swarmd that dies mid-run must not kill the benchmark with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	ctx.o.minilm = bench_cache_dir(ctx.o.minilm, "SWARM_MINILM_DIR", "minilm-s32", ctx.minilm,
				       sizeof ctx.minilm);
	ctx.o.onnx = bench_cache_dir(ctx.o.onnx, "SWARM_ONNX_BENCH_DIR", "onnx-bench", ctx.onnx,
				     sizeof ctx.onnx);

	bench_machine_get(&m);
	ctx.peer_cpu = -1;
	/* The measuring side on the last cpu, every peer (baseline child, swarm worker) on
	 * cpu 0, so that baselines and swarm cross the same pair of cores. */
	snprintf(ctx.devices, sizeof ctx.devices, "cpu:%d", m.nproc >= 2 ? 2 : 1);
	if (m.nproc >= 2) {
		rc = bench_pin_self((int)m.nproc - 1);
		if (rc)
			fprintf(stderr,
				"swarm-bench: cannot pin to cpu %ld: %s (running unpinned)\n",
				m.nproc - 1, strerror(-rc));
		else
			bench_set_peer_cpu(ctx.peer_cpu = 0);
	}
	printf("swarm-bench: %ld cpus, %s, %s; swarmd: %s%s%s%s; client on cpu %ld, peers on cpu 0\n",
	       m.nproc, m.cpu, m.kernel, ctx.o.socket ? ctx.o.socket : "own, --devices ",
	       ctx.o.socket ? "" : ctx.devices,
	       ctx.o.cases & (BENCH_CASE_GPU_IDENTITY | BENCH_CASE_GPU_RANKER) ?
		       " (gpu for the GPU rows)" :
		       "",
	       ctx.o.n.spin < bench_full_counts.spin ? "; --quick" : "", m.nproc - 1);
	fflush(stdout);

	rc = bench_ctx_init(&ctx);
	if (rc == 0 && (ctx.o.cases & (BENCH_CASE_SPIN | BENCH_CASE_1M | BENCH_CASE_16M)))
		rc = bench_run_spinning(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_SLEEP))
		rc = bench_run_sleeping(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_LOAD))
		rc = bench_run_load(&ctx, &rep);
	if (rc == 0 &&
	    (ctx.o.cases & (BENCH_CASE_OVERHEAD | BENCH_CASE_MINILM | BENCH_CASE_BATCHING |
			    BENCH_CASE_SCALEUP | BENCH_CASE_GPU_IDENTITY | BENCH_CASE_GPU_RANKER)))
		rc = bench_run_models(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & (BENCH_CASE_NUMA | BENCH_CASE_MIGRATION)))
		rc = bench_run_balance(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_ONNX))
		rc = bench_run_onnx(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_CONTROL))
		rc = bench_run_control(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_PYTHON))
		rc = bench_run_python(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_MEMORY))
		rc = bench_run_memory(&ctx, &rep);
	if (rc == 0 && (ctx.o.cases & BENCH_CASE_ZIPF))
		rc = bench_run_zipf(&ctx, &rep);
	if (rc == 0) {
		bench_table_print(&rep);
		if (ctx.o.json)
			rc = bench_json_write(ctx.o.json, &m, &ctx.o, &rep);
	}
	bench_ctx_fini(&ctx);
	if (rc) {
		fprintf(stderr, "swarm-bench: failed: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
