/* test_ops.c: every op of the CPU device against a float64 reference written here in plain
 * loops, on seeded random inputs (uniform in [-2, 2], never within 0.05 of zero), over several
 * shapes (sizes 1, 3, 17, 129 and leading dims), each with its stated tolerance; then each op's
 * refusals (wrong dtype, shape mismatch, ids or offsets out of range) returning -EINVAL with
 * nothing written to out or past it; and supports_op, op names, alloc and copies.
 *
 * Tolerances (per element, |got - want| <= tol):
 *   identity, embedding, concat    exact
 *   add, mul, relu                 1e-6 * (1 + |want|)
 *   gelu, sigmoid, tanh            1e-6 * (1 + |want|)
 *   softmax                        2e-6 + 1e-5 * |want|
 *   layernorm                      1e-5 * (1 + |want|)
 *   linear, matmul (K <= 256)      2e-5 * sum_k |a_k b_k| + 1e-6 (relative to the terms'
 *                                  magnitude, since the sum itself may cancel to near 0)
 *   embedding_bag, mean_pool       1e-6 * (1 + sum of |terms|)
 *   attention                      2e-5 * (1 + |want|)
 *   l2norm                         1e-6 + 1e-5 * |want|
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device.h"
#include "kernels/op.h"
#include "swarm/swarm.h"

#include "op_test.h"

TestSuite(kernels_ops, .init = setup, .fini = teardown);

/* ---- names, elems, device table ----------------------------------------------------------- */

Test(kernels_ops, op_names_round_trip)
{
	for (uint32_t op = 0; op < SWARM_OP_COUNT; op++) {
		const char *name = swarm_op_name(op);
		cr_assert_not_null(name, "op %u has no name", op);
		cr_assert_eq(swarm_op_from_name(name), (int)op, "%s -> %d, expected %u", name,
			     swarm_op_from_name(name), op);
	}
	cr_assert_str_eq(swarm_op_name(SWARM_OP_EMBEDDING_BAG), "embedding_bag");
	cr_assert_str_eq(swarm_op_name(SWARM_OP_L2NORM), "l2norm");
	cr_assert_null(swarm_op_name(SWARM_OP_COUNT));
	cr_assert_eq(swarm_op_from_name("conv9d"), -1);
	cr_assert_eq(swarm_op_from_name(NULL), -1);
}

Test(kernels_ops, tensor_elems_counts_and_detects_overflow)
{
	struct swarm_tensor t = { .ndim = 0 };
	cr_assert_eq(swarm_tensor_elems(&t), 1);
	t.ndim = 3;
	t.shape[0] = 2, t.shape[1] = 3, t.shape[2] = 129;
	cr_assert_eq(swarm_tensor_elems(&t), 774);
	t.shape[1] = 0;
	cr_assert_eq(swarm_tensor_elems(&t), 0);
	t.shape[0] = INT64_MAX / 2, t.shape[1] = 3, t.shape[2] = 1;
	cr_assert_eq(swarm_tensor_elems(&t), -1);
	t.shape[0] = -1;
	cr_assert_eq(swarm_tensor_elems(&t), -1);
	t.ndim = SWARM_TENSOR_MAX_DIMS + 1;
	cr_assert_eq(swarm_tensor_elems(&t), -1);
}

Test(kernels_ops, cpu_device_alloc_is_aligned_and_copies_round_trip)
{
	cr_assert_str_eq(dev->i->name, "cpu");
	cr_assert_null(dev->i->register_host);
	cr_assert_null(dev->i->unregister_host);
	cr_assert_null(dev->i->synchronize);
	size_t sizes[] = { 0, 1, 3, 17, 129, 4096 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned char src[4096], back[4096];
		for (size_t i = 0; i < sizes[k]; i++)
			src[i] = (unsigned char)rng_next();
		void *p = dev->i->alloc(dev, sizes[k]);
		cr_assert_not_null(p, "alloc(%zu)", sizes[k]);
		cr_assert_eq((uintptr_t)p % 64, 0, "alloc(%zu) gave %p, not 64-byte aligned",
			     sizes[k], p);
		cr_assert_eq(dev->i->upload(dev, p, src, sizes[k]), 0);
		cr_assert_eq(dev->i->download(dev, back, p, sizes[k]), 0);
		cr_assert_eq(memcmp(src, back, sizes[k]), 0, "round trip of %zu bytes", sizes[k]);
		dev->i->free(dev, p);
	}
}

Test(kernels_ops, create_refuses_zero_threads)
{
	struct swarm_device *d = NULL;
	cr_assert_eq(swarm_device_cpu_create(0, &d), -EINVAL);
	cr_assert_eq(swarm_device_cpu_create(1, NULL), -EINVAL);
}

Test(kernels_ops, run_unknown_op_is_enotsup)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 1, 3), y = tens(SWARM_DTYPE_F32, 1, 3);
	struct swarm_node n = NODE(SWARM_OP_COUNT, &y, &x);
	cr_assert_eq(run(&n), -ENOTSUP);
	n.op = 1000;
	cr_assert_eq(run(&n), -ENOTSUP);
}

/* Inputs for a supports_op check of op with float dtype ft: as many as the op takes at least
 * (3 for concat), index inputs i32 or i64 as the op table says. */
static struct swarm_node support_node(uint32_t op, uint32_t ft, struct swarm_tensor *t)
{
	struct swarm_node n = { .op = op, .out = &t[7] };
	const struct swarm_op_info *info = swarm_op_info(op);
	for (int i = 0; i < 8; i++)
		t[i] = (struct swarm_tensor){ .dtype = ft, .ndim = 1, .shape = { 1 } };
	n.p.heads = 1;
	n.p.to = ft;
	n.n_in = info ? info->min_in : 2;
	if (op == SWARM_OP_CONCAT || op == SWARM_OP_LINEAR)
		n.n_in = 3;
	if (op == SWARM_OP_EMBEDDING_BAG || op == SWARM_OP_ATTENTION)
		n.n_in = info->max_in;
	for (uint32_t i = 0; i < n.n_in; i++) {
		if (info && (info->index_in & (1u << i)))
			t[i].dtype = i % 2 ? SWARM_DTYPE_I64 : SWARM_DTYPE_I32;
		n.in[i] = &t[i];
	}
	return n;
}

Test(kernels_ops, supports_every_op_in_f32_and_none_in_f16)
{
	for (uint32_t op = 0; op < SWARM_OP_COUNT; op++) {
		struct swarm_tensor t[8];
		struct swarm_node n = support_node(op, SWARM_DTYPE_F32, t);
		cr_assert_eq(dev->i->supports_op(dev, &n), 1, "supports_op(%s, f32) = 0",
			     swarm_op_name(op));
		/* cast converts between the float dtypes on every device */
		int want = op == SWARM_OP_CAST;
		n = support_node(op, SWARM_DTYPE_F16, t);
		cr_assert_eq(dev->i->supports_op(dev, &n), want, "supports_op(%s, f16) = %d",
			     swarm_op_name(op), !want);
		n = support_node(op, SWARM_DTYPE_BF16, t);
		cr_assert_eq(dev->i->supports_op(dev, &n), want, "supports_op(%s, bf16) = %d",
			     swarm_op_name(op), !want);
	}
	struct swarm_tensor t[8];
	struct swarm_node n = support_node(SWARM_OP_EMBEDDING, SWARM_DTYPE_F32, t);
	t[1].dtype = SWARM_DTYPE_F32;
	cr_assert_eq(dev->i->supports_op(dev, &n), 0, "embedding with f32 ids");
	n = support_node(SWARM_OP_LINEAR, SWARM_DTYPE_F32, t);
	n.p.act = SWARM_OP_SOFTMAX;
	cr_assert_eq(dev->i->supports_op(dev, &n), 0, "linear fusing softmax");
	n = support_node(SWARM_OP_COUNT, SWARM_DTYPE_F32, t);
	cr_assert_eq(dev->i->supports_op(dev, &n), 0, "op out of range");
}

