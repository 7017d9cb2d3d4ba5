/* manifest.c: parsing and checking a model version's JSON manifest (format in manifest.h and
 * docs/manifest.md). jansson does the JSON; everything after that is checked here, field by
 * field, and every refusal names the path of the field ("inputs[0].shape[0]") so that the
 * author of a manifest can fix it without reading this file.
 */
#include "registry/manifest.h"

#include "kernels/op.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ipc/segment.h"

_Static_assert(SWARM_GRAPH_NAME_MAX == SWARM_ST_NAME_MAX,
	       "a graph's tensor names are safetensors names");

#define ROW_BYTES_MAX (1ull << 30)
#define PATH_MAX_LEN 96

static const char *const top_keys[] = {
	"format", "inputs", "outputs", "graph", "weights", "deploy",
};

static const char *const deploy_keys[] = {
	"max_rows",    "max_batch",   "max_queue_delay_us", "slots",
	"min_devices", "max_devices", "latency_p99_us",
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_len, const char *fmt,
						      ...)
{
	if (err && err_len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char *json_type_article(const char *want)
{
	return want[0] == 'a' || want[0] == 'o' || want[0] == 'i' ? "an" : "a";
}

static int type_error(char *err, size_t err_len, const char *path, const char *want)
{
	return fail(err, err_len, "%s: must be %s %s", path, json_type_article(want), want);
}

uint32_t swarm_dtype_from_name(const char *name)
{
	if (!name)
		return 0;
	for (uint32_t d = SWARM_DTYPE_F32; d <= SWARM_DTYPE_U8; d++) {
		const char *n = swarm_dtype_name(d);
		if (n && strcmp(n, name) == 0)
			return d;
	}
	return 0;
}

static bool key_known(const char *key, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* A string member of obj: present, a string, non-empty and shorter than max bytes. */
static int get_name(json_t *obj, const char *path, const char *key, size_t max, const char **out,
		    char *err, size_t err_len)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return fail(err, err_len, "%s.%s: missing", path, key);
	if (!json_is_string(v))
		return fail(err, err_len, "%s.%s: must be a string", path, key);
	size_t len = json_string_length(v);
	if (len == 0)
		return fail(err, err_len, "%s.%s: must not be empty", path, key);
	if (len >= max)
		return fail(err, err_len, "%s.%s: %zu bytes long, the limit is %zu", path, key, len,
			    max - 1);
	*out = json_string_value(v);
	return 0;
}

static int get_dtype(json_t *obj, const char *path, uint32_t *out, char *err, size_t err_len)
{
	json_t *v = json_object_get(obj, "dtype");
	if (!v)
		return fail(err, err_len, "%s.dtype: missing", path);
	if (!json_is_string(v))
		return fail(err, err_len, "%s.dtype: must be a string", path);
	uint32_t d = swarm_dtype_from_name(json_string_value(v));
	if (!d)
		return fail(err, err_len,
			    "%s.dtype: unknown dtype \"%s\" (one of f32 f16 bf16 i32 i64 u8)", path,
			    json_string_value(v));
	*out = d;
	return 0;
}

/* Keys of a tensor or weight object: exactly name, dtype, shape. */
static int check_entry_keys(json_t *obj, const char *path, char *err, size_t err_len)
{
	static const char *const keys[] = { "name", "dtype", "shape" };
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		if (!key_known(key, keys, 3))
			return fail(err, err_len, "%s: unknown key \"%s\" (name, dtype, shape)",
				    path, key);
	}
	return 0;
}

/* What tensor and weight entries share: an object with exactly name, dtype and shape; copies
 * the name (name_max bytes at most, NUL included) and dtype out and hands the shape array
 * back for the caller's own rules. */
static int parse_entry(json_t *obj, const char *path, size_t name_max, char *name_out,
		       uint32_t *dtype, json_t **shape, char *err, size_t err_len)
{
	const char *name;
	int rc;

	if (!json_is_object(obj))
		return type_error(err, err_len, path, "object");
	if ((rc = check_entry_keys(obj, path, err, err_len)))
		return rc;
	if ((rc = get_name(obj, path, "name", name_max, &name, err, err_len)))
		return rc;
	memcpy(name_out, name, strlen(name) + 1);
	if ((rc = get_dtype(obj, path, dtype, err, err_len)))
		return rc;
	*shape = json_object_get(obj, "shape");
	if (!*shape)
		return fail(err, err_len, "%s.shape: missing", path);
	if (!json_is_array(*shape))
		return fail(err, err_len, "%s.shape: must be an array", path);
	return 0;
}

static int parse_tensor(json_t *obj, const char *path, swarm_tensor_spec *t, char *err,
			size_t err_len)
{
	json_t *shape;
	int rc = parse_entry(obj, path, SWARM_NAME_MAX, t->name, &t->dtype, &shape, err, err_len);
	if (rc)
		return rc;
	size_t n = json_array_size(shape);
	if (n < 2 || n > SWARM_MAX_DIMS)
		return fail(err, err_len,
			    "%s.shape: must have 2..%d dimensions (the batch dimension first), "
			    "not %zu",
			    path, SWARM_MAX_DIMS, n);

	uint64_t row = swarm_dtype_size(t->dtype);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(shape, i);
		if (!json_is_integer(d))
			return fail(err, err_len, "%s.shape[%zu]: must be an integer", path, i);
		json_int_t v = json_integer_value(d);
		if (i == 0 && v != -1)
			return fail(
				err, err_len,
				"%s.shape[0]: the batch dimension must be -1, not %" JSON_INTEGER_FORMAT,
				path, v);
		if (i > 0 && v < 1)
			return fail(err, err_len,
				    "%s.shape[%zu]: must be at least 1, not %" JSON_INTEGER_FORMAT,
				    path, i, v);
		t->shape[i] = v;
		if (i > 0 &&
		    (__builtin_mul_overflow(row, (uint64_t)v, &row) || row > ROW_BYTES_MAX))
			return fail(err, err_len,
				    "%s.shape: one row is more than 1 GiB (the limit per row)",
				    path);
	}
	t->ndim = (uint32_t)n;
	t->row_bytes = row;
	return 0;
}

