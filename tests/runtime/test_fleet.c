/* test_fleet.c: the placement of models on devices (runtime/fleet.h): hosts gained on devices
 * in service with room before evicting and before waking, the least loaded first, two models
 * never given the same room, hosts let go by fewest sessions, devices parked when they host
 * nothing wanted (never below the floor, never with sessions), constraints kept, shortfalls
 * reported, and a seeded property test of every plan against the input it came from. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "runtime/balancer.h"
#include "runtime/fleet.h"

#define GB (1024ull * 1024 * 1024)
#define ALL (~0ull)

static struct swarm_fleet_device active(uint64_t budget, uint64_t used, double load)
{
	return (struct swarm_fleet_device){
		.state = SWARM_DEVICE_ACTIVE, .budget = budget, .used = used, .load = load
	};
}

static struct swarm_fleet_device parked(uint64_t budget)
{
	return (struct swarm_fleet_device){ .state = SWARM_DEVICE_PARKED, .budget = budget };
}

static int plan(const struct swarm_fleet_model *m, size_t nm, const struct swarm_fleet_device *d,
		size_t nd, uint32_t floor, struct swarm_fleet_action *out, uint32_t *lack)
{
	return swarm_fleet_plan(m, nm, d, nd, floor, out, 64, lack);
}

Test(runtime_fleet, a_new_host_is_the_least_loaded_device_with_room)
{
	struct swarm_fleet_device d[3] = { active(8 * GB, 1 * GB, 0.2), active(8 * GB, 1 * GB, 0.1),
					   active(8 * GB, 7 * GB, 0.0) };
	struct swarm_fleet_model m = { .want = 2, .hosts = 1, .allowed = ALL, .bytes = 2 * GB };
	struct swarm_fleet_action a[64];
	uint32_t lack = 99;
	cr_assert_eq(plan(&m, 1, d, 3, 1, a, &lack), 2);
	/* Device 2 is idle but has 1 GB free; device 1 is less loaded than device 0 (a host). */
	cr_assert_eq(a[0].kind, SWARM_FLEET_ADD);
	cr_assert_eq(a[0].device, 1);
	cr_assert_eq(a[0].wake, 0);
	cr_assert_eq(a[0].evict, 0);
	cr_assert_eq(lack, 0);
	/* Device 2 hosts nothing wanted then: it is parked. */
	cr_assert_eq(a[1].kind, SWARM_FLEET_PARK);
	cr_assert_eq(a[1].device, 2);
}

Test(runtime_fleet, eviction_of_reclaimable_bytes_comes_before_waking_a_device)
{
	struct swarm_fleet_device d[2] = { active(4 * GB, 3 * GB, 0.5), parked(4 * GB) };
	d[0].reclaimable = 2 * GB;
	struct swarm_fleet_model m = { .want = 1, .allowed = ALL, .bytes = 2 * GB };
	struct swarm_fleet_action a[64];
	cr_assert_eq(plan(&m, 1, d, 2, 0, a, NULL), 1);
	cr_assert_eq(a[0].device, 0);
	cr_assert_eq(a[0].evict, 1);
	cr_assert_eq(a[0].wake, 0);

	d[0].reclaimable = GB / 2; /* 1.5 GB at most: not enough, so the parked one wakes */
	cr_assert_eq(plan(&m, 1, d, 2, 2, a, NULL), 1);
	cr_assert_eq(a[0].device, 1);
	cr_assert_eq(a[0].wake, 1);
	cr_assert_eq(a[0].evict, 0);
	/* and device 0, hosting nothing wanted, is parked where the floor allows. */
	cr_assert_eq(plan(&m, 1, d, 2, 0, a, NULL), 2);
	cr_assert_eq(a[1].kind, SWARM_FLEET_PARK);
	cr_assert_eq(a[1].device, 0);
}

Test(runtime_fleet, a_warm_spare_is_woken_before_a_parked_device)
{
	struct swarm_fleet_device d[3] = { active(4 * GB, 4 * GB, 0.9), parked(4 * GB),
					   parked(4 * GB) };
	d[2].state = SWARM_DEVICE_STANDBY;
	d[1].parking = 0;
	struct swarm_fleet_model m = { .want = 2, .hosts = 1, .allowed = ALL, .bytes = GB };
	struct swarm_fleet_action a[64];
	cr_assert_eq(plan(&m, 1, d, 3, 0, a, NULL), 1);
	cr_assert_eq(a[0].device, 2);
	cr_assert_eq(a[0].wake, 1);
	/* A device being stopped is never woken. */
	d[2].parking = 1;
	cr_assert_eq(plan(&m, 1, d, 3, 0, a, NULL), 1);
	cr_assert_eq(a[0].device, 1);
}