/* ---- identity ------------------------------------------------------------------------------ */

Test(kernels_ops, identity_copies_exactly)
{
	struct swarm_tensor xs[] = {
		tens(SWARM_DTYPE_F32, 0),
		tens(SWARM_DTYPE_F32, 1, 1),
		tens(SWARM_DTYPE_F32, 2, 3, 17),
		tens(SWARM_DTYPE_F32, 3, 2, 3, 129),
	};
	for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
		struct swarm_tensor y = xs[k];
		y = tens(SWARM_DTYPE_F32, 0);
		y.ndim = xs[k].ndim;
		memcpy(y.shape, xs[k].shape, sizeof(y.shape));
		y.data = malloc(tbytes(&y) + GUARD);
		bufs[n_bufs++] = y.data;
		struct swarm_node n = NODE(SWARM_OP_IDENTITY, &y, &xs[k]);
		run_ok(&n, "identity");
		cr_assert_eq(memcmp(y.data, xs[k].data, tbytes(&y)), 0, "identity shape %zu", k);
	}
}

Test(kernels_ops, identity_refuses_bad_inputs)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 3, 16);
	struct swarm_node n = NODE(SWARM_OP_IDENTITY, &y, &x);
	run_refused(&n, "identity shape mismatch");
	struct swarm_tensor xi = tens(SWARM_DTYPE_I32, 2, 3, 16);
	n = NODE(SWARM_OP_IDENTITY, &y, &xi);
	run_refused(&n, "identity i32");
	n = NODE(SWARM_OP_IDENTITY, &y, &xi, &xi);
	run_refused(&n, "identity two inputs");
}

/* ---- linear and matmul --------------------------------------------------------------------- */

Test(kernels_ops, linear_matches_f64_reference)
{
	/* X shape (leading dims, K), N */
	struct {
		int nd, d0, d1, d2, N;
	} cases[] = {
		{ 2, 1, 1, 0, 1 },     { 2, 3, 17, 0, 5 },   { 3, 2, 3, 129, 17 },
		{ 2, 129, 256, 0, 3 }, { 1, 17, 0, 0, 129 }, { 2, 17, 1, 0, 3 },
	};
	uint32_t acts[] = { SWARM_OP_IDENTITY, SWARM_OP_RELU, SWARM_OP_GELU, SWARM_OP_SIGMOID,
			    SWARM_OP_TANH };
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct swarm_tensor x =
			cases[c].nd == 1 ?
				tens(SWARM_DTYPE_F32, 1, cases[c].d0) :
			cases[c].nd == 2 ?
				tens(SWARM_DTYPE_F32, 2, cases[c].d0, cases[c].d1) :
				tens(SWARM_DTYPE_F32, 3, cases[c].d0, cases[c].d1, cases[c].d2);
		int64_t K = x.shape[x.ndim - 1], M = elems(&x) / K, N = cases[c].N;
		struct swarm_tensor w = tens(SWARM_DTYPE_F32, 2, (int)N, (int)K);
		struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, (int)N);
		struct swarm_tensor y = x;
		y = tens(SWARM_DTYPE_F32, 2, (int)M, (int)N);
		y.ndim = x.ndim;
		memcpy(y.shape, x.shape, sizeof(y.shape));
		y.shape[x.ndim - 1] = N;
		double *want = dalloc((size_t)(M * N)), *tol = dalloc((size_t)(M * N));
		for (int with_bias = 0; with_bias < 2; with_bias++) {
			for (size_t a = 0; a < sizeof(acts) / sizeof(acts[0]); a++) {
				for (int64_t i = 0; i < M; i++) {
					for (int64_t j = 0; j < N; j++) {
						double s = with_bias ? F(&b)[j] : 0.0;
						double abs = fabs(s);
						for (int64_t k = 0; k < K; k++) {
							double t = (double)F(&x)[i * K + k] *
								   F(&w)[j * K + k];
							s += t;
							abs += fabs(t);
						}
						want[i * N + j] = act_ref(s, acts[a]);
						tol[i * N + j] = 2e-5 * abs + 1e-6;
					}
				}
				struct swarm_node n =
					with_bias ? NODE(SWARM_OP_LINEAR, &y, &x, &w, &b) :
						    NODE(SWARM_OP_LINEAR, &y, &x, &w);
				n.p.act = acts[a];
				char what[96];
				snprintf(what, sizeof(what), "linear case %zu bias %d act %s", c,
					 with_bias, swarm_op_name(acts[a]));
				run_ok(&n, what);
				check_close(F(&y), want, tol, (size_t)(M * N), 0, 0, what);
			}
		}
	}
}

Test(kernels_ops, linear_refuses_bad_inputs)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17);
	struct swarm_tensor w = tens(SWARM_DTYPE_F32, 2, 5, 17);
	struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, 5);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 3, 5);
	struct swarm_tensor w_bad = tens(SWARM_DTYPE_F32, 2, 5, 16);
	struct swarm_tensor b_bad = tens(SWARM_DTYPE_F32, 1, 4);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 3, 4);
	struct swarm_tensor w16 = tens(SWARM_DTYPE_F16, 2, 5, 17);
	struct swarm_tensor w3 = tens(SWARM_DTYPE_F32, 3, 1, 5, 17);
	struct swarm_node n = NODE(SWARM_OP_LINEAR, &y, &x, &w_bad);
	run_refused(&n, "linear K mismatch");
	n = NODE(SWARM_OP_LINEAR, &y, &x, &w, &b_bad);
	run_refused(&n, "linear bias mismatch");
	n = NODE(SWARM_OP_LINEAR, &y_bad, &x, &w, &b);
	run_refused(&n, "linear out mismatch");
	n = NODE(SWARM_OP_LINEAR, &y, &x, &w16, &b);
	run_refused(&n, "linear f16 weight");
	n = NODE(SWARM_OP_LINEAR, &y, &x, &w3);
	run_refused(&n, "linear 3-d weight");
	n = NODE(SWARM_OP_LINEAR, &y, &x);
	run_refused(&n, "linear one input");
	n = NODE(SWARM_OP_LINEAR, &y, &x, &w, &b);
	n.p.act = SWARM_OP_SOFTMAX;
	run_refused(&n, "linear fusing softmax");
}

