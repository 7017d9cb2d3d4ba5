/* seqlock.h: the one seqlock of swarm, for the placement fields of a session's segment
 * (device, node, worker, version, epoch, recovery head: ipc/segment.h). One writer, swarmd,
 * rewrites them when a session moves or switches versions; its client reads them from the
 * same shared memory, never blocking the writer.
 *
 * The protocol: the generation is odd while the writer changes the fields. A reader copies
 * the fields between two loads of the generation and keeps the copy only when both saw the
 * same even value. Fields are copied with plain loads into the reader's own memory and used
 * only after the check, so a torn copy is thrown away, never acted on.
 *
 * Every header inline: both sides are on paths where a call would be the largest cost. */
#ifndef SWARM_IPC_SEQLOCK_H
#define SWARM_IPC_SEQLOCK_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>

/* A reader gives up after this many tries (yielding the cpu after the first few): the writer
 * is one thread that holds a write for a few stores, so this many means it died in one. */
#define SWARM_SEQLOCK_TRIES 10000

/* The writer, before it changes the fields: the generation becomes odd. Only the writer
 * stores the generation. */
static inline void swarm_seqlock_write_begin(uint32_t *gen)
{
	uint32_t g = __atomic_load_n(gen, __ATOMIC_RELAXED);
	__atomic_store_n(gen, g + 1, __ATOMIC_RELAXED);
	/* The fence orders the odd store before every field store that follows (a store-store
	 * barrier on weakly ordered CPUs); it pairs with the reader's acquire fence in
	 * swarm_seqlock_read_end, so a reader that saw any new field sees the odd value on
	 * its second load. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/* The writer, after the fields: the generation becomes even again. */
static inline void swarm_seqlock_write_end(uint32_t *gen)
{
	uint32_t g = __atomic_load_n(gen, __ATOMIC_RELAXED);
	/* Release pairs with the reader's acquire load in swarm_seqlock_read_begin: a reader
	 * that sees this value sees every field stored before it. */
	__atomic_store_n(gen, g + 1, __ATOMIC_RELEASE);
}

/* The reader, before it copies the fields: the generation to check them against (odd: a
 * write is in progress, the copy will not be kept). */
static inline uint32_t swarm_seqlock_read_begin(const uint32_t *gen)
{
	/* Acquire pairs with the release store in swarm_seqlock_write_end. */
	return __atomic_load_n(gen, __ATOMIC_ACQUIRE);
}

/* The reader, after the copy: 1 when the copy is whole (no write began or was under way),
 * else 0 (copy again). */
static inline int swarm_seqlock_read_end(const uint32_t *gen, uint32_t start)
{
	/* The field loads complete before the generation is loaded again; pairs with the
	 * writer's release fence in swarm_seqlock_write_begin. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return !(start & 1) && __atomic_load_n(gen, __ATOMIC_RELAXED) == start;
}

/* Copies the fields with copy(ctx) until a whole copy is made. Returns 0, or -EAGAIN when no
 * whole copy could be made in SWARM_SEQLOCK_TRIES tries (the writer died mid-write, or the
 * segment is corrupt): the caller's copy is then not to be used. */
static inline int swarm_seqlock_read(const uint32_t *gen, void (*copy)(void *ctx), void *ctx)
{
	for (int tries = 0; tries < SWARM_SEQLOCK_TRIES; tries++) {
		uint32_t g = swarm_seqlock_read_begin(gen);
		if (!(g & 1)) {
			copy(ctx);
			if (swarm_seqlock_read_end(gen, g))
				return 0;
		}
		if (tries >= 16)
			sched_yield();
	}
	return -EAGAIN;
}

#endif /* SWARM_IPC_SEQLOCK_H */
