/* test_cuda_device.c: the CUDA device of kernels/device.h (kernels/cuda/cuda_device.cu) as a
 * device: creation and its refusals, memory and copies, the error flag of the index checks
 * that run on the GPU, and graph capture. The ops themselves are compared with the CPU, op by
 * op, in test_backend_ops.c.
 *
 * Two suites. kernels_cuda_device runs everywhere: without a GPU (CI has nvcc but no GPU)
 * creation must fail cleanly with -ENODEV, a reason, and *out set to NULL. kernels_cuda_device_gpu
 * needs a GPU and skips each test with the reason where there is none, never passing silently.
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

#include "kernels/cuda/nccl_bcast.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"
#include "swarm/swarm.h"

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
