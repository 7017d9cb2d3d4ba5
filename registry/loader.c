/* loader.c: mapping, first-touching, verifying and parsing a weights blob (loader.h). */
#include "registry/loader.h"

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

#define CHUNK (4u << 20) /* hashed (and so touched) per step */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void to_hex(const unsigned char *md, char out[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = 0;
}

void swarm_sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
	to_hex(md, out);
}

/* Touches one byte of every page in [p, p + len): the page cache's pages get mapped now. */
static uint64_t touch(const volatile unsigned char *p, size_t len)
{
	uint64_t sum = 0;
	for (size_t off = 0; off < len; off += 4096)
		sum += p[off];
	return sum;
}

int swarm_weights_load(const char *path, uint64_t bytes, const char *sha_hex, int verify,
		       struct swarm_weights *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof *out);
	uint64_t t0 = now_ns();
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
	/* The kernel reads ahead in large steps for a sequential pass. */
	madvise(map, len, MADV_SEQUENTIAL);
	if (verify && sha_hex) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		unsigned char md[32];
		unsigned int n = 0;
		char hex[65];
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		for (size_t off = 0; off < len; off += CHUNK)
			EVP_DigestUpdate(ctx, (const char *)map + off,
					 len - off < CHUNK ? len - off : CHUNK);
		EVP_DigestFinal_ex(ctx, md, &n);
		EVP_MD_CTX_free(ctx);
		to_hex(md, hex);
		if (strcmp(hex, sha_hex) != 0) {
			snprintf(err, err_len,
				 "weights changed on disk: blob %.16s... has SHA-256 %.16s..., the "
				 "catalog says %.16s...; run `swarm registry verify`",
				 sha_hex, hex, sha_hex);
			munmap(map, len);
			return -EBADMSG;
		}
	} else {
		(void)touch(map, len);
	}
	madvise(map, len, MADV_RANDOM);
	int rc = swarm_st_parse(map, len, &out->st, err, err_len);
	if (rc) {
		munmap(map, len);
		return rc;
	}
	out->map = map;
	out->bytes = len;
	out->load_ns = now_ns() - t0;
	return 0;
}

void swarm_weights_unload(struct swarm_weights *w)
{
	if (!w->map)
		return;
	swarm_st_free(&w->st);
	munmap(w->map, w->bytes);
	w->map = NULL;
}

struct weight_view {
	const void *map;
	const struct swarm_st_file *st;
	char *dev_base;        /* on a device without host memory: the uploaded tensors, or NULL */
	uint64_t *dev_off;     /* per tensor of st: its offset in dev_base */
	struct swarm_tensor t; /* the last one looked up; swarm_graph_build copies it */
};

static const struct swarm_tensor *weight_lookup(void *ctx, const char *name)
{
	struct weight_view *v = ctx;
	const struct swarm_st_tensor *t = swarm_st_find(v->st, name);
	if (!t || t->ndim > SWARM_TENSOR_MAX_DIMS || !swarm_st_to_swarm_dtype(t->dtype))
		return NULL;
	memset(&v->t, 0, sizeof v->t);
	/* The ops only read weights: the mapping is read-only and shared. */
	if (v->dev_base)
		v->t.data = v->dev_base + v->dev_off[t - v->st->tensors];
	else
		v->t.data = (void *)((const char *)v->map + t->offset);
	v->t.dtype = swarm_st_to_swarm_dtype(t->dtype);
	v->t.ndim = t->ndim;
	for (uint32_t i = 0; i < t->ndim; i++)
		v->t.shape[i] = t->shape[i];
	return &v->t;
}

#define WEIGHT_ALIGN 256 /* what cuBLAS and vector loads like best */

static uint64_t align_up(uint64_t x)
{
	return (x + WEIGHT_ALIGN - 1) / WEIGHT_ALIGN * WEIGHT_ALIGN;
}

/* Device offsets for st's tensors, in stretches: a stretch keeps the file's layout (each tensor
 * at the same distance from the stretch's start as in the file), so it is copied in one piece;
 * a tensor whose offset in the stretch would not be WEIGHT_ALIGN-aligned starts a new stretch
 * at the next aligned device offset. st's tensors are sorted by offset and cover the data
 * region without gaps, so a file whose tensor sizes are all multiples of WEIGHT_ALIGN (the
 * common case: hidden sizes of 64 and more in f32, f16 or bf16) is one stretch, the whole
 * region. Returns the bytes of device memory needed. */
static uint64_t plan_weights(const struct swarm_st_file *st, uint64_t *dev_off)
{
	uint64_t run_file = 0, run_dev = 0, end = 0;
	for (uint32_t i = 0; i < st->n_tensors; i++) {
		const struct swarm_st_tensor *t = &st->tensors[i];
		if (i == 0 || (t->offset - run_file) % WEIGHT_ALIGN != 0) {
			run_file = t->offset;
			run_dev = align_up(end);
		}
		dev_off[i] = run_dev + (t->offset - run_file);
		end = dev_off[i] + t->nbytes;
	}
	return align_up(end);
}

/* One copy of bytes from the mapping to the device, streamed where the device can. */
static int copy_stretch(struct swarm_device *dev, void *dst, const void *src, uint64_t bytes)
{
	if (dev->i->upload_stream)
		return dev->i->upload_stream(dev, dst, src, bytes, NULL);
	return dev->i->upload(dev, dst, src, bytes);
}

