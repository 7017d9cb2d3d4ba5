/* test_manifest.c: the manifest parser (registry/manifest.h): a full manifest and its
 * defaults, one test per refusal (each checks -EINVAL and that the message names the field),
 * JSON-level failures, and the check against a weights file. The weights files are built by
 * hand, so that these tests do not depend on the safetensors parser.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/manifest.h"

#define X_IN "{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}"
#define Y_OUT "{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}"
#define W_SCALE "{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [16]}"
#define GRAPH "{\"builtin\": \"affine\"}"

static struct swarm_manifest m;
static char err[512];
static char text[8192];

/* A manifest from its parts; a NULL deploy leaves the key out. */
static const char *build(const char *inputs, const char *outputs, const char *graph,
			 const char *weights, const char *deploy)
{
	int n = snprintf(text, sizeof text,
			 "{\"format\": 1, \"inputs\": %s, \"outputs\": %s, \"graph\": %s, "
			 "\"weights\": %s%s%s}",
			 inputs, outputs, graph, weights, deploy ? ", \"deploy\": " : "",
			 deploy ? deploy : "");
	cr_assert(n > 0 && (size_t)n < sizeof text, "manifest text too long: %d", n);
	return text;
}

static int parse(const char *json)
{
	return swarm_manifest_parse(json, strlen(json), &m, err, sizeof err);
}

static int parse_deploy(const char *deploy)
{
	return parse(build("[" X_IN "]", "[" Y_OUT "]", GRAPH, "[" W_SCALE "]", deploy));
}

static int parse_inputs(const char *inputs)
{
	return parse(build(inputs, "[" Y_OUT "]", GRAPH, "[]", NULL));
}

static int parse_weights(const char *weights)
{
	return parse(build("[" X_IN "]", "[" Y_OUT "]", GRAPH, weights, NULL));
}

/* The parse failed with -EINVAL and a message containing want. */
static void expect_refusal(int rc, const char *want)
{
	cr_assert_eq(rc, -EINVAL, "rc %d, want -EINVAL (err \"%s\")", rc, err);
	cr_assert(strstr(err, want) != NULL, "err \"%s\" does not contain \"%s\"", err, want);
}

Test(registry_manifest, full_manifest_parses_every_field)
{
	const char *json =
		"{\"format\": 1,\n"
		" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]},\n"
		"            {\"name\": \"ids\", \"dtype\": \"i64\", \"shape\": [-1, 3, 5]}],\n"
		" \"outputs\": [{\"name\": \"y\", \"dtype\": \"bf16\", \"shape\": [-1, 7]}],\n"
		" \"graph\": {\"builtin\": \"affine\"},\n"
		" \"weights\": [{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [16]},\n"
		"             {\"name\": \"step\", \"dtype\": \"u8\", \"shape\": []}],\n"
		" \"deploy\": {\"max_rows\": 512, \"max_batch\": 64, \"max_queue_delay_us\": 100,\n"
		"            \"slots\": 16, \"min_devices\": 2, \"max_devices\": 4,\n"
		"            \"latency_p99_us\": 1000}}";
	int rc = parse(json);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.format, 1, "format %u", m.format);

	cr_assert_eq(m.n_inputs, 2, "n_inputs %u", m.n_inputs);
	cr_assert_str_eq(m.inputs[0].name, "x");
	cr_assert_eq(m.inputs[0].dtype, SWARM_DTYPE_F32, "dtype %u", m.inputs[0].dtype);
	cr_assert_eq(m.inputs[0].ndim, 2, "ndim %u", m.inputs[0].ndim);
	cr_assert_eq(m.inputs[0].shape[0], -1, "shape[0] %lld", (long long)m.inputs[0].shape[0]);
	cr_assert_eq(m.inputs[0].shape[1], 16, "shape[1] %lld", (long long)m.inputs[0].shape[1]);
	cr_assert_eq(m.inputs[0].row_bytes, 64, "row_bytes %llu",
		     (unsigned long long)m.inputs[0].row_bytes);
	cr_assert_str_eq(m.inputs[1].name, "ids");
	cr_assert_eq(m.inputs[1].dtype, SWARM_DTYPE_I64, "dtype %u", m.inputs[1].dtype);
	cr_assert_eq(m.inputs[1].ndim, 3, "ndim %u", m.inputs[1].ndim);
	cr_assert_eq(m.inputs[1].shape[2], 5, "shape[2] %lld", (long long)m.inputs[1].shape[2]);
	cr_assert_eq(m.inputs[1].row_bytes, 3 * 5 * 8, "row_bytes %llu",
		     (unsigned long long)m.inputs[1].row_bytes);

	cr_assert_eq(m.n_outputs, 1, "n_outputs %u", m.n_outputs);
	cr_assert_str_eq(m.outputs[0].name, "y");
	cr_assert_eq(m.outputs[0].dtype, SWARM_DTYPE_BF16, "dtype %u", m.outputs[0].dtype);
	cr_assert_eq(m.outputs[0].row_bytes, 14, "row_bytes %llu",
		     (unsigned long long)m.outputs[0].row_bytes);

	cr_assert_str_eq(m.graph_builtin, "affine");

	cr_assert_eq(m.n_weights, 2, "n_weights %u", m.n_weights);
	cr_assert_str_eq(m.weights[0].name, "scale");
	cr_assert_eq(m.weights[0].dtype, SWARM_DTYPE_F32, "dtype %u", m.weights[0].dtype);
	cr_assert_eq(m.weights[0].ndim, 1, "ndim %u", m.weights[0].ndim);
	cr_assert_eq(m.weights[0].shape[0], 16, "shape[0] %lld", (long long)m.weights[0].shape[0]);
	cr_assert_str_eq(m.weights[1].name, "step");
	cr_assert_eq(m.weights[1].dtype, SWARM_DTYPE_U8, "dtype %u", m.weights[1].dtype);
	cr_assert_eq(m.weights[1].ndim, 0, "ndim %u", m.weights[1].ndim);

	cr_assert_eq(m.deploy.max_rows, 512, "max_rows %u", m.deploy.max_rows);
	cr_assert_eq(m.deploy.max_batch, 64, "max_batch %u", m.deploy.max_batch);
	cr_assert_eq(m.deploy.max_queue_delay_us, 100, "delay %u", m.deploy.max_queue_delay_us);
	cr_assert_eq(m.deploy.slots, 16, "slots %u", m.deploy.slots);
	cr_assert_eq(m.deploy.min_devices, 2, "min_devices %u", m.deploy.min_devices);
	cr_assert_eq(m.deploy.max_devices, 4, "max_devices %u", m.deploy.max_devices);
	cr_assert_eq(m.deploy.latency_p99_us, 1000, "p99 %u", m.deploy.latency_p99_us);
}

