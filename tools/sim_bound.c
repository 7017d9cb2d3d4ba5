/* sim_bound.c: how good can a policy get on a trace (see sim.h, docs/simulator.md "The
 * clairvoyant bound"). Two numbers, both from the trace's arrivals counted in advance on a
 * grid of slots (the same generator and seed as the run):
 *
 * - a lower bound on the device-seconds of any schedule of the pool that misses at most a
 *   given number of requests (static provisioning's misses): a device that serves at some
 *   time tau was on since tau - warm-up at the latest (or since 0, warm), so at every time t
 *   at least as many devices are on as must serve somewhere in [t, t + warm-up]; and the
 *   requests that arrive in [a, b) and meet the objective are served within [a, b + O) at no
 *   more than a device's best rate each, so that window needs their count / (rate * (b - a +
 *   O)) devices in it. Summed over the grid, with the serving time of all requests at that
 *   rate as a floor;
 * - a schedule that sees the whole trace (the "clairvoyant" policy): each slot's devices
 *   sized on the arrivals around it at a fraction rho of the best rate, each device woken a
 *   warm-up ahead of its need and drained after it; replayed in the simulator, with rho
 *   bisected to the largest that still reaches static provisioning's attainment. Its
 *   device-seconds are an upper bound, really achieved, on the best a schedule can do.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sim.h"
#include "tools/sim_internal.h"

/* Slots at most: a grid finer than half the objective only when the run is short enough. */
#define BOUND_MAX_SLOTS (1u << 22)
/* The lengths of the windows tried, in slots, grow by this factor (at least one slot). */
#define BOUND_LADDER 1.19
/* The clairvoyant schedule sizes a slot on windows of up to this many objectives (and at most
 * a warm-up): long enough to smooth a Poisson slot's noise, short enough that a window
 * reaching past a burst's edge keeps few devices on before and after it. Measured against
 * 4, 6, 12 and 20 objectives and a whole warm-up on the traces of docs/simulator.md. */
#define BOUND_UB_WINDOW_O 8
/* Bisection steps on rho after the first feasible one (from [0.5, 1]: to within 1/64). */
#define BOUND_STEPS 5

/* The arrivals per slot of the grid, and the service figures the bounds use. */
struct grid {
	uint32_t *a; /* arrivals in slot i: [i h, (i + 1) h) */
	size_t n;
	uint64_t h_ns, end_ns, warmup_ns, objective_ns;
	uint64_t requests;
	uint64_t best_b, best_ns; /* a device's best rate: best_b requests per best_ns */
};

static void grid_free(struct grid *g) { free(g->a); }

static int grid_init(struct grid *g, const struct swarm_sim_opts *o, char *err, size_t err_len)
{
	memset(g, 0, sizeof *g);
	int rc = swarm_sim_opts_check(o, err, err_len);
	if (rc)
		return rc;
	double dur = o->duration_s > 0 ? o->duration_s : o->trace->duration_s;
	g->end_ns = (uint64_t)llround(dur * 1e9);
	g->warmup_ns = (uint64_t)llround(o->warmup_ms * 1e6);
	g->objective_ns = (uint64_t)llround(o->objective_us * 1e3);
	g->h_ns = g->objective_ns / 2 ? g->objective_ns / 2 : 1;
	if (g->end_ns / g->h_ns >= BOUND_MAX_SLOTS)
		g->h_ns = g->end_ns / BOUND_MAX_SLOTS + 1;
	g->n = (size_t)(g->end_ns / g->h_ns) + 1;
	/* b / svc(b) is largest at the batch whose rows cost least each (the sim's rounding). */
	for (uint64_t b = 1; b <= o->max_batch; b++) {
		uint64_t ns = (uint64_t)llround((o->base_us + o->per_row_us * (double)b) * 1e3);
		if (!g->best_b || b * g->best_ns > g->best_b * ns) {
			g->best_b = b;
			g->best_ns = ns;
		}
	}
	g->a = calloc(g->n, sizeof *g->a);
	if (!g->a)
		return -ENOMEM;
	struct swarm_sim_gen gen;
	swarm_sim_gen_init(&gen, o->trace, o->seed, (double)g->end_ns / 1e9);
	for (uint64_t t; (t = swarm_sim_gen_next(&gen)) != SIM_NEVER && t < g->end_ns;) {
		g->a[t / g->h_ns]++;
		g->requests++;
	}
	return 0;
}

