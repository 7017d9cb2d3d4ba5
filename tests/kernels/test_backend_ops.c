/* test_backend_ops.c: every op of kernels/device.h on every device against the CPU device, in
 * the manner of ggml's test-backend-ops. Adding an op, or a dtype to an op, means adding its
 * case to the table below.
 *
 * Each case is one node: its op, parameters, float dtype and inputs (shapes; floats uniform in
 * [-scale, -scale/20] u [scale/20, scale], never zero; ids uniform in the table; offsets and
 * masks written out). For each device present other than the CPU (today: CUDA GPU 0), a test
 * per case makes fresh inputs from a fixed seed, uploads them, runs the node, synchronises,
 * downloads the output and compares it with the CPU device's output for the same inputs. For
 * f16 and bf16 cases the reference is the CPU's f32 op run on the inputs rounded to that dtype
 * (round to nearest even, by the helpers here), so that only the device's own arithmetic is
 * measured. Where a device cannot be created (no GPU, or CUDA not built in) its tests are
 * skipped, with the reason, never passed: the skip depends on the device's create function
 * alone.
 *
 * The error measure is relative to the largest reference value: max_i |got_i - ref_i| /
 * max_i |ref_i| (a NaN anywhere fails). Tolerances, per case (u is the unit roundoff of the
 * case's dtype: f16 2^-11 = 4.9e-4, bf16 2^-8 = 3.9e-3):
 *   identity, relu, concat, embedding   0      copies and sign tests: bit for bit
 *   add, mul                            2^-23  correctly rounded IEEE ops on both devices;
 *                                              one ulp of the max for nothing but a flush
 *   gelu, sigmoid, tanh                 5e-6   erff, expf, tanhf differ by a few ulps between
 *                                              libm and CUDA (more with __expf)
 *   softmax, layernorm, l2norm          1e-5   a transcendental, then a row reduction summed
 *                                              in another order
 *   embedding_bag, mean_pool            1e-6   sums of a few rows in another order
 *   linear, matmul, attention (f32)     1e-4   f32 accumulation over K <= 64 in another order
 *                                              (tiles, split K); TF32 tensor cores (~1e-3)
 *                                              fail it, on purpose: an f32 op is f32
 *   linear, matmul (f16, bf16)          4u     the output rounded to the dtype (u), f32
 *                                              accumulation in another order
 *   attention (f16, bf16)               8u     also its scores and probabilities held in the
 *                                              dtype between its two GEMMs
 *
 * On every device, supports_op must agree with the table: the CPU takes every f32 case and
 * refuses every f16 and bf16 one (device.h: those are CUDA's); any other device must take
 * every case (device.h's ops are every device's, and its f16 and bf16 are CUDA's) and then
 * run it. Tests that need no GPU pin the table's coverage, the rounding helpers, and the
 * harness itself: the CPU as a device under test through the same copies (no error), and the
 * f16 and bf16 cases through a device that widens to f32 on the CPU (the output's rounding,
 * at most u).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/segment.h"
#include "kernels/device.h"
#include "swarm/swarm.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/probe.h"
#endif

/* ---- f16 and bf16 on the host: round to nearest even ---------------------------------------- */

static uint32_t f32_bits(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof x);
	return x;
}

static float bits_f32(uint32_t x)
{
	float f;
	memcpy(&f, &x, sizeof f);
	return f;
}

/* IEEE binary16, round to nearest even; overflow gives infinity, NaN a quiet NaN. (After
 * F. Giesen's float_to_half_fast3_rtne.) */
static uint16_t f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000u;
	uint16_t o;
	x &= 0x7fffffffu;
	if (x >= 0x47800000u) { /* |f| >= 65536, inf or NaN */
		o = x > 0x7f800000u ? 0x7e00 : 0x7c00;
	} else if (x < 0x38800000u) { /* below 2^-14: a subnormal f16 or zero */
		/* Adding 0.5 puts the f16 subnormal's bits at the bottom of the f32 mantissa,
		 * rounded to nearest even by the FPU itself. */
		o = (uint16_t)(f32_bits(bits_f32(x) + 0.5f) - 0x3f000000u);
	} else {
		uint32_t odd = (x >> 13) & 1u;
		x += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd; /* rebias, round half to even */
		o = (uint16_t)(x >> 13);                          /* a carry may reach inf: right */
	}
	return (uint16_t)(o | sign);
}

static float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
	if (exp == 0) {
		float v = ldexpf((float)mant, -24); /* zero or subnormal */
		return sign ? -v : v;
	}
	if (exp == 31)
		return bits_f32(sign | 0x7f800000u | (mant << 13));
	return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

/* bfloat16: the top half of an f32, rounded to nearest even; NaN stays a quiet NaN. */
static uint16_t f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40u);
	x += 0x7fffu + ((x >> 16) & 1u);
	return (uint16_t)(x >> 16);
}

static float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* f rounded to dtype and back (f32: f itself). */
static float round_to(uint32_t dtype, float f)
{
	if (dtype == SWARM_DTYPE_F16)
		return f16_to_f32(f32_to_f16(f));
	if (dtype == SWARM_DTYPE_BF16)
		return bf16_to_f32(f32_to_bf16(f));
	return f;
}

/* ---- the cases ------------------------------------------------------------------------------ */

#define MAX_IN 5
#define MAX_VALUES 24

enum in_kind {
	IN_NONE = 0,
	IN_FLOAT,  /* the case's float dtype, random */
	IN_IDS32,  /* i32 ids, uniform in [0, vocab) */
	IN_IDS64,  /* i64 ids */
	IN_OFFS32, /* i32 values as written */
	IN_OFFS64, /* i64 values as written */
	IN_MASK,   /* f32 (whatever the case's dtype) 0/1 values as written */
	IN_POS,    /* the case's float dtype, random, positive (log, sqrt, a variance) */
};

struct in_desc {
	uint32_t kind; /* an enum in_kind */
	uint32_t ndim;
	int64_t shape[4];
	float scale;   /* IN_FLOAT: magnitude bound (1 when 0) */
	int64_t vocab; /* IN_IDS*: ids in [0, vocab) */
	int64_t values[MAX_VALUES];
};

struct bcase {
	const char *name;
	uint32_t op;
	uint32_t dtype; /* the float dtype of the float inputs and the output */
	struct swarm_op_params p;
	uint32_t n_in;
	struct in_desc in[MAX_IN];
	uint32_t out_ndim;
	int64_t out_shape[4];
	double tol;         /* relative to the largest reference value; why in the header */
	uint32_t out_dtype; /* the output's dtype when not the case's (cast) */
};

#define F32 SWARM_DTYPE_F32
#define F16 SWARM_DTYPE_F16
#define BF16 SWARM_DTYPE_BF16

#define U_F16 (1.0 / 2048) /* 2^-11 */
#define U_BF16 (1.0 / 256) /* 2^-8 */
#define TOL_EXACT 0.0
#define TOL_IEEE (1.0 / 8388608) /* 2^-23 */
#define TOL_TRANSC 5e-6
#define TOL_REDUCE 1e-5
#define TOL_SUM 1e-6
#define TOL_GEMM 1e-4

/* clang-format off */
#define NDIM(...) ((uint32_t)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)))
/* A float input of the case's dtype, magnitudes up to 1 (FL) or scale (FLS). */
#define FL(...) { .kind = IN_FLOAT, .ndim = NDIM(__VA_ARGS__), .shape = { __VA_ARGS__ } }
#define FLS(scale_, ...) \
	{ .kind = IN_FLOAT, .scale = (scale_), .ndim = NDIM(__VA_ARGS__), .shape = { __VA_ARGS__ } }
#define POS(...) { .kind = IN_POS, .ndim = NDIM(__VA_ARGS__), .shape = { __VA_ARGS__ } }
#define IDX64(vocab_, ...) \
	{ .kind = IN_IDS64, .vocab = (vocab_), .ndim = NDIM(__VA_ARGS__), .shape = { __VA_ARGS__ } }
/* A one-input case of op on X [3, 129] (magnitude scale_) */
#define UN(nm, op_, scale_, tol_, ...) \
	{ .name = nm, .op = op_, .dtype = F32, .p = { __VA_ARGS__ }, .n_in = 1, \
	  .in = { FLS(scale_, 3, 129) }, OUT(3, 129), .tol = tol_ }
