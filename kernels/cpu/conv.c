/* conv.c: the CPU device's spatial ops on NCHW tensors (ops.h): conv2d (a direct kernel for
 * kernels wider than 1x1, the packed GEMM of gemm.h over the input itself for a 1x1 (over an
 * im2col where it strides or pads), a depthwise one on blocks of 8 channels),
 * conv_transpose2d (the packed GEMM then col2im); the depthwise conv is conv_depthwise.c's,
 * pooling, resize and batchnorm pool.c's (what they share is conv.h). Bias and a fused
 * activation are applied per output channel in the same pass. Scratch (the im2col matrix)
 * comes from the device's workspace, grown once and kept, so a steady state allocates nothing.
 */
#include "kernels/cpu/conv.h"
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


static int64_t or1(int32_t v) { return v ? v : 1; }

void conv_geo_of(const struct swarm_node *n, int64_t kh, int64_t kw, struct geo *g)
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


void conv_plane_size(const struct geo *g, struct plane *pl)
{
	const int64_t rows = (g->OH - 1) * g->sh + (g->kh - 1) * g->dh + 1;
	const int64_t cols = (g->OW - 1) * g->sw + (g->kw - 1) * g->dw + 1;
	pl->rows = rows > g->H + g->pt ? rows : g->H + g->pt;
	const int64_t wp = cols > g->W + g->pl ? cols : g->W + g->pl;
	pl->sw = g->sw;
	pl->pw = (wp + g->sw - 1) / g->sw;
}

size_t conv_plane_floats(const struct plane *pl) { return (size_t)(pl->rows * pl->sw * pl->pw); }


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
void conv_plane_fill(struct plane *pl, const float *x, const struct geo *g, float fill)
{
	plane_fill_rows(pl, x, g, fill, 0, pl->rows);
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
					memcpy(row + (pos - n0), conv_plane_tap(&pl, g, oy, i, j) + ox,
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

/* Output rows [oy0, oy1) of one group, the band's planes starting at output row oyp's.
 * (long: the register tile's loop nest with its edge handling, as issue 14's figures were
 * measured on it; moving its parts into functions is a change to the detector's hottest loop
 * to be measured, not a refactor.) */
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
int conv_threads(const struct swarm_cpu_ws *ws, double flops, int64_t parts)
{
	int t = ws->threads > 1 && flops >= CONV_SPLIT_FLOPS ? ws->threads : 1;
	return (int64_t)t > parts ? (int)(parts > 0 ? parts : 1) : t;
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
	conv_geo_of(n, w->shape[2], w->shape[3], &g);
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
	conv_geo_of(n, w->shape[2], w->shape[3], &g);
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
	conv_geo_of(n, w->shape[2], w->shape[3], &g);
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
	conv_geo_of(n, w->shape[2], w->shape[3], &g);
	if (layout == SWARM_CPU_PACK_DW)
		conv_dw_weights(dst, w->data, g.C, g.kh * g.kw);
	else
		dc_weights(dst, w->data, &g);
}

/* The direct conv (conv_direct): each thread fills the padded planes of a band of output rows
 * at a time (every channel's rows under the band: kh - 1 more than it strides over) and sums
 * the band: the planes stay in L2 between their fill and their reads, where whole planes (the
 * detector's stem: 3.5 to 7 MB) went to memory and back. */
static int conv2d_direct(struct swarm_cpu_ws *ws, const struct swarm_node *n, const struct geo *gp,
			 const float *bias, const float *zsum)
{
	const struct geo g = *gp;
	const int64_t ohw = g.OH * g.OW, K = g.Cg * g.kh * g.kw;
	struct plane shape;
	conv_plane_size(&g, &shape);
	const int64_t band = dc_band(&g, &shape);
	shape.rows = (band - 1) * g.sh + (g.kh - 1) * g.dh + 1;
	const size_t plane_n = (conv_plane_floats(&shape) + 15) & ~(size_t)15,
		     mine = (size_t)(DC_W * K) + plane_n * (size_t)g.Cg + DC_SLACK;
	/* scratch: the taps' offsets (K int64), the weights in tiles of DC_CO output channels
	 * (dc_weights) unless prepared at graph build, then per thread a panel, the band's
	 * planes and their slack */
	const int64_t tiles = (g.Mg + DC_CO - 1) / DC_CO;
	const struct swarm_cpu_packed *pk = n->prep;
	const bool prepared = pk && pk->layout == SWARM_CPU_PACK_DC && pk->k == K && pk->n == g.M;
	const size_t wp_n = prepared ? 0 : (size_t)(g.G * tiles * DC_CO * K);
	const int t = conv_threads(ws, 2.0 * (double)(g.N * g.M * ohw * K), g.OH);
	float *scratch = swarm_cpu_ws_get(ws, (size_t)(2 * K) + wp_n + mine * (size_t)t);
	if (!scratch)
		return -ENOMEM;
	int64_t *base = (int64_t *)scratch;
	float *per_thread = scratch + 2 * K + wp_n;
	if (!prepared)
		dc_weights(scratch + 2 * K, n->in[1]->data, &g);
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
			/* each thread a run of output rows, with a panel and planes of its own */
#pragma omp parallel num_threads(t) if (t > 1)
			{
				const int id = t > 1 ? omp_get_thread_num() : 0,
					  nt = t > 1 ? omp_get_num_threads() : 1;
				float *panel = per_thread + mine * (size_t)id,
				      *planes = panel + DC_W * K;
				const int64_t oy1 = g.OH * (id + 1) / nt;
				for (int64_t oy = g.OH * id / nt; oy < oy1; oy += band) {
					const int64_t oe = oy + band < oy1 ? oy + band : oy1;
					const int64_t r0 = oy * g.sh,
						      r1 = (oe - 1) * g.sh + (g.kh - 1) * g.dh + 1;
					struct plane pl = shape;
					for (int64_t c = 0; c < g.Cg; c++) {
						pl.p = planes + (size_t)c * plane_n;
						plane_fill_rows(
							&pl, conv_channel(n, &g, b, gi * g.Cg + c),
							&g, 0.0f, r0, r1);
					}
					direct_conv(planes, &shape, &g, base, wp,
						    bias ? bias + gi * g.Mg : NULL,
						    o + gi * g.Mg * ohw, &n->p, panel, oy, oe, oy,
						    zg ? zg + gi * g.Mg * ohw : NULL);
				}
			}
		}
	}
	return 0;
}

