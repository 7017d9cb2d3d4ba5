/* gpu_bench.h: the CUDA measurement primitives of bench/gpu_bench.c (swarm-gpu-bench), callable
 * from C. They measure the host-to-device link the way swarm uses it, beside the plain CUDA
 * ways of using it, so that the benchmark prints each of swarm's figures next to its baseline.
 *
 * A plain C header (no CUDA header): only kernels/cuda/ includes CUDA headers.
 *
 * Errors: every function returns 0 or a negative errno (-ENODEV no usable GPU or driver,
 * -ENOMEM host or device memory, -EINVAL bad argument, -EIO any other CUDA failure);
 * swarm_cuda_last_error() (probe.h) then says what failed. Not thread-safe: one caller at a
 * time, on GPU ordinal 0.
 */
#ifndef SWARM_KERNELS_CUDA_GPU_BENCH_H
#define SWARM_KERNELS_CUDA_GPU_BENCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where the host side of a host-to-device copy lives. */
enum swarm_cuda_h2d_mode {
	SWARM_CUDA_H2D_PAGEABLE = 0,    /* malloc'd memory: the driver stages it through its own
					 * pinned buffers */
	SWARM_CUDA_H2D_MALLOC_HOST,     /* cudaMallocHost: pinned by the driver, the best case */
	SWARM_CUDA_H2D_HOST_REGISTERED, /* a memfd mapping (MAP_SHARED) pinned with
					 * cudaHostRegister, as the worker pins a session
					 * segment (runtime/worker/serve.c) */
	SWARM_CUDA_H2D_MODE_COUNT,
};

/* The mode's name ("pageable", "malloc-host", "host-registered"), NULL when out of range. */
const char *swarm_cuda_h2d_mode_name(int mode);

/* Times iters copies of bytes from host memory of the given mode to one device buffer with
 * cudaMemcpyAsync on a stream of its own, each bracketed by CUDA events (the device's clock,
 * so a pageable copy that returns before its DMA ends is still timed whole), after two copies
 * of warm-up. The host buffer is filled with a pattern first (never zeros), and after the
 * timed copies the last 4 KiB are read back and compared. Writes the best and the median
 * GB/s (1e9 bytes per second) over the iterations. Returns 0 or -errno (see the top);
 * -ENOTSUP when the platform refuses to pin the host-registered mode's memfd mapping
 * (cudaHostRegister's error in swarm_cuda_last_error()): unsupported here, not a failure. */
int swarm_cuda_bench_h2d(int mode, size_t bytes, int iters, double *best_gbps, double *median_gbps);

/* A line on GPU 0 and the CUDA stack: name, compute capability, memory, PCI bus id, the
 * driver's CUDA version and this runtime's, e.g. "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB,
 * 00000000:18:00.0, driver CUDA 13.0, runtime 13.0". Returns 0 or -errno. */
int swarm_cuda_bench_describe(char *buf, size_t len);

/* Copies the first and last (up to) 1 MiB of bytes at device pointer dev back and compares
 * them with host. For checking that an upload landed. Returns 0, -EBADMSG when they differ,
 * or -errno. */
int swarm_cuda_bench_compare(const void *dev, const void *host, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CUDA_GPU_BENCH_H */
