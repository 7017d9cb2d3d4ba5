/* gather.cu: upload_many and download_many of the CUDA device, for a batch whose requests sit
 * in many sessions' slots (kernels/graph.c swarm_graph_run_parts): each piece is one request's
 * rows of one tensor, and its host side is a slot in a segment the worker pinned at attach.
 *
 * Two strategies (gather.h), both queued on the device's one stream and done at synchronize:
 *   copies: DMA, one copy a piece after merging adjacent pieces; cudaMemcpyBatchAsync (CUDA
 *           13 headers on) hands the driver a whole batch in one call, where per-piece
 *           cudaMemcpyAsync pays a call and a DMA setup each;
 *   kernel: one launch moves up to SWARM_CUDA_GATHER_MAX_PIECES pieces, its threads reading
 *           (writing) the slots through their mapping over the link, 16 bytes at a time where
 *           both sides allow it. Small pieces cost a few cache lines each instead of a DMA
 *           setup each; which wins is measured by bench/gpu_gather_bench.c.
 * The kernel can only reach host memory that was registered (its mapping); every other piece
 * is copied as in the copies strategy, so unregistered memory still works, more slowly.
 */
#include "gather.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the registered-region table ------------------------------------------------------------ */

int swarm_cuda_gather_init(struct swarm_cuda_ctx *c)
{
	struct swarm_cuda_gather *g =
		(struct swarm_cuda_gather *)calloc(1, sizeof(struct swarm_cuda_gather));
	const char *env = getenv("SWARM_CUDA_GATHER");

	if (!g) {
		swarm_cuda_set_error("swarm_device_cuda_create: out of host memory");
		return -ENOMEM;
	}
	g->mode = SWARM_CUDA_GATHER_COPIES;
	if (env && swarm_cuda_gather_mode_from_name(env) >= 0)
		g->mode = swarm_cuda_gather_mode_from_name(env);
	c->gather = g;
	return 0;
}

void swarm_cuda_gather_release(struct swarm_cuda_ctx *c)
{
	if (!c->gather)
		return;
	free(c->gather->regions);
	free(c->gather);
	c->gather = NULL;
}

void swarm_cuda_gather_note_register(struct swarm_cuda_ctx *c, void *p, size_t bytes, int read_only)
{
	struct swarm_cuda_gather *g = c->gather;
	void *dev = NULL;

	if (g->n == g->cap) {
		uint32_t cap = g->cap ? 2 * g->cap : 16;
		void *r = realloc(g->regions, cap * sizeof(*g->regions));
		if (!r)
			return;
		g->regions = (struct swarm_cuda_host_region *)r;
		g->cap = cap;
	}
	/* The device's address of the range, always asked for: it equals p only where every
	 * visible GPU can use host pointers for registered memory, and a range registered
	 * without a mapping (or on a platform that maps none) has no device address at all.
	 * Such a range is copied, never read or written by a kernel. */
	cudaError_t err = cudaHostGetDevicePointer(&dev, p, 0);
	if (err != cudaSuccess) {
		dev = NULL;
		if (!g->unmapped_said) {
			fprintf(stderr,
				"swarm: cuda: cudaHostGetDevicePointer(%p) of a registered range "
				"failed: %s (%s); the gather kernel copies such ranges instead\n",
				p, cudaGetErrorString(err), cudaGetErrorName(err));
			g->unmapped_said = 1;
		}
	}
	(void)cudaGetLastError();
	g->regions[g->n++] =
		(struct swarm_cuda_host_region){ (char *)p, bytes, (char *)dev, read_only };
}

void swarm_cuda_gather_note_unregister(struct swarm_cuda_ctx *c, void *p)
{
	struct swarm_cuda_gather *g = c->gather;

	for (uint32_t i = 0; i < g->n; i++)
		if (g->regions[i].host == (char *)p) {
			g->regions[i] = g->regions[--g->n];
			return;
		}
}

/* The device's address of [p, p + bytes) of host memory, or NULL where no registered region
 * holds it all (or the kernel would write one registered read-only). */
static char *device_view(const struct swarm_cuda_gather *g, const void *p, size_t bytes, int write)
{
	const uintptr_t h = (uintptr_t)p;

	/* Addresses as integers: p may lie in no region at all. */
	for (uint32_t i = 0; i < g->n; i++) {
		const struct swarm_cuda_host_region *r = &g->regions[i];
		const uintptr_t base = (uintptr_t)r->host;
		if (h >= base && bytes <= r->bytes && h - base <= r->bytes - bytes)
			return r->dev && !(write && r->read_only) ? r->dev + (h - base) : NULL;
	}
	return NULL;
}

