/* device.h: the device interface, in the spirit of ggml's backends. One table of functions per
 * implementation (kernels/cpu/, kernels/cuda/); the executor and the worker call only this and
 * never include a CUDA header.
 *
 * Tensors are dense, row-major, contiguous, and carry their shape. Every op checks the dtypes
 * and shapes it is given against its contract below and returns -EINVAL (never reading or
 * writing out of bounds) when they do not fit; index inputs (embedding ids, bag offsets) are
 * checked against the table too, since they may come from a client.
 *
 * The ops (f32 unless said; "[.., D]" means any leading dims; the rules in full, shapes and
 * dtypes, are the op table's: kernels/op.c, and docs/graph.md):
 *   IDENTITY       out = in[0]
 *   LINEAR         in: X [.., K], W [N, K] (PyTorch's layout), bias [N] (optional, n_in 3)
 *                  out [.., N] = X W^T + bias; p.act fuses an activation into the same pass
 *   MATMUL         in: A [.., M, K], B [.., K, N] with the same leading dims; out [.., M, N]
 *   ADD, MUL, SUB, DIV, MAX, MIN   A, B broadcast as numpy does; out the broadcast shape
 *   POW            x ^ p.exponent, elementwise
 *   PRELU          in: X, slope broadcast to X; out = x >= 0 ? x : slope * x
 *   RELU, GELU (erf form), SIGMOID, TANH, ERF, EXP, LOG, SQRT, HARDSWISH   elementwise
 *   HARDSIGMOID    max(0, min(1, p.alpha * x + p.beta))
 *   LEAKY_RELU     x >= 0 ? x : p.alpha * x
 *   CLIP           min(max(x, p.alpha), p.beta) (relu6: 0, 6)
 *   SOFTMAX        over the last dim
 *   LAYERNORM      in: X [.., D], gamma [D], beta [D]; p.eps
 *   BATCHNORM      in: X [N, C, ..], scale, bias, mean, var [C]; p.eps (inference form)
 *   EMBEDDING      in: table [V, D], ids [..] (i32 or i64); out [.., D]
 *   EMBEDDING_BAG  in: table [V, D], ids [L] (i32 or i64), offsets [B] (i32 or i64, the
 *                  first index of each bag, ascending, offsets[0] == 0); out [B, D];
 *                  p.bag_mode SUM or MEAN (an empty bag gives zeros)
 *   CONCAT         in: n tensors equal but on dim p.axis; out joins them on it
 *   ATTENTION      in: Q, K, V [B, S, H * Dh], mask [B, S] (f32, 1 keep, 0 padding;
 *                  optional, n_in 4); p.heads = H; out [B, S, H * Dh] =
 *                  softmax(Q K^T / sqrt(Dh) + (mask ? 0 : -inf-like)) V per head
 *   MEAN_POOL      in: X [B, S, D], mask [B, S] (f32, 1 keep, 0 padding); out [B, D] (a row
 *                  with no kept token gives zeros)
 *   L2NORM         over the last dim: x / max(||x||, p.eps)
 *   CONV2D         in: X [N, C, H, W], W [M, C / group, kh, kw], bias [M] (optional); p.stride,
 *                  p.dilation, p.pads (top, left, bottom, right), p.group, p.act
 *   CONV_TRANSPOSE2D  in: X [N, C, H, W], W [C, M / group, kh, kw], bias [M]; as CONV2D, and
 *                  p.out_pad
 *   MAX_POOL2D, AVG_POOL2D  in: X [N, C, H, W]; p.kernel, p.stride, p.dilation, p.pads,
 *                  p.ceil_mode, p.count_include_pad (AVG)
 *   GLOBAL_AVG_POOL  [N, C, H, W] to [N, C, 1, 1]
 *   RESIZE         [N, C, H, W] to [N, C, H', W'], nearest or bilinear (p.mode), p.coord,
 *                  p.nearest; H', W' from p.sizes or floor(H * p.scales)
 *   REDUCE_MEAN, REDUCE_SUM, REDUCE_MAX  over the dims of p.axes, p.keepdims
 *   TRANSPOSE      dims in the order p.perm
 *   RESHAPE        the same elements as p.shape (a copy on a device; the graph executor
 *                  makes it a view and copies nothing)
 *   SLICE          per dim of p.axes: p.starts, p.ends, p.steps (numpy's, negative from the
 *                  end, clamped)
 *   GATHER         in: data, indices (i32 or i64); rows of data on dim p.axis
 *   PAD            p.pads (begins, then ends, per dim), p.mode constant (p.value), reflect or
 *                  edge
 *   CAST           any float dtype to p.to (f32, f16, bf16)
 * f16 and bf16 are CUDA-only, for the GEMM-heavy ops (LINEAR, MATMUL, ATTENTION), and CAST's.
 */
