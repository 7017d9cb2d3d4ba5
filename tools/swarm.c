/* swarm.c: the `swarm` command line. `swarm status`: what swarmd serves, per device and per
 * session, from the workers' stats pages (read by swarmd without asking them); `swarm
 * registry`: the model registry (tools/cmd_registry.c); `swarm topo`: the machine and where
 * each device's worker runs (tools/cmd_topo.c); `swarm device`: take a device out of service
 * or back (tools/cmd_topo.c); `swarm run`: a served model on .npy inputs (tools/cmd_run.c);
 * `swarm import onnx`: an ONNX model into the registry (tools/cmd_import.c); `swarm health`:
 * whether swarmd is ready, as an exit status for scripts and probes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "runtime/autoscaler.h"
#include "runtime/balancer.h"
#include "runtime/log.h"
#include "runtime/build_info.h"
#include "swarm/swarm.h"
#include "tools/cmd.h"
#include "tools/json_out.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: swarm <command> [options]\n"
		"\n"
		"commands:\n"
		"  status [--socket PATH] [--json]   devices and sessions of a running swarmd;\n"
		"                                    exits 1, saying so, when no device is in\n"
		"                                    service\n"
		"  health [--socket PATH]            whether swarmd is ready (every device that\n"
		"                                    should serve serves, --preload models\n"
		"                                    loaded): exit 0 ready, 1 not ready (the\n"
		"                                    reason printed), 2 swarmd cannot be reached\n"
		"                                    (`swarm status --check` is the same)\n"
		"  topo [--json] [--topology XML]    NUMA nodes, GPUs, and where each device's\n"
		"                                    worker runs (swarm topo --help)\n"
		"  device drain|resume NAME          take a device out of service, or back\n"
		"  model load|unload NAME[@V] [--device D]  load a model version on the\n"
		"                                    devices and pin it there, or unpin it\n"
		"                                    and let it go (admins; docs/placement.md)\n"
		"  registry <command> ...            the model registry (swarm registry --help)\n"
		"  import onnx MODEL.onnx --name N   publish an ONNX model (swarm import --help)\n"
		"  run NAME[@V] --in IN=FILE.npy     run a served model on .npy inputs, write the\n"
		"                                    outputs as .npy (swarm run --help)\n"
		"  version, --version                swarm's version, client ABI and CUDA support\n"
		"  help, -h, --help                  this text\n"
		"\n"
		"The socket defaults to $SWARM_SOCKET, else swarmd's default path. Each wait on\n"
		"swarmd is bounded by $SWARM_TIMEOUT_MS milliseconds (default 10000; 0: none).\n"
		"Exit status: 0 on success, 1 when swarmd cannot be reached (or status finds no\n"
		"device in service), 2 on bad usage (health: see above).\n");
}

int swarm_cmd_connect(const char *path, char *err, size_t err_len)
{
	char def[108];
	if (!path || !*path)
		path = getenv("SWARM_SOCKET");
	if (!path || !*path) {
		swarm_default_socket(def, sizeof def);
		path = def;
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path) {
		snprintf(err, err_len, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	/* a stuck swarmd must not hang the CLI: every wait below is bounded */
	if (fd >= 0 && swarm_sock_set_timeout(fd, swarm_timeout_ms_default()) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int e = errno;
		snprintf(err, err_len, "cannot reach swarmd at %s: %s (is swarmd running?)", path,
			 e == EAGAIN ? "it did not accept within $SWARM_TIMEOUT_MS" : strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	struct swarm_msg_hello hello;
	swarm_msg_init(&hello.h, SWARM_MSG_HELLO, sizeof hello, 1);
	hello.pid = getpid();
	hello.cpu = -1;
	hello.numa_node = -1;
	struct swarm_msg_reply reply;
	int n = swarm_msg_send(fd, &hello, sizeof hello, NULL, 0);
	if (n == 0)
		n = swarm_msg_recv(fd, &reply, sizeof reply, NULL, NULL);
	int type = n > 0 ? swarm_msg_check(&reply, (size_t)n) : -ENOTCONN;
	if (type != SWARM_MSG_HELLO_REPLY || reply.status) {
		if (type == SWARM_MSG_HELLO_REPLY) {
			reply.text[sizeof reply.text - 1] = 0;
			snprintf(err, err_len, "swarmd refused: %s", reply.text);
		} else {
			snprintf(err, err_len, "swarmd did not answer the hello (%s)",
				 n == -EAGAIN ? "no answer within $SWARM_TIMEOUT_MS" :
						swarm_strerror(type < 0 ? type : -EBADMSG));
		}
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int swarm_cmd_call(const char *sock, const void *msg, size_t len, uint16_t reply_type,
		   int64_t timeout_ms, struct swarm_msg_reply *rep, char *err, size_t err_len)
{
	int fd = swarm_cmd_connect(sock, err, err_len);
	if (fd < 0)
		return fd;
	int n = timeout_ms ? swarm_sock_set_timeout(fd, timeout_ms) : 0;
	if (n == 0)
		n = swarm_msg_send(fd, msg, len, NULL, 0);
	if (n == 0)
		n = swarm_msg_recv(fd, rep, sizeof *rep, NULL, NULL);
	close(fd);
	if (n <= 0 || swarm_msg_check(rep, (size_t)n) != reply_type) {
		snprintf(err, err_len, "swarmd did not answer (%s)",
			 n == -EAGAIN ? "not within the time limit" :
					swarm_strerror(n < 0 ? n : -EBADMSG));
		return n < 0 ? n : -EBADMSG;
	}
	rep->text[sizeof rep->text - 1] = 0;
	return 0;
}

struct swarm_msg_status_reply *swarm_cmd_fetch_status(const char *sock, char *err, size_t err_len)
{
	int fd = swarm_cmd_connect(sock, err, err_len);
	if (fd < 0)
		return NULL;
	struct swarm_msg_hdr q;
	swarm_msg_init(&q, SWARM_MSG_STATUS, sizeof q, 2);
	struct swarm_msg_status_reply *r = malloc(sizeof *r);
	int n = r ? swarm_msg_send(fd, &q, sizeof q, NULL, 0) : -ENOMEM;
	if (n == 0)
		n = swarm_msg_recv(fd, r, sizeof *r, NULL, NULL);
	close(fd);
	if (n <= 0 || swarm_msg_check(r, (size_t)n) != SWARM_MSG_STATUS_REPLY) {
		snprintf(err, err_len, "swarmd sent no status (%s)",
			 n == -EAGAIN ? "no answer within $SWARM_TIMEOUT_MS" :
					swarm_strerror(n < 0 ? n : -EBADMSG));
		free(r);
		return NULL;
	}
	/* Strings arrive from another process: terminate them before anyone prints them. */
	for (uint32_t i = 0; i < SWARM_STATUS_MAX_DEVICES; i++) {
		struct swarm_status_device *dv = &r->devices[i];
		dv->name[sizeof dv->name - 1] = 0;
		dv->cpus[sizeof dv->cpus - 1] = 0;
		dv->mem_policy[sizeof dv->mem_policy - 1] = 0;
	}
	for (uint32_t i = 0; i < SWARM_STATUS_MAX_SESSIONS; i++)
		r->sessions[i].model[sizeof r->sessions[i].model - 1] = 0;
	for (uint32_t i = 0; i < SWARM_STATUS_MAX_RESIDENT; i++)
		r->resident[i].model[sizeof r->resident[i].model - 1] = 0;
	r->ready_text[sizeof r->ready_text - 1] = 0;
	return r;
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns == 0)
		snprintf(buf, len, "-");
	else if (ns < 10000)
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	else if (ns < 10000000)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else
		snprintf(buf, len, "%.1fms", ns / 1e6);
}

/* Each device's memory: budget and use, then one line per resident model version. */
static void print_memory(const struct swarm_msg_status_reply *r)
{
	char used[32], budget[32], bytes[32], idle[32];
	printf("\n%-8s %10s %10s  %-20s %10s %8s %10s\n", "DEVICE", "MEM-USED", "BUDGET",
	       "RESIDENT", "BYTES", "SESSIONS", "IDLE");
	for (uint32_t i = 0; i < r->n_devices && i < SWARM_STATUS_MAX_DEVICES; i++) {
		const struct swarm_status_device *dv = &r->devices[i];
		swarm_fmt_bytes(used, sizeof used, dv->mem_used);
		swarm_fmt_bytes(budget, sizeof budget, dv->mem_budget);
		int any = 0;
		for (uint32_t k = 0; k < r->n_resident && k < SWARM_STATUS_MAX_RESIDENT; k++) {
			const struct swarm_status_resident *e = &r->resident[k];
			if (e->device_index != dv->index)
				continue;
			char model[SWARM_NAME_MAX + 16];
			snprintf(model, sizeof model, "%s@%u%s%s", e->model, e->version,
				 e->shared ? "*" : "", e->pinned ? "+" : "");
			swarm_fmt_bytes(bytes, sizeof bytes, e->weights_bytes + e->other_bytes);
			fmt_ns(idle, sizeof idle,
			       e->last_used_ns && r->now_ns > e->last_used_ns
				       ? r->now_ns - e->last_used_ns
				       : 0);
			printf("%-8s %10s %10s  %-20s %10s %8u %10s\n", any ? "" : dv->name,
			       any ? "" : used, any ? "" : budget, model, bytes, e->sessions, idle);
			any = 1;
		}
		if (!any)
			printf("%-8s %10s %10s  %-20s\n", dv->name, used, budget, "-");
	}
	printf("(* shares its weights with another version there, + pinned: preloaded, "
	       "`swarm model load`, or\n the autoscaler's host of a model in use)\n");
}

/* The autoscaler's view (--autoscale): each model it follows, its target and hosts. */
static void print_autoscale(const struct swarm_msg_status_reply *r)
{
	if (!r->autoscale || !r->n_scaled)
		return;
	printf("\n%-20s %6s %-24s %6s %7s %8s %10s %10s %-9s\n", "AUTOSCALED", "TARGET", "HOSTS",
	       "ACTIVE", "WARMING", "SESSIONS", "RATE/S", "SERVICE/S", "LAST");
	for (uint32_t i = 0; i < r->n_scaled && i < SWARM_STATUS_MAX_SCALED; i++) {
		const struct swarm_status_scaled *e = &r->scaled[i];
		char model[SWARM_NAME_MAX + 16], hosts[256] = "-";
		size_t at = 0;
		snprintf(model, sizeof model, "%s@%u", e->model, e->version);
		for (uint32_t k = 0; k < r->n_devices && k < 64 && at < sizeof hosts - 1; k++)
			if (e->hosts >> k & 1)
				at += (size_t)snprintf(hosts + at, sizeof hosts - at, "%s%s",
						       at ? "," : "", r->devices[k].name);
		printf("%-20s %6u %-24s %6u %7u %8u %10.0f %10.0f %-9s\n", model, e->target, hosts,
		       e->active, e->warming, e->sessions, e->rate_long, e->service_rate,
		       e->reason ? swarm_as_reason_name(e->reason) : "-");
	}
}

static void print_table(const struct swarm_msg_status_reply *r)
{
	char p50[32], p99[32];
	printf("swarmd pid %d, up %.1f s, %u device(s), %u session(s)\n\n", r->swarmd_pid,
	       r->uptime_ns / 1e9, r->n_devices, r->total_sessions);
	printf("%-8s %-9s %-8s %-5s %-10s %-9s %8s %10s %8s %6s %9s %9s\n", "DEVICE", "STATE",
	       "PID", "NUMA", "CPUS", "IO", "SESSIONS", "REQUESTS", "ERRORS", "BUSY%", "P50",
	       "P99");
	for (uint32_t i = 0; i < r->n_devices && i < SWARM_STATUS_MAX_DEVICES; i++) {
		const struct swarm_status_device *dv = &r->devices[i];
		fmt_ns(p50, sizeof p50, dv->p50_ns);
		fmt_ns(p99, sizeof p99, dv->p99_ns);
		double busy = r->uptime_ns ? 100.0 * (double)dv->busy_ns / (double)r->uptime_ns : 0;
		printf("%-8s %-9s %-8d %-5d %-10s %-9s %8u %10llu %8llu %6.1f %9s %9s\n", dv->name,
		       swarm_device_state_name(dv->state), dv->pid, dv->numa_node, dv->cpus,
		       dv->io_backend == 1 ? "io_uring" :
		       dv->io_backend == 2 ? "epoll" :
					     "-",
		       dv->sessions, (unsigned long long)dv->requests,
		       (unsigned long long)dv->errors, busy, p50, p99);
	}
	print_memory(r);
	print_autoscale(r);
	if (!r->n_sessions)
		return;
	printf("\n%-8s %-7s %-10s %-12s %9s %10s %8s %9s %9s\n", "SESSION", "DEVICE", "CLIENT",
	       "MODEL", "IN-FLIGHT", "REQUESTS", "ERRORS", "P50", "P99");
	for (uint32_t i = 0; i < r->n_sessions && i < SWARM_STATUS_MAX_SESSIONS; i++) {
		const struct swarm_status_session *s = &r->sessions[i];
		char model[SWARM_NAME_MAX + 16], dev[16];
		snprintf(model, sizeof model, "%s@%u", s->model, s->model_version);
		if (s->device_index >= 0)
			snprintf(dev, sizeof dev, "%d", s->device_index);
		else
			snprintf(dev, sizeof dev, "lost");
		fmt_ns(p50, sizeof p50, s->p50_ns);
		fmt_ns(p99, sizeof p99, s->p99_ns);
		printf("%-8llu %-7s %-10d %-12s %9u %10llu %8llu %9s %9s\n",
		       (unsigned long long)s->session_id, dev, s->client_pid, model, s->in_flight,
		       (unsigned long long)s->requests, (unsigned long long)s->errors, p50, p99);
	}
}

/* `swarm health`: 0 ready, 1 not ready (why on stdout), 2 swarmd cannot be reached. */
static int health(const char *sock)
{
	char err[512];
	struct swarm_msg_status_reply *r = swarm_cmd_fetch_status(sock, err, sizeof err);
	if (!r) {
		fprintf(stderr, "swarm health: %s\n", err);
		return 2;
	}
	int ready = r->ready != 0;
	if (ready)
		printf("ready\n");
	else
		printf("not ready: %s\n", r->ready_text[0] ? r->ready_text : "(no reason given)");
	free(r);
	return ready ? 0 : 1;
}

/* 1 when at least one device of r serves sessions. */
static int any_in_service(const struct swarm_msg_status_reply *r)
{
	for (uint32_t i = 0; i < r->n_devices && i < SWARM_STATUS_MAX_DEVICES; i++)
		if (r->devices[i].state == SWARM_DEVICE_ACTIVE)
			return 1;
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	const char *sock = NULL;
	int json = 0, check = 0;
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "json", no_argument, 0, 'j' },
					      { "check", no_argument, 0, 'c' },
					      { "help", no_argument, 0, 'h' },
					      { 0, 0, 0, 0 } };
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		switch (o) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'c':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (check)
		return health(sock);
	char err[512];
	struct swarm_msg_status_reply *r = swarm_cmd_fetch_status(sock, err, sizeof err);
	if (!r) {
		fprintf(stderr, "swarm status: %s\n", err);
		return 1;
	}
	int rc = 0;
	if (json)
		rc = swarm_json_write(stdout, swarm_status_json(r));
	else
		print_table(r);
	int serving = any_in_service(r);
	if (!serving)
		fprintf(stderr, "swarm status: no device is in service (%s)\n", r->ready_text);
	free(r);
	if (rc)
		fprintf(stderr, "swarm status: writing the JSON: %s\n", strerror(-rc));
	return rc || !serving ? 1 : 0;
}

static int cmd_health(int argc, char **argv)
{
	const char *sock = NULL;
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "help", no_argument, 0, 'h' },
					      { 0, 0, 0, 0 } };
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		if (o == 's') {
			sock = optarg;
		} else if (o == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	return health(sock);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		swarm_build_print_version("swarm");
		return 0;
	}
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "health"))
		return cmd_health(argc - 1, argv + 1);
	if (!strcmp(argv[1], "registry"))
		return swarm_cmd_registry(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return swarm_cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "import"))
		return swarm_cmd_import(argc - 1, argv + 1);
	if (!strcmp(argv[1], "topo"))
		return swarm_cmd_topo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "device"))
		return swarm_cmd_device(argc - 1, argv + 1);
	if (!strcmp(argv[1], "model"))
		return swarm_cmd_model(argc - 1, argv + 1);
	fprintf(stderr, "swarm: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
