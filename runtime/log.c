/* log.c: key=value event lines on stderr, one write(2) each so lines never interleave.
 *
 * Every %s value is escaped as it is formatted, whoever wrote the call: a model name, a
 * worker's reason or a path comes from outside, and must neither end the line (a forged
 * "event=ready" on a line of its own) nor end its quotes. In a value a backslash and a double
 * quote get a backslash, control characters are \n, \r, \t or \xHH, and a value written
 * without quotes (key=%s) has its spaces as \x20, so that every line splits into its pairs. */
#include "runtime/log.h"

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

void swarm_log(enum swarm_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char line[1024];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(line, sizeof line, "ts=%lld.%06ld level=%s comp=%s pid=%d ",
			 (long long)ts.tv_sec, ts.tv_nsec / 1000, level_names[level], component,
			 (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	size_t len = (size_t)n + format_escaped(line + n, sizeof line - (size_t)n - 1, fmt, &ap);
	va_end(ap);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere to report a failed log write */
}