static int parse_tensors(json_t *root, const char *key, swarm_tensor_spec *specs, uint32_t *count,
			 char *err, size_t err_len)
{
	json_t *arr = json_object_get(root, key);
	if (!json_is_array(arr))
		return type_error(err, err_len, key, "array");
	size_t n = json_array_size(arr);
	if (n == 0)
		return fail(err, err_len, "%s: must not be empty", key);
	if (n > SWARM_MAX_TENSORS)
		return fail(err, err_len, "%s: %zu tensors, the limit is %d", key, n,
			    SWARM_MAX_TENSORS);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX_LEN];
		snprintf(path, sizeof path, "%s[%zu]", key, i);
		int rc = parse_tensor(json_array_get(arr, i), path, &specs[i], err, err_len);
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(specs[j].name, specs[i].name) == 0)
				return fail(err, err_len, "%s.name: \"%s\" appears twice", path,
					    specs[i].name);
	}
	*count = (uint32_t)n;
	return 0;
}

/* A node's own keys; the rest are its op's attributes (kernels/op.h, enum swarm_attr). */
static const char *const node_keys[] = { "op", "inputs", "output" };

/* The index of name in the graph's name table, adding it when new. */
static int intern_name(struct swarm_graph_spec *g, const char *path, const char *name,
		       uint16_t *out, char *err, size_t err_len)
{
	for (uint32_t i = 0; i < g->n_names; i++)
		if (strcmp(g->names[i], name) == 0) {
			*out = (uint16_t)i;
			return 0;
		}
	if (g->n_names == SWARM_GRAPH_MAX_NAMES)
		return fail(err, err_len, "%s: more than %d distinct tensor names in the graph",
			    path, SWARM_GRAPH_MAX_NAMES);
	memcpy(g->names[g->n_names], name, strlen(name) + 1);
	*out = (uint16_t)g->n_names++;
	return 0;
}

/* A tensor name at arr[i] (or the string v itself, path given): 1..127 bytes. */
static int get_tensor_name(json_t *v, const char *path, const char **out, char *err, size_t err_len)
{
	if (!json_is_string(v))
		return fail(err, err_len, "%s: must be a string", path);
	size_t len = json_string_length(v);
	if (len == 0)
		return fail(err, err_len, "%s: must not be empty", path);
	if (len >= SWARM_ST_NAME_MAX)
		return fail(err, err_len, "%s: %zu bytes long, the limit is %d", path, len,
			    SWARM_ST_NAME_MAX - 1);
	if (strlen(json_string_value(v)) != len)
		return fail(err, err_len, "%s: must not contain a NUL byte", path);
	*out = json_string_value(v);
	return 0;
}

/* ---- a node's attributes: one parser per enum swarm_attr bit, in its order ---------------- */

typedef int (*attr_parse_fn)(json_t *v, const char *path, uint32_t op, struct swarm_op_params *p,
			     char *err, size_t err_len);

/* One of names[0..n) (a string), its index in *out. */
static int get_choice(json_t *v, const char *path, const char *const *names, uint32_t n,
		      uint32_t *out, char *err, size_t err_len)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	for (uint32_t i = 0; s && i < n; i++)
		if (names[i] && strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	char list[256] = "";
	size_t off = 0;
	for (uint32_t i = 0; i < n && off < sizeof list; i++)
		if (names[i]) {
			int k = snprintf(list + off, sizeof list - off, "%s\"%s\"", off ? ", " : "",
					 names[i]);
			off += k > 0 ? (size_t)k : 0;
		}
	return fail(err, err_len, "%s: must be one of %s", path, list);
}

/* A list of min_n..max_n integers in [lo, hi]; *n gets its length. */
static int get_ints(json_t *v, const char *path, uint32_t min_n, uint32_t max_n, int64_t lo,
		    int64_t hi, int64_t *out, uint32_t *n, char *err, size_t err_len)
{
	if (!json_is_array(v) || json_array_size(v) < min_n || json_array_size(v) > max_n)
		return fail(err, err_len, "%s: must be a list of %u..%u integers", path, min_n,
			    max_n);
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
			return fail(err, err_len, "%s[%zu]: must be an integer in %lld..%lld", path,
				    i, (long long)lo, (long long)hi);
		out[i] = json_integer_value(e);
	}
	*n = (uint32_t)json_array_size(v);
	return 0;
}

