/* gpu_bench.cu: the measurement primitives of swarm-gpu-bench (gpu_bench.h). Kept apart from the
 * device (cuda_device.cu): nothing here is on a serving path, it only measures the link that
 * the serving path uses, beside the plain CUDA ways of using it.
 */
#include "gpu_bench.h"
#include "probe.h"

#include "cuda_common.cuh"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BENCH_WARMUP 2
#define BENCH_CHECK_BYTES ((size_t)4096)
#define BENCH_COMPARE_BYTES ((size_t)1 << 20)

extern "C" const char *swarm_cuda_h2d_mode_name(int mode)
{
	static const char *const names[SWARM_CUDA_H2D_MODE_COUNT] = { "pageable", "malloc-host",
								      "host-registered" };

	return mode >= 0 && mode < SWARM_CUDA_H2D_MODE_COUNT ? names[mode] : NULL;
}

/* The host buffer of a mode; *map_bytes is non-zero for the memfd mapping. */
struct h2d_host {
	int mode;
	void *p;
	size_t map_bytes;
	int registered;
};

static int host_alloc(struct h2d_host *h, size_t bytes)
{
	int ret = 0;

	switch (h->mode) {
	case SWARM_CUDA_H2D_PAGEABLE:
		h->p = malloc(bytes);
		if (!h->p) {
			swarm_cuda_set_error("malloc(%zu) failed", bytes);
			return -ENOMEM;
		}
		return 0;
	case SWARM_CUDA_H2D_MALLOC_HOST:
		CUDA_CHECK_RET(cudaMallocHost(&h->p, bytes));
		return 0;
	case SWARM_CUDA_H2D_HOST_REGISTERED: {
		/* As ipc/segment.c maps a session and the worker pins it. */
		int fd = memfd_create("swarm-gpu-bench", MFD_CLOEXEC);
		void *p;

		if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
			ret = -errno;
			swarm_cuda_set_error("memfd of %zu bytes: %s", bytes, strerror(errno));
			if (fd >= 0)
				close(fd);
			return ret;
		}
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED) {
			ret = -errno;
			swarm_cuda_set_error("mmap of %zu bytes: %s", bytes, strerror(errno));
			return ret;
		}
		h->p = p;
		h->map_bytes = bytes;
		/* A platform that pins no shared file memory (gVisor may not) refuses here: that
		 * is the platform's answer, not a failure of the bench (-ENOTSUP, gpu_bench.h). */
		cudaError_t err = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
		if (err != cudaSuccess) {
			swarm_cuda_set_error("cudaHostRegister(a memfd MAP_SHARED mapping of %zu "
					     "bytes) returned %s (%s)",
					     bytes, cudaGetErrorName(err), cudaGetErrorString(err));
			(void)cudaGetLastError();
			return -ENOTSUP;
		}
		h->registered = 1;
		return 0;
	}
	}
	swarm_cuda_set_error("swarm_cuda_bench_h2d: no mode %d", h->mode);
	return -EINVAL;
}