#ifndef SWARM_KERNELS_DEVICE_H
#define SWARM_KERNELS_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#define SWARM_TENSOR_MAX_DIMS 6
#define SWARM_NODE_MAX_INPUTS 8
#define SWARM_NODE_MAX_PARTS 8 /* a fused concat's inputs (struct swarm_node) */

enum swarm_op {
	SWARM_OP_IDENTITY = 0,
	SWARM_OP_LINEAR,
	SWARM_OP_MATMUL,
	SWARM_OP_ADD,
	SWARM_OP_MUL,
	SWARM_OP_RELU,
	SWARM_OP_GELU,
	SWARM_OP_SIGMOID,
	SWARM_OP_TANH,
	SWARM_OP_SOFTMAX,
	SWARM_OP_LAYERNORM,
	SWARM_OP_EMBEDDING,
	SWARM_OP_EMBEDDING_BAG,
	SWARM_OP_CONCAT,
	SWARM_OP_ATTENTION,
	SWARM_OP_MEAN_POOL,
	SWARM_OP_L2NORM,
	/* elementwise */
	SWARM_OP_SUB,
	SWARM_OP_DIV,
	SWARM_OP_MAX,
	SWARM_OP_MIN,
	SWARM_OP_POW,
	SWARM_OP_PRELU,
	SWARM_OP_ERF,
	SWARM_OP_EXP,
	SWARM_OP_LOG,
	SWARM_OP_SQRT,
	SWARM_OP_HARDSIGMOID,
	SWARM_OP_HARDSWISH,
	SWARM_OP_LEAKY_RELU,
	SWARM_OP_CLIP,
	/* vision */
	SWARM_OP_CONV2D,
	SWARM_OP_CONV_TRANSPOSE2D,
	SWARM_OP_MAX_POOL2D,
	SWARM_OP_AVG_POOL2D,
	SWARM_OP_GLOBAL_AVG_POOL,
	SWARM_OP_RESIZE,
	SWARM_OP_BATCHNORM,
	/* reductions */
	SWARM_OP_REDUCE_MEAN,
	SWARM_OP_REDUCE_SUM,
	SWARM_OP_REDUCE_MAX,
	/* layout */
	SWARM_OP_TRANSPOSE,
	SWARM_OP_RESHAPE,
	SWARM_OP_SLICE,
	SWARM_OP_GATHER,
	SWARM_OP_PAD,
	SWARM_OP_CAST,
	SWARM_OP_COUNT,
};

enum swarm_bag_mode {
	SWARM_BAG_SUM = 0,
	SWARM_BAG_MEAN = 1
};
enum swarm_pad_mode {
	SWARM_PAD_CONSTANT = 0,
	SWARM_PAD_REFLECT = 1,
	SWARM_PAD_EDGE = 2
};
enum swarm_resize_mode {
	SWARM_RESIZE_NEAREST = 0,
	SWARM_RESIZE_LINEAR = 1
};
/* How an output coordinate maps to an input one (ONNX's coordinate_transformation_mode). */
enum swarm_resize_coord {
	SWARM_COORD_HALF_PIXEL = 0,         /* (x + 0.5) / scale - 0.5 */
	SWARM_COORD_ASYMMETRIC = 1,         /* x / scale */
	SWARM_COORD_ALIGN_CORNERS = 2,      /* x * (in - 1) / (out - 1) */
	SWARM_COORD_PYTORCH_HALF_PIXEL = 3, /* half_pixel, but 0 where out is 1 */
};
/* How nearest rounds a fractional input coordinate (ONNX's nearest_mode). */
enum swarm_resize_nearest {
	SWARM_NEAREST_ROUND_PREFER_FLOOR = 0,
	SWARM_NEAREST_ROUND_PREFER_CEIL = 1,
	SWARM_NEAREST_FLOOR = 2,
	SWARM_NEAREST_CEIL = 3,
};