/* A broadcast binary case: A [2, 3, 4, 5] with B [3, 1, 1] (per channel) */
#define BIN(nm, op_) \
	{ .name = nm, .op = op_, .dtype = F32, .n_in = 2, .in = { FL(2, 3, 4, 5), FL(3, 1, 1) }, \
	  OUT(2, 3, 4, 5), .tol = TOL_IEEE }
#define OUT(...) .out_ndim = NDIM(__VA_ARGS__), .out_shape = { __VA_ARGS__ }
#define ACT(a) .p = { .act = (a) }
/* clang-format on */

/* The linear cases: X [5, 33], W [17, 33], bias [17] (used when nin is 3). */
/* clang-format off */
#define LINEAR(nm, dt, nin, act_, tol_) \
	{ .name = nm, .op = SWARM_OP_LINEAR, .dtype = dt, ACT(act_), .n_in = nin, \
	  .in = { FL(5, 33), FL(17, 33), FL(17) }, OUT(5, 17), .tol = tol_ }

/* Attention's mask [2, 5]: the first row keeps three keys, the second all five. */
#define ATTN_MASK { 1, 1, 1, 0, 0, 1, 1, 1, 1, 1 }
/* clang-format on */

static const struct bcase cases[] = {
	{ .name = "identity",
	  .op = SWARM_OP_IDENTITY,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FL(3, 17) },
	  OUT(3, 17),
	  .tol = TOL_EXACT },

	LINEAR("linear", F32, 2, SWARM_OP_IDENTITY, TOL_GEMM),
	LINEAR("linear_bias", F32, 3, SWARM_OP_IDENTITY, TOL_GEMM),
	LINEAR("linear_bias_relu", F32, 3, SWARM_OP_RELU, TOL_GEMM),
	LINEAR("linear_bias_gelu", F32, 3, SWARM_OP_GELU, TOL_GEMM),
	LINEAR("linear_bias_sigmoid", F32, 3, SWARM_OP_SIGMOID, TOL_GEMM),
	LINEAR("linear_bias_tanh", F32, 3, SWARM_OP_TANH, TOL_GEMM),
	LINEAR("linear_relu", F32, 2, SWARM_OP_RELU, TOL_GEMM),
	{ .name = "linear_3d_bias",
	  .op = SWARM_OP_LINEAR,
	  .dtype = F32,
	  .n_in = 3,
	  .in = { FL(2, 3, 64), FL(32, 64), FL(32) },
	  OUT(2, 3, 32),
	  .tol = TOL_GEMM },

	{ .name = "matmul",
	  .op = SWARM_OP_MATMUL,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(7, 33), FL(33, 5) },
	  OUT(7, 5),
	  .tol = TOL_GEMM },
	{ .name = "matmul_batched",
	  .op = SWARM_OP_MATMUL,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(2, 3, 7, 16), FL(2, 3, 16, 9) },
	  OUT(2, 3, 7, 9),
	  .tol = TOL_GEMM },

	{ .name = "add",
	  .op = SWARM_OP_ADD,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(4, 33), FL(4, 33) },
	  OUT(4, 33),
	  .tol = TOL_IEEE },
	{ .name = "add_broadcast_row",
	  .op = SWARM_OP_ADD,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(2, 3, 33), FL(33) },
	  OUT(2, 3, 33),
	  .tol = TOL_IEEE },
	{ .name = "add_broadcast_matrix",
	  .op = SWARM_OP_ADD,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(2, 3, 33), FL(3, 33) },
	  OUT(2, 3, 33),
	  .tol = TOL_IEEE },
	{ .name = "mul",
	  .op = SWARM_OP_MUL,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(4, 33), FL(4, 33) },
	  OUT(4, 33),
	  .tol = TOL_IEEE },
	{ .name = "mul_broadcast_row",
	  .op = SWARM_OP_MUL,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(2, 3, 33), FL(33) },
	  OUT(2, 3, 33),
	  .tol = TOL_IEEE },

	{ .name = "relu",
	  .op = SWARM_OP_RELU,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FLS(4, 3, 129) },
	  OUT(3, 129),
	  .tol = TOL_EXACT },
	{ .name = "gelu",
	  .op = SWARM_OP_GELU,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FLS(4, 3, 129) },
	  OUT(3, 129),
	  .tol = TOL_TRANSC },
	{ .name = "sigmoid",
	  .op = SWARM_OP_SIGMOID,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FLS(6, 3, 129) },
	  OUT(3, 129),
	  .tol = TOL_TRANSC },
	{ .name = "tanh",
	  .op = SWARM_OP_TANH,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FLS(3, 3, 129) },
	  OUT(3, 129),
	  .tol = TOL_TRANSC },
	{ .name = "softmax",
	  .op = SWARM_OP_SOFTMAX,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FLS(4, 5, 129) },
	  OUT(5, 129),
	  .tol = TOL_REDUCE },
	{ .name = "layernorm",
	  .op = SWARM_OP_LAYERNORM,
	  .dtype = F32,
	  .p = { .eps = 1e-5f },
	  .n_in = 3,
	  .in = { FLS(3, 4, 65), FL(65), FL(65) },
	  OUT(4, 65),
	  .tol = TOL_REDUCE },

	{ .name = "embedding_i32",
	  .op = SWARM_OP_EMBEDDING,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(50, 24), { .kind = IN_IDS32, .ndim = 2, .shape = { 4, 3 }, .vocab = 50 } },
	  OUT(4, 3, 24),
	  .tol = TOL_EXACT },
	{ .name = "embedding_i64",
	  .op = SWARM_OP_EMBEDDING,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(50, 24), { .kind = IN_IDS64, .ndim = 1, .shape = { 7 }, .vocab = 50 } },
	  OUT(7, 24),
	  .tol = TOL_EXACT },
	/* Four bags over ten ids, the second empty (zeros). */
	{ .name = "embedding_bag_sum_i64",
	  .op = SWARM_OP_EMBEDDING_BAG,
	  .dtype = F32,
	  .p = { .bag_mode = SWARM_BAG_SUM },
	  .n_in = 3,
	  .in = { FL(40, 16),
		  { .kind = IN_IDS64, .ndim = 1, .shape = { 10 }, .vocab = 40 },
		  { .kind = IN_OFFS64, .ndim = 1, .shape = { 4 }, .values = { 0, 3, 3, 7 } } },
	  OUT(4, 16),
	  .tol = TOL_SUM },
	/* The last bag empty. */
	{ .name = "embedding_bag_mean_i32",
	  .op = SWARM_OP_EMBEDDING_BAG,
	  .dtype = F32,
	  .p = { .bag_mode = SWARM_BAG_MEAN },
	  .n_in = 3,
	  .in = { FL(40, 16),
		  { .kind = IN_IDS32, .ndim = 1, .shape = { 9 }, .vocab = 40 },
		  { .kind = IN_OFFS32, .ndim = 1, .shape = { 4 }, .values = { 0, 2, 9, 9 } } },
	  OUT(4, 16),
	  .tol = TOL_SUM },

	{ .name = "concat",
	  .op = SWARM_OP_CONCAT,
	  .dtype = F32,
	  .p = { .axis = -1 },
	  .n_in = 3,
	  .in = { FL(3, 5), FL(3, 1), FL(3, 17) },
	  OUT(3, 23),
	  .tol = TOL_EXACT },
	{ .name = "concat_3d",
	  .op = SWARM_OP_CONCAT,
	  .dtype = F32,
	  .p = { .axis = -1 },
	  .n_in = 2,
	  .in = { FL(2, 3, 8), FL(2, 3, 16) },
	  OUT(2, 3, 24),
	  .tol = TOL_EXACT },

	{ .name = "attention",
	  .op = SWARM_OP_ATTENTION,
	  .dtype = F32,
	  .p = { .heads = 4 },
	  .n_in = 3,
	  .in = { FL(2, 5, 32), FL(2, 5, 32), FL(2, 5, 32) },
	  OUT(2, 5, 32),
	  .tol = TOL_GEMM },
	{ .name = "attention_mask",
	  .op = SWARM_OP_ATTENTION,
	  .dtype = F32,
	  .p = { .heads = 4 },
	  .n_in = 4,
	  .in = { FL(2, 5, 32),
		  FL(2, 5, 32),
		  FL(2, 5, 32),
		  { .kind = IN_MASK, .ndim = 2, .shape = { 2, 5 }, .values = ATTN_MASK } },
	  OUT(2, 5, 32),
	  .tol = TOL_GEMM },

	/* The third row keeps no token: zeros. */
	{ .name = "mean_pool",
	  .op = SWARM_OP_MEAN_POOL,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(3, 6, 16),
		  { .kind = IN_MASK,
		    .ndim = 2,
		    .shape = { 3, 6 },
		    .values = { 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0 } } },
	  OUT(3, 16),
	  .tol = TOL_SUM },
	{ .name = "l2norm",
	  .op = SWARM_OP_L2NORM,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FL(4, 33) },
	  OUT(4, 33),
	  .tol = TOL_REDUCE },

	/* The vision ops and the rest of ONNX's common set. */
	{ .name = "concat_channels",
	  .op = SWARM_OP_CONCAT,
	  .dtype = F32,
	  .p = { .axis = 1 },
	  .n_in = 2,
	  .in = { FL(2, 3, 4, 5), FL(2, 2, 4, 5) },
	  OUT(2, 5, 4, 5),
	  .tol = TOL_EXACT },
	BIN("add_channels", SWARM_OP_ADD),
	BIN("sub_channels", SWARM_OP_SUB),
	BIN("mul_channels", SWARM_OP_MUL),
	BIN("div_channels", SWARM_OP_DIV),
	BIN("max_channels", SWARM_OP_MAX),
	BIN("min_channels", SWARM_OP_MIN),
	BIN("prelu_channels", SWARM_OP_PRELU),
	{ .name = "mul_both_broadcast",
	  .op = SWARM_OP_MUL,
	  .dtype = F32,
	  .n_in = 2,
	  .in = { FL(2, 1, 5), FL(3, 1) },
	  OUT(2, 3, 5),
	  .tol = TOL_IEEE },
	UN("pow", SWARM_OP_POW, 2, TOL_TRANSC, .exponent = 3.0f),
	UN("erf", SWARM_OP_ERF, 3, TOL_TRANSC),
	UN("exp", SWARM_OP_EXP, 4, TOL_TRANSC),
	{ .name = "log",
	  .op = SWARM_OP_LOG,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { POS(3, 129) },
	  OUT(3, 129),
	  .tol = TOL_TRANSC },
	{ .name = "sqrt",
	  .op = SWARM_OP_SQRT,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { POS(3, 129) },
	  OUT(3, 129),
	  .tol = TOL_TRANSC },
	UN("hardsigmoid", SWARM_OP_HARDSIGMOID, 6, TOL_TRANSC, .alpha = 0.2f, .beta = 0.5f),
	UN("hardswish", SWARM_OP_HARDSWISH, 6, TOL_TRANSC),
	UN("leaky_relu", SWARM_OP_LEAKY_RELU, 3, TOL_EXACT, .alpha = 0.01f),
	UN("clip", SWARM_OP_CLIP, 8, TOL_EXACT, .alpha = 0.0f, .beta = 6.0f),
	{ .name = "conv2d_3x3_pad_relu",
	  .op = SWARM_OP_CONV2D,
	  .dtype = F32,
	  .p = { .act = SWARM_OP_RELU, .n_pads = 4, .pads = { 1, 1, 1, 1 } },
	  .n_in = 3,
	  .in = { FL(2, 3, 9, 7), FL(8, 3, 3, 3), FL(8) },
	  OUT(2, 8, 9, 7),
	  .tol = TOL_GEMM },
	{ .name = "conv2d_stride2_group2_hardswish",
	  .op = SWARM_OP_CONV2D,
	  .dtype = F32,
	  .p = { .act = SWARM_OP_HARDSWISH,
		 .group = 2,
		 .stride = { 2, 1 },
		 .n_pads = 4,
		 .pads = { 1, 0, 2, 1 } },
	  .n_in = 3,
	  .in = { FL(1, 4, 11, 8), FL(6, 2, 3, 2), FL(6) },
	  OUT(1, 6, 6, 8),
	  .tol = TOL_GEMM },
	{ .name = "conv2d_depthwise_clip",
	  .op = SWARM_OP_CONV2D,
	  .dtype = F32,
	  .p = { .act = SWARM_OP_CLIP,
		 .alpha = 0.0f,
		 .beta = 6.0f,
		 .group = 5,
		 .stride = { 2, 2 },
		 .n_pads = 4,
		 .pads = { 2, 2, 2, 2 } },
	  .n_in = 2,
	  .in = { FL(2, 5, 9, 10), FL(5, 1, 5, 5) },
	  OUT(2, 5, 5, 5),
	  .tol = TOL_GEMM },
	{ .name = "conv2d_1x1",
	  .op = SWARM_OP_CONV2D,
	  .dtype = F32,
	  .n_in = 3,
	  .in = { FL(2, 16, 5, 6), FL(12, 16, 1, 1), FL(12) },
	  OUT(2, 12, 5, 6),
	  .tol = TOL_GEMM },
	{ .name = "conv2d_dilated",
	  .op = SWARM_OP_CONV2D,
	  .dtype = F32,
	  .p = { .dilation = { 2, 2 }, .n_pads = 4, .pads = { 2, 2, 2, 2 } },
	  .n_in = 2,
	  .in = { FL(1, 3, 8, 8), FL(4, 3, 3, 3) },
	  OUT(1, 4, 8, 8),
	  .tol = TOL_GEMM },
	{ .name = "conv_transpose2d_2x2_s2",
	  .op = SWARM_OP_CONV_TRANSPOSE2D,
	  .dtype = F32,
	  .p = { .stride = { 2, 2 } },
	  .n_in = 3,
	  .in = { FL(2, 6, 4, 5), FL(6, 3, 2, 2), FL(3) },
	  OUT(2, 3, 8, 10),
	  .tol = TOL_GEMM },
	{ .name = "conv_transpose2d_pad_outpad_group",
	  .op = SWARM_OP_CONV_TRANSPOSE2D,
	  .dtype = F32,
	  .p = { .stride = { 2, 2 },
		 .group = 2,
		 .out_pad = { 1, 0 },
		 .n_pads = 4,
		 .pads = { 1, 1, 1, 1 } },
	  .n_in = 2,
	  .in = { FL(1, 4, 3, 4), FL(4, 2, 3, 3) },
	  OUT(1, 4, 6, 7),
	  .tol = TOL_GEMM },
	{ .name = "max_pool2d",
	  .op = SWARM_OP_MAX_POOL2D,
	  .dtype = F32,
	  .p = { .kernel = { 3, 3 }, .stride = { 2, 2 }, .n_pads = 4, .pads = { 1, 1, 1, 1 } },
	  .n_in = 1,
	  .in = { FL(2, 3, 9, 8) },
	  OUT(2, 3, 5, 4),
	  .tol = TOL_EXACT },
	{ .name = "max_pool2d_ceil",
	  .op = SWARM_OP_MAX_POOL2D,
	  .dtype = F32,
	  .p = { .kernel = { 2, 2 }, .stride = { 2, 2 }, .ceil_mode = 1 },
	  .n_in = 1,
	  .in = { FL(1, 2, 7, 5) },
	  OUT(1, 2, 4, 3),
	  .tol = TOL_EXACT },
	{ .name = "avg_pool2d_pad_excluded",
	  .op = SWARM_OP_AVG_POOL2D,
	  .dtype = F32,
	  .p = { .kernel = { 3, 3 }, .stride = { 2, 2 }, .n_pads = 4, .pads = { 1, 1, 1, 1 } },
	  .n_in = 1,
	  .in = { FL(2, 3, 9, 8) },
	  OUT(2, 3, 5, 4),
	  .tol = TOL_SUM },
	{ .name = "avg_pool2d_pad_included_ceil",
	  .op = SWARM_OP_AVG_POOL2D,
	  .dtype = F32,
	  .p = { .kernel = { 3, 2 },
		 .stride = { 2, 2 },
		 .ceil_mode = 1,
		 .count_include_pad = 1,
		 .n_pads = 4,
		 .pads = { 1, 0, 1, 1 } },
	  .n_in = 1,
	  .in = { FL(1, 2, 8, 7) },
	  OUT(1, 2, 5, 4),
	  .tol = TOL_SUM },
	{ .name = "global_avg_pool",
	  .op = SWARM_OP_GLOBAL_AVG_POOL,
	  .dtype = F32,
	  .n_in = 1,
	  .in = { FL(2, 5, 7, 6) },
	  OUT(2, 5, 1, 1),
	  .tol = TOL_SUM },
	{ .name = "resize_nearest_asymmetric_floor_x2",
	  .op = SWARM_OP_RESIZE,
	  .dtype = F32,
	  .p = { .mode = SWARM_RESIZE_NEAREST,
		 .coord = SWARM_COORD_ASYMMETRIC,
		 .nearest = SWARM_NEAREST_FLOOR,
		 .scales = { 2.0f, 2.0f } },
	  .n_in = 1,
	  .in = { FL(2, 3, 4, 5) },
	  OUT(2, 3, 8, 10),
	  .tol = TOL_EXACT },
	{ .name = "resize_linear_half_pixel_sizes",
	  .op = SWARM_OP_RESIZE,
	  .dtype = F32,
	  .p = { .mode = SWARM_RESIZE_LINEAR, .coord = SWARM_COORD_HALF_PIXEL, .sizes = { 7, 9 } },
	  .n_in = 1,
	  .in = { FL(1, 2, 4, 5) },
	  OUT(1, 2, 7, 9),
	  .tol = TOL_REDUCE },
	{ .name = "resize_linear_align_corners_down",
	  .op = SWARM_OP_RESIZE,
	  .dtype = F32,
	  .p = { .mode = SWARM_RESIZE_LINEAR,
		 .coord = SWARM_COORD_ALIGN_CORNERS,
		 .sizes = { 3, 4 } },
	  .n_in = 1,
	  .in = { FL(1, 2, 7, 9) },
	  OUT(1, 2, 3, 4),
	  .tol = TOL_REDUCE },
	{ .name = "batchnorm",
	  .op = SWARM_OP_BATCHNORM,
	  .dtype = F32,
	  .p = { .eps = 1e-5f },
	  .n_in = 5,
	  .in = { FL(2, 4, 3, 5), FL(4), FL(4), FL(4), POS(4) },
	  OUT(2, 4, 3, 5),
	  .tol = TOL_REDUCE },
	{ .name = "reduce_mean_spatial_keepdims",
	  .op = SWARM_OP_REDUCE_MEAN,
	  .dtype = F32,
	  .p = { .axes = 0xc, .keepdims = 1 },
	  .n_in = 1,
	  .in = { FL(2, 3, 5, 7) },
	  OUT(2, 3, 1, 1),
	  .tol = TOL_SUM },
	{ .name = "reduce_sum_middle",
	  .op = SWARM_OP_REDUCE_SUM,
	  .dtype = F32,
	  .p = { .axes = 0x2 },
	  .n_in = 1,
	  .in = { FL(2, 6, 5) },
	  OUT(2, 5),
	  .tol = TOL_SUM },
	{ .name = "reduce_max_two",
	  .op = SWARM_OP_REDUCE_MAX,
	  .dtype = F32,
	  .p = { .axes = 0x5, .keepdims = 1 },
	  .n_in = 1,
	  .in = { FL(3, 4, 5) },
	  OUT(1, 4, 1),
	  .tol = TOL_EXACT },
	{ .name = "transpose_nhwc",
	  .op = SWARM_OP_TRANSPOSE,
	  .dtype = F32,
	  .p = { .n_shape = 4, .perm = { 0, 2, 3, 1 } },
	  .n_in = 1,
	  .in = { FL(2, 3, 4, 5) },
	  OUT(2, 4, 5, 3),
	  .tol = TOL_EXACT },
	{ .name = "reshape",
	  .op = SWARM_OP_RESHAPE,
	  .dtype = F32,
	  .p = { .n_shape = 2, .shape = { 2, 60 } },
	  .n_in = 1,
	  .in = { FL(2, 3, 4, 5) },
	  OUT(2, 60),
	  .tol = TOL_EXACT },
	{ .name = "slice_steps",
	  .op = SWARM_OP_SLICE,
	  .dtype = F32,
	  .p = { .axes = 0x6,
		 .starts = { 0, 1, -1 },
		 .ends = { 0, 100, -100 },
		 .steps = { 1, 2, -2 } },
	  .n_in = 1,
	  .in = { FL(2, 7, 9) },
	  OUT(2, 3, 5),
	  .tol = TOL_EXACT },
	{ .name = "gather_axis1",
	  .op = SWARM_OP_GATHER,
	  .dtype = F32,
	  .p = { .axis = 1 },
	  .n_in = 2,
	  .in = { FL(2, 7, 3), IDX64(7, 2, 2) },
	  OUT(2, 2, 2, 3),
	  .tol = TOL_EXACT },
	{ .name = "pad_constant",
	  .op = SWARM_OP_PAD,
	  .dtype = F32,
	  .p = { .mode = SWARM_PAD_CONSTANT,
		 .value = 0.5f,
		 .n_pads = 8,
		 .pads = { 0, 1, 2, 0, 0, 0, 1, 3 } },
	  .n_in = 1,
	  .in = { FL(2, 3, 4, 5) },
	  OUT(2, 4, 7, 8),
	  .tol = TOL_EXACT },
	{ .name = "pad_reflect",
	  .op = SWARM_OP_PAD,
	  .dtype = F32,
	  .p = { .mode = SWARM_PAD_REFLECT, .n_pads = 6, .pads = { 0, 2, 1, 0, 1, 3 } },
	  .n_in = 1,
	  .in = { FL(2, 4, 5) },
	  OUT(2, 7, 9),
	  .tol = TOL_EXACT },
	{ .name = "pad_edge",
	  .op = SWARM_OP_PAD,
	  .dtype = F32,
	  .p = { .mode = SWARM_PAD_EDGE, .n_pads = 6, .pads = { 0, 3, 1, 0, 2, 2 } },
	  .n_in = 1,
	  .in = { FL(2, 4, 5) },
	  OUT(2, 9, 8),
	  .tol = TOL_EXACT },
	{ .name = "cast_f32_f16",
	  .op = SWARM_OP_CAST,
	  .dtype = F32,
	  .p = { .to = F16 },
	  .n_in = 1,
	  .in = { FLS(100, 3, 129) },
	  OUT(3, 129),
	  .tol = U_F16,
	  .out_dtype = F16 },

	/* f16 and bf16: CUDA's, for the GEMM-heavy ops. */
	LINEAR("linear_bias_gelu_f16", F16, 3, SWARM_OP_GELU, 4 * U_F16),
	LINEAR("linear_bias_bf16", BF16, 3, SWARM_OP_IDENTITY, 4 * U_BF16),
	{ .name = "matmul_batched_f16",
	  .op = SWARM_OP_MATMUL,
	  .dtype = F16,
	  .n_in = 2,
	  .in = { FL(2, 3, 7, 16), FL(2, 3, 16, 9) },
	  OUT(2, 3, 7, 9),
	  .tol = 4 * U_F16 },
	{ .name = "matmul_bf16",
	  .op = SWARM_OP_MATMUL,
	  .dtype = BF16,
	  .n_in = 2,
	  .in = { FL(7, 33), FL(33, 5) },
	  OUT(7, 5),
	  .tol = 4 * U_BF16 },
	{ .name = "attention_mask_f16",
	  .op = SWARM_OP_ATTENTION,
	  .dtype = F16,
	  .p = { .heads = 4 },
	  .n_in = 4,
	  .in = { FL(2, 5, 32),
		  FL(2, 5, 32),
		  FL(2, 5, 32),
		  { .kind = IN_MASK, .ndim = 2, .shape = { 2, 5 }, .values = ATTN_MASK } },
	  OUT(2, 5, 32),
	  .tol = 8 * U_F16 },
	{ .name = "attention_bf16",
	  .op = SWARM_OP_ATTENTION,
	  .dtype = BF16,
	  .p = { .heads = 2 },
	  .n_in = 3,
	  .in = { FL(2, 5, 32), FL(2, 5, 32), FL(2, 5, 32) },
	  OUT(2, 5, 32),
	  .tol = 8 * U_BF16 },
};

