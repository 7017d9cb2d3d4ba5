/* cpu_device.c: the CPU device, the table of kernels/device.h over host memory. Device memory
 * is ordinary 64-byte-aligned heap memory, so upload and download are memcpy, there is nothing
 * to pin and every op runs synchronously in run(). The ops themselves live in ops.c; this file
 * holds the table, the one supports_op switch and the one dispatch switch.
 */
#include "kernels/device.h"

#include <cblas.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/check.h"
#include "kernels/cpu/ops.h"
#include "swarm/swarm.h"

struct cpu_ctx {
	int threads;
	struct swarm_cpu_ws ws; /* scratch reused across runs */
};

static void *cpu_alloc(struct swarm_device *d, size_t bytes)
{
	(void)d;
	/* aligned_alloc wants a multiple of the alignment, and a zero-byte tensor still gets a
	 * distinct, freeable pointer. */
	size_t rounded = (bytes + 63) & ~(size_t)63;
	if (rounded < bytes)
		return NULL;
	return aligned_alloc(64, rounded ? rounded : 64);
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

/* Op, input count and dtypes: f32 everywhere but the index inputs (f16 and bf16 are CUDA's). */
static int cpu_supports_op(struct swarm_device *d, const struct swarm_node *n)
{
	(void)d;
	return swarm_node_supported(n, 0);
}

static int cpu_run(struct swarm_device *d, const struct swarm_node *n)
{
	if (!d || !n || !n->out || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	struct swarm_cpu_ws *ws = &((struct cpu_ctx *)d->ctx)->ws;
	switch (n->op) {
	case SWARM_OP_IDENTITY:
		return swarm_cpu_identity(ws, n);
	case SWARM_OP_LINEAR:
		return swarm_cpu_linear(ws, n);
	case SWARM_OP_MATMUL:
		return swarm_cpu_matmul(ws, n);
	case SWARM_OP_ADD:
		return swarm_cpu_add(ws, n);
	case SWARM_OP_MUL:
		return swarm_cpu_mul(ws, n);
	case SWARM_OP_RELU:
	case SWARM_OP_GELU:
	case SWARM_OP_SIGMOID:
	case SWARM_OP_TANH:
		return swarm_cpu_unary(ws, n);
	case SWARM_OP_SOFTMAX:
		return swarm_cpu_softmax(ws, n);
	case SWARM_OP_LAYERNORM:
		return swarm_cpu_layernorm(ws, n);
	case SWARM_OP_EMBEDDING:
		return swarm_cpu_embedding(ws, n);
	case SWARM_OP_EMBEDDING_BAG:
		return swarm_cpu_embedding_bag(ws, n);
	case SWARM_OP_CONCAT:
		return swarm_cpu_concat(ws, n);
	case SWARM_OP_ATTENTION:
		return swarm_cpu_attention(ws, n);
	case SWARM_OP_MEAN_POOL:
		return swarm_cpu_mean_pool(ws, n);
	case SWARM_OP_L2NORM:
		return swarm_cpu_l2norm(ws, n);
	default:
		return -ENOTSUP;
	}
}

static void cpu_destroy(struct swarm_device *d)
{
	if (!d)
		return;
	struct cpu_ctx *c = d->ctx;
	if (c)
		swarm_cpu_ws_free(&c->ws);
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
	.run = cpu_run,
	.destroy = cpu_destroy,
	.host_memory = 1,
	/* the weights are the page cache's mapping: nothing to share on the device */
	.alloc_shared = NULL,
	.export_shared = NULL,
	.import_shared = NULL,
	.free_shared = NULL,
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
	/* OpenBLAS's thread count is process-wide; a worker owns one device, so setting it here
	 * gives that worker's GEMMs the cores it was given. */
	openblas_set_num_threads(threads);
	d->i = &cpu_device_i;
	d->ctx = c;
	*out = d;
	return 0;

err_free_dev:
	free(d);
err:
	return -ENOMEM;
}
