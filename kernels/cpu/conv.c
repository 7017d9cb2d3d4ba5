/* conv.c: the CPU device's spatial ops on NCHW tensors (ops.h): conv2d (a direct kernel for
 * kernels wider than 1x1, the packed GEMM of gemm.h over the input itself for a 1x1 (over an
 * im2col where it strides or pads), a depthwise one on blocks of 8 channels),
 * conv_transpose2d (the packed GEMM then col2im), max and average pooling, global average pooling,
 * resize (nearest and bilinear, ONNX's coordinate modes), and batchnorm. Bias and a fused
 * activation are applied per output channel in the same pass. Scratch (the im2col matrix)
 * comes from the device's workspace, grown once and kept, so a steady state allocates nothing.
 */
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"
#include "kernels/op_math.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "swarm/swarm.h"

/* A conv's geometry, from the node (it passed the op table's checks). */
struct geo {
	int64_t N, C, H, W;     /* input */
	int64_t M, OH, OW;      /* output */
	int64_t G, Cg, Mg;      /* groups, input and output channels per group */
	int64_t kh, kw;         /* kernel */
	int64_t sh, sw, dh, dw; /* strides, dilations */
	int64_t pt, pl;         /* leading pads (the trailing ones only size the output) */
};

static int64_t or1(int32_t v) { return v ? v : 1; }

static void geo_of(const struct swarm_node *n, int64_t kh, int64_t kw, struct geo *g)
{
	const struct swarm_tensor *x = n->in[0], *o = n->out;
	const struct swarm_op_params *p = &n->p;
	g->N = x->shape[0], g->C = x->shape[1], g->H = x->shape[2], g->W = x->shape[3];
	g->M = o->shape[1], g->OH = o->shape[2], g->OW = o->shape[3];
	g->G = p->group ? p->group : 1;
	g->Cg = g->C / g->G, g->Mg = g->M / g->G;
	g->kh = kh, g->kw = kw;
	g->sh = or1(p->stride[0]), g->sw = or1(p->stride[1]);
	g->dh = or1(p->dilation[0]), g->dw = or1(p->dilation[1]);
	g->pt = p->n_pads ? p->pads[0] : 0, g->pl = p->n_pads ? p->pads[1] : 0;
}

/* Bias and the fused activation over one output channel's plane of hw values. */
static void bias_act(float *o, int64_t hw, const float *bias, const struct swarm_op_params *p)
{
	if (bias) {
		const float b = *bias;
		for (int64_t i = 0; i < hw; i++)
			o[i] += b;
	}
	if (p->act != SWARM_OP_IDENTITY)
		swarm_cpu_act(p->act, p, o, o, hw);
}

/* ---- padded planes ----------------------------------------------------------------------------
 *
 * A window op (a conv, a pool) reads, for output column ox and kernel tap j, input column
 * ox * sw - pl + j * dw. On a copy of the channel's plane padded by pt/pl (and at the end as
 * far as the windows reach) with the columns split into sw phases (phase q holds the padded
 * columns q, q + sw, ...), that column is entry ox + (j * dw) / sw of phase (j * dw) % sw: a
 * contiguous run for every tap, whatever the stride, with no bounds to check. The padding
 * holds fill (0 for a conv, -inf for a max pool, 0 for an average pool whose divisor is
 * counted apart). */
struct plane {
	int64_t rows; /* padded rows */
	int64_t pw;   /* entries of a phase row */
	int64_t sw;   /* phases */
	float *p;     /* rows x sw x pw floats */
};

static void plane_size(const struct geo *g, struct plane *pl)
{
	const int64_t rows = (g->OH - 1) * g->sh + (g->kh - 1) * g->dh + 1;
	const int64_t cols = (g->OW - 1) * g->sw + (g->kw - 1) * g->dw + 1;
	pl->rows = rows > g->H + g->pt ? rows : g->H + g->pt;
	const int64_t wp = cols > g->W + g->pl ? cols : g->W + g->pl;
	pl->sw = g->sw;
	pl->pw = (wp + g->sw - 1) / g->sw;
}

static size_t plane_floats(const struct plane *pl) { return (size_t)(pl->rows * pl->sw * pl->pw); }

typedef float conv_v4 __attribute__((vector_size(16), aligned(4), may_alias));

/* Fills rows [r0, r1) of the padded plane of one channel plane x [H, W] into pl->p, row r0
 * first (a band of the plane; the whole of it from r0 = 0). */
static void plane_fill_rows(struct plane *pl, const float *x, const struct geo *g, float fill,
			    int64_t r0, int64_t r1)
{
	const int64_t row = pl->sw * pl->pw;
	for (int64_t r = r0; r < r1; r++) {
		float *dst = pl->p + (r - r0) * row;
		const int64_t y = r - g->pt;
		if (y < 0 || y >= g->H) {
			for (int64_t k = 0; k < row; k++)
				dst[k] = fill;
			continue;
		}
		const float *src = x + y * g->W;
		if (pl->sw == 1) {
			int64_t k = 0;
			for (; k < g->pl && k < pl->pw; k++)
				dst[k] = fill;
			const int64_t n = g->W < pl->pw - k ? g->W : pl->pw - k;
			memcpy(dst + k, src, (size_t)n * sizeof(float));
			for (k += n; k < pl->pw; k++)
				dst[k] = fill;
			continue;
		}
		for (int64_t q = 0; q < pl->sw; q++) {
			float *ph = dst + q * pl->pw;
			int64_t k = 0;
			if (pl->sw == 2) {
				/* the inside of the row: every other column of 16 at a time (the
				 * detector's stride-2 convs spent a third of their time here) */
				const int64_t c0 = q - g->pl;
				for (; k < pl->pw && c0 + 2 * k < 0; k++)
					ph[k] = fill;
				for (; k + 4 <= pl->pw && c0 + 2 * k + 8 <= g->W; k += 4) {
					/* 4-float vectors: this function is not multi-versioned,
					 * and SSE has them (8-float ones went through the stack) */
					const float *s = src + c0 + 2 * k;
					*(conv_v4 *)(ph + k) = __builtin_shufflevector(
						*(const conv_v4 *)s, *(const conv_v4 *)(s + 4), 0,
						2, 4, 6);
				}
			}
			for (; k < pl->pw; k++) {
				const int64_t c = k * pl->sw + q - g->pl;
				ph[k] = c >= 0 && c < g->W ? src[c] : fill;
			}
		}
	}
}

/* Fills pl->p from one channel plane x [H, W]. */
static void plane_fill(struct plane *pl, const float *x, const struct geo *g, float fill)
{
	plane_fill_rows(pl, x, g, fill, 0, pl->rows);
}

/* The run of tap (i, j) for output row oy: entry ox is the input under output column ox. */
static inline const float *plane_tap(const struct plane *pl, const struct geo *g, int64_t oy,
				     int64_t i, int64_t j)
{
	const int64_t r = oy * g->sh + i * g->dh, c = j * g->dw;
	return pl->p + (r * pl->sw + c % pl->sw) * pl->pw + c / pl->sw;
}

/* Columns [n0, n0 + nb) of the im2col matrix of one group: col[(c * kh + i) * kw + j][k] =
 * the input under output position n0 + k for tap (i, j) of channel c, 0 in the padding; a
 * copy of padded-plane runs (planes: the group's Cg channels, plane_n floats apart). */
static void im2col_block(const float *planes, size_t plane_n, const struct plane *shape,
			 const struct geo *g, int64_t n0, int64_t nb, float *col)
{
	for (int64_t c = 0; c < g->Cg; c++) {
		struct plane pl = *shape;
		pl.p = (float *)planes + (size_t)c * plane_n;
		for (int64_t i = 0; i < g->kh; i++)
			for (int64_t j = 0; j < g->kw; j++) {
				float *row = col + ((c * g->kh + i) * g->kw + j) * nb;
				for (int64_t pos = n0; pos < n0 + nb;) {
					const int64_t oy = pos / g->OW, ox = pos % g->OW;
					int64_t run = g->OW - ox;
					if (run > n0 + nb - pos)
						run = n0 + nb - pos;
					memcpy(row + (pos - n0), plane_tap(&pl, g, oy, i, j) + ox,
					       (size_t)run * sizeof(float));
					pos += run;
				}
			}
	}
}

