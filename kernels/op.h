/* op.h: the one table of op contracts, in the style of ggml's op tables. An op's every rule is
 * here and nowhere else: its name, how many inputs it takes, which parameters (a manifest
 * node's attributes) it takes and needs, its dtype rule, how its output's dtype and shape
 * follow from its inputs (the graph executor infers every intermediate with it, with the
 * batch dimension still a symbol, and every device checks a node against it before it runs),
 * and what a kernel needs derived from a checked node. Each device has its kernels in a table
 * of its own indexed by op (kernels/cpu/cpu_device.c, kernels/cuda/cuda_device.cu): adding an
 * op is one entry here, its kernels, and its tests (tests/kernels/test_ops.c against float64,
 * tests/kernels/test_backend_ops.c on every device).
 *
 * A plain C header, included from CUDA C++ too.
 */
#ifndef SWARM_KERNELS_OP_H
#define SWARM_KERNELS_OP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/check.h"
#include "kernels/device.h"

/* The parameters a node may carry (struct swarm_op_params), one bit each; a manifest node
 * spells each as the attribute named in docs/graph.md. */
enum swarm_attr {
	SWARM_ATTR_ACT = 1u << 0,   /* "act": an activation fused after the op (p.act) */
	SWARM_ATTR_MODE = 1u << 1,  /* "mode": embedding_bag's "sum" or "mean" (p.bag_mode) */
	SWARM_ATTR_HEADS = 1u << 2, /* "heads": attention's head count (p.heads) */
	SWARM_ATTR_EPS = 1u << 3,   /* "eps": a normaliser's epsilon (p.eps; 0: its default) */
	SWARM_ATTR_COUNT = 4,
};

/* The name of an attribute bit ("act"), NULL for anything but one bit of enum swarm_attr. */
const char *swarm_attr_name(uint32_t attr);

/* Flags of an op's dtype rule. */
enum swarm_op_flags {
	/* a GEMM-heavy op: its float tensors may be f16 or bf16 where the device's GEMMs take
	 * them (the float_dtypes a device passes); every other op is f32 only */
	SWARM_OPF_GEMM = 1u << 0,
};

/* What infer sees: the node's op, inputs and parameters. Dim 0 of an input may be negative:
 * the batch dimension as a symbol (the graph executor, before it knows the batch), which
 * infer keeps in dim 0 of the output where the output has one per row and never does
 * arithmetic on. On a refusal infer writes why (a phrase, "linear takes X [.., K] and
 * W [N, K]") and sets in blame the bits of the inputs it is about, so that its caller can
 * name them with their names and types. */
struct swarm_op_args {
	uint32_t op;
	uint32_t n_in;
	const struct swarm_tensor *const *in;
	const struct swarm_op_params *p;
	char *why;
	size_t why_len;
	uint32_t blame;
};

struct swarm_op_info {
	const char *name;       /* the manifest's spelling, "linear" */
	uint8_t min_in, max_in; /* inputs it takes */
	uint32_t attrs;         /* the swarm_attr bits it takes */
	uint32_t required;      /* those it must have */
	uint32_t flags;         /* enum swarm_op_flags */
	uint32_t index_in;      /* bits of the inputs that are indexes: i32 or i64 */
	uint32_t f32_in;        /* bits of the float inputs that stay f32 whatever the op's
				 * float dtype (attention's mask) */
	/* out's dtype, ndim and shape (data untouched) from a's inputs and parameters; 0, or
	 * -EINVAL with a->why and a->blame set. Reads no tensor data. */
	int (*infer)(struct swarm_op_args *a, struct swarm_tensor *out);
	/* 1 when the parameters are ones the op's kernels take (an activation they can fuse, a
	 * known mode), whatever the shapes; NULL: any. Part of supports_op. */
	int (*params_ok)(const struct swarm_op_params *p);
	/* What a kernel needs from a node that infer accepted (check.h's swarm_node_dims,
	 * dtype and elems already set); -EINVAL when a size is beyond what the kernels take
	 * (a GEMM dimension over INT_MAX). NULL: nothing beyond dtype and elems. */
	int (*dims)(const struct swarm_node *n, struct swarm_node_dims *d);
};

/* The entry of op, NULL when op is out of range. */
const struct swarm_op_info *swarm_op_info(uint32_t op);

/* infer of n's op on n's inputs and parameters (a graph's node before its batch is known, or
 * a node about to run): 0 with out set, -EINVAL with a->why and a->blame, -ENOTSUP for an op
 * out of range. Checks the input count and that each input is a tensor of at most
 * SWARM_TENSOR_MAX_DIMS dims, nothing else the op does not. */
int swarm_op_infer(struct swarm_op_args *a, struct swarm_tensor *out);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_OP_H */
