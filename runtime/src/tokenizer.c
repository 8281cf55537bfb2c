/* Tokenizer: vocabulary from GGUF, special-token splitting, decoding.
 *
 * The encoders live in tokenizer_bpe.c (byte-level BPE, tokenizer.ggml.model
 * = gpt2) and tokenizer_spm.c (SentencePiece-style, = llama). Behaviour
 * follows llama.cpp wherever it is observable in token ids, because that is
 * what the conformance vectors were made with: e.g. no NFC normalization,
 * user-defined tokens are split out even without parse_special, and tokens
 * spelled like end-of-generation markers are treated as control tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/tokenizer.h"
#include "tokenizer_internal.h"
#include "unicode.h"

/* ---- small helpers -------------------------------------------------------- */

int id_buf_push(struct id_buf *b, int32_t id)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		int32_t *p = realloc(b->ids, cap * sizeof(*p));

		if (!p)
			return INFER_E_NOMEM;
		b->ids = p;
		b->cap = cap;
	}
	b->ids[b->n++] = id;
	return 0;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t hash_pair(uint64_t key)
{
	key ^= key >> 31;
	key *= 0x9E3779B97F4A7C15ull;
	return key ^ (key >> 29);
}

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t c = 16;

	while (c < n)
		c <<= 1;
	return c;
}

int32_t tok_lookup(const infer_tokenizer *t, const char *s, size_t n)
{
	uint64_t i = hash_bytes(s, n) & t->map_mask;

	for (;; i = (i + 1) & t->map_mask) {
		int32_t id = t->map[i];

		if (id < 0)
			return -1;
		if (t->tok[id].len == n && memcmp(t->tok[id].text, s, n) == 0)
			return id;
	}
}

/* Later duplicates win, as in llama.cpp's token_to_id map. */
static void map_insert(infer_tokenizer *t, int32_t id)
{
	const struct tok_entry *e = &t->tok[id];
	uint64_t i = hash_bytes(e->text, e->len) & t->map_mask;

	for (;; i = (i + 1) & t->map_mask) {
		int32_t cur = t->map[i];

		if (cur < 0 || (t->tok[cur].len == e->len &&
				memcmp(t->tok[cur].text, e->text, e->len) == 0)) {
			t->map[i] = id;
			return;
		}
	}
}

/* ---- GGUF access ---------------------------------------------------------- */

static int get_opt_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *out,
		      infer_error *err)
{
	const gguf_kv *kv = gguf_find_kv(f, key);
	int64_t v;
	int rc;

	if (!kv)
		return 0;
	rc = gguf_get_int(f, key, &v, err);
	if (rc)
		return rc;
	if (v < 0 || v >= n_vocab)
		return infer_error_set(err, INFER_E_TOKENIZER, (int64_t)kv->offset,
				       "%s = %lld is outside the vocabulary (%d tokens)", key,
				       (long long)v, n_vocab);
	*out = (int32_t)v;
	return 0;
}

static int get_opt_bool(const gguf_file *f, const char *key, int *out, infer_error *err)
{
	if (!gguf_find_kv(f, key))
		return 0;
	return gguf_get_bool(f, key, out, err);
}

static int str_eq(gguf_str s, const char *c)
{
	return s.len == strlen(c) && memcmp(s.data, c, s.len) == 0;
}

/* tokenizer.ggml.pre names llama.cpp maps to the three regexes we implement. */
static const struct {
	const char *name;
	enum tok_pre pre;
} pre_names[] = {
	{ "qwen2", TOK_PRE_QWEN2 },	   { "deepseek-r1-qwen", TOK_PRE_QWEN2 },
	{ "llama3", TOK_PRE_LLAMA3 },	   { "llama-v3", TOK_PRE_LLAMA3 },
	{ "llama-bpe", TOK_PRE_LLAMA3 },   { "gpt-2", TOK_PRE_GPT2 },
	{ "gpt2", TOK_PRE_GPT2 },
};

