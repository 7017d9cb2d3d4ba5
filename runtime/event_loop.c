/* event_loop.c: io_uring multishot polls, with an epoll fallback (see event_loop.h). */
#include "runtime/event_loop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "runtime/log.h"

#define RING_ENTRIES 256
#define REMOVE_TAG UINT64_MAX

struct watch {
	int fd;
	uint64_t tag;
};

struct swarm_loop {
	enum swarm_loop_backend backend;
	struct io_uring ring;
	int epfd;
	/* io_uring only: what is watched, to re-arm a multishot poll the kernel ended */
	struct watch *watches;
	uint32_t n_watches, cap_watches;
	/* the kernel cancels every request of a user_data at once (IORING_ASYNC_CANCEL_ALL, Linux
	 * 5.19): a watch then never has two polls (see uring_arm) */
	int cancel_all;
};

static struct io_uring_sqe *get_sqe(struct swarm_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		/* The submission ring is full of adds: push them to the kernel and retry. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

/* Whether the kernel takes IORING_ASYNC_CANCEL_ALL: a cancellation of a user_data no request
 * has answers -ENOENT where it does, -EINVAL where the flag is unknown. */
static int probe_cancel_all(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	if (!sqe)
		return 0;
	io_uring_prep_cancel64(sqe, REMOVE_TAG - 1, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, REMOVE_TAG);
	if (io_uring_submit_and_wait(ring, 1) < 1 || io_uring_peek_cqe(ring, &cqe))
		return 0;
	int ok = cqe->res == -ENOENT || cqe->res == 0;
	io_uring_cqe_seen(ring, cqe);
	return ok;
}

int swarm_loop_create(int force_epoll, struct swarm_loop **out)
{
	struct swarm_loop *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->epfd = -1;
	int err = -ENOSYS;
	if (!force_epoll) {
		err = io_uring_queue_init(RING_ENTRIES, &l->ring, 0);
		if (err == 0) {
			l->backend = SWARM_LOOP_IO_URING;
			l->cancel_all = probe_cancel_all(&l->ring);
			*out = l;
			return 0;
		}
	}
	swarm_log(SWARM_LOG_WARN, "event=io_uring_unavailable fallback=epoll reason=\"%s\"",
		  force_epoll ? "SWARM_NO_IO_URING is set" : strerror(-err));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		err = -errno;
		free(l);
		return err;
	}
	l->backend = SWARM_LOOP_EPOLL;
	*out = l;
	return 0;
}

void swarm_loop_destroy(struct swarm_loop *l)
{
	if (!l)
		return;
	if (l->backend == SWARM_LOOP_IO_URING)
		io_uring_queue_exit(&l->ring);
	else
		close(l->epfd);
	free(l->watches);
	free(l);
}

enum swarm_loop_backend swarm_loop_backend(const struct swarm_loop *l) { return l->backend; }

int swarm_loop_cheap_peek(const struct swarm_loop *l) { return l->backend == SWARM_LOOP_IO_URING; }

/* Queues the cancellation of every poll of tag: all of them where the kernel can, else the
 * one poll_remove finds. Its completion is REMOVE_TAG's, and the polls' own -ECANCELED. */
static int uring_cancel(struct swarm_loop *l, uint64_t tag)
{
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe)
		return -EBUSY;
	if (l->cancel_all)
		io_uring_prep_cancel64(sqe, tag, IORING_ASYNC_CANCEL_ALL);
	else
		io_uring_prep_poll_remove(sqe, tag);
	io_uring_sqe_set_data64(sqe, REMOVE_TAG);
	return 0;
}

/* Arms tag's multishot poll. A poll the kernel ended (its last report without F_MORE) may be
 * read only after the watch was turned off and on again, when another poll of the same tag
 * is armed: arming again then would make two, and removing one would leave the other holding
 * the file after the caller closes it. So every arm is preceded by a cancellation of any poll
 * of the tag (where the kernel can cancel all of them). */
static int uring_arm(struct swarm_loop *l, int fd, uint64_t tag)
{
	if (l->cancel_all && uring_cancel(l, tag))
		return -EBUSY;
	struct io_uring_sqe *sqe = get_sqe(l);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, fd, (tag & SWARM_LOOP_OUT) ? POLLOUT : POLLIN);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

/* io_uring: arms a multishot poll for fd (POLLOUT when tag carries SWARM_LOOP_OUT) and
 * remembers it, to re-arm it when the kernel ends it. */
static int uring_watch(struct swarm_loop *l, int fd, uint64_t tag)
{
	if (l->n_watches == l->cap_watches) {
		uint32_t cap = l->cap_watches ? 2 * l->cap_watches : 64;
		struct watch *w = realloc(l->watches, cap * sizeof *w);
		if (!w)
			return -ENOMEM;
		l->watches = w;
		l->cap_watches = cap;
	}
	int err = uring_arm(l, fd, tag);
	if (err)
		return err;
	l->watches[l->n_watches++] = (struct watch){ fd, tag };
	return 0;
}

