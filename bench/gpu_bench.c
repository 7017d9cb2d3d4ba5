/* gpu_bench.c: swarm-gpu-bench, the GPU data path's benchmark (docs/gpu-check.md). Every figure
 * of swarm's is printed beside its baseline, measured in the same run on the same card:
 *
 *   h2d    host-to-device bandwidth of a session segment (a memfd mapping pinned with
 *          cudaHostRegister, as the worker pins one) against cudaMemcpy from pageable memory
 *          and from cudaMallocHost memory (kernels/cuda/gpu_bench.cu times them);
 *   load   a safetensors file of at least 4 GiB (f16 tensors), mmap'd and copied to the GPU
 *          through the CUDA device's upload_stream (upload while a device has none), against
 *          safetensors.torch.load_file(..., device="cuda") (bench/gpu_load_torch.py) on the
 *          machine's own PyTorch. Targets: 3x safetensors, 80% of the best pinned h2d.
 *   gather a batch of 16 sessions' rows to the GPU by upload_many in each mode against the
 *          old host gather (bench/gpu_gather_bench.c): which mode should be the default.
 *
 * Without a GPU (or without CUDA built in) it prints "skipped: no GPU (<reason>)" and exits 0:
 * the ctest entry gpu_bench_skips pins that. Exit 1 means a measurement failed; a missed
 * target is read from the table, never the exit code.
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
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bench/gpu_gather_bench.h"
#include "kernels/cuda/gpu_bench.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"
#include "registry/safetensors.h"

#define GB_TENSOR_ROWS 8192
#define GB_TENSOR_COLS 16384 /* f16: 256 MiB a tensor */
#define GB_TENSOR_BYTES ((size_t)GB_TENSOR_ROWS * GB_TENSOR_COLS * 2)
#define GB_MAX_TENSORS 256
#define GB_MIN_GIB 4
#define GB_LOAD_TARGET_X_TORCH 3.0
#define GB_LOAD_TARGET_OF_PINNED 0.80

struct gb_opts {
	const char *dir;    /* where the model file goes */
	const char *torch;  /* bench/gpu_load_torch.py, or NULL: that row is skipped */
	const char *python; /* the interpreter for it */
	int gib;            /* model size */
	int h2d_mib;        /* bytes per h2d copy */
	int iters;          /* timed h2d copies per mode */
	int loads;          /* timed loads, each side */
	int keep;           /* keep the model file */
	int write_only;     /* write and parse the model file, no GPU (a check of the writer) */
};

struct gb_row {
	char what[40];
	char figure[48];
	char baseline[72];
	char verdict[72];
};

static struct gb_row rows[16];
static int n_rows;

static struct gb_row *row_add(const char *what)
{
	struct gb_row *r = &rows[n_rows < 15 ? n_rows++ : 15];

	memset(r, 0, sizeof *r);
	snprintf(r->what, sizeof r->what, "%s", what);
	return r;
}

static double now_s(void)
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

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the model file ------------------------------------------------------------------------ */

/* Writes (or reuses, when it parses and has the size) path: gib * 4 f16 tensors of 256 MiB.
 * Each tensor is a view of one random buffer at its own 8-byte shift, so that no two are the
 * same bytes and the compare after an upload sees a misplaced tensor, in 256 MiB of memory. */
