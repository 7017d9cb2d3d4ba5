/* cuda_device.cu: the CUDA device, the table of kernels/device.h on one GPU. It holds the
 * device's context (one non-blocking stream, one cuBLAS and one cuBLASLt handle bound to it,
 * their workspaces, the device-side error flag), device memory, the copies, host-memory
 * registration, synchronisation, graph capture, and its table of kernels, one per op of the
 * op table (kernels/op.h). The ops live one per file beside it (linear.cu, softmax.cu, ...).
 *
 * Ordering: everything is queued on the device's one stream, so ops, copies and the error
 * flag's reads and writes happen in the order they were asked for; the host waits only in
 * upload (see cuda_upload) and synchronize. The one exception is upload_stream
 * (stream_upload.cu), which has streams of its own: it waits for the device's stream first
 * and for its own before it returns, so it is ordered like a synchronous upload.
 *
 * Threads: like the CPU device, one device is used by one thread at a time (the worker's).
 * The CUDA context is the process's primary context on the ordinal; every entry point first
 * makes the ordinal current on the calling thread.
 */
#include "cuda_common.cuh"
#include "share_mem.h"
#include "blas.cuh"
#include "probe.h"

#include "attention.cuh"
#include "binary.cuh"
#include "concat.cuh"
#include "conv.cuh"
#include "embedding.cuh"
#include "gather.cuh"
#include "identity.cuh"
#include "l2norm.cuh"
#include "layout.cuh"
#include "layernorm.cuh"
#include "linear.cuh"
#include "matmul.cuh"
#include "mean_pool.cuh"
#include "softmax.cuh"
#include "stream_upload.cuh"
#include "unary.cuh"

#include <pthread.h>
#include <stdlib.h>

/* The float dtypes this device takes for LINEAR, MATMUL and ATTENTION (swarm_node_check). */
#define CUDA_FLOAT_DTYPES                                                      \
	(SWARM_DTYPE_BIT(SWARM_DTYPE_F32) | SWARM_DTYPE_BIT(SWARM_DTYPE_F16) | \
	 SWARM_DTYPE_BIT(SWARM_DTYPE_BF16))

static struct swarm_cuda_ctx *ctx_of(struct swarm_device *d)
{
	return (struct swarm_cuda_ctx *)d->ctx;
}

/* Makes the device's ordinal current on the calling thread (cheap when it already is). */
static int use_device(struct swarm_cuda_ctx *c)
{
	int cur = -1;

	CUDA_CHECK_RET(cudaGetDevice(&cur));
	if (cur != c->ordinal)
		CUDA_CHECK_RET(cudaSetDevice(c->ordinal));
	return 0;
}

/* ---- memory and copies ---------------------------------------------------------------------- */

/* cudaMalloc: 256-byte aligned; a zero-byte request still gets a distinct pointer, as on the
 * CPU. Not during capture (cudaMalloc would end it). */
static void *cuda_alloc(struct swarm_device *d, size_t bytes)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	void *p = NULL;

	if (c->capturing) {
		swarm_cuda_set_error("alloc during graph capture");
		return NULL;
	}
	if (use_device(c) || CUDA_CALL(cudaMalloc(&p, bytes ? bytes : 1)))
		return NULL;
	return p;
}

/* cudaFree waits for the device. Not during capture: the pointer is then kept (and the
 * failure recorded) rather than freed under a recording stream. */
static void cuda_free(struct swarm_device *d, void *p)
{
	struct swarm_cuda_ctx *c = ctx_of(d);

	if (!p)
		return;
	if (c->capturing) {
		swarm_cuda_set_error("free of %p during graph capture: not freed", p);
		return;
	}
	if (use_device(c) == 0)
		(void)CUDA_CALL(cudaFree(p));
}

/* Queues one copy of kind on the device's stream (the three copy members share it); *cp is
 * the device's context. */
