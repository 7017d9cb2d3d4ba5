/* test_staged.c: batches that go from the clients' slots straight to the device, end to end.
 *
 * swarmd's workers run with SWARM_WORKER_STAGED=1: node-list graphs then run on the staged
 * CPU device (kernels/cpu/staged_device.h), whose memory is its own as a GPU's is, and which
 * refuses a node or a copy that touches host memory where its own belongs. A batch of
 * requests from several sessions then takes the worker's GPU path: each request's slot is one
 * part of swarm_graph_run_parts, copied to and from the device with no gather on the host.
 * Several clients, each its own connection and session, keep requests of 1..9 rows in flight
 * at once; every output row is checked against its own request's inputs: an exact copy
 * (identity, 12-byte rows) and an MLP against a float64 reference.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/harness.h"

static char work_dir[256], reg_dir[512];
static struct h_mlp mlp;

static void setup(void)
{
	h_registry_make("staged-e2e", work_dir, sizeof work_dir, reg_dir, sizeof reg_dir);
}

static void teardown(void) { h_registry_remove(work_dir); }

TestSuite(e2e_staged, .init = setup, .fini = teardown, .timeout = 180);

/* The harness's MLP y = W2 relu(W1 x + b1) + b2 on x [B, 16], and z2 = z on z [B, 3]: two
 * inputs and two outputs, rows of 64, 12, 16 and 12 bytes. */
static void publish_model(void)
{
	h_mlp_make(&mlp, 777, 0.0f);
	h_mlp_publish(&mlp, reg_dir, work_dir, "mlp",
		      "[{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 16]},\n"
		      "            {\"name\": \"z\", \"dtype\": \"f32\", \"shape\": [-1, 3]}]",
		      "[{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, 4]},\n"
		      "             {\"name\": \"z2\", \"dtype\": \"f32\", \"shape\": [-1, 3]}]",
		      ",\n   {\"op\": \"identity\", \"inputs\": [\"z\"], \"output\": \"z2\"}",
		      "{\"max_rows\": 16, \"slots\": 4, \"max_batch\": 64, \"max_queue_delay_us\": 1000}");
}

#define CLIENTS 4
#define ITERS 150
#define IN_FLIGHT 3

struct client {
	pthread_t t;
	uint32_t seed;
	long done, wrong_y, wrong_z, failed;
	char why[256];
};

/* Fills request r of rows rows from (seed, it, k); z gets values unique to the request. */
static void fill(swarm_request *r, uint32_t rows, uint32_t seed, int it, int k)
{
	float *x = swarm_request_input(r, 0), *z = swarm_request_input(r, 1);
	for (uint32_t i = 0; i < rows * 16; i++)
		x[i] = (float)((int)((seed * 7919u + (uint32_t)it * 131u + (uint32_t)k * 17u +
				      i * 31u) %
				     400) -
			       200) /
		       100.0f;
	for (uint32_t i = 0; i < rows * 3; i++)
		z[i] = (float)seed * 100000.0f + (float)(it * IN_FLIGHT + k) * 16.0f + (float)i;
}

static void check(struct client *c, swarm_request *r, uint32_t rows, int it, int k)
{
	const float *x = swarm_request_input(r, 0), *z = swarm_request_input(r, 1);
	const float *y = swarm_request_output(r, 0), *z2 = swarm_request_output(r, 1);
	for (uint32_t row = 0; row < rows; row++) {
		double ref[4];
		h_mlp_reference(&mlp, x + row * 16, ref);
		for (int j = 0; j < 4; j++)
			if (fabs(ref[j] - y[row * 4 + j]) > 1e-4 * (1 + fabs(ref[j]))) {
				if (!c->wrong_y++)
					snprintf(c->why, sizeof c->why,
						 "iter %d request %d row %u y[%d] %f, reference %f",
						 it, k, row, j, y[row * 4 + j], ref[j]);
				return;
			}
	}
	if (memcmp(z, z2, rows * 3 * sizeof(float)) != 0 && !c->wrong_z++)
		snprintf(c->why, sizeof c->why,
			 "iter %d request %d: z2 is not its own z (first %f, want %f)", it, k,
			 z2[0], z[0]);
}

static void *client_run(void *arg)
{
	struct client *c = arg;
	swarm_client *cl = NULL;
	swarm_session *s = NULL;
	if (h_connect(&cl) || swarm_session_open(cl, "mlp", 0, NULL, &s)) {
		c->failed++;
		snprintf(c->why, sizeof c->why, "connect or open: %s",
			 cl ? swarm_client_error(cl) : "no client");
		if (cl)
			swarm_disconnect(cl);
		return NULL;
	}
	swarm_session_set_spin(s, 0);
	for (int it = 0; it < ITERS && !c->failed; it++) {
		swarm_request *r[IN_FLIGHT];
		uint32_t rows[IN_FLIGHT];
		int n = 0, rc = 0;
		for (; n < IN_FLIGHT; n++) {
			rows[n] = 1 + (c->seed + (uint32_t)(it * IN_FLIGHT + n)) % 9;
			if ((rc = swarm_request_alloc(s, rows[n], &r[n])))
				break;
			fill(r[n], rows[n], c->seed, it, n);
			if ((rc = swarm_request_submit(r[n], 0))) {
				swarm_request_release(r[n]);
				break;
			}
		}
		for (int k = 0; k < n; k++) {
			int w = swarm_request_wait(r[k], 10 * H_SEC);
			if (w && !rc)
				rc = w;
			if (!w) {
				check(c, r[k], rows[k], it, k);
				c->done++;
			}
			swarm_request_release(r[k]);
		}
		if (rc) {
			c->failed++;
			snprintf(c->why, sizeof c->why, "iter %d: %d %s", it, rc,
				 swarm_strerror(rc));
		}
	}
	swarm_disconnect(cl);
	return NULL;
}

Test(e2e_staged, batches_from_many_sessions_run_from_their_slots)
{
	publish_model();
	cr_assert_eq(setenv("SWARM_WORKER_STAGED", "1", 1), 0);
	const char *extra[] = { "--registry", reg_dir, NULL };
	h_start("cpu:1", extra);
	struct client cs[CLIENTS] = { 0 };
	for (int i = 0; i < CLIENTS; i++) {
		cs[i].seed = 11u * (uint32_t)i + 5;
		cr_assert_eq(pthread_create(&cs[i].t, NULL, client_run, &cs[i]), 0);
	}
	long done = 0;
	for (int i = 0; i < CLIENTS; i++) {
		pthread_join(cs[i].t, NULL);
		done += cs[i].done;
		cr_expect_eq(cs[i].failed, 0, "client %d failed: %s", i, cs[i].why);
		cr_expect_eq(cs[i].wrong_y, 0, "client %d: %ld wrong y: %s", i, cs[i].wrong_y,
			     cs[i].why);
		cr_expect_eq(cs[i].wrong_z, 0, "client %d: %ld requests got another's z: %s", i,
			     cs[i].wrong_z, cs[i].why);
	}
	cr_assert_eq(done, (long)CLIENTS * ITERS * IN_FLIGHT, "only %ld requests completed", done);
	cr_assert(h_log_contains("kind=staged-cpu"), "the worker did not run the staged device");
	cr_assert(h_log_contains("path=slots"), "the version was not set up to batch from slots");

	/* Batches of more than one request ran (on this path, straight from the slots). */
	long batches = h_status_batches();
	cr_assert_gt(batches, 0, "no batch of more than one request ran");
	cr_log_info("%ld requests, %ld batches", done, batches);
	h_stop();
}
