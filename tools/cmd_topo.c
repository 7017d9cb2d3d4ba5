/* cmd_topo.c: `swarm topo`, the machine as swarmd sees it (NUMA nodes with their cores and
 * memory, distances, GPUs with their nodes) and each device with the node and cores its worker
 * is bound to, as the kernel reports them; and `swarm device drain|resume NAME`, which takes a
 * device out of service (its sessions move first) or back.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "runtime/balancer.h"
#include "runtime/plan.h"
#include "runtime/topology.h"
#include "swarm/swarm.h"
#include "tools/cmd.h"
#include "tools/json_out.h"

#define TOPO_MAX_DEVICES SWARM_STATUS_MAX_DEVICES

static void topo_usage(FILE *f)
{
	fprintf(f,
		"usage: swarm topo [--socket PATH] [--topology FILE.xml] [--devices SPEC]\n"
		"                  [--instances N] [--json]\n"
		"\n"
		"Prints the NUMA nodes (cores, memory, package), their distances, the GPUs with\n"
		"the node each is attached to, and the devices: from a running swarmd, each with\n"
		"the cores and memory policy its worker has (read back from the kernel); with\n"
		"--topology, or when swarmd is not running, the plan swarmd would make (the same\n"
		"planner, runtime/plan.c: on this machine the GPUs the CUDA runtime finds, placed by\n"
		"their PCI bus ids; with --topology, the XML's GPUs).\n"
		"\n"
		"  --socket PATH        swarmd's socket ($SWARM_SOCKET, else the default)\n"
		"  --topology FILE.xml  an hwloc XML (lstopo --of xml) instead of this machine\n"
		"  --devices SPEC       for a plan: cpu:N, or gpu (default: the GPUs if there are\n"
		"                       any, else one CPU device per NUMA node)\n"
		"  --instances N        for a plan: N workers per device, as swarmd --instances\n"
		"                       (default 1)\n"
		"  --json               one JSON object, for scripts\n");
}

struct topo_dev {
	char name[32];
	const char *state;
	int pid;
	int numa_node;
	char cpus[SWARM_CPUS_MAX];
	char mem_policy[48];
};

/* The plan swarmd would make on t for --devices spec and --instances (runtime/plan.c): with
 * an XML (xml set), its GPUs; on this machine, those the CUDA runtime finds, as swarmd does.
 * Returns the device count, 0 with why, or -EINVAL for a bad spec. */
static int plan_devices(struct swarm_topology *t, int xml, const char *spec, int instances,
			struct topo_dev *out, char *why, size_t why_len)
{
	struct swarm_plan_request req = { .mode = SWARM_PLAN_DEFAULT, .instances = instances };
	if (spec && swarm_plan_parse_devices(spec, TOPO_MAX_DEVICES, &req))
		return -EINVAL;
	struct swarm_device_plan plan[TOPO_MAX_DEVICES];
	struct swarm_gpu_info gpus[TOPO_MAX_DEVICES];
	int gpu_of[TOPO_MAX_DEVICES];
	int n_gpus = 0;
	if (req.mode != SWARM_PLAN_CPU)
		n_gpus = xml ? swarm_topology_gpus(t, gpus, TOPO_MAX_DEVICES) :
			       swarm_plan_find_gpus(t, gpus, TOPO_MAX_DEVICES, why, why_len);
	if (xml && !n_gpus)
		snprintf(why, why_len, "the topology has no GPU");
	int n = swarm_plan_devices(t, &req, gpus, n_gpus, plan, gpu_of, TOPO_MAX_DEVICES, why,
				   why_len);
	for (int i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		snprintf(out[i].name, sizeof out[i].name, "%s", plan[i].name);
		out[i].state = "planned";
		out[i].numa_node = plan[i].numa_node;
		snprintf(out[i].cpus, sizeof out[i].cpus, "%s", plan[i].cpus);
		snprintf(out[i].mem_policy, sizeof out[i].mem_policy, "%s",
			 plan[i].numa_node >= 0 ? "bind (planned)" : "default");
	}
	return n;
}

