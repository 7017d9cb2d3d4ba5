/* gemm.c: the CPU device's packed single-precision GEMM (kernels/cpu/gemm.h says the layout
 * and why). The inner kernel is compiled twice (simd.h: AVX2+FMA and the baseline) over one
 * body whose tile height is a constant at each call, so that its accumulators live in
 * registers.
 */
#include "kernels/cpu/gemm.h"

#include <stdbool.h>
#include <string.h>

#include <omp.h>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"

#define NR SWARM_GEMM_NR
#define MR SWARM_GEMM_MR
#define GEMM_A_BYTES (192 << 10) /* A a block of rows holds: well inside L2 */
/* Panel rows (64-byte lines) the kernel asks for ahead of its loads. A batch-1 model streams
 * its weights from memory once a call, and the first tile of each panel meets them there:
 * the hardware prefetchers ramp up too late for a panel of tens of KiB (measured: a chain of 24
 * MiniLM-sized GEMMs from memory went from 24 to 31 GFLOP/s). Past the panel it touches the
 * next one, which comes next anyway; a prefetch never faults. */
#define GEMM_PREFETCH 24
/* Below this a product is not split over threads: a fork and join costs a few microseconds */
#define GEMM_SPLIT_FLOPS 4e6

size_t swarm_gemm_packed_floats(int64_t K, int64_t N)
{
	if (K < 0 || N < 0 || N > INT64_MAX - NR)
		return 0;
	const uint64_t panels = (uint64_t)(N + NR - 1) / NR;
	uint64_t n;
	if (__builtin_mul_overflow(panels * NR, (uint64_t)K, &n) || n > SIZE_MAX / sizeof(float))
		return 0;
	return (size_t)n;
}

void swarm_gemm_pack_wt(float *dst, const float *w, int64_t N, int64_t K, int64_t ldw)
{
	for (int64_t j0 = 0; j0 < N; j0 += NR) {
		const int64_t nc = N - j0 < NR ? N - j0 : NR;
		float *panel = dst + j0 * K;
		/* row j of W is column j of B: a panel's rows read side by side, each in order */
		for (int64_t j = 0; j < NR; j++) {
			const float *row = j < nc ? w + (j0 + j) * ldw : NULL;
			for (int64_t k = 0; k < K; k++)
				panel[k * NR + j] = row ? row[k] : 0.0f;
		}
	}
}

/* Row by row: each row of B read as one run (a 1x1 conv's rows are a plane apart: a panel at a
 * time read K streams at once, more than the prefetchers follow), its full panels' pieces
 * copied by vectors (a memcpy call per 32 floats cost as much as the copy: a quarter of a
 * 96 -> 48 conv at 80x112). */
SWARM_INLINE void swarm_gemm_pack_b_body(float *dst, const float *b, int64_t K, int64_t N,
					 int64_t ldb)
{
	const int64_t full = N / NR * NR, nc = N - full;
	for (int64_t k = 0; k < K; k++) {
		const float *src = b + k * ldb;
		float *d = dst + k * NR;
		for (int64_t j0 = 0; j0 < full; j0 += NR, d += NR * K)
#pragma GCC unroll 4
			for (int v = 0; v < NR / 8; v++)
				SWARM_V8_STORE(d + 8 * v, SWARM_V8_LOAD(src + j0 + 8 * v));
		if (nc) {
			memcpy(d, src + full, (size_t)nc * sizeof(float));
			memset(d + nc, 0, (size_t)(NR - nc) * sizeof(float));
		}
	}
}

SWARM_CPU_MULTI_VOID(, swarm_gemm_pack_b,
		     (float *dst, const float *b, int64_t K, int64_t N, int64_t ldb),
		     (dst, b, K, N, ldb))

