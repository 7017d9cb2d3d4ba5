/* share_mem.h: GPU memory that other processes on the same GPU can map, for weights that
 * workers share instead of loading twice (docs/devices.md, "Shared weights").
 *
 * The memory comes from the CUDA virtual memory API (cuMemCreate with a POSIX file
 * descriptor handle type), reached through cudaGetDriverEntryPointByVersion so that libcuda is
 * not linked. Not the legacy cudaIpcGetMemHandle: an importer's mapping of that is undefined
 * once the exporter frees it or dies, while a VMM allocation lives until every process has
 * released its handle and unmapped it, so a worker that loaded weights first can stop (a swap,
 * a crash) under the workers that map them.
 *
 * A plain C header (no CUDA header): the device table in cuda_device.cu wraps it. Errors: 0
 * or a negative errno, with swarm_cuda_last_error() saying what failed. Thread-safe.
 */
#ifndef SWARM_KERNELS_CUDA_SHARE_MEM_H
#define SWARM_KERNELS_CUDA_SHARE_MEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocates at least bytes (rounded up to the allocation granularity) on GPU ordinal,
 * exportable as an fd, mapped read-write for this process: *ptr gets its address. Returns 0,
 * -EINVAL, -ENOTSUP (the GPU or driver has no VMM or fd handles), -ENOMEM, -EIO. */
int swarm_cuda_share_alloc(int ordinal, size_t bytes, void **ptr);

/* A new fd for the allocation at ptr (from swarm_cuda_share_alloc or _import), close-on-exec;
 * the caller owns it (send it, then close it). Returns 0, -EINVAL (not a shared allocation of
 * this process), -EIO. */
int swarm_cuda_share_export(void *ptr, int *fd);

/* Maps the allocation behind fd (another process's export) on GPU ordinal, bytes of it from
 * its start: *ptr gets the address. fd is not closed. Refuses, returning -EINVAL, a bad fd,
 * one whose memory lives on another GPU, or bytes beyond the allocation (the driver refuses
 * the mapping); -ENOTSUP, -ENOMEM, -EIO otherwise. Nothing stays mapped on failure. */
int swarm_cuda_share_import(int ordinal, int fd, size_t bytes, void **ptr);

/* Waits for ptr's GPU (made current on the calling thread, as alloc and import do), unmaps
 * ptr and releases this process's reference; the memory itself goes when the last process
 * that maps or holds it has let go. ptr is invalid after it. NULL is a no-op.
 * Returns 0, -EINVAL (not a shared allocation of this process), -EIO. */
int swarm_cuda_share_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CUDA_SHARE_MEM_H */
