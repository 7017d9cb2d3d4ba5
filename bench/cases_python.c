/* cases_python.c: swarm-bench's python case: the Python client (python/swarm) measured by
 * bench/python/bench_client.py in a python3 child, against baselines of this same run:
 *
 *   python 64B identity  the request API's round trip (request, write the input view,
 *                        submit, wait, read the output view, release), the client spinning,
 *                        on the swarmd of this case; against the C client's same round trip
 *                        (bench_swarm_latency, the spin row's loop) on the same swarmd, half
 *                        of its samples before the Python child and half after, so that a
 *                        drift of the machine falls on both sides.
 *   python vs py socket  the same Python figure against a Python unix socket echo of the
 *                        same 64 B (both ends Python, measured by the same child).
 *   python ranker run()  session.run() on the small ranker at batch 1 against the same graph
 *                        in process: the overhead case's swarmd and in-process baseline,
 *                        with the child run from its client_hook while swarmd still serves.
 *
 * With --socket the 64 B rows use that swarmd (whatever its --spin-us), as the spin row does;
 * the ranker row always serves its own, as the overhead case does.
 *
 * The child speaks on its stdout in lines "result NAME p50=.. p99=.. p999=.. n=.." (ns) and
 * "skip REASON"; everything else it says goes to stderr. Without numpy or the package the
 * rows are reported skipped with the child's reason, never as timings.
 */
#include "bench/swarm_bench.h"
#include "bench/baselines.h"
#include "bench/daemon.h"
#include "bench/model_bench.h"
#include "bench/model_harness.h"

#include <swarm/swarm.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SWARM_BENCH_SOURCE_DIR
#define SWARM_BENCH_SOURCE_DIR "."
#endif

#define PY_CHILD_TIMEOUT_MS (300 * 1000) /* a child that says nothing for this long is killed */
#define PY_OUT_MAX 8192                  /* what the child prints on stdout, at most */

/* Where the child's python, script, package and libswarm are. */
struct py_env {
	const char *python;
	char script[PATH_MAX];
	char pythonpath[3 * PATH_MAX];
	char library[PATH_MAX]; /* "" when the build's libswarm is not beside the binaries */
};

static void py_env_init(struct py_env *p, const struct bench_ctx *ctx)
{
	const char *py = getenv("SWARM_BENCH_PYTHON");
	const char *cache = getenv("SWARM_CACHE"), *home = getenv("HOME"),
		   *old = getenv("PYTHONPATH");
	char pylib[PATH_MAX];
	struct stat st;

	p->python = py && *py ? py : "python3";
	snprintf(p->script, sizeof p->script, "%s/bench/python/bench_client.py",
		 SWARM_BENCH_SOURCE_DIR);
	if (cache && *cache)
		snprintf(pylib, sizeof pylib, "%s/pylib", cache);
	else
		snprintf(pylib, sizeof pylib, "%s/.cache/swarm/pylib", home ? home : "");
	snprintf(p->pythonpath, sizeof p->pythonpath, "%s/python:%s%s%s", SWARM_BENCH_SOURCE_DIR,
		 pylib, old && *old ? ":" : "", old && *old ? old : "");
	/* The libswarm of this build (exe_dir is <build>/bin), unless SWARM_LIBRARY says. */
	p->library[0] = '\0';
	if (!getenv("SWARM_LIBRARY")) {
		if (snprintf(p->library, sizeof p->library, "%s/../lib/libswarm.so",
			     ctx->exe_dir) >= (int)sizeof p->library ||
		    stat(p->library, &st) != 0)
			p->library[0] = '\0';
	}
}

/* Runs the child with args (NULL-terminated, after the script), its stdout into out (NUL
 * terminated). Returns its exit status (0..255), or -errno when it could not run. */
