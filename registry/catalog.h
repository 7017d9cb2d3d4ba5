/* catalog.h: what the registry's files share (internal; the API is registry.h).
 *
 * The registry is split by concern, all around the catalog defined here:
 *   catalog.c   the catalog's byte layout checked, mapped, loaded and committed, and the
 *               small helpers every file below uses (errors, paths, hex, fsync)
 *   registry.c  the reader: the mapped catalog, its lookups, and verify
 *   blobs.c     blobs/: paths, checks, reading a manifest, and the staged copies a publish
 *               renames into place
 *   writer.c    the writer's lock and in-memory catalog; init, activate, rollback, remove
 *   publish.c   publish: the weights and manifest checked, stored and added as a version
 * Writers hold the lock file for everything they do (struct writer); readers hold only a
 * mapping. Nothing here is thread-safe: one handle, or one writer, per thread.
 */
#ifndef SWARM_REGISTRY_CATALOG_H
#define SWARM_REGISTRY_CATALOG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "registry/registry.h"
#include "swarm/swarm.h"

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

/* ---- small helpers (catalog.c) ------------------------------------------------------------- */

/* Writes the message into err (when there is one) and returns rc. */
__attribute__((format(printf, 4, 5))) int reg_fail(char *err, size_t err_len, int rc,
						   const char *fmt, ...);
void reg_clear_err(char *err, size_t err_len);
/* dir/name into buf: 0 or -ENAMETOOLONG. */
int reg_join(char *buf, size_t len, const char *dir, const char *name);
/* CLOCK_REALTIME in nanoseconds. */
uint64_t reg_now_ns(void);
void reg_hex_of(const uint8_t sha[32], char out[SWARM_REG_SHA_HEX]);
/* 64 lowercase hex digits into raw bytes. Returns 0 or -EINVAL. */
int reg_sha_of_hex(const char *hex, uint8_t sha[32]);
/* A character of a model name or a meta key: [A-Za-z0-9_.-]. */
bool reg_name_char(char c);
/* A model name: 1..47 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool reg_valid_model_name(const char *s, size_t max);
/* fsync a directory, so that a rename or unlink in it survives a power cut. */
int reg_fsync_dir(const char *path);
int reg_write_all(int fd, const void *buf, size_t len);

/* ---- the catalog (catalog.c) --------------------------------------------------------------- */

/* Checks everything about a catalog image before a byte of it is used: header, section
 * bounds, checksum, strings, cross references. Returns 0 or -EBADMSG with what is wrong. */
int cat_check(const uint8_t *buf, size_t len, char *err, size_t err_len);
/* Maps and checks dir/index. On success the out parameters describe the mapping. */
int cat_map(const char *dir, const uint8_t **map_out, size_t *len_out, struct stat *st_out,
	    char *err, size_t err_len);
/* Copies a checked catalog image into *c (arrays get one spare record each for appends, and
 * the meta records room for one version's). 0 or -ENOMEM; cat_free releases it. */
int cat_load(const uint8_t *buf, struct cat *c);
void cat_free(struct cat *c);
/* Serialises c with generation c->generation + 1 into a file in tmp/, fsyncs it, renames it
 * over index and fsyncs the registry directory. The caller holds the lock. */
int cat_commit(const char *dir, const struct cat *c, char *err, size_t err_len);

/* ---- blobs (blobs.c) ----------------------------------------------------------------------- */

#define REG_CHUNK (1u << 20) /* bytes read at a time when hashing or copying */

/* A staged blob: a copy in tmp/ with its hash, renamed into blobs/ by blob_commit. */
struct blob {
	char tmp[PATH_MAX];
	uint8_t sha[32];
	uint64_t bytes;
	bool created; /* blob_commit put a file into blobs/ where there was none */
};

/* Reads a whole regular file of at most max bytes into *out (malloc'd, the caller frees it;
 * one byte more than *len is allocated). Returns 0, -EFBIG (larger, or not a regular file),
 * -ENOMEM, or open's or read's -errno. */
int reg_read_file(const char *path, size_t max, char **out, size_t *len);

/* Copies src into tmp/blob.<pid>.<n>, hashing it, and fsyncs the copy. what names src in
 * messages ("weights file"). */
int blob_stage(const char *dir, const char *src, const char *what, struct blob *b, char *err,
	       size_t err_len);
/* Drops a staged copy that was not committed. */
void blob_drop(struct blob *b);
/* Moves a staged copy to blobs/<sha>, or reuses an intact blob with the same bytes. The
 * caller fsyncs blobs/ afterwards. */
int blob_commit(const char *dir, struct blob *b, char *err, size_t err_len);

/* ---- the writer (writer.c) ----------------------------------------------------------------- */

struct writer {
	char dir[PATH_MAX];
	int lock_fd;
	struct cat c;
};

/* Takes the lock, loads the current catalog and removes what a killed writer left behind.
 * On success the caller must writer_end. */
int writer_begin(const char *dir, struct writer *w, char *err, size_t err_len);
/* Frees the catalog copy and releases the lock. */
void writer_end(struct writer *w);
/* The index of the model called name in c, or -1. */
int64_t w_find(const struct cat *c, const char *name);
/* The index of model mi's version in c, or -1. */
int64_t w_find_version(const struct cat *c, uint32_t mi, uint32_t version);
/* Appends a history record, dropping the model's oldest ones beyond the cap. The history
 * array has room for one more (cat_load). */
void w_history(struct cat *c, uint32_t mi, uint32_t version, uint32_t action);

#endif /* SWARM_REGISTRY_CATALOG_H */
