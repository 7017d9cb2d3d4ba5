/* matmul.cu: MATMUL as one strided-batched cuBLAS GEMM.
 *
 * Layout (see linear.cu for the row-major / column-major view): per batch item,
 *   A   row-major [M, K] = column-major A^T [K, M], ld K
 *   B   row-major [K, N] = column-major B^T [N, K], ld N
 *   out row-major [M, N] = column-major out^T [N, M], ld N
 * and out = A B  <=>  out^T = B^T A^T. So cuBLAS computes C [N, M] = B^T [N, K] A^T [K, M]
 * with no transposes: m = N, n = M, k = K, its "A" is our B (lda N, stride K * N), its "B"
 * is our A (ldb K, stride M * K), C is out (ldc N, stride M * N).
 *
 * CUBLAS_COMPUTE_32F: f32 without TF32 (as in linear.cu), f16 and bf16 accumulated in f32. The
 * batch count is an int: a larger batch goes in several calls.
 */
#include "matmul.cuh"
#include "blas.cuh"

#include <limits.h>

int swarm_cuda_op_matmul(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const int64_t M = d->m, N = d->n, K = d->k, batch = d->batch;
	const cudaDataType_t t = swarm_cuda_data_type(d->dtype);
	const size_t es = swarm_cuda_float_size(d->dtype);
	const float alpha = 1.0f, beta = 0.0f;
	const struct swarm_blas_api *api = swarm_blas();
	const char *a = (const char *)n->in[0]->data, *b = (const char *)n->in[1]->data;
	char *o = (char *)n->out->data;

	if (batch == 0 || M == 0 || N == 0)
		return 0;
	if (K == 0) {
		CUDA_CHECK_RET(cudaMemsetAsync(o, 0, (size_t)(batch * M * N) * es, c->stream));
		return 0;
	}
	for (int64_t done = 0; done < batch;) {
		const int count = (int)(batch - done < INT_MAX ? batch - done : INT_MAX);

		CUBLAS_CHECK_RET(api->cublasGemmStridedBatchedEx(
			c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha,
			b + (size_t)(done * K * N) * es, t, (int)N, (long long)(K * N),
			a + (size_t)(done * M * K) * es, t, (int)K, (long long)(M * K), &beta,
			o + (size_t)(done * M * N) * es, t, (int)N, (long long)(M * N), count,
			CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
		done += count;
	}
	return 0;
}
