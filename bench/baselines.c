/* baselines.c: the reference transports of bench/swarm-bench, each measured in the same run
 * as the runtime so that a noisy, shared machine moves both sides of every ratio together.
 *
 * The latency baselines are two processes (fork) that ping-pong a 64-byte payload: through one
 * cache line each way with both sides spinning, through shared futex words with both sides
 * sleeping, through a unix socketpair and through TCP on loopback. The parent initiates every
 * round trip and times it; the child only echoes. Shared state lives in a MAP_SHARED |
 * MAP_ANONYMOUS mapping made before the fork. Every wait is bounded (BENCH_STALL_NS), so a
 * child that died or hung turns into -ETIMEDOUT rather than a hung benchmark.
 */
#include "bench/baselines.h"

#include <errno.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/* The longest any single wait may take before the peer is declared dead or hung. */
#define BENCH_STALL_NS (5ull * 1000 * 1000 * 1000)

/* Lines written by different processes sit 128 bytes apart: the adjacent-line prefetcher of
 * many x86 cores pulls lines in pairs, which would make two "private" lines share traffic. */
#define BENCH_LINE_GAP 128

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- child processes ----------------------------------------------------------------------- */

typedef int (*bench_child_fn)(void *arg);

static int bench_peer_cpu = -1;

void bench_set_peer_cpu(int cpu) { bench_peer_cpu = cpu; }

int bench_pin_self(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) < 0 ? -errno : 0;
}

/* Forks a child that runs fn(arg) and _exits with its result (0 on success). The child dies
 * with the parent. */
static int bench_child_spawn(bench_child_fn fn, void *arg, pid_t *out)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL); /* nothing buffered may be written twice */
	pid = fork();
	if (pid < 0) {
		int err = -errno;
		fprintf(stderr, "swarm-bench: fork: %s\n", strerror(-err));
		return err;
	}
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent ||
		    bench_pin_self(bench_peer_cpu) != 0)
			_exit(2);
		_exit(fn(arg) == 0 ? 0 : 1);
	}
	*out = pid;
	return 0;
}

/* Reaps the child, killing it first when kill_first is set (the parent failed). Returns 0 when
 * the child exited with 0 (or was killed on purpose), -ECHILD when it failed. */
static int bench_child_reap(pid_t pid, bool kill_first, const char *what)
{
	int status;

	if (kill_first)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			int err = -errno;
			fprintf(stderr, "swarm-bench: %s: waitpid: %s\n", what, strerror(-err));
			return err;
		}
	}
	if (kill_first)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "swarm-bench: %s: child killed by signal %d\n", what,
			WTERMSIG(status));
	else
		fprintf(stderr, "swarm-bench: %s: child exited with %d\n", what,
			WEXITSTATUS(status));
	return -ECHILD;
}

static void *bench_shared_map(size_t len, const char *what)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "swarm-bench: %s: mmap of %zu bytes: %s\n", what, len,
			strerror(errno));
		return NULL;
	}
	return p;
}

/* ---- cache-line ping-pong ------------------------------------------------------------------ */

/* The 64-byte payload; its first 8 bytes are the sequence number the reader spins on. */
struct bench_line {
	uint64_t seq;
	uint8_t body[BENCH_PAYLOAD_BYTES - sizeof(uint64_t)];
};
_Static_assert(sizeof(struct bench_line) == BENCH_PAYLOAD_BYTES, "one payload, one line");

struct bench_cl_shared {
	_Alignas(BENCH_LINE_GAP) struct bench_line ping; /* written by the parent only */
	_Alignas(BENCH_LINE_GAP) struct bench_line pong; /* written by the child only */
};

struct bench_cl_arg {
	struct bench_cl_shared *sh;
	uint64_t rounds;
};

/* Spins until *seq == want. Returns 0, or -ETIMEDOUT after BENCH_STALL_NS. */
static int bench_spin_until(const uint64_t *seq, uint64_t want)
{
	uint64_t deadline = 0;

	for (uint64_t n = 1;; n++) {
		/* Pairs with the release store of seq in bench_line_send: the body is visible. */
		if (__atomic_load_n(seq, __ATOMIC_ACQUIRE) == want)
			return 0;
		bench_cpu_relax();
		if ((n & 0xffff) == 0) {
			uint64_t now = bench_now_ns();
			if (deadline == 0)
				deadline = now + BENCH_STALL_NS;
			else if (now > deadline)
				return -ETIMEDOUT;
		}
	}
}

