/* Tokenizer on tiny vocabularies written here with the GGUF writer, so the
 * merge logic, special tokens, SentencePiece and the load errors are tested
 * without any reference data. Expected ids are derived by hand from the
 * vocabularies below (ids of the 256 byte tokens equal the byte value). */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infer/gguf.h"
#include "infer/tokenizer.h"
#include "cunit_table.h"

/* GPT-2's bytes_to_unicode, written out again here (independently of the
 * runtime's unicode.c) to name the byte tokens. */
static void byte_text(int b, char out[3])
{
	int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
	int cp = b, i, n = 0;

	if (!printable) {
		for (i = 0; i < b; i++)
			n += !((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE));
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		out[2] = 0;
	}
}

/* ---- the BPE vocabulary ---------------------------------------------------- */

enum {
	T_LL = 256, T_HE, T_HELL, T_HELLO, T_SP_W, T_AA, T_12, T_123, T_SP_1,
	T_IM_START, T_IM_END, T_TOOL, T_EOS_S, T_EOT, T_AB, N_BPE
};

static const char *const bpe_merges[] = {
	"l l", "h e", "he ll", "hell o", "\xc4\xa0 w", "a a", "1 2", "12 3", "\xc4\xa0 1",
};
static const char *const bpe_extra[] = {
	"ll", "he", "hell", "hello", "\xc4\xa0w", "aa", "12", "123", "\xc4\xa0" "1",
	"<|im_start|>", "<|im_end|>", "<tool_call>", "</s>", "<|endoftext|>",
	"ab", /* a token no merge makes */
};

struct bpe_opts {
	const char *model, *pre;
	const char *bad_merge; /* replaces the last merge */
	int drop_byte;         /* non-zero: byte 'z' has no token */
	int32_t bad_type;      /* a token type to put on token 0 (0: keep) */
	uint32_t eos;
};

static char *write_bpe(const struct bpe_opts *o)
{
	static char names[N_BPE][4];
	const char *toks[N_BPE];
	int32_t types[N_BPE];
	const char *merges[9];
	char *path = strdup("/tmp/tok_synth_XXXXXX");
	gguf_writer *w = gguf_writer_new(0);
	infer_error err;
	int fd, i, rc;

	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	for (i = 0; i < 256; i++) {
		byte_text(i, names[i]);
		toks[i] = names[i];
		types[i] = 1;
	}
	if (o->drop_byte)
		toks['z'] = "zz-not-a-byte";
	for (i = 256; i < N_BPE; i++) {
		toks[i] = bpe_extra[i - 256];
		types[i] = i >= T_IM_START && i <= T_EOT ? 3 : 1;
	}
	types[T_TOOL] = 4;
	types[T_EOS_S] = 1; /* a normal token spelled like an EOG marker */
	if (o->bad_type)
		types[0] = o->bad_type;
	memcpy(merges, bpe_merges, sizeof(merges));
	if (o->bad_merge)
		merges[8] = o->bad_merge;
	gguf_writer_add_str(w, "general.architecture", "qwen2");
	if (o->model)
		gguf_writer_add_str(w, "tokenizer.ggml.model", o->model);
	if (o->pre)
		gguf_writer_add_str(w, "tokenizer.ggml.pre", o->pre);
	gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, N_BPE);
	gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, N_BPE);
	gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, 9);
	gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", o->eos ? o->eos : T_IM_END);
	gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 0);
	rc = gguf_writer_write(w, path, &err);
	gguf_writer_free(w);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return path;
}

