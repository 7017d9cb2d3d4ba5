/* share_mem.cu: shareable GPU memory through the CUDA virtual memory API (share_mem.h).
 *
 * Each allocation, exported or imported, is one physical handle mapped at one reserved range
 * of this process's address space; a small table (a mutex and a list: allocations are few
 * and made at load time, never on the request path) remembers the handle and the size by
 * address, since free and export get only the address.
 */
#include "cuda_common.cuh"
#include "share_mem.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* The driver's VMM entry points, looked up once (libcuda is not linked). */
static struct {
	PFN_cuMemGetAllocationGranularity_v10020 granularity;
	PFN_cuMemCreate_v10020 create;
	PFN_cuMemRelease_v10020 release;
	PFN_cuMemAddressReserve_v10020 reserve;
	PFN_cuMemAddressFree_v10020 address_free;
	PFN_cuMemMap_v10020 map;
	PFN_cuMemUnmap_v10020 unmap;
	PFN_cuMemSetAccess_v10020 set_access;
	PFN_cuMemExportToShareableHandle_v10020 export_fd;
	PFN_cuMemImportFromShareableHandle_v10020 import_fd;
	PFN_cuMemGetAllocationPropertiesFromHandle_v10020 props;
	int state; /* 0 not looked up, 1 found, -errno failed */
} drv;

