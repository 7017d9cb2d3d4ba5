/* cpu_device.c: the CPU device, the table of kernels/device.h over host memory. Device memory
 * is ordinary 64-byte-aligned heap memory, so upload and download are memcpy, there is nothing
 * to pin and every op runs synchronously in run(). The ops themselves live in ops.c; this file
 * holds the device's table and its table of kernels, one per op of kernels/op.h.
 */
#include "kernels/device.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/check.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"
#include "swarm/swarm.h"

/* kernels/cpu/simd.h: whether SWARM_CPU_MULTI functions take their AVX2+FMA build. Read once
 * before main; SWARM_CPU_BASELINE=1 keeps the baseline (the tests run both). */
int swarm_cpu_v3;

__attribute__((constructor)) static void cpu_v3_init(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	const char *base = getenv("SWARM_CPU_BASELINE");
	__builtin_cpu_init();
	swarm_cpu_v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       !(base && base[0] == '1');
#endif
}

/* Prepared weights live in slabs of transparent huge pages: a batch-1 model streams all its
 * weights from memory on every call, and on 4 KiB pages the hardware prefetchers stop at
 * every page boundary and the TLB misses every 4 KiB (measured: a chain of 24 MiniLM-sized
 * GEMMs 5 to 10% faster on huge pages). Packings are bump-allocated into 32 MiB slabs (one
 * of its own for a larger one); a slab goes back when its last packing is released and it
 * is not the one being filled. Its untouched tail costs address space, not memory. */
#define CPU_SLAB_BYTES ((size_t)32 << 20)
#define CPU_HUGE_PAGE ((size_t)2 << 20)

struct cpu_slab {
	struct cpu_slab *next;
	char *base; /* CPU_HUGE_PAGE-aligned */
	void *map;  /* what mmap returned, and its length */
	size_t len;
	size_t used, cap;
	uint32_t live; /* packings in it not yet released */
};

struct cpu_ctx {
	int threads;
	struct swarm_cpu_ws ws;    /* scratch reused across runs */
	pthread_mutex_t slab_lock; /* graphs may be built and freed off the serving thread */
	struct cpu_slab *slabs;    /* the first is the one being filled */
};

static struct cpu_slab *slab_new(size_t cap)
{
	struct cpu_slab *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->len = cap + CPU_HUGE_PAGE;
	s->map = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->map == MAP_FAILED) {
		free(s);
		return NULL;
	}
	s->base =
		(char *)(((uintptr_t)s->map + CPU_HUGE_PAGE - 1) & ~(uintptr_t)(CPU_HUGE_PAGE - 1));
	s->cap = cap;
	/* advice only: where the kernel gives no huge pages, 4 KiB pages do the same work */
	(void)madvise(s->base, cap, MADV_HUGEPAGE);
	return s;
}

static void slab_free(struct cpu_slab *s)
{
	munmap(s->map, s->len);
	free(s);
}

/* bytes (a multiple of 64) from the slab being filled, or from a new one. */
static void *slab_alloc(struct cpu_ctx *c, size_t bytes, struct cpu_slab **from)
{
	pthread_mutex_lock(&c->slab_lock);
	struct cpu_slab *s = c->slabs;
	if (bytes > CPU_SLAB_BYTES / 2) { /* a slab of its own, kept out of the filling one */
		s = slab_new((bytes + CPU_HUGE_PAGE - 1) & ~(CPU_HUGE_PAGE - 1));
		if (s) {
			s->next = c->slabs ? c->slabs->next : NULL;
			if (c->slabs)
				c->slabs->next = s;
			else
				c->slabs = s;
		}
	} else if (!s || s->cap - s->used < bytes) {
		s = slab_new(CPU_SLAB_BYTES);
		if (s) {
			struct cpu_slab *old = c->slabs;
			s->next = old;
			c->slabs = s;
			if (old && old->live == 0) { /* nothing in it: no reason to keep it */
				s->next = old->next;
				slab_free(old);
			}
		}
	}
	void *p = NULL;
	if (s) {
		p = s->base + s->used;
		s->used += bytes;
		s->live++;
		*from = s;
	}
	pthread_mutex_unlock(&c->slab_lock);
	return p;
}

static void slab_release(struct cpu_ctx *c, struct cpu_slab *s)
{
	pthread_mutex_lock(&c->slab_lock);
	if (--s->live == 0 && s != c->slabs) {
		for (struct cpu_slab **pp = &c->slabs; *pp; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				slab_free(s);
				break;
			}
	}
	pthread_mutex_unlock(&c->slab_lock);
}

