/* safetensors.c: parse safetensors files without trusting them, and write small ones.
 *
 * The parser reads only the len bytes it is given. It first makes sure the file is a
 * safetensors file at all (the spec says the header begins with '{'): an ONNX model, a zip
 * (PyTorch's checkpoints), a pickle or a text file passed as weights is named as what it
 * looks like, not reported as an absurd header length. Then the 8-byte header length, the JSON
 * header through jansson's json_loadb (bounded by length, duplicates refused), then it checks
 * every tensor's entry and the layout of the data as a whole (sorted, contiguous, covering the
 * data exactly, each tensor aligned to its dtype size). Every refusal writes one message that
 * names the tensor and the problem, because the person reading it has a multi-gigabyte file and
 * needs to know where to look. The writer builds the header with jansson too and refuses what
 * the parser would refuse, so a file it writes always parses.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "registry/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "swarm/swarm.h"

#define ST_METADATA_KEY "__metadata__"

struct st_dtype_info {
	const char *name;
	uint32_t size;
};

/* Indexed by enum swarm_st_dtype; entry 0 is unused. */
static const struct st_dtype_info st_dtypes[] = {
	[SWARM_ST_BOOL] = { "BOOL", 1 },       [SWARM_ST_U8] = { "U8", 1 },
	[SWARM_ST_I8] = { "I8", 1 },           [SWARM_ST_I16] = { "I16", 2 },
	[SWARM_ST_U16] = { "U16", 2 },         [SWARM_ST_F16] = { "F16", 2 },
	[SWARM_ST_BF16] = { "BF16", 2 },       [SWARM_ST_I32] = { "I32", 4 },
	[SWARM_ST_U32] = { "U32", 4 },         [SWARM_ST_F32] = { "F32", 4 },
	[SWARM_ST_F64] = { "F64", 8 },         [SWARM_ST_I64] = { "I64", 8 },
	[SWARM_ST_U64] = { "U64", 8 },         [SWARM_ST_F8_E4M3] = { "F8_E4M3", 1 },
	[SWARM_ST_F8_E5M2] = { "F8_E5M2", 1 },
};

#define ST_N_DTYPES (sizeof(st_dtypes) / sizeof(st_dtypes[0]))

const char *swarm_st_dtype_name(uint32_t dtype)
{
	return dtype > 0 && dtype < ST_N_DTYPES ? st_dtypes[dtype].name : NULL;
}

uint32_t swarm_st_dtype_size(uint32_t dtype)
{
	return dtype > 0 && dtype < ST_N_DTYPES ? st_dtypes[dtype].size : 0;
}

static uint32_t st_dtype_from_name(const char *name)
{
	for (uint32_t i = 1; i < ST_N_DTYPES; i++)
		if (strcmp(st_dtypes[i].name, name) == 0)
			return i;
	return 0;
}

uint32_t swarm_st_to_swarm_dtype(uint32_t st_dtype)
{
	switch (st_dtype) {
	case SWARM_ST_F32:
		return SWARM_DTYPE_F32;
	case SWARM_ST_F16:
		return SWARM_DTYPE_F16;
	case SWARM_ST_BF16:
		return SWARM_DTYPE_BF16;
	case SWARM_ST_I32:
		return SWARM_DTYPE_I32;
	case SWARM_ST_I64:
		return SWARM_DTYPE_I64;
	case SWARM_ST_U8:
		return SWARM_DTYPE_U8;
	default:
		return 0;
	}
}

__attribute__((format(printf, 3, 4))) static int st_fail(char *err, size_t err_len, const char *fmt,
							 ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* "[2, 3]" into buf, for messages. */
static void st_format_shape(const int64_t *shape, uint32_t ndim, char *buf, size_t len)
{
	size_t at = 0;
	int n = snprintf(buf, len, "[");
	for (uint32_t i = 0; i < ndim && n >= 0 && (size_t)n < len - at; i++) {
		at += (size_t)n;
		n = snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
	}
	if (n >= 0 && (size_t)n < len - at) {
		at += (size_t)n;
		snprintf(buf + at, len - at, "]");
	}
}

/* Element count times dtype size, or -1 (in *out untouched) on 64-bit overflow. */
static int st_nbytes(const int64_t *shape, uint32_t ndim, uint32_t size, uint64_t *out)
{
	uint64_t n = size;
	for (uint32_t i = 0; i < ndim; i++)
		if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n))
			return -1;
	*out = n;
	return 0;
}

