/* test_topology.c: runtime/topology.h and the balancer on the committed hwloc XML fixtures of
 * real server shapes (tests/runtime/topologies, written by tools/make-topology-fixture.py):
 * GPU discovery and locality, NUMA distances, the GPU plan's cores, and the device the
 * balancer gives clients on each node, checked against what a person would choose; then a
 * property test that equal clients spread within one session of even.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <hwloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime/balancer.h"
#include "runtime/topology.h"

#define FIXTURES SWARM_SOURCE_DIR "/tests/runtime/topologies/"
#define MAX_GPUS 16

struct fixture {
	struct swarm_topology *t;
	struct swarm_gpu_info gpus[MAX_GPUS];
	int n_gpus;
	struct swarm_device_plan plan[MAX_GPUS];
};

static void load(struct fixture *f, const char *name)
{
	memset(f, 0, sizeof *f);
	char path[512];
	snprintf(path, sizeof path, FIXTURES "%s.xml", name);
	int rc = swarm_topology_load(path, &f->t);
	cr_assert_eq(rc, 0, "swarm_topology_load(%s) = %d", path, rc);
	f->n_gpus = swarm_topology_gpus(f->t, f->gpus, MAX_GPUS);
	int n = swarm_topology_plan_gpus(f->t, f->gpus, f->n_gpus, f->plan, MAX_GPUS);
	cr_assert_eq(n, f->n_gpus, "plan_gpus = %d for %d GPUs", n, f->n_gpus);
}

/* The device the balancer gives a client on node client_numa, every device active and
 * serving the model, with the given session counts. */
static int pick(struct fixture *f, const uint32_t *sessions, int client_numa)
{
	struct swarm_balancer_device d[MAX_GPUS];
	for (int i = 0; i < f->n_gpus; i++)
		d[i] = (struct swarm_balancer_device){
			.state = SWARM_DEVICE_ACTIVE,
			.numa_node = f->plan[i].numa_node,
			.sessions = sessions ? sessions[i] : 0,
			.capacity = 256,
			.has_model = 1,
		};
	return swarm_balancer_pick(d, (size_t)f->n_gpus, client_numa, swarm_topology_distance,
				   f->t);
}

Test(runtime_topology_fixture, two_sockets_eight_gpus_four_per_socket)
{
	struct fixture f;
	load(&f, "2s-8gpu");
	cr_assert_eq(swarm_topology_numa_count(f.t), 2);
	cr_assert_eq(f.n_gpus, 8, "%d GPUs", f.n_gpus);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(f.gpus[i].cuda_index, i, "gpu %d has cuda index %d", i,
			     f.gpus[i].cuda_index);
		cr_assert_eq(f.gpus[i].numa_node, i / 4, "cuda%d on node %d", i, f.gpus[i].numa_node);
		cr_assert_eq(f.plan[i].numa_node, i / 4);
		cr_assert_str_eq(f.gpus[i].model, "NVIDIA H100 80GB HBM3");
	}
	cr_assert_str_eq(f.gpus[1].busid, "0000:38:00.0");
	cr_assert_eq(swarm_topology_busid_numa(f.t, "0000:38:00.0"), 0);
	cr_assert_eq(swarm_topology_busid_numa(f.t, "0000:99:00.0"), -1,
		     "a bus id that is not there has no node");
	cr_assert_eq(swarm_topology_busid_numa(f.t, "00000000:D8:00.0"), 1,
		     "cudaDeviceGetPCIBusId's form: 8-digit domain, upper case");
	cr_assert_eq(swarm_topology_distance(f.t, 0, 1), 21);
	cr_assert_eq(swarm_topology_distance(f.t, 1, 1), 10);
	/* 32 cores per socket, 4 GPUs: 8 cores (16 PUs) each, siblings 64 apart. */
	cr_assert_str_eq(f.plan[0].cpus, "0-7,64-71");
	cr_assert_str_eq(f.plan[5].cpus, "40-47,104-111");
	cr_assert_str_eq(f.plan[5].name, "gpu:5");
	struct swarm_numa_info ni;
	cr_assert_eq(swarm_topology_numa_info(f.t, 1, &ni), 0);
	cr_assert_eq(ni.package, 1, "node 1 in package %d", ni.package);
	cr_assert_eq(ni.memory, 512ull << 30, "node 1 memory %llu", ni.memory);
	cr_assert_str_eq(ni.cpus, "32-63,96-127");
	cr_assert_eq(swarm_topology_numa_info(f.t, 2, &ni), -EINVAL);

	/* A person puts a client on socket 1 on one of socket 1's GPUs, filling them in turn. */
	uint32_t sessions[MAX_GPUS] = { 0 };
	cr_assert_eq(pick(&f, sessions, 0), 0);
	cr_assert_eq(pick(&f, sessions, 1), 4);
	for (int k = 0; k < 8; k++) {
		int got = pick(&f, sessions, 1);
		cr_assert_eq(got, 4 + k % 4, "client %d of node 1 went to gpu:%d", k, got);
		sessions[got]++;
	}
	/* Socket 1's GPUs busy (two sessions each) still beat socket 0's idle ones. */
	cr_assert_eq(pick(&f, sessions, 1), 4);
	cr_assert_eq(pick(&f, sessions, 0), 0);
	/* A client of unknown node goes to the least loaded, lowest index. */
	cr_assert_eq(pick(&f, sessions, -1), 0);
	swarm_topology_free(f.t);
}

