/* staged_device.c: the staged CPU device (staged_device.h). A GPU's memory is not the host's,
 * so every path that serves a GPU copies: this device makes those paths run, and checks them,
 * on a machine without one. It wraps a CPU device for the ops and keeps a table of its own
 * allocations: a copy whose device side, or a node whose tensor, lies outside them is a bug
 * of the caller (it handed host memory where device memory belongs) and fails with -EFAULT,
 * where a real GPU would fault or read garbage.
 */
#include "kernels/cpu/staged_device.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct region {
	char *p;
	size_t bytes;
};

struct staged_ctx {
	struct swarm_device *cpu; /* runs the ops */
	/* Allocations, unordered. Guarded by lock: graphs of one worker are built and run from
	 * one thread, but a build is documented thread-safe, and tests build in parallel. */
	pthread_mutex_t lock;
	struct region *r;
	uint32_t n, cap;
};

static struct staged_ctx *ctx_of(struct swarm_device *d) { return d->ctx; }

static void *staged_alloc(struct swarm_device *d, size_t bytes)
{
	struct staged_ctx *c = ctx_of(d);
	void *p = c->cpu->i->alloc(c->cpu, bytes);
	if (!p)
		return NULL;
	pthread_mutex_lock(&c->lock);
	if (c->n == c->cap) {
		uint32_t cap = c->cap ? 2 * c->cap : 16;
		struct region *r = realloc(c->r, cap * sizeof *r);
		if (!r) {
			pthread_mutex_unlock(&c->lock);
			c->cpu->i->free(c->cpu, p);
			return NULL;
		}
		c->r = r;
		c->cap = cap;
	}
	c->r[c->n++] = (struct region){ p, bytes };
	pthread_mutex_unlock(&c->lock);
	return p;
}

static void staged_free(struct swarm_device *d, void *p)
{
	struct staged_ctx *c = ctx_of(d);
	if (!p)
		return;
	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < c->n; i++)
		if (c->r[i].p == p) {
			c->r[i] = c->r[--c->n];
			break;
		}
	pthread_mutex_unlock(&c->lock);
	c->cpu->i->free(c->cpu, p);
}

/* 1 when [p, p + bytes) lies inside one of d's allocations. */
static bool owns(struct swarm_device *d, const void *p, size_t bytes)
{
	struct staged_ctx *c = ctx_of(d);
	const char *q = p;
	bool in = false;
	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < c->n && !in; i++)
		in = q >= c->r[i].p && bytes <= c->r[i].bytes &&
		     (size_t)(q - c->r[i].p) <= c->r[i].bytes - bytes;
	pthread_mutex_unlock(&c->lock);
	return in;
}

/* One copy, dev_side its device-memory end. */
static int copy(struct swarm_device *d, void *dst, const void *src, size_t bytes,
		const void *dev_side)
{
	if (!bytes)
		return 0;
	if (!dst || !src)
		return -EINVAL;
	if (!owns(d, dev_side, bytes))
		return -EFAULT;
	memcpy(dst, src, bytes);
	return 0;
}

static int staged_upload(struct swarm_device *d, void *dst, const void *src, size_t bytes)
{
	return copy(d, dst, src, bytes, dst);
}

static int staged_download(struct swarm_device *d, void *dst, const void *src, size_t bytes)
{
	return copy(d, dst, src, bytes, src);
}

static int copy_many(struct swarm_device *d, const struct swarm_copy *pc, uint32_t n, bool up)
{
	if (n && !pc)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		int rc = copy(d, pc[i].dst, pc[i].src, pc[i].bytes, up ? pc[i].dst : pc[i].src);
		if (rc)
			return rc;
	}
	return 0;
}

static int staged_upload_many(struct swarm_device *d, const struct swarm_copy *pc, uint32_t n)
{
	return copy_many(d, pc, n, true);
}

static int staged_download_many(struct swarm_device *d, const struct swarm_copy *pc, uint32_t n)
{
	return copy_many(d, pc, n, false);
}

static int staged_supports_op(struct swarm_device *d, const struct swarm_node *n)
{
	struct staged_ctx *c = ctx_of(d);
	return c->cpu->i->supports_op(c->cpu, n);
}

/* The node's tensors must all be this device's memory (the start of each is enough to catch
 * a host buffer bound by mistake; the op checks shapes against the data it is given). */
static int staged_run(struct swarm_device *d, const struct swarm_node *n)
{
	struct staged_ctx *c = ctx_of(d);
	if (!n || !n->out || n->n_in > SWARM_NODE_MAX_INPUTS)
		return -EINVAL;
	if (!owns(d, n->out->data, 0))
		return -EFAULT;
	for (uint32_t j = 0; j < n->n_in; j++)
		if (!n->in[j] || !owns(d, n->in[j]->data, 0))
			return -EFAULT;
	return c->cpu->i->run(c->cpu, n);
}

static void staged_destroy(struct swarm_device *d)
{
	if (!d)
		return;
	struct staged_ctx *c = ctx_of(d);
	c->cpu->i->destroy(c->cpu);
	pthread_mutex_destroy(&c->lock);
	free(c->r);
	free(c);
	free(d);
}

#define STAGED_TABLE(with_many)                                                                  \
	{                                                                                        \
		.name = "staged-cpu", .alloc = staged_alloc, .free = staged_free,                \
		.upload = staged_upload, .download = staged_download,                            \
		.supports_op = staged_supports_op, .run = staged_run, .destroy = staged_destroy, \
		.host_memory = 0, .upload_many = (with_many) ? staged_upload_many : NULL,        \
		.download_many = (with_many) ? staged_download_many : NULL,                      \
	}

static const struct swarm_device_i staged_i = STAGED_TABLE(1);
static const struct swarm_device_i staged_no_many_i = STAGED_TABLE(0);

int swarm_device_staged_cpu_create(int threads, uint32_t flags, struct swarm_device **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (threads < 1 || (flags & ~SWARM_STAGED_NO_MANY))
		return -EINVAL;
	struct swarm_device *d = calloc(1, sizeof *d);
	struct staged_ctx *c = calloc(1, sizeof *c);
	int rc = -ENOMEM;
	if (!d || !c)
		goto err_free;
	rc = swarm_device_cpu_create(threads, &c->cpu);
	if (rc)
		goto err_free;
	pthread_mutex_init(&c->lock, NULL);
	d->i = flags & SWARM_STAGED_NO_MANY ? &staged_no_many_i : &staged_i;
	d->ctx = c;
	*out = d;
	return 0;

err_free:
	free(c);
	free(d);
	return rc;
}
