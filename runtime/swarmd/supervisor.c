/* supervisor.c: swarmd's workers. It starts one swarm-worker per device in service (a
 * SOCK_SEQPACKET control socket as fd 3, the stats page as fd 4), watches it through a pidfd,
 * restarts it when it dies (RESTART_LIMIT in RESTART_WINDOW_NS before the device is failed),
 * stops it when its device is parked, and handles its messages, one handler per type found
 * through a table. Messages to a worker go through its outbox (ipc/outbox.h): none is dropped
 * when its socket is full, and a worker that stops reading is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define RESTART_WINDOW_NS 10000000000ull
#define RESTART_LIMIT 5 /* restarts within the window before giving up */
#define STOP_WAIT_MS 5000

/* ---- the workers' control sockets ------------------------------------------------------------ */

/* Watches dv's control socket for writability as well while its outbox holds messages. */
static void dev_watch_out(struct device *dv, int on)
{
	if (dv->ctl < 0 || dv->watch_out == on)
		return;
	if (swarmd_watch_out(dv->ctl, &dv->ctl_w, on) == 0)
		dv->watch_out = on;
}

/* Sends a message to dv's worker. Nothing is dropped when its socket is full: the message
 * waits in dv's outbox and goes when the socket takes it (handle_worker_writable). A worker
 * that stops reading (SWARM_OUTBOX_MAX messages waiting) is killed, and its death handled as
 * any other. Returns 0 (sent or queued) or -errno (the worker is gone or going). */
int sup_send(struct device *dv, const void *msg, size_t len, const int *fds, int nfds)
{
	if (dv->ctl < 0)
		return -ENOTCONN;
	int rc = swarm_outbox_send(&dv->out, dv->ctl, msg, len, fds, nfds);
	if (rc == -ENOBUFS && dv->pid > 0) {
		swarm_log(
			SWARM_LOG_ERROR,
			"event=worker_unresponsive device=%s worker_pid=%d waiting=%zu reason=\"it "
			"stopped reading its control socket: killed\"",
			dv->plan.name, dv->pid, swarm_outbox_pending(&dv->out));
		kill(dv->pid, SIGKILL);
	}
	if (rc == 0 && swarm_outbox_pending(&dv->out))
		dev_watch_out(dv, 1);
	return rc;
}

/* dv's control socket takes messages again: what waits goes. */
void sup_worker_writable(struct device *dv)
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
	if (dv->watch_out)
		swarmd_watch_out(dv->ctl, &dv->ctl_w, 0);
	swarmd_unwatch(dv->ctl, &dv->ctl_w);
	close(dv->ctl);
	dv->ctl = -1;
	dv->watch_out = 0;
	swarm_outbox_clear(&dv->out);
}

/* ---- devices and workers -------------------------------------------------------------------- */

int sup_start_worker(struct device *dv)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* The model table's counters stay: they must not go backwards (runtime/stats.h). */
	swarm_stats_reset_worker(dv->stats);
	char idx[16], numa[16], spin[32], gpu[16];
	snprintf(idx, sizeof idx, "%d", dv->index);
	snprintf(gpu, sizeof gpu, "%d", dv->gpu);
	snprintf(numa, sizeof numa, "%d", dv->plan.numa_node);
	snprintf(spin, sizeof spin, "%llu", (unsigned long long)cfg.spin_us);
	const char *level = cfg.log_level == SWARM_LOG_DEBUG ? "debug" : "info";
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
		if (models_have_registry()) {
			argv[argc++] = "--registry";
			argv[argc++] = cfg.registry_dir;
		}
		if (!cfg.verify_blobs)
			argv[argc++] = "--no-verify";
		if (cfg.log_format == SWARM_LOG_JSON) {
			argv[argc++] = "--log-format";
			argv[argc++] = "json";
		}
		if (cfg.backend_dir[0]) {
			argv[argc++] = "--backend-dir";
			argv[argc++] = cfg.backend_dir;
		}
		argv[argc] = NULL;
		execv(cfg.worker_path, (char *const *)argv);
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
	if (dv->pidfd < 0 || swarmd_watch(dv->ctl, &dv->ctl_w) ||
	    swarmd_watch(dv->pidfd, &dv->pid_w)) {
		int err = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return err ? err : -EIO;
	}
	swarm_log(SWARM_LOG_INFO, "event=worker_started device=%s worker_pid=%d cpus=%s numa=%d",
		  dv->plan.name, pid, dv->plan.cpus, dv->plan.numa_node);
	return 0;
}

