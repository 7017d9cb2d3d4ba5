/* test_cuda_share.c: shareable GPU memory across processes (kernels/cuda/share_mem.h through
 * the device table's alloc_shared, export_shared, import_shared and free_shared), as two
 * workers on one GPU use it for weights (docs/devices.md, "Shared weights").
 *
 * Two suites. kernels_cuda_share runs everywhere CUDA is built: the CUDA table has the four
 * members and the CPU's has none. kernels_cuda_share_gpu needs a GPU (ctest runs it behind
 * cuda-gate) and skips with the reason where there is none. Its cross-process test starts an
 * exporter with posix_spawn before this process touches CUDA (no CUDA state crosses a fork):
 * the exporter fills an allocation, passes its fd over a socket as swarmd would, and exits;
 * this process maps it, checks the bytes, and checks them again once the exporter is gone.
 *
 * Built a second time with SWARM_SHARE_EXPORTER defined, this file is that exporter
 * (swarm-share-exporter SOCKET_FD BYTES).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"

/* Byte i of the pattern the exporter writes. */
static uint8_t pattern(size_t i) { return (uint8_t)(i * 131u + (i >> 12) + 7u); }

/* 1 when the last CUDA failure is the platform refusing the VMM feature (a sandboxed kernel
 * such as gVisor may export no fd), not a failure of swarm's code: such a case is reported as
 * "unsupported here" (bench/gpu-check.sh counts those apart). */
static int refused_here(void)
{
	const char *e = swarm_cuda_last_error();
	return strstr(e, "CUDA_ERROR_NOT_SUPPORTED") || strstr(e, "CUDA_ERROR_NOT_PERMITTED");
}

/* The exit status of an exporter whose platform refused the VMM calls. */
#define EXPORTER_REFUSED 77

#ifdef SWARM_SHARE_EXPORTER

/* Fills an allocation, sends its fd as a WEIGHTS_SHARE on the socket, waits for one byte,
 * frees everything and exits 0; any failure exits 1 saying why, a refusal of the platform
 * EXPORTER_REFUSED, saying "unsupported here: ...". */
int main(int argc, char **argv)
{
	struct swarm_device *dev = NULL;
	if (argc != 3) {
		fprintf(stderr, "usage: swarm-share-exporter SOCKET_FD BYTES\n");
		return 2;
	}
	int sock = atoi(argv[1]);
	size_t bytes = strtoull(argv[2], NULL, 10);
	int rc = swarm_device_cuda_create(0, &dev);
	if (rc) {
		fprintf(stderr, "exporter: cuda create: %d %s\n", rc, swarm_cuda_last_error());
		return 1;
	}
	uint8_t *host = malloc(bytes);
	void *p = dev->i->alloc_shared(dev, bytes);
	int fd = -1;
	if (!host || !p) {
		fprintf(stderr, "%salloc_shared: %s\n",
			refused_here() ? "unsupported here: " : "exporter: ",
			swarm_cuda_last_error());
		return refused_here() ? EXPORTER_REFUSED : 1;
	}
	for (size_t i = 0; i < bytes; i++)
		host[i] = pattern(i);
	if ((rc = dev->i->upload(dev, p, host, bytes)) || (rc = dev->i->synchronize(dev)) ||
	    (rc = dev->i->export_shared(dev, p, &fd))) {
		fprintf(stderr, "%sfill or export: %d %s\n",
			refused_here() ? "unsupported here: " : "exporter: ", rc,
			swarm_cuda_last_error());
		return refused_here() ? EXPORTER_REFUSED : 1;
	}
	struct swarm_msg_weights m;
	swarm_msg_init(&m.h, SWARM_MSG_WEIGHTS_SHARE, sizeof m, 0);
	m.bytes = bytes;
	if ((rc = swarm_msg_send(sock, &m, sizeof m, &fd, 1))) {
		fprintf(stderr, "exporter: send: %d\n", rc);
		return 1;
	}
	close(fd);
	char c;
	if (read(sock, &c, 1) != 1)
		fprintf(stderr, "exporter: the test went away\n");
	/* Everything of the exporter goes: its mapping, its handle, its context. */
	dev->i->free_shared(dev, p);
	dev->i->destroy(dev);
	free(host);
	return 0;
}