/* A tensor during parsing: the public entry plus its relative range. */
struct st_entry {
	struct swarm_st_tensor t;
	uint64_t begin, end;
};

static int st_parse_u64(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* An entry's dtype and shape into e. */
static int st_parse_dtype_shape(const char *name, json_t *v, struct st_entry *e, char *err,
				size_t err_len)
{
	json_t *dt = json_object_get(v, "dtype");
	if (!dt)
		return st_fail(err, err_len, "tensor \"%s\": missing dtype", name);
	if (!json_is_string(dt))
		return st_fail(err, err_len, "tensor \"%s\": dtype is not a string", name);
	e->t.dtype = st_dtype_from_name(json_string_value(dt));
	if (!e->t.dtype)
		return st_fail(err, err_len, "tensor \"%s\": unknown dtype \"%.32s\"", name,
			       json_string_value(dt));

	json_t *sh = json_object_get(v, "shape");
	if (!sh)
		return st_fail(err, err_len, "tensor \"%s\": missing shape", name);
	if (!json_is_array(sh))
		return st_fail(err, err_len, "tensor \"%s\": shape is not an array", name);
	if (json_array_size(sh) > SWARM_ST_MAX_DIMS)
		return st_fail(err, err_len, "tensor \"%s\": shape has %zu dimensions, at most %d",
			       name, json_array_size(sh), SWARM_ST_MAX_DIMS);
	e->t.ndim = (uint32_t)json_array_size(sh);
	for (uint32_t i = 0; i < e->t.ndim; i++) {
		json_t *d = json_array_get(sh, i);
		if (!json_is_integer(d) || json_integer_value(d) < 0)
			return st_fail(err, err_len,
				       "tensor \"%s\": shape dimension %u is not a non-negative "
				       "integer",
				       name, i);
		e->t.shape[i] = (int64_t)json_integer_value(d);
	}
	return 0;
}

/* An entry's data_offsets into e, checked to hold exactly its dtype and shape's bytes. */
static int st_parse_offsets(const char *name, json_t *v, struct st_entry *e, char *err,
			    size_t err_len)
{
	const char *dname = swarm_st_dtype_name(e->t.dtype);
	uint32_t dsize = swarm_st_dtype_size(e->t.dtype);
	json_t *off = json_object_get(v, "data_offsets");
	if (!off)
		return st_fail(err, err_len, "tensor \"%s\": missing data_offsets", name);
	if (!json_is_array(off) || json_array_size(off) != 2)
		return st_fail(err, err_len, "tensor \"%s\": data_offsets is not an array of 2",
			       name);
	if (st_parse_u64(json_array_get(off, 0), &e->begin) ||
	    st_parse_u64(json_array_get(off, 1), &e->end))
		return st_fail(err, err_len,
			       "tensor \"%s\": data_offsets are not non-negative integers", name);
	if (e->begin > e->end)
		return st_fail(err, err_len,
			       "tensor \"%s\": data_offsets [%llu, %llu] begin after they end",
			       name, (unsigned long long)e->begin, (unsigned long long)e->end);

	char shape_s[SWARM_ST_MAX_DIMS * 22 + 4];
	st_format_shape(e->t.shape, e->t.ndim, shape_s, sizeof(shape_s));
	uint64_t need;
	if (st_nbytes(e->t.shape, e->t.ndim, dsize, &need))
		return st_fail(err, err_len, "tensor \"%s\": %s %s overflows 64-bit byte count",
			       name, dname, shape_s);
	if (need != e->end - e->begin)
		return st_fail(err, err_len,
			       "tensor \"%s\": data_offsets [%llu, %llu] hold %llu bytes but %s %s "
			       "needs %llu",
			       name, (unsigned long long)e->begin, (unsigned long long)e->end,
			       (unsigned long long)(e->end - e->begin), dname, shape_s,
			       (unsigned long long)need);
	e->t.nbytes = need;
	return 0;
}

/* Checks one tensor's entry on its own and fills e (not yet its absolute offset). */
static int st_parse_entry(const char *name, json_t *v, struct st_entry *e, char *err,
			  size_t err_len)
{
	size_t name_len = strlen(name);
	if (name_len == 0)
		return st_fail(err, err_len, "tensor \"\": empty tensor name");
	if (name_len >= SWARM_ST_NAME_MAX)
		return st_fail(err, err_len,
			       "tensor \"%.32s...\": name is %zu bytes, longer than %d", name,
			       name_len, SWARM_ST_NAME_MAX - 1);
	memcpy(e->t.name, name, name_len + 1);

	if (!json_is_object(v))
		return st_fail(err, err_len, "tensor \"%s\": entry is not an object", name);
	const char *key;
	json_t *kv;
	json_object_foreach(v, key, kv)
	{
		if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
		    strcmp(key, "data_offsets") != 0)
			return st_fail(
				err, err_len,
				"tensor \"%s\": unknown key \"%.64s\" (expected dtype, shape, "
				"data_offsets)",
				name, key);
	}
	int rc = st_parse_dtype_shape(name, v, e, err, err_len);
	return rc ? rc : st_parse_offsets(name, v, e, err, err_len);
}