/* Copies msg into line: the body first, then the sequence number with a release store. */
static inline void bench_line_send(struct bench_line *line, const struct bench_line *msg)
{
	memcpy(line->body, msg->body, sizeof(line->body));
	/* Pairs with the acquire load in bench_spin_until on the other side. */
	__atomic_store_n(&line->seq, msg->seq, __ATOMIC_RELEASE);
}

static int bench_cl_child(void *argp)
{
	struct bench_cl_arg *arg = argp;
	struct bench_line msg;

	for (uint64_t seq = 1; seq <= arg->rounds; seq++) {
		if (bench_spin_until(&arg->sh->ping.seq, seq) != 0)
			return -ETIMEDOUT;
		memcpy(&msg, &arg->sh->ping, sizeof(msg));
		bench_line_send(&arg->sh->pong, &msg);
	}
	return 0;
}

static void bench_payload_fill(uint8_t *body, size_t len, uint64_t seq)
{
	for (size_t i = 0; i < len; i++)
		body[i] = (uint8_t)(seq * 31 + i);
}

int bench_baseline_cacheline(size_t warmup, size_t iters, uint64_t *out_ns)
{
	const char *what = "cache-line ping-pong";
	struct bench_cl_arg arg = { .rounds = warmup + iters };
	struct bench_line msg, reply;
	pid_t pid = -1;
	int err;

	arg.sh = bench_shared_map(sizeof(*arg.sh), what);
	if (!arg.sh)
		return -ENOMEM;
	err = bench_child_spawn(bench_cl_child, &arg, &pid);
	if (err)
		goto err_unmap;

	for (uint64_t seq = 1; seq <= arg.rounds; seq++) {
		uint64_t t0, t1;

		msg.seq = seq;
		bench_payload_fill(msg.body, sizeof(msg.body), seq);
		t0 = bench_now_ns();
		bench_line_send(&arg.sh->ping, &msg);
		err = bench_spin_until(&arg.sh->pong.seq, seq);
		memcpy(&reply, &arg.sh->pong, sizeof(reply));
		t1 = bench_now_ns();
		if (err) {
			fprintf(stderr, "swarm-bench: %s: no echo of round %llu in 5 s\n", what,
				(unsigned long long)seq);
			goto err_kill;
		}
		if (memcmp(&reply, &msg, sizeof(msg)) != 0) {
			fprintf(stderr, "swarm-bench: %s: round %llu echoed other bytes\n", what,
				(unsigned long long)seq);
			err = -EBADMSG;
			goto err_kill;
		}
		if (seq > warmup)
			out_ns[seq - warmup - 1] = t1 - t0;
	}
	err = bench_child_reap(pid, false, what);
	munmap(arg.sh, sizeof(*arg.sh));
	return err;

err_kill:
	bench_child_reap(pid, true, what);
err_unmap:
	munmap(arg.sh, sizeof(*arg.sh));
	return err;
}

/* ---- futex ping-pong ----------------------------------------------------------------------- */

struct bench_fx_shared {
	_Alignas(BENCH_LINE_GAP) uint32_t ping_seq; /* futex word, written by the parent only */
	_Alignas(BENCH_LINE_GAP) uint32_t pong_seq; /* futex word, written by the child only */
	_Alignas(BENCH_LINE_GAP) uint8_t ping[BENCH_PAYLOAD_BYTES];
	_Alignas(BENCH_LINE_GAP) uint8_t pong[BENCH_PAYLOAD_BYTES];
};

struct bench_fx_arg {
	struct bench_fx_shared *sh;
	uint32_t rounds;
};

/* Shared futexes (not _PRIVATE): the two sides are different processes. */
static long bench_futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

