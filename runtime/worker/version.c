/* version.c: the model versions a worker holds. A version's weights are mapped once and
 * shared by every session that uses it; its executor (runtime/executor.h) is a built-in, a
 * node-list graph planned on the worker's device, or a custom backend; on a device with
 * memory of its own (a GPU) the graph reads a device copy of the blob, shared with the
 * other versions of the blob here and, through swarmd, with the other workers on the GPU.
 * A version is unloaded when its last session, or the LOAD that preloaded it, lets go.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"
#include "runtime/log.h"
#include "runtime/version_cost.h"
#include "runtime/worker/worker.h"

/* Loads the custom backend a manifest names (an absolute path, or a bare name in swarmd's
 * --backend-dir), given the version's weights, as x's executor. */
static int backend_load(struct worker *w, struct version *x, const struct swarm_manifest *m,
			uint32_t max_batch, char *why, size_t why_len)
{
	char path[PATH_MAX];
	if (m->graph_backend[0] == '/') {
		swarm_copy_str(path, sizeof path, m->graph_backend);
	} else if (!w->backend_dir[0] || strchr(m->graph_backend, '/')) {
		snprintf(why, why_len,
			 "backend \"%.64s\": give an absolute path, or a bare name with swarmd "
			 "--backend-dir",
			 m->graph_backend);
		return -ENOENT;
	} else if (snprintf(path, sizeof path, "%s/%s", w->backend_dir, m->graph_backend) >=
		   (int)sizeof path) {
		snprintf(why, why_len, "backend path too long");
		return -ENAMETOOLONG;
	}
	return swarm_executor_backend(path, m, &x->w, max_batch, &x->exec, why, why_len);
}

/* Frees x's batch queue, its batch, and its gather buffers (unpinned first) or part tables. */
static void version_free_buffers(struct worker *w, struct version *x)
{
	for (uint32_t i = 0; i < SWARM_MAX_TENSORS; i++) {
		if (x->pinned && x->bin[i])
			w->dev->i->unregister_host(w->dev, x->bin[i]);
		if (x->pinned && x->bout[i])
			w->dev->i->unregister_host(w->dev, x->bout[i]);
		free(x->bin[i]);
		free(x->bout[i]);
	}
	free(x->parts);
	free(x->part_in);
	free(x->part_out);
	free(x->batch);
	free(x->q);
}

/* Pins a version's gather buffers with a device that copies to its own memory, so that a
 * batch's copies are DMA like a lone request's from its slot. All or none: a refusal is
 * logged and costs speed only. */
static void pin_batch_buffers(struct worker *w, struct version *x)
{
	struct swarm_device *d = w->dev;
	if (!d->i->register_host || !d->i->unregister_host)
		return;
	uint32_t n = 0;
	int rc = 0;
	void *buf[2 * SWARM_MAX_TENSORS];
	size_t bytes[2 * SWARM_MAX_TENSORS];
	for (uint32_t i = 0; i < x->n_in; i++) {
		buf[n] = x->bin[i];
		bytes[n++] = swarm_version_batch_buffer_bytes(x->max_batch, x->in_row[i]);
	}
	for (uint32_t i = 0; i < x->n_out; i++) {
		buf[n] = x->bout[i];
		bytes[n++] = swarm_version_batch_buffer_bytes(x->max_batch, x->out_row[i]);
	}
	uint32_t done = 0;
	for (; done < n && !(rc = d->i->register_host(d, buf[done], bytes[done])); done++) {
	}
	if (!rc) {
		x->pinned = 1;
		return;
	}
	while (done-- > 0)
		d->i->unregister_host(d, buf[done]);
	swarm_log(SWARM_LOG_WARN, "event=register_host_failed model=%s version=%u error=\"%s\"",
		  x->model, x->number, strerror(-rc));
}

/* Reads and parses a manifest blob into a new manifest (free it). NULL with why on failure. */
static struct swarm_manifest *load_manifest(struct worker *w, const char *sha, char *why,
					    size_t why_len)
{
	if (!w->registry[0]) {
		snprintf(why, why_len, "no registry to load manifest %s from", sha);
		return NULL;
	}
	struct swarm_manifest *m = malloc(sizeof *m);
	if (!m) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	if (swarm_registry_read_manifest(w->registry, sha, m, why, why_len)) {
		free(m);
		return NULL;
	}
	return m;
}

