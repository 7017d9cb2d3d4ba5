/* cmd.h: the subcommands of the `swarm` command line, one file each. */
#ifndef SWARM_TOOLS_CMD_H
#define SWARM_TOOLS_CMD_H

#include <stddef.h>

#include <jansson.h>

struct swarm_msg_status_reply;

/* `swarm registry ...`: argv[0] is "registry". Returns the exit status. */
int swarm_cmd_registry(int argc, char **argv);

/* `swarm topo ...` and `swarm device ...` (tools/cmd_topo.c). Return the exit status. */
int swarm_cmd_topo(int argc, char **argv);
int swarm_cmd_device(int argc, char **argv);

/* `swarm run NAME[@V] --in INPUT=FILE.npy ...` (tools/cmd_run.c). Returns the exit status. */
int swarm_cmd_run(int argc, char **argv);

/* `swarm import onnx MODEL.onnx --name NAME ...` (tools/cmd_import.c): runs the importer. */
int swarm_cmd_import(int argc, char **argv);

/* Connects to swarmd at path (NULL: $SWARM_SOCKET, else the default) and says hello with the
 * raw protocol (status and device control are not part of the client API). Returns the
 * socket or -errno, with a message in err. */
int swarm_cmd_connect(const char *path, char *err, size_t err_len);

/* Asks swarmd for its status. Returns a malloc'd reply with every string terminated, or NULL
 * with a message in err. */
struct swarm_msg_status_reply *swarm_cmd_fetch_status(const char *sock, char *err,
						       size_t err_len);

/* The document `swarm status --json` prints for r (tools/status_json.c): a new reference, NULL
 * only when out of memory. r's strings must be terminated (swarm_cmd_fetch_status does). */
json_t *swarm_status_json(const struct swarm_msg_status_reply *r);

#endif /* SWARM_TOOLS_CMD_H */
