/* cases_zipf.c: swarm-bench's memory-zipf case (issue 18, docs/placement.md): many models on
 * few devices under load. The workload of tests/e2e/test_memory.c's 20-model test, measured:
 * 20 small rankers, each from a seed of its own (its own blob), served by a swarmd
 * --devices cpu:2 whose --device-memory holds 8 of them a device (run A), against the same
 * load on a swarmd whose budgets hold all 20 on each device (run B, the baseline: nothing is
 * ever evicted). Both runs in the same invocation, the same clients with the same seeds.
 *
 * Each of 4 client threads has a connection of its own and does rounds: it picks a model by
 * a Zipf popularity (s = 1) over the 20, whose ranks are reversed halfway through its rounds
 * (the cold models become the hot ones), sends 4 one-row requests to it, checking every
 * output against the model's graph run in this process, and pauses 0.5 ms (its own work).
 * Like a multi-model client that pays about a millisecond an open, it keeps its sessions of
 * the last 3 models it used open and, on a miss, closes the least recently used of them
 * (untimed) before it opens the model it needs (timed). 3 a client keeps at most 12 versions
 * in use, fewer than the 16 that two budgets of 8 hold, so that an open always finds a
 * device with a version it may evict.
 *
 * Measured: every request from alloc to release; every open; each request's latency with
 * its open where it needed one (what a caller waits), whose share within the latency
 * objective (--objective-us) is the attainment; and from each run's swarmd log the loads
 * (event=weights_loaded) and evictions (event=version_evicted). A failed open or request, a
 * wrong output, an eviction in run B, none in run A, more versions left resident in run A
 * than its budgets hold, or an event=over_budget fails the case. */
#include "bench/swarm_bench.h"
#include "bench/memory_harness.h"
#include "runtime/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZIPF_MODELS BENCH_ZIPF_MODELS
#define ZIPF_FIT BENCH_ZIPF_FIT
#define ZIPF_THREADS BENCH_ZIPF_THREADS
#define ZIPF_REQUESTS BENCH_ZIPF_REQUESTS
#define ZIPF_CACHE BENCH_ZIPF_CACHE
#define ZIPF_DEVICES 2
#define ZIPF_SETS 4                 /* input rows of each model, used in turn */
#define ZIPF_THINK_US 500u          /* a client's pause between rounds */
#define ZIPF_SEED 77u               /* client i draws its models from ZIPF_SEED + 1000 i */
#define ZIPF_WHO "memory-zipf"      /* the case, in messages */
#define ZIPF_BASE "budgets for all" /* the baseline, in the table */

_Static_assert((ZIPF_THREADS * ZIPF_CACHE) < (ZIPF_DEVICES * ZIPF_FIT),
	       "the sessions clients keep open leave a version to evict");

/* The small ranker at batch 1 (requests of up to 64 rows): the same deploy for all. */
static const struct bench_ranker_deploy zipf_deploy = { 64, 8, 1, 0 };

/* One run: its budget, what its clients measured (ns) and what its swarmd logged. */
struct zipf_run {
	const char *log_name;
	uint64_t budget; /* --device-memory, each device */
	uint64_t *req;   /* every request, alloc to release */
	uint64_t *svc;   /* the same with its open, where it needed one */
	uint64_t *open;  /* every open */
	size_t n_req, n_open;
	int failed; /* clients stopped by a failed open or request */
	int loads, evictions, over_budget;
	double load_ms; /* the worker's own time of its loads (weights_loaded ms=), summed */
	double wall_s;
};

/* The case: its environment, models, popularity, plan and both runs. */
struct zipf_case {
	struct mb_env e;
	struct bench_model_opts mo;
	struct mh_model m[ZIPF_MODELS];
	double cdf[ZIPF_MODELS]; /* Zipf s = 1 over the ranks, cdf[ZIPF_MODELS - 1] = 1 */
	int rounds;              /* a client's */
	uint64_t cost;           /* one model's bytes on a device */
	uint64_t objective_ns;
	struct zipf_run tight, ample;
};

/* A session a client keeps open: of model (-1: none), last used in round last. */
struct zipf_slot {
	int model, last;
	swarm_session *s;
};

/* One client thread; its samples go to its own stretch of the run's arrays, from req0 and
 * open0. */
struct zipf_client {
	pthread_t t;
	const struct zipf_case *c;
	struct zipf_run *run;
	int id;
	size_t req0, open0, n_req, n_open;
	int error, model; /* the error that stopped it (0: none), and on which model */
	struct zipf_slot cache[ZIPF_CACHE];
};

