/* nccl_bcast.h: the NCCL building block for sharing a model's weights between GPUs, callable
 * from C. When several GPU workers warm the same model, swarmd hands one unique id to all of
 * them (runtime/fanout.h plans who is root); the root, which loaded the weights from the
 * registry, broadcasts them to the others over one communicator (docs/devices.md, "NCCL
 * fan-out"). The multi-GPU path awaits a machine with several GPUs; the single-rank case is
 * tested wherever there is one.
 *
 * NCCL is loaded with dlopen at first use (libnccl.so.2 by the loader's path, else where
 * kernels/lib_search.h finds it),
 * never linked: a binary starts where it is missing, and only a process that calls these maps
 * it. A plain C header (no CUDA or NCCL header): only kernels/cuda/ includes those.
 *
 * Errors: 0 or a negative errno; swarm_cuda_last_error() (probe.h) then says what failed.
 * Threads: thread-safe, but the last-error message is per thread, and a device is used by one
 * thread at a time (kernels/device.h).
 */
#ifndef SWARM_KERNELS_CUDA_NCCL_BCAST_H
#define SWARM_KERNELS_CUDA_NCCL_BCAST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct swarm_device;

/* Bytes of a communicator's unique id (NCCL_UNIQUE_ID_BYTES; nccl_bcast.cu checks it). */
#define SWARM_NCCL_ID_BYTES 128

/* Writes a fresh unique id (ncclGetUniqueId) for one communicator: made once, by one process,
 * and handed to every rank. Returns 0, -EINVAL (NULL id) or -ENODEV (NCCL missing or unusable
 * here, e.g. no driver; the reason is in swarm_cuda_last_error()). */
int swarm_nccl_unique_id(uint8_t id[SWARM_NCCL_ID_BYTES]);

/* Broadcasts bytes of device memory buf from rank root to every rank of a communicator of
 * nranks made from id (ncclCommInitRank on dev's GPU, then ncclBroadcast in place on dev's
 * stream, after the work already queued there), waits for the stream, and destroys the
 * communicator. A collective: every rank calls it with the same id, nranks, root and bytes,
 * each with its own rank and device; it blocks until all have joined. dev must come from
 * swarm_device_cuda_create and not be capturing. *gbps (may be NULL) is bytes over the time of
 * the broadcast and its wait, in 1e9 bytes a second, communicator set-up excluded; 0 on
 * failure. Returns 0 (bytes == 0: at once, NCCL untouched), -EINVAL (a NULL or non-CUDA dev,
 * NULL id, nranks < 1, rank or root outside [0, nranks), NULL buf, a capture in progress;
 * checked before NCCL is loaded), -ENODEV (NCCL missing, or the communicator cannot be made
 * on this GPU), -ENOMEM or -EIO (the broadcast or the wait failed). */
int swarm_nccl_broadcast(struct swarm_device *dev, const uint8_t id[SWARM_NCCL_ID_BYTES],
			 int nranks, int rank, int root, void *buf, size_t bytes, double *gbps);

/* swarm_nccl_broadcast with a deadline: timeout_ms > 0 makes the communicator non-blocking
 * (ncclCommInitRankConfig, blocking = 0) and polls every step, so that when a rank never joins
 * or goes away mid-broadcast the call aborts the communicator and returns -ETIMEDOUT (or -EIO
 * for an error NCCL reports) within about timeout_ms, instead of waiting forever; 0 waits as
 * swarm_nccl_broadcast does. A negative timeout_ms is -EINVAL; a deadline with an NCCL older than
 * 2.14 (no non-blocking communicators) is -ENOTSUP, checked before any rank is joined. */
int swarm_nccl_broadcast_timeout(struct swarm_device *dev, const uint8_t id[SWARM_NCCL_ID_BYTES],
				 int nranks, int rank, int root, void *buf, size_t bytes,
				 int timeout_ms, double *gbps);

/* Loads NCCL (once per process) and writes one line to buf: "libnccl.so.2: FILE (how it was
 * found), NCCL X.Y.Z", or "NCCL: why not, and where it looked". Returns 0 or -ENODEV. */
int swarm_nccl_describe(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CUDA_NCCL_BCAST_H */
