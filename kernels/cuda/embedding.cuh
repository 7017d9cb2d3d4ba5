/* embedding.cuh: EMBEDDING (table [V, D], ids [..]) and EMBEDDING_BAG (table [V, D], ids [L],
 * offsets [B], SUM or MEAN), ids and offsets i32 or i64, all in device memory.
 *
 * The ids and offsets may come from a client, and their values live on the GPU, so they are
 * checked there: a validate kernel sets the device's error flag (ctx->err_flag) when an id is
 * outside [0, V), offsets[0] != 0, or the offsets are not ascending within [0, L]; the gather
 * kernel queued after it on the same stream returns at once when the flag is set, so the node
 * writes nothing. The flag stays set (and every later gather writes nothing too) until
 * synchronize reads it, clears it and returns -EINVAL.
 */
#ifndef SWARM_KERNELS_CUDA_EMBEDDING_CUH
#define SWARM_KERNELS_CUDA_EMBEDDING_CUH

#include "cuda_common.cuh"

/* d from swarm_node_check. Returns 0 once queued, or a CUDA error's errno. */
int swarm_cuda_op_embedding(struct swarm_cuda_ctx *c, const struct swarm_node *n,
			    const struct swarm_node_dims *d);
int swarm_cuda_op_embedding_bag(struct swarm_cuda_ctx *c, const struct swarm_node *n,
				const struct swarm_node_dims *d);

#endif /* SWARM_KERNELS_CUDA_EMBEDDING_CUH */
