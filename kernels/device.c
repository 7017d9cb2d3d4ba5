/* device.c: what every device shares, whatever runs the ops: op names (the manifest's
 * spelling, e.g. "linear") and the element count of a tensor, checked for overflow.
 */
#include "kernels/device.h"

#include <string.h>

static const char *const op_names[SWARM_OP_COUNT] = {
	[SWARM_OP_IDENTITY] = "identity",
	[SWARM_OP_LINEAR] = "linear",
	[SWARM_OP_MATMUL] = "matmul",
	[SWARM_OP_ADD] = "add",
	[SWARM_OP_MUL] = "mul",
	[SWARM_OP_RELU] = "relu",
	[SWARM_OP_GELU] = "gelu",
	[SWARM_OP_SIGMOID] = "sigmoid",
	[SWARM_OP_TANH] = "tanh",
	[SWARM_OP_SOFTMAX] = "softmax",
	[SWARM_OP_LAYERNORM] = "layernorm",
	[SWARM_OP_EMBEDDING] = "embedding",
	[SWARM_OP_EMBEDDING_BAG] = "embedding_bag",
	[SWARM_OP_CONCAT] = "concat",
	[SWARM_OP_ATTENTION] = "attention",
	[SWARM_OP_MEAN_POOL] = "mean_pool",
	[SWARM_OP_L2NORM] = "l2norm",
};

const char *swarm_op_name(uint32_t op)
{
	if (op >= SWARM_OP_COUNT)
		return NULL;
	return op_names[op];
}

int swarm_op_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int op = 0; op < SWARM_OP_COUNT; op++) {
		if (op_names[op] && strcmp(op_names[op], name) == 0)
			return op;
	}
	return -1;
}

int64_t swarm_tensor_elems(const struct swarm_tensor *t)
{
	if (!t || t->ndim > SWARM_TENSOR_MAX_DIMS)
		return -1;
	int64_t n = 1;
	for (uint32_t i = 0; i < t->ndim; i++) {
		int64_t d = t->shape[i];
		if (d < 0)
			return -1;
		/* A zero dimension makes the product zero whatever follows, but the rest must
		 * still be valid dimensions, so keep checking them. */
		if (d != 0 && n > INT64_MAX / d)
			return -1;
		n *= d;
	}
	return n;
}

#ifndef SWARM_HAVE_CUDA
#include <errno.h>

/* A build without nvcc has no CUDA device; kernels/cuda/cuda_device.cu defines the real one. */
int swarm_device_cuda_create(int ordinal, struct swarm_device **out)
{
	(void)ordinal;
	if (out)
		*out = NULL;
	return -ENOTSUP;
}

const struct swarm_device_i *swarm_device_cuda_table(void) { return NULL; }
#endif
