/* test_segment.c: session segments (ipc/segment.h): the geometry computed and checked, the
 * sealed memfd and its header, mapping a received segment, the dtype sizes, and the slot
 * ownership protocol between a client and a worker run over a real segment's queues.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ipc/ring.h"
#include "ipc/segment.h"

static swarm_tensor_spec spec(uint32_t dtype, uint64_t row_bytes)
{
	swarm_tensor_spec t;
	memset(&t, 0, sizeof t);
	snprintf(t.name, sizeof t.name, "t%llu", (unsigned long long)row_bytes);
	t.dtype = dtype;
	t.ndim = 2;
	t.shape[0] = -1;
	t.shape[1] = (int64_t)(row_bytes / (swarm_dtype_size(dtype) ? swarm_dtype_size(dtype) : 1));
	t.row_bytes = row_bytes;
	return t;
}

/* One f32 input of 3 per row, one f32 output of 5 per row. */
static void small_geometry(struct swarm_seg_geometry *g, uint32_t nslots, uint32_t qd,
			   uint32_t max_rows)
{
	swarm_tensor_spec in = spec(SWARM_DTYPE_F32, 12), out = spec(SWARM_DTYPE_F32, 20);
	int rc = swarm_seg_geometry_init(g, &in, 1, &out, 1, nslots, qd, max_rows);
	cr_assert_eq(rc, 0, "geometry_init(%u slots, qd %u, %u rows) = %d", nslots, qd, max_rows,
		     rc);
}

/* Three inputs and two outputs of awkward sizes. */
static void mixed_geometry(struct swarm_seg_geometry *g)
{
	swarm_tensor_spec in[3] = { spec(SWARM_DTYPE_U8, 3), spec(SWARM_DTYPE_F16, 130),
				    spec(SWARM_DTYPE_I64, 64) };
	swarm_tensor_spec out[2] = { spec(SWARM_DTYPE_BF16, 2), spec(SWARM_DTYPE_F32, 4000) };
	int rc = swarm_seg_geometry_init(g, in, 3, out, 2, 6, 4, 7);
	cr_assert_eq(rc, 0, "mixed geometry_init = %d", rc);
}

/* ---- geometry_init ---- */

Test(ipc_segment, init_known_spec_gives_expected_offsets)
{
	struct swarm_seg_geometry g;
	small_geometry(&g, 4, 4, 10);
	cr_assert_eq(g.nslots, 4u);
	cr_assert_eq(g.queue_depth, 4u);
	cr_assert_eq(g.cq_depth, 4u, "cq_depth = %u", g.cq_depth);
	cr_assert_eq(g.max_rows, 10u);
	cr_assert_eq(g.n_inputs, 1u);
	cr_assert_eq(g.n_outputs, 1u);
	/* slot: 64-byte header, input 120 bytes at 64, output 200 bytes at 192, end 392 */
	cr_assert_eq(g.tensor_offset[0], 64u, "input offset %llu",
		     (unsigned long long)g.tensor_offset[0]);
	cr_assert_eq(g.tensor_offset[1], 192u, "output offset %llu",
		     (unsigned long long)g.tensor_offset[1]);
	cr_assert_eq(g.tensor_row_bytes[0], 12u);
	cr_assert_eq(g.tensor_row_bytes[1], 20u);
	cr_assert_eq(g.slot_stride, 448u, "slot_stride %llu", (unsigned long long)g.slot_stride);
	cr_assert_eq(g.sq_offset, 4096u, "sq_offset %llu", (unsigned long long)g.sq_offset);
	/* the queues stay SWARM_SHARE_GAP (128 bytes) apart: 4096 + 32 rounded up */
	cr_assert_eq(g.cq_offset, 4224u, "cq_offset %llu", (unsigned long long)g.cq_offset);
	cr_assert_eq(g.slots_offset, 8192u, "slots_offset %llu",
		     (unsigned long long)g.slots_offset);
	cr_assert_eq(g.segment_bytes, 12288u, "segment_bytes %llu",
		     (unsigned long long)g.segment_bytes);
}

Test(ipc_segment, init_aligns_tensors_and_stride)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	uint64_t prev_end = SWARM_SLOT_HEADER_BYTES;
	for (uint32_t i = 0; i < 5; i++) {
		uint64_t off = g.tensor_offset[i];
		cr_assert_eq(off % 64, 0u, "tensor %u offset %llu not 64-aligned", i,
			     (unsigned long long)off);
		cr_assert_geq(off, prev_end, "tensor %u at %llu overlaps the previous end %llu", i,
			      (unsigned long long)off, (unsigned long long)prev_end);
		prev_end = off + g.tensor_row_bytes[i] * g.max_rows;
	}
	cr_assert_eq(g.slot_stride % 64, 0u, "slot_stride %llu not a multiple of 64",
		     (unsigned long long)g.slot_stride);
	cr_assert_geq(g.slot_stride, prev_end, "stride %llu < end of last tensor %llu",
		      (unsigned long long)g.slot_stride, (unsigned long long)prev_end);
	cr_assert_lt(g.slot_stride - prev_end, 64u, "stride %llu wastes more than a line past %llu",
		     (unsigned long long)g.slot_stride, (unsigned long long)prev_end);
	for (uint32_t i = 5; i < 2 * SWARM_MAX_TENSORS; i++)
		cr_assert_eq(g.tensor_offset[i], 0u, "unused tensor %u has offset %llu", i,
			     (unsigned long long)g.tensor_offset[i]);
}

