/* blas.cuh: cuBLAS and cuBLASLt, loaded with dlopen when the first CUDA device is created,
 * not linked. A CUDA-enabled build then starts (a CPU-only worker, swarmd, the tests) on a
 * machine without the cuBLAS libraries, and a process that never creates a CUDA device does
 * not map them (libcublasLt alone is over 500 MB, about 0.1 s and 200 MB of resident pages
 * to load); creating a CUDA device where they are missing is -ENODEV with dlerror()'s reason,
 * as a missing driver is. The same rule the CUDA runtime follows for libcuda.
 *
 * Every cuBLAS call in kernels/cuda/ goes through the table: swarm_blas()->cublasLtMatmul(..).
 * The member types come from the headers' own declarations (decltype), so a mismatch is a
 * compile error, never a wrong call.
 */
#ifndef SWARM_KERNELS_CUDA_BLAS_CUH
#define SWARM_KERNELS_CUDA_BLAS_CUH

#include "cuda_common.cuh"

/* The functions taken from libcublas and libcublasLt. */
#define SWARM_CUBLAS_FUNCS(X)    \
	X(cublasCreate_v2)       \
	X(cublasDestroy_v2)      \
	X(cublasSetStream_v2)    \
	X(cublasSetWorkspace_v2) \
	X(cublasSetMathMode)     \
	X(cublasGetStatusName)   \
	X(cublasGetStatusString)
#define SWARM_CUBLASLT_FUNCS(X)                 \
	X(cublasLtCreate)                       \
	X(cublasLtDestroy)                      \
	X(cublasLtMatmulDescCreate)             \
	X(cublasLtMatmulDescDestroy)            \
	X(cublasLtMatmulDescSetAttribute)       \
	X(cublasLtMatrixLayoutCreate)           \
	X(cublasLtMatrixLayoutDestroy)          \
	X(cublasLtMatmulPreferenceCreate)       \
	X(cublasLtMatmulPreferenceDestroy)      \
	X(cublasLtMatmulPreferenceSetAttribute) \
	X(cublasLtMatmulAlgoGetHeuristic)       \
	X(cublasLtMatmul)

/* cublasGemmEx and cublasGemmStridedBatchedEx have C++ overloads in cublas_api.h (an old
 * cudaDataType compute type), so their types are spelled out; blas.cu checks them against
 * the declarations. */
typedef cublasStatus_t (*swarm_cublas_gemm_ex_fn)(cublasHandle_t, cublasOperation_t,
						  cublasOperation_t, int, int, int, const void *,
						  const void *, cudaDataType, int, const void *,
						  cudaDataType, int, const void *, void *,
						  cudaDataType, int, cublasComputeType_t,
						  cublasGemmAlgo_t);
typedef cublasStatus_t (*swarm_cublas_gemm_strided_batched_ex_fn)(
	cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
	const void *, cudaDataType, int, long long int, const void *, cudaDataType, int,
	long long int, const void *, void *, cudaDataType, int, long long int, int,
	cublasComputeType_t, cublasGemmAlgo_t);

struct swarm_blas_api {
#define SWARM_BLAS_MEMBER(f) decltype(&::f) f;
	SWARM_CUBLAS_FUNCS(SWARM_BLAS_MEMBER)
	SWARM_CUBLASLT_FUNCS(SWARM_BLAS_MEMBER)
#undef SWARM_BLAS_MEMBER
	swarm_cublas_gemm_ex_fn cublasGemmEx;
	swarm_cublas_gemm_strided_batched_ex_fn cublasGemmStridedBatchedEx;
};

/* Loads the libraries and their functions, once per process (thread-safe). Returns 0, or
 * -ENODEV with the reason in swarm_cuda_last_error() (every later call returns the same). */
int swarm_blas_load(void);

/* The table; only after swarm_blas_load returned 0 (a CUDA device exists). */
const struct swarm_blas_api *swarm_blas(void);

#endif /* SWARM_KERNELS_CUDA_BLAS_CUH */
