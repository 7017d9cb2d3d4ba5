/* health.c: liveness and readiness (health.h says what they mean). The loop's thread writes
 * two words with release stores; readers on other threads load them with acquire. Device
 * names are written before the loop starts and never change, so a reader may format them. */
#include <stdio.h>

#include "runtime/balancer.h"
#include "runtime/swarmd/health.h"
#include "runtime/swarmd/swarmd.h"

/* Written by the loop's thread alone (health_update), read by any thread. */
static struct {
	uint64_t loop_ns; /* the loop's last pass; 0 before the first */
	uint32_t word;    /* reason << 16 | the device it concerns (0xffff: none) */
} h;

#define NO_DEVICE 0xffffu

static uint32_t word(int reason, int device)
{
	return (uint32_t)reason << 16 | (device < 0 ? NO_DEVICE : (uint32_t)device);
}

/* What keeps swarmd from being ready, as a word; word(READY, -1) when nothing does. */
static uint32_t compute(void)
{
	if (d.stopping)
		return word(SWARMD_HEALTH_STOPPING, -1);
	if (!d.ready)
		return word(SWARMD_HEALTH_STARTING, -1);
	int can_serve = 0;
	for (int i = 0; i < d.n_dev; i++) {
		const struct device *dv = &d.dev[i];
		if (dv->state == SWARM_DEVICE_FAILED)
			return word(SWARMD_HEALTH_DEVICE_FAILED, i);
		/* A parked device can serve only where the autoscaler may wake it: without
		 * --autoscale it was drained by an operator and stays out until resumed. */
		if (dv->state == SWARM_DEVICE_ACTIVE || dv->state == SWARM_DEVICE_STANDBY ||
		    (dv->state == SWARM_DEVICE_PARKED && cfg.as.on) ||
		    dv->state == SWARM_DEVICE_WARMING)
			can_serve = 1;
		if (dv->state != SWARM_DEVICE_ACTIVE && dv->state != SWARM_DEVICE_STANDBY)
			continue;
		for (int p = 0; p < cfg.n_preload; p++) {
			if (dv->pre_state[p] == PRE_FAILED)
				return word(SWARMD_HEALTH_PRELOAD_FAILED, i);
			if (dv->pre_state[p] != PRE_DONE)
				return word(SWARMD_HEALTH_PRELOAD_PENDING, i);
		}
	}
	return can_serve ? word(SWARMD_HEALTH_READY, -1) : word(SWARMD_HEALTH_NO_DEVICE, -1);
}

void health_update(uint64_t now)
{
	/* Pairs with the acquire loads in health_ready/health_reason. */
	__atomic_store_n(&h.word, compute(), __ATOMIC_RELEASE);
	/* Pairs with the acquire load in health_live. */
	__atomic_store_n(&h.loop_ns, now, __ATOMIC_RELEASE);
}

int health_live(uint64_t now, uint64_t interval_ns)
{
	uint64_t last = __atomic_load_n(&h.loop_ns, __ATOMIC_ACQUIRE);
	if (!interval_ns)
		interval_ns = SWARMD_HEALTH_LIVE_NS;
	return last && (now < last || now - last <= interval_ns);
}

int health_reason(void) { return (int)(__atomic_load_n(&h.word, __ATOMIC_ACQUIRE) >> 16); }

int health_ready(char *text, size_t len)
{
	static const char *const why[] = {
		[SWARMD_HEALTH_READY] = "ready",
		[SWARMD_HEALTH_STARTING] = "starting: devices are still warming",
		[SWARMD_HEALTH_NO_DEVICE] = "no device is in service or can be woken",
		[SWARMD_HEALTH_DEVICE_FAILED] = "a device failed and is out of service",
		[SWARMD_HEALTH_PRELOAD_PENDING] = "a preloaded model is still loading",
		[SWARMD_HEALTH_PRELOAD_FAILED] = "a preloaded model failed to load",
		[SWARMD_HEALTH_STOPPING] = "stopping",
	};
	uint32_t w = __atomic_load_n(&h.word, __ATOMIC_ACQUIRE);
	uint32_t reason = w >> 16, dev = w & NO_DEVICE;
	if (text && len) {
		const char *r = reason < sizeof why / sizeof *why ? why[reason] : "unknown";
		if (dev != NO_DEVICE && dev < (uint32_t)d.n_dev)
			snprintf(text, len, "%s (device %s)", r, d.dev[dev].plan.name);
		else
			snprintf(text, len, "%s", r);
	}
	return reason == SWARMD_HEALTH_READY;
}
