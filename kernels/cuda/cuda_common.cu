/* cuda_common.cu: the CUDA device's error reporting (see cuda_common.cuh): one message per
 * thread for swarm_cuda_last_error(), the errno of a CUDA error, and the report behind the
 * CHECK macros (cuBLAS's report is in blas.cu: the probe's users, swarmd and the test gate,
 * link this file and must not need cuBLAS).
 */
#include "cuda_common.cuh"
#include "probe.h"

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

extern "C" const char *swarm_cuda_last_error(void) { return last_error; }
