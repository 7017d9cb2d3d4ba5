/* test_swarmd_notify.c: runtime/swarmd/notify.c against a manager socket of the test's own,
 * without a daemon: READY=1 once and only when health.h says ready, STATUS= on each change,
 * WATCHDOG=1 at half the interval and only for our pid, STOPPING=1, nothing without
 * NOTIFY_SOCKET, and the abstract namespace. The suite is built twice, against libsystemd's
 * sd_notify (test_swarmd_notify_libsystemd, where it is installed) and against notify.c's own
 * implementation of the protocol (test_swarmd_notify), so that both are held to one contract.
 * A unix datagram is queued at the receiver before sendto returns: nothing here waits.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/swarmd/health.h"
#include "runtime/swarmd/notify.h"
#include "runtime/swarmd/swarmd.h"

/* swarmd's globals, which health.c and notify.c read (main.c defines them in swarmd). */
struct swarmd d;
struct swarmd_config cfg;

static int mgr = -1;
static char dir[64];

/* The manager's socket, bound at name (a path, or '@' then an abstract name). */
static void manager_bind(const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	cr_assert_lt(strlen(name), sizeof a.sun_path);
	memcpy(a.sun_path, name, strlen(name));
	if (name[0] == '@')
		a.sun_path[0] = 0;
	mgr = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(mgr, 0);
	cr_assert_eq(bind(mgr, (struct sockaddr *)&a,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
		     0, "bind %s: %s", name, strerror(errno));
	setenv("NOTIFY_SOCKET", name, 1);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/swarm-notify-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof path, "%s/notify.sock", dir);
	manager_bind(path);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	d.n_dev = 1;
	d.ready = 1;
	d.dev[0].state = SWARM_DEVICE_ACTIVE;
	snprintf(d.dev[0].plan.name, sizeof d.dev[0].plan.name, "cpu:0");
}

static void teardown(void)
{
	char path[128];
	snprintf(path, sizeof path, "%s/notify.sock", dir);
	unlink(path);
	rmdir(dir);
}

TestSuite(swarmd_notify, .init = setup, .fini = teardown);

/* The next message, or NULL when none is queued. */
static const char *next(void)
{
	static char buf[512];
	ssize_t n = recv(mgr, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n < 0) {
		cr_assert(errno == EAGAIN, "recv: %s", strerror(errno));
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

static void expect_next(const char *want)
{
	const char *got = next();
	cr_assert_not_null(got, "no message; want \"%s\"", want);
	cr_assert_str_eq(got, want);
}

static void expect_none(void)
{
	const char *got = next();
	cr_assert_null(got, "an unexpected message: \"%s\"", got);
}

Test(swarmd_notify, ready_is_sent_once_with_a_status)
{
	notify_start();
	health_update(1);
	notify_health();
	expect_next("READY=1\nSTATUS=ready: 1 devices");
	health_update(2);
	notify_health();
	expect_none();
}

Test(swarmd_notify, ready_waits_for_the_devices_and_says_why)
{
	d.ready = 0;
	notify_start();
	health_update(1);
	notify_health();
	expect_next("STATUS=starting: devices are still warming");
	d.ready = 1;
	health_update(2);
	notify_health();
	expect_next("READY=1\nSTATUS=ready: 1 devices");
}

Test(swarmd_notify, ready_waits_for_the_preloads)
{
	cfg.n_preload = 1;
	d.dev[0].pre_state[0] = PRE_SENT;
	notify_start();
	health_update(1);
	notify_health();
	expect_next("STATUS=a preloaded model is still loading (device cpu:0)");
	d.dev[0].pre_state[0] = PRE_DONE;
	health_update(2);
	notify_health();
	expect_next("READY=1\nSTATUS=ready: 1 devices");
}

Test(swarmd_notify, a_failure_after_ready_is_a_status_never_a_second_ready)
{
	notify_start();
	health_update(1);
	notify_health();
	expect_next("READY=1\nSTATUS=ready: 1 devices");
	d.dev[0].state = SWARM_DEVICE_FAILED;
	health_update(2);
	notify_health();
	expect_next("STATUS=a device failed and is out of service (device cpu:0)");
	d.dev[0].state = SWARM_DEVICE_ACTIVE;
	health_update(3);
	notify_health();
	expect_next("STATUS=ready: 1 devices");
}

Test(swarmd_notify, stopping_is_said_by_stopping_only)
{
	notify_start();
	health_update(1);
	notify_health();
	expect_next("READY=1\nSTATUS=ready: 1 devices");
	d.stopping = 1;
	health_update(2);
	notify_health();
	expect_none();
	notify_stopping();
	expect_next("STOPPING=1\nSTATUS=stopping");
}

Test(swarmd_notify, watchdog_pings_at_half_the_interval)
{
	setenv("WATCHDOG_USEC", "1000000", 1);
	notify_start();
	cr_assert_eq(notify_watchdog_ns(), 1000000000ull);
	const uint64_t t = 10ull * 1000000000ull;
	notify_watchdog(t);
	expect_next("WATCHDOG=1");
	notify_watchdog(t + 100000000ull); /* a tick later: not yet */
	expect_none();
	notify_watchdog(t + 499999999ull);
	expect_none();
	notify_watchdog(t + 500000000ull);
	expect_next("WATCHDOG=1");
}

Test(swarmd_notify, a_watchdog_for_another_pid_is_not_ours)
{
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid() + 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	notify_start();
	cr_assert_eq(notify_watchdog_ns(), 0);
	notify_watchdog(10ull * 1000000000ull);
	expect_none();
}

Test(swarmd_notify, a_watchdog_for_our_pid_is_ours)
{
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("WATCHDOG_USEC", "2000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	notify_start();
	cr_assert_eq(notify_watchdog_ns(), 2000000000ull);
}

Test(swarmd_notify, without_notify_socket_nothing_is_sent)
{
	unsetenv("NOTIFY_SOCKET");
	notify_start();
	health_update(1);
	notify_health();
	notify_watchdog(10ull * 1000000000ull);
	notify_stopping();
	expect_none();
}

Test(swarmd_notify, an_abstract_socket_is_reached)
{
	close(mgr);
	char name[64];
	snprintf(name, sizeof name, "@swarm-notify-test-%d", (int)getpid());
	manager_bind(name);
	notify_start();
	health_update(1);
	notify_health();
	expect_next("READY=1\nSTATUS=ready: 1 devices");
}

Test(swarmd_notify, the_first_ping_goes_at_once_whatever_the_clock)
{
	setenv("WATCHDOG_USEC", "30000000", 1);
	notify_start();
	notify_watchdog(1000); /* a monotonic clock just after boot */
	expect_next("WATCHDOG=1");
	notify_watchdog(2000);
	expect_none();
}
