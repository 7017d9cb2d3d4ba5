/* device_weights.c: a version's weights on a device, and graphs built on them
 * (device_weights.h).
 */
#include "runtime/device_weights.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One copy of a file's tensors in a device's memory (device_weights.h). */
struct swarm_dev_weights {
	struct swarm_device *dev;
	char *base;
	uint64_t bytes;    /* as planned: what an importer must map */
	uint64_t layout;   /* plan_weights' fingerprint */
	uint64_t *dev_off; /* per tensor of the file: its offset in base */
	uint32_t n_tensors;
	uint32_t refs;
	int shared; /* base came from alloc_shared or import_shared: free_shared frees it */
};

struct weight_view {
	struct swarm_weights_view file;     /* the mapping, on a host-memory device */
	const struct swarm_dev_weights *dw; /* on a device without host memory, else NULL */
};

static const struct swarm_tensor *weight_lookup(void *ctx, const char *name)
{
	struct weight_view *v = ctx;
	if (!v->dw)
		return swarm_weights_view_lookup(&v->file, name);
	const struct swarm_st_tensor *t = swarm_st_find(v->file.st, name);
	if (!t || swarm_st_tensor_fill(t, v->dw->base + v->dw->dev_off[t - v->file.st->tensors],
				       &v->file.t))
		return NULL;
	return &v->file.t;
}

#define WEIGHT_ALIGN 256 /* what cuBLAS and vector loads like best */

static uint64_t align_up(uint64_t x)
{
	return (x + WEIGHT_ALIGN - 1) / WEIGHT_ALIGN * WEIGHT_ALIGN;
}

/* FNV-1a over x's 8 bytes, continuing from h. */
static uint64_t fnv_u64(uint64_t h, uint64_t x)
{
	for (int i = 0; i < 8; i++, x >>= 8)
		h = (h ^ (x & 0xff)) * 0x100000001b3ull;
	return h;
}

/* Device offsets for st's tensors, in stretches: a stretch keeps the file's layout (each tensor
 * at the same distance from the stretch's start as in the file), so it is copied in one piece;
 * a tensor whose offset in the stretch would not be WEIGHT_ALIGN-aligned starts a new stretch
 * at the next aligned device offset. st's tensors are sorted by offset and cover the data
 * region without gaps, so a file whose tensor sizes are all multiples of WEIGHT_ALIGN (the
 * common case: hidden sizes of 64 and more in f32, f16 or bf16) is one stretch, the whole
 * region. Returns the bytes of device memory needed, and in *layout a fingerprint of the plan
 * (every tensor's place, size, dtype and shape): a process that maps another's copy checks it,
 * so that a copy planned differently (another build of this loader) is never read wrongly. */
static uint64_t plan_weights(const struct swarm_st_file *st, uint64_t *dev_off, uint64_t *layout)
{
	uint64_t run_file = 0, run_dev = 0, end = 0;
	uint64_t h = fnv_u64(0xcbf29ce484222325ull, WEIGHT_ALIGN);
	h = fnv_u64(h, st->n_tensors);
	for (uint32_t i = 0; i < st->n_tensors; i++) {
		const struct swarm_st_tensor *t = &st->tensors[i];
		if (i == 0 || (t->offset - run_file) % WEIGHT_ALIGN != 0) {
			run_file = t->offset;
			run_dev = align_up(end);
		}
		dev_off[i] = run_dev + (t->offset - run_file);
		end = dev_off[i] + t->nbytes;
		h = fnv_u64(fnv_u64(fnv_u64(h, dev_off[i]), t->nbytes), t->dtype);
		h = fnv_u64(h, t->ndim);
		for (uint32_t k = 0; k < t->ndim; k++)
			h = fnv_u64(h, (uint64_t)t->shape[k]);
	}
	*layout = h;
	return align_up(end);
}

_Static_assert(SWARM_BLOB_FILL_SLACK <= SWARM_UPLOAD_FILL_SLACK,
	       "the reader's fills must fit the room upload_stream gives them");

