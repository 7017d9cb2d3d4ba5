/* control_bench.c: see control_bench.h. */
#include "bench/control_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/daemon.h"
#include "swarm/swarm.h"

#define CB_CLIENTS 8
#define CB_SESSIONS 1000
#define CB_SPIN_US 50

extern char **environ;

struct cb_thread {
	const char *sock;
	uint64_t until_ns;
	int sessions; /* 1: open and close sessions; 0: connect and disconnect */
	uint64_t done;
	int rc;
};

static void *cb_loop(void *arg)
{
	struct cb_thread *t = arg;
	const swarm_session_opts o = { .slots = 1, .queue_depth = 1, .max_rows = 1 };
	swarm_client *c = NULL;
	if (t->sessions && (t->rc = swarm_connect(t->sock, &c)))
		return NULL;
	while (swarm_now_ns() < t->until_ns) {
		if (t->sessions) {
			swarm_session *s = NULL;
			if ((t->rc = swarm_session_open(c, "identity", 0, &o, &s)) ||
			    (t->rc = swarm_session_close(s)))
				break;
		} else {
			swarm_client *k = NULL;
			if ((t->rc = swarm_connect(t->sock, &k)))
				break;
			swarm_disconnect(k);
		}
		t->done++;
	}
	if (c)
		swarm_disconnect(c);
	return NULL;
}

/* Pairs a second from CB_CLIENTS threads for seconds, or a negative errno. */
static double cb_rate(const char *sock, int sessions, double seconds)
{
	pthread_t th[CB_CLIENTS];
	struct cb_thread t[CB_CLIENTS];
	const uint64_t t0 = swarm_now_ns();
	for (int i = 0; i < CB_CLIENTS; i++) {
		t[i] = (struct cb_thread){ .sock = sock,
					   .until_ns = t0 + (uint64_t)(seconds * 1e9),
					   .sessions = sessions };
		if (pthread_create(&th[i], NULL, cb_loop, &t[i]))
			return -EAGAIN;
	}
	uint64_t done = 0;
	int rc = 0;
	for (int i = 0; i < CB_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		done += t[i].done;
		rc = rc ? rc : t[i].rc;
	}
	if (rc) {
		fprintf(stderr, "swarm-bench: control: a client's %s failed: %s\n",
			sessions ? "open or close" : "connect", swarm_strerror(rc));
		return rc;
	}
	return (double)done / ((double)(swarm_now_ns() - t0) / 1e9);
}

static int cb_cmp(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Runs `swarm status --socket sock` n times (its output to /dev/null) and puts the p50 and
 * p99 of its start-to-exit times in ns. */
static int cb_status(const char *exe_dir, const char *sock, unsigned n, double *p50, double *p99)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/swarm", exe_dir);
	char *argv[] = { path, "status", "--socket", (char *)sock, NULL };
	uint64_t *v = calloc(n, sizeof *v);
	if (!v)
		return -ENOMEM;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	int rc = 0;
	for (unsigned i = 0; i < n && !rc; i++) {
		pid_t pid;
		int st = 0;
		const uint64_t t0 = swarm_now_ns();
		if ((rc = -posix_spawn(&pid, path, &fa, NULL, argv, environ)))
			break;
		waitpid(pid, &st, 0);
		v[i] = swarm_now_ns() - t0;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "swarm-bench: control: %s status exited %d\n", path, st);
			rc = -EIO;
		}
	}
	posix_spawn_file_actions_destroy(&fa);
	if (!rc) {
		qsort(v, n, sizeof *v, cb_cmp);
		*p50 = (double)v[(n - 1) / 2];
		*p99 = (double)v[(n * 99 + 99) / 100 - 1];
	}
	free(v);
	return rc;
}

int bench_control(const char *exe_dir, int quick, struct bench_control *out)
{
	char dir[] = "/tmp/swarm-bench-control-XXXXXX", sock[128];
	if (!mkdtemp(dir))
		return -errno;
	snprintf(sock, sizeof sock, "%s/swarmd.sock", dir);
	struct bench_swarmd d = { 0 };
	snprintf(d.log, sizeof d.log, "%s/swarmd.log", dir);
	static const char *const extra[] = { "--max-sessions-per-client", "1000", NULL };
	swarm_client *c = NULL, *c2 = NULL;
	int rc = bench_swarmd_start(&d, exe_dir, sock, "cpu:4", CB_SPIN_US, NULL, NULL, extra, &c);
	memset(out, 0, sizeof *out);
	out->clients = CB_CLIENTS;
	out->status_runs = quick ? 10 : 50;
	const double seconds = quick ? 0.5 : 3.0;
	if (rc)
		goto out;
	double r = cb_rate(sock, 1, seconds);
	if (r < 0) {
		rc = (int)r;
		goto out;
	}
	out->open_close_per_s = r;
	if ((r = cb_rate(sock, 0, seconds)) < 0) {
		rc = (int)r;
		goto out;
	}
	out->connect_per_s = r;
	if ((rc = cb_status(exe_dir, sock, out->status_runs, &out->idle_p50_ns, &out->idle_p99_ns)))
		goto out;
	/* 1,000 sessions over two connections, each within the default places of four devices;
	 * this process holds three descriptors a session: its soft limit goes up to the hard
	 * one, and where that is still too low the status row says so instead of failing */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}
	if ((rc = swarm_connect(sock, &c2)))
		goto out;
	const swarm_session_opts o = { .slots = 1, .queue_depth = 1, .max_rows = 1 };
	for (unsigned i = 0; i < CB_SESSIONS; i++) {
		swarm_session *s;
		int orc = swarm_session_open(i % 2 ? c2 : c, "identity", 0, &o, &s);
		if (orc) {
			snprintf(out->why, sizeof out->why,
				 "session %u of %u could not be opened here: %s [%s]", i + 1,
				 CB_SESSIONS, swarm_strerror(orc),
				 swarm_client_error(i % 2 ? c2 : c));
			out->status_skipped = 1;
			goto out;
		}
	}
	out->sessions = CB_SESSIONS;
	rc = cb_status(exe_dir, sock, out->status_runs, &out->status_p50_ns, &out->status_p99_ns);
out:
	if (c2)
		swarm_disconnect(c2);
	if (c)
		swarm_disconnect(c);
	if (rc)
		bench_log_tail(d.log);
	int stop = bench_swarmd_stop(&d);
	unlink(sock);
	unlink(d.log);
	rmdir(dir);
	return rc ? rc : stop;
}
