/* Tokenizer against the reference vectors and a hand-written list of hard
 * cases, plus decoding: detokenize(tokenize(s)) == s and a streaming
 * decoder that never splits a character.
 *
 * Reference data: ../shared/conformance/tokenizer (llama.cpp's ids, see its
 * README), with golden/conformance/tokenizer (the 8k vocabulary and its
 * vectors) as fallback. Each test prints "skipped: reference set not found"
 * and passes when its files are in neither place, as on a fresh clone. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "infer/gguf.h"
#include "infer/tokenizer.h"
#include "cunit_table.h"

/* ---- locating and loading the reference data ---------------------------- */

static char *find_file(const char *name, int allow_golden)
{
	const char *shared = getenv("INFER_SHARED_DIR");
	const char *src = getenv("INFER_SOURCE_DIR");
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/conformance/tokenizer/%s", shared ? shared : "../shared",
		 name);
	if (stat(path, &st) == 0)
		return strdup(path);
	if (!allow_golden)
		return NULL;
	snprintf(path, sizeof(path), "%s/golden/conformance/tokenizer/%s", src ? src : ".", name);
	return stat(path, &st) == 0 ? strdup(path) : NULL;
}

static char *find_golden(const char *name)
{
	const char *src = getenv("INFER_SOURCE_DIR");
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/golden/conformance/tokenizer/%s", src ? src : ".", name);
	return stat(path, &st) == 0 ? strdup(path) : NULL;
}

struct vocab {
	const char *name;
	int allow_golden;
	gguf_file *f;
	infer_tokenizer *t;
	int tried;
};

static struct vocab v_full = { "qwen2-vocab.gguf", 0, NULL, NULL, 0 };
static struct vocab v_8k = { "qwen2-trunc8k-vocab.gguf", 1, NULL, NULL, 0 };

static infer_tokenizer *vocab_get(struct vocab *v)
{
	infer_error err;
	char *path;

	if (v->tried)
		return v->t;
	v->tried = 1;
	path = find_file(v->name, v->allow_golden);
	if (!path)
		return NULL;
	v->f = gguf_open(path, &err);
	if (v->f)
		v->t = infer_tokenizer_load(v->f, &err);
	if (!v->t)
		fprintf(stderr, "%s: %s\n", path, err.msg);
	CU_ASSERT_PTR_NOT_NULL(v->t); /* present but unreadable is a failure */
	free(path);
	return v->t;
}

