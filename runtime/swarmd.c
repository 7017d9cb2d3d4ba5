/* swarmd.c: the control plane. It listens on a unix SOCK_SEQPACKET socket, starts one
 * swarm-worker per device and watches it through a pidfd, creates a sealed segment for every
 * session, puts the session on a device chosen by the balancer, and hands the segment and
 * its eventfds to the client and the worker with SCM_RIGHTS. It never touches a tensor.
 *
 * Failure handling: a client whose socket closes loses its sessions (the worker detaches
 * them, then swarmd frees them); a worker that dies has its sessions marked lost in their
 * segments (their clients' waits return -ECONNABORTED at once) and is restarted; a worker
 * that dies too often is taken out of service. SIGTERM or SIGINT stops everything cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <sched.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "ipc/outbox.h"
#include "ipc/proto.h"
#include "ipc/segment.h"
#include "kernels/builtin.h"
#include "registry/manifest.h"
#include "registry/registry.h"
#include "runtime/autoscaler.h"
#include "runtime/balancer.h"
#include "runtime/fanout.h"
#include "runtime/log.h"
#include "runtime/stats.h"
#include "runtime/topology.h"
#include "runtime/weight_share.h"
#include "swarm/swarm.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#endif

#define MAX_DEVICES SWARM_STATUS_MAX_DEVICES
#define MAX_ALLOW 32
#define OPEN_WAIT_NS 10000000000ull /* an open waits this long for a device to be ready */
#define RESTART_WINDOW_NS 10000000000ull
#define RESTART_LIMIT 5 /* restarts within the window before giving up */
#define STOP_WAIT_MS 5000
#define TICK_MS 100                        /* rebalancing and load smoothing */
#define HOMELESS_WAIT_NS 10000000000ull    /* a session whose worker died waits this long */
#define BUSY_TAU_NS 5000000000ull          /* the busy fraction's EWMA time constant */
#define MOVES_PER_TICK 64
#define MAX_PRELOAD 8               /* --preload models */
#define PRELOAD_SEQ 0x50000000u     /* a LOAD's seq: this plus the preload's index */
#define FANOUT_TIMEOUT_MS 60000     /* a fan-out's collective, every rank */
#define AS_HISTORY 600            /* ticks of demand kept: 60 s */
#define AS_SHORT_NS 6000000000ull /* the autoscaler's short (panic) window */

enum watch_kind {
	W_LISTEN = 1,
	W_SIGNAL,
	W_CONN,
	W_DEV_CTL,
	W_DEV_PID,
	W_REGISTRY,
	W_TIMER,
};

struct watch {
	int kind;
};

enum sess_state {
	S_ATTACHING = 1, /* sent to the worker, waiting for its reply */
	S_ACTIVE,
	S_DETACHING, /* the client closed; waiting for the worker to let go */
	S_LOST,      /* no device can serve it, or it broke the protocol: no worker holds it */
	S_MOVING,    /* the old worker was asked to let go; it then attaches to move_to */
	S_HOMELESS,  /* its worker died: waiting for a device (HOMELESS_WAIT_NS at most) */
};

struct conn {
	struct watch w;
	int fd;
	pid_t pid;
	uid_t uid;
	int numa_node;
	int hello_done;
	int refused; /* SO_PEERCRED said no; answer the hello with -EACCES */
	int admin;   /* may change service for others: root, swarmd's user, --admin-group */
	uint64_t accepted_ns; /* its hello is due within d.hello_timeout_ns of this */
	struct conn *next;
};

struct session {
	uint64_t id;
	struct conn *client; /* NULL once the client has gone */
	uid_t uid;           /* its client's, counted against the user's limits until freed */
	int device;          /* -1 when no worker holds it */
	int count_dev;       /* the device whose load it counts in (its target while it moves),
			      * -1 none (it is going away) */
	int state;
	int reattach;        /* S_ATTACHING: a move, not an open (no OPEN_REPLY) */
	int move_to;         /* S_MOVING: where it goes, -1 to pick again */
	int move_reason;     /* a swarm_move_reason */
	int client_numa;     /* the node of the thread that opened it, -1 unknown */
	uint32_t moves;
	uint32_t recovery_head; /* the submission index the next worker starts at */
	uint64_t move_start_ns;
	uint64_t last_move_ns;
	uint64_t homeless_since_ns;
	struct swarm_seg_geometry geo;
	uint32_t min_devices, max_devices; /* its model's deployment configuration */
	uint32_t latency_p99_us;
	int memfd, sq_efd, cq_efd;
	void *base;
	uint64_t bytes;
	const struct swarm_model_desc *model; /* the graph (a built-in for now) */
	char model_name[SWARM_NAME_MAX];
	uint32_t version;  /* served now */
	int follow;        /* opened by name: follows the model's active version */
	int from_registry; /* weights from the registry, not the built-in's own */
	uint32_t open_seq;
	struct session *next;
};

struct pending_open {
	struct conn *client;
	struct swarm_msg_open msg;
	uint64_t deadline_ns;
	struct pending_open *next;
};

struct device {
	struct watch ctl_w;
	struct watch pid_w;
	int index;
	struct swarm_device_plan plan;
	int gpu; /* the CUDA ordinal its worker drives (--gpu), -1 for a CPU device */
	int state;
	pid_t pid;
	int pidfd;
	int ctl;
	struct swarm_outbox out; /* what waits for ctl to take it: no message is dropped */
	int watch_out;           /* ctl is watched for writability too (out is not empty) */
	int stats_fd;
	struct swarm_worker_stats *stats;
	uint32_t sessions;
	uint32_t restarts;
	uint32_t io_backend;
	uint64_t window_start_ns;
	uint32_t window_restarts;
	int parking;         /* drained: its worker is being stopped, not to be restarted */
	int to_standby;      /* its worker was started as the autoscaler's warm spare */
	uint32_t moves_in;
	float busy;          /* EWMA of the busy fraction (BUSY_TAU_NS) */
	uint64_t busy_ns_last, busy_t_last;
	char mem_policy[48]; /* as its worker read it back from the kernel */
	char bound_cpus[SWARM_CPUS_MAX];
	uint64_t state_since_ns; /* when it entered its state, for the transition logs */
	uint64_t as_requests, as_busy_ns; /* its counters at the last autoscaler tick */
	/* --preload: per preloaded model, where its worker is (a pre_state) and which version
	 * it was asked to load */
	uint8_t pre_state[MAX_PRELOAD];
	uint32_t pre_version[MAX_PRELOAD];
};

enum pre_state { PRE_NONE = 0, PRE_SENT, PRE_DONE, PRE_FAILED };

static struct {
	char socket_path[108];
	char worker_path[PATH_MAX];
	uint64_t spin_us;
	int log_level;
	int epfd;
	struct watch listen_w, signal_w;
	int listen_fd, signal_fd;
	struct swarm_topology *topo;
	struct device dev[MAX_DEVICES];
	int n_dev;
	struct conn *conns;
	struct session *sessions;
	struct pending_open *pending;
	uint64_t next_session_id;
	/* limits per client and per user (0: none), docs/control-plane.md "Limits and trust" */
	struct {
		uint32_t per_client;   /* sessions of one connection (default: half the places) */
		uint32_t per_user;     /* sessions of one uid, all its connections */
		uint64_t session_bytes; /* one session's segment */
		uint64_t user_bytes;   /* the segments of one uid's sessions together (default:
					* half the machine's memory) */
	} lim;
	int lim_client_given, lim_user_bytes_given, lim_conns_user_given;
	uid_t allow_uid[MAX_ALLOW];
	int n_allow_uid; /* swarmd's own uid first, then those of --allow-user */
	gid_t allow_gid[MAX_ALLOW];
	int n_allow_gid;
	gid_t admin_gid[MAX_ALLOW]; /* --admin-group */
	int n_admin_gid;
	uint32_t max_conns, max_conns_per_user; /* 0: no limit */
	uint64_t hello_timeout_ns;
	uint32_t n_conns;
	int reserve_fd;  /* kept open to be given up when accept meets EMFILE */
	int accept_paused; /* no descriptor left even for that: the listener is not watched */
	uint64_t accept_refused_log_ns;
	uint64_t started_ns;
	char registry_dir[PATH_MAX];
	char backend_dir[PATH_MAX];      /* where a manifest's relative backend name is found */
	struct swarm_registry *registry; /* NULL: built-in models only */
	struct watch registry_w;
	int inotify_fd;
	int verify_blobs;
	int ready_logged;
	int stopping;
	int timer_fd;
	struct watch timer_w;
	const char *topo_xml; /* --topology, NULL for this machine */
	uint64_t last_load_move_ns;
	struct swarm_balancer_config bal;
	/* --preload: models every device loads as soon as its worker is ready */
	struct {
		char name[SWARM_NAME_MAX];
		uint32_t version; /* 0: the active one, followed as it changes */
		int unresolved;   /* logged once until it resolves */
	} preload[MAX_PRELOAD];
	int n_preload;
	int instances; /* --instances: workers per device planned (GPU or CPU), 1 by default */
	/* device copies of weights that GPU workers offer to share (weight_share.h) */
	struct swarm_wshare shares;
	/* the autoscaler (--autoscale): demand per tick over AS_HISTORY ticks */
	struct {
		int on;
		uint32_t idle_floor; /* devices kept in service with no session open */
		uint32_t standby;    /* warm spares to keep (--autoscale-standby) */
		struct swarm_as_config cfg;
		struct swarm_as_memory mem;
		uint64_t req[AS_HISTORY], busy_ns[AS_HISTORY];
		uint32_t pos, n;
		uint32_t target;
	} as;
} d;

static int epoll_add(int fd, void *ptr)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };
	return epoll_ctl(d.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void epoll_del(int fd) { epoll_ctl(d.epfd, EPOLL_CTL_DEL, fd, NULL); }

/* ---- the workers' control sockets ------------------------------------------------------------ */

/* Watches dv's control socket for writability as well while its outbox holds messages. */
static void dev_watch_out(struct device *dv, int on)
{
	if (dv->ctl < 0 || dv->watch_out == on)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = &dv->ctl_w };
	if (epoll_ctl(d.epfd, EPOLL_CTL_MOD, dv->ctl, &ev) == 0)
		dv->watch_out = on;
}

/* Sends a message to dv's worker. Nothing is dropped when its socket is full: the message
 * waits in dv's outbox and goes when the socket takes it (handle_worker_writable). A worker
 * that stops reading (SWARM_OUTBOX_MAX messages waiting) is killed, and its death handled as
 * any other. Returns 0 (sent or queued) or -errno (the worker is gone or going). */
static int dev_send(struct device *dv, const void *msg, size_t len, const int *fds, int nfds)
{
	if (dv->ctl < 0)
		return -ENOTCONN;
	int rc = swarm_outbox_send(&dv->out, dv->ctl, msg, len, fds, nfds);
	if (rc == -ENOBUFS && dv->pid > 0) {
		swarm_log(SWARM_LOG_ERROR,
			  "event=worker_unresponsive device=%s pid=%d waiting=%zu reason=\"it "
			  "stopped reading its control socket: killed\"",
			  dv->plan.name, dv->pid, swarm_outbox_pending(&dv->out));
		kill(dv->pid, SIGKILL);
	}
	if (rc == 0 && swarm_outbox_pending(&dv->out))
		dev_watch_out(dv, 1);
	return rc;
}

/* dv's control socket takes messages again: what waits goes. */
static void handle_worker_writable(struct device *dv)
{
	if (dv->ctl < 0)
		return;
	size_t before = swarm_outbox_pending(&dv->out);
	int rc = swarm_outbox_flush(&dv->out, dv->ctl);
	if (rc <= 0)
		dev_watch_out(dv, 0); /* all gone, or the peer is: its pidfd tells */
	if (before >= 64 && rc == 0)
		swarm_log(SWARM_LOG_INFO,
			  "event=worker_backlog_sent device=%s messages=%zu most=%zu",
			  dv->plan.name, before, dv->out.most);
}

/* Closes dv's control socket (its worker is gone or going) and drops what waited for it. */
static void dev_ctl_close(struct device *dv)
{
	if (dv->ctl < 0)
		return;
	epoll_del(dv->ctl);
	close(dv->ctl);
	dv->ctl = -1;
	dv->watch_out = 0;
	swarm_outbox_clear(&dv->out);
}

/* ---- sessions ----------------------------------------------------------------------------- */

static struct swarm_seg_header *hdr(struct session *s) { return s->base; }

/* Wakes the client whichever way it sleeps, so that it looks at its segment. */
static void session_wake(struct session *s)
{
	struct swarm_seg_header *h = hdr(s);
	swarm_fence();
	__atomic_add_fetch(&h->cq_doorbell.v, 1, __ATOMIC_RELEASE);
	swarm_futex_wake(&h->cq_doorbell.v);
	swarm_eventfd_signal(s->cq_efd);
}

/* Marks a session lost in its segment and wakes its client, whichever way it sleeps. */
static void session_mark(struct session *s, uint32_t seg_state)
{
	struct swarm_seg_header *h = hdr(s);
	/* Release pairs with the client's acquire load of state in session_check. */
	__atomic_store_n(&h->state.v, seg_state, __ATOMIC_RELEASE);
	session_wake(s);
}

/* Takes a session out of its device's load as soon as it starts going away, so that the
 * balancer does not count a session that is only waiting for its worker to let go. */
static void session_uncount(struct session *s)
{
	if (s->count_dev >= 0 && d.dev[s->count_dev].sessions)
		d.dev[s->count_dev].sessions--;
	s->count_dev = -1;
}

/* Counts a session in device di's load (a move counts at its target from its start). */
static void session_count(struct session *s, int di)
{
	session_uncount(s);
	s->count_dev = di;
	d.dev[di].sessions++;
}


