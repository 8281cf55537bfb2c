/* Shared between tokenizer.c (vocabulary, special tokens, decoding) and the
 * two encoders, tokenizer_bpe.c and tokenizer_spm.c. Not a public header. */
#ifndef INFER_TOKENIZER_INTERNAL_H
#define INFER_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "infer/tokenizer.h"

/* GGUF token types (tokenizer.ggml.token_type), as llama.cpp defines them. */
enum tok_type {
	TOK_UNDEFINED = 0,
	TOK_NORMAL = 1,
	TOK_UNKNOWN = 2,
	TOK_CONTROL = 3,
	TOK_USER_DEFINED = 4,
	TOK_UNUSED = 5,
	TOK_BYTE = 6,
};

enum tok_model { TOK_MODEL_BPE, TOK_MODEL_SPM };

/* Which regex splits text into words before byte-level BPE. */
enum tok_pre {
	TOK_PRE_GPT2,   /* 's|'t|... | ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
	TOK_PRE_QWEN2,  /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|... */
	TOK_PRE_LLAMA3, /* as qwen2 with \p{N}{1,3} */
};

struct tok_entry {
	const char *text;  /* as stored in the vocabulary, NUL-terminated */
	const char *bytes; /* what the token decodes to */
	uint32_t len, n_bytes;
	float score;
	uint8_t type; /* enum tok_type, after llama.cpp's EOG/FIM overrides */
	uint8_t eog;
};

/* One BPE merge: the token pair (left, right) becomes `result`; lower rank
 * merges first. */
struct merge_slot {
	uint64_t key; /* left << 32 | right; MERGE_EMPTY when unused */
	int32_t rank, result;
};
#define MERGE_EMPTY UINT64_MAX

struct infer_tokenizer {
	enum tok_model model;
	enum tok_pre pre;
	int32_t n_vocab;
	struct tok_entry *tok;
	char *arena; /* texts and decoded bytes of all tokens */

	int32_t *map; /* open addressing text -> id, -1 = empty */
	uint64_t map_mask;

	struct merge_slot *merges; /* BPE only */
	uint64_t merge_mask;

	/* BPE: the token of each byte's byte-level character; SPM: <0xXX>. -1 = none. */
	int32_t byte_tok[256];

	int32_t bos, eos, unk, eot, eom; /* -1 when absent */
	int add_bos, add_eos, add_space_prefix;

	int32_t *special; /* control, user-defined, unknown: longest text first */
	size_t n_special;
};

/* Appends ids to a growing array. */
struct id_buf {
	int32_t *ids;
	size_t n, cap;
};
int id_buf_push(struct id_buf *b, int32_t id);

/* Id of the token spelled exactly s[0..n), or -1. */
int32_t tok_lookup(const infer_tokenizer *t, const char *s, size_t n);

/* Encode one fragment of plain text (no special tokens in it). */
int bpe_encode(const infer_tokenizer *t, const char *text, size_t len, struct id_buf *out,
	       infer_error *err);
/* prefix_space: put a space (U+2581) in front, as SentencePiece does at the
 * start of the text and after a special token. */
int spm_encode(const infer_tokenizer *t, const char *text, size_t len, int prefix_space,
	       struct id_buf *out, infer_error *err);

#endif
