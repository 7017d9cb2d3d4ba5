/* log.c: key=value event lines on stderr, one write(2) each so lines never interleave. */
#include "runtime/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *component = "swarm";
static enum swarm_log_level min_level = SWARM_LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void swarm_log_init(const char *comp, enum swarm_log_level level)
{
	component = comp;
	min_level = level;
}

int swarm_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void swarm_log(enum swarm_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char line[1024];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(line, sizeof line, "ts=%lld.%06ld level=%s comp=%s pid=%d ",
			 (long long)ts.tv_sec, ts.tv_nsec / 1000, level_names[level], component,
			 (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere to report a failed log write */
}
