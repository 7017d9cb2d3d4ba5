/* test_device_weights.c: one device copy of a weights file shared by several graphs
 * (runtime/device_weights.h, swarm_dev_weights): the refcount (one allocation however many graphs,
 * freed with the last of them in any order), the shareable path (export an fd, import it as
 * another worker would, the copy outliving its exporter), and every refusal of an import
 * (size, layout, a bad fd, a device that cannot) falling back cleanly.
 *
 * The device is a fake with host_memory 0 over the CPU device (the pieces of
 * tests/kernels/test_graph.c's staged fake this needs), so that the loader copies to "device
 * memory"; its shareable memory is a memfd mapped MAP_SHARED, which, like a CUDA VMM
 * allocation, lives until every mapping and fd of it is gone.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "registry/manifest.h"
#include "registry/safetensors.h"

#define MAX_ALLOCS 16

struct fake {
	struct swarm_device dev;
	struct swarm_device *inner; /* the CPU device that computes */
	int allocs, frees;          /* plain alloc and free */
	int shared_allocs, imports, shared_frees;
	int refuse_alloc_shared;
	void *sh_p[MAX_ALLOCS];
	size_t sh_n[MAX_ALLOCS];
	int sh_fd[MAX_ALLOCS]; /* the memfd of an allocation made here, -1 for an import */
};

static struct fake fk;

static struct fake *fake_of(struct swarm_device *d) { return d->ctx; }

static void *f_alloc(struct swarm_device *d, size_t n)
{
	fake_of(d)->allocs++;
	return fake_of(d)->inner->i->alloc(fake_of(d)->inner, n);
}

static void f_free(struct swarm_device *d, void *p)
{
	fake_of(d)->frees++;
	fake_of(d)->inner->i->free(fake_of(d)->inner, p);
}

static int f_copy(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	(void)d;
	memcpy(dst, src, n);
	return 0;
}

static int f_supports(struct swarm_device *d, const struct swarm_node *n)
{
	return fake_of(d)->inner->i->supports_op(fake_of(d)->inner, n);
}

static int f_run(struct swarm_device *d, const struct swarm_node *n)
{
	return fake_of(d)->inner->i->run(fake_of(d)->inner, n);
}

static int f_sync(struct swarm_device *d)
{
	(void)d;
	return 0;
}

static int record(struct fake *f, void *p, size_t n, int fd)
{
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (!f->sh_p[i]) {
			f->sh_p[i] = p;
			f->sh_n[i] = n;
			f->sh_fd[i] = fd;
			return i;
		}
	cr_assert_fail("the fake ran out of shared slots");
	return -1;
}

static int slot_of(struct fake *f, void *p)
{
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (f->sh_p[i] == p)
			return i;
	return -1;
}

static void *f_alloc_shared(struct swarm_device *d, size_t n)
{
	struct fake *f = fake_of(d);
	if (f->refuse_alloc_shared)
		return NULL;
	int fd = memfd_create("fake-vmm", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)n), 0);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	f->shared_allocs++;
	record(f, p, n, fd);
	return p;
}

static int f_export(struct swarm_device *d, void *p, int *fd)
{
	int i = slot_of(fake_of(d), p);
	if (i < 0 || fake_of(d)->sh_fd[i] < 0)
		return -EINVAL;
	*fd = fcntl(fake_of(d)->sh_fd[i], F_DUPFD_CLOEXEC, 0);
	return *fd < 0 ? -errno : 0;
}

/* As the driver: a bad fd or one smaller than asked is refused. */
static void *f_import(struct swarm_device *d, int fd, size_t n)
{
	struct stat sb;
	if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < n)
		return NULL;
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	fake_of(d)->imports++;
	record(fake_of(d), p, n, -1);
	return p;
}

static void f_free_shared(struct swarm_device *d, void *p)
{
	struct fake *f = fake_of(d);
	int i = slot_of(f, p);
	cr_assert_geq(i, 0, "free_shared of %p, which is not shared memory", p);
	munmap(p, f->sh_n[i]);
	if (f->sh_fd[i] >= 0)
		close(f->sh_fd[i]);
	f->sh_p[i] = NULL;
	f->shared_frees++;
}

/* The members both fakes have: a staged device that computes on the CPU. */
#define FAKE_STAGED                                                             \
	.alloc = f_alloc, .free = f_free, .upload = f_copy, .download = f_copy, \
	.synchronize = f_sync, .supports_op = f_supports, .run = f_run, .host_memory = 0

static const struct swarm_device_i plain_i = { .name = "staged-fake", FAKE_STAGED };

