/* test_cuda_device.c: the CUDA device of kernels/device.h (kernels/cuda/cuda_device.cu) as a
 * device: creation and its refusals, memory and copies, the error flag of the index checks
 * that run on the GPU, and graph capture. The ops themselves are compared with the CPU, op by
 * op, in test_backend_ops.c.
 *
 * Two suites. kernels_cuda_device runs everywhere: without a GPU (CI has nvcc but no GPU)
 * creation must fail cleanly with -ENODEV, a reason, and *out set to NULL. kernels_cuda_device_gpu
 * needs a GPU and skips each test with the reason where there is none, never passing silently.
 *
 * upload_many and download_many (kernels/cuda/gather.cu) are checked in both strategies
 * against a memcpy reference: pieces of odd sizes at odd offsets, from host memory registered
 * with the device and from memory that is not, more pieces than one gather launch or one
 * batched copy takes, and nothing written between the pieces.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/cuda/gather.h"
#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"
#include "kernels/graph.h"
#include "registry/manifest.h"
#include "swarm/swarm.h"

/* The executor's view of a parsed manifest (registry/manifest.h), for swarm_graph_build. */
static const struct swarm_graph_desc *man_desc(const struct swarm_manifest *m)
{
	static struct swarm_graph_desc d;
	swarm_manifest_graph_desc(m, &d);
	return &d;
}

/* 1 when this machine has a usable CUDA GPU. */
static int have_gpu(void)
{
	int count = 0;
	return swarm_cuda_device_count(&count) == 0 && count > 0;
}

/* Creates the CUDA device on GPU 0, or skips the calling test, visibly, saying why. */
static struct swarm_device *open_gpu_or_skip(void)
{
	struct swarm_device *dev = NULL;
	int rc;

	if (!have_gpu())
		cr_skip_test("no CUDA GPU on this machine: %s", swarm_cuda_last_error());
	rc = swarm_device_cuda_create(0, &dev);
	cr_assert_eq(rc, 0, "swarm_device_cuda_create(0): %d (%s): %s", rc, strerror(-rc),
		     swarm_cuda_last_error());
	cr_assert_not_null(dev);
	return dev;
}

/* xorshift64: deterministic inputs, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Uniform in [-1, 1). */
static float rnd(uint64_t *s) { return (float)((double)(rng_next(s) >> 11) / (1ull << 52) - 1.0); }

/* Device memory holding a copy of host (bytes); fails the test when it cannot. */
static void *dev_copy(struct swarm_device *dev, const void *host, size_t bytes)
{
	void *p = dev->i->alloc(dev, bytes);
	cr_assert_not_null(p, "alloc(%zu): %s", bytes, swarm_cuda_last_error());
	int rc = dev->i->upload(dev, p, host, bytes);
	cr_assert_eq(rc, 0, "upload of %zu bytes: %d (%s)", bytes, rc, swarm_cuda_last_error());
	return p;
}

/* Downloads bytes from p into host and waits for them. */
static void dev_read(struct swarm_device *dev, void *host, const void *p, size_t bytes)
{
	int rc = dev->i->download(dev, host, p, bytes);
	cr_assert_eq(rc, 0, "download of %zu bytes: %d (%s)", bytes, rc, swarm_cuda_last_error());
	rc = dev->i->synchronize(dev);
	cr_assert_eq(rc, 0, "synchronize after download: %d (%s)", rc, swarm_cuda_last_error());
}

static struct swarm_tensor tensor2(void *data, uint32_t dtype, int64_t d0, int64_t d1)
{
	struct swarm_tensor t = { .data = data, .dtype = dtype, .ndim = 2, .shape = { d0, d1 } };
	return t;
}

/* ---- everywhere -------------------------------------------------------------------------------
 */

Test(kernels_cuda_device, create_without_gpu_is_enodev_with_reason)
{
	struct swarm_device *dev = (struct swarm_device *)&dev; /* not NULL: create must clear it */
	int rc;

	if (have_gpu())
		cr_skip_test("this machine has a CUDA GPU: creation is checked by the gpu suite");
	rc = swarm_device_cuda_create(0, &dev);
	cr_expect_eq(rc, -ENODEV, "swarm_device_cuda_create(0) without a GPU: %d (%s), want %d", rc,
		     strerror(rc < 0 ? -rc : 0), -ENODEV);
	cr_expect_null(dev, "out is %p after a failed create, want NULL", (void *)dev);
	cr_expect_neq(swarm_cuda_last_error()[0], '\0', "-ENODEV without a reason");
	cr_log_info("no CUDA device: %s", swarm_cuda_last_error());
}

Test(kernels_cuda_device, create_with_null_out_is_einval)
{
	int rc = swarm_device_cuda_create(0, NULL);

	cr_expect_eq(rc, -EINVAL, "swarm_device_cuda_create(0, NULL): %d, want %d", rc, -EINVAL);
}

Test(kernels_cuda_device, create_with_bad_ordinal_is_einval_or_enodev)
{
	int count = 0;
	int gpus = swarm_cuda_device_count(&count) == 0 ? count : 0;
	int ordinals[] = { -1, gpus, 1 << 20 };

	for (size_t i = 0; i < sizeof(ordinals) / sizeof(ordinals[0]); i++) {
		struct swarm_device *dev = (struct swarm_device *)&dev;
		int rc = swarm_device_cuda_create(ordinals[i], &dev);
		/* Without a GPU there is no ordinal to be wrong about: -ENODEV comes first. */
		int want = gpus > 0 ? -EINVAL : -ENODEV;

		cr_expect_eq(rc, want, "ordinal %d with %d GPUs: %d, want %d", ordinals[i], gpus,
			     rc, want);
		cr_expect_null(dev, "ordinal %d: out is %p, want NULL", ordinals[i], (void *)dev);
		cr_expect_neq(swarm_cuda_last_error()[0], '\0', "ordinal %d: %d without a reason",
			      ordinals[i], rc);
	}
}

