/* test_weight_share.c: swarmd's broker table of shareable device weights
 * (runtime/weight_share.h): add and find by (GPU, SHA), duplicates, a full table, and every
 * way an entry goes, checked on real fds (each entry holds the write end of a pipe, so the
 * read end sees EOF exactly when the table closed it).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "runtime/weight_share.h"

#define SHA_A "aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000"
#define SHA_B "bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111bbbb1111"

/* A pipe whose write end goes into the table; the read end tells whether it is closed. */
struct probe {
	int rd, wr;
};

static struct probe probe_new(void)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	return (struct probe){ .rd = p[0], .wr = p[1] };
}

/* 1 when the write end has been closed everywhere (the reader sees EOF), 0 when still open. */
static int probe_closed(struct probe *p)
{
	char c;
	ssize_t n = read(p->rd, &c, 1);
	if (n == 0)
		return 1;
	cr_assert(n < 0 && errno == EAGAIN, "read %zd errno %d", n, errno);
	return 0;
}

static struct swarm_wshare t;

static void setup(void) { swarm_wshare_init(&t); }

TestSuite(runtime_weight_share, .init = setup);

Test(runtime_weight_share, add_then_find_by_gpu_and_sha)
{
	struct probe p = probe_new();
	cr_assert_eq(swarm_wshare_add(&t, 1, SHA_A, 4096, 0x1234, 7, p.wr), 0);
	const struct swarm_wshare_entry *e = swarm_wshare_find(&t, 1, SHA_A);
	cr_assert_not_null(e);
	cr_expect_eq(e->fd, p.wr);
	cr_expect_eq(e->exporter, 7);
	cr_expect_eq(e->bytes, 4096);
	cr_expect_eq(e->layout, 0x1234);
	/* Another GPU or another blob is not the same entry. */
	cr_expect_null(swarm_wshare_find(&t, 0, SHA_A));
	cr_expect_null(swarm_wshare_find(&t, 1, SHA_B));
	cr_expect_eq(swarm_wshare_count(&t), 1);
	cr_expect_eq(probe_closed(&p), 0, "the table keeps the fd it holds open");
}

Test(runtime_weight_share, same_blob_on_two_gpus_are_two_entries)
{
	struct probe p0 = probe_new(), p1 = probe_new();
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 0, p0.wr), 0);
	cr_assert_eq(swarm_wshare_add(&t, 1, SHA_A, 4096, 1, 1, p1.wr), 0);
	cr_expect_eq(swarm_wshare_find(&t, 0, SHA_A)->exporter, 0);
	cr_expect_eq(swarm_wshare_find(&t, 1, SHA_A)->exporter, 1);
}

Test(runtime_weight_share, duplicate_keeps_first_and_closes_second)
{
	struct probe p0 = probe_new(), p1 = probe_new();
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 2, p0.wr), 0);
	int rc = swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 3, p1.wr);
	cr_expect_eq(rc, -EEXIST, "rc %d", rc);
	cr_expect_eq(swarm_wshare_find(&t, 0, SHA_A)->exporter, 2);
	cr_expect_eq(probe_closed(&p0), 0);
	cr_expect_eq(probe_closed(&p1), 1, "the refused fd is closed, not leaked");
	cr_expect_eq(swarm_wshare_count(&t), 1);
}

Test(runtime_weight_share, full_table_refuses_and_closes)
{
	struct probe p[SWARM_WSHARE_MAX + 1];
	char sha[SWARM_WSHARE_SHA_MAX];
	for (int i = 0; i <= SWARM_WSHARE_MAX; i++) {
		p[i] = probe_new();
		snprintf(sha, sizeof sha, "%064d", i + 1);
		int rc = swarm_wshare_add(&t, 0, sha, 4096, 1, 0, p[i].wr);
		cr_assert_eq(rc, i < SWARM_WSHARE_MAX ? 0 : -ENOSPC, "entry %d: rc %d", i, rc);
	}
	cr_expect_eq(probe_closed(&p[SWARM_WSHARE_MAX]), 1);
	cr_expect_eq(swarm_wshare_count(&t), SWARM_WSHARE_MAX);
	/* A freed entry is reusable. */
	cr_assert_eq(swarm_wshare_drop_exporter(&t, 0), SWARM_WSHARE_MAX);
	struct probe q = probe_new();
	cr_expect_eq(swarm_wshare_add(&t, 0, SHA_B, 4096, 1, 0, q.wr), 0);
}