/* Maps the offered copy of x's blob, if swarmd offered one, into x->dw. The offer is used up
 * either way (the mapping holds its own reference). A copy that does not fit is logged and
 * left: the caller loads from the blob. */
static void take_offer(struct worker *w, struct version *x)
{
	const struct swarm_wshare_entry *o = swarm_wshare_find(&w->offers, w->gpu, x->sha);
	if (!o)
		return;
	char why[SWARM_MSG_TEXT_MAX] = "";
	int rc = swarm_dev_weights_import(w->dev, &x->w.st, o->fd, o->bytes, o->layout, &x->dw, why,
					  sizeof why);
	if (rc)
		swarm_log(SWARM_LOG_WARN,
			  "event=weights_import_failed model=%s version=%u sha=%.16s error=\"%s\" "
			  "fallback=upload",
			  x->model, x->number, x->sha, why);
	swarm_wshare_drop(&w->offers, -1, x->sha); /* closes its fd */
}

/* Builds x's node-list graph on the worker's device. Where the device has memory of its own
 * (a GPU) the graph reads a device copy of the blob, the first of: another loaded version's
 * of the same blob (a swap that changed only the deployment, a rollback while the old one
 * is loaded); the copy of another worker on the GPU that swarmd offered; a new one, made
 * shareable and announced to swarmd. On the CPU the graph reads the mapping. */
static int version_graph(struct worker *w, struct version *x, const struct swarm_manifest *m,
			 uint32_t rows, const struct swarm_load_opts *load,
			 struct swarm_weights_upload *up, char *why, size_t why_len)
{
	struct swarm_device *d = w->dev;
	if (d->i->host_memory)
		return swarm_graph_from_weights_load(m, &x->w, d, rows, load, &x->graph, up, why,
						     why_len);
	const char *how = "shared";
	for (struct version *o = w->versions; o && !x->dw; o = o->next)
		if (o->dw && !strcmp(o->sha, x->sha))
			x->dw = swarm_dev_weights_get(o->dw);
	if (!x->dw) {
		how = "imported";
		take_offer(w, x);
	}
	if (!x->dw) {
		how = "uploaded";
		int rc = swarm_dev_weights_load(d, &x->w, w->gpu >= 0, load, &x->dw, up, why,
						why_len);
		if (rc)
			return rc;
		int fd = -1;
		if (swarm_dev_weights_export(x->dw, &fd) == 0) {
			send_weights(w, SWARM_MSG_WEIGHTS_SHARE, x->sha, x->dw, fd);
			close(fd);
		}
	}
	swarm_log(SWARM_LOG_INFO,
		  "event=weights_device_copy model=%s version=%u sha=%.16s how=%s shareable=%d "
		  "refs=%u bytes=%llu",
		  x->model, x->number, x->sha, how, swarm_dev_weights_shared(x->dw),
		  swarm_dev_weights_refs(x->dw),
		  (unsigned long long)swarm_dev_weights_bytes(x->dw));
	return swarm_graph_from_dev_weights(m, &x->w.st, x->dw, rows, &x->graph, why, why_len);
}

/* Drops x's reference to its device copy (its graph, freed before, dropped its own). When no
 * other version here uses the blob, swarmd is told that this worker no longer offers it; the
 * memory stays for as long as other workers map it. x is not in w->versions. */
static void version_drop_weights(struct worker *w, struct version *x)
{
	if (!x->dw)
		return;
	int shared = swarm_dev_weights_shared(x->dw);
	swarm_dev_weights_put(x->dw);
	x->dw = NULL;
	for (struct version *o = w->versions; o; o = o->next)
		if (o->dw && !strcmp(o->sha, x->sha))
			return;
	if (shared && w->gpu >= 0)
		send_weights(w, SWARM_MSG_WEIGHTS_UNSHARE, x->sha, NULL, -1);
}

/* Sets x's tensors (row bytes of each input and output) from its built-in model or, for a
 * node-list graph, from the manifest v names, which it reads into *m (the caller frees it).
 * Returns 0 or -1 with why. */
