/* fuzz_manifest.c: libFuzzer target for the manifest parser (registry/manifest.h). Each input
 * is parsed from a malloc'd buffer of exactly its size, so that ASan catches any read past
 * the end (the text is not NUL-terminated). A parse that succeeds must yield a manifest
 * within every documented limit; a refusal must return -EINVAL with a message. Any
 * violation aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/segment.h"
#include "registry/manifest.h"

static void check_name(const char *name, size_t max)
{
	size_t len = strnlen(name, max);
	if (len == 0 || len >= max)
		abort();
}

static void check_spec(const swarm_tensor_spec *t)
{
	check_name(t->name, SWARM_NAME_MAX);
	uint32_t size = swarm_dtype_size(t->dtype);
	if (size == 0 || t->ndim < 2 || t->ndim > SWARM_MAX_DIMS || t->shape[0] != -1)
		abort();
	uint64_t row = size;
	for (uint32_t i = 1; i < t->ndim; i++) {
		if (t->shape[i] < 1)
			abort();
		row *= (uint64_t)t->shape[i]; /* each partial product was checked <= 1 GiB */
	}
	if (t->row_bytes == 0 || t->row_bytes > (1ull << 30) || t->row_bytes != row)
		abort();
}

static void check_manifest(const struct swarm_manifest *m)
{
	if (m->format != 1)
		abort();
	if (m->n_inputs < 1 || m->n_inputs > SWARM_MAX_TENSORS || m->n_outputs < 1 ||
	    m->n_outputs > SWARM_MAX_TENSORS || m->n_weights > SWARM_MANIFEST_MAX_WEIGHTS)
		abort();
	for (uint32_t i = 0; i < m->n_inputs; i++)
		check_spec(&m->inputs[i]);
	for (uint32_t i = 0; i < m->n_outputs; i++)
		check_spec(&m->outputs[i]);
	/* Exactly one graph form: a built-in's name, or a node list. */
	if (m->graph.n_nodes == 0 && !m->graph_backend[0])
		check_name(m->graph_builtin, SWARM_NAME_MAX);
	else if (m->graph_builtin[0] || m->graph.n_nodes > SWARM_GRAPH_MAX_NODES)
		abort();
	for (uint32_t i = 0; i < m->n_weights; i++) {
		const struct swarm_manifest_weight *w = &m->weights[i];
		check_name(w->name, SWARM_ST_NAME_MAX);
		if (swarm_dtype_size(w->dtype) == 0 || w->ndim > SWARM_ST_MAX_DIMS)
			abort();
		for (uint32_t d = 0; d < w->ndim; d++)
			if (w->shape[d] < 0)
				abort();
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(m->weights[j].name, w->name) == 0)
				abort();
	}
	const struct swarm_deploy_config *c = &m->deploy;
	if (c->max_rows < 1 || c->max_rows > 1048576 || c->max_batch < 1 ||
	    c->max_queue_delay_us > 10000000 || c->slots < 1 || c->slots > 4096 ||
	    c->max_devices < 1 || c->max_devices < c->min_devices || c->max_devices > 64)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct swarm_manifest m;
	char err[256];
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	int rc = swarm_manifest_parse(copy, size, &m, err, sizeof err);
	free(copy);
	if (rc == 0)
		check_manifest(&m);
	else if (rc != -EINVAL || err[0] == '\0' || strnlen(err, sizeof err) == sizeof err)
		abort();
	return 0;
}
