/* test_ring.c: the SPSC rings of ipc/ring.h (order, full and empty, index wrap, the cached
 * indices, hostile indices, a two-thread and a two-process stress run) and the doorbells of
 * ipc/doorbell.h (futex wait and wake, eventfd signal and drain).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "ipc/ring.h"

#define MAX_DEPTH 64u

/* A ring laid out as in a segment: each index alone on its cache line. */
struct test_ring {
	uint32_t tail __attribute__((aligned(64)));
	uint32_t head __attribute__((aligned(64)));
	uint64_t entries[MAX_DEPTH] __attribute__((aligned(64)));
	struct swarm_ring_producer p;
	struct swarm_ring_consumer c;
};

/* Both indices start at start (a fresh ring at start 0, or one about to wrap). */
static void ring_setup(struct test_ring *r, uint32_t depth, uint32_t start)
{
	memset(r, 0, sizeof *r);
	r->tail = start;
	r->head = start;
	swarm_ring_producer_init(&r->p, &r->tail, &r->head, r->entries, depth);
	swarm_ring_consumer_init(&r->c, &r->head, &r->tail, r->entries, depth);
}

static void push_ok(struct test_ring *r, uint64_t v)
{
	int rc = swarm_ring_push(&r->p, v);
	cr_assert_eq(rc, 0, "push of %llu returned %d, want 0", (unsigned long long)v, rc);
}

/* ---- basic behaviour ---- */

Test(ipc_ring, empty_has_zero_available)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 0, "available on a new ring = %lld, want 0", (long long)n);
	cr_assert(swarm_ring_empty(&r.c), "a new ring is not empty");
}

Test(ipc_ring, push_then_peek_returns_values_in_order)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	for (uint64_t v = 0; v < 5; v++)
		push_ok(&r, 100 + v);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 5, "available = %lld after 5 pushes", (long long)n);
	for (uint32_t i = 0; i < 5; i++) {
		uint64_t v = swarm_ring_peek(&r.c, i);
		cr_assert_eq(v, 100 + i, "peek(%u) = %llu, want %u", i, (unsigned long long)v,
			     100 + i);
	}
}

Test(ipc_ring, push_publishes_tail_word)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	push_ok(&r, 1);
	push_ok(&r, 2);
	cr_assert_eq(r.tail, 2u, "shared tail = %u after 2 pushes, want 2", r.tail);
	cr_assert_eq(r.head, 0u, "push moved the head to %u", r.head);
}

Test(ipc_ring, advance_frees_entries_and_publishes_head)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	for (uint64_t v = 0; v < 3; v++)
		push_ok(&r, v);
	cr_assert_eq(swarm_ring_available(&r.c), 3);
	swarm_ring_advance(&r.c, 2);
	cr_assert_eq(r.head, 2u, "shared head = %u after advance(2), want 2", r.head);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 1, "available = %lld after advancing 2 of 3", (long long)n);
	uint64_t v = swarm_ring_peek(&r.c, 0);
	cr_assert_eq(v, 2, "peek(0) after advance = %llu, want 2", (unsigned long long)v);
	swarm_ring_advance(&r.c, 1);
	cr_assert(swarm_ring_empty(&r.c), "ring not empty after consuming everything");
}

Test(ipc_ring, full_returns_eagain)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	for (uint64_t v = 0; v < 8; v++)
		push_ok(&r, 10 + v);
	int rc = swarm_ring_push(&r.p, 999);
	cr_assert_eq(rc, -EAGAIN, "push on a full depth-8 ring = %d, want -EAGAIN (%d)", rc,
		     -EAGAIN);
	cr_assert_eq(r.tail, 8u, "a refused push moved the tail to %u", r.tail);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(r.entries[i], 10 + i, "entry %u = %llu after a refused push, want %u",
			     i, (unsigned long long)r.entries[i], 10 + i);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 8, "available = %lld on a full depth-8 ring", (long long)n);
}

