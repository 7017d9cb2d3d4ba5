/* test_devices.c: which devices swarmd serves, and how it says that it cannot serve GPUs.
 *
 * swarmd --devices gpu on a machine with no usable GPU (or a build without CUDA) must fail at
 * startup with a non-zero exit and the reason in its log, before it listens; swarm-worker
 * --gpu N must exit SWARM_WORKER_EXIT_NO_DEVICE with the reason, never serve on the CPU
 * instead, and swarmd must not restart such a worker; and without --devices swarmd serves the
 * CPU where it finds no GPU. The suite hides
 * every GPU from CUDA (CUDA_VISIBLE_DEVICES=""), so these failure paths run the same on a GPU
 * machine. The last suite is the other side: where a GPU is present and CUDA built in,
 * --devices gpu serves it as gpu:0; elsewhere it is skipped with the reason.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e/harness.h"
#include "ipc/proto.h"
#include "runtime/stats.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/probe.h"
#endif

static void hide_gpus(void)
{
	/* An empty list hides every GPU from the CUDA runtime: it reports no device. */
	setenv("CUDA_VISIBLE_DEVICES", "", 1);
}

static void teardown(void) { h_teardown(); }

TestSuite(e2e_devices, .init = hide_gpus, .fini = teardown, .timeout = 60);

/* ---- running a program and reading what it said ------------------------------------------- */

struct ran {
	int status;     /* h_child_wait's: 0..255, 256 + signal, -ETIMEDOUT */
	char out[8192]; /* its stdout and stderr */
};

/* Runs argv with stdout and stderr in a file, fds 3 and 4 set to fd3 and fd4 when they are
 * not -1 (every other fd closed), and waits up to 10 s. */