Test(runtime_fleet, two_models_are_never_given_the_same_room)
{
	struct swarm_fleet_device d[2] = { active(4 * GB, 1 * GB, 0.0), parked(4 * GB) };
	struct swarm_fleet_model m[2] = {
		{ .want = 1, .allowed = ALL, .bytes = 2 * GB },
		{ .want = 1, .allowed = ALL, .bytes = 2 * GB },
	};
	struct swarm_fleet_action a[64];
	uint32_t lack[2];
	cr_assert_eq(plan(m, 2, d, 2, 0, a, lack), 2);
	cr_assert_eq(a[0].device, 0);
	cr_assert_eq(a[1].device, 1, "3 GB free on device 0 holds one of the two, not both");
	cr_assert_eq(a[1].wake, 1);
	cr_assert_eq(lack[0] + lack[1], 0);
}

Test(runtime_fleet, constraints_and_the_budget_bound_what_a_model_gets)
{
	struct swarm_fleet_device d[3] = { active(4 * GB, 0, 0.0), active(4 * GB, 0, 0.0),
					   parked(1 * GB) };
	/* Allowed on devices 1 and 2 only; device 2 is too small: one host, one lacking. */
	struct swarm_fleet_model m = { .want = 3, .allowed = 0x6, .bytes = 2 * GB };
	struct swarm_fleet_action a[64];
	uint32_t lack = 0;
	cr_assert_eq(plan(&m, 1, d, 3, 3, a, &lack), 1);
	cr_assert_eq(a[0].device, 1);
	cr_assert_eq(lack, 2);
}

Test(runtime_fleet, a_host_is_let_go_by_fewest_sessions_then_most_load)
{
	struct swarm_fleet_device d[3] = { active(4 * GB, GB, 0.1), active(4 * GB, GB, 0.2),
					   active(4 * GB, GB, 0.9) };
	uint32_t sessions[3] = { 0, 3, 0 };
	for (int i = 0; i < 3; i++)
		d[i].sessions = sessions[i];
	struct swarm_fleet_model m = {
		.want = 2, .hosts = 0x7, .allowed = ALL, .bytes = GB, .sessions = sessions
	};
	struct swarm_fleet_action a[64];
	cr_assert_eq(plan(&m, 1, d, 3, 3, a, NULL), 1);
	cr_assert_eq(a[0].kind, SWARM_FLEET_REMOVE);
	cr_assert_eq(a[0].device, 2, "0 sessions on 0 and 2, and 2 is the more loaded");
}

Test(runtime_fleet, a_device_hosting_nothing_wanted_is_parked_down_to_the_floor)
{
	struct swarm_fleet_device d[4] = { active(4 * GB, GB, 0), active(4 * GB, GB, 0),
					   active(4 * GB, 0, 0), active(4 * GB, 0, 0) };
	d[3].sessions = 1; /* a session of a model no longer counted: kept until it goes */
	struct swarm_fleet_model m[2] = {
		{ .want = 1, .hosts = 0x1, .allowed = ALL, .bytes = GB },
		{ .want = 0, .hosts = 0x2, .allowed = ALL, .bytes = GB }, /* scaled to zero */
	};
	struct swarm_fleet_action a[64];
	int n = plan(m, 2, d, 4, 1, a, NULL);
	cr_assert_eq(n, 3);
	cr_assert_eq(a[0].kind, SWARM_FLEET_REMOVE);
	cr_assert_eq(a[0].model, 1);
	cr_assert_eq(a[0].device, 1);
	/* Parked highest first: 2 (empty), then 1 (its model let go); 3 has a session, 0 a
	 * wanted host. */
	cr_assert_eq(a[1].kind, SWARM_FLEET_PARK);
	cr_assert_eq(a[1].device, 2);
	cr_assert_eq(a[2].kind, SWARM_FLEET_PARK);
	cr_assert_eq(a[2].device, 1);

	/* With a floor of 3 only one goes. */
	n = plan(m, 2, d, 4, 3, a, NULL);
	cr_assert_eq(n, 2);
	cr_assert_eq(a[1].device, 2);
}

