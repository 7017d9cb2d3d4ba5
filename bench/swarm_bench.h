/* swarm_bench.h: swarm-bench's hub, internal to bench/: its options, its table's rows and
 * the context main owns, shared by the files of its cases (cases_transport.c, cases_models.c,
 * cases_placement.c, cases_onnx.c, cases_python.c, cases_memory.c, cases_zipf.c), its output
 * (bench_report.c), its options (bench_opts.c) and main (swarm_bench.c). */
#ifndef SWARM_BENCH_SWARM_BENCH_H
#define SWARM_BENCH_SWARM_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <swarm/swarm.h>

#include "bench/model_bench.h"

#define BENCH_MODEL "identity"
#define BENCH_ROW_BYTES 64u
#define BENCH_WAIT_NS (10ll * 1000 * 1000 * 1000) /* a request that takes longer is an error */
#define BENCH_CONNECT_NS (10ull * 1000 * 1000 * 1000)
#define BENCH_SPIN_FOREVER_NS 1000000000ull /* the client spins 1 s before it sleeps */
#define BENCH_DAEMON_SPIN_US 1000u          /* swarmd --spin-us for the spinning cases */
#define BENCH_ROWS_MAX 48
#define BENCH_ONNX_MODELS 8           /* models of the onnx case's directory */
#define BENCH_LOAD_BYTES (1ull << 30) /* the weight-load case: a 1 GiB model */
#define BENCH_LOAD_REPS 5
#define BENCH_SCALEUP_RUNS 10 /* bench_model_scaleup_run's, for the usage text */
/* The memory case's plan (cases_memory.c), before --quick: models published, rounds of opens
 * of the resident ones, models the small budget holds, round-robin passes under it. */
#define BENCH_MEMORY_MODELS 8
#define BENCH_MEMORY_RESIDENT_ROUNDS 5
#define BENCH_MEMORY_FIT 3
#define BENCH_MEMORY_EVICT_ROUNDS 4
/* The memory-zipf case's plan (cases_zipf.c), before --quick: models published, models a
 * device's budget holds in the run with small budgets, client threads, rounds a client (its
 * popularity shifting halfway), requests a round, sessions a client keeps open, and the
 * latency objective (--objective-us; swarm-sim's default). */
#define BENCH_ZIPF_MODELS 20
#define BENCH_ZIPF_FIT 8
#define BENCH_ZIPF_THREADS 4
#define BENCH_ZIPF_ROUNDS 1000
#define BENCH_ZIPF_QUICK_ROUNDS 100
#define BENCH_ZIPF_REQUESTS 4
#define BENCH_ZIPF_CACHE 3
#define BENCH_ZIPF_OBJECTIVE_US 50000u

enum bench_case {
	BENCH_CASE_SPIN = 1u << 0,
	BENCH_CASE_SLEEP = 1u << 1,
	BENCH_CASE_1M = 1u << 2,
	BENCH_CASE_16M = 1u << 3,
	BENCH_CASE_LOAD = 1u << 4,
	BENCH_CASE_OVERHEAD = 1u << 5, /* bench/model_bench.c */
	BENCH_CASE_BATCHING = 1u << 6,
	BENCH_CASE_MINILM = 1u << 7,
	BENCH_CASE_NUMA = 1u << 8, /* bench/balance_bench.c */
	BENCH_CASE_MIGRATION = 1u << 9,
	BENCH_CASE_SCALEUP = 1u << 10, /* bench/model_bench.c */
	BENCH_CASE_GPU_IDENTITY = 1u << 11,
	BENCH_CASE_GPU_RANKER = 1u << 12,
	BENCH_CASE_ONNX = 1u << 13,    /* bench/onnx_bench.c */
	BENCH_CASE_CONTROL = 1u << 14, /* bench/control_bench.c */
	BENCH_CASE_PYTHON = 1u << 15,  /* bench/cases_python.c, bench/python/ */
	BENCH_CASE_MEMORY = 1u << 16,  /* bench/cases_memory.c */
	BENCH_CASE_ZIPF = 1u << 17,    /* bench/cases_zipf.c */
	BENCH_CASE_ALL = 0x3ffffu,
};

/* Iterations per case, before --quick divides them by 10. */
struct bench_counts {
	size_t spin, sleep, socket, bw_1m, bw_16m;
};

extern const struct bench_counts bench_full_counts;

struct bench_opts {
	const char *socket; /* an external swarmd, or NULL to start our own */
	const char *json;
	const char *minilm;        /* --minilm, else $SWARM_MINILM_DIR, else the cache's */
	const char *write_rankers; /* --write-rankers DIR: write them and exit */
	const char *onnx;          /* --onnx, else $SWARM_ONNX_BENCH_DIR, else the cache's */
	unsigned cases;
	struct bench_counts n;
	uint64_t objective_us; /* --objective-us: the memory-zipf case's latency objective */
};

/* Percentiles of one case: latencies in ns, or bandwidths in GB/s where p99 and p999 are the
 * tail (the bandwidth that 99% and 99.9% of iterations reached, i.e. the 1st and 0.1th
 * percentile), so that "p99" is the bad end in both units. */
struct bench_stats {
	double p50, p99, p999;
};

struct bench_row {
	char name[40];
	const char *unit; /* "ns" or "GB/s" */
	struct bench_stats s;
	const char *base_name;
	struct bench_stats b;
	double ratio;
	const char *target;
	bool met;
	bool unresolved; /* the run cannot tell met from missed (its noise is larger than the
			  * target): "noise" in the table, "met": null in the JSON */
	bool skipped;    /* not measured: note says why, the numbers are empty */
	char note[768];  /* printed under the table and in the JSON; "" for none */
};