Test(registry_manifest, parses_without_nul_terminator)
{
	const char *json = build("[" X_IN "]", "[" Y_OUT "]", GRAPH, "[]", NULL);
	size_t len = strlen(json);
	char *copy = malloc(len);
	cr_assert_not_null(copy);
	memcpy(copy, json, len);
	int rc = swarm_manifest_parse(copy, len, &m, err, sizeof err);
	free(copy);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
}

Test(registry_manifest, defaults_when_deploy_absent)
{
	int rc = parse_deploy(NULL);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.deploy.max_rows, 1024, "max_rows %u", m.deploy.max_rows);
	cr_assert_eq(m.deploy.max_batch, 1024, "max_batch %u", m.deploy.max_batch);
	cr_assert_eq(m.deploy.max_queue_delay_us, 0, "delay %u", m.deploy.max_queue_delay_us);
	cr_assert_eq(m.deploy.slots, 8, "slots %u", m.deploy.slots);
	cr_assert_eq(m.deploy.min_devices, 1, "min_devices %u", m.deploy.min_devices);
	cr_assert_eq(m.deploy.max_devices, 1, "max_devices %u", m.deploy.max_devices);
	cr_assert_eq(m.deploy.latency_p99_us, 0, "p99 %u", m.deploy.latency_p99_us);
}

Test(registry_manifest, defaults_fill_a_partial_deploy)
{
	int rc = parse_deploy("{\"max_rows\": 100, \"max_devices\": 3}");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.deploy.max_rows, 100, "max_rows %u", m.deploy.max_rows);
	cr_assert_eq(m.deploy.max_batch, 100, "max_batch %u (default is max_rows)",
		     m.deploy.max_batch);
	cr_assert_eq(m.deploy.slots, 8, "slots %u", m.deploy.slots);
	cr_assert_eq(m.deploy.min_devices, 1, "min_devices %u", m.deploy.min_devices);
	cr_assert_eq(m.deploy.max_devices, 3, "max_devices %u", m.deploy.max_devices);
}

Test(registry_manifest, empty_deploy_gets_defaults)
{
	int rc = parse_deploy("{}");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.deploy.max_rows, 1024, "max_rows %u", m.deploy.max_rows);
	cr_assert_eq(m.deploy.max_batch, 1024, "max_batch %u", m.deploy.max_batch);
}

Test(registry_manifest, dtype_from_name_maps_every_name)
{
	cr_assert_eq(swarm_dtype_from_name("f32"), SWARM_DTYPE_F32);
	cr_assert_eq(swarm_dtype_from_name("f16"), SWARM_DTYPE_F16);
	cr_assert_eq(swarm_dtype_from_name("bf16"), SWARM_DTYPE_BF16);
	cr_assert_eq(swarm_dtype_from_name("i32"), SWARM_DTYPE_I32);
	cr_assert_eq(swarm_dtype_from_name("i64"), SWARM_DTYPE_I64);
	cr_assert_eq(swarm_dtype_from_name("u8"), SWARM_DTYPE_U8);
	cr_assert_eq(swarm_dtype_from_name("F32"), 0);
	cr_assert_eq(swarm_dtype_from_name("f64"), 0);
	cr_assert_eq(swarm_dtype_from_name(""), 0);
	cr_assert_eq(swarm_dtype_from_name(NULL), 0);
}

/* Top level. */

Test(registry_manifest, refuses_unknown_top_level_key)
{
	const char *json = "{\"format\": 1, \"inputz\": []}";
	expect_refusal(parse(json), "inputz: unknown key");
}

Test(registry_manifest, refuses_missing_required_key)
{
	const char *json = "{\"format\": 1, \"inputs\": [" X_IN "], \"outputs\": [" Y_OUT
			   "], \"weights\": []}";
	expect_refusal(parse(json), "graph: missing");
}

Test(registry_manifest, refuses_format_2)
{
	const char *json = "{\"format\": 2, \"inputs\": [" X_IN "], \"outputs\": [" Y_OUT
			   "], \"graph\": " GRAPH ", \"weights\": []}";
	expect_refusal(parse(json), "format: must be 1, not 2");
}

Test(registry_manifest, refuses_format_string)
{
	const char *json = "{\"format\": \"1\", \"inputs\": [" X_IN "], \"outputs\": [" Y_OUT
			   "], \"graph\": " GRAPH ", \"weights\": []}";
	expect_refusal(parse(json), "format: must be an integer");
}

Test(registry_manifest, refuses_non_object_top_level)
{
	expect_refusal(parse("[1, 2]"), "must be a JSON object");
}

Test(registry_manifest, refuses_invalid_json_with_line_and_column)
{
	expect_refusal(parse("{\"format\": 1,\n \"inputs\": [}"), "line 2");
	cr_assert(strstr(err, "column") != NULL, "err \"%s\" has no column", err);
}

Test(registry_manifest, refuses_trailing_garbage)
{
	char json[8192];
	snprintf(json, sizeof json, "%s xyz",
		 build("[" X_IN "]", "[" Y_OUT "]", GRAPH, "[]", NULL));
	expect_refusal(parse(json), "invalid JSON");
}

