/* publish.c: a new version of a model: its weights and manifest checked, stored, cataloged.
 *
 * What is checked is exactly what gets stored: both files are copied into tmp/ first and the
 * copies are parsed (safetensors, manifest, the manifest against the weights, and the graph:
 * a built-in model's inputs, outputs and weights, or a node list planned on a CPU device).
 * Only then are the copies renamed into blobs/ and the version added to the catalog, under
 * the writer's lock (writer.c).
 */
#include "registry/catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/builtin.h"
#include "kernels/device.h"
#include "registry/loader.h"
#include "registry/safetensors.h"

/* ---- publish ---------------------------------------------------------------------------- */

static bool valid_meta_key(const char *s, size_t n)
{
	if (n == 0 || n >= SWARM_REG_META_KEY)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!reg_name_char(s[i]))
			return false;
	return true;
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
		return reg_fail(err, err_len, rc, "cannot create a CPU device to check the graph");
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
		return reg_fail(err, err_len, rc == -ENOTSUP ? -EINVAL : rc, "manifest graph: %s",
				why);
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
		return reg_fail(
			err, err_len, -EINVAL,
			"manifest: graph.builtin \"%s\" is not a built-in model (known: %s)",
			m->graph_builtin, names);
	}
	/* a limit the server would cap at serving is refused here, with the limit */
	if (m->deploy.max_rows > d->max_rows)
		return reg_fail(err, err_len, -EINVAL,
				"manifest: deploy.max_rows %" PRIu32 " is above built-in "
				"model %s's limit of %" PRIu32 " rows a request",
				m->deploy.max_rows, d->name, d->max_rows);
	if (m->n_inputs != d->n_inputs || m->n_outputs != d->n_outputs)
		return reg_fail(err, err_len, -EINVAL,
				"manifest: built-in model %s takes %" PRIu32 " inputs and %" PRIu32
				" outputs, the manifest declares %" PRIu32 " and %" PRIu32,
				d->name, d->n_inputs, d->n_outputs, m->n_inputs, m->n_outputs);
	for (uint32_t i = 0; i < d->n_inputs; i++)
		if (!same_spec(&m->inputs[i], &d->inputs[i]))
			return reg_fail(err, err_len, -EINVAL,
					"manifest: inputs[%" PRIu32 "] (\"%s\") differs from "
					"built-in model %s's input \"%s\" (name, dtype or shape)",
					i, m->inputs[i].name, d->name, d->inputs[i].name);
	for (uint32_t i = 0; i < d->n_outputs; i++)
		if (!same_spec(&m->outputs[i], &d->outputs[i]))
			return reg_fail(err, err_len, -EINVAL,
					"manifest: outputs[%" PRIu32 "] (\"%s\") differs from "
					"built-in model %s's output \"%s\" (name, dtype or shape)",
					i, m->outputs[i].name, d->name, d->outputs[i].name);
	for (uint32_t i = 0; i < d->n_weights; i++) {
		const struct swarm_weight_spec *want = &d->weights[i];
		const struct swarm_manifest_weight *got = NULL;
		for (uint32_t k = 0; k < m->n_weights && k < SWARM_MANIFEST_MAX_WEIGHTS; k++)
			if (strcmp(m->weights[k].name, want->name) == 0)
				got = &m->weights[k];
		if (!got)
			return reg_fail(
				err, err_len, -EINVAL,
				"manifest: built-in model %s needs weight \"%s\"; declare it "
				"under \"weights\"",
				d->name, want->name);
		bool same = got->dtype == want->dtype && got->ndim == want->ndim && want->ndim <= 4;
		for (uint32_t k = 0; same && k < want->ndim; k++)
			same = got->shape[k] == want->shape[k];
		if (!same)
			return reg_fail(
				err, err_len, -EINVAL,
				"manifest: weight \"%s\" differs from what built-in model %s "
				"needs (dtype or shape)",
				want->name, d->name);
	}
	return 0;
}

/* Parses and checks the staged copies (what is checked is exactly what gets stored); a
 * message about the weights names weights_path, the file the user gave. */