/* Copies every tensor of st into one allocation of dev laid out by plan_weights, one copy a
 * stretch, and records where in v and what it took in up. Returns 0 or -errno with the
 * message in err. */
static int upload_weights(struct weight_view *v, struct swarm_device *dev,
			  struct swarm_weights_upload *up, const struct swarm_weights_hook *hook,
			  char *err, size_t err_len)
{
	const struct swarm_st_file *st = v->st;
	v->dev_off = calloc(st->n_tensors ? st->n_tensors : 1, sizeof *v->dev_off);
	if (!v->dev_off) {
		snprintf(err, err_len, "out of memory for the weights' offsets");
		return -ENOMEM;
	}
	uint64_t total = plan_weights(st, v->dev_off);
	v->dev_base = dev->i->alloc(dev, total ? total : WEIGHT_ALIGN);
	if (!v->dev_base) {
		snprintf(err, err_len, "the %s device could not allocate %llu bytes of weights",
			 dev->i->name ? dev->i->name : "?", (unsigned long long)total);
		return -ENOMEM;
	}
	up->streamed = dev->i->upload_stream != NULL;
	up->dev_base = v->dev_base;
	up->dev_bytes = total;
	uint64_t t0 = now_ns();
	int filled = hook && hook->fill ? hook->fill(hook->ctx, v->dev_base, total) : 0;
	if (filled < 0) {
		snprintf(err, err_len, "filling the weights failed: %s", strerror(-filled));
		return filled;
	}
	/* Stretch [first, i): tensors contiguous both in the file and on the device. */
	for (uint32_t first = 0, i = 1; !filled && first < st->n_tensors; i++) {
		const struct swarm_st_tensor *a = &st->tensors[first];
		if (i < st->n_tensors &&
		    st->tensors[i].offset - a->offset == v->dev_off[i] - v->dev_off[first])
			continue;
		const struct swarm_st_tensor *z = &st->tensors[i - 1];
		uint64_t bytes = z->offset + z->nbytes - a->offset;
		int rc = bytes ? copy_stretch(dev, v->dev_base + v->dev_off[first],
					      (const char *)v->map + a->offset, bytes) :
				 0;
		if (rc) {
			snprintf(err, err_len,
				 "uploading weights \"%s\"%s%s (%llu bytes) failed: %s", a->name,
				 i - 1 > first ? " to " : "", i - 1 > first ? z->name : "",
				 (unsigned long long)bytes, strerror(-rc));
			return rc;
		}
		up->bytes += bytes;
		up->copies += bytes != 0;
		first = i;
	}
	/* The copies may be queued: done before the graph's first run reads them, and any
	 * failure seen here rather than there. */
	int rc = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	if (rc) {
		snprintf(err, err_len, "uploading the weights failed: %s", strerror(-rc));
		return rc;
	}
	if (hook && hook->loaded && (rc = hook->loaded(hook->ctx, v->dev_base, total)) < 0) {
		snprintf(err, err_len, "after loading the weights: %s", strerror(-rc));
		return rc;
	}
	up->ns = now_ns() - t0;
	up->gbps = up->bytes ? (double)up->bytes / (double)(up->ns ? up->ns : 1) : 0.0;
	return 0;
}

int swarm_graph_from_weights(const struct swarm_manifest *m, const void *map,
			     const struct swarm_st_file *st, struct swarm_device *dev,
			     uint32_t max_batch, struct swarm_graph **out, char *err,
			     size_t err_len)
{
	return swarm_graph_from_weights_report(m, map, st, dev, max_batch, out, NULL, err, err_len);
}

int swarm_graph_from_weights_report(const struct swarm_manifest *m, const void *map,
				    const struct swarm_st_file *st, struct swarm_device *dev,
				    uint32_t max_batch, struct swarm_graph **out,
				    struct swarm_weights_upload *up, char *err, size_t err_len)
{
	return swarm_graph_from_weights_hooked(m, map, st, dev, max_batch, out, up, NULL, err,
					       err_len);
}

int swarm_graph_from_weights_hooked(const struct swarm_manifest *m, const void *map,
				    const struct swarm_st_file *st, struct swarm_device *dev,
				    uint32_t max_batch, struct swarm_graph **out,
				    struct swarm_weights_upload *up,
				    const struct swarm_weights_hook *hook, char *err,
				    size_t err_len)
{
	struct weight_view v = { .map = map, .st = st };
	struct swarm_weights_upload scratch;
	int rc;
	if (!up)
		up = &scratch;
	memset(up, 0, sizeof *up);
	if (out)
		*out = NULL;
	if (dev && dev->i && !dev->i->host_memory && st && map) {
		if ((rc = upload_weights(&v, dev, up, hook, err, err_len)))
			goto err_free;
	}
	rc = swarm_graph_build(m, weight_lookup, &v, dev, max_batch, out, err, err_len);
	if (rc)
		goto err_free;
	if (v.dev_base && (rc = swarm_graph_adopt(*out, v.dev_base))) {
		snprintf(err, err_len, "the graph would not take its weights (%d)", rc);
		swarm_graph_free(*out);
		*out = NULL;
		goto err_free;
	}
	free(v.dev_off);
	return 0;

err_free:
	if (v.dev_base)
		dev->i->free(dev, v.dev_base);
	free(v.dev_off);
	return rc;
}
