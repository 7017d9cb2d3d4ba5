/* status.c: what `swarm status` shows (every device with its worker's counters from its
 * stats page, every session with its own), and `swarm device drain|resume`, which takes a
 * device out of service (its sessions move first) or back. ctl_server.c checks that the
 * caller may (an admin) before device control runs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/histogram.h"
#include "runtime/log.h"
#include "runtime/swarmd/health.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

void status_fill(struct swarm_msg_status_reply *r)
{
	r->swarmd_pid = getpid();
	r->uptime_ns = swarm_now_ns() - d.started_ns;
	r->n_devices = (uint32_t)d.n_dev;
	r->ready = health_ready(r->ready_text, sizeof r->ready_text);
	r->ready_reason = health_reason();
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
	mem_fill_status(r);
	as_fill_status(r);
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
int status_device_control(struct swarm_msg_device *m, char *text, size_t len)
{
	m->name[sizeof m->name - 1] = 0;
	struct device *dv = NULL;
	for (int i = 0; i < d.n_dev; i++)
		if (!strcmp(d.dev[i].plan.name, m->name))
			dv = &d.dev[i];
	if (!dv) {
		snprintf(text, len, "no device is called \"%s\" (swarm status lists them)",
			 m->name);
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
		place_rebalance();
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
			sup_device_wake(dv, "resume");
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
		int err = sup_start_worker(dv);
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
