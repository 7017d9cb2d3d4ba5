/* catalog.c: the registry's catalog (index) as bytes: checked, mapped, loaded, committed.
 *
 * Readers map index read-only and check it completely (magic, layout, sizes, bounds, SHA-256,
 * strings, cross references) before they use a byte of it; writers never change a file that
 * has been renamed into place, so a mapping stays valid for as long as it is held. A writer
 * loads the checked catalog into memory (struct cat), changes it there, and commits the
 * result: written to tmp/, fsynced, renamed over index, the directory fsynced. The byte
 * layout is in catalog.h and docs/registry.md. The small helpers the other registry files
 * share (errors, paths, hex, fsync) live here too.
 */
#include "registry/catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) int reg_fail(char *err, size_t err_len, int rc,
						   const char *fmt, ...)
{
	if (err && err_len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void reg_clear_err(char *err, size_t err_len)
{
	if (err && err_len > 0)
		err[0] = '\0';
}

int reg_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

uint64_t reg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void reg_hex_of(const uint8_t sha[32], char out[SWARM_REG_SHA_HEX])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[sha[i] >> 4];
		out[2 * i + 1] = digits[sha[i] & 15];
	}
	out[64] = '\0';
}

/* 64 lowercase hex digits into raw bytes. Returns 0 or -EINVAL. */
int reg_sha_of_hex(const char *hex, uint8_t sha[32])
{
	for (int i = 0; i < 64; i++) {
		char c = hex[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -EINVAL;
		if (i & 1)
			sha[i / 2] = (uint8_t)(sha[i / 2] | v);
		else
			sha[i / 2] = (uint8_t)(v << 4);
	}
	return hex[64] == '\0' ? 0 : -EINVAL;
}

bool reg_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* A model name: 1..47 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool reg_valid_model_name(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n == 0 || n >= max || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!reg_name_char(s[i]))
			return false;
	return true;
}

static bool nul_terminated(const char *s, size_t max) { return memchr(s, '\0', max) != NULL; }

/* fsync a directory, so that a rename or unlink in it survives a power cut. */
int reg_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

int reg_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- checking a catalog ----------------------------------------------------------------- */

static void sha_catalog(const uint8_t *buf, size_t len, uint8_t out[32])
{
	static const uint8_t zero[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	/* Allocation failure here leaves out zeroed, which never matches a real digest. */
	memset(out, 0, 32);
	if (!ctx)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, buf, CAT_SHA_OFF) == 1 && EVP_DigestUpdate(ctx, zero, 32) == 1 &&
	    EVP_DigestUpdate(ctx, buf + CAT_SHA_OFF + 32, len - CAT_SHA_OFF - 32) == 1)
		EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
}

/* The header's own fields: magic, layout version, sizes. */
static int cat_check_header(const struct cat_header *h, size_t len, char *err, size_t err_len)
{
	if (memcmp(h->magic, CAT_MAGIC, 8) != 0)
		return reg_fail(err, err_len, -EBADMSG, "not a swarm catalog (bad magic)");
	if (h->layout_version != CAT_LAYOUT)
		return reg_fail(err, err_len, -EBADMSG,
				"layout version %" PRIu32 ", this build reads %u: upgrade swarm",
				h->layout_version, CAT_LAYOUT);
	if (h->header_bytes != sizeof *h)
		return reg_fail(err, err_len, -EBADMSG, "header_bytes %" PRIu32 ", expected %zu",
				h->header_bytes, sizeof *h);
	if (h->file_bytes != len)
		return reg_fail(err, err_len, -EBADMSG,
				"file_bytes says %" PRIu64 ", the file has %zu (truncated?)",
				h->file_bytes, len);
	return 0;
}

/* The sections follow the header back to back, in this order, and fill the file; counts are
 * u32 and record sizes small, so the running sum cannot overflow a u64. */
