/* registry.c: the on-disk model registry: its catalog (index), its blobs and its writers.
 *
 * Readers map index read-only and check it completely (magic, layout, sizes, bounds, SHA-256,
 * strings, cross references) before they use a byte of it; writers never change a file that
 * has been renamed into place, so a mapping stays valid for as long as it is held. Writers
 * take the lock file, load and check the current catalog into memory, change it there, write
 * the result to tmp/, fsync it, rename it over index and fsync the directory. Blobs get the
 * same treatment in blobs/, before the catalog that names them. Everything a killed writer
 * can leave behind (files in tmp/, blobs no catalog names) is removed by the next writer
 * while it holds the lock. The byte layout is in docs/registry.md.
 */
#include "registry/registry.h"
#include "registry/loader.h"
#include "kernels/device.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/builtin.h"
#include "registry/safetensors.h"

/* The catalog is little-endian; the records are used in place on the mapping. A big-endian
 * port needs byte-swapping accessors. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the registry catalog is little-endian and read in place: add byte swapping to port"
#endif

/* ---- the catalog layout (docs/registry.md) -------------------------------------------------- */

#define CAT_MAGIC "SWRMCAT1"
#define CAT_LAYOUT 1u
#define CAT_HISTORY_PER_MODEL 1024 /* older activations are dropped */
#define CAT_SHA_OFF 80
#define ACTION_ACTIVATE 1u
#define ACTION_ROLLBACK 2u

struct cat_header {
	char magic[8];
	uint32_t layout_version;
	uint32_t header_bytes;
	uint64_t generation;
	uint64_t file_bytes;
	uint32_t n_models, n_versions, n_meta, n_history;
	uint64_t off_models, off_versions, off_meta, off_history;
	uint8_t sha256[32]; /* of the whole file, computed with this field zeroed */
	uint8_t reserved[16];
};

struct cat_model {
	char name[SWARM_NAME_MAX];
	uint32_t active_version; /* 0: none */
	uint32_t next_version;   /* the number the next publish gets; never goes down */
	uint8_t reserved[8];
};

struct cat_version {
	uint32_t model; /* index into the models */
	uint32_t version;
	uint64_t created_ns;
	uint8_t weights_sha[32];
	uint8_t manifest_sha[32];
	uint64_t weights_bytes;
	uint64_t manifest_bytes;
	uint32_t deploy[8];  /* struct swarm_deploy_config, member by member */
	uint32_t meta_first; /* index into the meta records */
	uint32_t n_meta;
};

struct cat_meta {
	char key[SWARM_REG_META_KEY];
	char value[SWARM_REG_META_VALUE];
};

struct cat_history {
	uint32_t model;
	uint32_t version;
	uint32_t action; /* ACTION_* */
	uint32_t pad;
	uint64_t when_ns;
};

_Static_assert(sizeof(struct cat_header) == 128, "catalog header is 128 bytes");
_Static_assert(offsetof(struct cat_header, generation) == 16, "header layout");
_Static_assert(offsetof(struct cat_header, n_models) == 32, "header layout");
_Static_assert(offsetof(struct cat_header, off_models) == 48, "header layout");
_Static_assert(offsetof(struct cat_header, sha256) == CAT_SHA_OFF, "header layout");
_Static_assert(sizeof(struct cat_model) == 64, "model record is 64 bytes");
_Static_assert(offsetof(struct cat_model, active_version) == 48, "model layout");
_Static_assert(sizeof(struct cat_version) == 136, "version record is 136 bytes");
_Static_assert(offsetof(struct cat_version, weights_sha) == 16, "version layout");
_Static_assert(offsetof(struct cat_version, deploy) == 96, "version layout");
_Static_assert(offsetof(struct cat_version, meta_first) == 128, "version layout");
_Static_assert(sizeof(struct cat_meta) == 128, "meta record is 128 bytes");
_Static_assert(sizeof(struct cat_history) == 24, "history record is 24 bytes");
_Static_assert(sizeof(struct swarm_deploy_config) == 8 * sizeof(uint32_t),
	       "deploy config is 8 u32");
_Static_assert(SWARM_NAME_MAX == 48, "model names are 48 bytes in the catalog");

/* A catalog in memory (the writer's copy), in the on-disk record format. */
struct cat {
	uint64_t generation;
	uint32_t n_models, n_versions, n_meta, n_history;
	struct cat_model *models;
	struct cat_version *versions;
	struct cat_meta *meta;
	struct cat_history *history;
};

struct swarm_registry {
	char dir[PATH_MAX];
	const uint8_t *map;
	size_t len;
	dev_t dev;
	ino_t ino;
	uint64_t generation;
};

