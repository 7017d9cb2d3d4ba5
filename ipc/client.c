/* client.c: libswarm's control path (rare): connect and hello, open and close, over the
 * SOCK_SEQPACKET control socket, each call bounded by the connection's timeout; and what a
 * session says of itself (its tensors, where it is served). The data path, per request, is
 * session.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "ipc/proto.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "ipc/seqlock.h"
#include "swarm/swarm.h"

#include "ipc/client.h"

static __thread char last_error[2 * SWARM_MSG_TEXT_MAX];

SWARM_API const char *swarm_last_error(void) { return last_error; }

static void set_error(struct swarm_client *c, const char *fmt, const char *a)
{
	snprintf(last_error, sizeof last_error, fmt, a);
	if (c)
		swarm_copy_str(c->error, sizeof c->error, last_error);
}

/* One request and its reply on the control socket. fds (may be NULL) receives up to *nfds
 * descriptors. Returns the reply's type or -errno. */
/* A call ran out of c->timeout_ms: the connection is done for control calls (a late reply
 * would answer the next one). Its sessions' data plane goes on. */
static int timed_out(struct swarm_client *c, const char *doing)
{
	char text[160];
	snprintf(text, sizeof text,
		 "swarmd did not %s within %lld ms; this connection takes no more control calls "
		 "(reconnect)",
		 doing, (long long)c->timeout_ms);
	set_error(c, "%s", text);
	c->timed_out = 1;
	return -ETIMEDOUT;
}

/* One request and its reply on the control socket, each within c->timeout_ms. fds (may be
 * NULL) receives up to *nfds descriptors. Returns the reply's type or -errno (-ETIMEDOUT when
 * swarmd did not take the request or answer it in time; -ENOTCONN on a connection that
 * timed out before). */
static int call(struct swarm_client *c, void *msg, void *reply, size_t reply_len, int *fds,
		int *nfds)
{
	if (c->timed_out) {
		if (nfds)
			*nfds = 0;
		set_error(c, "%s",
			  "an earlier control call on this connection timed out; reconnect");
		return -ENOTCONN;
	}
	struct swarm_msg_hdr *h = msg;
	h->seq = ++c->seq;
	int err = swarm_msg_send(c->sock, msg, h->len, NULL, 0);
	if (err == -EAGAIN || err == -EWOULDBLOCK)
		return timed_out(c, "take the request");
	/* swarmd may have answered and closed before the request went (a connection refused
	 * at accept): its answer is still there to read */
	if (err && err != -EPIPE && err != -ECONNRESET)
		return err;
	int got_fds = nfds ? *nfds : 0;
	int n = swarm_msg_recv(c->sock, reply, reply_len, fds, &got_fds);
	/* a peer that closed with our request unread makes the first read ECONNRESET, with its
	 * answer still queued behind */
	if (n == -ECONNRESET) {
		got_fds = nfds ? *nfds : 0;
		n = swarm_msg_recv(c->sock, reply, reply_len, fds, &got_fds);
	}
	if (nfds)
		*nfds = got_fds;
	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return err ? -ENOTCONN : timed_out(c, "answer");
	if (n == 0)
		return -ENOTCONN;
	if (n < 0)
		return n == -ECONNRESET ? -ENOTCONN : n;
	return swarm_msg_check(reply, (size_t)n);
}

SWARM_API int swarm_connect(const char *socket_path, swarm_client **out)
{
	return swarm_connect_timeout(socket_path, swarm_timeout_ms_default(), out);
}

SWARM_API int swarm_client_set_timeout(swarm_client *c, int64_t timeout_ms)
{
	if (!c || timeout_ms < 0)
		return -EINVAL;
	int err = swarm_sock_set_timeout(c->sock, timeout_ms);
	if (!err)
		c->timeout_ms = timeout_ms;
	return err;
}

/* The socket's path: the one given, else $SWARM_SOCKET, else the default (into def). */
static int socket_address(const char *path, struct sockaddr_un *addr)
{
	char def[sizeof addr->sun_path];
	if (!path || !*path)
		path = getenv("SWARM_SOCKET");
	if (!path || !*path) {
		int err = swarm_default_socket(def, sizeof def);
		if (err)
			return err;
		path = def;
	}
	*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr->sun_path)
		return -ENAMETOOLONG;
	strcpy(addr->sun_path, path);
	return 0;
}

