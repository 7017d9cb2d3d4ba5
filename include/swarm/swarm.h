/* swarm.h: the client API of swarm, a single-node inference runtime.
 *
 * A client connects to swarmd over a unix socket, opens a session on a model and gets a
 * shared-memory segment of its own. It allocates a request (a slot in that segment), writes
 * its input tensors straight into the slot, submits the slot's index, and reads the outputs
 * from the same slot when the request completes. No tensor byte is copied by the library and
 * no system call is made per request while the worker is busy.
 *
 * Inline policy: nothing here is inline. The queues live in the library, so that the segment
 * layout can change without recompiling clients; a call costs a few nanoseconds, which the
 * round-trip benchmark (bench/swarm-bench) includes.
 *
 * Errors: every function that can fail returns 0 (or a count) on success and a negative errno
 * on failure; swarm_strerror() names swarm's meaning of each.
 *
 * Threads: a swarm_client may be shared by threads only for swarm_session_open and
 * swarm_session_close, under the caller's lock. A swarm_session and its requests are used by
 * one thread at a time; a multithreaded client opens one session per thread.
 */
#ifndef SWARM_SWARM_H
#define SWARM_SWARM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWARM_API __attribute__((visibility("default")))

/* The ABI version spoken on the control socket and written in every segment. A client and a
 * swarmd of different ABI versions refuse each other with -EPROTO. */
#define SWARM_ABI_VERSION 2u

#define SWARM_NAME_MAX 48   /* model and tensor names, NUL included */
#define SWARM_MAX_DIMS 6    /* dimensions of a tensor, the batch dimension included */
#define SWARM_MAX_TENSORS 8 /* inputs, and separately outputs, of one model */
#define SWARM_CPUS_MAX 128  /* a cpulist string such as "0-3,8", NUL included */
#define SWARM_IPC_HANDLE_BYTES 64 /* a CUDA IPC memory handle (cudaIpcMemHandle_t) */

/* Meanings of the errno values swarm returns (see swarm_strerror):
 *   -EAGAIN        no free slot (swarm_request_alloc) or the submission queue is full
 *   -ETIMEDOUT     a wait ran out of time, or a request's deadline passed before it ran
 *   -EPROTO        the client and swarmd speak different ABI versions
 *   -ENOENT        no such model or version
 *   -EINVAL        a bad argument (rows out of range, a NULL pointer, a tensor index)
 *   -EBUSY         the request is in flight and cannot be released yet
 *   -ECONNABORTED  the worker serving the session died; the request did not complete
 *   -EBADMSG       the worker detached the session because its segment broke the protocol
 *   -EACCES        swarmd refused this user (SO_PEERCRED check)
 *   -ECONNREFUSED  no swarmd listens on the socket
 *   -ENOTCONN      swarmd went away
 *   -ENOTSUP       a request asked for GPU memory on a device that has none (the CPU)
 *   -EFBIG         the model needs more device memory than any device's budget (an open;
 *                  swarm_client_error gives both sizes)
 *   -ENOSPC        no device can make room for the model now: what is resident is in use
 *                  or preloaded (an open; try again when sessions close)
 */

typedef enum swarm_dtype {
	SWARM_DTYPE_F32 = 1,
	SWARM_DTYPE_F16 = 2,
	SWARM_DTYPE_BF16 = 3,
	SWARM_DTYPE_I32 = 4,
	SWARM_DTYPE_I64 = 5,
	SWARM_DTYPE_U8 = 6,
} swarm_dtype;

/* One input or output of a model. shape[0] is the batch dimension and is -1: a request of
 * N rows holds N * row_bytes bytes of this tensor. */
typedef struct swarm_tensor_spec {
	char name[SWARM_NAME_MAX];
	uint32_t dtype; /* a swarm_dtype */
	uint32_t ndim;  /* dimensions, the batch dimension included */
	int64_t shape[SWARM_MAX_DIMS];
	uint64_t row_bytes; /* bytes of one row: the product of shape[1..] times the dtype size */
} swarm_tensor_spec;

/* Options for swarm_session_open; zero in any field means the model's default. */
typedef struct swarm_session_opts {
	uint32_t slots;       /* requests in flight or held at once */
	uint32_t queue_depth; /* submission queue entries (a power of two, at most slots) */
	uint32_t max_rows;    /* the largest request, in rows; sizes each slot */
	uint32_t reserved;
} swarm_session_opts;

/* Where a session is served. */
typedef struct swarm_session_info {
	uint64_t session_id;
	int32_t device_index;      /* swarmd's index of the device */
	char device_name[32];      /* "cpu:0", "gpu:1" */
	int32_t numa_node;         /* the device's NUMA node, -1 when unknown */
	char cpus[SWARM_CPUS_MAX]; /* the cores the worker is bound to, as the kernel reports */
	char mem_policy[48];       /* its memory policy as the kernel reports it, in
				    * /proc/PID/numa_maps' spelling ("bind:0"), "" unknown */
	int32_t worker_pid;
	char model[SWARM_NAME_MAX];
	uint32_t model_version;
	uint32_t slots;
	uint32_t queue_depth;
	uint32_t max_rows;
} swarm_session_info;

