/* log.c: key=value event lines on stderr, one write(2) each so lines never interleave, or
 * the same events as JSON objects (--log-format json) for log shippers.
 *
 * Every %s value is escaped as it is formatted, whoever wrote the call: a model name, a
 * worker's reason or a path comes from outside, and must neither end the line (a forged
 * "event=ready" on a line of its own) nor end its quotes. In a value a backslash and a double
 * quote get a backslash, control characters are \n, \r, \t or \xHH, and a value written
 * without quotes (key=%s) has its spaces as \x20, so that every line splits into its pairs.
 *
 * The JSON form walks the same format and splits it into pairs where a reader of the kv line
 * would: a key runs to its '=', a value to the next space of the format, or from a double
 * quote to the next. Values go in raw (jansson escapes them); a value that is a single
 * numeric conversion outside quotes is a number, every other one a string, so that a field
 * keeps one JSON type whatever its value. Text that is no pair goes to "msg". */
#include "runtime/log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *component = "swarm";
static enum swarm_log_level min_level = SWARM_LOG_INFO;
static enum swarm_log_format format = SWARM_LOG_KV;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void swarm_log_init(const char *comp, enum swarm_log_level level)
{
	component = comp;
	min_level = level;
}

int swarm_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

int swarm_log_parse_format(const char *s)
{
	if (strcmp(s, "kv") == 0)
		return SWARM_LOG_KV;
	if (strcmp(s, "json") == 0)
		return SWARM_LOG_JSON;
	return -1;
}

void swarm_log_set_format(enum swarm_log_format f) { format = f; }

/* Appends s's first max bytes (max < 0: all) to out at *at, escaped (quoted: inside double
 * quotes in the format, so spaces stay). Never writes past len - 1. */
static void put_escaped(char *out, size_t len, size_t *at, const char *s, long max, int quoted)
{
	static const char hex[] = "0123456789abcdef";
	for (long i = 0; s[i] && (max < 0 || i < max) && *at + 4 < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
		if (c == '"' || c == '\\') {
			out[(*at)++] = '\\';
			out[(*at)++] = (char)c;
		} else if (esc) {
			out[(*at)++] = '\\';
			out[(*at)++] = esc;
		} else if (c < 0x20 || c == 0x7f || (c == ' ' && !quoted)) {
			out[(*at)++] = '\\';
			out[(*at)++] = 'x';
			out[(*at)++] = hex[c >> 4];
			out[(*at)++] = hex[c & 15];
		} else {
			out[(*at)++] = (char)c;
		}
	}
}

/* The type a conversion takes from the arguments, by its length modifier and letter. */
enum arg_kind {
	ARG_INT,
	ARG_LONG,
	ARG_LLONG,
	ARG_SIZE,
	ARG_DOUBLE,
	ARG_STR,
	ARG_PTR,
	ARG_BAD
};

static enum arg_kind arg_kind(const char *mods, char conv)
{
	if (conv == 's')
		return ARG_STR;
	if (conv == 'p')
		return ARG_PTR;
	if (strchr("fFeEgGaA", conv))
		return ARG_DOUBLE;
	if (!strchr("diouxXc", conv))
		return ARG_BAD;
	if (strstr(mods, "ll") || strchr(mods, 'j'))
		return ARG_LLONG;
	if (strchr(mods, 'l'))
		return ARG_LONG;
	if (strchr(mods, 'z') || strchr(mods, 't'))
		return ARG_SIZE;
	return ARG_INT;
}

/* One conversion of a format: its spec ("%-8.3llu"), length modifiers and letter. */
struct conv {
	char spec[64];
	char mods[4];
	char letter;
	int stars; /* '*' widths or precisions it takes from the arguments */
};

/* Reads the conversion at start (a '%' not followed by another) into c. Returns the character
 * after it, or NULL for one the format attribute would have refused. */
static const char *parse_conv(const char *start, struct conv *c)
{
	const char *f = start + 1;
	c->stars = 0;
	while (*f && strchr("-+ #0", *f))
		f++;
	for (int part = 0; part < 2; part++) { /* the width, then the precision */
		if (part == 1 && *f != '.')
			break;
		f += part;
		if (*f == '*') {
			c->stars++;
			f++;
		}
		while (*f >= '0' && *f <= '9')
			f++;
	}
	size_t nm = 0;
	while (*f && strchr("hljzt", *f) && nm < sizeof c->mods - 1)
		c->mods[nm++] = *f++;
	c->mods[nm] = 0;
	c->letter = *f ? *f++ : 0;
	size_t sl = (size_t)(f - start);
	if (!c->letter || sl >= sizeof c->spec / 2)
		return NULL;
	memcpy(c->spec, start, sl);
	c->spec[sl] = 0;
	return f;
}

