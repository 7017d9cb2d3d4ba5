/* as_trace.c: writing swarmd's autoscaler decisions and replaying them (as_trace.h). */
#include "runtime/as_trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MAGIC "swarm-autoscale-trace 2"
#define MAX_MODELS 4096   /* models in one decision */
#define MAX_ACTIONS 8192  /* actions in one decision */
#define MAX_ID (1u << 24) /* memory ids */

int swarm_as_trace_begin(FILE *f, const struct swarm_as_config *c)
{
	int rc = fprintf(f, "%s\nconfig %a %a %a %a %" PRIu64 " %" PRIu64 " %" PRIu64 " %a %d\n",
			 TRACE_MAGIC, c->target_util, c->hysteresis, c->panic_ratio,
			 c->panic_delay_frac, c->stable_window_ns, c->cooldown_ns,
			 c->peak_window_ns, c->peak_util, c->drain_all);
	return rc < 0 || fflush(f) ? -EIO : 0;
}

/* A model name with every byte outside '!'..'~', and '%', as %XX: one field. */
static void put_name(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c > '~' || c == '%')
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

int swarm_as_trace_decision(FILE *f, uint64_t now_ns, uint32_t parked,
			    const struct swarm_as_model *models, const char *const *names,
			    const uint32_t *versions, const uint64_t *ids, size_t n,
			    const struct swarm_as_action *acts, size_t n_acts,
			    const uint32_t *targets)
{
	fprintf(f, "decide %" PRIu64 " %u %zu\n", now_ns, parked, n);
	for (size_t i = 0; i < n; i++) {
		const struct swarm_as_model *m = &models[i];
		fprintf(f, "model %" PRIu64 " ", ids[i]);
		put_name(f, names[i]);
		fprintf(f,
			" %u %u %u %" PRIu64 " %a %a %a %a %u %" PRIu64
			" %u %u %u %u %u %u %a %a\n",
			versions[i], m->min_devices, m->max_devices, m->latency_p99_ns,
			m->rate_long, m->rate_short, m->service_rate, m->busy, m->queue_depth,
			m->p99_ns, m->sessions, m->waiting_opens, m->active, m->warming,
			m->draining, targets[i], m->rate_peak, m->service_peak);
	}
	for (size_t k = 0; k < n_acts; k++)
		fprintf(f, "action %u %u %u %u\n", acts[k].kind, acts[k].model, acts[k].count,
			acts[k].reason);
	return ferror(f) || fflush(f) ? -EIO : 0;
}

/* ---- replay ------------------------------------------------------------------------------ */

/* One decision read back, and what replaying it needs. */
struct decision {
	uint64_t line, now;
	uint32_t parked;
	size_t n, got, n_acts;
	struct swarm_as_model *m;
	uint64_t *ids;
	uint32_t *targets;
	struct swarm_as_action *acts;
};

struct replay {
	struct swarm_as_config cfg;
	int have_cfg;
	struct swarm_as_memory *mem; /* by id */
	size_t mem_cap;
	struct decision d;
	int open; /* a decision is being read */
	struct swarm_as_replay *out;
	char *err;
	size_t err_len;
};

