/* libFuzzer target for the tokenizer. The first byte picks the mode:
 *   0: the rest is text, tokenized with the 8k Qwen2 vocabulary
 *      (golden/conformance/tokenizer/qwen2-trunc8k-vocab.gguf, or the file
 *      INFER_FUZZ_VOCAB names), control tokens not parsed;
 *   1: the same with parse_special;
 *   2: the rest is a GGUF file whose tokenizer is loaded (or rejected with a
 *      message) and, when it loads, used on a fixed string.
 * Invariants: tokenizing never fails on any bytes; every id is inside the
 * vocabulary; valid UTF-8 decodes back to itself, through infer_detokenize
 * and through the streaming decoder, whose every chunk is valid UTF-8. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/gguf.h"
#include "infer/tokenizer.h"
#include "unicode.h"

#define REQUIRE(cond)                                                                        \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "fuzz_tokenizer: invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                                          \
			abort();                                                              \
		}                                                                             \
	} while (0)

static gguf_file *vocab_file;
static infer_tokenizer *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("INFER_FUZZ_VOCAB");
	infer_error err;

	(void)argc;
	(void)argv;
	if (!path)
		path = "golden/conformance/tokenizer/qwen2-trunc8k-vocab.gguf";
	vocab_file = gguf_open(path, &err);
	if (vocab_file)
		vocab = infer_tokenizer_load(vocab_file, &err);
	if (!vocab) {
		fprintf(stderr, "fuzz_tokenizer: %s: %s (run from the repository root or set "
			"INFER_FUZZ_VOCAB)\n", path, err.msg);
		exit(1);
	}
	return 0;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		int l = utf8_valid_len(s + i, n - i);

		if (l <= 0)
			return 0;
		i += (size_t)l;
	}
	return 1;
}

/* strict: the vocabulary is a real one, so valid UTF-8 must come back. A
 * fuzzed vocabulary may legally lose text (unused tokens decode to nothing,
 * a control token that is also a merge result decodes to its raw text). */
static void check_text(const infer_tokenizer *t, const uint8_t *s, size_t n, int special,
		       int strict)
{
	int valid = strict && valid_utf8(s, n);
	int32_t *ids = NULL;
	size_t n_ids = 0, i, pos = 0, n_back = 0;
	infer_detok st = { 0 };
	infer_error err;
	char *back, *acc, chunk[4096];
	int w;

	REQUIRE(infer_tokenize_ex(t, (const char *)s, n, special, 0, &ids, &n_ids, &err) == 0);
	for (i = 0; i < n_ids; i++)
		REQUIRE(ids[i] >= 0 && ids[i] < infer_tokenizer_n_vocab(t));
	back = infer_detokenize_len(t, ids, n_ids, &n_back);
	REQUIRE(back);
	if (valid)
		REQUIRE(n_back == n && memcmp(back, s, n) == 0);
	/* Every byte may become a 3-byte replacement character. */
	acc = malloc(3 * n_back + 16);
	REQUIRE(acc);
	for (i = 0; i < n_ids; i++) {
		const char *b;
		size_t l;

		REQUIRE(infer_token_bytes(t, ids[i], &b, &l) == 0);
		REQUIRE(l + 8 <= sizeof(chunk) / 3);
		w = infer_detok_push(t, &st, ids[i], chunk, sizeof(chunk));
		REQUIRE(w >= 0 && valid_utf8((const unsigned char *)chunk, (size_t)w));
		memcpy(acc + pos, chunk, (size_t)w);
		pos += (size_t)w;
	}
	w = infer_detok_flush(&st, chunk, sizeof(chunk));
	REQUIRE(w >= 0 && valid_utf8((const unsigned char *)chunk, (size_t)w));
	memcpy(acc + pos, chunk, (size_t)w);
	pos += (size_t)w;
	if (valid)
		REQUIRE(pos == n && memcmp(acc, s, n) == 0);
	free(acc);
	free(back);
	free(ids);
}

static void check_vocab(const uint8_t *data, size_t size)
{
	static const char text[] = "Hello world, it's 2024!\n\t<|im_start|>user \xc3\xa9\xf0\x9f\x99\x82";
	infer_error err;
	gguf_file *f = gguf_open_memory(data, size, &err);
	infer_tokenizer *t;

	if (!f)
		return;
	t = infer_tokenizer_load(f, &err);
	if (!t) {
		REQUIRE(err.code < 0 && err.msg[0] != '\0');
	} else {
		REQUIRE(infer_tokenizer_n_vocab(t) > 0);
		check_text(t, (const uint8_t *)text, sizeof(text) - 1, 0, 0);
		check_text(t, (const uint8_t *)text, sizeof(text) - 1, 1, 0);
		infer_tokenizer_free(t);
	}
	gguf_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
	case 1:
		check_text(vocab, data + 1, size - 1, data[0] % 3, 1);
		break;
	default:
		check_vocab(data + 1, size - 1);
		break;
	}
	return 0;
}
