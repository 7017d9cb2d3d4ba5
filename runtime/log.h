/* log.h: one line per event, key=value, to stderr (docs/control-plane.md, "Logs"). */
#ifndef SWARM_RUNTIME_LOG_H
#define SWARM_RUNTIME_LOG_H

enum swarm_log_level {
	SWARM_LOG_DEBUG = 0,
	SWARM_LOG_INFO = 1,
	SWARM_LOG_WARN = 2,
	SWARM_LOG_ERROR = 3
};

/* Names the process in every line ("swarmd", "worker") and sets the lowest level printed. */
void swarm_log_init(const char *component, enum swarm_log_level min_level);

/* Parses "debug", "info", "warn", "error". Returns the level or -1. */
int swarm_log_parse_level(const char *s);

/* Prints "ts=<s.us> level=<l> comp=<c> pid=<p> " then the formatted key=value pairs. */
void swarm_log(enum swarm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* SWARM_RUNTIME_LOG_H */
