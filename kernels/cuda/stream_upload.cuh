/* stream_upload.cuh: upload_stream of kernels/device.h for the CUDA device: a large copy from
 * pageable host memory (an mmap'd weights blob) to device memory through pinned staging
 * chunks, so that reading the source and the DMA to the GPU overlap.
 *
 * The staging: SWARM_CUDA_UPLOAD_CHUNKS pinned chunks of SWARM_CUDA_UPLOAD_CHUNK_BYTES each,
 * allocated at the first call and kept until the device is destroyed, one event per chunk,
 * and SWARM_CUDA_UPLOAD_STREAMS non-blocking streams of their own (not the device's op
 * stream), created with the device. The host copies chunk k of the source into a free pinned
 * chunk while the copies of chunks k-1, k-2, ... run on the GPU's copy engine; a chunk is free
 * again once its event has completed. See docs/devices.md.
 */
#ifndef SWARM_KERNELS_CUDA_STREAM_UPLOAD_CUH
#define SWARM_KERNELS_CUDA_STREAM_UPLOAD_CUH

#include "cuda_common.cuh"

#define SWARM_CUDA_UPLOAD_CHUNK_BYTES ((size_t)16 << 20)
#define SWARM_CUDA_UPLOAD_CHUNKS 4
#define SWARM_CUDA_UPLOAD_STREAMS 2

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

/* Copies bytes from src (host memory, pinned or not) to dst (device memory of c) and waits
 * for them: the contract of upload_stream in kernels/device.h. The work queued on c's stream
 * before it is waited for first. Writes bytes / wall time of the copy in GB/s (1e9 bytes) to
 * *gbps when not NULL (0 for 0 bytes). Returns 0, -EINVAL (NULL dst or src, or during graph
 * capture), -ENOMEM (no pinned memory for the chunks) or the CUDA error's errno. Not
 * thread-safe: one device is used by one thread at a time. */
int swarm_cuda_upload_stream(struct swarm_cuda_ctx *c, void *dst, const void *src, size_t bytes,
			     double *gbps);

#endif /* SWARM_KERNELS_CUDA_STREAM_UPLOAD_CUH */
