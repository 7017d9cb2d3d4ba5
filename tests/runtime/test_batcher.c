/* test_batcher.c: the worker's dynamic batcher (runtime/worker/batcher.c) driven with a fake
 * executor. A worker is set up without swarmd (worker_init_bare); sessions are attached through
 * the real attach path with real segments, and the test plays their clients: it writes inputs
 * into slots, pushes submission entries, lets the worker take them (serve_all), runs the
 * batcher with a clock it chooses, and reads completions and outputs back.
 *
 * The fake model has one f32 input and one output of WIDTH floats a row; the output is the
 * input plus 1000. Its run records each call's rows and input pointer, and fails with -EIO,
 * writing nothing, when any input value is negative.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/worker/worker.h"

#define WIDTH 4
#define MAX_ROWS 16
#define NSLOTS 8
#define MAX_CALLS 64

struct fake {
	struct swarm_executor x;
	uint32_t calls;
	uint32_t rows[MAX_CALLS];
	const void *in0[MAX_CALLS];
};

static int fake_run(struct swarm_executor *x, const void *const *in, void *const *out,
		    uint32_t rows)
{
	struct fake *f = (struct fake *)x;
	if (f->calls < MAX_CALLS) {
		f->rows[f->calls] = rows;
		f->in0[f->calls] = in[0];
	}
	f->calls++;
	const float *a = in[0];
	float *b = out[0];
	for (uint32_t i = 0; i < rows * WIDTH; i++)
		if (a[i] < 0)
			return -EIO;
	for (uint32_t i = 0; i < rows * WIDTH; i++)
		b[i] = a[i] + 1000;
	return 0;
}

static int fake_fits(const struct swarm_executor *x, uint32_t max_rows)
{
	(void)x;
	return max_rows <= MAX_ROWS;
}

static void fake_free(struct swarm_executor *x) { (void)x; /* static: nothing to free */ }

static const struct swarm_executor_i fake_i = { "fake", fake_run, fake_fits, fake_free };

/* One session as its client sees it. */
struct client {
	uint64_t id;
	void *base; /* the client's own mapping of the segment */
	struct swarm_seg_geometry g;
	struct swarm_ring_producer sq;
	struct swarm_ring_consumer cq;
};

static struct worker W;
static struct fake F;
static struct version *V;
static struct swarm_msg_version MV;
static struct client C[2];

/* The fake model's tensors, and a session's geometry for them. */
static void make_specs(swarm_tensor_spec *in, swarm_tensor_spec *out)
{
	*in = (swarm_tensor_spec){ .name = "x", .dtype = SWARM_DTYPE_F32, .ndim = 2 };
	in->shape[0] = -1;
	in->shape[1] = WIDTH;
	in->row_bytes = WIDTH * sizeof(float);
	*out = *in;
	strcpy(out->name, "y");
}

static void make_geometry(struct swarm_seg_geometry *g)
{
	swarm_tensor_spec in, out;
	make_specs(&in, &out);
	int rc = swarm_seg_geometry_init(g, &in, 1, &out, 1, NSLOTS,
					 swarm_seg_default_depth(NSLOTS), MAX_ROWS);
	cr_assert_eq(rc, 0, "swarm_seg_geometry_init: %d", rc);
}

/* A worker with the fake model at max_batch rows a batch and delay_us of queue delay. */
static void setup_worker(uint32_t max_batch, uint32_t delay_us)
{
	cr_assert_eq(worker_init_bare(&W, -1), 0);
	F = (struct fake){ .x.i = &fake_i };
	MV = (struct swarm_msg_version){ .version = 1,
					 .max_batch = max_batch,
					 .max_queue_delay_us = delay_us };
	strcpy(MV.model, "fake");
	strcpy(MV.weights_sha, "fake-weights"); /* a node-list graph's version is named by one */
	struct swarm_seg_geometry g;
	make_geometry(&g);
	char why[SWARM_MSG_TEXT_MAX] = "";
	V = version_adopt(&W, &MV, &F.x, &g, why, sizeof why);
	cr_assert_not_null(V, "version_adopt: %s", why);
}

