/* test_safetensors.c: the safetensors parser refuses every malformed layout with a message
 * naming the tensor and the problem, never reads outside its buffer, and reads back what
 * swarm_st_write writes. Buffers are malloc'd to exactly their length so that an ASan build
 * catches any overread. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/safetensors.h"
#include "swarm/swarm.h"

/* A file of header hdr (padded with spaces so that 8 + N is a multiple of 8 when pad) followed
 * by data_len bytes of data (byte i is i & 0xff), malloc'd to exactly *len bytes. */
static uint8_t *build(const char *hdr, size_t data_len, int pad, size_t *len)
{
	size_t hl = strlen(hdr);
	size_t n = pad ? (hl + 7) & ~(size_t)7 : hl;
	*len = 8 + n + data_len;
	uint8_t *b = malloc(*len ? *len : 1);
	cr_assert_not_null(b);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)n >> (8 * i));
	memcpy(b + 8, hdr, hl);
	memset(b + 8 + hl, ' ', n - hl);
	for (size_t i = 0; i < data_len; i++)
		b[8 + n + i] = (uint8_t)i;
	return b;
}

/* Parses hdr + data_len bytes and expects -EINVAL with a message holding want1 and want2. */
static void expect_refused(const char *hdr, size_t data_len, int pad, const char *want1,
			   const char *want2)
{
	size_t len;
	uint8_t *b = build(hdr, data_len, pad, &len);
	struct swarm_st_file f;
	char err[512] = "";
	int rc = swarm_st_parse(b, len, &f, err, sizeof(err));
	cr_assert_eq(rc, -EINVAL, "rc %d for header %s (err \"%s\")", rc, hdr, err);
	cr_assert_not_null(strstr(err, want1), "error \"%s\" lacks \"%s\"", err, want1);
	if (want2)
		cr_assert_not_null(strstr(err, want2), "error \"%s\" lacks \"%s\"", err, want2);
	free(b);
}

static void parse_ok(const uint8_t *b, size_t len, struct swarm_st_file *f)
{
	char err[512] = "";
	int rc = swarm_st_parse(b, len, f, err, sizeof(err));
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
}

/* Reads a whole file into an exactly sized buffer. */
static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	uint8_t *b = malloc(*len ? *len : 1);
	cr_assert_eq(read(fd, b, *len), (ssize_t)*len);
	close(fd);
	return b;
}

static void tmp_path(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/tmp/swarm_st_test_%d_%s.safetensors", (int)getpid(), tag);
}

/* ---- round trips ------------------------------------------------------------------------- */

