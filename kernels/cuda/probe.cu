/* probe.cu: device discovery and one tiny kernel (y = a*x + b), the C-callable proof that the
 * CUDA device builds, links against the static CUDA runtime, and runs where a GPU is.
 *
 * Without a driver or a GPU, the CUDA runtime returns cudaErrorNoDevice or
 * cudaErrorInsufficientDriver (libcuda is loaded lazily with dlopen by cudart_static, so a
 * missing libcuda is an error code, not a crash); these map to -ENODEV. Every other CUDA
 * failure goes through CUDA_CHECK (cuda_common.cuh), which prints the failing statement, file
 * and line.
 */
#include "probe.h"

#include "cuda_common.cuh"

#include <stdint.h>

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

	swarm_cuda_clear_error();
	if (!count) {
		swarm_cuda_set_error("swarm_cuda_device_count: count is NULL");
		return -EINVAL;
	}
	*count = 0;
	/* Not through CUDA_CHECK: no driver or no GPU is the expected answer on CI, not a
	 * failure worth a line on stderr. */
	err = cudaGetDeviceCount(&n);
	if (err != cudaSuccess) {
		swarm_cuda_set_error("cudaGetDeviceCount: %s (%s)", cudaGetErrorString(err),
				     cudaGetErrorName(err));
		/* Reset the runtime's last-error state so that later calls start clean. */
		(void)cudaGetLastError();
		return swarm_cuda_errno(err);
	}
	if (n <= 0) {
		swarm_cuda_set_error("cudaGetDeviceCount: no CUDA device");
		return -ENODEV;
	}
	*count = n;
	return 0;
}

extern "C" int swarm_cuda_pci_bus_id(int ordinal, char *busid, int len)
{
	cudaError_t err;

	swarm_cuda_clear_error();
	if (!busid || len < 13 || ordinal < 0) {
		swarm_cuda_set_error("swarm_cuda_pci_bus_id: bad argument");
		return -EINVAL;
	}
	/* Does not create a context: safe to call in swarmd, which never drives a GPU. */
	err = cudaDeviceGetPCIBusId(busid, len, ordinal);
	if (err != cudaSuccess) {
		swarm_cuda_set_error("cudaDeviceGetPCIBusId(%d): %s (%s)", ordinal,
				     cudaGetErrorString(err), cudaGetErrorName(err));
		(void)cudaGetLastError();
		return swarm_cuda_errno(err);
	}
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

	swarm_cuda_clear_error();
	if (n == 0)
		return 0;
	if (!x || !y || n > SIZE_MAX / sizeof(float)) {
		swarm_cuda_set_error("swarm_cuda_affine_f32: bad argument (x=%p y=%p n=%zu)",
				     (const void *)x, (void *)y, n);
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
