/* test_cuda.c: the CUDA probe (kernels/cuda/probe.h) against the CPU.
 *
 * Where there is no GPU (CI has nvcc but no GPU) the tests that need one are skipped with the
 * reason the CUDA runtime gave, never passed; the tests that need no GPU check that asking
 * costs no crash and that bad arguments are refused before any CUDA call.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/probe.h"

#define AFFINE_N 1000003u /* not a multiple of any block size: the tail is exercised */

/* Skips the calling test, visibly, when this machine has no usable CUDA GPU. */
static void require_gpu(void)
{
	int count = 0;
	int ret = swarm_cuda_device_count(&count);

	if (ret < 0 || count <= 0)
		cr_skip_test("no CUDA GPU on this machine: %s (%s)", swarm_cuda_last_error(),
			     strerror(-ret));
}

/* xorshift64*: deterministic, so a failure reproduces with the same inputs. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Fills x with non-zero values of either sign, with magnitudes in [0.01, 100). */
static void fill_nonzero(float *x, size_t n, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < n; i++) {
		uint64_t r = rng_next(&s);
		float mag = 0.01f + (float)((r >> 40) * (100.0 / (double)(1ull << 24)));

		x[i] = (r & 1) ? -mag : mag;
	}
}

/* Compares y with a*x + b computed on the CPU; prints the first mismatches with their values
 * and fails the test if there is any. */
static void expect_affine(const float *x, const float *y, size_t n, float a, float b)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		float want = fmaf(a, x[i], b);
		float tol = 1e-5f * fmaxf(1.0f, fabsf(want));

		if (!(fabsf(y[i] - want) <= tol)) {
			if (bad < 10)
				cr_log_error("y[%zu] = %.9g, want %.9g (x = %.9g, a = %g, b = %g)",
					     i, (double)y[i], (double)want, (double)x[i], (double)a,
					     (double)b);
			bad++;
		}
	}
	cr_assert_eq(bad, 0, "%zu of %zu outputs differ from the CPU beyond the tolerance", bad, n);
}

Test(kernels_cuda, device_count_reports_gpus_or_negative_errno)
{
	int count = -1;
	int ret = swarm_cuda_device_count(&count);

	if (ret == 0) {
		cr_expect_gt(count, 0, "ret 0 with count %d", count);
	} else {
		cr_expect_lt(ret, 0, "ret %d is neither 0 nor a negative errno", ret);
		cr_expect_eq(count, 0, "ret %d (%s) with count %d, want 0", ret, strerror(-ret),
			     count);
		cr_expect_neq(swarm_cuda_last_error()[0], '\0', "ret %d without a message", ret);
		cr_log_info("no CUDA GPU: %s (%s)", swarm_cuda_last_error(), strerror(-ret));
	}
}

Test(kernels_cuda, device_count_null_returns_einval)
{
	int ret = swarm_cuda_device_count(NULL);

	cr_expect_eq(ret, -EINVAL, "ret %d, want %d", ret, -EINVAL);
}

Test(kernels_cuda, affine_null_buffers_return_einval)
{
	float y[4];
	int ret = swarm_cuda_affine_f32(NULL, y, 4, 1.0f, 0.0f);

	cr_expect_eq(ret, -EINVAL, "NULL x: ret %d, want %d", ret, -EINVAL);
	ret = swarm_cuda_affine_f32(y, NULL, 4, 1.0f, 0.0f);
	cr_expect_eq(ret, -EINVAL, "NULL y: ret %d, want %d", ret, -EINVAL);
}

Test(kernels_cuda_gpu, affine_matches_cpu)
{
	const float a = 1.75f, b = -3.25f;
	float *x, *y;
	int ret;

	require_gpu();
	x = malloc(AFFINE_N * sizeof(*x));
	y = malloc(AFFINE_N * sizeof(*y));
	cr_assert(x && y, "malloc of 2 x %u floats failed", AFFINE_N);
	fill_nonzero(x, AFFINE_N, 0x9e3779b97f4a7c15ull);
	memset(y, 0, AFFINE_N * sizeof(*y));

	ret = swarm_cuda_affine_f32(x, y, AFFINE_N, a, b);
	cr_assert_eq(ret, 0, "swarm_cuda_affine_f32: ret %d (%s): %s", ret, strerror(-ret),
		     swarm_cuda_last_error());
	expect_affine(x, y, AFFINE_N, a, b);
	free(y);
	free(x);
}

Test(kernels_cuda_gpu, affine_in_place_matches_cpu)
{
	const float a = -0.5f, b = 2.0f;
	float *x, *y;
	int ret;

	require_gpu();
	x = malloc(AFFINE_N * sizeof(*x));
	y = malloc(AFFINE_N * sizeof(*y));
	cr_assert(x && y, "malloc of 2 x %u floats failed", AFFINE_N);
	fill_nonzero(x, AFFINE_N, 12345);
	memcpy(y, x, AFFINE_N * sizeof(*y));

	ret = swarm_cuda_affine_f32(y, y, AFFINE_N, a, b);
	cr_assert_eq(ret, 0, "swarm_cuda_affine_f32 in place: ret %d (%s): %s", ret, strerror(-ret),
		     swarm_cuda_last_error());
	expect_affine(x, y, AFFINE_N, a, b);
	free(y);
	free(x);
}
