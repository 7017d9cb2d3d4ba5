/* sim_internal.h: the pieces both of swarm-sim's simulations use (tools/sim.c, one model;
 * tools/sim_multi.c, many): a FIFO of arrival times, the exact latency histogram of the
 * report, the per-tick cumulative windows the measurements are differences of, and the
 * min-heap of pending events keyed by time. Header inlines, because they sit on the
 * simulations' hot paths and are small; internal to tools/ (not installed).
 */
#ifndef SWARM_TOOLS_SIM_INTERNAL_H
#define SWARM_TOOLS_SIM_INTERNAL_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ipc/invariant.h"

#define SIM_NEVER UINT64_MAX

/* Writes a message into err and returns code: a parser's error in one statement. */
__attribute__((format(printf, 4, 5))) static inline int sim_set_err(char *err, size_t err_len,
								    int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return code;
}

/* The checks of the options both simulations take (tools/sim_opts.c): NULL when all are in
 * range, else which is not and its range. */
const char *sim_check_timing(double warmup_ms, double tick_ms, double duration_s,
			     double short_window_s, uint64_t stable_window_ns);

/* ---- a FIFO of arrival times (ns), a growing ring ------------------------------------------ */

struct sim_fifo {
	uint64_t *v;
	size_t cap, head, len;
};

static inline int sim_fifo_push(struct sim_fifo *f, uint64_t t)
{
	if (f->len == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 16;
		uint64_t *nv = malloc(ncap * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		for (size_t i = 0; i < f->len; i++)
			nv[i] = f->v[(f->head + i) & (f->cap - 1)];
		free(f->v);
		f->v = nv;
		f->cap = ncap;
		f->head = 0;
	}
	f->v[(f->head + f->len++) & (f->cap - 1)] = t;
	return 0;
}

static inline uint64_t sim_fifo_pop(struct sim_fifo *f)
{
	SWARM_INVARIANT(f->len > 0);
	uint64_t t = f->v[f->head];
	f->head = (f->head + 1) & (f->cap - 1);
	f->len--;
	return t;
}

/* Moves the k times after the first skip (skip + k <= len) to the back of to, in order: the
 * first skip stay at the front of f. */
static inline int sim_fifo_move(struct sim_fifo *f, size_t skip, size_t k, struct sim_fifo *to)
{
	SWARM_INVARIANT(skip + k <= f->len);
	for (size_t i = 0; i < k; i++)
		if (sim_fifo_push(to, f->v[(f->head + skip + i) & (f->cap - 1)]) < 0)
			return -ENOMEM;
	for (size_t i = skip; i-- > 0;)
		f->v[(f->head + i + k) & (f->cap - 1)] = f->v[(f->head + i) & (f->cap - 1)];
	f->head = (f->head + k) & (f->cap - 1);
	f->len -= k;
	return 0;
}

/* The oldest time, which must be there. */
static inline uint64_t sim_fifo_head(const struct sim_fifo *f)
{
	SWARM_INVARIANT(f->len > 0);
	return f->v[f->head];
}

/* ---- the report's latencies ---------------------------------------------------------------- */

/* Log-linear in ns with 1024 buckets per power of two (0.1% wide), each keeping its sum too,
 * so that a quantile is its bucket's mean: exact when the bucket holds one value. */
#define SIM_LAT_SUB_BITS 10
#define SIM_LAT_SUB (1u << SIM_LAT_SUB_BITS)
#define SIM_LAT_BUCKETS ((64 - SIM_LAT_SUB_BITS + 1) * SIM_LAT_SUB)

struct sim_lat {
	uint64_t *count; /* SIM_LAT_BUCKETS */
	double *sum;     /* SIM_LAT_BUCKETS */
	double total;
	uint64_t max, completed;
};

static inline uint32_t sim_lat_bucket(uint64_t v)
{
	if (v < 2 * SIM_LAT_SUB)
		return (uint32_t)v;
	uint32_t shift = 63u - (uint32_t)__builtin_clzll(v) - SIM_LAT_SUB_BITS;
	return (shift + 1) * SIM_LAT_SUB + (uint32_t)((v >> shift) & (SIM_LAT_SUB - 1));
}

/* 0 or -ENOMEM; sim_lat_free in either case. */
static inline int sim_lat_init(struct sim_lat *l)
{
	*l = (struct sim_lat){ 0 };
	l->count = calloc(SIM_LAT_BUCKETS, sizeof *l->count);
	l->sum = calloc(SIM_LAT_BUCKETS, sizeof *l->sum);
	return l->count && l->sum ? 0 : -ENOMEM;
}

static inline void sim_lat_free(struct sim_lat *l)
{
	free(l->count);
	free(l->sum);
}

static inline void sim_lat_add(struct sim_lat *l, uint64_t lat)
{
	uint32_t b = sim_lat_bucket(lat);
	l->count[b]++;
	l->sum[b] += (double)lat;
	l->total += (double)lat;
	if (lat > l->max)
		l->max = lat;
	l->completed++;
}

/* The nearest-rank quantile q in us (its bucket's mean), 0 with nothing completed. */
static inline double sim_lat_quantile_us(const struct sim_lat *l, double q)
{
	if (!l->completed)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)l->completed);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t b = 0; b < SIM_LAT_BUCKETS; b++) {
		seen += l->count[b];
		if (seen >= rank)
			return l->sum[b] / (double)l->count[b] / 1e3;
	}
	return (double)l->max / 1e3;
}