/* The table swarm_device_cuda_create hands out, read without a GPU: every member that the
 * CUDA device implements is set, upload_stream included (the loader streams weights with it). */
Test(kernels_cuda_device, table_has_every_member_and_upload_stream)
{
	const struct swarm_device_i *t = swarm_device_cuda_table();

	cr_assert_not_null(t, "CUDA is built in but swarm_device_cuda_table() is NULL");
	cr_expect_str_eq(t->name, "cuda");
	cr_expect_eq(t->host_memory, 0);
	cr_expect(t->alloc && t->free && t->upload && t->download && t->register_host &&
			  t->unregister_host && t->synchronize && t->supports_op && t->run &&
			  t->destroy && t->capture_begin && t->capture_end && t->replay &&
			  t->exec_free,
		  "the CUDA device's table leaves a member NULL");
	cr_expect_not_null(t->upload_stream, "the CUDA device has no upload_stream");
}

/* NCCL's unique id: made where NCCL is loadable and usable; elsewhere (no driver) -ENODEV with a
 * reason, never another code. */
Test(kernels_cuda_device, nccl_unique_id_is_zero_or_enodev_with_reason)
{
	uint8_t id[SWARM_NCCL_ID_BYTES];
	int rc;

	rc = swarm_nccl_unique_id(NULL);
	cr_expect_eq(rc, -EINVAL, "swarm_nccl_unique_id(NULL): %d, want %d", rc, -EINVAL);
	memset(id, 0, sizeof(id));
	rc = swarm_nccl_unique_id(id);
	cr_expect(rc == 0 || rc == -ENODEV, "swarm_nccl_unique_id: %d (%s), want 0 or %d", rc,
		  strerror(rc < 0 ? -rc : 0), -ENODEV);
	if (rc == -ENODEV) {
		cr_expect_neq(swarm_cuda_last_error()[0], '\0', "-ENODEV without a reason");
		cr_log_info("NCCL unusable here: %s", swarm_cuda_last_error());
	}
}

/* Bad arguments are -EINVAL before NCCL is loaded or a collective is joined, with or without a
 * GPU. A CUDA device cannot be made without a GPU, so the checks see a stand-in: the CUDA
 * table and a dummy context, never read because every call below is refused first. */
Test(kernels_cuda_device, nccl_broadcast_bad_arguments_are_einval)
{
	int dummy_ctx = 0;
	struct swarm_device fake = { .i = swarm_device_cuda_table(), .ctx = &dummy_ctx };
	struct swarm_device *cpu = NULL;
	uint8_t id[SWARM_NCCL_ID_BYTES] = { 0 };
	char buf[16];
	double gbps = -1.0;
	struct {
		const char *what;
		struct swarm_device *dev;
		const uint8_t *id;
		int nranks, rank, root;
		void *buf;
	} cases[] = {
		{ "NULL dev", NULL, id, 1, 0, 0, buf },
		{ "NULL id", &fake, NULL, 1, 0, 0, buf },
		{ "nranks 0", &fake, id, 0, 0, 0, buf },
		{ "nranks -1", &fake, id, -1, 0, 0, buf },
		{ "rank == nranks", &fake, id, 2, 2, 0, buf },
		{ "rank -1", &fake, id, 2, -1, 0, buf },
		{ "root == nranks", &fake, id, 2, 0, 2, buf },
		{ "root -1", &fake, id, 2, 0, -1, buf },
		{ "NULL buf", &fake, id, 1, 0, 0, NULL },
		{ "a CPU device", NULL, id, 1, 0, 0, buf },
	};
	int rc = swarm_device_cpu_create(1, &cpu);

	cr_assert_eq(rc, 0, "swarm_device_cpu_create: %d", rc);
	cases[sizeof(cases) / sizeof(cases[0]) - 1].dev = cpu;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		gbps = -1.0;
		rc = swarm_nccl_broadcast(cases[k].dev, cases[k].id, cases[k].nranks, cases[k].rank,
					  cases[k].root, cases[k].buf, sizeof(buf), &gbps);
		cr_expect_eq(rc, -EINVAL, "broadcast with %s: %d (%s), want %d", cases[k].what, rc,
			     swarm_cuda_last_error(), -EINVAL);
		cr_expect_eq(gbps, 0.0, "broadcast with %s: gbps %g after a failure, want 0",
			     cases[k].what, gbps);
		/* The argument check's own message, not one from loading NCCL. */
		cr_expect(strstr(swarm_cuda_last_error(), "bad argument") != NULL,
			  "broadcast with %s: message \"%s\", want the argument check's",
			  cases[k].what, swarm_cuda_last_error());
	}
	cpu->i->destroy(cpu);
}

/* ---- with a GPU ----------------------------------------------------------------------------- */

/* 100 MB of pseudo-random bytes (not a whole number of the 16 MiB chunks) written to a temp
 * file and mapped read-only, as the registry maps a weights blob: streamed to the GPU, read
 * back, and compared byte for byte; the rate is logged. */
