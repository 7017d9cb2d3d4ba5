/* test_fanout.c: who loads from the registry and who receives by NCCL broadcast
 * (runtime/fanout.h). */
#include <criterion/criterion.h>
#include <errno.h>

#include "runtime/fanout.h"

#define DEV(i, g) ((struct swarm_fanout_dev){ .index = (i), .gpu = (g) })

static int has(const int *a, uint32_t n, int x)
{
	for (uint32_t i = 0; i < n; i++)
		if (a[i] == x)
			return 1;
	return 0;
}

Test(runtime_fanout, nothing_needed_plans_nothing)
{
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(NULL, 0, &p), 0);
	cr_expect_eq(p.n_ranks, 0);
	cr_expect_eq(p.n_alone, 0);
}

Test(runtime_fanout, one_gpu_loads_alone)
{
	struct swarm_fanout_dev d[] = { DEV(3, 0) };
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(d, 1, &p), 0);
	cr_expect_eq(p.n_ranks, 0, "a one-rank broadcast moves nothing");
	cr_assert_eq(p.n_alone, 1);
	cr_expect_eq(p.alone[0], 3);
}

Test(runtime_fanout, gpus_warming_together_form_one_group_rooted_at_the_lowest_index)
{
	struct swarm_fanout_dev d[] = { DEV(5, 5), DEV(2, 2), DEV(7, 7), DEV(4, 4) };
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(d, 4, &p), 0);
	cr_assert_eq(p.n_ranks, 4);
	cr_expect_eq(p.n_alone, 0);
	int want[] = { 2, 4, 5, 7 };
	for (int k = 0; k < 4; k++)
		cr_expect_eq(p.ranks[k], want[k], "rank %d is device %d, want %d", k, p.ranks[k],
			     want[k]);
}

Test(runtime_fanout, cpu_devices_always_load_alone)
{
	struct swarm_fanout_dev d[] = { DEV(0, -1), DEV(1, 0), DEV(2, -1), DEV(3, 1) };
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(d, 4, &p), 0);
	cr_assert_eq(p.n_ranks, 2);
	cr_expect_eq(p.ranks[0], 1);
	cr_expect_eq(p.ranks[1], 3);
	cr_assert_eq(p.n_alone, 2);
	cr_expect(has(p.alone, p.n_alone, 0) && has(p.alone, p.n_alone, 2));
}

Test(runtime_fanout, a_second_worker_on_a_gpu_in_the_group_loads_alone)
{
	/* NCCL takes one rank per GPU: devices 0 and 1 share GPU 0, 2 and 3 share GPU 1. */
	struct swarm_fanout_dev d[] = { DEV(0, 0), DEV(1, 0), DEV(2, 1), DEV(3, 1) };
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(d, 4, &p), 0);
	cr_assert_eq(p.n_ranks, 2);
	cr_expect_eq(p.ranks[0], 0);
	cr_expect_eq(p.ranks[1], 2);
	cr_assert_eq(p.n_alone, 2);
	cr_expect(has(p.alone, p.n_alone, 1) && has(p.alone, p.n_alone, 3));
}

Test(runtime_fanout, two_workers_of_one_gpu_load_alone_root_first)
{
	struct swarm_fanout_dev d[] = { DEV(4, 1), DEV(1, 1), DEV(0, -1) };
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(d, 3, &p), 0);
	cr_expect_eq(p.n_ranks, 0, "one GPU: no group");
	cr_assert_eq(p.n_alone, 3);
	cr_expect_eq(p.alone[0], 1, "the would-be root loads first, got %d", p.alone[0]);
	cr_expect(has(p.alone, 3, 4) && has(p.alone, 3, 0));
}

Test(runtime_fanout, bad_arguments_are_einval)
{
	struct swarm_fanout_dev d[SWARM_FANOUT_MAX + 1];
	struct swarm_fanout_plan p;
	for (int i = 0; i <= SWARM_FANOUT_MAX; i++)
		d[i] = DEV(i, i);
	cr_expect_eq(swarm_fanout_plan(d, SWARM_FANOUT_MAX + 1, &p), -EINVAL);
	cr_expect_eq(swarm_fanout_plan(NULL, 2, &p), -EINVAL);
	cr_expect_eq(swarm_fanout_plan(d, 2, NULL), -EINVAL);
	struct swarm_fanout_dev twice[] = { DEV(1, 0), DEV(1, 1) };
	cr_expect_eq(swarm_fanout_plan(twice, 2, &p), -EINVAL, "an index twice");
}

Test(runtime_fanout, the_largest_snapshot_is_one_group)
{
	struct swarm_fanout_dev d[SWARM_FANOUT_MAX];
	for (int i = 0; i < SWARM_FANOUT_MAX; i++)
		d[i] = DEV(SWARM_FANOUT_MAX - 1 - i, SWARM_FANOUT_MAX - 1 - i);
	struct swarm_fanout_plan p;
	cr_assert_eq(swarm_fanout_plan(d, SWARM_FANOUT_MAX, &p), 0);
	cr_expect_eq(p.n_ranks, SWARM_FANOUT_MAX);
	for (int k = 0; k < SWARM_FANOUT_MAX; k++)
		cr_expect_eq(p.ranks[k], k);
}