#define N_CASES (sizeof cases / sizeof *cases)

static const struct bcase *case_named(const char *name)
{
	for (size_t i = 0; i < N_CASES; i++)
		if (strcmp(cases[i].name, name) == 0)
			return &cases[i];
	cr_assert_fail("no case \"%s\" in the table", name);
	return NULL;
}

/* ---- inputs, and the CPU reference ---------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One input or output on the host: f32 values (ref; ids and offsets as int64 in ids), and the
 * bytes the device takes (dev, in the tensor's dtype). */
struct host_tensor {
	struct swarm_tensor t; /* dtype and shape; data unset */
	size_t elems, bytes;
	float *ref;
	void *dev;
};

static size_t shape_elems(uint32_t ndim, const int64_t *shape)
{
	size_t n = 1;
	for (uint32_t i = 0; i < ndim; i++)
		n *= (size_t)shape[i];
	return n;
}

static void host_alloc(struct host_tensor *h, uint32_t dtype, uint32_t ndim, const int64_t *shape)
{
	memset(h, 0, sizeof *h);
	h->t.dtype = dtype;
	h->t.ndim = ndim;
	memcpy(h->t.shape, shape, ndim * sizeof *shape);
	h->elems = shape_elems(ndim, shape);
	h->bytes = h->elems * swarm_dtype_size(dtype);
	h->ref = calloc(h->elems ? h->elems : 1, sizeof *h->ref);
	h->dev = calloc(1, h->bytes ? h->bytes : 1);
	cr_assert(h->ref && h->dev, "out of memory for %zu elements", h->elems);
}