typedef struct swarm_client swarm_client;
typedef struct swarm_session swarm_session;
typedef struct swarm_request swarm_request;

/* Request flags for swarm_request_submit. */
#define SWARM_REQUEST_NO_RETRY 0x1u /* not idempotent: never run again on another device */

/* Returns the version of the libswarm loaded at run time, such as "0.2.0": a static string,
 * never NULL, callable at any time from any thread. It may be newer than the header the
 * client was built with; SWARM_ABI_VERSION is what must match swarmd's. */
SWARM_API const char *swarm_version(void);

/* Returns a static, human-readable meaning of err (a negative errno from swarm). */
SWARM_API const char *swarm_strerror(int err);

/* Connects to swarmd at socket_path, else $SWARM_SOCKET, else swarm_default_socket(), and
 * checks that both speak SWARM_ABI_VERSION. On success *out owns the connection; close it
 * with swarm_disconnect. Returns 0, -EPROTO (see swarm_client_error for what differs),
 * -EACCES, -ECONNREFUSED, -ETIMEDOUT or another negative errno. */
SWARM_API int swarm_connect(const char *socket_path, swarm_client **out);

/* Every control call (connect and its hello, open, close) waits at most a time limit for
 * swarmd to take its request and at most as long for the answer, then fails with -ETIMEDOUT;
 * the connection then takes no more control calls (-ENOTCONN: reconnect), while its open
 * sessions' requests go on. The limit is $SWARM_TIMEOUT_MS milliseconds (0: none), else 10 s.
 * swarm_connect_timeout connects with timeout_ms instead; swarm_client_set_timeout changes
 * it for c's later calls. Both return -EINVAL for a negative limit. */
SWARM_API int swarm_connect_timeout(const char *socket_path, int64_t timeout_ms,
				    swarm_client **out);
SWARM_API int swarm_client_set_timeout(swarm_client *c, int64_t timeout_ms);

/* Closes every session still open on c, then the connection. c is invalid afterwards. */
SWARM_API void swarm_disconnect(swarm_client *c);

/* The last error message swarmd sent to c (or that the library wrote), "" when none. */
SWARM_API const char *swarm_client_error(const swarm_client *c);

/* The last error message of any swarm call made by this thread, "" when none: the way to
 * learn why swarm_connect failed (an ABI mismatch names both versions), since no client
 * exists then. Thread-local; valid until the thread's next failing swarm call. */
SWARM_API const char *swarm_last_error(void);

/* Writes the default socket path ($XDG_RUNTIME_DIR/swarm/swarmd.sock, else
 * /tmp/swarm-$UID/swarmd.sock) into buf. Returns 0 or -ENAMETOOLONG. */
SWARM_API int swarm_default_socket(char *buf, size_t len);

/* Opens a session on model (version 0: its active version) with opts (NULL: defaults). On
 * success *out owns a mapped segment; close it with swarm_session_close. Returns 0, -ENOENT
 * (no such model or version), -EINVAL (options out of range), -ENODEV (no device in service
 * can take it), -EDQUOT (a limit per client or per user: swarm_client_error names it),
 * -ETIMEDOUT, -ENOMEM, -ENOTCONN. Needs a connected client. */
SWARM_API int swarm_session_open(swarm_client *c, const char *model, uint32_t version,
				 const swarm_session_opts *opts, swarm_session **out);

/* Closes s: unmaps its segment and tells swarmd. Its requests become invalid, including
 * those in flight. Returns 0 or a negative errno (the session is freed either way). */
SWARM_API int swarm_session_close(swarm_session *s);

/* Numbers and specifications of the model's inputs and outputs. The pointers stay valid
 * until the session is closed. i out of range yields NULL. */
SWARM_API uint32_t swarm_session_num_inputs(const swarm_session *s);
SWARM_API uint32_t swarm_session_num_outputs(const swarm_session *s);
SWARM_API const swarm_tensor_spec *swarm_session_input_spec(const swarm_session *s, uint32_t i);
SWARM_API const swarm_tensor_spec *swarm_session_output_spec(const swarm_session *s, uint32_t i);

/* Fills *info with where s is served now (it changes when the session moves). Returns 0,
 * or -EAGAIN when no consistent copy could be read (swarmd died while rewriting it; the
 * session's waits then say it is lost): *info is zeroed, never half old and half new. */
SWARM_API int swarm_session_info_get(const swarm_session *s, swarm_session_info *info);

/* How long swarm_request_wait spins before it sleeps, in nanoseconds (default 50000;
 * 0 sleeps at once). */
SWARM_API void swarm_session_set_spin(swarm_session *s, uint64_t spin_ns);

