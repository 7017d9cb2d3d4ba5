/* model_ops.c: `swarm model load|unload NAME[@V] [--device D]`, an operator's control of where
 * a model version is resident (docs/placement.md, "Operators"). A load makes room on each
 * device as an open would (evicting idle versions), sends the worker a LOAD, pins the version
 * there once it is loaded, and answers when every device has said LOADED (or failed); an
 * unload unpins the version and evicts it from each device where no session uses it. Pins are
 * kept apart from the resident table: a device whose worker dies and starts again loads and
 * pins them again (model_ops_step).
 * ctl_server.c checks that the caller is an admin first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/swarmd/swarmd.h"

#define OP_SEQ 0x60000000u /* a LOAD's seq: this plus the operation's id (below 2^24) */
#define PIN_SEQ 0x68000000u /* a pin's LOAD again after its worker restarted: plus its slot */
#define OP_PINS 64

/* What operators pinned where, apart from the resident table (which a worker's death
 * empties): a device whose worker starts again loads its pins again, as --preload's. */
static struct op_pin {
	char model[SWARM_NAME_MAX];
	uint32_t version;
	uint64_t devices; /* bit i: pinned on device i */
	uint64_t sent;    /* LOADs sent again, not yet answered */
} pins[OP_PINS];

/* Pins (on) or unpins model@version on device i in the table; pinning it unpins the model's
 * other versions there (a worker holds one LOAD-pinned version of a model). */
static void pin_note(const char *model, uint32_t version, int i, int on)
{
	struct op_pin *free_slot = NULL, *mine = NULL;
	for (int k = 0; k < OP_PINS; k++) {
		struct op_pin *p = &pins[k];
		if (!p->devices && !free_slot)
			free_slot = p;
		if (!p->devices || strcmp(p->model, model))
			continue;
		if (p->version == version)
			mine = p;
		else if (on)
			p->devices &= ~(1ull << i);
	}
	if (!on) {
		if (mine)
			mine->devices &= ~(1ull << i);
		return;
	}
	if (!mine && free_slot) {
		mine = free_slot;
		memset(mine, 0, sizeof *mine);
		swarm_copy_str(mine->model, sizeof mine->model, model);
		mine->version = version;
	}
	if (mine)
		mine->devices |= 1ull << i;
	else
		swarm_log(SWARM_LOG_WARN,
			  "event=model_pin_untracked model=%s version=%u limit=%d "
			  "reason=\"more operator pins than swarmd keeps: this one is not loaded "
			  "again if its worker restarts\"",
			  model, version, OP_PINS);
}

void model_ops_step(void)
{
	for (int k = 0; k < OP_PINS; k++) {
		struct op_pin *p = &pins[k];
		for (int i = 0; p->devices && i < d.n_dev && i < 64; i++) {
			struct device *dv = &d.dev[i];
			if (!(p->devices >> i & 1) || (p->sent >> i & 1) || !preload_ready(dv) ||
			    mem_resident(dv, p->model, p->version))
				continue;
			struct resolved res;
			char text[SWARM_MSG_TEXT_MAX];
			if (models_resolve(p->model, p->version, &res, text, sizeof text) ||
			    mem_place_in(&res, -1, 1ull << i, text, sizeof text) != i)
				continue; /* tried again at the next step */
			struct swarm_msg_load m;
			memset(&m, 0, sizeof m);
			swarm_msg_init(&m.h, SWARM_MSG_LOAD, sizeof m, PIN_SEQ + (uint32_t)k);
			models_fill_version(&m.v, &res);
			m.nranks = 1;
			sup_offer_weights(dv, &m.v);
			if (sup_send(dv, &m, sizeof m, NULL, 0))
				continue;
			mem_expect(dv, &res);
			p->sent |= 1ull << i;
			swarm_log(SWARM_LOG_INFO,
				  "event=model_pin_reload device=%s model=%s version=%u "
				  "reason=\"its worker started again\"",
				  dv->plan.name, p->model, p->version);
		}
	}
}

/* The LOADED of a pin's LOAD sent again: pinned once more, or, failed, the pin dropped. */
static int pin_loaded(struct device *dv, const struct swarm_msg_loaded *m)
{
	uint32_t k = m->h.seq - PIN_SEQ;
	if (m->h.seq < PIN_SEQ || k >= OP_PINS)
		return 0;
	struct op_pin *p = &pins[k];
	if (dv->index >= 64 || !(p->sent >> dv->index & 1))
		return 1;
	p->sent &= ~(1ull << dv->index);
	if (!m->status) {
		mem_pin(dv, p->model, p->version, 1);
		return 1;
	}
	char why[SWARM_MSG_TEXT_MAX];
	swarm_copy_str(why, sizeof why, m->text);
	mem_attach_failed(dv, p->model, p->version);
	p->devices &= ~(1ull << dv->index);
	swarm_log(SWARM_LOG_WARN,
		  "event=model_pin_lost device=%s model=%s version=%u status=%d reason=\"%s\"",
		  dv->plan.name, p->model, p->version, m->status, why);
	return 1;
}

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
		if (rc == 0 || rc == -ENOENT)
			pin_note(res->name, res->version, i, 0);
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
	if (pin_loaded(dv, m))
		return 1;
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
			pin_note(op->model, op->version, dv->index, 1);
		}
		if (!op->waiting)
			finish(op);
		break;
	}
	return 1;
}

void model_ops_worker_gone(struct device *dv)
{
	for (int k = 0; k < OP_PINS && dv->index < 64; k++)
		pins[k].sent &= ~(1ull << dv->index); /* its answer will not come */
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
