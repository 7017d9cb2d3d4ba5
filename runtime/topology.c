/* topology.c: hwloc discovery, GPU locality, the device plans, and self-binding (see
 * topology.h). */
#include "runtime/topology.h"

#include <ctype.h>
#include <errno.h>
#include <hwloc.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

struct swarm_topology {
	hwloc_topology_t topo;
	int n_nodes; /* NUMA nodes with cores */
	hwloc_obj_t nodes[64];
};

static int topology_load(const char *xml_path, int io, struct swarm_topology **out);

int swarm_topology_load(const char *xml_path, struct swarm_topology **out)
{
	/* An XML's I/O objects cost nothing to keep; the live machine's need hwloc's PCI
	 * discovery, done only when asked (swarm_topology_load_io). */
	return topology_load(xml_path, xml_path != NULL, out);
}

/* hwloc unloads its plugins (dlclose) when the last topology is destroyed, and its Linux I/O
 * discovery leaves a few allocations (libudev's) reachable only from the unloaded plugin,
 * which LeakSanitizer then reports from an unknown module. One topology kept for the life of
 * the process, never loaded, keeps the plugins mapped and those allocations reachable. */
static hwloc_topology_t plugin_anchor;

int swarm_topology_load_io(const char *xml_path, struct swarm_topology **out)
{
	if (!plugin_anchor && hwloc_topology_init(&plugin_anchor) < 0)
		plugin_anchor = NULL;
	return topology_load(xml_path, 1, out);
}

static int topology_load(const char *xml_path, int io, struct swarm_topology **out)
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
	/* GPU locality needs the PCI devices and their OS devices ("cuda0"); the important
	 * ones are enough (GPUs, NICs, disks), and they keep the bridges above them. */
	if (io)
		hwloc_topology_set_io_types_filter(t->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
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

static int share_cpus(const struct swarm_topology *t, hwloc_const_cpuset_t cpuset, int j, int m,
		      char *out, size_t out_len);

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
		int err = share_cpus(t, node->cpuset, j, m, out[i].cpus, sizeof out[i].cpus);
		if (err)
			return err;
		out[i].index = i;
		snprintf(out[i].name, sizeof out[i].name, "cpu:%d", i);
		out[i].numa_node = node_index(node);
	}
	return n;
}

int swarm_topology_numa_info(const struct swarm_topology *t, int i, struct swarm_numa_info *out)
{
	if (i < 0 || i >= t->n_nodes)
		return -EINVAL;
	hwloc_obj_t node = t->nodes[i];
	memset(out, 0, sizeof *out);
	out->index = node_index(node);
	out->os_index = node->type == HWLOC_OBJ_NUMANODE ? (int)node->os_index : 0;
	out->memory = node->type == HWLOC_OBJ_NUMANODE ? node->attr->numanode.local_memory :
							 node->total_memory;
	hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(t->topo, HWLOC_OBJ_PACKAGE, node);
	if (!pkg) /* a node below its package's level has it as a cpuset-covering object */
		pkg = hwloc_get_next_obj_covering_cpuset_by_type(t->topo, node->cpuset,
								 HWLOC_OBJ_PACKAGE, NULL);
	out->package = pkg ? (int)pkg->logical_index : -1;
	hwloc_bitmap_list_snprintf(out->cpus, sizeof out->cpus, node->cpuset);
	return 0;
}

/* The node a non-I/O object belongs to: the one NUMA node its nodeset names, else -1. */
static int obj_numa(const struct swarm_topology *t, hwloc_obj_t o)
{
	if (!o || !o->nodeset || hwloc_bitmap_weight(o->nodeset) != 1)
		return -1;
	for (int i = 0; i < t->n_nodes; i++)
		if (t->nodes[i]->type == HWLOC_OBJ_NUMANODE &&
		    hwloc_bitmap_isincluded(t->nodes[i]->nodeset, o->nodeset))
			return node_index(t->nodes[i]);
	return -1;
}

static int pci_numa(const struct swarm_topology *t, hwloc_obj_t pci)
{
	return obj_numa(t, hwloc_get_non_io_ancestor_obj(t->topo, pci));
}

