/* model_bench.h: swarm-bench's cases on real models: the DLRM-style rankers of
 * bench/ranker.h (tools/make-ranker-model.py's, made in C) and all-MiniLM-L6-v2 as
 * tools/import-minilm.py imports it.
 *
 * Each case makes a temporary directory with a registry, publishes the model there under the
 * deploy settings it needs, starts a swarmd of its own on it (<exe_dir>/swarmd --registry),
 * measures, stops swarmd and removes the directory. Every case runs its baseline in the same
 * call, on the same inputs, and checks every output against the in-process result.
 *
 *   overhead  one model (the small ranker, or MiniLM at sequence length 32), batch 1, client
 *             and worker spinning, through swarm (a copy published with max_batch 1)
 *             against the same graph built in this process on a one-thread CPU device over
 *             the same weights file, blocks of the two interleaved; the in-process blocks
 *             run on the worker's cores (while the worker sleeps), so that both compute on
 *             the same core. Both models share one measuring loop; a model is its manifest,
 *             its weights file and a generator of input rows.
 *   gpu overhead  the same measurement on the GPU: swarmd --devices gpu (one worker on GPU
 *             0) against the same manifest's graph built in this process on the CUDA device
 *             (swarm_device_cuda_create(0)) and run with swarm_graph_run on host buffers
 *             pinned with that device (register_host), as the worker's slots are pinned: per
 *             call upload, the nodes (a replayed CUDA graph once warm), download, synchronise,
 *             exactly what the worker does per request. For the small ranker and for a node-list
 *             identity over f32 [-1, 16] (64 B a row). Without a GPU, or without CUDA built in,
 *             skipped with the reason.
 *   batching  BENCH_MODEL_CLIENTS threads on this process's cpu, one session each, one row
 *             a request, closed loop, for a fixed time per mode: max_batch 1, then a few
 *             (max_batch, queue delay) deploys, the first of them the reported default.
 *             swarmd serves one device on cpu 0 alone (a one-core --topology), so that every
 *             session lands on the one worker, a batch can take them all, and the worker
 *             and its one BLAS thread never share a core with the clients.
 *   scaleup   the small ranker (max_batch 1) on a fresh swarmd --devices cpu:1 --autoscale
 *             --autoscale-idle 0, whose one device starts PARKED (no worker): the time from
 *             just before swarm_session_open to the release of the first request (the open
 *             waits while the autoscaler wakes the device and its worker warms up), the
 *             client spinning; against the same open and request on a fresh swarmd without
 *             the autoscaler whose device is already ACTIVE. Repeated runs, the two sides in
 *             turn, each on a swarmd of its own whose worker has cpu 0 alone (a one-core
 *             --topology, as batching's); what swarmd logged (the wake, warm_ms) is read
 *             from its log.
 *
 * Functions return 0 or a negative errno, having printed what failed to stderr. Not
 * thread-safe (they fork swarmd).
 */
#ifndef SWARM_BENCH_MODEL_BENCH_H
#define SWARM_BENCH_MODEL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "bench/ranker.h"

#define BENCH_MODEL_CLIENTS 16
#define BENCH_MODEL_MAX_MODES 6   /* batching deploys measured, max_batch 1 included */
#define BENCH_MODEL_GRAPH_SIZES 4 /* rows a run the in-process graph is timed at */

/* The sequence length the MiniLM case measures: the imported manifest must have it. */
#define BENCH_MINILM_SEQ 32

/* Nearest-rank percentiles, in ns. */
struct bench_model_stats {
	double p50, p99, p999;
};

/* The percentiles of n samples (sorted in place); all 0 when n is 0. */
struct bench_model_stats bench_model_stats_of(uint64_t *v, size_t n);

struct bench_model_opts {
	const char *exe_dir;    /* the directory holding swarmd and swarm-worker */
	const char *devices;    /* swarmd --devices of the overhead cases, "cpu:2" */
	const char *minilm_dir; /* tools/import-minilm.py's OUT_DIR, made with --seq-len 32 */
	int peer_cpu;           /* the batching worker's cpu alone, or -1: swarmd's plan */
	int quick;              /* a tenth of the iterations, shorter runs */
	const char *onnx_dir;   /* BENCH_MODEL_ONNX: bench/onnx-prepare.sh's directory */
	const char *onnx_name;  /* and the model of it */
	int onnx_slow;          /* the model computes for tens of ms: fewer calls */
	/* The python case's client (bench/cases_python.c), or NULL: called by the overhead
	 * case once its C side has measured, while swarmd still serves the model as model on
	 * sock (its own session closed, so that the hook's lands on the same worker); inputs
	 * is its struct mb_inputs (the input sets and their in-process outputs).
	 * Its return value becomes the case's. */
	int (*client_hook)(void *arg, const char *sock, const char *model, const void *inputs);
	void *client_arg;
};

