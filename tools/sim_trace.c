/* sim_trace.c: swarm-sim's arrival traces (see sim.h): parsing a trace spec, and generating
 * its arrivals one at a time, so that a trace of hours and millions of requests is never held
 * in memory (a csv trace is, since it comes from a file). Arrivals within a segment of
 * constant rate are a Poisson process: exponential gaps drawn from a seeded xoshiro256**, and
 * at a segment's end the next gap starts afresh from there, which is exact for a memoryless
 * process. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sim.h"
#include "tools/sim_internal.h"

/* Seconds to ns; arrival times are at most ~584 years. */
#define SIM_MAX_TIME_S 1e9

/* Reads one number of a spec at *p, up to ',' '@' or the end; advances past it. */
static int parse_num(const char **p, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(*p, &end);
	if (end == *p || errno || !isfinite(v))
		return -EINVAL;
	if (*end && *end != ',' && *end != '@')
		return -EINVAL;
	*out = v;
	*p = end;
	return 0;
}

/* Reads exactly n comma-separated numbers (the whole rest of the spec). */
static int parse_list(const char *p, double *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (parse_num(&p, &v[i]) < 0)
			return -EINVAL;
		if (i + 1 < n) {
			if (*p != ',')
				return -EINVAL;
			p++;
		}
	}
	return *p ? -EINVAL : 0;
}

/* A step of a steps: spec, for messages: up to the next ','. */
#define TOKEN(s) (int)strcspn(s, ","), s

static int parse_steps(const char *p, struct swarm_sim_trace *tr, char *err, size_t err_len)
{
	size_t cap = 1;
	for (const char *c = p; *c; c++)
		cap += *c == ',';
	tr->steps = calloc(cap, sizeof *tr->steps);
	if (!tr->steps)
		return -ENOMEM;
	while (*p) {
		struct swarm_sim_step st;
		const char *start = p;
		if (parse_num(&p, &st.rate) < 0 || *p != '@')
			return sim_set_err(err, err_len, -EINVAL,
					   "steps: '%.*s' is not RATE@TIME (e.g. 100@0,400@60)",
					   TOKEN(start));
		p++;
		if (parse_num(&p, &st.t_s) < 0 || (*p && *p != ','))
			return sim_set_err(err, err_len, -EINVAL,
					   "steps: '%.*s' is not RATE@TIME (e.g. 100@0,400@60)",
					   TOKEN(start));
		if (st.rate < 0 || st.t_s < 0 || st.t_s > SIM_MAX_TIME_S)
			return sim_set_err(err, err_len, -EINVAL,
					   "steps: '%.*s': rate and time must be >= 0",
					   TOKEN(start));
		if (tr->n_steps && st.t_s <= tr->steps[tr->n_steps - 1].t_s)
			return sim_set_err(err, err_len, -EINVAL,
					   "steps: '%.*s': times must increase", TOKEN(start));
		tr->steps[tr->n_steps++] = st;
		if (*p == ',')
			p++;
	}
	if (!tr->n_steps)
		return sim_set_err(err, err_len, -EINVAL,
				   "steps: no step (e.g. steps:100@0,400@60)");
	tr->duration_s = tr->steps[tr->n_steps - 1].t_s + 60;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int parse_csv(const char *path, struct swarm_sim_trace *tr, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, err_len, "csv: cannot open %s: %s", path, strerror(e));
		return -e;
	}
	char *line = NULL;
	size_t line_cap = 0, cap = 0;
	unsigned long lineno = 0;
	int rc = 0;
	ssize_t n;
	while ((n = getline(&line, &line_cap, f)) >= 0) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t len = strlen(s);
		while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
			       s[len - 1] == '\t'))
			s[--len] = 0;
		if (!len)
			continue;
		char *end;
		errno = 0;
		double t = strtod(s, &end);
		if (end == s || *end || errno || !isfinite(t) || t < 0 || t > SIM_MAX_TIME_S) {
			snprintf(err, err_len,
				 "csv: %s line %lu: '%.40s' is not an arrival time (seconds, >= 0, "
				 "one per line)",
				 path, lineno, s);
			rc = -EINVAL;
			break;
		}
		if (tr->n_times == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			uint64_t *nt = realloc(tr->times_ns, ncap * sizeof *nt);
			if (!nt) {
				rc = -ENOMEM;
				break;
			}
			tr->times_ns = nt;
			cap = ncap;
		}
		tr->times_ns[tr->n_times++] = (uint64_t)llround(t * 1e9);
	}
	if (!rc && ferror(f)) {
		snprintf(err, err_len, "csv: reading %s: %s", path, strerror(EIO));
		rc = -EIO;
	}
	free(line);
	fclose(f);
	if (rc)
		return rc;
	if (!tr->n_times) {
		snprintf(err, err_len, "csv: %s has no arrivals", path);
		return -EINVAL;
	}
	/* A trace merged from several sources may be out of order; its arrivals are not. */
	qsort(tr->times_ns, tr->n_times, sizeof *tr->times_ns, cmp_u64);
	tr->duration_s = (double)tr->times_ns[tr->n_times - 1] / 1e9;
	return 0;
}

