/* minilm_client.c: sentence embeddings from all-MiniLM-L6-v2 served by swarm.
 *
 * The model is imported with tools/import-minilm.py, which writes the manifest, the weights
 * and the model's vocabulary (vocab.txt). This client tokenises each sentence as BERT uncased
 * does (clean, lowercase, strip accents, split on whitespace and punctuation, then WordPiece
 * greedy longest match with "##" continuations), frames it as [CLS] ... [SEP] padded with
 * [PAD] to the model's sequence length, sends all sentences as the rows of one request, and
 * prints the first dims of each embedding and the cosine similarity of every pair.
 *
 * Only <swarm/swarm.h> and libc. Case is folded and accents stripped for ASCII, Latin-1
 * (U+00C0..U+00FF), Greek and Cyrillic letters, and combining marks are dropped; letters of
 * other cased scripts (Latin Extended, Armenian, ...) go to WordPiece unchanged, where BERT
 * would lowercase or unaccent them. CJK ideographs become one token each, as in BERT.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#define MAX_WORD_CHARS 100 /* BERT's max_input_chars_per_word: longer words are [UNK] */
#define MAX_SENTENCES 1024

/* ---- vocabulary: token -> id, open addressing --------------------------------------------- */

struct vocab {
	char *text;    /* vocab.txt, its newlines replaced by NULs */
	char **tok;    /* tok[id] */
	int32_t *slot; /* hash table of ids, -1 empty */
	uint32_t mask; /* table size - 1 */
	int32_t n;
	int32_t unk, cls, sep, pad;
};

static uint32_t hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* The id of the token s[0..len), or -1. */
static int32_t vocab_find(const struct vocab *v, const char *s, size_t len)
{
	for (uint32_t i = hash(s, len) & v->mask;; i = (i + 1) & v->mask) {
		int32_t id = v->slot[i];
		if (id < 0)
			return -1;
		if (strncmp(v->tok[id], s, len) == 0 && v->tok[id][len] == 0)
			return id;
	}
}

static int vocab_load(struct vocab *v, const char *path)
{
	memset(v, 0, sizeof *v);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr,
			"minilm-client: %s: %s (give --vocab, written by "
			"tools/import-minilm.py)\n",
			path, strerror(errno));
		return -1;
	}
	size_t cap = 1 << 18, len = 0;
	v->text = malloc(cap + 1);
	for (size_t got; v->text && (got = fread(v->text + len, 1, cap - len, f)) > 0;) {
		len += got;
		if (len == cap) {
			char *t = realloc(v->text, 2 * cap + 1);
			if (!t) {
				free(v->text);
				v->text = NULL;
				break;
			}
			v->text = t;
			cap *= 2;
		}
	}
	fclose(f);
	if (!v->text)
		return -1;
	v->text[len] = 0;
	int32_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += v->text[i] == '\n';
	lines += len > 0 && v->text[len - 1] != '\n';
	uint32_t size = 1;
	while (size < 2u * (uint32_t)lines + 2)
		size <<= 1;
	v->tok = calloc((size_t)lines + 1, sizeof *v->tok);
	v->slot = malloc(size * sizeof *v->slot);
	if (!v->tok || !v->slot)
		return -1;
	memset(v->slot, 0xff, size * sizeof *v->slot);
	v->mask = size - 1;
	for (char *p = v->text; p < v->text + len;) {
		char *nl = memchr(p, '\n', (size_t)(v->text + len - p));
		char *end = nl ? nl : v->text + len;
		*end = 0;
		if (end > p && end[-1] == '\r')
			end[-1] = 0;
		int32_t id = v->n++;
		v->tok[id] = p;
		size_t l = strlen(p);
		uint32_t i = hash(p, l) & v->mask;
		/* A repeated token maps to its last line, as BERT's load_vocab does. */
		while (v->slot[i] >= 0 && strcmp(v->tok[v->slot[i]], p) != 0)
			i = (i + 1) & v->mask;
		v->slot[i] = id;
		p = end + 1;
	}
	v->unk = vocab_find(v, "[UNK]", 5);
	v->cls = vocab_find(v, "[CLS]", 5);
	v->sep = vocab_find(v, "[SEP]", 5);
	v->pad = vocab_find(v, "[PAD]", 5);
	if (v->unk < 0 || v->cls < 0 || v->sep < 0 || v->pad < 0) {
		fprintf(stderr, "minilm-client: %s lacks [UNK], [CLS], [SEP] or [PAD]\n", path);
		return -1;
	}
	return 0;
}

static void vocab_free(struct vocab *v)
{
	free(v->slot);
	free(v->tok);
	free(v->text);
}

