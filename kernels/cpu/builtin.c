/* builtin.c: the built-in CPU models (see kernels/builtin.h). */
#include "kernels/builtin.h"

#include <string.h>

#define AFFINE_WIDTH 16
#define IDENTITY_WIDTH 64

static int identity_run(const void *const *in, void *const *out, uint32_t rows,
			const void *const *w)
{
	(void)w;
	memcpy(out[0], in[0], (size_t)rows * IDENTITY_WIDTH);
	return 0;
}

static int affine_run(const void *const *in, void *const *out, uint32_t rows, const void *const *w)
{
	const float *x = in[0];
	const float *scale = w[0], *bias = w[1];
	float *y = out[0];
	/* Plain loops: gcc vectorises the inner one at -O2 and above. */
	for (uint32_t r = 0; r < rows; r++, x += AFFINE_WIDTH, y += AFFINE_WIDTH)
		for (uint32_t i = 0; i < AFFINE_WIDTH; i++)
			y[i] = scale[i] * x[i] + bias[i];
	return 0;
}

static const float affine_scale[AFFINE_WIDTH] = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 };
static const float affine_bias[AFFINE_WIDTH] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

static const struct swarm_model_desc models[] = {
	{
		.name = "identity",
		.id = SWARM_MODEL_IDENTITY,
		.version = 1,
		.n_inputs = 1,
		.n_outputs = 1,
		.inputs = { { .name = "x",
			      .dtype = SWARM_DTYPE_U8,
			      .ndim = 2,
			      .shape = { -1, IDENTITY_WIDTH },
			      .row_bytes = IDENTITY_WIDTH } },
		.outputs = { { .name = "y",
			       .dtype = SWARM_DTYPE_U8,
			       .ndim = 2,
			       .shape = { -1, IDENTITY_WIDTH },
			       .row_bytes = IDENTITY_WIDTH } },
		.default_slots = 8,
		.max_rows = 262144, /* 16 MiB a request */
		.run = identity_run,
	},
	{
		.name = "affine",
		.id = SWARM_MODEL_AFFINE,
		.version = 1,
		.n_inputs = 1,
		.n_outputs = 1,
		.inputs = { { .name = "x",
			      .dtype = SWARM_DTYPE_F32,
			      .ndim = 2,
			      .shape = { -1, AFFINE_WIDTH },
			      .row_bytes = AFFINE_WIDTH * 4 } },
		.outputs = { { .name = "y",
			       .dtype = SWARM_DTYPE_F32,
			       .ndim = 2,
			       .shape = { -1, AFFINE_WIDTH },
			       .row_bytes = AFFINE_WIDTH * 4 } },
		.default_slots = 8,
		.max_rows = 1024,
		.n_weights = 2,
		.weights = { { .name = "scale",
			       .dtype = SWARM_DTYPE_F32,
			       .ndim = 1,
			       .shape = { AFFINE_WIDTH } },
			     { .name = "bias",
			       .dtype = SWARM_DTYPE_F32,
			       .ndim = 1,
			       .shape = { AFFINE_WIDTH } } },
		.default_weights = { affine_scale, affine_bias },
		.run = affine_run,
	},
};

const struct swarm_model_desc *swarm_builtin_all(uint32_t *n)
{
	*n = sizeof models / sizeof models[0];
	return models;
}

const struct swarm_model_desc *swarm_builtin_find(const char *name, uint32_t version)
{
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
		if (strcmp(models[i].name, name) == 0 &&
		    (version == 0 || version == models[i].version))
			return &models[i];
	return NULL;
}

const struct swarm_model_desc *swarm_builtin_by_id(uint32_t id)
{
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
		if (models[i].id == id)
			return &models[i];
	return NULL;
}