static void session_free(struct session *s)
{
	for (struct session **p = &d.sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	session_uncount(s);
	munmap(s->base, s->bytes);
	close(s->memfd);
	close(s->sq_efd);
	close(s->cq_efd);
	swarm_log(SWARM_LOG_INFO, "event=session_freed session=%llu", (unsigned long long)s->id);
	free(s);
}

static struct session *session_find(uint64_t id)
{
	for (struct session *s = d.sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void send_reply(int fd, uint16_t type, uint32_t seq, int status, const char *text)
{
	struct swarm_msg_reply r;
	swarm_msg_init(&r.h, type, sizeof r, seq);
	r.status = status;
	r.server_abi = SWARM_ABI_VERSION;
	swarm_copy_str(r.text, sizeof r.text, text);
	swarm_msg_send(fd, &r, sizeof r, NULL, 0);
}

static void send_open_reply(struct conn *c, uint32_t seq, int status, struct session *s,
			    const char *text)
{
	struct swarm_msg_open_reply r;
	swarm_msg_init(&r.h, SWARM_MSG_OPEN_REPLY, sizeof r, seq);
	r.status = status;
	swarm_copy_str(r.text, sizeof r.text, text);
	int fds[3];
	int nfds = 0;
	if (s && status == 0) {
		r.session_id = s->id;
		r.segment_bytes = s->bytes;
		fds[0] = s->memfd;
		fds[1] = s->sq_efd;
		fds[2] = s->cq_efd;
		nfds = 3;
	}
	int err = swarm_msg_send(c->fd, &r, sizeof r, fds, nfds);
	if (err)
		swarm_log(SWARM_LOG_WARN, "event=reply_failed client_pid=%d error=\"%s\"", c->pid,
			  strerror(-err));
}

/* ---- devices and workers -------------------------------------------------------------------- */

static int start_worker(struct device *dv)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	memset(dv->stats, 0, sizeof *dv->stats);
	char idx[16], numa[16], spin[32], gpu[16];
	snprintf(idx, sizeof idx, "%d", dv->index);
	snprintf(gpu, sizeof gpu, "%d", dv->gpu);
	snprintf(numa, sizeof numa, "%d", dv->plan.numa_node);
	snprintf(spin, sizeof spin, "%llu", (unsigned long long)d.spin_us);
	const char *level = d.log_level == SWARM_LOG_DEBUG ? "debug" : "info";
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0) {
		/* Child: the control socket becomes fd 3 and the stats page fd 4; duplicate
		 * above both first so that neither dup2 overwrites the other's source. */
		int a = fcntl(sv[1], F_DUPFD, 10), b = fcntl(dv->stats_fd, F_DUPFD, 10);
		if (a < 0 || b < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0)
			_exit(127);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		const char *argv[32] = {
			"swarm-worker",   "--ctl-fd", "3",      "--stats-fd",  "4",
			"--device-index", idx,        "--name", dv->plan.name, "--cpus",
			dv->plan.cpus,    "--numa",   numa,     "--spin-us",   spin,
			"--log-level",    level
		};
		int argc = 17;
		if (dv->gpu >= 0) {
			argv[argc++] = "--gpu";
			argv[argc++] = gpu;
		}
		if (d.registry) {
			argv[argc++] = "--registry";
			argv[argc++] = d.registry_dir;
		}
		if (!d.verify_blobs)
			argv[argc++] = "--no-verify";
		if (d.backend_dir[0]) {
			argv[argc++] = "--backend-dir";
			argv[argc++] = d.backend_dir;
		}
		argv[argc] = NULL;
		execv(d.worker_path, (char *const *)argv);
		_exit(127);
	}
	close(sv[1]);
	dv->ctl = sv[0];
	dv->pid = pid;
	dv->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	dv->state = SWARM_DEVICE_WARMING;
	dv->state_since_ns = swarm_now_ns();
	memset(dv->pre_state, 0, sizeof dv->pre_state); /* a new worker holds nothing */
	int fl = fcntl(dv->ctl, F_GETFL);
	fcntl(dv->ctl, F_SETFL, fl | O_NONBLOCK);
	if (dv->pidfd < 0 || epoll_add(dv->ctl, &dv->ctl_w) || epoll_add(dv->pidfd, &dv->pid_w)) {
		int err = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return err ? err : -EIO;
	}
	swarm_log(SWARM_LOG_INFO, "event=worker_started device=%s pid=%d cpus=%s numa=%d",
		  dv->plan.name, pid, dv->plan.cpus, dv->plan.numa_node);
	return 0;
}

static void try_pending_opens(void);

static void check_all_ready(void)
{
	if (d.ready_logged)
		return;
	for (int i = 0; i < d.n_dev; i++)
		if (d.dev[i].state == SWARM_DEVICE_WARMING)
			return;
	d.ready_logged = 1;
	swarm_log(SWARM_LOG_INFO, "event=ready socket=%s devices=%d", d.socket_path, d.n_dev);
}

static void worker_died(struct device *dv)
{
	int status = 0;
	waitpid(dv->pid, &status, 0);
	char how[64];
	if (WIFSIGNALED(status))
		snprintf(how, sizeof how, "signal=%d", WTERMSIG(status));
	else
		snprintf(how, sizeof how, "exit=%d", WEXITSTATUS(status));
	epoll_del(dv->pidfd);
	close(dv->pidfd);
	dv->pidfd = -1;
	dev_ctl_close(dv);
	int moving = 0;
	uint64_t now = swarm_now_ns();
	for (struct session *s = d.sessions, *next; s; s = next) {
		next = s->next;
		if (s->device != dv->index)
			continue;
		s->device = -1;
		if (s->state == S_ATTACHING && !s->reattach && s->client) {
			send_open_reply(s->client, s->open_seq, -ECONNABORTED, NULL,
					"the worker died while attaching the session; retry");
			session_free(s);
		} else if (s->state == S_DETACHING || !s->client) {
			session_free(s);
		} else if (s->state != S_LOST) {
			/* It moves on: the dead worker's head is where the next one starts, and
			 * what it took and did not complete the client runs again. */
			session_uncount(s);
			s->state = S_HOMELESS;
			s->homeless_since_ns = now;
			s->move_reason = SWARM_MOVE_EVACUATE;
			s->move_start_ns = now;
			moving++;
		}
	}
	swarm_log(SWARM_LOG_WARN, "event=worker_died device=%s pid=%d %s sessions_moving=%d",
		  dv->plan.name, dv->pid, how, moving);
	/* Its copies are offered no more; workers that mapped them keep them (they hold
	 * references of their own), and the next worker to load a blob uploads it afresh. */
	int dropped = swarm_wshare_drop_exporter(&d.shares, dv->index);
	if (dropped)
		swarm_log(SWARM_LOG_INFO, "event=weights_unshared device=%s copies=%d reason=died",
			  dv->plan.name, dropped);
	dv->pid = -1;
	dv->mem_policy[0] = dv->bound_cpus[0] = 0;
	if (dv->state == SWARM_DEVICE_STANDBY)
		dv->to_standby = 1; /* its replacement is a spare again */
	if (d.stopping) {
		dv->state = SWARM_DEVICE_PARKED;
		return;
	}
	if (dv->parking) {
		dv->parking = 0;
		dv->state = SWARM_DEVICE_PARKED;
		swarm_log(SWARM_LOG_INFO, "event=device_parked device=%s drain_ms=%.1f",
			  dv->plan.name, (double)(now - dv->state_since_ns) / 1e6);
		dv->state_since_ns = now;
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == SWARM_WORKER_EXIT_NO_DEVICE) {
		/* Another start would fail the same way: the worker logged why. */
		dv->state = SWARM_DEVICE_FAILED;
		swarm_log(SWARM_LOG_ERROR,
			  "event=device_failed device=%s reason=\"its worker could not open the "
			  "device (the worker's log says why); not restarted\"",
			  dv->plan.name);
		return;
	}
	if (now - dv->window_start_ns > RESTART_WINDOW_NS) {
		dv->window_start_ns = now;
		dv->window_restarts = 0;
	}
	if (++dv->window_restarts > RESTART_LIMIT) {
		dv->state = SWARM_DEVICE_FAILED;
		swarm_log(SWARM_LOG_ERROR,
			  "event=device_failed device=%s reason=\"worker died %d times in %llus\"",
			  dv->plan.name, RESTART_LIMIT, RESTART_WINDOW_NS / 1000000000ull);
		return;
	}
	dv->restarts++;
	int err = start_worker(dv);
	if (err) {
		dv->state = SWARM_DEVICE_FAILED;
		swarm_log(SWARM_LOG_ERROR, "event=worker_restart_failed device=%s error=\"%s\"",
			  dv->plan.name, strerror(-err));
	}
}

static void rebalance(void);
static void preload_step(void);
static void preload_done(struct device *dv, const struct swarm_msg_loaded *m);
static void let_go(struct session *s);
static void moved(struct session *s, struct device *dv, int status, const char *text);

/* A worker's WEIGHTS_SHARE (with the copy's fd) or WEIGHTS_UNSHARE. The GPU is the one
 * swarmd started the worker on, whatever the message says; the table takes the fd (*nfds 0). */
static void weights_msg(struct device *dv, int type, struct swarm_msg_weights *m, int *fds,
			int *nfds)
{
	m->sha[sizeof m->sha - 1] = 0;
	if (type == SWARM_MSG_WEIGHTS_UNSHARE) {
		if (swarm_wshare_drop(&d.shares, dv->index, m->sha))
			swarm_log(SWARM_LOG_INFO,
				  "event=weights_unshared device=%s sha=%.16s reason=unloaded",
				  dv->plan.name, m->sha);
		return;
	}
	if (*nfds != 1 || dv->gpu < 0 || m->gpu != dv->gpu) {
		swarm_log(SWARM_LOG_WARN,
			  "event=weights_share_refused device=%s sha=%.16s fds=%d gpu=%d "
			  "reason=\"one fd of memory on the worker's own GPU expected\"",
			  dv->plan.name, m->sha, *nfds, m->gpu);
		return;
	}
	*nfds = 0;
	int rc = swarm_wshare_add(&d.shares, dv->gpu, m->sha, m->bytes, m->layout, dv->index,
				  fds[0]);
	/* -EEXIST: another worker's copy is offered already, and stays so. */
	swarm_log(rc && rc != -EEXIST ? SWARM_LOG_WARN : SWARM_LOG_INFO,
		  "event=weights_shared device=%s gpu=%d sha=%.16s bytes=%llu result=%s",
		  dv->plan.name, dv->gpu, m->sha, (unsigned long long)m->bytes,
		  rc == 0 ? "kept" : rc == -EEXIST ? "already_offered" : strerror(-rc));
}

/* Before an ATTACH or SWITCH that makes dv's worker load v: hands it the copy of v's blob
 * that another worker on the same GPU offered, if there is one. The worker maps it instead of
 * copying the blob, or, when it does not fit, loads as ever. */
static void offer_weights(struct device *dv, const struct swarm_msg_version *v)
{
	char sha[sizeof v->weights_sha];
	swarm_copy_str(sha, sizeof sha, v->weights_sha);
	const struct swarm_wshare_entry *e = swarm_wshare_offer(&d.shares, dv->gpu, sha, dv->index);
	if (!e || dv->ctl < 0)
		return;
	struct swarm_msg_weights m;
	swarm_msg_init(&m.h, SWARM_MSG_WEIGHTS_OFFER, sizeof m, 0);
	m.gpu = e->gpu;
	swarm_copy_str(m.sha, sizeof m.sha, sha);
	m.bytes = e->bytes;
	m.layout = e->layout;
	int rc = dev_send(dv, &m, sizeof m, &e->fd, 1);
	swarm_log(rc ? SWARM_LOG_WARN : SWARM_LOG_INFO,
		  "event=weights_offered device=%s from=%s sha=%.16s result=%s", dv->plan.name,
		  d.dev[e->exporter].plan.name, sha, rc ? strerror(-rc) : "sent");
}

static void handle_worker_msg(struct device *dv)
{
	for (;;) {
		union {
			struct swarm_msg_hdr h;
			struct swarm_msg_worker_ready ready;
			struct swarm_msg_attach_reply attach;
			struct swarm_msg_detached detached;
			struct swarm_msg_switched switched;
			struct swarm_msg_loaded loaded;
			struct swarm_msg_weights weights;
		} m;
		int fds[SWARM_MSG_MAX_FDS], nfds = SWARM_MSG_MAX_FDS;
		int n = swarm_msg_recv(dv->ctl, &m, sizeof m, fds, &nfds);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			/* The worker is going; its pidfd tells when it is gone. */
			dev_ctl_close(dv);
			return;
		}
		int type = swarm_msg_check(&m, (size_t)n);
		if (type != SWARM_MSG_WEIGHTS_SHARE) {
			/* Only a share carries an fd; the branches below may skip the end. */
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			nfds = 0;
		}
		if (type == SWARM_MSG_WORKER_READY) {
			m.ready.text[sizeof m.ready.text - 1] = 0;
			/* A device drained while its worker started stays draining. */
			double warm_ms = (double)(swarm_now_ns() - dv->state_since_ns) / 1e6;
			if (dv->to_standby && dv->state == SWARM_DEVICE_WARMING) {
				/* A warm spare: ready, out of service until woken. */
				dv->to_standby = 0;
				dv->state = SWARM_DEVICE_STANDBY;
				dv->state_since_ns = swarm_now_ns();
				swarm_log(SWARM_LOG_INFO,
					  "event=device_standby device=%s warm_ms=%.1f pid=%d",
					  dv->plan.name, warm_ms, dv->pid);
				check_all_ready();
				try_pending_opens();
				preload_step();
				continue;
			}
			if (dv->state != SWARM_DEVICE_DRAINING) {
				dv->state = SWARM_DEVICE_ACTIVE;
				dv->state_since_ns = swarm_now_ns();
			}
			dv->as_requests = 0;
			dv->as_busy_ns = 0;
			dv->io_backend = m.ready.io_backend;
			swarm_copy_str(dv->mem_policy, sizeof dv->mem_policy, m.ready.mem_policy);
			swarm_copy_str(dv->bound_cpus, sizeof dv->bound_cpus, m.ready.cpus);
			dv->busy = 0.0f;
			dv->busy_ns_last = swarm_stat_get(&dv->stats->busy_ns);
			dv->busy_t_last = swarm_now_ns();
			swarm_log(SWARM_LOG_INFO,
				  "event=device_active device=%s warm_ms=%.1f pid=%d cpus=%s numa=%d "
				  "io=%s bind=\"%s\"",
				  dv->plan.name, warm_ms, dv->pid, dv->plan.cpus, dv->plan.numa_node,
				  m.ready.io_backend == 1 ? "io_uring" : "epoll", m.ready.text);
			check_all_ready();
			try_pending_opens();
			rebalance();
			preload_step();
		} else if (type == SWARM_MSG_LOADED) {
			preload_done(dv, &m.loaded);
		} else if (type == SWARM_MSG_ATTACH_REPLY) {
			struct session *s = session_find(m.attach.session_id);
			if (!s || s->state != S_ATTACHING)
				continue;
			if (s->reattach) {
				m.attach.text[sizeof m.attach.text - 1] = 0;
				moved(s, dv, m.attach.status, m.attach.text);
				continue;
			}
			if (m.attach.status) {
				if (s->client) {
					char text[SWARM_MSG_TEXT_MAX + 32];
					m.attach.text[sizeof m.attach.text - 1] = 0;
					snprintf(text, sizeof text,
						 "the worker refused the session: %s",
						 m.attach.text);
					send_open_reply(s->client, s->open_seq, m.attach.status,
							NULL, text);
				}
				session_free(s);
			} else if (!s->client) {
				/* The client left while we attached: let the worker go. */
				struct swarm_msg_detach dm;
				swarm_msg_init(&dm.h, SWARM_MSG_DETACH, sizeof dm, 0);
				dm.session_id = s->id;
				s->state = S_DETACHING;
				dev_send(dv, &dm, sizeof dm, NULL, 0);
			} else {
				s->state = S_ACTIVE;
				__atomic_store_n(&hdr(s)->state.v, SWARM_SEG_STATE_ACTIVE,
						 __ATOMIC_RELEASE);
				send_open_reply(s->client, s->open_seq, 0, s, "");
			}
		} else if (type == SWARM_MSG_SWITCHED) {
			struct session *s = session_find(m.switched.session_id);
			m.switched.text[sizeof m.switched.text - 1] = 0;
			if (!s)
				continue;
			if (m.switched.status) {
				swarm_log(SWARM_LOG_WARN,
					  "event=switch_failed session=%llu model=%s version=%u "
					  "reason=\"%s\"",
					  (unsigned long long)s->id, s->model_name,
					  m.switched.version, m.switched.text);
				continue;
			}
			s->version = m.switched.version;
			struct swarm_seg_header *h = hdr(s);
			/* A seqlock: odd while the fields change. The release increments pair
			 * with the client's acquire loads in swarm_session_info_get. */
			__atomic_add_fetch(&h->placement_gen, 1, __ATOMIC_RELEASE);
			__atomic_store_n(&h->model_version, s->version, __ATOMIC_RELAXED);
			__atomic_add_fetch(&h->placement_gen, 1, __ATOMIC_RELEASE);
			swarm_log(SWARM_LOG_INFO,
				  "event=session_switched session=%llu model=%s version=%u",
				  (unsigned long long)s->id, s->model_name, s->version);
		} else if (type == SWARM_MSG_DETACHED) {
			struct session *s = session_find(m.detached.session_id);
			if (!s)
				continue;
			if (s->state == S_MOVING && m.detached.reason == 0) {
				let_go(s);
				continue;
			}
			if (s->state == S_DETACHING || !s->client) {
				session_free(s);
			} else {
				/* The worker dropped it for breaking the protocol; the segment
				 * already says so. The record stays until the client closes. */
				m.detached.text[sizeof m.detached.text - 1] = 0;
				swarm_log(SWARM_LOG_WARN,
					  "event=session_violation session=%llu client_pid=%d "
					  "reason=\"%s\"",
					  (unsigned long long)s->id, s->client->pid,
					  m.detached.text);
				session_uncount(s);
				s->device = -1;
				s->state = S_LOST;
			}
		} else if (type == SWARM_MSG_WEIGHTS_SHARE || type == SWARM_MSG_WEIGHTS_UNSHARE) {
			weights_msg(dv, type, &m.weights, fds, &nfds);
		} else {
			swarm_log(SWARM_LOG_WARN, "event=worker_bad_message device=%s result=%d",
				  dv->plan.name, type);
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

/* ---- opening sessions ------------------------------------------------------------------------ */

/* The balancer's view of the devices. Every worker serves every model (it loads a version
 * when a session needs it), so has_model is 1 for all. */
static void device_snapshot(struct swarm_balancer_device *snap)
{
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		int state = dv->state;
		if (state == SWARM_DEVICE_ACTIVE && (dv->ctl < 0 || dv->parking))
			state = SWARM_DEVICE_DRAINING; /* its worker is going */
		snap[i] = (struct swarm_balancer_device){
			.state = state,
			.numa_node = dv->plan.numa_node,
			.sessions = dv->sessions,
			.capacity = SWARM_WORKER_MAX_SESSIONS,
			.has_model = 1,
			.queue_depth = __atomic_load_n(&dv->stats->queue_depth, __ATOMIC_RELAXED),
			.busy = dv->busy,
		};
	}
}

static int pick_device(int client_numa)
{
	struct swarm_balancer_device snap[MAX_DEVICES];
	device_snapshot(snap);
	return swarm_balancer_pick(snap, (size_t)d.n_dev, client_numa, swarm_topology_distance,
				   d.topo);
}

static int any_warming(void)
{
	for (int i = 0; i < d.n_dev; i++)
		if (d.dev[i].state == SWARM_DEVICE_WARMING)
			return 1;
	return 0;
}

/* What a session serves: a graph, a version, and where its weights are. */
struct resolved {
	const struct swarm_model_desc *desc;
	char name[SWARM_NAME_MAX];
	uint32_t version;
	int from_registry;
	char weights_sha[72];
	uint64_t weights_bytes;
	uint32_t default_slots;
	uint32_t max_rows;
	uint32_t max_batch; /* dynamic batching: 0 or 1 off (the built-ins' default) */
	uint32_t min_devices, max_devices, latency_p99_us; /* the deployment configuration */
	uint32_t max_queue_delay_us;
	/* the model's tensors: the built-in's, or a node-list manifest's (desc NULL) */
	uint32_t n_inputs, n_outputs;
	swarm_tensor_spec inputs[SWARM_MAX_TENSORS], outputs[SWARM_MAX_TENSORS];
	char manifest_sha[72];
	uint64_t manifest_bytes;
};

/* Reads and parses a manifest blob. Returns 0 or -errno with a message. */
static int read_manifest(const char *sha, struct swarm_manifest *m, char *text, size_t len)
{
	char path[PATH_MAX];
	if (swarm_registry_blob_path(d.registry_dir, sha, path, sizeof path))
		return -ENAMETOOLONG;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(text, len, "manifest blob %s: %s; run `swarm registry verify`", sha,
			 strerror(e));
		return -e;
	}
	char *buf = malloc(SWARM_MANIFEST_MAX_BYTES);
	size_t n = buf ? fread(buf, 1, SWARM_MANIFEST_MAX_BYTES, f) : 0;
	fclose(f);
	int rc = buf ? swarm_manifest_parse(buf, n, m, text, len) : -ENOMEM;
	free(buf);
	return rc;
}

/* Finds what name@version means: the registry's model first, else a built-in. */
static int resolve_model(const char *name, uint32_t version, struct resolved *r, char *text,
			 size_t len)
{
	memset(r, 0, sizeof *r);
	swarm_copy_str(r->name, sizeof r->name, name);
	if (d.registry) {
		swarm_registry_refresh(d.registry);
		struct swarm_reg_model rm;
		if (swarm_registry_find_model(d.registry, name, &rm) == 0) {
			struct swarm_reg_version rv;
			if (swarm_registry_find_version(d.registry, name, version, &rv)) {
				if (version)
					snprintf(text, len,
						 "model %s has no version %u; `swarm registry show "
						 "%s` lists its versions",
						 name, version, name);
				else
					snprintf(text, len,
						 "model %s has no active version; `swarm registry "
						 "activate %s@N` sets one",
						 name, name);
				return -ENOENT;
			}
			struct swarm_manifest *m = malloc(sizeof *m);
			int rc = m ? read_manifest(rv.manifest_sha, m, text, len) : -ENOMEM;
			if (rc) {
				free(m);
				return rc;
			}
			int custom = m->graph.n_nodes || m->graph_backend[0];
			r->desc = custom ? NULL : swarm_builtin_find(m->graph_builtin, 0);
			if (!custom && !r->desc) {
				snprintf(text, len,
					 "model %s@%u names graph %s, which this swarmd lacks",
					 name, rv.version, m->graph_builtin);
				free(m);
				return -ENOENT;
			}
			r->n_inputs = m->n_inputs;
			r->n_outputs = m->n_outputs;
			memcpy(r->inputs, m->inputs, sizeof r->inputs);
			memcpy(r->outputs, m->outputs, sizeof r->outputs);
			free(m);
			swarm_copy_str(r->manifest_sha, sizeof r->manifest_sha, rv.manifest_sha);
			r->manifest_bytes = rv.manifest_bytes;
			r->version = rv.version;
			r->from_registry = 1;
			swarm_copy_str(r->weights_sha, sizeof r->weights_sha, rv.weights_sha);
			r->weights_bytes = rv.weights_bytes;
			r->default_slots = rv.deploy.slots ? rv.deploy.slots : 8;
			r->max_batch = rv.deploy.max_batch;
			r->min_devices = rv.deploy.min_devices;
			r->max_devices = rv.deploy.max_devices;
			r->latency_p99_us = rv.deploy.latency_p99_us;
			r->max_queue_delay_us = rv.deploy.max_queue_delay_us;
			uint32_t cap = r->desc ? r->desc->max_rows : 1u << 20;
			r->max_rows = rv.deploy.max_rows && rv.deploy.max_rows < cap ?
					      rv.deploy.max_rows :
					      cap;
			return 0;
		}
	}
	r->desc = swarm_builtin_find(name, version);
	if (!r->desc) {
		snprintf(text, len,
			 "no model \"%s\"%s in the registry%s or among the built-in models "
			 "(identity, affine); `swarm registry list` shows the registry's",
			 name, version ? " at that version" : "", d.registry ? "" : " (none open)");
		return -ENOENT;
	}
	r->version = r->desc->version;
	/* A built-in model may use every device: they are for tests and benchmarks. */
	r->min_devices = 1;
	r->max_devices = MAX_DEVICES;
	r->default_slots = r->desc->default_slots;
	r->max_rows = r->desc->max_rows;
	r->n_inputs = r->desc->n_inputs;
	r->n_outputs = r->desc->n_outputs;
	memcpy(r->inputs, r->desc->inputs, sizeof r->inputs);
	memcpy(r->outputs, r->desc->outputs, sizeof r->outputs);
	return 0;
}

static void fill_version(struct swarm_msg_version *v, const struct resolved *r)
{
	v->builtin_id = r->desc ? r->desc->id : 0; /* 0: the manifest's node list */
	swarm_copy_str(v->manifest_sha, sizeof v->manifest_sha, r->manifest_sha);
	v->manifest_bytes = r->manifest_bytes;
	v->version = r->version;
	swarm_copy_str(v->model, sizeof v->model, r->name);
	swarm_copy_str(v->weights_sha, sizeof v->weights_sha, r->weights_sha);
	v->weights_bytes = r->weights_bytes;
	v->max_batch = r->max_batch;
	v->max_queue_delay_us = r->max_queue_delay_us;
}

/* ---- --preload and the NCCL fan-out (docs/devices.md, "NCCL fan-out") -------------------- */

/* A device whose worker can take a LOAD now: ready, in service or a warm spare. */
static int preload_ready(const struct device *dv)
{
	return dv->ctl >= 0 && !dv->parking &&
	       (dv->state == SWARM_DEVICE_ACTIVE || dv->state == SWARM_DEVICE_STANDBY);
}

static void send_load(struct device *dv, int p, const struct resolved *r, uint32_t nranks,
		      uint32_t rank, const uint8_t *id)
{
	struct swarm_msg_load m;
	swarm_msg_init(&m.h, SWARM_MSG_LOAD, sizeof m, PRELOAD_SEQ + (uint32_t)p);
	fill_version(&m.v, r);
	m.nranks = nranks;
	m.rank = rank;
	m.root = 0;
	m.timeout_ms = FANOUT_TIMEOUT_MS;
	if (id)
		memcpy(m.nccl_id, id, sizeof m.nccl_id);
	if (dev_send(dv, &m, sizeof m, NULL, 0) == 0) {
		dv->pre_state[p] = PRE_SENT;
		dv->pre_version[p] = r->version;
	}
}

/* Sends LOADs for what each ready device still lacks of the --preload models. It waits while
 * any device is warming, so that the devices warming together (at start, or a scale-up of
 * several) are planned together and a model's blob is read once for all their GPUs: the
 * fan-out's root loads it from the registry and broadcasts it to the other GPUs
 * (runtime/fanout.h); CPU devices, a lone GPU, and a second worker on a GPU already in the
 * group load by themselves. */
static void preload_step(void)
{
	if (!d.n_preload || any_warming() || d.stopping)
		return;
	for (int p = 0; p < d.n_preload; p++) {
		struct resolved r;
		char text[SWARM_MSG_TEXT_MAX];
		if (resolve_model(d.preload[p].name, d.preload[p].version, &r, text, sizeof text)) {
			if (!d.preload[p].unresolved)
				swarm_log(SWARM_LOG_WARN, "event=preload_skipped model=%s reason=\"%s\"",
					  d.preload[p].name, text);
			d.preload[p].unresolved = 1;
			continue;
		}
		d.preload[p].unresolved = 0;
		struct swarm_fanout_dev need[MAX_DEVICES];
		uint32_t n = 0;
		for (int i = 0; i < d.n_dev; i++) {
			struct device *dv = &d.dev[i];
			/* Asked for another version before (the active one moved on): again. */
			if (dv->pre_state[p] != PRE_NONE && dv->pre_version[p] != r.version &&
			    dv->pre_state[p] != PRE_SENT)
				dv->pre_state[p] = PRE_NONE;
			if (preload_ready(dv) && dv->pre_state[p] == PRE_NONE)
				need[n++] = (struct swarm_fanout_dev){ .index = i, .gpu = dv->gpu };
		}
		struct swarm_fanout_plan plan;
		if (!n || swarm_fanout_plan(need, n, &plan))
			continue;
		uint8_t id[128] = { 0 };
		if (plan.n_ranks) {
			int rc = -ENOTSUP;
#ifdef SWARM_HAVE_CUDA
			_Static_assert(sizeof id == SWARM_NCCL_ID_BYTES, "the id's bytes");
			rc = swarm_nccl_unique_id(id);
			if (rc)
				snprintf(text, sizeof text, "%s", swarm_cuda_last_error());
#else
			snprintf(text, sizeof text, "built without CUDA");
#endif
			if (rc) {
				/* No NCCL here: every GPU loads from the registry. */
				swarm_log(SWARM_LOG_WARN,
					  "event=fanout_unavailable model=%s version=%u ranks=%u "
					  "reason=\"%s\"",
					  r.name, r.version, plan.n_ranks, text);
				for (uint32_t k = 0; k < plan.n_ranks; k++)
					plan.alone[plan.n_alone++] = plan.ranks[k];
				plan.n_ranks = 0;
			}
		}
		if (plan.n_ranks) {
			char list[256] = "";
			size_t at = 0;
			for (uint32_t k = 0; k < plan.n_ranks && at < sizeof list; k++)
				at += (size_t)snprintf(list + at, sizeof list - at, "%s%s",
						       k ? "," : "", d.dev[plan.ranks[k]].plan.name);
			swarm_log(SWARM_LOG_INFO,
				  "event=fanout_start model=%s version=%u root=%s ranks=%u devices=%s",
				  r.name, r.version, d.dev[plan.ranks[0]].plan.name, plan.n_ranks,
				  list);
		}
		for (uint32_t k = 0; k < plan.n_ranks; k++)
			send_load(&d.dev[plan.ranks[k]], p, &r, plan.n_ranks, k, id);
		for (uint32_t k = 0; k < plan.n_alone; k++)
			send_load(&d.dev[plan.alone[k]], p, &r, 0, 0, NULL);
	}
}

/* A worker's LOADED: the preload is done there, or failed (logged; not retried until the
 * worker starts again or the model's active version changes). */
static void preload_done(struct device *dv, const struct swarm_msg_loaded *m)
{
	static const char *const how[] = { "failed", "registry", "received", "sent", "already" };
	uint32_t p = m->h.seq - PRELOAD_SEQ;
	if (p >= (uint32_t)d.n_preload || dv->pre_state[p] != PRE_SENT)
		return;
	char text[SWARM_MSG_TEXT_MAX], model[SWARM_NAME_MAX];
	swarm_copy_str(text, sizeof text, m->text);
	swarm_copy_str(model, sizeof model, m->model);
	dv->pre_state[p] = m->status ? PRE_FAILED : PRE_DONE;
	swarm_log(m->status ? SWARM_LOG_WARN : SWARM_LOG_INFO,
		  "event=device_preloaded device=%s model=%s version=%u status=%d how=%s "
		  "bytes=%llu ms=%.1f gbps=%.2f%s%s%s",
		  dv->plan.name, model, m->version, m->status, m->how < 5 ? how[m->how] : "?",
		  (unsigned long long)m->bytes, (double)m->ns / 1e6, m->gbps,
		  text[0] ? " note=\"" : "", text, text[0] ? "\"" : "");
}

/* ---- moving sessions (docs/balancing.md) --------------------------------------------------- */

static const char *const move_reasons[] = { "none", "evacuate", "spread", "busy" };

/* The kernel's number of a device's NUMA node, -1 when it has none. */
static int device_os_node(const struct device *dv)
{
	struct swarm_numa_info ni;
	for (int i = 0; dv->plan.numa_node >= 0 && i < swarm_topology_numa_count(d.topo); i++)
		if (swarm_topology_numa_info(d.topo, i, &ni) == 0 && ni.index == dv->plan.numa_node)
			return ni.os_index;
	return -1;
}

/* No device can serve the session any more: its client's waits return -ECONNABORTED. */
static void session_lose(struct session *s, const char *why)
{
	session_uncount(s);
	s->device = -1;
	s->state = S_LOST;
	session_mark(s, SWARM_SEG_STATE_WORKER_LOST);
	swarm_log(SWARM_LOG_WARN, "event=session_lost session=%llu model=%s reason=\"%s\"",
		  (unsigned long long)s->id, s->model_name, why);
}

/* Rewrites where the session is served, under the seqlock the client reads it with; with
 * moved, also the epoch and recovery head that make the client run again what the old
 * worker took and did not complete. */
static void publish_placement(struct session *s, const struct device *dv, int moved)
{
	struct swarm_seg_header *h = hdr(s);
	/* Odd while the fields change: the client re-reads until it sees the same even value
	 * before and after (swarm_session_info_get, recover). The fence keeps the field
	 * stores after the odd value. */
	__atomic_add_fetch(&h->placement_gen, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	h->device_index = dv->index;
	h->numa_node = dv->plan.numa_node;
	h->worker_pid = dv->pid;
	swarm_copy_str(h->device_name, sizeof h->device_name, dv->plan.name);
	swarm_copy_str(h->cpus, sizeof h->cpus, dv->bound_cpus[0] ? dv->bound_cpus : dv->plan.cpus);
	swarm_copy_str(h->mem_policy, sizeof h->mem_policy, dv->mem_policy);
	if (moved) {
		__atomic_store_n(&h->recovery_head, s->recovery_head, __ATOMIC_RELAXED);
		__atomic_store_n(&h->epoch, h->epoch + 1, __ATOMIC_RELAXED);
	}
	/* Release pairs with the client's acquire load of the generation. */
	__atomic_add_fetch(&h->placement_gen, 1, __ATOMIC_RELEASE);
}

/* The session has no worker now (its worker died, or let it go and the target cannot take
 * it): the rebalancer places it when a device can. */
static void session_homeless(struct session *s)
{
	session_uncount(s);
	s->device = -1;
	s->reattach = 0;
	s->state = S_HOMELESS;
	if (!s->homeless_since_ns)
		s->homeless_since_ns = swarm_now_ns();
}

/* Hands the session to device di's worker. The submission head the old worker left is where
 * the new one starts (the old worker is gone or has let go, so it is final). */
static void attach_to(struct session *s, int di)
{
	struct device *dv = &d.dev[di];
	struct resolved res;
	char text[SWARM_MSG_TEXT_MAX];
	int rc = resolve_model(s->model_name, s->version, &res, text, sizeof text);
	if (rc) {
		session_lose(s, text);
		return;
	}
	/* Acquire pairs with the old worker's release store of its head. */
	s->recovery_head = __atomic_load_n(&hdr(s)->sq_head.v, __ATOMIC_ACQUIRE);
	struct swarm_msg_attach am;
	swarm_msg_init(&am.h, SWARM_MSG_ATTACH, sizeof am, 0);
	am.session_id = s->id;
	am.client_pid = s->client ? s->client->pid : -1;
	fill_version(&am.v, &res);
	am.geo = s->geo;
	int fds[3] = { s->memfd, s->sq_efd, s->cq_efd };
	offer_weights(dv, &am.v);
	if (dev_send(dv, &am, sizeof am, fds, 3)) {
		session_homeless(s);
		return;
	}
	s->device = di;
	s->state = S_ATTACHING;
	s->reattach = 1;
	session_count(s, di);
	/* The segment follows the session to its new node for the pages faulted from now on
	 * (moving those already there needs CAP_SYS_NICE: they stay, see balancing.md). */
	int node = device_os_node(dv);
	if (node >= 0)
		(void)swarm_seg_bind_node(s->base, s->bytes, node, 1);
}

/* Asks the session's worker to let it go at a request boundary, to move to device to. */
static void start_move(struct session *s, int to, int reason)
{
	struct device *from = &d.dev[s->device];
	struct swarm_msg_detach dm;
	swarm_msg_init(&dm.h, SWARM_MSG_DETACH, sizeof dm, 0);
	dm.session_id = s->id;
	dm.flags = SWARM_DETACH_MOVE;
	if (dev_send(from, &dm, sizeof dm, NULL, 0))
		return; /* its worker is going: its death moves the session */
	s->state = S_MOVING;
	s->move_to = to;
	s->move_reason = reason;
	s->move_start_ns = swarm_now_ns();
	session_count(s, to);
	swarm_log(SWARM_LOG_INFO, "event=session_moving session=%llu from=%s to=%s reason=%s",
		  (unsigned long long)s->id, from->plan.name, d.dev[to].plan.name,
		  move_reasons[reason]);
}

/* 1 when device di can take a session now. */
static int device_takes(int di)
{
	struct swarm_balancer_device snap[MAX_DEVICES];
	device_snapshot(snap);
	return di >= 0 && di < d.n_dev && snap[di].state == SWARM_DEVICE_ACTIVE &&
	       snap[di].sessions <= snap[di].capacity;
}

/* The old worker has let the session go (DETACHED after DETACH with SWARM_DETACH_MOVE). */
static void let_go(struct session *s)
{
	s->device = -1;
	if (!s->client) {
		session_free(s);
		return;
	}
	int to = s->move_to;
	if (!device_takes(to))
		to = pick_device(s->client_numa);
	if (to < 0) {
		session_homeless(s);
		return;
	}
	attach_to(s, to);
}

/* The new worker answered the ATTACH of a move. */
static void moved(struct session *s, struct device *dv, int status, const char *text)
{
	s->reattach = 0;
	if (status) {
		char why[SWARM_MSG_TEXT_MAX + 64];
		snprintf(why, sizeof why, "%s refused the session: %s", dv->plan.name, text);
		session_lose(s, why);
		return;
	}
	if (!s->client) {
		struct swarm_msg_detach dm;
		swarm_msg_init(&dm.h, SWARM_MSG_DETACH, sizeof dm, 0);
		dm.session_id = s->id;
		s->state = S_DETACHING;
		session_uncount(s);
		dev_send(dv, &dm, sizeof dm, NULL, 0);
		return;
	}
	uint64_t now = swarm_now_ns();
	s->state = S_ACTIVE;
	s->moves++;
	s->last_move_ns = now;
	s->homeless_since_ns = 0;
	dv->moves_in++;
	publish_placement(s, dv, 1);
	session_wake(s);
	swarm_log(SWARM_LOG_INFO,
		  "event=session_moved session=%llu to=%s reason=%s recovery_head=%u pause_us=%llu",
		  (unsigned long long)s->id, dv->plan.name, move_reasons[s->move_reason],
		  s->recovery_head, (unsigned long long)((now - s->move_start_ns) / 1000));
}

/* Smooths each active device's busy fraction (an EWMA with BUSY_TAU_NS), from the busy time
 * its worker adds up in its stats page. */
static void update_load(uint64_t now)
{
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		if (dv->state != SWARM_DEVICE_ACTIVE && dv->state != SWARM_DEVICE_DRAINING)
			continue;
		uint64_t busy = swarm_stat_get(&dv->stats->busy_ns);
		uint64_t dt = now - dv->busy_t_last;
		if (dt == 0)
			continue;
		double frac = busy >= dv->busy_ns_last ?
				      (double)(busy - dv->busy_ns_last) / (double)dt :
				      0.0;
		if (frac > 1.0)
			frac = 1.0;
		double a = (double)dt / (double)BUSY_TAU_NS;
		if (a > 1.0)
			a = 1.0;
		dv->busy += (float)(a * (frac - dv->busy));
		dv->busy_ns_last = busy;
		dv->busy_t_last = now;
	}
}

/* Stops the worker of a drained device once nothing is on it or on its way off it. */
static void park_if_empty(struct device *dv)
{
	if (dv->state != SWARM_DEVICE_DRAINING || dv->parking)
		return;
	for (struct session *s = d.sessions; s; s = s->next)
		if (s->device == dv->index || s->count_dev == dv->index)
			return;
	if (dv->pid <= 0) {
		uint64_t now = swarm_now_ns();
		dv->state = SWARM_DEVICE_PARKED;
		swarm_log(SWARM_LOG_INFO, "event=device_parked device=%s drain_ms=%.1f",
			  dv->plan.name, (double)(now - dv->state_since_ns) / 1e6);
		dv->state_since_ns = now;
		return;
	}
	dv->parking = 1;
	kill(dv->pid, SIGTERM); /* its death parks it (worker_died) */
}

/* Applies the balancer's moves (swarm_balancer_rebalance) until it has none, and parks
 * drained devices that are empty. Called on every tick and after every device change. */
static void rebalance(void)
{
	if (!d.ready_logged || d.stopping)
		return;
	uint64_t now = swarm_now_ns();
	size_t n = 0, cap = 0;
	for (struct session *s = d.sessions, *next; s; s = next) {
		next = s->next;
		if (s->state == S_HOMELESS && now - s->homeless_since_ns > HOMELESS_WAIT_NS)
			session_lose(s, "no device could take it within 10 s of its worker's death");
		else if (s->state == S_ACTIVE || s->state == S_HOMELESS)
			cap++;
	}
	struct swarm_balancer_session *ss = cap ? calloc(cap, sizeof *ss) : NULL;
	struct session **sp = cap ? calloc(cap, sizeof *sp) : NULL;
	if (cap && (!ss || !sp))
		goto out;
	uint64_t all = d.n_dev >= 64 ? ~0ull : (1ull << d.n_dev) - 1;
	for (struct session *s = d.sessions; s && n < cap; s = s->next) {
		if (s->state != S_ACTIVE && s->state != S_HOMELESS)
			continue;
		ss[n] = (struct swarm_balancer_session){
			.device = s->state == S_HOMELESS ? -1 : s->device,
			.client_numa = s->client_numa,
			.serves = all,
			.last_move_ns = s->last_move_ns,
		};
		sp[n++] = s;
	}
	struct swarm_balancer_device snap[MAX_DEVICES];
	device_snapshot(snap);
	for (int k = 0; k < MOVES_PER_TICK && n; k++) {
		struct swarm_balancer_move mv;
		if (swarm_balancer_rebalance(snap, (size_t)d.n_dev, ss, n, &d.bal, now,
					     d.last_load_move_ns, swarm_topology_distance, d.topo,
					     &mv) != 1)
			break;
		struct session *s = sp[mv.session];
		if (mv.reason == SWARM_MOVE_BUSY)
			d.last_load_move_ns = now;
		if (s->state == S_HOMELESS) {
			s->move_reason = SWARM_MOVE_EVACUATE;
			attach_to(s, mv.to);
		} else {
			start_move(s, mv.to, mv.reason);
		}
		device_snapshot(snap);
		/* It is in flight now: out of the candidates. */
		ss[mv.session] = ss[n - 1];
		sp[mv.session] = sp[n - 1];
		n--;
	}
out:
	free(ss);
	free(sp);
	for (int i = 0; i < d.n_dev; i++)
		park_if_empty(&d.dev[i]);
}

/* ---- the autoscaler (docs/autoscaler.md) -------------------------------------------------- */

/* Sums of the last ticks (up to the window) of the demand history. */
static void as_window(uint64_t window_ns, uint64_t *req, uint64_t *busy, double *seconds)
{
	uint32_t ticks = (uint32_t)(window_ns / (TICK_MS * 1000000ull));
	if (ticks == 0)
		ticks = 1;
	if (ticks > d.as.n)
		ticks = d.as.n;
	*req = *busy = 0;
	for (uint32_t i = 0; i < ticks; i++) {
		uint32_t k = (d.as.pos + AS_HISTORY - 1 - i) % AS_HISTORY;
		*req += d.as.req[k];
		*busy += d.as.busy_ns[k];
	}
	*seconds = (double)ticks * TICK_MS / 1000.0;
}

/* Counts the session's device toward its state. */
static void as_count_states(uint32_t *active, uint32_t *warming, uint32_t *draining,
			    uint32_t *parked)
{
	*active = *warming = *draining = *parked = 0;
	for (int i = 0; i < d.n_dev; i++) {
		switch (d.dev[i].state) {
		case SWARM_DEVICE_ACTIVE:
			(*active)++;
			break;
		case SWARM_DEVICE_WARMING:
			(*warming)++;
			break;
		case SWARM_DEVICE_DRAINING:
			(*draining)++;
			break;
		case SWARM_DEVICE_PARKED:
		case SWARM_DEVICE_STANDBY: /* a spare is woken first, at once */
			(*parked)++;
			break;
		}
	}
}

/* Brings a parked device into service (start its worker: WARMING, then ACTIVE), or a warm
 * spare at once. */
static int device_wake(struct device *dv, const char *why)
{
	if (dv->state == SWARM_DEVICE_STANDBY) {
		double spare_ms = (double)(swarm_now_ns() - dv->state_since_ns) / 1e6;
		dv->state = SWARM_DEVICE_ACTIVE;
		dv->state_since_ns = swarm_now_ns();
		swarm_log(SWARM_LOG_INFO,
			  "event=device_active device=%s warm_ms=0.0 from=standby standby_ms=%.1f "
			  "reason=%s",
			  dv->plan.name, spare_ms, why);
		return 0;
	}
	dv->window_restarts = 0;
	int err = start_worker(dv);
	if (err) {
		dv->state = SWARM_DEVICE_FAILED;
		swarm_log(SWARM_LOG_ERROR, "event=device_failed device=%s reason=\"cannot start "
			  "its worker: %s\"", dv->plan.name, strerror(-err));
		return err;
	}
	swarm_log(SWARM_LOG_INFO, "event=device_warming device=%s reason=%s", dv->plan.name, why);
	return 0;
}

/* Takes a device out of service: its sessions move, then its worker stops (PARKED). */
static void device_drain(struct device *dv, const char *why)
{
	dv->state = SWARM_DEVICE_DRAINING;
	dv->state_since_ns = swarm_now_ns();
	swarm_log(SWARM_LOG_INFO, "event=device_draining device=%s sessions=%u reason=%s",
		  dv->plan.name, dv->sessions, why);
}

/* One autoscaler tick: what the stats pages say becomes the demand of one pool (every device
 * serves every model, so the pool is sized by the demand of all of them, within the
 * deployment bounds of the models that have sessions), the policy decides, and this carries
 * it out: wake the lowest parked devices, drain the active device with the fewest sessions. */
static void autoscale_decide(uint64_t now);

static void autoscale_tick(uint64_t now)
{
	uint64_t req = 0, busy = 0;
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		if (dv->pid <= 0)
			continue;
		uint64_t r = swarm_stat_get(&dv->stats->requests);
		uint64_t b = swarm_stat_get(&dv->stats->busy_ns);
		/* A restarted worker starts its counters at zero. */
		req += r >= dv->as_requests ? r - dv->as_requests : r;
		busy += b >= dv->as_busy_ns ? b - dv->as_busy_ns : b;
		dv->as_requests = r;
		dv->as_busy_ns = b;
	}
	d.as.req[d.as.pos] = req;
	d.as.busy_ns[d.as.pos] = busy;
	d.as.pos = (d.as.pos + 1) % AS_HISTORY;
	if (d.as.n < AS_HISTORY)
		d.as.n++;
	autoscale_decide(now);
}

