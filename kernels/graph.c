/* graph.c: the graph executor (graph.h). swarm_graph_build does all the work that can be done
 * once per (model, device, max batch): name resolution, shape inference by the op contracts
 * of device.h, the arena plan and its one allocation, and the swarm_node array with its
 * tensor pointers. swarm_graph_run then only writes the batch's row count into the tensors
 * that scale with the batch, binds the caller's buffers, and runs the nodes in order.
 *
 * On a device whose memory is not host memory (host_memory 0, the GPU) the caller's buffers
 * cannot be bound: every model input and output then also gets a staging buffer at the end
 * of the arena, sized for max_batch, and a run uploads, runs the nodes on the staging buffers,
 * downloads and synchronises. Since every pointer the nodes see is then fixed, a device with
 * graph capture records the node list once per rows value and replays it afterwards.
 *
 * During the build a tensor's shape[0] is -1 when it scales with the batch (as in the
 * manifest); every op rule keeps that symbol in dim 0, so that two shapes that agree at
 * max_batch by chance (a weight of max_batch rows) are still told apart.
 */
#include "kernels/graph.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipc/invariant.h"
#include "ipc/segment.h"
#include "kernels/graph_internal.h"
#include "kernels/op.h"

__attribute__((format(printf, 3, 4))) int graph_fail(struct build *b, int rc, const char *fmt, ...)
{
	if (b->err && b->err_len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(b->err, b->err_len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* A refusal about node k: "graph.nodes[3] (linear -> "h1"): " then the message. */
__attribute__((format(printf, 3, 4))) static int node_fail(struct build *b, uint32_t k,
							   const char *fmt, ...)
{
	const struct swarm_graph_node_spec *n = &b->spec->nodes[k];
	const char *op = swarm_op_name(n->op);
	char msg[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return graph_fail(b, -EINVAL, "graph.nodes[%" PRIu32 "] (%s -> \"%s\"): %s", k,
			  op ? op : "?", b->spec->names[n->out], msg);
}

static const char *dtype_str(uint32_t dtype)
{
	const char *s = swarm_dtype_name(dtype);
	return s ? s : "?";
}

/* "f32 [B, 16]": B is the batch dimension. */
static const char *tensor_str(char *buf, size_t len, const struct swarm_tensor *t)
{
	int n = snprintf(buf, len, "%s [", dtype_str(t->dtype));
	size_t off = n > 0 ? (size_t)n : 0;
	for (uint32_t i = 0; i < t->ndim && off < len; i++) {
		if (t->shape[i] < 0)
			n = snprintf(buf + off, len - off, "%sB", i ? ", " : "");
		else
			n = snprintf(buf + off, len - off, "%s%" PRId64, i ? ", " : "",
				     t->shape[i]);
		off += n > 0 ? (size_t)n : 0;
	}
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

/* Input j of node k, its tensor. */
static const struct swarm_tensor *in_t(struct build *b, uint32_t k, uint32_t j)
{
	return &b->g->tensors[b->node_in[k][j]].t;
}

static const char *in_name(struct build *b, uint32_t k, uint32_t j)
{
	return b->spec->names[b->spec->nodes[k].in[j]];
}

/* The output's dtype and shape from node k's inputs, by the op table's rule (kernels/op.h); a
 * refusal names the inputs it is about with their names and types ("inputs[0] \"h1\" is f32
 * [B, 32] and inputs[1] \"w3\" is f32 [4, 16]; linear takes ..."). */
static int infer(struct build *b, uint32_t k, struct swarm_tensor *out)
{
	const struct swarm_graph_node_spec *n = &b->spec->nodes[k];
	const struct swarm_tensor *in[SWARM_NODE_MAX_INPUTS];
	char why[256] = "", who[2 * SWARM_NODE_MAX_INPUTS * (SHAPE_STR + SWARM_GRAPH_NAME_MAX)];
	size_t off = 0;

	for (uint32_t j = 0; j < n->n_in; j++)
		in[j] = in_t(b, k, j);
	struct swarm_op_args a = {
		.op = n->op, .n_in = n->n_in, .in = in, .p = &n->p, .why = why, .why_len = sizeof why
	};
	int rc = swarm_op_infer(&a, out);
	if (rc == -ENOTSUP)
		return node_fail(b, k, "op %" PRIu32 " is not one the executor knows", n->op);
	if (rc == 0)
		return 0;
	who[0] = '\0';
	for (uint32_t j = 0; j < n->n_in && off < sizeof who; j++) {
		if (!(a.blame & (1u << j)))
			continue;
		char s[SHAPE_STR];
		int w = snprintf(who + off, sizeof who - off, "%sinputs[%u] \"%s\" is %s",
				 off ? " and " : "", (unsigned)j, in_name(b, k, j),
				 tensor_str(s, sizeof s, in[j]));
		off += w > 0 ? (size_t)w : 0;
	}
	return node_fail(b, k, "%s%s%s", who, who[0] ? "; " : "", why);
}

static int32_t add_tensor(struct build *b, uint32_t kind)
{
	struct swarm_graph *g = b->g;
	int32_t i = (int32_t)g->n_tensors++;
	g->tensors[i] = (struct gtensor){ .kind = kind, .base = -1, .first = -1, .last = -1 };
	return i;
}

/* The weight the callback knows by name, or NULL; refuses one whose shape cannot be a
 * tensor's. */
static int fetch_weight(struct build *b, uint32_t k, const char *name,
			const struct swarm_tensor **w)
{
	*w = b->weight ? b->weight(b->ctx, name) : NULL;
	if (!*w)
		return 0;
	bool ok = (*w)->ndim <= SWARM_TENSOR_MAX_DIMS && swarm_dtype_size((*w)->dtype) != 0 &&
		  swarm_tensor_elems(*w) >= 0;
	if (!ok)
		return node_fail(b, k, "weight \"%s\" has a dtype or shape no tensor can have",
				 name);
	return 0;
}

/* Node k's inputs: each an input, a weight or an earlier output. */
static int resolve_inputs(struct build *b, uint32_t k)
{
	const struct swarm_graph_node_spec *n = &b->spec->nodes[k];
	for (uint32_t j = 0; j < n->n_in; j++) {
		uint16_t name = n->in[j];
		int32_t t = b->name_t[name];
		if (t < 0) {
			for (uint32_t later = k; later < b->spec->n_nodes; later++)
				if (b->spec->nodes[later].out == name)
					return node_fail(b, k,
							 "inputs[%u] \"%s\": used before "
							 "graph.nodes[%" PRIu32 "] produces it",
							 j, b->spec->names[name], later);
			const struct swarm_tensor *w;
			int rc = fetch_weight(b, k, b->spec->names[name], &w);
			if (rc)
				return rc;
			if (!w)
				return node_fail(b, k,
						 "inputs[%u] \"%s\": no input, weight or earlier "
						 "node output has this name",
						 j, b->spec->names[name]);
			t = add_tensor(b, T_WEIGHT);
			b->g->tensors[t].t = *w;
			b->name_t[name] = t;
		}
		b->node_in[k][j] = t;
		/* A view is read through its base: the base lives as long as the view's readers. */
		for (int32_t v = t; v >= 0;
		     v = b->g->tensors[v].kind == T_VIEW ? b->g->tensors[v].base : -1)
			b->g->tensors[v].last = (int32_t)k;
	}
	b->node_n_in[k] = n->n_in;
	return 0;
}

/* Node k's output: a new name, its dtype and shape inferred, checked against the manifest's
 * output of that name if there is one. */
static int add_output(struct build *b, uint32_t k)
{
	const struct swarm_graph_desc *m = b->m;
	uint16_t name = b->spec->nodes[k].out;
	const char *s = b->spec->names[name];
	int32_t prev = b->name_t[name];

	if (prev >= 0) {
		const struct gtensor *p = &b->g->tensors[prev];
		if (p->kind == T_INPUT)
			return node_fail(b, k, "output \"%s\" is the name of inputs[%" PRIu32 "]",
					 s, p->io);
		if (p->kind == T_WEIGHT)
			return node_fail(b, k, "output \"%s\" is the name of a weight", s);
		return node_fail(b, k,
				 "output \"%s\" is produced twice, first by "
				 "graph.nodes[%" PRId32 "]",
				 s, p->first);
	}
	const struct swarm_tensor *w;
	int rc = fetch_weight(b, k, s, &w);
	if (rc)
		return rc;
	if (w)
		return node_fail(b, k, "output \"%s\" is the name of a weight", s);

	struct swarm_tensor out;
	if ((rc = infer(b, k, &out)))
		return rc;
	for (uint32_t i = 1; i < out.ndim; i++)
		SWARM_INVARIANT(out.shape[i] >= 0 && "the batch symbol left dim 0");

	int32_t t = add_tensor(b, T_INTER);
	struct gtensor *gt = &b->g->tensors[t];
	gt->t = out;
	gt->first = gt->last = (int32_t)k;
	gt->batch_mult = out.ndim > 0 && out.shape[0] < 0 ? 1 : 0;
	for (uint32_t i = 0; i < m->n_outputs; i++) {
		const swarm_tensor_spec *o = &m->outputs[i];
		if (strcmp(o->name, s) != 0)
			continue;
		bool same = o->dtype == out.dtype && o->ndim == out.ndim;
		for (uint32_t d = 0; same && d < o->ndim; d++)
			same = o->shape[d] == out.shape[d];
		if (!same) {
			char so[SHAPE_STR], sm[SHAPE_STR];
			struct swarm_tensor want = { .dtype = o->dtype, .ndim = o->ndim };
			memcpy(want.shape, o->shape, sizeof want.shape);
			return node_fail(b, k, "produces %s, but outputs[%" PRIu32 "] is %s",
					 tensor_str(so, sizeof so, &out), i,
					 tensor_str(sm, sizeof sm, &want));
		}
		gt->kind = T_OUTPUT;
		gt->io = i;
		b->g->output_t[i] = t;
	}
	b->name_t[name] = t;
	b->node_out[k] = t;
	return 0;
}

/* EMBEDDING_BAG with ids [B, K]: node k reads them as one bag of K per row, that is ids as
 * [B * K] and constant offsets {0, K, 2K, ...}. */
static void bag_per_row(struct build *b, uint32_t k)
{
	int32_t ids = b->node_in[k][1];
	const struct gtensor *src = &b->g->tensors[ids];
	int64_t per_row = src->t.shape[1];

	int32_t v = add_tensor(b, T_VIEW);
	struct gtensor *view = &b->g->tensors[v];
	view->base = ids;
	view->t.dtype = src->t.dtype;
	view->t.ndim = 1;
	view->batch_mult = src->batch_mult ? per_row : 0;
	view->t.shape[0] = src->batch_mult ? -1 : src->t.shape[0] * per_row;

	int32_t c = add_tensor(b, T_CONST);
	struct gtensor *offs = &b->g->tensors[c];
	offs->t.dtype = SWARM_DTYPE_I64;
	offs->t.ndim = 1;
	offs->batch_mult = src->batch_mult ? 1 : 0;
	offs->t.shape[0] = src->t.shape[0];
	offs->base = ids; /* for the row count and K when it is filled */

	b->node_in[k][1] = v;
	b->node_in[k][2] = c;
	b->node_n_in[k] = 3;
}

/* A RESHAPE node k whose output is not a model output: the output becomes a view of the
 * input's bytes under the new shape (tensors are dense row-major, so every reshape is one),
 * and the node is not run. A model output stays a copy into the caller's buffer. */
static void reshape_view(struct build *b, uint32_t k)
{
	struct gtensor *out = &b->g->tensors[b->node_out[k]];
	int32_t in = b->node_in[k][0];
	if (out->kind != T_INTER)
		return;
	out->kind = T_VIEW;
	out->base = in;
	/* dim 0 is the batch symbol in both or neither (the op table's rule) */
	out->batch_mult = out->t.ndim > 0 && out->t.shape[0] < 0 ? b->g->tensors[in].batch_mult : 0;
	b->elided[k] = true;
}

/* The swarm_node array, each checked against the device. */
static int make_nodes(struct build *b)
{
	struct swarm_graph *g = b->g;
	uint32_t run = 0;
	for (uint32_t k = 0; k < b->spec->n_nodes; k++) {
		const struct swarm_graph_node_spec *n = &b->spec->nodes[k];
		if (b->elided[k])
			continue; /* a reshape made a view, a concat or an add fused: nothing runs
				   */
		struct swarm_node *node = &g->nodes[run++];
		graph_provisional_node(b, k, node);
		if (g->dev->i->supports_op && !g->dev->i->supports_op(g->dev, node)) {
			char s[SHAPE_STR];
			return graph_fail(b, -ENOTSUP,
					  "graph.nodes[%" PRIu32
					  "] (%s -> \"%s\"): the %s device does "
					  "not run %s on %s",
					  k, swarm_op_name(n->op), b->spec->names[n->out],
					  g->dev->i->name ? g->dev->i->name : "?",
					  swarm_op_name(n->op),
					  tensor_str(s, sizeof s, node->in[0]));
		}
		if (g->dev->i->prepare && g->dev->i->release) {
			/* the weights are the graph's for its life: the device may repack them */
			uint32_t consts = 0;
			for (uint32_t j = 0; j < node->n_in; j++)
				if (g->tensors[b->node_in[k][j]].kind == T_WEIGHT)
					consts |= 1u << j;
			void *prep = NULL;
			int rc = consts ? g->dev->i->prepare(g->dev, node, consts, &prep) : 0;
			node->prep = prep;
			if (prep && g->dev->i->prep_bytes)
				g->prepared_bytes += g->dev->i->prep_bytes(g->dev, prep);
			if (rc)
				return graph_fail(b, rc,
						  "graph.nodes[%" PRIu32
						  "] (%s -> \"%s\"): the %s device "
						  "could not prepare its weights (%s)",
						  k, swarm_op_name(n->op), b->spec->names[n->out],
						  g->dev->i->name ? g->dev->i->name : "?",
						  strerror(-rc));
		}
	}
	g->n_nodes = run;
	return 0;
}

/* The table of captured node lists, on a staged device with all four capture hooks: one
 * entry per rows value up to SWARM_GRAPH_CAPTURE_ROWS (graph.h says why that many). */
static int make_exec_table(struct build *b)
{
	struct swarm_graph *g = b->g;
	const struct swarm_device_i *i = g->dev->i;
	if (!g->staged || !i->capture_begin || !i->capture_end || !i->replay || !i->exec_free)
		return 0;
	g->n_execs = g->max_batch < SWARM_GRAPH_CAPTURE_ROWS ? g->max_batch :
							       SWARM_GRAPH_CAPTURE_ROWS;
	g->execs = calloc(g->n_execs, sizeof *g->execs);
	g->warm = calloc(g->n_execs, 1);
	if (!g->execs || !g->warm)
		return graph_fail(b, -ENOMEM, "out of memory for the capture table");
	return 0;
}

/* The copy list of swarm_graph_run_parts, on a staged device: a piece per part (at most
 * max_batch, each of 1 row or more) and input or output. */
static int make_piece_table(struct build *b)
{
	struct swarm_graph *g = b->g;
	uint32_t io = g->n_inputs > g->n_outputs ? g->n_inputs : g->n_outputs;
	if (!g->staged || !io)
		return 0;
	if (__builtin_mul_overflow(g->max_batch, io, &g->n_pieces) ||
	    !(g->pieces = calloc(g->n_pieces, sizeof *g->pieces)))
		return graph_fail(b, -ENOMEM, "out of memory for the copy list of batches");
	return 0;
}

static int check_args(struct build *b, struct swarm_device *dev, uint32_t max_batch)
{
	const struct swarm_graph_desc *m = b->m;
	if (!m || !m->spec || (m->n_inputs && !m->inputs) || (m->n_outputs && !m->outputs) ||
	    !dev || !dev->i || !dev->i->alloc || !dev->i->free || !dev->i->upload || !dev->i->run)
		return graph_fail(
			b, -EINVAL,
			"no graph description, or a device without alloc, free, upload, run");
	if (!dev->i->host_memory && !dev->i->download)
		return graph_fail(
			b, -EINVAL,
			"the %s device's memory is not host memory, and it has no download",
			dev->i->name ? dev->i->name : "?");
	if (max_batch == 0)
		return graph_fail(b, -EINVAL, "max_batch must be at least 1");
	const struct swarm_graph_spec *spec = m->spec;
	if (spec->n_nodes == 0)
		return graph_fail(b, -EINVAL,
				  "graph: no nodes (a built-in model has no node list)");
	if (spec->n_nodes > SWARM_GRAPH_MAX_NODES || spec->n_names > SWARM_GRAPH_MAX_NAMES ||
	    m->n_inputs > SWARM_MAX_TENSORS || m->n_outputs > SWARM_MAX_TENSORS)
		return graph_fail(b, -EINVAL, "the graph is over its limits");
	for (uint32_t k = 0; k < spec->n_nodes; k++) {
		const struct swarm_graph_node_spec *n = &spec->nodes[k];
		const struct swarm_op_info *info = swarm_op_info(n->op);
		bool ok = info && n->n_in >= info->min_in && n->n_in <= info->max_in &&
			  n->out < spec->n_names;
		for (uint32_t j = 0; ok && j < n->n_in; j++)
			ok = n->in[j] < spec->n_names;
		if (!ok)
			return graph_fail(b, -EINVAL,
					  "graph.nodes[%" PRIu32
					  "]: bad op, input count or name index",
					  k);
	}
	return 0;
}

/* The graph and the build's own arrays, sized for m. Returns 0 or -ENOMEM (said in err). */
static int build_alloc(struct build *b, struct swarm_device *dev, uint32_t max_batch)
{
	const struct swarm_graph_desc *m = b->m;
	uint32_t n_nodes = m->spec->n_nodes, n_names = m->spec->n_names;
	struct swarm_graph *g = b->g = calloc(1, sizeof *g);
	if (!g)
		return graph_fail(b, -ENOMEM, "out of memory");
	g->dev = dev;
	g->max_batch = max_batch;
	g->staged = !dev->i->host_memory;
	g->n_inputs = m->n_inputs;
	g->n_outputs = m->n_outputs;
	g->n_nodes = n_nodes;
	/* Inputs, then at most one tensor per name (weights, outputs), then a view and a
	 * constant per EMBEDDING_BAG: the array never grows, so pointers into it hold. */
	b->cap = m->n_inputs + n_names + 2 * (size_t)n_nodes;
	g->tensors = calloc(b->cap, sizeof *g->tensors);
	g->nodes = calloc(n_nodes, sizeof *g->nodes);
	b->name_t = malloc(n_names * sizeof *b->name_t + 1);
	b->node_in = calloc(n_nodes, sizeof *b->node_in);
	b->node_n_in = calloc(n_nodes, sizeof *b->node_n_in);
	b->node_out = calloc(n_nodes, sizeof *b->node_out);
	b->elided = calloc(n_nodes, sizeof *b->elided);
	b->parts_of = malloc(n_nodes * sizeof *b->parts_of + 1);
	b->sum_of = malloc(n_nodes * sizeof *b->sum_of + 1);
	if (!g->tensors || !g->nodes || !b->name_t || !b->node_in || !b->node_n_in ||
	    !b->node_out || !b->elided || !b->parts_of || !b->sum_of)
		return graph_fail(b, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n_names; i++)
		b->name_t[i] = -1;
	for (uint32_t k = 0; k < n_nodes; k++)
		b->parts_of[k] = b->sum_of[k] = -1;
	return 0;
}

/* Frees the build's own arrays (not the graph). */
static void build_free(struct build *b)
{
	free(b->name_t);
	free(b->node_in);
	free(b->node_n_in);
	free(b->node_out);
	free(b->elided);
	free(b->parts_of);
	free(b->sum_of);
}

/* The model's inputs, first among the tensors, each bound to the spec's name for it. */
static void add_inputs(struct build *b)
{
	const struct swarm_graph_desc *m = b->m;
	for (uint32_t i = 0; i < m->n_inputs; i++) {
		const swarm_tensor_spec *s = &m->inputs[i];
		int32_t t = add_tensor(b, T_INPUT);
		struct gtensor *gt = &b->g->tensors[t];
		gt->io = i;
		gt->batch_mult = 1;
		gt->t.dtype = s->dtype;
		gt->t.ndim = s->ndim;
		memcpy(gt->t.shape, s->shape, sizeof gt->t.shape);
		b->g->input_t[i] = t;
		for (uint32_t n = 0; n < m->spec->n_names; n++)
			if (strcmp(m->spec->names[n], s->name) == 0)
				b->name_t[n] = t;
	}
	for (uint32_t i = 0; i < m->n_outputs; i++)
		b->g->output_t[i] = -1;
}

/* Each node's inputs resolved and its output added, in order; then every model output must
 * have its node. Returns 0 or -errno (said in err). */
static int add_nodes(struct build *b)
{
	const struct swarm_graph_desc *m = b->m;
	int rc;
	for (uint32_t k = 0; k < m->spec->n_nodes; k++) {
		if ((rc = resolve_inputs(b, k)) || (rc = add_output(b, k)))
			return rc;
		if (m->spec->nodes[k].op == SWARM_OP_EMBEDDING_BAG && m->spec->nodes[k].n_in == 2)
			bag_per_row(b, k);
		if (m->spec->nodes[k].op == SWARM_OP_RESHAPE)
			reshape_view(b, k);
	}
	for (uint32_t i = 0; i < m->n_outputs; i++)
		if (b->g->output_t[i] < 0)
			return graph_fail(b, -EINVAL,
					  "outputs[%" PRIu32 "] \"%s\": no node produces it", i,
					  m->outputs[i].name);
	SWARM_INVARIANT(b->g->n_tensors <= b->cap);
	return 0;
}

int swarm_graph_build(const struct swarm_graph_desc *m, swarm_graph_weight_fn weight, void *ctx,
		      struct swarm_device *dev, uint32_t max_batch, struct swarm_graph **out,
		      char *err, size_t err_len)
{
	struct build b = { .m = m, .weight = weight, .ctx = ctx, .err = err, .err_len = err_len };
	int rc;
	if (err && err_len)
		err[0] = '\0';
	if (!out)
		return graph_fail(&b, -EINVAL, "nowhere to put the graph");
	*out = NULL;
	if ((rc = check_args(&b, dev, max_batch)))
		return rc;
	b.spec = m->spec;
	if ((rc = build_alloc(&b, dev, max_batch)))
		goto err_free;
	add_inputs(&b);
	if ((rc = add_nodes(&b)))
		goto err_free;
	graph_fuse_concats(&b);
	graph_fuse_sums(&b);
	if ((rc = graph_size_tensors(&b)) || (rc = graph_plan_arena(&b)) ||
	    (rc = graph_place(&b)) || (rc = make_nodes(&b)) || (rc = make_exec_table(&b)) ||
	    (rc = make_piece_table(&b)))
		goto err_free;
	build_free(&b);
	*out = b.g;
	return 0;

err_free:
	build_free(&b);
	swarm_graph_free(b.g);
	return rc;
}
