/* bench_opts.c: swarm-bench's command line: its help text, which says what every case
 * measures and against what, and the parsing of its options and --cases list. */
#include "bench/swarm_bench.h"
#include "runtime/build_info.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The help text (long: one text printed as written, a paragraph per case; split, it would
 * read as pieces of one message). */
static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: swarm-bench [--cases LIST] [--json FILE] [--quick] [--socket PATH]\n"
		"                   [--minilm DIR] [--objective-us N]\n"
		"       swarm-bench --write-rankers DIR\n"
		"Round trips through swarm's identity model (u8 [-1, 64]), each against a baseline\n"
		"measured in the same run; prints a table with each target and whether it was met.\n"
		"\n"
		"Cases (--cases, a comma list; default all):\n"
		"  spin   64 B request and reply, client and worker both spinning, timed from\n"
		"         alloc to release; against two processes ping-ponging one cache line\n"
		"         each way (target: p50 within 2.5x, p99 under 2 us). Also compared with a\n"
		"         unix socket echo and a TCP loopback echo of the same 64 B (target: at\n"
		"         least 20x faster at p50).\n"
		"  sleep  64 B round trip with client and worker asleep between requests (client\n"
		"         spin 0, swarmd --spin-us 0); against a futex ping-pong of two processes\n"
		"         (target: p50 within 1.2x).\n"
		"  1m     1 MiB tensor round trip (input produced in place; the worker copies it to\n"
		"         the output), timed from submit to completion, in GB/s; against memcpy of\n"
		"         1 MiB (target: at least 0.8x of its bandwidth).\n"
		"  16m    the same with 16 MiB.\n"
		"  load   weight loading of a 1 GiB safetensors file (128 MiB with --quick):\n"
		"         swarm's loader (mmap and first touch of every page; also with its\n"
		"         SHA-256 check) against read() into malloc'd memory, from the page\n"
		"         cache and from disk (pages dropped with posix_fadvise). Reported,\n"
		"         no target on the CPU.\n"
		"  overhead  a real model, the small DLRM-style ranker of\n"
		"         tools/make-ranker-model.py (made in C, published into a registry of its\n"
		"         own, served by a swarmd of its own even with --socket): batch 1 through\n"
		"         swarm (max_batch 1, client and worker spinning) against the same graph\n"
		"         and weights run in this process on the worker's cores, blocks of the two\n"
		"         interleaved (target: at most 2 us added at p50).\n"
		"  minilm  the same measurement on all-MiniLM-L6-v2 at sequence length %d, as\n"
		"         tools/import-minilm.py imported it (--minilm); skipped, saying how to\n"
		"         get it, when it is not there.\n"
		"  batching  %d client threads on this benchmark's cpu, one session and one row a\n"
		"         request each, closed loop, against a swarmd of one device whose worker\n"
		"         has cpu 0 alone; for the small ranker and then the production-shaped one\n"
		"         (tools/make-ranker-model.py --bottom 512,256,64 --top 512,256,1): max_batch\n"
		"         1, then max_batch 16 with queue delay 100 us (the default, reported),\n"
		"         0 and 400 us, max_batch 8 with 100 us and 256 with 50 us, in 3 rounds of\n"
		"         1 s per deploy taken in turn (one round of 0.5 s with --quick) (target:\n"
		"         at least 3x the requests per second at the same p99); with the worker's\n"
		"         busy time per request and the graph's own time per row at 16 rows\n"
		"         against 1 (the most batching can save the worker).\n"
		"  numa   on a machine of two NUMA nodes or more: 64 B round trips from a thread\n"
		"         on node 0 to the device of node 0 against the device of node 1 (each\n"
		"         session opened from its node, so that the balancer placed it there),\n"
		"         blocks interleaved; reported, no target. Skipped, saying so, on one node.\n"
		"  migration  one client doing 64 B round trips while its session is moved\n"
		"         between the two devices of its own swarmd (swarm device drain of the one\n"
		"         serving it, then resume), 20 moves (4 with --quick): the pause of a move\n"
		"         is the longest gap between two completions from the drain to the new\n"
		"         placement plus 20 ms; p50 and max over the moves, against the round trip\n"
		"         with no move. Reported, no target; every request is checked.\n"
		"  scaleup  scale-up from zero: %d runs (3 with --quick), each starting a fresh\n"
		"         swarmd --devices cpu:1 --autoscale --autoscale-idle 0 (its device PARKED,\n"
		"         no worker) on a registry of its own, then timing from just before\n"
		"         swarm_session_open on the small ranker to the release of its first\n"
		"         request (one row, checked against the in-process graph, the client\n"
		"         spinning; the worker on cpu 0 alone, by a one-core --topology): the open\n"
		"         waits for the autoscaler's next tick (100 ms) to wake the device and for\n"
		"         its worker to start; the runs open at phases spread over the tick. p50\n"
		"         and max over the runs (max in the p99 and p99.9 columns), against the\n"
		"         same open and first request on a fresh swarmd whose device is already\n"
		"         ACTIVE (no --autoscale), in the same runs; with swarmd's warm_ms (worker\n"
		"         start to ready) read from its log. Reported, no target.\n"
		"  gpu-identity  the overhead measurement on GPU 0: a node-list model of one\n"
		"         identity node over f32 [-1, 16] (64 B in and out), max_batch 1, served\n"
		"         by a swarmd --devices gpu of its own (one GPU worker, the client's slots\n"
		"         in the segment the worker pinned), against the same manifest's graph on\n"
		"         the CUDA device in this process, called on pinned host buffers (upload,\n"
		"         the nodes, download, synchronise: what the worker does per request);\n"
		"         both sides warmed up past CUDA graph capture before timing (target: at\n"
		"         most 2 us added at p50). Skipped, saying \"skipped: no GPU (<reason>)\",\n"
		"         without a GPU or without CUDA built in.\n"
		"  gpu-ranker  the same with the small ranker of the overhead case.\n"
		"  control  the control plane, on a swarmd of its own with four CPU devices:\n"
		"         opens and closes a second from 8 clients at once (against the same\n"
		"         clients connecting and disconnecting), and `swarm status` from start to\n"
		"         exit with 1,000 sessions open (against none). Reported, no target.\n"
		"  onnx   compute against ONNX Runtime: each model of the --onnx directory's\n"
		"         models.txt (bench/onnx-prepare.sh: all-MiniLM-L6-v2 at 32 and 128\n"
		"         tokens, batch 1 and 8; the production-shaped ranker, batch 1 and 64;\n"
		"         the rapidocr classifier, batch 1 and 8, and detector, batch 1), its\n"
		"         graph built in this process on a one-thread CPU device (weights\n"
		"         prepared once, as a worker's are), against onnxruntime on one intra-op\n"
		"         thread in a python3 child (bench/ort_runner.py; the Python call's few\n"
		"         microseconds are in its times, nothing subtracted) on the same cpu,\n"
		"         blocks interleaved, every output compared first (target: swarm at most\n"
		"         1.0x ONNX Runtime's p50, issue 13's 1.25x tightened; --quick: the\n"
		"         first batch only). First a row of the machine's GEMM peak (GFLOP/s, against\n"
		"         OpenBLAS); each model's note names both sides' slowest op types, from a\n"
		"         profile of each, with GFLOP/s for GEMMs, attention and convs\n"
		"         (SWARM_BENCH_PROFILE=1 prints every op type, =2 every node with its\n"
		"         kernel, shapes and fused activation). Models\n"
		"         marked overhead: batch 1 through a swarmd of its own against the same\n"
		"         graph in process, as the overhead case (target: at most 2 us added).\n"
		"         Then, on a machine of 2 cpus or more, each model at batch 1 with as many\n"
		"         threads on each side (swarm's device, ORT's intra-op; ORT's pool\n"
		"         not spinning between calls, so that it leaves swarm's blocks the\n"
		"         cpus), unpinned; reported, no target.\n"
		"         Skipped, saying why, without the directory or onnxruntime.\n"
		"  python the Python client (python/swarm), run by bench/python/bench_client.py\n"
		"         in a python3 child ($SWARM_BENCH_PYTHON, else python3; python/ and\n"
		"         ${SWARM_CACHE:-~/.cache/swarm}/pylib on its PYTHONPATH): the 64 B identity\n"
		"         round trip with the request API, alloc to release, spinning, against the\n"
		"         C client's same round trip on the same swarmd (target: at most 2 us\n"
		"         added at p50) and against a Python unix socket echo of the same 64 B\n"
		"         (target: at least 20x faster at p50); then session.run() on the small\n"
		"         ranker at batch 1 against the same graph in process, as the overhead\n"
		"         case (reported). Skipped, saying why, when numpy or the package cannot\n"
		"         be imported.\n"
		"  memory  the open of a model its device has resident (issue 18): %d\n"
		"         production-shaped rankers, each from a seed of its own (its own blob), on\n"
		"         a swarmd --devices cpu:1 of their own (the worker on cpu 0 alone). With\n"
		"         --device-memory room for all: the first open of each (open load), then\n"
		"         %d rounds of opens of each, resident and idle (open resident, the\n"
		"         baseline). Then on a swarmd whose budget holds %d of them, opened round\n"
		"         robin %d times over: every open after the first %d evicts the least\n"
		"         recently used idle one (open evict+load; swarmd's log must say so, once\n"
		"         an open). Timed from swarm_session_open to its return (the worker has\n"
		"         the version loaded), each after 250 ms idle, p50 and max (in the p99\n"
		"         columns); each open followed by one request checked against the\n"
		"         in-process graph, not timed. --quick: 4 models, 2 fit, 2 rounds each.\n"
		"         Reported, no target.\n"
		"  memory-zipf  many models under load (issue 18): %d small rankers, each from a\n"
		"         seed of its own, on a swarmd --devices cpu:2 whose --device-memory holds\n"
		"         %d of them a device, against the same load on one whose budgets hold\n"
		"         all (the baseline, same run). %d client threads, %d rounds each (%d\n"
		"         with --quick): a model by Zipf popularity (s=1, ranks reversed halfway),\n"
		"         %d one-row requests to it, each output checked, a 0.5 ms pause; each\n"
		"         client keeps its last %d models' sessions open and closes the least\n"
		"         recently used on a miss. Rows: request latency, open latency, request\n"
		"         with its open, attainment of the latency objective (--objective-us) by\n"
		"         the last, and the loads from swarmd's log (its evictions in the note).\n"
		"         A failed request, an eviction where everything fits or none where it\n"
		"         cannot fails the case. Reported, no target.\n"
		"  all    every case.\n"
		"\n"
		"Options:\n"
		"  --socket PATH  use the swarmd running there (its --spin-us is whatever it is);\n"
		"                 default: start <dir of this binary>/swarmd --devices cpu:2, once\n"
		"                 with --spin-us %u (spin, 1m, 16m) and once with 0 (sleep)\n"
		"  --json FILE    also write one record per case to FILE\n"
		"  --quick        a tenth of the iterations (a smoke run)\n"
		"  --objective-us N  the memory-zipf case's latency objective, a request with its\n"
		"                 open (default %u, swarm-sim's)\n"
		"  --minilm DIR   the imported MiniLM of the minilm case (minilm.safetensors and\n"
		"                 minilm.json from tools/import-minilm.py SOURCE DIR --seq-len %d);\n"
		"                 default $SWARM_MINILM_DIR, else ${SWARM_CACHE:-~/.cache/swarm}/\n"
		"                 minilm-s32\n"
		"  --onnx DIR     the onnx case's models (bench/onnx-prepare.sh DIR makes it);\n"
		"                 default $SWARM_ONNX_BENCH_DIR, else ${SWARM_CACHE:-~/.cache/\n"
		"                 swarm}/onnx-bench\n"
		"  --write-rankers DIR  write the small and the production ranker as\n"
		"                 DIR/<name>/ranker.safetensors and ranker.json (what\n"
		"                 tools/make-ranker-model.py writes with the same sizes) and exit\n"
		"  -h, --help     this text\n"
		"      --version  print swarm-bench's version and exit\n"
		"\n"
		"Placement: the benchmark pins itself to the last cpu and every peer (a baseline's\n"
		"child; the worker of device cpu:0, which gets the session; the batching case's\n"
		"one worker) to cpu 0, so that swarm and its baselines cross the same pair of\n"
		"cores.\n"
		"\n"
		"Latencies are in ns (CLOCK_MONOTONIC, per round trip, warm-up excluded, nearest-rank\n"
		"percentiles). Exit status 0 when the benchmark ran, whether or not targets were met.\n",
		BENCH_MINILM_SEQ, BENCH_MODEL_CLIENTS, BENCH_SCALEUP_RUNS, BENCH_MEMORY_MODELS,
		BENCH_MEMORY_RESIDENT_ROUNDS, BENCH_MEMORY_FIT, BENCH_MEMORY_EVICT_ROUNDS,
		BENCH_MEMORY_FIT, BENCH_ZIPF_MODELS, BENCH_ZIPF_FIT, BENCH_ZIPF_THREADS,
		BENCH_ZIPF_ROUNDS, BENCH_ZIPF_QUICK_ROUNDS, BENCH_ZIPF_REQUESTS, BENCH_ZIPF_CACHE,
		BENCH_DAEMON_SPIN_US, BENCH_ZIPF_OBJECTIVE_US, BENCH_MINILM_SEQ);
}

