/* writer.c: the registry's writer, and the updates that only change the catalog.
 *
 * A writer takes the lock file, loads the checked catalog into memory, removes what a killed
 * writer left behind (files in tmp/, blobs no catalog names), changes its copy and commits it
 * (catalog.c), so every update is atomic and updates never interleave. init creates the
 * directory and an empty catalog; activate, rollback and remove are here; publish, which also
 * stores blobs, is in publish.c.
 */
#include "registry/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the writer --------------------------------------------------------------------------- */

static int sha_cmp(const void *a, const void *b) { return memcmp(a, b, 32); }

/* Removes what a killed writer left: every file in tmp/, and every blob that the catalog
 * does not name (a publish killed between its blob rename and its catalog rename). The
 * caller holds the lock, so nobody else is using either. */
static void clean_stale(const char *dir, const struct cat *c)
{
	char path[PATH_MAX], sub[PATH_MAX];
	if (reg_join(sub, sizeof sub, dir, "tmp") == 0) {
		DIR *d = opendir(sub);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.' && reg_join(path, sizeof path, sub, e->d_name) == 0)
				unlink(path);
		if (d)
			closedir(d);
	}

	uint8_t(*used)[32] = malloc(((size_t)c->n_versions * 2 + 1) * 32);
	if (!used || reg_join(sub, sizeof sub, dir, "blobs")) {
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
		if (strlen(e->d_name) != 64 || reg_sha_of_hex(e->d_name, sha))
			continue; /* not ours: leave it */
		if (bsearch(sha, used, n_used, 32, sha_cmp))
			continue;
		if (reg_join(path, sizeof path, sub, e->d_name) == 0 && unlink(path) == 0)
			removed = true;
	}
	if (d)
		closedir(d);
	if (removed)
		reg_fsync_dir(sub);
	free(used);
}

/* Takes the lock and loads the current catalog. On success the caller must writer_end. */
int writer_begin(const char *dir, struct writer *w, char *err, size_t err_len)
{
	char path[PATH_MAX];
	memset(w, 0, sizeof *w);
	w->lock_fd = -1;
	if (strlen(dir) >= sizeof w->dir || reg_join(path, sizeof path, dir, "index"))
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long: %s", dir);
	memcpy(w->dir, dir, strlen(dir) + 1);
	/* Look before creating the lock file, so that a mistyped path gets no stray file. */
	struct stat st;
	if (stat(path, &st))
		return reg_fail(err, err_len, -ENOENT,
				"no registry at %s: run `swarm registry init`", dir);
	reg_join(path, sizeof path, dir, "lock");
	w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lock_fd < 0) {
		int e = errno;
		return reg_fail(err, err_len, -e, "cannot open %s: %s", path, strerror(e));
	}
	while (flock(w->lock_fd, LOCK_EX)) {
		if (errno == EINTR)
			continue;
		int e = errno;
		close(w->lock_fd);
		w->lock_fd = -1;
		return reg_fail(err, err_len, -e, "cannot lock %s: %s", path, strerror(e));
	}
	const uint8_t *map;
	size_t len;
	int rc = cat_map(dir, &map, &len, &st, err, err_len);
	if (!rc) {
		rc = cat_load(map, &w->c);
		munmap((void *)map, len);
		if (rc)
			reg_fail(err, err_len, rc, "out of memory loading the catalog");
	}
	if (rc) {
		close(w->lock_fd); /* closing releases the flock */
		w->lock_fd = -1;
		return rc;
	}
	clean_stale(dir, &w->c);
	return 0;
}

void writer_end(struct writer *w)
{
	cat_free(&w->c);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	w->lock_fd = -1;
}

int64_t w_find(const struct cat *c, const char *name)
{
	for (uint32_t i = 0; i < c->n_models; i++)
		if (strncmp(c->models[i].name, name, SWARM_NAME_MAX) == 0)
			return i;
	return -1;
}

int64_t w_find_version(const struct cat *c, uint32_t mi, uint32_t version)
{
	for (uint32_t i = 0; i < c->n_versions; i++)
		if (c->versions[i].model == mi && c->versions[i].version == version)
			return i;
	return -1;
}

/* Appends a history record, dropping the model's oldest ones beyond the cap. The history
 * array has room for one more (cat_load). */
void w_history(struct cat *c, uint32_t mi, uint32_t version, uint32_t action)
{
	c->history[c->n_history++] = (struct cat_history){
		.model = mi, .version = version, .action = action, .when_ns = reg_now_ns()
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
	return reg_fail(err, err_len, -ENOENT,
			"no model %s in the registry at %s; `swarm registry list` lists the models",
			name, dir);
}

static int no_version(const char *name, uint32_t version, char *err, size_t err_len)
{
	return reg_fail(err, err_len, -ENOENT,
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
	reg_clear_err(err, err_len);
	if (!dir || !dir[0] || reg_join(path, sizeof path, dir, "index"))
		return reg_fail(err, err_len, -ENAMETOOLONG, "bad registry path");
	if (stat(path, &st) == 0)
		return 0;
	if (stat(dir, &st) == 0 && (!S_ISDIR(st.st_mode) || !only_registry_parts(dir)))
		return reg_fail(err, err_len, -EEXIST,
				"%s exists and is not a registry: choose an empty or new directory",
				dir);
	if ((rc = mkdirs(dir)))
		return reg_fail(err, err_len, rc, "cannot create %s: %s", dir, strerror(-rc));
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
	reg_fsync_dir(parent);

	const char *subs[] = { "blobs", "tmp" };
	for (int i = 0; i < 2; i++) {
		if (reg_join(path, sizeof path, dir, subs[i]))
			return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long");
		if (mkdir(path, 0755) && errno != EEXIST) {
			rc = -errno;
			return reg_fail(err, err_len, rc, "cannot create %s: %s", path,
					strerror(-rc));
		}
	}
	reg_join(path, sizeof path, dir, "lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		return reg_fail(err, err_len, rc, "cannot create %s: %s", path, strerror(-rc));
	}
	while ((rc = flock(fd, LOCK_EX)) && errno == EINTR)
		;
	/* Another init may have won the race while this one waited for the lock. */
	reg_join(path, sizeof path, dir, "index");
	if (stat(path, &st) != 0) {
		struct cat empty = { .generation = 0 }; /* committed as generation 1 */
		rc = cat_commit(dir, &empty, err, err_len);
	} else {
		rc = 0;
	}
	close(fd);
	return rc;
}

/* ---- activate, rollback, remove --------------------------------------------------------- */

int swarm_registry_activate(const char *dir, const char *name, uint32_t version, char *err,
			    size_t err_len)
{
	struct writer w;
	reg_clear_err(err, err_len);
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
	reg_clear_err(err, err_len);
	int rc = writer_begin(dir, &w, err, err_len);
	if (rc)
		return rc;
	int64_t mi = w_find(&w.c, name);
	uint32_t v = mi >= 0 ? rollback_target(&w.c, (uint32_t)mi) : 0;
	if (mi < 0) {
		rc = no_model(dir, name, err, err_len);
	} else if (v == 0) {
		rc = reg_fail(err, err_len, -ENOENT,
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
	reg_clear_err(err, err_len);
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
		rc = reg_fail(err, err_len, -EBUSY,
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
		reg_hex_of(shas[i], hex);
		if (!swarm_registry_blob_path(dir, hex, path, sizeof path) && !unlink(path))
			removed = true;
	}
	if (removed && !reg_join(blobs, sizeof blobs, dir, "blobs"))
		reg_fsync_dir(blobs);
out:
	writer_end(&w);
	return rc;
}
