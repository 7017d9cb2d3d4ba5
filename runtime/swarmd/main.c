/* main.c: swarmd's start, its event loop and its shut-down (swarmd.h says what each module
 * does).
 *
 * Failure handling: a client whose socket closes loses its sessions (the worker detaches
 * them, then swarmd frees them); a worker that dies has its sessions marked lost in their
 * segments (their clients' waits return -ECONNABORTED at once) and is restarted; a worker
 * that dies too often is taken out of service. SIGTERM or SIGINT stops everything cleanly.
 *
 * The loop is runtime/event_loop.c, the worker's: io_uring multishot polls, else epoll, both
 * edge-triggered. So every handler drains its fd, or, where it stops early to be fair to the
 * others (a client that floods), asks for another pass with swarmd_again.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/swarmd/counters.h"
#include "runtime/swarmd/health.h"
#include "runtime/swarmd/metrics.h"
#include "runtime/swarmd/notify.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define MAX_EVENTS 64
#define MAX_AGAIN 1024 /* watches queued for another pass; beyond it they wait a tick */

struct swarmd_config cfg;
struct swarmd d;

static struct {
	struct watch signal_w, timer_w, registry_w;
	int signal_fd, timer_fd;
	uint64_t again[MAX_AGAIN]; /* tags owed another pass */
	int n_again;
} m;

/* The watches by slot (struct watch's comment in swarmd.h says why): a slot's generation
 * changes each time it is let go, so a report with an old generation finds nothing. */
static struct {
	struct watch **obj; /* NULL: a free slot */
	uint32_t *gen;
	uint32_t *free, n_free;
	uint32_t n, cap;
} wt;

#define TAG_SLOT(t) ((uint32_t)(t))
#define TAG_GEN(t) ((uint32_t)((t) >> 32) & 0x7fffffffu)

static int slot_take(struct watch *w)
{
	uint32_t slot;
	if (wt.n_free) {
		slot = wt.free[--wt.n_free];
	} else {
		if (wt.n == wt.cap) {
			uint32_t cap = wt.cap ? 2 * wt.cap : 256;
			struct watch **obj = realloc(wt.obj, cap * sizeof *obj);
			if (obj)
				wt.obj = obj;
			uint32_t *gen = realloc(wt.gen, cap * sizeof *gen);
			if (gen)
				wt.gen = gen;
			uint32_t *fr = realloc(wt.free, cap * sizeof *fr);
			if (fr)
				wt.free = fr;
			if (!obj || !gen || !fr)
				return -ENOMEM;
			wt.cap = cap;
		}
		slot = wt.n++;
		wt.gen[slot] = 1;
	}
	wt.obj[slot] = w;
	w->tag = (uint64_t)wt.gen[slot] << 32 | slot;
	return 0;
}

static void slot_give(struct watch *w)
{
	uint32_t slot = TAG_SLOT(w->tag);
	if (!w->tag || slot >= wt.n || wt.obj[slot] != w)
		return;
	wt.obj[slot] = NULL;
	wt.gen[slot] = (wt.gen[slot] + 1) & 0x7fffffffu;
	if (!wt.gen[slot])
		wt.gen[slot] = 1; /* 0 would make a tag of 0, "not watched" */
	wt.free[wt.n_free++] = slot;
	w->tag = 0;
}

/* The watch a report is for, or NULL when it is stale. */
static struct watch *slot_find(uint64_t tag)
{
	uint32_t slot = TAG_SLOT(tag);
	if (slot >= wt.n || !wt.obj[slot] || wt.gen[slot] != TAG_GEN(tag))
		return NULL;
	return wt.obj[slot];
}

int swarmd_watch(int fd, struct watch *w)
{
	int err = slot_take(w);
	if (err)
		return err;
	err = swarm_loop_add(d.loop, fd, w->tag);
	if (err)
		slot_give(w);
	return err;
}

void swarmd_unwatch(int fd, struct watch *w)
{
	if (!w->tag)
		return;
	(void)swarm_loop_del(d.loop, fd, w->tag);
	slot_give(w);
}

int swarmd_watch_out(int fd, struct watch *w, int on)
{
	return w->tag ? swarm_loop_watch_out(d.loop, fd, w->tag, on) : -ENOENT;
}