/* Writes each '*' of c's spec as the number it takes from the arguments. */
static void expand_stars(struct conv *c, va_list *ap)
{
	char plain[sizeof c->spec];
	size_t k = 0;
	for (const char *p = c->spec; *p && k + 12 < sizeof plain; p++) {
		if (*p == '*')
			k += (size_t)snprintf(plain + k, sizeof plain - k, "%d", va_arg(*ap, int));
		else
			plain[k++] = *p;
	}
	plain[k] = 0;
	memcpy(c->spec, plain, k + 1);
}

/* Formats one conversion other than %s into out (room bytes) as printf does. Returns what
 * snprintf returns, or -1 for a conversion not handled. */
static int format_other(char *out, size_t room, const struct conv *c, va_list *ap)
{
	switch (arg_kind(c->mods, c->letter)) {
	case ARG_INT:
		return snprintf(out, room, c->spec, va_arg(*ap, int));
	case ARG_LONG:
		return snprintf(out, room, c->spec, va_arg(*ap, long));
	case ARG_LLONG:
		return snprintf(out, room, c->spec, va_arg(*ap, long long));
	case ARG_SIZE:
		return snprintf(out, room, c->spec, va_arg(*ap, size_t));
	case ARG_DOUBLE:
		return snprintf(out, room, c->spec, va_arg(*ap, double));
	case ARG_PTR:
		return snprintf(out, room, c->spec, va_arg(*ap, void *));
	default:
		return -1;
	}
}

/* vsnprintf with every %s value escaped (see the top of this file). Handles the conversions
 * the format attribute lets through: flags, width and precision (also as *), the length
 * modifiers hh h l ll j z t, and d i o u x X c s p f e g a and %%. */
static size_t format_escaped(char *out, size_t len, const char *fmt, va_list *ap)
{
	size_t at = 0;
	int quoted = 0; /* inside a value's double quotes in the format */
	for (const char *f = fmt; *f && at + 1 < len;) {
		if (*f != '%' || f[1] == '%') {
			quoted ^= *f == '"';
			out[at++] = *f;
			f += *f == '%' ? 2 : 1;
			continue;
		}
		struct conv c;
		if (!(f = parse_conv(f, &c)))
			break;
		if (c.stars)
			expand_stars(&c, ap);
		if (c.letter == 's') {
			/* values are escaped, not padded: a width is ignored */
			const char *dot = strchr(c.spec, '.');
			const char *v = va_arg(*ap, const char *);
			put_escaped(out, len, &at, v ? v : "(null)", dot ? strtol(dot + 1, NULL, 10) : -1,
				    quoted);
			continue;
		}
		int w = format_other(out + at, len - at, &c, ap);
		if (w < 0)
			break;
		at += (size_t)w < len - at ? (size_t)w : len - at - 1;
	}
	out[at < len ? at : len - 1] = 0;
	return at;
}

/* ---- the JSON form ------------------------------------------------------------------------ */

#define JV_MAX 1024 /* a value's raw bytes past this are cut, as the kv line cuts them */

/* A key or value of the JSON form as it is formatted: its raw text, and whether it was one
 * numeric conversion and nothing else. */
struct jtext {
	char s[JV_MAX];
	size_t len;
	int parts;          /* literal runs and conversions in it */
	enum arg_kind kind; /* of its one conversion; ARG_BAD for none or a non-number */
	int quoted;
};

static void jt_put(struct jtext *t, const char *s, size_t n)
{
	if (n > sizeof t->s - 1 - t->len)
		n = sizeof t->s - 1 - t->len;
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = 0;
}

/* Formats the conversion at f into t, raw. Returns the character after it, or NULL. */
static const char *jt_conv(const char *f, struct jtext *t, va_list *ap)
{
	struct conv c;
	if (!(f = parse_conv(f, &c)))
		return NULL;
	if (c.stars)
		expand_stars(&c, ap);
	t->parts++;
	if (c.letter == 's') {
		const char *dot = strchr(c.spec, '.');
		const char *v = va_arg(*ap, const char *);
		v = v ? v : "(null)";
		size_t n = strlen(v);
		if (dot && (size_t)strtol(dot + 1, NULL, 10) < n)
			n = (size_t)strtol(dot + 1, NULL, 10);
		jt_put(t, v, n);
		t->kind = ARG_BAD;
		return f;
	}
	char buf[400];
	int w = format_other(buf, sizeof buf, &c, ap);
	if (w < 0)
		return NULL;
	jt_put(t, buf, (size_t)w < sizeof buf ? (size_t)w : sizeof buf - 1);
	enum arg_kind k = arg_kind(c.mods, c.letter);
	/* hex, octal, a char and a pointer read as text, not as the number they are */
	t->kind = strchr("diufFeEgG", c.letter) && k != ARG_PTR ? k : ARG_BAD;
	return f;
}

/* Where a token of fmt ends: a key at '=' or a space, a value at a space, a quoted value at
 * its closing quote. */
static int jt_end(const char *f, int key, int quoted)
{
	return !*f || (quoted ? *f == '"' : *f == ' ' || (key && *f == '='));
}

/* Formats one token of fmt from f into t: a key (key 1) or a value. Returns where the format
 * goes on, or NULL for a conversion it cannot format. */
