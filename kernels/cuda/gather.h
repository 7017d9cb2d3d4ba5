/* gather.h: how the CUDA device's upload_many and download_many move a batch's pieces between
 * the clients' slots and the GPU (kernels/cuda/gather.cu), callable from C: the benchmark sets
 * the strategy it times, and a first GPU run decides the default (docs/devices.md).
 *
 * A plain C header: it includes no CUDA header, so C code (bench/, tests/) uses it without
 * nvcc. Errors: 0 or a negative errno, with swarm_cuda_last_error() (probe.h) saying why.
 */
#ifndef SWARM_KERNELS_CUDA_GATHER_H
#define SWARM_KERNELS_CUDA_GATHER_H

#ifdef __cplusplus
extern "C" {
#endif

struct swarm_device;

/* The two strategies; the device reads SWARM_CUDA_GATHER=copies|kernel at create, and takes
 * COPIES when it is unset (or names neither).
 * COPIES: one DMA copy per piece, adjacent pieces (host and device side both contiguous)
 *         first merged into one, queued with one cudaMemcpyBatchAsync per
 *         SWARM_CUDA_GATHER_BATCH pieces where the runtime has it, else one cudaMemcpyAsync
 *         each.
 * KERNEL: one gather (upload) or scatter (download) kernel launch per
 *         SWARM_CUDA_GATHER_MAX_PIECES pieces, reading or writing the host side in place
 *         through its mapping (memory pinned with register_host); a piece whose host side
 *         was not registered is copied as in COPIES. */
enum swarm_cuda_gather_mode {
	SWARM_CUDA_GATHER_COPIES = 0,
	SWARM_CUDA_GATHER_KERNEL = 1,
	SWARM_CUDA_GATHER_MODE_COUNT,
};

/* Pieces one kernel launch takes (its table is passed by value as the kernel's parameter). */
#define SWARM_CUDA_GATHER_MAX_PIECES 128
/* Pieces one cudaMemcpyBatchAsync takes (its arrays live on the stack). */
#define SWARM_CUDA_GATHER_BATCH 256

/* The mode's name ("copies", "kernel"), NULL when out of range; and the mode of a name, -1
 * when it names none. */
const char *swarm_cuda_gather_mode_name(int mode);
int swarm_cuda_gather_mode_from_name(const char *name);

/* Sets d's strategy for its later upload_many and download_many. d must come from
 * swarm_device_cuda_create (-EINVAL for another device, or a mode out of range). Not
 * thread-safe: as any use of the device, from the thread that uses it. */
int swarm_cuda_set_gather_mode(struct swarm_device *d, int mode);

/* d's strategy now, or -EINVAL when d is not a CUDA device. */
int swarm_cuda_gather_mode(const struct swarm_device *d);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_CUDA_GATHER_H */
