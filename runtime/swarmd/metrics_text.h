/* metrics_text.h: the Prometheus text exposition format (version 0.0.4), written into a
 * growing buffer: HELP and TYPE lines, samples with escaped label values, and histograms as
 * cumulative `_bucket{le=...}`, `_sum` and `_count` from a swarm_p2hist. Pure: no swarmd
 * state, so that a unit test pins the escaping and the histogram invariants.
 *
 * Errors stick: once out of memory (or a label set too long), every later call does nothing
 * and mtext_finish returns NULL.
 */
#ifndef SWARM_RUNTIME_SWARMD_METRICS_TEXT_H
#define SWARM_RUNTIME_SWARMD_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/stats.h"

struct mtext {
	char *buf;
	size_t len, cap;
	int failed; /* out of memory: the text is lost */
};

/* A label: name (a Prometheus label name, trusted) and value (any bytes, escaped). */
struct mlabel {
	const char *name;
	const char *value;
};

/* An empty text. Never fails (the first append allocates). */
void mtext_init(struct mtext *t);

/* Appends printf-formatted text as it is (no escaping). */
void mtext_printf(struct mtext *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends v escaped as a label value: backslash, double quote and newline become \\, \" and
 * \n; everything else goes as it is. */
void mtext_label_value(struct mtext *t, const char *v);

/* A family's HELP (help escaped: backslash and newline) and TYPE lines; type is "counter",
 * "gauge" or "histogram". */
void mtext_family(struct mtext *t, const char *name, const char *type, const char *help);

/* A sample: name, then {labels} (none when n is 0), then the value. A value that is integral
 * and below 2^53 is written as an integer, else with %.17g. */
void mtext_sample(struct mtext *t, const char *name, const struct mlabel *l, int n, double value);

/* A histogram's samples under name (its family already written) from h: buckets with upper
 * bounds 2^first .. 2^last times scale (the buckets below first folded into the first), then
 * +Inf, name_sum (h's sum times scale) and name_count. The counts are read once, so the
 * buckets are cumulative and +Inf equals _count even while a writer adds to h. */
void mtext_histogram(struct mtext *t, const char *name, const struct mlabel *l, int n,
		     const struct swarm_p2hist *h, uint32_t first, uint32_t last, double scale);

/* The text, NUL-terminated, now the caller's to free (*len its length); NULL when an append
 * failed (everything is freed then). */
char *mtext_finish(struct mtext *t, size_t *len);

#endif /* SWARM_RUNTIME_SWARMD_METRICS_TEXT_H */