Test(ipc_ring, full_then_advance_lets_producer_push_again)
{
	struct test_ring r;
	ring_setup(&r, 4, 0);
	for (uint64_t v = 0; v < 4; v++)
		push_ok(&r, v);
	cr_assert_eq(swarm_ring_push(&r.p, 4), -EAGAIN);
	cr_assert_eq(swarm_ring_available(&r.c), 4);
	swarm_ring_advance(&r.c, 1);
	push_ok(&r, 4);
	int rc = swarm_ring_push(&r.p, 5);
	cr_assert_eq(rc, -EAGAIN, "push after one free entry was reused = %d, want -EAGAIN", rc);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 3, "cached available = %lld, want the 3 left of the first load",
		     (long long)n);
	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(swarm_ring_peek(&r.c, i), 1 + i);
	swarm_ring_advance(&r.c, 3);
	n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 1, "available after reload = %lld, want 1", (long long)n);
	cr_assert_eq(swarm_ring_peek(&r.c, 0), 4);
}

Test(ipc_ring, depth_one_ring_holds_one_entry)
{
	struct test_ring r;
	ring_setup(&r, 1, 0);
	push_ok(&r, 7);
	cr_assert_eq(swarm_ring_push(&r.p, 8), -EAGAIN);
	cr_assert_eq(swarm_ring_available(&r.c), 1);
	cr_assert_eq(swarm_ring_peek(&r.c, 0), 7);
	swarm_ring_advance(&r.c, 1);
	push_ok(&r, 8);
	cr_assert_eq(swarm_ring_available(&r.c), 1);
	cr_assert_eq(swarm_ring_peek(&r.c, 0), 8);
}

Test(ipc_ring, producer_used_counts_entries)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	for (uint64_t v = 0; v < 5; v++)
		push_ok(&r, v);
	int64_t used = swarm_ring_producer_used(&r.p);
	cr_assert_eq(used, 5, "producer_used = %lld after 5 pushes", (long long)used);
	cr_assert_eq(swarm_ring_available(&r.c), 5);
	swarm_ring_advance(&r.c, 3);
	used = swarm_ring_producer_used(&r.p);
	cr_assert_eq(used, 2, "producer_used = %lld after the consumer took 3", (long long)used);
}

Test(ipc_ring, init_picks_up_existing_indices)
{
	/* A re-attach: the words already hold indices and entries. */
	struct test_ring r;
	ring_setup(&r, 8, 1000);
	for (uint64_t v = 0; v < 3; v++)
		push_ok(&r, 50 + v);
	struct swarm_ring_consumer c2;
	struct swarm_ring_producer p2;
	swarm_ring_consumer_init(&c2, &r.head, &r.tail, r.entries, 8);
	swarm_ring_producer_init(&p2, &r.tail, &r.head, r.entries, 8);
	int64_t n = swarm_ring_available(&c2);
	cr_assert_eq(n, 3, "re-attached consumer sees %lld, want 3", (long long)n);
	cr_assert_eq(swarm_ring_peek(&c2, 0), 50);
	int64_t used = swarm_ring_producer_used(&p2);
	cr_assert_eq(used, 3, "re-attached producer sees %lld used, want 3", (long long)used);
}

/* ---- the 2^32 index wrap ---- */

