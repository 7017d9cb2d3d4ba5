/* elementwise.c: the CPU device's elementwise ops (ops.h): every unary function of the op table
 * through one function that the fused activations of linear and conv share, and the binary ops
 * with numpy broadcasting, laid out once per node as a loop nest whose innermost loop walks
 * both inputs with a stride of 0 or 1.
 */
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "kernels/op.h"
#include "kernels/op_math.h"
#include "swarm/swarm.h"

/* ---- unary ----------------------------------------------------------------------------------- */

SWARM_INLINE void swarm_cpu_act_body(uint32_t op, const struct swarm_op_params *p, float *o,
				     const float *x, int64_t n)
{
	const float a = p->alpha, b = p->beta;
	int64_t i;
	/* One loop per function, the switch outside: each loop is simple enough for gcc to
	 * vectorise where the function allows. */
	switch (op) {
	case SWARM_OP_RELU:
		for (i = 0; i < n; i++)
			o[i] = x[i] > 0.0f ? x[i] : 0.0f;
		break;
	case SWARM_OP_GELU:
		for (i = 0; i < n; i++)
			o[i] = swarm_gelu(x[i]);
		break;
	case SWARM_OP_SIGMOID:
		for (i = 0; i < n; i++)
			o[i] = 1.0f / (1.0f + swarm_expf(-x[i]));
		break;
	case SWARM_OP_TANH:
		for (i = 0; i < n; i++)
			o[i] = tanhf(x[i]);
		break;
	case SWARM_OP_ERF:
		for (i = 0; i < n; i++)
			o[i] = swarm_erff(x[i]);
		break;
	case SWARM_OP_EXP:
		for (i = 0; i < n; i++)
			o[i] = swarm_expf(x[i]);
		break;
	case SWARM_OP_LOG:
		for (i = 0; i < n; i++)
			o[i] = logf(x[i]);
		break;
	case SWARM_OP_SQRT:
		for (i = 0; i < n; i++)
			o[i] = sqrtf(x[i]);
		break;
	case SWARM_OP_HARDSIGMOID:
		for (i = 0; i < n; i++)
			o[i] = swarm_hardsigmoid(x[i], a, b);
		break;
	case SWARM_OP_HARDSWISH:
		for (i = 0; i < n; i++)
			o[i] = x[i] * swarm_hardsigmoid(x[i], 1.0f / 6.0f, 0.5f);
		break;
	case SWARM_OP_LEAKY_RELU:
		for (i = 0; i < n; i++)
			o[i] = x[i] >= 0.0f ? x[i] : a * x[i];
		break;
	case SWARM_OP_CLIP:
		for (i = 0; i < n; i++) {
			float v = x[i] < a ? a : x[i];
			o[i] = v > b ? b : v;
		}
		break;
	case SWARM_OP_POW:
		if (p->exponent == 2.0f) {
			for (i = 0; i < n; i++)
				o[i] = x[i] * x[i];
		} else if (p->exponent == 0.5f) {
			for (i = 0; i < n; i++)
				o[i] = sqrtf(x[i]);
		} else {
			for (i = 0; i < n; i++)
				o[i] = powf(x[i], p->exponent);
		}
		break;
	default: /* IDENTITY */
		if (o != x)
			memmove(o, x, (size_t)n * sizeof(float));
		break;
	}
}

SWARM_CPU_MULTI_VOID(, swarm_cpu_act,
		     (uint32_t op, const struct swarm_op_params *p, float *o, const float *x,
		      int64_t n),
		     (op, p, o, x, n))

int swarm_cpu_elementwise(struct swarm_cpu_ws *ws, const struct swarm_node *n,
			  const struct swarm_node_dims *d)
{
	(void)ws;
	swarm_cpu_act(n->op, &n->p, n->out->data, n->in[0]->data, d->elems);
	return 0;
}

/* ---- binary, broadcast ----------------------------------------------------------------------- */