Test(ipc_segment, init_orders_queues_and_slots)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	cr_assert_geq(g.sq_offset, SWARM_SEG_HEADER_BYTES, "sq %llu inside the header page",
		      (unsigned long long)g.sq_offset);
	cr_assert_geq(g.cq_offset, g.sq_offset + g.queue_depth * 8ull, "cq %llu overlaps sq",
		      (unsigned long long)g.cq_offset);
	cr_assert_eq(g.cq_offset % 64, 0u, "cq_offset %llu not line-aligned",
		     (unsigned long long)g.cq_offset);
	cr_assert_geq(g.slots_offset, g.cq_offset + g.cq_depth * 8ull, "slots %llu overlap cq",
		      (unsigned long long)g.slots_offset);
	cr_assert_eq(g.slots_offset % 4096, 0u, "slots_offset %llu not page-aligned",
		     (unsigned long long)g.slots_offset);
	cr_assert_eq(g.segment_bytes % 4096, 0u, "segment_bytes %llu not page-aligned",
		     (unsigned long long)g.segment_bytes);
	cr_assert_geq(g.segment_bytes, g.slots_offset + g.slot_stride * g.nslots,
		      "segment_bytes %llu too small for %u slots of %llu",
		      (unsigned long long)g.segment_bytes, g.nslots,
		      (unsigned long long)g.slot_stride);
}

Test(ipc_segment, init_rounds_cq_depth_up_to_a_power_of_two)
{
	static const uint32_t slots[] = { 1, 2, 3, 5, 8, 9, 4096 };
	static const uint32_t want[] = { 1, 2, 4, 8, 8, 16, 4096 };
	for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
		struct swarm_seg_geometry g;
		small_geometry(&g, slots[i], 1, 1);
		cr_assert_eq(g.cq_depth, want[i], "%u slots: cq_depth %u, want %u", slots[i],
			     g.cq_depth, want[i]);
	}
}

Test(ipc_segment, init_accepts_queue_depth_up_to_pow2_of_slots)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	int rc = swarm_seg_geometry_init(&g, &t, 1, &t, 1, 5, 8, 1);
	cr_assert_eq(rc, 0, "5 slots, queue depth 8 = %d, want 0", rc);
}

Test(ipc_segment, init_rejects_zero_slots)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	int rc = swarm_seg_geometry_init(&g, &t, 1, &t, 1, 0, 1, 1);
	cr_assert_eq(rc, -EINVAL, "0 slots = %d, want -EINVAL", rc);
}

Test(ipc_segment, init_rejects_too_many_slots)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	int rc = swarm_seg_geometry_init(&g, &t, 1, &t, 1, SWARM_SEG_MAX_SLOTS + 1, 1, 1);
	cr_assert_eq(rc, -EINVAL, "%u slots = %d, want -EINVAL", SWARM_SEG_MAX_SLOTS + 1, rc);
}

Test(ipc_segment, init_rejects_non_power_of_two_queue_depth)
{
	static const uint32_t bad[] = { 0, 3, 6, 7 };
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct swarm_seg_geometry g;
		int rc = swarm_seg_geometry_init(&g, &t, 1, &t, 1, 8, bad[i], 1);
		cr_assert_eq(rc, -EINVAL, "queue depth %u = %d, want -EINVAL", bad[i], rc);
	}
}

Test(ipc_segment, init_rejects_queue_depth_above_pow2_of_slots)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	int rc = swarm_seg_geometry_init(&g, &t, 1, &t, 1, 5, 16, 1);
	cr_assert_eq(rc, -EINVAL, "5 slots, queue depth 16 = %d, want -EINVAL", rc);
}

Test(ipc_segment, init_rejects_zero_max_rows)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	int rc = swarm_seg_geometry_init(&g, &t, 1, &t, 1, 4, 4, 0);
	cr_assert_eq(rc, -EINVAL, "max_rows 0 = %d, want -EINVAL", rc);
}

Test(ipc_segment, init_rejects_zero_row_bytes)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec ok = spec(SWARM_DTYPE_F32, 4), zero = spec(SWARM_DTYPE_F32, 0);
	int rc = swarm_seg_geometry_init(&g, &ok, 1, &zero, 1, 4, 4, 1);
	cr_assert_eq(rc, -EINVAL, "output row_bytes 0 = %d, want -EINVAL", rc);
	rc = swarm_seg_geometry_init(&g, &zero, 1, &ok, 1, 4, 4, 1);
	cr_assert_eq(rc, -EINVAL, "input row_bytes 0 = %d, want -EINVAL", rc);
}

Test(ipc_segment, init_rejects_row_size_that_overflows)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec huge = spec(SWARM_DTYPE_U8, UINT64_MAX / 2 + 1);
	int rc = swarm_seg_geometry_init(&g, &huge, 1, NULL, 0, 1, 1, 2);
	cr_assert_eq(rc, -EINVAL, "row_bytes 2^63 * 2 rows = %d, want -EINVAL", rc);
	huge = spec(SWARM_DTYPE_U8, UINT64_MAX);
	rc = swarm_seg_geometry_init(&g, &huge, 1, NULL, 0, 1, 1, 1);
	cr_assert_eq(rc, -EINVAL, "row_bytes 2^64-1 = %d, want -EINVAL", rc);
}