Test(runtime_topology_fixture, one_socket_four_nodes_eight_gpus)
{
	struct fixture f;
	load(&f, "1s-4n-8gpu");
	cr_assert_eq(swarm_topology_numa_count(f.t), 4);
	cr_assert_eq(f.n_gpus, 8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(f.plan[i].numa_node, i / 2, "gpu:%d on node %d", i,
			     f.plan[i].numa_node);
	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 4; b++)
			cr_assert_eq(swarm_topology_distance(f.t, a, b), a == b ? 10 : 12,
				     "distance(%d, %d)", a, b);
	struct swarm_numa_info ni;
	cr_assert_eq(swarm_topology_numa_info(f.t, 3, &ni), 0);
	cr_assert_eq(ni.package, 0, "node 3 in package %d", ni.package);
	/* 16 cores per node, 2 GPUs: 8 cores each. */
	cr_assert_str_eq(f.plan[7].cpus, "56-63,120-127");
	uint32_t sessions[MAX_GPUS] = { 0 };
	for (int node = 0; node < 4; node++) {
		cr_assert_eq(pick(&f, sessions, node), 2 * node, "node %d client", node);
		sessions[2 * node] = 1;
		cr_assert_eq(pick(&f, sessions, node), 2 * node + 1, "second node %d client", node);
	}
	/* With node 2's GPUs both full, its clients go to the nearest others: all are 12 away,
	 * so the least loaded, lowest index. */
	struct swarm_balancer_device d[MAX_GPUS];
	for (int i = 0; i < 8; i++)
		d[i] = (struct swarm_balancer_device){ .state = SWARM_DEVICE_ACTIVE,
						       .numa_node = f.plan[i].numa_node,
						       .sessions = i == 0 ? 1 : 0,
						       .capacity = (i / 2 == 2) ? 0 : 4,
						       .has_model = 1 };
	cr_assert_eq(swarm_balancer_pick(d, 8, 2, swarm_topology_distance, f.t), 1);
	swarm_topology_free(f.t);
}

Test(runtime_topology_fixture, workstation_with_one_gpu)
{
	struct fixture f;
	load(&f, "1s-1gpu");
	cr_assert_eq(swarm_topology_numa_count(f.t), 1);
	cr_assert_eq(f.n_gpus, 1);
	cr_assert_eq(f.gpus[0].numa_node, 0);
	cr_assert_str_eq(f.plan[0].cpus, "0-15", "the one GPU gets every core: %s",
			 f.plan[0].cpus);
	cr_assert_eq(pick(&f, NULL, 0), 0);
	cr_assert_eq(pick(&f, NULL, -1), 0);
	swarm_topology_free(f.t);
}

/* Two instances a GPU: each its GPU's node, half its cores, named "gpu:N/J", in GPU order. */
Test(runtime_topology_fixture, instances_split_each_devices_cores)
{
	struct fixture f;
	load(&f, "2s-8gpu");
	struct swarm_device_plan p[16];
	int n = swarm_topology_plan_instances(f.t, f.plan, 8, 2, p, 16);
	cr_assert_eq(n, 16, "plan_instances = %d", n);
	/* gpu:0 has cores 0-7 (PUs 0-7,64-71): four cores each. */
	cr_assert_str_eq(p[0].name, "gpu:0/0");
	cr_assert_str_eq(p[0].cpus, "0-3,64-67");
	cr_assert_str_eq(p[1].name, "gpu:0/1");
	cr_assert_str_eq(p[1].cpus, "4-7,68-71");
	for (int i = 0; i < 16; i++) {
		cr_assert_eq(p[i].index, i);
		cr_assert_eq(p[i].numa_node, f.plan[i / 2].numa_node, "instance %d on node %d", i,
			     p[i].numa_node);
	}
	cr_assert_eq(swarm_topology_plan_instances(f.t, f.plan, 8, 3, p, 16), -E2BIG);
	cr_assert_eq(swarm_topology_plan_instances(f.t, f.plan, 8, 0, p, 16), -EINVAL);
	/* One instance: the plan itself. */
	cr_assert_eq(swarm_topology_plan_instances(f.t, f.plan, 8, 1, p, 16), 8);
	cr_assert_str_eq(p[5].name, "gpu:5");
	cr_assert_str_eq(p[5].cpus, f.plan[5].cpus);
	swarm_topology_free(f.t);
}

