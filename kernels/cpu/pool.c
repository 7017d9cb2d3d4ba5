/* pool.c: the CPU device's max and average pooling, global average pooling, resize (nearest
 * and bilinear, ONNX's coordinate modes) and batchnorm, on NCHW tensors; the pools read the
 * padded planes of conv.h. */
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
		src[t] = conv_plane_tap(pl, g, oy, t / g->kw, t % g->kw);
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
	conv_geo_of(n, n->p.kernel[0], n->p.kernel[1], &g);
	const bool is_max = n->op == SWARM_OP_MAX_POOL2D;
	const int64_t pb = n->p.n_pads ? n->p.pads[2] : 0, pr = n->p.n_pads ? n->p.pads[3] : 0;
	if (g.OH == 0 || g.OW == 0)
		return 0;
	struct plane pl;
	conv_plane_size(&g, &pl);
	const size_t plane_n = (conv_plane_floats(&pl) + 15) & ~(size_t)15;
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
		conv_plane_fill(&pl, x + p * g.H * g.W, &g, is_max ? -INFINITY : 0.0f);
		float *op = o + p * g.OH * g.OW;
		for (int64_t oy = 0; oy < g.OH; oy++) {
			float *orow = op + oy * g.OW;
			if (is_max && g.kh * g.kw <= POOL_TAPS) {
				max_pool_row(&pl, &g, oy, orow);
				continue;
			}
			memcpy(orow, conv_plane_tap(&pl, &g, oy, 0, 0),
			       (size_t)g.OW * sizeof(float));
			for (int64_t t = 1; t < g.kh * g.kw; t++) {
				const float *s = conv_plane_tap(&pl, &g, oy, t / g.kw, t % g.kw);
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