void sup_check_all_ready(void)
{
	if (d.ready)
		return;
	for (int i = 0; i < d.n_dev; i++)
		if (d.dev[i].state == SWARM_DEVICE_WARMING)
			return;
	d.ready = 1;
	swarm_log(SWARM_LOG_INFO, "event=ready socket=%s devices=%d", cfg.socket_path, d.n_dev);
}

/* The sessions dv's worker held when it died: an open not yet answered fails, one going away
 * is freed, the others are placed again. Returns how many move. */
static int orphan_sessions(struct device *dv, uint64_t now)
{
	int moving = 0;
	for (struct session *s = d.sessions, *next; s; s = next) {
		next = s->next;
		if (s->device != dv->index)
			continue;
		s->device = -1;
		if (s->state == S_ATTACHING && !s->reattach && s->client) {
			session_open_failed(s->client, s->open_seq, s->model_name, s->version,
					    -ECONNABORTED,
					    "the worker died while attaching the session; retry");
			session_free(s);
		} else if (s->state == S_DETACHING || !s->client) {
			session_free(s);
		} else if (s->state != S_LOST) {
			place_evacuate(s, now);
			moving++;
		}
	}
	return moving;
}

/* What follows a worker's death (exit status status): parked when it was being stopped,
 * failed when it cannot start or dies too often, else started again. */
static void after_death(struct device *dv, int status, uint64_t now)
{
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
	int err = sup_start_worker(dv);
	if (err) {
		dv->state = SWARM_DEVICE_FAILED;
		swarm_log(SWARM_LOG_ERROR, "event=worker_restart_failed device=%s error=\"%s\"",
			  dv->plan.name, strerror(-err));
	}
}

void sup_worker_died(struct device *dv)
{
	int status = 0;
	/* Its pidfd said it exited; a report that comes when it has not (none should) is
	 * ignored rather than waited on. */
	if (dv->pid <= 0 || waitpid(dv->pid, &status, WNOHANG) == 0)
		return;
	/* a pair of its own (signal=N or exit=N), so that the JSON form has it as one */
	const char *how = WIFSIGNALED(status) ? "signal" : "exit";
	int code = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
	swarmd_unwatch(dv->pidfd, &dv->pid_w);
	close(dv->pidfd);
	dv->pidfd = -1;
	dev_ctl_close(dv);
	uint64_t now = swarm_now_ns();
	int moving = orphan_sessions(dv, now);
	swarm_log(SWARM_LOG_WARN,
		  "event=worker_died device=%s worker_pid=%d %s=%d sessions_moving=%d",
		  dv->plan.name, dv->pid, how, code, moving);
	/* Its copies are offered no more; workers that mapped them keep them (they hold
	 * references of their own), and the next worker to load a blob uploads it afresh. */
	int dropped = swarm_wshare_drop_exporter(&d.shares, dv->index);
	if (dropped)
		swarm_log(SWARM_LOG_INFO, "event=weights_unshared device=%s copies=%d reason=died",
			  dv->plan.name, dropped);
	dv->pid = -1;
	swarm_stats_worker_gone(dv->stats);
	mem_worker_gone(dv);
	model_ops_worker_gone(dv);
	dv->mem_policy[0] = dv->bound_cpus[0] = 0;
	if (dv->state == SWARM_DEVICE_STANDBY)
		dv->to_standby = 1; /* its replacement is a spare again */
	after_death(dv, status, now);
}

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
		  rc == 0       ? "kept" :
		  rc == -EEXIST ? "already_offered" :
				  strerror(-rc));
}

/* Before an ATTACH or SWITCH that makes dv's worker load v: hands it the copy of v's blob
 * that another worker on the same GPU offered, if there is one. The worker maps it instead of
 * copying the blob, or, when it does not fit, loads as ever. */
void sup_offer_weights(struct device *dv, const struct swarm_msg_version *v)
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
	int rc = sup_send(dv, &m, sizeof m, &e->fd, 1);
	swarm_log(rc ? SWARM_LOG_WARN : SWARM_LOG_INFO,
		  "event=weights_offered device=%s from=%s sha=%.16s result=%s", dv->plan.name,
		  d.dev[e->exporter].plan.name, sha, rc ? strerror(-rc) : "sent");
}

/* Brings a parked device into service (start its worker: WARMING, then ACTIVE), or a warm
 * spare at once. */
int sup_device_wake(struct device *dv, const char *why)
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
	int err = sup_start_worker(dv);
	if (err) {
		dv->state = SWARM_DEVICE_FAILED;
		swarm_log(SWARM_LOG_ERROR,
			  "event=device_failed device=%s reason=\"cannot start "
			  "its worker: %s\"",
			  dv->plan.name, strerror(-err));
		return err;
	}
	swarm_log(SWARM_LOG_INFO, "event=device_warming device=%s reason=%s", dv->plan.name, why);
	return 0;
}

