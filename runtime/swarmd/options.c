/* options.c: swarmd's command line, into cfg (swarmd.h). Every value is checked here, with a
 * message naming the option and what it takes: nothing half-parsed reaches the daemon. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/build_info.h"
#include "runtime/log.h"
#include "runtime/size.h"
#include "runtime/swarmd/swarmd.h"
#include "swarm/swarm.h"

static void usage_scaling(FILE *f);

/* --help: written for help2man, which makes swarmd(8) of it. */
static void usage(FILE *f)
{
	fprintf(f,
		"Usage: swarmd [options]\n"
		"The swarm control plane: serves models to local clients through shared memory.\n"
		"\n"
		"  --socket PATH        listen here (default: $SWARM_SOCKET, else\n"
		"                       $XDG_RUNTIME_DIR/swarm/swarmd.sock, else\n"
		"                       /tmp/swarm-$UID/swarmd.sock)\n"
		"  --devices cpu:N      serve N virtual CPU devices, spread over NUMA nodes and\n"
		"                       cores\n"
		"  --devices gpu        serve every CUDA GPU, one worker each, named gpu:0,\n"
		"                       gpu:1, ...; fails at startup, saying why, when there is\n"
		"                       no GPU or swarmd was built without CUDA\n"
		"                       (default: the GPUs when there are any, else one CPU\n"
		"                       device per NUMA node)\n"
		"  --instances N        N workers per device (as Triton's instance_group count),\n"
		"                       named gpu:0/0, gpu:0/1, ..., each a device of its own\n"
		"                       with its share of the device's cores; workers on one GPU\n"
		"                       share one copy of identical weights (default 1)\n"
		"  --topology FILE.xml  plan devices on an hwloc XML topology, not this machine\n"
		"  --device-memory SIZE  the memory each device's model versions may use (bytes,\n"
		"                       or K/M/G/T in powers of 1024); a GPU's is at most its\n"
		"                       free memory less the reserve (default: that for a GPU,\n"
		"                       half the NUMA node's memory shared by its devices for\n"
		"                       a CPU device; docs/placement.md)\n"
		"  --device-memory-reserve SIZE  a GPU's free memory at start kept out of its\n"
		"                       budget, for CUDA's own use (default 1G)\n"
		"  --spin-us N          a worker spins N us with nothing to do before it sleeps\n"
		"                       (default 50; 0 sleeps at once)\n"
		"  --allow-user U       also accept clients of user U (name or uid; repeatable;\n"
		"                       default: only swarmd's own user)\n"
		"  --allow-group G      also accept clients in group G (name or gid; repeatable)\n"
		"  --admin-group G      its members may also drain and resume devices (`swarm\n"
		"                       device`), besides root and swarmd's own user (repeatable)\n"
		"  --registry DIR       the model registry (default: $SWARM_REGISTRY, else\n"
		"                       $XDG_DATA_HOME/swarm/registry, else\n"
		"                       ~/.local/share/swarm/registry); only the default may be\n"
		"                       absent (then the built-ins identity and affine serve)\n"
		"  --no-verify          do not check weights blobs' SHA-256 when loading them\n"
		"  --preload M[@V],...  load these models on every device as soon as its worker\n"
		"                       is ready, before any session asks (repeatable; up to %d;\n"
		"                       without @V the active version, followed as it changes).\n"
		"                       GPUs warming together get the weights by one NCCL\n"
		"                       broadcast from the GPU that read them (docs/devices.md)\n"
		"  --backend-dir DIR    where manifests' custom backends (graph.backend) are found\n"
		"                       when named without a path\n"
		"  --worker PATH        the swarm-worker binary (default: beside swarmd)\n"
		"  --log-level L        debug, info, warn or error (default info)\n"
		"  --log-format F       kv (default) or json: one JSON object a line, for log\n"
		"                       shippers (the workers' lines too)\n",
		MAX_PRELOAD);
	usage_scaling(f);
}

