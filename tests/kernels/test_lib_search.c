/* test_lib_search.c: where the CUDA device finds cuBLAS, cuBLASLt and NCCL
 * (kernels/lib_search.h), on folder trees built here under a temporary root: the layouts of a
 * CUDA toolkit, Debian, PyTorch's CUDA 12 and CUDA 13 wheels, a virtualenv and /opt; the
 * order between them; what a failed search says it tried; and swarm_lib_open loading a real
 * shared object found only by the search, through SWARM_CUDA_LIB_DIR.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/lib_search.h"

static char root[256];

/* mkdir -p root/rel, then an empty file root/rel/name. */
static void put(const char *rel, const char *name)
{
	char path[1024];
	int n = snprintf(path, sizeof path, "%s/%s", root, rel);

	for (char *p = path + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	mkdir(path, 0755);
	snprintf(path + n, sizeof path - (size_t)n, "/%s", name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0, "cannot create %s", path);
	close(fd);
}

/* The path found, relative to root (asserting it was found). */
static const char *found(const char *soname, const char *compiled)
{
	static char path[1024];
	char tried[512] = "";
	int rc = swarm_lib_search(root, soname, compiled, path, sizeof path, tried, sizeof tried);

	cr_assert_eq(rc, 0, "%s not found (%d): tried %s", soname, rc, tried);
	cr_assert_eq(strncmp(path, root, strlen(root)), 0, "%s is outside the root", path);
	return path + strlen(root);
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/swarm-lib-search.XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	/* Only what a test sets: the runner's own environment must not leak into the order. */
	unsetenv("SWARM_CUDA_LIB_DIR");
	unsetenv("VIRTUAL_ENV");
	unsetenv("CONDA_PREFIX");
	setenv("HOME", "/home/nobody", 1);
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(kernels_lib_search, .init = setup, .fini = teardown);

Test(kernels_lib_search, finds_cuda13_wheels_in_dist_packages)
{
	put("usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib", "libcublas.so.13");
	cr_assert_str_eq(found("libcublas.so.13", NULL),
			 "/usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib/libcublas.so.13");
}

Test(kernels_lib_search, finds_cuda12_wheels_and_nccl_in_a_conda_site_packages)
{
	put("opt/conda/lib/python3.11/site-packages/nvidia/cublas/lib", "libcublasLt.so.12");
	put("opt/conda/lib/python3.11/site-packages/nvidia/nccl/lib", "libnccl.so.2");
	cr_assert_str_eq(found("libcublasLt.so.12", NULL),
			 "/opt/conda/lib/python3.11/site-packages/nvidia/cublas/lib/"
			 "libcublasLt.so.12");
	cr_assert_str_eq(found("libnccl.so.2", NULL),
			 "/opt/conda/lib/python3.11/site-packages/nvidia/nccl/lib/libnccl.so.2");
}

Test(kernels_lib_search, finds_a_virtualenv_and_torch_lib)
{
	setenv("VIRTUAL_ENV", "/work/venv", 1);
	put("work/venv/lib/python3.13/site-packages/torch/lib", "libcublas.so.13");
	cr_assert_str_eq(found("libcublas.so.13", NULL),
			 "/work/venv/lib/python3.13/site-packages/torch/lib/libcublas.so.13");
}

Test(kernels_lib_search, finds_a_user_site_and_opt)
{
	put("home/nobody/.local/lib/python3.10/site-packages/nvidia/cu13/lib", "libnccl.so.2");
	cr_assert_str_eq(found("libnccl.so.2", NULL),
			 "/home/nobody/.local/lib/python3.10/site-packages/nvidia/cu13/lib/"
			 "libnccl.so.2");
	put("opt/nvidia-hpc/lib64", "libcublasLt.so.13");
	cr_assert_str_eq(found("libcublasLt.so.13", NULL),
			 "/opt/nvidia-hpc/lib64/libcublasLt.so.13");
}

Test(kernels_lib_search, the_toolkit_and_system_folders_come_before_python)
{
	put("usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib", "libcublas.so.13");
	put("usr/lib/x86_64-linux-gnu", "libcublas.so.13");
	put("usr/lib/aarch64-linux-gnu", "libcublas.so.13");
	char sys[256];
	snprintf(sys, sizeof sys, "%s", found("libcublas.so.13", NULL));
	cr_assert(strcmp(sys, "/usr/lib/x86_64-linux-gnu/libcublas.so.13") == 0 ||
			  strcmp(sys, "/usr/lib/aarch64-linux-gnu/libcublas.so.13") == 0,
		  "found %s", sys);
	put("usr/local/cuda/targets/x86_64-linux/lib", "libcublas.so.13");
	put("usr/local/cuda/targets/sbsa-linux/lib", "libcublas.so.13");
	cr_assert_str_neq(found("libcublas.so.13", NULL), sys,
			  "the toolkit's folder must come before the distribution's");
	put("build-machine/cuda/lib", "libcublas.so.13");
	cr_assert_str_eq(found("libcublas.so.13", "/build-machine/cuda/lib"),
			 "/build-machine/cuda/lib/libcublas.so.13",
			 "the build's own toolkit folder comes before the usual ones");
}

Test(kernels_lib_search, swarm_cuda_lib_dir_comes_first_in_its_own_order)
{
	put("build-machine/cuda/lib", "libcublas.so.13");
	put("custom/b", "libcublas.so.13");
	put("custom/c", "libcublas.so.13");
	setenv("SWARM_CUDA_LIB_DIR", "/custom/a:/custom/b:/custom/c", 1);
	cr_assert_str_eq(found("libcublas.so.13", "/build-machine/cuda/lib"),
			 "/custom/b/libcublas.so.13");
}

Test(kernels_lib_search, a_folder_of_that_name_is_not_the_library)
{
	put("usr/local/cuda/lib64/libcublas.so.13", "x");
	char path[512], tried[512];
	cr_assert_eq(swarm_lib_search(root, "libcublas.so.13", NULL, path, sizeof path, tried,
				      sizeof tried),
		     -ENOENT);
}

Test(kernels_lib_search, a_failed_search_says_where_it_looked)
{
	put("usr/local/lib/python3.12/dist-packages/numpy", "x");
	put("usr/local/lib/python3.12/dist-packages/nvidia/cu13/lib", "libcudart.so.13");
	char path[512] = "unchanged", tried[1024] = "";
	int rc = swarm_lib_search(root, "libcublas.so.13", "/build-machine/cuda/lib", path,
				  sizeof path, tried, sizeof tried);
	cr_assert_eq(rc, -ENOENT);
	cr_assert_str_empty(path);
	cr_assert_not_null(strstr(tried, "SWARM_CUDA_LIB_DIR (unset)"), "tried: %s", tried);
	cr_assert_not_null(strstr(tried, "/build-machine/cuda/lib"), "tried: %s", tried);
	cr_assert_not_null(strstr(tried, "/usr/local/cuda/lib64"), "tried: %s", tried);
	cr_assert_not_null(strstr(tried, "1 Python site-packages folders"), "tried: %s", tried);
	cr_assert_null(strstr(tried, root), "the root is not part of the story: %s", tried);
}

Test(kernels_lib_search, a_short_tried_buffer_is_cut_with_dots)
{
	char path[512], tried[24];
	cr_assert_eq(swarm_lib_search(root, "libcublas.so.13", NULL, path, sizeof path, tried,
				      sizeof tried),
		     -ENOENT);
	cr_assert_eq(strlen(tried), sizeof tried - 1);
	cr_assert_str_eq(tried + sizeof tried - 4, "...");
}

Test(kernels_lib_search, bad_arguments_are_einval)
{
	char path[64];
	cr_assert_eq(swarm_lib_search(root, "lib/x.so", NULL, path, sizeof path, NULL, 0), -EINVAL);
	cr_assert_eq(swarm_lib_search(root, "", NULL, path, sizeof path, NULL, 0), -EINVAL);
	cr_assert_eq(swarm_lib_search(root, NULL, NULL, path, sizeof path, NULL, 0), -EINVAL);
	cr_assert_eq(swarm_lib_search(root, "libx.so", NULL, NULL, 0, NULL, 0), -EINVAL);
}

Test(kernels_lib_search, a_path_too_long_for_the_buffer_is_enametoolong)
{
	put("usr/local/cuda/lib64", "libcublas.so.13");
	char path[16];
	cr_assert_eq(swarm_lib_search(root, "libcublas.so.13", NULL, path, sizeof path, NULL, 0),
		     -ENAMETOOLONG);
}

/* swarm_lib_open on the real machine: a shared object (the example backend, renamed) that
 * is on no loader path is found through SWARM_CUDA_LIB_DIR and loaded, and says so. */
Test(kernels_lib_search, open_loads_what_only_the_search_finds)
{
	char cmd[1024], where[1024], err[1024];
	put("dir", "placeholder");
	snprintf(cmd, sizeof cmd, "cp '%s/libswarm_example_backend.so' '%s/dir/libswarm-fake.so.7'",
		 SWARM_LIB_DIR, root);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_null(dlopen("libswarm-fake.so.7", RTLD_NOW | RTLD_NOLOAD));

	void *h = swarm_lib_open("libswarm-fake.so.7", NULL, where, sizeof where, err, sizeof err);
	cr_assert_null(h, "found without being anywhere it looks");
	cr_assert_not_null(strstr(err, "cannot load libswarm-fake.so.7"), "err: %s", err);
	cr_assert_not_null(strstr(err, "SWARM_CUDA_LIB_DIR (unset)"), "err: %s", err);

	snprintf(cmd, sizeof cmd, "%s/dir", root);
	setenv("SWARM_CUDA_LIB_DIR", cmd, 1);
	h = swarm_lib_open("libswarm-fake.so.7", NULL, where, sizeof where, err, sizeof err);
	cr_assert_not_null(h, "err: %s", err);
	cr_assert_not_null(dlsym(h, "swarm_backend_entry"), "not the example backend");
	cr_assert_not_null(strstr(where, "/dir/libswarm-fake.so.7 (searched"), "where: %s", where);
	dlclose(h);
}

Test(kernels_lib_search, open_reports_a_library_on_the_loader_path_as_such)
{
	char where[1024] = "", err[256] = "";
	void *h = swarm_lib_open("libm.so.6", NULL, where, sizeof where, err, sizeof err);
	cr_assert_not_null(h, "err: %s", err);
	cr_assert_not_null(strstr(where, "libm.so.6 (the loader's path)"), "where: %s", where);
	dlclose(h);
}