static int cat_check_sections(const struct cat_header *h, size_t len, char *err, size_t err_len)
{
	const struct {
		const char *name;
		uint64_t off, count, size;
	} sec[4] = {
		{ "models", h->off_models, h->n_models, sizeof(struct cat_model) },
		{ "versions", h->off_versions, h->n_versions, sizeof(struct cat_version) },
		{ "meta", h->off_meta, h->n_meta, sizeof(struct cat_meta) },
		{ "history", h->off_history, h->n_history, sizeof(struct cat_history) },
	};
	uint64_t at = sizeof *h;
	for (int i = 0; i < 4; i++) {
		if (sec[i].off != at)
			return reg_fail(err, err_len, -EBADMSG,
					"section %s at offset %" PRIu64 ", expected %" PRIu64,
					sec[i].name, sec[i].off, at);
		if (sec[i].count * sec[i].size > len - at)
			return reg_fail(err, err_len, -EBADMSG,
					"section %s (%" PRIu64 " records) runs past the end",
					sec[i].name, sec[i].count);
		at += sec[i].count * sec[i].size;
	}
	if (at != len)
		return reg_fail(err, err_len, -EBADMSG,
				"%" PRIu64 " stray bytes after the sections", (uint64_t)len - at);
	return 0;
}

/* Model and meta records: valid names, NUL-terminated strings, a next version above 0. */
static int cat_check_names(const uint8_t *buf, const struct cat_header *h, char *err,
			   size_t err_len)
{
	const struct cat_model *models = (const void *)(buf + h->off_models);
	const struct cat_meta *meta = (const void *)(buf + h->off_meta);
	for (uint32_t i = 0; i < h->n_models; i++)
		if (!reg_valid_model_name(models[i].name, sizeof models[i].name) ||
		    models[i].next_version == 0)
			return reg_fail(err, err_len, -EBADMSG,
					"model record %" PRIu32 " is invalid", i);
	for (uint32_t i = 0; i < h->n_meta; i++)
		if (!nul_terminated(meta[i].key, sizeof meta[i].key) || meta[i].key[0] == '\0' ||
		    !nul_terminated(meta[i].value, sizeof meta[i].value))
			return reg_fail(err, err_len, -EBADMSG,
					"meta record %" PRIu32 " is invalid", i);
	return 0;
}

/* Version records: each names a model, ascends within it, stays below its next_version and
 * has its meta records in bounds; and every model's active version is among them. */
static int cat_check_versions(const uint8_t *buf, const struct cat_header *h, char *err,
			      size_t err_len)
{
	const struct cat_model *models = (const void *)(buf + h->off_models);
	const struct cat_version *vers = (const void *)(buf + h->off_versions);
	/* Per model: the last version seen (versions are stored ascending within a model) and
	 * whether its active version was found. */
	uint32_t *last = calloc(h->n_models ? h->n_models : 1, sizeof *last);
	bool *found = calloc(h->n_models ? h->n_models : 1, sizeof *found);
	int rc = 0;
	if (!last || !found) {
		rc = reg_fail(err, err_len, -ENOMEM, "out of memory checking the catalog");
		goto out;
	}
	for (uint32_t i = 0; i < h->n_versions; i++) {
		const struct cat_version *v = &vers[i];
		if (v->model >= h->n_models || v->version == 0 || v->version <= last[v->model] ||
		    v->version >= models[v->model].next_version || v->n_meta > SWARM_REG_MAX_META ||
		    (uint64_t)v->meta_first + v->n_meta > h->n_meta) {
			rc = reg_fail(err, err_len, -EBADMSG,
				      "version record %" PRIu32 " is invalid", i);
			goto out;
		}
		last[v->model] = v->version;
		if (models[v->model].active_version == v->version)
			found[v->model] = true;
	}
	for (uint32_t i = 0; i < h->n_models; i++)
		if (models[i].active_version != 0 && !found[i]) {
			rc = reg_fail(err, err_len, -EBADMSG,
				      "model %s: active version %" PRIu32 " is not in the catalog",
				      models[i].name, models[i].active_version);
			goto out;
		}
out:
	free(last);
	free(found);
	return rc;
}

