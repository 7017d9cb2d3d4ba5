/* blob_reader.c: the file side of a streamed weights upload (blob_reader.h): mmap, a pread
 * pool, O_DIRECT through io_uring, and the SHA-256 of what was read. */
#include "registry/blob_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_THREADS 4
#define MIN_SLICE ((size_t)64 << 10)   /* below this a thread costs more than it reads */
#define DIRECT_PIECE ((size_t)1 << 20) /* one io_uring read */
#define RING_DEPTH 32
#define HASH_STEP ((size_t)4 << 20)

struct swarm_blob_reader {
	int fd;          /* buffered: pread, the unaligned ends of direct, the size checks */
	int dfd;         /* O_DIRECT, or -1 */
	const char *map; /* the whole file, read-only */
	int own_map;     /* 1: the reader mapped it */
	uint64_t size;
	int mode;
	char note[192];
	char err[256];
	/* direct */
	struct io_uring ring;
	int ring_up;
	int fell_back;
	int ring_broken;  /* submitting failed with reads in flight: no more direct fills */
	int direct_tried; /* a direct read has completed: EINVAL later is an error, not a refusal */
	/* verification: [0, hash_next) hashed so far */
	EVP_MD_CTX *sha;
	char sha_want[65];
	uint64_t hash_next;
	/* the pread pool: the job is the fields below, all under mu */
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was posted, or quit */
	pthread_cond_t idle; /* the job's last slice is done */
	pthread_t thr[SWARM_BLOB_MAX_THREADS];
	unsigned n_thr;   /* started */
	unsigned threads; /* asked for, the caller included */
	int pool_up;
	int quit;
	char *job_buf;
	uint64_t job_off;
	size_t job_len, job_slice;
	uint32_t job_slices, job_next, job_done;
	int job_rc;
};

static const char *const mode_names[SWARM_LOAD_MODE_COUNT] = { "auto", "mmap", "pread", "direct",
							       "register" };

const char *swarm_load_mode_name(int mode)
{
	return mode >= 0 && mode < SWARM_LOAD_MODE_COUNT ? mode_names[mode] : NULL;
}

int swarm_load_mode_parse(const char *name)
{
	for (int m = 0; name && m < SWARM_LOAD_MODE_COUNT; m++)
		if (!strcmp(name, mode_names[m]))
			return m;
	return -1;
}