/* A finite number. */
static int get_number(json_t *v, const char *path, float *out, char *err, size_t err_len)
{
	double d = json_is_number(v) ? json_number_value(v) : NAN;
	if (!(d >= -3.4e38 && d <= 3.4e38))
		return fail(err, err_len, "%s: must be a finite number", path);
	*out = (float)d;
	return 0;
}

static int get_flag(json_t *v, const char *path, uint32_t *out, char *err, size_t err_len)
{
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return 0;
	}
	if (!json_is_integer(v) || (json_integer_value(v) != 0 && json_integer_value(v) != 1))
		return fail(err, err_len, "%s: must be 0 or 1", path);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

/* A list of exactly 2 ints in [lo, hi], into an int32 pair. */
static int get_pair(json_t *v, const char *path, int64_t lo, int64_t hi, int32_t out[2], char *err,
		    size_t err_len)
{
	int64_t t[2];
	uint32_t n;
	int rc = get_ints(v, path, 2, 2, lo, hi, t, &n, err, err_len);
	if (rc == 0)
		out[0] = (int32_t)t[0], out[1] = (int32_t)t[1];
	return rc;
}

#define ATTR(name)                                                       \
	static int attr_##name(json_t *v, const char *path, uint32_t op, \
			       struct swarm_op_params *p, char *err, size_t err_len)

ATTR(act)
{
	/* The activations a node can fuse; the op table says which ones its op takes. */
	int a = json_is_string(v) ? swarm_op_from_name(json_string_value(v)) : -1;
	const struct swarm_op_info *info = swarm_op_info(op);
	struct swarm_op_params t = *p;
	t.act = a < 0 ? UINT32_MAX : (uint32_t)a;
	if (a < 0 || a == SWARM_OP_IDENTITY || (info->params_ok && !info->params_ok(&t)))
		return fail(err, err_len, "%s: must be an activation %s fuses: %s", path,
			    info->name,
			    op == SWARM_OP_LINEAR ? "relu gelu sigmoid tanh" :
						    "relu gelu sigmoid tanh hardsigmoid hardswish "
						    "leaky_relu clip");
	p->act = (uint32_t)a;
	return 0;
}

ATTR(mode)
{
	static const char *const bag[] = { "sum", "mean" };
	static const char *const pad[] = { "constant", "reflect", "edge" };
	static const char *const resize[] = { "nearest", "linear" };
	if (op == SWARM_OP_EMBEDDING_BAG)
		return get_choice(v, path, bag, 2, &p->bag_mode, err, err_len);
	if (op == SWARM_OP_PAD)
		return get_choice(v, path, pad, 3, &p->mode, err, err_len);
	return get_choice(v, path, resize, 2, &p->mode, err, err_len);
}

ATTR(heads)
{
	(void)op;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
		return fail(err, err_len, "%s: must be an integer 1..65536", path);
	p->heads = (uint32_t)json_integer_value(v);
	return 0;
}

ATTR(eps)
{
	(void)op;
	double e = json_is_number(v) ? json_number_value(v) : -1.0;
	/* Positive and a normal float, so that it survives the narrowing. */
	if (!(e >= 1.1754944e-38 && e <= 1.0))
		return fail(err, err_len, "%s: must be a number in (0, 1]", path);
	p->eps = (float)e;
	return 0;
}

/* min and max are clip's names for alpha and beta: a node may give one name of each. */
ATTR(alpha) { return (void)op, get_number(v, path, &p->alpha, err, err_len); }
ATTR(beta) { return (void)op, get_number(v, path, &p->beta, err, err_len); }
ATTR(min) { return (void)op, get_number(v, path, &p->alpha, err, err_len); }
ATTR(max) { return (void)op, get_number(v, path, &p->beta, err, err_len); }
ATTR(exponent) { return (void)op, get_number(v, path, &p->exponent, err, err_len); }
ATTR(value) { return (void)op, get_number(v, path, &p->value, err, err_len); }

ATTR(axis)
{
	(void)op;
	if (!json_is_integer(v) || json_integer_value(v) < -SWARM_TENSOR_MAX_DIMS ||
	    json_integer_value(v) >= SWARM_TENSOR_MAX_DIMS)
		return fail(err, err_len, "%s: must be an integer in -%d..%d", path,
			    SWARM_TENSOR_MAX_DIMS, SWARM_TENSOR_MAX_DIMS - 1);
	p->axis = (int32_t)json_integer_value(v);
	return 0;
}

/* Ascending dims, no repeats (slice's starts, ends and steps follow its order). */
ATTR(axes)
{
	(void)op;
	int64_t t[SWARM_TENSOR_MAX_DIMS];
	uint32_t n;
	int rc = get_ints(v, path, 1, SWARM_TENSOR_MAX_DIMS, 0, SWARM_TENSOR_MAX_DIMS - 1, t, &n,
			  err, err_len);
	if (rc)
		return rc;
	p->axes = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (i && t[i] <= t[i - 1])
			return fail(err, err_len, "%s: must be ascending, with no repeats", path);
		p->axes |= 1u << t[i];
	}
	return 0;
}

