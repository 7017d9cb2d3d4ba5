/* conv.h: what the CPU device's spatial ops share (conv.c: conv2d and conv_transpose2d;
 * conv_depthwise.c: the depthwise conv on blocked channels; pool.c: pooling, resize and
 * batchnorm): a conv's geometry and the padded planes that window ops read. Internal to
 * kernels/cpu/. */
#ifndef SWARM_KERNELS_CPU_CONV_H
#define SWARM_KERNELS_CPU_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu/ops.h"

/* A conv's geometry, from the node (it passed the op table's checks). */
struct geo {
	int64_t N, C, H, W;     /* input */
	int64_t M, OH, OW;      /* output */
	int64_t G, Cg, Mg;      /* groups, input and output channels per group */
	int64_t kh, kw;         /* kernel */
	int64_t sh, sw, dh, dw; /* strides, dilations */
	int64_t pt, pl;         /* leading pads (the trailing ones only size the output) */
};

/* g for node n (kernel kh x kw). */
void conv_geo_of(const struct swarm_node *n, int64_t kh, int64_t kw, struct geo *g);

/* ---- padded planes ----------------------------------------------------------------------------
 *
 * A window op (a conv, a pool) reads, for output column ox and kernel tap j, input column
 * ox * sw - pl + j * dw. On a copy of the channel's plane padded by pt/pl (and at the end as
 * far as the windows reach) with the columns split into sw phases (phase q holds the padded
 * columns q, q + sw, ...), that column is entry ox + (j * dw) / sw of phase (j * dw) % sw: a
 * contiguous run for every tap, whatever the stride, with no bounds to check. The padding
 * holds fill (0 for a conv, -inf for a max pool, 0 for an average pool whose divisor is
 * counted apart). */
struct plane {
	int64_t rows; /* padded rows */
	int64_t pw;   /* entries of a phase row */
	int64_t sw;   /* phases */
	float *p;     /* rows x sw x pw floats */
};

/* Four floats at any alignment (the planes' and blocks' 16-byte moves). */
typedef float conv_v4 __attribute__((vector_size(16), aligned(4), may_alias));

/* The padded plane's shape (not its memory) for g's windows. */
void conv_plane_size(const struct geo *g, struct plane *pl);
size_t conv_plane_floats(const struct plane *pl);
/* Fills the whole padded plane of one channel plane x [H, W] into pl->p, padding with fill. */
void conv_plane_fill(struct plane *pl, const float *x, const struct geo *g, float fill);

/* The run of tap (i, j) for output row oy: entry ox is the input under output column ox. */
static inline const float *conv_plane_tap(const struct plane *pl, const struct geo *g, int64_t oy,
					  int64_t i, int64_t j)
{
	const int64_t r = oy * g->sh + i * g->dh, c = j * g->dw;
	return pl->p + (r * pl->sw + c % pl->sw) * pl->pw + c / pl->sw;
}

/* Threads for a conv of flops (at most the device's, at most parts): 1 below a size where a
 * fork and join would cost more than they save. */
int conv_threads(const struct swarm_cpu_ws *ws, double flops, int64_t parts);

/* ---- conv_depthwise.c ------------------------------------------------------------------------ */

#define DWB 8 /* channels of a depthwise block (the blocked weights are padded to it) */

/* A depthwise conv (Cg = Mg = 1) of node n with geometry g. 0 or -ENOMEM. */
int conv_depthwise(struct swarm_cpu_ws *ws, const struct swarm_node *n, const struct geo *g);
/* The depthwise weights [C, taps] in the blocked layout conv_depthwise reads. */
void conv_dw_weights(float *dst, const float *w, int64_t C, int64_t taps);

#endif /* SWARM_KERNELS_CPU_CONV_H */
