/* metrics.c: swarmd's metrics and health endpoints (--metrics ADDR:PORT; docs/metrics.md).
 * libmicrohttpd serves, on its own thread, /metrics in the Prometheus text format (0.0.4),
 * /health/live and /health/ready (200, or 503 with the reason), and 404 for anything else.
 *
 * That thread never touches swarmd's single-threaded state (swarmd.h). It reads only: the
 * workers' stats pages, model tables only (runtime/stats.h: relaxed atomics, names published
 * with a release store); swarmd's own counters (counters.h: relaxed atomics); the health
 * words (health.h: acquire loads); and what is fixed before the loop starts (the device
 * count, their names, their stats pages' mappings). A scrape costs swarmd's loop nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/swarmd/counters.h"
#include "runtime/swarmd/health.h"
#include "runtime/swarmd/metrics.h"
#include "runtime/swarmd/metrics_text.h"
#include "runtime/swarmd/notify.h"
#include "runtime/swarmd/swarmd.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define LAT_FIRST 8  /* latency buckets from 2^8 ns (256 ns) ... */
#define LAT_LAST 36  /* ... to 2^36 ns (68.7 s) */
#define ROWS_LAST 16 /* batch rows from 1 to 65536 */

static struct MHD_Daemon *mhd;

/* ---- per model, version and device, from the stats pages' model tables ---------------------- */

/* The labels of one model entry. */
struct model_labels {
	struct mlabel l[3];
	char name[SWARM_NAME_MAX];
	char version[16];
};

/* Device i's model entry j with its labels, or NULL when the entry is free. */
static const struct swarm_model_stats *model_at(int i, int j, struct model_labels *ml)
{
	const struct swarm_worker_stats *st = d.dev[i].stats;
	if (!st)
		return NULL;
	const struct swarm_model_stats *m = &st->models[j];
	/* Acquire pairs with the worker's release store of valid (swarm_stats_model): the name
	 * and version, written before it, are whole and never change after. */
	if (!__atomic_load_n(&m->valid, __ATOMIC_ACQUIRE))
		return NULL;
	memcpy(ml->name, m->name, sizeof ml->name);
	ml->name[sizeof ml->name - 1] = 0;
	snprintf(ml->version, sizeof ml->version, "%u", m->version);
	ml->l[0] = (struct mlabel){ "model", ml->name };
	ml->l[1] = (struct mlabel){ "version", ml->version };
	ml->l[2] = (struct mlabel){ "device", d.dev[i].plan.name };
	return m;
}

static const struct {
	const char *name, *type, *help;
	size_t off;
	double scale;
} model_words[] = {
	{ "swarm_requests_total", "counter", "Requests completed (failed ones included).",
	  offsetof(struct swarm_model_stats, requests), 1 },
	{ "swarm_rows_total", "counter", "Rows of the requests completed.",
	  offsetof(struct swarm_model_stats, rows), 1 },
	{ "swarm_batches_total", "counter",
	  "Runs of more than one request together (dynamic batching).",
	  offsetof(struct swarm_model_stats, batches), 1 },
	{ "swarm_weight_loads_total", "counter", "Weight loads of the version on the device.",
	  offsetof(struct swarm_model_stats, loads), 1 },
	{ "swarm_weight_load_bytes_total", "counter", "Weights blob bytes loaded.",
	  offsetof(struct swarm_model_stats, load_bytes), 1 },
	{ "swarm_weight_load_seconds_total", "counter",
	  "Time spent loading weights (mapping, reading, verifying, copying to the device).",
	  offsetof(struct swarm_model_stats, load_ns), 1e-9 },
	{ "swarm_weight_upload_bytes_total", "counter",
	  "Weight bytes copied to device memory (0 on a CPU device, which computes on the "
	  "mapping).",
	  offsetof(struct swarm_model_stats, upload_bytes), 1 },
	{ "swarm_weight_load_bytes_per_second", "gauge",
	  "The last weight load's rate: the copy to the device, else the read.",
	  offsetof(struct swarm_model_stats, load_bytes_per_s), 1 },
};

