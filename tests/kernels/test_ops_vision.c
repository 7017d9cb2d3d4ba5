/* test_ops_vision.c: the CPU device's vision and layout ops (the ONNX intake's: kernels/op.h)
 * against float64 references written here in plain loops, on seeded random inputs over several
 * shapes and parameter sets each; then each op's refusals returning -EINVAL with nothing
 * written to out or past it.
 *
 * Tolerances (per element, |got - want| <= tol):
 *   add, sub, mul, div, max, min, prelu   1e-6 * (1 + |want|)  (one rounding each)
 *   erf, exp, log, sqrt, pow, hardsigmoid, hardswish, leaky_relu, clip
 *                                         2e-6 * (1 + |want|)  (libm's float functions)
 *   conv2d, conv_transpose2d              2e-5 * sum |w x| + 1e-6 (the GEMM's f32 sums,
 *                                         relative to the terms' magnitude), then the act
 *   max_pool2d, transpose, reshape, slice, gather, pad, resize nearest   exact
 *   avg_pool2d, global_avg_pool, reduce_mean, reduce_sum, batchnorm, resize linear
 *                                         1e-5 * (1 + |want|)
 *   reduce_max                            exact
 *   cast                                  exact against the rounding to nearest even
 * Resize's input coordinates are computed in f32, as ONNX Runtime computes them.
 */
#include "op_test.h"

TestSuite(kernels_ops_vision, .init = setup, .fini = teardown);

/* ---- helpers -------------------------------------------------------------------------------- */

/* A tensor of dt and shape (nd dims from an array), random f32 data. */
static struct swarm_tensor tens_a(uint32_t dt, uint32_t nd, const int64_t *shape)
{
	struct swarm_tensor t = { .dtype = dt, .ndim = nd };
	memcpy(t.shape, shape, nd * sizeof *shape);
	size_t bytes = tbytes(&t);
	unsigned char *p = malloc(bytes + GUARD);
	cr_assert_not_null(p);
	memset(p, SENTINEL, bytes + GUARD);
	cr_assert_lt(n_bufs, MAX_BUFS);
	bufs[n_bufs++] = p;
	t.data = p;
	if (dt == SWARM_DTYPE_F32)
		for (size_t i = 0; i < bytes / 4; i++)
			((float *)p)[i] = rnd();
	return t;
}

#define SHAPE(...) \
	(const int64_t[]){ __VA_ARGS__ }, (uint32_t)(sizeof((int64_t[]){ __VA_ARGS__ }) / 8)
#define T(...) tens_shape(SHAPE(__VA_ARGS__))

static struct swarm_tensor tens_shape(const int64_t *shape, uint32_t nd)
{
	return tens_a(SWARM_DTYPE_F32, nd, shape);
}

/* The output of node n as infer gives it (the op table's rule), allocated. */
static struct swarm_tensor out_for(struct swarm_node *n)
{
	struct swarm_tensor o;
	char why[160] = "";
	struct swarm_op_args a = { .op = n->op,
				   .n_in = n->n_in,
				   .in = n->in,
				   .p = &n->p,
				   .why = why,
				   .why_len = sizeof why };
	int rc = swarm_op_infer(&a, &o);
	cr_assert_eq(rc, 0, "%s: infer refused: %s", swarm_op_name(n->op), why);
	return tens_a(o.dtype, o.ndim, o.shape);
}

/* Runs n with a fresh output of infer's shape and returns it. */
static struct swarm_tensor *run_node(struct swarm_node *n, const char *what)
{
	static struct swarm_tensor outs[64];
	static int k;
	struct swarm_tensor *o = &outs[k++ % 64];
	*o = out_for(n);
	n->out = o;
	run_ok(n, what);
	return o;
}

static int64_t nelems(const struct swarm_tensor *t) { return swarm_tensor_elems(t); }

/* Row-major strides. */
static void strides(const struct swarm_tensor *t, int64_t *s)
{
	int64_t step = 1;
	for (int i = (int)t->ndim - 1; i >= 0; i--) {
		s[i] = step;
		step *= t->shape[i];
	}
}

/* out's multi-index of flat index e. */
static void unflat(const struct swarm_tensor *t, int64_t e, int64_t *idx)
{
	for (int i = (int)t->ndim - 1; i >= 0; i--) {
		idx[i] = t->shape[i] ? e % t->shape[i] : 0;
		e = t->shape[i] ? e / t->shape[i] : 0;
	}
}

/* ---- binary with broadcasting -----------------------------------------------------------------
 */

static double ref_binary(uint32_t op, double x, double y)
{
	switch (op) {
	case SWARM_OP_ADD:
		return x + y;
	case SWARM_OP_SUB:
		return x - y;
	case SWARM_OP_MUL:
		return x * y;
	case SWARM_OP_DIV:
		return x / y;
	case SWARM_OP_MAX:
		return x > y ? x : y;
	case SWARM_OP_MIN:
		return x < y ? x : y;
	default: /* PRELU */
		return x >= 0 ? x : y * x;
	}
}

/* Element of t at out index idx (out of nd dims), numpy's broadcast. */
static double bcast_at(const struct swarm_tensor *t, const int64_t *idx, uint32_t nd)
{
	int64_t s[SWARM_TENSOR_MAX_DIMS], off = 0;
	strides(t, s);
	for (uint32_t i = 0; i < t->ndim; i++) {
		int64_t k = idx[nd - t->ndim + i];
		off += (t->shape[i] == 1 ? 0 : k) * s[i];
	}
	return F(t)[off];
}

static void binary_case(uint32_t op, struct swarm_tensor a, struct swarm_tensor b)
{
	struct swarm_node n = NODE(op, NULL, &a, &b);
	char what[64];
	snprintf(what, sizeof what, "%s of %u-dim and %u-dim", swarm_op_name(op), a.ndim, b.ndim);
	struct swarm_tensor *o = run_node(&n, what);
	int64_t N = nelems(o), idx[SWARM_TENSOR_MAX_DIMS];
	double *want = dalloc((size_t)N);
	for (int64_t e = 0; e < N; e++) {
		unflat(o, e, idx);
		want[e] = ref_binary(op, bcast_at(&a, idx, o->ndim), bcast_at(&b, idx, o->ndim));
	}
	check_close(F(o), want, NULL, (size_t)N, 1e-6, 1e-6, what);
}

Test(kernels_ops_vision, binary_ops_broadcast_as_numpy)
{
	const uint32_t ops[] = { SWARM_OP_ADD, SWARM_OP_SUB, SWARM_OP_MUL,  SWARM_OP_DIV,
				 SWARM_OP_MAX, SWARM_OP_MIN, SWARM_OP_PRELU };
	for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
		uint32_t op = ops[k];
		binary_case(op, T(2, 3, 4, 5), T(3, 1, 1));
		binary_case(op, T(2, 3, 4, 5), T(5));
		binary_case(op, T(3, 17), T(3, 17));
		binary_case(op, T(2, 3, 4, 5), T(1));
		if (op != SWARM_OP_PRELU) { /* prelu's slope broadcasts to X only */
			binary_case(op, T(2, 1, 5), T(3, 1));
			binary_case(op, T(4), T(2, 3, 4));
			binary_case(op, T(1, 129), T(7, 1));
		}
	}
}

