/* blobs.c: the registry's blobs/: immutable files named by the SHA-256 of their bytes.
 *
 * A blob is checked by its size and hash whenever it matters (verify, and before a publish
 * reuses one). A publish copies its files into tmp/ first, hashing them as it goes, and
 * renames each copy into blobs/ under its hash only after the copy has been checked and
 * fsynced, before any catalog names it; a blob that no catalog names is removed by the next
 * writer (writer.c). A manifest blob is read and parsed here for everyone who needs one
 * (swarm_registry_read_manifest).
 */
#include "registry/catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- blobs ------------------------------------------------------------------------------ */

int swarm_registry_blob_path(const char *dir, const char *sha_hex, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/blobs/%s", dir, sha_hex);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* SHA-256 and size of what fd holds from its current offset to the end. */
static int hash_fd(int fd, uint8_t sha[32], uint64_t *bytes)
{
	uint8_t *buf = malloc(REG_CHUNK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	*bytes = 0;
	if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, REG_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		*bytes += (uint64_t)n;
	}
	unsigned int len = 0;
	if (EVP_DigestFinal_ex(ctx, sha, &len) != 1)
		rc = -ENOMEM;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

int swarm_registry_verify_blob(const char *dir, const char *sha_hex, uint64_t bytes, char *err,
			       size_t err_len)
{
	uint8_t want[32], got[32];
	char path[PATH_MAX];
	reg_clear_err(err, err_len);
	if (reg_sha_of_hex(sha_hex, want))
		return reg_fail(err, err_len, -EINVAL, "\"%s\" is not a SHA-256 in lowercase hex",
				sha_hex);
	if (swarm_registry_blob_path(dir, sha_hex, path, sizeof path))
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return reg_fail(err, err_len, -e, "blob %s: %s", sha_hex,
				e == ENOENT ? "missing" : strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return reg_fail(err, err_len, -EBADMSG, "blob %s: not a regular file", sha_hex);
	}
	if ((uint64_t)st.st_size != bytes) {
		close(fd);
		return reg_fail(err, err_len, -EBADMSG,
				"blob %s: %" PRIu64 " bytes, the catalog says %" PRIu64, sha_hex,
				(uint64_t)st.st_size, bytes);
	}
	uint64_t n;
	int rc = hash_fd(fd, got, &n);
	close(fd);
	if (rc)
		return reg_fail(err, err_len, rc, "blob %s: cannot read: %s", sha_hex,
				strerror(-rc));
	if (n != bytes || memcmp(got, want, 32) != 0) {
		char hex[SWARM_REG_SHA_HEX];
		reg_hex_of(got, hex);
		return reg_fail(
			err, err_len, -EBADMSG,
			"blob %s: its bytes hash to %s (changed on disk); publish the version "
			"again or restore the file",
			sha_hex, hex);
	}
	return 0;
}

int reg_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	int rc = buf ? 0 : -ENOMEM;
	while (!rc && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? -errno : -EIO;
		else
			got += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = got;
	return 0;
}

int swarm_registry_read_manifest(const char *dir, const char *sha_hex, struct swarm_manifest *m,
				 char *err, size_t err_len)
{
	char path[PATH_MAX], why[512];
	char *json = NULL;
	size_t len = 0;
	reg_clear_err(err, err_len);
	if (swarm_registry_blob_path(dir, sha_hex, path, sizeof path))
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int rc = reg_read_file(path, SWARM_MANIFEST_MAX_BYTES, &json, &len);
	if (rc)
		return reg_fail(err, err_len, rc == -EFBIG ? -EBADMSG : rc,
				"manifest blob %s: %s; run `swarm registry verify`", sha_hex,
				rc == -EFBIG ? "not a regular file of at most 1 MiB" :
					       strerror(-rc));
	rc = swarm_manifest_parse(json, len, m, why, sizeof why);
	free(json);
	if (rc)
		return reg_fail(err, err_len, rc, "manifest blob %s: %s", sha_hex, why);
	return 0;
}

/* ---- staged copies, for publish -------------------------------------------------------- */

/* Copies src into tmp/blob.<pid>.<n>, hashing it, and fsyncs the copy. */
int blob_stage(const char *dir, const char *src, const char *what, struct blob *b, char *err,
	       size_t err_len)
{
	static unsigned counter;
	memset(b, 0, sizeof *b);
	int n = snprintf(b->tmp, sizeof b->tmp, "%s/tmp/blob.%ld.%u", dir, (long)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof b->tmp) {
		b->tmp[0] = '\0';
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	}
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = errno;
		b->tmp[0] = '\0';
		return reg_fail(err, err_len, e == ENOENT ? -ENOENT : -e,
				"cannot open the %s %s: %s", what, src, strerror(e));
	}
	struct stat st;
	if (fstat(in, &st) || !S_ISREG(st.st_mode)) {
		close(in);
		b->tmp[0] = '\0';
		return reg_fail(err, err_len, -EINVAL, "the %s %s is not a regular file", what,
				src);
	}
	int out = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (out < 0) {
		int e = errno;
		close(in);
		b->tmp[0] = '\0';
		return reg_fail(err, err_len, -e, "cannot create %s: %s", b->tmp, strerror(e));
	}
	uint8_t *buf = malloc(REG_CHUNK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		rc = -ENOMEM;
	while (!rc) {
		ssize_t r = read(in, buf, REG_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = -errno;
		if (r <= 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)r);
		b->bytes += (uint64_t)r;
		rc = reg_write_all(out, buf, (size_t)r);
	}
	unsigned int len = 0;
	if (!rc && EVP_DigestFinal_ex(ctx, b->sha, &len) != 1)
		rc = -ENOMEM;
	if (!rc && fsync(out))
		rc = -errno;
	if (close(out) && !rc)
		rc = -errno;
	close(in);
	EVP_MD_CTX_free(ctx);
	free(buf);
	if (rc)
		return reg_fail(err, err_len, rc, "cannot copy the %s %s into %s: %s", what, src,
				dir, strerror(-rc));
	return 0;
}

/* Drops a staged copy that was not committed. */
void blob_drop(struct blob *b)
{
	if (b->tmp[0])
		unlink(b->tmp);
	b->tmp[0] = '\0';
}

/* Moves a staged copy to blobs/<sha>, or reuses an intact blob with the same bytes. The
 * caller fsyncs blobs/ afterwards. */
int blob_commit(const char *dir, struct blob *b, char *err, size_t err_len)
{
	char hex[SWARM_REG_SHA_HEX], path[PATH_MAX];
	reg_hex_of(b->sha, hex);
	if (swarm_registry_blob_path(dir, hex, path, sizeof path))
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int rc = swarm_registry_verify_blob(dir, hex, b->bytes, NULL, 0);
	if (rc == 0) {
		blob_drop(b);
		return 0;
	}
	/* Absent, or damaged: the fresh copy takes its place. */
	if (rename(b->tmp, path)) {
		int e = errno;
		return reg_fail(err, err_len, -e, "cannot move a blob into %s/blobs: %s", dir,
				strerror(e));
	}
	b->tmp[0] = '\0';
	b->created = rc == -ENOENT; /* a repaired blob may be named by the catalog: keep it */
	return 0;
}