/* ---- small helpers ---------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_len, int rc,
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

static void clear_err(char *err, size_t err_len)
{
	if (err && err_len > 0)
		err[0] = '\0';
}

static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hex_of(const uint8_t sha[32], char out[SWARM_REG_SHA_HEX])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[sha[i] >> 4];
		out[2 * i + 1] = digits[sha[i] & 15];
	}
	out[64] = '\0';
}

/* 64 lowercase hex digits into raw bytes. Returns 0 or -EINVAL. */
static int sha_of_hex(const char *hex, uint8_t sha[32])
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

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* A model name: 1..47 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
static bool valid_model_name(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n == 0 || n >= max || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

static bool nul_terminated(const char *s, size_t max) { return memchr(s, '\0', max) != NULL; }

/* fsync a directory, so that a rename or unlink in it survives a power cut. */
static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

static int write_all(int fd, const void *buf, size_t len)
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

/* Checks everything about a catalog image before a byte of it is used: header, section
 * bounds, checksum, strings, cross references. Returns 0 or -EBADMSG with what is wrong. */
static int cat_check(const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	struct cat_header h;
	if (len < sizeof h)
		return fail(err, err_len, -EBADMSG, "%zu bytes, shorter than the 128-byte header",
			    len);
	memcpy(&h, buf, sizeof h);
	if (memcmp(h.magic, CAT_MAGIC, 8) != 0)
		return fail(err, err_len, -EBADMSG, "not a swarm catalog (bad magic)");
	if (h.layout_version != CAT_LAYOUT)
		return fail(err, err_len, -EBADMSG,
			    "layout version %" PRIu32 ", this build reads %u: upgrade swarm",
			    h.layout_version, CAT_LAYOUT);
	if (h.header_bytes != sizeof h)
		return fail(err, err_len, -EBADMSG, "header_bytes %" PRIu32 ", expected %zu",
			    h.header_bytes, sizeof h);
	if (h.file_bytes != len)
		return fail(err, err_len, -EBADMSG,
			    "file_bytes says %" PRIu64 ", the file has %zu (truncated?)",
			    h.file_bytes, len);

	/* The sections follow the header back to back, in this order; counts are u32 and
	 * record sizes small, so the running sum cannot overflow a u64. */
	const struct {
		const char *name;
		uint64_t off, count, size;
	} sec[4] = {
		{ "models", h.off_models, h.n_models, sizeof(struct cat_model) },
		{ "versions", h.off_versions, h.n_versions, sizeof(struct cat_version) },
		{ "meta", h.off_meta, h.n_meta, sizeof(struct cat_meta) },
		{ "history", h.off_history, h.n_history, sizeof(struct cat_history) },
	};
	uint64_t at = sizeof h;
	for (int i = 0; i < 4; i++) {
		if (sec[i].off != at)
			return fail(err, err_len, -EBADMSG,
				    "section %s at offset %" PRIu64 ", expected %" PRIu64,
				    sec[i].name, sec[i].off, at);
		if (sec[i].count * sec[i].size > len - at)
			return fail(err, err_len, -EBADMSG,
				    "section %s (%" PRIu64 " records) runs past the end",
				    sec[i].name, sec[i].count);
		at += sec[i].count * sec[i].size;
	}
	if (at != len)
		return fail(err, err_len, -EBADMSG, "%" PRIu64 " stray bytes after the sections",
			    (uint64_t)len - at);

	uint8_t sha[32];
	sha_catalog(buf, len, sha);
	if (memcmp(sha, h.sha256, 32) != 0)
		return fail(err, err_len, -EBADMSG, "checksum mismatch (the file is damaged)");

	const struct cat_model *models = (const void *)(buf + h.off_models);
	const struct cat_version *vers = (const void *)(buf + h.off_versions);
	const struct cat_meta *meta = (const void *)(buf + h.off_meta);
	const struct cat_history *hist = (const void *)(buf + h.off_history);

	for (uint32_t i = 0; i < h.n_models; i++)
		if (!valid_model_name(models[i].name, sizeof models[i].name) ||
		    models[i].next_version == 0)
			return fail(err, err_len, -EBADMSG, "model record %" PRIu32 " is invalid",
				    i);
	for (uint32_t i = 0; i < h.n_meta; i++)
		if (!nul_terminated(meta[i].key, sizeof meta[i].key) || meta[i].key[0] == '\0' ||
		    !nul_terminated(meta[i].value, sizeof meta[i].value))
			return fail(err, err_len, -EBADMSG, "meta record %" PRIu32 " is invalid",
				    i);

	/* Per model: the last version seen (versions are stored ascending within a model) and
	 * whether its active version was found. */
	uint32_t *last = calloc(h.n_models ? h.n_models : 1, sizeof *last);
	bool *found = calloc(h.n_models ? h.n_models : 1, sizeof *found);
	int rc = 0;
	if (!last || !found) {
		rc = fail(err, err_len, -ENOMEM, "out of memory checking the catalog");
		goto out;
	}
	for (uint32_t i = 0; i < h.n_versions; i++) {
		const struct cat_version *v = &vers[i];
		if (v->model >= h.n_models || v->version == 0 || v->version <= last[v->model] ||
		    v->version >= models[v->model].next_version || v->n_meta > SWARM_REG_MAX_META ||
		    (uint64_t)v->meta_first + v->n_meta > h.n_meta) {
			rc = fail(err, err_len, -EBADMSG, "version record %" PRIu32 " is invalid",
				  i);
			goto out;
		}
		last[v->model] = v->version;
		if (models[v->model].active_version == v->version)
			found[v->model] = true;
	}
	for (uint32_t i = 0; i < h.n_models; i++)
		if (models[i].active_version != 0 && !found[i]) {
			rc = fail(err, err_len, -EBADMSG,
				  "model %s: active version %" PRIu32 " is not in the catalog",
				  models[i].name, models[i].active_version);
			goto out;
		}
	for (uint32_t i = 0; i < h.n_history; i++)
		if (hist[i].model >= h.n_models ||
		    (hist[i].action != ACTION_ACTIVATE && hist[i].action != ACTION_ROLLBACK)) {
			rc = fail(err, err_len, -EBADMSG, "history record %" PRIu32 " is invalid",
				  i);
			goto out;
		}
out:
	free(last);
	free(found);
	return rc;
}

/* Maps and checks dir/index. On success the out parameters describe the mapping. */
static int cat_map(const char *dir, const uint8_t **map_out, size_t *len_out, struct stat *st_out,
		   char *err, size_t err_len)
{
	char path[PATH_MAX];
	if (join(path, sizeof path, dir, "index"))
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR)
			return fail(err, err_len, -ENOENT,
				    "no registry at %s: run `swarm registry init`", dir);
		return fail(err, err_len, -e, "cannot open %s: %s", path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		return fail(err, err_len, -e, "cannot stat %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct cat_header)) {
		close(fd);
		return fail(err, err_len, -EBADMSG,
			    "corrupt catalog %s: not a regular file of at least 128 bytes; "
			    "`swarm registry verify` says more",
			    path);
	}
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED)
		return fail(err, err_len, -e, "cannot map %s: %s", path, strerror(e));
	char why[200];
	int rc = cat_check(map, len, why, sizeof why);
	if (rc) {
		munmap(map, len);
		return fail(err, err_len, rc,
			    "corrupt catalog %s: %s; restore it from a backup (blobs/ is intact "
			    "unless `swarm registry verify` says otherwise)",
			    path, why);
	}
	*map_out = map;
	*len_out = len;
	*st_out = st;
	return 0;
}

static const struct cat_header *hdr(const struct swarm_registry *r) { return (const void *)r->map; }

/* ---- the reader ------------------------------------------------------------------------- */