Test(kernels_cuda_device_gpu, upload_stream_of_a_mapped_file_round_trips)
{
	struct swarm_device *dev = open_gpu_or_skip();
	const size_t n = 100u * 1000 * 1000;
	char path[] = "/tmp/swarm-test-stream-XXXXXX";
	uint64_t s = 7;
	double gbps = -1.0;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	uint64_t *buf = malloc(1 << 20);
	cr_assert_not_null(buf);
	for (size_t off = 0; off < n; off += 1 << 20) {
		size_t len = n - off < (1u << 20) ? n - off : 1u << 20;
		for (size_t i = 0; i < (1u << 20) / 8; i++)
			buf[i] = rng_next(&s);
		cr_assert_eq(write(fd, buf, len), (ssize_t)len, "write: %s", strerror(errno));
	}
	free(buf);
	const unsigned char *map = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq((void *)map, MAP_FAILED, "mmap: %s", strerror(errno));
	close(fd);

	cr_assert_not_null(dev->i->upload_stream);
	void *p = dev->i->alloc(dev, n);
	cr_assert_not_null(p, "alloc(%zu): %s", n, swarm_cuda_last_error());
	int rc = dev->i->upload_stream(dev, p, &(struct swarm_upload_src){ .host = map }, n, &gbps);
	cr_assert_eq(rc, 0, "upload_stream of %zu bytes: %d (%s)", n, rc, swarm_cuda_last_error());
	cr_expect_gt(gbps, 0.0, "upload_stream reported %.3f GB/s", gbps);
	cr_log_info("upload_stream: %zu bytes from a mapped file at %.2f GB/s", n, gbps);
	unsigned char *back = malloc(n);
	cr_assert_not_null(back);
	memset(back, 0, n);
	dev_read(dev, back, p, n);
	if (memcmp(back, map, n) != 0) {
		size_t i = 0;
		while (back[i] == map[i])
			i++;
		cr_assert_fail("byte %zu (chunk %zu) is %u, want %u", i, i / ((size_t)16 << 20),
			       back[i], map[i]);
	}
	/* A second call reuses the chunks; an odd length and offset on both sides. */
	rc = dev->i->upload_stream(dev, (char *)p + 1,
				   &(struct swarm_upload_src){ .host = map + 3 }, n - 5, NULL);
	cr_assert_eq(rc, 0, "second upload_stream: %d (%s)", rc, swarm_cuda_last_error());
	dev_read(dev, back, p, n);
	cr_assert(memcmp(back + 1, map + 3, n - 5) == 0, "second upload_stream: bytes differ");
	free(back);
	dev->i->free(dev, p);
	munmap((void *)map, n);
	dev->i->destroy(dev);
}

/* Refusals: NULL pointers are -EINVAL, zero bytes is 0 at 0 GB/s, and a capture in progress
 * is refused (its chunks are reused at once, a replay would read whatever they then held). */
Test(kernels_cuda_device_gpu, upload_stream_refuses_null_and_capture)
{
	struct swarm_device *dev = open_gpu_or_skip();
	unsigned char host[64] = { 1 };
	const struct swarm_upload_src src = { .host = host };
	double gbps = -1.0;
	void *p = dev->i->alloc(dev, sizeof host), *exec = NULL;
	int rc;

	cr_assert_not_null(p);
	rc = dev->i->upload_stream(dev, NULL, &src, sizeof host, NULL);
	cr_expect_eq(rc, -EINVAL, "NULL dst: %d, want %d", rc, -EINVAL);
	rc = dev->i->upload_stream(dev, p, NULL, sizeof host, NULL);
	cr_expect_eq(rc, -EINVAL, "NULL src: %d, want %d", rc, -EINVAL);
	rc = dev->i->upload_stream(dev, p, &src, 0, &gbps);
	cr_expect(rc == 0 && gbps == 0.0, "0 bytes: %d at %.3f GB/s, want 0 at 0", rc, gbps);
	cr_assert_eq(dev->i->capture_begin(dev), 0, "capture_begin: %s", swarm_cuda_last_error());
	rc = dev->i->upload_stream(dev, p, &src, sizeof host, NULL);
	cr_expect_eq(rc, -EINVAL, "during capture: %d, want %d", rc, -EINVAL);
	cr_assert_eq(dev->i->capture_end(dev, &exec), 0, "capture_end: %s",
		     swarm_cuda_last_error());
	dev->i->exec_free(dev, exec);
	rc = dev->i->upload_stream(dev, p, &src, sizeof host, NULL);
	cr_expect_eq(rc, 0, "after capture: %d (%s)", rc, swarm_cuda_last_error());
	dev->i->free(dev, p);
	dev->i->destroy(dev);
}

Test(kernels_cuda_device_gpu, table_and_memory_round_trip)
{
	struct swarm_device *dev = open_gpu_or_skip();
	size_t sizes[] = { 0, 1, 3, 17, 129, 4096, 1 << 20 };
	uint64_t s = 42;

	cr_expect_str_eq(dev->i->name, "cuda");
	cr_expect_eq(dev->i->host_memory, 0);
	cr_expect(dev->i->synchronize && dev->i->register_host && dev->i->unregister_host &&
			  dev->i->capture_begin && dev->i->capture_end && dev->i->replay &&
			  dev->i->exec_free,
		  "the CUDA device leaves a member of its table NULL");
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k], m = n ? n : 1;
		unsigned char *src = malloc(m), *want = malloc(m), *back = malloc(m);
		cr_assert(src && want && back);
		for (size_t i = 0; i < n; i++)
			src[i] = want[i] = (unsigned char)rng_next(&s);
		memset(back, 0, m);
		void *p = dev_copy(dev, src, n);
		cr_expect_eq((uintptr_t)p % 64, 0, "alloc(%zu) = %p, not 64-byte aligned", n, p);
		/* upload has returned: the source may be reused at once. */
		memset(src, 0x5a, m);
		dev_read(dev, back, p, n);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(back[i], want[i],
				     "round trip of %zu bytes: byte %zu is %u, want %u", n, i,
				     back[i], want[i]);
		dev->i->free(dev, p);
		free(back);
		free(want);
		free(src);
	}
	dev->i->destroy(dev);
}

/* An embedding id out of range is found on the GPU: run() returns 0 (it cannot read the ids),
 * the node writes nothing, synchronize returns -EINVAL once, and the device works after. */
