/* test_builtin.c: the built-in CPU models of kernels/builtin.h: lookup by name, version and
 * id, consistent tensor specs, identity copying exactly its rows, affine computing 2x + 1,
 * and neither writing past the end of its output.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/segment.h"
#include "kernels/builtin.h"

#define GUARD 256
#define GUARD_BYTE 0xa5

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void fill_random(void *p, size_t n, uint64_t seed)
{
	unsigned char *b = p;
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(rng_next(&s) >> 56);
}

/* A buffer of n bytes followed by GUARD guard bytes. */
static unsigned char *alloc_guarded(size_t n)
{
	unsigned char *p = malloc(n + GUARD);
	cr_assert_not_null(p, "malloc(%zu)", n + GUARD);
	memset(p, GUARD_BYTE, n + GUARD);
	return p;
}

static void assert_guard_intact(const unsigned char *p, size_t n, const char *what, uint32_t rows)
{
	for (size_t i = 0; i < GUARD; i++)
		cr_assert_eq(p[n + i], GUARD_BYTE,
			     "%s rows %u: byte %zu past the end is 0x%02x, want 0x%02x", what, rows,
			     i, p[n + i], GUARD_BYTE);
}

static const struct swarm_model_desc *must_find(const char *name, uint32_t version)
{
	const struct swarm_model_desc *m = swarm_builtin_find(name, version);
	cr_assert_not_null(m, "swarm_builtin_find(\"%s\", %u) = NULL", name, version);
	return m;
}

Test(kernels_builtin, find_identity_newest)
{
	const struct swarm_model_desc *m = must_find("identity", 0);
	cr_assert_str_eq(m->name, "identity");
	cr_assert_eq(m->id, SWARM_MODEL_IDENTITY, "id %u", m->id);
	cr_assert_geq(m->version, 1u, "version %u", m->version);
	cr_assert_eq(swarm_builtin_find("identity", m->version), m,
		     "find(identity, %u) is not the newest", m->version);
}

Test(kernels_builtin, find_affine_version_1)
{
	const struct swarm_model_desc *m = must_find("affine", 1);
	cr_assert_str_eq(m->name, "affine");
	cr_assert_eq(m->id, SWARM_MODEL_AFFINE, "id %u", m->id);
	cr_assert_eq(m->version, 1u, "version %u", m->version);
}

Test(kernels_builtin, unknown_name_returns_null)
{
	const char *names[] = {
		"", "identit", "identity2", "Identity", "AFFINE", "affine ", "nope"
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		cr_assert_null(swarm_builtin_find(names[i], 0), "find(\"%s\", 0) is not NULL",
			       names[i]);
}

Test(kernels_builtin, unknown_version_returns_null)
{
	const uint32_t versions[] = { 2, 99, UINT32_MAX };
	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		cr_assert_null(swarm_builtin_find("identity", versions[i]),
			       "find(identity, %u) is not NULL", versions[i]);
		cr_assert_null(swarm_builtin_find("affine", versions[i]),
			       "find(affine, %u) is not NULL", versions[i]);
	}
}

Test(kernels_builtin, by_id_round_trips)
{
	uint32_t n = 0;
	const struct swarm_model_desc *all = swarm_builtin_all(&n);
	cr_assert_not_null(all);
	cr_assert_geq(n, 2u, "%u built-in models", n);
	for (uint32_t i = 0; i < n; i++) {
		const struct swarm_model_desc *m = &all[i];
		cr_assert_eq(swarm_builtin_by_id(m->id), m, "by_id(%u) is not %s", m->id, m->name);
		cr_assert_eq(swarm_builtin_find(m->name, m->version), m,
			     "find(%s, %u) is not the listed model", m->name, m->version);
	}
	cr_assert_eq(swarm_builtin_by_id(SWARM_MODEL_IDENTITY), must_find("identity", 0));
	cr_assert_eq(swarm_builtin_by_id(SWARM_MODEL_AFFINE), must_find("affine", 0));
}

Test(kernels_builtin, unknown_id_returns_null)
{
	const uint32_t ids[] = { 0, 3, 99, UINT32_MAX };
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		cr_assert_null(swarm_builtin_by_id(ids[i]), "by_id(%u) is not NULL", ids[i]);
}

Test(kernels_builtin, names_and_ids_are_unique)
{
	uint32_t n = 0;
	const struct swarm_model_desc *all = swarm_builtin_all(&n);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++) {
			cr_assert_neq(all[i].id, all[j].id, "models %u and %u share id %u", i, j,
				      all[i].id);
			cr_assert(strcmp(all[i].name, all[j].name) != 0 ||
					  all[i].version != all[j].version,
				  "models %u and %u are both %s version %u", i, j, all[i].name,
				  all[i].version);
		}
}