static void host_free(struct host_tensor *h)
{
	free(h->ref);
	free(h->dev);
}

/* Writes value v (as f32 for floats) at element i of h's device bytes. */
static void host_set(struct host_tensor *h, size_t i, double v)
{
	switch (h->t.dtype) {
	case SWARM_DTYPE_F32:
		((float *)h->dev)[i] = (float)v;
		break;
	case SWARM_DTYPE_F16:
		((uint16_t *)h->dev)[i] = f32_to_f16((float)v);
		break;
	case SWARM_DTYPE_BF16:
		((uint16_t *)h->dev)[i] = f32_to_bf16((float)v);
		break;
	case SWARM_DTYPE_I32:
		((int32_t *)h->dev)[i] = (int32_t)v;
		break;
	case SWARM_DTYPE_I64:
		((int64_t *)h->dev)[i] = (int64_t)v;
		break;
	}
}

/* Element i of h's device bytes as a double. */
static double host_get(const struct host_tensor *h, size_t i)
{
	switch (h->t.dtype) {
	case SWARM_DTYPE_F32:
		return ((const float *)h->dev)[i];
	case SWARM_DTYPE_F16:
		return f16_to_f32(((const uint16_t *)h->dev)[i]);
	case SWARM_DTYPE_BF16:
		return bf16_to_f32(((const uint16_t *)h->dev)[i]);
	case SWARM_DTYPE_I32:
		return ((const int32_t *)h->dev)[i];
	default:
		return (double)((const int64_t *)h->dev)[i];
	}
}