/* Connects c's socket to addr. Returns 0 or -errno, naming a refusal by the file system. */
static int connect_socket(struct swarm_client *c, const struct sockaddr_un *addr)
{
	if (connect(c->sock, (const struct sockaddr *)addr, sizeof *addr) == 0)
		return 0;
	int err = -errno;
	if (err == -ENOENT)
		err = -ECONNREFUSED;
	if (err == -EACCES || err == -EPERM) { /* the file system said no, not swarmd */
		err = -EACCES;
		set_error(c, "%s",
			  "the socket's file permissions keep this user out (swarmd's "
			  "--allow-user and --allow-group open it to others)");
	}
	if (err == -EAGAIN) /* its backlog stayed full for the whole limit */
		err = timed_out(c, "accept the connection");
	return err;
}

/* The hello: both sides speak one ABI, and swarmd accepts this client. 0 or -errno. */
static int say_hello(struct swarm_client *c)
{
	struct swarm_msg_hello hello;
	swarm_msg_init(&hello.h, SWARM_MSG_HELLO, sizeof hello, 0);
	hello.pid = getpid();
	hello.cpu = sched_getcpu();
	hello.numa_node = -1; /* swarmd maps the cpu to its node */
	struct swarm_msg_reply reply;
	int type = call(c, &hello, &reply, sizeof reply, NULL, NULL);
	if (type == -EPROTO) {
		snprintf(last_error, sizeof last_error,
			 "ABI mismatch: this client speaks swarm ABI %u, swarmd speaks ABI %u; "
			 "rebuild the client against the installed libswarm",
			 SWARM_ABI_VERSION, (unsigned)reply.h.abi);
		return -EPROTO;
	}
	if (type != SWARM_MSG_HELLO_REPLY)
		return type < 0 ? type : -EBADMSG;
	if (reply.status) {
		reply.text[sizeof reply.text - 1] = 0;
		set_error(c, "%s", reply.text);
		return reply.status;
	}
	return 0;
}

SWARM_API int swarm_connect_timeout(const char *socket_path, int64_t timeout_ms, swarm_client **out)
{
	if (!out || timeout_ms < 0)
		return -EINVAL;
	struct sockaddr_un addr;
	int err = socket_address(socket_path, &addr);
	if (err)
		return err;
	struct swarm_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		err = -errno;
		goto err_free;
	}
	c->timeout_ms = timeout_ms;
	if ((err = swarm_sock_set_timeout(c->sock, timeout_ms)) ||
	    (err = connect_socket(c, &addr)) || (err = say_hello(c)))
		goto err_close;
	*out = c;
	return 0;

err_close:
	if (err != -EPROTO) {
		/* Truncation only shortens a message. */
		int n = snprintf(last_error, sizeof last_error,
				 "cannot connect to swarmd at %s: %s%s%s", addr.sun_path,
				 swarm_strerror(err), c->error[0] ? ": " : "", c->error);
		(void)n;
	}
	close(c->sock);
err_free:
	free(c);
	return err;
}

SWARM_API const char *swarm_client_error(const swarm_client *c) { return c ? c->error : ""; }

SWARM_API void swarm_disconnect(swarm_client *c)
{
	if (!c)
		return;
	while (c->sessions)
		swarm_session_close(c->sessions);
	close(c->sock);
	free(c);
}

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

SWARM_API int swarm_session_open(swarm_client *c, const char *model, uint32_t version,
				 const swarm_session_opts *opts, swarm_session **out)
{
	if (!c || !model || !out || strlen(model) >= SWARM_NAME_MAX)
		return -EINVAL;
	if (opts && opts->queue_depth && !is_pow2(opts->queue_depth))
		return -EINVAL;
	struct swarm_msg_open m;
	swarm_msg_init(&m.h, SWARM_MSG_OPEN, sizeof m, 0);
	swarm_copy_str(m.model, sizeof m.model, model);
	m.version = version;
	/* The balancer places the session near the thread that opens it. */
	m.cpu = sched_getcpu();
	if (opts)
		m.opts = *opts;

	struct swarm_msg_open_reply r;
	int fds[3], nfds = 3;
	int type = call(c, &m, &r, sizeof r, fds, &nfds);
	int err;
	if (type != SWARM_MSG_OPEN_REPLY) {
		err = type < 0 ? type : -EBADMSG;
		goto err_fds;
	}
	r.text[sizeof r.text - 1] = 0;
	if (r.status) {
		set_error(c, "%s", r.text);
		err = r.status;
		goto err_fds;
	}
	if (nfds != 3) {
		set_error(c, "%s", "swarmd sent a session without its descriptors");
		err = -EBADMSG;
		goto err_fds;
	}

	struct swarm_session *s = calloc(1, sizeof *s);
	if (!s) {
		err = -ENOMEM;
		goto err_fds;
	}
	s->c = c;
	s->id = r.session_id;
	s->memfd = fds[0];
	s->sq_efd = fds[1];
	s->cq_efd = fds[2];
	char why[SWARM_MSG_TEXT_MAX] = "";
	if ((err = swarm_session_attach(s, r.segment_bytes, why, sizeof why))) {
		if (why[0])
			set_error(c, "%s", why);
		goto err_session;
	}
	s->next = c->sessions;
	c->sessions = s;
	*out = s;
	return 0;

err_session:
	free(s);
	/* The three fds are closed below; tell swarmd to forget the session. */
	{
		struct swarm_msg_close cm;
		struct swarm_msg_reply cr;
		swarm_msg_init(&cm.h, SWARM_MSG_CLOSE, sizeof cm, 0);
		cm.session_id = r.session_id;
		call(c, &cm, &cr, sizeof cr, NULL, NULL);
	}
err_fds:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return err;
}

