/* lib_search.c: finding cuBLAS, cuBLASLt and NCCL wherever a GPU machine keeps them (see
 * lib_search.h for the order). The candidate folders are listed first, then checked in order,
 * so that the message of a failed search names every place it looked.
 */
#include "kernels/lib_search.h"

#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__aarch64__)
#define LS_ARCH_GNU "aarch64-linux-gnu"
#define LS_ARCH_TARGET "sbsa-linux"
#else
#define LS_ARCH_GNU "x86_64-linux-gnu"
#define LS_ARCH_TARGET "x86_64-linux"
#endif

/* The candidate folders, in search order, without repeats. */
struct dirs {
	char **v;
	size_t n, cap;
	size_t site; /* how many site-packages folders step 5 found */
	int oom;
};

static void dirs_add(struct dirs *d, const char *dir)
{
	if (d->oom || !dir || !*dir)
		return;
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i], dir) == 0)
			return;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 32;
		char **v = realloc(d->v, cap * sizeof *v);
		if (!v) {
			d->oom = 1;
			return;
		}
		d->v = v;
		d->cap = cap;
	}
	if (!(d->v[d->n] = strdup(dir))) {
		d->oom = 1;
		return;
	}
	d->n++;
}

static void dirs_free(struct dirs *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i]);
	free(d->v);
}

/* root + the printf'd rest, into buf; 0, or -ENAMETOOLONG. */
static int rooted(char *buf, size_t len, const char *root, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int rooted(char *buf, size_t len, const char *root, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s", root);
	int m;

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)m >= len - (size_t)n ? -ENAMETOOLONG : 0;
}

/* Adds every folder a glob pattern matches, in glob's sorted order. */
static void dirs_glob(struct dirs *d, const char *pattern)
{
	glob_t g;

	if (glob(pattern, GLOB_ONLYDIR, NULL, &g) != 0)
		return;
	/* GLOB_ONLYDIR is a hint only: files may match too */
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct stat st;
		if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
			dirs_add(d, g.gl_pathv[i]);
	}
	globfree(&g);
}

/* Adds the site-packages folders under one prefix (rooted) to site. */
static void site_packages(struct dirs *site, const char *root, const char *prefix)
{
	char pat[4096];

	if (!prefix || !*prefix)
		return;
	if (rooted(pat, sizeof pat, root, "%s/lib/python3*/site-packages", prefix) == 0)
		dirs_glob(site, pat);
	if (rooted(pat, sizeof pat, root, "%s/lib/python3*/dist-packages", prefix) == 0)
		dirs_glob(site, pat);
}

static void collect(struct dirs *d, const char *root, const char *compiled_dir)
{
	static const char *const system[] = {
		"/usr/local/cuda/lib64",
		"/usr/local/cuda/lib",
		"/usr/local/cuda/targets/" LS_ARCH_TARGET "/lib",
		"/usr/lib/" LS_ARCH_GNU,
		"/usr/lib64",
		"/usr/local/lib",
		"/opt/conda/lib",
	};
	const char *env = getenv("SWARM_CUDA_LIB_DIR");
	char buf[4096];
	struct dirs site = { 0 };

	/* 2. the operator's folders */
	if (env && *env) {
		char *copy = strdup(env), *save = NULL;
		for (char *t = copy ? strtok_r(copy, ":", &save) : NULL; t;
		     t = strtok_r(NULL, ":", &save))
			if (rooted(buf, sizeof buf, root, "%s", t) == 0)
				dirs_add(d, buf);
		free(copy);
	}
	/* 3. the build's toolkit */
	if (compiled_dir && *compiled_dir && rooted(buf, sizeof buf, root, "%s", compiled_dir) == 0)
		dirs_add(d, buf);
	/* 4. the system's */
	for (size_t i = 0; i < sizeof system / sizeof system[0]; i++)
		if (rooted(buf, sizeof buf, root, "%s", system[i]) == 0)
			dirs_add(d, buf);
	/* 5. Python's: every site-packages folder, then the wheels' library folders in each */
	const char *prefixes[] = { getenv("VIRTUAL_ENV"), getenv("CONDA_PREFIX"), "/usr/local",
				   "/usr", "/opt/conda" };
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		site_packages(&site, root, prefixes[i]);
	if (rooted(buf, sizeof buf, root, "/opt/*/lib/python3*/site-packages") == 0)
		dirs_glob(&site, buf);
	if (rooted(buf, sizeof buf, root, "/usr/lib/python3/dist-packages") == 0)
		dirs_glob(&site, buf);
	const char *home = getenv("HOME");
	if (home && *home && snprintf(buf, sizeof buf, "%s/.local", home) < (int)sizeof buf)
		site_packages(&site, root, buf);
	if (home && *home &&
	    snprintf(buf, sizeof buf, "%s/.pyenv/versions/*", home) < (int)sizeof buf)
		site_packages(&site, root, buf);
	d->site = site.n;
	for (size_t i = 0; i < site.n; i++) {
		char pat[4096];
		if (snprintf(pat, sizeof pat, "%s/nvidia/*/lib", site.v[i]) < (int)sizeof pat)
			dirs_glob(d, pat);
		if (snprintf(pat, sizeof pat, "%s/torch/lib", site.v[i]) < (int)sizeof pat)
			dirs_glob(d, pat);
	}
	if (site.oom)
		d->oom = 1;
	dirs_free(&site);
	/* 6. anything else under /opt */
	if (rooted(buf, sizeof buf, root, "/opt/*/lib") == 0)
		dirs_glob(d, buf);
	if (rooted(buf, sizeof buf, root, "/opt/*/lib64") == 0)
		dirs_glob(d, buf);
}

