/* loader.c: mapping, first-touching, verifying and parsing a weights blob (loader.h). */
#include "registry/loader.h"

#include "registry/blob_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void swarm_sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
	swarm_sha256_to_hex(md, out);
}

/* Touches one byte of every page in [p, p + len): the page cache's pages get mapped now. */
static uint64_t touch_pages(const volatile unsigned char *p, size_t len)
{
	uint64_t sum = 0;
	for (size_t off = 0; off < len; off += 4096)
		sum += p[off];
	return sum;
}

/* Hashes the whole mapping (a blob reader with no fills hashes it all at finish) and compares
 * with sha_hex. Returns 0 or -errno with the message in err. */
static int verify_map(const char *path, const void *map, size_t len, const char *sha_hex, char *err,
		      size_t err_len)
{
	struct swarm_blob_reader_opts o = { .mode = SWARM_LOAD_MMAP, .sha256 = sha_hex };
	struct swarm_blob_reader *r;
	int rc = swarm_blob_reader_open(path, map, len, &o, &r, err, err_len);
	if (rc)
		return rc;
	if ((rc = swarm_blob_reader_finish(r)))
		snprintf(err, err_len, "%s", swarm_blob_reader_error(r));
	swarm_blob_reader_close(r);
	return rc;
}

int swarm_weights_load(const char *path, uint64_t bytes, const char *sha_hex, int verify,
		       struct swarm_weights *out, char *err, size_t err_len)
{
	return swarm_weights_open(path, bytes, sha_hex, verify, 1, out, err, err_len);
}

int swarm_weights_open(const char *path, uint64_t bytes, const char *sha_hex, int verify, int touch,
		       struct swarm_weights *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof *out);
	uint64_t t0 = now_ns();
	int rc;
	if (verify && sha_hex && strlen(sha_hex) != 64) {
		snprintf(err, err_len, "weights %s: \"%s\" is not a SHA-256", path, sha_hex);
		return -EINVAL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_len, "cannot open weights %s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || (bytes && (uint64_t)st.st_size != bytes)) {
		snprintf(err, err_len, "weights %s hold %lld bytes, the catalog says %llu", path,
			 (long long)st.st_size, (unsigned long long)bytes);
		close(fd);
		return -EBADMSG;
	}
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		int e = errno;
		snprintf(err, err_len, "cannot map weights %s: %s", path, strerror(e));
		return -e;
	}
	if (!(out->path = strdup(path))) {
		snprintf(err, err_len, "out of memory");
		rc = -ENOMEM;
		goto err_unmap;
	}
	if (touch) {
		/* The kernel reads ahead in large steps for a sequential pass. */
		madvise(map, len, MADV_SEQUENTIAL);
		if (verify && sha_hex)
			rc = verify_map(path, map, len, sha_hex, err, err_len);
		else
			rc = ((void)touch_pages(map, len), 0);
		madvise(map, len, MADV_RANDOM);
		if (rc)
			goto err_unmap;
	} else if (verify && sha_hex) {
		memcpy(out->sha, sha_hex, 65);
	}
	rc = swarm_st_parse(map, len, &out->st, err, err_len);
	if (rc)
		goto err_unmap;
	out->map = map;
	out->bytes = len;
	out->load_ns = now_ns() - t0;
	return 0;

err_unmap:
	free(out->path);
	out->path = NULL;
	out->sha[0] = 0;
	munmap(map, len);
	return rc;
}

void swarm_weights_unload(struct swarm_weights *w)
{
	if (!w->map)
		return;
	swarm_st_free(&w->st);
	munmap(w->map, w->bytes);
	free(w->path);
	w->path = NULL;
	w->map = NULL;
}

int swarm_st_tensor_fill(const struct swarm_st_tensor *t, void *data, struct swarm_tensor *out)
{
	if (!t || t->ndim > SWARM_TENSOR_MAX_DIMS || !swarm_st_to_swarm_dtype(t->dtype))
		return -EINVAL;
	memset(out, 0, sizeof *out);
	out->data = data;
	out->dtype = swarm_st_to_swarm_dtype(t->dtype);
	out->ndim = t->ndim;
	for (uint32_t i = 0; i < t->ndim; i++)
		out->shape[i] = t->shape[i];
	return 0;
}

const struct swarm_tensor *swarm_weights_view_lookup(void *ctx, const char *name)
{
	struct swarm_weights_view *v = ctx;
	const struct swarm_st_tensor *t = swarm_st_find(v->st, name);
	/* The ops only read weights: the mapping is read-only and shared. */
	if (!t || swarm_st_tensor_fill(t, (void *)((const char *)v->map + t->offset), &v->t))
		return NULL;
	return &v->t;
}
