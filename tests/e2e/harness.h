/* harness.h: the end-to-end harness. It starts a real swarmd (and so its workers) from this
 * build on a fresh socket in a temporary directory, stops it, and gives the e2e suites the
 * probes they need: the pids of swarmd's workers, open fd counts, the session segment mapped
 * as a hostile client would map it, and forked child processes.
 *
 * One swarmd per test process (Criterion runs every test in its own process). Nothing is
 * left behind: swarmd runs in its own process group with PDEATHSIG, a guardian process kills
 * that group if the test process dies without stopping it (a Criterion timeout is a SIGKILL),
 * and an atexit handler does the same on an ordinary exit. Every wait is bounded in time.
 *
 * Functions that end in "_or_fail" (and h_start / h_stop) fail the current Criterion test
 * with a message; use them only in the test process, never in a forked child. Everything
 * else returns codes and may be called from children.
 */
#ifndef SWARM_TESTS_E2E_HARNESS_H
#define SWARM_TESTS_E2E_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/segment.h"
#include "swarm/swarm.h"

#ifndef SWARM_BIN_DIR
#define SWARM_BIN_DIR "build/bin"
#endif

#define H_MS 1000000ll
#define H_SEC 1000000000ll

/* A result of a round-trip helper that is not an errno: the output did not match. */
#define H_EMISMATCH (-100000)

/* ---- swarmd -------------------------------------------------------------------------------- */

/* Starts swarmd --socket DIR/swarmd.sock --devices devices [extra...] (devices NULL: no
 * --devices, swarmd's default; extra: NULL-terminated, may be NULL) with its stderr in
 * DIR/swarmd.log, and waits up to 10 s for "event=ready" in the log. Fails the test (printing
 * the log) when swarmd exits or is not ready in time. */
void h_start(const char *devices, const char *const *extra);

/* Resumes any stopped worker, sends SIGTERM to swarmd, waits up to 10 s for it to exit (else
 * SIGKILLs it and fails), then checks that it exited 0, that its workers are gone within 3 s
 * and that no sanitizer report is in its log. Idempotent: does nothing when swarmd is not
 * running. Call it at the end of each test body: Criterion does not count a failed
 * assertion in a .fini fixture as a failure of the test. */
void h_stop(void);

/* For .fini: stops swarmd if the test did not get to h_stop (it failed earlier), reporting
 * problems on stderr only, and kills whatever is left. */
void h_teardown(void);

pid_t h_swarmd_pid(void);

/* Kills swarmd with SIGKILL (its workers are left running, as a crash leaves them) and reaps
 * it; h_stop and h_teardown then have no swarmd to stop (the guardian still kills its process
 * group when the test process exits). */
void h_kill_swarmd(void);
const char *h_socket(void);
const char *h_dir(void);
const char *h_log_path(void);

/* Prints swarmd's log to stderr (the last 16 KiB at most), with a title. */
void h_print_log(const char *why);

/* 1 when the log contains needle. */
int h_log_contains(const char *needle);
/* Lines of swarmd's log (its workers' included) that contain needle; 0 without a log. */
int h_log_count(const char *needle);
/* Lines of swarmd's log that hold both a and b. */
int h_log_count2(const char *a, const char *b);

/* The "batches" counter of the first device in `swarm status --json` (batches of more than one
 * request it ran); fails the test when the status cannot be read. */
long h_status_batches(void);

/* `swarm status --json`, parsed (json_decref it); fails the test when it cannot be had. */
json_t *h_status(void);
/* Device i's "memory" object in a status (fails the test when it has none). */
json_t *h_device_memory(json_t *st, int i);
/* The resident entry of model on device i in a status, or NULL. */
json_t *h_resident(json_t *st, int i, const char *model);
/* o's integer key (fails the test when it is not one). */
uint64_t h_num(json_t *o, const char *key);

/* Runs argv (argv[0] a path, NULL-terminated) with its stdout in out (terminated, cut at
 * len - 1) and its stderr the test's. Returns its exit status, or 256 + the signal that ended
 * it. */
int h_run(const char *const *argv, char *out, size_t len);

/* ---- a registry of the test's own ------------------------------------------------------------ */

/* Makes a temporary directory /tmp/swarm-TAG-XXXXXX (into work) holding an empty registry at
 * work/registry (into reg), or fails the test. For a suite's .init. */
void h_registry_make(const char *tag, char *work, size_t work_len, char *reg, size_t reg_len);