int swarm_weights_stream(struct swarm_device *dev, struct swarm_blob_reader *r, void *dst,
			 const void *map_, uint64_t off, uint64_t bytes)
{
	const char *map = map_;
	struct swarm_upload_src src = { .host = map ? map + off : NULL };
	if (!dev->i->upload_stream)
		return dev->i->upload(dev, dst, map + off, bytes);
	if (r && swarm_blob_reader_mode(r) == SWARM_LOAD_REGISTER) {
		src.register_host = 1;
		int rc = dev->i->upload_stream(dev, dst, &src, bytes, NULL);
		char why[96];
		if (rc == 0)
			return 0;
		snprintf(why, sizeof why, "the device would not register the mapping (%s)",
			 strerror(-rc));
		if ((rc = swarm_blob_reader_fall_back(r, why)))
			return rc;
		src.register_host = 0;
	}
	if (r) {
		src.fill = swarm_blob_reader_fill;
		src.ctx = r;
		src.base = off;
	}
	return dev->i->upload_stream(dev, dst, &src, bytes, NULL);
}

/* A new handle for st on dev with its plan made, no memory yet; NULL when out of memory. */
static struct swarm_dev_weights *dw_new(struct swarm_device *dev, const struct swarm_st_file *st,
					char *err, size_t err_len)
{
	struct swarm_dev_weights *dw = calloc(1, sizeof *dw);
	if (dw)
		dw->dev_off = calloc(st->n_tensors ? st->n_tensors : 1, sizeof *dw->dev_off);
	if (!dw || !dw->dev_off) {
		free(dw);
		snprintf(err, err_len, "out of memory for the weights' offsets");
		return NULL;
	}
	dw->dev = dev;
	dw->n_tensors = st->n_tensors;
	dw->bytes = plan_weights(st, dw->dev_off, &dw->layout);
	dw->refs = 1;
	return dw;
}

/* Copies every tensor of st into dw's memory laid out by plan_weights, one copy a stretch read
 * by r (NULL: memcpy from map), unless hook's fill fills it, and records what it took in up.
 * Returns 0 or -errno with the message in err. */
static int upload_weights(struct swarm_dev_weights *dw, const void *map,
			  const struct swarm_st_file *st, struct swarm_blob_reader *r,
			  const struct swarm_weights_hook *hook, struct swarm_weights_upload *up,
			  char *err, size_t err_len)
{
	struct swarm_device *dev = dw->dev;
	up->streamed = dev->i->upload_stream != NULL;
	uint64_t t0 = now_ns();
	int filled = hook && hook->fill ? hook->fill(hook->ctx, dw->base, dw->bytes) : 0;
	if (filled < 0) {
		snprintf(err, err_len, "filling the weights failed: %s", strerror(-filled));
		return filled;
	}
	/* Stretch [first, i): tensors contiguous both in the file and on the device. */
	for (uint32_t first = 0, i = 1; !filled && first < st->n_tensors; i++) {
		const struct swarm_st_tensor *a = &st->tensors[first];
		if (i < st->n_tensors &&
		    st->tensors[i].offset - a->offset == dw->dev_off[i] - dw->dev_off[first])
			continue;
		const struct swarm_st_tensor *z = &st->tensors[i - 1];
		uint64_t bytes = z->offset + z->nbytes - a->offset;
		int rc = bytes ? swarm_weights_stream(dev, r, dw->base + dw->dev_off[first], map,
						      a->offset, bytes) :
				 0;
		if (rc) {
			const char *why = r ? swarm_blob_reader_error(r) : "";
			snprintf(err, err_len,
				 "uploading weights \"%s\"%s%s (%llu bytes) failed: %s", a->name,
				 i - 1 > first ? " to " : "", i - 1 > first ? z->name : "",
				 (unsigned long long)bytes, *why ? why : strerror(-rc));
			return rc;
		}
		up->bytes += bytes;
		up->copies += bytes != 0;
		first = i;
	}
	/* The copies may be queued: done before the graph's first run reads them, and any
	 * failure seen here rather than there. */
	int rc = dev->i->synchronize ? dev->i->synchronize(dev) : 0;
	if (rc) {
		snprintf(err, err_len, "uploading the weights failed: %s", strerror(-rc));
		return rc;
	}
	/* The hash of what the fills read, and of what no tensor covers (the header): a blob
	 * whose bytes differ leaves nothing on the device. */
	if (r && !filled && (rc = swarm_blob_reader_finish(r))) {
		snprintf(err, err_len, "%s", swarm_blob_reader_error(r));
		return rc;
	}
	if (hook && hook->loaded && (rc = hook->loaded(hook->ctx, dw->base, dw->bytes)) < 0) {
		snprintf(err, err_len, "after loading the weights: %s", strerror(-rc));
		return rc;
	}
	up->ns = now_ns() - t0;
	up->gbps = up->bytes ? (double)up->bytes / (double)(up->ns ? up->ns : 1) : 0.0;
	return 0;
}