static int bench_cases_parse(const char *list, unsigned *out)
{
	char buf[128], *save = NULL;
	unsigned cases = 0;

	if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf))
		return -EINVAL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "spin") == 0)
			cases |= BENCH_CASE_SPIN;
		else if (strcmp(t, "sleep") == 0)
			cases |= BENCH_CASE_SLEEP;
		else if (strcmp(t, "1m") == 0)
			cases |= BENCH_CASE_1M;
		else if (strcmp(t, "16m") == 0)
			cases |= BENCH_CASE_16M;
		else if (strcmp(t, "load") == 0)
			cases |= BENCH_CASE_LOAD;
		else if (strcmp(t, "overhead") == 0)
			cases |= BENCH_CASE_OVERHEAD;
		else if (strcmp(t, "batching") == 0)
			cases |= BENCH_CASE_BATCHING;
		else if (strcmp(t, "minilm") == 0)
			cases |= BENCH_CASE_MINILM;
		else if (strcmp(t, "numa") == 0)
			cases |= BENCH_CASE_NUMA;
		else if (strcmp(t, "migration") == 0)
			cases |= BENCH_CASE_MIGRATION;
		else if (strcmp(t, "scaleup") == 0)
			cases |= BENCH_CASE_SCALEUP;
		else if (strcmp(t, "gpu-identity") == 0)
			cases |= BENCH_CASE_GPU_IDENTITY;
		else if (strcmp(t, "gpu-ranker") == 0)
			cases |= BENCH_CASE_GPU_RANKER;
		else if (strcmp(t, "onnx") == 0)
			cases |= BENCH_CASE_ONNX;
		else if (strcmp(t, "control") == 0)
			cases |= BENCH_CASE_CONTROL;
		else if (strcmp(t, "python") == 0)
			cases |= BENCH_CASE_PYTHON;
		else if (strcmp(t, "memory") == 0)
			cases |= BENCH_CASE_MEMORY;
		else if (strcmp(t, "memory-zipf") == 0)
			cases |= BENCH_CASE_ZIPF;
		else if (strcmp(t, "all") == 0)
			cases |= BENCH_CASE_ALL;
		else
			return -EINVAL;
	}
	if (!cases)
		return -EINVAL;
	*out = cases;
	return 0;
}

