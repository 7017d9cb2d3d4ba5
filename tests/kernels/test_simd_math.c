/* test_simd_math.c: the CPU device's branch-free math (kernels/cpu/simd.h) against libm in
 * double precision, over dense sweeps of each function's range. The bounds are the ones the
 * header states. */
#include <criterion/criterion.h>
#include <math.h>

#include "kernels/cpu/simd.h"

/* The largest relative error of f against ref over [lo, hi) in steps of step (ref 0 skipped). */
static double worst(float (*f)(float), double (*ref)(double), float lo, float hi, float step,
		    float *at)
{
	double w = 0;
	for (float x = lo; x < hi; x += step) {
		double r = ref((double)x);
		if (r == 0 || !isfinite(r))
			continue;
		double e = fabs((double)f(x) - r) / fabs(r);
		if (e > w) {
			w = e;
			*at = x;
		}
	}
	return w;
}

static float expf_(float x) { return swarm_expf(x); }
static float erfcf_(float x) { return swarm_erfcf(x); }
static float erff_(float x) { return swarm_erff(x); }
static double gelu_ref(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

Test(simd_math, expf_within_2e7_relative)
{
	float at = 0;
	double w = worst(expf_, exp, -87.0f, 88.0f, 1.7e-4f, &at);
	cr_expect(w < 2e-7, "swarm_expf: relative error %.3g at %g", w, (double)at);
	cr_expect(swarm_expf(-200.0f) < 1e-37f && swarm_expf(-200.0f) >= 0.0f);
	cr_expect(isfinite(swarm_expf(200.0f)) && swarm_expf(200.0f) > 1e38f);
}

Test(simd_math, erfcf_within_5e7_relative)
{
	float at = 0;
	double w = worst(erfcf_, erfc, 0.0f, 9.0f, 1.3e-5f, &at);
	cr_expect(w < 5e-7, "swarm_erfcf: relative error %.3g at %g", w, (double)at);
	cr_expect(swarm_erfcf(50.0f) >= 0.0f && swarm_erfcf(50.0f) < 1e-30f);
}

Test(simd_math, erff_within_3e7_relative)
{
	float at = 0;
	double w = worst(erff_, erf, -6.0f, 6.0f, 1.1e-5f, &at);
	cr_expect(w < 3e-7, "swarm_erff: relative error %.3g at %g", w, (double)at);
	cr_expect(swarm_erff(0.0f) == 0.0f);
	cr_expect(swarm_erff(20.0f) == 1.0f && swarm_erff(-20.0f) == -1.0f);
}

/* GELU's error against max(1, |x|): where it is tiny (x very negative) x / sqrt 2 rounded to
 * a float alone moves it by more than 1e-6 of itself, and nothing downstream can tell. */
Test(simd_math, gelu_within_6e7_of_max_1_x)
{
	double w = 0;
	float at = 0;
	for (float x = -12.0f; x < 12.0f; x += 2.3e-5f) {
		double e = fabs((double)swarm_gelu(x) - gelu_ref(x)) / fmax(1.0, fabs((double)x));
		if (e > w) {
			w = e;
			at = x;
		}
	}
	cr_expect(w < 6e-7, "swarm_gelu: error %.3g of max(1, |x|) at %g", w, (double)at);
	cr_expect(swarm_gelu(-20.0f) <= 0.0f && swarm_gelu(-20.0f) > -1e-30f);
	/* the ends: +inf stays +inf, NaN NaN; 1e30 and -1e30 where erfc has long underflowed */
	cr_expect(swarm_gelu(INFINITY) == INFINITY, "gelu(inf) %g", (double)swarm_gelu(INFINITY));
	cr_expect(isnan(swarm_gelu(NAN)));
	cr_expect(swarm_gelu(1e30f) == 1e30f && swarm_gelu(-1e30f) == 0.0f);
	/* -inf: GELU's limit, 0 (x (1 + erf(x / sqrt 2)) / 2 in floats gives NaN there) */
	cr_expect(swarm_gelu(-INFINITY) == 0.0f, "gelu(-inf) %g", (double)swarm_gelu(-INFINITY));
	float in[8] = { INFINITY, NAN, 1e30f, -1e30f, 0.0f, -0.0f, -INFINITY, -3.0f }, out[8];
	swarm_v8 v = SWARM_V8_LOAD(in);
	swarm_v8_gelu(&v);
	SWARM_V8_STORE(out, v);
	cr_expect(out[0] == INFINITY && isnan(out[1]) && out[2] == 1e30f && out[3] == 0.0f,
		  "v8 gelu at the ends: %g %g %g %g", (double)out[0], (double)out[1],
		  (double)out[2], (double)out[3]);
	for (int j = 4; j < 8; j++)
		cr_expect(out[j] == swarm_gelu(in[j]), "v8 and scalar gelu(%g) differ",
			  (double)in[j]);
}

/* The 8-lane forms (the GEMM's tile and the softmax use them) against the same references:
 * the same fits, so the same bounds, lane by lane. */
Test(simd_math, v8_exp_and_gelu_within_their_scalar_bounds)
{
	double we = 0, wg = 0;
	float at_e = 0, at_g = 0;
	for (float x0 = -87.0f; x0 < 88.0f; x0 += 8 * 1.7e-3f) {
		float in[8], out[8];
		for (int j = 0; j < 8; j++)
			in[j] = x0 + (float)j * 1.7e-3f;
		swarm_v8 v = SWARM_V8_LOAD(in);
		swarm_v8_exp(&v);
		SWARM_V8_STORE(out, v);
		for (int j = 0; j < 8; j++) {
			double e = fabs((double)out[j] - exp((double)in[j])) / exp((double)in[j]);
			if (e > we) {
				we = e;
				at_e = in[j];
			}
		}
	}
	for (float x0 = -12.0f; x0 < 12.0f; x0 += 8 * 2.3e-5f) {
		float in[8], out[8];
		for (int j = 0; j < 8; j++)
			in[j] = x0 + (float)j * 2.3e-5f;
		swarm_v8 v = SWARM_V8_LOAD(in);
		swarm_v8_gelu(&v);
		SWARM_V8_STORE(out, v);
		for (int j = 0; j < 8; j++) {
			double e = fabs((double)out[j] - gelu_ref(in[j])) /
				   fmax(1.0, fabs((double)in[j]));
			if (e > wg) {
				wg = e;
				at_g = in[j];
			}
		}
	}
	cr_expect(we < 2e-7, "swarm_v8_exp: relative error %.3g at %g", we, (double)at_e);
	cr_expect(wg < 6e-7, "swarm_v8_gelu: error %.3g of max(1, |x|) at %g", wg, (double)at_g);
}
