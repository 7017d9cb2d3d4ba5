/* gen_worker_ctl_corpus.c: writes the seeds of fuzz_worker_ctl (its input format is described
 * there) into the folder given: well-formed control messages of every type the worker
 * handles, in the sequences swarmd sends them (attach then detach, switch or hand-over;
 * preloads; offers), and a few malformed ones. The messages are built with the protocol's own
 * structs, so that the seeds follow the protocol when it changes: run
 *     build/bin/gen_worker_ctl_corpus tests/fuzz/corpus/worker_ctl
 * and commit the result.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/proto.h"
#include "ipc/segment.h"
#include "kernels/builtin.h"

enum {
	FDS_NONE = 0,
	FDS_ATTACH = 1,
	FDS_WRONG = 2,
	FDS_OFFER = 3
};

static FILE *out;

static void record(uint8_t fds, const void *msg, size_t len)
{
	uint8_t head[3] = { fds, (uint8_t)len, (uint8_t)(len >> 8) };
	if (fwrite(head, 1, 3, out) != 3 || fwrite(msg, 1, len, out) != len) {
		perror("write");
		exit(1);
	}
}

static void version(struct swarm_msg_version *v, uint32_t builtin, uint32_t number,
		    uint32_t max_batch, uint32_t delay_us)
{
	memset(v, 0, sizeof *v);
	v->builtin_id = builtin;
	v->version = number;
	const struct swarm_model_desc *d = swarm_builtin_by_id(builtin);
	snprintf(v->model, sizeof v->model, "%s", d ? d->name : "unknown");
	v->max_batch = max_batch;
	v->max_queue_delay_us = delay_us;
}

static void attach_pid(uint64_t id, uint32_t builtin, uint32_t number, uint32_t max_batch,
		       uint32_t delay_us, uint8_t fds, int32_t client_pid)
{
	struct swarm_msg_attach m;
	swarm_msg_init(&m.h, SWARM_MSG_ATTACH, sizeof m, (uint32_t)id);
	m.session_id = id;
	version(&m.v, builtin, number, max_batch, delay_us);
	const struct swarm_model_desc *d = swarm_builtin_by_id(builtin);
	if (!d) /* an id the worker does not know: the identity's tensors */
		d = swarm_builtin_by_id(SWARM_MODEL_IDENTITY);
	if (swarm_seg_geometry_init(&m.geo, d->inputs, d->n_inputs, d->outputs, d->n_outputs, 4,
				    swarm_seg_default_depth(4), 16)) {
		fprintf(stderr, "geometry refused\n");
		exit(1);
	}
	m.client_pid = client_pid;
	record(fds, &m, sizeof m);
}

static void attach(uint64_t id, uint32_t builtin, uint32_t number, uint32_t max_batch,
		   uint32_t delay_us, uint8_t fds)
{
	attach_pid(id, builtin, number, max_batch, delay_us, fds, -1);
}

static void detach(uint64_t id, uint32_t flags)
{
	struct swarm_msg_detach m;
	swarm_msg_init(&m.h, SWARM_MSG_DETACH, sizeof m, 0);
	m.session_id = id;
	m.flags = flags;
	record(FDS_NONE, &m, sizeof m);
}

static void switch_to(uint64_t id, uint32_t builtin, uint32_t number, uint32_t max_batch)
{
	struct swarm_msg_switch m;
	swarm_msg_init(&m.h, SWARM_MSG_SWITCH, sizeof m, 7);
	m.session_id = id;
	version(&m.v, builtin, number, max_batch, 0);
	record(FDS_NONE, &m, sizeof m);
}

static void load(uint32_t builtin, uint32_t number, uint32_t max_batch, uint32_t nranks,
		 uint32_t rank)
{
	struct swarm_msg_load m;
	swarm_msg_init(&m.h, SWARM_MSG_LOAD, sizeof m, 9);
	version(&m.v, builtin, number, max_batch, 0);
	m.nranks = nranks;
	m.rank = rank;
	m.root = 0;
	m.timeout_ms = 10;
	record(FDS_NONE, &m, sizeof m);
}