enum bench_model_kind {
	BENCH_MODEL_RANKER,   /* the small ranker */
	BENCH_MODEL_MINILM,   /* all-MiniLM-L6-v2, sequence length BENCH_MINILM_SEQ */
	BENCH_MODEL_IDENTITY, /* one identity node over f32 [-1, 16]: 64 B in, 64 B out */
	BENCH_MODEL_ONNX,     /* an imported ONNX model (opts' onnx_dir and onnx_name) */
};

struct bench_model_overhead {
	int skipped;                     /* 1: not measured, for the reason in why */
	char why[512];                   /* what is missing and how to get it */
	struct bench_model_stats swarm;  /* alloc .. release of one request through swarm */
	struct bench_model_stats inproc; /* copy in, swarm_graph_run, read out, in this process */
	size_t iters;                    /* samples of each */
	double drift_ns;       /* the range of the in-process side's block medians: differences of
				* this size are the machine's, not swarm's */
	char inproc_cpus[128]; /* where the in-process calls ran: the worker's cpus */
	/* The GPU case's evidence that it measured what it says (0 on the CPU): */
	int inproc_pinned;        /* the in-process host buffers were pinned (register_host) */
	uint32_t inproc_captured; /* rows values the in-process graph replays as CUDA graphs */
	int worker_pinned;        /* 1 the worker pinned the session segment, 0 it could not,
				   * -1 unknown (swarmd's log unreadable) */
	char worker_device[64];   /* the device the worker opened, from swarmd's log */
};

/* One closed-loop run of BENCH_MODEL_CLIENTS clients on one deploy. */
struct bench_model_load {
	uint32_t max_batch, delay_us; /* the deploy of the version served */
	double rps;                   /* requests completed per second, all clients */
	struct bench_model_stats lat; /* per request, alloc .. release */
	uint64_t requests;
	double client_cpus; /* cores the clients kept busy (this process's cpu time / time) */
	double worker_busy; /* the worker's busy time / time (its stats page) */
	double worker_ns;   /* the worker's busy ns per request */
};

struct bench_model_batching {
	const struct bench_ranker *ranker;
	double seconds;                                        /* measured time per mode */
	struct bench_model_load off;                           /* max_batch 1 */
	struct bench_model_load on[BENCH_MODEL_MAX_MODES - 1]; /* on[0] is the default */
	int n_on;
	/* The in-process graph's ns per row at runs of graph_rows[i] rows (1, 8, 16 = the
	 * clients, 64): graph[0] / graph[2] is the most batching can save the worker, whatever
	 * the clients and the IPC cost. */
	uint32_t graph_rows[BENCH_MODEL_GRAPH_SIZES];
	struct bench_model_stats graph[BENCH_MODEL_GRAPH_SIZES];
};

/* The scale-up case: p50 and max over the runs, of the time from just before
 * swarm_session_open to the release of the first request. */
struct bench_model_scaleup {
	size_t runs;
	double parked_p50_ns, parked_max_ns; /* the device PARKED when the open comes */
	double active_p50_ns, active_max_ns; /* the device already ACTIVE (no autoscaler) */
	double warm_ms_p50;                  /* swarmd's warm_ms: the worker's start to ready */
	double wake_ms_p50, wake_ms_max;     /* the open to the autoscaler's wake (its next tick) */
	double rest_ms_p50; /* what is left after the wake and warm_ms: placement, attach (the
			     * worker loads the model), the open's reply, the request */
};

/* The overhead case on one model. Fills *out; a MiniLM that is not there (or not imported
 * at sequence length 32) is skipped: returns 0 with out->skipped set. */
int bench_model_overhead_run(const struct bench_model_opts *o, enum bench_model_kind kind,
			     struct bench_model_overhead *out);

/* The overhead case on GPU 0 (see "gpu overhead" above) for the small ranker or the
 * identity. Fills *out; without a usable GPU returns 0 with out->skipped set and out->why
 * "no GPU (<reason>)". */
int bench_model_gpu_overhead_run(const struct bench_model_opts *o, enum bench_model_kind kind,
				 struct bench_model_overhead *out);

/* The batching case on ranker r. Fills *out. */
int bench_model_batching_run(const struct bench_model_opts *o, const struct bench_ranker *r,
			     struct bench_model_batching *out);

/* The scaleup case on the small ranker: o->quick ? 3 : 10 runs. Fills *out. */
int bench_model_scaleup_run(const struct bench_model_opts *o, struct bench_model_scaleup *out);

#endif /* SWARM_BENCH_MODEL_BENCH_H */