#else /* the tests */

#include <criterion/criterion.h>

#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "registry/safetensors.h"

Test(kernels_cuda_share, cuda_table_has_the_shared_members_and_cpu_none)
{
	const struct swarm_device_i *t = swarm_device_cuda_table();
	cr_assert_not_null(t, "CUDA is built in, yet it has no device table");
	cr_expect_not_null(t->alloc_shared);
	cr_expect_not_null(t->export_shared);
	cr_expect_not_null(t->import_shared);
	cr_expect_not_null(t->free_shared);
	struct swarm_device *cpu = NULL;
	cr_assert_eq(swarm_device_cpu_create(1, &cpu), 0);
	cr_expect_null(cpu->i->alloc_shared);
	cr_expect_null(cpu->i->export_shared);
	cr_expect_null(cpu->i->import_shared);
	cr_expect_null(cpu->i->free_shared);
	cpu->i->destroy(cpu);
}

static void skip_without_gpu(void)
{
	int count = 0;
	if (swarm_cuda_device_count(&count) != 0 || count == 0)
		cr_skip_test("no CUDA GPU on this machine: %s", swarm_cuda_last_error());
}

static struct swarm_device *open_gpu(void)
{
	struct swarm_device *dev = NULL;
	int rc = swarm_device_cuda_create(0, &dev);
	cr_assert_eq(rc, 0, "swarm_device_cuda_create(0): %d: %s", rc, swarm_cuda_last_error());
	return dev;
}

/* Reads bytes of device memory p back and compares them with the pattern. */
static void expect_pattern(struct swarm_device *dev, const void *p, size_t bytes, const char *when)
{
	uint8_t *host = malloc(bytes);
	cr_assert_not_null(host);
	memset(host, 0, bytes);
	int rc = dev->i->download(dev, host, p, bytes);
	if (!rc)
		rc = dev->i->synchronize(dev);
	cr_assert_eq(rc, 0, "%s: download: %d: %s", when, rc, swarm_cuda_last_error());
	for (size_t i = 0; i < bytes; i++)
		cr_assert_eq(host[i], pattern(i), "%s: byte %zu = %u, want %u", when, i, host[i],
			     pattern(i));
	free(host);
}

/* swarm-share-exporter beside this binary (a build folder carried to another machine has
 * other absolute paths), else where this build put it. */
static char *exporter_path(void)
{
	static char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
	char *slash = n > 0 ? memrchr(path, '/', (size_t)n) : NULL;
	if (slash) {
		strcpy(slash, "/swarm-share-exporter");
		if (access(path, X_OK) == 0)
			return path;
	}
	snprintf(path, sizeof path, "%s", SWARM_BIN_DIR "/swarm-share-exporter");
	return path;
}

#define SHARE_BYTES ((size_t)(3u << 20) + 12345u) /* not a multiple of any granularity */

Test(kernels_cuda_share_gpu, import_in_another_process_outlives_the_exporter, .timeout = 120)
{
	skip_without_gpu();
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	/* The exporter first, while this process has no CUDA state of its own. */
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3); /* dup2 clears close-on-exec */
	char bytes_arg[32];
	snprintf(bytes_arg, sizeof bytes_arg, "%zu", SHARE_BYTES);
	char *argv[] = { exporter_path(), "3", bytes_arg, NULL };
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, NULL);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "posix_spawn %s: %s", argv[0], strerror(rc));
	close(sv[1]);

	struct swarm_msg_weights m;
	int fd = -1, nfds = 1;
	int n = swarm_msg_recv(sv[0], &m, sizeof m, &fd, &nfds);
	if (n != (int)sizeof m) {
		int status = 0;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXPORTER_REFUSED)
			cr_skip_test("unsupported here: the exporter's VMM allocation or fd export "
				     "was refused (its stderr says which call)");
	}
	cr_assert_eq(n, (int)sizeof m, "no share from the exporter (recv %d; its stderr says why)",
		     n);
	cr_assert_eq(nfds, 1);
	cr_assert_eq(m.bytes, SHARE_BYTES);

	struct swarm_device *dev = open_gpu();
	void *p = dev->i->import_shared(dev, fd, SHARE_BYTES);
	cr_assert_not_null(p, "import_shared: %s", swarm_cuda_last_error());
	close(fd); /* the mapping holds its own reference */
	expect_pattern(dev, p, SHARE_BYTES, "with the exporter alive");

	cr_assert_eq(write(sv[0], "x", 1), 1);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exporter status %#x", status);
	expect_pattern(dev, p, SHARE_BYTES, "after the exporter freed and exited");

	dev->i->free_shared(dev, p);
	close(sv[0]);
	dev->i->destroy(dev);
}