static void check_spec(const struct swarm_model_desc *m, const swarm_tensor_spec *t,
		       const char *dir, uint32_t i)
{
	cr_assert_gt(strlen(t->name), 0, "%s %s %u has no name", m->name, dir, i);
	uint32_t size = swarm_dtype_size(t->dtype);
	cr_assert_gt(size, 0, "%s %s %s: unknown dtype %u", m->name, dir, t->name, t->dtype);
	cr_assert(t->ndim >= 1 && t->ndim <= SWARM_MAX_DIMS, "%s %s %s: ndim %u", m->name, dir,
		  t->name, t->ndim);
	cr_assert_eq(t->shape[0], -1, "%s %s %s: shape[0] = %lld, want -1", m->name, dir, t->name,
		     (long long)t->shape[0]);
	uint64_t bytes = size;
	for (uint32_t k = 1; k < t->ndim; k++) {
		cr_assert_gt(t->shape[k], 0, "%s %s %s: shape[%u] = %lld", m->name, dir, t->name, k,
			     (long long)t->shape[k]);
		bytes *= (uint64_t)t->shape[k];
	}
	cr_assert_eq(t->row_bytes, bytes,
		     "%s %s %s: row_bytes %llu, product of shape[1..] * %u = %llu", m->name, dir,
		     t->name, (unsigned long long)t->row_bytes, size, (unsigned long long)bytes);
}

Test(kernels_builtin, specs_are_consistent)
{
	uint32_t n = 0;
	const struct swarm_model_desc *all = swarm_builtin_all(&n);
	for (uint32_t i = 0; i < n; i++) {
		const struct swarm_model_desc *m = &all[i];
		cr_assert_not_null(m->run, "%s has no run", m->name);
		cr_assert(m->n_inputs >= 1 && m->n_inputs <= SWARM_MAX_TENSORS, "%s n_inputs %u",
			  m->name, m->n_inputs);
		cr_assert(m->n_outputs >= 1 && m->n_outputs <= SWARM_MAX_TENSORS, "%s n_outputs %u",
			  m->name, m->n_outputs);
		cr_assert_gt(m->max_rows, 0, "%s max_rows %u", m->name, m->max_rows);
		cr_assert_gt(m->default_slots, 0, "%s default_slots %u", m->name, m->default_slots);
		for (uint32_t k = 0; k < m->n_inputs; k++)
			check_spec(m, &m->inputs[k], "input", k);
		for (uint32_t k = 0; k < m->n_outputs; k++)
			check_spec(m, &m->outputs[k], "output", k);
	}
}

Test(kernels_builtin, identity_spec_is_u8_by_64)
{
	const struct swarm_model_desc *m = must_find("identity", 0);
	cr_assert_eq(m->n_inputs, 1u, "n_inputs %u", m->n_inputs);
	cr_assert_eq(m->n_outputs, 1u, "n_outputs %u", m->n_outputs);
	cr_assert_eq(m->inputs[0].dtype, SWARM_DTYPE_U8, "dtype %u", m->inputs[0].dtype);
	cr_assert_eq(m->inputs[0].ndim, 2u, "ndim %u", m->inputs[0].ndim);
	cr_assert_eq(m->inputs[0].row_bytes, 64u, "row_bytes %llu",
		     (unsigned long long)m->inputs[0].row_bytes);
	cr_assert_eq(m->outputs[0].row_bytes, 64u, "output row_bytes %llu",
		     (unsigned long long)m->outputs[0].row_bytes);
	cr_assert_eq((uint64_t)m->max_rows * 64, UINT64_C(16) << 20,
		     "max_rows %u: %llu bytes, want 16 MiB", m->max_rows,
		     (unsigned long long)m->max_rows * 64);
}

Test(kernels_builtin, affine_spec_is_f32_by_16)
{
	const struct swarm_model_desc *m = must_find("affine", 0);
	cr_assert_eq(m->n_inputs, 1u, "n_inputs %u", m->n_inputs);
	cr_assert_eq(m->n_outputs, 1u, "n_outputs %u", m->n_outputs);
	cr_assert_eq(m->inputs[0].dtype, SWARM_DTYPE_F32, "dtype %u", m->inputs[0].dtype);
	cr_assert_eq(m->outputs[0].dtype, SWARM_DTYPE_F32, "dtype %u", m->outputs[0].dtype);
	cr_assert_eq(m->inputs[0].shape[1], 16, "shape[1] %lld", (long long)m->inputs[0].shape[1]);
	cr_assert_eq(m->inputs[0].row_bytes, 64u, "row_bytes %llu",
		     (unsigned long long)m->inputs[0].row_bytes);
}

