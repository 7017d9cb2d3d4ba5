/* conv_depthwise.c: the CPU device's depthwise conv (groups = channels), on blocks of 8
 * channels transposed so that a vector holds one position of 8 channels (below). */
#include "kernels/cpu/conv.h"
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
		const float *wb = wblk + c0 * taps; /* the block's taps (conv_dw_weights) */
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
void conv_dw_weights(float *dst, const float *w, int64_t C, int64_t taps)
{
	for (int64_t c0 = 0; c0 < C; c0 += DWB)
		for (int64_t t = 0; t < taps; t++)
			for (int64_t c = 0; c < DWB; c++)
				dst[c0 * taps + t * DWB + c] = c0 + c < C ? w[(c0 + c) * taps + t] :
									    0.0f;
}

/* The blocked depthwise conv of every image of the node's batch. */
int conv_depthwise(struct swarm_cpu_ws *ws, const struct swarm_node *n, const struct geo *g)
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
		conv_dw_weights(swarm_cpu_line(scratch), n->in[1]->data, g->C, taps);
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
