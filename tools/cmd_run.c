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

/* The command line, parsed. */
struct run_opts {
	const char *ins[MAX_IN]; /* the --in NAME=FILE arguments, as given */
	int n_ins;
	const char *out_dir, *sock;
	int json;
	long repeat;
	char model[SWARM_NAME_MAX];
	uint32_t version;        /* 0: the active one */
	const char *version_str; /* the text after '@', for messages */
};

/* NAME[@VERSION] into o: -1 to go on, else the exit status. */
static int parse_ref(const char *ref, struct run_opts *o)
{
	const char *at = strchr(ref, '@');
	size_t mlen = at ? (size_t)(at - ref) : strlen(ref);
	if (mlen == 0 || mlen >= sizeof o->model) {
		fprintf(stderr, "swarm run: \"%s\" is not NAME[@VERSION]\n", ref);
		return EXIT_USAGE;
	}
	memcpy(o->model, ref, mlen);
	o->model[mlen] = 0;
	if (at) {
		char *e;
		unsigned long v = strtoul(at + 1, &e, 10);
		if (*e || v == 0 || v > UINT32_MAX) {
			fprintf(stderr, "swarm run: \"%s\": the version is a positive integer\n",
				ref);
			return EXIT_USAGE;
		}
		o->version = (uint32_t)v;
		o->version_str = at + 1;
	}
	return -1;
}

/* argv into o: -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option lo[] = { { "in", required_argument, 0, 'i' },
					    { "out", required_argument, 0, 'o' },
					    { "repeat", required_argument, 0, 'r' },
					    { "json", no_argument, 0, 'j' },
					    { "socket", required_argument, 0, 's' },
					    { "help", no_argument, 0, 'h' },
					    { 0, 0, 0, 0 } };
	int c;
	o->out_dir = ".";
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (o->n_ins == MAX_IN) {
				fprintf(stderr, "swarm run: at most %d --in\n", MAX_IN);
				return EXIT_USAGE;
			}
			o->ins[o->n_ins++] = optarg;
			break;
		case 'o':
			o->out_dir = optarg;
			break;
		case 'r': {
			char *e;
			o->repeat = strtol(optarg, &e, 10);
			if (*e || o->repeat < 1 || o->repeat > 10000000) {
				fprintf(stderr, "swarm run: --repeat %s: 1..10000000\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'j':
			o->json = 1;
			break;
		case 's':
			o->sock = optarg;
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
	return parse_ref(argv[optind], o);
}

/* The session's input named by the first len characters of name, or n_in. */
static uint32_t find_input(swarm_session *s, const char *name, size_t len)
{
	uint32_t i = 0, n_in = swarm_session_num_inputs(s);
	for (; i < n_in; i++) {
		const swarm_tensor_spec *sp = swarm_session_input_spec(s, i);
		if (strlen(sp->name) == len && !strncmp(sp->name, name, len))
			break;
	}
	return i;
}

/* "--in X: MODEL has no such input; its inputs: ..." on stderr. */
static void no_such_input(swarm_session *s, const char *model, const char *arg, size_t len)
{
	fprintf(stderr, "swarm run: --in %.*s: %s has no such input; its inputs:", (int)len, arg,
		model);
	for (uint32_t j = 0; j < swarm_session_num_inputs(s); j++) {
		char sb[96];
		const swarm_tensor_spec *sp = swarm_session_input_spec(s, j);
		fprintf(stderr, " %s %s %s", sp->name, swarm_npy_dtype_name(sp->dtype),
			spec_shape(sp, sb, sizeof sb));
	}
	fprintf(stderr, "\n");
}

/* Each --in's file read into data[] at its input's index; given[i] says whether input i was.
 * 0, or EXIT_USAGE after saying which argument is wrong. */