/* The innermost loop of each op: n elements, each input with its stride (0 or 1). */
#define BINARY_LOOP(name, expr)                                                            \
	static void name(float *o, const float *a, int64_t sa, const float *b, int64_t sb, \
			 int64_t n)                                                        \
	{                                                                                  \
		if (sa == 1 && sb == 1) {                                                  \
			for (int64_t i = 0; i < n; i++) {                                  \
				float x = a[i], y = b[i];                                  \
				o[i] = (expr);                                             \
			}                                                                  \
		} else if (sa == 1) {                                                      \
			const float y = b[0];                                              \
			for (int64_t i = 0; i < n; i++) {                                  \
				float x = a[i];                                            \
				o[i] = (expr);                                             \
			}                                                                  \
		} else if (sb == 1) {                                                      \
			const float x = a[0];                                              \
			for (int64_t i = 0; i < n; i++) {                                  \
				float y = b[i];                                            \
				o[i] = (expr);                                             \
			}                                                                  \
		} else {                                                                   \
			float x = a[0], y = b[0], v = (expr);                              \
			for (int64_t i = 0; i < n; i++)                                    \
				o[i] = v;                                                  \
		}                                                                          \
	}

BINARY_LOOP(loop_add, x + y)
BINARY_LOOP(loop_sub, x - y)
BINARY_LOOP(loop_mul, x *y)
BINARY_LOOP(loop_div, x / y)
/* max and min propagate NaN, as numpy's maximum and minimum (and ONNX Runtime) do */
BINARY_LOOP(loop_max, swarm_max_nan(x, y))
BINARY_LOOP(loop_min, swarm_min_nan(x, y))
BINARY_LOOP(loop_prelu, x >= 0.0f ? x : y * x)

typedef void (*binary_loop_fn)(float *o, const float *a, int64_t sa, const float *b, int64_t sb,
			       int64_t n);

static binary_loop_fn binary_loop(uint32_t op)
{
	switch (op) {
	case SWARM_OP_ADD:
		return loop_add;
	case SWARM_OP_SUB:
		return loop_sub;
	case SWARM_OP_MUL:
		return loop_mul;
	case SWARM_OP_DIV:
		return loop_div;
	case SWARM_OP_MAX:
		return loop_max;
	case SWARM_OP_MIN:
		return loop_min;
	default: /* PRELU */
		return loop_prelu;
	}
}

void swarm_cpu_add(float *o, const float *a, const float *b, int64_t n)
{
	loop_add(o, a, 1, b, 1, n);
}

int swarm_cpu_binary(struct swarm_cpu_ws *ws, const struct swarm_node *n,
		     const struct swarm_node_dims *d)
{
	(void)ws;
	if (d->elems == 0)
		return 0;
	struct swarm_bcast p;
	swarm_broadcast_plan(n->in[0], n->in[1], n->out, &p);
	binary_loop_fn loop = binary_loop(n->op);
	const float *a = n->in[0]->data, *b = n->in[1]->data;
	float *o = n->out->data;
	const int last = p.nd - 1;
	const int64_t inner = p.shape[last];
	int64_t idx[SWARM_TENSOR_MAX_DIMS] = { 0 };
	int64_t offa = 0, offb = 0;
	/* An odometer over the outer dims; each turn runs the innermost loop once. */
	const float *z = n->sum ? n->sum->data : NULL; /* a fused ADD's */
	for (int64_t done = 0; done < d->elems; done += inner) {
		loop(o + done, a + offa, p.sa[last], b + offb, p.sb[last], inner);
		if (z)
			swarm_cpu_add(o + done, o + done, z + done, inner);
		for (int k = last - 1; k >= 0; k--) {
			offa += p.sa[k];
			offb += p.sb[k];
			if (++idx[k] < p.shape[k])
				break;
			offa -= p.sa[k] * p.shape[k];
			offb -= p.sb[k] * p.shape[k];
			idx[k] = 0;
		}
	}
	return 0;
}
