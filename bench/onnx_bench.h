/* onnx_bench.h: swarm-bench's ONNX cases: an imported ONNX model's graph, built in this
 * process on a one-thread CPU device, against ONNX Runtime on the same inputs (one intra-op
 * thread, its default optimisations), at a few batch sizes.
 *
 * The models come prepared in a directory (bench/onnx-prepare.sh makes it): NAME.onnx, the
 * imported NAME.json and NAME.safetensors (`swarm import onnx --out`), and NAME.INPUT.npy per
 * input with at least the largest batch's rows. ONNX Runtime runs in a child process
 * (bench/ort_runner.py, with python3) on the same cpu as swarm; blocks of the two interleave,
 * so the machine's noise falls on both. Before timing, both run once at each batch and every
 * output is compared (the relative error is reported). Each side is also profiled: swarm per
 * node (swarm_graph_profile), ONNX Runtime with its own profiler, both summed per op type.
 */
#ifndef SWARM_BENCH_ONNX_BENCH_H
#define SWARM_BENCH_ONNX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/model_bench.h"

#define BENCH_ONNX_MAX_ROWS 4    /* batch sizes one call measures */
#define BENCH_ONNX_TOP_OPS 5     /* op types a profile keeps, slowest first */
#define BENCH_ONNX_ROWS_MAX 1024 /* the largest batch size one call measures */

struct bench_onnx_op {
	char name[32];
	double ns;    /* per run */
	double flops; /* per run, for GEMMs, attention and convs (0: not counted) */
};

struct bench_onnx_batch {
	uint32_t rows;
	size_t iters;                        /* timed runs on each side */
	struct bench_model_stats swarm, ort; /* ns per run */
	double rel_err;                      /* max |swarm - ort| / max |ort| over every output */
	struct bench_onnx_op swarm_ops[BENCH_ONNX_TOP_OPS], ort_ops[BENCH_ONNX_TOP_OPS];
	int n_swarm_ops, n_ort_ops;
};

struct bench_onnx_result {
	bool skipped;
	char why[512];
	char ort_version[32];
	uint32_t nodes; /* swarm's nodes */
	int n_batches;
	struct bench_onnx_batch b[BENCH_ONNX_MAX_ROWS];
};

struct bench_onnx_opts {
	const char *dir;    /* the prepared directory */
	const char *name;   /* the model */
	const char *runner; /* bench/ort_runner.py */
	uint32_t rows[BENCH_ONNX_MAX_ROWS];
	int n_rows;
	double seconds; /* a batch size's timing, both sides together, about */
	int threads;    /* swarm's device threads and ORT's intra-op threads (0: 1) */
	bool profile;   /* also profile both sides (the one-thread table does) */
};

/* The machine's GEMM peak on one thread, in GFLOP/s: the CPU device's packed GEMM on a
 * 192 x 1024 x 1024 product (its best of several), and OpenBLAS's cblas_sgemm on the same
 * operands in the same run. A profile's GFLOP/s per op reads against these. */
void bench_onnx_gemm_peak(double *swarm_gflops, double *openblas_gflops);

/* Measures one model. A model or runner that is missing, or a python3 without onnxruntime,
 * makes out->skipped with the reason and returns 0; a failure to measure what is there
 * returns a negative errno, having printed why. */
int bench_onnx_compute(const struct bench_onnx_opts *o, struct bench_onnx_result *out);

#endif /* SWARM_BENCH_ONNX_BENCH_H */
