/* build_info.c: every program's --version line and the lookup of the files an installed
 * swarm keeps under PREFIX/share/swarm (build_info.h). The version and the install layout
 * come from the generated swarm_build_info.h (cmake/version.cmake); the CUDA flag from
 * SWARM_HAVE_CUDA, which the kernels define for whoever links them.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/build_info.h"
#include "swarm/swarm.h"
#include "swarm_build_info.h"

#ifdef SWARM_HAVE_CUDA
#define BUILD_CUDA "yes"
#else
#define BUILD_CUDA "no"
#endif

void swarm_build_print_version(const char *prog)
{
	printf("%s %s (abi %u, cuda %s)\n", prog, SWARM_BUILD_VERSION, SWARM_ABI_VERSION,
	       BUILD_CUDA);
}

/* Appends path to the list of places looked at in err (used bytes in *off). */
static void looked_at(char *err, size_t err_len, size_t *off, const char *path)
{
	if (*off >= err_len)
		return;
	int n = snprintf(err + *off, err_len - *off, "%s%s", *off ? ", " : "", path);
	*off += n > 0 ? (size_t)n : 0;
}

int swarm_build_data_path(const char *env, const char *name, const char *source_rel, char *buf,
			  size_t len, char *err, size_t err_len)
{
	size_t off = 0;
	err[0] = 0;
	const char *set = env ? getenv(env) : NULL;
	if (set && *set) {
		snprintf(buf, len, "%s", set);
		if (access(buf, R_OK) == 0)
			return 0;
		snprintf(err, err_len, "$%s=%s: %s", env, set, strerror(errno));
		return -ENOENT;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash = n > 0 ? memrchr(self, '/', (size_t)n) : NULL;
	if (slash) {
		*slash = 0;
		snprintf(buf, len, "%s/%s/%s", self, SWARM_BUILD_DATADIR_FROM_BINDIR, name);
		if (access(buf, R_OK) == 0)
			return 0;
		looked_at(err, err_len, &off, buf);
	}
	snprintf(buf, len, "%s/%s", SWARM_BUILD_SOURCE_DIR, source_rel);
	if (access(buf, R_OK) == 0)
		return 0;
	looked_at(err, err_len, &off, buf);
	return -ENOENT;
}