SWARM_API int swarm_session_close(swarm_session *s)
{
	if (!s)
		return -EINVAL;
	struct swarm_client *c = s->c;
	for (struct swarm_session **p = &c->sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	swarm_session_detach(s);
	close(s->memfd);
	close(s->sq_efd);
	close(s->cq_efd);
	struct swarm_msg_close m;
	struct swarm_msg_reply r;
	swarm_msg_init(&m.h, SWARM_MSG_CLOSE, sizeof m, 0);
	m.session_id = s->id;
	int type = call(c, &m, &r, sizeof r, NULL, NULL);
	free(s);
	if (type != SWARM_MSG_CLOSE_REPLY)
		return type < 0 ? type : -EBADMSG;
	return r.status;
}

SWARM_API uint32_t swarm_session_num_inputs(const swarm_session *s) { return s->geo.n_inputs; }
SWARM_API uint32_t swarm_session_num_outputs(const swarm_session *s) { return s->geo.n_outputs; }

SWARM_API const swarm_tensor_spec *swarm_session_input_spec(const swarm_session *s, uint32_t i)
{
	return i < s->geo.n_inputs ? &s->inputs[i] : NULL;
}

SWARM_API const swarm_tensor_spec *swarm_session_output_spec(const swarm_session *s, uint32_t i)
{
	return i < s->geo.n_outputs ? &s->outputs[i] : NULL;
}

/* What swarm_session_info_get copies under the placement seqlock. */
struct placement_copy {
	const struct swarm_seg_header *h;
	swarm_session_info *info;
};

static void copy_placement(void *ctx)
{
	const struct placement_copy *pc = ctx;
	const struct swarm_seg_header *h = pc->h;
	swarm_session_info *info = pc->info;
	info->device_index = h->device_index;
	info->numa_node = h->numa_node;
	info->worker_pid = h->worker_pid;
	info->model_version = h->model_version;
	memcpy(info->device_name, h->device_name, sizeof info->device_name);
	memcpy(info->cpus, h->cpus, sizeof info->cpus);
	memcpy(info->mem_policy, h->mem_policy, sizeof info->mem_policy);
}

SWARM_API int swarm_session_info_get(const swarm_session *s, swarm_session_info *info)
{
	if (!s || !info)
		return -EINVAL;
	const struct swarm_seg_header *h = s->h;
	memset(info, 0, sizeof *info);
	/* swarmd rewrites the placement when the session moves: a whole copy or none. */
	struct placement_copy pc = { h, info };
	int rc = swarm_seqlock_read(&h->placement_gen, copy_placement, &pc);
	if (rc) {
		memset(info, 0, sizeof *info);
		return rc;
	}
	info->device_name[sizeof info->device_name - 1] = 0;
	info->cpus[sizeof info->cpus - 1] = 0;
	info->mem_policy[sizeof info->mem_policy - 1] = 0;
	info->session_id = s->id;
	swarm_copy_str(info->model, sizeof info->model, h->model);
	info->slots = s->geo.nslots;
	info->queue_depth = s->geo.queue_depth;
	info->max_rows = s->geo.max_rows;
	return 0;
}

SWARM_API void swarm_session_set_spin(swarm_session *s, uint64_t spin_ns) { s->spin_ns = spin_ns; }

SWARM_API int swarm_session_fd(const swarm_session *s) { return s->cq_efd; }
