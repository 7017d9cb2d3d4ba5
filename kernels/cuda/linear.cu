/* linear.cu: LINEAR on cuBLASLt, with its epilogue where it computes our activation.
 *
 * Layout. cuBLAS is column-major; our tensors are row-major. A row-major matrix [r, c] with
 * row stride c is, byte for byte, the column-major matrix [c, r] with leading dimension c:
 * its transpose. With M = X's rows:
 *   X   row-major [M, K]  = column-major X^T [K, M], ld K
 *   W   row-major [N, K]  = column-major W^T [K, N], ld K
 *   out row-major [M, N]  = column-major out^T [N, M], ld N
 * and out = X W^T  <=>  out^T = (X W^T)^T = W X^T. So in cuBLAS's terms
 *   D [N, M] (ld N) = op(A) op(B), A = W's bytes seen as [K, N] (ld K) with op = T (giving
 *   W [N, K]), B = X's bytes seen as [K, M] (ld K) with op = N:
 *   m = N, n = M, k = K, transa = T, transb = N, lda = K, ldb = K, ldd = N.
 * The bias epilogue adds a vector of D's row count (m = N) to every column of D, that is
 * bias[j] to out^T[j, i] = out[i, j]: exactly our bias over out's last dim.
 *
 * Fusions. CUBLASLT_EPILOGUE_BIAS, RELU and RELU_BIAS apply bias and ReLU on the GEMM's
 * f32 accumulators before the one store of out: no extra pass through memory. cuBLASLt's
 * GELU epilogue is the tanh approximation, while our GELU is the erf form, so GELU, like
 * SIGMOID and TANH (which cuBLASLt does not have), runs as a plain GEMM followed by one pass
 * of ours that adds the bias and applies the activation together (one read and one write of
 * out, instead of two passes for bias then activation). For f16 and bf16 that pass sees out
 * already rounded to 16 bits, where the fused epilogue would not.
 *
 * Precision. Compute type CUBLAS_COMPUTE_32F with f32 inputs does not use TF32 tensor cores
 * (that would be CUBLAS_COMPUTE_32F_FAST_TF32), so f32 results match the CPU's sgemm within
 * the tests' tight tolerances; f16 and bf16 inputs use tensor cores with f32 accumulation.
 *
 * Alignment. cuBLASLt's heuristic assumes 256-byte-aligned A, B, C and D unless told
 * otherwise, and our tensors may be views at any element offset (arena offsets are 64-byte
 * aligned, weights and inputs come from elsewhere), so each call tells it the alignment of
 * the actual pointers (the bias pointer's it reads from the descriptor itself; a bias below
 * 16-byte alignment is not given to the epilogue at all, but added by our pass). When the
 * heuristic has no algorithm for the case, the GEMM falls back to cublasGemmEx with the same
 * mapping and our own bias + activation pass.
 *
 * The descriptors and the heuristic query are host work per call (microseconds); they are not
 * cached, so nothing here depends on state kept across runs. Under stream capture they run
 * at capture time and only the GEMM and our pass are recorded.
 */
#include "linear.cuh"
#include "blas.cuh"
#include "unary.cuh"

/* The largest power of two, at most 256, that divides p's address. */
static uint32_t ptr_alignment(const void *p)
{
	const uintptr_t v = (uintptr_t)p;
	uint32_t a = 256;

	while (a > 1 && v % a != 0)
		a >>= 1;
	return a;
}

/* o[r, j] = act(o[r, j] + bias[j]) over rows x N, in place, in f32. */
template <typename T, uint32_t ACT>
static __global__ void bias_act(T *o, const T *bias, int64_t rows, int64_t N)
{
	const int64_t stride = (int64_t)blockDim.x * gridDim.x;
	const int64_t n = rows * N;

	for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
		float v = swarm_to_f32(o[e]);
		if (bias)
			v += swarm_to_f32(bias[e % N]);
		o[e] = swarm_from_f32<T>(swarm_act<ACT>(v));
	}
}

