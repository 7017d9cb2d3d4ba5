/* cmd_run.c: `swarm run`, the first thing a user does with a model: it runs a served model once
 * (or N times, timing it) through swarmd on .npy inputs and writes each output as .npy.
 *
 *   swarm run NAME[@V] --in INPUT=FILE.npy ... [--out DIR] [--repeat N] [--json]
 *             [--socket PATH]
 *
 * Each input's .npy must hold the input's dtype (f32, f16, i64 or i32) and its shape with the
 * batch first: [rows, dims...] (a file of exactly the row's dims, with no batch, is one row).
 * Every error names the input and what the model expects.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "swarm/swarm.h"
#include "tools/cmd.h"
#include "tools/json_out.h"
#include "tools/npy.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
		"usage: swarm run NAME[@VERSION] --in INPUT=FILE.npy ... [--out DIR] [--repeat N]\n"
		"                 [--json] [--socket PATH]\n"
		"\n"
		"Runs the served model NAME (its active version, or VERSION) through swarmd on the\n"
		"given inputs, one .npy file per model input, and writes each output to\n"
		"DIR/OUTPUT.npy (DIR default: .; characters other than letters, digits, '.', '-' and\n"
		"'_' in an output's name become '_').\n"
		"\n"
		"  --in NAME=FILE  an input: a .npy of the input's dtype (float32, float16, int64 or\n"
		"                  int32) and shape [rows, ...] (the batch first; without it, one row)\n"
		"  --out DIR       where the outputs go (made if missing)\n"
		"  --repeat N      run N times more and print p50 and p99 round-trip latency\n"
		"  --json          print one JSON object: model, version, rows, outputs (paths),\n"
		"                  and with --repeat, p50_ns and p99_ns\n"
		"  --socket PATH   swarmd's socket (default $SWARM_SOCKET, else swarmd's default)\n"
		"\n"
		"Exit status: 0 ran, 1 failed (swarmd unreachable, a model error), 2 bad usage or\n"
		"inputs (the message names the input and what the model expects).\n");
}

/* ---- the command ------------------------------------------------------------------------------
 */