static const struct {
	const char *name, *help;
	size_t off;
	uint32_t first, last;
	double scale;
} model_hists[] = {
	{ "swarm_request_latency_seconds",
	  "End to end: the client's submit stamp to the completion (stamped requests).",
	  offsetof(struct swarm_model_stats, latency_ns), LAT_FIRST, LAT_LAST, 1e-9 },
	{ "swarm_queue_seconds",
	  "Waiting: the client's submit stamp to the start of the run that took the request.",
	  offsetof(struct swarm_model_stats, queue_ns), LAT_FIRST, LAT_LAST, 1e-9 },
	{ "swarm_compute_seconds",
	  "One run: a batch, or a worker's pass over a session's ready requests.",
	  offsetof(struct swarm_model_stats, compute_ns), LAT_FIRST, LAT_LAST, 1e-9 },
	{ "swarm_batch_rows", "Rows of each run of a version with dynamic batching.",
	  offsetof(struct swarm_model_stats, batch_rows), 0, ROWS_LAST, 1 },
};

static void model_metrics(struct mtext *t, int n_dev)
{
	struct model_labels ml;
	const struct swarm_model_stats *m;
	for (size_t k = 0; k < sizeof model_words / sizeof *model_words; k++) {
		mtext_family(t, model_words[k].name, model_words[k].type, model_words[k].help);
		for (int i = 0; i < n_dev; i++)
			for (int j = 0; j < SWARM_STATS_MAX_MODELS; j++)
				if ((m = model_at(i, j, &ml)))
					mtext_sample(
						t, model_words[k].name, ml.l, 3,
						(double)swarm_stat_get(
							(const uint64_t *)((const char *)m +
									   model_words[k].off)) *
							model_words[k].scale);
	}
	mtext_family(t, "swarm_sessions", "gauge", "Sessions attached to the version now.");
	for (int i = 0; i < n_dev; i++)
		for (int j = 0; j < SWARM_STATS_MAX_MODELS; j++)
			if ((m = model_at(i, j, &ml)))
				mtext_sample(t, "swarm_sessions", ml.l, 3,
					     __atomic_load_n(&m->sessions, __ATOMIC_RELAXED));
	mtext_family(t, "swarm_request_failures_total", "counter",
		     "Requests completed with an error, by reason.");
	for (int i = 0; i < n_dev; i++)
		for (int j = 0; j < SWARM_STATS_MAX_MODELS; j++) {
			if (!(m = model_at(i, j, &ml)))
				continue;
			struct mlabel l[4] = { ml.l[0], ml.l[1], ml.l[2], { "reason", NULL } };
			for (uint32_t r = 0; r < SWARM_FAIL_N; r++) {
				l[3].value = swarm_fail_reason_name(r);
				mtext_sample(t, "swarm_request_failures_total", l, 4,
					     (double)swarm_stat_get(&m->failures[r]));
			}
		}
	for (size_t k = 0; k < sizeof model_hists / sizeof *model_hists; k++) {
		mtext_family(t, model_hists[k].name, "histogram", model_hists[k].help);
		for (int i = 0; i < n_dev; i++)
			for (int j = 0; j < SWARM_STATS_MAX_MODELS; j++)
				if ((m = model_at(i, j, &ml)))
					mtext_histogram(
						t, model_hists[k].name, ml.l, 3,
						(const struct swarm_p2hist *)((const char *)m +
									      model_hists[k].off),
						model_hists[k].first, model_hists[k].last,
						model_hists[k].scale);
	}
}

/* ---- per device, and swarmd's own, from counters.h ----------------------------------------- */

