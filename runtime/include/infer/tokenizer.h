/* Tokenizers read from GGUF: byte-level BPE (tokenizer.ggml.model = gpt2, with
 * the pre-tokenizer tokenizer.ggml.pre names) and SentencePiece-style (llama). */
#ifndef INFER_TOKENIZER_H
#define INFER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"
#include "infer/gguf.h"

typedef struct infer_tokenizer infer_tokenizer;

infer_tokenizer *infer_tokenizer_load(const gguf_file *f, infer_error *err);
void infer_tokenizer_free(infer_tokenizer *t);

int32_t infer_tokenizer_n_vocab(const infer_tokenizer *t);
int32_t infer_tokenizer_bos(const infer_tokenizer *t); /* -1 when none */
int32_t infer_tokenizer_eos(const infer_tokenizer *t);
/* End of generation: eos, <|im_end|>, <|endoftext|> and other EOG tokens. */
int infer_tokenizer_is_eog(const infer_tokenizer *t, int32_t id);
/* Id of a token whose text is exactly s, or -1. */
int32_t infer_tokenizer_find(const infer_tokenizer *t, const char *s);

/* Encodes text; control tokens such as <|im_start|> are matched only when
 * parse_special. *ids is malloc'd (caller frees). Adds BOS when the vocab asks. */
int infer_tokenize(const infer_tokenizer *t, const char *text, size_t len, int parse_special,
		   int32_t **ids, size_t *n_ids, infer_error *err);

/* As infer_tokenize with explicit control over BOS/EOS: add_special adds
 * them only where the vocabulary asks (tokenizer.ggml.add_bos_token /
 * add_eos_token); 0 never adds them (the conformance vectors use 0). */
int infer_tokenize_ex(const infer_tokenizer *t, const char *text, size_t len, int parse_special,
		      int add_special, int32_t **ids, size_t *n_ids, infer_error *err);

/* The raw bytes of one token (byte-level decoding applied). Control,
 * user-defined and unknown tokens give their text (e.g. "<|im_end|>"), so
 * text tokenized with parse_special decodes back to itself; unused tokens
 * give nothing. Generation stops at EOG tokens before printing them. */
int infer_token_bytes(const infer_tokenizer *t, int32_t id, const char **bytes, size_t *len);

/* Streaming decoder: holds back an incomplete UTF-8 sequence until it completes. */
typedef struct infer_detok {
	unsigned char pending[8];
	size_t n_pending;
} infer_detok;
/* Appends the complete UTF-8 bytes produced by id to out (at most cap bytes);
 * returns the number written or a negative error. */
int infer_detok_push(const infer_tokenizer *t, infer_detok *st, int32_t id, char *out, size_t cap);
/* Flushes what is left (invalid/incomplete sequences as U+FFFD). */
int infer_detok_flush(infer_detok *st, char *out, size_t cap);

/* Detokenizes a whole sequence into a malloc'd NUL-terminated string (the
 * raw bytes, not repaired: use the streaming decoder for display). A
 * leading BOS that the vocabulary adds is skipped, and for SentencePiece the
 * space the encoder put in front, so detokenize(tokenize(s)) == s. NULL on
 * an id outside the vocabulary or out of memory. */
char *infer_detokenize(const infer_tokenizer *t, const int32_t *ids, size_t n);
/* The same, with the length in *len (the text may contain NUL bytes). */
char *infer_detokenize_len(const infer_tokenizer *t, const int32_t *ids, size_t n, size_t *len);

/* ChatML (Qwen2): "<|im_start|>user\n{msg}<|im_end|>\n<|im_start|>assistant\n",
 * malloc'd; tokenize it with parse_special. NULL when the vocabulary lacks
 * <|im_start|> or <|im_end|> (the prompt would be plain text) or on no memory. */
char *infer_chat_format(const infer_tokenizer *t, const char *user_msg);

/* Tokenizer test vectors in llama.cpp's layout: NAME.inp holds strings each
 * followed by "\n__ggml_vocab_test__\n"; the .out file has one line per
 * string, every id preceded by one space. */
typedef struct infer_tokvec {
	size_t n;
	char **text;      /* NUL-terminated copies (the text may hold NULs: use text_len) */
	size_t *text_len;
	int32_t **ids;
	size_t *n_ids;
	size_t *out_line; /* 1-based line of each expected list in the .out file */
} infer_tokvec;

/* Reads and cross-checks both files; a malformed file is an error naming
 * file:line:col. */
int infer_tokvec_load(const char *inp_path, const char *out_path, infer_tokvec *v,
		      infer_error *err);
void infer_tokvec_free(infer_tokvec *v);

#endif