/* The activations the tile applies in its registers, as swarm_cpu_act computes them
 * (kernels/op_math.h's rules and simd.h's GELU; NaN stays NaN but for relu's 0). A 1x1 conv
 * of 16 input channels spent as long in a call of swarm_cpu_act per 16 floats as in its
 * products. */
static inline bool in_register(uint32_t act)
{
	return act == SWARM_OP_RELU || act == SWARM_OP_CLIP || act == SWARM_OP_LEAKY_RELU ||
	       act == SWARM_OP_HARDSIGMOID || act == SWARM_OP_HARDSWISH || act == SWARM_OP_GELU;
}

SWARM_INLINE void act_v8(swarm_v8 *v, uint32_t act, float pa, float pb)
{
	const swarm_v8 zero = SWARM_V8_SET1(0.0f), one = SWARM_V8_SET1(1.0f);
	swarm_v8 x = *v, h;
	switch (act) {
	case SWARM_OP_RELU:
		x = SWARM_V8_SELECT(x > zero, x, zero);
		break;
	case SWARM_OP_CLIP:
		x = SWARM_V8_SELECT(x < SWARM_V8_SET1(pa), SWARM_V8_SET1(pa), x);
		x = SWARM_V8_SELECT(x > SWARM_V8_SET1(pb), SWARM_V8_SET1(pb), x);
		break;
	case SWARM_OP_LEAKY_RELU:
		x = SWARM_V8_SELECT(x >= zero, x, x * SWARM_V8_SET1(pa));
		break;
	case SWARM_OP_HARDSIGMOID:
	case SWARM_OP_HARDSWISH: {
		const bool hs = act == SWARM_OP_HARDSWISH;
		h = x * SWARM_V8_SET1(hs ? 1.0f / 6.0f : pa) + SWARM_V8_SET1(hs ? 0.5f : pb);
		h = SWARM_V8_SELECT(h < zero, zero, h);
		h = SWARM_V8_SELECT(h > one, one, h);
		if (hs)
			x = x * h;
		else
			x = h;
		break;
	}
	case SWARM_OP_GELU: /* the detector's convs: 2.2 ms of a 5 ms conv as a pass */
		swarm_v8_gelu(&x);
		break;
	default:
		break;
	}
	*v = x;
}

/* One tile: C[0..mr)[0..nc) = alpha * A[0..mr)[0..kc) times the first nv vectors of the
 * panel's kc rows (nc <= 8 nv: a last part panel of at most 16 columns computes half a panel,
 * not a whole one: a 1x1 conv over 10 x 14 ends every row of C in 12 columns, and its tiles
 * there cost a fifth of the product; 768 -> 384 at 10x14 2.55 -> 2.37 ms), plus the
 * biases, then act when it is one of the piecewise-linear ones (in_register; the others are
 * the caller's, on the stored rows), with p's alpha and beta in pa, pb, then plus z's tile
 * (C's layout) where z is not NULL. Each row's bp + pf is asked for ahead (pf 0: nothing).
 * mr and nv are constants at every call site, so the accumulators are registers. A single
 * row splits K between two sets of accumulators: eight chains of FMAs, enough to hide their
 * latency. */
