/* topology.h: the machine as swarmd sees it, through hwloc: NUMA nodes, their cores and
 * distances, and the plan that spreads virtual CPU devices over them as real GPUs would be.
 * `--topology FILE.xml` loads an hwloc XML in place of the live machine. */
#ifndef SWARM_RUNTIME_TOPOLOGY_H
#define SWARM_RUNTIME_TOPOLOGY_H

#include <stddef.h>

#include "swarm/swarm.h"

struct swarm_topology;

struct swarm_device_plan {
	int index;
	char name[32];             /* "cpu:0" */
	int numa_node;             /* hwloc logical index of the node, -1 unknown */
	char cpus[SWARM_CPUS_MAX]; /* the PUs the worker binds to, as a cpulist */
};

/* Loads this machine's topology (xml_path NULL) or an hwloc XML file. Returns 0 or -errno
 * (the message goes to the log). */
int swarm_topology_load(const char *xml_path, struct swarm_topology **out);
void swarm_topology_free(struct swarm_topology *t);

/* NUMA nodes with at least one core. */
int swarm_topology_numa_count(const struct swarm_topology *t);

/* The NUMA node of the PU with OS index cpu, -1 when unknown. */
int swarm_topology_cpu_numa(const struct swarm_topology *t, int cpu);

/* The relative NUMA distance between nodes a and b (10 for the same node, as in ACPI SLIT;
 * 10 or 20 when hwloc has no matrix). Fits swarm_balancer_pick's distance argument. */
int swarm_topology_distance(void *t, int a, int b);

/* Plans n virtual CPU devices (n == 0: one per NUMA node): device i on node i mod nodes,
 * the node's cores split evenly among its devices (shared round-robin when there are more
 * devices than cores). Returns the count written (at most max) or -errno. */
int swarm_topology_plan_cpu(const struct swarm_topology *t, int n, struct swarm_device_plan *out,
			    int max);

/* Binds the calling process's threads to cpulist and its memory to numa_node (-1: no
 * membind), before it allocates anything. Writes what happened into note (for the log and
 * the ready message): membind can be refused on single-node or sandboxed kernels, which is
 * reported, not fatal. Returns 0, or -errno when the cpu binding itself failed. */
int swarm_topology_bind_self(const char *cpulist, int numa_node, char *note, size_t note_len);

#endif /* SWARM_RUNTIME_TOPOLOGY_H */