static const char *jt_token(const char *f, int key, struct jtext *t, va_list *ap)
{
	t->s[0] = 0;
	t->len = 0;
	t->parts = 0;
	t->kind = ARG_BAD;
	t->quoted = !key && *f == '"';
	f += t->quoted;
	int in_literal = 0;
	while (!jt_end(f, key, t->quoted)) {
		if (*f == '%' && f[1] != '%') {
			if (!(f = jt_conv(f, t, ap)))
				return NULL;
			in_literal = 0;
			continue;
		}
		t->parts += !in_literal;
		in_literal = 1;
		jt_put(t, f, 1);
		f += *f == '%' ? 2 : 1; /* "%%" is one '%' */
	}
	if (t->quoted && *f == '"')
		f++;
	return f;
}

/* t as a JSON value: a number when it is one numeric conversion outside quotes (and fits),
 * else a string; bytes that are not UTF-8 become \xHH text (jansson takes UTF-8 only). */
static json_t *jt_value(const struct jtext *t)
{
	if (t->parts == 1 && !t->quoted && t->kind != ARG_BAD) {
		char *end;
		errno = 0;
		if (t->kind == ARG_DOUBLE) {
			double v = strtod(t->s, &end);
			if (!*end && end != t->s && isfinite(v))
				return json_real(v);
		} else {
			long long v = strtoll(t->s, &end, 10);
			if (!*end && end != t->s && !errno)
				return json_integer(v);
		}
	}
	json_t *j = json_stringn(t->s, t->len);
	if (j)
		return j;
	char safe[4 * JV_MAX];
	size_t k = 0;
	for (size_t i = 0; i < t->len && k + 5 < sizeof safe; i++) {
		unsigned char c = (unsigned char)t->s[i];
		if (c < 0x80 && c)
			safe[k++] = (char)c;
		else
			k += (size_t)snprintf(safe + k, sizeof safe - k, "\\x%02x", c);
	}
	return json_stringn(safe, k);
}

/* The event's pairs of fmt as members of obj; text that is no pair joins "msg". */
static void json_pairs(json_t *obj, const char *fmt, va_list *ap)
{
	struct jtext key, val;
	char msg[JV_MAX] = "";
	size_t msg_len = 0;
	for (const char *f = fmt; f && *f;) {
		if (*f == ' ') {
			f++;
			continue;
		}
		if (!(f = jt_token(f, 1, &key, ap)))
			break;
		if (*f != '=') { /* no '=': free text */
			int n = snprintf(msg + msg_len, sizeof msg - msg_len, "%s%s",
					 msg_len ? " " : "", key.s);
			msg_len += n > 0 ? (size_t)n : 0;
			msg_len = msg_len < sizeof msg ? msg_len : sizeof msg - 1;
			continue;
		}
		if (!(f = jt_token(f + 1, 0, &val, ap)))
			break;
		json_t *v = jt_value(&val);
		if (v)
			json_object_set_new(obj, key.len ? key.s : "_", v);
	}
	if (msg_len)
		json_object_set_new(obj, "msg", json_string(msg));
}

/* The JSON line of one event (ts, level, comp, pid, then the pairs), '\n' ended, malloc'd;
 * NULL when out of memory. */
static char *json_line(const struct timespec *ts, enum swarm_log_level level, const char *fmt,
		       va_list *ap, size_t *len)
{
	json_t *obj = json_object();
	if (!obj)
		return NULL;
	json_object_set_new(obj, "ts", json_real((double)ts->tv_sec + ts->tv_nsec / 1e9));
	json_object_set_new(obj, "level", json_string(level_names[level]));
	json_object_set_new(obj, "comp", json_string(component));
	json_object_set_new(obj, "pid", json_integer(getpid()));
	json_pairs(obj, fmt, ap);
	/* 16 digits: a timestamp's microseconds survive, and 2.2 still prints as 2.2 */
	char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(16));
	json_decref(obj);
	if (!s)
		return NULL;
	*len = strlen(s);
	char *line = realloc(s, *len + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[(*len)++] = '\n';
	line[*len] = 0;
	return line;
}

void swarm_log(enum swarm_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	va_list ap;
	va_start(ap, fmt);
	if (format == SWARM_LOG_JSON) {
		size_t len = 0;
		char *line = json_line(&ts, level, fmt, &ap, &len);
		va_end(ap);
		if (line) {
			ssize_t w = write(STDERR_FILENO, line, len);
			(void)w; /* nowhere to report a failed log write */
		}
		free(line);
		return;
	}
	char line[1024];
	int n = snprintf(line, sizeof line, "ts=%lld.%06ld level=%s comp=%s pid=%d ",
			 (long long)ts.tv_sec, ts.tv_nsec / 1000, level_names[level], component,
			 (int)getpid());
	size_t len = (size_t)n + format_escaped(line + n, sizeof line - (size_t)n - 1, fmt, &ap);
	va_end(ap);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere to report a failed log write */
}

void swarm_fmt_bytes(char *buf, unsigned long len, unsigned long long bytes)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}
