/* fanout.c: the plan of an NCCL weight fan-out (fanout.h). */
#include "runtime/fanout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int by_index(const void *a, const void *b)
{
	const struct swarm_fanout_dev *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

int swarm_fanout_plan(const struct swarm_fanout_dev *need, uint32_t n,
		      struct swarm_fanout_plan *out)
{
	if (!out || (n && !need) || n > SWARM_FANOUT_MAX)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	struct swarm_fanout_dev d[SWARM_FANOUT_MAX];
	if (n)
		memcpy(d, need, n * sizeof *d);
	qsort(d, n, sizeof *d, by_index);
	for (uint32_t i = 1; i < n; i++)
		if (d[i].index == d[i - 1].index)
			return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		int in_group = 0;
		for (uint32_t k = 0; d[i].gpu >= 0 && k < out->n_ranks && !in_group; k++)
			for (uint32_t j = 0; j < n; j++)
				if (d[j].index == out->ranks[k] && d[j].gpu == d[i].gpu)
					in_group = 1;
		if (d[i].gpu < 0 || in_group)
			out->alone[out->n_alone++] = d[i].index;
		else
			out->ranks[out->n_ranks++] = d[i].index;
	}
	if (out->n_ranks == 1) {
		/* A lone GPU device: nothing to broadcast. It loads first, as the root would. */
		memmove(out->alone + 1, out->alone, out->n_alone * sizeof *out->alone);
		out->alone[0] = out->ranks[0];
		out->n_alone++;
		out->n_ranks = 0;
	}
	return 0;
}
