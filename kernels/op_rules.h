/* op_rules.h: what the two files of op contracts share (op.c: the table, and the rules of
 * elementwise, GEMM, lookup, shape and attention ops; op_vision.c: convolution, pooling,
 * reductions and layout ops): the checks every rule uses, and the rules op_vision.c defines
 * for the table. Internal to kernels/. */
#ifndef SWARM_KERNELS_OP_RULES_H
#define SWARM_KERNELS_OP_RULES_H

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/op.h"
#include "swarm/swarm.h"

/* The bit of input j in a rule's masks of inputs. */
#define IN(j) (1u << (j))

__attribute__((format(printf, 3, 4))) static inline int refuse(struct swarm_op_args *a,
							       uint32_t blame, const char *fmt, ...)
{
	if (a->why && a->why_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(a->why, a->why_len, fmt, ap);
		va_end(ap);
	}
	a->blame = blame;
	return -EINVAL;
}

static inline bool is_float(uint32_t d)
{
	return d == SWARM_DTYPE_F32 || d == SWARM_DTYPE_F16 || d == SWARM_DTYPE_BF16;
}

static inline bool is_index(uint32_t d) { return d == SWARM_DTYPE_I32 || d == SWARM_DTYPE_I64; }

/* The product of dims [from, to) of a concrete tensor that passed check.c's tensor checks
 * (its non-zero dims' product is bounded: no overflow). */
static inline int64_t dims_prod(const struct swarm_tensor *t, uint32_t from, uint32_t to)
{
	int64_t p = 1;
	for (uint32_t i = from; i < to; i++)
		p *= t->shape[i];
	return p;
}

static inline bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* out = x, data cleared: the start of every rule. */
static inline void like(struct swarm_tensor *out, const struct swarm_tensor *x)
{
	*out = *x;
	out->data = NULL;
}

/* eps, or def when eps is 0; -1 when it is not a positive finite number. */
static inline float eps_or(float eps, float def)
{
	if (eps == 0.0f)
		return def;
	return eps > 0.0f && eps < __builtin_inff() ? eps : -1.0f;
}

/* dim axis (negative: from the end) of an ndim-dim tensor, or -1 when out of range */
static inline int norm_axis(int32_t axis, uint32_t ndim)
{
	int64_t ax = axis < 0 ? (int64_t)axis + ndim : axis;
	return ax >= 0 && ax < (int64_t)ndim ? (int)ax : -1;
}

/* ---- the rules of op_vision.c, for the table in op.c ----------------------------------------- */

int op_cast_params(const struct swarm_op_params *p);
int op_conv_params(const struct swarm_op_params *p);
int op_dims_batchnorm(const struct swarm_node *n, struct swarm_node_dims *d);
int op_dims_conv(const struct swarm_node *n, struct swarm_node_dims *d);
int op_dims_gather(const struct swarm_node *n, struct swarm_node_dims *d);
int op_dims_global_pool(const struct swarm_node *n, struct swarm_node_dims *d);
int op_infer_batchnorm(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_cast(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_conv2d(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_conv_transpose2d(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_gather(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_global_pool(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_pad(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_pool(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_reduce(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_reshape(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_resize(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_slice(struct swarm_op_args *a, struct swarm_tensor *out);
int op_infer_transpose(struct swarm_op_args *a, struct swarm_tensor *out);
int op_pad_params(const struct swarm_op_params *p);
int op_resize_params(const struct swarm_op_params *p);

#endif /* SWARM_KERNELS_OP_RULES_H */