Test(runtime_fleet, warming_and_draining_devices_count_as_they_are)
{
	struct swarm_fleet_device d[3] = { active(4 * GB, GB, 0), active(4 * GB, GB, 0),
					   active(4 * GB, GB, 0) };
	d[1].state = SWARM_DEVICE_WARMING;  /* a host on its way: counts */
	d[2].state = SWARM_DEVICE_DRAINING; /* a host leaving: does not */
	struct swarm_fleet_model m = { .want = 2, .hosts = 0x7, .allowed = ALL, .bytes = GB };
	cr_assert_eq(swarm_fleet_in_service(&m, d, 3), 2);
	struct swarm_fleet_action a[64];
	cr_assert_eq(plan(&m, 1, d, 3, 0, a, NULL), 0);
}

Test(runtime_fleet, bad_input_is_refused_and_a_full_output_stops_cleanly)
{
	struct swarm_fleet_device d[2] = { active(4 * GB, 0, 0), active(4 * GB, 0, 0) };
	struct swarm_fleet_model m = { .want = 2, .allowed = ALL, .bytes = GB };
	struct swarm_fleet_action a[1];
	cr_assert_eq(swarm_fleet_plan(NULL, 1, d, 2, 0, a, 1, NULL), -EINVAL);
	cr_assert_eq(swarm_fleet_plan(&m, 1, NULL, 2, 0, a, 1, NULL), -EINVAL);
	cr_assert_eq(swarm_fleet_plan(&m, 1, d, 2, 0, NULL, 1, NULL), -EINVAL);
	cr_assert_eq(swarm_fleet_plan(&m, 1, d, SWARM_FLEET_MAX_DEVICES + 1, 0, a, 1, NULL),
		     -EINVAL);
	uint32_t lack = 0;
	cr_assert_eq(swarm_fleet_plan(&m, 1, d, 2, 0, a, 1, &lack), 1);
	cr_assert_eq(lack, 1, "the second host did not fit the output: reported as lacking");
	cr_assert_eq(swarm_fleet_plan(NULL, 0, NULL, 0, 0, NULL, 0, NULL), 0);
}

Test(runtime_fleet, room_one_model_lets_go_serves_another_in_the_same_plan)
{
	/* Device 0 is full with a's copy; a wants none of its two hosts but device 1's (the
	 * one with sessions); b, first in order, wants a device: it gets device 0 by evicting
	 * a's idle copy there, rather than waking device 2, and nothing is parked. */
	struct swarm_fleet_device d[3] = { active(4 * GB, 4 * GB, 0), active(4 * GB, 4 * GB, 0),
					   parked(4 * GB) };
	uint32_t sessions_a[3] = { 0, 2, 0 };
	d[1].sessions = 2;
	struct swarm_fleet_model m[2] = {
		{ .want = 1, .allowed = ALL, .bytes = 3 * GB },
		{ .want = 1, .hosts = 0x3, .allowed = ALL, .bytes = 4 * GB, .sessions = sessions_a },
	};
	struct swarm_fleet_action a[64];
	uint32_t lack[2];
	int n = plan(m, 2, d, 3, 1, a, lack);
	cr_assert_eq(n, 2);
	cr_assert_eq(a[0].kind, SWARM_FLEET_REMOVE);
	cr_assert_eq(a[0].model, 1);
	cr_assert_eq(a[0].device, 0);
	cr_assert_eq(a[1].kind, SWARM_FLEET_ADD);
	cr_assert_eq(a[1].model, 0);
	cr_assert_eq(a[1].device, 0);
	cr_assert_eq(a[1].evict, 1);
	cr_assert_eq(a[1].wake, 0);
	cr_assert_eq(lack[0], 0);
}