/* Devices that serve n requests within span_ns at rate/util each: ceil(n * best_ns /
 * (best_b * span_ns * util)). */
static uint32_t devices_for(const struct grid *g, uint64_t n, uint64_t span_ns, double util)
{
	if (!n)
		return 0;
	if (util >= 1) {
		/* Exact: the lower bound must not round its way up. */
		unsigned __int128 num = (unsigned __int128)n * g->best_ns;
		unsigned __int128 den = (unsigned __int128)g->best_b * span_ns;
		unsigned __int128 k = (num + den - 1) / den;
		return k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
	}
	double k = ceil((double)n * (double)g->best_ns / ((double)g->best_b * span_ns * util));
	return k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
}

/* out[i] = max(out[i], max of v[j] for j in [i + off, i + off + w)), v read as 0 outside
 * [0, n_v); i in [0, n_out). A monotonic deque of indices: O(n) whatever w. */
static int sliding_max(const uint32_t *v, size_t n_v, uint32_t *out, size_t n_out, ptrdiff_t off,
		       size_t w)
{
	size_t *dq = malloc((n_out + w + 1) * sizeof *dq);
	if (!dq)
		return -ENOMEM;
	size_t head = 0, tail = 0;
	ptrdiff_t next = off; /* the next index of v to push */
	for (size_t i = 0; i < n_out; i++) {
		ptrdiff_t lo = (ptrdiff_t)i + off, hi = lo + (ptrdiff_t)w; /* [lo, hi) */
		for (; next < hi; next++) {
			if (next < 0 || (size_t)next >= n_v)
				continue;
			while (tail > head && v[dq[tail - 1]] <= v[next])
				tail--;
			dq[tail++] = (size_t)next;
		}
		while (tail > head && (ptrdiff_t)dq[head] < lo)
			head++;
		if (tail > head && v[dq[head]] > out[i])
			out[i] = v[dq[head]];
	}
	free(dq);
	return 0;
}

/* For each window length len of the ladder up to max_len slots (and max_len itself): the
 * devices a window's arrivals need (less `misses`, served within the window plus the
 * objective, at util), as a function of its first slot; out[i] is the max of out[i] and of
 * that over the windows that start in [i + off, i + off + max_len - len] (within), or over
 * those that hold slot i (holding). */
static int windows_max(const struct grid *g, size_t max_len, int holding, ptrdiff_t off,
		       uint64_t misses, double util, uint32_t *out)
{
	uint64_t *pre = malloc((g->n + 1) * sizeof *pre);
	uint32_t *dev = malloc(g->n * sizeof *dev);
	int rc = pre && dev ? 0 : -ENOMEM;
	if (!rc) {
		pre[0] = 0;
		for (size_t i = 0; i < g->n; i++)
			pre[i + 1] = pre[i] + g->a[i];
	}
	for (size_t len = 1; !rc && len <= max_len;) {
		for (size_t i = 0; i < g->n; i++) {
			size_t end = i + len < g->n ? i + len : g->n;
			uint64_t n = pre[end] - pre[i];
			n = n > misses ? n - misses : 0;
			dev[i] = devices_for(g, n, len * g->h_ns + g->objective_ns, util);
		}
		if (holding)
			rc = sliding_max(dev, g->n, out, g->n, 1 - (ptrdiff_t)len, len);
		else
			rc = sliding_max(dev, g->n, out, g->n, off, max_len - len + 1);
		size_t nl = (size_t)((double)len * BOUND_LADDER);
		if (len == max_len)
			break;
		len = nl > len ? nl : len + 1;
		if (len > max_len)
			len = max_len;
	}
	free(pre);
	free(dev);
	return rc;
}

