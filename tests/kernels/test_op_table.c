/* test_op_table.c: the one table of op contracts (kernels/op.h): every op has a complete
 * entry, names round-trip, the attributes it needs are among those it takes, inference keeps
 * the batch symbol in dim 0 and blames the inputs a refusal is about, and the device check
 * (kernels/check.h) is the same rule on concrete shapes.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "kernels/check.h"
#include "kernels/op.h"
#include "swarm/swarm.h"

Test(kernels_op_table, every_op_has_a_complete_entry)
{
	for (uint32_t op = 0; op < SWARM_OP_COUNT; op++) {
		const struct swarm_op_info *i = swarm_op_info(op);
		cr_assert_not_null(i, "op %u has no entry", op);
		cr_assert_not_null(i->name, "op %u has no name", op);
		cr_assert_not_null(i->infer, "%s has no infer", i->name);
		cr_assert(i->min_in >= 1 && i->min_in <= i->max_in &&
				  i->max_in <= SWARM_NODE_MAX_INPUTS,
			  "%s takes %u..%u inputs", i->name, i->min_in, i->max_in);
		cr_assert_eq(i->required & ~i->attrs, 0, "%s needs attributes it does not take",
			     i->name);
		cr_assert_lt(i->attrs, 1u << SWARM_ATTR_COUNT, "%s takes unknown attributes",
			     i->name);
		cr_assert_eq((i->index_in | i->f32_in) >> i->max_in, 0,
			     "%s classes inputs it cannot have", i->name);
		cr_assert_eq(swarm_op_from_name(i->name), (int)op, "%s does not round-trip",
			     i->name);
		cr_assert_str_eq(swarm_op_name(op), i->name);
		for (uint32_t other = 0; other < op; other++)
			cr_assert_str_neq(swarm_op_info(other)->name, i->name, "two ops named %s",
					  i->name);
	}
	cr_assert_null(swarm_op_info(SWARM_OP_COUNT));
	cr_assert_null(swarm_op_name(SWARM_OP_COUNT));
	cr_assert_eq(swarm_op_from_name("conv9d"), -1);
	cr_assert_eq(swarm_op_from_name(NULL), -1);
}

Test(kernels_op_table, attribute_names)
{
	for (int i = 0; i < SWARM_ATTR_COUNT; i++)
		cr_assert_not_null(swarm_attr_name(1u << i), "attribute bit %d has no name", i);
	cr_assert_str_eq(swarm_attr_name(SWARM_ATTR_HEADS), "heads");
	cr_assert_null(swarm_attr_name(0));
	cr_assert_null(swarm_attr_name(SWARM_ATTR_ACT | SWARM_ATTR_EPS));
	cr_assert_null(swarm_attr_name(1u << SWARM_ATTR_COUNT));
}

static struct swarm_tensor t2(uint32_t dtype, int64_t a, int64_t b)
{
	return (struct swarm_tensor){ .dtype = dtype, .ndim = 2, .shape = { a, b } };
}

Test(kernels_op_table, infer_keeps_the_batch_symbol)
{
	struct swarm_tensor x = t2(SWARM_DTYPE_F32, -1, 16), w = t2(SWARM_DTYPE_F32, 8, 16), out;
	const struct swarm_tensor *in[] = { &x, &w };
	struct swarm_op_params p = { .act = SWARM_OP_RELU };
	char why[128];
	struct swarm_op_args a = { .op = SWARM_OP_LINEAR,
				   .n_in = 2,
				   .in = in,
				   .p = &p,
				   .why = why,
				   .why_len = sizeof why };
	cr_assert_eq(swarm_op_infer(&a, &out), 0, "%s", why);
	cr_assert_eq(out.ndim, 2);
	cr_assert_eq(out.shape[0], -1, "the batch symbol became %lld", (long long)out.shape[0]);
	cr_assert_eq(out.shape[1], 8);
	cr_assert_eq(out.dtype, SWARM_DTYPE_F32);
}

Test(kernels_op_table, infer_blames_the_inputs_it_is_about)
{
	struct swarm_tensor x = t2(SWARM_DTYPE_F32, -1, 32), w = t2(SWARM_DTYPE_F32, 4, 16), out;
	const struct swarm_tensor *in[] = { &x, &w };
	struct swarm_op_params p = { .act = SWARM_OP_IDENTITY };
	char why[128] = "";
	struct swarm_op_args a = { .op = SWARM_OP_LINEAR,
				   .n_in = 2,
				   .in = in,
				   .p = &p,
				   .why = why,
				   .why_len = sizeof why };
	cr_assert_eq(swarm_op_infer(&a, &out), -EINVAL);
	cr_assert_eq(a.blame, 3u, "blame %#x", a.blame);
	cr_assert(strstr(why, "X [.., K] and W [N, K]"), "why: %s", why);

	/* A bad parameter blames no input. */
	w = t2(SWARM_DTYPE_F32, 4, 32);
	p.act = SWARM_OP_SOFTMAX;
	cr_assert_eq(swarm_op_infer(&a, &out), -EINVAL);
	cr_assert_eq(a.blame, 0u);
	cr_assert(strstr(why, "act"), "why: %s", why);

	/* Concat may not join on the batch dimension. */
	struct swarm_tensor v = { .dtype = SWARM_DTYPE_F32, .ndim = 1, .shape = { -1 } };
	const struct swarm_tensor *cin[] = { &v, &v };
	struct swarm_op_args c = { .op = SWARM_OP_CONCAT,
				   .n_in = 2,
				   .in = cin,
				   .p = &p,
				   .why = why,
				   .why_len = sizeof why };
	cr_assert_eq(swarm_op_infer(&c, &out), -EINVAL);
	cr_assert(strstr(why, "batch dimension"), "why: %s", why);
}