Test(kernels_ops_vision, max_and_min_propagate_nan)
{
	struct swarm_tensor a = T(4), b = T(4);
	F(&a)[1] = NAN;
	F(&b)[2] = NAN;
	for (uint32_t op = SWARM_OP_MAX; op <= SWARM_OP_MIN; op++) {
		struct swarm_node n = NODE(op, NULL, &a, &b);
		struct swarm_tensor *o = run_node(&n, swarm_op_name(op));
		cr_assert(isnan(F(o)[1]) && isnan(F(o)[2]) && !isnan(F(o)[0]) && !isnan(F(o)[3]),
			  "%s: NaN went astray", swarm_op_name(op));
	}
}

Test(kernels_ops_vision, binary_refuses_shapes_that_do_not_broadcast)
{
	struct swarm_tensor a = T(2, 3), b = T(4), y = T(2, 3);
	struct swarm_node n = NODE(SWARM_OP_SUB, &y, &a, &b);
	run_refused(&n, "[2, 3] - [4]");
	struct swarm_tensor c = T(2, 1);
	n = NODE(SWARM_OP_DIV, &y, &a, &c);
	struct swarm_tensor y_bad = T(2, 1);
	n.out = &y_bad;
	run_refused(&n, "an out of the wrong shape");
	struct swarm_tensor s = T(3), x = T(2, 4);
	n = NODE(SWARM_OP_PRELU, &x, &x, &s);
	run_refused(&n, "a slope that does not broadcast to X");
	struct swarm_tensor big = T(2, 2, 4), xx = T(2, 4);
	n = NODE(SWARM_OP_PRELU, &big, &xx, &big);
	run_refused(&n, "a slope larger than X");
}

/* ---- unary ------------------------------------------------------------------------------------
 */

static double ref_unary(uint32_t op, const struct swarm_op_params *p, double x)
{
	switch (op) {
	case SWARM_OP_ERF:
		return erf(x);
	case SWARM_OP_EXP:
		return exp(x);
	case SWARM_OP_LOG:
		return log(x);
	case SWARM_OP_SQRT:
		return sqrt(x);
	case SWARM_OP_POW:
		return pow(x, p->exponent);
	case SWARM_OP_HARDSIGMOID:
		return fmax(0, fmin(1, p->alpha * x + p->beta));
	case SWARM_OP_HARDSWISH:
		return x * fmax(0, fmin(1, x / 6 + 0.5));
	case SWARM_OP_LEAKY_RELU:
		return x >= 0 ? x : p->alpha * x;
	case SWARM_OP_CLIP:
		return fmin(fmax(x, p->alpha), p->beta);
	case SWARM_OP_RELU:
		return x > 0 ? x : 0;
	case SWARM_OP_SIGMOID:
		return 1 / (1 + exp(-x));
	case SWARM_OP_TANH:
		return tanh(x);
	case SWARM_OP_GELU:
		return 0.5 * x * (1 + erf(x / sqrt(2.0)));
	default:
		return x;
	}
}

static void unary_case(uint32_t op, struct swarm_op_params p, double scale, int positive)
{
	struct swarm_tensor x = T(3, 129);
	for (int64_t i = 0; i < nelems(&x); i++) {
		float v = (float)(F(&x)[i] * scale / 2);
		F(&x)[i] = positive ? fabsf(v) : v;
	}
	struct swarm_node n = NODE(op, NULL, &x);
	n.p = p;
	struct swarm_tensor *o = run_node(&n, swarm_op_name(op));
	double *want = dalloc(3 * 129);
	for (int i = 0; i < 3 * 129; i++)
		want[i] = ref_unary(op, &p, F(&x)[i]);
	check_close(F(o), want, NULL, 3 * 129, 2e-6, 2e-6, swarm_op_name(op));
}

Test(kernels_ops_vision, unary_ops_match_f64_reference)
{
	unary_case(SWARM_OP_ERF, (struct swarm_op_params){ 0 }, 3, 0);
	unary_case(SWARM_OP_EXP, (struct swarm_op_params){ 0 }, 6, 0);
	unary_case(SWARM_OP_LOG, (struct swarm_op_params){ 0 }, 8, 1);
	unary_case(SWARM_OP_SQRT, (struct swarm_op_params){ 0 }, 8, 1);
	unary_case(SWARM_OP_POW, (struct swarm_op_params){ .exponent = 2 }, 4, 0);
	unary_case(SWARM_OP_POW, (struct swarm_op_params){ .exponent = 3 }, 4, 0);
	unary_case(SWARM_OP_POW, (struct swarm_op_params){ .exponent = 0.5f }, 4, 1);
	unary_case(SWARM_OP_POW, (struct swarm_op_params){ .exponent = -1.5f }, 4, 1);
	unary_case(SWARM_OP_HARDSIGMOID, (struct swarm_op_params){ .alpha = 0.2f, .beta = 0.5f }, 8,
		   0);
	unary_case(SWARM_OP_HARDSIGMOID,
		   (struct swarm_op_params){ .alpha = 1.0f / 6, .beta = 0.5f }, 8, 0);
	unary_case(SWARM_OP_HARDSWISH, (struct swarm_op_params){ 0 }, 8, 0);
	unary_case(SWARM_OP_LEAKY_RELU, (struct swarm_op_params){ .alpha = 0.1f }, 4, 0);
	unary_case(SWARM_OP_CLIP, (struct swarm_op_params){ .alpha = 0, .beta = 6 }, 16, 0);
	unary_case(SWARM_OP_CLIP, (struct swarm_op_params){ .alpha = -1, .beta = 0.5f }, 4, 0);
}

Test(kernels_ops_vision, clip_refuses_min_above_max)
{
	struct swarm_tensor x = T(5), y = T(5);
	struct swarm_node n = NODE(SWARM_OP_CLIP, &y, &x);
	n.p.alpha = 1, n.p.beta = 0;
	cr_assert_eq(dev->i->supports_op(dev, &n), 0);
	run_refused(&n, "clip min 1 max 0");
}

/* ---- conv2d and conv_transpose2d ------------------------------------------------------------ */

struct conv_cfg {
	int64_t N, C, H, W, M, kh, kw;
	int32_t group, sh, sw, dh, dw;
	int64_t pads[4];
	uint32_t act;
	float alpha, beta;
	int bias;
	int32_t oph, opw; /* transpose only */
};

static struct swarm_op_params conv_params(const struct conv_cfg *c)
{
	struct swarm_op_params p = { .act = c->act,
				     .alpha = c->alpha,
				     .beta = c->beta,
				     .group = (uint32_t)c->group,
				     .stride = { c->sh, c->sw },
				     .dilation = { c->dh, c->dw },
				     .n_pads = 4,
				     .out_pad = { c->oph, c->opw } };
	memcpy(p.pads, c->pads, sizeof c->pads);
	return p;
}