static void vocab_free(struct vocab *v)
{
	infer_tokenizer_free(v->t);
	gguf_close(v->f);
	v->t = NULL;
	v->f = NULL;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
	size_t i;

	printf("  %s:", label);
	for (i = 0; i < n; i++)
		printf(" %d", ids[i]);
	printf("\n");
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* ---- the vector files ------------------------------------------------------ */

struct vecset {
	struct vocab *vocab;
	const char *inp, *out;
	int parse_special;
	int in_golden; /* the vector files are ours, in golden/ only */
};

static const struct vecset sets[] = {
	{ &v_full, "ggml-vocab-qwen2.gguf.inp", "ggml-vocab-qwen2.gguf.out", 0, 0 },
	{ &v_full, "qwen2-extra.inp", "qwen2-extra.out", 1, 0 },
	{ &v_full, "qwen2-extra-plain.inp", "qwen2-extra-plain.out", 0, 0 },
	{ &v_8k, "qwen2-extra.inp", "qwen2-trunc8k-extra.out", 1, 0 },
};

/* Loads a set's vectors; 0 when absent (skip), 1 when loaded. */
static int load_set(const struct vecset *s, infer_tokenizer **t, infer_tokvec *v)
{
	int golden = s->vocab->allow_golden;
	char *inp = s->in_golden ? find_golden(s->inp) : find_file(s->inp, golden);
	char *out = s->in_golden ? find_golden(s->out) : find_file(s->out, golden);
	infer_error err;
	int ok = 0;

	*t = vocab_get(s->vocab);
	if (*t && inp && out) {
		ok = infer_tokvec_load(inp, out, v, &err) == 0;
		if (!ok)
			fprintf(stderr, "%s\n", err.msg);
		CU_ASSERT_TRUE(ok);
	}
	if (!*t || !inp || !out)
		printf("skipped: reference set not found ");
	free(inp);
	free(out);
	return ok;
}

static void run_set(const struct vecset *s)
{
	infer_tokenizer *t;
	infer_tokvec v;
	size_t i, pass = 0;

	if (!load_set(s, &t, &v))
		return;
	for (i = 0; i < v.n; i++) {
		infer_error err;
		int32_t *ids = NULL;
		size_t n = 0;
		int rc = infer_tokenize_ex(t, v.text[i], v.text_len[i], s->parse_special, 0, &ids,
					   &n, &err);

		CU_ASSERT_EQUAL(rc, 0);
		if (rc == 0 && same_ids(ids, n, v.ids[i], v.n_ids[i])) {
			pass++;
		} else if (i - pass < 3) {
			printf("\n  %s:%zu mismatch for \"%s\"\n", s->out, v.out_line[i], v.text[i]);
			print_ids("got     ", ids, n);
			print_ids("expected", v.ids[i], v.n_ids[i]);
		}
		free(ids);
	}
	printf("%zu/%zu ", pass, v.n);
	CU_ASSERT_EQUAL(pass, v.n);
	CU_ASSERT(v.n > 0);
	infer_tokvec_free(&v);
}

static void test_vectors_ggml_qwen2(void) { run_set(&sets[0]); }
static void test_vectors_extra(void) { run_set(&sets[1]); }
static void test_vectors_extra_plain(void) { run_set(&sets[2]); }
static void test_vectors_trunc8k(void) { run_set(&sets[3]); }

/* ---- hard cases of our own ---------------------------------------------------
 *
 * Derived by reasoning from the Qwen2 pre-tokenizer regex
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (leftmost alternative first) and llama.cpp's special-token rules. Each
 * expected piece is one whole pre-token that is itself a vocabulary token,
 * so BPE must end on it; the test checks the ids AND that each id decodes to
 * the piece written here, so no id is a magic number. */
struct hard_case {
	const char *text;
	int parse_special;
	int32_t ids[8];
	const char *pieces[8];
	const char *why;
};

static const struct hard_case hard[] = {
	{ "it's", 0, { 275, 594, -1 }, { "it", "'s" }, "contraction is its own word" },
	{ "IT'S", 0, { 952, 13272, -1 }, { "IT", "'S" }, "(?i:...) contractions ignore case" },
	{ "don'tX", 0, { 15007, 944, 55, -1 }, { "don", "'t", "X" },
	  "'t wins over [^..]?\\p{L}+ because it comes first" },
	{ "  hello", 0, { 220, 23811, -1 }, { " ", " hello" },
	  "\\s+(?!\\S) leaves the last space to the word" },
	{ "a\n\n b", 0, { 64, 271, 293, -1 }, { "a", "\n\n", " b" },
	  "\\s*[\\r\\n]+ ends at the last newline of the run" },
	{ "a \t\n  b", 0, { 64, 17476, 220, 293, -1 }, { "a", " \t\n", " ", " b" },
	  "newline run, then \\s+(?!\\S), then ' b'" },
	{ "x  \n", 0, { 87, 2303, -1 }, { "x", "  \n" }, "trailing spaces join the newline" },
	{ "a\r\nb", 0, { 64, 319, 65, -1 }, { "a", "\r\n", "b" }, "CRLF is one word" },
	{ "12345", 0, { 16, 17, 18, 19, 20, -1 }, { "1", "2", "3", "4", "5" },
	  "\\p{N} takes one digit (llama3 would take three)" },
	{ "x\xc2\xb2", 0, { 87, 29456, -1 }, { "x", "\xc2\xb2" },
	  "superscript two is No, a number, not a letter" },
	{ "Hello world", 0, { 9707, 1879, -1 }, { "Hello", " world" }, "the basics" },
	{ "<tool_call>", 0, { 151657, -1 }, { "<tool_call>" },
	  "user-defined tokens are split out even without parse_special" },
	{ "</s>x", 1, { 128247, 87, -1 }, { "</s>", "x" },
	  "</s> (a normal token) is EOG-like, so llama.cpp makes it control" },
	{ "</s>x", 0, { 522, 82, 28257, -1 }, { "</", "s", ">x" },
	  "as text: '</' (punctuation run), 's', then '>' joins the letter after it" },
	{ "<|im_end|><|im_end|>", 1, { 151645, 151645, -1 }, { "<|im_end|>", "<|im_end|>" },
	  "adjacent control tokens" },
	{ "", 1, { -1 }, { NULL }, "empty text gives no tokens" },
};

static void check_hard(const infer_tokenizer *t, const struct hard_case *h)
{
	int32_t *ids = NULL;
	size_t n = 0, k, want = 0;
	infer_error err;

	while (h->ids[want] >= 0)
		want++;
	CU_ASSERT_EQUAL_FATAL(infer_tokenize_ex(t, h->text, strlen(h->text), h->parse_special, 0,
						&ids, &n, &err), 0);
	if (!same_ids(ids, n, h->ids, want)) {
		printf("\n  hard case \"%s\" (%s)\n", h->text, h->why);
		print_ids("got     ", ids, n);
		print_ids("expected", h->ids, want);
	}
	CU_ASSERT_TRUE(same_ids(ids, n, h->ids, want));
	for (k = 0; k < want; k++) {
		const char *b;
		size_t l;

		CU_ASSERT_EQUAL_FATAL(infer_token_bytes(t, h->ids[k], &b, &l), 0);
		CU_ASSERT_TRUE(l == strlen(h->pieces[k]) && memcmp(b, h->pieces[k], l) == 0);
	}
	free(ids);
}

static void test_hard_cases(void)
{
	infer_tokenizer *t = vocab_get(&v_full);
	size_t i;

	if (!t) {
		printf("skipped: reference set not found ");
		return;
	}
	for (i = 0; i < sizeof(hard) / sizeof(hard[0]); i++)
		check_hard(t, &hard[i]);
}

/* The hand-written hard-case files in golden/ (HARD-CASES.md): the expected
 * ids must spell each string exactly (so they are at least self-consistent)
 * and the tokenizer must produce them. */
static void hard_file(struct vocab *vb, const char *name, int special)
{
	char inp[256], out[256];
	struct vecset set = { vb, inp, out, special, 1 };
	infer_tokenizer *t;
	infer_tokvec v;
	size_t i;

	snprintf(inp, sizeof(inp), "%s.inp", name);
	snprintf(out, sizeof(out), "%s.out", name);
	if (!load_set(&set, &t, &v))
		return;
	for (i = 0; i < v.n; i++) {
		char *s = infer_detokenize(t, v.ids[i], v.n_ids[i]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		CU_ASSERT_TRUE(strlen(s) == v.text_len[i] && memcmp(s, v.text[i], v.text_len[i]) == 0);
		free(s);
	}
	infer_tokvec_free(&v);
	run_set(&set);
}

static void test_hard_files(void)
{
	hard_file(&v_8k, "hard-cases-qwen2-8k", 1);
	hard_file(&v_full, "hard-cases-qwen2", 0);
	hard_file(&v_full, "hard-cases-qwen2-special", 1);
}

/* Relations that need no expected ids: an invalid byte is read as U+FFFD
 * (as llama.cpp does), so it tokenizes like EF BF BD. */
static void test_invalid_utf8(void)
{
	infer_tokenizer *t = vocab_get(&v_full);
	int32_t *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	infer_error err;

	if (!t) {
		printf("skipped: reference set not found ");
		return;
	}
	CU_ASSERT_EQUAL(infer_tokenize_ex(t, "a\xff" "b", 3, 0, 0, &a, &na, &err), 0);
	CU_ASSERT_EQUAL(infer_tokenize_ex(t, "a\xef\xbf\xbd" "b", 5, 0, 0, &b, &nb, &err), 0);
	CU_ASSERT_TRUE(na > 0 && same_ids(a, na, b, nb));
	free(a);
	free(b);
}

/* The haiku model's prompt, from ../shared/models/README.md (its ids were
 * made by HuggingFace tokenizers, an independent implementation). */
static void test_haiku_prompt(void)
{
	static const int32_t want[] = { 4094, 340, 198, 339, 261, 336, 337, 364, 4095, 198, 4094, 305, 198 };
	const char *shared = getenv("INFER_SHARED_DIR");
	char path[4096];
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = NULL;
	int32_t *ids = NULL;
	size_t n = 0;
	char *prompt;

	snprintf(path, sizeof(path), "%s/models/haiku-qwen2-tiny-f16.gguf", shared ? shared : "../shared");
	f = gguf_open(path, &err);
	if (!f) {
		printf("skipped: reference set not found ");
		return;
	}
	t = infer_tokenizer_load(f, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	prompt = infer_chat_format(t, "Write a haiku about moon");
	CU_ASSERT_PTR_NOT_NULL_FATAL(prompt);
	CU_ASSERT_STRING_EQUAL(prompt, "<|im_start|>user\nWrite a haiku about moon<|im_end|>\n"
				       "<|im_start|>assistant\n");
	CU_ASSERT_EQUAL(infer_tokenize(t, prompt, strlen(prompt), 1, &ids, &n, &err), 0);
	CU_ASSERT_TRUE(same_ids(ids, n, want, sizeof(want) / sizeof(want[0])));
	CU_ASSERT_EQUAL(infer_tokenizer_eos(t), 4095);
	CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, 4095));
	CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, 4093));
	CU_ASSERT_FALSE(infer_tokenizer_is_eog(t, 4094));
	CU_ASSERT_FALSE(infer_tokenizer_is_eog(t, 364));
	free(ids);
	free(prompt);
	infer_tokenizer_free(t);
	gguf_close(f);
}