Test(kernels_ops, matmul_matches_f64_reference)
{
	/* leading dims l0, l1 (0: absent), M, K, N */
	struct {
		int l0, l1, M, K, N;
	} cases[] = {
		{ 0, 0, 1, 1, 1 },    { 0, 0, 3, 17, 5 },    { 2, 0, 17, 3, 129 },
		{ 2, 3, 17, 129, 4 }, { 0, 0, 129, 256, 1 }, { 3, 0, 1, 17, 3 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct swarm_tensor a, b, y;
		int M = cases[c].M, K = cases[c].K, N = cases[c].N;
		if (cases[c].l1) {
			a = tens(SWARM_DTYPE_F32, 4, cases[c].l0, cases[c].l1, M, K);
			b = tens(SWARM_DTYPE_F32, 4, cases[c].l0, cases[c].l1, K, N);
			y = tens(SWARM_DTYPE_F32, 4, cases[c].l0, cases[c].l1, M, N);
		} else if (cases[c].l0) {
			a = tens(SWARM_DTYPE_F32, 3, cases[c].l0, M, K);
			b = tens(SWARM_DTYPE_F32, 3, cases[c].l0, K, N);
			y = tens(SWARM_DTYPE_F32, 3, cases[c].l0, M, N);
		} else {
			a = tens(SWARM_DTYPE_F32, 2, M, K);
			b = tens(SWARM_DTYPE_F32, 2, K, N);
			y = tens(SWARM_DTYPE_F32, 2, M, N);
		}
		int64_t batch = elems(&a) / ((int64_t)M * K), total = elems(&y);
		double *want = dalloc((size_t)total), *tol = dalloc((size_t)total);
		for (int64_t t = 0; t < batch; t++) {
			const float *pa = F(&a) + t * M * K, *pb = F(&b) + t * K * N;
			for (int i = 0; i < M; i++) {
				for (int j = 0; j < N; j++) {
					double s = 0, abs = 0;
					for (int k = 0; k < K; k++) {
						double v = (double)pa[i * K + k] * pb[k * N + j];
						s += v;
						abs += fabs(v);
					}
					want[t * M * N + i * N + j] = s;
					tol[t * M * N + i * N + j] = 2e-5 * abs + 1e-6;
				}
			}
		}
		struct swarm_node n = NODE(SWARM_OP_MATMUL, &y, &a, &b);
		char what[64];
		snprintf(what, sizeof(what), "matmul case %zu", c);
		run_ok(&n, what);
		check_close(F(&y), want, tol, (size_t)total, 0, 0, what);
	}
}

Test(kernels_ops, matmul_refuses_bad_inputs)
{
	struct swarm_tensor a = tens(SWARM_DTYPE_F32, 3, 2, 3, 17);
	struct swarm_tensor b = tens(SWARM_DTYPE_F32, 3, 2, 17, 5);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 3, 2, 3, 5);
	struct swarm_tensor b_k = tens(SWARM_DTYPE_F32, 3, 2, 16, 5);
	struct swarm_tensor b_lead = tens(SWARM_DTYPE_F32, 3, 3, 17, 5);
	struct swarm_tensor b_2d = tens(SWARM_DTYPE_F32, 2, 17, 5);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 3, 2, 3, 4);
	struct swarm_tensor b_i = tens(SWARM_DTYPE_I32, 3, 2, 17, 5);
	struct swarm_tensor v = tens(SWARM_DTYPE_F32, 1, 17);
	struct swarm_node n = NODE(SWARM_OP_MATMUL, &y, &a, &b_k);
	run_refused(&n, "matmul K mismatch");
	n = NODE(SWARM_OP_MATMUL, &y, &a, &b_lead);
	run_refused(&n, "matmul leading dims differ");
	n = NODE(SWARM_OP_MATMUL, &y, &a, &b_2d);
	run_refused(&n, "matmul ndim differ");
	n = NODE(SWARM_OP_MATMUL, &y_bad, &a, &b);
	run_refused(&n, "matmul out mismatch");
	n = NODE(SWARM_OP_MATMUL, &y, &a, &b_i);
	run_refused(&n, "matmul i32");
	n = NODE(SWARM_OP_MATMUL, &y, &v, &v);
	run_refused(&n, "matmul 1-d");
}

/* ---- add, mul ------------------------------------------------------------------------------ */

static void binary_case(uint32_t op, struct swarm_tensor a, struct swarm_tensor b)
{
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 0);
	y.ndim = a.ndim;
	memcpy(y.shape, a.shape, sizeof(y.shape));
	y.data = malloc(tbytes(&y) + GUARD);
	bufs[n_bufs++] = y.data;
	int64_t ea = elems(&a), eb = elems(&b);
	double *want = dalloc((size_t)ea);
	for (int64_t i = 0; i < ea; i++) {
		double x = F(&a)[i], z = F(&b)[i % eb];
		want[i] = op == SWARM_OP_ADD ? x + z : x * z;
	}
	struct swarm_node n = NODE(op, &y, &a, &b);
	char what[64];
	snprintf(what, sizeof(what), "%s a ndim %u b ndim %u", swarm_op_name(op), a.ndim, b.ndim);
	run_ok(&n, what);
	check_close(F(&y), want, NULL, (size_t)ea, 1e-6, 1e-6, what);
}

static void binary_cases(uint32_t op)
{
	binary_case(op, tens(SWARM_DTYPE_F32, 1, 1), tens(SWARM_DTYPE_F32, 0));
	binary_case(op, tens(SWARM_DTYPE_F32, 2, 3, 17), tens(SWARM_DTYPE_F32, 1, 17));
	binary_case(op, tens(SWARM_DTYPE_F32, 2, 3, 17), tens(SWARM_DTYPE_F32, 2, 3, 17));
	binary_case(op, tens(SWARM_DTYPE_F32, 3, 2, 3, 129), tens(SWARM_DTYPE_F32, 2, 3, 129));
	binary_case(op, tens(SWARM_DTYPE_F32, 1, 129), tens(SWARM_DTYPE_F32, 0));
	binary_case(op, tens(SWARM_DTYPE_F32, 4, 2, 1, 3, 17), tens(SWARM_DTYPE_F32, 2, 3, 17));
}

Test(kernels_ops, add_matches_f64_reference) { binary_cases(SWARM_OP_ADD); }
Test(kernels_ops, mul_matches_f64_reference) { binary_cases(SWARM_OP_MUL); }

Test(kernels_ops, add_and_mul_run_in_place)
{
	struct swarm_tensor a = tens(SWARM_DTYPE_F32, 2, 3, 17), b = tens(SWARM_DTYPE_F32, 1, 17);
	double want[51];
	for (int i = 0; i < 51; i++)
		want[i] = (double)F(&a)[i] + F(&b)[i % 17];
	struct swarm_node n = NODE(SWARM_OP_ADD, &a, &a, &b);
	cr_assert_eq(run(&n), 0);
	check_close(F(&a), want, NULL, 51, 1e-6, 1e-6, "add in place");
}

static void binary_refusals(uint32_t op)
{
	struct swarm_tensor a = tens(SWARM_DTYPE_F32, 2, 3, 17);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 3, 17);
	struct swarm_tensor b_prefix = tens(SWARM_DTYPE_F32, 1, 3);
	struct swarm_tensor b_big = tens(SWARM_DTYPE_F32, 3, 1, 3, 17);
	struct swarm_tensor b_i = tens(SWARM_DTYPE_I32, 1, 17);
	struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, 17);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 17, 3);
	struct swarm_node n = NODE(op, &y, &a, &b_prefix);
	run_refused(&n, "b not a suffix");
	n = NODE(op, &y, &a, &b_big);
	run_refused(&n, "b longer than a");
	n = NODE(op, &y, &a, &b_i);
	run_refused(&n, "b i32");
	n = NODE(op, &y_bad, &a, &b);
	run_refused(&n, "out mismatch");
	n = NODE(op, &y, &a);
	run_refused(&n, "one input");
}

Test(kernels_ops, add_refuses_bad_inputs) { binary_refusals(SWARM_OP_ADD); }
Test(kernels_ops, mul_refuses_bad_inputs) { binary_refusals(SWARM_OP_MUL); }

/* ---- unary --------------------------------------------------------------------------------- */