Test(ipc_ring, wraparound_keeps_order_and_counts)
{
	struct test_ring r;
	ring_setup(&r, 8, UINT32_MAX - 2);
	uint64_t next_in = 0, next_out = 0;
	/* Several laps, each crossing or following the wrap, in uneven batches. */
	for (int round = 0; round < 10; round++) {
		uint32_t k = 1 + (uint32_t)round % 8;
		for (uint32_t i = 0; i < k; i++)
			push_ok(&r, next_in++);
		int64_t n = swarm_ring_available(&r.c);
		cr_assert_eq(n, k, "round %d: available = %lld, want %u (tail %u head %u)", round,
			     (long long)n, k, r.tail, r.head);
		for (uint32_t i = 0; i < k; i++) {
			uint64_t v = swarm_ring_peek(&r.c, i);
			cr_assert_eq(v, next_out, "round %d: peek(%u) = %llu, want %llu", round, i,
				     (unsigned long long)v, (unsigned long long)next_out);
			next_out++;
		}
		swarm_ring_advance(&r.c, k);
	}
	cr_assert_lt(r.tail, 100u, "tail %u did not wrap", r.tail);
	cr_assert_eq(r.tail, r.head, "tail %u != head %u after draining", r.tail, r.head);
}

Test(ipc_ring, full_across_wrap_returns_eagain)
{
	struct test_ring r;
	ring_setup(&r, 8, UINT32_MAX - 3);
	for (uint64_t v = 0; v < 8; v++)
		push_ok(&r, v);
	cr_assert_eq(r.tail, 4u, "tail = %u after 8 pushes from UINT32_MAX-3, want 4", r.tail);
	int rc = swarm_ring_push(&r.p, 99);
	cr_assert_eq(rc, -EAGAIN, "push on a ring full across the wrap = %d, want -EAGAIN", rc);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 8, "available across the wrap = %lld, want 8", (long long)n);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert_eq(swarm_ring_peek(&r.c, i), i, "peek(%u) = %llu across the wrap", i,
			     (unsigned long long)swarm_ring_peek(&r.c, i));
	int64_t used = swarm_ring_producer_used(&r.p);
	cr_assert_eq(used, 8, "producer_used across the wrap = %lld", (long long)used);
}

/* ---- the cached indices ---- */

Test(ipc_ring, available_does_not_reload_while_cached_entries_remain)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	push_ok(&r, 1);
	push_ok(&r, 2);
	cr_assert_eq(swarm_ring_available(&r.c), 2);
	push_ok(&r, 3);
	push_ok(&r, 4);
	push_ok(&r, 5);
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 2, "available = %lld with 2 cached entries left, want 2 (no reload)",
		     (long long)n);
	swarm_ring_advance(&r.c, 1);
	n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 1, "available = %lld with 1 cached entry left, want 1", (long long)n);
	swarm_ring_advance(&r.c, 1);
	n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 3, "available = %lld once the cache ran out, want 3 (reload)",
		     (long long)n);
}

Test(ipc_ring, producer_does_not_reload_head_until_cache_says_full)
{
	struct test_ring r;
	ring_setup(&r, 4, 0);
	push_ok(&r, 0);
	/* Garbage in the head word is not looked at while the cache says there is room. */
	r.head = 12345;
	push_ok(&r, 1);
	push_ok(&r, 2);
	push_ok(&r, 3);
	int rc = swarm_ring_push(&r.p, 4);
	cr_assert_eq(rc, -EBADMSG, "push that reloads a corrupt head = %d, want -EBADMSG", rc);
}

/* ---- hostile indices ---- */

Test(ipc_ring, tail_more_than_depth_ahead_is_ebadmsg)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	r.tail = 9;
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, -EBADMSG, "available with tail 9 head 0 depth 8 = %lld, want -EBADMSG",
		     (long long)n);
}

Test(ipc_ring, tail_far_ahead_is_ebadmsg)
{
	struct test_ring r;
	ring_setup(&r, 8, 100);
	r.tail = 100 + 0x7fffffffu;
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, -EBADMSG, "available with tail %u head 100 = %lld, want -EBADMSG", r.tail,
		     (long long)n);
}

Test(ipc_ring, tail_exactly_depth_ahead_is_accepted)
{
	struct test_ring r;
	ring_setup(&r, 8, UINT32_MAX - 1);
	r.tail = (UINT32_MAX - 1) + 8u;
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, 8, "available with tail exactly depth ahead = %lld, want 8", (long long)n);
}

