/* safetensors.h: a parser for safetensors files that trusts nothing, and a small writer.
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON (an object mapping each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional
 * "__metadata__" object of string values), then the data. Offsets are relative to the start
 * of the data. The parser checks: N within bounds and the file; valid JSON (jansson); known
 * dtypes; shapes whose element count times the dtype size equals end - begin (no overflow);
 * ranges inside the data, sorted, neither overlapping nor leaving gaps, covering the data
 * exactly; each tensor's absolute offset aligned to its dtype size (so that a CPU can compute
 * on the mapping). A bad file gets an error naming the tensor and the problem.
 */
#ifndef SWARM_REGISTRY_SAFETENSORS_H
#define SWARM_REGISTRY_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SWARM_ST_NAME_MAX 128 /* tensor names, NUL included */
#define SWARM_ST_MAX_DIMS 8
#define SWARM_ST_MAX_TENSORS 65536
#define SWARM_ST_MAX_HEADER (100u << 20) /* as the reference implementation */

/* safetensors dtypes (the spec's names: "F32", "BF16", ...). */
enum swarm_st_dtype {
	SWARM_ST_BOOL = 1,
	SWARM_ST_U8,
	SWARM_ST_I8,
	SWARM_ST_I16,
	SWARM_ST_U16,
	SWARM_ST_F16,
	SWARM_ST_BF16,
	SWARM_ST_I32,
	SWARM_ST_U32,
	SWARM_ST_F32,
	SWARM_ST_F64,
	SWARM_ST_I64,
	SWARM_ST_U64,
	SWARM_ST_F8_E4M3,
	SWARM_ST_F8_E5M2,
};

struct swarm_st_tensor {
	char name[SWARM_ST_NAME_MAX];
	uint32_t dtype; /* an enum swarm_st_dtype */
	uint32_t ndim;  /* 0 for a scalar */
	int64_t shape[SWARM_ST_MAX_DIMS];
	uint64_t offset; /* from the start of the file */
	uint64_t nbytes;
};

struct swarm_st_file {
	uint64_t file_bytes;
	uint64_t data_offset; /* 8 + header length */
	uint32_t n_tensors;
	struct swarm_st_tensor *tensors; /* sorted by offset */
};

/* Parses the whole file in buf (len bytes; typically a read-only mapping). On success fills
 * *out (free it with swarm_st_free) and returns 0; on failure returns -EINVAL (or -ENOMEM)
 * and writes a message naming the tensor and the problem into err. Never reads outside
 * buf. */
int swarm_st_parse(const void *buf, size_t len, struct swarm_st_file *out, char *err,
		   size_t err_len);

void swarm_st_free(struct swarm_st_file *f);

/* The tensor called name, or NULL. */
const struct swarm_st_tensor *swarm_st_find(const struct swarm_st_file *f, const char *name);

/* Spec name ("F32") and byte size of a dtype; NULL and 0 for an unknown one. */
const char *swarm_st_dtype_name(uint32_t dtype);
uint32_t swarm_st_dtype_size(uint32_t dtype);

/* The swarm dtype (SWARM_DTYPE_*) for a safetensors dtype, 0 when swarm computes on none. */
uint32_t swarm_st_to_swarm_dtype(uint32_t st_dtype);

/* One tensor to write. */
struct swarm_st_write_tensor {
	const char *name;
	uint32_t dtype; /* an enum swarm_st_dtype */
	uint32_t ndim;
	const int64_t *shape;
	const void *data; /* element count times dtype size bytes */
};

/* Writes a valid safetensors file: the header padded with spaces so that the data starts at a
 * multiple of 8, then the tensors in the order given with no padding between them (the parser
 * refuses gaps). So each tensor must start at a multiple of its dtype size: give tensors whose
 * byte sizes keep that (widest dtypes first, or all sizes multiples of 8); -EINVAL otherwise,
 * and for a bad or duplicate name, unknown dtype or bad shape. Writes a temporary file beside
 * path, fsyncs it and renames it over path. Returns 0 or -errno. */
int swarm_st_write(const char *path, const struct swarm_st_write_tensor *t, uint32_t n);

#endif /* SWARM_REGISTRY_SAFETENSORS_H */