static int queue_copy(struct swarm_device *d, void *dst, const void *src, size_t bytes,
		      cudaMemcpyKind kind, struct swarm_cuda_ctx **cp)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret;

	*cp = c;
	if (bytes == 0)
		return 0;
	if (!dst || !src)
		return -EINVAL;
	ret = use_device(c);
	if (ret)
		return ret;
	CUDA_CHECK_RET(cudaMemcpyAsync(dst, src, bytes, kind, c->stream));
	return 0;
}

/* Queues the copy, then waits for the stream: when it returns 0 the bytes are on the device
 * and the caller may reuse src at once, pinned or pageable (a pinned src is read by the DMA
 * engine after cudaMemcpyAsync returns, so without the wait it could not be reused). The wait
 * also covers the work queued before it. During capture the copy is recorded instead, and
 * each replay reads src again: src must then be pinned memory (register_host) that holds the
 * data at every replay. */
static int cuda_upload(struct swarm_device *d, void *dst, const void *src, size_t bytes)
{
	struct swarm_cuda_ctx *c;
	int ret = queue_copy(d, dst, src, bytes, cudaMemcpyHostToDevice, &c);

	if (ret || bytes == 0 || c->capturing)
		return ret;
	CUDA_CHECK_RET(cudaStreamSynchronize(c->stream));
	return 0;
}

/* Queues the copy after everything queued before it and returns: dst holds the bytes once
 * synchronize() has returned 0. During capture the copy is recorded, and each replay writes
 * dst again (pinned memory, as for upload). */
static int cuda_download(struct swarm_device *d, void *dst, const void *src, size_t bytes)
{
	struct swarm_cuda_ctx *c;
	return queue_copy(d, dst, src, bytes, cudaMemcpyDeviceToHost, &c);
}

/* Queues a device-to-device copy (either side may be another process's allocation opened
 * through CUDA IPC) and returns: dst holds the bytes once synchronize() has returned 0. */
static int cuda_copy_d2d(struct swarm_device *d, void *dst, const void *src, size_t bytes)
{
	struct swarm_cuda_ctx *c;
	return queue_copy(d, dst, src, bytes, cudaMemcpyDeviceToDevice, &c);
}

/* The streamed upload of a large pageable buffer (stream_upload.cu). */
static int cuda_upload_stream(struct swarm_device *d, void *dst, const struct swarm_upload_src *src,
			      size_t bytes, double *gbps)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret;

	if (gbps)
		*gbps = 0.0;
	ret = use_device(c);
	if (ret)
		return ret;
	return swarm_cuda_upload_stream(c, dst, src, bytes, gbps);
}

/* Pins p for DMA. A read-only mapping (the registry's mmap'd weights) cannot be registered
 * the default way; it is retried read-only where the GPU supports that, mapped (the default
 * maps a range into the device's address space on UVA systems; a read-only registration only
 * with cudaHostRegisterMapped), so that the gather kernel may read it in place. */
static int cuda_register_host(struct swarm_device *d, void *p, size_t bytes)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ro = 0;
	int ret;
	cudaError_t err;

	if (!p || bytes == 0)
		return -EINVAL;
	ret = use_device(c);
	if (ret)
		return ret;
	err = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
	if (err == cudaSuccess) {
		swarm_cuda_gather_note_register(c, p, bytes, 0);
		return 0;
	}
	(void)cudaGetLastError();
	if (cudaDeviceGetAttribute(&ro, cudaDevAttrHostRegisterReadOnlySupported, c->ordinal) ==
		    cudaSuccess &&
	    ro &&
	    cudaHostRegister(p, bytes, cudaHostRegisterReadOnly | cudaHostRegisterMapped) ==
		    cudaSuccess) {
		swarm_cuda_gather_note_register(c, p, bytes, 1);
		return 0;
	}
	/* Report the first failure, the one that says why the plain registration failed. */
	return swarm_cuda_report(err, "cudaHostRegister(p, bytes, cudaHostRegisterDefault)",
				 __FILE__, __LINE__);
}

