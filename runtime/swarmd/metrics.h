/* metrics.h: swarmd's metrics and health endpoints over HTTP (metrics.c; docs/metrics.md). */
#ifndef SWARM_RUNTIME_SWARMD_METRICS_H
#define SWARM_RUNTIME_SWARMD_METRICS_H

/* With --metrics: listens and serves on a thread of its own, and logs the address (the port
 * chosen, for port 0). Call after the devices are set up (their names and stats pages are
 * read from that thread) and before the loop runs. Returns 0 (also without --metrics) or
 * -errno, logged. */
int metrics_start(void);

/* Stops serving and joins the thread; nothing without --metrics. */
void metrics_stop(void);

#endif /* SWARM_RUNTIME_SWARMD_METRICS_H */