static int read_model(infer_tokenizer *t, const gguf_file *f, infer_error *err)
{
	const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.model");
	gguf_str s;
	size_t i;
	int rc;

	if (!kv)
		return infer_error_set(err, INFER_E_TOKENIZER, -1,
				       "tokenizer.ggml.model is missing: the file has no vocabulary");
	rc = gguf_get_str(f, "tokenizer.ggml.model", &s, err);
	if (rc)
		return rc;
	if (str_eq(s, "llama")) {
		t->model = TOK_MODEL_SPM;
		return 0;
	}
	if (!str_eq(s, "gpt2"))
		return infer_error_set(err, INFER_E_UNSUPPORTED, (int64_t)kv->offset,
				       "tokenizer.ggml.model '%.*s' is not supported (gpt2, llama)",
				       (int)(s.len > 64 ? 64 : s.len), s.data);
	t->model = TOK_MODEL_BPE;
	kv = gguf_find_kv(f, "tokenizer.ggml.pre");
	if (!kv)
		return infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				       "tokenizer.ggml.pre is missing: cannot tell which pre-tokenizer "
				       "this BPE vocabulary needs");
	rc = gguf_get_str(f, "tokenizer.ggml.pre", &s, err);
	if (rc)
		return rc;
	for (i = 0; i < sizeof(pre_names) / sizeof(pre_names[0]); i++) {
		if (str_eq(s, pre_names[i].name)) {
			t->pre = pre_names[i].pre;
			return 0;
		}
	}
	return infer_error_set(err, INFER_E_UNSUPPORTED, (int64_t)kv->offset,
			       "tokenizer.ggml.pre '%.*s' is not supported (qwen2, llama3, gpt-2)",
			       (int)(s.len > 64 ? 64 : s.len), s.data);
}

/* ---- vocabulary ------------------------------------------------------------- */

/* What a token decodes to. Byte-level BPE: every character of a normal token
 * stands for one byte (a character outside the mapping is kept as UTF-8).
 * SentencePiece: U+2581 is a space and <0xXX> byte tokens are that byte.
 * Control, user-defined and unknown tokens are their text; unused tokens and
 * BPE byte tokens decode to nothing (as in llama.cpp). Returns the length. */
static size_t decode_token(const infer_tokenizer *t, const struct tok_entry *e, char *out)
{
	const unsigned char *s = (const unsigned char *)e->text;
	size_t i = 0, n = 0, l;
	unsigned v;

	switch (e->type) {
	case TOK_CONTROL:
	case TOK_USER_DEFINED:
	case TOK_UNKNOWN:
		memcpy(out, e->text, e->len);
		return e->len;
	case TOK_UNUSED:
		return 0;
	case TOK_BYTE:
		if (t->model == TOK_MODEL_SPM && e->len == 6 &&
		    sscanf(e->text, "<0x%2X>", &v) == 1) {
			out[0] = (char)v;
			return 1;
		}
		return 0;
	default:
		break;
	}
	while (i < e->len) {
		if (t->model == TOK_MODEL_SPM) {
			if (e->len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
				out[n++] = ' ';
				i += 3;
			} else {
				out[n++] = (char)s[i++];
			}
			continue;
		}
		uint32_t cp = utf8_decode_lenient(s + i, e->len - i, &l);
		int b = bytelevel_byte(cp);

		if (b >= 0) {
			out[n++] = (char)b;
		} else {
			memcpy(out + n, s + i, l);
			n += l;
		}
		i += l;
	}
	return n;
}

