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
 */
#include "bench/balance_bench.h"
#include "bench/control_bench.h"
#include "bench/baselines.h"
#include "bench/daemon.h"
#include "bench/load.h"
#include "bench/model_bench.h"
#include "bench/onnx_bench.h"
#include "bench/ranker.h"
#include "tools/json_out.h"

#include <swarm/swarm.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
	BENCH_CASE_ALL = 0x7fffu,
};

/* Iterations per case, before --quick divides them by 10. */
struct bench_counts {
	size_t spin, sleep, socket, bw_1m, bw_16m;
};

static const struct bench_counts bench_full_counts = {
	.spin = 200000,
	.sleep = 50000,
	.socket = 50000,
	.bw_1m = 2000,
	.bw_16m = 200,
};

struct bench_opts {
	const char *socket; /* an external swarmd, or NULL to start our own */
	const char *json;
	const char *minilm;        /* --minilm, else $SWARM_MINILM_DIR, else the cache's */
	const char *write_rankers; /* --write-rankers DIR: write them and exit */
	const char *onnx;          /* --onnx, else $SWARM_ONNX_BENCH_DIR, else the cache's */
	unsigned cases;
	struct bench_counts n;
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

static struct bench_stats bench_stats_ns(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	return (struct bench_stats){
		.p50 = (double)v[bench_rank(n, 500)],
		.p99 = (double)v[bench_rank(n, 990)],
		.p999 = (double)v[bench_rank(n, 999)],
	};
}

static struct bench_stats bench_stats_gbps(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return (struct bench_stats){
		.p50 = v[bench_rank(n, 500)],
		.p99 = v[bench_rank(n, 10)],
		.p999 = v[bench_rank(n, 1)],
	};
}

/* ---- swarmd -------------------------------------------------------------------------------- */

/* Starts the benchmark's own swarmd with --spin-us spin_us on ctx's socket and devices, its
 * log in the temporary directory, and connects to it. */
static int bench_daemon_start(struct bench_ctx *ctx, struct bench_swarmd *d, unsigned spin_us,
			      swarm_client **out)
{
	if (snprintf(d->log, sizeof(d->log), "%s/swarmd-spin%u.log", ctx->tmp, spin_us) >=
	    (int)sizeof(d->log))
		return -ENAMETOOLONG;
	/* Two devices split the cores in halves: the session lands on cpu:0 (the lower half,
	 * beside the baselines' peers), and the benchmark runs pinned in the upper half, so
	 * that every case puts its two sides on the same two cores. */
	return bench_swarmd_start(d, ctx->exe_dir, ctx->sock, ctx->devices, spin_us, NULL, NULL,
				  NULL, out);
}

/* ---- runtime cases ------------------------------------------------------------------------- */

/* 1 when cpulist ("0-3,8") names cpu. */
static int bench_cpulist_has(const char *list, int cpu)
{
	while (*list) {
		char *end;
		long lo = strtol(list, &end, 10), hi = lo;
		if (end == list)
			return 0;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (cpu >= lo && cpu <= hi)
			return 1;
		list = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return 0;
	}
	return 0;
}

/* Opens an identity session whose requests hold up to rows rows, and checks that the model
 * is the one these cases assume. Says so when its worker may share this process's core: the
 * case then measures time slicing, not the runtime. */
static int bench_session_open(swarm_client *c, uint32_t rows, uint32_t slots, uint64_t spin_ns,
			      swarm_session **out)
{
	const swarm_session_opts opts = { .slots = slots, .queue_depth = slots, .max_rows = rows };
	const swarm_tensor_spec *in, *outp;
	swarm_session *s;
	int rc = swarm_session_open(c, BENCH_MODEL, 0, &opts, &s);

	if (rc) {
		const char *why = swarm_client_error(c);
		fprintf(stderr, "swarm-bench: open a session on %s (%u rows, %u slots): %s%s%s\n",
			BENCH_MODEL, rows, slots, swarm_strerror(rc), *why ? ": " : "", why);
		return rc;
	}
	in = swarm_session_input_spec(s, 0);
	outp = swarm_session_output_spec(s, 0);
	if (!in || !outp || in->dtype != SWARM_DTYPE_U8 || in->row_bytes != BENCH_ROW_BYTES ||
	    outp->dtype != SWARM_DTYPE_U8 || outp->row_bytes != BENCH_ROW_BYTES) {
		fprintf(stderr, "swarm-bench: model %s is not a u8 [-1, %u] identity\n",
			BENCH_MODEL, BENCH_ROW_BYTES);
		swarm_session_close(s);
		return -EPROTO;
	}
	swarm_session_set_spin(s, spin_ns);
	swarm_session_info info;
	int cpu = sched_getcpu();
	if (swarm_session_info_get(s, &info) == 0 && bench_cpulist_has(info.cpus, cpu))
		fprintf(stderr,
			"swarm-bench: warning: the session's worker (%s, cpus %s) may run on this "
			"benchmark's cpu %d; this case measures time slicing\n",
			info.device_name, info.cpus, cpu);
	*out = s;
	return 0;
}

/* Reports a failed call and gives back r unless it is still in flight (a timed-out wait);
 * closing the session frees it then. Returns rc. */
static int bench_request_fail(swarm_request *r, const char *call, size_t i, int rc)
{
	fprintf(stderr, "swarm-bench: %s: %s at round trip %zu\n", call, swarm_strerror(rc), i);
	if (r && rc != -ETIMEDOUT)
		swarm_request_release(r);
	return rc;
}

/* 64-byte round trips: the timed span is what a client does per request (alloc, write the
 * payload, submit, wait, read the payload back, release), as the baselines copy theirs. */
static int bench_swarm_latency(swarm_session *s, size_t warmup, size_t iters, uint64_t *out_ns)
{
	uint8_t msg[BENCH_ROW_BYTES], reply[BENCH_ROW_BYTES];

	for (size_t i = 0; i < warmup + iters; i++) {
		swarm_request *r = NULL;
		uint64_t t0, t1;
		int rc;

		for (size_t j = 0; j < sizeof(msg); j++)
			msg[j] = (uint8_t)(i * 31 + j);
		t0 = bench_now_ns();
		rc = swarm_request_alloc(s, 1, &r);
		if (rc)
			return bench_request_fail(NULL, "swarm_request_alloc", i, rc);
		memcpy(swarm_request_input(r, 0), msg, sizeof(msg));
		rc = swarm_request_submit(r, 0);
		if (rc)
			return bench_request_fail(r, "swarm_request_submit", i, rc);
		rc = swarm_request_wait(r, BENCH_WAIT_NS);
		if (rc)
			return bench_request_fail(r, "swarm_request_wait", i, rc);
		memcpy(reply, swarm_request_output(r, 0), sizeof(reply));
		rc = swarm_request_release(r);
		t1 = bench_now_ns();
		if (rc)
			return bench_request_fail(NULL, "swarm_request_release", i, rc);
		if (memcmp(reply, msg, sizeof(msg)) != 0) {
			fprintf(stderr,
				"swarm-bench: round trip %zu: the output differs from the "
				"input\n",
				i);
			return -EBADMSG;
		}
		if (i >= warmup)
			out_ns[i - warmup] = t1 - t0;
	}
	return 0;
}

/* Large tensors: the input is produced in place, as a zero-copy client would, and the timed
 * span is submit to completion, in which the worker copies input to output. A changing first
 * and last byte catches a stale output; a few iterations compare the whole buffer. */
static int bench_swarm_bandwidth(swarm_session *s, uint32_t rows, uint32_t slots, size_t warmup,
				 size_t iters, double *out_gbps)
{
	const size_t bytes = (size_t)rows * BENCH_ROW_BYTES;
	const size_t total = warmup + iters;
	void *filled[8] = { 0 };
	uint32_t nfilled = 0;

	for (size_t i = 0; i < total; i++) {
		swarm_request *r = NULL;
		uint8_t *in;
		const uint8_t *out;
		uint64_t t0, t1;
		bool known = false;
		int rc = swarm_request_alloc(s, rows, &r);

		if (rc)
			return bench_request_fail(NULL, "swarm_request_alloc", i, rc);
		in = swarm_request_input(r, 0);
		for (uint32_t k = 0; k < nfilled; k++)
			known |= filled[k] == in;
		if (!known) {
			/* First use of this slot: write (and so fault in) the whole input. */
			for (size_t j = 0; j < bytes; j++)
				in[j] = (uint8_t)(j * 7 + 1);
			if (nfilled < slots && nfilled < 8)
				filled[nfilled++] = in;
		}
		in[0] = (uint8_t)i;
		in[bytes - 1] = (uint8_t)(i >> 8) ^ 0x5a;

		t0 = bench_now_ns();
		rc = swarm_request_submit(r, 0);
		if (rc)
			return bench_request_fail(r, "swarm_request_submit", i, rc);
		rc = swarm_request_wait(r, BENCH_WAIT_NS);
		t1 = bench_now_ns();
		if (rc)
			return bench_request_fail(r, "swarm_request_wait", i, rc);

		out = swarm_request_output(r, 0);
		if (out[0] != in[0] || out[bytes - 1] != in[bytes - 1] ||
		    ((i == 0 || i == total - 1 || i % (total / 4 + 1) == 0) &&
		     memcmp(out, in, bytes) != 0)) {
			fprintf(stderr,
				"swarm-bench: %zu-byte round trip %zu: the output differs "
				"from the input\n",
				bytes, i);
			swarm_request_release(r);
			return -EBADMSG;
		}
		rc = swarm_request_release(r);
		if (rc)
			return bench_request_fail(NULL, "swarm_request_release", i, rc);
		if (i >= warmup)
			out_gbps[i - warmup] = (double)bytes / (double)(t1 > t0 ? t1 - t0 : 1);
	}
	return 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

static void bench_progress(const char *what, size_t n, const char *unit)
{
	fprintf(stderr, "swarm-bench: %s (%zu %s)\n", what, n, unit);
}

static size_t bench_warmup(size_t iters) { return iters / 10 + 1; }

static struct bench_row *bench_row_add(struct bench_report *rep, const char *name, const char *unit)
{
	struct bench_row *row = &rep->rows[rep->n++];

	snprintf(row->name, sizeof(row->name), "%s", name);
	row->unit = unit;
	return row;
}

static int bench_baseline_ns(struct bench_ctx *ctx, const char *what, size_t iters,
			     int (*fn)(size_t, size_t, uint64_t *), struct bench_stats *out)
{
	int rc;

	bench_progress(what, iters, "round trips");
	rc = fn(bench_warmup(iters), iters, ctx->ns);
	if (rc) {
		fprintf(stderr, "swarm-bench: baseline %s failed: %s\n", what, strerror(-rc));
		return rc;
	}
	*out = bench_stats_ns(ctx->ns, iters);
	return 0;
}

static int bench_baseline_bw(struct bench_ctx *ctx, size_t bytes, size_t iters,
			     struct bench_stats *out)
{
	int rc;

	bench_progress(bytes == (1u << 20) ? "memcpy 1 MiB" : "memcpy 16 MiB", iters, "copies");
	rc = bench_baseline_memcpy(bytes, bench_warmup(iters), iters, ctx->gbps);
	if (rc) {
		fprintf(stderr, "swarm-bench: baseline memcpy of %zu bytes failed: %s\n", bytes,
			strerror(-rc));
		return rc;
	}
	*out = bench_stats_gbps(ctx->gbps, iters);
	return 0;
}

/* Connects to --socket, or starts a swarmd with --spin-us spin_us. */
static int bench_connect(struct bench_ctx *ctx, struct bench_swarmd *d, unsigned spin_us,
			 swarm_client **c)
{
	int rc;

	d->pid = 0;
	if (!ctx->o.socket)
		return bench_daemon_start(ctx, d, spin_us, c);
	rc = swarm_connect(ctx->o.socket, c);
	if (rc)
		fprintf(stderr, "swarm-bench: connect to swarmd on %s: %s\n", ctx->o.socket,
			swarm_strerror(rc));
	return rc;
}

static int bench_disconnect(struct bench_swarmd *d, swarm_client *c)
{
	if (c)
		swarm_disconnect(c);
	return bench_swarmd_stop(d);
}

/* The spinning cases: 64 B against the cache-line ping-pong, then the large tensors against
 * memcpy, all on one swarmd with --spin-us 1000; then the socket echoes. */
static int bench_run_spinning(struct bench_ctx *ctx, struct bench_report *rep)
{
	const unsigned cases = ctx->o.cases;
	struct bench_stats cl = { 0 }, m1 = { 0 }, m16 = { 0 }, unx, tcp;
	struct bench_stats spin = { 0 }, t1 = { 0 }, t16 = { 0 };
	struct bench_swarmd d = { 0 };
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	struct bench_row *row;
	int rc;

	if ((cases & BENCH_CASE_SPIN) &&
	    (rc = bench_baseline_ns(ctx, "cache-line ping-pong", ctx->o.n.spin,
				    bench_baseline_cacheline, &cl)))
		return rc;
	if ((cases & BENCH_CASE_1M) && (rc = bench_baseline_bw(ctx, 1u << 20, ctx->o.n.bw_1m, &m1)))
		return rc;
	if ((cases & BENCH_CASE_16M) &&
	    (rc = bench_baseline_bw(ctx, 16u << 20, ctx->o.n.bw_16m, &m16)))
		return rc;

	rc = bench_connect(ctx, &d, BENCH_DAEMON_SPIN_US, &c);
	if (rc)
		return rc;
	if (cases & BENCH_CASE_SPIN) {
		bench_progress("swarm 64 B, spinning", ctx->o.n.spin, "round trips");
		rc = bench_session_open(c, 1, 4, BENCH_SPIN_FOREVER_NS, &s);
		if (rc == 0)
			rc = bench_swarm_latency(s, bench_warmup(ctx->o.n.spin), ctx->o.n.spin,
						 ctx->ns);
		if (s)
			swarm_session_close(s);
		s = NULL;
		if (rc)
			goto err_disconnect;
		spin = bench_stats_ns(ctx->ns, ctx->o.n.spin);
	}
	for (int big = 0; big < 2; big++) {
		const unsigned which = big ? BENCH_CASE_16M : BENCH_CASE_1M;
		const uint32_t rows = (big ? 16u << 20 : 1u << 20) / BENCH_ROW_BYTES;
		const size_t iters = big ? ctx->o.n.bw_16m : ctx->o.n.bw_1m;

		if (!(cases & which))
			continue;
		bench_progress(big ? "swarm 16 MiB tensor" : "swarm 1 MiB tensor", iters,
			       "round trips");
		rc = bench_session_open(c, rows, 2, BENCH_SPIN_FOREVER_NS, &s);
		if (rc == 0)
			rc = bench_swarm_bandwidth(s, rows, 2, bench_warmup(iters), iters,
						   ctx->gbps);
		if (s)
			swarm_session_close(s);
		s = NULL;
		if (rc)
			goto err_disconnect;
		*(big ? &t16 : &t1) = bench_stats_gbps(ctx->gbps, iters);
	}
	rc = bench_disconnect(&d, c);
	c = NULL;
	if (rc)
		return rc;

	if (cases & BENCH_CASE_SPIN) {
		if ((rc = bench_baseline_ns(ctx, "unix socket echo", ctx->o.n.socket,
					    bench_baseline_unix, &unx)) ||
		    (rc = bench_baseline_ns(ctx, "tcp loopback echo", ctx->o.n.socket,
					    bench_baseline_tcp, &tcp)))
			return rc;

		row = bench_row_add(rep, "64B spin", "ns");
		row->s = spin;
		row->base_name = "cache-line ping-pong";
		row->b = cl;
		row->ratio = spin.p50 / cl.p50;
		row->target = "p50 <= 2.5x, p99 < 2 us";
		row->met = row->ratio <= 2.5 && spin.p99 < 2000.0;

		row = bench_row_add(rep, "64B spin vs unix socket", "ns");
		row->s = spin;
		row->base_name = "unix socket echo";
		row->b = unx;
		row->ratio = unx.p50 / spin.p50;
		row->target = "baseline/swarm >= 20x";
		row->met = row->ratio >= 20.0;

		row = bench_row_add(rep, "64B spin vs tcp loopback", "ns");
		row->s = spin;
		row->base_name = "tcp loopback echo";
		row->b = tcp;
		row->ratio = tcp.p50 / spin.p50;
		row->target = "baseline/swarm >= 20x";
		row->met = row->ratio >= 20.0;
	}
	for (int big = 0; big < 2; big++) {
		if (!(cases & (big ? BENCH_CASE_16M : BENCH_CASE_1M)))
			continue;
		row = bench_row_add(rep, big ? "16MiB tensor" : "1MiB tensor", "GB/s");
		row->s = big ? t16 : t1;
		row->base_name = big ? "memcpy 16MiB" : "memcpy 1MiB";
		row->b = big ? m16 : m1;
		row->ratio = row->s.p50 / row->b.p50;
		row->target = "swarm/memcpy >= 0.8x";
		row->met = row->ratio >= 0.8;
	}
	return 0;

err_disconnect:
	bench_disconnect(&d, c);
	return rc;
}

/* The sleeping case: 64 B with both sides asleep between requests (client spin 0, swarmd
 * --spin-us 0) against the futex ping-pong. */
static int bench_run_sleeping(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct bench_stats fx, sl;
	struct bench_swarmd d = { 0 };
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	struct bench_row *row;
	int rc;

	rc = bench_baseline_ns(ctx, "futex ping-pong", ctx->o.n.sleep, bench_baseline_futex, &fx);
	if (rc)
		return rc;
	rc = bench_connect(ctx, &d, 0, &c);
	if (rc)
		return rc;
	bench_progress("swarm 64 B, sleeping", ctx->o.n.sleep, "round trips");
	rc = bench_session_open(c, 1, 4, 0, &s);
	if (rc == 0)
		rc = bench_swarm_latency(s, bench_warmup(ctx->o.n.sleep), ctx->o.n.sleep, ctx->ns);
	if (s)
		swarm_session_close(s);
	if (rc) {
		bench_disconnect(&d, c);
		return rc;
	}
	rc = bench_disconnect(&d, c);
	if (rc)
		return rc;
	sl = bench_stats_ns(ctx->ns, ctx->o.n.sleep);

	row = bench_row_add(rep, "64B sleep", "ns");
	row->s = sl;
	row->base_name = "futex ping-pong";
	row->b = fx;
	row->ratio = sl.p50 / fx.p50;
	row->target = "p50 <= 1.2x";
	row->met = row->ratio <= 1.2;
	return 0;
}

/* ---- output -------------------------------------------------------------------------------- */

struct bench_machine {
	long nproc;
	char cpu[128];
	char kernel[160];
};

static void bench_machine_get(struct bench_machine *m)
{
	struct utsname u;
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "re");

	m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(m->cpu, sizeof(m->cpu), "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) != 0 || !colon)
			continue;
		colon += 1 + (colon[1] == ' ');
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(m->cpu, sizeof(m->cpu), "%s", colon);
		break;
	}
	if (f)
		fclose(f);
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
	else
		snprintf(m->kernel, sizeof(m->kernel), "unknown");
}

static void bench_fmt(char *buf, size_t len, const char *unit, double v)
{
	snprintf(buf, len, strcmp(unit, "GB/s") == 0 ? "%.2f" : "%.0f", v);
}

static void bench_table_print(const struct bench_report *rep)
{
	printf("\n%-32s %-4s %9s %9s %9s | %-20s %9s %9s %9s | %7s  %-24s %s\n", "case", "unit",
	       "p50", "p99", "p99.9", "baseline", "p50", "p99", "p99.9", "ratio", "target", "met");
	for (int i = 0; i < rep->n; i++) {
		const struct bench_row *r = &rep->rows[i];
		char v[6][32];

		if (r->skipped) {
			printf("%-32s skipped (the reason is below)\n", r->name);
			continue;
		}
		bench_fmt(v[0], sizeof(v[0]), r->unit, r->s.p50);
		bench_fmt(v[1], sizeof(v[1]), r->unit, r->s.p99);
		bench_fmt(v[2], sizeof(v[2]), r->unit, r->s.p999);
		bench_fmt(v[3], sizeof(v[3]), r->unit, r->b.p50);
		bench_fmt(v[4], sizeof(v[4]), r->unit, r->b.p99);
		bench_fmt(v[5], sizeof(v[5]), r->unit, r->b.p999);
		printf("%-32s %-4s %9s %9s %9s | %-20s %9s %9s %9s | %6.2fx  %-24s %s\n", r->name,
		       r->unit, v[0], v[1], v[2], r->base_name, v[3], v[4], v[5], r->ratio,
		       r->target ? r->target : "-",
		       !r->target    ? "-" :
		       r->unresolved ? "noise" :
		       r->met        ? "yes" :
				       "NO");
	}
	printf("(GB/s rows: p99 and p99.9 are the bandwidth 99%% and 99.9%% of iterations "
	       "reached. Ratio: swarm/baseline p50, or baseline/swarm for the transport rows;\n"
	       " req/s rows: one throughput per run, in every column, ratio batched/unbatched.)\n");
	for (int i = 0; i < rep->n; i++)
		if (rep->rows[i].note[0])
			printf("%s: %s\n", rep->rows[i].name, rep->rows[i].note);
}

static json_t *bench_json_row(const struct bench_row *r)
{
	if (r->skipped)
		return json_pack("{s:o, s:b, s:o}", "name", swarm_json_str(r->name), "skipped", 1,
				 "note", swarm_json_str(r->note));
	json_t *j = json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:o}", "name",
		swarm_json_str(r->name), "unit", swarm_json_str(r->unit), "p50",
		swarm_json_number("%.3f", r->s.p50), "p99", swarm_json_number("%.3f", r->s.p99),
		"p999", swarm_json_number("%.3f", r->s.p999), "baseline", "name",
		swarm_json_str(r->base_name), "p50", swarm_json_number("%.3f", r->b.p50), "p99",
		swarm_json_number("%.3f", r->b.p99), "p999", swarm_json_number("%.3f", r->b.p999),
		"ratio", swarm_json_number("%.4f", r->ratio), "target",
		r->target ? swarm_json_str(r->target) : json_null(), "met",
		!r->target || r->unresolved ? json_null() : json_boolean(r->met));
	if (r->note[0])
		json_object_set_new(j, "note", swarm_json_str(r->note));
	return j;
}

