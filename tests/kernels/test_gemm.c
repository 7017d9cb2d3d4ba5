/* test_gemm.c: the CPU device's packed GEMM (kernels/cpu/gemm.h) against a float64 reference:
 * every tile height (1 to 3 rows, and past one block of rows), panel tails (N not a multiple
 * of the panel's 32), K of 0, 1, odd and long, row strides wider than the rows, alpha, bias,
 * each fused activation, and both packings (W^T and B). Then LINEAR through the device's prepare:
 * the packed weight gives what the unprepared node gives, and a prepared node whose shape no longer
 * fits its packing is not misread.
 *
 * Tolerance, per element: 2e-5 * sum_k |a_k b_k| + 1e-6 before the activation (the sum may
 * cancel to near 0, so the bound follows the terms), carried through the activation's slope.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/gemm.h"
#include "kernels/device.h"
#include "swarm/swarm.h"

#include "op_test.h"

TestSuite(kernels_gemm, .init = setup, .fini = teardown);

static float *falloc(size_t n)
{
	float *p = aligned_alloc(64, ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63);
	cr_assert_not_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = rnd();
	return p;
}

/* 1: the cases below run swarm_gemm_sum / swarm_gemm_b_sum, a Z [M, N] (ldc) added after the
 * activation */
static int with_sum;

/* One case: C [M, N] (ldc) = alpha A [M, K] (lda) B + bias, act; B given as W [N, K] (ldw) when
 * wt is 1, else as B [K, N] (ldb): packed (0) or read in place by swarm_gemm_b (2). */
static void one_case_t(int64_t M, int64_t N, int64_t K, int64_t pad, float alpha, int with_bias,
		       uint32_t act, int wt, int threads)
{
	const int64_t lda = K + pad, ldc = N + pad, ldw = K + pad, ldb = N + pad;
	float *A = falloc((size_t)(M * lda)), *C = falloc((size_t)(M * ldc));
	float *B = falloc((size_t)(wt == 1 ? N * ldw : K * ldb)), *bias = falloc((size_t)N);
	float *rbias = falloc((size_t)M), *Z = with_sum ? falloc((size_t)(M * ldc)) : NULL;
	const size_t pf = swarm_gemm_packed_floats(K, N);
	cr_assert(pf >= (size_t)(K * N), "packed floats %zu below K*N", pf);
	float *Bp = falloc(pf);
	float *Cold = malloc((size_t)(M * ldc) * sizeof(float));
	memcpy(Cold, C, (size_t)(M * ldc) * sizeof(float));
	if (wt == 1)
		swarm_gemm_pack_wt(Bp, B, N, K, ldw);
	else if (wt == 0)
		swarm_gemm_pack_b(Bp, B, K, N, ldb);
	float *tail = falloc((size_t)K * SWARM_GEMM_NR);
	/* the piecewise-linear activations' parameters: clip [-0.5, 0.7], leaky 0.1, ONNX's
	 * hardsigmoid 0.2 and 0.5 */
	struct swarm_op_params p = { .alpha = act == SWARM_OP_CLIP       ? -0.5f :
					      act == SWARM_OP_LEAKY_RELU ? 0.1f :
									   0.2f,
				     .beta = act == SWARM_OP_CLIP ? 0.7f : 0.5f };
	/* with_bias 1: by column (LINEAR's), 2: by row (a conv's), 3: both */
	if (wt == 2 && Z)
		swarm_gemm_b_sum(M, N, K, alpha, A, lda, B, ldb, tail, C, ldc,
				 with_bias & 1 ? bias : NULL, with_bias & 2 ? rbias : NULL, act, &p,
				 threads, Z);
	else if (wt == 2)
		swarm_gemm_b(M, N, K, alpha, A, lda, B, ldb, tail, C, ldc,
			     with_bias & 1 ? bias : NULL, with_bias & 2 ? rbias : NULL, act, &p,
			     threads);
	else if (Z)
		swarm_gemm_sum(M, N, K, alpha, A, lda, Bp, C, ldc, with_bias & 1 ? bias : NULL,
			       with_bias & 2 ? rbias : NULL, act, &p, threads, Z);
	else
		swarm_gemm(M, N, K, alpha, A, lda, Bp, C, ldc, with_bias & 1 ? bias : NULL,
			   with_bias & 2 ? rbias : NULL, act, &p, threads);
	for (int64_t i = 0; i < M; i++) {
		for (int64_t j = 0; j < N; j++) {
			double s = 0, abs = 0;
			for (int64_t k = 0; k < K; k++) {
				double b = wt == 1 ? B[j * ldw + k] : B[k * ldb + j];
				double t = (double)alpha * A[i * lda + k] * b;
				s += t;
				abs += fabs(t);
			}
			if (with_bias & 1) {
				s += bias[j];
				abs += fabs(bias[j]);
			}
			if (with_bias & 2) {
				s += rbias[i];
				abs += fabs(rbias[i]);
			}
			double want = act_ref_p(s, act, p.alpha, p.beta), tol = 2e-5 * abs + 1e-6;
			if (Z)
				want += Z[i * ldc + j];
			double got = C[i * ldc + j];
			cr_assert(
				fabs(got - want) <= tol,
				"M %ld N %ld K %ld pad %ld alpha %g bias %d act %s %s: C[%ld][%ld] "
				"= %.9g, want %.9g (tol %.3g)",
				(long)M, (long)N, (long)K, (long)pad, alpha, with_bias,
				swarm_op_name(act),
				wt == 1 ? "W^T" :
				wt      ? "B in place" :
					  "B",
				(long)i, (long)j, got, want, tol);
		}
		/* past the row, within its stride: untouched */
		for (int64_t j = N; j < ldc; j++)
			cr_assert(C[i * ldc + j] == Cold[i * ldc + j],
				  "M %ld N %ld K %ld: C[%ld][%ld] past the row was written",
				  (long)M, (long)N, (long)K, (long)i, (long)j);
	}
	free(A);
	free(B);
	free(C);
	free(Cold);
	free(bias);
	free(rbias);
	free(Z);
	free(Bp);
	free(tail);
}

