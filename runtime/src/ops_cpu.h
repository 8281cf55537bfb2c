/* The CPU kernels behind the "cpu" infer_ops table (backend.h), exposed to
 * forward_cpu.c so the forward pass can split a matmul's rows over threads
 * while running the very code the harness checks op by op. */
#ifndef INFER_OPS_CPU_H
#define INFER_OPS_CPU_H

#include <stdint.h>

#include "infer/backend.h"
#include "infer/error.h"

extern const infer_ops infer_ops_cpu;

/* Rows m0..m1-1 of y = W x for N input vectors: y[n*M + m] = W[m] . x[n].
 * Each weight row is dequantized once into rowbuf (K floats, caller's
 * scratch) and dotted in float32 with every x[n]. what names the tensor for
 * errors (may be NULL). */
int cpu_mul_mat_rows(const void *w, uint32_t wtype, int64_t K, int64_t M,
		     int64_t m0, int64_t m1, const float *x, int64_t N, float *y,
		     float *rowbuf, const char *what, infer_error *err);

/* The type ggml's CPU backend converts activations to before a dot product
 * with weights of wtype (its vec_dot_type); INFER_TYPE_F32 when it does not
 * convert them (F32 weights, or types ggml cannot multiply). */
uint32_t cpu_vec_dot_type(uint32_t wtype);

/* out[N][K] = x[N][K] rounded through cpu_vec_dot_type(wtype) and back to
 * float32 (a copy when that is F32). Used only to mimic llama.cpp. */
int cpu_round_activations(uint32_t wtype, const float *x, float *out, int64_t K, int64_t N,
			  infer_error *err);

/* float32 dot product with eight partial sums (fixed order: deterministic,
 * and lets the compiler vectorise without -ffast-math). */
float cpu_dot(const float *a, const float *b, int64_t n);

int cpu_rms_norm_mul(const float *x, const float *w, float *y, int64_t n, int64_t rows,
		     float eps, infer_error *err);
int cpu_rope(float *x, const int32_t *pos, int64_t head_dim, int64_t n_heads,
	     int64_t n_tokens, int64_t n_rot, float freq_base, int neox, infer_error *err);
int cpu_swiglu(const float *gate, const float *up, float *y, int64_t n, infer_error *err);

/* Attention for query heads h0..h1-1 only (the full op is h0 = 0,
 * h1 = n_head); scores is scratch of n_kv floats. */
int cpu_attention_heads(const float *q, const float *k, const float *v, float *out,
			int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
			int64_t n_kv, int64_t first_query_pos, float scale,
			int64_t h0, int64_t h1, float *scores, infer_error *err);

#endif