/* "[-1, 3, 48, 192]" into buf. */
static const char *spec_shape(const swarm_tensor_spec *s, char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "[");
	for (uint32_t i = 0; i < s->ndim && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%" PRId64, i ? ", " : "",
					s->shape[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* mkdir -p: 0, or -1 with errno set. */
static int mkdir_p(const char *dir)
{
	char p[4096];
	if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			return -1;
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(p, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* out's file name for an output: unsafe characters replaced by '_'. */
static void safe_name(const char *name, char *buf, size_t len)
{
	size_t i = 0;
	for (; name[i] && i + 1 < len; i++) {
		char c = name[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
		buf[i] = ok ? c : '_';
	}
	buf[i] = 0;
	if (!strcmp(buf, ".") || !strcmp(buf, "..") || !buf[0])
		snprintf(buf, len, "output");
}

#define MAX_IN 16

int swarm_cmd_run(int argc, char **argv)
{
	static const struct option lo[] = { { "in", required_argument, 0, 'i' },
					    { "out", required_argument, 0, 'o' },
					    { "repeat", required_argument, 0, 'r' },
					    { "json", no_argument, 0, 'j' },
					    { "socket", required_argument, 0, 's' },
					    { "help", no_argument, 0, 'h' },
					    { 0, 0, 0, 0 } };
	const char *ins[MAX_IN], *out_dir = ".", *sock = NULL;
	int n_ins = 0, json = 0, c;
	long repeat = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (n_ins == MAX_IN) {
				fprintf(stderr, "swarm run: at most %d --in\n", MAX_IN);
				return EXIT_USAGE;
			}
			ins[n_ins++] = optarg;
			break;
		case 'o':
			out_dir = optarg;
			break;
		case 'r': {
			char *e;
			repeat = strtol(optarg, &e, 10);
			if (*e || repeat < 1 || repeat > 10000000) {
				fprintf(stderr, "swarm run: --repeat %s: 1..10000000\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'j':
			json = 1;
			break;
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	char model[SWARM_NAME_MAX];
	uint32_t version = 0;
	const char *ref = argv[optind], *at = strchr(ref, '@');
	size_t mlen = at ? (size_t)(at - ref) : strlen(ref);
	if (mlen == 0 || mlen >= sizeof model) {
		fprintf(stderr, "swarm run: \"%s\" is not NAME[@VERSION]\n", ref);
		return EXIT_USAGE;
	}
	memcpy(model, ref, mlen);
	model[mlen] = 0;
	if (at) {
		char *e;
		unsigned long v = strtoul(at + 1, &e, 10);
		if (*e || v == 0 || v > UINT32_MAX) {
			fprintf(stderr, "swarm run: \"%s\": the version is a positive integer\n",
				ref);
			return EXIT_USAGE;
		}
		version = (uint32_t)v;
	}

	swarm_client *cl;
	int rc = swarm_connect(sock, &cl);
	if (rc) {
		fprintf(stderr, "swarm run: cannot reach swarmd: %s (%s)\n", swarm_strerror(rc),
			swarm_last_error());
		return EXIT_FAIL;
	}
	swarm_session *s = NULL;
	struct swarm_npy data[MAX_IN] = { 0 };
	int status = EXIT_FAIL;
	char why[512] = "";
	/* One row per request unless the files carry more: the session's slots must fit them. */
	rc = swarm_session_open(cl, model, version, NULL, &s);
	if (rc) {
		fprintf(stderr, "swarm run: %s%s%s: %s (%s)\n", model, version ? "@" : "",
			version ? at + 1 : "", swarm_strerror(rc), swarm_client_error(cl));
		goto out;
	}
	swarm_session_info info;
	swarm_session_info_get(s, &info);
	uint32_t n_in = swarm_session_num_inputs(s), n_out = swarm_session_num_outputs(s);
	int which[MAX_IN];
	for (uint32_t i = 0; i < n_in; i++)
		which[i] = -1;
	for (int k = 0; k < n_ins; k++) {
		const char *eq = strchr(ins[k], '=');
		if (!eq || eq == ins[k] || !eq[1]) {
			fprintf(stderr, "swarm run: --in %s: give INPUT=FILE.npy\n", ins[k]);
			status = EXIT_USAGE;
			goto out;
		}
		uint32_t i = 0;
		for (; i < n_in; i++) {
			const swarm_tensor_spec *sp = swarm_session_input_spec(s, i);
			if (strlen(sp->name) == (size_t)(eq - ins[k]) &&
			    !strncmp(sp->name, ins[k], (size_t)(eq - ins[k])))
				break;
		}
		if (i == n_in) {
			fprintf(stderr, "swarm run: --in %.*s: %s has no such input; its inputs:",
				(int)(eq - ins[k]), ins[k], model);
			for (uint32_t j = 0; j < n_in; j++) {
				char sb[96];
				const swarm_tensor_spec *sp = swarm_session_input_spec(s, j);
				fprintf(stderr, " %s %s %s", sp->name,
					swarm_npy_dtype_name(sp->dtype),
					spec_shape(sp, sb, sizeof sb));
			}
			fprintf(stderr, "\n");
			status = EXIT_USAGE;
			goto out;
		}
		if (which[i] >= 0) {
			fprintf(stderr, "swarm run: input %s given twice\n",
				swarm_session_input_spec(s, i)->name);
			status = EXIT_USAGE;
			goto out;
		}
		which[i] = k;
		if (swarm_npy_read(eq + 1, &data[i], why, sizeof why)) {
			fprintf(stderr, "swarm run: input %s: %s\n",
				swarm_session_input_spec(s, i)->name, why);
			status = EXIT_USAGE;
			goto out;
		}
	}
	uint32_t rows = 0;
	for (uint32_t i = 0; i < n_in; i++) {
		const swarm_tensor_spec *sp = swarm_session_input_spec(s, i);
		char sb[96];
		if (which[i] < 0) {
			fprintf(stderr,
				"swarm run: input %s (%s %s) not given: add --in %s=FILE.npy\n",
				sp->name, swarm_npy_dtype_name(sp->dtype),
				spec_shape(sp, sb, sizeof sb), sp->name);
			status = EXIT_USAGE;
			goto out;
		}
		struct swarm_npy *d = &data[i];
		/* [rows, dims...] or the row's dims alone (one row) */
		int batched = d->ndim == sp->ndim;
		int ok = d->dtype == sp->dtype && (batched || d->ndim + 1 == sp->ndim);
		for (uint32_t k = 1; ok && k < sp->ndim; k++)
			ok = d->shape[batched ? k : k - 1] == sp->shape[k];
		uint32_t r = batched ? (uint32_t)d->shape[0] : 1;
		if (!ok || r == 0) {
			char gb[128] = "(";
			for (uint32_t k = 0; k < d->ndim; k++)
				snprintf(gb + strlen(gb), sizeof gb - strlen(gb), "%s%" PRId64,
					 k ? ", " : "", d->shape[k]);
			strcat(gb, ")");
			fprintf(stderr,
				"swarm run: input %s: the file holds %s %s; %s expects %s %s (rows "
				"first, -1 is the batch)\n",
				sp->name, swarm_npy_dtype_name(d->dtype), gb, model,
				swarm_npy_dtype_name(sp->dtype), spec_shape(sp, sb, sizeof sb));
			status = EXIT_USAGE;
			goto out;
		}
		if (rows && r != rows) {
			fprintf(stderr, "swarm run: input %s holds %u rows, another input %u\n",
				sp->name, r, rows);
			status = EXIT_USAGE;
			goto out;
		}
		rows = r;
	}
	if (rows > info.max_rows) {
		fprintf(stderr,
			"swarm run: the inputs hold %u rows; %s takes %u a request (its deploy "
			"max_rows)\n",
			rows, model, info.max_rows);
		status = EXIT_USAGE;
		goto out;
	}
	uint64_t *lat = repeat ? malloc((size_t)repeat * sizeof *lat) : NULL;
	if (repeat && !lat)
		goto out;
	swarm_request *r = NULL;
	for (long it = 0; it <= repeat; it++) {
		uint64_t t0 = swarm_now_ns();
		if ((rc = swarm_request_alloc(s, rows, &r)))
			break;
		for (uint32_t i = 0; i < n_in; i++)
			memcpy(swarm_request_input(r, i), data[i].data, data[i].bytes);
		if ((rc = swarm_request_submit(r, 0)) || (rc = swarm_request_wait(r, -1)))
			break;
		if (it > 0)
			lat[it - 1] = swarm_now_ns() - t0;
		if (it < repeat) {
			swarm_request_release(r);
			r = NULL;
		}
	}
	if (rc) {
		fprintf(stderr, "swarm run: the request failed: %s (%s)\n", swarm_strerror(rc),
			swarm_client_error(cl));
		free(lat);
		goto out;
	}
	if (mkdir_p(out_dir) != 0) {
		fprintf(stderr, "swarm run: --out %s: %s\n", out_dir, strerror(errno));
		free(lat);
		goto out;
	}
	char paths[MAX_IN][4096];
	for (uint32_t i = 0; i < n_out && i < MAX_IN; i++) {
		const swarm_tensor_spec *sp = swarm_session_output_spec(s, i);
		char fname[SWARM_NAME_MAX + 8];
		safe_name(sp->name, fname, sizeof fname);
		snprintf(paths[i], sizeof paths[i], "%s/%s.npy", out_dir, fname);
		int64_t shape[SWARM_MAX_DIMS];
		memcpy(shape, sp->shape, sizeof shape);
		shape[0] = rows;
		rc = swarm_npy_write(paths[i], sp->dtype, sp->ndim, shape,
				     swarm_request_output(r, i), rows * sp->row_bytes);
		if (rc) {
			fprintf(stderr, "swarm run: writing %s: %s\n", paths[i], strerror(-rc));
			free(lat);
			goto out;
		}
	}
	swarm_request_release(r);
	uint64_t p50 = 0, p99 = 0;
	if (repeat) {
		qsort(lat, (size_t)repeat, sizeof *lat, cmp_u64);
		p50 = lat[repeat / 2];
		p99 = lat[(size_t)((double)repeat * 0.99) < (size_t)repeat ?
				  (size_t)((double)repeat * 0.99) :
				  (size_t)repeat - 1];
	}
	free(lat);
	if (json) {
		json_t *doc = json_pack("{s:o, s:I, s:o, s:I}", "model", swarm_json_str(model),
					"version", (json_int_t)info.model_version, "device",
					swarm_json_str(info.device_name), "rows", (json_int_t)rows);
		if (repeat) { /* jansson takes a NULL doc (no memory) as a failed set */
			json_object_set_new(doc, "repeat", json_integer(repeat));
			json_object_set_new(doc, "p50_ns", swarm_json_u64(p50));
			json_object_set_new(doc, "p99_ns", swarm_json_u64(p99));
		}
		json_t *outs = json_object();
		for (uint32_t i = 0; i < n_out && i < MAX_IN; i++)
			swarm_json_set(outs, swarm_session_output_spec(s, i)->name,
				       swarm_json_str(paths[i]));
		json_object_set_new(doc, "outputs", outs);
		if (swarm_json_write(stdout, doc)) {
			fprintf(stderr, "swarm run: writing the JSON failed\n");
			goto out;
		}
	} else {
		printf("%s@%u on %s: %u row%s\n", model, info.model_version, info.device_name, rows,
		       rows == 1 ? "" : "s");
		for (uint32_t i = 0; i < n_out && i < MAX_IN; i++)
			printf("  %s -> %s\n", swarm_session_output_spec(s, i)->name, paths[i]);
		if (repeat) {
			const bool ms = p50 >= 10000000;
			printf("  %ld runs: p50 %.1f %s, p99 %.1f %s\n", repeat,
			       (double)p50 / (ms ? 1e6 : 1e3), ms ? "ms" : "us",
			       (double)p99 / (ms ? 1e6 : 1e3), ms ? "ms" : "us");
		}
	}
	status = EXIT_OK;
out:
	for (int i = 0; i < MAX_IN; i++)
		free(data[i].data);
	if (s)
		swarm_session_close(s);
	swarm_disconnect(cl);
	return status;
}