#define NV (NR / 8) /* vectors across a panel */
SWARM_INLINE void tile(const int mr, const int nv, int64_t kc, const float *a, int64_t lda,
		       const float *bp, int64_t bs, int64_t pf, float *c, int64_t ldc, int64_t nc,
		       float alpha, const float *bias, const float *row_bias, uint32_t act,
		       float pa, float pb, const float *z)
{
	swarm_v8 acc[MR][NV], odd[NV];
	const swarm_v8 zero = SWARM_V8_SET1(0.0f);
#pragma GCC unroll 4
	for (int v = 0; v < nv; v++) {
		odd[v] = zero;
#pragma GCC unroll 3
		for (int i = 0; i < mr; i++)
			acc[i][v] = zero;
	}
	int64_t k = 0;
	if (mr == 1) {
		for (; k + 1 < kc; k += 2) {
			if (pf) {
				__builtin_prefetch(bp + k * bs + pf);
				__builtin_prefetch(bp + k * bs + pf + 16);
				__builtin_prefetch(bp + (k + 1) * bs + pf);
				__builtin_prefetch(bp + (k + 1) * bs + pf + 16);
			}
			const swarm_v8 av = SWARM_V8_SET1(a[k]), aw = SWARM_V8_SET1(a[k + 1]);
#pragma GCC unroll 4
			for (int v = 0; v < nv; v++) {
				acc[0][v] += av * SWARM_V8_LOAD(bp + k * bs + 8 * v);
				odd[v] += aw * SWARM_V8_LOAD(bp + (k + 1) * bs + 8 * v);
			}
		}
	}
	for (; k < kc; k++) {
		if (pf) {
			__builtin_prefetch(bp + k * bs + pf);
			__builtin_prefetch(bp + k * bs + pf + 16);
		}
		swarm_v8 b[NV];
#pragma GCC unroll 4
		for (int v = 0; v < nv; v++)
			b[v] = SWARM_V8_LOAD(bp + k * bs + 8 * v);
#pragma GCC unroll 3
		for (int i = 0; i < mr; i++) {
			const swarm_v8 av = SWARM_V8_SET1(a[i * lda + k]);
#pragma GCC unroll 4
			for (int v = 0; v < nv; v++)
				acc[i][v] += av * b[v];
		}
	}
	const swarm_v8 al = SWARM_V8_SET1(alpha);
	float tb[NR] = { 0 };
	if (bias)
		memcpy(tb, bias, (size_t)nc * sizeof(float));
#pragma GCC unroll 3
	for (int i = 0; i < mr; i++) {
		float *row = c + i * ldc, tmp[NR], zt[NR];
		float *dst = nc == 8 * nv ? row : tmp;
		const float *zr = z && nc == 8 * nv ? z + i * ldc : zt;
		if (z && nc != 8 * nv)
			memcpy(zt, z + i * ldc, (size_t)nc * sizeof(float));
		const swarm_v8 rb = SWARM_V8_SET1(row_bias ? row_bias[i] : 0.0f);
#pragma GCC unroll 4
		for (int v = 0; v < nv; v++) {
			swarm_v8 x = acc[i][v];
			if (i == 0)
				x += odd[v];
			x = x * al + SWARM_V8_LOAD(tb + 8 * v) + rb;
			act_v8(&x, act, pa, pb);
			if (z)
				x += SWARM_V8_LOAD(zr + 8 * v);
			SWARM_V8_STORE(dst + 8 * v, x);
		}
		if (nc != 8 * nv)
			memcpy(row, tmp, (size_t)nc * sizeof(float));
	}
}

/* ldb 0: Bp is packed. Else B [K, N] is read in place, rows ldb apart, but for a last part
 * panel, which the caller packed at tail. */