/* swarm_dev_weights_upload reading the blob with r (NULL: memcpy from map), with hook. */
static int dw_upload(struct swarm_device *dev, const void *map, const struct swarm_st_file *st,
		     int shareable, struct swarm_blob_reader *r,
		     const struct swarm_weights_hook *hook, struct swarm_dev_weights **out,
		     struct swarm_weights_upload *up, char *err, size_t err_len)
{
	struct swarm_weights_upload scratch;
	if (!up)
		up = &scratch;
	memset(up, 0, sizeof *up);
	up->mode = r ? swarm_blob_reader_mode(r) : SWARM_LOAD_MMAP;
	*out = NULL;
	if (!dev || !dev->i || dev->i->host_memory || !map || !st) {
		snprintf(err, err_len, "no device copy of weights on a host-memory device");
		return -EINVAL;
	}
	struct swarm_dev_weights *dw = dw_new(dev, st, err, err_len);
	if (!dw)
		return -ENOMEM;
	size_t want = dw->bytes ? dw->bytes : WEIGHT_ALIGN;
	/* Sharing saves memory, never decides whether the weights load: a refusal of
	 * alloc_shared (no VMM support) falls back to a private copy, which shared says. */
	if (shareable && dev->i->alloc_shared && dev->i->export_shared && dev->i->free_shared &&
	    (dw->base = dev->i->alloc_shared(dev, want)))
		dw->shared = 1;
	else
		dw->base = dev->i->alloc(dev, want);
	if (!dw->base) {
		snprintf(err, err_len, "the %s device could not allocate %llu bytes of weights",
			 dev->i->name ? dev->i->name : "?", (unsigned long long)dw->bytes);
		swarm_dev_weights_put(dw);
		return -ENOMEM;
	}
	int rc = upload_weights(dw, map, st, r, hook, up, err, err_len);
	if (r) {
		/* After the upload: a register that fell back to pread says so now. */
		up->mode = swarm_blob_reader_mode(r);
		up->fell_back = swarm_blob_reader_fell_back(r);
		snprintf(up->note, sizeof up->note, "%s", swarm_blob_reader_note(r));
	}
	if (rc) {
		swarm_dev_weights_put(dw);
		return rc;
	}
	*out = dw;
	return 0;
}

int swarm_dev_weights_upload(struct swarm_device *dev, const void *map,
			     const struct swarm_st_file *st, int shareable,
			     struct swarm_dev_weights **out, struct swarm_weights_upload *up,
			     char *err, size_t err_len)
{
	return dw_upload(dev, map, st, shareable, NULL, NULL, out, up, err, err_len);
}

/* A reader for w where something reads the file: an upload to a device whose memory is not
 * host memory, or a verification swarm_weights_open left. *r stays NULL otherwise. */
static int open_reader(const struct swarm_weights *w, int host, const struct swarm_load_opts *o,
		       struct swarm_blob_reader **r, char *err, size_t err_len)
{
	*r = NULL;
	if (!w->path || (host && !w->sha[0]))
		return 0;
	struct swarm_blob_reader_opts ro = { .mode = host ? SWARM_LOAD_MMAP : o->mode,
					     .threads = o->threads,
					     .sha256 = w->sha[0] ? w->sha : NULL,
					     .no_uring = o->no_uring };
	return swarm_blob_reader_open(w->path, w->map, w->bytes, &ro, r, err, err_len);
}