static void device_metrics(struct mtext *t, int n_dev)
{
	static const int states[] = { SWARM_DEVICE_PARKED, SWARM_DEVICE_WARMING,
				      SWARM_DEVICE_ACTIVE, SWARM_DEVICE_DRAINING,
				      SWARM_DEVICE_FAILED, SWARM_DEVICE_STANDBY };
	mtext_family(t, "swarm_device_state", "gauge",
		     "1 for the state the device is in, 0 for the others.");
	for (int i = 0; i < n_dev; i++) {
		uint32_t s = __atomic_load_n(&swarmd_ctr.dev[i].state, __ATOMIC_RELAXED);
		for (size_t k = 0; k < sizeof states / sizeof *states; k++) {
			struct mlabel l[2] = { { "device", d.dev[i].plan.name },
					       { "state", swarm_device_state_name(states[k]) } };
			mtext_sample(t, "swarm_device_state", l, 2, s == (uint32_t)states[k]);
		}
	}
	mtext_family(t, "swarm_device_sessions", "gauge", "Sessions placed on the device.");
	for (int i = 0; i < n_dev; i++)
		mtext_sample(t, "swarm_device_sessions",
			     &(struct mlabel){ "device", d.dev[i].plan.name }, 1,
			     __atomic_load_n(&swarmd_ctr.dev[i].sessions, __ATOMIC_RELAXED));
	mtext_family(t, "swarm_worker_restarts_total", "counter",
		     "Times the device's worker was started again after it died.");
	for (int i = 0; i < n_dev; i++)
		mtext_sample(t, "swarm_worker_restarts_total",
			     &(struct mlabel){ "device", d.dev[i].plan.name }, 1,
			     (double)swarm_stat_get(&swarmd_ctr.dev[i].restarts));
	mtext_family(t, "swarm_device_warm_seconds", "histogram",
		     "Warm-ups: the worker started to ready (weights loaded, in service).");
	for (int i = 0; i < n_dev; i++)
		mtext_histogram(t, "swarm_device_warm_seconds",
				&(struct mlabel){ "device", d.dev[i].plan.name }, 1,
				&swarmd_ctr.dev[i].warm_ns, 20, 38, 1e-9);
	mtext_family(t, "swarm_device_drain_seconds", "histogram",
		     "Drains: out of service asked to the worker stopped (parked).");
	for (int i = 0; i < n_dev; i++)
		mtext_histogram(t, "swarm_device_drain_seconds",
				&(struct mlabel){ "device", d.dev[i].plan.name }, 1,
				&swarmd_ctr.dev[i].drain_ns, 20, 38, 1e-9);
}

static void swarmd_metrics(struct mtext *t)
{
	char text[256];
	mtext_family(t, "swarm_ready", "gauge",
		     "1 when every device that should serve serves and every preloaded model is "
		     "loaded (/health/ready).");
	mtext_sample(t, "swarm_ready", NULL, 0, health_ready(text, sizeof text));
	mtext_family(t, "swarm_session_opens_total", "counter", "Sessions opened.");
	mtext_sample(t, "swarm_session_opens_total", NULL, 0,
		     (double)swarm_stat_get(&swarmd_ctr.opens));
	mtext_family(t, "swarm_open_failures_total", "counter", "Opens refused, by reason.");
	for (uint32_t r = 0; r < SWARMD_OPEN_N; r++)
		mtext_sample(t, "swarm_open_failures_total",
			     &(struct mlabel){ "reason", counters_open_fail_name(r) }, 1,
			     (double)swarm_stat_get(&swarmd_ctr.open_failures[r]));
	mtext_family(t, "swarm_refusals_total", "counter",
		     "Clients refused by a per-client or per-user limit, by limit.");
	for (uint32_t r = 0; r < SWARMD_LIM_N; r++)
		mtext_sample(t, "swarm_refusals_total",
			     &(struct mlabel){ "limit", counters_limit_name(r) }, 1,
			     (double)swarm_stat_get(&swarmd_ctr.refusals[r]));
	mtext_family(t, "swarm_autoscale_decisions_total", "counter",
		     "Devices the autoscaler woke or drained, by reason.");
	for (int a = 0; a < 2; a++)
		for (uint32_t r = 1; r <= SWARM_AS_R_FROM_ZERO; r++) {
			struct mlabel l[2] = { { "action", a ? "drain" : "wake" },
					       { "reason", swarm_as_reason_name(r) } };
			mtext_sample(t, "swarm_autoscale_decisions_total", l, 2,
				     (double)swarm_stat_get(&swarmd_ctr.autoscale[a][r]));
		}
}