struct shared_alloc {
	struct shared_alloc *next;
	CUdeviceptr ptr;
	size_t size; /* mapped and reserved */
	CUmemGenericAllocationHandle handle;
	int ordinal; /* the GPU it is mapped for: free waits for that one */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_alloc *allocs; /* under lock */

static int lookup(const char *name, void **fn)
{
	cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;

	CUDA_CHECK_RET(cudaGetDriverEntryPointByVersion(name, fn, 12000, cudaEnableDefault, &q));
	if (!*fn || q != cudaDriverEntryPointSuccess) {
		swarm_cuda_set_error("%s: no driver entry point", name);
		return -ENOTSUP;
	}
	return 0;
}

/* Looks the entry points up and makes ordinal current. Returns 0 or -errno. */
static int prepare(int ordinal)
{
	pthread_mutex_lock(&lock);
	if (drv.state == 0) {
		int rc = 0;
#define LOOK(field, name) \
	if (!rc)          \
	rc = lookup(name, (void **)&drv.field)
		LOOK(granularity, "cuMemGetAllocationGranularity");
		LOOK(create, "cuMemCreate");
		LOOK(release, "cuMemRelease");
		LOOK(reserve, "cuMemAddressReserve");
		LOOK(address_free, "cuMemAddressFree");
		LOOK(map, "cuMemMap");
		LOOK(unmap, "cuMemUnmap");
		LOOK(set_access, "cuMemSetAccess");
		LOOK(export_fd, "cuMemExportToShareableHandle");
		LOOK(import_fd, "cuMemImportFromShareableHandle");
		LOOK(props, "cuMemGetAllocationPropertiesFromHandle");
#undef LOOK
		drv.state = rc ? rc : 1;
	}
	int state = drv.state;
	pthread_mutex_unlock(&lock);
	if (state < 0)
		return state;
	/* Always, not only when another ordinal is current: since CUDA 12 cudaSetDevice also
	 * initialises the primary context, which the mapping calls below need, and a process
	 * may import before it has made any other CUDA call. */
	CUDA_CHECK_RET(cudaSetDevice(ordinal));
	return 0;
}

/* A failed driver call, reported with the driver's own name for the error. */
#define drv_err(r, what) swarm_cuda_report_drv((int)(r), what, __FILE__, __LINE__)

static CUmemAllocationProp device_prop(int ordinal)
{
	CUmemAllocationProp p = {};
	p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p.location.id = ordinal;
	p.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
	return p;
}

/* Reserves size bytes of address space, maps handle there read-write for ordinal and records
 * it. The handle is the table's on success and still the caller's on failure. */
static int map_and_record(int ordinal, CUmemGenericAllocationHandle h, size_t size, size_t gran,
			  void **ptr)
{
	CUdeviceptr va = 0;
	CUresult r;
	int rc;
	struct shared_alloc *a = (struct shared_alloc *)calloc(1, sizeof *a);

	if (!a) {
		swarm_cuda_set_error("out of memory for a shared allocation's record");
		return -ENOMEM;
	}
	if ((r = drv.reserve(&va, size, gran, 0, 0)) != CUDA_SUCCESS) {
		rc = drv_err(r, "cuMemAddressReserve");
		goto err_free;
	}
	if ((r = drv.map(va, size, 0, h, 0)) != CUDA_SUCCESS) {
		rc = drv_err(r, "cuMemMap");
		goto err_release_va;
	}
	CUmemAccessDesc acc;
	acc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	acc.location.id = ordinal;
	acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	if ((r = drv.set_access(va, size, &acc, 1)) != CUDA_SUCCESS) {
		rc = drv_err(r, "cuMemSetAccess");
		goto err_unmap;
	}
	a->ptr = va;
	a->size = size;
	a->handle = h;
	a->ordinal = ordinal;
	pthread_mutex_lock(&lock);
	a->next = allocs;
	allocs = a;
	pthread_mutex_unlock(&lock);
	*ptr = (void *)(uintptr_t)va;
	return 0;

err_unmap:
	drv.unmap(va, size);
err_release_va:
	drv.address_free(va, size);
err_free:
	free(a);
	return rc;
}

static int granularity(int ordinal, size_t *gran)
{
	CUmemAllocationProp p = device_prop(ordinal);
	CUresult r = drv.granularity(gran, &p, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
	if (r != CUDA_SUCCESS)
		return drv_err(r, "cuMemGetAllocationGranularity");
	if (*gran == 0) {
		swarm_cuda_set_error("cuMemGetAllocationGranularity: 0 for GPU %d", ordinal);
		return -EIO;
	}
	return 0;
}

extern "C" int swarm_cuda_share_alloc(int ordinal, size_t bytes, void **ptr)
{
	CUmemGenericAllocationHandle h;
	size_t gran = 0;
	int rc;

	if (!ptr || ordinal < 0 || !bytes) {
		swarm_cuda_set_error("share_alloc: bad argument (ptr %p, GPU %d, %zu bytes)",
				     (void *)ptr, ordinal, bytes);
		return -EINVAL;
	}
	*ptr = NULL;
	if ((rc = prepare(ordinal)) || (rc = granularity(ordinal, &gran)))
		return rc;
	size_t size = (bytes + gran - 1) / gran * gran;
	CUmemAllocationProp p = device_prop(ordinal);
	CUresult r = drv.create(&h, size, &p, 0);
	if (r != CUDA_SUCCESS)
		return drv_err(r, "cuMemCreate");
	if ((rc = map_and_record(ordinal, h, size, gran, ptr)))
		drv.release(h);
	return rc;
}

/* The record of ptr, or NULL; unlinked from the table when take is set. */
static struct shared_alloc *find(void *ptr, int take)
{
	pthread_mutex_lock(&lock);
	struct shared_alloc **pp = &allocs;
	while (*pp && (*pp)->ptr != (CUdeviceptr)(uintptr_t)ptr)
		pp = &(*pp)->next;
	struct shared_alloc *a = *pp;
	if (a && take)
		*pp = a->next;
	pthread_mutex_unlock(&lock);
	return a;
}

extern "C" int swarm_cuda_share_export(void *ptr, int *fd)
{
	struct shared_alloc *a = ptr ? find(ptr, 0) : NULL;
	int out = -1;

	if (!a || !fd) {
		swarm_cuda_set_error("export of %p: not a shared allocation", ptr);
		return -EINVAL;
	}
	/* a stays valid: only swarm_cuda_share_free removes it, and exporting and freeing one
	 * allocation at once is the caller's bug. */
	CUresult r = drv.export_fd(&out, a->handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
	if (r != CUDA_SUCCESS)
		return drv_err(r, "cuMemExportToShareableHandle");
	(void)fcntl(out, F_SETFD, FD_CLOEXEC); /* workers start children; this is theirs alone */
	*fd = out;
	return 0;
}

extern "C" int swarm_cuda_share_import(int ordinal, int fd, size_t bytes, void **ptr)
{
	CUmemGenericAllocationHandle h;
	CUmemAllocationProp p = {};
	size_t gran = 0;
	int rc;

	if (!ptr || ordinal < 0 || fd < 0 || !bytes) {
		swarm_cuda_set_error("import: bad argument (ptr %p, GPU %d, fd %d, %zu bytes)",
				     (void *)ptr, ordinal, fd, bytes);
		return -EINVAL;
	}
	*ptr = NULL;
	if (fcntl(fd, F_GETFD) < 0) {
		swarm_cuda_set_error("import: fd %d is not open", fd);
		return -EINVAL;
	}
	if ((rc = prepare(ordinal)) || (rc = granularity(ordinal, &gran)))
		return rc;
	CUresult r =
		drv.import_fd(&h, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
	if (r != CUDA_SUCCESS) {
		/* Whatever the driver says, an fd it cannot import is the sender's mistake. */
		drv_err(r, "cuMemImportFromShareableHandle");
		return -EINVAL;
	}
	r = drv.props(&p, h);
	if (r != CUDA_SUCCESS) {
		rc = drv_err(r, "cuMemGetAllocationPropertiesFromHandle");
		goto err_release;
	}
	if (p.location.type != CU_MEM_LOCATION_TYPE_DEVICE || p.location.id != ordinal) {
		swarm_cuda_set_error("import: the memory lives on device %d, not %d", p.location.id,
				     ordinal);
		rc = -EINVAL;
		goto err_release;
	}
	/* cuMemMap refuses a size beyond the allocation: a peer that claims more bytes than it
	 * shares is refused here rather than read out of bounds later. */
	rc = map_and_record(ordinal, h, (bytes + gran - 1) / gran * gran, gran, ptr);
	if (rc == -EIO)
		rc = -EINVAL;
	if (!rc)
		return 0;
err_release:
	drv.release(h);
	return rc;
}

extern "C" int swarm_cuda_share_free(void *ptr)
{
	if (!ptr)
		return 0;
	struct shared_alloc *a = find(ptr, 1);
	if (!a) {
		swarm_cuda_set_error("free of %p: not a shared allocation", ptr);
		return -EINVAL;
	}
	/* Work queued on the memory must finish before it is unmapped: on its GPU, which need not
	 * be the current one of this thread (cudaDeviceSynchronize waits for the current only). */
	int rc = CUDA_CALL(cudaSetDevice(a->ordinal));
	if (!rc)
		rc = CUDA_CALL(cudaDeviceSynchronize());
	CUresult r1 = drv.unmap(a->ptr, a->size);
	CUresult r2 = drv.address_free(a->ptr, a->size);
	CUresult r3 = drv.release(a->handle);
	free(a);
	if (!rc && (r1 != CUDA_SUCCESS || r2 != CUDA_SUCCESS || r3 != CUDA_SUCCESS))
		rc = drv_err(r1 ? r1 : r2 ? r2 : r3, "unmapping a shared allocation");
	return rc;
}