/* For the suite's .fini: h_teardown, then removes work and all in it (a message on stderr
 * when it cannot). */
void h_registry_remove(const char *work);

/* ---- the e2e suites' MLP: y = W2 relu(W1 x + b1) + b2, x [B, 16] -> y [B, 4] ----------------- */

struct h_mlp {
	float w1[32 * 16], b1[32], w2[4 * 32], b2[4];
};

/* Weights from seed: multiples of 1/1000 in [-1, 1], plus offset (a nudge off the grid). */
void h_mlp_make(struct h_mlp *m, uint32_t seed, float offset);

/* Writes m as safetensors (w1, b1, w2, b2; f32) to path and publishes it with the manifest
 * "{format 1, inputs, outputs, graph {nodes: the MLP's two linears + extra_nodes}, weights,
 * deploy}" built from the JSON pieces given (extra_nodes: "" or ", {...}, ..."), as model
 * name, active, into the registry reg; dir holds the two files. Fails the test on error. */
void h_mlp_publish(const struct h_mlp *m, const char *reg, const char *dir, const char *name,
		   const char *inputs_json, const char *outputs_json, const char *extra_nodes,
		   const char *deploy_json);

/* The float64 reference of one row. */
void h_mlp_reference(const struct h_mlp *m, const float *x, double y[4]);

/* ---- processes ------------------------------------------------------------------------------ */

uint64_t h_now_ns(void);
void h_sleep_ms(int ms);

/* 1 when pid exists and is not a zombie. */
int h_alive(pid_t pid);

/* The state letter of pid from /proc/PID/stat ('R', 'S', 'T', 'Z', ...), 0 when it is gone. */
char h_proc_state(pid_t pid);

/* Waits up to timeout_ns for pid to be in state 'T' (stopped). Returns 0 or -ETIMEDOUT. */
int h_wait_stopped(pid_t pid, int64_t timeout_ns);

/* Open fds of pid (entries of /proc/PID/fd), or -errno. */
int h_count_fds(pid_t pid);

/* The live children of swarmd whose comm is "swarm-worker", sorted; returns the count
 * (at most max are stored). */
int h_worker_pids(pid_t *out, int max);

/* Waits up to timeout_ns for a worker whose pid differs from old. Returns it, or -1. */
pid_t h_wait_new_worker(pid_t old, int64_t timeout_ns);

/* Sends sig to every worker of swarmd (SIGCONT in teardown). */
void h_signal_workers(int sig);

/* Forks a child that runs fn(arg) and _exits with its return value (never running atexit
 * handlers). The child dies with SIGKILL if the test process dies. Returns the pid. */
pid_t h_fork(int (*fn)(void *), void *arg);

/* h_fork with a ready signal: *ready_fd (a field of arg) is set to the write end of a pipe,
 * on which the child writes one byte once it is ready; waits up to timeout_ns for it. Returns
 * the child's pid, with *ready 1 when the byte came, 0 when it did not (the child may have
 * failed: h_child_wait tells), or -errno when the pipe or the fork failed. */
pid_t h_fork_ready(int (*fn)(void *), void *arg, int *ready_fd, int64_t timeout_ns, int *ready);

/* Waits up to timeout_ns for child pid. Returns its exit status (0..255), 256 + signal when a
 * signal killed it, or -ETIMEDOUT (then it has been SIGKILLed and reaped). */
int h_child_wait(pid_t pid, int64_t timeout_ns);

/* ---- sessions ------------------------------------------------------------------------------- */

/* Connects to h_socket(), retrying -ECONNREFUSED/-ENOENT for up to 5 s. Returns 0 or -errno. */
int h_connect(swarm_client **out);

/* h_connect, failing the test (with swarmd's log) when it does not connect. */
swarm_client *h_connect_or_fail(void);

/* Opens a session on model and runs one round trip on it (identity: 64 B, affine: 1 row),
 * retrying both for up to timeout_ns (a worker being restarted). Returns 0 or the last error;
 * *out is NULL on failure. */
int h_open_working(swarm_client *c, const char *model, const swarm_session_opts *opts,
		   swarm_session **out, int64_t timeout_ns);

/* Small identity sessions: slots 8, queue_depth 8, max_rows 64. */
swarm_session_opts h_identity_opts(void);

/* The 64-byte pattern of request tag. */
void h_pattern(uint8_t *buf, size_t len, uint64_t tag);

