/* test_proto.c: the control-socket protocol (ipc/proto.h): message framing and checks, fd
 * passing with SCM_RIGHTS over a SOCK_SEQPACKET pair (counts, identity, no leaked fds on
 * every path), end of stream, and swarm_copy_str.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/proto.h"

static const uint16_t all_types[] = {
	SWARM_MSG_HELLO,      SWARM_MSG_HELLO_REPLY,  SWARM_MSG_OPEN,
	SWARM_MSG_OPEN_REPLY, SWARM_MSG_CLOSE,        SWARM_MSG_CLOSE_REPLY,
	SWARM_MSG_STATUS,     SWARM_MSG_STATUS_REPLY, SWARM_MSG_WORKER_READY,
	SWARM_MSG_ATTACH,     SWARM_MSG_ATTACH_REPLY, SWARM_MSG_DETACH,
	SWARM_MSG_DETACHED,   SWARM_MSG_SWITCH,       SWARM_MSG_SWITCHED,
	SWARM_MSG_DEVICE,     SWARM_MSG_DEVICE_REPLY, SWARM_MSG_LOAD,
	SWARM_MSG_LOADED,     SWARM_MSG_WEIGHTS_SHARE, SWARM_MSG_WEIGHTS_UNSHARE,
	SWARM_MSG_WEIGHTS_OFFER,
};
#define N_TYPES (sizeof all_types / sizeof *all_types)

/* A buffer large and aligned enough for any message. */
static _Alignas(16) unsigned char msgbuf[SWARM_MSG_MAX_BYTES + 64];

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d, "opendir /proc/self/fd: %s", strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static void seqpacket_pair(int sv[2])
{
	int rc = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
	cr_assert_eq(rc, 0, "socketpair: %s", strerror(errno));
}

static void make_close(struct swarm_msg_close *m, uint32_t seq, uint64_t session)
{
	swarm_msg_init(&m->h, SWARM_MSG_CLOSE, sizeof *m, seq);
	m->session_id = session;
}

/* ---- framing and checks ---- */

Test(ipc_proto, init_then_check_round_trips_every_type)
{
	for (size_t i = 0; i < N_TYPES; i++) {
		uint16_t t = all_types[i];
		uint32_t len = swarm_msg_len(t);
		cr_assert_geq(len, sizeof(struct swarm_msg_hdr), "type %u has length %u", t, len);
		cr_assert_leq(len, SWARM_MSG_MAX_BYTES, "type %u length %u > max %zu", t, len,
			      (size_t)SWARM_MSG_MAX_BYTES);
		memset(msgbuf, 0xa5, sizeof msgbuf);
		struct swarm_msg_hdr *h = (struct swarm_msg_hdr *)msgbuf;
		swarm_msg_init(h, t, len, 1000 + t);
		cr_assert_eq(h->magic, SWARM_PROTO_MAGIC, "type %u magic %#x", t, h->magic);
		cr_assert_eq(h->abi, SWARM_ABI_VERSION, "type %u abi %u", t, h->abi);
		cr_assert_eq(h->type, t);
		cr_assert_eq(h->len, len);
		cr_assert_eq(h->seq, 1000u + t, "type %u seq %u", t, h->seq);
		for (uint32_t b = sizeof *h; b < len; b++)
			cr_assert_eq(msgbuf[b], 0, "type %u: body byte %u = %#x, not zeroed", t, b,
				     msgbuf[b]);
		cr_assert_eq(msgbuf[len], 0xa5, "type %u: init wrote past its length %u", t, len);
		int rc = swarm_msg_check(msgbuf, len);
		cr_assert_eq(rc, t, "check of a fresh type %u message = %d", t, rc);
	}
}