/* (long: the bound's two terms and its report, kept together to be read as one proof) */
int swarm_sim_bound(const struct swarm_sim_opts *o, uint64_t allowed_misses,
		    struct swarm_sim_bound *b, char *err, size_t err_len)
{
	memset(b, 0, sizeof *b);
	struct grid g;
	int rc = grid_init(&g, o, err, err_len);
	if (rc)
		goto out;
	uint32_t *k = calloc(g.n, sizeof *k);
	if (!k) {
		rc = -ENOMEM;
		goto out;
	}
	/* Slot i: for t in [i h, (i + 1) h), the devices that serve somewhere in
	 * [(i + 1) h, i h + W) are on at t. Windows of arrivals [a, b) with a >= (i + 1) h and
	 * b + O <= i h + W: slots i + 1 .. i + D, D = floor((W - O) / h) - 1. */
	uint64_t span = g.warmup_ns > g.objective_ns ? (g.warmup_ns - g.objective_ns) / g.h_ns : 0;
	if (span >= 2)
		rc = windows_max(&g, span - 1, 0, 1, allowed_misses, 1, k);
	uint32_t pool = o->max_devices;
	uint64_t level_ns = 0;
	for (size_t i = 0; !rc && i < g.n; i++) {
		uint32_t ki = k[i] < pool ? k[i] : pool;
		uint64_t from = i * g.h_ns,
			 to = from + g.h_ns < g.end_ns ? from + g.h_ns : g.end_ns;
		if (to > from)
			level_ns += (uint64_t)ki * (to - from);
		if (ki > b->peak)
			b->peak = ki;
	}
	free(k);
	uint64_t served = g.requests > allowed_misses ? g.requests - allowed_misses : 0;
	b->level_device_seconds = (double)level_ns / 1e9;
	b->fluid_device_seconds = (double)served * (double)g.best_ns / (double)g.best_b / 1e9;
	b->device_seconds = fmax(b->level_device_seconds, b->fluid_device_seconds);
	b->device_rate = (double)g.best_b / ((double)g.best_ns / 1e9);
	b->slot_s = (double)g.h_ns / 1e9;
	b->requests = g.requests;
	b->allowed_misses = allowed_misses;
out:
	grid_free(&g);
	return rc;
}

