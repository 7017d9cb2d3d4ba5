/* tmp_dir.h: a test's scratch directory under /tmp, made fresh by mkdtemp and removed with
 * everything below it. Header-only, for Criterion suites (each suite is one executable). */
#ifndef SWARM_TESTS_LIB_TMP_DIR_H
#define SWARM_TESTS_LIB_TMP_DIR_H

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Makes /tmp/swarm-test-NAME-XXXXXX into dir (len bytes), or fails the test. */
static inline void tmp_dir_make(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "/tmp/swarm-test-%s-XXXXXX", name);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

static inline int tmp_dir_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Removes dir and everything below it, not following links. */
static inline void tmp_dir_remove(const char *dir)
{
	nftw(dir, tmp_dir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* SWARM_TESTS_LIB_TMP_DIR_H */