static json_t *topo_json(struct swarm_topology *t, const char *source, const char *devices_from,
			 const struct swarm_gpu_info *gpus, int n_gpus, const struct topo_dev *devs,
			 int n_dev)
{
	int nn = swarm_topology_numa_count(t);
	json_t *nodes = json_array(), *gj = json_array(), *dj = json_array();
	for (int i = 0; i < nn; i++) {
		struct swarm_numa_info ni;
		swarm_topology_numa_info(t, i, &ni);
		json_t *dist = json_array();
		for (int j = 0; j < nn; j++)
			json_array_append_new(dist, json_integer(swarm_topology_distance(t, i, j)));
		json_array_append_new(nodes,
				      json_pack("{s:i, s:i, s:i, s:o, s:o, s:o}", "index", ni.index,
						"os_index", ni.os_index, "package", ni.package,
						"memory", swarm_json_u64(ni.memory), "cpus",
						swarm_json_str(ni.cpus), "distances", dist));
	}
	for (int i = 0; i < n_gpus; i++)
		json_array_append_new(
			gj, json_pack("{s:i, s:o, s:i, s:o}", "cuda_index", gpus[i].cuda_index,
				      "busid", swarm_json_str(gpus[i].busid), "numa_node",
				      gpus[i].numa_node, "model", swarm_json_str(gpus[i].model)));
	for (int i = 0; i < n_dev; i++)
		json_array_append_new(dj,
				      json_pack("{s:o, s:o, s:i, s:i, s:o, s:o}", "name",
						swarm_json_str(devs[i].name), "state",
						swarm_json_str(devs[i].state), "pid", devs[i].pid,
						"numa_node", devs[i].numa_node, "cpus",
						swarm_json_str(devs[i].cpus), "mem_policy",
						swarm_json_str(devs[i].mem_policy)));
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", "source", swarm_json_str(source),
			 "numa_nodes", nodes, "gpus", gj, "devices_from",
			 swarm_json_str(devices_from), "devices", dj);
}

static void print_text(struct swarm_topology *t, const char *source, const char *devices_from,
		       const struct swarm_gpu_info *gpus, int n_gpus, const struct topo_dev *devs,
		       int n_dev)
{
	int nn = swarm_topology_numa_count(t);
	printf("machine: %s, %d NUMA node(s) with cores, %d GPU(s)\n\n", source, nn, n_gpus);
	printf("%-6s %-4s %-8s %12s  %s\n", "NODE", "OS", "PACKAGE", "MEMORY", "CPUS");
	for (int i = 0; i < nn; i++) {
		struct swarm_numa_info ni;
		swarm_topology_numa_info(t, i, &ni);
		char pkg[16];
		if (ni.package >= 0)
			snprintf(pkg, sizeof pkg, "%d", ni.package);
		else
			snprintf(pkg, sizeof pkg, "-");
		printf("%-6d %-4d %-8s %8.1f GiB  %s\n", ni.index, ni.os_index, pkg,
		       (double)ni.memory / (double)(1ull << 30), ni.cpus);
	}
	if (nn > 1) {
		printf("\ndistances (10 = local):\n%6s", "");
		for (int j = 0; j < nn; j++)
			printf(" %5d", j);
		printf("\n");
		for (int i = 0; i < nn; i++) {
			printf("%6d", i);
			for (int j = 0; j < nn; j++)
				printf(" %5d", swarm_topology_distance(t, i, j));
			printf("\n");
		}
	}
	if (n_gpus) {
		printf("\n%-6s %-14s %-5s %s\n", "GPU", "PCI", "NODE", "MODEL");
		for (int i = 0; i < n_gpus; i++) {
			char node[16];
			if (gpus[i].numa_node >= 0)
				snprintf(node, sizeof node, "%d", gpus[i].numa_node);
			else
				snprintf(node, sizeof node, "-");
			printf("cuda%-2d %-14s %-5s %s\n", gpus[i].cuda_index, gpus[i].busid, node,
			       gpus[i].model[0] ? gpus[i].model : "-");
		}
	}
	printf("\ndevices (%s):\n", devices_from);
	printf("%-8s %-9s %-8s %-5s %-20s %s\n", "DEVICE", "STATE", "PID", "NODE", "CPUS",
	       "MEMORY POLICY");
	for (int i = 0; i < n_dev; i++) {
		char pid[16], node[16];
		if (devs[i].pid > 0)
			snprintf(pid, sizeof pid, "%d", devs[i].pid);
		else
			snprintf(pid, sizeof pid, "-");
		if (devs[i].numa_node >= 0)
			snprintf(node, sizeof node, "%d", devs[i].numa_node);
		else
			snprintf(node, sizeof node, "-");
		printf("%-8s %-9s %-8s %-5s %-20s %s\n", devs[i].name, devs[i].state, pid, node,
		       devs[i].cpus, devs[i].mem_policy);
	}
}

