/* test_balancer.c: the placement policy of runtime/balancer.h (eligibility, least sessions,
 * lowest index, NUMA distance first, -ENODEV, a seeded property test and spreading), and the
 * parts of runtime/topology.h that the live machine can check (the CPU plan, distances).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <hwloc.h>
#include <stdint.h>
#include <string.h>

#include "runtime/balancer.h"
#include "runtime/topology.h"

#define MAX_DEVS 16

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* An eligible device: active, serving the model, with room. */
static struct swarm_balancer_device dev(int numa, uint32_t sessions, uint32_t capacity)
{
	return (struct swarm_balancer_device){
		.state = SWARM_DEVICE_ACTIVE,
		.numa_node = numa,
		.sessions = sessions,
		.capacity = capacity,
		.has_model = 1,
	};
}

/* A NUMA distance table: dist[a][b]. */
struct dist_table {
	int n;
	int dist[4][4];
	int calls;
};

static int table_distance(void *ctx, int a, int b)
{
	struct dist_table *t = ctx;
	t->calls++;
	cr_assert(a >= 0 && a < t->n && b >= 0 && b < t->n, "distance(%d, %d) out of table", a, b);
	return t->dist[a][b];
}

/* Two nodes, SLIT-style: 10 local, 21 remote. */
static struct dist_table two_nodes = {
	.n = 2,
	.dist = { { 10, 21 }, { 21, 10 } },
};

Test(runtime_balancer, device_state_names)
{
	cr_assert_str_eq(swarm_device_state_name(SWARM_DEVICE_PARKED), "parked");
	cr_assert_str_eq(swarm_device_state_name(SWARM_DEVICE_WARMING), "warming");
	cr_assert_str_eq(swarm_device_state_name(SWARM_DEVICE_ACTIVE), "active");
	cr_assert_str_eq(swarm_device_state_name(SWARM_DEVICE_DRAINING), "draining");
	cr_assert_str_eq(swarm_device_state_name(SWARM_DEVICE_FAILED), "failed");
	cr_assert_str_eq(swarm_device_state_name(99), "?");
	cr_assert_str_eq(swarm_device_state_name(-1), "?");
}

Test(runtime_balancer, picks_only_active_devices)
{
	const int states[] = { SWARM_DEVICE_PARKED, SWARM_DEVICE_WARMING, SWARM_DEVICE_DRAINING,
			       SWARM_DEVICE_FAILED, 99 };
	struct swarm_balancer_device d[6];
	for (int i = 0; i < 5; i++) {
		d[i] = dev(-1, 0, 8);
		d[i].state = states[i];
	}
	/* The only active device is the busiest and the last. */
	d[5] = dev(-1, 7, 8);
	int got = swarm_balancer_pick(d, 6, -1, NULL, NULL);
	cr_assert_eq(got, 5, "picked %d, want the only active device 5", got);
	for (int i = 0; i < 5; i++) {
		got = swarm_balancer_pick(&d[i], 1, -1, NULL, NULL);
		cr_assert_eq(got, -ENODEV, "a lone %s device: got %d, want -ENODEV (%d)",
			     swarm_device_state_name(states[i]), got, -ENODEV);
	}
}

Test(runtime_balancer, skips_devices_without_the_model)
{
	struct swarm_balancer_device d[3] = { dev(-1, 0, 8), dev(-1, 0, 8), dev(-1, 5, 8) };
	d[0].has_model = 0;
	d[1].has_model = 0;
	int got = swarm_balancer_pick(d, 3, -1, NULL, NULL);
	cr_assert_eq(got, 2, "picked %d, want 2 (the only one with the model)", got);
}

Test(runtime_balancer, skips_full_devices)
{
	/* Full, over-full, no capacity at all, then one with room. */
	struct swarm_balancer_device d[4] = { dev(-1, 8, 8), dev(-1, 9, 8), dev(-1, 0, 0),
					      dev(-1, 10, 11) };
	int got = swarm_balancer_pick(d, 4, -1, NULL, NULL);
	cr_assert_eq(got, 3, "picked %d, want 3 (the only one with room)", got);
	got = swarm_balancer_pick(d, 3, -1, NULL, NULL);
	cr_assert_eq(got, -ENODEV, "all full: got %d, want -ENODEV (%d)", got, -ENODEV);
}

Test(runtime_balancer, least_sessions_wins)
{
	struct swarm_balancer_device d[4] = { dev(-1, 3, 8), dev(-1, 2, 8), dev(-1, 1, 8),
					      dev(-1, 4, 8) };
	int got = swarm_balancer_pick(d, 4, -1, NULL, NULL);
	cr_assert_eq(got, 2, "picked %d (sessions %u), want 2 (sessions 1)", got,
		     got >= 0 ? d[got].sessions : 0);
}