/* Loads a vocabulary file; returns NULL and the error when it is rejected. */
static infer_tokenizer *load(const char *path, gguf_file **f, infer_error *err)
{
	infer_tokenizer *t;

	*f = gguf_open(path, err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(*f);
	t = infer_tokenizer_load(*f, err);
	unlink(path);
	return t;
}

static int enc_eq(const infer_tokenizer *t, const char *s, int special, int add,
		  const int32_t *want, size_t nwant)
{
	int32_t *ids = NULL;
	size_t n = 0, i;
	infer_error err;
	int ok;

	if (infer_tokenize_ex(t, s, strlen(s), special, add, &ids, &n, &err))
		return 0;
	ok = n == nwant && (n == 0 || memcmp(ids, want, n * sizeof(*ids)) == 0);
	if (!ok) {
		printf("\n  \"%s\": got", s);
		for (i = 0; i < n; i++)
			printf(" %d", ids[i]);
		printf("\n");
	}
	free(ids);
	return ok;
}

#define ENC(t, s, sp, add, ...)                                                         \
	do {                                                                            \
		const int32_t want_[] = { __VA_ARGS__ };                                \
		CU_ASSERT_TRUE(enc_eq(t, s, sp, add, want_, sizeof(want_) / sizeof(int32_t))); \
	} while (0)

static void test_bpe_merges(void)
{
	struct bpe_opts o = { .model = "gpt2", .pre = "qwen2" };
	char *path = write_bpe(&o);
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = load(path, &f, &err);

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	ENC(t, "hello", 0, 1, T_HELLO);                /* l l, h e, he ll, hell o */
	ENC(t, "hellohello", 0, 0, T_HELLO, T_HELLO);  /* one word, merged twice */
	ENC(t, "aaa", 0, 0, T_AA, 'a');                /* equal ranks: leftmost first */
	ENC(t, "aaaa", 0, 0, T_AA, T_AA);
	ENC(t, "hel", 0, 0, T_HE, 'l');
	ENC(t, " w", 0, 0, T_SP_W);
	ENC(t, "", 0, 0);
	ENC(t, "ab", 0, 0, 'a', 'b'); /* qwen2 merges: no way to "ab" */
	/* qwen2 splits digits one by one, so "1 2" never applies. */
	ENC(t, "123", 0, 0, '1', '2', '3');
	/* The space is its own word (\s+), so "Ġ 1" never applies either. */
	ENC(t, " 123", 0, 0, 0x20, '1', '2', '3');
	free(path);
	infer_tokenizer_free(t);
	gguf_close(f);
}

static void test_bpe_pretokenizers(void)
{
	struct bpe_opts o = { .model = "gpt2", .pre = "llama3" };
	char *path = write_bpe(&o);
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = load(path, &f, &err);

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	/* llama3: a word that is a token is taken whole (llama.cpp's
	 * ignore_merges), even when no merge leads to it. */
	ENC(t, "ab", 0, 0, T_AB);
	ENC(t, "abab", 0, 0, 'a', 'b', 'a', 'b');
	/* llama3: \p{N}{1,3}; the space is its own word. */
	ENC(t, "1231", 0, 0, T_123, '1');
	ENC(t, " 123", 0, 0, 0x20, T_123);
	infer_tokenizer_free(t);
	gguf_close(f);
	free(path);

	o.pre = "gpt-2";
	path = write_bpe(&o);
	t = load(path, &f, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	/* gpt2: " ?\p{N}+" keeps the space with the digits; "Ġ 1" (rank 8)
	 * loses to "1 2" (rank 6), then "12 3" (rank 7). */
	ENC(t, " 123", 0, 0, 0x20, T_123);
	ENC(t, " 1", 0, 0, T_SP_1);
	ENC(t, "it's", 0, 0, 'i', 't', '\'', 's');
	ENC(t, "IT'S", 0, 0, 'I', 'T', '\'', 'S');
	infer_tokenizer_free(t);
	gguf_close(f);
	free(path);
}

static void test_bpe_special(void)
{
	struct bpe_opts o = { .model = "gpt2", .pre = "qwen2" };
	char *path = write_bpe(&o);
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = load(path, &f, &err);
	const char *b;
	size_t l;
	char *s;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	ENC(t, "<|im_start|>hello", 1, 0, T_IM_START, T_HELLO);
	/* As text: "<|" "im" "_start" "|>" "hello" (no merges apply but hello). */
	ENC(t, "<|im_start|>hello", 0, 0, '<', '|', 'i', 'm', '_', 's', 't', 'a', 'r', 't', '|',
	    '>', T_HELLO);
	ENC(t, "<tool_call>", 0, 0, T_TOOL); /* user-defined: always */
	ENC(t, "</s>", 1, 0, T_EOS_S);       /* promoted to control */
	ENC(t, "</s>", 0, 0, '<', '/', 's', '>');
	CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, T_IM_END));
	CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, T_EOT));
	CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, T_EOS_S));
	CU_ASSERT_FALSE(infer_tokenizer_is_eog(t, T_IM_START));
	CU_ASSERT_FALSE(infer_tokenizer_is_eog(t, -1));
	CU_ASSERT_FALSE(infer_tokenizer_is_eog(t, N_BPE));
	CU_ASSERT_EQUAL(infer_tokenizer_find(t, "hello"), T_HELLO);
	CU_ASSERT_EQUAL(infer_tokenizer_find(t, "nope"), -1);
	CU_ASSERT_EQUAL(infer_token_bytes(t, T_SP_W, &b, &l), 0);
	CU_ASSERT_TRUE(l == 2 && memcmp(b, " w", 2) == 0);
	CU_ASSERT_EQUAL(infer_token_bytes(t, N_BPE, &b, &l), INFER_E_ARG);
	s = infer_chat_format(t, "hi");
	CU_ASSERT_STRING_EQUAL(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
	free(s);
	infer_tokenizer_free(t);
	gguf_close(f);
	free(path);
}

