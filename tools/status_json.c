/* status_json.c: the document `swarm status --json` prints, built from swarmd's status reply
 * apart from the command so that a test can feed it any reply (tools/cmd.h). */
#include <jansson.h>

#include "ipc/proto.h"
#include "runtime/autoscaler.h"
#include "runtime/balancer.h"
#include "tools/cmd.h"
#include "tools/json_out.h"

static json_t *device_json(const struct swarm_status_device *dv)
{
	const char *io = dv->io_backend == 1 ? "io_uring" : dv->io_backend == 2 ? "epoll" : "-";
	return json_pack("{s:i, s:o, s:s, s:i, s:i, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:o, "
			 "s:o, s:o, s:o, s:o, s:o, s:o, s:I}",
			 "index", (int)dv->index, "name", swarm_json_str(dv->name), "state",
			 swarm_device_state_name(dv->state), "pid", (int)dv->pid, "numa_node",
			 (int)dv->numa_node, "cpus", swarm_json_str(dv->cpus), "mem_policy",
			 swarm_json_str(dv->mem_policy), "io", io, "busy",
			 swarm_json_number("%.3f", (double)dv->busy), "moves_in",
			 (json_int_t)dv->moves_in, "sessions", (json_int_t)dv->sessions,
			 "queue_depth", (json_int_t)dv->queue_depth, "restarts",
			 (json_int_t)dv->restarts, "requests", swarm_json_u64(dv->requests),
			 "errors", swarm_json_u64(dv->errors), "busy_ns",
			 swarm_json_u64(dv->busy_ns), "batches", swarm_json_u64(dv->batches),
			 "p50_ns", swarm_json_u64(dv->p50_ns), "p99_ns", swarm_json_u64(dv->p99_ns),
			 "weights_bytes_loaded", swarm_json_u64(dv->weights_bytes_loaded),
			 "weights_mbps_last", (json_int_t)dv->weights_mbps_last);
}

static json_t *session_json(const struct swarm_status_session *s)
{
	return json_pack("{s:o, s:i, s:i, s:i, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "id",
			 swarm_json_u64(s->session_id), "device", (int)s->device_index,
			 "client_pid", (int)s->client_pid, "client_numa", (int)s->client_numa,
			 "model", swarm_json_str(s->model), "version", (json_int_t)s->model_version,
			 "in_flight", (json_int_t)s->in_flight, "moves", (json_int_t)s->moves,
			 "requests", swarm_json_u64(s->requests), "errors",
			 swarm_json_u64(s->errors), "p50_ns", swarm_json_u64(s->p50_ns), "p99_ns",
			 swarm_json_u64(s->p99_ns));
}

/* A device's memory: its budget, what is used, and its resident model versions. */
static json_t *memory_json(const struct swarm_msg_status_reply *r,
			   const struct swarm_status_device *dv)
{
	json_t *models = json_array();
	for (uint32_t i = 0; i < r->n_resident && i < SWARM_STATUS_MAX_RESIDENT; i++) {
		const struct swarm_status_resident *e = &r->resident[i];
		if (e->device_index != dv->index)
			continue;
		uint64_t idle = e->last_used_ns && r->now_ns > e->last_used_ns
					? r->now_ns - e->last_used_ns
					: 0;
		json_array_append_new(
			models,
			json_pack("{s:o, s:I, s:o, s:o, s:o, s:b, s:b, s:b, s:I, s:o, s:o}", "name",
				  swarm_json_str(e->model), "version", (json_int_t)e->version,
				  "bytes", swarm_json_u64(e->weights_bytes + e->other_bytes),
				  "weights_bytes", swarm_json_u64(e->weights_bytes), "other_bytes",
				  swarm_json_u64(e->other_bytes), "weights_shared", e->shared != 0,
				  "pinned", e->pinned != 0, "host", e->host != 0,
				  "sessions", (json_int_t)e->sessions, "last_used_ns",
				  swarm_json_u64(e->last_used_ns), "idle_ns", swarm_json_u64(idle)));
	}
	return json_pack("{s:o, s:o, s:o}", "budget_bytes", swarm_json_u64(dv->mem_budget),
			 "used_bytes", swarm_json_u64(dv->mem_used), "models", models);
}

/* The autoscaler's view: null without --autoscale, else each model it follows. */
static json_t *autoscale_json(const struct swarm_msg_status_reply *r)
{
	if (!r->autoscale)
		return json_null();
	json_t *models = json_array();
	for (uint32_t i = 0; i < r->n_scaled && i < SWARM_STATUS_MAX_SCALED; i++) {
		const struct swarm_status_scaled *e = &r->scaled[i];
		json_t *hosts = json_array();
		for (uint32_t k = 0; k < r->n_devices && k < SWARM_STATUS_MAX_DEVICES && k < 64; k++)
			if (e->hosts >> k & 1)
				json_array_append_new(hosts, swarm_json_str(r->devices[k].name));
		json_array_append_new(
			models,
			json_pack("{s:o, s:I, s:I, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "name",
				  swarm_json_str(e->model), "version", (json_int_t)e->version,
				  "target", (json_int_t)e->target, "hosts", hosts, "active",
				  (json_int_t)e->active, "warming", (json_int_t)e->warming,
				  "sessions", (json_int_t)e->sessions, "rate_long",
				  swarm_json_number("%.1f", e->rate_long), "rate_short",
				  swarm_json_number("%.1f", e->rate_short), "service_rate",
				  swarm_json_number("%.1f", e->service_rate), "last_reason",
				  e->reason ? swarm_json_str(swarm_as_reason_name(e->reason)) :
					      json_null()));
	}
	return json_pack("{s:o}", "models", models);
}

json_t *swarm_status_json(const struct swarm_msg_status_reply *r)
{
	json_t *devices = json_array(), *sessions = json_array();
	for (uint32_t i = 0; i < r->n_devices && i < SWARM_STATUS_MAX_DEVICES; i++) {
		json_t *dv = device_json(&r->devices[i]);
		json_object_set_new(dv, "memory", memory_json(r, &r->devices[i]));
		json_array_append_new(devices, dv);
	}
	for (uint32_t i = 0; i < r->n_sessions && i < SWARM_STATUS_MAX_SESSIONS; i++)
		json_array_append_new(sessions, session_json(&r->sessions[i]));
	return json_pack("{s:i, s:o, s:o, s:I, s:o, s:b, s:o, s:o}", "swarmd_pid",
			 (int)r->swarmd_pid, "uptime_s",
			 swarm_json_number("%.3f", (double)r->uptime_ns / 1e9), "devices", devices,
			 "total_sessions", (json_int_t)r->total_sessions, "sessions", sessions,
			 "ready", r->ready != 0, "ready_reason", swarm_json_str(r->ready_text),
			 "autoscale", autoscale_json(r));
}
