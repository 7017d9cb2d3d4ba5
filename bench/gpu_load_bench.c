/* gpu_load_bench.c: swarm-gpu-bench's load section (gpu_bench.h): a safetensors file of at
 * least 4 GiB (f16 tensors) written once, then loaded as the worker loads one to a GPU (a blob
 * reader feeding the CUDA device's upload_stream) in every mode, warm and cold, against
 * safetensors.torch.load_file(..., device="cuda") run by bench/gpu_load_torch.py. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/gpu_bench.h"
#include "kernels/cuda/gpu_bench.h"
#include "kernels/cuda/probe.h"
#include "kernels/device.h"
#include "registry/blob_reader.h"
#include "registry/loader.h"
#include "runtime/device_weights.h"
#include "registry/safetensors.h"

/* ---- the model file ------------------------------------------------------------------------ */

/* Writes (or reuses, when it parses and has the size) path: gib * 4 f16 tensors of 256 MiB.
 * Each tensor is a view of one random buffer at its own 8-byte shift, so that no two are the
 * same bytes and the compare after an upload sees a misplaced tensor, in 256 MiB of memory. */
static int model_write(const char *path, int gib)
{
	uint32_t n = (uint32_t)gib * 4;
	size_t pool_bytes = GB_TENSOR_BYTES + (size_t)n * 8;
	struct swarm_st_write_tensor t[GB_MAX_TENSORS];
	static const int64_t shape[2] = { GB_TENSOR_ROWS, GB_TENSOR_COLS };
	static char names[GB_MAX_TENSORS][32];
	uint16_t *pool;
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct stat st;
	int rc;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size > (uint64_t)n * GB_TENSOR_BYTES) {
		printf("model: reusing %s (%.2f GiB)\n", path, (double)st.st_size / (1 << 30));
		return 0;
	}
	pool = malloc(pool_bytes);
	if (!pool)
		return -ENOMEM;
	/* Finite f16 values in about [-2, 2] (exponent 1..15), never zeros, NaN or Inf. */
	for (size_t i = 0; i < pool_bytes / 2; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		pool[i] = (uint16_t)((x & 0x83ff) | ((1 + (x >> 16) % 15) << 10));
	}
	for (uint32_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "layers.%u.weight", i);
		t[i] = (struct swarm_st_write_tensor){ names[i], SWARM_ST_F16, 2, shape,
						       (const char *)pool + (size_t)i * 8 };
	}
	printf("model: writing %s (%u f16 tensors of %zu MiB) ...\n", path, n,
	       GB_TENSOR_BYTES >> 20);
	fflush(stdout);
	double t0 = gb_now_s();
	rc = swarm_st_write(path, t, n);
	free(pool);
	if (rc == 0)
		printf("model: written in %.1f s\n", gb_now_s() - t0);
	return rc;
}

/* Writes the model, maps it and parses it with the registry's parser: what --write-only runs,
 * so that the file is checked on a machine without a GPU. */
int gb_model_check(const struct gb_opts *o)
{
	struct swarm_st_file st = { 0 };
	char path[PATH_MAX], err[256] = "";
	struct stat sb;
	void *map;
	int fd, rc;

	snprintf(path, sizeof path, "%s/swarm-gpu-bench-%dg.safetensors", o->dir, o->gib);
	rc = model_write(path, o->gib);
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0)
		return -errno;
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	rc = swarm_st_parse(map, (size_t)sb.st_size, &st, err, sizeof err);
	if (rc)
		fprintf(stderr, "swarm-gpu-bench: %s: %s\n", path, err);
	else
		printf("model: %s parses: %u tensors, %.2f GiB of data from offset %llu\n", path,
		       st.n_tensors, (double)(st.file_bytes - st.data_offset) / (1 << 30),
		       (unsigned long long)st.data_offset);
	swarm_st_free(&st);
	munmap(map, (size_t)sb.st_size);
	if (!o->keep)
		unlink(path);
	return rc;
}

/* One load through swarm, as the loader makes it: a fresh read-only mapping, the parser, a
 * blob reader in mode (with sha: verifying as it reads), the data region streamed with
 * swarm_weights_stream, the compare. *seconds covers open to the bytes on the device (and the
 * hash checked); *bytes_out the data region's size once it is known (left as it was before
 * that: rows made from it must not read 0 after a failed open); *used is the mode that ran (a
 * fallback shows, and note says why); on failure note says what failed. */