static int version_tensors(struct worker *w, struct version *x, const struct swarm_msg_version *v,
			   struct swarm_manifest **m, char *why, size_t why_len)
{
	const swarm_tensor_spec *ins, *outs;
	if (x->desc) {
		x->n_in = x->desc->n_inputs;
		x->n_out = x->desc->n_outputs;
		ins = x->desc->inputs;
		outs = x->desc->outputs;
	} else {
		char msha[72];
		swarm_copy_str(msha, sizeof msha, v->manifest_sha);
		if (!(*m = load_manifest(w, msha, why, why_len)))
			return -1;
		x->n_in = (*m)->n_inputs;
		x->n_out = (*m)->n_outputs;
		ins = (*m)->inputs;
		outs = (*m)->outputs;
	}
	for (uint32_t i = 0; i < x->n_in; i++)
		x->in_row[i] = ins[i].row_bytes;
	for (uint32_t i = 0; i < x->n_out; i++)
		x->out_row[i] = outs[i].row_bytes;
	return 0;
}

/* Points ptrs[i] at the tensor of x's mapped blob that x's built-in model needs as its
 * weight i, checked by name, dtype and shape. Returns 0 or -1 with why. */
static int bind_builtin_weights(struct version *x, const void **ptrs, char *why, size_t why_len)
{
	const struct swarm_model_desc *desc = x->desc;
	for (uint32_t i = 0; i < desc->n_weights; i++) {
		const struct swarm_weight_spec *ws = &desc->weights[i];
		const struct swarm_st_tensor *t = swarm_st_find(&x->w.st, ws->name);
		int ok = t && swarm_st_to_swarm_dtype(t->dtype) == ws->dtype && t->ndim == ws->ndim;
		for (uint32_t k = 0; ok && k < ws->ndim; k++)
			ok = t->shape[k] == ws->shape[k];
		if (!ok) {
			snprintf(why, why_len,
				 "weights %s: tensor \"%s\" missing or not as %s needs", x->sha,
				 ws->name, desc->name);
			return -1;
		}
		ptrs[i] = (const char *)x->w.map + t->offset;
	}
	return 0;
}

/* Counts a load's upload in the stats page and logs the load. */
static void log_loaded(struct worker *w, const struct version *x,
		       const struct swarm_weights_upload *up, int verify)
{
	if (up->bytes) {
		double mbps = up->gbps * 1e3;
		swarm_stat_add(&w->stats->weights_bytes_loaded, up->bytes);
		swarm_stat_set32(&w->stats->weights_mbps_last,
				 mbps >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)mbps);
	}
	if (x->ms) {
		/* The rate of the copy to the device where there is one, else of the mapping. */
		uint64_t ns = up->bytes ? up->ns : x->w.load_ns;
		uint64_t bytes = up->bytes ? up->bytes : x->w.bytes;
		swarm_stat_add(&x->ms->loads, 1);
		swarm_stat_add(&x->ms->load_bytes, x->w.bytes);
		swarm_stat_add(&x->ms->load_ns, x->w.load_ns);
		swarm_stat_add(&x->ms->upload_bytes, up->bytes);
		__atomic_store_n(&x->ms->load_bytes_per_s,
				 ns ? (uint64_t)((double)bytes / (double)ns * 1e9) : 0,
				 __ATOMIC_RELAXED);
	}
	static int fallback_logged;
	if (up->fell_back && !fallback_logged++)
		swarm_log(SWARM_LOG_WARN, "event=load_mode_fallback mode=%s reason=\"%s\"",
			  swarm_load_mode_name(w->load.mode), up->note);
	/* gbps: mapping, first touch (and verify); upload_*: the copy to the device (verified
	 * as read), none on a host-memory device; mode: how it read the blob. */
	double s_ = (double)x->w.load_ns / 1e9;
	swarm_log(SWARM_LOG_INFO,
		  "event=weights_loaded model=%s version=%u bytes=%zu ms=%.2f gbps=%.2f "
		  "verified=%d graph=%s upload=%s mode=%s mode_note=\"%s\" "
		  "upload_bytes=%llu upload_copies=%u upload_ms=%.2f upload_gbps=%.2f",
		  x->model, x->number, x->w.bytes, s_ * 1e3,
		  s_ > 0 ? (double)x->w.bytes / s_ / 1e9 : 0.0, verify,
		  x->desc ? x->desc->name : x->exec->i->kind,
		  !up->bytes   ? "none" :
		  up->streamed ? "streamed" :
				 "plain",
		  up->bytes ? swarm_load_mode_name(up->mode) : "none", up->note,
		  (unsigned long long)up->bytes, up->copies, (double)up->ns / 1e6, up->gbps);
}