/* Publishes seq in *word and wakes the one waiter there, if any. */
static void bench_futex_post(uint32_t *word, uint32_t seq)
{
	/* Pairs with the acquire load in bench_futex_wait_for: the payload is visible. */
	__atomic_store_n(word, seq, __ATOMIC_RELEASE);
	bench_futex(word, FUTEX_WAKE, 1, NULL);
}

/* Sleeps until *word == want, without spinning. Returns 0, -ETIMEDOUT after BENCH_STALL_NS,
 * or another negative errno from futex. */
static int bench_futex_wait_for(uint32_t *word, uint32_t want)
{
	const struct timespec slice = { .tv_sec = 1, .tv_nsec = 0 };
	uint64_t deadline = 0;

	for (;;) {
		/* Pairs with the release store in bench_futex_post. */
		uint32_t cur = __atomic_load_n(word, __ATOMIC_ACQUIRE);

		if (cur == want)
			return 0;
		/* The kernel sleeps only while *word still equals cur, so a post that lands
		 * between the load and the call is never lost. */
		if (bench_futex(word, FUTEX_WAIT, cur, &slice) != 0 && errno != EAGAIN &&
		    errno != EINTR && errno != ETIMEDOUT)
			return -errno;
		if (deadline == 0)
			deadline = bench_now_ns() + BENCH_STALL_NS;
		else if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
	}
}

static int bench_fx_child(void *argp)
{
	struct bench_fx_arg *arg = argp;
	uint8_t buf[BENCH_PAYLOAD_BYTES];

	for (uint32_t seq = 1; seq <= arg->rounds; seq++) {
		if (bench_futex_wait_for(&arg->sh->ping_seq, seq) != 0)
			return -ETIMEDOUT;
		memcpy(buf, arg->sh->ping, sizeof(buf));
		memcpy(arg->sh->pong, buf, sizeof(buf));
		bench_futex_post(&arg->sh->pong_seq, seq);
	}
	return 0;
}

int bench_baseline_futex(size_t warmup, size_t iters, uint64_t *out_ns)
{
	const char *what = "futex ping-pong";
	struct bench_fx_arg arg;
	uint8_t msg[BENCH_PAYLOAD_BYTES], reply[BENCH_PAYLOAD_BYTES];
	pid_t pid = -1;
	int err;

	if (warmup + iters > UINT32_MAX - 1)
		return -EINVAL;
	arg.rounds = (uint32_t)(warmup + iters);
	arg.sh = bench_shared_map(sizeof(*arg.sh), what);
	if (!arg.sh)
		return -ENOMEM;
	err = bench_child_spawn(bench_fx_child, &arg, &pid);
	if (err)
		goto err_unmap;

	for (uint32_t seq = 1; seq <= arg.rounds; seq++) {
		uint64_t t0, t1;

		bench_payload_fill(msg, sizeof(msg), seq);
		t0 = bench_now_ns();
		memcpy(arg.sh->ping, msg, sizeof(msg));
		bench_futex_post(&arg.sh->ping_seq, seq);
		err = bench_futex_wait_for(&arg.sh->pong_seq, seq);
		memcpy(reply, arg.sh->pong, sizeof(reply));
		t1 = bench_now_ns();
		if (err) {
			fprintf(stderr, "swarm-bench: %s: round %u: %s\n", what, seq,
				strerror(-err));
			goto err_kill;
		}
		if (memcmp(reply, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "swarm-bench: %s: round %u echoed other bytes\n", what,
				seq);
			err = -EBADMSG;
			goto err_kill;
		}
		if (seq > warmup)
			out_ns[seq - warmup - 1] = t1 - t0;
	}
	err = bench_child_reap(pid, false, what);
	munmap(arg.sh, sizeof(*arg.sh));
	return err;

err_kill:
	bench_child_reap(pid, true, what);
err_unmap:
	munmap(arg.sh, sizeof(*arg.sh));
	return err;
}

/* ---- socket echoes ------------------------------------------------------------------------- */

/* Reads exactly len bytes. Returns len, 0 on end of file before the first byte, or a negative
 * errno (-EPIPE when the stream ends inside the message, -EAGAIN on SO_RCVTIMEO). */