Test(registry_manifest, refuses_duplicate_keys)
{
	const char *json = "{\"format\": 1, \"format\": 1, \"inputs\": [" X_IN
			   "], \"outputs\": [" Y_OUT "], \"graph\": " GRAPH ", \"weights\": []}";
	expect_refusal(parse(json), "duplicate");
}

Test(registry_manifest, refuses_empty_input)
{
	int rc = swarm_manifest_parse("", 0, &m, err, sizeof err);
	expect_refusal(rc, "invalid JSON");
}

Test(registry_manifest, refuses_2_mib_manifest)
{
	size_t len = 2u << 20;
	char *big = malloc(len);
	cr_assert_not_null(big);
	memset(big, ' ', len);
	const char *json = build("[" X_IN "]", "[" Y_OUT "]", GRAPH, "[]", NULL);
	memcpy(big, json, strlen(json));
	int rc = swarm_manifest_parse(big, len, &m, err, sizeof err);
	free(big);
	expect_refusal(rc, "the limit is 1048576");
}

Test(registry_manifest, refusal_leaves_manifest_zeroed)
{
	int rc = parse_deploy("{\"slots\": 0}");
	cr_assert_eq(rc, -EINVAL, "rc %d", rc);
	cr_assert_eq(m.n_inputs, 0, "n_inputs %u after a refusal", m.n_inputs);
	cr_assert_eq(m.format, 0, "format %u after a refusal", m.format);
}

/* inputs and outputs. */

Test(registry_manifest, refuses_inputs_not_array)
{
	expect_refusal(parse_inputs("{}"), "inputs: must be an array");
}

Test(registry_manifest, refuses_empty_inputs)
{
	expect_refusal(parse_inputs("[]"), "inputs: must not be empty");
}

Test(registry_manifest, refuses_empty_outputs)
{
	expect_refusal(parse(build("[" X_IN "]", "[]", GRAPH, "[]", NULL)),
		       "outputs: must not be empty");
}

Test(registry_manifest, refuses_too_many_inputs)
{
	char inputs[4096] = "[";
	for (int i = 0; i <= SWARM_MAX_TENSORS; i++) {
		char one[128];
		snprintf(one, sizeof one,
			 "%s{\"name\": \"x%d\", \"dtype\": \"f32\", \"shape\": [-1, 1]}",
			 i ? ", " : "", i);
		strcat(inputs, one);
	}
	strcat(inputs, "]");
	expect_refusal(parse_inputs(inputs), "inputs: 9 tensors, the limit is 8");
}

Test(registry_manifest, refuses_input_not_object)
{
	expect_refusal(parse_inputs("[\"x\"]"), "inputs[0]: must be an object");
}

Test(registry_manifest, refuses_unknown_tensor_key)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 1], "
				    "\"layout\": \"nchw\"}]"),
		       "inputs[0]: unknown key \"layout\"");
}

Test(registry_manifest, refuses_input_without_name)
{
	expect_refusal(parse_inputs("[{\"dtype\": \"f32\", \"shape\": [-1, 1]}]"),
		       "inputs[0].name: missing");
}

Test(registry_manifest, refuses_empty_input_name)
{
	expect_refusal(parse_inputs("[{\"name\": \"\", \"dtype\": \"f32\", \"shape\": [-1, 1]}]"),
		       "inputs[0].name: must not be empty");
}

Test(registry_manifest, refuses_input_name_not_string)
{
	expect_refusal(parse_inputs("[{\"name\": 7, \"dtype\": \"f32\", \"shape\": [-1, 1]}]"),
		       "inputs[0].name: must be a string");
}

Test(registry_manifest, refuses_input_name_too_long)
{
	char name[SWARM_NAME_MAX + 1];
	memset(name, 'a', SWARM_NAME_MAX);
	name[SWARM_NAME_MAX] = '\0';
	char inputs[256];
	snprintf(inputs, sizeof inputs,
		 "[{\"name\": \"%s\", \"dtype\": \"f32\", \"shape\": [-1, 1]}]", name);
	expect_refusal(parse_inputs(inputs), "inputs[0].name: 48 bytes long, the limit is 47");
}

Test(registry_manifest, accepts_input_name_of_47_bytes)
{
	char name[SWARM_NAME_MAX];
	memset(name, 'a', SWARM_NAME_MAX - 1);
	name[SWARM_NAME_MAX - 1] = '\0';
	char inputs[256];
	snprintf(inputs, sizeof inputs,
		 "[{\"name\": \"%s\", \"dtype\": \"f32\", \"shape\": [-1, 1]}]", name);
	int rc = parse_inputs(inputs);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_str_eq(m.inputs[0].name, name);
}

Test(registry_manifest, refuses_duplicate_input_name)
{
	expect_refusal(parse_inputs("[" X_IN ", " X_IN "]"), "inputs[1].name: \"x\" appears twice");
}

Test(registry_manifest, allows_same_name_in_inputs_and_outputs)
{
	int rc = parse(build("[" X_IN "]", "[" X_IN "]", GRAPH, "[]", NULL));
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
}

Test(registry_manifest, refuses_duplicate_output_name)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT ", " Y_OUT "]", GRAPH, "[]", NULL)),
		       "outputs[1].name: \"y\" appears twice");
}

Test(registry_manifest, refuses_unknown_dtype)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f64\", \"shape\": [-1, 1]}]"),
		       "inputs[0].dtype: unknown dtype \"f64\"");
}

Test(registry_manifest, refuses_dtype_not_string)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": 1, \"shape\": [-1, 1]}]"),
		       "inputs[0].dtype: must be a string");
}

Test(registry_manifest, refuses_shape_not_array)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": 16}]"),
		       "inputs[0].shape: must be an array");
}

Test(registry_manifest, refuses_shape_of_one_dimension)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1]}]"),
		       "inputs[0].shape: must have 2..6 dimensions");
}

Test(registry_manifest, refuses_shape_of_seven_dimensions)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", "
				    "\"shape\": [-1, 1, 1, 1, 1, 1, 1]}]"),
		       "not 7");
}

