/* test_plan.c: runtime/plan.h, the one device planner of swarmd and `swarm topo`, on the
 * committed hwloc XML fixtures: --devices parsing, the GPU plan, the CPU plan, --instances on
 * both, and the errors a user meets (no GPU for --devices gpu, more workers than allowed).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/plan.h"

#define FIXTURES SWARM_SOURCE_DIR "/tests/runtime/topologies/"
#define MAX 64

static struct swarm_topology *load(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, FIXTURES "%s.xml", name);
	struct swarm_topology *t = NULL;
	int rc = swarm_topology_load_io(path, &t);
	cr_assert_eq(rc, 0, "swarm_topology_load_io(%s) = %d", path, rc);
	return t;
}

Test(runtime_plan, parses_devices_specs_and_refuses_others)
{
	struct swarm_plan_request r = { 0 };
	cr_assert_eq(swarm_plan_parse_devices("gpu", MAX, &r), 0);
	cr_assert_eq(r.mode, SWARM_PLAN_GPU);
	cr_assert_eq(swarm_plan_parse_devices("cpu:3", MAX, &r), 0);
	cr_assert(r.mode == SWARM_PLAN_CPU && r.n_cpu == 3, "mode %d n %d", r.mode, r.n_cpu);
	const char *bad[] = { "cpu:0", "cpu:", "cpu:65", "cpu:2x", "gpus", "", "cpu:-1" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(swarm_plan_parse_devices(bad[i], MAX, &r), -EINVAL, "\"%s\" accepted",
			     bad[i]);
}

Test(runtime_plan, the_gpus_of_a_server_one_device_each_on_their_nodes)
{
	struct swarm_topology *t = load("2s-8gpu");
	struct swarm_gpu_info gpus[MAX];
	int n_gpus = swarm_topology_gpus(t, gpus, MAX);
	cr_assert_eq(n_gpus, 8);
	struct swarm_plan_request req = { .mode = SWARM_PLAN_DEFAULT, .instances = 1 };
	struct swarm_device_plan plan[MAX];
	int gpu_of[MAX];
	char why[256] = "";
	int n = swarm_plan_devices(t, &req, gpus, n_gpus, plan, gpu_of, MAX, why, sizeof why);
	cr_assert_eq(n, 8, "%d devices (%s)", n, why);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(gpu_of[i], gpus[i].cuda_index, "device %d drives GPU %d", i,
			     gpu_of[i]);
		cr_assert_eq(plan[i].numa_node, gpus[i].numa_node,
			     "device %d on node %d, its GPU on %d", i, plan[i].numa_node,
			     gpus[i].numa_node);
	}
	swarm_topology_free(t);
}

Test(runtime_plan, instances_apply_to_the_gpu_plan_as_swarmd_runs_it)
{
	struct swarm_topology *t = load("2s-8gpu");
	struct swarm_gpu_info gpus[MAX];
	int n_gpus = swarm_topology_gpus(t, gpus, MAX);
	struct swarm_plan_request req = { .mode = SWARM_PLAN_GPU, .instances = 2 };
	struct swarm_device_plan plan[MAX];
	int gpu_of[MAX];
	char why[256] = "";
	int n = swarm_plan_devices(t, &req, gpus, n_gpus, plan, gpu_of, MAX, why, sizeof why);
	cr_assert_eq(n, 16, "%d workers for 8 GPUs with 2 instances (%s)", n, why);
	for (int i = 0; i < n; i++)
		cr_assert_eq(gpu_of[i], gpus[i / 2].cuda_index, "worker %d (%s) drives GPU %d", i,
			     plan[i].name, gpu_of[i]);
	cr_assert_str_eq(plan[3].name, "gpu:1/1");
	swarm_topology_free(t);
}

Test(runtime_plan, cpu_devices_when_asked_or_when_there_is_no_gpu)
{
	struct swarm_topology *t = load("1s-4n-8gpu");
	struct swarm_device_plan plan[MAX];
	int gpu_of[MAX];
	char why[256] = "";
	struct swarm_plan_request req = { .mode = SWARM_PLAN_CPU, .n_cpu = 4, .instances = 1 };
	int n = swarm_plan_devices(t, &req, NULL, 0, plan, gpu_of, MAX, why, sizeof why);
	cr_assert_eq(n, 4, "%d devices for cpu:4 (%s)", n, why);
	for (int i = 0; i < n; i++)
		cr_assert_eq(gpu_of[i], -1, "CPU device %d drives GPU %d", i, gpu_of[i]);
	req = (struct swarm_plan_request){ .mode = SWARM_PLAN_DEFAULT, .instances = 3 };
	n = swarm_plan_devices(t, &req, NULL, 0, plan, gpu_of, MAX, why, sizeof why);
	cr_assert_eq(n, 12, "%d workers: one CPU device a node (4) times 3 instances (%s)", n, why);
	swarm_topology_free(t);
}

Test(runtime_plan, says_why_when_there_is_nothing_to_serve)
{
	struct swarm_topology *t = load("1s-1gpu");
	struct swarm_device_plan plan[MAX];
	int gpu_of[MAX];
	char why[256] = "no CUDA GPU: test";
	struct swarm_plan_request req = { .mode = SWARM_PLAN_GPU, .instances = 1 };
	int n = swarm_plan_devices(t, &req, NULL, 0, plan, gpu_of, MAX, why, sizeof why);
	cr_assert_eq(n, 0, "--devices gpu with no GPU planned %d devices", n);
	cr_assert(strstr(why, "no CUDA GPU"), "why: \"%s\"", why);
	struct swarm_gpu_info gpus[MAX];
	int n_gpus = swarm_topology_gpus(t, gpus, MAX);
	req.instances = MAX + 1;
	why[0] = 0;
	n = swarm_plan_devices(t, &req, gpus, n_gpus, plan, gpu_of, MAX, why, sizeof why);
	cr_assert_eq(n, 0, "%d workers past the limit", n);
	cr_assert(strstr(why, "more workers than swarmd serves"), "why: \"%s\"", why);
	swarm_topology_free(t);
}