ATTR(keepdims) { return (void)op, get_flag(v, path, &p->keepdims, err, err_len); }

ATTR(coord)
{
	static const char *const names[] = { "half_pixel", "asymmetric", "align_corners",
					     "pytorch_half_pixel" };
	(void)op;
	return get_choice(v, path, names, 4, &p->coord, err, err_len);
}

ATTR(nearest)
{
	static const char *const names[] = { "round_prefer_floor", "round_prefer_ceil", "floor",
					     "ceil" };
	(void)op;
	return get_choice(v, path, names, 4, &p->nearest, err, err_len);
}

ATTR(to)
{
	(void)op;
	uint32_t d = json_is_string(v) ? swarm_dtype_from_name(json_string_value(v)) : 0;
	if (d != SWARM_DTYPE_F32 && d != SWARM_DTYPE_F16 && d != SWARM_DTYPE_BF16)
		return fail(err, err_len, "%s: must be \"f32\", \"f16\" or \"bf16\"", path);
	p->to = d;
	return 0;
}

ATTR(group)
{
	(void)op;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
		return fail(err, err_len, "%s: must be an integer 1..65536", path);
	p->group = (uint32_t)json_integer_value(v);
	return 0;
}

ATTR(ceil_mode) { return (void)op, get_flag(v, path, &p->ceil_mode, err, err_len); }
ATTR(count_include_pad) { return (void)op, get_flag(v, path, &p->count_include_pad, err, err_len); }
ATTR(kernel) { return (void)op, get_pair(v, path, 1, 1 << 16, p->kernel, err, err_len); }
ATTR(strides) { return (void)op, get_pair(v, path, 1, 1 << 16, p->stride, err, err_len); }
ATTR(dilations) { return (void)op, get_pair(v, path, 1, 1 << 16, p->dilation, err, err_len); }
ATTR(out_pad) { return (void)op, get_pair(v, path, 0, 1 << 16, p->out_pad, err, err_len); }

ATTR(scales)
{
	(void)op;
	if (!json_is_array(v) || json_array_size(v) != 2)
		return fail(err, err_len, "%s: must be a list of 2 numbers (H, W)", path);
	for (size_t i = 0; i < 2; i++) {
		double d = json_is_number(json_array_get(v, i)) ?
				   json_number_value(json_array_get(v, i)) :
				   -1;
		if (!(d > 0 && d < 1e6))
			return fail(err, err_len, "%s[%zu]: must be a number in (0, 1e6)", path, i);
		p->scales[i] = (float)d;
	}
	return 0;
}

ATTR(sizes)
{
	(void)op;
	uint32_t n;
	return get_ints(v, path, 2, 2, 1, 1 << 24, p->sizes, &n, err, err_len);
}

ATTR(pads)
{
	(void)op;
	return get_ints(v, path, 1, 2 * SWARM_TENSOR_MAX_DIMS, 0, 1 << 24, p->pads, &p->n_pads, err,
			err_len);
}

ATTR(shape)
{
	(void)op;
	int rc = get_ints(v, path, 0, SWARM_TENSOR_MAX_DIMS, -1, INT64_MAX / 16, p->shape,
			  &p->n_shape, err, err_len);
	for (uint32_t i = 1; rc == 0 && i < p->n_shape; i++)
		if (p->shape[i] < 0)
			return fail(err, err_len,
				    "%s[%u]: only shape[0] may be -1 (the batch dimension)", path,
				    i);
	return rc;
}

ATTR(perm)
{
	(void)op;
	return get_ints(v, path, 1, SWARM_TENSOR_MAX_DIMS, 0, SWARM_TENSOR_MAX_DIMS - 1, p->perm,
			&p->n_shape, err, err_len);
}

/* starts, ends and steps give one value per dim of axes, in its order (all of dims 0..n-1
 * when the node has no axes), stored by dim. */
static int slice_list(json_t *v, const char *path, struct swarm_op_params *p, int64_t *by_dim,
		      int64_t lo, char *err, size_t err_len)
{
	int64_t t[SWARM_TENSOR_MAX_DIMS];
	uint32_t n;
	int rc = get_ints(v, path, 1, SWARM_TENSOR_MAX_DIMS, lo, INT64_MAX, t, &n, err, err_len);
	if (rc)
		return rc;
	if (!p->axes)
		p->axes = (1u << n) - 1;
	if ((uint32_t)__builtin_popcount(p->axes) != n)
		return fail(err, err_len, "%s: %u values for %d axes", path, n,
			    __builtin_popcount(p->axes));
	for (uint32_t d = 0, k = 0; d < SWARM_TENSOR_MAX_DIMS; d++)
		if (p->axes & (1u << d))
			by_dim[d] = t[k++];
	return 0;
}

