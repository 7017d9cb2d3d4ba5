/* cuda_common.cuh: what every file of the CUDA device shares (internal to kernels/cuda/): the
 * error helpers and CHECK macros (defined in cuda_common.cu, used by probe.cu too), the
 * device's context, launch sizes, dtype conversions and warp reductions.
 *
 * Errors: every CUDA or cuBLAS failure goes through swarm_cuda_report*, which records the
 * failing statement, file and line for swarm_cuda_last_error(), prints it on stderr, clears the
 * runtime's last-error state (so that the next launch check does not see it again) and returns
 * the errno: -ENODEV (no usable GPU or driver), -ENOMEM (out of device memory), -EIO (anything
 * else).
 */
#ifndef SWARM_KERNELS_CUDA_COMMON_CUH
#define SWARM_KERNELS_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <errno.h>
#include <stdint.h>

#include "kernels/check.h" /* kernels/device.h too, with C linkage */
#include "swarm/swarm.h"

/* ---- errors --------------------------------------------------------------------------------- */

/* Sets this thread's swarm_cuda_last_error() message (printf format). */
void swarm_cuda_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Clears this thread's message. */
void swarm_cuda_clear_error(void);
/* The errno for a CUDA error (see the top of this file). */
int swarm_cuda_errno(cudaError_t err);
/* Records, prints and clears a failed CUDA call; returns its errno. */
int swarm_cuda_report(cudaError_t err, const char *stmt, const char *file, int line);
/* The same for a CUDA driver call's CUresult (given as int: this header includes no cuda.h),
 * named as the driver names it (cuGetErrorName, cuGetErrorString): -ENOMEM out of memory,
 * -ENOTSUP not supported or not permitted (a platform that refuses the feature), -EINVAL an
 * invalid value or handle, -ENODEV no device or driver, else -EIO. */
int swarm_cuda_report_drv(int result, const char *stmt, const char *file, int line);
/* The same for a cuBLAS or cuBLASLt status: -ENOMEM for an allocation failure, -ENOTSUP for
 * CUBLAS_STATUS_NOT_SUPPORTED, else -EIO (in blas.cu, which loads cuBLAS). */
int swarm_cuda_report_blas(cublasStatus_t st, const char *stmt, const char *file, int line);