/* Fresh inputs of case c from its seed: the device's bytes and the f32 values the reference
 * runs on (floats rounded to the case's dtype). */
static void make_inputs(const struct bcase *c, struct host_tensor *in)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(c - cases + 1) * 0xbf58476d1ce4e5b9ull;
	for (uint32_t j = 0; j < c->n_in; j++) {
		const struct in_desc *d = &c->in[j];
		uint32_t dtype = d->kind == IN_FLOAT || d->kind == IN_POS    ? c->dtype :
				 d->kind == IN_IDS32 || d->kind == IN_OFFS32 ? SWARM_DTYPE_I32 :
				 d->kind == IN_IDS64 || d->kind == IN_OFFS64 ? SWARM_DTYPE_I64 :
									       SWARM_DTYPE_F32;
		struct host_tensor *h = &in[j];
		host_alloc(h, dtype, d->ndim, d->shape);
		for (size_t i = 0; i < h->elems; i++) {
			double v;
			if (d->kind == IN_FLOAT || d->kind == IN_POS) {
				double scale = d->scale > 0 ? d->scale : 1.0;
				uint64_t r = rng_next(&seed);
				double mag = scale * (0.05 + 0.95 * (double)(r >> 11) / 0x1p53);
				v = d->kind == IN_POS || (rng_next(&seed) & 1) ? mag : -mag;
			} else if (d->kind == IN_IDS32 || d->kind == IN_IDS64) {
				v = (double)(rng_next(&seed) % (uint64_t)d->vocab);
			} else {
				cr_assert_lt(i, MAX_VALUES, "case %s: input %u has %zu values",
					     c->name, j, h->elems);
				v = (double)d->values[i];
			}
			host_set(h, i, v);
			h->ref[i] = (float)host_get(h, i); /* rounded as the device sees it */
		}
	}
}

/* The node of case c over the given tensors. */
static struct swarm_node make_node(const struct bcase *c, const struct swarm_tensor *in,
				   struct swarm_tensor *out)
{
	struct swarm_node n = { .op = c->op, .n_in = c->n_in, .out = out, .p = c->p };
	for (uint32_t j = 0; j < c->n_in; j++)
		n.in[j] = &in[j];
	return n;
}

/* The CPU's f32 output for case c on the inputs' reference values, into want[out elems]. */
static void cpu_reference(struct swarm_device *cpu, const struct bcase *c,
			  const struct host_tensor *in, float *want)
{
	struct swarm_tensor t[MAX_IN], out = { .data = want, .dtype = F32, .ndim = c->out_ndim };
	memcpy(out.shape, c->out_shape, sizeof c->out_shape);
	for (uint32_t j = 0; j < c->n_in; j++) {
		t[j] = in[j].t;
		if (in[j].t.dtype == SWARM_DTYPE_I32 || in[j].t.dtype == SWARM_DTYPE_I64) {
			t[j].data = in[j].dev; /* ids and offsets as they are */
		} else {
			t[j].dtype = F32;
			t[j].data = in[j].ref;
		}
	}
	struct swarm_node n = make_node(c, t, &out);
	if (c->op == SWARM_OP_CAST)
		n.p.to = F32; /* the values in f32: the device's rounding is what is measured */
	cr_assert(cpu->i->supports_op(cpu, &n), "case %s: the CPU refuses its f32 form", c->name);
	int rc = cpu->i->run(cpu, &n);
	cr_assert_eq(rc, 0, "case %s: the CPU reference failed: %d", c->name, rc);
}

/* ---- the devices ----------------------------------------------------------------------------- */

struct dev_desc {
	const char *name;
	int (*create)(struct swarm_device **out);
};

static int create_cuda(struct swarm_device **out) { return swarm_device_cuda_create(0, out); }

/* The device d, or a skip of the calling test saying why it cannot be had. Nothing else
 * skips: once the device exists, every case runs. */
static struct swarm_device *open_or_skip(const struct dev_desc *d)
{
	struct swarm_device *dev = NULL;
	int rc = d->create(&dev);
	if (rc == -ENOTSUP)
		cr_skip_test("no %s device: not built into this swarm (create returned -ENOTSUP: "
			     "configured without nvcc or with -DSWARM_CUDA=OFF)",
			     d->name);
	if (rc || !dev) {
#ifdef SWARM_HAVE_CUDA
		const char *why = swarm_cuda_last_error();
#else
		const char *why = "";
#endif
		cr_skip_test("no %s device on this machine: %s (create returned %d, %s)", d->name,
			     why, rc, strerror(rc < 0 ? -rc : EIO));
	}
	return dev;
}

/* ---- one case on one device ------------------------------------------------------------------ */

/* The error of got against want, relative to the largest |want|; NaN (any NaN in got) fails. */
static double rel_max_error(const float *got, const float *want, size_t n, size_t *worst)
{
	double max_ref = 0, max_err = 0;
	*worst = 0;
	for (size_t i = 0; i < n; i++)
		max_ref = fmax(max_ref, fabs(want[i]));
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - want[i]);
		if (isnan(got[i]) || isnan(want[i]))
			e = INFINITY;
		if (e > max_err) {
			max_err = e;
			*worst = i;
		}
	}
	return max_ref > 0 ? max_err / max_ref : max_err;
}

/* Runs case c on dev through device memory (upload, run, synchronize, download) and compares
 * it with the CPU reference. Returns the relative error (and fails the test beyond the case's
 * tolerance). */
