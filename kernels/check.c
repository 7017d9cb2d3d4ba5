/* check.c: the host-side checks every device runs on a node before its op (see check.h). The
 * rules are the op table's (kernels/op.h): the input count and the dtype rule, then every
 * tensor's own validity (a shape no product of which overflows, storage where it has
 * elements), then the op's shape inference on the node's inputs, whose result out must be,
 * then what the kernels need derived. Nothing here reads tensor data.
 */
#include "kernels/check.h"

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "kernels/op.h"
#include "swarm/swarm.h"

/* Largest element count accepted: keeps every byte size (8 bytes an element at most) and
 * every sum of counts below INT64_MAX. */
#define ELEMS_MAX (INT64_MAX / 16)

#define F32_ONLY SWARM_DTYPE_BIT(SWARM_DTYPE_F32)
#define ANY_DTYPE UINT32_MAX
#define FLOATS                                                                 \
	(SWARM_DTYPE_BIT(SWARM_DTYPE_F32) | SWARM_DTYPE_BIT(SWARM_DTYPE_F16) | \
	 SWARM_DTYPE_BIT(SWARM_DTYPE_BF16))

/* Checks one tensor: present, of a dtype in the set dts, at least min_ndim dims, a valid size,
 * and storage when it has elements. The product of its non-zero dims is bounded too, so that a
 * product of any of its dims (dims_prod) cannot overflow even when a zero dim makes elems 0.
 * Returns its element count, or -1. */
static int64_t tensor_check(const struct swarm_tensor *t, uint32_t dts, uint32_t min_ndim)
{
	if (!t || t->dtype >= 32 || !(dts & SWARM_DTYPE_BIT(t->dtype)) || t->ndim < min_ndim ||
	    t->ndim > SWARM_TENSOR_MAX_DIMS)
		return -1;
	int64_t e = swarm_tensor_elems(t);
	if (e < 0)
		return -1;
	int64_t nz = 1;
	for (uint32_t i = 0; i < t->ndim; i++) {
		int64_t d = t->shape[i];
		if (d == 0)
			continue;
		if (nz > ELEMS_MAX / d)
			return -1;
		nz *= d;
	}
	if (e > 0 && !t->data)
		return -1;
	return e;
}

/* A tensor of exactly dtype dt, otherwise as tensor_check. */
static int64_t typed_check(const struct swarm_tensor *t, uint32_t dt, uint32_t min_ndim)
{
	if (!t || t->dtype != dt)
		return -1;
	return tensor_check(t, SWARM_DTYPE_BIT(dt), min_ndim);
}

/* out must be of dtype dt with exactly the shape (ndim, shape) and storage. Returns its elems
 * or -1. */
static int64_t out_check(const struct swarm_tensor *out, uint32_t dt, uint32_t ndim,
			 const int64_t *shape)
{
	int64_t e = typed_check(out, dt, ndim);
	if (e < 0 || out->ndim != ndim)
		return -1;
	for (uint32_t i = 0; i < ndim; i++) {
		if (out->shape[i] != shape[i])
			return -1;
	}
	return e;
}

int swarm_act_ok(uint32_t act)
{
	return act == SWARM_OP_IDENTITY || act == SWARM_OP_RELU || act == SWARM_OP_GELU ||
	       act == SWARM_OP_SIGMOID || act == SWARM_OP_TANH;
}

/* The float dtype of node n: its first input's that is not an index (the GEMM ops' f16 or
 * bf16, f32 for the rest), F32 when it has none. */
static uint32_t node_float_dtype(const struct swarm_node *n, const struct swarm_op_info *info)
{
	for (uint32_t j = 0; j < n->n_in; j++)
		if (!(info->index_in & (1u << j)) && !(info->f32_in & (1u << j)))
			return n->in[j]->dtype;
	return SWARM_DTYPE_F32;
}

int swarm_node_supported(const struct swarm_node *n, uint32_t float_dtypes)
{
	const struct swarm_op_info *info = n ? swarm_op_info(n->op) : NULL;
	if (!info || n->n_in < info->min_in || n->n_in > info->max_in ||
	    (info->params_ok && !info->params_ok(&n->p)))
		return 0;
	for (uint32_t j = 0; j < n->n_in; j++)
		if (!n->in[j])
			return 0;
	/* f32 is every device's; the GEMM ops take the device's wider set too. */
	uint32_t allowed = F32_ONLY;
	if (info->flags & SWARM_OPF_GEMM)
		allowed |= float_dtypes &
			   (SWARM_DTYPE_BIT(SWARM_DTYPE_F16) | SWARM_DTYPE_BIT(SWARM_DTYPE_BF16));
	if (info->flags & SWARM_OPF_CAST) /* any float in, p.to out, on every device */
		return n->in[0]->dtype < 32 && (FLOATS & SWARM_DTYPE_BIT(n->in[0]->dtype)) &&
		       (!n->out || n->out->dtype == n->p.to);
	uint32_t fd = node_float_dtype(n, info);
	if (fd >= 32 || !(allowed & SWARM_DTYPE_BIT(fd)))
		return 0;
	for (uint32_t j = 0; j < n->n_in; j++) {
		uint32_t dt = n->in[j]->dtype, bit = 1u << j;
		bool ok = info->index_in & bit ? dt == SWARM_DTYPE_I32 || dt == SWARM_DTYPE_I64 :
			  info->f32_in & bit   ? dt == SWARM_DTYPE_F32 :
						 dt == fd;
		if (!ok)
			return 0;
	}
	return !n->out || n->out->dtype == fd;
}

int swarm_node_check(const struct swarm_node *n, uint32_t float_dtypes, struct swarm_node_dims *d)
{
	memset(d, 0, sizeof(*d));
	d->dtype = SWARM_DTYPE_F32;
	if (!n || !n->out || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	const struct swarm_op_info *info = swarm_op_info(n->op);
	if (!info)
		return -ENOTSUP;
	if (!swarm_node_supported(n, float_dtypes))
		return -EINVAL;
	for (uint32_t j = 0; j < n->n_in; j++)
		if (tensor_check(n->in[j], ANY_DTYPE, 0) < 0)
			return -EINVAL;
	struct swarm_tensor want;
	struct swarm_op_args a = { .op = n->op, .n_in = n->n_in, .in = n->in, .p = &n->p };
	if (swarm_op_infer(&a, &want))
		return -EINVAL;
	d->elems = out_check(n->out, want.dtype, want.ndim, want.shape);
	if (d->elems < 0)
		return -EINVAL;
	d->dtype = want.dtype;
	return info->dims ? (info->dims(n, d) ? -EINVAL : 0) : 0;
}
