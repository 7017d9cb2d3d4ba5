/* nccl_bcast.cu: loads NCCL with dlopen, as blas.cu loads cuBLAS, and broadcasts a device
 * buffer from one rank to the others of a communicator made for that one broadcast (see
 * nccl_bcast.h). swarmd's fan-out (runtime/fanout.h, docs/devices.md) hands the id to the
 * workers that warm the same model; each calls this with a deadline, so that a rank that never
 * joins (a worker that died, a load that failed) costs the others a timeout, not a hang.
 */
#include "nccl_bcast.h"
#include "cuda_common.cuh"
#include "probe.h"

#include "kernels/lib_search.h"

#include <nccl.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static_assert(NCCL_UNIQUE_ID_BYTES == SWARM_NCCL_ID_BYTES, "NCCL_UNIQUE_ID_BYTES");
static_assert(sizeof(ncclUniqueId) == SWARM_NCCL_ID_BYTES, "sizeof(ncclUniqueId)");

#define STR_(x) #x
#define STR(x) STR_(x)
/* The soname of the NCCL we compiled against (libnccl.so.2). */
#define NCCL_SONAME "libnccl.so." STR(NCCL_MAJOR)

/* The functions taken from libnccl; the member types are the header's own (decltype, not
 * evaluated, so no reference to the symbols reaches the linker). */
#define SWARM_NCCL_FUNCS(X) \
	X(ncclGetUniqueId)  \
	X(ncclCommInitRank) \
	X(ncclBroadcast)    \
	X(ncclCommDestroy)  \
	X(ncclCommAbort)    \
	X(ncclGetErrorString)

static struct {
#define SWARM_NCCL_MEMBER(f) decltype(&::f) f;
	SWARM_NCCL_FUNCS(SWARM_NCCL_MEMBER)
#undef SWARM_NCCL_MEMBER
	decltype(&::ncclGetLastError) ncclGetLastError; /* NCCL 2.13 on; NULL before */
	decltype(&::ncclGetVersion) ncclGetVersion;     /* for swarm_nccl_describe; may be NULL */
	/* NCCL 2.14 on (non-blocking communicators, the deadline); NULL before */
	decltype(&::ncclCommInitRankConfig) ncclCommInitRankConfig;
	decltype(&::ncclCommGetAsyncError) ncclCommGetAsyncError;
} api;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_ret = -ENODEV;
static char load_error[1024];
static char where[512]; /* the file loaded, for swarm_nccl_describe */

/* dlopen by soname (LD_LIBRARY_PATH, ld.so.cache), else wherever kernels/lib_search.h finds
 * it, as blas.cu does. The handle stays open for the process's life. */
