/* layout.cuh: the ops that move or reduce elements (layout.cu): reduce_mean, reduce_sum and
 * reduce_max over any dims, transpose, reshape (a copy: the graph makes most reshapes views),
 * slice with steps, gather (indices checked on the GPU: a bad one makes the node write nothing
 * and the run fail with -EINVAL at the next synchronize, as embedding's ids), pad (constant,
 * reflect, edge) and cast between f32, f16 and bf16. */
#ifndef SWARM_KERNELS_CUDA_LAYOUT_CUH
#define SWARM_KERNELS_CUDA_LAYOUT_CUH

#include "cuda_common.cuh"

int swarm_cuda_op_reduce(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);
int swarm_cuda_op_transpose(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d);
int swarm_cuda_op_reshape(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			  const struct swarm_node_dims *d);
int swarm_cuda_op_slice(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			const struct swarm_node_dims *d);
int swarm_cuda_op_gather(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);
int swarm_cuda_op_pad(struct swarm_cuda_ctx *c, const struct swarm_node *n,
		      const struct swarm_node_dims *d);
int swarm_cuda_op_cast(struct swarm_cuda_ctx *c, const struct swarm_node *n,
		       const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_LAYOUT_CUH */