/* The policy's decision on the demand history as it stands, carried out. Called on every
 * tick, and at once when an open finds nothing in service (a tick later would add up to
 * 100 ms to a scale-up from zero). */
static void autoscale_decide(uint64_t now)
{
	struct swarm_as_model m = { 0 };
	uint64_t lr, lb, sr, sb;
	double ls, ss;
	as_window(d.as.cfg.stable_window_ns, &lr, &lb, &ls);
	as_window(AS_SHORT_NS, &sr, &sb, &ss);
	m.rate_long = (double)lr / ls;
	m.rate_short = (double)sr / ss;
	m.service_rate = lb ? (double)lr / ((double)lb / 1e9) : 0.0;
	uint32_t parked, usable = 0;
	as_count_states(&m.active, &m.warming, &m.draining, &parked);
	double busy_sum = 0;
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		if (dv->state != SWARM_DEVICE_FAILED)
			usable++;
		if (dv->state == SWARM_DEVICE_ACTIVE) {
			busy_sum += dv->busy;
			m.queue_depth += __atomic_load_n(&dv->stats->queue_depth, __ATOMIC_RELAXED);
		}
	}
	m.busy = m.active ? busy_sum / m.active : 0.0;
	for (struct session *s = d.sessions; s; s = s->next) {
		if (s->state == S_LOST || s->state == S_DETACHING || !s->client)
			continue;
		m.min_devices = m.sessions ? (s->min_devices > m.min_devices ? s->min_devices :
								     m.min_devices) :
					     s->min_devices;
		m.max_devices = s->max_devices > m.max_devices ? s->max_devices : m.max_devices;
		uint64_t obj = (uint64_t)s->latency_p99_us * 1000;
		if (obj && (!m.latency_p99_ns || obj < m.latency_p99_ns))
			m.latency_p99_ns = obj;
		m.sessions++;
	}
	if (!m.sessions) {
		m.min_devices = d.as.idle_floor;
		m.max_devices = usable;
	}
	for (struct pending_open *p = d.pending; p; p = p->next)
		m.waiting_opens++;
	if (m.max_devices > usable)
		m.max_devices = usable;
	if (m.min_devices > m.max_devices)
		m.min_devices = m.max_devices;

	struct swarm_as_action acts[8];
	uint32_t target = 0;
	int n = swarm_as_decide(now, &d.as.cfg, &m, &d.as.mem, 1, parked, acts, 8, &target);
	if (n < 0) { /* options are checked at start: a bug, said once rather than hidden */
		static int said;
		if (!said++)
			swarm_log(SWARM_LOG_ERROR,
				  "event=autoscale_error reason=\"the policy refused its input: %s\"",
				  strerror(-n));
		return;
	}
	if (target != d.as.target)
		swarm_log(SWARM_LOG_DEBUG,
			  "event=autoscale_target target=%u active=%u warming=%u rate=%.0f "
			  "service_rate=%.0f busy=%.2f queue=%u sessions=%u min=%u max=%u",
			  target, m.active, m.warming, m.rate_long, m.service_rate, m.busy,
			  m.queue_depth, m.sessions, m.min_devices, m.max_devices);
	d.as.target = target;
	for (int k = 0; k < n; k++) {
		const char *why = swarm_as_reason_name(acts[k].reason);
		for (uint32_t c = 0; c < acts[k].count; c++) {
			struct device *pick = NULL;
			for (int i = 0; i < d.n_dev; i++) {
				struct device *dv = &d.dev[i];
				/* Wake a warm spare first, else the lowest parked device. */
				if (acts[k].kind == SWARM_AS_WAKE && dv->state == SWARM_DEVICE_STANDBY) {
					pick = dv;
					break;
				}
				if (acts[k].kind == SWARM_AS_WAKE && dv->state == SWARM_DEVICE_PARKED &&
				    !dv->parking && !pick)
					pick = dv;
				/* Drain the active device with the fewest sessions, the last
				 * such on ties: the lowest indices stay, as they were woken. */
				if (acts[k].kind == SWARM_AS_DRAIN &&
				    dv->state == SWARM_DEVICE_ACTIVE &&
				    (!pick || dv->sessions <= pick->sessions))
					pick = dv;
			}
			if (!pick)
				break;
			swarm_log(SWARM_LOG_INFO,
				  "event=autoscale action=%s device=%s reason=%s target=%u rate=%.0f "
				  "active=%u warming=%u",
				  acts[k].kind == SWARM_AS_WAKE ? "wake" : "drain", pick->plan.name, why,
				  target, m.rate_long, m.active, m.warming);
			if (acts[k].kind == SWARM_AS_WAKE)
				device_wake(pick, why);
			else
				device_drain(pick, why);
		}
	}
	if (n > 0)
		rebalance();
	/* Keep the warm spares the configuration asks for. */
	uint32_t spares = 0;
	for (int i = 0; i < d.n_dev; i++)
		spares += d.dev[i].state == SWARM_DEVICE_STANDBY ||
			  (d.dev[i].state == SWARM_DEVICE_WARMING && d.dev[i].to_standby);
	for (int i = d.n_dev - 1; i >= 0 && spares < d.as.standby; i--) {
		struct device *dv = &d.dev[i];
		if (dv->state != SWARM_DEVICE_PARKED || dv->parking)
			continue;
		dv->to_standby = 1;
		if (device_wake(dv, "standby") == 0)
			spares++;
	}
}