Test(runtime_balancer, load_counts_sessions_not_free_room)
{
	/* Device 0 has more room left but more sessions: sessions decide. */
	struct swarm_balancer_device d[2] = { dev(-1, 3, 100), dev(-1, 2, 3) };
	int got = swarm_balancer_pick(d, 2, -1, NULL, NULL);
	cr_assert_eq(got, 1, "picked %d, want 1 (2 sessions of 3 beats 3 of 100)", got);
}

Test(runtime_balancer, ties_go_to_the_lowest_index)
{
	struct swarm_balancer_device d[5] = { dev(-1, 3, 8), dev(-1, 1, 8), dev(-1, 2, 8),
					      dev(-1, 1, 8), dev(-1, 1, 8) };
	int got = swarm_balancer_pick(d, 5, -1, NULL, NULL);
	cr_assert_eq(got, 1, "picked %d, want 1 (lowest of 1, 3, 4 with 1 session)", got);
	struct swarm_balancer_device e[3] = { dev(-1, 0, 8), dev(-1, 0, 8), dev(-1, 0, 8) };
	got = swarm_balancer_pick(e, 3, -1, NULL, NULL);
	cr_assert_eq(got, 0, "all equal: picked %d, want 0", got);
}

Test(runtime_balancer, nearer_numa_beats_lower_load)
{
	struct dist_table t = two_nodes;
	/* Device 0 is remote and idle; device 1 is local and busy. */
	struct swarm_balancer_device d[2] = { dev(1, 0, 8), dev(0, 6, 8) };
	int got = swarm_balancer_pick(d, 2, 0, table_distance, &t);
	cr_assert_eq(got, 1, "client on node 0: picked %d, want local device 1", got);
	cr_assert_gt(t.calls, 0, "distance callback never called");
	got = swarm_balancer_pick(d, 2, 1, table_distance, &t);
	cr_assert_eq(got, 0, "client on node 1: picked %d, want local device 0", got);
}

Test(runtime_balancer, nearest_node_with_room_serves_when_local_is_full)
{
	struct dist_table t = { .n = 3,
				.dist = { { 10, 20, 30 }, { 20, 10, 20 }, { 30, 20, 10 } } };
	/* Local (node 0) is full; node 1 (20) beats node 2 (30) despite more load. */
	struct swarm_balancer_device d[3] = { dev(0, 8, 8), dev(2, 0, 8), dev(1, 5, 8) };
	int got = swarm_balancer_pick(d, 3, 0, table_distance, &t);
	cr_assert_eq(got, 2, "picked %d, want 2 (node 1 at distance 20)", got);
}

Test(runtime_balancer, equal_distance_falls_back_to_sessions)
{
	struct dist_table t = two_nodes;
	struct swarm_balancer_device d[4] = { dev(1, 0, 8), dev(0, 4, 8), dev(0, 2, 8),
					      dev(0, 2, 8) };
	int got = swarm_balancer_pick(d, 4, 0, table_distance, &t);
	cr_assert_eq(got, 2, "picked %d, want 2 (local, 2 sessions, lowest index)", got);
}

Test(runtime_balancer, no_distance_callback_ignores_numa)
{
	struct swarm_balancer_device d[2] = { dev(1, 0, 8), dev(0, 6, 8) };
	int got = swarm_balancer_pick(d, 2, 0, NULL, NULL);
	cr_assert_eq(got, 0, "no callback: picked %d, want 0 (fewest sessions)", got);
}

Test(runtime_balancer, unknown_client_node_ignores_numa)
{
	struct dist_table t = two_nodes;
	struct swarm_balancer_device d[2] = { dev(1, 3, 8), dev(0, 1, 8) };
	int got = swarm_balancer_pick(d, 2, -1, table_distance, &t);
	cr_assert_eq(got, 1, "client node -1: picked %d, want 1 (fewest sessions)", got);
	cr_assert_eq(t.calls, 0, "distance called %d times for an unknown client node", t.calls);
}

Test(runtime_balancer, returns_enodev_when_nothing_qualifies)
{
	int got = swarm_balancer_pick(NULL, 0, -1, NULL, NULL);
	cr_assert_eq(got, -ENODEV, "no devices: got %d, want -ENODEV (%d)", got, -ENODEV);
	struct swarm_balancer_device d[4] = { dev(0, 0, 8), dev(0, 8, 8), dev(0, 0, 8),
					      dev(0, 0, 8) };
	d[0].state = SWARM_DEVICE_DRAINING;
	d[2].has_model = 0;
	d[3].state = SWARM_DEVICE_WARMING;
	struct dist_table t = two_nodes;
	got = swarm_balancer_pick(d, 4, 0, table_distance, &t);
	cr_assert_eq(got, -ENODEV, "none eligible: got %d, want -ENODEV (%d)", got, -ENODEV);
}

