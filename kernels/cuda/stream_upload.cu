/* stream_upload.cu: the streamed upload of a large pageable buffer through pinned chunks (see
 * stream_upload.cuh and docs/devices.md).
 *
 * Why chunks: a cudaMemcpy from pageable memory is staged by the driver through its own small
 * pinned buffer, one piece at a time, with the host copy and the DMA mostly serialised. Here
 * the host copies the next piece into a chunk of our own while the copy engine reads the
 * earlier ones, so the slower of the two (usually the single-threaded memcpy from the page
 * cache) sets the rate, not their sum. The chunks alternate over two streams so that the copy
 * of one chunk is queued behind the one in flight and the engine never waits for the host
 * between them.
 *
 * Not done (to be measured on a GPU first): reading the blob with O_DIRECT through io_uring
 * straight into the pinned chunks (one host copy fewer, no page cache), and registering the
 * read-only mapping itself (cudaHostRegisterReadOnly) to DMA from it without staging.
 */
#include "stream_upload.cuh"

#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int swarm_cuda_upload_init(struct swarm_cuda_upload *u)
{
	for (int s = 0; s < SWARM_CUDA_UPLOAD_STREAMS; s++)
		CUDA_CHECK_RET(cudaStreamCreateWithFlags(&u->stream[s], cudaStreamNonBlocking));
	return 0;
}

/* Waits for every copy still in flight (they read the chunks), ignoring their errors: after
 * it no chunk is being read and all are free. */
static void drain(struct swarm_cuda_upload *u)
{
	for (int s = 0; s < SWARM_CUDA_UPLOAD_STREAMS; s++)
		if (u->stream[s])
			(void)cudaStreamSynchronize(u->stream[s]);
	for (int k = 0; k < SWARM_CUDA_UPLOAD_CHUNKS; k++)
		u->pending[k] = 0;
	(void)cudaGetLastError();
}

void swarm_cuda_upload_release(struct swarm_cuda_upload *u)
{
	drain(u);
	for (int k = 0; k < SWARM_CUDA_UPLOAD_CHUNKS; k++) {
		if (u->done[k])
			(void)cudaEventDestroy(u->done[k]);
		if (u->chunk[k])
			(void)cudaFreeHost(u->chunk[k]);
	}
	for (int s = 0; s < SWARM_CUDA_UPLOAD_STREAMS; s++)
		if (u->stream[s])
			(void)cudaStreamDestroy(u->stream[s]);
	(void)cudaGetLastError();
	memset(u, 0, sizeof(*u));
}

/* The chunks and their events, once per device: 64 MiB of pinned memory that a device which
 * never streams (the CPU-bound tests, a device with no weights) does not pay for. A partial
 * failure keeps what it made for release. */
static int ensure_chunks(struct swarm_cuda_upload *u)
{
	for (int k = 0; k < SWARM_CUDA_UPLOAD_CHUNKS; k++) {
		if (!u->chunk[k])
			CUDA_CHECK_RET(cudaMallocHost(&u->chunk[k], SWARM_CUDA_UPLOAD_CHUNK_BYTES));
		if (!u->done[k])
			CUDA_CHECK_RET(
				cudaEventCreateWithFlags(&u->done[k], cudaEventDisableTiming));
	}
	return 0;
}

int swarm_cuda_upload_stream(struct swarm_cuda_ctx *c, void *dst, const void *src, size_t bytes,
			     double *gbps)
{
	struct swarm_cuda_upload *u = c->upload;
	char *d = (char *)dst;
	const char *s = (const char *)src;
	uint64_t t0, ns;
	size_t off = 0;
	unsigned int n = 0; /* chunks queued so far */
	int ret;

	if (gbps)
		*gbps = 0.0;
	if (c->capturing) {
		/* The chunks are reused at once: a recorded copy would read whatever they held at
		 * replay. */
		swarm_cuda_set_error("upload_stream during graph capture");
		return -EINVAL;
	}
	if (bytes == 0)
		return 0;
	if (!dst || !src) {
		swarm_cuda_set_error("upload_stream: NULL %s", dst ? "src" : "dst");
		return -EINVAL;
	}
	ret = ensure_chunks(u);
	if (ret)
		return ret;
	/* dst may have been written or read by work queued before (a kernel, an upload): this
	 * copy comes after it, as everything on the device's one stream would. */
	CUDA_CHECK_RET(cudaStreamSynchronize(c->stream));
	t0 = now_ns();
	while (off < bytes) {
		const int k = (int)(n % SWARM_CUDA_UPLOAD_CHUNKS);
		cudaStream_t st = u->stream[n % SWARM_CUDA_UPLOAD_STREAMS];
		const size_t len = bytes - off < SWARM_CUDA_UPLOAD_CHUNK_BYTES ?
					   bytes - off :
					   SWARM_CUDA_UPLOAD_CHUNK_BYTES;

		/* The chunk's previous copy must have finished reading it before it is
		 * overwritten; with 4 chunks that copy was queued 4 chunks ago. */
		if (u->pending[k]) {
			CUDA_CHECK(cudaEventSynchronize(u->done[k]), fail);
			u->pending[k] = 0;
		}
		memcpy(u->chunk[k], s + off, len);
		CUDA_CHECK(cudaMemcpyAsync(d + off, u->chunk[k], len, cudaMemcpyHostToDevice, st),
			   fail);
		CUDA_CHECK(cudaEventRecord(u->done[k], st), fail);
		u->pending[k] = 1;
		off += len;
		n++;
	}
	for (int i = 0; i < SWARM_CUDA_UPLOAD_STREAMS; i++)
		CUDA_CHECK(cudaStreamSynchronize(u->stream[i]), fail);
	for (int k = 0; k < SWARM_CUDA_UPLOAD_CHUNKS; k++)
		u->pending[k] = 0;
	ns = now_ns() - t0;
	if (gbps)
		*gbps = (double)bytes / (double)(ns ? ns : 1);
	return 0;

fail:
	/* Copies queued before the failure still read the chunks: wait for them, so that the
	 * next call finds every chunk free. */
	drain(u);
	return ret;
}
