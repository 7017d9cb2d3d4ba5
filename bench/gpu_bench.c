/* gpu_bench.c: swarm-gpu-bench, the GPU data path's benchmark (docs/gpu-check.md). Every figure
 * of swarm's is printed beside its baseline, measured in the same run on the same card:
 *
 *   h2d    host-to-device bandwidth of a session segment (a memfd mapping pinned with
 *          cudaHostRegister, as the worker pins one) against cudaMemcpy from pageable memory
 *          and from cudaMallocHost memory (kernels/cuda/gpu_bench.cu times them);
 *   load   a safetensors file of at least 4 GiB (f16 tensors), loaded as the worker loads one
 *          to a GPU (a blob reader feeding the CUDA device's upload_stream) in every mode:
 *          mmap, pread (the worker's thread count), register and pread with verification
 *          from a warm page cache, direct from a cold one (fsync + POSIX_FADV_DONTNEED),
 *          against safetensors.torch.load_file(..., device="cuda") (bench/gpu_load_torch.py)
 *          on the machine's own PyTorch. Targets: 3x safetensors, 80% of the best pinned h2d.
 *          The last load row names the fastest warm mode, and whether auto's rule agrees.
 *   gather a batch of 16 sessions' rows to the GPU by upload_many in each mode against the
 *          old host gather (bench/gpu_gather_bench.c): which mode should be the default.
 *
 * Without a GPU (or without CUDA built in) it prints "skipped: no GPU (<reason>)" and exits 0:
 * the ctest entry gpu_bench_skips pins that. Exit 1 means a measurement failed; a missed
 * target is read from the table, never the exit code.
 *
 * This file holds main, the rows and the h2d and gather sections; the model file and the
 * load section are in gpu_load_bench.c, joined by gpu_bench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <poll.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/gpu_bench.h"
#include "bench/gpu_gather_bench.h"
#include "kernels/cuda/gpu_bench.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"
#include "registry/blob_reader.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "registry/safetensors.h"
#include "runtime/build_info.h"

static struct gb_row rows[32];
static int n_rows;

struct gb_row *gb_row_add(const char *what)
{
	struct gb_row *r = &rows[n_rows < 31 ? n_rows++ : 31];

	memset(r, 0, sizeof *r);
	snprintf(r->what, sizeof r->what, "%s", what);
	return r;
}

/* Prints a row the moment it is measured ("row: what | figure | baseline | verdict"), so that
 * a run cut off later still has it; the table at the end prints every row again, filled. */
void gb_row_print(const struct gb_row *r)
{
	printf("row: %s | %s | %s | %s\n", r->what, r->figure, r->baseline, r->verdict);
	fflush(stdout);
}

/* "unsupported here: WHY" for a refusal of the platform (gpu-check counts these apart from
 * failures of swarm's code), printed at once and kept in the row's verdict. */
static void gb_row_unsupported(struct gb_row *r, const char *why)
{
	printf("unsupported here: %s\n", why);
	snprintf(r->verdict, sizeof r->verdict, "unsupported here: %.180s", why);
}

double gb_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double gb_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
/* ---- the rows ------------------------------------------------------------------------------- */

/* The h2d row, each mode measured on its own (a failed or refused mode leaves the others);
 * *pinned gets the best pinned GB/s measured (the load's 80% target), 0 when none was.
 * Returns 0, or the first failure's -errno (a refusal of the platform is not one). */
