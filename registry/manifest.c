/* manifest.c: parsing and checking a model version's JSON manifest (format in manifest.h and
 * docs/manifest.md). jansson does the JSON; everything after that is checked here, field by
 * field, and every refusal names the path of the field ("inputs[0].shape[0]") so that the
 * author of a manifest can fix it without reading this file. The graph has its own file,
 * manifest_graph.c; what the two share is in manifest_parse.h.
 */
#include "registry/manifest.h"
#include "registry/manifest_parse.h"

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

static const char *const top_keys[] = {
	"format", "inputs", "outputs", "graph", "weights", "deploy",
};

static const char *const deploy_keys[] = {
	"max_rows",    "max_batch",   "max_queue_delay_us", "slots",
	"min_devices", "max_devices", "latency_p99_us", "device_kind", "devices", "priority",
};

__attribute__((format(printf, 3, 4))) int manifest_fail(char *err, size_t err_len, const char *fmt,
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

int manifest_type_error(char *err, size_t err_len, const char *path, const char *want)
{
	return manifest_fail(err, err_len, "%s: must be %s %s", path, json_type_article(want),
			     want);
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

bool manifest_key_known(const char *key, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* A string member of obj: present, a string, non-empty and shorter than max bytes. */
int manifest_get_name(json_t *obj, const char *path, const char *key, size_t max, const char **out,
		      char *err, size_t err_len)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return manifest_fail(err, err_len, "%s.%s: missing", path, key);
	if (!json_is_string(v))
		return manifest_fail(err, err_len, "%s.%s: must be a string", path, key);
	size_t len = json_string_length(v);
	if (len == 0)
		return manifest_fail(err, err_len, "%s.%s: must not be empty", path, key);
	if (len >= max)
		return manifest_fail(err, err_len, "%s.%s: %zu bytes long, the limit is %zu", path,
				     key, len, max - 1);
	*out = json_string_value(v);
	return 0;
}

static int get_dtype(json_t *obj, const char *path, uint32_t *out, char *err, size_t err_len)
{
	json_t *v = json_object_get(obj, "dtype");
	if (!v)
		return manifest_fail(err, err_len, "%s.dtype: missing", path);
	if (!json_is_string(v))
		return manifest_fail(err, err_len, "%s.dtype: must be a string", path);
	uint32_t d = swarm_dtype_from_name(json_string_value(v));
	if (!d)
		return manifest_fail(
			err, err_len,
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
		if (!manifest_key_known(key, keys, 3))
			return manifest_fail(err, err_len,
					     "%s: unknown key \"%s\" (name, dtype, shape)", path,
					     key);
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
		return manifest_type_error(err, err_len, path, "object");
	if ((rc = check_entry_keys(obj, path, err, err_len)))
		return rc;
	if ((rc = manifest_get_name(obj, path, "name", name_max, &name, err, err_len)))
		return rc;
	memcpy(name_out, name, strlen(name) + 1);
	if ((rc = get_dtype(obj, path, dtype, err, err_len)))
		return rc;
	*shape = json_object_get(obj, "shape");
	if (!*shape)
		return manifest_fail(err, err_len, "%s.shape: missing", path);
	if (!json_is_array(*shape))
		return manifest_fail(err, err_len, "%s.shape: must be an array", path);
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
		return manifest_fail(
			err, err_len,
			"%s.shape: must have 2..%d dimensions (the batch dimension first), "
			"not %zu",
			path, SWARM_MAX_DIMS, n);

	uint64_t row = swarm_dtype_size(t->dtype);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(shape, i);
		if (!json_is_integer(d))
			return manifest_fail(err, err_len, "%s.shape[%zu]: must be an integer",
					     path, i);
		json_int_t v = json_integer_value(d);
		if (i == 0 && v != -1)
			return manifest_fail(
				err, err_len,
				"%s.shape[0]: the batch dimension must be -1, not %" JSON_INTEGER_FORMAT,
				path, v);
		if (i > 0 && v < 1)
			return manifest_fail(
				err, err_len,
				"%s.shape[%zu]: must be at least 1, not %" JSON_INTEGER_FORMAT,
				path, i, v);
		t->shape[i] = v;
		if (i > 0 &&
		    (__builtin_mul_overflow(row, (uint64_t)v, &row) || row > ROW_BYTES_MAX))
			return manifest_fail(
				err, err_len,
				"%s.shape: one row is more than 1 GiB (the limit per row)", path);
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
		return manifest_type_error(err, err_len, key, "array");
	size_t n = json_array_size(arr);
	if (n == 0)
		return manifest_fail(err, err_len, "%s: must not be empty", key);
	if (n > SWARM_MAX_TENSORS)
		return manifest_fail(err, err_len, "%s: %zu tensors, the limit is %d", key, n,
				     SWARM_MAX_TENSORS);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX_LEN];
		snprintf(path, sizeof path, "%s[%zu]", key, i);
		int rc = parse_tensor(json_array_get(arr, i), path, &specs[i], err, err_len);
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(specs[j].name, specs[i].name) == 0)
				return manifest_fail(err, err_len, "%s.name: \"%s\" appears twice",
						     path, specs[i].name);
	}
	*count = (uint32_t)n;
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
		return manifest_fail(err, err_len, "%s.shape: must have 0..%d dimensions, not %zu",
				     path, SWARM_ST_MAX_DIMS, n);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(shape, i);
		if (!json_is_integer(d))
			return manifest_fail(err, err_len, "%s.shape[%zu]: must be an integer",
					     path, i);
		json_int_t v = json_integer_value(d);
		if (v < 0)
			return manifest_fail(
				err, err_len,
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
		return manifest_type_error(err, err_len, "weights", "array");
	size_t n = json_array_size(arr);
	if (n > SWARM_MANIFEST_MAX_WEIGHTS)
		return manifest_fail(err, err_len, "weights: %zu weights, the limit is %d", n,
				     SWARM_MANIFEST_MAX_WEIGHTS);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX_LEN];
		snprintf(path, sizeof path, "weights[%zu]", i);
		int rc = parse_weight(json_array_get(arr, i), path, &m->weights[i], err, err_len);
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->weights[j].name, m->weights[i].name) == 0)
				return manifest_fail(err, err_len, "%s.name: \"%s\" appears twice",
						     path, m->weights[i].name);
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
		return manifest_fail(err, err_len, "deploy.%s: must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < lo || (uint64_t)x > hi)
		return manifest_fail(err, err_len,
				     "deploy.%s: must be %" PRIu64 "..%" PRIu64
				     ", not %" JSON_INTEGER_FORMAT,
				     key, lo, hi, x);
	*out = (uint32_t)x;
	return 0;
}