/* The catalog changed: every session that follows its model's active version and does not
 * serve it gets a SWITCH to it. The worker loads the new version beside the old, and moves
 * the session at a request boundary; the old one is unmapped once no session uses it. */
static void registry_changed(void)
{
	swarm_log(SWARM_LOG_INFO, "event=registry_changed generation=%llu",
		  (unsigned long long)swarm_registry_generation(d.registry));
	for (struct session *s = d.sessions; s; s = s->next) {
		if (!s->follow || !s->from_registry || s->state != S_ACTIVE || s->device < 0 ||
		    d.dev[s->device].ctl < 0)
			continue;
		struct resolved r;
		char text[SWARM_MSG_TEXT_MAX];
		if (resolve_model(s->model_name, 0, &r, text, sizeof text)) {
			swarm_log(SWARM_LOG_WARN,
				  "event=switch_skipped session=%llu model=%s reason=\"%s\"",
				  (unsigned long long)s->id, s->model_name, text);
			continue;
		}
		if (r.version == s->version)
			continue;
		if (r.desc != s->model || !r.from_registry) {
			swarm_log(SWARM_LOG_WARN,
				  "event=switch_skipped session=%llu model=%s version=%u "
				  "reason=\"another graph; reopen the session to use it\"",
				  (unsigned long long)s->id, s->model_name, r.version);
			continue;
		}
		struct swarm_msg_switch m;
		swarm_msg_init(&m.h, SWARM_MSG_SWITCH, sizeof m, 0);
		m.session_id = s->id;
		fill_version(&m.v, &r);
		offer_weights(&d.dev[s->device], &m.v);
		dev_send(&d.dev[s->device], &m, sizeof m, NULL, 0);
	}
	/* A preloaded model's active version may have moved on: load the new one. */
	preload_step();
}

