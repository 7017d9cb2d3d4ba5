/* topology.c: hwloc discovery, the CPU device plan, and self-binding (see topology.h). */
#include "runtime/topology.h"

#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

struct swarm_topology {
	hwloc_topology_t topo;
	int n_nodes; /* NUMA nodes with cores */
	hwloc_obj_t nodes[64];
};

int swarm_topology_load(const char *xml_path, struct swarm_topology **out)
{
	struct swarm_topology *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	if (hwloc_topology_init(&t->topo) < 0)
		goto err_free;
	if (xml_path && hwloc_topology_set_xml(t->topo, xml_path) < 0) {
		swarm_log(SWARM_LOG_ERROR, "event=topology_error file=%s error=\"%s\"", xml_path,
			  strerror(errno));
		goto err_destroy;
	}
	/* No I/O objects yet: CPU devices need none. GPU locality (the balancer issue) will
	 * keep the important ones (HWLOC_TYPE_FILTER_KEEP_IMPORTANT). */
	if (hwloc_topology_load(t->topo) < 0)
		goto err_destroy;
	int nn = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_NUMANODE);
	for (int i = 0; i < nn && t->n_nodes < 64; i++) {
		hwloc_obj_t node = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
		if (node->cpuset && !hwloc_bitmap_iszero(node->cpuset))
			t->nodes[t->n_nodes++] = node;
	}
	if (t->n_nodes == 0) {
		/* No NUMA information: the whole machine is one node. */
		t->nodes[0] = hwloc_get_root_obj(t->topo);
		t->n_nodes = 1;
	}
	*out = t;
	return 0;

err_destroy:
	hwloc_topology_destroy(t->topo);
err_free:
	free(t);
	return -EINVAL;
}

void swarm_topology_free(struct swarm_topology *t)
{
	if (!t)
		return;
	hwloc_topology_destroy(t->topo);
	free(t);
}

int swarm_topology_numa_count(const struct swarm_topology *t) { return t->n_nodes; }

static int node_index(hwloc_obj_t node)
{
	return node->type == HWLOC_OBJ_NUMANODE ? (int)node->logical_index : 0;
}

int swarm_topology_cpu_numa(const struct swarm_topology *t, int cpu)
{
	if (cpu < 0)
		return -1;
	for (int i = 0; i < t->n_nodes; i++)
		if (hwloc_bitmap_isset(t->nodes[i]->cpuset, (unsigned)cpu))
			return node_index(t->nodes[i]);
	return -1;
}

int swarm_topology_distance(void *ctx, int a, int b)
{
	struct swarm_topology *t = ctx;
	if (a == b)
		return 10;
	struct hwloc_distances_s *d[1];
	unsigned nr = 1;
	int dist = 20;
	if (hwloc_distances_get_by_type(t->topo, HWLOC_OBJ_NUMANODE, &nr, d,
					HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) == 0 &&
	    nr == 1) {
		hwloc_obj_t oa = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_NUMANODE, (unsigned)a);
		hwloc_obj_t ob = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_NUMANODE, (unsigned)b);
		hwloc_uint64_t v1, v2;
		if (oa && ob && hwloc_distances_obj_pair_values(d[0], oa, ob, &v1, &v2) == 0)
			dist = (int)v1;
		hwloc_distances_release(t->topo, d[0]);
	}
	return dist;
}

int swarm_topology_plan_cpu(const struct swarm_topology *t, int n, struct swarm_device_plan *out,
			    int max)
{
	if (n < 0)
		return -EINVAL;
	if (n == 0)
		n = t->n_nodes;
	if (n > max)
		return -E2BIG;
	for (int i = 0; i < n; i++) {
		hwloc_obj_t node = t->nodes[i % t->n_nodes];
		/* This device is the j-th of m on its node. */
		int j = i / t->n_nodes;
		int m = n / t->n_nodes + (i % t->n_nodes < n % t->n_nodes ? 1 : 0);
		int cores = hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, node->cpuset,
								   HWLOC_OBJ_CORE);
		hwloc_obj_type_t unit = HWLOC_OBJ_CORE;
		if (cores <= 0) {
			unit = HWLOC_OBJ_PU;
			cores = hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, node->cpuset, unit);
		}
		if (cores <= 0)
			return -ENODEV;
		hwloc_bitmap_t set = hwloc_bitmap_alloc();
		if (!set)
			return -ENOMEM;
		int first, count;
		if (cores >= m) {
			first = j * cores / m;
			count = (j + 1) * cores / m - first;
		} else {
			first = j % cores;
			count = 1;
		}
		for (int c = first; c < first + count; c++) {
			hwloc_obj_t o = hwloc_get_obj_inside_cpuset_by_type(t->topo, node->cpuset,
									    unit, (unsigned)c);
			if (o)
				hwloc_bitmap_or(set, set, o->cpuset);
		}
		out[i].index = i;
		snprintf(out[i].name, sizeof out[i].name, "cpu:%d", i);
		out[i].numa_node = node_index(node);
		hwloc_bitmap_list_snprintf(out[i].cpus, sizeof out[i].cpus, set);
		hwloc_bitmap_free(set);
	}
	return n;
}

int swarm_topology_bind_self(const char *cpulist, int numa_node, char *note, size_t note_len)
{
	hwloc_topology_t topo;
	int err = 0;
	note[0] = 0;
	if (hwloc_topology_init(&topo) < 0 || hwloc_topology_load(topo) < 0) {
		snprintf(note, note_len, "hwloc could not load the topology");
		return -ENODEV;
	}
	hwloc_bitmap_t set = hwloc_bitmap_alloc();
	if (!set || hwloc_bitmap_list_sscanf(set, cpulist) < 0 || hwloc_bitmap_iszero(set)) {
		snprintf(note, note_len, "bad cpulist \"%s\"", cpulist);
		err = -EINVAL;
		goto out;
	}
	if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) < 0) {
		err = -errno;
		snprintf(note, note_len, "cpubind to %s failed: %s", cpulist, strerror(errno));
		goto out;
	}
	if (numa_node >= 0) {
		hwloc_obj_t node =
			hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)numa_node);
		if (!node) {
			snprintf(note, note_len, "membind skipped: no NUMA node %d", numa_node);
		} else if (hwloc_set_membind(topo, node->nodeset, HWLOC_MEMBIND_BIND,
					     HWLOC_MEMBIND_PROCESS | HWLOC_MEMBIND_BYNODESET) < 0) {
			snprintf(note, note_len, "membind to node %d unsupported here: %s",
				 numa_node, strerror(errno));
		} else {
			snprintf(note, note_len, "membind node %d", numa_node);
		}
	}
out:
	hwloc_bitmap_free(set);
	hwloc_topology_destroy(topo);
	return err;
}
