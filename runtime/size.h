/* size.h: sizes as people write them on command lines and in files ("512M", "80G"): swarmd's
 * memory options and swarm-sim's models files read them alike. */
#ifndef SWARM_RUNTIME_SIZE_H
#define SWARM_RUNTIME_SIZE_H

#include <stdint.h>

/* Parses s: decimal digits, then optionally one of K, M, G or T (powers of 1024), nothing
 * else. Returns 0 with *out set, or -EINVAL (empty, a sign, another suffix, trailing text, or
 * more than 64 bits) with *out untouched. Thread-safe. */
int swarm_size_parse(const char *s, uint64_t *out);

#endif /* SWARM_RUNTIME_SIZE_H */
