/* cases_memory.c: swarm-bench's memory case (issue 18, docs/placement.md): the open of a model
 * version its device has resident and idle, against the open of one that must be loaded, and
 * of one that must first evict the least recently used idle version to make room.
 *
 * N production-shaped rankers, each drawn from a seed of its own (so each is its own blob and
 * costs its own bytes on the device), are published into a registry of the case's own. Run 1
 * serves them on a swarmd --devices cpu:1 whose --device-memory holds them all: the first
 * open of each loads it, every later open finds it resident. Run 2 serves them on a swarmd
 * whose budget holds K < N of them, opened round robin: every open after the first K evicts
 * one. Each open is followed, outside the timed span, by one request whose output is checked
 * against its model's graph run in this process (a wrong model after an eviction fails the
 * case). Each run's swarmd log must hold the evictions the run expects (none in run 1; in run
 * 2 one an open, each of the least recently used model for the one opened) and one
 * event=weights_loaded per load (a resident open loads nothing); else the case fails. */
#include "bench/swarm_bench.h"
#include "bench/memory_harness.h"
#include "runtime/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* swarm_bench.h's plan; with --quick 4 models, 2 of them fit, 2 rounds of each run. */
#define MEM_MODELS BENCH_MEMORY_MODELS
#define MEM_FIT BENCH_MEMORY_FIT
#define MEM_RESIDENT_ROUNDS BENCH_MEMORY_RESIDENT_ROUNDS
#define MEM_EVICT_ROUNDS BENCH_MEMORY_EVICT_ROUNDS
#define MEM_SETS 4 /* input rows of each model, used in turn */
#define MEM_SAMPLES (MEM_MODELS * MEM_RESIDENT_ROUNDS)
/* The idle time before every open: longer than swarmd's 100 ms tick, on which it stamps a
 * version whose request count moved as last used, so that no two versions share a stamp and
 * the least recently used is the one opened longest ago (with room for a late tick on a busy
 * machine). It also lets the worker fall asleep, so that every open, in both runs, wakes it
 * alike. */
#define MEM_PAUSE_US 250000u

_Static_assert(MEM_EVICT_ROUNDS <= MEM_RESIDENT_ROUNDS, "run 2's samples fit MEM_SAMPLES");
_Static_assert(MEM_FIT < MEM_MODELS, "run 2 evicts");

/* The production ranker at batch 1 (requests of up to 64 rows): the same deploy for all. */
static const struct bench_ranker_deploy mem_deploy = { 64, 8, 1, 0 };

/* The case: its environment, models, plan and what it measured (open times in ns). */
struct mem_case {
	struct mb_env e;
	struct bench_model_opts mo;
	struct mh_model m[MEM_MODELS];
	int n, fit, resident_rounds, evict_rounds;
	uint64_t cost;                       /* one model's bytes on the device */
	uint64_t budget_ample, budget_tight; /* run 1's and run 2's --device-memory */
	char topo[PATH_MAX + 16];
	const char *topology; /* the worker on a core of its own, or NULL */
	uint64_t resident[MEM_SAMPLES], load[MEM_MODELS], evict[MEM_SAMPLES];
	size_t n_resident, n_load, n_evict;
	int evictions;            /* run 2's event=version_evicted lines */
	double load_ms, evict_ms; /* the worker's own load time (weights_loaded ms=), p50 */
};

/* After the pause, times the open of model i (swarm_session_open returns once the worker
 * has the version loaded) into *ns; then one request on set, checked, and the close. */
static int mem_open_once(struct mem_case *c, swarm_client *cl, int i, int set, uint64_t *ns)
{
	const struct mh_model *m = &c->m[i];
	swarm_session *s;
	uint64_t t0;
	int rc;

	usleep(MEM_PAUSE_US);
	t0 = swarm_now_ns();
	rc = mb_session_open(cl, m->name, &m->in, 4, 0, &s);
	*ns = swarm_now_ns() - t0;
	if (rc)
		return rc;
	rc = mh_call_checked("memory", m, s, set, NULL);
	swarm_session_close(s);
	return rc;
}

/* 1 when an event=version_evicted line of swarmd's log (runtime/swarmd/memory.c) says that
 * model evicted went for model wanted: "... model=<evicted> version=..." and
 * "reason=\"room for <wanted>@<version>\"". */
static bool mem_evicted_for(const char *line, const char *evicted, const char *wanted)
{
	char gone[64], room[64];

	snprintf(gone, sizeof gone, " model=%s ", evicted);
	snprintf(room, sizeof room, " reason=\"room for %s@", wanted);
	return strstr(line, gone) && strstr(line, room);
}

/* What a run's swarmd log says: its evictions, each checked to be the round robin's, and the
 * worker's loads with the ms each took (event=weights_loaded ms=: the blob's mapping, first
 * touch and SHA-256 check, the part of a load the worker times). */
