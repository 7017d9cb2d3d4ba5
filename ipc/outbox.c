/* outbox.c: see outbox.h. */
#include "ipc/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/proto.h"

struct swarm_outbox_msg {
	struct swarm_outbox_msg *next;
	size_t len;
	int nfds;
	int fds[SWARM_MSG_MAX_FDS];
	_Alignas(8) unsigned char data[];
};

static int would_block(int err) { return err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS; }

static void msg_free(struct swarm_outbox_msg *m)
{
	for (int i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	free(m);
}

int swarm_outbox_flush(struct swarm_outbox *o, int sock)
{
	while (o->head) {
		struct swarm_outbox_msg *m = o->head;
		int err = swarm_msg_send(sock, m->data, m->len, m->fds, m->nfds);
		if (err)
			return would_block(err) ? 1 : err;
		o->head = m->next;
		if (!o->head)
			o->tail = NULL;
		o->count--;
		msg_free(m);
	}
	return 0;
}

int swarm_outbox_send(struct swarm_outbox *o, int sock, const void *msg, size_t len, const int *fds,
		      int nfds)
{
	if (nfds < 0 || nfds > SWARM_MSG_MAX_FDS || (nfds && !fds))
		return -EINVAL;
	int rc = swarm_outbox_flush(o, sock);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		int err = swarm_msg_send(sock, msg, len, fds, nfds);
		if (!would_block(err))
			return err;
	}
	if (o->count >= SWARM_OUTBOX_MAX)
		return -ENOBUFS;
	struct swarm_outbox_msg *m = malloc(sizeof *m + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = len;
	m->nfds = 0;
	memcpy(m->data, msg, len);
	for (int i = 0; i < nfds; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			int err = -errno;
			msg_free(m);
			return err;
		}
		m->fds[m->nfds++] = fd;
	}
	if (o->tail)
		o->tail->next = m;
	else
		o->head = m;
	o->tail = m;
	if (++o->count > o->most)
		o->most = o->count;
	return 0;
}

size_t swarm_outbox_pending(const struct swarm_outbox *o) { return o->count; }

void swarm_outbox_clear(struct swarm_outbox *o)
{
	while (o->head) {
		struct swarm_outbox_msg *m = o->head;
		o->head = m->next;
		msg_free(m);
	}
	o->tail = NULL;
	o->count = 0;
}
