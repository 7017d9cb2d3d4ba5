/* stats.c: creating and mapping the worker stats page (see stats.h). */
#include "runtime/stats.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int swarm_stats_create(struct swarm_worker_stats **out)
{
	int fd = memfd_create("swarm-stats", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, sizeof(struct swarm_worker_stats)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	int err = swarm_stats_map(fd, out);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int swarm_stats_map(int fd, struct swarm_worker_stats **out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size < sizeof(struct swarm_worker_stats))
		return -EINVAL;
	void *p = mmap(NULL, sizeof(struct swarm_worker_stats), PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

void swarm_stats_unmap(struct swarm_worker_stats *s)
{
	if (s)
		munmap(s, sizeof *s);
}