static int bench_h2d(const struct gb_opts *o, double *pinned)
{
	size_t bytes = (size_t)o->h2d_mib << 20;
	double best[SWARM_CUDA_H2D_MODE_COUNT] = { 0 }, med[SWARM_CUDA_H2D_MODE_COUNT] = { 0 };
	int rcs[SWARM_CUDA_H2D_MODE_COUNT] = { 0 };
	char why[SWARM_CUDA_H2D_MODE_COUNT][160] = { "" };
	int first = 0;
	struct gb_row *r = gb_row_add("h2d session segment (registered)");

	for (int m = 0; m < SWARM_CUDA_H2D_MODE_COUNT; m++) {
		rcs[m] = swarm_cuda_bench_h2d(m, bytes, o->iters, &best[m], &med[m]);
		if (rcs[m])
			snprintf(why[m], sizeof why[m], "%s", swarm_cuda_last_error());
		if (rcs[m] == -ENOTSUP)
			printf("h2d %-15s unsupported here: %s\n", swarm_cuda_h2d_mode_name(m),
			       why[m]);
		else if (rcs[m])
			printf("h2d %-15s FAILED: %s\n", swarm_cuda_h2d_mode_name(m), why[m]);
		else
			printf("h2d %-15s %d MiB x %d: best %.2f GB/s, median %.2f GB/s\n",
			       swarm_cuda_h2d_mode_name(m), o->h2d_mib, o->iters, best[m], med[m]);
		fflush(stdout);
		if (rcs[m] && rcs[m] != -ENOTSUP && !first)
			first = rcs[m];
	}
	const int reg = SWARM_CUDA_H2D_HOST_REGISTERED, mh = SWARM_CUDA_H2D_MALLOC_HOST,
		  pg = SWARM_CUDA_H2D_PAGEABLE;
	*pinned = best[mh] > best[reg] ? best[mh] : best[reg];
	if (rcs[reg] == 0)
		snprintf(r->figure, sizeof r->figure, "%.2f GB/s (median %.2f)", best[reg],
			 med[reg]);
	else
		snprintf(r->figure, sizeof r->figure, "%s",
			 rcs[reg] == -ENOTSUP ? "unsupported here" : "FAILED");
	char a[16] = "FAILED", b[16] = "FAILED";
	if (!rcs[mh])
		snprintf(a, sizeof a, "%.2f", best[mh]);
	if (!rcs[pg])
		snprintf(b, sizeof b, "%.2f", best[pg]);
	snprintf(r->baseline, sizeof r->baseline, "malloc-host %s, pageable %s GB/s", a, b);
	if (rcs[reg] == -ENOTSUP)
		gb_row_unsupported(r, why[reg]);
	else if (rcs[reg])
		snprintf(r->verdict, sizeof r->verdict, "FAILED: %.80s", why[reg]);
	else if (!rcs[mh] && !rcs[pg])
		snprintf(r->verdict, sizeof r->verdict, "%.0f%% of malloc-host, %.2fx pageable",
			 100 * best[reg] / best[mh], best[reg] / best[pg]);
	else
		snprintf(r->verdict, sizeof r->verdict, "a baseline FAILED: %.70s",
			 why[rcs[mh] ? mh : pg]);
	gb_row_print(r);
	return first;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm-gpu-bench [--only h2d,load,gather] [--dir DIR] [--gib N]\n"
		"                       [--torch SCRIPT] [--python PY] [--torch-timeout S]\n"
		"                       [--h2d-mib N] [--iters N] [--loads N] [--keep] [--write-only]\n"
		"                       [--torch-file F]\n"
		"  --only LIST    the sections to run, in this order whatever LIST's (default all):\n"
		"                 h2d (pinned and pageable bandwidth), load (the >= 4 GiB weight\n"
		"                 load in every mode against torch), gather (upload_many's modes)\n"
		"  --dir DIR      where the model file is written (default $TMPDIR or /tmp)\n"
		"  --gib N        model size in GiB, %d or more (default %d)\n"
		"  --torch SCRIPT bench/gpu_load_torch.py: the safetensors baseline (default: none,\n"
		"                 the row says skipped); run with LD_LIBRARY_PATH set to\n"
		"                 $SWARM_HOST_LD_LIBRARY_PATH where that is set (device-env.sh)\n"
		"  --python PY    the interpreter for it (default python3)\n"
		"  --torch-timeout S  seconds the script may take in all (default 90): killed after,\n"
		"                 the loads it printed still count\n"
		"  --h2d-mib N    bytes per h2d copy (default 256)\n"
		"  --iters N      timed h2d copies per mode (default 20)\n"
		"  --loads N      timed loads on each side (default 3)\n"
		"  --keep         keep the model file (a rerun reuses it)\n"
		"  --write-only   write and parse the model file, then stop (needs no GPU)\n"
		"  --torch-file F run only the torch script over F and print its row (needs no GPU\n"
		"                 here: the script says skipped without one); a check of the runner\n"
		"  --help         this text\n"
		"  --version      print swarm-gpu-bench's version and exit\n"
		"Each row is printed as \"row: what | figure | baseline | verdict\" the moment it is\n"
		"measured, and all of them in a table at the end. A platform's refusal (a memfd or\n"
		"file mapping it will not pin, O_DIRECT or io_uring refused) is printed as\n"
		"\"unsupported here: ...\" and is not a failure. Exit: 0, or 1 when a measurement\n"
		"failed. Prints \"skipped: no GPU (<reason>)\" and exits 0 where there is no GPU.\n",
		GB_MIN_GIB, GB_MIN_GIB);
}

/* The sections of a --only list, or 0 when it names something else. */
static unsigned parse_only(const char *list)
{
	char buf[64];
	unsigned only = 0;
	char *save = NULL;

	if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf)
		return 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "h2d") == 0)
			only |= GB_H2D;
		else if (strcmp(t, "load") == 0)
			only |= GB_LOAD;
		else if (strcmp(t, "gather") == 0)
			only |= GB_GATHER;
		else if (strcmp(t, "all") == 0)
			only |= GB_ALL;
		else
			return 0;
	}
	return only;
}

