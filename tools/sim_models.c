/* sim_models.c: swarm-sim's models file (see sim_multi.h, docs/simulator.md "Many models"):
 * one model a line, its name then key=value fields separated by blanks, each line checked
 * whole so that a mistake is named by file and line rather than found in a run's figures.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/size.h"
#include "tools/sim_internal.h"
#include "tools/sim_multi.h"

/* The fields of a line, in the order of the table below. */
enum field {
	F_TRACE,
	F_BASE,
	F_PER_ROW,
	F_MAX_BATCH,
	F_BYTES,
	F_MIN,
	F_MAX,
	F_OBJECTIVE,
	F_LOAD,
	F_COUNT,
};

static const struct {
	const char *key;
	double lo, hi; /* numbers: the range */
} fields[F_COUNT] = {
	[F_TRACE] = { "trace", 0, 0 },
	[F_BASE] = { "base_us", 0, 1e9 },
	[F_PER_ROW] = { "per_row_us", 0, 1e9 },
	[F_MAX_BATCH] = { "max_batch", 1, 65536 },
	[F_BYTES] = { "bytes", 0, 0 },
	[F_MIN] = { "min", 0, SWARM_FLEET_MAX_DEVICES },
	[F_MAX] = { "max", 0, SWARM_FLEET_MAX_DEVICES },
	[F_OBJECTIVE] = { "objective_us", 1e-3, 1e15 },
	[F_LOAD] = { "load_ms", 0, 1e9 },
};

static void model_default(struct swarm_sim_model *m)
{
	memset(m, 0, sizeof *m);
	m->base_us = 2000;
	m->per_row_us = 1000;
	m->max_batch = 8;
	m->bytes = 1ull << 30;
	m->objective_us = 50000;
	m->load_ms = 500;
}

static int integral(double v) { return v == floor(v); }

/* One key=value of a model's line into m. */
static int parse_field(struct swarm_sim_model *m, char *tok, int seen[F_COUNT], const char *where,
		       char *err, size_t err_len)
{
	char *eq = strchr(tok, '=');
	if (!eq || eq == tok)
		return sim_set_err(err, err_len, -EINVAL, "%s: '%s' is not key=value", where, tok);
	*eq = '\0';
	const char *val = eq + 1;
	int f = 0;
	while (f < F_COUNT && strcmp(fields[f].key, tok))
		f++;
	if (f == F_COUNT)
		return sim_set_err(
			err, err_len, -EINVAL,
			"%s: unknown key '%s' (trace, base_us, per_row_us, max_batch, bytes, "
			"min, max, objective_us, load_ms)",
			where, tok);
	if (seen[f]++)
		return sim_set_err(err, err_len, -EINVAL, "%s: %s given twice", where, tok);
	if (f == F_TRACE) {
		m->trace_spec = strdup(val);
		if (!m->trace_spec)
			return -ENOMEM;
		char terr[256];
		int rc = swarm_sim_trace_parse(val, &m->trace, terr, sizeof terr);
		if (rc) {
			free(m->trace_spec);
			m->trace_spec = NULL;
			return sim_set_err(err, err_len, rc, "%s: trace: %s", where, terr);
		}
		return 0;
	}
	if (f == F_BYTES) {
		if (swarm_size_parse(val, &m->bytes) || m->bytes == 0)
			return sim_set_err(
				err, err_len, -EINVAL,
				"%s: bytes: '%s' is not a size above 0 (digits, then K, M, "
				"G or T)",
				where, val);
		return 0;
	}
	char *end;
	errno = 0;
	double v = strtod(val, &end);
	int need_int = f == F_MAX_BATCH || f == F_MIN || f == F_MAX;
	if (end == val || *end || errno || !isfinite(v) || v < fields[f].lo || v > fields[f].hi ||
	    (need_int && !integral(v)))
		return sim_set_err(err, err_len, -EINVAL, "%s: %s: '%s' is not %s from %g to %g",
				   where, tok, val, need_int ? "an integer" : "a number",
				   fields[f].lo, fields[f].hi);
	switch (f) {
	case F_BASE:
		m->base_us = v;
		break;
	case F_PER_ROW:
		m->per_row_us = v;
		break;
	case F_MAX_BATCH:
		m->max_batch = (uint32_t)v;
		break;
	case F_MIN:
		m->min_devices = (uint32_t)v;
		break;
	case F_MAX:
		m->max_devices = (uint32_t)v;
		break;
	case F_OBJECTIVE:
		m->objective_us = v;
		break;
	case F_LOAD:
		m->load_ms = v;
		break;
	}
	return 0;
}

