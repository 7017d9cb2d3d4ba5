/* manifest_parse.h: what manifest.c and manifest_graph.c share (internal; the API is
 * manifest.h).
 *
 * manifest.c parses the document and every part but the graph; manifest_graph.c parses the
 * graph. Both report a refusal the same way: -EINVAL and a message that starts with the path
 * of the field ("inputs[0].shape[0]: ..."), at most PATH_MAX_LEN bytes of path.
 */
#ifndef SWARM_REGISTRY_MANIFEST_PARSE_H
#define SWARM_REGISTRY_MANIFEST_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "registry/manifest.h"

#define PATH_MAX_LEN 96 /* bytes of a field's path in a message, NUL included */

/* Writes the message into err (when there is one) and returns -EINVAL. */
__attribute__((format(printf, 3, 4))) int manifest_fail(char *err, size_t err_len, const char *fmt,
							...);
/* "PATH: must be an object" (want: "object", "array", "integer", ...); returns -EINVAL. */
int manifest_type_error(char *err, size_t err_len, const char *path, const char *want);
/* Whether key is one of keys[0..n). */
bool manifest_key_known(const char *key, const char *const *keys, size_t n);
/* A string member of obj: present, a string, non-empty and shorter than max bytes. */
int manifest_get_name(json_t *obj, const char *path, const char *key, size_t max, const char **out,
		      char *err, size_t err_len);

/* One of {"builtin": NAME}, {"nodes": [...]} or {"backend": SO, "config": TEXT} into m's
 * graph, graph_builtin or graph_backend and graph_config (manifest_graph.c). */
int manifest_parse_graph(json_t *root, struct swarm_manifest *m, char *err, size_t err_len);

#endif /* SWARM_REGISTRY_MANIFEST_PARSE_H */