Test(ipc_segment, init_rejects_segment_over_max_bytes)
{
	struct swarm_seg_geometry g;
	/* 16 GiB per slot fits alone, 8 slots of it do not fit 64 GiB */
	swarm_tensor_spec big = spec(SWARM_DTYPE_U8, 1ull << 20);
	int rc = swarm_seg_geometry_init(&g, &big, 1, NULL, 0, 8, 8, 1u << 14);
	cr_assert_eq(rc, -EINVAL, "8 slots of 16 GiB = %d, want -EINVAL", rc);
	/* two tensors of 40 GiB each in one slot */
	swarm_tensor_spec t40 = spec(SWARM_DTYPE_U8, 40ull << 20);
	rc = swarm_seg_geometry_init(&g, &t40, 1, &t40, 1, 1, 1, 1024);
	cr_assert_eq(rc, -EINVAL, "a slot of 80 GiB = %d, want -EINVAL", rc);
}

Test(ipc_segment, init_rejects_too_many_tensors)
{
	struct swarm_seg_geometry g;
	swarm_tensor_spec t[SWARM_MAX_TENSORS + 1];
	for (int i = 0; i <= SWARM_MAX_TENSORS; i++)
		t[i] = spec(SWARM_DTYPE_F32, 4);
	int rc = swarm_seg_geometry_init(&g, t, SWARM_MAX_TENSORS + 1, t, 1, 1, 1, 1);
	cr_assert_eq(rc, -EINVAL, "%d inputs = %d, want -EINVAL", SWARM_MAX_TENSORS + 1, rc);
	rc = swarm_seg_geometry_init(&g, t, 1, t, SWARM_MAX_TENSORS + 1, 1, 1, 1);
	cr_assert_eq(rc, -EINVAL, "%d outputs = %d, want -EINVAL", SWARM_MAX_TENSORS + 1, rc);
	rc = swarm_seg_geometry_init(&g, t, SWARM_MAX_TENSORS, t, SWARM_MAX_TENSORS, 1, 1, 1);
	cr_assert_eq(rc, 0, "%d inputs and outputs = %d, want 0", SWARM_MAX_TENSORS, rc);
}

/* ---- geometry_check ---- */

Test(ipc_segment, check_accepts_what_init_produced)
{
	struct swarm_seg_geometry g;
	small_geometry(&g, 4, 4, 10);
	cr_assert_eq(swarm_seg_geometry_check(&g), 0, "small geometry rejected");
	mixed_geometry(&g);
	cr_assert_eq(swarm_seg_geometry_check(&g), 0, "mixed geometry rejected");
	small_geometry(&g, SWARM_SEG_MAX_SLOTS, 1, 1);
	cr_assert_eq(swarm_seg_geometry_check(&g), 0, "max-slots geometry rejected");
	swarm_tensor_spec t = spec(SWARM_DTYPE_F32, 4);
	cr_assert_eq(swarm_seg_geometry_init(&g, NULL, 0, &t, 1, 3, 2, 1), 0);
	cr_assert_eq(swarm_seg_geometry_check(&g), 0, "no-input geometry rejected");
}

/* Corrupts one field of a good geometry and expects -EINVAL. */
#define CHECK_REJECTS(field, value)                                                          \
	do {                                                                                 \
		struct swarm_seg_geometry g_;                                                \
		mixed_geometry(&g_);                                                         \
		g_.field = (value);                                                          \
		int rc_ = swarm_seg_geometry_check(&g_);                                     \
		cr_assert_eq(rc_, -EINVAL, "check with " #field " = %llu: %d, want -EINVAL", \
			     (unsigned long long)g_.field, rc_);                             \
	} while (0)

Test(ipc_segment, check_rejects_overlapping_tensor_offsets)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(tensor_offset[1], g.tensor_offset[0]);
	CHECK_REJECTS(tensor_offset[2],
		      g.tensor_offset[1] + 64 * ((g.tensor_row_bytes[1] * g.max_rows) / 64 - 1));
	CHECK_REJECTS(tensor_offset[0], 0); /* over the slot header */
}

Test(ipc_segment, check_rejects_tensor_row_too_large_for_its_room)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(tensor_row_bytes[0], g.tensor_row_bytes[0] + 64);
	CHECK_REJECTS(tensor_row_bytes[4], g.tensor_row_bytes[4] + 64);
	CHECK_REJECTS(tensor_row_bytes[2], 0);
}

Test(ipc_segment, check_rejects_stride_too_small)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(slot_stride, g.slot_stride - 64);
	CHECK_REJECTS(slot_stride, 0);
}

Test(ipc_segment, check_rejects_slots_past_the_end)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	uint64_t need = g.slots_offset + g.slot_stride * g.nslots;
	CHECK_REJECTS(segment_bytes, need - 1);
	CHECK_REJECTS(slots_offset, g.segment_bytes - g.slot_stride * g.nslots + 4096);
}

Test(ipc_segment, check_rejects_overlapping_queues)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(sq_offset, 0);
	CHECK_REJECTS(sq_offset, SWARM_SEG_HEADER_BYTES - 64);
	CHECK_REJECTS(cq_offset, g.sq_offset);
	CHECK_REJECTS(slots_offset, g.cq_offset);
}

