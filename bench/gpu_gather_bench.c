/* gpu_gather_bench.c: swarm-gpu-bench's batch-gather rows (gpu_gather_bench.h). Its one
 * question: which upload_many strategy (kernels/cuda/gather.h) should the CUDA device use by
 * default. It is answered per row size and tensor count and printed; the default changes in
 * gather.cu only after a GPU run says so (docs/devices.md).
 */
#include "bench/gpu_gather_bench.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kernels/cuda/gather.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"

#define GG_SESSIONS 16
#define GG_SEG_BYTES ((size_t)1 << 20) /* one session's segment */
#define GG_SLOT_AT 4096                /* where the request's slot starts in it */
#define GG_MAX_TENSORS 3

enum {
	M_PIECES,
	M_COPIES,
	M_KERNEL,
	M_OLD,
	M_COUNT
};
static const char *const m_names[M_COUNT] = { "upload/piece", "many copies", "many kernel",
					      "old gather" };

struct gg {
	struct swarm_device *d;
	char *segs;       /* GG_SESSIONS segments, each registered alone */
	char *bin;        /* the old path's pinned gather buffer */
	char *dev;        /* staging buffers: GG_MAX_TENSORS of 16 rows */
	size_t row, area; /* bytes a row, a tensor's area in a slot */
	int tensors;
	struct swarm_copy pc[GG_SESSIONS * GG_MAX_TENSORS];
};

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Session s's slot bytes of tensor t. */
static char *slot_tensor(struct gg *g, int s, int t)
{
	return g->segs + (size_t)s * GG_SEG_BYTES + GG_SLOT_AT + (size_t)t * g->area;
}

/* Tensor t's staging rows on the device, session s's row. */
static char *staged(struct gg *g, int s, int t)
{
	return g->dev + (size_t)t * GG_SESSIONS * g->row + (size_t)s * g->row;
}

/* One batch by method m, synchronised. */
static int run_once(struct gg *g, int m)
{
	struct swarm_device *d = g->d;
	int n = GG_SESSIONS * g->tensors, rc = 0;
	switch (m) {
	case M_PIECES:
		for (int k = 0; k < n && !rc; k++)
			rc = d->i->upload(d, g->pc[k].dst, g->pc[k].src, g->pc[k].bytes);
		break;
	case M_COPIES:
	case M_KERNEL:
		rc = swarm_cuda_set_gather_mode(d, m == M_COPIES ? SWARM_CUDA_GATHER_COPIES :
								   SWARM_CUDA_GATHER_KERNEL);
		if (!rc)
			rc = d->i->upload_many(d, g->pc, (uint32_t)n);
		break;
	default:
		for (int t = 0; t < g->tensors; t++)
			for (int s = 0; s < GG_SESSIONS; s++)
				memcpy(g->bin + ((size_t)t * GG_SESSIONS + s) * g->row,
				       slot_tensor(g, s, t), g->row);
		for (int t = 0; t < g->tensors && !rc; t++)
			rc = d->i->upload(d, staged(g, 0, t),
					  g->bin + (size_t)t * GG_SESSIONS * g->row,
					  GG_SESSIONS * g->row);
		break;
	}
	int sync = d->i->synchronize(d);
	return rc ? rc : sync;
}

/* The device's staging rows equal the slots' bytes (after a zeroing, so a method that copies
 * nothing fails). */
static int check(struct gg *g, int m)
{
	size_t bytes = (size_t)g->tensors * GG_SESSIONS * g->row;
	char *zero = calloc(1, bytes), *back = malloc(bytes);
	int rc = zero && back ? 0 : -ENOMEM;
	if (!rc)
		rc = g->d->i->upload(g->d, g->dev, zero, bytes);
	if (!rc)
		rc = run_once(g, m);
	if (!rc)
		rc = g->d->i->download(g->d, back, g->dev, bytes);
	if (!rc)
		rc = g->d->i->synchronize(g->d);
	for (int t = 0; t < g->tensors && !rc; t++)
		for (int s = 0; s < GG_SESSIONS && !rc; s++)
			if (memcmp(back + ((size_t)t * GG_SESSIONS + s) * g->row,
				   slot_tensor(g, s, t), g->row)) {
				printf("gather: %s put wrong bytes in tensor %d row %d\n",
				       m_names[m], t, s);
				rc = -EBADMSG;
			}
	free(zero);
	free(back);
	return rc;
}

