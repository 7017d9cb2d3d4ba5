/* test_ops.c: swarmd as an operator runs it (issue 16, docs/systemd.md): the messages to a
 * service manager (READY=1 once devices serve and preloads are loaded, WATCHDOG=1 from the
 * loop, STOPPING=1 at SIGTERM), a failed open logged once with who asked and why, a named
 * registry that is missing or corrupt refused at startup with a hint (only the default may be
 * absent), and --log-format json's lines all JSON, swarmd's and its workers'.
 *
 * The manager here is the test itself: a unix datagram socket of its own named by
 * NOTIFY_SOCKET, which swarmd inherits; SO_PASSCRED says which process sent each message.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "registry/registry.h"

static char work[64]; /* this test's own temporary directory (short: a socket is in it) */

static void setup(void)
{
	snprintf(work, sizeof work, "/tmp/swarm-ops-XXXXXX");
	cr_assert_not_null(mkdtemp(work), "mkdtemp: %s", strerror(errno));
}

static void teardown(void) { h_registry_remove(work); }

TestSuite(e2e_ops, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ----------------------------------------------------------------------------- */

/* The whole of a file, NUL-terminated and malloc'd (fails the test when unreadable). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap + 1);
	cr_assert_not_null(buf);
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			buf = realloc(buf, 2 * cap + 1);
			cr_assert_not_null(buf);
			cap *= 2;
		}
	}
	fclose(f);
	buf[len] = 0;
	return buf;
}

/* The lines of text that contain every one of the NULL-terminated needles. */
static int count_lines(const char *text, const char *const *needles)
{
	int count = 0;
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);
		int all = 1;
		for (int i = 0; needles[i] && all; i++)
			all = strstr(copy, needles[i]) != NULL;
		count += all;
		free(copy);
		line += len + (end != NULL);
	}
	return count;
}

struct exec_args {
	const char *const *argv;
	const char *log;
};

