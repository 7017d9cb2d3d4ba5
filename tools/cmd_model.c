/* cmd_model.c: `swarm model load|unload NAME[@V] [--device D]`: an operator's control of where a
 * model version is resident (docs/placement.md, "Operators"). Admins only (swarmd checks). */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/proto.h"
#include "tools/cmd.h"

static void model_usage(FILE *f)
{
	fprintf(f,
		"usage: swarm model load|unload NAME[@VERSION] [--device D] [--socket PATH]\n"
		"                  [--timeout S]\n"
		"\n"
		"  load NAME[@V]    load the version (default: the active one) on every device in\n"
		"                   service, or on --device D only, and pin it there: it is never\n"
		"                   evicted to make room for another model. Idle versions are\n"
		"                   evicted for it where room is short. Returns once every device\n"
		"                   has loaded it (or says which could not and why)\n"
		"  unload NAME[@V]  unpin it and let it go from every device (or D) where no\n"
		"                   session uses it; refused where sessions do, and for a version\n"
		"                   of swarmd --preload\n"
		"  --timeout S      how long a load may take, in seconds (default 600)\n"
		"\n"
		"Needs root, swarmd's own user or a member of its --admin-group.\n"
		"Exit status: 0 done, 1 refused, failed or swarmd unreachable, 2 bad usage.\n");
}

int swarm_cmd_split_ref(const char *ref, char *name, size_t len, uint32_t *version,
			int need_version)
{
	const char *at = strchr(ref, '@');
	size_t n = at ? (size_t)(at - ref) : strlen(ref);
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(name, ref, n);
	name[n] = 0;
	*version = 0;
	if (!at)
		return need_version ? -EINVAL : 0;
	char *end;
	unsigned long v = strtoul(at + 1, &end, 10);
	if (!at[1] || *end || v == 0 || v > UINT32_MAX)
		return -EINVAL;
	*version = (uint32_t)v;
	return 0;
}

int swarm_cmd_model(int argc, char **argv)
{
	const char *sock = NULL, *device = "";
	double timeout_s = 600;
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "device", required_argument, 0, 'd' },
					      { "timeout", required_argument, 0, 't' },
					      { "help", no_argument, 0, 'h' },
					      { 0, 0, 0, 0 } };
	optind = 1;
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		char *end;
		switch (o) {
		case 's':
			sock = optarg;
			break;
		case 'd':
			device = optarg;
			break;
		case 't':
			timeout_s = strtod(optarg, &end);
			if (*end || !(timeout_s > 0) || timeout_s > 86400) {
				fprintf(stderr,
					"swarm model: --timeout takes seconds, more than 0 "
					"and at most 86400, not \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			model_usage(stdout);
			return 0;
		default:
			model_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		model_usage(stderr);
		return 2;
	}
	const char *verb = argv[optind], *ref = argv[optind + 1];
	struct swarm_msg_model m;
	memset(&m, 0, sizeof m);
	swarm_msg_init(&m.h, SWARM_MSG_MODEL, sizeof m, 4);
	m.action = !strcmp(verb, "load")   ? SWARM_MODEL_LOAD :
		   !strcmp(verb, "unload") ? SWARM_MODEL_UNLOAD :
					     0;
	if (!m.action) {
		fprintf(stderr, "swarm model: unknown action \"%s\" (load or unload)\n", verb);
		model_usage(stderr);
		return 2;
	}
	if (swarm_cmd_split_ref(ref, m.model, sizeof m.model, &m.version, 0)) {
		fprintf(stderr, "swarm model: \"%s\" is not NAME or NAME@VERSION\n", ref);
		return 2;
	}
	if (strlen(device) >= sizeof m.device) {
		fprintf(stderr, "swarm model: no device is called \"%s\"\n", device);
		return 2;
	}
	swarm_copy_str(m.device, sizeof m.device, device);
	struct swarm_msg_reply rep;
	char err[512];
	if (swarm_cmd_call(sock, &m, sizeof m, SWARM_MSG_MODEL_REPLY, (int64_t)(timeout_s * 1000),
			   &rep, err, sizeof err)) {
		fprintf(stderr, "swarm model: %s\n", err);
		return 1;
	}
	if (rep.status) {
		fprintf(stderr, "swarm model %s %s: %s\n", verb, ref,
			rep.text[0] ? rep.text : swarm_strerror(rep.status));
		return 1;
	}
	printf("%s\n", rep.text);
	return 0;
}