void swarmd_again(struct watch *w)
{
	for (int i = 0; i < m.n_again; i++)
		if (m.again[i] == w->tag)
			return;
	if (w->tag && m.n_again < MAX_AGAIN)
		m.again[m.n_again++] = w->tag;
}

/* The TICK_MS timer: load smoothing, models' last use, hello deadlines, the autoscaler,
 * rebalancing. */
static void tick(void)
{
	uint64_t ticks;
	if (read(m.timer_fd, &ticks, sizeof ticks) != sizeof ticks)
		return;
	uint64_t now = swarm_now_ns();
	place_update_load(now);
	mem_tick(now);
	model_ops_step(); /* a pin that found no room when its worker started again */
	ctl_hello_deadlines(now);
	if (cfg.as.on && d.ready)
		as_tick(now);
	place_rebalance();
	notify_watchdog(now); /* from the loop itself: a hung loop misses it */
}

static void dispatch(uint64_t tag)
{
	int out = (tag & SWARM_LOOP_OUT) != 0;
	struct watch *w = slot_find(tag & ~SWARM_LOOP_OUT);
	struct signalfd_siginfo si;
	if (!w)
		return; /* stale: its fd was unwatched after the report was made */
	switch (w->kind) {
	case W_LISTEN:
		ctl_handle_listen();
		break;
	case W_SIGNAL:
		while (read(m.signal_fd, &si, sizeof si) == sizeof si) {
			swarm_log(SWARM_LOG_INFO, "event=signal signo=%u", si.ssi_signo);
			d.stopping = 1;
		}
		break;
	case W_CONN:
		if (out)
			ctl_client_writable((struct conn *)w);
		else
			ctl_handle_client((struct conn *)w);
		break;
	case W_DEV_CTL: {
		struct device *dv = (struct device *)((char *)w - offsetof(struct device, ctl_w));
		if (out)
			sup_worker_writable(dv);
		else
			sup_handle_worker(dv);
		break;
	}
	case W_DEV_PID:
		sup_worker_died((struct device *)((char *)w - offsetof(struct device, pid_w)));
		place_rebalance();
		break;
	case W_REGISTRY:
		models_handle_event();
		break;
	case W_TIMER:
		tick();
		break;
	}
}

/* Runs the loop until SIGTERM or SIGINT. */
static void run(void)
{
	while (!d.stopping) {
		uint64_t tags[MAX_EVENTS];
		/* another pass is owed: look, do not sleep; a waiting open is retried each 100 ms
		 */
		int64_t timeout = m.n_again ? 0 : d.pending ? 100000000 : -1;
		int n = swarm_loop_wait(d.loop, timeout, tags, MAX_EVENTS);
		if (n < 0) {
			swarm_log(SWARM_LOG_ERROR, "event=loop_failed error=\"%s\"", strerror(-n));
			break;
		}
		for (int i = 0; i < n && !d.stopping; i++)
			dispatch(tags[i]);
		/* Those owed a pass; a handler may queue its watch again (it goes next time). */
		uint64_t again[MAX_AGAIN];
		int n_again = m.n_again;
		memcpy(again, m.again, (size_t)n_again * sizeof *again);
		m.n_again = 0;
		for (int i = 0; i < n_again && !d.stopping; i++)
			dispatch(again[i]);
		if (d.pending)
			sessions_try_pending();
		uint64_t now = swarm_now_ns();
		health_update(now);
		counters_publish(now);
		notify_health();
	}
	health_update(swarm_now_ns()); /* stopping: no longer ready */
}

/* Where swarm-worker is: beside swarmd unless --worker says. Returns 0 or -1 (logged). */
static int find_worker(void)
{
	if (!cfg.worker_path[0]) {
		char self[PATH_MAX - 32];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n <= 0) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=startup_failed reason=\"no /proc/self/exe\"");
			return -1;
		}
		self[n] = 0;
		*strrchr(self, '/') = 0;
		snprintf(cfg.worker_path, sizeof cfg.worker_path, "%s/swarm-worker", self);
	}
	if (access(cfg.worker_path, X_OK) < 0) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"no worker binary at %s\"",
			  cfg.worker_path);
		return -1;
	}
	return 0;
}