static int st_metadata_check(json_t *md, char *err, size_t err_len)
{
	if (!json_is_object(md))
		return st_fail(err, err_len, "\"" ST_METADATA_KEY "\" is not an object");
	const char *key;
	json_t *v;
	json_object_foreach(md, key, v)
	{
		if (!json_is_string(v))
			return st_fail(err, err_len,
				       "\"" ST_METADATA_KEY
				       "\": value of \"%.64s\" is not a string",
				       key);
	}
	return 0;
}

/* By begin, then end (a zero-size tensor sits before the one starting where it is), then name
 * so that the order does not depend on the header's. */
static int st_entry_cmp(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->t.name, y->t.name);
}

/* Checks the sorted ranges tile [0, data_len) exactly and each is aligned. */
static int st_check_layout(const struct st_entry *e, uint32_t n, uint64_t data_offset,
			   uint64_t data_len, char *err, size_t err_len)
{
	if (n == 0) {
		if (data_len != 0)
			return st_fail(err, err_len,
				       "no tensors, but %llu data bytes follow the header",
				       (unsigned long long)data_len);
		return 0;
	}
	if (e[0].begin != 0)
		return st_fail(err, err_len,
			       "tensor \"%s\": first tensor begins at %llu, not 0 (%llu data bytes "
			       "belong to no tensor)",
			       e[0].t.name, (unsigned long long)e[0].begin,
			       (unsigned long long)e[0].begin);
	for (uint32_t i = 1; i < n; i++) {
		const struct st_entry *p = &e[i - 1], *c = &e[i];
		if (c->begin > p->end)
			return st_fail(
				err, err_len,
				"tensors \"%s\" and \"%s\": gap of %llu bytes (\"%s\" ends at "
				"%llu, \"%s\" begins at %llu)",
				p->t.name, c->t.name, (unsigned long long)(c->begin - p->end),
				p->t.name, (unsigned long long)p->end, c->t.name,
				(unsigned long long)c->begin);
		if (c->begin < p->end)
			return st_fail(
				err, err_len,
				"tensors \"%s\" and \"%s\": overlap of %llu bytes (\"%s\" ends "
				"at %llu, \"%s\" begins at %llu)",
				p->t.name, c->t.name, (unsigned long long)(p->end - c->begin),
				p->t.name, (unsigned long long)p->end, c->t.name,
				(unsigned long long)c->begin);
	}
	const struct st_entry *last = &e[n - 1];
	if (last->end > data_len)
		return st_fail(err, err_len,
			       "tensor \"%s\": ends at %llu but the data holds %llu bytes (file "
			       "short by %llu bytes)",
			       last->t.name, (unsigned long long)last->end,
			       (unsigned long long)data_len,
			       (unsigned long long)(last->end - data_len));
	if (last->end < data_len)
		return st_fail(
			err, err_len,
			"tensor \"%s\": last tensor ends at %llu but the data holds %llu bytes "
			"(%llu trailing bytes belong to no tensor)",
			last->t.name, (unsigned long long)last->end, (unsigned long long)data_len,
			(unsigned long long)(data_len - last->end));
	/* Every range is now inside the data, so data_offset + begin cannot overflow. */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t abs = data_offset + e[i].begin;
		uint32_t size = swarm_st_dtype_size(e[i].t.dtype);
		if (abs % size != 0)
			return st_fail(err, err_len,
				       "tensor \"%s\": file offset %llu is not aligned to %s's %u "
				       "bytes",
				       e[i].t.name, (unsigned long long)abs,
				       swarm_st_dtype_name(e[i].t.dtype), size);
	}
	return 0;
}

