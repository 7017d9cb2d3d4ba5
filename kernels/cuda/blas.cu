/* blas.cu: loads cuBLAS and cuBLASLt (see blas.cuh), and reports their failures. */
#include "blas.cuh"
#include "nccl_bcast.h"
#include "probe.h"

#include "kernels/lib_search.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <type_traits>

/* The spelled-out types must be the ones of the declarations that take a
 * cublasComputeType_t: static_cast picks that overload or fails to compile. Unevaluated, so
 * no reference to the symbols reaches the linker. */
static_assert(std::is_same<decltype(static_cast<swarm_cublas_gemm_ex_fn>(&::cublasGemmEx)),
			   swarm_cublas_gemm_ex_fn>::value,
	      "cublasGemmEx");
static_assert(std::is_same<decltype(static_cast<swarm_cublas_gemm_strided_batched_ex_fn>(
				   &::cublasGemmStridedBatchedEx)),
			   swarm_cublas_gemm_strided_batched_ex_fn>::value,
	      "cublasGemmStridedBatchedEx");

#define STR_(x) #x
#define STR(x) STR_(x)
/* The sonames the toolkit we compiled against ships (libcublas.so.13 for CUDA 13). */
#define CUBLAS_SONAME "libcublas.so." STR(CUBLAS_VER_MAJOR)
#define CUBLASLT_SONAME "libcublasLt.so." STR(CUBLAS_VER_MAJOR)

static struct swarm_blas_api api;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_ret = -ENODEV;
static char load_error[1024];
static char where_lt[512], where_blas[512]; /* the files loaded, for swarm_cuda_libs_describe */

/* dlopen by soname (the loader's path: LD_LIBRARY_PATH, ld.so.cache), else wherever
 * kernels/lib_search.h finds it (SWARM_CUDA_LIB_DIR, this build's toolkit folder, the system's,
 * PyTorch's wheels); *where says which file, load_error why none. */
static void *open_lib(const char *soname, char *where, size_t where_len)
{
	void *h = swarm_lib_open(soname,
#ifdef SWARM_CUDA_LIB_DIR
				 SWARM_CUDA_LIB_DIR,
#else
				 NULL,
#endif
				 where, where_len, load_error, sizeof(load_error));
	return h;
}

/* Looks every function of the table up; the handles stay open for the process's life. */
static void load(void)
{
	void *lt = open_lib(CUBLASLT_SONAME, where_lt, sizeof(where_lt));
	void *blas = lt ? open_lib(CUBLAS_SONAME, where_blas, sizeof(where_blas)) : NULL;
	void *sym;

	if (!blas)
		return;
#define SWARM_BLAS_SYM(h, soname, f)                                                  \
	sym = dlsym(h, #f);                                                           \
	if (!sym) {                                                                   \
		snprintf(load_error, sizeof(load_error), "%s has no %s", soname, #f); \
		return;                                                               \
	}                                                                             \
	memcpy(&api.f, &sym, sizeof(sym)); /* a data pointer to a function pointer */
#define SWARM_BLAS_SYM_BLAS(f) SWARM_BLAS_SYM(blas, CUBLAS_SONAME, f)
#define SWARM_BLAS_SYM_LT(f) SWARM_BLAS_SYM(lt, CUBLASLT_SONAME, f)
	SWARM_CUBLAS_FUNCS(SWARM_BLAS_SYM_BLAS)
	SWARM_BLAS_SYM_BLAS(cublasGemmEx)
	SWARM_BLAS_SYM_BLAS(cublasGemmStridedBatchedEx)
	SWARM_CUBLASLT_FUNCS(SWARM_BLAS_SYM_LT)
	load_ret = 0;
}

int swarm_blas_load(void)
{
	(void)pthread_once(&load_once, load);
	if (load_ret)
		swarm_cuda_set_error("cuBLAS: %s", load_error);
	return load_ret;
}

const struct swarm_blas_api *swarm_blas(void) { return &api; }

extern "C" int swarm_cuda_libs_describe(char *buf, size_t len)
{
	int rc = swarm_blas_load();
	int n;

	if (!buf || len == 0)
		return -EINVAL;
	if (rc == 0)
		n = snprintf(buf, len, "%s: %s\n%s: %s\n", CUBLASLT_SONAME, where_lt, CUBLAS_SONAME,
			     where_blas);
	else
		n = snprintf(buf, len, "cuBLAS: %s\n", load_error);
	if (n < 0 || (size_t)n >= len)
		return rc;
	int nrc = swarm_nccl_describe(buf + n, len - (size_t)n);
	return rc ? rc : nrc;
}

int swarm_cuda_report_blas(cublasStatus_t st, const char *stmt, const char *file, int line)
{
	swarm_cuda_set_error("%s failed: %s (%s) at %s:%d", stmt, api.cublasGetStatusString(st),
			     api.cublasGetStatusName(st), file, line);
	fprintf(stderr, "swarm: cuda: %s\n", swarm_cuda_last_error());
	(void)cudaGetLastError();
	switch (st) {
	case CUBLAS_STATUS_ALLOC_FAILED:
		return -ENOMEM;
	case CUBLAS_STATUS_NOT_SUPPORTED:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}
