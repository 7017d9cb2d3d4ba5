/* ranker.h: the DLRM-style rankers of swarm-bench's model cases, made in C as
 * tools/make-ranker-model.py makes them (the same LCG, bounds, order and graph: the tensor
 * bytes are identical, the safetensors header and the manifest equal as JSON, only their key
 * order differs), so that the benchmark needs no Python.
 *
 * Two sizes, each the tool's output with the flags named in its description:
 *
 *   small       the tool's defaults: dim 16, bottom 13-64-16, top 64-64-1 (about a
 *               microsecond a row on one core); the overhead case and the small batching run.
 *   production  --bottom 512,256,64 --top 512,256,1: dim 64, bottom 13-512-256-64, top
 *               256-512-256-1, the shape of the DLRM paper's MLPs (tens of microseconds a
 *               row: its MLP weights, 1.7 MB, are streamed once per batch).
 *
 * Both have 13 dense inputs, 3 tables of 10000 rows and bags of 8 ids, seed 1.
 * `swarm-bench --write-rankers DIR` writes both; bench/check-ranker.sh compares them with the
 * tool's. Functions return 0 or a negative errno, having printed what failed to stderr; they
 * are thread-safe.
 */
#ifndef SWARM_BENCH_RANKER_H
#define SWARM_BENCH_RANKER_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_RANKER_DENSE 13
#define BENCH_RANKER_SPARSE 3
#define BENCH_RANKER_BAG 8
#define BENCH_RANKER_VOCAB 10000
#define BENCH_RANKER_MAX_LAYERS 4 /* per MLP */
#define BENCH_RANKER_INPUTS (1 + BENCH_RANKER_SPARSE)

struct bench_ranker {
	const char *name;  /* "small", "production" */
	const char *flags; /* tools/make-ranker-model.py's flags for the same model ("": none) */
	const char *shape; /* "dim 16, bottom 13-64-16, top 64-64-1", for tables */
	int n_bot, bot[BENCH_RANKER_MAX_LAYERS]; /* widths after the dense input; last = dim */
	int n_top, top[BENCH_RANKER_MAX_LAYERS]; /* widths after the concat; last = 1 */
};

extern const struct bench_ranker bench_ranker_small, bench_ranker_production;

/* The deploy section of a manifest. */
struct bench_ranker_deploy {
	uint32_t max_rows, slots, max_batch, delay_us;
};

/* The tool's defaults: max_rows 64, slots 8, max_batch 256, max_queue_delay_us 200. */
extern const struct bench_ranker_deploy bench_ranker_tool_deploy;

/* Knuth's MMIX LCG, the tool's: the state starts at seed ^ 0x9E3779B97F4A7C15. */
struct bench_lcg {
	uint64_t state;
};

void bench_lcg_init(struct bench_lcg *g, uint64_t seed);
uint64_t bench_lcg_next(struct bench_lcg *g);
/* (2u - 1) * bound in double, u the top 24 bits of the next state / 2^24. */
double bench_lcg_uniform(struct bench_lcg *g, double bound);

/* The seed of tools/make-ranker-model.py's default weights, the one every case serves. */
#define BENCH_RANKER_SEED 1

/* Writes r's weights drawn from seed to path: the tool's with --seed seed, so that rankers of
 * one shape with different seeds are different blobs (the memory case's distinct models). */
int bench_ranker_weights_write_seeded(const struct bench_ranker *r, uint64_t seed,
				      const char *path);

/* Writes r's weights (seed BENCH_RANKER_SEED) to path. */
int bench_ranker_weights_write(const struct bench_ranker *r, const char *path);

/* Writes r's manifest with deploy d into buf (NUL-terminated). -ENOSPC when len is short. */
int bench_ranker_manifest(const struct bench_ranker *r, const struct bench_ranker_deploy *d,
			  char *buf, size_t len);

/* Writes text to path (created or truncated). */
int bench_write_text(const char *path, const char *text);

/* Writes dir/ranker.safetensors and dir/ranker.json (the tool's default deploy), making dir. */
int bench_ranker_write_dir(const struct bench_ranker *r, const char *dir);

#endif /* SWARM_BENCH_RANKER_H */
