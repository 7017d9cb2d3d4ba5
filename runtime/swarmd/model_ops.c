/* model_ops.c: `swarm model load|unload NAME[@V] [--device D]`, an operator's control of where
 * a model version is resident (docs/placement.md, "Operators"). A load makes room on each
 * device as an open would (evicting idle versions), sends the worker a LOAD, pins the version
 * there once it is loaded, and answers when every device has said LOADED (or failed); an
 * unload unpins the version and evicts it from each device where no session uses it.
 * ctl_server.c checks that the caller is an admin first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/swarmd/swarmd.h"

#define OP_SEQ 0x60000000u /* a LOAD's seq: this plus the operation's id (below 2^24) */

/* A load that waits for its devices' LOADED. */
struct op_load {
	struct conn *c;
	uint32_t seq; /* the client's */
	uint32_t id;
	uint64_t waiting; /* bit i: device i has not answered */
	int status;       /* the first failure, 0 while none */
	char text[SWARM_MSG_TEXT_MAX];
	char model[SWARM_NAME_MAX];
	uint32_t version;
	struct op_load *next;
};

static struct op_load *loads;
static uint32_t next_id;

/* The devices an operation names (name "" : every one that takes a load). 0 with *mask, or
 * -ENODEV with text. */
static int targets(const char *name, uint64_t *mask, char *text, size_t len)
{
	*mask = 0;
	for (int i = 0; i < d.n_dev && i < 64; i++) {
		if (name[0] && strcmp(d.dev[i].plan.name, name))
			continue;
		if (preload_ready(&d.dev[i]))
			*mask |= 1ull << i;
		else if (name[0]) {
			snprintf(text, len, "%s is %s: its worker cannot take the model now", name,
				 swarm_device_state_name(d.dev[i].state));
			return -ENODEV;
		}
	}
	if (!*mask) {
		snprintf(text, len,
			 name[0] ? "no device is called \"%s\" (swarm status lists them)" :
				   "no device is in service%s",
			 name);
		return -ENODEV;
	}
	return 0;
}

static void finish(struct op_load *op)
{
	for (struct op_load **p = &loads; *p; p = &(*p)->next)
		if (*p == op) {
			*p = op->next;
			break;
		}
	if (op->c) {
		if (!op->status)
			snprintf(op->text, sizeof op->text, "%s@%u is loaded and pinned", op->model,
				 op->version);
		ctl_send_reply(op->c, SWARM_MSG_MODEL_REPLY, op->seq, op->status, op->text);
	}
	free(op);
}

static void fail(struct op_load *op, const struct device *dv, int status, const char *why)
{
	if (!op->status) {
		op->status = status;
		snprintf(op->text, sizeof op->text, "%s: %.*s", dv->plan.name,
			 (int)(sizeof op->text - sizeof dv->plan.name - 3), why);
	}
}

/* Makes room for res on device i and sends the LOAD; on failure the device is failed in op. */
static void load_on(struct op_load *op, int i, const struct resolved *res)
{
	struct device *dv = &d.dev[i];
	char text[SWARM_MSG_TEXT_MAX];
	int rc = mem_place_in(res, -1, 1ull << i, text, sizeof text);
	if (rc < 0) {
		fail(op, dv, rc, rc == -ENODEV ? "it cannot take a session now" : text);
		return;
	}
	struct swarm_msg_load m;
	memset(&m, 0, sizeof m);
	swarm_msg_init(&m.h, SWARM_MSG_LOAD, sizeof m, OP_SEQ + op->id);
	models_fill_version(&m.v, res);
	m.nranks = 1;
	sup_offer_weights(dv, &m.v);
	if ((rc = sup_send(dv, &m, sizeof m, NULL, 0))) {
		fail(op, dv, rc, "its worker's socket refused the LOAD");
		return;
	}
	mem_expect(dv, res);
	op->waiting |= 1ull << i;
}

static int op_load(struct conn *c, const struct swarm_msg_model *m, const struct resolved *res,
		   uint64_t mask)
{
	struct op_load *op = calloc(1, sizeof *op);
	if (!op)
		return -ENOMEM;
	op->c = c;
	op->seq = m->h.seq;
	op->id = next_id++ & 0xffffff;
	swarm_copy_str(op->model, sizeof op->model, res->name);
	op->version = res->version;
	op->next = loads;
	loads = op;
	for (int i = 0; i < d.n_dev && i < 64; i++)
		if (mask >> i & 1)
			load_on(op, i, res);
	swarm_log(SWARM_LOG_INFO, "event=model_load model=%s version=%u devices=%d client_pid=%d",
		  res->name, res->version, __builtin_popcountll(op->waiting), c->pid);
	if (!op->waiting)
		finish(op);
	return 0;
}