/* For h_fork: runs argv with its stdout and stderr in log. */
static int exec_logged(void *p)
{
	struct exec_args *a = p;
	int fd = open(a->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		return 126;
	execv(a->argv[0], (char *const *)a->argv);
	return 127;
}

/* Runs swarmd with args (NULL-terminated) on a socket in work, its output in work/NAME.log,
 * into *log (malloc'd). Returns its exit status; fails the test when it runs past 20 s. */
static int swarmd_to_exit(const char *name, const char *const *args, char **log)
{
	char sock[256], path[256];
	snprintf(sock, sizeof sock, "%s/%s.sock", work, name);
	snprintf(path, sizeof path, "%s/%s.log", work, name);
	const char *argv[16] = { SWARM_BIN_DIR "/swarmd", "--socket", sock, "--devices", "cpu:1" };
	int argc = 5;
	for (int i = 0; args[i] && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	struct exec_args a = { argv, path };
	int rc = h_child_wait(h_fork(exec_logged, &a), 20 * H_SEC);
	*log = slurp(path);
	cr_assert_neq(rc, -ETIMEDOUT, "swarmd did not exit within 20 s:\n%s", *log);
	struct stat st;
	cr_expect_neq(stat(sock, &st), 0, "a swarmd that did not start left its socket");
	return rc;
}

/* ---- a failed open -------------------------------------------------------------------------- */

Test(e2e_ops, a_failed_open_is_logged_once_with_pid_uid_and_reason)
{
	h_start("cpu:1", NULL);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "idnetity", 0, NULL, &s);
	cr_assert_eq(rc, -ENOENT, "a misspelt model opened: %d (%s)", rc, swarm_strerror(rc));
	swarm_session_opts deep = { .slots = 8, .queue_depth = 1u << 31 };
	rc = swarm_session_open(c, "identity", 0, &deep, &s);
	cr_assert_eq(rc, -EINVAL, "bad options opened: %d", rc);
	swarm_disconnect(c);
	char *log = slurp(h_log_path()); /* h_stop removes it */
	h_stop();

	char pid[32], uid[32];
	snprintf(pid, sizeof pid, "client_pid=%d ", (int)getpid());
	snprintf(uid, sizeof uid, "uid=%u ", (unsigned)getuid());
	const char *misspelt[] = {
		"event=open_failed", pid, uid, "model=idnetity version=0", "error=ENOENT",
		"reason=\"no model", NULL
	};
	const char *options[] = { "event=open_failed",
				  pid,
				  "model=identity",
				  "error=EINVAL",
				  "reason=\"options out of range",
				  NULL };
	const char *any[] = { "event=open_failed", NULL };
	int n_misspelt = count_lines(log, misspelt), n_options = count_lines(log, options);
	int n_any = count_lines(log, any);
	if (n_misspelt != 1 || n_options != 1 || n_any != 2)
		h_print_log("open_failed lines");
	cr_expect_eq(n_misspelt, 1, "the misspelt open has %d lines", n_misspelt);
	cr_expect_eq(n_options, 1, "the bad options have %d lines", n_options);
	cr_expect_eq(n_any, 2, "two failed opens left %d open_failed lines", n_any);
	free(log);
}

/* ---- the registry at startup -------------------------------------------------------------- */

Test(e2e_ops, a_missing_registry_given_is_a_startup_error_with_a_hint)
{
	char reg[256], hint[320];
	snprintf(reg, sizeof reg, "%s/no-such-registry", work);
	snprintf(hint, sizeof hint, "hint=\"swarm registry --registry %s init\"", reg);
	const char *args[] = { "--registry", reg, NULL };
	char *log;
	int rc = swarmd_to_exit("given", args, &log);
	cr_expect_eq(rc, 1, "exit %d, want 1:\n%s", rc, log);
	const char *want[] = { "event=startup_failed", "(given by --registry)", hint, NULL };
	cr_expect_eq(count_lines(log, want), 1, "no startup_failed line with the hint:\n%s", log);
	cr_expect_null(strstr(log, "event=worker_started"), "a worker started:\n%s", log);
	free(log);
	/* the hint is true: after it, the same command line starts */
	const char *init[] = { SWARM_BIN_DIR "/swarm", "registry", "--registry", reg, "init", NULL };
	char out[512];
	cr_assert_eq(h_run(init, out, sizeof out), 0, "the hint failed: %s", out);
	h_start("cpu:1", args);
	h_stop();
}

Test(e2e_ops, a_missing_registry_named_by_the_environment_is_a_startup_error)
{
	char reg[256];
	snprintf(reg, sizeof reg, "%s/no-such-registry", work);
	setenv("SWARM_REGISTRY", reg, 1);
	const char *args[] = { NULL };
	char *log;
	int rc = swarmd_to_exit("env", args, &log);
	unsetenv("SWARM_REGISTRY");
	cr_expect_eq(rc, 1, "exit %d, want 1:\n%s", rc, log);
	const char *want[] = { "event=startup_failed", "(given by $SWARM_REGISTRY)",
			       "hint=\"swarm registry --registry", NULL };
	cr_expect_eq(count_lines(log, want), 1, "no startup_failed line with the hint:\n%s", log);
	free(log);
}

Test(e2e_ops, a_corrupt_registry_is_a_startup_error)
{
	char reg[256], index[300];
	snprintf(reg, sizeof reg, "%s/corrupt", work);
	snprintf(index, sizeof index, "%s/index", reg);
	cr_assert_eq(mkdir(reg, 0700), 0);
	FILE *f = fopen(index, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < 256; i++)
		fputc('x', f);
	fclose(f);
	const char *args[] = { "--registry", reg, NULL };
	char *log;
	int rc = swarmd_to_exit("corrupt", args, &log);
	cr_expect_eq(rc, 1, "exit %d, want 1:\n%s", rc, log);
	const char *want[] = { "event=startup_failed", "corrupt catalog", NULL };
	cr_expect_eq(count_lines(log, want), 1, "no startup_failed line naming it:\n%s", log);
	free(log);
}

Test(e2e_ops, a_missing_default_registry_serves_the_builtins_and_says_so)
{
	/* the default is $XDG_DATA_HOME/swarm/registry: here, in a directory with nothing */
	unsetenv("SWARM_REGISTRY");
	setenv("XDG_DATA_HOME", work, 1);
	h_start("cpu:1", NULL);
	char want[300];
	snprintf(want, sizeof want, "event=registry_absent dir=%s/swarm/registry serving=builtin",
		 work);
	cr_expect(h_log_contains(want), "no \"%s\" in the log", want);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	cr_expect_eq(h_open_working(c, "identity", NULL, &s, 10 * H_SEC), 0,
		     "the built-in identity is not served");
	swarm_disconnect(c);
	h_stop();
}

/* ---- --log-format json ------------------------------------------------------------------ */

Test(e2e_ops, json_logs_are_one_object_a_line_from_swarmd_and_its_workers)
{
	const char *extra[] = { "--log-format", "json", NULL };
	h_start("cpu:2", extra);
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	cr_assert_eq(h_open_working(c, "identity", NULL, &s, 10 * H_SEC), 0);
	cr_assert_eq(swarm_session_open(c, "idnetity", 0, NULL, &s), -ENOENT);
	swarm_disconnect(c);
	/* h_stop removes the log: read it first */
	char *log = slurp(h_log_path());
	h_stop();

	int lines = 0, worker_lines = 0, open_failed = 0;
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
		lines++;
		json_error_t err;
		json_t *o = json_loads(line, 0, &err);
		cr_assert_not_null(o, "line %d is not JSON (%s): %s", lines, err.text, line);
		cr_assert(json_is_object(o), "line %d: %s", lines, line);
		cr_assert(json_is_real(json_object_get(o, "ts")), "no ts: %s", line);
		cr_assert(json_is_string(json_object_get(o, "level")), "no level: %s", line);
		cr_assert(json_is_integer(json_object_get(o, "pid")), "no pid: %s", line);
		cr_assert(json_is_string(json_object_get(o, "event")), "no event: %s", line);
		const char *comp = json_string_value(json_object_get(o, "comp"));
		cr_assert_not_null(comp, "no comp: %s", line);
		worker_lines += strcmp(comp, "worker") == 0;
		const char *ev = json_string_value(json_object_get(o, "event"));
		if (strcmp(ev, "open_failed") == 0) {
			open_failed++;
			cr_expect_eq(json_integer_value(json_object_get(o, "client_pid")), getpid(),
				     "%s", line);
			cr_expect_eq(json_integer_value(json_object_get(o, "uid")), getuid(), "%s",
				     line);
			cr_expect_str_eq(json_string_value(json_object_get(o, "model")),
					 "idnetity");
		}
		json_decref(o);
	}
	cr_expect_gt(lines, 5, "only %d lines", lines);
	cr_expect_gt(worker_lines, 0, "no line of a worker: the format did not reach them");
	cr_expect_eq(open_failed, 1, "%d open_failed objects", open_failed);
	free(log);
}