/* What the start of a file that is not safetensors looks like, or NULL when it looks like
 * nothing known. Only magic numbers and the shape of the first bytes: a hint, not a parse. */
static const char *st_looks_like(const uint8_t *p, size_t len)
{
	static const struct {
		const char *magic;
		size_t n;
		const char *what;
	} known[] = {
		{ "PK\x03\x04", 4, "a zip archive (a PyTorch .pt/.pth checkpoint is one)" },
		{ "\x93NUMPY", 6, "a NumPy .npy array" },
		{ "GGUF", 4, "a GGUF model" },
		{ "\x89HDF\r\n\x1a\n", 8, "an HDF5 file (a Keras .h5 model)" },
		{ "\x1f\x8b", 2, "a gzip archive" },
		{ "\177ELF", 4, "an ELF binary" },
	};
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (len >= known[i].n && memcmp(p, known[i].magic, known[i].n) == 0)
			return known[i].what;
	if (len >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5)
		return "a Python pickle (a PyTorch checkpoint saved without zip)";
	/* ONNX's ModelProto opens with ir_version (field 1, a small varint), then another
	 * field: producer_name (2), producer_version (3), domain (4), opset_import (8) or
	 * graph (7), each length-delimited. */
	if (len >= 3 && p[0] == 0x08 && p[1] < 0x80 &&
	    (p[2] == 0x12 || p[2] == 0x1a || p[2] == 0x22 || p[2] == 0x3a || p[2] == 0x42))
		return "an ONNX model (`swarm import onnx` turns one into a manifest and "
		       "safetensors weights)";
	size_t n = len < 64 ? len : 64, text = 0;
	for (size_t i = 0; i < n; i++)
		text += (p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\r' ||
			p[i] == '\t' || p[i] >= 0x80;
	return n && text == n ? "a text file" : NULL;
}

/* Refuses a file that cannot be safetensors, before anything is said about its header
 * length: too short for one, a header that does not begin with '{' (the spec's rule), or a
 * known other format whose first bytes would be an impossible length. */
static int st_check_kind(const uint8_t *p, size_t len, char *err, size_t err_len)
{
	const char *like = st_looks_like(p, len);
	if (len < 8)
		return st_fail(err, err_len,
			       "not a safetensors file: it is %zu bytes, shorter than the 8-byte "
			       "header length%s%s",
			       len, like ? "; it looks like " : "", like ? like : "");
	/* a length above 4 GiB is past the limit: with a known look, it is not a length */
	int huge = p[4] | p[5] | p[6] | p[7];
	if ((len == 8 || p[8] == '{') && !(like && huge))
		return 0;
	if (like)
		return st_fail(err, err_len, "not a safetensors file: it looks like %s", like);
	return st_fail(err, err_len,
		       "not a safetensors file: its header does not begin with '{' (first bytes "
		       "%02x %02x %02x %02x %02x %02x %02x %02x %02x)",
		       p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
}

/* The little-endian u64 header length at the start of the file, checked against the limit
 * and the file's size. */
static int st_header_len(const uint8_t *p, size_t len, uint64_t *out, char *err, size_t err_len)
{
	if (len < 8)
		return st_fail(err, err_len,
			       "file is %zu bytes, shorter than the 8-byte header length", len);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | p[i];
	if (hlen == 0)
		return st_fail(err, err_len, "header length is 0");
	if (hlen > SWARM_ST_MAX_HEADER)
		return st_fail(err, err_len, "header length %llu exceeds the limit of %u bytes",
			       (unsigned long long)hlen, SWARM_ST_MAX_HEADER);
	if (hlen > len - 8)
		return st_fail(err, err_len,
			       "header length %llu exceeds the %zu bytes after the length field",
			       (unsigned long long)hlen, len - 8);
	*out = hlen;
	return 0;
}

/* The header object's entries, each checked on its own, into *ents (calloc'd, n of them; the
 * caller frees it even on failure), and its __metadata__ checked. */
static int st_parse_entries(json_t *root, struct st_entry **ents, size_t *n_out, char *err,
			    size_t err_len)
{
	*ents = NULL;
	if (!json_is_object(root))
		return st_fail(err, err_len, "header is not a JSON object");
	size_t n = json_object_size(root);
	json_t *md = json_object_get(root, ST_METADATA_KEY);
	if (md) {
		int rc = st_metadata_check(md, err, err_len);
		if (rc)
			return rc;
		n--;
	}
	if (n > SWARM_ST_MAX_TENSORS)
		return st_fail(err, err_len, "header lists %zu tensors, at most %d", n,
			       SWARM_ST_MAX_TENSORS);
	*ents = calloc(n ? n : 1, sizeof(**ents));
	if (!*ents)
		return -ENOMEM;
	uint32_t i = 0;
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, ST_METADATA_KEY) == 0)
			continue;
		int rc = st_parse_entry(key, v, &(*ents)[i], err, err_len);
		if (rc)
			return rc;
		i++;
	}
	*n_out = n;
	return 0;
}