/* io_uring: forgets fd's poll for tag and removes it in the kernel, at once. */
static int uring_unwatch(struct swarm_loop *l, int fd, uint64_t tag)
{
	for (uint32_t i = 0; i < l->n_watches; i++)
		if (l->watches[i].tag == tag && l->watches[i].fd == fd) {
			l->watches[i] = l->watches[--l->n_watches];
			break;
		}
	int err = uring_cancel(l, tag);
	if (err)
		return err;
	/* Submit now: the caller closes fd next, and the poll must be gone by then or it
	 * would fire once more for a tag that may be reused. */
	int r = io_uring_submit(&l->ring);
	return r < 0 ? r : 0;
}

int swarm_loop_add(struct swarm_loop *l, int fd, uint64_t tag)
{
	if (tag == REMOVE_TAG || (tag & SWARM_LOOP_OUT))
		return -EINVAL;
	if (l->backend == SWARM_LOOP_IO_URING)
		return uring_watch(l, fd, tag);
	/* Edge-triggered, like a multishot poll: one report per new event, so an eventfd
	 * that is never read does not report forever. Callers drain what must be drained. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = tag };
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int swarm_loop_watch_out(struct swarm_loop *l, int fd, uint64_t tag, int on)
{
	if (tag & SWARM_LOOP_OUT)
		return -EINVAL;
	if (l->backend == SWARM_LOOP_IO_URING)
		return on ? uring_watch(l, fd, tag | SWARM_LOOP_OUT) :
			    uring_unwatch(l, fd, tag | SWARM_LOOP_OUT);
	/* EPOLL_CTL_MOD looks at the fd at once: one already writable is reported. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET | (on ? EPOLLOUT : 0),
				  .data.u64 = tag };
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int swarm_loop_del(struct swarm_loop *l, int fd, uint64_t tag)
{
	if (l->backend == SWARM_LOOP_EPOLL)
		return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
	/* a writability watch left on goes too: nothing may hold fd's file once it is closed */
	for (uint32_t i = 0; i < l->n_watches; i++)
		if (l->watches[i].tag == (tag | SWARM_LOOP_OUT) && l->watches[i].fd == fd) {
			(void)uring_unwatch(l, fd, tag | SWARM_LOOP_OUT);
			break;
		}
	return uring_unwatch(l, fd, tag);
}

/* Harvests what the completion ring holds. A multishot poll that ends (no F_MORE, e.g. on
 * overflow) is re-armed unless it was removed. */
static int uring_harvest(struct swarm_loop *l, uint64_t *tags, int max)
{
	struct io_uring_cqe *cqe;
	int n = 0;
	while (n < max && io_uring_peek_cqe(&l->ring, &cqe) == 0) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		unsigned flags = cqe->flags;
		io_uring_cqe_seen(&l->ring, cqe);
		if (tag == REMOVE_TAG)
			continue;
		if (res == -ECANCELED || res == -ENOENT || res == -EBADF)
			continue; /* removed, or its fd closed */
		if (res >= 0 || res == -EAGAIN)
			tags[n++] = tag;
		if (!(flags & IORING_CQE_F_MORE)) {
			/* The kernel ended the poll (an overflow, say): watch again if it is
			 * still ours. A removed one is gone from the list already. */
			for (uint32_t i = 0; i < l->n_watches; i++)
				if (l->watches[i].tag == tag) {
					uring_arm(l, l->watches[i].fd, tag);
					break;
				}
		}
	}
	return n;
}

int swarm_loop_wait(struct swarm_loop *l, int64_t timeout_ns, uint64_t *tags, int max)
{
	if (l->backend == SWARM_LOOP_EPOLL) {
		struct epoll_event evs[64];
		if (max > 64)
			max = 64;
		int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
		/* half of max: an event may be reported twice, readable and writable */
		int n = epoll_wait(l->epfd, evs, max > 1 ? max / 2 : 1, ms);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		int k = 0;
		for (int i = 0; i < n; i++) {
			uint32_t e = evs[i].events;
			if ((e & EPOLLOUT) && k < max)
				tags[k++] = evs[i].data.u64 | SWARM_LOOP_OUT;
			if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && k < max)
				tags[k++] = evs[i].data.u64;
		}
		return k;
	}
	int n = uring_harvest(l, tags, max);
	if (n > 0 || timeout_ns == 0) {
		if (io_uring_sq_ready(&l->ring))
			io_uring_submit(&l->ring);
		return n;
	}
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts, *tsp = NULL;
	if (timeout_ns > 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	int r = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, tsp, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR)
		return r;
	return uring_harvest(l, tags, max);
}