Test(ipc_segment, check_rejects_unaligned_tensor_offset)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(tensor_offset[1], g.tensor_offset[1] + 8);
}

Test(ipc_segment, check_rejects_unaligned_stride)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(slot_stride, g.slot_stride + 8);
}

/* The queues hold 64-bit entries read with atomics: an offset off an 8-byte boundary makes
 * them misaligned (split across lines, not atomic). init puts both on a cache line. */
Test(ipc_segment, check_rejects_unaligned_sq_offset)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(sq_offset, g.sq_offset + 4);
}

Test(ipc_segment, check_rejects_unaligned_cq_offset)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(cq_offset, g.cq_offset + 4);
}

/* Tensors are 64-byte aligned only if the slots start on a 64-byte boundary. */
Test(ipc_segment, check_rejects_unaligned_slots_offset)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(slots_offset, g.slots_offset + 8);
}

Test(ipc_segment, check_rejects_bad_counts)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(nslots, 0);
	CHECK_REJECTS(nslots, SWARM_SEG_MAX_SLOTS + 1);
	CHECK_REJECTS(max_rows, 0);
	CHECK_REJECTS(queue_depth, 0);
	CHECK_REJECTS(queue_depth, 3);
	CHECK_REJECTS(queue_depth, g.cq_depth * 2);
	CHECK_REJECTS(cq_depth, g.cq_depth * 2);
	CHECK_REJECTS(cq_depth, g.cq_depth / 2);
	CHECK_REJECTS(n_inputs, SWARM_MAX_TENSORS + 1);
	CHECK_REJECTS(n_outputs, SWARM_MAX_TENSORS + 1);
	CHECK_REJECTS(segment_bytes, SWARM_SEG_MAX_BYTES + 4096);
}

Test(ipc_segment, check_rejects_more_rows_than_slot_holds)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	CHECK_REJECTS(max_rows, g.max_rows * 4);
}

/* A hostile or broken geometry whose sums wrap past 2^64 must not look small. */
Test(ipc_segment, check_rejects_stride_times_slots_that_wraps)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	cr_assert_eq(g.nslots, 6u);
	/* 6 * 2^63 wraps to 0: slot 1 would sit 2^63 bytes past the mapping */
	CHECK_REJECTS(slot_stride, 1ull << 63);
}

Test(ipc_segment, check_rejects_tensor_offset_that_wraps)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	/* offset + rows * row_bytes wraps to a small end inside the stride */
	CHECK_REJECTS(tensor_offset[4], UINT64_MAX - 63);
}

Test(ipc_segment, check_rejects_sq_offset_that_wraps)
{
	struct swarm_seg_geometry g;
	mixed_geometry(&g);
	/* sq_offset + queue_depth * 8 wraps to 0, below cq_offset */
	CHECK_REJECTS(sq_offset, 0ull - g.queue_depth * 8ull);
}

/* ---- dtypes and completion entries ---- */

Test(ipc_segment, dtype_size_of_every_dtype)
{
	static const struct {
		uint32_t dtype, size;
		const char *name;
	} want[] = {
		{ SWARM_DTYPE_F32, 4, "f32" },   { SWARM_DTYPE_F16, 2, "f16" },
		{ SWARM_DTYPE_BF16, 2, "bf16" }, { SWARM_DTYPE_I32, 4, "i32" },
		{ SWARM_DTYPE_I64, 8, "i64" },   { SWARM_DTYPE_U8, 1, "u8" },
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		uint32_t s = swarm_dtype_size(want[i].dtype);
		cr_assert_eq(s, want[i].size, "dtype %u size %u, want %u", want[i].dtype, s,
			     want[i].size);
		cr_assert_str_eq(swarm_dtype_name(want[i].dtype), want[i].name);
	}
}

Test(ipc_segment, dtype_size_of_unknown_is_zero)
{
	static const uint32_t bad[] = { 0, 7, 100, UINT32_MAX };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		uint32_t s = swarm_dtype_size(bad[i]);
		cr_assert_eq(s, 0u, "unknown dtype %u has size %u, want 0", bad[i], s);
		cr_assert_str_eq(swarm_dtype_name(bad[i]), "?");
	}
}

Test(ipc_segment, cqe_pack_round_trips_slot_and_status)
{
	static const int32_t statuses[] = { 0, -EINVAL, -ETIMEDOUT, INT32_MIN, INT32_MAX };
	static const uint32_t slots[] = { 0, 1, 4095, UINT32_MAX };
	for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
		for (size_t j = 0; j < sizeof slots / sizeof *slots; j++) {
			uint64_t e = swarm_cqe_pack(slots[j], statuses[i]);
			cr_assert_eq(swarm_cqe_slot(e), slots[j], "slot %u came back as %u",
				     slots[j], swarm_cqe_slot(e));
			cr_assert_eq(swarm_cqe_status(e), statuses[i],
				     "status %d came back as %d (slot %u)", statuses[i],
				     swarm_cqe_status(e), slots[j]);
		}
}

/* ---- the header layout ---- */