static int load_swarm_once(struct swarm_device *d, const char *path, int mode, unsigned threads,
			   const char *sha, void *dev, size_t cap, double *seconds,
			   uint64_t *bytes_out, int *used, char *note, size_t note_len)
{
	struct swarm_blob_reader_opts ro = { .mode = mode, .threads = threads, .sha256 = sha };
	struct swarm_blob_reader *r = NULL;
	struct swarm_st_file st = { 0 };
	char err[256] = "";
	struct stat sb;
	void *map = MAP_FAILED;
	int fd, rc;
	double t0 = gb_now_s();

	*seconds = 0;
	*used = mode;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		rc = -errno;
		goto out;
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	rc = swarm_st_parse(map, (size_t)sb.st_size, &st, err, sizeof err);
	if (rc == 0)
		rc = swarm_blob_reader_open(path, map, (uint64_t)sb.st_size, &ro, &r, err,
					    sizeof err);
	if (rc) {
		fprintf(stderr, "swarm-gpu-bench: %s: %s\n", path, err);
		snprintf(note, note_len, "%s", err);
		goto out;
	}
	size_t n = (size_t)(st.file_bytes - st.data_offset);
	if (n > cap) {
		rc = -EFBIG;
		goto out;
	}
	rc = swarm_weights_stream(d, r, dev, map, st.data_offset, n);
	if (rc == 0 && d->i->synchronize)
		rc = d->i->synchronize(d);
	if (rc == 0)
		rc = swarm_blob_reader_finish(r);
	*seconds = gb_now_s() - t0;
	*bytes_out = n;
	*used = swarm_blob_reader_mode(r);
	if (*swarm_blob_reader_note(r))
		printf("  reader: %s\n", swarm_blob_reader_note(r));
	if (*used != mode)
		snprintf(note, note_len, "%s", swarm_blob_reader_note(r));
	if (rc && *swarm_blob_reader_error(r)) {
		fprintf(stderr, "swarm-gpu-bench: %s\n", swarm_blob_reader_error(r));
		snprintf(note, note_len, "%s", swarm_blob_reader_error(r));
	} else if (rc) {
		snprintf(note, note_len, "%s: %s", strerror(-rc), swarm_cuda_last_error());
	}
	if (rc == 0 && (rc = swarm_cuda_bench_compare(dev, (const char *)map + st.data_offset, n)))
		snprintf(note, note_len, "%s",
			 rc == -EBADMSG ? "the bytes on the GPU differ" : swarm_cuda_last_error());
out:
	swarm_blob_reader_close(r);
	swarm_st_free(&st);
	if (map != MAP_FAILED)
		munmap(map, (size_t)sb.st_size);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Drops path from the page cache (written back first, then POSIX_FADV_DONTNEED: no root
 * needed, works while nothing maps it) and returns the fraction still resident. */
static double drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	double left = 1.0;

	if (fd < 0)
		return left;
	fsync(fd);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
		size_t pages = ((size_t)sb.st_size + 4095) / 4096, in = 0;
		unsigned char *vec = malloc(pages);
		void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (vec && map != MAP_FAILED && mincore(map, (size_t)sb.st_size, vec) == 0) {
			for (size_t i = 0; i < pages; i++)
				in += vec[i] & 1;
			left = (double)in / (double)pages;
		}
		if (map != MAP_FAILED)
			munmap(map, (size_t)sb.st_size);
		free(vec);
	}
	close(fd);
	return left;
}

/* Starts the torch script over path in a child of its own process group, its stdout and
 * stderr into a pipe whose read end is *fd. The child's LD_LIBRARY_PATH is
 * $SWARM_HOST_LD_LIBRARY_PATH where that is set (device-env.sh saves the path as it was before
 * it put the bundled Debian libraries first, which must not shadow PyTorch's own). Returns the
 * child's pid, or -1 with skip saying why. */