Test(ipc_proto, msg_len_matches_the_structs)
{
	cr_assert_eq(swarm_msg_len(SWARM_MSG_HELLO), sizeof(struct swarm_msg_hello));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_HELLO_REPLY), sizeof(struct swarm_msg_reply));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_OPEN), sizeof(struct swarm_msg_open));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_OPEN_REPLY), sizeof(struct swarm_msg_open_reply));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_CLOSE), sizeof(struct swarm_msg_close));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_CLOSE_REPLY), sizeof(struct swarm_msg_reply));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_STATUS), sizeof(struct swarm_msg_hdr));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_STATUS_REPLY), sizeof(struct swarm_msg_status_reply));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_WORKER_READY), sizeof(struct swarm_msg_worker_ready));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_ATTACH), sizeof(struct swarm_msg_attach));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_ATTACH_REPLY), sizeof(struct swarm_msg_attach_reply));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_DETACH), sizeof(struct swarm_msg_detach));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_DETACHED), sizeof(struct swarm_msg_detached));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_LOAD), sizeof(struct swarm_msg_load));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_LOADED), sizeof(struct swarm_msg_loaded));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_WEIGHTS_SHARE), sizeof(struct swarm_msg_weights));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_WEIGHTS_UNSHARE), sizeof(struct swarm_msg_weights));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_WEIGHTS_OFFER), sizeof(struct swarm_msg_weights));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_MODEL), sizeof(struct swarm_msg_model));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_MODEL_REPLY), sizeof(struct swarm_msg_reply));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_RESIDENCY), sizeof(struct swarm_msg_residency));
	cr_assert_eq(swarm_msg_len(SWARM_MSG_UNLOAD), sizeof(struct swarm_msg_unload));
}

Test(ipc_proto, msg_len_of_unknown_type_is_zero)
{
	static const uint16_t bad[] = { 0, 13, 31, SWARM_MSG_TYPE_MAX, 0xffff };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		cr_assert_eq(swarm_msg_len(bad[i]), 0u, "msg_len(%u) = %u, want 0", bad[i],
			     swarm_msg_len(bad[i]));
}

Test(ipc_proto, check_rejects_bad_magic)
{
	struct swarm_msg_close m;
	make_close(&m, 1, 7);
	m.h.magic ^= 1;
	int rc = swarm_msg_check(&m, sizeof m);
	cr_assert_eq(rc, -EBADMSG, "magic %#x: check = %d, want -EBADMSG", m.h.magic, rc);
}

Test(ipc_proto, check_rejects_short_packet)
{
	struct swarm_msg_close m;
	make_close(&m, 1, 7);
	for (size_t n = 0; n < sizeof m.h; n++) {
		int rc = swarm_msg_check(&m, n);
		cr_assert_eq(rc, -EBADMSG, "%zu-byte packet: check = %d, want -EBADMSG", n, rc);
	}
	int rc = swarm_msg_check(&m, sizeof m - 1);
	cr_assert_eq(rc, -EBADMSG, "CLOSE one byte short: check = %d, want -EBADMSG", rc);
}

Test(ipc_proto, check_rejects_long_packet)
{
	struct swarm_msg_close m[2];
	make_close(&m[0], 1, 7);
	int rc = swarm_msg_check(m, sizeof m[0] + 8);
	cr_assert_eq(rc, -EBADMSG, "CLOSE with 8 trailing bytes: check = %d, want -EBADMSG", rc);
}

Test(ipc_proto, check_rejects_wrong_length_for_type)
{
	struct swarm_msg_close m;
	make_close(&m, 1, 7);
	m.h.len = sizeof m + 8;
	int rc = swarm_msg_check(&m, sizeof m);
	cr_assert_eq(rc, -EBADMSG, "CLOSE with len %u: check = %d, want -EBADMSG", m.h.len, rc);
	/* a header that claims another type's length, with a packet of that length */
	memset(msgbuf, 0, sizeof msgbuf);
	swarm_msg_init((struct swarm_msg_hdr *)msgbuf, SWARM_MSG_HELLO,
		       swarm_msg_len(SWARM_MSG_OPEN), 1);
	rc = swarm_msg_check(msgbuf, swarm_msg_len(SWARM_MSG_OPEN));
	cr_assert_eq(rc, -EBADMSG, "HELLO of OPEN's length: check = %d, want -EBADMSG", rc);
}