/* Maps x's weights blob (v says its size), touches (and verifies) it, and makes what
 * computes on it: a built-in's weights bound into ptrs, or manifest m's graph or backend.
 * Returns 0; -1 with why when the blob did not open (nothing to undo); -2 with why when it
 * did (the caller unloads it). */
static int version_open_blob(struct worker *w, struct version *x, const struct swarm_msg_version *v,
			     const struct swarm_manifest *m, const struct swarm_load_opts *load,
			     int verify, const void **ptrs, char *why, size_t why_len)
{
	struct swarm_weights_upload up = { 0 }; /* stays zero for built-ins and backends */
	char path[PATH_MAX];
	if (!w->registry[0] || swarm_registry_blob_path(w->registry, x->sha, path, sizeof path)) {
		snprintf(why, why_len, "no registry to load weights %s from", x->sha);
		return -1;
	}
	/* Only what computes on the mapping needs its pages touched; a GPU's upload reads the
	 * blob itself (and verifies it as it reads). */
	int touch = w->dev->i->host_memory || x->desc || (m && m->graph_backend[0]);
	if (swarm_weights_open(path, v->weights_bytes, x->sha, verify, touch, &x->w, why, why_len))
		return -1;
	if (x->desc && bind_builtin_weights(x, ptrs, why, why_len))
		return -2;
	if (m) {
		/* The plan covers the largest batch the version will run. */
		uint32_t rows = swarm_version_plan_rows(m->deploy.max_rows, x->max_batch);
		if (m->graph_backend[0] ? backend_load(w, x, m, rows, why, why_len) :
					  version_graph(w, x, m, rows, load, &up, why, why_len))
			return -2;
		if (x->graph && swarm_executor_graph_take(x->graph, &x->exec)) {
			snprintf(why, why_len, "out of memory");
			return -2;
		}
	}
	log_loaded(w, x, &up, verify);
	return 0;
}

/* Allocates what x's batches need when it batches (max_batch > 1): the batch, and either
 * the gather buffers (pinned with the device where it can) or, for a staged graph, the part
 * table. Returns 0 or -ENOMEM with why. */
static int version_batch_buffers(struct worker *w, struct version *x, char *why, size_t why_len)
{
	if (x->max_batch <= 1)
		return 0;
	uint32_t n = x->max_batch < BATCH_MAX_REQUESTS ? x->max_batch : BATCH_MAX_REQUESTS;
	/* A staged graph copies each request's rows from its slot to the device: no gather
	 * buffers, a part table instead. */
	int parts = x->graph && swarm_graph_staged(x->graph);
	x->batch = calloc(n, sizeof *x->batch);
	int ok = x->batch != NULL;
	if (parts) {
		ok = ok && (x->parts = calloc(n, sizeof *x->parts)) &&
		     (x->part_in = calloc((size_t)n * (x->n_in + 1), sizeof *x->part_in)) &&
		     (x->part_out = calloc((size_t)n * (x->n_out + 1), sizeof *x->part_out));
	}
	for (uint32_t i = 0; ok && !parts && i < x->n_in; i++)
		ok = (x->bin[i] = aligned_alloc(64, swarm_version_batch_buffer_bytes(
							    x->max_batch, x->in_row[i]))) != NULL;
	for (uint32_t i = 0; ok && !parts && i < x->n_out; i++)
		ok = (x->bout[i] = aligned_alloc(64, swarm_version_batch_buffer_bytes(
							     x->max_batch, x->out_row[i]))) != NULL;
	if (!ok) {
		snprintf(why, why_len, "out of memory for batches of %u rows", x->max_batch);
		return -ENOMEM;
	}
	if (x->graph && !parts) /* built-ins and backends compute on the host */
		pin_batch_buffers(w, x);
	swarm_log(SWARM_LOG_INFO, "event=batching model=%s version=%u max_batch=%u path=%s",
		  x->model, x->number, x->max_batch, parts ? "slots" : "gather");
	return 0;
}

/* Tells swarmd that x is loaded (1) or let go (0), with what it holds for x on the device: its
 * weights (the device copy on a GPU, the mapping on the CPU, counted in full although the CPU
 * reads it in place), its graph's arena at max_batch, what the device prepared of the weights
 * when it built the graph (the CPU's packed copies) and, on a device that computes in host
 * memory, its gather buffers. */
