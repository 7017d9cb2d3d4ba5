/* cases_transport.c: swarm-bench's transport cases (spin, sleep, 1m, 16m): round trips of the
 * built-in identity model through a swarmd of the benchmark's own (or --socket's), each
 * against its baseline of bench/baselines.c measured in the same run: a cache-line ping-pong,
 * a futex ping-pong, unix socket and TCP loopback echoes, memcpy of the same bytes. */
#include "bench/swarm_bench.h"
#include "bench/baselines.h"
#include "bench/daemon.h"

#include <swarm/swarm.h>

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int bench_session_open(swarm_client *c, uint32_t rows, uint32_t slots, uint64_t spin_ns,
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
int bench_swarm_latency(swarm_session *s, size_t warmup, size_t iters, uint64_t *out_ns)
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

/* What the spinning cases measured: each baseline and swarm's side. */
struct bench_spin_figures {
	struct bench_stats cl, m1, m16, unx, tcp; /* the baselines */
	struct bench_stats spin, t1, t16;         /* swarm: 64 B, 1 MiB, 16 MiB */
};

/* The baselines measured before swarmd starts: the cache-line ping-pong and memcpy. */
static int bench_spin_baselines(struct bench_ctx *ctx, struct bench_spin_figures *f)
{
	const unsigned cases = ctx->o.cases;
	int rc;

	if ((cases & BENCH_CASE_SPIN) &&
	    (rc = bench_baseline_ns(ctx, "cache-line ping-pong", ctx->o.n.spin,
				    bench_baseline_cacheline, &f->cl)))
		return rc;
	if ((cases & BENCH_CASE_1M) &&
	    (rc = bench_baseline_bw(ctx, 1u << 20, ctx->o.n.bw_1m, &f->m1)))
		return rc;
	if ((cases & BENCH_CASE_16M) &&
	    (rc = bench_baseline_bw(ctx, 16u << 20, ctx->o.n.bw_16m, &f->m16)))
		return rc;
	return 0;
}

/* swarm's side, on one swarmd with --spin-us BENCH_DAEMON_SPIN_US: the 64 B round trip, then
 * the 1 MiB and 16 MiB tensors, each on a session of its own. */
static int bench_spin_swarm(struct bench_ctx *ctx, struct bench_spin_figures *f)
{
	const unsigned cases = ctx->o.cases;
	struct bench_swarmd d = { 0 };
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc = bench_connect(ctx, &d, BENCH_DAEMON_SPIN_US, &c);

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
		f->spin = bench_stats_ns(ctx->ns, ctx->o.n.spin);
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
		*(big ? &f->t16 : &f->t1) = bench_stats_gbps(ctx->gbps, iters);
	}
	return bench_disconnect(&d, c);

err_disconnect:
	bench_disconnect(&d, c);
	return rc;
}

/* The spin rows: swarm's 64 B round trip against the cache-line ping-pong and against the
 * unix socket and TCP loopback echoes, measured here, once swarmd is gone. */
static int bench_spin_rows(struct bench_ctx *ctx, struct bench_report *rep,
			   struct bench_spin_figures *f)
{
	struct bench_row *row;
	int rc;

	if ((rc = bench_baseline_ns(ctx, "unix socket echo", ctx->o.n.socket, bench_baseline_unix,
				    &f->unx)) ||
	    (rc = bench_baseline_ns(ctx, "tcp loopback echo", ctx->o.n.socket, bench_baseline_tcp,
				    &f->tcp)))
		return rc;

	row = bench_row_add(rep, "64B spin", "ns");
	row->s = f->spin;
	row->base_name = "cache-line ping-pong";
	row->b = f->cl;
	row->ratio = f->spin.p50 / f->cl.p50;
	row->target = "p50 <= 2.5x, p99 < 2 us";
	row->met = row->ratio <= 2.5 && f->spin.p99 < 2000.0;

	row = bench_row_add(rep, "64B spin vs unix socket", "ns");
	row->s = f->spin;
	row->base_name = "unix socket echo";
	row->b = f->unx;
	row->ratio = f->unx.p50 / f->spin.p50;
	row->target = "baseline/swarm >= 20x";
	row->met = row->ratio >= 20.0;

	row = bench_row_add(rep, "64B spin vs tcp loopback", "ns");
	row->s = f->spin;
	row->base_name = "tcp loopback echo";
	row->b = f->tcp;
	row->ratio = f->tcp.p50 / f->spin.p50;
	row->target = "baseline/swarm >= 20x";
	row->met = row->ratio >= 20.0;
	return 0;
}

/* The 1m and 16m rows: swarm's bandwidth against memcpy's. */
static void bench_tensor_rows(unsigned cases, struct bench_report *rep,
			      const struct bench_spin_figures *f)
{
	for (int big = 0; big < 2; big++) {
		struct bench_row *row;

		if (!(cases & (big ? BENCH_CASE_16M : BENCH_CASE_1M)))
			continue;
		row = bench_row_add(rep, big ? "16MiB tensor" : "1MiB tensor", "GB/s");
		row->s = big ? f->t16 : f->t1;
		row->base_name = big ? "memcpy 16MiB" : "memcpy 1MiB";
		row->b = big ? f->m16 : f->m1;
		row->ratio = row->s.p50 / row->b.p50;
		row->target = "swarm/memcpy >= 0.8x";
		row->met = row->ratio >= 0.8;
	}
}

/* The spinning cases: 64 B against the cache-line ping-pong, then the large tensors against
 * memcpy, all on one swarmd with --spin-us 1000; then the socket echoes. */
int bench_run_spinning(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct bench_spin_figures f = { 0 };
	int rc = bench_spin_baselines(ctx, &f);

	if (rc == 0)
		rc = bench_spin_swarm(ctx, &f);
	if (rc == 0 && (ctx->o.cases & BENCH_CASE_SPIN))
		rc = bench_spin_rows(ctx, rep, &f);
	if (rc == 0)
		bench_tensor_rows(ctx->o.cases, rep, &f);
	return rc;
}

/* The sleeping case: 64 B with both sides asleep between requests (client spin 0, swarmd
 * --spin-us 0) against the futex ping-pong. */
int bench_run_sleeping(struct bench_ctx *ctx, struct bench_report *rep)
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