Test(runtime_fleet, an_idle_copy_of_the_model_is_taken_back_before_any_other_room)
{
	/* Device 1 still holds the model (let go earlier, idle); device 0 is emptier and less
	 * loaded, but a host there would load it again. */
	struct swarm_fleet_device d[2] = { active(8 * GB, 0, 0.0), active(4 * GB, 4 * GB, 0.5) };
	d[1].reclaimable = 2 * GB;
	struct swarm_fleet_model m = { .want = 1, .cached = 0x2, .allowed = ALL, .bytes = 2 * GB };
	struct swarm_fleet_action a[64];
	cr_assert_eq(plan(&m, 1, d, 2, 2, a, NULL), 1);
	cr_assert_eq(a[0].kind, SWARM_FLEET_ADD);
	cr_assert_eq(a[0].device, 1);
	cr_assert_eq(a[0].evict, 0);
	cr_assert_eq(a[0].wake, 0);
	/* Its bytes are no longer reclaimable: a second model that would need them finds no
	 * room on device 1 and, with 1 GB free on device 0 and nothing to wake, lacks one. */
	struct swarm_fleet_model two[2] = { m, { .want = 1, .allowed = 0x3, .bytes = 2 * GB } };
	d[0].used = 7 * GB;
	uint32_t lack[2];
	cr_assert_eq(plan(two, 2, d, 2, 2, a, lack), 1);
	cr_assert_eq(a[0].device, 1);
	cr_assert_eq(lack[1], 1, "device 1's reclaimable bytes were the cached copy's");
}

Test(runtime_fleet, a_warm_spare_that_has_the_model_is_woken_first)
{
	/* Device 1, a spare, is empty; device 2, a spare too, preloaded the model: waking it
	 * needs no load. */
	struct swarm_fleet_device d[3] = { active(4 * GB, 4 * GB, 0.9), parked(4 * GB),
					   parked(4 * GB) };
	d[1].state = d[2].state = SWARM_DEVICE_STANDBY;
	d[2].used = d[2].reclaimable = 3 * GB;
	struct swarm_fleet_model m = {
		.want = 2, .hosts = 0x1, .cached = 0x4, .allowed = ALL, .bytes = 3 * GB
	};
	struct swarm_fleet_action a[64];
	cr_assert_eq(plan(&m, 1, d, 3, 0, a, NULL), 1);
	cr_assert_eq(a[0].kind, SWARM_FLEET_ADD);
	cr_assert_eq(a[0].device, 2);
	cr_assert_eq(a[0].wake, 1);
	/* Without the copy there, the lowest spare. */
	m.cached = 0;
	cr_assert_eq(plan(&m, 1, d, 3, 0, a, NULL), 1);
	cr_assert_eq(a[0].device, 1);
}