static int check_staged(const struct blob *wb, const struct blob *mb, const char *weights_path,
			uint32_t deploy[8], char *err, size_t err_len)
{
	char why[512];
	char *json = NULL;
	size_t json_len = 0;
	int rc = reg_read_file(mb->tmp, SWARM_MANIFEST_MAX_BYTES, &json, &json_len);
	if (rc == -EFBIG)
		return reg_fail(err, err_len, -EINVAL, "manifest: larger than %u bytes",
				SWARM_MANIFEST_MAX_BYTES);
	if (rc)
		return reg_fail(err, err_len, rc, "manifest: cannot read: %s", strerror(-rc));
	struct swarm_manifest *m = malloc(sizeof *m);
	if (!m) {
		free(json);
		return reg_fail(err, err_len, -ENOMEM, "out of memory");
	}
	rc = swarm_manifest_parse(json, json_len, m, why, sizeof why);
	free(json);
	if (rc) {
		free(m);
		return reg_fail(err, err_len, -EINVAL, "manifest: %s", why);
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
		return reg_fail(err, err_len, -EINVAL, "weights %s: %s", weights_path,
				wb->bytes == 0 ? "not a safetensors file: it is empty" :
						 "unreadable file");
	}
	void *map = mmap(NULL, (size_t)wb->bytes, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		rc = -errno;
		free(m);
		return reg_fail(err, err_len, rc, "weights: cannot map: %s", strerror(-rc));
	}
	struct swarm_st_file st;
	rc = swarm_st_parse(map, (size_t)wb->bytes, &st, why, sizeof why);
	if (rc) {
		rc = reg_fail(err, err_len, -EINVAL, "weights %s: %s", weights_path, why);
	} else {
		rc = swarm_manifest_check_weights(m, &st, why, sizeof why);
		if (rc)
			rc = reg_fail(err, err_len, -EINVAL, "manifest against weights: %s", why);
		if (!rc && m->graph.n_nodes)
			rc = check_graph(m, map, &st, err, err_len);
		swarm_st_free(&st);
	}
	munmap(map, (size_t)wb->bytes);
	free(m);
	return rc;
}

/* The "key=value" strings into catalog meta records: keys of [A-Za-z0-9_.-], values that
 * fit, no key twice. */
static int parse_meta(const char *const *meta, int n_meta, struct cat_meta kv[SWARM_REG_MAX_META],
		      char *err, size_t err_len)
{
	if (n_meta < 0 || n_meta > SWARM_REG_MAX_META)
		return reg_fail(err, err_len, -EINVAL, "%d meta entries: at most %d", n_meta,
				SWARM_REG_MAX_META);
	memset(kv, 0, SWARM_REG_MAX_META * sizeof kv[0]);
	for (int i = 0; i < n_meta; i++) {
		const char *eq = meta[i] ? strchr(meta[i], '=') : NULL;
		size_t kn = eq ? (size_t)(eq - meta[i]) : 0;
		if (!eq || !valid_meta_key(meta[i], kn))
			return reg_fail(
				err, err_len, -EINVAL,
				"meta \"%s\": write key=value, the key 1..31 of A-Z a-z 0-9 _ . "
				"-",
				meta[i] ? meta[i] : "");
		if (strlen(eq + 1) >= SWARM_REG_META_VALUE)
			return reg_fail(err, err_len, -EINVAL,
					"meta \"%.*s\": the value is longer than %d bytes", (int)kn,
					meta[i], SWARM_REG_META_VALUE - 1);
		for (int k = 0; k < i; k++)
			if (strlen(kv[k].key) == kn && strncmp(kv[k].key, meta[i], kn) == 0)
				return reg_fail(err, err_len, -EINVAL,
						"meta key \"%.*s\" given twice", (int)kn, meta[i]);
		memcpy(kv[i].key, meta[i], kn);
		strcpy(kv[i].value, eq + 1);
	}
	return 0;
}

/* Copies both files into tmp/, checks the copies, renames them into blobs/ and fsyncs it.
 * deploy gets the manifest's deploy config. */
static int store_blobs(const char *dir, const char *weights_path, const char *manifest_path,
		       struct blob *wb, struct blob *mb, uint32_t deploy[8], char *err,
		       size_t err_len)
{
	int rc;
	if ((rc = blob_stage(dir, weights_path, "weights file", wb, err, err_len)) ||
	    (rc = blob_stage(dir, manifest_path, "manifest", mb, err, err_len)) ||
	    (rc = check_staged(wb, mb, weights_path, deploy, err, err_len)))
		return rc;
	if ((rc = blob_commit(dir, wb, err, err_len)) || (rc = blob_commit(dir, mb, err, err_len)))
		return rc;
	char blobs[PATH_MAX];
	if (reg_join(blobs, sizeof blobs, dir, "blobs") == 0 && (rc = reg_fsync_dir(blobs)))
		return reg_fail(err, err_len, rc, "cannot fsync %s: %s", blobs, strerror(-rc));
	return 0;
}