Test(ipc_proto, check_rejects_unknown_type)
{
	static const uint16_t bad[] = { 0, 13, 31, SWARM_MSG_TYPE_MAX, 0xffff };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct swarm_msg_hdr h;
		swarm_msg_init(&h, bad[i], sizeof h, 1);
		int rc = swarm_msg_check(&h, sizeof h);
		cr_assert_eq(rc, -EBADMSG, "type %u: check = %d, want -EBADMSG", bad[i], rc);
	}
}

Test(ipc_proto, check_other_abi_is_eproto)
{
	struct swarm_msg_close m;
	make_close(&m, 1, 7);
	m.h.abi = SWARM_ABI_VERSION + 1;
	int rc = swarm_msg_check(&m, sizeof m);
	cr_assert_eq(rc, -EPROTO, "abi %u: check = %d, want -EPROTO (%d)", m.h.abi, rc, -EPROTO);
	m.h.abi = 0;
	rc = swarm_msg_check(&m, sizeof m);
	cr_assert_eq(rc, -EPROTO, "abi 0: check = %d, want -EPROTO", rc);
}

Test(ipc_proto, check_other_abi_with_wrong_length_is_eproto)
{
	/* A peer of another version may have other struct sizes: it still learns the ABI. */
	memset(msgbuf, 0, sizeof msgbuf);
	struct swarm_msg_hdr *h = (struct swarm_msg_hdr *)msgbuf;
	swarm_msg_init(h, SWARM_MSG_HELLO, sizeof(struct swarm_msg_hello) + 40, 1);
	h->abi = SWARM_ABI_VERSION + 1;
	int rc = swarm_msg_check(msgbuf, sizeof(struct swarm_msg_hello) + 40);
	cr_assert_eq(rc, -EPROTO, "abi %u, len %u: check = %d, want -EPROTO", h->abi, h->len, rc);
	h->type = 200; /* a type we do not know either */
	rc = swarm_msg_check(msgbuf, sizeof(struct swarm_msg_hdr));
	cr_assert_eq(rc, -EPROTO, "abi %u, unknown type, header only: check = %d, want -EPROTO",
		     h->abi, rc);
}

Test(ipc_proto, check_bad_magic_wins_over_other_abi)
{
	struct swarm_msg_close m;
	make_close(&m, 1, 7);
	m.h.abi = SWARM_ABI_VERSION + 1;
	m.h.magic = 0;
	int rc = swarm_msg_check(&m, sizeof m);
	cr_assert_eq(rc, -EBADMSG, "bad magic and abi: check = %d, want -EBADMSG", rc);
}

/* ---- send and receive ---- */

Test(ipc_proto, send_recv_without_fds)
{
	int sv[2];
	seqpacket_pair(sv);
	struct swarm_msg_close m, r;
	make_close(&m, 17, 0x1122334455667788ull);
	int rc = swarm_msg_send(sv[0], &m, sizeof m, NULL, 0);
	cr_assert_eq(rc, 0, "send = %d", rc);
	int fds[SWARM_MSG_MAX_FDS] = { -1, -1, -1, -1 }, nfds = SWARM_MSG_MAX_FDS;
	int n = swarm_msg_recv(sv[1], &r, sizeof r, fds, &nfds);
	cr_assert_eq(n, (int)sizeof m, "recv = %d, want %zu", n, sizeof m);
	cr_assert_eq(nfds, 0, "received %d fds, want 0", nfds);
	cr_assert_eq(swarm_msg_check(&r, (size_t)n), SWARM_MSG_CLOSE);
	cr_assert_eq(r.h.seq, 17u);
	cr_assert_eq(r.session_id, 0x1122334455667788ull);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, send_recv_largest_message)
{
	int sv[2];
	seqpacket_pair(sv);
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	struct swarm_msg_status_reply *m = calloc(1, sizeof *m);
	struct swarm_msg_status_reply *r = calloc(1, sizeof *r);
	cr_assert(m && r);
	swarm_msg_init(&m->h, SWARM_MSG_STATUS_REPLY, sizeof *m, 3);
	m->n_sessions = SWARM_STATUS_MAX_SESSIONS;
	m->sessions[SWARM_STATUS_MAX_SESSIONS - 1].session_id = 99;
	int rc = swarm_msg_send(sv[0], m, sizeof *m, NULL, 0);
	cr_assert_eq(rc, 0, "send of %zu bytes = %d", sizeof *m, rc);
	int n = swarm_msg_recv(sv[1], r, sizeof *r, NULL, NULL);
	cr_assert_eq(n, (int)sizeof *m, "recv = %d, want %zu", n, sizeof *m);
	cr_assert_eq(swarm_msg_check(r, (size_t)n), SWARM_MSG_STATUS_REPLY);
	cr_assert_eq(r->sessions[SWARM_STATUS_MAX_SESSIONS - 1].session_id, 99u);
	free(m);
	free(r);
	close(sv[0]);
	close(sv[1]);
}