static ssize_t bench_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return got == 0 ? 0 : -EPIPE;
		got += (size_t)n;
	}
	return (ssize_t)len;
}

static int bench_write_full(int fd, const void *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + put, len - put);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		put += (size_t)n;
	}
	return 0;
}

/* The child's side of both socket baselines: echo 64-byte messages until end of file. */
static int bench_echo_loop(int fd)
{
	uint8_t buf[BENCH_PAYLOAD_BYTES];

	for (;;) {
		ssize_t n = bench_read_full(fd, buf, sizeof(buf));

		if (n == 0)
			return 0;
		if (n < 0 || bench_write_full(fd, buf, sizeof(buf)) != 0)
			return -EIO;
	}
}

/* The parent's side: warmup + iters timed round trips on fd. */
static int bench_ping_loop(int fd, size_t warmup, size_t iters, uint64_t *out_ns, const char *what)
{
	const struct timeval tv = { .tv_sec = BENCH_STALL_NS / 1000000000ull, .tv_usec = 0 };
	uint8_t msg[BENCH_PAYLOAD_BYTES], reply[BENCH_PAYLOAD_BYTES];

	/* A bound on every read, so that a dead child cannot hang the benchmark. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		int err = -errno;
		fprintf(stderr, "swarm-bench: %s: SO_RCVTIMEO: %s\n", what, strerror(-err));
		return err;
	}
	for (size_t i = 0; i < warmup + iters; i++) {
		uint64_t t0, t1;
		ssize_t n;
		int err;

		bench_payload_fill(msg, sizeof(msg), i);
		t0 = bench_now_ns();
		err = bench_write_full(fd, msg, sizeof(msg));
		n = err ? err : bench_read_full(fd, reply, sizeof(reply));
		t1 = bench_now_ns();
		if (n <= 0) {
			err = n == 0 ? -EPIPE : (int)n;
			fprintf(stderr, "swarm-bench: %s: round %zu: %s\n", what, i,
				err == -EAGAIN ? "no echo in 5 s" : strerror(-err));
			return err;
		}
		if (memcmp(reply, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "swarm-bench: %s: round %zu echoed other bytes\n", what, i);
			return -EBADMSG;
		}
		if (i >= warmup)
			out_ns[i - warmup] = t1 - t0;
	}
	return 0;
}

/* argp: both ends of the socketpair; the child closes the parent's, or it would never see
 * end of file. */
static int bench_unix_child(void *argp)
{
	const int *sv = argp;

	close(sv[0]);
	return bench_echo_loop(sv[1]);
}

int bench_baseline_unix(size_t warmup, size_t iters, uint64_t *out_ns)
{
	const char *what = "unix socket echo";
	int sv[2];
	pid_t pid;
	int err;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		err = -errno;
		fprintf(stderr, "swarm-bench: %s: socketpair: %s\n", what, strerror(-err));
		return err;
	}
	err = bench_child_spawn(bench_unix_child, sv, &pid);
	close(sv[1]); /* the child's end; the child holds its own copy */
	if (err) {
		close(sv[0]);
		return err;
	}
	err = bench_ping_loop(sv[0], warmup, iters, out_ns, what);
	close(sv[0]); /* end of file: the child's echo loop returns */
	if (err) {
		bench_child_reap(pid, true, what);
		return err;
	}
	return bench_child_reap(pid, false, what);
}

static int bench_tcp_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 ? 0 : -errno;
}

struct bench_tcp_arg {
	int listen_fd;
	struct sockaddr_in addr;
};

static int bench_tcp_child(void *argp)
{
	struct bench_tcp_arg *arg = argp;
	int fd, err;

	close(arg->listen_fd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&arg->addr, sizeof(arg->addr)) != 0 ||
	    bench_tcp_nodelay(fd) != 0) {
		err = -errno;
		close(fd);
		return err;
	}
	err = bench_echo_loop(fd);
	close(fd);
	return err;
}