ATTR(starts) { return (void)op, slice_list(v, path, p, p->starts, INT64_MIN, err, err_len); }
ATTR(ends) { return (void)op, slice_list(v, path, p, p->ends, INT64_MIN, err, err_len); }

ATTR(steps)
{
	(void)op;
	int rc = slice_list(v, path, p, p->steps, INT64_MIN + 1, err, err_len);
	for (uint32_t d = 0; rc == 0 && d < SWARM_TENSOR_MAX_DIMS; d++)
		if ((p->axes & (1u << d)) && p->steps[d] == 0)
			return fail(err, err_len, "%s: a step of 0", path);
	return rc;
}

static const attr_parse_fn attr_parsers[SWARM_ATTR_COUNT] = {
	attr_act,
	attr_mode,
	attr_heads,
	attr_eps,
	attr_alpha,
	attr_beta,
	attr_min,
	attr_max,
	attr_exponent,
	attr_value,
	attr_axis,
	attr_axes,
	attr_keepdims,
	attr_coord,
	attr_nearest,
	attr_to,
	attr_group,
	attr_ceil_mode,
	attr_count_include_pad,
	attr_kernel,
	attr_strides,
	attr_dilations,
	attr_out_pad,
	attr_scales,
	attr_sizes,
	attr_pads,
	attr_shape,
	attr_perm,
	attr_starts,
	attr_ends,
	attr_steps,
};

/* "act, mode" for the bits of attrs, "none" when there is none. */
static void attr_list(uint32_t attrs, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < SWARM_ATTR_COUNT && off < len; i++)
		if (attrs & (1u << i)) {
			int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
					 swarm_attr_name(1u << i));
			off += n > 0 ? (size_t)n : 0;
		}
	if (!buf[0])
		snprintf(buf, len, "none");
}

/* The op's attributes: each is refused on an op that does not take it, a required one that is
 * missing is refused, each value is checked by its kind; the others keep their defaults (no
 * activation, a bag's sum, 0 for the rest). */
static int parse_node_params(json_t *obj, const char *path, struct swarm_graph_node_spec *n,
			     char *err, size_t err_len)
{
	const struct swarm_op_info *info = swarm_op_info(n->op);
	char sub[PATH_MAX_LEN + 48];

	n->p.act = SWARM_OP_IDENTITY;
	n->p.bag_mode = SWARM_BAG_SUM;
	for (int d = 0; d < SWARM_TENSOR_MAX_DIMS; d++)
		n->p.steps[d] = 1;
	if (info->defaults)
		info->defaults(&n->p);
	if ((json_object_get(obj, "min") && json_object_get(obj, "alpha")) ||
	    (json_object_get(obj, "max") && json_object_get(obj, "beta")))
		return fail(err, err_len,
			    "%s: min and alpha (max and beta) are one parameter: give one name",
			    path);
	for (int i = 0; i < SWARM_ATTR_COUNT; i++) {
		uint32_t bit = 1u << i;
		const char *key = swarm_attr_name(bit);
		json_t *v = json_object_get(obj, key);
		snprintf(sub, sizeof sub, "%s.%s", path, key);
		if (!v) {
			if (info->required & bit)
				return fail(err, err_len, "%s: missing (%s needs it)", sub,
					    info->name);
			continue;
		}
		if (!(info->attrs & bit)) {
			char takes[128];
			attr_list(info->attrs, takes, sizeof takes);
			return fail(err, err_len, "%s: %s takes no %s (its attributes: %s)", sub,
				    info->name, key, takes);
		}
		int rc = attr_parsers[i](v, sub, n->op, &n->p, err, err_len);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_node(json_t *obj, const char *path, struct swarm_graph_spec *g,
		      struct swarm_graph_node_spec *n, char *err, size_t err_len)
{
	char sub[PATH_MAX_LEN + 32];
	const char *key, *name;
	json_t *v;
	int rc;

	if (!json_is_object(obj))
		return type_error(err, err_len, path, "object");
	json_object_foreach(obj, key, v)
	{
		bool attr = false;
		for (int i = 0; i < SWARM_ATTR_COUNT && !attr; i++)
			attr = strcmp(key, swarm_attr_name(1u << i)) == 0;
		if (!attr && !key_known(key, node_keys, sizeof node_keys / sizeof *node_keys)) {
			char all[256];
			attr_list(~0u, all, sizeof all);
			return fail(
				err, err_len,
				"%s: unknown key \"%s\" (op, inputs, output, or an attribute: %s)",
				path, key, all);
		}
	}

	v = json_object_get(obj, "op");
	if (!v)
		return fail(err, err_len, "%s.op: missing", path);
	if (!json_is_string(v))
		return fail(err, err_len, "%s.op: must be a string", path);
	int op = swarm_op_from_name(json_string_value(v));
	if (op < 0 || op >= SWARM_OP_COUNT)
		return fail(err, err_len, "%s.op: unknown op \"%s\" (docs/graph.md lists them)",
			    path, json_string_value(v));
	n->op = (uint32_t)op;

	json_t *arr = json_object_get(obj, "inputs");
	if (!arr)
		return fail(err, err_len, "%s.inputs: missing", path);
	if (!json_is_array(arr))
		return fail(err, err_len, "%s.inputs: must be an array", path);
	const struct swarm_op_info *info = swarm_op_info((uint32_t)op);
	size_t n_in = json_array_size(arr), lo = info->min_in, hi = info->max_in;
	if (n_in < lo || n_in > hi) {
		if (lo == hi)
			return fail(err, err_len, "%s.inputs: %s takes %zu inputs, not %zu", path,
				    swarm_op_name(n->op), lo, n_in);
		return fail(err, err_len, "%s.inputs: %s takes %zu..%zu inputs, not %zu", path,
			    swarm_op_name(n->op), lo, hi, n_in);
	}
	for (size_t i = 0; i < n_in; i++) {
		snprintf(sub, sizeof sub, "%s.inputs[%zu]", path, i);
		if ((rc = get_tensor_name(json_array_get(arr, i), sub, &name, err, err_len)) ||
		    (rc = intern_name(g, sub, name, &n->in[i], err, err_len)))
			return rc;
	}
	n->n_in = (uint32_t)n_in;

	snprintf(sub, sizeof sub, "%s.output", path);
	v = json_object_get(obj, "output");
	if (!v)
		return fail(err, err_len, "%s: missing", sub);
	if ((rc = get_tensor_name(v, sub, &name, err, err_len)) ||
	    (rc = intern_name(g, sub, name, &n->out, err, err_len)))
		return rc;
	return parse_node_params(obj, path, n, err, err_len);
}

static int parse_nodes(json_t *arr, struct swarm_graph_spec *g, char *err, size_t err_len)
{
	if (!json_is_array(arr))
		return type_error(err, err_len, "graph.nodes", "array");
	size_t n = json_array_size(arr);
	if (n == 0)
		return fail(err, err_len, "graph.nodes: must not be empty");
	if (n > SWARM_GRAPH_MAX_NODES)
		return fail(err, err_len, "graph.nodes: %zu nodes, the limit is %d", n,
			    SWARM_GRAPH_MAX_NODES);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX_LEN];
		snprintf(path, sizeof path, "graph.nodes[%zu]", i);
		int rc = parse_node(json_array_get(arr, i), path, g, &g->nodes[i], err, err_len);
		if (rc)
			return rc;
	}
	g->n_nodes = (uint32_t)n;
	return 0;
}

