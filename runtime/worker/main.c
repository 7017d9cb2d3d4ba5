/* main.c: swarm-worker's entry point. swarmd starts one worker per device in service and
 * hands it its control socket and stats page as inherited descriptors; the worker binds to
 * the device's cores and NUMA node before it allocates anything, opens its device (the CPU,
 * or a CUDA GPU with --gpu), says WORKER_READY, and serves until swarmd or a signal stops it
 * (loop.c). Not meant to be run by hand.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cpu/staged_device.h"
#include "runtime/build_info.h"
#include "runtime/log.h"
#include "runtime/topology.h"
#include "runtime/worker/worker.h"
#ifdef SWARM_HAVE_CUDA
#include "kernels/cuda/probe.h"
#endif

static void on_term(int sig)
{
	(void)sig;
	worker_sigterm = 1; /* read by the loop after every pass; a sleep ends at the next tick */
}

/* The CUDA device on GPU ordinal, or -errno with why in why ("no CUDA GPU: ..."). */
static int open_gpu(int ordinal, struct swarm_device **out, char *why, size_t why_len)
{
	int err = swarm_device_cuda_create(ordinal, out);
	if (!err)
		return 0;
#ifdef SWARM_HAVE_CUDA
	const char *detail = swarm_cuda_last_error();
#else
	const char *detail = "";
#endif
	if (err == -ENOTSUP)
		snprintf(
			why, why_len,
			"no CUDA GPU: CUDA is not built into this swarm-worker (configured without "
			"nvcc or with -DSWARM_CUDA=OFF)");
	else
		snprintf(why, why_len, "no CUDA GPU: cannot open GPU %d: %s%s%s", ordinal,
			 detail && *detail ? detail : "", detail && *detail ? "; " : "",
			 strerror(-err));
	return err;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm-worker --ctl-fd N --stats-fd N --device-index N --name NAME\n"
		"                    --cpus LIST [--numa NODE] [--gpu ORDINAL] [--spin-us N]\n"
		"                    [--log-level L] [--log-format kv|json]\n"
		"Serves one device for swarmd, which starts it; not meant to be run by hand.\n"
		"  --ctl-fd N      the control socket inherited from swarmd\n"
		"  --stats-fd N    the stats page memfd inherited from swarmd\n"
		"  --cpus LIST     cores to bind to (cpulist, e.g. 0-3)\n"
		"  --gpu ORDINAL   run node-list graphs on CUDA GPU ORDINAL (default: on the CPU\n"
		"                  device, with a thread per bound core); exits 3 with the reason\n"
		"                  logged when that GPU cannot be opened\n"
		"  --numa NODE     NUMA node for memory (-1: leave it)\n"
		"  --spin-us N     spin this long with nothing to do before sleeping (default 50)\n"
		"  --log-format F  kv (default) or json: one JSON object per log line\n"
		"  --registry DIR  the model registry to load weights blobs from\n"
		"  --no-verify     do not check a blob's SHA-256 when loading it\n"
		"  --load-mode M   how a GPU's weights are read: auto (default), mmap, pread,\n"
		"                  direct or register (docs/registry.md, \"Loading\")\n"
		"  --backend-dir D where manifests' custom backends named without a path are\n"
		"                  found\n"
		"  --help          this text\n"
		"  --version       print swarm-worker's version, client ABI and CUDA support\n"
		"Environment: SWARM_NO_IO_URING=1 uses epoll in place of io_uring (and no\n"
		"io_uring for direct loads); SWARM_LOAD_MODE=M as --load-mode (the option wins);\n"
		"SWARM_LOAD_THREADS=N pread threads (default: the bound cores, at most 16).\n"
		"SWARM_WORKER_STAGED=1 (tests only; without --gpu) runs node-list graphs on the\n"
		"staged CPU device, whose memory is its own, as a GPU's is.\n");
}

/* What the command line gives besides the worker's own fields. */
struct args {
	int stats_fd;
	int level;
	int log_format; /* a swarm_log_format */
	const char *load_mode;
};

