/* preload.c: --preload, models every device loads as soon as its worker is ready, before any
 * session asks; and the NCCL fan-out (docs/devices.md, "NCCL fan-out"): GPUs warming
 * together get a model's weights by one broadcast from the GPU that read them from the
 * registry (the plan is runtime/fanout.c's pure function).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/fanout.h"
#include "runtime/log.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#endif

#define PRELOAD_SEQ 0x50000000u /* a LOAD's seq: this plus the preload's index */
#define FANOUT_TIMEOUT_MS 60000 /* a fan-out's collective, every rank */

static int unresolved[MAX_PRELOAD]; /* logged once until it resolves */

int preload_ready(const struct device *dv)
{
	return dv->ctl >= 0 && !dv->parking &&
	       (dv->state == SWARM_DEVICE_ACTIVE || dv->state == SWARM_DEVICE_STANDBY);
}

static void send_load(struct device *dv, int p, const struct resolved *r, uint32_t nranks,
		      uint32_t rank, const uint8_t *id)
{
	struct swarm_msg_load m;
	swarm_msg_init(&m.h, SWARM_MSG_LOAD, sizeof m, PRELOAD_SEQ + (uint32_t)p);
	models_fill_version(&m.v, r);
	m.nranks = nranks;
	m.rank = rank;
	m.root = 0;
	m.timeout_ms = FANOUT_TIMEOUT_MS;
	if (id)
		memcpy(m.nccl_id, id, sizeof m.nccl_id);
	if (sup_send(dv, &m, sizeof m, NULL, 0) == 0) {
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
void preload_step(void)
{
	if (!cfg.n_preload || sup_any_warming() || d.stopping)
		return;
	for (int p = 0; p < cfg.n_preload; p++) {
		struct resolved r;
		char text[SWARM_MSG_TEXT_MAX];
		if (models_resolve(cfg.preload[p].name, cfg.preload[p].version, &r, text,
				   sizeof text)) {
			if (!unresolved[p])
				swarm_log(SWARM_LOG_WARN,
					  "event=preload_skipped model=%s reason=\"%s\"",
					  cfg.preload[p].name, text);
			unresolved[p] = 1;
			continue;
		}
		unresolved[p] = 0;
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
						       k ? "," : "",
						       d.dev[plan.ranks[k]].plan.name);
			swarm_log(
				SWARM_LOG_INFO,
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
void preload_done(struct device *dv, const struct swarm_msg_loaded *m)
{
	static const char *const how[] = { "failed", "registry", "received", "sent", "already" };
	uint32_t p = m->h.seq - PRELOAD_SEQ;
	if (p >= (uint32_t)cfg.n_preload || dv->pre_state[p] != PRE_SENT)
		return;
	char text[SWARM_MSG_TEXT_MAX], model[SWARM_NAME_MAX];
	swarm_copy_str(text, sizeof text, m->text);
	swarm_copy_str(model, sizeof model, m->model);
	dv->pre_state[p] = m->status ? PRE_FAILED : PRE_DONE;
	swarm_log(m->status ? SWARM_LOG_WARN : SWARM_LOG_INFO,
		  "event=device_preloaded device=%s model=%s version=%u status=%d how=%s "
		  "bytes=%llu ms=%.1f gbps=%.2f note=\"%s\"",
		  dv->plan.name, model, m->version, m->status, m->how < 5 ? how[m->how] : "?",
		  (unsigned long long)m->bytes, (double)m->ns / 1e6, m->gbps, text);
}