/* More instances than cores: one PU each, round-robin, none without a core. */
Test(runtime_topology_fixture, instances_beyond_the_cores_share_them)
{
	struct fixture f;
	load(&f, "1s-1gpu");
	struct swarm_device_plan one = f.plan[0], p[32];
	snprintf(one.cpus, sizeof one.cpus, "2-3");
	int n = swarm_topology_plan_instances(f.t, &one, 1, 3, p, 32);
	cr_assert_eq(n, 3, "%d", n);
	cr_assert_str_eq(p[0].cpus, "2");
	cr_assert_str_eq(p[1].cpus, "3");
	cr_assert_str_eq(p[2].cpus, "2");
	swarm_topology_free(f.t);
}

/* Virtual CPU devices on a fixture are spread over its nodes as its GPUs are. */
Test(runtime_topology_fixture, cpu_devices_spread_over_the_nodes)
{
	struct fixture f;
	load(&f, "1s-4n-8gpu");
	struct swarm_device_plan p[8];
	cr_assert_eq(swarm_topology_plan_cpu(f.t, 8, p, 8), 8);
	int per_node[4] = { 0 };
	for (int i = 0; i < 8; i++)
		per_node[p[i].numa_node]++;
	for (int n = 0; n < 4; n++)
		cr_assert_eq(per_node[n], 2, "node %d has %d devices", n, per_node[n]);
	swarm_topology_free(f.t);
}

/* Property: on every fixture, k equal clients (all on one node, or all of unknown node)
 * opened one after another end within one session of even over the devices nearest them,
 * and never on a device that is not active or lacks the model. */
Test(runtime_topology_fixture, equal_clients_spread_within_one_session)
{
	const char *names[] = { "2s-8gpu", "1s-4n-8gpu", "1s-1gpu" };
	uint64_t rng = 7;
	for (size_t fi = 0; fi < 3; fi++) {
		struct fixture f;
		load(&f, names[fi]);
		int nn = swarm_topology_numa_count(f.t);
		for (int iter = 0; iter < 200; iter++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			int client = (int)(rng % (uint64_t)(nn + 1)) - 1; /* -1 unknown */
			int k = 1 + (int)((rng >> 8) % 40);
			struct swarm_balancer_device d[MAX_GPUS];
			for (int i = 0; i < f.n_gpus; i++) {
				int off = (rng >> (16 + i)) % 7 == 0; /* some devices out */
				int lacks = (rng >> (24 + i)) % 9 == 0;
				d[i] = (struct swarm_balancer_device){
					.state = off ? SWARM_DEVICE_PARKED : SWARM_DEVICE_ACTIVE,
					.numa_node = f.plan[i].numa_node,
					.capacity = 256,
					.has_model = !lacks,
				};
			}
			for (int c = 0; c < k; c++) {
				int got = swarm_balancer_pick(d, (size_t)f.n_gpus, client,
							      swarm_topology_distance, f.t);
				if (got < 0)
					break;
				cr_assert_eq(d[got].state, SWARM_DEVICE_ACTIVE);
				cr_assert(d[got].has_model, "%s: gpu:%d lacks the model", names[fi],
					  got);
				d[got].sessions++;
			}
			/* The devices that took sessions are the eligible ones nearest the
			 * client; among them the counts differ by at most one. */
			int best = 1 << 30;
			for (int i = 0; i < f.n_gpus; i++)
				if (d[i].state == SWARM_DEVICE_ACTIVE && d[i].has_model) {
					int dist = client < 0 || d[i].numa_node < 0 ?
							   0 :
							   swarm_topology_distance(f.t, client,
										   d[i].numa_node);
					best = dist < best ? dist : best;
				}
			uint32_t lo = UINT32_MAX, hi = 0;
			for (int i = 0; i < f.n_gpus; i++) {
				if (d[i].state != SWARM_DEVICE_ACTIVE || !d[i].has_model)
					continue;
				int dist = client < 0 ? 0 :
							swarm_topology_distance(f.t, client,
										d[i].numa_node);
				if (dist != best) {
					cr_assert_eq(d[i].sessions, 0,
						     "%s: farther gpu:%d took %u sessions", names[fi],
						     i, d[i].sessions);
					continue;
				}
				lo = d[i].sessions < lo ? d[i].sessions : lo;
				hi = d[i].sessions > hi ? d[i].sessions : hi;
			}
			if (hi > 0)
				cr_assert_leq(hi - lo, 1, "%s: client node %d, %d clients: %u to %u",
					      names[fi], client, k, lo, hi);
		}
		swarm_topology_free(f.t);
	}
}