static int eligible(const struct swarm_balancer_device *d)
{
	return d->state == SWARM_DEVICE_ACTIVE && d->has_model && d->sessions < d->capacity;
}

/* Device a is strictly better than device b under (distance, sessions, index). */
static int better(const struct swarm_balancer_device *d, int a, int b, int da, int db)
{
	if (da != db)
		return da < db;
	if (d[a].sessions != d[b].sessions)
		return d[a].sessions < d[b].sessions;
	return a < b;
}

Test(runtime_balancer, random_snapshots_pick_the_best_eligible_device)
{
	uint64_t s = 0x5eed5eed12345678u;
	int picked = 0;
	for (int iter = 0; iter < 20000; iter++) {
		struct dist_table t = { .n = 4 };
		for (int a = 0; a < 4; a++)
			for (int b = a; b < 4; b++)
				t.dist[a][b] = t.dist[b][a] =
					a == b ? 10 : 11 + (int)(rng_next(&s) % 30);
		int use_dist = rng_next(&s) % 4 != 0;
		int client = (int)(rng_next(&s) % 4);
		size_t n = rng_next(&s) % (MAX_DEVS + 1);
		struct swarm_balancer_device d[MAX_DEVS];
		for (size_t i = 0; i < n; i++) {
			uint32_t cap = (uint32_t)(rng_next(&s) % 6);
			d[i] = (struct swarm_balancer_device){
				/* Mostly active, so that ties and choices happen. */
				.state = rng_next(&s) % 3 ? SWARM_DEVICE_ACTIVE :
							    (int)(rng_next(&s) % 5),
				.numa_node = (int)(rng_next(&s) % 4),
				.sessions = (uint32_t)(rng_next(&s) % (cap + 2)),
				.capacity = cap,
				.has_model = rng_next(&s) % 5 != 0,
			};
		}
		int dist[MAX_DEVS];
		int any = 0;
		for (size_t i = 0; i < n; i++) {
			dist[i] = use_dist ? t.dist[client][d[i].numa_node] : 0;
			any |= eligible(&d[i]);
		}
		int got = swarm_balancer_pick(d, n, client, use_dist ? table_distance : NULL, &t);
		if (!any) {
			cr_assert_eq(got, -ENODEV, "iter %d: none eligible of %zu, got %d", iter, n,
				     got);
			continue;
		}
		picked++;
		cr_assert(got >= 0 && (size_t)got < n, "iter %d: got %d of %zu eligible-having",
			  iter, got, n);
		const struct swarm_balancer_device *g = &d[got];
		cr_assert_eq(g->state, SWARM_DEVICE_ACTIVE, "iter %d: picked %d in state %s", iter,
			     got, swarm_device_state_name(g->state));
		cr_assert(g->has_model, "iter %d: picked %d without the model", iter, got);
		cr_assert_lt(g->sessions, g->capacity, "iter %d: picked %d with %u of %u sessions",
			     iter, got, g->sessions, g->capacity);
		for (size_t i = 0; i < n; i++) {
			if ((int)i == got || !eligible(&d[i]))
				continue;
			cr_assert(!better(d, (int)i, got, dist[i], dist[got]),
				  "iter %d: picked %d (dist %d, sessions %u) but %zu is better "
				  "(dist %d, sessions %u)",
				  iter, got, dist[got], g->sessions, i, dist[i], d[i].sessions);
		}
	}
	cr_assert_gt(picked, 10000, "only %d of 20000 snapshots had an eligible device", picked);
}

Test(runtime_balancer, repeated_picks_spread_over_equal_devices)
{
	for (size_t k = 1; k <= MAX_DEVS; k++) {
		struct swarm_balancer_device d[MAX_DEVS];
		for (size_t i = 0; i < k; i++)
			d[i] = dev(0, 0, 1000);
		for (int round = 0; round < 500; round++) {
			int got = swarm_balancer_pick(d, k, -1, NULL, NULL);
			cr_assert(got >= 0 && (size_t)got < k, "k %zu round %d: got %d", k, round,
				  got);
			d[got].sessions++;
			uint32_t lo = UINT32_MAX, hi = 0;
			for (size_t i = 0; i < k; i++) {
				lo = d[i].sessions < lo ? d[i].sessions : lo;
				hi = d[i].sessions > hi ? d[i].sessions : hi;
			}
			cr_assert_leq(hi - lo, 1u, "k %zu round %d: sessions range %u..%u", k,
				      round, lo, hi);
		}
	}
}