static void host_free(struct h2d_host *h)
{
	if (!h->p)
		return;
	if (h->mode == SWARM_CUDA_H2D_MALLOC_HOST) {
		(void)cudaFreeHost(h->p);
	} else if (h->map_bytes) {
		if (h->registered)
			(void)cudaHostUnregister(h->p);
		munmap(h->p, h->map_bytes);
	} else {
		free(h->p);
	}
	h->p = NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

extern "C" int swarm_cuda_bench_h2d(int mode, size_t bytes, int iters, double *best_gbps,
				    double *median_gbps)
{
	struct h2d_host h = { mode, NULL, 0, 0 };
	cudaStream_t stream = NULL;
	cudaEvent_t ev0 = NULL, ev1 = NULL;
	double *gbps = NULL;
	unsigned char *check = NULL;
	void *dev = NULL;
	size_t tail;
	int count = 0;
	int ret = 0;

	swarm_cuda_clear_error();
	if (!swarm_cuda_h2d_mode_name(mode) || bytes < BENCH_CHECK_BYTES || iters < 1 ||
	    !best_gbps || !median_gbps) {
		swarm_cuda_set_error("swarm_cuda_bench_h2d: bad argument");
		return -EINVAL;
	}
	ret = swarm_cuda_device_count(&count);
	if (ret)
		return ret;
	gbps = (double *)calloc((size_t)iters, sizeof *gbps);
	check = (unsigned char *)malloc(BENCH_CHECK_BYTES);
	if (!gbps || !check) {
		swarm_cuda_set_error("swarm_cuda_bench_h2d: out of host memory");
		ret = -ENOMEM;
		goto out;
	}
	CUDA_CHECK(cudaSetDevice(0), out);
	ret = host_alloc(&h, bytes);
	if (ret)
		goto out;
	/* A pattern, never zeros, touching every page before the first copy. */
	for (size_t i = 0; i < bytes / 8; i++)
		((uint64_t *)h.p)[i] = 0x9e3779b97f4a7c15ull * (i + 1);
	CUDA_CHECK(cudaMalloc(&dev, bytes), out);
	CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), out);
	CUDA_CHECK(cudaEventCreate(&ev0), out);
	CUDA_CHECK(cudaEventCreate(&ev1), out);
	for (int i = 0; i < BENCH_WARMUP + iters; i++) {
		float ms = 0;

		CUDA_CHECK(cudaEventRecord(ev0, stream), out);
		CUDA_CHECK(cudaMemcpyAsync(dev, h.p, bytes, cudaMemcpyHostToDevice, stream), out);
		CUDA_CHECK(cudaEventRecord(ev1, stream), out);
		CUDA_CHECK(cudaEventSynchronize(ev1), out);
		CUDA_CHECK(cudaEventElapsedTime(&ms, ev0, ev1), out);
		if (i >= BENCH_WARMUP)
			gbps[i - BENCH_WARMUP] = ms > 0 ? (double)bytes / (ms * 1e6) : 0;
	}
	tail = bytes - BENCH_CHECK_BYTES;
	CUDA_CHECK(cudaMemcpy(check, (char *)dev + tail, BENCH_CHECK_BYTES, cudaMemcpyDeviceToHost),
		   out);
	if (memcmp(check, (char *)h.p + tail, BENCH_CHECK_BYTES) != 0) {
		swarm_cuda_set_error("h2d %s: the bytes read back differ from those sent",
				     swarm_cuda_h2d_mode_name(mode));
		ret = -EBADMSG;
		goto out;
	}
	qsort(gbps, (size_t)iters, sizeof *gbps, cmp_double);
	*best_gbps = gbps[iters - 1];
	*median_gbps = iters % 2 ? gbps[iters / 2] : (gbps[iters / 2 - 1] + gbps[iters / 2]) / 2;
out:
	if (ev1)
		(void)cudaEventDestroy(ev1);
	if (ev0)
		(void)cudaEventDestroy(ev0);
	if (stream)
		(void)cudaStreamDestroy(stream);
	if (dev)
		(void)cudaFree(dev);
	host_free(&h);
	free(check);
	free(gbps);
	return ret;
}

extern "C" int swarm_cuda_bench_describe(char *buf, size_t len)
{
	struct cudaDeviceProp prop;
	char busid[32] = "?";
	int count = 0, drv = 0, rt = 0;
	int ret;

	swarm_cuda_clear_error();
	if (!buf || len == 0) {
		swarm_cuda_set_error("swarm_cuda_bench_describe: bad argument");
		return -EINVAL;
	}
	buf[0] = '\0';
	(void)cudaDriverGetVersion(&drv); /* 0 where there is no driver */
	(void)cudaRuntimeGetVersion(&rt);
	ret = swarm_cuda_device_count(&count);
	if (ret) {
		snprintf(buf, len, "no GPU (driver CUDA %d.%d, runtime %d.%d)", drv / 1000,
			 drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
		return ret;
	}
	CUDA_CHECK_RET(cudaGetDeviceProperties(&prop, 0));
	(void)swarm_cuda_pci_bus_id(0, busid, (int)sizeof busid);
	snprintf(buf, len,
		 "%d GPU(s); GPU 0: %s, sm_%d%d, %.1f GiB, %s; driver CUDA %d.%d, runtime %d.%d",
		 count, prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30),
		 busid, drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
	return 0;
}

extern "C" int swarm_cuda_bench_compare(const void *dev, const void *host, size_t bytes)
{
	size_t n = bytes < BENCH_COMPARE_BYTES ? bytes : BENCH_COMPARE_BYTES;
	unsigned char *buf;
	int ret = 0;

	swarm_cuda_clear_error();
	if (!dev || !host)
		return -EINVAL;
	buf = (unsigned char *)malloc(n ? n : 1);
	if (!buf) {
		swarm_cuda_set_error("swarm_cuda_bench_compare: out of host memory");
		return -ENOMEM;
	}
	CUDA_CHECK(cudaMemcpy(buf, dev, n, cudaMemcpyDeviceToHost), out);
	if (memcmp(buf, host, n) != 0)
		goto differ;
	CUDA_CHECK(cudaMemcpy(buf, (const char *)dev + (bytes - n), n, cudaMemcpyDeviceToHost),
		   out);
	if (memcmp(buf, (const char *)host + (bytes - n), n) != 0)
		goto differ;
	goto out;
differ:
	swarm_cuda_set_error("the device's copy differs from the host's");
	ret = -EBADMSG;
out:
	free(buf);
	return ret;
}