/* --objective-us: microseconds above 0, into *us. */
static int bench_objective_parse(const char *arg, uint64_t *us)
{
	char *end;

	errno = 0;
	*us = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || *us == 0 || *us > UINT64_MAX / 1000) {
		fprintf(stderr, "swarm-bench: bad --objective-us '%s' (microseconds, above 0)\n",
			arg);
		return -EINVAL;
	}
	return 0;
}

int bench_opts_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longs[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", required_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "cases", required_argument, NULL, 'c' },
		{ "minilm", required_argument, NULL, 'm' },
		{ "onnx", required_argument, NULL, 'o' },
		{ "write-rankers", required_argument, NULL, 'w' },
		{ "objective-us", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*o = (struct bench_opts){ .cases = BENCH_CASE_ALL,
				  .n = bench_full_counts,
				  .objective_us = BENCH_ZIPF_OBJECTIVE_US };
	while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (ch) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'm':
			o->minilm = optarg;
			break;
		case 'o':
			o->onnx = optarg;
			break;
		case 'w':
			o->write_rankers = optarg;
			break;
		case 'O':
			if (bench_objective_parse(optarg, &o->objective_us))
				return -EINVAL;
			break;
		case 'q':
			o->n = (struct bench_counts){ bench_full_counts.spin / 10,
						      bench_full_counts.sleep / 10,
						      bench_full_counts.socket / 10,
						      bench_full_counts.bw_1m / 10,
						      bench_full_counts.bw_16m / 10 };
			break;
		case 'c':
			if (bench_cases_parse(optarg, &o->cases) != 0) {
				fprintf(stderr,
					"swarm-bench: bad --cases '%s' (a comma list of "
					"spin,sleep,1m,16m,load,overhead,minilm,batching,numa,\n"
					"migration,scaleup,gpu-identity,gpu-ranker,control,onnx,python,\n"
					"memory,memory-zipf,all)\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			bench_usage(stdout);
			return 1;
		case 'v':
			swarm_build_print_version("swarm-bench");
			return 1;
		default:
			bench_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "swarm-bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}