static void *cpu_alloc(struct swarm_device *d, size_t bytes)
{
	(void)d;
	return swarm_cpu_alloc(bytes);
}

static void cpu_free(struct swarm_device *d, void *p)
{
	(void)d;
	free(p);
}

static int cpu_copy(struct swarm_device *d, void *dst, const void *src, size_t bytes)
{
	(void)d;
	if (bytes && (!dst || !src))
		return -EINVAL;
	if (bytes)
		memcpy(dst, src, bytes);
	return 0;
}

/* The CPU's float dtypes for the GEMM ops: f32 only (f16 and bf16 are CUDA's). */
#define CPU_FLOAT_DTYPES SWARM_DTYPE_BIT(SWARM_DTYPE_F32)

typedef int (*cpu_kernel_fn)(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			     const struct swarm_node_dims *d);

/* The CPU's kernel of each op of the op table (kernels/op.h); NULL: not on the CPU. */
static const cpu_kernel_fn cpu_kernels[SWARM_OP_COUNT] = {
	[SWARM_OP_IDENTITY] = swarm_cpu_identity,
	[SWARM_OP_LINEAR] = swarm_cpu_linear,
	[SWARM_OP_MATMUL] = swarm_cpu_matmul,
	[SWARM_OP_ADD] = swarm_cpu_binary,
	[SWARM_OP_MUL] = swarm_cpu_binary,
	[SWARM_OP_RELU] = swarm_cpu_unary,
	[SWARM_OP_GELU] = swarm_cpu_unary,
	[SWARM_OP_SIGMOID] = swarm_cpu_unary,
	[SWARM_OP_TANH] = swarm_cpu_unary,
	[SWARM_OP_SOFTMAX] = swarm_cpu_softmax,
	[SWARM_OP_LAYERNORM] = swarm_cpu_layernorm,
	[SWARM_OP_EMBEDDING] = swarm_cpu_embedding,
	[SWARM_OP_EMBEDDING_BAG] = swarm_cpu_embedding_bag,
	[SWARM_OP_CONCAT] = swarm_cpu_concat,
	[SWARM_OP_ATTENTION] = swarm_cpu_attention,
	[SWARM_OP_MEAN_POOL] = swarm_cpu_mean_pool,
	[SWARM_OP_L2NORM] = swarm_cpu_l2norm,
	[SWARM_OP_SUB] = swarm_cpu_binary,
	[SWARM_OP_DIV] = swarm_cpu_binary,
	[SWARM_OP_MAX] = swarm_cpu_binary,
	[SWARM_OP_MIN] = swarm_cpu_binary,
	[SWARM_OP_PRELU] = swarm_cpu_binary,
	[SWARM_OP_POW] = swarm_cpu_elementwise,
	[SWARM_OP_ERF] = swarm_cpu_elementwise,
	[SWARM_OP_EXP] = swarm_cpu_elementwise,
	[SWARM_OP_LOG] = swarm_cpu_elementwise,
	[SWARM_OP_SQRT] = swarm_cpu_elementwise,
	[SWARM_OP_HARDSIGMOID] = swarm_cpu_elementwise,
	[SWARM_OP_HARDSWISH] = swarm_cpu_elementwise,
	[SWARM_OP_LEAKY_RELU] = swarm_cpu_elementwise,
	[SWARM_OP_CLIP] = swarm_cpu_elementwise,
	[SWARM_OP_CONV2D] = swarm_cpu_conv2d,
	[SWARM_OP_CONV_TRANSPOSE2D] = swarm_cpu_conv_transpose2d,
	[SWARM_OP_MAX_POOL2D] = swarm_cpu_pool2d,
	[SWARM_OP_AVG_POOL2D] = swarm_cpu_pool2d,
	[SWARM_OP_GLOBAL_AVG_POOL] = swarm_cpu_global_avg_pool,
	[SWARM_OP_RESIZE] = swarm_cpu_resize,
	[SWARM_OP_BATCHNORM] = swarm_cpu_batchnorm,
	[SWARM_OP_REDUCE_MEAN] = swarm_cpu_reduce,
	[SWARM_OP_REDUCE_SUM] = swarm_cpu_reduce,
	[SWARM_OP_REDUCE_MAX] = swarm_cpu_reduce,
	[SWARM_OP_TRANSPOSE] = swarm_cpu_transpose,
	[SWARM_OP_RESHAPE] = swarm_cpu_reshape,
	[SWARM_OP_SLICE] = swarm_cpu_slice,
	[SWARM_OP_GATHER] = swarm_cpu_gather,
	[SWARM_OP_PAD] = swarm_cpu_pad,
	[SWARM_OP_CAST] = swarm_cpu_cast,
};