/* Attaches client c through the worker's attach path. */
static void attach(struct client *c, uint64_t id)
{
	struct swarm_msg_attach m = { .session_id = id, .v = MV, .client_pid = 0 };
	make_geometry(&m.geo);
	swarm_tensor_spec in, out;
	make_specs(&in, &out);
	int fds[3];
	fds[0] = swarm_seg_create(&m.geo, id, "fake", 1, &in, &out, -1, &c->base);
	cr_assert_geq(fds[0], 0, "swarm_seg_create: %d", fds[0]);
	fds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	fds[2] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	char why[SWARM_MSG_TEXT_MAX] = "";
	int rc = session_attach(&W, &m, fds, why, sizeof why);
	cr_assert_eq(rc, 0, "session_attach: %d %s", rc, why);
	c->id = id;
	c->g = m.geo;
	struct swarm_seg_header *h = c->base;
	swarm_ring_producer_init(&c->sq, &h->sq_tail.v, &h->sq_head.v,
				 (uint64_t *)((char *)c->base + c->g.sq_offset), c->g.queue_depth);
	swarm_ring_consumer_init(&c->cq, &h->cq_head.v, &h->cq_tail.v,
				 (const uint64_t *)((char *)c->base + c->g.cq_offset),
				 c->g.cq_depth);
}

static void setup(uint32_t max_batch, uint32_t delay_us, int clients)
{
	setup_worker(max_batch, delay_us);
	for (int i = 0; i < clients; i++)
		attach(&C[i], 100 + (uint64_t)i);
}

static void teardown(void)
{
	worker_release(&W);
	version_put(&W, V);
	worker_fini(&W);
	for (int i = 0; i < 2; i++)
		if (C[i].base)
			munmap(C[i].base, C[i].g.segment_bytes);
}

static float *slot_tensor(struct client *c, uint32_t slot, uint32_t t)
{
	return (float *)((char *)swarm_seg_slot(c->base, &c->g, slot) + c->g.tensor_offset[t]);
}

/* Submits rows rows in slot, row r's values base + r (base < 0: a failing request);
 * deadline, when not 0, is the request's deadline. */
static void submit(struct client *c, uint32_t slot, uint32_t rows, float base, uint64_t deadline)
{
	float *in = slot_tensor(c, slot, 0);
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t k = 0; k < WIDTH; k++)
			in[r * WIDTH + k] = base < 0 ? base : base + (float)r;
	memset(slot_tensor(c, slot, 1), 0, (size_t)rows * WIDTH * sizeof(float));
	uint32_t flags = 0;
	if (deadline) {
		swarm_seg_slot(c->base, &c->g, slot)->deadline_ns = deadline;
		flags |= SWARM_SQE_DEADLINE;
	}
	cr_assert_eq(swarm_ring_push(&c->sq, swarm_sqe_pack(slot, flags, rows)), 0);
}

/* Pops c's next completion: 1 with its slot and status, or 0 when there is none. */
static int completion(struct client *c, uint32_t *slot, int32_t *status)
{
	int64_t n = swarm_ring_available(&c->cq);
	cr_assert_geq(n, 0, "corrupt completion queue");
	if (n == 0)
		return 0;
	uint64_t e = swarm_ring_peek(&c->cq, 0);
	swarm_ring_advance(&c->cq, 1);
	*slot = swarm_cqe_slot(e);
	*status = swarm_cqe_status(e);
	return 1;
}

/* Collects every completion of c into status_of[slot] (unset slots: 1). Returns how many. */
static int collect(struct client *c, int32_t *status_of)
{
	for (uint32_t i = 0; i < NSLOTS; i++)
		status_of[i] = 1;
	uint32_t slot;
	int32_t st;
	int n = 0;
	while (completion(c, &slot, &st)) {
		cr_assert_lt(slot, NSLOTS, "completion for slot %u", slot);
		status_of[slot] = st;
		n++;
	}
	return n;
}

/* Checks that slot's output is its input plus 1000, row by row. */
static void expect_output(struct client *c, uint32_t slot, uint32_t rows)
{
	const float *in = slot_tensor(c, slot, 0), *out = slot_tensor(c, slot, 1);
	for (uint32_t i = 0; i < rows * WIDTH; i++)
		cr_expect_float_eq(out[i], in[i] + 1000, 1e-6,
				   "session %llu slot %u value %u: %f, input %f",
				   (unsigned long long)c->id, slot, i, out[i], in[i]);
}

