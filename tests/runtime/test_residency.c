/* test_residency.c: device memory accounting and placement by memory (runtime/residency.h):
 * shared weights counted once, resident devices first, fitting without eviction before
 * evicting, least recently used idle versions first, never a pinned version or one whose
 * sessions cannot move, the refusals with their sizes, and a seeded property test of every
 * choice against the snapshot it came from. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "runtime/residency.h"

#define MB (1024ull * 1024)

static struct swarm_res_device device(uint64_t budget, struct swarm_res_version *res, uint32_t n)
{
	return (struct swarm_res_device){
		.bal = { .state = SWARM_DEVICE_ACTIVE,
			 .numa_node = 0,
			 .capacity = 100,
			 .has_model = 1 },
		.budget_bytes = budget,
		.resident = res,
		.n_resident = n,
	};
}

/* A version of its own weights (weights_key 0 shares with nothing unless given). */
static struct swarm_res_version ver(uint64_t key, uint64_t weights_key, uint64_t weights,
				    uint64_t other, uint64_t last_used)
{
	return (struct swarm_res_version){ .key = key,
					   .weights_key = weights_key,
					   .weights_bytes = weights,
					   .other_bytes = other,
					   .last_used_ns = last_used };
}

static int place(const struct swarm_res_device *devs, size_t n, const struct swarm_res_version *v,
		 struct swarm_res_choice *c)
{
	return swarm_res_place(devs, n, v, -1, NULL, NULL, c);
}

Test(runtime_residency, shared_weights_count_once_per_device)
{
	struct swarm_res_version r[3] = { ver(1, 7, 60 * MB, 5 * MB, 1),
					  ver(2, 7, 60 * MB, 3 * MB, 2),
					  ver(3, 0, 10 * MB, 1 * MB, 3) };
	struct swarm_res_device d = device(200 * MB, r, 3);
	cr_assert_eq(swarm_res_used(&d), 60 * MB + 5 * MB + 3 * MB + 11 * MB, "used %llu",
		     (unsigned long long)swarm_res_used(&d));
	struct swarm_res_version shares = ver(4, 7, 60 * MB, 2 * MB, 0);
	cr_assert_eq(swarm_res_need(&d, &shares), 2 * MB,
		     "a version of a blob already there "
		     "needs only its own bytes");
	struct swarm_res_version own = ver(5, 8, 60 * MB, 2 * MB, 0);
	cr_assert_eq(swarm_res_need(&d, &own), 62 * MB);
	cr_assert_eq(swarm_res_need(&d, &r[1]), 0, "resident: nothing to load");
	cr_assert_eq(swarm_res_cost(&own), 62 * MB);
	struct swarm_res_version zero[2] = { ver(1, 0, 10, 1, 0), ver(2, 0, 10, 1, 0) };
	struct swarm_res_device z = device(100, zero, 2);
	cr_assert_eq(swarm_res_used(&z), 22, "weights_key 0 shares with nothing");
}

Test(runtime_residency, where_it_is_resident_or_fits_freely_the_balancer_decides)
{
	struct swarm_res_version a[1] = { ver(1, 0, 50 * MB, 0, 1) };
	struct swarm_res_version other[1] = { ver(2, 0, 40 * MB, 0, 1) };
	struct swarm_res_device devs[3] = { device(1024 * MB, NULL, 0), device(64 * MB, a, 1),
					    device(64 * MB, a, 1) };
	devs[0].bal.sessions = 3;
	devs[1].bal.sessions = 9;
	devs[2].bal.sessions = 4;
	struct swarm_res_choice c;
	cr_assert_eq(place(devs, 3, &a[0], &c), 0);
	cr_assert_eq(c.device, 0, "free memory spreads sessions as without budgets: got %d",
		     c.device);
	cr_assert(!c.resident && c.need == 50 * MB && c.n_evict == 0);
	devs[0].bal.sessions = 4; /* a tie with device 2: the one that holds it */
	cr_assert_eq(place(devs, 3, &a[0], &c), 0);
	cr_assert_eq(c.device, 2, "on a tie, where it is resident: got %d", c.device);
	devs[0].bal.sessions = 5;
	cr_assert_eq(place(devs, 3, &a[0], &c), 0);
	cr_assert_eq(c.device, 2, "the least loaded, which holds it: got %d", c.device);
	cr_assert(c.resident && c.need == 0 && c.n_evict == 0);
	/* Device 0 fills up with an idle version: loading there would evict; the resident
	 * devices win whatever their load. */
	struct swarm_res_version big[1] = { ver(3, 0, 1000 * MB, 0, 1) };
	devs[0] = device(1024 * MB, big, 1);
	devs[2].bal.sessions = 99;
	cr_assert_eq(place(devs, 3, &a[0], &c), 0);
	cr_assert(c.device == 1 || c.device == 2, "a resident device: got %d", c.device);
	cr_assert_eq(c.device, 1, "the less loaded of the two holding it: got %d", c.device);
	cr_assert(c.resident && c.n_evict == 0);
	/* Resident over its budget (the budget shrank): still served there, nothing evicted. */
	struct swarm_res_version over[2] = { ver(1, 0, 50 * MB, 0, 1), other[0] };
	devs[1] = device(64 * MB, over, 2);
	devs[2].bal.state = SWARM_DEVICE_DRAINING;
	cr_assert_eq(place(devs, 3, &a[0], &c), 0);
	cr_assert(c.device == 1 && c.resident && c.n_evict == 0, "device %d, %u evicted", c.device,
		  c.n_evict);
	/* None that holds it can take a session: loaded where it fits after an eviction. */
	devs[1].bal.state = SWARM_DEVICE_DRAINING;
	cr_assert_eq(place(devs, 3, &a[0], &c), 0);
	cr_assert_eq(c.device, 0, "got %d", c.device);
	cr_assert(!c.resident && c.need == 50 * MB && c.n_evict == 1);
}

