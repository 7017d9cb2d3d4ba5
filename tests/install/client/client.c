/* client.c: a client built outside swarm's tree against an installed swarm, the way a user
 * builds one (tests/install/run.sh builds it twice: find_package(swarm) and pkg-config).
 *
 *   outside-client SOCKET VERSION
 *
 * Checks that the libswarm it loaded says VERSION, connects to the swarmd on SOCKET, opens
 * the built-in affine model (y = 2x + 1), runs a request of 3 rows and checks every output.
 * Prints "outside-client: ok ..." and exits 0, or says what differed and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include <swarm/swarm.h>

#define ROWS 3

/* One request on s: 0 when every output is 2x + 1, else 1 (said on stderr). */
static int one_request(swarm_session *s)
{
	const swarm_tensor_spec *in = swarm_session_input_spec(s, 0);
	size_t n = ROWS * in->row_bytes / sizeof(float);
	swarm_request *r;
	int err = swarm_request_alloc(s, ROWS, &r);
	if (err) {
		fprintf(stderr, "outside-client: request_alloc: %s\n", swarm_strerror(err));
		return 1;
	}
	float *x = swarm_request_input(r, 0);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)i * 0.25f - 3.0f;
	err = swarm_request_submit(r, 0);
	if (!err)
		err = swarm_request_wait(r, 10000000000ll);
	if (err) {
		fprintf(stderr, "outside-client: request: %s\n", swarm_strerror(err));
		swarm_request_release(r);
		return 1;
	}
	const float *y = swarm_request_output(r, 0);
	int bad = 0;
	for (size_t i = 0; i < n && !bad; i++)
		if (y[i] != 2.0f * x[i] + 1.0f) {
			fprintf(stderr, "outside-client: output %zu is %g, not 2 * %g + 1\n", i,
				(double)y[i], (double)x[i]);
			bad = 1;
		}
	swarm_request_release(r);
	if (!bad)
		printf("outside-client: ok: %zu outputs of affine are 2x + 1\n", n);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: outside-client SOCKET VERSION\n");
		return 2;
	}
	if (strcmp(swarm_version(), argv[2]) != 0) {
		fprintf(stderr, "outside-client: libswarm says version %s, not %s\n",
			swarm_version(), argv[2]);
		return 1;
	}
	printf("outside-client: libswarm %s, client ABI %u\n", swarm_version(), SWARM_ABI_VERSION);
	swarm_client *c;
	int err = swarm_connect(argv[1], &c);
	if (err) {
		fprintf(stderr, "outside-client: connect %s: %s (%s)\n", argv[1],
			swarm_strerror(err), swarm_last_error());
		return 1;
	}
	swarm_session *s;
	err = swarm_session_open(c, "affine", 0, NULL, &s);
	if (err) {
		fprintf(stderr, "outside-client: open affine: %s (%s)\n", swarm_strerror(err),
			swarm_client_error(c));
		swarm_disconnect(c);
		return 1;
	}
	int rc = one_request(s);
	swarm_session_close(s);
	swarm_disconnect(c);
	return rc;
}
