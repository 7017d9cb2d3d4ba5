/* test_blob_reader.c: every mode of the blob reader puts exactly the file's bytes where it says,
 * for sizes around the 4 KiB boundaries and for several fills with an odd tail, from offsets on
 * and off those boundaries; direct falls back to pread where it cannot run; a file truncated
 * under the reader is an error with a message, never stale bytes; verification hashes what was
 * filled and what was not. Files live in /tmp (a disk filesystem: real O_DIRECT) unless said. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/device.h"
#include "registry/blob_reader.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"

#define FILL ((size_t)1 << 20) /* bytes per fill: "a chunk" */

/* Byte i of every test file: no two nearby offsets hold the same run, so a misplaced read shows. */
static uint8_t pattern(uint64_t i)
{
	uint64_t x = (i / 8 + 1) * 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	return (uint8_t)(x >> (8 * (i % 8)));
}

/* Writes size pattern bytes to a new file in dir; returns its path (static storage per call
 * site is not needed: the caller frees it). */
static char *write_file(const char *dir, uint64_t size)
{
	char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/swarm-test-blob-XXXXXX", dir), 0);
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp in %s: %s", dir, strerror(errno));
	uint8_t *buf = malloc(FILL);
	cr_assert_not_null(buf);
	for (uint64_t off = 0; off < size; off += FILL) {
		size_t n = size - off < FILL ? (size_t)(size - off) : FILL;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		cr_assert_eq(write(fd, buf, n), (ssize_t)n, "write: %s", strerror(errno));
	}
	free(buf);
	close(fd);
	return path;
}

static struct swarm_blob_reader *open_reader(const char *path, int mode, unsigned threads,
					     int no_uring)
{
	struct swarm_blob_reader_opts o = { .mode = mode,
					    .threads = threads,
					    .no_uring = no_uring };
	struct swarm_blob_reader *r = NULL;
	char err[256] = "";
	int rc = swarm_blob_reader_open(path, NULL, 0, &o, &r, err, sizeof err);
	cr_assert_eq(rc, 0, "open %s in %s: %d (%s)", path, swarm_load_mode_name(mode), rc, err);
	return r;
}

/* Reads [from, size) with fills of FILL bytes into a 4 KiB-aligned buffer, as upload_stream
 * asks, and compares every byte with the pattern. */
static void read_and_compare(struct swarm_blob_reader *r, uint64_t from, uint64_t size,
			     const char *what)
{
	uint8_t *buf = aligned_alloc(4096, FILL + SWARM_BLOB_FILL_SLACK);
	cr_assert_not_null(buf);
	for (uint64_t off = from; off < size; off += FILL) {
		size_t n = size - off < FILL ? (size_t)(size - off) : FILL, start = 99999;
		memset(buf, 0xa5, FILL + SWARM_BLOB_FILL_SLACK);
		int rc = swarm_blob_reader_fill(r, buf, FILL + SWARM_BLOB_FILL_SLACK, off, n,
						&start);
		cr_assert_eq(rc, 0, "%s: fill %zu at %llu: %d (%s)", what, n,
			     (unsigned long long)off, rc, swarm_blob_reader_error(r));
		cr_assert_leq(start, SWARM_BLOB_FILL_SLACK, "%s: start %zu", what, start);
		for (size_t i = 0; i < n; i++)
			if (buf[start + i] != pattern(off + i))
				cr_assert_fail(
					"%s: byte %llu is 0x%02x, want 0x%02x (fill at %llu, "
					"start %zu)",
					what, (unsigned long long)(off + i), buf[start + i],
					pattern(off + i), (unsigned long long)off, start);
	}
	free(buf);
}

static const uint64_t sizes[] = { 0, 1, 4095, 4096, 4097, 3 * FILL + 12345 };
static const uint64_t froms[] = { 0, 4096, 1, 4095, 8191 + FILL };