static void unary_cases(uint32_t op)
{
	struct swarm_tensor xs[] = {
		tens(SWARM_DTYPE_F32, 1, 1),
		tens(SWARM_DTYPE_F32, 1, 3),
		tens(SWARM_DTYPE_F32, 2, 17, 129),
		tens(SWARM_DTYPE_F32, 3, 2, 3, 17),
	};
	/* Large magnitudes too: saturation of sigmoid and tanh, gelu's tails. */
	F(&xs[2])[0] = 30.0f, F(&xs[2])[1] = -30.0f, F(&xs[2])[2] = 100.0f;
	F(&xs[2])[3] = -100.0f;
	for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
		struct swarm_tensor y = tens(SWARM_DTYPE_F32, 0);
		y.ndim = xs[k].ndim;
		memcpy(y.shape, xs[k].shape, sizeof(y.shape));
		y.data = malloc(tbytes(&y) + GUARD);
		bufs[n_bufs++] = y.data;
		int64_t e = elems(&y);
		double *want = dalloc((size_t)e);
		for (int64_t i = 0; i < e; i++)
			want[i] = act_ref(F(&xs[k])[i], op);
		struct swarm_node n = NODE(op, &y, &xs[k]);
		char what[64];
		snprintf(what, sizeof(what), "%s shape %zu", swarm_op_name(op), k);
		run_ok(&n, what);
		check_close(F(&y), want, NULL, (size_t)e, 1e-6, 1e-6, what);
	}
	/* wrong dtype and shape */
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17),
			    y = tens(SWARM_DTYPE_F32, 2, 17, 3);
	struct swarm_tensor xi = tens(SWARM_DTYPE_I64, 2, 17, 3);
	struct swarm_node n = NODE(op, &y, &x);
	run_refused(&n, "unary shape mismatch");
	n = NODE(op, &y, &xi);
	run_refused(&n, "unary i64");
}

Test(kernels_ops, relu_matches_f64_reference) { unary_cases(SWARM_OP_RELU); }
Test(kernels_ops, gelu_matches_f64_reference) { unary_cases(SWARM_OP_GELU); }
Test(kernels_ops, sigmoid_matches_f64_reference) { unary_cases(SWARM_OP_SIGMOID); }
Test(kernels_ops, tanh_matches_f64_reference) { unary_cases(SWARM_OP_TANH); }

/* ---- softmax, layernorm, l2norm (row ops) -------------------------------------------------- */

static struct swarm_tensor like(const struct swarm_tensor *x)
{
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 0);
	y.ndim = x->ndim;
	memcpy(y.shape, x->shape, sizeof(y.shape));
	y.data = malloc(tbytes(&y) + GUARD);
	bufs[n_bufs++] = y.data;
	return y;
}

static void softmax_ref(const float *x, double *o, int64_t D)
{
	double mx = x[0], sum = 0;
	for (int64_t i = 1; i < D; i++)
		mx = x[i] > mx ? x[i] : mx;
	for (int64_t i = 0; i < D; i++)
		sum += (o[i] = exp(x[i] - mx));
	for (int64_t i = 0; i < D; i++)
		o[i] /= sum;
}

Test(kernels_ops, softmax_matches_f64_reference)
{
	struct swarm_tensor xs[] = {
		tens(SWARM_DTYPE_F32, 1, 1),
		tens(SWARM_DTYPE_F32, 2, 3, 17),
		tens(SWARM_DTYPE_F32, 3, 2, 3, 129),
		tens(SWARM_DTYPE_F32, 2, 17, 3),
	};
	for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
		struct swarm_tensor y = like(&xs[k]);
		int64_t D = xs[k].shape[xs[k].ndim - 1], e = elems(&y);
		double *want = dalloc((size_t)e);
		for (int64_t r = 0; r < e / D; r++)
			softmax_ref(F(&xs[k]) + r * D, want + r * D, D);
		struct swarm_node n = NODE(SWARM_OP_SOFTMAX, &y, &xs[k]);
		char what[64];
		snprintf(what, sizeof(what), "softmax shape %zu", k);
		run_ok(&n, what);
		check_close(F(&y), want, NULL, (size_t)e, 2e-6, 1e-5, what);
	}
}

Test(kernels_ops, softmax_is_stable_for_large_inputs)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17);
	for (int i = 0; i < 17; i++) {
		F(&x)[i] += 1000.0f;      /* exp would overflow without subtracting the max */
		F(&x)[17 + i] -= 1000.0f; /* and underflow to 0 / 0 */
	}
	struct swarm_tensor y = like(&x);
	double want[51];
	for (int r = 0; r < 3; r++)
		softmax_ref(F(&x) + r * 17, want + r * 17, 17);
	struct swarm_node n = NODE(SWARM_OP_SOFTMAX, &y, &x);
	run_ok(&n, "softmax large");
	check_close(F(&y), want, NULL, 51, 2e-6, 1e-5, "softmax large");
}

Test(kernels_ops, layernorm_matches_f64_reference)
{
	struct swarm_tensor xs[] = {
		tens(SWARM_DTYPE_F32, 2, 5, 1),
		tens(SWARM_DTYPE_F32, 2, 3, 17),
		tens(SWARM_DTYPE_F32, 3, 2, 3, 129),
		tens(SWARM_DTYPE_F32, 1, 3),
	};
	float epss[] = { 0.0f, 1e-3f };
	for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
		int64_t D = xs[k].shape[xs[k].ndim - 1], e = elems(&xs[k]);
		struct swarm_tensor g = tens(SWARM_DTYPE_F32, 1, (int)D);
		struct swarm_tensor b = tens(SWARM_DTYPE_F32, 1, (int)D);
		struct swarm_tensor y = like(&xs[k]);
		double *want = dalloc((size_t)e);
		for (size_t ei = 0; ei < 2; ei++) {
			double eps = epss[ei] == 0.0f ? 1e-5 : epss[ei];
			for (int64_t r = 0; r < e / D; r++) {
				const float *x = F(&xs[k]) + r * D;
				double mean = 0, var = 0;
				for (int64_t i = 0; i < D; i++)
					mean += x[i];
				mean /= D;
				for (int64_t i = 0; i < D; i++)
					var += (x[i] - mean) * (x[i] - mean);
				var /= D;
				for (int64_t i = 0; i < D; i++)
					want[r * D + i] =
						(x[i] - mean) / sqrt(var + eps) * F(&g)[i] +
						F(&b)[i];
			}
			struct swarm_node n = NODE(SWARM_OP_LAYERNORM, &y, &xs[k], &g, &b);
			n.p.eps = epss[ei];
			char what[64];
			snprintf(what, sizeof(what), "layernorm shape %zu eps %g", k, eps);
			run_ok(&n, what);
			check_close(F(&y), want, NULL, (size_t)e, 1e-5, 1e-5, what);
		}
	}
}

Test(kernels_ops, layernorm_refuses_bad_inputs)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17), y = like(&x);
	struct swarm_tensor g = tens(SWARM_DTYPE_F32, 1, 17), b = tens(SWARM_DTYPE_F32, 1, 17);
	struct swarm_tensor g_bad = tens(SWARM_DTYPE_F32, 1, 16);
	struct swarm_tensor b_i = tens(SWARM_DTYPE_I32, 1, 17);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 3, 16);
	struct swarm_node n = NODE(SWARM_OP_LAYERNORM, &y, &x, &g_bad, &b);
	run_refused(&n, "layernorm gamma mismatch");
	n = NODE(SWARM_OP_LAYERNORM, &y, &x, &g, &b_i);
	run_refused(&n, "layernorm beta i32");
	n = NODE(SWARM_OP_LAYERNORM, &y_bad, &x, &g, &b);
	run_refused(&n, "layernorm out mismatch");
	n = NODE(SWARM_OP_LAYERNORM, &y, &x, &g);
	run_refused(&n, "layernorm no beta");
	n = NODE(SWARM_OP_LAYERNORM, &y, &x, &g, &b);
	n.p.eps = -1.0f;
	run_refused(&n, "layernorm negative eps");
}

