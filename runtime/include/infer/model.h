/* A loaded model: hyper-parameters from GGUF metadata and weights bound by
 * their llama.cpp tensor names (qwen2, llama). */
#ifndef INFER_MODEL_H
#define INFER_MODEL_H

#include <stdint.h>

#include "infer/error.h"
#include "infer/gguf.h"

typedef struct infer_hparams {
	char arch[32];      /* "qwen2" or "llama" */
	int32_t n_vocab;
	int32_t n_ctx;      /* <arch>.context_length */
	int32_t n_embd;
	int32_t n_layer;
	int32_t n_ff;
	int32_t n_head;
	int32_t n_head_kv;
	int32_t head_dim;   /* n_embd / n_head */
	int32_t n_rot;      /* rope.dimension_count, default head_dim */
	float rope_freq_base;
	float norm_eps;
	int rope_neox;      /* 1 for qwen2 (NEOX), 0 for llama */
	int has_qkv_bias;
	int tied_output;    /* output.weight absent: LM head is token_embd */
} infer_hparams;

typedef struct infer_model infer_model;
struct infer_tokenizer;

infer_model *infer_model_load(const char *path, infer_error *err);
void infer_model_free(infer_model *m);
const infer_hparams *infer_model_hparams(const infer_model *m);
const gguf_file *infer_model_gguf(const infer_model *m);
/* Total bytes of all weight tensors as stored. */
uint64_t infer_model_weight_bytes(const infer_model *m);
/* The tokenizer read from the same file (owned by the model). */
const struct infer_tokenizer *infer_model_tokenizer(const infer_model *m);

#endif