Test(runtime_balancer, spreading_fills_every_device_to_capacity)
{
	struct swarm_balancer_device d[3] = { dev(0, 0, 2), dev(0, 0, 3), dev(0, 0, 1) };
	for (int i = 0; i < 6; i++) {
		int got = swarm_balancer_pick(d, 3, -1, NULL, NULL);
		cr_assert(got >= 0, "pick %d of 6 total capacity: got %d", i, got);
		d[got].sessions++;
	}
	int got = swarm_balancer_pick(d, 3, -1, NULL, NULL);
	cr_assert_eq(got, -ENODEV, "all full (%u/%u %u/%u %u/%u): got %d", d[0].sessions,
		     d[0].capacity, d[1].sessions, d[1].capacity, d[2].sessions, d[2].capacity,
		     got);
}

/* The topology of the machine the tests run on. */

static struct swarm_topology *topo_live(void)
{
	struct swarm_topology *t = NULL;
	int rc = swarm_topology_load(NULL, &t);
	cr_assert_eq(rc, 0, "swarm_topology_load(NULL) = %d", rc);
	cr_assert_not_null(t);
	return t;
}

/* The PUs of a plan's cpulist, or NULL when it does not parse or is empty. */
static hwloc_bitmap_t plan_cpus(const struct swarm_device_plan *p)
{
	hwloc_bitmap_t set = hwloc_bitmap_alloc();
	cr_assert_not_null(set);
	if (hwloc_bitmap_list_sscanf(set, p->cpus) < 0 || hwloc_bitmap_iszero(set)) {
		hwloc_bitmap_free(set);
		return NULL;
	}
	return set;
}

/* The committed one-socket, one-NUMA-node fixture (tests/runtime/topologies), so that the
 * plan's checks for one node run on every machine, not only on one-node ones. */
#define ONE_NODE_XML SWARM_SOURCE_DIR "/tests/runtime/topologies/1s-1gpu.xml"

static struct swarm_topology *topo_one_node(void)
{
	struct swarm_topology *t = NULL;
	int rc = swarm_topology_load(ONE_NODE_XML, &t);
	cr_assert_eq(rc, 0, "swarm_topology_load(%s) = %d", ONE_NODE_XML, rc);
	cr_assert_eq(swarm_topology_numa_count(t), 1, "the fixture has %d NUMA nodes, not 1",
		     swarm_topology_numa_count(t));
	return t;
}

/* Cores (or PUs where hwloc reports no cores) of the one-node fixture. */
static int fixture_cores(void)
{
	hwloc_topology_t topo;
	cr_assert_eq(hwloc_topology_init(&topo), 0);
	cr_assert_eq(hwloc_topology_set_xml(topo, ONE_NODE_XML), 0, "hwloc cannot read %s",
		     ONE_NODE_XML);
	cr_assert_eq(hwloc_topology_load(topo), 0);
	int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
	if (cores <= 0)
		cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
	hwloc_topology_destroy(topo);
	return cores;
}

Test(runtime_topology, live_machine_has_a_numa_node)
{
	struct swarm_topology *t = topo_live();
	int nn = swarm_topology_numa_count(t);
	cr_assert_geq(nn, 1, "numa_count %d", nn);
	int node = swarm_topology_cpu_numa(t, 0);
	cr_assert(node >= 0 && node < 64, "cpu 0 on node %d", node);
	cr_assert_eq(swarm_topology_cpu_numa(t, -1), -1, "cpu -1 on node %d",
		     swarm_topology_cpu_numa(t, -1));
	cr_assert_eq(swarm_topology_cpu_numa(t, 1 << 20), -1, "cpu 2^20 on node %d",
		     swarm_topology_cpu_numa(t, 1 << 20));
	swarm_topology_free(t);
}

Test(runtime_topology, default_plan_has_one_device_per_node_with_parsable_cpus)
{
	struct swarm_topology *t = topo_live();
	struct swarm_device_plan p[64];
	int n = swarm_topology_plan_cpu(t, 0, p, 64);
	int nn = swarm_topology_numa_count(t);
	cr_assert_geq(n, 1, "plan_cpu(0) = %d", n);
	cr_assert_eq(n, nn, "plan_cpu(0) = %d devices, numa_count %d", n, nn);
	for (int i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof want, "cpu:%d", i);
		cr_assert_eq(p[i].index, i, "plan %d has index %d", i, p[i].index);
		cr_assert_str_eq(p[i].name, want, "plan %d named \"%s\"", i, p[i].name);
		hwloc_bitmap_t set = plan_cpus(&p[i]);
		cr_assert_not_null(set, "plan %d cpus \"%s\" do not parse or are empty", i,
				   p[i].cpus);
		int first = hwloc_bitmap_first(set);
		int node = swarm_topology_cpu_numa(t, first);
		cr_assert_eq(node, p[i].numa_node, "plan %d: cpu %d on node %d, plan says %d", i,
			     first, node, p[i].numa_node);
		hwloc_bitmap_free(set);
	}
	swarm_topology_free(t);
}

