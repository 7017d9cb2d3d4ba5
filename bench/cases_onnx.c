/* cases_onnx.c: swarm-bench's onnx case: each model of the --onnx directory's models.txt,
 * its imported graph in this process against ONNX Runtime (bench/onnx_bench.c), after a row
 * of the machine's GEMM peak; then, on 2 cpus or more, each at batch 1 on every cpu. */
#include "bench/swarm_bench.h"
#include "bench/onnx_bench.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/build_info.h"

/* One model of models.txt. */
struct bench_onnx_listed {
	char name[64];
	char rows[64]; /* its batch sizes, "1,8" */
	bool overhead; /* also measured through swarmd */
};

/* "linear 1.23 ms (28.1 GFLOP/s), ..." of a profile's top ops into buf. */
static void bench_onnx_ops(char *buf, size_t len, const struct bench_onnx_op *ops, int n)
{
	size_t at = 0;
	buf[0] = 0;
	for (int i = 0; i < n && at < len; i++) {
		at += (size_t)snprintf(buf + at, len - at, "%s%s %.2f ms", i ? ", " : "",
				       ops[i].name, ops[i].ns / 1e6);
		if (ops[i].flops > 0 && ops[i].ns > 0 && at < len)
			at += (size_t)snprintf(buf + at, len - at, " (%.1f GFLOP/s)",
					       ops[i].flops / ops[i].ns);
	}
}

/* A row of swarm's p50 against ONNX Runtime's for one batch (the caller sets its target and
 * note), announced on stdout as it is measured. */
static struct bench_row *bench_onnx_row(struct bench_report *rep, const char *name,
					const struct bench_onnx_batch *b, const char *base)
{
	struct bench_row *row = bench_row_add(rep, name, "ns");
	row->s = (struct bench_stats){ b->swarm.p50, b->swarm.p99, b->swarm.p999 };
	row->base_name = base;
	row->b = (struct bench_stats){ b->ort.p50, b->ort.p99, b->ort.p999 };
	row->ratio = row->s.p50 / row->b.p50;
	printf("row: %s: swarm p50 %.0f ns, onnxruntime p50 %.0f ns, %.2fx\n", name, row->s.p50,
	       row->b.p50, row->ratio);
	fflush(stdout);
	return row;
}

/* The onnx case's second table: each model at batch 1 with the device's threads on every cpu
 * against ONNX Runtime with as many intra-op threads, both unpinned across the cpus, blocks
 * interleaved; no profile. Nothing on a one-cpu machine. */
static int bench_onnx_threads(struct bench_ctx *ctx, struct bench_report *rep,
			      const struct bench_onnx_listed *models, int n_names,
			      const char *runner, int quick)
{
	const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2)
		return 0;
	cpu_set_t saved, all;
	sched_getaffinity(0, sizeof saved, &saved);
	CPU_ZERO(&all);
	for (long c = 0; c < ncpu && c < CPU_SETSIZE; c++)
		CPU_SET((int)c, &all);
	sched_setaffinity(0, sizeof all, &all);
	int rc = 0;
	for (int i = 0; i < n_names && rc == 0; i++) {
		struct bench_onnx_opts o = { .dir = ctx->o.onnx,
					     .name = models[i].name,
					     .runner = runner,
					     .rows = { 1 },
					     .n_rows = 1,
					     .seconds = quick ? 2.0 : 8.0,
					     .threads = (int)ncpu,
					     .profile = false };
		struct bench_onnx_result *r = calloc(1, sizeof *r);
		if (!r) {
			rc = -ENOMEM;
			break;
		}
		bench_progress("onnx: the same at batch 1, every cpu's thread each side", 1,
			       "batch sizes");
		rc = bench_onnx_compute(&o, r);
		for (int k = 0; rc == 0 && !r->skipped && k < r->n_batches; k++) {
			const struct bench_onnx_batch *b = &r->b[k];
			char name[40];
			snprintf(name, sizeof name, "onnx %.16s b%u %dthr vs ORT", models[i].name,
				 b->rows, o.threads);
			struct bench_row *row =
				bench_onnx_row(rep, name, b, "onnxruntime N threads");
			row->target = NULL; /* the target is one thread against one */
			snprintf(
				row->note, sizeof row->note,
				"%zu runs a side; %d threads each (swarm's device, ORT's intra-op), "
				"neither pinned, ORT's pool not spinning between calls; outputs match to a relative error of %.1e; "
				"reported, no target",
				b->iters, o.threads, b->rel_err);
		}
		free(r);
	}
	sched_setaffinity(0, sizeof saved, &saved);
	return rc;
}