static void handle_registry_event(void)
{
	char buf[4096] __attribute__((aligned(8)));
	while (read(d.inotify_fd, buf, sizeof buf) > 0)
		; /* what changed is read from the catalog itself */
	if (swarm_registry_refresh(d.registry) > 0)
		registry_changed();
}

/* Whether c may open one more session of bytes, within the limits per client and per user.
 * Returns 0, or -EDQUOT with text naming the limit and its option. A user's sessions count
 * until they are freed, its clients' that have gone included. */
static int within_limits(const struct conn *c, uint64_t bytes, char *text, size_t len)
{
	if (d.lim.session_bytes && bytes > d.lim.session_bytes) {
		snprintf(text, len,
			 "a session of %llu bytes is above the limit of %llu a session "
			 "(--max-session-bytes)",
			 (unsigned long long)bytes, (unsigned long long)d.lim.session_bytes);
		return -EDQUOT;
	}
	uint32_t mine = 0, users = 0;
	uint64_t user_bytes = 0;
	for (const struct session *s = d.sessions; s; s = s->next) {
		mine += s->client == c;
		if (s->uid == c->uid) {
			users++;
			user_bytes += s->bytes;
		}
	}
	if (d.lim.per_client && mine >= d.lim.per_client) {
		snprintf(text, len,
			 "this client holds %u sessions, the limit a connection "
			 "(--max-sessions-per-client)",
			 mine);
		return -EDQUOT;
	}
	if (d.lim.per_user && users >= d.lim.per_user) {
		snprintf(text, len,
			 "user %u holds %u sessions, the limit (--max-sessions-per-user)",
			 (unsigned)c->uid, users);
		return -EDQUOT;
	}
	if (d.lim.user_bytes && user_bytes + bytes > d.lim.user_bytes) {
		snprintf(text, len,
			 "user %u's sessions hold %llu bytes; %llu more would pass the limit of "
			 "%llu (--max-user-bytes)",
			 (unsigned)c->uid, (unsigned long long)user_bytes,
			 (unsigned long long)bytes, (unsigned long long)d.lim.user_bytes);
		return -EDQUOT;
	}
	return 0;
}

/* Returns 1 when the open was parked to wait for a device, else 0 (replied). */
static int open_session(struct conn *c, const struct swarm_msg_open *m, int may_park)
{
	char text[SWARM_MSG_TEXT_MAX];
	char model_name[SWARM_NAME_MAX];
	swarm_copy_str(model_name, sizeof model_name, m->model);
	struct resolved res;
	int rc = resolve_model(model_name, m->version, &res, text, sizeof text);
	if (rc) {
		send_open_reply(c, m->h.seq, rc, NULL, text);
		return 0;
	}
	const struct swarm_model_desc *model = res.desc;
	/* every field range-checked before any arithmetic on it (a depth rounded up from slots
	 * above 2^31 once looped forever here) */
	uint32_t slots = m->opts.slots ? m->opts.slots : res.default_slots;
	uint32_t max_rows = m->opts.max_rows ? m->opts.max_rows : res.max_rows;
	if (max_rows > res.max_rows || slots > SWARM_SEG_MAX_SLOTS) {
		snprintf(text, sizeof text,
			 "options out of range: max_rows %u (model %s allows %u), slots %u (at "
			 "most %u)",
			 max_rows, res.name, res.max_rows, slots, SWARM_SEG_MAX_SLOTS);
		send_open_reply(c, m->h.seq, -EINVAL, NULL, text);
		return 0;
	}
	const uint32_t depth = m->opts.queue_depth ? m->opts.queue_depth :
						     swarm_seg_default_depth(slots);
	struct swarm_seg_geometry geo;
	if (swarm_seg_geometry_init(&geo, res.inputs, res.n_inputs, res.outputs, res.n_outputs,
				    slots, depth, max_rows)) {
		snprintf(text, sizeof text,
			 "options out of range: slots %u, queue depth %u (a power of two, at most "
			 "slots rounded up to one), max_rows %u",
			 slots, depth, max_rows);
		send_open_reply(c, m->h.seq, -EINVAL, NULL, text);
		return 0;
	}
	if ((rc = within_limits(c, geo.segment_bytes, text, sizeof text))) {
		swarm_log(SWARM_LOG_WARN,
			  "event=open_refused client=%d uid=%u model=%s reason=\"%s\"", c->pid,
			  (unsigned)c->uid, res.name, text);
		send_open_reply(c, m->h.seq, rc, NULL, text);
		return 0;
	}
	/* Until every device of the start is serving, opens wait: placement must not depend on
	 * which worker happened to start first. */
	/* Near the thread that opened it (the open says where it ran), else where the client
	 * said hello from. */
	int client_numa = m->cpu >= 0 ? swarm_topology_cpu_numa(d.topo, m->cpu) : c->numa_node;
	int di = d.ready_logged ? pick_device(client_numa) : -ENODEV;
	if (di < 0) {
		/* With the autoscaler on, a device is coming (it wakes one for a waiting open
		 * when none is in service): hold the open rather than fail it. */
		if (may_park && (any_warming() || d.as.on)) {
			int wake_now = d.as.on && d.ready_logged && !any_warming();
			struct pending_open *p = calloc(1, sizeof *p);
			if (p) {
				p->client = c;
				p->msg = *m;
				p->deadline_ns = swarm_now_ns() + OPEN_WAIT_NS;
				p->next = d.pending;
				d.pending = p;
				if (wake_now)
					autoscale_decide(swarm_now_ns());
				return 1;
			}
		}
		send_open_reply(c, m->h.seq, -ENODEV, NULL,
				"no device is in service to take the session");
		return 0;
	}
	struct device *dv = &d.dev[di];
	struct session *s = calloc(1, sizeof *s);
	if (!s) {
		send_open_reply(c, m->h.seq, -ENOMEM, NULL, "swarmd is out of memory");
		return 0;
	}
	s->id = d.next_session_id++;
	s->client = c;
	s->uid = c->uid;
	s->model = model;
	swarm_copy_str(s->model_name, sizeof s->model_name, res.name);
	s->version = res.version;
	s->follow = m->version == 0;
	s->from_registry = res.from_registry;
	s->open_seq = m->h.seq;
	s->bytes = geo.segment_bytes;
	s->geo = geo;
	s->min_devices = res.min_devices;
	s->max_devices = res.max_devices;
	s->latency_p99_us = res.latency_p99_us;
	s->client_numa = client_numa;
	s->count_dev = -1;
	s->move_to = -1;
	s->sq_efd = s->cq_efd = -1;
	int fd = swarm_seg_create(&geo, s->id, res.name, res.version, res.inputs, res.outputs,
				  device_os_node(dv), &s->base);
	if (fd < 0) {
		snprintf(text, sizeof text, "cannot create the segment (%llu bytes): %s",
			 (unsigned long long)geo.segment_bytes, strerror(-fd));
		send_open_reply(c, m->h.seq, fd, NULL, text);
		free(s);
		return 0;
	}
	s->memfd = fd;
	s->sq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->cq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct swarm_seg_header *h = s->base;
	h->device_index = dv->index;
	h->numa_node = dv->plan.numa_node;
	h->worker_pid = dv->pid;
	swarm_copy_str(h->device_name, sizeof h->device_name, dv->plan.name);
	swarm_copy_str(h->cpus, sizeof h->cpus, dv->bound_cpus[0] ? dv->bound_cpus : dv->plan.cpus);
	swarm_copy_str(h->mem_policy, sizeof h->mem_policy, dv->mem_policy);
	/* Even: no change in progress (the client does not have the segment yet). */
	__atomic_add_fetch(&h->placement_gen, 2, __ATOMIC_RELEASE);
	s->device = dv->index;
	s->state = S_ATTACHING;
	s->next = d.sessions;
	d.sessions = s;
	session_count(s, dv->index);

	struct swarm_msg_attach am;
	swarm_msg_init(&am.h, SWARM_MSG_ATTACH, sizeof am, 0);
	am.session_id = s->id;
	am.client_pid = s->client ? s->client->pid : -1;
	fill_version(&am.v, &res);
	am.geo = geo;
	int fds[3] = { s->memfd, s->sq_efd, s->cq_efd };
	offer_weights(dv, &am.v);
	int err = s->sq_efd < 0 || s->cq_efd < 0 ? -EMFILE : dev_send(dv, &am, sizeof am, fds, 3);
	if (err) {
		snprintf(text, sizeof text, "cannot hand the session to worker %s: %s",
			 dv->plan.name, strerror(-err));
		send_open_reply(c, m->h.seq, err, NULL, text);
		session_free(s);
		return 0;
	}
	swarm_log(SWARM_LOG_INFO,
		  "event=session_open session=%llu client_pid=%d model=%s device=%s slots=%u "
		  "max_rows=%u bytes=%llu",
		  (unsigned long long)s->id, c->pid, res.name, dv->plan.name, slots, max_rows,
		  (unsigned long long)geo.segment_bytes);
	return 0;
}

static void try_pending_opens(void)
{
	struct pending_open *list = d.pending;
	d.pending = NULL;
	uint64_t now = swarm_now_ns();
	while (list) {
		struct pending_open *p = list;
		list = p->next;
		if (now > p->deadline_ns)
			send_open_reply(p->client, p->msg.h.seq, -ENODEV, NULL,
					"no device came into service in time");
		else
			open_session(p->client, &p->msg, 1);
		free(p);
	}
}

/* ---- clients -----------------------------------------------------------------------------------
 */

/* Whether the peer on fd (credentials cred) is in one of the n groups gids, by its primary
 * group or its supplementary ones. */
static int peer_in_groups(int fd, const struct ucred *cred, const gid_t *gids, int n)
{
	for (int i = 0; i < n; i++)
		if (cred->gid == gids[i])
			return 1;
	if (!n)
		return 0;
	gid_t groups[256];
	socklen_t len = sizeof groups;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t g = 0; g < len / sizeof(gid_t); g++)
			for (int i = 0; i < n; i++)
				if (groups[g] == gids[i])
					return 1;
	return 0;
}

static int allowed(int fd, struct ucred *cred)
{
	socklen_t len = sizeof *cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return 0;
	for (int i = 0; i < d.n_allow_uid; i++)
		if (cred->uid == d.allow_uid[i])
			return 1;
	return peer_in_groups(fd, cred, d.allow_gid, d.n_allow_gid);
}

/* Refuses a connection just accepted: a HELLO_REPLY with status and why (the client's
 * first read), then closed. Logged at most once a second. */
static void refuse_conn(int fd, int status, const char *why)
{
	send_reply(fd, SWARM_MSG_HELLO_REPLY, 0, status, why);
	close(fd);
	uint64_t now = swarm_now_ns();
	if (now - d.accept_refused_log_ns >= 1000000000ull) {
		d.accept_refused_log_ns = now;
		swarm_log(SWARM_LOG_WARN, "event=connection_refused reason=\"%s\"", why);
	}
}

/* Out of descriptors (EMFILE, ENFILE): the waiting connection is taken with the reserve
 * descriptor and closed at once, so that the listener does not stay readable and the loop
 * spin on it. Without even that, the listener is left unwatched until a client goes. */