static double run_case_on(struct swarm_device *dev, struct swarm_device *cpu, const struct bcase *c)
{
	struct host_tensor in[MAX_IN], out;
	make_inputs(c, in);
	host_alloc(&out, c->out_dtype ? c->out_dtype : c->dtype, c->out_ndim, c->out_shape);
	float *want = calloc(out.elems, sizeof *want);
	cr_assert_not_null(want);
	cpu_reference(cpu, c, in, want);

	struct swarm_tensor t[MAX_IN], o = out.t;
	void *mem[MAX_IN + 1] = { 0 };
	for (uint32_t j = 0; j < c->n_in; j++) {
		t[j] = in[j].t;
		mem[j] = t[j].data = dev->i->alloc(dev, in[j].bytes ? in[j].bytes : 1);
		cr_assert_not_null(t[j].data, "case %s: %s could not allocate %zu bytes", c->name,
				   dev->i->name, in[j].bytes);
		int rc = dev->i->upload(dev, t[j].data, in[j].dev, in[j].bytes);
		cr_assert_eq(rc, 0, "case %s: upload of input %u to %s: %d", c->name, j,
			     dev->i->name, rc);
	}
	mem[MAX_IN] = o.data = dev->i->alloc(dev, out.bytes);
	cr_assert_not_null(o.data, "case %s: %s could not allocate the output", c->name,
			   dev->i->name);
	/* All ones: NaN in every float dtype, so an output the device never writes fails. */
	memset(out.dev, 0xff, out.bytes);
	int rc = dev->i->upload(dev, o.data, out.dev, out.bytes);
	cr_assert_eq(rc, 0, "case %s: upload of the poisoned output: %d", c->name, rc);

	struct swarm_node n = make_node(c, t, &o);
	cr_assert(dev->i->supports_op(dev, &n),
		  "case %s: the %s device refuses %s on %s, which device.h says it runs", c->name,
		  dev->i->name, swarm_op_name(c->op), swarm_dtype_name(c->dtype));
	rc = dev->i->run(dev, &n);
	cr_assert_eq(rc, 0, "case %s: %s run: %d, after supports_op said yes", c->name,
		     dev->i->name, rc);
	rc = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	cr_assert_eq(rc, 0, "case %s: %s synchronize: %d", c->name, dev->i->name, rc);
	rc = dev->i->download(dev, out.dev, o.data, out.bytes);
	cr_assert_eq(rc, 0, "case %s: download from %s: %d", c->name, dev->i->name, rc);
	rc = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	cr_assert_eq(rc, 0, "case %s: %s synchronize after download: %d", c->name, dev->i->name,
		     rc);

	for (size_t i = 0; i < out.elems; i++)
		out.ref[i] = (float)host_get(&out, i);
	size_t worst;
	double err = rel_max_error(out.ref, want, out.elems, &worst);
	cr_log_info("%s on %s: error %.3g relative to the max (tolerance %.3g)", c->name,
		    dev->i->name, err, c->tol);
	cr_assert(err <= c->tol,
		  "case %s on %s: error %.3g relative to the max exceeds %.3g; worst at element "
		  "%zu: %s %.9g, CPU %.9g",
		  c->name, dev->i->name, err, c->tol, worst, dev->i->name, (double)out.ref[worst],
		  (double)want[worst]);

	for (uint32_t j = 0; j <= MAX_IN; j++)
		if (mem[j])
			dev->i->free(dev, mem[j]);
	for (uint32_t j = 0; j < c->n_in; j++)
		host_free(&in[j]);
	host_free(&out);
	free(want);
	return err;
}

static struct swarm_device *cpu;

static void cpu_setup(void)
{
	int rc = swarm_device_cpu_create(1, &cpu);
	cr_assert_eq(rc, 0, "swarm_device_cpu_create: %d", rc);
}

static void cpu_teardown(void)
{
	if (cpu)
		cpu->i->destroy(cpu);
	cpu = NULL;
}

/* Case name on device d (the test's own device, opened or skipped). */
static void run_named_on(const struct dev_desc *d, const char *name)
{
	const struct bcase *c = case_named(name);
	struct swarm_device *dev = open_or_skip(d);
	run_case_on(dev, cpu, c);
	dev->i->destroy(dev);
}

/* ---- every case on CUDA GPU 0 --------------------------------------------------------------- */

static const struct dev_desc cuda_dev = { "cuda", create_cuda };

TestSuite(kernels_backend_ops_cuda, .init = cpu_setup, .fini = cpu_teardown, .timeout = 120);

/* One test per case, so that each is reported (and skipped) on its own. */
/* clang-format off */
#define CASE_TESTS(X) \
	X(identity) \
	X(linear) \
	X(linear_bias) \
	X(linear_bias_relu) \
	X(linear_bias_gelu) \
	X(linear_bias_sigmoid) \
	X(linear_bias_tanh) \
	X(linear_relu) \
	X(linear_3d_bias) \
	X(matmul) \
	X(matmul_batched) \
	X(add) \
	X(add_broadcast_row) \
	X(add_broadcast_matrix) \
	X(mul) \
	X(mul_broadcast_row) \
	X(relu) \
	X(gelu) \
	X(sigmoid) \
	X(tanh) \
	X(softmax) \
	X(layernorm) \
	X(embedding_i32) \
	X(embedding_i64) \
	X(embedding_bag_sum_i64) \
	X(embedding_bag_mean_i32) \
	X(concat) \
	X(concat_3d) \
	X(attention) \
	X(attention_mask) \
	X(mean_pool) \
	X(l2norm) \
	X(linear_bias_gelu_f16) \
	X(linear_bias_bf16) \
	X(matmul_batched_f16) \
	X(matmul_bf16) \
	X(attention_mask_f16) \
	X(attention_bf16) \
	X(concat_channels) \
	X(add_channels) \
	X(sub_channels) \
	X(mul_channels) \
	X(div_channels) \
	X(max_channels) \
	X(min_channels) \
	X(prelu_channels) \
	X(mul_both_broadcast) \
	X(pow) \
	X(erf) \
	X(exp) \
	X(log) \
	X(sqrt) \
	X(hardsigmoid) \
	X(hardswish) \
	X(leaky_relu) \
	X(clip) \
	X(conv2d_3x3_pad_relu) \
	X(conv2d_stride2_group2_hardswish) \
	X(conv2d_depthwise_clip) \
	X(conv2d_1x1) \
	X(conv2d_dilated) \
	X(conv_transpose2d_2x2_s2) \
	X(conv_transpose2d_pad_outpad_group) \
	X(max_pool2d) \
	X(max_pool2d_ceil) \
	X(avg_pool2d_pad_excluded) \
	X(avg_pool2d_pad_included_ceil) \
	X(global_avg_pool) \
	X(resize_nearest_asymmetric_floor_x2) \
	X(resize_linear_half_pixel_sizes) \
	X(resize_linear_align_corners_down) \
	X(batchnorm) \
	X(reduce_mean_spatial_keepdims) \
	X(reduce_sum_middle) \
	X(reduce_max_two) \
	X(transpose_nhwc) \
	X(reshape) \
	X(slice_steps) \
	X(gather_axis1) \
	X(pad_constant) \
	X(pad_reflect) \
	X(pad_edge) \
	X(cast_f32_f16)
/* clang-format on */

