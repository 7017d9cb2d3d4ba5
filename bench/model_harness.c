/* model_harness.c: what the model cases share (model_harness.h): each case's environment,
 * the input rows of a model, its graph run in this process, one request through swarm. */
#include "bench/model_harness.h"
#include "registry/registry.h"
#include "runtime/device_weights.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

static int mb_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "swarm-bench: could not remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Makes the directory and an empty registry in it. */
int mb_env_init(struct mb_env *e, const struct bench_model_opts *o)
{
	const char *tmp = getenv("TMPDIR");
	char err[512];
	int rc;

	memset(e, 0, sizeof *e);
	e->o = o;
	snprintf(e->dir, sizeof e->dir, "%s/swarm-bench-model.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(e->dir)) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: mkdtemp %s: %s\n", e->dir, strerror(-rc));
		e->dir[0] = '\0';
		return rc;
	}
	snprintf(e->reg, sizeof e->reg, "%s/registry", e->dir);
	snprintf(e->swarmd.log, sizeof e->swarmd.log, "%s/swarmd.log", e->dir);
	if (snprintf(e->sock, sizeof e->sock, "%s/swarmd.sock", e->dir) >= (int)sizeof e->sock) {
		fprintf(stderr, "swarm-bench: socket path in %s too long\n", e->dir);
		return -ENAMETOOLONG;
	}
	rc = swarm_registry_init(e->reg, err, sizeof err);
	if (rc)
		fprintf(stderr, "swarm-bench: registry init %s: %s\n", e->reg, err);
	return rc;
}

/* Publishes weights with manifest (its text, written to the directory first) as name. */
int mb_publish(struct mb_env *e, const char *name, const char *weights, const char *manifest)
{
	char path[PATH_MAX + 64], err[512];
	uint32_t version = 0;
	int rc;

	snprintf(path, sizeof path, "%s/%s.json", e->dir, name);
	rc = bench_write_text(path, manifest);
	if (rc)
		return rc;
	rc = swarm_registry_publish(e->reg, name, weights, path, NULL, 0, 1, &version, err,
				    sizeof err);
	if (rc)
		fprintf(stderr, "swarm-bench: publish %s: %s\n", name, err);
	return rc;
}

/* Starts swarmd on the environment's registry (with the extra arguments of extra, a
 * NULL-terminated list, or NULL) and waits until it takes connections. */
int mb_swarmd_start(struct mb_env *e, const char *devices, const char *topology,
		    const char *const *extra)
{
	return bench_swarmd_start(&e->swarmd, e->o->exe_dir, e->sock, devices, MB_DAEMON_SPIN_US,
				  e->reg, topology, extra, NULL);
}