/* Makes n pipes; keeps each read end in rd[] and sends each write end. */
static void make_pipes(int n, int rd[], int wr[])
{
	for (int i = 0; i < n; i++) {
		int p[2];
		cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe: %s", strerror(errno));
		rd[i] = p[0];
		wr[i] = p[1];
	}
}

/* The received fd refers to the same pipe: same inode, and a byte written through it comes
 * out of the read end we kept. */
static void assert_same_pipe(int got, int wr, int rd, int i)
{
	cr_assert_neq(got, wr, "fd %d: the received fd %d is the sent number itself", i, got);
	struct stat a, b;
	cr_assert_eq(fstat(got, &a), 0, "fd %d: received fd %d is not open: %s", i, got,
		     strerror(errno));
	cr_assert_eq(fstat(wr, &b), 0);
	cr_assert_eq(a.st_ino, b.st_ino, "fd %d: inode %lu, sent %lu", i, (unsigned long)a.st_ino,
		     (unsigned long)b.st_ino);
	char c = (char)('a' + i), d = 0;
	cr_assert_eq(write(got, &c, 1), 1, "fd %d: write through received fd: %s", i,
		     strerror(errno));
	cr_assert_eq(read(rd, &d, 1), 1, "fd %d: read end: %s", i, strerror(errno));
	cr_assert_eq(d, c, "fd %d: read %c, wrote %c", i, d, c);
	int fl = fcntl(got, F_GETFD);
	cr_assert(fl & FD_CLOEXEC, "fd %d: received fd flags %#x lack FD_CLOEXEC", i, fl);
}

static void send_recv_n_fds(int count)
{
	int sv[2];
	seqpacket_pair(sv);
	int rd[SWARM_MSG_MAX_FDS], wr[SWARM_MSG_MAX_FDS];
	make_pipes(count, rd, wr);
	struct swarm_msg_close m, r;
	make_close(&m, 5, 1);
	int rc = swarm_msg_send(sv[0], &m, sizeof m, wr, count);
	cr_assert_eq(rc, 0, "send with %d fds = %d", count, rc);
	int got[SWARM_MSG_MAX_FDS] = { -1, -1, -1, -1 }, ngot = SWARM_MSG_MAX_FDS;
	int n = swarm_msg_recv(sv[1], &r, sizeof r, got, &ngot);
	cr_assert_eq(n, (int)sizeof m, "recv = %d", n);
	cr_assert_eq(ngot, count, "received %d fds, sent %d", ngot, count);
	for (int i = 0; i < count; i++) {
		assert_same_pipe(got[i], wr[i], rd[i], i);
		close(got[i]);
		close(rd[i]);
		close(wr[i]);
	}
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, send_recv_one_fd) { send_recv_n_fds(1); }

Test(ipc_proto, send_recv_three_fds) { send_recv_n_fds(3); }

