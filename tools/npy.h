/* npy.h: NumPy's .npy files (format versions 1 to 3, C order, little-endian), read whole and
 * written whole: `swarm run`'s inputs and outputs, and the ONNX benchmark's inputs. */
#ifndef SWARM_TOOLS_NPY_H
#define SWARM_TOOLS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/swarm.h"

struct swarm_npy {
	uint32_t dtype; /* a swarm_dtype */
	uint32_t ndim;
	int64_t shape[SWARM_MAX_DIMS + 1];
	void *data; /* malloc'd; free() it */
	size_t bytes;
};

/* Reads path (dtypes float32, float16, int64, int32, uint8). Returns 0, or -1 with why. */
int swarm_npy_read(const char *path, struct swarm_npy *n, char *why, size_t len);

/* Writes bytes of data as a .npy of dtype and shape. Returns 0 or a negative errno
 * (-ENOTSUP for a dtype numpy has no name for, bfloat16). */
int swarm_npy_write(const char *path, uint32_t dtype, uint32_t ndim, const int64_t *shape,
		    const void *data, size_t bytes);

/* "float32", "int64", ... ("?" for none). */
const char *swarm_npy_dtype_name(uint32_t dt);

#endif /* SWARM_TOOLS_NPY_H */