static void every_size_and_offset(const char *dir, int mode, unsigned threads)
{
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		char *path = write_file(dir, sizes[s]);
		struct swarm_blob_reader *r = open_reader(path, mode, threads, 0);
		for (size_t f = 0; f < sizeof froms / sizeof froms[0]; f++) {
			if (froms[f] > sizes[s])
				continue;
			char what[96];
			snprintf(what, sizeof what, "%s of %llu bytes from %llu",
				 swarm_load_mode_name(mode), (unsigned long long)sizes[s],
				 (unsigned long long)froms[f]);
			read_and_compare(r, froms[f], sizes[s], what);
		}
		swarm_blob_reader_close(r);
		unlink(path);
		free(path);
	}
}

Test(registry_blob_reader, mode_names_round_trip)
{
	for (int m = 0; m < SWARM_LOAD_MODE_COUNT; m++)
		cr_expect_eq(swarm_load_mode_parse(swarm_load_mode_name(m)), m, "mode %d", m);
	cr_expect_eq(swarm_load_mode_parse("fast"), -1);
	cr_expect_eq(swarm_load_mode_parse(NULL), -1);
	cr_expect_null(swarm_load_mode_name(SWARM_LOAD_MODE_COUNT));
}

Test(registry_blob_reader, mmap_returns_the_files_bytes)
{
	every_size_and_offset("/tmp", SWARM_LOAD_MMAP, 1);
}

Test(registry_blob_reader, pread_returns_the_files_bytes)
{
	every_size_and_offset("/tmp", SWARM_LOAD_PREAD, 4);
}

/* 1 when a file in dir opens with O_DIRECT and an aligned read of it works: the file
 * system takes it, whatever the reader then makes of it. */
static int fs_takes_o_direct(const char *dir)
{
	char *path = write_file(dir, 4096);
	int ok = 0, fd = open(path, O_RDONLY | O_DIRECT);
	void *buf = NULL;
	if (fd >= 0 && posix_memalign(&buf, 4096, 4096) == 0)
		ok = pread(fd, buf, 4096, 0) == 4096;
	free(buf);
	if (fd >= 0)
		close(fd);
	unlink(path);
	free(path);
	return ok;
}

/* Direct where the file system takes O_DIRECT; a fallback there is a failure unless the reader
 * says io_uring is what it lacks. Elsewhere the direct path cannot be tested, and the test
 * says skipped, never passed. */
Test(registry_blob_reader, direct_returns_the_files_bytes)
{
	char *path = write_file("/tmp", 4096);
	struct swarm_blob_reader *r = open_reader(path, SWARM_LOAD_DIRECT, 2, 0);
	int mode = swarm_blob_reader_mode(r);
	char note[256];
	snprintf(note, sizeof note, "%s", swarm_blob_reader_note(r));
	swarm_blob_reader_close(r);
	unlink(path);
	free(path);
	if (mode != SWARM_LOAD_DIRECT) {
		cr_assert(!fs_takes_o_direct("/tmp") || strstr(note, "io_uring"),
			  "/tmp takes O_DIRECT, yet the reader fell back to %s: \"%s\"",
			  swarm_load_mode_name(mode), note);
		cr_skip_test("O_DIRECT not tested here: the reader fell back to %s (\"%s\")",
			     swarm_load_mode_name(mode), note);
	}
	every_size_and_offset("/tmp", SWARM_LOAD_DIRECT, 2);
}

Test(registry_blob_reader, register_fills_like_mmap)
{
	every_size_and_offset("/tmp", SWARM_LOAD_REGISTER, 1);
}

/* More threads than the fill has slices: the extra threads find nothing to take. */
Test(registry_blob_reader, pread_with_more_threads_than_slices)
{
	char *path = write_file("/tmp", 3 * FILL + 12345);
	struct swarm_blob_reader *r =
		open_reader(path, SWARM_LOAD_PREAD, SWARM_BLOB_MAX_THREADS, 0);
	read_and_compare(r, 0, 4097, "64 threads, 4097 bytes");
	read_and_compare(r, 77, 3 * FILL + 12345, "64 threads, several fills");
	swarm_blob_reader_close(r);
	unlink(path);
	free(path);
}

