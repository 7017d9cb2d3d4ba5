/* graph_run.c: running a built graph (graph.h): the batch's row count written into the
 * tensors that scale with it, the caller's buffers bound (or, on a device whose memory is not
 * host memory, copied through the staging buffers, with the node list captured once per rows
 * value where the device can), and the nodes run in order; and the graph's accessors.
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

size_t swarm_graph_prepared_bytes(const struct swarm_graph *g) { return g ? g->prepared_bytes : 0; }

uint32_t swarm_graph_nodes(const struct swarm_graph *g) { return g ? g->n_nodes : 0; }

const struct swarm_node *swarm_graph_node(const struct swarm_graph *g, uint32_t k)
{
	return g && k < g->n_nodes ? &g->nodes[k] : NULL;
}

void swarm_graph_profile(struct swarm_graph *g, uint64_t *ns) { g->prof = ns; }

uint32_t swarm_graph_max_batch(const struct swarm_graph *g) { return g->max_batch; }