static int cuda_unregister_host(struct swarm_device *d, void *p)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret;

	if (!p)
		return -EINVAL;
	ret = use_device(c);
	if (ret)
		return ret;
	/* Forgotten first: a kernel must never read a range that may no longer be pinned. */
	swarm_cuda_gather_note_unregister(c, p);
	CUDA_CHECK_RET(cudaHostUnregister(p));
	return 0;
}

/* upload_many and download_many: gather.cu, by the device's gather mode. */
static int cuda_upload_many(struct swarm_device *d, const struct swarm_copy *pc, uint32_t n)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret = use_device(c);
	return ret ? ret : swarm_cuda_copy_many(c, pc, n, 1);
}

static int cuda_download_many(struct swarm_device *d, const struct swarm_copy *pc, uint32_t n)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret = use_device(c);
	return ret ? ret : swarm_cuda_copy_many(c, pc, n, 0);
}

/* Waits for everything queued, then reads and clears the error flag that the index checks on
 * the GPU set: -EINVAL when one of the nodes since the last synchronize had an id or offset
 * out of range (that node, and any gather after it, wrote nothing). A CUDA failure of the
 * queued work (a kernel fault) returns its errno, -EIO mostly. */
static int cuda_synchronize(struct swarm_device *d)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret;

	if (c->capturing) {
		swarm_cuda_set_error("synchronize during graph capture");
		return -EINVAL;
	}
	ret = use_device(c);
	if (ret)
		return ret;
	CUDA_CHECK_RET(cudaStreamSynchronize(c->stream));
	CUDA_CHECK_RET(cudaMemcpyAsync((void *)c->err_host, c->err_flag, sizeof(int),
				       cudaMemcpyDeviceToHost, c->stream));
	CUDA_CHECK_RET(cudaMemsetAsync(c->err_flag, 0, sizeof(int), c->stream));
	CUDA_CHECK_RET(cudaStreamSynchronize(c->stream));
	if (*c->err_host) {
		*c->err_host = 0;
		swarm_cuda_set_error(
			"an index input (embedding id or bag offset, gather index) was out of range "
			"on the GPU; its node wrote nothing");
		return -EINVAL;
	}
	return 0;
}

/* ---- ops --------------------------------------------------------------------------------------
 */

typedef int (*cuda_kernel_fn)(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			      const struct swarm_node_dims *d);

/* The CUDA device's kernel (launcher) of each op of the op table (kernels/op.h); NULL: not on
 * this device. Filled by op index at first use: C++ has no designated array initialisers. */
static cuda_kernel_fn cuda_kernels[SWARM_OP_COUNT];