static void load(void)
{
	void *h = swarm_lib_open(NCCL_SONAME,
#ifdef SWARM_CUDA_LIB_DIR
				 SWARM_CUDA_LIB_DIR,
#else
				 NULL,
#endif
				 where, sizeof(where), load_error, sizeof(load_error));
	void *sym;

	if (!h)
		return;
#define SWARM_NCCL_SYM(f)                                                                  \
	sym = dlsym(h, #f);                                                                \
	if (!sym) {                                                                        \
		snprintf(load_error, sizeof(load_error), "%s has no %s", NCCL_SONAME, #f); \
		return;                                                                    \
	}                                                                                  \
	memcpy(&api.f, &sym, sizeof(sym)); /* a data pointer to a function pointer */
	SWARM_NCCL_FUNCS(SWARM_NCCL_SYM)
#undef SWARM_NCCL_SYM
	sym = dlsym(h, "ncclGetVersion");
	memcpy(&api.ncclGetVersion, &sym, sizeof(sym));
	sym = dlsym(h, "ncclGetLastError");
	memcpy(&api.ncclGetLastError, &sym, sizeof(sym));
	sym = dlsym(h, "ncclCommInitRankConfig");
	memcpy(&api.ncclCommInitRankConfig, &sym, sizeof(sym));
	sym = dlsym(h, "ncclCommGetAsyncError");
	memcpy(&api.ncclCommGetAsyncError, &sym, sizeof(sym));
	load_ret = 0;
}

/* Loads NCCL once per process (thread-safe): 0, or -ENODEV with the reason. */
static int nccl_load(void)
{
	(void)pthread_once(&load_once, load);
	if (load_ret)
		swarm_cuda_set_error("NCCL: %s", load_error);
	return load_ret;
}

extern "C" int swarm_nccl_describe(char *buf, size_t len)
{
	int rc = nccl_load();
	int version = 0;

	if (!buf || len == 0)
		return -EINVAL;
	if (rc == 0 && api.ncclGetVersion)
		(void)api.ncclGetVersion(&version);
	if (rc == 0)
		snprintf(buf, len, "%s: %s, NCCL %d.%d.%d\n", NCCL_SONAME, where, version / 10000,
			 version / 100 % 100, version % 100);
	else
		snprintf(buf, len, "NCCL: %s\n", load_error);
	return rc;
}

/* Records and prints a failed NCCL call, as swarm_cuda_report does for CUDA; returns -EINVAL
 * for a misuse NCCL saw, else fallback: -ENODEV where NCCL could not start (no id, no
 * communicator: no driver, GPU or network interface for its bootstrap), -EIO after that. */
static int nccl_report(ncclResult_t st, ncclComm_t comm, const char *stmt, const char *file,
		       int line, int fallback)
{
	const char *detail = api.ncclGetLastError ? api.ncclGetLastError(comm) : NULL;

	swarm_cuda_set_error("%s failed: %s%s%s at %s:%d", stmt, api.ncclGetErrorString(st),
			     detail && detail[0] ? ": " : "", detail ? detail : "", file, line);
	fprintf(stderr, "swarm: nccl: %s\n", swarm_cuda_last_error());
	(void)cudaGetLastError(); /* NCCL's CUDA failures leave the runtime's last error set */
	if (st == ncclInvalidArgument || st == ncclInvalidUsage)
		return -EINVAL;
	return fallback;
}

/* Runs an NCCL call; on failure reports it, sets ret and jumps to label. */
#define NCCL_CHECK(stmt, comm, fallback, label)                                                \
	do {                                                                                   \
		ncclResult_t st_ = (stmt);                                                     \
		if (st_ != ncclSuccess) {                                                      \
			ret = nccl_report(st_, (comm), #stmt, __FILE__, __LINE__, (fallback)); \
			goto label;                                                            \
		}                                                                              \
	} while (0)

extern "C" int swarm_nccl_unique_id(uint8_t id[SWARM_NCCL_ID_BYTES])
{
	ncclUniqueId uid;
	int ret;

	swarm_cuda_clear_error();
	if (!id) {
		swarm_cuda_set_error("swarm_nccl_unique_id: id is NULL");
		return -EINVAL;
	}
	ret = nccl_load();
	if (ret)
		return ret;
	/* Any failure here means NCCL cannot run on this machine: -ENODEV, like a missing
	 * driver, whatever NCCL's code. */
	NCCL_CHECK(api.ncclGetUniqueId(&uid), NULL, -ENODEV, err);
	memcpy(id, uid.internal, SWARM_NCCL_ID_BYTES);
	return 0;
err:
	return ret == -EINVAL ? -ENODEV : ret;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits, until deadline (seconds, now_s's clock), for a non-blocking communicator's last call
 * to finish: 0, -ETIMEDOUT, or the call's error as nccl_report maps it. */
static int nccl_wait(ncclComm_t comm, double deadline, const char *what)
{
	const struct timespec pause = { 0, 200000 }; /* 0.2 ms: set-up takes milliseconds */
	ncclResult_t st;

	for (;;) {
		ncclResult_t q = api.ncclCommGetAsyncError(comm, &st);
		if (q != ncclSuccess)
			return nccl_report(q, comm, "ncclCommGetAsyncError", __FILE__, __LINE__,
					   -EIO);
		if (st != ncclInProgress)
			break;
		if (now_s() > deadline) {
			swarm_cuda_set_error("%s: no answer from every rank before the deadline",
					     what);
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
	if (st != ncclSuccess)
		return nccl_report(st, comm, what, __FILE__, __LINE__, -EIO);
	return 0;
}

/* Waits for stream s until deadline, watching comm for an asynchronous error (a peer that went
 * away mid-broadcast): 0, -ETIMEDOUT, -EIO. */
static int stream_wait(cudaStream_t s, ncclComm_t comm, double deadline)
{
	const struct timespec pause = { 0, 100000 };

	for (;;) {
		cudaError_t e = cudaStreamQuery(s);
		if (e == cudaSuccess)
			return 0;
		if (e != cudaErrorNotReady)
			return swarm_cuda_report(e, "cudaStreamQuery(stream)", __FILE__, __LINE__);
		int rc = nccl_wait(comm, deadline, "ncclBroadcast");
		if (rc)
			return rc;
		if (now_s() > deadline) {
			swarm_cuda_set_error("ncclBroadcast: not done before the deadline");
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
}

extern "C" int swarm_nccl_broadcast(struct swarm_device *dev, const uint8_t id[SWARM_NCCL_ID_BYTES],
				    int nranks, int rank, int root, void *buf, size_t bytes,
				    double *gbps)
{
	return swarm_nccl_broadcast_timeout(dev, id, nranks, rank, root, buf, bytes, 0, gbps);
}

extern "C" int swarm_nccl_broadcast_timeout(struct swarm_device *dev,
					    const uint8_t id[SWARM_NCCL_ID_BYTES], int nranks,
					    int rank, int root, void *buf, size_t bytes,
					    int timeout_ms, double *gbps)
{
	struct swarm_cuda_ctx *c;
	ncclUniqueId uid;
	ncclComm_t comm = NULL;
	double t0, dt, deadline;
	int cur = -1;
	int ret;

	swarm_cuda_clear_error();
	if (gbps)
		*gbps = 0.0;
	/* Every argument first: a bad call is -EINVAL wherever NCCL is missing, and never
	 * reaches a collective that the other ranks would wait in forever. */
	if (!dev || !dev->ctx || dev->i != swarm_device_cuda_table() || !id || nranks < 1 ||
	    rank < 0 || rank >= nranks || root < 0 || root >= nranks || (!buf && bytes) ||
	    timeout_ms < 0) {
		swarm_cuda_set_error("swarm_nccl_broadcast: bad argument (dev %p%s, id %p, nranks "
				     "%d, rank %d, root %d, buf %p, timeout %d ms)",
				     (void *)dev,
				     dev && dev->i != swarm_device_cuda_table() ? " not CUDA" : "",
				     (const void *)id, nranks, rank, root, buf, timeout_ms);
		return -EINVAL;
	}
	c = (struct swarm_cuda_ctx *)dev->ctx;
	if (c->capturing) {
		/* Making a communicator and waiting for the stream would break the capture. */
		swarm_cuda_set_error("swarm_nccl_broadcast: during graph capture");
		return -EINVAL;
	}
	if (bytes == 0)
		return 0; /* every rank has the same bytes: all return here, none waits */
	ret = nccl_load();
	if (ret)
		return ret;
	memcpy(uid.internal, id, SWARM_NCCL_ID_BYTES);
	/* The communicator is made on the current device: make it the device's GPU. */
	CUDA_CHECK_RET(cudaGetDevice(&cur));
	if (cur != c->ordinal)
		CUDA_CHECK_RET(cudaSetDevice(c->ordinal));
	deadline = now_s() + (double)timeout_ms / 1e3;
	if (timeout_ms && (!api.ncclCommInitRankConfig || !api.ncclCommGetAsyncError)) {
		/* Without them a rank that never joins would hang this one: refuse, and the
		 * caller loads its weights another way. */
		swarm_cuda_set_error("swarm_nccl_broadcast: this NCCL (before 2.14) has no "
				     "non-blocking communicators, so no deadline");
		return -ENOTSUP;
	}
	if (timeout_ms) {
		/* Non-blocking: every call returns at once and nccl_wait polls it, so that a rank
		 * that never joins ends in -ETIMEDOUT and an abort rather than a hang. */
		ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
		config.blocking = 0;
		ncclResult_t st = api.ncclCommInitRankConfig(&comm, nranks, uid, rank, &config);
		if (st != ncclSuccess && st != ncclInProgress) {
			ret = nccl_report(st, NULL, "ncclCommInitRankConfig", __FILE__, __LINE__,
					  -ENODEV);
			goto out;
		}
		if ((ret = nccl_wait(comm, deadline, "ncclCommInitRankConfig")))
			goto out;
	} else {
		NCCL_CHECK(api.ncclCommInitRank(&comm, nranks, uid, rank), NULL, -ENODEV, out);
	}
	/* Start the clock on an idle stream, so that the rate is the broadcast's alone and not
	 * that of the work queued before it. */
	CUDA_CHECK(cudaStreamSynchronize(c->stream), out);
	t0 = now_s();
	if (timeout_ms) {
		ncclResult_t st =
			api.ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm, c->stream);
		if (st != ncclSuccess && st != ncclInProgress) {
			ret = nccl_report(st, comm, "ncclBroadcast", __FILE__, __LINE__, -EIO);
			goto out;
		}
		if ((ret = nccl_wait(comm, deadline, "ncclBroadcast")) ||
		    (ret = stream_wait(c->stream, comm, deadline)))
			goto out;
	} else {
		NCCL_CHECK(api.ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm, c->stream),
			   comm, -EIO, out);
		CUDA_CHECK(cudaStreamSynchronize(c->stream), out);
	}
	dt = now_s() - t0;
	if (gbps && dt > 0)
		*gbps = (double)bytes / dt * 1e-9;
	ret = 0;
out:
	if (comm) {
		/* After a failure the other ranks may never finish the collective: abort rather
		 * than destroy, which would wait for them. */
		ncclResult_t st = ret ? api.ncclCommAbort(comm) : api.ncclCommDestroy(comm);
		if (st != ncclSuccess && ret == 0)
			ret = nccl_report(st, NULL, "ncclCommDestroy(comm)", __FILE__, __LINE__,
					  -EIO);
	}
	if (ret && gbps)
		*gbps = 0.0;
	return ret;
}