Test(runtime_topology, plan_splits_cores_without_overlap_when_enough)
{
	struct swarm_topology *t = topo_one_node();
	int cores = fixture_cores();
	struct swarm_device_plan p[64];
	int n = swarm_topology_plan_cpu(t, cores, p, 64);
	cr_assert_eq(n, cores, "plan_cpu(%d) = %d", cores, n);
	hwloc_bitmap_t all = hwloc_bitmap_alloc();
	for (int i = 0; i < n; i++) {
		hwloc_bitmap_t set = plan_cpus(&p[i]);
		cr_assert_not_null(set, "plan %d cpus \"%s\"", i, p[i].cpus);
		cr_assert(!hwloc_bitmap_intersects(all, set), "plan %d cpus \"%s\" overlap others",
			  i, p[i].cpus);
		hwloc_bitmap_or(all, all, set);
		hwloc_bitmap_free(set);
	}
	hwloc_bitmap_free(all);
	swarm_topology_free(t);
}

Test(runtime_topology, more_devices_than_cores_share_cores_round_robin)
{
	struct swarm_topology *t = topo_one_node();
	int cores = fixture_cores();
	cr_assert_geq(cores, 1, "cores %d", cores);
	int want = 2 * cores + 1;
	if (want > 64)
		want = 64;
	struct swarm_device_plan p[64];
	int n = swarm_topology_plan_cpu(t, want, p, 64);
	cr_assert_eq(n, want, "plan_cpu(%d) = %d", want, n);
	for (int i = 0; i < n; i++) {
		hwloc_bitmap_t set = plan_cpus(&p[i]);
		cr_assert_not_null(set, "plan %d cpus \"%s\"", i, p[i].cpus);
		hwloc_bitmap_free(set);
		/* Device i shares with device i + cores, and only with those. */
		for (int j = 0; j < i; j++) {
			int same = strcmp(p[i].cpus, p[j].cpus) == 0;
			cr_assert_eq(same, (i - j) % cores == 0,
				     "%d cores: plan %d \"%s\" vs plan %d \"%s\"", cores, i,
				     p[i].cpus, j, p[j].cpus);
		}
	}
	swarm_topology_free(t);
}

Test(runtime_topology, plan_rejects_bad_counts)
{
	struct swarm_topology *t = topo_live();
	struct swarm_device_plan p[4];
	int rc = swarm_topology_plan_cpu(t, 5, p, 4);
	cr_assert_eq(rc, -E2BIG, "5 devices into 4: got %d, want -E2BIG (%d)", rc, -E2BIG);
	rc = swarm_topology_plan_cpu(t, -1, p, 4);
	cr_assert_eq(rc, -EINVAL, "-1 devices: got %d, want -EINVAL (%d)", rc, -EINVAL);
	swarm_topology_free(t);
}

Test(runtime_topology, distance_to_self_is_10)
{
	struct swarm_topology *t = topo_live();
	int nn = swarm_topology_numa_count(t);
	for (int a = 0; a < nn; a++) {
		int d = swarm_topology_distance(t, a, a);
		cr_assert_eq(d, 10, "distance(%d, %d) = %d", a, a, d);
		for (int b = 0; b < nn; b++) {
			if (b == a)
				continue;
			int ab = swarm_topology_distance(t, a, b);
			cr_assert_gt(ab, 10, "distance(%d, %d) = %d", a, b, ab);
		}
	}
	swarm_topology_free(t);
}

Test(runtime_topology, distance_fits_the_balancer)
{
	struct swarm_topology *t = topo_live();
	struct swarm_device_plan p[8];
	int n = swarm_topology_plan_cpu(t, 4, p, 8);
	cr_assert_eq(n, 4, "plan_cpu(4) = %d", n);
	struct swarm_balancer_device d[4];
	for (int i = 0; i < n; i++)
		d[i] = dev(p[i].numa_node, (uint32_t)(4 - i), 8);
	int got = swarm_balancer_pick(d, 4, p[0].numa_node, swarm_topology_distance, t);
	/* On one node every distance is 10: sessions decide. */
	if (swarm_topology_numa_count(t) == 1)
		cr_assert_eq(got, 3, "one node: picked %d, want 3 (fewest sessions)", got);
	else
		cr_assert(got >= 0 && got < 4, "picked %d", got);
	swarm_topology_free(t);
}

static int dist_local_far(void *ctx, int a, int b)
{
	(void)ctx;
	return a == b ? 10 : 20;
}

