/* probe.h: the smallest real piece of the CUDA device, callable from C.
 *
 * It answers "is there a usable GPU here?" without crashing where there is no driver or no
 * GPU (CI compiles the CUDA code on machines without either), and runs one tiny kernel
 * (y = a*x + b) so that the build, the static CUDA runtime and a round trip through device
 * memory are checked end to end where a GPU is present.
 *
 * This is a plain C header: it includes no CUDA header, so C code (the worker, the tests)
 * uses it without nvcc. Only kernels/cuda/ includes CUDA headers.
 *
 * Errors: every function returns 0 or a negative errno; swarm_cuda_last_error() then says
 * what failed. Threads: the functions are thread-safe, but the last-error message is
 * per thread.
 */
#ifndef SWARM_KERNELS_CUDA_PROBE_H
#define SWARM_KERNELS_CUDA_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Counts the CUDA devices this process can use. Returns 0 and *count > 0 when there is at
 * least one; otherwise a negative errno with *count = 0: -ENODEV when there is no driver,
 * no libcuda or no GPU, -EIO on any other CUDA failure. count must not be NULL (-EINVAL). */
int swarm_cuda_device_count(int *count);

/* The PCI bus id of GPU ordinal as the CUDA runtime writes it ("00000000:18:00.0"), for
 * hwloc to find the GPU's NUMA node. len must be at least 13. Returns 0 or -errno. */
int swarm_cuda_pci_bus_id(int ordinal, char *busid, int len);

/* Computes y[i] = a * x[i] + b for i < n on CUDA device 0: copies x to the device, runs the
 * kernel, copies y back, frees the device memory. x and y are host memory and may be the
 * same array. Returns 0, -EINVAL (NULL x or y with n > 0), -ENODEV (no GPU), -ENOMEM (device
 * allocation failed) or -EIO (any other CUDA failure, reported on stderr with the failing
 * statement, file and line). n == 0 returns 0 without touching the GPU. */
int swarm_cuda_affine_f32(const float *x, float *y, size_t n, float a, float b);

/* Loads cuBLAS, cuBLASLt and NCCL as a CUDA device does (with dlopen, by kernels/lib_search.h's
 * search) and writes a line for each to buf: the file it loaded and how it was found, or why
 * none could be, naming where it looked. Needs no GPU. Returns 0, or -ENODEV when one is
 * missing (buf still says which). */
int swarm_cuda_libs_describe(char *buf, size_t len);

/* A message for the last failure of a swarm_cuda_* call, or of the CUDA device of
 * kernels/device.h (swarm_device_cuda_create and its table), on this thread ("" when none).
 * The string stays valid until the next such call on this thread. */
const char *swarm_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CUDA_PROBE_H */
