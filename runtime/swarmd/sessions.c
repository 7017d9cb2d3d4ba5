/* sessions.c: a session's life in swarmd: the open (the model resolved, every option
 * range-checked, the limits per client and per user, a device picked, the segment created and
 * handed to the worker), the opens that wait for a device, the close, and what is let go when
 * a client goes. Where a session is served, and its moves, are placement.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ipc/doorbell.h"
#include "runtime/log.h"
#include "runtime/swarmd/counters.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

#define OPEN_WAIT_NS 10000000000ull /* an open waits this long for a device to be ready */

static uint64_t next_session_id = 1;

struct swarm_seg_header *session_hdr(struct session *s) { return s->base; }

/* Wakes the client whichever way it sleeps, so that it looks at its segment. */
void session_wake(struct session *s)
{
	struct swarm_seg_header *h = session_hdr(s);
	swarm_fence();
	__atomic_add_fetch(&h->cq_doorbell.v, 1, __ATOMIC_RELEASE);
	swarm_futex_wake(&h->cq_doorbell.v);
	swarm_eventfd_signal(s->cq_efd);
}

/* Marks a session lost in its segment and wakes its client, whichever way it sleeps. */
void session_mark(struct session *s, uint32_t seg_state)
{
	struct swarm_seg_header *h = session_hdr(s);
	/* Release pairs with the client's acquire load of state in session_check. */
	__atomic_store_n(&h->state.v, seg_state, __ATOMIC_RELEASE);
	session_wake(s);
}

/* Takes a session out of its device's load as soon as it starts going away, so that the
 * balancer does not count a session that is only waiting for its worker to let go. */
void session_uncount(struct session *s)
{
	if (s->count_dev >= 0 && d.dev[s->count_dev].sessions)
		d.dev[s->count_dev].sessions--;
	s->count_dev = -1;
}

/* Counts a session in device di's load (a move counts at its target from its start). */
void session_count(struct session *s, int di)
{
	session_uncount(s);
	s->count_dev = di;
	d.dev[di].sessions++;
}