Test(registry_safetensors, write_then_parse_round_trips_dtypes_and_shapes)
{
	double f64[3] = { 1.5, -2.0, 3.25 };
	float f32[2][4] = { { 1, 2, 3, 4 }, { 5, 6, 7, 8 } };
	int64_t i64[1] = { -7 };
	uint16_t bf16[2][2][2] = { { { 1, 2 }, { 3, 4 } }, { { 5, 6 }, { 7, 8 } } };
	float scalar = 42.0f;
	int32_t i32[2] = { 9, -9 };
	uint8_t u8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	int64_t s_f64[] = { 3 }, s_f32[] = { 2, 4 }, s_i64[] = { 1 }, s_bf16[] = { 2, 2, 2 },
		s_i32[] = { 2 }, s_empty[] = { 0 }, s_u8[] = { 8 };
	/* Widest first keeps every tensor aligned. */
	struct swarm_st_write_tensor t[] = {
		{ "f64", SWARM_ST_F64, 1, s_f64, f64 },
		{ "f32", SWARM_ST_F32, 2, s_f32, f32 },
		{ "i64", SWARM_ST_I64, 1, s_i64, i64 },
		{ "bf16", SWARM_ST_BF16, 3, s_bf16, bf16 },
		{ "scalar", SWARM_ST_F32, 0, NULL, &scalar },
		{ "i32", SWARM_ST_I32, 1, s_i32, i32 },
		{ "empty", SWARM_ST_F16, 1, s_empty, NULL },
		{ "u8", SWARM_ST_U8, 1, s_u8, u8 },
	};
	uint32_t n = sizeof(t) / sizeof(t[0]);
	char path[256];
	tmp_path(path, sizeof(path), "rt");
	int rc = swarm_st_write(path, t, n);
	cr_assert_eq(rc, 0, "write rc %d", rc);
	size_t len;
	uint8_t *b = slurp(path, &len);
	unlink(path);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	cr_assert_eq(f.n_tensors, n, "n_tensors %u", f.n_tensors);
	cr_assert_eq(f.file_bytes, len);
	cr_assert_eq(f.data_offset % 8, 0, "data_offset %llu", (unsigned long long)f.data_offset);
	for (uint32_t i = 0; i < n; i++) {
		const struct swarm_st_tensor *x = swarm_st_find(&f, t[i].name);
		cr_assert_not_null(x, "tensor %s missing", t[i].name);
		cr_assert_eq(x->dtype, t[i].dtype, "%s dtype %u", t[i].name, x->dtype);
		cr_assert_eq(x->ndim, t[i].ndim, "%s ndim %u", t[i].name, x->ndim);
		uint64_t want = swarm_st_dtype_size(t[i].dtype);
		for (uint32_t d = 0; d < t[i].ndim; d++) {
			cr_assert_eq(x->shape[d], t[i].shape[d], "%s dim %u", t[i].name, d);
			want *= (uint64_t)t[i].shape[d];
		}
		cr_assert_eq(x->nbytes, want, "%s nbytes %llu want %llu", t[i].name,
			     (unsigned long long)x->nbytes, (unsigned long long)want);
		cr_assert_eq(x->offset % swarm_st_dtype_size(x->dtype), 0, "%s offset %llu",
			     t[i].name, (unsigned long long)x->offset);
		if (want)
			cr_assert_eq(memcmp(b + x->offset, t[i].data, want), 0, "%s data differs",
				     t[i].name);
	}
	for (uint32_t i = 1; i < f.n_tensors; i++)
		cr_assert_eq(f.tensors[i].offset, f.tensors[i - 1].offset + f.tensors[i - 1].nbytes,
			     "tensor %u not contiguous", i);
	const struct swarm_st_tensor *s = swarm_st_find(&f, "scalar");
	float got;
	memcpy(&got, b + s->offset, 4);
	cr_assert_eq(got, 42.0f, "scalar %f", got);
	swarm_st_free(&f);
	free(b);
}

Test(registry_safetensors, write_with_no_tensors_gives_empty_object)
{
	char path[256];
	tmp_path(path, sizeof(path), "empty");
	cr_assert_eq(swarm_st_write(path, NULL, 0), 0);
	size_t len;
	uint8_t *b = slurp(path, &len);
	unlink(path);
	cr_assert_eq(len, 16, "len %zu", len);
	cr_assert_eq(memcmp(b + 8, "{}      ", 8), 0);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	cr_assert_eq(f.n_tensors, 0);
	cr_assert_null(swarm_st_find(&f, "x"));
	swarm_st_free(&f);
	free(b);
}

Test(registry_safetensors, write_refuses_misaligned_tensor)
{
	uint8_t u8[3] = { 0 };
	float f32[1] = { 0 };
	int64_t s3[] = { 3 }, s1[] = { 1 };
	struct swarm_st_write_tensor t[] = {
		{ "a", SWARM_ST_U8, 1, s3, u8 },
		{ "b", SWARM_ST_F32, 1, s1, f32 },
	};
	char path[256];
	tmp_path(path, sizeof(path), "misal");
	int rc = swarm_st_write(path, t, 2);
	cr_assert_eq(rc, -EINVAL, "rc %d", rc);
	cr_assert_neq(access(path, F_OK), 0, "file written despite refusal");
}