/* Direct on a file in dir of size bytes, read from `from`: the mode ends up direct where
 * allowed (may_direct) or pread with a note naming why (the word want_note), and the bytes are
 * right either way. */
static void direct_or_fallback(const char *dir, uint64_t size, uint64_t from, int no_uring,
			       int may_direct, const char *want_note)
{
	char *path = write_file(dir, size);
	struct swarm_blob_reader *r = open_reader(path, SWARM_LOAD_DIRECT, 2, no_uring);
	int mode = swarm_blob_reader_mode(r);
	const char *note = swarm_blob_reader_note(r);
	cr_expect((may_direct && mode == SWARM_LOAD_DIRECT) ||
			  (mode == SWARM_LOAD_PREAD && strstr(note, want_note) != NULL),
		  "%s: mode %s, note \"%s\"", dir, swarm_load_mode_name(mode), note);
	read_and_compare(r, from, size, "direct or its fallback");
	swarm_blob_reader_close(r);
	unlink(path);
	free(path);
}

/* tmpfs: O_DIRECT is taken by recent kernels (6.6 and later) and refused (EINVAL) by older
 * ones; either way the bytes are right, and a refusal is a fallback to pread with a note. */
Test(registry_blob_reader, direct_on_tmpfs_reads_or_falls_back)
{
	direct_or_fallback("/dev/shm", 3 * FILL + 12345, 1, 0, 1, "O_DIRECT");
}

/* No io_uring (as under SWARM_NO_IO_URING=1, or a kernel that has it turned off): pread. */
Test(registry_blob_reader, direct_without_io_uring_falls_back_to_pread)
{
	direct_or_fallback("/tmp", 2 * FILL + 3, 4097, 1, 0, "io_uring");
}

Test(registry_blob_reader, a_truncated_file_is_an_error_in_every_mode)
{
	static const int modes[] = { SWARM_LOAD_MMAP, SWARM_LOAD_PREAD, SWARM_LOAD_DIRECT };
	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		char *path = write_file("/tmp", 2 * FILL);
		struct swarm_blob_reader *r = open_reader(path, modes[m], 4, 0);
		uint8_t *buf = aligned_alloc(4096, FILL + SWARM_BLOB_FILL_SLACK);
		size_t start;
		cr_assert_not_null(buf);
		cr_assert_eq(truncate(path, FILL + 100), 0, "truncate: %s", strerror(errno));
		int rc = swarm_blob_reader_fill(r, buf, FILL + SWARM_BLOB_FILL_SLACK, FILL / 2,
						FILL, &start);
		cr_expect_eq(rc, -EIO, "%s: fill across the new end: %d (%s)",
			     swarm_load_mode_name(modes[m]), rc, swarm_blob_reader_error(r));
		cr_expect(strstr(swarm_blob_reader_error(r), "truncated") != NULL, "%s: \"%s\"",
			  swarm_load_mode_name(modes[m]), swarm_blob_reader_error(r));
		free(buf);
		swarm_blob_reader_close(r);
		unlink(path);
		free(path);
	}
}

Test(registry_blob_reader, a_missing_file_is_enoent)
{
	struct swarm_blob_reader_opts o = { .mode = SWARM_LOAD_PREAD };
	struct swarm_blob_reader *r = (void *)1;
	char err[256] = "";
	int rc = swarm_blob_reader_open("/tmp/swarm-test-no-such-blob", NULL, 0, &o, &r, err,
					sizeof err);
	cr_expect_eq(rc, -ENOENT, "%d (%s)", rc, err);
	cr_expect_null(r);
	cr_expect(strstr(err, "swarm-test-no-such-blob") != NULL, "\"%s\"", err);
}

