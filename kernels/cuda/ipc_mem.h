/* ipc_mem.h: another process's GPU memory, opened through a CUDA IPC memory handle, for the
 * worker's device-memory requests (docs/data-plane.md, "Tensors in GPU memory").
 *
 * A plain C header: it includes no CUDA header, so the worker uses it without nvcc. Errors:
 * 0 or a negative errno, with swarm_cuda_last_error() saying what failed.
 */
#ifndef SWARM_KERNELS_CUDA_IPC_MEM_H
#define SWARM_KERNELS_CUDA_IPC_MEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWARM_CUDA_IPC_HANDLE_BYTES 64 /* sizeof(cudaIpcMemHandle_t) */

/* Opens the allocation behind handle (cudaIpcGetMemHandle's bytes, from another process) on
 * GPU ordinal, with cudaIpcMemLazyEnablePeerAccess: *dev_ptr gets its base in this process
 * and *bytes its size (from the driver's cuMemGetAddressRange), so that the caller can check
 * an offset and a length against it. Returns 0, -EINVAL (a NULL argument, a handle the
 * driver refuses, one of this process), -ENODEV, -EIO. Close it with swarm_cuda_ipc_close. */
int swarm_cuda_ipc_open(int ordinal, const uint8_t handle[SWARM_CUDA_IPC_HANDLE_BYTES],
			void **dev_ptr, size_t *bytes);

/* Closes what swarm_cuda_ipc_open opened (cudaIpcCloseMemHandle); dev_ptr is invalid after. */
int swarm_cuda_ipc_close(int ordinal, void *dev_ptr);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CUDA_IPC_MEM_H */