static void conv_case(const struct conv_cfg *c)
{
	int64_t G = c->group, Cg = c->C / G, Mg = c->M / G;
	struct swarm_tensor x = T(c->N, c->C, c->H, c->W), w = T(c->M, Cg, c->kh, c->kw),
			    b = T(c->M);
	struct swarm_node n = c->bias ? NODE(SWARM_OP_CONV2D, NULL, &x, &w, &b) :
					NODE(SWARM_OP_CONV2D, NULL, &x, &w);
	n.p = conv_params(c);
	struct swarm_tensor *o = run_node(&n, "conv2d");
	int64_t OH = o->shape[2], OW = o->shape[3], N = nelems(o);
	double *want = dalloc((size_t)N), *tol = dalloc((size_t)N);
	for (int64_t bi = 0; bi < c->N; bi++)
		for (int64_t m = 0; m < c->M; m++)
			for (int64_t oy = 0; oy < OH; oy++)
				for (int64_t ox = 0; ox < OW; ox++) {
					double s = c->bias ? F(&b)[m] : 0, mag = fabs(s);
					int64_t g = m / Mg;
					for (int64_t ci = 0; ci < Cg; ci++)
						for (int64_t i = 0; i < c->kh; i++)
							for (int64_t j = 0; j < c->kw; j++) {
								int64_t y = oy * c->sh -
									    c->pads[0] + i * c->dh;
								int64_t xx = ox * c->sw -
									     c->pads[1] + j * c->dw;
								if (y < 0 || y >= c->H || xx < 0 ||
								    xx >= c->W)
									continue;
								double wv = F(
									&w)[((m * Cg + ci) * c->kh +
									     i) * c->kw +
									    j];
								double xv =
									F(&x)[((bi * c->C + g * Cg +
										ci) * c->H +
									       y) * c->W +
									      xx];
								s += wv * xv;
								mag += fabs(wv * xv);
							}
					int64_t e = ((bi * c->M + m) * OH + oy) * OW + ox;
					struct swarm_op_params p = n.p;
					want[e] = ref_unary(c->act, &p, s);
					/* an act's slope is at most 1 (sigmoid 1/4, hardswish 1.5)
					 */
					tol[e] = 2e-5 * mag * 1.5;
				}
	check_close(F(o), want, tol, (size_t)N, 1e-6, 1e-6, "conv2d");
}