struct swarm_tensor {
	void *data;     /* device memory of the device that runs the op */
	uint32_t dtype; /* a swarm_dtype */
	uint32_t ndim;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
};

/* An op's parameters: those an op does not take stay zero (the op table, kernels/op.h, says
 * which it takes). Lists are by dim of the input unless said. */
struct swarm_op_params {
	uint32_t act;       /* LINEAR, CONV2D, CONV_TRANSPOSE2D: an activation op fused after it
			     * (RELU, GELU, SIGMOID, TANH, HARDSIGMOID, HARDSWISH, LEAKY_RELU,
			     * CLIP, with alpha and beta as that op's), or SWARM_OP_IDENTITY */
	uint32_t bag_mode;  /* EMBEDDING_BAG */
	uint32_t heads;     /* ATTENTION */
	float eps;          /* LAYERNORM (default 1e-5 when 0), L2NORM (1e-12), BATCHNORM (1e-5) */
	float alpha, beta;  /* LEAKY_RELU's alpha; HARDSIGMOID's alpha and beta; CLIP's min and
			     * max; a fused act's */
	float exponent;     /* POW */
	float value;        /* PAD: the constant */
	int32_t axis;       /* CONCAT, GATHER: the dim (negative: from the end) */
	uint32_t axes;      /* REDUCE_*, SLICE: a bit per dim */
	uint32_t keepdims;  /* REDUCE_*: 1 keeps each reduced dim as 1 */
	uint32_t mode;      /* PAD: an enum swarm_pad_mode; RESIZE: an enum swarm_resize_mode */
	uint32_t coord;     /* RESIZE: an enum swarm_resize_coord */
	uint32_t nearest;   /* RESIZE: an enum swarm_resize_nearest */
	uint32_t to;        /* CAST: the swarm_dtype it makes */
	uint32_t group;     /* CONV2D, CONV_TRANSPOSE2D: 0 means 1 */
	uint32_t ceil_mode; /* MAX_POOL2D, AVG_POOL2D */
	uint32_t count_include_pad; /* AVG_POOL2D */
	int32_t kernel[2];          /* MAX_POOL2D, AVG_POOL2D: kh, kw */
	int32_t stride[2];          /* conv and pools: 0 means 1 */
	int32_t dilation[2];        /* conv and pools: 0 means 1 */
	int32_t out_pad[2];         /* CONV_TRANSPOSE2D: extra rows and columns at the end */
	float scales[2];            /* RESIZE: H and W */
	int64_t sizes[2];           /* RESIZE: H' and W' (0: floor(H * scales[0]), ...) */
	uint32_t n_pads; /* conv and pools: 4 (top, left, bottom, right); PAD: 2 * ndim */
	int64_t pads[2 * SWARM_TENSOR_MAX_DIMS]; /* PAD: every dim's begin, then every end */
	uint32_t n_shape;                     /* RESHAPE: the dims of shape; TRANSPOSE: of perm */
	int64_t shape[SWARM_TENSOR_MAX_DIMS]; /* RESHAPE: out's shape, dim 0 -1 for the batch */
	int64_t perm[SWARM_TENSOR_MAX_DIMS];  /* TRANSPOSE: out dim i is in dim perm[i] */
	int64_t starts[SWARM_TENSOR_MAX_DIMS], ends[SWARM_TENSOR_MAX_DIMS],
		steps[SWARM_TENSOR_MAX_DIMS]; /* SLICE, for the dims of axes */
};