template <typename T>
static int bias_act_launch_t(struct swarm_cuda_ctx *c, void *o, const void *bias, int64_t rows,
			     int64_t N, uint32_t act)
{
	const unsigned int blocks = swarm_cuda_blocks(rows * N, SWARM_CUDA_THREADS);
	T *ot = (T *)o;
	const T *bt = (const T *)bias;

	switch (act) {
	case SWARM_OP_RELU:
		bias_act<T, SWARM_OP_RELU>
			<<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(ot, bt, rows, N);
		break;
	case SWARM_OP_GELU:
		bias_act<T, SWARM_OP_GELU>
			<<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(ot, bt, rows, N);
		break;
	case SWARM_OP_SIGMOID:
		bias_act<T, SWARM_OP_SIGMOID>
			<<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(ot, bt, rows, N);
		break;
	case SWARM_OP_TANH:
		bias_act<T, SWARM_OP_TANH>
			<<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(ot, bt, rows, N);
		break;
	default:
		bias_act<T, SWARM_OP_IDENTITY>
			<<<blocks, SWARM_CUDA_THREADS, 0, c->stream>>>(ot, bt, rows, N);
		break;
	}
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* Our bias + activation pass over out [rows, N]; nothing to do without either. */
static int bias_act_launch(struct swarm_cuda_ctx *c, uint32_t dtype, void *o, const void *bias,
			   int64_t rows, int64_t N, uint32_t act)
{
	if (!bias && act == SWARM_OP_IDENTITY)
		return 0;
	switch (dtype) {
	case SWARM_DTYPE_F16:
		return bias_act_launch_t<__half>(c, o, bias, rows, N, act);
	case SWARM_DTYPE_BF16:
		return bias_act_launch_t<__nv_bfloat16>(c, o, bias, rows, N, act);
	default:
		return bias_act_launch_t<float>(c, o, bias, rows, N, act);
	}
}

/* The GEMM (see the top of the file) on cuBLASLt with epilogue ep (bias: its vector, or NULL
 * when ep adds none). Returns 0 once queued, -ENOTSUP (nothing queued) when the heuristic
 * finds no algorithm, or a cuBLAS error's errno. */
static int lt_gemm(struct swarm_cuda_ctx *c, uint32_t dtype, const void *x, const void *w, void *o,
		   int64_t M, int64_t N, int64_t K, cublasLtEpilogue_t ep, const void *bias)
{
	const cudaDataType_t t = swarm_cuda_data_type(dtype);
	const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	const uint64_t ws_bytes = SWARM_CUDA_LT_WS_BYTES;
	const uint32_t align_w = ptr_alignment(w), align_x = ptr_alignment(x);
	const uint32_t align_o = ptr_alignment(o);
	const float alpha = 1.0f, beta = 0.0f;
	cublasLtMatmulDesc_t op = NULL;
	cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
	cublasLtMatmulPreference_t pref = NULL;
	const struct swarm_blas_api *api = swarm_blas();
	cublasLtMatmulHeuristicResult_t heur;
	int found = 0;
	int ret = 0;

	CUBLAS_CHECK(api->cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), out);
	CUBLAS_CHECK(api->cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
							 sizeof(ta)),
		     out);
	CUBLAS_CHECK(api->cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
							 sizeof(tb)),
		     out);
	CUBLAS_CHECK(api->cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep,
							 sizeof(ep)),
		     out);
	/* The bias's dtype is left at its default, D's dtype: our bias is of out's dtype. */
	if (bias)
		CUBLAS_CHECK(api->cublasLtMatmulDescSetAttribute(
				     op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
			     out);
	CUBLAS_CHECK(api->cublasLtMatrixLayoutCreate(&la, t, (uint64_t)K, (uint64_t)N, K), out);
	CUBLAS_CHECK(api->cublasLtMatrixLayoutCreate(&lb, t, (uint64_t)K, (uint64_t)M, K), out);
	CUBLAS_CHECK(api->cublasLtMatrixLayoutCreate(&ld, t, (uint64_t)N, (uint64_t)M, N), out);
	CUBLAS_CHECK(api->cublasLtMatmulPreferenceCreate(&pref), out);
	CUBLAS_CHECK(api->cublasLtMatmulPreferenceSetAttribute(
			     pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
			     sizeof(ws_bytes)),
		     out);
	CUBLAS_CHECK(api->cublasLtMatmulPreferenceSetAttribute(
			     pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_w,
			     sizeof(align_w)),
		     out);
	CUBLAS_CHECK(api->cublasLtMatmulPreferenceSetAttribute(
			     pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_x,
			     sizeof(align_x)),
		     out);
	CUBLAS_CHECK(api->cublasLtMatmulPreferenceSetAttribute(
			     pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_o,
			     sizeof(align_o)),
		     out);
	CUBLAS_CHECK(api->cublasLtMatmulPreferenceSetAttribute(
			     pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_o,
			     sizeof(align_o)),
		     out);
	/* Not through CUBLAS_CHECK: "no algorithm" is an answer, not a failure to print. */
	if (api->cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &heur,
						&found) != CUBLAS_STATUS_SUCCESS ||
	    found < 1 || heur.state != CUBLAS_STATUS_SUCCESS) {
		ret = -ENOTSUP;
		goto out;
	}
	CUBLAS_CHECK(api->cublasLtMatmul(c->lt, op, &alpha, w, la, x, lb, &beta, o, ld, o, ld,
					 &heur.algo, c->lt_ws, SWARM_CUDA_LT_WS_BYTES, c->stream),
		     out);
