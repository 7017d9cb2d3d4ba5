/* test_log.c: runtime/log.h. Every %s value is escaped as it is formatted, so that no value
 * from outside (a model name, a worker's reason, a path) can end a log line or its quotes;
 * every other conversion prints as printf would.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/log.h"

/* The line swarm_log wrote, without the ts/level/comp/pid prefix. */
static char line[2048];

static const char *logged(void (*emit)(void))
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	int saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	emit();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], line, sizeof line - 1);
	close(p[0]);
	cr_assert_gt(n, 0);
	line[n] = 0;
	char *nl = strchr(line, '\n');
	cr_assert_not_null(nl, "no newline in %s", line);
	cr_assert_eq(nl[1], 0, "more than one line: %s", line);
	*nl = 0;
	const char *body = strstr(line, " pid=");
	cr_assert_not_null(body);
	return strchr(body + 1, ' ') + 1;
}

static void injection(void)
{
	swarm_log(SWARM_LOG_WARN, "event=open_refused model=%s reason=\"%s\"",
		  "x\nts=1 level=info event=ready", "say \"yes\"\\ \x01 now");
}

Test(runtime_log, a_value_cannot_end_its_line_or_its_quotes)
{
	const char *got = logged(injection);
	cr_assert_str_eq(got, "event=open_refused model=x\\nts=1\\x20level=info\\x20event=ready "
			      "reason=\"say \\\"yes\\\"\\\\ \\x01 now\"");
}

static void numbers(void)
{
	swarm_log(SWARM_LOG_INFO,
		  "a=%d b=%u c=%llu d=%zu e=%.1f f=%04o g=%x h=%.3s i=%.*s j=%ld %%", -5, 7u,
		  18446744073709551615ull, (size_t)42, 2.25, 8u, 255u, "abcdef", 2, "xyz", -9l);
}

Test(runtime_log, other_conversions_print_as_printf)
{
	const char *got = logged(numbers);
	cr_assert_str_eq(got, "a=-5 b=7 c=18446744073709551615 d=42 e=2.2 f=0010 g=ff h=abc i=xy "
			      "j=-9 %");
}

static void long_value(void)
{
	char big[3000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	big[100] = '\n';
	swarm_log(SWARM_LOG_ERROR, "event=big value=\"%s\" after=1", big);
}

Test(runtime_log, a_long_value_is_cut_within_one_line)
{
	const char *got = logged(long_value);
	cr_assert(strncmp(got, "event=big value=\"", 17) == 0, "%s", got);
	cr_assert_not_null(strstr(got, "\\n"), "the newline inside was not escaped");
}

static void two_in_one_quote(void)
{
	swarm_log(SWARM_LOG_ERROR, "event=startup_failed reason=\"%s%s\" after=%s", "a b: ", "c d",
		  "e f");
}

Test(runtime_log, every_value_inside_one_pair_of_quotes_keeps_its_spaces)
{
	const char *got = logged(two_in_one_quote);
	cr_assert_str_eq(got, "event=startup_failed reason=\"a b: c d\" after=e\\x20f");
}