struct swarm_node {
	uint32_t op; /* an enum swarm_op */
	uint32_t n_in;
	const struct swarm_tensor *in[SWARM_NODE_MAX_INPUTS];
	struct swarm_tensor *out; /* shape and storage set by the caller */
	struct swarm_op_params p;
	/* What the device's prepare made of the node's weights (the CPU's packed GEMM operand),
	 * or NULL: run() works from in[] alone then. */
	const void *prep;
	/* A concat fused into the node by the graph executor, where the device's fuse_concat
	 * took it (0 otherwise): in[0] then has its shape but no storage (data NULL), and is
	 * parts[0..n_parts) concatenated along dim 1, each part of in[0]'s shape but for dim 1. */
	uint32_t n_parts;
	const struct swarm_tensor *parts[SWARM_NODE_MAX_PARTS];
	/* An ADD fused into the node by the graph executor, where the device's fuse_sum took it
	 * (NULL otherwise): a tensor of out's shape added to the output after the activation,
	 * out = act(op(in)) + sum. */
	const struct swarm_tensor *sum;
};

struct swarm_device;

/* One piece of a many-piece copy (upload_many, download_many): bytes from src to dst, one of
 * them host memory and the other the device's. */
struct swarm_copy {
	void *dst;
	const void *src;
	size_t bytes;
};

/* Bytes a fill's chunk holds beyond the len it is asked for: room to widen a read to 4 KiB
 * boundaries (an O_DIRECT read). */
#define SWARM_UPLOAD_FILL_SLACK 8192u

/* Where upload_stream reads from. */
struct swarm_upload_src {
	/* The bytes in host memory (pageable: an mmap'd blob): memcpy'd from when fill is NULL,
	 * DMA'd from with register_host. May be NULL when fill is set and register_host is 0. */
	const void *host;
	/* Fills chunk (pinned, 4 KiB-aligned, cap >= len + SWARM_UPLOAD_FILL_SLACK bytes) with
	 * the source's bytes at [base + off, base + off + len), placed at chunk + *start (set
	 * *start, at most SWARM_UPLOAD_FILL_SLACK / 2; 0 when they start at chunk); off counts
	 * from the copy's first byte. Called on the calling thread, in increasing off, once per
	 * chunk, while the copies of the earlier chunks run. Returns 0 or -errno, which stops
	 * the upload and is its result. NULL: memcpy from host + off. */
	int (*fill)(void *ctx, void *chunk, size_t cap, uint64_t off, size_t len, size_t *start);
	void *ctx;     /* fill's */
	uint64_t base; /* added to fill's off: where the copy starts in fill's source */
	/* 1: no staging: host is registered read-only (cudaHostRegisterReadOnly) for the copy,
	 * DMA'd from, and unregistered before return; fill is not called. */
	int register_host;
};