Test(kernels_ops, l2norm_matches_f64_reference)
{
	struct swarm_tensor xs[] = {
		tens(SWARM_DTYPE_F32, 1, 1),
		tens(SWARM_DTYPE_F32, 2, 3, 17),
		tens(SWARM_DTYPE_F32, 3, 2, 3, 129),
	};
	for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
		struct swarm_tensor y = like(&xs[k]);
		int64_t D = xs[k].shape[xs[k].ndim - 1], e = elems(&y);
		double *want = dalloc((size_t)e);
		for (int64_t r = 0; r < e / D; r++) {
			const float *x = F(&xs[k]) + r * D;
			double s = 0;
			for (int64_t i = 0; i < D; i++)
				s += (double)x[i] * x[i];
			double d = fmax(sqrt(s), 1e-12);
			for (int64_t i = 0; i < D; i++)
				want[r * D + i] = x[i] / d;
		}
		struct swarm_node n = NODE(SWARM_OP_L2NORM, &y, &xs[k]);
		char what[64];
		snprintf(what, sizeof(what), "l2norm shape %zu", k);
		run_ok(&n, what);
		check_close(F(&y), want, NULL, (size_t)e, 1e-6, 1e-5, what);
	}
}

Test(kernels_ops, l2norm_of_zero_vector_stays_zero)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17), y = like(&x);
	memset(F(&x) + 17, 0, 17 * sizeof(float));
	struct swarm_node n = NODE(SWARM_OP_L2NORM, &y, &x);
	run_ok(&n, "l2norm zero row");
	for (int i = 17; i < 34; i++)
		cr_assert(F(&y)[i] == 0.0f, "index %d: expected 0, actual %g", i, F(&y)[i]);
	/* A tiny vector below eps is divided by eps, not blown up to unit length. */
	for (int i = 0; i < 17; i++)
		F(&x)[i] = 1e-6f;
	n.p.eps = 1.0f;
	run_ok(&n, "l2norm eps");
	for (int i = 0; i < 17; i++)
		cr_assert(fabsf(F(&y)[i] - 1e-6f) < 1e-12f, "index %d: expected 1e-6, actual %g", i,
			  F(&y)[i]);
	n.p.eps = -1.0f;
	run_refused(&n, "l2norm negative eps");
	struct swarm_tensor xi = tens(SWARM_DTYPE_I32, 2, 3, 17);
	n = NODE(SWARM_OP_L2NORM, &y, &xi);
	run_refused(&n, "l2norm i32");
}

Test(kernels_ops, softmax_refuses_bad_inputs)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 2, 3, 17), y = tens(SWARM_DTYPE_F32, 1, 51);
	struct swarm_tensor x0 = tens(SWARM_DTYPE_F32, 0), y0 = tens(SWARM_DTYPE_F32, 0);
	struct swarm_node n = NODE(SWARM_OP_SOFTMAX, &y, &x);
	run_refused(&n, "softmax out reshaped");
	n = NODE(SWARM_OP_SOFTMAX, &y0, &x0);
	run_refused(&n, "softmax of a scalar");
}

/* ---- embedding, embedding_bag -------------------------------------------------------------- */

static void embedding_case(uint32_t id_dt, int V, int D, int nd, int d0, int d1)
{
	struct swarm_tensor t = tens(SWARM_DTYPE_F32, 2, V, D);
	struct swarm_tensor ids = nd == 0 ? tens(id_dt, 0) :
				  nd == 1 ? tens(id_dt, 1, d0) :
					    tens(id_dt, 2, d0, d1);
	int64_t L = elems(&ids);
	for (int64_t i = 0; i < L; i++)
		set_index(&ids, i, (int64_t)(rng_next() % (uint64_t)V));
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 0);
	y.ndim = ids.ndim + 1;
	memcpy(y.shape, ids.shape, sizeof(ids.shape));
	y.shape[ids.ndim] = D;
	y.data = malloc(tbytes(&y) + GUARD);
	bufs[n_bufs++] = y.data;
	struct swarm_node n = NODE(SWARM_OP_EMBEDDING, &y, &t, &ids);
	char what[80];
	snprintf(what, sizeof(what), "embedding V %d D %d ids ndim %d", V, D, nd);
	run_ok(&n, what);
	for (int64_t i = 0; i < L; i++) {
		int64_t id = get_index(&ids, i);
		for (int j = 0; j < D; j++)
			cr_assert(F(&y)[i * D + j] == F(&t)[id * D + j],
				  "%s: index %ld,%d: expected %g, actual %g", what, (long)i, j,
				  F(&t)[id * D + j], F(&y)[i * D + j]);
	}
}

Test(kernels_ops, embedding_matches_f64_reference)
{
	embedding_case(SWARM_DTYPE_I32, 7, 3, 1, 4, 0);
	embedding_case(SWARM_DTYPE_I64, 7, 3, 2, 2, 3);
	embedding_case(SWARM_DTYPE_I32, 1, 129, 1, 3, 0);
	embedding_case(SWARM_DTYPE_I64, 129, 17, 2, 17, 1);
	embedding_case(SWARM_DTYPE_I32, 3, 1, 0, 0, 0);
}

Test(kernels_ops, embedding_refuses_ids_out_of_range)
{
	uint32_t dts[] = { SWARM_DTYPE_I32, SWARM_DTYPE_I64 };
	for (int k = 0; k < 2; k++) {
		struct swarm_tensor t = tens(SWARM_DTYPE_F32, 2, 7, 3);
		struct swarm_tensor ids = tens(dts[k], 1, 4);
		struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 4, 3);
		int64_t bad[] = { 7, -1, 1000000, INT32_MIN };
		for (int b = 0; b < 4; b++) {
			for (int i = 0; i < 4; i++)
				set_index(&ids, i, i);
			/* the bad id last, so a kernel that checks as it copies is caught */
			set_index(&ids, 3, bad[b]);
			struct swarm_node n = NODE(SWARM_OP_EMBEDDING, &y, &t, &ids);
			run_refused(&n, "embedding id out of range");
		}
		if (dts[k] == SWARM_DTYPE_I64) {
			set_index(&ids, 3, (int64_t)1 << 40);
			struct swarm_node n = NODE(SWARM_OP_EMBEDDING, &y, &t, &ids);
			run_refused(&n, "embedding id 2^40");
		}
	}
	struct swarm_tensor t = tens(SWARM_DTYPE_F32, 2, 7, 3);
	struct swarm_tensor idf = tens(SWARM_DTYPE_F32, 1, 4);
	struct swarm_tensor ids = tens(SWARM_DTYPE_I32, 1, 4);
	for (int i = 0; i < 4; i++)
		set_index(&ids, i, 0);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 4, 2);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 4, 3);
	struct swarm_tensor t16 = tens(SWARM_DTYPE_F16, 2, 7, 3);
	struct swarm_node n = NODE(SWARM_OP_EMBEDDING, &y, &t, &idf);
	run_refused(&n, "embedding f32 ids");
	n = NODE(SWARM_OP_EMBEDDING, &y_bad, &t, &ids);
	run_refused(&n, "embedding out mismatch");
	n = NODE(SWARM_OP_EMBEDDING, &y, &t16, &ids);
	run_refused(&n, "embedding f16 table");
}

