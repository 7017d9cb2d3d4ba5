/* cuda_gate.c: exits 0 when a CUDA GPU is usable, else prints why and exits 77, the code
 * ctest reports as "skipped" (SKIP_RETURN_CODE). Runs before the GPU tests.
 *
 *   cuda-gate          the gate
 *   cuda-gate --info   also says where cuBLAS, cuBLASLt and NCCL load from (or why they do
 *                      not, and where it looked), with or without a GPU: bench/gpu-check.sh's
 *                      first facts. The exit status is the gate's.
 */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/probe.h"

int main(int argc, char **argv)
{
	int count = 0;
	int info = argc == 2 && strcmp(argv[1], "--info") == 0;

	if (argc > 1 && !info) {
		fprintf(stderr, "usage: cuda-gate [--info]\n");
		return 2;
	}
	if (info) {
		char libs[4096];
		(void)swarm_cuda_libs_describe(libs, sizeof libs);
		fputs(libs, stdout);
	}
	int err = swarm_cuda_device_count(&count);
	if (err || count == 0) {
		printf("SKIP: no CUDA GPU on this machine (%s); the GPU tests did not run\n",
		       swarm_cuda_last_error());
		return 77;
	}
	printf("cuda: %d GPU(s)\n", count);
	return 0;
}