Test(registry_safetensors, write_refuses_duplicate_and_bad_names)
{
	float x[2] = { 0 };
	int64_t s[] = { 2 };
	struct swarm_st_write_tensor dup[] = {
		{ "a", SWARM_ST_F32, 1, s, x },
		{ "a", SWARM_ST_F32, 1, s, x },
	};
	struct swarm_st_write_tensor meta[] = { { "__metadata__", SWARM_ST_F32, 1, s, x } };
	struct swarm_st_write_tensor empty[] = { { "", SWARM_ST_F32, 1, s, x } };
	struct swarm_st_write_tensor baddt[] = { { "a", 99, 1, s, x } };
	char path[256];
	tmp_path(path, sizeof(path), "dup");
	cr_assert_eq(swarm_st_write(path, dup, 2), -EINVAL);
	cr_assert_eq(swarm_st_write(path, meta, 1), -EINVAL);
	cr_assert_eq(swarm_st_write(path, empty, 1), -EINVAL);
	cr_assert_eq(swarm_st_write(path, baddt, 1), -EINVAL);
	cr_assert_neq(access(path, F_OK), 0);
}

Test(registry_safetensors, write_to_missing_directory_returns_enoent)
{
	int rc = swarm_st_write("/nonexistent-swarm-dir/x.safetensors", NULL, 0);
	cr_assert_eq(rc, -ENOENT, "rc %d", rc);
}

/* Bytes as Hugging Face's writer lays them out: sorted keys, __metadata__ first, header padded
 * with spaces, F32 bias then F16 weight. */
Test(registry_safetensors, parses_hand_built_reference_style_file)
{
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
			  "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			  "\"weight\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
	size_t len;
	uint8_t *b = build(hdr, 16, 1, &len);
	float bias[2] = { 0.5f, -1.0f };
	uint16_t w[4] = { 0x3c00, 0x4000, 0x4200, 0x4400 }; /* 1 2 3 4 in F16 */
	size_t data = len - 16;
	memcpy(b + data, bias, 8);
	memcpy(b + data + 8, w, 8);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	cr_assert_eq(f.n_tensors, 2);
	cr_assert_eq(f.data_offset, data, "data_offset %llu", (unsigned long long)f.data_offset);
	cr_assert_str_eq(f.tensors[0].name, "bias");
	cr_assert_str_eq(f.tensors[1].name, "weight");
	const struct swarm_st_tensor *wt = swarm_st_find(&f, "weight");
	cr_assert_not_null(wt);
	cr_assert_eq(wt->dtype, SWARM_ST_F16);
	cr_assert_eq(wt->ndim, 2);
	cr_assert_eq(wt->shape[0], 2);
	cr_assert_eq(wt->shape[1], 2);
	cr_assert_eq(wt->offset, data + 8, "offset %llu", (unsigned long long)wt->offset);
	cr_assert_eq(memcmp(b + wt->offset, w, 8), 0);
	float got;
	memcpy(&got, b + swarm_st_find(&f, "bias")->offset + 4, 4);
	cr_assert_eq(got, -1.0f, "bias[1] %f", got);
	swarm_st_free(&f);
	free(b);
}

Test(registry_safetensors, tensors_sorted_by_offset_not_header_order)
{
	const char *hdr = "{\"z\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
			  "\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[8,16]},"
			  "\"m\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]}}";
	size_t len;
	uint8_t *b = build(hdr, 16, 1, &len);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	cr_assert_eq(f.n_tensors, 3);
	cr_assert_str_eq(f.tensors[0].name, "z");
	cr_assert_str_eq(f.tensors[1].name, "m", "zero-size tensor sorts before its neighbour");
	cr_assert_str_eq(f.tensors[2].name, "a");
	swarm_st_free(&f);
	free(b);
}

Test(registry_safetensors, find_returns_named_tensor_or_null)
{
	const char *hdr = "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			  "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
	size_t len;
	uint8_t *b = build(hdr, 16, 1, &len);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	const struct swarm_st_tensor *t = swarm_st_find(&f, "b");
	cr_assert_not_null(t);
	cr_assert_str_eq(t->name, "b");
	cr_assert_eq(t->dtype, SWARM_ST_I64);
	cr_assert_null(swarm_st_find(&f, "c"));
	cr_assert_null(swarm_st_find(&f, ""));
	swarm_st_free(&f);
	free(b);
}

