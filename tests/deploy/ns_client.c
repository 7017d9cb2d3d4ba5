/* ns_client.c: the client of tests/deploy/test_namespaces.sh, which runs it in IPC, mount,
 * PID, network and UTS namespaces of its own, as a client in another container would run,
 * with only swarmd's socket directory visible (docs/deploy.md).
 *
 * It opens one session on the built-in affine model (y = 2x + 1), sends a few requests of
 * known inputs (sleeping on the futex for each, never spinning), and prints every input and output
 * value, so that the test checks the values itself rather than trusting an exit status. It also
 * prints which file the request's slot is mapped from (/proc/self/maps): the session segment must
 * be a memfd received over the socket, never a path under /dev/shm, /tmp or /run that a container
 * would not share.
 *
 * usage: ns_client SOCKET_PATH [REQUESTS]
 * Output, one record a line: "segment PATH", then "value req=R i=I x=X y=Y" for every
 * element, then "served REQUESTS". Exit 0 when every request was served, else 1 with why.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

/* Prints the path of the mapping that holds addr (the rest of its /proc/self/maps line), or
 * "(anonymous)" when the line names none. Returns 0, or -1 when no mapping holds it. */
static int print_mapping(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) {
		fprintf(stderr, "ns_client: /proc/self/maps: %s\n", strerror(errno));
		return -1;
	}
	uintptr_t a = (uintptr_t)addr;
	char line[4096];
	int found = -1;
	while (found && fgets(line, sizeof line, f)) {
		uintptr_t lo, hi;
		int name_at = 0;
		/* "lo-hi perms offset dev inode   path" */
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %*s %*s %*s %n", &lo, &hi,
			   &name_at) < 2 ||
		    a < lo || a >= hi)
			continue;
		line[strcspn(line, "\n")] = 0;
		const char *name = name_at > 0 && line[name_at] ? line + name_at : "(anonymous)";
		printf("segment %s\n", name);
		found = 0;
	}
	fclose(f);
	if (found)
		fprintf(stderr, "ns_client: no mapping holds the slot at %p\n", addr);
	return found;
}

/* One request of rows rows: inputs x = k/4 - 8 + req (exact in f32), outputs printed. Prints
 * the slot's mapping for the first request. Returns 0 or -1 having said why. */
static int one_request(swarm_session *s, int req, uint32_t rows)
{
	swarm_request *r;
	int err = swarm_request_alloc(s, rows, &r);
	if (err) {
		fprintf(stderr, "ns_client: request_alloc: %s\n", swarm_strerror(err));
		return -1;
	}
	size_t n = rows * swarm_session_input_spec(s, 0)->row_bytes / sizeof(float);
	float *x = swarm_request_input(r, 0);
	for (size_t k = 0; k < n; k++)
		x[k] = (float)k / 4.0f - 8.0f + (float)req;
	if (req == 0 && print_mapping(x)) {
		swarm_request_release(r);
		return -1;
	}
	err = swarm_request_submit(r, 0);
	if (!err)
		err = swarm_request_wait(r, 10000000000ll);
	if (err) {
		fprintf(stderr, "ns_client: request %d: %s\n", req, swarm_strerror(err));
		swarm_request_release(r);
		return -1;
	}
	const float *y = swarm_request_output(r, 0);
	for (size_t k = 0; k < n; k++)
		printf("value req=%d i=%zu x=%.9g y=%.9g\n", req, k, (double)x[k], (double)y[k]);
	swarm_request_release(r);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: ns_client SOCKET_PATH [REQUESTS]\n");
		return 2;
	}
	int n_requests = argc == 3 ? atoi(argv[2]) : 3;
	if (n_requests < 1 || n_requests > 1000) {
		fprintf(stderr, "ns_client: REQUESTS is 1..1000\n");
		return 2;
	}
	swarm_client *c;
	int err = swarm_connect(argv[1], &c);
	if (err) {
		fprintf(stderr, "ns_client: %s\n", swarm_last_error());
		return 1;
	}
	swarm_session *s;
	err = swarm_session_open(c, "affine", 0, NULL, &s);
	if (err) {
		fprintf(stderr, "ns_client: open affine: %s (%s)\n", swarm_strerror(err),
			swarm_client_error(c));
		swarm_disconnect(c);
		return 1;
	}
	/* No spinning on either side (swarmd runs with --spin-us 0): each request rings the
	 * worker's eventfd and waits on the futex, the two wake-ups a container boundary could
	 * break, rather than being caught by a spin. */
	swarm_session_set_spin(s, 0);
	int served = 0;
	for (int req = 0; req < n_requests; req++) {
		if (one_request(s, req, 2))
			break;
		served++;
	}
	printf("served %d\n", served);
	swarm_disconnect(c);
	return served == n_requests ? 0 : 1;
}