static pid_t gb_torch_start(const struct gb_opts *o, const char *path, int *fd, char *skip,
			    size_t len)
{
	char loads[16];
	int fds[2];
	pid_t pid;

	snprintf(loads, sizeof loads, "%d", o->loads);
	if (pipe2(fds, O_CLOEXEC) != 0) {
		snprintf(skip, len, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		snprintf(skip, len, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		const char *host = getenv("SWARM_HOST_LD_LIBRARY_PATH");
		setpgid(0, 0);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		if (host && *host)
			setenv("LD_LIBRARY_PATH", host, 1);
		else if (host)
			unsetenv("LD_LIBRARY_PATH");
		execlp(o->python, o->python, o->torch, path, loads, (char *)NULL);
		dprintf(STDOUT_FILENO, "skipped: cannot run %s: %s\n", o->python, strerror(errno));
		_exit(0);
	}
	setpgid(pid, pid); /* also here: the kill below must not race the child's own call */
	close(fds[1]);
	*fd = fds[0];
	return pid;
}

/* Echoes the script's lines from fd until it closes it, or until deadline (then returns 1,
 * else 0): each "torch_load seconds=S" into s (*n of them, at most 16), a "skipped: WHY" into
 * skip. */
static int gb_torch_read(int fd, double deadline, double *s, int *n, char *skip, size_t len)
{
	char line[512];
	size_t have = 0;

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		double left = deadline - gb_now_s();
		if (left <= 0)
			return 1;
		int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t got = read(fd, line + have, sizeof line - 1 - have);
		if (got <= 0)
			return 0;
		have += (size_t)got;
		line[have] = '\0';
		/* Whole lines as they come; a line longer than the buffer is taken as it is. */
		char *nl;
		while ((nl = strchr(line, '\n')) || have == sizeof line - 1) {
			size_t l = nl ? (size_t)(nl - line) + 1 : have;
			double sec;
			char keep = line[l];
			line[l] = '\0';
			printf("  torch: %s%s", line, nl ? "" : "\n");
			if (sscanf(line, "torch_load seconds=%lf", &sec) == 1 && *n < 16)
				s[(*n)++] = sec;
			else if (strncmp(line, "skipped: ", 9) == 0)
				snprintf(skip, len, "%.*s", (int)strcspn(line + 9, "\n"), line + 9);
			line[l] = keep;
			memmove(line, line + l, have - l + 1);
			have -= l;
		}
	}
}

/* The torch baseline: runs the script over path in a child of its own (its process group,
 * killed whole after o->torch_timeout seconds), each of its lines echoed as it comes; it
 * prints "torch_load seconds=S bytes=B" a load, or "skipped: WHY". Returns the median of the
 * loads it printed (some count when it timed out after them), and in skip how many; 0 when
 * none, and in skip why. */
double gb_load_torch(const struct gb_opts *o, const char *path, char *skip, size_t len)
{
	double s[16];
	int n = 0, fd, status = 0, timed_out;
	pid_t pid;

	if (!o->torch) {
		snprintf(skip, len, "no --torch script given");
		return 0;
	}
	if (access(o->torch, R_OK) != 0) {
		snprintf(skip, len, "the torch script %s: %s", o->torch, strerror(errno));
		return 0;
	}
	pid = gb_torch_start(o, path, &fd, skip, len);
	if (pid < 0)
		return 0;
	snprintf(skip, len, "the script printed no result");
	timed_out = gb_torch_read(fd, gb_now_s() + o->torch_timeout, s, &n, skip, len);
	close(fd);
	if (timed_out) {
		kill(-pid, SIGKILL);
		printf("  torch: killed after %d s (--torch-timeout)\n", o->torch_timeout);
	}
	fflush(stdout);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n == 0) {
		if (timed_out)
			snprintf(skip, len, "the script timed out after %d s", o->torch_timeout);
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			snprintf(skip, len, "the script failed (status %d)", status);
		return 0;
	}
	if (timed_out)
		snprintf(skip, len, "killed after %d s: the median of the %d load(s) it printed",
			 o->torch_timeout, n);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		snprintf(skip, len, "median of %d load(s); the script then failed (status %d)", n,
			 status);
	else
		snprintf(skip, len, "median of %d load(s)", n);
	return gb_median(s, n);
}

/* One load case: a reader mode, with or without verification. */
struct gb_load_case {
	int mode;
	int verify;     /* with the blob's SHA-256 checked as it is read */
	double seconds; /* median; 0 when not measured */
	int used;       /* the mode that ran */
	int rc;         /* 0, or why it was not measured */
	char note[192]; /* the reader's note of a fallback, or the failure */
	struct gb_row *row;
};

