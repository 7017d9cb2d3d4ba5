/* notify.c: swarmd tells systemd (or any manager that speaks sd_notify's protocol) where it
 * stands, so that a Type=notify unit is "active" only once clients can be served, a hung loop
 * is restarted by the watchdog, and a stop is reported as one (notify.h says what is sent).
 *
 * With libsystemd at build time (SWARM_HAVE_SYSTEMD) the messages go through its sd_notify
 * and sd_watchdog_enabled. Without it, this file speaks the protocol itself: one datagram
 * of "KEY=VALUE\n" lines to the unix socket named by $NOTIFY_SOCKET ('@' for the abstract
 * namespace), the watchdog interval from $WATCHDOG_USEC when $WATCHDOG_PID is unset or ours.
 * The protocol is a stable, documented interface (sd_notify(3), "the protocol is defined and
 * stable"), and a fallback of our own keeps readiness and the watchdog in builds for systems
 * where libsystemd's headers are absent, and lets the same test run on either build.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef SWARM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "runtime/log.h"
#include "runtime/swarmd/health.h"
#include "runtime/swarmd/notify.h"
#include "runtime/swarmd/swarmd.h"

static struct {
	int on;                /* $NOTIFY_SOCKET is set */
	int ready_sent;        /* READY=1 went (once per run) */
	int last_reason;       /* the health reason of the last STATUS= (-1: none yet) */
	uint64_t watchdog_ns;  /* WATCHDOG_USEC in ns, 0: no watchdog; written before the loop */
	uint64_t last_ping_ns; /* the last WATCHDOG=1, 0 before the first */
} n = { .last_reason = -1 };

#ifdef SWARM_HAVE_SYSTEMD
static int send_state(const char *state) { return sd_notify(0, state); }

static uint64_t watchdog_usec(void)
{
	uint64_t usec = 0;
	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
#else
/* sd_notify's datagram, sent by hand. Returns 1 when sent, 0 without a socket, or -errno. */
static int send_state(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof a.sun_path)
		return -EINVAL;
	memcpy(a.sun_path, path, len);
	if (path[0] == '@')
		a.sun_path[0] = 0; /* the abstract namespace: no file, a leading NUL */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&a,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	int rc = w < 0 ? -errno : 1;
	close(fd);
	return rc;
}

/* $WATCHDOG_USEC, for us alone when $WATCHDOG_PID names a process (as sd_watchdog_enabled). */
static uint64_t watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	if (!usec || !*usec)
		return 0;
	if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	unsigned long long v = strtoull(usec, &end, 10);
	return *end ? 0 : v;
}
#endif

/* Sends state; a failure is logged (once: a manager that went away would repeat it). */
static void send_logged(const char *state, const char *what)
{
	static int failed;
	int rc = send_state(state);
	if (rc < 0 && !failed) {
		failed = 1;
		swarm_log(SWARM_LOG_WARN, "event=notify_failed message=%s error=\"%s\"", what,
			  strerror(-rc));
	}
}

void notify_start(void)
{
	const char *sock = getenv("NOTIFY_SOCKET");
	n.on = sock && *sock;
	uint64_t usec = watchdog_usec();
	/* Pairs with the acquire load in notify_watchdog_ns (another thread may read it). */
	__atomic_store_n(&n.watchdog_ns, usec * 1000, __ATOMIC_RELEASE);
	if (!n.on && !usec)
		return;
	swarm_log(SWARM_LOG_INFO, "event=notify socket=%s watchdog_ms=%llu via=%s",
		  n.on ? sock : "none", (unsigned long long)(usec / 1000),
#ifdef SWARM_HAVE_SYSTEMD
		  "libsystemd"
#else
		  "builtin"
#endif
	);
}

void notify_health(void)
{
	int reason = health_reason();
	/* stopping: notify_stopping says so, with STOPPING=1 */
	if (!n.on || reason == n.last_reason || reason == SWARMD_HEALTH_STOPPING)
		return;
	n.last_reason = reason;
	char why[160], msg[256];
	int ready = health_ready(why, sizeof why);
	if (ready)
		snprintf(why, sizeof why, "ready: %d devices", d.n_dev);
	if (ready && !n.ready_sent) {
		n.ready_sent = 1;
		snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", why);
		send_logged(msg, "READY");
		swarm_log(SWARM_LOG_INFO, "event=notified message=READY status=\"%s\"", why);
		return;
	}
	snprintf(msg, sizeof msg, "STATUS=%s", why);
	send_logged(msg, "STATUS");
}

void notify_watchdog(uint64_t now)
{
	if (!n.watchdog_ns || (n.last_ping_ns && now - n.last_ping_ns < n.watchdog_ns / 2))
		return;
	n.last_ping_ns = now;
	send_logged("WATCHDOG=1", "WATCHDOG");
}

void notify_stopping(void)
{
	if (!n.on)
		return;
	send_logged("STOPPING=1\nSTATUS=stopping", "STOPPING");
}

uint64_t notify_watchdog_ns(void) { return __atomic_load_n(&n.watchdog_ns, __ATOMIC_ACQUIRE); }