/* offsets of nb bags over L ids; returns the reference out [nb, D] in want. */
static void bag_case(uint32_t id_dt, uint32_t off_dt, uint32_t mode, int V, int D, int L, int nb,
		     const int *offsets)
{
	struct swarm_tensor t = tens(SWARM_DTYPE_F32, 2, V, D);
	struct swarm_tensor ids = tens(id_dt, 1, L);
	struct swarm_tensor offs = tens(off_dt, 1, nb);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, nb, D);
	for (int i = 0; i < L; i++)
		set_index(&ids, i, (int64_t)(rng_next() % (uint64_t)V));
	for (int b = 0; b < nb; b++)
		set_index(&offs, b, offsets[b]);
	double *want = dalloc((size_t)nb * D), *tol = dalloc((size_t)nb * D);
	for (int b = 0; b < nb; b++) {
		int begin = offsets[b], end = b + 1 < nb ? offsets[b + 1] : L;
		for (int j = 0; j < D; j++) {
			double s = 0, abs = 0;
			for (int k = begin; k < end; k++) {
				double v = F(&t)[get_index(&ids, k) * D + j];
				s += v;
				abs += fabs(v);
			}
			if (mode == SWARM_BAG_MEAN && end > begin) {
				s /= end - begin;
				abs /= end - begin;
			}
			want[b * D + j] = s;
			tol[b * D + j] = 1e-6 * (1 + abs);
		}
	}
	struct swarm_node n = NODE(SWARM_OP_EMBEDDING_BAG, &y, &t, &ids, &offs);
	n.p.bag_mode = mode;
	char what[96];
	snprintf(what, sizeof(what), "embedding_bag %s V %d D %d L %d bags %d",
		 mode == SWARM_BAG_SUM ? "sum" : "mean", V, D, L, nb);
	run_ok(&n, what);
	check_close(F(&y), want, tol, (size_t)nb * D, 0, 0, what);
}

Test(kernels_ops, embedding_bag_matches_f64_reference)
{
	uint32_t modes[] = { SWARM_BAG_SUM, SWARM_BAG_MEAN };
	for (int m = 0; m < 2; m++) {
		int o1[] = { 0 };
		bag_case(SWARM_DTYPE_I32, SWARM_DTYPE_I32, modes[m], 7, 3, 5, 1, o1);
		int o2[] = { 0, 3, 3, 10, 17 }; /* an empty bag in the middle and at the end */
		bag_case(SWARM_DTYPE_I64, SWARM_DTYPE_I64, modes[m], 129, 17, 17, 5, o2);
		int o3[] = { 0, 0, 1 }; /* an empty first bag */
		bag_case(SWARM_DTYPE_I32, SWARM_DTYPE_I64, modes[m], 3, 129, 3, 3, o3);
		int o4[] = { 0, 0, 0 }; /* no ids at all */
		bag_case(SWARM_DTYPE_I64, SWARM_DTYPE_I32, modes[m], 3, 1, 0, 3, o4);
	}
}

Test(kernels_ops, embedding_bag_empty_bag_gives_zeros)
{
	struct swarm_tensor t = tens(SWARM_DTYPE_F32, 2, 7, 3);
	struct swarm_tensor ids = tens(SWARM_DTYPE_I32, 1, 2);
	struct swarm_tensor offs = tens(SWARM_DTYPE_I32, 1, 3);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 3, 3);
	set_index(&ids, 0, 1), set_index(&ids, 1, 2);
	set_index(&offs, 0, 0), set_index(&offs, 1, 2), set_index(&offs, 2, 2);
	for (uint32_t mode = SWARM_BAG_SUM; mode <= SWARM_BAG_MEAN; mode++) {
		struct swarm_node n = NODE(SWARM_OP_EMBEDDING_BAG, &y, &t, &ids, &offs);
		n.p.bag_mode = mode;
		run_ok(&n, "embedding_bag empty");
		for (int b = 1; b < 3; b++) {
			for (int j = 0; j < 3; j++)
				cr_assert(F(&y)[b * 3 + j] == 0.0f,
					  "bag %d index %d: expected 0, actual %g", b, j,
					  F(&y)[b * 3 + j]);
		}
	}
}

Test(kernels_ops, embedding_bag_refuses_bad_ids_and_offsets)
{
	struct swarm_tensor t = tens(SWARM_DTYPE_F32, 2, 7, 3);
	struct swarm_tensor ids = tens(SWARM_DTYPE_I64, 1, 5);
	struct swarm_tensor offs = tens(SWARM_DTYPE_I32, 1, 3);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 3, 3);
	struct {
		int64_t ids[5];
		int32_t offs[3];
		uint32_t mode;
		const char *what;
	} cases[] = {
		{ { 0, 1, 2, 3, 7 }, { 0, 2, 4 }, SWARM_BAG_SUM, "id == V" },
		{ { -1, 1, 2, 3, 4 }, { 0, 2, 4 }, SWARM_BAG_MEAN, "negative id" },
		{ { 0, 1, 2, 3, 4 }, { 1, 2, 4 }, SWARM_BAG_SUM, "offsets[0] != 0" },
		{ { 0, 1, 2, 3, 4 }, { 0, 4, 2 }, SWARM_BAG_SUM, "offsets descending" },
		{ { 0, 1, 2, 3, 4 }, { 0, 2, 6 }, SWARM_BAG_SUM, "offset past L" },
		{ { 0, 1, 2, 3, 4 }, { 0, 2, -1 }, SWARM_BAG_SUM, "negative offset" },
		{ { 0, 1, 2, 3, 4 }, { 0, 2, 4 }, 2, "unknown mode" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int i = 0; i < 5; i++)
			set_index(&ids, i, cases[c].ids[i]);
		for (int i = 0; i < 3; i++)
			set_index(&offs, i, cases[c].offs[i]);
		struct swarm_node n = NODE(SWARM_OP_EMBEDDING_BAG, &y, &t, &ids, &offs);
		n.p.bag_mode = cases[c].mode;
		run_refused(&n, cases[c].what);
	}
	for (int i = 0; i < 5; i++)
		set_index(&ids, i, i);
	set_index(&offs, 0, 0), set_index(&offs, 1, 2), set_index(&offs, 2, 4);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 2, 3);
	struct swarm_tensor ids2 = tens(SWARM_DTYPE_I32, 2, 1, 5);
	struct swarm_tensor offf = tens(SWARM_DTYPE_F32, 1, 3);
	struct swarm_node n = NODE(SWARM_OP_EMBEDDING_BAG, &y_bad, &t, &ids, &offs);
	run_refused(&n, "embedding_bag out rows != bags");
	for (int i = 0; i < 5; i++)
		set_index(&ids2, i, 0);
	n = NODE(SWARM_OP_EMBEDDING_BAG, &y, &t, &ids2, &offs);
	run_refused(&n, "embedding_bag 2-d ids");
	n = NODE(SWARM_OP_EMBEDDING_BAG, &y, &t, &ids, &offf);
	run_refused(&n, "embedding_bag f32 offsets");
	n = NODE(SWARM_OP_EMBEDDING_BAG, &y, &t, &ids, &offs);
	run_ok(&n, "embedding_bag valid after refusals");
}

/* ---- concat -------------------------------------------------------------------------------- */