static const struct swarm_device_i shared_i = {
	.name = "staged-fake-shared",
	FAKE_STAGED,
	.alloc_shared = f_alloc_shared,
	.export_shared = f_export,
	.import_shared = f_import,
	.free_shared = f_free_shared,
};

/* ---- an MLP in a safetensors blob -------------------------------------------------------- */

#define MLP_JSON                                                                             \
	"{\"format\": 1,"                                                                    \
	" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}],"         \
	" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}],"         \
	" \"graph\": {\"nodes\": ["                                                          \
	"  {\"op\": \"linear\", \"inputs\": [\"x\", \"w1\", \"b1\"], \"output\": \"h1\","    \
	"   \"act\": \"relu\"},"                                                             \
	"  {\"op\": \"linear\", \"inputs\": [\"h1\", \"w2\", \"b2\"], \"output\": \"y\"}]}," \
	" \"weights\": [{\"name\": \"w1\", \"dtype\": \"f32\", \"shape\": [32, 16]},"        \
	"   {\"name\": \"b1\", \"dtype\": \"f32\", \"shape\": [32]},"                        \
	"   {\"name\": \"w2\", \"dtype\": \"f32\", \"shape\": [4, 32]},"                     \
	"   {\"name\": \"b2\", \"dtype\": \"f32\", \"shape\": [4]}]}"

static struct swarm_manifest man;
static struct swarm_weights blob;
static char err[512];
static float x[8 * 16], want[8 * 4];

static float *fill(float *p, int n, unsigned seed)
{
	for (int i = 0; i < n; i++)
		p[i] = (float)((i * 37 + seed * 11) % 23) / 23.0f - 0.5f;
	return p;
}

