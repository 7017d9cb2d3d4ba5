/* stats.c: creating and mapping the worker stats page, and its model table (see stats.h). */
#include "runtime/stats.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
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

const char *swarm_fail_reason_name(uint32_t reason)
{
	static const char *const names[SWARM_FAIL_N] = {
		[SWARM_FAIL_DEADLINE] = "deadline",
		[SWARM_FAIL_BAD_REQUEST] = "bad_request",
		[SWARM_FAIL_UNSUPPORTED] = "unsupported",
		[SWARM_FAIL_EXECUTION] = "execution",
	};
	return reason < SWARM_FAIL_N ? names[reason] : "unknown";
}

struct swarm_model_stats *swarm_stats_model(struct swarm_worker_stats *s, const char *model,
					    uint32_t version)
{
	const uint32_t last = SWARM_STATS_MAX_MODELS - 1;
	for (uint32_t i = 0; i < last; i++) {
		struct swarm_model_stats *m = &s->models[i];
		/* The writer's own earlier store (or a dead predecessor's): relaxed is enough. */
		if (!__atomic_load_n(&m->valid, __ATOMIC_RELAXED)) {
			m->version = version;
			strncpy(m->name, model, sizeof m->name - 1);
			/* Release pairs with the readers' acquire load of valid: they see the name
			 * and version whole once they see valid. */
			__atomic_store_n(&m->valid, 1, __ATOMIC_RELEASE);
			return m;
		}
		if (m->version == version && !strncmp(m->name, model, sizeof m->name))
			return m;
	}
	struct swarm_model_stats *m = &s->models[last];
	if (!__atomic_load_n(&m->valid, __ATOMIC_RELAXED)) {
		m->version = 0;
		strncpy(m->name, "_other", sizeof m->name - 1);
		__atomic_store_n(&m->valid, 1, __ATOMIC_RELEASE); /* as above */
	}
	return m;
}

void swarm_stats_worker_gone(struct swarm_worker_stats *s)
{
	for (uint32_t i = 0; i < SWARM_STATS_MAX_MODELS; i++)
		__atomic_store_n(&s->models[i].sessions, 0, __ATOMIC_RELAXED);
}

void swarm_stats_reset_worker(struct swarm_worker_stats *s)
{
	memset(s, 0, offsetof(struct swarm_worker_stats, models));
	swarm_stats_worker_gone(s);
}
