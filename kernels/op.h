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
	SWARM_ATTR_MODE = 1u << 1,  /* "mode": embedding_bag's sum|mean, pad's
				     * constant|reflect|edge, resize's nearest|linear */
	SWARM_ATTR_HEADS = 1u << 2, /* "heads": attention's head count */
	SWARM_ATTR_EPS = 1u << 3,   /* "eps": a normaliser's epsilon (0: its default) */
	SWARM_ATTR_ALPHA = 1u << 4, /* "alpha": leaky_relu's slope, hardsigmoid's scale */
	SWARM_ATTR_BETA = 1u << 5,  /* "beta": hardsigmoid's offset */
	SWARM_ATTR_MIN = 1u << 6,   /* "min": clip's lower bound (p.alpha) */
	SWARM_ATTR_MAX = 1u << 7,   /* "max": clip's upper bound (p.beta) */
	SWARM_ATTR_EXPONENT = 1u << 8,
	SWARM_ATTR_VALUE = 1u << 9, /* "value": pad's constant */
	SWARM_ATTR_AXIS = 1u << 10,
	SWARM_ATTR_AXES = 1u << 11, /* a list of dims, kept as a bit per dim (p.axes) */
	SWARM_ATTR_KEEPDIMS = 1u << 12,
	SWARM_ATTR_COORD = 1u << 13,   /* "coordinate_transformation_mode" */
	SWARM_ATTR_NEAREST = 1u << 14, /* "nearest_mode" */
	SWARM_ATTR_TO = 1u << 15,      /* "to": a dtype name */
	SWARM_ATTR_GROUP = 1u << 16,
	SWARM_ATTR_CEIL_MODE = 1u << 17,
	SWARM_ATTR_COUNT_INCLUDE_PAD = 1u << 18,
	SWARM_ATTR_KERNEL = 1u << 19, /* "kernel_shape" */
	SWARM_ATTR_STRIDES = 1u << 20,
	SWARM_ATTR_DILATIONS = 1u << 21,
	SWARM_ATTR_OUT_PAD = 1u << 22, /* "output_padding" */
	SWARM_ATTR_SCALES = 1u << 23,
	SWARM_ATTR_SIZES = 1u << 24,
	SWARM_ATTR_PADS = 1u << 25,
	SWARM_ATTR_SHAPE = 1u << 26,
	SWARM_ATTR_PERM = 1u << 27,
	SWARM_ATTR_STARTS = 1u << 28,
	SWARM_ATTR_ENDS = 1u << 29,
	SWARM_ATTR_STEPS = 1u << 30,
	SWARM_ATTR_COUNT = 31,
};

/* The name of an attribute bit ("act"), NULL for anything but one bit of enum swarm_attr. */
const char *swarm_attr_name(uint32_t attr);

/* Flags of an op's dtype rule. */
enum swarm_op_flags {
	/* a GEMM-heavy op: its float tensors may be f16 or bf16 where the device's GEMMs take
	 * them (the float_dtypes a device passes); every other op is f32 only */
	SWARM_OPF_GEMM = 1u << 0,
	/* CAST: its input may be any float dtype, and out is p.to's (f32, f16 or bf16) on
	 * every device */
	SWARM_OPF_CAST = 1u << 1,
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
	/* Sets the parameters a manifest node leaves out to the op's defaults (ONNX's: concat
	 * on the last dim, hardsigmoid's 0.2 and 0.5, leaky_relu's 0.01, clip unbounded, ...),
	 * before the given ones are parsed over them. NULL: zero is every default. */
	void (*defaults)(struct swarm_op_params *p);
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

/* The loop nest of a numpy broadcast of a and b to o: o's shape with its dims of 1 dropped and
 * adjacent dims merged where both inputs step through them alike, and each input's element
 * stride per dim (0 where it is broadcast). The CPU's and the CUDA device's binary ops walk
 * it. */
struct swarm_bcast {
	int nd;
	int64_t shape[SWARM_TENSOR_MAX_DIMS];
	int64_t sa[SWARM_TENSOR_MAX_DIMS], sb[SWARM_TENSOR_MAX_DIMS];
};

void swarm_broadcast_plan(const struct swarm_tensor *a, const struct swarm_tensor *b,
			  const struct swarm_tensor *o, struct swarm_bcast *p);

/* One dim's slice by numpy's rule (SLICE's): start and end negative count from dim's end,
 * both are clamped into range, step is not 0 and may be negative. Writes the first index
 * read and how many are. */
void swarm_slice_dim(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first,
		     int64_t *count);

/* SLICE of x by p (its axes, starts, ends, steps) as a strided read of x's elements: the
 * first element read (*base) and, per dim, the elements between two reads (step[], x's
 * stride times the slice's step). The out shape is the op table's. Each device walks it. */
void swarm_slice_plan(const struct swarm_tensor *x, const struct swarm_op_params *p, int64_t *step,
		      int64_t *base);

/* infer of n's op on n's inputs and parameters (a graph's node before its batch is known, or
 * a node about to run): 0 with out set, -EINVAL with a->why and a->blame, -ENOTSUP for an op
 * out of range. Checks the input count and that each input is a tensor of at most
 * SWARM_TENSOR_MAX_DIMS dims, nothing else the op does not. */
int swarm_op_infer(struct swarm_op_args *a, struct swarm_tensor *out);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_OP_H */
