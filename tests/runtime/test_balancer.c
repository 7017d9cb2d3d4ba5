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

/* Cores (or PUs where hwloc reports no cores) of the whole machine. */
static int machine_cores(void)
{
	hwloc_topology_t topo;
	cr_assert_eq(hwloc_topology_init(&topo), 0);
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
	struct swarm_topology *t = topo_live();
	if (swarm_topology_numa_count(t) != 1) {
		swarm_topology_free(t);
		cr_skip_test("this check assumes one NUMA node; the machine has %d",
			     swarm_topology_numa_count(t));
	}
	int cores = machine_cores();
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
	struct swarm_topology *t = topo_live();
	if (swarm_topology_numa_count(t) != 1) {
		swarm_topology_free(t);
		cr_skip_test("this check assumes one NUMA node; the machine has %d",
			     swarm_topology_numa_count(t));
	}
	int cores = machine_cores();
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
