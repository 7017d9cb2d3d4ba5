/* conv.cu: the CUDA device's spatial ops on NCHW f32: conv2d (a 1x1 conv without stride or
 * padding as one strided-batched cuBLAS GEMM, every other one, depthwise included, as a direct
 * sum per output element), conv_transpose2d (a direct gather per output element), max and
 * average pooling, global average pooling (a warp per plane), resize (nearest and bilinear,
 * ONNX's coordinate modes) and batchnorm. The rules are the CPU's (kernels/cpu/conv.c), which
 * the cross-device op test holds them to.
 *
 * Not yet tuned: the direct convs are one thread per output element, correct for every
 * geometry but far from an implicit GEMM on tensor cores; the 1x1 GEMMs (most of a MobileNet's
 * or a detector's work) are cuBLAS's.
 */
#include "conv.cuh"

#include "blas.cuh"
#include "unary.cuh"

#include "kernels/op_math.h"

/* A conv's geometry, by value. */
struct conv_geo {
	int64_t N, C, H, W, M, OH, OW, G, Cg, Mg, kh, kw, sh, sw, dh, dw, pt, pl;
};

static int64_t or1(int32_t v) { return v ? v : 1; }

static conv_geo geo_of(const struct swarm_node *n, int64_t kh, int64_t kw)
{
	const struct swarm_tensor *x = n->in[0], *o = n->out;
	const struct swarm_op_params *p = &n->p;
	conv_geo g;
	g.N = x->shape[0], g.C = x->shape[1], g.H = x->shape[2], g.W = x->shape[3];
	g.M = o->shape[1], g.OH = o->shape[2], g.OW = o->shape[3];
	g.G = p->group ? p->group : 1;
	g.Cg = g.C / g.G, g.Mg = g.M / g.G;
	g.kh = kh, g.kw = kw;
	g.sh = or1(p->stride[0]), g.sw = or1(p->stride[1]);
	g.dh = or1(p->dilation[0]), g.dw = or1(p->dilation[1]);
	g.pt = p->n_pads ? p->pads[0] : 0, g.pl = p->n_pads ? p->pads[1] : 0;
	return g;
}

/* out[n][m][oy][ox] = bias[m] + sum over the group's channels and the taps inside the input. */
static __global__ void conv_direct(const float *x, const float *w, const float *bias, float *o,
				   conv_geo g, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const int64_t ox = e % g.OW, oy = (e / g.OW) % g.OH, m = (e / (g.OW * g.OH)) % g.M,
			      b = e / (g.OW * g.OH * g.M);
		const int64_t gi = m / g.Mg;
		const float *xg = x + (b * g.C + gi * g.Cg) * g.H * g.W;
		const float *wm = w + m * g.Cg * g.kh * g.kw;
		float acc = bias ? bias[m] : 0.0f;
		for (int64_t c = 0; c < g.Cg; c++)
			for (int64_t i = 0; i < g.kh; i++) {
				const int64_t y = oy * g.sh - g.pt + i * g.dh;
				if (y < 0 || y >= g.H)
					continue;
				for (int64_t j = 0; j < g.kw; j++) {
					const int64_t xx = ox * g.sw - g.pl + j * g.dw;
					if (xx >= 0 && xx < g.W)
						acc += wm[(c * g.kh + i) * g.kw + j] *
						       xg[(c * g.H + y) * g.W + xx];
				}
			}
		o[e] = acc;
	}
}

