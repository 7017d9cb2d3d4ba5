/* notify.h: swarmd's messages to its service manager (sd_notify(3)): READY=1 once it is
 * ready, STATUS= as readiness changes, WATCHDOG=1 from the loop, STOPPING=1 at shutdown.
 * Without $NOTIFY_SOCKET (not started by systemd as Type=notify) every call does nothing.
 * Loop thread only, but for notify_watchdog_ns.
 */
#ifndef SWARM_RUNTIME_SWARMD_NOTIFY_H
#define SWARM_RUNTIME_SWARMD_NOTIFY_H

#include <stdint.h>

/* Reads the manager's socket and watchdog interval from the environment; logs what it
 * found. Call once, before the loop. */
void notify_start(void);

/* After health_update: READY=1 with a STATUS= line at the first pass that is ready, then a
 * STATUS= line each time readiness or its reason changes. */
void notify_health(void);

/* From the loop's timer tick (now: CLOCK_MONOTONIC ns): WATCHDOG=1 when half the watchdog
 * interval has passed since the last one. */
void notify_watchdog(uint64_t now);

/* At the start of the shut-down: STOPPING=1. */
void notify_stopping(void);

/* Any thread. The watchdog interval systemd asked for (WATCHDOG_USEC) in ns, 0 for none:
 * the liveness interval of /health/live when set. */
uint64_t notify_watchdog_ns(void);

#endif /* SWARM_RUNTIME_SWARMD_NOTIFY_H */