/* Takes a device out of service: its sessions move, then its worker stops (PARKED). */
void sup_device_drain(struct device *dv, const char *why)
{
	dv->state = SWARM_DEVICE_DRAINING;
	dv->state_since_ns = swarm_now_ns();
	swarm_log(SWARM_LOG_INFO, "event=device_draining device=%s sessions=%u reason=%s",
		  dv->plan.name, dv->sessions, why);
}

int sup_any_warming(void)
{
	for (int i = 0; i < d.n_dev; i++)
		if (d.dev[i].state == SWARM_DEVICE_WARMING)
			return 1;
	return 0;
}

int sup_send_detach(struct device *dv, uint64_t id, uint32_t flags)
{
	struct swarm_msg_detach dm;
	swarm_msg_init(&dm.h, SWARM_MSG_DETACH, sizeof dm, 0);
	dm.session_id = id;
	dm.flags = flags;
	return sup_send(dv, &dm, sizeof dm, NULL, 0);
}

/* ---- one handler per worker message ------------------------------------------------------------
 * Each gets a message swarm_msg_check accepted, of its type and size, its text fields not yet
 * terminated (a handler that prints one terminates it), and the fds that came with it: a
 * handler that keeps one sets its slot to -1; the others are closed after it. */

union worker_msg {
	struct swarm_msg_hdr h;
	struct swarm_msg_worker_ready ready;
	struct swarm_msg_attach_reply attach;
	struct swarm_msg_detached detached;
	struct swarm_msg_switched switched;
	struct swarm_msg_loaded loaded;
	struct swarm_msg_weights weights;
	struct swarm_msg_residency residency;
};

/* The worker is ready: its device comes into service (or becomes a warm spare). */
static void on_ready(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	(void)fds;
	(void)nfds;
	m->ready.text[sizeof m->ready.text - 1] = 0;
	mem_worker_ready(dv, &m->ready); /* a warm spare's too: it may preload */
	double warm_ms = (double)(swarm_now_ns() - dv->state_since_ns) / 1e6;
	if (dv->to_standby && dv->state == SWARM_DEVICE_WARMING) {
		/* A warm spare: ready, out of service until woken. */
		dv->to_standby = 0;
		dv->state = SWARM_DEVICE_STANDBY;
		dv->state_since_ns = swarm_now_ns();
		swarm_log(SWARM_LOG_INFO,
			  "event=device_standby device=%s warm_ms=%.1f worker_pid=%d",
			  dv->plan.name, warm_ms, dv->pid);
		sup_check_all_ready();
		sessions_try_pending();
		preload_step();
		return;
	}
	/* A device drained while its worker started stays draining. */
	if (dv->state != SWARM_DEVICE_DRAINING) {
		dv->state = SWARM_DEVICE_ACTIVE;
		dv->state_since_ns = swarm_now_ns();
	}
	dv->io_backend = m->ready.io_backend;
	swarm_copy_str(dv->mem_policy, sizeof dv->mem_policy, m->ready.mem_policy);
	swarm_copy_str(dv->bound_cpus, sizeof dv->bound_cpus, m->ready.cpus);
	dv->busy = 0.0f;
	dv->busy_ns_last = swarm_stat_get(&dv->stats->busy_ns);
	dv->busy_t_last = swarm_now_ns();
	swarm_log(SWARM_LOG_INFO,
		  "event=device_active device=%s warm_ms=%.1f worker_pid=%d cpus=%s numa=%d io=%s "
		  "bind=\"%s\"",
		  dv->plan.name, warm_ms, dv->pid, dv->plan.cpus, dv->plan.numa_node,
		  m->ready.io_backend == 1 ? "io_uring" : "epoll", m->ready.text);
	sup_check_all_ready();
	sessions_try_pending();
	place_rebalance();
	preload_step();
	model_ops_step();
}

static void on_loaded(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	(void)fds;
	(void)nfds;
	if (!as_loaded(dv, &m->loaded) && !model_ops_loaded(dv, &m->loaded))
		preload_done(dv, &m->loaded);
}

/* The worker took a session (an open's, or a move's) or refused it. */
static void on_attach_reply(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	(void)fds;
	(void)nfds;
	struct session *s = session_find(m->attach.session_id);
	if (!s || s->state != S_ATTACHING)
		return;
	m->attach.text[sizeof m->attach.text - 1] = 0;
	if (m->attach.status)
		mem_attach_failed(dv, s->model_name, s->version);
	if (s->reattach)
		place_moved(s, dv, m->attach.status, m->attach.text);
	else
		session_attached(s, dv, &m->attach);
}

