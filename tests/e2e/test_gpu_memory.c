/* test_gpu_memory.c: requests whose tensors are in the client's GPU memory (a CUDA IPC handle
 * in the slot instead of the bytes), against a real swarmd with one CPU device: the client
 * API's argument checks, and a CPU worker's answer (-ENOTSUP) to a request that asks for GPU
 * memory, after which the session goes on serving. The CUDA path itself needs a GPU and two
 * processes and is not run here (docs/devices.md). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "e2e/harness.h"
#include "ipc/segment.h"

static void setup(void) { h_start("cpu:1", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_gpu_memory, .init = setup, .fini = teardown, .timeout = 60);

static swarm_session *open_identity(swarm_client *c, uint32_t max_rows)
{
	swarm_session_opts o = h_identity_opts();
	o.max_rows = max_rows;
	swarm_session *s = NULL;
	int rc = swarm_session_open(c, "identity", 0, &o, &s);
	cr_assert_eq(rc, 0, "swarm_session_open(identity): %d (%s) [%s]", rc, swarm_strerror(rc),
		     swarm_client_error(c));
	return s;
}

/* Bytes that look like a handle; no driver ever sees them on a CPU device. */
static void fake_handle(uint8_t h[SWARM_IPC_HANDLE_BYTES])
{
	for (int i = 0; i < SWARM_IPC_HANDLE_BYTES; i++)
		h[i] = (uint8_t)(0x5A ^ i);
}

Test(e2e_gpu_memory, set_device_bad_arguments_return_einval)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c, 64);
	uint8_t h[SWARM_IPC_HANDLE_BYTES];
	fake_handle(h);
	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 1, &r), 0);

	int rc = swarm_request_set_input_device(r, 0, h, SWARM_IPC_HANDLE_BYTES - 1, 0);
	cr_assert_eq(rc, -EINVAL, "input handle_len 63: %d, want -EINVAL", rc);
	rc = swarm_request_set_input_device(r, 0, h, SWARM_IPC_HANDLE_BYTES + 1, 0);
	cr_assert_eq(rc, -EINVAL, "input handle_len 65: %d, want -EINVAL", rc);
	rc = swarm_request_set_input_device(r, 1, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "input index 1 of 1: %d, want -EINVAL", rc);
	rc = swarm_request_set_input_device(r, 0, NULL, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "input NULL handle: %d, want -EINVAL", rc);
	rc = swarm_request_set_output_device(r, 1, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "output index 1 of 1: %d, want -EINVAL", rc);
	rc = swarm_request_set_output_device(r, 0, h, 0, 0);
	cr_assert_eq(rc, -EINVAL, "output handle_len 0: %d, want -EINVAL", rc);
	rc = swarm_request_set_input_device(NULL, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "NULL request: %d, want -EINVAL", rc);

	/* Nothing was set: the request is a plain one and echoes its bytes. In flight (its
	 * worker stopped) it is no longer the caller's to change. */
	uint8_t *in = swarm_request_input(r, 0);
	memset(in, 0x3C, 64);
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_assert_eq(kill(info.worker_pid, SIGSTOP), 0);
	cr_assert_eq(h_wait_stopped(info.worker_pid, 2 * H_SEC), 0);
	cr_assert_eq(swarm_request_submit(r, 0), 0);
	rc = swarm_request_set_input_device(r, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	int rc_out = swarm_request_set_output_device(r, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	kill(info.worker_pid, SIGCONT);
	cr_assert_eq(rc, -EINVAL, "set_input_device in flight: %d, want -EINVAL", rc);
	cr_assert_eq(rc_out, -EINVAL, "set_output_device in flight: %d, want -EINVAL", rc_out);
	rc = swarm_request_wait(r, 5 * H_SEC);
	cr_assert_eq(rc, 0, "plain request after refused set_device: %d (%s)", rc,
		     swarm_strerror(rc));
	cr_assert_eq(((const uint8_t *)swarm_request_output(r, 0))[63], 0x3C);

	/* Completed: the caller's again, to set before swarm_request_submit_again. */
	rc = swarm_request_set_input_device(r, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, 0, "set_device on a completed request: %d, want 0", rc);
	cr_assert_eq(swarm_request_release(r), 0);
	rc = swarm_request_set_input_device(r, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "set_device after release: %d, want -EINVAL", rc);
	swarm_disconnect(c);
}

Test(e2e_gpu_memory, slot_area_smaller_than_descriptor_returns_einval)
{
	/* max_rows 1 of 64 B: each tensor's area is 64 bytes, the descriptor 72. */
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c, 1);
	uint8_t h[SWARM_IPC_HANDLE_BYTES];
	fake_handle(h);
	swarm_request *r;
	cr_assert_eq(swarm_request_alloc(s, 1, &r), 0);
	int rc = swarm_request_set_input_device(r, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "64-byte input area: %d, want -EINVAL", rc);
	rc = swarm_request_set_output_device(r, 0, h, SWARM_IPC_HANDLE_BYTES, 0);
	cr_assert_eq(rc, -EINVAL, "64-byte output area: %d, want -EINVAL", rc);
	cr_assert_eq(swarm_request_release(r), 0);
	swarm_disconnect(c);
}

Test(e2e_gpu_memory, cpu_device_answers_enotsup_then_serves_on)
{
	swarm_client *c = h_connect_or_fail();
	swarm_session *s = open_identity(c, 64);
	uint8_t h[SWARM_IPC_HANDLE_BYTES];
	fake_handle(h);

	for (int k = 0; k < 2; k++) { /* an input, then an output, in GPU memory */
		swarm_request *r;
		cr_assert_eq(swarm_request_alloc(s, 4, &r), 0);
		int rc = k == 0 ? swarm_request_set_input_device(r, 0, h, sizeof h, 128) :
				  swarm_request_set_output_device(r, 0, h, sizeof h, 0);
		cr_assert_eq(rc, 0, "set_%s_device: %d", k == 0 ? "input" : "output", rc);
		/* The descriptor sits at the start of the tensor's area. */
		const uint8_t *area = k == 0 ? (const uint8_t *)swarm_request_input(r, 0) :
					       (const uint8_t *)swarm_request_output(r, 0);
		struct swarm_slot_device_desc d;
		memcpy(&d, area, sizeof d);
		cr_assert_eq(memcmp(d.handle, h, sizeof h), 0, "descriptor handle bytes");
		cr_assert_eq(d.offset, k == 0 ? 128u : 0u, "descriptor offset %llu",
			     (unsigned long long)d.offset);
		cr_assert_eq(swarm_request_submit(r, 0), 0);
		rc = swarm_request_wait(r, 5 * H_SEC);
		cr_assert_eq(rc, -ENOTSUP, "GPU memory on a CPU device: %d (%s), want -ENOTSUP", rc,
			     swarm_strerror(rc));
		cr_assert_eq(swarm_request_release(r), 0);
	}

	/* The session serves on, and a re-allocated slot is a plain request again (the masks
	 * were reset by alloc, though the slot header still holds the old ones). */
	for (uint32_t i = 0; i < 16; i++)
		cr_assert_eq(h_identity_roundtrip(s, 1 + i % 64, 100 + i, 5 * H_SEC), 0,
			     "roundtrip %u after -ENOTSUP", i);
	swarm_session_info info;
	cr_assert_eq(swarm_session_info_get(s, &info), 0);
	cr_assert_eq(strncmp(info.device_name, "cpu", 3), 0, "device %s", info.device_name);
	swarm_disconnect(c);
}
