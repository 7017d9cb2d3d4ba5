/* harness.c: starts and stops a real swarmd for the e2e suites, and the probes they use
 * (see harness.h). Every loop here has a time bound; nothing outlives the test process. */
#include "e2e/harness.h"
#include "registry/registry.h"
#include "registry/safetensors.h"
#include "tools/sim.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct {
	pid_t pid;       /* swarmd, 0 when not running */
	pid_t owner;     /* the test process that started it */
	pid_t guard_pid; /* the guardian, 0 when none */
	int guard_wfd;   /* closing it tells the guardian to sweep */
	int atexit_done;
	char dir[64];
	char sock[128];
	char log[128];
} H = { .guard_wfd = -1 };

uint64_t h_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void h_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

pid_t h_swarmd_pid(void) { return H.pid; }

void h_kill_swarmd(void)
{
	if (H.pid <= 0 || H.owner != getpid())
		return;
	kill(H.pid, SIGKILL);
	waitpid(H.pid, NULL, 0);
	H.pid = 0;
}
const char *h_socket(void) { return H.sock; }
const char *h_dir(void) { return H.dir; }
const char *h_log_path(void) { return H.log; }

/* ---- /proc probes ----------------------------------------------------------------------- */

/* Reads /proc/PID/stat and parses comm, state and ppid. Returns 0 or -1. */
static int read_stat(pid_t pid, char *comm, size_t comm_len, char *state, pid_t *ppid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* comm may hold spaces and parentheses: it ends at the last ')'. */
	char *open_paren = strchr(buf, '(');
	char *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -1;
	if (comm) {
		size_t len = (size_t)(close_paren - open_paren - 1);
		if (len >= comm_len)
			len = comm_len - 1;
		memcpy(comm, open_paren + 1, len);
		comm[len] = 0;
	}
	char st = 0;
	int pp = 0;
	if (sscanf(close_paren + 1, " %c %d", &st, &pp) != 2)
		return -1;
	if (state)
		*state = st;
	if (ppid)
		*ppid = pp;
	return 0;
}

char h_proc_state(pid_t pid)
{
	char st;
	if (pid <= 0 || read_stat(pid, NULL, 0, &st, NULL) < 0)
		return 0;
	return st;
}

int h_alive(pid_t pid)
{
	char st = h_proc_state(pid);
	return st != 0 && st != 'Z' && st != 'X';
}

int h_wait_stopped(pid_t pid, int64_t timeout_ns)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ns;
	do {
		if (h_proc_state(pid) == 'T')
			return 0;
		h_sleep_ms(2);
	} while (h_now_ns() < end);
	return -ETIMEDOUT;
}

int h_count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

int h_worker_pids(pid_t *out, int max)
{
	if (H.pid <= 0)
		return 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long p = strtol(e->d_name, &end, 10);
		if (*end || p <= 0)
			continue;
		char comm[64], st;
		pid_t pp;
		if (read_stat((pid_t)p, comm, sizeof comm, &st, &pp) < 0)
			continue;
		if (pp != H.pid || st == 'Z' || st == 'X' || strcmp(comm, "swarm-worker") != 0)
			continue;
		if (n < max)
			out[n] = (pid_t)p;
		n++;
	}
	closedir(d);
	qsort(out, (size_t)(n < max ? n : max), sizeof *out, cmp_pid);
	return n;
}

pid_t h_wait_new_worker(pid_t old, int64_t timeout_ns)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ns;
	do {
		pid_t w[64];
		int n = h_worker_pids(w, 64);
		for (int i = 0; i < n && i < 64; i++)
			if (w[i] != old)
				return w[i];
		h_sleep_ms(10);
	} while (h_now_ns() < end);
	return -1;
}

void h_signal_workers(int sig)
{
	pid_t w[64];
	int n = h_worker_pids(w, 64);
	for (int i = 0; i < n && i < 64; i++)
		kill(w[i], sig);
}

/* ---- children ----------------------------------------------------------------------------- */

pid_t h_fork(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(120);
	/* The guardian must see EOF when the test process dies, whatever its children do. */
	if (H.guard_wfd >= 0)
		close(H.guard_wfd);
	int rc = fn(arg);
	fflush(NULL);
	_exit(rc & 0xff);
}

pid_t h_fork_ready(int (*fn)(void *), void *arg, int *ready_fd, int64_t timeout_ns, int *ready)
{
	int p[2];
	*ready = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*ready_fd = p[1];
	pid_t pid = h_fork(fn, arg);
	close(p[1]);
	*ready_fd = -1;
	if (pid > 0) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		char b;
		*ready = poll(&pf, 1, (int)(timeout_ns / H_MS)) == 1 && read(p[0], &b, 1) == 1;
	}
	close(p[0]);
	return pid;
}