Test(ipc_proto, send_recv_max_fds) { send_recv_n_fds(SWARM_MSG_MAX_FDS); }

Test(ipc_proto, send_rejects_bad_fd_counts)
{
	int sv[2];
	seqpacket_pair(sv);
	struct swarm_msg_close m;
	make_close(&m, 1, 1);
	int fds[SWARM_MSG_MAX_FDS + 1] = { 0, 0, 0, 0, 0 };
	int rc = swarm_msg_send(sv[0], &m, sizeof m, fds, SWARM_MSG_MAX_FDS + 1);
	cr_assert_eq(rc, -EINVAL, "send with %d fds = %d, want -EINVAL", SWARM_MSG_MAX_FDS + 1, rc);
	rc = swarm_msg_send(sv[0], &m, sizeof m, fds, -1);
	cr_assert_eq(rc, -EINVAL, "send with -1 fds = %d, want -EINVAL", rc);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, recv_with_fewer_slots_closes_the_surplus)
{
	int sv[2];
	seqpacket_pair(sv);
	int rd[3], wr[3];
	make_pipes(3, rd, wr);
	struct swarm_msg_close m, r;
	make_close(&m, 1, 1);
	int before = count_open_fds();
	cr_assert_eq(swarm_msg_send(sv[0], &m, sizeof m, wr, 3), 0);
	int got[1] = { -1 }, ngot = 1;
	int n = swarm_msg_recv(sv[1], &r, sizeof r, got, &ngot);
	cr_assert_eq(n, (int)sizeof m, "recv = %d", n);
	cr_assert_eq(ngot, 1, "received %d fds into 1 slot", ngot);
	assert_same_pipe(got[0], wr[0], rd[0], 0);
	int after = count_open_fds();
	cr_assert_eq(after, before + 1, "%d fds open before, %d after taking 1 of 3 (leak of %d)",
		     before, after, after - before - 1);
	close(got[0]);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, recv_without_fd_slots_closes_them_all)
{
	int sv[2];
	seqpacket_pair(sv);
	int rd[2], wr[2];
	make_pipes(2, rd, wr);
	struct swarm_msg_close m, r;
	make_close(&m, 1, 1);
	int before = count_open_fds();
	cr_assert_eq(swarm_msg_send(sv[0], &m, sizeof m, wr, 2), 0);
	int n = swarm_msg_recv(sv[1], &r, sizeof r, NULL, NULL);
	cr_assert_eq(n, (int)sizeof m, "recv = %d", n);
	int after = count_open_fds();
	cr_assert_eq(after, before, "%d fds open before, %d after a recv that takes none", before,
		     after);
	int ngot = 0, got[1];
	cr_assert_eq(swarm_msg_send(sv[0], &m, sizeof m, wr, 2), 0);
	n = swarm_msg_recv(sv[1], &r, sizeof r, got, &ngot);
	cr_assert_eq(n, (int)sizeof m);
	cr_assert_eq(ngot, 0, "received %d fds into 0 slots", ngot);
	cr_assert_eq(count_open_fds(), before, "leak with *nfds = 0");
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, recv_oversized_packet_is_emsgsize_and_closes_fds)
{
	int sv[2];
	seqpacket_pair(sv);
	int rd[2], wr[2];
	make_pipes(2, rd, wr);
	struct swarm_msg_reply m;
	swarm_msg_init(&m.h, SWARM_MSG_HELLO_REPLY, sizeof m, 9);
	int before = count_open_fds();
	cr_assert_eq(swarm_msg_send(sv[0], &m, sizeof m, wr, 2), 0);
	struct swarm_msg_close small;
	int got[SWARM_MSG_MAX_FDS] = { -1, -1, -1, -1 }, ngot = SWARM_MSG_MAX_FDS;
	int n = swarm_msg_recv(sv[1], &small, sizeof small, got, &ngot);
	cr_assert_eq(n, -EMSGSIZE, "recv of %zu bytes into %zu = %d, want -EMSGSIZE (%d)", sizeof m,
		     sizeof small, n, -EMSGSIZE);
	cr_assert_eq(ngot, 0, "an oversized packet handed out %d fds", ngot);
	int after = count_open_fds();
	cr_assert_eq(after, before, "%d fds open before, %d after the oversized packet", before,
		     after);
	/* the packet is gone as a whole: the next one arrives intact */
	struct swarm_msg_close c, r;
	make_close(&c, 10, 2);
	cr_assert_eq(swarm_msg_send(sv[0], &c, sizeof c, NULL, 0), 0);
	n = swarm_msg_recv(sv[1], &r, sizeof r, NULL, NULL);
	cr_assert_eq(n, (int)sizeof c, "next recv = %d", n);
	cr_assert_eq(r.h.seq, 10u, "next packet has seq %u, want 10", r.h.seq);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, recv_more_fds_than_control_buffer_is_emsgsize_and_closes_them)
{
	/* A hostile peer sends more fds than the protocol allows. */
	int sv[2];
	seqpacket_pair(sv);
	enum {
		N = SWARM_MSG_MAX_FDS + 4
	};
	int rd[N], wr[N];
	make_pipes(N, rd, wr);
	struct swarm_msg_close m, r;
	make_close(&m, 1, 1);
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * N)];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * N);
	memcpy(CMSG_DATA(c), wr, sizeof wr);
	int before = count_open_fds();
	cr_assert_eq(sendmsg(sv[0], &mh, 0), (ssize_t)sizeof m, "sendmsg: %s", strerror(errno));
	int got[SWARM_MSG_MAX_FDS], ngot = SWARM_MSG_MAX_FDS;
	int n = swarm_msg_recv(sv[1], &r, sizeof r, got, &ngot);
	cr_assert_eq(n, -EMSGSIZE, "recv with %d fds = %d, want -EMSGSIZE", N, n);
	cr_assert_eq(ngot, 0, "handed out %d fds", ngot);
	int after = count_open_fds();
	cr_assert_eq(after, before, "%d fds open before, %d after %d fds were truncated", before,
		     after, N);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_proto, recv_returns_zero_when_the_peer_closed)
{
	int sv[2];
	seqpacket_pair(sv);
	close(sv[0]);
	struct swarm_msg_close r;
	int nfds = SWARM_MSG_MAX_FDS, fds[SWARM_MSG_MAX_FDS];
	int n = swarm_msg_recv(sv[1], &r, sizeof r, fds, &nfds);
	cr_assert_eq(n, 0, "recv after the peer closed = %d, want 0", n);
	cr_assert_eq(nfds, 0, "recv after close reported %d fds", nfds);
	close(sv[1]);
}

