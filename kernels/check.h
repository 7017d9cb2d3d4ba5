/* check.h: the host-side checks of a node against its op's contract (kernels/device.h), the
 * same for every device. They look at the node only (input count, dtypes, shapes against each
 * other and against out, the op's parameters) and never at tensor data, so a device runs them
 * before it touches or queues anything; what they derive (rows, D, M/N/K, ...) sizes the
 * device's work. The checks of index values (ids < V, offsets ascending) read the data and
 * stay with each device: the CPU reads them in place, the CUDA device checks them on the GPU.
 *
 * A plain C header, also included from CUDA C++ (kernels/cuda/).
 */
#ifndef SWARM_KERNELS_CHECK_H
#define SWARM_KERNELS_CHECK_H

#include <stdint.h>

/* device.h has no C++ guards of its own: included from here, its functions keep C linkage
 * in kernels/cuda/ too. */
#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/device.h"

/* A set of dtypes, for swarm_node_check's float_dtypes: SWARM_DTYPE_BIT(SWARM_DTYPE_F32) | ... */
#define SWARM_DTYPE_BIT(dt) (1u << (dt))

/* What swarm_node_check derives from a valid node. The fields an op does not use are 0.
 *   every op          dtype, elems
 *   LINEAR            rows = m (X's rows: the product of its leading dims), n = N, k = K,
 *                     has_bias
 *   MATMUL            batch (the product of the leading dims), m = M, n = N, k = K
 *   ADD, MUL          count = B's elements (B repeats every count elements of A); elems is A's
 *   SOFTMAX, L2NORM,
 *   LAYERNORM         rows (the product of the leading dims), cols = D; eps
 *   EMBEDDING         count = L (ids), vocab = V, cols = D
 *   EMBEDDING_BAG     count = L (ids), batch = B (bags), vocab = V, cols = D
 *   CONCAT            rows (the product of the leading dims), cols = out's last dim
 *   ATTENTION         batch = B, seq = S, heads = H, head_dim = Dh, cols = E = H * Dh,
 *                     has_mask
 *   MEAN_POOL         batch = B, seq = S, cols = D
 * Every count here is at most INT64_MAX / 16, so products of two of a tensor's dims and byte
 * sizes cannot overflow; LINEAR's m, n, k, MATMUL's m, n, k and ATTENTION's seq and cols also
 * fit an int (the BLAS libraries' dimension type). */
struct swarm_node_dims {
	uint32_t dtype; /* the dtype of the node's float tensors (out included): f32, or f16 or
			 * bf16 for LINEAR, MATMUL and ATTENTION where the device takes them */
	int64_t elems;  /* out's elements */
	int64_t rows, cols;
	int64_t m, n, k;
	int64_t batch, seq, heads, head_dim;
	int64_t vocab, count;
	int has_bias, has_mask;
	float eps; /* p.eps, or the op's default when p.eps is 0 */
};

/* Checks node n against the contract of its op (kernels/device.h). float_dtypes is the set
 * (SWARM_DTYPE_BIT) of float dtypes the device takes for LINEAR, MATMUL and ATTENTION; all
 * float inputs of such a node, its bias and out must share one of them (attention's mask
 * stays f32). Every other op takes f32 only. Index inputs are i32 or i64. On success fills *d
 * (not NULL) and returns 0; returns -EINVAL when anything does not fit, -ENOTSUP when the op
 * is out of range. Reads no tensor data; thread-safe. */
int swarm_node_check(const struct swarm_node *n, uint32_t float_dtypes, struct swarm_node_dims *d);

/* 1 when act is an activation LINEAR can fuse (IDENTITY for none, RELU, GELU, SIGMOID, TANH). */
int swarm_act_ok(uint32_t act);

/* A device's supports_op, for a device whose GEMM ops (LINEAR, MATMUL, ATTENTION) take the
 * float dtypes of float_dtypes (SWARM_DTYPE_BIT; f32 always): op, input count and dtypes
 * only, no shapes (run() checks those). f32 for every other op; index inputs i32 or i64;
 * attention's mask f32. Returns 1 or 0. */
int swarm_node_supported(const struct swarm_node *n, uint32_t float_dtypes);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CHECK_H */
