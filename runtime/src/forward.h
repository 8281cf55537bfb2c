/* The forward pass behind a session, one implementation per backend.
 *
 * session.c owns what every backend shares (the model, the position, the tap
 * callback, the context size) and calls one of these tables for the work.
 * The CPU table lives in forward_cpu.c; the CUDA table in kernels/ (helper
 * code compiled by nvcc, so everything here is plain C behind extern "C").
 *
 * Contract of eval (both backends, so their results are comparable):
 * - tokens[0..n) sit at positions pos..pos+n-1; keys/values for positions
 *   < pos are already in the backend's cache from earlier evals;
 * - it stores the new keys/values at pos..pos+n-1 (session.c has checked
 *   pos + n <= n_ctx and that every token id is in range);
 * - logits: NULL, or all_logits ? [n][n_vocab] : [n_vocab] of the last token;
 * - when tap != NULL it calls tap(user, name, data, n, dim) with host float32
 *   [n][dim] for every intermediate, named as llama.cpp names them, in this
 *   order per layer N: attn_norm-N, Qcur-N, Kcur-N, Vcur-N (after bias, Q/K
 *   after RoPE), kqv_out-N, ffn_inp-N, ffn_norm-N, ffn_gate-N, ffn_up-N,
 *   ffn_swiglu-N, ffn_out-N, l_out-N; then result_norm, result_output.
 *   Before layer 0 it taps "embd" (the token embeddings).
 * Returns 0 or a negative INFER_E_* with err filled. */
#ifndef INFER_FORWARD_H
#define INFER_FORWARD_H

#include <stdint.h>

#include "infer/error.h"
#include "infer/model.h"
#include "infer/sampler.h"
#include "infer/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct infer_forward_opts {
	int32_t n_ctx;      /* positions the KV cache must hold (resolved, > 0) */
	int32_t n_threads;  /* cpu: resolved, >= 1 */
	int ggml_act_rounding; /* session.h; only the cpu forward supports it */
} infer_forward_opts;

typedef struct infer_forward {
	const char *backend; /* "cpu" or "cuda" */
	/* Allocates the backend state (KV cache, scratch, device copies of the
	 * weights). NULL + err on failure. */
	void *(*init)(const infer_model *m, const infer_forward_opts *o, infer_error *err);
	int (*eval)(void *state, const int32_t *tokens, int32_t n, int32_t pos,
		    float *logits, int all_logits, infer_tap_fn tap, void *tap_user,
		    infer_error *err);
	/* The cache is about to be reused from position 0; may be NULL. */
	void (*reset)(void *state);
	void (*free)(void *state);
	/* Evidence for the anti-cheat check (session.h); may be NULL (= 0). */
	uint64_t (*device_bytes)(const void *state);
	uint64_t (*kernel_launches)(const void *state);
	/* Samples from the last token's logits of the last eval, which ran with
	 * logits NULL and all_logits INFER_EVAL_KEEP_LOGITS (they stay on the
	 * device): infer_cuda_sample's contract (u: the host sampler's draw,
	 * pen_ids: the ids the repetition penalty touches). The kernels library
	 * calls nothing of the runtime's, so session.c makes the draw.
	 * NULL: the host samples. */
	int (*sample)(void *state, const infer_sampler_params *p, double u, const int32_t *pen_ids,
		      int32_t n_pen, int32_t *id, float *logprob_raw, float *logprob_final,
		      infer_error *err);
} infer_forward;

/* all_logits value for eval: keep the last token's logits on the backend
 * for sample() instead of copying them to the host. */
#define INFER_EVAL_KEEP_LOGITS 2

/* session.c: the context size a session was created with (generate.c stops
 * at it instead of failing). */
int32_t infer_session_n_ctx_internal(const infer_session *s);

/* session.c: 1 when the session's backend samples on its device; then
 * infer_session_sample picks from the logits an eval with logits NULL and
 * all_logits INFER_EVAL_KEEP_LOGITS left there. */
int infer_session_device_sampling(const infer_session *s);
int infer_session_sample(infer_session *s, infer_sampler *smp, const int32_t *history,
			 int32_t n_history, int32_t *id, float *logprob_raw, float *logprob_final,
			 infer_error *err);

/* forward_cpu.c */
extern const infer_forward infer_forward_cpu;

#ifdef INFER_HAVE_CUDA
/* kernels/ (helper F): defined in a .cu file with C linkage. */
extern const infer_forward infer_forward_cuda;
#endif

#ifdef __cplusplus
}
#endif

#endif
