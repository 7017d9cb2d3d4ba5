/* model_bench.c: swarm-bench's cases on real models (model_bench.h). A model here is a
 * manifest, a weights file and a generator of input rows: the rankers of bench/ranker.c
 * (made here, the same tensors as tools/make-ranker-model.py makes) and all-MiniLM-L6-v2 as
 * tools/import-minilm.py imported it. Each case publishes its model into a registry of its
 * own, serves it from a swarmd of its own and measures it against the same graph run in this
 * process, on the same inputs, checking every output.
 *
 * This file holds the overhead cases (CPU and GPU); the harness they share is in
 * model_harness.c, the models in model_models.c, the other cases in model_batching.c and
 * model_scaleup.c. */
#include "bench/model_harness.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/probe.h"
#endif

/* ---- overhead ------------------------------------------------------------------------------ */

/* mb_overhead_block's calls, out the room for one output row. */
static int mb_overhead_calls(struct mb_local *l, swarm_session *s, const struct mb_inputs *in,
			     size_t first, size_t n, uint64_t *ns, float *out)
{
	for (size_t i = first; i < first + n; i++) {
		int set = (int)(i % (size_t)in->n_sets);
		uint64_t t0 = swarm_now_ns();
		int rc = s ? mb_swarm_call(s, in, set, out) : mb_local_call(l, in, set, out);
		uint64_t t1 = swarm_now_ns();

		if (rc) {
			fprintf(stderr, "swarm-bench: overhead: %s call %zu: %s\n",
				s ? "swarm" : "in-process", i, swarm_strerror(rc));
			return rc;
		}
		if (!mb_check("overhead", out, in, set))
			return -EBADMSG;
		if (ns)
			ns[i - first] = t1 - t0;
	}
	return 0;
}

/* Runs n calls of one side, call numbers first.. (set number % n_sets); samples go to ns
 * (when not NULL), outputs are checked against in->ref. */
static int mb_overhead_block(struct mb_local *l, swarm_session *s, const struct mb_inputs *in,
			     size_t first, size_t n, uint64_t *ns)
{
	float *out = malloc(in->out_n * sizeof *out);
	int rc = out ? mb_overhead_calls(l, s, in, first, n, ns, out) : -ENOMEM;

	free(out);
	return rc;
}

/* Calls per side, and how they alternate. */
struct mb_overhead_counts {
	size_t iters, block, block_warmup;
};

/* The median of n samples (reordered). */
static double mb_median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, mb_cmp_u64);
	return n ? (double)v[mb_rank(n, 500)] : 0;
}

/* The measuring loop of every model: in-process and swarm blocks alternate, each block
 * preceded by a few unmeasured calls of its side. s is a session on the model published with
 * max_batch 1, l the same graph in this process, in's refs filled. */
