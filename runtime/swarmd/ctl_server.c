/* ctl_server.c: swarmd's side of the client protocol (ipc/proto.h). The listening socket and
 * who may use it (the socket's mode, then SO_PEERCRED against --allow-user/--allow-group),
 * the limits on connections (--max-connections, per user, the hello deadline, a reserve
 * descriptor for EMFILE), and one handler per client message, found through a table.
 *
 * A client is never trusted: every message is checked (swarm_msg_check) before its handler
 * sees it, a handler checks its fields before any arithmetic, and a client that breaks the
 * protocol is closed. One client's flood is served at most MSGS_PER_PASS messages a pass, so
 * that the others are served between (swarmd_again).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/swarmd/counters.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define MSGS_PER_PASS 64 /* a client's messages handled before the others get a turn */
#define ACCEPTS_PER_PASS 256
#define CLIENT_OUTBOX_MAX 32 /* replies waiting for one client: libswarm waits for each */

static struct {
	struct watch listen_w;
	int listen_fd;
	struct conn *conns;
	uint32_t n_conns;
	int reserve_fd;    /* kept open to be given up when accept meets EMFILE */
	int accept_paused; /* no descriptor left even for that: the listener is not watched */
	uint64_t accept_refused_log_ns;
} srv = { .listen_fd = -1, .reserve_fd = -1 };

/* A reply-shaped message (swarm_msg_reply) of type. */
static void make_reply(struct swarm_msg_reply *r, uint16_t type, uint32_t seq, int status,
		       const char *text)
{
	swarm_msg_init(&r->h, type, sizeof *r, seq);
	r->status = status;
	r->server_abi = SWARM_ABI_VERSION;
	swarm_copy_str(r->text, sizeof r->text, text);
}

/* Sends a message to client c through its outbox: what its socket does not take now waits,
 * in order, and goes when it does (ctl_client_writable). A client that lets CLIENT_OUTBOX_MAX
 * replies wait has stopped reading: it is closed at its next turn, its replies dropped. */
static void conn_send(struct conn *c, const void *msg, size_t len, const int *fds, int nfds)
{
	if (c->stalled)
		return;
	int rc = swarm_outbox_pending(&c->out) >= CLIENT_OUTBOX_MAX ?
			 -ENOBUFS :
			 swarm_outbox_send(&c->out, c->fd, msg, len, fds, nfds);
	if (rc == -ENOBUFS) {
		swarm_log(SWARM_LOG_WARN,
			  "event=client_unresponsive client_pid=%d waiting=%zu reason=\"it stopped "
			  "reading its replies: closed\"",
			  c->pid, swarm_outbox_pending(&c->out));
		c->stalled = 1;
		swarmd_again(&c->w); /* closed at its turn: the caller may still hold c */
	} else if (rc == 0 && swarm_outbox_pending(&c->out) && !c->watch_out) {
		c->watch_out = swarmd_watch_out(c->fd, &c->w, 1) == 0;
	}
}

void ctl_send_reply(struct conn *c, uint16_t type, uint32_t seq, int status, const char *text)
{
	struct swarm_msg_reply r;
	make_reply(&r, type, seq, status, text);
	conn_send(c, &r, sizeof r, NULL, 0);
}

void ctl_client_writable(struct conn *c)
{
	if (c->stalled)
		return;
	int rc = swarm_outbox_flush(&c->out, c->fd);
	if (rc <= 0 && c->watch_out) {
		swarmd_watch_out(c->fd, &c->w, 0);
		c->watch_out = 0;
	}
	/* rc < 0: the client is gone; its socket's end says so to ctl_handle_client */
}

void ctl_send_open_reply(struct conn *c, uint32_t seq, int status, struct session *s,
			 const char *text)
{
	struct swarm_msg_open_reply r;
	swarm_msg_init(&r.h, SWARM_MSG_OPEN_REPLY, sizeof r, seq);
	r.status = status;
	swarm_copy_str(r.text, sizeof r.text, text);
	counters_open(status); /* every open's answer passes here, once */
	int fds[3];
	int nfds = 0;
	if (s && status == 0) {
		r.session_id = s->id;
		r.segment_bytes = s->bytes;
		fds[0] = s->memfd;
		fds[1] = s->sq_efd;
		fds[2] = s->cq_efd;
		nfds = 3;
	}
	conn_send(c, &r, sizeof r, fds, nfds);
}