/* One implementation. Optional members say what NULL means. */
struct swarm_device_i {
	const char *name; /* "cpu", "cuda" */
	/* device memory: NULL on failure; 64-byte aligned at least */
	void *(*alloc)(struct swarm_device *d, size_t bytes);
	void (*free)(struct swarm_device *d, void *p);
	/* host to device and back; the CPU's are memcpy */
	int (*upload)(struct swarm_device *d, void *dst, const void *src, size_t bytes);
	int (*download)(struct swarm_device *d, void *dst, const void *src, size_t bytes);
	/* pins host memory for DMA (cudaHostRegister); NULL: nothing to do (CPU) */
	int (*register_host)(struct swarm_device *d, void *p, size_t bytes);
	int (*unregister_host)(struct swarm_device *d, void *p);
	/* waits for everything queued; NULL: ops run synchronously (CPU) */
	int (*synchronize)(struct swarm_device *d);
	/* 1 when run() takes this node (op and dtypes), else 0; shapes are run()'s to check */
	int (*supports_op)(struct swarm_device *d, const struct swarm_node *n);
	/* 1 when run() takes node n with its input 0 in parts (n_parts and parts set: a concat
	 * along dim 1 that the graph executor then neither runs nor stores), else 0. NULL:
	 * never (every concat runs). */
	int (*fuse_concat)(struct swarm_device *d, const struct swarm_node *n);
	/* 1 when run() takes node n with n->sum set (an ADD of its output and a tensor computed
	 * before it, which the graph executor then does not run), else 0. NULL: never. */
	int (*fuse_sum)(struct swarm_device *d, const struct swarm_node *n);
	/* runs one node; returns 0, -EINVAL (shapes or dtypes), -ENOTSUP. On an asynchronous
	 * device (synchronize != NULL) run() checks everything it can on the host and queues
	 * the work; an index input that is out of range (its values live in device memory) is
	 * found on the device, the node then writes nothing, and the next synchronize returns
	 * -EINVAL. */
	int (*run)(struct swarm_device *d, const struct swarm_node *n);
	void (*destroy)(struct swarm_device *d);
	/* Prepares a node's weights once, when a graph is built: bit j of consts is set when
	 * in[j] is a weight that keeps its data for the graph's life. May set *prep to memory of
	 * its own that run() then finds in n->prep (the CPU packs LINEAR's weight into its GEMM's
	 * panels, as ONNX Runtime pre-packs at load); returns 0, also when it prepares nothing,
	 * or -errno (-ENOMEM), which fails the build. release frees a *prep that prepare set.
	 * Both NULL: nothing is prepared and run() reads the weights as they are. */
	int (*prepare)(struct swarm_device *d, const struct swarm_node *n, uint32_t consts,
		       void **prep);
	void (*release)(struct swarm_device *d, void *prep);
	/* The bytes of device memory a *prep from prepare holds (the CPU's packing, header and
	 * rounding included), which the graph sums for a version's memory cost
	 * (swarm_graph_prepared_bytes, docs/placement.md). NULL: a device whose prepare keeps
	 * nothing, or none: counted 0. */
	size_t (*prep_bytes)(struct swarm_device *d, const void *prep);
	/* 1 when device memory is host memory (the CPU): the graph executor then binds the
	 * caller's input and output buffers directly; 0: it stages them through device buffers
	 * with upload and download. */
	int host_memory;
	/* Graph capture (CUDA graphs), all NULL where the device has none. Between
	 * capture_begin and capture_end, run(), upload and download are recorded, not run;
	 * capture_end returns an executable that replay() runs with one launch, with the same
	 * pointers and shapes as were captured. exec_free releases it. */
	int (*capture_begin)(struct swarm_device *d);
	int (*capture_end)(struct swarm_device *d, void **exec);
	int (*replay)(struct swarm_device *d, void *exec);
	void (*exec_free)(struct swarm_device *d, void *exec);
	/* Copies bytes from a large source in host memory that is not pinned (an mmap'd
	 * weights blob, gigabytes; see struct swarm_upload_src) to device memory at the speed of
	 * the link: staged through pinned chunks the device allocated once, on two or more
	 * streams, filling the next chunk while the last ones are copied; or, with
	 * src->register_host, DMA'd from src->host itself. Synchronous: the bytes are on the
	 * device when it returns 0. Returns 0, -EINVAL (NULL dst or src, no host and no fill,
	 * during capture), -ENOTSUP (register_host where the device cannot register read-only
	 * memory), the fill's error, or the device's. Writes the achieved GB/s to *gbps when
	 * not NULL (0 on failure). NULL: the caller uses upload. */
	int (*upload_stream)(struct swarm_device *d, void *dst, const struct swarm_upload_src *src,
			     size_t bytes, double *gbps);
	/* Copies bytes from device memory to device memory (dst or src may be another
	 * process's allocation opened through CUDA IPC), queued on the device's stream after
	 * everything before it; done once synchronize() has returned 0. Recorded, not run,
	 * during capture. NULL: the device has no memory of its own to copy (the CPU). */
	int (*copy_d2d)(struct swarm_device *d, void *dst, const void *src, size_t bytes);
	/* Queues n host-to-device (upload_many) or device-to-host (download_many) copies, one
	 * per piece, on the device's stream after everything before it, and returns: the bytes
	 * have landed once synchronize() has returned 0, and until then the host side must stay
	 * as it is (unlike upload, upload_many does not wait). For a batch gathered from many
	 * sessions' slots: the host side is ideally memory pinned with register_host (DMA, or
	 * read and written in place by a gather kernel); other host memory is still copied,
	 * more slowly. Pieces must not overlap on the device side. Returns 0, -EINVAL (a NULL
	 * pointer with bytes, n with no c) or the first failure's errno, after which the pieces
	 * may be done in part. Not for use during capture. NULL: the caller copies piece by
	 * piece with upload and download (the graph executor does). */
	int (*upload_many)(struct swarm_device *d, const struct swarm_copy *c, uint32_t n);
	int (*download_many)(struct swarm_device *d, const struct swarm_copy *c, uint32_t n);
	/* Shareable device memory, for weights that workers on one GPU map once instead of
	 * loading twice (docs/devices.md, "Shared weights"). All NULL where the device has none
	 * (the CPU, whose weights are the page cache's one mapping already).
	 * alloc_shared: like alloc (NULL on failure), but another process may map it;
	 * export_shared: a new fd for p (from alloc_shared or import_shared), the caller's to
	 * send and close; returns 0 or -errno;
	 * import_shared: maps bytes of the allocation behind another process's fd (fd stays
	 * open), NULL when the fd is bad, the memory is on another GPU or smaller than bytes;
	 * free_shared: unmaps p from either and drops this process's reference; the memory goes
	 * when every process that maps it has, so an exporter may free or die first. */
	void *(*alloc_shared)(struct swarm_device *d, size_t bytes);
	int (*export_shared)(struct swarm_device *d, void *p, int *fd);
	void *(*import_shared)(struct swarm_device *d, int fd, size_t bytes);
	void (*free_shared)(struct swarm_device *d, void *p);
	/* The device's own memory now: *free_bytes free of *total_bytes (a GPU's
	 * cudaMemGetInfo); 0 or -errno. NULL for a device whose memory is the host's (the
	 * CPU): its budget comes from the NUMA node (docs/placement.md). */
	int (*mem_info)(struct swarm_device *d, uint64_t *free_bytes, uint64_t *total_bytes);
};