/* ---- property test ----------------------------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

Test(runtime_fleet, every_plan_keeps_budgets_constraints_and_wants)
{
	static const int states[] = { SWARM_DEVICE_ACTIVE,   SWARM_DEVICE_WARMING,
				      SWARM_DEVICE_DRAINING, SWARM_DEVICE_PARKED,
				      SWARM_DEVICE_STANDBY,  SWARM_DEVICE_FAILED };
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (int round = 0; round < 3000; round++) {
		size_t nd = 1 + rng(&seed) % 12, nm = rng(&seed) % 8;
		struct swarm_fleet_device d[12];
		struct swarm_fleet_model m[8];
		uint32_t sess[8][12];
		for (size_t i = 0; i < nd; i++) {
			d[i] = (struct swarm_fleet_device){
				.state = states[rng(&seed) % 6],
				.parking = rng(&seed) % 8 == 0,
				.budget = (1 + rng(&seed) % 8) * GB,
				.load = (double)(rng(&seed) % 100) / 100.0,
			};
			if (d[i].state == SWARM_DEVICE_PARKED || d[i].state == SWARM_DEVICE_STANDBY)
				continue;
			d[i].used = rng(&seed) % (d[i].budget + 1);
			d[i].reclaimable = rng(&seed) % (d[i].used + 1);
		}
		uint64_t up = 0, spares = 0; /* devices with a worker: only they hold anything */
		for (size_t i = 0; i < nd; i++)
			spares |= (uint64_t)(d[i].state == SWARM_DEVICE_STANDBY) << i;
		for (size_t i = 0; i < nd; i++)
			up |= (uint64_t)(d[i].state != SWARM_DEVICE_PARKED &&
					 d[i].state != SWARM_DEVICE_STANDBY &&
					 d[i].state != SWARM_DEVICE_FAILED)
			      << i;
		for (size_t k = 0; k < nm; k++) {
			m[k] = (struct swarm_fleet_model){
				.want = (uint32_t)(rng(&seed) % 5),
				.hosts = rng(&seed) & up,
				.cached = rng(&seed) & (up | spares),
				.allowed = rng(&seed) % 3 ? ALL : rng(&seed),
				.bytes = (rng(&seed) % 4) * GB + GB / 2,
				.sessions = sess[k],
			};
			m[k].cached &= ~m[k].hosts;
			for (size_t i = 0; i < nd; i++) {
				/* A cached copy is idle bytes of the device: reclaimable. */
				if (m[k].cached >> i & 1) {
					d[i].used += m[k].bytes;
					d[i].budget += m[k].bytes;
					d[i].reclaimable += m[k].bytes;
				}
				sess[k][i] = (m[k].hosts >> i & 1) ? (uint32_t)(rng(&seed) % 3) : 0;
				d[i].sessions += sess[k][i];
			}
		}
		uint32_t floor = (uint32_t)(rng(&seed) % 4);
		struct swarm_fleet_action a[256];
		uint32_t lack[8];
		int n = swarm_fleet_plan(m, nm, d, nd, floor, a, 256, lack);
		cr_assert_geq(n, 0);

		uint64_t given[12] = { 0 }, freed[12] = { 0 }, back[12] = { 0 }, hosts[8];
		int on[12], parked_now[12] = { 0 };
		uint32_t n_on = 0, n_on_before = 0;
		for (size_t i = 0; i < nd; i++) {
			on[i] = !d[i].parking && (d[i].state == SWARM_DEVICE_ACTIVE ||
						  d[i].state == SWARM_DEVICE_WARMING);
			n_on_before += (uint32_t)on[i];
		}
		for (size_t k = 0; k < nm; k++)
			hosts[k] = m[k].hosts;
		for (int j = 0; j < n; j++) {
			const struct swarm_fleet_action *x = &a[j];
			cr_assert_lt(x->device, nd);
			if (x->kind == SWARM_FLEET_ADD) {
				const struct swarm_fleet_model *mk = &m[x->model];
				cr_assert(mk->allowed >> x->device & 1, "round %d: constraint",
					  round);
				cr_assert(!(hosts[x->model] >> x->device & 1), "round %d", round);
				cr_assert(!d[x->device].parking, "round %d: parking device", round);
				if (x->wake)
					cr_assert(!on[x->device] &&
						  (d[x->device].state == SWARM_DEVICE_PARKED ||
						   d[x->device].state == SWARM_DEVICE_STANDBY));
				else
					cr_assert(on[x->device], "round %d: not in service", round);
				on[x->device] = 1;
				hosts[x->model] |= 1ull << x->device;
				if (mk->cached >> x->device & 1)
					back[x->device] += mk->bytes; /* no longer reclaimable */
				else
					given[x->device] += mk->bytes;
			} else if (x->kind == SWARM_FLEET_REMOVE) {
				cr_assert(hosts[x->model] >> x->device & 1);
				cr_assert(on[x->device]);
				hosts[x->model] &= ~(1ull << x->device);
				freed[x->device] += m[x->model].bytes;
			} else {
				cr_assert_eq(x->kind, SWARM_FLEET_PARK);
				cr_assert(on[x->device] && !d[x->device].sessions, "round %d",
					  round);
				parked_now[x->device] = 1;
				on[x->device] = 0;
			}
		}
		for (size_t i = 0; i < nd; i++) {
			/* What the plan gives a device fits its free and reclaimable bytes. */
			uint64_t room = d[i].budget - d[i].used + d[i].reclaimable + freed[i];
			room -= back[i] < d[i].reclaimable + freed[i] ? back[i] :
									d[i].reclaimable + freed[i];
			cr_assert_leq(given[i], room, "round %d device %zu over budget", round, i);
			n_on += (uint32_t)on[i];
		}
		for (size_t k = 0; k < nm; k++) {
			uint32_t have = 0;
			for (size_t i = 0; i < nd; i++) {
				have += (hosts[k] >> i & 1) && on[i];
				/* A device parked by the plan hosts no wanted model. */
				cr_assert(!(parked_now[i] && m[k].want && (hosts[k] >> i & 1)),
					  "round %d: parked a wanted host", round);
			}
			uint32_t before = swarm_fleet_in_service(&m[k], d, nd);
			if (before <= m[k].want)
				cr_assert_eq(have + lack[k], m[k].want, "round %d model %zu", round,
					     k);
			else
				cr_assert_eq(have, m[k].want, "round %d model %zu", round, k);
		}
		cr_assert(n_on >= floor || n_on >= n_on_before, "round %d: below the floor", round);
	}
}