static void accept_out_of_fds(void)
{
	if (d.reserve_fd >= 0) {
		close(d.reserve_fd);
		d.reserve_fd = -1;
		int fd = accept4(d.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			refuse_conn(fd, -EMFILE, "swarmd is out of file descriptors; try again later");
		d.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (d.reserve_fd < 0 && !d.accept_paused) {
		epoll_del(d.listen_fd);
		d.accept_paused = 1;
		swarm_log(SWARM_LOG_WARN, "event=accept_paused reason=\"out of file descriptors\"");
	}
}

static void accept_client(void)
{
	for (int taken = 0; !d.accept_paused && taken < 256; taken++) {
		int fd = accept4(d.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				accept_out_of_fds();
			else if (errno != EINTR && errno != ECONNABORTED)
				return; /* EAGAIN: none waits */
			continue;
		}
		struct ucred cred = { 0 };
		int ok = allowed(fd, &cred);
		uint32_t users = 0;
		for (const struct conn *o = d.conns; o; o = o->next)
			users += o->uid == cred.uid;
		char why[SWARM_MSG_TEXT_MAX];
		if (d.max_conns && d.n_conns >= d.max_conns) {
			snprintf(why, sizeof why,
				 "swarmd serves at most %u connections (--max-connections)",
				 d.max_conns);
			refuse_conn(fd, -EUSERS, why);
			continue;
		}
		if (ok && d.max_conns_per_user && users >= d.max_conns_per_user) {
			snprintf(why, sizeof why,
				 "user %u holds %u connections, the limit "
				 "(--max-connections-per-user)",
				 (unsigned)cred.uid, users);
			refuse_conn(fd, -EUSERS, why);
			continue;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->w.kind = W_CONN;
		c->fd = fd;
		c->numa_node = -1;
		c->refused = !ok;
		c->admin = ok && (cred.uid == 0 || cred.uid == getuid() ||
				  peer_in_groups(fd, &cred, d.admin_gid, d.n_admin_gid));
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->accepted_ns = swarm_now_ns();
		if (epoll_add(fd, c)) {
			close(fd);
			free(c);
			continue;
		}
		c->next = d.conns;
		d.conns = c;
		d.n_conns++;
	}
}

static void client_gone(struct conn *c);

/* Connections that have not said hello within d.hello_timeout_ns are closed: a silent
 * connection must not hold a place for ever. */
static void hello_deadlines(uint64_t now)
{
	for (struct conn *c = d.conns, *next; c; c = next) {
		next = c->next;
		if (c->hello_done || !d.hello_timeout_ns || now - c->accepted_ns < d.hello_timeout_ns)
			continue;
		swarm_log(SWARM_LOG_WARN, "event=hello_timeout client=%d uid=%u waited_ms=%.0f",
			  c->pid, (unsigned)c->uid, (double)(now - c->accepted_ns) / 1e6);
		client_gone(c);
	}
}

static void client_gone(struct conn *c)
{
	epoll_del(c->fd);
	close(c->fd);
	for (struct conn **p = &d.conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			d.n_conns--;
			break;
		}
	/* a descriptor came back: the reserve first, then the listener */
	if (d.reserve_fd < 0)
		d.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (d.accept_paused && d.reserve_fd >= 0 && epoll_add(d.listen_fd, &d.listen_w) == 0) {
		d.accept_paused = 0;
		swarm_log(SWARM_LOG_INFO, "event=accept_resumed");
	}
	for (struct pending_open **p = &d.pending; *p;) {
		if ((*p)->client == c) {
			struct pending_open *dead = *p;
			*p = dead->next;
			free(dead);
		} else {
			p = &(*p)->next;
		}
	}
	int n = 0;
	for (struct session *s = d.sessions, *next; s; s = next) {
		next = s->next;
		if (s->client != c)
			continue;
		s->client = NULL;
		n++;
		if (s->state == S_ACTIVE && s->device >= 0 && d.dev[s->device].ctl >= 0) {
			struct swarm_msg_detach dm;
			swarm_msg_init(&dm.h, SWARM_MSG_DETACH, sizeof dm, 0);
			dm.session_id = s->id;
			s->state = S_DETACHING;
			session_uncount(s);
			dev_send(&d.dev[s->device], &dm, sizeof dm, NULL, 0);
		} else if (s->state == S_LOST || s->state == S_HOMELESS) {
			session_free(s);
		}
		/* S_ATTACHING, S_MOVING and S_DETACHING finish when the worker answers. */
	}
	swarm_log(SWARM_LOG_INFO, "event=client_gone client_pid=%d sessions=%d", c->pid, n);
	free(c);
}

static void fill_status(struct swarm_msg_status_reply *r)
{
	r->swarmd_pid = getpid();
	r->uptime_ns = swarm_now_ns() - d.started_ns;
	r->n_devices = (uint32_t)d.n_dev;
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		struct swarm_status_device *o = &r->devices[i];
		o->index = dv->index;
		o->state = dv->state;
		o->pid = dv->pid;
		o->numa_node = dv->plan.numa_node;
		swarm_copy_str(o->name, sizeof o->name, dv->plan.name);
		swarm_copy_str(o->cpus, sizeof o->cpus,
			       dv->bound_cpus[0] ? dv->bound_cpus : dv->plan.cpus);
		swarm_copy_str(o->mem_policy, sizeof o->mem_policy, dv->mem_policy);
		o->busy = dv->busy;
		o->moves_in = dv->moves_in;
		o->sessions = dv->sessions;
		o->restarts = dv->restarts;
		o->io_backend = dv->io_backend;
		o->queue_depth = __atomic_load_n(&dv->stats->queue_depth, __ATOMIC_RELAXED);
		o->requests = swarm_stat_get(&dv->stats->requests);
		o->errors = swarm_stat_get(&dv->stats->errors);
		o->busy_ns = swarm_stat_get(&dv->stats->busy_ns);
		o->batches = swarm_stat_get(&dv->stats->batches);
		o->weights_bytes_loaded = swarm_stat_get(&dv->stats->weights_bytes_loaded);
		o->weights_mbps_last =
			__atomic_load_n(&dv->stats->weights_mbps_last, __ATOMIC_RELAXED);
		o->p50_ns = swarm_hist_quantile(&dv->stats->latency, 0.50);
		o->p99_ns = swarm_hist_quantile(&dv->stats->latency, 0.99);
	}
	for (struct session *s = d.sessions; s; s = s->next) {
		r->total_sessions++;
		if (r->n_sessions == SWARM_STATUS_MAX_SESSIONS)
			continue;
		struct swarm_status_session *o = &r->sessions[r->n_sessions++];
		o->session_id = s->id;
		o->device_index = s->device;
		o->client_pid = s->client ? s->client->pid : -1;
		swarm_copy_str(o->model, sizeof o->model, s->model_name);
		o->model_version = s->version;
		o->moves = s->moves;
		o->client_numa = s->client_numa;
		if (s->device < 0)
			continue;
		struct swarm_worker_stats *st = d.dev[s->device].stats;
		for (int k = 0; k < SWARM_WORKER_MAX_SESSIONS; k++) {
			struct swarm_session_stats *ss = &st->session[k];
			if (__atomic_load_n(&ss->session_id, __ATOMIC_RELAXED) != s->id)
				continue;
			o->requests = swarm_stat_get(&ss->requests);
			o->errors = swarm_stat_get(&ss->errors);
			o->in_flight = __atomic_load_n(&ss->in_flight, __ATOMIC_RELAXED);
			o->p50_ns = swarm_hist_quantile(&ss->latency, 0.50);
			o->p99_ns = swarm_hist_quantile(&ss->latency, 0.99);
			break;
		}
	}
}

/* `swarm device drain|resume NAME`. Returns 0 or -errno, with what happened in text. */
static int device_control(struct swarm_msg_device *m, char *text, size_t len)
{
	m->name[sizeof m->name - 1] = 0;
	struct device *dv = NULL;
	for (int i = 0; i < d.n_dev; i++)
		if (!strcmp(d.dev[i].plan.name, m->name))
			dv = &d.dev[i];
	if (!dv) {
		snprintf(text, len, "no device is called \"%s\" (swarm status lists them)", m->name);
		return -ENOENT;
	}
	const char *name = dv->plan.name;
	if (m->action == SWARM_DEVICE_DRAIN) {
		if (dv->state == SWARM_DEVICE_PARKED) {
			snprintf(text, len, "%s is already parked", name);
			return 0;
		}
		if (dv->state == SWARM_DEVICE_FAILED) {
			dv->state = SWARM_DEVICE_PARKED;
			snprintf(text, len, "%s had failed; now parked", name);
			return 0;
		}
		dv->state = SWARM_DEVICE_DRAINING;
		dv->state_since_ns = swarm_now_ns();
		swarm_log(SWARM_LOG_INFO, "event=device_draining device=%s sessions=%u", name,
			  dv->sessions);
		uint32_t n = dv->sessions;
		rebalance();
		snprintf(text, len,
			 "draining %s: %u session(s) move to other devices, then its worker stops "
			 "(swarm status shows it parked)",
			 name, n);
		return 0;
	}
	if (m->action == SWARM_DEVICE_RESUME) {
		if (dv->state == SWARM_DEVICE_ACTIVE || dv->state == SWARM_DEVICE_WARMING) {
			snprintf(text, len, "%s is already in service", name);
			return 0;
		}
		if (dv->state == SWARM_DEVICE_STANDBY) {
			device_wake(dv, "resume");
			snprintf(text, len, "%s was a warm spare; in service now", name);
			return 0;
		}
		if (dv->state == SWARM_DEVICE_DRAINING && !dv->parking) {
			dv->state = dv->ctl >= 0 ? SWARM_DEVICE_ACTIVE : SWARM_DEVICE_WARMING;
			swarm_log(SWARM_LOG_INFO, "event=device_resumed device=%s", name);
			snprintf(text, len, "%s is back in service", name);
			return 0;
		}
		if (dv->parking) {
			snprintf(text, len, "%s is stopping; resume it when it is parked", name);
			return -EBUSY;
		}
		dv->window_restarts = 0;
		int err = start_worker(dv);
		if (err) {
			dv->state = SWARM_DEVICE_FAILED;
			snprintf(text, len, "cannot start %s's worker: %s", name, strerror(-err));
			return err;
		}
		swarm_log(SWARM_LOG_INFO, "event=device_resumed device=%s", name);
		snprintf(text, len, "starting %s; sessions spread onto it when it is ready", name);
		return 0;
	}
	snprintf(text, len, "unknown device action %u", m->action);
	return -EINVAL;
}

static void handle_client(struct conn *c)
{
	union {
		struct swarm_msg_hdr h;
		struct swarm_msg_hello hello;
		struct swarm_msg_open open;
		struct swarm_msg_close close;
		struct swarm_msg_device device;
		char raw[1024];
	} m;
	for (;;) {
		int nfds = 0;
		int n = swarm_msg_recv(c->fd, &m, sizeof m, NULL, &nfds);
		if (n == -EAGAIN)
			return;
		if (n <= 0 && n != -EMSGSIZE) {
			client_gone(c);
			return;
		}
		int type = n < 0 ? -EBADMSG : swarm_msg_check(&m, (size_t)n);
		char text[SWARM_MSG_TEXT_MAX];
		if (type == -EPROTO) {
			snprintf(text, sizeof text,
				 "ABI mismatch: the client speaks swarm ABI %u, this swarmd speaks "
				 "ABI %u; rebuild the client against this swarm's libswarm",
				 (unsigned)m.h.abi, SWARM_ABI_VERSION);
			swarm_log(SWARM_LOG_WARN,
				  "event=client_refused client_pid=%d reason=\"%s\"", c->pid, text);
			send_reply(c->fd, SWARM_MSG_HELLO_REPLY, m.h.seq, -EPROTO, text);
			client_gone(c);
			return;
		}
		if (type < 0 || (!c->hello_done && type != SWARM_MSG_HELLO)) {
			swarm_log(SWARM_LOG_WARN,
				  "event=client_bad_message client_pid=%d result=%d", c->pid, type);
			client_gone(c);
			return;
		}
		switch (type) {
		case SWARM_MSG_HELLO:
			if (c->refused) {
				snprintf(text, sizeof text,
					 "user %u is not allowed to use this swarmd; start it with "
					 "--allow-user or --allow-group",
					 (unsigned)c->uid);
				send_reply(c->fd, SWARM_MSG_HELLO_REPLY, m.h.seq, -EACCES, text);
				swarm_log(
					SWARM_LOG_WARN,
					"event=client_refused client_pid=%d uid=%u reason=peercred",
					c->pid, (unsigned)c->uid);
				client_gone(c);
				return;
			}
			c->hello_done = 1;
			c->numa_node = swarm_topology_cpu_numa(d.topo, m.hello.cpu);
			send_reply(c->fd, SWARM_MSG_HELLO_REPLY, m.h.seq, 0, "");
			break;
		case SWARM_MSG_OPEN:
			open_session(c, &m.open, 1);
			break;
		case SWARM_MSG_CLOSE: {
			struct session *s = session_find(m.close.session_id);
			int status = 0;
			if (!s || s->client != c) {
				status = -ENOENT;
			} else if (s->state == S_ACTIVE && s->device >= 0 &&
				   d.dev[s->device].ctl >= 0) {
				struct swarm_msg_detach dm;
				swarm_msg_init(&dm.h, SWARM_MSG_DETACH, sizeof dm, 0);
				dm.session_id = s->id;
				s->state = S_DETACHING;
				s->client = NULL;
				session_uncount(s);
				dev_send(&d.dev[s->device], &dm, sizeof dm, NULL, 0);
			} else if (s->state == S_ATTACHING || s->state == S_DETACHING ||
				   s->state == S_MOVING) {
				s->client = NULL; /* finished when the worker answers */
			} else {
				session_free(s);
			}
			send_reply(c->fd, SWARM_MSG_CLOSE_REPLY, m.h.seq, status,
				   status ? "no such session on this connection" : "");
			break;
		}
		case SWARM_MSG_DEVICE: {
			/* it changes service for every client: admins only */
			int status = -EPERM;
			if (c->admin) {
				status = device_control(&m.device, text, sizeof text);
			} else {
				snprintf(text, sizeof text,
					 "user %u may not take devices out of service or back: that "
					 "needs root, swarmd's own user or a member of --admin-group",
					 (unsigned)c->uid);
				swarm_log(SWARM_LOG_WARN,
					  "event=admin_refused client=%d uid=%u action=device",
					  c->pid, (unsigned)c->uid);
			}
			send_reply(c->fd, SWARM_MSG_DEVICE_REPLY, m.h.seq, status, text);
			break;
		}
		case SWARM_MSG_STATUS: {
			struct swarm_msg_status_reply *r = malloc(sizeof *r);
			if (!r) {
				client_gone(c);
				return;
			}
			swarm_msg_init(&r->h, SWARM_MSG_STATUS_REPLY, sizeof *r, m.h.seq);
			fill_status(r);
			swarm_msg_send(c->fd, r, sizeof *r, NULL, 0);
			free(r);
			break;
		}
		default:
			swarm_log(SWARM_LOG_WARN, "event=client_bad_message client_pid=%d type=%d",
				  c->pid, type);
			client_gone(c);
			return;
		}
	}
}

/* ---- set-up, loop, shut-down ----------------------------------------------------------------- */

static int make_socket_dir(const char *path)
{
	char dir[sizeof d.socket_path];
	swarm_copy_str(dir, sizeof dir, path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	struct stat st;
	if (stat(dir, &st) == 0)
		return 0;
	/* Only the default location is created (private to the user, but passable when
	 * --allow-user/--allow-group open the socket to others); a given path's directory must
	 * exist, so that a typo is not silently created. */
	const mode_t mode = d.n_allow_uid > 1 || d.n_allow_gid ? 0711 : 0700;
	return mkdir(dir, mode) < 0 && errno != EEXIST ? -errno : 0;
}

static int listen_socket(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(d.socket_path) >= sizeof addr.sun_path)
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, d.socket_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a swarmd that died is removed; a live one is not. */
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0) {
		close(probe);
		close(fd);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	unlink(d.socket_path);
	/* Who may connect at all is the file's mode; who is served is SO_PEERCRED's check at
	 * accept. --allow-user names users the mode cannot name: the socket is then open to
	 * all (0666) and the check refuses the others. --allow-group alone: the socket's group
	 * is the first one named (0660), where swarmd may give it that group. */
	mode_t mode = 0660;
	gid_t group = (gid_t)-1;
	if (d.n_allow_uid > 1)
		mode = 0666;
	else if (d.n_allow_gid)
		group = d.allow_gid[0];
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (group != (gid_t)-1 && chown(d.socket_path, (uid_t)-1, group) < 0) {
		swarm_log(SWARM_LOG_WARN,
			  "event=socket_group_failed group=%u error=\"%s\" result=\"mode 0666: "
			  "the credential check alone decides\"",
			  (unsigned)group, strerror(errno));
		mode = 0666;
	}
	if (chmod(d.socket_path, mode) < 0 || listen(fd, 128) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	swarm_log(SWARM_LOG_INFO, "event=socket path=%s mode=%04o allow_users=%d allow_groups=%d",
		  d.socket_path, (unsigned)mode, d.n_allow_uid - 1, d.n_allow_gid);
	return fd;
}

static void shutdown_all(void)
{
	d.stopping = 1;
	swarm_log(SWARM_LOG_INFO, "event=stopping sessions_open=%d", (int)!!d.sessions);
	for (struct session *s = d.sessions; s; s = s->next)
		session_mark(s, SWARM_SEG_STATE_WORKER_LOST);
	for (int i = 0; i < d.n_dev; i++)
		if (d.dev[i].pid > 0)
			kill(d.dev[i].pid, SIGTERM);
	uint64_t deadline = swarm_now_ns() + STOP_WAIT_MS * 1000000ull;
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		if (dv->pid <= 0)
			continue;
		for (;;) {
			int st;
			pid_t r = waitpid(dv->pid, &st, WNOHANG);
			if (r == dv->pid || r < 0)
				break;
			if (swarm_now_ns() > deadline) {
				swarm_log(SWARM_LOG_WARN, "event=worker_kill device=%s pid=%d",
					  dv->plan.name, dv->pid);
				kill(dv->pid, SIGKILL);
				waitpid(dv->pid, &st, 0);
				break;
			}
			usleep(2000);
		}
		if (dv->pidfd >= 0)
			close(dv->pidfd);
		dev_ctl_close(dv);
		dv->pid = -1;
	}
	while (d.sessions)
		session_free(d.sessions);
	while (d.conns) {
		struct conn *c = d.conns;
		d.conns = c->next;
		close(c->fd);
		free(c);
	}
	while (d.pending) {
		struct pending_open *p = d.pending;
		d.pending = p->next;
		free(p);
	}
	for (int i = 0; i < d.n_dev; i++) {
		swarm_stats_unmap(d.dev[i].stats);
		close(d.dev[i].stats_fd);
	}
	close(d.listen_fd);
	unlink(d.socket_path);
	close(d.signal_fd);
	close(d.epfd);
	swarm_topology_free(d.topo);
	if (d.inotify_fd >= 0)
		close(d.inotify_fd);
	swarm_registry_close(d.registry);
	swarm_log(SWARM_LOG_INFO, "event=stopped");
}

static int parse_id(const char *s, int user, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s && !*end) {
		*out = (unsigned)v;
		return 0;
	}
	if (user) {
		struct passwd *pw = getpwnam(s);
		if (pw) {
			*out = pw->pw_uid;
			return 0;
		}
	} else {
		struct group *gr = getgrnam(s);
		if (gr) {
			*out = gr->gr_gid;
			return 0;
		}
	}
	return -ENOENT;
}

/* Opens the registry and watches its directory, so that a new catalog (renamed over index
 * by a writer) is seen at once. Without one, only the built-in models are served. */
static void open_registry(void)
{
	char err[SWARM_MSG_TEXT_MAX];
	char dir[PATH_MAX];
	if (swarm_registry_path(d.registry_dir[0] ? d.registry_dir : NULL, dir, sizeof dir)) {
		swarm_log(SWARM_LOG_WARN, "event=registry_unavailable reason=\"path too long\"");
		return;
	}
	swarm_copy_str(d.registry_dir, sizeof d.registry_dir, dir);
	int rc = swarm_registry_open(dir, &d.registry, err, sizeof err);
	if (rc) {
		d.registry = NULL;
		swarm_log(rc == -ENOENT ? SWARM_LOG_INFO : SWARM_LOG_WARN,
			  "event=registry_unavailable dir=%s reason=\"%s\" serving=builtin", dir,
			  err);
		return;
	}
	d.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d.inotify_fd < 0 || inotify_add_watch(d.inotify_fd, dir, IN_MOVED_TO | IN_CREATE) < 0)
		swarm_log(SWARM_LOG_WARN,
			  "event=registry_watch_failed dir=%s error=\"%s\" note=\"changes are "
			  "seen at the next open only\"",
			  dir, strerror(errno));
	swarm_log(SWARM_LOG_INFO, "event=registry_open dir=%s generation=%llu models=%d", dir,
		  (unsigned long long)swarm_registry_generation(d.registry),
		  swarm_registry_model_count(d.registry));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarmd [options]\n"
		"The swarm control plane: serves models to local clients through shared memory.\n"
		"\n"
		"  --socket PATH        listen here (default: $SWARM_SOCKET, else\n"
		"                       $XDG_RUNTIME_DIR/swarm/swarmd.sock, else\n"
		"                       /tmp/swarm-$UID/swarmd.sock)\n"
		"  --devices cpu:N      serve N virtual CPU devices, spread over NUMA nodes and\n"
		"                       cores\n"
		"  --devices gpu        serve every CUDA GPU, one worker each, named gpu:0,\n"
		"                       gpu:1, ...; fails at startup, saying why, when there is\n"
		"                       no GPU or swarmd was built without CUDA\n"
		"                       (default: the GPUs when there are any, else one CPU\n"
		"                       device per NUMA node)\n"
		"  --instances N        N workers per device (as Triton's instance_group count),\n"
		"                       named gpu:0/0, gpu:0/1, ..., each a device of its own\n"
		"                       with its share of the device's cores; workers on one GPU\n"
		"                       share one copy of identical weights (default 1)\n"
		"  --topology FILE.xml  plan devices on an hwloc XML topology, not this machine\n"
		"  --spin-us N          a worker spins N us with nothing to do before it sleeps\n"
		"                       (default 50; 0 sleeps at once)\n"
		"  --allow-user U       also accept clients of user U (name or uid; repeatable;\n"
		"                       default: only swarmd's own user)\n"
		"  --allow-group G      also accept clients in group G (name or gid; repeatable)\n"
		"  --admin-group G      its members may also drain and resume devices (`swarm\n"
		"                       device`), besides root and swarmd's own user (repeatable)\n"
		"  --registry DIR       the model registry (default: $SWARM_REGISTRY, else\n"
		"                       $XDG_DATA_HOME/swarm/registry, else\n"
		"                       ~/.local/share/swarm/registry); without one, only the\n"
		"                       built-in models identity and affine are served\n"
		"  --no-verify          do not check weights blobs' SHA-256 when loading them\n"
		"  --preload M[@V],...  load these models on every device as soon as its worker\n"
		"                       is ready, before any session asks (repeatable; up to %d;\n"
		"                       without @V the active version, followed as it changes).\n"
		"                       GPUs warming together get the weights by one NCCL\n"
		"                       broadcast from the GPU that read them (docs/devices.md)\n"
		"  --backend-dir DIR    where manifests' custom backends (graph.backend) are found\n"
		"                       when named without a path\n"
		"  --worker PATH        the swarm-worker binary (default: beside swarmd)\n"
		"  --log-level L        debug, info, warn or error (default info)\n"
		"  --autoscale          power devices into and out of service with demand\n"
		"                       (docs/autoscaler.md): devices start parked but for\n"
		"                       --autoscale-idle; each model's min_devices, max_devices\n"
		"                       and latency_p99_us bound it (built-in models: 1 to all)\n"
		"  --autoscale-idle N   devices kept in service while no session is open\n"
		"                       (default 1; 0 parks them all, and a first open waits\n"
		"                       for a device to warm up)\n"
		"  --autoscale-window-s S  low demand this long before a scale-down (default 60)\n"
		"  --autoscale-cooldown-s S  after a scale event, before a scale-down (default 30)\n"
		"  --autoscale-util F   busy fraction aimed at per device (default 0.6; above\n"
		"                       0.1, the scale-down hysteresis, at most 1)\n"
		"  --autoscale-standby N  parked devices kept warm (worker started and ready,\n"
		"                       out of service) so that a scale-up is immediate\n"
		"                       (default 0)\n"
		"  --max-sessions-per-client N  sessions one connection may hold (default: half\n"
		"                       the places of all devices, 256 a device; 0: no limit)\n"
		"  --max-sessions-per-user N  sessions one uid may hold over all its\n"
		"                       connections (default 0: no limit)\n"
		"  --max-session-bytes SIZE  one session's segment (bytes, or K/M/G/T in powers\n"
		"                       of 1024; default 0: only the protocol's 64G bound)\n"
		"  --max-user-bytes SIZE  the segments of one uid's sessions together (default:\n"
		"                       half the machine's memory; 0: no limit). An open past a\n"
		"                       limit gets -EDQUOT naming it\n"
		"  --max-connections N  connections swarmd holds at once (default 1024; 0: no\n"
		"                       limit); past it a client's hello gets -EUSERS\n"
		"  --max-connections-per-user N  of one uid (default: half of the above)\n"
		"  --hello-timeout-ms T  a connection that has not said hello within T is\n"
		"                       closed (default 5000; 0: never)\n"
		"  -h, --help           this text\n"
		"\n"
		"Logs go to stderr, one key=value line per event; \"event=ready\" says every device\n"
		"is serving. SIGTERM or SIGINT stops swarmd and its workers.\n",
		MAX_PRELOAD);
}

