/* model_scaleup.c: swarm-bench's scale-up case (model_bench.h): the small ranker's first
 * request on a fresh swarmd whose one device starts PARKED (the autoscaler wakes it for the
 * open), against the same on a fresh swarmd whose device is already ACTIVE, run after run;
 * what swarmd logged (the wake, warm_ms) read from its log. */
#include "bench/model_harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MB_SCALEUP_RUNS 10 /* 3 with quick */
#define MB_SCALEUP_SETS 16 /* input rows; run i sends set i % MB_SCALEUP_SETS */
#define MB_ACTIVE_WAIT_NS (10ll * 1000 * 1000 * 1000)
#define MB_ACTIVE_SETTLE_US 20000   /* an ACTIVE device idles this long (past its spin) first */
#define MB_AUTOSCALE_TICK_US 100000 /* swarmd's tick, on which the autoscaler decides */

/* Every device parked: the first open waits for the autoscaler to wake one. */
static const char *const mb_autoscale_args[] = { "--autoscale", "--autoscale-idle", "0", NULL };

/* Copies into val the value of key (key=value, up to a space) on the first line of the log at
 * path that holds event (say "event=device_active "). Returns 0, or -ENOENT when no line
 * holds both (yet). */
static int mb_log_value(const char *path, const char *event, const char *key, char *val, size_t len)
{
	const size_t klen = strlen(key);
	FILE *f = fopen(path, "re");
	char line[1024];
	int rc = -ENOENT;

	while (f && rc && fgets(line, sizeof line, f)) {
		if (!strstr(line, event))
			continue;
		for (char *p = line; (p = strstr(p, key)); p++)
			if ((p == line || p[-1] == ' ') && p[klen] == '=') {
				snprintf(val, len, "%.*s", (int)strcspn(p + klen + 1, " \n"),
					 p + klen + 1);
				rc = 0;
				break;
			}
	}
	if (f)
		fclose(f);
	return rc;
}

/* mb_log_value as a number; NAN when the log has no such value. */
static double mb_log_number(const char *path, const char *event, const char *key)
{
	char v[64], *end;
	double x;

	if (mb_log_value(path, event, key, v, sizeof v) != 0)
		return NAN;
	x = strtod(v, &end);
	return end == v ? NAN : x;
}

