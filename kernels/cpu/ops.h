/* ops.h: the CPU device's ops, one function per op of kernels/device.h. The device calls one
 * with a node that passed swarm_node_check (kernels/check.h) and the dims it derived; the op
 * computes out and returns 0, or -EINVAL (nothing written) for an index out of its table.
 * Index inputs (embedding ids and bag offsets) are all checked before the first write.
 * Not thread-safe on one workspace: a device runs one node at a time.
 */
#ifndef SWARM_KERNELS_CPU_OPS_H
#define SWARM_KERNELS_CPU_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/check.h"
#include "kernels/device.h"

/* Scratch memory an op may need (attention's score matrix); grown on demand and kept by the
 * device so that steady-state runs do not allocate. Zero-initialise; free with
 * swarm_cpu_ws_free. */
struct swarm_cpu_ws {
	float *buf;
	size_t cap;  /* floats in buf */
	int threads; /* the device's: threads one GEMM may split its panels over (0 or 1: one) */
};

void swarm_cpu_ws_free(struct swarm_cpu_ws *ws);

/* bytes of memory for tensors and scratch, 64-byte aligned, freed with free(); NULL when out
 * of memory. From SWARM_CPU_HUGE_MIN bytes on it is 2 MiB aligned, whole 2 MiB pages, and
 * advised onto transparent huge pages (ops.c says why). */
#define SWARM_CPU_HUGE_MIN ((size_t)256 << 10)
void *swarm_cpu_alloc(size_t bytes);

/* A node's prepared weight (swarm_node.prep on the CPU), 64-byte aligned, b too, in one of
 * these layouts:
 *   SWARM_CPU_PACK_GEMM  B of a GEMM, k x n, packed by kernels/cpu/gemm.h: LINEAR's W^T, and
 *                        a CONV2D's that is 1x1 over a 1x1 image (its weight [M, C] is one)
 *   SWARM_CPU_PACK_CT    CONV_TRANSPOSE2D's W transposed per group
 *                        (swarm_cpu_conv_transpose_weights), n rows of k = C / G floats
 *   SWARM_CPU_PACK_DW    a depthwise CONV2D's taps in blocks of 8 channels, k taps, n channels
 *   SWARM_CPU_PACK_DC    a direct CONV2D's weights in tiles of output channels side by side,
 *                        k = Cg * kh * kw taps, n output channels
 * (the last two by swarm_cpu_conv_weights). A kernel uses it only where the layout, k and n
 * are its node's. */
enum {
	SWARM_CPU_PACK_GEMM = 1,
	SWARM_CPU_PACK_CT,
	SWARM_CPU_PACK_DW,
	SWARM_CPU_PACK_DC
};
struct swarm_cpu_packed {
	int64_t k, n;
	void *slab;      /* the device's: where the packing lives (cpu_device.c) */
	int64_t layout;  /* SWARM_CPU_PACK_* */
	uint64_t bytes;  /* the allocation's, this header and the rounding to 64 included */
	int64_t pad_[3]; /* b starts on a cache line */
	float b[];
};
_Static_assert(offsetof(struct swarm_cpu_packed, b) % 64 == 0,
	       "a packing's b starts on a cache line");

int swarm_cpu_identity(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		       const struct swarm_node_dims *d);
int swarm_cpu_linear(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
int swarm_cpu_matmul(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
/* RELU, GELU, SIGMOID and TANH: one function, the node's op picks the function. */
int swarm_cpu_unary(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		    const struct swarm_node_dims *d);
int swarm_cpu_softmax(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		      const struct swarm_node_dims *d);
int swarm_cpu_layernorm(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d);
int swarm_cpu_embedding(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d);
int swarm_cpu_embedding_bag(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			    const struct swarm_node_dims *d);
int swarm_cpu_concat(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
int swarm_cpu_attention(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d);
int swarm_cpu_mean_pool(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d);
int swarm_cpu_l2norm(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);

/* At least count floats of the device's scratch (valid until the next call), or NULL. */
float *swarm_cpu_ws_get(struct swarm_cpu_ws *ws, size_t count);

/* p rounded up to its next 64-byte line: where a scratch region the GEMM streams starts (ask
 * swarm_cpu_ws_get for 16 floats more per region so placed). */
static inline float *swarm_cpu_line(float *p)
{
	return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* elementwise.c: every unary op of the table (and the activations linear and conv fuse) over n
 * floats, o may be x; the unary ops and the broadcast binary ones as nodes. */
void swarm_cpu_act(uint32_t op, const struct swarm_op_params *p, float *o, const float *x,
		   int64_t n);
int swarm_cpu_elementwise(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			  const struct swarm_node_dims *d);
/* o = a + b over n floats, as an ADD node computes it (o may be a): what a node with a fused
 * ADD (swarm_node.sum) adds to its output with, so that fused and unfused agree to the bit. */
void swarm_cpu_add(float *o, const float *a, const float *b, int64_t n);
int swarm_cpu_binary(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);

/* conv.c: NCHW spatial ops. */
int swarm_cpu_conv2d(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
int swarm_cpu_conv_transpose2d(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			       const struct swarm_node_dims *d);
/* CONV_TRANSPOSE2D's weight W [C, Mg, kh, kw] as the GEMM's A: per group of G, its [C / G, R]
 * rows (R = Mg * kh * kw) transposed to [R, C / G], the groups one after another (C * R
 * floats). The device's prepare does it once; a node without it, per run. */
void swarm_cpu_conv_transpose_weights(float *dst, const float *w, int64_t C, int64_t R, int64_t G);
/* The layout a CONV2D's weight takes when prepared for the kernel that will run it
 * (SWARM_CPU_PACK_DW or _DC, with its k, n and floats), or 0 when that kernel reads it as it
 * is; and the weight written in it. */
int swarm_cpu_conv_weight_layout(const struct swarm_node *n, int64_t *k, int64_t *rows,
				 size_t *floats);
void swarm_cpu_conv_weights(float *dst, const struct swarm_node *n, int layout);
/* 1 when n (a CONV2D) runs direct and so can read its input from n's parts (a fused concat:
 * device.h's fuse_concat), each an f32 [N, Ci, H, W], the Ci summing to in[0]'s channels;
 * else 0. Shapes only: the graph asks before the parts have storage. */
int swarm_cpu_conv_takes_parts(const struct swarm_node *n);
/* 1 when n (a CONV2D) can add n->sum (a fused ADD: an f32 tensor of out's shape) after its
 * activation: every conv but a depthwise one; else 0. Shapes only, as above. */
int swarm_cpu_conv_takes_sum(const struct swarm_node *n);
int swarm_cpu_pool2d(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
/* layout.c: x viewed as [outer, red, inner] reduced over red into o [outer, inner] (sum times
 * scale, or max): reduce's and global average pool's one loop. */
void swarm_cpu_reduce_block(const float *x, float *o, int64_t outer, int64_t red, int64_t inner,
			    bool is_max, float scale);
int swarm_cpu_global_avg_pool(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			      const struct swarm_node_dims *d);
int swarm_cpu_resize(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
int swarm_cpu_batchnorm(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d);

/* layout.c: reductions, transpose, reshape, slice, gather, pad, cast. */
int swarm_cpu_reduce(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
int swarm_cpu_transpose(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			const struct swarm_node_dims *d);
int swarm_cpu_reshape(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		      const struct swarm_node_dims *d);
int swarm_cpu_slice(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		    const struct swarm_node_dims *d);
int swarm_cpu_gather(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d);
int swarm_cpu_pad(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		  const struct swarm_node_dims *d);
int swarm_cpu_cast(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		   const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CPU_OPS_H */