/* The command line, parsed. */
struct topo_opts {
	const char *sock, *xml, *spec; /* --socket, --topology, --devices */
	int json, instances;
};

/* argv into o: -1 to go on, else the exit status. */
static int topo_parse(int argc, char **argv, struct topo_opts *o)
{
	char *end;
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "topology", required_argument, 0, 't' },
					      { "devices", required_argument, 0, 'd' },
					      { "instances", required_argument, 0, 'i' },
					      { "json", no_argument, 0, 'j' },
					      { "help", no_argument, 0, 'h' },
					      { 0, 0, 0, 0 } };
	o->instances = 1;
	optind = 1;
	for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		switch (c) {
		case 's':
			o->sock = optarg;
			break;
		case 't':
			o->xml = optarg;
			break;
		case 'd':
			o->spec = optarg;
			break;
		case 'i':
			o->instances = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || o->instances < 1 ||
			    o->instances > TOPO_MAX_DEVICES) {
				fprintf(stderr,
					"swarm topo: --instances takes a count from 1 to %d, not "
					"\"%s\"\n",
					TOPO_MAX_DEVICES, optarg);
				return 2;
			}
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			topo_usage(stdout);
			return 0;
		default:
			topo_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "swarm topo: unexpected argument \"%s\"\n", argv[optind]);
		topo_usage(stderr);
		return 2;
	}
	return -1;
}

/* The devices a running swarmd reports, into devs; frees r. Their count. */
static int status_devices(struct swarm_msg_status_reply *r, struct topo_dev *devs,
			  char *devices_from, size_t len)
{
	int n_dev = 0;
	snprintf(devices_from, len, "swarmd pid %d, as the kernel reports", r->swarmd_pid);
	for (uint32_t i = 0; i < r->n_devices && i < TOPO_MAX_DEVICES; i++) {
		const struct swarm_status_device *dv = &r->devices[i];
		struct topo_dev *o = &devs[n_dev++];
		memset(o, 0, sizeof *o);
		snprintf(o->name, sizeof o->name, "%s", dv->name);
		o->state = swarm_device_state_name(dv->state);
		o->pid = dv->pid;
		o->numa_node = dv->numa_node;
		snprintf(o->cpus, sizeof o->cpus, "%s", dv->cpus);
		snprintf(o->mem_policy, sizeof o->mem_policy, "%s",
			 dv->mem_policy[0] ? dv->mem_policy : "-");
	}
	free(r);
	return n_dev;
}

/* The devices from a running swarmd (when no option asks for a plan) or as swarmd would plan
 * them, into devs: their count, or -1 after printing why with *status set to the exit status. */
static int topo_devices(struct swarm_topology *t, const struct topo_opts *o, struct topo_dev *devs,
			char *devices_from, size_t len, int *status)
{
	struct swarm_msg_status_reply *r = NULL;
	char err[512] = "", why[256] = "";
	if (!o->xml && !o->spec && o->instances == 1)
		r = swarm_cmd_fetch_status(o->sock, err, sizeof err);
	if (r)
		return status_devices(r, devs, devices_from, len);
	int n_dev = plan_devices(t, o->xml != NULL, o->spec, o->instances, devs, why, sizeof why);
	if (n_dev < 0) {
		fprintf(stderr, "swarm topo: --devices takes cpu:N (1 to %d) or gpu, not \"%s\"\n",
			TOPO_MAX_DEVICES, o->spec);
		*status = 2;
		return -1;
	}
	if (n_dev == 0) {
		fprintf(stderr, "swarm topo: swarmd would serve no device here: %s\n", why);
		*status = 1;
		return -1;
	}
	if (err[0])
		snprintf(devices_from, len, "planned; %s", err);
	else
		snprintf(devices_from, len, "planned");
	return n_dev;
}

