/* gpu_bench.h: swarm-gpu-bench's hub, internal to bench/: its options, its rows and the
 * helpers its sections share, between gpu_bench.c (main, h2d, gather) and gpu_load_bench.c
 * (the model file and the weight loads). */
#ifndef SWARM_BENCH_GPU_BENCH_H
#define SWARM_BENCH_GPU_BENCH_H

#include <stddef.h>

#define GB_TENSOR_ROWS 8192
#define GB_TENSOR_COLS 16384 /* f16: 256 MiB a tensor */
#define GB_TENSOR_BYTES ((size_t)GB_TENSOR_ROWS * GB_TENSOR_COLS * 2)
#define GB_MAX_TENSORS 256
#define GB_MIN_GIB 4
#define GB_LOAD_TARGET_X_TORCH 3.0
#define GB_LOAD_TARGET_OF_PINNED 0.80

struct gb_opts {
	const char *dir;        /* where the model file goes */
	const char *torch;      /* bench/gpu_load_torch.py, or NULL: that row is skipped */
	const char *python;     /* the interpreter for it */
	int gib;                /* model size */
	int h2d_mib;            /* bytes per h2d copy */
	int iters;              /* timed h2d copies per mode */
	int loads;              /* timed loads, each side */
	int keep;               /* keep the model file */
	int write_only;         /* write and parse the model file, no GPU (a check of the writer) */
	int torch_timeout;      /* seconds the torch script may take, all its loads together */
	const char *torch_file; /* run only the torch baseline over this file (no GPU needed) */
	unsigned only;          /* the sections to run (GB_H2D | GB_LOAD | GB_GATHER) */
};

/* The sections, each run on its own so that one that fails leaves the others measured. */
enum {
	GB_H2D = 1,
	GB_LOAD = 2,
	GB_GATHER = 4,
	GB_ALL = 7
};

struct gb_row {
	char what[40];
	char figure[48];
	char baseline[72];
	char verdict[200];
};

/* The table's next row (the last one again once 32 are taken), what filled in, the rest "". */
struct gb_row *gb_row_add(const char *what);

/* Prints a row the moment it is measured ("row: what | figure | baseline | verdict"), so that
 * a run cut off later still has it; the table at the end prints every row again, filled. */
void gb_row_print(const struct gb_row *r);

/* CLOCK_MONOTONIC in seconds. */
double gb_now_s(void);

/* The median of n values, sorting v. */
double gb_median(double *v, int n);

/* Writes the model, maps it and parses it with the registry's parser: what --write-only runs,
 * so that the file is checked on a machine without a GPU. Returns 0 or -errno. */
int gb_model_check(const struct gb_opts *o);

/* The torch baseline over path (o->torch run by o->python, o->loads loads, o->torch_timeout):
 * the median of the loads it printed in seconds, or 0; skip says how many, or why none. */
double gb_load_torch(const struct gb_opts *o, const char *path, char *skip, size_t len);

/* The load section: writes (or reuses) the model file of o->gib GiB, loads it in every reader
 * mode against torch, pinned the best pinned h2d GB/s (0: none). Returns 0 or the first
 * failure's -errno; every row printed. */
int gb_bench_load(const struct gb_opts *o, double pinned);

#endif /* SWARM_BENCH_GPU_BENCH_H */