static int py_run(const struct py_env *p, const char *const *args, char *out, size_t len)
{
	const char *argv[24];
	int fd[2], n = 0, status;
	size_t got = 0;
	pid_t pid;

	argv[n++] = p->python;
	argv[n++] = p->script;
	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe2(fd, O_CLOEXEC) != 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fd[0]);
		close(fd[1]);
		return -err;
	}
	if (pid == 0) {
		/* The child dies with swarm-bench, as its swarmd does: an orphan left spinning
		 * would skew every later measurement on the machine. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
			_exit(127);
		dup2(fd[1], STDOUT_FILENO);
		setenv("PYTHONPATH", p->pythonpath, 1);
		setenv("PYTHONDONTWRITEBYTECODE", "1", 1); /* no __pycache__ in the source tree */
		if (p->library[0])
			setenv("SWARM_LIBRARY", p->library, 1);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "swarm-bench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd[1]);
	for (;;) {
		struct pollfd pf = { .fd = fd[0], .events = POLLIN };
		int r = poll(&pf, 1, PY_CHILD_TIMEOUT_MS);
		ssize_t k;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "swarm-bench: %s said nothing for %d s: killed\n",
				p->script, PY_CHILD_TIMEOUT_MS / 1000);
			kill(pid, SIGKILL);
			break;
		}
		k = read(fd[0], out + got, got + 1 < len ? len - 1 - got : 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	out[got] = '\0';
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* The line "result name p50=A p99=B p999=C n=N" of out into *s. 0, or -ENOENT. */
static int py_result(const char *out, const char *name, struct bench_stats *s, size_t *n)
{
	char key[64];
	int k = snprintf(key, sizeof key, "result %s ", name);

	for (const char *at = out; (at = strstr(at, key)) != NULL; at += k) {
		if (at != out && at[-1] != '\n')
			continue;
		if (sscanf(at + k, "p50=%lf p99=%lf p999=%lf n=%zu", &s->p50, &s->p99, &s->p999,
			   n) == 4)
			return 0;
	}
	return -ENOENT;
}

/* The child's "skip REASON" line into why: 1 when there was one. */
static int py_skip(const char *out, char *why, size_t len)
{
	const char *at = strncmp(out, "skip ", 5) == 0 ? out : strstr(out, "\nskip ");

	if (!at)
		return 0;
	at += at == out ? 5 : 6;
	snprintf(why, len, "%.*s", (int)strcspn(at, "\n"), at);
	return 1;
}

static void py_skip_rows(struct bench_report *rep, const char *why)
{
	static const char *const names[] = { "python 64B identity", "python vs py socket echo",
					     "python ranker b1 run()" };

	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		struct bench_row *row = bench_row_add(rep, names[i], "ns");
		row->skipped = true;
		snprintf(row->note, sizeof row->note, "skipped: %s", why);
	}
	fprintf(stderr, "swarm-bench: python case skipped: %s\n", why);
}

/* ---- the 64 B identity ---------------------------------------------------------------- */

struct py_identity {
	struct bench_stats c, py, echo;
	size_t n_c, n_py, n_echo;
	char child[PY_OUT_MAX];
};

static int py_identity_measure(struct bench_ctx *ctx, const struct py_env *p, struct py_identity *f)
{
	struct bench_swarmd d = { 0 };
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	const size_t iters = ctx->o.n.spin, half = iters / 2;
	char n_arg[32], w_arg[32];
	int rc, st;

	if (ctx->o.socket) { /* --socket: its swarmd, whatever its --spin-us */
		rc = swarm_connect(ctx->o.socket, &c);
		if (rc) {
			fprintf(stderr, "swarm-bench: connect to swarmd on %s: %s\n", ctx->o.socket,
				swarm_strerror(rc));
			return rc;
		}
	} else {
		/* The spin case's log name, which swarm-bench removes with its directory. */
		if (snprintf(d.log, sizeof d.log, "%s/swarmd-spin%u.log", ctx->tmp,
			     BENCH_DAEMON_SPIN_US) >= (int)sizeof d.log)
			return -ENAMETOOLONG;
		rc = bench_swarmd_start(&d, ctx->exe_dir, ctx->sock, ctx->devices,
					BENCH_DAEMON_SPIN_US, NULL, NULL, NULL, &c);
		if (rc)
			return rc;
	}
	const char *sock = ctx->o.socket ? ctx->o.socket : ctx->sock;
	bench_progress("C client 64 B, spinning (first half)", half, "round trips");
	rc = bench_session_open(c, 1, 4, BENCH_SPIN_FOREVER_NS, &s);
	if (rc == 0)
		rc = bench_swarm_latency(s, bench_warmup(iters), half, ctx->ns);
	if (rc)
		goto out;

	/* The child's session must land where this one is (cpu:0, the worker's own core), not
	 * on the idle device beside this process: this one goes while the child runs (and the
	 * child reopens until its session's worker is not on its cpu, bench_client.py's
	 * open_apart). */
	swarm_session_close(s);
	s = NULL;
	snprintf(n_arg, sizeof n_arg, "%zu", iters);
	snprintf(w_arg, sizeof w_arg, "%zu", bench_warmup(iters));
	bench_progress("Python client 64 B, spinning; Python unix socket echo", iters,
		       "round trips");
	const char *args[] = { "identity", "--socket", sock,  "--iters",
			       n_arg,      "--warmup", w_arg, NULL };
	st = py_run(p, args, f->child, sizeof f->child);
	if (st != 0) {
		fprintf(stderr, "swarm-bench: %s identity exited with %d\n", p->script, st);
		rc = st < 0 ? st : -ECHILD;
		goto out;
	}
	if (py_result(f->child, "identity", &f->py, &f->n_py) ||
	    py_result(f->child, "echo", &f->echo, &f->n_echo)) {
		fprintf(stderr, "swarm-bench: %s identity printed no result lines:\n%s\n",
			p->script, f->child);
		rc = -EBADMSG;
		goto out;
	}

	bench_progress("C client 64 B, spinning (second half)", iters - half, "round trips");
	rc = bench_session_open(c, 1, 4, BENCH_SPIN_FOREVER_NS, &s);
	if (rc == 0)
		rc = bench_swarm_latency(s, bench_warmup(iters) / 4, iters - half, ctx->ns + half);
	if (rc == 0) {
		f->c = bench_stats_ns(ctx->ns, iters);
		f->n_c = iters;
	}
out:
	if (s)
		swarm_session_close(s);
	if (c)
		swarm_disconnect(c);
	st = bench_swarmd_stop(&d);
	return rc ? rc : st;
}