static void one_case(int64_t M, int64_t N, int64_t K, int64_t pad, float alpha, int with_bias,
		     uint32_t act, int wt)
{
	one_case_t(M, N, K, pad, alpha, with_bias, act, wt, 1);
}

Test(kernels_gemm, every_tile_height_and_panel_tail)
{
	const int64_t Ms[] = { 1, 2, 3, 4, 5, 6, 7, 12, 13, 32 };
	const int64_t Ns[] = { 1, 15, 16, 17, 31, 32, 33, 40, 64 };
	const int64_t Ks[] = { 1, 2, 7, 64, 301 };
	for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
		for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
			for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++)
				for (int wt = 1; wt <= 2; wt++)
					one_case(Ms[a], Ns[b], Ks[c], 0, 1.0f, 0, SWARM_OP_IDENTITY,
						 wt);
}

Test(kernels_gemm, strides_alpha_bias_and_activations)
{
	const uint32_t acts[] = { SWARM_OP_IDENTITY,    SWARM_OP_RELU,     SWARM_OP_GELU,
				  SWARM_OP_SIGMOID,     SWARM_OP_CLIP,     SWARM_OP_LEAKY_RELU,
				  SWARM_OP_HARDSIGMOID, SWARM_OP_HARDSWISH };
	for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
		for (int wt = 0; wt <= 2; wt++) {
			one_case(7, 33, 19, 5, 0.5f, 1, acts[a], wt);
			one_case(1, 17, 40, 3, 1.0f, 1, acts[a], wt);
			one_case(13, 35, 21, 2, 1.0f, 2, acts[a], wt);
			one_case(5, 16, 9, 0, 0.5f, 3, acts[a], wt);
			one_case(6, 16, 1, 1, 2.0f, 0, acts[a], wt);
		}
}