/* Reads models.txt of the --onnx directory (its path into list) into m, up to
 * BENCH_ONNX_MODELS models. A line: NAME [ROWS,ROWS,...] [overhead] (default 1,8; overhead:
 * also through swarmd). Returns how many it read, 0 when there is no list. */
static int bench_onnx_list_read(const char *dir, char *list, size_t len,
				struct bench_onnx_listed *m)
{
	int n = 0;

	snprintf(list, len, "%s/models.txt", dir);
	FILE *f = fopen(list, "r");
	for (char line[256]; f && n < BENCH_ONNX_MODELS && fgets(line, sizeof line, f);) {
		char *save = NULL, *t = strtok_r(line, " \t\r\n", &save);
		if (!t || t[0] == '#')
			continue;
		snprintf(m[n].name, sizeof m[n].name, "%.63s", t);
		snprintf(m[n].rows, sizeof m[n].rows, "1,8");
		m[n].overhead = false;
		while ((t = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			if (strcmp(t, "overhead") == 0)
				m[n].overhead = true;
			else
				snprintf(m[n].rows, sizeof m[n].rows, "%.63s", t);
		}
		n++;
	}
	if (f)
		fclose(f);
	return n;
}

/* The runner imports onnxruntime from where tools/install-pydeps.sh puts it: that directory
 * appended to PYTHONPATH. */
static void bench_onnx_pythonpath(void)
{
	const char *pp = getenv("PYTHONPATH");
	char pylib[PATH_MAX], pypath[2 * PATH_MAX + 8];
	bench_cache_dir(NULL, NULL, "pylib", pylib, sizeof pylib);
	snprintf(pypath, sizeof pypath, "%s%s%s", pp && *pp ? pp : "", pp && *pp ? ":" : "", pylib);
	setenv("PYTHONPATH", pypath, 1);
}

/* The row of the machine's GEMM peak, which each profile's GFLOP/s reads against. */
static void bench_onnx_peak_row(struct bench_report *rep)
{
	double peak, blas;
	bench_onnx_gemm_peak(&peak, &blas);
	struct bench_row *prow = bench_row_add(rep, "cpu GEMM peak 192x1024x1024", "GF/s");
	prow->s = (struct bench_stats){ peak, peak, peak };
	prow->base_name = "OpenBLAS sgemm";
	prow->b = (struct bench_stats){ blas, blas, blas };
	prow->ratio = blas > 0 ? peak / blas : 0;
	prow->target = NULL;
	snprintf(prow->note, sizeof prow->note,
		 "GFLOP/s on one thread, best of 12 interleaved runs each: the CPU device's packed "
		 "GEMM (weights packed once) against cblas_sgemm on the same operands; ratio "
		 "swarm/OpenBLAS. The GFLOP/s of each model's profile read against it.");
	printf("row: cpu GEMM peak: swarm %.1f GFLOP/s, OpenBLAS %.1f GFLOP/s\n", peak, blas);
}

/* The batch sizes of one model into o: its line's, or SWARM_BENCH_ONNX_ROWS=1,4 for whoever
 * tunes the kernels; a smoke run (--quick) takes the first alone. */
static void bench_onnx_rows_parse(struct bench_onnx_opts *o, const char *rows_of, int quick)
{
	const char *rows_env = getenv("SWARM_BENCH_ONNX_ROWS");
	char *p = rows_env && *rows_env ? (char *)rows_env : (char *)rows_of, *e;
	for (unsigned long v; o->n_rows < BENCH_ONNX_MAX_ROWS && (v = strtoul(p, &e, 10)) > 0 &&
			      v <= BENCH_ONNX_ROWS_MAX;
	     p = *e ? e + 1 : e)
		o->rows[o->n_rows++] = (uint32_t)v;
	if (o->n_rows == 0)
		o->rows[o->n_rows++] = 1;
	if (quick)
		o->n_rows = 1;
}

/* The rows of one model's measurement r: one skipped row, or one per batch size against
 * ONNX Runtime on one thread, its note naming both sides' slowest ops. */
static void bench_onnx_batch_rows(struct bench_report *rep, const char *model,
				  const struct bench_onnx_result *r)
{
	char name[40];
	if (r->skipped) {
		snprintf(name, sizeof name, "onnx %.20s vs ORT", model);
		struct bench_row *row = bench_row_add(rep, name, "ns");
		row->skipped = true;
		snprintf(row->note, sizeof row->note, "skipped: %s", r->why);
		printf("swarm-bench: %s: %s\n", name, row->note);
	}
	for (int k = 0; !r->skipped && k < r->n_batches; k++) {
		const struct bench_onnx_batch *b = &r->b[k];
		snprintf(name, sizeof name, "onnx %.20s b%u vs ORT", model, b->rows);
		struct bench_row *row = bench_onnx_row(rep, name, b, "onnxruntime 1 thread");
		/* the ONNX issue asked 1.25x; the compute issue asks at or below ONNX Runtime */
		row->target = "swarm <= 1.0x ORT p50";
		row->met = row->ratio <= 1.0 && b->rel_err <= 1e-4;
		char sw[256], ort[256];
		bench_onnx_ops(sw, sizeof sw, b->swarm_ops, b->n_swarm_ops);
		bench_onnx_ops(ort, sizeof ort, b->ort_ops, b->n_ort_ops);
		snprintf(row->note, sizeof row->note,
			 "%zu runs a side; outputs match onnxruntime %s to a relative error "
			 "of %.1e%s; %u swarm nodes; slowest ops per run: swarm %s; "
			 "onnxruntime %s",
			 b->iters, r->ort_version, b->rel_err,
			 b->rel_err > 1e-4 ? " (OVER 1e-4: the row fails)" : "", r->nodes, sw,
			 b->n_ort_ops ? ort : "(no profile)");
	}
}

/* One model marked overhead, at batch 1 through swarm against the same graph in process;
 * slow says its in-process run took over 20 ms. */
static int bench_onnx_overhead(struct bench_ctx *ctx, struct bench_report *rep, const char *model,
			       bool slow, int quick)
{
	const struct bench_model_opts mo = {
		.exe_dir = ctx->exe_dir,
		.devices = ctx->devices,
		.peer_cpu = ctx->peer_cpu,
		.quick = quick,
		.onnx_dir = ctx->o.onnx,
		.onnx_name = model,
		.onnx_slow = slow,
	};
	struct bench_model_overhead ov;
	char name[40];
	int rc = bench_model_overhead_run(&mo, BENCH_MODEL_ONNX, &ov);
	if (rc)
		return rc;
	snprintf(name, sizeof name, "onnx %.20s b1 overhead", model);
	bench_overhead_row(rep, name, &ov);
	return 0;
}

/* One model of the list: its graph in process against ONNX Runtime on one thread at each
 * batch size, then, when marked so, its overhead through swarm. */
static int bench_onnx_model(struct bench_ctx *ctx, struct bench_report *rep,
			    const struct bench_onnx_listed *m, const char *runner, int quick)
{
	struct bench_onnx_opts o = { .dir = ctx->o.onnx,
				     .name = m->name,
				     .runner = runner,
				     .seconds = quick ? 2.0 : 12.0,
				     .threads = 1,
				     .profile = true };
	bench_onnx_rows_parse(&o, m->rows, quick);
	struct bench_onnx_result *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	bench_progress("onnx: the imported graph in process vs onnxruntime, 1 thread each",
		       (size_t)o.n_rows, "batch sizes");
	int rc = bench_onnx_compute(&o, r);
	if (rc == 0)
		bench_onnx_batch_rows(rep, m->name, r);
	if (rc == 0 && !r->skipped && r->n_batches > 0 && m->overhead)
		rc = bench_onnx_overhead(ctx, rep, m->name, r->b[0].swarm.p50 > 20e6, quick);
	free(r);
	return rc;
}

/* The onnx case: each model of the directory's models.txt against ONNX Runtime. */
int bench_run_onnx(struct bench_ctx *ctx, struct bench_report *rep)
{
	char list[PATH_MAX + 16], runner[PATH_MAX];
	struct bench_onnx_listed models[BENCH_ONNX_MODELS];
	char looked[2 * PATH_MAX];
	/* Where none is found, runner holds the last place looked at, and the child's failure
	 * to start names it. */
	(void)swarm_build_data_path("SWARM_ORT_RUNNER", "ort_runner.py", "bench/ort_runner.py",
				    runner, sizeof runner, looked, sizeof looked);
	int n = bench_onnx_list_read(ctx->o.onnx, list, sizeof list, models);
	if (n == 0) {
		struct bench_row *row = bench_row_add(rep, "onnx vs ORT", "ns");
		row->skipped = true;
		snprintf(row->note, sizeof row->note,
			 "skipped: no models listed in %.300s (bench/onnx-prepare.sh %.300s makes "
			 "them)",
			 list, ctx->o.onnx);
		printf("swarm-bench: onnx: %s\n", row->note);
		return 0;
	}
	bench_onnx_pythonpath();
	int quick = ctx->o.n.spin < bench_full_counts.spin;
	bench_onnx_peak_row(rep);
	for (int i = 0; i < n; i++) {
		int rc = bench_onnx_model(ctx, rep, &models[i], runner, quick);
		if (rc)
			return rc;
	}
	return bench_onnx_threads(ctx, rep, models, n, runner, quick);
}