/* Median microseconds a batch by method m over iters, after 3 of warm-up. */
static int time_method(struct gg *g, int m, int iters, double *us)
{
	double *v = malloc((size_t)iters * sizeof *v);
	int rc = v ? 0 : -ENOMEM;
	for (int i = 0; i < 3 && !rc; i++)
		rc = run_once(g, m);
	for (int i = 0; i < iters && !rc; i++) {
		double t0 = now_us();
		rc = run_once(g, m);
		v[i] = now_us() - t0;
	}
	if (!rc) {
		qsort(v, (size_t)iters, sizeof *v, cmp_double);
		*us = v[iters / 2];
	}
	free(v);
	return rc;
}

/* What the shapes measured add up to: which many-method won each, the sums of the winners'
 * and of the old gather's times, and the first failure. */
struct gg_tally {
	int wins[M_COUNT], shapes;
	double sum_best_many, sum_old;
	char failed[160]; /* "" for none */
	int rc;           /* the first failure's code, 0 for none */
};

/* One shape (g->row bytes a row, g->tensors tensors): each method checked, then timed, its
 * line printed and t tallied. Each method on its own, the kernel last: a failure (a fault of
 * the kernel kills the context, and everything after it fails too) leaves what was measured
 * before it. */
static void gg_shape(struct gg *g, int iters, struct gg_tally *t)
{
	static const int order[M_COUNT] = { M_PIECES, M_COPIES, M_OLD, M_KERNEL };
	double us[M_COUNT];
	int mrc[M_COUNT];

	for (int tn = 0; tn < g->tensors; tn++)
		for (int s = 0; s < GG_SESSIONS; s++)
			g->pc[tn * GG_SESSIONS + s] = (struct swarm_copy){ staged(g, s, tn),
									   slot_tensor(g, s, tn),
									   g->row };
	for (int k = 0; k < M_COUNT; k++) {
		int m = order[k];
		if (!(mrc[m] = check(g, m)))
			mrc[m] = time_method(g, m, iters, &us[m]);
		if (mrc[m] && !t->failed[0]) {
			snprintf(t->failed, sizeof t->failed, "%s at %zu B x %d: %s (%s)",
				 m_names[m], g->row, g->tensors, strerror(-mrc[m]),
				 swarm_cuda_last_error());
			t->rc = mrc[m];
		}
	}
	printf("%-8zu %-8d", g->row, g->tensors);
	for (int m = 0; m < M_COUNT; m++)
		if (mrc[m])
			printf(" %14s", "FAILED");
		else
			printf(" %14.1f", us[m]);
	if (mrc[M_KERNEL] || mrc[M_COPIES] || mrc[M_OLD]) {
		printf("  (not compared)\n");
		return;
	}
	int best = us[M_KERNEL] < us[M_COPIES] ? M_KERNEL : M_COPIES;
	t->wins[best]++;
	t->shapes++;
	t->sum_best_many += us[best];
	t->sum_old += us[M_OLD];
	printf("  %s\n", m_names[best]);
	fflush(stdout);
}

/* The row's figure, baseline and verdict from t: which many-method should be the default, and
 * whether it beats the old gather. */
static void gg_verdict(const struct gg_tally *t, char *figure, size_t figure_len, char *baseline,
		       size_t baseline_len, char *verdict, size_t verdict_len)
{
	if (t->failed[0])
		printf("gather: FAILED: %s\n", t->failed);
	if (t->shapes) {
		const char *win = t->wins[M_KERNEL] > t->wins[M_COPIES] ? "kernel" : "copies";
		snprintf(figure, figure_len, "%s won %d of %d (%.0f us sum)", win,
			 t->wins[M_KERNEL] > t->wins[M_COPIES] ? t->wins[M_KERNEL] :
								 t->wins[M_COPIES],
			 t->shapes, t->sum_best_many);
		snprintf(baseline, baseline_len, "old memcpy gather + upload: %.0f us sum",
			 t->sum_old);
		snprintf(verdict, verdict_len, "%s; default copies: %s%s%.100s",
			 t->sum_best_many < t->sum_old ? "faster than old" : "SLOWER than old",
			 strcmp(win, "copies") ? "switch to kernel" : "keep",
			 t->failed[0] ? "; FAILED: " : "", t->failed);
	} else if (t->failed[0]) {
		snprintf(figure, figure_len, "FAILED");
		snprintf(verdict, verdict_len, "FAILED: %s", t->failed);
	}
}

