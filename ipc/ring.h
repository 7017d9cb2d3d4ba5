/* ring.h: the single-producer single-consumer queues of a session segment.
 *
 * A ring is an array of 64-bit entries of a power-of-two depth, with a tail index written only
 * by the producer and a head index written only by the consumer, each on its own cache line.
 * Indices run free (they wrap at 2^32); an entry sits at index & mask. Each side keeps a
 * private copy of the other side's index and reloads it only when the cached value says the
 * ring is full (producer) or empty (consumer), so that a busy pair moves the fewest lines.
 *
 * The other side may be hostile (a client can write any byte of its segment): an index that
 * puts more than depth entries between head and tail is reported as -EBADMSG, never trusted.
 * These helpers are inline because they are the data plane's hot path.
 */
#ifndef SWARM_IPC_RING_H
#define SWARM_IPC_RING_H

#include <errno.h>
#include <stdint.h>

struct swarm_ring_producer {
	uint32_t *tail;       /* shared, written by this side alone */
	const uint32_t *head; /* shared, written by the consumer alone */
	uint64_t *entries;
	uint32_t mask;
	uint32_t tail_local; /* our tail: the only writer never needs to re-read it */
	uint32_t head_cache; /* last head we loaded */
};

struct swarm_ring_consumer {
	uint32_t *head;       /* shared, written by this side alone */
	const uint32_t *tail; /* shared, written by the producer alone */
	const uint64_t *entries;
	uint32_t mask;
	uint32_t head_local;
	uint32_t tail_cache;
};

static inline void swarm_ring_producer_init(struct swarm_ring_producer *p, uint32_t *tail,
					    const uint32_t *head, uint64_t *entries, uint32_t depth)
{
	p->tail = tail;
	p->head = head;
	p->entries = entries;
	p->mask = depth - 1;
	/* Relaxed: at init nobody else moves these (the segment is new, or re-attached while
	 * the other side is quiet). */
	p->tail_local = __atomic_load_n(tail, __ATOMIC_RELAXED);
	p->head_cache = __atomic_load_n(head, __ATOMIC_ACQUIRE);
}

static inline void swarm_ring_consumer_init(struct swarm_ring_consumer *c, uint32_t *head,
					    const uint32_t *tail, const uint64_t *entries,
					    uint32_t depth)
{
	c->head = head;
	c->tail = tail;
	c->entries = entries;
	c->mask = depth - 1;
	c->head_local = __atomic_load_n(head, __ATOMIC_RELAXED);
	c->tail_cache = c->head_local;
}

/* Entries the producer sees as used, reloading the consumer's head. -EBADMSG if the head is
 * ahead of our tail or more than depth behind it. */
static inline int64_t swarm_ring_producer_used(struct swarm_ring_producer *p)
{
	/* Acquire pairs with the consumer's release store of head in swarm_ring_advance: once
	 * we see the new head, the consumer has finished reading the entries it freed. */
	p->head_cache = __atomic_load_n(p->head, __ATOMIC_ACQUIRE);
	uint32_t used = p->tail_local - p->head_cache;
	if (used > p->mask + 1u)
		return -EBADMSG;
	return used;
}

/* Appends v. Returns 0, -EAGAIN when the ring is full, -EBADMSG when the consumer's index
 * is corrupt. */
static inline int swarm_ring_push(struct swarm_ring_producer *p, uint64_t v)
{
	if ((uint32_t)(p->tail_local - p->head_cache) > p->mask) {
		int64_t used = swarm_ring_producer_used(p);
		if (used < 0)
			return (int)used;
		if (used > p->mask)
			return -EAGAIN;
	}
	p->entries[p->tail_local & p->mask] = v;
	p->tail_local++;
	/* Release pairs with the consumer's acquire load of tail in swarm_ring_available: the
	 * entry (and the slot it names) is written before the consumer can see the index. */
	__atomic_store_n(p->tail, p->tail_local, __ATOMIC_RELEASE);
	return 0;
}

/* Entries ready to consume, reloading the producer's tail when the cache says empty.
 * Returns the count (0 when empty) or -EBADMSG when the tail is behind our head or more than
 * depth ahead of it. */
static inline int64_t swarm_ring_available(struct swarm_ring_consumer *c)
{
	uint32_t n = c->tail_cache - c->head_local;
	if (n == 0) {
		/* Acquire pairs with the producer's release store of tail in swarm_ring_push. */
		uint32_t tail = __atomic_load_n(c->tail, __ATOMIC_ACQUIRE);
		n = tail - c->head_local;
		if (n > c->mask + 1u)
			return -EBADMSG; /* not cached: every later call says so too */
		c->tail_cache = tail;
	}
	return n;
}

/* Entry i (0-based) past the head; call only with i < what swarm_ring_available returned.
 * The caller reads the entry once and treats it as untrusted data. */
static inline uint64_t swarm_ring_peek(const struct swarm_ring_consumer *c, uint32_t i)
{
	return __atomic_load_n(&c->entries[(c->head_local + i) & c->mask], __ATOMIC_RELAXED);
}

/* Frees n entries at the head for the producer, with one store. */
static inline void swarm_ring_advance(struct swarm_ring_consumer *c, uint32_t n)
{
	c->head_local += n;
	/* Release pairs with the producer's acquire load of head in swarm_ring_producer_used:
	 * our reads of the entries happen before the producer may overwrite them. */
	__atomic_store_n(c->head, c->head_local, __ATOMIC_RELEASE);
}

/* True when nothing is visible to the consumer (reloads the tail). */
static inline int swarm_ring_empty(struct swarm_ring_consumer *c)
{
	return swarm_ring_available(c) == 0;
}

#endif /* SWARM_IPC_RING_H */