Test(runtime_residency, fitting_without_eviction_beats_a_less_loaded_device_that_must_evict)
{
	struct swarm_res_version full[1] = { ver(1, 0, 60 * MB, 0, 5) };
	struct swarm_res_version some[1] = { ver(2, 0, 20 * MB, 0, 5) };
	struct swarm_res_device devs[2] = { device(100 * MB, full, 1), device(100 * MB, some, 1) };
	devs[1].bal.sessions = 50;
	struct swarm_res_version v = ver(3, 0, 50 * MB, 0, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(devs, 2, &v, &c), 0);
	cr_assert_eq(c.device, 1, "fits on device 1 as it is: got %d", c.device);
	cr_assert_eq(c.n_evict, 0);
	cr_assert_eq(c.need, 50 * MB);
}

Test(runtime_residency, least_recently_used_idle_versions_leave_first_and_no_more_than_needed)
{
	struct swarm_res_version r[4] = { ver(1, 0, 30 * MB, 0, 300), ver(2, 0, 30 * MB, 0, 100),
					  ver(3, 0, 30 * MB, 0, 200), ver(4, 0, 10 * MB, 0, 50) };
	r[3].pinned = 1; /* the oldest, but preloaded */
	struct swarm_res_device d = device(100 * MB, r, 4);
	struct swarm_res_version v = ver(9, 0, 25 * MB, 0, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert_eq(c.n_evict, 1, "one eviction frees enough: %u", c.n_evict);
	cr_assert_eq(c.evict[0], 1, "the least recently used unpinned one (index 1): got %u",
		     c.evict[0]);
	cr_assert_eq(c.evict_bytes, 30 * MB);
	v.other_bytes = 30 * MB; /* 55 MB: two must go, oldest first */
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert_eq(c.n_evict, 2);
	cr_assert(c.evict[0] == 1 && c.evict[1] == 2, "evicted %u then %u", c.evict[0], c.evict[1]);
	cr_assert_eq(c.evict_moving, 0);
}

Test(runtime_residency, a_lower_priority_leaves_before_a_less_recently_used_one)
{
	struct swarm_res_version r[3] = { ver(1, 0, 30 * MB, 0, 100), ver(2, 0, 30 * MB, 0, 200),
					  ver(3, 0, 30 * MB, 0, 300) };
	r[0].priority = 90; /* the least recently used, but it matters most */
	r[1].priority = 50;
	r[2].priority = 10; /* the most recently used, and the least important */
	struct swarm_res_device d = device(100 * MB, r, 3);
	struct swarm_res_version v = ver(9, 0, 40 * MB, 0, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert_eq(c.n_evict, 1);
	cr_assert_eq(c.evict[0], 2, "priority 10 first: evicted %u", c.evict[0]);
	v.weights_bytes = 70 * MB;
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert(c.n_evict == 2 && c.evict[0] == 2 && c.evict[1] == 1, "evicted %u then %u",
		  c.evict[0], c.evict[1]);
	/* Equal priorities: the least recently used, as before. */
	r[0].priority = r[1].priority = r[2].priority = 50;
	v.weights_bytes = 40 * MB;
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert_eq(c.evict[0], 0);
}

Test(runtime_residency, versions_with_sessions_leave_only_when_they_can_move_and_after_idle_ones)
{
	struct swarm_res_version r[3] = { ver(1, 0, 40 * MB, 0, 1), ver(2, 0, 40 * MB, 0, 2),
					  ver(3, 0, 20 * MB, 0, 900) };
	r[0].sessions = 2; /* oldest, but serving and stuck here */
	r[1].sessions = 1;
	r[1].movable = 1;
	struct swarm_res_device d = device(100 * MB, r, 3);
	struct swarm_res_version v = ver(9, 0, 50 * MB, 0, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert_eq(c.n_evict, 2, "the idle one, then the movable one: %u", c.n_evict);
	cr_assert(c.evict[0] == 2 && c.evict[1] == 1, "evicted %u then %u", c.evict[0], c.evict[1]);
	cr_assert_eq(c.evict_moving, 1);
	/* A second device that only needs an idle eviction wins, though it is busier. */
	struct swarm_res_version r2[1] = { ver(5, 0, 90 * MB, 0, 1) };
	struct swarm_res_device devs[2] = { d, device(100 * MB, r2, 1) };
	devs[1].bal.sessions = 80;
	cr_assert_eq(place(devs, 2, &v, &c), 0);
	cr_assert_eq(c.device, 1, "no session moved beats a lighter load: got %d", c.device);
	cr_assert_eq(c.evict_moving, 0);
	/* Nothing movable: refused with ENOSPC though it would fit an empty device. */
	r[1].movable = 0;
	r2[0].pinned = 1;
	cr_assert_eq(place(devs, 2, &v, &c), -ENOSPC);
	cr_assert_eq(c.device, -1);
}

Test(runtime_residency, fewest_bytes_evicted_wins_between_devices)
{
	struct swarm_res_version a[1] = { ver(1, 0, 80 * MB, 0, 1) };
	struct swarm_res_version b[2] = { ver(2, 0, 40 * MB, 0, 1), ver(3, 0, 40 * MB, 0, 2) };
	struct swarm_res_device devs[2] = { device(100 * MB, a, 1), device(100 * MB, b, 2) };
	struct swarm_res_version v = ver(9, 0, 50 * MB, 0, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(devs, 2, &v, &c), 0);
	cr_assert_eq(c.device, 1, "40 MB evicted beats 80 MB: got %d", c.device);
	cr_assert(c.n_evict == 1 && c.evict[0] == 0 && c.evict_bytes == 40 * MB);
}

Test(runtime_residency, holders_of_the_wanted_blob_are_evicted_last)
{
	/* A holds v's blob (60 MB) and is older than C; evicting A first would free its
	 * weights only for v to need them again, and then C would have to go too. */
	struct swarm_res_version r[2] = { ver(1, 7, 60 * MB, 10 * MB, 1),
					  ver(2, 0, 0, 25 * MB, 2) };
	struct swarm_res_device d = device(100 * MB, r, 2);
	struct swarm_res_version v = ver(9, 7, 60 * MB, 30 * MB, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(&d, 1, &v, &c), 0);
	cr_assert_eq(c.need, 30 * MB, "the blob is there: only v's own bytes");
	cr_assert(c.n_evict == 1 && c.evict[0] == 1, "evicted %u versions, first %u", c.n_evict,
		  c.evict[0]);
	/* When the blob's holder must go all the same, v needs the blob again. */
	v.other_bytes = 95 * MB;
	cr_assert_eq(place(&d, 1, &v, &c), -EFBIG, "155 MB on 100 MB budgets");
	v.other_bytes = 35 * MB;
	r[1].pinned = 1;
	cr_assert_eq(place(&d, 1, &v, &c), -ENOSPC, "a pinned 25 MB, 35 + 60 needed: %d", c.device);
}

Test(runtime_residency, refusals_say_which_and_give_the_sizes)
{
	struct swarm_res_device devs[3] = { device(100 * MB, NULL, 0), device(300 * MB, NULL, 0),
					    device(900 * MB, NULL, 0) };
	devs[2].bal.has_model = 0; /* the model may not use the big one */
	struct swarm_res_version v = ver(1, 0, 400 * MB, 20 * MB, 0);
	struct swarm_res_choice c;
	cr_assert_eq(place(devs, 3, &v, &c), -EFBIG);
	cr_assert_eq(c.cost, 420 * MB);
	cr_assert_eq(c.largest_budget, 300 * MB, "largest allowed budget: %llu",
		     (unsigned long long)c.largest_budget);
	v.weights_bytes = 200 * MB;
	devs[0].bal.state = SWARM_DEVICE_PARKED;
	devs[1].bal.state = SWARM_DEVICE_WARMING;
	cr_assert_eq(place(devs, 3, &v, &c), -ENODEV, "nothing active: %d", c.device);
	devs[1].bal.state = SWARM_DEVICE_ACTIVE;
	cr_assert_eq(place(devs, 3, &v, &c), 0);
	cr_assert_eq(c.device, 1);
	struct swarm_res_device many[65];
	for (int i = 0; i < 65; i++)
		many[i] = device(100, NULL, 0);
	cr_assert_eq(place(many, 65, &v, &c), -EINVAL, "more devices than a snapshot holds");
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Bytes a device would use and need after evicting what c (or, with all set, everything
 * evictable) says. */
static int fits_after(const struct swarm_res_device *dv, const struct swarm_res_version *v,
		      const uint8_t *gone)
{
	struct swarm_res_version left[SWARM_RES_MAX_RESIDENT];
	uint32_t n = 0;
	for (uint32_t i = 0; i < dv->n_resident; i++)
		if (!gone[i])
			left[n++] = dv->resident[i];
	struct swarm_res_device after = *dv;
	after.resident = left;
	after.n_resident = n;
	uint64_t used = swarm_res_used(&after), need = swarm_res_need(&after, v);
	return used <= dv->budget_bytes && need <= dv->budget_bytes - used;
}

Test(runtime_residency,
     every_choice_fits_evicts_only_what_may_go_and_refuses_only_when_nothing_fits)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct swarm_res_version res[4][12];
	for (int round = 0; round < 3000; round++) {
		struct swarm_res_device devs[4];
		size_t n = 1 + rng(&seed) % 4;
		for (size_t i = 0; i < n; i++) {
			uint32_t k = (uint32_t)(rng(&seed) % 12);
			for (uint32_t j = 0; j < k; j++) {
				res[i][j] = ver(1 + rng(&seed) % 20, rng(&seed) % 4,
						rng(&seed) % 40, rng(&seed) % 20,
						rng(&seed) % 1000);
				res[i][j].sessions = rng(&seed) % 3 == 0 ? 1 + rng(&seed) % 3 : 0;
				res[i][j].movable = rng(&seed) % 2;
				res[i][j].pinned = rng(&seed) % 8 == 0;
			}
			devs[i] = device(50 + rng(&seed) % 150, res[i], k);
			devs[i].bal.state = rng(&seed) % 6 ? SWARM_DEVICE_ACTIVE :
							     SWARM_DEVICE_PARKED;
			devs[i].bal.has_model = rng(&seed) % 5 != 0;
		}
		struct swarm_res_version v = ver(1 + rng(&seed) % 20, rng(&seed) % 4,
						 rng(&seed) % 60, rng(&seed) % 40, 0);
		struct swarm_res_choice c;
		int rc = place(devs, n, &v, &c);
		if (rc == 0) {
			const struct swarm_res_device *dv = &devs[c.device];
			cr_assert(dv->bal.state == SWARM_DEVICE_ACTIVE && dv->bal.has_model,
				  "round %d: device %d may not serve", round, c.device);
			uint8_t gone[SWARM_RES_MAX_RESIDENT] = { 0 };
			for (uint32_t e = 0; e < c.n_evict; e++) {
				const struct swarm_res_version *x = &dv->resident[c.evict[e]];
				cr_assert(!x->pinned && (!x->sessions || x->movable),
					  "round %d: evicted a version that may not go", round);
				gone[c.evict[e]] = 1;
			}
			cr_assert(c.resident || fits_after(dv, &v, gone), "round %d: does not fit",
				  round);
			continue;
		}
		cr_assert(rc == -EFBIG || rc == -ENOSPC || rc == -ENODEV, "round %d: %d", round,
			  rc);
		for (size_t i = 0; rc == -ENOSPC && i < n; i++) {
			if (devs[i].bal.state != SWARM_DEVICE_ACTIVE || !devs[i].bal.has_model)
				continue;
			uint8_t gone[SWARM_RES_MAX_RESIDENT] = { 0 };
			for (uint32_t j = 0; j < devs[i].n_resident; j++) {
				const struct swarm_res_version *x = &devs[i].resident[j];
				gone[j] = !x->pinned && (!x->sessions || x->movable);
			}
			cr_assert(
				!fits_after(&devs[i], &v, gone),
				"round %d: refused, but device %zu fits with every evictable gone",
				round, i);
		}
	}
}