int bench_baseline_tcp(size_t warmup, size_t iters, uint64_t *out_ns)
{
	const char *what = "tcp loopback echo";
	struct bench_tcp_arg arg = { .listen_fd = -1 };
	socklen_t alen = sizeof(arg.addr);
	struct pollfd pfd;
	int fd = -1;
	pid_t pid = -1;
	int err;

	arg.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (arg.listen_fd < 0) {
		err = -errno;
		fprintf(stderr, "swarm-bench: %s: socket: %s\n", what, strerror(-err));
		return err;
	}
	arg.addr.sin_family = AF_INET;
	arg.addr.sin_port = 0; /* ephemeral */
	arg.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(arg.listen_fd, (const struct sockaddr *)&arg.addr, sizeof(arg.addr)) != 0 ||
	    listen(arg.listen_fd, 1) != 0 ||
	    getsockname(arg.listen_fd, (struct sockaddr *)&arg.addr, &alen) != 0) {
		err = -errno;
		fprintf(stderr, "swarm-bench: %s: listen on 127.0.0.1: %s\n", what, strerror(-err));
		goto err_close_listen;
	}
	err = bench_child_spawn(bench_tcp_child, &arg, &pid);
	if (err)
		goto err_close_listen;

	pfd = (struct pollfd){ .fd = arg.listen_fd, .events = POLLIN };
	err = poll(&pfd, 1, (int)(BENCH_STALL_NS / 1000000));
	if (err <= 0) {
		err = err == 0 ? -ETIMEDOUT : -errno;
		fprintf(stderr, "swarm-bench: %s: the child did not connect: %s\n", what,
			strerror(-err));
		goto err_kill;
	}
	fd = accept4(arg.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0 || bench_tcp_nodelay(fd) != 0) {
		err = -errno;
		fprintf(stderr, "swarm-bench: %s: accept: %s\n", what, strerror(-err));
		goto err_kill;
	}
	close(arg.listen_fd);
	arg.listen_fd = -1;

	err = bench_ping_loop(fd, warmup, iters, out_ns, what);
	close(fd); /* end of file: the child's echo loop returns */
	fd = -1;
	if (err)
		goto err_kill;
	return bench_child_reap(pid, false, what);

err_kill:
	if (fd >= 0)
		close(fd);
	bench_child_reap(pid, true, what);
err_close_listen:
	if (arg.listen_fd >= 0)
		close(arg.listen_fd);
	return err;
}

/* ---- memcpy bandwidth ---------------------------------------------------------------------- */

int bench_baseline_memcpy(size_t bytes, size_t warmup, size_t iters, double *out_gbps)
{
	uint8_t *src, *dst;
	int err = 0;

	if (bytes == 0)
		return -EINVAL;
	src = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED) {
		err = -errno;
		fprintf(stderr, "swarm-bench: memcpy: mmap of %zu bytes: %s\n", bytes,
			strerror(-err));
		return err;
	}
	dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED) {
		err = -errno;
		fprintf(stderr, "swarm-bench: memcpy: mmap of %zu bytes: %s\n", bytes,
			strerror(-err));
		goto out_src;
	}
	/* Touch every page of both buffers so that no page fault lands in a timed copy. */
	for (size_t i = 0; i < bytes; i++)
		src[i] = (uint8_t)(i * 7 + 1);
	memset(dst, 0, bytes);

	for (size_t i = 0; i < warmup + iters; i++) {
		uint64_t t0, t1;

		src[0] = (uint8_t)i;
		src[bytes - 1] = (uint8_t)(i >> 8);
		t0 = bench_now_ns();
		memcpy(dst, src, bytes);
		/* The copy is the measurement: the compiler may not drop it as a dead store. */
		__asm__ __volatile__("" : : "r"(dst) : "memory");
		t1 = bench_now_ns();
		if (dst[0] != src[0] || dst[bytes - 1] != src[bytes - 1]) {
			fprintf(stderr, "swarm-bench: memcpy: the copy differs at iteration %zu\n",
				i);
			err = -EIO;
			break;
		}
		if (i >= warmup)
			out_gbps[i - warmup] = (double)bytes / (double)(t1 > t0 ? t1 - t0 : 1);
	}
	munmap(dst, bytes);
out_src:
	munmap(src, bytes);
	return err;
}
