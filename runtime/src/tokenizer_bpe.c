/* Byte-level BPE (tokenizer.ggml.model = gpt2): split the text into words
 * with the pre-tokenizer's regex, then merge each word's bytes by rank.
 *
 * The regexes are matched by hand on code point classes (unicode.h), one
 * alternative after another with the same leftmost-first, greedy,
 * backtracking semantics as the regex engines the reference tokenizers use.
 * Text is decoded leniently, like llama.cpp: an invalid byte becomes U+FFFD
 * (and is encoded as EF BF BD), so ids match its output for any input. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

/* ---- pre-tokenizer ---------------------------------------------------------- */

struct cptext {
	const uint32_t *cp;
	const uint8_t *cls; /* enum uclass */
	size_t n;
};

static int is_crlf(uint32_t c)
{
	return c == '\r' || c == '\n';
}

static size_t run_end(const struct cptext *x, size_t i, enum uclass c)
{
	while (i < x->n && x->cls[i] == c)
		i++;
	return i;
}

/* 's 't 're 've 'm 'll 'd at i (ASCII case-insensitive when ci): length. */
static size_t contraction(const struct cptext *x, size_t i, int ci)
{
	static const char *const suffix[] = { "s", "t", "re", "ve", "m", "ll", "d" };
	size_t k, j;

	if (x->cp[i] != '\'')
		return 0;
	for (k = 0; k < sizeof(suffix) / sizeof(suffix[0]); k++) {
		for (j = 0; suffix[k][j]; j++) {
			uint32_t c;

			if (i + 1 + j >= x->n)
				break;
			c = x->cp[i + 1 + j];
			if (ci && c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			if (c != (uint32_t)suffix[k][j])
				break;
		}
		if (!suffix[k][j])
			return 1 + j;
	}
	return 0;
}

/* Whitespace alternatives shared by all three regexes, at a whitespace
 * code point i whose run ends at e:
 *   \s+(?!\S)  the run, minus its last character unless the text ends there
 *   \s+        otherwise the whole run */
static size_t space_run(const struct cptext *x, size_t i, size_t e)
{
	if (e == x->n || e - i == 1)
		return e - i;
	return e - 1 - i;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const struct cptext *x, size_t i)
{
	size_t m = contraction(x, i, 0), j = i;
	enum uclass c;

	if (m)
		return m;
	if (x->cp[i] == ' ' && i + 1 < x->n && x->cls[i + 1] != UCLASS_SPACE)
		j = i + 1; /* " ?" takes the space when a letter/number/other follows */
	c = (enum uclass)x->cls[j];
	if (c != UCLASS_SPACE)
		return run_end(x, j, c) - i;
	return space_run(x, i, run_end(x, i, UCLASS_SPACE));
}

/* Qwen2 / Llama 3:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t match_qwen2(const struct cptext *x, size_t i, size_t max_digits)
{
	enum uclass c = (enum uclass)x->cls[i];
	size_t m = contraction(x, i, 1), e, j, k;

	if (m)
		return m;
	if (c == UCLASS_LETTER)
		return run_end(x, i, UCLASS_LETTER) - i;
	if (c != UCLASS_NUMBER && !is_crlf(x->cp[i]) && i + 1 < x->n &&
	    x->cls[i + 1] == UCLASS_LETTER)
		return run_end(x, i + 1, UCLASS_LETTER) - i;
	if (c == UCLASS_NUMBER) {
		e = run_end(x, i, UCLASS_NUMBER);
		return e - i < max_digits ? e - i : max_digits;
	}
	/* " ?[^\s\p{L}\p{N}]+[\r\n]*" */
	j = i;
	if (x->cp[i] == ' ' && i + 1 < x->n && x->cls[i + 1] == UCLASS_OTHER)
		j = i + 1;
	if (x->cls[j] == UCLASS_OTHER) {
		e = run_end(x, j, UCLASS_OTHER);
		while (e < x->n && is_crlf(x->cp[e]))
			e++;
		return e - i;
	}
	/* Whitespace. "\s*[\r\n]+": the greedy \s* backs off to the last CR/LF
	 * of the run, which [\r\n]+ then takes. */
	e = run_end(x, i, UCLASS_SPACE);
	for (k = e; k > i; k--) {
		if (is_crlf(x->cp[k - 1]))
			return k - i;
	}
	return space_run(x, i, e);
}

