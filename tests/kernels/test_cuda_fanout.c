/* test_cuda_fanout.c: the NCCL broadcast with a deadline (kernels/cuda/nccl_bcast.h), the
 * block of swarmd's weight fan-out. kernels_cuda_fanout runs anywhere (bad arguments are
 * refused before NCCL is touched); kernels_cuda_fanout_gpu runs behind cuda-gate, so that
 * without a GPU ctest reports it as skipped. The several-GPU broadcast awaits a machine with
 * several GPUs; one GPU tests the one-rank case and the deadline. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

Test(kernels_cuda_fanout, bad_arguments_are_einval_before_nccl)
{
	uint8_t id[SWARM_NCCL_ID_BYTES] = { 0 };
	char buf[16];
	double gbps = -1;
	cr_expect_eq(swarm_nccl_broadcast_timeout(NULL, id, 2, 0, 0, buf, sizeof buf, 100, &gbps),
		     -EINVAL);
	cr_expect_eq(gbps, 0.0, "gbps is zeroed on failure");
	struct swarm_device *cpu = NULL;
	cr_assert_eq(swarm_device_cpu_create(1, &cpu), 0);
	cr_expect_eq(swarm_nccl_broadcast_timeout(cpu, id, 2, 0, 0, buf, sizeof buf, 100, NULL),
		     -EINVAL, "a CPU device");
	cpu->i->destroy(cpu);
}

static struct swarm_device *open_gpu(void)
{
	struct swarm_device *dev = NULL;
	int rc = swarm_device_cuda_create(0, &dev);
	cr_assert_eq(rc, 0, "cuda-gate found a GPU, create failed: %d (%s)", rc,
		     swarm_cuda_last_error());
	return dev;
}

Test(kernels_cuda_fanout_gpu, bad_timeout_and_ranks_are_einval)
{
	struct swarm_device *dev = open_gpu();
	uint8_t id[SWARM_NCCL_ID_BYTES] = { 0 };
	void *p = dev->i->alloc(dev, 64);
	cr_assert_not_null(p);
	cr_expect_eq(swarm_nccl_broadcast_timeout(dev, id, 1, 0, 0, p, 64, -1, NULL), -EINVAL);
	cr_expect_eq(swarm_nccl_broadcast_timeout(dev, id, 2, 2, 0, p, 64, 100, NULL), -EINVAL);
	cr_expect_eq(swarm_nccl_broadcast_timeout(dev, id, 2, 0, 2, p, 64, 100, NULL), -EINVAL);
	dev->i->free(dev, p);
	dev->i->destroy(dev);
}

/* The non-blocking path with one rank: the buffer comes back unchanged. */
Test(kernels_cuda_fanout_gpu, single_rank_with_a_deadline_leaves_the_buffer_unchanged)
{
	struct swarm_device *dev = open_gpu();
	const size_t n = (4u << 20) + 5;
	uint8_t id[SWARM_NCCL_ID_BYTES];
	unsigned char *want = malloc(n), *back = malloc(n);
	cr_assert(want && back);
	for (size_t i = 0; i < n; i++)
		want[i] = (unsigned char)(i * 131u + 7u);
	int rc = swarm_nccl_unique_id(id);
	cr_assert_eq(rc, 0, "unique id: %d (%s)", rc, swarm_cuda_last_error());
	void *p = dev->i->alloc(dev, n);
	cr_assert_not_null(p);
	cr_assert_eq(dev->i->upload(dev, p, want, n), 0);
	cr_assert_eq(dev->i->synchronize(dev), 0);
	double gbps = -1;
	rc = swarm_nccl_broadcast_timeout(dev, id, 1, 0, 0, p, n, 30000, &gbps);
	cr_assert_eq(rc, 0, "one-rank broadcast with a deadline: %d (%s)", rc,
		     swarm_cuda_last_error());
	cr_expect_geq(gbps, 0.0);
	memset(back, 0, n);
	cr_assert_eq(dev->i->download(dev, back, p, n), 0);
	cr_assert_eq(dev->i->synchronize(dev), 0);
	cr_expect_eq(memcmp(back, want, n), 0, "the buffer changed");
	dev->i->free(dev, p);
	dev->i->destroy(dev);
	free(want);
	free(back);
}

/* Rank 0 of 2 with no rank 1 ever joining (a worker that died before its part): the call
 * gives up at its deadline with -ETIMEDOUT, instead of hanging, and the device still works. */
Test(kernels_cuda_fanout_gpu, a_rank_that_never_joins_costs_a_timeout_not_a_hang, .timeout = 60)
{
	struct swarm_device *dev = open_gpu();
	uint8_t id[SWARM_NCCL_ID_BYTES];
	int rc = swarm_nccl_unique_id(id);
	cr_assert_eq(rc, 0, "unique id: %d (%s)", rc, swarm_cuda_last_error());
	void *p = dev->i->alloc(dev, 4096);
	cr_assert_not_null(p);
	double t0 = now_s();
	rc = swarm_nccl_broadcast_timeout(dev, id, 2, 0, 0, p, 4096, 2000, NULL);
	double dt = now_s() - t0;
	cr_expect_eq(rc, -ETIMEDOUT, "a lone rank of two: %d (%s), want -ETIMEDOUT", rc,
		     swarm_cuda_last_error());
	cr_expect_lt(dt, 20.0, "gave up after %.1f s for a 2 s deadline", dt);
	/* The device is still usable after the abort. */
	unsigned char x[64] = { 1, 2, 3 }, y[64] = { 0 };
	cr_expect_eq(dev->i->upload(dev, p, x, sizeof x), 0);
	cr_expect_eq(dev->i->download(dev, y, p, sizeof y), 0);
	cr_expect_eq(dev->i->synchronize(dev), 0);
	cr_expect_eq(memcmp(x, y, sizeof x), 0);
	dev->i->free(dev, p);
	dev->i->destroy(dev);
}