Test(kernels_cuda_device_gpu, embedding_id_out_of_range_is_einval_at_synchronize)
{
	struct swarm_device *dev = open_gpu_or_skip();
	enum {
		V = 5,
		D = 3,
		L = 4
	};
	float table[V * D], out_host[L * D], poison[L * D];
	int32_t ids[L] = { 0, 4, 5, 2 }; /* 5 == V: out of range */
	uint64_t s = 7;

	for (int i = 0; i < V * D; i++)
		table[i] = rnd(&s);
	memset(poison, 0xa5, sizeof(poison));
	void *dt = dev_copy(dev, table, sizeof(table));
	void *di = dev_copy(dev, ids, sizeof(ids));
	void *dout = dev_copy(dev, poison, sizeof(poison));
	struct swarm_tensor t = tensor2(dt, SWARM_DTYPE_F32, V, D);
	struct swarm_tensor id = { .data = di, .dtype = SWARM_DTYPE_I32, .ndim = 1, .shape = { L } };
	struct swarm_tensor out = tensor2(dout, SWARM_DTYPE_F32, L, D);
	struct swarm_node n = {
		.op = SWARM_OP_EMBEDDING, .n_in = 2, .in = { &t, &id }, .out = &out
	};

	cr_assert_eq(dev->i->supports_op(dev, &n), 1);
	int rc = dev->i->run(dev, &n);
	cr_assert_eq(rc, 0, "run with an id out of range: %d (%s), want 0 (found on the GPU)", rc,
		     swarm_cuda_last_error());
	rc = dev->i->synchronize(dev);
	cr_assert_eq(rc, -EINVAL, "synchronize after an id out of range: %d, want %d", rc, -EINVAL);
	cr_expect_neq(swarm_cuda_last_error()[0], '\0', "-EINVAL without a reason");
	rc = dev->i->synchronize(dev);
	cr_assert_eq(rc, 0, "a second synchronize: %d, want 0 (the flag is cleared)", rc);
	dev_read(dev, out_host, dout, sizeof(out_host));
	cr_assert_eq(memcmp(out_host, poison, sizeof(poison)), 0,
		     "the refused node wrote to out (first float %g)", (double)out_host[0]);

	/* With the id fixed the same node runs and gathers the rows. */
	ids[2] = 3;
	cr_assert_eq(dev->i->upload(dev, di, ids, sizeof(ids)), 0);
	cr_assert_eq(dev->i->run(dev, &n), 0);
	cr_assert_eq(dev->i->synchronize(dev), 0, "%s", swarm_cuda_last_error());
	dev_read(dev, out_host, dout, sizeof(out_host));
	for (int i = 0; i < L; i++)
		for (int k = 0; k < D; k++)
			cr_assert_eq(out_host[i * D + k], table[ids[i] * D + k],
				     "out[%d][%d] = %g, want table[%d][%d] = %g", i, k,
				     (double)out_host[i * D + k], ids[i], k,
				     (double)table[ids[i] * D + k]);
	dev->i->free(dev, dout);
	dev->i->free(dev, di);
	dev->i->free(dev, dt);
	dev->i->destroy(dev);
}

/* linear (bias, GELU: the GEMM then our fused pass) then softmax, run directly, then captured
 * once and replayed twice: the replays give what the direct run gave, and that matches the CPU
 * device on the same inputs. */