int swarm_registry_path(const char *dir, char *buf, size_t len)
{
	const char *env;
	int n;
	if (dir && dir[0])
		n = snprintf(buf, len, "%s", dir);
	else if ((env = getenv("SWARM_REGISTRY")) && env[0])
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_DATA_HOME")) && env[0] == '/')
		n = snprintf(buf, len, "%s/swarm/registry", env);
	else {
		env = getenv("HOME");
		if (!env || !env[0]) {
			struct passwd *pw = getpwuid(getuid());
			env = pw ? pw->pw_dir : NULL;
		}
		if (!env || !env[0])
			return -ENOENT;
		n = snprintf(buf, len, "%s/.local/share/swarm/registry", env);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int swarm_registry_open(const char *dir, struct swarm_registry **out, char *err, size_t err_len)
{
	clear_err(err, err_len);
	*out = NULL;
	if (strlen(dir) >= PATH_MAX)
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long");
	struct swarm_registry *r = calloc(1, sizeof *r);
	if (!r)
		return fail(err, err_len, -ENOMEM, "out of memory");
	struct stat st;
	int rc = cat_map(dir, &r->map, &r->len, &st, err, err_len);
	if (rc) {
		free(r);
		return rc;
	}
	memcpy(r->dir, dir, strlen(dir) + 1);
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	r->generation = hdr(r)->generation;
	*out = r;
	return 0;
}

void swarm_registry_close(struct swarm_registry *r)
{
	if (!r)
		return;
	munmap((void *)r->map, r->len);
	free(r);
}

int swarm_registry_refresh(struct swarm_registry *r)
{
	char path[PATH_MAX];
	struct stat st;
	if (join(path, sizeof path, r->dir, "index"))
		return -ENAMETOOLONG;
	if (stat(path, &st))
		return -errno;
	if (st.st_ino == r->ino && st.st_dev == r->dev)
		return 0;
	const uint8_t *map;
	size_t len;
	int rc = cat_map(r->dir, &map, &len, &st, NULL, 0);
	if (rc)
		return rc; /* the old mapping stays in use */
	munmap((void *)r->map, r->len);
	r->map = map;
	r->len = len;
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	uint64_t old = r->generation;
	r->generation = hdr(r)->generation;
	return r->generation != old;
}

uint64_t swarm_registry_generation(const struct swarm_registry *r) { return r->generation; }

const char *swarm_registry_dir(const struct swarm_registry *r) { return r->dir; }

static const struct cat_model *r_models(const struct swarm_registry *r)
{
	return (const void *)(r->map + hdr(r)->off_models);
}

static const struct cat_version *r_versions(const struct swarm_registry *r)
{
	return (const void *)(r->map + hdr(r)->off_versions);
}

int swarm_registry_model_count(const struct swarm_registry *r)
{
	uint32_t n = hdr(r)->n_models;
	return n > INT_MAX ? INT_MAX : (int)n;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Fills out from model record i (already checked by cat_check). */
static void fill_model(const struct swarm_registry *r, uint32_t mi, struct swarm_reg_model *out)
{
	const struct cat_header *h = hdr(r);
	const struct cat_model *m = &r_models(r)[mi];
	const struct cat_version *v = r_versions(r);
	const struct cat_history *hist = (const void *)(r->map + h->off_history);
	const uint32_t vcap = sizeof out->versions / sizeof out->versions[0];
	const uint32_t hcap = sizeof out->history / sizeof out->history[0];

	memset(out, 0, sizeof *out);
	memcpy(out->name, m->name, sizeof out->name);
	out->active_version = m->active_version;

	/* Versions are ascending within a model (cat_check holds the catalog to it), so the
	 * last vcap of them are the newest; keep those in a ring and sort at the end. */
	uint32_t seen = 0;
	for (uint32_t i = 0; i < h->n_versions; i++)
		if (v[i].model == mi)
			out->versions[seen++ % vcap] = v[i].version;
	out->n_versions = seen < vcap ? seen : vcap;
	qsort(out->versions, out->n_versions, sizeof out->versions[0], cmp_u32);

	uint32_t total = 0;
	for (uint32_t i = 0; i < h->n_history; i++)
		total += hist[i].model == mi;
	uint32_t skip = total > hcap ? total - hcap : 0, k = 0;
	for (uint32_t i = 0; i < h->n_history; i++) {
		if (hist[i].model != mi)
			continue;
		if (skip > 0) {
			skip--;
			continue;
		}
		out->history[k].version = hist[i].version;
		out->history[k].action = hist[i].action;
		out->history[k].when_ns = hist[i].when_ns;
		k++;
	}
	out->n_history = k;
}

/* The index of the model called name, or -1. */
static int64_t r_find(const struct swarm_registry *r, const char *name)
{
	const struct cat_model *m = r_models(r);
	for (uint32_t i = 0; i < hdr(r)->n_models; i++)
		if (strncmp(m[i].name, name, sizeof m[i].name) == 0)
			return i;
	return -1;
}

int swarm_registry_model_at(const struct swarm_registry *r, int i, struct swarm_reg_model *out)
{
	if (i < 0 || (uint32_t)i >= hdr(r)->n_models)
		return -ENOENT;
	fill_model(r, (uint32_t)i, out);
	return 0;
}

int swarm_registry_find_model(const struct swarm_registry *r, const char *name,
			      struct swarm_reg_model *out)
{
	int64_t i = r_find(r, name);
	if (i < 0)
		return -ENOENT;
	fill_model(r, (uint32_t)i, out);
	return 0;
}

int swarm_registry_find_version(const struct swarm_registry *r, const char *name, uint32_t version,
				struct swarm_reg_version *out)
{
	int64_t mi = r_find(r, name);
	if (mi < 0)
		return -ENOENT;
	const struct cat_model *m = &r_models(r)[mi];
	if (version == 0)
		version = m->active_version;
	if (version == 0)
		return -ENOENT;
	const struct cat_header *h = hdr(r);
	const struct cat_version *v = r_versions(r);
	const struct cat_meta *meta = (const void *)(r->map + h->off_meta);
	for (uint32_t i = 0; i < h->n_versions; i++) {
		if (v[i].model != (uint32_t)mi || v[i].version != version)
			continue;
		memset(out, 0, sizeof *out);
		memcpy(out->model, m->name, sizeof out->model);
		out->version = version;
		out->active = version == m->active_version;
		out->created_ns = v[i].created_ns;
		hex_of(v[i].weights_sha, out->weights_sha);
		hex_of(v[i].manifest_sha, out->manifest_sha);
		out->weights_bytes = v[i].weights_bytes;
		out->manifest_bytes = v[i].manifest_bytes;
		memcpy(&out->deploy, v[i].deploy, sizeof out->deploy);
		out->n_meta = v[i].n_meta;
		for (uint32_t k = 0; k < v[i].n_meta; k++) {
			memcpy(out->meta[k].key, meta[v[i].meta_first + k].key, SWARM_REG_META_KEY);
			memcpy(out->meta[k].value, meta[v[i].meta_first + k].value,
			       SWARM_REG_META_VALUE);
		}
		return 0;
	}
	return -ENOENT;
}

/* ---- blobs ------------------------------------------------------------------------------ */

int swarm_registry_blob_path(const char *dir, const char *sha_hex, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/blobs/%s", dir, sha_hex);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#define CHUNK (1u << 20)

/* SHA-256 and size of what fd holds from its current offset to the end. */
static int hash_fd(int fd, uint8_t sha[32], uint64_t *bytes)
{
	uint8_t *buf = malloc(CHUNK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	*bytes = 0;
	if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
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
	clear_err(err, err_len);
	if (sha_of_hex(sha_hex, want))
		return fail(err, err_len, -EINVAL, "\"%s\" is not a SHA-256 in lowercase hex",
			    sha_hex);
	if (swarm_registry_blob_path(dir, sha_hex, path, sizeof path))
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return fail(err, err_len, -e, "blob %s: %s", sha_hex,
			    e == ENOENT ? "missing" : strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, err_len, -EBADMSG, "blob %s: not a regular file", sha_hex);
	}
	if ((uint64_t)st.st_size != bytes) {
		close(fd);
		return fail(err, err_len, -EBADMSG,
			    "blob %s: %" PRIu64 " bytes, the catalog says %" PRIu64, sha_hex,
			    (uint64_t)st.st_size, bytes);
	}
	uint64_t n;
	int rc = hash_fd(fd, got, &n);
	close(fd);
	if (rc)
		return fail(err, err_len, rc, "blob %s: cannot read: %s", sha_hex, strerror(-rc));
	if (n != bytes || memcmp(got, want, 32) != 0) {
		char hex[SWARM_REG_SHA_HEX];
		hex_of(got, hex);
		return fail(err, err_len, -EBADMSG,
			    "blob %s: its bytes hash to %s (changed on disk); publish the version "
			    "again or restore the file",
			    sha_hex, hex);
	}
	return 0;
}

/* ---- the writer --------------------------------------------------------------------------- */

struct writer {
	char dir[PATH_MAX];
	int lock_fd;
	struct cat c;
};

static void cat_free(struct cat *c)
{
	free(c->models);
	free(c->versions);
	free(c->meta);
	free(c->history);
	memset(c, 0, sizeof *c);
}

/* Copies a checked catalog image into *c (arrays get one spare record each for appends). */
static int cat_load(const uint8_t *buf, struct cat *c)
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
static int cat_commit(const char *dir, const struct cat *c, char *err, size_t err_len)
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
		return fail(err, err_len, -EFBIG, "the catalog would be too large");

	size_t len = (size_t)h.file_bytes;
	uint8_t *buf = malloc(len);
	if (!buf)
		return fail(err, err_len, -ENOMEM, "out of memory writing the catalog");
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
	if (n < 0 || (size_t)n >= sizeof tmp || join(index, sizeof index, dir, "index")) {
		free(buf);
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		free(buf);
		return fail(err, err_len, rc, "cannot create %s: %s", tmp, strerror(-rc));
	}
	rc = write_all(fd, buf, len);
	free(buf);
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, index))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return fail(err, err_len, rc, "cannot write the catalog in %s: %s", dir,
			    strerror(-rc));
	}
	/* The rename is what readers see; the directory fsync is what makes it durable. */
	if ((rc = fsync_dir(dir)))
		return fail(err, err_len, rc, "cannot fsync %s: %s", dir, strerror(-rc));
	return 0;
}