static int read_inputs(swarm_session *s, const struct run_opts *o, struct swarm_npy *data,
		       bool *given)
{
	char why[512] = "";
	for (int k = 0; k < o->n_ins; k++) {
		const char *arg = o->ins[k], *eq = strchr(arg, '=');
		if (!eq || eq == arg || !eq[1]) {
			fprintf(stderr, "swarm run: --in %s: give INPUT=FILE.npy\n", arg);
			return EXIT_USAGE;
		}
		uint32_t i = find_input(s, arg, (size_t)(eq - arg));
		if (i == swarm_session_num_inputs(s)) {
			no_such_input(s, o->model, arg, (size_t)(eq - arg));
			return EXIT_USAGE;
		}
		const char *name = swarm_session_input_spec(s, i)->name;
		if (given[i]) {
			fprintf(stderr, "swarm run: input %s given twice\n", name);
			return EXIT_USAGE;
		}
		given[i] = true;
		if (swarm_npy_read(eq + 1, &data[i], why, sizeof why)) {
			fprintf(stderr, "swarm run: input %s: %s\n", name, why);
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* The rows d holds for the input sp: [rows, dims...] or the row's dims alone (one row); 0 when
 * its dtype or shape does not fit. */
static uint32_t input_rows(const struct swarm_npy *d, const swarm_tensor_spec *sp)
{
	int batched = d->ndim == sp->ndim;
	int ok = d->dtype == sp->dtype && (batched || d->ndim + 1 == sp->ndim);
	for (uint32_t k = 1; ok && k < sp->ndim; k++)
		ok = d->shape[batched ? k : k - 1] == sp->shape[k];
	return ok ? (batched ? (uint32_t)d->shape[0] : 1) : 0;
}

/* Every input given, of its dtype and shape, all with the same rows, no more than the session
 * takes: 0 with *rows set, or EXIT_USAGE after saying what the model expects. */
static int check_inputs(swarm_session *s, const char *model, const struct swarm_npy *data,
			const bool *given, uint32_t *rows)
{
	swarm_session_info info;
	swarm_session_info_get(s, &info);
	*rows = 0;
	for (uint32_t i = 0; i < swarm_session_num_inputs(s); i++) {
		const swarm_tensor_spec *sp = swarm_session_input_spec(s, i);
		const struct swarm_npy *d = &data[i];
		char sb[96];
		if (!given[i]) {
			fprintf(stderr,
				"swarm run: input %s (%s %s) not given: add --in %s=FILE.npy\n",
				sp->name, swarm_npy_dtype_name(sp->dtype),
				spec_shape(sp, sb, sizeof sb), sp->name);
			return EXIT_USAGE;
		}
		uint32_t r = input_rows(d, sp);
		if (r == 0) {
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
			return EXIT_USAGE;
		}
		if (*rows && r != *rows) {
			fprintf(stderr, "swarm run: input %s holds %u rows, another input %u\n",
				sp->name, r, *rows);
			return EXIT_USAGE;
		}
		*rows = r;
	}
	if (*rows > info.max_rows) {
		fprintf(stderr,
			"swarm run: the inputs hold %u rows; %s takes %u a request (its deploy "
			"max_rows)\n",
			*rows, model, info.max_rows);
		return EXIT_USAGE;
	}
	return 0;
}

/* Runs the request 1 + repeat times, timing all but the first into lat[]; *r is the last one,
 * still held. 0 or a swarm error. */
static int run_requests(swarm_session *s, const struct swarm_npy *data, uint32_t rows, long repeat,
			uint64_t *lat, swarm_request **r)
{
	int rc = 0;
	*r = NULL;
	for (long it = 0; it <= repeat; it++) {
		uint64_t t0 = swarm_now_ns();
		if ((rc = swarm_request_alloc(s, rows, r)))
			break;
		for (uint32_t i = 0; i < swarm_session_num_inputs(s); i++)
			memcpy(swarm_request_input(*r, i), data[i].data, data[i].bytes);
		if ((rc = swarm_request_submit(*r, 0)) || (rc = swarm_request_wait(*r, -1)))
			break;
		if (it > 0)
			lat[it - 1] = swarm_now_ns() - t0;
		if (it < repeat) {
			swarm_request_release(*r);
			*r = NULL;
		}
	}
	return rc;
}

/* Each output of r into out_dir/NAME.npy, its path into paths[]: 0, or -1 after saying why. */
static int write_outputs(swarm_session *s, swarm_request *r, uint32_t rows, const char *out_dir,
			 char (*paths)[4096])
{
	if (mkdir_p(out_dir) != 0) {
		fprintf(stderr, "swarm run: --out %s: %s\n", out_dir, strerror(errno));
		return -1;
	}
	for (uint32_t i = 0; i < swarm_session_num_outputs(s) && i < MAX_IN; i++) {
		const swarm_tensor_spec *sp = swarm_session_output_spec(s, i);
		char fname[SWARM_NAME_MAX + 8];
		safe_name(sp->name, fname, sizeof fname);
		snprintf(paths[i], sizeof paths[i], "%s/%s.npy", out_dir, fname);
		int64_t shape[SWARM_MAX_DIMS];
		memcpy(shape, sp->shape, sizeof shape);
		shape[0] = rows;
		int rc = swarm_npy_write(paths[i], sp->dtype, sp->ndim, shape,
					 swarm_request_output(r, i), rows * sp->row_bytes);
		if (rc) {
			fprintf(stderr, "swarm run: writing %s: %s\n", paths[i], strerror(-rc));
			return -1;
		}
	}
	return 0;
}

/* The result on stdout, as JSON or as text: 0, or -1 when the JSON could not be written. */
static int print_result(swarm_session *s, const struct run_opts *o, uint32_t rows,
			char (*paths)[4096], uint64_t p50, uint64_t p99)
{
	swarm_session_info info;
	swarm_session_info_get(s, &info);
	uint32_t n_out = swarm_session_num_outputs(s);
	if (o->json) {
		json_t *doc = json_pack("{s:o, s:I, s:o, s:I}", "model", swarm_json_str(o->model),
					"version", (json_int_t)info.model_version, "device",
					swarm_json_str(info.device_name), "rows", (json_int_t)rows);
		if (o->repeat) { /* jansson takes a NULL doc (no memory) as a failed set */
			json_object_set_new(doc, "repeat", json_integer(o->repeat));
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
			return -1;
		}
		return 0;
	}
	printf("%s@%u on %s: %u row%s\n", o->model, info.model_version, info.device_name, rows,
	       rows == 1 ? "" : "s");
	for (uint32_t i = 0; i < n_out && i < MAX_IN; i++)
		printf("  %s -> %s\n", swarm_session_output_spec(s, i)->name, paths[i]);
	if (o->repeat) {
		const bool ms = p50 >= 10000000;
		printf("  %ld runs: p50 %.1f %s, p99 %.1f %s\n", o->repeat,
		       (double)p50 / (ms ? 1e6 : 1e3), ms ? "ms" : "us",
		       (double)p99 / (ms ? 1e6 : 1e3), ms ? "ms" : "us");
	}
	return 0;
}

/* Runs the inputs read into data on s, writes the outputs and prints the result: the exit
 * status. */
static int run_session(swarm_client *cl, swarm_session *s, const struct run_opts *o,
		       const struct swarm_npy *data, uint32_t rows)
{
	uint64_t *lat = o->repeat ? malloc((size_t)o->repeat * sizeof *lat) : NULL;
	if (o->repeat && !lat)
		return EXIT_FAIL;
	swarm_request *r;
	int rc = run_requests(s, data, rows, o->repeat, lat, &r);
	if (rc) {
		fprintf(stderr, "swarm run: the request failed: %s (%s)\n", swarm_strerror(rc),
			swarm_client_error(cl));
		free(lat);
		return EXIT_FAIL;
	}
	char paths[MAX_IN][4096];
	if (write_outputs(s, r, rows, o->out_dir, paths)) {
		free(lat);
		return EXIT_FAIL;
	}
	swarm_request_release(r);
	uint64_t p50 = 0, p99 = 0;
	if (o->repeat) {
		size_t n = (size_t)o->repeat, k99 = (size_t)((double)n * 0.99);
		qsort(lat, n, sizeof *lat, cmp_u64);
		p50 = lat[n / 2];
		p99 = lat[k99 < n ? k99 : n - 1];
	}
	free(lat);
	return print_result(s, o, rows, paths, p50, p99) ? EXIT_FAIL : EXIT_OK;
}

int swarm_cmd_run(int argc, char **argv)
{
	struct run_opts o = { 0 };
	int status = parse_args(argc, argv, &o);
	if (status >= 0)
		return status;
	swarm_client *cl;
	int rc = swarm_connect(o.sock, &cl);
	if (rc) {
		fprintf(stderr, "swarm run: cannot reach swarmd: %s (%s)\n", swarm_strerror(rc),
			swarm_last_error());
		return EXIT_FAIL;
	}
	swarm_session *s = NULL;
	struct swarm_npy data[MAX_IN] = { 0 };
	bool given[MAX_IN] = { 0 };
	uint32_t rows = 0;
	status = EXIT_FAIL;
	/* One row per request unless the files carry more: the session's slots must fit them. */
	rc = swarm_session_open(cl, o.model, o.version, NULL, &s);
	if (rc) {
		fprintf(stderr, "swarm run: %s%s%s: %s (%s)\n", o.model, o.version ? "@" : "",
			o.version ? o.version_str : "", swarm_strerror(rc), swarm_client_error(cl));
		goto out;
	}
	if (!(status = read_inputs(s, &o, data, given)) &&
	    !(status = check_inputs(s, o.model, data, given, &rows)))
		status = run_session(cl, s, &o, data, rows);
out:
	for (int i = 0; i < MAX_IN; i++)
		free(data[i].data);
	if (s)
		swarm_session_close(s);
	swarm_disconnect(cl);
	return status;
}