/* Runs o->loads loads of one case; prints each. Returns 0 or -errno. */
static int load_case(const struct gb_opts *o, struct swarm_device *d, const char *path,
		     const char *sha, void *dev, size_t cap, struct gb_load_case *c,
		     uint64_t *bytes)
{
	unsigned threads = swarm_load_default_threads();
	double s[16];
	int rc = 0;

	/* One cold load: it reads 4 GiB from a disk of unknown speed. */
	const int loads = c->mode == SWARM_LOAD_DIRECT ? 1 : o->loads;

	for (int i = 0; i < loads; i++) {
		double left = c->mode == SWARM_LOAD_DIRECT ? drop_cache(path) : -1;
		rc = load_swarm_once(d, path, c->mode, threads, c->verify ? sha : NULL, dev, cap,
				     &s[i], bytes, &c->used, c->note, sizeof c->note);
		printf("load swarm %s%s (%u threads) #%d: %.3f s, %.2f GB/s",
		       swarm_load_mode_name(c->mode), c->verify ? "+verify" : "", threads, i + 1,
		       s[i], s[i] > 0 ? (double)*bytes / s[i] / 1e9 : 0.0);
		if (left >= 0)
			printf(", %.0f%% resident before", 100 * left);
		if (c->used != c->mode)
			printf(", ran as %s", swarm_load_mode_name(c->used));
		printf("%s%s\n", rc ? ": FAILED " : "",
		       rc ? (rc == -EBADMSG ? "bytes differ" : strerror(-rc)) : "");
		if (rc)
			return rc;
	}
	c->seconds = gb_median(s, loads);
	return 0;
}

/* The SHA-256 of path's mapping, timed: what the old loader paid before any upload. */
static int hash_file(const char *path, char sha[65])
{
	double t0 = gb_now_s();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	void *map = fd >= 0 && fstat(fd, &sb) == 0 ?
			    mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0) :
			    MAP_FAILED;

	if (fd >= 0)
		close(fd);
	if (map == MAP_FAILED)
		return -errno;
	swarm_sha256_hex(map, (size_t)sb.st_size, sha);
	munmap(map, (size_t)sb.st_size);
	printf("sha256 of the mapping (one thread): %.3f s, %.2f GB/s\n", gb_now_s() - t0,
	       (double)sb.st_size / (gb_now_s() - t0) / 1e9);
	return 0;
}

/* Fills a measured case's row: its figure, its share of the pinned h2d, and (th > 0) its
 * speed-up over torch; a case that fell back says so as "unsupported here". */
static void load_row_fill(struct gb_load_case *c, uint64_t bytes, double pinned, double th)
{
	struct gb_row *r = c->row;
	double gbps = c->seconds > 0 ? (double)bytes / c->seconds / 1e9 : 0;
	char pin[48] = "80% pinned n/a (no h2d figure)";

	snprintf(r->what, sizeof r->what, "load %.1f GiB %s%s%s", (double)bytes / (1 << 30),
		 swarm_load_mode_name(c->mode), c->verify ? "+verify" : "",
		 c->mode == SWARM_LOAD_DIRECT ? " (cold)" : "");
	if (c->rc) {
		snprintf(r->figure, sizeof r->figure, "FAILED");
		snprintf(r->verdict, sizeof r->verdict, "FAILED: %.86s", c->note);
		return;
	}
	snprintf(r->figure, sizeof r->figure, "%.3f s, %.2f GB/s", c->seconds, gbps);
	if (pinned > 0)
		snprintf(pin, sizeof pin, "80%% pinned %s",
			 gbps >= GB_LOAD_TARGET_OF_PINNED * pinned ? "MET" : "MISSED");
	if (pinned > 0 && th > 0)
		snprintf(r->baseline, sizeof r->baseline, "%.0f%% of pinned %.2f; %.2fx torch",
			 100 * gbps / pinned, pinned, th / c->seconds);
	else if (pinned > 0)
		snprintf(r->baseline, sizeof r->baseline, "%.0f%% of pinned %.2f GB/s",
			 100 * gbps / pinned, pinned);
	else if (th > 0)
		snprintf(r->baseline, sizeof r->baseline, "%.2fx torch", th / c->seconds);
	if (c->used != c->mode)
		snprintf(r->verdict, sizeof r->verdict, "unsupported here: %.80s", c->note);
	else
		snprintf(r->verdict, sizeof r->verdict, "%s, 3x torch %s", pin,
			 th > 0 ? (th / c->seconds >= GB_LOAD_TARGET_X_TORCH ? "MET" : "MISSED") :
				  "pending");
}