static void py_identity_rows(struct bench_report *rep, const struct py_identity *f)
{
	struct bench_row *row = bench_row_add(rep, "python 64B identity", "ns");
	const double added = f->py.p50 - f->c.p50;

	row->s = f->py;
	row->base_name = "C client, same swarmd";
	row->b = f->c;
	row->ratio = f->py.p50 / f->c.p50;
	row->target = "added <= 2 us at p50";
	row->met = added <= 2000.0;
	snprintf(row->note, sizeof row->note,
		 "the Python request API adds %.0f ns at p50 and %.0f ns at p99 to the C "
		 "client's round trip (%zu Python, %zu C round trips, request to release, "
		 "both spinning; the C side half before and half after the Python child)",
		 added, f->py.p99 - f->c.p99, f->n_py, f->n_c);

	row = bench_row_add(rep, "python vs py socket echo", "ns");
	row->s = f->py;
	row->base_name = "Python unix socket echo";
	row->b = f->echo;
	row->ratio = f->echo.p50 / f->py.p50;
	row->target = "baseline/swarm >= 20x";
	row->met = row->ratio >= 20.0;
	snprintf(row->note, sizeof row->note,
		 "a Python client and a Python echo server (a child process) over a unix "
		 "stream socket, 64 B each way, %zu round trips",
		 f->n_echo);
}

/* ---- the ranker ------------------------------------------------------------------------ */

struct py_ranker {
	const struct py_env *p;
	struct bench_ctx *ctx;
	struct bench_stats py;
	size_t n_py;
	char child[PY_OUT_MAX];
};

/* Writes each input's sets and the in-process outputs as raw files into dir. */
static int py_write_inputs(const char *dir, const struct mb_inputs *in)
{
	char path[PATH_MAX];

	for (uint32_t i = 0; i <= in->n_in; i++) {
		const void *buf = i < in->n_in ? (const void *)in->in[i] : (const void *)in->ref;
		size_t bytes = i < in->n_in ? (size_t)in->n_sets * in->in_row[i] :
					      (size_t)in->n_sets * in->out_n * sizeof(float);
		FILE *f;
		int k = i < in->n_in ? snprintf(path, sizeof path, "%s/in%u.bin", dir, i) :
				       snprintf(path, sizeof path, "%s/ref.bin", dir);

		if (k >= (int)sizeof path)
			return -ENAMETOOLONG;
		f = fopen(path, "wbe");
		if (!f || fwrite(buf, 1, bytes, f) != bytes) {
			int err = errno ? errno : EIO;
			fprintf(stderr, "swarm-bench: write %s: %s\n", path, strerror(err));
			if (f)
				fclose(f);
			return -err;
		}
		if (fclose(f) != 0)
			return -errno;
	}
	return 0;
}

/* Removes what py_write_inputs wrote, and dir: the run's temporary directory must be empty
 * when swarm-bench removes it. */
static void py_remove_inputs(const char *dir, uint32_t n_in)
{
	char path[PATH_MAX];

	for (uint32_t i = 0; i <= n_in; i++) {
		int k = i < n_in ? snprintf(path, sizeof path, "%s/in%u.bin", dir, i) :
				   snprintf(path, sizeof path, "%s/ref.bin", dir);
		if (k < (int)sizeof path)
			unlink(path);
	}
	rmdir(dir);
}

