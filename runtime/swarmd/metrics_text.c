/* metrics_text.c: the Prometheus text exposition writer (metrics_text.h). */
#include "runtime/swarmd/metrics_text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mtext_init(struct mtext *t) { memset(t, 0, sizeof *t); }

/* Room for n more bytes and a NUL. Returns 0, or -1 (failed, the text freed). */
static int reserve(struct mtext *t, size_t n)
{
	if (t->failed)
		return -1;
	if (t->len + n + 1 <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap : 4096;
	while (cap < t->len + n + 1)
		cap *= 2;
	char *b = realloc(t->buf, cap);
	if (!b) {
		free(t->buf);
		t->buf = NULL;
		t->failed = 1;
		return -1;
	}
	t->buf = b;
	t->cap = cap;
	return 0;
}

static void put(struct mtext *t, const char *s, size_t n)
{
	if (reserve(t, n))
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = 0;
}

void mtext_printf(struct mtext *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* s with backslash and newline escaped, and the double quote too when quote is set. */
static void escaped(struct mtext *t, const char *s, int quote)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			put(t, "\\\\", 2);
		else if (*p == '\n')
			put(t, "\\n", 2);
		else if (*p == '"' && quote)
			put(t, "\\\"", 2);
		else
			put(t, p, 1);
	}
}

void mtext_label_value(struct mtext *t, const char *v) { escaped(t, v, 1); }

void mtext_family(struct mtext *t, const char *name, const char *type, const char *help)
{
	mtext_printf(t, "# HELP %s ", name);
	escaped(t, help, 0);
	mtext_printf(t, "\n# TYPE %s %s\n", name, type);
}

static void labels(struct mtext *t, const struct mlabel *l, int n, const char *le)
{
	if (!n && !le)
		return;
	put(t, "{", 1);
	for (int i = 0; i < n; i++) {
		mtext_printf(t, "%s%s=\"", i ? "," : "", l[i].name);
		mtext_label_value(t, l[i].value);
		put(t, "\"", 1);
	}
	if (le)
		mtext_printf(t, "%sle=\"%s\"", n ? "," : "", le);
	put(t, "}", 1);
}

static void value(struct mtext *t, double v)
{
	if (v >= 0 && v < 9007199254740992.0 && v == floor(v))
		mtext_printf(t, " %llu\n", (unsigned long long)v);
	else
		mtext_printf(t, " %.17g\n", v);
}

void mtext_sample(struct mtext *t, const char *name, const struct mlabel *l, int n, double v)
{
	put(t, name, strlen(name));
	labels(t, l, n, NULL);
	value(t, v);
}

void mtext_histogram(struct mtext *t, const char *name, const struct mlabel *l, int n,
		     const struct swarm_p2hist *h, uint32_t first, uint32_t last, double scale)
{
	uint64_t c[SWARM_P2_BUCKETS], total = 0;
	for (uint32_t i = 0; i < SWARM_P2_BUCKETS; i++)
		total += c[i] = __atomic_load_n(&h->count[i], __ATOMIC_RELAXED);
	uint64_t sum = __atomic_load_n(&h->sum, __ATOMIC_RELAXED);
	if (last >= SWARM_P2_BUCKETS - 1)
		last = SWARM_P2_BUCKETS - 2; /* the last bucket is unbounded: +Inf */
	uint64_t cum = 0;
	char le[40];
	for (uint32_t i = 0; i <= last; i++) {
		cum += c[i];
		if (i < first)
			continue;
		snprintf(le, sizeof le, "%.12g", ldexp(1.0, (int)i) * scale);
		mtext_printf(t, "%s_bucket", name);
		labels(t, l, n, le);
		value(t, (double)cum);
	}
	mtext_printf(t, "%s_bucket", name);
	labels(t, l, n, "+Inf");
	value(t, (double)total);
	mtext_printf(t, "%s_sum", name);
	labels(t, l, n, NULL);
	value(t, (double)sum * scale);
	mtext_printf(t, "%s_count", name);
	labels(t, l, n, NULL);
	value(t, (double)total);
}

char *mtext_finish(struct mtext *t, size_t *len)
{
	if (t->failed || reserve(t, 0))
		return NULL;
	char *b = t->buf;
	*len = t->len;
	t->buf = NULL;
	t->len = t->cap = 0;
	return b;
}
