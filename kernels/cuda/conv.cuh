/* conv.cuh: the spatial ops on NCHW f32 (conv.cu): conv2d, conv_transpose2d, max and average
 * pooling, global average pooling, resize, batchnorm. Each takes a node that passed
 * swarm_node_check (d its dims) and queues its work on c->stream. */
#ifndef SWARM_KERNELS_CUDA_CONV_CUH
#define SWARM_KERNELS_CUDA_CONV_CUH

#include "cuda_common.cuh"

int swarm_cuda_op_conv2d(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);
int swarm_cuda_op_conv_transpose2d(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				   const struct swarm_node_dims *d);
/* MAX_POOL2D and AVG_POOL2D */
int swarm_cuda_op_pool2d(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);
int swarm_cuda_op_global_avg_pool(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				  const struct swarm_node_dims *d);
int swarm_cuda_op_resize(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);
int swarm_cuda_op_batchnorm(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_CONV_CUH */