static void kernels_init(void)
{
	cuda_kernels[SWARM_OP_IDENTITY] = swarm_cuda_op_identity;
	cuda_kernels[SWARM_OP_LINEAR] = swarm_cuda_op_linear;
	cuda_kernels[SWARM_OP_MATMUL] = swarm_cuda_op_matmul;
	cuda_kernels[SWARM_OP_ADD] = swarm_cuda_op_binary;
	cuda_kernels[SWARM_OP_MUL] = swarm_cuda_op_binary;
	cuda_kernels[SWARM_OP_RELU] = swarm_cuda_op_unary;
	cuda_kernels[SWARM_OP_GELU] = swarm_cuda_op_unary;
	cuda_kernels[SWARM_OP_SIGMOID] = swarm_cuda_op_unary;
	cuda_kernels[SWARM_OP_TANH] = swarm_cuda_op_unary;
	cuda_kernels[SWARM_OP_SOFTMAX] = swarm_cuda_op_softmax;
	cuda_kernels[SWARM_OP_LAYERNORM] = swarm_cuda_op_layernorm;
	cuda_kernels[SWARM_OP_EMBEDDING] = swarm_cuda_op_embedding;
	cuda_kernels[SWARM_OP_EMBEDDING_BAG] = swarm_cuda_op_embedding_bag;
	cuda_kernels[SWARM_OP_CONCAT] = swarm_cuda_op_concat;
	cuda_kernels[SWARM_OP_ATTENTION] = swarm_cuda_op_attention;
	cuda_kernels[SWARM_OP_MEAN_POOL] = swarm_cuda_op_mean_pool;
	cuda_kernels[SWARM_OP_L2NORM] = swarm_cuda_op_l2norm;
	/* the ONNX intake's ops (issue 13) */
	static const uint32_t binaries[] = { SWARM_OP_SUB, SWARM_OP_DIV, SWARM_OP_MAX, SWARM_OP_MIN,
					     SWARM_OP_PRELU };
	for (uint32_t op : binaries)
		cuda_kernels[op] = swarm_cuda_op_binary;
	static const uint32_t unaries[] = { SWARM_OP_ERF,         SWARM_OP_EXP,
					    SWARM_OP_LOG,         SWARM_OP_SQRT,
					    SWARM_OP_HARDSIGMOID, SWARM_OP_HARDSWISH,
					    SWARM_OP_LEAKY_RELU,  SWARM_OP_CLIP,
					    SWARM_OP_POW };
	for (uint32_t op : unaries)
		cuda_kernels[op] = swarm_cuda_op_unary;
	cuda_kernels[SWARM_OP_CONV2D] = swarm_cuda_op_conv2d;
	cuda_kernels[SWARM_OP_CONV_TRANSPOSE2D] = swarm_cuda_op_conv_transpose2d;
	cuda_kernels[SWARM_OP_MAX_POOL2D] = swarm_cuda_op_pool2d;
	cuda_kernels[SWARM_OP_AVG_POOL2D] = swarm_cuda_op_pool2d;
	cuda_kernels[SWARM_OP_GLOBAL_AVG_POOL] = swarm_cuda_op_global_avg_pool;
	cuda_kernels[SWARM_OP_RESIZE] = swarm_cuda_op_resize;
	cuda_kernels[SWARM_OP_BATCHNORM] = swarm_cuda_op_batchnorm;
	cuda_kernels[SWARM_OP_REDUCE_MEAN] = swarm_cuda_op_reduce;
	cuda_kernels[SWARM_OP_REDUCE_SUM] = swarm_cuda_op_reduce;
	cuda_kernels[SWARM_OP_REDUCE_MAX] = swarm_cuda_op_reduce;
	cuda_kernels[SWARM_OP_TRANSPOSE] = swarm_cuda_op_transpose;
	cuda_kernels[SWARM_OP_RESHAPE] = swarm_cuda_op_reshape;
	cuda_kernels[SWARM_OP_SLICE] = swarm_cuda_op_slice;
	cuda_kernels[SWARM_OP_GATHER] = swarm_cuda_op_gather;
	cuda_kernels[SWARM_OP_PAD] = swarm_cuda_op_pad;
	cuda_kernels[SWARM_OP_CAST] = swarm_cuda_op_cast;
}

static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static cuda_kernel_fn kernel_of(uint32_t op)
{
	(void)pthread_once(&kernels_once, kernels_init);
	return op < SWARM_OP_COUNT ? cuda_kernels[op] : NULL;
}

/* Op, input count and dtypes (the op table's rule: f32, plus f16 and bf16 for the GEMM ops),
 * and a kernel. */
static int cuda_supports_op(struct swarm_device *d, const struct swarm_node *n)
{
	(void)d;
	return n && kernel_of(n->op) && swarm_node_supported(n, CUDA_FLOAT_DTYPES);
}