/* Runs cases [from, to) on a CUDA device of their own, which is gone again on return (torch
 * needs the GPU memory between the warm and the cold cases). Each case is measured on its
 * own and its row printed at once: a failed case leaves the others. Returns the first
 * failure's -errno, or 0. */
static int load_cases(const struct gb_opts *o, const char *path, char sha[65],
		      struct gb_load_case *cases, int from, int to, uint64_t *bytes, double pinned)
{
	size_t cap = (size_t)o->gib * 4 * GB_TENSOR_BYTES;
	struct swarm_device *d = NULL;
	void *dev = NULL;
	int rc = swarm_device_cuda_create(0, &d), first = 0;

	if (rc)
		fprintf(stderr, "swarm-gpu-bench: swarm_device_cuda_create: %s (%s)\n",
			strerror(-rc), swarm_cuda_last_error());
	if (rc == 0 && !(dev = d->i->alloc(d, cap))) {
		rc = -ENOMEM;
		fprintf(stderr, "swarm-gpu-bench: alloc %zu on the GPU: %s\n", cap,
			swarm_cuda_last_error());
	}
	char why[160] = "";
	if (rc)
		snprintf(why, sizeof why, "no CUDA device for the loads: %s",
			 swarm_cuda_last_error());
	for (int k = from; k < to; k++) {
		struct gb_load_case *c = &cases[k];
		c->row = gb_row_add("load");
		c->rc = rc;
		if (c->rc)
			snprintf(c->note, sizeof c->note, "%s", why);
		if (!c->rc && c->verify && !sha[0] && (c->rc = hash_file(path, sha)))
			snprintf(c->note, sizeof c->note, "hashing the file: %s", strerror(-c->rc));
		if (!c->rc && (c->rc = load_case(o, d, path, sha, dev, cap, c, bytes)) &&
		    !c->note[0])
			snprintf(c->note, sizeof c->note, "%s (%s)", strerror(-c->rc),
				 swarm_cuda_last_error());
		if (c->used != c->mode && !c->rc)
			printf("unsupported here: %s\n", c->note);
		load_row_fill(c, *bytes, pinned, 0);
		gb_row_print(c->row);
		if (c->rc && !first)
			first = c->rc;
	}
	if (dev)
		d->i->free(d, dev);
	if (d)
		d->i->destroy(d);
	return first;
}

/* Makes path ready to load: 1 (a "skipped" row printed) when o->dir has no room for it, or
 * the model written (or reused) and 0, or -errno (a FAILED row printed). */
static int gb_load_file(const struct gb_opts *o, const char *path, size_t cap)
{
	struct statvfs vfs;
	int rc;

	if (statvfs(o->dir, &vfs) == 0 &&
	    (double)vfs.f_bavail * vfs.f_frsize < (double)cap * 1.05 && access(path, R_OK) != 0) {
		struct gb_row *r = gb_row_add("load swarm");
		snprintf(r->figure, sizeof r->figure, "skipped");
		snprintf(r->verdict, sizeof r->verdict, "%s has under %.1f GiB free", o->dir,
			 (double)cap * 1.05 / (1 << 30));
		gb_row_print(r);
		return 1;
	}
	rc = model_write(path, o->gib);
	if (rc) {
		struct gb_row *r = gb_row_add("load swarm");
		fprintf(stderr, "swarm-gpu-bench: writing %s: %s\n", path, strerror(-rc));
		snprintf(r->figure, sizeof r->figure, "FAILED");
		snprintf(r->verdict, sizeof r->verdict, "writing %.100s: %.60s", path,
			 strerror(-rc));
		gb_row_print(r);
	}
	return rc;
}