static int peer_in_groups(int fd, const struct ucred *cred, const gid_t *gids, int n)
{
	for (int i = 0; i < n; i++)
		if (cred->gid == gids[i])
			return 1;
	if (!n)
		return 0;
	gid_t groups[256];
	socklen_t len = sizeof groups;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t g = 0; g < len / sizeof(gid_t); g++)
			for (int i = 0; i < n; i++)
				if (groups[g] == gids[i])
					return 1;
	return 0;
}

static int allowed(int fd, struct ucred *cred)
{
	socklen_t len = sizeof *cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return 0;
	for (int i = 0; i < cfg.n_allow_uid; i++)
		if (cred->uid == cfg.allow_uid[i])
			return 1;
	return peer_in_groups(fd, cred, cfg.allow_gid, cfg.n_allow_gid);
}

/* Refuses a connection just accepted: a HELLO_REPLY with status and why (the client's
 * first read), then closed. Logged at most once a second. */
static void refuse_conn(int fd, int status, const char *why)
{
	struct swarm_msg_reply r;
	make_reply(&r, SWARM_MSG_HELLO_REPLY, 0, status, why);
	swarm_msg_send(fd, &r, sizeof r, NULL, 0); /* closed next: a reply it cannot take is lost */
	close(fd);
	uint64_t now = swarm_now_ns();
	if (now - srv.accept_refused_log_ns >= 1000000000ull) {
		srv.accept_refused_log_ns = now;
		swarm_log(SWARM_LOG_WARN, "event=connection_refused reason=\"%s\"", why);
	}
}

/* Out of descriptors (EMFILE, ENFILE; accept says so whether or not a connection waits):
 * the waiting connection is taken with the reserve descriptor and closed at once, so that the
 * listener does not stay readable and the loop spin on it. Without even that, the listener is
 * left unwatched until a client goes. Returns 1 when a connection was refused (another may
 * wait), 0 when none waited or none can be taken. */
static int accept_out_of_fds(void)
{
	int fd = -1;
	if (srv.reserve_fd >= 0) {
		close(srv.reserve_fd);
		srv.reserve_fd = -1;
		fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			refuse_conn(fd, -EMFILE,
				    "swarmd is out of file descriptors; try again later");
		srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (srv.reserve_fd < 0 && !srv.accept_paused) {
		swarmd_unwatch(srv.listen_fd, &srv.listen_w);
		srv.accept_paused = 1;
		swarm_log(SWARM_LOG_WARN, "event=accept_paused reason=\"out of file descriptors\"");
	}
	return fd >= 0 && !srv.accept_paused;
}

/* Whether a client of cred may connect now, within --max-connections and per user. Returns
 * 0, or -EUSERS with why. */
static int conn_limits(const struct ucred *cred, int ok, char *why, size_t len)
{
	uint32_t users = 0;
	for (const struct conn *o = srv.conns; o; o = o->next)
		users += o->uid == cred->uid;
	if (cfg.max_conns && srv.n_conns >= cfg.max_conns) {
		snprintf(why, len, "swarmd serves at most %u connections (--max-connections)",
			 cfg.max_conns);
		counters_refusal(SWARMD_LIM_CONNECTIONS);
		return -EUSERS;
	}
	if (ok && cfg.max_conns_per_user && users >= cfg.max_conns_per_user) {
		snprintf(why, len,
			 "user %u holds %u connections, the limit (--max-connections-per-user)",
			 (unsigned)cred->uid, users);
		counters_refusal(SWARMD_LIM_CONNECTIONS_PER_USER);
		return -EUSERS;
	}
	return 0;
}

struct conn *ctl_adopt(int fd, const struct ucred *cred, int ok)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->w.kind = W_CONN;
	c->fd = fd;
	c->numa_node = -1;
	c->refused = !ok;
	c->admin = ok && (cred->uid == 0 || cred->uid == getuid() ||
			  peer_in_groups(fd, cred, cfg.admin_gid, cfg.n_admin_gid));
	c->pid = cred->pid;
	c->uid = cred->uid;
	c->accepted_ns = swarm_now_ns();
	c->next = srv.conns;
	srv.conns = c;
	srv.n_conns++;
	return c;
}

