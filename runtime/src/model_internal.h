/* The loaded model as the forward passes see it: hyper-parameters plus every
 * weight bound by its llama.cpp name. Shared by the CPU forward pass
 * (forward_cpu.c) and the CUDA backend (kernels/), which is why it is plain C
 * with no behaviour of its own.
 *
 * Matrices stay where gguf.c mapped them, in their stored type (any ggml type:
 * the consumer dequantizes or uploads). Vectors (norm weights, biases) are
 * small and read on every token, so model.c converts them to float32 once at
 * load; that also lets a norm stored as F16 work without a special case. */
#ifndef INFER_MODEL_INTERNAL_H
#define INFER_MODEL_INTERNAL_H

#include <stdint.h>

#include "infer/gguf.h"
#include "infer/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A 2-D weight in ggml order: ne0 = K (input features, contiguous),
 * ne1 = M (output features, one row each). */
typedef struct infer_matrix {
	const char *name;     /* tensor name (points into the gguf handle) */
	uint32_t type;        /* ggml type id (quant.h) */
	int64_t ne0, ne1;
	const void *data;     /* stored bytes, mapped from the file */
	uint64_t nbytes;
	uint64_t row_bytes;   /* bytes of one row of ne0 elements */
} infer_matrix;

/* A 1-D weight converted to float32 at load (owned by the model). */
typedef struct infer_vector {
	const char *name;
	int64_t n;
	float *data;          /* NULL when the tensor is absent (optional biases) */
} infer_vector;

typedef struct infer_layer {
	infer_vector attn_norm;          /* [n_embd] */
	infer_matrix wq, wk, wv;         /* [n_embd] -> n_head*head_dim / n_head_kv*head_dim */
	infer_vector bq, bk, bv;         /* data NULL unless hparams.has_qkv_bias */
	infer_matrix wo;                 /* n_head*head_dim -> n_embd */
	infer_vector ffn_norm;           /* [n_embd] */
	infer_matrix ffn_gate, ffn_up;   /* n_embd -> n_ff */
	infer_matrix ffn_down;           /* n_ff -> n_embd */
} infer_layer;

struct infer_model {
	gguf_file *gguf;
	infer_hparams hp;
	infer_matrix tok_embd;           /* [n_embd, n_vocab]: row t is token t's embedding */
	infer_vector output_norm;        /* [n_embd] */
	infer_matrix output;             /* [n_embd, n_vocab]; == tok_embd when tied */
	infer_layer *layers;             /* hp.n_layer */
	uint64_t weight_bytes;
	/* Loaded with the model. A file without tokenizer keys still loads (test
	 * fixtures): tok is NULL and tok_err says why. */
	struct infer_tokenizer *tok;
	char tok_err[512];
};

#ifdef __cplusplus
}
#endif

#endif
