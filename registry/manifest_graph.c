/* manifest_graph.c: a manifest's "graph": a built-in model's name, a node list, or a backend.
 *
 * A node list is parsed node by node: its op, its inputs and output (interned into the
 * graph's name table) and its attributes, one parser per enum swarm_attr bit, each refused on
 * an op that does not take it. Names are only checked for form here; swarm_graph_build
 * resolves them against the inputs, weights and earlier nodes. Every refusal names the path
 * of the field ("graph.nodes[3].axis"), as in manifest.c.
 */
#include "registry/manifest.h"
#include "registry/manifest_parse.h"

#include "kernels/op.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

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
		return manifest_fail(err, err_len,
				     "%s: more than %d distinct tensor names in the graph", path,
				     SWARM_GRAPH_MAX_NAMES);
	memcpy(g->names[g->n_names], name, strlen(name) + 1);
	*out = (uint16_t)g->n_names++;
	return 0;
}

/* A tensor name at arr[i] (or the string v itself, path given): 1..127 bytes. */
static int get_tensor_name(json_t *v, const char *path, const char **out, char *err, size_t err_len)
{
	if (!json_is_string(v))
		return manifest_fail(err, err_len, "%s: must be a string", path);
	size_t len = json_string_length(v);
	if (len == 0)
		return manifest_fail(err, err_len, "%s: must not be empty", path);
	if (len >= SWARM_ST_NAME_MAX)
		return manifest_fail(err, err_len, "%s: %zu bytes long, the limit is %d", path, len,
				     SWARM_ST_NAME_MAX - 1);
	if (strlen(json_string_value(v)) != len)
		return manifest_fail(err, err_len, "%s: must not contain a NUL byte", path);
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
	return manifest_fail(err, err_len, "%s: must be one of %s", path, list);
}