Test(ipc_proto, recv_delivers_queued_packet_before_end_of_stream)
{
	int sv[2];
	seqpacket_pair(sv);
	struct swarm_msg_close m, r;
	make_close(&m, 4, 4);
	cr_assert_eq(swarm_msg_send(sv[0], &m, sizeof m, NULL, 0), 0);
	close(sv[0]);
	int n = swarm_msg_recv(sv[1], &r, sizeof r, NULL, NULL);
	cr_assert_eq(n, (int)sizeof m, "first recv = %d", n);
	n = swarm_msg_recv(sv[1], &r, sizeof r, NULL, NULL);
	cr_assert_eq(n, 0, "second recv = %d, want 0", n);
	close(sv[1]);
}

Test(ipc_proto, send_to_a_closed_peer_is_epipe_without_sigpipe)
{
	int sv[2];
	seqpacket_pair(sv);
	close(sv[1]);
	struct swarm_msg_close m;
	make_close(&m, 1, 1);
	int rc = swarm_msg_send(sv[0], &m, sizeof m, NULL, 0);
	cr_assert_eq(rc, -EPIPE, "send to a closed peer = %d, want -EPIPE", rc);
	close(sv[0]);
}

Test(ipc_proto, recv_on_a_bad_socket_is_negative_errno)
{
	struct swarm_msg_close r;
	int n = swarm_msg_recv(-1, &r, sizeof r, NULL, NULL);
	cr_assert_eq(n, -EBADF, "recv(-1) = %d, want -EBADF", n);
}