Test(registry_manifest, refuses_batch_dimension_not_minus_one)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [4, 16]}]"),
		       "inputs[0].shape[0]: the batch dimension must be -1, not 4");
}

Test(registry_manifest, refuses_zero_dimension)
{
	expect_refusal(parse(build("[" X_IN "]",
				   "[{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 0]}]",
				   GRAPH, "[]", NULL)),
		       "outputs[0].shape[1]: must be at least 1, not 0");
}

Test(registry_manifest, refuses_dimension_not_integer)
{
	expect_refusal(
		parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 1.5]}]"),
		"inputs[0].shape[1]: must be an integer");
}

Test(registry_manifest, refuses_row_over_1_gib)
{
	/* 2^28 f32 elements are exactly 1 GiB, which is allowed; one more element is not. */
	int rc =
		parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 268435456]}]");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.inputs[0].row_bytes, 1ull << 30, "row_bytes %llu",
		     (unsigned long long)m.inputs[0].row_bytes);
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"f32\", "
				    "\"shape\": [-1, 268435457]}]"),
		       "inputs[0].shape: one row is more than 1 GiB");
}

Test(registry_manifest, refuses_row_size_overflow)
{
	expect_refusal(parse_inputs("[{\"name\": \"x\", \"dtype\": \"i64\", \"shape\": "
				    "[-1, 4611686018427387904, 4611686018427387904]}]"),
		       "inputs[0].shape: one row is more than 1 GiB");
}

/* graph. */

Test(registry_manifest, refuses_graph_not_object)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", "\"affine\"", "[]", NULL)),
		       "graph: must be an object");
}

Test(registry_manifest, refuses_graph_empty_node_list)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", "{\"nodes\": []}", "[]", NULL)),
		       "graph.nodes: must not be empty");
}

/* graph.nodes: the node-list form. */

static int parse_nodes(const char *nodes)
{
	char graph[4096];
	int n = snprintf(graph, sizeof graph, "{\"nodes\": [%s]}", nodes);
	cr_assert(n > 0 && (size_t)n < sizeof graph, "node list too long: %d", n);
	return parse(build("[" X_IN "]", "[" Y_OUT "]", graph, "[]", NULL));
}

#define NODE_OK "{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\"}"

Test(registry_manifest, node_list_parses_every_field)
{
	int rc = parse_nodes(
		"{\"op\": \"linear\", \"inputs\": [\"x\", \"w1\", \"b1\"], \"output\": \"h1\", "
		"\"act\": \"relu\"},"
		"{\"op\": \"embedding_bag\", \"inputs\": [\"table0\", \"ids0\"], \"output\": \"e0\", "
		"\"mode\": \"mean\"},"
		"{\"op\": \"attention\", \"inputs\": [\"q\", \"k\", \"v\", \"mask\"], \"output\": "
		"\"a\", \"heads\": 12},"
		"{\"op\": \"layernorm\", \"inputs\": [\"a\", \"g\", \"b\"], \"output\": \"y\", "
		"\"eps\": 1e-12},"
		"{\"op\": \"linear\", \"inputs\": [\"h1\", \"w1\"], \"output\": \"h2\"}");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_str_eq(m.graph_builtin, "", "graph_builtin \"%s\"", m.graph_builtin);
	const struct swarm_graph_spec *g = &m.graph;
	cr_assert_eq(g->n_nodes, 5);

	const struct swarm_graph_node_spec *n = &g->nodes[0];
	cr_assert_eq(n->op, SWARM_OP_LINEAR);
	cr_assert_eq(n->n_in, 3);
	cr_assert_str_eq(g->names[n->in[0]], "x");
	cr_assert_str_eq(g->names[n->in[1]], "w1");
	cr_assert_str_eq(g->names[n->in[2]], "b1");
	cr_assert_str_eq(g->names[n->out], "h1");
	cr_assert_eq(n->p.act, SWARM_OP_RELU);

	n = &g->nodes[1];
	cr_assert_eq(n->op, SWARM_OP_EMBEDDING_BAG);
	cr_assert_eq(n->p.bag_mode, SWARM_BAG_MEAN);
	cr_assert_str_eq(g->names[n->in[0]], "table0");

	n = &g->nodes[2];
	cr_assert_eq(n->op, SWARM_OP_ATTENTION);
	cr_assert_eq(n->n_in, 4);
	cr_assert_eq(n->p.heads, 12);

	n = &g->nodes[3];
	cr_assert_eq(n->op, SWARM_OP_LAYERNORM);
	cr_assert_float_eq(n->p.eps, 1e-12f, 1e-18f, "eps %g", (double)n->p.eps);
	cr_assert_eq(n->p.act, SWARM_OP_IDENTITY);

	/* Names are interned: the same name is the same index. */
	cr_assert_eq(g->nodes[4].in[0], g->nodes[0].out);
	cr_assert_eq(g->nodes[4].in[1], g->nodes[0].in[1]);
	cr_assert_eq(g->nodes[4].p.act, SWARM_OP_IDENTITY);
	cr_assert_eq(g->nodes[1].p.bag_mode, SWARM_BAG_MEAN);
	cr_assert_eq(g->nodes[4].n_in, 2);
}

Test(registry_manifest, node_list_defaults)
{
	int rc = parse_nodes("{\"op\": \"embedding_bag\", \"inputs\": [\"t\", \"ids\"], "
			     "\"output\": \"y\"}");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.graph.nodes[0].p.bag_mode, SWARM_BAG_SUM);
	cr_assert_eq(m.graph.nodes[0].p.act, SWARM_OP_IDENTITY);
	cr_assert_eq(m.graph.nodes[0].p.eps, 0.0f);
}

Test(registry_manifest, node_output_named_like_a_weight_is_refused)
{
	const char *graph = "{\"nodes\": [{\"op\": \"relu\", \"inputs\": [\"x\"], "
			    "\"output\": \"scale\"}, " NODE_OK "]}";
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", graph, "[" W_SCALE "]", NULL)),
		       "graph.nodes[0].output: \"scale\" is the name of weights[0]");
}