Test(ipc_segment, header_hot_words_sit_on_distinct_lines)
{
	static const size_t off[] = {
		offsetof(struct swarm_seg_header, sq_tail),
		offsetof(struct swarm_seg_header, sq_head),
		offsetof(struct swarm_seg_header, cq_tail),
		offsetof(struct swarm_seg_header, cq_head),
		offsetof(struct swarm_seg_header, worker_sleep),
		offsetof(struct swarm_seg_header, client_sleep),
		offsetof(struct swarm_seg_header, cq_doorbell),
		offsetof(struct swarm_seg_header, state),
	};
	size_t n = sizeof off / sizeof *off;
	size_t cold_end = offsetof(struct swarm_seg_header, cpus) + SWARM_CPUS_MAX;
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(off[i] % SWARM_CACHELINE, 0u,
			     "hot word %zu at %zu is not on a line start", i, off[i]);
		cr_assert_geq(off[i] / 64, (cold_end + 63) / 64,
			      "hot word %zu at %zu shares a line with the cold fields (end %zu)", i,
			      off[i], cold_end);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(off[i] / 64, off[j] / 64,
				      "hot words %zu and %zu share line %zu", j, i, off[i] / 64);
	}
	cr_assert_leq(sizeof(struct swarm_seg_header), SWARM_SEG_HEADER_BYTES);
}

/* ---- create and map ---- */

struct seg {
	struct swarm_seg_geometry g;
	swarm_tensor_spec in[2], out[1];
	int fd;
	void *base;
};

static void seg_create(struct seg *s, uint32_t nslots, uint32_t qd)
{
	memset(s, 0, sizeof *s);
	s->in[0] = spec(SWARM_DTYPE_F32, 16);
	s->in[1] = spec(SWARM_DTYPE_I64, 8);
	s->out[0] = spec(SWARM_DTYPE_F32, 16);
	int rc = swarm_seg_geometry_init(&s->g, s->in, 2, s->out, 1, nslots, qd, 4);
	cr_assert_eq(rc, 0, "geometry_init = %d", rc);
	s->fd = swarm_seg_create(&s->g, 42, "echo", 3, s->in, s->out, -1, &s->base);
	cr_assert_geq(s->fd, 0, "seg_create = %d (%s)", s->fd, strerror(-s->fd));
}

static void seg_destroy(struct seg *s)
{
	munmap(s->base, s->g.segment_bytes);
	close(s->fd);
}

Test(ipc_segment, create_seals_shrink_grow_and_seal)
{
	struct seg s;
	seg_create(&s, 4, 4);
	int seals = fcntl(s.fd, F_GET_SEALS);
	int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	cr_assert_eq(seals & want, want, "seals %#x, want %#x set", seals, want);
	seg_destroy(&s);
}