Test(ipc_ring, tail_behind_head_is_ebadmsg)
{
	struct test_ring r;
	ring_setup(&r, 8, 50);
	r.tail = 49;
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, -EBADMSG, "available with tail 49 head 50 = %lld, want -EBADMSG",
		     (long long)n);
}

Test(ipc_ring, tail_moved_back_after_consuming_is_ebadmsg)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	for (uint64_t v = 0; v < 4; v++)
		push_ok(&r, v);
	cr_assert_eq(swarm_ring_available(&r.c), 4);
	swarm_ring_advance(&r.c, 4);
	r.tail = 2; /* the producer rewinds its tail behind what we consumed */
	int64_t n = swarm_ring_available(&r.c);
	cr_assert_eq(n, -EBADMSG, "available with tail 2 behind head 4 = %lld, want -EBADMSG",
		     (long long)n);
}

/* The contract holds on every call, not only the first: a consumer that asks again must not
 * be handed a count built from the corrupt tail it just refused. */
Test(ipc_ring, corrupt_tail_stays_ebadmsg_on_repeated_calls)
{
	struct test_ring r;
	ring_setup(&r, 8, 50);
	r.tail = 49;
	int64_t first = swarm_ring_available(&r.c);
	int64_t second = swarm_ring_available(&r.c);
	cr_assert_eq(first, -EBADMSG, "first available = %lld, want -EBADMSG", (long long)first);
	cr_assert_eq(second, -EBADMSG,
		     "second available with tail 49 head 50 depth 8 = %lld, want -EBADMSG",
		     (long long)second);
}

Test(ipc_ring, corrupt_head_ahead_of_tail_fails_push)
{
	struct test_ring r;
	ring_setup(&r, 8, 0);
	for (uint64_t v = 0; v < 8; v++)
		push_ok(&r, v);
	r.head = 9; /* ahead of our tail 8 */
	int rc = swarm_ring_push(&r.p, 100);
	cr_assert_eq(rc, -EBADMSG, "push with head 9 tail 8 = %d, want -EBADMSG", rc);
	cr_assert_eq(r.tail, 8u, "a refused push moved the tail to %u", r.tail);
	cr_assert_eq(r.entries[0], 0, "a refused push wrote entry 0 = %llu",
		     (unsigned long long)r.entries[0]);
}

Test(ipc_ring, corrupt_head_more_than_depth_behind_fails_push)
{
	struct test_ring r;
	ring_setup(&r, 8, 1000);
	for (uint64_t v = 0; v < 8; v++)
		push_ok(&r, v);
	r.head = 1000 - 1; /* 9 entries behind the tail 1008 */
	int rc = swarm_ring_push(&r.p, 100);
	cr_assert_eq(rc, -EBADMSG, "push with head 999 tail 1008 depth 8 = %d, want -EBADMSG", rc);
	int64_t used = swarm_ring_producer_used(&r.p);
	cr_assert_eq(used, -EBADMSG, "producer_used = %lld, want -EBADMSG", (long long)used);
}

/* ---- concurrency ---- */

#define STRESS_COUNT 1000000u
#define STRESS_DEPTH 8u

static void *stress_producer(void *arg)
{
	struct test_ring *r = arg;
	for (uint64_t v = 0; v < STRESS_COUNT;) {
		int rc = swarm_ring_push(&r->p, v);
		if (rc == 0)
			v++;
		else if (rc == -EAGAIN)
			sched_yield();
		else
			return (void *)(intptr_t)rc;
	}
	return NULL;
}