Test(registry_manifest, graph_desc_views_the_node_list)
{
	int rc = parse_nodes(NODE_OK);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	struct swarm_graph_desc d;
	swarm_manifest_graph_desc(&m, &d);
	cr_assert_eq(d.n_inputs, 1);
	cr_assert_eq(d.n_outputs, 1);
	cr_assert_eq(d.inputs, m.inputs);
	cr_assert_eq(d.outputs, m.outputs);
	cr_assert_eq(d.spec, &m.graph);
}

Test(registry_manifest, builtin_form_has_no_nodes)
{
	int rc = parse(build("[" X_IN "]", "[" Y_OUT "]", GRAPH, "[]", NULL));
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.graph.n_nodes, 0);
	cr_assert_str_eq(m.graph_builtin, "affine");
}

Test(registry_manifest, refuses_graph_builtin_and_nodes)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]",
				   "{\"builtin\": \"affine\", \"nodes\": [" NODE_OK "]}", "[]",
				   NULL)),
		       "graph: give exactly one of builtin");
}

Test(registry_manifest, refuses_graph_unknown_key)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", "{\"node\": []}", "[]", NULL)),
		       "graph.node: unknown key (builtin, nodes, or backend with config)");
}

Test(registry_manifest, refuses_nodes_not_array)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", "{\"nodes\": {}}", "[]", NULL)),
		       "graph.nodes: must be an array");
}

Test(registry_manifest, refuses_too_many_nodes)
{
	static char json[(SWARM_GRAPH_MAX_NODES + 8) * 64];
	int off = snprintf(json, sizeof json,
			   "{\"format\": 1, \"inputs\": [" X_IN "], \"outputs\": [" Y_OUT "], "
			   "\"weights\": [], \"graph\": {\"nodes\": [");
	for (int i = 0; i < SWARM_GRAPH_MAX_NODES + 1; i++)
		off += snprintf(json + off, sizeof json - (size_t)off, "%s" NODE_OK, i ? "," : "");
	snprintf(json + off, sizeof json - (size_t)off, "]}}");
	char want[64];
	snprintf(want, sizeof want, "graph.nodes: %d nodes, the limit is %d",
		 SWARM_GRAPH_MAX_NODES + 1, SWARM_GRAPH_MAX_NODES);
	expect_refusal(parse(json), want);
}

Test(registry_manifest, refuses_too_many_distinct_names)
{
	/* Nine new names per node (eight inputs, one output): the name past the limit is the
	 * (limit % 9)th name of node limit / 9, its input (limit % 9) - 1. */
	static char json[1024 * 1024];
	const int nodes = SWARM_GRAPH_MAX_NAMES / 9 + 2;
	int off = snprintf(json, sizeof json,
			   "{\"format\": 1, \"inputs\": [" X_IN "], \"outputs\": [" Y_OUT "], "
			   "\"weights\": [], \"graph\": {\"nodes\": [");
	for (int i = 0; i < nodes; i++) {
		off += snprintf(json + off, sizeof json - (size_t)off,
				"%s{\"op\": \"concat\", \"inputs\": [", i ? "," : "");
		for (int j = 0; j < 8; j++)
			off += snprintf(json + off, sizeof json - (size_t)off, "%s\"n%d_%d\"",
					j ? "," : "", i, j);
		off += snprintf(json + off, sizeof json - (size_t)off, "], \"output\": \"o%d\"}",
				i);
	}
	snprintf(json + off, sizeof json - (size_t)off, "]}}");
	char want[96];
	const int k = SWARM_GRAPH_MAX_NAMES / 9, at = SWARM_GRAPH_MAX_NAMES % 9;
	if (at < 8)
		snprintf(want, sizeof want, "graph.nodes[%d].inputs[%d]: more than %d distinct", k,
			 at, SWARM_GRAPH_MAX_NAMES);
	else
		snprintf(want, sizeof want, "graph.nodes[%d].output: more than %d distinct", k,
			 SWARM_GRAPH_MAX_NAMES);
	expect_refusal(parse(json), want);
}

Test(registry_manifest, refuses_node_not_object)
{
	expect_refusal(parse_nodes(NODE_OK ", 3"), "graph.nodes[1]: must be an object");
}

Test(registry_manifest, refuses_node_unknown_key)
{
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"activation\": \"relu\"}"),
		       "graph.nodes[0]: unknown key \"activation\"");
}

Test(registry_manifest, refuses_node_without_op)
{
	expect_refusal(parse_nodes("{\"inputs\": [\"x\"], \"output\": \"y\"}"),
		       "graph.nodes[0].op: missing");
}

Test(registry_manifest, refuses_node_unknown_op)
{
	expect_refusal(parse_nodes(NODE_OK ", {\"op\": \"conv9d\", \"inputs\": [\"x\"], "
					   "\"output\": \"z\"}"),
		       "graph.nodes[1].op: unknown op \"conv9d\"");
}

Test(registry_manifest, refuses_node_wrong_input_count)
{
	expect_refusal(parse_nodes("{\"op\": \"linear\", \"inputs\": [\"x\"], \"output\": \"y\"}"),
		       "graph.nodes[0].inputs: linear takes 2..3 inputs, not 1");
	expect_refusal(parse_nodes("{\"op\": \"layernorm\", \"inputs\": [\"x\", \"g\"], "
				   "\"output\": \"y\"}"),
		       "graph.nodes[0].inputs: layernorm takes 3 inputs, not 2");
	expect_refusal(parse_nodes("{\"op\": \"concat\", \"inputs\": [], \"output\": \"y\"}"),
		       "graph.nodes[0].inputs: concat takes 1..8 inputs, not 0");
}