Test(ipc_segment, create_file_is_segment_bytes_long)
{
	struct seg s;
	seg_create(&s, 4, 4);
	struct stat st;
	cr_assert_eq(fstat(s.fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, s.g.segment_bytes, "file size %lld, want %llu",
		     (long long)st.st_size, (unsigned long long)s.g.segment_bytes);
	int fl = fcntl(s.fd, F_GETFD);
	cr_assert(fl & FD_CLOEXEC, "segment fd flags %#x lack FD_CLOEXEC", fl);
	seg_destroy(&s);
}

Test(ipc_segment, create_refuses_shrink)
{
	struct seg s;
	seg_create(&s, 4, 4);
	int rc = ftruncate(s.fd, (off_t)s.g.segment_bytes - 4096);
	int e = errno;
	cr_assert_eq(rc, -1, "ftruncate shrink succeeded on a sealed segment");
	cr_assert_eq(e, EPERM, "ftruncate shrink errno %d (%s), want EPERM", e, strerror(e));
	seg_destroy(&s);
}

Test(ipc_segment, create_refuses_grow)
{
	struct seg s;
	seg_create(&s, 4, 4);
	int rc = ftruncate(s.fd, (off_t)s.g.segment_bytes + 4096);
	int e = errno;
	cr_assert_eq(rc, -1, "ftruncate grow succeeded on a sealed segment");
	cr_assert_eq(e, EPERM, "ftruncate grow errno %d (%s), want EPERM", e, strerror(e));
	seg_destroy(&s);
}

Test(ipc_segment, create_refuses_more_seals)
{
	struct seg s;
	seg_create(&s, 4, 4);
	int rc = fcntl(s.fd, F_ADD_SEALS, F_SEAL_WRITE);
	int e = errno;
	cr_assert_eq(rc, -1, "F_ADD_SEALS succeeded after F_SEAL_SEAL");
	cr_assert_eq(e, EPERM, "F_ADD_SEALS errno %d (%s), want EPERM", e, strerror(e));
	seg_destroy(&s);
}

Test(ipc_segment, create_writes_the_header)
{
	struct seg s;
	seg_create(&s, 4, 4);
	const struct swarm_seg_header *h = s.base;
	cr_assert_eq(h->magic, SWARM_SEG_MAGIC, "magic %#llx", (unsigned long long)h->magic);
	cr_assert_eq(h->abi_version, SWARM_ABI_VERSION, "abi %u", h->abi_version);
	cr_assert_eq(h->header_bytes, SWARM_SEG_HEADER_BYTES, "header_bytes %u", h->header_bytes);
	cr_assert_eq(h->session_id, 42u, "session_id %llu", (unsigned long long)h->session_id);
	cr_assert_eq(memcmp(&h->geo, &s.g, sizeof s.g), 0, "header geometry differs");
	cr_assert_str_eq(h->model, "echo");
	cr_assert_eq(h->model_version, 3u, "model_version %u", h->model_version);
	cr_assert_eq(memcmp(h->inputs, s.in, sizeof s.in), 0, "input specs differ");
	cr_assert_eq(memcmp(h->outputs, s.out, sizeof s.out), 0, "output specs differ");
	cr_assert_eq(h->device_index, -1, "device_index %d", h->device_index);
	cr_assert_eq(h->numa_node, -1, "numa_node %d", h->numa_node);
	cr_assert_eq(h->sq_tail.v, 0u);
	cr_assert_eq(h->cq_head.v, 0u);
	cr_assert_eq(h->state.v, (uint32_t)SWARM_SEG_STATE_INIT, "state %u", h->state.v);
	seg_destroy(&s);
}

Test(ipc_segment, create_truncates_a_long_model_name)
{
	struct swarm_seg_geometry g;
	small_geometry(&g, 1, 1, 1);
	char name[SWARM_NAME_MAX + 20];
	memset(name, 'm', sizeof name - 1);
	name[sizeof name - 1] = 0;
	swarm_tensor_spec in = spec(SWARM_DTYPE_F32, 12), out = spec(SWARM_DTYPE_F32, 20);
	void *base;
	int fd = swarm_seg_create(&g, 1, name, 1, &in, &out, -1, &base);
	cr_assert_geq(fd, 0, "seg_create = %d", fd);
	const struct swarm_seg_header *h = base;
	size_t len = strnlen(h->model, sizeof h->model);
	cr_assert_eq(len, SWARM_NAME_MAX - 1u, "model name length %zu, want %d", len,
		     SWARM_NAME_MAX - 1);
	munmap(base, g.segment_bytes);
	close(fd);
}

Test(ipc_segment, create_rejects_a_bad_geometry)
{
	struct swarm_seg_geometry g;
	small_geometry(&g, 4, 4, 1);
	g.slot_stride -= 64;
	swarm_tensor_spec in = spec(SWARM_DTYPE_F32, 12), out = spec(SWARM_DTYPE_F32, 20);
	void *base = NULL;
	int fd = swarm_seg_create(&g, 1, "x", 1, &in, &out, -1, &base);
	cr_assert_eq(fd, -EINVAL, "seg_create with a bad geometry = %d, want -EINVAL", fd);
	cr_assert_null(base);
}

Test(ipc_segment, map_shares_writes_both_ways)
{
	struct seg s;
	seg_create(&s, 4, 4);
	void *b2 = NULL;
	int rc = swarm_seg_map(s.fd, s.g.segment_bytes, &b2);
	cr_assert_eq(rc, 0, "seg_map = %d", rc);
	cr_assert_neq(b2, s.base, "the second mapping is the first");
	const struct swarm_seg_header *h2 = b2;
	cr_assert_eq(h2->magic, SWARM_SEG_MAGIC);
	struct swarm_slot_header *a = swarm_seg_slot(s.base, &s.g, 3);
	struct swarm_slot_header *b = swarm_seg_slot(b2, &s.g, 3);
	a->t_submit_ns = 7;
	cr_assert_eq(b->t_submit_ns, 7u, "mapping 2 sees t_submit %llu, want 7",
		     (unsigned long long)b->t_submit_ns);
	b->deadline_ns = 123456789;
	cr_assert_eq(a->deadline_ns, 123456789u, "mapping 1 sees deadline %llu",
		     (unsigned long long)a->deadline_ns);
	char *last1 = (char *)s.base + s.g.segment_bytes - 1;
	char *last2 = (char *)b2 + s.g.segment_bytes - 1;
	*last2 = 'z';
	cr_assert_eq(*last1, 'z', "last byte not shared");
	munmap(b2, s.g.segment_bytes);
	seg_destroy(&s);
}

Test(ipc_segment, map_rejects_size_larger_than_the_file)
{
	struct seg s;
	seg_create(&s, 4, 4);
	void *b2 = NULL;
	int rc = swarm_seg_map(s.fd, s.g.segment_bytes + 4096, &b2);
	cr_assert_eq(rc, -EINVAL, "seg_map past the end = %d, want -EINVAL", rc);
	cr_assert_null(b2);
	seg_destroy(&s);
}

Test(ipc_segment, map_rejects_size_below_the_header)
{
	struct seg s;
	seg_create(&s, 4, 4);
	void *b2 = NULL;
	int rc = swarm_seg_map(s.fd, SWARM_SEG_HEADER_BYTES - 1, &b2);
	cr_assert_eq(rc, -EINVAL, "seg_map of %u bytes = %d, want -EINVAL",
		     SWARM_SEG_HEADER_BYTES - 1, rc);
	seg_destroy(&s);
}

Test(ipc_segment, map_rejects_an_unsealed_memfd)
{
	int fd = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 16384), 0);
	void *b = NULL;
	int rc = swarm_seg_map(fd, 16384, &b);
	cr_assert_eq(rc, -EPERM, "seg_map of an unsealed memfd = %d, want -EPERM", rc);
	cr_assert_null(b);
	/* grow-only sealing is not enough either: shrinking is what faults a reader */
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
	rc = swarm_seg_map(fd, 16384, &b);
	cr_assert_eq(rc, -EPERM, "seg_map without F_SEAL_SHRINK = %d, want -EPERM", rc);
	close(fd);
}