#define CUDA_TEST(nm) \
	Test(kernels_backend_ops_cuda, nm) { run_named_on(&cuda_dev, #nm); }
CASE_TESTS(CUDA_TEST)

#define COUNT_ONE(nm) +1
#define N_CASE_TESTS (0 CASE_TESTS(COUNT_ONE))

/* An id out of range is found on the device: run checks what it can on the host, the node
 * writes nothing, and synchronize (or run, on a synchronous device) returns -EINVAL. */
Test(kernels_backend_ops_cuda, embedding_id_out_of_range_is_einval_at_synchronize)
{
	struct swarm_device *dev = open_or_skip(&cuda_dev);
	const struct bcase *c = case_named("embedding_i64");
	struct host_tensor in[MAX_IN], out;
	make_inputs(c, in);
	((int64_t *)in[1].dev)[3] = 50; /* the table has 50 rows */
	host_alloc(&out, F32, c->out_ndim, c->out_shape);
	struct swarm_tensor t[2] = { in[0].t, in[1].t }, o = out.t;
	for (int j = 0; j < 2; j++) {
		t[j].data = dev->i->alloc(dev, in[j].bytes);
		cr_assert_not_null(t[j].data);
		cr_assert_eq(dev->i->upload(dev, t[j].data, in[j].dev, in[j].bytes), 0);
	}
	o.data = dev->i->alloc(dev, out.bytes);
	cr_assert_not_null(o.data);
	memset(out.dev, 0x5a, out.bytes);
	cr_assert_eq(dev->i->upload(dev, o.data, out.dev, out.bytes), 0);
	struct swarm_node n = make_node(c, t, &o);
	int rc = dev->i->run(dev, &n);
	int sync = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	cr_assert(rc == -EINVAL || (rc == 0 && sync == -EINVAL),
		  "id 50 in a table of 50 rows: run %d, synchronize %d; want -EINVAL from one", rc,
		  sync);
	/* The error is reported once: the device is usable again. */
	sync = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	cr_assert_eq(sync, 0, "a second synchronize still reports %d", sync);
	memset(out.dev, 0, out.bytes);
	cr_assert_eq(dev->i->download(dev, out.dev, o.data, out.bytes), 0);
	if (dev->i->synchronize)
		cr_assert_eq(dev->i->synchronize(dev), 0);
	const unsigned char *b = out.dev;
	for (size_t i = 0; i < out.bytes; i++)
		cr_assert_eq(b[i], 0x5a, "the refused node wrote byte %zu of its output", i);
	dev->i->free(dev, t[0].data);
	dev->i->free(dev, t[1].data);
	dev->i->free(dev, o.data);
	host_free(&in[0]);
	host_free(&in[1]);
	host_free(&out);
	dev->i->destroy(dev);
}

/* ---- what runs everywhere ---------------------------------------------------------------------
 */

TestSuite(kernels_backend_ops, .init = cpu_setup, .fini = cpu_teardown);

/* Every op has a case; linear with and without bias and with each fused activation; matmul
 * batched; add and mul broadcast; embedding with i32 and i64 ids; embedding_bag in both
 * modes with an empty bag; attention with and without a mask; f16 and bf16 for linear,
 * matmul and attention; and a device test for every case of the table. */
Test(kernels_backend_ops, table_covers_every_op_and_variant)
{
	bool op[SWARM_OP_COUNT] = { 0 }, act[SWARM_OP_COUNT] = { 0 };
	bool lin_nobias = false, lin_bias = false, mm_batched = false, add_bc = false,
	     mul_bc = false, ids32 = false, ids64 = false, bag_sum = false, bag_mean = false,
	     empty_bag = false, attn_mask = false, attn_nomask = false;
	bool half[SWARM_OP_COUNT][2] = { { 0 } };
	for (size_t i = 0; i < N_CASES; i++) {
		const struct bcase *c = &cases[i];
		cr_assert_lt(c->op, SWARM_OP_COUNT, "case %s", c->name);
		op[c->op] = true;
		if (c->dtype != F32) {
			half[c->op][c->dtype == BF16] = true;
			continue;
		}
		if (c->op == SWARM_OP_LINEAR) {
			act[c->p.act] = true;
			lin_nobias |= c->n_in == 2;
			lin_bias |= c->n_in == 3;
		}
		mm_batched |= c->op == SWARM_OP_MATMUL && c->in[0].ndim > 2;
		add_bc |= c->op == SWARM_OP_ADD && c->in[1].ndim < c->in[0].ndim;
		mul_bc |= c->op == SWARM_OP_MUL && c->in[1].ndim < c->in[0].ndim;
		for (uint32_t j = 0; j < c->n_in; j++) {
			ids32 |= c->op == SWARM_OP_EMBEDDING && c->in[j].kind == IN_IDS32;
			ids64 |= c->op == SWARM_OP_EMBEDDING && c->in[j].kind == IN_IDS64;
		}
		if (c->op == SWARM_OP_EMBEDDING_BAG) {
			bag_sum |= c->p.bag_mode == SWARM_BAG_SUM;
			bag_mean |= c->p.bag_mode == SWARM_BAG_MEAN;
			const struct in_desc *offs = &c->in[2];
			int64_t len = c->in[1].shape[0];
			for (int64_t b = 0; b < offs->shape[0]; b++) {
				int64_t end = b + 1 < offs->shape[0] ? offs->values[b + 1] : len;
				empty_bag |= end == offs->values[b];
			}
		}
		attn_mask |= c->op == SWARM_OP_ATTENTION && c->n_in == 4;
		attn_nomask |= c->op == SWARM_OP_ATTENTION && c->n_in == 3;
	}
	for (uint32_t o = 0; o < SWARM_OP_COUNT; o++)
		cr_expect(op[o], "no case for op %s", swarm_op_name(o));
	const uint32_t acts[] = { SWARM_OP_IDENTITY, SWARM_OP_RELU, SWARM_OP_GELU, SWARM_OP_SIGMOID,
				  SWARM_OP_TANH };
	for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
		cr_expect(act[acts[a]], "no f32 linear case with act %s", swarm_op_name(acts[a]));
	cr_expect(lin_nobias && lin_bias, "linear without bias %d, with bias %d", lin_nobias,
		  lin_bias);
	cr_expect(mm_batched, "no batched matmul");
	cr_expect(add_bc && mul_bc, "broadcast add %d, mul %d", add_bc, mul_bc);
	cr_expect(ids32 && ids64, "embedding with i32 ids %d, i64 ids %d", ids32, ids64);
	cr_expect(bag_sum && bag_mean && empty_bag, "embedding_bag sum %d, mean %d, empty bag %d",
		  bag_sum, bag_mean, empty_bag);
	cr_expect(attn_mask && attn_nomask, "attention with mask %d, without %d", attn_mask,
		  attn_nomask);
	const uint32_t gemm[] = { SWARM_OP_LINEAR, SWARM_OP_MATMUL, SWARM_OP_ATTENTION };
	for (size_t g = 0; g < 3; g++)
		cr_expect(half[gemm[g]][0] && half[gemm[g]][1], "%s: f16 case %d, bf16 case %d",
			  swarm_op_name(gemm[g]), half[gemm[g]][0], half[gemm[g]][1]);
	cr_expect_eq((size_t)N_CASE_TESTS, N_CASES, "%zu device tests for %zu cases",
		     (size_t)N_CASE_TESTS, N_CASES);
	for (size_t i = 0; i < N_CASES; i++)
		for (size_t k = 0; k < i; k++)
			cr_expect(strcmp(cases[i].name, cases[k].name) != 0, "case %s twice",
				  cases[i].name);
#define CHECK_NAMED(nm) case_named(#nm);
	CASE_TESTS(CHECK_NAMED)
}

/* The CPU takes every f32 case and refuses every f16 and bf16 one (they are CUDA's). */
Test(kernels_backend_ops, cpu_supports_op_agrees_with_the_table)
{
	for (size_t i = 0; i < N_CASES; i++) {
		const struct bcase *c = &cases[i];
		struct host_tensor in[MAX_IN], out;
		make_inputs(c, in);
		host_alloc(&out, c->out_dtype ? c->out_dtype : c->dtype, c->out_ndim, c->out_shape);
		struct swarm_tensor t[MAX_IN], o = out.t;
		for (uint32_t j = 0; j < c->n_in; j++) {
			t[j] = in[j].t;
			t[j].data = in[j].dev;
		}
		o.data = out.dev;
		struct swarm_node n = make_node(c, t, &o);
		int says = cpu->i->supports_op(cpu, &n);
		cr_expect_eq(says, c->dtype == F32, "cpu supports_op(%s, %s) = %d", c->name,
			     swarm_dtype_name(c->dtype), says);
		for (uint32_t j = 0; j < c->n_in; j++)
			host_free(&in[j]);
		host_free(&out);
	}
}

/* The harness itself: the CPU as the device under test, through the same copies, matches
 * the CPU reference exactly on every f32 case. */
Test(kernels_backend_ops, harness_cpu_against_cpu_is_exact)
{
	for (size_t i = 0; i < N_CASES; i++) {
		if (cases[i].dtype != F32)
			continue;
		double err = run_case_on(cpu, cpu, &cases[i]);
		/* a cast's output is rounded to its dtype: the reference is the f32 value */
		if (cases[i].out_dtype)
			cr_expect(err <= cases[i].tol, "case %s: %.3g", cases[i].name, err);
		else
			cr_expect_eq(err, 0.0, "case %s: the CPU differs from itself by %.3g",
				     cases[i].name, err);
	}
}

/* ---- the f16/bf16 path of the harness, without a GPU ---------------------------------------- */

/* A device that runs f16 and bf16 nodes the way a careful GPU would at best: inputs widened to
 * f32, the CPU's f32 op, the output rounded to the dtype. Through it the harness's half
 * conversions and comparisons run here, and each case's error is the output rounding alone. */
static int half_supports(struct swarm_device *d, const struct swarm_node *n)
{
	(void)d;
	(void)n;
	return 1;
}

static float *widen(const struct swarm_tensor *t)
{
	int64_t n = swarm_tensor_elems(t);
	float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
	cr_assert_not_null(f);
	for (int64_t i = 0; i < n; i++) {
		uint16_t h = ((const uint16_t *)t->data)[i];
		f[i] = t->dtype == F16 ? f16_to_f32(h) : bf16_to_f32(h);
	}
	return f;
}

static int half_run(struct swarm_device *d, const struct swarm_node *n)
{
	(void)d;
	struct swarm_tensor in[SWARM_NODE_MAX_INPUTS], out = *n->out;
	float *wide[SWARM_NODE_MAX_INPUTS + 1] = { 0 };
	struct swarm_node w = *n;
	for (uint32_t j = 0; j < n->n_in; j++) {
		in[j] = *n->in[j];
		if (in[j].dtype == F16 || in[j].dtype == BF16) {
			in[j].data = wide[j] = widen(n->in[j]);
			in[j].dtype = F32;
		}
		w.in[j] = &in[j];
	}
	int64_t elems = swarm_tensor_elems(&out);
	out.dtype = F32;
	out.data = wide[SWARM_NODE_MAX_INPUTS] = malloc((size_t)elems * sizeof(float));
	cr_assert_not_null(out.data);
	w.out = &out;
	int rc = cpu->i->run(cpu, &w);
	for (int64_t i = 0; !rc && i < elems; i++) {
		float f = ((float *)out.data)[i];
		((uint16_t *)n->out->data)[i] = n->out->dtype == F16  ? f32_to_f16(f) :
						n->out->dtype == BF16 ? f32_to_bf16(f) :
									(uint16_t)0;
		if (n->out->dtype == F32)
			((float *)n->out->data)[i] = f;
	}
	for (uint32_t j = 0; j <= SWARM_NODE_MAX_INPUTS; j++)
		free(wide[j]);
	return rc;
}

static void *half_alloc(struct swarm_device *d, size_t n)
{
	(void)d;
	return cpu->i->alloc(cpu, n);
}

static void half_free(struct swarm_device *d, void *p)
{
	(void)d;
	cpu->i->free(cpu, p);
}

static int half_copy(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	(void)d;
	memcpy(dst, src, n);
	return 0;
}

static const struct swarm_device_i half_i = {
	.name = "cpu-widening",
	.alloc = half_alloc,
	.free = half_free,
	.upload = half_copy,
	.download = half_copy,
	.supports_op = half_supports,
	.run = half_run,
	.host_memory = 1,
};

/* Every f16 and bf16 case through the widening device: its error is the output's rounding to
 * the dtype, at most u relative to the max, and the case's tolerance covers it. */
Test(kernels_backend_ops, harness_half_cases_through_a_widening_device)
{
	struct swarm_device half = { .i = &half_i };
	int n = 0;
	for (size_t i = 0; i < N_CASES; i++) {
		const struct bcase *c = &cases[i];
		if (c->dtype == F32)
			continue;
		double u = c->dtype == F16 ? U_F16 : U_BF16;
		double err = run_case_on(&half, cpu, c);
		cr_expect_leq(err, u, "case %s: error %.3g beyond the output rounding %.3g",
			      c->name, err, u);
		cr_expect_gt(err, 0.0,
			     "case %s: no rounding error at all: were the outputs "
			     "compared in f32?",
			     c->name);
		n++;
	}
	cr_expect_eq(n, 6, "%d f16 and bf16 cases", n);
}

/* Inputs are never zero, and ids stay inside their table. */
Test(kernels_backend_ops, inputs_are_nonzero_and_in_range)
{
	for (size_t i = 0; i < N_CASES; i++) {
		const struct bcase *c = &cases[i];
		struct host_tensor in[MAX_IN];
		make_inputs(c, in);
		for (uint32_t j = 0; j < c->n_in; j++) {
			for (size_t k = 0; k < in[j].elems; k++) {
				if (c->in[j].kind == IN_FLOAT)
					cr_assert_neq(in[j].ref[k], 0.0f,
						      "case %s: input %u[%zu] is 0", c->name, j, k);
				if (c->in[j].kind == IN_IDS32 || c->in[j].kind == IN_IDS64)
					cr_assert(in[j].ref[k] >= 0 &&
							  in[j].ref[k] < c->in[j].vocab,
						  "case %s: id %g outside [0, %lld)", c->name,
						  (double)in[j].ref[k], (long long)c->in[j].vocab);
			}
			host_free(&in[j]);
		}
	}
}

/* The helpers round to nearest even, at ties, at the top of the range and below the
 * normals, and every f16 and bf16 value survives the trip through f32. */
Test(kernels_backend_ops, f16_bf16_conversions_round_to_nearest_even)
{
	const struct {
		float f;
		uint16_t h;
	} f16[] = {
		{ 1.0f, 0x3c00 },
		{ -2.0f, 0xc000 },
		{ 65504.0f, 0x7bff },
		{ 65519.0f, 0x7bff },
		{ 65520.0f, 0x7c00 }, /* the tie above the max: to even, infinity */
		{ 1e6f, 0x7c00 },
		{ 1.0f + 0x1p-11f, 0x3c00 }, /* tie: to even (down) */
		{ 1.0f + 0x3p-11f, 0x3c02 }, /* tie: to even (up) */
		{ 1.0f + 0x1p-11f + 0x1p-20f, 0x3c01 },
		{ 0x1p-14f, 0x0400 }, /* the least normal */
		{ 0x1p-24f, 0x0001 }, /* the least subnormal */
		{ 0x1p-25f, 0x0000 }, /* tie: to even, zero */
		{ 0x3p-25f, 0x0002 }, /* tie: to even, 2 */
		{ -0.0f, 0x8000 },
	};
	for (size_t i = 0; i < sizeof f16 / sizeof *f16; i++) {
		uint16_t h = f32_to_f16(f16[i].f);
		cr_expect_eq(h, f16[i].h, "f32_to_f16(%a) = 0x%04x, want 0x%04x", (double)f16[i].f,
			     h, f16[i].h);
	}
	const struct {
		float f;
		uint16_t h;
	} bf16[] = {
		{ 1.0f, 0x3f80 },
		{ -3.0f, 0xc040 },
		{ 1.0f + 0x1p-8f, 0x3f80 }, /* tie: to even (down) */
		{ 1.0f + 0x3p-8f, 0x3f82 }, /* tie: to even (up) */
		{ 1.0f + 0x1p-8f + 0x1p-20f, 0x3f81 },
		{ 0x1.fffffep127f, 0x7f80 }, /* rounds up to infinity */
	};
	for (size_t i = 0; i < sizeof bf16 / sizeof *bf16; i++) {
		uint16_t h = f32_to_bf16(bf16[i].f);
		cr_expect_eq(h, bf16[i].h, "f32_to_bf16(%a) = 0x%04x, want 0x%04x",
			     (double)bf16[i].f, h, bf16[i].h);
	}
	cr_expect(isnan(f16_to_f32(f32_to_f16(NAN))), "f16 NaN");
	cr_expect(isnan(bf16_to_f32(f32_to_bf16(NAN))), "bf16 NaN");
	for (uint32_t v = 0; v < 0x10000; v++) {
		uint16_t h = (uint16_t)v;
		bool f16_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		bool bf16_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
		if (!f16_nan)
			cr_assert_eq(f32_to_f16(f16_to_f32(h)), h, "f16 0x%04x: %a back to 0x%04x",
				     h, (double)f16_to_f32(h), f32_to_f16(f16_to_f32(h)));
		if (!bf16_nan)
			cr_assert_eq(f32_to_bf16(bf16_to_f32(h)), h, "bf16 0x%04x: back to 0x%04x",
				     h, f32_to_bf16(bf16_to_f32(h)));
	}
	cr_expect_eq(round_to(F16, 1.0f + 0x1p-11f), 1.0f);
}
