/* concat.cuh: CONCAT of 1..8 f32 tensors equal but in the last dim, joined on the last dim. */
#ifndef SWARM_KERNELS_CUDA_CONCAT_CUH
#define SWARM_KERNELS_CUDA_CONCAT_CUH

#include "cuda_common.cuh"

/* One launch per input with a non-empty last dim. d from swarm_node_check. out must not
 * overlap the inputs. */
int swarm_cuda_op_concat(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			 const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_CONCAT_CUH */