/* Appends s to buf (of len), ending in "..." when it is cut. */
static void append(char *buf, size_t len, const char *s)
{
	size_t at = strnlen(buf, len);

	if (at + 1 >= len)
		return;
	if ((size_t)snprintf(buf + at, len - at, "%s", s) >= len - at && len >= 4)
		memcpy(buf + len - 4, "...", 4);
}

static void describe(const struct dirs *d, const char *root, char *tried, size_t len)
{
	const char *env = getenv("SWARM_CUDA_LIB_DIR");
	size_t shown = 0;

	tried[0] = '\0';
	append(tried, len, env && *env ? "" : "SWARM_CUDA_LIB_DIR (unset), ");
	for (size_t i = 0; i < d->n && shown < 12; i++, shown++) {
		append(tried, len, d->v[i] + strlen(root));
		append(tried, len, ", ");
	}
	char tail[160];
	snprintf(tail, sizeof tail, "%s%zu folders in all, from %zu Python site-packages folders",
		 d->n > shown ? "... " : "", d->n, d->site);
	append(tried, len, tail);
}

int swarm_lib_search(const char *root, const char *soname, const char *compiled_dir, char *path,
		     size_t len, char *tried, size_t tried_len)
{
	struct dirs d = { 0 };
	int rc = -ENOENT;

	if (!root)
		root = "";
	if (!soname || !*soname || strchr(soname, '/') || !path || len == 0)
		return -EINVAL;
	path[0] = '\0';
	collect(&d, root, compiled_dir);
	if (d.oom) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < d.n; i++) {
		char cand[4096];
		struct stat st;
		if (snprintf(cand, sizeof cand, "%s/%s", d.v[i], soname) >= (int)sizeof cand)
			continue;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			rc = snprintf(path, len, "%s", cand) < (int)len ? 0 : -ENAMETOOLONG;
			goto out;
		}
	}
	if (tried && tried_len)
		describe(&d, root, tried, tried_len);
out:
	dirs_free(&d);
	return rc;
}

void *swarm_lib_open(const char *soname, const char *compiled_dir, char *where, size_t where_len,
		     char *err, size_t err_len)
{
	char path[4096], tried[768] = "", first[256];
	struct link_map *lm = NULL;
	void *h;
	int rc;

	if (where && where_len)
		where[0] = '\0';
	if (err && err_len)
		err[0] = '\0';
	h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (h) {
		if (where && where_len)
			snprintf(where, where_len, "%s (the loader's path)",
				 dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name[0] ?
					 lm->l_name :
					 soname);
		return h;
	}
	/* Kept: where the file is on the loader's path but does not load, this says why. */
	snprintf(first, sizeof first, "%s", dlerror());
	rc = swarm_lib_search("", soname, compiled_dir, path, sizeof path, tried, sizeof tried);
	if (rc) {
		if (err && err_len)
			snprintf(err, err_len, "cannot load %s: %s; not found in %s", soname, first,
				 rc == -ENOENT ? tried : strerror(-rc));
		return NULL;
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		if (err && err_len)
			snprintf(err, err_len, "cannot load %s: %s", path, dlerror());
		return NULL;
	}
	if (where && where_len)
		snprintf(where, where_len, "%s (searched: not on the loader's path)", path);
	return h;
}