Test(registry_safetensors, dtype_names_sizes_and_swarm_mapping)
{
	static const struct {
		uint32_t st;
		const char *name;
		uint32_t size, swarm;
	} tab[] = {
		{ SWARM_ST_BOOL, "BOOL", 1, 0 },
		{ SWARM_ST_U8, "U8", 1, SWARM_DTYPE_U8 },
		{ SWARM_ST_I8, "I8", 1, 0 },
		{ SWARM_ST_I16, "I16", 2, 0 },
		{ SWARM_ST_U16, "U16", 2, 0 },
		{ SWARM_ST_F16, "F16", 2, SWARM_DTYPE_F16 },
		{ SWARM_ST_BF16, "BF16", 2, SWARM_DTYPE_BF16 },
		{ SWARM_ST_I32, "I32", 4, SWARM_DTYPE_I32 },
		{ SWARM_ST_U32, "U32", 4, 0 },
		{ SWARM_ST_F32, "F32", 4, SWARM_DTYPE_F32 },
		{ SWARM_ST_F64, "F64", 8, 0 },
		{ SWARM_ST_I64, "I64", 8, SWARM_DTYPE_I64 },
		{ SWARM_ST_U64, "U64", 8, 0 },
		{ SWARM_ST_F8_E4M3, "F8_E4M3", 1, 0 },
		{ SWARM_ST_F8_E5M2, "F8_E5M2", 1, 0 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		cr_assert_str_eq(swarm_st_dtype_name(tab[i].st), tab[i].name);
		cr_assert_eq(swarm_st_dtype_size(tab[i].st), tab[i].size, "%s size %u", tab[i].name,
			     swarm_st_dtype_size(tab[i].st));
		cr_assert_eq(swarm_st_to_swarm_dtype(tab[i].st), tab[i].swarm, "%s maps to %u",
			     tab[i].name, swarm_st_to_swarm_dtype(tab[i].st));
	}
	cr_assert_null(swarm_st_dtype_name(0));
	cr_assert_null(swarm_st_dtype_name(SWARM_ST_F8_E5M2 + 1));
	cr_assert_eq(swarm_st_dtype_size(0), 0);
	cr_assert_eq(swarm_st_dtype_size(1000), 0);
	cr_assert_eq(swarm_st_to_swarm_dtype(0), 0);
}

Test(registry_safetensors, metadata_of_strings_is_accepted)
{
	const char *hdr = "{\"__metadata__\":{\"a\":\"b\",\"c\":\"\"}}";
	size_t len;
	uint8_t *b = build(hdr, 0, 1, &len);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	cr_assert_eq(f.n_tensors, 0);
	swarm_st_free(&f);
	free(b);
}

/* ---- refusals of the framing ------------------------------------------------------------- */

Test(registry_safetensors, refuses_file_shorter_than_8_bytes)
{
	for (size_t len = 0; len < 8; len++) {
		uint8_t *b = malloc(len ? len : 1);
		memset(b, 0, len ? len : 1);
		struct swarm_st_file f;
		char err[256] = "";
		int rc = swarm_st_parse(b, len, &f, err, sizeof(err));
		cr_assert_eq(rc, -EINVAL, "len %zu rc %d", len, rc);
		cr_assert_not_null(strstr(err, "shorter than"), "len %zu: %s", len, err);
		free(b);
	}
}

Test(registry_safetensors, refuses_header_length_zero)
{
	expect_refused("", 0, 0, "header length is 0", NULL);
}

static void expect_hlen_refused(uint64_t hlen, size_t total, const char *want)
{
	uint8_t *b = calloc(1, total);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(hlen >> (8 * i));
	if (total > 8)
		b[8] = '{';
	struct swarm_st_file f;
	char err[256] = "";
	int rc = swarm_st_parse(b, total, &f, err, sizeof(err));
	cr_assert_eq(rc, -EINVAL, "hlen %llu rc %d", (unsigned long long)hlen, rc);
	cr_assert_not_null(strstr(err, want), "hlen %llu: %s", (unsigned long long)hlen, err);
	free(b);
}

Test(registry_safetensors, refuses_header_length_over_limit)
{
	expect_hlen_refused((uint64_t)SWARM_ST_MAX_HEADER + 1, 16, "exceeds the limit");
	expect_hlen_refused(UINT64_MAX, 16, "exceeds the limit");
}

Test(registry_safetensors, refuses_header_length_past_end_of_file)
{
	expect_hlen_refused(9, 16, "exceeds the 8 bytes after");
}

Test(registry_safetensors, refuses_invalid_json_with_line_and_column)
{
	expect_refused("{\"a\":\n{\"dtype\":}}", 0, 1, "not valid JSON", "line 2");
	expect_refused("{\"a\":\n{\"dtype\":}}", 0, 1, "column", NULL);
}

Test(registry_safetensors, refuses_trailing_garbage_after_json)
{
	expect_refused("{} x", 0, 0, "not valid JSON", NULL);
}

Test(registry_safetensors, refuses_nul_inside_header)
{
	size_t len;
	uint8_t *b = build("{}      ", 0, 1, &len);
	b[10] = '\0';
	struct swarm_st_file f;
	char err[256] = "";
	cr_assert_eq(swarm_st_parse(b, len, &f, err, sizeof(err)), -EINVAL, "%s", err);
	free(b);
}

Test(registry_safetensors, refuses_header_not_an_object)
{
	/* the spec says the header begins with '{': anything else is not safetensors at all */
	expect_refused("[1,2]", 0, 1, "not a safetensors file", "does not begin with '{'");
}

/* ---- files that are not safetensors at all: named before any header length -------------- */

/* Parses the len bytes of b (copied to an exactly sized buffer) and expects -EINVAL with a
 * message that starts "not a safetensors file", holds want, and says nothing of a header
 * length before that. */
static void expect_not_safetensors(const void *b, size_t len, const char *want)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	memcpy(copy, b, len);
	struct swarm_st_file f;
	char err[512] = "";
	int rc = swarm_st_parse(copy, len, &f, err, sizeof(err));
	free(copy);
	cr_assert_eq(rc, -EINVAL, "rc %d (err \"%s\")", rc, err);
	cr_assert(strncmp(err, "not a safetensors file", 22) == 0, "error \"%s\"", err);
	cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
	cr_assert_null(strstr(err, "header length "), "error \"%s\" speaks of the length", err);
}