/* Checks the node on the host (kernels/check.h), then queues its op on the stream. */
static int cuda_run(struct swarm_device *d, const struct swarm_node *n)
{
	struct swarm_node_dims dims;
	struct swarm_cuda_ctx *c;
	int ret;

	if (!d || !n || !n->out || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	cuda_kernel_fn k = kernel_of(n->op);
	if (!k)
		return -ENOTSUP;
	ret = swarm_node_check(n, CUDA_FLOAT_DTYPES, &dims);
	if (ret) {
		swarm_cuda_set_error(
			"run: the %s node does not fit its contract (dtypes or shapes)",
			swarm_op_name(n->op));
		return ret;
	}
	c = ctx_of(d);
	ret = use_device(c);
	if (ret)
		return ret;
	return k(c, n, &dims);
}

/* ---- graph capture ------------------------------------------------------------------------ */

/* Starts recording the stream. Thread-local mode: only this thread's unsafe calls (cudaMalloc,
 * a synchronous copy) break the capture; other threads' CUDA work is unaffected. */
static int cuda_capture_begin(struct swarm_device *d)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret;

	if (c->capturing) {
		swarm_cuda_set_error("capture_begin: already capturing");
		return -EINVAL;
	}
	ret = use_device(c);
	if (ret)
		return ret;
	CUDA_CHECK_RET(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
	c->capturing = 1;
	return 0;
}

/* Ends the recording and instantiates it; *exec is a cudaGraphExec_t. A capture that an
 * illegal call broke on the way ends here with that call's error and no executable. */
static int cuda_capture_end(struct swarm_device *d, void **exec)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	cudaGraph_t graph = NULL;
	cudaGraphExec_t ge = NULL;
	int ret;

	if (exec)
		*exec = NULL;
	if (!c->capturing) {
		swarm_cuda_set_error("capture_end without capture_begin");
		return -EINVAL;
	}
	ret = use_device(c);
	if (ret)
		return ret;
	c->capturing = 0;
	CUDA_CHECK(cudaStreamEndCapture(c->stream, &graph), out);
	if (!exec) {
		ret = -EINVAL;
		goto out;
	}
	CUDA_CHECK(cudaGraphInstantiate(&ge, graph, 0), out);
	*exec = (void *)ge;
out:
	if (graph)
		(void)cudaGraphDestroy(graph);
	return ret;
}

/* One launch of the whole recorded sequence, queued on the stream like any op. */
static int cuda_replay(struct swarm_device *d, void *exec)
{
	struct swarm_cuda_ctx *c = ctx_of(d);
	int ret;

	if (!exec || c->capturing) {
		swarm_cuda_set_error("replay: %s", exec ? "during a capture" : "no executable");
		return -EINVAL;
	}
	ret = use_device(c);
	if (ret)
		return ret;
	CUDA_CHECK_RET(cudaGraphLaunch((cudaGraphExec_t)exec, c->stream));
	return 0;
}

static void cuda_exec_free(struct swarm_device *d, void *exec)
{
	struct swarm_cuda_ctx *c = ctx_of(d);

	if (exec && use_device(c) == 0)
		(void)CUDA_CALL(cudaGraphExecDestroy((cudaGraphExec_t)exec));
}

/* ---- create and destroy ---------------------------------------------------------------------- */

/* Releases what create made, in reverse; each member may still be unset. */
static void ctx_release(struct swarm_cuda_ctx *c)
{
	const struct swarm_blas_api *api = swarm_blas(); /* loaded: the handles need it */

	if (c->lt)
		(void)api->cublasLtDestroy(c->lt);
	if (c->blas)
		(void)api->cublasDestroy_v2(c->blas);
	if (c->upload) {
		swarm_cuda_upload_release(c->upload);
		free(c->upload);
		c->upload = NULL;
	}
	if (c->lt_ws)
		(void)cudaFree(c->lt_ws);
	if (c->blas_ws)
		(void)cudaFree(c->blas_ws);
	if (c->err_host)
		(void)cudaFreeHost((void *)c->err_host);
	if (c->err_flag)
		(void)cudaFree(c->err_flag);
	if (c->stream)
		(void)cudaStreamDestroy(c->stream);
	swarm_cuda_gather_release(c);
	(void)cudaGetLastError();
}