int swarm_gpu_gather_bench(int iters, char *figure, size_t figure_len, char *baseline,
			   size_t baseline_len, char *verdict, size_t verdict_len)
{
	static const size_t row_sizes[] = { 64, 1024, 16384 };
	static const int tensor_counts[] = { 1, 3 };
	struct gg g = { 0 };
	struct gg_tally t = { 0 };
	int n_reg = 0, bin_reg = 0, rc;

	rc = swarm_device_cuda_create(0, &g.d);
	if (rc) {
		snprintf(figure, figure_len, "FAILED: no device: %s", strerror(-rc));
		return rc;
	}
	g.segs = mmap(NULL, GG_SESSIONS * GG_SEG_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t bin_bytes = (size_t)GG_MAX_TENSORS * GG_SESSIONS * 16384;
	g.bin = aligned_alloc(4096, bin_bytes);
	g.dev = g.d->i->alloc(g.d, bin_bytes);
	if (g.segs == MAP_FAILED || !g.bin || !g.dev) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < GG_SESSIONS * GG_SEG_BYTES; i++)
		g.segs[i] = (char)(i * 2654435761u >> 13);
	for (; n_reg < GG_SESSIONS; n_reg++)
		if ((rc = g.d->i->register_host(g.d, g.segs + (size_t)n_reg * GG_SEG_BYTES,
						GG_SEG_BYTES)))
			goto refused;
	if ((rc = g.d->i->register_host(g.d, g.bin, bin_bytes)))
		goto refused;
	bin_reg = 1;

	printf("\nbatch gather: one row from each of %d sessions (registered segments), median "
	       "us a batch over %d\n",
	       GG_SESSIONS, iters);
	printf("%-8s %-8s", "row", "tensors");
	for (int m = 0; m < M_COUNT; m++)
		printf(" %14s", m_names[m]);
	printf("  %s\n", "fastest many");
	for (size_t r = 0; r < sizeof row_sizes / sizeof row_sizes[0]; r++)
		for (size_t c = 0; c < sizeof tensor_counts / sizeof tensor_counts[0]; c++) {
			g.row = row_sizes[r];
			g.area = (g.row * 4 + 63) / 64 * 64; /* a slot of 4 rows a tensor */
			g.tensors = tensor_counts[c];
			gg_shape(&g, iters, &t);
		}
	rc = t.rc;
	gg_verdict(&t, figure, figure_len, baseline, baseline_len, verdict, verdict_len);
	goto out;

refused:
	/* The platform's answer, not a failure of the gather: every method needs the pinning. */
	snprintf(figure, figure_len, "unsupported here");
	snprintf(verdict, verdict_len,
		 "unsupported here: register_host of a %zu-byte anonymous mapping returned %s (%s)",
		 n_reg < GG_SESSIONS ? GG_SEG_BYTES : bin_bytes, strerror(-rc),
		 swarm_cuda_last_error());
	rc = -ENOTSUP;
out:
	if (rc && rc != -ENOTSUP && !figure[0])
		snprintf(figure, figure_len, "FAILED: %s", strerror(-rc));
	if (bin_reg)
		(void)g.d->i->unregister_host(g.d, g.bin);
	while (n_reg-- > 0)
		(void)g.d->i->unregister_host(g.d, g.segs + (size_t)n_reg * GG_SEG_BYTES);
	if (g.dev)
		g.d->i->free(g.d, g.dev);
	free(g.bin);
	if (g.segs && g.segs != MAP_FAILED)
		munmap(g.segs, GG_SESSIONS * GG_SEG_BYTES);
	g.d->i->destroy(g.d);
	return rc;
}
