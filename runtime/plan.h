/* plan.h: which devices swarmd serves, and with which cores and node each worker runs. One
 * planner for swarmd and for `swarm topo`, so that the plan the CLI shows is the plan swarmd
 * runs (--devices, --instances, and the GPUs placed by their PCI bus ids). A pure function of
 * the topology, the GPUs found, and the request: tested on hwloc XML fixtures. */
#ifndef SWARM_RUNTIME_PLAN_H
#define SWARM_RUNTIME_PLAN_H

#include <stddef.h>

#include "runtime/topology.h"

/* What --devices asked for. */
enum swarm_plan_mode {
	SWARM_PLAN_DEFAULT = 0, /* the GPUs if there are any, else one CPU device per node */
	SWARM_PLAN_CPU,         /* cpu:N */
	SWARM_PLAN_GPU,         /* gpu: every GPU, or an error */
};

struct swarm_plan_request {
	enum swarm_plan_mode mode;
	int n_cpu;     /* SWARM_PLAN_CPU: the count */
	int instances; /* --instances: workers per device (1: one each) */
};

/* Parses --devices SPEC ("cpu:N" with N from 1 to max, or "gpu") into req. Returns 0 or
 * -EINVAL. */
int swarm_plan_parse_devices(const char *spec, int max, struct swarm_plan_request *req);

/* The GPUs this process can drive, through the CUDA runtime, each placed on t by its PCI bus
 * id. Returns the count (at most max), or 0 with why there are none in why. */
int swarm_plan_find_gpus(const struct swarm_topology *t, struct swarm_gpu_info *gpus, int max,
			 char *why, size_t why_len);

/* The devices to serve for req, given the n_gpus GPUs found: plan[i] is device i and
 * gpu_of[i] its CUDA ordinal (-1 for a CPU device). Returns the count, or 0 with why in why
 * (no GPU for --devices gpu, too many workers, a topology with no cores). */
int swarm_plan_devices(const struct swarm_topology *t, const struct swarm_plan_request *req,
		       const struct swarm_gpu_info *gpus, int n_gpus,
		       struct swarm_device_plan *plan, int *gpu_of, int max, char *why,
		       size_t why_len);

#endif /* SWARM_RUNTIME_PLAN_H */