/* Waits for the stream, then releases everything; a capture left open is ended and dropped.
 * The device handle is invalid afterwards. */
static void cuda_destroy(struct swarm_device *d)
{
	struct swarm_cuda_ctx *c;

	if (!d)
		return;
	c = ctx_of(d);
	if (c) {
		if (use_device(c) == 0) {
			if (c->capturing) {
				cudaGraph_t graph = NULL;
				if (cudaStreamEndCapture(c->stream, &graph) == cudaSuccess && graph)
					(void)cudaGraphDestroy(graph);
				c->capturing = 0;
			}
			(void)cudaStreamSynchronize(c->stream);
		}
		ctx_release(c);
		free(c);
	}
	free(d);
}

/* ---- shareable memory (share_mem.h) ------------------------------------------------------ */

/* Not during capture, as alloc and free: mapping and unmapping would end it. */
static void *cuda_alloc_shared(struct swarm_device *d, size_t bytes)
{
	void *p = NULL;

	if (ctx_of(d)->capturing) {
		swarm_cuda_set_error("alloc_shared during graph capture");
		return NULL;
	}
	return swarm_cuda_share_alloc(ctx_of(d)->ordinal, bytes ? bytes : 1, &p) ? NULL : p;
}

static int cuda_export_shared(struct swarm_device *d, void *p, int *fd)
{
	(void)d;
	return swarm_cuda_share_export(p, fd);
}

static void *cuda_import_shared(struct swarm_device *d, int fd, size_t bytes)
{
	void *p = NULL;

	if (ctx_of(d)->capturing) {
		swarm_cuda_set_error("import_shared during graph capture");
		return NULL;
	}
	return swarm_cuda_share_import(ctx_of(d)->ordinal, fd, bytes, &p) ? NULL : p;
}

static int cuda_mem_info(struct swarm_device *d, uint64_t *free_bytes, uint64_t *total_bytes)
{
	size_t f = 0, t = 0;
	int rc = use_device(ctx_of(d));
	if (rc)
		return rc;
	CUDA_CHECK_RET(cudaMemGetInfo(&f, &t));
	*free_bytes = f;
	*total_bytes = t;
	return 0;
}

static void cuda_free_shared(struct swarm_device *d, void *p)
{
	if (p && ctx_of(d)->capturing) {
		swarm_cuda_set_error("free_shared of %p during graph capture: not freed", p);
		return;
	}
	(void)swarm_cuda_share_free(p);
}

static const struct swarm_device_i cuda_device_i = {
	.name = "cuda",
	.alloc = cuda_alloc,
	.free = cuda_free,
	.upload = cuda_upload,
	.download = cuda_download,
	.register_host = cuda_register_host,
	.unregister_host = cuda_unregister_host,
	.synchronize = cuda_synchronize,
	.supports_op = cuda_supports_op,
	.fuse_concat = NULL, /* every concat runs */
	.fuse_sum = NULL,    /* and every add */
	.run = cuda_run,
	.destroy = cuda_destroy,
	/* cuBLAS takes the weights as they are: nothing to prepare */
	.prepare = NULL,
	.release = NULL,
	.prep_bytes = NULL,
	.host_memory = 0,
	.capture_begin = cuda_capture_begin,
	.capture_end = cuda_capture_end,
	.replay = cuda_replay,
	.exec_free = cuda_exec_free,
	.upload_stream = cuda_upload_stream,
	.copy_d2d = cuda_copy_d2d,
	.upload_many = cuda_upload_many,
	.download_many = cuda_download_many,
	.alloc_shared = cuda_alloc_shared,
	.export_shared = cuda_export_shared,
	.import_shared = cuda_import_shared,
	.free_shared = cuda_free_shared,
	.mem_info = cuda_mem_info,
};