Test(registry_blob_reader, fills_outside_the_file_are_refused)
{
	char *path = write_file("/tmp", 5000);
	struct swarm_blob_reader *r = open_reader(path, SWARM_LOAD_PREAD, 2, 0);
	uint8_t buf[16384];
	size_t start;
	cr_expect_eq(swarm_blob_reader_fill(r, buf, sizeof buf, 4000, 1001, &start), -EINVAL);
	cr_expect_eq(swarm_blob_reader_fill(r, buf, 10, 0, 11, &start), -EINVAL);
	swarm_blob_reader_close(r);
	unlink(path);
	free(path);
}

/* A blob whose size is not what the catalog says is refused at open. */
Test(registry_blob_reader, a_wrong_size_is_ebadmsg)
{
	char *path = write_file("/tmp", 5000);
	struct swarm_blob_reader_opts o = { .mode = SWARM_LOAD_MMAP };
	struct swarm_blob_reader *r = NULL;
	char err[256] = "";
	int rc = swarm_blob_reader_open(path, NULL, 5001, &o, &r, err, sizeof err);
	cr_expect_eq(rc, -EBADMSG, "%d (%s)", rc, err);
	unlink(path);
	free(path);
}

static void sha_hex_of_file(const char *path, uint64_t size, char hex[65])
{
	uint8_t *b = malloc(size ? size : 1);
	unsigned char md[32];
	unsigned int n;
	int fd = open(path, O_RDONLY);
	cr_assert(b && fd >= 0);
	cr_assert_eq(pread(fd, b, size, 0), (ssize_t)size);
	close(fd);
	EVP_Digest(b, size, md, &n, EVP_sha256(), NULL);
	swarm_sha256_to_hex(md, hex);
	free(b);
}

/* The hash covers the fills (in order, a stretch from the middle of the file) and what they
 * left out (the head and the tail, from the mapping); a wrong hash is -EBADMSG. */
Test(registry_blob_reader, verification_hashes_filled_and_unfilled_bytes)
{
	const uint64_t size = 3 * FILL + 12345;
	static const int modes[] = { SWARM_LOAD_MMAP, SWARM_LOAD_PREAD, SWARM_LOAD_DIRECT };
	char *path = write_file("/tmp", size);
	char hex[65], bad[65];
	sha_hex_of_file(path, size, hex);
	memcpy(bad, hex, sizeof bad);
	bad[10] = bad[10] == '0' ? '1' : '0';
	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		for (int wrong = 0; wrong < 2; wrong++) {
			struct swarm_blob_reader_opts o = { .mode = modes[m],
							    .threads = 3,
							    .sha256 = wrong ? bad : hex };
			struct swarm_blob_reader *r = NULL;
			char err[256] = "";
			cr_assert_eq(swarm_blob_reader_open(path, NULL, size, &o, &r, err,
							    sizeof err),
				     0, "%s", err);
			read_and_compare(r, 777, size - 5000, "verified");
			int rc = swarm_blob_reader_finish(r);
			cr_expect_eq(rc, wrong ? -EBADMSG : 0, "%s, %s hash: %d (%s)",
				     swarm_load_mode_name(modes[m]), wrong ? "wrong" : "right", rc,
				     swarm_blob_reader_error(r));
			if (wrong)
				cr_expect(strstr(swarm_blob_reader_error(r), "changed on disk"),
					  "\"%s\"", swarm_blob_reader_error(r));
			swarm_blob_reader_close(r);
		}
	}
	unlink(path);
	free(path);
}

/* auto: a file just written is in the page cache (pread); once dropped from it (fsync, then
 * POSIX_FADV_DONTNEED) it is not (direct, or pread with the fallback's note). */
