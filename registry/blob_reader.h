/* blob_reader.h: reading a weights blob into staging buffers, the file side of a streamed upload
 * to a GPU (registry/loader.c hands swarm_blob_reader_fill to the device's upload_stream as
 * its fill callback; docs/registry.md, "Loading").
 *
 * The modes say where the bytes come from:
 *   mmap      memcpy from the blob's mapping, one thread (the page cache's pages, faulted in);
 *   pread     the range cut into slices that a pool of threads pread at once from the blob's fd;
 *   direct    O_DIRECT reads through io_uring, 4 KiB-aligned, past the page cache (a blob that
 *             is not resident); the unaligned tail is read without O_DIRECT. Where the
 *             filesystem refuses O_DIRECT or io_uring cannot be set up, the reader falls back
 *             to pread and says why in swarm_blob_reader_note;
 *   register  the device DMAs from the mapping itself (registered read-only for the copy): the
 *             reader fills nothing then, and reads as mmap where a fill is asked for;
 *   auto      direct when under half of the blob's pages are resident (mincore on its
 *             mapping), else pread.
 *
 * Verification: given a SHA-256, the reader hashes the bytes as it fills them (one read of
 * each byte) while the fills come in increasing offset; what no fill covered is hashed from
 * the mapping by swarm_blob_reader_finish, which compares.
 *
 * Plain C, no CUDA: one reader is used by one thread at a time (its pool's threads are its
 * own).
 */
#ifndef SWARM_REGISTRY_BLOB_READER_H
#define SWARM_REGISTRY_BLOB_READER_H

#include <stddef.h>
#include <stdint.h>

enum swarm_load_mode {
	SWARM_LOAD_AUTO = 0,
	SWARM_LOAD_MMAP,
	SWARM_LOAD_PREAD,
	SWARM_LOAD_DIRECT,
	SWARM_LOAD_REGISTER,
	SWARM_LOAD_MODE_COUNT,
};

/* Bytes a fill's buffer holds beyond len: room to widen a direct read to 4 KiB boundaries. */
#define SWARM_BLOB_FILL_SLACK 8192u
/* The alignment of a direct read's offset, length and buffer. */
#define SWARM_BLOB_DIRECT_ALIGN 4096u
/* The most threads a pread pool has. */
#define SWARM_BLOB_MAX_THREADS 64u

/* "auto", "mmap", "pread", "direct", "register"; NULL when out of range. */
const char *swarm_load_mode_name(int mode);

/* The mode of a name (as above), or -1 for NULL or an unknown name. */
int swarm_load_mode_parse(const char *name);

/* The pread threads a loader uses when not told: the cores the calling thread may run on,
 * 1 to 16. */
unsigned swarm_load_default_threads(void);

struct swarm_blob_reader_opts {
	int mode;           /* an enum swarm_load_mode */
	unsigned threads;   /* pread's pool (the calling thread counts as one); 0: 4 */
	const char *sha256; /* 64 hex digits to verify against, or NULL */
	int no_uring;       /* 1: never set io_uring up (direct falls back to pread) */
};

struct swarm_blob_reader;

/* Opens path for reading its bytes bytes (its size at open when 0), with map its read-only
 * mapping of the whole file (NULL: the reader maps it itself). Resolves auto, sets up the pool
 * or the ring the mode needs, falling back to pread as the top says. Returns 0, -ENOENT or
 * another open/mmap errno, -EBADMSG (the file is not bytes long), -EINVAL (a bad mode) or
 * -ENOMEM, with a message in err; *out is NULL on failure. */
int swarm_blob_reader_open(const char *path, const void *map, uint64_t bytes,
			   const struct swarm_blob_reader_opts *o, struct swarm_blob_reader **out,
			   char *err, size_t err_len);

/* Stops the pool and the ring and unmaps what the reader mapped; r is invalid after it. */
void swarm_blob_reader_close(struct swarm_blob_reader *r);

/* The mode in use after auto and any fallback (never auto). */
int swarm_blob_reader_mode(const struct swarm_blob_reader *r);

/* Why the mode is not the one asked for ("O_DIRECT refused (...): pread"), or "" when it is;
 * for the log. Also says what auto measured ("auto: 12% resident: direct"). */
const char *swarm_blob_reader_note(const struct swarm_blob_reader *r);

/* 1 when the mode is pread because the one asked for (direct, register) could not run. */
int swarm_blob_reader_fell_back(const struct swarm_blob_reader *r);

/* The message of the last failure of fill or finish. */
const char *swarm_blob_reader_error(const struct swarm_blob_reader *r);

/* Switches to pread (starting its pool) with why as the note: the caller's fallback when the
 * device could not register the mapping. Returns 0 or -ENOMEM. */
int swarm_blob_reader_fall_back(struct swarm_blob_reader *r, const char *why);

/* The fill callback of upload_stream (kernels/device.h): puts the file's bytes
 * [off, off + len) at buf + *start, where buf holds len + SWARM_BLOB_FILL_SLACK bytes (cap) and
 * is 4 KiB-aligned for direct; *start is 0 except in direct (off's distance from the 4 KiB
 * boundary below it). ctx is the reader. Returns 0, -EINVAL (outside the file, or cap too
 * small), -EIO (the file is shorter than at open: truncated under the reader) or the read's
 * -errno; swarm_blob_reader_error says which. */
int swarm_blob_reader_fill(void *ctx, void *buf, size_t cap, uint64_t off, size_t len,
			   size_t *start);

/* With a SHA-256 given at open: hashes what the fills did not cover (from the mapping) and
 * compares. Returns 0, -EBADMSG (the blob's bytes are not those of the hash; the message
 * says so) or -EIO. Without a hash: 0. Call once, after the last fill. */
int swarm_blob_reader_finish(struct swarm_blob_reader *r);

/* md (a SHA-256) as 64 lowercase hex digits and a NUL. */
void swarm_sha256_to_hex(const unsigned char md[32], char out[65]);

#endif /* SWARM_REGISTRY_BLOB_READER_H */