static void concat_case(int nd, int l0, int l1, int n_in, const int *last)
{
	struct swarm_tensor xs[SWARM_NODE_MAX_INPUTS];
	int total = 0;
	for (int k = 0; k < n_in; k++) {
		xs[k] = nd == 1 ? tens(SWARM_DTYPE_F32, 1, last[k]) :
			nd == 2 ? tens(SWARM_DTYPE_F32, 2, l0, last[k]) :
				  tens(SWARM_DTYPE_F32, 3, l0, l1, last[k]);
		total += last[k];
	}
	struct swarm_tensor y = like(&xs[0]);
	y.shape[nd - 1] = total;
	free(y.data);
	y.data = malloc(tbytes(&y) + GUARD);
	bufs[n_bufs - 1] = y.data;
	struct swarm_node n = {
		.op = SWARM_OP_CONCAT, .n_in = (uint32_t)n_in, .out = &y, .p = { .axis = -1 }
	};
	for (int k = 0; k < n_in; k++)
		n.in[k] = &xs[k];
	run_ok(&n, "concat");
	int64_t rows = elems(&y) / (total ? total : 1);
	for (int64_t r = 0; r < rows; r++) {
		int col = 0;
		for (int k = 0; k < n_in; k++) {
			for (int j = 0; j < last[k]; j++, col++) {
				float want = F(&xs[k])[r * last[k] + j],
				      got = F(&y)[r * total + col];
				cr_assert(got == want,
					  "concat row %ld col %d: expected %g, actual %g", (long)r,
					  col, want, got);
			}
		}
	}
}

Test(kernels_ops, concat_matches_f64_reference)
{
	int a[] = { 17 };
	concat_case(1, 0, 0, 1, a);
	int b[] = { 1, 3, 17 };
	concat_case(3, 2, 3, 3, b);
	int c[] = { 1, 2, 3, 4, 5, 6, 7, 129 };
	concat_case(2, 17, 0, 8, c);
	int d[] = { 3, 0, 1 };
	concat_case(2, 129, 0, 3, d);
}

Test(kernels_ops, concat_refuses_bad_inputs)
{
	struct swarm_tensor a = tens(SWARM_DTYPE_F32, 2, 3, 17), b = tens(SWARM_DTYPE_F32, 2, 4, 5);
	struct swarm_tensor c = tens(SWARM_DTYPE_F32, 3, 1, 3, 5),
			    d = tens(SWARM_DTYPE_I32, 2, 3, 5);
	struct swarm_tensor ok = tens(SWARM_DTYPE_F32, 2, 3, 5);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 3, 22);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 3, 21);
	struct swarm_node n = NODE(SWARM_OP_CONCAT, &y, &a, &b);
	n.p.axis = -1;
	run_refused(&n, "concat leading dims differ");
	n = NODE(SWARM_OP_CONCAT, &y, &a, &c);
	n.p.axis = -1;
	run_refused(&n, "concat ndim differ");
	n = NODE(SWARM_OP_CONCAT, &y, &a, &d);
	n.p.axis = -1;
	run_refused(&n, "concat i32 input");
	n = NODE(SWARM_OP_CONCAT, &y_bad, &a, &ok);
	n.p.axis = -1;
	run_refused(&n, "concat out last dim");
	n = (struct swarm_node){ .op = SWARM_OP_CONCAT, .n_in = 0, .out = &y };
	run_refused(&n, "concat no inputs");
}

/* ---- attention ----------------------------------------------------------------------------- */

/* Reference attention, in double, over the keys with keep[j] != 0 only (keep NULL: all). */
static void attention_ref(const struct swarm_tensor *q, const struct swarm_tensor *k,
			  const struct swarm_tensor *v, const float *mask, int H, double *out)
{
	int B = (int)q->shape[0], S = (int)q->shape[1], E = (int)q->shape[2], Dh = E / H;
	double *p = dalloc((size_t)S);
	for (int b = 0; b < B; b++) {
		const float *keep = mask ? mask + b * S : NULL;
		for (int h = 0; h < H; h++) {
			for (int i = 0; i < S; i++) {
				double mx = -INFINITY, sum = 0;
				for (int j = 0; j < S; j++) {
					p[j] = 0;
					if (keep && keep[j] == 0.0f)
						continue;
					double s = 0;
					for (int d = 0; d < Dh; d++)
						s += (double)F(q)[(b * S + i) * E + h * Dh + d] *
						     F(k)[(b * S + j) * E + h * Dh + d];
					p[j] = s / sqrt((double)Dh);
					mx = fmax(mx, p[j]);
				}
				for (int j = 0; j < S; j++) {
					if (keep && keep[j] == 0.0f)
						continue;
					sum += (p[j] = exp(p[j] - mx));
				}
				for (int d = 0; d < Dh; d++) {
					double o = 0;
					for (int j = 0; j < S; j++) {
						if (keep && keep[j] == 0.0f)
							continue;
						o += p[j] / sum *
						     F(v)[(b * S + j) * E + h * Dh + d];
					}
					out[(b * S + i) * E + h * Dh + d] = sum > 0 ? o : 0.0;
				}
			}
		}
	}
}