/* The long options of gb_opts_parse. */
static const struct option gb_longs[] = { { "dir", required_argument, 0, 'd' },
					  { "gib", required_argument, 0, 'g' },
					  { "torch", required_argument, 0, 't' },
					  { "python", required_argument, 0, 'p' },
					  { "torch-timeout", required_argument, 0, 'T' },
					  { "only", required_argument, 0, 'o' },
					  { "torch-file", required_argument, 0, 'F' },
					  { "h2d-mib", required_argument, 0, 'm' },
					  { "iters", required_argument, 0, 'i' },
					  { "loads", required_argument, 0, 'l' },
					  { "keep", no_argument, 0, 'k' },
					  { "write-only", no_argument, 0, 'w' },
					  { "help", no_argument, 0, 'h' },
					  { "version", no_argument, 0, 'v' },
					  { 0, 0, 0, 0 } };

/* Parses argv into o. Returns 0, 1 after --help (printed), or 2 on a bad command line (the
 * usage printed to stderr). */
static int gb_opts_parse(int argc, char **argv, struct gb_opts *o)
{
	*o = (struct gb_opts){
		.dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		.python = "python3",
		.gib = GB_MIN_GIB,
		.h2d_mib = 256,
		.iters = 20,
		.loads = 3,
		.torch_timeout = 90,
		.only = GB_ALL,
	};
	int c;

	while ((c = getopt_long(argc, argv, "", gb_longs, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->dir = optarg;
			break;
		case 'g':
			o->gib = atoi(optarg);
			break;
		case 't':
			o->torch = optarg;
			break;
		case 'p':
			o->python = optarg;
			break;
		case 'T':
			o->torch_timeout = atoi(optarg);
			break;
		case 'o':
			o->only = parse_only(optarg);
			break;
		case 'F':
			o->torch_file = optarg;
			break;
		case 'm':
			o->h2d_mib = atoi(optarg);
			break;
		case 'i':
			o->iters = atoi(optarg);
			break;
		case 'l':
			o->loads = atoi(optarg);
			break;
		case 'k':
			o->keep = 1;
			break;
		case 'w':
			o->write_only = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'v':
			swarm_build_print_version("swarm-gpu-bench");
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || o->gib < GB_MIN_GIB || o->gib > GB_MAX_TENSORS / 4 ||
	    o->h2d_mib < 1 || o->iters < 1 || o->loads < 1 || o->loads > 16 ||
	    o->torch_timeout < 1 || !o->only) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* --torch-file: the torch script alone over o->torch_file, its row printed. */
static void gb_torch_file_row(const struct gb_opts *o)
{
	char skip[256] = "";
	struct gb_row *r = gb_row_add("load torch safetensors");
	double th = gb_load_torch(o, o->torch_file, skip, sizeof skip);
	if (th > 0)
		snprintf(r->figure, sizeof r->figure, "%.3f s (median)", th);
	else
		snprintf(r->figure, sizeof r->figure, "skipped");
	snprintf(r->verdict, sizeof r->verdict, "%.190s", skip);
	gb_row_print(r);
}

/* The gather section's row (bench/gpu_gather_bench.c). Returns 1 when it failed. */
static int gb_gather_row(const struct gb_opts *o)
{
	struct gb_row *r = gb_row_add("batch gather 16 sessions");
	int rc = swarm_gpu_gather_bench(o->iters * 10, r->figure, sizeof r->figure, r->baseline,
					sizeof r->baseline, r->verdict, sizeof r->verdict);
	if (rc == -ENOTSUP)
		printf("unsupported here: %s\n", r->verdict + strlen("unsupported here: "));
	gb_row_print(r);
	return rc != 0 && rc != -ENOTSUP;
}

int main(int argc, char **argv)
{
	struct gb_opts o;
	char desc[512];
	double pinned = 0;
	int rc, count = 0;

	rc = gb_opts_parse(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o.write_only) {
		rc = gb_model_check(&o);
		if (rc)
			printf("swarm-gpu-bench: FAILED: %s\n", strerror(-rc));
		return rc ? 1 : 0;
	}
	if (o.torch_file) {
		gb_torch_file_row(&o);
		return 0;
	}
	rc = swarm_cuda_device_count(&count);
	if (rc) {
		printf("swarm-gpu-bench: skipped: no GPU (%s)\n",
		       rc == -ENOTSUP ? "CUDA not built in" : swarm_cuda_last_error());
		return 0;
	}
	swarm_cuda_bench_describe(desc, sizeof desc);
	printf("gpu: %s\n", desc);

	/* Each section on its own: a failure in one leaves the others to be measured. */
	int failed = 0;
	if (o.only & GB_H2D)
		failed |= bench_h2d(&o, &pinned) != 0;
	if (o.only & GB_LOAD)
		failed |= gb_bench_load(&o, pinned) != 0;
	if (o.only & GB_GATHER)
		failed |= gb_gather_row(&o);

	printf("\n%-34s %-28s %-44s %s\n", "row", "swarm", "baseline", "verdict");
	for (int i = 0; i < n_rows; i++)
		printf("%-34s %-28s %-44s %s\n", rows[i].what, rows[i].figure, rows[i].baseline,
		       rows[i].verdict);
	if (failed)
		printf("swarm-gpu-bench: FAILED: a measurement failed (its row says which)\n");
	return failed ? 1 : 0;
}