void ctl_handle_listen(void)
{
	for (int taken = 0; !srv.accept_paused; taken++) {
		if (taken == ACCEPTS_PER_PASS) {
			swarmd_again(&srv.listen_w); /* the clients come back to a turn */
			return;
		}
		int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			int e = errno;
			if (e == EMFILE || e == ENFILE) {
				if (!accept_out_of_fds())
					return; /* none waits, or the listener is paused */
			} else if (e != EINTR && e != ECONNABORTED) {
				return; /* EAGAIN: none waits */
			}
			continue;
		}
		struct ucred cred = { 0 };
		int ok = allowed(fd, &cred);
		char why[SWARM_MSG_TEXT_MAX];
		int rc = conn_limits(&cred, ok, why, sizeof why);
		if (rc) {
			refuse_conn(fd, rc, why);
			continue;
		}
		struct conn *c = ctl_adopt(fd, &cred, ok);
		if (!c) {
			close(fd);
			continue;
		}
		if (swarmd_watch(fd, &c->w))
			ctl_client_gone(c);
	}
}

/* Connections that have not said hello within cfg.hello_timeout_ns are closed: a silent
 * connection must not hold a place for ever. */
void ctl_hello_deadlines(uint64_t now)
{
	for (struct conn *c = srv.conns, *next; c; c = next) {
		next = c->next;
		if (c->hello_done || !cfg.hello_timeout_ns ||
		    now - c->accepted_ns < cfg.hello_timeout_ns)
			continue;
		swarm_log(SWARM_LOG_WARN, "event=hello_timeout client=%d uid=%u waited_ms=%.0f",
			  c->pid, (unsigned)c->uid, (double)(now - c->accepted_ns) / 1e6);
		counters_refusal(SWARMD_LIM_HELLO_TIMEOUT);
		ctl_client_gone(c);
	}
}

/* c goes: its socket is closed, its pending opens dropped and its sessions let go. */
void ctl_client_gone(struct conn *c)
{
	if (c->watch_out)
		swarmd_watch_out(c->fd, &c->w, 0);
	swarm_outbox_clear(&c->out);
	swarmd_unwatch(c->fd, &c->w);
	close(c->fd);
	model_ops_client_gone(c);
	for (struct conn **p = &srv.conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			srv.n_conns--;
			break;
		}
	/* a descriptor came back: the reserve first, then the listener */
	if (srv.reserve_fd < 0)
		srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (srv.accept_paused && srv.reserve_fd >= 0 &&
	    swarmd_watch(srv.listen_fd, &srv.listen_w) == 0) {
		srv.accept_paused = 0;
		swarm_log(SWARM_LOG_INFO, "event=accept_resumed");
	}
	sessions_client_gone(c);
	free(c);
}

void ctl_close_all(void)
{
	while (srv.conns) {
		struct conn *c = srv.conns;
		srv.conns = c->next;
		swarm_outbox_clear(&c->out);
		close(c->fd);
		free(c);
	}
	if (srv.listen_fd >= 0) {
		close(srv.listen_fd);
		unlink(cfg.socket_path);
	}
	if (srv.reserve_fd >= 0)
		close(srv.reserve_fd);
}

/* ---- one handler per client message ------------------------------------------------------------
 * Each gets a message swarm_msg_check accepted, of its type and at least its size, and returns
 * 0, or -1 when it closed the client (c is freed). */

union client_msg {
	struct swarm_msg_hdr h;
	struct swarm_msg_hello hello;
	struct swarm_msg_open open;
	struct swarm_msg_close close;
	struct swarm_msg_device device;
	struct swarm_msg_model model;
	char raw[1024];
};