Test(registry_manifest, refuses_node_input_not_string)
{
	expect_refusal(parse_nodes(NODE_OK ", {\"op\": \"add\", \"inputs\": [\"x\", 7], "
					   "\"output\": \"z\"}"),
		       "graph.nodes[1].inputs[1]: must be a string");
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": \"x\", \"output\": \"y\"}"),
		       "graph.nodes[0].inputs: must be an array");
}

Test(registry_manifest, refuses_node_empty_or_long_name)
{
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"\"], \"output\": \"y\"}"),
		       "graph.nodes[0].inputs[0]: must not be empty");
	char node[512];
	snprintf(node, sizeof node,
		 "{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"%0128d\"}", 0);
	expect_refusal(parse_nodes(node),
		       "graph.nodes[0].output: 128 bytes long, the limit is 127");
}

Test(registry_manifest, refuses_node_without_output)
{
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"x\"]}"),
		       "graph.nodes[0].output: missing");
}

Test(registry_manifest, refuses_node_param_on_wrong_op)
{
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"act\": \"relu\"}"),
		       "graph.nodes[0].act: relu takes no act (its attributes: none)");
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"heads\": 2}"),
		       "graph.nodes[0].heads: relu takes no heads");
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"mode\": \"sum\"}"),
		       "graph.nodes[0].mode: relu takes no mode");
	expect_refusal(parse_nodes("{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"eps\": 0.1}"),
		       "graph.nodes[0].eps: relu takes no eps");
	expect_refusal(parse_nodes("{\"op\": \"attention\", \"inputs\": [\"q\", \"k\", \"v\"], "
				   "\"output\": \"y\", \"heads\": 2, \"eps\": 0.1}"),
		       "graph.nodes[0].eps: attention takes no eps (its attributes: heads)");
}

Test(registry_manifest, refuses_node_bad_param_values)
{
	expect_refusal(parse_nodes("{\"op\": \"linear\", \"inputs\": [\"x\", \"w\"], \"output\": "
				   "\"y\", \"act\": \"softmax\"}"),
		       "graph.nodes[0].act: must be an activation linear fuses: relu gelu sigmoid "
		       "tanh");
	expect_refusal(parse_nodes("{\"op\": \"embedding_bag\", \"inputs\": [\"t\", \"i\"], "
				   "\"output\": \"y\", \"mode\": \"max\"}"),
		       "graph.nodes[0].mode: must be one of \"sum\", \"mean\"");
	expect_refusal(parse_nodes("{\"op\": \"attention\", \"inputs\": [\"q\", \"k\", \"v\"], "
				   "\"output\": \"y\"}"),
		       "graph.nodes[0].heads: missing");
	expect_refusal(parse_nodes("{\"op\": \"attention\", \"inputs\": [\"q\", \"k\", \"v\"], "
				   "\"output\": \"y\", \"heads\": 0}"),
		       "graph.nodes[0].heads: must be an integer 1..65536");
	expect_refusal(parse_nodes("{\"op\": \"l2norm\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"eps\": -1}"),
		       "graph.nodes[0].eps: must be a number in (0, 1]");
	expect_refusal(parse_nodes("{\"op\": \"l2norm\", \"inputs\": [\"x\"], \"output\": \"y\", "
				   "\"eps\": \"small\"}"),
		       "graph.nodes[0].eps: must be a number in (0, 1]");
}

Test(registry_manifest, refuses_graph_without_builtin)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", "{}", "[]", NULL)),
		       "graph: give exactly one of builtin");
}

Test(registry_manifest, refuses_graph_builtin_not_string)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]", "{\"builtin\": 3}", "[]", NULL)),
		       "graph.builtin: must be a string");
}

/* weights. */

Test(registry_manifest, accepts_empty_weights)
{
	int rc = parse_weights("[]");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.n_weights, 0, "n_weights %u", m.n_weights);
}

Test(registry_manifest, refuses_weights_not_array)
{
	expect_refusal(parse_weights("{}"), "weights: must be an array");
}

Test(registry_manifest, refuses_too_many_weights)
{
	static char weights[1 << 18];
	strcpy(weights, "[");
	for (int i = 0; i <= SWARM_MANIFEST_MAX_WEIGHTS; i++) {
		char one[128];
		snprintf(one, sizeof one,
			 "%s{\"name\": \"w%d\", \"dtype\": \"f32\", \"shape\": [1]}", i ? ", " : "",
			 i);
		strcat(weights, one);
	}
	strcat(weights, "]");
	/* build() has a fixed buffer; this manifest is written whole. */
	static char json[(1 << 18) + 4096];
	snprintf(json, sizeof json,
		 "{\"format\": 1, \"inputs\": [" X_IN "], \"outputs\": [" Y_OUT
		 "], \"graph\": " GRAPH ", \"weights\": %s}",
		 weights);
	char want[64];
	snprintf(want, sizeof want, "weights: %d weights, the limit is %d",
		 SWARM_MANIFEST_MAX_WEIGHTS + 1, SWARM_MANIFEST_MAX_WEIGHTS);
	expect_refusal(parse(json), want);
}

Test(registry_manifest, refuses_duplicate_weight_name)
{
	expect_refusal(parse_weights("[{\"name\": \"a\", \"dtype\": \"f32\", \"shape\": [1]}, "
				     "{\"name\": \"b\", \"dtype\": \"f32\", \"shape\": [1]}, "
				     "{\"name\": \"a\", \"dtype\": \"f32\", \"shape\": [1]}]"),
		       "weights[2].name: \"a\" appears twice");
}

Test(registry_manifest, refuses_empty_weight_name)
{
	expect_refusal(parse_weights("[{\"name\": \"\", \"dtype\": \"f32\", \"shape\": [1]}]"),
		       "weights[0].name: must not be empty");
}

Test(registry_manifest, refuses_weight_name_too_long)
{
	char name[SWARM_ST_NAME_MAX + 1];
	memset(name, 'w', SWARM_ST_NAME_MAX);
	name[SWARM_ST_NAME_MAX] = '\0';
	char weights[512];
	snprintf(weights, sizeof weights,
		 "[{\"name\": \"%s\", \"dtype\": \"f32\", \"shape\": [1]}]", name);
	expect_refusal(parse_weights(weights), "weights[0].name: 128 bytes long, the limit is 127");
}

