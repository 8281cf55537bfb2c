/* Kernel-level operations of one backend, behind one table, so the harness
 * can check every op of every backend against the same references.
 * All pointers are host memory; a device backend copies in and out.
 * Layouts follow ggml `ne` order: the first dimension is contiguous. */
#ifndef INFER_BACKEND_H
#define INFER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"

typedef struct infer_ops {
	const char *name; /* "cpu" or "cuda" */

	/* y[n*M + m] = sum_k deq(w)[m*K + k] * x[n*K + k]; w is M rows of K elements of wtype. */
	int (*mul_mat)(const void *w, uint32_t wtype, int64_t K, int64_t M,
		       const float *x, int64_t N, float *y, infer_error *err);
	/* n elements of type -> float32, bit-exact with the CPU table. */
	int (*dequant)(uint32_t type, const void *src, float *dst, int64_t n, infer_error *err);
	/* y[r*n + i] = x[r*n+i] / sqrt(mean(x[r]^2) + eps) * w[i] */
	int (*rms_norm_mul)(const float *x, const float *w, float *y, int64_t n, int64_t rows,
			    float eps, infer_error *err);
	/* In place on x[t][h][d] (d contiguous, head_dim), rotating the first n_rot dims
	 * of every head by pos[t]. neox != 0: pairs (i, i+n_rot/2); else (2i, 2i+1). */
	int (*rope)(float *x, const int32_t *pos, int64_t head_dim, int64_t n_heads,
		    int64_t n_tokens, int64_t n_rot, float freq_base, int neox, infer_error *err);
	/* y[r] = softmax(x[r]*scale + mask[r]); mask[r][i] = 0 if i <= query_pos[r] else -inf;
	 * query_pos NULL means no mask. */
	int (*softmax)(const float *x, float *y, int64_t n, int64_t rows, float scale,
		       const int32_t *query_pos, infer_error *err);
	/* y[i] = silu(gate[i]) * up[i] */
	int (*swiglu)(const float *gate, const float *up, float *y, int64_t n, infer_error *err);
	/* Causal GQA attention. q[t][h][d] (n_tokens, n_head), k/v[j][hk][d] (n_kv, n_head_kv),
	 * out[t][h][d]; query t sits at position first_query_pos + t and sees keys j <= that;
	 * head h uses kv head h / (n_head / n_head_kv). */
	int (*attention)(const float *q, const float *k, const float *v, float *out,
			 int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
			 int64_t n_kv, int64_t first_query_pos, float scale, infer_error *err);
} infer_ops;

/* "cpu" always succeeds. "cuda" returns NULL with INFER_E_NODEVICE and the
 * reason (not built with CUDA / no device) in err. */
const infer_ops *infer_backend_ops(const char *name, infer_error *err);

/* 1 when the backend can run here; otherwise 0 and the reason in err. */
int infer_backend_available(const char *name, infer_error *err);

/* Name of the device ("NVIDIA H100 80GB HBM3"), or "cpu". */
const char *infer_backend_device_name(const char *name);

#endif