/* Adds the next version of name (and name itself when new) to c, with its blobs, deploy
 * config and meta, and activates it when asked or when the model has no active version.
 * Writes its number to *version. */
static int add_version(struct cat *c, const char *name, const struct blob *wb,
		       const struct blob *mb, const uint32_t deploy[8], const struct cat_meta *kv,
		       int n_meta, int activate, uint32_t *version, char *err, size_t err_len)
{
	int64_t mi = w_find(c, name);
	if (mi < 0) {
		mi = c->n_models++;
		memset(&c->models[mi], 0, sizeof c->models[mi]);
		memcpy(c->models[mi].name, name, strlen(name) + 1);
		c->models[mi].next_version = 1;
	}
	struct cat_model *m = &c->models[mi];
	if (m->next_version == UINT32_MAX)
		return reg_fail(err, err_len, -EOVERFLOW, "model %s has used every version number",
				name);
	*version = m->next_version++;
	struct cat_version *v = &c->versions[c->n_versions++];
	memset(v, 0, sizeof *v);
	v->model = (uint32_t)mi;
	v->version = *version;
	v->created_ns = reg_now_ns();
	memcpy(v->weights_sha, wb->sha, 32);
	memcpy(v->manifest_sha, mb->sha, 32);
	v->weights_bytes = wb->bytes;
	v->manifest_bytes = mb->bytes;
	memcpy(v->deploy, deploy, sizeof v->deploy);
	v->meta_first = c->n_meta;
	v->n_meta = (uint32_t)n_meta;
	memcpy(&c->meta[c->n_meta], kv, (size_t)n_meta * sizeof kv[0]);
	c->n_meta += (uint32_t)n_meta;
	if (activate || m->active_version == 0) {
		m->active_version = *version;
		w_history(c, (uint32_t)mi, *version, ACTION_ACTIVATE);
	}
	return 0;
}

/* After a failed publish: the blobs it created, which no catalog names, are removed now (the
 * next writer would). */
static void remove_new_blobs(const char *dir, const struct blob *wb, const struct blob *mb)
{
	char hex[SWARM_REG_SHA_HEX], path[PATH_MAX];
	const struct blob *bs[2] = { wb, mb };
	for (int i = 0; i < 2; i++)
		if (bs[i]->created) {
			reg_hex_of(bs[i]->sha, hex);
			if (!swarm_registry_blob_path(dir, hex, path, sizeof path))
				unlink(path);
		}
}

int swarm_registry_publish(const char *dir, const char *name, const char *weights_path,
			   const char *manifest_path, const char *const *meta, int n_meta,
			   int activate, uint32_t *version_out, char *err, size_t err_len)
{
	struct cat_meta kv[SWARM_REG_MAX_META];
	reg_clear_err(err, err_len);
	if (!name || !reg_valid_model_name(name, SWARM_NAME_MAX))
		return reg_fail(
			err, err_len, -EINVAL,
			"bad model name \"%s\": use 1..47 of A-Z a-z 0-9 _ . -, not starting "
			"with . or -",
			name ? name : "");
	int rc = parse_meta(meta, n_meta, kv, err, err_len);
	if (rc)
		return rc;

	struct writer w;
	if ((rc = writer_begin(dir, &w, err, err_len)))
		return rc;
	struct blob wb = { 0 }, mb = { 0 };
	uint32_t deploy[8], version = 0;
	if (!(rc = store_blobs(dir, weights_path, manifest_path, &wb, &mb, deploy, err, err_len)) &&
	    !(rc = add_version(&w.c, name, &wb, &mb, deploy, kv, n_meta, activate, &version, err,
			       err_len)) &&
	    !(rc = cat_commit(dir, &w.c, err, err_len)) && version_out)
		*version_out = version;
	if (rc)
		remove_new_blobs(dir, &wb, &mb);
	blob_drop(&wb);
	blob_drop(&mb);
	writer_end(&w);
	return rc;
}