static void expect_load_error(const struct bpe_opts *o, int code, const char *needle)
{
	char *path = write_bpe(o);
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = load(path, &f, &err);

	CU_ASSERT_PTR_NULL(t);
	if (!t) {
		CU_ASSERT_EQUAL(err.code, code);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
		if (!strstr(err.msg, needle))
			printf("\n  message: %s\n", err.msg);
	}
	infer_tokenizer_free(t);
	gguf_close(f);
	free(path);
}

static void test_bpe_load_errors(void)
{
	expect_load_error(&(struct bpe_opts){ .pre = "qwen2" }, INFER_E_TOKENIZER,
			  "tokenizer.ggml.model is missing");
	expect_load_error(&(struct bpe_opts){ .model = "bert", .pre = "qwen2" },
			  INFER_E_UNSUPPORTED, "'bert'");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2", .pre = "falcon" },
			  INFER_E_UNSUPPORTED, "'falcon'");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2" }, INFER_E_UNSUPPORTED,
			  "tokenizer.ggml.pre is missing");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2", .pre = "qwen2", .bad_merge = "q xyz" },
			  INFER_E_TOKENIZER, "merges[8] 'q xyz'");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2", .pre = "qwen2", .bad_merge = "ab" },
			  INFER_E_TOKENIZER, "is not 'left right'");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2", .pre = "qwen2", .drop_byte = 1 },
			  INFER_E_TOKENIZER, "byte 0x7A");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2", .pre = "qwen2", .bad_type = 9 },
			  INFER_E_TOKENIZER, "token_type[0] = 9");
	expect_load_error(&(struct bpe_opts){ .model = "gpt2", .pre = "qwen2", .eos = 5000 },
			  INFER_E_TOKENIZER, "eos_token_id = 5000");
}

/* ---- SentencePiece -------------------------------------------------------------- */

#define SPM_N (3 + 256 + 9)
enum { S_SP = 259, S_H, S_E, S_L, S_O, S_LL, S_HE, S_HELL, S_HELLO, S_SP_HELLO = S_HELLO + 1 };