static inline double sim_lat_mean_us(const struct sim_lat *l)
{
	return l->completed ? l->total / (double)l->completed / 1e3 : 0;
}

/* ---- windows over ticks -------------------------------------------------------------------- */

/* Cumulative per-tick counts: window sums are differences. */
struct sim_window {
	uint64_t *cum; /* cum[i % len]: the total up to the end of tick i */
	size_t len;
};

static inline uint64_t sim_window_sum(const struct sim_window *w, uint64_t tick, uint64_t n)
{
	return w->cum[tick % w->len] - w->cum[(tick - n) % w->len];
}

static inline void sim_window_set(struct sim_window *w, uint64_t tick, uint64_t total)
{
	w->cum[tick % w->len] = total;
}

/* ---- the heap of events -------------------------------------------------------------------- */

/* The key beside the id, so that sifting reads one array. */
struct sim_heap_entry {
	uint64_t next_ns;
	uint32_t id;
};

/* A min-heap on next_ns of ids 0..n_ids; pos[id] is where id is, -1 when it is not. The
 * caller allocates v and pos (n_ids each, pos set to -1). */
struct sim_heap {
	struct sim_heap_entry *v;
	int32_t *pos;
	uint32_t n;
};

static inline void sim_heap_swap(struct sim_heap *h, uint32_t a, uint32_t b)
{
	struct sim_heap_entry t = h->v[a];
	h->v[a] = h->v[b];
	h->v[b] = t;
	h->pos[h->v[a].id] = (int32_t)a;
	h->pos[h->v[b].id] = (int32_t)b;
}

static inline void sim_heap_fix(struct sim_heap *h, uint32_t i)
{
	while (i > 0 && h->v[i].next_ns < h->v[(i - 1) / 2].next_ns) {
		sim_heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		if (l < h->n && h->v[l].next_ns < h->v[m].next_ns)
			m = l;
		if (l + 1 < h->n && h->v[l + 1].next_ns < h->v[m].next_ns)
			m = l + 1;
		if (m == i)
			return;
		sim_heap_swap(h, i, m);
		i = m;
	}
}

/* Puts id where next_ns says: in the heap, moved, or out when SIM_NEVER. */
static inline void sim_heap_update(struct sim_heap *h, uint32_t id, uint64_t next_ns)
{
	if (h->pos[id] < 0) {
		if (next_ns == SIM_NEVER)
			return;
		h->pos[id] = (int32_t)h->n;
		h->v[h->n++] = (struct sim_heap_entry){ next_ns, id };
		sim_heap_fix(h, (uint32_t)h->pos[id]);
		return;
	}
	uint32_t i = (uint32_t)h->pos[id];
	h->v[i].next_ns = next_ns;
	if (next_ns == SIM_NEVER) {
		sim_heap_swap(h, i, --h->n);
		h->pos[id] = -1;
		if (i < h->n)
			sim_heap_fix(h, i);
		return;
	}
	sim_heap_fix(h, i);
}

/* The earliest time in the heap, SIM_NEVER when it is empty. */
static inline uint64_t sim_heap_top(const struct sim_heap *h)
{
	return h->n ? h->v[0].next_ns : SIM_NEVER;
}

#endif /* SWARM_TOOLS_SIM_INTERNAL_H */
