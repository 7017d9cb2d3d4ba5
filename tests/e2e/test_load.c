/* test_load.c: many clients and many requests against a real swarmd with two CPU devices.
 * Correctness under load, not speed: every output is checked, and the time bounds are
 * generous ceilings that only a hang or a livelock would pass. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/harness.h"

static void setup(void) { h_start("cpu:2", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_load, .init = setup, .fini = teardown, .timeout = 300);

/* ---- 16 processes x 4 threads, one session each ---------------------------------------- */

#define LOAD_CLIENTS 16
#define LOAD_THREADS 4
#define LOAD_REQUESTS 2000

struct load_client {
	swarm_client *c;
	pthread_mutex_t lock; /* swarm_session_open/close share the client under a lock */
	int index;
};

struct load_thread {
	struct load_client *lc;
	int index;
	int failed;
	int32_t device_index;
	uint64_t done;
};

static void *load_thread_main(void *arg)
{
	struct load_thread *t = arg;
	struct load_client *lc = t->lc;
	swarm_session_opts o = { .max_rows = 64 };
	swarm_session *s = NULL;
	pthread_mutex_lock(&lc->lock);
	int rc = swarm_session_open(lc->c, "affine", 0, &o, &s);
	pthread_mutex_unlock(&lc->lock);
	if (rc) {
		fprintf(stderr, "client %d thread %d: open: %d (%s)\n", lc->index, t->index, rc,
			swarm_strerror(rc));
		t->failed = 1;
		return NULL;
	}
	/* 64 threads on 2 cores: spinning would only steal the workers' time. */
	swarm_session_set_spin(s, 0);
	swarm_session_info info;
	if (swarm_session_info_get(s, &info) == 0)
		t->device_index = info.device_index;
	for (uint32_t i = 0; i < LOAD_REQUESTS; i++) {
		uint32_t seed = ((uint32_t)lc->index << 20) ^ ((uint32_t)t->index << 16) ^ i;
		uint32_t rows = 1 + (seed * 2654435761u >> 7) % 64;
		rc = h_affine_roundtrip(s, rows, seed, 10 * H_SEC);
		if (rc) {
			fprintf(stderr, "client %d thread %d request %u (rows %u): %d (%s)\n",
				lc->index, t->index, i, rows, rc,
				rc == H_EMISMATCH ? "output mismatch" : swarm_strerror(rc));
			t->failed = 1;
			break;
		}
		t->done++;
	}
	pthread_mutex_lock(&lc->lock);
	swarm_session_close(s);
	pthread_mutex_unlock(&lc->lock);
	return NULL;
}

static int load_client_main(void *arg)
{
	struct load_client lc = { .index = (int)(intptr_t)arg };
	pthread_mutex_init(&lc.lock, NULL);
	int rc = h_connect(&lc.c);
	if (rc) {
		fprintf(stderr, "client %d: connect: %d (%s)\n", lc.index, rc, swarm_strerror(rc));
		return 2;
	}
	struct load_thread t[LOAD_THREADS];
	pthread_t tid[LOAD_THREADS];
	int created[LOAD_THREADS] = { 0 }, started = 0;
	for (int i = 0; i < LOAD_THREADS; i++) {
		t[i] = (struct load_thread){ .lc = &lc, .index = i, .device_index = -1 };
		if (pthread_create(&tid[i], NULL, load_thread_main, &t[i]) != 0) {
			t[i].failed = 1;
			continue;
		}
		created[i] = 1;
		started++;
	}
	int failed = started != LOAD_THREADS;
	uint64_t done = 0;
	int per_device[2] = { 0, 0 };
	for (int i = 0; i < LOAD_THREADS; i++) {
		if (created[i])
			pthread_join(tid[i], NULL);
		failed |= t[i].failed;
		done += t[i].done;
		if (t[i].device_index == 0 || t[i].device_index == 1)
			per_device[t[i].device_index]++;
	}
	fprintf(stderr, "client %d: %llu requests, sessions on cpu:0 %d, cpu:1 %d%s\n", lc.index,
		(unsigned long long)done, per_device[0], per_device[1], failed ? ", FAILED" : "");
	swarm_disconnect(lc.c);
	return failed ? 3 : 0;
}

Test(e2e_load, sixteen_clients_of_four_threads_all_get_exact_affine_results)
{
	pid_t w[8];
	cr_assert_eq(h_worker_pids(w, 8), 2, "want 2 workers for cpu:2");
	pid_t kids[LOAD_CLIENTS];
	uint64_t t0 = h_now_ns();
	for (int i = 0; i < LOAD_CLIENTS; i++) {
		kids[i] = h_fork(load_client_main, (void *)(intptr_t)i);
		cr_assert_gt(kids[i], 0, "fork client %d", i);
	}
	uint64_t end = t0 + 240 * H_SEC;
	int bad = 0;
	int status[LOAD_CLIENTS];
	for (int i = 0; i < LOAD_CLIENTS; i++) {
		int64_t left = (int64_t)(end - h_now_ns());
		status[i] = h_child_wait(kids[i], left > 0 ? left : 1);
		if (status[i] != 0)
			bad++;
	}
	double s = (double)(h_now_ns() - t0) / 1e9;
	fprintf(stderr, "%d clients x %d threads x %d affine requests: %.1f s (%.0f req/s)\n",
		LOAD_CLIENTS, LOAD_THREADS, LOAD_REQUESTS, s,
		LOAD_CLIENTS * LOAD_THREADS * LOAD_REQUESTS / s);
	if (bad)
		h_print_log("load clients failed");
	for (int i = 0; i < LOAD_CLIENTS; i++)
		cr_assert_eq(status[i], 0, "client %d: exit %d (-110: over 240 s; 256+N: signal N)",
			     i, status[i]);
	pid_t w2[8];
	cr_assert_eq(h_worker_pids(w2, 8), 2, "workers after the load");
	cr_assert(w2[0] == w[0] && w2[1] == w[1], "a worker was replaced under load");
	h_stop();
}

