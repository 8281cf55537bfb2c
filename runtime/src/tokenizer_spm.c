/* SentencePiece-style BPE (tokenizer.ggml.model = llama), as llama.cpp's
 * SPM tokenizer does it: spaces become U+2581 ("▁"), the text is split into
 * UTF-8 characters, and the adjacent pair whose concatenation is the
 * highest-scoring token is merged until no pair is a token. A piece that is
 * not a token is emitted as byte tokens <0xXX> (byte fallback), or as the
 * unknown token when the vocabulary has no byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

struct spm_sym {
	size_t off, len; /* into the escaped text; len 0 = merged away */
	int32_t prev, next;
};

struct spm_pair {
	float score;
	int32_t left, right;
	size_t len; /* of the concatenation when pushed */
};

/* Highest score first; among equal scores the leftmost pair. */
static int spm_before(const struct spm_pair *a, const struct spm_pair *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

struct spm_heap {
	struct spm_pair *v;
	size_t n;
};

static void spm_push(struct spm_heap *h, struct spm_pair p)
{
	size_t i = h->n++;

	while (i > 0 && spm_before(&p, &h->v[(i - 1) / 2])) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = p;
}

static struct spm_pair spm_pop(struct spm_heap *h)
{
	struct spm_pair top = h->v[0], last = h->v[--h->n];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < h->n) {
		if (c + 1 < h->n && spm_before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!spm_before(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static void spm_try(const infer_tokenizer *t, const char *s, const struct spm_sym *sym,
		    struct spm_heap *h, int32_t l, int32_t r)
{
	size_t n;
	int32_t id;

	if (l < 0 || r < 0)
		return;
	n = sym[l].len + sym[r].len; /* adjacent, so contiguous in s */
	id = tok_lookup(t, s + sym[l].off, n);
	if (id >= 0)
		spm_push(h, (struct spm_pair){ t->tok[id].score, l, r, n });
}

static int spm_emit(const infer_tokenizer *t, const char *s, const struct spm_sym *y,
		    struct id_buf *out, infer_error *err)
{
	int32_t id = tok_lookup(t, s + y->off, y->len);
	size_t j;

	if (id >= 0)
		return id_buf_push(out, id) ? INFER_E_NOMEM : 0;
	for (j = 0; j < y->len; j++) {
		id = t->byte_tok[(unsigned char)s[y->off + j]];
		if (id < 0)
			id = t->unk;
		if (id < 0)
			return infer_error_set(err, INFER_E_TOKENIZER, -1,
					       "byte 0x%02X has no token and there is no unknown token",
					       (unsigned char)s[y->off + j]);
		if (id_buf_push(out, id))
			return INFER_E_NOMEM;
	}
	return 0;
}

/* Escapes the text: optional leading space, then every ' ' as U+2581. */
static char *spm_escape(const char *text, size_t len, int prefix_space, size_t *n)
{
	char *s = malloc(3 * (len + 1));
	size_t i, k = 0;

	if (!s)
		return NULL;
	for (i = 0; i < len + (prefix_space ? 1 : 0); i++) {
		char c = prefix_space ? (i == 0 ? ' ' : text[i - 1]) : text[i];

		if (c == ' ') {
			memcpy(s + k, "\xe2\x96\x81", 3);
			k += 3;
		} else {
			s[k++] = c;
		}
	}
	*n = k;
	return s;
}

int spm_encode(const infer_tokenizer *t, const char *text, size_t len, int prefix_space,
	       struct id_buf *out, infer_error *err)
{
	static const uint8_t utf8_len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	struct spm_sym *sym = NULL;
	struct spm_heap h = { 0 };
	size_t n, off = 0, nsym = 0;
	char *s;
	int32_t i;
	int rc = 0;

	if (len == 0 && !prefix_space)
		return 0;
	s = spm_escape(text, len, prefix_space, &n);
	if (s) {
		sym = malloc(n * sizeof(*sym));
		h.v = malloc(3 * n * sizeof(*h.v));
	}
	if (!s || !sym || !h.v) {
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		goto out;
	}
	/* One symbol per UTF-8 character (by its lead byte, as llama.cpp). */
	while (off < n) {
		size_t l = utf8_len[(unsigned char)s[off] >> 4];

		if (l > n - off)
			l = n - off;
		sym[nsym] = (struct spm_sym){ off, l, (int32_t)nsym - 1, -1 };
		if (nsym > 0)
			sym[nsym - 1].next = (int32_t)nsym;
		nsym++;
		off += l;
	}
	for (i = 1; i < (int32_t)nsym; i++)
		spm_try(t, s, sym, &h, i - 1, i);
	while (h.n) {
		struct spm_pair p = spm_pop(&h);
		struct spm_sym *l = &sym[p.left], *r = &sym[p.right];

		if (l->len == 0 || r->len == 0 || l->len + r->len != p.len || l->next != p.right)
			continue; /* stale */
		l->len += r->len;
		r->len = 0;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = p.left;
		spm_try(t, s, sym, &h, l->prev, p.left);
		spm_try(t, s, sym, &h, p.left, l->next);
	}
	for (i = 0; nsym > 0 && i >= 0 && !rc; i = sym[i].next)
		rc = spm_emit(t, s, &sym[i], out, err);
	if (rc == INFER_E_NOMEM)
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
out:
	free(s);
	free(sym);
	free(h.v);
	return rc;
}