static int read_tokens(infer_tokenizer *t, const gguf_file *f, infer_error *err)
{
	const gguf_kv *toks, *types = NULL, *scores = NULL;
	size_t total = 0, pos = 0;
	int64_t i, n;
	int rc;

	rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &toks, err);
	if (rc)
		return rc;
	n = (int64_t)toks->v.arr.n;
	if (n <= 0 || n > INT32_MAX / 2)
		return infer_error_set(err, INFER_E_TOKENIZER, (int64_t)toks->offset,
				       "tokenizer.ggml.tokens has %lld entries", (long long)n);
	if (gguf_find_kv(f, "tokenizer.ggml.token_type")) {
		rc = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_VT_INT32, &types, err);
		if (rc)
			return rc;
	}
	if (gguf_find_kv(f, "tokenizer.ggml.scores")) {
		rc = gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, &scores, err);
		if (rc)
			return rc;
	}
	if (types && (int64_t)types->v.arr.n != n)
		return infer_error_set(err, INFER_E_TOKENIZER, (int64_t)types->offset,
				       "tokenizer.ggml.token_type has %llu entries, tokens has %lld",
				       (unsigned long long)types->v.arr.n, (long long)n);
	if (scores && (int64_t)scores->v.arr.n != n)
		return infer_error_set(err, INFER_E_TOKENIZER, (int64_t)scores->offset,
				       "tokenizer.ggml.scores has %llu entries, tokens has %lld",
				       (unsigned long long)scores->v.arr.n, (long long)n);

	t->n_vocab = (int32_t)n;
	t->tok = calloc((size_t)n, sizeof(*t->tok));
	for (i = 0; i < n; i++)
		total += toks->v.arr.strs[i].len + 1;
	/* Text plus decoded bytes, which are never longer than the text. */
	t->arena = malloc(2 * total);
	t->map_mask = pow2_at_least(2 * (uint64_t)n) - 1;
	t->map = malloc((t->map_mask + 1) * sizeof(*t->map));
	if (!t->tok || !t->arena || !t->map)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory for %lld tokens",
				       (long long)n);
	memset(t->map, 0xff, (t->map_mask + 1) * sizeof(*t->map));

	for (i = 0; i < n; i++) {
		struct tok_entry *e = &t->tok[i];
		gguf_str s = toks->v.arr.strs[i];
		int32_t ty = TOK_NORMAL;

		if (types)
			memcpy(&ty, (const char *)types->v.arr.data + 4 * i, 4);
		if (ty < TOK_UNDEFINED || ty > TOK_BYTE)
			return infer_error_set(err, INFER_E_TOKENIZER, (int64_t)types->offset,
					       "tokenizer.ggml.token_type[%lld] = %d is not a token type "
					       "(0..6)", (long long)i, ty);
		if (ty == TOK_UNDEFINED)
			ty = TOK_NORMAL;
		if (scores)
			memcpy(&e->score, (const char *)scores->v.arr.data + 4 * i, 4);
		e->type = (uint8_t)ty;
		e->text = t->arena + pos;
		e->len = (uint32_t)s.len;
		memcpy(t->arena + pos, s.data, s.len);
		t->arena[pos + s.len] = '\0';
		pos += s.len + 1;
		map_insert(t, (int32_t)i);
	}
	return 0;
}

static void decode_all(infer_tokenizer *t)
{
	char *out = (char *)t->tok[t->n_vocab - 1].text + t->tok[t->n_vocab - 1].len + 1;
	int32_t i;

	for (i = 0; i < t->n_vocab; i++) {
		struct tok_entry *e = &t->tok[i];

		e->bytes = out;
		e->n_bytes = (uint32_t)decode_token(t, e, out);
		out += e->n_bytes;
	}
}

/* ---- byte tokens and merges ------------------------------------------------- */

static int bpe_bytes(infer_tokenizer *t, infer_error *err)
{
	char buf[4];
	int b;

	for (b = 0; b < 256; b++) {
		size_t n = unicode_utf8_encode(bytelevel_cp((uint8_t)b), buf);

		t->byte_tok[b] = tok_lookup(t, buf, n);
		if (t->byte_tok[b] < 0)
			return infer_error_set(err, INFER_E_TOKENIZER, -1,
					       "byte-level vocabulary has no token for byte 0x%02X ('%.*s')",
					       b, (int)n, buf);
	}
	return 0;
}

static void spm_bytes(infer_tokenizer *t)
{
	char buf[8];
	int b;

	for (b = 0; b < 256; b++) {
		snprintf(buf, sizeof(buf), "<0x%02X>", b);
		t->byte_tok[b] = tok_lookup(t, buf, 6);
	}
}

static int merge_insert(infer_tokenizer *t, uint64_t key, int32_t rank, int32_t result)
{
	uint64_t i = hash_pair(key) & t->merge_mask;

	for (;; i = (i + 1) & t->merge_mask) {
		struct merge_slot *s = &t->merges[i];

		if (s->key == key)
			return 0; /* a repeated pair keeps its first (lowest) rank */
		if (s->key == MERGE_EMPTY) {
			s->key = key;
			s->rank = rank;
			s->result = result;
			return 1;
		}
	}
}

/* Each merge is "left right" (split at the first space after the first
 * byte). A merge is applied by token ids, so both halves and their
 * concatenation must be tokens; a vocabulary where they are not is rejected
 * rather than tokenized differently from its reference. */