Test(kernels_cuda_device_gpu, capture_replay_of_two_nodes_equals_direct_run)
{
	struct swarm_device *dev = open_gpu_or_skip(), *cpu = NULL;
	enum {
		M = 7,
		K = 33,
		N = 19
	};
	float x[M * K], w[N * K], b[N], direct[M * N], replayed[M * N], want[M * N], zeros[M * N];
	uint64_t s = 99;

	for (int i = 0; i < M * K; i++)
		x[i] = rnd(&s);
	for (int i = 0; i < N * K; i++)
		w[i] = rnd(&s);
	for (int i = 0; i < N; i++)
		b[i] = rnd(&s);
	memset(zeros, 0, sizeof(zeros));
	void *dx = dev_copy(dev, x, sizeof(x)), *dw = dev_copy(dev, w, sizeof(w));
	void *db = dev_copy(dev, b, sizeof(b)), *dh = dev_copy(dev, zeros, sizeof(zeros));
	void *dy = dev_copy(dev, zeros, sizeof(zeros));
	struct swarm_tensor tx = tensor2(dx, SWARM_DTYPE_F32, M, K);
	struct swarm_tensor tw = tensor2(dw, SWARM_DTYPE_F32, N, K);
	struct swarm_tensor tb = { .data = db, .dtype = SWARM_DTYPE_F32, .ndim = 1, .shape = { N } };
	struct swarm_tensor th = tensor2(dh, SWARM_DTYPE_F32, M, N);
	struct swarm_tensor ty = tensor2(dy, SWARM_DTYPE_F32, M, N);
	struct swarm_node lin = { .op = SWARM_OP_LINEAR,
				  .n_in = 3,
				  .in = { &tx, &tw, &tb },
				  .out = &th,
				  .p = { .act = SWARM_OP_GELU } };
	struct swarm_node sm = { .op = SWARM_OP_SOFTMAX, .n_in = 1, .in = { &th }, .out = &ty };

	cr_assert_eq(dev->i->run(dev, &lin), 0, "%s", swarm_cuda_last_error());
	cr_assert_eq(dev->i->run(dev, &sm), 0, "%s", swarm_cuda_last_error());
	cr_assert_eq(dev->i->synchronize(dev), 0, "%s", swarm_cuda_last_error());
	dev_read(dev, direct, dy, sizeof(direct));

	void *exec = NULL;
	cr_assert_eq(dev->i->capture_begin(dev), 0, "capture_begin: %s", swarm_cuda_last_error());
	cr_assert_eq(dev->i->run(dev, &lin), 0, "captured linear: %s", swarm_cuda_last_error());
	cr_assert_eq(dev->i->run(dev, &sm), 0, "captured softmax: %s", swarm_cuda_last_error());
	cr_assert_eq(dev->i->capture_end(dev, &exec), 0, "capture_end: %s",
		     swarm_cuda_last_error());
	cr_assert_not_null(exec);
	for (int rep = 0; rep < 2; rep++) {
		/* Clear the outputs, so that only the replay can have written them. */
		cr_assert_eq(dev->i->upload(dev, dh, zeros, sizeof(zeros)), 0);
		cr_assert_eq(dev->i->upload(dev, dy, zeros, sizeof(zeros)), 0);
		cr_assert_eq(dev->i->replay(dev, exec), 0, "replay %d: %s", rep,
			     swarm_cuda_last_error());
		cr_assert_eq(dev->i->synchronize(dev), 0, "%s", swarm_cuda_last_error());
		dev_read(dev, replayed, dy, sizeof(replayed));
		for (int i = 0; i < M * N; i++)
			cr_assert(fabsf(replayed[i] - direct[i]) <=
					  1e-6f * (1.0f + fabsf(direct[i])),
				  "replay %d: y[%d] = %.9g, direct run %.9g", rep, i,
				  (double)replayed[i], (double)direct[i]);
	}
	dev->i->exec_free(dev, exec);

	/* The same two nodes on the CPU device. */
	float h_cpu[M * N];
	cr_assert_eq(swarm_device_cpu_create(1, &cpu), 0);
	struct swarm_tensor cx = tensor2(x, SWARM_DTYPE_F32, M, K);
	struct swarm_tensor cw = tensor2(w, SWARM_DTYPE_F32, N, K);
	struct swarm_tensor cb = { .data = b, .dtype = SWARM_DTYPE_F32, .ndim = 1, .shape = { N } };
	struct swarm_tensor ch = tensor2(h_cpu, SWARM_DTYPE_F32, M, N);
	struct swarm_tensor cy = tensor2(want, SWARM_DTYPE_F32, M, N);
	struct swarm_node clin = { .op = SWARM_OP_LINEAR,
				   .n_in = 3,
				   .in = { &cx, &cw, &cb },
				   .out = &ch,
				   .p = { .act = SWARM_OP_GELU } };
	struct swarm_node csm = { .op = SWARM_OP_SOFTMAX, .n_in = 1, .in = { &ch }, .out = &cy };
	cr_assert_eq(cpu->i->run(cpu, &clin), 0);
	cr_assert_eq(cpu->i->run(cpu, &csm), 0);
	for (int i = 0; i < M * N; i++)
		cr_assert(fabsf(direct[i] - want[i]) <= 1e-5f + 1e-4f * fabsf(want[i]),
			  "y[%d] = %.9g on the GPU, %.9g on the CPU", i, (double)direct[i],
			  (double)want[i]);
	cpu->i->destroy(cpu);

	dev->i->free(dev, dy);
	dev->i->free(dev, dh);
	dev->i->free(dev, db);
	dev->i->free(dev, dw);
	dev->i->free(dev, dx);
	dev->i->destroy(dev);
}

/* One rank, root 0: a communicator of one on GPU 0, the buffer broadcast to itself, unchanged
 * after. The multi-GPU case (several workers, one id) awaits a machine with several GPUs. */