/* History records: a known model and a known action. */
static int cat_check_history(const uint8_t *buf, const struct cat_header *h, char *err,
			     size_t err_len)
{
	const struct cat_history *hist = (const void *)(buf + h->off_history);
	for (uint32_t i = 0; i < h->n_history; i++)
		if (hist[i].model >= h->n_models ||
		    (hist[i].action != ACTION_ACTIVATE && hist[i].action != ACTION_ROLLBACK))
			return reg_fail(err, err_len, -EBADMSG,
					"history record %" PRIu32 " is invalid", i);
	return 0;
}

/* The order of the checks matters: nothing past the header is read before the sections are
 * known to lie inside the file, and no record is trusted before the checksum matches. */
int cat_check(const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	struct cat_header h;
	int rc;
	if (len < sizeof h)
		return reg_fail(err, err_len, -EBADMSG,
				"%zu bytes, shorter than the 128-byte header", len);
	memcpy(&h, buf, sizeof h);
	if ((rc = cat_check_header(&h, len, err, err_len)) ||
	    (rc = cat_check_sections(&h, len, err, err_len)))
		return rc;
	uint8_t sha[32];
	sha_catalog(buf, len, sha);
	if (memcmp(sha, h.sha256, 32) != 0)
		return reg_fail(err, err_len, -EBADMSG, "checksum mismatch (the file is damaged)");
	if ((rc = cat_check_names(buf, &h, err, err_len)) ||
	    (rc = cat_check_versions(buf, &h, err, err_len)) ||
	    (rc = cat_check_history(buf, &h, err, err_len)))
		return rc;
	return 0;
}

/* Maps and checks dir/index. On success the out parameters describe the mapping. */
int cat_map(const char *dir, const uint8_t **map_out, size_t *len_out, struct stat *st_out,
	    char *err, size_t err_len)
{
	char path[PATH_MAX];
	if (reg_join(path, sizeof path, dir, "index"))
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR)
			return reg_fail(err, err_len, -ENOENT,
					"no registry at %s: run `swarm registry init`", dir);
		return reg_fail(err, err_len, -e, "cannot open %s: %s", path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		return reg_fail(err, err_len, -e, "cannot stat %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct cat_header)) {
		close(fd);
		return reg_fail(err, err_len, -EBADMSG,
				"corrupt catalog %s: not a regular file of at least 128 bytes; "
				"`swarm registry verify` says more",
				path);
	}
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED)
		return reg_fail(err, err_len, -e, "cannot map %s: %s", path, strerror(e));
	char why[200];
	int rc = cat_check(map, len, why, sizeof why);
	if (rc) {
		munmap(map, len);
		return reg_fail(
			err, err_len, rc,
			"corrupt catalog %s: %s; restore it from a backup (blobs/ is intact "
			"unless `swarm registry verify` says otherwise)",
			path, why);
	}
	*map_out = map;
	*len_out = len;
	*st_out = st;
	return 0;
}

/* ---- loading and committing ------------------------------------------------------------ */

void cat_free(struct cat *c)
{
	free(c->models);
	free(c->versions);
	free(c->meta);
	free(c->history);
	memset(c, 0, sizeof *c);
}

/* Copies a checked catalog image into *c (arrays get one spare record each for appends). */
int cat_load(const uint8_t *buf, struct cat *c)
{
	const struct cat_header *h = (const void *)buf;
	memset(c, 0, sizeof *c);
	c->generation = h->generation;
	c->n_models = h->n_models;
	c->n_versions = h->n_versions;
	c->n_meta = h->n_meta;
	c->n_history = h->n_history;
	c->models = malloc(((size_t)h->n_models + 1) * sizeof *c->models);
	c->versions = malloc(((size_t)h->n_versions + 1) * sizeof *c->versions);
	c->meta = malloc(((size_t)h->n_meta + SWARM_REG_MAX_META) * sizeof *c->meta);
	c->history = malloc(((size_t)h->n_history + 1) * sizeof *c->history);
	if (!c->models || !c->versions || !c->meta || !c->history) {
		cat_free(c);
		return -ENOMEM;
	}
	memcpy(c->models, buf + h->off_models, (size_t)h->n_models * sizeof *c->models);
	memcpy(c->versions, buf + h->off_versions, (size_t)h->n_versions * sizeof *c->versions);
	memcpy(c->meta, buf + h->off_meta, (size_t)h->n_meta * sizeof *c->meta);
	memcpy(c->history, buf + h->off_history, (size_t)h->n_history * sizeof *c->history);
	return 0;
}