static int sha_cmp(const void *a, const void *b) { return memcmp(a, b, 32); }

/* Removes what a killed writer left: every file in tmp/, and every blob that the catalog
 * does not name (a publish killed between its blob rename and its catalog rename). The
 * caller holds the lock, so nobody else is using either. */
static void clean_stale(const char *dir, const struct cat *c)
{
	char path[PATH_MAX], sub[PATH_MAX];
	if (join(sub, sizeof sub, dir, "tmp") == 0) {
		DIR *d = opendir(sub);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.' && join(path, sizeof path, sub, e->d_name) == 0)
				unlink(path);
		if (d)
			closedir(d);
	}

	uint8_t(*used)[32] = malloc(((size_t)c->n_versions * 2 + 1) * 32);
	if (!used || join(sub, sizeof sub, dir, "blobs")) {
		free(used);
		return;
	}
	for (uint32_t i = 0; i < c->n_versions; i++) {
		memcpy(used[2 * i], c->versions[i].weights_sha, 32);
		memcpy(used[2 * i + 1], c->versions[i].manifest_sha, 32);
	}
	size_t n_used = (size_t)c->n_versions * 2;
	qsort(used, n_used, 32, sha_cmp);
	DIR *d = opendir(sub);
	struct dirent *e;
	bool removed = false;
	while (d && (e = readdir(d))) {
		uint8_t sha[32];
		if (strlen(e->d_name) != 64 || sha_of_hex(e->d_name, sha))
			continue; /* not ours: leave it */
		if (bsearch(sha, used, n_used, 32, sha_cmp))
			continue;
		if (join(path, sizeof path, sub, e->d_name) == 0 && unlink(path) == 0)
			removed = true;
	}
	if (d)
		closedir(d);
	if (removed)
		fsync_dir(sub);
	free(used);
}

/* Takes the lock and loads the current catalog. On success the caller must writer_end. */
static int writer_begin(const char *dir, struct writer *w, char *err, size_t err_len)
{
	char path[PATH_MAX];
	memset(w, 0, sizeof *w);
	w->lock_fd = -1;
	if (strlen(dir) >= sizeof w->dir || join(path, sizeof path, dir, "index"))
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	memcpy(w->dir, dir, strlen(dir) + 1);
	/* Look before creating the lock file, so that a mistyped path gets no stray file. */
	struct stat st;
	if (stat(path, &st))
		return fail(err, err_len, -ENOENT, "no registry at %s: run `swarm registry init`",
			    dir);
	join(path, sizeof path, dir, "lock");
	w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lock_fd < 0) {
		int e = errno;
		return fail(err, err_len, -e, "cannot open %s: %s", path, strerror(e));
	}
	while (flock(w->lock_fd, LOCK_EX)) {
		if (errno == EINTR)
			continue;
		int e = errno;
		close(w->lock_fd);
		w->lock_fd = -1;
		return fail(err, err_len, -e, "cannot lock %s: %s", path, strerror(e));
	}
	const uint8_t *map;
	size_t len;
	int rc = cat_map(dir, &map, &len, &st, err, err_len);
	if (!rc) {
		rc = cat_load(map, &w->c);
		munmap((void *)map, len);
		if (rc)
			fail(err, err_len, rc, "out of memory loading the catalog");
	}
	if (rc) {
		close(w->lock_fd); /* closing releases the flock */
		w->lock_fd = -1;
		return rc;
	}
	clean_stale(dir, &w->c);
	return 0;
}

static void writer_end(struct writer *w)
{
	cat_free(&w->c);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	w->lock_fd = -1;
}

static int64_t w_find(const struct cat *c, const char *name)
{
	for (uint32_t i = 0; i < c->n_models; i++)
		if (strncmp(c->models[i].name, name, SWARM_NAME_MAX) == 0)
			return i;
	return -1;
}

static int64_t w_find_version(const struct cat *c, uint32_t mi, uint32_t version)
{
	for (uint32_t i = 0; i < c->n_versions; i++)
		if (c->versions[i].model == mi && c->versions[i].version == version)
			return i;
	return -1;
}

/* Appends a history record, dropping the model's oldest ones beyond the cap. The history
 * array has room for one more (cat_load). */