/* Op, input count and dtypes (the op table's rule, f32 for every float), and a kernel. */
static int cpu_supports_op(struct swarm_device *d, const struct swarm_node *n)
{
	(void)d;
	return n && n->op < SWARM_OP_COUNT && cpu_kernels[n->op] &&
	       swarm_node_supported(n, CPU_FLOAT_DTYPES);
}

/* A concat fused into a conv: the direct conv reads each channel's plane from its part. */
static int cpu_fuse_concat(struct swarm_device *d, const struct swarm_node *n)
{
	return cpu_supports_op(d, n) && swarm_cpu_conv_takes_parts(n);
}

/* Whether n's kernel adds n->sum to its output while it is in cache: a conv's (on the tile or
 * the row, after the activation; not a depthwise conv's), a binary op's (on each run of the
 * broadcast) and a resize's (on each output row). Shapes only. */
static bool takes_sum(const struct swarm_node *n)
{
	const struct swarm_tensor *z = n->sum, *o = n->out;
	if (!z || !o || n->op >= SWARM_OP_COUNT)
		return false;
	if (n->op == SWARM_OP_CONV2D)
		return swarm_cpu_conv_takes_sum(n);
	return (cpu_kernels[n->op] == swarm_cpu_binary || n->op == SWARM_OP_RESIZE) &&
	       o->dtype == SWARM_DTYPE_F32 && z->dtype == SWARM_DTYPE_F32 && z->ndim == o->ndim &&
	       memcmp(z->shape, o->shape, o->ndim * sizeof o->shape[0]) == 0;
}

/* An ADD fused into the node that makes one of its operands (takes_sum). */
static int cpu_fuse_sum(struct swarm_device *d, const struct swarm_node *n)
{
	return cpu_supports_op(d, n) && takes_sum(n) &&
	       (!n->n_parts || swarm_cpu_conv_takes_parts(n));
}

/* Checks the node against the op table (kernels/check.h), then runs its kernel. A node with
 * parts is checked with its input 0 as if stored (the parts are checked apart); its sum, as
 * the output's twin. */
static int cpu_run(struct swarm_device *d, const struct swarm_node *n)
{
	struct swarm_node_dims dims;
	if (!d || !n || !n->out || n->n_in > SWARM_NODE_MAX_INPUTS ||
	    n->n_parts > SWARM_NODE_MAX_PARTS)
		return -EINVAL;
	if (n->op >= SWARM_OP_COUNT || !cpu_kernels[n->op])
		return -ENOTSUP;
	if (n->sum && (!takes_sum(n) || (!n->sum->data && swarm_tensor_elems(n->sum) > 0)))
		return -EINVAL;
	/* with parts, input 0 is checked with the first part's storage in place of its own */
	const struct swarm_node *checked = n;
	struct swarm_node c;
	struct swarm_tensor x;
	if (n->n_parts) {
		if (!swarm_cpu_conv_takes_parts(n))
			return -EINVAL;
		for (uint32_t i = 0; i < n->n_parts; i++)
			if (!n->parts[i]->data && swarm_tensor_elems(n->parts[i]) > 0)
				return -EINVAL;
		x = *n->in[0];
		x.data = n->parts[0]->data;
		c = *n;
		c.in[0] = &x;
		checked = &c;
	}
	if (swarm_node_check(checked, CPU_FLOAT_DTYPES, &dims))
		return -EINVAL;
	return cpu_kernels[n->op](&((struct cpu_ctx *)d->ctx)->ws, n, &dims);
}

/* A constant weight in the form the GEMM reads, once: LINEAR's W packed into the GEMM's
 * panels (gemm.h), CONV_TRANSPOSE2D's W transposed per group (its A). */
