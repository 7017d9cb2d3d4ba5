/* proto.c: framing, checking and fd passing for the control-socket protocol (proto.h). */
#include "ipc/proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void swarm_copy_str(char *dst, size_t dst_len, const char *src)
{
	if (dst_len == 0)
		return;
	size_t n = src ? strnlen(src, dst_len - 1) : 0;
	if (n)
		memcpy(dst, src, n);
	memset(dst + n, 0, dst_len - n);
}

void swarm_msg_init(struct swarm_msg_hdr *h, uint16_t type, uint32_t len, uint32_t seq)
{
	memset(h, 0, len);
	h->magic = SWARM_PROTO_MAGIC;
	h->abi = SWARM_ABI_VERSION;
	h->type = type;
	h->len = len;
	h->seq = seq;
}

uint32_t swarm_msg_len(uint16_t type)
{
	switch (type) {
	case SWARM_MSG_HELLO:
		return sizeof(struct swarm_msg_hello);
	case SWARM_MSG_HELLO_REPLY:
		return sizeof(struct swarm_msg_reply);
	case SWARM_MSG_OPEN:
		return sizeof(struct swarm_msg_open);
	case SWARM_MSG_OPEN_REPLY:
		return sizeof(struct swarm_msg_open_reply);
	case SWARM_MSG_CLOSE:
		return sizeof(struct swarm_msg_close);
	case SWARM_MSG_CLOSE_REPLY:
		return sizeof(struct swarm_msg_reply);
	case SWARM_MSG_STATUS:
		return sizeof(struct swarm_msg_hdr);
	case SWARM_MSG_STATUS_REPLY:
		return sizeof(struct swarm_msg_status_reply);
	case SWARM_MSG_DEVICE:
		return sizeof(struct swarm_msg_device);
	case SWARM_MSG_DEVICE_REPLY:
		return sizeof(struct swarm_msg_reply);
	case SWARM_MSG_MODEL:
		return sizeof(struct swarm_msg_model);
	case SWARM_MSG_MODEL_REPLY:
		return sizeof(struct swarm_msg_reply);
	case SWARM_MSG_WORKER_READY:
		return sizeof(struct swarm_msg_worker_ready);
	case SWARM_MSG_ATTACH:
		return sizeof(struct swarm_msg_attach);
	case SWARM_MSG_ATTACH_REPLY:
		return sizeof(struct swarm_msg_attach_reply);
	case SWARM_MSG_DETACH:
		return sizeof(struct swarm_msg_detach);
	case SWARM_MSG_DETACHED:
		return sizeof(struct swarm_msg_detached);
	case SWARM_MSG_SWITCH:
		return sizeof(struct swarm_msg_switch);
	case SWARM_MSG_SWITCHED:
		return sizeof(struct swarm_msg_switched);
	case SWARM_MSG_LOAD:
		return sizeof(struct swarm_msg_load);
	case SWARM_MSG_LOADED:
		return sizeof(struct swarm_msg_loaded);
	case SWARM_MSG_RESIDENCY:
		return sizeof(struct swarm_msg_residency);
	case SWARM_MSG_UNLOAD:
		return sizeof(struct swarm_msg_unload);
	case SWARM_MSG_WEIGHTS_SHARE:
	case SWARM_MSG_WEIGHTS_UNSHARE:
	case SWARM_MSG_WEIGHTS_OFFER:
		return sizeof(struct swarm_msg_weights);
	}
	return 0;
}

int swarm_msg_check(const void *buf, size_t n)
{
	struct swarm_msg_hdr h;
	if (n < sizeof h)
		return -EBADMSG;
	memcpy(&h, buf, sizeof h);
	if (h.magic != SWARM_PROTO_MAGIC)
		return -EBADMSG;
	/* The ABI is checked before the length: a peer of another version may have other
	 * struct sizes, and must still learn what differs. */
	if (h.abi != SWARM_ABI_VERSION)
		return -EPROTO;
	uint32_t want = swarm_msg_len(h.type);
	if (want == 0 || h.len != want || n != want)
		return -EBADMSG;
	return h.type;
}

int swarm_msg_send(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
	if (nfds < 0 || nfds > SWARM_MSG_MAX_FDS)
		return -EINVAL;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SWARM_MSG_MAX_FDS)];
	} ctl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > 0) {
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (r == (ssize_t)len)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -errno : -EIO;
	}
}

/* Takes up to want received fds into fds and closes the rest, so that none leaks. Returns
 * how many were taken. */
static int take_fds(struct msghdr *mh, int *fds, int want)
{
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (got < want)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	return got;
}

int64_t swarm_timeout_ms_default(void)
{
	const char *e = getenv("SWARM_TIMEOUT_MS");
	if (e && *e) {
		char *end;
		long long v = strtoll(e, &end, 10);
		if (*end == '\0' && v >= 0)
			return v;
	}
	return SWARM_TIMEOUT_DEFAULT_MS;
}

int swarm_sock_set_timeout(int sock, int64_t timeout_ms)
{
	if (timeout_ms < 0)
		return -EINVAL;
	struct timeval tv = { .tv_sec = (time_t)(timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
		return -errno;
	return 0;
}

int swarm_msg_recv(int sock, void *buf, size_t cap, int *fds, int *nfds)
{
	int want = nfds ? *nfds : 0;
	if (nfds)
		*nfds = 0;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SWARM_MSG_MAX_FDS)];
	} ctl;
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf };
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		take_fds(&mh, NULL, 0);
		return -EMSGSIZE;
	}
	int got = take_fds(&mh, fds, want);
	if (nfds)
		*nfds = got;
	return (int)r;
}
