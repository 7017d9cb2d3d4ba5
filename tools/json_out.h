/* json_out.h: the JSON documents the tools print (`swarm status|topo|run|registry --json`,
 * `swarm-sim --json`, `swarm-bench --json`) are built with jansson, which escapes every string;
 * these helpers add what jansson leaves to the caller, so that every document follows the
 * same three rules:
 * - a string is whatever bytes it holds, made valid UTF-8 (each byte of an invalid sequence
 *   becomes U+FFFD), since jansson refuses anything else and the bytes may come from another
 *   process or a truncated buffer;
 * - a number is the one its printf format printed before jansson, integer or real as that
 *   text reads (so a figure keeps the precision and the form it always had), and null where
 *   it is NaN or infinite (not valid JSON);
 * - an unsigned 64-bit counter above INT64_MAX (jansson's largest integer) is INT64_MAX.
 */
#ifndef SWARM_TOOLS_JSON_OUT_H
#define SWARM_TOOLS_JSON_OUT_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* A new JSON string of s (NULL: ""), made valid UTF-8 as above. NULL only when out of memory. */
json_t *swarm_json_str(const char *s);

/* Sets obj[key] = value as json_object_set_new does (value is stolen, even on failure), the key
 * made valid UTF-8 first. Returns 0 or -1. */
int swarm_json_set(json_t *obj, const char *key, json_t *value);

/* A new JSON number: the one fmt (one double conversion, such as "%.3f" or "%g") prints for
 * v, an integer where that text has no fraction or exponent ("%g" of 2000), else a real; JSON
 * null where v is NaN or infinite. */
json_t *swarm_json_number(const char *fmt, double v);

/* A new JSON integer of v, INT64_MAX where v is larger. */
json_t *swarm_json_u64(uint64_t v);

/* Writes doc to f (indented by 2, keys in the order they were set, a newline after it) and
 * drops the reference to it; doc NULL (a failed build) writes nothing. Returns 0, -ENOMEM
 * for a NULL doc, or -EIO when f reports an error. */
int swarm_json_write(FILE *f, json_t *doc);

/* swarm_json_write to the file at path (created or truncated), or to stdout where path is
 * "-"; doc is dropped in every case. Returns 0 or a negative errno (opening, writing or
 * closing the file). */
int swarm_json_write_path(const char *path, json_t *doc);

#endif /* SWARM_TOOLS_JSON_OUT_H */