Test(registry_manifest, refuses_weight_unknown_dtype)
{
	expect_refusal(parse_weights("[{\"name\": \"w\", \"dtype\": \"F32\", \"shape\": [1]}]"),
		       "weights[0].dtype: unknown dtype \"F32\"");
}

Test(registry_manifest, refuses_weight_negative_dimension)
{
	expect_refusal(parse_weights("[{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [2, -1]}]"),
		       "weights[0].shape[1]: must be at least 0, not -1");
}

Test(registry_manifest, refuses_weight_of_nine_dimensions)
{
	expect_refusal(parse_weights("[{\"name\": \"w\", \"dtype\": \"f32\", "
				     "\"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 1]}]"),
		       "weights[0].shape: must have 0..8 dimensions, not 9");
}

Test(registry_manifest, accepts_weight_with_zero_dimension)
{
	int rc = parse_weights("[{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [0, 3]}]");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_eq(m.weights[0].shape[0], 0, "shape[0] %lld", (long long)m.weights[0].shape[0]);
}

/* deploy. */

Test(registry_manifest, refuses_deploy_not_object)
{
	expect_refusal(parse_deploy("[]"), "deploy: must be an object");
}

Test(registry_manifest, refuses_unknown_deploy_key)
{
	expect_refusal(parse_deploy("{\"replicas\": 2}"), "deploy.replicas: unknown key");
}

Test(registry_manifest, placement_defaults_and_every_field)
{
	cr_assert_eq(parse_deploy(NULL), 0, "%s", err);
	cr_assert(m.place.kind == SWARM_PLACE_ANY && m.place.priority == 50 &&
			  m.place.n_devices == 0,
		  "defaults: kind %u priority %u devices %u", m.place.kind, m.place.priority,
		  m.place.n_devices);
	int rc = parse_deploy("{\"device_kind\": \"gpu\", \"devices\": [\"gpu:1\", \"gpu:0\"], "
			      "\"priority\": 90}");
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(m.place.kind, SWARM_PLACE_GPU);
	cr_assert_eq(m.place.priority, 90);
	cr_assert_eq(m.place.n_devices, 2);
	cr_assert_str_eq(m.place.devices[0], "gpu:1");
	cr_assert_str_eq(m.place.devices[1], "gpu:0");
	cr_assert_eq(parse_deploy("{\"device_kind\": \"cpu\", \"priority\": 0}"), 0, "%s", err);
	cr_assert(m.place.kind == SWARM_PLACE_CPU && m.place.priority == 0);
}

Test(registry_manifest, refuses_bad_placement)
{
	expect_refusal(parse_deploy("{\"device_kind\": \"tpu\"}"),
		       "deploy.device_kind: must be \"any\", \"cpu\" or \"gpu\"");
	expect_refusal(parse_deploy("{\"device_kind\": 1}"), "deploy.device_kind");
	expect_refusal(parse_deploy("{\"devices\": []}"),
		       "deploy.devices: must be a list of 1..16");
	expect_refusal(parse_deploy("{\"devices\": \"cpu:0\"}"), "deploy.devices: must be a list");
	expect_refusal(parse_deploy("{\"devices\": [\"cpu0\"]}"),
		       "deploy.devices[0]: must be a device");
	expect_refusal(parse_deploy("{\"devices\": [\"cpu:0\", \"cpu:\"]}"), "deploy.devices[1]");
	expect_refusal(parse_deploy("{\"devices\": [\"gpu:0/1\"]}"), "deploy.devices[0]");
	expect_refusal(parse_deploy("{\"devices\": [3]}"), "deploy.devices[0]");
	expect_refusal(parse_deploy("{\"devices\": [\"cpu:1\", \"cpu:1\"]}"),
		       "deploy.devices[1]: \"cpu:1\" is listed twice");
	char many[1024] = "{\"devices\": [";
	for (int i = 0; i < 17; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"cpu:%d\"",
			 i ? ", " : "", i);
	strcat(many, "]}");
	expect_refusal(parse_deploy(many), "deploy.devices: must be a list of 1..16");
	expect_refusal(parse_deploy("{\"priority\": 101}"), "deploy.priority: must be 0..100");
	expect_refusal(parse_deploy("{\"priority\": -1}"), "deploy.priority");
}

Test(registry_manifest, refuses_zero_slots)
{
	expect_refusal(parse_deploy("{\"slots\": 0}"), "deploy.slots: must be 1..4096, not 0");
}

Test(registry_manifest, refuses_4097_slots)
{
	expect_refusal(parse_deploy("{\"slots\": 4097}"),
		       "deploy.slots: must be 1..4096, not 4097");
}

Test(registry_manifest, refuses_zero_max_rows)
{
	expect_refusal(parse_deploy("{\"max_rows\": 0}"),
		       "deploy.max_rows: must be 1..1048576, not 0");
}

Test(registry_manifest, refuses_max_rows_over_limit)
{
	expect_refusal(parse_deploy("{\"max_rows\": 1048577}"),
		       "deploy.max_rows: must be 1..1048576, not 1048577");
}

Test(registry_manifest, refuses_zero_max_batch)
{
	expect_refusal(parse_deploy("{\"max_batch\": 0}"), "deploy.max_batch: must be 1..");
}

Test(registry_manifest, refuses_queue_delay_over_10_s)
{
	expect_refusal(parse_deploy("{\"max_queue_delay_us\": 10000001}"),
		       "deploy.max_queue_delay_us: must be 0..10000000, not 10000001");
}

/* min_devices 0: the autoscaler may park every device of an idle model. */
Test(registry_manifest, accepts_zero_min_devices)
{
	int rc = parse_deploy("{\"min_devices\": 0, \"max_devices\": 4}");
	cr_assert_eq(rc, 0, "min_devices 0 refused: %s", err);
	cr_assert_eq(m.deploy.min_devices, 0, "min_devices %u", m.deploy.min_devices);
	cr_assert_eq(m.deploy.max_devices, 4, "max_devices %u", m.deploy.max_devices);
}