static int bench_json_write(const char *path, const struct bench_machine *m,
			    const struct bench_opts *o, const struct bench_report *rep)
{
	FILE *f = fopen(path, "we");
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: cannot write %s: %s\n", path, strerror(-rc));
		return rc;
	}
	json_t *cases = json_array();
	for (int i = 0; i < rep->n; i++)
		json_array_append_new(cases, bench_json_row(&rep->rows[i]));
	rc = swarm_json_write(f, json_pack("{s:{s:I, s:o, s:o}, s:o, s:b, s:o}", "machine", "nproc",
					   (json_int_t)m->nproc, "cpu", swarm_json_str(m->cpu),
					   "kernel", swarm_json_str(m->kernel), "swarmd",
					   swarm_json_str(o->socket ? o->socket : "own"), "quick",
					   o->n.spin < bench_full_counts.spin, "cases", cases));
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc)
		fprintf(stderr, "swarm-bench: writing %s failed: %s\n", path, strerror(-rc));
	return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: swarm-bench [--cases LIST] [--json FILE] [--quick] [--socket PATH]\n"
		"                   [--minilm DIR]    |    swarm-bench --write-rankers DIR\n"
		"Round trips through swarm's identity model (u8 [-1, 64]), each against a baseline\n"
		"measured in the same run; prints a table with each target and whether it was met.\n"
		"\n"
		"Cases (--cases, a comma list; default all):\n"
		"  spin   64 B request and reply, client and worker both spinning, timed from\n"
		"         alloc to release; against two processes ping-ponging one cache line\n"
		"         each way (target: p50 within 2.5x, p99 under 2 us). Also compared with a\n"
		"         unix socket echo and a TCP loopback echo of the same 64 B (target: at\n"
		"         least 20x faster at p50).\n"
		"  sleep  64 B round trip with client and worker asleep between requests (client\n"
		"         spin 0, swarmd --spin-us 0); against a futex ping-pong of two processes\n"
		"         (target: p50 within 1.2x).\n"
		"  1m     1 MiB tensor round trip (input produced in place; the worker copies it to\n"
		"         the output), timed from submit to completion, in GB/s; against memcpy of\n"
		"         1 MiB (target: at least 0.8x of its bandwidth).\n"
		"  16m    the same with 16 MiB.\n"
		"  load   weight loading of a 1 GiB safetensors file (128 MiB with --quick):\n"
		"         swarm's loader (mmap and first touch of every page; also with its\n"
		"         SHA-256 check) against read() into malloc'd memory, from the page\n"
		"         cache and from disk (pages dropped with posix_fadvise). Reported,\n"
		"         no target on the CPU.\n"
		"  overhead  a real model, the small DLRM-style ranker of\n"
		"         tools/make-ranker-model.py (made in C, published into a registry of its\n"
		"         own, served by a swarmd of its own even with --socket): batch 1 through\n"
		"         swarm (max_batch 1, client and worker spinning) against the same graph\n"
		"         and weights run in this process on the worker's cores, blocks of the two\n"
		"         interleaved (target: at most 2 us added at p50).\n"
		"  minilm  the same measurement on all-MiniLM-L6-v2 at sequence length %d, as\n"
		"         tools/import-minilm.py imported it (--minilm); skipped, saying how to\n"
		"         get it, when it is not there.\n"
		"  batching  %d client threads on this benchmark's cpu, one session and one row a\n"
		"         request each, closed loop, against a swarmd of one device whose worker\n"
		"         has cpu 0 alone; for the small ranker and then the production-shaped one\n"
		"         (tools/make-ranker-model.py --bottom 512,256,64 --top 512,256,1): max_batch\n"
		"         1, then max_batch 16 with queue delay 100 us (the default, reported),\n"
		"         0 and 400 us, max_batch 8 with 100 us and 256 with 50 us, in 3 rounds of\n"
		"         1 s per deploy taken in turn (one round of 0.5 s with --quick) (target:\n"
		"         at least 3x the requests per second at the same p99); with the worker's\n"
		"         busy time per request and the graph's own time per row at 16 rows\n"
		"         against 1 (the most batching can save the worker).\n"
		"  numa   on a machine of two NUMA nodes or more: 64 B round trips from a thread\n"
		"         on node 0 to the device of node 0 against the device of node 1 (each\n"
		"         session opened from its node, so that the balancer placed it there),\n"
		"         blocks interleaved; reported, no target. Skipped, saying so, on one node.\n"
		"  migration  one client doing 64 B round trips while its session is moved\n"
		"         between the two devices of its own swarmd (swarm device drain of the one\n"
		"         serving it, then resume), 20 moves (4 with --quick): the pause of a move\n"
		"         is the longest gap between two completions from the drain to the new\n"
		"         placement plus 20 ms; p50 and max over the moves, against the round trip\n"
		"         with no move. Reported, no target; every request is checked.\n"
		"  scaleup  scale-up from zero: %d runs (3 with --quick), each starting a fresh\n"
		"         swarmd --devices cpu:1 --autoscale --autoscale-idle 0 (its device PARKED,\n"
		"         no worker) on a registry of its own, then timing from just before\n"
		"         swarm_session_open on the small ranker to the release of its first\n"
		"         request (one row, checked against the in-process graph, the client\n"
		"         spinning; the worker on cpu 0 alone, by a one-core --topology): the open\n"
		"         waits for the autoscaler's next tick (100 ms) to wake the device and for\n"
		"         its worker to start; the runs open at phases spread over the tick. p50\n"
		"         and max over the runs (max in the p99 and p99.9 columns), against the\n"
		"         same open and first request on a fresh swarmd whose device is already\n"
		"         ACTIVE (no --autoscale), in the same runs; with swarmd's warm_ms (worker\n"
		"         start to ready) read from its log. Reported, no target.\n"
		"  gpu-identity  the overhead measurement on GPU 0: a node-list model of one\n"
		"         identity node over f32 [-1, 16] (64 B in and out), max_batch 1, served\n"
		"         by a swarmd --devices gpu of its own (one GPU worker, the client's slots\n"
		"         in the segment the worker pinned), against the same manifest's graph on\n"
		"         the CUDA device in this process, called on pinned host buffers (upload,\n"
		"         the nodes, download, synchronise: what the worker does per request);\n"
		"         both sides warmed up past CUDA graph capture before timing (target: at\n"
		"         most 2 us added at p50). Skipped, saying \"skipped: no GPU (<reason>)\",\n"
		"         without a GPU or without CUDA built in.\n"
		"  gpu-ranker  the same with the small ranker of the overhead case.\n"
		"  control  the control plane, on a swarmd of its own with four CPU devices:\n"
		"         opens and closes a second from 8 clients at once (against the same\n"
		"         clients connecting and disconnecting), and `swarm status` from start to\n"
		"         exit with 1,000 sessions open (against none). Reported, no target.\n"
		"  onnx   compute against ONNX Runtime: each model of the --onnx directory's\n"
		"         models.txt (bench/onnx-prepare.sh: all-MiniLM-L6-v2 at 32 and 128\n"
		"         tokens, batch 1 and 8; the production-shaped ranker, batch 1 and 64;\n"
		"         the rapidocr classifier, batch 1 and 8, and detector, batch 1), its\n"
		"         graph built in this process on a one-thread CPU device (weights\n"
		"         prepared once, as a worker's are), against onnxruntime on one intra-op\n"
		"         thread in a python3 child (bench/ort_runner.py; the Python call's few\n"
		"         microseconds are in its times, nothing subtracted) on the same cpu,\n"
		"         blocks interleaved, every output compared first (target: swarm at most\n"
		"         1.0x ONNX Runtime's p50, issue 13's 1.25x tightened; --quick: the\n"
		"         first batch only). First a row of the machine's GEMM peak (GFLOP/s, against\n"
		"         OpenBLAS); each model's note names both sides' slowest op types, from a\n"
		"         profile of each, with GFLOP/s for GEMMs, attention and convs\n"
		"         (SWARM_BENCH_PROFILE=1 prints every op type, =2 every node with its\n"
		"         kernel, shapes and fused activation). Models\n"
		"         marked overhead: batch 1 through a swarmd of its own against the same\n"
		"         graph in process, as the overhead case (target: at most 2 us added).\n"
		"         Then, on a machine of 2 cpus or more, each model at batch 1 with as many\n"
		"         threads on each side (swarm's device, ORT's intra-op; ORT's pool\n"
		"         not spinning between calls, so that it leaves swarm's blocks the\n"
		"         cpus), unpinned; reported, no target.\n"
		"         Skipped, saying why, without the directory or onnxruntime.\n"
		"  all    every case.\n"
		"\n"
		"Options:\n"
		"  --socket PATH  use the swarmd running there (its --spin-us is whatever it is);\n"
		"                 default: start <dir of this binary>/swarmd --devices cpu:2, once\n"
		"                 with --spin-us %u (spin, 1m, 16m) and once with 0 (sleep)\n"
		"  --json FILE    also write one record per case to FILE\n"
		"  --quick        a tenth of the iterations (a smoke run)\n"
		"  --minilm DIR   the imported MiniLM of the minilm case (minilm.safetensors and\n"
		"                 minilm.json from tools/import-minilm.py SOURCE DIR --seq-len %d);\n"
		"                 default $SWARM_MINILM_DIR, else ${SWARM_CACHE:-~/.cache/swarm}/\n"
		"                 minilm-s32\n"
		"  --onnx DIR     the onnx case's models (bench/onnx-prepare.sh DIR makes it);\n"
		"                 default $SWARM_ONNX_BENCH_DIR, else ${SWARM_CACHE:-~/.cache/\n"
		"                 swarm}/onnx-bench\n"
		"  --write-rankers DIR  write the small and the production ranker as\n"
		"                 DIR/<name>/ranker.safetensors and ranker.json (what\n"
		"                 tools/make-ranker-model.py writes with the same sizes) and exit\n"
		"  -h, --help     this text\n"
		"\n"
		"Placement: the benchmark pins itself to the last cpu and every peer (a baseline's\n"
		"child; the worker of device cpu:0, which gets the session; the batching case's\n"
		"one worker) to cpu 0, so that swarm and its baselines cross the same pair of\n"
		"cores.\n"
		"\n"
		"Latencies are in ns (CLOCK_MONOTONIC, per round trip, warm-up excluded, nearest-rank\n"
		"percentiles). Exit status 0 when the benchmark ran, whether or not targets were met.\n",
		BENCH_MINILM_SEQ, BENCH_MODEL_CLIENTS, BENCH_SCALEUP_RUNS, BENCH_DAEMON_SPIN_US,
		BENCH_MINILM_SEQ);
}