int swarm_topology_busid_numa(const struct swarm_topology *t, const char *busid)
{
	char lower[32];
	size_t i = 0;
	if (!busid)
		return -1;
	for (; busid[i] && i + 1 < sizeof lower; i++)
		lower[i] = (char)tolower((unsigned char)busid[i]);
	lower[i] = 0;
	hwloc_obj_t pci = hwloc_get_pcidev_by_busidstring(t->topo, lower);
	return pci ? pci_numa(t, pci) : -1;
}

static int is_nvidia_gpu(hwloc_obj_t pci)
{
	unsigned cls = pci->attr->pcidev.class_id;
	return pci->attr->pcidev.vendor_id == 0x10de && (cls == 0x0300 || cls == 0x0302);
}

/* The N of a "cudaN" OS device below pci, -1 when it has none. */
static int cuda_osdev_index(hwloc_obj_t pci, char *model, size_t model_len)
{
	for (hwloc_obj_t c = pci->io_first_child; c; c = c->next_sibling) {
		if (c->type != HWLOC_OBJ_OS_DEVICE || !c->name || strncmp(c->name, "cuda", 4) != 0)
			continue;
		char *end;
		long v = strtol(c->name + 4, &end, 10);
		if (end == c->name + 4 || *end || v < 0 || v > 1 << 20)
			continue;
		const char *m = hwloc_obj_get_info_by_name(c, "GPUModel");
		if (m)
			snprintf(model, model_len, "%s", m);
		return (int)v;
	}
	return -1;
}

static int gpu_cmp(const void *a, const void *b)
{
	const struct swarm_gpu_info *x = a, *y = b;
	if (x->cuda_index != y->cuda_index)
		return x->cuda_index < y->cuda_index ? -1 : 1;
	return strcmp(x->busid, y->busid);
}

int swarm_topology_gpus(const struct swarm_topology *t, struct swarm_gpu_info *out, int max)
{
	int n = 0, named = 0;
	for (hwloc_obj_t pci = NULL;
	     n < max && (pci = hwloc_get_next_pcidev(t->topo, pci)) != NULL;) {
		if (!is_nvidia_gpu(pci))
			continue;
		struct swarm_gpu_info *g = &out[n++];
		memset(g, 0, sizeof *g);
		snprintf(g->busid, sizeof g->busid, "%04x:%02x:%02x.%01x", pci->attr->pcidev.domain,
			 pci->attr->pcidev.bus, pci->attr->pcidev.dev, pci->attr->pcidev.func);
		g->numa_node = pci_numa(t, pci);
		g->cuda_index = cuda_osdev_index(pci, g->model, sizeof g->model);
		named += g->cuda_index >= 0;
	}
	if (named != n) {
		/* Without CUDA OS devices for all of them, CUDA's own order on a machine of one
		 * GPU model is PCI bus order (its fastest-first order breaks ties by bus id). */
		for (int i = 0; i < n; i++)
			out[i].cuda_index = -1;
		qsort(out, (size_t)n, sizeof *out, gpu_cmp);
		for (int i = 0; i < n; i++)
			out[i].cuda_index = i;
	} else {
		qsort(out, (size_t)n, sizeof *out, gpu_cmp);
	}
	return n;
}

/* The cpulist of share j of m equal shares of the cores in set (whole cores where there are
 * at least m, else one PU each, round-robin). Returns 0 or -errno. */
static int share_cpus(const struct swarm_topology *t, hwloc_const_cpuset_t cpuset, int j, int m,
		      char *out, size_t out_len)
{
	hwloc_obj_type_t unit = HWLOC_OBJ_CORE;
	int cores = hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, cpuset, unit);
	if (cores <= 0) {
		unit = HWLOC_OBJ_PU;
		cores = hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, cpuset, unit);
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
		hwloc_obj_t o = hwloc_get_obj_inside_cpuset_by_type(t->topo, cpuset, unit,
								    (unsigned)c);
		if (o)
			hwloc_bitmap_or(set, set, o->cpuset);
	}
	hwloc_bitmap_list_snprintf(out, out_len, set);
	hwloc_bitmap_free(set);
	return 0;
}

