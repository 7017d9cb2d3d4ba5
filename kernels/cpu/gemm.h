/* gemm.h: the CPU device's single-precision GEMM, C [M, N] = A [M, K] B [K, N], with B packed
 * once into the layout its inner kernel reads (as ONNX Runtime's MLAS and oneDNN pack a
 * model's weights at load), and a bias and an activation applied to each tile while it is
 * still in registers or L1.
 *
 * Packed B: column panels of SWARM_GEMM_NR (32) floats, panel j holding B[k][32j .. 32j+31]
 * for k = 0..K-1 one after another (K * 32 floats; past N, zeros). A is read in place (row
 * major, any row stride): batch-1 inference has few rows, and packing them would cost as much
 * as it saves. The inner kernel keeps a 3 x 32 tile of C in twelve 8-float registers and
 * streams one panel, 3 broadcasts and 4 loads per 12 FMAs (measured on Zen 1 against the
 * 6 x 16 tile it replaced: 5 to 15% faster on BERT's shapes, as fast as oneDNN's sgemm); the
 * loops around it block M so that the rows of A a panel meets stay in L2, never K (every split
 * of K measured slower). A single row (a GEMV, a ranker at batch 1) splits K between two sets
 * of accumulators, so that the FMAs' latency does not bound it.
 *
 * Everything here is pure computation on caller memory: no allocation, thread-safe.
 */
#ifndef SWARM_KERNELS_CPU_GEMM_H
#define SWARM_KERNELS_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/device.h"

#define SWARM_GEMM_NR 32 /* columns of a panel */
#define SWARM_GEMM_MR 3  /* rows of the inner kernel's tile */

/* Floats a packed B of K x N takes (N rounded up to panels), or 0 when it would overflow. */
size_t swarm_gemm_packed_floats(int64_t K, int64_t N);

/* Packs B = W^T, W [N, K] row-major with row stride ldw (LINEAR's weight, PyTorch's layout;
 * a head's keys for Q K^T). dst holds swarm_gemm_packed_floats(K, N) floats. */
void swarm_gemm_pack_wt(float *dst, const float *w, int64_t N, int64_t K, int64_t ldw);

/* Packs B [K, N] row-major with row stride ldb. */
void swarm_gemm_pack_b(float *dst, const float *b, int64_t K, int64_t N, int64_t ldb);

/* C = alpha A Bp, plus bias[n] in column n (a LINEAR's bias) and row_bias[m] in row m (a
 * conv's, whose rows are output channels) where not NULL, then act (an activation op of
 * swarm_cpu_act with p's alpha and beta; SWARM_OP_IDENTITY for none, p may then be NULL).
 * A [M, K] has row stride lda, C [M, N] ldc; Bp is B packed by one of the above for this K
 * and N. K == 0 gives the biases (or zeros) through act. C must not overlap A or Bp.
 * threads > 1 splits the panels of a product of 4 MFLOP or more over that many threads
 * (OpenMP's, on the caller's cores), each writing columns of its own. */
void swarm_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		const float *Bp, float *C, int64_t ldc, const float *bias, const float *row_bias,
		uint32_t act, const struct swarm_op_params *p, int threads);

/* swarm_gemm, then Z [M, N] (row stride ldc, C's layout; C must not overlap it) added to C
 * after the activation: a fused residual ADD. */
void swarm_gemm_sum(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		    const float *Bp, float *C, int64_t ldc, const float *bias,
		    const float *row_bias, uint32_t act, const struct swarm_op_params *p,
		    int threads, const float *Z);

/* swarm_gemm with B [K, N] read in place, rows ldb apart (ldb >= N), not packed: a panel
 * of K x 32 floats is read from L1 or L2 by every tile after the first, so that where B is
 * used once (a 1x1 conv's input) packing it would only add a pass over it. The last part
 * panel (N not a multiple of 32) is packed into tail, K x 32 floats of the caller's. */
void swarm_gemm_b(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		  const float *B, int64_t ldb, float *tail, float *C, int64_t ldc,
		  const float *bias, const float *row_bias, uint32_t act,
		  const struct swarm_op_params *p, int threads);
/* swarm_gemm_b, then Z added as in swarm_gemm_sum. */
void swarm_gemm_b_sum(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		      const float *B, int64_t ldb, float *tail, float *C, int64_t ldc,
		      const float *bias, const float *row_bias, uint32_t act,
		      const struct swarm_op_params *p, int threads, const float *Z);

#endif /* SWARM_KERNELS_CPU_GEMM_H */