SWARM_INLINE void gemm_multi_body(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
				  int64_t lda, const float *Bp, int64_t ldb, const float *tail,
				  float *C, int64_t ldc, const float *bias, const float *row_bias,
				  uint32_t act, const struct swarm_op_params *p, const float *Z)
{
	const bool reg = in_register(act);
	const bool post = act != SWARM_OP_IDENTITY && !reg;
	const uint32_t ta = reg ? act : SWARM_OP_IDENTITY;
	const float pa = p ? p->alpha : 0.0f, pb = p ? p->beta : 0.0f;
	/* A block of rows whose A stays in L2 while every panel passes over it; each tile sums
	 * all of K in registers and writes C once. A panel (K x 128 bytes) is read from L1 or
	 * L2 by the block's tiles: 128 bytes per 12 FMAs, well below what L2 gives. */
	int64_t mc = GEMM_A_BYTES / ((K > 0 ? K : 1) * (int64_t)sizeof(float)) / MR * MR;
	mc = mc < MR ? MR : mc;
	for (int64_t m0 = 0; m0 < M; m0 += mc) {
		const int64_t m1 = M - m0 < mc ? M : m0 + mc;
		for (int64_t j0 = 0; j0 < N; j0 += NR) {
			const int64_t nc = N - j0 < NR ? N - j0 : NR;
			const float *bp = !ldb ? Bp + j0 * K : nc == NR ? Bp + j0 : tail;
			const int64_t bs = ldb && nc == NR ? ldb : NR;
			/* prefetch: packed, GEMM_PREFETCH rows on; in place, the next panel's row,
			 * by the block's first tile only (the others find it in L1 then: their
			 * prefetches only took load slots; 48 -> 96 at 80x112 2.82 -> 2.66 ms) */
			const int64_t pf = bs == NR ? GEMM_PREFETCH * NR : NR;
			const float *bj = bias ? bias + j0 : NULL;
			for (int64_t i0 = m0; i0 < m1; i0 += MR) {
				const float *a = A + i0 * lda;
				const float *rb = row_bias ? row_bias + i0 : NULL;
				float *c = C + i0 * ldc + j0;
				/* the sum on the tile: after an in-register act, else after
				 * the act on the stored rows below */
				const float *zc = Z && !post ? Z + i0 * ldc + j0 : NULL;
				const int64_t mr = m1 - i0 < MR ? m1 - i0 : MR;
				/* the tile's rows of the next panel's C, asked for writing,
				 * and of the sum's: a 1x1 conv's rows are a plane apart, as
				 * many streams as output channels, more than the
				 * prefetchers follow (48 -> 96 at 80x112: 3.0 -> 2.8 ms; a
				 * sum into 96 -> 48 at 80x112 2.82 -> 2.6) */
				for (int64_t i = 0; j0 + 2 * NR <= N && i < mr; i++) {
					__builtin_prefetch(c + i * ldc + NR, 1, 3);
					__builtin_prefetch(c + i * ldc + NR + 16, 1, 3);
					if (Z) {
						const float *zn = Z + (i0 + i) * ldc + j0 + NR;
						__builtin_prefetch(zn);
						__builtin_prefetch(zn + 16);
					}
				}
				/* mr and the tile's width as constants: the accumulators stay
				 * registers */
				const int64_t tpf = bs == NR || i0 == m0 ? pf : 0;
#define TILE(R, V) tile(R, V, K, a, lda, bp, bs, tpf, c, ldc, nc, alpha, bj, rb, ta, pa, pb, zc)
				const bool half = nc <= NR / 2;
				switch (mr) {
				case 3:
					half ? TILE(3, NV / 2) : TILE(3, NV);
					break;
				case 2:
					half ? TILE(2, NV / 2) : TILE(2, NV);
					break;
				default:
					half ? TILE(1, NV / 2) : TILE(1, NV);
					break;
				}
#undef TILE
				/* the tile's rows are in L1 now: their activation too */
				for (int64_t i = 0; post && i < mr; i++) {
					swarm_cpu_act(act, p, c + i * ldc, c + i * ldc, nc);
					if (Z)
						swarm_cpu_add(c + i * ldc, c + i * ldc,
							      Z + (i0 + i) * ldc + j0, nc);
				}
			}
		}
	}
}

SWARM_CPU_MULTI_VOID(static, gemm_multi,
		     (int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		      const float *Bp, int64_t ldb, const float *tail, float *C, int64_t ldc,
		      const float *bias, const float *row_bias, uint32_t act,
		      const struct swarm_op_params *p, const float *Z),
		     (M, N, K, alpha, A, lda, Bp, ldb, tail, C, ldc, bias, row_bias, act, p, Z))

/* swarm_gemm and swarm_gemm_b: Bp packed (ldb 0) or B in place (ldb its row stride, tail its
 * last part panel packed); Z, where not NULL, added after the activation (C's layout). */
