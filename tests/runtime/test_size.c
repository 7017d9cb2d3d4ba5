/* test_size.c: swarm_size_parse (runtime/size.h), which swarmd's memory options and swarm-sim's
 * models files share. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>

#include "runtime/size.h"

#define assert_u64(a, b)                                                           \
	cr_assert_eq((uint64_t)(a), (uint64_t)(b), "%s = %llu, expected %llu", #a, \
		     (unsigned long long)(a), (unsigned long long)(b))

Test(runtime_size, suffixes_are_powers_of_1024)
{
	uint64_t v = 0;
	cr_assert_eq(swarm_size_parse("3", &v), 0);
	assert_u64(v, 3);
	cr_assert_eq(swarm_size_parse("2K", &v), 0);
	assert_u64(v, 2048);
	cr_assert_eq(swarm_size_parse("5M", &v), 0);
	assert_u64(v, 5ull << 20);
	cr_assert_eq(swarm_size_parse("80G", &v), 0);
	assert_u64(v, 80ull << 30);
	cr_assert_eq(swarm_size_parse("1T", &v), 0);
	assert_u64(v, 1ull << 40);
	cr_assert_eq(swarm_size_parse("0", &v), 0);
	assert_u64(v, 0);
}

Test(runtime_size, malformed_is_einval_and_leaves_out)
{
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1GB", "1g", "1.5G", "G", "18446744073709551616", "16777216T"
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 7;
		cr_assert_eq(swarm_size_parse(bad[i], &v), -EINVAL, "'%s' was taken", bad[i]);
		assert_u64(v, 7);
	}
}
