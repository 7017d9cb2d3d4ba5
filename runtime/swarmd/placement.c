/* placement.c: where each session is served. It picks a device for an open (the balancer's
 * pure policy, runtime/balancer.c, on a snapshot of the devices), moves sessions at request
 * boundaries when the balancer says (spread, busy, a drained device's evacuation), places the
 * sessions of a dead worker again, and publishes each placement in the session's segment
 * under the seqlock (ipc/seqlock.h) the client reads it with. docs/balancing.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/seqlock.h"
#include "runtime/log.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define HOMELESS_WAIT_NS 10000000000ull /* a session whose worker died waits this long */
#define BUSY_TAU_NS 5000000000ull       /* the busy fraction's EWMA time constant */
#define MOVES_PER_TICK 64

static uint64_t last_load_move_ns; /* the last move for load (the balancer spaces them) */

/* The balancer's view of the devices. Every worker serves every model (it loads a version
 * when a session needs it), so has_model is 1 for all; memory.c narrows it by memory. */
void place_snapshot(struct swarm_balancer_device *snap)
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

static const char *const move_reasons[] = { "none", "evacuate", "spread", "busy", "memory" };

/* The kernel's number of a device's NUMA node, -1 when it has none. */
int place_device_os_node(const struct device *dv)
{
	struct swarm_numa_info ni;
	for (int i = 0; dv->plan.numa_node >= 0 && i < swarm_topology_numa_count(d.topo); i++)
		if (swarm_topology_numa_info(d.topo, i, &ni) == 0 && ni.index == dv->plan.numa_node)
			return ni.os_index;
	return -1;
}

/* No device can serve the session any more: its client's waits return -ECONNABORTED. */
void place_lose(struct session *s, const char *why)
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
void place_publish(struct session *s, const struct device *dv, int moved)
{
	struct swarm_seg_header *h = session_hdr(s);
	swarm_seqlock_write_begin(&h->placement_gen);
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
	swarm_seqlock_write_end(&h->placement_gen);
}

void place_switched(struct session *s, uint32_t version)
{
	struct swarm_seg_header *h = session_hdr(s);
	s->version = version;
	swarm_seqlock_write_begin(&h->placement_gen);
	__atomic_store_n(&h->model_version, version, __ATOMIC_RELAXED);
	swarm_seqlock_write_end(&h->placement_gen);
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
	if (models_resolve(s->model_name, s->version, &res, text, sizeof text)) {
		place_lose(s, text);
		return;
	}
	/* Acquire pairs with the old worker's release store of its head. */
	s->recovery_head = __atomic_load_n(&session_hdr(s)->sq_head.v, __ATOMIC_ACQUIRE);
	if (session_send_attach(s, dv, &res)) {
		session_homeless(s);
		return;
	}
	s->device = di;
	s->state = S_ATTACHING;
	s->reattach = 1;
	session_count(s, di);
	/* The segment follows the session to its new node for the pages faulted from now on
	 * (moving those already there needs CAP_SYS_NICE: they stay, see balancing.md). */
	int node = place_device_os_node(dv);
	if (node >= 0)
		(void)swarm_seg_bind_node(s->base, s->bytes, node, 1);
}