static int fail(struct replay *r, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	int at = snprintf(r->err, r->err_len, "line %" PRIu64 ": ", line);
	va_start(ap, fmt);
	if (at >= 0 && (size_t)at < r->err_len)
		vsnprintf(r->err + at, r->err_len - (size_t)at, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The memory of id, grown (zeroed: a new memory) as ids appear. */
static struct swarm_as_memory *memory(struct replay *r, uint64_t id)
{
	if (id >= r->mem_cap) {
		size_t cap = r->mem_cap ? r->mem_cap : 64;
		while (cap <= id)
			cap *= 2;
		struct swarm_as_memory *m = realloc(r->mem, cap * sizeof *m);
		if (!m)
			return NULL;
		memset(m + r->mem_cap, 0, (cap - r->mem_cap) * sizeof *m);
		r->mem = m;
		r->mem_cap = cap;
	}
	return &r->mem[id];
}

static void note_mismatch(struct replay *r, const char *fmt, ...)
{
	r->out->mismatches++;
	if (r->out->first_mismatch_line)
		return;
	r->out->first_mismatch_line = r->d.line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->out->first_mismatch, sizeof r->out->first_mismatch, fmt, ap);
	va_end(ap);
}

/* Replays the decision read (its models and actions all there) and compares. */
static int finish(struct replay *r)
{
	struct decision *d = &r->d;
	if (!r->open)
		return 0;
	r->open = 0;
	if (d->got != d->n)
		return fail(r, d->line, "decide says %zu models, %zu followed", d->n, d->got);
	struct swarm_as_memory mem[MAX_MODELS];
	for (size_t i = 0; i < d->n; i++) {
		struct swarm_as_memory *m = memory(r, d->ids[i]);
		if (!m)
			return -ENOMEM;
		mem[i] = *m;
	}
	struct swarm_as_action acts[MAX_ACTIONS];
	uint32_t targets[MAX_MODELS];
	int n = swarm_as_decide(d->now, &r->cfg, d->m, mem, d->n, d->parked, acts, MAX_ACTIONS,
				targets);
	if (n < 0)
		return fail(r, d->line, "the policy refused the decision's input (%s)",
			    strerror(-n));
	for (size_t i = 0; i < d->n; i++)
		r->mem[d->ids[i]] = mem[i];
	r->out->decisions++;
	if ((size_t)n != d->n_acts) {
		note_mismatch(r, "%d actions replayed, %zu traced", n, d->n_acts);
		return 0;
	}
	for (int k = 0; k < n; k++) {
		const struct swarm_as_action *a = &acts[k], *b = &d->acts[k];
		if (a->kind != b->kind || a->model != b->model || a->count != b->count ||
		    a->reason != b->reason) {
			note_mismatch(r, "action %d: replayed %u %u %u %u, traced %u %u %u %u", k,
				      a->kind, a->model, a->count, a->reason, b->kind, b->model,
				      b->count, b->reason);
			return 0;
		}
	}
	for (size_t i = 0; i < d->n; i++)
		if (targets[i] != d->targets[i]) {
			note_mismatch(r, "model %zu: target replayed %u, traced %u", i, targets[i],
				      d->targets[i]);
			return 0;
		}
	return 0;
}

static int on_decide(struct replay *r, uint64_t line, const char *rest)
{
	int rc = finish(r);
	if (rc)
		return rc;
	struct decision *d = &r->d;
	char tail;
	if (sscanf(rest, "%" SCNu64 " %" SCNu32 " %zu %c", &d->now, &d->parked, &d->n, &tail) !=
		    3 ||
	    d->n > MAX_MODELS)
		return fail(r, line, "a decide record is NOW PARKED N_MODELS (N at most %d)",
			    MAX_MODELS);
	d->line = line;
	d->got = d->n_acts = 0;
	r->open = 1;
	return 0;
}

static int on_model(struct replay *r, uint64_t line, const char *rest)
{
	struct decision *d = &r->d;
	if (!r->open || d->got == d->n)
		return fail(r, line, "a model record outside its decision");
	struct swarm_as_model *m = &d->m[d->got];
	memset(m, 0, sizeof *m);
	char name[256], tail;
	uint32_t version;
	int got = sscanf(rest,
			 "%" SCNu64 " %255s %" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu64
			 " %la %la %la %la %" SCNu32 " %" SCNu64 " %" SCNu32 " %" SCNu32 " %" SCNu32
			 " %" SCNu32 " %" SCNu32 " %" SCNu32 " %la %la %c",
			 &d->ids[d->got], name, &version, &m->min_devices, &m->max_devices,
			 &m->latency_p99_ns, &m->rate_long, &m->rate_short, &m->service_rate,
			 &m->busy, &m->queue_depth, &m->p99_ns, &m->sessions, &m->waiting_opens,
			 &m->active, &m->warming, &m->draining, &d->targets[d->got], &m->rate_peak,
			 &m->service_peak, &tail);
	if (got != 20 || d->ids[d->got] >= MAX_ID)
		return fail(r, line, "a model record has 20 fields (the id below %u)", MAX_ID);
	d->got++;
	r->out->models++;
	return 0;
}

static int on_action(struct replay *r, uint64_t line, const char *rest)
{
	struct decision *d = &r->d;
	if (!r->open || d->got != d->n || d->n_acts == MAX_ACTIONS)
		return fail(r, line, "an action record outside its decision");
	struct swarm_as_action *a = &d->acts[d->n_acts];
	char tail;
	if (sscanf(rest, "%" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32 " %c", &a->kind, &a->model,
		   &a->count, &a->reason, &tail) != 4)
		return fail(r, line, "an action record is KIND MODEL COUNT REASON");
	d->n_acts++;
	r->out->actions++;
	if (a->kind == SWARM_AS_WAKE)
		r->out->wakes += a->count;
	else if (a->kind == SWARM_AS_DRAIN)
		r->out->drains += a->count;
	return 0;
}

static int on_line(struct replay *r, uint64_t line, char *s)
{
	s[strcspn(s, "\r\n")] = 0;
	if (!*s || *s == '#')
		return 0;
	if (line == 1)
		return strcmp(s, TRACE_MAGIC) ?
			       fail(r, line, "not a trace: no \"%s\"", TRACE_MAGIC) :
			       0;
	if (!strncmp(s, "config ", 7)) {
		struct swarm_as_config *c = &r->cfg;
		char tail;
		if (sscanf(s + 7, "%la %la %la %la %" SCNu64 " %" SCNu64 " %" SCNu64 " %la %d %c",
			   &c->target_util, &c->hysteresis, &c->panic_ratio, &c->panic_delay_frac,
			   &c->stable_window_ns, &c->cooldown_ns, &c->peak_window_ns, &c->peak_util,
			   &c->drain_all, &tail) != 9)
			return fail(r, line, "a config record has 9 fields");
		r->have_cfg = 1;
		return 0;
	}
	if (!r->have_cfg)
		return fail(r, line, "a record before the config");
	if (!strncmp(s, "decide ", 7))
		return on_decide(r, line, s + 7);
	if (!strncmp(s, "model ", 6))
		return on_model(r, line, s + 6);
	if (!strncmp(s, "action ", 7))
		return on_action(r, line, s + 7);
	return fail(r, line, "unknown record \"%.32s\"", s);
}

int swarm_as_trace_replay(FILE *f, struct swarm_as_replay *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof *out);
	struct replay r = { .out = out, .err = err, .err_len = err_len };
	r.d.m = calloc(MAX_MODELS, sizeof *r.d.m);
	r.d.ids = calloc(MAX_MODELS, sizeof *r.d.ids);
	r.d.targets = calloc(MAX_MODELS, sizeof *r.d.targets);
	r.d.acts = calloc(MAX_ACTIONS, sizeof *r.d.acts);
	int rc = r.d.m && r.d.ids && r.d.targets && r.d.acts ? 0 : -ENOMEM;
	char buf[1024];
	uint64_t line = 0;
	while (!rc && fgets(buf, sizeof buf, f)) {
		line++;
		if (!strchr(buf, '\n') && !feof(f))
			rc = fail(&r, line, "a line longer than %zu bytes", sizeof buf - 1);
		else
			rc = on_line(&r, line, buf);
	}
	if (!rc && line == 0)
		rc = fail(&r, 1, "an empty trace");
	if (!rc)
		rc = finish(&r);
	free(r.d.m);
	free(r.d.ids);
	free(r.d.targets);
	free(r.d.acts);
	free(r.mem);
	return rc;
}