/* Runs identity on rows rows of random bytes and checks the copy and the guard. */
static void identity_case(uint32_t rows)
{
	const struct swarm_model_desc *m = must_find("identity", 0);
	size_t n = (size_t)rows * m->inputs[0].row_bytes;
	unsigned char *x = alloc_guarded(n), *y = alloc_guarded(n), *x0 = malloc(n + 1);
	cr_assert_not_null(x0);
	fill_random(x, n, 0x1d1d0000u + rows);
	memcpy(x0, x, n);
	const void *in[1] = { x };
	void *out[1] = { y };
	int rc = m->run(in, out, rows, m->default_weights);
	cr_assert_eq(rc, 0, "identity rows %u: run = %d", rows, rc);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(y[i], x0[i], "identity rows %u: byte %zu is 0x%02x, want 0x%02x", rows,
			     i, y[i], x0[i]);
	cr_assert_eq(memcmp(x, x0, n), 0, "identity rows %u changed its input", rows);
	assert_guard_intact(y, n, "identity output", rows);
	assert_guard_intact(x, n, "identity input", rows);
	free(x);
	free(y);
	free(x0);
}

Test(kernels_builtin, identity_copies_1_row) { identity_case(1); }

Test(kernels_builtin, identity_copies_7_rows) { identity_case(7); }

Test(kernels_builtin, identity_copies_1024_rows) { identity_case(1024); }

Test(kernels_builtin, identity_copies_max_rows)
{
	identity_case(must_find("identity", 0)->max_rows);
}

Test(kernels_builtin, identity_zero_rows_writes_nothing)
{
	const struct swarm_model_desc *m = must_find("identity", 0);
	unsigned char *x = alloc_guarded(0), *y = alloc_guarded(0);
	const void *in[1] = { x };
	void *out[1] = { y };
	int rc = m->run(in, out, 0, m->default_weights);
	cr_assert_eq(rc, 0, "identity rows 0: run = %d", rc);
	assert_guard_intact(y, 0, "identity output", 0);
	free(x);
	free(y);
}

/* Runs affine on rows rows of random non-zero floats against a double reference. */
static void affine_case(uint32_t rows)
{
	const struct swarm_model_desc *m = must_find("affine", 0);
	size_t n = (size_t)rows * m->inputs[0].row_bytes;
	size_t count = n / sizeof(float);
	unsigned char *xb = alloc_guarded(n), *yb = alloc_guarded(n);
	float *x = (float *)xb;
	const float *y = (const float *)yb;
	uint64_t s = 0xaff1e000u + rows;
	for (size_t i = 0; i < count; i++) {
		/* Magnitudes from 1e-3 to 1e4, both signs, never zero. */
		double mag = pow(10.0, -3.0 + 7.0 * (double)(rng_next(&s) >> 11) / 0x1p53);
		x[i] = (float)(rng_next(&s) & 1 ? mag : -mag);
		cr_assert_neq(x[i], 0.0f);
	}
	/* The exact edges: 2x + 1 == 0 and a value that doubles to a large one. */
	x[0] = -0.5f;
	if (count > 1)
		x[count - 1] = 1e30f;
	const void *in[1] = { xb };
	void *out[1] = { yb };
	int rc = m->run(in, out, rows, m->default_weights);
	cr_assert_eq(rc, 0, "affine rows %u: run = %d", rows, rc);
	for (size_t i = 0; i < count; i++) {
		double want = 2.0 * (double)x[i] + 1.0;
		double got = y[i];
		cr_assert_leq(fabs(got - want), 1e-6 * fabs(want),
			      "affine rows %u: y[%zu] = %.9g for x = %.9g, want %.9g", rows, i, got,
			      (double)x[i], want);
	}
	assert_guard_intact(yb, n, "affine output", rows);
	free(xb);
	free(yb);
}

Test(kernels_builtin, affine_computes_2x_plus_1_for_1_row) { affine_case(1); }

Test(kernels_builtin, affine_computes_2x_plus_1_for_7_rows) { affine_case(7); }

Test(kernels_builtin, affine_computes_2x_plus_1_for_1024_rows) { affine_case(1024); }

Test(kernels_builtin, affine_stays_in_bounds_on_hostile_bytes)
{
	/* NaNs, infinities and denormals from random bytes: any result, but no write past the
	 * end and no failure. */
	const struct swarm_model_desc *m = must_find("affine", 0);
	uint32_t rows = 33;
	size_t n = (size_t)rows * m->inputs[0].row_bytes;
	unsigned char *x = alloc_guarded(n), *y = alloc_guarded(n);
	fill_random(x, n, 0xbadbadu);
	const void *in[1] = { x };
	void *out[1] = { y };
	int rc = m->run(in, out, rows, m->default_weights);
	cr_assert_eq(rc, 0, "affine on random bytes: run = %d", rc);
	assert_guard_intact(y, n, "affine output", rows);
	free(x);
	free(y);
}