/* The torch row: its median load of path (bytes long) in seconds, 0 when skipped. */
static double gb_torch_row(const struct gb_opts *o, const char *path, uint64_t bytes)
{
	char skip[256] = "";
	double th = gb_load_torch(o, path, skip, sizeof skip);
	struct gb_row *tr = gb_row_add("load torch safetensors");

	if (th > 0) {
		snprintf(tr->figure, sizeof tr->figure, "%.3f s, %.2f GB/s", th,
			 (double)bytes / th / 1e9);
		snprintf(tr->baseline, sizeof tr->baseline,
			 "targets: swarm 3x faster, 80%% pinned");
		snprintf(tr->verdict, sizeof tr->verdict, "%.190s", skip);
	} else {
		snprintf(tr->figure, sizeof tr->figure, "skipped");
		snprintf(tr->verdict, sizeof tr->verdict, "%.95s", skip);
	}
	gb_row_print(tr);
	return th;
}

/* The winner among the warm loads (direct reads a cold file: not comparable), as a row that
 * says whether auto's warm pick agrees; none when no warm load ran as asked. */
static void gb_winner_row(const struct gb_load_case *cases, int n_cases, uint64_t bytes)
{
	int best = -1;

	for (int k = 0; k < n_cases; k++) {
		const struct gb_load_case *c = &cases[k];
		if (c->rc == 0 && !c->verify && c->used == c->mode &&
		    c->mode != SWARM_LOAD_DIRECT && (best < 0 || c->seconds < cases[best].seconds))
			best = k;
	}
	if (best < 0)
		return;
	struct gb_row *r = gb_row_add("load winner");
	snprintf(r->what, sizeof r->what, "load winner (warm): %s",
		 swarm_load_mode_name(cases[best].mode));
	snprintf(r->figure, sizeof r->figure, "%.3f s, %.2f GB/s", cases[best].seconds,
		 (double)bytes / cases[best].seconds / 1e9);
	snprintf(r->baseline, sizeof r->baseline, "auto: pread warm, direct cold");
	snprintf(r->verdict, sizeof r->verdict, "%s",
		 cases[best].mode == SWARM_LOAD_PREAD ? "auto's warm pick confirmed" :
							"auto's warm pick LOSES: revisit");
	gb_row_print(r);
}

int gb_bench_load(const struct gb_opts *o, double pinned)
{
	char path[PATH_MAX], sha[65] = "";
	size_t cap = (size_t)o->gib * 4 * GB_TENSOR_BYTES;
	/* The warm cases, then (after torch, which reads the file warm too) the cold one. */
	struct gb_load_case cases[] = {
		{ .mode = SWARM_LOAD_MMAP },     { .mode = SWARM_LOAD_PREAD },
		{ .mode = SWARM_LOAD_REGISTER }, { .mode = SWARM_LOAD_PREAD, .verify = 1 },
		{ .mode = SWARM_LOAD_DIRECT },
	};
	const int n_cases = (int)(sizeof cases / sizeof cases[0]);
	uint64_t bytes = (uint64_t)cap;
	int rc, rc2;

	snprintf(path, sizeof path, "%s/swarm-gpu-bench-%dg.safetensors", o->dir, o->gib);
	rc = gb_load_file(o, path, cap);
	if (rc)
		return rc > 0 ? 0 : rc;
	rc = load_cases(o, path, sha, cases, 0, n_cases - 1, &bytes, pinned);
	double th = gb_torch_row(o, path, bytes);
	/* The warm rows again, now against torch, each on a line of its own. */
	for (int k = 0; k < n_cases - 1 && th > 0; k++)
		if (cases[k].rc == 0) {
			load_row_fill(&cases[k], bytes, pinned, th);
			gb_row_print(cases[k].row);
		}
	rc2 = load_cases(o, path, sha, cases, n_cases - 1, n_cases, &bytes, pinned);
	if (!rc)
		rc = rc2;
	for (int k = 0; k < n_cases; k++) {
		struct gb_load_case *c = &cases[k];
		if (c->rc == 0)
			load_row_fill(c, bytes, pinned, th);
		if (k == n_cases - 1 && c->rc == 0 && th > 0)
			gb_row_print(c->row);
	}
	gb_winner_row(cases, n_cases, bytes);
	if (!o->keep)
		unlink(path);
	return rc;
}