unsigned swarm_load_default_threads(void)
{
	cpu_set_t cpus;
	int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
	return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

void swarm_sha256_to_hex(const unsigned char md[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = 0;
}

__attribute__((format(printf, 2, 3))) static void fail(struct swarm_blob_reader *r, const char *fmt,
						       ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
}

/* Reads exactly len bytes at off with pread on fd. A read that ends early means the file got
 * shorter than it was at open: -EIO, never a buffer left half stale. */
static int pread_full(int fd, char *dst, uint64_t off, size_t len)
{
	while (len) {
		ssize_t n = pread(fd, dst, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		dst += n, off += (uint64_t)n, len -= (size_t)n;
	}
	return 0;
}

static int read_error(struct swarm_blob_reader *r, int rc, uint64_t off, size_t len)
{
	if (rc == -EIO)
		fail(r,
		     "the blob ended before byte %llu: truncated while it was read (it had %llu "
		     "bytes at open)",
		     (unsigned long long)(off + len), (unsigned long long)r->size);
	else
		fail(r, "reading %zu bytes of the blob at %llu: %s", len, (unsigned long long)off,
		     strerror(-rc));
	return rc;
}

/* ---- the pread pool ---------------------------------------------------------------------- */

/* Takes and reads slices of the posted job until none is left; called with mu held, returns
 * with it held. The caller of fill does the same, so a pool of n threads reads with n + 1. */
static void pool_drain(struct swarm_blob_reader *r)
{
	while (r->job_next < r->job_slices) {
		uint32_t i = r->job_next++;
		size_t at = (size_t)i * r->job_slice;
		size_t len = r->job_len - at < r->job_slice ? r->job_len - at : r->job_slice;
		char *buf = r->job_buf + at;
		uint64_t off = r->job_off + at;
		pthread_mutex_unlock(&r->mu);
		int rc = pread_full(r->fd, buf, off, len);
		pthread_mutex_lock(&r->mu);
		if (rc && !r->job_rc) {
			r->job_rc = rc;
			read_error(r, rc, off, len);
		}
		if (++r->job_done == r->job_slices)
			pthread_cond_signal(&r->idle);
	}
}

static void *pool_thread(void *arg)
{
	struct swarm_blob_reader *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->quit) {
		if (r->job_next < r->job_slices)
			pool_drain(r);
		else
			pthread_cond_wait(&r->work, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Starts threads - 1 threads (the caller of fill is the last). Partial starts keep what
 * started: fewer threads read, nothing is wrong. */
static int pool_start(struct swarm_blob_reader *r)
{
	if (r->pool_up)
		return 0;
	if (pthread_mutex_init(&r->mu, NULL) || pthread_cond_init(&r->work, NULL) ||
	    pthread_cond_init(&r->idle, NULL))
		return -ENOMEM;
	r->pool_up = 1;
	while (r->n_thr + 1 < r->threads &&
	       pthread_create(&r->thr[r->n_thr], NULL, pool_thread, r) == 0)
		r->n_thr++;
	return 0;
}

static void pool_stop(struct swarm_blob_reader *r)
{
	if (!r->pool_up)
		return;
	pthread_mutex_lock(&r->mu);
	r->quit = 1;
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->mu);
	for (unsigned i = 0; i < r->n_thr; i++)
		pthread_join(r->thr[i], NULL);
	pthread_cond_destroy(&r->idle);
	pthread_cond_destroy(&r->work);
	pthread_mutex_destroy(&r->mu);
	r->pool_up = 0;
}

/* Slices of len for the pool: one a thread, in whole pages, none under MIN_SLICE. */
static int fill_pread(struct swarm_blob_reader *r, char *dst, uint64_t off, size_t len)
{
	size_t slice = (len + r->threads - 1) / r->threads;
	slice = (slice + 4095) & ~(size_t)4095;
	if (slice < MIN_SLICE)
		slice = MIN_SLICE;
	pthread_mutex_lock(&r->mu);
	r->job_buf = dst;
	r->job_off = off;
	r->job_len = len;
	r->job_slice = slice;
	r->job_slices = (uint32_t)((len + slice - 1) / slice);
	r->job_next = r->job_done = 0;
	r->job_rc = 0;
	if (r->job_slices > 1)
		pthread_cond_broadcast(&r->work);
	pool_drain(r);
	while (r->job_done < r->job_slices)
		pthread_cond_wait(&r->idle, &r->mu);
	int rc = r->job_rc;
	r->job_slices = r->job_next = r->job_done = 0;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* ---- direct ------------------------------------------------------------------------------ */

static void direct_stop(struct swarm_blob_reader *r)
{
	if (r->ring_up)
		io_uring_queue_exit(&r->ring);
	r->ring_up = 0;
	if (r->dfd >= 0)
		close(r->dfd);
	r->dfd = -1;
}

static int fall_back(struct swarm_blob_reader *r, const char *why, int e)
{
	char both[160];
	snprintf(both, sizeof both, "%s (%s)", why, strerror(e));
	return swarm_blob_reader_fall_back(r, both);
}

static int direct_start(struct swarm_blob_reader *r, const char *path, int no_uring)
{
	r->dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (r->dfd < 0)
		return fall_back(r, "O_DIRECT refused by the filesystem", errno);
	int e = no_uring ? ENOSYS : -io_uring_queue_init(RING_DEPTH, &r->ring, 0);
	if (e)
		return fall_back(r, no_uring ? "io_uring turned off" : "io_uring unavailable", e);
	r->ring_up = 1;
	return 0;
}

/* Reads [a0, a1) (4 KiB-aligned, inside the file as it was at open) into dst with O_DIRECT,
 * DIRECT_PIECE at a time, RING_DEPTH in flight. A piece that comes back short (the file
 * shrank, or a filesystem that stops early) is finished with pread, which tells the two
 * apart. */
static int direct_read(struct swarm_blob_reader *r, char *dst, uint64_t a0, uint64_t a1)
{
	uint64_t next = a0;
	unsigned inflight = 0;
	int rc = 0;
	while (next < a1 || inflight) {
		while (!rc && next < a1 && inflight < RING_DEPTH) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
			if (!sqe)
				break;
			size_t len = a1 - next < DIRECT_PIECE ? (size_t)(a1 - next) : DIRECT_PIECE;
			io_uring_prep_read(sqe, r->dfd, dst + (next - a0), (unsigned)len, next);
			io_uring_sqe_set_data64(sqe, next);
			next += len;
			inflight++;
		}
		if (!inflight)
			break;
		struct io_uring_cqe *cqe;
		int e = io_uring_submit_and_wait(&r->ring, 1);
		if (e == -EINTR || e == -EAGAIN || e == -EBUSY)
			continue; /* nothing lost: the reads stay queued or in flight */
		if (e < 0) {
			/* The ring itself failed: reads may still be in flight into dst, so the
			 * ring is not used again (every later fill of this reader fails). */
			r->ring_broken = 1;
			fail(r, "io_uring failed while reading the blob: %s", strerror(-e));
			return e;
		}
		while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
			uint64_t at = io_uring_cqe_get_data64(cqe);
			size_t want = a1 - at < DIRECT_PIECE ? (size_t)(a1 - at) : DIRECT_PIECE;
			int res = cqe->res;
			io_uring_cqe_seen(&r->ring, cqe);
			inflight--;
			if (res < 0) {
				if (!rc)
					rc = res;
				continue;
			}
			r->direct_tried = 1;
			if ((size_t)res < want && !rc)
				rc = pread_full(r->fd, dst + (at - a0) + res, at + (uint64_t)res,
						want - (size_t)res);
		}
	}
	return rc;
}

static int fill_direct(struct swarm_blob_reader *r, char *buf, size_t cap, uint64_t off, size_t len,
		       size_t *start)
{
	const uint64_t A = SWARM_BLOB_DIRECT_ALIGN;
	uint64_t end = off + len, a0 = off / A * A;
	uint64_t a1 = (end + A - 1) / A * A;
	if (a1 > r->size / A * A)
		a1 = r->size / A * A; /* the file's last partial page: read buffered */
	if (a1 < a0)
		a1 = a0;
	if ((uintptr_t)buf % A || cap < (size_t)(a1 - a0) || cap < (size_t)(off - a0) + len) {
		fail(r, "a direct fill needs a 4 KiB-aligned buffer of %zu bytes (given %zu at %p)",
		     len + SWARM_BLOB_FILL_SLACK, cap, buf);
		return -EINVAL;
	}
	if (r->ring_broken) {
		fail(r, "the reader's io_uring failed earlier");
		return -EIO;
	}
	*start = (size_t)(off - a0);
	int rc = a1 > a0 ? direct_read(r, buf, a0, a1) : 0;
	if (rc == -EINVAL && !r->direct_tried) {
		/* The open took O_DIRECT but the reads do not (an alignment the device wants
		 * larger, a filesystem that checks late): pread from here on. */
		if ((rc = fall_back(r, "O_DIRECT reads refused", EINVAL)))
			return rc;
		*start = 0;
		return fill_pread(r, buf, off, len);
	}
	uint64_t b0 = a1 > off ? a1 : off; /* what the direct part did not cover */
	if (!rc && b0 < end)
		rc = pread_full(r->fd, buf + (b0 - a0), b0, (size_t)(end - b0));
	return rc;
}

/* ---- open, fill, finish ------------------------------------------------------------------ */

/* The fraction of the mapping's pages in the page cache (mincore), 1.0 when unknown. */
static double resident_fraction(const struct swarm_blob_reader *r)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (r->size + page - 1) / page;
	unsigned char *vec = malloc(pages ? pages : 1);
	size_t in = 0;
	if (!vec || mincore((void *)r->map, r->size, vec) != 0) {
		free(vec);
		return 1.0;
	}
	for (size_t i = 0; i < pages; i++)
		in += vec[i] & 1;
	free(vec);
	return pages ? (double)in / (double)pages : 1.0;
}

/* Opens path, checks its size against bytes (when given) and maps it unless map is given.
 * On failure nothing is left open. */
static int open_blob(struct swarm_blob_reader *r, const char *path, const void *map, uint64_t bytes,
		     char *err, size_t err_len)
{
	struct stat st;
	int rc;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		rc = -errno;
		snprintf(err, err_len, "cannot open weights %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(r->fd, &st) < 0 || (bytes && (uint64_t)st.st_size != bytes)) {
		snprintf(err, err_len, "weights %s hold %lld bytes, %llu expected", path,
			 (long long)st.st_size, (unsigned long long)bytes);
		rc = -EBADMSG;
		goto err_close;
	}
	r->size = (uint64_t)st.st_size;
	r->map = map;
	if (!map && r->size) {
		void *p = mmap(NULL, r->size, PROT_READ, MAP_SHARED, r->fd, 0);
		if (p == MAP_FAILED) {
			rc = -errno;
			snprintf(err, err_len, "cannot map weights %s: %s", path, strerror(-rc));
			goto err_close;
		}
		r->map = p;
		r->own_map = 1;
	}
	return 0;

err_close:
	close(r->fd);
	return rc;
}

/* SWARM_LOAD_AUTO made concrete: O_DIRECT when less than half of the file is in the page
 * cache (a cold read gains from skipping it), pread otherwise; the note says which. */
static void pick_auto_mode(struct swarm_blob_reader *r)
{
	double f = r->size ? resident_fraction(r) : 1.0;
	r->mode = f < 0.5 ? SWARM_LOAD_DIRECT : SWARM_LOAD_PREAD;
	snprintf(r->note, sizeof r->note, "auto: %.0f%% resident: %s", 100 * f,
		 mode_names[r->mode]);
}

int swarm_blob_reader_open(const char *path, const void *map, uint64_t bytes,
			   const struct swarm_blob_reader_opts *o, struct swarm_blob_reader **out,
			   char *err, size_t err_len)
{
	struct swarm_blob_reader *r;
	int rc;
	*out = NULL;
	if (o->mode < 0 || o->mode >= SWARM_LOAD_MODE_COUNT ||
	    (o->sha256 && strlen(o->sha256) != 64)) {
		snprintf(err, err_len, "blob reader: mode %d or hash \"%s\" not valid", o->mode,
			 o->sha256 ? o->sha256 : "");
		return -EINVAL;
	}
	if (!(r = calloc(1, sizeof *r))) {
		snprintf(err, err_len, "out of memory for a blob reader");
		return -ENOMEM;
	}
	r->dfd = -1;
	r->mode = o->mode;
	r->threads = o->threads ? o->threads : DEFAULT_THREADS;
	if (r->threads > SWARM_BLOB_MAX_THREADS)
		r->threads = SWARM_BLOB_MAX_THREADS;
	if ((rc = open_blob(r, path, map, bytes, err, err_len)))
		goto err_free;
	if (o->sha256) {
		memcpy(r->sha_want, o->sha256, 65);
		if (!(r->sha = EVP_MD_CTX_new()) ||
		    !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL)) {
			snprintf(err, err_len, "cannot set up SHA-256");
			rc = -ENOMEM;
			goto err_unmap;
		}
	}
	if (r->mode == SWARM_LOAD_AUTO)
		pick_auto_mode(r);
	rc = r->mode == SWARM_LOAD_DIRECT ? direct_start(r, path, o->no_uring) :
	     r->mode == SWARM_LOAD_PREAD  ? pool_start(r) :
					    0;
	if (rc) {
		snprintf(err, err_len, "cannot start the blob reader's threads");
		goto err_stop;
	}
	*out = r;
	return 0;

err_stop:
	pool_stop(r);
	direct_stop(r);
	EVP_MD_CTX_free(r->sha);
err_unmap:
	if (r->own_map)
		munmap((void *)r->map, r->size);
	close(r->fd);
err_free:
	free(r);
	return rc;
}

void swarm_blob_reader_close(struct swarm_blob_reader *r)
{
	if (!r)
		return;
	pool_stop(r);
	direct_stop(r);
	EVP_MD_CTX_free(r->sha);
	if (r->own_map)
		munmap((void *)r->map, r->size);
	close(r->fd);
	free(r);
}

int swarm_blob_reader_mode(const struct swarm_blob_reader *r) { return r->mode; }

const char *swarm_blob_reader_note(const struct swarm_blob_reader *r) { return r->note; }

const char *swarm_blob_reader_error(const struct swarm_blob_reader *r) { return r->err; }

int swarm_blob_reader_fell_back(const struct swarm_blob_reader *r) { return r->fell_back; }

int swarm_blob_reader_fall_back(struct swarm_blob_reader *r, const char *why)
{
	direct_stop(r);
	r->fell_back = 1;
	snprintf(r->note, sizeof r->note, "%s: pread", why);
	r->mode = SWARM_LOAD_PREAD;
	return pool_start(r);
}

/* Hashes the file's [hash_next, to) from the mapping. */
static void hash_map_to(struct swarm_blob_reader *r, uint64_t to)
{
	while (r->hash_next < to) {
		size_t n = to - r->hash_next < HASH_STEP ? (size_t)(to - r->hash_next) : HASH_STEP;
		EVP_DigestUpdate(r->sha, r->map + r->hash_next, n);
		r->hash_next += n;
	}
}

/* The mapping must still cover [off, off + len): a read past the end of a file that shrank
 * is a SIGBUS, not an error code, so it is checked first (a truncation racing the memcpy
 * still faults: blobs are written once and never shortened in place). */
static int map_covers(struct swarm_blob_reader *r, uint64_t off, size_t len)
{
	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return -errno;
	return (uint64_t)st.st_size < off + len ? -EIO : 0;
}

int swarm_blob_reader_fill(void *ctx, void *buf, size_t cap, uint64_t off, size_t len,
			   size_t *start)
{
	struct swarm_blob_reader *r = ctx;
	char *dst = buf;
	int rc;
	*start = 0;
	r->err[0] = 0;
	if (off > r->size || len > r->size - off || cap < len) {
		fail(r, "fill of %zu bytes at %llu into %zu: outside the blob's %llu bytes", len,
		     (unsigned long long)off, cap, (unsigned long long)r->size);
		return -EINVAL;
	}
	if (len == 0)
		return 0;
	/* The bytes before off that no fill covered are hashed from the mapping now, so that
	 * these can be hashed from buf while they are still in the CPU's caches. */
	if (r->sha && r->hash_next < off)
		hash_map_to(r, off);
	switch (r->mode) {
	case SWARM_LOAD_PREAD:
		rc = fill_pread(r, dst, off, len);
		break;
	case SWARM_LOAD_DIRECT:
		rc = fill_direct(r, dst, cap, off, len, start);
		break;
	default: /* mmap, and register where it is asked to fill */
		rc = map_covers(r, off, len);
		if (rc)
			return read_error(r, rc, off, len);
		memcpy(dst, r->map + off, len);
		break;
	}
	if (rc)
		return r->err[0] ? rc : read_error(r, rc, off, len);
	if (r->sha && r->hash_next >= off && r->hash_next < off + len) {
		EVP_DigestUpdate(r->sha, dst + *start + (r->hash_next - off),
				 (size_t)(off + len - r->hash_next));
		r->hash_next = off + len;
	}
	return 0;
}

int swarm_blob_reader_finish(struct swarm_blob_reader *r)
{
	unsigned char md[32];
	unsigned int n = 0;
	char hex[65];
	if (!r->sha)
		return 0;
	if (map_covers(r, 0, r->size))
		return read_error(r, -EIO, 0, r->size);
	hash_map_to(r, r->size);
	EVP_DigestFinal_ex(r->sha, md, &n);
	EVP_MD_CTX_free(r->sha);
	r->sha = NULL;
	swarm_sha256_to_hex(md, hex);
	if (strcmp(hex, r->sha_want) != 0) {
		fail(r,
		     "weights changed on disk: blob %.16s... has SHA-256 %.16s..., the catalog "
		     "says %.16s...; run `swarm registry verify`",
		     r->sha_want, hex, r->sha_want);
		return -EBADMSG;
	}
	return 0;
}