static void version_report(struct worker *w, const struct version *x, int loaded)
{
	uint64_t weights = x->dw ? swarm_dev_weights_bytes(x->dw) : x->w.bytes;
	uint64_t other = x->graph ? swarm_graph_arena_bytes(x->graph) +
					    swarm_graph_prepared_bytes(x->graph) :
				    0;
	/* The gather buffers are the device's memory only where it is the host's (a staged
	 * graph has part tables instead, and host buffers are not a GPU's memory). */
	if (w->dev->i->host_memory)
		other += swarm_version_cost_batch(x->in_row, x->n_in, x->out_row, x->n_out,
						  x->max_batch);
	send_residency(w, x->model, x->number, loaded, x->sha, weights, other);
}

/* Checks what v names and finds its graph: its built-in model (*desc), or NULL for a
 * node-list graph. Returns 0, or -1 with why for an unknown built-in, a node-list graph
 * without weights, or a max_batch above SWARM_MAX_BATCH_ROWS. */
static int version_check(const struct swarm_msg_version *v, const char *sha,
			 const struct swarm_model_desc **desc, char *why, size_t why_len)
{
	*desc = NULL;
	if (v->builtin_id) {
		*desc = swarm_builtin_by_id(v->builtin_id);
		if (!*desc) {
			snprintf(why, why_len, "unknown built-in graph %u", v->builtin_id);
			return -1;
		}
	} else if (!sha[0]) {
		snprintf(why, why_len, "a node-list graph without weights");
		return -1;
	}
	/* The batch buffers are max_batch rows of each tensor: a value beyond what a manifest
	 * may ask (swarmd sends the manifest's) would have the worker allocate without a bound. */
	if (v->max_batch > SWARM_MAX_BATCH_ROWS) {
		snprintf(why, why_len, "max_batch %u above the limit of %u rows", v->max_batch,
			 SWARM_MAX_BATCH_ROWS);
		return -1;
	}
	return 0;
}

/* Loading maps the weights blob, touches (and verifies) it, and either binds a built-in
 * graph's weights by name, dtype and shape, or plans the manifest's node list on the
 * worker's device with the weights read in place. */
struct version *version_load(struct worker *w, const struct swarm_msg_version *v,
			     const struct swarm_weights_hook *hook, int verify, char *why,
			     size_t why_len)
{
	char model[SWARM_NAME_MAX], sha[72];
	swarm_copy_str(model, sizeof model, v->model);
	swarm_copy_str(sha, sizeof sha, v->weights_sha);
	struct swarm_load_opts load = w->load;
	load.hook = hook;
	const struct swarm_model_desc *desc;
	if (version_check(v, sha, &desc, why, why_len))
		return NULL;
	for (struct version *x = w->versions; x; x = x->next)
		if (x->desc == desc && !strcmp(x->sha, sha) && !strcmp(x->model, model) &&
		    x->number == v->version) {
			x->refs++;
			return x;
		}
	struct version *x = calloc(1, sizeof *x);
	struct swarm_manifest *m = NULL;
	if (!x) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	memcpy(x->model, model, sizeof x->model);
	memcpy(x->sha, sha, sizeof x->sha);
	x->number = v->version;
	x->ms = w->stats ? swarm_stats_model(w->stats, model, v->version) : NULL;
	x->desc = desc;
	x->max_batch = v->max_batch;
	x->delay_ns = (uint64_t)v->max_queue_delay_us * 1000;
	if (version_tensors(w, x, v, &m, why, why_len))
		goto err_free;
	const void *ptrs[SWARM_BUILTIN_MAX_WEIGHTS] = { 0 }; /* a built-in's weights */
	if (!sha[0]) {
		for (uint32_t i = 0; i < desc->n_weights; i++)
			ptrs[i] = desc->default_weights[i];
	} else {
		int rc = version_open_blob(w, x, v, m, &load, verify, ptrs, why, why_len);
		if (rc == -1)
			goto err_free;
		if (rc)
			goto err_unload;
	}
	free(m);
	m = NULL;
	if (desc && swarm_executor_builtin(desc, ptrs, &x->exec)) {
		snprintf(why, why_len, "out of memory");
		goto err_unload;
	}
	if (version_batch_buffers(w, x, why, why_len))
		goto err_unload;
	x->refs = 1;
	x->next = w->versions;
	w->versions = x;
	version_report(w, x, 1);
	return x;

err_unload:
	/* The executor owns the graph once it holds it; before, the graph is still x's. */
	if (x->exec)
		swarm_executor_free(x->exec);
	else
		swarm_graph_free(x->graph);
	version_drop_weights(w, x);
	version_free_buffers(w, x);
	swarm_weights_unload(&x->w);
err_free:
	free(m);
	free(x);
	return NULL;
}