/* Consumes STRESS_COUNT values; returns 0 or a description of the first mismatch in err. */
static int stress_consume(struct swarm_ring_consumer *c, char *err, size_t errlen)
{
	uint64_t want = 0;
	while (want < STRESS_COUNT) {
		int64_t n = swarm_ring_available(c);
		if (n < 0) {
			snprintf(err, errlen, "available = %lld at value %llu", (long long)n,
				 (unsigned long long)want);
			return -1;
		}
		if (n == 0) {
			sched_yield();
			continue;
		}
		for (uint32_t i = 0; i < (uint32_t)n; i++) {
			uint64_t v = swarm_ring_peek(c, i);
			if (v != want) {
				snprintf(err, errlen, "got %llu, want %llu", (unsigned long long)v,
					 (unsigned long long)want);
				return -1;
			}
			want++;
		}
		swarm_ring_advance(c, (uint32_t)n);
	}
	return 0;
}

Test(ipc_ring, two_threads_pass_a_million_values_in_order, .timeout = 120)
{
	static struct test_ring r;
	ring_setup(&r, STRESS_DEPTH, UINT32_MAX - 100); /* cross the wrap too */
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, stress_producer, &r), 0);
	char err[128] = "";
	int rc = stress_consume(&r.c, err, sizeof err);
	void *prc;
	pthread_join(th, &prc);
	cr_assert_eq(rc, 0, "consumer: %s", err);
	cr_assert_null(prc, "producer failed: push = %d", (int)(intptr_t)prc);
	cr_assert_eq(swarm_ring_available(&r.c), 0, "entries left over after %u values",
		     STRESS_COUNT);
	cr_assert_eq(r.tail - (UINT32_MAX - 100), STRESS_COUNT, "tail moved by %u",
		     r.tail - (UINT32_MAX - 100));
}

Test(ipc_ring, two_processes_pass_a_million_values_in_order, .timeout = 120)
{
	struct test_ring *r =
		mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(r, MAP_FAILED, "mmap: %s", strerror(errno));
	ring_setup(r, STRESS_DEPTH, 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(stress_producer(r) == NULL ? 0 : 1);
	char err[128] = "";
	int rc = stress_consume(&r->c, err, sizeof err);
	int status = 0;
	waitpid(pid, &status, 0);
	cr_assert_eq(rc, 0, "consumer: %s", err);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer exited with status %#x",
		  status);
	cr_assert_eq(r->tail, STRESS_COUNT, "shared tail = %u, want %u", r->tail, STRESS_COUNT);
	cr_assert_eq(r->head, STRESS_COUNT, "shared head = %u, want %u", r->head, STRESS_COUNT);
	munmap(r, sizeof *r);
}

/* ---- doorbells ---- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

Test(ipc_doorbell, futex_wait_returns_at_once_when_value_differs)
{
	uint32_t word = 5;
	int64_t t0 = now_ns();
	int rc = swarm_futex_wait(&word, 4, -1); /* no limit: it must not sleep at all */
	int64_t dt = now_ns() - t0;
	cr_assert_eq(rc, 0, "futex_wait on a changed word = %d, want 0", rc);
	cr_assert_lt(dt, 1000000000, "futex_wait on a changed word took %lld ns", (long long)dt);
}

Test(ipc_doorbell, futex_wait_times_out)
{
	uint32_t word = 0;
	int64_t t0 = now_ns();
	int rc = swarm_futex_wait(&word, 0, 1000000);
	int64_t dt = now_ns() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "futex_wait(1 ms) = %d, want -ETIMEDOUT (%d)", rc, -ETIMEDOUT);
	cr_assert_geq(dt, 1000000, "futex_wait(1 ms) returned after %lld ns", (long long)dt);
}

Test(ipc_doorbell, futex_wait_zero_timeout_times_out)
{
	uint32_t word = 0;
	int rc = swarm_futex_wait(&word, 0, 0);
	cr_assert_eq(rc, -ETIMEDOUT, "futex_wait(0 ns) = %d, want -ETIMEDOUT", rc);
}

struct waker {
	uint32_t *word;
	int woken; /* what the wake that found a sleeper returned */
};