Test(registry_safetensors, an_onnx_model_is_named_as_one)
{
	/* the start of a real exporter's ModelProto: ir_version 8, producer_name "pytorch" */
	static const uint8_t onnx[] = { 0x08, 0x08, 0x12, 0x07, 'p',  'y',  't',  'o',
					'r',  'c',  'h',  0x1a, 0x05, '2',  '.',  '1',
					'.',  '0',  0x3a, 0x90, 0x01, 0x0a, 0x2b, 0x12 };
	expect_not_safetensors(onnx, sizeof onnx, "an ONNX model");
	expect_not_safetensors(onnx, sizeof onnx, "swarm import onnx");
}

Test(registry_safetensors, a_text_file_is_named_as_one)
{
	const char *t = "w1 = [0.1, 0.2, 0.3]\nb1 = [0]\n";
	expect_not_safetensors(t, strlen(t), "a text file");
	/* even when its ninth byte happens to be '{' */
	const char *j = "weights {\"w\": [1, 2]}\n";
	expect_not_safetensors(j, strlen(j), "a text file");
}

Test(registry_safetensors, a_short_text_file_is_named_as_one)
{
	expect_not_safetensors("hello", 5, "shorter than the 8-byte header length");
	expect_not_safetensors("hello", 5, "a text file");
}