static int read_merges(infer_tokenizer *t, const gguf_file *f, infer_error *err)
{
	const gguf_kv *kv;
	char *cat = NULL;
	size_t cat_cap = 0;
	uint64_t i, n;
	int rc;

	rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_VT_STRING, &kv, err);
	if (rc)
		return rc;
	n = kv->v.arr.n;
	if (n > INT32_MAX)
		return infer_error_set(err, INFER_E_TOKENIZER, (int64_t)kv->offset,
				       "tokenizer.ggml.merges has %llu entries", (unsigned long long)n);
	t->merge_mask = pow2_at_least(2 * n) - 1;
	t->merges = malloc((t->merge_mask + 1) * sizeof(*t->merges));
	if (!t->merges)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory for %llu merges",
				       (unsigned long long)n);
	memset(t->merges, 0xff, (t->merge_mask + 1) * sizeof(*t->merges));

	for (i = 0; i < n; i++) {
		gguf_str s = kv->v.arr.strs[i];
		const char *sp = s.len > 1 ? memchr(s.data + 1, ' ', s.len - 1) : NULL;
		size_t ll, rl;
		int32_t l, r, res;

		if (!sp) {
			rc = infer_error_set(err, INFER_E_TOKENIZER, (int64_t)kv->offset,
					     "tokenizer.ggml.merges[%llu] '%.*s' is not 'left right'",
					     (unsigned long long)i, (int)(s.len > 64 ? 64 : s.len), s.data);
			goto out;
		}
		ll = (size_t)(sp - s.data);
		rl = s.len - ll - 1;
		if (ll + rl > cat_cap) {
			char *p = realloc(cat, 2 * (ll + rl));

			if (!p) {
				rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
				goto out;
			}
			cat = p;
			cat_cap = 2 * (ll + rl);
		}
		memcpy(cat, s.data, ll);
		memcpy(cat + ll, sp + 1, rl);
		l = tok_lookup(t, s.data, ll);
		r = tok_lookup(t, sp + 1, rl);
		res = tok_lookup(t, cat, ll + rl);
		if (l < 0 || r < 0 || res < 0) {
			rc = infer_error_set(err, INFER_E_TOKENIZER, (int64_t)kv->offset,
					     "tokenizer.ggml.merges[%llu] '%.*s': %s is not a token",
					     (unsigned long long)i, (int)(s.len > 64 ? 64 : s.len), s.data,
					     l < 0 ? "the left part" : r < 0 ? "the right part" :
					     "the merged text");
			goto out;
		}
		merge_insert(t, (uint64_t)(uint32_t)l << 32 | (uint32_t)r, (int32_t)i, res);
	}
	rc = 0;
out:
	free(cat);
	return rc;
}

/* ---- special tokens and end of generation ---------------------------------- */

/* llama.cpp (llama-vocab.cpp) ends generation at the eos/eot/eom ids and at
 * every token spelled like one of these, and forces such tokens, and the FIM
 * tokens, to be control tokens even when the vocabulary calls them normal
 * (it logs "control-looking token"). We do the same so that EOG and
 * parse_special agree with it. */
static const char *const eog_names[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
	"<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>",
	"<end_of_utterance>", "</s>",
	/* DeepSeek's "<｜end▁of▁sentence｜>" (octal escapes: a hex escape would
	 * swallow the letters after it) */
	"<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>",
	/* FIM pad / repo / file separator: also EOG */
	"<|fim_pad|>", "<fim-pad>", "<PAD>", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
	"<REPO>", "<|file_sep|>",
};
static const char *const fim_names[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>",
	"<|fim_suffix|>", "<fim-suffix>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>",
	"<|fim_middle|>", "<fim-middle>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>",
};

/* llama.cpp picks one FIM pad/repo/separator token per vocabulary (the first
 * spelling its hash map yields); we mark every spelling present. They only
 * differ for a vocabulary holding two spellings of one role, which none of
 * the supported ones does. */
static void mark_eog(infer_tokenizer *t)
{
	size_t i;
	int32_t id;

	for (i = 0; i < sizeof(eog_names) / sizeof(eog_names[0]); i++) {
		id = infer_tokenizer_find(t, eog_names[i]);
		if (id >= 0) {
			t->tok[id].eog = 1;
			t->tok[id].type = TOK_CONTROL;
		}
	}
	for (i = 0; i < sizeof(fim_names) / sizeof(fim_names[0]); i++) {
		id = infer_tokenizer_find(t, fim_names[i]);
		if (id >= 0)
			t->tok[id].type = TOK_CONTROL;
	}
	if (t->eos >= 0)
		t->tok[t->eos].eog = 1;
	if (t->eot >= 0)
		t->tok[t->eot].eog = 1;
	if (t->eom >= 0)
		t->tok[t->eom].eog = 1;
}

