/* test_as_trace.c: the autoscaler's decision trace (runtime/as_trace.h): a run of real
 * decisions written and replayed comes out the same, decision by decision; a changed action,
 * target or input is found, with its line; a memory id seen for the first time starts from
 * zero; malformed traces are refused with the line and why. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/as_trace.h"

#define SEC 1000000000ull

/* A trace of steps decisions of two models under a load that rises, bursts and falls, made by
 * calling the policy as swarmd does; model 1's memory is replaced by a fresh one (a new id)
 * halfway, as swarmd does when it forgets a model and follows it again. */
static char *make_trace(size_t *len, int steps)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	cr_assert_not_null(f);
	struct swarm_as_config cfg;
	swarm_as_config_default(&cfg);
	cfg.stable_window_ns = 5 * SEC;
	cfg.cooldown_ns = 2 * SEC;
	cr_assert_eq(swarm_as_trace_begin(f, &cfg), 0);
	struct swarm_as_memory mem[2] = { 0 };
	uint64_t ids[2] = { 1, 2 };
	const char *names[2] = { "ranker", "odd name\t%" };
	uint32_t versions[2] = { 3, 1 };
	uint32_t active[2] = { 1, 1 };
	for (int t = 0; t < steps; t++) {
		if (t == steps / 2) {
			ids[1] = 3;
			memset(&mem[1], 0, sizeof mem[1]);
		}
		double load = t < 10 ? 100.0 * t : t < 20 ? 5000.0 : 50.0;
		struct swarm_as_model m[2];
		for (int k = 0; k < 2; k++)
			m[k] = (struct swarm_as_model){
				.min_devices = 1,
				.max_devices = 16,
				.latency_p99_ns = 50000000,
				.rate_long = load * (k + 1) * 0.7,
				.rate_short = load * (k + 1),
				.service_rate = 400.0 + 0.1 * t,
				.busy = load / 5000.0,
				.queue_depth = t >= 10 && t < 13 ? 300u : 0u,
				.sessions = 4,
				.active = active[k],
			};
		struct swarm_as_action acts[8];
		uint32_t targets[2];
		uint64_t now = (uint64_t)t * SEC / 2;
		int n = swarm_as_decide(now, &cfg, m, mem, 2, 16, acts, 8, targets);
		cr_assert_geq(n, 0);
		cr_assert_eq(swarm_as_trace_decision(f, now, 16, m, names, versions, ids, 2, acts,
						     (size_t)n, targets),
			     0);
		for (int a = 0; a < n; a++)
			if (acts[a].kind == SWARM_AS_WAKE)
				active[acts[a].model] += acts[a].count;
			else if (active[acts[a].model] > acts[a].count)
				active[acts[a].model] -= acts[a].count;
	}
	fclose(f);
	return buf;
}

static int replay(const char *text, struct swarm_as_replay *r, char *err, size_t err_len)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	cr_assert_not_null(f);
	int rc = swarm_as_trace_replay(f, r, err, err_len);
	fclose(f);
	return rc;
}