/* Output columns a GEMM block covers: its input block (K x nb: the im2col block, or the 1x1
 * conv's input columns), packed for the GEMM, about CONV_BLOCK floats, so that it stays in L2
 * while every tile of output channels passes over it, and the im2col matrix is never written
 * whole. SWARM_CPU_CONV_BLOCK sets the floats, for whoever measures it. */
#define CONV_BLOCK (32 * 1024)

/* Whether a 1x1 conv (out[M, ohw] = W[M, K] x X[K, ohw]) reads its input in place
 * (swarm_gemm_b) rather than packing it in blocks. In place saves a pass over the input, and
 * wins where a panel of it (K x 32 floats, its rows ohw apart) stays in L1 beside W for every
 * tile after the first: W and a panel within 24 KiB, or few output channels (few tiles to
 * reread it), or a small image (its packing is the call's cost). Elsewhere the packed panel,
 * contiguous, stays put and in place lost by up to a third. Measured, one thread, in place
 * against packed (GFLOP/s): 48 -> 96 at 40x56 33 / 22, 24 -> 12 at 160x224 24 / 14,
 * 96 -> 24 at 80x112 27 / 24, 16 -> 88 at 3x96 27 / 7; but 48 -> 192 at 20x28 20 / 30,
 * 96 -> 192 at 40x56 28 / 34, 192 -> 384 at 20x28 28 / 34. */
static bool conv_in_place(int64_t K, int64_t M, int64_t ohw)
{
	if (K > 256)
		return false; /* a panel alone outgrows L1 */
	return M <= 32 || ohw <= 288 ||
	       (K * M + K * SWARM_GEMM_NR) * (int64_t)sizeof(float) <= 24 * 1024;
}

static int64_t conv_block_cols(int64_t k, int64_t ohw)
{
	static int64_t block = -1;
	if (block < 0) {
		const char *e = getenv("SWARM_CPU_CONV_BLOCK");
		block = e && atol(e) > 0 ? atol(e) : CONV_BLOCK;
	}
	/* whole panels of the GEMM: a block's last panel is never a partial one but at the end */
	int64_t nb = block / (k > 0 ? k : 1) / SWARM_GEMM_NR * SWARM_GEMM_NR;
	if (nb < 2 * SWARM_GEMM_NR)
		nb = 2 * SWARM_GEMM_NR;
	return nb < ohw ? nb : ohw;
}

/* ---- direct convolution -----------------------------------------------------------------------
 *
 * A dense conv without im2col: every output row of a tile of DC_CO output channels is summed
 * in registers, DC_W columns at a time, over the K = Cg * kh * kw taps, each tap's DC_W inputs
 * read from the padded plane of its channel (one contiguous run per tap, every stride) and
 * multiplied by each channel's weight (the tile's weights packed tap by tap, DC_CO side by
 * side). The planes are filled a band of output rows at a time, so that they stay in L2 and
 * the tiles read the taps' runs where they lie: copying each block's runs into one sequential
 * panel first (what whole planes in memory needed, K streams defeating the prefetchers) cost
 * 8 to 12% of the detector's 3x3s once the band was in L2. 6 x 16: 12 accumulators, 2 loads
 * and 6 broadcasts per 12 FMAs (the GEMM's 3 x 32 tile and a 4 x 24 one were 10 to 30% slower
 * here). ONNX Runtime's CPU convs work the same way on blocked layouts; on NCHW this beats an
 * im2col GEMM for every kernel wider than 1x1, whose im2col would be written whole. */
#define DC_CO 6          /* output channels of a tile */
#define DC_NV 2          /* its vectors of columns */
#define DC_W (8 * DC_NV) /* its columns */
#define DC_SLACK DC_W    /* floats after the planes that a last column block may read */
#define DC_BAND_KB 256   /* a band's planes, about half of L2 (dc_band) */

/* Where tap k = (c * kh + i) * kw + j of output row 0 starts, from the planes' base; row oy
 * adds oy * sh * sw * pw. */
static void dc_taps(const struct plane *pl, size_t plane_n, const struct geo *g, int64_t *base)
{
	for (int64_t c = 0; c < g->Cg; c++)
		for (int64_t i = 0; i < g->kh; i++)
			for (int64_t j = 0; j < g->kw; j++) {
				const int64_t col = j * g->dw;
				base[(c * g->kh + i) * g->kw + j] =
					c * (int64_t)plane_n +
					(i * g->dh * pl->sw + col % pl->sw) * pl->pw + col / pl->sw;
			}
}

/* Output rows [oy0, oy1) of one group, the band's planes starting at output row oyp's. */
SWARM_INLINE void direct_conv_body(const float *planes, const struct plane *pl, const struct geo *g,
				   const int64_t *base, const float *w, const float *bias, float *o,
				   const struct swarm_op_params *p, float *panel, int64_t oy0,
				   int64_t oy1, int64_t oyp, const float *z)
{
	const int64_t K = g->Cg * g->kh * g->kw, ohw = g->OH * g->OW;
	const int64_t row_step = g->sh * pl->sw * pl->pw;
	for (int64_t oy = oy0; oy < oy1; oy++) {
		const float *rp = planes + (oy - oyp) * row_step;
		for (int64_t ox = 0; ox < g->OW; ox += DC_W) {
			/* a whole block reads its taps' runs where they lie in the band's planes;
			 * a part block's are first copied into the panel, padded with zeros */
			const int64_t cols = g->OW - ox < DC_W ? g->OW - ox : DC_W;
			const bool whole = cols == DC_W;
			/* (whole runs loaded, the planes' slack covering the last, and the
			 * columns past cols cleared: no masked loads) */
			swarm_v8i keep[DC_NV];
#pragma GCC unroll 4
			for (int v = 0; v < DC_NV; v++)
				keep[v] = (swarm_v8i){ 0, 1, 2, 3, 4, 5, 6, 7 } + 8 * v <
					  (int32_t)cols;
			for (int64_t k = 0; !whole && k < K; k++) {
				const float *src = rp + base[k] + ox;
#pragma GCC unroll 4
				for (int v = 0; v < DC_NV; v++)
					SWARM_V8_STORE(
						panel + k * DC_W + 8 * v,
						(swarm_v8)((swarm_v8i)SWARM_V8_LOAD(src + 8 * v) &
							   keep[v]));
			}
			const float *xs = whole ? rp + ox : panel;
			for (int64_t t = 0; t * DC_CO < g->Mg; t++) {
				const int64_t m0 = t * DC_CO;
				const int64_t nco = g->Mg - m0 < DC_CO ? g->Mg - m0 : DC_CO;
				/* the tile's weights, tap by tap, DC_CO side by side */
				const float *wt = w + t * K * DC_CO;
				swarm_v8 a[DC_CO][DC_NV];
#pragma GCC unroll 6
				for (int c = 0; c < DC_CO; c++)
#pragma GCC unroll 4
					for (int v = 0; v < DC_NV; v++)
						a[c][v] = SWARM_V8_SET1(
							bias && c < nco ? bias[m0 + c] : 0.0f);
				for (int64_t k = 0; k < K; k++) {
					swarm_v8 x[DC_NV];
					const float *src = xs + (whole ? base[k] : k * DC_W);
#pragma GCC unroll 4
					for (int v = 0; v < DC_NV; v++)
						x[v] = SWARM_V8_LOAD(src + 8 * v);
						/* channel c's weight of tap k, times the block's
						 * vectors */
#pragma GCC unroll 6
					for (int c = 0; c < DC_CO; c++) {
						const swarm_v8 wv =
							SWARM_V8_SET1(wt[k * DC_CO + c]);
#pragma GCC unroll 4
						for (int v = 0; v < DC_NV; v++)
							a[c][v] += wv * x[v];
					}
				}
				float *orow = o + m0 * ohw + oy * g->OW + ox;
				for (int64_t c = 0; c < nco; c++) {
					float tmp[DC_W];
					float *dst = cols == DC_W ? orow + c * ohw : tmp;
#pragma GCC unroll 4
					for (int v = 0; v < DC_NV; v++)
						SWARM_V8_STORE(dst + 8 * v, a[c][v]);
					if (cols != DC_W)
						memcpy(orow + c * ohw, tmp,
						       (size_t)cols * sizeof(float));
				}
			}
		}
		if (p->act != SWARM_OP_IDENTITY)
			for (int64_t m = 0; m < g->Mg; m++)
				swarm_cpu_act(p->act, p, o + m * ohw + oy * g->OW,
					      o + m * ohw + oy * g->OW, g->OW);
		/* a fused ADD's tensor, while the row is in L1 */
		for (int64_t m = 0; z && m < g->Mg; m++)
			swarm_cpu_add(o + m * ohw + oy * g->OW, o + m * ohw + oy * g->OW,
				      z + m * ohw + oy * g->OW, g->OW);
	}
}