static void run_prog(const char *const *argv, int fd3, int fd4, struct ran *r)
{
	char path[] = "/tmp/swarm-e2e-devices-XXXXXX";
	int lfd = mkstemp(path);
	cr_assert_geq(lfd, 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	cr_assert_eq(access(argv[0], X_OK), 0, "%s is not executable: %s", argv[0],
		     strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int nfd = open("/dev/null", O_RDONLY);
		/* Above every fd we are about to place, so that no dup2 overwrites a source. */
		int l = fcntl(lfd, F_DUPFD, 20), n = fcntl(nfd, F_DUPFD, 20);
		int a = fd3 >= 0 ? fcntl(fd3, F_DUPFD, 20) : -1;
		int b = fd4 >= 0 ? fcntl(fd4, F_DUPFD, 20) : -1;
		if (l < 0 || n < 0 || dup2(n, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 ||
		    (a >= 0 && dup2(a, 3) < 0) || (b >= 0 && dup2(b, 4) < 0))
			_exit(127);
		close_range(a >= 0 ? (b >= 0 ? 5 : 4) : 3, ~0u, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	r->status = h_child_wait(pid, 10 * H_SEC);
	ssize_t len = pread(lfd, r->out, sizeof r->out - 1, 0);
	r->out[len > 0 ? len : 0] = 0;
	close(lfd);
	cr_log_info("%s exited %d:\n%s", argv[0], r->status, r->out);
}

static void expect_said(const struct ran *r, const char *what, const char *needle)
{
	cr_expect(strstr(r->out, needle) != NULL, "%s did not say \"%s\"; it said:\n%s", what,
		  needle, r->out);
}

/* ---- the failure paths -------------------------------------------------------------------- */

Test(e2e_devices, devices_gpu_without_a_gpu_exits_and_names_why)
{
	char dir[] = "/tmp/swarm-e2e-XXXXXX", sock[64];
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof sock, "%s/swarmd.sock", dir);
	const char *argv[] = { SWARM_BIN_DIR "/swarmd", "--socket", sock, "--devices", "gpu", NULL };
	struct ran r;
	run_prog(argv, -1, -1, &r);

	cr_expect_eq(r.status, 1, "swarmd --devices gpu with no GPU: exit %d, want 1", r.status);
	expect_said(&r, "swarmd", "event=startup_failed");
	expect_said(&r, "swarmd", "--devices gpu: no CUDA GPU: ");
#ifndef SWARM_HAVE_CUDA
	expect_said(&r, "swarmd", "CUDA is not built into this swarmd");
#endif
	cr_expect(strstr(r.out, "event=worker_started") == NULL, "a worker was started:\n%s",
		  r.out);
	struct stat sb;
	cr_expect_neq(stat(sock, &sb), 0, "swarmd listened at %s before failing", sock);
	unlink(sock);
	rmdir(dir);
}

Test(e2e_devices, devices_refuses_an_unknown_kind)
{
	const char *argv[] = { SWARM_BIN_DIR "/swarmd", "--devices", "tpu:2", NULL };
	struct ran r;
	run_prog(argv, -1, -1, &r);
	cr_expect_eq(r.status, 2, "swarmd --devices tpu:2: exit %d, want 2", r.status);
	expect_said(&r, "swarmd", "--devices takes cpu:N with N from 1 to");
	expect_said(&r, "swarmd", "or gpu, not \"tpu:2\"");
}

Test(e2e_devices, worker_gpu_without_a_gpu_exits_no_device)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0, "socketpair: %s",
		     strerror(errno));
	struct swarm_worker_stats *stats;
	int stats_fd = swarm_stats_create(&stats);
	cr_assert_geq(stats_fd, 0, "swarm_stats_create: %d", stats_fd);
	const char *argv[] = { SWARM_BIN_DIR "/swarm-worker",
			       "--ctl-fd",
			       "3",
			       "--stats-fd",
			       "4",
			       "--device-index",
			       "0",
			       "--name",
			       "gpu:0",
			       "--cpus",
			       "0",
			       "--gpu",
			       "0",
			       NULL };
	struct ran r;
	run_prog(argv, sv[1], stats_fd, &r);
	close(sv[1]);

	cr_expect_eq(r.status, SWARM_WORKER_EXIT_NO_DEVICE,
		     "swarm-worker --gpu 0 with no GPU: exit %d, want %d", r.status,
		     SWARM_WORKER_EXIT_NO_DEVICE);
	expect_said(&r, "swarm-worker", "event=device_failed device=gpu:0 gpu=0");
	expect_said(&r, "swarm-worker", "reason=\"no CUDA GPU: ");
	/* It never said it was ready: it must not serve the GPU's sessions on the CPU. */
	char buf[sizeof(struct swarm_msg_worker_ready) + 64];
	ssize_t n = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
	cr_expect_leq(n, 0, "the worker sent a %zd-byte message before exiting", n);
	close(sv[0]);
	close(stats_fd);
}

/* A worker that exits SWARM_WORKER_EXIT_NO_DEVICE takes its device out of service at once:
 * swarmd does not restart it into the same failure. */
Test(e2e_devices, worker_without_its_device_is_not_restarted)
{
	char dir[] = "/tmp/swarm-e2e-XXXXXX", sock[64], worker[64], log[64];
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof sock, "%s/swarmd.sock", dir);
	snprintf(worker, sizeof worker, "%s/worker.sh", dir);
	snprintf(log, sizeof log, "%s/swarmd.log", dir);
	FILE *f = fopen(worker, "w");
	cr_assert_not_null(f, "%s: %s", worker, strerror(errno));
	fprintf(f,
		"#!/bin/sh\necho 'event=device_failed reason=\"no CUDA GPU: test\"' >&2\n"
		"exit %d\n",
		SWARM_WORKER_EXIT_NO_DEVICE);
	fclose(f);
	chmod(worker, 0700);

	const char *argv[] = { SWARM_BIN_DIR "/swarmd",
			       "--socket",
			       sock,
			       "--devices",
			       "cpu:1",
			       "--worker",
			       worker,
			       NULL };
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nfd = open("/dev/null", O_RDONLY);
		if (lfd < 0 || nfd < 0 || dup2(nfd, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0)
			_exit(127);
		close_range(3, ~0u, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	/* Wait for the verdict, then a little longer: a restart would show by then. */
	struct ran r = { 0 };
	uint64_t end = h_now_ns() + 10 * H_SEC;
	int seen = 0;
	while (h_now_ns() < end && !seen) {
		int fd = open(log, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, r.out, sizeof r.out - 1) : 0;
		r.out[n > 0 ? n : 0] = 0;
		if (fd >= 0)
			close(fd);
		seen = strstr(r.out, "event=device_failed device=cpu:0") != NULL;
		h_sleep_ms(20);
	}
	h_sleep_ms(500);
	int fd = open(log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, r.out, sizeof r.out - 1) : 0;
	r.out[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
	kill(pid, SIGTERM);
	int status = h_child_wait(pid, 10 * H_SEC);
	cr_log_info("swarmd exited %d:\n%s", status, r.out);

	cr_expect(seen, "no event=device_failed for cpu:0 within 10 s:\n%s", r.out);
	expect_said(&r, "swarmd", "its worker could not open the device");
	int starts = 0;
	for (const char *p = r.out; (p = strstr(p, "event=worker_started")) != NULL; p++)
		starts++;
	cr_expect_eq(starts, 1, "%d worker starts, want 1 (no restart):\n%s", starts, r.out);
	cr_expect(strstr(r.out, "worker_restart") == NULL, "a restart was tried:\n%s", r.out);
	cr_expect_eq(status, 0, "swarmd exit %d after SIGTERM", status);
	unlink(worker);
	unlink(log);
	unlink(sock);
	rmdir(dir);
}

/* ---- the default -------------------------------------------------------------------------- */

Test(e2e_devices, default_without_a_gpu_serves_the_cpu)
{
	h_start(NULL, NULL);
	cr_expect(h_log_contains("event=no_gpus"), "no event=no_gpus in the log");
	cr_expect(h_log_contains("serving=cpu"), "no serving=cpu in the log");
	cr_expect(!h_log_contains("event=gpu_found"), "GPUs found with every GPU hidden");

	swarm_client *c = NULL;
	int rc = h_connect(&c);
	cr_assert_eq(rc, 0, "swarm_connect: %d (%s)", rc, swarm_strerror(rc));
	swarm_session_opts o = h_identity_opts();
	swarm_session *s = NULL;
	rc = h_open_working(c, "identity", &o, &s, 5 * H_SEC);
	cr_assert_eq(rc, 0, "identity session: %d (%s)", rc, swarm_strerror(rc));
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_expect_eq(strncmp(info.device_name, "cpu:", 4), 0, "served on \"%.32s\", want cpu:N",
		     info.device_name);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

/* ---- where there is a GPU ------------------------------------------------------------------ */

TestSuite(e2e_devices_gpu, .fini = teardown, .timeout = 60);

/* Skips the calling test, visibly, unless CUDA is built in and sees a GPU. */
static void require_gpu(void)
{
#ifdef SWARM_HAVE_CUDA
	int count = 0;
	int rc = swarm_cuda_device_count(&count);
	if (rc < 0 || count <= 0)
		cr_skip_test("no CUDA GPU on this machine: %s (%s)", swarm_cuda_last_error(),
			     strerror(rc < 0 ? -rc : ENODEV));
#else
	cr_skip_test("CUDA is not built in (configured without nvcc or with -DSWARM_CUDA=OFF)");
#endif
}

Test(e2e_devices_gpu, devices_gpu_serves_each_gpu_as_gpu_n)
{
	require_gpu();
	h_start("gpu", NULL);
	cr_expect(h_log_contains("event=gpu_found"), "no event=gpu_found in the log");
	cr_expect(h_log_contains("device=gpu:0"), "no device=gpu:0 in the log");

	swarm_client *c = NULL;
	int rc = h_connect(&c);
	cr_assert_eq(rc, 0, "swarm_connect: %d (%s)", rc, swarm_strerror(rc));
	swarm_session_opts o = h_identity_opts();
	swarm_session *s = NULL;
	rc = h_open_working(c, "identity", &o, &s, 10 * H_SEC);
	if (rc)
		h_print_log("no working identity session on a GPU");
	cr_assert_eq(rc, 0, "identity session: %d (%s)", rc, swarm_strerror(rc));
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	int idx = -1;
	char tail = 0;
	int n = sscanf(info.device_name, "gpu:%d%c", &idx, &tail);
	cr_expect_eq(n, 1, "device_name \"%.32s\" is not gpu:N", info.device_name);
	cr_expect_eq(idx, info.device_index, "device_name %s vs device_index %d", info.device_name,
		     info.device_index);
	swarm_session_close(s);
	swarm_disconnect(c);
	h_stop();
}

Test(e2e_devices, preload_refuses_a_malformed_list)
{
	static const char *const bad[] = { "scaler@0", "scaler@", "@3", "a,,b@x",
					   "a,b,c,d,e,f,g,h,i" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *argv[] = { SWARM_BIN_DIR "/swarmd", "--preload", bad[i], NULL };
		struct ran r;
		run_prog(argv, -1, -1, &r);
		cr_expect_eq(r.status, 2, "swarmd --preload %s: exit %d, want 2", bad[i], r.status);
		expect_said(&r, "swarmd", "--preload");
		cr_expect(strstr(r.out, "event=worker_started") == NULL,
			  "--preload %s started a worker:\n%s", bad[i], r.out);
	}
}