/* ---- basic tokenisation ------------------------------------------------------------------ */

/* Decodes one UTF-8 code point at s (NUL-terminated); sets *len. Bad bytes give U+FFFD. */
static uint32_t utf8_next(const unsigned char *s, int *len)
{
	uint32_t c = s[0];
	int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
	if (n == 0) {
		*len = 1;
		return 0xFFFD;
	}
	if (n == 1) {
		*len = 1;
		return c;
	}
	c &= 0x7Fu >> n;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*len = i;
			return 0xFFFD;
		}
		c = (c << 6) | (s[i] & 0x3F);
	}
	*len = n;
	return c;
}

static int utf8_put(uint32_t c, char *o)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	o[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

static int is_space(uint32_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
	       c == 0x205F || c == 0x3000;
}

/* Control and format characters BERT's clean_text drops (tab, newline, CR are spaces). */
static int is_dropped(uint32_t c)
{
	return c == 0 || c == 0xFFFD || (c < 0x20 && !is_space(c)) || (c >= 0x7F && c < 0xA0) ||
	       c == 0xAD || (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
	       (c >= 0x2060 && c <= 0x206F) || c == 0xFEFF;
}

/* ASCII punctuation (BERT counts all of it, $ + < = > ^ ` | ~ included) and the Unicode
 * punctuation (category P) a sentence commonly holds: Latin-1's, General Punctuation's, CJK's. */
static int is_punct(uint32_t c)
{
	if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
	    (c >= 123 && c <= 126))
		return 1;
	return c == 0xA1 || c == 0xA7 || c == 0xAB || c == 0xB6 || c == 0xB7 || c == 0xBB ||
	       c == 0xBF || (c >= 0x2010 && c <= 0x2027) ||
	       (c >= 0x2030 && c <= 0x205E && c != 0x2044 && c != 0x2052) ||
	       (c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011);
}

static int is_cjk(uint32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
	       (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2CEAF) ||
	       (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Lowercases and strips the accent of a letter (NFD, then dropping the marks, for the blocks
 * named at the top); 0 for a combining mark, which stripping removes. */
static uint32_t fold(uint32_t c)
{
	/* U+00C0..U+00FF lowercased and without accents; 0 keeps the code point. */
	static const char latin1[64] = "aaaaaa\0ceeeeiiii\0nooooo\0\0uuuuy\0\0"
				       "aaaaaa\0ceeeeiiii\0nooooo\0\0uuuuy\0y";
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c >= 0x300 && c <= 0x36F)
		return 0;
	if (c >= 0xC0 && c <= 0xFF) {
		if (latin1[c - 0xC0])
			return (uint32_t)(unsigned char)latin1[c - 0xC0];
		if (c == 0xC6 || c == 0xD0 || c == 0xD8 || c == 0xDE) /* Æ Ð Ø Þ */
			return c + 0x20;
		return c;
	}
	/* Greek and Cyrillic: capitals to small letters, then the accented ones to their base
	 * letter (what NFD and dropping the marks give). Final sigma stays σ. */
	static const uint16_t marked[][2] = {
		{ 0x386, 0x3B1 }, { 0x388, 0x3B5 }, { 0x389, 0x3B7 }, { 0x38A, 0x3B9 },
		{ 0x38C, 0x3BF }, { 0x38E, 0x3C5 }, { 0x38F, 0x3C9 }, { 0x390, 0x3B9 },
		{ 0x3AA, 0x3B9 }, { 0x3AB, 0x3C5 }, { 0x3AC, 0x3B1 }, { 0x3AD, 0x3B5 },
		{ 0x3AE, 0x3B7 }, { 0x3AF, 0x3B9 }, { 0x3B0, 0x3C5 }, { 0x3CA, 0x3B9 },
		{ 0x3CB, 0x3C5 }, { 0x3CC, 0x3BF }, { 0x3CD, 0x3C5 }, { 0x3CE, 0x3C9 },
		{ 0x439, 0x438 }, { 0x450, 0x435 }, { 0x451, 0x435 }, { 0x453, 0x433 },
		{ 0x457, 0x456 }, { 0x45C, 0x43A }, { 0x45D, 0x438 }, { 0x45E, 0x443 },
	};
	if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
		c += 0x20;
	else if (c >= 0x410 && c <= 0x42F)
		c += 0x20;
	else if (c >= 0x400 && c <= 0x40F)
		c += 0x50;
	for (size_t i = 0; i < sizeof marked / sizeof *marked; i++)
		if (marked[i][0] == c)
			return marked[i][1];
	return c;
}

/* ---- WordPiece --------------------------------------------------------------------------- */

struct ids {
	int64_t *id;
	int n, cap; /* cap: room for word pieces, [CLS] and [SEP] excluded */
};

static void push(struct ids *t, int32_t id)
{
	if (t->n < t->cap)
		t->id[t->n++] = id;
}

/* Appends the WordPiece ids of one word (w[0..len), already folded): greedy longest match
 * from the left, continuations looked up as "##" + rest; a word with a part that matches no
 * token, or longer than MAX_WORD_CHARS characters, is one [UNK]. */
static void wordpiece(const struct vocab *v, const char *w, size_t len, struct ids *t)
{
	size_t chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)w[i] & 0xC0) != 0x80;
	if (chars > MAX_WORD_CHARS) {
		push(t, v->unk);
		return;
	}
	int32_t pieces[MAX_WORD_CHARS];
	int np = 0;
	char buf[4 * MAX_WORD_CHARS + 3];
	for (size_t start = 0; start < len;) {
		size_t end = len;
		int32_t id = -1;
		while (end > start) {
			size_t l = end - start, off = 0;
			if (start > 0) {
				buf[0] = buf[1] = '#';
				off = 2;
			}
			memcpy(buf + off, w + start, l);
			if ((id = vocab_find(v, buf, off + l)) >= 0)
				break;
			/* back off one whole character */
			do
				end--;
			while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
		}
		if (id < 0) {
			push(t, v->unk);
			return;
		}
		pieces[np++] = id;
		start = end;
	}
	for (int i = 0; i < np; i++)
		push(t, pieces[i]);
}

