/* load.c: how fast a model's weights become usable: swarm's loader (mmap of the blob, first
 * touch of every page, parse; the CPU device then computes on the mapping) against the usual
 * way (read() into malloc'd memory), both from the page cache and from disk, in one run. */
#include "bench/load.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/loader.h"
#include "registry/safetensors.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Drops the file's pages from the page cache (they are clean: it was fsynced). */
static int drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return -rc;
}

/* The baseline: read() the whole file into fresh malloc'd memory. */
static int read_into_malloc(const char *path, size_t *bytes, double *gbps)
{
	uint64_t t0 = now_ns();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t len = lseek(fd, 0, SEEK_END);
	lseek(fd, 0, SEEK_SET);
	char *buf = malloc((size_t)len);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < (size_t)len) {
		ssize_t n = read(fd, buf + got, (size_t)len - got);
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return e;
		}
		got += (size_t)n;
	}
	close(fd);
	/* Parsing the header, as the mapped path does, keeps the work equal. */
	struct swarm_st_file st;
	char err[256];
	int rc = swarm_st_parse(buf, got, &st, err, sizeof err);
	uint64_t t1 = now_ns();
	if (rc == 0)
		swarm_st_free(&st);
	free(buf);
	*bytes = got;
	*gbps = (double)got / (double)(t1 - t0);
	return rc;
}

static int mmap_load(const char *path, int verify, const char *sha, double *gbps)
{
	struct swarm_weights w;
	char err[512];
	int rc = swarm_weights_load(path, 0, sha, verify, &w, err, sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-bench: load: %s\n", err);
		return rc;
	}
	*gbps = (double)w.bytes / (double)w.load_ns;
	swarm_weights_unload(&w);
	return 0;
}

int bench_load_run(const char *dir, size_t bytes, int reps, struct bench_load_result *out)
{
	memset(out, 0, sizeof *out);
	if (reps > 16)
		reps = 16;
	out->reps = reps;
	char path[4096];
	snprintf(path, sizeof path, "%s/load-bench.safetensors", dir);
	/* One f32 tensor of bytes bytes (rounded down to 8), deterministic non-zero data. */
	size_t n = bytes / 8 * 8;
	float *data = malloc(n);
	if (!data)
		return -ENOMEM;
	for (size_t i = 0; i < n / 4; i++)
		data[i] = (float)(i % 1000) + 0.5f;
	int64_t shape[1] = { (int64_t)(n / 4) };
	struct swarm_st_write_tensor t = {
		.name = "w", .dtype = SWARM_ST_F32, .ndim = 1, .shape = shape, .data = data
	};
	int rc = swarm_st_write(path, &t, 1);
	free(data);
	if (rc) {
		fprintf(stderr, "swarm-bench: cannot write %s: %s\n", path, strerror(-rc));
		return rc;
	}
	/* The blob's SHA-256, as the registry records it. */
	char sha[65] = "";
	{
		struct swarm_weights w;
		char err[256];
		if (swarm_weights_load(path, 0, NULL, 0, &w, err, sizeof err) == 0) {
			swarm_sha256_hex(w.map, w.bytes, sha);
			swarm_weights_unload(&w);
		}
	}
	out->cold_ok = drop_cache(path) == 0;
	/* Bring the file back into the page cache before the cached rounds. */
	double ignored;
	size_t got0;
	rc = read_into_malloc(path, &got0, &ignored);
	for (int i = 0; i < reps && rc == 0; i++) {
		size_t got;
		/* Alternate the order so that neither way always runs on a warmer machine. */
		if (i % 2) {
			rc = read_into_malloc(path, &got, &out->read_warm[i]);
			if (!rc)
				rc = mmap_load(path, 0, NULL, &out->mmap_warm[i]);
		} else {
			rc = mmap_load(path, 0, NULL, &out->mmap_warm[i]);
			if (!rc)
				rc = read_into_malloc(path, &got, &out->read_warm[i]);
		}
		if (!rc)
			rc = mmap_load(path, 1, sha, &out->verify_warm[i]);
		if (!rc && out->cold_ok) {
			drop_cache(path);
			rc = mmap_load(path, 0, NULL, &out->mmap_cold[i]);
			drop_cache(path);
			if (!rc)
				rc = read_into_malloc(path, &got, &out->read_cold[i]);
		}
	}
	unlink(path);
	return rc;
}