/* Waits up to 10 s for e's swarmd to log that its device serves. */
static int mb_wait_active(struct mb_env *e)
{
	const uint64_t end = swarm_now_ns() + MB_ACTIVE_WAIT_NS;

	while (isnan(mb_log_number(e->swarmd.log, "event=device_active ", "warm_ms"))) {
		if (swarm_now_ns() > end) {
			fprintf(stderr,
				"swarm-bench: scaleup: swarmd's device not ACTIVE in 10 s\n");
			bench_log_tail(e->swarmd.log);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
	usleep(MB_ACTIVE_SETTLE_US);
	return 0;
}

/* What one run of one side measured. */
struct mb_first {
	uint64_t ns;    /* just before swarm_session_open .. release of the first request */
	double warm_ms; /* swarmd's: the worker's start to its ready */
	double wake_ms; /* the open to swarmd's wake of the device (parked side only) */
};

/* One run of one side: a fresh swarmd on e's registry with one device (on topology, when
 * not NULL), parked (autoscaled, none kept idle) or already ACTIVE (no autoscaler); delay_us
 * after connecting, the open of model and its first request of one row on set, the client
 * spinning; then swarmd's log read and swarmd stopped. Each run has a log of its own in e's
 * directory. */
static int mb_scaleup_once(struct mb_env *e, const char *topology, bool parked, int run,
			   unsigned delay_us, const char *model, const struct mb_inputs *in,
			   int set, struct mb_first *out)
{
	if (in->out_n > MB_RANKER_OUT)
		return -EINVAL; /* got is on the stack */
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	float got[MB_RANKER_OUT];
	struct timespec rt;
	uint64_t t0, t1;
	int rc, rc2;

	snprintf(e->swarmd.log, sizeof e->swarmd.log, "%s/%s-%d.log", e->dir,
		 parked ? "parked" : "active", run);
	rc = mb_swarmd_start(e, "cpu:1", topology, parked ? mb_autoscale_args : NULL);
	if (rc)
		return rc;
	if (parked && isnan(mb_log_number(e->swarmd.log, "event=device_parked ", "ts"))) {
		fprintf(stderr, "swarm-bench: scaleup: swarmd --autoscale --autoscale-idle 0 did "
				"not park its device\n");
		bench_log_tail(e->swarmd.log);
		rc = -EPROTO;
	} else if (!parked) {
		rc = mb_wait_active(e);
	}
	if (rc == 0 && (rc = swarm_connect(e->sock, &c)) != 0)
		fprintf(stderr, "swarm-bench: scaleup: connect: %s\n", swarm_strerror(rc));
	if (rc)
		goto out;
	usleep(delay_us);

	/* swarmd logs wall-clock times: the open's, to place its wake on the same clock. */
	clock_gettime(CLOCK_REALTIME, &rt);
	t0 = swarm_now_ns();
	rc = mb_session_open(c, model, in, 4, MB_SPIN_FOREVER_NS, &s);
	if (rc == 0)
		rc = mb_swarm_call(s, in, set, got);
	t1 = swarm_now_ns();
	if (rc) {
		fprintf(stderr, "swarm-bench: scaleup: the first request on a %s device: %s\n",
			parked ? "parked" : "active", swarm_strerror(rc));
		goto out;
	}
	if (!mb_check(parked ? "scaleup" : "scaleup baseline", got, in, set)) {
		rc = -EBADMSG;
		goto out;
	}
	out->ns = t1 - t0;
	out->warm_ms = mb_log_number(e->swarmd.log, "event=device_active ", "warm_ms");
	out->wake_ms = NAN;
	if (parked) {
		double wake = mb_log_number(e->swarmd.log, "event=autoscale action=wake ", "ts");

		out->wake_ms = (wake - ((double)rt.tv_sec + (double)rt.tv_nsec / 1e9)) * 1e3;
		if (isnan(wake) || isnan(out->warm_ms)) {
			fprintf(stderr,
				"swarm-bench: scaleup: swarmd did not log the device's wake "
				"and warm_ms\n");
			bench_log_tail(e->swarmd.log);
			rc = -EPROTO;
		}
	}
out:
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	rc2 = bench_swarmd_stop(&e->swarmd);
	return rc ? rc : rc2;
}

/* What the runs of the scale-up case measured, run by run. */
struct mb_scaleup_figures {
	uint64_t parked_ns[MB_SCALEUP_RUNS], active_ns[MB_SCALEUP_RUNS];
	double warm[MB_SCALEUP_RUNS], wake[MB_SCALEUP_RUNS], rest[MB_SCALEUP_RUNS]; /* ms */
};

/* The small ranker (max_batch 1) published as name in e's registry, md and in its model and
 * input sets with their in-process outputs. */
static int mb_scaleup_model(const struct bench_model_opts *o, struct mb_env *e, const char *name,
			    struct mb_model *md, struct mb_inputs *in)
{
	const struct bench_ranker_deploy b1 = { 64, 8, 1, 0 };
	struct mb_local l = { 0 };
	int rc = mb_env_init(e, o);

	if (rc == 0)
		rc = mb_model_ranker(md, e, &bench_ranker_small, &b1);
	md->n_sets = MB_SCALEUP_SETS;
	if (rc == 0)
		rc = mb_inputs_alloc(in, md->m, md->n_sets);
	if (rc == 0)
		rc = mb_local_open_cpu(&l, md->weights, md->m);
	if (rc)
		return rc;
	rc = mb_inputs_make(&l, in, md);
	mb_local_close(&l);
	if (rc == 0)
		rc = mb_publish(e, name, md->weights, md->manifest);
	return rc;
}

/* runs runs of a parked and an active swarmd each into f. The two sides alternate which goes
 * first, so that neither always follows the other. swarmd's ticks start with it, and a client
 * connects at about the same time after every start: opened at once, every run would meet
 * swarmd's timer at the same phase (it decided only on ticks in an earlier build; it decides
 * as the open arrives now, but the rebalancer still ticks). Opens in service come at any
 * phase, so the runs open at phases spread evenly over one tick. */
static int mb_scaleup_runs(struct mb_env *e, const char *topology, int runs, const char *name,
			   const struct mb_inputs *in, struct mb_scaleup_figures *f)
{
	int rc = 0;

	for (int i = 0; rc == 0 && i < runs; i++) {
		const unsigned delay = (unsigned)(MB_AUTOSCALE_TICK_US * i / runs);
		const int set = i % MB_SCALEUP_SETS;
		struct mb_first p, a;

		rc = mb_scaleup_once(e, topology, !(i & 1), i, delay, name, in, set,
				     (i & 1) ? &a : &p);
		if (rc == 0)
			rc = mb_scaleup_once(e, topology, i & 1, i, delay, name, in, set,
					     (i & 1) ? &p : &a);
		if (rc)
			break;
		f->parked_ns[i] = p.ns;
		f->active_ns[i] = a.ns;
		f->warm[i] = p.warm_ms;
		f->wake[i] = p.wake_ms;
		f->rest[i] = (double)p.ns / 1e6 - p.wake_ms - p.warm_ms;
	}
	return rc;
}

/* out's medians and maxima over the runs of f (sorted on the way). */
static void mb_scaleup_results(struct mb_scaleup_figures *f, int runs,
			       struct bench_model_scaleup *out)
{
	out->runs = (size_t)runs;
	qsort(f->parked_ns, (size_t)runs, sizeof *f->parked_ns, mb_cmp_u64);
	qsort(f->active_ns, (size_t)runs, sizeof *f->active_ns, mb_cmp_u64);
	out->parked_p50_ns = (double)f->parked_ns[mb_rank((size_t)runs, 500)];
	out->parked_max_ns = (double)f->parked_ns[runs - 1];
	out->active_p50_ns = (double)f->active_ns[mb_rank((size_t)runs, 500)];
	out->active_max_ns = (double)f->active_ns[runs - 1];
	out->warm_ms_p50 = mb_median_double(f->warm, (size_t)runs);
	out->wake_ms_p50 = mb_median_double(f->wake, (size_t)runs); /* sorts wake */
	out->wake_ms_max = f->wake[runs - 1];
	out->rest_ms_p50 = mb_median_double(f->rest, (size_t)runs);
}

int bench_model_scaleup_run(const struct bench_model_opts *o, struct bench_model_scaleup *out)
{
	const int runs = o->quick ? 3 : MB_SCALEUP_RUNS;
	const char *name = "ranker-b1";
	struct mb_scaleup_figures f;
	char topo[PATH_MAX + 16];
	const char *topology = NULL;
	struct mb_inputs in = { 0 };
	struct mb_model md = { 0 };
	struct mb_env e;
	int rc, rc2;

	memset(out, 0, sizeof *out);
	fprintf(stderr,
		"swarm-bench: scale-up of the small ranker, %d runs: a fresh swarmd with its one "
		"device PARKED, then one already ACTIVE, open and first request on each\n",
		runs);
	rc = mb_scaleup_model(o, &e, name, &md, &in);
	/* The worker on a core of its own, as the batching case's: with the cores of the whole
	 * machine it may start beside this spinning client and share its core in scheduler
	 * slices (milliseconds), which would time the scheduler, not the scale-up. */
	if (rc == 0)
		rc = mb_topology_one_core(o, &e, topo, sizeof topo, &topology);
	if (rc == 0)
		rc = mb_scaleup_runs(&e, topology, runs, name, &in, &f);
	if (rc == 0)
		mb_scaleup_results(&f, runs, out);
	mb_inputs_free(&in);
	mb_model_free(&md);
	rc2 = mb_env_fini(&e);
	return rc ? rc : rc2;
}