int swarm_sim_trace_parse(const char *spec, struct swarm_sim_trace *tr, char *err, size_t err_len)
{
	memset(tr, 0, sizeof *tr);
	snprintf(err, err_len, "bad trace");
	int rc;
	double v[5];
	if (!strncmp(spec, "steps:", 6)) {
		tr->kind = SWARM_SIM_TRACE_STEPS;
		rc = parse_steps(spec + 6, tr, err, err_len);
	} else if (!strncmp(spec, "sine:", 5)) {
		tr->kind = SWARM_SIM_TRACE_SINE;
		rc = parse_list(spec + 5, v, 4);
		if (rc || v[0] < 0 || v[2] <= 0 || v[3] <= 0 || v[3] > SIM_MAX_TIME_S)
			rc = sim_set_err(
				err, err_len, -EINVAL,
				"sine: '%s' is not MEAN,AMP,PERIOD_S,DURATION_S (MEAN >= 0, "
				"PERIOD_S and DURATION_S > 0)",
				spec + 5);
		tr->mean = v[0];
		tr->amp = v[1];
		tr->period_s = v[2];
		tr->duration_s = v[3];
	} else if (!strncmp(spec, "mmpp:", 5)) {
		tr->kind = SWARM_SIM_TRACE_MMPP;
		rc = parse_list(spec + 5, v, 5);
		if (rc || v[0] < 0 || v[1] < 0 || v[2] <= 0 || v[3] <= 0 || v[4] <= 0 ||
		    v[4] > SIM_MAX_TIME_S)
			rc = sim_set_err(
				err, err_len, -EINVAL,
				"mmpp: '%s' is not LOW,HIGH,MEAN_LOW_S,MEAN_HIGH_S,DURATION_S "
				"(rates >= 0, times > 0)",
				spec + 5);
		tr->low = v[0];
		tr->high = v[1];
		tr->mean_low_s = v[2];
		tr->mean_high_s = v[3];
		tr->duration_s = v[4];
	} else if (!strncmp(spec, "csv:", 4)) {
		tr->kind = SWARM_SIM_TRACE_CSV;
		rc = parse_csv(spec + 4, tr, err, err_len);
	} else {
		rc = sim_set_err(err, err_len, -EINVAL,
				 "unknown trace '%s' (steps:, sine:, mmpp: or csv:)", spec);
	}
	if (rc)
		swarm_sim_trace_free(tr);
	return rc;
}

void swarm_sim_trace_free(struct swarm_sim_trace *tr)
{
	free(tr->steps);
	free(tr->times_ns);
	memset(tr, 0, sizeof *tr);
}

/* ---- generation -------------------------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

double swarm_sim_uniform(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	/* (0, 1]: never 0, so that log() below stays finite. */
	return (double)((r >> 11) + 1) * 0x1.0p-53;
}