/* Asks the session's worker to let it go at a request boundary, to move to device to. */
void place_move(struct session *s, int to, int reason)
{
	struct device *from = &d.dev[s->device];
	if (sup_send_detach(from, s->id, SWARM_DETACH_MOVE))
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

uint64_t place_serves(const struct session *s)
{
	uint64_t hosts = as_hosts_loaded(s->model_name, s->version);
	return s->allowed & mem_fits_mask(s->model_name, s->version) & (hosts ? hosts : ~0ull);
}

/* The balancer's pick among the devices of mask fits (room for the session's version). */
static int pick_fitting(int client_numa, uint64_t fits)
{
	struct swarm_balancer_device snap[MAX_DEVICES];
	place_snapshot(snap);
	for (int i = 0; i < d.n_dev; i++)
		snap[i].has_model = i < 64 && (fits >> i & 1);
	return swarm_balancer_pick(snap, (size_t)d.n_dev, client_numa, swarm_topology_distance,
				   d.topo);
}

/* 1 when device di can take a session now. */
static int device_takes(int di)
{
	struct swarm_balancer_device snap[MAX_DEVICES];
	place_snapshot(snap);
	return di >= 0 && di < d.n_dev && snap[di].state == SWARM_DEVICE_ACTIVE &&
	       snap[di].sessions <= snap[di].capacity;
}

/* The old worker has let the session go (DETACHED after DETACH with SWARM_DETACH_MOVE). */
void place_let_go(struct session *s)
{
	s->device = -1;
	if (!s->client) {
		session_free(s);
		return;
	}
	int to = s->move_to;
	uint64_t fits = place_serves(s);
	if (!device_takes(to) || to >= 64 || !(fits >> to & 1))
		to = pick_fitting(s->client_numa, fits);
	if (to < 0) {
		session_homeless(s);
		return;
	}
	attach_to(s, to);
}

/* The new worker answered the ATTACH of a move. */
void place_moved(struct session *s, struct device *dv, int status, const char *text)
{
	s->reattach = 0;
	if (status) {
		char why[SWARM_MSG_TEXT_MAX + 64];
		snprintf(why, sizeof why, "%s refused the session: %s", dv->plan.name, text);
		place_lose(s, why);
		return;
	}
	if (!s->client) {
		s->state = S_DETACHING;
		session_uncount(s);
		sup_send_detach(dv, s->id, 0);
		return;
	}
	uint64_t now = swarm_now_ns();
	s->state = S_ACTIVE;
	mem_touch(dv, s->model_name, s->version, now);
	s->moves++;
	s->last_move_ns = now;
	s->homeless_since_ns = 0;
	dv->moves_in++;
	place_publish(s, dv, 1);
	session_wake(s);
	if (s->move_reason == SWARM_MOVE_MEMORY)
		sessions_try_pending(); /* an open waited for this move's room */
	swarm_log(SWARM_LOG_INFO,
		  "event=session_moved session=%llu to=%s reason=%s recovery_head=%u pause_us=%llu",
		  (unsigned long long)s->id, dv->plan.name, move_reasons[s->move_reason],
		  s->recovery_head, (unsigned long long)((now - s->move_start_ns) / 1000));
}

void place_evacuate(struct session *s, uint64_t now)
{
	/* It moves on: the dead worker's head is where the next one starts, and what it took
	 * and did not complete the client runs again. */
	session_uncount(s);
	s->state = S_HOMELESS;
	s->homeless_since_ns = now;
	s->move_reason = SWARM_MOVE_EVACUATE;
	s->move_start_ns = now;
}

/* Smooths each active device's busy fraction (an EWMA with BUSY_TAU_NS), from the busy time
 * its worker adds up in its stats page. */
void place_update_load(uint64_t now)
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
void place_rebalance(void)
{
	if (!d.ready || d.stopping)
		return;
	uint64_t now = swarm_now_ns();
	size_t n = 0, cap = 0;
	for (struct session *s = d.sessions, *next; s; s = next) {
		next = s->next;
		if (s->state == S_HOMELESS && now - s->homeless_since_ns > HOMELESS_WAIT_NS)
			place_lose(s, "no device could take it within 10 s of its worker's death");
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
			.serves = place_serves(s) & all,
			.last_move_ns = s->last_move_ns,
		};
		sp[n++] = s;
	}
	struct swarm_balancer_device snap[MAX_DEVICES];
	place_snapshot(snap);
	for (int k = 0; k < MOVES_PER_TICK && n; k++) {
		struct swarm_balancer_move mv;
		if (swarm_balancer_rebalance(snap, (size_t)d.n_dev, ss, n, &cfg.bal, now,
					     last_load_move_ns, swarm_topology_distance, d.topo,
					     &mv) != 1)
			break;
		struct session *s = sp[mv.session];
		if (mv.reason == SWARM_MOVE_BUSY)
			last_load_move_ns = now;
		if (s->state == S_HOMELESS) {
			s->move_reason = SWARM_MOVE_EVACUATE;
			attach_to(s, mv.to);
		} else {
			place_move(s, mv.to, mv.reason);
		}
		place_snapshot(snap);
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
