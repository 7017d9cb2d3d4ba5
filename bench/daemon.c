/* daemon.c: starting and stopping the benchmark's own swarmd (daemon.h). */
#include "bench/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONNECT_NS (10ull * 1000 * 1000 * 1000)

void bench_log_tail(const char *path)
{
	char buf[2048];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0, SEEK_SET);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	fprintf(stderr, "swarm-bench: last lines of %s:\n%s%s", path, buf,
		buf[n - 1] == '\n' ? "" : "\n");
}

int bench_swarmd_stop(struct bench_swarmd *d)
{
	int status = 0;
	bool killed = false;
	if (d->pid <= 0)
		return 0;
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		pid_t w = waitpid(d->pid, &status, WNOHANG);
		if (w == d->pid || (w < 0 && errno != EINTR))
			goto reaped;
		usleep(10000);
	}
	fprintf(stderr, "swarm-bench: swarmd (pid %d) ignored SIGTERM for 5 s; killing it\n",
		(int)d->pid);
	kill(d->pid, SIGKILL);
	killed = true;
	while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
		;
reaped:
	d->pid = 0;
	if (killed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "swarm-bench: swarmd did not stop cleanly (see below)\n");
		bench_log_tail(d->log);
		return -ECHILD;
	}
	return 0;
}

int bench_swarmd_start(struct bench_swarmd *d, const char *exe_dir, const char *sock,
		       const char *devices, unsigned spin_us, const char *registry,
		       swarm_client **out)
{
	char path[PATH_MAX], spin[16];
	int rc;
	d->pid = 0;
	if (snprintf(path, sizeof path, "%s/swarmd", exe_dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if (access(path, X_OK) != 0) {
		rc = -errno;
		fprintf(stderr, "swarm-bench: cannot run %s: %s (build swarmd, or pass --socket)\n",
			path, strerror(-rc));
		return rc;
	}
	snprintf(spin, sizeof spin, "%u", spin_us);
	unlink(sock); /* left by an earlier swarmd */
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0) {
		rc = -errno;
		d->pid = 0;
		fprintf(stderr, "swarm-bench: fork: %s\n", strerror(-rc));
		return rc;
	}
	if (d->pid == 0) {
		const char *argv[] = { path,        "--socket", sock,         "--devices", devices,
				       "--spin-us", spin,       "--registry", registry,    NULL };
		if (!registry)
			argv[7] = NULL;
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		/* swarmd stops (and stops its workers) should this benchmark die. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		execv(path, (char *const *)argv);
		fprintf(stderr, "swarm-bench: exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	uint64_t deadline = swarm_now_ns() + CONNECT_NS;
	for (;;) {
		swarm_client *c;
		int status;
		rc = swarm_connect(sock, &c);
		if (rc == 0) {
			if (out)
				*out = c;
			else
				swarm_disconnect(c);
			return 0;
		}
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			fprintf(stderr, "swarm-bench: swarmd exited before it accepted a client\n");
			bench_log_tail(d->log);
			return -ECHILD;
		}
		if (swarm_now_ns() > deadline)
			break;
		usleep(20000);
	}
	fprintf(stderr, "swarm-bench: no connection to swarmd on %s in 10 s: %s\n", sock,
		swarm_strerror(rc));
	bench_swarmd_stop(d);
	return rc;
}
