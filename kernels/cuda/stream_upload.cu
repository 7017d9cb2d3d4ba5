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
 * Where the chunk's bytes come from is the caller's (struct swarm_upload_src): a memcpy from
 * the mapping, or a fill callback that reads the file itself (the registry's blob reader, with
 * threads or O_DIRECT, registry/blob_reader.h), so that the host side can run at the link's
 * rate. With register_host there is no staging: the mapping is registered read-only
 * (cudaHostRegisterReadOnly), copied from directly and unregistered; which of these is fastest
 * is measured by swarm-gpu-bench (docs/gpu-check.md).
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
			CUDA_CHECK_RET(cudaMallocHost(&u->chunk[k], SWARM_CUDA_UPLOAD_CHUNK_ALLOC));
		if (!u->done[k])
			CUDA_CHECK_RET(
				cudaEventCreateWithFlags(&u->done[k], cudaEventDisableTiming));
	}
	return 0;
}

/* register_host: the source registered read-only for the copy and DMA'd from in pieces on
 * the upload streams. The registration covers whole pages (the mapping does). */
static int upload_registered(struct swarm_cuda_ctx *c, char *d, const char *s, size_t bytes)
{
	struct swarm_cuda_upload *u = c->upload;
	const uintptr_t page = 4096;
	char *p0 = (char *)((uintptr_t)s & ~(page - 1));
	size_t span =
		(size_t)(((uintptr_t)s + bytes + page - 1) & ~(page - 1)) - (size_t)(uintptr_t)p0;
	int ro = 0, ret = 0;

	if (cudaDeviceGetAttribute(&ro, cudaDevAttrHostRegisterReadOnlySupported, c->ordinal) !=
		    cudaSuccess ||
	    !ro) {
		(void)cudaGetLastError();
		swarm_cuda_set_error("upload_stream: this GPU cannot register read-only memory");
		return -ENOTSUP;
	}
	CUDA_CHECK_RET(cudaHostRegister(p0, span, cudaHostRegisterReadOnly));
	for (size_t off = 0, n = 0; off < bytes; n++) {
		const size_t len = bytes - off < SWARM_CUDA_UPLOAD_REGISTERED_PIECE ?
					   bytes - off :
					   SWARM_CUDA_UPLOAD_REGISTERED_PIECE;

		CUDA_CHECK(cudaMemcpyAsync(d + off, s + off, len, cudaMemcpyHostToDevice,
					   u->stream[n % SWARM_CUDA_UPLOAD_STREAMS]),
			   out);
		off += len;
	}
	for (int i = 0; i < SWARM_CUDA_UPLOAD_STREAMS; i++)
		CUDA_CHECK(cudaStreamSynchronize(u->stream[i]), out);
out:
	if (ret)
		drain(u); /* nothing may read the pages once they are unregistered */
	cudaError_t un = cudaHostUnregister(p0);
	if (un != cudaSuccess && !ret)
		ret = swarm_cuda_report(un, "cudaHostUnregister(p0)", __FILE__, __LINE__);
	return ret;
}

/* The staged copy: chunk k filled (memcpy or src->fill) while chunks k-1, k-2, ... are
 * copied. */
static int upload_staged(struct swarm_cuda_ctx *c, char *d, const struct swarm_upload_src *src,
			 size_t bytes)
{
	struct swarm_cuda_upload *u = c->upload;
	const char *s = (const char *)src->host;
	size_t off = 0;
	unsigned int n = 0; /* chunks queued so far */
	int ret = 0;

	while (off < bytes) {
		const int k = (int)(n % SWARM_CUDA_UPLOAD_CHUNKS);
		cudaStream_t st = u->stream[n % SWARM_CUDA_UPLOAD_STREAMS];
		const size_t len = bytes - off < SWARM_CUDA_UPLOAD_CHUNK_BYTES ?
					   bytes - off :
					   SWARM_CUDA_UPLOAD_CHUNK_BYTES;
		size_t start = 0;

		/* The chunk's previous copy must have finished reading it before it is
		 * overwritten; with 4 chunks that copy was queued 4 chunks ago. */
		if (u->pending[k]) {
			CUDA_CHECK(cudaEventSynchronize(u->done[k]), fail);
			u->pending[k] = 0;
		}
		if (src->fill) {
			ret = src->fill(src->ctx, u->chunk[k], SWARM_CUDA_UPLOAD_CHUNK_ALLOC,
					src->base + off, len, &start);
			if (ret == 0 && start > SWARM_UPLOAD_FILL_SLACK / 2)
				ret = -EINVAL;
			if (ret) {
				swarm_cuda_set_error("upload_stream: the fill of %zu bytes at %zu "
						     "failed: %s",
						     len, off, strerror(-ret));
				goto fail;
			}
		} else {
			memcpy(u->chunk[k], s + off, len);
		}
		CUDA_CHECK(cudaMemcpyAsync(d + off, (char *)u->chunk[k] + start, len,
					   cudaMemcpyHostToDevice, st),
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
	return 0;

fail:
	/* Copies queued before the failure still read the chunks: wait for them, so that the
	 * next call finds every chunk free. */
	drain(u);
	return ret;
}

int swarm_cuda_upload_stream(struct swarm_cuda_ctx *c, void *dst,
			     const struct swarm_upload_src *src, size_t bytes, double *gbps)
{
	uint64_t t0, ns;
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
	if (!dst || !src || (!src->host && (src->register_host || !src->fill))) {
		swarm_cuda_set_error("upload_stream: NULL %s", !dst ? "dst" :
							       !src ? "src" :
								      "host");
		return -EINVAL;
	}
	if (!src->register_host && (ret = ensure_chunks(c->upload)))
		return ret;
	/* dst may have been written or read by work queued before (a kernel, an upload): this
	 * copy comes after it, as everything on the device's one stream would. */
	CUDA_CHECK_RET(cudaStreamSynchronize(c->stream));
	t0 = now_ns();
	ret = src->register_host ?
		      upload_registered(c, (char *)dst, (const char *)src->host, bytes) :
		      upload_staged(c, (char *)dst, src, bytes);
	if (ret)
		return ret;
	ns = now_ns() - t0;
	if (gbps)
		*gbps = (double)bytes / (double)(ns ? ns : 1);
	return 0;
}