/* ---- a million identity requests, 8 in flight ---------------------------------------------- */

#define MILLION 1000000u
#define PIPELINE 8

static void fill_tagged(uint8_t *in, uint64_t i)
{
	uint64_t w[8];
	w[0] = i;
	w[1] = ~i;
	for (int k = 2; k < 8; k++)
		w[k] = i * 0x9E3779B97F4A7C15ull + (uint64_t)k * 0xD1B54A32D192ED03ull;
	memcpy(in, w, 64);
}

Test(e2e_load, million_identity_requests_pipelined_all_echo_exactly)
{
	swarm_client *c = NULL;
	int rc = h_connect(&c);
	cr_assert_eq(rc, 0, "connect: %d (%s)", rc, swarm_strerror(rc));
	swarm_session_opts o = h_identity_opts();
	swarm_session *s = NULL;
	rc = swarm_session_open(c, "identity", 0, &o, &s);
	cr_assert_eq(rc, 0, "open: %d (%s)", rc, swarm_strerror(rc));

	swarm_request *ring[PIPELINE] = { 0 };
	uint64_t t0 = h_now_ns(), deadline = t0 + 240 * H_SEC;
	uint64_t next = 0, checked = 0;
	while (checked < MILLION) {
		unsigned k = (unsigned)(next % PIPELINE);
		/* collect the request PIPELINE behind, in submission order */
		if (ring[k]) {
			uint64_t id = next - PIPELINE;
			rc = swarm_request_wait(ring[k], 5 * H_SEC);
			cr_assert_eq(rc, 0, "request %llu: %d (%s)", (unsigned long long)id, rc,
				     swarm_strerror(rc));
			uint8_t want[64];
			fill_tagged(want, id);
			const uint8_t *out = swarm_request_output(ring[k], 0);
			if (memcmp(out, want, 64) != 0) {
				uint64_t got;
				memcpy(&got, out, 8);
				cr_assert_fail("request %llu: output differs (its first word %llu)",
					       (unsigned long long)id, (unsigned long long)got);
			}
			cr_assert_eq(swarm_request_release(ring[k]), 0);
			ring[k] = NULL;
			checked++;
			if ((checked & 0xffff) == 0)
				cr_assert_lt(h_now_ns(), deadline, "over 240 s at %llu requests",
					     (unsigned long long)checked);
		}
		if (next < MILLION) {
			rc = swarm_request_alloc(s, 1, &ring[k]);
			cr_assert_eq(rc, 0, "alloc for request %llu: %d (%s)",
				     (unsigned long long)next, rc, swarm_strerror(rc));
			fill_tagged(swarm_request_input(ring[k], 0), next);
			uint64_t end = h_now_ns() + 5 * H_SEC;
			while ((rc = swarm_request_submit(ring[k], 0)) == -EAGAIN &&
			       h_now_ns() < end)
				sched_yield();
			cr_assert_eq(rc, 0, "submit request %llu: %d (%s)",
				     (unsigned long long)next, rc, swarm_strerror(rc));
		}
		next++;
	}
	double secs = (double)(h_now_ns() - t0) / 1e9;
	fprintf(stderr, "%u identity requests, %d in flight: %.2f s (%.0f req/s)\n", MILLION,
		PIPELINE, secs, MILLION / secs);
	cr_assert_lt(secs, 240.0, "a million requests took %.1f s", secs);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* Placement counts only sessions that stay: a session closed a moment ago must not push the
 * next one onto another device (it used to, until its worker confirmed the detach). */
Test(e2e_load, closed_session_stops_counting_at_once)
{
	swarm_client *c = NULL;
	int rc = h_connect(&c);
	cr_assert_eq(rc, 0, "connect: %d", rc);
	swarm_session_opts o = h_identity_opts();
	for (int i = 0; i < 20; i++) {
		swarm_session *s = NULL;
		rc = swarm_session_open(c, "identity", 0, &o, &s);
		cr_assert_eq(rc, 0, "open %d: %d (%s)", i, rc, swarm_client_error(c));
		swarm_session_info info;
		cr_assert_eq(swarm_session_info_get(s, &info), 0);
		cr_assert_eq(info.device_index, 0,
			     "open %d after a close landed on device %d; the idle lowest device "
			     "is 0",
			     i, info.device_index);
		cr_assert_eq(swarm_session_close(s), 0);
	}
	swarm_disconnect(c);
	h_stop();
}
