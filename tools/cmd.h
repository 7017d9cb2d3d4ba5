/* cmd.h: the subcommands of the `swarm` command line, one file each. */
#ifndef SWARM_TOOLS_CMD_H
#define SWARM_TOOLS_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct swarm_msg_status_reply;
struct swarm_msg_reply;

/* `swarm registry ...`: argv[0] is "registry". Returns the exit status. */
int swarm_cmd_registry(int argc, char **argv);

/* `swarm topo ...` and `swarm device ...` (tools/cmd_topo.c). Return the exit status. */
int swarm_cmd_topo(int argc, char **argv);
int swarm_cmd_device(int argc, char **argv);

/* `swarm model load|unload NAME[@V] [--device D]` (tools/cmd_model.c). */
int swarm_cmd_model(int argc, char **argv);

/* Splits "NAME" or "NAME@V" into name (len bytes) and *version (0 when none; need_version:
 * one is required). 0 or -EINVAL. */
int swarm_cmd_split_ref(const char *ref, char *name, size_t len, uint32_t *version,
			int need_version);

/* `swarm run NAME[@V] --in INPUT=FILE.npy ...` (tools/cmd_run.c). Returns the exit status. */
int swarm_cmd_run(int argc, char **argv);

/* `swarm import onnx MODEL.onnx --name NAME ...` (tools/cmd_import.c): runs the importer. */
int swarm_cmd_import(int argc, char **argv);

/* Connects to swarmd at path (NULL: $SWARM_SOCKET, else the default) and says hello with the
 * raw protocol (status and device control are not part of the client API). Returns the
 * socket or -errno, with a message in err. */
int swarm_cmd_connect(const char *path, char *err, size_t err_len);

/* Sends msg (len bytes) to swarmd at sock and receives its reply of reply_type into rep (text
 * terminated), waiting at most timeout_ms (0: $SWARM_TIMEOUT_MS). 0, or -errno with a
 * message in err (swarmd unreachable, or no answer). */
int swarm_cmd_call(const char *sock, const void *msg, size_t len, uint16_t reply_type,
		   int64_t timeout_ms, struct swarm_msg_reply *rep, char *err, size_t err_len);

/* Asks swarmd for its status. Returns a malloc'd reply with every string terminated, or NULL
 * with a message in err. */
struct swarm_msg_status_reply *swarm_cmd_fetch_status(const char *sock, char *err, size_t err_len);

/* The document `swarm status --json` prints for r (tools/status_json.c): a new reference, NULL
 * only when out of memory. r's strings must be terminated (swarm_cmd_fetch_status does). */
json_t *swarm_status_json(const struct swarm_msg_status_reply *r);

#endif /* SWARM_TOOLS_CMD_H */