/* One of {"builtin": NAME}, {"nodes": [...]} or {"backend": SO, "config": TEXT}. Names in a
 * node list are only checked for form here; swarm_graph_build resolves them against the
 * inputs, weights and earlier nodes. */
static int parse_graph(json_t *root, struct swarm_manifest *m, char *err, size_t err_len)
{
	json_t *g = json_object_get(root, "graph");
	const char *key, *name;
	json_t *v;
	int rc, forms = 0;

	if (!json_is_object(g))
		return type_error(err, err_len, "graph", "object");
	json_object_foreach(g, key, v)
	{
		if (strcmp(key, "builtin") && strcmp(key, "nodes") && strcmp(key, "backend") &&
		    strcmp(key, "config"))
			return fail(
				err, err_len,
				"graph.%s: unknown key (builtin, nodes, or backend with config)",
				key);
	}
	forms = !!json_object_get(g, "builtin") + !!json_object_get(g, "nodes") +
		!!json_object_get(g, "backend");
	if (forms != 1)
		return fail(err, err_len,
			    "graph: give exactly one of builtin (a built-in model), nodes (a "
			    "node list) or backend (a shared object implementing swarm_backend.h)");
	if (json_object_get(g, "config") && !json_object_get(g, "backend"))
		return fail(err, err_len, "graph.config: only with graph.backend");
	json_t *nodes = json_object_get(g, "nodes");
	if (nodes)
		return parse_nodes(nodes, &m->graph, err, err_len);
	if (json_object_get(g, "backend")) {
		if ((rc = get_name(g, "graph", "backend", sizeof m->graph_backend, &name, err,
				   err_len)))
			return rc;
		memcpy(m->graph_backend, name, strlen(name) + 1);
		json_t *c = json_object_get(g, "config");
		if (c && !json_is_string(c))
			return type_error(err, err_len, "graph.config", "string");
		if (c && strlen(json_string_value(c)) >= sizeof m->graph_config)
			return fail(err, err_len, "graph.config: at most %zu bytes",
				    sizeof m->graph_config - 1);
		if (c)
			memcpy(m->graph_config, json_string_value(c),
			       strlen(json_string_value(c)) + 1);
		return 0;
	}
	if ((rc = get_name(g, "graph", "builtin", SWARM_NAME_MAX, &name, err, err_len)))
		return rc;
	memcpy(m->graph_builtin, name, strlen(name) + 1);
	return 0;
}