static uint64_t oldest_arrival(void)
{
	cr_assert_gt(V->q_n, 0, "nothing queued");
	return V->q[V->q_head].arrived_ns;
}

Test(runtime_batcher, forms_batches_up_to_max_batch_rows)
{
	setup(8, 1000000, 2);
	/* 5 requests of 2 rows over two sessions: 10 rows, above max_batch (8) */
	submit(&C[0], 0, 2, 10, 0);
	submit(&C[1], 0, 2, 20, 0);
	submit(&C[0], 1, 2, 30, 0);
	submit(&C[1], 1, 2, 40, 0);
	submit(&C[0], 2, 2, 50, 0);
	cr_assert_eq(serve_all(&W), 5, "requests taken");
	cr_assert_eq(V->q_n, 5, "queued: %u", V->q_n);
	cr_assert_eq(V->q_rows, 10, "rows queued: %u", V->q_rows);
	int64_t wait = -1;
	int ran = run_version_batches(&W, V, oldest_arrival(), 0, &wait);
	/* One batch of 4 requests (8 rows); the fifth (2 rows) waits for rows or its delay. */
	cr_assert_eq(ran, 4, "ran %d", ran);
	cr_assert_eq(F.calls, 1, "executor calls: %u", F.calls);
	cr_assert_eq(F.rows[0], 8, "rows of the batch: %u", F.rows[0]);
	cr_assert_eq(V->q_n, 1, "left queued: %u", V->q_n);
	cr_assert(wait > 0 && wait <= 1000000000, "wait_ns %lld", (long long)wait);
	cr_assert_eq(W.stats->batches, 1, "batches: %llu", (unsigned long long)W.stats->batches);
	int32_t st0[NSLOTS], st1[NSLOTS];
	int n0 = collect(&C[0], st0), n1 = collect(&C[1], st1);
	cr_assert_eq(n0 + n1, 4, "completions: %d + %d", n0, n1);
	/* Whichever four ran, each has its own rows back. */
	for (uint32_t s = 0; s < 3; s++) {
		if (st0[s] == 0)
			expect_output(&C[0], s, 2);
		if (s < 2 && st1[s] == 0)
			expect_output(&C[1], s, 2);
	}
	/* forced (a switch, a hand-over): the last runs now, alone, in place */
	ran = run_version_batches(&W, V, oldest_arrival(), 1, &wait);
	cr_assert_eq(ran, 1, "forced: ran %d", ran);
	cr_assert_eq(F.calls, 2);
	cr_assert_eq(F.rows[1], 2, "rows: %u", F.rows[1]);
	teardown();
}

Test(runtime_batcher, waits_for_max_queue_delay)
{
	setup(8, 50000, 1); /* 50 ms */
	submit(&C[0], 0, 1, 7, 0);
	cr_assert_eq(serve_all(&W), 1);
	uint64_t t0 = oldest_arrival();
	int64_t wait = -1;
	int ran = run_version_batches(&W, V, t0 + 50000000 - 1, 0, &wait);
	cr_assert_eq(ran, 0, "ran %d before the delay", ran);
	cr_assert_eq(F.calls, 0);
	cr_assert_eq(wait, 1, "wait_ns %lld, 1 expected", (long long)wait);
	/* A shorter wait already asked for is kept. */
	wait = 0;
	run_version_batches(&W, V, t0, 0, &wait);
	cr_assert_eq(wait, 0, "wait_ns %lld", (long long)wait);
	wait = -1;
	ran = run_version_batches(&W, V, t0 + 50000000, 0, &wait);
	cr_assert_eq(ran, 1, "ran %d at the delay", ran);
	cr_assert_eq(wait, -1, "nothing left to wait for: %lld", (long long)wait);
	uint32_t slot;
	int32_t st;
	cr_assert(completion(&C[0], &slot, &st));
	cr_assert_eq(slot, 0);
	cr_assert_eq(st, 0, "status %d", st);
	expect_output(&C[0], 0, 1);
	teardown();
}