/* What --devices asked for. */
enum devices_mode {
	DEVICES_DEFAULT = 0, /* the GPUs if there are any, else one CPU device per NUMA node */
	DEVICES_CPU,         /* cpu:N */
	DEVICES_GPU,         /* gpu: every CUDA GPU, or a startup error */
};

/* --preload M[@V],...: adds each to d.preload. Returns 0, or -1 having said why. */
static int parse_preload(const char *arg)
{
	char buf[1024];
	swarm_copy_str(buf, sizeof buf, arg);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *at = strchr(tok, '@'), *end = NULL;
		unsigned long v = 0;
		if (at) {
			*at = 0;
			v = strtoul(at + 1, &end, 10);
		}
		if (!*tok || strlen(tok) >= SWARM_NAME_MAX || (at && (!at[1] || *end || !v ||
								      v > UINT32_MAX))) {
			fprintf(stderr,
				"swarmd: --preload takes MODEL or MODEL@VERSION (VERSION >= 1), "
				"comma-separated, not \"%s\"\n",
				arg);
			return -1;
		}
		if (d.n_preload == MAX_PRELOAD) {
			fprintf(stderr, "swarmd: --preload: at most %d models\n", MAX_PRELOAD);
			return -1;
		}
		swarm_copy_str(d.preload[d.n_preload].name, SWARM_NAME_MAX, tok);
		d.preload[d.n_preload++].version = (uint32_t)v;
	}
	return 0;
}