Test(registry_safetensors, a_zip_is_named_as_one)
{
	static const uint8_t zip[] = { 'P',  'K', 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08,
				       0x00, 'a', 'r',  'c',  'h',  'i',  'v',  'e' };
	expect_not_safetensors(zip, sizeof zip, "a zip archive");
}

Test(registry_safetensors, a_pickle_and_an_npy_are_named)
{
	static const uint8_t pickle[] = { 0x80, 0x04, 0x95, 0x10, 0x00, 0x00,
					  0x00, 0x00, 0x00, 0x00, 0x00, 0x7d };
	expect_not_safetensors(pickle, sizeof pickle, "a Python pickle");
	static const uint8_t npy[] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 0x01, 0x00, 0x76, 0x00 };
	expect_not_safetensors(npy, sizeof npy, "a NumPy .npy array");
}

Test(registry_safetensors, unknown_bytes_are_shown)
{
	static const uint8_t junk[] = { 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10 };
	expect_not_safetensors(junk, sizeof junk, "does not begin with '{' (first bytes 01 02 03");
}

Test(registry_safetensors, a_real_file_whose_length_reads_as_a_magic_still_parses)
{
	/* a header of 0x8b1f bytes: its length field starts 1f 8b, gzip's magic */
	size_t n = 0x8b1f;
	char *hdr = malloc(n + 1);
	cr_assert_not_null(hdr);
	memset(hdr, ' ', n);
	memcpy(hdr, "{}", 2);
	hdr[n] = 0;
	size_t len;
	uint8_t *b = build(hdr, 0, 0, &len);
	cr_assert_eq(b[0], 0x1f);
	cr_assert_eq(b[1], 0x8b);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	swarm_st_free(&f);
	free(b);
	free(hdr);
}

Test(registry_safetensors, refuses_duplicate_tensor_names)
{
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		       "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
		       2, 1, "duplicate", "a");
}

Test(registry_safetensors, refuses_metadata_not_an_object)
{
	expect_refused("{\"__metadata__\":[\"x\"]}", 0, 1, "__metadata__", "not an object");
}

Test(registry_safetensors, refuses_metadata_with_non_string_value)
{
	expect_refused("{\"__metadata__\":{\"epochs\":3}}", 0, 1, "\"epochs\"", "not a string");
}

Test(registry_safetensors, refuses_too_many_tensors)
{
	size_t n = (size_t)SWARM_ST_MAX_TENSORS + 1;
	size_t cap = n * 64 + 16;
	char *hdr = malloc(cap);
	size_t at = 0;
	hdr[at++] = '{';
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(hdr + at, cap - at,
				       "%s\"t%zu\":{\"dtype\":\"U8\",\"shape\":[0],"
				       "\"data_offsets\":[0,0]}",
				       i ? "," : "", i);
	hdr[at++] = '}';
	hdr[at] = '\0';
	expect_refused(hdr, 0, 1, "65537 tensors", "at most 65536");
	free(hdr);
}

Test(registry_safetensors, refuses_no_tensors_with_data)
{
	expect_refused("{}", 8, 1, "no tensors", "8 data bytes");
}

/* ---- refusals of one entry --------------------------------------------------------------- */

Test(registry_safetensors, refuses_entry_not_an_object)
{
	expect_refused("{\"w\":[1]}", 0, 1, "tensor \"w\"", "not an object");
}

Test(registry_safetensors, refuses_entry_missing_dtype)
{
	expect_refused("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, 1, "tensor \"w\"",
		       "missing dtype");
}

Test(registry_safetensors, refuses_entry_missing_shape)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, 1, "tensor \"w\"",
		       "missing shape");
}

Test(registry_safetensors, refuses_entry_missing_data_offsets)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, 1, "tensor \"w\"",
		       "missing data_offsets");
}

Test(registry_safetensors, refuses_entry_with_unknown_key)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1,
		       1, "tensor \"w\"", "unknown key \"x\"");
}