static int mb_overhead_measure(struct mb_local *l, swarm_session *s, const struct mb_inputs *in,
			       const struct mb_overhead_counts *n, struct bench_model_overhead *out)
{
	const size_t warmup = n->block;
	uint64_t *a = calloc(n->iters, sizeof *a), *b = calloc(n->iters, sizeof *b);
	double lo = INFINITY, hi = 0;
	swarm_session_info info;
	cpu_set_t mine, theirs;
	int rc = 0;

	if (!a || !b) {
		rc = -ENOMEM;
		goto out;
	}
	if (swarm_session_info_get(s, &info) != 0)
		info.cpus[0] = info.device_name[0] = '\0';
	/* The in-process calls run on the worker's cores, so that both sides compute on the
	 * same core and the difference is what swarm adds, not how two cores differ. */
	bool move = sched_getaffinity(0, sizeof mine, &mine) == 0 &&
		    mb_cpulist_parse(info.cpus, &theirs) == 0;
	if (move && CPU_EQUAL(&mine, &theirs))
		fprintf(stderr,
			"swarm-bench: warning: the worker (%s, cpus %s) shares this benchmark's "
			"cpus; the overhead case measures time slicing\n",
			info.device_name, info.cpus);
	snprintf(out->inproc_cpus, sizeof out->inproc_cpus, "%s", move ? info.cpus : "this one");
	snprintf(out->worker_device, sizeof out->worker_device, "%s", info.device_name);

	/* Warm both up, then alternate blocks so that the machine's noise falls on both. */
	for (size_t done = 0; rc == 0 && done < warmup + n->iters; done += n->block) {
		size_t k = warmup + n->iters - done < n->block ? warmup + n->iters - done :
								 n->block;
		bool keep = done >= warmup;

		/* Past the worker's spin (its cores are then free) and onto them. */
		usleep(2 * MB_DAEMON_SPIN_US);
		if (move)
			sched_setaffinity(0, sizeof theirs, &theirs);
		rc = mb_overhead_block(l, NULL, in, done + n->iters, n->block_warmup, NULL);
		if (rc == 0)
			rc = mb_overhead_block(l, NULL, in, done, k,
					       keep ? b + done - warmup : NULL);
		if (move)
			sched_setaffinity(0, sizeof mine, &mine);
		if (rc == 0)
			rc = mb_overhead_block(l, s, in, done + n->iters, n->block_warmup, NULL);
		if (rc == 0)
			rc = mb_overhead_block(l, s, in, done, k, keep ? a + done - warmup : NULL);
		if (rc == 0 && keep) {
			/* How far the in-process side moves from block to block on its own. */
			double med = mb_median(b + done - warmup, k);

			lo = med < lo ? med : lo;
			hi = med > hi ? med : hi;
		}
	}
	if (rc == 0) {
		out->swarm = bench_model_stats_of(a, n->iters);
		out->inproc = bench_model_stats_of(b, n->iters);
		out->iters = n->iters;
		out->drift_ns = hi - lo;
	}
out:
	free(a);
	free(b);
	return rc;
}

/* The first line of a log that holds needle (swarmd's, where its workers write too), from
 * needle to the line's end, in line. Returns 1 found, 0 not, or -errno. */