static void w_history(struct cat *c, uint32_t mi, uint32_t version, uint32_t action)
{
	c->history[c->n_history++] = (struct cat_history){
		.model = mi, .version = version, .action = action, .when_ns = now_ns()
	};
	uint32_t total = 0;
	for (uint32_t i = 0; i < c->n_history; i++)
		total += c->history[i].model == mi;
	if (total <= CAT_HISTORY_PER_MODEL)
		return;
	uint32_t k = 0;
	bool dropped = false;
	for (uint32_t i = 0; i < c->n_history; i++) {
		if (!dropped && c->history[i].model == mi) {
			dropped = true;
			continue;
		}
		c->history[k++] = c->history[i];
	}
	c->n_history = k;
}

static int no_model(const char *dir, const char *name, char *err, size_t err_len)
{
	return fail(err, err_len, -ENOENT,
		    "no model %s in the registry at %s; `swarm registry list` lists the models",
		    name, dir);
}

static int no_version(const char *name, uint32_t version, char *err, size_t err_len)
{
	return fail(err, err_len, -ENOENT,
		    "model %s has no version %" PRIu32
		    "; `swarm registry show %s` lists its versions",
		    name, version, name);
}

/* ---- init ------------------------------------------------------------------------------- */

/* mkdir -p, 0755. */
static int mkdirs(const char *dir)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof p)
		return -ENAMETOOLONG;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			return -errno;
		p[i] = c;
	}
	struct stat st;
	if (stat(dir, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Whether dir holds nothing but what an interrupted init can have made. */
static bool only_registry_parts(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	struct dirent *e;
	bool ok = true;
	while (ok && (e = readdir(d))) {
		const char *s = e->d_name;
		if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
			continue;
		ok = strcmp(s, "blobs") == 0 || strcmp(s, "tmp") == 0 || strcmp(s, "lock") == 0;
	}
	closedir(d);
	return ok;
}

int swarm_registry_init(const char *dir, char *err, size_t err_len)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;
	clear_err(err, err_len);
	if (!dir || !dir[0] || join(path, sizeof path, dir, "index"))
		return fail(err, err_len, -ENAMETOOLONG, "bad registry path");
	if (stat(path, &st) == 0)
		return 0;
	if (stat(dir, &st) == 0 && (!S_ISDIR(st.st_mode) || !only_registry_parts(dir)))
		return fail(err, err_len, -EEXIST,
			    "%s exists and is not a registry: choose an empty or new directory",
			    dir);
	if ((rc = mkdirs(dir)))
		return fail(err, err_len, rc, "cannot create %s: %s", dir, strerror(-rc));
	/* The new directory's name must survive a power cut too. */
	char parent[PATH_MAX];
	memcpy(parent, dir, strlen(dir) + 1);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	else if (slash)
		slash[1] = '\0';
	else
		strcpy(parent, ".");
	fsync_dir(parent);

	const char *subs[] = { "blobs", "tmp" };
	for (int i = 0; i < 2; i++) {
		if (join(path, sizeof path, dir, subs[i]))
			return fail(err, err_len, -ENAMETOOLONG, "registry path too long");
		if (mkdir(path, 0755) && errno != EEXIST) {
			rc = -errno;
			return fail(err, err_len, rc, "cannot create %s: %s", path, strerror(-rc));
		}
	}
	join(path, sizeof path, dir, "lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		return fail(err, err_len, rc, "cannot create %s: %s", path, strerror(-rc));
	}
	while ((rc = flock(fd, LOCK_EX)) && errno == EINTR)
		;
	/* Another init may have won the race while this one waited for the lock. */
	join(path, sizeof path, dir, "index");
	if (stat(path, &st) != 0) {
		struct cat empty = { .generation = 0 }; /* committed as generation 1 */
		rc = cat_commit(dir, &empty, err, err_len);
	} else {
		rc = 0;
	}
	close(fd);
	return rc;
}

/* ---- publish ---------------------------------------------------------------------------- */

static bool valid_meta_key(const char *s, size_t n)
{
	if (n == 0 || n >= SWARM_REG_META_KEY)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

/* A staged blob: a copy in tmp/ with its hash, renamed into blobs/ by blob_commit. */
struct blob {
	char tmp[PATH_MAX];
	uint8_t sha[32];
	uint64_t bytes;
	bool created; /* blob_commit put a file into blobs/ where there was none */
};

/* Copies src into tmp/blob.<pid>.<n>, hashing it, and fsyncs the copy. */
static int blob_stage(const char *dir, const char *src, const char *what, struct blob *b, char *err,
		      size_t err_len)
{
	static unsigned counter;
	memset(b, 0, sizeof *b);
	int n = snprintf(b->tmp, sizeof b->tmp, "%s/tmp/blob.%ld.%u", dir, (long)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof b->tmp) {
		b->tmp[0] = '\0';
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	}
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = errno;
		b->tmp[0] = '\0';
		return fail(err, err_len, e == ENOENT ? -ENOENT : -e, "cannot open the %s %s: %s",
			    what, src, strerror(e));
	}
	struct stat st;
	if (fstat(in, &st) || !S_ISREG(st.st_mode)) {
		close(in);
		b->tmp[0] = '\0';
		return fail(err, err_len, -EINVAL, "the %s %s is not a regular file", what, src);
	}
	int out = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (out < 0) {
		int e = errno;
		close(in);
		b->tmp[0] = '\0';
		return fail(err, err_len, -e, "cannot create %s: %s", b->tmp, strerror(e));
	}
	uint8_t *buf = malloc(CHUNK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		rc = -ENOMEM;
	while (!rc) {
		ssize_t r = read(in, buf, CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = -errno;
		if (r <= 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)r);
		b->bytes += (uint64_t)r;
		rc = write_all(out, buf, (size_t)r);
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
		return fail(err, err_len, rc, "cannot copy the %s %s into %s: %s", what, src, dir,
			    strerror(-rc));
	return 0;
}

/* Drops a staged copy that was not committed. */
static void blob_drop(struct blob *b)
{
	if (b->tmp[0])
		unlink(b->tmp);
	b->tmp[0] = '\0';
}

/* Moves a staged copy to blobs/<sha>, or reuses an intact blob with the same bytes. The
 * caller fsyncs blobs/ afterwards. */
static int blob_commit(const char *dir, struct blob *b, char *err, size_t err_len)
{
	char hex[SWARM_REG_SHA_HEX], path[PATH_MAX];
	hex_of(b->sha, hex);
	if (swarm_registry_blob_path(dir, hex, path, sizeof path))
		return fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	int rc = swarm_registry_verify_blob(dir, hex, b->bytes, NULL, 0);
	if (rc == 0) {
		blob_drop(b);
		return 0;
	}
	/* Absent, or damaged: the fresh copy takes its place. */
	if (rename(b->tmp, path)) {
		int e = errno;
		return fail(err, err_len, -e, "cannot move a blob into %s/blobs: %s", dir,
			    strerror(e));
	}
	b->tmp[0] = '\0';
	b->created = rc == -ENOENT; /* a repaired blob may be named by the catalog: keep it */
	return 0;
}

/* Reads a whole file of at most max bytes into *out (malloc'd). */
static int read_file(const char *path, size_t max, char **out, size_t *len)
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

static bool same_spec(const swarm_tensor_spec *a, const swarm_tensor_spec *b)
{
	if (strncmp(a->name, b->name, SWARM_NAME_MAX) != 0 || a->dtype != b->dtype ||
	    a->ndim != b->ndim || a->ndim > SWARM_MAX_DIMS)
		return false;
	for (uint32_t d = 0; d < a->ndim; d++)
		if (a->shape[d] != b->shape[d])
			return false;
	return true;
}

/* The manifest against the built-in model its graph names: the same inputs and outputs, and
 * every weight the model needs declared with the same dtype and shape. */
/* A node-list graph is planned once on a CPU device, as a worker would, so that a model that
 * cannot run is refused at publish and not at its first session. */
static int check_graph(const struct swarm_manifest *m, const void *map,
		       const struct swarm_st_file *st, char *err, size_t err_len)
{
	struct swarm_device *dev;
	char why[512];
	int rc = swarm_device_cpu_create(1, &dev);
	if (rc)
		return fail(err, err_len, rc, "cannot create a CPU device to check the graph");
	struct swarm_graph *g = NULL;
	uint32_t rows = m->deploy.max_rows ? m->deploy.max_rows : 1;
	struct swarm_weights_view view = { .map = map, .st = st };
	struct swarm_graph_desc d;
	swarm_manifest_graph_desc(m, &d);
	rc = swarm_graph_build(&d, swarm_weights_view_lookup, &view, dev, rows, &g, why,
			       sizeof why);
	swarm_graph_free(g);
	dev->i->destroy(dev);
	if (rc)
		return fail(err, err_len, rc == -ENOTSUP ? -EINVAL : rc, "manifest graph: %s", why);
	return 0;
}

static int check_builtin(const struct swarm_manifest *m, char *err, size_t err_len)
{
	const struct swarm_model_desc *d = swarm_builtin_find(m->graph_builtin, 0);
	if (!d) {
		uint32_t n;
		const struct swarm_model_desc *all = swarm_builtin_all(&n);
		char names[256] = "";
		size_t off = 0;
		for (uint32_t i = 0; i < n && off < sizeof names; i++) {
			int k = snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
					 all[i].name);
			off += k > 0 ? (size_t)k : 0;
		}
		return fail(err, err_len, -EINVAL,
			    "manifest: graph.builtin \"%s\" is not a built-in model (known: %s)",
			    m->graph_builtin, names);
	}
	/* a limit the server would cap at serving is refused here, with the limit */
	if (m->deploy.max_rows > d->max_rows)
		return fail(err, err_len, -EINVAL,
			    "manifest: deploy.max_rows %" PRIu32 " is above built-in model %s's "
			    "limit of %" PRIu32 " rows a request",
			    m->deploy.max_rows, d->name, d->max_rows);
	if (m->n_inputs != d->n_inputs || m->n_outputs != d->n_outputs)
		return fail(err, err_len, -EINVAL,
			    "manifest: built-in model %s takes %" PRIu32 " inputs and %" PRIu32
			    " outputs, the manifest declares %" PRIu32 " and %" PRIu32,
			    d->name, d->n_inputs, d->n_outputs, m->n_inputs, m->n_outputs);
	for (uint32_t i = 0; i < d->n_inputs; i++)
		if (!same_spec(&m->inputs[i], &d->inputs[i]))
			return fail(err, err_len, -EINVAL,
				    "manifest: inputs[%" PRIu32 "] (\"%s\") differs from built-in "
				    "model %s's input \"%s\" (name, dtype or shape)",
				    i, m->inputs[i].name, d->name, d->inputs[i].name);
	for (uint32_t i = 0; i < d->n_outputs; i++)
		if (!same_spec(&m->outputs[i], &d->outputs[i]))
			return fail(err, err_len, -EINVAL,
				    "manifest: outputs[%" PRIu32 "] (\"%s\") differs from built-in "
				    "model %s's output \"%s\" (name, dtype or shape)",
				    i, m->outputs[i].name, d->name, d->outputs[i].name);
	for (uint32_t i = 0; i < d->n_weights; i++) {
		const struct swarm_weight_spec *want = &d->weights[i];
		const struct swarm_manifest_weight *got = NULL;
		for (uint32_t k = 0; k < m->n_weights && k < SWARM_MANIFEST_MAX_WEIGHTS; k++)
			if (strcmp(m->weights[k].name, want->name) == 0)
				got = &m->weights[k];
		if (!got)
			return fail(err, err_len, -EINVAL,
				    "manifest: built-in model %s needs weight \"%s\"; declare it "
				    "under \"weights\"",
				    d->name, want->name);
		bool same = got->dtype == want->dtype && got->ndim == want->ndim && want->ndim <= 4;
		for (uint32_t k = 0; same && k < want->ndim; k++)
			same = got->shape[k] == want->shape[k];
		if (!same)
			return fail(err, err_len, -EINVAL,
				    "manifest: weight \"%s\" differs from what built-in model %s "
				    "needs (dtype or shape)",
				    want->name, d->name);
	}
	return 0;
}

/* Parses and checks the staged copies (what is checked is exactly what gets stored). */
static int check_staged(const struct blob *wb, const struct blob *mb, uint32_t deploy[8], char *err,
			size_t err_len)
{
	char why[512];
	char *json = NULL;
	size_t json_len = 0;
	int rc = read_file(mb->tmp, SWARM_MANIFEST_MAX_BYTES, &json, &json_len);
	if (rc == -EFBIG)
		return fail(err, err_len, -EINVAL, "manifest: larger than %u bytes",
			    SWARM_MANIFEST_MAX_BYTES);
	if (rc)
		return fail(err, err_len, rc, "manifest: cannot read: %s", strerror(-rc));
	struct swarm_manifest *m = malloc(sizeof *m);
	if (!m) {
		free(json);
		return fail(err, err_len, -ENOMEM, "out of memory");
	}
	rc = swarm_manifest_parse(json, json_len, m, why, sizeof why);
	free(json);
	if (rc) {
		free(m);
		return fail(err, err_len, -EINVAL, "manifest: %s", why);
	}
	/* A backend's shared object is checked where it runs, by the worker that loads it. */
	if (m->graph.n_nodes == 0 && !m->graph_backend[0] &&
	    (rc = check_builtin(m, err, err_len))) {
		free(m);
		return rc;
	}
	memcpy(deploy, &m->deploy, sizeof m->deploy);

	int fd = open(wb->tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || wb->bytes == 0 || wb->bytes > SIZE_MAX) {
		if (fd >= 0)
			close(fd);
		free(m);
		return fail(err, err_len, -EINVAL, "weights: empty or unreadable file");
	}
	void *map = mmap(NULL, (size_t)wb->bytes, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		rc = -errno;
		free(m);
		return fail(err, err_len, rc, "weights: cannot map: %s", strerror(-rc));
	}
	struct swarm_st_file st;
	rc = swarm_st_parse(map, (size_t)wb->bytes, &st, why, sizeof why);
	if (rc) {
		rc = fail(err, err_len, -EINVAL, "weights: %s", why);
	} else {
		rc = swarm_manifest_check_weights(m, &st, why, sizeof why);
		if (rc)
			rc = fail(err, err_len, -EINVAL, "manifest against weights: %s", why);
		if (!rc && m->graph.n_nodes)
			rc = check_graph(m, map, &st, err, err_len);
		swarm_st_free(&st);
	}
	munmap(map, (size_t)wb->bytes);
	free(m);
	return rc;
}

int swarm_registry_publish(const char *dir, const char *name, const char *weights_path,
			   const char *manifest_path, const char *const *meta, int n_meta,
			   int activate, uint32_t *version_out, char *err, size_t err_len)
{
	struct cat_meta kv[SWARM_REG_MAX_META];
	clear_err(err, err_len);
	if (!name || !valid_model_name(name, SWARM_NAME_MAX))
		return fail(err, err_len, -EINVAL,
			    "bad model name \"%s\": use 1..47 of A-Z a-z 0-9 _ . -, not starting "
			    "with . or -",
			    name ? name : "");
	if (n_meta < 0 || n_meta > SWARM_REG_MAX_META)
		return fail(err, err_len, -EINVAL, "%d meta entries: at most %d", n_meta,
			    SWARM_REG_MAX_META);
	memset(kv, 0, sizeof kv);
	for (int i = 0; i < n_meta; i++) {
		const char *eq = meta[i] ? strchr(meta[i], '=') : NULL;
		size_t kn = eq ? (size_t)(eq - meta[i]) : 0;
		if (!eq || !valid_meta_key(meta[i], kn))
			return fail(
				err, err_len, -EINVAL,
				"meta \"%s\": write key=value, the key 1..31 of A-Z a-z 0-9 _ . "
				"-",
				meta[i] ? meta[i] : "");
		if (strlen(eq + 1) >= SWARM_REG_META_VALUE)
			return fail(err, err_len, -EINVAL,
				    "meta \"%.*s\": the value is longer than %d bytes", (int)kn,
				    meta[i], SWARM_REG_META_VALUE - 1);
		for (int k = 0; k < i; k++)
			if (strlen(kv[k].key) == kn && strncmp(kv[k].key, meta[i], kn) == 0)
				return fail(err, err_len, -EINVAL, "meta key \"%.*s\" given twice",
					    (int)kn, meta[i]);
		memcpy(kv[i].key, meta[i], kn);
		strcpy(kv[i].value, eq + 1);
	}

	struct writer w;
	int rc = writer_begin(dir, &w, err, err_len);
	if (rc)
		return rc;
	struct blob wb = { 0 }, mb = { 0 };
	uint32_t deploy[8];
	if ((rc = blob_stage(dir, weights_path, "weights file", &wb, err, err_len)) ||
	    (rc = blob_stage(dir, manifest_path, "manifest", &mb, err, err_len)) ||
	    (rc = check_staged(&wb, &mb, deploy, err, err_len)))
		goto out;
	if ((rc = blob_commit(dir, &wb, err, err_len)) ||
	    (rc = blob_commit(dir, &mb, err, err_len)))
		goto out;
	char blobs[PATH_MAX];
	if (join(blobs, sizeof blobs, dir, "blobs") == 0 && (rc = fsync_dir(blobs))) {
		fail(err, err_len, rc, "cannot fsync %s: %s", blobs, strerror(-rc));
		goto out;
	}

	struct cat *c = &w.c;
	int64_t mi = w_find(c, name);
	if (mi < 0) {
		mi = c->n_models++;
		memset(&c->models[mi], 0, sizeof c->models[mi]);
		memcpy(c->models[mi].name, name, strlen(name) + 1);
		c->models[mi].next_version = 1;
	}
	struct cat_model *m = &c->models[mi];
	if (m->next_version == UINT32_MAX) {
		rc = fail(err, err_len, -EOVERFLOW, "model %s has used every version number", name);
		goto out;
	}
	uint32_t version = m->next_version++;
	struct cat_version *v = &c->versions[c->n_versions++];
	memset(v, 0, sizeof *v);
	v->model = (uint32_t)mi;
	v->version = version;
	v->created_ns = now_ns();
	memcpy(v->weights_sha, wb.sha, 32);
	memcpy(v->manifest_sha, mb.sha, 32);
	v->weights_bytes = wb.bytes;
	v->manifest_bytes = mb.bytes;
	memcpy(v->deploy, deploy, sizeof v->deploy);
	v->meta_first = c->n_meta;
	v->n_meta = (uint32_t)n_meta;
	memcpy(&c->meta[c->n_meta], kv, (size_t)n_meta * sizeof kv[0]);
	c->n_meta += (uint32_t)n_meta;
	if (activate || m->active_version == 0) {
		m->active_version = version;
		w_history(c, (uint32_t)mi, version, ACTION_ACTIVATE);
	}
	if ((rc = cat_commit(dir, c, err, err_len)))
		goto out;
	if (version_out)
		*version_out = version;
out:
	if (rc) {
		/* New blobs that no catalog names are removed now (the next writer would). */
		char hex[SWARM_REG_SHA_HEX], path[PATH_MAX];
		struct blob *bs[2] = { &wb, &mb };
		for (int i = 0; i < 2; i++)
			if (bs[i]->created) {
				hex_of(bs[i]->sha, hex);
				if (!swarm_registry_blob_path(dir, hex, path, sizeof path))
					unlink(path);
			}
	}
	blob_drop(&wb);
	blob_drop(&mb);
	writer_end(&w);
	return rc;
}

/* ---- activate, rollback, remove --------------------------------------------------------- */

int swarm_registry_activate(const char *dir, const char *name, uint32_t version, char *err,
			    size_t err_len)
{
	struct writer w;
	clear_err(err, err_len);
	int rc = writer_begin(dir, &w, err, err_len);
	if (rc)
		return rc;
	int64_t mi = w_find(&w.c, name);
	if (mi < 0)
		rc = no_model(dir, name, err, err_len);
	else if (version == 0 || w_find_version(&w.c, (uint32_t)mi, version) < 0)
		rc = no_version(name, version, err, err_len);
	else if (w.c.models[mi].active_version != version) {
		w.c.models[mi].active_version = version;
		w_history(&w.c, (uint32_t)mi, version, ACTION_ACTIVATE);
		rc = cat_commit(dir, &w.c, err, err_len);
	}
	writer_end(&w);
	return rc;
}

/* Rollback walks a stack rebuilt from the model's history: an activation pushes its version,
 * a rollback pops back to its version. The target is the newest entry below the top that
 * still exists and is not the active version, so repeated rollbacks keep going back. */
static uint32_t rollback_target(const struct cat *c, uint32_t mi)
{
	uint32_t stack[CAT_HISTORY_PER_MODEL + 1], n = 0;
	for (uint32_t i = 0; i < c->n_history; i++) {
		const struct cat_history *h = &c->history[i];
		if (h->model != mi)
			continue;
		uint32_t k = 0;
		if (h->action == ACTION_ROLLBACK)
			for (k = n; k > 0 && stack[k - 1] != h->version; k--)
				;
		if (k > 0) {
			n = k; /* popped back to the rollback's version */
		} else if (n == 0 || stack[n - 1] != h->version) {
			if (n == CAT_HISTORY_PER_MODEL + 1) {
				memmove(stack, stack + 1, (n - 1) * sizeof stack[0]);
				n--;
			}
			stack[n++] = h->version;
		}
	}
	uint32_t active = c->models[mi].active_version;
	while (n > 0) {
		uint32_t v = stack[--n];
		if (v != active && w_find_version(c, mi, v) >= 0)
			return v;
	}
	return 0;
}

int swarm_registry_rollback(const char *dir, const char *name, uint32_t *version_out, char *err,
			    size_t err_len)
{
	struct writer w;
	clear_err(err, err_len);
	int rc = writer_begin(dir, &w, err, err_len);
	if (rc)
		return rc;
	int64_t mi = w_find(&w.c, name);
	uint32_t v = mi >= 0 ? rollback_target(&w.c, (uint32_t)mi) : 0;
	if (mi < 0) {
		rc = no_model(dir, name, err, err_len);
	} else if (v == 0) {
		rc = fail(err, err_len, -ENOENT,
			  "model %s: nothing to roll back to (no earlier active version still "
			  "exists); `swarm registry activate %s N` picks one",
			  name, name);
	} else {
		w.c.models[mi].active_version = v;
		w_history(&w.c, (uint32_t)mi, v, ACTION_ROLLBACK);
		if (!(rc = cat_commit(dir, &w.c, err, err_len)) && version_out)
			*version_out = v;
	}
	writer_end(&w);
	return rc;
}

static bool sha_used(const struct cat *c, const uint8_t sha[32])
{
	for (uint32_t i = 0; i < c->n_versions; i++)
		if (!memcmp(c->versions[i].weights_sha, sha, 32) ||
		    !memcmp(c->versions[i].manifest_sha, sha, 32))
			return true;
	return false;
}

int swarm_registry_remove(const char *dir, const char *name, uint32_t version, char *err,
			  size_t err_len)
{
	struct writer w;
	clear_err(err, err_len);
	int rc = writer_begin(dir, &w, err, err_len);
	if (rc)
		return rc;
	struct cat *c = &w.c;
	int64_t mi = w_find(c, name);
	int64_t vi = mi >= 0 && version ? w_find_version(c, (uint32_t)mi, version) : -1;
	if (mi < 0) {
		rc = no_model(dir, name, err, err_len);
		goto out;
	}
	if (vi < 0) {
		rc = no_version(name, version, err, err_len);
		goto out;
	}
	if (c->models[mi].active_version == version) {
		rc = fail(err, err_len, -EBUSY,
			  "version %" PRIu32 " is model %s's active version: activate another "
			  "version first (`swarm registry activate %s N`)",
			  version, name, name);
		goto out;
	}
	struct cat_version gone = c->versions[vi];
	/* Drop its meta records and shift the later versions' meta_first. */
	memmove(&c->meta[gone.meta_first], &c->meta[gone.meta_first + gone.n_meta],
		(size_t)(c->n_meta - gone.meta_first - gone.n_meta) * sizeof *c->meta);
	c->n_meta -= gone.n_meta;
	memmove(&c->versions[vi], &c->versions[vi + 1],
		(size_t)(c->n_versions - (uint32_t)vi - 1) * sizeof *c->versions);
	c->n_versions--;
	for (uint32_t i = 0; i < c->n_versions; i++)
		if (c->versions[i].meta_first > gone.meta_first)
			c->versions[i].meta_first -= gone.n_meta;
	if ((rc = cat_commit(dir, c, err, err_len)))
		goto out;

	/* After the catalog no longer names them: blobs no other version uses. */
	char hex[SWARM_REG_SHA_HEX], path[PATH_MAX], blobs[PATH_MAX];
	const uint8_t *shas[2] = { gone.weights_sha, gone.manifest_sha };
	bool removed = false;
	for (int i = 0; i < 2; i++) {
		if (i == 1 && !memcmp(shas[0], shas[1], 32))
			break;
		if (sha_used(c, shas[i]))
			continue;
		hex_of(shas[i], hex);
		if (!swarm_registry_blob_path(dir, hex, path, sizeof path) && !unlink(path))
			removed = true;
	}
	if (removed && !join(blobs, sizeof blobs, dir, "blobs"))
		fsync_dir(blobs);
out:
	writer_end(&w);
	return rc;
}

/* ---- verify ----------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void report_line(void (*report)(void *, const char *),
							      void *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (report)
		report(ctx, line);
}

int swarm_registry_verify(const char *dir, void (*report)(void *ctx, const char *line), void *ctx,
			  char *err, size_t err_len)
{
	struct swarm_registry *r;
	clear_err(err, err_len);
	int rc = swarm_registry_open(dir, &r, err, err_len);
	if (rc)
		return rc;
	const struct cat_version *v = r_versions(r);
	const struct cat_model *m = r_models(r);
	int problems = 0;
	for (uint32_t i = 0; i < hdr(r)->n_versions; i++) {
		const struct {
			const char *what;
			const uint8_t *sha;
			uint64_t bytes;
		} b[2] = { { "weights", v[i].weights_sha, v[i].weights_bytes },
			   { "manifest", v[i].manifest_sha, v[i].manifest_bytes } };
		for (int k = 0; k < 2; k++) {
			char hex[SWARM_REG_SHA_HEX], why[512];
			hex_of(b[k].sha, hex);
			if (swarm_registry_verify_blob(dir, hex, b[k].bytes, why, sizeof why) == 0)
				continue;
			problems++;
			report_line(report, ctx, "model %s version %" PRIu32 ": %s %s",
				    m[v[i].model].name, v[i].version, b[k].what, why);
		}
	}
	swarm_registry_close(r);
	return problems;
}
