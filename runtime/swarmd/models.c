/* models.c: what a model name means to swarmd. A name (and version, or the active one) is
 * resolved in the registry's catalog first (registry/registry.h: its manifest, weights and
 * deployment configuration), else among the built-in models. The registry's directory is
 * watched with inotify: when the catalog changes, every session that follows its model's
 * active version is switched to the new one at a request boundary (SWITCH to its worker).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "registry/manifest.h"
#include "registry/registry.h"
#include "runtime/log.h"
#include "runtime/swarmd/swarmd.h"
#include "runtime/version_cost.h"
#include "swarm/swarm.h"

static struct {
	struct swarm_registry *registry; /* NULL: built-in models only */
	int inotify_fd;
	struct watch *w;
} reg = { .inotify_fd = -1 };

/* rv's tensors and graph from its manifest, into r. Returns 0 or -errno with text. */
static int resolve_manifest(const char *name, const struct swarm_reg_version *rv,
			    struct resolved *r, char *text, size_t len)
{
	struct swarm_manifest *m = malloc(sizeof *m);
	int rc =
		m ? swarm_registry_read_manifest(cfg.registry_dir, rv->manifest_sha, m, text, len) :
		    -ENOMEM;
	if (rc) {
		free(m);
		return rc;
	}
	int custom = m->graph.n_nodes || m->graph_backend[0];
	r->desc = custom ? NULL : swarm_builtin_find(m->graph_builtin, 0);
	if (!custom && !r->desc) {
		snprintf(text, len, "model %s@%u names graph %s, which this swarmd lacks", name,
			 rv->version, m->graph_builtin);
		free(m);
		return -ENOENT;
	}
	r->n_inputs = m->n_inputs;
	r->n_outputs = m->n_outputs;
	memcpy(r->inputs, m->inputs, sizeof r->inputs);
	memcpy(r->outputs, m->outputs, sizeof r->outputs);
	r->place = m->place;
	free(m);
	return 0;
}

/* name@version in the registry, into r. Returns 0, -ESRCH when the registry has no such
 * model (the built-ins are next), or another -errno with text. */
static int resolve_registry(const char *name, uint32_t version, struct resolved *r, char *text,
			    size_t len)
{
	struct swarm_reg_model rm;
	struct swarm_reg_version rv;
	if (!reg.registry)
		return -ESRCH;
	swarm_registry_refresh(reg.registry);
	if (swarm_registry_find_model(reg.registry, name, &rm))
		return -ESRCH;
	if (swarm_registry_find_version(reg.registry, name, version, &rv)) {
		if (version)
			snprintf(text, len,
				 "model %s has no version %u; `swarm registry show %s` lists its "
				 "versions",
				 name, version, name);
		else
			snprintf(text, len,
				 "model %s has no active version; `swarm registry activate %s@N` "
				 "sets one",
				 name, name);
		return -ENOENT;
	}
	int rc = resolve_manifest(name, &rv, r, text, len);
	if (rc)
		return rc;
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
	r->max_rows = rv.deploy.max_rows && rv.deploy.max_rows < cap ? rv.deploy.max_rows : cap;
	return 0;
}

