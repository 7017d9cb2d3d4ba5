/* balance_bench.c: swarm-bench's placement cases, NUMA-local against remote service and the
 * pause a client sees while its session moves (balance_bench.h). */
#include "bench/balance_bench.h"
#include "bench/daemon.h"

#include <swarm/swarm.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/topology.h"

#define BB_ROW_BYTES 64u
#define BB_WAIT_NS (10ll * 1000 * 1000 * 1000)
#define BB_SPIN_NS 1000000000ull
#define BB_DAEMON_SPIN_US 1000u
#define BB_MOVE_SPIN_US 50u /* the migration case's client and worker spin */
#define BB_BLOCK 2000
#define BB_SETTLE_NS (20ull * 1000 * 1000) /* after the new placement, still the move's */

static uint64_t bb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bb_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile (permille) of v[0..n), sorted in place. */
static double bb_pct(uint64_t *v, size_t n, unsigned permille)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, bb_cmp_u64);
	size_t r = (n * permille + 999) / 1000;
	return (double)v[r ? r - 1 : 0];
}

/* A temporary directory with the socket and the log of a swarmd of our own. */
struct bb_dir {
	char dir[64], sock[128];
};

static int bb_dir_make(struct bb_dir *b, struct bench_swarmd *d)
{
	snprintf(b->dir, sizeof b->dir, "/tmp/swarm-bench-balance-XXXXXX");
	if (!mkdtemp(b->dir))
		return -errno;
	snprintf(b->sock, sizeof b->sock, "%s/swarmd.sock", b->dir);
	memset(d, 0, sizeof *d);
	snprintf(d->log, sizeof d->log, "%s/swarmd.log", b->dir);
	return 0;
}

static void bb_dir_remove(struct bb_dir *b, struct bench_swarmd *d)
{
	unlink(b->sock);
	unlink(d->log);
	rmdir(b->dir);
}

static int bb_open(swarm_client *c, swarm_session **s, uint64_t spin_ns)
{
	swarm_session_opts o = { .slots = 4, .queue_depth = 4, .max_rows = 1 };
	int rc = swarm_session_open(c, "identity", 0, &o, s);
	if (rc) {
		fprintf(stderr, "balance bench: open identity: %s\n", swarm_strerror(rc));
		return rc;
	}
	swarm_session_set_spin(*s, spin_ns);
	return 0;
}

/* One checked 64-byte round trip. */
static int bb_roundtrip(swarm_session *s, uint64_t tag)
{
	swarm_request *r;
	int rc = swarm_request_alloc(s, 1, &r);
	if (rc)
		return rc;
	uint64_t *in = swarm_request_input(r, 0);
	in[0] = tag;
	rc = swarm_request_submit(r, 0);
	if (!rc)
		rc = swarm_request_wait(r, BB_WAIT_NS);
	if (!rc && ((const uint64_t *)swarm_request_output(r, 0))[0] != tag)
		rc = -EBADMSG;
	if (rc != -ETIMEDOUT)
		swarm_request_release(r);
	return rc;
}

static int bb_pin(const char *cpulist)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	/* The first cpu of the list is enough: the thread is one. */
	int cpu = atoi(cpulist);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) < 0 ? -errno : 0;
}

/* ---- NUMA: local against remote ------------------------------------------------------------- */

/* Round trips on local and remote in interleaved blocks, so that the machine's noise falls on
 * both; their percentiles into out. */