static const struct option long_opts[] = { { "ctl-fd", required_argument, 0, 'c' },
					   { "stats-fd", required_argument, 0, 's' },
					   { "device-index", required_argument, 0, 'd' },
					   { "name", required_argument, 0, 'n' },
					   { "cpus", required_argument, 0, 'C' },
					   { "numa", required_argument, 0, 'N' },
					   { "spin-us", required_argument, 0, 'S' },
					   { "log-level", required_argument, 0, 'l' },
					   { "log-format", required_argument, 0, 'F' },
					   { "registry", required_argument, 0, 'r' },
					   { "no-verify", no_argument, 0, 'V' },
					   { "backend-dir", required_argument, 0, 'B' },
					   { "gpu", required_argument, 0, 'G' },
					   { "load-mode", required_argument, 0, 'L' },
					   { "help", no_argument, 0, 'h' },
					   { "version", no_argument, 0, 'v' },
					   { 0, 0, 0, 0 } };

/* Applies option o (getopt_long's value) with its argument arg. Returns -1 to go on, or the
 * exit status: 0 after --help or --version, 2 for a bad option or value. */
static int apply_option(struct worker *w, struct args *a, int o, const char *arg)
{
	switch (o) {
	case 'c':
		w->ctl = atoi(arg);
		break;
	case 's':
		a->stats_fd = atoi(arg);
		break;
	case 'd':
		w->device_index = atoi(arg);
		break;
	case 'n':
		swarm_copy_str(w->name, sizeof w->name, arg);
		break;
	case 'C':
		swarm_copy_str(w->cpus, sizeof w->cpus, arg);
		break;
	case 'N':
		w->numa_node = atoi(arg);
		break;
	case 'S':
		w->spin_ns = strtoull(arg, NULL, 10) * 1000;
		break;
	case 'l':
		a->level = swarm_log_parse_level(arg);
		break;
	case 'F':
		a->log_format = swarm_log_parse_format(arg);
		if (a->log_format < 0) {
			fprintf(stderr, "swarm-worker: --log-format takes kv or json, not \"%s\"\n",
				arg);
			return 2;
		}
		break;
	case 'r':
		swarm_copy_str(w->registry, sizeof w->registry, arg);
		break;
	case 'V':
		w->verify_blobs = 0;
		break;
	case 'B':
		swarm_copy_str(w->backend_dir, sizeof w->backend_dir, arg);
		break;
	case 'G': {
		char *end;
		long g = strtol(arg, &end, 10);
		if (!*arg || *end || g < 0 || g > INT_MAX) {
			fprintf(stderr, "swarm-worker: --gpu takes an ordinal, not \"%s\"\n", arg);
			return 2;
		}
		w->gpu = (int)g;
		break;
	}
	case 'L':
		a->load_mode = arg;
		break;
	case 'h':
		usage(stdout);
		return 0;
	case 'v':
		swarm_build_print_version("swarm-worker");
		return 0;
	default:
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Reads the command line into w and a, and starts the log. Returns -1 to go on, or the exit
 * status. */
static int parse_args(struct worker *w, struct args *a, int argc, char **argv)
{
	for (int o; (o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1;) {
		int rc = apply_option(w, a, o, optarg);
		if (rc >= 0)
			return rc;
	}
	swarm_log_init("worker", a->level < 0 ? SWARM_LOG_INFO : a->level);
	swarm_log_set_format(a->log_format);
	if (a->load_mode && *a->load_mode &&
	    (w->load.mode = swarm_load_mode_parse(a->load_mode)) < 0) {
		fprintf(stderr,
			"swarm-worker: --load-mode takes auto, mmap, pread, direct or "
			"register, not \"%s\"\n",
			a->load_mode);
		return 2;
	}
	if (w->ctl < 0 || a->stats_fd < 0 || w->device_index < 0 || !w->cpus[0]) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Opens the worker's device: --gpu's, else the CPU device with a thread per bound core.
 * Returns 0 or the exit status, the reason logged. */
static int open_device(struct worker *w)
{
	int err;
	if (w->gpu >= 0) {
		char why[320];
		err = open_gpu(w->gpu, &w->dev, why, sizeof why);
		if (err) {
			swarm_log(SWARM_LOG_ERROR,
				  "event=device_failed device=%s gpu=%d reason=\"%s\"", w->name,
				  w->gpu, why);
			return SWARM_WORKER_EXIT_NO_DEVICE;
		}
		swarm_log(SWARM_LOG_INFO, "event=device_open device=%s kind=%s gpu=%d", w->name,
			  w->dev->i->name ? w->dev->i->name : "?", w->gpu);
		return 0;
	}
	/* Node-list graphs run on the CPU device, its threads on the cores bound to. */
	cpu_set_t cpus;
	int threads = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
	/* SWARM_WORKER_STAGED=1: the staged CPU device, a test device whose memory is its own,
	 * so that the GPU's batch path runs without a GPU (docs/devices.md). */
	const char *staged = getenv("SWARM_WORKER_STAGED");
	threads = threads > 0 ? threads : 1;
	err = staged && *staged == '1' ? swarm_device_staged_cpu_create(threads, 0, &w->dev) :
					 swarm_device_cpu_create(threads, &w->dev);
	if (!err && w->dev->i->host_memory == 0)
		swarm_log(SWARM_LOG_INFO,
			  "event=device_open device=%s kind=%s note=\"a test device\"", w->name,
			  w->dev->i->name);
	if (err) {
		swarm_log(SWARM_LOG_ERROR, "event=device_failed error=\"%s\"", strerror(-err));
		return 1;
	}
	return 0;
}

/* Says WORKER_READY to swarmd, with where the worker is bound and note, the binding's notes.
 * Returns 0 or -errno. */
static int send_ready(struct worker *w, const char *note)
{
	struct swarm_msg_worker_ready ready;
	swarm_msg_init(&ready.h, SWARM_MSG_WORKER_READY, sizeof ready, 0);
	ready.device_index = w->device_index;
	ready.pid = getpid();
	ready.numa_node = w->numa_node;
	ready.io_backend = swarm_loop_backend(w->loop);
	/* What the kernel gives back, not what was asked: swarm topo and its test compare
	 * these with /proc. */
	if (swarm_topology_read_binding(ready.cpus, sizeof ready.cpus, ready.mem_policy,
					sizeof ready.mem_policy))
		swarm_copy_str(ready.cpus, sizeof ready.cpus, w->cpus);
	swarm_copy_str(ready.text, sizeof ready.text, note);
	ready.mem_total = ready.mem_free = 0; /* host memory: swarmd budgets it by NUMA node */
	if (w->dev->i->mem_info &&
	    w->dev->i->mem_info(w->dev, &ready.mem_free, &ready.mem_total) < 0)
		ready.mem_total = ready.mem_free = 0;
	swarm_log(SWARM_LOG_INFO,
		  "event=worker_ready device=%s cpus=%s numa=%d io=%s mem=\"%s\" bind=\"%s\"",
		  w->name, ready.cpus, w->numa_node,
		  ready.io_backend == SWARM_LOOP_IO_URING ? "io_uring" : "epoll", ready.mem_policy,
		  note);
	return ctl_send(w, &ready, sizeof ready, NULL, 0);
}

int main(int argc, char **argv)
{
	struct worker w;
	worker_defaults(&w);
	w.keep_idle = 1;
	struct args a = { .stats_fd = -1,
			  .level = SWARM_LOG_INFO,
			  .load_mode = getenv("SWARM_LOAD_MODE") };
	int rc = parse_args(&w, &a, argc, argv);
	if (rc >= 0)
		return rc;
	/* Bind first: everything allocated after this lands on the device's node. */
	char note[SWARM_MSG_TEXT_MAX];
	int err = swarm_topology_bind_self(w.cpus, w.numa_node, note, sizeof note);
	if (err)
		swarm_log(SWARM_LOG_WARN, "event=bind_failed cpus=%s error=\"%s\"", w.cpus, note);
	if (swarm_stats_map(a.stats_fd, &w.stats)) {
		swarm_log(SWARM_LOG_ERROR, "event=stats_map_failed");
		return 1;
	}
	close(a.stats_fd);
	w.stats->pid = getpid();
	w.stats->device_index = w.device_index;
	w.stats->magic = SWARM_STATS_MAGIC;
	if ((rc = open_device(&w)))
		return rc;
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	const char *no_uring = getenv("SWARM_NO_IO_URING");
	const char *load_threads = getenv("SWARM_LOAD_THREADS");
	/* After binding: the default counts the cores bound to. */
	w.load.threads = load_threads && atoi(load_threads) > 0 ? (unsigned)atoi(load_threads) :
								  swarm_load_default_threads();
	w.load.no_uring = no_uring && *no_uring == '1';
	if (worker_open_loop(&w, no_uring && *no_uring == '1'))
		return 1;
	if (send_ready(&w, note)) {
		swarm_log(SWARM_LOG_ERROR, "event=ctl_send_failed");
		return 1;
	}
	worker_run(&w);
	worker_fini(&w);
	swarm_log(SWARM_LOG_INFO, "event=worker_exit device=%s", w.name);
	return 0;
}
