/* control_bench.h: swarm-bench's control-plane case (issue 15, docs/control-plane.md).
 *
 *   control  on a swarmd of its own with four CPU devices: eight client threads, each on its
 *            own connection, open and close a small identity session as fast as they can;
 *            the baseline is the same threads connecting (hello) and disconnecting. Then
 *            1,000 sessions are opened (over two connections) and `swarm status` is run again
 *            and again, from its start to its exit; the baseline is the same with no session
 *            open. Reported, no target.
 *
 * Returns 0 or a negative errno, having printed what failed to stderr.
 */
#ifndef SWARM_BENCH_CONTROL_BENCH_H
#define SWARM_BENCH_CONTROL_BENCH_H

struct bench_control {
	unsigned clients;
	double open_close_per_s; /* open and close pairs a second, all clients together */
	double connect_per_s;    /* connect and disconnect pairs a second, the same way */
	unsigned sessions;       /* open while status ran */
	double status_p50_ns, status_p99_ns; /* `swarm status`, start to exit */
	double idle_p50_ns, idle_p99_ns;     /* the same with no session open */
	unsigned status_runs;
	int status_skipped; /* 1: the sessions could not all be opened here; why says why */
	char why[256];
};

int bench_control(const char *exe_dir, int quick, struct bench_control *out);

#endif /* SWARM_BENCH_CONTROL_BENCH_H */
