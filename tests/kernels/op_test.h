/* op_test.h: what the CPU op tests share (test_ops.c, test_ops_vision.c): a CPU device per
 * test, seeded random tensors with guard bytes after their storage, nodes, running a node
 * expecting success (its guard intact) or -EINVAL (its output untouched), and a comparison
 * against float64 references with a tolerance per element. Included once per test file: its
 * definitions are static.
 */
#ifndef SWARM_TESTS_KERNELS_OP_TEST_H
#define SWARM_TESTS_KERNELS_OP_TEST_H

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

#define GUARD 256
#define SENTINEL 0xa5
#define MAX_BUFS 512

static struct swarm_device *dev;
static void *bufs[MAX_BUFS];
static int n_bufs;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static inline void setup(void)
{
	cr_assert_eq(swarm_device_cpu_create(1, &dev), 0, "swarm_device_cpu_create");
	rng = 0x9e3779b97f4a7c15ull;
}

static inline void teardown(void)
{
	for (int i = 0; i < n_bufs; i++)
		free(bufs[i]);
	n_bufs = 0;
	if (dev)
		dev->i->destroy(dev);
	dev = NULL;
}

static inline uint64_t rng_next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Uniform in [-2, -0.05] u [0.05, 2]. */
static inline float rnd(void)
{
	double u = (double)(rng_next() >> 11) / (double)(1ull << 53);
	double mag = 0.05 + 1.95 * u;
	return (float)((rng_next() & 1) ? mag : -mag);
}

static inline size_t dtype_size(uint32_t dt)
{
	switch (dt) {
	case SWARM_DTYPE_I64:
		return 8;
	case SWARM_DTYPE_F16:
	case SWARM_DTYPE_BF16:
		return 2;
	case SWARM_DTYPE_U8:
		return 1;
	default:
		return 4;
	}
}

static inline size_t tbytes(const struct swarm_tensor *t)
{
	return (size_t)swarm_tensor_elems(t) * dtype_size(t->dtype);
}

/* A tensor of dtype dt and shape (nd ints), its storage followed by GUARD sentinel bytes;
 * f32 tensors are filled with random values, others with sentinel bytes. */
static inline struct swarm_tensor tens(uint32_t dt, uint32_t nd, ...)
{
	struct swarm_tensor t = { .dtype = dt, .ndim = nd };
	va_list ap;
	va_start(ap, nd);
	for (uint32_t i = 0; i < nd; i++)
		t.shape[i] = va_arg(ap, int);
	va_end(ap);
	size_t bytes = tbytes(&t);
	cr_assert_lt(n_bufs, MAX_BUFS);
	unsigned char *p = malloc(bytes + GUARD);
	cr_assert_not_null(p);
	memset(p, SENTINEL, bytes + GUARD);
	bufs[n_bufs++] = p;
	t.data = p;
	if (dt == SWARM_DTYPE_F32) {
		float *f = t.data;
		for (size_t i = 0; i < bytes / 4; i++)
			f[i] = rnd();
	}
	return t;
}

static inline float *F(const struct swarm_tensor *t) { return t->data; }

static inline void set_index(struct swarm_tensor *t, int64_t i, int64_t v)
{
	if (t->dtype == SWARM_DTYPE_I32)
		((int32_t *)t->data)[i] = (int32_t)v;
	else
		((int64_t *)t->data)[i] = v;
}

static inline int64_t get_index(const struct swarm_tensor *t, int64_t i)
{
	if (t->dtype == SWARM_DTYPE_I32)
		return ((const int32_t *)t->data)[i];
	return ((const int64_t *)t->data)[i];
}

/* Sets out (and its guard) to sentinel bytes. */
static inline void poison(struct swarm_tensor *out)
{
	memset(out->data, SENTINEL, tbytes(out) + GUARD);
}

static inline void assert_guard(const struct swarm_tensor *t, const char *what)
{
	const unsigned char *g = (const unsigned char *)t->data + tbytes(t);
	for (size_t i = 0; i < GUARD; i++)
		cr_assert_eq(g[i], SENTINEL, "%s: wrote %zu bytes past out", what, i + 1);
}

