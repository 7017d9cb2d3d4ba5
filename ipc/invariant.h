/* invariant.h: SWARM_INVARIANT(cond), the assert that stays. A broken invariant (a bug, never
 * a bad input, which returns a code) prints where and aborts, in every build;
 * assert() vanishes under NDEBUG, which the default RelWithDebInfo build defines. Header only,
 * so that every library (ipc, kernels, registry, runtime, tools) can use it alone. */
#ifndef SWARM_IPC_INVARIANT_H
#define SWARM_IPC_INVARIANT_H

#include <stdio.h>
#include <stdlib.h>

static inline _Noreturn void swarm_invariant_failed(const char *expr, const char *file, int line,
						    const char *func)
{
	fprintf(stderr, "%s:%d: %s: invariant failed: %s\n", file, line, func, expr);
	abort();
}

#define SWARM_INVARIANT(cond) \
	((cond) ? (void)0 : swarm_invariant_failed(#cond, __FILE__, __LINE__, __func__))

#endif /* SWARM_IPC_INVARIANT_H */