static size_t match_word(enum tok_pre pre, const struct cptext *x, size_t i)
{
	switch (pre) {
	case TOK_PRE_GPT2:
		return match_gpt2(x, i);
	case TOK_PRE_LLAMA3:
		return match_qwen2(x, i, 3);
	case TOK_PRE_QWEN2:
	default:
		return match_qwen2(x, i, 1);
	}
}

/* ---- merges ------------------------------------------------------------------- */

struct sym {
	int32_t id;
	int32_t prev, next; /* -1 at the ends */
	int32_t alive;
};

struct bigram {
	int32_t rank, left, right, lid, rid, result;
};

struct heap {
	struct bigram *v;
	size_t n;
};

/* Lowest rank first; among equal ranks the leftmost pair (as llama.cpp). */
static int before(const struct bigram *a, const struct bigram *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct heap *h, struct bigram b)
{
	size_t i = h->n++;

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!before(&b, &h->v[p]))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = b;
}

static struct bigram heap_pop(struct heap *h)
{
	struct bigram top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!before(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static const struct merge_slot *find_merge(const infer_tokenizer *t, int32_t l, int32_t r)
{
	uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
	uint64_t i = key;

	i ^= i >> 31;
	i *= 0x9E3779B97F4A7C15ull;
	i = (i ^ (i >> 29)) & t->merge_mask;
	for (;; i = (i + 1) & t->merge_mask) {
		const struct merge_slot *s = &t->merges[i];

		if (s->key == key)
			return s;
		if (s->key == MERGE_EMPTY)
			return NULL;
	}
}

static void try_pair(const infer_tokenizer *t, const struct sym *s, struct heap *h, int32_t l,
		     int32_t r)
{
	const struct merge_slot *m;

	if (l < 0 || r < 0)
		return;
	m = find_merge(t, s[l].id, s[r].id);
	if (m)
		heap_push(h, (struct bigram){ m->rank, l, r, s[l].id, s[r].id, m->result });
}

/* Merges one word (n bytes); sym and heap have room for n and 3n entries. */
static int bpe_word(const infer_tokenizer *t, const unsigned char *w, size_t n, struct sym *s,
		    struct heap *h, struct id_buf *out)
{
	int32_t i, n32 = (int32_t)n;

	for (i = 0; i < n32; i++)
		s[i] = (struct sym){ t->byte_tok[w[i]], i - 1, i + 1 < n32 ? i + 1 : -1, 1 };
	h->n = 0;
	for (i = 1; i < n32; i++)
		try_pair(t, s, h, i - 1, i);
	while (h->n) {
		struct bigram b = heap_pop(h);
		struct sym *l = &s[b.left], *r = &s[b.right];

		/* Stale entries: a side was merged away or changed since the push. */
		if (!l->alive || !r->alive || l->next != b.right || l->id != b.lid || r->id != b.rid)
			continue;
		l->id = b.result;
		l->next = r->next;
		r->alive = 0;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		try_pair(t, s, h, l->prev, b.left);
		try_pair(t, s, h, b.left, l->next);
	}
	for (i = 0; i >= 0; i = s[i].next) {
		if (id_buf_push(out, s[i].id))
			return INFER_E_NOMEM;
	}
	return 0;
}

/* ---- driver ------------------------------------------------------------------- */

struct work {
	uint32_t *cp;
	uint8_t *cls;
	size_t *boff;         /* byte offset of each code point in bytes; n+1 entries */
	unsigned char *bytes; /* the text re-encoded (== input for valid UTF-8) */
	struct sym *sym;      /* sized for the longest word so far */
	struct heap heap;     /* 3 entries per byte: n-1 pairs + 2 per merge */
	char *enc;            /* a word in byte-level characters (2 bytes per byte at most) */
	size_t word_cap;
};

static void work_free(struct work *w)
{
	free(w->cp);
	free(w->cls);
	free(w->boff);
	free(w->bytes);
	free(w->sym);
	free(w->heap.v);
	free(w->enc);
}

static int work_alloc(struct work *w, size_t len)
{
	memset(w, 0, sizeof(*w));
	w->cp = malloc(len * sizeof(*w->cp));
	w->cls = malloc(len);
	w->boff = malloc((len + 1) * sizeof(*w->boff));
	w->bytes = malloc(3 * len); /* an invalid byte grows to EF BF BD */
	if (!w->cp || !w->cls || !w->boff || !w->bytes) {
		work_free(w);
		return INFER_E_NOMEM;
	}
	return 0;
}

/* Grows the per-word buffers: words are short except in odd inputs (a
 * megabyte of one letter), so they are sized by the word, not the text. */
static int work_word(struct work *w, size_t n)
{
	struct sym *s;
	struct bigram *h;
	char *e;
	size_t cap = w->word_cap;

	if (n <= cap)
		return 0;
	while (cap < n)
		cap = cap ? 2 * cap : 64;
	s = realloc(w->sym, cap * sizeof(*s));
	if (!s)
		return INFER_E_NOMEM;
	w->sym = s;
	h = realloc(w->heap.v, 3 * cap * sizeof(*h));
	if (!h)
		return INFER_E_NOMEM;
	w->heap.v = h;
	e = realloc(w->enc, 2 * cap);
	if (!e)
		return INFER_E_NOMEM;
	w->enc = e;
	w->word_cap = cap;
	return 0;
}

/* The token spelled like the whole word in byte-level characters, or -1. */
static int32_t word_token(const infer_tokenizer *t, const unsigned char *b, size_t n,
			  struct work *w)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += unicode_utf8_encode(bytelevel_cp(b[i]), w->enc + k);
	return tok_lookup(t, w->enc, k);
}

int bpe_encode(const infer_tokenizer *t, const char *text, size_t len, struct id_buf *out,
	       infer_error *err)
{
	const unsigned char *s = (const unsigned char *)text;
	struct cptext x;
	struct work w;
	size_t p = 0, n = 0, nb = 0, i, l;
	int rc = 0;

	if (len == 0)
		return 0;
	if (len > INT32_MAX / 8)
		return infer_error_set(err, INFER_E_ARG, -1, "text of %zu bytes is too long", len);
	if (work_alloc(&w, len))
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory for %zu bytes", len);
	while (p < len) {
		uint32_t c = utf8_decode_lenient(s + p, len - p, &l);

		w.cp[n] = c;
		w.cls[n] = (uint8_t)ucd_class(c);
		w.boff[n++] = nb;
		nb += unicode_utf8_encode(c, (char *)w.bytes + nb);
		p += l;
	}
	w.boff[n] = nb;
	x = (struct cptext){ w.cp, w.cls, n };
	for (i = 0; i < n && !rc; i += l) {
		size_t nb_word;

		int32_t whole;

		l = match_word(t->pre, &x, i);
		nb_word = w.boff[i + l] - w.boff[i];
		rc = work_word(&w, nb_word);
		if (rc)
			break;
		/* Llama 3 ("ignore_merges" in llama.cpp): a word that is a token as a
		 * whole is that token, whatever the merges would make of it. */
		whole = t->pre == TOK_PRE_LLAMA3 ? word_token(t, w.bytes + w.boff[i], nb_word, &w) : -1;
		if (whole >= 0)
			rc = id_buf_push(out, whole);
		else
			rc = bpe_word(t, w.bytes + w.boff[i], nb_word, w.sym, &w.heap, out);
	}
	work_free(&w);
	if (rc)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
	return 0;
}
