/* baselines.h: the reference transports that bench/swarm-bench compares the runtime with.
 *
 * Each latency baseline forks a child, ping-pongs 64 bytes with it over one transport, and
 * stores one round-trip time per measured iteration (in ns, CLOCK_MONOTONIC, taken by the
 * parent, which initiates every round trip). The memcpy baseline stores one bandwidth per
 * iteration instead. Warm-up iterations run first and are not stored. The caller owns the
 * output array, which must hold `iters` values.
 *
 * Every function returns 0 or a negative errno and prints what failed to stderr. The child is
 * always reaped before the function returns, killed first when something went wrong, and it
 * dies with the parent (PR_SET_PDEATHSIG) should the parent crash. Not thread-safe (it forks).
 */
#ifndef SWARM_BENCH_BASELINES_H
#define SWARM_BENCH_BASELINES_H

#include <stddef.h>
#include <stdint.h>

/* The payload every latency case moves each way. */
#define BENCH_PAYLOAD_BYTES 64

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

/* Two processes each spin on one 64-byte cache line written by the other (acquire loads,
 * release stores), the line holding the 64-byte payload whose first 8 bytes are the sequence
 * number. The floor of any shared-memory round trip between two cores. */
int bench_baseline_cacheline(size_t warmup, size_t iters, uint64_t *out_ns);

/* Two processes that sleep on shared futex words (FUTEX_WAIT, FUTEX_WAKE; shared, not
 * private) between messages, each message a 64-byte payload in shared memory. The floor of a
 * round trip in which both sides sleep. */
int bench_baseline_futex(size_t warmup, size_t iters, uint64_t *out_ns);

/* 64 bytes written into a SOCK_STREAM socketpair and echoed back by the child. */
int bench_baseline_unix(size_t warmup, size_t iters, uint64_t *out_ns);

/* 64 bytes over a TCP connection on 127.0.0.1 (ephemeral port, TCP_NODELAY), echoed back. */
int bench_baseline_tcp(size_t warmup, size_t iters, uint64_t *out_ns);

/* memcpy of `bytes` bytes between two distinct buffers touched beforehand, in one process;
 * stores one GB/s (1e9 bytes per second) per iteration. */
int bench_baseline_memcpy(size_t bytes, size_t warmup, size_t iters, double *out_gbps);

/* Pins the calling process to cpu (< 0: leaves it). Returns 0 or -errno. */
int bench_pin_self(int cpu);

/* The cpu each baseline's child (the peer of the measuring side) is pinned to; < 0 leaves
 * children unpinned. */
void bench_set_peer_cpu(int cpu);

#endif /* SWARM_BENCH_BASELINES_H */