static const struct swarm_load_opts load_dflt = { .mode = SWARM_LOAD_AUTO };

int swarm_dev_weights_load(struct swarm_device *dev, const struct swarm_weights *w, int shareable,
			   const struct swarm_load_opts *o, struct swarm_dev_weights **out,
			   struct swarm_weights_upload *up, char *err, size_t err_len)
{
	struct swarm_blob_reader *r;
	*out = NULL;
	if (!o)
		o = &load_dflt;
	int rc = open_reader(w, !dev || !dev->i || dev->i->host_memory, o, &r, err, err_len);
	if (rc == 0)
		rc = dw_upload(dev, w->map, &w->st, shareable, r, o->hook, out, up, err, err_len);
	swarm_blob_reader_close(r);
	return rc;
}

void *swarm_dev_weights_base(const struct swarm_dev_weights *dw) { return dw->base; }

int swarm_dev_weights_import(struct swarm_device *dev, const struct swarm_st_file *st, int fd,
			     uint64_t bytes, uint64_t layout, struct swarm_dev_weights **out,
			     char *err, size_t err_len)
{
	*out = NULL;
	if (!dev || !dev->i || !dev->i->import_shared || !dev->i->free_shared || !st) {
		snprintf(err, err_len, "the device cannot map shared weights");
		return -ENOTSUP;
	}
	struct swarm_dev_weights *dw = dw_new(dev, st, err, err_len);
	if (!dw)
		return -ENOMEM;
	int rc = 0;
	if (bytes != dw->bytes || layout != dw->layout) {
		snprintf(err, err_len,
			 "the offered copy does not fit this file: %llu bytes, layout %016llx; "
			 "the plan here is %llu bytes, layout %016llx",
			 (unsigned long long)bytes, (unsigned long long)layout,
			 (unsigned long long)dw->bytes, (unsigned long long)dw->layout);
		rc = -EBADMSG;
	} else if (!(dw->base = dev->i->import_shared(dev, fd,
						      dw->bytes ? dw->bytes : WEIGHT_ALIGN))) {
		snprintf(err, err_len, "the device would not map the offered copy (fd %d)", fd);
		rc = -EINVAL;
	}
	if (rc) {
		swarm_dev_weights_put(dw);
		return rc;
	}
	dw->shared = 1;
	*out = dw;
	return 0;
}

struct swarm_dev_weights *swarm_dev_weights_get(struct swarm_dev_weights *dw)
{
	dw->refs++;
	return dw;
}

void swarm_dev_weights_put(struct swarm_dev_weights *dw)
{
	if (!dw || --dw->refs)
		return;
	if (dw->base && dw->shared)
		dw->dev->i->free_shared(dw->dev, dw->base);
	else if (dw->base)
		dw->dev->i->free(dw->dev, dw->base);
	free(dw->dev_off);
	free(dw);
}

int swarm_dev_weights_export(const struct swarm_dev_weights *dw, int *fd)
{
	if (!dw->shared) {
		*fd = -1;
		return -ENOTSUP;
	}
	return dw->dev->i->export_shared(dw->dev, dw->base, fd);
}

uint32_t swarm_dev_weights_refs(const struct swarm_dev_weights *dw) { return dw->refs; }
uint64_t swarm_dev_weights_bytes(const struct swarm_dev_weights *dw) { return dw->bytes; }
uint64_t swarm_dev_weights_layout(const struct swarm_dev_weights *dw) { return dw->layout; }
int swarm_dev_weights_shared(const struct swarm_dev_weights *dw) { return dw->shared; }

const void *swarm_dev_weights_data(const struct swarm_dev_weights *dw,
				   const struct swarm_st_file *st, const char *name)
{
	const struct swarm_st_tensor *t = swarm_st_find(st, name);
	if (!t || st->n_tensors != dw->n_tensors)
		return NULL;
	return dw->base + dw->dev_off[t - st->tensors];
}

static void dw_put_ref(void *ref) { swarm_dev_weights_put(ref); }