int h_child_wait(pid_t pid, int64_t timeout_ns)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ns;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (h_now_ns() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		h_sleep_ms(5);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 256 + WTERMSIG(status);
	return -EIO;
}

/* ---- swarmd ------------------------------------------------------------------------------- */

void h_print_log(const char *why)
{
	fprintf(stderr, "---- swarmd log (%s): %s ----\n", why, H.log);
	int fd = open(H.log, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "(cannot open: %s)\n", strerror(errno));
		return;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > 16384 ? size - 16384 : 0;
	lseek(fd, from, SEEK_SET);
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
	fprintf(stderr, "---- end of swarmd log ----\n");
}

int h_log_count2(const char *a, const char *b)
{
	FILE *f = fopen(H.log, "r");
	if (!f)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, a) && strstr(line, b);
	fclose(f);
	return n;
}

int h_log_count(const char *needle) { return h_log_count2(needle, ""); }

int h_log_contains(const char *needle)
{
	int fd = open(H.log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n;
	while (buf && (n = read(fd, buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			char *nb = realloc(buf, cap * 2 + 1);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (!buf)
		return 0;
	buf[len] = 0;
	int found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

/* Kills swarmd's process group (swarmd and the workers that stayed in it) and any worker of
 * it that we can still see. Used when things went wrong and at exit. */
static void sweep(void)
{
	if (H.pid > 0) {
		h_signal_workers(SIGKILL);
		kill(-H.pid, SIGKILL);
		kill(H.pid, SIGKILL);
		waitpid(H.pid, NULL, 0);
		H.pid = 0;
	}
	if (H.guard_wfd >= 0) {
		close(H.guard_wfd);
		H.guard_wfd = -1;
	}
	if (H.guard_pid > 0) {
		h_child_wait(H.guard_pid, 2 * H_SEC);
		H.guard_pid = 0;
	}
}

static void at_exit(void)
{
	if (H.owner == getpid())
		sweep();
}

/* The guardian: blocks until the test process closes (or loses) the pipe's write end, then
 * kills swarmd's group. It holds no other fd, so that it keeps no pipe of Criterion's open. */
static void guardian(int rfd, pid_t target)
{
	if (rfd != 3) {
		dup2(rfd, 3);
		rfd = 3;
	}
	close_range(4, ~0u, 0);
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (devnull > 3)
			close(devnull);
	}
	char c;
	while (read(rfd, &c, 1) < 0 && errno == EINTR) {
	}
	kill(-target, SIGKILL);
	kill(target, SIGKILL);
	_exit(0);
}

void h_start(const char *devices, const char *const *extra)
{
	cr_assert_eq(H.pid, 0, "h_start: swarmd %d already running", (int)H.pid);
	if (!H.atexit_done) {
		atexit(at_exit);
		H.atexit_done = 1;
	}
	H.owner = getpid();
	snprintf(H.dir, sizeof H.dir, "/tmp/swarm-e2e-XXXXXX");
	cr_assert_not_null(mkdtemp(H.dir), "mkdtemp: %s", strerror(errno));
	snprintf(H.sock, sizeof H.sock, "%s/swarmd.sock", H.dir);
	snprintf(H.log, sizeof H.log, "%s/swarmd.log", H.dir);

	const char *argv[32];
	int argc = 0;
	argv[argc++] = SWARM_BIN_DIR "/swarmd";
	argv[argc++] = "--socket";
	argv[argc++] = H.sock;
	if (devices) {
		argv[argc++] = "--devices";
		argv[argc++] = devices;
	}
	for (int i = 0; extra && extra[i] && argc < 31; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;

	cr_assert_eq(access(argv[0], X_OK), 0, "%s is not executable: %s", argv[0],
		     strerror(errno));

	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int lfd = open(H.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (lfd < 0 || nfd < 0)
			_exit(127);
		dup2(nfd, 0);
		dup2(lfd, 1);
		dup2(lfd, 2);
		/* swarmd must hold none of the test process's fds (Criterion's pipes, the
		 * guardian's pipe): one it kept open would outlive the test. */
		close_range(3, ~0u, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	setpgid(pid, pid); /* also in the child: whichever runs first */
	H.pid = pid;

	int p[2];
	if (pipe2(p, O_CLOEXEC) == 0) {
		pid_t g = fork();
		if (g == 0) {
			close(p[1]);
			guardian(p[0], pid);
		}
		close(p[0]);
		if (g > 0) {
			H.guard_pid = g;
			H.guard_wfd = p[1];
		} else {
			close(p[1]);
		}
	}

	uint64_t end = h_now_ns() + 10 * H_SEC;
	for (;;) {
		/* the kv line, or the JSON object of --log-format json */
		if (h_log_contains("event=ready") || h_log_contains("\"event\":\"ready\""))
			break;
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			H.pid = 0;
			sweep();
			h_print_log("swarmd exited before event=ready");
			cr_assert_fail("swarmd exited before ready: %s %d",
				       WIFEXITED(status) ? "exit status" : "signal",
				       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		}
		if (h_now_ns() >= end) {
			h_print_log("no event=ready within 10 s");
			sweep();
			cr_assert_fail("swarmd (%s) not ready within 10 s",
				       devices ? devices : "default devices");
		}
		h_sleep_ms(20);
	}
}

/* Stops swarmd (see h_stop). Returns 0, or -1 with why filled in (the log printed). */
static int stop_impl(char *why, size_t why_len)
{
	why[0] = 0;
	if (H.pid <= 0 || H.owner != getpid())
		return 0;
	pid_t workers[64];
	int nw = h_worker_pids(workers, 64);
	if (nw > 64)
		nw = 64;
	/* A test that failed may have left a worker stopped: it must be able to exit. */
	for (int i = 0; i < nw; i++)
		kill(workers[i], SIGCONT);
	kill(H.pid, SIGTERM);
	uint64_t end = h_now_ns() + 10 * H_SEC;
	int status = 0, exited = 0;
	while (h_now_ns() < end) {
		pid_t r = waitpid(H.pid, &status, WNOHANG);
		if (r == H.pid) {
			exited = 1;
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
		h_sleep_ms(10);
	}
	pid_t d = H.pid;
	if (!exited) {
		h_print_log("swarmd ignored SIGTERM");
		sweep();
		snprintf(why, why_len, "swarmd %d did not exit within 10 s of SIGTERM", (int)d);
		return -1;
	}
	H.pid = 0;
	/* Its workers go with it. */
	int left = 0;
	pid_t stray = 0;
	uint64_t wend = h_now_ns() + 3 * H_SEC;
	do {
		left = 0;
		for (int i = 0; i < nw; i++)
			if (h_alive(workers[i])) {
				left++;
				stray = workers[i];
			}
		if (!left)
			break;
		h_sleep_ms(10);
	} while (h_now_ns() < wend);
	for (int i = 0; i < nw; i++)
		if (h_alive(workers[i]))
			kill(workers[i], SIGKILL);
	kill(-d, SIGKILL);
	if (H.guard_wfd >= 0) {
		close(H.guard_wfd);
		H.guard_wfd = -1;
	}
	if (H.guard_pid > 0) {
		h_child_wait(H.guard_pid, 2 * H_SEC);
		H.guard_pid = 0;
	}
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	/* A sanitizer build's report in swarmd's or a worker's stderr is a failure too (a
	 * worker that crashed this way is restarted, and the test would not see it). */
	int sanitizer = h_log_contains("ERROR: AddressSanitizer") ||
			h_log_contains("ERROR: LeakSanitizer") || h_log_contains("runtime error:");
	if (!ok || left || sanitizer)
		h_print_log("after SIGTERM");
	if (!ok) {
		snprintf(why, why_len, "swarmd exit after SIGTERM: %s %d (expected exit status 0)",
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -1;
	}
	if (left) {
		snprintf(why, why_len,
			 "%d worker(s) (e.g. pid %d) still alive 3 s after swarmd exited", left,
			 (int)stray);
		return -1;
	}
	if (sanitizer) {
		snprintf(why, why_len, "a sanitizer reported an error in swarmd's log %s", H.log);
		return -1;
	}
	/* Remove the temporary directory when all went well (kept for a post-mortem else, or
	 * when SWARM_E2E_KEEP is set). */
	if (getenv("SWARM_E2E_KEEP")) {
		fprintf(stderr, "swarmd log kept: %s\n", H.log);
		return 0;
	}
	unlink(H.sock);
	unlink(H.log);
	rmdir(H.dir);
	return 0;
}

void h_stop(void)
{
	char why[256];
	if (stop_impl(why, sizeof why) < 0)
		cr_assert_fail("%s", why);
}

void h_teardown(void)
{
	char why[256];
	if (stop_impl(why, sizeof why) < 0)
		fprintf(stderr, "teardown (the test had already failed): %s\n", why);
	sweep();
}

/* ---- sessions ----------------------------------------------------------------------------- */

int h_connect(swarm_client **out)
{
	uint64_t end = h_now_ns() + 5 * H_SEC;
	int rc;
	for (;;) {
		*out = NULL;
		rc = swarm_connect(H.sock, out);
		if (rc == 0 || (rc != -ECONNREFUSED && rc != -ENOENT && rc != -EAGAIN) ||
		    h_now_ns() >= end)
			return rc;
		h_sleep_ms(20);
	}
}

swarm_client *h_connect_or_fail(void)
{
	swarm_client *c = NULL;
	int rc = h_connect(&c);
	if (rc)
		h_print_log("connect failed");
	cr_assert_eq(rc, 0, "swarm_connect(%s): %d (%s)", h_socket(), rc, swarm_strerror(rc));
	return c;
}

swarm_session_opts h_identity_opts(void)
{
	swarm_session_opts o = { .slots = 8, .queue_depth = 8, .max_rows = 64 };
	return o;
}

void h_pattern(uint8_t *buf, size_t len, uint64_t tag)
{
	uint64_t x = tag * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = i == 0 ? tag : (i == 8 ? ~tag : x);
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t n = len - i < 8 ? len - i : 8;
		memcpy(buf + i, &w, n);
	}
}

int h_identity_roundtrip(swarm_session *s, uint32_t rows, uint64_t tag, int64_t timeout_ns)
{
	swarm_request *r;
	int rc = swarm_request_alloc(s, rows, &r);
	if (rc)
		return rc;
	uint8_t *in = swarm_request_input(r, 0);
	if (!in) {
		swarm_request_release(r);
		return -EFAULT;
	}
	size_t bytes = (size_t)rows * 64;
	h_pattern(in, bytes, tag);
	rc = swarm_request_submit(r, 0);
	if (rc) {
		swarm_request_release(r);
		return rc;
	}
	rc = swarm_request_wait(r, timeout_ns);
	if (rc == -ETIMEDOUT && swarm_request_poll(r) == -EAGAIN)
		return rc; /* still in flight: the slot cannot be released */
	if (rc == 0) {
		const uint8_t *out = swarm_request_output(r, 0);
		uint8_t *exp = malloc(bytes);
		if (!out || !exp) {
			rc = -EFAULT;
		} else {
			h_pattern(exp, bytes, tag);
			if (memcmp(out, exp, bytes) != 0) {
				size_t i = 0;
				while (i < bytes && out[i] == exp[i])
					i++;
				fprintf(stderr,
					"identity mismatch: tag %llu rows %u byte %zu: got 0x%02x "
					"want 0x%02x\n",
					(unsigned long long)tag, rows, i, out[i], exp[i]);
				rc = H_EMISMATCH;
			}
		}
		free(exp);
	}
	swarm_request_release(r);
	return rc;
}

float h_affine_x(uint32_t seed, uint64_t k)
{
	uint64_t h = (uint64_t)seed * 0x9E3779B97F4A7C15ull + k * 0xBF58476D1CE4E5B9ull;
	h ^= h >> 31;
	h *= 0x94D049BB133111EBull;
	h ^= h >> 29;
	int v = (int)(h % 4000u) - 2000; /* -2000..1999 */
	if (v == 0)
		v = 3;
	return (float)v * 0.125f;
}

void h_affine_fill(float *x, uint32_t rows, uint32_t seed)
{
	for (uint64_t k = 0; k < (uint64_t)rows * 16; k++)
		x[k] = h_affine_x(seed, k);
}

int64_t h_affine_check(const float *y, uint32_t rows, uint32_t seed)
{
	for (uint64_t k = 0; k < (uint64_t)rows * 16; k++) {
		float want = 2.0f * h_affine_x(seed, k) + 1.0f;
		if (y[k] != want)
			return (int64_t)k;
	}
	return -1;
}

int h_affine_roundtrip(swarm_session *s, uint32_t rows, uint32_t seed, int64_t timeout_ns)
{
	swarm_request *r;
	int rc = swarm_request_alloc(s, rows, &r);
	if (rc)
		return rc;
	float *x = swarm_request_input(r, 0);
	if (!x) {
		swarm_request_release(r);
		return -EFAULT;
	}
	h_affine_fill(x, rows, seed);
	rc = swarm_request_submit(r, 0);
	if (rc) {
		swarm_request_release(r);
		return rc;
	}
	rc = swarm_request_wait(r, timeout_ns);
	if (rc == -ETIMEDOUT && swarm_request_poll(r) == -EAGAIN)
		return rc;
	if (rc == 0) {
		const float *y = swarm_request_output(r, 0);
		int64_t bad = y ? h_affine_check(y, rows, seed) : 0;
		if (bad >= 0) {
			fprintf(stderr,
				"affine mismatch: seed %u rows %u element %lld: x %g y %g "
				"want %g\n",
				seed, rows, (long long)bad, (double)h_affine_x(seed, (uint64_t)bad),
				y ? (double)y[bad] : 0.0,
				2.0 * h_affine_x(seed, (uint64_t)bad) + 1.0);
			rc = H_EMISMATCH;
		}
	}
	swarm_request_release(r);
	return rc;
}

int h_open_working(swarm_client *c, const char *model, const swarm_session_opts *opts,
		   swarm_session **out, int64_t timeout_ns)
{
	uint64_t end = h_now_ns() + (uint64_t)timeout_ns;
	int rc;
	uint32_t tries = 0;
	*out = NULL;
	for (;;) {
		swarm_session *s = NULL;
		rc = swarm_session_open(c, model, 0, opts, &s);
		if (rc == 0) {
			int64_t left = (int64_t)(end - h_now_ns());
			if (left < 100 * H_MS)
				left = 100 * H_MS;
			if (strcmp(model, "affine") == 0)
				rc = h_affine_roundtrip(s, 1, 77 + tries, left);
			else
				rc = h_identity_roundtrip(s, 1, 77 + tries, left);
			if (rc == 0) {
				*out = s;
				return 0;
			}
			swarm_session_close(s);
		}
		tries++;
		if (h_now_ns() >= end)
			return rc;
		h_sleep_ms(50);
	}
}

/* ---- hostile view of a segment ---------------------------------------------------------- */

static int memfd_candidates(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	int n = 0, self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		char link[256];
		ssize_t l = readlinkat(self, e->d_name, link, sizeof link - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (strncmp(link, "/memfd:swarm-session", 20) == 0 && n < max)
			fds[n++] = fd;
	}
	closedir(d);
	return n;
}

static int map_fd(int fd, void **base, size_t *bytes)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size < sizeof(struct swarm_seg_header))
		return -EINVAL;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*base = p;
	*bytes = (size_t)st.st_size;
	return 0;
}

int h_seg_find(uint64_t session_id, struct h_seg *out)
{
	int fds[256];
	int n = memfd_candidates(fds, 256);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		void *base = NULL;
		size_t bytes = 0;
		if (map_fd(fds[i], &base, &bytes) < 0)
			continue;
		struct swarm_seg_header *hdr = base;
		if (hdr->magic == SWARM_SEG_MAGIC && hdr->session_id == session_id) {
			out->fd = fds[i];
			out->base = base;
			out->bytes = bytes;
			out->hdr = hdr;
			memcpy(&out->geo, &hdr->geo, sizeof out->geo);
			out->sq = (uint64_t *)((char *)base + out->geo.sq_offset);
			return 0;
		}
		munmap(base, bytes);
	}
	return -ENOENT;
}

int h_seg_fd(uint64_t session_id)
{
	struct h_seg seg;
	int rc = h_seg_find(session_id, &seg);
	if (rc)
		return rc;
	int fd = seg.fd;
	h_seg_unmap(&seg);
	return fd;
}

void h_seg_unmap(struct h_seg *seg)
{
	if (seg->base)
		munmap(seg->base, seg->bytes);
	seg->base = NULL;
	seg->hdr = NULL;
	seg->sq = NULL;
}

uint32_t h_seg_state(const struct h_seg *seg)
{
	return __atomic_load_n(&seg->hdr->state.v, __ATOMIC_ACQUIRE);
}

void h_kick_eventfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char link[256];
		ssize_t l = readlinkat(self, e->d_name, link, sizeof link - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (strcmp(link, "anon_inode:[eventfd]") == 0) {
			uint64_t one = 1;
			ssize_t w = write(atoi(e->d_name), &one, sizeof one);
			(void)w;
		}
	}
	closedir(d);
}

/* ---- an honest client ------------------------------------------------------------------- */

int h_honest_client(void *args)
{
	const struct h_honest_args *a = args;
	swarm_client *c;
	int rc = h_connect(&c);
	if (rc) {
		fprintf(stderr, "honest client %d: connect: %d (%s)\n", (int)getpid(), rc,
			swarm_strerror(rc));
		return 2;
	}
	swarm_session_opts o = h_identity_opts();
	swarm_session *s;
	rc = h_open_working(c, "identity", &o, &s, 5 * H_SEC);
	if (rc) {
		fprintf(stderr, "honest client %d: open: %d (%s)\n", (int)getpid(), rc,
			swarm_strerror(rc));
		swarm_disconnect(c);
		return 3;
	}
	if (a->ready_fd >= 0) {
		char one = 1;
		ssize_t w = write(a->ready_fd, &one, 1);
		(void)w;
	}
	uint64_t end = h_now_ns() + (uint64_t)a->duration_ns;
	uint64_t n = 0;
	int result = 0;
	while (h_now_ns() < end) {
		uint32_t rows = 1 + (uint32_t)(n % 64);
		rc = h_identity_roundtrip(s, rows, a->tag_base + n, 5 * H_SEC);
		if (rc) {
			fprintf(stderr, "honest client %d: request %llu (rows %u): %d (%s)\n",
				(int)getpid(), (unsigned long long)n, rows, rc,
				rc == H_EMISMATCH ? "output mismatch" : swarm_strerror(rc));
			result = 4;
			break;
		}
		n++;
	}
	if (result == 0 && n == 0)
		result = 5;
	fprintf(stderr, "honest client %d: %llu correct round trips\n", (int)getpid(),
		(unsigned long long)n);
	swarm_session_close(s);
	swarm_disconnect(c);
	return result;
}

/* ---- clients under load ----------------------------------------------------------------- */

/* For h_fork: one affine session with H_LOAD_PIPELINE requests always in flight for duration_ns,
 * each with its own input; every completion is checked against its own input and reported
 * once (swarm_session_poll); a request is never seen twice, and none is lost. Prints a
 * summary line; returns 0 when every request completed once with the right output. */
int h_load_client(void *argp)
{
	struct h_load_args *a = argp;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	if (h_connect(&c) || h_open_working(c, "affine", NULL, &s, 10 * H_SEC)) {
		fprintf(stderr, "load client %u: cannot open\n", a->seed);
		return 2;
	}
	if (a->ready_fd >= 0) {
		char b = 1;
		if (write(a->ready_fd, &b, 1) != 1)
			return 3;
	}
	struct slot {
		swarm_request *r;
		uint32_t seed;
	} fl[H_LOAD_PIPELINE] = { 0 };
	uint64_t start = h_now_ns(), end = start + (uint64_t)a->duration_ns;
	uint32_t next = a->seed * 1000003u, submitted = 0, completed = 0, aborted = 0;
	/* With a trace: the next arrival, from start (SIM_NEVER once there is none). */
	struct swarm_sim_trace tr;
	struct swarm_sim_gen gen;
	uint64_t arrival = 0;
	if (a->trace) {
		char err[256];
		if (swarm_sim_trace_parse(a->trace, &tr, err, sizeof err)) {
			fprintf(stderr, "load client %u: trace: %s\n", a->seed, err);
			return 11;
		}
		swarm_sim_gen_init(&gen, &tr, a->seed, (double)a->duration_ns / 1e9);
		arrival = swarm_sim_gen_next(&gen);
	}
	int code = 0;
	for (;;) {
		int busy = 0;
		for (int k = 0; k < H_LOAD_PIPELINE; k++) {
			if (fl[k].r) {
				busy++;
				continue;
			}
			if (a->trace) {
				if (arrival == UINT64_MAX || h_now_ns() - start < arrival)
					continue;
				arrival = swarm_sim_gen_next(&gen);
			} else if (h_now_ns() >= end) {
				continue;
			}
			if (swarm_request_alloc(s, 1, &fl[k].r)) {
				fl[k].r = NULL;
				continue;
			}
			fl[k].seed = next++;
			h_affine_fill(swarm_request_input(fl[k].r, 0), 1, fl[k].seed);
			uint32_t flags = a->no_retry_every && fl[k].seed % (uint32_t)a->no_retry_every == 0 ?
						 SWARM_REQUEST_NO_RETRY :
						 0;
			int rc = swarm_request_submit(fl[k].r, flags);
			if (rc) {
				fprintf(stderr, "load client %u: submit: %s\n", a->seed, swarm_strerror(rc));
				return 4;
			}
			submitted++;
			busy++;
		}
		if (!busy && a->trace && arrival != UINT64_MAX) {
			/* Nothing in flight: sleep to the next arrival (spin the last 100 us). */
			uint64_t at = start + arrival, now = h_now_ns();
			if (at > now + 100000)
				h_sleep_ms((int)((at - now - 100000) / 1000000));
			continue;
		}
		if (!busy)
			break;
		swarm_request *done[H_LOAD_PIPELINE];
		int n = swarm_session_poll(s, done, H_LOAD_PIPELINE);
		if (n < 0) {
			fprintf(stderr, "load client %u: poll: %s\n", a->seed, swarm_strerror(n));
			return 5;
		}
		if (n == 0) {
			/* Sleep on the first request in flight, bounded: a lost one shows here. */
			for (int k = 0; k < H_LOAD_PIPELINE; k++)
				if (fl[k].r) {
					int rc = swarm_request_wait(fl[k].r, 10 * H_SEC);
					if (rc == -ETIMEDOUT) {
						fprintf(stderr, "load client %u: request %u never "
								"completed\n",
							a->seed, fl[k].seed);
						return 6;
					}
					break;
				}
			continue;
		}
		for (int i = 0; i < n; i++) {
			int k = 0;
			while (k < H_LOAD_PIPELINE && fl[k].r != done[i])
				k++;
			if (k == H_LOAD_PIPELINE) {
				fprintf(stderr, "load client %u: a completion of no request in flight\n",
					a->seed);
				return 7;
			}
			int rc = swarm_request_poll(done[i]);
			if (rc == -ECONNABORTED && a->no_retry_every &&
			    fl[k].seed % (uint32_t)a->no_retry_every == 0) {
				aborted++; /* opted out, and its worker died: allowed */
			} else if (rc) {
				fprintf(stderr, "load client %u: request %u failed: %d (%s)\n", a->seed,
					fl[k].seed, rc, swarm_strerror(rc));
				code = 8;
			} else if (h_affine_check(swarm_request_output(done[i], 0), 1, fl[k].seed) >= 0) {
				fprintf(stderr, "load client %u: request %u has a wrong output\n",
					a->seed, fl[k].seed);
				code = 9;
			}
			completed++;
			swarm_request_release(done[i]);
			fl[k].r = NULL;
		}
	}
	fprintf(stderr, "load client %u: %u submitted, %u completed (%u opted out and aborted)\n",
		a->seed, submitted, completed, aborted);
	if (a->trace)
		swarm_sim_trace_free(&tr);
	if (completed != submitted)
		code = 10;
	swarm_session_close(s);
	swarm_disconnect(c);
	return code;
}

/* Starts n load clients and waits until each has a working session. */
static void start_load(pid_t *pids, struct h_load_args *args, int n, int64_t duration_ns,
		       int no_retry_every, const char *trace)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	for (int i = 0; i < n; i++) {
		args[i] = (struct h_load_args){ duration_ns, (uint32_t)(i + 1), fds[1],
						no_retry_every, trace };
		pids[i] = h_fork(h_load_client, &args[i]);
	}
	for (int i = 0; i < n; i++) {
		char b;
		cr_assert_eq(read(fds[0], &b, 1), 1, "a load client died before its first request");
	}
	close(fds[0]);
	close(fds[1]);
}

void h_start_load(pid_t *pids, struct h_load_args *args, int n, int64_t duration_ns,
		  int no_retry_every)
{
	start_load(pids, args, n, duration_ns, no_retry_every, NULL);
}

void h_start_load_trace(pid_t *pids, struct h_load_args *args, int n, int64_t duration_ns,
			const char *trace)
{
	start_load(pids, args, n, duration_ns, 0, trace);
}

void h_wait_load_or_fail(pid_t *pids, int n, const char *when)
{
	for (int i = 0; i < n; i++) {
		int rc = h_child_wait(pids[i], 60 * H_SEC);
		if (rc)
			h_print_log(when);
		cr_assert_eq(rc, 0, "%s: load client %d exited %d", when, i + 1, rc);
	}
}

long h_status_batches(void)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/swarm status --socket '%s' --json", SWARM_BIN_DIR,
		 h_socket());
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f, "popen %s: %s", cmd, strerror(errno));
	char out[16384];
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = 0;
	pclose(f);
	const char *at = strstr(out, "\"batches\": ");
	cr_assert_not_null(at, "no batches in: %s", out);
	return atol(at + strlen("\"batches\": "));
}

