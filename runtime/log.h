/* log.h: one line per event, key=value or one JSON object, to stderr (docs/control-plane.md,
 * "Logs"). */
#ifndef SWARM_RUNTIME_LOG_H
#define SWARM_RUNTIME_LOG_H

enum swarm_log_level {
	SWARM_LOG_DEBUG = 0,
	SWARM_LOG_INFO = 1,
	SWARM_LOG_WARN = 2,
	SWARM_LOG_ERROR = 3
};

enum swarm_log_format {
	SWARM_LOG_KV = 0,  /* ts=.. level=.. comp=.. pid=.. key=value ... (the default) */
	SWARM_LOG_JSON = 1 /* {"ts":..,"level":..,"comp":..,"pid":..,"key":value,...} */
};

/* Names the process in every line ("swarmd", "worker") and sets the lowest level printed. */
void swarm_log_init(const char *component, enum swarm_log_level min_level);

/* Parses "debug", "info", "warn", "error". Returns the level or -1. */
int swarm_log_parse_level(const char *s);

/* Parses "kv" or "json". Returns a swarm_log_format or -1. */
int swarm_log_parse_format(const char *s);

/* Sets the form of every later line (SWARM_LOG_KV until called). Call before any thread
 * that logs starts. */
void swarm_log_set_format(enum swarm_log_format format);

/* bytes for people, in the largest binary unit that keeps it at 1 or more: "512 B",
 * "4.5 KiB", "2.0 GiB" (messages and `swarm status`). */
void swarm_fmt_bytes(char *buf, unsigned long len, unsigned long long bytes);

/* Prints "ts=<s.us> level=<l> comp=<c> pid=<p> " then the formatted key=value pairs; in the
 * JSON form, one object with those four members and one per pair of fmt: a value formatted
 * alone by a d, i, u, f, e or g conversion outside quotes is a JSON number, any other a
 * string (log.c says how a format splits into pairs). Thread-safe; one write(2) a line. */
void swarm_log(enum swarm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* SWARM_RUNTIME_LOG_H */
