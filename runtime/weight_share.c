/* weight_share.c: swarmd's table of shareable device weights (weight_share.h). A linear scan
 * of a few dozen entries: it runs when a worker loads or unloads a blob, never per request. */
#include "runtime/weight_share.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void swarm_wshare_init(struct swarm_wshare *t)
{
	memset(t, 0, sizeof *t);
	for (int i = 0; i < SWARM_WSHARE_MAX; i++)
		t->e[i].fd = -1;
}

static void entry_clear(struct swarm_wshare_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	memset(e, 0, sizeof *e);
	e->fd = -1;
}

int swarm_wshare_add(struct swarm_wshare *t, int gpu, const char *sha, uint64_t bytes,
		     uint64_t layout, int exporter, int fd)
{
	if (fd < 0)
		return -EINVAL;
	if (gpu < 0 || !sha || !sha[0] || strlen(sha) >= SWARM_WSHARE_SHA_MAX || !bytes) {
		close(fd);
		return -EINVAL;
	}
	if (swarm_wshare_find(t, gpu, sha)) {
		close(fd);
		return -EEXIST;
	}
	for (int i = 0; i < SWARM_WSHARE_MAX; i++) {
		struct swarm_wshare_entry *e = &t->e[i];
		if (e->fd >= 0)
			continue;
		e->fd = fd;
		e->gpu = gpu;
		e->exporter = exporter;
		e->bytes = bytes;
		e->layout = layout;
		strcpy(e->sha, sha); /* length checked above */
		return 0;
	}
	close(fd);
	return -ENOSPC;
}

const struct swarm_wshare_entry *swarm_wshare_find(const struct swarm_wshare *t, int gpu,
						   const char *sha)
{
	for (int i = 0; sha && i < SWARM_WSHARE_MAX; i++)
		if (t->e[i].fd >= 0 && t->e[i].gpu == gpu && !strcmp(t->e[i].sha, sha))
			return &t->e[i];
	return NULL;
}

const struct swarm_wshare_entry *swarm_wshare_offer(const struct swarm_wshare *t, int gpu,
						    const char *sha, int device)
{
	if (gpu < 0 || !sha || !sha[0])
		return NULL;
	const struct swarm_wshare_entry *e = swarm_wshare_find(t, gpu, sha);
	return e && e->exporter != device ? e : NULL;
}

int swarm_wshare_drop(struct swarm_wshare *t, int exporter, const char *sha)
{
	for (int i = 0; sha && i < SWARM_WSHARE_MAX; i++) {
		struct swarm_wshare_entry *e = &t->e[i];
		if (e->fd >= 0 && e->exporter == exporter && !strcmp(e->sha, sha)) {
			entry_clear(e);
			return 1; /* add keeps (gpu, sha) unique, and an exporter has one gpu */
		}
	}
	return 0;
}

int swarm_wshare_drop_exporter(struct swarm_wshare *t, int exporter)
{
	int n = 0;
	for (int i = 0; i < SWARM_WSHARE_MAX; i++)
		if (t->e[i].fd >= 0 && t->e[i].exporter == exporter) {
			entry_clear(&t->e[i]);
			n++;
		}
	return n;
}

int swarm_wshare_count(const struct swarm_wshare *t)
{
	int n = 0;
	for (int i = 0; i < SWARM_WSHARE_MAX; i++)
		n += t->e[i].fd >= 0;
	return n;
}
