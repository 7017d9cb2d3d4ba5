/* model_harness.h: what the model cases of swarm-bench share, internal to bench/: a
 * case's environment (a temporary directory, a registry and a swarmd of its own), the input
 * rows of a model with their in-process outputs, the model's graph run in this process, one
 * request through swarm, and the models themselves (model_models.c). model_harness.c holds the
 * rest; the cases are model_bench.c (overhead), model_batching.c and model_scaleup.c.
 *
 * mb_fill and mb_local_call are inlines here because the timed loops call them per request. */
#ifndef SWARM_BENCH_MODEL_HARNESS_H
#define SWARM_BENCH_MODEL_HARNESS_H

#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <swarm/swarm.h>

#include "bench/daemon.h"
#include "bench/model_bench.h"
#include "bench/ranker.h"
#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "registry/manifest.h"

#define MB_INPUT_SEED 12345
#define MB_WAIT_NS (10ll * 1000 * 1000 * 1000)
#define MB_SPIN_FOREVER_NS 1000000000ull /* the overhead client spins 1 s before it sleeps */
#define MB_DAEMON_SPIN_US 1000u          /* swarmd --spin-us of every case */
#define MB_MANIFEST_MAX SWARM_MANIFEST_MAX_BYTES
#define MB_MAX_OUT (1 << 22) /* floats of a model's one output row */
#define MB_RANKER_OUT                                                       \
	1024 /* the batching and scale-up cases' (rankers') output rows, on \
	      * the stack */

/* ---- the environment: temporary directory, registry, swarmd ------------------------------ */

struct mb_env {
	const struct bench_model_opts *o;
	char dir[PATH_MAX - 64]; /* "" until made */
	char reg[PATH_MAX];
	char sock[108];             /* sizeof(sun_path) */
	struct bench_swarmd swarmd; /* its log lives in dir */
};

/* Makes the directory and an empty registry in it. */
int mb_env_init(struct mb_env *e, const struct bench_model_opts *o);

/* Publishes weights with manifest (its text, written to the directory first) as name. */
int mb_publish(struct mb_env *e, const char *name, const char *weights, const char *manifest);

/* Starts swarmd on the environment's registry (with the extra arguments of extra, a
 * NULL-terminated list, or NULL) and waits until it takes connections. */
int mb_swarmd_start(struct mb_env *e, const char *devices, const char *topology,
		    const char *const *extra);

/* Stops swarmd and removes the directory. Returns swarmd's stop status. */
int mb_env_fini(struct mb_env *e);

/* ---- statistics ---------------------------------------------------------------------------- */

/* qsort's order of uint64_t. */
int mb_cmp_u64(const void *a, const void *b);

/* The nearest-rank index of the permille-th percentile of n sorted samples. */
size_t mb_rank(size_t n, unsigned permille);

/* The nearest-rank median of n values (sorted in place); NAN when n is 0. */
double mb_median_double(double *v, size_t n);

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

void mb_inputs_free(struct mb_inputs *in);

/* Sizes in after m's signature (one f32 output) and allocates its sets. */
int mb_inputs_alloc(struct mb_inputs *in, const struct swarm_manifest *m, int n_sets);

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
bool mb_check(const char *who, const float *got, const struct mb_inputs *in, int set);

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

void mb_local_close(struct mb_local *l);

/* Loads the weights file and builds m's graph on dev (owned from here, destroyed by
 * mb_local_close, also on failure) for the batch the worker plans (the larger of max_rows
 * and max_batch), with input and output buffers of that many rows. */
int mb_local_open(struct mb_local *l, struct swarm_device *dev, const char *weights,
		  const struct swarm_manifest *m);

/* mb_local_open on a one-thread CPU device. */
int mb_local_open_cpu(struct mb_local *l, const char *weights, const struct swarm_manifest *m);

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
int mb_local_refs(struct mb_local *l, struct mb_inputs *in);

/* The in-process graph's time per row at runs of rows[i] rows (consecutive sets), for about
 * seconds per size, taken in rounds of every size in turn so that the machine's noise falls
 * on all of them: each run's ns divided by its rows, as percentiles over the runs. */
int mb_local_per_row(struct mb_local *l, const struct mb_inputs *in, const uint32_t *rows,
		     int n_sizes, double seconds, struct bench_model_stats *out);

/* ---- a request through swarm ----------------------------------------------------------- */

/* One request of one row on set s; out gets the output row. */
int mb_swarm_call(swarm_session *s, const struct mb_inputs *in, int set, float *out);

/* Opens a session of one-row requests on model and checks that its tensors are in's. */
int mb_session_open(swarm_client *c, const char *model, const struct mb_inputs *in, uint32_t slots,
		    uint64_t spin_ns, swarm_session **out);

/* Parses a cpulist ("0-3,8") into set. Returns 0 or -EINVAL. */
int mb_cpulist_parse(const char *list, cpu_set_t *set);

/* snprintf into a message buffer, where a cut message is acceptable. */
__attribute__((format(printf, 3, 4))) void mb_say(char *buf, size_t len, const char *fmt, ...);

/* ---- the models (model_models.c) ----------------------------------------------------------- */

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

void mb_model_free(struct mb_model *md);

/* Ranker r, its weights (seed BENCH_RANKER_SEED) written into the environment's directory,
 * with deploy d. */
int mb_model_ranker(struct mb_model *md, struct mb_env *e, const struct bench_ranker *r,
		    const struct bench_ranker_deploy *d);

/* The same with the weights of seed (a file per shape and seed): rankers of one shape that
 * are different blobs. */
int mb_model_ranker_seeded(struct mb_model *md, struct mb_env *e, const struct bench_ranker *r,
			   const struct bench_ranker_deploy *d, uint64_t seed);

/* A node-list model of one identity node over f32 [-1, 16] with deploy d, and its weights file
 * (no tensors: the node reads only its input), written into the environment's directory. On
 * a GPU its run is the copies and one device-to-device copy: what swarm adds to a round trip
 * stands out against the least a graph on that device does. */
int mb_model_identity(struct mb_model *md, struct mb_env *e, const struct bench_ranker_deploy *d);

/* The imported model o->onnx_name of o->onnx_dir (bench/onnx-prepare.sh's), unbatched. Returns
 * 1 (why filled) when it is not there. */
int mb_model_onnx(struct mb_model *md, const struct bench_model_opts *o, char *why, size_t why_len);

/* MiniLM from o->minilm_dir, its deploy set to max_batch 1. Returns 1 (why filled) when it
 * is not there or not what the case measures. */
int mb_model_minilm(struct mb_model *md, const struct bench_model_opts *o, int quick, char *why,
		    size_t why_len);

void mb_onnx_rows_free(void);

/* Makes md's input sets into in (from MB_INPUT_SEED, the same in every case) and their
 * outputs in process on l (in->ref). Returns 0 or a negative errno. */
int mb_inputs_make(struct mb_local *l, struct mb_inputs *in, const struct mb_model *md);

/* Gives a case's worker a core of its own (o->peer_cpu, alone on a one-core --topology
 * written into e's directory): its path in topo (len bytes) and *out, or *out untouched when
 * the benchmark is not pinned. Returns 0 or a negative errno. */
int mb_topology_one_core(const struct bench_model_opts *o, const struct mb_env *e, char *topo,
			 size_t len, const char **out);

#endif /* SWARM_BENCH_MODEL_HARNESS_H */