static int push_switch(struct swarm_sim_schedule *sc, size_t *cap, uint64_t t, uint32_t dev,
		       uint32_t kind)
{
	if (sc->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct swarm_sim_switch *nv = realloc(sc->v, ncap * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		sc->v = nv;
		*cap = ncap;
	}
	sc->v[sc->n++] = (struct swarm_sim_switch){ t, dev, kind };
	return 0;
}

/* Device j - 1 is on wherever on[i] >= j: switches where on[] changes. At time 0 the first
 * `warm` devices are warm already (the policy's --start). */
static int levels_to_switches(const struct grid *g, const uint32_t *on, uint32_t warm,
			      struct swarm_sim_schedule *sc)
{
	size_t cap = 0;
	uint32_t prev = 0;
	int rc = 0;
	for (size_t i = 0; !rc && i < g->n; i++) {
		uint64_t t = i * g->h_ns;
		for (uint32_t d = prev; !rc && d < on[i]; d++)
			rc = push_switch(sc, &cap, t, d,
					 !i && d < warm ? SWARM_SIM_SWITCH_WARM :
							  SWARM_SIM_SWITCH_WAKE);
		for (uint32_t d = on[i]; !rc && d < prev; d++)
			rc = push_switch(sc, &cap, t, d, SWARM_SIM_SWITCH_OFF);
		prev = on[i];
	}
	return rc;
}

int swarm_sim_schedule_build(const struct swarm_sim_opts *o, double util,
			     struct swarm_sim_schedule *sc, char *err, size_t err_len)
{
	memset(sc, 0, sizeof *sc);
	if (!(util > 0 && util <= 1))
		return sim_set_err(err, err_len, -EINVAL, "utilization: in (0, 1]");
	struct grid g;
	int rc = grid_init(&g, o, err, err_len);
	uint32_t *need = rc ? NULL : calloc(g.n, sizeof *need);
	uint32_t *on = rc ? NULL : calloc(g.n, sizeof *on);
	if (!rc && (!need || !on))
		rc = -ENOMEM;
	/* Slot i serves every window of up to BOUND_UB_WINDOW_O objectives that holds it, at util.
	 */
	uint64_t max_ns = g.warmup_ns < BOUND_UB_WINDOW_O * g.objective_ns ?
				  g.warmup_ns :
				  BOUND_UB_WINDOW_O * g.objective_ns;
	size_t max_len = (size_t)(max_ns / g.h_ns);
	if (!rc)
		rc = windows_max(&g, max_len ? max_len : 1, 1, 0, 0, util, need);
	/* On a warm-up ahead of the need: slots i .. i + ceil(W / h). */
	if (!rc)
		rc = sliding_max(need, g.n, on, g.n, 0, (g.warmup_ns + g.h_ns - 1) / g.h_ns + 1);
	uint32_t warm = o->start_devices == UINT32_MAX ? o->min_devices : o->start_devices;
	for (size_t i = 0; !rc && i < g.n; i++)
		if (on[i] > o->max_devices)
			on[i] = o->max_devices;
	if (!rc)
		rc = levels_to_switches(&g, on, warm, sc);
	free(need);
	free(on);
	grid_free(&g);
	if (rc)
		swarm_sim_schedule_free(sc);
	return rc;
}

void swarm_sim_schedule_free(struct swarm_sim_schedule *sc)
{
	free(sc->v);
	sc->v = NULL;
	sc->n = 0;
}

/* One replay of the schedule sized at util into r. */
static int replay(const struct swarm_sim_opts *o, double util, struct swarm_sim_report *r,
		  size_t *switches, char *err, size_t err_len)
{
	struct swarm_sim_schedule sc;
	int rc = swarm_sim_schedule_build(o, util, &sc, err, err_len);
	if (rc)
		return rc;
	struct swarm_sim_opts oc = *o;
	oc.static_devices = 0;
	oc.schedule = &sc;
	rc = swarm_sim_run(&oc, r, err, err_len);
	*switches = sc.n;
	swarm_sim_schedule_free(&sc);
	return rc;
}

/* Keeps r as the best replay when it reaches the target more cheaply (or, with none
 * reaching it yet, meets more); frees it otherwise. */
static void keep_best(struct swarm_sim_report *best, int *have, struct swarm_sim_report *r,
		      uint64_t target_met, struct swarm_sim_clairvoyant *c, double util,
		      size_t switches)
{
	int ok = r->met >= target_met;
	int better = !*have || (ok && (!c->reached || r->device_seconds < best->device_seconds)) ||
		     (!ok && !c->reached && r->met > best->met);
	if (!better) {
		swarm_sim_report_free(r);
		return;
	}
	if (*have)
		swarm_sim_report_free(best);
	*best = *r;
	*have = 1;
	c->reached = ok;
	c->utilization = util;
	c->switches = switches;
}

/* One step of the search: replays util, keeps the report if it is the best; *ok when it
 * met the target. */
static int try_util(const struct swarm_sim_opts *o, uint64_t target_met, double util,
		    struct swarm_sim_report *best, int *have, struct swarm_sim_clairvoyant *c,
		    int *ok, char *err, size_t err_len)
{
	struct swarm_sim_report t;
	size_t sw = 0;
	int rc = replay(o, util, &t, &sw, err, err_len);
	c->replays++;
	if (rc)
		return rc;
	*ok = t.met >= target_met;
	keep_best(best, have, &t, target_met, c, util, sw);
	return 0;
}

int swarm_sim_clairvoyant_run(const struct swarm_sim_opts *o, uint64_t target_met,
			      struct swarm_sim_report *r, struct swarm_sim_clairvoyant *c,
			      char *err, size_t err_len)
{
	memset(c, 0, sizeof *c);
	memset(r, 0, sizeof *r);
	int have = 0, rc = 0, ok = 0;
	/* rho = 1 first; then halve until one reaches the target (at most to 1/8), then bisect
	 * between the last that failed and the first that reached it. */
	double bad = 0, good = 0;
	for (double util = 1; util >= 0.125 && !good; util /= 2) {
		rc = try_util(o, target_met, util, r, &have, c, &ok, err, err_len);
		if (rc)
			break;
		*(ok ? &good : &bad) = util;
	}
	for (int step = 0; !rc && good > 0 && bad > 0 && step < BOUND_STEPS; step++) {
		double util = (good + bad) / 2;
		rc = try_util(o, target_met, util, r, &have, c, &ok, err, err_len);
		if (!rc)
			*(ok ? &good : &bad) = util;
	}
	if (rc && have)
		swarm_sim_report_free(r);
	return rc;
}