static int mb_log_line(const char *log, const char *needle, char *line, size_t len)
{
	char buf[1024];
	FILE *f = fopen(log, "re");
	int found = 0;

	if (!f)
		return -errno;
	while (!found && fgets(buf, sizeof buf, f)) {
		const char *at = strstr(buf, needle);

		if (at) {
			snprintf(line, len, "%.*s", (int)strcspn(at, "\n"), at);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* The counts of one model's overhead case. MiniLM at 32 tokens computes for milliseconds,
 * the ranker for about a microsecond: the same loop, fewer and shorter blocks. */
static const struct mb_overhead_counts *mb_overhead_counts_of(const struct bench_model_opts *o,
							      enum bench_model_kind kind)
{
	static const struct mb_overhead_counts ranker_n = { 100000, 5000, 100 },
					       ranker_quick = { 10000, 1000, 100 },
					       minilm_n = { 600, 50, 2 },
					       minilm_quick = { 40, 10, 1 }, slow_n = { 40, 5, 1 },
					       slow_quick = { 6, 3, 1 };

	return kind == BENCH_MODEL_MINILM ? (o->quick ? &minilm_quick : &minilm_n) :
	       kind == BENCH_MODEL_ONNX   ? (o->quick     ? &slow_quick :
					     o->onnx_slow ? &slow_n :
							    &minilm_n) :
					    (o->quick ? &ranker_quick : &ranker_n);
}

/* Makes in's sets and their outputs in process on l; the identity's must be its input. */
static int mb_overhead_refs(struct mb_local *l, struct mb_inputs *in, const struct mb_model *md,
			    enum bench_model_kind kind)
{
	int rc = mb_inputs_make(l, in, md);

	/* The identity's reference is its input: a device that copied wrong fails here, not as
	 * a mismatch of swarm's. */
	for (int i = 0; rc == 0 && kind == BENCH_MODEL_IDENTITY && i < in->n_sets; i++)
		if (memcmp(in->ref + (size_t)i * in->out_n, in->in[0] + (size_t)i * in->in_row[0],
			   in->in_row[0]) != 0) {
			fprintf(stderr,
				"swarm-bench: the in-process identity changed input set %d\n", i);
			rc = -EBADMSG;
		}
	return rc;
}

/* On a staged device (a GPU), what shows both sides copied as the row says: the in-process
 * buffers' pinning and CUDA graphs from l, the worker's device and pinning from swarmd's log. */
static void mb_overhead_staged(const struct mb_env *e, const struct mb_local *l,
			       struct bench_model_overhead *out)
{
	char line[256], needle[128];

	out->inproc_pinned = l->pinned;
	out->inproc_captured = swarm_graph_captured(l->g);
	/* The serving worker says what it opened ("device=gpu:0 kind=cuda gpu=0"), and
	 * warns when it cannot pin a session's segment (the slots written in place). */
	snprintf(needle, sizeof needle, "event=device_open device=%s ", out->worker_device);
	if (mb_log_line(e->swarmd.log, needle, line, sizeof line) == 1)
		snprintf(out->worker_device, sizeof out->worker_device, "%.63s",
			 line + strlen("event=device_open "));
	int failed = mb_log_line(e->swarmd.log, "event=register_host_failed session=", line,
				 sizeof line);
	out->worker_pinned = failed == 0 ? 1 : failed == 1 ? 0 : -1;
}

/* Each model's name in the case's registry, and in the case's progress line. */
static const char *const mb_overhead_names[] = { [BENCH_MODEL_RANKER] = "ranker-b1",
						 [BENCH_MODEL_MINILM] = "minilm-b1",
						 [BENCH_MODEL_IDENTITY] = "identity-b1",
						 [BENCH_MODEL_ONNX] = "onnx-b1" };
static const char *const mb_overhead_what[] = { [BENCH_MODEL_RANKER] = "the small ranker",
						[BENCH_MODEL_MINILM] = "MiniLM, 32 tokens,",
						[BENCH_MODEL_IDENTITY] =
							"a node-list identity, 64 B,",
						[BENCH_MODEL_ONNX] = "the imported ONNX model" };

/* Runs o's client hook in place of *s, which is closed first: the hook's client takes this
 * session's place, on the same worker (which the balancer picks again once swarmd has
 * counted this session gone: the python child reopens until its session is not on its own
 * cpu). */
static int mb_overhead_hook(const struct bench_model_opts *o, swarm_session **s, const char *sock,
			    const char *model, struct mb_inputs *in)
{
	swarm_session_close(*s);
	*s = NULL;
	return o->client_hook(o->client_arg, sock, model, in);
}

/* The overhead case of one model, the in-process side on dev (owned: destroyed before this
 * returns; NULL for a one-thread CPU device), the swarm side on a swarmd --devices devices. */
static int mb_overhead_run(const struct bench_model_opts *o, enum bench_model_kind kind,
			   struct swarm_device *dev, const char *devices,
			   struct bench_model_overhead *out)
{
	const struct mb_overhead_counts *n = mb_overhead_counts_of(o, kind);
	const struct bench_ranker_deploy b1 = { 64, 8, 1, 0 };
	struct mb_inputs in = { 0 };
	struct mb_model md = { 0 };
	struct mb_local l = { 0 };
	struct mb_env e;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc, rc2;

	memset(&e, 0, sizeof e);
	if (!dev && (rc = swarm_device_cpu_create(1, &dev)) != 0) {
		fprintf(stderr, "swarm-bench: cpu device: %s\n", strerror(-rc));
		return rc;
	}
	if (kind == BENCH_MODEL_MINILM || kind == BENCH_MODEL_ONNX) {
		rc = kind == BENCH_MODEL_MINILM ?
			     mb_model_minilm(&md, o, o->quick, out->why, sizeof out->why) :
			     mb_model_onnx(&md, o, out->why, sizeof out->why);
		if (rc == 1) {
			out->skipped = 1;
			rc = 0;
		}
		if (rc || out->skipped)
			goto out;
	}
	rc = mb_env_init(&e, o);
	if (rc == 0 && kind == BENCH_MODEL_RANKER)
		rc = mb_model_ranker(&md, &e, &bench_ranker_small, &b1);
	if (rc == 0 && kind == BENCH_MODEL_IDENTITY)
		rc = mb_model_identity(&md, &e, &b1);
	fprintf(stderr,
		"swarm-bench: %s at batch 1 on %s, swarm (max_batch 1, spinning) against the same "
		"graph in-process (%zu calls each)\n",
		mb_overhead_what[kind], devices, n->iters);
	if (rc == 0)
		rc = mb_inputs_alloc(&in, md.m, md.n_sets);
	if (rc)
		goto out;
	rc = mb_local_open(&l, dev, md.weights, md.m);
	dev = NULL; /* l's now, destroyed with it */
	if (rc == 0)
		rc = mb_overhead_refs(&l, &in, &md, kind);
	if (rc == 0)
		rc = mb_publish(&e, mb_overhead_names[kind], md.weights, md.manifest);
	if (rc == 0)
		rc = mb_swarmd_start(&e, devices, NULL, NULL);
	if (rc == 0 && (rc = swarm_connect(e.sock, &c)) != 0)
		fprintf(stderr, "swarm-bench: connect: %s\n", swarm_strerror(rc));
	if (rc == 0)
		rc = mb_session_open(c, mb_overhead_names[kind], &in, 4, MB_SPIN_FOREVER_NS, &s);
	if (rc == 0)
		rc = mb_overhead_measure(&l, s, &in, n, out);
	if (rc == 0 && !l.dev->i->host_memory)
		mb_overhead_staged(&e, &l, out);
	if (rc == 0 && o->client_hook)
		rc = mb_overhead_hook(o, &s, e.sock, mb_overhead_names[kind], &in);
out:
	if (dev)
		dev->i->destroy(dev);
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	mb_local_close(&l);
	mb_inputs_free(&in);
	mb_model_free(&md);
	mb_onnx_rows_free();
	rc2 = mb_env_fini(&e);
	return rc ? rc : rc2;
}

int bench_model_overhead_run(const struct bench_model_opts *o, enum bench_model_kind kind,
			     struct bench_model_overhead *out)
{
	memset(out, 0, sizeof *out);
	return mb_overhead_run(o, kind, NULL, o->devices, out);
}

/* Why the CUDA device could not be made (rc its code). */
static const char *mb_cuda_why(int rc)
{
#ifdef SWARM_HAVE_CUDA
	(void)rc;
	return swarm_cuda_last_error();
#else
	return rc == -ENOTSUP ? "CUDA not built in" : strerror(-rc);
#endif
}

int bench_model_gpu_overhead_run(const struct bench_model_opts *o, enum bench_model_kind kind,
				 struct bench_model_overhead *out)
{
	struct swarm_device *dev;
	int rc;

	memset(out, 0, sizeof *out);
	/* GPU 0, which swarmd --devices gpu names gpu:0 and gives the only session. */
	rc = swarm_device_cuda_create(0, &dev);
	if (rc == -ENODEV || rc == -ENOTSUP) {
		out->skipped = 1;
		mb_say(out->why, sizeof out->why, "no GPU (%s)", mb_cuda_why(rc));
		return 0;
	}
	if (rc) {
		fprintf(stderr, "swarm-bench: cuda device 0: %s\n", mb_cuda_why(rc));
		return rc;
	}
	return mb_overhead_run(o, kind, dev, "gpu", out);
}