Test(runtime_balancer, unknown_device_node_ranks_behind_known_nodes)
{
	struct swarm_balancer_device devs[2] = {
		{ .state = SWARM_DEVICE_ACTIVE,
		  .numa_node = -1,
		  .sessions = 0,
		  .capacity = 8,
		  .has_model = 1 },
		{ .state = SWARM_DEVICE_ACTIVE,
		  .numa_node = 1,
		  .sessions = 5,
		  .capacity = 8,
		  .has_model = 1 },
	};
	int got = swarm_balancer_pick(devs, 2, 0, dist_local_far, NULL);
	cr_assert_eq(got, 1, "a device of unknown node must lose to a known remote one: got %d",
		     got);
}

/* ---- rebalancing ------------------------------------------------------------------------------ */

#define SEC 1000000000ull
#define MAX_SS 64

struct world {
	size_t n_devs, n_ss;
	struct swarm_balancer_device d[MAX_DEVS];
	struct swarm_balancer_session s[MAX_SS];
	struct swarm_balancer_config cfg;
	struct dist_table t;
};

/* n devices, all active and empty, on the given nodes; two nodes 10 apart from themselves
 * and 21 from each other. */
static void world_init(struct world *w, size_t n, const int *nodes)
{
	memset(w, 0, sizeof *w);
	w->n_devs = n;
	for (size_t i = 0; i < n; i++)
		w->d[i] = dev(nodes ? nodes[i] : 0, 0, 64);
	swarm_balancer_config_default(&w->cfg);
	w->t = (struct dist_table){ .n = 2, .dist = { { 10, 21 }, { 21, 10 } } };
}

static void world_add(struct world *w, int device, int client_numa)
{
	w->s[w->n_ss++] = (struct swarm_balancer_session){
		.device = device,
		.client_numa = client_numa,
		.serves = ~0ull,
	};
	if (device >= 0)
		w->d[device].sessions++;
}

static int world_step(struct world *w, uint64_t now, uint64_t last_any,
		      struct swarm_balancer_move *mv)
{
	return swarm_balancer_rebalance(w->d, w->n_devs, w->s, w->n_ss, &w->cfg, now, last_any,
					table_distance, &w->t, mv);
}

static void world_apply(struct world *w, const struct swarm_balancer_move *mv, uint64_t now)
{
	struct swarm_balancer_session *s = &w->s[mv->session];
	if (s->device >= 0)
		w->d[s->device].sessions--;
	s->device = mv->to;
	s->last_move_ns = now;
	w->d[mv->to].sessions++;
}

/* Applies moves until none is left (at most limit); returns how many. */
static int world_settle(struct world *w, uint64_t now, int limit)
{
	struct swarm_balancer_move mv;
	int moves = 0;
	while (moves < limit && world_step(w, now, 0, &mv) == 1) {
		world_apply(w, &mv, now);
		moves++;
	}
	return moves;
}

Test(runtime_rebalance, a_joining_device_takes_half_of_the_sessions)
{
	struct world w;
	world_init(&w, 2, NULL);
	w.d[1].state = SWARM_DEVICE_WARMING;
	for (int i = 0; i < 8; i++)
		world_add(&w, 0, 0);
	struct swarm_balancer_move mv;
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 0, "moved %zu to %d while device 1 warms",
		     mv.session, mv.to);
	w.d[1].state = SWARM_DEVICE_ACTIVE;
	int moves = world_settle(&w, 2 * SEC, 100);
	cr_assert_eq(moves, 4, "moves %d", moves);
	cr_assert_eq(w.d[0].sessions, 4, "device 0 has %u", w.d[0].sessions);
	cr_assert_eq(w.d[1].sessions, 4, "device 1 has %u", w.d[1].sessions);
}

Test(runtime_rebalance, a_draining_device_is_emptied_onto_the_nearest)
{
	int nodes[3] = { 0, 1, 0 };
	struct world w;
	world_init(&w, 3, nodes);
	for (int i = 0; i < 3; i++)
		world_add(&w, 0, 0);
	world_add(&w, 1, 1);
	w.d[0].state = SWARM_DEVICE_DRAINING;
	struct swarm_balancer_move mv;
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 1);
	cr_assert_eq(mv.reason, SWARM_MOVE_EVACUATE, "reason %d", mv.reason);
	cr_assert_eq(mv.to, 2, "a node-0 client went to device %d, not node 0's device 2", mv.to);
	world_settle(&w, SEC, 100);
	cr_assert_eq(w.d[0].sessions, 0, "draining device kept %u", w.d[0].sessions);
	cr_assert_eq(w.d[2].sessions, 3, "device 2 has %u", w.d[2].sessions);
	cr_assert_eq(w.d[1].sessions, 1, "device 1 has %u", w.d[1].sessions);
}