/* usage's second half: scaling, limits, metrics. */
static void usage_scaling(FILE *f)
{
	fprintf(f,
		"  --autoscale          power devices into and out of service with demand\n"
		"                       (docs/autoscaler.md): devices start parked but for\n"
		"                       --autoscale-idle; each model is placed on as many\n"
		"                       devices as its demand needs, within its min_devices,\n"
		"                       max_devices and latency_p99_us (built-in models: 1 to\n"
		"                       all; a registry model's max_devices defaults to 1)\n"
		"  --autoscale-idle N   devices kept in service while no session is open\n"
		"                       (default 1; 0 parks them all, and a first open waits\n"
		"                       for a device to warm up)\n"
		"  --autoscale-window-s S  low demand this long before a scale-down (default 60)\n"
		"  --autoscale-cooldown-s S  after a scale event, before a scale-down (default 30)\n"
		"  --autoscale-util F   busy fraction aimed at per device (default 0.6; above\n"
		"                       0.1, the scale-down hysteresis, at most 1)\n"
		"  --autoscale-peak-window-s S  the burst memory: capacity for the busiest second\n"
		"                       of the last S seconds stays in service (default 1800;\n"
		"                       0 off, at most 1800)\n"
		"  --autoscale-standby N  parked devices kept warm (worker started and ready,\n"
		"                       out of service) so that a scale-up is immediate\n"
		"                       (default 0)\n"
		"  --autoscale-trace FILE  write every decision's input and answer to FILE\n"
		"                       (for swarm-sim --replay FILE; about 200 bytes a model\n"
		"                       a tick: for diagnosis, not for production)\n"
		"  --max-sessions-per-client N  sessions one connection may hold (default: half\n"
		"                       the places of all devices, 256 a device; 0: no limit)\n"
		"  --max-sessions-per-user N  sessions one uid may hold over all its\n"
		"                       connections (default 0: no limit)\n"
		"  --max-session-bytes SIZE  one session's segment (bytes, or K/M/G/T in powers\n"
		"                       of 1024; default 0: only the protocol's 64G bound)\n"
		"  --max-user-bytes SIZE  the segments of one uid's sessions together (default:\n"
		"                       half the machine's memory; 0: no limit). An open past a\n"
		"                       limit gets -EDQUOT naming it\n"
		"  --max-connections N  connections swarmd holds at once (default 1024; 0: no\n"
		"                       limit); past it a client's hello gets -EUSERS\n"
		"  --max-connections-per-user N  of one uid (default: half of the above)\n"
		"  --hello-timeout-ms T  a connection that has not said hello within T is\n"
		"                       closed (default 5000; 0: never)\n"
		"  --metrics ADDR:PORT  Prometheus /metrics, /health/live and /health/ready over\n"
		"                       HTTP, e.g. 127.0.0.1:9464 or [::1]:9464; port 0 takes a\n"
		"                       free one, logged as event=metrics_listening (default\n"
		"                       off; docs/metrics.md)\n"
		"  -h, --help           this text\n"
		"      --version        print swarmd's version, client ABI and CUDA support\n"
		"\n"
		"Logs go to stderr, one key=value line per event; \"event=ready\" says every device\n"
		"is serving. SIGTERM or SIGINT stops swarmd and its workers.\n");
}

static int parse_id(const char *s, int user, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s && !*end) {
		*out = (unsigned)v;
		return 0;
	}
	if (user) {
		struct passwd *pw = getpwnam(s);
		if (pw) {
			*out = pw->pw_uid;
			return 0;
		}
	} else {
		struct group *gr = getgrnam(s);
		if (gr) {
			*out = gr->gr_gid;
			return 0;
		}
	}
	return -ENOENT;
}

/* --preload M[@V],...: adds each to cfg.preload. Returns 0, or -1 having said why. */
static int parse_preload(const char *arg)
{
	char buf[1024];
	swarm_copy_str(buf, sizeof buf, arg);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *at = strchr(tok, '@'), *end = NULL;
		unsigned long v = 0;
		if (at) {
			*at = 0;
			v = strtoul(at + 1, &end, 10);
		}
		if (!*tok || strlen(tok) >= SWARM_NAME_MAX ||
		    (at && (!at[1] || *end || !v || v > UINT32_MAX))) {
			fprintf(stderr,
				"swarmd: --preload takes MODEL or MODEL@VERSION (VERSION >= 1), "
				"comma-separated, not \"%s\"\n",
				arg);
			return -1;
		}
		if (cfg.n_preload == MAX_PRELOAD) {
			fprintf(stderr, "swarmd: --preload: at most %d models\n", MAX_PRELOAD);
			return -1;
		}
		swarm_copy_str(cfg.preload[cfg.n_preload].name, SWARM_NAME_MAX, tok);
		cfg.preload[cfg.n_preload++].version = (uint32_t)v;
	}
	return 0;
}

/* A count from 0 to max for --NAME. Returns 0, or 2 having said what it takes. */
static int parse_count(const char *name, const char *arg, unsigned long max, const char *what,
		       uint64_t *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);
	if (!*arg || *end || *arg == '-' || v > max) {
		fprintf(stderr, "swarmd: --%s takes %s from 0 to %lu, not \"%s\"\n", name, what,
			max, arg);
		return 2;
	}
	*out = v;
	return 0;
}

