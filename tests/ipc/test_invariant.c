/* test_invariant.c: SWARM_INVARIANT stays in a build that defines NDEBUG (the default
 * RelWithDebInfo one does), where assert() would vanish: a false invariant aborts. */
#define NDEBUG 1
#include <assert.h>
#include <criterion/criterion.h>
#include <signal.h>

#include "ipc/invariant.h"

static int evaluated;

static int counted(int v)
{
	evaluated++;
	return v;
}

Test(ipc_invariant, a_true_invariant_is_checked_once_and_goes_on)
{
	evaluated = 0;
	SWARM_INVARIANT(counted(1) == 1);
	assert(counted(0) == 1); /* vanishes under NDEBUG: not evaluated */
	cr_assert_eq(evaluated, 1, "the invariant was evaluated %d times, not once", evaluated);
}

Test(ipc_invariant, a_false_invariant_aborts_under_ndebug, .signal = SIGABRT)
{
	SWARM_INVARIANT(counted(1) == 2);
	cr_assert_fail("SWARM_INVARIANT of a false condition returned");
}