Test(registry_manifest, refuses_max_devices_below_min_devices)
{
	expect_refusal(parse_deploy("{\"min_devices\": 3, \"max_devices\": 2}"),
		       "deploy.max_devices: must be at least min_devices (3), not 2");
}

Test(registry_manifest, refuses_max_devices_over_64)
{
	expect_refusal(parse_deploy("{\"max_devices\": 65}"),
		       "deploy.max_devices: must be 1..64, not 65");
}

Test(registry_manifest, refuses_negative_deploy_value)
{
	expect_refusal(parse_deploy("{\"latency_p99_us\": -1}"),
		       "deploy.latency_p99_us: must be 0..");
}

Test(registry_manifest, refuses_latency_over_u32)
{
	expect_refusal(parse_deploy("{\"latency_p99_us\": 4294967296}"),
		       "deploy.latency_p99_us: must be 0..4294967295, not 4294967296");
}

Test(registry_manifest, refuses_deploy_value_not_integer)
{
	expect_refusal(parse_deploy("{\"slots\": \"8\"}"), "deploy.slots: must be an integer");
}

/* check_weights, against weights files built by hand. */

static struct swarm_st_tensor st_tensors[2];
static struct swarm_st_file st;

static void make_st(void)
{
	memset(st_tensors, 0, sizeof st_tensors);
	strcpy(st_tensors[0].name, "scale");
	st_tensors[0].dtype = SWARM_ST_F32;
	st_tensors[0].ndim = 1;
	st_tensors[0].shape[0] = 16;
	strcpy(st_tensors[1].name, "bias");
	st_tensors[1].dtype = SWARM_ST_F32;
	st_tensors[1].ndim = 1;
	st_tensors[1].shape[0] = 16;
	st = (struct swarm_st_file){ .n_tensors = 2, .tensors = st_tensors };
}

static int check(const char *weights)
{
	int rc = parse_weights(weights);
	cr_assert_eq(rc, 0, "parse rc %d: %s", rc, err);
	make_st();
	return swarm_manifest_check_weights(&m, &st, err, sizeof err);
}

Test(registry_manifest, check_weights_accepts_matching_file)
{
	int rc = check("[{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [16]}, "
		       "{\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": [16]}]");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
}

Test(registry_manifest, check_weights_accepts_file_with_extra_tensors)
{
	int rc = check("[{\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": [16]}]");
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
}

Test(registry_manifest, check_weights_refuses_missing_weight)
{
	expect_refusal(check("[{\"name\": \"gamma\", \"dtype\": \"f32\", \"shape\": [16]}]"),
		       "weight \"gamma\": not in the weights file");
}

Test(registry_manifest, check_weights_refuses_dtype_mismatch)
{
	expect_refusal(
		check("[{\"name\": \"scale\", \"dtype\": \"f16\", \"shape\": [16]}]"),
		"weight \"scale\": the manifest says f16 [16], the weights file has F32 [16]");
}

Test(registry_manifest, check_weights_refuses_shape_mismatch)
{
	expect_refusal(
		check("[{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [8]}]"),
		"weight \"scale\": the manifest says f32 [8], the weights file has F32 [16]");
}

Test(registry_manifest, check_weights_refuses_ndim_mismatch)
{
	expect_refusal(
		check("[{\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": [4, 4]}]"),
		"weight \"bias\": the manifest says f32 [4, 4], the weights file has F32 [16]");
}

Test(registry_manifest, check_weights_refuses_scalar_against_vector)
{
	expect_refusal(check("[{\"name\": \"bias\", \"dtype\": \"f32\", \"shape\": []}]"),
		       "the manifest says f32 [], the weights file has F32 [16]");
}

Test(registry_manifest, check_weights_refuses_dtype_swarm_cannot_compute)
{
	int rc = parse_weights("[{\"name\": \"scale\", \"dtype\": \"f32\", \"shape\": [16]}]");
	cr_assert_eq(rc, 0, "parse rc %d: %s", rc, err);
	make_st();
	st_tensors[0].dtype = SWARM_ST_F64;
	expect_refusal(swarm_manifest_check_weights(&m, &st, err, sizeof err),
		       "the manifest says f32 [16], the weights file has F64 [16]");
}

Test(registry_manifest, graph_backend_with_config_parses)
{
	int rc = parse(build("[" X_IN "]", "[" Y_OUT "]",
			     "{\"backend\": \"libscale.so\", \"config\": \"factor=3\"}", "[]",
			     NULL));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(m.graph_backend, "libscale.so");
	cr_assert_str_eq(m.graph_config, "factor=3");
	cr_assert_str_eq(m.graph_builtin, "");
	cr_assert_eq(m.graph.n_nodes, 0u);
}

Test(registry_manifest, refuses_config_without_backend)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]",
				   "{\"builtin\": \"affine\", \"config\": \"x\"}", "[]", NULL)),
		       "graph.config: only with graph.backend");
}

Test(registry_manifest, refuses_backend_and_builtin)
{
	expect_refusal(parse(build("[" X_IN "]", "[" Y_OUT "]",
				   "{\"builtin\": \"affine\", \"backend\": \"a.so\"}", "[]",
				   NULL)),
		       "graph: give exactly one of builtin");
}

Test(registry_manifest, refuses_max_batch_above_the_batch_buffers)
{
	char d[96];
	snprintf(d, sizeof d, "{\"max_batch\": %d}", SWARM_MAX_BATCH_ROWS + 1);
	expect_refusal(parse_deploy(d), "deploy.max_batch");
	snprintf(d, sizeof d, "{\"max_batch\": %d}", SWARM_MAX_BATCH_ROWS);
	cr_assert_eq(parse_deploy(d), 0, "max_batch %d: %s", SWARM_MAX_BATCH_ROWS, err);
}