struct version *version_adopt(struct worker *w, const struct swarm_msg_version *v,
			      struct swarm_executor *exec, const struct swarm_seg_geometry *g,
			      char *why, size_t why_len)
{
	struct version *x = calloc(1, sizeof *x);
	if (!x) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	swarm_copy_str(x->model, sizeof x->model, v->model);
	swarm_copy_str(x->sha, sizeof x->sha, v->weights_sha);
	x->number = v->version;
	x->ms = w->stats ? swarm_stats_model(w->stats, x->model, v->version) : NULL;
	x->max_batch = v->max_batch;
	x->delay_ns = (uint64_t)v->max_queue_delay_us * 1000;
	x->n_in = g->n_inputs;
	x->n_out = g->n_outputs;
	for (uint32_t i = 0; i < x->n_in; i++)
		x->in_row[i] = g->tensor_row_bytes[i];
	for (uint32_t i = 0; i < x->n_out; i++)
		x->out_row[i] = g->tensor_row_bytes[x->n_in + i];
	x->exec = exec;
	if (version_batch_buffers(w, x, why, why_len)) {
		version_free_buffers(w, x);
		free(x);
		return NULL;
	}
	x->refs = 1;
	x->next = w->versions;
	w->versions = x;
	version_report(w, x, 1);
	return x;
}

struct version *version_get(struct worker *w, const struct swarm_msg_version *v, char *why,
			    size_t why_len)
{
	return version_load(w, v, NULL, w->verify_blobs, why, why_len);
}

int version_fits(const struct version *v, const struct swarm_seg_geometry *g)
{
	if (g->n_inputs != v->n_in || g->n_outputs != v->n_out)
		return 0;
	for (uint32_t i = 0; i < v->n_in; i++)
		if (g->tensor_row_bytes[i] != v->in_row[i])
			return 0;
	for (uint32_t i = 0; i < v->n_out; i++)
		if (g->tensor_row_bytes[v->n_in + i] != v->out_row[i])
			return 0;
	return v->exec->i->fits(v->exec, g->max_rows);
}

/* Frees v, which nothing holds any more, and says so to swarmd. */
static void version_unload(struct worker *w, struct version *v)
{
	for (struct version **p = &w->versions; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	if (v->w.map)
		swarm_log(SWARM_LOG_INFO, "event=weights_unloaded model=%s version=%u bytes=%zu",
			  v->model, v->number, v->w.bytes);
	version_report(w, v, 0);
	swarm_executor_free(v->exec); /* and its graph */
	version_drop_weights(w, v);
	swarm_weights_unload(&v->w);
	version_free_buffers(w, v);
	free(v);
}

void version_put(struct worker *w, struct version *v)
{
	if (!v || --v->refs)
		return;
	if (w->keep_idle) {
		/* Resident until swarmd evicts it (UNLOAD): the next session of it here finds
		 * it loaded. */
		swarm_log(SWARM_LOG_DEBUG, "event=version_idle model=%s version=%u", v->model,
			  v->number);
		return;
	}
	version_unload(w, v);
}

int version_drop(struct worker *w, const char *model, uint32_t number)
{
	int found = -ENOENT;
	for (struct version *v = w->versions, *next; v; v = next) {
		next = v->next;
		if (v->number != number || strcmp(v->model, model))
			continue;
		if (v->refs) {
			found = -EBUSY;
			continue;
		}
		version_unload(w, v);
		if (found == -ENOENT)
			found = 0;
	}
	return found;
}

void versions_free_idle(struct worker *w)
{
	for (struct version *v = w->versions, *next; v; v = next) {
		next = v->next;
		if (!v->refs)
			version_unload(w, v);
	}
}

void version_unpin(struct worker *w, const char *model, uint32_t number)
{
	for (struct version *v = w->versions, *next; v; v = next) {
		next = v->next;
		if (v->preloaded && v->number == number && !strcmp(v->model, model)) {
			v->preloaded = 0;
			version_put(w, v);
		}
	}
}
