/* segment.c: computing, creating and mapping session segments (layout in segment.h). */
#include "ipc/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/proto.h"

uint32_t swarm_dtype_size(uint32_t dtype)
{
	switch (dtype) {
	case SWARM_DTYPE_F32:
		return 4;
	case SWARM_DTYPE_F16:
		return 2;
	case SWARM_DTYPE_BF16:
		return 2;
	case SWARM_DTYPE_I32:
		return 4;
	case SWARM_DTYPE_I64:
		return 8;
	case SWARM_DTYPE_U8:
		return 1;
	}
	return 0;
}

const char *swarm_dtype_name(uint32_t dtype)
{
	switch (dtype) {
	case SWARM_DTYPE_F32:
		return "f32";
	case SWARM_DTYPE_F16:
		return "f16";
	case SWARM_DTYPE_BF16:
		return "bf16";
	case SWARM_DTYPE_I32:
		return "i32";
	case SWARM_DTYPE_I64:
		return "i64";
	case SWARM_DTYPE_U8:
		return "u8";
	}
	return "?";
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static uint32_t pow2_ceil(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

uint32_t swarm_seg_default_depth(uint32_t nslots)
{
	return nslots && nslots <= SWARM_SEG_MAX_SLOTS ? pow2_ceil(nslots) : 0;
}

int swarm_seg_geometry_init(struct swarm_seg_geometry *g, const swarm_tensor_spec *inputs,
			    uint32_t n_inputs, const swarm_tensor_spec *outputs, uint32_t n_outputs,
			    uint32_t nslots, uint32_t queue_depth, uint32_t max_rows)
{
	memset(g, 0, sizeof *g);
	if (n_inputs > SWARM_MAX_TENSORS || n_outputs > SWARM_MAX_TENSORS)
		return -EINVAL;
	if (nslots == 0 || nslots > SWARM_SEG_MAX_SLOTS || max_rows == 0)
		return -EINVAL;
	if (queue_depth == 0 || !is_pow2(queue_depth) || queue_depth > pow2_ceil(nslots))
		return -EINVAL;
	g->nslots = nslots;
	g->queue_depth = queue_depth;
	g->cq_depth = pow2_ceil(nslots);
	g->max_rows = max_rows;
	g->n_inputs = n_inputs;
	g->n_outputs = n_outputs;

	uint64_t off = SWARM_SLOT_HEADER_BYTES;
	for (uint32_t i = 0; i < n_inputs + n_outputs; i++) {
		const swarm_tensor_spec *t = i < n_inputs ? &inputs[i] : &outputs[i - n_inputs];
		uint64_t bytes;
		if (t->row_bytes == 0 || __builtin_mul_overflow(t->row_bytes, max_rows, &bytes) ||
		    bytes > SWARM_SEG_MAX_BYTES)
			return -EINVAL;
		g->tensor_offset[i] = off;
		g->tensor_row_bytes[i] = t->row_bytes;
		off = align_up(off + bytes, SWARM_TENSOR_ALIGN);
		if (off > SWARM_SEG_MAX_BYTES)
			return -EINVAL;
	}
	g->slot_stride = off;
	g->sq_offset = SWARM_SEG_HEADER_BYTES;
	g->cq_offset = align_up(g->sq_offset + (uint64_t)queue_depth * 8, SWARM_SHARE_GAP);
	g->slots_offset = align_up(g->cq_offset + (uint64_t)g->cq_depth * 8, 4096);
	uint64_t slots_bytes;
	if (__builtin_mul_overflow(g->slot_stride, (uint64_t)nslots, &slots_bytes) ||
	    g->slots_offset + slots_bytes > SWARM_SEG_MAX_BYTES)
		return -EINVAL;
	g->segment_bytes = align_up(g->slots_offset + slots_bytes, 4096);
	return 0;
}

/* a + b, or UINT64_MAX when it wraps (larger than any valid segment). */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

int swarm_seg_geometry_check(const struct swarm_seg_geometry *g)
{
	if (g->nslots == 0 || g->nslots > SWARM_SEG_MAX_SLOTS || g->max_rows == 0)
		return -EINVAL;
	if (!is_pow2(g->queue_depth) || g->cq_depth != pow2_ceil(g->nslots) ||
	    g->queue_depth > g->cq_depth)
		return -EINVAL;
	if (g->n_inputs > SWARM_MAX_TENSORS || g->n_outputs > SWARM_MAX_TENSORS)
		return -EINVAL;
	/* Every sum and product saturates, so that no wrapped value passes for a small one. */
	if (g->segment_bytes > SWARM_SEG_MAX_BYTES || g->sq_offset < SWARM_SEG_HEADER_BYTES ||
	    g->sq_offset % SWARM_CACHELINE || g->cq_offset % SWARM_CACHELINE ||
	    g->slots_offset % 4096 ||
	    g->cq_offset < add_sat(g->sq_offset, (uint64_t)g->queue_depth * 8) ||
	    g->slots_offset < add_sat(g->cq_offset, (uint64_t)g->cq_depth * 8) ||
	    g->slot_stride < SWARM_SLOT_HEADER_BYTES || g->slot_stride % SWARM_TENSOR_ALIGN)
		return -EINVAL;
	if (add_sat(g->slots_offset, mul_sat(g->slot_stride, g->nslots)) > g->segment_bytes)
		return -EINVAL;
	uint64_t prev_end = SWARM_SLOT_HEADER_BYTES;
	for (uint32_t i = 0; i < g->n_inputs + g->n_outputs; i++) {
		uint64_t off = g->tensor_offset[i], row = g->tensor_row_bytes[i];
		if (off < prev_end || off % SWARM_TENSOR_ALIGN || row == 0)
			return -EINVAL;
		prev_end = add_sat(off, mul_sat(row, g->max_rows));
		if (prev_end > g->slot_stride)
			return -EINVAL;
	}
	return 0;
}

/* The kernel's MPOL_PREFERRED and mbind flags (linux/mempolicy.h), without libnuma. */
#define SEG_MPOL_PREFERRED 1
#define SEG_MPOL_MF_MOVE (1 << 1)

int swarm_seg_bind_node(void *base, uint64_t bytes, int os_node, int move)
{
	if (os_node < 0 || os_node >= 1024)
		return -EINVAL;
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = { 0 };
	mask[(unsigned)os_node / (8 * sizeof(unsigned long))] |=
		1ul << ((unsigned)os_node % (8 * sizeof(unsigned long)));
	/* Preferred, not bound: a full node spills rather than failing a client's fault. */
	if (syscall(SYS_mbind, base, (unsigned long)bytes, SEG_MPOL_PREFERRED, mask,
		    (unsigned long)(sizeof mask * 8), move ? SEG_MPOL_MF_MOVE : 0) < 0)
		return -errno;
	return 0;
}

int swarm_seg_create(const struct swarm_seg_geometry *g, uint64_t session_id, const char *model,
		     uint32_t model_version, const swarm_tensor_spec *inputs,
		     const swarm_tensor_spec *outputs, int os_node, void **base_out)
{
	int err = swarm_seg_geometry_check(g);
	if (err)
		return err;
	int fd = memfd_create("swarm-session", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)g->segment_bytes) < 0)
		goto err_close;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto err_close;
	void *base = mmap(NULL, g->segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		goto err_close;
	/* Before the first touch: a shared memory object keeps the policy, so every page the
	 * client or the worker faults in later lands on this node too. A kernel that refuses
	 * (no NUMA support) leaves the default policy, which is not an error. */
	if (os_node >= 0)
		(void)swarm_seg_bind_node(base, g->segment_bytes, os_node, 0);

	/* Second step: initialise the header of the (zero-filled) mapping. */
	struct swarm_seg_header *h = base;
	h->abi_version = SWARM_ABI_VERSION;
	h->header_bytes = SWARM_SEG_HEADER_BYTES;
	h->session_id = session_id;
	h->geo = *g;
	swarm_copy_str(h->model, sizeof h->model, model);
	h->model_version = model_version;
	if (g->n_inputs)
		memcpy(h->inputs, inputs, g->n_inputs * sizeof *inputs);
	if (g->n_outputs)
		memcpy(h->outputs, outputs, g->n_outputs * sizeof *outputs);
	h->device_index = -1;
	h->numa_node = -1;
	/* Release pairs with the acquire load of magic in swarm_seg_map's callers: whoever
	 * sees the magic sees an initialised header. */
	__atomic_store_n(&h->magic, SWARM_SEG_MAGIC, __ATOMIC_RELEASE);
	*base_out = base;
	return fd;

err_close:
	err = -errno;
	close(fd);
	return err;
}

int swarm_seg_map(int fd, uint64_t bytes, void **base_out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (bytes < SWARM_SEG_HEADER_BYTES || (uint64_t)st.st_size < bytes)
		return -EINVAL;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	/* Without F_SEAL_SHRINK the other side could truncate the file and fault us. */
	if (!(seals & F_SEAL_SHRINK))
		return -EPERM;
	void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	*base_out = base;
	return 0;
}