static inline void assert_untouched(const struct swarm_tensor *t, const char *what)
{
	const unsigned char *p = t->data;
	size_t n = tbytes(t) + GUARD;
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(p[i], SENTINEL, "%s: refused node wrote byte %zu of out (%zu bytes)",
			     what, i, tbytes(t));
}

static inline struct swarm_node mknode(uint32_t op, struct swarm_tensor *out, uint32_t n_in,
				       const struct swarm_tensor *const *in)
{
	struct swarm_node n = { .op = op, .n_in = n_in, .out = out };
	for (uint32_t i = 0; i < n_in; i++)
		n.in[i] = in[i];
	return n;
}

#define NODE(op, out, ...)                                              \
	mknode((op), (out),                                             \
	       sizeof((const struct swarm_tensor *[]){ __VA_ARGS__ }) / \
		       sizeof(const struct swarm_tensor *),             \
	       (const struct swarm_tensor *[]){ __VA_ARGS__ })

static inline int run(const struct swarm_node *n) { return dev->i->run(dev, n); }

/* Runs n (expecting 0) with out poisoned first, then checks out's guard. */
static inline void run_ok(struct swarm_node *n, const char *what)
{
	poison(n->out);
	int rc = run(n);
	cr_assert_eq(rc, 0, "%s: run returned %d", what, rc);
	assert_guard(n->out, what);
}

/* Runs n expecting -EINVAL with nothing written to out or past it. */
static inline void run_refused(struct swarm_node *n, const char *what)
{
	poison(n->out);
	int rc = run(n);
	cr_assert_eq(rc, -EINVAL, "%s: run returned %d, expected -EINVAL", what, rc);
	assert_untouched(n->out, what);
}

/* |got[i] - want[i]| <= atol + rtol * |want[i]| + (tol ? tol[i] : 0) for every i. */
static inline void check_close(const float *got, const double *want, const double *tol, size_t n,
			       double atol, double rtol, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double lim = atol + rtol * fabs(want[i]) + (tol ? tol[i] : 0.0);
		double diff = fabs((double)got[i] - want[i]);
		cr_assert(diff <= lim && !isnan(got[i]),
			  "%s: index %zu: expected %.9g, actual %.9g (|diff| %.3g > tol %.3g)",
			  what, i, want[i], (double)got[i], diff, lim);
	}
}

static inline double *dalloc(size_t n)
{
	cr_assert_lt(n_bufs, MAX_BUFS);
	double *p = calloc(n ? n : 1, sizeof(double));
	cr_assert_not_null(p);
	bufs[n_bufs++] = p;
	return p;
}

static inline int64_t elems(const struct swarm_tensor *t) { return swarm_tensor_elems(t); }

/* act_ref, and the activations with parameters a conv or the GEMM fuses: clip [a, b],
 * leaky relu (a), hardsigmoid max(0, min(1, a x + b)), hardswish x hardsigmoid(x, 1/6, 1/2). */
static inline double act_ref(double v, uint32_t act);
static inline double act_ref_p(double v, uint32_t act, double a, double b)
{
	double h;
	switch (act) {
	case SWARM_OP_CLIP:
		return v < a ? a : v > b ? b : v;
	case SWARM_OP_LEAKY_RELU:
		return v >= 0 ? v : a * v;
	case SWARM_OP_HARDSIGMOID:
		h = a * v + b;
		return h < 0 ? 0 : h > 1 ? 1 : h;
	case SWARM_OP_HARDSWISH:
		h = v / 6 + 0.5;
		return v * (h < 0 ? 0 : h > 1 ? 1 : h);
	default:
		return act_ref(v, act);
	}
}

/* The activations LINEAR fuses (and the unary ops of the same name), in float64. */
static inline double act_ref(double v, uint32_t act)
{
	switch (act) {
	case SWARM_OP_RELU:
		return v > 0 ? v : 0;
	case SWARM_OP_GELU:
		return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
	case SWARM_OP_SIGMOID:
		return 1.0 / (1.0 + exp(-v));
	case SWARM_OP_TANH:
		return tanh(v);
	default:
		return v;
	}
}

#endif /* SWARM_TESTS_KERNELS_OP_TEST_H */
