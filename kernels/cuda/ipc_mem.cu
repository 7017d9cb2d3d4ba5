/* ipc_mem.cu: opening and closing another process's GPU allocations by CUDA IPC handle
 * (ipc_mem.h). The allocation's size comes from the driver's cuMemGetAddressRange, reached
 * through the runtime's entry-point lookup so that libcuda is not linked (as elsewhere in
 * kernels/cuda/, the binaries must start where there is no driver).
 */
#include "cuda_common.cuh"
#include "ipc_mem.h"

#include <string.h>

static_assert(sizeof(cudaIpcMemHandle_t) == SWARM_CUDA_IPC_HANDLE_BYTES, "IPC handle bytes");

/* cuMemGetAddressRange (v2): CUresult (CUdeviceptr *base, size_t *size, CUdeviceptr ptr). */
typedef int (*get_range_fn)(unsigned long long *base, size_t *size, unsigned long long ptr);

static int use_ordinal(int ordinal)
{
	int cur = -1;

	CUDA_CHECK_RET(cudaGetDevice(&cur));
	if (cur != ordinal)
		CUDA_CHECK_RET(cudaSetDevice(ordinal));
	return 0;
}

static int alloc_bytes(void *p, size_t *bytes)
{
	void *fn = NULL;
	cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
	unsigned long long base = 0;

	CUDA_CHECK_RET(cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000,
							cudaEnableDefault, &q));
	if (!fn || q != cudaDriverEntryPointSuccess) {
		swarm_cuda_set_error("cuMemGetAddressRange: no driver entry point");
		return -EIO;
	}
	int rc = ((get_range_fn)fn)(&base, bytes, (unsigned long long)(uintptr_t)p);
	if (rc != 0) {
		(void)swarm_cuda_report_drv(rc, "cuMemGetAddressRange", __FILE__, __LINE__);
		return -EIO;
	}
	if (base != (unsigned long long)(uintptr_t)p) {
		/* The opened pointer is the allocation's base; anything else is a driver surprise,
		 * and the size would then not start at p. */
		swarm_cuda_set_error("cuMemGetAddressRange(%p): base %llx", p, base);
		return -EIO;
	}
	return 0;
}

extern "C" int swarm_cuda_ipc_open(int ordinal, const uint8_t handle[SWARM_CUDA_IPC_HANDLE_BYTES],
				   void **dev_ptr, size_t *bytes)
{
	cudaIpcMemHandle_t h;
	void *p = NULL;
	int ret;

	if (!handle || !dev_ptr || !bytes || ordinal < 0)
		return -EINVAL;
	*dev_ptr = NULL;
	*bytes = 0;
	ret = use_ordinal(ordinal);
	if (ret)
		return ret;
	memcpy(&h, handle, sizeof h);
	cudaError_t err = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
	if (err != cudaSuccess) {
		/* A bad handle is the client's mistake, not the device's: -EINVAL. */
		int e = swarm_cuda_report(err, "cudaIpcOpenMemHandle", __FILE__, __LINE__);
		return err == cudaErrorInvalidValue || err == cudaErrorInvalidResourceHandle ||
				       err == cudaErrorMapBufferObjectFailed ||
				       err == cudaErrorDeviceUninitialized ?
			       -EINVAL :
			       e;
	}
	ret = alloc_bytes(p, bytes);
	if (ret) {
		(void)CUDA_CALL(cudaIpcCloseMemHandle(p));
		return ret;
	}
	*dev_ptr = p;
	return 0;
}

extern "C" int swarm_cuda_ipc_close(int ordinal, void *dev_ptr)
{
	int ret;

	if (!dev_ptr)
		return 0;
	ret = use_ordinal(ordinal);
	if (ret)
		return ret;
	CUDA_CHECK_RET(cudaIpcCloseMemHandle(dev_ptr));
	return 0;
}