/* The child's session.run() on model, over the sets written to dir. */
static int py_ranker_child(struct py_ranker *r, const char *sock, const char *model,
			   const char *dir, int n_sets)
{
	char n_arg[32], sets_arg[32];
	int st;

	/* As many calls as the 64 B rows' round trips (a tenth with --quick). */
	snprintf(n_arg, sizeof n_arg, "%zu", r->ctx->o.n.spin);
	snprintf(sets_arg, sizeof sets_arg, "%d", n_sets);
	bench_progress("Python session.run() on the small ranker", r->ctx->o.n.spin, "calls");
	const char *args[] = { "ranker", "--socket", sock,     "--model", model, "--data",
			       dir,      "--sets",   sets_arg, "--iters", n_arg, NULL };
	st = py_run(r->p, args, r->child, sizeof r->child);
	if (st != 0) {
		fprintf(stderr, "swarm-bench: %s ranker exited with %d\n", r->p->script, st);
		return st < 0 ? st : -ECHILD;
	}
	if (py_result(r->child, "ranker", &r->py, &r->n_py)) {
		fprintf(stderr, "swarm-bench: %s ranker printed no result line:\n%s\n",
			r->p->script, r->child);
		return -EBADMSG;
	}
	return 0;
}

/* The overhead case's client_hook: the child's session.run() on the model swarmd serves. */
static int py_ranker_hook(void *arg, const char *sock, const char *model, const void *inputs)
{
	struct py_ranker *r = arg;
	const struct mb_inputs *in = inputs;
	char dir[PATH_MAX];
	int rc;

	const char *tmpdir = getenv("TMPDIR");

	/* A directory of its own: with --socket swarm-bench makes none. */
	if (snprintf(dir, sizeof dir, "%s/swarm-bench-py.XXXXXX",
		     tmpdir && *tmpdir ? tmpdir : "/tmp") >= (int)sizeof dir)
		return -ENAMETOOLONG;
	if (!mkdtemp(dir))
		return -errno;
	rc = py_write_inputs(dir, in);
	if (rc == 0)
		rc = py_ranker_child(r, sock, model, dir, in->n_sets);
	py_remove_inputs(dir, in->n_in);
	return rc;
}

static int py_ranker_measure(struct bench_ctx *ctx, const struct py_env *p,
			     struct bench_report *rep)
{
	struct py_ranker r = { .p = p, .ctx = ctx };
	struct bench_model_opts mo = {
		.exe_dir = ctx->exe_dir,
		.devices = ctx->devices,
		.peer_cpu = ctx->peer_cpu,
		.quick = ctx->o.n.spin < bench_full_counts.spin,
		.client_hook = py_ranker_hook,
		.client_arg = &r,
	};
	struct bench_model_overhead ov;
	int rc = bench_model_overhead_run(&mo, BENCH_MODEL_RANKER, &ov);

	if (rc)
		return rc;
	struct bench_row *row = bench_row_add(rep, "python ranker b1 run()", "ns");
	row->s = r.py;
	row->base_name = "same graph in-process";
	row->b = (struct bench_stats){ ov.inproc.p50, ov.inproc.p99, ov.inproc.p999 };
	row->ratio = row->s.p50 / row->b.p50;
	row->target = NULL; /* reported */
	snprintf(row->note, sizeof row->note,
		 "session.run() (copy in, request, wait, copy out into new arrays) adds %.0f ns "
		 "at p50 to the in-process call (%zu calls); the C client's same request on the "
		 "same swarmd: p50 %.0f ns, p99 %.0f ns (%zu calls); every output equal to the "
		 "in-process one",
		 row->s.p50 - row->b.p50, r.n_py, ov.swarm.p50, ov.swarm.p99, ov.iters);
	return 0;
}

int bench_run_python(struct bench_ctx *ctx, struct bench_report *rep)
{
	struct py_env p;
	char out[PY_OUT_MAX], why[512];
	struct py_identity *f;
	int rc;

	py_env_init(&p, ctx);
	{
		const char *args[] = { "probe", NULL };
		rc = py_run(&p, args, out, sizeof out);
	}
	if (rc != 0 || py_skip(out, why, sizeof why)) {
		if (rc != 0)
			snprintf(why, sizeof why, "%.64s %.300s probe exited with %d%s", p.python,
				 p.script, rc,
				 rc == 127 ? " (the interpreter could not be run: set "
					     "SWARM_BENCH_PYTHON)" :
					     "");
		py_skip_rows(rep, why);
		return 0;
	}
	fprintf(stderr, "swarm-bench: python case: %.*s\n", (int)strcspn(out, "\n"), out);
	f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	rc = py_identity_measure(ctx, &p, f);
	if (rc == 0)
		py_identity_rows(rep, f);
	free(f);
	if (rc == 0)
		rc = py_ranker_measure(ctx, &p, rep);
	return rc;
}