static int cpu_prepare(struct swarm_device *d, const struct swarm_node *n, uint32_t consts,
		       void **prep)
{
	*prep = NULL;
	const struct swarm_tensor *w = n->in[1];
	const int64_t G = n->p.group ? n->p.group : 1;
	const struct swarm_tensor *x = n->in[0];
	/* a 1x1 conv of a 1x1 image (a squeeze-excite block's): a LINEAR of its batch's rows */
	const bool pointwise = n->op == SWARM_OP_CONV2D && w->ndim == 4 && w->shape[2] == 1 &&
			       w->shape[3] == 1 && G == 1 && x->ndim == 4 &&
			       x->shape[2] * x->shape[3] == 1;
	const bool lin = (n->op == SWARM_OP_LINEAR && w->ndim == 2) || pointwise;
	const bool ct = n->op == SWARM_OP_CONV_TRANSPOSE2D && w->ndim == 4;
	if (!(consts & 2u) || w->dtype != SWARM_DTYPE_F32)
		return 0;
	int64_t k, rows; /* the stored matrix's columns and rows */
	size_t floats;
	/* a depthwise or direct conv: its weights as its kernel reads them, in place of the
	 * copy each call would make */
	const int conv = lin || ct ? 0 : swarm_cpu_conv_weight_layout(n, &k, &rows, &floats);
	if (!(lin || ct || conv))
		return 0;
	if (lin) {
		rows = w->shape[0], k = w->shape[1];
		floats = swarm_gemm_packed_floats(k, rows);
		if (floats == 0 && k > 0 && rows > 0)
			return -ENOMEM;
	} else if (ct) {
		const int64_t elems = swarm_tensor_elems(w), C = w->shape[0];
		if (elems <= 0 || C % G != 0)
			return 0; /* nothing to gain, or a node run() refuses anyway */
		k = C / G, rows = elems / k;
		floats = (size_t)elems;
	}
	struct cpu_slab *slab = NULL;
	const size_t bytes = (sizeof(struct swarm_cpu_packed) + floats * sizeof(float) + 63) &
			     ~(size_t)63;
	struct swarm_cpu_packed *pk = slab_alloc(d->ctx, bytes, &slab);
	if (!pk)
		return -ENOMEM;
	pk->k = k;
	pk->n = rows;
	pk->slab = slab;
	pk->bytes = bytes;
	pk->layout = conv ? conv : lin ? SWARM_CPU_PACK_GEMM : SWARM_CPU_PACK_CT;
	if (conv)
		swarm_cpu_conv_weights(pk->b, n, conv);
	else if (lin)
		swarm_gemm_pack_wt(pk->b, w->data, rows, k, k);
	else
		swarm_cpu_conv_transpose_weights(pk->b, w->data, w->shape[0], rows / G, G);
	*prep = pk;
	return 0;
}

static void cpu_release(struct swarm_device *d, void *prep)
{
	if (prep)
		slab_release(d->ctx, ((struct swarm_cpu_packed *)prep)->slab);
}

/* What a packing takes of its slab. A slab's untouched tail is address space, not memory
 * (above), so it is not counted. */
static size_t cpu_prep_bytes(struct swarm_device *d, const void *prep)
{
	(void)d;
	return prep ? (size_t)((const struct swarm_cpu_packed *)prep)->bytes : 0;
}

static void cpu_destroy(struct swarm_device *d)
{
	if (!d)
		return;
	struct cpu_ctx *c = d->ctx;
	if (c) {
		swarm_cpu_ws_free(&c->ws);
		/* every graph on the device is freed first; what is left is the filling slab */
		while (c->slabs) {
			struct cpu_slab *s = c->slabs;
			c->slabs = s->next;
			slab_free(s);
		}
		pthread_mutex_destroy(&c->slab_lock);
	}
	free(c);
	free(d);
}

static const struct swarm_device_i cpu_device_i = {
	.name = "cpu",
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.register_host = NULL,
	.unregister_host = NULL,
	.synchronize = NULL,
	.supports_op = cpu_supports_op,
	.fuse_concat = cpu_fuse_concat,
	.fuse_sum = cpu_fuse_sum,
	.run = cpu_run,
	.destroy = cpu_destroy,
	.prepare = cpu_prepare,
	.release = cpu_release,
	.prep_bytes = cpu_prep_bytes,
	.host_memory = 1,
	/* the weights are the page cache's mapping: nothing to share on the device */
	.alloc_shared = NULL,
	.export_shared = NULL,
	.import_shared = NULL,
	.free_shared = NULL,
	.mem_info = NULL, /* host memory: budgeted from the NUMA node */
};

int swarm_device_cpu_create(int threads, struct swarm_device **out)
{
	if (!out || threads < 1)
		return -EINVAL;
	struct swarm_device *d = calloc(1, sizeof(*d));
	if (!d)
		goto err;
	struct cpu_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		goto err_free_dev;
	c->threads = threads;
	c->ws.threads = threads;
	pthread_mutex_init(&c->slab_lock, NULL);
	d->i = &cpu_device_i;
	d->ctx = c;
	*out = d;
	return 0;

err_free_dev:
	free(d);
err:
	return -ENOMEM;
}