int swarm_topology_plan_instances(const struct swarm_topology *t,
				  const struct swarm_device_plan *in, int n, int instances,
				  struct swarm_device_plan *out, int max)
{
	if (n < 0 || instances < 1 || in == out)
		return -EINVAL;
	if ((long)n * instances > max)
		return -E2BIG;
	hwloc_bitmap_t set = hwloc_bitmap_alloc();
	if (!set)
		return -ENOMEM;
	int k = 0, err = 0;
	for (int i = 0; i < n && !err; i++) {
		if (hwloc_bitmap_list_sscanf(set, in[i].cpus) < 0 || hwloc_bitmap_iszero(set)) {
			err = -EINVAL;
			break;
		}
		for (int j = 0; j < instances && !err; j++, k++) {
			out[k] = in[i];
			out[k].index = k;
			if (instances == 1)
				continue;
			/* Each instance its own share of the device's cores, so that two
			 * workers of one GPU do not spin on the same ones. */
			err = share_cpus(t, set, j, instances, out[k].cpus, sizeof out[k].cpus);
			snprintf(out[k].name, sizeof out[k].name, "%.20s/%d", in[i].name, j);
		}
	}
	hwloc_bitmap_free(set);
	return err ? err : k;
}

static hwloc_obj_t node_by_index(const struct swarm_topology *t, int index)
{
	for (int i = 0; i < t->n_nodes; i++)
		if (node_index(t->nodes[i]) == index)
			return t->nodes[i];
	return NULL;
}

int swarm_topology_plan_gpus(const struct swarm_topology *t, const struct swarm_gpu_info *gpus,
			     int n, struct swarm_device_plan *out, int max)
{
	if (n < 0)
		return -EINVAL;
	if (n > max)
		return -E2BIG;
	for (int i = 0; i < n; i++) {
		hwloc_obj_t node = gpus[i].numa_node >= 0 ? node_by_index(t, gpus[i].numa_node) :
							    NULL;
		/* This GPU is the j-th of m on its node. */
		int j = 0, m = 0;
		for (int k = 0; k < n; k++) {
			if (gpus[k].numa_node != gpus[i].numa_node)
				continue;
			if (k < i)
				j++;
			m++;
		}
		hwloc_const_cpuset_t cpus = node ? node->cpuset :
						   hwloc_topology_get_topology_cpuset(t->topo);
		if (!node)
			j = 0, m = 1; /* no locality: the whole machine, shared */
		int err = share_cpus(t, cpus, j, m, out[i].cpus, sizeof out[i].cpus);
		if (err)
			return err;
		out[i].index = i;
		snprintf(out[i].name, sizeof out[i].name, "gpu:%d", i);
		out[i].numa_node = node ? node_index(node) : -1;
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
					     HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) < 0) {
			/* The thread's policy, not the process's: Linux has no process-wide
			 * call, and this runs before the process starts any other thread, so
			 * every thread it starts inherits the policy. */
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

/* The kernel's memory policy modes (linux/mempolicy.h), with numa_maps' names. */
static const char *const mpol_names[] = { "default", "prefer", "bind", "interleave", "local",
					  "prefer (many)", "weighted interleave" };

int swarm_topology_read_binding(char *cpus, size_t cpus_len, char *policy, size_t policy_len)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) < 0)
		return -errno;
	hwloc_bitmap_t b = hwloc_bitmap_alloc();
	if (!b)
		return -ENOMEM;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			hwloc_bitmap_set(b, (unsigned)c);
	hwloc_bitmap_list_snprintf(cpus, cpus_len, b);

	int mode = -1;
	unsigned long mask[16] = { 0 };
	int err = 0;
	if (syscall(SYS_get_mempolicy, &mode, mask, sizeof mask * 8, NULL, 0) < 0) {
		err = -errno;
		snprintf(policy, policy_len, "unknown (%s)", strerror(errno));
		goto out;
	}
	mode &= 0xff; /* the high bits are mode flags (static or relative nodes) */
	const char *name = mode >= 0 && (size_t)mode < sizeof mpol_names / sizeof *mpol_names ?
				   mpol_names[mode] :
				   "?";
	if (mode == 0 || mode == 4) {
		snprintf(policy, policy_len, "%s", name);
		goto out;
	}
	hwloc_bitmap_zero(b);
	for (unsigned i = 0; i < sizeof mask * 8; i++)
		if (mask[i / (8 * sizeof *mask)] & (1ul << (i % (8 * sizeof *mask))))
			hwloc_bitmap_set(b, i);
	char nodes[128];
	hwloc_bitmap_list_snprintf(nodes, sizeof nodes, b);
	snprintf(policy, policy_len, "%s:%s", name, nodes);
out:
	hwloc_bitmap_free(b);
	return err;
}
