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

/* Reads one number of a spec at *p, up to ',' '@' ';' '/' or the end; advances past it. */
static int parse_num(const char **p, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(*p, &end);
	if (end == *p || errno || !isfinite(v))
		return -EINVAL;
	if (*end && !strchr(",@;/", *end))
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

/* ---- mmppn and its classes ---------------------------------------------------------------- */

/* Reads up to max comma-separated numbers at *p, up to ';' '/' or the end, into v; their
 * count in *n. Advances past them. */
static int parse_vec(const char **p, double *v, size_t max, size_t *n)
{
	*n = 0;
	for (;;) {
		if (*n == max || parse_num(p, &v[(*n)++]) < 0 || **p == '@')
			return -EINVAL;
		if (**p != ',')
			return 0;
		(*p)++;
	}
}

/* From each state to each of the others with equal probability. */
static void mmppn_uniform_next(struct swarm_sim_mmppn *m)
{
	for (uint32_t i = 0; i < m->n; i++)
		for (uint32_t j = 0; j < m->n; j++)
			m->next[i][j] = i == j ? 0 : 1.0 / (m->n - 1);
}

/* next=ROW/ROW/...: row i the weights of moving from i to each state (>= 0, 0 on the
 * diagonal, not all 0), normalised to probabilities. */
static int parse_next(const char **p, double next[][SWARM_SIM_MMPP_MAX_STATES], uint32_t *rows,
		      size_t *cols, char *err, size_t err_len)
{
	const char *start = *p;
	for (*rows = 0;; (*rows)++) {
		double *row = next[*rows];
		size_t n;
		double sum = 0;
		if (*rows == SWARM_SIM_MMPP_MAX_STATES ||
		    parse_vec(p, row, SWARM_SIM_MMPP_MAX_STATES, &n) < 0)
			goto bad;
		for (size_t j = 0; j < n; j++) {
			if (row[j] < 0 || (j == *rows && row[j] != 0))
				goto bad;
			sum += row[j];
		}
		if (!(sum > 0) || (*rows && n != *cols))
			goto bad;
		*cols = n;
		for (size_t j = 0; j < n; j++)
			row[j] /= sum;
		if (**p != '/')
			break;
		(*p)++;
	}
	(*rows)++;
	if (**p && **p != ';')
		goto bad;
	return 0;
bad:
	return sim_set_err(err, err_len, -EINVAL,
			   "mmppn: next: '%.*s' is not one row per state, ROW/ROW/..., each the "
			   "weights of moving to every state (>= 0, 0 on the diagonal, not all 0)",
			   (int)strcspn(start, ";"), start);
}

/* The fields of an mmppn: spec, for messages and the parser's table. */
enum {
	F_RATES,
	F_DWELLS,
	F_NEXT,
	F_ALPHA,
	F_SWING,
	F_PERIOD,
	F_START,
	F_DURATION,
	F_N
};
static const char *const mmppn_fields[F_N] = { "rates", "dwells", "next",  "alpha",
					       "swing", "period", "start", "duration" };

/* One scalar field's value, its range (inclusive) and its meaning for a message. */
static int parse_scalar(const char **p, int f, double lo, double hi, const char *what, double *out,
			char *err, size_t err_len)
{
	const char *start = *p;
	if (parse_num(p, out) < 0 || (**p && **p != ';') || *out < lo || *out > hi)
		return sim_set_err(err, err_len, -EINVAL, "mmppn: %s: '%.*s' is not %s",
				   mmppn_fields[f], (int)strcspn(start, ";"), start, what);
	return 0;
}

/* A list field with one value per state, each from lo up (above lo when open). */
static int parse_per_state(const char **p, int f, double *v, size_t *n, double lo, int open,
			   const char *what, char *err, size_t err_len)
{
	const char *start = *p;
	int rc = parse_vec(p, v, SWARM_SIM_MMPP_MAX_STATES, n);
	for (size_t i = 0; !rc && i < *n; i++)
		if (v[i] < lo || (open && v[i] == lo))
			rc = -EINVAL;
	if (rc || (**p && **p != ';') || *n < 2)
		return sim_set_err(err, err_len, -EINVAL,
				   "mmppn: %s: '%.*s' is not 2 to %u %s, comma-separated",
				   mmppn_fields[f], (int)strcspn(start, ";"), start,
				   SWARM_SIM_MMPP_MAX_STATES, what);
	return 0;
}

/* What parse_mmppn has read so far. */
struct mmppn_parse {
	double next[SWARM_SIM_MMPP_MAX_STATES][SWARM_SIM_MMPP_MAX_STATES];
	size_t n[F_N]; /* the values of each list field (next: each row's) */
	uint32_t rows; /* next='s */
	int seen[F_N];
	double start, period;
};

/* The value of field f at *p into tr or ps; advances past it. */
static int parse_field(const char **p, int f, struct swarm_sim_trace *tr, struct mmppn_parse *ps,
		       char *err, size_t err_len)
{
	struct swarm_sim_mmppn *m = &tr->mmppn;
	int rc = 0;
	switch (f) {
	case F_RATES:
		return parse_per_state(p, f, m->rate, &ps->n[f], 0, 0, "rates >= 0 (req/s)", err,
				       err_len);
	case F_DWELLS:
		return parse_per_state(p, f, m->dwell_s, &ps->n[f], 0, 1, "mean dwells > 0 (s)",
				       err, err_len);
	case F_ALPHA:
		rc = parse_per_state(p, f, m->alpha, &ps->n[f], 0, 0,
				     "shapes, 0 (exponential) or above 1 (Pareto)", err, err_len);
		for (size_t i = 0; !rc && i < ps->n[f]; i++)
			if (m->alpha[i] > 0 && m->alpha[i] <= 1)
				rc = sim_set_err(err, err_len, -EINVAL,
						 "mmppn: alpha: %g is neither 0 (exponential) nor "
						 "above 1 (Pareto with a finite mean)",
						 m->alpha[i]);
		return rc;
	case F_NEXT:
		return parse_next(p, ps->next, &ps->rows, &ps->n[f], err, err_len);
	case F_SWING:
		return parse_scalar(p, f, 0, 1, "a number from 0 to 1", &m->swing, err, err_len);
	case F_PERIOD:
		return parse_scalar(p, f, 1e-9, SIM_MAX_TIME_S, "a number of seconds > 0",
				    &ps->period, err, err_len);
	case F_START:
		return parse_scalar(p, f, 0, SWARM_SIM_MMPP_MAX_STATES - 1,
				    "a state's index from 0", &ps->start, err, err_len);
	default:
		return parse_scalar(p, f, 1e-9, SIM_MAX_TIME_S, "a number of seconds > 0",
				    &tr->duration_s, err, err_len);
	}
}

/* mmppn:rates=R,..;dwells=D,..[;next=ROW/..][;alpha=A,..][;swing=S][;period=P][;start=I]
 * ;duration=S (fields in any order, each once). */
static int parse_mmppn(const char *p, struct swarm_sim_trace *tr, char *err, size_t err_len)
{
	struct swarm_sim_mmppn *m = &tr->mmppn;
	struct mmppn_parse ps = { 0 };
	while (*p) {
		size_t klen = strcspn(p, "=;");
		int f = 0;
		while (f < F_N &&
		       (strlen(mmppn_fields[f]) != klen || strncmp(p, mmppn_fields[f], klen)))
			f++;
		if (f == F_N || p[klen] != '=' || ps.seen[f])
			return sim_set_err(err, err_len, -EINVAL,
					   "mmppn: '%.*s' is not a field given once as KEY=VALUE "
					   "(rates, dwells, next, alpha, swing, period, start, "
					   "duration)",
					   (int)strcspn(p, ";"), p);
		ps.seen[f] = 1;
		p += klen + 1;
		int rc = parse_field(&p, f, tr, &ps, err, err_len);
		if (rc)
			return rc;
		if (*p == ';')
			p++;
	}
	if (!ps.seen[F_RATES] || !ps.seen[F_DWELLS] || !ps.seen[F_DURATION])
		return sim_set_err(err, err_len, -EINVAL,
				   "mmppn: rates=, dwells= and duration= are required (e.g. "
				   "mmppn:rates=100,2000;dwells=30,5;duration=600)");
	m->n = (uint32_t)ps.n[F_RATES];
	if (ps.n[F_DWELLS] != m->n || (ps.seen[F_ALPHA] && ps.n[F_ALPHA] != m->n) ||
	    (ps.seen[F_NEXT] && (ps.rows != m->n || ps.n[F_NEXT] != m->n)))
		return sim_set_err(err, err_len, -EINVAL,
				   "mmppn: %u rates, but dwells=, alpha= and next= must have one "
				   "value (next=: one row of %u) per state",
				   m->n, m->n);
	if (ps.start != floor(ps.start) || ps.start >= m->n)
		return sim_set_err(err, err_len, -EINVAL,
				   "mmppn: start: %g is not a state's index from 0 to %u", ps.start,
				   m->n - 1);
	m->start = (uint32_t)ps.start;
	if (ps.seen[F_NEXT])
		memcpy(m->next, ps.next, sizeof ps.next);
	else
		mmppn_uniform_next(m);
	m->swing_period_s = ps.period > 0 ? ps.period : tr->duration_s;
	return 0;
}

/* The named classes of mmppn: their parameters, each with its lower bound (the last is the
 * duration, at most SIM_MAX_TIME_S), and the message of a malformed spec. */
enum {
	C_BURSTY,
	C_ONOFF,
	C_HEAVYTAIL,
	C_N
};
static const struct trace_class {
	const char *name; /* with its ':' */
	const char *usage;
	size_t n;
	double lo[6];
	uint8_t above; /* bit i: v[i] must be above lo[i], not only at it */
} classes[C_N] = {
	[C_BURSTY] = { "bursty:",
		       "DURATION_S (> 0; the class is meant for 600 to 3600)",
		       1,
		       { 0 },
		       0x1 },
	[C_ONOFF] = { "onoff:",
		      "HIGH,MEAN_ON_S,MEAN_OFF_S,DURATION_S (HIGH >= 0, times > 0)",
		      4,
		      { 0 },
		      0xe },
	[C_HEAVYTAIL] = { "heavytail:",
			  "BASE,PEAK,MEAN_GAP_S,MEAN_BURST_S,ALPHA,DURATION_S (rates >= 0, times "
			  "> 0, ALPHA > 1)",
			  6,
			  { 0, 0, 0, 0, 1, 0 },
			  0x3c },
};

/* The class spec names, or C_N. */
static int find_class(const char *spec)
{
	int c = 0;
	while (c < C_N && strncmp(spec, classes[c].name, strlen(classes[c].name)))
		c++;
	return c;
}

/* A spec of class c as mmppn (docs/simulator.md "Traces" says why these parameters). */
static int parse_class(const char *spec, int c, struct swarm_sim_trace *tr, char *err,
		       size_t err_len)
{
	const struct trace_class *tc = &classes[c];
	struct swarm_sim_mmppn *m = &tr->mmppn;
	const char *p = spec + strlen(tc->name);
	double v[6];
	int rc = parse_list(p, v, tc->n);
	for (size_t i = 0; !rc && i < tc->n; i++)
		if (v[i] < tc->lo[i] || (tc->above >> i & 1 && v[i] == tc->lo[i]))
			rc = -EINVAL;
	if (rc || v[tc->n - 1] > SIM_MAX_TIME_S)
		return sim_set_err(err, err_len, -EINVAL, "%.*s: '%s' is not %s",
				   (int)strlen(tc->name) - 1, tc->name, p, tc->usage);
	tr->duration_s = v[tc->n - 1];
	*m = (struct swarm_sim_mmppn){ .n = 2, .swing_period_s = tr->duration_s };
	switch (c) {
	case C_BURSTY:
		/* Issue 19's class: quiet, busy and flash, from each to the other two with equal
		 * probability, swinging +-50% over one period of the trace's length. */
		*m = (struct swarm_sim_mmppn){ .n = 3,
					       .rate = { 300, 4000, 12000 },
					       .dwell_s = { 40, 25, 4 },
					       .swing = 0.5,
					       .swing_period_s = tr->duration_s };
		break;
	case C_ONOFF:
		/* State 0 off (no arrival) first, 1 on. */
		m->rate[1] = v[0];
		m->dwell_s[0] = v[2];
		m->dwell_s[1] = v[1];
		break;
	default:
		/* State 0 the base rate for an exponential gap, 1 a burst of Pareto length. */
		memcpy(m->rate, v, 2 * sizeof *v);
		memcpy(m->dwell_s, v + 2, 2 * sizeof *v);
		m->alpha[1] = v[4];
	}
	mmppn_uniform_next(m);
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
	} else if (!strncmp(spec, "diurnal:", 8)) {
		/* A day over the trace: MEAN (1 - SWING cos(2 pi t / DURATION_S)), the night's
		 * trough at the start and the end, the peak in the middle. */
		tr->kind = SWARM_SIM_TRACE_SINE;
		rc = parse_list(spec + 8, v, 3);
		if (rc || v[0] < 0 || v[1] < 0 || v[1] > 1 || v[2] <= 0 || v[2] > SIM_MAX_TIME_S)
			rc = sim_set_err(err, err_len, -EINVAL,
					 "diurnal: '%s' is not MEAN,SWING,DURATION_S (MEAN >= 0, "
					 "SWING from 0 to 1, DURATION_S > 0)",
					 spec + 8);
		tr->mean = v[0];
		tr->amp = v[0] * v[1];
		tr->period_s = v[2];
		tr->phase = -M_PI / 2;
		tr->duration_s = v[2];
	} else if (!strncmp(spec, "mmppn:", 6)) {
		tr->kind = SWARM_SIM_TRACE_MMPPN;
		rc = parse_mmppn(spec + 6, tr, err, err_len);
	} else if (find_class(spec) < C_N) {
		tr->kind = SWARM_SIM_TRACE_MMPPN;
		rc = parse_class(spec, find_class(spec), tr, err, err_len);
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
		/* Generated as the two-state mmppn it is: the same arrivals as before mmppn. */
		tr->mmppn = (struct swarm_sim_mmppn){ .n = 2,
						      .rate = { v[0], v[1] },
						      .dwell_s = { v[2], v[3] },
						      .next = { { 0, 1 }, { 1, 0 } },
						      .swing_period_s = 1 };
	} else if (!strncmp(spec, "csv:", 4)) {
		tr->kind = SWARM_SIM_TRACE_CSV;
		rc = parse_csv(spec + 4, tr, err, err_len);
	} else {
		rc = sim_set_err(err, err_len, -EINVAL,
				 "unknown trace '%s' (steps:, sine:, diurnal:, mmpp:, mmppn:, "
				 "bursty:, onoff:, heavytail: or csv:)",
				 spec);
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

/* A random stay in state i of an mmppn: exponential, or Pareto of shape alpha and the same
 * mean (scale mean (alpha - 1) / alpha). */
static double dwell(struct swarm_sim_gen *g, uint32_t i)
{
	const struct swarm_sim_mmppn *m = &g->tr->mmppn;
	double u = swarm_sim_uniform(g->rng), a = m->alpha[i];
	if (a > 0)
		return m->dwell_s[i] * (a - 1) / a * pow(u, -1 / a);
	return -log(u) * m->dwell_s[i];
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
	if (tr->kind == SWARM_SIM_TRACE_MMPP || tr->kind == SWARM_SIM_TRACE_MMPPN) {
		g->state = tr->mmppn.start;
		g->state_end_s = dwell(g, g->state);
	}
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
		double rate =
			tr->mean + tr->amp * sin(2 * M_PI * g->t_s / tr->period_s + tr->phase);
		if (rate > 0 && swarm_sim_uniform(g->rng) * peak <= rate)
			return to_ns(g->t_s);
	}
}

uint32_t swarm_sim_gen_next_state(struct swarm_sim_gen *g)
{
	const struct swarm_sim_mmppn *m = &g->tr->mmppn;
	uint32_t i = g->state, j = 1 - i;
	/* Two states alternate without a draw, so that mmpp's arrivals are what they were. */
	if (m->n > 2) {
		double u = swarm_sim_uniform(g->rng), cum = 0;
		for (j = 0; j + 1 < m->n; j++) {
			cum += m->next[i][j];
			if (u <= cum && m->next[i][j] > 0)
				break;
		}
		/* Rounding can leave u above the last partial sum: the last possible state. */
		while (m->next[i][j] <= 0)
			j--;
	}
	g->t_s = g->state_end_s;
	g->state = j;
	g->state_end_s = g->t_s + dwell(g, j);
	return j;
}

/* Poisson at the state's rate times the swing's peak, each candidate kept with probability
 * (1 + swing sin) / (1 + swing) (thinning); a state's end starts the next gap afresh. */
static uint64_t next_mmppn(struct swarm_sim_gen *g)
{
	const struct swarm_sim_mmppn *m = &g->tr->mmppn;
	for (;;) {
		double peak = m->rate[g->state] * (1 + m->swing);
		double seg_end = g->state_end_s < g->end_s ? g->state_end_s : g->end_s;
		if (peak > 0) {
			double t = g->t_s + exp_gap(g, peak);
			if (t < seg_end) {
				g->t_s = t;
				if (m->swing > 0 &&
				    swarm_sim_uniform(g->rng) * (1 + m->swing) >
					    1 + m->swing * sin(2 * M_PI * t / m->swing_period_s))
					continue;
				return to_ns(t);
			}
		}
		if (g->state_end_s >= g->end_s) {
			g->t_s = g->end_s;
			return UINT64_MAX;
		}
		swarm_sim_gen_next_state(g);
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
	case SWARM_SIM_TRACE_MMPPN:
		return next_mmppn(g);
	case SWARM_SIM_TRACE_CSV:
		/* The file's arrivals are its own: the seed plays no part, the end does. */
		if (g->idx < g->tr->n_times && (double)g->tr->times_ns[g->idx] / 1e9 <= g->end_s)
			return g->tr->times_ns[g->idx++];
		return UINT64_MAX;
	}
	return UINT64_MAX;
}