static void zipf_cdf(struct zipf_case *c)
{
	double sum = 0;

	for (int k = 0; k < ZIPF_MODELS; k++)
		c->cdf[k] = sum += 1.0 / (k + 1);
	for (int k = 0; k < ZIPF_MODELS; k++)
		c->cdf[k] /= sum;
	c->cdf[ZIPF_MODELS - 1] = 1.0;
}

/* A model drawn from the popularity: rank k has weight 1 / (k + 1); shifted, rank k is model
 * ZIPF_MODELS - 1 - k. */
static int zipf_pick(const struct zipf_case *c, struct bench_lcg *g, bool shifted)
{
	const double u = (double)(bench_lcg_next(g) >> 11) * 0x1p-53;
	int lo = 0, hi = ZIPF_MODELS - 1;

	while (lo < hi) { /* the first rank whose cdf reaches u */
		const int mid = (lo + hi) / 2;
		if (c->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return shifted ? ZIPF_MODELS - 1 - lo : lo;
}

/* The slot of model k in z's cache, else the one to reuse: an empty one, else the least
 * recently used. */
static struct zipf_slot *zipf_slot_for(struct zipf_client *z, int k)
{
	struct zipf_slot *pick = &z->cache[0];

	for (int i = 0; i < ZIPF_CACHE; i++) {
		struct zipf_slot *sl = &z->cache[i];
		if (sl->model == k)
			return sl;
		if (pick->model >= 0 && (sl->model < 0 || sl->last < pick->last))
			pick = sl;
	}
	return pick;
}

/* Round r of client z: a model by popularity, its session (opened, timed, on a miss) and
 * its requests, each timed and checked. */
static int zipf_round(struct zipf_client *z, swarm_client *cl, struct bench_lcg *g, int r)
{
	const struct zipf_case *c = z->c;
	const int k = zipf_pick(c, g, r >= c->rounds / 2);
	const struct mh_model *m = &c->m[k];
	struct zipf_slot *sl = zipf_slot_for(z, k);
	uint64_t open_ns = 0;
	int rc;

	z->model = k;
	if (sl->model != k) {
		if (sl->s)
			swarm_session_close(sl->s);
		*sl = (struct zipf_slot){ .model = -1 };
		const uint64_t t0 = swarm_now_ns();
		rc = mb_session_open(cl, m->name, &m->in, 2, 0, &sl->s);
		open_ns = swarm_now_ns() - t0;
		if (rc)
			return rc;
		sl->model = k;
		z->run->open[z->open0 + z->n_open++] = open_ns;
	}
	sl->last = r;
	for (int q = 0; q < ZIPF_REQUESTS; q++) {
		const size_t at = z->req0 + z->n_req;
		uint64_t ns;

		rc = mh_call_checked(ZIPF_WHO, m, sl->s, (r * ZIPF_REQUESTS + q) % ZIPF_SETS, &ns);
		if (rc)
			return rc;
		z->run->req[at] = ns;
		z->run->svc[at] = ns + (q == 0 ? open_ns : 0);
		z->n_req++;
	}
	return 0;
}

static void *zipf_client_main(void *arg)
{
	struct zipf_client *z = arg;
	swarm_client *cl = NULL;
	struct bench_lcg g;
	int rc = swarm_connect(z->c->e.sock, &cl);

	if (rc)
		fprintf(stderr, "swarm-bench: %s: client %d: connect: %s\n", ZIPF_WHO, z->id,
			swarm_strerror(rc));
	bench_lcg_init(&g, ZIPF_SEED + 1000u * (uint64_t)z->id);
	for (int i = 0; i < ZIPF_CACHE; i++)
		z->cache[i] = (struct zipf_slot){ .model = -1 };
	for (int r = 0; rc == 0 && r < z->c->rounds; r++) {
		rc = zipf_round(z, cl, &g, r);
		usleep(ZIPF_THINK_US);
	}
	for (int i = 0; i < ZIPF_CACHE; i++)
		if (z->cache[i].s)
			swarm_session_close(z->cache[i].s);
	if (cl)
		swarm_disconnect(cl);
	z->error = rc;
	return NULL;
}

/* Counts a run's loads, evictions and over-budget lines in its swarmd log. */
static int zipf_log_line(void *arg, const char *line)
{
	struct zipf_run *run = arg;
	const char *ms = strstr(line, " ms=");

	if (strstr(line, "event=weights_loaded ")) {
		run->loads++;
		run->load_ms += ms ? strtod(ms + 4, NULL) : 0;
	}
	run->evictions += strstr(line, "event=version_evicted ") != NULL;
	run->over_budget += strstr(line, "event=over_budget ") != NULL;
	return 0;
}

/* Joins the first n clients, gathering their samples at the front of the run's arrays (each
 * client's stretch moves down, never over one not yet moved). Returns the first error. */
static int zipf_join(struct zipf_client *z, int n, struct zipf_run *run)
{
	int rc = 0;

	for (int i = 0; i < n; i++) {
		pthread_join(z[i].t, NULL);
		memmove(run->req + run->n_req, run->req + z[i].req0, z[i].n_req * sizeof *run->req);
		memmove(run->svc + run->n_req, run->svc + z[i].req0, z[i].n_req * sizeof *run->svc);
		memmove(run->open + run->n_open, run->open + z[i].open0,
			z[i].n_open * sizeof *run->open);
		run->n_req += z[i].n_req;
		run->n_open += z[i].n_open;
		if (z[i].error) {
			fprintf(stderr,
				"swarm-bench: %s: client %d stopped after %zu requests, on %s: %s\n",
				ZIPF_WHO, i, z[i].n_req,
				z[i].model < 0 ? "no model" : z[i].c->m[z[i].model].name,
				z[i].error == -EBADMSG ? "a wrong output" :
							 swarm_strerror(z[i].error));
			run->failed++;
			if (!rc)
				rc = z[i].error;
		}
	}
	return rc;
}

/* What a run's log must say: in the small budgets' run (tight) something evicted and no more
 * versions left resident than the budgets hold; in the other nothing evicted and no model
 * loaded twice on a device; in neither a device over its budget. */
static int zipf_log_check(const struct zipf_case *c, const struct zipf_run *run, bool tight)
{
	const int resident = run->loads - run->evictions;
	const char *bad = NULL;

	if (run->over_budget)
		bad = "a device went over its budget (event=over_budget)";
	else if (tight && run->evictions == 0)
		bad = "nothing was evicted: the budgets did not bind";
	else if (tight && resident > ZIPF_DEVICES * ZIPF_FIT)
		bad = "more versions stayed resident than the budgets hold";
	else if (!tight && run->evictions)
		bad = "a version was evicted where the budgets hold every model";
	else if (!tight && run->loads > ZIPF_DEVICES * ZIPF_MODELS)
		bad = "a model was loaded twice on a device with nothing evicted";
	if (!bad)
		return 0;
	fprintf(stderr,
		"swarm-bench: %s: %s: %d event=weights_loaded, %d event=version_evicted, %d "
		"event=over_budget (%s; a model %llu bytes)\n",
		ZIPF_WHO, bad, run->loads, run->evictions, run->over_budget, c->e.swarmd.log,
		(unsigned long long)c->cost);
	bench_log_tail(c->e.swarmd.log);
	return -EPROTO;
}

/* One run: swarmd with run's budget, the clients, then its log. */
static int zipf_run(struct zipf_case *c, struct zipf_run *run, bool tight)
{
	const size_t reqs = (size_t)c->rounds * ZIPF_REQUESTS;
	struct zipf_client z[ZIPF_THREADS];
	int rc, n = 0;

	rc = mh_swarmd_start(ZIPF_WHO, &c->e, run->log_name, "cpu:2", NULL, run->budget, NULL);
	if (rc)
		return rc;
	const uint64_t t0 = swarm_now_ns();
	for (; n < ZIPF_THREADS; n++) {
		z[n] = (struct zipf_client){ .c = c,
					     .run = run,
					     .id = n,
					     .model = -1,
					     .req0 = (size_t)n * reqs,
					     .open0 = (size_t)n * (size_t)c->rounds };
		rc = -pthread_create(&z[n].t, NULL, zipf_client_main, &z[n]);
		if (rc)
			break;
	}
	const int rc2 = zipf_join(z, n, run);
	run->wall_s = (double)(swarm_now_ns() - t0) / 1e9;
	rc = mh_swarmd_stop(&c->e, NULL, rc ? rc : rc2);
	if (rc == 0)
		rc = mh_log_scan(ZIPF_WHO, c->e.swarmd.log, zipf_log_line, run);
	if (rc == 0)
		rc = zipf_log_check(c, run, tight);
	return rc;
}

/* ---- the rows --------------------------------------------------------------------------- */

/* Percentiles of n latencies in ns (v sorted), in us. */
static struct bench_stats zipf_us(uint64_t *v, size_t n)
{
	const struct bench_stats s = bench_stats_ns(v, n);

	return (struct bench_stats){ s.p50 / 1e3, s.p99 / 1e3, s.p999 / 1e3 };
}

/* Percent of run's requests whose latency with their open is within ns. */
static double zipf_attained(const struct zipf_run *run, uint64_t ns)
{
	size_t in = 0;

	for (size_t i = 0; i < run->n_req; i++)
		in += run->svc[i] <= ns;
	return run->n_req ? 100.0 * (double)in / (double)run->n_req : 0;
}

/* A row of one value a run, in every column. */
static struct bench_stats zipf_one(double v) { return (struct bench_stats){ v, v, v }; }

/* A latency row named name: the small budgets' na samples a against the baseline's nb
 * samples b (ns, sorted here), in us. */
static struct bench_row *zipf_row_us(struct bench_report *rep, const char *name, uint64_t *a,
				     size_t na, uint64_t *b, size_t nb)
{
	struct bench_row *row = bench_row_add(rep, name, "us");

	bench_row_measured(row, zipf_us(a, na), ZIPF_BASE, zipf_us(b, nb));
	return row;
}

/* The latency rows: requests, opens, and requests with their opens. */
static void zipf_latency_rows(struct zipf_case *c, struct bench_report *rep)
{
	char cost[32], tight[32], ample[32];
	struct bench_row *row;

	swarm_fmt_bytes(cost, sizeof cost, c->cost);
	swarm_fmt_bytes(tight, sizeof tight, c->tight.budget);
	swarm_fmt_bytes(ample, sizeof ample, c->ample.budget);
	row = zipf_row_us(rep, "zipf request", c->tight.req, c->tight.n_req, c->ample.req,
			  c->ample.n_req);
	mb_say(row->note, sizeof row->note,
	       "%zu requests a run (%d clients x %d rounds x %d), one row each, timed from alloc "
	       "to release, every output checked against the in-process graph; swarmd --devices "
	       "cpu:2 with --device-memory %s a device (room for %d of the %d models of %s) "
	       "against %s (room for all); each model the small ranker (%s) from a seed of its "
	       "own; the popularity Zipf s=1, reversed halfway; runs of %.1f and %.1f s",
	       c->tight.n_req, ZIPF_THREADS, c->rounds, ZIPF_REQUESTS, tight, ZIPF_FIT, ZIPF_MODELS,
	       cost, ample, bench_ranker_small.shape, c->tight.wall_s, c->ample.wall_s);
	row = zipf_row_us(rep, "zipf open", c->tight.open, c->tight.n_open, c->ample.open,
			  c->ample.n_open);
	mb_say(row->note, sizeof row->note,
	       "%zu and %zu opens, each a miss in its client's %d open sessions (the least "
	       "recently used closed first, not timed), timed from swarm_session_open to its "
	       "return: a load where the version was not resident on the device swarmd chose",
	       c->tight.n_open, c->ample.n_open, ZIPF_CACHE);
	row = zipf_row_us(rep, "zipf open+request", c->tight.svc, c->tight.n_req, c->ample.svc,
			  c->ample.n_req);
	mb_say(row->note, sizeof row->note,
	       "each request's latency with the open before it where it needed one (the "
	       "first of a round that missed): what the caller waited, the objective's measure");
}

/* The case's rows: the run with budgets of 8 against the one with room for all. */
static void zipf_rows(struct zipf_case *c, struct bench_report *rep)
{
	static const unsigned ms[] = { 1, 2, 5, 10, 20 };
	char at[160] = "";
	struct bench_row *row;
	size_t len = 0;

	/* Attainment first: the latency rows sort the samples. */
	for (size_t i = 0; i < sizeof ms / sizeof ms[0] && len < sizeof at; i++)
		len += (size_t)snprintf(at + len, sizeof at - len, "%s%u ms %.2f%% / %.2f%%",
					i ? ", " : "", ms[i],
					zipf_attained(&c->tight, ms[i] * 1000000ull),
					zipf_attained(&c->ample, ms[i] * 1000000ull));
	const double a = zipf_attained(&c->tight, c->objective_ns);
	const double b = zipf_attained(&c->ample, c->objective_ns);
	zipf_latency_rows(c, rep);
	row = bench_row_add(rep, "zipf attainment", "%");
	bench_row_measured(row, zipf_one(a), ZIPF_BASE, zipf_one(b));
	mb_say(row->note, sizeof row->note,
	       "requests whose latency with their open was within the objective, %.1f ms "
	       "(--objective-us); every column the one figure; within other objectives "
	       "(budgets of %d / for all): %s",
	       (double)c->objective_ns / 1e6, ZIPF_FIT, at);
	row = bench_row_add(rep, "zipf loads", "n");
	bench_row_measured(row, zipf_one(c->tight.loads), ZIPF_BASE, zipf_one(c->ample.loads));
	mb_say(row->note, sizeof row->note,
	       "event=weights_loaded in each run's swarmd log: %d and %d, with %d and %d "
	       "event=version_evicted, for %zu and %zu opens; the worker's mapping, first touch "
	       "and SHA-256 check of a blob took %.2f and %.2f ms on average (weights_loaded "
	       "ms=); clients stopped by a failed open or request %d and %d (any fails the case); "
	       "every column the one count",
	       c->tight.loads, c->ample.loads, c->tight.evictions, c->ample.evictions,
	       c->tight.n_open, c->ample.n_open,
	       c->tight.loads ? c->tight.load_ms / c->tight.loads : 0.0,
	       c->ample.loads ? c->ample.load_ms / c->ample.loads : 0.0, c->tight.failed,
	       c->ample.failed);
}

/* ---- the case --------------------------------------------------------------------------- */

/* Publishes the models, sizes the budgets, and runs both swarmds. */
static int zipf_measure(struct zipf_case *c)
{
	const size_t reqs = (size_t)ZIPF_THREADS * (size_t)c->rounds * ZIPF_REQUESTS;
	const size_t opens = (size_t)ZIPF_THREADS * (size_t)c->rounds;
	struct zipf_run *const runs[] = { &c->tight, &c->ample };
	int rc = mb_env_init(&c->e, &c->mo);

	for (int i = 0; rc == 0 && i < ZIPF_MODELS; i++)
		rc = mh_model_make(&c->m[i], &c->e, &bench_ranker_small, &zipf_deploy, "zipf", i,
				   ZIPF_SETS);
	if (rc == 0)
		rc = mh_cost(ZIPF_WHO, &c->e, c->m[0].name, &c->cost);
	for (int i = 0; rc == 0 && i < 2; i++) {
		runs[i]->req = calloc(reqs, sizeof *runs[i]->req);
		runs[i]->svc = calloc(reqs, sizeof *runs[i]->svc);
		runs[i]->open = calloc(opens, sizeof *runs[i]->open);
		if (!runs[i]->req || !runs[i]->svc || !runs[i]->open)
			rc = -ENOMEM;
	}
	if (rc)
		return rc;
	/* Half a model over each count, so that a device holds FIT and not one more (and all
	 * 20 in the baseline, whichever device an open lands on). */
	c->tight.log_name = "zipf-tight";
	c->tight.budget = c->cost * ZIPF_FIT + c->cost / 2;
	c->ample.log_name = "zipf-ample";
	c->ample.budget = c->cost * ZIPF_MODELS + c->cost / 2;
	rc = zipf_run(c, &c->tight, true);
	if (rc == 0)
		rc = zipf_run(c, &c->ample, false);
	return rc;
}

int bench_run_zipf(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct zipf_case *c = calloc(1, sizeof *c);
	int rc, rc2;

	if (!c)
		return -ENOMEM;
	c->mo = mh_opts(ctx, "cpu:2");
	c->rounds = c->mo.quick ? BENCH_ZIPF_QUICK_ROUNDS : BENCH_ZIPF_ROUNDS;
	c->objective_ns = ctx->o.objective_us * 1000;
	zipf_cdf(c);
	bench_progress("memory-zipf: 20 models under a shifting Zipf load, budgets of 8 a "
		       "device against room for all",
		       (size_t)(2 * ZIPF_THREADS * c->rounds * ZIPF_REQUESTS), "requests");
	rc = zipf_measure(c);
	if (rc == 0)
		zipf_rows(c, rep);
	for (int i = 0; i < ZIPF_MODELS; i++)
		mh_model_free(&c->m[i]);
	free(c->tight.req);
	free(c->tight.svc);
	free(c->tight.open);
	free(c->ample.req);
	free(c->ample.svc);
	free(c->ample.open);
	rc2 = mb_env_fini(&c->e);
	free(c);
	return rc ? rc : rc2;
}
