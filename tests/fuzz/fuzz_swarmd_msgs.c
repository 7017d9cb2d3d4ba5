/* fuzz_swarmd_msgs.c: libFuzzer target for swarmd's message handlers, the client protocol's
 * (ctl_client_message) and the workers' (sup_worker_message), driven without a daemon: two
 * CPU devices whose "workers" are socketpairs this target drains, two client connections on
 * socketpairs, the built-in models, no registry.
 *
 * An input is a sequence of records: [kind: 1 byte][len: 2 bytes, little endian][len bytes].
 * kind bit 0: 0 a client message (bit 1 picks the connection), 1 a worker message (bit 1
 * picks the device); bit 7 set: the header's magic, ABI and length are made valid (the type
 * and the rest stay the fuzzer's), so that the handlers behind the check are reached often.
 * A worker message's session id below 16 names the session at that place in swarmd's list.
 *
 * After each input the state returns to its start: every session freed, the connections gone
 * (their sessions let go as when a client dies), the workers' sockets drained. A crash, a
 * sanitizer report, or a leak (LeakSanitizer at exit) is a finding.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/log.h"
#include "fuzz/records.h"
#include "runtime/swarmd/swarmd.h"

struct swarmd_config cfg;
struct swarmd d;

/* main.c's loop is not linked: watching is a no-op here, the handlers are called directly. */
int swarmd_watch(int fd, struct watch *w)
{
	(void)fd;
	w->tag = 1;
	return 0;
}

void swarmd_unwatch(int fd, struct watch *w)
{
	(void)fd;
	w->tag = 0;
}

int swarmd_watch_out(int fd, struct watch *w, int on)
{
	(void)fd;
	(void)w;
	(void)on;
	return 0;
}

void swarmd_again(struct watch *w) { (void)w; }

#define N_DEV 2
static int worker_end[N_DEV]; /* the fake workers' ends of the control sockets */

static void drain(int fd)
{
	char buf[70000];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

static void drain_workers(void)
{
	for (int i = 0; i < N_DEV; i++) {
		drain(worker_end[i]);
		/* what waited in swarmd's outbox goes now that there is room */
		sup_worker_writable(&d.dev[i]);
		drain(worker_end[i]);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char *args[] = { "swarmd",      "--registry", "/nonexistent/swarm-fuzz",
			 "--log-level", "error",      NULL };
	if (swarmd_options(5, args))
		abort();
	/* SWARM_FUZZ_LOG=1 shows swarmd's log, to see what an input reaches */
	const char *log = getenv("SWARM_FUZZ_LOG");
	swarm_log_init("swarmd", log && *log == '1' ? SWARM_LOG_DEBUG : SWARM_LOG_ERROR);
	swarm_wshare_init(&d.shares);
	if (swarm_topology_load(NULL, &d.topo))
		abort();
	struct swarm_device_plan plan[N_DEV];
	if (swarm_topology_plan_cpu(d.topo, N_DEV, plan, N_DEV) != N_DEV)
		abort();
	d.n_dev = N_DEV;
	for (int i = 0; i < N_DEV; i++) {
		struct device *dv = &d.dev[i];
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
			abort();
		dv->index = i;
		dv->plan = plan[i];
		dv->gpu = -1;
		dv->ctl = sv[0];
		dv->ctl_w.kind = W_DEV_CTL;
		dv->pid_w.kind = W_DEV_PID;
		dv->pidfd = -1;
		dv->pid = 0; /* no process: an unresponsive "worker" is never killed */
		dv->state = SWARM_DEVICE_ACTIVE;
		dv->stats_fd = swarm_stats_create(&dv->stats);
		if (dv->stats_fd < 0)
			abort();
		worker_end[i] = sv[1];
	}
	d.ready = 1;
	cfg.lim.per_client = 64;
	return 0;
}

static struct conn *connect_client(int *peer)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
		abort();
	struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct conn *c = ctl_adopt(sv[0], &cred, 1);
	if (!c)
		abort();
	/* not an admin: `swarm device resume` would fork a worker, which a fuzzer must not (the
	 * refusal path is fuzzed; the admin path is the e2e suites') */
	c->admin = 0;
	*peer = sv[1];
	return c;
}

/* Makes the header valid but for its type. */
static void fix_header(uint8_t *msg, size_t len)
{
	if (len < sizeof(struct swarm_msg_hdr))
		return;
	struct swarm_msg_hdr h;
	memcpy(&h, msg, sizeof h);
	h.magic = SWARM_PROTO_MAGIC;
	h.abi = SWARM_ABI_VERSION;
	h.len = (uint32_t)len;
	memcpy(msg, &h, sizeof h);
}

/* A worker message's small session id names a session in the list. */
static void map_session(uint8_t *msg, size_t len)
{
	const size_t at = sizeof(struct swarm_msg_hdr);
	uint64_t id;
	if (len < at + sizeof id)
		return;
	memcpy(&id, msg + at, sizeof id);
	if (id >= 16)
		return;
	struct session *s = d.sessions;
	for (uint64_t k = 0; s && k < id; k++)
		s = s->next;
	if (s)
		memcpy(msg + at, &s->id, sizeof s->id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int peer[2];
	struct conn *conn[2] = { connect_client(&peer[0]), connect_client(&peer[1]) };
	uint8_t msg[66000], kind;
	const uint8_t *rec;
	size_t len;
	while (fuzz_next_record(&data, &size, &kind, &rec, &len)) {
		memcpy(msg, rec, len);
		if (kind & 0x80)
			fix_header(msg, len);
		int which = (kind >> 1) & 1;
		if (kind & 1) {
			map_session(msg, len);
			sup_worker_message(&d.dev[which], msg, (int)len, NULL, 0);
		} else if (conn[which]) {
			if (ctl_client_message(conn[which], msg, (int)len))
				conn[which] = NULL; /* it was closed: the protocol was broken */
			drain(peer[which]);
		}
		drain_workers();
	}
	/* Back to the start: the clients go (their sessions let go as when a client dies),
	 * then whatever a worker still held is freed, as swarmd does at shut-down. */
	for (int i = 0; i < 2; i++) {
		if (conn[i])
			ctl_client_gone(conn[i]);
		close(peer[i]);
	}
	sessions_free_all();
	drain_workers();
	for (int i = 0; i < N_DEV; i++) {
		struct device *dv = &d.dev[i];
		dv->state = SWARM_DEVICE_ACTIVE;
		dv->parking = 0;
		dv->sessions = 0;
	}
	return 0;
}
