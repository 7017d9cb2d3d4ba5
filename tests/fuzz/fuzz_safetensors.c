/* fuzz_safetensors.c: libFuzzer target for swarm_st_parse. The input is copied into a buffer
 * of exactly its size so that ASan sees any read past the end; whatever the parser accepts
 * must satisfy the layout it promises (tensors inside the file, sorted, contiguous, aligned,
 * sizes matching shapes), and a refusal must come with a message. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/safetensors.h"

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

static void check_file(const struct swarm_st_file *f, size_t size)
{
	CHECK(f->file_bytes == size);
	CHECK(f->data_offset >= 8 && f->data_offset <= size);
	CHECK(f->n_tensors <= SWARM_ST_MAX_TENSORS);
	CHECK(f->n_tensors == 0 || f->tensors != NULL);
	uint64_t at = f->data_offset;
	for (uint32_t i = 0; i < f->n_tensors; i++) {
		const struct swarm_st_tensor *t = &f->tensors[i];
		size_t name_len = strnlen(t->name, SWARM_ST_NAME_MAX);
		CHECK(name_len > 0 && name_len < SWARM_ST_NAME_MAX);
		uint32_t dsize = swarm_st_dtype_size(t->dtype);
		CHECK(dsize != 0);
		CHECK(t->ndim <= SWARM_ST_MAX_DIMS);
		uint64_t n = dsize;
		for (uint32_t d = 0; d < t->ndim; d++) {
			CHECK(t->shape[d] >= 0);
			CHECK(!__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n));
		}
		CHECK(n == t->nbytes);
		CHECK(t->offset == at); /* sorted and contiguous */
		CHECK(t->offset % dsize == 0);
		CHECK(t->nbytes <= size - t->offset);
		CHECK(swarm_st_find(f, t->name) == t); /* names are unique */
		at = t->offset + t->nbytes;
	}
	CHECK(at == size); /* the tensors cover the data exactly */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);
	struct swarm_st_file f;
	char err[256] = "";
	int rc = swarm_st_parse(buf, size, &f, err, sizeof(err));
	if (rc == 0) {
		check_file(&f, size);
		swarm_st_free(&f);
	} else {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(rc == -ENOMEM || err[0] != '\0');
	}
	free(buf);
	return 0;
}