Test(ipc_segment, map_rejects_a_memfd_without_sealing)
{
	int fd = memfd_create("nosealing", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 16384), 0);
	void *b = NULL;
	int rc = swarm_seg_map(fd, 16384, &b);
	cr_assert_eq(rc, -EPERM, "seg_map of a memfd with F_SEAL_SEAL only = %d, want -EPERM", rc);
	close(fd);
}

Test(ipc_segment, map_rejects_a_bad_fd)
{
	void *b = NULL;
	int rc = swarm_seg_map(-1, 16384, &b);
	cr_assert_eq(rc, -EBADF, "seg_map(-1) = %d, want -EBADF", rc);
}

/* ---- slot ownership: client and worker over a real segment ---- */

struct session {
	struct seg s;
	struct swarm_seg_header *h;
	struct swarm_ring_producer client_sq, worker_cq;
	struct swarm_ring_consumer worker_sq, client_cq;
};

static void session_open(struct session *x, uint32_t nslots, uint32_t qd)
{
	seg_create(&x->s, nslots, qd);
	x->h = x->s.base;
	char *b = x->s.base;
	uint64_t *sq = (uint64_t *)(b + x->s.g.sq_offset);
	uint64_t *cq = (uint64_t *)(b + x->s.g.cq_offset);
	const struct swarm_seg_geometry *g = &x->s.g;
	swarm_ring_producer_init(&x->client_sq, &x->h->sq_tail.v, &x->h->sq_head.v, sq,
				 g->queue_depth);
	swarm_ring_consumer_init(&x->worker_sq, &x->h->sq_head.v, &x->h->sq_tail.v, sq,
				 g->queue_depth);
	swarm_ring_producer_init(&x->worker_cq, &x->h->cq_tail.v, &x->h->cq_head.v, cq,
				 g->cq_depth);
	swarm_ring_consumer_init(&x->client_cq, &x->h->cq_head.v, &x->h->cq_tail.v, cq,
				 g->cq_depth);
}

static float *slot_tensor(struct session *x, uint32_t slot, uint32_t t)
{
	return (float *)((char *)swarm_seg_slot(x->s.base, &x->s.g, slot) +
			 x->s.g.tensor_offset[t]);
}

/* The client owns slot: fills its request and submits it. */
static int client_submit(struct session *x, uint32_t slot, uint32_t rows)
{
	float *in = slot_tensor(x, slot, 0);
	for (uint32_t i = 0; i < rows * 4; i++)
		in[i] = (float)(slot * 100 + i);
	return swarm_ring_push(&x->client_sq, swarm_sqe_pack(slot, 0, rows));
}

/* The worker takes every submitted slot, doubles input 0 into output 0, and completes each
 * with status(slot). Returns the number completed, or a negative push error. */
static int worker_run(struct session *x, int32_t (*status)(uint32_t))
{
	int64_t n = swarm_ring_available(&x->worker_sq);
	if (n < 0)
		return (int)n;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		uint64_t e = swarm_ring_peek(&x->worker_sq, i); /* read once */
		uint32_t slot = swarm_sqe_slot(e), rows = swarm_sqe_rows(e);
		cr_assert_lt(slot, x->s.g.nslots, "worker got slot %u of %u", slot, x->s.g.nslots);
		const float *in = slot_tensor(x, slot, 0);
		float *out = slot_tensor(x, slot, 2);
		for (uint32_t j = 0; j < rows * 4; j++)
			out[j] = 2 * in[j];
		int rc = swarm_ring_push(&x->worker_cq, swarm_cqe_pack(slot, status(slot)));
		if (rc)
			return rc;
	}
	swarm_ring_advance(&x->worker_sq, (uint32_t)n);
	return (int)n;
}

static int32_t status_ok(uint32_t slot)
{
	(void)slot;
	return 0;
}

static int32_t status_odd_fails(uint32_t slot) { return slot % 2 ? -ETIMEDOUT : 0; }

Test(ipc_segment, slot_round_trip_through_sq_and_cq)
{
	struct session x;
	session_open(&x, 4, 4);
	int rc = client_submit(&x, 2, 3);
	cr_assert_eq(rc, 0, "submit = %d", rc);
	cr_assert_eq(x.h->sq_tail.v, 1u, "sq_tail %u after one submit", x.h->sq_tail.v);
	int done = worker_run(&x, status_ok);
	cr_assert_eq(done, 1, "worker completed %d, want 1", done);
	cr_assert_eq(x.h->sq_head.v, 1u, "sq_head %u after the worker took it", x.h->sq_head.v);
	cr_assert_eq(x.h->cq_tail.v, 1u, "cq_tail %u after one completion", x.h->cq_tail.v);
	int64_t n = swarm_ring_available(&x.client_cq);
	cr_assert_eq(n, 1, "client sees %lld completions", (long long)n);
	uint64_t e = swarm_ring_peek(&x.client_cq, 0);
	cr_assert_eq(swarm_cqe_slot(e), 2u, "completion for slot %u, want 2", swarm_cqe_slot(e));
	cr_assert_eq(swarm_cqe_status(e), 0, "status %d, want 0", swarm_cqe_status(e));
	swarm_ring_advance(&x.client_cq, 1);
	const float *out = slot_tensor(&x, 2, 2);
	for (uint32_t i = 0; i < 12; i++)
		cr_assert_float_eq(out[i], 2.0f * (200 + i), 0.0, "output[%u] = %f", i, out[i]);
	cr_assert_eq(x.h->cq_head.v, 1u);
	seg_destroy(&x.s);
}