/* The devices to serve (runtime/plan.h), into d.dev. Returns 0 or -1 (logged). */
static int plan(struct swarm_device_plan *plan, int *gpu_of)
{
	char why[256] = "";
	struct swarm_gpu_info gpus[MAX_DEVICES];
	int n_gpus = 0;
	if (cfg.devices.mode != SWARM_PLAN_CPU) {
		/* The GPUs where hwloc puts them: the CUDA runtime's PCI bus id names the PCI
		 * object, whose first non-I/O ancestor gives the node (docs/balancing.md). The PCI
		 * objects are loaded only now that there may be GPUs to place. */
		struct swarm_topology *io = NULL;
		if (swarm_topology_load_io(cfg.topo_xml, &io) == 0) {
			swarm_topology_free(d.topo);
			d.topo = io;
		}
		n_gpus = swarm_plan_find_gpus(d.topo, gpus, MAX_DEVICES, why, sizeof why);
	}
	if (cfg.devices.mode == SWARM_PLAN_DEFAULT && n_gpus == 0)
		swarm_log(SWARM_LOG_INFO, "event=no_gpus reason=\"%s\" serving=cpu", why);
	d.n_dev = swarm_plan_devices(d.topo, &cfg.devices, gpus, n_gpus, plan, gpu_of, MAX_DEVICES,
				     why, sizeof why);
	if (d.n_dev <= 0) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"%s%s\"",
			  cfg.devices.mode == SWARM_PLAN_GPU && !n_gpus ? "--devices gpu: " : "",
			  why);
		return -1;
	}
	for (int i = 0; i < n_gpus && i < d.n_dev && cfg.devices.instances <= 1; i++)
		swarm_log(
			SWARM_LOG_INFO,
			cfg.devices.mode == SWARM_PLAN_DEFAULT ?
				"event=gpu_found device=%s pci=%s numa=%d cpus=%s note=\"--devices "
				"cpu:N serves CPUs instead\"" :
				"event=gpu_found device=%s pci=%s numa=%d cpus=%s",
			plan[i].name, gpus[i].busid[0] ? gpus[i].busid : "?", plan[i].numa_node,
			plan[i].cpus);
	if (cfg.devices.instances > 1)
		swarm_log(SWARM_LOG_INFO,
			  "event=instances_planned devices=%d instances=%d workers=%d",
			  d.n_dev / cfg.devices.instances, cfg.devices.instances, d.n_dev);
	return 0;
}

/* The limits that default to a share of what this machine and plan have. */
static void default_limits(void)
{
	/* by default no client may take more than half the places, nor one user's sessions
	 * more than half the machine's memory */
	if (!cfg.lim_client_given)
		cfg.lim.per_client = (uint32_t)d.n_dev * SWARM_WORKER_MAX_SESSIONS / 2;
	if (!cfg.lim_conns_user_given)
		cfg.max_conns_per_user = cfg.max_conns / 2;
	if (!cfg.lim_user_bytes_given) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
		cfg.lim.user_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 :
							     0;
	}
	/* room for the connections allowed: the soft limit raised to the hard one */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}
	swarm_log(SWARM_LOG_INFO,
		  "event=limits sessions_per_client=%u sessions_per_user=%u session_bytes=%llu "
		  "user_bytes=%llu connections=%u connections_per_user=%u hello_timeout_ms=%llu",
		  cfg.lim.per_client, cfg.lim.per_user, (unsigned long long)cfg.lim.session_bytes,
		  (unsigned long long)cfg.lim.user_bytes, cfg.max_conns, cfg.max_conns_per_user,
		  (unsigned long long)(cfg.hello_timeout_ns / 1000000));
}