/* The whole exposition, or NULL when out of memory. */
static char *exposition(size_t *len)
{
	struct mtext t;
	mtext_init(&t);
	int n_dev = (int)__atomic_load_n(&swarmd_ctr.n_dev, __ATOMIC_RELAXED);
	if (n_dev > d.n_dev)
		n_dev = d.n_dev;
	swarmd_metrics(&t);
	device_metrics(&t, n_dev);
	model_metrics(&t, n_dev);
	return mtext_finish(&t, len);
}

/* ---- the HTTP side -------------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				code == 200 && mode == MHD_RESPMEM_MUST_FREE ?
					CONTENT_TYPE :
					"text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* /health/live and /health/ready: 200 "live"/"ready", else 503 with the reason. */
static enum MHD_Result health(struct MHD_Connection *c, int ready)
{
	char text[300], why[256];
	/* Live within systemd's watchdog interval where one is set (WATCHDOG_USEC), so that
	 * the probe and the watchdog agree; else health.h's default. */
	int ok = ready ? health_ready(why, sizeof why) :
			 health_live(swarm_now_ns(), notify_watchdog_ns());
	if (!ready)
		snprintf(why, sizeof why, "%s",
			 ok ? "live" : "the event loop has not run within the interval");
	snprintf(text, sizeof text, "%s\n", why);
	return reply(c, ok ? 200 : 503, text, strlen(text), MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **state)
{
	(void)cls;
	(void)version;
	(void)upload;
	(void)upload_len;
	(void)state;
	static char not_found[] = "not found: try /metrics, /health/live or /health/ready\n";
	static char no_method[] = "only GET and HEAD\n";
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, 405, no_method, strlen(no_method), MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/health/live"))
		return health(c, 0);
	if (!strcmp(url, "/health/ready"))
		return health(c, 1);
	if (strcmp(url, "/metrics"))
		return reply(c, 404, not_found, strlen(not_found), MHD_RESPMEM_PERSISTENT);
	size_t len = 0;
	char *body = exposition(&len);
	if (!body) {
		static char oom[] = "out of memory\n";
		return reply(c, 500, oom, strlen(oom), MHD_RESPMEM_PERSISTENT);
	}
	return reply(c, 200, body, len, MHD_RESPMEM_MUST_FREE);
}

int metrics_start(void)
{
	if (!cfg.metrics.on)
		return 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (cfg.metrics.addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* A few scrapers at a time; one that stalls is dropped after 10 s. */
	mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
			       (const struct sockaddr *)&cfg.metrics.addr,
			       MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
			       MHD_OPTION_END);
	if (!mhd) {
		swarm_log(SWARM_LOG_ERROR,
			  "event=startup_failed metrics=%s reason=\"cannot listen there (in use, "
			  "or not an address of this machine)\"",
			  cfg.metrics.text);
		return -EADDRNOTAVAIL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
	char host[INET6_ADDRSTRLEN] = "?";
	const void *a =
		cfg.metrics.addr.ss_family == AF_INET6 ?
			(const void *)&((struct sockaddr_in6 *)&cfg.metrics.addr)->sin6_addr :
			(const void *)&((struct sockaddr_in *)&cfg.metrics.addr)->sin_addr;
	inet_ntop(cfg.metrics.addr.ss_family, a, host, sizeof host);
	int v6 = cfg.metrics.addr.ss_family == AF_INET6;
	swarm_log(SWARM_LOG_INFO, "event=metrics_listening url=http://%s%s%s:%u/metrics port=%u",
		  v6 ? "[" : "", host, v6 ? "]" : "", info ? info->port : 0u,
		  info ? info->port : 0u);
	return 0;
}

void metrics_stop(void)
{
	if (mhd)
		MHD_stop_daemon(mhd);
	mhd = NULL;
}