/* "cpu:N" or "gpu:N", N below 1000000: a device swarmd plans (an instance's "gpu:0/1" is
 * named by its device, "gpu:0"). */
static int device_name_ok(const char *s)
{
	if (strncmp(s, "cpu:", 4) && strncmp(s, "gpu:", 4))
		return 0;
	size_t n = strspn(s + 4, "0123456789");
	return n >= 1 && n <= 6 && s[4 + n] == 0;
}

/* deploy.device_kind, deploy.devices and deploy.priority into p. */
static int parse_placement(json_t *d, struct swarm_placement_config *p, char *err, size_t err_len)
{
	*p = (struct swarm_placement_config){ .kind = SWARM_PLACE_ANY, .priority = 50 };
	if (!d)
		return 0;
	json_t *k = json_object_get(d, "device_kind"), *list = json_object_get(d, "devices"), *v;
	if (k) {
		const char *s = json_is_string(k) ? json_string_value(k) : "";
		if (strcmp(s, "any") && strcmp(s, "cpu") && strcmp(s, "gpu"))
			return manifest_fail(err, err_len,
					     "deploy.device_kind: must be \"any\", \"cpu\" or \"gpu\"");
		p->kind = !strcmp(s, "cpu") ? SWARM_PLACE_CPU :
			  !strcmp(s, "gpu") ? SWARM_PLACE_GPU : SWARM_PLACE_ANY;
	}
	if (list && (!json_is_array(list) || json_array_size(list) == 0 ||
		     json_array_size(list) > SWARM_DEPLOY_MAX_DEVICES))
		return manifest_fail(err, err_len,
				     "deploy.devices: must be a list of 1..%d device names",
				     SWARM_DEPLOY_MAX_DEVICES);
	size_t i;
	json_array_foreach (list, i, v) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (!device_name_ok(s))
			return manifest_fail(err, err_len,
					     "deploy.devices[%zu]: must be a device name such as "
					     "\"cpu:0\" or \"gpu:1\"",
					     i);
		for (uint32_t j = 0; j < p->n_devices; j++)
			if (!strcmp(p->devices[j], s))
				return manifest_fail(err, err_len,
						     "deploy.devices[%zu]: \"%s\" is listed twice", i,
						     s);
		snprintf(p->devices[p->n_devices++], sizeof p->devices[0], "%s", s);
	}
	return get_u32(d, "priority", 0, 100, &p->priority, err, err_len);
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
		return manifest_type_error(err, err_len, "deploy", "object");
	json_object_foreach(d, key, v)
	{
		if (!manifest_key_known(key, deploy_keys, sizeof deploy_keys / sizeof *deploy_keys))
			return manifest_fail(err, err_len,
					     "deploy.%s: unknown key (max_rows, max_batch, "
					     "max_queue_delay_us, slots, min_devices, max_devices, "
					     "latency_p99_us, device_kind, devices, priority)",
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
		return manifest_fail(err, err_len,
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
		return manifest_fail(err, err_len, "the manifest must be a JSON object");
	json_object_foreach(root, key, v)
	{
		if (!manifest_key_known(key, top_keys, sizeof top_keys / sizeof *top_keys))
			return manifest_fail(
				err, err_len,
				"%s: unknown key (format, inputs, outputs, graph, weights, "
				"deploy)",
				key);
	}
	/* Required keys, in the order of the format, so that the first one missing is named. */
	for (size_t i = 0; i < 5; i++)
		if (!json_object_get(root, top_keys[i]))
			return manifest_fail(err, err_len, "%s: missing (required)", top_keys[i]);

	json_t *f = json_object_get(root, "format");
	if (!json_is_integer(f))
		return manifest_type_error(err, err_len, "format", "integer");
	if (json_integer_value(f) != 1)
		return manifest_fail(err, err_len, "format: must be 1, not %" JSON_INTEGER_FORMAT,
				     json_integer_value(f));
	m->format = 1;

	if ((rc = parse_tensors(root, "inputs", m->inputs, &m->n_inputs, err, err_len)) ||
	    (rc = parse_tensors(root, "outputs", m->outputs, &m->n_outputs, err, err_len)) ||
	    (rc = manifest_parse_graph(root, m, err, err_len)) ||
	    (rc = parse_weights(root, m, err, err_len)) ||
	    (rc = parse_deploy(root, &m->deploy, err, err_len)) ||
	    (rc = parse_placement(json_object_get(root, "deploy"), &m->place, err, err_len)))
		return rc;
	/* A node may not produce a declared weight's name: the executor would not know which
	 * the later nodes mean. */
	for (uint32_t k = 0; k < m->graph.n_nodes; k++) {
		const char *out = m->graph.names[m->graph.nodes[k].out];
		for (uint32_t i = 0; i < m->n_weights; i++)
			if (strcmp(m->weights[i].name, out) == 0)
				return manifest_fail(err, err_len,
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
		return manifest_fail(err, err_len, "no manifest to fill");
	memset(m, 0, sizeof *m);
	if (!json)
		return manifest_fail(err, err_len, "no manifest text");
	if (len > SWARM_MANIFEST_MAX_BYTES)
		return manifest_fail(err, err_len, "the manifest is %zu bytes, the limit is %u",
				     len, SWARM_MANIFEST_MAX_BYTES);

	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
	if (!root)
		return manifest_fail(err, err_len, "invalid JSON at line %d, column %d: %s", e.line,
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
		return manifest_fail(err, err_len, "no manifest or no weights file");
	for (uint32_t i = 0; i < m->n_weights && i < SWARM_MANIFEST_MAX_WEIGHTS; i++) {
		const struct swarm_manifest_weight *w = &m->weights[i];
		const struct swarm_st_tensor *t = swarm_st_find(st, w->name);
		if (!t)
			return manifest_fail(err, err_len, "weight \"%s\": not in the weights file",
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
		return manifest_fail(
			err, err_len,
			"weight \"%s\": the manifest says %s %s, the weights file has %s %s",
			w->name, mname ? mname : "?", ms, tname, ts);
	}
	return 0;
}
