/* fanout.h: who loads a model's weights from the registry and who receives them over NCCL when
 * several workers warm the same version at once (docs/devices.md, "NCCL fan-out"). A pure
 * function of a snapshot, like the balancer, so that its rules are tested on any machine.
 *
 * The rules:
 *   - a CPU device always loads for itself (its weights are the page cache's mapping: nothing
 *     to send);
 *   - GPU devices that need the version form one group when there are two or more with
 *     different GPUs (NCCL takes one rank per GPU); its root, the lowest device index, loads
 *     from the registry and broadcasts to the others, so the blob is read once;
 *   - only devices in need are passed: one already holding the version is never the root,
 *     since a broadcast stalls its worker (communicator set-up, then the copy), and a device
 *     that is serving must not stall;
 *   - a second device on a GPU already in the group (workers sharing a GPU) loads for itself,
 *     after the group, and a lone GPU device loads for itself: a one-rank broadcast moves
 *     nothing.
 */
#ifndef SWARM_RUNTIME_FANOUT_H
#define SWARM_RUNTIME_FANOUT_H

#include <stdint.h>

#define SWARM_FANOUT_MAX 64

struct swarm_fanout_dev {
	int index; /* swarmd's device index */
	int gpu;   /* CUDA ordinal, -1 for a CPU device */
};

struct swarm_fanout_plan {
	/* ranks[0] is the root; n_ranks is 0 or >= 2 */
	uint32_t n_ranks;
	int ranks[SWARM_FANOUT_MAX];
	/* devices that load from the registry by themselves */
	uint32_t n_alone;
	int alone[SWARM_FANOUT_MAX];
};

/* Plans the loads of one version by the n devices in need (n <= SWARM_FANOUT_MAX, in any
 * order, each index once). Returns 0, or -EINVAL (NULL, n too large, an index twice). */
int swarm_fanout_plan(const struct swarm_fanout_dev *need, uint32_t n,
		      struct swarm_fanout_plan *out);

#endif /* SWARM_RUNTIME_FANOUT_H */
