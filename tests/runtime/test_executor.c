/* test_executor.c: the worker's one executor interface (runtime/executor.h) and its three
 * implementations, run the same way: a built-in model over its weights, a node-list graph
 * planned on the CPU device, and the example custom backend loaded from its shared object.
 * Each runs rows and says which request sizes fit; the backend's refusals (no such file, no
 * entry point, a failing load) leave nothing loaded and say why.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/builtin.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "registry/manifest.h"
#include "registry/safetensors.h"
#include "runtime/executor.h"

static float x[4 * 16], y[4 * 16];

static void fill(void)
{
	for (int i = 0; i < 4 * 16; i++) {
		x[i] = (float)i * 0.25f - 3.0f;
		y[i] = -999.0f;
	}
}

Test(runtime_executor, builtin_runs_and_fits_its_max_rows)
{
	const struct swarm_model_desc *d = swarm_builtin_find("affine", 0);
	cr_assert_not_null(d);
	struct swarm_executor *e = NULL;
	cr_assert_eq(swarm_executor_builtin(d, d->default_weights, &e), 0);
	cr_assert_str_eq(e->i->kind, "builtin");
	cr_assert_null(swarm_executor_graph(e));
	fill();
	const void *in[] = { x };
	void *out[] = { y };
	cr_assert_eq(e->i->run(e, in, out, 4), 0);
	/* served without a registry: scale 2, bias 1 */
	for (int i = 0; i < 4 * 16; i++)
		cr_assert_float_eq(y[i], 2.0f * x[i] + 1.0f, 1e-6f, "y[%d] = %g", i, (double)y[i]);
	cr_assert(e->i->fits(e, d->max_rows));
	cr_assert_not(e->i->fits(e, d->max_rows + 1));
	swarm_executor_free(e);
	swarm_executor_free(NULL);
	cr_assert_eq(swarm_executor_builtin(NULL, NULL, &e), -EINVAL);
}

static struct swarm_manifest man;

static void parse(const char *json)
{
	char err[256];
	int rc = swarm_manifest_parse(json, strlen(json), &man, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
}

Test(runtime_executor, graph_runs_and_fits_its_plan)
{
	parse("{\"format\": 1,"
	      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
	      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"
	      " \"graph\": {\"nodes\": [{\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": "
	      "\"y\"}]}, \"weights\": []}");
	struct swarm_device *dev;
	cr_assert_eq(swarm_device_cpu_create(1, &dev), 0);
	struct swarm_graph_desc gd;
	swarm_manifest_graph_desc(&man, &gd);
	struct swarm_graph *g = NULL;
	char err[256];
	cr_assert_eq(swarm_graph_build(&gd, NULL, NULL, dev, 8, &g, err, sizeof err), 0, "%s", err);
	struct swarm_executor *e = NULL;
	cr_assert_eq(swarm_executor_graph_take(g, &e), 0);
	cr_assert_str_eq(e->i->kind, "nodes");
	cr_assert_eq(swarm_executor_graph(e), g);
	fill();
	const void *in[] = { x };
	void *out[] = { y };
	cr_assert_eq(e->i->run(e, in, out, 4), 0);
	for (int i = 0; i < 4 * 16; i++)
		cr_assert_eq(y[i], x[i] > 0 ? x[i] : 0.0f, "y[%d] = %g", i, (double)y[i]);
	cr_assert(e->i->fits(e, 8));
	cr_assert_not(e->i->fits(e, 9), "the plan is for 8 rows");
	cr_assert_eq(e->i->run(e, in, out, 9), -EINVAL);
	swarm_executor_free(e); /* and the graph */
	dev->i->destroy(dev);
	cr_assert_eq(swarm_executor_graph_take(NULL, &e), -EINVAL);
}

/* A weights file with the example backend's "bias" (16 floats), mapped. */
static struct swarm_weights w;
static char wpath[64];

static void weights(void)
{
	float bias[16];
	for (int i = 0; i < 16; i++)
		bias[i] = (float)i;
	const int64_t shape[] = { 16 };
	const struct swarm_st_write_tensor t = { "bias", SWARM_ST_F32, 1, shape, bias };
	snprintf(wpath, sizeof wpath, "/tmp/swarm-test-exec-%d.safetensors", (int)getpid());
	cr_assert_eq(swarm_st_write(wpath, &t, 1), 0);
	char err[256];
	cr_assert_eq(swarm_weights_load(wpath, 0, NULL, 0, &w, err, sizeof err), 0, "%s", err);
}

static void weights_done(void)
{
	swarm_weights_unload(&w);
	unlink(wpath);
}

#define BACKEND_MANIFEST(cfg)                                                                  \
	"{\"format\": 1,"                                                                      \
	" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"           \
	" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"          \
	" \"graph\": {\"backend\": \"libswarm_example_backend.so\", \"config\": \"" cfg "\"}," \
	" \"weights\": []}"

Test(runtime_executor, backend_runs_its_shared_object, .init = weights, .fini = weights_done)
{
	parse(BACKEND_MANIFEST("factor=3"));
	char why[256] = "";
	struct swarm_executor *e = NULL;
	int rc = swarm_executor_backend(SWARM_LIB_DIR "/libswarm_example_backend.so", &man, &w, 8,
					&e, why, sizeof why);
	cr_assert_eq(rc, 0, "%d: %s", rc, why);
	cr_assert_str_eq(e->i->kind, "backend");
	cr_assert_null(swarm_executor_graph(e));
	fill();
	const void *in[] = { x };
	void *out[] = { y };
	cr_assert_eq(e->i->run(e, in, out, 4), 0);
	for (int i = 0; i < 4 * 16; i++)
		cr_assert_float_eq(y[i], 3.0f * x[i] + (float)(i % 16), 1e-5f, "y[%d] = %g", i,
				   (double)y[i]);
	cr_assert(e->i->fits(e, 8));
	swarm_executor_free(e);
}

Test(runtime_executor, backend_refusals_say_why, .init = weights, .fini = weights_done)
{
	parse(BACKEND_MANIFEST("factor=3"));
	char why[256] = "";
	struct swarm_executor *e = NULL;
	cr_assert_eq(swarm_executor_backend("/nonexistent/libnothing.so", &man, &w, 8, &e, why,
					    sizeof why),
		     -ENOENT);
	cr_assert(strstr(why, "cannot load backend"), "why: %s", why);
	cr_assert_null(e);
	/* A shared object with no entry point. */
	cr_assert_eq(swarm_executor_backend("libm.so.6", &man, &w, 8, &e, why, sizeof why),
		     -EPROTO);
	cr_assert(strstr(why, "no swarm_backend_entry"), "why: %s", why);
	/* Its load fails: the weights have no "bias". */
	swarm_weights_unload(&w);
	const int64_t shape[] = { 2 };
	const float two[2] = { 1, 2 };
	const struct swarm_st_write_tensor t = { "other", SWARM_ST_F32, 1, shape, two };
	cr_assert_eq(swarm_st_write(wpath, &t, 1), 0);
	cr_assert_eq(swarm_weights_load(wpath, 0, NULL, 0, &w, why, sizeof why), 0, "%s", why);
	cr_assert_lt(swarm_executor_backend(SWARM_LIB_DIR "/libswarm_example_backend.so", &man, &w,
					    8, &e, why, sizeof why),
		     0);
	cr_assert(strstr(why, "load failed"), "why: %s", why);
	cr_assert_null(e);
}