static int bench_cases_parse(const char *list, unsigned *out)
{
	char buf[128], *save = NULL;
	unsigned cases = 0;

	if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf))
		return -EINVAL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "spin") == 0)
			cases |= BENCH_CASE_SPIN;
		else if (strcmp(t, "sleep") == 0)
			cases |= BENCH_CASE_SLEEP;
		else if (strcmp(t, "1m") == 0)
			cases |= BENCH_CASE_1M;
		else if (strcmp(t, "16m") == 0)
			cases |= BENCH_CASE_16M;
		else if (strcmp(t, "load") == 0)
			cases |= BENCH_CASE_LOAD;
		else if (strcmp(t, "overhead") == 0)
			cases |= BENCH_CASE_OVERHEAD;
		else if (strcmp(t, "batching") == 0)
			cases |= BENCH_CASE_BATCHING;
		else if (strcmp(t, "minilm") == 0)
			cases |= BENCH_CASE_MINILM;
		else if (strcmp(t, "numa") == 0)
			cases |= BENCH_CASE_NUMA;
		else if (strcmp(t, "migration") == 0)
			cases |= BENCH_CASE_MIGRATION;
		else if (strcmp(t, "scaleup") == 0)
			cases |= BENCH_CASE_SCALEUP;
		else if (strcmp(t, "gpu-identity") == 0)
			cases |= BENCH_CASE_GPU_IDENTITY;
		else if (strcmp(t, "gpu-ranker") == 0)
			cases |= BENCH_CASE_GPU_RANKER;
		else if (strcmp(t, "onnx") == 0)
			cases |= BENCH_CASE_ONNX;
		else if (strcmp(t, "control") == 0)
			cases |= BENCH_CASE_CONTROL;
		else if (strcmp(t, "all") == 0)
			cases |= BENCH_CASE_ALL;
		else
			return -EINVAL;
	}
	if (!cases)
		return -EINVAL;
	*out = cases;
	return 0;
}