Test(ipc_segment, slot_completion_carries_a_negative_status)
{
	struct session x;
	session_open(&x, 4, 4);
	for (uint32_t slot = 0; slot < 4; slot++)
		cr_assert_eq(client_submit(&x, slot, 1), 0);
	cr_assert_eq(worker_run(&x, status_odd_fails), 4);
	cr_assert_eq(swarm_ring_available(&x.client_cq), 4);
	for (uint32_t i = 0; i < 4; i++) {
		uint64_t e = swarm_ring_peek(&x.client_cq, i);
		int32_t want = i % 2 ? -ETIMEDOUT : 0;
		cr_assert_eq(swarm_cqe_slot(e), i, "completion %u is for slot %u", i,
			     swarm_cqe_slot(e));
		cr_assert_eq(swarm_cqe_status(e), want, "slot %u status %d, want %d", i,
			     swarm_cqe_status(e), want);
	}
	seg_destroy(&x.s);
}

/* Every slot in flight, the client reading no completion: the CQ (nslots rounded up to a
 * power of two) still takes them all, whatever the submission queue's depth. */
static void cq_takes_every_slot(uint32_t nslots, uint32_t qd)
{
	struct session x;
	session_open(&x, nslots, qd);
	uint32_t next = 0;
	while (next < nslots) {
		while (next < nslots && client_submit(&x, next, 1) == 0)
			next++;
		int done = worker_run(&x, status_ok);
		cr_assert_geq(done, 1, "%u slots qd %u: worker_run = %d after %u submitted", nslots,
			      qd, done, next);
	}
	int64_t n = swarm_ring_available(&x.client_cq);
	cr_assert_eq(n, nslots, "%u slots qd %u: %lld completions, want %u", nslots, qd,
		     (long long)n, nslots);
	for (uint32_t i = 0; i < nslots; i++)
		cr_assert_eq(swarm_cqe_slot(swarm_ring_peek(&x.client_cq, i)), i);
	if (x.s.g.cq_depth == nslots) {
		/* tight: one more would overflow, and is refused rather than overwritten */
		int rc = swarm_ring_push(&x.worker_cq, swarm_cqe_pack(0, 0));
		cr_assert_eq(rc, -EAGAIN, "push on a full CQ = %d, want -EAGAIN", rc);
	}
	swarm_ring_advance(&x.client_cq, (uint32_t)n);
	/* the slots are the client's again: a second lap works the same way */
	uint32_t lap = qd < nslots ? qd : nslots;
	for (uint32_t i = 0; i < lap; i++)
		cr_assert_eq(client_submit(&x, i, 1), 0);
	cr_assert_eq(worker_run(&x, status_ok), (int)lap);
	cr_assert_eq(swarm_ring_available(&x.client_cq), lap);
	seg_destroy(&x.s);
}

Test(ipc_segment, cq_never_overflows_with_every_slot_in_flight)
{
	cq_takes_every_slot(5, 4);
	cq_takes_every_slot(8, 8);
	cq_takes_every_slot(8, 2);
	cq_takes_every_slot(1, 1);
	cq_takes_every_slot(33, 64);
}

Test(ipc_segment, sq_full_returns_eagain_to_the_client)
{
	struct session x;
	session_open(&x, 8, 2);
	cr_assert_eq(client_submit(&x, 0, 1), 0);
	cr_assert_eq(client_submit(&x, 1, 1), 0);
	int rc = client_submit(&x, 2, 1);
	cr_assert_eq(rc, -EAGAIN, "third submit on a depth-2 SQ = %d, want -EAGAIN", rc);
	seg_destroy(&x.s);
}

/* A segment made for node 0 prefers node 0 for every page, read back from the kernel through
 * a second mapping (as the client's): the policy lives in the shared object. */
Test(ipc_segment, create_prefers_the_given_node_for_every_mapping)
{
	struct swarm_seg_geometry g;
	small_geometry(&g, 4, 4, 1);
	swarm_tensor_spec in = spec(SWARM_DTYPE_F32, 12), out = spec(SWARM_DTYPE_F32, 20);
	void *base = NULL;
	int fd = swarm_seg_create(&g, 1, "x", 1, &in, &out, 0, &base);
	cr_assert_geq(fd, 0, "seg_create on node 0 = %d", fd);
	void *b2 = NULL;
	cr_assert_eq(swarm_seg_map(fd, g.segment_bytes, &b2), 0);
	int mode = -1;
	unsigned long mask[16] = { 0 };
	char *slot = (char *)swarm_seg_slot(b2, &g, 3);
	long rc = syscall(SYS_get_mempolicy, &mode, mask, sizeof mask * 8, slot,
			  1ul << 1 /* MPOL_F_ADDR */);
	cr_assert_eq(rc, 0, "get_mempolicy: %s", strerror(errno));
	cr_assert_eq(mode, 1 /* MPOL_PREFERRED */, "policy mode %d of a slot, want preferred", mode);
	cr_assert_eq(mask[0], 1ul, "node mask %#lx, want node 0", mask[0]);
	cr_assert_eq(swarm_seg_bind_node(base, g.segment_bytes, -1, 0), -EINVAL);
	munmap(b2, g.segment_bytes);
	munmap(base, g.segment_bytes);
	close(fd);
}
