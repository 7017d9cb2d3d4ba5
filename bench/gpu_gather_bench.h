/* gpu_gather_bench.h: the batch-gather part of swarm-gpu-bench (bench/gpu_bench.c): how a batch
 * of 16 sessions' requests best reaches the GPU, for kernels/cuda/gather.cu's default. */
#ifndef SWARM_BENCH_GPU_GATHER_BENCH_H
#define SWARM_BENCH_GPU_GATHER_BENCH_H

#include <stddef.h>

/* On GPU 0, one request of one row from each of 16 sessions (each session's segment pinned
 * on its own with register_host, as the worker pins them), rows of 64 B, 1 KiB and 16 KiB,
 * with 1 and 3 input tensors, moved to the device by: one upload a piece (what
 * swarm_graph_run_parts does on a device without upload_many), upload_many in the copies
 * mode, upload_many in the kernel mode, and the old path (a memcpy gather into a pinned
 * buffer, then one upload a tensor). Times iters batches of each after warm-up, checks
 * every method's device bytes once, prints a line a shape the moment it is measured (median
 * microseconds a batch; a method that failed says FAILED and the others are still measured,
 * the kernel mode last, since a fault of it kills the context) and which mode won how often,
 * and writes the summary into figure, baseline and verdict (for gpu_bench.c's table; figure
 * is empty before the call). Returns 0, -ENOTSUP when the platform refuses to pin the
 * segments (verdict: "unsupported here: ..."), or the first failure's -errno. */
int swarm_gpu_gather_bench(int iters, char *figure, size_t figure_len, char *baseline,
			   size_t baseline_len, char *verdict, size_t verdict_len);

#endif /* SWARM_BENCH_GPU_GATHER_BENCH_H */