Test(e2e_ops, a_bad_log_format_is_refused)
{
	const char *args[] = { "--log-format", "xml", NULL };
	char *log;
	int rc = swarmd_to_exit("badfmt", args, &log);
	cr_expect_eq(rc, 2, "exit %d, want 2:\n%s", rc, log);
	cr_expect_not_null(strstr(log, "--log-format takes kv or json, not \"xml\""), "%s", log);
	free(log);
}

/* ---- sd_notify ------------------------------------------------------------------------------ */

/* The test's own service manager: a datagram socket at work/notify.sock, named by
 * NOTIFY_SOCKET for the swarmd started next, with SO_PASSCRED to learn each sender, and
 * WATCHDOG_USEC set to watchdog_usec (NULL: no watchdog). */
static int manager_open(const char *watchdog_usec)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s/notify.sock", work);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	int on = 1;
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
	setenv("NOTIFY_SOCKET", a.sun_path, 1);
	if (watchdog_usec)
		setenv("WATCHDOG_USEC", watchdog_usec, 1);
	else
		unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return fd;
}

/* The next message (terminated, in buf) and its sender's pid, within timeout_ns. Returns its
 * length, or -ETIMEDOUT. */
static int manager_recv(int fd, char *buf, size_t len, pid_t *sender, int64_t timeout_ns)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, (int)(timeout_ns / H_MS)) != 1)
		return -ETIMEDOUT;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = { buf, len - 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl
	};
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
	cr_assert_geq(n, 0, "recvmsg: %s", strerror(errno));
	buf[n] = 0;
	*sender = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
			*sender = ((struct ucred *)CMSG_DATA(c))->pid;
	return (int)n;
}