int models_resolve(const char *name, uint32_t version, struct resolved *r, char *text, size_t len)
{
	memset(r, 0, sizeof *r);
	swarm_copy_str(r->name, sizeof r->name, name);
	int rc = resolve_registry(name, version, r, text, len);
	if (rc != -ESRCH)
		return rc;
	r->desc = swarm_builtin_find(name, version);
	if (!r->desc) {
		snprintf(text, len,
			 "no model \"%s\"%s in the registry%s or among the built-in models "
			 "(identity, affine); `swarm registry list` shows the registry's",
			 name, version ? " at that version" : "",
			 reg.registry ? "" : " (none open)");
		return -ENOENT;
	}
	r->version = r->desc->version;
	r->place = (struct swarm_placement_config){ .kind = SWARM_PLACE_ANY, .priority = 50 };
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

void models_fill_version(struct swarm_msg_version *v, const struct resolved *r)
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

/* The catalog changed: every session that follows its model's active version and does not
 * serve it gets a SWITCH to it. The worker loads the new version beside the old, and moves
 * the session at a request boundary; the old one is unmapped once no session uses it. */
static void registry_changed(void)
{
	swarm_log(SWARM_LOG_INFO, "event=registry_changed generation=%llu",
		  (unsigned long long)swarm_registry_generation(reg.registry));
	for (struct session *s = d.sessions; s; s = s->next) {
		if (!s->follow || !s->from_registry || s->state != S_ACTIVE || s->device < 0 ||
		    d.dev[s->device].ctl < 0)
			continue;
		struct resolved r;
		char text[SWARM_MSG_TEXT_MAX];
		if (models_resolve(s->model_name, 0, &r, text, sizeof text)) {
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
		models_fill_version(&m.v, &r);
		sup_offer_weights(&d.dev[s->device], &m.v);
		sup_send(&d.dev[s->device], &m, sizeof m, NULL, 0);
	}
	/* A preloaded model's active version may have moved on: load the new one. */
	preload_step();
}

void models_handle_event(void)
{
	char buf[4096] __attribute__((aligned(8)));
	while (read(reg.inotify_fd, buf, sizeof buf) > 0)
		; /* what changed is read from the catalog itself */
	if (swarm_registry_refresh(reg.registry) > 0)
		registry_changed();
}

/* Whether the registry was named (--registry or $SWARM_REGISTRY) rather than defaulted. */
static int registry_named(void)
{
	const char *env = getenv("SWARM_REGISTRY");
	return cfg.registry_given || (env && *env);
}

/* Opens the registry and watches its directory, so that a new catalog (renamed over index
 * by a writer) is seen at once. Only the default registry may be absent (then only the
 * built-in models are served): a named one that is missing is a typo or a registry never
 * made, and serving the built-ins alone would hide it until a client's open failed. */
int models_open(struct watch *w)
{
	w->kind = W_REGISTRY;
	char err[SWARM_MSG_TEXT_MAX];
	char dir[PATH_MAX];
	if (swarm_registry_path(cfg.registry_dir[0] ? cfg.registry_dir : NULL, dir, sizeof dir)) {
		swarm_log(SWARM_LOG_ERROR,
			  "event=startup_failed reason=\"registry path too long or no home "
			  "directory\" hint=\"give --registry DIR\"");
		return -1;
	}
	swarm_copy_str(cfg.registry_dir, sizeof cfg.registry_dir, dir);
	int rc = swarm_registry_open(dir, &reg.registry, err, sizeof err);
	if (rc) {
		reg.registry = NULL;
		if (rc == -ENOENT && !registry_named()) {
			swarm_log(SWARM_LOG_INFO,
				  "event=registry_absent dir=%s serving=builtin note=\"the default "
				  "registry does not exist: only the built-in models (identity, "
				  "affine) are served; `swarm registry init` makes it\"",
				  dir);
			return 0;
		}
		if (rc == -ENOENT)
			swarm_log(SWARM_LOG_ERROR,
				  "event=startup_failed registry=%s reason=\"no registry at %s "
				  "(given by %s)\" hint=\"swarm registry --registry %s init\"",
				  dir, dir, cfg.registry_given ? "--registry" : "$SWARM_REGISTRY",
				  dir);
		else
			swarm_log(SWARM_LOG_ERROR,
				  "event=startup_failed registry=%s reason=\"%s\" hint=\"`swarm "
				  "registry verify --registry %s` says more\"",
				  dir, err, dir);
		return -1;
	}
	reg.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (reg.inotify_fd < 0 ||
	    inotify_add_watch(reg.inotify_fd, dir, IN_MOVED_TO | IN_CREATE) < 0)
		swarm_log(SWARM_LOG_WARN,
			  "event=registry_watch_failed dir=%s error=\"%s\" note=\"changes are "
			  "seen at the next open only\"",
			  dir, strerror(errno));
	else if ((rc = swarmd_watch(reg.inotify_fd, w)))
		swarm_log(SWARM_LOG_WARN, "event=registry_watch_failed error=\"%s\"",
			  strerror(-rc));
	else
		reg.w = w;
	swarm_log(SWARM_LOG_INFO, "event=registry_open dir=%s generation=%llu models=%d", dir,
		  (unsigned long long)swarm_registry_generation(reg.registry),
		  swarm_registry_model_count(reg.registry));
	return 0;
}

/* Estimates already made, by name@version (a version's blobs never change). */
#define COST_CACHE 64
static struct {
	char name[SWARM_NAME_MAX];
	uint32_t version;
	uint64_t weights, other;
} costs[COST_CACHE];
static unsigned n_costs;

int models_cost(const struct resolved *r, uint64_t *weights, uint64_t *other)
{
	*weights = *other = 0;
	if (!r->from_registry && !r->manifest_sha[0])
		return 0; /* a built-in's own weights: nothing counted */
	for (unsigned i = 0; i < n_costs && i < COST_CACHE; i++)
		if (costs[i].version == r->version && !strcmp(costs[i].name, r->name)) {
			*weights = costs[i].weights;
			*other = costs[i].other;
			return 0;
		}
	struct swarm_version_cost c;
	char err[256];
	int rc = reg.registry ? swarm_version_cost_estimate(reg.registry, r->name, r->version, &c,
							    err, sizeof err)
			      : -ENOENT;
	if (rc) {
		/* Counted by the weights alone until the worker says what it took. */
		swarm_log(SWARM_LOG_WARN, "event=cost_estimate_failed model=%s version=%u error=\"%s\"",
			  r->name, r->version, rc == -ENOENT && !reg.registry ? "no registry" : err);
		*weights = r->weights_bytes;
		return rc;
	}
	*weights = c.weights;
	*other = c.arena + c.batch + c.prepared;
	unsigned k = n_costs++ % COST_CACHE;
	swarm_copy_str(costs[k].name, sizeof costs[k].name, r->name);
	costs[k].version = r->version;
	costs[k].weights = *weights;
	costs[k].other = *other;
	return 0;
}

int models_have_registry(void) { return reg.registry != NULL; }

void models_close(void)
{
	if (reg.inotify_fd >= 0)
		close(reg.inotify_fd);
	reg.inotify_fd = -1;
	swarm_registry_close(reg.registry);
	reg.registry = NULL;
}