static int model_write(const char *path, int gib)
{
	uint32_t n = (uint32_t)gib * 4;
	size_t pool_bytes = GB_TENSOR_BYTES + (size_t)n * 8;
	struct swarm_st_write_tensor t[GB_MAX_TENSORS];
	static const int64_t shape[2] = { GB_TENSOR_ROWS, GB_TENSOR_COLS };
	static char names[GB_MAX_TENSORS][32];
	uint16_t *pool;
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct stat st;
	int rc;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size > (uint64_t)n * GB_TENSOR_BYTES) {
		printf("model: reusing %s (%.2f GiB)\n", path, (double)st.st_size / (1 << 30));
		return 0;
	}
	pool = malloc(pool_bytes);
	if (!pool)
		return -ENOMEM;
	/* Finite f16 values in about [-2, 2] (exponent 1..15), never zeros, NaN or Inf. */
	for (size_t i = 0; i < pool_bytes / 2; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		pool[i] = (uint16_t)((x & 0x83ff) | ((1 + (x >> 16) % 15) << 10));
	}
	for (uint32_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "layers.%u.weight", i);
		t[i] = (struct swarm_st_write_tensor){ names[i], SWARM_ST_F16, 2, shape,
						       (const char *)pool + (size_t)i * 8 };
	}
	printf("model: writing %s (%u f16 tensors of %zu MiB) ...\n", path, n,
	       GB_TENSOR_BYTES >> 20);
	fflush(stdout);
	double t0 = now_s();
	rc = swarm_st_write(path, t, n);
	free(pool);
	if (rc == 0)
		printf("model: written in %.1f s\n", now_s() - t0);
	return rc;
}

/* Writes the model, maps it and parses it with the registry's parser: what --write-only runs,
 * so that the file is checked on a machine without a GPU. */
static int model_check(const struct gb_opts *o)
{
	struct swarm_st_file st = { 0 };
	char path[PATH_MAX], err[256] = "";
	struct stat sb;
	void *map;
	int fd, rc;

	snprintf(path, sizeof path, "%s/swarm-gpu-bench-%dg.safetensors", o->dir, o->gib);
	rc = model_write(path, o->gib);
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0)
		return -errno;
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	rc = swarm_st_parse(map, (size_t)sb.st_size, &st, err, sizeof err);
	if (rc)
		fprintf(stderr, "swarm-gpu-bench: %s: %s\n", path, err);
	else
		printf("model: %s parses: %u tensors, %.2f GiB of data from offset %llu\n", path,
		       st.n_tensors, (double)(st.file_bytes - st.data_offset) / (1 << 30),
		       (unsigned long long)st.data_offset);
	swarm_st_free(&st);
	munmap(map, (size_t)sb.st_size);
	if (!o->keep)
		unlink(path);
	return rc;
}

/* ---- the rows ------------------------------------------------------------------------------- */

/* The three h2d rows; *pinned gets the best pinned GB/s (the load's 80% target). */
static int bench_h2d(const struct gb_opts *o, double *pinned)
{
	size_t bytes = (size_t)o->h2d_mib << 20;
	double best[SWARM_CUDA_H2D_MODE_COUNT] = { 0 }, med[SWARM_CUDA_H2D_MODE_COUNT] = { 0 };

	for (int m = 0; m < SWARM_CUDA_H2D_MODE_COUNT; m++) {
		int rc = swarm_cuda_bench_h2d(m, bytes, o->iters, &best[m], &med[m]);

		printf("h2d %-15s %d MiB x %d: best %.2f GB/s, median %.2f GB/s%s%s\n",
		       swarm_cuda_h2d_mode_name(m), o->h2d_mib, o->iters, best[m], med[m],
		       rc ? ": FAILED " : "", rc ? swarm_cuda_last_error() : "");
		if (rc)
			return rc;
	}
	*pinned = best[SWARM_CUDA_H2D_MALLOC_HOST] > best[SWARM_CUDA_H2D_HOST_REGISTERED] ?
			  best[SWARM_CUDA_H2D_MALLOC_HOST] :
			  best[SWARM_CUDA_H2D_HOST_REGISTERED];
	struct gb_row *r = row_add("h2d session segment (registered)");
	snprintf(r->figure, sizeof r->figure, "%.2f GB/s (median %.2f)",
		 best[SWARM_CUDA_H2D_HOST_REGISTERED], med[SWARM_CUDA_H2D_HOST_REGISTERED]);
	snprintf(r->baseline, sizeof r->baseline, "malloc-host %.2f, pageable %.2f GB/s",
		 best[SWARM_CUDA_H2D_MALLOC_HOST], best[SWARM_CUDA_H2D_PAGEABLE]);
	snprintf(r->verdict, sizeof r->verdict, "%.0f%% of malloc-host, %.2fx pageable",
		 100 * best[SWARM_CUDA_H2D_HOST_REGISTERED] / best[SWARM_CUDA_H2D_MALLOC_HOST],
		 best[SWARM_CUDA_H2D_HOST_REGISTERED] / best[SWARM_CUDA_H2D_PAGEABLE]);
	return 0;
}