static int on_hello(struct conn *c, const union client_msg *m)
{
	char text[SWARM_MSG_TEXT_MAX];
	if (c->refused) {
		snprintf(text, sizeof text,
			 "user %u is not allowed to use this swarmd; start it with --allow-user or "
			 "--allow-group",
			 (unsigned)c->uid);
		ctl_send_reply(c, SWARM_MSG_HELLO_REPLY, m->h.seq, -EACCES, text);
		swarm_log(SWARM_LOG_WARN,
			  "event=client_refused client_pid=%d uid=%u reason=peercred", c->pid,
			  (unsigned)c->uid);
		ctl_client_gone(c);
		return -1;
	}
	c->hello_done = 1;
	c->numa_node = swarm_topology_cpu_numa(d.topo, m->hello.cpu);
	ctl_send_reply(c, SWARM_MSG_HELLO_REPLY, m->h.seq, 0, "");
	return 0;
}

static int on_open(struct conn *c, const union client_msg *m)
{
	session_open(c, &m->open, 1);
	return 0;
}

static int on_close(struct conn *c, const union client_msg *m)
{
	session_close(c, &m->close);
	return 0;
}

static int on_device(struct conn *c, const union client_msg *m)
{
	/* it changes service for every client: admins only */
	char text[SWARM_MSG_TEXT_MAX];
	int status = -EPERM;
	if (c->admin) {
		struct swarm_msg_device dm = m->device;
		status = status_device_control(&dm, text, sizeof text);
	} else {
		snprintf(text, sizeof text,
			 "user %u may not take devices out of service or back: that needs root, "
			 "swarmd's own user or a member of --admin-group",
			 (unsigned)c->uid);
		swarm_log(SWARM_LOG_WARN, "event=admin_refused client=%d uid=%u action=device",
			  c->pid, (unsigned)c->uid);
	}
	ctl_send_reply(c, SWARM_MSG_DEVICE_REPLY, m->h.seq, status, text);
	return 0;
}

static int on_model(struct conn *c, const union client_msg *m)
{
	/* it changes what every client's opens find resident: admins only */
	if (c->admin) {
		model_ops_request(c, &m->model);
		return 0;
	}
	char text[SWARM_MSG_TEXT_MAX];
	snprintf(text, sizeof text,
		 "user %u may not load or unload models: that needs root, swarmd's own user or a "
		 "member of --admin-group",
		 (unsigned)c->uid);
	swarm_log(SWARM_LOG_WARN, "event=admin_refused client=%d uid=%u action=model", c->pid,
		  (unsigned)c->uid);
	ctl_send_reply(c, SWARM_MSG_MODEL_REPLY, m->h.seq, -EPERM, text);
	return 0;
}

static int on_status(struct conn *c, const union client_msg *m)
{
	/* One buffer for every reply (about 75 KB): swarmd is one thread, and the outbox copies
	 * a reply the socket does not take at once. A flood of STATUS then allocates only what
	 * waits, which keeps the flood from growing swarmd's memory (tests/e2e/test_hostile.c). */
	static struct swarm_msg_status_reply r;
	memset(&r, 0, sizeof r);
	swarm_msg_init(&r.h, SWARM_MSG_STATUS_REPLY, sizeof r, m->h.seq);
	status_fill(&r);
	conn_send(c, &r, sizeof r, NULL, 0);
	return 0;
}

static int (*const handlers[])(struct conn *, const union client_msg *) = {
	[SWARM_MSG_HELLO] = on_hello,   [SWARM_MSG_OPEN] = on_open,
	[SWARM_MSG_CLOSE] = on_close,   [SWARM_MSG_DEVICE] = on_device,
	[SWARM_MSG_STATUS] = on_status, [SWARM_MSG_MODEL] = on_model,
};

int ctl_client_message(struct conn *c, const void *msg, int n)
{
	union client_msg m;
	memset(&m, 0, sizeof m);
	if (n > 0)
		memcpy(&m, msg, (size_t)n < sizeof m ? (size_t)n : sizeof m);
	int type = n < 0 || (size_t)n > sizeof m ? -EBADMSG : swarm_msg_check(&m, (size_t)n);
	if (type == -EPROTO) {
		char text[SWARM_MSG_TEXT_MAX];
		snprintf(text, sizeof text,
			 "ABI mismatch: the client speaks swarm ABI %u, this swarmd speaks ABI %u; "
			 "rebuild the client against this swarm's libswarm",
			 (unsigned)m.h.abi, SWARM_ABI_VERSION);
		swarm_log(SWARM_LOG_WARN, "event=client_refused client_pid=%d uid=%u reason=\"%s\"",
			  c->pid, (unsigned)c->uid, text);
		ctl_send_reply(c, SWARM_MSG_HELLO_REPLY, m.h.seq, -EPROTO, text);
		ctl_client_gone(c);
		return -1;
	}
	int known = type > 0 && (size_t)type < sizeof handlers / sizeof handlers[0] &&
		    handlers[type];
	if (!known || (!c->hello_done && type != SWARM_MSG_HELLO)) {
		swarm_log(SWARM_LOG_WARN, "event=client_bad_message client_pid=%d uid=%u result=%d",
			  c->pid, (unsigned)c->uid, type);
		ctl_client_gone(c);
		return -1;
	}
	return handlers[type](c, &m);
}

