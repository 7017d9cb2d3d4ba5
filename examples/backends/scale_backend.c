/* scale_backend.c: an example custom backend (include/swarm/swarm_backend.h).
 *
 * y = factor * x + bias, elementwise over f32 rows, where factor comes from the manifest's
 * graph.config ("factor=3") and bias is the weight "bias" (f32, one value per column).
 * Built as a shared object (libswarm_example_backend.so) and served by the e2e tests. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm_backend.h>

struct state {
	uint32_t width; /* floats per row */
	float factor;
	const float *bias; /* in the mapped weights */
};

static int scale_init(const struct swarm_backend_model *m, void **out)
{
	if (m->n_inputs != 1 || m->n_outputs != 1 || m->inputs[0].dtype != SWARM_DTYPE_F32 ||
	    m->outputs[0].dtype != SWARM_DTYPE_F32 ||
	    m->inputs[0].row_bytes != m->outputs[0].row_bytes)
		return -EINVAL;
	struct state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->width = (uint32_t)(m->inputs[0].row_bytes / sizeof(float));
	s->factor = 1.0f;
	const char *f = strstr(m->config, "factor=");
	if (f)
		s->factor = strtof(f + 7, NULL);
	*out = s;
	return 0;
}

static int scale_load(void *state, const struct swarm_backend_weights *w)
{
	struct state *s = state;
	for (uint32_t i = 0; i < w->n; i++) {
		const struct swarm_backend_tensor *t = &w->tensors[i];
		if (strcmp(t->name, "bias") == 0 && t->dtype == SWARM_DTYPE_F32 &&
		    t->bytes == s->width * sizeof(float)) {
			s->bias = t->data;
			return 0;
		}
	}
	return -ENOENT;
}

static int scale_execute(void *state, const struct swarm_backend_batch *b)
{
	const struct state *s = state;
	const float *x = b->inputs[0];
	float *y = b->outputs[0];
	for (uint32_t r = 0; r < b->rows; r++, x += s->width, y += s->width)
		for (uint32_t i = 0; i < s->width; i++)
			y[i] = s->factor * x[i] + s->bias[i];
	return 0;
}

static void scale_destroy(void *state) { free(state); }

static const struct swarm_backend backend = {
	.abi_version = SWARM_BACKEND_ABI_VERSION,
	.struct_size = sizeof(struct swarm_backend),
	.name = "scale",
	.init = scale_init,
	.load = scale_load,
	.execute = scale_execute,
	.destroy = scale_destroy,
};

__attribute__((visibility("default"))) const struct swarm_backend *swarm_backend_entry(void)
{
	return &backend;
}
