/* fuzz_worker_ctl.c: libFuzzer target for the worker's control handlers (worker_ctl_handle,
 * runtime/worker/ctl.c). One worker is set up once without swarmd (worker_init_bare) and
 * each input is a sequence of records, each one message with the descriptors its first byte
 * asks for:
 *     u8   fds: 0 none; 1 what an ATTACH carries: a sealed memfd (sized as the message's
 *          geometry says when it reads as an ATTACH, at most 64 MiB) and two eventfds;
 *          2 three descriptors of the wrong kind (/dev/null); 3 one memfd, as an offer's
 *     u16  len, little-endian: the message's bytes that follow (fewer where the input ends)
 *     len  bytes
 * After each message the worker serves a pass and runs the batches that are due, as its loop
 * would, swarmd's end of the socket is drained, and the worker's books are checked: every
 * active session in its table, every version's references those of its sessions and its
 * preload. After each input, what the worker holds for others (sessions, preloads, offers)
 * is let go, and every descriptor the input made must be closed: nothing leaks from one
 * input into the next, and LeakSanitizer sees what a handler leaked.
 *
 * The seeds in tests/fuzz/corpus/worker_ctl/ are written by gen_worker_ctl_corpus.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz/records.h"
#include "runtime/log.h"
#include "runtime/worker/worker.h"

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_worker_ctl.c:%d: invariant failed: %s\n", line, what);
	abort();
}
#define CHECK(cond) ((cond) ? (void)0 : fail(#cond, __LINE__))

#define SEGMENT_MAX (64ull << 20)

static struct worker W;
static int peer = -1; /* swarmd's end of the control socket */
static int baseline_fds;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

/* A new control socket pair: the worker's end in W.ctl, swarmd's in peer. */
static void connect_peer(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
	CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
	W.ctl = sv[0];
	peer = sv[1];
}

static void set_up(void)
{
	/* Quiet unless asked (SWARM_FUZZ_LOG=debug shows what each seed does). */
	const char *level = getenv("SWARM_FUZZ_LOG");
	int l = level ? swarm_log_parse_level(level) : -1;
	swarm_log_init("worker", l < 0 ? SWARM_LOG_ERROR : (enum swarm_log_level)l);
	CHECK(worker_init_bare(&W, -1) == 0);
	connect_peer();
	baseline_fds = count_fds();
}

/* A sealed memfd of bytes bytes, as swarmd makes a segment. */
static int make_memfd(uint64_t bytes)
{
	int fd = memfd_create("fuzz-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)bytes) == 0);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
	return fd;
}

/* The descriptors mode asks for, for the message msg of n bytes. Returns their count. */
static int make_fds(uint8_t mode, const uint8_t *msg, size_t n, int *fds)
{
	switch (mode % 4) {
	case 1: {
		uint64_t bytes = 4096;
		struct swarm_msg_attach a;
		if (n == sizeof a) {
			memcpy(&a, msg, sizeof a);
			bytes = a.geo.segment_bytes;
			if (bytes < 4096 || bytes > SEGMENT_MAX)
				bytes = 4096;
		}
		fds[0] = make_memfd(bytes);
		fds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		fds[2] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		CHECK(fds[1] >= 0 && fds[2] >= 0);
		return 3;
	}
	case 2:
		for (int i = 0; i < 3; i++)
			CHECK((fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
		return 3;
	case 3:
		fds[0] = make_memfd(4096);
		return 1;
	default:
		return 0;
	}
}

/* Reads and drops whatever the worker sent, closing descriptors that came with it. */
static void drain_peer(void)
{
	for (;;) {
		uint8_t buf[SWARM_MSG_MAX_BYTES];
		int fds[SWARM_MSG_MAX_FDS], nfds = SWARM_MSG_MAX_FDS;
		int n = swarm_msg_recv(peer, buf, sizeof buf, fds, &nfds);
		if (n <= 0)
			return;
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

/* The worker's books: the dense list and the table agree, and each version's references are
 * its sessions' and its preload's. */
static void check_books(void)
{
	CHECK(W.n_sessions <= SWARM_WORKER_MAX_SESSIONS);
	for (uint32_t i = 0; i < W.n_sessions; i++) {
		struct session *s = W.active[i];
		CHECK(s && s->pos == i && s->index < SWARM_WORKER_MAX_SESSIONS);
		CHECK(W.sessions[s->index] == s);
	}
	for (struct version *v = W.versions; v; v = v->next) {
		uint32_t users = 0, slots = 0;
		for (uint32_t i = 0; i < W.n_sessions; i++)
			if (W.active[i]->version == v) {
				users++;
				slots += W.active[i]->geo.nslots;
			}
		CHECK(v->refs == users + (v->preloaded ? 1 : 0));
		CHECK(v->max_batch <= 1 || v->q_need == slots);
		CHECK(v->q_n == 0 || v->q_n <= v->q_cap);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (peer < 0)
		set_up();
	uint8_t mode;
	const uint8_t *msg;
	size_t len;
	while (fuzz_next_record(&data, &size, &mode, &msg, &len)) {
		int fds[SWARM_MSG_MAX_FDS];
		int nfds = make_fds(mode, msg, len, fds);
		worker_ctl_handle(&W, msg, len, fds, nfds);
		int64_t wait_ns = -1;
		serve_all(&W);
		run_batches(&W, &wait_ns);
		check_books();
		if (W.ctl >= 0)
			drain_peer();
	}
	worker_release(&W);
	check_books();
	CHECK(W.n_sessions == 0 && W.versions == NULL);
	if (W.ctl < 0) { /* the worker took swarmd for gone: a new one */
		close(peer);
		connect_peer();
	}
	drain_peer();
	W.stop = 0;
	int fds_now = count_fds();
	if (fds_now != baseline_fds) {
		fprintf(stderr, "descriptors: %d after the input, %d before\n", fds_now,
			baseline_fds);
		abort();
	}
	return 0;
}