Test(runtime_batcher, no_delay_runs_what_is_ready)
{
	setup(8, 0, 1);
	submit(&C[0], 0, 1, 1, 0);
	submit(&C[0], 1, 2, 2, 0);
	submit(&C[0], 2, 1, 3, 0);
	cr_assert_eq(serve_all(&W), 3);
	int64_t wait = -1;
	int ran = run_batches(&W, &wait);
	cr_assert_eq(ran, 3, "ran %d", ran);
	cr_assert_eq(F.calls, 1, "one batch: %u calls", F.calls);
	cr_assert_eq(F.rows[0], 4, "rows %u", F.rows[0]);
	cr_assert_eq(wait, -1);
	int32_t st[NSLOTS];
	cr_assert_eq(collect(&C[0], st), 3);
	for (uint32_t s = 0; s < 3; s++) {
		cr_expect_eq(st[s], 0, "slot %u status %d", s, st[s]);
		expect_output(&C[0], s, s == 1 ? 2 : 1);
	}
	teardown();
}

/* The real semantics: a gathered batch runs once, so a failing run fails every request in it
 * and writes no output; the batch after it is not affected. */
Test(runtime_batcher, failed_run_fails_every_batchmate)
{
	setup(4, 0, 2);
	submit(&C[0], 0, 1, 1, 0);
	submit(&C[1], 0, 1, -1, 0); /* the executor fails on it */
	submit(&C[0], 1, 1, 3, 0);
	cr_assert_eq(serve_all(&W), 3);
	int64_t wait = -1;
	cr_assert_eq(run_batches(&W, &wait), 3);
	cr_assert_eq(F.calls, 1, "calls %u", F.calls);
	int32_t st0[NSLOTS], st1[NSLOTS];
	cr_assert_eq(collect(&C[0], st0), 2);
	cr_assert_eq(collect(&C[1], st1), 1);
	cr_expect_eq(st0[0], -EIO, "batchmate status %d", st0[0]);
	cr_expect_eq(st0[1], -EIO, "batchmate status %d", st0[1]);
	cr_expect_eq(st1[0], -EIO, "failing request status %d", st1[0]);
	cr_expect_float_eq(slot_tensor(&C[0], 0, 1)[0], 0.0f, 0, "no output written: %f",
			   slot_tensor(&C[0], 0, 1)[0]);
	cr_assert_eq(W.stats->errors, 3, "errors %llu", (unsigned long long)W.stats->errors);
	/* the next batch runs normally */
	submit(&C[0], 2, 1, 5, 0);
	submit(&C[1], 1, 1, 6, 0);
	cr_assert_eq(serve_all(&W), 2);
	cr_assert_eq(run_batches(&W, &wait), 2);
	cr_assert_eq(collect(&C[0], st0), 1);
	cr_assert_eq(collect(&C[1], st1), 1);
	cr_expect_eq(st0[2], 0, "status %d", st0[2]);
	cr_expect_eq(st1[1], 0, "status %d", st1[1]);
	expect_output(&C[0], 2, 1);
	expect_output(&C[1], 1, 1);
	teardown();
}

Test(runtime_batcher, expired_requests_time_out_and_the_rest_run)
{
	setup(8, 0, 1);
	uint64_t past = swarm_now_ns() - 1;
	submit(&C[0], 0, 2, 1, 0);
	submit(&C[0], 1, 1, 2, past); /* expired: completes -ETIMEDOUT without running */
	submit(&C[0], 2, 3, 3, 0);
	cr_assert_eq(serve_all(&W), 3);
	int64_t wait = -1;
	cr_assert_eq(run_batches(&W, &wait), 3);
	cr_assert_eq(F.calls, 1, "calls %u", F.calls);
	cr_assert_eq(F.rows[0], 5, "only the live rows run: %u", F.rows[0]);
	int32_t st[NSLOTS];
	cr_assert_eq(collect(&C[0], st), 3);
	cr_expect_eq(st[0], 0, "status %d", st[0]);
	cr_expect_eq(st[1], -ETIMEDOUT, "expired status %d", st[1]);
	cr_expect_eq(st[2], 0, "status %d", st[2]);
	expect_output(&C[0], 0, 2);
	expect_output(&C[0], 2, 3);
	teardown();
}

