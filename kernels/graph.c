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
#include "kernels/op.h"

#define ARENA_ALIGN 64
#define SHAPE_STR 96

enum tensor_kind {
	T_INPUT,  /* a model input: the caller's buffer, bound per run */
	T_OUTPUT, /* a node output that is a model output: the caller's buffer */
	T_WEIGHT, /* from the weight callback */
	T_INTER,  /* a node output in the arena */
	T_CONST,  /* built here (EMBEDDING_BAG offsets), after the arena's reused part */
	T_VIEW,   /* another tensor's bytes under another shape (EMBEDDING_BAG ids as [B*K]) */
	T_FUSED,  /* what a fusion left unstored (a fused concat's or conv's output): a shape */
};

struct gtensor {
	struct swarm_tensor t; /* what the nodes point at */
	uint32_t kind;         /* an enum tensor_kind */
	uint32_t io;           /* T_INPUT, T_OUTPUT: the model's index of it */
	int64_t batch_mult;    /* 0: fixed shape; else shape[0] = rows * batch_mult */
	int32_t base;          /* T_VIEW: the tensor it views */
	int32_t first, last;   /* producing node (-1 for inputs, weights) and last reader */
	size_t bytes;          /* at max_batch */
	size_t offset;         /* T_INTER, T_CONST: in the arena */
};

struct swarm_graph {
	struct swarm_device *dev;
	uint32_t max_batch;
	uint32_t n_inputs, n_outputs, n_nodes, n_tensors;
	int32_t input_t[SWARM_MAX_TENSORS];
	int32_t output_t[SWARM_MAX_TENSORS];
	struct gtensor *tensors;
	struct swarm_node *nodes;
	void *arena;
	size_t arena_bytes, naive_bytes;
	/* The device's memory is not host memory: inputs and outputs are T_INPUT and T_OUTPUT
	 * tensors with staging buffers in the arena, and runs copy through them. */
	bool staged;
	/* Captured node lists (staged devices with capture hooks): execs[rows - 1] for rows
	 * 1..n_execs, NULL until that rows value first runs. capture_off is set for good when
	 * a capture fails, and runs then go direct. */
	void **execs;
	uint8_t *warm; /* warm[rows - 1]: that rows value has run once directly */
	uint32_t n_execs;
	bool capture_off;
	/* Staged devices: room for one copy list of swarm_graph_run_parts (a piece per part and
	 * input, or per part and output: max_batch * max(n_inputs, n_outputs)), made at build
	 * so that a run allocates nothing. */
	struct swarm_copy *pieces;
	uint32_t n_pieces;
	void *owned; /* device memory freed with the graph (swarm_graph_adopt), or NULL */
	void *held;  /* a reference dropped with held_put when the graph goes (swarm_graph_hold) */
	void (*held_put)(void *ref);
	uint64_t *prof; /* swarm_graph_profile's per-node sums, or NULL */
};

/* What only the build needs. */
struct build {
	const struct swarm_graph_desc *m;
	const struct swarm_graph_spec *spec;
	swarm_graph_weight_fn weight;
	void *ctx;
	struct swarm_graph *g;
	int32_t *name_t; /* per spec name: its tensor, -1 before it exists */
	int32_t (*node_in)[SWARM_NODE_MAX_INPUTS]; /* per node: its inputs' tensors */
	uint32_t *node_n_in;
	int32_t *node_out;
	bool *elided;      /* per node: a reshape made a view, or a concat fused, not run */
	int32_t *parts_of; /* per node: the concat fused into its input 0, or -1 */
	int32_t *sum_of;   /* per node: the tensor a fused ADD adds to its output, or -1 */
	char *err;
	size_t err_len;
};

__attribute__((format(printf, 3, 4))) static int fail(struct build *b, int rc, const char *fmt, ...)
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
	return fail(b, -EINVAL, "graph.nodes[%" PRIu32 "] (%s -> \"%s\"): %s", k, op ? op : "?",
		    b->spec->names[n->out], msg);
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

/* Whether the fusion called name ("concat", "sum") is on: all are, unless SWARM_GRAPH_FUSE
 * is set, to 0 (none) or a list of the ones that are ("concat,sum"), for whoever compares
 * them (the tests do). */
