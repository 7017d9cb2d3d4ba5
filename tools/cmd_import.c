/* cmd_import.c: `swarm import onnx MODEL.onnx --name NAME ...` runs the ONNX importer, a
 * Python program shipped with swarm (tools/import-onnx.py; docs/onnx.md), with this swarm as
 * the command that publishes. The importer needs the onnx and numpy packages: swarm looks for
 * them where the set-up commands put them, ${SWARM_CACHE:-~/.cache/swarm}/pylib, besides
 * Python's own path.
 *
 * Where the importer is: $SWARM_IMPORT_ONNX, else BINDIR/../share/swarm/import-onnx.py (an
 * installed swarm, its modules beside it), else the source tree this swarm was built from
 * (runtime/build_info.h). The interpreter is $PYTHON, else python3.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/build_info.h"
#include "tools/cmd.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm import onnx MODEL.onnx --name NAME [--registry DIR] [--activate]\n"
		"                         [--input NAME=DIMS ...] [--check] [--out DIR [--no-publish]]\n"
		"                         [--max-rows N] [--max-batch N] [--slots N]\n"
		"\n"
		"Turns an ONNX model (opsets 11 to 21) into a swarm model (a manifest node list and a\n"
		"safetensors weights file) and publishes it to the registry as a new version.\n"
		"\n"
		"  --name NAME        the model's name in the registry\n"
		"  --registry DIR     the registry (default: $SWARM_REGISTRY, else swarm's default)\n"
		"  --activate         make the new version the one served\n"
		"  --input NAME=DIMS  an input's dims, e.g. x=1x3x48x320: the batch first and\n"
		"                     included; it stays symbolic, the rest are fixed (needed where\n"
		"                     the model leaves a dim other than the batch open)\n"
		"  --check            list every node swarm cannot run, publish nothing\n"
		"  --out DIR          keep the manifest and weights in DIR (NAME.json,\n"
		"                     NAME.safetensors)\n"
		"  --no-publish       with --out: write the files only, touch no registry\n"
		"  --max-rows N       rows one request may carry (default 1)\n"
		"  --max-batch N      rows a batch may gather across requests (default 8)\n"
		"  --slots N          requests a session may hold at once (default 4)\n"
		"\n"
		"Needs python3 with the onnx and numpy packages (tools/install-deps.sh installs them\n"
		"into ~/.cache/swarm/pylib). docs/onnx.md lists the ops swarm runs and their limits.\n"
		"Exit status: 0 published (or --check found nothing unsupported), 1 refused, 2 bad\n"
		"usage.\n");
}

static int cmd_import_onnx(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	char script[PATH_MAX + 64], err[2 * PATH_MAX + 160];
	if (swarm_build_data_path("SWARM_IMPORT_ONNX", "import-onnx.py", "tools/import-onnx.py",
				  script, sizeof script, err, sizeof err)) {
		fprintf(stderr, "swarm import onnx: the importer is not installed (looked at %s)\n",
			err);
		return 1;
	}
	/* PYTHONPATH gains the set-up's package folder, after anything the user set. */
	const char *cache = getenv("SWARM_CACHE"), *home = getenv("HOME");
	char pylib[PATH_MAX];
	if (cache && *cache)
		snprintf(pylib, sizeof pylib, "%s/pylib", cache);
	else
		snprintf(pylib, sizeof pylib, "%s/.cache/swarm/pylib", home ? home : "/tmp");
	const char *pp = getenv("PYTHONPATH");
	size_t pplen = strlen(pylib) + (pp ? strlen(pp) : 0) + 2;
	char *path = malloc(pplen);
	if (!path)
		return 1;
	snprintf(path, pplen, "%s%s%s", pp && *pp ? pp : "", pp && *pp ? ":" : "", pylib);
	setenv("PYTHONPATH", path, 1);
	free(path);

	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	const char *py = getenv("PYTHON");
	if (!py || !*py)
		py = "python3";
	/* python3 SCRIPT ARGS... --swarm SELF */
	char **av = calloc((size_t)argc + 5, sizeof *av);
	if (!av)
		return 1;
	int k = 0;
	av[k++] = (char *)py;
	av[k++] = script;
	for (int i = 1; i < argc; i++)
		av[k++] = argv[i];
	if (n > 0) {
		av[k++] = "--swarm";
		av[k++] = self;
	}
	av[k] = NULL;
	fflush(NULL);
	execvp(py, av);
	fprintf(stderr, "swarm import onnx: cannot run %s: %s (install python3, or set $PYTHON)\n",
		py, strerror(errno));
	free(av);
	return 1;
}

int swarm_cmd_import(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "onnx"))
		return cmd_import_onnx(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "swarm import: %s%s%s (the format swarm imports is onnx)\n",
		argc >= 2 ? "unknown format \"" : "give a format", argc >= 2 ? argv[1] : "",
		argc >= 2 ? "\"" : "");
	usage(stderr);
	return 2;
}