static char *write_spm(void)
{
	static char bytes[256][8];
	static const char *const words[] = {
		"\xe2\x96\x81", "h", "e", "l", "o", "ll", "he", "hell", "hello",
	};
	static const float word_scores[] = { -5, -5, -5, -5, -5, -1, -2, -3, -4 };
	const char *toks[SPM_N + 1];
	int32_t types[SPM_N + 1];
	float scores[SPM_N + 1];
	char *path = strdup("/tmp/tok_spm_XXXXXX");
	gguf_writer *w = gguf_writer_new(0);
	infer_error err;
	int i, fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	toks[0] = "<unk>"; types[0] = 2; scores[0] = 0;
	toks[1] = "<s>"; types[1] = 3; scores[1] = 0;
	toks[2] = "</s>"; types[2] = 3; scores[2] = 0;
	for (i = 0; i < 256; i++) {
		snprintf(bytes[i], sizeof(bytes[i]), "<0x%02X>", i);
		toks[3 + i] = bytes[i];
		types[3 + i] = 6;
		scores[3 + i] = 0;
	}
	for (i = 0; i < 9; i++) {
		toks[S_SP + i] = words[i];
		types[S_SP + i] = 1;
		scores[S_SP + i] = word_scores[i];
	}
	toks[SPM_N] = "\xe2\x96\x81hello";
	types[SPM_N] = 1;
	scores[SPM_N] = -0.5f;
	gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
	gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, SPM_N + 1);
	gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, SPM_N + 1);
	gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, SPM_N + 1);
	CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, path, &err), 0);
	gguf_writer_free(w);
	return path;
}

static void test_spm(void)
{
	char *path = write_spm();
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = load(path, &f, &err);
	const int32_t ids[] = { 1, SPM_N, S_SP, 3 + 0xC3, 3 + 0xA9 };
	char *s;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(infer_tokenizer_bos(t), 1); /* SentencePiece defaults */
	CU_ASSERT_EQUAL(infer_tokenizer_eos(t), 2);
	CU_ASSERT_TRUE(infer_tokenizer_is_eog(t, 2));
	/* "▁hello": ll (-1), he (-2), hell (-3), hello (-4), ▁hello (-0.5). */
	ENC(t, "hello", 0, 1, 1, SPM_N);
	ENC(t, "hello", 0, 0, SPM_N);
	/* After a special token the space prefix is added again (as llama.cpp). */
	ENC(t, "<s>hello", 1, 0, 1, SPM_N);
	/* "é" is no token: byte fallback C3 A9. */
	ENC(t, "hello \xc3\xa9", 0, 1, 1, SPM_N, S_SP, 3 + 0xC3, 3 + 0xA9);
	ENC(t, "hel", 0, 0, S_SP, S_HE, S_L);
	s = infer_detokenize(t, ids, 5);
	CU_ASSERT_STRING_EQUAL(s, "hello \xc3\xa9");
	free(s);
	infer_tokenizer_free(t);
	gguf_close(f);
	free(path);
}

/* Random valid UTF-8 (1- to 4-byte characters, whitespace, digits): the
 * byte-level vocabulary must give it back exactly, through infer_detokenize
 * and through the streaming decoder, whose every chunk is whole characters. */