static int parse_weight(json_t *obj, const char *path, struct swarm_manifest_weight *w, char *err,
			size_t err_len)
{
	json_t *shape;
	int rc =
		parse_entry(obj, path, SWARM_ST_NAME_MAX, w->name, &w->dtype, &shape, err, err_len);
	if (rc)
		return rc;
	size_t n = json_array_size(shape);
	if (n > SWARM_ST_MAX_DIMS)
		return fail(err, err_len, "%s.shape: must have 0..%d dimensions, not %zu", path,
			    SWARM_ST_MAX_DIMS, n);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(shape, i);
		if (!json_is_integer(d))
			return fail(err, err_len, "%s.shape[%zu]: must be an integer", path, i);
		json_int_t v = json_integer_value(d);
		if (v < 0)
			return fail(err, err_len,
				    "%s.shape[%zu]: must be at least 0, not %" JSON_INTEGER_FORMAT,
				    path, i, v);
		w->shape[i] = v;
	}
	w->ndim = (uint32_t)n;
	return 0;
}

static int parse_weights(json_t *root, struct swarm_manifest *m, char *err, size_t err_len)
{
	json_t *arr = json_object_get(root, "weights");
	if (!json_is_array(arr))
		return type_error(err, err_len, "weights", "array");
	size_t n = json_array_size(arr);
	if (n > SWARM_MANIFEST_MAX_WEIGHTS)
		return fail(err, err_len, "weights: %zu weights, the limit is %d", n,
			    SWARM_MANIFEST_MAX_WEIGHTS);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX_LEN];
		snprintf(path, sizeof path, "weights[%zu]", i);
		int rc = parse_weight(json_array_get(arr, i), path, &m->weights[i], err, err_len);
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->weights[j].name, m->weights[i].name) == 0)
				return fail(err, err_len, "%s.name: \"%s\" appears twice", path,
					    m->weights[i].name);
	}
	m->n_weights = (uint32_t)n;
	return 0;
}