SWARM_CPU_MULTI_VOID(static, direct_conv,
		     (const float *planes, const struct plane *pl, const struct geo *g,
		      const int64_t *base, const float *w, const float *bias, float *o,
		      const struct swarm_op_params *p, float *panel, int64_t oy0, int64_t oy1,
		      int64_t oyp, const float *z),
		     (planes, pl, g, base, w, bias, o, p, panel, oy0, oy1, oyp, z))

/* Below this a conv runs on one thread: a fork and join costs a few microseconds */
#define CONV_SPLIT_FLOPS 4e6

/* Threads for a conv of flops (at most the device's, at most parts): 1 below the split. */
static int conv_threads(const struct swarm_cpu_ws *ws, double flops, int64_t parts)
{
	int t = ws->threads > 1 && flops >= CONV_SPLIT_FLOPS ? ws->threads : 1;
	return (int64_t)t > parts ? (int)(parts > 0 ? parts : 1) : t;
}

/* ---- depthwise convolution on blocked channels ---------------------------------------------
 *
 * NCHW makes a depthwise conv load-bound: each tap's run of 8 outputs needs an unaligned load
 * of 8 inputs, half of them across a cache line, and a narrow image ends every row in a
 * scalar tail. Eight channels side by side instead (ONNX Runtime's NCHWc): a vector is one
 * position's 8 channels, every load is aligned, a tap's 8 weights are one vector, and every
 * width vectorises. Each block of 8 channels is transposed into a padded plane
 * [rows][cols][8] once, each output row is summed in registers (DWB_R positions at a time,
 * every tap one aligned load and one FMA per position), its bias and activation applied
 * while the row is in L1, and the row transposed back into the NCHW output. */
#define DWB 8   /* channels of a block */
#define DWB_R 8 /* output positions summed together */

/* 8 x 8 floats, rows ld apart at src, transposed into dst (rows ldd apart). Each vector is
 * first made of two rows' half rows, i and i + 4 (a 16-byte load and an insert), so that the
 * rest is in-lane shuffles: the cross-lane ones are slow on Zen 1 and earlier cores. */
SWARM_INLINE void dwb_transpose(float *dst, int64_t ldd, const float *src, int64_t ld)
{
	swarm_v8 r[8];
	for (int i = 0; i < 4; i++) {
		const float *a = src + i * ld, *b = src + (i + 4) * ld;
		r[i] = __builtin_shufflevector(*(const conv_v4 *)a, *(const conv_v4 *)b, 0, 1, 2, 3,
					       4, 5, 6, 7);
		r[i + 4] = __builtin_shufflevector(*(const conv_v4 *)(a + 4),
						   *(const conv_v4 *)(b + 4), 0, 1, 2, 3, 4, 5, 6,
						   7);
	}
	/* r[i] lane 0: row i's columns 0-3, lane 1: row i + 4's (r[i + 4]: columns 4-7) */
	for (int h = 0; h < 8; h += 4) {
		const swarm_v8 t0 = __builtin_shufflevector(r[h], r[h + 1], 0, 8, 1, 9, 4, 12, 5,
							    13),
			       t1 = __builtin_shufflevector(r[h], r[h + 1], 2, 10, 3, 11, 6, 14, 7,
							    15),
			       t2 = __builtin_shufflevector(r[h + 2], r[h + 3], 0, 8, 1, 9, 4, 12,
							    5, 13),
			       t3 = __builtin_shufflevector(r[h + 2], r[h + 3], 2, 10, 3, 11, 6, 14,
							    7, 15);
		SWARM_V8_STORE(dst + h * ldd,
			       __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13));
		SWARM_V8_STORE(dst + (h + 1) * ldd,
			       __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15));
		SWARM_V8_STORE(dst + (h + 2) * ldd,
			       __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13));
		SWARM_V8_STORE(dst + (h + 3) * ldd,
			       __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15));
	}
}

/* The blocked plane of channels c0 .. c0 + nc - 1 (nc <= 8; the rest zeros) of one image x
 * (whose floats end at end): P[r][k][c] = x[c0 + c][r - pt][k - pl], zeros outside, rows x
 * cols positions. A row's last
 * columns (and a part block's) go through an 8 x 8 copy whose transpose may write up to 7
 * positions past the row's end: the next row, written after, or the plane's slack. */
SWARM_INLINE void dwb_fill(float *P, int64_t rows, int64_t cols, const float *x, int64_t nc,
			   const float *end, const struct geo *g)
{
	const int64_t hw = g->H * g->W;
	for (int64_t r = 0; r < rows; r++) {
		float *dst = P + r * cols * DWB;
		const int64_t y = r - g->pt;
		if (y < 0 || y >= g->H) {
			memset(dst, 0, (size_t)(cols * DWB) * sizeof(float));
			continue;
		}
		memset(dst, 0, (size_t)(g->pl * DWB) * sizeof(float));
		dst += g->pl * DWB;
		const float *src = x + y * g->W;
		int64_t k = 0;
		if (nc == DWB)
			for (; k + 8 <= g->W; k += 8)
				dwb_transpose(dst + k * DWB, DWB, src + k, hw);
		for (; k < g->W; k += 8) {
			/* a row's last m < 8 columns (or a part block's): 8 loaded and the lanes
			 * past m cleared, where 8 stay inside the image (a masked load per
			 * channel, what the compiler made of a select, cost a fifth of a 3x3
			 * over 10 x 14) */
			float tmp[DWB * 8];
			const int64_t m = g->W - k < 8 ? g->W - k : 8;
			const swarm_v8i keep = (swarm_v8i){ 0, 1, 2, 3, 4, 5, 6, 7 } < (int32_t)m;
			for (int64_t c = 0; c < DWB; c++) {
				const float *s = src + c * hw + k;
				if (c < nc && s + 8 <= end) {
					SWARM_V8_STORE(tmp + c * 8,
						       (swarm_v8)((swarm_v8i)SWARM_V8_LOAD(s) &
								  keep));
					continue;
				}
				for (int64_t q = 0; q < 8; q++)
					tmp[c * 8 + q] = 0.0f;
				for (int64_t q = 0; c < nc && q < m; q++)
					tmp[c * 8 + q] = s[q];
			}
			dwb_transpose(dst + k * DWB, DWB, tmp, 8);
		}
		memset(dst + g->W * DWB, 0, (size_t)((cols - g->pl - g->W) * DWB) * sizeof(float));
	}
}

/* R positions (a constant at each call) of one output row at position ox into ob[R][8]: row0
 * is the plane's row under output row oy's first tap row. KW, where not 0, is the kernel's
 * width and SW its column stride, and its column dilation is 1: then every load is a
 * constant offset from one pointer and the taps of a row unroll (else they take a register
 * each, and the loop's copies of the accumulators cost as much as the FMAs). */