/* ---- copies ------------------------------------------------------------------------------- */

/* A batch of copies being filled: pushed pieces merge into the last one where both sides
 * continue it, and the batch goes to the driver when full and at the end. */
struct copy_batch {
	void *dst[SWARM_CUDA_GATHER_BATCH];
	const void *src[SWARM_CUDA_GATHER_BATCH];
	size_t bytes[SWARM_CUDA_GATHER_BATCH];
	uint32_t n;
	int to_device;
};

static int batch_flush(struct swarm_cuda_ctx *c, struct copy_batch *b)
{
	struct swarm_cuda_gather *g = c->gather;
	uint32_t n = b->n;
	cudaMemcpyKind kind = b->to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;

	b->n = 0;
	if (n == 0)
		return 0;
#if CUDART_VERSION >= 13000 /* 12.8 and 12.9 declared it otherwise (failIdx, non-const arrays) */
	if (n > 1 && !g->batch_off) {
		struct cudaMemcpyAttributes attr;
		size_t first = 0;
		memset(&attr, 0, sizeof(attr));
		attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
		cudaError_t err = cudaMemcpyBatchAsync(b->dst, b->src, b->bytes, n, &attr, &first,
						       1, c->stream);
		if (err == cudaSuccess)
			return 0;
		/* A driver older than the runtime, or a platform that refuses it: one copy a
		 * piece from now on, this batch included (nothing of it was queued). Said once,
		 * since it changes what every later batch costs. */
		fprintf(stderr,
			"swarm: cuda: cudaMemcpyBatchAsync of %u copies failed: %s (%s); one "
			"cudaMemcpyAsync a piece from now on\n",
			n, cudaGetErrorString(err), cudaGetErrorName(err));
		(void)cudaGetLastError();
		g->batch_off = 1;
	}
#else
	(void)g;
#endif
	for (uint32_t i = 0; i < n; i++)
		CUDA_CHECK_RET(cudaMemcpyAsync(b->dst[i], b->src[i], b->bytes[i], kind, c->stream));
	return 0;
}

static int batch_push(struct swarm_cuda_ctx *c, struct copy_batch *b, void *dst, const void *src,
		      size_t bytes)
{
	if (b->n) {
		uint32_t k = b->n - 1;
		if ((char *)b->dst[k] + b->bytes[k] == (char *)dst &&
		    (const char *)b->src[k] + b->bytes[k] == (const char *)src) {
			b->bytes[k] += bytes;
			return 0;
		}
	}
	if (b->n == SWARM_CUDA_GATHER_BATCH) {
		int ret = batch_flush(c, b);
		if (ret)
			return ret;
	}
	b->dst[b->n] = dst;
	b->src[b->n] = src;
	b->bytes[b->n++] = bytes;
	return 0;
}

/* ---- the gather kernel ---------------------------------------------------------------------- */

struct gather_piece {
	char *dst;
	const char *src;
	size_t bytes;
};

/* The kernel's parameter, by value: no table to upload first (4 KiB is the parameter limit
 * every CUDA version takes). */
struct gather_table {
	struct gather_piece p[SWARM_CUDA_GATHER_MAX_PIECES];
};
static_assert(sizeof(struct gather_table) <= 4096, "the table must fit a kernel parameter");

/* Column blockIdx.y copies piece blockIdx.y, its blocks striding over it: 16-byte words where
 * src and dst are aligned alike (the bytes before the first aligned one and after the last
 * copied one by one), bytes otherwise. */
static __global__ void gather_kernel(const struct gather_table t)
{
	const struct gather_piece pc = t.p[blockIdx.y];
	const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	const size_t stride = (size_t)gridDim.x * blockDim.x;
	const uintptr_t d = (uintptr_t)pc.dst, s = (uintptr_t)pc.src;
	size_t head = pc.bytes, words = 0;

	if (((d ^ s) & 15) == 0) {
		head = (16 - (d & 15)) & 15;
		if (head > pc.bytes)
			head = pc.bytes;
		words = (pc.bytes - head) / 16;
		const uint4 *s4 = (const uint4 *)(pc.src + head);
		uint4 *d4 = (uint4 *)(pc.dst + head);
		for (size_t i = tid; i < words; i += stride)
			d4[i] = s4[i];
	}
	for (size_t i = tid; i < head; i += stride)
		pc.dst[i] = pc.src[i];
	for (size_t i = head + words * 16 + tid; i < pc.bytes; i += stride)
		pc.dst[i] = pc.src[i];
}