Test(runtime_as_trace, a_run_of_decisions_replays_the_same)
{
	size_t len;
	char *t = make_trace(&len, 60);
	struct swarm_as_replay r;
	char err[256] = "";
	cr_assert_eq(replay(t, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.decisions, 60);
	cr_assert_eq(r.models, 120);
	cr_assert_gt(r.wakes, 0, "the burst woke nothing: the trace tests too little");
	cr_assert_gt(r.drains, 0, "nothing drained after it: the trace tests too little");
	cr_assert_eq(r.mismatches, 0, "line %llu: %s", (unsigned long long)r.first_mismatch_line,
		     r.first_mismatch);
	free(t);
}

/* Replaces the first occurrence of from after the first line starting with prefix. */
static char *edit(const char *t, const char *prefix, const char *from, const char *to)
{
	const char *at = strstr(t, prefix);
	cr_assert_not_null(at, "no %s", prefix);
	at = strstr(at, from);
	cr_assert_not_null(at);
	size_t head = (size_t)(at - t), n = strlen(t) - head - strlen(from);
	char *out = malloc(head + strlen(to) + n + 1);
	memcpy(out, t, head);
	strcpy(out + head, to);
	strcat(out, at + strlen(from));
	return out;
}

Test(runtime_as_trace, a_changed_action_or_input_is_found_with_its_line)
{
	size_t len;
	char *t = make_trace(&len, 60);
	struct swarm_as_replay r;
	char err[256] = "";
	/* The first wake, traced as waking one device more. */
	const char *w = strstr(t, "\naction 1 ");
	cr_assert_not_null(w);
	char line[64];
	unsigned kind, model, count, reason;
	cr_assert_eq(sscanf(w + 1, "action %u %u %u %u", &kind, &model, &count, &reason), 4);
	snprintf(line, sizeof line, "action 1 %u %u %u", model, count, reason);
	char changed[64];
	snprintf(changed, sizeof changed, "action 1 %u %u %u", model, count + 1, reason);
	char *bad = edit(t, line, line, changed);
	cr_assert_eq(replay(bad, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.mismatches, 1);
	cr_assert_gt(r.first_mismatch_line, 2);
	cr_assert(strstr(r.first_mismatch, "traced"), "%s", r.first_mismatch);
	free(bad);
	/* An input changed (the first model's short rate, a hundredfold): the policy answers
	 * otherwise there. */
	bad = edit(t, "\nmodel 1 ranker 3 1 16 50000000 0x0p+0 0x0p+0", "0x0p+0 0x0p+0",
		   "0x0p+0 0x1.86ap+15");
	cr_assert_eq(replay(bad, &r, err, sizeof err), 0, "%s", err);
	cr_assert_geq(r.mismatches, 1, "a different input replayed the same: nothing is checked");
	free(bad);
	free(t);
}

Test(runtime_as_trace, a_new_memory_id_starts_from_zero)
{
	size_t len;
	char *t = make_trace(&len, 60);
	/* Traced with the second model's memory replaced halfway (id 2, then 3): replaying it
	 * with the id kept (memory carried over) would differ if the memory mattered there.
	 * Either way the trace as written replays the same. */
	struct swarm_as_replay r;
	char err[256] = "";
	cr_assert_eq(replay(t, &r, err, sizeof err), 0, "%s", err);
	cr_assert_eq(r.mismatches, 0);
	cr_assert(strstr(t, "\nmodel 3 odd%20name%09%25 1 "), "the name is not escaped: %s", t);
	free(t);
}

Test(runtime_as_trace, malformed_traces_are_refused_with_the_line)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "", "empty" },
		{ "not a trace\n", "not a trace" },
		{ "swarm-autoscale-trace 2\ndecide 1 2 0\n", "before the config" },
		{ "swarm-autoscale-trace 2\nconfig 0x1p-1 0 2 0x1p-1 1\n", "9 fields" },
		{ "swarm-autoscale-trace 2\nconfig 0x1.3333333333333p-1 0x1.999999999999ap-4 "
		  "0x1p+1 0x1p-1 60000000000 30000000000 300000000000 0x1.999999999999ap-1 1\nmodel 1 a 1 1 1 0 0x0p+0 0x0p+0 0x0p+0 "
		  "0x0p+0 0 0 0 0 0 0 0 0 0x0p+0 0x0p+0\n",
		  "outside its decision" },
		{ "swarm-autoscale-trace 2\nconfig 0x1.3333333333333p-1 0x1.999999999999ap-4 "
		  "0x1p+1 0x1p-1 60000000000 30000000000 300000000000 0x1.999999999999ap-1 1\ndecide 1 2 1\naction 1 0 1 1\n",
		  "outside its decision" },
		{ "swarm-autoscale-trace 2\nconfig 0x1.3333333333333p-1 0x1.999999999999ap-4 "
		  "0x1p+1 0x1p-1 60000000000 30000000000 300000000000 0x1.999999999999ap-1 1\ndecide 1 2 2\nmodel 1 a 1 1 1 0 0x0p+0 "
		  "0x0p+0 0x0p+0 0x0p+0 0 0 0 0 0 0 0 0 0x0p+0 0x0p+0\n",
		  "2 models, 1 followed" },
		{ "swarm-autoscale-trace 2\nconfig 0x1.3333333333333p-1 0x1.999999999999ap-4 "
		  "0x1p+1 0x1p-1 60000000000 30000000000 300000000000 0x1.999999999999ap-1 1\ndecide 1 2 1\nmodel 1 a 1 1 1 0 0x0p+0\n",
		  "20 fields" },
		{ "swarm-autoscale-trace 2\nconfig 0x1.3333333333333p-1 0x1.999999999999ap-4 "
		  "0x1p+1 0x1p-1 60000000000 30000000000 300000000000 0x1.999999999999ap-1 1\nfrob 1\n",
		  "unknown record" },
		{ "swarm-autoscale-trace 2\nconfig 0x0p+0 0x1.999999999999ap-4 0x1p+1 0x1p-1 "
		  "60000000000 30000000000 300000000000 0x1.999999999999ap-1 1\ndecide 1 2 0\n",
		  "refused" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct swarm_as_replay r;
		char err[256] = "";
		cr_assert_eq(replay(bad[i].text, &r, err, sizeof err), -EINVAL, "case %zu", i);
		cr_assert(strstr(err, bad[i].why), "case %zu: \"%s\" lacks \"%s\"", i, err,
			  bad[i].why);
		cr_assert(!strncmp(err, "line ", 5), "case %zu: no line: %s", i, err);
	}
}