static int bb_numa_measure(swarm_session *local, swarm_session *remote, int quick,
			   struct bench_balance_numa *out)
{
	int rc = 0;
	size_t iters = quick ? 20000 : 200000;
	uint64_t *lv = malloc(iters * sizeof *lv), *rv = malloc(iters * sizeof *rv);
	if (!lv || !rv) {
		free(lv);
		free(rv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < BB_BLOCK && !rc; i++)
		rc = bb_roundtrip(local, i) ?: bb_roundtrip(remote, i);
	for (size_t done = 0; done < iters && !rc; done += BB_BLOCK) {
		for (int side = 0; side < 2 && !rc; side++) {
			swarm_session *s = side ? remote : local;
			uint64_t *v = side ? rv : lv;
			for (size_t i = done; i < done + BB_BLOCK && i < iters && !rc; i++) {
				uint64_t t0 = bb_now();
				rc = bb_roundtrip(s, i);
				v[i] = bb_now() - t0;
			}
		}
	}
	if (!rc) {
		out->iters = iters;
		out->local_p50 = bb_pct(lv, iters, 500);
		out->local_p99 = bb_pct(lv, iters, 990);
		out->remote_p50 = bb_pct(rv, iters, 500);
		out->remote_p99 = bb_pct(rv, iters, 990);
	}
	free(lv);
	free(rv);
	return rc;
}

int bench_balance_numa(const char *exe_dir, int quick, struct bench_balance_numa *out)
{
	memset(out, 0, sizeof *out);
	struct swarm_topology *t = NULL;
	int rc = swarm_topology_load(NULL, &t);
	if (rc)
		return rc;
	int nn = swarm_topology_numa_count(t);
	struct swarm_numa_info n0, n1;
	if (nn < 2 || swarm_topology_numa_info(t, 0, &n0) || swarm_topology_numa_info(t, 1, &n1)) {
		out->skipped = 1;
		snprintf(out->why, sizeof out->why,
			 "this machine has %d NUMA node(s) with cores; the case needs two", nn);
		swarm_topology_free(t);
		return 0;
	}
	swarm_topology_free(t);

	struct bb_dir b;
	struct bench_swarmd d;
	swarm_client *c = NULL;
	swarm_session *local = NULL, *remote = NULL;
	cpu_set_t saved;
	sched_getaffinity(0, sizeof saved, &saved);
	if ((rc = bb_dir_make(&b, &d)))
		return rc;
	/* cpu:2 puts device 0 on node 0 and device 1 on node 1. */
	rc = bench_swarmd_start(&d, exe_dir, b.sock, "cpu:2", BB_DAEMON_SPIN_US, NULL, NULL, NULL,
				&c);
	if (rc)
		goto out_dir;
	if ((rc = bb_pin(n1.cpus)) || (rc = bb_open(c, &remote, BB_SPIN_NS)) || (rc = bb_pin(n0.cpus)) ||
	    (rc = bb_open(c, &local, BB_SPIN_NS)))
		goto out;
	swarm_session_info li, ri;
	swarm_session_info_get(local, &li);
	swarm_session_info_get(remote, &ri);
	if (li.numa_node == ri.numa_node) {
		fprintf(stderr, "balance bench: both sessions on node %d\n", li.numa_node);
		rc = -EINVAL;
		goto out;
	}
	rc = bb_numa_measure(local, remote, quick, out);
out:
	sched_setaffinity(0, sizeof saved, &saved);
	if (local)
		swarm_session_close(local);
	if (remote)
		swarm_session_close(remote);
	if (c)
		swarm_disconnect(c);
	bench_swarmd_stop(&d);
out_dir:
	bb_dir_remove(&b, &d);
	return rc;
}

/* ---- migration pause ------------------------------------------------------------------------ */

struct bb_mover {
	const char *sock;
	swarm_session *s;
	size_t moves;
	uint64_t *start, *end; /* per move: drain sent, new placement seen */
	size_t done;
	int rc;
	volatile int stop;
};

/* The controller: moves the session back and forth, one move at a time. Reads the session's
 * placement from the segment header (swarm_session_info_get only reads that header, under its
 * seqlock, so it does not disturb the thread that runs the requests). */
static void *bb_mover_main(void *arg)
{
	struct bb_mover *m = arg;
	struct timespec lead = { 0, 200 * 1000 * 1000 }, gap = { 0, 300 * 1000 * 1000 };
	nanosleep(&lead, NULL);
	for (size_t k = 0; k < m->moves; k++) {
		swarm_session_info info;
		swarm_session_info_get(m->s, &info);
		char name[32], text[256];
		snprintf(name, sizeof name, "%s", info.device_name);
		m->start[k] = bb_now();
		int rc = bench_swarmd_device_ctl(m->sock, 1 /* drain */, name, text, sizeof text);
		if (rc) {
			fprintf(stderr, "balance bench: drain %s: %s\n", name, text);
			m->rc = rc;
			break;
		}
		uint64_t limit = m->start[k] + 5000000000ull;
		for (;;) {
			swarm_session_info now;
			swarm_session_info_get(m->s, &now);
			if (now.device_index != info.device_index)
				break;
			if (bb_now() > limit) {
				fprintf(stderr, "balance bench: the session did not leave %s in 5 s\n",
					name);
				m->rc = -ETIMEDOUT;
				goto out;
			}
			struct timespec tick = { 0, 100 * 1000 };
			nanosleep(&tick, NULL);
		}
		m->end[k] = bb_now();
		m->done = k + 1;
		nanosleep(&gap, NULL);
		rc = bench_swarmd_device_ctl(m->sock, 2 /* resume */, name, text, sizeof text);
		if (rc) {
			fprintf(stderr, "balance bench: resume %s: %s\n", name, text);
			m->rc = rc;
			break;
		}
		nanosleep(&gap, NULL);
	}
out:
	m->stop = 1;
	return NULL;
}

/* The pauses swarmd logged (event=session_moved ... pause_us=N); returns their p50, 0 if none. */
static double bb_logged_pause_p50(const char *log)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return 0;
	uint64_t v[256];
	size_t n = 0;
	char line[1024];
	while (fgets(line, sizeof line, f) && n < 256) {
		char *p = strstr(line, "event=session_moved");
		p = p ? strstr(p, "pause_us=") : NULL;
		if (p)
			v[n++] = strtoull(p + 9, NULL, 10);
	}
	fclose(f);
	return bb_pct(v, n, 500);
}

