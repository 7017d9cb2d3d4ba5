/* counters.c: swarmd's own counters (counters.h says who writes and who reads them). */
#include "runtime/swarmd/counters.h"

#include <errno.h>

#include "runtime/balancer.h"
#include "runtime/swarmd/swarmd.h"

struct swarmd_counters swarmd_ctr;

/* The loop's own view of each device at the last publish: not read by any other thread. */
static struct {
	int known; /* published once: state is the device's of then */
	int state;
	uint64_t since_ns; /* when it entered state, as the device said then */
} seen[MAX_DEVICES];

void counters_refusal(enum swarmd_limit limit)
{
	if ((unsigned)limit < SWARMD_LIM_N)
		swarm_stat_add(&swarmd_ctr.refusals[limit], 1);
}

void counters_open(int status)
{
	enum swarmd_open_fail why;
	switch (status) {
	case 0:
		swarm_stat_add(&swarmd_ctr.opens, 1);
		return;
	case -ENOENT:
	case -ESRCH:
	case -ENAMETOOLONG:
		why = SWARMD_OPEN_NO_MODEL;
		break;
	case -EINVAL:
		why = SWARMD_OPEN_BAD_OPTIONS;
		break;
	case -EDQUOT:
		why = SWARMD_OPEN_LIMIT;
		break;
	case -ENODEV:
		why = SWARMD_OPEN_NO_DEVICE;
		break;
	case -ECONNABORTED:
	case -EBADMSG:
		why = SWARMD_OPEN_WORKER;
		break;
	default:
		why = SWARMD_OPEN_OTHER;
	}
	swarm_stat_add(&swarmd_ctr.open_failures[why], 1);
}

void counters_autoscale(int wake, uint32_t reason)
{
	if (reason < SWARMD_AS_REASONS)
		swarm_stat_add(&swarmd_ctr.autoscale[wake ? 0 : 1][reason], 1);
}

/* dv left state old, which it had entered at since: a warm-up or a drain that ended. The
 * device stamps state_since_ns at each change; where it did not, the pass's clock stands. */
static void ended(struct swarmd_device_counters *c, const struct device *dv, int old,
		  uint64_t since, uint64_t now)
{
	uint64_t end = dv->state_since_ns > since ? dv->state_since_ns : now;
	if (old == SWARM_DEVICE_WARMING && dv->state != SWARM_DEVICE_FAILED)
		swarm_p2_add(&c->warm_ns, end - since);
	else if (old == SWARM_DEVICE_DRAINING && dv->state == SWARM_DEVICE_PARKED)
		swarm_p2_add(&c->drain_ns, end - since);
}

void counters_publish(uint64_t now)
{
	/* n_dev is fixed before the loop starts; stored here too for a first publish. */
	if (__atomic_load_n(&swarmd_ctr.n_dev, __ATOMIC_RELAXED) != (uint32_t)d.n_dev)
		__atomic_store_n(&swarmd_ctr.n_dev, (uint32_t)d.n_dev, __ATOMIC_RELAXED);
	for (int i = 0; i < d.n_dev; i++) {
		const struct device *dv = &d.dev[i];
		struct swarmd_device_counters *c = &swarmd_ctr.dev[i];
		if (!seen[i].known || seen[i].state != dv->state) {
			if (seen[i].known)
				ended(c, dv, seen[i].state, seen[i].since_ns, now);
			seen[i].known = 1;
			seen[i].state = dv->state;
			seen[i].since_ns = dv->state_since_ns ? dv->state_since_ns : now;
			swarm_stat_set32(&c->state, (uint32_t)dv->state);
		} else if (dv->state_since_ns > seen[i].since_ns) {
			/* Left and came back within one pass (a worker restarted while
			 * warming): a new warm-up. */
			seen[i].since_ns = dv->state_since_ns;
		}
		swarm_stat_set32(&c->sessions, dv->sessions);
		if (swarm_stat_get(&c->restarts) != dv->restarts)
			__atomic_store_n(&c->restarts, dv->restarts, __ATOMIC_RELAXED);
	}
}

const char *counters_limit_name(uint32_t limit)
{
	static const char *const names[SWARMD_LIM_N] = {
		[SWARMD_LIM_SESSIONS_PER_CLIENT] = "sessions_per_client",
		[SWARMD_LIM_SESSIONS_PER_USER] = "sessions_per_user",
		[SWARMD_LIM_SESSION_BYTES] = "session_bytes",
		[SWARMD_LIM_USER_BYTES] = "user_bytes",
		[SWARMD_LIM_CONNECTIONS] = "connections",
		[SWARMD_LIM_CONNECTIONS_PER_USER] = "connections_per_user",
		[SWARMD_LIM_HELLO_TIMEOUT] = "hello_timeout",
	};
	return limit < SWARMD_LIM_N ? names[limit] : "unknown";
}

const char *counters_open_fail_name(uint32_t reason)
{
	static const char *const names[SWARMD_OPEN_N] = {
		[SWARMD_OPEN_NO_MODEL] = "no_model", [SWARMD_OPEN_BAD_OPTIONS] = "bad_options",
		[SWARMD_OPEN_LIMIT] = "limit",       [SWARMD_OPEN_NO_DEVICE] = "no_device",
		[SWARMD_OPEN_WORKER] = "worker",     [SWARMD_OPEN_OTHER] = "other",
	};
	return reason < SWARMD_OPEN_N ? names[reason] : "unknown";
}
