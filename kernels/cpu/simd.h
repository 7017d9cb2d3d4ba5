/* simd.h: what lets the CPU device's hot loops use the machine's vector width without
 * building for one machine.
 *
 * SWARM_CPU_MULTI defines a function twice over one always-inline body: once compiled for
 * AVX2 and FMA, once for the baseline, and calls the one the CPU runs (swarm_cpu_v3, read
 * once at load time). gcc's target_clones would do the same, but its x86-64-v3 level also
 * wants features (XSAVE, MOVBE...) that virtual machines often hide, and then picks the
 * baseline on an AVX2 machine. Elsewhere than x86-64 there is only the baseline.
 *
 * swarm_v8 is eight floats with no alignment beyond a float's: loads and stores through it
 * are unaligned vector moves (two SSE moves on the baseline, one AVX move in the v3 clone).
 *
 * The math functions are branch-free, so that loops over them vectorise:
 *   swarm_expf   e^x, relative error below 2e-7 over the range where e^x is a normal float
 *                (clamped outside it: 0 below -87.3, 2.2e38 above 88.3)
 *   swarm_erfcf  erfc(z) for 0 <= z < 9, relative error below 5e-7 (Numerical Recipes'
 *                Chebyshev fit, 1.2e-7, evaluated in floats with z^2 split exactly);
 *                erfc(9), 4e-37, past 9
 *   swarm_erff   erf(x): an odd Taylor polynomial below 0.75, 1 - erfc above; error below
 *                3e-7 relative
 *   swarm_gelu   0.5 x (1 + erf(x / sqrt 2)) as max(x, 0) - 0.5 |x| erfc(|x| / sqrt 2) (by a
 *                cheaper fit of erfc), so that it stays accurate where erf is near -1: error
 *                below 6e-7 max(1, |x|)
 * tests/kernels/test_simd_math.c checks each against libm in double precision.
 */
#ifndef SWARM_KERNELS_CPU_SIMD_H
#define SWARM_KERNELS_CPU_SIMD_H

#include <stdint.h>
#include <string.h>

#define SWARM_INLINE static inline __attribute__((always_inline))

