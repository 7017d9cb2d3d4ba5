/* registry.h: the on-disk model registry (docs/registry.md).
 *
 * A directory holds:
 *   index     the catalog: fixed-width, versioned, with a magic and a SHA-256 checksum;
 *             mmap'd read-only by readers (swarmd, workers, `swarm registry list`)
 *   blobs/    immutable files named by the SHA-256 of their bytes (weights, manifests)
 *   tmp/      where writers build files before renaming them into place
 *   lock      flock(2)ed by the one writer at a time
 *
 * Every update takes the lock, builds the new catalog in tmp/, fsyncs it, renames it over
 * index and fsyncs the directory, so that a power cut leaves the old catalog or the new one.
 * Readers map the catalog and re-map when its generation changes (swarm_registry_refresh).
 * The layout is in docs/registry.md.
 *
 * Errors: functions return 0 or a negative errno and write a message that says what to do
 * into err (err_len bytes; err may be NULL): -ENOENT no such registry, model or version;
 * -EEXIST already there; -EBUSY refused (removing the active version); -EINVAL a bad weights
 * file or manifest; -EBADMSG a corrupt catalog or blob.
 */
#ifndef SWARM_REGISTRY_REGISTRY_H
#define SWARM_REGISTRY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "registry/manifest.h"
#include "swarm/swarm.h"

#define SWARM_REG_META_KEY 32
#define SWARM_REG_META_VALUE 96
#define SWARM_REG_MAX_META 16
#define SWARM_REG_SHA_HEX 65 /* 64 hex digits and a NUL */

struct swarm_reg_meta {
	char key[SWARM_REG_META_KEY];
	char value[SWARM_REG_META_VALUE];
};

/* One version of a model, as the catalog holds it. */
struct swarm_reg_version {
	char model[SWARM_NAME_MAX];
	uint32_t version;
	uint32_t active;     /* 1 when it is the model's active version */
	uint64_t created_ns; /* CLOCK_REALTIME at publish */
	char weights_sha[SWARM_REG_SHA_HEX];
	char manifest_sha[SWARM_REG_SHA_HEX];
	uint64_t weights_bytes;
	uint64_t manifest_bytes;
	struct swarm_deploy_config deploy;
	uint32_t n_meta;
	struct swarm_reg_meta meta[SWARM_REG_MAX_META];
};

/* One model: its versions' numbers and its activation history, newest last. */
struct swarm_reg_model {
	char name[SWARM_NAME_MAX];
	uint32_t active_version; /* 0: none */
	uint32_t n_versions;
	uint32_t versions[256]; /* the version numbers, ascending (the newest 256 when more) */
	uint32_t n_history;
	struct {
		uint32_t version;
		uint32_t action; /* 1 activate, 2 rollback */
		uint64_t when_ns;
	} history[64]; /* the most recent activations, oldest first */
};

struct swarm_registry;

/* The registry directory: dir if given, else $SWARM_REGISTRY, else
 * $XDG_DATA_HOME/swarm/registry, else $HOME/.local/share/swarm/registry. Returns 0,
 * -ENAMETOOLONG, or -ENOENT when there is no home directory either. */
int swarm_registry_path(const char *dir, char *buf, size_t len);

/* Creates an empty registry at dir (and its parents), or checks that one is there. Returns 0,
 * or -EEXIST when dir exists and is not a registry. */
int swarm_registry_init(const char *dir, char *err, size_t err_len);

/* Opens the registry at dir for reading: maps its catalog and checks the magic, layout
 * version and checksum. Returns 0, -ENOENT (no registry: run `swarm registry init`),
 * -EBADMSG (corrupt catalog). Not thread-safe; one handle per thread. */
int swarm_registry_open(const char *dir, struct swarm_registry **out, char *err, size_t err_len);
void swarm_registry_close(struct swarm_registry *r);

/* Re-maps the catalog when a writer has replaced it. Returns 1 when it changed, 0 when not,
 * or a negative errno (the old mapping stays in use then). */
int swarm_registry_refresh(struct swarm_registry *r);

/* The catalog's generation: it grows by one with every update. */
uint64_t swarm_registry_generation(const struct swarm_registry *r);
const char *swarm_registry_dir(const struct swarm_registry *r);

/* Lookups in the mapped catalog. Versions 0 means the active one. Return 0 or -ENOENT. */
int swarm_registry_model_count(const struct swarm_registry *r);
int swarm_registry_model_at(const struct swarm_registry *r, int i, struct swarm_reg_model *out);
int swarm_registry_find_model(const struct swarm_registry *r, const char *name,
			      struct swarm_reg_model *out);
int swarm_registry_find_version(const struct swarm_registry *r, const char *name, uint32_t version,
				struct swarm_reg_version *out);

/* The path of a blob: DIR/blobs/<sha>. Returns 0 or -ENAMETOOLONG. */
int swarm_registry_blob_path(const char *dir, const char *sha_hex, char *buf, size_t len);

/* Checks a blob: its size and its SHA-256. Returns 0, -ENOENT, or -EBADMSG (with what
 * differs in err). */
int swarm_registry_verify_blob(const char *dir, const char *sha_hex, uint64_t bytes, char *err,
			       size_t err_len);

/* Reads and parses the manifest blob sha_hex of the registry at dir into *m (large: allocate
 * it). Returns 0, -ENOENT (no such blob), -EBADMSG (not a regular file, or too large), or
 * -EINVAL (it does not parse), with the blob and the problem in err. Thread-safe. */
int swarm_registry_read_manifest(const char *dir, const char *sha_hex, struct swarm_manifest *m,
				 char *err, size_t err_len);

/* ---- writers: each takes the lock, and is atomic ----------------------------------------- */

/* Publishes a new version of name: checks the weights (safetensors) and the manifest, and
 * the manifest against the weights; copies both into blobs/ (verified by size and SHA-256);
 * adds the version (the model's highest plus one) with meta ("key=value" strings) and
 * activates it when activate is set (or when it is the model's first version). Writes the
 * version number to *version_out. */
int swarm_registry_publish(const char *dir, const char *name, const char *weights_path,
			   const char *manifest_path, const char *const *meta, int n_meta,
			   int activate, uint32_t *version_out, char *err, size_t err_len);

/* Makes version the active one of name (history records it). Activating the active version
 * writes nothing. */
int swarm_registry_activate(const char *dir, const char *name, uint32_t version, char *err,
			    size_t err_len);

/* Goes back to the version that was active before the current one (one step of history;
 * a second rollback goes a step further; removed versions are skipped). Writes it to
 * *version_out. -ENOENT when there is nothing to roll back to. */
int swarm_registry_rollback(const char *dir, const char *name, uint32_t *version_out, char *err,
			    size_t err_len);

/* Removes a version that is not active (-EBUSY for the active one). Its blobs are deleted
 * when no other version uses them. */
int swarm_registry_remove(const char *dir, const char *name, uint32_t version, char *err,
			  size_t err_len);

/* Verifies the catalog and every blob it names. Calls report(ctx, line) for each problem
 * found. Returns the number of problems (0: all good) or a negative errno when the catalog
 * cannot be read. */
int swarm_registry_verify(const char *dir, void (*report)(void *ctx, const char *line), void *ctx,
			  char *err, size_t err_len);

#endif /* SWARM_REGISTRY_REGISTRY_H */
