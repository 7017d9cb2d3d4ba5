/* test_seqlock.c: ipc/seqlock.h. A writer thread rewrites two fields that must agree while
 * readers copy them: a copy the seqlock accepts is never torn. A writer that died mid-write
 * (the generation left odd) makes the reader return -EAGAIN, never its copy.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "ipc/seqlock.h"

struct shared {
	uint32_t gen;
	volatile uint64_t a[8]; /* every word equal to the others after a whole write */
	volatile int stop;
};

struct copy {
	struct shared *sh;
	uint64_t a[8];
};

static void copy_fields(void *ctx)
{
	struct copy *c = ctx;
	for (int i = 0; i < 8; i++)
		c->a[i] = c->sh->a[i];
}

static void *writer(void *arg)
{
	struct shared *sh = arg;
	for (uint64_t v = 1; !sh->stop; v++) {
		swarm_seqlock_write_begin(&sh->gen);
		for (int i = 0; i < 8; i++)
			sh->a[i] = v;
		swarm_seqlock_write_end(&sh->gen);
	}
	return NULL;
}

Test(ipc_seqlock, a_copy_it_accepts_is_never_torn)
{
	static struct shared sh;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, writer, &sh), 0);
	struct copy c = { .sh = &sh };
	int whole = 0, refused = 0;
	for (int k = 0; k < 200000; k++) {
		int rc = swarm_seqlock_read(&sh.gen, copy_fields, &c);
		if (rc) {
			cr_assert_eq(rc, -EAGAIN);
			refused++;
			continue;
		}
		whole++;
		for (int i = 1; i < 8; i++)
			cr_assert_eq(c.a[i], c.a[0],
				     "torn copy accepted: word %d is %llu, word 0 %llu", i,
				     (unsigned long long)c.a[i], (unsigned long long)c.a[0]);
	}
	sh.stop = 1;
	pthread_join(t, NULL);
	cr_assert_gt(whole, 0, "no whole copy in 200000 reads (%d refused)", refused);
}

Test(ipc_seqlock, a_write_left_unfinished_is_an_error_not_data)
{
	struct shared sh = { 0 };
	swarm_seqlock_write_begin(&sh.gen); /* the writer dies here */
	sh.a[0] = 7;
	struct copy c = { .sh = &sh };
	c.a[0] = 99;
	cr_assert_eq(swarm_seqlock_read(&sh.gen, copy_fields, &c), -EAGAIN);
	swarm_seqlock_write_end(&sh.gen);
	cr_assert_eq(swarm_seqlock_read(&sh.gen, copy_fields, &c), 0);
	cr_assert_eq(c.a[0], 7);
	cr_assert_eq(sh.gen % 2, 0, "generation %u odd after a whole write", sh.gen);
}
