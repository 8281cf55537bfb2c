/* Model fixtures for the model/forward/sampler tests: tiny seeded random
 * Qwen2/Llama GGUF files written with the project's GGUF writer, and copies
 * of an existing model with its weights re-typed or re-laid-out. */
#ifndef UTIL_FIXTURE_H
#define UTIL_FIXTURE_H

#include <stdint.h>

#include "infer/gguf.h"

/* The tiny model: vocab 48, hidden 32, 4 heads / 2 KV heads of 8, FFN 64,
 * 2 layers, context 64. */
#define FX_VOCAB 48
#define FX_EMBD 32
#define FX_HEAD 4
#define FX_HEAD_KV 2
#define FX_HEAD_DIM 8
#define FX_FF 64
#define FX_LAYER 2
#define FX_CTX 64

struct fx_opts {
	const char *arch;        /* "qwen2" (default) or "llama" or anything to test errors */
	int untied;              /* write output.weight */
	int no_bias;             /* leave out attn_q/k/v biases */
	int n_rot;               /* write rope.dimension_count when > 0 */
	const char *drop;        /* leave this tensor out */
	const char *misshape;    /* write this tensor with ne[0] one smaller... */
	const char *drop_key;    /* leave this metadata key out */
	uint32_t wtype;          /* type of the 2-D weights (default F32) */
};

/* A fresh temporary path (mkstemp) under /tmp; free() it and unlink it. */
char *fx_tmp_path(const char *stem);

/* Writes the tiny model; 0 or an INFER_E_* code (message on stderr). */
int fx_write_model(const char *path, const struct fx_opts *o);

/* Copies the model at src to dst, changing it on the way:
 * - retype(name, type, user) returns the new type of every 2-D weight
 *   (values converted through float32 with infer_quantize); NULL keeps all;
 * - to_llama: architecture llama, "qwen2." keys renamed, the rows of Q and K
 *   (weights and biases) permuted inside each head from the NEOX pairing
 *   (i, i + d/2) to the interleaved one (2i, 2i + 1), so normal RoPE on the
 *   copy computes exactly what NEOX RoPE computed on the original; output
 *   untied (a copy of token_embd written as output.weight). */
typedef uint32_t (*fx_retype_fn)(const char *name, uint32_t type, void *user);
int fx_convert(const char *src, const char *dst, fx_retype_fn retype, void *user, int to_llama);

/* Deterministic uniform floats in [-1, 1) (xorshift). */
float fx_rand(uint64_t *state);

/* Shared data: the path of ../shared/<rel> (INFER_SHARED_DIR) if it exists,
 * else NULL (the caller prints "skipped: reference set not found"). */
char *fx_shared(const char *rel);

#endif
