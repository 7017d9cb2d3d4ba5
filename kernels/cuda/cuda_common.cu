/* cuda_common.cu: the CUDA device's error reporting (see cuda_common.cuh): one message per
 * thread for swarm_cuda_last_error(), the errno of a CUDA error, and the report behind the
 * CHECK macros (cuBLAS's report is in blas.cu: the probe's users, swarmd and the test gate,
 * link this file and must not need cuBLAS).
 */
#include "cuda_common.cuh"
#include "probe.h"

#include <cuda.h>

#include <stdarg.h>
#include <stdio.h>

static thread_local char last_error[256];

void swarm_cuda_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

void swarm_cuda_clear_error(void) { last_error[0] = '\0'; }

int swarm_cuda_errno(cudaError_t err)
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

int swarm_cuda_report(cudaError_t err, const char *stmt, const char *file, int line)
{
	swarm_cuda_set_error("%s failed: %s (%s) at %s:%d", stmt, cudaGetErrorString(err),
			     cudaGetErrorName(err), file, line);
	fprintf(stderr, "swarm: cuda: %s\n", last_error);
	/* A failed call also sets the runtime's last error; clear it, or the next launch check
	 * (cudaGetLastError) would report this failure again. Sticky errors (a kernel fault)
	 * stay: every later call reports them. */
	(void)cudaGetLastError();
	return swarm_cuda_errno(err);
}

/* cuGetErrorName and cuGetErrorString, looked up through the runtime (libcuda is not linked);
 * NULL where the driver has none. */
typedef CUresult (*drv_str_fn)(CUresult, const char **);

static drv_str_fn drv_str(const char *name)
{
	void *fn = NULL;
	cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;

	if (cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &q) !=
		    cudaSuccess ||
	    q != cudaDriverEntryPointSuccess)
		fn = NULL;
	(void)cudaGetLastError();
	return (drv_str_fn)fn;
}

int swarm_cuda_report_drv(int result, const char *stmt, const char *file, int line)
{
	static drv_str_fn get_name, get_string;
	static int looked;
	const char *name = NULL, *str = NULL;
	CUresult r = (CUresult)result;

	if (!__atomic_load_n(&looked, __ATOMIC_ACQUIRE)) {
		/* Racing threads look up the same two pointers: harmless. */
		get_name = drv_str("cuGetErrorName");
		get_string = drv_str("cuGetErrorString");
		__atomic_store_n(&looked, 1, __ATOMIC_RELEASE); /* pairs with the load above */
	}
	if (!get_name || get_name(r, &name) != CUDA_SUCCESS)
		name = NULL;
	if (!get_string || get_string(r, &str) != CUDA_SUCCESS)
		str = NULL;
	if (name)
		swarm_cuda_set_error("%s failed: %s (%s) at %s:%d", stmt, name, str ? str : "",
				     file, line);
	else
		swarm_cuda_set_error("%s failed: CUresult %d at %s:%d", stmt, result, file, line);
	fprintf(stderr, "swarm: cuda: %s\n", last_error);
	switch (r) {
	case CUDA_ERROR_OUT_OF_MEMORY:
		return -ENOMEM;
	case CUDA_ERROR_NOT_SUPPORTED:
	case CUDA_ERROR_NOT_PERMITTED:
		return -ENOTSUP;
	case CUDA_ERROR_INVALID_VALUE:
	case CUDA_ERROR_INVALID_HANDLE:
		return -EINVAL;
	case CUDA_ERROR_NO_DEVICE:
	case CUDA_ERROR_INVALID_DEVICE:
	case CUDA_ERROR_NOT_INITIALIZED:
		return -ENODEV;
	default:
		return -EIO;
	}
}

extern "C" const char *swarm_cuda_last_error(void) { return last_error; }
