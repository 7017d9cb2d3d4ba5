/* daemon.c: starting and stopping the benchmark's own swarmd, and reading its devices'
 * counters (daemon.h). */
#include "bench/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/proto.h"

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

/* The child's side of bench_swarmd_start: swarmd's command line, its output appended to log,
 * then exec; never returns. */
__attribute__((noreturn)) static void bench_swarmd_exec(const char *log, const char *path,
							const char *sock, const char *devices,
							const char *spin, const char *registry,
							const char *topology,
							const char *const *extra, size_t n_extra)
{
	/* 7 fixed, 4 optional, the extra ones and the NULL. */
	const char *argv[12 + BENCH_SWARMD_EXTRA_MAX] = { path,    "--socket",  sock, "--devices",
							  devices, "--spin-us", spin };
	int argc = 7;
	if (registry) {
		argv[argc++] = "--registry";
		argv[argc++] = registry;
	}
	if (topology) {
		argv[argc++] = "--topology";
		argv[argc++] = topology;
	}
	for (size_t i = 0; i < n_extra; i++)
		argv[argc++] = extra[i];
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	/* swarmd stops (and stops its workers) should this benchmark die. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(126);
	execv(path, (char *const *)argv);
	fprintf(stderr, "swarm-bench: exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

int bench_swarmd_start(struct bench_swarmd *d, const char *exe_dir, const char *sock,
		       const char *devices, unsigned spin_us, const char *registry,
		       const char *topology, const char *const *extra, swarm_client **out)
{
	char path[PATH_MAX], spin[16];
	size_t n_extra = 0;
	int rc;
	d->pid = 0;
	while (extra && extra[n_extra])
		n_extra++;
	if (n_extra > BENCH_SWARMD_EXTRA_MAX) {
		fprintf(stderr, "swarm-bench: %zu extra swarmd arguments (at most %d)\n", n_extra,
			BENCH_SWARMD_EXTRA_MAX);
		return -E2BIG;
	}
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
	if (d->pid == 0)
		bench_swarmd_exec(d->log, path, sock, devices, spin, registry, topology, extra,
				  n_extra);
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

int bench_topology_one_cpu(const char *path, int cpu)
{
	static const char fmt[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!DOCTYPE topology SYSTEM \"hwloc2.dtd\">\n"
		"<topology version=\"2.0\">\n"
		"  <object type=\"Machine\" os_index=\"0\" cpuset=\"%1$s\" "
		"complete_cpuset=\"%1$s\" allowed_cpuset=\"%1$s\" nodeset=\"0x1\" "
		"complete_nodeset=\"0x1\" allowed_nodeset=\"0x1\" gp_index=\"1\">\n"
		"    <object type=\"Package\" os_index=\"0\" cpuset=\"%1$s\" "
		"complete_cpuset=\"%1$s\" nodeset=\"0x1\" complete_nodeset=\"0x1\" "
		"gp_index=\"2\">\n"
		"      <object type=\"NUMANode\" os_index=\"0\" cpuset=\"%1$s\" "
		"complete_cpuset=\"%1$s\" nodeset=\"0x1\" complete_nodeset=\"0x1\" "
		"gp_index=\"3\" local_memory=\"1073741824\"/>\n"
		"      <object type=\"Core\" os_index=\"%2$d\" cpuset=\"%1$s\" "
		"complete_cpuset=\"%1$s\" nodeset=\"0x1\" complete_nodeset=\"0x1\" "
		"gp_index=\"4\">\n"
		"        <object type=\"PU\" os_index=\"%2$d\" cpuset=\"%1$s\" "
		"complete_cpuset=\"%1$s\" nodeset=\"0x1\" complete_nodeset=\"0x1\" "
		"gp_index=\"5\"/>\n"
		"      </object>\n"
		"    </object>\n"
		"  </object>\n"
		"</topology>\n";
	char mask[16];
	FILE *f;
	int rc = 0;

	if (cpu < 0 || cpu >= 32)
		return -EINVAL;
	snprintf(mask, sizeof mask, "0x%08x", 1u << cpu);
	f = fopen(path, "we");
	if (!f)
		rc = -errno;
	else if (fprintf(f, fmt, mask, cpu) < 0)
		rc = -EIO;
	if (f && fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc)
		fprintf(stderr, "swarm-bench: writing %s: %s\n", path, strerror(-rc));
	return rc;
}

/* Connects to the swarmd on sock and says hello with the raw protocol, as `swarm status`
 * does (status and device control are not part of the client API). Returns the socket or
 * -errno. */
static int bench_raw_connect(const char *sock)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct swarm_msg_hello hello;
	struct swarm_msg_reply reply;
	if (strlen(sock) >= sizeof addr.sun_path)
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, sock);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	swarm_msg_init(&hello.h, SWARM_MSG_HELLO, sizeof hello, 1);
	hello.pid = getpid();
	hello.cpu = -1;
	hello.numa_node = -1;
	int n = swarm_msg_send(fd, &hello, sizeof hello, NULL, 0);
	if (n == 0)
		n = swarm_msg_recv(fd, &reply, sizeof reply, NULL, NULL);
	if (n <= 0 || swarm_msg_check(&reply, (size_t)n) != SWARM_MSG_HELLO_REPLY || reply.status) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int bench_swarmd_device_stats(const char *sock, int index, struct bench_device_stats *out)
{
	struct swarm_msg_hdr q;
	struct swarm_msg_status_reply *r = NULL;
	int n, rc;
	int fd = bench_raw_connect(sock);
	if (fd < 0)
		return fd;
	r = malloc(sizeof *r);
	swarm_msg_init(&q, SWARM_MSG_STATUS, sizeof q, 2);
	n = r ? swarm_msg_send(fd, &q, sizeof q, NULL, 0) : -ENOMEM;
	if (n == 0)
		n = swarm_msg_recv(fd, r, sizeof *r, NULL, NULL);
	if (n <= 0 || swarm_msg_check(r, (size_t)n) != SWARM_MSG_STATUS_REPLY) {
		rc = n < 0 ? n : -EPROTO;
		goto out;
	}
	if (index < 0 || (uint32_t)index >= r->n_devices || index >= SWARM_STATUS_MAX_DEVICES) {
		rc = -ENODEV;
		goto out;
	}
	*out = (struct bench_device_stats){ r->devices[index].requests, r->devices[index].batches,
					    r->devices[index].busy_ns };
	rc = 0;
out:
	close(fd);
	free(r);
	return rc;
}

int bench_swarmd_device_ctl(const char *sock, unsigned action, const char *name, char *text,
			    size_t text_len)
{
	struct swarm_msg_device m;
	struct swarm_msg_reply rep;
	snprintf(text, text_len, "cannot reach swarmd at %s", sock);
	int fd = bench_raw_connect(sock);
	if (fd < 0)
		return fd;
	swarm_msg_init(&m.h, SWARM_MSG_DEVICE, sizeof m, 3);
	m.action = action;
	swarm_copy_str(m.name, sizeof m.name, name);
	int n = swarm_msg_send(fd, &m, sizeof m, NULL, 0);
	if (n == 0)
		n = swarm_msg_recv(fd, &rep, sizeof rep, NULL, NULL);
	close(fd);
	if (n <= 0 || swarm_msg_check(&rep, (size_t)n) != SWARM_MSG_DEVICE_REPLY) {
		snprintf(text, text_len, "swarmd did not answer the device message");
		return n < 0 ? n : -EPROTO;
	}
	rep.text[sizeof rep.text - 1] = 0;
	snprintf(text, text_len, "%s", rep.text);
	return rep.status;
}