/* One load through swarm: a fresh read-only mapping (as a loader makes one), the parser, one
 * upload of the data region, the compare. *seconds covers mmap to the bytes on the device. */
static int load_swarm_once(struct swarm_device *d, const char *path, void *dev, size_t cap,
			   double *seconds, uint64_t *bytes_out)
{
	struct swarm_st_file st = { 0 };
	char err[256] = "";
	struct stat sb;
	void *map = MAP_FAILED;
	int fd, rc;
	double t0 = now_s();

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		rc = -errno;
		goto out;
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	rc = swarm_st_parse(map, (size_t)sb.st_size, &st, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-gpu-bench: %s: %s\n", path, err);
		goto out;
	}
	size_t n = (size_t)(st.file_bytes - st.data_offset);
	const char *src = (const char *)map + st.data_offset;
	if (n > cap) {
		rc = -EFBIG;
		goto out;
	}
	if (d->i->upload_stream) {
		rc = d->i->upload_stream(d, dev, src, n, NULL);
	} else {
		rc = d->i->upload(d, dev, src, n);
		if (rc == 0 && d->i->synchronize)
			rc = d->i->synchronize(d);
	}
	*seconds = now_s() - t0;
	*bytes_out = n;
	if (rc == 0)
		rc = swarm_cuda_bench_compare(dev, src, n);
out:
	swarm_st_free(&st);
	if (map != MAP_FAILED)
		munmap(map, (size_t)sb.st_size);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The torch row: runs the script over path; it prints "torch_load seconds=S bytes=B" or
 * "skipped: WHY". Returns the median seconds, 0 when skipped (why in skip). */
static double load_torch(const struct gb_opts *o, const char *path, char *skip, size_t len)
{
	char cmd[PATH_MAX * 3], line[512];
	double s[16];
	int n = 0;
	FILE *p;

	if (!o->torch) {
		snprintf(skip, len, "no --torch script given");
		return 0;
	}
	if (strchr(o->torch, '\'') || strchr(path, '\'') || strchr(o->python, '\'')) {
		snprintf(skip, len, "a path holds a quote");
		return 0;
	}
	snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' %d 2>&1", o->python, o->torch, path, o->loads);
	fflush(stdout);
	p = popen(cmd, "r");
	if (!p) {
		snprintf(skip, len, "popen: %s", strerror(errno));
		return 0;
	}
	snprintf(skip, len, "the script printed no result");
	while (fgets(line, sizeof line, p)) {
		double sec;

		printf("  torch: %s", line);
		if (sscanf(line, "torch_load seconds=%lf", &sec) == 1 && n < 16)
			s[n++] = sec;
		else if (strncmp(line, "skipped: ", 9) == 0)
			snprintf(skip, len, "%.*s", (int)strcspn(line + 9, "\n"), line + 9);
	}
	int st = pclose(p);
	if (n == 0 || st != 0) {
		if (st != 0 && n > 0)
			snprintf(skip, len, "the script failed (status %d)", st);
		return 0;
	}
	return median(s, n);
}

static int bench_load(const struct gb_opts *o, double pinned)
{
	char path[PATH_MAX], skip[256] = "";
	struct swarm_device *d = NULL;
	size_t cap = (size_t)o->gib * 4 * GB_TENSOR_BYTES;
	struct statvfs vfs;
	double s[16];
	uint64_t bytes = 0;
	void *dev = NULL;
	int rc;

	snprintf(path, sizeof path, "%s/swarm-gpu-bench-%dg.safetensors", o->dir, o->gib);
	if (statvfs(o->dir, &vfs) == 0 &&
	    (double)vfs.f_bavail * vfs.f_frsize < (double)cap * 1.05 && access(path, R_OK) != 0) {
		struct gb_row *r = row_add("load swarm");
		snprintf(r->figure, sizeof r->figure, "skipped");
		snprintf(r->verdict, sizeof r->verdict, "%s has under %.1f GiB free", o->dir,
			 (double)cap * 1.05 / (1 << 30));
		return 0;
	}
	rc = model_write(path, o->gib);
	if (rc) {
		fprintf(stderr, "swarm-gpu-bench: writing %s: %s\n", path, strerror(-rc));
		return rc;
	}
	rc = swarm_device_cuda_create(0, &d);
	if (rc) {
		fprintf(stderr, "swarm-gpu-bench: swarm_device_cuda_create: %s (%s)\n",
			strerror(-rc), swarm_cuda_last_error());
		goto out;
	}
	const char *how = d->i->upload_stream ? "upload_stream" : "upload";
	if (!d->i->upload_stream)
		printf("load: this CUDA device has no upload_stream yet: timing upload (one "
		       "cudaMemcpyAsync from the mapping) instead\n");
	dev = d->i->alloc(d, cap);
	if (!dev) {
		rc = -ENOMEM;
		fprintf(stderr, "swarm-gpu-bench: alloc %zu on the GPU: %s\n", cap,
			swarm_cuda_last_error());
		goto out;
	}
	for (int i = 0; i < o->loads; i++) {
		rc = load_swarm_once(d, path, dev, cap, &s[i], &bytes);
		printf("load swarm %s #%d: %.3f s, %.2f GB/s%s%s\n", how, i + 1, s[i],
		       (double)bytes / s[i] / 1e9, rc ? ": FAILED " : "",
		       rc ? (rc == -EBADMSG ? "bytes differ" : strerror(-rc)) : "");
		if (rc)
			goto out;
	}
	/* The GPU memory goes back before torch takes its own. */
	d->i->free(d, dev);
	dev = NULL;
	d->i->destroy(d);
	d = NULL;

	double sw = median(s, o->loads), sw_gbps = (double)bytes / sw / 1e9;
	double th = load_torch(o, path, skip, sizeof skip);
	struct gb_row *r = row_add("load swarm");
	snprintf(r->what, sizeof r->what, "load %.1f GiB swarm %s", (double)bytes / (1 << 30), how);
	snprintf(r->figure, sizeof r->figure, "%.3f s, %.2f GB/s", sw, sw_gbps);
	snprintf(r->baseline, sizeof r->baseline, "%.0f%% of pinned %.2f GB/s (target 80%%)",
		 100 * sw_gbps / pinned, pinned);
	snprintf(r->verdict, sizeof r->verdict, "%s",
		 sw_gbps >= GB_LOAD_TARGET_OF_PINNED * pinned ? "MET" : "MISSED");
	r = row_add("load torch safetensors");
	if (th > 0) {
		snprintf(r->figure, sizeof r->figure, "%.3f s, %.2f GB/s", th,
			 (double)bytes / th / 1e9);
		snprintf(r->baseline, sizeof r->baseline, "swarm is %.2fx faster (target 3x)",
			 th / sw);
		snprintf(r->verdict, sizeof r->verdict, "%s",
			 th / sw >= GB_LOAD_TARGET_X_TORCH ? "MET" : "MISSED");
	} else {
		snprintf(r->figure, sizeof r->figure, "skipped");
		snprintf(r->verdict, sizeof r->verdict, "%s", skip);
	}
	rc = 0;
out:
	if (dev)
		d->i->free(d, dev);
	if (d)
		d->i->destroy(d);
	if (!o->keep)
		unlink(path);
	return rc;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm-gpu-bench [--dir DIR] [--gib N] [--torch SCRIPT] [--python PY]\n"
		"                       [--h2d-mib N] [--iters N] [--loads N] [--keep]\n"
		"  --dir DIR      where the model file is written (default $TMPDIR or /tmp)\n"
		"  --gib N        model size in GiB, %d or more (default %d)\n"
		"  --torch SCRIPT bench/gpu_load_torch.py: the safetensors baseline (default: none,\n"
		"                 the row says skipped)\n"
		"  --python PY    the interpreter for it (default python3)\n"
		"  --h2d-mib N    bytes per h2d copy (default 256)\n"
		"  --iters N      timed h2d copies per mode (default 20)\n"
		"  --loads N      timed loads on each side (default 3)\n"
		"  --keep         keep the model file (a rerun reuses it)\n"
		"  --write-only   write and parse the model file, then stop (needs no GPU)\n"
		"Prints \"skipped: no GPU (<reason>)\" and exits 0 where there is no GPU.\n",
		GB_MIN_GIB, GB_MIN_GIB);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "dir", required_argument, 0, 'd' },
					    { "gib", required_argument, 0, 'g' },
					    { "torch", required_argument, 0, 't' },
					    { "python", required_argument, 0, 'p' },
					    { "h2d-mib", required_argument, 0, 'm' },
					    { "iters", required_argument, 0, 'i' },
					    { "loads", required_argument, 0, 'l' },
					    { "keep", no_argument, 0, 'k' },
					    { "write-only", no_argument, 0, 'w' },
					    { "help", no_argument, 0, 'h' },
					    { 0, 0, 0, 0 } };
	struct gb_opts o = { getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
			     NULL,
			     "python3",
			     GB_MIN_GIB,
			     256,
			     20,
			     3,
			     0,
			     0 };
	char desc[512];
	double pinned = 0;
	int c, rc, count = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.dir = optarg;
			break;
		case 'g':
			o.gib = atoi(optarg);
			break;
		case 't':
			o.torch = optarg;
			break;
		case 'p':
			o.python = optarg;
			break;
		case 'm':
			o.h2d_mib = atoi(optarg);
			break;
		case 'i':
			o.iters = atoi(optarg);
			break;
		case 'l':
			o.loads = atoi(optarg);
			break;
		case 'k':
			o.keep = 1;
			break;
		case 'w':
			o.write_only = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || o.gib < GB_MIN_GIB || o.gib > GB_MAX_TENSORS / 4 || o.h2d_mib < 1 ||
	    o.iters < 1 || o.loads < 1 || o.loads > 16) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o.write_only) {
		rc = model_check(&o);
		if (rc)
			printf("swarm-gpu-bench: FAILED: %s\n", strerror(-rc));
		return rc ? 1 : 0;
	}
	rc = swarm_cuda_device_count(&count);
	if (rc) {
		printf("swarm-gpu-bench: skipped: no GPU (%s)\n",
		       rc == -ENOTSUP ? "CUDA not built in" : swarm_cuda_last_error());
		return 0;
	}
	swarm_cuda_bench_describe(desc, sizeof desc);
	printf("gpu: %s\n", desc);

	rc = bench_h2d(&o, &pinned);
	if (rc == 0)
		rc = bench_load(&o, pinned);
	{ /* measured even when a load failed: it needs neither the file nor torch */
		struct gb_row *r = row_add("batch gather 16 sessions");
		int grc = swarm_gpu_gather_bench(o.iters * 10, r->figure, sizeof r->figure,
						 r->baseline, sizeof r->baseline, r->verdict,
						 sizeof r->verdict);
		if (grc && !rc)
			rc = grc;
	}

	printf("\n%-34s %-28s %-44s %s\n", "row", "swarm", "baseline", "verdict");
	for (int i = 0; i < n_rows; i++)
		printf("%-34s %-28s %-44s %s\n", rows[i].what, rows[i].figure, rows[i].baseline,
		       rows[i].verdict);
	if (rc)
		printf("swarm-gpu-bench: FAILED: %s%s%s\n", strerror(-rc),
		       *swarm_cuda_last_error() ? ": " : "", swarm_cuda_last_error());
	return rc ? 1 : 0;
}
