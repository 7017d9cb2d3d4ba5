/* probe.cu: device discovery and one tiny kernel (y = a*x + b), the C-callable proof that the
 * CUDA device builds, links against the static CUDA runtime, and runs where a GPU is.
 *
 * Without a driver or a GPU, the CUDA runtime returns cudaErrorNoDevice or
 * cudaErrorInsufficientDriver (libcuda is loaded lazily with dlopen by cudart_static, so a
 * missing libcuda is an error code, not a crash); these map to -ENODEV. Every other CUDA
 * failure goes through CUDA_CHECK, which prints the failing statement, file and line.
 */
#include "probe.h"

#include <cuda_runtime.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static thread_local char last_error[256];

static void set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

/* The errno for a CUDA error: "no usable GPU here" is -ENODEV, out of device memory is
 * -ENOMEM, anything else is -EIO. */
static int cuda_errno(cudaError_t err)
{
	switch (err) {
	case cudaErrorNoDevice:
	case cudaErrorInsufficientDriver:
	case cudaErrorInvalidDevice:
	case cudaErrorDevicesUnavailable:
	case cudaErrorSystemDriverMismatch:
	case cudaErrorCompatNotSupportedOnDevice:
	case cudaErrorStubLibrary:
		return -ENODEV;
	case cudaErrorMemoryAllocation:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* Runs a CUDA runtime call; on failure records and prints the statement, file and line, sets
 * ret to the mapped errno (see cuda_errno; -EIO for unexpected failures) and jumps to label. */
#define CUDA_CHECK(stmt, label)                                                                   \
	do {                                                                                      \
		cudaError_t err_ = (stmt);                                                        \
		if (err_ != cudaSuccess) {                                                        \
			set_error("%s failed: %s (%s) at %s:%d", #stmt, cudaGetErrorString(err_), \
				  cudaGetErrorName(err_), __FILE__, __LINE__);                    \
			fprintf(stderr, "swarm: cuda: %s\n", last_error);                         \
			ret = cuda_errno(err_);                                                   \
			goto label;                                                               \
		}                                                                                 \
	} while (0)

/* cudaFree through CUDA_CHECK; sets *retp only when it is still 0, so the first error wins. */
static void free_checked(void *p, int *retp)
{
	int ret = 0;

	CUDA_CHECK(cudaFree(p), out);
out:
	if (*retp == 0)
		*retp = ret;
}

static __global__ void affine_f32_kernel(const float *__restrict__ x, float *__restrict__ y,
					 size_t n, float a, float b)
{
	size_t stride = (size_t)blockDim.x * gridDim.x;

	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		y[i] = fmaf(a, x[i], b);
}

extern "C" int swarm_cuda_device_count(int *count)
{
	cudaError_t err;
	int n = 0;

	last_error[0] = '\0';
	if (!count) {
		set_error("swarm_cuda_device_count: count is NULL");
		return -EINVAL;
	}
	*count = 0;
	/* Not through CUDA_CHECK: no driver or no GPU is the expected answer on CI, not a
	 * failure worth a line on stderr. */
	err = cudaGetDeviceCount(&n);
	if (err != cudaSuccess) {
		set_error("cudaGetDeviceCount: %s (%s)", cudaGetErrorString(err),
			  cudaGetErrorName(err));
		/* Reset the runtime's last-error state so that later calls start clean. */
		(void)cudaGetLastError();
		return cuda_errno(err);
	}
	if (n <= 0) {
		set_error("cudaGetDeviceCount: no CUDA device");
		return -ENODEV;
	}
	*count = n;
	return 0;
}

extern "C" int swarm_cuda_affine_f32(const float *x, float *y, size_t n, float a, float b)
{
	const unsigned int threads = 256;
	float *dx = NULL, *dy = NULL;
	size_t bytes = n * sizeof(float);
	unsigned int blocks;
	int count = 0;
	int ret = 0;

	last_error[0] = '\0';
	if (n == 0)
		return 0;
	if (!x || !y || n > SIZE_MAX / sizeof(float)) {
		set_error("swarm_cuda_affine_f32: bad argument (x=%p y=%p n=%zu)", (const void *)x,
			  (void *)y, n);
		return -EINVAL;
	}
	ret = swarm_cuda_device_count(&count);
	if (ret < 0)
		return ret;

	/* A grid-stride loop: enough blocks to fill any current GPU, never more than needed. */
	blocks = (unsigned int)((n + threads - 1) / threads);
	if (blocks > 65535u)
		blocks = 65535u;

	CUDA_CHECK(cudaSetDevice(0), out);
	CUDA_CHECK(cudaMalloc((void **)&dx, bytes), out);
	CUDA_CHECK(cudaMalloc((void **)&dy, bytes), out);
	CUDA_CHECK(cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice), out);
	affine_f32_kernel<<<blocks, threads>>>(dx, dy, n, a, b);
	CUDA_CHECK(cudaGetLastError(), out);
	CUDA_CHECK(cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost), out);
out:
	/* A failed free after a good copy is still a failure; after a failure, keep the first. */
	if (dy)
		free_checked(dy, &ret);
	if (dx)
		free_checked(dx, &ret);
	return ret;
}

extern "C" const char *swarm_cuda_last_error(void) { return last_error; }
