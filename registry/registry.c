/* registry.c: the registry's reader: the mapped catalog, its lookups, and verify.
 *
 * A handle maps index read-only after catalog.c has checked all of it, and re-maps when a
 * writer has renamed a new catalog into place (writers never change a file in place, so the
 * old mapping stays valid until then). The writers are in writer.c and publish.c, the blobs
 * in blobs.c, the byte layout in catalog.c; catalog.h says how the files fit together.
 */
#include "registry/registry.h"
#include "registry/catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct swarm_registry {
	char dir[PATH_MAX];
	const uint8_t *map;
	size_t len;
	dev_t dev;
	ino_t ino;
	uint64_t generation;
};

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
	reg_clear_err(err, err_len);
	*out = NULL;
	if (strlen(dir) >= PATH_MAX)
		return reg_fail(err, err_len, -ENAMETOOLONG, "registry path too long");
	struct swarm_registry *r = calloc(1, sizeof *r);
	if (!r)
		return reg_fail(err, err_len, -ENOMEM, "out of memory");
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
	if (reg_join(path, sizeof path, r->dir, "index"))
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
		reg_hex_of(v[i].weights_sha, out->weights_sha);
		reg_hex_of(v[i].manifest_sha, out->manifest_sha);
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
	reg_clear_err(err, err_len);
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
			reg_hex_of(b[k].sha, hex);
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