int swarm_st_parse(const void *buf, size_t len, struct swarm_st_file *out, char *err,
		   size_t err_len)
{
	const uint8_t *p = buf;
	memset(out, 0, sizeof(*out));
	if (err && err_len)
		err[0] = '\0';

	uint64_t hlen = 0;
	int rc = st_check_kind(p, len, err, err_len);
	if (rc)
		return rc;
	rc = st_header_len(p, len, &hlen, err, err_len);
	if (rc)
		return rc;
	json_error_t jerr;
	json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return st_fail(err, err_len, "header is not valid JSON: %s (line %d, column %d)",
			       jerr.text, jerr.line, jerr.column);

	struct st_entry *ents = NULL;
	size_t n = 0;
	if ((rc = st_parse_entries(root, &ents, &n, err, err_len)))
		goto out;
	qsort(ents, n, sizeof(*ents), st_entry_cmp);
	uint64_t data_offset = 8 + hlen;
	rc = st_check_layout(ents, (uint32_t)n, data_offset, len - data_offset, err, err_len);
	if (rc)
		goto out;

	out->tensors = calloc(n ? n : 1, sizeof(*out->tensors));
	if (!out->tensors) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		out->tensors[i] = ents[i].t;
		out->tensors[i].offset = data_offset + ents[i].begin;
	}
	out->file_bytes = len;
	out->data_offset = data_offset;
	out->n_tensors = (uint32_t)n;
	rc = 0;
out:
	free(ents);
	json_decref(root);
	return rc;
}

void swarm_st_free(struct swarm_st_file *f)
{
	if (!f)
		return;
	free(f->tensors);
	memset(f, 0, sizeof(*f));
}

/* Linear: a lookup costs n string compares, which is fine for the few lookups per tensor a
 * loader makes; a loader binding every tensor by name should walk f->tensors instead. */