/* A batch with one live request runs it in place in its slot: no gather, and it does not
 * count as a batch. */
Test(runtime_batcher, lone_live_request_runs_in_place)
{
	setup(8, 0, 1);
	submit(&C[0], 0, 1, 1, swarm_now_ns() - 1);
	submit(&C[0], 1, 2, 2, 0);
	cr_assert_eq(serve_all(&W), 2);
	int64_t wait = -1;
	cr_assert_eq(run_batches(&W, &wait), 2);
	cr_assert_eq(F.calls, 1);
	struct session *s = session_find(&W, C[0].id);
	cr_assert_not_null(s);
	const void *slot_in = (char *)swarm_seg_slot(s->base, &s->geo, 1) + s->geo.tensor_offset[0];
	cr_assert_eq(F.in0[0], slot_in, "input %p, the slot's %p", F.in0[0], slot_in);
	cr_assert_eq(W.stats->batches, 0, "batches %llu", (unsigned long long)W.stats->batches);
	int32_t st[NSLOTS];
	cr_assert_eq(collect(&C[0], st), 2);
	cr_expect_eq(st[0], -ETIMEDOUT);
	cr_expect_eq(st[1], 0);
	expect_output(&C[0], 1, 2);
	teardown();
}

/* A request of more rows than max_batch (but within the session's max_rows) is never split:
 * it forms a batch of its own and runs in place. */
Test(runtime_batcher, request_above_max_batch_runs_alone)
{
	setup(4, 1000000, 1);
	submit(&C[0], 0, 6, 1, 0);
	submit(&C[0], 1, 1, 2, 0);
	cr_assert_eq(serve_all(&W), 2);
	int64_t wait = -1;
	int ran = run_version_batches(&W, V, oldest_arrival(), 0, &wait);
	cr_assert_eq(ran, 1, "ran %d", ran);
	cr_assert_eq(F.calls, 1);
	cr_assert_eq(F.rows[0], 6, "rows %u", F.rows[0]);
	cr_assert_eq(V->q_n, 1, "the 1-row request waits: %u queued", V->q_n);
	cr_assert_gt(wait, 0, "wait_ns %lld", (long long)wait);
	expect_output(&C[0], 0, 6);
	teardown();
}

/* Requests that are not batchable never wait in the queue: a request of 0 rows, or more than
 * the session's max_rows, completes with -EINVAL at once. */
Test(runtime_batcher, invalid_rows_complete_at_once)
{
	setup(8, 1000000, 1);
	submit(&C[0], 0, 0, 1, 0);
	submit(&C[0], 1, MAX_ROWS + 1, 1, 0);
	cr_assert_eq(serve_all(&W), 2);
	cr_assert_eq(V->q_n, 0, "queued %u", V->q_n);
	cr_assert_eq(F.calls, 0);
	int32_t st[NSLOTS];
	cr_assert_eq(collect(&C[0], st), 2);
	cr_expect_eq(st[0], -EINVAL, "status %d", st[0]);
	cr_expect_eq(st[1], -EINVAL, "status %d", st[1]);
	teardown();
}

/* A session that goes takes its waiting requests out of the queue; its batchmates run. */
Test(runtime_batcher, detached_session_leaves_the_queue)
{
	setup(8, 0, 2);
	submit(&C[0], 0, 1, 1, 0);
	submit(&C[1], 0, 2, 2, 0);
	submit(&C[0], 1, 1, 3, 0);
	cr_assert_eq(serve_all(&W), 3);
	cr_assert_eq(V->q_rows, 4);
	session_free(&W, session_find(&W, C[1].id));
	cr_assert_eq(V->q_n, 2, "queued %u", V->q_n);
	cr_assert_eq(V->q_rows, 2, "rows %u", V->q_rows);
	int64_t wait = -1;
	cr_assert_eq(run_batches(&W, &wait), 2);
	cr_assert_eq(F.rows[0], 2, "rows %u", F.rows[0]);
	int32_t st[NSLOTS];
	cr_assert_eq(collect(&C[0], st), 2);
	expect_output(&C[0], 0, 1);
	expect_output(&C[0], 1, 1);
	teardown();
}