/* The EOG set llama.cpp reports for this vocabulary (README of the vectors). */
static void test_eog_set(void)
{
	static const int32_t eog[] = { 128247, 151643, 151645, 151662, 151663, 151664 };
	infer_tokenizer *t = vocab_get(&v_full);
	size_t k, n = 0;
	int32_t id;

	if (!t) {
		printf("skipped: reference set not found ");
		return;
	}
	for (id = 0; id < infer_tokenizer_n_vocab(t); id++)
		n += infer_tokenizer_is_eog(t, id) != 0;
	CU_ASSERT_EQUAL(n, sizeof(eog) / sizeof(eog[0]));
	for (k = 0; k < sizeof(eog) / sizeof(eog[0]); k++)
		CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, eog[k]));
	CU_ASSERT_EQUAL(infer_tokenizer_eos(t), 151645);
	CU_ASSERT_EQUAL(infer_tokenizer_bos(t), 151643);
	CU_ASSERT_EQUAL(infer_tokenizer_n_vocab(t), 151936);
}

/* ---- decoding ------------------------------------------------------------------- */

static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		size_t k;

		if (l == 0 || i + l > n)
			return 0;
		for (k = 1; k < l; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		}
		i += l;
	}
	return 1;
}

/* Decodes ids one token at a time; every chunk must be valid UTF-8 on its
 * own (no character split across pushes) and the chunks must add up to s. */