static void setup(void)
{
	static float w1[32 * 16], b1[32], w2[4 * 32], b2[4];
	const int64_t s_w1[] = { 32, 16 }, s_b1[] = { 32 }, s_w2[] = { 4, 32 }, s_b2[] = { 4 };
	const struct swarm_st_write_tensor t[] = {
		{ "w1", SWARM_ST_F32, 2, s_w1, fill(w1, 32 * 16, 1) },
		{ "b1", SWARM_ST_F32, 1, s_b1, fill(b1, 32, 2) },
		{ "w2", SWARM_ST_F32, 2, s_w2, fill(w2, 4 * 32, 3) },
		{ "b2", SWARM_ST_F32, 1, s_b2, fill(b2, 4, 4) },
	};
	char dir[] = "/tmp/swarm-test-devw-XXXXXX", path[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/w.safetensors", dir);
	cr_assert_eq(swarm_st_write(path, t, 4), 0);
	int rc = swarm_weights_load(path, 0, NULL, 0, &blob, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_weights_load = %d: %s", rc, err);
	unlink(path);
	rmdir(dir);
	rc = swarm_manifest_parse(MLP_JSON, strlen(MLP_JSON), &man, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_manifest_parse = %d: %s", rc, err);

	memset(&fk, 0, sizeof fk);
	cr_assert_eq(swarm_device_cpu_create(1, &fk.inner), 0);
	fk.dev.i = &shared_i;
	fk.dev.ctx = &fk;

	/* The reference: the same graph on the CPU, reading the mapping. */
	struct swarm_graph *cpu = NULL;
	rc = swarm_graph_from_weights(&man, blob.map, &blob.st, fk.inner, 8, &cpu, err, sizeof err);
	cr_assert_eq(rc, 0, "on the CPU: %d: %s", rc, err);
	fill(x, 8 * 16, 5);
	const void *ins[] = { x };
	void *outs[] = { want };
	cr_assert_eq(swarm_graph_run(cpu, 8, ins, outs), 0);
	swarm_graph_free(cpu);
}

TestSuite(runtime_device_weights, .init = setup);

/* g computes what the CPU does from the mapping, to the bit. */
static void expect_computes(struct swarm_graph *g, const char *what)
{
	float y[8 * 4];
	const void *ins[] = { x };
	void *outs[] = { y };
	int rc = swarm_graph_run(g, 8, ins, outs);
	cr_assert_eq(rc, 0, "%s: run = %d", what, rc);
	for (int i = 0; i < 8 * 4; i++)
		cr_assert(memcmp(&y[i], &want[i], sizeof y[i]) == 0, "%s: y[%d] = %.9g, CPU %.9g",
			  what, i, y[i], want[i]);
}

static struct swarm_graph *graph_on(struct swarm_dev_weights *dw)
{
	struct swarm_graph *g = NULL;
	int rc = swarm_graph_from_dev_weights(&man, &blob.st, dw, 8, &g, err, sizeof err);
	cr_assert_eq(rc, 0, "swarm_graph_from_dev_weights = %d: %s", rc, err);
	return g;
}

/* Two versions of one blob (a swap that changed only the deployment, a rollback while the
 * old one is loaded): one copy of the weights, freed with the last graph, in either order. */
Test(runtime_device_weights, graphs_share_one_copy_freed_with_the_last)
{
	fk.dev.i = &plain_i;
	for (int order = 0; order < 2; order++) {
		fk.allocs = fk.frees = 0;
		struct swarm_dev_weights *dw = NULL;
		int rc = swarm_dev_weights_upload(&fk.dev, blob.map, &blob.st, 0, &dw, NULL, err,
						  sizeof err);
		cr_assert_eq(rc, 0, "upload = %d: %s", rc, err);
		cr_assert_eq(swarm_dev_weights_refs(dw), 1);
		struct swarm_graph *a = graph_on(dw), *b = graph_on(dw);
		cr_assert_eq(swarm_dev_weights_refs(dw), 3, "refs %u", swarm_dev_weights_refs(dw));
		swarm_dev_weights_put(dw); /* the loader's own: the graphs hold the copy now */
		cr_assert_eq(fk.allocs, 3, "%d allocations: the weights once, an arena a graph",
			     fk.allocs);
		expect_computes(a, "first graph");
		expect_computes(b, "second graph");
		swarm_graph_free(order ? a : b);
		cr_assert_eq(fk.frees, 1, "order %d: %d frees after one graph, want its arena",
			     order, fk.frees);
		expect_computes(order ? b : a, "the graph left");
		swarm_graph_free(order ? b : a);
		cr_assert_eq(fk.frees, 3, "order %d: %d frees, want two arenas and the weights",
			     order, fk.frees);
	}
}

/* Another worker on the GPU maps the exporter's copy through the fd; it computes the same,
 * and still does after the exporter let go of everything. */
Test(runtime_device_weights, imported_copy_outlives_its_exporter)
{
	struct swarm_dev_weights *ex = NULL, *im = NULL;
	int rc = swarm_dev_weights_upload(&fk.dev, blob.map, &blob.st, 1, &ex, NULL, err,
					  sizeof err);
	cr_assert_eq(rc, 0, "upload = %d: %s", rc, err);
	cr_assert_eq(swarm_dev_weights_shared(ex), 1);
	cr_assert_eq(fk.shared_allocs, 1);
	cr_assert_eq(fk.allocs, 0, "a shareable copy went through plain alloc");
	int fd = -1;
	cr_assert_eq(swarm_dev_weights_export(ex, &fd), 0);
	rc = swarm_dev_weights_import(&fk.dev, &blob.st, fd, swarm_dev_weights_bytes(ex),
				      swarm_dev_weights_layout(ex), &im, err, sizeof err);
	cr_assert_eq(rc, 0, "import = %d: %s", rc, err);
	close(fd);
	cr_assert_eq(fk.imports, 1);
	cr_assert_eq(swarm_dev_weights_shared(im), 1);
	/* The importer finds each tensor where the exporter put it ("device" memory is host
	 * memory here, so it can be compared with the file directly). */
	for (uint32_t i = 0; i < blob.st.n_tensors; i++) {
		const struct swarm_st_tensor *t = &blob.st.tensors[i];
		const void *dev_t = swarm_dev_weights_data(im, &blob.st, t->name);
		cr_assert_not_null(dev_t);
		cr_assert_eq(memcmp(dev_t, (const char *)blob.map + t->offset, t->nbytes), 0,
			     "tensor %s differs in the imported copy", t->name);
	}
	cr_expect_null(swarm_dev_weights_data(im, &blob.st, "no-such-tensor"));
	struct swarm_graph *g = graph_on(im);
	swarm_dev_weights_put(im);
	struct swarm_graph *e = graph_on(ex);
	swarm_dev_weights_put(ex);
	swarm_graph_free(e);
	cr_assert_eq(fk.shared_frees, 1, "the exporter's mapping goes with its graph");
	expect_computes(g, "the importer after the exporter let go");
	swarm_graph_free(g);
	cr_assert_eq(fk.shared_frees, 2);
}

/* What an importer refuses, each leaving nothing allocated: the caller loads from the blob. */
Test(runtime_device_weights, import_refuses_what_does_not_fit)
{
	struct swarm_dev_weights *ex = NULL, *im = NULL;
	int rc = swarm_dev_weights_upload(&fk.dev, blob.map, &blob.st, 1, &ex, NULL, err,
					  sizeof err);
	cr_assert_eq(rc, 0, "upload = %d: %s", rc, err);
	int fd = -1;
	cr_assert_eq(swarm_dev_weights_export(ex, &fd), 0);
	uint64_t bytes = swarm_dev_weights_bytes(ex), layout = swarm_dev_weights_layout(ex);

	rc = swarm_dev_weights_import(&fk.dev, &blob.st, fd, bytes + 256, layout, &im, err,
				      sizeof err);
	cr_expect_eq(rc, -EBADMSG, "a claimed size that is not the plan's: %d", rc);
	cr_expect_null(im);
	rc = swarm_dev_weights_import(&fk.dev, &blob.st, fd, bytes, layout ^ 1, &im, err,
				      sizeof err);
	cr_expect_eq(rc, -EBADMSG, "another layout: %d", rc);
	cr_expect(strstr(err, "layout") != NULL, "the message says why: %s", err);

	/* A peer that shares less memory than it claims: the device refuses the mapping. */
	int small = memfd_create("small", MFD_CLOEXEC);
	cr_assert_eq(ftruncate(small, 64), 0);
	rc = swarm_dev_weights_import(&fk.dev, &blob.st, small, bytes, layout, &im, err,
				      sizeof err);
	cr_expect_eq(rc, -EINVAL, "too small an allocation: %d", rc);
	close(small);
	rc = swarm_dev_weights_import(&fk.dev, &blob.st, 1000, bytes, layout, &im, err, sizeof err);
	cr_expect_eq(rc, -EINVAL, "a closed fd: %d", rc);

	fk.dev.i = &plain_i;
	rc = swarm_dev_weights_import(&fk.dev, &blob.st, fd, bytes, layout, &im, err, sizeof err);
	cr_expect_eq(rc, -ENOTSUP, "a device without import_shared: %d", rc);
	fk.dev.i = &shared_i;

	cr_expect_eq(fk.imports, 0, "%d imports were kept", fk.imports);
	cr_expect_eq(fk.allocs, 0, "%d allocations by refused imports", fk.allocs);
	close(fd);
	swarm_dev_weights_put(ex);
	cr_expect_eq(fk.shared_frees, 1);
}

/* Sharing saves memory and never decides whether weights load: without alloc_shared, or
 * when it fails, the copy is private (and says so), and export refuses it. */
Test(runtime_device_weights, unshareable_device_gives_a_private_copy)
{
	for (int refuse = 0; refuse < 2; refuse++) {
		fk.dev.i = refuse ? &shared_i : &plain_i;
		fk.refuse_alloc_shared = refuse;
		fk.allocs = fk.frees = 0;
		struct swarm_dev_weights *dw = NULL;
		int rc = swarm_dev_weights_upload(&fk.dev, blob.map, &blob.st, 1, &dw, NULL, err,
						  sizeof err);
		cr_assert_eq(rc, 0, "refuse %d: upload = %d: %s", refuse, rc, err);
		cr_expect_eq(swarm_dev_weights_shared(dw), 0);
		cr_expect_eq(fk.allocs, 1);
		int fd = 7;
		cr_expect_eq(swarm_dev_weights_export(dw, &fd), -ENOTSUP);
		cr_expect_eq(fd, -1);
		struct swarm_graph *g = graph_on(dw);
		swarm_dev_weights_put(dw);
		expect_computes(g, "a private copy");
		swarm_graph_free(g);
		cr_expect_eq(fk.frees, 2, "refuse %d: %d frees", refuse, fk.frees);
	}
}

/* A graph built on a copy of another file is refused, naming both counts. */
Test(runtime_device_weights, graph_refuses_another_files_copy)
{
	struct swarm_dev_weights *dw = NULL;
	int rc = swarm_dev_weights_upload(&fk.dev, blob.map, &blob.st, 0, &dw, NULL, err,
					  sizeof err);
	cr_assert_eq(rc, 0);
	struct swarm_st_file other = blob.st;
	other.n_tensors = 2;
	struct swarm_graph *g = NULL;
	rc = swarm_graph_from_dev_weights(&man, &other, dw, 8, &g, err, sizeof err);
	cr_expect_eq(rc, -EINVAL, "%d", rc);
	cr_expect_null(g);
	cr_expect_eq(swarm_dev_weights_refs(dw), 1, "a refused graph kept a reference");
	swarm_dev_weights_put(dw);
}