/* For clients with their own event loop: an eventfd that becomes readable when a completion
 * arrives, once swarm_session_arm has returned 0. Owned by s; do not close it. */
SWARM_API int swarm_session_fd(const swarm_session *s);

/* Asks the worker to signal swarm_session_fd on the next completion. Returns 0 when armed
 * (wait on the fd, then call swarm_session_poll) or 1 when completions are already waiting. */
SWARM_API int swarm_session_arm(swarm_session *s);

/* Collects completed requests without blocking: stores up to max requests that completed
 * since they were last reported and returns how many, or a negative errno (-ECONNABORTED,
 * -EBADMSG) when the session is lost. */
SWARM_API int swarm_session_poll(swarm_session *s, swarm_request **done, int max);

/* Takes a free slot for a request of rows rows (1..max_rows). Returns 0, -EAGAIN (every slot
 * is held or in flight), -EINVAL. The request is the caller's until swarm_request_submit. */
SWARM_API int swarm_request_alloc(swarm_session *s, uint32_t rows, swarm_request **out);

/* Pointers into the slot: input i (write before submit) and output i (read after
 * completion), each rows * row_bytes long and 64-byte aligned. NULL when i is out of range. */
SWARM_API void *swarm_request_input(swarm_request *r, uint32_t i);
SWARM_API const void *swarm_request_output(const swarm_request *r, uint32_t i);

/* Sets a deadline (CLOCK_MONOTONIC, ns; 0 for none): a request that has not started by then
 * completes with -ETIMEDOUT without running. Call before submit. */
SWARM_API void swarm_request_set_deadline(swarm_request *r, uint64_t deadline_ns);

/* Input i of r is in the client's GPU memory instead of the slot: ipc_handle is the
 * SWARM_IPC_HANDLE_BYTES bytes of cudaIpcGetMemHandle on its allocation (on the GPU that
 * swarm_session_info names), offset the tensor's byte offset in it; the tensor is rows *
 * row_bytes long as for host bytes and must stay there until r completes. The handle is
 * copied into the slot at once (it takes the start of input i's area). Call between alloc
 * and submit, or between completion and swarm_request_submit_again. Returns 0 or -EINVAL (r
 * in flight or released, i out of range, handle_len not SWARM_IPC_HANDLE_BYTES, or a slot
 * area too small for the handle). A worker on the CPU completes such a request with
 * -ENOTSUP. Not thread-safe (as r). */
SWARM_API int swarm_request_set_input_device(swarm_request *r, uint32_t i, const void *ipc_handle,
					     size_t handle_len, uint64_t offset);

/* The same for output i: the worker writes it into the client's GPU allocation, and
 * swarm_request_output(r, i) then holds no output bytes. */
SWARM_API int swarm_request_set_output_device(swarm_request *r, uint32_t i,
					      const void *ipc_handle, size_t handle_len,
					      uint64_t offset);

/* Hands the slot to the worker. Returns 0, -EAGAIN (submission queue full: the request stays
 * the caller's; retry later), -EINVAL (not allocated, or already submitted), or the session's
 * loss (-ECONNABORTED, -EBADMSG). */
SWARM_API int swarm_request_submit(swarm_request *r, uint32_t flags);

/* Submits r once more in its own slot, with rows rows (1..max_rows): r held, or completed and
 * not yet released. For a completed request this is release, alloc and submit without giving
 * the slot back (the pointers of swarm_request_input/output stay valid): its inputs are what
 * the slot holds now, its deadline and device tensors what was last set (set a deadline of 0
 * to clear one; device tensors may be set again between completion and this call). Returns
 * as swarm_request_submit; -EINVAL also when r is in flight or released or rows is out of
 * range. After -EAGAIN r is held, its previous status gone. */
SWARM_API int swarm_request_submit_again(swarm_request *r, uint32_t rows, uint32_t flags);

/* Waits for r to complete, spinning first, then sleeping. timeout_ns < 0 waits forever.
 * Returns the request's status (0, or -ETIMEDOUT when its deadline passed, -EINVAL when the
 * worker refused it), -ETIMEDOUT when the wait ran out (r stays in flight; wait again), or
 * -ECONNABORTED / -EBADMSG when the session is lost. */
SWARM_API int swarm_request_wait(swarm_request *r, int64_t timeout_ns);

/* Like swarm_request_wait but never blocks: -EAGAIN while r is in flight. */
SWARM_API int swarm_request_poll(swarm_request *r);

/* Returns the slot to the session. Returns 0, or -EBUSY while r is in flight. r is invalid
 * afterwards. */
SWARM_API int swarm_request_release(swarm_request *r);

/* The rows of a request, and the index of its slot in the session's segment (for logs). */
SWARM_API uint32_t swarm_request_rows(const swarm_request *r);
SWARM_API uint32_t swarm_request_slot(const swarm_request *r);

/* Monotonic clock in ns, the clock of deadlines. */
SWARM_API uint64_t swarm_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* SWARM_SWARM_H */