/* One model's line (no comment, not blank) into m, which owns its trace on success only. */
static int parse_line(const struct swarm_sim_models *ms, struct swarm_sim_model *m, char *line,
		      const char *where, char *err, size_t err_len)
{
	model_default(m);
	char *save;
	char *name = strtok_r(line, " \t\r\n", &save);
	if (strchr(name, '='))
		return sim_set_err(err, err_len, -EINVAL,
				   "%s: a line starts with the model's name, not '%s'", where,
				   name);
	if (strlen(name) >= sizeof m->name)
		return sim_set_err(err, err_len, -EINVAL, "%s: model name longer than %zu bytes",
				   where, sizeof m->name - 1);
	for (size_t i = 0; i < ms->n; i++)
		if (!strcmp(ms->v[i].name, name))
			return sim_set_err(err, err_len, -EINVAL, "%s: model '%s' given twice",
					   where, name);
	strcpy(m->name, name);
	int seen[F_COUNT] = { 0 };
	int rc = 0;
	for (char *tok; !rc && (tok = strtok_r(NULL, " \t\r\n", &save));)
		rc = parse_field(m, tok, seen, where, err, err_len);
	if (!rc && !seen[F_TRACE])
		rc = sim_set_err(err, err_len, -EINVAL, "%s: model '%s' has no trace=", where,
				 name);
	if (!rc && m->max_devices && m->min_devices > m->max_devices)
		rc = sim_set_err(err, err_len, -EINVAL, "%s: min is above max", where);
	if (!rc && !(m->base_us + m->per_row_us > 0))
		rc = sim_set_err(err, err_len, -EINVAL, "%s: a batch of one must take time", where);
	if (rc && m->trace_spec) {
		swarm_sim_trace_free(&m->trace);
		free(m->trace_spec);
		m->trace_spec = NULL;
	}
	return rc;
}

int swarm_sim_models_parse(const char *path, struct swarm_sim_models *out, char *err,
			   size_t err_len)
{
	memset(out, 0, sizeof *out);
	FILE *f = fopen(path, "r");
	if (!f)
		return sim_set_err(err, err_len, -errno, "%s: %s", path, strerror(errno));
	int rc = 0;
	char *line = NULL;
	size_t cap = 0;
	char where[512];
	for (unsigned lineno = 1; !rc && getline(&line, &cap, f) >= 0; lineno++) {
		char *p = line + strspn(line, " \t\r\n");
		if (!*p || *p == '#')
			continue;
		snprintf(where, sizeof where, "%s:%u", path, lineno);
		if (out->n == SWARM_SIM_MAX_MODELS) {
			rc = sim_set_err(err, err_len, -EINVAL, "%s: more than %u models", where,
					 SWARM_SIM_MAX_MODELS);
			break;
		}
		struct swarm_sim_model *nv = realloc(out->v, (out->n + 1) * sizeof *nv);
		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		out->v = nv;
		rc = parse_line(out, &out->v[out->n], p, where, err, err_len);
		if (!rc)
			out->n++;
	}
	if (!rc && ferror(f))
		rc = sim_set_err(err, err_len, -EIO, "%s: read error", path);
	if (!rc && !out->n)
		rc = sim_set_err(err, err_len, -EINVAL, "%s: no model in the file", path);
	free(line);
	fclose(f);
	if (rc)
		swarm_sim_models_free(out);
	return rc;
}

void swarm_sim_models_free(struct swarm_sim_models *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		swarm_sim_trace_free(&ms->v[i].trace);
		free(ms->v[i].trace_spec);
	}
	free(ms->v);
	ms->v = NULL;
	ms->n = 0;
}