Test(kernels_cuda_device_gpu, nccl_broadcast_single_rank_leaves_buffer_unchanged)
{
	struct swarm_device *dev = open_gpu_or_skip();
	const size_t n = (1u << 20) + 3;
	uint8_t id[SWARM_NCCL_ID_BYTES];
	unsigned char *want = malloc(n), *back = malloc(n);
	uint64_t s = 99;
	double gbps = -1.0;
	int rc;

	cr_assert(want && back);
	rc = swarm_nccl_unique_id(id);
	cr_assert_eq(rc, 0, "swarm_nccl_unique_id on a GPU machine: %d (%s)", rc,
		     swarm_cuda_last_error());
	for (size_t i = 0; i < n; i++)
		want[i] = (unsigned char)rng_next(&s);
	void *p = dev_copy(dev, want, n);
	rc = swarm_nccl_broadcast(dev, id, 1, 0, 0, p, n, &gbps);
	cr_assert_eq(rc, 0, "single-rank broadcast of %zu bytes: %d (%s)", n, rc,
		     swarm_cuda_last_error());
	cr_expect_geq(gbps, 0.0, "gbps %g", gbps);
	cr_log_info("single-rank NCCL broadcast of %zu bytes: %.1f GB/s", n, gbps);
	memset(back, 0, n);
	dev_read(dev, back, p, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(back[i], want[i], "after the broadcast byte %zu is %u, want %u", i,
			     back[i], want[i]);
	dev->i->free(dev, p);
	dev->i->destroy(dev);
	free(back);
	free(want);
}

/* ---- upload_many and download_many --------------------------------------------------------- */

/* Readable without a GPU: both members are in the table, the mode names round-trip, and the
 * setter refuses a device that is not a CUDA one. */
Test(kernels_cuda_device, gather_members_and_modes)
{
	const struct swarm_device_i *t = swarm_device_cuda_table();
	cr_assert_not_null(t);
	cr_expect(t->upload_many && t->download_many, "upload_many or download_many is NULL");
	for (int m = 0; m < SWARM_CUDA_GATHER_MODE_COUNT; m++) {
		const char *name = swarm_cuda_gather_mode_name(m);
		cr_assert_not_null(name, "mode %d has no name", m);
		cr_expect_eq(swarm_cuda_gather_mode_from_name(name), m, "%s", name);
	}
	cr_expect_null(swarm_cuda_gather_mode_name(SWARM_CUDA_GATHER_MODE_COUNT));
	cr_expect_eq(swarm_cuda_gather_mode_from_name("dma"), -1);
	cr_expect_eq(swarm_cuda_gather_mode_from_name(NULL), -1);
	struct swarm_device *cpu = NULL;
	cr_assert_eq(swarm_device_cpu_create(1, &cpu), 0);
	cr_expect_eq(swarm_cuda_set_gather_mode(cpu, SWARM_CUDA_GATHER_KERNEL), -EINVAL);
	cr_expect_eq(swarm_cuda_gather_mode(cpu), -EINVAL);
	cr_expect_eq(swarm_cuda_set_gather_mode(NULL, SWARM_CUDA_GATHER_KERNEL), -EINVAL);
	cpu->i->destroy(cpu);
}

#define MANY_PIECES 300 /* more than SWARM_CUDA_GATHER_MAX_PIECES and SWARM_CUDA_GATHER_BATCH */
#define MANY_HOST (1u << 20)

/* Pieces over two host buffers (one registered, one not, alternating in runs) and one device
 * buffer: odd sizes up to 4 KiB, odd host offsets, device offsets packed with gaps of 0..40
 * bytes so that some pieces continue the last one on both sides (the copies strategy merges
 * those). Returns the device bytes used. */
static size_t make_pieces(struct swarm_copy *pc, unsigned char *reg, unsigned char *unreg,
			  char *dev, int to_device, uint64_t *s)
{
	size_t at = 0, h[2] = { 0, 0 };
	for (int i = 0; i < MANY_PIECES; i++) {
		int r = (i / 7) % 2; /* runs of 7 from each buffer */
		size_t bytes = 1 + rng_next(s) % 4096, gap = rng_next(s) % 41;
		if (i % 13 == 0)
			gap = 0; /* and then contiguous on the host side too */
		else
			h[r] += 1 + rng_next(s) % 33;
		unsigned char *host = (r ? unreg : reg) + h[r];
		h[r] += bytes;
		at += i % 13 == 0 ? 0 : gap;
		cr_assert_lt(h[r], MANY_HOST);
		pc[i] = to_device ? (struct swarm_copy){ dev + at, host, bytes } :
				    (struct swarm_copy){ host, dev + at, bytes };
		at += bytes;
	}
	return at;
}

/* upload_many then download_many of the same pieces in mode: the device image equals one
 * made with memcpy, and the host buffers get back exactly the pieces' bytes, the bytes
 * between them untouched. */
static void check_many(struct swarm_device *dev, int mode, unsigned char *reg, unsigned char *unreg,
		       uint64_t seed)
{
	static struct swarm_copy up[MANY_PIECES], down[MANY_PIECES];
	uint64_t s = seed, s2 = seed;
	size_t dev_bytes = 8u << 20;
	char *d = dev->i->alloc(dev, dev_bytes);
	cr_assert_not_null(d, "alloc: %s", swarm_cuda_last_error());
	cr_assert_eq(swarm_cuda_set_gather_mode(dev, mode), 0);
	cr_assert_eq(swarm_cuda_gather_mode(dev), mode);

	for (size_t i = 0; i < MANY_HOST; i++) {
		reg[i] = (unsigned char)rng_next(&s);
		unreg[i] = (unsigned char)rng_next(&s);
	}
	size_t used = make_pieces(up, reg, unreg, d, 1, &s2);
	unsigned char *zero = calloc(1, used), *want = calloc(1, used), *got = malloc(used);
	cr_assert(zero && want && got);
	for (int i = 0; i < MANY_PIECES; i++)
		memcpy(want + ((char *)up[i].dst - d), up[i].src, up[i].bytes);
	cr_assert_eq(dev->i->upload(dev, d, zero, used), 0);
	int rc = dev->i->upload_many(dev, up, MANY_PIECES);
	cr_assert_eq(rc, 0, "%s: upload_many: %d (%s)", swarm_cuda_gather_mode_name(mode), rc,
		     swarm_cuda_last_error());
	cr_assert_eq(dev->i->synchronize(dev), 0, "%s", swarm_cuda_last_error());
	dev_read(dev, got, d, used);
	for (size_t i = 0; i < used; i++)
		cr_assert_eq(got[i], want[i], "%s: upload_many: device byte %zu is %u, want %u",
			     swarm_cuda_gather_mode_name(mode), i, got[i], want[i]);

	/* Back out to the same host places, over a pattern that must stay between them. */
	s2 = seed;
	make_pieces(down, reg, unreg, d, 0, &s2);
	unsigned char *reg_want = malloc(MANY_HOST), *unreg_want = malloc(MANY_HOST);
	cr_assert(reg_want && unreg_want);
	memset(reg, 0xC3, MANY_HOST);
	memset(unreg, 0xC3, MANY_HOST);
	memcpy(reg_want, reg, MANY_HOST);
	memcpy(unreg_want, unreg, MANY_HOST);
	for (int i = 0; i < MANY_PIECES; i++) {
		unsigned char *h = down[i].dst;
		unsigned char *w = h >= reg && h < reg + MANY_HOST ? reg_want + (h - reg) :
								     unreg_want + (h - unreg);
		memcpy(w, want + ((const char *)down[i].src - d), down[i].bytes);
	}
	rc = dev->i->download_many(dev, down, MANY_PIECES);
	cr_assert_eq(rc, 0, "%s: download_many: %d (%s)", swarm_cuda_gather_mode_name(mode), rc,
		     swarm_cuda_last_error());
	cr_assert_eq(dev->i->synchronize(dev), 0, "%s", swarm_cuda_last_error());
	for (size_t i = 0; i < MANY_HOST; i++) {
		cr_assert_eq(reg[i], reg_want[i],
			     "%s: download_many: registered byte %zu is %u, "
			     "want %u",
			     swarm_cuda_gather_mode_name(mode), i, reg[i], reg_want[i]);
		cr_assert_eq(unreg[i], unreg_want[i],
			     "%s: download_many: unregistered byte %zu "
			     "is %u, want %u",
			     swarm_cuda_gather_mode_name(mode), i, unreg[i], unreg_want[i]);
	}
	free(reg_want);
	free(unreg_want);
	free(zero);
	free(want);
	free(got);
	dev->i->free(dev, d);
}

Test(kernels_cuda_device_gpu, upload_many_and_download_many_match_memcpy_in_both_modes)
{
	struct swarm_device *dev = open_gpu_or_skip();
	unsigned char *reg = aligned_alloc(4096, MANY_HOST), *unreg = malloc(MANY_HOST);
	cr_assert(reg && unreg);
	int rc = dev->i->register_host(dev, reg, MANY_HOST);
	cr_assert_eq(rc, 0, "register_host: %d (%s)", rc, swarm_cuda_last_error());
	for (int mode = 0; mode < SWARM_CUDA_GATHER_MODE_COUNT; mode++)
		for (uint64_t seed = 1; seed <= 3; seed++)
			check_many(dev, mode, reg, unreg, seed * 0x9e3779b97f4a7c15ull);
	cr_assert_eq(dev->i->unregister_host(dev, reg), 0);
	/* Unregistered now: the kernel mode must copy every piece, and still be right. */
	check_many(dev, SWARM_CUDA_GATHER_KERNEL, reg, unreg, 99);
	free(reg);
	free(unreg);
	dev->i->destroy(dev);
}

/* A read-only mapping (as the registry maps weights) is registered read-only and mapped
 * (kernels/cuda/cuda_device.cu): the gather kernel reads it through the device address the
 * runtime gives, never by assuming the host address, and gets the bytes. A platform that
 * refuses the registration skips, saying "unsupported here". */
Test(kernels_cuda_device_gpu, kernel_gather_reads_a_read_only_registration)
{
	struct swarm_device *dev = open_gpu_or_skip();
	const size_t bytes = 1u << 20;
	int fd = memfd_create("swarm-ro", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	unsigned char *w = malloc(bytes);
	cr_assert_not_null(w);
	uint64_t s = 7;
	for (size_t i = 0; i < bytes; i++)
		w[i] = (unsigned char)rng_next(&s);
	cr_assert_eq(write(fd, w, bytes), (ssize_t)bytes);
	unsigned char *ro = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(ro, MAP_FAILED);
	int rc = dev->i->register_host(dev, ro, bytes);
	if (rc)
		cr_skip_test("unsupported here: register_host of a read-only mapping returned %d "
			     "(%s)",
			     rc, swarm_cuda_last_error());
	char *d = dev->i->alloc(dev, bytes);
	cr_assert_not_null(d);
	struct swarm_copy pc[3] = { { d, ro + 1, 4095 },
				    { d + 8192, ro + 65536, 16 },
				    { d + 16384, ro + bytes - 100000, 100000 } };
	unsigned char *got = malloc(bytes);
	cr_assert_not_null(got);
	cr_assert_eq(swarm_cuda_set_gather_mode(dev, SWARM_CUDA_GATHER_KERNEL), 0);
	cr_assert_eq(dev->i->upload_many(dev, pc, 3), 0, "%s", swarm_cuda_last_error());
	cr_assert_eq(dev->i->synchronize(dev), 0, "the kernel faulted: %s",
		     swarm_cuda_last_error());
	for (int k = 0; k < 3; k++) {
		dev_read(dev, got, pc[k].dst, pc[k].bytes);
		cr_assert_eq(memcmp(got, pc[k].src, pc[k].bytes), 0, "piece %d differs", k);
	}
	cr_assert_eq(dev->i->unregister_host(dev, ro), 0, "%s", swarm_cuda_last_error());
	dev->i->free(dev, d);
	munmap(ro, bytes);
	free(got);
	free(w);
	dev->i->destroy(dev);
}

/* SWARM_CUDA_GATHER picks the mode at create; zero pieces and empty pieces are no-ops; NULL
 * pointers with bytes are -EINVAL; during capture both refuse. */
Test(kernels_cuda_device_gpu, gather_mode_from_env_and_refusals)
{
	if (!have_gpu())
		cr_skip_test("no CUDA GPU on this machine: %s", swarm_cuda_last_error());
	setenv("SWARM_CUDA_GATHER", "kernel", 1);
	struct swarm_device *dev = open_gpu_or_skip();
	unsetenv("SWARM_CUDA_GATHER");
	cr_expect_eq(swarm_cuda_gather_mode(dev), SWARM_CUDA_GATHER_KERNEL);
	char *d = dev->i->alloc(dev, 64);
	char host[64] = { 0 };
	struct swarm_copy empty = { d, host, 0 }, bad = { d, NULL, 8 }, one = { d, host, 8 };
	void *exec = NULL;
	for (int mode = 0; mode < SWARM_CUDA_GATHER_MODE_COUNT; mode++) {
		swarm_cuda_set_gather_mode(dev, mode);
		cr_expect_eq(dev->i->upload_many(dev, NULL, 0), 0);
		cr_expect_eq(dev->i->upload_many(dev, &empty, 1), 0);
		cr_expect_eq(dev->i->upload_many(dev, &bad, 1), -EINVAL);
		cr_expect_eq(dev->i->download_many(dev, NULL, 1), -EINVAL);
		cr_assert_eq(dev->i->capture_begin(dev), 0, "%s", swarm_cuda_last_error());
		cr_expect_eq(dev->i->upload_many(dev, &one, 1), -EINVAL, "during capture");
		cr_assert_eq(dev->i->capture_end(dev, &exec), 0, "%s", swarm_cuda_last_error());
		dev->i->exec_free(dev, exec);
		cr_expect_eq(dev->i->synchronize(dev), 0, "%s", swarm_cuda_last_error());
	}
	dev->i->free(dev, d);
	dev->i->destroy(dev);
}

/* swarm_graph_run_parts on the CUDA device, in each gather mode: ten requests' buffers, half
 * in a registered buffer and half in malloc'd memory, give the rows of one contiguous CPU run
 * to the bit (relu and identity are exact), through the direct run, the capture and the
 * replays of the same summed rows. */
Test(kernels_cuda_device_gpu, run_parts_equals_a_contiguous_cpu_run)
{
	static const char json[] =
		"{\"format\": 1,"
		" \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 5]},"
		"   {\"name\": \"z\", \"dtype\": \"f32\", \"shape\": [-1, 3]}],"
		" \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 5]},"
		"   {\"name\": \"z2\", \"dtype\": \"f32\", \"shape\": [-1, 3]}],"
		" \"graph\": {\"nodes\": ["
		"  {\"op\": \"relu\", \"inputs\": [\"x\"], \"output\": \"y\"},"
		"  {\"op\": \"identity\", \"inputs\": [\"z\"], \"output\": \"z2\"}]},"
		" \"weights\": []}";
	enum {
		PARTS = 10,
		MAXB = 32,
		W0 = 5,
		W1 = 3
	};
	static const uint32_t rows[PARTS] = { 1, 4, 2, 7, 1, 1, 3, 5, 2, 4 }; /* 30 rows */
	static struct swarm_manifest man;
	char err[256];
	struct swarm_device *dev = open_gpu_or_skip(), *cpu = NULL;
	struct swarm_graph *g = NULL, *gc = NULL;
	uint64_t s = 7;

	cr_assert_eq(swarm_manifest_parse(json, sizeof json - 1, &man, err, sizeof err), 0, "%s",
		     err);
	cr_assert_eq(swarm_device_cpu_create(1, &cpu), 0);
	cr_assert_eq(swarm_graph_build(man_desc(&man), NULL, NULL, cpu, MAXB, &gc, err, sizeof err), 0, "%s",
		     err);
	cr_assert_eq(swarm_graph_build(man_desc(&man), NULL, NULL, dev, MAXB, &g, err, sizeof err), 0, "%s",
		     err);
	cr_assert_eq(swarm_graph_staged(g), 1);

	float x[MAXB * W0], z[MAXB * W1], y[MAXB * W0], z2[MAXB * W1];
	for (int i = 0; i < MAXB * W0; i++)
		x[i] = rnd(&s);
	for (int i = 0; i < MAXB * W1; i++)
		z[i] = rnd(&s);
	const void *cin[] = { x, z };
	void *cout[] = { y, z2 };
	cr_assert_eq(swarm_graph_run(gc, 30, cin, cout), 0);

	/* Part p's four tensors: in reg for even p, in unreg for odd p, 1 KiB apart. */
	size_t area = 1024, bytes = (size_t)PARTS * 4 * area;
	char *reg = aligned_alloc(4096, bytes), *unreg = malloc(bytes);
	cr_assert(reg && unreg);
	cr_assert_eq(dev->i->register_host(dev, reg, bytes), 0, "%s", swarm_cuda_last_error());
	struct swarm_graph_part parts[PARTS];
	const void *ins[PARTS][2];
	void *outs[PARTS][2];
	for (int mode = 0; mode < SWARM_CUDA_GATHER_MODE_COUNT; mode++) {
		cr_assert_eq(swarm_cuda_set_gather_mode(dev, mode), 0);
		for (int run = 0; run < 3; run++) {
			uint32_t at = 0;
			for (int p = 0; p < PARTS; p++) {
				char *b = (p % 2 ? unreg : reg) + (size_t)p * 4 * area;
				memcpy(b, x + at * W0, rows[p] * W0 * sizeof(float));
				memcpy(b + area, z + at * W1, rows[p] * W1 * sizeof(float));
				memset(b + 2 * area, 0xff, 2 * area);
				ins[p][0] = b;
				ins[p][1] = b + area;
				outs[p][0] = b + 2 * area;
				outs[p][1] = b + 3 * area;
				parts[p] = (struct swarm_graph_part){ ins[p], outs[p], rows[p] };
				at += rows[p];
			}
			int rc = swarm_graph_run_parts(g, parts, PARTS);
			cr_assert_eq(rc, 0, "%s run %d: %d (%s)", swarm_cuda_gather_mode_name(mode),
				     run, rc, swarm_cuda_last_error());
			at = 0;
			for (int p = 0; p < PARTS; p++) {
				cr_assert(memcmp(outs[p][0], y + at * W0,
						 rows[p] * W0 * sizeof(float)) == 0,
					  "%s run %d: part %d's y differs from the CPU's",
					  swarm_cuda_gather_mode_name(mode), run, p);
				cr_assert(memcmp(outs[p][1], z2 + at * W1,
						 rows[p] * W1 * sizeof(float)) == 0,
					  "%s run %d: part %d's z2 is not its own z",
					  swarm_cuda_gather_mode_name(mode), run, p);
				at += rows[p];
			}
		}
	}
	cr_expect_eq(swarm_graph_captured(g), 1, "30 rows were not captured");
	cr_assert_eq(dev->i->unregister_host(dev, reg), 0);
	free(reg);
	free(unreg);
	swarm_graph_free(g);
	swarm_graph_free(gc);
	cpu->i->destroy(cpu);
	dev->i->destroy(dev);
}