int swarm_cmd_topo(int argc, char **argv)
{
	struct topo_opts o = { 0 };
	int status = topo_parse(argc, argv, &o);
	if (status >= 0)
		return status;
	struct swarm_topology *t = NULL;
	if (swarm_topology_load_io(o.xml, &t)) {
		fprintf(stderr, "swarm topo: cannot load %s\n",
			o.xml ? o.xml : "this machine's topology");
		return 1;
	}
	struct swarm_gpu_info gpus[TOPO_MAX_DEVICES];
	int n_gpus = swarm_topology_gpus(t, gpus, TOPO_MAX_DEVICES);
	struct topo_dev devs[TOPO_MAX_DEVICES];
	char devices_from[160];
	int n_dev = topo_devices(t, &o, devs, devices_from, sizeof devices_from, &status);
	if (n_dev < 0) {
		swarm_topology_free(t);
		return status;
	}
	const char *source = o.xml ? o.xml : "this machine";
	int rc = 0;
	if (o.json)
		rc = swarm_json_write(stdout, topo_json(t, source, devices_from, gpus, n_gpus, devs,
							n_dev));
	else
		print_text(t, source, devices_from, gpus, n_gpus, devs, n_dev);
	swarm_topology_free(t);
	if (rc)
		fprintf(stderr, "swarm topo: writing the JSON: %s\n", strerror(-rc));
	return rc ? 1 : 0;
}

static void device_usage(FILE *f)
{
	fprintf(f, "usage: swarm device drain|resume NAME [--socket PATH]\n"
		   "\n"
		   "  drain NAME    take the device (\"cpu:1\", \"gpu:0\") out of service: no new\n"
		   "                sessions; its sessions move to other devices at request\n"
		   "                boundaries, then its worker stops (PARKED)\n"
		   "  resume NAME   start a parked device's worker again; sessions spread onto it\n"
		   "\n"
		   "Exit status: 0 done, 1 refused or swarmd unreachable, 2 bad usage.\n");
}

int swarm_cmd_device(int argc, char **argv)
{
	const char *sock = NULL;
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "help", no_argument, 0, 'h' },
					      { 0, 0, 0, 0 } };
	optind = 1;
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		switch (o) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			device_usage(stdout);
			return 0;
		default:
			device_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		device_usage(stderr);
		return 2;
	}
	const char *verb = argv[optind], *name = argv[optind + 1];
	uint32_t action;
	if (!strcmp(verb, "drain"))
		action = SWARM_DEVICE_DRAIN;
	else if (!strcmp(verb, "resume"))
		action = SWARM_DEVICE_RESUME;
	else {
		fprintf(stderr, "swarm device: unknown action \"%s\"\n", verb);
		device_usage(stderr);
		return 2;
	}
	if (strlen(name) >= sizeof((struct swarm_msg_device *)0)->name) {
		fprintf(stderr, "swarm device: no device is called \"%s\"\n", name);
		return 2;
	}
	struct swarm_msg_device m;
	swarm_msg_init(&m.h, SWARM_MSG_DEVICE, sizeof m, 3);
	m.action = action;
	swarm_copy_str(m.name, sizeof m.name, name);
	struct swarm_msg_reply rep;
	char err[512];
	if (swarm_cmd_call(sock, &m, sizeof m, SWARM_MSG_DEVICE_REPLY, 0, &rep, err, sizeof err)) {
		fprintf(stderr, "swarm device: %s\n", err);
		return 1;
	}
	if (rep.status) {
		fprintf(stderr, "swarm device %s %s: %s\n", verb, name,
			rep.text[0] ? rep.text : swarm_strerror(rep.status));
		return 1;
	}
	printf("%s\n", rep.text);
	return 0;
}