Test(kernels_gemm, long_k_spans_several_blocks_of_rows)
{
	/* K of 3000 floats makes a block of rows 16 rows (192 KiB of A): 40 rows are three */
	one_case(40, 20, 3000, 0, 1.0f, 1, SWARM_OP_RELU, 1);
	one_case(40, 20, 3000, 2, 1.0f, 0, SWARM_OP_IDENTITY, 0);
}

/* Over 4 MFLOP the panels split over the threads: every column still written once, right */
Test(kernels_gemm, threads_split_the_panels)
{
	for (int t = 2; t <= 5; t += 3) {
		one_case_t(64, 100, 400, 3, 1.0f, 3, SWARM_OP_GELU, 1, t);
		one_case_t(40, 33, 3000, 0, 1.0f, 1, SWARM_OP_RELU, 0, t); /* three blocks of rows
									    */
		one_case_t(7, 16, 20000, 0, 1.0f, 0, SWARM_OP_IDENTITY, 1, t); /* one panel */
		/* in place, the part panel (packed apart) at the last thread's end */
		one_case_t(24, 150, 300, 7, 1.0f, 2, SWARM_OP_RELU, 2, t);
	}
}

Test(kernels_gemm, zero_k_gives_bias_through_activation)
{
	one_case(3, 18, 0, 0, 1.0f, 1, SWARM_OP_SIGMOID, 1);
	one_case(4, 18, 0, 0, 1.0f, 3, SWARM_OP_RELU, 1);
	one_case(3, 18, 0, 0, 1.0f, 0, SWARM_OP_IDENTITY, 0);
	one_case(3, 18, 0, 0, 1.0f, 2, SWARM_OP_RELU, 2);
}

/* A fused ADD's Z, added after the activation: in registers (relu, GELU), after the act on
 * the stored rows (sigmoid), at a part panel's end, split over threads, and with no K. */
Test(kernels_gemm, sum_added_after_the_activation)
{
	const uint32_t acts[] = { SWARM_OP_IDENTITY, SWARM_OP_RELU, SWARM_OP_GELU,
				  SWARM_OP_SIGMOID };
	with_sum = 1;
	for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
		for (int wt = 0; wt <= 2; wt++) {
			one_case(7, 33, 19, 5, 0.5f, 1, acts[a], wt);
			one_case(13, 35, 21, 2, 1.0f, 2, acts[a], wt);
			one_case(1, 17, 40, 3, 1.0f, 1, acts[a], wt);
			one_case_t(64, 100, 400, 3, 1.0f, 2, acts[a], wt, 2); /* split */
			one_case(3, 18, 0, 0, 1.0f, 1, acts[a], wt);
		}
	with_sum = 0;
}

Test(kernels_gemm, packed_size_refuses_overflow)
{
	cr_assert_eq(swarm_gemm_packed_floats(-1, 4), 0);
	cr_assert_eq(swarm_gemm_packed_floats(INT64_MAX / 2, INT64_MAX / 2), 0);
	cr_assert_eq(swarm_gemm_packed_floats(3, 17), 3 * 32);
	cr_assert_eq(swarm_gemm_packed_floats(0, 5), 0);
}