out:
	if (pref)
		api->cublasLtMatmulPreferenceDestroy(pref);
	if (ld)
		api->cublasLtMatrixLayoutDestroy(ld);
	if (lb)
		api->cublasLtMatrixLayoutDestroy(lb);
	if (la)
		api->cublasLtMatrixLayoutDestroy(la);
	if (op)
		api->cublasLtMatmulDescDestroy(op);
	return ret;
}

/* The same GEMM through cublasGemmEx (no epilogue). */
static int blas_gemm(struct swarm_cuda_ctx *c, uint32_t dtype, const void *x, const void *w,
		     void *o, int64_t M, int64_t N, int64_t K)
{
	const cudaDataType_t t = swarm_cuda_data_type(dtype);
	const float alpha = 1.0f, beta = 0.0f;
	const struct swarm_blas_api *api = swarm_blas();

	CUBLAS_CHECK_RET(api->cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M,
					   (int)K, &alpha, w, t, (int)K, x, t, (int)K, &beta, o, t,
					   (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
	return 0;
}

int swarm_cuda_op_linear(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d)
{
	const void *x = n->in[0]->data, *w = n->in[1]->data;
	const void *bias = d->has_bias ? n->in[2]->data : NULL;
	void *o = n->out->data;
	const uint32_t act = n->p.act;
	const int64_t M = d->m, N = d->n, K = d->k;
	cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_DEFAULT;
	int fused = 0; /* bias and act done by the epilogue */
	int ret;

	if (M == 0 || N == 0)
		return 0;
	if (K == 0) {
		/* An empty sum: out = act(0 + bias), no GEMM (cuBLAS wants k >= 1). */
		CUDA_CHECK_RET(cudaMemsetAsync(
			o, 0, (size_t)(M * N) * swarm_cuda_float_size(d->dtype), c->stream));
		return bias_act_launch(c, d->dtype, o, bias, M, N, act);
	}
	/* A bias that is not 16-byte aligned (a view into another tensor) is left to our pass:
	 * the epilogue's bias loads are vectorised. */
	if (bias && ptr_alignment(bias) < 16) {
		ep = CUBLASLT_EPILOGUE_DEFAULT;
	} else if (act == SWARM_OP_IDENTITY) {
		ep = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
		fused = 1;
	} else if (act == SWARM_OP_RELU) {
		ep = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
		fused = 1;
	}
	ret = lt_gemm(c, d->dtype, x, w, o, M, N, K, ep, fused ? bias : NULL);
	if (ret == -ENOTSUP) {
		fused = 0;
		ret = blas_gemm(c, d->dtype, x, w, o, M, N, K);
	}
	if (ret)
		return ret;
	return fused ? 0 : bias_act_launch(c, d->dtype, o, bias, M, N, act);
}