/* What a broken or hostile peer may send: an fd that is no allocation, a size beyond the
 * allocation. Each is refused (NULL), and a good import of the same fd still works. */
Test(kernels_cuda_share_gpu, import_refuses_a_bad_fd_and_a_larger_size, .timeout = 120)
{
	int rc;
	skip_without_gpu();
	struct swarm_device *dev = open_gpu();
	const size_t bytes = 2u << 20;
	void *p = dev->i->alloc_shared(dev, bytes);
	if (!p && refused_here())
		cr_skip_test("unsupported here: alloc_shared: %s", swarm_cuda_last_error());
	cr_assert_not_null(p, "alloc_shared: %s", swarm_cuda_last_error());
	int fd = -1;
	rc = dev->i->export_shared(dev, p, &fd);
	if (rc && refused_here())
		cr_skip_test("unsupported here: export_shared: %s", swarm_cuda_last_error());
	cr_assert_eq(rc, 0, "export: %s", swarm_cuda_last_error());
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	cr_expect_null(dev->i->import_shared(dev, pipefd[0], bytes), "a pipe was imported");
	cr_expect_null(dev->i->import_shared(dev, 1000, bytes), "a closed fd was imported");
	cr_expect_null(dev->i->import_shared(dev, fd, bytes + (64u << 20)),
		       "a size beyond the allocation was mapped");
	void *q = dev->i->import_shared(dev, fd, bytes);
	cr_expect_not_null(q, "the good import after the bad ones: %s", swarm_cuda_last_error());
	cr_expect_eq(dev->i->export_shared(dev, (char *)p + 256, &fd), -EINVAL,
		     "an address inside, not at the start of, an allocation was exported");
	dev->i->free_shared(dev, q);
	dev->i->free_shared(dev, p);
	close(fd);
	close(pipefd[0]);
	close(pipefd[1]);
	dev->i->destroy(dev);
}

/* free_shared from a thread whose current GPU is another one (GPU 0, made current by a device
 * created there) still waits for the allocation's own GPU before it unmaps: copies queued
 * into the memory finish, and that GPU reports no fault. Needs two GPUs. */
struct free_elsewhere {
	struct swarm_device *dev;
	void *p;
	int rc;
};

static void *free_on_gpu0(void *arg)
{
	struct free_elsewhere *f = arg;
	struct swarm_device *gpu0 = NULL;
	f->rc = swarm_device_cuda_create(0, &gpu0); /* makes GPU 0 current on this thread */
	f->dev->i->free_shared(f->dev, f->p);
	if (gpu0)
		gpu0->i->destroy(gpu0);
	return NULL;
}

