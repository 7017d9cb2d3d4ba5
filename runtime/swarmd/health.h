/* health.h: whether swarmd is live and ready, computed by the loop's thread and readable
 * from any thread (the metrics endpoint's, sd_notify's caller).
 *
 * Live: the event loop ran within the watchdog interval. Ready: swarmd finished starting,
 * every device that should serve is serving (none failed, at least one in service, parked
 * by the autoscaler or a warm spare), and every --preload model is loaded on every device in
 * service. A device drained by an operator should not serve and does not count.
 */
#ifndef SWARM_RUNTIME_SWARMD_HEALTH_H
#define SWARM_RUNTIME_SWARMD_HEALTH_H

#include <stddef.h>
#include <stdint.h>

enum swarmd_health_reason {
	SWARMD_HEALTH_READY = 0,
	SWARMD_HEALTH_STARTING,        /* devices still warming for the first time */
	SWARMD_HEALTH_NO_DEVICE,       /* no device serves or can be woken */
	SWARMD_HEALTH_DEVICE_FAILED,   /* a device was taken out of service */
	SWARMD_HEALTH_PRELOAD_PENDING, /* a --preload model is still loading on a device */
	SWARMD_HEALTH_PRELOAD_FAILED,  /* a --preload model failed to load on a device */
	SWARMD_HEALTH_STOPPING,        /* shutting down */
};

/* The default liveness interval when no systemd watchdog sets one (WATCHDOG_USEC). */
#define SWARMD_HEALTH_LIVE_NS (10ull * 1000000000ull)

/* Loop thread only: recomputes readiness from swarmd's state and stamps the loop's last pass
 * with now (CLOCK_MONOTONIC ns). Cheap (devices x preloads); called on every pass. */
void health_update(uint64_t now);

/* Any thread. 1 when the loop ran within interval_ns of now (0: the default interval). */
int health_live(uint64_t now, uint64_t interval_ns);
/* Any thread. 1 when ready; else 0, with why in text (when text is not NULL): the reason and
 * the device it concerns. */
int health_ready(char *text, size_t len);
/* Any thread. The reason code (a swarmd_health_reason) of the last update. */
int health_reason(void);

#endif /* SWARM_RUNTIME_SWARMD_HEALTH_H */