static void gemm_run(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		     const float *Bp, int64_t ldb, const float *tail, float *C, int64_t ldc,
		     const float *bias, const float *row_bias, uint32_t act,
		     const struct swarm_op_params *p, int threads, const float *Z)
{
	if (M <= 0 || N <= 0)
		return;
	if (K > 0) {
		const int64_t panels = (N + NR - 1) / NR;
		int t = threads > 1 && 2.0 * (double)M * (double)N * (double)K >= GEMM_SPLIT_FLOPS ?
				threads :
				1;
		t = (int64_t)t > panels ? (int)panels : t;
		if (t <= 1) {
			gemm_multi(M, N, K, alpha, A, lda, Bp, ldb, tail, C, ldc, bias, row_bias,
				   act, p, Z);
			return;
		}
		/* each thread a run of whole panels: its own columns of C, its own part of Bp.
		 * Outside the multi-versioned body: an outlined parallel region there would lose
		 * the v3 target, and the tiles with it */
#pragma omp parallel num_threads(t)
		{
			const int id = omp_get_thread_num(), nt = omp_get_num_threads();
			const int64_t p0 = panels * id / nt, p1 = panels * (id + 1) / nt;
			const int64_t j0 = p0 * NR, j1 = p1 * NR < N ? p1 * NR : N;
			if (j1 > j0)
				gemm_multi(M, j1 - j0, K, alpha, A, lda, Bp + (ldb ? j0 : j0 * K),
					   ldb, tail, C + j0, ldc, bias ? bias + j0 : NULL,
					   row_bias, act, p, Z ? Z + j0 : NULL);
		}
		return;
	}
	/* no K: the product is zero, the biases and the activation remain */
	for (int64_t i = 0; i < M; i++) {
		float *row = C + i * ldc;
		for (int64_t j = 0; j < N; j++)
			row[j] = (bias ? bias[j] : 0.0f) + (row_bias ? row_bias[i] : 0.0f);
		if (act != SWARM_OP_IDENTITY)
			swarm_cpu_act(act, p, row, row, N);
		if (Z)
			swarm_cpu_add(row, row, Z + i * ldc, N);
	}
}

void swarm_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		const float *Bp, float *C, int64_t ldc, const float *bias, const float *row_bias,
		uint32_t act, const struct swarm_op_params *p, int threads)
{
	gemm_run(M, N, K, alpha, A, lda, Bp, 0, NULL, C, ldc, bias, row_bias, act, p, threads,
		 NULL);
}

void swarm_gemm_sum(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		    const float *Bp, float *C, int64_t ldc, const float *bias,
		    const float *row_bias, uint32_t act, const struct swarm_op_params *p,
		    int threads, const float *Z)
{
	gemm_run(M, N, K, alpha, A, lda, Bp, 0, NULL, C, ldc, bias, row_bias, act, p, threads, Z);
}

void swarm_gemm_b_sum(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		      const float *B, int64_t ldb, float *tail, float *C, int64_t ldc,
		      const float *bias, const float *row_bias, uint32_t act,
		      const struct swarm_op_params *p, int threads, const float *Z)
{
	const int64_t full = N / NR * NR;
	if (full < N && K > 0)
		swarm_gemm_pack_b(tail, B + full, K, N - full, ldb);
	gemm_run(M, N, K, alpha, A, lda, B, ldb > 0 ? ldb : NR, tail, C, ldc, bias, row_bias, act,
		 p, threads, Z);
}

void swarm_gemm_b(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		  const float *B, int64_t ldb, float *tail, float *C, int64_t ldc,
		  const float *bias, const float *row_bias, uint32_t act,
		  const struct swarm_op_params *p, int threads)
{
	swarm_gemm_b_sum(M, N, K, alpha, A, lda, B, ldb, tail, C, ldc, bias, row_bias, act, p,
			 threads, NULL);
}