/* The worker serves a session with another version now (a SWITCH), or could not. */
static void on_switched(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	(void)dv;
	(void)fds;
	(void)nfds;
	struct session *s = session_find(m->switched.session_id);
	m->switched.text[sizeof m->switched.text - 1] = 0;
	if (!s)
		return;
	if (m->switched.status) {
		swarm_log(SWARM_LOG_WARN,
			  "event=switch_failed session=%llu model=%s version=%u reason=\"%s\"",
			  (unsigned long long)s->id, s->model_name, m->switched.version,
			  m->switched.text);
		return;
	}
	place_switched(s, m->switched.version);
	swarm_log(SWARM_LOG_INFO, "event=session_switched session=%llu model=%s version=%u",
		  (unsigned long long)s->id, s->model_name, s->version);
}

/* The worker let a session go: asked to (a close, a move), or for breaking the protocol. */
static void on_detached(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	(void)dv;
	(void)fds;
	(void)nfds;
	struct session *s = session_find(m->detached.session_id);
	if (!s)
		return;
	if (s->state == S_MOVING && m->detached.reason == 0) {
		place_let_go(s);
		return;
	}
	if (s->state == S_DETACHING || !s->client) {
		session_free(s);
		return;
	}
	/* The worker dropped it for breaking the protocol; the segment already says so. The
	 * record stays until the client closes. */
	m->detached.text[sizeof m->detached.text - 1] = 0;
	swarm_log(SWARM_LOG_WARN,
		  "event=session_violation session=%llu client_pid=%d reason=\"%s\"",
		  (unsigned long long)s->id, s->client->pid, m->detached.text);
	session_uncount(s);
	s->device = -1;
	s->state = S_LOST;
}

static void on_weights(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	weights_msg(dv, m->h.type, &m->weights, fds, nfds);
}

static void on_residency(struct device *dv, union worker_msg *m, int *fds, int *nfds)
{
	(void)fds;
	(void)nfds;
	mem_residency(dv, &m->residency);
}

static void (*const worker_handlers[])(struct device *, union worker_msg *, int *, int *) = {
	[SWARM_MSG_WORKER_READY] = on_ready,        [SWARM_MSG_LOADED] = on_loaded,
	[SWARM_MSG_ATTACH_REPLY] = on_attach_reply, [SWARM_MSG_SWITCHED] = on_switched,
	[SWARM_MSG_DETACHED] = on_detached,         [SWARM_MSG_WEIGHTS_SHARE] = on_weights,
	[SWARM_MSG_WEIGHTS_UNSHARE] = on_weights,   [SWARM_MSG_RESIDENCY] = on_residency,
};

void sup_worker_message(struct device *dv, const void *msg, int n, int *fds, int nfds)
{
	union worker_msg m;
	memset(&m, 0, sizeof m);
	memcpy(&m, msg, (size_t)n < sizeof m ? (size_t)n : sizeof m);
	int type = (size_t)n > sizeof m ? -EBADMSG : swarm_msg_check(&m, (size_t)n);
	/* Only a share carries an fd. */
	int keep_fds = type == SWARM_MSG_WEIGHTS_SHARE;
	if (type > 0 && (size_t)type < sizeof worker_handlers / sizeof worker_handlers[0] &&
	    worker_handlers[type]) {
		int kept = keep_fds ? nfds : 0;
		worker_handlers[type](dv, &m, fds, &kept);
		if (keep_fds)
			nfds = kept;
	} else {
		swarm_log(SWARM_LOG_WARN, "event=worker_bad_message device=%s result=%d",
			  dv->plan.name, type);
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

void sup_handle_worker(struct device *dv)
{
	while (dv->ctl >= 0) {
		union worker_msg m;
		int fds[SWARM_MSG_MAX_FDS], nfds = SWARM_MSG_MAX_FDS;
		int n = swarm_msg_recv(dv->ctl, &m, sizeof m, fds, &nfds);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			/* The worker is going; its pidfd tells when it is gone. */
			dev_ctl_close(dv);
			return;
		}
		sup_worker_message(dv, &m, n, fds, nfds);
	}
}

/* Stops every worker: SIGTERM, then SIGKILL after STOP_WAIT_MS. */
void sup_stop_all(void)
{
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
				swarm_log(SWARM_LOG_WARN,
					  "event=worker_kill device=%s worker_pid=%d",
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
}
