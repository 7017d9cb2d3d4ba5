/* json_out.c: the tools' one way to emit JSON (json_out.h): jansson builds and escapes, these
 * helpers make strings valid UTF-8, numbers the figures their formats printed, and write. */
#include "tools/json_out.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 if it is not one: no
 * overlong forms, no surrogates, nothing above U+10FFFF (what jansson accepts). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* s itself when it is valid UTF-8, else a malloc'd copy with U+FFFD for each byte of an invalid
 * sequence (NULL when out of memory). The caller frees what is not s. */
static char *utf8_clean(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), bad = 0;
	for (size_t i = 0, l; i < n; i += l ? l : 1)
		if (!(l = utf8_len(u + i, n - i)))
			bad++;
	if (!bad)
		return (char *)s;
	char *out = malloc(n + 2 * bad + 1), *o = out; /* U+FFFD is 3 bytes for 1 */
	if (!out)
		return NULL;
	for (size_t i = 0, l; i < n; i += l ? l : 1) {
		if ((l = utf8_len(u + i, n - i))) {
			memcpy(o, s + i, l);
			o += l;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
	}
	*o = 0;
	return out;
}

json_t *swarm_json_str(const char *s)
{
	if (!s)
		s = "";
	char *c = utf8_clean(s);
	json_t *j = c ? json_string(c) : NULL;
	if (c != s)
		free(c);
	return j;
}

int swarm_json_set(json_t *obj, const char *key, json_t *value)
{
	const char *k = key ? key : "";
	char *c = utf8_clean(k);
	int rc = c ? json_object_set_new(obj, c, value) : (json_decref(value), -1);
	if (c != k)
		free(c);
	return rc;
}

json_t *swarm_json_number(const char *fmt, double v)
{
	if (!isfinite(v))
		return json_null();
	char buf[512];
	snprintf(buf, sizeof buf, fmt, v);
	if (!strpbrk(buf, ".eE") && fabs(v) < 9e18)
		return json_integer(strtoll(buf, NULL, 10));
	return json_real(strtod(buf, NULL));
}

json_t *swarm_json_u64(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

int swarm_json_write(FILE *f, json_t *doc)
{
	if (!doc)
		return -ENOMEM;
	/* 15 significant digits print every real as the short figure it was rounded to (17 would
	 * show 0.1 as 0.10000000000000001); no figure here has more. */
	int rc = json_dumpf(doc, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	json_decref(doc);
	if (rc == 0)
		fputc('\n', f);
	return rc || ferror(f) ? -EIO : 0;
}

int swarm_json_write_path(const char *path, json_t *doc)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
	if (!f) {
		int e = errno;
		json_decref(doc);
		return -e;
	}
	int rc = swarm_json_write(f, doc);
	if (f != stdout && fclose(f) && !rc)
		rc = -errno;
	return rc;
}