struct special_key {
	uint32_t len;
	int32_t id;
};

static int cmp_special(const void *a, const void *b)
{
	const struct special_key *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int is_special_type(uint8_t ty)
{
	return ty == TOK_CONTROL || ty == TOK_USER_DEFINED || ty == TOK_UNKNOWN;
}

/* Tokens that are split out of the text before encoding, longest first so
 * that "<|im_start|>" wins over any shorter token inside it. */
static int collect_special(infer_tokenizer *t, infer_error *err)
{
	struct special_key *keys;
	size_t i, n = 0;
	int32_t id;

	for (id = 0; id < t->n_vocab; id++)
		n += is_special_type(t->tok[id].type) && t->tok[id].len > 0;
	keys = malloc((n ? n : 1) * sizeof(*keys));
	t->special = malloc((n ? n : 1) * sizeof(*t->special));
	if (!keys || !t->special) {
		free(keys);
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	}
	for (id = 0, n = 0; id < t->n_vocab; id++) {
		if (is_special_type(t->tok[id].type) && t->tok[id].len > 0)
			keys[n++] = (struct special_key){ t->tok[id].len, id };
	}
	qsort(keys, n, sizeof(*keys), cmp_special);
	for (i = 0; i < n; i++)
		t->special[i] = keys[i].id;
	t->n_special = n;
	free(keys);
	return 0;
}

/* ---- load / free ------------------------------------------------------------ */

static int read_specials(infer_tokenizer *t, const gguf_file *f, infer_error *err)
{
	int rc;

	t->bos = t->eos = t->unk = t->eot = t->eom = -1;
	if (t->model == TOK_MODEL_SPM) {
		/* SentencePiece defaults as llama.cpp assumes them. */
		t->bos = t->n_vocab > 1 ? 1 : -1;
		t->eos = t->n_vocab > 2 ? 2 : -1;
		t->unk = 0;
		t->add_bos = 1;
		t->add_space_prefix = 1;
	}
	if ((rc = get_opt_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err)) ||
	    (rc = get_opt_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err)) ||
	    (rc = get_opt_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err)) ||
	    (rc = get_opt_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, err)) ||
	    (rc = get_opt_id(f, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom, err)) ||
	    (rc = get_opt_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) ||
	    (rc = get_opt_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err)) ||
	    (rc = get_opt_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err)))
		return rc;
	if (t->add_bos && t->bos < 0)
		return infer_error_set(err, INFER_E_TOKENIZER, -1,
				       "tokenizer.ggml.add_bos_token is set but there is no BOS token");
	return 0;
}

infer_tokenizer *infer_tokenizer_load(const gguf_file *f, infer_error *err)
{
	infer_tokenizer *t = calloc(1, sizeof(*t));
	int rc;

	if (!t) {
		infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		return NULL;
	}
	rc = read_model(t, f, err);
	if (!rc)
		rc = read_tokens(t, f, err);
	if (!rc)
		rc = read_specials(t, f, err);
	if (!rc && t->model == TOK_MODEL_BPE)
		rc = bpe_bytes(t, err);
	if (!rc && t->model == TOK_MODEL_BPE)
		rc = read_merges(t, f, err);
	if (rc) {
		infer_tokenizer_free(t);
		return NULL;
	}
	if (t->model == TOK_MODEL_SPM)
		spm_bytes(t);
	mark_eog(t);
	decode_all(t);
	if (collect_special(t, err)) {
		infer_tokenizer_free(t);
		return NULL;
	}
	return t;
}

void infer_tokenizer_free(infer_tokenizer *t)
{
	if (!t)
		return;
	free(t->tok);
	free(t->arena);
	free(t->map);
	free(t->merges);
	free(t->special);
	free(t);
}

int32_t infer_tokenizer_n_vocab(const infer_tokenizer *t)
{
	return t->n_vocab;
}

int32_t infer_tokenizer_bos(const infer_tokenizer *t)
{
	return t->bos;
}

int32_t infer_tokenizer_eos(const infer_tokenizer *t)
{
	return t->eos;
}

int infer_tokenizer_is_eog(const infer_tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && t->tok[id].eog;
}

int32_t infer_tokenizer_find(const infer_tokenizer *t, const char *s)
{
	return tok_lookup(t, s, strlen(s));
}