void ctl_handle_client(struct conn *c)
{
	if (c->stalled) {
		ctl_client_gone(c);
		return;
	}
	for (int k = 0; k < MSGS_PER_PASS; k++) {
		union client_msg m;
		int nfds = 0;
		int n = swarm_msg_recv(c->fd, &m, sizeof m, NULL, &nfds);
		if (n == -EAGAIN)
			return;
		if (n <= 0 && n != -EMSGSIZE) {
			ctl_client_gone(c);
			return;
		}
		if (ctl_client_message(c, &m, n))
			return;
	}
	swarmd_again(&c->w); /* more may wait: after the others' turn */
}

/* ---- the listening socket ------------------------------------------------------------------ */

static int make_socket_dir(const char *path)
{
	char dir[sizeof cfg.socket_path];
	swarm_copy_str(dir, sizeof dir, path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	struct stat st;
	if (stat(dir, &st) == 0)
		return 0;
	/* Only the default location is created (private to the user, but passable when
	 * --allow-user/--allow-group open the socket to others); a given path's directory must
	 * exist, so that a typo is not silently created. */
	const mode_t mode = cfg.n_allow_uid > 1 || cfg.n_allow_gid ? 0711 : 0700;
	return mkdir(dir, mode) < 0 && errno != EEXIST ? -errno : 0;
}

static int listen_socket(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(cfg.socket_path) >= sizeof addr.sun_path)
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, cfg.socket_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file left by a swarmd that died is removed; a live one is not. */
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0) {
		close(probe);
		close(fd);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	unlink(cfg.socket_path);
	/* Who may connect at all is the file's mode; who is served is SO_PEERCRED's check at
	 * accept. --allow-user names users the mode cannot name: the socket is then open to
	 * all (0666) and the check refuses the others. --allow-group alone: the socket's group
	 * is the first one named (0660), where swarmd may give it that group. */
	mode_t mode = 0660;
	gid_t group = (gid_t)-1;
	if (cfg.n_allow_uid > 1)
		mode = 0666;
	else if (cfg.n_allow_gid)
		group = cfg.allow_gid[0];
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (group != (gid_t)-1 && chown(cfg.socket_path, (uid_t)-1, group) < 0) {
		swarm_log(SWARM_LOG_WARN,
			  "event=socket_group_failed group=%u error=\"%s\" result=\"mode 0666: "
			  "the credential check alone decides\"",
			  (unsigned)group, strerror(errno));
		mode = 0666;
	}
	if (chmod(cfg.socket_path, mode) < 0 || listen(fd, 128) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	swarm_log(SWARM_LOG_INFO, "event=socket path=%s mode=%04o allow_users=%d allow_groups=%d",
		  cfg.socket_path, (unsigned)mode, cfg.n_allow_uid - 1, cfg.n_allow_gid);
	return fd;
}

int ctl_listen(void)
{
	if (!cfg.socket_path[0]) {
		const char *env = getenv("SWARM_SOCKET");
		if (env && *env)
			swarm_copy_str(cfg.socket_path, sizeof cfg.socket_path, env);
		else if (swarm_default_socket(cfg.socket_path, sizeof cfg.socket_path) == 0)
			make_socket_dir(cfg.socket_path);
	}
	/* one descriptor in reserve for when accept meets EMFILE */
	srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int fd = listen_socket();
	if (fd < 0)
		return fd;
	srv.listen_fd = fd;
	srv.listen_w.kind = W_LISTEN;
	return swarmd_watch(fd, &srv.listen_w);
}