/* Waits up to 20 s for a message holding want; fails the test otherwise. Each message on the
 * way must come from swarmd itself (not a worker): from pid (0: the running swarmd). */
static void manager_expect_from(int fd, const char *want, char *buf, size_t len, pid_t pid)
{
	uint64_t end = h_now_ns() + 20 * H_SEC;
	while (h_now_ns() < end) {
		pid_t sender;
		int n = manager_recv(fd, buf, len, &sender, (int64_t)(end - h_now_ns()));
		if (n < 0)
			break;
		pid_t swarmd = pid ? pid : h_swarmd_pid();
		cr_assert_eq(sender, swarmd, "\"%s\" came from pid %d, swarmd is %d", buf,
			     (int)sender, (int)swarmd);
		if (strstr(buf, want))
			return;
	}
	h_print_log("no notify message");
	cr_assert_fail("no \"%s\" from swarmd within 20 s", want);
}

static void manager_expect(int fd, const char *want, char *buf, size_t len)
{
	manager_expect_from(fd, want, buf, len, 0);
}

static void manager_close(int fd)
{
	close(fd);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
}

Test(e2e_ops, notify_ready_once_devices_serve_then_watchdog_then_stopping)
{
	int fd = manager_open("400000"); /* a ping at least every 200 ms */
	h_start("cpu:2", NULL);
	char msg[512];
	manager_expect(fd, "READY=1", msg, sizeof msg);
	cr_expect_not_null(strstr(msg, "STATUS=ready: 2 devices"), "READY without status: %s", msg);
	/* READY follows the devices' own readiness, and a client is served at once */
	cr_expect(h_log_contains("event=ready "), "READY=1 before event=ready");
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = NULL;
	cr_assert_eq(swarm_session_open(c, "identity", 0, NULL, &s), 0,
		     "no session right after READY=1: %s", swarm_client_error(c));
	cr_expect_eq(h_identity_roundtrip(s, 1, 7, 5 * H_SEC), 0);
	swarm_disconnect(c);
	for (int i = 0; i < 3; i++)
		manager_expect(fd, "WATCHDOG=1", msg, sizeof msg);
	pid_t swarmd = h_swarmd_pid();
	h_stop();
	/* after the last pings, STOPPING=1 */
	manager_expect_from(fd, "STOPPING=1", msg, sizeof msg, swarmd);
	manager_close(fd);
}

Test(e2e_ops, notify_ready_only_once_the_preload_is_loaded)
{
	char reg[256];
	snprintf(reg, sizeof reg, "%s/registry", work);
	char err[256];
	cr_assert_eq(swarm_registry_init(reg, err, sizeof err), 0, "%s", err);
	struct h_mlp mlp;
	h_mlp_make(&mlp, 4242, 0.0f);
	h_mlp_publish(&mlp, reg, work, "mlp",
		      "[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]}]",
		      "[{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]}]", "",
		      "{\"max_rows\": 64, \"slots\": 4}");
	int fd = manager_open(NULL);
	const char *extra[] = { "--registry", reg, "--preload", "mlp", NULL };
	h_start("cpu:2", extra);
	char msg[512];
	manager_expect(fd, "READY=1", msg, sizeof msg);
	/* swarmd logs each device's preload before it can be ready: both lines are in */
	for (int i = 0; i < 2; i++) {
		char want[128];
		snprintf(want, sizeof want,
			 "event=device_preloaded device=cpu:%d model=mlp version=1 status=0", i);
		if (!h_log_contains(want))
			h_print_log("READY before the preload");
		cr_expect(h_log_contains(want), "READY=1 came before \"%s\"", want);
	}
	h_stop();
	manager_close(fd);
}
