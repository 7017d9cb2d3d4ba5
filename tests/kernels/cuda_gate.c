/* cuda_gate.c: exits 0 when a CUDA GPU is usable, else prints why and exits 77, the code
 * ctest reports as "skipped" (SKIP_RETURN_CODE). Runs before the GPU tests. */
#include <stdio.h>

#include "kernels/cuda/probe.h"

int main(void)
{
	int count = 0;
	int err = swarm_cuda_device_count(&count);
	if (err || count == 0) {
		printf("SKIP: no CUDA GPU on this machine (%s); the GPU tests did not run\n",
		       swarm_cuda_last_error());
		return 77;
	}
	printf("cuda: %d GPU(s)\n", count);
	return 0;
}
