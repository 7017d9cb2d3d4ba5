/* records.h: the input format of the message fuzzers (fuzz_swarmd_msgs, fuzz_worker_ctl): a
 * sequence of records [kind: 1 byte][len: 2 bytes, little endian][len bytes], the last one cut
 * at the input's end. */
#ifndef SWARM_TESTS_FUZZ_RECORDS_H
#define SWARM_TESTS_FUZZ_RECORDS_H

#include <stddef.h>
#include <stdint.h>

/* Takes the next record from *data (*size bytes left): its kind and bytes (*msg, *len).
 * Returns 0 when no record is left. */
static inline int fuzz_next_record(const uint8_t **data, size_t *size, uint8_t *kind,
				   const uint8_t **msg, size_t *len)
{
	if (*size < 3)
		return 0;
	*kind = (*data)[0];
	*len = (size_t)(*data)[1] | (size_t)(*data)[2] << 8;
	*data += 3;
	*size -= 3;
	if (*len > *size)
		*len = *size;
	*msg = *data;
	*data += *len;
	*size -= *len;
	return 1;
}

#endif /* SWARM_TESTS_FUZZ_RECORDS_H */
