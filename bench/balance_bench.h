/* balance_bench.h: swarm-bench's placement cases (docs/balancing.md).
 *
 *   numa       on a machine with two NUMA nodes or more: one session opened from a thread on
 *              node 0 (served by node 0's device) and one opened from node 1 (served by node
 *              1's), both then driven from a thread on node 0, 64-byte identity round trips,
 *              blocks of the two interleaved: the local device against the remote one. On a
 *              machine of one node it is skipped and says so.
 *   migration  one client doing 64-byte identity round trips, spinning, while its session is
 *              moved back and forth between two CPU devices (swarm device drain of the device
 *              that serves it, then resume); the pause of each move is the longest gap
 *              between two completions from the drain to the new placement plus 20 ms. The
 *              baseline is the same client's round trip with no move. Client and
 *              workers spin 50 us before they sleep (the default), not 1 ms: on a machine of
 *              two cores longer spins leave swarmd a scheduler slice to run in.
 *
 * Functions return 0 or a negative errno, having printed what failed to stderr.
 */
#ifndef SWARM_BENCH_BALANCE_BENCH_H
#define SWARM_BENCH_BALANCE_BENCH_H

#include <stddef.h>

struct bench_balance_numa {
	int skipped;      /* 1: not measured, for the reason in why */
	char why[256];
	double local_p50, remote_p50; /* ns per round trip */
	double local_p99, remote_p99;
	size_t iters; /* per side */
};

struct bench_balance_migration {
	size_t moves;             /* moves measured */
	double pause_p50_us;      /* the per-move pause, over the moves */
	double pause_max_us;
	double rt_p50_ns;         /* round trip with no move in progress (the baseline) */
	double rt_p99_ns;
	double swarmd_pause_p50_us; /* what swarmd logged from detach request to re-attach */
};

int bench_balance_numa(const char *exe_dir, int quick, struct bench_balance_numa *out);
int bench_balance_migration(const char *exe_dir, int quick, struct bench_balance_migration *out);

#endif /* SWARM_BENCH_BALANCE_BENCH_H */