/* Blocks per piece: enough for the largest piece of the launch at one 16-byte word per
 * thread, at most this many (they stride over the rest). */
#define GATHER_MAX_BLOCKS 64

static int table_launch(struct swarm_cuda_ctx *c, const struct gather_table *t, uint32_t n,
			size_t largest)
{
	if (n == 0)
		return 0;
	unsigned int x = swarm_cuda_blocks((int64_t)(largest / 16 + 1), SWARM_CUDA_THREADS);
	if (x > GATHER_MAX_BLOCKS)
		x = GATHER_MAX_BLOCKS;
	gather_kernel<<<dim3(x, n), SWARM_CUDA_THREADS, 0, c->stream>>>(*t);
	CUDA_CHECK_LAUNCH();
	return 0;
}

/* ---- upload_many, download_many ----------------------------------------------------------- */

int swarm_cuda_copy_many(struct swarm_cuda_ctx *c, const struct swarm_copy *pieces, uint32_t n,
			 int to_device)
{
	struct swarm_cuda_gather *g = c->gather;
	struct copy_batch b;
	struct gather_table t;
	uint32_t in_table = 0;
	size_t largest = 0;
	int ret;

	if (n && !pieces) {
		swarm_cuda_set_error("%s: %u pieces at NULL",
				     to_device ? "upload_many" : "download_many", n);
		return -EINVAL;
	}
	if (c->capturing) {
		swarm_cuda_set_error("%s during graph capture",
				     to_device ? "upload_many" : "download_many");
		return -EINVAL;
	}
	b.n = 0;
	b.to_device = to_device;
	for (uint32_t i = 0; i < n; i++) {
		const struct swarm_copy *pc = &pieces[i];
		if (pc->bytes == 0)
			continue;
		if (!pc->dst || !pc->src) {
			swarm_cuda_set_error("%s: piece %u of %zu bytes has a NULL %s",
					     to_device ? "upload_many" : "download_many", i,
					     pc->bytes, pc->dst ? "src" : "dst");
			return -EINVAL;
		}
		char *view = NULL;
		if (g->mode == SWARM_CUDA_GATHER_KERNEL)
			view = to_device ? device_view(g, pc->src, pc->bytes, 0) :
					   device_view(g, pc->dst, pc->bytes, 1);
		if (!view) {
			ret = batch_push(c, &b, pc->dst, pc->src, pc->bytes);
			if (ret)
				return ret;
			continue;
		}
		if (in_table == SWARM_CUDA_GATHER_MAX_PIECES) {
			ret = table_launch(c, &t, in_table, largest);
			if (ret)
				return ret;
			in_table = 0;
			largest = 0;
		}
		t.p[in_table++] =
			to_device ? (struct gather_piece){ (char *)pc->dst, view, pc->bytes } :
				    (struct gather_piece){ view, (const char *)pc->src, pc->bytes };
		if (pc->bytes > largest)
			largest = pc->bytes;
	}
	ret = table_launch(c, &t, in_table, largest);
	return ret ? ret : batch_flush(c, &b);
}

/* ---- the mode, from C ----------------------------------------------------------------------- */

static const char *const mode_names[SWARM_CUDA_GATHER_MODE_COUNT] = { "copies", "kernel" };

extern "C" const char *swarm_cuda_gather_mode_name(int mode)
{
	return mode >= 0 && mode < SWARM_CUDA_GATHER_MODE_COUNT ? mode_names[mode] : NULL;
}

extern "C" int swarm_cuda_gather_mode_from_name(const char *name)
{
	for (int m = 0; name && m < SWARM_CUDA_GATHER_MODE_COUNT; m++)
		if (strcmp(name, mode_names[m]) == 0)
			return m;
	return -1;
}

extern "C" int swarm_cuda_set_gather_mode(struct swarm_device *d, int mode)
{
	if (!d || d->i != swarm_device_cuda_table() || !d->ctx || mode < 0 ||
	    mode >= SWARM_CUDA_GATHER_MODE_COUNT) {
		swarm_cuda_set_error("swarm_cuda_set_gather_mode: not a CUDA device, or mode %d",
				     mode);
		return -EINVAL;
	}
	((struct swarm_cuda_ctx *)d->ctx)->gather->mode = mode;
	return 0;
}

extern "C" int swarm_cuda_gather_mode(const struct swarm_device *d)
{
	if (!d || d->i != swarm_device_cuda_table() || !d->ctx)
		return -EINVAL;
	return ((const struct swarm_cuda_ctx *)d->ctx)->gather->mode;
}