/* One identity round trip of rows rows of pattern tag (wait bounded by timeout_ns): 0, a
 * negative errno from the API, or H_EMISMATCH. The request is released unless the wait ran
 * out (then it is still in flight and -ETIMEDOUT is returned). */
int h_identity_roundtrip(swarm_session *s, uint32_t rows, uint64_t tag, int64_t timeout_ns);

/* Affine inputs: a non-zero multiple of 1/8 in [-250, 250], so that 2x + 1 is exact in f32. */
float h_affine_x(uint32_t seed, uint64_t k);

/* Fills rows of affine input from seed; checks output y against 2x + 1 of the same seed.
 * h_affine_check returns -1 when all match, else the index of the first wrong element. */
void h_affine_fill(float *x, uint32_t rows, uint32_t seed);
int64_t h_affine_check(const float *y, uint32_t rows, uint32_t seed);

/* One affine round trip: 0, a negative errno, or H_EMISMATCH (message on stderr). */
int h_affine_roundtrip(swarm_session *s, uint32_t rows, uint32_t seed, int64_t timeout_ns);

/* ---- a hostile client's view of its own segment ---------------------------------------------- */

struct h_seg {
	int fd;     /* this process's fd of the memfd (owned by libswarm: never close it) */
	void *base; /* our own MAP_SHARED mapping of the whole memfd */
	size_t bytes;
	struct swarm_seg_header *hdr;
	struct swarm_seg_geometry geo; /* copied from the header */
	uint64_t *sq;                  /* the submission queue entries */
};

/* Finds the memfd of session session_id among this process's fds (links that start with
 * "/memfd:swarm-session", matched by the session id in the header) and maps it. Returns 0,
 * -ENOENT when no memfd holds that session, or -errno. */
int h_seg_find(uint64_t session_id, struct h_seg *out);

/* Only the fd of the memfd (no mapping): -ENOENT when none matches. */
int h_seg_fd(uint64_t session_id);

void h_seg_unmap(struct h_seg *seg);

/* Writes 1 to every eventfd this process holds: wakes the worker of every session of ours
 * (and gives our own completion fds a spurious wake-up, which a client must tolerate). */
void h_kick_eventfds(void);

/* The session state word of the segment. */
uint32_t h_seg_state(const struct h_seg *seg);

/* ---- a well-behaved client in a child process ----------------------------------------------- */

struct h_honest_args {
	int64_t duration_ns; /* keep doing identity round trips this long */
	uint64_t tag_base;
	int ready_fd; /* written once (1 byte) after the first good round trip; -1 for none */
};

/* For h_fork: connects, opens an identity session and does checked round trips (each wait
 * bounded by 5 s) for duration_ns. Returns 0 when every one was correct and there were some,
 * else a small code (it prints why on stderr). */
int h_honest_client(void *args);

/* ---- clients under load ------------------------------------------------------------------- */

#define H_LOAD_PIPELINE 4 /* requests each load client keeps in flight */

struct h_load_args {
	int64_t duration_ns;
	uint32_t seed;
	int ready_fd;
	int no_retry_every; /* every n-th request opts out of re-running (0: none) */
	/* NULL: as fast as H_LOAD_PIPELINE requests in flight allow. Else a swarm-sim trace spec
	 * (docs/simulator.md "Traces"): each request is submitted at its arrival time, from the
	 * client's first request, with the client's seed, up to duration_ns (still at most
	 * H_LOAD_PIPELINE in flight: a request whose time came while they were in flight goes
	 * as soon as one completes). */
	const char *trace;
};

/* For h_fork: one affine session with H_LOAD_PIPELINE requests always in flight for
 * duration_ns (or at the arrivals of args->trace), each checked against its own input and
 * collected once; returns 0 when every request completed exactly once with the right output,
 * else a small code (why on stderr). */
int h_load_client(void *args);

/* Forks n load clients (seeds 1..n) for duration_ns and waits until each has a working
 * session. Fails the test when one dies first. */
void h_start_load(pid_t *pids, struct h_load_args *args, int n, int64_t duration_ns,
		  int no_retry_every);

/* The same, each client submitting at the arrivals of trace (seeded by its number) instead of
 * as fast as it can. */
void h_start_load_trace(pid_t *pids, struct h_load_args *args, int n, int64_t duration_ns,
			const char *trace);

/* Waits up to 60 s for each load client; fails the test (with swarmd's log) unless all
 * exited 0. */
void h_wait_load_or_fail(pid_t *pids, int n, const char *when);

#endif /* SWARM_TESTS_E2E_HARNESS_H */