/* 1 when the CPU has AVX2 and FMA (and the build can use them), else 0. */
extern int swarm_cpu_v3;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SWARM_CPU_V3_TARGET __attribute__((target("avx2,fma")))
/* SWARM_CPU_MULTI(static, int, f, (int a, float *b), (a, b)) defines f from f_body. */
#define SWARM_CPU_MULTI(storage, ret, name, params, args)                            \
	SWARM_CPU_V3_TARGET static ret name##_v3 params { return name##_body args; } \
	static ret name##_base params { return name##_body args; }                   \
	storage ret name params { return swarm_cpu_v3 ? name##_v3 args : name##_base args; }
#define SWARM_CPU_MULTI_VOID(storage, name, params, args)                      \
	SWARM_CPU_V3_TARGET static void name##_v3 params { name##_body args; } \
	static void name##_base params { name##_body args; }                   \
	storage void name params                                               \
	{                                                                      \
		if (swarm_cpu_v3)                                              \
			name##_v3 args;                                        \
		else                                                           \
			name##_base args;                                      \
	}
#else
#define SWARM_CPU_MULTI(storage, ret, name, params, args) \
	storage ret name params { return name##_body args; }
#define SWARM_CPU_MULTI_VOID(storage, name, params, args) \
	storage void name params { name##_body args; }
#endif

typedef float swarm_v8 __attribute__((vector_size(32), aligned(4), may_alias));

typedef int32_t swarm_v8i __attribute__((vector_size(32), aligned(4), may_alias));

/* Where mask (a comparison's -1 or 0 lanes) is set, a's lane, else b's. */
#define SWARM_V8_SELECT(mask, a, b) \
	((swarm_v8)(((mask) & (swarm_v8i)(a)) | (~(mask) & (swarm_v8i)(b))))

/* Macros, not functions: a vector passed by value draws gcc's -Wpsabi outside the v3 clone. */
#define SWARM_V8_LOAD(p) (*(const swarm_v8 *)(p))
#define SWARM_V8_STORE(p, v) (*(swarm_v8 *)(p) = (v))
#define SWARM_V8_SET1(x) ((swarm_v8){ (x), (x), (x), (x), (x), (x), (x), (x) })

SWARM_INLINE float swarm_min_f(float a, float b) { return a < b ? a : b; }
SWARM_INLINE float swarm_max_f(float a, float b) { return a > b ? a : b; }

/* e^(hi + lo), lo small beside hi, hi + lo within [-87.3, 88.3] (unchecked): hi's reduction
 * is exact (Cody and Waite's two-part ln 2), so lo keeps the bits a sum hi + lo rounded to a
 * float would lose. */
SWARM_INLINE float swarm_exp_hl(float hi, float lo)
{
	/* x = n ln2 + r, |r| <= ln2 / 2: n by the round-to-nearest of adding 1.5 * 2^23 */
	const float n = ((hi + lo) * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = hi - n * 0.693145751953125f;
	r = r - n * 1.428606765330187045e-6f + lo;
	/* e^r by Taylor to r^7: the remainder is below 5e-9 relative for |r| <= 0.347 */
	float p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	const int32_t bits = ((int32_t)n + 127) << 23;
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	return p * scale;
}

/* *v = e^(*v) lane by lane, each lane within [-87.3, 88.3] (unchecked): swarm_exp_hl's
 * reduction and polynomial on 8 lanes, with its error. By pointer: a vector passed by value
 * draws gcc's -Wpsabi outside the v3 clone. */
SWARM_INLINE void swarm_v8_exp(swarm_v8 *v)
{
	const swarm_v8 x = *v;
	const swarm_v8 n = (x * SWARM_V8_SET1(1.44269504088896341f) + SWARM_V8_SET1(12582912.0f)) -
			   SWARM_V8_SET1(12582912.0f);
	swarm_v8 r = x - n * SWARM_V8_SET1(0.693145751953125f);
	r = r - n * SWARM_V8_SET1(1.428606765330187045e-6f);
	swarm_v8 p = SWARM_V8_SET1(1.0f / 5040.0f);
	p = p * r + SWARM_V8_SET1(1.0f / 720.0f);
	p = p * r + SWARM_V8_SET1(1.0f / 120.0f);
	p = p * r + SWARM_V8_SET1(1.0f / 24.0f);
	p = p * r + SWARM_V8_SET1(1.0f / 6.0f);
	p = p * r + SWARM_V8_SET1(0.5f);
	p = p * r + SWARM_V8_SET1(1.0f);
	p = p * r + SWARM_V8_SET1(1.0f);
	const swarm_v8i bits = (__builtin_convertvector(n, swarm_v8i) + 127) << 23;
	*v = p * (swarm_v8)bits;
}

SWARM_INLINE float swarm_expf(float x)
{
	return swarm_exp_hl(swarm_min_f(swarm_max_f(x, -87.3f), 88.3f), 0.0f);
}

SWARM_INLINE float swarm_erfcf(float z)
{
	/* past 9 erfc is below 4e-37: clamped there, e^ stays in range without checks */
	z = swarm_min_f(z, 9.0f);
	const float t = 1.0f / (1.0f + 0.5f * z);
	float p = 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	/* -z^2 as hi + lo, hi exact: a rounded z^2 would cost 6e-8 z^2 of relative error. z's
	 * top 12 significant bits squared fit a float; the rest is a small correction. */
	int32_t zb;
	memcpy(&zb, &z, sizeof zb);
	zb &= (int32_t)0xfffff000;
	float zh;
	memcpy(&zh, &zb, sizeof zh);
	const float zl = z - zh;
	return t * swarm_exp_hl(-(zh * zh), p - (zh + zh + zl) * zl);
}

/* erf(x) for |x| < 0.75: 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320 +
 * x^13/9360 - x^15/75600 + x^17/685440), the remainder below 1e-8 */
SWARM_INLINE float swarm_erf_small(float x)
{
	const float x2 = x * x;
	float p = 1.0f / 685440.0f;
	p = p * x2 - 1.0f / 75600.0f;
	p = p * x2 + 1.0f / 9360.0f;
	p = p * x2 - 1.0f / 1320.0f;
	p = p * x2 + 1.0f / 216.0f;
	p = p * x2 - 1.0f / 42.0f;
	p = p * x2 + 1.0f / 10.0f;
	p = p * x2 - 1.0f / 3.0f;
	p = p * x2 + 1.0f;
	return 1.12837916709551257f * x * p;
}

SWARM_INLINE float swarm_erff(float x)
{
	const float a = x < 0.0f ? -x : x;
	const float big = 1.0f - swarm_erfcf(a);
	const float v = a < 0.75f ? swarm_erf_small(a) : big;
	return x < 0.0f ? -v : v;
}

/* erfc(a / sqrt 2), a >= 0, by Abramowitz and Stegun's 7.1.28: 1 / (1 + a1 z + ... + a6 z^6)^16
 * at z = a / sqrt 2, the coefficients scaled by sqrt 2's powers to take a directly; 3e-7
 * absolute (the 16th power multiplies the float rounding of the polynomial: 2e-6 absolute near
 * 0 in floats). A quarter of swarm_erfcf's work: what GELU, the activation of whole networks,
 * can afford. SWARM_GELU_P(a, K) is its polynomial, K making each constant (a float or an
 * 8-lane vector). */
#define SWARM_GELU_P(a, K)                                                             \
	((((((K(4.30638e-5f * 0.125f) * (a) + K(2.765672e-4f * 0.1767766953f)) * (a) + \
	     K(1.520143e-4f * 0.25f)) *                                                \
		    (a) +                                                              \
	    K(9.2705272e-3f * 0.3535533906f)) *                                        \
		   (a) +                                                               \
	   K(4.22820123e-2f * 0.5f)) *                                                 \
		  (a) +                                                                \
	  K(7.05230784e-2f * 0.7071067812f)) *                                         \
		 (a) +                                                                 \
	 K(1.0f))
#define SWARM_GELU_SCALAR(c) (c)

/* GELU as max(x, 0) - 0.5 |x| erfc(|x| / sqrt 2): x (1 + erf(x / sqrt 2)) / 2 on both sides of 0
 * (below it the first term is 0), with no select on the sign: on Zen 1 a quarter faster than
 * taking 1 + erf(u) as erfc(-u) lane by lane; the 0.5 rides on the division (0.5 / p), and the
 * relu and the bound on |x| are one comparison each (a GELU of 96 x 8960 floats fused into a
 * 1x1 conv's tiles: 1.36 -> 1.1 ms). |x| is bounded in the product, so that +inf gives +inf, not
 * inf x 0, and -inf gives 0, GELU's limit there (x (1 + erf(x / sqrt 2)) / 2 in floats would
 * give NaN); NaN gives NaN. */
SWARM_INLINE float swarm_gelu(float x)
{
	const float a = __builtin_fabsf(x);
	float p = SWARM_GELU_P(a, SWARM_GELU_SCALAR);
	p = p * p;
	p = p * p;
	p = p * p;
	p = p * p;
	return (x > 0.0f ? x : 0.0f) - (a < 1e30f ? a : 1e30f) * (0.5f / p);
}

/* *v = swarm_gelu(*v) lane by lane: the same fit, the same error. */
SWARM_INLINE void swarm_v8_gelu(swarm_v8 *v)
{
	const swarm_v8 x = *v;
	const swarm_v8 a =
		(swarm_v8)((swarm_v8i)x & (swarm_v8i){ 0x7fffffff, 0x7fffffff, 0x7fffffff,
						       0x7fffffff, 0x7fffffff, 0x7fffffff,
						       0x7fffffff, 0x7fffffff });
	swarm_v8 p = SWARM_GELU_P(a, SWARM_V8_SET1);
	p = p * p;
	p = p * p;
	p = p * p;
	p = p * p;
	const swarm_v8 zero = SWARM_V8_SET1(0.0f), big = SWARM_V8_SET1(1e30f);
	*v = SWARM_V8_SELECT(x > zero, x, zero) -
	     SWARM_V8_SELECT(a < big, a, big) * (SWARM_V8_SET1(0.5f) / p);
}

#endif /* SWARM_KERNELS_CPU_SIMD_H */