struct mem_log {
	const struct mem_case *c;
	int evictions, loads;
	double load_ms[MEM_SAMPLES];
};

/* One line of a log into arg, a struct mem_log. The k-th eviction must be of model k % n (the
 * least recently used) for model (k + fit) % n. Returns 0, or -EPROTO (said) when it is not. */
static int mem_log_line(void *arg, const char *line)
{
	struct mem_log *l = arg;
	const struct mem_case *c = l->c;
	const char *ms = strstr(line, " ms=");

	if (strstr(line, "event=weights_loaded ") && ms) {
		if (l->loads < MEM_SAMPLES)
			l->load_ms[l->loads] = strtod(ms + 4, NULL);
		l->loads++;
		return 0;
	}
	if (!strstr(line, "event=version_evicted "))
		return 0;
	const int k = l->evictions++;
	const char *lru = c->m[k % c->n].name, *next = c->m[(k + c->fit) % c->n].name;
	if (mem_evicted_for(line, lru, next))
		return 0;
	fprintf(stderr,
		"swarm-bench: memory: eviction %d is not of the least recently used version, %s, "
		"for %s: %s",
		k + 1, lru, next, line);
	return -EPROTO;
}

/* Ends a run that returned rc: disconnects, stops swarmd and, when the run measured, reads
 * its log into l, which must hold evictions evictions (in the round robin's order) and loads
 * loads (an open of a resident version loads nothing). */
static int mem_stop(struct mem_case *c, swarm_client *cl, int rc, int evictions, int loads,
		    struct mem_log *l)
{
	rc = mh_swarmd_stop(&c->e, cl, rc);
	memset(l, 0, sizeof *l);
	l->c = c;
	if (rc == 0)
		rc = mh_log_scan("memory", c->e.swarmd.log, mem_log_line, l);
	if (rc == 0 && (l->evictions != evictions || l->loads != loads)) {
		fprintf(stderr,
			"swarm-bench: memory: swarmd logged %d event=version_evicted and %d "
			"event=weights_loaded where the run expected %d and %d (%s)\n",
			l->evictions, l->loads, evictions, loads, c->e.swarmd.log);
		bench_log_tail(c->e.swarmd.log);
		rc = -EPROTO;
	}
	return rc;
}

/* Run 1: room for every model. The first open of each loads it; then every model is opened
 * again, round after round, finding it resident. Nothing may be evicted or loaded again. */
static int mem_run_ample(struct mem_case *c)
{
	swarm_client *cl = NULL;
	struct mem_log l;
	int rc = mh_swarmd_start("memory", &c->e, "memory-ample", "cpu:1", c->topology,
				 c->budget_ample, &cl);

	for (int i = 0; rc == 0 && i < c->n; i++)
		rc = mem_open_once(c, cl, i, 0, &c->load[c->n_load++]);
	for (int r = 0; rc == 0 && r < c->resident_rounds; r++)
		for (int i = 0; rc == 0 && i < c->n; i++)
			rc = mem_open_once(c, cl, i, (r + 1) % MEM_SETS,
					   &c->resident[c->n_resident++]);
	rc = mem_stop(c, cl, rc, 0, c->n, &l);
	if (rc == 0)
		c->load_ms = mb_median_double(l.load_ms, (size_t)l.loads);
	return rc;
}

/* Run 2: room for c->fit models, all opened round robin. The first c->fit opens load into
 * free room (not counted); every later one evicts the least recently used idle version,
 * which is never the next one wanted, so each evicts exactly one. */
static int mem_run_tight(struct mem_case *c)
{
	const int opens = c->n * c->evict_rounds;
	swarm_client *cl = NULL;
	struct mem_log l;
	int rc = mh_swarmd_start("memory", &c->e, "memory-tight", "cpu:1", c->topology,
				 c->budget_tight, &cl);

	for (int j = 0; rc == 0 && j < opens; j++) {
		uint64_t ns;

		rc = mem_open_once(c, cl, j % c->n, j / c->n % MEM_SETS, &ns);
		if (j >= c->fit)
			c->evict[c->n_evict++] = ns;
	}
	rc = mem_stop(c, cl, rc, opens - c->fit, opens, &l);
	c->evictions = l.evictions;
	if (rc == 0)
		c->evict_ms = mb_median_double(l.load_ms + c->fit, (size_t)(l.loads - c->fit));
	return rc;
}

/* p50 of n open times in ns (sorted in place), in us, the max in the p99 and p99.9 columns:
 * a few dozen samples have no tail finer than their max. */
static struct bench_stats mem_stats_us(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, mb_cmp_u64);
	const double max = (double)v[n - 1] / 1e3;
	return (struct bench_stats){ (double)v[mb_rank(n, 500)] / 1e3, max, max };
}

/* Adds the row name of n open times v (sorted), against base (NULL: itself, the baseline of
 * the others), its note fmt's text and what its columns hold. Returns its statistics. */