json_t *h_status(void)
{
	static char out[1 << 17];
	const char *argv[] = {
		SWARM_BIN_DIR "/swarm", "status", "--socket", h_socket(), "--json", NULL
	};
	int rc = h_run(argv, out, sizeof out);
	cr_assert_eq(rc, 0, "swarm status exited %d: %s", rc, out);
	json_error_t e;
	json_t *j = json_loads(out, 0, &e);
	cr_assert_not_null(j, "status JSON: %s: %s", e.text, out);
	return j;
}

json_t *h_device_memory(json_t *st, int i)
{
	json_t *mem = json_object_get(json_array_get(json_object_get(st, "devices"), (size_t)i),
				      "memory");
	cr_assert(json_is_object(mem), "device %d has no memory object", i);
	return mem;
}

uint64_t h_num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_integer(v), "%s is not an integer", key);
	return (uint64_t)json_integer_value(v);
}

json_t *h_resident(json_t *st, int i, const char *model)
{
	json_t *models = json_object_get(h_device_memory(st, i), "models"), *m;
	size_t k;
	json_array_foreach(models, k, m)
	{
		if (!strcmp(json_string_value(json_object_get(m, "name")), model))
			return m;
	}
	return NULL;
}

int h_run(const char *const *argv, char *out, size_t len)
{
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	size_t got = 0;
	for (ssize_t r; got + 1 < len && (r = read(pipefd[0], out + got, len - 1 - got)) > 0;)
		got += (size_t)r;
	out[got] = 0;
	close(pipefd[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
}

/* ---- a registry of the test's own ------------------------------------------------------------ */

void h_registry_make(const char *tag, char *work, size_t work_len, char *reg, size_t reg_len)
{
	snprintf(work, work_len, "/tmp/swarm-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(work), "mkdtemp %s: %s", work, strerror(errno));
	snprintf(reg, reg_len, "%s/registry", work);
	char err[512];
	cr_assert_eq(swarm_registry_init(reg, err, sizeof err), 0, "registry init: %s", err);
}

void h_registry_remove(const char *work)
{
	h_teardown();
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
	if (!work[0] || system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", work);
}

/* ---- the e2e suites' MLP ------------------------------------------------------------------- */

void h_mlp_make(struct h_mlp *m, uint32_t seed, float offset)
{
	float *all[4] = { m->w1, m->b1, m->w2, m->b2 };
	size_t sizes[4] = { 32 * 16, 32, 4 * 32, 4 };
	for (int t = 0; t < 4; t++)
		for (size_t i = 0; i < sizes[t]; i++) {
			seed = seed * 1103515245u + 12345u;
			all[t][i] = (float)((int)(seed >> 16) % 2001 - 1000) / 1000.0f + offset;
		}
}

void h_mlp_publish(const struct h_mlp *m, const char *reg, const char *dir, const char *name,
		   const char *inputs_json, const char *outputs_json, const char *extra_nodes,
		   const char *deploy_json)
{
	int64_t s_w1[2] = { 32, 16 }, s_b1[1] = { 32 }, s_w2[2] = { 4, 32 }, s_b2[1] = { 4 };
	struct swarm_st_write_tensor t[4] = {
		{ .name = "w1", .dtype = SWARM_ST_F32, .ndim = 2, .shape = s_w1, .data = m->w1 },
		{ .name = "b1", .dtype = SWARM_ST_F32, .ndim = 1, .shape = s_b1, .data = m->b1 },
		{ .name = "w2", .dtype = SWARM_ST_F32, .ndim = 2, .shape = s_w2, .data = m->w2 },
		{ .name = "b2", .dtype = SWARM_ST_F32, .ndim = 1, .shape = s_b2, .data = m->b2 },
	};
	char weights[512], manifest[512], err[512];
	snprintf(weights, sizeof weights, "%s/%s.safetensors", dir, name);
	snprintf(manifest, sizeof manifest, "%s/%s.json", dir, name);
	cr_assert_eq(swarm_st_write(weights, t, 4), 0, "write %s", weights);
	FILE *f = fopen(manifest, "w");
	cr_assert_not_null(f, "%s: %s", manifest, strerror(errno));
	fprintf(f,
		"{\"format\": 1,\n \"inputs\": %s,\n \"outputs\": %s,\n"
		" \"graph\": {\"nodes\": [\n"
		"   {\"op\": \"linear\", \"inputs\": [\"x\", \"w1\", \"b1\"], \"output\": \"h\","
		" \"act\": \"relu\"},\n"
		"   {\"op\": \"linear\", \"inputs\": [\"h\", \"w2\", \"b2\"], \"output\": \"y\"}%s]},\n"
		" \"weights\": [{\"name\": \"w1\", \"dtype\": \"f32\", \"shape\": [32, 16]},\n"
		"             {\"name\": \"b1\", \"dtype\": \"f32\", \"shape\": [32]},\n"
		"             {\"name\": \"w2\", \"dtype\": \"f32\", \"shape\": [4, 32]},\n"
		"             {\"name\": \"b2\", \"dtype\": \"f32\", \"shape\": [4]}],\n"
		" \"deploy\": %s}\n",
		inputs_json, outputs_json, extra_nodes, deploy_json);
	fclose(f);
	uint32_t v = 0;
	int rc = swarm_registry_publish(reg, name, weights, manifest, NULL, 0, 1, &v, err,
					sizeof err);
	cr_assert_eq(rc, 0, "publish %s: %s", name, err);
}

void h_mlp_reference(const struct h_mlp *m, const float *x, double y[4])
{
	double h[32];
	for (int j = 0; j < 32; j++) {
		double a = m->b1[j];
		for (int k = 0; k < 16; k++)
			a += (double)x[k] * m->w1[j * 16 + k];
		h[j] = a > 0 ? a : 0;
	}
	for (int j = 0; j < 4; j++) {
		double a = m->b2[j];
		for (int k = 0; k < 32; k++)
			a += h[k] * m->w2[j * 32 + k];
		y[j] = a;
	}
}
