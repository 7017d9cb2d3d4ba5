/* executor.c: the three executors of executor.h: a built-in model, a planned graph, a custom
 * backend loaded with dlopen. Each is a struct that starts with struct swarm_executor.
 */
#include "runtime/executor.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swarm/swarm_backend.h"

/* ---- a built-in model ------------------------------------------------------------------------ */

struct builtin_exec {
	struct swarm_executor x;
	const struct swarm_model_desc *desc;
	const void *w[SWARM_BUILTIN_MAX_WEIGHTS];
};

static int builtin_run(struct swarm_executor *x, const void *const *in, void *const *out,
		       uint32_t rows)
{
	struct builtin_exec *b = (struct builtin_exec *)x;
	return b->desc->run(in, out, rows, b->w);
}

static int builtin_fits(const struct swarm_executor *x, uint32_t max_rows)
{
	return max_rows <= ((const struct builtin_exec *)x)->desc->max_rows;
}

static void builtin_free(struct swarm_executor *x) { free(x); }

static const struct swarm_executor_i builtin_i = {
	.kind = "builtin", .run = builtin_run, .fits = builtin_fits, .free = builtin_free
};

int swarm_executor_builtin(const struct swarm_model_desc *desc, const void *const *weights,
			   struct swarm_executor **out)
{
	if (!desc || !out || desc->n_weights > SWARM_BUILTIN_MAX_WEIGHTS ||
	    (desc->n_weights && !weights))
		return -EINVAL;
	struct builtin_exec *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->x.i = &builtin_i;
	b->desc = desc;
	for (uint32_t i = 0; i < desc->n_weights; i++)
		b->w[i] = weights[i];
	*out = &b->x;
	return 0;
}

/* ---- a planned graph ------------------------------------------------------------------------- */

struct graph_exec {
	struct swarm_executor x;
	struct swarm_graph *g;
};

static int graph_run(struct swarm_executor *x, const void *const *in, void *const *out,
		     uint32_t rows)
{
	return swarm_graph_run(((struct graph_exec *)x)->g, rows, in, out);
}

static int graph_fits(const struct swarm_executor *x, uint32_t max_rows)
{
	return max_rows <= swarm_graph_max_batch(((const struct graph_exec *)x)->g);
}

static void graph_free(struct swarm_executor *x)
{
	swarm_graph_free(((struct graph_exec *)x)->g);
	free(x);
}

static const struct swarm_executor_i graph_i = {
	.kind = "nodes", .run = graph_run, .fits = graph_fits, .free = graph_free
};

int swarm_executor_graph_take(struct swarm_graph *g, struct swarm_executor **out)
{
	if (!g || !out)
		return -EINVAL;
	struct graph_exec *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	e->x.i = &graph_i;
	e->g = g;
	*out = &e->x;
	return 0;
}

struct swarm_graph *swarm_executor_graph(const struct swarm_executor *x)
{
	return x && x->i == &graph_i ? ((const struct graph_exec *)x)->g : NULL;
}

/* ---- a custom backend ------------------------------------------------------------------------ */

struct backend_exec {
	struct swarm_executor x;
	void *dl;
	const struct swarm_backend *bk;
	void *state;
	struct swarm_backend_tensor *tensors;
};

static int backend_run(struct swarm_executor *x, const void *const *in, void *const *out,
		       uint32_t rows)
{
	struct backend_exec *b = (struct backend_exec *)x;
	struct swarm_backend_batch batch = { .rows = rows, .inputs = in, .outputs = out };
	return b->bk->execute(b->state, &batch);
}

static int backend_fits(const struct swarm_executor *x, uint32_t max_rows)
{
	/* The backend was told max_batch at init; a session's requests are the worker's to
	 * bound (the manifest's max_rows), as for any model without a plan. */
	(void)x;
	(void)max_rows;
	return 1;
}

static void backend_free(struct swarm_executor *x)
{
	struct backend_exec *b = (struct backend_exec *)x;
	if (b->bk && b->state)
		b->bk->destroy(b->state);
	if (b->dl)
		dlclose(b->dl);
	free(b->tensors);
	free(b);
}

static const struct swarm_executor_i backend_i = {
	.kind = "backend", .run = backend_run, .fits = backend_fits, .free = backend_free
};

int swarm_executor_backend(const char *path, const struct swarm_manifest *m,
			   const struct swarm_weights *w, uint32_t max_batch,
			   struct swarm_executor **out, char *why, size_t why_len)
{
	struct backend_exec *b = calloc(1, sizeof *b);
	int rc;
	if (!b) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	b->x.i = &backend_i;
	b->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!b->dl) {
		snprintf(why, why_len, "cannot load backend: %.200s", dlerror());
		rc = -ENOENT;
		goto err;
	}
	swarm_backend_entry_fn entry = (swarm_backend_entry_fn)dlsym(b->dl, SWARM_BACKEND_ENTRY);
	const struct swarm_backend *bk = entry ? entry() : NULL;
	if (!bk || bk->abi_version != SWARM_BACKEND_ABI_VERSION || bk->struct_size < sizeof *bk ||
	    !bk->init || !bk->load || !bk->execute || !bk->destroy) {
		snprintf(why, why_len,
			 "backend %.64s: no %s, or another ABI (it says %u, swarm speaks %u)",
			 m->graph_backend, SWARM_BACKEND_ENTRY, bk ? bk->abi_version : 0,
			 SWARM_BACKEND_ABI_VERSION);
		rc = -EPROTO;
		goto err;
	}
	b->bk = bk;
	struct swarm_backend_model model = { .n_inputs = m->n_inputs,
					     .n_outputs = m->n_outputs,
					     .inputs = m->inputs,
					     .outputs = m->outputs,
					     .max_batch = max_batch,
					     .config = m->graph_config };
	rc = bk->init(&model, &b->state);
	if (rc) {
		snprintf(why, why_len, "backend %.64s: init failed: %s", bk->name ? bk->name : "?",
			 strerror(rc < 0 ? -rc : rc));
		b->state = NULL;
		rc = rc < 0 ? rc : -EIO;
		goto err;
	}
	uint32_t n = w->st.n_tensors;
	if (!(b->tensors = calloc(n ? n : 1, sizeof *b->tensors))) {
		snprintf(why, why_len, "out of memory for the backend's tensor list");
		rc = -ENOMEM;
		goto err;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct swarm_st_tensor *t = &w->st.tensors[i];
		struct swarm_backend_tensor *o = &b->tensors[i];
		o->name = t->name;
		o->dtype = swarm_st_to_swarm_dtype(t->dtype);
		o->ndim = t->ndim;
		for (uint32_t k = 0; k < t->ndim && k < 8; k++)
			o->shape[k] = t->shape[k];
		o->data = (const char *)w->map + t->offset;
		o->bytes = t->nbytes;
	}
	struct swarm_backend_weights wv = { .n = n, .tensors = b->tensors };
	rc = bk->load(b->state, &wv);
	if (rc) {
		snprintf(why, why_len, "backend %.64s: load failed: %s", bk->name ? bk->name : "?",
			 strerror(rc < 0 ? -rc : rc));
		rc = rc < 0 ? rc : -EIO;
		goto err;
	}
	*out = &b->x;
	return 0;

err:
	backend_free(&b->x);
	return rc;
}

void swarm_executor_free(struct swarm_executor *x)
{
	if (x)
		x->i->free(x);
}