/* From the completion times ts (n of them; gaps, room for as many) and the moves of m: the
 * round trip before the first move, and each move's pause, its longest gap between
 * completions. */
static void bb_migration_figures(const uint64_t *ts, size_t n, uint64_t *gaps,
				 const struct bb_mover *m, struct bench_balance_migration *out)
{
	/* The baseline: gaps before the first move. */
	size_t ng = 0;
	for (size_t i = 1; i < n && ts[i] < m->start[0]; i++)
		gaps[ng++] = ts[i] - ts[i - 1];
	out->rt_p50_ns = bb_pct(gaps, ng, 500);
	out->rt_p99_ns = bb_pct(gaps, ng, 990);
	/* Each move's pause: its longest gap between completions. */
	uint64_t pauses[64];
	size_t i = 1;
	for (size_t k = 0; k < m->done && k < 64; k++) {
		uint64_t worst = 0;
		for (; i < n && ts[i] <= m->end[k] + BB_SETTLE_NS; i++)
			if (ts[i] >= m->start[k] && ts[i] - ts[i - 1] > worst)
				worst = ts[i] - ts[i - 1];
		pauses[out->moves++] = worst;
	}
	out->pause_p50_us = bb_pct(pauses, out->moves, 500) / 1e3;
	out->pause_max_us = out->moves ? (double)pauses[out->moves - 1] / 1e3 : 0;
}

int bench_balance_migration(const char *exe_dir, int quick, struct bench_balance_migration *out)
{
	memset(out, 0, sizeof *out);
	struct bb_dir b;
	struct bench_swarmd d;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc = bb_dir_make(&b, &d);
	if (rc)
		return rc;
	/* Short spins on both sides: with two cores, a client and a worker spinning for long
	 * leave swarmd and the other worker a scheduler slice (milliseconds) to run in, and the
	 * pause would measure the scheduler, not the move. */
	rc = bench_swarmd_start(&d, exe_dir, b.sock, "cpu:2", BB_MOVE_SPIN_US, NULL, NULL, NULL,
				&c);
	if (rc)
		goto out_dir;
	if ((rc = bb_open(c, &s, BB_MOVE_SPIN_US * 1000ull)))
		goto out;
	struct bb_mover m = { .sock = b.sock, .s = s, .moves = quick ? 4 : 20 };
	size_t cap = quick ? (4u << 20) : (32u << 20);
	uint64_t *ts = malloc(cap * sizeof *ts);
	m.start = calloc(m.moves, sizeof *m.start);
	m.end = calloc(m.moves, sizeof *m.end);
	uint64_t *gaps = malloc(cap * sizeof *gaps);
	pthread_t th;
	if (!ts || !m.start || !m.end || !gaps || pthread_create(&th, NULL, bb_mover_main, &m)) {
		rc = -ENOMEM;
		goto out_free;
	}
	size_t n = 0;
	for (uint64_t tag = 1; !m.stop && n < cap && !rc; tag++) {
		rc = bb_roundtrip(s, tag);
		ts[n++] = bb_now();
	}
	m.stop = 1;
	pthread_join(th, NULL);
	if (rc) {
		fprintf(stderr, "balance bench: a round trip failed during the moves: %s\n",
			swarm_strerror(rc));
		goto out_free;
	}
	if (m.rc) {
		rc = m.rc;
		goto out_free;
	}
	bb_migration_figures(ts, n, gaps, &m, out);
	out->swarmd_pause_p50_us = bb_logged_pause_p50(d.log);
out_free:
	free(ts);
	free(gaps);
	free(m.start);
	free(m.end);
out:
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	int stop_rc = bench_swarmd_stop(&d);
	if (!rc)
		rc = stop_rc;
out_dir:
	bb_dir_remove(&b, &d);
	return rc;
}