Test(kernels_ops_vision, conv2d_matches_f64_reference)
{
	const struct conv_cfg cfgs[] = {
		{ 2, 3, 9, 7, 8, 3, 3, 1, 1, 1, 1, 1, { 1, 1, 1, 1 }, SWARM_OP_RELU, 0, 0, 1, 0, 0 },
		{ 1,
		  4,
		  11,
		  8,
		  6,
		  3,
		  2,
		  2,
		  2,
		  1,
		  1,
		  1,
		  { 1, 0, 2, 1 },
		  SWARM_OP_HARDSWISH,
		  0,
		  0,
		  1,
		  0,
		  0 },
		{ 2, 5, 9, 10, 5, 5, 5, 5, 2, 2, 1, 1, { 2, 2, 2, 2 }, SWARM_OP_CLIP, 0, 6, 0, 0, 0 },
		{ 2,
		  6,
		  7,
		  7,
		  12,
		  3,
		  3,
		  6,
		  1,
		  1,
		  1,
		  1,
		  { 1, 1, 1, 1 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  1,
		  0,
		  0 },
		{ 2,
		  16,
		  5,
		  6,
		  12,
		  1,
		  1,
		  1,
		  1,
		  1,
		  1,
		  1,
		  { 0, 0, 0, 0 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  1,
		  0,
		  0 },
		{ 1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 2, 2, { 2, 2, 2, 2 }, SWARM_OP_SIGMOID, 0, 0, 0, 0, 0 },
		{ 1,
		  2,
		  12,
		  9,
		  3,
		  7,
		  7,
		  1,
		  2,
		  2,
		  1,
		  1,
		  { 3, 3, 3, 3 },
		  SWARM_OP_LEAKY_RELU,
		  0.1f,
		  0,
		  1,
		  0,
		  0 },
		{ 3,
		  8,
		  6,
		  5,
		  8,
		  3,
		  3,
		  8,
		  2,
		  1,
		  2,
		  1,
		  { 1, 1, 0, 2 },
		  SWARM_OP_HARDSIGMOID,
		  0.2f,
		  0.5f,
		  1,
		  0,
		  0 },
		{ 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_IDENTITY, 0, 0, 1, 0, 0 },
		/* depthwise on rows of 32 columns or more: the kernel's 8-position blocks, then its
		 * 4-, 2- and single-position tails (70 = 8 x 8 + 4 + 2, 40 = 5 x 8, 64 = 8 x 8) */
		{ 2, 3, 7, 70, 3, 3, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, SWARM_OP_RELU, 0, 0, 1, 0, 0 },
		{ 1,
		  2,
		  5,
		  40,
		  2,
		  7,
		  7,
		  2,
		  1,
		  1,
		  1,
		  1,
		  { 3, 3, 3, 3 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  1,
		  0,
		  0 },
		{ 1,
		  2,
		  4,
		  64,
		  2,
		  5,
		  5,
		  2,
		  1,
		  1,
		  1,
		  1,
		  { 2, 2, 2, 2 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  0,
		  0,
		  0 },
		/* 1x1 convs that pack their input (conv_in_place: W and a panel past L1, or
		 * more than 256 channels) rather than read it in place */
		/* clang-format off */
		{ 1, 40, 20, 20, 180, 1, 1, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_RELU, 0, 0, 1, 0, 0 },
		{ 1, 260, 3, 5, 8, 1, 1, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_IDENTITY, 0, 0, 1, 0, 0 },
		/* clang-format on */
		/* depthwise over blocks of 8 channels: whole blocks and a part one, 8-position
		 * transposes and their tails, strides, dilations, uneven pads */
		{ 2, 20, 9, 19, 20, 3, 3, 20, 1, 1, 1, 1, { 1, 1, 1, 1 }, SWARM_OP_RELU, 0, 0, 1, 0, 0 },
		{ 1,
		  16,
		  11,
		  21,
		  16,
		  5,
		  5,
		  16,
		  2,
		  2,
		  1,
		  1,
		  { 2, 2, 2, 2 },
		  SWARM_OP_HARDSWISH,
		  0,
		  0,
		  1,
		  0,
		  0 },
		{ 1,
		  24,
		  10,
		  14,
		  24,
		  7,
		  7,
		  24,
		  1,
		  1,
		  1,
		  1,
		  { 3, 3, 3, 3 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  0,
		  0,
		  0 },
		{ 1, 9, 8, 17, 9, 3, 3, 9, 2, 1, 2, 2, { 2, 1, 0, 2 }, SWARM_OP_CLIP, 0, 6, 1, 0, 0 },
		/* and with dilation 2 */
		{ 1,
		  2,
		  6,
		  36,
		  2,
		  3,
		  3,
		  2,
		  1,
		  1,
		  2,
		  2,
		  { 2, 2, 2, 2 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  1,
		  0,
		  0 },
	};
	for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++)
		conv_case(&cfgs[i]);
}

static void conv_transpose_case(const struct conv_cfg *c)
{
	int64_t G = c->group, Cg = c->C / G, Mg = c->M / G;
	struct swarm_tensor x = T(c->N, c->C, c->H, c->W), w = T(c->C, Mg, c->kh, c->kw),
			    b = T(c->M);
	struct swarm_node n = c->bias ? NODE(SWARM_OP_CONV_TRANSPOSE2D, NULL, &x, &w, &b) :
					NODE(SWARM_OP_CONV_TRANSPOSE2D, NULL, &x, &w);
	n.p = conv_params(c);
	struct swarm_tensor *o = run_node(&n, "conv_transpose2d");
	int64_t OH = o->shape[2], OW = o->shape[3], N = nelems(o);
	cr_assert_eq(OH, c->sh * (c->H - 1) + c->oph + c->dh * (c->kh - 1) + 1 - c->pads[0] -
				 c->pads[2]);
	double *want = dalloc((size_t)N), *mag = dalloc((size_t)N), *tol = dalloc((size_t)N);
	for (int64_t bi = 0; bi < c->N; bi++)
		for (int64_t ci = 0; ci < c->C; ci++) {
			int64_t g = ci / Cg;
			for (int64_t y = 0; y < c->H; y++)
				for (int64_t xx = 0; xx < c->W; xx++) {
					double xv =
						F(&x)[((bi * c->C + ci) * c->H + y) * c->W + xx];
					for (int64_t mo = 0; mo < Mg; mo++)
						for (int64_t i = 0; i < c->kh; i++)
							for (int64_t j = 0; j < c->kw; j++) {
								int64_t oy = y * c->sh -
									     c->pads[0] + i * c->dh;
								int64_t ox = xx * c->sw -
									     c->pads[1] + j * c->dw;
								if (oy < 0 || oy >= OH || ox < 0 ||
								    ox >= OW)
									continue;
								double wv = F(
									&w)[((ci * Mg + mo) * c->kh +
									     i) * c->kw +
									    j];
								int64_t e = ((bi * c->M + g * Mg +
									      mo) * OH +
									     oy) * OW +
									    ox;
								want[e] += wv * xv;
								mag[e] += fabs(wv * xv);
							}
				}
		}
	for (int64_t e = 0; e < N; e++) {
		int64_t m = (e / (OH * OW)) % c->M;
		if (c->bias)
			want[e] += F(&b)[m];
		struct swarm_op_params p = n.p;
		want[e] = ref_unary(c->act, &p, want[e]);
		tol[e] = 3e-5 * (mag[e] + fabs(c->bias ? F(&b)[m] : 0));
	}
	check_close(F(o), want, tol, (size_t)N, 1e-6, 1e-6, "conv_transpose2d");
}

/* A conv large enough to split (4 MFLOP) on a device of 3 threads: the same bits as on one
 * (each output row, or block of 8 channels, is one thread's, summed in the same order) */
static void conv_threads_case(const struct conv_cfg *c)
{
	int64_t Cg = c->C / c->group;
	struct swarm_tensor x = T(c->N, c->C, c->H, c->W), w = T(c->M, Cg, c->kh, c->kw),
			    b = T(c->M);
	struct swarm_node n = NODE(SWARM_OP_CONV2D, NULL, &x, &w, &b);
	n.p = conv_params(c);
	struct swarm_tensor *o1 = run_node(&n, "conv2d on one thread");
	struct swarm_device *dev3 = NULL;
	cr_assert_eq(swarm_device_cpu_create(3, &dev3), 0);
	struct swarm_tensor o3 = out_for(&n);
	n.out = &o3;
	cr_assert_eq(dev3->i->run(dev3, &n), 0, "conv2d on three threads");
	cr_assert_eq(memcmp(o1->data, o3.data, (size_t)nelems(o1) * sizeof(float)), 0,
		     "%ldx%ld conv (group %d) differs on three threads", (long)c->kh, (long)c->kw,
		     c->group);
	dev3->i->destroy(dev3);
}

Test(kernels_ops_vision, conv2d_split_over_threads_gives_the_same_bits)
{
	const struct conv_cfg cfgs[] = {
		/* direct: rows split 14/13/13, and strided */
		{ 1, 16, 40, 40, 20, 3, 3, 1, 1, 1, 1, 1, { 1, 1, 1, 1 }, SWARM_OP_RELU, 0, 0, 1, 0, 0 },
		{ 2,
		  12,
		  41,
		  37,
		  14,
		  3,
		  3,
		  1,
		  2,
		  2,
		  1,
		  1,
		  { 1, 1, 1, 1 },
		  SWARM_OP_IDENTITY,
		  0,
		  0,
		  1,
		  0,
		  0 },
		/* depthwise: 5 blocks of 8 channels split 1/2/2 */
		{ 1,
		  40,
		  60,
		  60,
		  40,
		  7,
		  7,
		  40,
		  1,
		  1,
		  1,
		  1,
		  { 3, 3, 3, 3 },
		  SWARM_OP_HARDSWISH,
		  0,
		  0,
		  1,
		  0,
		  0 },
	};
	for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++)
		conv_threads_case(&cfgs[i]);
}

Test(kernels_ops_vision, conv_transpose2d_matches_f64_reference)
{
	const struct conv_cfg cfgs[] = {
		{ 2, 6, 4, 5, 3, 2, 2, 1, 2, 2, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_IDENTITY, 0, 0, 1, 0, 0 },
		{ 1, 4, 3, 4, 4, 3, 3, 2, 2, 2, 1, 1, { 1, 1, 1, 1 }, SWARM_OP_RELU, 0, 0, 0, 1, 0 },
		{ 1, 3, 5, 5, 6, 3, 2, 1, 1, 2, 2, 1, { 0, 1, 2, 0 }, SWARM_OP_SIGMOID, 0, 0, 1, 0, 0 },
		{ 2, 2, 3, 3, 2, 4, 4, 2, 3, 3, 1, 1, { 1, 1, 1, 1 }, SWARM_OP_IDENTITY, 0, 0, 1, 2, 1 },
		/* kernel = stride, each output written once: with groups and an activation, with
		 * more channels than are read in place, and with an output padding (summed) */
		{ 1, 8, 5, 7, 6, 2, 3, 2, 2, 3, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_RELU, 0, 0, 1, 0, 0 },
		{ 1, 260, 3, 2, 2, 2, 2, 1, 2, 2, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_CLIP, 0, 6, 1, 0, 0 },
		{ 1, 4, 3, 3, 5, 2, 2, 1, 2, 2, 1, 1, { 0, 0, 0, 0 }, SWARM_OP_IDENTITY, 0, 0, 1, 1, 1 },
	};
	for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++)
		conv_transpose_case(&cfgs[i]);
}

Test(kernels_ops_vision, conv_refuses_bad_inputs)
{
	struct swarm_tensor x = T(1, 4, 6, 6), w = T(8, 4, 3, 3), b = T(8), y = T(1, 8, 4, 4);
	struct swarm_node n = NODE(SWARM_OP_CONV2D, &y, &x, &w, &b);
	run_ok(&n, "the good conv");
	struct swarm_tensor w_bad = T(8, 3, 3, 3);
	n = NODE(SWARM_OP_CONV2D, &y, &x, &w_bad, &b);
	run_refused(&n, "weight of 3 input channels for 4");
	n = NODE(SWARM_OP_CONV2D, &y, &x, &w, &b);
	n.p.group = 3;
	run_refused(&n, "group 3 of 4 channels");
	struct swarm_tensor b_bad = T(7);
	n = NODE(SWARM_OP_CONV2D, &y, &x, &w, &b_bad);
	run_refused(&n, "bias of 7 for 8 outputs");
	struct swarm_tensor y_bad = T(1, 8, 6, 6);
	n = NODE(SWARM_OP_CONV2D, &y_bad, &x, &w, &b);
	run_refused(&n, "out of the wrong shape");
	struct swarm_tensor x3 = T(4, 6, 6);
	n = NODE(SWARM_OP_CONV2D, &y, &x3, &w, &b);
	run_refused(&n, "a 3-dim X");
	struct swarm_tensor big = T(8, 4, 9, 9);
	n = NODE(SWARM_OP_CONV2D, &y, &x, &big, &b);
	run_refused(&n, "a kernel larger than the input");
	n = NODE(SWARM_OP_CONV2D, &y, &x, &w, &b);
	n.p.n_pads = 2;
	run_refused(&n, "two pads");
	n.p.n_pads = 0;
	n.p.act = SWARM_OP_SOFTMAX;
	run_refused(&n, "softmax fused");
	struct swarm_tensor wt = T(4, 8, 2, 2), yt = T(1, 8, 12, 12);
	n = NODE(SWARM_OP_CONV_TRANSPOSE2D, &yt, &x, &wt);
	n.p.stride[0] = n.p.stride[1] = 2;
	run_ok(&n, "the good conv_transpose2d");
	n.p.out_pad[0] = 2;
	run_refused(&n, "output_padding as large as the stride");
}

/* ---- pooling ----------------------------------------------------------------------------------
 */

struct pool_cfg {
	int64_t N, C, H, W;
	int32_t kh, kw, sh, sw, dh, dw;
	int64_t pads[4];
	uint32_t ceil, incl;
};

static void pool_case(uint32_t op, const struct pool_cfg *c)
{
	struct swarm_tensor x = T(c->N, c->C, c->H, c->W);
	struct swarm_node n = NODE(op, NULL, &x);
	n.p = (struct swarm_op_params){ .kernel = { c->kh, c->kw },
					.stride = { c->sh, c->sw },
					.dilation = { c->dh, c->dw },
					.n_pads = 4,
					.ceil_mode = c->ceil,
					.count_include_pad = c->incl };
	memcpy(n.p.pads, c->pads, sizeof c->pads);
	struct swarm_tensor *o = run_node(&n, swarm_op_name(op));
	int64_t OH = o->shape[2], OW = o->shape[3], N = nelems(o);
	int32_t sh = c->sh ? c->sh : 1, sw = c->sw ? c->sw : 1, dh = c->dh ? c->dh : 1,
		dw = c->dw ? c->dw : 1;
	double *want = dalloc((size_t)N);
	for (int64_t p = 0; p < c->N * c->C; p++)
		for (int64_t oy = 0; oy < OH; oy++)
			for (int64_t ox = 0; ox < OW; ox++) {
				double acc = op == SWARM_OP_MAX_POOL2D ? -INFINITY : 0;
				int64_t cnt = 0, y0 = oy * sh - c->pads[0],
					x0 = ox * sw - c->pads[1];
				for (int64_t i = 0; i < c->kh; i++)
					for (int64_t j = 0; j < c->kw; j++) {
						int64_t y = y0 + i * dh, xx = x0 + j * dw;
						if (y < 0 || y >= c->H || xx < 0 || xx >= c->W)
							continue;
						double v = F(&x)[(p * c->H + y) * c->W + xx];
						acc = op == SWARM_OP_MAX_POOL2D ? fmax(acc, v) :
										  acc + v;
						cnt++;
					}
				if (op == SWARM_OP_AVG_POOL2D) {
					if (c->incl) {
						int64_t ye = y0 + (c->kh - 1) * dh + 1,
							xe = x0 + (c->kw - 1) * dw + 1;
						ye = ye < c->H + c->pads[2] ? ye :
									      c->H + c->pads[2];
						xe = xe < c->W + c->pads[3] ? xe :
									      c->W + c->pads[3];
						cnt = (ye - y0) * (xe - x0);
					}
					acc /= (double)cnt;
				}
				want[(p * OH + oy) * OW + ox] = acc;
			}
	check_close(F(o), want, NULL, (size_t)N, op == SWARM_OP_MAX_POOL2D ? 0 : 1e-5,
		    op == SWARM_OP_MAX_POOL2D ? 0 : 1e-5, swarm_op_name(op));
}

Test(kernels_ops_vision, pools_match_f64_reference)
{
	const struct pool_cfg cfgs[] = {
		{ 2, 3, 9, 8, 3, 3, 2, 2, 1, 1, { 1, 1, 1, 1 }, 0, 0 },
		{ 1, 2, 7, 5, 2, 2, 2, 2, 1, 1, { 0, 0, 0, 0 }, 1, 0 },
		{ 1, 2, 8, 7, 3, 2, 2, 2, 1, 1, { 1, 0, 1, 1 }, 1, 1 },
		{ 2, 1, 10, 10, 3, 3, 1, 1, 2, 2, { 0, 0, 0, 0 }, 0, 0 },
		{ 1, 4, 6, 6, 2, 2, 1, 1, 1, 1, { 0, 0, 1, 1 }, 0, 1 },
		{ 1, 1, 5, 5, 5, 5, 1, 1, 1, 1, { 0, 0, 0, 0 }, 0, 0 },
		/* rows of 32 columns and more: the max pool's register blocks and their tail
		 * (70 = 2 x 32 + 6), strided (40 = 32 + 8) and dilated */
		{ 1, 2, 5, 70, 3, 3, 1, 1, 1, 1, { 1, 1, 1, 1 }, 0, 0 },
		{ 2, 1, 6, 80, 3, 3, 2, 2, 1, 1, { 1, 1, 1, 1 }, 0, 0 },
		{ 1, 1, 7, 41, 3, 3, 1, 1, 2, 2, { 2, 2, 2, 2 }, 0, 0 },
	};
	for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
		pool_case(SWARM_OP_MAX_POOL2D, &cfgs[i]);
		if (cfgs[i].dh <= 1)
			pool_case(SWARM_OP_AVG_POOL2D, &cfgs[i]);
	}
}

/* A NaN under a max pool's window wins, in the register blocks and in the tail, first tap
 * or later */
Test(kernels_ops_vision, max_pool_propagates_nan)
{
	struct swarm_tensor x = T(1, 1, 3, 40), y = T(1, 1, 1, 38);
	for (int64_t i = 0; i < 120; i++)
		F(&x)[i] = (float)(i % 7);
	F(&x)[0] = NAN;       /* row 0, column 0: the first tap of output 0 */
	F(&x)[40 + 20] = NAN; /* row 1, column 20: outputs 18 to 20 */
	F(&x)[80 + 39] = NAN; /* row 2, column 39: output 37, in the tail */
	struct swarm_node n = NODE(SWARM_OP_MAX_POOL2D, &y, &x);
	n.p.kernel[0] = n.p.kernel[1] = 3;
	run_ok(&n, "max pool over NaN");
	for (int64_t ox = 0; ox < 38; ox++) {
		const bool nan = ox == 0 || (ox >= 18 && ox <= 20) || ox == 37;
		cr_assert(nan == (bool)isnan(F(&y)[ox]), "output %ld: %g", (long)ox,
			  (double)F(&y)[ox]);
	}
}

Test(kernels_ops_vision, global_avg_pool_matches_f64_reference)
{
	struct swarm_tensor x = T(2, 5, 7, 6);
	struct swarm_node n = NODE(SWARM_OP_GLOBAL_AVG_POOL, NULL, &x);
	struct swarm_tensor *o = run_node(&n, "global_avg_pool");
	cr_assert(o->ndim == 4 && o->shape[2] == 1 && o->shape[3] == 1);
	double want[10];
	for (int p = 0; p < 10; p++) {
		double s = 0;
		for (int i = 0; i < 42; i++)
			s += F(&x)[p * 42 + i];
		want[p] = s / 42;
	}
	check_close(F(o), want, NULL, 10, 1e-6, 1e-5, "global_avg_pool");
}

Test(kernels_ops_vision, pools_refuse_bad_parameters)
{
	struct swarm_tensor x = T(1, 2, 4, 4), y = T(1, 2, 2, 2);
	struct swarm_node n = NODE(SWARM_OP_MAX_POOL2D, &y, &x);
	n.p.kernel[0] = n.p.kernel[1] = 2;
	n.p.stride[0] = n.p.stride[1] = 2;
	run_ok(&n, "the good pool");
	n.p.kernel[0] = 0;
	run_refused(&n, "no kernel_shape");
	n.p.kernel[0] = 6;
	run_refused(&n, "a window larger than the input");
	n.p.kernel[0] = 2;
	n.p.n_pads = 4;
	n.p.pads[0] = 2;
	run_refused(&n, "a pad as wide as the window");
}

/* ---- resize -----------------------------------------------------------------------------------
 */

/* The input coordinate of output x, in f32 as ONNX Runtime computes it (a coordinate that is an
 * integer in exact arithmetic may land a rounding either side of it, and nearest's floor or
 * ceil then picks a neighbour: the f32 answer is the contract). */
static double ref_coord(uint32_t mode, int64_t x, float scale, int64_t in, int64_t out)
{
	switch (mode) {
	case SWARM_COORD_ASYMMETRIC:
		return (float)x / scale;
	case SWARM_COORD_ALIGN_CORNERS:
		return out == 1 ? 0.0f : (float)x * (float)(in - 1) / (float)(out - 1);
	case SWARM_COORD_PYTORCH_HALF_PIXEL:
		return out > 1 ? ((float)x + 0.5f) / scale - 0.5f : 0.0f;
	default:
		return ((float)x + 0.5f) / scale - 0.5f;
	}
}

static int64_t ref_nearest(uint32_t mode, double c, int64_t in)
{
	double f = floor(c);
	int64_t i = mode == SWARM_NEAREST_FLOOR             ? (int64_t)f :
		    mode == SWARM_NEAREST_CEIL              ? (int64_t)ceil(c) :
		    mode == SWARM_NEAREST_ROUND_PREFER_CEIL ? (int64_t)(c - f >= 0.5 ? f + 1 : f) :
							      (int64_t)(c - f > 0.5 ? f + 1 : f);
	return i < 0 ? 0 : i >= in ? in - 1 : i;
}

static void resize_case(uint32_t mode, uint32_t coord, uint32_t nearest, int64_t H, int64_t W,
			int64_t OH, int64_t OW, float sh, float sw)
{
	struct swarm_tensor x = T(1, 2, H, W);
	struct swarm_node n = NODE(SWARM_OP_RESIZE, NULL, &x);
	n.p = (struct swarm_op_params){
		.mode = mode, .coord = coord, .nearest = nearest, .scales = { sh, sw }
	};
	if (OH)
		n.p.sizes[0] = OH, n.p.sizes[1] = OW;
	struct swarm_tensor *o = run_node(&n, "resize");
	OH = o->shape[2], OW = o->shape[3];
	float esh = n.p.sizes[0] ? (float)OH / (float)H : sh,
	      esw = n.p.sizes[1] ? (float)OW / (float)W : sw;
	double *want = dalloc((size_t)(2 * OH * OW));
	for (int p = 0; p < 2; p++)
		for (int64_t oy = 0; oy < OH; oy++)
			for (int64_t ox = 0; ox < OW; ox++) {
				double cy = ref_coord(coord, oy, esh, H, OH),
				       cx = ref_coord(coord, ox, esw, W, OW), v;
				const float *pl = F(&x) + p * H * W;
				if (mode == SWARM_RESIZE_NEAREST) {
					v = pl[ref_nearest(nearest, cy, H) * W +
					       ref_nearest(nearest, cx, W)];
				} else {
					cy = fmin(fmax(cy, 0), H - 1);
					cx = fmin(fmax(cx, 0), W - 1);
					int64_t y0 = (int64_t)cy, x0 = (int64_t)cx;
					int64_t y1 = y0 + 1 < H ? y0 + 1 : H - 1,
						x1 = x0 + 1 < W ? x0 + 1 : W - 1;
					double fy = cy - y0, fx = cx - x0;
					v = (pl[y0 * W + x0] * (1 - fx) + pl[y0 * W + x1] * fx) *
						    (1 - fy) +
					    (pl[y1 * W + x0] * (1 - fx) + pl[y1 * W + x1] * fx) *
						    fy;
				}
				want[(p * OH + oy) * OW + ox] = v;
			}
	char what[96];
	snprintf(what, sizeof what, "resize mode %u coord %u nearest %u %lldx%lld to %lldx%lld",
		 mode, coord, nearest, (long long)H, (long long)W, (long long)OH, (long long)OW);
	double tol = mode == SWARM_RESIZE_NEAREST ? 0 : 1e-5;
	check_close(F(o), want, NULL, (size_t)(2 * OH * OW), tol, tol, what);
}

Test(kernels_ops_vision, resize_matches_f64_reference)
{
	for (uint32_t coord = 0; coord <= SWARM_COORD_PYTORCH_HALF_PIXEL; coord++) {
		for (uint32_t nr = 0; nr <= SWARM_NEAREST_CEIL; nr++) {
			resize_case(SWARM_RESIZE_NEAREST, coord, nr, 4, 5, 0, 0, 2, 2);
			resize_case(SWARM_RESIZE_NEAREST, coord, nr, 5, 7, 3, 11, 0, 0);
		}
		resize_case(SWARM_RESIZE_LINEAR, coord, 0, 4, 5, 0, 0, 2, 3);
		resize_case(SWARM_RESIZE_LINEAR, coord, 0, 4, 5, 7, 9, 0, 0);
		resize_case(SWARM_RESIZE_LINEAR, coord, 0, 9, 7, 3, 2, 0, 0);
		resize_case(SWARM_RESIZE_LINEAR, coord, 0, 6, 6, 1, 1, 0, 0);
	}
}

Test(kernels_ops_vision, resize_refuses_bad_parameters)
{
	struct swarm_tensor x = T(1, 1, 4, 4), y = T(1, 1, 8, 8);
	struct swarm_node n = NODE(SWARM_OP_RESIZE, &y, &x);
	run_refused(&n, "no sizes and no scales");
	n.p.scales[0] = n.p.scales[1] = 2;
	run_ok(&n, "scales 2");
	n.p.mode = 7;
	run_refused(&n, "mode 7");
}

/* ---- batchnorm, reductions ------------------------------------------------------------------- */

Test(kernels_ops_vision, batchnorm_matches_f64_reference)
{
	struct swarm_tensor x = T(2, 4, 3, 5), s = T(4), b = T(4), m = T(4), v = T(4);
	for (int i = 0; i < 4; i++)
		F(&v)[i] = fabsf(F(&v)[i]);
	struct swarm_node n = NODE(SWARM_OP_BATCHNORM, NULL, &x, &s, &b, &m, &v);
	n.p.eps = 1e-3f;
	struct swarm_tensor *o = run_node(&n, "batchnorm");
	double want[120];
	for (int e = 0; e < 120; e++) {
		int c = (e / 15) % 4;
		want[e] = (F(&x)[e] - F(&m)[c]) / sqrt(F(&v)[c] + 1e-3) * F(&s)[c] + F(&b)[c];
	}
	check_close(F(o), want, NULL, 120, 1e-5, 1e-5, "batchnorm");
	struct swarm_tensor v3 = T(3);
	n = NODE(SWARM_OP_BATCHNORM, o, &x, &s, &b, &m, &v3);
	run_refused(&n, "a var of 3 for 4 channels");
}

static void reduce_case(uint32_t op, struct swarm_tensor x, uint32_t axes, uint32_t keep)
{
	struct swarm_node n = NODE(op, NULL, &x);
	n.p.axes = axes, n.p.keepdims = keep;
	char what[64];
	snprintf(what, sizeof what, "%s axes %#x keepdims %u", swarm_op_name(op), axes, keep);
	struct swarm_tensor *o = run_node(&n, what);
	int64_t N = nelems(o), idx[SWARM_TENSOR_MAX_DIMS], xs[SWARM_TENSOR_MAX_DIMS];
	double *want = dalloc((size_t)N);
	int64_t *cnt = calloc((size_t)N, sizeof *cnt);
	cr_assert_not_null(cnt);
	for (int64_t e = 0; e < N; e++)
		want[e] = op == SWARM_OP_REDUCE_MAX ? -INFINITY : 0;
	strides(&x, xs);
	for (int64_t e = 0; e < nelems(&x); e++) {
		unflat(&x, e, idx);
		int64_t oe = 0;
		for (uint32_t i = 0; i < x.ndim; i++) {
			if (axes & (1u << i))
				continue;
			oe = oe * x.shape[i] + idx[i];
		}
		double v = F(&x)[e];
		want[oe] = op == SWARM_OP_REDUCE_MAX ? fmax(want[oe], v) : want[oe] + v;
		cnt[oe]++;
	}
	for (int64_t e = 0; e < N; e++)
		if (op == SWARM_OP_REDUCE_MEAN)
			want[e] /= (double)cnt[e];
	free(cnt);
	double tol = op == SWARM_OP_REDUCE_MAX ? 0 : 1e-5;
	check_close(F(o), want, NULL, (size_t)N, tol, tol, what);
}

Test(kernels_ops_vision, reductions_match_f64_reference)
{
	for (uint32_t op = SWARM_OP_REDUCE_MEAN; op <= SWARM_OP_REDUCE_MAX; op++) {
		reduce_case(op, T(2, 3, 5, 7), 0xc, 1);
		reduce_case(op, T(2, 3, 5, 7), 0xc, 0);
		reduce_case(op, T(2, 6, 5), 0x2, 0);
		reduce_case(op, T(3, 4, 5), 0x5, 1);
		reduce_case(op, T(3, 4, 5), 0x7, 0);
		reduce_case(op, T(129), 0x1, 1);
	}
	struct swarm_tensor x = T(2, 3), y = T(2);
	struct swarm_node n = NODE(SWARM_OP_REDUCE_SUM, &y, &x);
	run_refused(&n, "no axes");
	n.p.axes = 0x4;
	run_refused(&n, "an axis past X's dims");
}

/* ---- layout -----------------------------------------------------------------------------------
 */

Test(kernels_ops_vision, transpose_matches_reference)
{
	const int64_t perms[][4] = {
		{ 0, 2, 3, 1 }, { 0, 3, 1, 2 }, { 3, 2, 1, 0 }, { 1, 0, 2, 3 }, { 0, 1, 2, 3 }
	};
	for (size_t k = 0; k < sizeof perms / sizeof *perms; k++) {
		struct swarm_tensor x = T(2, 3, 4, 5);
		struct swarm_node n = NODE(SWARM_OP_TRANSPOSE, NULL, &x);
		n.p.n_shape = 4;
		memcpy(n.p.perm, perms[k], sizeof perms[k]);
		struct swarm_tensor *o = run_node(&n, "transpose");
		int64_t idx[4], xs[4], src[4];
		strides(&x, xs);
		double want[120];
		for (int64_t e = 0; e < 120; e++) {
			unflat(o, e, idx);
			int64_t off = 0;
			for (int i = 0; i < 4; i++)
				src[perms[k][i]] = idx[i];
			for (int i = 0; i < 4; i++)
				off += src[i] * xs[i];
			want[e] = F(&x)[off];
		}
		check_close(F(o), want, NULL, 120, 0, 0, "transpose");
	}
	struct swarm_tensor x = T(2, 3), y = T(3, 2);
	struct swarm_node n = NODE(SWARM_OP_TRANSPOSE, &y, &x);
	n.p.n_shape = 2;
	n.p.perm[0] = 1, n.p.perm[1] = 1;
	run_refused(&n, "perm (1, 1)");
	n.p.n_shape = 3;
	run_refused(&n, "perm of 3 for 2 dims");
}

Test(kernels_ops_vision, reshape_copies_and_refuses_other_counts)
{
	struct swarm_tensor x = T(2, 3, 4, 5);
	struct swarm_node n = NODE(SWARM_OP_RESHAPE, NULL, &x);
	n.p.n_shape = 3;
	n.p.shape[0] = 2, n.p.shape[1] = 12, n.p.shape[2] = 5;
	struct swarm_tensor *o = run_node(&n, "reshape");
	cr_assert_eq(memcmp(o->data, x.data, 120 * sizeof(float)), 0);
	n.p.shape[2] = 6;
	struct swarm_tensor y = T(2, 12, 6);
	n.out = &y;
	run_refused(&n, "reshape to 144 elements from 120");
}

static void slice_case(struct swarm_tensor x, uint32_t axes, const int64_t *st, const int64_t *en,
		       const int64_t *sp)
{
	struct swarm_node n = NODE(SWARM_OP_SLICE, NULL, &x);
	n.p.axes = axes;
	for (uint32_t i = 0; i < x.ndim; i++)
		n.p.starts[i] = st[i], n.p.ends[i] = en[i], n.p.steps[i] = sp[i];
	struct swarm_tensor *o = run_node(&n, "slice");
	int64_t first[6], step[6], xs[6], idx[6];
	strides(&x, xs);
	for (uint32_t i = 0; i < x.ndim; i++) {
		int64_t count;
		first[i] = 0, step[i] = 1;
		if (axes & (1u << i)) {
			swarm_slice_dim(x.shape[i], st[i], en[i], sp[i], &first[i], &count);
			step[i] = sp[i];
			cr_assert_eq(o->shape[i], count);
		}
	}
	int64_t N = nelems(o);
	double *want = dalloc((size_t)N);
	for (int64_t e = 0; e < N; e++) {
		unflat(o, e, idx);
		int64_t off = 0;
		for (uint32_t i = 0; i < x.ndim; i++)
			off += (first[i] + idx[i] * step[i]) * xs[i];
		want[e] = F(&x)[off];
	}
	check_close(F(o), want, NULL, (size_t)N, 0, 0, "slice");
}

Test(kernels_ops_vision, slice_matches_reference)
{
	slice_case(T(2, 7, 9), 0x6, (int64_t[]){ 0, 1, -1 }, (int64_t[]){ 0, 100, -100 },
		   (int64_t[]){ 1, 2, -2 });
	slice_case(T(2, 7, 9), 0x4, (int64_t[]){ 0, 0, 2 }, (int64_t[]){ 0, 0, 5 },
		   (int64_t[]){ 1, 1, 1 });
	slice_case(T(3, 8), 0x3, (int64_t[]){ -2, -100 }, (int64_t[]){ 100, 100 },
		   (int64_t[]){ 1, 3 });
	slice_case(T(3, 8), 0x2, (int64_t[]){ 0, 5 }, (int64_t[]){ 0, 2 }, (int64_t[]){ 1, 1 });
	struct swarm_tensor x = T(3, 8), y = T(3, 4);
	struct swarm_node n = NODE(SWARM_OP_SLICE, &y, &x);
	n.p.axes = 0x2;
	n.p.ends[1] = 4;
	run_refused(&n, "a step of 0");
}

Test(kernels_ops_vision, gather_matches_reference_and_refuses_bad_indices)
{
	for (int axis = 0; axis < 3; axis++) {
		struct swarm_tensor x = T(4, 5, 6), idx = tens(SWARM_DTYPE_I64, 2, 2, 3);
		int64_t dim = x.shape[axis];
		for (int i = 0; i < 6; i++)
			set_index(&idx, i, (int64_t)(rng_next() % (uint64_t)(2 * dim)) - dim);
		struct swarm_node n = NODE(SWARM_OP_GATHER, NULL, &x, &idx);
		n.p.axis = axis;
		struct swarm_tensor *o = run_node(&n, "gather");
		int64_t N = nelems(o), oi[6], xs[3];
		strides(&x, xs);
		double *want = dalloc((size_t)N);
		for (int64_t e = 0; e < N; e++) {
			unflat(o, e, oi);
			int64_t xi[3], k = 0;
			for (int i = 0; i < axis; i++)
				xi[k++] = oi[i];
			int64_t v = get_index(&idx, oi[axis] * 3 + oi[axis + 1]);
			xi[k++] = v < 0 ? v + dim : v;
			for (int i = axis + 1; i < 3; i++)
				xi[k++] = oi[i + 1];
			want[e] = F(&x)[xi[0] * xs[0] + xi[1] * xs[1] + xi[2] * xs[2]];
		}
		check_close(F(o), want, NULL, (size_t)N, 0, 0, "gather");
		set_index(&idx, 4, dim);
		run_refused(&n, "an index equal to the dim");
		set_index(&idx, 4, -dim - 1);
		run_refused(&n, "an index below -dim");
	}
}

static void pad_case(uint32_t mode, struct swarm_tensor x, const int64_t *pads, float value)
{
	struct swarm_node n = NODE(SWARM_OP_PAD, NULL, &x);
	n.p.mode = mode, n.p.value = value, n.p.n_pads = 2 * x.ndim;
	memcpy(n.p.pads, pads, 2 * x.ndim * sizeof *pads);
	struct swarm_tensor *o = run_node(&n, "pad");
	int64_t N = nelems(o), idx[6], xs[6];
	strides(&x, xs);
	double *want = dalloc((size_t)N);
	for (int64_t e = 0; e < N; e++) {
		unflat(o, e, idx);
		int64_t off = 0;
		int inside = 1;
		for (uint32_t i = 0; i < x.ndim; i++) {
			int64_t s = idx[i] - pads[i], d = x.shape[i];
			if (s < 0 || s >= d) {
				if (mode == SWARM_PAD_CONSTANT)
					inside = 0;
				else if (mode == SWARM_PAD_EDGE)
					s = s < 0 ? 0 : d - 1;
				else
					s = s < 0 ? -s : 2 * (d - 1) - s;
			}
			off += s * xs[i];
		}
		want[e] = inside ? F(&x)[off] : value;
	}
	check_close(F(o), want, NULL, (size_t)N, 0, 0, "pad");
}

Test(kernels_ops_vision, pad_matches_reference)
{
	pad_case(SWARM_PAD_CONSTANT, T(2, 3, 4, 5), (int64_t[]){ 0, 1, 2, 0, 0, 0, 1, 3 }, 0.5f);
	pad_case(SWARM_PAD_REFLECT, T(2, 4, 5), (int64_t[]){ 0, 2, 1, 0, 1, 3 }, 0);
	pad_case(SWARM_PAD_REFLECT, T(2, 4, 5), (int64_t[]){ 0, 3, 4, 0, 3, 4 }, 0);
	pad_case(SWARM_PAD_EDGE, T(2, 4, 5), (int64_t[]){ 0, 3, 1, 0, 2, 2 }, 0);
	pad_case(SWARM_PAD_CONSTANT, T(7), (int64_t[]){ 0, 0 }, 1);
	struct swarm_tensor x = T(2, 4), y = T(2, 9);
	struct swarm_node n = NODE(SWARM_OP_PAD, &y, &x);
	n.p.mode = SWARM_PAD_REFLECT, n.p.n_pads = 4;
	n.p.pads[1] = 4, n.p.pads[3] = 1;
	run_refused(&n, "a reflect pad as large as the dim");
	n.p.n_pads = 2;
	run_refused(&n, "pads of 2 for 2 dims");
}

/* ---- cast -------------------------------------------------------------------------------------
 */

/* Round to nearest even into f16's 10-bit mantissa (for the normal range used here). */
static double ref_f16(double v)
{
	if (v == 0 || isnan(v) || isinf(v))
		return v;
	int e;
	frexp(v, &e); /* v = m * 2^e, 0.5 <= |m| < 1 */
	int exp = e - 1 < -14 ? -14 : e - 1;
	double q = ldexp(1.0, exp - 10), r = v / q, f = floor(r), d = r - f;
	double k = d > 0.5 || (d == 0.5 && fmod(f, 2) != 0) ? f + 1 : f;
	double out = k * q;
	return fabs(out) > 65504 ? copysign(INFINITY, v) : out;
}

Test(kernels_ops_vision, cast_rounds_to_nearest_even_and_back)
{
	struct swarm_tensor x = T(6, 50);
	for (int i = 0; i < 300; i++)
		F(&x)[i] *= (float)ldexp(1.0, (i % 40) - 18); /* normals and subnormals of f16 */
	F(&x)[0] = 70000.0f;                                  /* over f16's max: infinity */
	F(&x)[1] = -INFINITY;
	F(&x)[2] = 1.0f + 1.0f / 2048; /* a tie: to even (1.0) */
	F(&x)[3] = 1.0f + 3.0f / 2048; /* a tie: to even (1 + 2/1024) */
	struct swarm_node n = NODE(SWARM_OP_CAST, NULL, &x);
	n.p.to = SWARM_DTYPE_F16;
	struct swarm_tensor *h = run_node(&n, "cast to f16");
	cr_assert_eq(h->dtype, SWARM_DTYPE_F16);
	struct swarm_node back = NODE(SWARM_OP_CAST, NULL, h);
	back.p.to = SWARM_DTYPE_F32;
	struct swarm_tensor *f = run_node(&back, "cast back to f32");
	double want[300];
	for (int i = 0; i < 300; i++)
		want[i] = ref_f16(F(&x)[i]);
	cr_assert(isinf(F(f)[0]) && F(f)[0] > 0, "70000 gave %g", (double)F(f)[0]);
	cr_assert_eq(F(f)[2], 1.0f);
	cr_assert_eq(F(f)[3], 1.0f + 2.0f / 1024);
	for (int i = 4; i < 300; i++) /* subnormals of f16 below 2^-24 flush in the reference too */
		cr_assert(F(f)[i] == (float)want[i], "f16 of %.9g: %.9g, want %.9g",
			  (double)F(&x)[i], (double)F(f)[i], want[i]);
	/* bf16: the top 16 bits, rounded */
	n.p.to = SWARM_DTYPE_BF16;
	struct swarm_tensor *b = run_node(&n, "cast to bf16");
	back = NODE(SWARM_OP_CAST, NULL, b);
	back.p.to = SWARM_DTYPE_F32;
	f = run_node(&back, "bf16 back to f32");
	for (int i = 4; i < 300; i++) {
		double v = F(&x)[i];
		int e;
		frexp(v, &e);
		double q = ldexp(1.0, e - 8), r = v / q, fl = floor(r), d = r - fl;
		double k = d > 0.5 || (d == 0.5 && fmod(fl, 2) != 0) ? fl + 1 : fl;
		cr_assert(F(f)[i] == (float)(k * q), "bf16 of %.9g: %.9g, want %.9g", v,
			  (double)F(f)[i], k * q);
	}
}

Test(kernels_ops_vision, cast_refuses_a_non_float_target)
{
	struct swarm_tensor x = T(4), y = tens(SWARM_DTYPE_I32, 1, 4);
	struct swarm_node n = NODE(SWARM_OP_CAST, &y, &x);
	n.p.to = SWARM_DTYPE_I32;
	cr_assert_eq(dev->i->supports_op(dev, &n), 0);
	run_refused(&n, "cast to i32");
}