Test(runtime_rebalance, sessions_of_a_dead_worker_move_and_the_homeless_wait)
{
	struct world w;
	world_init(&w, 2, NULL);
	world_add(&w, -1, 0); /* its worker died */
	w.s[0].serves = 1ull << 1;
	world_add(&w, -1, 0);
	w.s[1].serves = 1ull << 0; /* only the dead device serves this one's model */
	w.d[0].state = SWARM_DEVICE_WARMING;
	struct swarm_balancer_move mv;
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 1);
	cr_assert_eq(mv.session, 0, "session %zu moved", mv.session);
	cr_assert_eq(mv.to, 1, "to %d", mv.to);
	world_apply(&w, &mv, SEC);
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 0, "session 1 moved to %d, which lacks its model",
		     mv.to);
	w.d[0].state = SWARM_DEVICE_ACTIVE; /* the restarted worker is ready */
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 1);
	cr_assert_eq(mv.session, 1, "session %zu", mv.session);
	cr_assert_eq(mv.to, 0, "to %d", mv.to);
}

Test(runtime_rebalance, evenness_never_moves_a_session_farther_from_its_client)
{
	int nodes[2] = { 0, 1 };
	struct world w;
	world_init(&w, 2, nodes);
	for (int i = 0; i < 6; i++)
		world_add(&w, 0, 0);
	cr_assert_eq(world_settle(&w, SEC, 100), 0, "node-0 clients left node 0 for evenness");
	/* A client of unknown node is near to both: it may move. */
	world_add(&w, 0, -1);
	cr_assert_eq(world_settle(&w, SEC, 100), 1);
	cr_assert_eq(w.s[6].device, 1, "unknown-node session on %d", w.s[6].device);
}

Test(runtime_rebalance, a_nearer_device_with_room_wins_back_its_clients)
{
	int nodes[2] = { 0, 1 };
	struct world w;
	world_init(&w, 2, nodes);
	world_add(&w, 0, 1); /* opened on node 0 while node 1's device was away */
	world_add(&w, 0, 0);
	struct swarm_balancer_move mv;
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 1);
	cr_assert_eq(mv.session, 0, "session %zu", mv.session);
	cr_assert_eq(mv.to, 1, "to %d", mv.to);
	world_apply(&w, &mv, SEC);
	cr_assert_eq(world_step(&w, SEC, 0, &mv), 0, "then moved %zu to %d", mv.session, mv.to);
}

Test(runtime_rebalance, differences_of_one_session_are_even)
{
	struct world w;
	world_init(&w, 3, NULL);
	for (int i = 0; i < 3; i++)
		world_add(&w, 0, 0);
	for (int i = 0; i < 2; i++)
		world_add(&w, 1, 0);
	world_add(&w, 2, 0);
	world_add(&w, 2, 0);
	cr_assert_eq(world_settle(&w, SEC, 100), 0, "3/2/2 is as even as 7 sessions get");
}

Test(runtime_rebalance, busy_moves_wait_for_the_gap_the_interval_and_the_cooldown)
{
	struct world w;
	world_init(&w, 2, NULL);
	for (int i = 0; i < 3; i++)
		world_add(&w, 0, 0);
	world_add(&w, 1, 0);
	world_add(&w, 1, 0);
	struct swarm_balancer_move mv;
	w.d[0].busy = 0.80f;
	w.d[1].busy = 0.55f; /* a gap of 0.25 < 0.3 */
	cr_assert_eq(world_step(&w, 100 * SEC, 0, &mv), 0, "moved on a gap of 0.25");
	w.d[1].busy = 0.40f;
	cr_assert_eq(world_step(&w, 100 * SEC, 99 * SEC + SEC / 2, &mv), 0,
		     "moved 0.5 s after another move");
	cr_assert_eq(world_step(&w, 100 * SEC, 99 * SEC, &mv), 1, "no move on a 0.4 gap");
	cr_assert_eq(mv.reason, SWARM_MOVE_BUSY, "reason %d", mv.reason);
	cr_assert_eq(mv.to, 1, "to %d", mv.to);
	/* Every session of device 0 moved recently: none may go. */
	w.s[0].last_move_ns = w.s[1].last_move_ns = w.s[2].last_move_ns = 95 * SEC;
	cr_assert_eq(world_step(&w, 100 * SEC, 0, &mv), 0, "moved session %zu in its cool-down",
		     mv.session);
}

Test(runtime_rebalance, busy_moves_never_make_the_target_the_fuller_device)
{
	struct world w;
	world_init(&w, 2, NULL);
	world_add(&w, 0, 0);
	world_add(&w, 0, 0);
	world_add(&w, 1, 0);
	world_add(&w, 1, 0);
	w.d[0].busy = 0.95f;
	w.d[1].busy = 0.10f;
	struct swarm_balancer_move mv;
	/* 2 and 2 would become 1 and 3, which evenness would move straight back. */
	cr_assert_eq(world_step(&w, 100 * SEC, 0, &mv), 0,
		     "moved %zu to device 1, which has as many sessions", mv.session);
}

