/* npy.c: NumPy's .npy files (tools/npy.h). */
#include "tools/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- .npy -------------------------------------------------------------------------------------
 */

/* The dtypes a .npy may carry here: numpy's descr, its name, its size. */
static const struct {
	uint32_t dtype;
	const char *npy, *word;
	size_t size;
} dtypes[] = {
	{ SWARM_DTYPE_F32, "<f4", "float32", 4 }, { SWARM_DTYPE_F16, "<f2", "float16", 2 },
	{ SWARM_DTYPE_I64, "<i8", "int64", 8 },   { SWARM_DTYPE_I32, "<i4", "int32", 4 },
	{ SWARM_DTYPE_U8, "|u1", "uint8", 1 },    { SWARM_DTYPE_BF16, NULL, "bfloat16", 2 },
};

static unsigned dtype_at(uint32_t dt)
{
	unsigned i = 0;
	while (i + 1 < sizeof dtypes / sizeof *dtypes && dtypes[i].dtype != dt)
		i++;
	return i;
}

static const char *dtype_npy(uint32_t dt) { return dtypes[dtype_at(dt)].npy; }
static size_t dtype_size(uint32_t dt) { return dtypes[dtype_at(dt)].size; }
const char *swarm_npy_dtype_name(uint32_t dt)
{
	return dtypes[dtype_at(dt)].dtype == dt ? dtypes[dtype_at(dt)].word : "?";
}

/* The preamble and the header's text of the .npy open at f, into *hdr (the caller frees it):
 * 0, or -1 with why. */
static int read_header(FILE *f, const char *path, char **hdr, char *why, size_t len)
{
	unsigned char pre[10];
	if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
		snprintf(why, len, "%s: not a .npy file", path);
		return -1;
	}
	uint32_t hlen;
	if (pre[6] == 1) {
		if (fread(pre + 8, 1, 2, f) != 2)
			goto short_;
		hlen = pre[8] | (uint32_t)pre[9] << 8;
	} else if (pre[6] == 2 || pre[6] == 3) {
		unsigned char l[4];
		if (fread(l, 1, 4, f) != 4)
			goto short_;
		hlen = l[0] | (uint32_t)l[1] << 8 | (uint32_t)l[2] << 16 | (uint32_t)l[3] << 24;
	} else {
		snprintf(why, len, "%s: .npy version %u", path, pre[6]);
		return -1;
	}
	if (hlen > 1 << 20 || !(*hdr = calloc(1, hlen + 1)) || fread(*hdr, 1, hlen, f) != hlen)
		goto short_;
	return 0;
short_:
	snprintf(why, len, "%s: truncated .npy file", path);
	return -1;
}

/* The shape of the header's "(1, 3, 48, 192)" at p into n, its element count into *count: 0,
 * or -1 with why. */
static int parse_shape(const char *p, const char *path, struct swarm_npy *n, size_t *count,
		       char *why, size_t len)
{
	*count = 1;
	while (p && *++p && *p != ')') {
		if (*p == ' ' || *p == ',')
			continue;
		char *e;
		long long v = strtoll(p, &e, 10);
		if (e == p || v < 0 || n->ndim == SWARM_MAX_DIMS + 1) {
			snprintf(why, len, "%s: a shape swarm cannot take", path);
			return -1;
		}
		n->shape[n->ndim++] = v;
		if (__builtin_mul_overflow(*count, (size_t)v, count) ||
		    *count > ((size_t)1 << 40)) {
			snprintf(why, len, "%s: a shape too large", path);
			return -1;
		}
		p = e - 1;
	}
	return 0;
}

/* The dtype and shape the header's dict gives, into n, the element count into *count: 0, or -1
 * with why. */
static int parse_header(const char *hdr, const char *path, struct swarm_npy *n, size_t *count,
			char *why, size_t len)
{
	/* {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 48, 192), } */
	const char *d = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'"),
		   *sh = strstr(hdr, "'shape'");
	if (!d || !fo || !sh) {
		snprintf(why, len, "%s: a .npy header without descr, fortran_order or shape", path);
		return -1;
	}
	const char *fv = strchr(fo + 15, ':');
	while (fv && (*++fv == ' '))
		;
	if (fv && strncmp(fv, "True", 4) == 0) {
		snprintf(why, len, "%s: Fortran order (save it with np.ascontiguousarray)", path);
		return -1;
	}
	const char *q = strchr(d + 7, '\'');
	for (unsigned i = 0; q && i < sizeof dtypes / sizeof *dtypes; i++) {
		const char *w = dtypes[i].npy;
		if (w && strncmp(q + 1, w, strlen(w)) == 0 && q[1 + strlen(w)] == '\'')
			n->dtype = dtypes[i].dtype;
	}
	if (!n->dtype) {
		snprintf(why, len, "%s: dtype %.8s (swarm takes float32, float16, int64, int32)",
			 path, q ? q + 1 : "?");
		return -1;
	}
	return parse_shape(strchr(sh, '('), path, n, count, why, len);
}

/* Reads a .npy (versions 1 to 3, C order, little-endian). Returns 0, or -1 with why. */
int swarm_npy_read(const char *path, struct swarm_npy *n, char *why, size_t len)
{
	memset(n, 0, sizeof *n);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	char *hdr = NULL;
	size_t count;
	int rc = -1;
	if (read_header(f, path, &hdr, why, len) || parse_header(hdr, path, n, &count, why, len))
		goto out;
	n->bytes = count * dtype_size(n->dtype);
	if (!(n->data = malloc(n->bytes ? n->bytes : 1)) ||
	    fread(n->data, 1, n->bytes, f) != n->bytes) {
		snprintf(why, len, "%s: truncated .npy file", path);
		goto out;
	}
	rc = 0;
out:
	free(hdr);
	fclose(f);
	return rc;
}

int swarm_npy_write(const char *path, uint32_t dtype, uint32_t ndim, const int64_t *shape,
		    const void *data, size_t bytes)
{
	if (!dtype_npy(dtype))
		return -ENOTSUP; /* numpy has no bfloat16 */
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
			 dtype_npy(dtype));
	for (uint32_t i = 0; i < ndim; i++)
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%" PRId64 "%s", shape[i],
			      ndim == 1    ? "," :
			      i + 1 < ndim ? ", " :
					     "");
	n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
	/* the header is padded with spaces to 64 bytes with the preamble, ending in \n */
	int total = (10 + n + 1 + 63) / 64 * 64;
	while (10 + n + 1 < total)
		hdr[n++] = ' ';
	hdr[n++] = '\n';
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	unsigned char pre[10] = { 0x93,
				  'N',
				  'U',
				  'M',
				  'P',
				  'Y',
				  1,
				  0,
				  (unsigned char)(n & 0xff),
				  (unsigned char)(n >> 8) };
	int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)n, f) == (size_t)n &&
		 fwrite(data, 1, bytes, f) == bytes;
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -EIO;
}
