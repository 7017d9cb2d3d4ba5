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

/* vsnprintf with every %s value escaped (see the top of this file). Handles the conversions
 * the format attribute lets through: flags, width and precision (also as *), the length
 * modifiers hh h l ll j z t, and d i o u x X c s p f e g a and %%. */
static size_t format_escaped(char *out, size_t len, const char *fmt, va_list ap)
{
	size_t at = 0;
	int quoted = 0; /* inside a value's double quotes in the format */
	for (const char *f = fmt; *f && at + 1 < len;) {
		if (*f != '%') {
			quoted ^= *f == '"';
			out[at++] = *f++;
			continue;
		}
		const char *start = f++;
		if (*f == '%') {
			out[at++] = '%';
			f++;
			continue;
		}
		int prec = -1, star_w = 0, star_p = 0;
		while (*f && strchr("-+ #0", *f))
			f++;
		if (*f == '*') {
			star_w = 1;
			f++;
		}
		while (*f >= '0' && *f <= '9')
			f++;
		if (*f == '.') {
			f++;
			if (*f == '*') {
				star_p = 1;
				f++;
			}
			while (*f >= '0' && *f <= '9')
				f++;
		}
		char mods[4] = "";
		size_t nm = 0;
		while (*f && strchr("hljzt", *f) && nm < sizeof mods - 1)
			mods[nm++] = *f++;
		mods[nm] = 0;
		char conv = *f ? *f++ : 0;
		char spec[32];
		size_t sl = (size_t)(f - start);
		if (!conv || sl >= sizeof spec)
			break; /* a format the attribute would have refused */
		memcpy(spec, start, sl);
		spec[sl] = 0;
		/* a * takes its number from the arguments: written into the spec instead */
		if (star_w || star_p) {
			char plain[64];
			size_t k = 0;
			for (const char *c = spec; *c && k + 12 < sizeof plain; c++) {
				if (*c == '*')
					k += (size_t)snprintf(plain + k, sizeof plain - k, "%d",
							      va_arg(ap, int));
				else
					plain[k++] = *c;
			}
			plain[k] = 0;
			if (k >= sizeof spec)
				break;
			memcpy(spec, plain, k + 1);
		}
		if (strchr(spec, '.'))
			prec = (int)strtol(strchr(spec, '.') + 1, NULL, 10);
		int room = (int)(len - at);
		int w = 0;
		switch (arg_kind(mods, conv)) {
		case ARG_STR: {
			const char *v = va_arg(ap, const char *);
			/* values are escaped, not padded: a width is ignored */
			put_escaped(out, len, &at, v ? v : "(null)", prec, quoted);
			continue;
		}
		case ARG_INT:
			w = snprintf(out + at, (size_t)room, spec, va_arg(ap, int));
			break;
		case ARG_LONG:
			w = snprintf(out + at, (size_t)room, spec, va_arg(ap, long));
			break;
		case ARG_LLONG:
			w = snprintf(out + at, (size_t)room, spec, va_arg(ap, long long));
			break;
		case ARG_SIZE:
			w = snprintf(out + at, (size_t)room, spec, va_arg(ap, size_t));
			break;
		case ARG_DOUBLE:
			w = snprintf(out + at, (size_t)room, spec, va_arg(ap, double));
			break;
		case ARG_PTR:
			w = snprintf(out + at, (size_t)room, spec, va_arg(ap, void *));
			break;
		case ARG_BAD:
			return at;
		}
		if (w > 0)
			at += (size_t)w < (size_t)room ? (size_t)w : (size_t)room - 1;
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
	size_t len = (size_t)n + format_escaped(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere to report a failed log write */
}