static int bench_opts_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longs[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", required_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "cases", required_argument, NULL, 'c' },
		{ "minilm", required_argument, NULL, 'm' },
		{ "onnx", required_argument, NULL, 'o' },
		{ "write-rankers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*o = (struct bench_opts){ .cases = BENCH_CASE_ALL, .n = bench_full_counts };
	while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (ch) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'm':
			o->minilm = optarg;
			break;
		case 'o':
			o->onnx = optarg;
			break;
		case 'w':
			o->write_rankers = optarg;
			break;
		case 'q':
			o->n = (struct bench_counts){ bench_full_counts.spin / 10,
						      bench_full_counts.sleep / 10,
						      bench_full_counts.socket / 10,
						      bench_full_counts.bw_1m / 10,
						      bench_full_counts.bw_16m / 10 };
			break;
		case 'c':
			if (bench_cases_parse(optarg, &o->cases) != 0) {
				fprintf(stderr,
					"swarm-bench: bad --cases '%s' (a comma list of "
					"spin,sleep,1m,16m,load,overhead,minilm,batching,numa,\n"
					"migration,scaleup,gpu-identity,gpu-ranker,onnx,all)\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			bench_usage(stdout);
			return 1;
		default:
			bench_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "swarm-bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int bench_cmp_gbps(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* GB/s over a few repetitions: p50 the median, p99 and p99.9 the worst. */
static struct bench_stats bench_reps(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, bench_cmp_gbps);
	return (struct bench_stats){ v[n / 2], v[n - 1], v[n - 1] };
}

/* Weight loading (registry/loader.c): mmap and first touch of a 1 GiB safetensors file,
 * against read() into malloc'd memory, from the page cache and from disk. No target on the
 * CPU (the GPU issue sets one against PyTorch); the ratios are reported. */
static int bench_run_load(struct bench_ctx *ctx, struct bench_report *rep)
{
	char dir[PATH_MAX];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/swarm-bench-load.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		int rc = -errno;
		fprintf(stderr, "swarm-bench: load: mkdtemp: %s\n", strerror(-rc));
		return rc;
	}
	size_t bytes = ctx->o.n.spin < bench_full_counts.spin ? BENCH_LOAD_BYTES / 8 :
								BENCH_LOAD_BYTES;
	int reps = ctx->o.n.spin < bench_full_counts.spin ? 3 : BENCH_LOAD_REPS;
	struct bench_load_result r;
	bench_progress("weight load (mmap + first touch vs read into malloc)", (size_t)reps,
		       "loads each way");
	int rc = bench_load_run(dir, bytes, reps, &r);
	rmdir(dir);
	if (rc)
		return rc;
	static char names[3][40];
	snprintf(names[0], sizeof names[0], "load %zuMiB mmap, cached", bytes >> 20);
	snprintf(names[1], sizeof names[1], "load %zuMiB mmap+sha256", bytes >> 20);
	snprintf(names[2], sizeof names[2], "load %zuMiB mmap, disk", bytes >> 20);
	struct bench_stats rw = bench_reps(r.read_warm, reps);
	struct bench_row *row = bench_row_add(rep, names[0], "GB/s");
	row->s = bench_reps(r.mmap_warm, reps);
	row->base_name = "read+malloc, cached";
	row->b = rw;
	row->ratio = row->s.p50 / row->b.p50;
	row->target = NULL;
	row = bench_row_add(rep, names[1], "GB/s");
	row->s = bench_reps(r.verify_warm, reps);
	row->base_name = "read+malloc, cached";
	row->b = rw;
	row->ratio = row->s.p50 / row->b.p50;
	row->target = NULL;
	if (r.cold_ok) {
		row = bench_row_add(rep, names[2], "GB/s");
		row->s = bench_reps(r.mmap_cold, reps);
		row->base_name = "read+malloc, disk";
		row->b = bench_reps(r.read_cold, reps);
		row->ratio = row->s.p50 / row->b.p50;
		row->target = NULL;
	}
	return 0;
}

static struct bench_stats bench_model_stats_row(struct bench_model_stats s)
{
	return (struct bench_stats){ s.p50, s.p99, s.p999 };
}

/* One overhead row: a model at batch 1 through swarm against the same graph in-process. */
static void bench_overhead_row(struct bench_report *rep, const char *name,
			       const struct bench_model_overhead *ov)
{
	struct bench_row *row = bench_row_add(rep, name, "ns");

	if (ov->skipped) {
		row->skipped = true;
		snprintf(row->note, sizeof row->note, "skipped: %s", ov->why);
		return;
	}
	row->s = bench_model_stats_row(ov->swarm);
	row->base_name = "same graph in-process";
	row->b = bench_model_stats_row(ov->inproc);
	row->ratio = row->s.p50 / row->b.p50;
	row->target = "added <= 2 us at p50";
	const double added = row->s.p50 - row->b.p50;
	row->met = added <= 2000.0;
	/* a difference inside the spread of the in-process blocks alone, when that spread
	 * exceeds the target, says neither yes nor no */
	row->unresolved = fabs(added) < ov->drift_ns && ov->drift_ns > 2000.0;
	snprintf(row->note, sizeof row->note,
		 "swarm adds %.0f ns at p50 and %.0f ns at p99 to the in-process call (%zu calls "
		 "each, in blocks; in-process on cpus %.32s, the worker's); the in-process "
		 "block medians alone range over %.0f ns%s",
		 added, row->s.p99 - row->b.p99, ov->iters, ov->inproc_cpus, ov->drift_ns,
		 fabs(added) < ov->drift_ns && ov->drift_ns > 2000.0 ?
			 ", so this difference is within the machine's noise: the run cannot "
			 "resolve swarm's share to 2 us, only bound it by that range" :
			 "");
}

/* One overhead row of the GPU cases: bench_overhead_row's, and in its note what shows that
 * the run measured what the row says: where each side ran, whether both copied from pinned
 * memory, and that the in-process graph was replaying CUDA graphs when timed. */
static void bench_gpu_row(struct bench_report *rep, const char *name,
			  const struct bench_model_overhead *ov)
{
	struct bench_row *row;
	size_t at;

	bench_overhead_row(rep, name, ov);
	row = &rep->rows[rep->n - 1];
	if (ov->skipped)
		return;
	/* A platform that pins no shared memory (gVisor may not) measured an unpinned path:
	 * said as such, apart from a failure (docs/gpu-check.md, "Unsupported here"). */
	if (ov->worker_pinned == 0)
		printf("unsupported here: %s: the worker could not pin the session segment "
		       "(register_host_failed in swarmd's log); swarm's side copied from pageable "
		       "memory\n",
		       name);
	if (!ov->inproc_pinned)
		printf("unsupported here: %s: register_host of the in-process buffers was refused; "
		       "the baseline copied from pageable memory\n",
		       name);
	/* Printed the moment it is measured (the table comes only at the end of the run, and
	 * bench/gpu-check.sh may have to cut a run short). */
	printf("row: %s | swarm p50 %.0f ns, p99 %.0f ns | in-process p50 %.0f ns, p99 %.0f ns | "
	       "added %.0f ns at p50: %s\n",
	       name, row->s.p50, row->s.p99, row->b.p50, row->b.p99, row->s.p50 - row->b.p50,
	       row->met ? "MET (<= 2 us)" : "MISSED (> 2 us)");
	fflush(stdout);
	at = strlen(row->note);
	snprintf(row->note + at, sizeof row->note - at,
		 "; swarm: swarmd --devices gpu, worker %s, its session segment %s; in-process: "
		 "CUDA device 0, host buffers %s, %u batch size(s) replayed as CUDA graphs "
		 "(captured in the warm-up, before timing)",
		 ov->worker_device[0] ? ov->worker_device : "(not in swarmd's log)",
		 ov->worker_pinned > 0  ? "pinned (the client's slots, zero copy)" :
		 ov->worker_pinned == 0 ? "NOT pinned (register_host_failed in swarmd's log)" :
					  "of unknown state (swarmd's log unreadable)",
		 ov->inproc_pinned ? "pinned" : "NOT pinned (register_host refused)",
		 ov->inproc_captured);
}

/* "16/100us 61234/s 3.10x p99 812us" for one deploy of the batching case. */
static size_t bench_load_fmt(char *buf, size_t len, const struct bench_model_load *l,
			     const struct bench_model_load *off)
{
	int n = snprintf(buf, len, "%u/%uus %.0f/s %.2fx p99 %.0fus", l->max_batch, l->delay_us,
			 l->rps, l->rps / off->rps, l->lat.p99 / 1e3);

	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* The batching rows of one ranker: throughput (the default deploy against max_batch 1), the
 * latencies of the same runs, and the in-process graph's time per row at 16 rows against 1. */
static void bench_batching_rows(struct bench_report *rep, const struct bench_model_batching *bt)
{
	const struct bench_model_load *on = &bt->on[0], *off = &bt->off;
	struct bench_row *row;
	char tried[320] = "";
	size_t at = 0;

	for (int i = 1; i < bt->n_on && at + 2 < sizeof tried; i++) {
		at += (size_t)snprintf(tried + at, sizeof tried - at, "%s", i > 1 ? ", " : "");
		at += bench_load_fmt(tried + at, sizeof tried - at, &bt->on[i], off);
	}
	row = bench_row_add(rep, "", "req/s");
	snprintf(row->name, sizeof row->name, "batching, %s ranker", bt->ranker->name);
	row->s = (struct bench_stats){ on->rps, on->rps, on->rps };
	row->base_name = "max_batch 1";
	row->b = (struct bench_stats){ off->rps, off->rps, off->rps };
	row->ratio = on->rps / off->rps;
	row->target = ">= 3x at same p99";
	row->met = row->ratio >= 3.0 && on->lat.p99 <= off->lat.p99;
	snprintf(row->note, sizeof row->note,
		 "%s (%s); %d clients of one row on one cpu, the worker alone on another; "
		 "max_batch %u, queue delay %u us (the default), %.1f s per deploy; p99 %.0f us "
		 "batched, %.0f us unbatched (%s); worker busy %.0f%% at %.0f ns a request "
		 "batched, %.0f%% at %.0f ns unbatched; clients used %.2f and %.2f cores; other "
		 "deploys (max_batch/delay): %s",
		 bt->ranker->shape,
		 bt->ranker->flags[0] ? bt->ranker->flags : "the tool's defaults",
		 BENCH_MODEL_CLIENTS, on->max_batch, on->delay_us, bt->seconds, on->lat.p99 / 1e3,
		 off->lat.p99 / 1e3, on->lat.p99 <= off->lat.p99 ? "no worse" : "WORSE",
		 100 * on->worker_busy, on->worker_ns, 100 * off->worker_busy, off->worker_ns,
		 on->client_cpus, off->client_cpus, tried);
	row = bench_row_add(rep, "  latency (same runs)", "ns");
	row->s = bench_model_stats_row(on->lat);
	row->base_name = "max_batch 1";
	row->b = bench_model_stats_row(off->lat);
	row->ratio = on->lat.p50 / off->lat.p50;
	row->target = "p99 <= unbatched p99";
	row->met = on->lat.p99 <= off->lat.p99;
	row = bench_row_add(rep, "  graph/row, 16 rows", "ns");
	row->s = bench_model_stats_row(bt->graph[2]);
	row->base_name = "same graph, 1 row";
	row->b = bench_model_stats_row(bt->graph[0]);
	row->ratio = row->s.p50 / row->b.p50;
	row->target = NULL;
	snprintf(row->note, sizeof row->note,
		 "the %s ranker's graph in this process, ns per row at %u rows a run against "
		 "1: batching %u clients saves the worker at most %.2fx, whatever the clients "
		 "and the IPC cost (p50 ns per row at %u/%u/%u/%u rows: %.0f/%.0f/%.0f/%.0f)",
		 bt->ranker->name, bt->graph_rows[2], bt->graph_rows[2],
		 bt->graph[0].p50 / bt->graph[2].p50, bt->graph_rows[0], bt->graph_rows[1],
		 bt->graph_rows[2], bt->graph_rows[3], bt->graph[0].p50, bt->graph[1].p50,
		 bt->graph[2].p50, bt->graph[3].p50);
}

/* The scale-up row: a parked device's open and first request against an active one's. */
static void bench_scaleup_row(struct bench_report *rep, const struct bench_model_scaleup *su)
{
	struct bench_row *row = bench_row_add(rep, "scale-up PARKED to first request", "ns");

	row->s = (struct bench_stats){ su->parked_p50_ns, su->parked_max_ns, su->parked_max_ns };
	row->base_name = "same, device ACTIVE";
	row->b = (struct bench_stats){ su->active_p50_ns, su->active_max_ns, su->active_max_ns };
	row->ratio = row->s.p50 / row->b.p50;
	row->target = NULL;
	snprintf(row->note, sizeof row->note,
		 "%zu runs, each a fresh swarmd --devices cpu:1 --autoscale --autoscale-idle 0, "
		 "its worker on cpu 0 alone; just before swarm_session_open on the small ranker "
		 "to the release of its first request, client spinning; the p99 and p99.9 "
		 "columns hold the max over the runs; baseline: the same on a fresh swarmd whose "
		 "device is already ACTIVE. Of the scale-up, p50: %.1f ms from the open to the "
		 "autoscaler's wake (max %.1f ms; swarmd decides as the open arrives), "
		 "swarmd's warm_ms (worker start to ready) "
		 "%.1f ms, the rest (placement, attach with the model's load, the request) %.1f ms",
		 su->runs, su->wake_ms_p50, su->wake_ms_max, su->warm_ms_p50, su->rest_ms_p50);
}

/* The model cases of bench/model_bench.c, each with its own registry and swarmd. */
static int bench_run_models(struct bench_ctx *ctx, struct bench_report *rep)
{
	const struct bench_model_opts mo = { .exe_dir = ctx->exe_dir,
					     .devices = ctx->devices,
					     .minilm_dir = ctx->o.minilm,
					     .peer_cpu = ctx->peer_cpu,
					     .quick = ctx->o.n.spin < bench_full_counts.spin };
	static const struct bench_ranker *const rankers[] = { &bench_ranker_small,
							      &bench_ranker_production };
	int rc;

	if (ctx->o.cases & BENCH_CASE_OVERHEAD) {
		struct bench_model_overhead ov;

		rc = bench_model_overhead_run(&mo, BENCH_MODEL_RANKER, &ov);
		if (rc)
			return rc;
		bench_overhead_row(rep, "ranker b1 overhead", &ov);
	}
	if (ctx->o.cases & BENCH_CASE_MINILM) {
		struct bench_model_overhead ov;

		rc = bench_model_overhead_run(&mo, BENCH_MODEL_MINILM, &ov);
		if (rc)
			return rc;
		if (ov.skipped)
			fprintf(stderr, "swarm-bench: MiniLM overhead skipped: %s\n", ov.why);
		bench_overhead_row(rep, "MiniLM s32 b1 overhead", &ov);
	}
	for (size_t i = 0; (ctx->o.cases & BENCH_CASE_BATCHING) && i < 2; i++) {
		struct bench_model_batching *bt = calloc(1, sizeof *bt);

		rc = bt ? bench_model_batching_run(&mo, rankers[i], bt) : -ENOMEM;
		if (rc == 0)
			bench_batching_rows(rep, bt);
		free(bt);
		if (rc)
			return rc;
	}
	for (int i = 0; i < 2; i++) {
		static const char *const names[] = { "GPU identity 64B b1 overhead",
						     "GPU ranker b1 overhead" };
		struct bench_model_overhead ov;

		if (!(ctx->o.cases & (i ? BENCH_CASE_GPU_RANKER : BENCH_CASE_GPU_IDENTITY)))
			continue;
		rc = bench_model_gpu_overhead_run(
			&mo, i ? BENCH_MODEL_RANKER : BENCH_MODEL_IDENTITY, &ov);
		if (rc)
			return rc;
		if (ov.skipped)
			printf("swarm-bench: %s: skipped: %s\n", names[i], ov.why);
		bench_gpu_row(rep, names[i], &ov);
	}
	if (ctx->o.cases & BENCH_CASE_SCALEUP) {
		struct bench_model_scaleup su;

		rc = bench_model_scaleup_run(&mo, &su);
		if (rc)
			return rc;
		bench_scaleup_row(rep, &su);
	}
	return 0;
}

/* The placement cases of bench/balance_bench.c. */
static int bench_run_balance(struct bench_ctx *ctx, struct bench_report *rep)
{
	int quick = ctx->o.n.spin < bench_full_counts.spin;
	int rc;
	if (ctx->o.cases & BENCH_CASE_NUMA) {
		struct bench_balance_numa nu;
		rc = bench_balance_numa(ctx->exe_dir, quick, &nu);
		if (rc)
			return rc;
		struct bench_row *row = bench_row_add(rep, "64B numa local vs remote", "ns");
		if (nu.skipped) {
			row->skipped = true;
			snprintf(row->note, sizeof row->note, "skipped: %s", nu.why);
		} else {
			row->s = (struct bench_stats){ nu.local_p50, nu.local_p99, nu.local_p99 };
			row->base_name = "device of the other node";
			row->b =
				(struct bench_stats){ nu.remote_p50, nu.remote_p99, nu.remote_p99 };
			row->ratio = row->s.p50 / row->b.p50;
			snprintf(
				row->note, sizeof row->note,
				"%zu round trips each from a thread on node 0; p99.9 columns repeat "
				"p99",
				nu.iters);
		}
	}
	if (ctx->o.cases & BENCH_CASE_MIGRATION) {
		struct bench_balance_migration mg;
		/* The client follows its session over both cores: pinned to one, it would share
		 * it with a spinning worker half of the time. */
		cpu_set_t saved, all;
		sched_getaffinity(0, sizeof saved, &saved);
		CPU_ZERO(&all);
		for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; c++)
			CPU_SET((int)c, &all);
		sched_setaffinity(0, sizeof all, &all);
		rc = bench_balance_migration(ctx->exe_dir, quick, &mg);
		sched_setaffinity(0, sizeof saved, &saved);
		if (rc)
			return rc;
		struct bench_row *row = bench_row_add(rep, "migration pause", "ns");
		row->s = (struct bench_stats){ mg.pause_p50_us * 1e3, mg.pause_max_us * 1e3,
					       mg.pause_max_us * 1e3 };
		row->base_name = "round trip, no move";
		row->b = (struct bench_stats){ mg.rt_p50_ns, mg.rt_p99_ns, mg.rt_p99_ns };
		row->ratio = row->s.p50 / row->b.p50;
		snprintf(row->note, sizeof row->note,
			 "%zu moves (drain the serving device, then resume it); the p99 and p99.9 "
			 "columns hold the longest pause; swarmd's own detach-to-attach time, p50: "
			 "%.0f us; no request failed or was lost",
			 mg.moves, mg.swarmd_pause_p50_us);
	}
	return 0;
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
static const char *bench_cache_dir(const char *given, const char *env, const char *sub, char *buf,
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
static int bench_onnx_threads(struct bench_ctx *ctx, struct bench_report *rep, char (*names)[64],
			      int n_names, const char *runner, int quick)
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
					     .name = names[i],
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
			snprintf(name, sizeof name, "onnx %.16s b%u %dthr vs ORT", names[i],
				 b->rows, o.threads);
			struct bench_row *row =
				bench_onnx_row(rep, name, b, "onnxruntime N threads");
			row->target = NULL; /* the issue's target is one thread against one */
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

/* A reported row (no target): s against the baseline b, ratio of their p50s. */
static void bench_row_measured(struct bench_row *row, struct bench_stats s, const char *base,
			       struct bench_stats b)
{
	row->s = s;
	row->base_name = base;
	row->b = b;
	row->ratio = b.p50 > 0 ? s.p50 / b.p50 : 0;
	row->target = NULL;
}

/* The control case of bench/control_bench.c. */
static int bench_run_control(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct bench_control cb;
	int rc = bench_control(ctx->exe_dir, ctx->o.n.spin < bench_full_counts.spin, &cb);
	if (rc)
		return rc;
	struct bench_row *row = bench_row_add(rep, "control open+close", "op/s");
	const double oc = cb.open_close_per_s, cd = cb.connect_per_s;
	bench_row_measured(row, (struct bench_stats){ oc, oc, oc }, "connect+disconnect",
			   (struct bench_stats){ cd, cd, cd });
	snprintf(row->note, sizeof row->note,
		 "%u clients at once, each its own connection, a small identity session opened "
		 "and closed in a loop (an open creates the segment and its eventfds and is "
		 "attached by a worker); baseline: the same clients connecting (hello) and "
		 "disconnecting; ratio swarm/baseline",
		 cb.clients);
	row = bench_row_add(rep, "control status, 1000 sessions", "ns");
	if (cb.status_skipped) {
		row->skipped = true;
		snprintf(row->note, sizeof row->note, "skipped: %s", cb.why);
		printf("swarm-bench: control status: %s\n", row->note);
		return 0;
	}
	bench_row_measured(
		row, (struct bench_stats){ cb.status_p50_ns, cb.status_p99_ns, cb.status_p99_ns },
		"no session open",
		(struct bench_stats){ cb.idle_p50_ns, cb.idle_p99_ns, cb.idle_p99_ns });
	snprintf(row->note, sizeof row->note,
		 "`swarm status` from its start to its exit, %u runs each, with %u sessions open "
		 "(it lists the first 256) and with none; p99.9 columns repeat p99",
		 cb.status_runs, cb.sessions);
	printf("row: control: %.0f open+close/s (connect+disconnect %.0f/s); status p50 %.2f ms "
	       "with %u sessions, %.2f ms with none\n",
	       cb.open_close_per_s, cb.connect_per_s, cb.status_p50_ns / 1e6, cb.sessions,
	       cb.idle_p50_ns / 1e6);
	return 0;
}

/* The onnx case: each model of the directory's models.txt against ONNX Runtime. */
static int bench_run_onnx(struct bench_ctx *ctx, struct bench_report *rep)
{
	char list[PATH_MAX + 16], runner[PATH_MAX], names[BENCH_ONNX_MODELS][64];
	char rows_of[BENCH_ONNX_MODELS][64];
	bool overhead_of[BENCH_ONNX_MODELS];
	int n_names = 0;
	const char *env = getenv("SWARM_ORT_RUNNER");
	snprintf(runner, sizeof runner, "%s",
		 env && *env ? env : SWARM_SOURCE_DIR "/bench/ort_runner.py");
	snprintf(list, sizeof list, "%s/models.txt", ctx->o.onnx);
	FILE *f = fopen(list, "r");
	/* a line: NAME [ROWS,ROWS,...] [overhead] (default 1,8; overhead: also through swarmd) */
	for (char line[256]; f && n_names < BENCH_ONNX_MODELS && fgets(line, sizeof line, f);) {
		char *save = NULL, *t = strtok_r(line, " \t\r\n", &save);
		if (!t || t[0] == '#')
			continue;
		snprintf(names[n_names], sizeof names[0], "%.63s", t);
		snprintf(rows_of[n_names], sizeof rows_of[0], "1,8");
		overhead_of[n_names] = false;
		while ((t = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			if (strcmp(t, "overhead") == 0)
				overhead_of[n_names] = true;
			else
				snprintf(rows_of[n_names], sizeof rows_of[0], "%.63s", t);
		}
		n_names++;
	}
	if (f)
		fclose(f);
	if (n_names == 0) {
		struct bench_row *row = bench_row_add(rep, "onnx vs ORT", "ns");
		row->skipped = true;
		snprintf(row->note, sizeof row->note,
			 "skipped: no models listed in %.300s (bench/onnx-prepare.sh %.300s makes "
			 "them)",
			 list, ctx->o.onnx);
		printf("swarm-bench: onnx: %s\n", row->note);
		return 0;
	}
	/* the runner imports onnxruntime from where tools/install-pydeps.sh puts it */
	const char *pp = getenv("PYTHONPATH");
	char pylib[PATH_MAX], pypath[2 * PATH_MAX + 8];
	bench_cache_dir(NULL, NULL, "pylib", pylib, sizeof pylib);
	snprintf(pypath, sizeof pypath, "%s%s%s", pp && *pp ? pp : "", pp && *pp ? ":" : "", pylib);
	setenv("PYTHONPATH", pypath, 1);
	int quick = ctx->o.n.spin < bench_full_counts.spin;
	/* the machine's GEMM peak, which each profile's GFLOP/s reads against */
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
	for (int i = 0; i < n_names; i++) {
		struct bench_onnx_opts o = { .dir = ctx->o.onnx,
					     .name = names[i],
					     .runner = runner,
					     .seconds = quick ? 2.0 : 12.0,
					     .threads = 1,
					     .profile = true };
		/* the line's batch sizes, or SWARM_BENCH_ONNX_ROWS=1,4 for whoever tunes the
		 * kernels; a smoke run (--quick) takes the first alone */
		const char *rows_env = getenv("SWARM_BENCH_ONNX_ROWS");
		char *p = rows_env && *rows_env ? (char *)rows_env : rows_of[i], *e;
		for (unsigned long v; o.n_rows < BENCH_ONNX_MAX_ROWS &&
				      (v = strtoul(p, &e, 10)) > 0 && v <= BENCH_ONNX_ROWS_MAX;
		     p = *e ? e + 1 : e)
			o.rows[o.n_rows++] = (uint32_t)v;
		if (o.n_rows == 0)
			o.rows[o.n_rows++] = 1;
		if (quick)
			o.n_rows = 1;
		struct bench_onnx_result *r = calloc(1, sizeof *r);
		if (!r)
			return -ENOMEM;
		bench_progress("onnx: the imported graph in process vs onnxruntime, 1 thread each",
			       (size_t)o.n_rows, "batch sizes");
		int rc = bench_onnx_compute(&o, r);
		if (rc) {
			free(r);
			return rc;
		}
		char name[40];
		if (r->skipped) {
			snprintf(name, sizeof name, "onnx %.20s vs ORT", names[i]);
			struct bench_row *row = bench_row_add(rep, name, "ns");
			row->skipped = true;
			snprintf(row->note, sizeof row->note, "skipped: %s", r->why);
			printf("swarm-bench: %s: %s\n", name, row->note);
		}
		for (int k = 0; !r->skipped && k < r->n_batches; k++) {
			const struct bench_onnx_batch *b = &r->b[k];
			snprintf(name, sizeof name, "onnx %.20s b%u vs ORT", names[i], b->rows);
			struct bench_row *row =
				bench_onnx_row(rep, name, b, "onnxruntime 1 thread");
			/* the ONNX issue asked 1.25x; the compute issue asks at or below ONNX
			 * Runtime */
			row->target = "swarm <= 1.0x ORT p50";
			row->met = row->ratio <= 1.0 && b->rel_err <= 1e-4;
			char sw[256], ort[256];
			bench_onnx_ops(sw, sizeof sw, b->swarm_ops, b->n_swarm_ops);
			bench_onnx_ops(ort, sizeof ort, b->ort_ops, b->n_ort_ops);
			snprintf(
				row->note, sizeof row->note,
				"%zu runs a side; outputs match onnxruntime %s to a relative error "
				"of %.1e%s; %u swarm nodes; slowest ops per run: swarm %s; "
				"onnxruntime %s",
				b->iters, r->ort_version, b->rel_err,
				b->rel_err > 1e-4 ? " (OVER 1e-4: the row fails)" : "", r->nodes,
				sw, b->n_ort_ops ? ort : "(no profile)");
		}
		/* Through swarm against the same graph in process, at batch 1. */
		if (!r->skipped && r->n_batches > 0 && overhead_of[i]) {
			const struct bench_model_opts mo = {
				.exe_dir = ctx->exe_dir,
				.devices = ctx->devices,
				.peer_cpu = ctx->peer_cpu,
				.quick = quick,
				.onnx_dir = ctx->o.onnx,
				.onnx_name = names[i],
				.onnx_slow = r->b[0].swarm.p50 > 20e6,
			};
			struct bench_model_overhead ov;
			rc = bench_model_overhead_run(&mo, BENCH_MODEL_ONNX, &ov);
			if (rc) {
				free(r);
				return rc;
			}
			snprintf(name, sizeof name, "onnx %.20s b1 overhead", names[i]);
			bench_overhead_row(rep, name, &ov);
		}
		free(r);
	}
	return bench_onnx_threads(ctx, rep, names, n_names, runner, quick);
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