/* LINEAR as a graph runs it: prepared once, then run; against the same node unprepared. */
Test(kernels_gemm, prepared_linear_matches_unprepared)
{
	cr_assert_not_null(dev->i->prepare, "the CPU device prepares LINEAR's weight");
	const int64_t shapes[][3] = { { 1, 13, 512 }, { 32, 384, 384 }, { 5, 17, 3 } };
	for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
		const int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
		struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, (int)M, (int)K);
		struct swarm_tensor w = tens(SWARM_DTYPE_F32, 2, (int)N, (int)K);
		struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, (int)N);
		struct swarm_tensor y1 = tens(SWARM_DTYPE_F32, 2, (int)M, (int)N);
		struct swarm_tensor y2 = tens(SWARM_DTYPE_F32, 2, (int)M, (int)N);
		struct swarm_node n = NODE(SWARM_OP_LINEAR, &y1, &x, &w, &b);
		n.p.act = SWARM_OP_GELU;
		run_ok(&n, "unprepared linear");
		void *prep = NULL;
		cr_assert_eq(dev->i->prepare(dev, &n, 1u << 1, &prep), 0);
		cr_assert_not_null(prep, "a constant f32 weight is packed");
		n.prep = prep;
		n.out = &y2;
		run_ok(&n, "prepared linear");
		cr_assert_eq(memcmp(F(&y1), F(&y2), (size_t)(M * N) * sizeof(float)), 0,
			     "%ldx%ldx%ld: prepared and unprepared differ", (long)M, (long)K,
			     (long)N);
		/* the weight is not constant: nothing prepared */
		void *none = (void *)1;
		cr_assert_eq(dev->i->prepare(dev, &n, 1u << 0, &none), 0);
		cr_assert_null(none);
		dev->i->release(dev, prep);
	}
}

Test(kernels_gemm, prepared_weight_of_another_shape_is_not_used)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 4, 8);
	struct swarm_tensor w = tens(SWARM_DTYPE_F32, 2, 16, 8);
	struct swarm_tensor w2 = tens(SWARM_DTYPE_F32, 2, 16, 8);
	struct swarm_tensor y1 = tens(SWARM_DTYPE_F32, 2, 4, 16);
	struct swarm_tensor y2 = tens(SWARM_DTYPE_F32, 2, 4, 16);
	struct swarm_node n = NODE(SWARM_OP_LINEAR, &y1, &x, &w2);
	void *prep = NULL;
	/* a packing of w [16, 8] seen by a node whose weight is now [8, 8]: refused, not read */
	struct swarm_node pn = NODE(SWARM_OP_LINEAR, &y1, &x, &w);
	cr_assert_eq(dev->i->prepare(dev, &pn, 2u, &prep), 0);
	w2.shape[0] = 8;
	y2.shape[1] = 8;
	y1.shape[1] = 8;
	run_ok(&n, "unprepared");
	n.prep = prep;
	n.out = &y2;
	run_ok(&n, "with a packing of another shape");
	cr_assert_eq(memcmp(F(&y1), F(&y2), 4 * 8 * sizeof(float)), 0);
	dev->i->release(dev, prep);
}

/* Packings share slabs of huge pages, a large one gets its own: released in any order, the
 * others keep their bytes, and a slab's space is not handed out twice. */
Test(kernels_gemm, packings_released_in_any_order_keep_the_others_intact)
{
	enum {
		P = 6
	};
	/* the fourth is over half a slab (5000 x 1100 floats, 22 MB): a slab of its own */
	const int64_t dims[P][2] = { { 300, 40 },    { 17, 9 },  { 600, 700 },
				     { 5000, 1100 }, { 64, 64 }, { 1, 1 } };
	struct swarm_tensor x[P], w[P], y1[P], y2[P];
	struct swarm_node n[P];
	void *prep[P] = { 0 };
	for (int i = 0; i < P; i++) {
		const int N = (int)dims[i][0], K = (int)dims[i][1];
		x[i] = tens(SWARM_DTYPE_F32, 2, 3, K);
		w[i] = tens(SWARM_DTYPE_F32, 2, N, K);
		y1[i] = tens(SWARM_DTYPE_F32, 2, 3, N);
		y2[i] = tens(SWARM_DTYPE_F32, 2, 3, N);
		n[i] = NODE(SWARM_OP_LINEAR, &y1[i], &x[i], &w[i]);
		run_ok(&n[i], "unprepared");
		cr_assert_eq(dev->i->prepare(dev, &n[i], 2u, &prep[i]), 0);
	}
	/* release every other one, prepare them again (into freed or new space), then check all */
	for (int i = 0; i < P; i += 2) {
		dev->i->release(dev, prep[i]);
		cr_assert_eq(dev->i->prepare(dev, &n[i], 2u, &prep[i]), 0);
	}
	for (int i = 0; i < P; i++) {
		n[i].prep = prep[i];
		n[i].out = &y2[i];
		run_ok(&n[i], "prepared");
		cr_assert_eq(memcmp(F(&y1[i]), F(&y2[i]), (size_t)(3 * dims[i][0]) * sizeof(float)),
			     0, "packing %d changed under the others", i);
	}
	for (int i = P - 1; i >= 0; i--)
		dev->i->release(dev, prep[i]);
}

