/* cmd.h: the subcommands of the `swarm` command line, one file each. */
#ifndef SWARM_TOOLS_CMD_H
#define SWARM_TOOLS_CMD_H

/* `swarm registry ...`: argv[0] is "registry". Returns the exit status. */
int swarm_cmd_registry(int argc, char **argv);

#endif /* SWARM_TOOLS_CMD_H */