static void check_stream(const infer_tokenizer *t, const int32_t *ids, size_t n, const char *s,
			 size_t len)
{
	infer_detok st = { 0 };
	char *acc = malloc(len + 64), chunk[1024];
	size_t pos = 0, i;
	int w, chunks_ok = 1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
	for (i = 0; i < n; i++) {
		w = infer_detok_push(t, &st, ids[i], chunk, sizeof(chunk));
		CU_ASSERT_TRUE_FATAL(w >= 0 && pos + (size_t)w <= len + 60);
		chunks_ok &= valid_utf8((unsigned char *)chunk, (size_t)w);
		memcpy(acc + pos, chunk, (size_t)w);
		pos += (size_t)w;
	}
	w = infer_detok_flush(&st, chunk, sizeof(chunk));
	CU_ASSERT_EQUAL(w, 0); /* valid input leaves nothing behind */
	CU_ASSERT_TRUE(chunks_ok);
	CU_ASSERT_TRUE(pos == len && memcmp(acc, s, len) == 0);
	free(acc);
}

static void roundtrip_set(const struct vecset *s)
{
	infer_tokenizer *t;
	infer_tokvec v;
	size_t i, split = 0;

	if (!load_set(s, &t, &v))
		return;
	for (i = 0; i < v.n; i++) {
		int32_t *ids = NULL;
		size_t n = 0, k;
		infer_error err;
		char *back;

		CU_ASSERT_EQUAL_FATAL(infer_tokenize_ex(t, v.text[i], v.text_len[i],
							s->parse_special, 0, &ids, &n, &err), 0);
		back = infer_detokenize(t, ids, n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(back);
		CU_ASSERT_TRUE(strlen(back) == v.text_len[i] && memcmp(back, v.text[i], v.text_len[i]) == 0);
		check_stream(t, ids, n, v.text[i], v.text_len[i]);
		/* Count tokens that end inside a character: the stream test above
		 * only means something if some exist. */
		for (k = 0; k < n; k++) {
			const char *b;
			size_t l;

			infer_token_bytes(t, ids[k], &b, &l);
			split += l > 0 && !valid_utf8((const unsigned char *)b, l);
		}
		free(back);
		free(ids);
	}
	printf("%zu tokens with partial characters ", split);
	CU_ASSERT(split > 0);
	infer_tokvec_free(&v);
}

static void test_roundtrip_extra(void) { roundtrip_set(&sets[1]); }
static void test_roundtrip_trunc8k(void) { roundtrip_set(&sets[3]); }

/* Byte tokens pushed one at a time: nothing comes out until a character is
 * complete; a broken sequence comes out as U+FFFD. */
static void test_stream_bytes(void)
{
	infer_tokenizer *t = vocab_get(&v_8k);
	infer_detok st = { 0 };
	char out[64];
	int32_t e2, x82, xac, ff;

	if (!t) {
		printf("skipped: reference set not found ");
		return;
	}
	/* Byte-level tokens for single bytes of "€" (E2 82 AC) and 0xFF. */
	e2 = infer_tokenizer_find(t, "\xc3\xa2");   /* U+00E2 stands for byte E2 */
	x82 = infer_tokenizer_find(t, "\xc4\xa4");  /* byte 0x82 -> U+0124 */
	xac = infer_tokenizer_find(t, "\xc2\xac");  /* byte 0xAC stands for itself */
	ff = infer_tokenizer_find(t, "\xc3\xbf");   /* byte 0xFF */
	CU_ASSERT_TRUE_FATAL(e2 >= 0 && x82 >= 0 && xac >= 0 && ff >= 0);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, e2, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, x82, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, xac, out, sizeof(out)), 3);
	CU_ASSERT_EQUAL(memcmp(out, "\xe2\x82\xac", 3), 0);
	CU_ASSERT_EQUAL(st.n_pending, 0);
	/* E2 then FF: E2 can never complete, so it becomes U+FFFD, and so does FF. */
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, e2, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, ff, out, sizeof(out)), 6);
	CU_ASSERT_EQUAL(memcmp(out, "\xef\xbf\xbd\xef\xbf\xbd", 6), 0);
	/* An unfinished sequence at the end is flushed as one U+FFFD. */
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, e2, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, x82, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(infer_detok_flush(&st, out, sizeof(out)), 3);
	CU_ASSERT_EQUAL(memcmp(out, "\xef\xbf\xbd", 3), 0);
	CU_ASSERT_EQUAL(infer_detok_flush(&st, out, sizeof(out)), 0);
	/* Too small an output buffer is an error and leaves the state alone. */
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, e2, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, ff, out, 2), INFER_E_ARG);
	CU_ASSERT_EQUAL(st.n_pending, 1);
	CU_ASSERT_EQUAL(infer_detok_push(t, &st, -1, out, sizeof(out)), INFER_E_ARG);
}

int main(void)
{
	static const struct cu_case tests[] = {
		{ "vectors ggml-vocab-qwen2", test_vectors_ggml_qwen2 },
		{ "vectors qwen2-extra (parse_special)", test_vectors_extra },
		{ "vectors qwen2-extra-plain", test_vectors_extra_plain },
		{ "vectors qwen2-trunc8k-extra", test_vectors_trunc8k },
		{ "hard cases", test_hard_cases },
		{ "hard-case files in golden/", test_hard_files },
		{ "invalid UTF-8 reads as U+FFFD", test_invalid_utf8 },
		{ "haiku ChatML prompt", test_haiku_prompt },
		{ "EOG set", test_eog_set },
		{ "round trip + stream qwen2-extra", test_roundtrip_extra },
		{ "round trip + stream trunc8k", test_roundtrip_trunc8k },
		{ "stream byte tokens", test_stream_bytes },
	};
	int failed;

	failed = cu_run_table("tokenizer", tests, sizeof(tests) / sizeof(tests[0]));
	if (failed < 0)
		return 1;
	vocab_free(&v_full);
	vocab_free(&v_8k);
	return failed ? 1 : 0;
}
