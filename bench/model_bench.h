/* model_bench.h: swarm-bench's cases on a real model, the DLRM-style ranker that
 * tools/make-ranker-model.py writes (the same weights, made here in C so that the benchmark
 * needs no Python).
 *
 * Each case makes a temporary directory with a registry, publishes the ranker there under the
 * deploy settings it needs, starts a swarmd of its own on it (<exe_dir>/swarmd --registry),
 * measures, stops swarmd and removes the directory. Both cases run their baseline in the same
 * call, on the same inputs, and check every output against the in-process result.
 *
 *   overhead  batch 1, client and worker spinning, through swarm (a copy published with
 *             max_batch 1) against the same graph built in this process on a one-thread CPU
 *             device over the same weights file, blocks of the two interleaved; the
 *             in-process blocks run on the worker's cores (while the worker sleeps), so
 *             that both compute on the same core.
 *   batching  BENCH_MODEL_CLIENTS threads, one session each, one row a request, closed loop,
 *             for a fixed time per mode: max_batch 1, then max_batch 256 with a few queue
 *             delays; throughput and latency of each. swarmd serves one device (cpu:1), so
 *             that every session lands on the one worker and a batch can take them all.
 *
 * Functions return 0 or a negative errno, having printed what failed to stderr. Not
 * thread-safe (they fork swarmd).
 */
#ifndef SWARM_BENCH_MODEL_BENCH_H
#define SWARM_BENCH_MODEL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_MODEL_CLIENTS 16
#define BENCH_MODEL_MAX_DELAYS 4

/* Nearest-rank percentiles, in ns. */
struct bench_model_stats {
	double p50, p99, p999;
};

struct bench_model_opts {
	const char *exe_dir; /* the directory holding swarmd and swarm-worker */
	const char *devices; /* swarmd --devices of the overhead case, "cpu:2" */
	int quick;           /* a tenth of the iterations, shorter runs */
};

struct bench_model_overhead {
	struct bench_model_stats swarm;  /* alloc .. release of one request through swarm */
	struct bench_model_stats inproc; /* copy in, swarm_graph_run, read out, in this process */
	size_t iters;                    /* samples of each */
	char inproc_cpus[128];           /* where the in-process calls ran: the worker's cpus */
};

/* One closed-loop run of BENCH_MODEL_CLIENTS clients. */
struct bench_model_load {
	uint32_t max_batch, delay_us; /* the deploy of the version served */
	double rps;                   /* requests completed per second, all clients */
	struct bench_model_stats lat; /* per request, alloc .. release */
	uint64_t requests;
	double client_cpus; /* cores the clients kept busy (this process's cpu time / time) */
};

struct bench_model_batching {
	double seconds; /* measured time per run */
	struct bench_model_load off;
	struct bench_model_load tried[BENCH_MODEL_MAX_DELAYS];
	int n_tried;
	int best; /* the index in tried[] that is reported: the highest throughput among the
		   * runs whose p99 is no worse than off's, else the highest throughput */
	/* The in-process graph's ns per row at batch 1 and at BENCH_MODEL_CLIENTS rows: the
	 * most batching can save the worker, whatever the clients cost. */
	struct bench_model_stats graph_b1, graph_b16;
};

/* The overhead case. Fills *out. */
int bench_model_overhead_run(const struct bench_model_opts *o, struct bench_model_overhead *out);

/* The batching case. Fills *out. */
int bench_model_batching_run(const struct bench_model_opts *o, struct bench_model_batching *out);

#endif /* SWARM_BENCH_MODEL_BENCH_H */