static size_t put_cp(char *s, uint32_t cp)
{
	if (cp < 0x80) {
		s[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		s[0] = (char)(0xC0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		s[0] = (char)(0xE0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		s[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	s[0] = (char)(0xF0 | (cp >> 18));
	s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	s[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static uint32_t random_cp(uint64_t *st)
{
	static const uint32_t pool[] = { ' ', '\n', '\t', '1', 'a', 'h', 'l', 'o', 0xA0, 0xE9,
					 0x3B1, 0x4E2D, 0x1F642, 0x2028, 0xFF11, 0x10FFFD };
	uint32_t cp;

	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	cp = pool[*st % (sizeof(pool) / sizeof(pool[0]))];
	return cp;
}

static void test_roundtrip_random(void)
{
	struct bpe_opts o = { .model = "gpt2", .pre = "qwen2" };
	char *path = write_bpe(&o), text[512], acc[4096], chunk[512];
	infer_error err;
	gguf_file *f;
	infer_tokenizer *t = load(path, &f, &err);
	uint64_t st = 0x9E3779B97F4A7C15ull;
	int iter, bad = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	for (iter = 0; iter < 300; iter++) {
		size_t len = 0, n = 0, pos = 0, i;
		int32_t *ids = NULL;
		infer_detok dt = { 0 };
		char *back;

		while (len < 400)
			len += put_cp(text + len, random_cp(&st));
		CU_ASSERT_EQUAL_FATAL(infer_tokenize_ex(t, text, len, 0, 0, &ids, &n, &err), 0);
		back = infer_detokenize(t, ids, n);
		bad += !back || strlen(back) != len || memcmp(back, text, len) != 0;
		for (i = 0; i < n; i++) {
			int w = infer_detok_push(t, &dt, ids[i], chunk, sizeof(chunk));

			CU_ASSERT_FATAL(w >= 0);
			/* A chunk never ends inside a character. */
			if (w > 0 && ((unsigned char)chunk[w - 1] & 0x80)) {
				int k = w - 1, need;

				while (k > 0 && ((unsigned char)chunk[k] & 0xC0) == 0x80)
					k--;
				need = (unsigned char)chunk[k] >= 0xF0 ? 4 : (unsigned char)chunk[k] >= 0xE0 ? 3 : 2;
				bad += w - k != need;
			}
			memcpy(acc + pos, chunk, (size_t)w);
			pos += (size_t)w;
		}
		bad += infer_detok_flush(&dt, chunk, sizeof(chunk)) != 0;
		bad += pos != len || memcmp(acc, text, len) != 0;
		free(back);
		free(ids);
	}
	CU_ASSERT_EQUAL(bad, 0);
	infer_tokenizer_free(t);
	gguf_close(f);
	free(path);
}

/* infer tokenize: ids on one line; bad input is exit 2 with a message. */
static int run_cli(const char *args, char *out, size_t cap)
{
	const char *bin = getenv("INFER_BIN_DIR");
	char cmd[8192];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "%s/runtime/infer tokenize %s 2>/dev/null", bin ? bin : ".", args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	return WEXITSTATUS(pclose(p));
}

static void test_cli(void)
{
	struct bpe_opts o = { .model = "gpt2", .pre = "qwen2" };
	const char *bin = getenv("INFER_BIN_DIR");
	char *path, args[4096], out[256], probe[4096];

	snprintf(probe, sizeof(probe), "%s/runtime/infer", bin ? bin : ".");
	if (access(probe, X_OK) != 0) {
		printf("skipped: %s not built ", probe);
		return;
	}
	path = write_bpe(&o);
	snprintf(args, sizeof(args), "-m %s -p 'hello <|im_end|>'", path);
	CU_ASSERT_EQUAL(run_cli(args, out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "259 32 60 124 105 109 95 101 110 100 124 62\n");
	snprintf(args, sizeof(args), "-m %s --special -p 'hello <|im_end|>'", path);
	CU_ASSERT_EQUAL(run_cli(args, out, sizeof(out)), 0);
	snprintf(probe, sizeof(probe), "%d 32 %d\n", T_HELLO, T_IM_END);
	CU_ASSERT_STRING_EQUAL(out, probe);
	CU_ASSERT_EQUAL(run_cli("-m /nonexistent.gguf -p x", out, sizeof(out)), 2);
	snprintf(args, sizeof(args), "-m %s", path);
	CU_ASSERT_EQUAL(run_cli(args, out, sizeof(out)), 2); /* no text */
	CU_ASSERT_STRING_EQUAL(out, "");
	unlink(path);
	free(path);
}

int main(void)
{
	static const struct cu_case tests[] = {
		{ "bpe merges by rank", test_bpe_merges },
		{ "bpe pre-tokenizers llama3 / gpt-2", test_bpe_pretokenizers },
		{ "bpe special tokens, EOG, decoding", test_bpe_special },
		{ "bpe load errors name the field", test_bpe_load_errors },
		{ "sentencepiece", test_spm },
		{ "random UTF-8 round trip and stream", test_roundtrip_random },
		{ "infer tokenize", test_cli },
	};
	int failed;

	failed = cu_run_table("tokenizer_synth", tests, sizeof(tests) / sizeof(tests[0]));
	if (failed < 0)
		return 1;
	return failed ? 1 : 0;
}