/* Serialises c with generation c->generation + 1 into a file in tmp/, fsyncs it, renames it
 * over index and fsyncs the registry directory. The caller holds the lock. */
int cat_commit(const char *dir, const struct cat *c, char *err, size_t err_len)
{
	static unsigned counter;
	struct cat_header h = { 0 };
	memcpy(h.magic, CAT_MAGIC, 8);
	h.layout_version = CAT_LAYOUT;
	h.header_bytes = sizeof h;
	h.generation = c->generation + 1;
	h.n_models = c->n_models;
	h.n_versions = c->n_versions;
	h.n_meta = c->n_meta;
	h.n_history = c->n_history;
	h.off_models = sizeof h;
	h.off_versions = h.off_models + (uint64_t)c->n_models * sizeof *c->models;
	h.off_meta = h.off_versions + (uint64_t)c->n_versions * sizeof *c->versions;
	h.off_history = h.off_meta + (uint64_t)c->n_meta * sizeof *c->meta;
	h.file_bytes = h.off_history + (uint64_t)c->n_history * sizeof *c->history;
	if (h.file_bytes > SIZE_MAX / 2)
		return reg_fail(err, err_len, -EFBIG, "the catalog would be too large");

	size_t len = (size_t)h.file_bytes;
	uint8_t *buf = malloc(len);
	if (!buf)
		return reg_fail(err, err_len, -ENOMEM, "out of memory writing the catalog");
	memcpy(buf, &h, sizeof h);
	/* An empty catalog (init) has NULL arrays, which memcpy must not see even for 0 bytes. */
	if (c->n_models)
		memcpy(buf + h.off_models, c->models, (size_t)c->n_models * sizeof *c->models);
	if (c->n_versions)
		memcpy(buf + h.off_versions, c->versions,
		       (size_t)c->n_versions * sizeof *c->versions);
	if (c->n_meta)
		memcpy(buf + h.off_meta, c->meta, (size_t)c->n_meta * sizeof *c->meta);
	if (c->n_history)
		memcpy(buf + h.off_history, c->history, (size_t)c->n_history * sizeof *c->history);
	sha_catalog(buf, len, buf + CAT_SHA_OFF);

	/* Never write a catalog that readers would refuse: that is a bug here, not bad input. */
	char why[200];
	if (cat_check(buf, len, why, sizeof why) != 0) {
		fprintf(stderr, "%s:%d: built an invalid catalog: %s\n", __FILE__, __LINE__, why);
		abort();
	}

	char tmp[PATH_MAX], index[PATH_MAX];
	int n = snprintf(tmp, sizeof tmp, "%s/tmp/index.%ld.%u", dir, (long)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	int rc = 0;
	if (n < 0 || (size_t)n >= sizeof tmp || reg_join(index, sizeof index, dir, "index")) {
		free(buf);
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		free(buf);
		return reg_fail(err, err_len, rc, "cannot create %s: %s", tmp, strerror(-rc));
	}
	rc = reg_write_all(fd, buf, len);
	free(buf);
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, index))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return reg_fail(err, err_len, rc, "cannot write the catalog in %s: %s", dir,
				strerror(-rc));
	}
	/* The rename is what readers see; the directory fsync is what makes it durable. */
	if ((rc = reg_fsync_dir(dir)))
		return reg_fail(err, err_len, rc, "cannot fsync %s: %s", dir, strerror(-rc));
	return 0;
}