/* CONV_TRANSPOSE2D's weight is transposed once by prepare: the same output as per run. */
Test(kernels_gemm, prepared_conv_transpose_matches_unprepared)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 4, 2, 4, 5, 6);
	struct swarm_tensor w = tens(SWARM_DTYPE_F32, 4, 4, 3, 2, 2); /* C 4, Mg 3, 2x2 */
	struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, 6);
	struct swarm_tensor y1 = tens(SWARM_DTYPE_F32, 4, 2, 6, 10, 12);
	struct swarm_tensor y2 = tens(SWARM_DTYPE_F32, 4, 2, 6, 10, 12);
	struct swarm_node n = NODE(SWARM_OP_CONV_TRANSPOSE2D, &y1, &x, &w, &b);
	n.p.group = 2;
	n.p.stride[0] = n.p.stride[1] = 2;
	n.p.n_pads = 4;
	n.p.act = SWARM_OP_RELU;
	run_ok(&n, "unprepared conv_transpose2d");
	void *prep = NULL;
	cr_assert_eq(dev->i->prepare(dev, &n, 1u << 1, &prep), 0);
	cr_assert_not_null(prep, "a constant f32 weight is transposed");
	n.prep = prep;
	n.out = &y2;
	run_ok(&n, "prepared conv_transpose2d");
	cr_assert_eq(memcmp(F(&y1), F(&y2), 2 * 6 * 10 * 12 * sizeof(float)), 0,
		     "prepared and unprepared conv_transpose2d differ");
	dev->i->release(dev, prep);
}

/* A 1x1 conv of a 1x1 image (a squeeze-excite block's) is prepared as a LINEAR of its batch's
 * rows; one of a larger image is not (it stays a GEMM over the image) */
Test(kernels_gemm, prepared_pointwise_conv_of_one_pixel_is_a_linear)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 4, 3, 20, 1, 1);
	struct swarm_tensor w = tens(SWARM_DTYPE_F32, 4, 37, 20, 1, 1);
	struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, 37);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 4, 3, 37, 1, 1);
	struct swarm_node n = NODE(SWARM_OP_CONV2D, &y, &x, &w, &b);
	n.p.n_pads = 4;
	n.p.act = SWARM_OP_SIGMOID;
	void *prep = NULL;
	cr_assert_eq(dev->i->prepare(dev, &n, 1u << 1, &prep), 0);
	cr_assert_not_null(prep, "a 1x1 conv of a 1x1 image is prepared");
	n.prep = prep;
	run_ok(&n, "prepared pointwise conv2d");
	for (int64_t r = 0; r < 3; r++)
		for (int64_t m = 0; m < 37; m++) {
			double s = F(&b)[m], abs = fabs(s);
			for (int64_t c = 0; c < 20; c++) {
				double t = (double)F(&w)[m * 20 + c] * F(&x)[r * 20 + c];
				s += t;
				abs += fabs(t);
			}
			double want = act_ref_p(s, SWARM_OP_SIGMOID, 0, 0);
			cr_assert(fabs(F(&y)[r * 37 + m] - want) <= 2e-5 * abs + 1e-6,
				  "row %ld channel %ld: %.9g, want %.9g", (long)r, (long)m,
				  F(&y)[r * 37 + m], want);
		}
	dev->i->release(dev, prep);
	struct swarm_tensor x2 = tens(SWARM_DTYPE_F32, 4, 1, 20, 2, 1);
	struct swarm_tensor y2 = tens(SWARM_DTYPE_F32, 4, 1, 37, 2, 1);
	struct swarm_node n2 = NODE(SWARM_OP_CONV2D, &y2, &x2, &w, &b);
	prep = NULL;
	cr_assert_eq(dev->i->prepare(dev, &n2, 1u << 1, &prep), 0);
	cr_assert_null(prep, "a 1x1 conv of a 2x1 image is not prepared");
}

