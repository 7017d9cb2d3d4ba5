/* topology.h: the machine as swarmd sees it, through hwloc: NUMA nodes, their cores, memory
 * and distances, every GPU's locality (PCI bus id to the hwloc PCI object to its first non-I/O
 * ancestor to a NUMA node), and the plans that give each device a node and cores: GPUs where
 * they sit, virtual CPU devices spread over the nodes as real GPUs would be.
 * `--topology FILE.xml` loads an hwloc XML in place of the live machine. */
#ifndef SWARM_RUNTIME_TOPOLOGY_H
#define SWARM_RUNTIME_TOPOLOGY_H

#include <stddef.h>

#include "swarm/swarm.h"

struct swarm_topology;

struct swarm_device_plan {
	int index;
	char name[32];             /* "cpu:0", "gpu:0" */
	int numa_node;             /* hwloc logical index of the node, -1 unknown */
	char cpus[SWARM_CPUS_MAX]; /* the PUs the worker binds to, as a cpulist */
};

/* Loads this machine's topology (xml_path NULL) or an hwloc XML file. Returns 0 or -errno
 * (the message goes to the log). The live machine is loaded without I/O objects (no GPUs:
 * swarm_topology_gpus finds none); an XML keeps its GPUs. */
int swarm_topology_load(const char *xml_path, struct swarm_topology **out);

/* The same with the live machine's GPUs and other important PCI devices, which hwloc finds
 * through its PCI discovery (slower, and it keeps a little memory of libpciaccess's for the
 * life of the process): for a process that places GPUs. */
int swarm_topology_load_io(const char *xml_path, struct swarm_topology **out);
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

/* A NUMA node as `swarm topo` shows it. */
struct swarm_numa_info {
	int index;                 /* hwloc logical index, the numbering swarm uses everywhere */
	int os_index;              /* the kernel's node number */
	int package;               /* logical index of its package, -1 when none */
	unsigned long long memory; /* bytes of local memory */
	char cpus[SWARM_CPUS_MAX]; /* its PUs, as a cpulist of OS indexes */
};

/* Describes node i (0 <= i < swarm_topology_numa_count). Returns 0 or -EINVAL. */
int swarm_topology_numa_info(const struct swarm_topology *t, int i, struct swarm_numa_info *out);

/* A GPU as hwloc places it. */
struct swarm_gpu_info {
	char busid[16];   /* PCI bus id, "0000:18:00.0" */
	int cuda_index;   /* from its "cudaN" OS device; else its rank in PCI bus order */
	int numa_node;    /* logical index of the node of its non-I/O ancestor, -1 when that
			   * ancestor spans several nodes or none */
	char model[64];   /* hwloc's GPUModel, or "" */
};

/* The NVIDIA GPUs (PCI class 0x0300 or 0x0302, vendor 0x10de) of the topology, in CUDA
 * index order. Returns the count written (at most max). */
int swarm_topology_gpus(const struct swarm_topology *t, struct swarm_gpu_info *out, int max);

/* The NUMA node of the PCI device at busid (as cudaDeviceGetPCIBusId writes it; any case),
 * -1 when the topology has no such device or no single node for it. */
int swarm_topology_busid_numa(const struct swarm_topology *t, const char *busid);

/* Plans one device per GPU: gpus[i] (as swarm_topology_gpus, or built from the CUDA runtime's
 * bus ids through swarm_topology_busid_numa) becomes device i, "gpu:i", on the GPU's node,
 * with that node's cores split evenly among the GPUs on it (a GPU of no single node gets the
 * whole machine). Returns n, or -errno. */
int swarm_topology_plan_gpus(const struct swarm_topology *t, const struct swarm_gpu_info *gpus,
			     int n, struct swarm_device_plan *out, int max);

/* Plans instances workers for each of in's n devices (swarmd --instances, as Triton's
 * instance_group count): in[i] becomes out[i * instances + j], named "NAME/j" ("gpu:0/1"),
 * on in[i]'s node, with in[i]'s cores split evenly among its instances (one PU each,
 * round-robin, where there are fewer cores than instances). With instances 1, out is in,
 * renumbered. Returns n * instances, -E2BIG when more than max, -EINVAL (a bad cpulist,
 * instances < 1, out == in), -ENOMEM. */
int swarm_topology_plan_instances(const struct swarm_topology *t,
				  const struct swarm_device_plan *in, int n, int instances,
				  struct swarm_device_plan *out, int max);

/* Binds the calling process's threads to cpulist and its memory to numa_node (-1: no
 * membind), before it allocates anything and before it starts another thread (the memory
 * policy is set on the calling thread, and threads inherit it). Writes what happened into note (for the log and
 * the ready message): membind can be refused on single-node or sandboxed kernels, which is
 * reported, not fatal. Returns 0, or -errno when the cpu binding itself failed. */
int swarm_topology_bind_self(const char *cpulist, int numa_node, char *note, size_t note_len);

/* What the kernel says the calling thread is bound to: its CPU affinity as a cpulist, and its
 * memory policy in /proc/PID/numa_maps' spelling ("bind:0", "prefer:1", "interleave:0-1",
 * "default", "local"), nodes by the kernel's numbers. Returns 0 or -errno. */
int swarm_topology_read_binding(char *cpus, size_t cpus_len, char *policy, size_t policy_len);

#endif /* SWARM_RUNTIME_TOPOLOGY_H */
