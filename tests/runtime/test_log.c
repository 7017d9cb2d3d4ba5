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

/* Runs emit with stderr captured into line: exactly one line, its newline cut off. */
static void capture(void (*emit)(void))
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
}

static const char *logged(void (*emit)(void))
{
	capture(emit);
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

/* ---- the JSON form (--log-format json) ---------------------------------------------------- */

#include <jansson.h>

/* The object swarm_log wrote in the JSON form, parsed (one line, nothing else). */
static json_t *logged_json(void (*emit)(void))
{
	swarm_log_set_format(SWARM_LOG_JSON);
	capture(emit);
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	cr_assert_not_null(o, "not JSON (%s): %s", err.text, line);
	cr_assert(json_is_object(o), "not an object: %s", line);
	return o;
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_string(v), "%s is not a string in %s", key, line);
	return json_string_value(v);
}

Test(runtime_log, json_values_keep_quotes_newlines_and_control_chars)
{
	json_t *o = logged_json(injection);
	cr_assert_str_eq(jstr(o, "event"), "open_refused");
	cr_assert_str_eq(jstr(o, "model"), "x\nts=1 level=info event=ready");
	cr_assert_str_eq(jstr(o, "reason"), "say \"yes\"\\ \x01 now");
	cr_assert_eq(json_object_size(o), 7, "%s", line); /* ts level comp pid + 3 */
	json_decref(o);
}

Test(runtime_log, json_prefix_is_ts_level_comp_pid)
{
	swarm_log_init("swarmd", SWARM_LOG_DEBUG);
	json_t *o = logged_json(injection);
	cr_assert(json_is_real(json_object_get(o, "ts")), "%s", line);
	cr_assert_gt(json_real_value(json_object_get(o, "ts")), 1.6e9);
	cr_assert_str_eq(jstr(o, "level"), "warn");
	cr_assert_str_eq(jstr(o, "comp"), "swarmd");
	cr_assert_eq(json_integer_value(json_object_get(o, "pid")), getpid(), "%s", line);
	json_decref(o);
}

Test(runtime_log, json_numeric_conversions_are_numbers_the_others_strings)
{
	json_t *o = logged_json(numbers);
	cr_assert_eq(json_integer_value(json_object_get(o, "a")), -5, "%s", line);
	cr_assert_eq(json_integer_value(json_object_get(o, "b")), 7, "%s", line);
	/* above INT64_MAX: a JSON integer cannot hold it in jansson, so the digits as text */
	cr_assert_str_eq(jstr(o, "c"), "18446744073709551615");
	cr_assert_eq(json_integer_value(json_object_get(o, "d")), 42, "%s", line);
	cr_assert(json_is_real(json_object_get(o, "e")), "%s", line);
	cr_assert_float_eq(json_real_value(json_object_get(o, "e")), 2.2, 1e-12, "%s", line);
	cr_assert_str_eq(jstr(o, "f"), "0010"); /* octal and hex read as text */
	cr_assert_str_eq(jstr(o, "g"), "ff");
	cr_assert_str_eq(jstr(o, "h"), "abc");
	cr_assert_str_eq(jstr(o, "i"), "xy");
	cr_assert_eq(json_integer_value(json_object_get(o, "j")), -9, "%s", line);
	cr_assert_str_eq(jstr(o, "msg"), "%"); /* text that is no pair */
	cr_assert(strstr(line, "\"e\":2.2,"), "2.2 prints as 2.2: %s", line);
	json_decref(o);
}

static void mixed(void)
{
	swarm_log(SWARM_LOG_INFO, "event=x quoted=\"%d\" glued=%dms path=%s two=%d%d sp=\"a b\"", 5,
		  7, "/tmp/a b", 1, 2);
}

Test(runtime_log, json_a_value_with_more_than_one_conversion_or_quotes_is_a_string)
{
	json_t *o = logged_json(mixed);
	cr_assert_str_eq(jstr(o, "quoted"), "5");
	cr_assert_str_eq(jstr(o, "glued"), "7ms");
	cr_assert_str_eq(jstr(o, "path"), "/tmp/a b");
	cr_assert_str_eq(jstr(o, "two"), "12");
	cr_assert_str_eq(jstr(o, "sp"), "a b");
	json_decref(o);
}

static void not_utf8(void) { swarm_log(SWARM_LOG_INFO, "event=x model=%s", "ab\xff\xc3(z"); }

Test(runtime_log, json_bytes_that_are_not_utf8_are_written_as_hex)
{
	json_t *o = logged_json(not_utf8);
	cr_assert_str_eq(jstr(o, "model"), "ab\\xff\\xc3(z");
	json_decref(o);
}

Test(runtime_log, json_a_long_value_is_cut_and_the_line_still_parses)
{
	json_t *o = logged_json(long_value);
	const char *v = jstr(o, "value");
	cr_assert_lt(strlen(v), 1100u);
	cr_assert_eq(v[100], '\n');
	/* literal text of the format, not a conversion: a string, whatever it reads as */
	cr_assert_str_eq(jstr(o, "after"), "1");
	json_decref(o);
}

Test(runtime_log, the_format_names_parse)
{
	cr_assert_eq(swarm_log_parse_format("kv"), SWARM_LOG_KV);
	cr_assert_eq(swarm_log_parse_format("json"), SWARM_LOG_JSON);
	cr_assert_eq(swarm_log_parse_format("JSON"), -1);
	cr_assert_eq(swarm_log_parse_format(""), -1);
	cr_assert_eq(swarm_log_parse_format("logfmt"), -1);
}

static void key_from_a_conversion(void)
{
	swarm_log(SWARM_LOG_WARN, "event=worker_died %s=%d after=%s", "signal", 9, "x");
}

Test(runtime_log, json_a_key_may_come_from_a_conversion)
{
	json_t *o = logged_json(key_from_a_conversion);
	cr_assert_eq(json_integer_value(json_object_get(o, "signal")), 9, "%s", line);
	cr_assert_str_eq(jstr(o, "after"), "x");
	cr_assert_null(json_object_get(o, "msg"), "%s", line);
	json_decref(o);
}