/* The limits on clients: connections, sessions, bytes (docs/control-plane.md, "Limits and
 * trust"). Returns 0 or 2. */
static int parse_limit(int o, const char *name, const char *arg)
{
	uint64_t v;
	if (o == 'b' || o == 'T') {
		if (swarm_size_parse(arg, &v)) {
			fprintf(stderr,
				"swarmd: --%s takes a size in bytes, or with K, M, G or T (powers "
				"of 1024), 0 for no limit; not \"%s\"\n",
				name, arg);
			return 2;
		}
		if (o == 'b')
			cfg.lim.session_bytes = v;
		else {
			cfg.lim.user_bytes = v;
			cfg.lim_user_bytes_given = 1;
		}
		return 0;
	}
	int sessions = o == 'm' || o == 'M';
	if (parse_count(name, arg, sessions ? 1000000 : 100000000,
			o == 'H' ? "milliseconds (0: never)" : "a count (0: no limit)", &v))
		return 2;
	switch (o) {
	case 'n':
		cfg.max_conns = (uint32_t)v;
		break;
	case 'N':
		cfg.max_conns_per_user = (uint32_t)v;
		cfg.lim_conns_user_given = 1;
		break;
	case 'H':
		cfg.hello_timeout_ns = v * 1000000ull;
		break;
	case 'm':
		cfg.lim.per_client = (uint32_t)v;
		cfg.lim_client_given = 1;
		break;
	case 'M':
		cfg.lim.per_user = (uint32_t)v;
		break;
	}
	return 0;
}

/* --allow-user, --allow-group, --admin-group. Returns 0 or 2. */
static int parse_access(int o, const char *arg)
{
	unsigned id;
	if (parse_id(arg, o == 'u', &id) < 0) {
		fprintf(stderr, "swarmd: no such %s \"%s\"\n", o == 'u' ? "user" : "group", arg);
		return 2;
	}
	if (o == 'a' && cfg.n_admin_gid < MAX_ALLOW)
		cfg.admin_gid[cfg.n_admin_gid++] = id;
	else if (o == 'u' && cfg.n_allow_uid < MAX_ALLOW)
		cfg.allow_uid[cfg.n_allow_uid++] = id;
	else if (o == 'g' && cfg.n_allow_gid < MAX_ALLOW)
		cfg.allow_gid[cfg.n_allow_gid++] = id;
	return 0;
}

#define OPT_AS_PEAK 1003 /* --autoscale-peak-window-s: a long option only */

/* --autoscale-*: each turns the autoscaler on. Returns 0 or 2. */
static int parse_autoscale(int o, const char *name, const char *arg)
{
	char *end;
	double v = strtod(arg, &end);
	int devices = o == 'I' || o == 'Y';
	/* util above the scale-down hysteresis: the policy refuses any other (it would decide
	 * nothing, silently, on every tick) */
	if (*end || !*arg || !(v >= 0) || (o == 'U' && (v <= cfg.as.cfg.hysteresis || v > 1)) ||
	    (devices && v > MAX_DEVICES) || v > 86400 ||
	    (o == OPT_AS_PEAK && v > SWARM_AS_PEAK_SLOTS)) {
		fprintf(stderr, "swarmd: --%s takes %s, not \"%s\"\n", name,
			devices  ? "a device count" :
			o == 'U' ? "a fraction above the scale-down hysteresis (0.1), at most 1" :
			o == OPT_AS_PEAK ? "seconds, 0 (off) to 1800" :
					   "seconds",
			arg);
		return 2;
	}
	cfg.as.on = 1;
	if (o == 'I')
		cfg.as.idle_floor = (uint32_t)v;
	else if (o == 'Y')
		cfg.as.standby = (uint32_t)v;
	else if (o == 'W')
		cfg.as.cfg.stable_window_ns = (uint64_t)(v * 1e9);
	else if (o == 'C')
		cfg.as.cfg.cooldown_ns = (uint64_t)(v * 1e9);
	else if (o == OPT_AS_PEAK)
		cfg.as.cfg.peak_window_ns = (uint64_t)(v * 1e9);
	else
		cfg.as.cfg.target_util = v;
	return 0;
}

/* --autoscale-trace FILE: also turns the autoscaler on. Returns 0 or 2. */
static int parse_trace(const char *arg)
{
	if (!*arg || strlen(arg) >= sizeof cfg.as.trace) {
		fprintf(stderr, "swarmd: --autoscale-trace takes a file name (below %zu bytes)\n",
			sizeof cfg.as.trace);
		return 2;
	}
	swarm_copy_str(cfg.as.trace, sizeof cfg.as.trace, arg);
	cfg.as.on = 1;
	return 0;
}