/* A list of min_n..max_n integers in [lo, hi]; *n gets its length. */
static int get_ints(json_t *v, const char *path, uint32_t min_n, uint32_t max_n, int64_t lo,
		    int64_t hi, int64_t *out, uint32_t *n, char *err, size_t err_len)
{
	if (!json_is_array(v) || json_array_size(v) < min_n || json_array_size(v) > max_n)
		return manifest_fail(err, err_len, "%s: must be a list of %u..%u integers", path,
				     min_n, max_n);
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
			return manifest_fail(err, err_len,
					     "%s[%zu]: must be an integer in %lld..%lld", path, i,
					     (long long)lo, (long long)hi);
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
		return manifest_fail(err, err_len, "%s: must be a finite number", path);
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
		return manifest_fail(err, err_len, "%s: must be 0 or 1", path);
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
		return manifest_fail(err, err_len, "%s: must be an activation %s fuses: %s", path,
				     info->name,
				     op == SWARM_OP_LINEAR ?
					     "relu gelu sigmoid tanh" :
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
		return manifest_fail(err, err_len, "%s: must be an integer 1..65536", path);
	p->heads = (uint32_t)json_integer_value(v);
	return 0;
}

ATTR(eps)
{
	(void)op;
	double e = json_is_number(v) ? json_number_value(v) : -1.0;
	/* Positive and a normal float, so that it survives the narrowing. */
	if (!(e >= 1.1754944e-38 && e <= 1.0))
		return manifest_fail(err, err_len, "%s: must be a number in (0, 1]", path);
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
		return manifest_fail(err, err_len, "%s: must be an integer in -%d..%d", path,
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
			return manifest_fail(err, err_len, "%s: must be ascending, with no repeats",
					     path);
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
		return manifest_fail(err, err_len, "%s: must be \"f32\", \"f16\" or \"bf16\"",
				     path);
	p->to = d;
	return 0;
}

ATTR(group)
{
	(void)op;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
		return manifest_fail(err, err_len, "%s: must be an integer 1..65536", path);
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
		return manifest_fail(err, err_len, "%s: must be a list of 2 numbers (H, W)", path);
	for (size_t i = 0; i < 2; i++) {
		double d = json_is_number(json_array_get(v, i)) ?
				   json_number_value(json_array_get(v, i)) :
				   -1;
		if (!(d > 0 && d < 1e6))
			return manifest_fail(err, err_len, "%s[%zu]: must be a number in (0, 1e6)",
					     path, i);
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
			return manifest_fail(
				err, err_len,
				"%s[%u]: only shape[0] may be -1 (the batch dimension)", path, i);
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
		return manifest_fail(err, err_len, "%s: %u values for %d axes", path, n,
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
			return manifest_fail(err, err_len, "%s: a step of 0", path);
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
		return manifest_fail(
			err, err_len,
			"%s: min and alpha (max and beta) are one parameter: give one name", path);
	for (int i = 0; i < SWARM_ATTR_COUNT; i++) {
		uint32_t bit = 1u << i;
		const char *key = swarm_attr_name(bit);
		json_t *v = json_object_get(obj, key);
		snprintf(sub, sizeof sub, "%s.%s", path, key);
		if (!v) {
			if (info->required & bit)
				return manifest_fail(err, err_len, "%s: missing (%s needs it)", sub,
						     info->name);
			continue;
		}
		if (!(info->attrs & bit)) {
			char takes[128];
			attr_list(info->attrs, takes, sizeof takes);
			return manifest_fail(err, err_len,
					     "%s: %s takes no %s (its attributes: %s)", sub,
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
		return manifest_type_error(err, err_len, path, "object");
	json_object_foreach(obj, key, v)
	{
		bool attr = false;
		for (int i = 0; i < SWARM_ATTR_COUNT && !attr; i++)
			attr = strcmp(key, swarm_attr_name(1u << i)) == 0;
		if (!attr &&
		    !manifest_key_known(key, node_keys, sizeof node_keys / sizeof *node_keys)) {
			char all[256];
			attr_list(~0u, all, sizeof all);
			return manifest_fail(
				err, err_len,
				"%s: unknown key \"%s\" (op, inputs, output, or an attribute: %s)",
				path, key, all);
		}
	}

	v = json_object_get(obj, "op");
	if (!v)
		return manifest_fail(err, err_len, "%s.op: missing", path);
	if (!json_is_string(v))
		return manifest_fail(err, err_len, "%s.op: must be a string", path);
	int op = swarm_op_from_name(json_string_value(v));
	if (op < 0 || op >= SWARM_OP_COUNT)
		return manifest_fail(err, err_len,
				     "%s.op: unknown op \"%s\" (docs/graph.md lists them)", path,
				     json_string_value(v));
	n->op = (uint32_t)op;

	json_t *arr = json_object_get(obj, "inputs");
	if (!arr)
		return manifest_fail(err, err_len, "%s.inputs: missing", path);
	if (!json_is_array(arr))
		return manifest_fail(err, err_len, "%s.inputs: must be an array", path);
	const struct swarm_op_info *info = swarm_op_info((uint32_t)op);
	size_t n_in = json_array_size(arr), lo = info->min_in, hi = info->max_in;
	if (n_in < lo || n_in > hi) {
		if (lo == hi)
			return manifest_fail(err, err_len,
					     "%s.inputs: %s takes %zu inputs, not %zu", path,
					     swarm_op_name(n->op), lo, n_in);
		return manifest_fail(err, err_len, "%s.inputs: %s takes %zu..%zu inputs, not %zu",
				     path, swarm_op_name(n->op), lo, hi, n_in);
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
		return manifest_fail(err, err_len, "%s: missing", sub);
	if ((rc = get_tensor_name(v, sub, &name, err, err_len)) ||
	    (rc = intern_name(g, sub, name, &n->out, err, err_len)))
		return rc;
	return parse_node_params(obj, path, n, err, err_len);
}

static int parse_nodes(json_t *arr, struct swarm_graph_spec *g, char *err, size_t err_len)
{
	if (!json_is_array(arr))
		return manifest_type_error(err, err_len, "graph.nodes", "array");
	size_t n = json_array_size(arr);
	if (n == 0)
		return manifest_fail(err, err_len, "graph.nodes: must not be empty");
	if (n > SWARM_GRAPH_MAX_NODES)
		return manifest_fail(err, err_len, "graph.nodes: %zu nodes, the limit is %d", n,
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
int manifest_parse_graph(json_t *root, struct swarm_manifest *m, char *err, size_t err_len)
{
	json_t *g = json_object_get(root, "graph");
	const char *key, *name;
	json_t *v;
	int rc, forms = 0;

	if (!json_is_object(g))
		return manifest_type_error(err, err_len, "graph", "object");
	json_object_foreach(g, key, v)
	{
		if (strcmp(key, "builtin") && strcmp(key, "nodes") && strcmp(key, "backend") &&
		    strcmp(key, "config"))
			return manifest_fail(
				err, err_len,
				"graph.%s: unknown key (builtin, nodes, or backend with config)",
				key);
	}
	forms = !!json_object_get(g, "builtin") + !!json_object_get(g, "nodes") +
		!!json_object_get(g, "backend");
	if (forms != 1)
		return manifest_fail(
			err, err_len,
			"graph: give exactly one of builtin (a built-in model), nodes (a "
			"node list) or backend (a shared object implementing swarm_backend.h)");
	if (json_object_get(g, "config") && !json_object_get(g, "backend"))
		return manifest_fail(err, err_len, "graph.config: only with graph.backend");
	json_t *nodes = json_object_get(g, "nodes");
	if (nodes)
		return parse_nodes(nodes, &m->graph, err, err_len);
	if (json_object_get(g, "backend")) {
		if ((rc = manifest_get_name(g, "graph", "backend", sizeof m->graph_backend, &name,
					    err, err_len)))
			return rc;
		memcpy(m->graph_backend, name, strlen(name) + 1);
		json_t *c = json_object_get(g, "config");
		if (c && !json_is_string(c))
			return manifest_type_error(err, err_len, "graph.config", "string");
		if (c && strlen(json_string_value(c)) >= sizeof m->graph_config)
			return manifest_fail(err, err_len, "graph.config: at most %zu bytes",
					     sizeof m->graph_config - 1);
		if (c)
			memcpy(m->graph_config, json_string_value(c),
			       strlen(json_string_value(c)) + 1);
		return 0;
	}
	if ((rc = manifest_get_name(g, "graph", "builtin", SWARM_NAME_MAX, &name, err, err_len)))
		return rc;
	memcpy(m->graph_builtin, name, strlen(name) + 1);
	return 0;
}