Test(kernels_op_table, infer_refuses_arity_and_unknown_ops)
{
	struct swarm_tensor x = t2(SWARM_DTYPE_F32, 2, 3), out;
	const struct swarm_tensor *in[] = { &x };
	struct swarm_op_params p = { 0 };
	char why[128] = "";
	struct swarm_op_args a = { .op = SWARM_OP_LAYERNORM,
				   .n_in = 1,
				   .in = in,
				   .p = &p,
				   .why = why,
				   .why_len = sizeof why };
	cr_assert_eq(swarm_op_infer(&a, &out), -EINVAL);
	cr_assert(strstr(why, "layernorm takes 3..3 inputs, not 1"), "why: %s", why);
	a.op = SWARM_OP_COUNT;
	cr_assert_eq(swarm_op_infer(&a, &out), -ENOTSUP);
}

/* The device check is the same rule on concrete shapes: out must be what infer says. */
Test(kernels_op_table, node_check_is_infer_on_concrete_shapes)
{
	float xd[6], wd[12], od[8];
	struct swarm_tensor x = t2(SWARM_DTYPE_F32, 2, 3), w = t2(SWARM_DTYPE_F32, 4, 3);
	struct swarm_tensor o = t2(SWARM_DTYPE_F32, 2, 4);
	x.data = xd, w.data = wd, o.data = od;
	struct swarm_node n = { .op = SWARM_OP_LINEAR, .n_in = 2, .in = { &x, &w }, .out = &o };
	struct swarm_node_dims d;
	cr_assert_eq(swarm_node_check(&n, 0, &d), 0);
	cr_assert_eq(d.m, 2);
	cr_assert_eq(d.n, 4);
	cr_assert_eq(d.k, 3);
	cr_assert_eq(d.elems, 8);
	o.shape[1] = 5;
	cr_assert_eq(swarm_node_check(&n, 0, &d), -EINVAL, "an out infer does not give");
	o.shape[1] = 4;
	x.dtype = SWARM_DTYPE_F16;
	w.dtype = SWARM_DTYPE_F16;
	o.dtype = SWARM_DTYPE_F16;
	cr_assert_eq(swarm_node_check(&n, 0, &d), -EINVAL, "f16 where the device takes f32 only");
	cr_assert_eq(swarm_node_check(&n, SWARM_DTYPE_BIT(SWARM_DTYPE_F16), &d), 0,
		     "f16 where the device's GEMMs take it");
	n.op = SWARM_OP_RELU;
	n.n_in = 1;
	cr_assert_eq(swarm_node_supported(&n, SWARM_DTYPE_BIT(SWARM_DTYPE_F16)), 0,
		     "f16 is for the GEMM ops only");
}