SWARM_INLINE void dwb_positions(const int R, const int KW, const int SW, float *ob,
				const float *row0, int64_t ox, int64_t cols, const struct geo *g,
				const float *wb, const float *bias)
{
	swarm_v8 a[DWB_R];
#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
		a[r] = SWARM_V8_LOAD(bias);
	if (KW) {
		for (int64_t i = 0; i < g->kh; i++) {
			const float *rp = row0 + (i * g->dh * cols + ox * SW) * DWB;
			const float *wi = wb + i * KW * DWB;
#pragma GCC unroll 8
			for (int j = 0; j < KW; j++) {
				const swarm_v8 w = SWARM_V8_LOAD(wi + j * DWB);
#pragma GCC unroll 8
				for (int r = 0; r < R; r++)
					a[r] += w * SWARM_V8_LOAD(rp + (j + r * SW) * DWB);
			}
		}
	} else {
		const int64_t step = g->sw * DWB;
		for (int64_t i = 0; i < g->kh; i++) {
			const float *rp = row0 + (i * g->dh * cols + ox * g->sw) * DWB;
			const float *wi = wb + i * g->kw * DWB;
			for (int64_t j = 0; j < g->kw; j++) {
				const swarm_v8 w = SWARM_V8_LOAD(wi + j * DWB);
				const float *s = rp + j * g->dw * DWB;
#pragma GCC unroll 8
				for (int r = 0; r < R; r++)
					a[r] += w * SWARM_V8_LOAD(s + r * step);
			}
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
		SWARM_V8_STORE(ob + (ox + r) * DWB, a[r]);
}

/* One output row into ob[OW][8], R positions at a time, then the tails. */
SWARM_INLINE void dwb_row(const int KW, const int SW, float *ob, const float *row0, int64_t cols,
			  const struct geo *g, const float *wb, const float *bias)
{
	int64_t ox = 0;
	for (; ox + DWB_R <= g->OW; ox += DWB_R)
		dwb_positions(DWB_R, KW, SW, ob, row0, ox, cols, g, wb, bias);
	if (g->OW - ox >= 4) {
		dwb_positions(4, KW, SW, ob, row0, ox, cols, g, wb, bias);
		ox += 4;
	}
	if (g->OW - ox >= 2) {
		dwb_positions(2, KW, SW, ob, row0, ox, cols, g, wb, bias);
		ox += 2;
	}
	if (ox < g->OW)
		dwb_positions(1, KW, SW, ob, row0, ox, cols, g, wb, bias);
}

/* One image's depthwise conv, x [C, H, W] to o [C, OH, OW], through blocked planes. scratch:
 * the plane (rows x cols x 8), a row (OW x 8 and a transposed 8-row tail), the block's
 * weights (taps x 8) and bias (8), each from a 64-byte line. */
SWARM_INLINE void depthwise_blocked_body(const float *x, const float *wblk, const float *bias,
					 float *o, const struct geo *g,
					 const struct swarm_op_params *p, float *P, int64_t rows,
					 int64_t cols, float *ob, float *bb, int64_t b0, int64_t b1)
{
	const int64_t taps = g->kh * g->kw, ohw = g->OH * g->OW;
	for (int64_t c0 = b0 * DWB; c0 < g->C && c0 < b1 * DWB; c0 += DWB) {
		const int64_t nc = g->C - c0 < DWB ? g->C - c0 : DWB;
		const float *wb = wblk + c0 * taps; /* the block's taps (dw_weights) */
		for (int64_t c = 0; c < DWB; c++)
			bb[c] = bias && c < nc ? bias[c0 + c] : 0.0f;
		dwb_fill(P, rows, cols, x + c0 * g->H * g->W, nc, x + g->C * g->H * g->W, g);
		float *oc = o + c0 * ohw;
		for (int64_t oy = 0; oy < g->OH; oy++) {
			const float *row0 = P + oy * g->sh * cols * DWB;
			/* the common kernels with their tap loops unrolled */
			const int64_t shape = g->dw != 1 || g->sw > 2 ? 0 : g->kw * 2 + g->sw - 1;
			switch (shape) {
			case 3 * 2:
				dwb_row(3, 1, ob, row0, cols, g, wb, bb);
				break;
			case 3 * 2 + 1:
				dwb_row(3, 2, ob, row0, cols, g, wb, bb);
				break;
			case 5 * 2:
				dwb_row(5, 1, ob, row0, cols, g, wb, bb);
				break;
			case 5 * 2 + 1:
				dwb_row(5, 2, ob, row0, cols, g, wb, bb);
				break;
			case 7 * 2:
				dwb_row(7, 1, ob, row0, cols, g, wb, bb);
				break;
			default:
				dwb_row(0, 0, ob, row0, cols, g, wb, bb);
			}
			if (p->act != SWARM_OP_IDENTITY)
				swarm_cpu_act(p->act, p, ob, ob, g->OW * DWB);
			float *orow = oc + oy * g->OW;
			int64_t ox = 0;
			if (nc == DWB)
				for (; ox + 8 <= g->OW; ox += 8)
					dwb_transpose(orow + ox, ohw, ob + ox * DWB, DWB);
			for (; ox < g->OW; ox += 8) { /* through a copy; ob has the slack */
				float tmp[8 * DWB];
				const int64_t m = g->OW - ox < 8 ? g->OW - ox : 8;
				dwb_transpose(tmp, 8, ob + ox * DWB, DWB);
				for (int64_t c = 0; c < nc; c++)
					memcpy(orow + c * ohw + ox, tmp + c * 8,
					       (size_t)m * sizeof(float));
			}
		}
	}
}

SWARM_CPU_MULTI_VOID(static, depthwise_blocked,
		     (const float *x, const float *wblk, const float *bias, float *o,
		      const struct geo *g, const struct swarm_op_params *p, float *P, int64_t rows,
		      int64_t cols, float *ob, float *bb, int64_t b0, int64_t b1),
		     (x, wblk, bias, o, g, p, P, rows, cols, ob, bb, b0, b1))

/* A depthwise conv's taps in blocks of 8 channels: dst[c0 * taps + t * 8 + c], c0 a multiple
 * of 8, is channel c0 + c's tap t, zeros past C. */
static void dw_weights(float *dst, const float *w, int64_t C, int64_t taps)
{
	for (int64_t c0 = 0; c0 < C; c0 += DWB)
		for (int64_t t = 0; t < taps; t++)
			for (int64_t c = 0; c < DWB; c++)
				dst[c0 * taps + t * DWB + c] = c0 + c < C ? w[(c0 + c) * taps + t] :
									    0.0f;
}

/* The blocked depthwise conv of every image of the node's batch. */
static int depthwise_blocked_conv(struct swarm_cpu_ws *ws, const struct swarm_node *n,
				  const struct geo *g)
{
	const int64_t rows_need = (g->OH - 1) * g->sh + (g->kh - 1) * g->dh + 1;
	const int64_t cols_need = (g->OW - 1) * g->sw + (g->kw - 1) * g->dw + 1;
	const int64_t rows = rows_need > g->H + g->pt ? rows_need : g->H + g->pt;
	const int64_t cols = cols_need > g->W + g->pl ? cols_need : g->W + g->pl;
	const int64_t taps = g->kh * g->kw;
	/* the blocked taps (prepared at graph build, else here, shared), then per thread: the
	 * plane and the row, each with an 8 x 8 block of slack after it, and the block's bias,
	 * each from a 64-byte line */
	const int64_t blocks = (g->C + DWB - 1) / DWB;
	const struct swarm_cpu_packed *pk = n->prep;
	const bool prepared = pk && pk->layout == SWARM_CPU_PACK_DW && pk->k == taps &&
			      pk->n == g->C;
	const size_t wn = prepared ? 0 : (size_t)(blocks * DWB * taps) + 16;
	const size_t plane = (size_t)(rows * cols * DWB) + 8 * DWB,
		     row = (size_t)(g->OW * DWB) + 8 * DWB;
	const size_t per = plane + row + DWB + 3 * 16;
	const int t = conv_threads(ws, 2.0 * (double)(g->N * g->C * g->OH * g->OW * taps), blocks);
	float *scratch = swarm_cpu_ws_get(ws, wn + per * (size_t)t);
	if (!scratch)
		return -ENOMEM;
	const float *wblk = prepared ? pk->b : swarm_cpu_line(scratch);
	if (!prepared)
		dw_weights(swarm_cpu_line(scratch), n->in[1]->data, g->C, taps);
	float *threads = scratch + wn;
	const float *bias = n->n_in == 3 ? n->in[2]->data : NULL;
	const int64_t ohw = g->OH * g->OW;
	for (int64_t b = 0; b < g->N; b++) {
		const float *x = (const float *)n->in[0]->data + b * g->C * g->H * g->W;
		float *o = (float *)n->out->data + b * g->M * ohw;
		/* each thread a run of channel blocks, with scratch of its own */
#pragma omp parallel num_threads(t) if (t > 1)
		{
			const int id = t > 1 ? omp_get_thread_num() : 0,
				  nt = t > 1 ? omp_get_num_threads() : 1;
			float *P = swarm_cpu_line(threads + per * (size_t)id),
			      *ob = swarm_cpu_line(P + plane), *bb = swarm_cpu_line(ob + row);
			depthwise_blocked(x, wblk, bias, o, g, &n->p, P, rows, cols, ob, bb,
					  blocks * id / nt, blocks * (id + 1) / nt);
		}
	}
	return 0;
}

/* A direct conv's weights in tiles of DC_CO output channels, per group: dst[((gi * tiles + t)
 * * K + k) * DC_CO + c] = W[gi * Mg + t * DC_CO + c][k], zeros past Mg: a tap's DC_CO
 * weights one stream, not DC_CO rows K apart. */
static void dc_weights(float *dst, const float *w, const struct geo *g)
{
	const int64_t K = g->Cg * g->kh * g->kw, tiles = (g->Mg + DC_CO - 1) / DC_CO;
	for (int64_t gi = 0; gi < g->G; gi++) {
		const float *wg = w + gi * g->Mg * K;
		float *dg = dst + gi * tiles * DC_CO * K;
		for (int64_t m = 0; m < tiles * DC_CO; m++)
			for (int64_t k = 0; k < K; k++)
				dg[(m / DC_CO * K + k) * DC_CO + m % DC_CO] =
					m < g->Mg ? wg[m * K + k] : 0.0f;
	}
}

/* Whether a dense conv goes direct (else im2col and the packed GEMM). SWARM_CPU_CONV=direct or gemm
 * forces one, for whoever measures them (and the tests, which run both). */
static bool conv_direct(const struct geo *g)
{
	static int force = -1;
	if (force < 0) {
		const char *e = getenv("SWARM_CPU_CONV");
		force = e && !strcmp(e, "direct") ? 1 : e && !strcmp(e, "gemm") ? 2 : 0;
	}
	if (force)
		return force == 1;
	/* Measured per shape (the detector's and the classifier's): direct wins for every
	 * kernel wider than 1x1 (no im2col written); a 1x1 is a GEMM over the whole image,
	 * which wins every 1x1 measured, 3 to 192 channels (no partial column block at the end
	 * of each output row, the weights held in L2 across a packed block of inputs: 96->192
	 * at 40x56 in 2.9 ms, not 4.5; 3->24 at 160x224 in 0.64, not 1.5) */
	return g->kh * g->kw > 1;
}

/* Output rows a direct conv sums per band: as many as keep the band's planes, every channel
 * of a group, within DC_BAND_KB (at least one). SWARM_CPU_DC_BAND_KB sets it, for whoever
 * measures it. */
static int64_t dc_band(const struct geo *g, const struct plane *shape)
{
	static int64_t budget = -1;
	if (budget < 0) {
		const char *e = getenv("SWARM_CPU_DC_BAND_KB");
		budget = (e && atol(e) > 0 ? atol(e) : DC_BAND_KB) * 1024 / (int64_t)sizeof(float);
	}
	const int64_t per_row = g->Cg * shape->sw * shape->pw; /* floats of a plane row */
	const int64_t extra = (g->kh - 1) * g->dh + 1;         /* rows of a band of one */
	int64_t band = per_row > 0 ? (budget / per_row - extra) / g->sh + 1 : g->OH;
	if (band < 1)
		band = 1;
	return band < g->OH ? band : g->OH;
}

int swarm_cpu_conv_takes_sum(const struct swarm_node *n)
{
	const struct swarm_tensor *x = n->in[0], *w = n->in[1], *o = n->out, *z = n->sum;
	if (n->op != SWARM_OP_CONV2D || n->n_in < 2 || !x || !w || !o || !z || x->ndim != 4 ||
	    w->ndim != 4 || o->ndim != 4 || z->dtype != SWARM_DTYPE_F32 || z->ndim != 4 ||
	    memcmp(z->shape, o->shape, 4 * sizeof z->shape[0]) != 0)
		return 0;
	struct geo g;
	geo_of(n, w->shape[2], w->shape[3], &g);
	/* every path but the depthwise one adds it */
	return g.G >= 1 && !(g.Cg == 1 && g.Mg == 1);
}

int swarm_cpu_conv_takes_parts(const struct swarm_node *n)
{
	const struct swarm_tensor *x = n->in[0], *w = n->in[1];
	if (n->op != SWARM_OP_CONV2D || n->n_in < 2 || !x || !w || !n->out || x->ndim != 4 ||
	    w->ndim != 4 || n->out->ndim != 4 || n->n_parts < 1 ||
	    n->n_parts > SWARM_NODE_MAX_PARTS)
		return 0;
	struct geo g;
	geo_of(n, w->shape[2], w->shape[3], &g);
	if (g.G < 1 || g.C % g.G || g.M % g.G || (g.Cg == 1 && g.Mg == 1) || !conv_direct(&g))
		return 0; /* depthwise, or a GEMM's 1x1 */
	int64_t c = 0;
	for (uint32_t i = 0; i < n->n_parts; i++) {
		const struct swarm_tensor *t = n->parts[i];
		if (!t || t->dtype != SWARM_DTYPE_F32 || t->ndim != 4 || t->shape[0] != g.N ||
		    t->shape[2] != g.H || t->shape[3] != g.W || t->shape[1] < 0)
			return 0;
		c += t->shape[1];
	}
	return c == g.C;
}

/* Channel ch of image b of a direct conv's input: in[0]'s, or its part's. */
static const float *conv_channel(const struct swarm_node *n, const struct geo *g, int64_t b,
				 int64_t ch)
{
	if (!n->n_parts)
		return (const float *)n->in[0]->data + (b * g->C + ch) * g->H * g->W;
	uint32_t i = 0;
	while (ch >= n->parts[i]->shape[1])
		ch -= n->parts[i++]->shape[1];
	const int64_t ci = n->parts[i]->shape[1];
	return (const float *)n->parts[i]->data + (b * ci + ch) * g->H * g->W;
}

int swarm_cpu_conv_weight_layout(const struct swarm_node *n, int64_t *k, int64_t *rows,
				 size_t *floats)
{
	const struct swarm_tensor *w = n->in[1], *x = n->in[0];
	if (n->op != SWARM_OP_CONV2D || w->ndim != 4 || x->ndim != 4 || n->out->ndim != 4)
		return 0;
	struct geo g;
	geo_of(n, w->shape[2], w->shape[3], &g);
	if (g.G < 1 || g.C % g.G || g.M % g.G || g.Cg != w->shape[1] || g.M != w->shape[0])
		return 0; /* a node run() refuses */
	const int64_t taps = g.kh * g.kw;
	if (g.Cg == 1 && g.Mg == 1) {
		*k = taps, *rows = g.C;
		*floats = (size_t)((g.C + DWB - 1) / DWB * DWB * taps);
		return SWARM_CPU_PACK_DW;
	}
	if (!conv_direct(&g))
		return 0;
	*k = g.Cg * taps, *rows = g.M;
	*floats = (size_t)(g.G * (g.Mg + DC_CO - 1) / DC_CO * DC_CO * *k);
	return SWARM_CPU_PACK_DC;
}

void swarm_cpu_conv_weights(float *dst, const struct swarm_node *n, int layout)
{
	const struct swarm_tensor *w = n->in[1];
	struct geo g;
	geo_of(n, w->shape[2], w->shape[3], &g);
	if (layout == SWARM_CPU_PACK_DW)
		dw_weights(dst, w->data, g.C, g.kh * g.kw);
	else
		dc_weights(dst, w->data, &g);
}

int swarm_cpu_conv2d(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d)
{
	(void)d;
	const struct swarm_tensor *wt = n->in[1];
	const float *bias = n->n_in == 3 ? n->in[2]->data : NULL;
	struct geo g;
	geo_of(n, wt->shape[2], wt->shape[3], &g);
	const int64_t ohw = g.OH * g.OW, K = g.Cg * g.kh * g.kw;
	const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 &&
			    g.pl == 0 && g.OH == g.H && g.OW == g.W;
	const bool dw = g.Cg == 1 && g.Mg == 1;
	const float *zsum = n->sum ? n->sum->data : NULL; /* a fused ADD's, after the act */
	if (ohw == 0)
		return 0;
	if (dw)
		return depthwise_blocked_conv(ws, n, &g);
	if (conv_direct(&g)) {
		struct plane shape;
		plane_size(&g, &shape);
		/* Each thread fills the padded planes of a band of output rows at a time (every
		 * channel's rows under the band: kh - 1 more than it strides over) and sums the
		 * band: the planes stay in L2 between their fill and their reads, where whole
		 * planes (the detector's stem: 3.5 to 7 MB) went to memory and back. */
		const int64_t band = dc_band(&g, &shape);
		shape.rows = (band - 1) * g.sh + (g.kh - 1) * g.dh + 1;
		const size_t plane_n = (plane_floats(&shape) + 15) & ~(size_t)15,
			     mine = (size_t)(DC_W * K) + plane_n * (size_t)g.Cg + DC_SLACK;
		/* scratch: the taps' offsets (K int64), the weights in tiles of DC_CO output
		 * channels (dc_weights) unless prepared at graph build, then per thread a panel,
		 * the band's planes and their slack */
		const int64_t tiles = (g.Mg + DC_CO - 1) / DC_CO;
		const struct swarm_cpu_packed *pk = n->prep;
		const bool prepared = pk && pk->layout == SWARM_CPU_PACK_DC && pk->k == K &&
				      pk->n == g.M;
		const size_t wp_n = prepared ? 0 : (size_t)(g.G * tiles * DC_CO * K);
		const int t = conv_threads(ws, 2.0 * (double)(g.N * g.M * ohw * K), g.OH);
		float *scratch = swarm_cpu_ws_get(ws, (size_t)(2 * K) + wp_n + mine * (size_t)t);
		if (!scratch)
			return -ENOMEM;
		int64_t *base = (int64_t *)scratch;
		float *per_thread = scratch + 2 * K + wp_n;
		if (!prepared)
			dc_weights(scratch + 2 * K, wt->data, &g);
		const float *wps = prepared ? pk->b : scratch + 2 * K;
		dc_taps(&shape, plane_n, &g, base);
		for (int id = 0; id < t; id++)
			memset(per_thread + mine * (size_t)(id + 1) - DC_SLACK, 0,
			       DC_SLACK * sizeof(float));
		for (int64_t b = 0; b < g.N; b++) {
			float *o = (float *)n->out->data + b * g.M * ohw;
			const float *zg = zsum ? zsum + b * g.M * ohw : NULL;
			for (int64_t gi = 0; gi < g.G; gi++) {
				const float *wp = wps + gi * tiles * DC_CO * K;
				/* each thread a run of output rows, with a panel and planes of
				 * its own */
#pragma omp parallel num_threads(t) if (t > 1)
				{
					const int id = t > 1 ? omp_get_thread_num() : 0,
						  nt = t > 1 ? omp_get_num_threads() : 1;
					float *panel = per_thread + mine * (size_t)id,
					      *planes = panel + DC_W * K;
					const int64_t oy1 = g.OH * (id + 1) / nt;
					for (int64_t oy = g.OH * id / nt; oy < oy1; oy += band) {
						const int64_t oe = oy + band < oy1 ? oy + band :
										     oy1;
						const int64_t r0 = oy * g.sh,
							      r1 = (oe - 1) * g.sh +
								   (g.kh - 1) * g.dh + 1;
						struct plane pl = shape;
						for (int64_t c = 0; c < g.Cg; c++) {
							pl.p = planes + (size_t)c * plane_n;
							plane_fill_rows(&pl,
									conv_channel(n, &g, b,
										     gi * g.Cg + c),
									&g, 0.0f, r0, r1);
						}
						direct_conv(planes, &shape, &g, base, wp,
							    bias ? bias + gi * g.Mg : NULL,
							    o + gi * g.Mg * ohw, &n->p, panel, oy,
							    oe, oy,
							    zg ? zg + gi * g.Mg * ohw : NULL);
					}
				}
			}
		}
		return 0;
	}
	const struct swarm_cpu_packed *pk = n->prep;
	if (direct && ohw == 1 && g.G == 1 && pk && pk->layout == SWARM_CPU_PACK_GEMM &&
	    pk->k == K && pk->n == g.M) {
		/* a 1x1 image: out [N, M] = X [N, C] W^T, a LINEAR over the prepared W^T (a
		 * GEMM over the image would fill 1 column of every 32-column panel) */
		swarm_gemm_sum(g.N, g.M, K, 1.0f, n->in[0]->data, K, pk->b, n->out->data, g.M, bias,
			       NULL, n->p.act, &n->p, ws->threads, zsum);
		return 0;
	}
	if (direct && conv_in_place(K, g.Mg, ohw)) {
		/* out[Mg, ohw] = W[Mg, K] x X[K, ohw] per group, X read in place */
		float *tail = swarm_cpu_ws_get(ws, (size_t)K * SWARM_GEMM_NR + 16);
		if (!tail)
			return -ENOMEM;
		tail = swarm_cpu_line(tail);
		for (int64_t b = 0; b < g.N; b++)
			for (int64_t gi = 0; gi < g.G; gi++)
				swarm_gemm_b_sum(g.Mg, ohw, K, 1.0f,
						 (const float *)wt->data + gi * g.Mg * K, K,
						 (const float *)n->in[0]->data +
							 (b * g.C + gi * g.Cg) * g.H * g.W,
						 ohw, tail,
						 (float *)n->out->data +
							 (b * g.M + gi * g.Mg) * ohw,
						 ohw, NULL, bias ? bias + gi * g.Mg : NULL,
						 n->p.act, &n->p, ws->threads,
						 zsum ? zsum + (b * g.M + gi * g.Mg) * ohw : NULL);
		return 0;
	}
	/* A GEMM per group and block of output columns: out[Mg, block] = W[Mg, K] x B[K, block],
	 * B the input itself (1x1) or the block's im2col from the group's padded planes, packed
	 * for kernels/cpu/gemm.h; the bias (one per output channel, a row of the product) and
	 * the activation are applied on each tile. Scratch: the planes, one im2col block, the
	 * packed block. */
	const int64_t nb = conv_block_cols(K, ohw);
	struct plane shape;
	plane_size(&g, &shape);
	const size_t plane_n = direct ? 0 : (plane_floats(&shape) + 15) & ~(size_t)15;
	const size_t col_n = direct ? 0 : (size_t)(K * nb),
		     pack_n = swarm_gemm_packed_floats(K, nb);
	float *planes = swarm_cpu_ws_get(ws, plane_n * (size_t)g.Cg + col_n + pack_n + 16);
	if (!planes)
		return -ENOMEM;
	float *col = planes + plane_n * (size_t)g.Cg;
	float *packed = swarm_cpu_line(col + col_n);
	for (int64_t b = 0; b < g.N; b++) {
		const float *x = (const float *)n->in[0]->data + b * g.C * g.H * g.W;
		float *o = (float *)n->out->data + b * g.M * ohw;
		for (int64_t gi = 0; gi < g.G; gi++) {
			const float *xg = x + gi * g.Cg * g.H * g.W;
			const float *wg = (const float *)wt->data + gi * g.Mg * K;
			float *og = o + gi * g.Mg * ohw;
			for (int64_t c = 0; !direct && c < g.Cg; c++) {
				shape.p = planes + (size_t)c * plane_n;
				plane_fill(&shape, xg + c * g.H * g.W, &g, 0.0f);
			}
			for (int64_t n0 = 0; n0 < ohw; n0 += nb) {
				const int64_t cols = ohw - n0 < nb ? ohw - n0 : nb;
				if (direct) {
					swarm_gemm_pack_b(packed, xg + n0, K, cols, ohw);
				} else {
					im2col_block(planes, plane_n, &shape, &g, n0, cols, col);
					swarm_gemm_pack_b(packed, col, K, cols, cols);
				}
				swarm_gemm_sum(g.Mg, cols, K, 1.0f, wg, K, packed, og + n0, ohw,
					       NULL, bias ? bias + gi * g.Mg : NULL, n->p.act,
					       &n->p, ws->threads,
					       zsum ? zsum + (b * g.M + gi * g.Mg) * ohw + n0 :
						      NULL);
			}
		}
	}
	return 0;
}

/* out[(m * kh + i) * kw + j][y * W + x] from the GEMM, scattered (summed) into the output
 * image at (m, y * sh - pt + i * dh, x * sw - pl + j * dw) where that is inside. */
static void col2im(const float *col, const struct geo *g, float *o)
{
	const int64_t hw = g->H * g->W;
	for (int64_t m = 0; m < g->Mg; m++) {
		float *om = o + m * g->OH * g->OW;
		for (int64_t i = 0; i < g->kh; i++)
			for (int64_t j = 0; j < g->kw; j++) {
				const float *row = col + ((m * g->kh + i) * g->kw + j) * hw;
				for (int64_t y = 0; y < g->H; y++) {
					int64_t oy = y * g->sh - g->pt + i * g->dh;
					if (oy < 0 || oy >= g->OH)
						continue;
					float *orow = om + oy * g->OW;
					const float *r = row + y * g->W;
					for (int64_t x = 0; x < g->W; x++) {
						int64_t ox = x * g->sw - g->pl + j * g->dw;
						if (ox >= 0 && ox < g->OW)
							orow[ox] += r[x];
					}
				}
			}
	}
}

/* col2im where every output position gets exactly one tap (kernel = stride, no dilation, no
 * padding, no output padding: the detector's 2x2 upsamplings): written, not summed, with the
 * bias and the activation, so that the output is neither cleared nor passed over again. */
static bool col2im_once(const struct geo *g, const struct swarm_op_params *p)
{
	const bool pads = p->n_pads && (p->pads[0] || p->pads[1] || p->pads[2] || p->pads[3]);
	return g->kh == g->sh && g->kw == g->sw && g->dh == 1 && g->dw == 1 && !pads &&
	       g->OH == g->H * g->sh && g->OW == g->W * g->sw;
}

static void col2im_write(const float *col, const struct geo *g, float *o, const float *bias,
			 const struct swarm_op_params *p)
{
	const int64_t hw = g->H * g->W;
	for (int64_t m = 0; m < g->Mg; m++) {
		float *om = o + m * g->OH * g->OW;
		const float b = bias ? bias[m] : 0.0f;
		for (int64_t y = 0; y < g->H; y++)
			for (int64_t i = 0; i < g->kh; i++) {
				float *orow = om + (y * g->sh + i) * g->OW;
				for (int64_t j = 0; j < g->kw; j++) {
					const float *r =
						col + ((m * g->kh + i) * g->kw + j) * hw + y * g->W;
					for (int64_t x = 0; x < g->W; x++)
						orow[x * g->sw + j] = r[x] + b;
				}
				if (p->act != SWARM_OP_IDENTITY)
					swarm_cpu_act(p->act, p, orow, orow, g->OW);
			}
	}
}

void swarm_cpu_conv_transpose_weights(float *dst, const float *w, int64_t C, int64_t R, int64_t G)
{
	const int64_t Cg = C / G;
	for (int64_t gi = 0; gi < G; gi++) {
		const float *wg = w + gi * Cg * R;
		float *dg = dst + gi * Cg * R;
		for (int64_t c = 0; c < Cg; c++)
			for (int64_t r = 0; r < R; r++)
				dg[r * Cg + c] = wg[c * R + r];
	}
}

int swarm_cpu_conv_transpose2d(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			       const struct swarm_node_dims *d)
{
	(void)d;
	const struct swarm_tensor *wt = n->in[1];
	const float *bias = n->n_in == 3 ? n->in[2]->data : NULL;
	struct geo g;
	geo_of(n, wt->shape[2], wt->shape[3], &g);
	const int64_t hw = g.H * g.W, ohw = g.OH * g.OW, R = g.Mg * g.kh * g.kw;
	if (R == 0 || hw == 0 || g.Cg == 0) {
		memset(n->out->data, 0, (size_t)(g.N * g.M * ohw) * sizeof(float));
		for (int64_t b = 0; b < g.N; b++)
			for (int64_t m = 0; m < g.M; m++)
				bias_act((float *)n->out->data + (b * g.M + m) * ohw, ohw,
					 bias ? bias + m : NULL, &n->p);
		return 0;
	}
	/* scratch: W^T (the GEMM reads A by rows) unless prepared, the input packed for the
	 * GEMM (or, with few channels, only its last part panel: the rest read in place), the
	 * product col [R, H*W] */
	const struct swarm_cpu_packed *pk = n->prep;
	const bool prepared = pk && pk->layout == SWARM_CPU_PACK_CT && pk->k == g.Cg &&
			      pk->n == R * g.G;
	const bool in_place = conv_in_place(g.Cg, R, hw), once = col2im_once(&g, &n->p);
	const size_t wt_n = prepared ? 0 : (size_t)(R * g.C),
		     pack_n = in_place ? (size_t)g.Cg * SWARM_GEMM_NR :
					 swarm_gemm_packed_floats(g.Cg, hw);
	float *scratch = swarm_cpu_ws_get(ws, wt_n + pack_n + (size_t)(R * hw) + 16);
	if (!scratch)
		return -ENOMEM;
	float *packed = swarm_cpu_line(scratch + wt_n), *col = packed + pack_n;
	const float *wT = prepared ? pk->b : scratch;
	if (!prepared)
		swarm_cpu_conv_transpose_weights(scratch, wt->data, g.C, R, g.G);
	for (int64_t b = 0; b < g.N; b++) {
		const float *x = (const float *)n->in[0]->data + b * g.C * hw;
		float *o = (float *)n->out->data + b * g.M * ohw;
		if (!once)
			memset(o, 0, (size_t)(g.M * ohw) * sizeof(float));
		for (int64_t gi = 0; gi < g.G; gi++) {
			/* col[R, H*W] = W_g^T x X_g */
			const float *xg = x + gi * g.Cg * hw, *wg = wT + gi * R * g.Cg;
			if (in_place) {
				swarm_gemm_b(R, hw, g.Cg, 1.0f, wg, g.Cg, xg, hw, packed, col, hw,
					     NULL, NULL, SWARM_OP_IDENTITY, NULL, ws->threads);
			} else {
				swarm_gemm_pack_b(packed, xg, g.Cg, hw, hw);
				swarm_gemm(R, hw, g.Cg, 1.0f, wg, g.Cg, packed, col, hw, NULL, NULL,
					   SWARM_OP_IDENTITY, NULL, ws->threads);
			}
			if (once)
				col2im_write(col, &g, o + gi * g.Mg * ohw,
					     bias ? bias + gi * g.Mg : NULL, &n->p);
			else
				col2im(col, &g, o + gi * g.Mg * ohw);
		}
		for (int64_t m = 0; !once && m < g.M; m++)
			bias_act(o + m * ohw, ohw, bias ? bias + m : NULL, &n->p);
	}
	return 0;
}

/* ---- pooling ----------------------------------------------------------------------------------
 */

/* Taps of a window's dim inside [lo, hi): positions start, start + step, ... (k of them). */
static int64_t taps_inside(int64_t start, int64_t k, int64_t step, int64_t lo, int64_t hi)
{
	int64_t c = 0;
	for (int64_t i = 0; i < k; i++)
		c += start + i * step >= lo && start + i * step < hi;
	return c;
}

#define POOL_TAPS 64 /* a max pool of more taps goes tap by tap over the row */

/* A max pool's output row oy, 32 columns at a time held in registers over every tap (a pass
 * over the row per tap loaded and stored it once a tap: the detector's 3x3 over 24 x 160 x
 * 224 took 1.5 ms). NaN wins, as in the pass: v > max or v unordered takes v. */
SWARM_INLINE void max_pool_row(const struct plane *pl, const struct geo *g, int64_t oy, float *orow)
{
	const float *src[POOL_TAPS];
	const int64_t taps = g->kh * g->kw;
	for (int64_t t = 0; t < taps; t++)
		src[t] = plane_tap(pl, g, oy, t / g->kw, t % g->kw);
	int64_t ox = 0;
	for (; ox + 32 <= g->OW; ox += 32) {
		swarm_v8 m[4];
#pragma GCC unroll 4
		for (int v = 0; v < 4; v++)
			m[v] = SWARM_V8_LOAD(src[0] + ox + 8 * v);
		for (int64_t t = 1; t < taps; t++)
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				const swarm_v8 x = SWARM_V8_LOAD(src[t] + ox + 8 * v);
				m[v] = SWARM_V8_SELECT((x > m[v]) | (x != x), x, m[v]);
			}
#pragma GCC unroll 4
		for (int v = 0; v < 4; v++)
			SWARM_V8_STORE(orow + ox + 8 * v, m[v]);
	}
	for (; ox < g->OW; ox++) {
		float a = src[0][ox];
		for (int64_t t = 1; t < taps; t++) {
			const float v = src[t][ox];
			a = v > a || v != v ? v : a;
		}
		orow[ox] = a;
	}
}

/* Max and average pooling over padded planes (-inf or 0 in the padding): each output row
 * starts as its first tap's run and takes the others in, a pass a tap; an average then
 * divides by its window's count, which is separable (rows inside times columns inside). */
SWARM_INLINE int swarm_cpu_pool2d_body(struct swarm_cpu_ws *ws, const struct swarm_node *n,
				       const struct swarm_node_dims *d)
{
	(void)d;
	struct geo g;
	geo_of(n, n->p.kernel[0], n->p.kernel[1], &g);
	const bool is_max = n->op == SWARM_OP_MAX_POOL2D;
	const int64_t pb = n->p.n_pads ? n->p.pads[2] : 0, pr = n->p.n_pads ? n->p.pads[3] : 0;
	if (g.OH == 0 || g.OW == 0)
		return 0;
	struct plane pl;
	plane_size(&g, &pl);
	const size_t plane_n = (plane_floats(&pl) + 15) & ~(size_t)15;
	float *scratch = swarm_cpu_ws_get(ws, plane_n + (size_t)(g.OH + g.OW));
	if (!scratch)
		return -ENOMEM;
	pl.p = scratch;
	/* an average's divisor: count_include_pad counts the window clipped to the padded input
	 * (ONNX Runtime's rule), else the taps inside the input */
	float *cy = scratch + plane_n, *cx = cy + g.OH;
	for (int64_t k = 0; !is_max && k < g.OH + g.OW; k++) {
		const bool row = k < g.OH;
		const int64_t o = row ? k : k - g.OH, s = row ? g.sh : g.sw;
		const int64_t pad = row ? g.pt : g.pl, in = row ? g.H : g.W, end = row ? pb : pr;
		const int64_t kk = row ? g.kh : g.kw, dl = row ? g.dh : g.dw;
		const int64_t start = o * s - pad;
		int64_t c;
		if (n->p.count_include_pad) {
			int64_t e = start + (kk - 1) * dl + 1;
			c = (e < in + end ? e : in + end) - start;
		} else {
			c = taps_inside(start, kk, dl, 0, in);
		}
		(row ? cy : cx)[o] = (float)c;
	}
	const float *x = n->in[0]->data;
	float *o = n->out->data;
	for (int64_t p = 0; p < g.N * g.C; p++) {
		plane_fill(&pl, x + p * g.H * g.W, &g, is_max ? -INFINITY : 0.0f);
		float *op = o + p * g.OH * g.OW;
		for (int64_t oy = 0; oy < g.OH; oy++) {
			float *orow = op + oy * g.OW;
			if (is_max && g.kh * g.kw <= POOL_TAPS) {
				max_pool_row(&pl, &g, oy, orow);
				continue;
			}
			memcpy(orow, plane_tap(&pl, &g, oy, 0, 0), (size_t)g.OW * sizeof(float));
			for (int64_t t = 1; t < g.kh * g.kw; t++) {
				const float *s = plane_tap(&pl, &g, oy, t / g.kw, t % g.kw);
				if (is_max) {
					for (int64_t ox = 0; ox < g.OW; ox++) {
						const float v = s[ox], a = orow[ox];
						orow[ox] = v > a || v != v ? v : a;
					}
				} else {
					for (int64_t ox = 0; ox < g.OW; ox++)
						orow[ox] += s[ox];
				}
			}
			for (int64_t ox = 0; !is_max && ox < g.OW; ox++) {
				const float c = cy[oy] * cx[ox];
				orow[ox] = c > 0.0f ? orow[ox] / c : 0.0f;
			}
		}
	}
	return 0;
}

SWARM_CPU_MULTI(, int, swarm_cpu_pool2d,
		(struct swarm_cpu_ws * ws, const struct swarm_node *n,
		 const struct swarm_node_dims *d),
		(ws, n, d))

int swarm_cpu_global_avg_pool(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			      const struct swarm_node_dims *d)
{
	(void)ws;
	swarm_cpu_reduce_block(n->in[0]->data, n->out->data, d->rows, d->cols, 1, false,
			       d->cols ? (float)(1.0 / (double)d->cols) : 0.0f);
	return 0;
}

/* ---- resize -----------------------------------------------------------------------------------
 */

int swarm_cpu_resize(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d)
{
	(void)d;
	const struct swarm_tensor *x = n->in[0], *o = n->out;
	const struct swarm_op_params *p = &n->p;
	const int64_t H = x->shape[2], W = x->shape[3], OH = o->shape[2], OW = o->shape[3];
	const int64_t planes = x->shape[0] * x->shape[1];
	/* The scale of each dim: as given, or (sizes given) out over in. */
	const float sh = p->sizes[0] ? (float)OH / (float)H : p->scales[0];
	const float sw = p->sizes[1] ? (float)OW / (float)W : p->scales[1];
	/* Per output column and row: the input indices and (linear) weights, once. */
	/* 4 int64 arrays (2 floats an entry) and 2 float arrays over OW and OH; with a fused
	 * ADD's tensor, a row before it is added */
	const float *z = n->sum ? n->sum->data : NULL;
	int64_t *ix = (int64_t *)swarm_cpu_ws_get(ws, (size_t)(5 * (OW + OH) + (z ? OW : 0)));
	if (!ix)
		return -ENOMEM;
	int64_t *ix1 = ix + OW, *iy = ix1 + OW, *iy1 = iy + OH;
	float *fx = (float *)(iy1 + OH), *fy = fx + OW;
	const bool linear = p->mode == SWARM_RESIZE_LINEAR;
	for (int pass = 0; pass < 2; pass++) {
		const int64_t in = pass ? H : W, out = pass ? OH : OW;
		int64_t *i0 = pass ? iy : ix, *i1 = pass ? iy1 : ix1;
		float *f = pass ? fy : fx;
		const float s = pass ? sh : sw;
		for (int64_t k = 0; k < out; k++)
			swarm_resize_axis(p->coord, p->nearest, linear, k, s, in, out, &i0[k],
					  &i1[k], &f[k]);
	}
	float *raw = z ? fy + OH : NULL;
	for (int64_t pl = 0; pl < planes; pl++) {
		const float *xp = (const float *)x->data + pl * H * W;
		float *op = (float *)o->data + pl * OH * OW;
		for (int64_t oy = 0; oy < OH; oy++) {
			const float *r0 = xp + iy[oy] * W, *r1 = xp + iy1[oy] * W;
			float *orow = op + oy * OW, *row = z ? raw : orow;
			/* the row above's inputs and weights: its values again (an upsampling
			 * computed every other row twice), copied, or still in raw */
			const bool again =
				oy > 0 && iy[oy] == iy[oy - 1] &&
				(!linear || (iy1[oy] == iy1[oy - 1] && fy[oy] == fy[oy - 1]));
			if (again) {
				if (!z) {
					memcpy(orow, orow - OW, (size_t)OW * sizeof(float));
					continue;
				}
			} else if (!linear) {
				for (int64_t ox = 0; ox < OW; ox++)
					row[ox] = r0[ix[ox]];
			} else {
				const float wy = fy[oy];
				for (int64_t ox = 0; ox < OW; ox++) {
					const float wx = fx[ox];
					float top = r0[ix[ox]] + (r0[ix1[ox]] - r0[ix[ox]]) * wx;
					float bot = r1[ix[ox]] + (r1[ix1[ox]] - r1[ix[ox]]) * wx;
					row[ox] = top + (bot - top) * wy;
				}
			}
			if (z)
				swarm_cpu_add(orow, raw, z + (pl * OH + oy) * OW, OW);
		}
	}
	return 0;
}

/* ---- batchnorm --------------------------------------------------------------------------------
 */

int swarm_cpu_batchnorm(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d)
{
	(void)ws;
	const float *x = n->in[0]->data, *scale = n->in[1]->data, *bias = n->in[2]->data,
		    *mean = n->in[3]->data, *var = n->in[4]->data;
	float *o = n->out->data;
	for (int64_t b = 0; b < d->batch; b++)
		for (int64_t c = 0; c < d->cols; c++) {
			const float k = scale[c] / sqrtf(var[c] + d->eps);
			const float s = bias[c] - mean[c] * k;
			const int64_t at = (b * d->cols + c) * d->count;
			for (int64_t i = 0; i < d->count; i++)
				o[at + i] = x[at + i] * k + s;
		}
	return 0;
}
