/* test_hostile.c: a hostile client against a real swarmd (issue 15's suite, growing): each
 * attack is made through the public API or the raw control socket, an honest client works
 * beside or after it, and swarmd must answer, keep serving and stop cleanly (h_stop checks
 * the exit status, the workers and the sanitizer log). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "e2e/harness.h"

static void setup(void) { h_start("cpu:1", NULL); }
static void teardown(void) { h_teardown(); }

TestSuite(e2e_hostile, .init = setup, .fini = teardown, .timeout = 60);

/* An open refused with -EINVAL, in bounded time (a hung swarmd fails the test by the suite's
 * timeout, libswarm's calls having none of their own yet). */
static void open_refused(swarm_client *c, const swarm_session_opts *o, const char *what)
{
	swarm_session *s = NULL;
	const uint64_t t0 = h_now_ns();
	int rc = swarm_session_open(c, "identity", 0, o, &s);
	cr_assert_eq(rc, -EINVAL, "%s: open returned %d (%s) [%s], want -EINVAL", what, rc,
		     swarm_strerror(rc), swarm_client_error(c));
	cr_assert_null(s, "%s: a refused open gave a session", what);
	cr_assert_not_null(strstr(swarm_client_error(c), "out of range"),
			   "%s: the refusal does not say what is out of range: [%s]", what,
			   swarm_client_error(c));
	cr_assert_lt(h_now_ns() - t0, 5 * H_SEC, "%s: the refusal took %.1f s", what,
		     (double)(h_now_ns() - t0) / 1e9);
}

/* Defect 1 of issue 15: slots above 2^31 with queue_depth 0 made swarmd round the depth up in
 * a uint32 loop that never ended, before slots was range-checked: every client hung and
 * SIGTERM went unheard. Every field is range-checked before arithmetic now. */
Test(e2e_hostile, open_with_slots_above_2_31_is_refused_and_swarmd_keeps_serving)
{
	swarm_client *attacker = h_connect_or_fail();
	const uint32_t slots[] = { 0x80000001u, 0xffffffffu, 0x80000000u };
	for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
		swarm_session_opts o = { .slots = slots[i], .queue_depth = 0, .max_rows = 1 };
		char what[64];
		snprintf(what, sizeof what, "slots %#x, queue_depth 0", slots[i]);
		open_refused(attacker, &o, what);
	}
	/* and a depth far past any slot count, with slots in range */
	swarm_session_opts deep = { .slots = 8, .queue_depth = 0x80000000u, .max_rows = 1 };
	open_refused(attacker, &deep, "slots 8, queue_depth 2^31");

	/* the attacker's own connection still works, and so does an honest client's */
	swarm_session *s = NULL;
	swarm_session_opts ok = h_identity_opts();
	cr_assert_eq(h_open_working(attacker, "identity", &ok, &s, 10 * H_SEC), 0,
		     "the attacker's connection no longer opens a good session [%s]",
		     swarm_client_error(attacker));
	swarm_session_close(s);
	swarm_client *honest = h_connect_or_fail();
	cr_assert_eq(h_open_working(honest, "identity", &ok, &s, 10 * H_SEC), 0,
		     "an honest client cannot open after the attack [%s]",
		     swarm_client_error(honest));
	for (uint64_t k = 0; k < 16; k++)
		cr_assert_eq(h_identity_roundtrip(s, 1 + (uint32_t)(k % 4), k, 5 * H_SEC), 0,
			     "honest round trip %llu failed", (unsigned long long)k);
	swarm_session_close(s);
	swarm_disconnect(honest);
	swarm_disconnect(attacker);
	h_stop();
}