/* Tokenises text into ids[0..S) and mask[0..S): [CLS] pieces [SEP] [PAD]...; pieces beyond
 * S - 2 are dropped. Returns the number of real tokens. */
static int tokenize(const struct vocab *v, const char *text, int S, int64_t *ids, float *mask)
{
	size_t tl = strlen(text);
	char *word = malloc(4 * tl + 4);
	struct ids t = { .id = ids + 1, .n = 0, .cap = S - 2 };
	size_t wl = 0;
	const unsigned char *p = (const unsigned char *)text;
	while (word) {
		int l = 1;
		uint32_t c = *p ? utf8_next(p, &l) : 0;
		int end = *p == 0;
		if (end || is_space(c) || is_punct(c) || is_cjk(c)) {
			if (wl)
				wordpiece(v, word, wl, &t);
			wl = 0;
			if (!end && !is_space(c)) {
				char one[4];
				wordpiece(v, one, (size_t)utf8_put(fold(c), one), &t);
			}
			if (end)
				break;
		} else if (!is_dropped(c) && (c = fold(c)) != 0) {
			wl += (size_t)utf8_put(c, word + wl);
		}
		p += l;
	}
	free(word);
	ids[0] = v->cls;
	ids[1 + t.n] = v->sep;
	int n = t.n + 2;
	for (int i = 0; i < S; i++) {
		if (i >= n)
			ids[i] = v->pad;
		mask[i] = i < n ? 1.0f : 0.0f;
	}
	return n;
}

