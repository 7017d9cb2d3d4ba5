/* plan.c: the device plan of swarmd and `swarm topo` (see plan.h). */
#include "runtime/plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/probe.h"
#endif

int swarm_plan_parse_devices(const char *spec, int max, struct swarm_plan_request *req)
{
	if (!strcmp(spec, "gpu")) {
		req->mode = SWARM_PLAN_GPU;
		return 0;
	}
	char *end;
	if (strncmp(spec, "cpu:", 4) != 0)
		return -EINVAL;
	long v = strtol(spec + 4, &end, 10);
	if (end == spec + 4 || *end || v < 1 || v > max)
		return -EINVAL;
	req->mode = SWARM_PLAN_CPU;
	req->n_cpu = (int)v;
	return 0;
}

int swarm_plan_find_gpus(const struct swarm_topology *t, struct swarm_gpu_info *gpus, int max,
			 char *why, size_t why_len)
{
#ifdef SWARM_HAVE_CUDA
	int n = 0;
	int err = swarm_cuda_device_count(&n);
	if (err || n <= 0) {
		snprintf(why, why_len, "no CUDA GPU: %s (%s)", swarm_cuda_last_error(),
			 strerror(err < 0 ? -err : ENODEV));
		return 0;
	}
	if (n > max)
		n = max;
	for (int i = 0; i < n; i++) {
		memset(&gpus[i], 0, sizeof gpus[i]);
		gpus[i].cuda_index = i;
		gpus[i].numa_node = -1;
		if (swarm_cuda_pci_bus_id(i, gpus[i].busid, sizeof gpus[i].busid) == 0)
			gpus[i].numa_node = swarm_topology_busid_numa(t, gpus[i].busid);
	}
	return n;
#else
	(void)t;
	(void)gpus;
	(void)max;
	snprintf(
		why, why_len,
		"no CUDA GPU: CUDA is not built into this swarmd and swarm (configured without nvcc "
		"or with -DSWARM_CUDA=OFF)");
	return 0;
#endif
}

/* --instances: each planned device becomes req->instances devices of the same GPU (or CPU
 * node), with its cores split among them. Returns the new count, or 0 with why. */
static int plan_instances(const struct swarm_topology *t, int instances,
			  struct swarm_device_plan *plan, int *gpu_of, int n, int max, char *why,
			  size_t why_len)
{
	struct swarm_device_plan *base = malloc((size_t)n * sizeof *base);
	int *base_gpu = malloc((size_t)n * sizeof *base_gpu);
	int m = -ENOMEM;
	if (base && base_gpu) {
		memcpy(base, plan, (size_t)n * sizeof *plan);
		memcpy(base_gpu, gpu_of, (size_t)n * sizeof *gpu_of);
		m = swarm_topology_plan_instances(t, base, n, instances, plan, max);
	}
	if (m > 0)
		for (int k = 0; k < m; k++)
			gpu_of[k] = base_gpu[k / instances];
	else
		snprintf(why, why_len, "--instances %d for %d devices: %s", instances, n,
			 m == -E2BIG ? "more workers than swarmd serves" :
				       strerror(m < 0 ? -m : EINVAL));
	free(base);
	free(base_gpu);
	return m > 0 ? m : 0;
}

int swarm_plan_devices(const struct swarm_topology *t, const struct swarm_plan_request *req,
		       const struct swarm_gpu_info *gpus, int n_gpus,
		       struct swarm_device_plan *plan, int *gpu_of, int max, char *why,
		       size_t why_len)
{
	int n;
	if (req->mode != SWARM_PLAN_CPU && n_gpus > 0) {
		n = swarm_topology_plan_gpus(t, gpus, n_gpus, plan, max);
		if (n <= 0) {
			snprintf(why, why_len, "cannot plan the GPU workers: %s",
				 strerror(n < 0 ? -n : ENODEV));
			return 0;
		}
		for (int i = 0; i < n; i++)
			gpu_of[i] = gpus[i].cuda_index;
	} else if (req->mode == SWARM_PLAN_GPU) {
		/* why says why there is no GPU (swarm_plan_find_gpus wrote it) */
		if (!why[0])
			snprintf(why, why_len, "no GPU");
		return 0;
	} else {
		n = swarm_topology_plan_cpu(t, req->mode == SWARM_PLAN_CPU ? req->n_cpu : 0, plan,
					    max);
		if (n <= 0) {
			snprintf(why, why_len, "no devices to serve: the topology has no cores");
			return 0;
		}
		for (int i = 0; i < n; i++)
			gpu_of[i] = -1;
	}
	if (req->instances > 1)
		n = plan_instances(t, req->instances, plan, gpu_of, n, max, why, why_len);
	return n;
}
