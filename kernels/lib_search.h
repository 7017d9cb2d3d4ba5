/* lib_search.h: where the CUDA device finds the shared libraries it opens with dlopen (cuBLAS,
 * cuBLASLt, NCCL) on a machine whose layout this build cannot know: a CUDA toolkit under
 * /usr/local/cuda, Debian's packages, or only PyTorch's wheels in some Python's site-packages
 * (nvidia/cublas/lib for CUDA 12's wheels, nvidia/cu13/lib for CUDA 13's).
 *
 * Plain C, no CUDA header, so that it is tested on any machine: the search only looks for
 * files; swarm_lib_open loads what it found.
 *
 * The order, first match wins:
 *   1. the dynamic loader's own path (LD_LIBRARY_PATH, ld.so.cache): dlopen by soname
 *      (swarm_lib_open only; swarm_lib_search starts at 2);
 *   2. each folder of $SWARM_CUDA_LIB_DIR (colon-separated): the operator's word;
 *   3. the toolkit folder this build was compiled against (may be absent on the machine);
 *   4. the usual system folders (/usr/local/cuda/lib64, .../targets/<arch>-linux/lib,
 *      /usr/lib/<arch>-linux-gnu, /usr/lib64, /usr/local/lib, /opt/conda/lib);
 *   5. every Python site-packages folder found under $VIRTUAL_ENV, $CONDA_PREFIX, /usr/local,
 *      /usr, /opt/conda, /opt/<name>, $HOME/.local and $HOME/.pyenv/versions/<v>
 *      (lib/python3.<N>/{site,dist}-packages),
 *      and /usr/lib/python3/dist-packages: its nvidia/<name>/lib folders and torch/lib;
 *   6. /opt/<name>/lib and /opt/<name>/lib64.
 */
#ifndef SWARM_KERNELS_LIB_SEARCH_H
#define SWARM_KERNELS_LIB_SEARCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Looks for a file named soname in the folders of steps 2 to 6 above, each prefixed with root
 * ("" or NULL for the machine itself; a test passes a folder it built). compiled_dir is step
 * 3 (NULL: none). On success writes the file's path to path and returns 0; else returns
 * -ENOENT and writes to tried what it searched ("SWARM_CUDA_LIB_DIR (unset), /usr/local/cuda/
 * lib64, ..., 3 site-packages folders"), cut with "..." to fit; tried may be NULL. Returns
 * -ENAMETOOLONG when a path does not fit len. Thread-safe (reads the environment). */
int swarm_lib_search(const char *root, const char *soname, const char *compiled_dir, char *path,
		     size_t len, char *tried, size_t tried_len);

/* dlopen(soname) through the loader's path (step 1), else through swarm_lib_search (root "").
 * Returns the handle (RTLD_NOW | RTLD_LOCAL; it stays the caller's) and writes to where the
 * file it came from and how it was found ("/usr/local/cuda/lib64/libcublas.so.13 (the
 * loader's path)"); NULL on failure, with err saying why and where it looked. where and err
 * may be NULL. Thread-safe as dlopen is. */
void *swarm_lib_open(const char *soname, const char *compiled_dir, char *where, size_t where_len,
		     char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_KERNELS_LIB_SEARCH_H */