const struct swarm_st_tensor *swarm_st_find(const struct swarm_st_file *f, const char *name)
{
	for (uint32_t i = 0; i < f->n_tensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

static int st_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Builds the header JSON (not yet padded); -EINVAL for anything the parser would refuse,
 * including a tensor that would start misaligned for its dtype. */
static int st_build_header(const struct swarm_st_write_tensor *t, uint32_t n, char **out)
{
	json_t *root = json_object();
	if (!root)
		return -ENOMEM;
	int rc = -EINVAL;
	uint64_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t size = swarm_st_dtype_size(t[i].dtype);
		size_t name_len = t[i].name ? strlen(t[i].name) : 0;
		if (!size || name_len == 0 || name_len >= SWARM_ST_NAME_MAX ||
		    strcmp(t[i].name, ST_METADATA_KEY) == 0 || t[i].ndim > SWARM_ST_MAX_DIMS ||
		    (t[i].ndim && !t[i].shape) || json_object_get(root, t[i].name))
			goto out;
		uint64_t nbytes;
		for (uint32_t d = 0; d < t[i].ndim; d++)
			if (t[i].shape[d] < 0)
				goto out;
		if (st_nbytes(t[i].shape, t[i].ndim, size, &nbytes) || (nbytes && !t[i].data) ||
		    nbytes > INT64_MAX - at)
			goto out;
		/* The header pads 8 + N to a multiple of 8 and no dtype is wider than 8, so the
		 * relative offset alone decides alignment. */
		if (at % size != 0)
			goto out;
		json_t *shape = json_array();
		json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype",
				      swarm_st_dtype_name(t[i].dtype), "shape", shape,
				      "data_offsets", (json_int_t)at, (json_int_t)(at + nbytes));
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		for (uint32_t d = 0; d < t[i].ndim; d++)
			json_array_append_new(shape, json_integer(t[i].shape[d]));
		if (json_object_set_new(root, t[i].name, e)) {
			rc = -ENOMEM;
			goto out;
		}
		at += nbytes;
	}
	*out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	rc = *out ? 0 : -ENOMEM;
out:
	json_decref(root);
	return rc;
}

/* The file's first bytes: the header length (8 bytes, little-endian) and the header JSON
 * padded with spaces so that the data starts at a multiple of 8. *out is malloc'd. */
static int st_header_bytes(const struct swarm_st_write_tensor *t, uint32_t n, char **out,
			   size_t *out_len)
{
	char *json = NULL;
	int rc = st_build_header(t, n, &json);
	if (rc)
		return rc;
	size_t jlen = strlen(json);
	size_t hlen = (jlen + 7) & ~(size_t)7; /* 8 + hlen stays a multiple of 8 */
	char *hdr = malloc(8 + hlen);
	if (!hdr) {
		free(json);
		return -ENOMEM;
	}
	for (int i = 0; i < 8; i++)
		hdr[i] = (char)(uint8_t)((uint64_t)hlen >> (8 * i));
	memcpy(hdr + 8, json, jlen);
	memset(hdr + 8 + jlen, ' ', hlen - jlen);
	free(json);
	*out = hdr;
	*out_len = 8 + hlen;
	return 0;
}

/* fsyncs the directory that holds path, so that a rename into it is durable (best effort). */
static void st_fsync_parent(const char *path)
{
	char *dcopy = strdup(path);
	if (dcopy) {
		int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dcopy);
	}
}

/* Tensors are laid out in the order given with no padding between them (the parser refuses
 * gaps), so each must start at a multiple of its dtype size: give them in an order whose byte
 * sizes keep that (all multiples of 8 is simplest, or widest dtypes first). -EINVAL when one
 * would start misaligned, for a bad name, dtype or shape, or for duplicate names. The file is
 * written to a temporary beside path, fsynced, then renamed over path, so a reader sees either
 * the old file or the whole new one. Not thread-safe against writers of the same path. */
int swarm_st_write(const char *path, const struct swarm_st_write_tensor *t, uint32_t n)
{
	if (!path || (n && !t) || n > SWARM_ST_MAX_TENSORS)
		return -EINVAL;
	char *hdr = NULL;
	size_t hdr_len = 0;
	int rc = st_header_bytes(t, n, &hdr, &hdr_len);
	if (rc)
		return rc;

	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		rc = -ENOMEM;
		goto err_hdr;
	}
	int fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		goto err_tmp;
	}
	if (fchmod(fd, 0644) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	rc = st_write_all(fd, hdr, hdr_len);
	for (uint32_t i = 0; i < n && !rc; i++) {
		uint64_t nbytes = 0;
		st_nbytes(t[i].shape, t[i].ndim, swarm_st_dtype_size(t[i].dtype), &nbytes);
		rc = st_write_all(fd, t[i].data, (size_t)nbytes);
	}
	if (rc)
		goto err_unlink;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	st_fsync_parent(path); /* make the rename itself durable */
	free(tmp);
	free(hdr);
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
err_tmp:
	free(tmp);
err_hdr:
	free(hdr);
	return rc;
}