/* A 1x1 conv that neither strides nor pads, over enough columns (conv_in_place):
 * out[Mg, ohw] = W[Mg, K] x X[K, ohw] per group, X read in place. */
static int conv2d_in_place(struct swarm_cpu_ws *ws, const struct swarm_node *n, const struct geo *g,
			   const float *bias, const float *zsum)
{
	const int64_t ohw = g->OH * g->OW, K = g->Cg * g->kh * g->kw;
	float *tail = swarm_cpu_ws_get(ws, (size_t)K * SWARM_GEMM_NR + 16);
	if (!tail)
		return -ENOMEM;
	tail = swarm_cpu_line(tail);
	for (int64_t b = 0; b < g->N; b++)
		for (int64_t gi = 0; gi < g->G; gi++)
			swarm_gemm_b_sum(g->Mg, ohw, K, 1.0f,
					 (const float *)n->in[1]->data + gi * g->Mg * K, K,
					 (const float *)n->in[0]->data +
						 (b * g->C + gi * g->Cg) * g->H * g->W,
					 ohw, tail,
					 (float *)n->out->data + (b * g->M + gi * g->Mg) * ohw, ohw,
					 NULL, bias ? bias + gi * g->Mg : NULL, n->p.act, &n->p,
					 ws->threads,
					 zsum ? zsum + (b * g->M + gi * g->Mg) * ohw : NULL);
	return 0;
}

/* A GEMM per group and block of output columns: out[Mg, block] = W[Mg, K] x B[K, block], B the
 * input itself (direct: a 1x1 that neither strides nor pads) or the block's im2col from the
 * group's padded planes, packed for kernels/cpu/gemm.h; the bias (one per output channel, a
 * row of the product) and the activation are applied on each tile. Scratch: the planes, one
 * im2col block, the packed block. */
static int conv2d_im2col(struct swarm_cpu_ws *ws, const struct swarm_node *n, const struct geo *gp,
			 bool direct, const float *bias, const float *zsum)
{
	struct geo g = *gp;
	const int64_t ohw = g.OH * g.OW, K = g.Cg * g.kh * g.kw;
	const int64_t nb = conv_block_cols(K, ohw);
	struct plane shape;
	conv_plane_size(&g, &shape);
	const size_t plane_n = direct ? 0 : (conv_plane_floats(&shape) + 15) & ~(size_t)15;
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
			const float *wg = (const float *)n->in[1]->data + gi * g.Mg * K;
			float *og = o + gi * g.Mg * ohw;
			for (int64_t c = 0; !direct && c < g.Cg; c++) {
				shape.p = planes + (size_t)c * plane_n;
				conv_plane_fill(&shape, xg + c * g.H * g.W, &g, 0.0f);
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

int swarm_cpu_conv2d(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d)
{
	(void)d;
	const struct swarm_tensor *wt = n->in[1];
	const float *bias = n->n_in == 3 ? n->in[2]->data : NULL;
	struct geo g;
	conv_geo_of(n, wt->shape[2], wt->shape[3], &g);
	const int64_t ohw = g.OH * g.OW, K = g.Cg * g.kh * g.kw;
	const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 &&
			    g.pl == 0 && g.OH == g.H && g.OW == g.W;
	const float *zsum = n->sum ? n->sum->data : NULL; /* a fused ADD's, after the act */
	if (ohw == 0)
		return 0;
	if (g.Cg == 1 && g.Mg == 1)
		return conv_depthwise(ws, n, &g);
	if (conv_direct(&g))
		return conv2d_direct(ws, n, &g, bias, zsum);
	const struct swarm_cpu_packed *pk = n->prep;
	if (direct && ohw == 1 && g.G == 1 && pk && pk->layout == SWARM_CPU_PACK_GEMM &&
	    pk->k == K && pk->n == g.M) {
		/* a 1x1 image: out [N, M] = X [N, C] W^T, a LINEAR over the prepared W^T (a
		 * GEMM over the image would fill 1 column of every 32-column panel) */
		swarm_gemm_sum(g.N, g.M, K, 1.0f, n->in[0]->data, K, pk->b, n->out->data, g.M, bias,
			       NULL, n->p.act, &n->p, ws->threads, zsum);
		return 0;
	}
	if (direct && conv_in_place(K, g.Mg, ohw))
		return conv2d_in_place(ws, n, &g, bias, zsum);
	return conv2d_im2col(ws, n, &g, direct, bias, zsum);
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
	conv_geo_of(n, wt->shape[2], wt->shape[3], &g);
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
