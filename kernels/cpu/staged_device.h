/* staged_device.h: the staged CPU device, a test device. It computes with the CPU device but
 * keeps memory of its own apart from the caller's, as a GPU does: host_memory is 0, so the
 * graph executor stages every input and output through its buffers, and the worker takes its
 * GPU path (batches copied straight from the clients' slots, swarm_graph_run_parts) on a
 * machine with no GPU. `swarm-worker` uses it when SWARM_WORKER_STAGED=1 and no --gpu is
 * given (docs/devices.md); nothing else should.
 */
#ifndef SWARM_KERNELS_CPU_STAGED_DEVICE_H
#define SWARM_KERNELS_CPU_STAGED_DEVICE_H

#include <stdint.h>

#include "kernels/device.h"

/* Leave upload_many and download_many NULL, so that callers take their piece-by-piece path. */
#define SWARM_STAGED_NO_MANY 1u

/* A staged CPU device over a CPU device of threads threads. Its memory is its own
 * allocations, which it tracks: upload, download, upload_many and download_many are real
 * copies and refuse (-EFAULT) a device side that is not inside one allocation, and run()
 * refuses (-EFAULT) a node any of whose tensors is not in its memory, so a caller that hands
 * it host buffers is caught. No register_host, synchronize, capture or copy_d2d. flags:
 * SWARM_STAGED_*. Returns 0, -EINVAL, -ENOMEM; *out is NULL on failure. */
int swarm_device_staged_cpu_create(int threads, uint32_t flags, struct swarm_device **out);

#endif /* SWARM_KERNELS_CPU_STAGED_DEVICE_H */
