/* example_client.c: a swarm client that uses only <swarm/swarm.h> and libswarm.
 *
 * It opens a few sessions on the `affine` model (y = 2x + 1), sends requests with random
 * inputs written straight into each request's slot, checks every output, and prints a table:
 * requests served, p50/p99 round trip, and which device and cores served each session.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#define MAX_SESSIONS 16

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: example-client [--socket PATH] [--model NAME] [--sessions N]\n"
		   "                      [--requests N] [--rows N]\n"
		   "Sends --requests requests of --rows rows (default 10000 of 4) on each of\n"
		   "--sessions sessions (default 2) of --model (default affine), checks every\n"
		   "output, and prints latency and placement per session.\n"
		   "--help prints this text, --version the libswarm version and client ABI.\n");
}

/* The command line. */
struct args {
	const char *sock, *model;
	int n_sessions;
	long n_requests;
	uint32_t rows;
};

/* argv into a: -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "model", required_argument, 0, 'm' },
					      { "sessions", required_argument, 0, 'n' },
					      { "requests", required_argument, 0, 'r' },
					      { "rows", required_argument, 0, 'R' },
					      { "help", no_argument, 0, 'h' },
					      { "version", no_argument, 0, 'V' },
					      { 0, 0, 0, 0 } };
	*a = (struct args){ .model = "affine", .n_sessions = 2, .n_requests = 10000, .rows = 4 };
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		switch (o) {
		case 's':
			a->sock = optarg;
			break;
		case 'm':
			a->model = optarg;
			break;
		case 'n':
			a->n_sessions = atoi(optarg);
			break;
		case 'r':
			a->n_requests = atol(optarg);
			break;
		case 'R':
			a->rows = (uint32_t)atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			/* An example uses the public API only: libswarm's version, the ABI of
			 * the header it was built with. */
			printf("%s %s (abi %u)\n", "example-client", swarm_version(),
			       SWARM_ABI_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (a->n_sessions < 1 || a->n_sessions > MAX_SESSIONS || a->n_requests < 1 || a->rows < 1) {
		fprintf(stderr, "example-client: --sessions 1..%d, --requests and --rows >= 1\n",
			MAX_SESSIONS);
		return 2;
	}
	if (strcmp(a->model, "affine") != 0) {
		fprintf(stderr, "example-client: this example checks the affine model only\n");
		return 2;
	}
	return -1;
}

/* What the requests came to: round trips of those served, and the counts. */
struct tally {
	uint64_t *lat;
	long bad, failed, done;
};

/* One request of rows random rows on s, its output checked against y = 2x + 1. */
static void one_request(swarm_session *s, uint32_t rows, unsigned *seed, struct tally *t)
{
	size_t n_floats = rows * swarm_session_input_spec(s, 0)->row_bytes / sizeof(float);
	swarm_request *r;
	int err = swarm_request_alloc(s, rows, &r);
	if (err) {
		t->failed++;
		return;
	}
	float *x = swarm_request_input(r, 0);
	for (size_t j = 0; j < n_floats; j++)
		x[j] = (float)(rand_r(seed) % 2000 - 1000) / 8.0f + 0.5f;
	uint64_t t0 = swarm_now_ns();
	err = swarm_request_submit(r, 0);
	if (!err)
		err = swarm_request_wait(r, 5000000000ll);
	uint64_t t1 = swarm_now_ns();
	if (err) {
		fprintf(stderr, "example-client: request: %s\n", swarm_strerror(err));
		t->failed++;
	} else {
		const float *y = swarm_request_output(r, 0);
		for (size_t j = 0; j < n_floats; j++)
			if (y[j] != 2.0f * x[j] + 1.0f) {
				t->bad++;
				break;
			}
		t->lat[t->done++] = t1 - t0;
	}
	swarm_request_release(r);
}

/* The table: where each session runs, then the counts and latencies. Sorts t->lat. */
static void print_report(const struct args *a, swarm_session **s, struct tally *t)
{
	qsort(t->lat, (size_t)t->done, sizeof *t->lat, cmp_u64);
	uint64_t p50 = t->done ? t->lat[(t->done - 1) * 50 / 100] : 0;
	uint64_t p99 = t->done ? t->lat[(t->done - 1) * 99 / 100] : 0;

	printf("\nswarm example client: model %s, %d session(s), %ld request(s) of %u row(s) each\n",
	       a->model, a->n_sessions, a->n_requests * a->n_sessions, a->rows);
	printf("%-10s %-8s %-6s %-12s %-10s\n", "SESSION", "DEVICE", "NUMA", "CORES", "WORKER");
	for (int i = 0; i < a->n_sessions; i++) {
		swarm_session_info info;
		swarm_session_info_get(s[i], &info);
		printf("%-10llu %-8s %-6d %-12s %-10d\n", (unsigned long long)info.session_id,
		       info.device_name, info.numa_node, info.cpus, info.worker_pid);
	}
	printf("\n%-10s %-10s %-10s %-12s %-12s\n", "SERVED", "FAILED", "WRONG", "P50", "P99");
	printf("%-10ld %-10ld %-10ld %-12.2f %-12.2f (us round trip)\n", t->done, t->failed, t->bad,
	       p50 / 1e3, p99 / 1e3);
}

int main(int argc, char **argv)
{
	struct args a;
	int rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	swarm_client *c;
	int err = swarm_connect(a.sock, &c);
	if (err) {
		fprintf(stderr, "example-client: %s\n", swarm_last_error());
		return 1;
	}
	swarm_session *s[MAX_SESSIONS];
	for (int i = 0; i < a.n_sessions; i++) {
		err = swarm_session_open(c, a.model, 0, NULL, &s[i]);
		if (err) {
			fprintf(stderr, "example-client: open %s: %s (%s)\n", a.model,
				swarm_strerror(err), swarm_client_error(c));
			swarm_disconnect(c);
			return 1;
		}
	}
	struct tally t = { .lat = malloc(sizeof *t.lat * (size_t)a.n_requests *
					 (size_t)a.n_sessions) };
	if (!t.lat) {
		swarm_disconnect(c);
		return 1;
	}
	unsigned seed = 12345;
	/* Round robin over the sessions, one request at a time, as a latency-bound client. */
	for (long k = 0; k < a.n_requests; k++)
		for (int i = 0; i < a.n_sessions; i++)
			one_request(s[i], a.rows, &seed, &t);
	print_report(&a, s, &t);
	free(t.lat);
	swarm_disconnect(c);
	return t.failed || t.bad ? 1 : 0;
}