Test(registry_blob_reader, auto_picks_by_residency)
{
	char *path = write_file("/tmp", 4 * FILL);
	struct swarm_blob_reader *r = open_reader(path, SWARM_LOAD_AUTO, 2, 0);
	cr_expect_eq(swarm_blob_reader_mode(r), SWARM_LOAD_PREAD, "warm: %s (%s)",
		     swarm_load_mode_name(swarm_blob_reader_mode(r)), swarm_blob_reader_note(r));
	cr_expect(strstr(swarm_blob_reader_note(r), "auto:") != NULL, "\"%s\"",
		  swarm_blob_reader_note(r));
	swarm_blob_reader_close(r);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	fsync(fd);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
	r = open_reader(path, SWARM_LOAD_AUTO, 2, 0);
	int mode = swarm_blob_reader_mode(r);
	cr_expect(mode == SWARM_LOAD_DIRECT || strstr(swarm_blob_reader_note(r), "O_DIRECT"),
		  "cold: %s (%s)", swarm_load_mode_name(mode), swarm_blob_reader_note(r));
	read_and_compare(r, 0, 4 * FILL, "auto, cold");
	swarm_blob_reader_close(r);
	unlink(path);
	free(path);
}

/* ---- the loader's copy through the reader (swarm_weights_stream) -------------------------- */

/* A device with memory of its own (malloc'd here) whose upload_stream refuses register_host,
 * as a GPU without read-only registration does, and fills 1 MiB chunks otherwise. */
static int refusing_calls;

static void *fk_alloc(struct swarm_device *d, size_t n)
{
	(void)d;
	return malloc(n ? n : 1);
}

static void fk_free(struct swarm_device *d, void *p)
{
	(void)d;
	free(p);
}

static int fk_upload(struct swarm_device *d, void *dst, const void *src, size_t n)
{
	(void)d;
	memcpy(dst, src, n);
	return 0;
}

static int fk_upload_stream(struct swarm_device *d, void *dst, const struct swarm_upload_src *src,
			    size_t n, double *gbps)
{
	(void)d;
	(void)gbps;
	refusing_calls++;
	if (src->register_host)
		return -ENOTSUP;
	uint8_t *buf = aligned_alloc(4096, FILL + SWARM_UPLOAD_FILL_SLACK);
	int rc = 0;
	for (size_t off = 0, start = 0; buf && !rc && off < n; off += FILL) {
		size_t len = n - off < FILL ? n - off : FILL;
		rc = src->fill ? src->fill(src->ctx, buf, FILL + SWARM_UPLOAD_FILL_SLACK,
					   src->base + off, len, &start) :
				 (memcpy(buf, (const char *)src->host + off, len), 0);
		memcpy((char *)dst + off, buf + start, len);
	}
	free(buf);
	return buf ? rc : -ENOMEM;
}

static const struct swarm_device_i refusing_i = {
	.name = "refuses-register",
	.alloc = fk_alloc,
	.free = fk_free,
	.upload = fk_upload,
	.download = fk_upload,
	.upload_stream = fk_upload_stream,
};

Test(registry_blob_reader, register_refused_by_the_device_falls_back_to_pread)
{
	const uint64_t size = 3 * FILL + 12345, off = 333;
	struct swarm_device dev = { .i = &refusing_i };
	char *path = write_file("/tmp", size);
	struct swarm_blob_reader *r = open_reader(path, SWARM_LOAD_REGISTER, 2, 0);
	uint8_t *dst = malloc(size);
	cr_assert_not_null(dst);
	int rc = swarm_weights_stream(&dev, r, dst, NULL, off, size - off);
	cr_assert_eq(rc, 0, "%d (%s)", rc, swarm_blob_reader_error(r));
	cr_expect_eq(refusing_calls, 2, "%d calls, want the refused one and the pread one",
		     refusing_calls);
	cr_expect(swarm_blob_reader_mode(r) == SWARM_LOAD_PREAD && swarm_blob_reader_fell_back(r) &&
			  strstr(swarm_blob_reader_note(r), "register"),
		  "mode %s, note \"%s\"", swarm_load_mode_name(swarm_blob_reader_mode(r)),
		  swarm_blob_reader_note(r));
	for (uint64_t i = 0; i < size - off; i++)
		if (dst[i] != pattern(off + i))
			cr_assert_fail("byte %llu is 0x%02x, want 0x%02x", (unsigned long long)i,
				       dst[i], pattern(off + i));
	free(dst);
	swarm_blob_reader_close(r);
	unlink(path);
	free(path);
}