Test(runtime_weight_share, drop_on_unload_closes_only_that_entry)
{
	struct probe a = probe_new(), b = probe_new();
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 4, a.wr), 0);
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_B, 8192, 1, 4, b.wr), 0);
	cr_expect_eq(swarm_wshare_drop(&t, 5, SHA_A), 0, "another worker cannot drop it");
	cr_expect_eq(probe_closed(&a), 0);
	cr_expect_eq(swarm_wshare_drop(&t, 4, SHA_A), 1);
	cr_expect_eq(probe_closed(&a), 1);
	cr_expect_null(swarm_wshare_find(&t, 0, SHA_A));
	cr_expect_not_null(swarm_wshare_find(&t, 0, SHA_B));
	cr_expect_eq(probe_closed(&b), 0);
	cr_expect_eq(swarm_wshare_drop(&t, 4, SHA_A), 0, "dropping twice is a no-op");
}

Test(runtime_weight_share, exporter_death_drops_all_of_its_entries)
{
	struct probe a = probe_new(), b = probe_new(), c = probe_new();
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 1, a.wr), 0);
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_B, 4096, 1, 1, b.wr), 0);
	cr_assert_eq(swarm_wshare_add(&t, 1, SHA_A, 4096, 1, 2, c.wr), 0);
	cr_expect_eq(swarm_wshare_drop_exporter(&t, 1), 2);
	cr_expect_eq(probe_closed(&a), 1);
	cr_expect_eq(probe_closed(&b), 1);
	cr_expect_eq(probe_closed(&c), 0, "another exporter's entry stays");
	cr_expect_eq(swarm_wshare_count(&t), 1);
	/* The blob can be offered again, by anyone. */
	struct probe d = probe_new();
	cr_expect_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 3, d.wr), 0);
}

Test(runtime_weight_share, bad_arguments_are_refused_and_fd_closed)
{
	struct probe a = probe_new(), b = probe_new(), c = probe_new();
	cr_expect_eq(swarm_wshare_add(&t, -1, SHA_A, 4096, 1, 0, a.wr), -EINVAL);
	cr_expect_eq(swarm_wshare_add(&t, 0, "", 4096, 1, 0, b.wr), -EINVAL);
	cr_expect_eq(swarm_wshare_add(&t, 0, SHA_A, 0, 1, 0, c.wr), -EINVAL);
	cr_expect_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 1, 0, -1), -EINVAL);
	cr_expect_eq(probe_closed(&a), 1);
	cr_expect_eq(probe_closed(&b), 1);
	cr_expect_eq(probe_closed(&c), 1);
	cr_expect_eq(swarm_wshare_count(&t), 0);
}

/* What swarmd hands a worker about to load a blob: another worker's copy on the same GPU,
 * never its own, nothing on another GPU or on a CPU device. */
Test(runtime_weight_share, offer_goes_to_other_workers_on_the_same_gpu)
{
	struct probe p = probe_new();
	cr_assert_eq(swarm_wshare_add(&t, 0, SHA_A, 4096, 9, 1, p.wr), 0);
	const struct swarm_wshare_entry *e = swarm_wshare_offer(&t, 0, SHA_A, 2);
	cr_assert_not_null(e, "no offer for another instance of GPU 0");
	cr_expect_eq(e->exporter, 1);
	cr_expect_eq(e->layout, 9);
	cr_expect_null(swarm_wshare_offer(&t, 0, SHA_A, 1), "the exporter was offered its own");
	cr_expect_null(swarm_wshare_offer(&t, 1, SHA_A, 2), "offered across GPUs");
	cr_expect_null(swarm_wshare_offer(&t, -1, SHA_A, 2), "offered to a CPU device");
	cr_expect_null(swarm_wshare_offer(&t, 0, SHA_B, 2), "offered another blob");
	cr_expect_null(swarm_wshare_offer(&t, 0, "", 2));
	/* Once the exporter has gone, nobody is offered its copy. */
	swarm_wshare_drop_exporter(&t, 1);
	cr_expect_null(swarm_wshare_offer(&t, 0, SHA_A, 2));
}
