/* build_info.h: what this build is (version, client ABI, CUDA) and where an installed swarm
 * keeps the files its programs run (the ONNX importer, the benchmark's ONNX Runtime child).
 * Shared by every program's --version and by the lookups of those files, so that the
 * version is written in one place and an install is found the same way by every program. */
#ifndef SWARM_RUNTIME_BUILD_INFO_H
#define SWARM_RUNTIME_BUILD_INFO_H

#include <stddef.h>

/* Prints the one --version line to stdout, such as "swarmd 0.2.0 (abi 2, cuda yes)": prog,
 * the project's version, SWARM_ABI_VERSION and whether the CUDA device was compiled in. */
void swarm_build_print_version(const char *prog);

/* The path of name, a file swarm ships for its programs, into buf: $env when env names a set
 * variable (the path must then be readable), else PREFIX/share/swarm/name beside the running
 * program (found through /proc/self/exe, so a moved install works), else source_rel in the
 * source tree this build was made from (a program run from its build folder). Returns 0, or
 * -ENOENT with every place looked at in err. */
int swarm_build_data_path(const char *env, const char *name, const char *source_rel, char *buf,
			  size_t len, char *err, size_t err_len);

#endif /* SWARM_RUNTIME_BUILD_INFO_H */