static double exp_gap(struct swarm_sim_gen *g, double rate)
{
	return -log(swarm_sim_uniform(g->rng)) / rate;
}

void swarm_sim_gen_init(struct swarm_sim_gen *g, const struct swarm_sim_trace *tr, uint64_t seed,
			double end_s)
{
	memset(g, 0, sizeof *g);
	g->tr = tr;
	g->end_s = end_s;
	uint64_t s = seed;
	for (int i = 0; i < 4; i++)
		g->rng[i] = splitmix64(&s);
	if (tr->kind == SWARM_SIM_TRACE_MMPP)
		g->state_end_s = -log(swarm_sim_uniform(g->rng)) * tr->mean_low_s;
}

static uint64_t to_ns(double t) { return (uint64_t)llround(t * 1e9); }

static uint64_t next_steps(struct swarm_sim_gen *g)
{
	const struct swarm_sim_trace *tr = g->tr;
	for (;;) {
		double seg_end = g->idx < tr->n_steps ? tr->steps[g->idx].t_s : g->end_s;
		if (seg_end > g->end_s)
			seg_end = g->end_s;
		double rate = g->idx ? tr->steps[g->idx - 1].rate : 0;
		if (rate > 0) {
			double t = g->t_s + exp_gap(g, rate);
			if (t < seg_end) {
				g->t_s = t;
				return to_ns(t);
			}
		}
		if (g->idx >= tr->n_steps || seg_end >= g->end_s) {
			g->t_s = g->end_s;
			return UINT64_MAX;
		}
		g->t_s = tr->steps[g->idx++].t_s;
	}
}

static uint64_t next_sine(struct swarm_sim_gen *g)
{
	const struct swarm_sim_trace *tr = g->tr;
	double peak = tr->mean + fabs(tr->amp);
	if (peak <= 0)
		return UINT64_MAX;
	/* Thinning (Lewis and Shedler): candidates at the peak rate, each kept with
	 * probability rate(t) / peak. */
	for (;;) {
		g->t_s += exp_gap(g, peak);
		if (g->t_s >= g->end_s) {
			g->t_s = g->end_s;
			return UINT64_MAX;
		}
		double rate = tr->mean + tr->amp * sin(2 * M_PI * g->t_s / tr->period_s);
		if (rate > 0 && swarm_sim_uniform(g->rng) * peak <= rate)
			return to_ns(g->t_s);
	}
}

static uint64_t next_mmpp(struct swarm_sim_gen *g)
{
	const struct swarm_sim_trace *tr = g->tr;
	for (;;) {
		double rate = g->high ? tr->high : tr->low;
		double seg_end = g->state_end_s < g->end_s ? g->state_end_s : g->end_s;
		if (rate > 0) {
			double t = g->t_s + exp_gap(g, rate);
			if (t < seg_end) {
				g->t_s = t;
				return to_ns(t);
			}
		}
		if (g->state_end_s >= g->end_s) {
			g->t_s = g->end_s;
			return UINT64_MAX;
		}
		g->t_s = g->state_end_s;
		g->high = !g->high;
		double mean = g->high ? tr->mean_high_s : tr->mean_low_s;
		g->state_end_s = g->t_s - log(swarm_sim_uniform(g->rng)) * mean;
	}
}

uint64_t swarm_sim_gen_next(struct swarm_sim_gen *g)
{
	switch (g->tr->kind) {
	case SWARM_SIM_TRACE_STEPS:
		return next_steps(g);
	case SWARM_SIM_TRACE_SINE:
		return next_sine(g);
	case SWARM_SIM_TRACE_MMPP:
		return next_mmpp(g);
	case SWARM_SIM_TRACE_CSV:
		/* The file's arrivals are its own: the seed plays no part, the end does. */
		if (g->idx < g->tr->n_times && (double)g->tr->times_ns[g->idx] / 1e9 <= g->end_s)
			return g->tr->times_ns[g->idx++];
		return UINT64_MAX;
	}
	return UINT64_MAX;
}