Test(registry_safetensors, refuses_dtype_not_a_string)
{
	expect_refused("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, 1,
		       "tensor \"w\"", "dtype is not a string");
}

Test(registry_safetensors, refuses_unknown_dtype)
{
	expect_refused("{\"w\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16, 1,
		       "tensor \"w\"", "unknown dtype \"F128\"");
	expect_refused("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 1,
		       "tensor \"w\"", "unknown dtype \"f32\"");
}

Test(registry_safetensors, refuses_shape_not_an_array)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}", 1, 1,
		       "tensor \"w\"", "shape is not an array");
}

Test(registry_safetensors, refuses_negative_dimension)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[2,-1],\"data_offsets\":[0,1]}}", 1, 1,
		       "tensor \"w\"", "dimension 1 is not a non-negative integer");
}

Test(registry_safetensors, refuses_non_integer_dimension)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1, 1,
		       "tensor \"w\"", "dimension 0");
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1, 1,
		       "tensor \"w\"", "dimension 0");
}

Test(registry_safetensors, refuses_too_many_dimensions)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
		       "\"data_offsets\":[0,1]}}",
		       1, 1, "tensor \"w\"", "9 dimensions, at most 8");
}

Test(registry_safetensors, refuses_data_offsets_not_a_pair)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, 1,
		       "tensor \"w\"", "data_offsets is not an array of 2");
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{}}}", 1, 1,
		       "tensor \"w\"", "data_offsets is not an array of 2");
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, 1,
		       "tensor \"w\"", "data_offsets is not an array of 2");
}

Test(registry_safetensors, refuses_negative_data_offsets)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1, 1,
		       "tensor \"w\"", "not non-negative integers");
}

Test(registry_safetensors, refuses_data_offsets_begin_after_end)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, 1,
		       "tensor \"w\"", "[4, 0] begin after they end");
}

Test(registry_safetensors, refuses_empty_name)
{
	expect_refused("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, 1,
		       "tensor \"\"", "empty tensor name");
}

Test(registry_safetensors, refuses_name_too_long)
{
	char name[SWARM_ST_NAME_MAX + 1];
	memset(name, 'n', SWARM_ST_NAME_MAX);
	name[SWARM_ST_NAME_MAX] = '\0'; /* 128 characters: one too many */
	char hdr[512];
	snprintf(hdr, sizeof(hdr),
		 "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name);
	expect_refused(hdr, 1, 1, "name is 128 bytes", "longer than 127");
	/* 127 characters is accepted. */
	name[SWARM_ST_NAME_MAX - 1] = '\0';
	snprintf(hdr, sizeof(hdr),
		 "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name);
	size_t len;
	uint8_t *b = build(hdr, 1, 1, &len);
	struct swarm_st_file f;
	parse_ok(b, len, &f);
	cr_assert_str_eq(f.tensors[0].name, name);
	swarm_st_free(&f);
	free(b);
}

Test(registry_safetensors, refuses_element_count_overflow)
{
	expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
		       "\"data_offsets\":[0,0]}}",
		       0, 1, "tensor \"w\"", "overflows");
	/* Element count fits, times 8 bytes does not. */
	expect_refused("{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
		       "\"data_offsets\":[0,0]}}",
		       0, 1, "tensor \"w\"", "overflows");
}

Test(registry_safetensors, refuses_byte_count_mismatch)
{
	expect_refused("{\"w1\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12,
		       1,
		       "tensor \"w1\": data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16",
		       NULL);
}

/* ---- refusals of the layout -------------------------------------------------------------- */

Test(registry_safetensors, refuses_first_tensor_not_at_zero)
{
	expect_refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, 1,
		       "tensor \"w\"", "begins at 4, not 0");
}

Test(registry_safetensors, refuses_gap_between_tensors)
{
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}",
		       12, 1, "tensors \"a\" and \"b\"", "gap of 4 bytes");
}

