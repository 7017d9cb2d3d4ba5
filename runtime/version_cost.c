/* version_cost.c: a model version's memory cost, estimated from the registry as a CPU worker
 * would allocate it (version_cost.h). The graph is really built, on a CPU device of its own,
 * because the arena is the planner's answer and nothing cheaper gives it; its weights are
 * read in place from the mapped blob, so the estimate copies nothing but what the CPU device
 * packs while it plans.
 */
#include "runtime/version_cost.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

uint64_t swarm_version_cost_total(const struct swarm_version_cost *c)
{
	return add_sat(add_sat(add_sat(c->weights, c->arena), c->batch), c->prepared);
}

uint64_t swarm_version_batch_buffer_bytes(uint32_t max_batch, uint64_t row)
{
	if (row && max_batch > (UINT64_MAX - 63) / row)
		return UINT64_MAX;
	return ((uint64_t)max_batch * row + 63) / 64 * 64;
}

uint64_t swarm_version_cost_batch(const uint64_t *in_row, uint32_t n_in, const uint64_t *out_row,
				  uint32_t n_out, uint32_t max_batch)
{
	if (max_batch <= 1)
		return 0;
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n_in; i++)
		sum = add_sat(sum, swarm_version_batch_buffer_bytes(max_batch, in_row[i]));
	for (uint32_t i = 0; i < n_out; i++)
		sum = add_sat(sum, swarm_version_batch_buffer_bytes(max_batch, out_row[i]));
	return sum;
}

uint32_t swarm_version_plan_rows(uint32_t max_rows, uint32_t max_batch)
{
	uint32_t rows = max_rows > max_batch ? max_rows : max_batch;
	return rows ? rows : 1;
}

/* Plans m's node list on a fresh CPU device for rows rows over rv's weights blob in dir,
 * mapped read-only, and writes the arena's bytes to *arena and what the device prepared of
 * the weights to *prepared. Returns 0 or -errno with err. */
static int plan_arena(const char *dir, const struct swarm_reg_version *rv,
		      const struct swarm_manifest *m, uint32_t rows, uint64_t *arena,
		      uint64_t *prepared, char *err, size_t err_len)
{
	char path[PATH_MAX], why[512];
	if (swarm_registry_blob_path(dir, rv->weights_sha, path, sizeof path)) {
		snprintf(err, err_len, "registry path too long: %s", dir);
		return -ENAMETOOLONG;
	}
	struct swarm_weights w;
	int rc = swarm_weights_open(path, rv->weights_bytes, NULL, 0, 0, &w, why, sizeof why);
	if (rc) {
		snprintf(err, err_len, "%s", why);
		return rc;
	}
	struct swarm_device *cpu = NULL;
	struct swarm_graph *g = NULL;
	rc = swarm_device_cpu_create(1, &cpu);
	if (rc) {
		snprintf(err, err_len, "cannot create a CPU device: %s", strerror(-rc));
		goto err_unload;
	}
	rc = swarm_graph_from_weights_load(m, &w, cpu, rows, NULL, &g, NULL, why, sizeof why);
	if (rc)
		snprintf(err, err_len, "the graph does not plan on the CPU for %u rows: %s", rows,
			 why);
	else {
		*arena = swarm_graph_arena_bytes(g);
		*prepared = swarm_graph_prepared_bytes(g);
	}
	swarm_graph_free(g);
	cpu->i->destroy(cpu);
err_unload:
	swarm_weights_unload(&w);
	return rc;
}

/* The gather buffers of m's inputs and outputs at max_batch. */
static uint64_t manifest_batch(const struct swarm_manifest *m, uint32_t max_batch)
{
	uint64_t in[SWARM_MAX_TENSORS], out[SWARM_MAX_TENSORS];
	uint32_t n_in = m->n_inputs < SWARM_MAX_TENSORS ? m->n_inputs : SWARM_MAX_TENSORS;
	uint32_t n_out = m->n_outputs < SWARM_MAX_TENSORS ? m->n_outputs : SWARM_MAX_TENSORS;
	for (uint32_t i = 0; i < n_in; i++)
		in[i] = m->inputs[i].row_bytes;
	for (uint32_t i = 0; i < n_out; i++)
		out[i] = m->outputs[i].row_bytes;
	return swarm_version_cost_batch(in, n_in, out, n_out, max_batch);
}

/* Finds name@version (0: active) in r, or says why not. Returns 0 or -ENOENT with err. */
static int find_version(const struct swarm_registry *r, const char *name, uint32_t version,
			struct swarm_reg_version *rv, char *err, size_t err_len)
{
	struct swarm_reg_model model;
	if (swarm_registry_find_model(r, name, &model)) {
		snprintf(err, err_len, "no model %s in %s; `swarm registry list` lists them", name,
			 swarm_registry_dir(r));
		return -ENOENT;
	}
	if (swarm_registry_find_version(r, name, version, rv) == 0)
		return 0;
	if (version)
		snprintf(err, err_len,
			 "model %s has no version %u; `swarm registry show %s` lists them", name,
			 version, name);
	else
		snprintf(err, err_len, "model %s has no active version", name);
	return -ENOENT;
}

int swarm_version_cost_estimate(const struct swarm_registry *r, const char *name, uint32_t version,
				struct swarm_version_cost *out, char *err, size_t err_len)
{
	struct swarm_reg_version rv;
	memset(out, 0, sizeof *out);
	int rc = find_version(r, name, version, &rv, err, err_len);
	if (rc)
		return rc;
	struct swarm_manifest *m = malloc(sizeof *m);
	if (!m) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	rc = swarm_registry_read_manifest(swarm_registry_dir(r), rv.manifest_sha, m, err, err_len);
	if (rc)
		goto out;
	/* The worker is sent the catalog's deploy.max_batch, which publish copied from this
	 * manifest: the same numbers. */
	struct swarm_version_cost c = {
		.weights = rv.weights_bytes,
		.batch = manifest_batch(m, m->deploy.max_batch),
		.rows = swarm_version_plan_rows(m->deploy.max_rows, m->deploy.max_batch),
		.max_batch = m->deploy.max_batch,
		.kind = m->graph_backend[0] ? SWARM_VERSION_COST_BACKEND :
			m->graph.n_nodes    ? SWARM_VERSION_COST_GRAPH :
					      SWARM_VERSION_COST_BUILTIN,
	};
	if (c.kind == SWARM_VERSION_COST_GRAPH)
		rc = plan_arena(swarm_registry_dir(r), &rv, m, c.rows, &c.arena, &c.prepared, err,
				err_len);
	if (!rc)
		*out = c;
out:
	free(m);
	return rc;
}
