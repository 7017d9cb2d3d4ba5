/* memory_harness.c: what the memory and memory-zipf cases share (memory_harness.h): their
 * models, what one costs a device, their swarmds with a budget, one checked request, and the
 * reading of swarmd's log. */
#include "bench/memory_harness.h"
#include "registry/registry.h"
#include "runtime/version_cost.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct bench_model_opts mh_opts(const struct bench_ctx *ctx, const char *devices)
{
	return (struct bench_model_opts){ .exe_dir = ctx->exe_dir,
					  .devices = devices,
					  .peer_cpu = ctx->peer_cpu,
					  .quick = ctx->o.n.spin < bench_full_counts.spin };
}

int mh_model_make(struct mh_model *m, struct mb_env *e, const struct bench_ranker *r,
		  const struct bench_ranker_deploy *d, const char *prefix, int i, int n_sets)
{
	struct mb_local l = { 0 };
	int rc;

	snprintf(m->name, sizeof m->name, "%s-%d", prefix, i);
	rc = mb_model_ranker_seeded(&m->md, e, r, d, BENCH_RANKER_SEED + (uint64_t)i);
	m->md.n_sets = n_sets;
	if (rc == 0)
		rc = mb_inputs_alloc(&m->in, m->md.m, m->md.n_sets);
	if (rc == 0)
		rc = mb_local_open_cpu(&l, m->md.weights, m->md.m);
	if (rc)
		return rc;
	rc = mb_inputs_make(&l, &m->in, &m->md);
	mb_local_close(&l);
	if (rc == 0)
		rc = mb_publish(e, m->name, m->md.weights, m->md.manifest);
	return rc;
}

void mh_model_free(struct mh_model *m)
{
	mb_inputs_free(&m->in);
	mb_model_free(&m->md);
}

int mh_cost(const char *who, const struct mb_env *e, const char *model, uint64_t *cost)
{
	struct swarm_registry *r;
	struct swarm_version_cost vc;
	char err[512];
	int rc = swarm_registry_open(e->reg, &r, err, sizeof err);

	if (rc) {
		fprintf(stderr, "swarm-bench: %s: open the registry %s: %s\n", who, e->reg, err);
		return rc;
	}
	rc = swarm_version_cost_estimate(r, model, 0, &vc, err, sizeof err);
	swarm_registry_close(r);
	if (rc) {
		fprintf(stderr, "swarm-bench: %s: the cost of %s: %s\n", who, model, err);
		return rc;
	}
	*cost = swarm_version_cost_total(&vc);
	return 0;
}

int mh_swarmd_start(const char *who, struct mb_env *e, const char *log_name, const char *devices,
		    const char *topology, uint64_t budget, swarm_client **cl)
{
	char bytes[32];
	const char *const extra[] = { "--device-memory", bytes, NULL };
	int rc;

	snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)budget);
	snprintf(e->swarmd.log, sizeof e->swarmd.log, "%s/%s.log", e->dir, log_name);
	rc = mb_swarmd_start(e, devices, topology, extra);
	if (rc == 0 && cl && (rc = swarm_connect(e->sock, cl)) != 0)
		fprintf(stderr, "swarm-bench: %s: connect: %s\n", who, swarm_strerror(rc));
	return rc;
}

int mh_swarmd_stop(struct mb_env *e, swarm_client *cl, int rc)
{
	int rc2;

	if (cl)
		swarm_disconnect(cl);
	rc2 = bench_swarmd_stop(&e->swarmd);
	return rc ? rc : rc2;
}

int mh_call_checked(const char *who, const struct mh_model *m, swarm_session *s, int set,
		    uint64_t *ns)
{
	float got[MB_RANKER_OUT];
	uint64_t t0;
	int rc;

	if (m->in.out_n > MB_RANKER_OUT)
		return -EINVAL; /* got is on the stack */
	t0 = swarm_now_ns();
	rc = mb_swarm_call(s, &m->in, set, got);
	if (ns)
		*ns = swarm_now_ns() - t0;
	if (rc)
		fprintf(stderr, "swarm-bench: %s: a request on %s: %s\n", who, m->name,
			swarm_strerror(rc));
	else if (!mb_check(m->name, got, &m->in, set))
		rc = -EBADMSG;
	return rc;
}

int mh_log_scan(const char *who, const char *path, int (*line)(void *arg, const char *text),
		void *arg)
{
	FILE *f = fopen(path, "re");
	char text[2048];
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: %s: read %s: %s\n", who, path, strerror(-rc));
		return rc;
	}
	while (rc == 0 && fgets(text, sizeof text, f))
		rc = line(arg, text);
	fclose(f);
	return rc;
}