static void offer(int32_t gpu, const char *sha)
{
	struct swarm_msg_weights m;
	swarm_msg_init(&m.h, SWARM_MSG_WEIGHTS_OFFER, sizeof m, 0);
	m.gpu = gpu;
	snprintf(m.sha, sizeof m.sha, "%s", sha);
	m.bytes = 4096;
	m.layout = 1;
	record(FDS_OFFER, &m, sizeof m);
}

static void begin(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!(out = fopen(path, "wb"))) {
		perror(path);
		exit(1);
	}
}

static void end(void)
{
	if (fclose(out)) {
		perror("close");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_worker_ctl_corpus DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	const char sha[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

	begin(dir, "attach_detach");
	attach(1, SWARM_MODEL_IDENTITY, 1, 0, 0, FDS_ATTACH);
	detach(1, 0);
	end();

	begin(dir, "attach_batched_move");
	attach(2, SWARM_MODEL_AFFINE, 1, 8, 100, FDS_ATTACH);
	attach(3, SWARM_MODEL_AFFINE, 1, 8, 100, FDS_ATTACH);
	detach(2, SWARM_DETACH_MOVE);
	detach(3, 0);
	end();

	begin(dir, "switch");
	attach(4, SWARM_MODEL_AFFINE, 1, 4, 0, FDS_ATTACH);
	switch_to(4, SWARM_MODEL_AFFINE, 2, 8);
	switch_to(4, SWARM_MODEL_IDENTITY, 1, 0);
	switch_to(99, SWARM_MODEL_AFFINE, 1, 0); /* no such session */
	detach(4, 0);
	end();

	begin(dir, "load");
	load(SWARM_MODEL_IDENTITY, 1, 0, 0, 0);
	load(SWARM_MODEL_IDENTITY, 1, 0, 0, 0); /* already */
	load(SWARM_MODEL_IDENTITY, 2, 0, 0, 0); /* lets version 1 go */
	load(SWARM_MODEL_AFFINE, 1, 4, 2, 1);   /* a fan-out's receiver */
	load(SWARM_MODEL_AFFINE, 1, 4, 2, 5);   /* a bad rank */
	end();

	begin(dir, "load_then_attach");
	load(SWARM_MODEL_AFFINE, 1, 4, 0, 0);
	attach(5, SWARM_MODEL_AFFINE, 1, 4, 0, FDS_ATTACH);
	detach(5, SWARM_DETACH_MOVE);
	end();

	begin(dir, "offer");
	offer(-1, sha);
	offer(0, sha);
	offer(-1, sha); /* the same again */
	end();

	begin(dir, "attach_refused");
	attach(6, SWARM_MODEL_IDENTITY, 1, 0, 0, FDS_WRONG); /* descriptors of the wrong kind */
	attach(7, SWARM_MODEL_IDENTITY, 1, 0, 0, FDS_NONE);  /* none */
	attach(8, 77, 1, 0, 0, FDS_ATTACH);                  /* no such built-in */
	/* Two the fuzzer found: a max_batch of 4 billion rows (the worker allocated it), and
	 * a refusal after the live client's pidfd was opened (pid 1: always there), which
	 * leaked it. */
	attach(9, SWARM_MODEL_IDENTITY, 1, 4000000000u, 0, FDS_ATTACH);
	attach_pid(10, SWARM_MODEL_IDENTITY, 1, 0, 0, FDS_WRONG, 1);
	end();

	begin(dir, "malformed");
	{
		struct swarm_msg_detach m;
		swarm_msg_init(&m.h, SWARM_MSG_DETACH, sizeof m, 0);
		m.h.magic ^= 1;
		record(FDS_NONE, &m, sizeof m);
		swarm_msg_init(&m.h, SWARM_MSG_DETACH, sizeof m, 0);
		record(FDS_NONE, &m, sizeof m - 1); /* short */
		struct swarm_msg_close c;           /* a client's message, not a worker's */
		swarm_msg_init(&c.h, SWARM_MSG_CLOSE, sizeof c, 0);
		record(FDS_WRONG, &c, sizeof c);
	}
	end();
	return 0;
}
