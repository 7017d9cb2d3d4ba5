/* op_math.h: the per-element rules both devices apply, written once: where a resize reads
 * (ONNX's coordinate and nearest modes), where a pad reads, hardsigmoid, and the NaN rule of
 * max and min. The CPU device calls them from C, the CUDA device from its kernels (nvcc
 * compiles them for both sides), so the cross-device op test compares arithmetic, not two
 * readings of the ONNX spec. */
#ifndef SWARM_KERNELS_OP_MATH_H
#define SWARM_KERNELS_OP_MATH_H

#include <math.h>
#include <stdint.h>

#include "kernels/device.h"

#ifdef __CUDACC__
#define SWARM_HD static inline __host__ __device__
#else
#define SWARM_HD static inline
#endif

/* The input coordinate of output coordinate x along a dim of in -> out at scale (ONNX's
 * coordinate_transformation_mode). */
SWARM_HD float swarm_resize_coord(uint32_t mode, int64_t x, float scale, int64_t in, int64_t out)
{
	switch (mode) {
	case SWARM_COORD_ASYMMETRIC:
		return (float)x / scale;
	case SWARM_COORD_ALIGN_CORNERS:
		return out == 1 ? 0.0f : (float)x * (float)(in - 1) / (float)(out - 1);
	case SWARM_COORD_PYTORCH_HALF_PIXEL:
		return out > 1 ? ((float)x + 0.5f) / scale - 0.5f : 0.0f;
	default: /* HALF_PIXEL */
		return ((float)x + 0.5f) / scale - 0.5f;
	}
}

/* The nearest input index of coordinate c (ONNX's nearest_mode), clamped into the input. */
SWARM_HD int64_t swarm_resize_nearest(uint32_t mode, float c, int64_t in)
{
	const float f = floorf(c);
	int64_t i;
	switch (mode) {
	case SWARM_NEAREST_FLOOR:
		i = (int64_t)f;
		break;
	case SWARM_NEAREST_CEIL:
		i = (int64_t)ceilf(c);
		break;
	case SWARM_NEAREST_ROUND_PREFER_CEIL:
		i = c - f >= 0.5f ? (int64_t)f + 1 : (int64_t)f;
		break;
	default: /* ROUND_PREFER_FLOOR */
		i = c - f > 0.5f ? (int64_t)f + 1 : (int64_t)f;
		break;
	}
	return i < 0 ? 0 : i >= in ? in - 1 : i;
}

/* Output index k of a resized dim (in -> out at scale): the input index it reads, and for
 * linear the next one and the weight of that next one (nearest: both the same, weight 0). */
SWARM_HD void swarm_resize_axis(uint32_t coord, uint32_t nearest, int linear, int64_t k,
				float scale, int64_t in, int64_t out, int64_t *i0, int64_t *i1,
				float *f)
{
	float c = swarm_resize_coord(coord, k, scale, in, out);
	if (!linear) {
		*i0 = *i1 = swarm_resize_nearest(nearest, c, in);
		*f = 0.0f;
		return;
	}
	c = c < 0.0f ? 0.0f : c > (float)(in - 1) ? (float)(in - 1) : c;
	const int64_t lo = (int64_t)c;
	*i0 = lo;
	*i1 = lo + 1 < in ? lo + 1 : in - 1;
	*f = c - (float)lo;
}

/* The source index of output index i of a padded dim of size dim whose begin pad is b, -1
 * where the constant goes. Reflect pads are below dim (the op table checks): one fold. */
SWARM_HD int64_t swarm_pad_src(uint32_t mode, int64_t i, int64_t b, int64_t dim)
{
	const int64_t s = i - b;
	if (s >= 0 && s < dim)
		return s;
	switch (mode) {
	case SWARM_PAD_EDGE:
		return s < 0 ? 0 : dim - 1;
	case SWARM_PAD_REFLECT:
		return s < 0 ? -s : 2 * (dim - 1) - s;
	default:
		return -1;
	}
}

/* max(0, min(1, alpha x + beta)) */
SWARM_HD float swarm_hardsigmoid(float x, float alpha, float beta)
{
	const float v = alpha * x + beta;
	return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* max and min propagating NaN, as numpy's maximum and minimum (and ONNX Runtime) do */
SWARM_HD float swarm_max_nan(float x, float y)
{
	return (x != x || y != y) ? x + y : (x > y ? x : y);
}

SWARM_HD float swarm_min_nan(float x, float y)
{
	return (x != x || y != y) ? x + y : (x < y ? x : y);
}

#endif /* SWARM_KERNELS_OP_MATH_H */