void session_free(struct session *s)
{
	for (struct session **p = &d.sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	session_uncount(s);
	munmap(s->base, s->bytes);
	close(s->memfd);
	close(s->sq_efd);
	close(s->cq_efd);
	swarm_log(SWARM_LOG_INFO, "event=session_freed session=%llu", (unsigned long long)s->id);
	free(s);
}

struct session *session_find(uint64_t id)
{
	for (struct session *s = d.sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

void session_open_failed(struct conn *c, uint32_t seq, const char *model, uint32_t version,
			 int status, const char *reason)
{
	const char *name = strerrorname_np(-status);
	swarm_log(SWARM_LOG_WARN,
		  "event=open_failed client_pid=%d uid=%u model=%s version=%u status=%d "
		  "error=%s reason=\"%s\"",
		  (int)c->pid, (unsigned)c->uid, model, version, status, name ? name : "?", reason);
	ctl_send_open_reply(c, seq, status, NULL, reason);
}

/* Whether c may open one more session of bytes, within the limits per client and per user.
 * Returns 0, or -EDQUOT with text naming the limit and its option. A user's sessions count
 * until they are freed, its clients' that have gone included. */
static int within_limits(const struct conn *c, uint64_t bytes, char *text, size_t len)
{
	if (cfg.lim.session_bytes && bytes > cfg.lim.session_bytes) {
		snprintf(text, len,
			 "a session of %llu bytes is above the limit of %llu a session "
			 "(--max-session-bytes)",
			 (unsigned long long)bytes, (unsigned long long)cfg.lim.session_bytes);
		counters_refusal(SWARMD_LIM_SESSION_BYTES);
		return -EDQUOT;
	}
	uint32_t mine = 0, users = 0;
	uint64_t user_bytes = 0;
	for (const struct session *s = d.sessions; s; s = s->next) {
		mine += s->client == c;
		if (s->uid == c->uid) {
			users++;
			user_bytes += s->bytes;
		}
	}
	if (cfg.lim.per_client && mine >= cfg.lim.per_client) {
		snprintf(text, len,
			 "this client holds %u sessions, the limit a connection "
			 "(--max-sessions-per-client)",
			 mine);
		counters_refusal(SWARMD_LIM_SESSIONS_PER_CLIENT);
		return -EDQUOT;
	}
	if (cfg.lim.per_user && users >= cfg.lim.per_user) {
		snprintf(text, len,
			 "user %u holds %u sessions, the limit (--max-sessions-per-user)",
			 (unsigned)c->uid, users);
		counters_refusal(SWARMD_LIM_SESSIONS_PER_USER);
		return -EDQUOT;
	}
	if (cfg.lim.user_bytes && user_bytes + bytes > cfg.lim.user_bytes) {
		snprintf(text, len,
			 "user %u's sessions hold %llu bytes; %llu more would pass the limit of "
			 "%llu (--max-user-bytes)",
			 (unsigned)c->uid, (unsigned long long)user_bytes,
			 (unsigned long long)bytes, (unsigned long long)cfg.lim.user_bytes);
		counters_refusal(SWARMD_LIM_USER_BYTES);
		return -EDQUOT;
	}
	return 0;
}

/* The segment's geometry for an open's options, each range-checked before any arithmetic on
 * it (a depth rounded up from slots above 2^31 once looped forever here). Returns 0, or
 * -EINVAL with why in text. */
static int open_geometry(const struct swarm_msg_open *m, const struct resolved *res,
			 struct swarm_seg_geometry *geo, char *text, size_t len)
{
	uint32_t slots = m->opts.slots ? m->opts.slots : res->default_slots;
	uint32_t max_rows = m->opts.max_rows ? m->opts.max_rows : res->max_rows;
	if (max_rows > res->max_rows || slots > SWARM_SEG_MAX_SLOTS) {
		snprintf(text, len,
			 "options out of range: max_rows %u (model %s allows %u), slots %u (at "
			 "most %u)",
			 max_rows, res->name, res->max_rows, slots, SWARM_SEG_MAX_SLOTS);
		return -EINVAL;
	}
	const uint32_t depth = m->opts.queue_depth ? m->opts.queue_depth :
						     swarm_seg_default_depth(slots);
	if (swarm_seg_geometry_init(geo, res->inputs, res->n_inputs, res->outputs, res->n_outputs,
				    slots, depth, max_rows)) {
		snprintf(text, len,
			 "options out of range: slots %u, queue depth %u (a power of two, at most "
			 "slots rounded up to one), max_rows %u",
			 slots, depth, max_rows);
		return -EINVAL;
	}
	return 0;
}

/* No device can take the open now. With the autoscaler on, or a device warming, one is
 * coming (the autoscaler wakes one for a waiting open when none is in service): the open
 * waits for it, OPEN_WAIT_NS at most. Returns 1 when it waits, 0 when it cannot. */
/* The deadline of the open sessions_try_pending is trying again (0: a new open): it keeps it
 * if it has to wait once more. */
static uint64_t retry_deadline_ns;

static int open_wait(struct conn *c, const struct swarm_msg_open *m, int force)
{
	if (!force && !sup_any_warming() && !cfg.as.on)
		return 0;
	int wake_now = cfg.as.on && d.ready && !sup_any_warming();
	struct pending_open *p = calloc(1, sizeof *p);
	if (!p)
		return 0;
	p->client = c;
	p->msg = *m;
	p->deadline_ns = retry_deadline_ns ? retry_deadline_ns : swarm_now_ns() + OPEN_WAIT_NS;
	p->next = d.pending;
	d.pending = p;
	if (wake_now)
		as_decide(swarm_now_ns());
	return 1;
}

/* A new session for c on dv: its record, its segment (placed on dv's node) and eventfds.
 * Returns it, or NULL with the status in *err and why in text. */
static struct session *session_new(struct conn *c, const struct swarm_msg_open *m,
				   const struct resolved *res, const struct swarm_seg_geometry *geo,
				   struct device *dv, int *err, char *text, size_t len)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s) {
		*err = -ENOMEM;
		snprintf(text, len, "swarmd is out of memory");
		return NULL;
	}
	s->id = next_session_id++;
	s->client = c;
	s->uid = c->uid;
	s->model = res->desc;
	swarm_copy_str(s->model_name, sizeof s->model_name, res->name);
	s->version = res->version;
	s->follow = m->version == 0;
	s->from_registry = res->from_registry;
	s->open_seq = m->h.seq;
	s->bytes = geo->segment_bytes;
	s->geo = *geo;
	s->min_devices = res->min_devices;
	s->allowed = mem_allowed(res);
	s->max_devices = res->max_devices;
	s->latency_p99_us = res->latency_p99_us;
	s->count_dev = -1;
	s->move_to = -1;
	s->sq_efd = s->cq_efd = -1;
	int fd = swarm_seg_create(geo, s->id, res->name, res->version, res->inputs, res->outputs,
				  place_device_os_node(dv), &s->base);
	if (fd < 0) {
		*err = fd;
		snprintf(text, len, "cannot create the segment (%llu bytes): %s",
			 (unsigned long long)geo->segment_bytes, strerror(-fd));
		free(s);
		return NULL;
	}
	s->memfd = fd;
	s->sq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->cq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->next = d.sessions;
	d.sessions = s;
	return s;
}

/* Hands s to dv's worker (an ATTACH with the segment and eventfds). 0 or -errno. */
int session_send_attach(struct session *s, struct device *dv, const struct resolved *res)
{
	if (s->sq_efd < 0 || s->cq_efd < 0)
		return -EMFILE;
	struct swarm_msg_attach am;
	swarm_msg_init(&am.h, SWARM_MSG_ATTACH, sizeof am, 0);
	am.session_id = s->id;
	am.client_pid = s->client ? s->client->pid : -1;
	models_fill_version(&am.v, res);
	am.geo = s->geo;
	int fds[3] = { s->memfd, s->sq_efd, s->cq_efd };
	sup_offer_weights(dv, &am.v);
	int rc = sup_send(dv, &am, sizeof am, fds, 3);
	if (!rc)
		mem_expect(dv, res);
	return rc;
}

int session_open(struct conn *c, const struct swarm_msg_open *m, int may_park)
{
	char text[SWARM_MSG_TEXT_MAX];
	char model_name[SWARM_NAME_MAX];
	swarm_copy_str(model_name, sizeof model_name, m->model);
	struct resolved res;
	struct swarm_seg_geometry geo;
	int rc = models_resolve(model_name, m->version, &res, text, sizeof text);
	if (!rc)
		rc = open_geometry(m, &res, &geo, text, sizeof text);
	if (!rc)
		rc = within_limits(c, geo.segment_bytes, text, sizeof text);
	if (rc) {
		session_open_failed(c, m->h.seq, model_name, m->version, rc, text);
		return 0;
	}
	/* Near the thread that opened it (the open says where it ran), else where the client
	 * said hello from. Until every device of the start is serving, opens wait: placement
	 * must not depend on which worker happened to start first. */
	int client_numa = m->cpu >= 0 ? swarm_topology_cpu_numa(d.topo, m->cpu) : c->numa_node;
	text[0] = 0;
	/* A model the autoscaler has placed goes to its hosts (as_hosts: 0 when none). */
	uint64_t hosts = as_hosts(res.name, res.version);
	int di = d.ready ?
			 mem_place_in(&res, client_numa, hosts ? hosts : ~0ull, text, sizeof text) :
			 -ENODEV;
	/* Its hosts have no room now (their versions in use): any device with room takes it,
	 * and becomes a host, rather than a refusal. */
	if (hosts && di == -ENOSPC)
		di = mem_place_in(&res, client_numa, ~0ull, text, sizeof text);
	if (di == -EINPROGRESS) {
		/* Room is being made (sessions move first): tried again when they have. */
		if (may_park && open_wait(c, m, 1))
			return 1;
		di = -ENOSPC;
	}
	/* No room in service, but the autoscaler can wake a device with room: it waits. */
	if (di == -ENOSPC && may_park && as_may_wake_for(&res) && open_wait(c, m, 1))
		return 1;
	if (di == -EFBIG || di == -ENOSPC || (di == -ENODEV && text[0])) {
		session_open_failed(c, m->h.seq, model_name, m->version, di, text);
		return 0;
	}
	if (di < 0) {
		if (may_park && open_wait(c, m, 0))
			return 1;
		session_open_failed(c, m->h.seq, model_name, m->version, -ENODEV,
				    "no device is in service to take the session");
		return 0;
	}
	struct device *dv = &d.dev[di];
	struct session *s = session_new(c, m, &res, &geo, dv, &rc, text, sizeof text);
	if (!s) {
		session_open_failed(c, m->h.seq, model_name, m->version, rc, text);
		return 0;
	}
	as_placed(&res, di);
	s->client_numa = client_numa;
	place_publish(s, dv, 0);
	s->device = dv->index;
	s->state = S_ATTACHING;
	session_count(s, dv->index);
	if ((rc = session_send_attach(s, dv, &res))) {
		snprintf(text, sizeof text, "cannot hand the session to worker %s: %s",
			 dv->plan.name, strerror(-rc));
		session_open_failed(c, m->h.seq, model_name, m->version, rc, text);
		session_free(s);
		return 0;
	}
	swarm_log(SWARM_LOG_INFO,
		  "event=session_open session=%llu client_pid=%d model=%s device=%s slots=%u "
		  "max_rows=%u bytes=%llu",
		  (unsigned long long)s->id, c->pid, res.name, dv->plan.name, geo.nslots,
		  geo.max_rows, (unsigned long long)geo.segment_bytes);
	return 0;
}

void sessions_try_pending(void)
{
	struct pending_open *list = d.pending;
	d.pending = NULL;
	uint64_t now = swarm_now_ns();
	while (list) {
		struct pending_open *p = list;
		list = p->next;
		if (now > p->deadline_ns) {
			char model[SWARM_NAME_MAX];
			swarm_copy_str(model, sizeof model, p->msg.model);
			session_open_failed(p->client, p->msg.h.seq, model, p->msg.version, -ENODEV,
					    "no device came into service in time");
		} else {
			retry_deadline_ns = p->deadline_ns;
			session_open(p->client, &p->msg, 1);
			retry_deadline_ns = 0;
		}
		free(p);
	}
}

/* Asks s's worker to let it go for good (the client closed or went). 0 or -errno. */
static int session_detach(struct session *s)
{
	s->state = S_DETACHING;
	session_uncount(s);
	return sup_send_detach(&d.dev[s->device], s->id, 0);
}

/* 1 when s is served and its worker listens: a DETACH can go. */
static int session_served(const struct session *s)
{
	return s->state == S_ACTIVE && s->device >= 0 && d.dev[s->device].ctl >= 0;
}

void session_close(struct conn *c, const struct swarm_msg_close *m)
{
	struct session *s = session_find(m->session_id);
	int status = 0;
	if (!s || s->client != c) {
		status = -ENOENT;
	} else if (session_served(s)) {
		s->client = NULL;
		session_detach(s);
	} else if (s->state == S_ATTACHING || s->state == S_DETACHING || s->state == S_MOVING) {
		s->client = NULL; /* finished when the worker answers */
	} else {
		session_free(s);
	}
	ctl_send_reply(c, SWARM_MSG_CLOSE_REPLY, m->h.seq, status,
		       status ? "no such session on this connection" : "");
}

void sessions_client_gone(struct conn *c)
{
	for (struct pending_open **p = &d.pending; *p;) {
		if ((*p)->client == c) {
			struct pending_open *dead = *p;
			*p = dead->next;
			free(dead);
		} else {
			p = &(*p)->next;
		}
	}
	int n = 0;
	for (struct session *s = d.sessions, *next; s; s = next) {
		next = s->next;
		if (s->client != c)
			continue;
		s->client = NULL;
		n++;
		if (session_served(s))
			session_detach(s);
		else if (s->state == S_LOST || s->state == S_HOMELESS)
			session_free(s);
		/* S_ATTACHING, S_MOVING and S_DETACHING finish when the worker answers. */
	}
	swarm_log(SWARM_LOG_INFO, "event=client_gone client_pid=%d sessions=%d", c->pid, n);
}

void session_attached(struct session *s, struct device *dv, const struct swarm_msg_attach_reply *m)
{
	if (m->status) {
		if (s->client) {
			char text[SWARM_MSG_TEXT_MAX + 32];
			snprintf(text, sizeof text, "the worker refused the session: %.*s",
				 (int)sizeof m->text, m->text);
			session_open_failed(s->client, s->open_seq, s->model_name, s->version,
					    m->status, text);
		}
		session_free(s);
	} else if (!s->client) {
		/* The client left while we attached: let the worker go. */
		s->state = S_DETACHING;
		sup_send_detach(dv, s->id, 0);
	} else {
		s->state = S_ACTIVE;
		mem_touch(dv, s->model_name, s->version, swarm_now_ns());
		/* Release pairs with the client's acquire load of state in session_check. */
		__atomic_store_n(&session_hdr(s)->state.v, SWARM_SEG_STATE_ACTIVE,
				 __ATOMIC_RELEASE);
		ctl_send_open_reply(s->client, s->open_seq, 0, s, "");
	}
}

void sessions_free_all(void)
{
	while (d.sessions)
		session_free(d.sessions);
	while (d.pending) {
		struct pending_open *p = d.pending;
		d.pending = p->next;
		free(p);
	}
}