/* Where swarmd runs, what it serves, and how. Returns 0 or 2. */
static int parse_service(int o, const char *arg)
{
	char *end;
	switch (o) {
	case 's':
		swarm_copy_str(cfg.socket_path, sizeof cfg.socket_path, arg);
		break;
	case 'd':
		if (swarm_plan_parse_devices(arg, MAX_DEVICES, &cfg.devices)) {
			fprintf(stderr,
				"swarmd: --devices takes cpu:N with N from 1 to %d, or gpu, not "
				"\"%s\"\n",
				MAX_DEVICES, arg);
			return 2;
		}
		break;
	case 't':
		cfg.topo_xml = arg;
		break;
	case 'i':
		cfg.devices.instances = (int)strtol(arg, &end, 10);
		if (!*arg || *end || cfg.devices.instances < 1 ||
		    cfg.devices.instances > MAX_DEVICES) {
			fprintf(stderr,
				"swarmd: --instances takes a count from 1 to %d, not \"%s\"\n",
				MAX_DEVICES, arg);
			return 2;
		}
		break;
	case 'S':
		cfg.spin_us = strtoull(arg, &end, 10);
		if (*end || !*arg) {
			fprintf(stderr, "swarmd: --spin-us takes a number, not \"%s\"\n", arg);
			return 2;
		}
		break;
	case 'w':
		swarm_copy_str(cfg.worker_path, sizeof cfg.worker_path, arg);
		break;
	case 'l':
		cfg.log_level = swarm_log_parse_level(arg);
		if (cfg.log_level < 0) {
			fprintf(stderr, "swarmd: --log-level takes debug, info, warn or error\n");
			return 2;
		}
		break;
	case 'F':
		cfg.log_format = swarm_log_parse_format(arg);
		if (cfg.log_format < 0) {
			fprintf(stderr, "swarmd: --log-format takes kv or json, not \"%s\"\n", arg);
			return 2;
		}
		break;
	case 'r':
		swarm_copy_str(cfg.registry_dir, sizeof cfg.registry_dir, arg);
		cfg.registry_given = 1;
		break;
	case 'V':
		cfg.verify_blobs = 0;
		break;
	case 'B':
		swarm_copy_str(cfg.backend_dir, sizeof cfg.backend_dir, arg);
		break;
	case 'P':
		return parse_preload(arg) ? 2 : 0;
	case 'A':
		cfg.as.on = 1;
		break;
	}
	return 0;
}

/* --metrics ADDR:PORT: an IPv4 address, or an IPv6 one in brackets, and a port from 0 to
 * 65535. Returns 0, or 2 having said what it takes. */
static int parse_metrics(const char *arg)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	char *end;
	unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
	size_t n = colon ? (size_t)(colon - arg) : 0;
	int ok = colon && colon[1] && !*end && colon[1] != '-' && port <= 65535 && n &&
		 n < sizeof host;
	memset(&cfg.metrics.addr, 0, sizeof cfg.metrics.addr);
	if (ok) {
		memcpy(host, arg, n);
		host[n] = 0;
		struct sockaddr_in *v4 = (struct sockaddr_in *)&cfg.metrics.addr;
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&cfg.metrics.addr;
		if (host[0] == '[' && host[n - 1] == ']') {
			host[n - 1] = 0;
			ok = inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1;
			v6->sin6_family = AF_INET6;
			v6->sin6_port = htons((uint16_t)port);
		} else {
			ok = inet_pton(AF_INET, host, &v4->sin_addr) == 1;
			v4->sin_family = AF_INET;
			v4->sin_port = htons((uint16_t)port);
		}
	}
	if (!ok) {
		fprintf(stderr,
			"swarmd: --metrics takes ADDR:PORT, an IPv4 address or an IPv6 one in "
			"brackets and a port from 0 to 65535 (0: any free one), e.g. "
			"127.0.0.1:9464; not \"%s\"\n",
			arg);
		return 2;
	}
	cfg.metrics.on = 1;
	swarm_copy_str(cfg.metrics.text, sizeof cfg.metrics.text, arg);
	return 0;
}

#define OPT_METRICS 1000 /* long options only, beyond any short option's character */
#define OPT_DEVMEM 1001
#define OPT_DEVMEM_RESERVE 1002