static bool fusing(const char *name)
{
	const char *e = getenv("SWARM_GRAPH_FUSE");
	if (!e)
		return true;
	const size_t n = strlen(name);
	for (const char *p = strstr(e, name); p; p = strstr(p + 1, name))
		if ((p == e || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

/* Whether a view reads tensor t. */
static bool viewed(const struct build *b, int32_t t)
{
	for (uint32_t v = 0; v < b->g->n_tensors; v++)
		if (b->g->tensors[v].kind == T_VIEW && b->g->tensors[v].base == t)
			return true;
	return false;
}

/* How many times the nodes after k read tensor t (a view of it counting as two), and the
 * last read: its node and which of its inputs. */
static uint32_t reads_of(const struct build *b, int32_t t, uint32_t k, int32_t *reader,
			 uint32_t *slot)
{
	uint32_t reads = viewed(b, t) ? 2 : 0;
	for (uint32_t j = k + 1; j < b->spec->n_nodes; j++)
		for (uint32_t i = 0; !b->elided[j] && i < b->node_n_in[j]; i++)
			if (b->node_in[j][i] == t) {
				reads++;
				*reader = (int32_t)j;
				*slot = i;
			}
	return reads;
}

/* Node j of the spec as the device sees it (make_nodes' and the fuse hooks'). */
static void provisional_node(const struct build *b, uint32_t j, struct swarm_node *node)
{
	const struct swarm_graph_node_spec *r = &b->spec->nodes[j];
	memset(node, 0, sizeof *node);
	node->op = r->op;
	node->n_in = b->node_n_in[j];
	node->p = r->p;
	for (uint32_t i = 0; i < node->n_in; i++)
		node->in[i] = &b->g->tensors[b->node_in[j][i]].t;
	node->out = &b->g->tensors[b->node_out[j]].t;
	if (!(swarm_op_info(r->op)->attrs & SWARM_ATTR_ACT))
		node->p.act = SWARM_OP_IDENTITY;
	if (b->parts_of[j] >= 0) {
		const uint32_t c = (uint32_t)b->parts_of[j];
		node->n_parts = b->node_n_in[c];
		for (uint32_t i = 0; i < node->n_parts; i++)
			node->parts[i] = &b->g->tensors[b->node_in[c][i]].t;
	}
	node->sum = b->sum_of[j] >= 0 ? &b->g->tensors[b->sum_of[j]].t : NULL;
}

static bool same_shape(const struct swarm_tensor *a, const struct swarm_tensor *b)
{
	return a->dtype == b->dtype && a->ndim == b->ndim &&
	       memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0;
}

/* A CONCAT along dim 1 whose output only one later node reads, as its input 0, where the
 * device takes that node with the input in parts (fuse_concat): the concat is not run and
 * its output takes no memory; the reader reads the concat's inputs where they lie, which
 * then live until it has run. A U-Net's or an FPN's skip concat before a conv is a pass over
 * the whole image saved (the rapidocr detector's 48 x 160 x 224: 1 ms of 120). */
static void fuse_concats(struct build *b)
{
	struct swarm_graph *g = b->g;
	if (!g->dev->i->fuse_concat || !fusing("concat"))
		return;
	const uint32_t n_nodes = b->spec->n_nodes;
	for (uint32_t k = 0; k < n_nodes; k++) {
		const struct swarm_graph_node_spec *n = &b->spec->nodes[k];
		const int32_t ot = b->node_out[k];
		struct gtensor *out = &g->tensors[ot];
		if (b->elided[k] || n->op != SWARM_OP_CONCAT || out->kind != T_INTER ||
		    out->t.ndim < 2 || b->node_n_in[k] > SWARM_NODE_MAX_PARTS ||
		    (n->p.axis != 1 && n->p.axis != 1 - (int32_t)out->t.ndim))
			continue;
		/* its one reader, reading it once as input 0, and no view of it */
		int32_t reader = -1;
		uint32_t slot = 0;
		if (reads_of(b, ot, k, &reader, &slot) != 1 || slot != 0 ||
		    b->parts_of[reader] >= 0)
			continue;
		/* the reader as make_nodes will build it, asked of the device */
		struct swarm_node node;
		b->parts_of[reader] = (int32_t)k;
		provisional_node(b, (uint32_t)reader, &node);
		if (!g->dev->i->fuse_concat(g->dev, &node)) {
			b->parts_of[reader] = -1;
			continue;
		}
		b->elided[k] = true;
		out->kind = T_FUSED;
		for (uint32_t i = 0; i < node.n_parts; i++)
			for (int32_t v = b->node_in[k][i]; v >= 0;
			     v = g->tensors[v].kind == T_VIEW ? g->tensors[v].base : -1)
				if (g->tensors[v].last < reader)
					g->tensors[v].last = reader;
	}
}

/* An ADD of two tensors of its output's shape, one of them (t) read by nothing else and
 * made by node j, the other (z) made before j: where the device takes j with z as its sum
 * (fuse_sum), j writes the ADD's output itself, act(op) + z, and the ADD is not run; t is
 * not stored. A residual block's add after its last conv is a pass over its output saved. */
static void fuse_sums(struct build *b)
{
	struct swarm_graph *g = b->g;
	if (!g->dev->i->fuse_sum || !fusing("sum"))
		return;
	for (uint32_t k = 0; k < b->spec->n_nodes; k++) {
		if (b->elided[k] || b->spec->nodes[k].op != SWARM_OP_ADD || b->node_n_in[k] != 2)
			continue;
		const int32_t ot = b->node_out[k];
		for (int side = 0; side < 2; side++) {
			const int32_t t = b->node_in[k][side], z = b->node_in[k][1 - side];
			struct gtensor *tt = &g->tensors[t];
			if (t == z || tt->kind != T_INTER || tt->first < 0 ||
			    b->elided[tt->first] || b->sum_of[tt->first] >= 0 ||
			    !same_shape(&tt->t, &g->tensors[ot].t) ||
			    !same_shape(&g->tensors[z].t, &g->tensors[ot].t) ||
			    g->tensors[z].first >= tt->first)
				continue;
			/* t read by the ADD alone, once (t != z: that read is this one) */
			const uint32_t j = (uint32_t)tt->first;
			int32_t reader = -1;
			uint32_t slot = 0;
			if (reads_of(b, t, j, &reader, &slot) != 1)
				continue;
			struct swarm_node node;
			b->sum_of[j] = z;
			provisional_node(b, j, &node);
			node.out = &g->tensors[ot].t;
			if (!g->dev->i->fuse_sum(g->dev, &node)) {
				b->sum_of[j] = -1;
				continue;
			}
			b->node_out[j] = ot;
			b->elided[k] = true;
			tt->kind = T_FUSED;
			tt->first = tt->last = -1;
			g->tensors[ot].first = (int32_t)j;
			break;
		}
	}
}

static size_t align_up(size_t x) { return (x + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

/* Every batch symbol becomes max_batch rows; the bytes of every tensor follow. */
static int size_tensors(struct build *b)
{
	struct swarm_graph *g = b->g;
	for (uint32_t i = 0; i < g->n_tensors; i++) {
		struct gtensor *t = &g->tensors[i];
		if (t->batch_mult)
			t->t.shape[0] = (int64_t)g->max_batch * t->batch_mult;
		int64_t elems = swarm_tensor_elems(&t->t);
		size_t bytes;
		if (elems < 0 ||
		    __builtin_mul_overflow((size_t)elems, (size_t)swarm_dtype_size(t->t.dtype),
					   &bytes) ||
		    bytes > SIZE_MAX / 2)
			return fail(b, -EINVAL,
				    "a tensor of the graph overflows at max_batch %" PRIu32,
				    g->max_batch);
		t->bytes = bytes;
	}
	return 0;
}

static int by_size_desc(const void *pa, const void *pb, void *arg)
{
	const struct gtensor *ts = arg;
	const struct gtensor *a = &ts[*(const int32_t *)pa], *b = &ts[*(const int32_t *)pb];
	if (a->bytes != b->bytes)
		return a->bytes > b->bytes ? -1 : 1;
	return a->first - b->first;
}

static int by_offset(const void *pa, const void *pb, void *arg)
{
	const struct gtensor *ts = arg;
	size_t a = ts[*(const int32_t *)pa].offset, b = ts[*(const int32_t *)pb].offset;
	return a < b ? -1 : a > b;
}

/* Offsets for the intermediates: largest first, each at the lowest 64-byte aligned offset
 * where it overlaps no placed tensor alive at the same time; then the constants; then, on a
 * staged device, the inputs' and outputs' staging buffers. */
static int plan_arena(struct build *b)
{
	struct swarm_graph *g = b->g;
	int32_t *order = malloc(2 * (size_t)g->n_tensors * sizeof *order + 1);
	if (!order)
		return fail(b, -ENOMEM, "out of memory planning the arena");
	int32_t *live = order + g->n_tensors;
	uint32_t n = 0, n_placed = 0;
	size_t end = 0, naive = 0;

	for (uint32_t i = 0; i < g->n_tensors; i++)
		if (g->tensors[i].kind == T_INTER)
			order[n++] = (int32_t)i;
	qsort_r(order, n, sizeof *order, by_size_desc, g->tensors);
	for (uint32_t i = 0; i < n; i++) {
		struct gtensor *t = &g->tensors[order[i]];
		size_t size = align_up(t->bytes ? t->bytes : 1);
		uint32_t n_live = 0;
		for (uint32_t p = 0; p < n_placed; p++) {
			const struct gtensor *q = &g->tensors[order[p]];
			if (q->first <= t->last && t->first <= q->last)
				live[n_live++] = order[p];
		}
		qsort_r(live, n_live, sizeof *live, by_offset, g->tensors);
		size_t off = 0;
		for (uint32_t p = 0; p < n_live; p++) {
			const struct gtensor *q = &g->tensors[live[p]];
			if (off + size <= q->offset)
				break;
			size_t q_end = align_up(q->offset + (q->bytes ? q->bytes : 1));
			if (q_end > off)
				off = q_end;
		}
		t->offset = off;
		n_placed++;
		naive += size;
		if (off + size > end)
			end = off + size;
	}
	free(order);
	for (uint32_t i = 0; i < g->n_tensors; i++) {
		struct gtensor *t = &g->tensors[i];
		if (t->kind != T_CONST)
			continue;
		size_t size = align_up(t->bytes ? t->bytes : 1);
		t->offset = end;
		end += size;
		naive += size;
	}
	/* Staging buffers last: they live for the whole run, so they share nothing. */
	for (uint32_t i = 0; g->staged && i < g->n_tensors; i++) {
		struct gtensor *t = &g->tensors[i];
		if (t->kind != T_INPUT && t->kind != T_OUTPUT)
			continue;
		size_t size = align_up(t->bytes ? t->bytes : 1);
		t->offset = end;
		end += size;
		naive += size;
	}
	g->arena_bytes = end;
	g->naive_bytes = naive;
	return 0;
}

/* The one allocation; intermediates, constants and staging buffers get their addresses,
 * constants their values. */
static int place(struct build *b)
{
	struct swarm_graph *g = b->g;
	if (g->arena_bytes) {
		g->arena = g->dev->i->alloc(g->dev, g->arena_bytes);
		if (!g->arena)
			return fail(b, -ENOMEM,
				    "the device could not allocate the arena (%zu bytes)",
				    g->arena_bytes);
	}
	for (uint32_t i = 0; i < g->n_tensors; i++) {
		struct gtensor *t = &g->tensors[i];
		bool in_arena = t->kind == T_INTER || t->kind == T_CONST ||
				(g->staged && (t->kind == T_INPUT || t->kind == T_OUTPUT));
		if (!in_arena)
			continue;
		t->t.data = (char *)g->arena + t->offset;
		if (t->kind != T_CONST)
			continue;
		int64_t per_row = g->tensors[t->base].t.shape[1];
		int64_t *host = malloc(t->bytes ? t->bytes : 1);
		if (!host)
			return fail(b, -ENOMEM, "out of memory filling the bag offsets");
		for (int64_t r = 0; r < t->t.shape[0]; r++)
			host[r] = r * per_row;
		int rc = g->dev->i->upload(g->dev, t->t.data, host, t->bytes);
		/* An asynchronous device may still read host: wait before freeing it. */
		if (!rc && g->dev->i->synchronize)
			rc = g->dev->i->synchronize(g->dev);
		free(host);
		if (rc)
			return fail(b, rc, "the device could not take the bag offsets (%d)", rc);
		t->base = -1;
	}
	return 0;
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
		provisional_node(b, k, node);
		if (g->dev->i->supports_op && !g->dev->i->supports_op(g->dev, node)) {
			char s[SHAPE_STR];
			return fail(b, -ENOTSUP,
				    "graph.nodes[%" PRIu32 "] (%s -> \"%s\"): the %s device does "
				    "not run %s on %s",
				    k, swarm_op_name(n->op), b->spec->names[n->out],
				    g->dev->i->name ? g->dev->i->name : "?", swarm_op_name(n->op),
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
			if (rc)
				return fail(b, rc,
					    "graph.nodes[%" PRIu32
					    "] (%s -> \"%s\"): the %s device "
					    "could not prepare its weights (%s)",
					    k, swarm_op_name(n->op), b->spec->names[n->out],
					    g->dev->i->name ? g->dev->i->name : "?", strerror(-rc));
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
		return fail(b, -ENOMEM, "out of memory for the capture table");
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
		return fail(b, -ENOMEM, "out of memory for the copy list of batches");
	return 0;
}

static int check_args(struct build *b, struct swarm_device *dev, uint32_t max_batch)
{
	const struct swarm_graph_desc *m = b->m;
	if (!m || !m->spec || (m->n_inputs && !m->inputs) || (m->n_outputs && !m->outputs) ||
	    !dev || !dev->i || !dev->i->alloc || !dev->i->free || !dev->i->upload || !dev->i->run)
		return fail(b, -EINVAL,
			    "no graph description, or a device without alloc, free, upload, run");
	if (!dev->i->host_memory && !dev->i->download)
		return fail(b, -EINVAL,
			    "the %s device's memory is not host memory, and it has no download",
			    dev->i->name ? dev->i->name : "?");
	if (max_batch == 0)
		return fail(b, -EINVAL, "max_batch must be at least 1");
	const struct swarm_graph_spec *spec = m->spec;
	if (spec->n_nodes == 0)
		return fail(b, -EINVAL, "graph: no nodes (a built-in model has no node list)");
	if (spec->n_nodes > SWARM_GRAPH_MAX_NODES || spec->n_names > SWARM_GRAPH_MAX_NAMES ||
	    m->n_inputs > SWARM_MAX_TENSORS || m->n_outputs > SWARM_MAX_TENSORS)
		return fail(b, -EINVAL, "the graph is over its limits");
	for (uint32_t k = 0; k < spec->n_nodes; k++) {
		const struct swarm_graph_node_spec *n = &spec->nodes[k];
		const struct swarm_op_info *info = swarm_op_info(n->op);
		bool ok = info && n->n_in >= info->min_in && n->n_in <= info->max_in &&
			  n->out < spec->n_names;
		for (uint32_t j = 0; ok && j < n->n_in; j++)
			ok = n->in[j] < spec->n_names;
		if (!ok)
			return fail(b, -EINVAL,
				    "graph.nodes[%" PRIu32 "]: bad op, input count or name index",
				    k);
	}
	return 0;
}

int swarm_graph_build(const struct swarm_graph_desc *m, swarm_graph_weight_fn weight, void *ctx,
		      struct swarm_device *dev, uint32_t max_batch, struct swarm_graph **out,
		      char *err, size_t err_len)
{
	struct build b = { .m = m, .weight = weight, .ctx = ctx, .err = err, .err_len = err_len };
	struct swarm_graph *g = NULL;
	int rc;

	if (err && err_len)
		err[0] = '\0';
	if (!out)
		return fail(&b, -EINVAL, "nowhere to put the graph");
	*out = NULL;
	if ((rc = check_args(&b, dev, max_batch)))
		return rc;
	b.spec = m->spec;
	uint32_t n_nodes = m->spec->n_nodes, n_names = m->spec->n_names;

	g = calloc(1, sizeof *g);
	if (!g)
		return fail(&b, -ENOMEM, "out of memory");
	b.g = g;
	g->dev = dev;
	g->max_batch = max_batch;
	g->staged = !dev->i->host_memory;
	g->n_inputs = m->n_inputs;
	g->n_outputs = m->n_outputs;
	g->n_nodes = n_nodes;
	/* Inputs, then at most one tensor per name (weights, outputs), then a view and a
	 * constant per EMBEDDING_BAG: the array never grows, so pointers into it hold. */
	size_t cap = m->n_inputs + n_names + 2 * (size_t)n_nodes;
	g->tensors = calloc(cap, sizeof *g->tensors);
	g->nodes = calloc(n_nodes, sizeof *g->nodes);
	b.name_t = malloc(n_names * sizeof *b.name_t + 1);
	b.node_in = calloc(n_nodes, sizeof *b.node_in);
	b.node_n_in = calloc(n_nodes, sizeof *b.node_n_in);
	b.node_out = calloc(n_nodes, sizeof *b.node_out);
	b.elided = calloc(n_nodes, sizeof *b.elided);
	b.parts_of = malloc(n_nodes * sizeof *b.parts_of + 1);
	b.sum_of = malloc(n_nodes * sizeof *b.sum_of + 1);
	if (!g->tensors || !g->nodes || !b.name_t || !b.node_in || !b.node_n_in || !b.node_out ||
	    !b.elided || !b.parts_of || !b.sum_of) {
		rc = fail(&b, -ENOMEM, "out of memory");
		goto err_free;
	}
	for (uint32_t i = 0; i < n_names; i++)
		b.name_t[i] = -1;
	for (uint32_t k = 0; k < n_nodes; k++)
		b.parts_of[k] = b.sum_of[k] = -1;

	for (uint32_t i = 0; i < m->n_inputs; i++) {
		const swarm_tensor_spec *s = &m->inputs[i];
		int32_t t = add_tensor(&b, T_INPUT);
		struct gtensor *gt = &g->tensors[t];
		gt->io = i;
		gt->batch_mult = 1;
		gt->t.dtype = s->dtype;
		gt->t.ndim = s->ndim;
		memcpy(gt->t.shape, s->shape, sizeof gt->t.shape);
		g->input_t[i] = t;
		for (uint32_t n = 0; n < n_names; n++)
			if (strcmp(m->spec->names[n], s->name) == 0)
				b.name_t[n] = t;
	}
	for (uint32_t i = 0; i < m->n_outputs; i++)
		g->output_t[i] = -1;

	for (uint32_t k = 0; k < n_nodes; k++) {
		if ((rc = resolve_inputs(&b, k)) || (rc = add_output(&b, k)))
			goto err_free;
		if (m->spec->nodes[k].op == SWARM_OP_EMBEDDING_BAG && m->spec->nodes[k].n_in == 2)
			bag_per_row(&b, k);
		if (m->spec->nodes[k].op == SWARM_OP_RESHAPE)
			reshape_view(&b, k);
	}
	for (uint32_t i = 0; i < m->n_outputs; i++)
		if (g->output_t[i] < 0) {
			rc = fail(&b, -EINVAL, "outputs[%" PRIu32 "] \"%s\": no node produces it",
				  i, m->outputs[i].name);
			goto err_free;
		}
	SWARM_INVARIANT(g->n_tensors <= cap);
	fuse_concats(&b);
	fuse_sums(&b);

	if ((rc = size_tensors(&b)) || (rc = plan_arena(&b)) || (rc = place(&b)) ||
	    (rc = make_nodes(&b)) || (rc = make_exec_table(&b)) || (rc = make_piece_table(&b)))
		goto err_free;
	free(b.name_t);
	free(b.node_in);
	free(b.node_n_in);
	free(b.node_out);
	free(b.elided);
	free(b.parts_of);
	free(b.sum_of);
	*out = g;
	return 0;

err_free:
	free(b.name_t);
	free(b.node_in);
	free(b.node_n_in);
	free(b.node_out);
	free(b.elided);
	free(b.parts_of);
	free(b.sum_of);
	swarm_graph_free(g);
	return rc;
}

/* Sets dim 0 of every batch-scaled tensor to rows, and points views at their base. */
static void set_rows(struct swarm_graph *g, uint32_t rows)
{
	for (uint32_t i = 0; i < g->n_tensors; i++) {
		struct gtensor *t = &g->tensors[i];
		if (t->batch_mult)
			t->t.shape[0] = (int64_t)rows * t->batch_mult;
		/* Views follow their base, which may be an input bound just before. */
		if (t->kind == T_VIEW)
			t->t.data = g->tensors[t->base].t.data;
	}
}

static uint64_t prof_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int run_nodes(struct swarm_graph *g)
{
	if (g->prof) {
		for (uint32_t k = 0; k < g->n_nodes; k++) {
			uint64_t t0 = prof_now();
			int rc = g->dev->i->run(g->dev, &g->nodes[k]);
			g->prof[k] += prof_now() - t0;
			if (rc)
				return rc;
		}
		return 0;
	}
	for (uint32_t k = 0; k < g->n_nodes; k++) {
		int rc = g->dev->i->run(g->dev, &g->nodes[k]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Bytes of a tensor at the current rows; size_tensors checked the product at max_batch. */
static size_t run_bytes(const struct gtensor *t)
{
	return (size_t)swarm_tensor_elems(&t->t) * swarm_dtype_size(t->t.dtype);
}

/* The nodes of a staged run through the capture table: replay the exec of this rows value,
 * capturing it first if it has none. The first run of a rows value goes direct, so that
 * every kernel and library module the nodes use is loaded before a capture (loading inside
 * a capture needs a recent driver, and a first cuBLAS call may allocate). A capture that fails
 * turns capture off for the graph (a device may refuse it, e.g. an op that synchronises), and the
 * nodes run directly, now and from then on. A node that refuses its tensors while being captured
 * ends the capture and fails the run like a direct one would, leaving capture on. */
static int run_captured(struct swarm_graph *g, uint32_t rows)
{
	struct swarm_device *dev = g->dev;
	void **exec = &g->execs[rows - 1];
	if (!*exec && !g->warm[rows - 1]) {
		g->warm[rows - 1] = 1;
		return run_nodes(g);
	}
	if (!*exec) {
		int rc = dev->i->capture_begin(dev);
		if (rc) {
			g->capture_off = true;
			return run_nodes(g);
		}
		int node_rc = run_nodes(g);
		void *e = NULL;
		rc = dev->i->capture_end(dev, &e);
		if (node_rc) {
			if (!rc && e)
				dev->i->exec_free(dev, e);
			return node_rc;
		}
		if (rc || !e) {
			/* Nothing captured ran: run the nodes for real. */
			g->capture_off = true;
			return run_nodes(g);
		}
		*exec = e;
	}
	return dev->i->replay(dev, *exec);
}

/* The nodes of a staged run of rows rows (set_rows done), replayed where they can be. */
static int run_staged_nodes(struct swarm_graph *g, uint32_t rows)
{
	return g->execs && !g->capture_off && rows <= g->n_execs ? run_captured(g, rows) :
								   run_nodes(g);
}

/* The end of every staged run, rc its result so far. Synchronise even after a failure: the
 * work queued before it must be done (and its errors reported now) before the caller reuses
 * its buffers or runs again. */
static int run_staged_end(struct swarm_graph *g, int rc)
{
	struct swarm_device *dev = g->dev;
	int sync_rc = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	return rc ? rc : sync_rc;
}

/* A run on a staged device: upload (or copy from device memory, per in_dev's bits), the
 * nodes (captured or direct), download (or copy to device memory, per out_dev's bits),
 * synchronise. */
static int run_staged(struct swarm_graph *g, uint32_t rows, const void *const *inputs,
		      void *const *outputs, uint32_t in_dev, uint32_t out_dev)
{
	struct swarm_device *dev = g->dev;
	int rc = 0;
	for (uint32_t i = 0; !rc && i < g->n_inputs; i++) {
		const struct gtensor *t = &g->tensors[g->input_t[i]];
		size_t n = run_bytes(t);
		if (n)
			rc = in_dev >> i & 1 ? dev->i->copy_d2d(dev, t->t.data, inputs[i], n) :
					       dev->i->upload(dev, t->t.data, inputs[i], n);
	}
	if (!rc)
		rc = run_staged_nodes(g, rows);
	for (uint32_t i = 0; !rc && i < g->n_outputs; i++) {
		const struct gtensor *t = &g->tensors[g->output_t[i]];
		size_t n = run_bytes(t);
		if (n)
			rc = out_dev >> i & 1 ? dev->i->copy_d2d(dev, outputs[i], t->t.data, n) :
						dev->i->download(dev, outputs[i], t->t.data, n);
	}
	return run_staged_end(g, rc);
}

/* The copy list of every part's inputs (out false) or outputs (out true) against the staging
 * buffers, part p's rows after part p-1's, into g->pieces; returns its length. Empty pieces
 * (a zero-byte row) are left out. */
static uint32_t part_pieces(struct swarm_graph *g, const struct swarm_graph_part *parts,
			    uint32_t n_parts, bool out)
{
	uint32_t n_io = out ? g->n_outputs : g->n_inputs, n = 0;
	for (uint32_t i = 0; i < n_io; i++) {
		const struct gtensor *t = &g->tensors[out ? g->output_t[i] : g->input_t[i]];
		/* bytes is at max_batch rows, and inputs and outputs here have batch_mult 1 */
		size_t row = t->bytes / g->max_batch, at = 0;
		for (uint32_t p = 0; p < n_parts; p++) {
			size_t bytes = (size_t)parts[p].rows * row;
			char *staged = (char *)t->t.data + at;
			at += bytes;
			if (!bytes)
				continue;
			g->pieces[n++] =
				out ? (struct swarm_copy){ parts[p].outputs[i], staged, bytes } :
				      (struct swarm_copy){ staged, parts[p].inputs[i], bytes };
		}
	}
	return n;
}

/* The pieces in one call of the device's upload_many (download_many), or one upload
 * (download) each where it has none. */
static int copy_pieces(struct swarm_graph *g, uint32_t n, bool out)
{
	struct swarm_device *dev = g->dev;
	int (*many)(struct swarm_device *, const struct swarm_copy *, uint32_t) =
		out ? dev->i->download_many : dev->i->upload_many;
	int (*one)(struct swarm_device *, void *, const void *, size_t) = out ? dev->i->download :
										dev->i->upload;
	if (many)
		return n ? many(dev, g->pieces, n) : 0;
	for (uint32_t k = 0; k < n; k++) {
		int rc = one(dev, g->pieces[k].dst, g->pieces[k].src, g->pieces[k].bytes);
		if (rc)
			return rc;
	}
	return 0;
}

int swarm_graph_run_parts(struct swarm_graph *g, const struct swarm_graph_part *parts,
			  uint32_t n_parts)
{
	if (!g || !parts || n_parts == 0 || n_parts > g->max_batch)
		return -EINVAL;
	if (!g->staged)
		return -ENOTSUP;
	uint32_t rows = 0;
	for (uint32_t p = 0; p < n_parts; p++) {
		if (parts[p].rows == 0 || parts[p].rows > g->max_batch - rows ||
		    (g->n_inputs && !parts[p].inputs) || (g->n_outputs && !parts[p].outputs))
			return -EINVAL;
		rows += parts[p].rows;
	}
	/* An output of fixed shape belongs to the whole batch, not to one part of it. */
	for (uint32_t i = 0; i < g->n_outputs; i++)
		if (g->tensors[g->output_t[i]].batch_mult != 1)
			return -EINVAL;
	set_rows(g, rows);
	int rc = copy_pieces(g, part_pieces(g, parts, n_parts, false), false);
	if (!rc)
		rc = run_staged_nodes(g, rows);
	if (!rc)
		rc = copy_pieces(g, part_pieces(g, parts, n_parts, true), true);
	return run_staged_end(g, rc);
}

int swarm_graph_staged(const struct swarm_graph *g) { return g && g->staged; }

int swarm_graph_run_dev(struct swarm_graph *g, uint32_t rows, const void *const *inputs,
			void *const *outputs, uint32_t in_dev, uint32_t out_dev)
{
	if (!g || rows == 0 || rows > g->max_batch || (g->n_inputs && !inputs) || !outputs)
		return -EINVAL;
	if (g->n_inputs < 32)
		in_dev &= (1u << g->n_inputs) - 1;
	if (g->n_outputs < 32)
		out_dev &= (1u << g->n_outputs) - 1;
	if ((in_dev | out_dev) && (!g->staged || !g->dev->i->copy_d2d))
		return -ENOTSUP;
	if (g->staged) {
		set_rows(g, rows);
		return run_staged(g, rows, inputs, outputs, in_dev, out_dev);
	}
	for (uint32_t i = 0; i < g->n_inputs; i++)
		g->tensors[g->input_t[i]].t.data = (void *)inputs[i];
	for (uint32_t i = 0; i < g->n_outputs; i++)
		g->tensors[g->output_t[i]].t.data = outputs[i];
	set_rows(g, rows);
	return run_nodes(g);
}

int swarm_graph_run(struct swarm_graph *g, uint32_t rows, const void *const *inputs,
		    void *const *outputs)
{
	return swarm_graph_run_dev(g, rows, inputs, outputs, 0, 0);
}

int swarm_graph_adopt(struct swarm_graph *g, void *mem)
{
	if (!g || !mem)
		return -EINVAL;
	if (g->owned)
		return -EBUSY;
	g->owned = mem;
	return 0;
}

int swarm_graph_hold(struct swarm_graph *g, void (*put)(void *ref), void *ref)
{
	if (!g || !put || !ref)
		return -EINVAL;
	if (g->held)
		return -EBUSY;
	g->held = ref;
	g->held_put = put;
	return 0;
}

void swarm_graph_free(struct swarm_graph *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->n_execs; i++)
		if (g->execs[i])
			g->dev->i->exec_free(g->dev, g->execs[i]);
	free(g->execs);
	free(g->warm);
	free(g->pieces);
	if (g->arena)
		g->dev->i->free(g->dev, g->arena);
	if (g->owned)
		g->dev->i->free(g->dev, g->owned);
	/* Last: the captured execs and the nodes point into what it holds. */
	if (g->held)
		g->held_put(g->held);
	for (uint32_t k = 0; g->nodes && k < g->n_nodes; k++)
		if (g->nodes[k].prep)
			g->dev->i->release(g->dev, (void *)g->nodes[k].prep);
	free(g->tensors);
	free(g->nodes);
	free(g);
}

uint32_t swarm_graph_captured(const struct swarm_graph *g)
{
	uint32_t n = 0;
	for (uint32_t i = 0; g && i < g->n_execs; i++)
		n += g->execs[i] != NULL;
	return n;
}

size_t swarm_graph_arena_bytes(const struct swarm_graph *g) { return g ? g->arena_bytes : 0; }

size_t swarm_graph_naive_bytes(const struct swarm_graph *g) { return g ? g->naive_bytes : 0; }

uint32_t swarm_graph_nodes(const struct swarm_graph *g) { return g ? g->n_nodes : 0; }

const struct swarm_node *swarm_graph_node(const struct swarm_graph *g, uint32_t k)
{
	return g && k < g->n_nodes ? &g->nodes[k] : NULL;
}

void swarm_graph_profile(struct swarm_graph *g, uint64_t *ns) { g->prof = ns; }

uint32_t swarm_graph_max_batch(const struct swarm_graph *g) { return g->max_batch; }