Test(kernels_ops, attention_matches_f64_reference)
{
	struct {
		int B, S, H, Dh;
	} cases[] = {
		{ 1, 1, 1, 1 },    { 2, 3, 2, 3 },  { 2, 17, 4, 16 },
		{ 1, 129, 1, 17 }, { 3, 17, 3, 1 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int B = cases[c].B, S = cases[c].S, H = cases[c].H, E = H * cases[c].Dh;
		struct swarm_tensor q = tens(SWARM_DTYPE_F32, 3, B, S, E);
		struct swarm_tensor k = tens(SWARM_DTYPE_F32, 3, B, S, E);
		struct swarm_tensor v = tens(SWARM_DTYPE_F32, 3, B, S, E);
		struct swarm_tensor m = tens(SWARM_DTYPE_F32, 2, B, S);
		struct swarm_tensor y = like(&q);
		double *want = dalloc((size_t)B * S * E);
		for (int with_mask = 0; with_mask < 2; with_mask++) {
			/* a random mask that keeps at least the first key of each batch row */
			for (int i = 0; i < B * S; i++)
				F(&m)[i] = (i % S == 0 || (rng_next() & 1)) ? 1.0f : 0.0f;
			attention_ref(&q, &k, &v, with_mask ? F(&m) : NULL, H, want);
			struct swarm_node n = with_mask ?
						      NODE(SWARM_OP_ATTENTION, &y, &q, &k, &v, &m) :
						      NODE(SWARM_OP_ATTENTION, &y, &q, &k, &v);
			n.p.heads = (uint32_t)H;
			char what[96];
			snprintf(what, sizeof(what), "attention B %d S %d H %d Dh %d mask %d", B, S,
				 H, cases[c].Dh, with_mask);
			run_ok(&n, what);
			check_close(F(&y), want, NULL, (size_t)B * S * E, 2e-5, 2e-5, what);
		}
	}
}

Test(kernels_ops, attention_masked_keys_do_not_affect_output)
{
	int B = 2, S = 17, H = 2, Dh = 8, E = H * Dh, keep_n = 5;
	struct swarm_tensor q = tens(SWARM_DTYPE_F32, 3, B, S, E);
	struct swarm_tensor k = tens(SWARM_DTYPE_F32, 3, B, S, E);
	struct swarm_tensor v = tens(SWARM_DTYPE_F32, 3, B, S, E);
	struct swarm_tensor m = tens(SWARM_DTYPE_F32, 2, B, S);
	struct swarm_tensor y = like(&q);
	/* keys keep_n.. are padding: trash them with huge values */
	for (int b = 0; b < B; b++) {
		for (int j = 0; j < S; j++) {
			F(&m)[b * S + j] = j < keep_n ? 1.0f : 0.0f;
			if (j < keep_n)
				continue;
			for (int d = 0; d < E; d++) {
				F(&k)[(b * S + j) * E + d] = 1e4f;
				F(&v)[(b * S + j) * E + d] = -1e6f;
			}
		}
	}
	/* The reference drops the padded keys: attention over keep_n keys only, where the
	 * queries are all S rows. Build the short K and V and compute query by query. */
	double *want = dalloc((size_t)B * S * E);
	for (int b = 0; b < B; b++) {
		for (int h = 0; h < H; h++) {
			for (int i = 0; i < S; i++) {
				double s[5], mx = -INFINITY, sum = 0;
				for (int j = 0; j < keep_n; j++) {
					s[j] = 0;
					for (int d = 0; d < Dh; d++)
						s[j] += (double)F(
								&q)[(b * S + i) * E + h * Dh + d] *
							F(&k)[(b * S + j) * E + h * Dh + d];
					s[j] /= sqrt((double)Dh);
					mx = fmax(mx, s[j]);
				}
				for (int j = 0; j < keep_n; j++)
					sum += (s[j] = exp(s[j] - mx));
				for (int d = 0; d < Dh; d++) {
					double o = 0;
					for (int j = 0; j < keep_n; j++)
						o += s[j] / sum *
						     F(&v)[(b * S + j) * E + h * Dh + d];
					want[(b * S + i) * E + h * Dh + d] = o;
				}
			}
		}
	}
	struct swarm_node n = NODE(SWARM_OP_ATTENTION, &y, &q, &k, &v, &m);
	n.p.heads = (uint32_t)H;
	run_ok(&n, "attention padding");
	check_close(F(&y), want, NULL, (size_t)B * S * E, 2e-5, 2e-5, "attention padding");
}

Test(kernels_ops, attention_with_every_key_masked_gives_zeros)
{
	int B = 2, S = 3, E = 4;
	struct swarm_tensor q = tens(SWARM_DTYPE_F32, 3, B, S, E);
	struct swarm_tensor k = tens(SWARM_DTYPE_F32, 3, B, S, E);
	struct swarm_tensor v = tens(SWARM_DTYPE_F32, 3, B, S, E);
	struct swarm_tensor m = tens(SWARM_DTYPE_F32, 2, B, S);
	struct swarm_tensor y = like(&q);
	for (int i = 0; i < B * S; i++)
		F(&m)[i] = i < S ? 1.0f : 0.0f; /* batch 1 is all padding */
	struct swarm_node n = NODE(SWARM_OP_ATTENTION, &y, &q, &k, &v, &m);
	n.p.heads = 2;
	run_ok(&n, "attention all masked");
	for (int i = S * E; i < B * S * E; i++)
		cr_assert(F(&y)[i] == 0.0f, "index %d: expected 0, actual %g", i, F(&y)[i]);
}

Test(kernels_ops, attention_refuses_bad_inputs)
{
	struct swarm_tensor q = tens(SWARM_DTYPE_F32, 3, 2, 3, 6);
	struct swarm_tensor k_bad = tens(SWARM_DTYPE_F32, 3, 2, 4, 6);
	struct swarm_tensor m_bad = tens(SWARM_DTYPE_F32, 2, 2, 4);
	struct swarm_tensor m_i = tens(SWARM_DTYPE_I32, 2, 2, 3);
	struct swarm_tensor q2 = tens(SWARM_DTYPE_F32, 2, 6, 6);
	struct swarm_tensor y = like(&q);
	struct swarm_node n = NODE(SWARM_OP_ATTENTION, &y, &q, &k_bad, &q);
	n.p.heads = 2;
	run_refused(&n, "attention K shape");
	n = NODE(SWARM_OP_ATTENTION, &y, &q, &q, &q, &m_bad);
	n.p.heads = 2;
	run_refused(&n, "attention mask shape");
	n = NODE(SWARM_OP_ATTENTION, &y, &q, &q, &q, &m_i);
	n.p.heads = 2;
	run_refused(&n, "attention i32 mask");
	n = NODE(SWARM_OP_ATTENTION, &y, &q, &q, &q);
	n.p.heads = 4;
	run_refused(&n, "attention heads do not divide E");
	n.p.heads = 0;
	run_refused(&n, "attention zero heads");
	n = NODE(SWARM_OP_ATTENTION, &y, &q2, &q2, &q2);
	n.p.heads = 1;
	run_refused(&n, "attention 2-d");
}

/* ---- mean_pool ----------------------------------------------------------------------------- */

Test(kernels_ops, mean_pool_matches_f64_reference)
{
	struct {
		int B, S, D;
	} cases[] = { { 1, 1, 1 }, { 2, 3, 17 }, { 3, 17, 129 }, { 1, 129, 3 } };
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int B = cases[c].B, S = cases[c].S, D = cases[c].D;
		struct swarm_tensor x = tens(SWARM_DTYPE_F32, 3, B, S, D);
		struct swarm_tensor m = tens(SWARM_DTYPE_F32, 2, B, S);
		struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, B, D);
		for (int i = 0; i < B * S; i++)
			F(&m)[i] = (i % S == 0 || (rng_next() & 1)) ? 1.0f : 0.0f;
		double *want = dalloc((size_t)B * D), *tol = dalloc((size_t)B * D);
		for (int b = 0; b < B; b++) {
			for (int d = 0; d < D; d++) {
				double s = 0, abs = 0;
				int cnt = 0;
				for (int t = 0; t < S; t++) {
					if (F(&m)[b * S + t] == 0.0f)
						continue;
					s += F(&x)[(b * S + t) * D + d];
					abs += fabs(F(&x)[(b * S + t) * D + d]);
					cnt++;
				}
				want[b * D + d] = s / cnt;
				tol[b * D + d] = 1e-6 * (1 + abs / cnt);
			}
		}
		struct swarm_node n = NODE(SWARM_OP_MEAN_POOL, &y, &x, &m);
		char what[64];
		snprintf(what, sizeof(what), "mean_pool B %d S %d D %d", B, S, D);
		run_ok(&n, what);
		check_close(F(&y), want, tol, (size_t)B * D, 0, 0, what);
	}
}

Test(kernels_ops, mean_pool_all_masked_row_gives_zeros)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 3, 2, 3, 17);
	struct swarm_tensor m = tens(SWARM_DTYPE_F32, 2, 2, 3);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 2, 17);
	for (int i = 0; i < 6; i++)
		F(&m)[i] = i < 3 ? 1.0f : 0.0f;
	struct swarm_node n = NODE(SWARM_OP_MEAN_POOL, &y, &x, &m);
	run_ok(&n, "mean_pool all masked");
	for (int d = 0; d < 17; d++)
		cr_assert(F(&y)[17 + d] == 0.0f, "index %d: expected 0, actual %g", 17 + d,
			  F(&y)[17 + d]);
}

Test(kernels_ops, mean_pool_refuses_bad_inputs)
{
	struct swarm_tensor x = tens(SWARM_DTYPE_F32, 3, 2, 3, 17);
	struct swarm_tensor m = tens(SWARM_DTYPE_F32, 2, 2, 3);
	struct swarm_tensor m_bad = tens(SWARM_DTYPE_F32, 2, 2, 4);
	struct swarm_tensor m_i = tens(SWARM_DTYPE_I32, 2, 2, 3);
	struct swarm_tensor y = tens(SWARM_DTYPE_F32, 2, 2, 17);
	struct swarm_tensor y_bad = tens(SWARM_DTYPE_F32, 2, 3, 17);
	struct swarm_node n = NODE(SWARM_OP_MEAN_POOL, &y, &x, &m_bad);
	run_refused(&n, "mean_pool mask shape");
	n = NODE(SWARM_OP_MEAN_POOL, &y, &x, &m_i);
	run_refused(&n, "mean_pool i32 mask");
	n = NODE(SWARM_OP_MEAN_POOL, &y_bad, &x, &m);
	run_refused(&n, "mean_pool out shape");
	n = NODE(SWARM_OP_MEAN_POOL, &y, &x);
	run_refused(&n, "mean_pool no mask");
}