/* --device-memory and --device-memory-reserve. Returns 0 or 2. */
static int parse_devmem(int o, const char *arg)
{
	uint64_t v;
	if (swarm_size_parse(arg, &v)) {
		fprintf(stderr,
			"swarmd: --%s takes a size in bytes, or with K, M, G or T (powers of "
			"1024); not \"%s\"\n",
			o == OPT_DEVMEM ? "device-memory" : "device-memory-reserve", arg);
		return 2;
	}
	*(o == OPT_DEVMEM ? &cfg.mem.budget : &cfg.mem.gpu_reserve) = v;
	return 0;
}

static const struct option opts[] = {
	{ "metrics", required_argument, 0, OPT_METRICS },
	{ "device-memory", required_argument, 0, OPT_DEVMEM },
	{ "device-memory-reserve", required_argument, 0, OPT_DEVMEM_RESERVE },
	{ "socket", required_argument, 0, 's' },
	{ "devices", required_argument, 0, 'd' },
	{ "topology", required_argument, 0, 't' },
	{ "spin-us", required_argument, 0, 'S' },
	{ "allow-user", required_argument, 0, 'u' },
	{ "allow-group", required_argument, 0, 'g' },
	{ "admin-group", required_argument, 0, 'a' },
	{ "max-connections", required_argument, 0, 'n' },
	{ "max-connections-per-user", required_argument, 0, 'N' },
	{ "hello-timeout-ms", required_argument, 0, 'H' },
	{ "worker", required_argument, 0, 'w' },
	{ "log-level", required_argument, 0, 'l' },
	{ "log-format", required_argument, 0, 'F' },
	{ "registry", required_argument, 0, 'r' },
	{ "no-verify", no_argument, 0, 'V' },
	{ "preload", required_argument, 0, 'P' },
	{ "backend-dir", required_argument, 0, 'B' },
	{ "autoscale", no_argument, 0, 'A' },
	{ "autoscale-idle", required_argument, 0, 'I' },
	{ "autoscale-window-s", required_argument, 0, 'W' },
	{ "autoscale-cooldown-s", required_argument, 0, 'C' },
	{ "autoscale-util", required_argument, 0, 'U' },
	{ "autoscale-standby", required_argument, 0, 'Y' },
	{ "autoscale-peak-window-s", required_argument, 0, OPT_AS_PEAK },
	{ "autoscale-trace", required_argument, 0, 'R' },
	{ "instances", required_argument, 0, 'i' },
	{ "max-sessions-per-client", required_argument, 0, 'm' },
	{ "max-sessions-per-user", required_argument, 0, 'M' },
	{ "max-session-bytes", required_argument, 0, 'b' },
	{ "max-user-bytes", required_argument, 0, 'T' },
	{ "help", no_argument, 0, 'h' },
	{ "version", no_argument, 0, 'v' },
	{ 0, 0, 0, 0 }
};

static void defaults(void)
{
	cfg.spin_us = 50;
	cfg.verify_blobs = 1;
	cfg.devices.instances = 1;
	cfg.log_level = SWARM_LOG_INFO;
	swarm_balancer_config_default(&cfg.bal);
	swarm_as_config_default(&cfg.as.cfg);
	cfg.as.idle_floor = 1;
	cfg.allow_uid[cfg.n_allow_uid++] = getuid();
	cfg.max_conns = 1024;
	cfg.hello_timeout_ns = 5000000000ull;
	cfg.mem.gpu_reserve = 1ull << 30;
}

int swarmd_options(int argc, char **argv)
{
	defaults();
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		const char *name = "";
		for (const struct option *p = opts; p->name; p++)
			if (p->val == o)
				name = p->name;
		int rc;
		if (o == OPT_METRICS)
			rc = parse_metrics(optarg);
		else if (o == OPT_DEVMEM || o == OPT_DEVMEM_RESERVE)
			rc = parse_devmem(o, optarg);
		else if (strchr("nNHmMbT", o))
			rc = parse_limit(o, name, optarg);
		else if (strchr("uga", o))
			rc = parse_access(o, optarg);
		else if (o == OPT_AS_PEAK || (o < 256 && strchr("IWCYU", o)))
			rc = parse_autoscale(o, name, optarg);
		else if (o == 'R')
			rc = parse_trace(optarg);
		else if (strchr("sdtiSwlFrVBPA", o))
			rc = parse_service(o, optarg);
		else if (o == 'h') {
			usage(stdout);
			return 1;
		} else if (o == 'v') {
			swarm_build_print_version("swarmd");
			return 1;
		} else {
			usage(stderr);
			return 2;
		}
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "swarmd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return 0;
}