/* ---- encoding ----------------------------------------------------------------- */

struct frag {
	size_t off, len;
	int32_t tok; /* >= 0: a special token; -1: text [off, off+len) */
};

struct frag_list {
	struct frag *v;
	size_t n, cap;
};

static int frag_push(struct frag_list *l, size_t off, size_t len, int32_t tok)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct frag *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return INFER_E_NOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = (struct frag){ off, len, tok };
	return 0;
}

/* Splits the text fragments of *l at every occurrence of token id, left to
 * right, as llama.cpp's tokenizer_st_partition does for each special token
 * in turn. */
static int split_at(const infer_tokenizer *t, const char *text, struct frag_list *l, int32_t id)
{
	const struct tok_entry *e = &t->tok[id];
	struct frag_list out = { 0 };
	size_t i;
	int rc = 0;

	for (i = 0; i < l->n && !rc; i++) {
		struct frag fr = l->v[i];
		size_t pos = fr.off, end = fr.off + fr.len;

		if (fr.tok >= 0) {
			rc = frag_push(&out, fr.off, fr.len, fr.tok);
			continue;
		}
		while (!rc && pos < end) {
			const char *m = end - pos >= e->len ?
				memmem(text + pos, end - pos, e->text, e->len) : NULL;

			if (!m) {
				rc = frag_push(&out, pos, end - pos, -1);
				break;
			}
			if ((size_t)(m - text) > pos)
				rc = frag_push(&out, pos, (size_t)(m - text) - pos, -1);
			if (!rc)
				rc = frag_push(&out, (size_t)(m - text), e->len, id);
			pos = (size_t)(m - text) + e->len;
		}
	}
	free(l->v);
	*l = out;
	return rc;
}

int infer_tokenize_ex(const infer_tokenizer *t, const char *text, size_t len, int parse_special,
		      int add_special, int32_t **ids, size_t *n_ids, infer_error *err)
{
	struct frag_list fl = { 0 };
	struct id_buf out = { 0 };
	size_t i;
	int rc = 0, prev_special = 1;

	*ids = NULL;
	*n_ids = 0;
	if (len > 0 && frag_push(&fl, 0, len, -1))
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	for (i = 0; i < t->n_special && !rc; i++) {
		uint8_t ty = t->tok[t->special[i]].type;

		/* User-defined tokens are always split out; control ones on request. */
		if (!parse_special && ty != TOK_USER_DEFINED)
			continue;
		rc = split_at(t, text, &fl, t->special[i]);
	}
	if (rc) {
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		goto fail;
	}
	if (add_special && t->add_bos && (rc = id_buf_push(&out, t->bos)))
		goto nomem;
	for (i = 0; i < fl.n; i++) {
		const struct frag *fr = &fl.v[i];

		if (fr->tok >= 0) {
			rc = id_buf_push(&out, fr->tok);
			if (rc)
				goto nomem;
			prev_special = 1;
			continue;
		}
		if (t->model == TOK_MODEL_BPE) {
			rc = bpe_encode(t, text + fr->off, fr->len, &out, err);
		} else {
			/* SentencePiece marks a word start with a space: llama.cpp adds one
			 * to the first text fragment and to each one after a special token. */
			rc = spm_encode(t, text + fr->off, fr->len,
					t->add_space_prefix && prev_special, &out, err);
		}
		if (rc)
			goto fail;
		prev_special = 0;
	}
	if (add_special && t->add_eos && t->eos >= 0 && (rc = id_buf_push(&out, t->eos)))
		goto nomem;
	free(fl.v);
	*ids = out.ids;
	*n_ids = out.n;
	return 0;
nomem:
	rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
fail:
	free(fl.v);
	free(out.ids);
	return rc;
}

int infer_tokenize(const infer_tokenizer *t, const char *text, size_t len, int parse_special,
		   int32_t **ids, size_t *n_ids, infer_error *err)
{
	return infer_tokenize_ex(t, text, len, parse_special, 1, ids, n_ids, err);
}

/* ---- decoding ---------------------------------------------------------------- */

int infer_token_bytes(const infer_tokenizer *t, int32_t id, const char **bytes, size_t *len)
{
	if (id < 0 || id >= t->n_vocab)
		return INFER_E_ARG;
	*bytes = t->tok[id].bytes;
	*len = t->tok[id].n_bytes;
	return 0;
}