Test(kernels_cuda_share_gpu, free_from_a_thread_on_another_gpu_waits_for_its_own, .timeout = 120)
{
	skip_without_gpu();
	int count = 0;
	cr_assert_eq(swarm_cuda_device_count(&count), 0);
	if (count < 2)
		cr_skip_test("needs two GPUs, this machine has %d", count);
	struct swarm_device *dev = NULL;
	int rc = swarm_device_cuda_create(count - 1, &dev);
	cr_assert_eq(rc, 0, "create(%d): %d: %s", count - 1, rc, swarm_cuda_last_error());
	const size_t bytes = 256u << 20;
	void *p = dev->i->alloc_shared(dev, bytes);
	void *q = dev->i->alloc(dev, bytes);
	cr_assert(p && q, "alloc: %s", swarm_cuda_last_error());
	/* Tens of milliseconds of copies into p, still running when free_shared is called. */
	for (int i = 0; i < 128; i++)
		cr_assert_eq(dev->i->copy_d2d(dev, p, q, bytes), 0, "%s", swarm_cuda_last_error());
	struct free_elsewhere f = { dev, p, -1 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, free_on_gpu0, &f), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(f.rc, 0, "create(0): %d", f.rc);
	rc = dev->i->synchronize(dev);
	cr_expect_eq(rc, 0, "the copies into the freed memory faulted: %d: %s", rc,
		     swarm_cuda_last_error());
	dev->i->free(dev, q);
	dev->i->destroy(dev);
}

/* The loader on the GPU: a shareable upload is VMM memory, its fd imports with the plan's size
 * and layout into a second copy handle that reads the same bytes as the file, and that copy
 * stays readable after the first handle is gone. */
Test(kernels_cuda_share_gpu, loader_copy_imports_by_size_and_layout, .timeout = 120)
{
	skip_without_gpu();
	static float a[300], b[77];
	for (int i = 0; i < 300; i++)
		a[i] = (float)i * 0.5f;
	for (int i = 0; i < 77; i++)
		b[i] = -(float)i;
	const int64_t sa[] = { 300 }, sb[] = { 77 };
	const struct swarm_st_write_tensor t[] = { { "a", SWARM_ST_F32, 1, sa, a },
						   { "b", SWARM_ST_F32, 1, sb, b } };
	char dir[] = "/tmp/swarm-test-share-XXXXXX", path[64], err[256];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/w.safetensors", dir);
	cr_assert_eq(swarm_st_write(path, t, 2), 0);
	struct swarm_weights w;
	int rc = swarm_weights_load(path, 0, NULL, 0, &w, err, sizeof err);
	cr_assert_eq(rc, 0, "load: %d: %s", rc, err);
	unlink(path);
	rmdir(dir);

	struct swarm_device *dev = open_gpu();
	struct swarm_dev_weights *ex = NULL, *im = NULL;
	rc = swarm_dev_weights_upload(dev, w.map, &w.st, 1, &ex, NULL, err, sizeof err);
	cr_assert_eq(rc, 0, "upload: %d: %s", rc, err);
	if (swarm_dev_weights_shared(ex) != 1 && refused_here())
		cr_skip_test("unsupported here: the upload fell back to private memory: %s",
			     swarm_cuda_last_error());
	cr_assert_eq(swarm_dev_weights_shared(ex), 1, "not VMM memory: %s",
		     swarm_cuda_last_error());
	int fd = -1;
	cr_assert_eq(swarm_dev_weights_export(ex, &fd), 0, "%s", swarm_cuda_last_error());
	rc = swarm_dev_weights_import(dev, &w.st, fd, swarm_dev_weights_bytes(ex),
				      swarm_dev_weights_layout(ex), &im, err, sizeof err);
	cr_assert_eq(rc, 0, "import: %d: %s", rc, err);
	close(fd);
	swarm_dev_weights_put(ex);

	float got_a[300], got_b[77];
	const void *da = swarm_dev_weights_data(im, &w.st, "a");
	const void *db = swarm_dev_weights_data(im, &w.st, "b");
	cr_assert(da && db);
	cr_assert_eq(dev->i->download(dev, got_a, da, sizeof got_a), 0);
	cr_assert_eq(dev->i->download(dev, got_b, db, sizeof got_b), 0);
	cr_assert_eq(dev->i->synchronize(dev), 0);
	cr_expect_arr_eq(got_a, a, sizeof a);
	cr_expect_arr_eq(got_b, b, sizeof b);
	swarm_dev_weights_put(im);
	swarm_weights_unload(&w);
	dev->i->destroy(dev);
}

#endif /* SWARM_SHARE_EXPORTER */