static int op_unload(const struct resolved *res, uint64_t mask, char *text, size_t len)
{
	int done = 0, status = 0;
	char why[SWARM_MSG_TEXT_MAX];
	for (int i = 0; i < d.n_dev && i < 64; i++) {
		if (!(mask >> i & 1))
			continue;
		int rc = mem_unload(&d.dev[i], res->name, res->version, why, sizeof why);
		done += rc == 0;
		if (rc && rc != -ENOENT && !status) {
			status = rc;
			swarm_copy_str(text, len, why);
		}
		if (rc == -ENOENT && __builtin_popcountll(mask) == 1) {
			status = rc;
			swarm_copy_str(text, len, why);
		}
	}
	if (!status && !done) {
		snprintf(text, len, "%s@%u is not resident on any device", res->name, res->version);
		return -ENOENT;
	}
	if (!status)
		snprintf(text, len, "%s@%u unloaded from %d device(s)", res->name, res->version,
			 done);
	return status;
}

void model_ops_request(struct conn *c, const struct swarm_msg_model *msg)
{
	struct swarm_msg_model m = *msg;
	m.model[sizeof m.model - 1] = 0;
	m.device[sizeof m.device - 1] = 0;
	char text[SWARM_MSG_TEXT_MAX];
	struct resolved res;
	uint64_t mask = 0;
	int rc = m.action == SWARM_MODEL_LOAD || m.action == SWARM_MODEL_UNLOAD ? 0 : -EINVAL;
	if (rc)
		snprintf(text, sizeof text, "unknown model action %u", m.action);
	if (!rc)
		rc = models_resolve(m.model, m.version, &res, text, sizeof text);
	if (!rc)
		rc = targets(m.device, &mask, text, sizeof text);
	if (!rc && m.action == SWARM_MODEL_LOAD) {
		rc = op_load(c, &m, &res, mask);
		if (!rc)
			return; /* answered when loaded */
		snprintf(text, sizeof text, "out of memory");
	} else if (!rc) {
		rc = op_unload(&res, mask, text, sizeof text);
	}
	ctl_send_reply(c, SWARM_MSG_MODEL_REPLY, m.h.seq, rc, text);
}

int model_ops_loaded(struct device *dv, const struct swarm_msg_loaded *m)
{
	if (m->h.seq < OP_SEQ || m->h.seq - OP_SEQ > 0xffffff)
		return 0;
	uint32_t id = m->h.seq - OP_SEQ;
	for (struct op_load *op = loads; op; op = op->next) {
		if (op->id != id || !(op->waiting >> dv->index & 1))
			continue;
		op->waiting &= ~(1ull << dv->index);
		if (m->status) {
			char why[SWARM_MSG_TEXT_MAX];
			swarm_copy_str(why, sizeof why, m->text);
			fail(op, dv, m->status, why);
			mem_attach_failed(dv, op->model, op->version);
		} else {
			/* The worker keeps one LOAD-held version of a model: the others it
			 * held so are no longer pinned there (ctl.c, preload_keep). */
			for (uint32_t k = 0; k < dv->n_res; k++)
				if (!strcmp(dv->res[k].model, op->model))
					dv->res[k].op_pinned = 0;
			mem_pin(dv, op->model, op->version, 1);
		}
		if (!op->waiting)
			finish(op);
		break;
	}
	return 1;
}

void model_ops_worker_gone(struct device *dv)
{
	for (struct op_load *op = loads, *next; op; op = next) {
		next = op->next;
		if (!(op->waiting >> dv->index & 1))
			continue;
		op->waiting &= ~(1ull << dv->index);
		fail(op, dv, -ECONNABORTED, "its worker died before the version was loaded");
		if (!op->waiting)
			finish(op);
	}
}

void model_ops_client_gone(struct conn *c)
{
	for (struct op_load *op = loads; op; op = op->next)
		if (op->c == c)
			op->c = NULL; /* the load goes on; nobody is told */
}

void model_ops_free_all(void)
{
	while (loads) {
		struct op_load *op = loads;
		loads = op->next;
		free(op);
	}
}