/* Signals, the loop, the socket, the timer. Returns 0 or -1 (logged). */
static int start_loop(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	m.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	const char *no_uring = getenv("SWARM_NO_IO_URING");
	int err = swarm_loop_create(no_uring && *no_uring == '1', &d.loop);
	if (err) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"no event loop: %s\"",
			  strerror(-err));
		return -1;
	}
	/* The registry before the socket: a startup error leaves no socket behind. */
	m.registry_w.kind = W_REGISTRY;
	if (models_open(&m.registry_w))
		return -1;
	err = ctl_listen();
	if (err) {
		swarm_log(SWARM_LOG_ERROR,
			  err == -EADDRINUSE ? "event=startup_failed socket=%s error=\"%s\" "
					       "hint=\"another swarmd listens there\"" :
					       "event=startup_failed socket=%s error=\"%s\"",
			  cfg.socket_path, strerror(-err));
		return -1;
	}
	m.signal_w.kind = W_SIGNAL;
	m.timer_w.kind = W_TIMER;
	m.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { { 0, TICK_MS * 1000000l }, { 0, TICK_MS * 1000000l } };
	if (m.signal_fd < 0 || (err = swarmd_watch(m.signal_fd, &m.signal_w)) || m.timer_fd < 0 ||
	    timerfd_settime(m.timer_fd, 0, &its, NULL) < 0 ||
	    (err = swarmd_watch(m.timer_fd, &m.timer_w))) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed error=\"%s\"",
			  strerror(err ? -err : errno));
		return -1;
	}
	swarm_log(SWARM_LOG_INFO, "event=listening socket=%s devices=%d numa_nodes=%d io=%s",
		  cfg.socket_path, d.n_dev, swarm_topology_numa_count(d.topo),
		  swarm_loop_backend(d.loop) == SWARM_LOOP_IO_URING ? "io_uring" : "epoll");
	return 0;
}

/* Each planned device: its stats page, and its worker started (or parked, for the
 * autoscaler to wake). */
static void start_devices(const struct swarm_device_plan *plan, const int *gpu_of)
{
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
		if (dv->stats_fd >= 0 && cfg.as.on && (uint32_t)i >= cfg.as.idle_floor) {
			/* The autoscaler wakes it when demand asks. */
			dv->state = SWARM_DEVICE_PARKED;
			swarm_log(SWARM_LOG_INFO, "event=device_parked device=%s reason=autoscale",
				  dv->plan.name);
			continue;
		}
		int err = dv->stats_fd < 0 ? dv->stats_fd : sup_start_worker(dv);
		if (err) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=worker_start_failed device=%s error=\"%s\"", dv->plan.name,
				  strerror(-err));
			dv->state = SWARM_DEVICE_FAILED;
		}
	}
	/* With every device parked by the autoscaler nothing will say ready: say it now. */
	sup_check_all_ready();
}

static void shutdown_all(void)
{
	d.stopping = 1;
	notify_stopping();
	metrics_stop(); /* before the stats pages it reads are unmapped */
	swarm_log(SWARM_LOG_INFO, "event=stopping sessions_open=%d", (int)!!d.sessions);
	for (struct session *s = d.sessions; s; s = s->next)
		session_mark(s, SWARM_SEG_STATE_WORKER_LOST);
	sup_stop_all();
	sessions_free_all();
	model_ops_free_all();
	ctl_close_all();
	for (int i = 0; i < d.n_dev; i++) {
		swarm_stats_unmap(d.dev[i].stats);
		close(d.dev[i].stats_fd);
	}
	close(m.signal_fd);
	close(m.timer_fd);
	swarm_loop_destroy(d.loop);
	free(wt.obj);
	free(wt.gen);
	free(wt.free);
	swarm_topology_free(d.topo);
	models_close();
	swarm_log(SWARM_LOG_INFO, "event=stopped");
}

int main(int argc, char **argv)
{
	swarm_wshare_init(&d.shares);
	int rc = swarmd_options(argc, argv);
	if (rc)
		return rc == 1 ? 0 : rc;
	swarm_log_init("swarmd", cfg.log_level);
	swarm_log_set_format(cfg.log_format);
	notify_start();
	d.started_ns = swarm_now_ns();
	if (find_worker())
		return 1;
	if (swarm_topology_load(cfg.topo_xml, &d.topo)) {
		swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"cannot load topology\"");
		return 1;
	}
	struct swarm_device_plan plans[MAX_DEVICES];
	int gpu_of[MAX_DEVICES];
	if (plan(plans, gpu_of))
		return 1;
	default_limits();
	if (start_loop())
		return 1;
	start_devices(plans, gpu_of);
	counters_publish(swarm_now_ns());
	if (metrics_start()) {
		shutdown_all();
		return 1;
	}
	run();
	shutdown_all();
	return 0;
}