/* ---- swarm_copy_str ---- */

Test(ipc_proto, copy_str_truncates_and_terminates)
{
	char dst[8];
	memset(dst, 'x', sizeof dst);
	swarm_copy_str(dst, sizeof dst, "abcdefghijk");
	cr_assert_eq(dst[7], 0, "last byte %#x, want NUL", dst[7]);
	cr_assert_str_eq(dst, "abcdefg");
}

Test(ipc_proto, copy_str_exact_fit_is_terminated)
{
	char dst[4];
	memset(dst, 'x', sizeof dst);
	swarm_copy_str(dst, sizeof dst, "abcd");
	cr_assert_str_eq(dst, "abc");
	swarm_copy_str(dst, sizeof dst, "abc");
	cr_assert_str_eq(dst, "abc");
}

Test(ipc_proto, copy_str_zero_fills_the_rest)
{
	char dst[16];
	memset(dst, 'x', sizeof dst);
	swarm_copy_str(dst, sizeof dst, "hi");
	cr_assert_str_eq(dst, "hi");
	for (size_t i = 2; i < sizeof dst; i++)
		cr_assert_eq(dst[i], 0, "byte %zu = %#x, want 0", i, dst[i]);
}

Test(ipc_proto, copy_str_null_source_gives_empty)
{
	char dst[8];
	memset(dst, 'x', sizeof dst);
	swarm_copy_str(dst, sizeof dst, NULL);
	for (size_t i = 0; i < sizeof dst; i++)
		cr_assert_eq(dst[i], 0, "byte %zu = %#x, want 0", i, dst[i]);
}

Test(ipc_proto, copy_str_zero_length_writes_nothing)
{
	char dst[2] = { 'x', 'y' };
	swarm_copy_str(dst, 0, "abc");
	cr_assert_eq(dst[0], 'x', "a zero-length copy wrote %#x", dst[0]);
	swarm_copy_str(dst, 1, "abc");
	cr_assert_eq(dst[0], 0, "a one-byte copy left %#x, want NUL", dst[0]);
	cr_assert_eq(dst[1], 'y', "a one-byte copy wrote past its field");
}

/* A WEIGHTS_SHARE with its handle's fd arrives whole: the fields, and an fd of the same open
 * file (a pipe stands in for the GPU allocation's handle). */
Test(ipc_proto, weights_share_round_trips_with_its_fd)
{
	int sv[2], p[2];
	seqpacket_pair(sv);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	struct swarm_msg_weights m, r;
	swarm_msg_init(&m.h, SWARM_MSG_WEIGHTS_SHARE, sizeof m, 9);
	m.gpu = 3;
	swarm_copy_str(m.sha, sizeof m.sha, "0123456789abcdef0123456789abcdef"
					    "0123456789abcdef0123456789abcdef");
	m.bytes = 3ull << 30;
	m.layout = 0xfeedfacecafebeefull;
	cr_assert_eq(swarm_msg_send(sv[0], &m, sizeof m, &p[1], 1), 0);
	int got = -1, ngot = 1;
	memset(&r, 0, sizeof r);
	int n = swarm_msg_recv(sv[1], &r, sizeof r, &got, &ngot);
	cr_assert_eq(n, (int)sizeof m, "recv = %d", n);
	cr_assert_eq(swarm_msg_check(&r, (size_t)n), SWARM_MSG_WEIGHTS_SHARE);
	cr_assert_eq(ngot, 1, "received %d fds", ngot);
	cr_expect_eq(r.gpu, 3);
	cr_expect_str_eq(r.sha, m.sha);
	cr_expect_eq(r.bytes, m.bytes);
	cr_expect_eq(r.layout, m.layout, "layout %#llx", (unsigned long long)r.layout);
	assert_same_pipe(got, p[1], p[0], 0);
	close(got);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}