/* A depthwise and a direct conv prepared at graph build (their weights in the layouts their
 * kernels read) give the bits of the same convs unprepared, and a prepared weight is not
 * taken by a node of another shape */
static void conv_prepared_case(int64_t C, int64_t M, int64_t k, int32_t group, int32_t stride)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 4, 2, C, 11, 13);
	struct swarm_tensor w = tens(SWARM_DTYPE_F32, 4, M, C / group, k, k);
	struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, M);
	const int64_t oh = (11 + 2 - k) / stride + 1, ow = (13 + 2 - k) / stride + 1;
	struct swarm_tensor y1 = tens(SWARM_DTYPE_F32, 4, 2, M, oh, ow);
	struct swarm_tensor y2 = tens(SWARM_DTYPE_F32, 4, 2, M, oh, ow);
	struct swarm_node n = NODE(SWARM_OP_CONV2D, &y1, &x, &w, &b);
	n.p.group = (uint32_t)group;
	n.p.stride[0] = n.p.stride[1] = stride;
	n.p.n_pads = 4;
	n.p.pads[0] = n.p.pads[1] = n.p.pads[2] = n.p.pads[3] = 1;
	n.p.act = SWARM_OP_RELU;
	run_ok(&n, "unprepared conv2d");
	void *prep = NULL;
	cr_assert_eq(dev->i->prepare(dev, &n, 1u << 1, &prep), 0);
	cr_assert_not_null(prep, "a %lldx%lld conv (group %d) is prepared", (long long)k,
			   (long long)k, group);
	n.prep = prep;
	n.out = &y2;
	run_ok(&n, "prepared conv2d");
	cr_assert_eq(memcmp(F(&y1), F(&y2), (size_t)(2 * M * oh * ow) * sizeof(float)), 0,
		     "prepared and unprepared %lldx%lld conv (group %d) differ", (long long)k,
		     (long long)k, group);
	/* the same packing offered to a conv of half the output channels: not taken */
	struct swarm_tensor w2 = tens(SWARM_DTYPE_F32, 4, M / 2, C / group, k, k);
	struct swarm_tensor b2 = tens(SWARM_DTYPE_F32, 1, M / 2);
	struct swarm_tensor y3 = tens(SWARM_DTYPE_F32, 4, 2, M / 2, oh, ow);
	struct swarm_tensor y4 = tens(SWARM_DTYPE_F32, 4, 2, M / 2, oh, ow);
	struct swarm_tensor xh = x;
	xh.shape[1] = group == 1 ? C : C / 2;
	struct swarm_node m = NODE(SWARM_OP_CONV2D, &y3, &xh, &w2, &b2);
	m.p = n.p;
	m.p.group = group == 1 ? 1u : (uint32_t)(group / 2);
	run_ok(&m, "another conv unprepared");
	m.prep = prep;
	m.out = &y4;
	run_ok(&m, "another conv offered the first's packing");
	cr_assert_eq(memcmp(F(&y3), F(&y4), (size_t)(2 * (M / 2) * oh * ow) * sizeof(float)), 0,
		     "a packing of another shape was used");
	dev->i->release(dev, prep);
}

Test(kernels_gemm, prepared_depthwise_and_direct_convs_match_unprepared)
{
	conv_prepared_case(20, 20, 3, 20, 1); /* depthwise: two whole blocks of 8 and a part */
	conv_prepared_case(16, 16, 5, 16, 2);
	conv_prepared_case(6, 14, 3, 1, 1); /* direct: tiles of 6 channels and a part */
	conv_prepared_case(8, 12, 3, 2, 2); /* direct, two groups */
}