/* deploy.key, when present, into *out: an integer in lo..hi. Absent leaves *out alone. */
static int get_u32(json_t *d, const char *key, uint64_t lo, uint64_t hi, uint32_t *out, char *err,
		   size_t err_len)
{
	json_t *v = json_object_get(d, key);
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return fail(err, err_len, "deploy.%s: must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < lo || (uint64_t)x > hi)
		return fail(err, err_len,
			    "deploy.%s: must be %" PRIu64 "..%" PRIu64
			    ", not %" JSON_INTEGER_FORMAT,
			    key, lo, hi, x);
	*out = (uint32_t)x;
	return 0;
}

static int parse_deploy(json_t *root, struct swarm_deploy_config *c, char *err, size_t err_len)
{
	json_t *d = json_object_get(root, "deploy");
	const char *key;
	json_t *v;
	int rc;

	*c = (struct swarm_deploy_config){
		.max_rows = 1024,
		.max_queue_delay_us = 0,
		.slots = 8,
		.min_devices = 1,
		.max_devices = 1,
		.latency_p99_us = 0,
	};
	if (!d)
		goto defaults;
	if (!json_is_object(d))
		return type_error(err, err_len, "deploy", "object");
	json_object_foreach(d, key, v)
	{
		if (!key_known(key, deploy_keys, sizeof deploy_keys / sizeof *deploy_keys))
			return fail(err, err_len,
				    "deploy.%s: unknown key (max_rows, max_batch, "
				    "max_queue_delay_us, slots, min_devices, max_devices, "
				    "latency_p99_us)",
				    key);
	}
	if ((rc = get_u32(d, "max_rows", 1, 1048576, &c->max_rows, err, err_len)) ||
	    (rc = get_u32(d, "max_batch", 1, SWARM_MAX_BATCH_ROWS, &c->max_batch, err, err_len)) ||
	    (rc = get_u32(d, "max_queue_delay_us", 0, 10000000, &c->max_queue_delay_us, err,
			  err_len)) ||
	    (rc = get_u32(d, "slots", 1, 4096, &c->slots, err, err_len)) ||
	    (rc = get_u32(d, "min_devices", 0, 64, &c->min_devices, err, err_len)) ||
	    (rc = get_u32(d, "max_devices", 1, 64, &c->max_devices, err, err_len)) ||
	    (rc = get_u32(d, "latency_p99_us", 0, UINT32_MAX, &c->latency_p99_us, err, err_len)))
		return rc;
	if (c->max_devices < c->min_devices)
		return fail(err, err_len,
			    "deploy.max_devices: must be at least min_devices (%" PRIu32
			    "), not %" PRIu32,
			    c->min_devices, c->max_devices);
defaults:
	/* max_batch defaults to max_rows, whichever of the two the manifest gave. */
	if (c->max_batch == 0)
		c->max_batch = c->max_rows;
	return 0;
}

static int parse_root(json_t *root, struct swarm_manifest *m, char *err, size_t err_len)
{
	const char *key;
	json_t *v;
	int rc;

	if (!json_is_object(root))
		return fail(err, err_len, "the manifest must be a JSON object");
	json_object_foreach(root, key, v)
	{
		if (!key_known(key, top_keys, sizeof top_keys / sizeof *top_keys))
			return fail(err, err_len,
				    "%s: unknown key (format, inputs, outputs, graph, weights, "
				    "deploy)",
				    key);
	}
	/* Required keys, in the order of the format, so that the first one missing is named. */
	for (size_t i = 0; i < 5; i++)
		if (!json_object_get(root, top_keys[i]))
			return fail(err, err_len, "%s: missing (required)", top_keys[i]);

	json_t *f = json_object_get(root, "format");
	if (!json_is_integer(f))
		return type_error(err, err_len, "format", "integer");
	if (json_integer_value(f) != 1)
		return fail(err, err_len, "format: must be 1, not %" JSON_INTEGER_FORMAT,
			    json_integer_value(f));
	m->format = 1;

	if ((rc = parse_tensors(root, "inputs", m->inputs, &m->n_inputs, err, err_len)) ||
	    (rc = parse_tensors(root, "outputs", m->outputs, &m->n_outputs, err, err_len)) ||
	    (rc = parse_graph(root, m, err, err_len)) ||
	    (rc = parse_weights(root, m, err, err_len)) ||
	    (rc = parse_deploy(root, &m->deploy, err, err_len)))
		return rc;
	/* A node may not produce a declared weight's name: the executor would not know which
	 * the later nodes mean. */
	for (uint32_t k = 0; k < m->graph.n_nodes; k++) {
		const char *out = m->graph.names[m->graph.nodes[k].out];
		for (uint32_t i = 0; i < m->n_weights; i++)
			if (strcmp(m->weights[i].name, out) == 0)
				return fail(err, err_len,
					    "graph.nodes[%" PRIu32
					    "].output: \"%s\" is the name of "
					    "weights[%" PRIu32 "]",
					    k, out, i);
	}
	return 0;
}

void swarm_manifest_graph_desc(const struct swarm_manifest *m, struct swarm_graph_desc *d)
{
	*d = (struct swarm_graph_desc){ .n_inputs = m->n_inputs,
					.n_outputs = m->n_outputs,
					.inputs = m->inputs,
					.outputs = m->outputs,
					.spec = &m->graph };
}

int swarm_manifest_parse(const char *json, size_t len, struct swarm_manifest *m, char *err,
			 size_t err_len)
{
	json_error_t e;
	int rc;

	if (err && err_len > 0)
		err[0] = '\0';
	if (!m)
		return fail(err, err_len, "no manifest to fill");
	memset(m, 0, sizeof *m);
	if (!json)
		return fail(err, err_len, "no manifest text");
	if (len > SWARM_MANIFEST_MAX_BYTES)
		return fail(err, err_len, "the manifest is %zu bytes, the limit is %u", len,
			    SWARM_MANIFEST_MAX_BYTES);

	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
	if (!root)
		return fail(err, err_len, "invalid JSON at line %d, column %d: %s", e.line,
			    e.column, e.text);
	rc = parse_root(root, m, err, err_len);
	json_decref(root);
	/* A refused manifest leaves nothing half-filled behind. */
	if (rc)
		memset(m, 0, sizeof *m);
	return rc;
}

/* "[16, 4]" into buf; "[]" for a scalar. */
static void format_shape(char *buf, size_t len, uint32_t ndim, const int64_t *shape)
{
	size_t off = 0;
	int n = snprintf(buf, len, "[");
	off = n > 0 ? (size_t)n : 0;
	for (uint32_t i = 0; i < ndim && off < len; i++) {
		n = snprintf(buf + off, len - off, "%s%" PRId64, i ? ", " : "", shape[i]);
		if (n < 0)
			return;
		off += (size_t)n;
	}
	if (off < len)
		snprintf(buf + off, len - off, "]");
}

int swarm_manifest_check_weights(const struct swarm_manifest *m, const struct swarm_st_file *st,
				 char *err, size_t err_len)
{
	if (err && err_len > 0)
		err[0] = '\0';
	if (!m || !st)
		return fail(err, err_len, "no manifest or no weights file");
	for (uint32_t i = 0; i < m->n_weights && i < SWARM_MANIFEST_MAX_WEIGHTS; i++) {
		const struct swarm_manifest_weight *w = &m->weights[i];
		const struct swarm_st_tensor *t = swarm_st_find(st, w->name);
		if (!t)
			return fail(err, err_len, "weight \"%s\": not in the weights file",
				    w->name);

		uint32_t t_ndim = t->ndim <= SWARM_ST_MAX_DIMS ? t->ndim : SWARM_ST_MAX_DIMS;
		bool same = swarm_st_to_swarm_dtype(t->dtype) == w->dtype && t->ndim == w->ndim;
		for (uint32_t d = 0; same && d < w->ndim; d++)
			same = t->shape[d] == w->shape[d];
		if (same)
			continue;

		char ms[200], ts[200], tdt[24];
		const char *tname = swarm_st_dtype_name(t->dtype);
		const char *mname = swarm_dtype_name(w->dtype);
		if (!tname) {
			snprintf(tdt, sizeof tdt, "dtype %" PRIu32, t->dtype);
			tname = tdt;
		}
		format_shape(ms, sizeof ms, w->ndim, w->shape);
		format_shape(ts, sizeof ts, t_ndim, t->shape);
		return fail(err, err_len,
			    "weight \"%s\": the manifest says %s %s, the weights file has %s %s",
			    w->name, mname ? mname : "?", ms, tname, ts);
	}
	return 0;
}