__attribute__((format(printf, 6, 7))) static struct bench_stats mem_row(
	struct bench_report *rep, const char *name, uint64_t *v, size_t n,
	const struct bench_stats *base, const char *fmt, ...)
{
	struct bench_row *row = bench_row_add(rep, name, "us");
	const struct bench_stats s = mem_stats_us(v, n);
	va_list ap;
	int at;

	bench_row_measured(row, s, base ? "open resident" : "this row", base ? *base : s);
	va_start(ap, fmt);
	at = vsnprintf(row->note, sizeof row->note, fmt, ap);
	va_end(ap);
	if (at >= 0 && (size_t)at < sizeof row->note)
		snprintf(row->note + at, sizeof row->note - (size_t)at,
			 "; timed from swarm_session_open to its return, after %u ms idle; the p99 "
			 "and p99.9 columns hold the max",
			 MEM_PAUSE_US / 1000);
	return s;
}

/* The case's three rows, the resident open the baseline of the other two. */
static void mem_rows(struct mem_case *c, struct bench_report *rep)
{
	char cost[32], ample[32], tight[32];

	swarm_fmt_bytes(cost, sizeof cost, c->cost);
	swarm_fmt_bytes(ample, sizeof ample, c->budget_ample);
	swarm_fmt_bytes(tight, sizeof tight, c->budget_tight);
	const struct bench_stats res = mem_row(
		rep, "open resident", c->resident, c->n_resident, NULL,
		"%zu opens (%d models x %d rounds) of a version resident and idle on its device, "
		"swarmd --devices cpu:1 --device-memory %s (room for all); each model the "
		"production ranker (%s) from a seed of its own, %s (%llu bytes) on the device; "
		"every open followed by one request checked against the in-process graph (not "
		"timed)",
		c->n_resident, c->n, c->resident_rounds, ample, bench_ranker_production.shape, cost,
		(unsigned long long)c->cost);
	mem_row(rep, "open load", c->load, c->n_load, &res,
		"%zu opens, the first of each model on the resident row's swarmd (not resident, "
		"room to spare, nothing evicted): the worker loads the version before the open "
		"returns, of which mapping, first touch and SHA-256 check of the blob took %.1f ms "
		"at p50 (the worker's log, weights_loaded ms=); model %s, budget %s",
		c->n_load, c->load_ms, cost, ample);
	mem_row(rep, "open evict+load", c->evict, c->n_evict, &res,
		"%zu opens of %d models round robin on swarmd --device-memory %s (room for %d "
		"models of %s), each after the first %d (not counted) evicting the least recently "
		"used idle version first (swarmd logged %d event=version_evicted, in that order); "
		"the worker's mapping, first touch and SHA-256 check of the blob took %.1f ms at p50",
		c->n_evict, c->n, tight, c->fit, cost, c->fit, c->evictions, c->evict_ms);
}

/* Publishes the models, sizes the budgets, and runs both swarmds. */
static int mem_measure(struct mem_case *c)
{
	int rc = mb_env_init(&c->e, &c->mo);

	for (int i = 0; rc == 0 && i < c->n; i++)
		rc = mh_model_make(&c->m[i], &c->e, &bench_ranker_production, &mem_deploy, "ranker",
				   i, MEM_SETS);
	if (rc == 0)
		rc = mh_cost("memory", &c->e, c->m[0].name, &c->cost);
	if (rc)
		return rc;
	/* Run 1 holds every model with one to spare; run 2 holds fit of them and half of one
	 * more, so that a model fits only after one leaves. */
	c->budget_ample = c->cost * (uint64_t)(c->n + 1);
	c->budget_tight = c->cost * (uint64_t)c->fit + c->cost / 2;
	rc = mb_topology_one_core(&c->mo, &c->e, c->topo, sizeof c->topo, &c->topology);
	if (rc == 0)
		rc = mem_run_ample(c);
	if (rc == 0)
		rc = mem_run_tight(c);
	return rc;
}

int bench_run_memory(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct mem_case *c = calloc(1, sizeof *c);
	int rc, rc2;

	if (!c)
		return -ENOMEM;
	c->mo = mh_opts(ctx, "cpu:1");
	const int quick = c->mo.quick;
	c->n = quick ? 4 : MEM_MODELS;
	c->fit = quick ? 2 : MEM_FIT;
	c->resident_rounds = quick ? 2 : MEM_RESIDENT_ROUNDS;
	c->evict_rounds = quick ? 2 : MEM_EVICT_ROUNDS;
	bench_progress("memory: opens of resident, loading and evicting models",
		       (size_t)(c->n * (1 + c->resident_rounds + c->evict_rounds)), "opens");
	rc = mem_measure(c);
	if (rc == 0)
		mem_rows(c, rep);
	for (int i = 0; i < MEM_MODELS; i++)
		mh_model_free(&c->m[i]);
	rc2 = mb_env_fini(&c->e);
	free(c);
	return rc ? rc : rc2;
}
