/* graph_plan.c: what the graph build does between naming the tensors and making the nodes:
 * the fusions (a concat written in place by its producers, an ADD folded into the node that
 * makes one of its operands), each tensor's bytes at max_batch, and the arena plan, which
 * packs the intermediate tensors whose lifetimes do not overlap into one allocation.
 */
#include "kernels/graph_internal.h"
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
void graph_provisional_node(const struct build *b, uint32_t j, struct swarm_node *node)
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
void graph_fuse_concats(struct build *b)
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
		graph_provisional_node(b, (uint32_t)reader, &node);
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
void graph_fuse_sums(struct build *b)
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
			graph_provisional_node(b, j, &node);
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
int graph_size_tensors(struct build *b)
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
			return graph_fail(b, -EINVAL,
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
int graph_plan_arena(struct build *b)
{
	struct swarm_graph *g = b->g;
	int32_t *order = malloc(2 * (size_t)g->n_tensors * sizeof *order + 1);
	if (!order)
		return graph_fail(b, -ENOMEM, "out of memory planning the arena");
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
int graph_place(struct build *b)
{
	struct swarm_graph *g = b->g;
	if (g->arena_bytes) {
		g->arena = g->dev->i->alloc(g->dev, g->arena_bytes);
		if (!g->arena)
			return graph_fail(b, -ENOMEM,
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
			return graph_fail(b, -ENOMEM, "out of memory filling the bag offsets");
		for (int64_t r = 0; r < t->t.shape[0]; r++)
			host[r] = r * per_row;
		int rc = g->dev->i->upload(g->dev, t->t.data, host, t->bytes);
		/* An asynchronous device may still read host: wait before freeing it. */
		if (!rc && g->dev->i->synchronize)
			rc = g->dev->i->synchronize(g->dev);
		free(host);
		if (rc)
			return graph_fail(b, rc, "the device could not take the bag offsets (%d)",
					  rc);
		t->base = -1;
	}
	return 0;
}