struct bench_report {
	struct bench_row rows[BENCH_ROWS_MAX];
	int n;
};

/* Everything main owns, released in one place. */
struct bench_ctx {
	struct bench_opts o;
	char exe_dir[PATH_MAX];
	char tmp[PATH_MAX]; /* "" when no temporary directory was made */
	char sock[108];     /* sizeof(sun_path) */
	uint64_t *ns;       /* scratch samples, max(counts) long */
	double *gbps;
	size_t cap;
	char devices[16]; /* what the own swarmd serves: cpu:2 splits the cores in halves */
	int peer_cpu;     /* where peers run (cpu 0), -1 when the benchmark is not pinned */
	char minilm[PATH_MAX];
	char onnx[PATH_MAX];
};

/* The machine a run measured, for its first line and its JSON. */
struct bench_machine {
	long nproc;
	char cpu[128];
	char kernel[160];
};

/* ---- statistics (swarm_bench.c) ------------------------------------------------------------ */

/* Latency percentiles of n samples in ns, sorting v. */
struct bench_stats bench_stats_ns(uint64_t *v, size_t n);

/* Bandwidth percentiles of n samples in GB/s, sorting v: p99 and p99.9 the slow tail. */
struct bench_stats bench_stats_gbps(double *v, size_t n);

/* GB/s over a few repetitions: p50 the median, p99 and p99.9 the worst. */
struct bench_stats bench_reps(double *v, int n);

/* ---- the run (swarm_bench.c) --------------------------------------------------------------- */

/* Says on stderr what is measured next, n of unit. */
void bench_progress(const char *what, size_t n, const char *unit);

/* The warm-up iterations before iters timed ones. */
size_t bench_warmup(size_t iters);

/* The report's next row, named name, in unit ("ns", "GB/s", ...). */
struct bench_row *bench_row_add(struct bench_report *rep, const char *name, const char *unit);

/* A reported row (no target): s against the baseline b, ratio of their p50s. */
void bench_row_measured(struct bench_row *row, struct bench_stats s, const char *base,
			struct bench_stats b);

/* given, else $env (env may be NULL), else ${SWARM_CACHE:-$HOME/.cache/swarm}/sub, into buf:
 * where a case finds what it was prepared with. */
const char *bench_cache_dir(const char *given, const char *env, const char *sub, char *buf,
			    size_t len);

/* ---- the cases: each appends its rows to rep; 0, or -errno when it could not measure ------- */

/* spin, 1m, 16m (cases_transport.c): on one swarmd with --spin-us BENCH_DAEMON_SPIN_US. */
int bench_run_spinning(struct bench_ctx *ctx, struct bench_report *rep);

/* sleep (cases_transport.c): client and swarmd both asleep between requests. */
int bench_run_sleeping(struct bench_ctx *ctx, struct bench_report *rep);

/* load (cases_models.c): the weight loader against read() into malloc'd memory. */
int bench_run_load(struct bench_ctx *ctx, struct bench_report *rep);

/* overhead, minilm, batching, gpu-identity, gpu-ranker, scaleup (cases_models.c). */
int bench_run_models(struct bench_ctx *ctx, struct bench_report *rep);

/* One overhead row (cases_models.c): a model at batch 1 through swarm against the same graph
 * in-process; the onnx case adds one per model marked overhead. */
void bench_overhead_row(struct bench_report *rep, const char *name,
			const struct bench_model_overhead *ov);

/* numa, migration (cases_placement.c). */
int bench_run_balance(struct bench_ctx *ctx, struct bench_report *rep);

/* control (cases_placement.c). */
int bench_run_control(struct bench_ctx *ctx, struct bench_report *rep);

/* onnx (cases_onnx.c). */
int bench_run_onnx(struct bench_ctx *ctx, struct bench_report *rep);

/* python (cases_python.c): the Python client (python/swarm) run by bench/python/
 * bench_client.py in a child, against the C client and the in-process graph of this run. */
int bench_run_python(struct bench_ctx *ctx, struct bench_report *rep);

/* memory (cases_memory.c): the open of a model version resident on its device against one
 * that must be loaded and one that must evict another first (issue 18). */
int bench_run_memory(struct bench_ctx *ctx, struct bench_report *rep);

/* memory-zipf (cases_zipf.c): 20 models under a Zipf load that shifts, on two CPU devices
 * whose budgets hold 8 each, against the same load with budgets that hold all (issue 18). */
int bench_run_zipf(struct bench_ctx *ctx, struct bench_report *rep);

/* The identity's 64 B round trip in C (cases_transport.c), shared with the python case: a
 * session of rows rows and slots slots, the client spinning spin_ns before it sleeps; and
 * iters timed round trips (alloc .. release) after warmup, into out_ns. */
int bench_session_open(swarm_client *c, uint32_t rows, uint32_t slots, uint64_t spin_ns,
		       swarm_session **out);
int bench_swarm_latency(swarm_session *s, size_t warmup, size_t iters, uint64_t *out_ns);

/* ---- options and output (bench_opts.c, bench_report.c) ------------------------------------ */

/* Parses argv into o. Returns 0, 1 after --help (printed), or -EINVAL (said on stderr). */
int bench_opts_parse(int argc, char **argv, struct bench_opts *o);

/* Fills m from sysconf, /proc/cpuinfo and uname. */
void bench_machine_get(struct bench_machine *m);

/* Prints the table of rep, then each row's note. */
void bench_table_print(const struct bench_report *rep);

/* Writes rep as one JSON document to path. Returns 0 or -errno (said on stderr). */
int bench_json_write(const char *path, const struct bench_machine *m, const struct bench_opts *o,
		     const struct bench_report *rep);

#endif /* SWARM_BENCH_SWARM_BENCH_H */
