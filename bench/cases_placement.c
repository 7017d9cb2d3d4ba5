/* cases_placement.c: swarm-bench's cases on where sessions run and how the control plane
 * copes: numa and migration (bench/balance_bench.c), control (bench/control_bench.c). */
#include "bench/swarm_bench.h"
#include "bench/balance_bench.h"
#include "bench/control_bench.h"

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

/* The placement cases of bench/balance_bench.c. */
int bench_run_balance(struct bench_ctx *ctx, struct bench_report *rep)
{
	int quick = ctx->o.n.spin < bench_full_counts.spin;
	int rc;
	if (ctx->o.cases & BENCH_CASE_NUMA) {
		struct bench_balance_numa nu;
		rc = bench_balance_numa(ctx->exe_dir, quick, &nu);
		if (rc)
			return rc;
		struct bench_row *row = bench_row_add(rep, "64B numa local vs remote", "ns");
		if (nu.skipped) {
			row->skipped = true;
			snprintf(row->note, sizeof row->note, "skipped: %s", nu.why);
		} else {
			row->s = (struct bench_stats){ nu.local_p50, nu.local_p99, nu.local_p99 };
			row->base_name = "device of the other node";
			row->b =
				(struct bench_stats){ nu.remote_p50, nu.remote_p99, nu.remote_p99 };
			row->ratio = row->s.p50 / row->b.p50;
			snprintf(
				row->note, sizeof row->note,
				"%zu round trips each from a thread on node 0; p99.9 columns repeat "
				"p99",
				nu.iters);
		}
	}
	if (ctx->o.cases & BENCH_CASE_MIGRATION) {
		struct bench_balance_migration mg;
		/* The client follows its session over both cores: pinned to one, it would share
		 * it with a spinning worker half of the time. */
		cpu_set_t saved, all;
		sched_getaffinity(0, sizeof saved, &saved);
		CPU_ZERO(&all);
		for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; c++)
			CPU_SET((int)c, &all);
		sched_setaffinity(0, sizeof all, &all);
		rc = bench_balance_migration(ctx->exe_dir, quick, &mg);
		sched_setaffinity(0, sizeof saved, &saved);
		if (rc)
			return rc;
		struct bench_row *row = bench_row_add(rep, "migration pause", "ns");
		row->s = (struct bench_stats){ mg.pause_p50_us * 1e3, mg.pause_max_us * 1e3,
					       mg.pause_max_us * 1e3 };
		row->base_name = "round trip, no move";
		row->b = (struct bench_stats){ mg.rt_p50_ns, mg.rt_p99_ns, mg.rt_p99_ns };
		row->ratio = row->s.p50 / row->b.p50;
		snprintf(row->note, sizeof row->note,
			 "%zu moves (drain the serving device, then resume it); the p99 and p99.9 "
			 "columns hold the longest pause; swarmd's own detach-to-attach time, p50: "
			 "%.0f us; no request failed or was lost",
			 mg.moves, mg.swarmd_pause_p50_us);
	}
	return 0;
}

/* The control case of bench/control_bench.c. */
int bench_run_control(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct bench_control cb;
	int rc = bench_control(ctx->exe_dir, ctx->o.n.spin < bench_full_counts.spin, &cb);
	if (rc)
		return rc;
	struct bench_row *row = bench_row_add(rep, "control open+close", "op/s");
	const double oc = cb.open_close_per_s, cd = cb.connect_per_s;
	bench_row_measured(row, (struct bench_stats){ oc, oc, oc }, "connect+disconnect",
			   (struct bench_stats){ cd, cd, cd });
	snprintf(row->note, sizeof row->note,
		 "%u clients at once, each its own connection, a small identity session opened "
		 "and closed in a loop (an open creates the segment and its eventfds and is "
		 "attached by a worker); baseline: the same clients connecting (hello) and "
		 "disconnecting; ratio swarm/baseline",
		 cb.clients);
	row = bench_row_add(rep, "control status, 1000 sessions", "ns");
	if (cb.status_skipped) {
		row->skipped = true;
		snprintf(row->note, sizeof row->note, "skipped: %s", cb.why);
		printf("swarm-bench: control status: %s\n", row->note);
		return 0;
	}
	bench_row_measured(
		row, (struct bench_stats){ cb.status_p50_ns, cb.status_p99_ns, cb.status_p99_ns },
		"no session open",
		(struct bench_stats){ cb.idle_p50_ns, cb.idle_p99_ns, cb.idle_p99_ns });
	snprintf(row->note, sizeof row->note,
		 "`swarm status` from its start to its exit, %u runs each, with %u sessions open "
		 "(it lists the first 256) and with none; p99.9 columns repeat p99",
		 cb.status_runs, cb.sessions);
	printf("row: control: %.0f open+close/s (connect+disconnect %.0f/s); status p50 %.2f ms "
	       "with %u sessions, %.2f ms with none\n",
	       cb.open_close_per_s, cb.connect_per_s, cb.status_p50_ns / 1e6, cb.sessions,
	       cb.idle_p50_ns / 1e6);
	return 0;
}