/* A size: bytes, or a count with K, M, G or T (powers of 1024). Returns 0 or -1. */
static int parse_size(const char *arg, uint64_t *out)
{
	char *end;
	if (!*arg || *arg == '-')
		return -1;
	unsigned long long v = strtoull(arg, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (shift && (end[1] != '\0' || v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_args(int argc, char **argv, int *mode, int *n_cpu, const char **topo_xml)
{
	static const struct option opts[] = {
		{ "socket", required_argument, 0, 's' },
		{ "devices", required_argument, 0, 'd' },
		{ "topology", required_argument, 0, 't' },
		{ "spin-us", required_argument, 0, 'S' },
		{ "allow-user", required_argument, 0, 'u' },
		{ "allow-group", required_argument, 0, 'g' },
		{ "admin-group", required_argument, 0, 'a' },
		{ "max-connections", required_argument, 0, 'n' },
		{ "max-connections-per-user", required_argument, 0, 'N' },
		{ "hello-timeout-ms", required_argument, 0, 'H' },
		{ "worker", required_argument, 0, 'w' },
		{ "log-level", required_argument, 0, 'l' },
		{ "registry", required_argument, 0, 'r' },
		{ "no-verify", no_argument, 0, 'V' },
		{ "preload", required_argument, 0, 'P' },
		{ "backend-dir", required_argument, 0, 'B' },
		{ "autoscale", no_argument, 0, 'A' },
		{ "autoscale-idle", required_argument, 0, 'I' },
		{ "autoscale-window-s", required_argument, 0, 'W' },
		{ "autoscale-cooldown-s", required_argument, 0, 'C' },
		{ "autoscale-util", required_argument, 0, 'U' },
		{ "autoscale-standby", required_argument, 0, 'Y' },
		{ "instances", required_argument, 0, 'i' },
		{ "max-sessions-per-client", required_argument, 0, 'm' },
		{ "max-sessions-per-user", required_argument, 0, 'M' },
		{ "max-session-bytes", required_argument, 0, 'b' },
		{ "max-user-bytes", required_argument, 0, 'T' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		unsigned id;
		char *end;
		switch (o) {
		case 's':
			swarm_copy_str(d.socket_path, sizeof d.socket_path, optarg);
			break;
		case 'd':
			if (strcmp(optarg, "gpu") == 0) {
				*mode = DEVICES_GPU;
				break;
			}
			if (strncmp(optarg, "cpu:", 4) != 0 ||
			    (*n_cpu = (int)strtol(optarg + 4, &end, 10)) <= 0 || *end ||
			    *n_cpu > MAX_DEVICES) {
				fprintf(stderr,
					"swarmd: --devices takes cpu:N with N from 1 to %d, or gpu, "
					"not \"%s\"\n",
					MAX_DEVICES, optarg);
				return 2;
			}
			*mode = DEVICES_CPU;
			break;
		case 't':
			*topo_xml = optarg;
			break;
		case 'n':
		case 'N':
		case 'H': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || *optarg == '-' || v > 100000000) {
				fprintf(stderr,
					"swarmd: --%s takes a number from 0 (no limit) to 100000000, "
					"not \"%s\"\n",
					o == 'n'   ? "max-connections" :
					o == 'N' ? "max-connections-per-user" :
						     "hello-timeout-ms",
					optarg);
				return 2;
			}
			if (o == 'n')
				d.max_conns = (uint32_t)v;
			else if (o == 'N') {
				d.max_conns_per_user = (uint32_t)v;
				d.lim_conns_user_given = 1;
			} else
				d.hello_timeout_ns = (uint64_t)v * 1000000ull;
			break;
		}
		case 'm':
		case 'M': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || *optarg == '-' || v > 1000000) {
				fprintf(stderr,
					"swarmd: --max-sessions-per-%s takes a count from 0 (no limit) "
					"to 1000000, not \"%s\"\n",
					o == 'm' ? "client" : "user", optarg);
				return 2;
			}
			if (o == 'm') {
				d.lim.per_client = (uint32_t)v;
				d.lim_client_given = 1;
			} else {
				d.lim.per_user = (uint32_t)v;
			}
			break;
		}
		case 'b':
		case 'T': {
			uint64_t v;
			if (parse_size(optarg, &v)) {
				fprintf(stderr,
					"swarmd: --max-%s-bytes takes a size in bytes, or with K, M, G "
					"or T (powers of 1024), 0 for no limit; not \"%s\"\n",
					o == 'b' ? "session" : "user", optarg);
				return 2;
			}
			if (o == 'b')
				d.lim.session_bytes = v;
			else {
				d.lim.user_bytes = v;
				d.lim_user_bytes_given = 1;
			}
			break;
		}
		case 'i':
			d.instances = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || d.instances < 1 || d.instances > MAX_DEVICES) {
				fprintf(stderr,
					"swarmd: --instances takes a count from 1 to %d, not \"%s\"\n",
					MAX_DEVICES, optarg);
				return 2;
			}
			break;
		case 'S':
			d.spin_us = strtoull(optarg, &end, 10);
			if (*end || !*optarg) {
				fprintf(stderr, "swarmd: --spin-us takes a number, not \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		case 'u':
		case 'g':
		case 'a':
			if (parse_id(optarg, o == 'u', &id) < 0) {
				fprintf(stderr, "swarmd: no such %s \"%s\"\n",
					o == 'u' ? "user" : "group", optarg);
				return 2;
			}
			if (o == 'a' && d.n_admin_gid < MAX_ALLOW)
				d.admin_gid[d.n_admin_gid++] = id;
			if (o == 'u' && d.n_allow_uid < MAX_ALLOW)
				d.allow_uid[d.n_allow_uid++] = id;
			else if (o == 'g' && d.n_allow_gid < MAX_ALLOW)
				d.allow_gid[d.n_allow_gid++] = id;
			break;
		case 'w':
			swarm_copy_str(d.worker_path, sizeof d.worker_path, optarg);
			break;
		case 'l':
			d.log_level = swarm_log_parse_level(optarg);
			if (d.log_level < 0) {
				fprintf(stderr,
					"swarmd: --log-level takes debug, info, warn or error\n");
				return 2;
			}
			break;
		case 'r':
			swarm_copy_str(d.registry_dir, sizeof d.registry_dir, optarg);
			break;
		case 'V':
			d.verify_blobs = 0;
			break;
		case 'B':
			swarm_copy_str(d.backend_dir, sizeof d.backend_dir, optarg);
			break;
		case 'P':
			if (parse_preload(optarg))
				return 2;
			break;
		case 'A':
			d.as.on = 1;
			break;
		case 'I':
		case 'W':
		case 'C':
		case 'Y':
		case 'U': {
			double v = strtod(optarg, &end);
			/* util above the scale-down hysteresis: the policy refuses any other
			 * (it would decide nothing, silently, on every tick) */
			if (*end || !*optarg || !(v >= 0) ||
			    (o == 'U' && (v <= d.as.cfg.hysteresis || v > 1)) ||
			    ((o == 'I' || o == 'Y') && v > MAX_DEVICES) || v > 86400) {
				fprintf(stderr,
					"swarmd: --autoscale-%s takes %s, not \"%s\"\n",
					o == 'I' ? "idle" : o == 'Y' ? "standby" :
					o == 'W' ? "window-s" :
					o == 'C' ? "cooldown-s" : "util",
					o == 'I' || o == 'Y' ? "a device count" :
					o == 'U' ? "a fraction above the scale-down hysteresis "
						   "(0.1), at most 1" :
						   "seconds",
					optarg);
				return 2;
			}
			d.as.on = 1;
			if (o == 'I')
				d.as.idle_floor = (uint32_t)v;
			else if (o == 'Y')
				d.as.standby = (uint32_t)v;
			else if (o == 'W')
				d.as.cfg.stable_window_ns = (uint64_t)(v * 1e9);
			else if (o == 'C')
				d.as.cfg.cooldown_ns = (uint64_t)(v * 1e9);
			else
				d.as.cfg.target_util = v;
			break;
		}
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "swarmd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return 0;
}

/* The CUDA GPUs this process can use: their count, or 0 with why there are none in why. */
static int count_gpus(char *why, size_t why_len)
{
#ifdef SWARM_HAVE_CUDA
	int gpus = 0;
	int err = swarm_cuda_device_count(&gpus);
	if (err == 0 && gpus > 0)
		return gpus < MAX_DEVICES ? gpus : MAX_DEVICES;
	snprintf(why, why_len, "no CUDA GPU: %s (%s)", swarm_cuda_last_error(),
		 strerror(err < 0 ? -err : ENODEV));
	return 0;
#else
	snprintf(why, why_len,
		 "no CUDA GPU: CUDA is not built into this swarmd (configured without nvcc or "
		 "with -DSWARM_CUDA=OFF)");
	return 0;
#endif
}

/* The devices to serve: --devices cpu:N, gpu, or the default (every GPU where there is one,
 * else a CPU device per NUMA node). gpu_of[i] is device i's CUDA ordinal, -1 for a CPU
 * device. Returns the count, or 0 after logging why there is nothing to serve. */
static int plan_devices(int mode, int n_cpu, struct swarm_device_plan *plan, int *gpu_of)
{
	char why[256] = "";
	int gpus = mode == DEVICES_CPU ? 0 : count_gpus(why, sizeof why);
	if (mode == DEVICES_GPU && gpus == 0) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"--devices gpu: %s\"",
			  why);
		return 0;
	}
	if (gpus > 0) {
		/* Each GPU where hwloc puts it: the CUDA runtime's PCI bus id names the PCI
		 * object, whose first non-I/O ancestor gives the node (docs/balancing.md). The
		 * PCI objects are loaded only now that there are GPUs to place. */
		struct swarm_topology *io = NULL;
		if (swarm_topology_load_io(d.topo_xml, &io) == 0) {
			swarm_topology_free(d.topo);
			d.topo = io;
		}
		struct swarm_gpu_info info[MAX_DEVICES];
		for (int i = 0; i < gpus; i++) {
			memset(&info[i], 0, sizeof info[i]);
			info[i].cuda_index = i;
			info[i].numa_node = -1;
#ifdef SWARM_HAVE_CUDA
			if (swarm_cuda_pci_bus_id(i, info[i].busid, sizeof info[i].busid) == 0)
				info[i].numa_node = swarm_topology_busid_numa(d.topo, info[i].busid);
#endif
			gpu_of[i] = i;
		}
		int n = swarm_topology_plan_gpus(d.topo, info, gpus, plan, MAX_DEVICES);
		if (n <= 0) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=startup_failed reason=\"cannot plan the GPU workers: %s\"",
				  strerror(n < 0 ? -n : ENODEV));
			return 0;
		}
		for (int i = 0; i < n; i++)
			swarm_log(SWARM_LOG_INFO,
				  "event=gpu_found device=%s pci=%s numa=%d cpus=%s%s", plan[i].name,
				  info[i].busid[0] ? info[i].busid : "?", plan[i].numa_node,
				  plan[i].cpus,
				  mode == DEVICES_DEFAULT ?
					  " note=\"--devices cpu:N serves CPUs instead\"" :
					  "");
		return n;
	}
	if (mode == DEVICES_DEFAULT)
		swarm_log(SWARM_LOG_INFO, "event=no_gpus reason=\"%s\" serving=cpu", why);
	int n = swarm_topology_plan_cpu(d.topo, n_cpu, plan, MAX_DEVICES);
	if (n <= 0) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"no devices to serve\"");
		return 0;
	}
	for (int i = 0; i < n; i++)
		gpu_of[i] = -1;
	return n;
}

/* --instances: each planned device becomes d.instances devices of the same GPU (or CPU
 * node), with its cores split among them. Returns the new count, or 0 after logging why. */
static int plan_instances(struct swarm_device_plan *plan, int *gpu_of, int n)
{
	struct swarm_device_plan base[MAX_DEVICES];
	int base_gpu[MAX_DEVICES];
	memcpy(base, plan, (size_t)n * sizeof *plan);
	memcpy(base_gpu, gpu_of, (size_t)n * sizeof *gpu_of);
	int m = swarm_topology_plan_instances(d.topo, base, n, d.instances, plan, MAX_DEVICES);
	if (m <= 0) {
		swarm_log(SWARM_LOG_ERROR,
			  "event=startup_failed reason=\"--instances %d for %d devices: %s\"",
			  d.instances, n, m == -E2BIG ? "more workers than swarmd serves" :
							strerror(m < 0 ? -m : EINVAL));
		return 0;
	}
	for (int k = 0; k < m; k++)
		gpu_of[k] = base_gpu[k / d.instances];
	swarm_log(SWARM_LOG_INFO, "event=instances_planned devices=%d instances=%d workers=%d",
		  n, d.instances, m);
	return m;
}

int main(int argc, char **argv)
{
	d.spin_us = 50;
	d.verify_blobs = 1;
	d.instances = 1;
	swarm_wshare_init(&d.shares);
	d.inotify_fd = -1;
	d.log_level = SWARM_LOG_INFO;
	d.next_session_id = 1;
	swarm_balancer_config_default(&d.bal);
	swarm_as_config_default(&d.as.cfg);
	d.as.idle_floor = 1;
	d.allow_uid[d.n_allow_uid++] = getuid();
	d.max_conns = 1024;
	d.hello_timeout_ns = 5000000000ull;
	d.reserve_fd = -1;
	int n_cpu = 0, mode = DEVICES_DEFAULT;
	const char *topo_xml = NULL;
	int rc = parse_args(argc, argv, &mode, &n_cpu, &topo_xml);
	if (rc)
		return rc == 1 ? 0 : rc;
	swarm_log_init("swarmd", d.log_level);
	d.started_ns = swarm_now_ns();

	if (!d.socket_path[0]) {
		const char *env = getenv("SWARM_SOCKET");
		if (env && *env)
			swarm_copy_str(d.socket_path, sizeof d.socket_path, env);
		else if (swarm_default_socket(d.socket_path, sizeof d.socket_path) == 0)
			make_socket_dir(d.socket_path);
	}
	if (!d.worker_path[0]) {
		char self[PATH_MAX - 32];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n <= 0) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=startup_failed reason=\"no /proc/self/exe\"");
			return 1;
		}
		self[n] = 0;
		char *slash = strrchr(self, '/');
		*slash = 0;
		snprintf(d.worker_path, sizeof d.worker_path, "%s/swarm-worker", self);
	}
	if (access(d.worker_path, X_OK) < 0) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"no worker binary at %s\"",
			  d.worker_path);
		return 1;
	}

	open_registry();

	d.topo_xml = topo_xml;
	if (swarm_topology_load(topo_xml, &d.topo)) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"cannot load topology\"");
		return 1;
	}
	struct swarm_device_plan plan[MAX_DEVICES];
	int gpu_of[MAX_DEVICES];
	d.n_dev = plan_devices(mode, n_cpu, plan, gpu_of);
	if (d.n_dev <= 0)
		return 1; /* plan_devices logged why */
	if (d.instances > 1 && (d.n_dev = plan_instances(plan, gpu_of, d.n_dev)) <= 0)
		return 1;
	/* by default no client may take more than half the places, nor one user's sessions
	 * more than half the machine's memory */
	if (!d.lim_client_given)
		d.lim.per_client = (uint32_t)d.n_dev * SWARM_WORKER_MAX_SESSIONS / 2;
	if (!d.lim_conns_user_given)
		d.max_conns_per_user = d.max_conns / 2;
	/* room for the connections allowed (the soft limit raised to the hard one), and one
	 * descriptor in reserve for when accept meets EMFILE anyway */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}
	d.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!d.lim_user_bytes_given) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
		d.lim.user_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 : 0;
	}
	swarm_log(SWARM_LOG_INFO,
		  "event=limits sessions_per_client=%u sessions_per_user=%u session_bytes=%llu "
		  "user_bytes=%llu connections=%u connections_per_user=%u hello_timeout_ms=%llu",
		  d.lim.per_client, d.lim.per_user, (unsigned long long)d.lim.session_bytes,
		  (unsigned long long)d.lim.user_bytes, d.max_conns, d.max_conns_per_user,
		  (unsigned long long)(d.hello_timeout_ns / 1000000));

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	d.epfd = epoll_create1(EPOLL_CLOEXEC);
	d.listen_fd = listen_socket();
	if (d.listen_fd < 0) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed socket=%s error=\"%s\"%s",
			  d.socket_path, strerror(-d.listen_fd),
			  d.listen_fd == -EADDRINUSE ? " hint=\"another swarmd listens there\"" :
						       "");
		return 1;
	}
	d.listen_w.kind = W_LISTEN;
	d.signal_w.kind = W_SIGNAL;
	if (d.signal_fd < 0 || d.epfd < 0 || epoll_add(d.listen_fd, &d.listen_w) ||
	    epoll_add(d.signal_fd, &d.signal_w)) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	d.registry_w.kind = W_REGISTRY;
	if (d.inotify_fd >= 0 && epoll_add(d.inotify_fd, &d.registry_w))
		swarm_log(SWARM_LOG_WARN, "event=registry_watch_failed error=\"%s\"",
			  strerror(errno));
	swarm_log(SWARM_LOG_INFO, "event=listening socket=%s devices=%d numa_nodes=%d",
		  d.socket_path, d.n_dev, swarm_topology_numa_count(d.topo));
	for (int i = 0; i < d.n_dev; i++) {
		struct device *dv = &d.dev[i];
		dv->index = i;
		dv->plan = plan[i];
		dv->gpu = gpu_of[i];
		dv->ctl = dv->pidfd = -1;
		dv->ctl_w.kind = W_DEV_CTL;
		dv->pid_w.kind = W_DEV_PID;
		dv->stats_fd = swarm_stats_create(&dv->stats);
		dv->state_since_ns = swarm_now_ns();
		if (dv->stats_fd >= 0 && d.as.on && (uint32_t)i >= d.as.idle_floor) {
			/* The autoscaler wakes it when demand asks. */
			dv->state = SWARM_DEVICE_PARKED;
			swarm_log(SWARM_LOG_INFO, "event=device_parked device=%s reason=autoscale",
				  dv->plan.name);
			continue;
		}
		int err = dv->stats_fd < 0 ? dv->stats_fd : start_worker(dv);
		if (err) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=worker_start_failed device=%s error=\"%s\"", dv->plan.name,
				  strerror(-err));
			dv->state = SWARM_DEVICE_FAILED;
		}
	}

	/* With every device parked by the autoscaler nothing will say ready: say it now. */
	check_all_ready();

	/* The balancer's tick: smoothing load, moving sessions, parking drained devices. */
	d.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { { 0, TICK_MS * 1000000l }, { 0, TICK_MS * 1000000l } };
	d.timer_w.kind = W_TIMER;
	if (d.timer_fd < 0 || timerfd_settime(d.timer_fd, 0, &its, NULL) < 0 ||
	    epoll_add(d.timer_fd, &d.timer_w)) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"no timer: %s\"",
			  strerror(errno));
		return 1;
	}

	while (!d.stopping) {
		struct epoll_event evs[64];
		int timeout = d.pending ? 100 : -1;
		int n = epoll_wait(d.epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n && !d.stopping; i++) {
			struct watch *w = evs[i].data.ptr;
			switch (w->kind) {
			case W_LISTEN:
				accept_client();
				break;
			case W_SIGNAL: {
				struct signalfd_siginfo si;
				if (read(d.signal_fd, &si, sizeof si) == sizeof si) {
					swarm_log(SWARM_LOG_INFO, "event=signal signo=%u",
						  si.ssi_signo);
					d.stopping = 1;
				}
				break;
			}
			case W_CONN:
				handle_client((struct conn *)w);
				break;
			case W_DEV_CTL: {
				struct device *dv = (struct device *)((char *)w -
								      offsetof(struct device, ctl_w));
				if (evs[i].events & EPOLLOUT)
					handle_worker_writable(dv);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					handle_worker_msg(dv);
				break;
			}
			case W_REGISTRY:
				handle_registry_event();
				break;
			case W_TIMER: {
				uint64_t ticks;
				if (read(d.timer_fd, &ticks, sizeof ticks) == sizeof ticks) {
					uint64_t now = swarm_now_ns();
					update_load(now);
					hello_deadlines(now);
					if (d.as.on && d.ready_logged)
						autoscale_tick(now);
					rebalance();
				}
				break;
			}
			case W_DEV_PID:
				worker_died((struct device *)((char *)w -
							      offsetof(struct device, pid_w)));
				rebalance();
				break;
			}
		}
		if (d.pending)
			try_pending_opens();
	}
	shutdown_all();
	return 0;
}
