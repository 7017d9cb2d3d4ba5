/* loop.c: the worker's state, set up and torn down, and its main loop. Each pass serves every
 * session and runs the batches that are due; with nothing to do the worker spins for its
 * budget, then announces in every session that it sleeps, looks once more, and sleeps in the
 * event loop (io_uring, else epoll) until a session's eventfd, the control socket, the
 * housekeeping tick or the next batch's deadline wakes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "runtime/log.h"
#include "runtime/worker/worker.h"

#define TICK_NS 100000000ll /* the housekeeping timer: heartbeat, orphans, outbox */
#define MAX_EVENTS 64

volatile sig_atomic_t worker_sigterm;

void worker_defaults(struct worker *w)
{
	memset(w, 0, sizeof *w);
	w->ctl = -1;
	w->timer = -1;
	w->numa_node = -1;
	w->spin_ns = 50000;
	w->device_index = -1;
	w->verify_blobs = 1;
	w->gpu = -1;
	swarm_wshare_init(&w->offers);
}

int worker_open_loop(struct worker *w, int force_epoll)
{
	int err = swarm_loop_create(force_epoll, &w->loop);
	if (err) {
		swarm_log(SWARM_LOG_ERROR, "event=loop_failed error=\"%s\"", strerror(-err));
		return err;
	}
	w->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	if (w->timer < 0 || timerfd_settime(w->timer, 0, &its, NULL) < 0 ||
	    swarm_loop_add(w->loop, w->timer, TAG_TIMER) ||
	    (w->ctl >= 0 && swarm_loop_add(w->loop, w->ctl, TAG_CTL))) {
		err = errno ? -errno : -EINVAL;
		swarm_log(SWARM_LOG_ERROR, "event=loop_setup_failed error=\"%s\"", strerror(errno));
		return err;
	}
	int fl = w->ctl >= 0 ? fcntl(w->ctl, F_GETFL) : 0;
	if (fl < 0 || (w->ctl >= 0 && fcntl(w->ctl, F_SETFL, fl | O_NONBLOCK) < 0)) {
		swarm_log(SWARM_LOG_ERROR, "event=ctl_fd_invalid fd=%d", w->ctl);
		return -EBADF;
	}
	return 0;
}

int worker_init_bare(struct worker *w, int ctl)
{
	worker_defaults(w);
	w->ctl = ctl;
	swarm_copy_str(w->name, sizeof w->name, "bare");
	int fd = swarm_stats_create(&w->stats);
	if (fd < 0)
		return fd;
	close(fd);
	int err = swarm_device_cpu_create(1, &w->dev);
	if (!err)
		err = worker_open_loop(w, 1);
	if (err)
		worker_fini(w);
	return err;
}

void worker_release(struct worker *w)
{
	while (w->n_sessions)
		session_free(w, w->active[0]);
	/* What is left is held by preloads (LOAD), one reference each, or idle. */
	for (struct version *v = w->versions, *next; v; v = next) {
		next = v->next;
		if (v->preloaded) {
			v->preloaded = 0;
			version_put(w, v);
		}
	}
	versions_free_idle(w);
	swarm_wshare_drop_exporter(&w->offers, -1);
}

void worker_fini(struct worker *w)
{
	worker_release(w);
	if (w->loop)
		swarm_loop_destroy(w->loop);
	if (w->dev)
		w->dev->i->destroy(w->dev);
	if (w->timer >= 0)
		close(w->timer);
	if (w->ctl >= 0)
		close(w->ctl);
	swarm_outbox_clear(&w->out);
	if (w->stats)
		swarm_stats_unmap(w->stats);
	w->loop = NULL;
	w->dev = NULL;
	w->timer = w->ctl = -1;
	w->stats = NULL;
}

/* Handles what the loop reports. Returns how many events were more than a timer tick. */
static int handle_events(struct worker *w, int64_t timeout_ns)
{
	uint64_t tags[MAX_EVENTS];
	int n = swarm_loop_wait(w->loop, timeout_ns, tags, MAX_EVENTS);
	int work = 0;
	for (int i = 0; i < n; i++) {
		work += tags[i] != TAG_TIMER;
		if (tags[i] == TAG_CTL) {
			if (worker_ctl_drain(w) < 0)
				swarmd_lost(w);
		} else if (tags[i] == TAG_TIMER) {
			uint64_t ticks;
			if (read(w->timer, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
				swarm_log(SWARM_LOG_WARN, "event=timer_error");
			__atomic_store_n(&w->stats->heartbeat_ns, swarm_now_ns(), __ATOMIC_RELAXED);
			if (w->ctl < 0)
				reap_orphans(w);
		}
		/* A session's eventfd needs no read: the pass after the wake-up serves its
		 * queue, and both backends report each new write (multishot poll, EPOLLET), so
		 * the counter only grows, by one per sleep of the worker. That saves a system
		 * call per wake-up. */
	}
	/* replies that found swarmd's socket full go now if it takes them */
	if (w->ctl >= 0 && swarm_outbox_pending(&w->out) && swarm_outbox_flush(&w->out, w->ctl) < 0)
		swarmd_lost(w);
	return work;
}

static void set_sleep_flags(struct worker *w, uint32_t v)
{
	for (uint32_t i = 0; i < w->n_sessions; i++)
		__atomic_store_n(&w->active[i]->h->worker_sleep.v, v, __ATOMIC_RELAXED);
}

static int any_ready(struct worker *w)
{
	for (uint32_t i = 0; i < w->n_sessions; i++) {
		struct session *s = w->active[i];
		if (swarm_ring_available(&s->sq) != 0 || s->n_pending)
			return 1;
	}
	return 0;
}

void worker_run(struct worker *w)
{
	uint64_t idle_since = 0;
	uint32_t pass = 0;
	int cheap = swarm_loop_cheap_peek(w->loop);
	while (!w->stop && !worker_sigterm) {
		int64_t wait_ns = -1; /* until the next batch is due; -1: none waits */
		int served = serve_all(w);
		served += run_batches(w, &wait_ns);
		pass++;
		if (served) {
			idle_since = 0;
			if (cheap || (pass & 255) == 0)
				handle_events(w, 0);
			continue;
		}
		uint64_t now = swarm_now_ns();
		if (!idle_since)
			idle_since = now;
		if (now - idle_since < w->spin_ns) {
			swarm_cpu_relax();
			if (cheap || (pass & 255) == 0)
				handle_events(w, 0);
			continue;
		}
		/* Sleep: announce it in every session, fence, look once more (the handshake;
		 * pairs with the client's push, fence, load of worker_sleep). */
		set_sleep_flags(w, 1);
		swarm_fence();
		int woken_by_work = 1;
		if (!any_ready(w))
			woken_by_work = handle_events(w, wait_ns) > 0;
		set_sleep_flags(w, 0);
		/* A housekeeping tick alone does not earn a new spin budget: sleep again. */
		if (woken_by_work)
			idle_since = 0;
	}
}