/* A noisy but constant load never makes a session bounce: 10 minutes of 100 ms samples whose
 * busy fractions jitter uniformly by +-0.25 around 0.5 (single samples differ by up to 0.5,
 * past busy_gap), smoothed as swarmd smooths them (an EWMA with a 5 s time constant), on three
 * devices holding 2, 1 and 1 sessions: no load move at all. */
Test(runtime_rebalance, noisy_constant_load_does_not_flap)
{
	struct world w;
	world_init(&w, 3, NULL);
	world_add(&w, 0, 0);
	world_add(&w, 0, 0);
	world_add(&w, 1, 0);
	world_add(&w, 2, 0);
	uint64_t rng = 42, last_any = 0;
	float ewma[3] = { 0.5f, 0.5f, 0.5f };
	const float alpha = 0.1f / 5.0f; /* sample period over time constant */
	int moves = 0;
	for (uint64_t tick = 1; tick <= 6000; tick++) {
		uint64_t now = tick * SEC / 10;
		for (int i = 0; i < 3; i++) {
			float raw = 0.25f + (float)(rng_next(&rng) % 501) / 1000.0f;
			ewma[i] += alpha * (raw - ewma[i]);
			w.d[i].busy = ewma[i];
		}
		struct swarm_balancer_move mv;
		if (world_step(&w, now, last_any, &mv) == 1) {
			world_apply(&w, &mv, now);
			last_any = now;
			moves++;
		}
	}
	cr_assert_eq(moves, 0, "%d moves on a flat load", moves);
}

/* A lasting imbalance moves exactly one session, then stops. */
Test(runtime_rebalance, a_lasting_imbalance_moves_one_session_then_stops)
{
	struct world w;
	world_init(&w, 2, NULL);
	world_add(&w, 0, 0);
	world_add(&w, 0, 0);
	int moves = 0;
	uint64_t last_any = 0;
	for (uint64_t t = 1; t <= 60; t++) {
		/* Two equal sessions: busy follows the count. */
		w.d[0].busy = 0.4f * (float)w.d[0].sessions;
		w.d[1].busy = 0.4f * (float)w.d[1].sessions;
		struct swarm_balancer_move mv;
		if (world_step(&w, t * SEC, last_any, &mv) == 1) {
			world_apply(&w, &mv, t * SEC);
			last_any = t * SEC;
			moves++;
		}
	}
	cr_assert_eq(moves, 1, "%d moves", moves);
	cr_assert_eq(w.d[0].sessions, 1, "device 0 holds %u", w.d[0].sessions);
}

/* Random worlds: every move goes to an ACTIVE device with room that serves the session's
 * model, and settling leaves equal clients within one session of even. */
Test(runtime_rebalance, random_worlds_move_only_to_eligible_devices_and_settle_even)
{
	uint64_t rng = 0xfeedbeef;
	for (int iter = 0; iter < 2000; iter++) {
		struct world w;
		size_t n = 1 + rng_next(&rng) % 8;
		world_init(&w, n, NULL);
		size_t m = rng_next(&rng) % MAX_SS;
		for (size_t i = 0; i < n; i++) {
			w.d[i].state = rng_next(&rng) % 4 ? SWARM_DEVICE_ACTIVE :
							    (int)(rng_next(&rng) % 5);
			w.d[i].capacity = (uint32_t)(MAX_SS);
		}
		for (size_t k = 0; k < m; k++)
			world_add(&w, (int)(rng_next(&rng) % n), 0);
		struct swarm_balancer_move mv;
		int guard = 0;
		while (world_step(&w, SEC, 0, &mv) == 1) {
			cr_assert(mv.to >= 0 && (size_t)mv.to < n, "iter %d: to %d", iter, mv.to);
			cr_assert_eq(w.d[mv.to].state, SWARM_DEVICE_ACTIVE,
				     "iter %d: moved onto a %s device", iter,
				     swarm_device_state_name(w.d[mv.to].state));
			cr_assert_lt(w.d[mv.to].sessions, w.d[mv.to].capacity, "iter %d: full", iter);
			world_apply(&w, &mv, SEC);
			cr_assert_lt(++guard, 1000, "iter %d: moves do not converge", iter);
		}
		uint32_t lo = UINT32_MAX, hi = 0;
		int any_active = 0;
		for (size_t i = 0; i < n; i++) {
			if (w.d[i].state != SWARM_DEVICE_ACTIVE)
				continue;
			any_active = 1;
			lo = w.d[i].sessions < lo ? w.d[i].sessions : lo;
			hi = w.d[i].sessions > hi ? w.d[i].sessions : hi;
		}
		if (any_active)
			cr_assert_leq(hi - lo, 1, "iter %d: active devices hold %u to %u sessions",
				      iter, lo, hi);
	}
}
