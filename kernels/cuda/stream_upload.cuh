/* stream_upload.cuh: upload_stream of kernels/device.h for the CUDA device: a large copy from
 * pageable host memory (an mmap'd weights blob) to device memory through pinned staging
 * chunks, so that reading the source and the DMA to the GPU overlap.
 *
 * The staging: SWARM_CUDA_UPLOAD_CHUNKS pinned chunks of SWARM_CUDA_UPLOAD_CHUNK_BYTES each,
 * allocated at the first call and kept until the device is destroyed, one event per chunk,
 * and SWARM_CUDA_UPLOAD_STREAMS non-blocking streams of their own (not the device's op
 * stream), created with the device. The host copies chunk k of the source into a free pinned
 * chunk while the copies of chunks k-1, k-2, ... run on the GPU's copy engine; a chunk is free
 * again once its event has completed. The source is read by memcpy from a host pointer, by a
 * fill callback (the registry's blob reader: a pread pool, O_DIRECT through io_uring), or not
 * staged at all (register_host: the mapping registered read-only and DMA'd from). See
 * docs/devices.md.
 */
#ifndef SWARM_KERNELS_CUDA_STREAM_UPLOAD_CUH
#define SWARM_KERNELS_CUDA_STREAM_UPLOAD_CUH

#include "cuda_common.cuh"

#define SWARM_CUDA_UPLOAD_CHUNK_BYTES ((size_t)16 << 20)
#define SWARM_CUDA_UPLOAD_CHUNKS 4
#define SWARM_CUDA_UPLOAD_STREAMS 2

/* Each chunk holds this much beyond SWARM_CUDA_UPLOAD_CHUNK_BYTES: a fill may widen its read
 * to 4 KiB boundaries (O_DIRECT). */
#define SWARM_CUDA_UPLOAD_CHUNK_ALLOC (SWARM_CUDA_UPLOAD_CHUNK_BYTES + SWARM_UPLOAD_FILL_SLACK)
/* With register_host, the copy is queued in pieces of this size, alternating the streams. */
#define SWARM_CUDA_UPLOAD_REGISTERED_PIECE ((size_t)64 << 20)

/* The staging state of one device; zeroed memory is the valid "nothing made yet" state. */
struct swarm_cuda_upload {
	cudaStream_t stream[SWARM_CUDA_UPLOAD_STREAMS]; /* made by swarm_cuda_upload_init */
	void *chunk[SWARM_CUDA_UPLOAD_CHUNKS];          /* pinned; made at the first copy */
	cudaEvent_t done[SWARM_CUDA_UPLOAD_CHUNKS];     /* chunk k's copy has completed */
	int pending[SWARM_CUDA_UPLOAD_CHUNKS];          /* done[k] recorded, not yet waited for */
};

/* Creates the streams, on the current device (the caller made c's ordinal current). Returns
 * 0 or the CUDA error's errno; what it made is released by swarm_cuda_upload_release. */
int swarm_cuda_upload_init(struct swarm_cuda_upload *u);

/* Waits for the streams, then frees the chunks and destroys the events and streams; each may
 * still be unset. The current device must be c's ordinal. u is zeroed afterwards. */
void swarm_cuda_upload_release(struct swarm_cuda_upload *u);

/* Copies bytes from src (host memory, pinned or not, or what src->fill reads: see struct
 * swarm_upload_src) to dst (device memory of c) and waits for them: the contract of
 * upload_stream in kernels/device.h. The work queued on c's stream before it is waited for
 * first. Writes bytes / wall time of the copy in GB/s (1e9 bytes) to *gbps when not NULL (0
 * for 0 bytes), the fills and any registration included. Returns 0, -EINVAL (NULL dst or
 * src, neither host nor fill, or during graph capture), -ENOTSUP (register_host on a GPU
 * without read-only registration), -ENOMEM (no pinned memory for the chunks), the fill's
 * error or the CUDA error's errno. Not thread-safe: one device is used by one thread at a
 * time. */
int swarm_cuda_upload_stream(struct swarm_cuda_ctx *c, void *dst,
			     const struct swarm_upload_src *src, size_t bytes, double *gbps);

#endif /* SWARM_KERNELS_CUDA_STREAM_UPLOAD_CUH */