struct swarm_device {
	const struct swarm_device_i *i;
	void *ctx;
};

/* The CPU device: every op in C (kernels/cpu/; its GEMMs a packed kernel of its own, LINEAR's
 * weights packed once by prepare), threads (1 or more: the large GEMMs split over them) on the
 * cores the calling process is bound to. Returns 0 or -errno. */
int swarm_device_cpu_create(int threads, struct swarm_device **out);

/* The CUDA device on GPU ordinal: one context, one non-blocking stream and one cuBLAS/cuBLASLt
 * handle, all its ops queued on that stream. Declared in every build: without CUDA built in
 * it returns -ENOTSUP. Returns 0, -ENODEV (no usable GPU, driver or cuBLAS; why is in
 * swarm_cuda_last_error()), -EINVAL (no such ordinal, or out is NULL), -ENOMEM or -EIO; *out is
 * NULL on failure. See docs/devices.md. */
int swarm_device_cuda_create(int ordinal, struct swarm_device **out);

/* The CUDA device's table, the one swarm_device_cuda_create hands out, so that a machine with
 * no GPU can still check which members it implements; NULL without CUDA built in. Calling its
 * members needs a device from swarm_device_cuda_create. */
const struct swarm_device_i *swarm_device_cuda_table(void);

/* Name of an op ("linear"), NULL when out of range; and the op of a name, -1 when unknown. */
const char *swarm_op_name(uint32_t op);
int swarm_op_from_name(const char *name);

/* Elements of a tensor (the product of its shape), or -1 on overflow. */
int64_t swarm_tensor_elems(const struct swarm_tensor *t);

#endif /* SWARM_KERNELS_DEVICE_H */
