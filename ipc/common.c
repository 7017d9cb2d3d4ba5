/* common.c: the small public helpers that libswarm, swarmd and the tools share: the clock,
 * error strings, and the default socket path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "swarm/swarm.h"

SWARM_API uint64_t swarm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

SWARM_API const char *swarm_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EAGAIN:
		return "no free slot, or the submission queue is full; try again";
	case -ETIMEDOUT:
		return "timed out (the wait, the request's deadline, or swarmd's answer)";
	case -EUSERS:
		return "swarmd holds as many connections as it allows (swarm_client_error names the "
		       "limit)";
	case -EMFILE:
		return "swarmd is out of file descriptors; try again later";
	case -EDQUOT:
		return "a limit per client or per user was reached (swarm_client_error names it)";
	case -EFBIG:
		return "the model is larger than every device's memory budget";
	case -ENOSPC:
		return "no device can make room for the model now";
	case -EPROTO:
		return "the client and swarmd speak different ABI versions";
	case -ENOENT:
		return "no such model or version";
	case -EINVAL:
		return "invalid argument";
	case -EBUSY:
		return "the request is in flight";
	case -ECONNABORTED:
		return "the worker serving the session died";
	case -EBADMSG:
		return "the session broke the protocol and was detached";
	case -EACCES:
		return "permission denied: the socket's file permissions, or swarmd's credential "
		       "check (swarm_client_error says which)";
	case -ECONNREFUSED:
		return "no swarmd listens on the socket";
	case -ENOTCONN:
		return "not connected to swarmd";
	case -ENODEV:
		return "no device can serve the model";
	case -ENOTSUP:
		return "the request's tensors are in GPU memory and its device has none";
	}
	return err < 0 ? strerror(-err) : "not an error code";
}

SWARM_API int swarm_default_socket(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n = xdg && *xdg ? snprintf(buf, len, "%s/swarm/swarmd.sock", xdg) :
			      snprintf(buf, len, "/tmp/swarm-%u/swarmd.sock", (unsigned)getuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