static const char replacement[3] = { (char)0xEF, (char)0xBF, (char)0xBD };

/* Emits the complete sequences of buf[0..n) to out; an invalid byte becomes
 * U+FFFD, a valid but unfinished tail is left in *keep. Returns the bytes
 * written or INFER_E_ARG when out is too small. */
static int emit_utf8(const unsigned char *buf, size_t n, char *out, size_t cap, size_t *keep)
{
	size_t p = 0, w = 0;

	*keep = 0;
	while (p < n) {
		int l = utf8_valid_len(buf + p, n - p);
		const char *src = (const char *)buf + p;
		size_t sl = (size_t)l;

		if (l < 0) {
			*keep = n - p;
			break;
		}
		if (l == 0) {
			src = replacement;
			sl = 3;
		}
		if (w + sl > cap)
			return INFER_E_ARG;
		memcpy(out + w, src, sl);
		w += sl;
		p += l ? (size_t)l : 1;
	}
	return (int)w;
}

int infer_detok_push(const infer_tokenizer *t, infer_detok *st, int32_t id, char *out, size_t cap)
{
	unsigned char small[256], *buf = small;
	const char *b;
	size_t n, total, keep;
	int w;

	if (infer_token_bytes(t, id, &b, &n))
		return INFER_E_ARG;
	total = st->n_pending + n;
	if (total > sizeof(small) && !(buf = malloc(total)))
		return INFER_E_NOMEM;
	memcpy(buf, st->pending, st->n_pending);
	memcpy(buf + st->n_pending, b, n);
	w = emit_utf8(buf, total, out, cap, &keep);
	if (w >= 0) {
		/* keep <= 3: an unfinished sequence is at most 3 bytes long. */
		memcpy(st->pending, buf + total - keep, keep);
		st->n_pending = keep;
	}
	if (buf != small)
		free(buf);
	return w;
}

int infer_detok_flush(infer_detok *st, char *out, size_t cap)
{
	if (st->n_pending == 0)
		return 0;
	/* What is pending is one unfinished sequence: one replacement char. */
	if (cap < 3)
		return INFER_E_ARG;
	memcpy(out, replacement, 3);
	st->n_pending = 0;
	return 3;
}

/* Skips the BOS that encoding added and, for SentencePiece, the space the
 * encoder put in front of the text (llama.cpp's llama_detokenize strips it
 * too), so that detokenize(tokenize(s)) == s. */
char *infer_detokenize(const infer_tokenizer *t, const int32_t *ids, size_t n)
{
	return infer_detokenize_len(t, ids, n, NULL);
}

char *infer_detokenize_len(const infer_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
	size_t i, total = 0, pos = 0, first;
	char *s;

	for (i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= t->n_vocab)
			return NULL;
		total += t->tok[ids[i]].n_bytes;
	}
	s = malloc(total + 1);
	if (!s)
		return NULL;
	first = (n > 0 && t->add_bos && ids[0] == t->bos) ? 1 : 0;
	for (i = first; i < n; i++) {
		const struct tok_entry *e = &t->tok[ids[i]];
		const char *b = e->bytes;
		size_t nb = e->n_bytes;

		if (i == first && t->model == TOK_MODEL_SPM && t->add_space_prefix && nb > 0 &&
		    b[0] == ' ') {
			b++;
			nb--;
		}
		memcpy(s + pos, b, nb);
		pos += nb;
	}
	s[pos] = '\0';
	if (len)
		*len = pos;
	return s;
}

char *infer_chat_format(const infer_tokenizer *t, const char *user_msg)
{
	static const char pre[] = "<|im_start|>user\n";
	static const char post[] = "<|im_end|>\n<|im_start|>assistant\n";
	size_t n = strlen(user_msg);
	char *s;

	/* ChatML needs its two control tokens; without them the prompt would be
	 * tokenized as plain text and the model would see garbage. */
	if (infer_tokenizer_find(t, "<|im_start|>") < 0 || infer_tokenizer_find(t, "<|im_end|>") < 0)
		return NULL;
	s = malloc(sizeof(pre) - 1 + n + sizeof(post));
	if (!s)
		return NULL;
	memcpy(s, pre, sizeof(pre) - 1);
	memcpy(s + sizeof(pre) - 1, user_msg, n);
	memcpy(s + sizeof(pre) - 1 + n, post, sizeof(post));
	return s;
}