int swarm_cuda_op_conv2d(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const struct swarm_tensor *wt = n->in[1];
	const float *x = (const float *)n->in[0]->data, *w = (const float *)wt->data;
	const float *bias = n->n_in == 3 ? (const float *)n->in[2]->data : NULL;
	float *o = (float *)n->out->data;
	const conv_geo g = geo_of(n, wt->shape[2], wt->shape[3]);
	const int64_t ohw = g.OH * g.OW, total = d->elems;

	if (total == 0)
		return 0;
	const bool gemm = g.G == 1 && g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 &&
			  g.pt == 0 && g.pl == 0 && g.OH == g.H && g.OW == g.W;
	if (gemm) {
		/* Per image, row-major out[M, HW] = W[M, C] x X[C, HW]: in cuBLAS's column-major
		 * terms out^T (HW x M) = X^T (HW x C) x W^T (C x M), every operand as it lies. */
		const float one = 1.0f, zero = 0.0f;
		CUBLAS_CHECK_RET(swarm_blas()->cublasGemmStridedBatchedEx(
			c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)ohw, (int)g.M, (int)g.C, &one, x,
			CUDA_R_32F, (int)ohw, (long long)(g.C * ohw), w, CUDA_R_32F, (int)g.C, 0LL,
			&zero, o, CUDA_R_32F, (int)ohw, (long long)(g.M * ohw), (int)g.N,
			CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
	} else {
		conv_direct<<<swarm_cuda_blocks(total, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
			      c->stream>>>(x, w, bias, o, g, total);
		CUDA_CHECK_LAUNCH();
		bias = NULL; /* already in */
	}
	return swarm_cuda_bias_act(c, n->p.act, &n->p, o, bias, g.M, ohw, total);
}

/* W is [C, Mg, kh, kw]: output (m, oy, ox) takes input (c, iy, ix) of m's group through tap
 * (i, j) where oy = iy * sh - pt + i * dh and ox likewise. */
static __global__ void conv_transpose_direct(const float *x, const float *w, const float *bias,
					     float *o, conv_geo g, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const int64_t ox = e % g.OW, oy = (e / g.OW) % g.OH, m = (e / (g.OW * g.OH)) % g.M,
			      b = e / (g.OW * g.OH * g.M);
		const int64_t gi = m / g.Mg, mm = m % g.Mg;
		float acc = bias ? bias[m] : 0.0f;
		for (int64_t c = gi * g.Cg; c < (gi + 1) * g.Cg; c++) {
			const float *xc = x + (b * g.C + c) * g.H * g.W;
			const float *wc = w + (c * g.Mg + mm) * g.kh * g.kw;
			for (int64_t i = 0; i < g.kh; i++) {
				const int64_t ty = oy + g.pt - i * g.dh;
				if (ty < 0 || ty % g.sh)
					continue;
				const int64_t iy = ty / g.sh;
				if (iy >= g.H)
					continue;
				for (int64_t j = 0; j < g.kw; j++) {
					const int64_t tx = ox + g.pl - j * g.dw;
					if (tx < 0 || tx % g.sw)
						continue;
					const int64_t ix = tx / g.sw;
					if (ix < g.W)
						acc += wc[i * g.kw + j] * xc[iy * g.W + ix];
				}
			}
		}
		o[e] = acc;
	}
}

int swarm_cuda_op_conv_transpose2d(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				   const struct swarm_node_dims *d)
{
	const struct swarm_tensor *wt = n->in[1];
	const float *bias = n->n_in == 3 ? (const float *)n->in[2]->data : NULL;
	float *o = (float *)n->out->data;
	conv_geo g = geo_of(n, wt->shape[2], wt->shape[3]);
	const int64_t total = d->elems;

	if (total == 0)
		return 0;
	conv_transpose_direct<<<swarm_cuda_blocks(total, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
				c->stream>>>((const float *)n->in[0]->data, (const float *)wt->data,
					     bias, o, g, total);
	CUDA_CHECK_LAUNCH();
	return swarm_cuda_bias_act(c, n->p.act, &n->p, o, NULL, g.M, g.OH * g.OW, total);
}

/* ---- pooling --------------------------------------------------------------------------------- */

/* One thread per output: the window's max (NaN propagating), or its sum over a count that is
 * ONNX Runtime's: with count_include_pad the window clipped to the padded input, else the
 * taps inside the input. */
static __global__ void pool2d(const float *x, float *o, conv_geo g, int64_t pb, int64_t pr,
			      int is_max, int include_pad, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const int64_t ox = e % g.OW, oy = (e / g.OW) % g.OH, plane = e / (g.OW * g.OH);
		const float *xp = x + plane * g.H * g.W;
		const int64_t y0 = oy * g.sh - g.pt, x0 = ox * g.sw - g.pl;
		float acc = is_max ? -INFINITY : 0.0f;
		int64_t cnt = 0;
		for (int64_t i = 0; i < g.kh; i++) {
			const int64_t y = y0 + i * g.dh;
			if (y < 0 || y >= g.H)
				continue;
			for (int64_t j = 0; j < g.kw; j++) {
				const int64_t xx = x0 + j * g.dw;
				if (xx < 0 || xx >= g.W)
					continue;
				const float v = xp[y * g.W + xx];
				if (is_max)
					acc = v > acc || v != v ? v : acc;
				else
					acc += v;
				cnt++;
			}
		}
		if (!is_max) {
			if (include_pad) {
				int64_t ye = y0 + (g.kh - 1) * g.dh + 1,
					xe = x0 + (g.kw - 1) * g.dw + 1;
				ye = ye < g.H + pb ? ye : g.H + pb;
				xe = xe < g.W + pr ? xe : g.W + pr;
				cnt = (ye - y0) * (xe - x0);
			}
			acc = cnt > 0 ? acc / (float)cnt : 0.0f;
		}
		o[e] = acc;
	}
}

int swarm_cuda_op_pool2d(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const conv_geo g = geo_of(n, n->p.kernel[0], n->p.kernel[1]);
	const int64_t pb = n->p.n_pads ? n->p.pads[2] : 0, pr = n->p.n_pads ? n->p.pads[3] : 0;
	if (d->elems == 0)
		return 0;
	pool2d<<<swarm_cuda_blocks(d->elems, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0, c->stream>>>(
		(const float *)n->in[0]->data, (float *)n->out->data, g, pb, pr,
		n->op == SWARM_OP_MAX_POOL2D, n->p.count_include_pad != 0, d->elems);
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* A warp per plane (row of cols floats): its mean. */
static __global__ void plane_mean(const float *x, float *o, int64_t rows, int64_t cols)
{
	const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
	for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
	     r += warps) {
		float s = 0.0f;
		for (int64_t k = threadIdx.x % 32; k < cols; k += 32)
			s += x[r * cols + k];
		s = swarm_warp_sum(s);
		if (threadIdx.x % 32 == 0)
			o[r] = cols ? s / (float)cols : 0.0f;
	}
}

int swarm_cuda_op_global_avg_pool(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				  const struct swarm_node_dims *d)
{
	if (d->rows == 0)
		return 0;
	plane_mean<<<swarm_cuda_blocks(d->rows, SWARM_CUDA_THREADS / 32), SWARM_CUDA_THREADS, 0,
		     c->stream>>>((const float *)n->in[0]->data, (float *)n->out->data, d->rows,
				  d->cols);
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* ---- resize ---------------------------------------------------------------------------------- */

struct resize_arg {
	int64_t H, W, OH, OW;
	float sh, sw;
	uint32_t coord, nearest, linear;
};

/* The input index (and, linear, the next one and the weight) along one dim. */
static __device__ void resize_axis(const resize_arg &a, int64_t k, bool rows, int64_t *i0,
				   int64_t *i1, float *f)
{
	swarm_resize_axis(a.coord, a.nearest, a.linear, k, rows ? a.sh : a.sw, rows ? a.H : a.W,
			  rows ? a.OH : a.OW, i0, i1, f);
}

static __global__ void resize_f32(const float *x, float *o, resize_arg a, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const int64_t ox = e % a.OW, oy = (e / a.OW) % a.OH, plane = e / (a.OW * a.OH);
		int64_t x0, x1, y0, y1;
		float fx, fy;
		resize_axis(a, ox, false, &x0, &x1, &fx);
		resize_axis(a, oy, true, &y0, &y1, &fy);
		const float *xp = x + plane * a.H * a.W, *r0 = xp + y0 * a.W, *r1 = xp + y1 * a.W;
		if (!a.linear) {
			o[e] = r0[x0];
			continue;
		}
		const float top = r0[x0] + (r0[x1] - r0[x0]) * fx;
		const float bot = r1[x0] + (r1[x1] - r1[x0]) * fx;
		o[e] = top + (bot - top) * fy;
	}
}

int swarm_cuda_op_resize(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const struct swarm_tensor *x = n->in[0], *o = n->out;
	const struct swarm_op_params *p = &n->p;
	resize_arg a;
	a.H = x->shape[2], a.W = x->shape[3], a.OH = o->shape[2], a.OW = o->shape[3];
	a.sh = p->sizes[0] ? (float)a.OH / (float)a.H : p->scales[0];
	a.sw = p->sizes[1] ? (float)a.OW / (float)a.W : p->scales[1];
	a.coord = p->coord, a.nearest = p->nearest, a.linear = p->mode == SWARM_RESIZE_LINEAR;
	if (d->elems == 0)
		return 0;
	resize_f32<<<swarm_cuda_blocks(d->elems, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
		     c->stream>>>((const float *)x->data, (float *)o->data, a, d->elems);
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* ---- batchnorm ------------------------------------------------------------------------------- */

static __global__ void batchnorm_f32(const float *x, const float *scale, const float *bias,
				     const float *mean, const float *var, float *o, int64_t C,
				     int64_t count, float eps, int64_t total)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
		const int64_t ch = (e / count) % C;
		const float k = scale[ch] / sqrtf(var[ch] + eps);
		o[e] = x[e] * k + (bias[ch] - mean[ch] * k);
	}
}

int swarm_cuda_op_batchnorm(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d)
{
	if (d->elems == 0)
		return 0;
	batchnorm_f32<<<swarm_cuda_blocks(d->elems, SWARM_CUDA_THREADS), SWARM_CUDA_THREADS, 0,
			c->stream>>>((const float *)n->in[0]->data, (const float *)n->in[1]->data,
				     (const float *)n->in[2]->data, (const float *)n->in[3]->data,
				     (const float *)n->in[4]->data, (float *)n->out->data, d->cols,
				     d->count > 0 ? d->count : 1, d->eps, d->elems);
	CUDA_CHECK_LAUNCH();
	return 0;
}