/* Runs a CUDA runtime call; on failure reports it, sets ret to its errno and jumps to label. */
#define CUDA_CHECK(stmt, label)                                                   \
	do {                                                                      \
		cudaError_t err_ = (stmt);                                        \
		if (err_ != cudaSuccess) {                                        \
			ret = swarm_cuda_report(err_, #stmt, __FILE__, __LINE__); \
			goto label;                                               \
		}                                                                 \
	} while (0)

/* Runs a CUDA runtime call; on failure reports it and returns its errno. */
#define CUDA_CHECK_RET(stmt)                                                       \
	do {                                                                       \
		cudaError_t err_ = (stmt);                                         \
		if (err_ != cudaSuccess)                                           \
			return swarm_cuda_report(err_, #stmt, __FILE__, __LINE__); \
	} while (0)

/* Runs a CUDA runtime call and evaluates to 0, or (reported) to its errno: for the functions
 * that return no errno, e.g. if (CUDA_CALL(cudaMalloc(&p, n))) return NULL; */
#define CUDA_CALL(stmt) swarm_cuda_call((stmt), #stmt, __FILE__, __LINE__)

static inline int swarm_cuda_call(cudaError_t err, const char *stmt, const char *file, int line)
{
	return err == cudaSuccess ? 0 : swarm_cuda_report(err, stmt, file, line);
}

/* After every <<<...>>>: a launch error (bad configuration, no kernel image for this GPU) is
 * only seen by cudaGetLastError. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK_RET(cudaGetLastError())

/* cuBLAS and cuBLASLt calls, as CUDA_CHECK and CUDA_CHECK_RET. */
#define CUBLAS_CHECK(stmt, label)                                                     \
	do {                                                                          \
		cublasStatus_t st_ = (stmt);                                          \
		if (st_ != CUBLAS_STATUS_SUCCESS) {                                   \
			ret = swarm_cuda_report_blas(st_, #stmt, __FILE__, __LINE__); \
			goto label;                                                   \
		}                                                                     \
	} while (0)

#define CUBLAS_CHECK_RET(stmt)                                                         \
	do {                                                                           \
		cublasStatus_t st_ = (stmt);                                           \
		if (st_ != CUBLAS_STATUS_SUCCESS)                                      \
			return swarm_cuda_report_blas(st_, #stmt, __FILE__, __LINE__); \
	} while (0)

/* ---- the device's context ------------------------------------------------------------------- */

/* cuBLAS's and cuBLASLt's workspaces, each allocated once at create (cuBLAS then never
 * allocates inside a captured region). 32 MiB is what cuBLAS asks for on Hopper. */
#define SWARM_CUDA_BLAS_WS_BYTES ((size_t)32 << 20)
#define SWARM_CUDA_LT_WS_BYTES ((size_t)32 << 20)

struct swarm_cuda_upload; /* stream_upload.cuh */
struct swarm_cuda_gather; /* gather.cuh */

struct swarm_cuda_ctx {
	int ordinal;
	cudaStream_t stream;    /* the one non-blocking stream every op is queued on */
	cublasHandle_t blas;    /* bound to stream, workspace blas_ws */
	cublasLtHandle_t lt;    /* its calls take stream and lt_ws explicitly */
	void *blas_ws, *lt_ws;  /* device memory, SWARM_CUDA_*_WS_BYTES each */
	int *err_flag;          /* device memory: an index check on the GPU sets it to 1 */
	volatile int *err_host; /* pinned host memory: where synchronize reads err_flag */
	int capturing;          /* between capture_begin and capture_end */
	struct swarm_cuda_upload *upload; /* upload_stream's streams and pinned chunks */
	struct swarm_cuda_gather *gather; /* upload_many's mode and registered regions */
};

/* ---- launches ------------------------------------------------------------------------------- */

/* Threads per block of the simple kernels; a multiple of 32 (the warp-per-row kernels). */
#define SWARM_CUDA_THREADS 256
/* Most blocks of a grid-stride launch: enough to fill any current GPU many times over. */
#define SWARM_CUDA_MAX_BLOCKS 65535

/* Blocks for items work items at per_block items a block, at least 1, at most MAX_BLOCKS (the
 * kernels loop over the rest). */
static inline unsigned int swarm_cuda_blocks(int64_t items, int64_t per_block)
{
	int64_t b = items / per_block + (items % per_block != 0);
	if (b < 1)
		b = 1;
	if (b > SWARM_CUDA_MAX_BLOCKS)
		b = SWARM_CUDA_MAX_BLOCKS;
	return (unsigned int)b;
}

/* Bytes of one element of a float dtype that passed swarm_node_check. */
static inline size_t swarm_cuda_float_size(uint32_t dtype)
{
	return dtype == SWARM_DTYPE_F32 ? 4 : 2;
}

/* The cudaDataType of a float dtype that passed swarm_node_check. */
static inline cudaDataType_t swarm_cuda_data_type(uint32_t dtype)
{
	switch (dtype) {
	case SWARM_DTYPE_F16:
		return CUDA_R_16F;
	case SWARM_DTYPE_BF16:
		return CUDA_R_16BF;
	default:
		return CUDA_R_32F;
	}
}

/* ---- device helpers ------------------------------------------------------------------------- */

/* f32, f16, bf16 to and from float: the kernels compute in float whatever they store. */
static __device__ __forceinline__ float swarm_to_f32(float x) { return x; }
static __device__ __forceinline__ float swarm_to_f32(__half x) { return __half2float(x); }
static __device__ __forceinline__ float swarm_to_f32(__nv_bfloat16 x)
{
	return __bfloat162float(x);
}

template <typename T> static __device__ __forceinline__ T swarm_from_f32(float x);
template <> __device__ __forceinline__ float swarm_from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half swarm_from_f32<__half>(float x)
{
	return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 swarm_from_f32<__nv_bfloat16>(float x)
{
	return __float2bfloat16_rn(x);
}

/* Sum and max over the 32 lanes of a warp; every lane gets the result. All 32 lanes must
 * call it. */
static __device__ __forceinline__ float swarm_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

static __device__ __forceinline__ float swarm_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

#endif /* SWARM_KERNELS_CUDA_COMMON_CUH */
