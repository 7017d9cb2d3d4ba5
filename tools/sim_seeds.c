/* sim_seeds.c: one configuration of swarm-sim on many seeds (swarm-sim --seeds), so that a
 * policy is judged on a trace class rather than on one trace (issue 19): per seed the policy
 * and static provisioning at the maximum, the goal's two figures, and over the seeds the
 * worst of each and their medians. The runs share only the trace, read-only, and go on in a
 * few threads that take the next run from a shared counter. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sim.h"

int swarm_sim_goal(const struct swarm_sim_report *a, const struct swarm_sim_report *ref,
		   double *points, double *share)
{
	*points = 100 * (ref->attainment - a->attainment);
	*share = a->device_seconds / ref->device_seconds;
	return *points <= SWARM_SIM_GOAL_POINTS && *share <= SWARM_SIM_GOAL_SHARE;
}

/* Run i is seed first + i / 2, the policy when i is even, static at the maximum when odd. */
struct seeds_job {
	const struct swarm_sim_opts *o;
	uint64_t first;
	size_t n_runs;
	atomic_size_t next; /* the next run to take; each thread takes its own */
	struct swarm_sim_seed_result *out;
	int *rc;
	char (*err)[256];
};

static void *seeds_thread(void *arg)
{
	struct seeds_job *j = arg;
	size_t i;
	while ((i = atomic_fetch_add(&j->next, 1)) < j->n_runs) {
		struct swarm_sim_seed_result *r = &j->out[i / 2];
		struct swarm_sim_opts o = *j->o;
		o.seed = j->first + i / 2;
		o.keep_ticks = 0;
		o.static_devices = i % 2 ? o.max_devices : 0;
		j->rc[i] =
			swarm_sim_run(&o, i % 2 ? &r->max : &r->autos, j->err[i], sizeof j->err[i]);
		if (i % 2 && !j->rc[i]) { /* static's attainment: its bound */
			struct swarm_sim_bound b;
			j->rc[i] = swarm_sim_bound(&o, r->max.requests - r->max.met, &b, j->err[i],
						   sizeof j->err[i]);
			r->bound = b.device_seconds;
		}
	}
	return NULL;
}

int swarm_sim_seeds_run(const struct swarm_sim_opts *o, uint64_t first, uint64_t last,
			unsigned threads, struct swarm_sim_seed_result *out, char *err,
			size_t err_len)
{
	if (last < first || last - first >= SIZE_MAX / 1024 || o->static_devices) {
		snprintf(err, err_len,
			 "seeds: %llu to %llu is not a range, or the policy is static",
			 (unsigned long long)first, (unsigned long long)last);
		return -EINVAL;
	}
	size_t n = (size_t)(last - first) + 1;
	struct seeds_job j = { .o = o, .first = first, .n_runs = 2 * n, .out = out };
	j.rc = calloc(j.n_runs, sizeof *j.rc);
	j.err = calloc(j.n_runs, sizeof *j.err);
	pthread_t *th = calloc(threads ? threads : 1, sizeof *th);
	int rc = -ENOMEM;
	if (!j.rc || !j.err || !th)
		goto out;
	memset(out, 0, n * sizeof *out);
	atomic_init(&j.next, 0);
	unsigned started = 0;
	while (started + 1 < threads && started + 1 < j.n_runs &&
	       !pthread_create(&th[started], NULL, seeds_thread, &j))
		started++;
	seeds_thread(&j);
	for (unsigned t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	rc = 0;
	for (size_t i = 0; i < j.n_runs && !rc; i++)
		if ((rc = j.rc[i]))
			snprintf(err, err_len, "seed %llu, %s: %s",
				 (unsigned long long)(first + i / 2), i % 2 ? "static" : "auto",
				 rc == -ENOMEM ? strerror(ENOMEM) : j.err[i]);
	for (size_t i = 0; i < n; i++) {
		out[i].seed = first + i;
		out[i].met =
			swarm_sim_goal(&out[i].autos, &out[i].max, &out[i].points, &out[i].share);
		out[i].vs_bound = out[i].autos.device_seconds / out[i].bound;
	}
out:
	free(th);
	free(j.err);
	free(j.rc);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of v[n], sorted in place. */
static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void swarm_sim_seeds_summarize(const struct swarm_sim_seed_result *v, size_t n,
			       struct swarm_sim_seeds_summary *s)
{
	memset(s, 0, sizeof *s);
	s->n = n;
	double *points = malloc(n * sizeof *points), *share = malloc(n * sizeof *share);
	double *vs = malloc(n * sizeof *vs);
	int ok = points && share && vs;
	for (size_t i = 0; i < n; i++) {
		s->n_met += v[i].met != 0;
		if (v[i].points > v[s->worst_points].points)
			s->worst_points = i;
		if (v[i].share > v[s->worst_share].share)
			s->worst_share = i;
		if (v[i].vs_bound > v[s->worst_vs_bound].vs_bound)
			s->worst_vs_bound = i;
		if (ok) {
			points[i] = v[i].points;
			share[i] = v[i].share;
			vs[i] = v[i].vs_bound;
		}
	}
	s->all_met = s->n_met == n;
	s->median_points = ok ? median(points, n) : NAN;
	s->median_share = ok ? median(share, n) : NAN;
	s->median_vs_bound = ok ? median(vs, n) : NAN;
	free(points);
	free(share);
	free(vs);
}
