/* load.h: the weight-load case of swarm-bench. */
#ifndef SWARM_BENCH_LOAD_H
#define SWARM_BENCH_LOAD_H

#include <stddef.h>

/* GB/s of each repetition, for one way of loading. */
struct bench_load_result {
	double mmap_warm[16], read_warm[16]; /* from the page cache */
	double mmap_cold[16], read_cold[16]; /* after dropping the file from the page cache */
	double verify_warm[16];              /* swarm's load with its SHA-256 check */
	int reps;
	int cold_ok; /* the page cache could be dropped (posix_fadvise) */
};

/* Writes a safetensors file of about bytes bytes in dir, then loads it reps times (at most
 * 16) each way: mmap and first touch through swarm's loader (with and without its SHA-256
 * check) against read() into malloc'd memory. Removes the file. Returns 0 or -errno. */
int bench_load_run(const char *dir, size_t bytes, int reps, struct bench_load_result *out);

#endif /* SWARM_BENCH_LOAD_H */
