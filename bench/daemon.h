/* daemon.h: a swarmd of the benchmark's own, started from beside the swarm-bench binary. */
#ifndef SWARM_BENCH_DAEMON_H
#define SWARM_BENCH_DAEMON_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include <swarm/swarm.h>

struct bench_swarmd {
	pid_t pid;          /* 0 when none runs */
	char log[PATH_MAX]; /* its stdout and stderr (appended); set before starting */
};

/* At most this many extra arguments to bench_swarmd_start. */
#define BENCH_SWARMD_EXTRA_MAX 16

/* Starts <exe_dir>/swarmd --socket sock --devices devices --spin-us spin_us (and --registry
 * registry, --topology topology, each when not NULL, then the arguments of extra, a
 * NULL-terminated list or NULL for none), dying with this process, and waits up to 10 s
 * until it takes a client: returned connected in *out, or disconnected when out is NULL. On
 * failure swarmd is stopped and reaped, its log's tail printed. Returns 0 or -errno
 * (-E2BIG: more than BENCH_SWARMD_EXTRA_MAX extra arguments). */
int bench_swarmd_start(struct bench_swarmd *d, const char *exe_dir, const char *sock,
		       const char *devices, unsigned spin_us, const char *registry,
		       const char *topology, const char *const *extra, swarm_client **out);

/* Writes to path an hwloc XML topology of one core, cpu (below 32), on NUMA node 0: given to
 * swarmd --topology with --devices cpu:1, it makes one device whose worker (and its BLAS
 * threads) has that cpu alone. */
int bench_topology_one_cpu(const char *path, int cpu);

/* A device's counters from its worker's stats page, as `swarm status` reads them. */
struct bench_device_stats {
	uint64_t requests, batches, busy_ns;
};

/* Asks the swarmd on sock for the counters of its device index. Returns 0 or -errno. */
int bench_swarmd_device_stats(const char *sock, int index, struct bench_device_stats *out);

/* `swarm device drain|resume NAME` on the swarmd at sock: action 1 drain, 2 resume. Returns
 * swarmd's status (0 or -errno) with its words in text, or -errno when it cannot be asked. */
int bench_swarmd_device_ctl(const char *sock, unsigned action, const char *name, char *text,
			    size_t text_len);

/* SIGTERM, up to 5 s, then SIGKILL; always reaps. Returns 0, or -ECHILD (and prints the
 * log's tail) when swarmd did not exit cleanly. */
int bench_swarmd_stop(struct bench_swarmd *d);

/* Prints the last lines of a log to stderr, for an error message. */
void bench_log_tail(const char *path);

#endif /* SWARM_BENCH_DAEMON_H */