/* Stops swarmd and removes the directory. Returns swarmd's stop status. */
int mb_env_fini(struct mb_env *e)
{
	int rc = bench_swarmd_stop(&e->swarmd);

	if (e->dir[0])
		nftw(e->dir, mb_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

/* ---- statistics ---------------------------------------------------------------------------- */

int mb_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

size_t mb_rank(size_t n, unsigned permille)
{
	size_t rank = (n * permille + 999) / 1000;

	return rank == 0 ? 0 : rank - 1;
}

static int mb_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank median of n values (reordered). */
double mb_median_double(double *v, size_t n)
{
	qsort(v, n, sizeof *v, mb_cmp_double);
	return n ? v[mb_rank(n, 500)] : NAN;
}

struct bench_model_stats bench_model_stats_of(uint64_t *v, size_t n)
{
	if (n == 0)
		return (struct bench_model_stats){ 0 };
	qsort(v, n, sizeof *v, mb_cmp_u64);
	return (struct bench_model_stats){ (double)v[mb_rank(n, 500)], (double)v[mb_rank(n, 990)],
					   (double)v[mb_rank(n, 999)] };
}

/* ---- inputs -------------------------------------------------------------------------------- */

void mb_inputs_free(struct mb_inputs *in)
{
	for (uint32_t i = 0; i < in->n_in; i++)
		free(in->in[i]);
	free(in->ref);
	memset(in, 0, sizeof *in);
}

/* Sizes in after m's signature (one f32 output) and allocates its sets. */
int mb_inputs_alloc(struct mb_inputs *in, const struct swarm_manifest *m, int n_sets)
{
	memset(in, 0, sizeof *in);
	if (m->n_outputs != 1 || m->outputs[0].dtype != SWARM_DTYPE_F32 ||
	    m->outputs[0].row_bytes / sizeof(float) > MB_MAX_OUT) {
		fprintf(stderr,
			"swarm-bench: the model cases need one f32 output of at most %d "
			"values a row\n",
			MB_MAX_OUT);
		return -EINVAL;
	}
	in->n_sets = n_sets;
	in->n_in = m->n_inputs;
	in->out_n = m->outputs[0].row_bytes / sizeof(float);
	bool ok = (in->ref = calloc((size_t)n_sets * in->out_n, sizeof(float))) != NULL;
	for (uint32_t i = 0; i < in->n_in; i++) {
		in->in_row[i] = m->inputs[i].row_bytes;
		ok = (in->in[i] = calloc((size_t)n_sets, in->in_row[i])) != NULL && ok;
	}
	if (ok)
		return 0;
	mb_inputs_free(in);
	return -ENOMEM;
}

/* 1 when an output through swarm matches the in-process one: bit-equal at batch 1 on the
 * same kernels, within a float rounding or two when batched (other GEMM shapes). Prints the
 * first difference. */
bool mb_check(const char *who, const float *got, const struct mb_inputs *in, int set)
{
	const float *want = in->ref + (size_t)set * in->out_n;

	for (size_t j = 0; j < in->out_n; j++)
		if (!(fabsf(got[j] - want[j]) <= 1e-6f + 1e-5f * fabsf(want[j]))) {
			fprintf(stderr,
				"swarm-bench: %s: input set %d, output %zu: swarm gave %.9g, "
				"in-process %.9g\n",
				who, set, j, (double)got[j], (double)want[j]);
			return false;
		}
	return true;
}

/* ---- the in-process graph ---------------------------------------------------------------- */

void mb_local_close(struct mb_local *l)
{
	swarm_graph_free(l->g);
	if (l->host) {
		if (l->pinned)
			l->dev->i->unregister_host(l->dev, l->host);
		munmap(l->host, l->host_bytes);
	} else {
		for (uint32_t i = 0; i < l->n_in; i++)
			if (l->in[i])
				l->dev->i->free(l->dev, l->in[i]);
		if (l->out)
			l->dev->i->free(l->dev, l->out);
	}
	if (l->loaded)
		swarm_weights_unload(&l->w);
	if (l->dev)
		l->dev->i->destroy(l->dev);
	memset(l, 0, sizeof *l);
}

/* The buffers of a staged device (a GPU), where the graph is called with host memory as the
 * worker calls it with its slots: one mapping holding every input and the output, pinned with
 * the device (register_host) as the worker pins the session segment, so that both sides copy
 * from and to pinned memory. A device that refuses to pin leaves it pageable (the copies still
 * work, slower; the worker does the same): l->pinned says which. */
static int mb_local_host(struct mb_local *l, const struct swarm_manifest *m)
{
	size_t off[SWARM_MAX_TENSORS + 1], at = 0;

	for (uint32_t i = 0; i <= l->n_in; i++) {
		size_t row = i < l->n_in ? m->inputs[i].row_bytes : m->outputs[0].row_bytes;

		off[i] = at;
		at += ((size_t)l->rows * row + 63) & ~(size_t)63;
	}
	void *p = mmap(NULL, at, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		int rc = -errno;
		fprintf(stderr, "swarm-bench: mmap of %zu bytes: %s\n", at, strerror(-rc));
		return rc;
	}
	memset(p, 0, at); /* faulted in before it is pinned, as the worker's segment is */
	l->host = p;
	l->host_bytes = at;
	l->pinned = l->dev->i->register_host && l->dev->i->unregister_host &&
		    l->dev->i->register_host(l->dev, p, at) == 0;
	for (uint32_t i = 0; i < l->n_in; i++)
		l->in[i] = (char *)p + off[i];
	l->out = (char *)p + off[l->n_in];
	return 0;
}

/* Loads the weights file and builds m's graph on dev (owned from here, destroyed by
 * mb_local_close, also on failure) for the batch the worker plans (the larger of max_rows
 * and max_batch), with input and output buffers of that many rows. */
int mb_local_open(struct mb_local *l, struct swarm_device *dev, const char *weights,
		  const struct swarm_manifest *m)
{
	char err[512];
	int rc;

	memset(l, 0, sizeof *l);
	l->dev = dev;
	rc = swarm_weights_load(weights, 0, NULL, 0, &l->w, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: load %s: %s\n", weights, err);
		goto err;
	}
	l->loaded = true;
	l->rows = m->deploy.max_rows > m->deploy.max_batch ? m->deploy.max_rows :
							     m->deploy.max_batch;
	rc = swarm_graph_from_weights(m, l->w.map, &l->w.st, l->dev, l->rows, &l->g, err,
				      sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: the graph of %s: %s\n", weights, err);
		goto err;
	}
	l->n_in = m->n_inputs;
	if (!l->dev->i->host_memory)
		rc = mb_local_host(l, m);
	for (uint32_t i = 0; !l->host && i < l->n_in; i++)
		if (!(l->in[i] = l->dev->i->alloc(l->dev, l->rows * m->inputs[i].row_bytes)))
			rc = -ENOMEM;
	if (rc == 0 && !l->host &&
	    !(l->out = l->dev->i->alloc(l->dev, l->rows * m->outputs[0].row_bytes)))
		rc = -ENOMEM;
	if (rc == 0)
		return 0;
err:
	mb_local_close(l);
	return rc;
}

/* mb_local_open on a one-thread CPU device. */
int mb_local_open_cpu(struct mb_local *l, const char *weights, const struct swarm_manifest *m)
{
	struct swarm_device *dev;
	int rc = swarm_device_cpu_create(1, &dev);

	if (rc) {
		memset(l, 0, sizeof *l);
		fprintf(stderr, "swarm-bench: cpu device: %s\n", strerror(-rc));
		return rc;
	}
	return mb_local_open(l, dev, weights, m);
}

/* Fills in->ref: every set run alone in process. */
int mb_local_refs(struct mb_local *l, struct mb_inputs *in)
{
	int rc = 0;

	for (int s = 0; s < in->n_sets && rc == 0; s++)
		rc = mb_local_call(l, in, s, in->ref + (size_t)s * in->out_n);
	if (rc)
		fprintf(stderr, "swarm-bench: in-process run: %s\n", swarm_strerror(rc));
	return rc;
}

/* The in-process graph's time per row at runs of rows[i] rows (consecutive sets), for about
 * seconds per size, taken in rounds of every size in turn so that the machine's noise falls
 * on all of them: each run's ns divided by its rows, as percentiles over the runs. */
int mb_local_per_row(struct mb_local *l, const struct mb_inputs *in, const uint32_t *rows,
		     int n_sizes, double seconds, struct bench_model_stats *out)
{
	enum {
		ROUNDS = 5,
		MAX_RUNS = 1 << 18, /* per size */
		WARMUP = 20         /* per size and round */
	};
	uint64_t *ns = calloc((size_t)n_sizes * MAX_RUNS, sizeof *ns);
	size_t n[BENCH_MODEL_GRAPH_SIZES] = { 0 };
	int rc = 0;

	if (!ns || n_sizes > BENCH_MODEL_GRAPH_SIZES) {
		free(ns);
		return -ENOMEM;
	}
	for (int k = 0; k < n_sizes; k++)
		if (rows[k] > l->rows)
			rc = -EINVAL;
	for (int round = 0; rc == 0 && round < ROUNDS; round++) {
		for (int k = 0; rc == 0 && k < n_sizes; k++) {
			uint64_t end = swarm_now_ns() + (uint64_t)(seconds / ROUNDS * 1e9);
			uint64_t *v = ns + (size_t)k * MAX_RUNS;

			for (size_t i = 0;
			     rc == 0 && n[k] < MAX_RUNS && (i < 2 * WARMUP || swarm_now_ns() < end);
			     i++) {
				uint64_t t0;

				for (uint32_t r = 0; r < rows[k]; r++)
					mb_fill(l->in, r, in,
						(int)((i * rows[k] + r) % (size_t)in->n_sets));
				t0 = swarm_now_ns();
				rc = swarm_graph_run(l->g, rows[k], (const void *const *)l->in,
						     &l->out);
				if (i >= WARMUP)
					v[n[k]++] = (swarm_now_ns() - t0) / rows[k];
			}
		}
	}
	for (int k = 0; k < n_sizes; k++)
		out[k] = bench_model_stats_of(ns + (size_t)k * MAX_RUNS, n[k]);
	free(ns);
	return rc;
}

/* ---- a request through swarm ----------------------------------------------------------- */

/* One request of one row on set s; out gets the output row. */
int mb_swarm_call(swarm_session *s, const struct mb_inputs *in, int set, float *out)
{
	swarm_request *r;
	void *dst[SWARM_MAX_TENSORS];
	int rc = swarm_request_alloc(s, 1, &r);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < in->n_in; i++)
		dst[i] = swarm_request_input(r, i);
	mb_fill(dst, 0, in, set);
	rc = swarm_request_submit(r, 0);
	if (rc == 0)
		rc = swarm_request_wait(r, MB_WAIT_NS);
	if (rc == 0)
		memcpy(out, swarm_request_output(r, 0), in->out_n * sizeof *out);
	if (rc != -ETIMEDOUT || swarm_request_poll(r) != -EAGAIN)
		swarm_request_release(r);
	return rc;
}

/* Opens a session of one-row requests on model and checks that its tensors are in's. */
int mb_session_open(swarm_client *c, const char *model, const struct mb_inputs *in, uint32_t slots,
		    uint64_t spin_ns, swarm_session **out)
{
	const swarm_session_opts opts = { .slots = slots, .queue_depth = slots, .max_rows = 1 };
	const swarm_tensor_spec *sp;
	swarm_session *s;
	int rc = swarm_session_open(c, model, 0, &opts, &s);

	if (rc) {
		fprintf(stderr, "swarm-bench: open a session on %s: %s: %s\n", model,
			swarm_strerror(rc), swarm_client_error(c));
		return rc;
	}
	bool ok = swarm_session_num_inputs(s) == in->n_in && swarm_session_num_outputs(s) == 1;
	for (uint32_t i = 0; ok && i < in->n_in; i++)
		ok = (sp = swarm_session_input_spec(s, i)) && sp->row_bytes == in->in_row[i];
	if (ok)
		ok = (sp = swarm_session_output_spec(s, 0)) &&
		     sp->row_bytes == in->out_n * sizeof(float);
	if (!ok) {
		fprintf(stderr, "swarm-bench: model %s does not have the tensors published\n",
			model);
		swarm_session_close(s);
		return -EPROTO;
	}
	swarm_session_set_spin(s, spin_ns);
	*out = s;
	return 0;
}

/* Parses a cpulist ("0-3,8") into set. Returns 0 or -EINVAL. */
int mb_cpulist_parse(const char *list, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*list) {
		char *end;
		long lo = strtol(list, &end, 10), hi = lo;

		if (end == list || lo < 0)
			return -EINVAL;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (hi < lo || hi >= CPU_SETSIZE || (*end && *end != ','))
			return -EINVAL;
		for (long c = lo; c <= hi; c++)
			CPU_SET((int)c, set);
		list = *end ? end + 1 : end;
	}
	return CPU_COUNT(set) ? 0 : -EINVAL;
}

/* snprintf into a message buffer, where a cut message is acceptable. */
__attribute__((format(printf, 3, 4))) void mb_say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int mb_inputs_make(struct mb_local *l, struct mb_inputs *in, const struct mb_model *md)
{
	struct bench_lcg g;

	bench_lcg_init(&g, MB_INPUT_SEED);
	for (int i = 0; i < in->n_sets; i++)
		md->make_set(in, i, &g);
	return mb_local_refs(l, in);
}

int mb_topology_one_core(const struct bench_model_opts *o, const struct mb_env *e, char *topo,
			 size_t len, const char **out)
{
	int rc = 0;

	if (o->peer_cpu >= 0) {
		snprintf(topo, len, "%s/one-core.xml", e->dir);
		rc = bench_topology_one_cpu(topo, o->peer_cpu);
		*out = topo;
	}
	return rc;
}
