/* bench_report.c: swarm-bench's output: the machine's line, the table of every row with its
 * target and whether it was met, the notes under it, and the --json document (one record per
 * case; tests/tools/test_json.c reads it). */
#include "bench/swarm_bench.h"
#include "tools/json_out.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

void bench_machine_get(struct bench_machine *m)
{
	struct utsname u;
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "re");

	m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(m->cpu, sizeof(m->cpu), "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) != 0 || !colon)
			continue;
		colon += 1 + (colon[1] == ' ');
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(m->cpu, sizeof(m->cpu), "%s", colon);
		break;
	}
	if (f)
		fclose(f);
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
	else
		snprintf(m->kernel, sizeof(m->kernel), "unknown");
}

static void bench_fmt(char *buf, size_t len, const char *unit, double v)
{
	const bool hundredths = strcmp(unit, "GB/s") == 0 || strcmp(unit, "%") == 0;

	snprintf(buf, len, hundredths ? "%.2f" : "%.0f", v);
}

void bench_table_print(const struct bench_report *rep)
{
	printf("\n%-32s %-4s %9s %9s %9s | %-20s %9s %9s %9s | %7s  %-24s %s\n", "case", "unit",
	       "p50", "p99", "p99.9", "baseline", "p50", "p99", "p99.9", "ratio", "target", "met");
	for (int i = 0; i < rep->n; i++) {
		const struct bench_row *r = &rep->rows[i];
		char v[6][32];

		if (r->skipped) {
			printf("%-32s skipped (the reason is below)\n", r->name);
			continue;
		}
		bench_fmt(v[0], sizeof(v[0]), r->unit, r->s.p50);
		bench_fmt(v[1], sizeof(v[1]), r->unit, r->s.p99);
		bench_fmt(v[2], sizeof(v[2]), r->unit, r->s.p999);
		bench_fmt(v[3], sizeof(v[3]), r->unit, r->b.p50);
		bench_fmt(v[4], sizeof(v[4]), r->unit, r->b.p99);
		bench_fmt(v[5], sizeof(v[5]), r->unit, r->b.p999);
		printf("%-32s %-4s %9s %9s %9s | %-20s %9s %9s %9s | %6.2fx  %-24s %s\n", r->name,
		       r->unit, v[0], v[1], v[2], r->base_name, v[3], v[4], v[5], r->ratio,
		       r->target ? r->target : "-",
		       !r->target    ? "-" :
		       r->unresolved ? "noise" :
		       r->met        ? "yes" :
				       "NO");
	}
	printf("(GB/s rows: p99 and p99.9 are the bandwidth 99%% and 99.9%% of iterations "
	       "reached. Ratio: swarm/baseline p50, or baseline/swarm for the transport rows;\n"
	       " req/s rows: one throughput per run, in every column, ratio batched/unbatched.)\n");
	for (int i = 0; i < rep->n; i++)
		if (rep->rows[i].note[0])
			printf("%s: %s\n", rep->rows[i].name, rep->rows[i].note);
}

static json_t *bench_json_row(const struct bench_row *r)
{
	if (r->skipped)
		return json_pack("{s:o, s:b, s:o}", "name", swarm_json_str(r->name), "skipped", 1,
				 "note", swarm_json_str(r->note));
	json_t *j = json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:o}", "name",
		swarm_json_str(r->name), "unit", swarm_json_str(r->unit), "p50",
		swarm_json_number("%.3f", r->s.p50), "p99", swarm_json_number("%.3f", r->s.p99),
		"p999", swarm_json_number("%.3f", r->s.p999), "baseline", "name",
		swarm_json_str(r->base_name), "p50", swarm_json_number("%.3f", r->b.p50), "p99",
		swarm_json_number("%.3f", r->b.p99), "p999", swarm_json_number("%.3f", r->b.p999),
		"ratio", swarm_json_number("%.4f", r->ratio), "target",
		r->target ? swarm_json_str(r->target) : json_null(), "met",
		!r->target || r->unresolved ? json_null() : json_boolean(r->met));
	if (r->note[0])
		json_object_set_new(j, "note", swarm_json_str(r->note));
	return j;
}

int bench_json_write(const char *path, const struct bench_machine *m, const struct bench_opts *o,
		     const struct bench_report *rep)
{
	FILE *f = fopen(path, "we");
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: cannot write %s: %s\n", path, strerror(-rc));
		return rc;
	}
	json_t *cases = json_array();
	for (int i = 0; i < rep->n; i++)
		json_array_append_new(cases, bench_json_row(&rep->rows[i]));
	rc = swarm_json_write(f, json_pack("{s:{s:I, s:o, s:o}, s:o, s:b, s:o}", "machine", "nproc",
					   (json_int_t)m->nproc, "cpu", swarm_json_str(m->cpu),
					   "kernel", swarm_json_str(m->kernel), "swarmd",
					   swarm_json_str(o->socket ? o->socket : "own"), "quick",
					   o->n.spin < bench_full_counts.spin, "cases", cases));
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc)
		fprintf(stderr, "swarm-bench: writing %s failed: %s\n", path, strerror(-rc));
	return rc;
}