int swarm_graph_from_dev_weights(const struct swarm_manifest *m, const struct swarm_st_file *st,
				 struct swarm_dev_weights *dw, uint32_t max_batch,
				 struct swarm_graph **out, char *err, size_t err_len)
{
	struct weight_view v = { .file = { .st = st }, .dw = dw };
	*out = NULL;
	if (st->n_tensors != dw->n_tensors) {
		snprintf(err, err_len, "the device weights hold %u tensors, the file %u",
			 dw->n_tensors, st->n_tensors);
		return -EINVAL;
	}
	struct swarm_graph_desc d;
	swarm_manifest_graph_desc(m, &d);
	int rc = swarm_graph_build(&d, weight_lookup, &v, dw->dev, max_batch, out, err, err_len);
	if (rc)
		return rc;
	/* The graph's reference: the weights stay while it does, whoever else lets go. */
	if ((rc = swarm_graph_hold(*out, dw_put_ref, swarm_dev_weights_get(dw)))) {
		swarm_dev_weights_put(dw);
		snprintf(err, err_len, "the graph would not take its weights (%d)", rc);
		swarm_graph_free(*out);
		*out = NULL;
	}
	return rc;
}

int swarm_graph_from_weights(const struct swarm_manifest *m, const void *map,
			     const struct swarm_st_file *st, struct swarm_device *dev,
			     uint32_t max_batch, struct swarm_graph **out, char *err,
			     size_t err_len)
{
	return swarm_graph_from_weights_report(m, map, st, dev, max_batch, out, NULL, err, err_len);
}

/* The three entry points' one body: r (NULL: memcpy from map) reads the blob. */
static int from_weights(const struct swarm_manifest *m, const void *map,
			const struct swarm_st_file *st, struct swarm_device *dev,
			struct swarm_blob_reader *r, const struct swarm_weights_hook *hook,
			uint32_t max_batch, struct swarm_graph **out,
			struct swarm_weights_upload *up, char *err, size_t err_len)
{
	struct weight_view v = { .file = { .map = map, .st = st } };
	if (up)
		memset(up, 0, sizeof *up);
	if (out)
		*out = NULL;
	if (!dev || !dev->i || dev->i->host_memory || !st || !map) {
		/* A host-memory device given a deferred verification: the mapping is hashed. */
		int rc = r ? swarm_blob_reader_finish(r) : 0;
		if (rc) {
			snprintf(err, err_len, "%s", swarm_blob_reader_error(r));
			return rc;
		}
		struct swarm_graph_desc d;
		swarm_manifest_graph_desc(m, &d);
		return swarm_graph_build(&d, weight_lookup, &v, dev, max_batch, out, err, err_len);
	}
	struct swarm_dev_weights *dw;
	int rc = dw_upload(dev, map, st, 0, r, hook, &dw, up, err, err_len);
	if (rc)
		return rc;
	rc = swarm_graph_from_dev_weights(m, st, dw, max_batch, out, err, err_len);
	swarm_dev_weights_put(dw); /* the graph holds its own reference */
	return rc;
}

int swarm_graph_from_weights_report(const struct swarm_manifest *m, const void *map,
				    const struct swarm_st_file *st, struct swarm_device *dev,
				    uint32_t max_batch, struct swarm_graph **out,
				    struct swarm_weights_upload *up, char *err, size_t err_len)
{
	return from_weights(m, map, st, dev, NULL, NULL, max_batch, out, up, err, err_len);
}

int swarm_graph_from_weights_load(const struct swarm_manifest *m, const struct swarm_weights *w,
				  struct swarm_device *dev, uint32_t max_batch,
				  const struct swarm_load_opts *o, struct swarm_graph **out,
				  struct swarm_weights_upload *up, char *err, size_t err_len)
{
	struct swarm_blob_reader *r;
	if (!o)
		o = &load_dflt;
	if (out)
		*out = NULL;
	int rc = open_reader(w, !dev || !dev->i || dev->i->host_memory, o, &r, err, err_len);
	if (rc)
		return rc;
	rc = from_weights(m, w->map, &w->st, dev, r, o->hook, max_batch, out, up, err, err_len);
	swarm_blob_reader_close(r);
	return rc;
}
