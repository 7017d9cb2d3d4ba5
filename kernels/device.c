/* device.c: what every device shares, whatever runs the ops: the element count of a tensor,
 * checked for overflow (op names and contracts are the op table's, kernels/op.c).
 */
#include "kernels/device.h"

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