extern "C" const struct swarm_device_i *swarm_device_cuda_table(void) { return &cuda_device_i; }

extern "C" int swarm_device_cuda_create(int ordinal, struct swarm_device **out)
{
	struct swarm_device *d = NULL;
	struct swarm_cuda_ctx *c = NULL;
	const struct swarm_blas_api *api;
	void *host = NULL;
	int count = 0;
	int ret;

	swarm_cuda_clear_error();
	if (!out) {
		swarm_cuda_set_error("swarm_device_cuda_create: out is NULL");
		return -EINVAL;
	}
	*out = NULL;
	/* First, quietly: no driver or no GPU is an answer (-ENODEV with the runtime's reason),
	 * not a failure to print. */
	ret = swarm_cuda_device_count(&count);
	if (ret < 0)
		return ret;
	if (ordinal < 0 || ordinal >= count) {
		swarm_cuda_set_error("swarm_device_cuda_create: no GPU ordinal %d (%d GPU%s here)",
				     ordinal, count, count == 1 ? "" : "s");
		return -EINVAL;
	}
	ret = swarm_blas_load(); /* -ENODEV without cuBLAS, as without a driver */
	if (ret < 0)
		return ret;
	api = swarm_blas();
	d = (struct swarm_device *)calloc(1, sizeof(*d));
	c = (struct swarm_cuda_ctx *)calloc(1, sizeof(*c));
	if (!d || !c) {
		swarm_cuda_set_error("swarm_device_cuda_create: out of host memory");
		ret = -ENOMEM;
		goto err_free;
	}
	c->ordinal = ordinal;
	c->upload = (struct swarm_cuda_upload *)calloc(1, sizeof(*c->upload));
	if (!c->upload) {
		swarm_cuda_set_error("swarm_device_cuda_create: out of host memory");
		ret = -ENOMEM;
		goto err_free;
	}
	CUDA_CHECK(cudaSetDevice(ordinal), err_free);
	CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), err_release);
	ret = swarm_cuda_upload_init(c->upload);
	if (ret)
		goto err_release;
	ret = swarm_cuda_gather_init(c);
	if (ret)
		goto err_release;
	CUDA_CHECK(cudaMalloc((void **)&c->err_flag, sizeof(int)), err_release);
	CUDA_CHECK(cudaMallocHost(&host, sizeof(int)), err_release);
	c->err_host = (volatile int *)host;
	*c->err_host = 0;
	CUDA_CHECK(cudaMalloc(&c->blas_ws, SWARM_CUDA_BLAS_WS_BYTES), err_release);
	CUDA_CHECK(cudaMalloc(&c->lt_ws, SWARM_CUDA_LT_WS_BYTES), err_release);
	CUBLAS_CHECK(api->cublasCreate_v2(&c->blas), err_release);
	CUBLAS_CHECK(api->cublasSetStream_v2(c->blas, c->stream), err_release);
	/* A workspace of our own: cuBLAS then allocates nothing per call, which capture needs. */
	CUBLAS_CHECK(api->cublasSetWorkspace_v2(c->blas, c->blas_ws, SWARM_CUDA_BLAS_WS_BYTES),
		     err_release);
	/* No TF32 for f32 (the default; said here so that nobody has to look it up). */
	CUBLAS_CHECK(api->cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH), err_release);
	CUBLAS_CHECK(api->cublasLtCreate(&c->lt), err_release);
	CUDA_CHECK(cudaMemsetAsync(c->err_flag, 0, sizeof(int), c->stream), err_release);
	CUDA_CHECK(cudaStreamSynchronize(c->stream), err_release);
	d->i = &cuda_device_i;
	d->ctx = c;
	*out = d;
	return 0;

err_release:
	ctx_release(c);
err_free:
	if (c)
		free(c->upload); /* NULL when ctx_release has freed it */
	free(c);
	free(d);
	return ret;
}