static void *waker_thread(void *arg)
{
	struct waker *w = arg;
	/* Wake without changing the word, until the wake finds the sleeper: then only the
	 * wake (not a changed value) can have ended the wait. */
	for (int i = 0; i < 5000 && w->woken == 0; i++) {
		usleep(1000);
		w->woken = swarm_futex_wake(w->word);
	}
	return NULL;
}

Test(ipc_doorbell, futex_wake_from_another_thread_ends_wait, .timeout = 30)
{
	uint32_t word = 0;
	struct waker w = { .word = &word };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, waker_thread, &w), 0);
	int rc = swarm_futex_wait(&word, 0, 10ll * 1000000000);
	pthread_join(th, NULL);
	cr_assert_eq(rc, 0, "futex_wait ended with %d, want 0 (woken)", rc);
	cr_assert_eq(w.woken, 1, "futex_wake woke %d waiters, want 1", w.woken);
}

Test(ipc_doorbell, futex_wake_without_waiters_returns_zero)
{
	uint32_t word = 0;
	int rc = swarm_futex_wake(&word);
	cr_assert_eq(rc, 0, "futex_wake with nobody waiting = %d, want 0", rc);
}

Test(ipc_doorbell, futex_wake_crosses_processes, .timeout = 30)
{
	uint32_t *word =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(word, MAP_FAILED);
	*word = 0;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(swarm_futex_wait(word, 0, 10ll * 1000000000) == 0 ? 0 : 1);
	int woken = 0;
	for (int i = 0; i < 5000 && woken == 0; i++) {
		usleep(1000);
		woken = swarm_futex_wake(word);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	cr_assert_eq(woken, 1, "futex_wake on a shared word woke %d, want 1", woken);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child wait status %#x", status);
	munmap(word, 4096);
}

Test(ipc_doorbell, eventfd_signal_then_drain)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(fd, 0, "eventfd: %s", strerror(errno));
	int rc = swarm_eventfd_signal(fd);
	cr_assert_eq(rc, 0, "signal = %d", rc);
	rc = swarm_eventfd_drain(fd);
	cr_assert_eq(rc, 0, "drain after a signal = %d, want 0", rc);
	rc = swarm_eventfd_drain(fd);
	cr_assert_eq(rc, -EAGAIN, "second drain = %d, want -EAGAIN (%d)", rc, -EAGAIN);
	close(fd);
}

Test(ipc_doorbell, eventfd_drain_on_zero_returns_eagain)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	int rc = swarm_eventfd_drain(fd);
	cr_assert_eq(rc, -EAGAIN, "drain of a zero eventfd = %d, want -EAGAIN (%d)", rc, -EAGAIN);
	close(fd);
}

Test(ipc_doorbell, eventfd_signals_coalesce_into_one_drain)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(swarm_eventfd_signal(fd), 0);
	cr_assert_eq(swarm_eventfd_drain(fd), 0);
	int rc = swarm_eventfd_drain(fd);
	cr_assert_eq(rc, -EAGAIN, "drain after draining 3 signals = %d, want -EAGAIN", rc);
	close(fd);
}

Test(ipc_doorbell, eventfd_signal_on_saturated_counter_is_ok)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	uint64_t big = UINT64_MAX - 1; /* the largest value an eventfd holds */
	cr_assert_eq(write(fd, &big, sizeof big), (ssize_t)sizeof big);
	int rc = swarm_eventfd_signal(fd);
	cr_assert_eq(rc, 0, "signal on a saturated eventfd = %d, want 0", rc);
	close(fd);
}

Test(ipc_doorbell, eventfd_errors_are_negative_errno)
{
	int rc = swarm_eventfd_signal(-1);
	cr_assert_eq(rc, -EBADF, "signal(-1) = %d, want -EBADF", rc);
	rc = swarm_eventfd_drain(-1);
	cr_assert_eq(rc, -EBADF, "drain(-1) = %d, want -EBADF", rc);
}