Test(registry_safetensors, refuses_overlapping_tensors)
{
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
		       "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}",
		       12, 1, "tensors \"a\" and \"b\"", "overlap of 4 bytes");
}

Test(registry_safetensors, refuses_trailing_data)
{
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 12, 1,
		       "tensor \"a\"", "4 trailing bytes");
}

Test(registry_safetensors, refuses_short_data)
{
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 5, 1,
		       "tensor \"a\"", "short by 3 bytes");
}

Test(registry_safetensors, refuses_huge_offsets_without_overflow)
{
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
		       "\"data_offsets\":[9223372036854775806,9223372036854775807]}}",
		       0, 1, "tensor \"a\"", "begins at 9223372036854775806");
}

Test(registry_safetensors, refuses_misaligned_tensor)
{
	/* Padded header: the data starts at a multiple of 8, so "b" at relative 1 is off. */
	expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}",
		       5, 1, "tensor \"b\"", "not aligned to F32's 4 bytes");
	/* Unpadded header of odd length misaligns even the first tensor. */
	char odd[128];
	snprintf(odd, sizeof(odd), "%s",
		 "{\"a\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[0,2]}}");
	if (strlen(odd) % 2 == 0)
		strcat(odd, " ");
	expect_refused(odd, 2, 0, "tensor \"a\"", "not aligned to I16's 2 bytes");
}

/* ---- robustness -------------------------------------------------------------------------- */

static uint8_t *valid_file(size_t *len)
{
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
			  "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
			  "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]},"
			  "\"c\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[24,24]},"
			  "\"d\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[24,27]}}";
	return build(hdr, 27, 1, len);
}

Test(registry_safetensors, every_truncation_fails_cleanly)
{
	size_t len;
	uint8_t *full = valid_file(&len);
	struct swarm_st_file f;
	parse_ok(full, len, &f);
	cr_assert_eq(f.n_tensors, 4);
	swarm_st_free(&f);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *b = malloc(cut ? cut : 1);
		memcpy(b, full, cut);
		char err[256] = "";
		int rc = swarm_st_parse(b, cut, &f, err, sizeof(err));
		cr_assert_eq(rc, -EINVAL, "prefix of %zu/%zu bytes: rc %d", cut, len, rc);
		cr_assert_neq(err[0], '\0', "prefix of %zu bytes: no message", cut);
		free(b);
	}
	free(full);
}

Test(registry_safetensors, random_header_byte_flips_never_crash)
{
	size_t len;
	uint8_t *full = valid_file(&len);
	size_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | full[i];
	uint64_t seed = 0x5eed5afe7e115ULL;
	int accepted = 0;
	for (int it = 0; it < 2000; it++) {
		uint8_t *b = malloc(len);
		memcpy(b, full, len);
		int flips = 1 + it % 4;
		for (int k = 0; k < flips; k++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t pos = (size_t)(seed >> 33) % (8 + hlen);
			b[pos] ^= (uint8_t)(1u << ((seed >> 20) & 7));
		}
		struct swarm_st_file f;
		char err[256] = "";
		int rc = swarm_st_parse(b, len, &f, err, sizeof(err));
		cr_assert(rc == 0 || rc == -EINVAL, "iteration %d: rc %d", it, rc);
		if (rc == 0) {
			accepted++;
			for (uint32_t i = 0; i < f.n_tensors; i++)
				cr_assert_leq(f.tensors[i].offset + f.tensors[i].nbytes, len,
					      "iteration %d: tensor %s past end", it,
					      f.tensors[i].name);
			swarm_st_free(&f);
		} else {
			cr_assert_neq(err[0], '\0', "iteration %d: refusal without message", it);
		}
		free(b);
	}
	cr_log_info("%d of 2000 mutated headers still parsed", accepted);
	free(full);
}

Test(registry_safetensors, null_error_buffer_is_allowed)
{
	uint8_t b[4] = { 0 };
	struct swarm_st_file f;
	cr_assert_eq(swarm_st_parse(b, sizeof(b), &f, NULL, 0), -EINVAL);
}
