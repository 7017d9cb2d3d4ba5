/* test_cuda_stream.c: the CUDA device's upload_stream fed by the registry's blob reader in
 * every mode (mmap, pread, direct, register, and a plain memcpy from the mapping without a
 * reader) puts exactly the file's bytes on the GPU, for odd sizes at odd offsets: one byte,
 * across a 4 KiB boundary, one byte over a 16 MiB chunk, several chunks and an odd tail.
 *
 * Needs a GPU: without one every test skips with the reason, and its ctest entry
 * (test_kernels_cuda_stream_gpu, behind cuda-gate) is reported skipped, never passed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/cuda/probe.h"
#include "kernels/device.h"
#include "registry/blob_reader.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"

#define MIB ((size_t)1 << 20)

static struct swarm_device *open_gpu_or_skip(void)
{
	struct swarm_device *dev = NULL;
	int count = 0, rc;

	if (swarm_cuda_device_count(&count) != 0 || count == 0)
		cr_skip_test("no CUDA GPU on this machine: %s", swarm_cuda_last_error());
	rc = swarm_device_cuda_create(0, &dev);
	cr_assert_eq(rc, 0, "swarm_device_cuda_create(0): %d (%s): %s", rc, strerror(-rc),
		     swarm_cuda_last_error());
	return dev;
}

/* A temporary file of n pseudo-random bytes (xorshift64 from seed 11), mapped read-only as the
 * registry maps a blob; the path is left in path for the reader. */
static const uint8_t *make_blob(char *path, size_t n)
{
	uint64_t s = 11;
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	uint8_t *buf = malloc(MIB);
	cr_assert_not_null(buf);
	for (size_t off = 0; off < n; off += MIB) {
		size_t len = n - off < MIB ? n - off : MIB;
		for (size_t i = 0; i < MIB; i += 8) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			memcpy(buf + i, &s, 8);
		}
		cr_assert_eq(write(fd, buf, len), (ssize_t)len, "write: %s", strerror(errno));
	}
	free(buf);
	const uint8_t *map = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq((void *)map, MAP_FAILED, "mmap: %s", strerror(errno));
	close(fd);
	return map;
}

/* Streams [off, off + len) of the blob to the GPU at dst + 3 (an odd device offset) through a
 * reader in mode (-1: none, a memcpy from the mapping), reads it back and compares. */
static void round_trip(struct swarm_device *dev, const char *path, const uint8_t *map, size_t size,
		       int mode, uint64_t off, size_t len, uint8_t *back, void *p)
{
	struct swarm_blob_reader_opts o = { .mode = mode < 0 ? SWARM_LOAD_MMAP : mode,
					    .threads = 4 };
	struct swarm_blob_reader *r = NULL;
	const char *name = mode < 0 ? "no reader" : swarm_load_mode_name(mode);
	char err[256] = "";
	int rc;

	if (mode >= 0) {
		rc = swarm_blob_reader_open(path, map, size, &o, &r, err, sizeof err);
		cr_assert_eq(rc, 0, "%s: open: %s", name, err);
	}
	rc = swarm_weights_stream(dev, r, (char *)p + 3, map, off, len);
	cr_assert_eq(rc, 0, "%s: %zu bytes at %llu: %d (%s; %s)", name, len,
		     (unsigned long long)off, rc, swarm_cuda_last_error(),
		     r ? swarm_blob_reader_error(r) : "");
	if (r && swarm_blob_reader_mode(r) != mode)
		cr_log_warn("%s ran as %s: %s", name,
			    swarm_load_mode_name(swarm_blob_reader_mode(r)),
			    swarm_blob_reader_note(r));
	memset(back, 0, len);
	rc = dev->i->download(dev, back, (char *)p + 3, len);
	cr_assert(rc == 0 && dev->i->synchronize(dev) == 0, "%s: download: %s", name,
		  swarm_cuda_last_error());
	if (memcmp(back, map + off, len) != 0) {
		size_t i = 0;
		while (back[i] == map[off + i])
			i++;
		cr_assert_fail("%s, %zu bytes at %llu: byte %zu is 0x%02x, want 0x%02x", name, len,
			       (unsigned long long)off, i, back[i], map[off + i]);
	}
	swarm_blob_reader_close(r);
}

Test(kernels_cuda_stream_gpu, every_mode_round_trips_odd_sizes)
{
	struct swarm_device *dev = open_gpu_or_skip();
	const size_t size = 3 * (16 * MIB) + 12345;
	static const struct {
		uint64_t off;
		size_t len;
	} cases[] = {
		{ 0, 1 },
		{ 4095, 2 },
		{ 777, 4097 },
		{ 4096, 16 * MIB + 1 },
		{ 1, 3 * (16 * MIB) + 12000 },
		{ 12345, size - 12345 },
	};
	char path[] = "/tmp/swarm-test-cuda-stream-XXXXXX";
	const uint8_t *map = make_blob(path, size);
	uint8_t *back = malloc(size);
	void *p = dev->i->alloc(dev, size + 3);

	cr_assert(back && p, "alloc: %s", swarm_cuda_last_error());
	for (int mode = -1; mode < SWARM_LOAD_MODE_COUNT; mode++)
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
			round_trip(dev, path, map, size, mode, cases[c].off, cases[c].len, back, p);
	dev->i->free(dev, p);
	free(back);
	munmap((void *)map, size);
	unlink(path);
	dev->i->destroy(dev);
}

/* A fill that fails stops the upload with its error, and the next upload still works (its
 * chunks were all waited for). */
static int failing_fill(void *ctx, void *chunk, size_t cap, uint64_t off, size_t len, size_t *start)
{
	int *calls = ctx;
	(void)cap;
	*start = 0;
	if (++*calls == 3)
		return -EIO;
	memset(chunk, (int)(off & 0xff), len);
	return 0;
}

Test(kernels_cuda_stream_gpu, a_failing_fill_stops_the_upload)
{
	struct swarm_device *dev = open_gpu_or_skip();
	const size_t n = 5 * (16 * MIB);
	int calls = 0;
	struct swarm_upload_src src = { .fill = failing_fill, .ctx = &calls };
	void *p = dev->i->alloc(dev, n);
	uint8_t host[64];

	cr_assert_not_null(p);
	int rc = dev->i->upload_stream(dev, p, &src, n, NULL);
	cr_expect_eq(rc, -EIO, "%d (%s), want -EIO", rc, swarm_cuda_last_error());
	cr_expect_eq(calls, 3, "%d fills, want 3", calls);
	memset(host, 0x5a, sizeof host);
	src = (struct swarm_upload_src){ .host = host };
	rc = dev->i->upload_stream(dev, p, &src, sizeof host, NULL);
	cr_expect_eq(rc, 0, "after the failure: %d (%s)", rc, swarm_cuda_last_error());
	dev->i->free(dev, p);
	dev->i->destroy(dev);
}