/* ---- output ------------------------------------------------------------------------------ */

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static double cosine(const float *a, const float *b, int64_t d)
{
	double ab = 0, aa = 0, bb = 0;
	for (int64_t i = 0; i < d; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

static const char *const default_sentences[] = {
	"A man is playing a guitar.",
	"Someone is playing the guitar.",
	"The new movie is awesome.",
	"The new film is so great!",
	"The stock market fell sharply today.",
	"Cats sleep most of the day.",
};

static void usage(FILE *f)
{
	fprintf(f, "usage: minilm-client [--socket PATH] [--model NAME] [--vocab FILE]\n"
		   "                     [--json] [--tokens] [SENTENCE...]\n"
		   "Embeds each SENTENCE (default: a few examples) with the sentence encoder\n"
		   "--model (default minilm, imported by tools/import-minilm.py) and prints the\n"
		   "first 8 dims of each embedding and their cosine similarities; --json prints\n"
		   "{\"sentences\": [...], \"embeddings\": [[...], ...]} instead, --tokens the\n"
		   "token ids too. --vocab is the model's vocab.txt (default ./vocab.txt).\n"
		   "--help prints this text, --version the libswarm version and client ABI.\n");
}

/* The input (output != 0: output) named name and its index in *idx, or NULL. */
static const swarm_tensor_spec *find_spec(const swarm_session *s, const char *name, int output,
					  uint32_t *idx)
{
	uint32_t n = output ? swarm_session_num_outputs(s) : swarm_session_num_inputs(s);
	for (uint32_t i = 0; i < n; i++) {
		const swarm_tensor_spec *t = output ? swarm_session_output_spec(s, i) :
						      swarm_session_input_spec(s, i);
		if (strcmp(t->name, name) == 0) {
			*idx = i;
			return t;
		}
	}
	return NULL;
}

/* The command line. */
struct args {
	const char *sock, *model, *vocab_path;
	int json, show_tokens;
	const char *const *sent; /* the sentences, n of them */
	int n;
};

/* argv into a: -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = { { "socket", required_argument, 0, 's' },
					      { "model", required_argument, 0, 'm' },
					      { "vocab", required_argument, 0, 'v' },
					      { "json", no_argument, 0, 'j' },
					      { "tokens", no_argument, 0, 't' },
					      { "help", no_argument, 0, 'h' },
					      { "version", no_argument, 0, 'V' },
					      { 0, 0, 0, 0 } };
	*a = (struct args){ .model = "minilm", .vocab_path = "vocab.txt" };
	for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
		switch (o) {
		case 's':
			a->sock = optarg;
			break;
		case 'm':
			a->model = optarg;
			break;
		case 'v':
			a->vocab_path = optarg;
			break;
		case 'j':
			a->json = 1;
			break;
		case 't':
			a->show_tokens = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			/* An example uses the public API only: libswarm's version, the ABI of
			 * the header it was built with. */
			printf("%s %s (abi %u)\n", "minilm-client", swarm_version(),
			       SWARM_ABI_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	a->sent = default_sentences;
	a->n = (int)(sizeof default_sentences / sizeof *default_sentences);
	if (optind < argc) {
		a->sent = (const char *const *)argv + optind;
		a->n = argc - optind;
	}
	if (a->n > MAX_SENTENCES) {
		fprintf(stderr, "minilm-client: at most %d sentences\n", MAX_SENTENCES);
		return 2;
	}
	return -1;
}

/* The model's inputs and output, their indices, and the n sentences' tokens, mask and
 * embeddings: S tokens and D dims a sentence. */
struct embed {
	const swarm_tensor_spec *in_ids, *in_mask, *out_emb;
	uint32_t i_ids, i_mask, i_emb;
	int n, S;
	int64_t D;
	int64_t *ids;
	float *mask, *emb;
};

/* The session's input_ids, attention_mask and embedding into e: 0, or -1 after saying what the
 * model should take. */
static int find_io(const swarm_session *s, const char *model, struct embed *e)
{
	e->in_ids = find_spec(s, "input_ids", 0, &e->i_ids);
	e->in_mask = find_spec(s, "attention_mask", 0, &e->i_mask);
	e->out_emb = find_spec(s, "embedding", 1, &e->i_emb);
	const swarm_tensor_spec *in_ids = e->in_ids, *in_mask = e->in_mask, *out_emb = e->out_emb;
	if (!in_ids || !in_mask || !out_emb || in_ids->dtype != SWARM_DTYPE_I64 ||
	    in_ids->ndim != 2 || in_mask->dtype != SWARM_DTYPE_F32 || in_mask->ndim != 2 ||
	    in_mask->shape[1] != in_ids->shape[1] || in_ids->shape[1] < 2 ||
	    out_emb->dtype != SWARM_DTYPE_F32 || out_emb->ndim != 2) {
		fprintf(stderr,
			"minilm-client: model %s does not take input_ids i64 [-1, S] and "
			"attention_mask f32 [-1, S] and return embedding f32 [-1, D]\n",
			model);
		return -1;
	}
	e->S = (int)in_ids->shape[1];
	e->D = out_emb->shape[1];
	return 0;
}

/* The sentences go as the rows of as few requests as the session's max_rows allows; their
 * embeddings into e->emb. 0, or -1 after saying why. */
static int embed_all(swarm_client *c, swarm_session *s, uint32_t max_rows, struct embed *e)
{
	for (int first = 0; first < e->n;) {
		uint32_t rows = (uint32_t)(e->n - first) < max_rows ? (uint32_t)(e->n - first) :
								      max_rows;
		swarm_request *r;
		int err = swarm_request_alloc(s, rows, &r);
		if (err) {
			fprintf(stderr, "minilm-client: request: %s\n", swarm_strerror(err));
			return -1;
		}
		memcpy(swarm_request_input(r, e->i_ids), e->ids + (size_t)first * e->S,
		       rows * e->in_ids->row_bytes);
		memcpy(swarm_request_input(r, e->i_mask), e->mask + (size_t)first * e->S,
		       rows * e->in_mask->row_bytes);
		err = swarm_request_submit(r, 0);
		if (!err)
			err = swarm_request_wait(r, 30000000000ll);
		if (err) {
			fprintf(stderr, "minilm-client: request: %s (%s)\n", swarm_strerror(err),
				swarm_client_error(c));
			swarm_request_release(r);
			return -1;
		}
		memcpy(e->emb + (size_t)first * e->D, swarm_request_output(r, e->i_emb),
		       rows * e->out_emb->row_bytes);
		swarm_request_release(r);
		first += (int)rows;
	}
	return 0;
}

/* {"model", "sentences", ["tokens",] "embeddings"} on stdout. */
static void print_json(const struct args *a, const struct embed *e)
{
	int S = e->S;
	printf("{\"model\": ");
	json_string(a->model);
	printf(", \"sentences\": [");
	for (int i = 0; i < e->n; i++) {
		printf(i ? ", " : "");
		json_string(a->sent[i]);
	}
	if (a->show_tokens) {
		printf("],\n \"tokens\": [");
		for (int i = 0; i < e->n; i++) {
			printf(i ? ", [" : "[");
			for (int k = 0; k < S; k++)
				printf(k ? ", %lld" : "%lld", (long long)e->ids[(size_t)i * S + k]);
			printf("]");
		}
	}
	printf("],\n \"embeddings\": [");
	for (int i = 0; i < e->n; i++) {
		printf(i ? ",\n  [" : "\n  [");
		for (int64_t k = 0; k < e->D; k++)
			printf(k ? ", %.9g" : "%.9g", e->emb[(size_t)i * e->D + k]);
		printf("]");
	}
	printf("]}\n");
}

/* Each sentence's first dims (and tokens), then the table of cosine similarities. */
static void print_text(const struct args *a, const swarm_session_info *info, const struct vocab *v,
		       const struct embed *e)
{
	int n = e->n, S = e->S;
	int64_t D = e->D;
	printf("model %s@%u on %s: %d sentence(s), %d tokens each, %lld dims\n\n", a->model,
	       info->model_version, info->device_name, n, S, (long long)D);
	for (int i = 0; i < n; i++) {
		printf("[%d] %s\n    ", i, a->sent[i]);
		for (int64_t k = 0; k < D && k < 8; k++)
			printf("%+.4f ", e->emb[(size_t)i * D + k]);
		printf("...\n");
		if (a->show_tokens) {
			printf("    tokens:");
			for (int k = 0; k < S && e->mask[(size_t)i * S + k] != 0; k++)
				printf(" %s", v->tok[e->ids[(size_t)i * S + k]]);
			printf("\n");
		}
	}
	printf("\ncosine similarity\n     ");
	for (int j = 0; j < n; j++)
		printf(" [%d]   ", j);
	printf("\n");
	for (int i = 0; i < n; i++) {
		printf("[%d] ", i);
		for (int j = 0; j < n; j++)
			printf(" %+.3f", cosine(e->emb + (size_t)i * D, e->emb + (size_t)j * D, D));
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	struct args a;
	int rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	struct vocab v;
	if (vocab_load(&v, a.vocab_path)) {
		vocab_free(&v);
		return 1;
	}
	rc = 1;
	swarm_client *c = NULL;
	swarm_session *s = NULL;
	struct embed e = { .n = a.n };
	int err = swarm_connect(a.sock, &c);
	if (err) {
		fprintf(stderr, "minilm-client: %s\n", swarm_last_error());
		goto out;
	}
	err = swarm_session_open(c, a.model, 0, NULL, &s);
	if (err) {
		fprintf(stderr, "minilm-client: open %s: %s (%s)\n", a.model, swarm_strerror(err),
			swarm_client_error(c));
		goto out;
	}
	if (find_io(s, a.model, &e))
		goto out;
	e.ids = malloc(sizeof *e.ids * (size_t)e.n * (size_t)e.S);
	e.mask = malloc(sizeof *e.mask * (size_t)e.n * (size_t)e.S);
	e.emb = malloc(sizeof *e.emb * (size_t)e.n * (size_t)e.D);
	if (!e.ids || !e.mask || !e.emb)
		goto out;
	for (int i = 0; i < e.n; i++)
		tokenize(&v, a.sent[i], e.S, e.ids + (size_t)i * e.S, e.mask + (size_t)i * e.S);
	swarm_session_info info;
	swarm_session_info_get(s, &info);
	if (embed_all(c, s, info.max_rows ? info.max_rows : 1, &e))
		goto out;
	if (a.json)
		print_json(&a, &e);
	else
		print_text(&a, &info, &v, &e);
	rc = 0;
out:
	free(e.emb);
	free(e.mask);
	free(e.ids);
	if (c)
		swarm_disconnect(c); /* closes s too */
	vocab_free(&v);
	return rc;
}
