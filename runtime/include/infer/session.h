/* A model running on one backend with its own KV cache: feed tokens, get logits.
 * Both backends honour the same contract and the same taps. */
#ifndef INFER_SESSION_H
#define INFER_SESSION_H

#include <stdint.h>

#include "infer/error.h"
#include "infer/model.h"

/* Called for every intermediate, named as llama.cpp names them:
 * attn_norm-N, Qcur-N, Kcur-N, Vcur-N, kqv_out-N, ffn_inp-N, ffn_out-N, l_out-N,
 * result_norm, result_output (also embd, ffn_norm-N, ffn_gate-N, ffn_up-N,
 * ffn_swiglu-N; order in runtime/src/forward.h). data is [n_tokens][dim]
 * float32 (host memory). */
typedef void (*infer_tap_fn)(void *user, const char *name, const float *data,
			     int64_t n_tokens, int64_t dim);

typedef struct infer_session infer_session;

typedef struct infer_session_opts {
	const char *backend; /* "cpu" (default) or "cuda" */
	int32_t n_ctx;       /* 0: the model's context length */
	int32_t n_threads;   /* cpu: 0 = all cores */
	/* cpu only (another backend refuses it): before each matmul, round the
	 * activations as ggml's CPU backend does for that weight type (F16, BF16,
	 * Q8_0, Q8_1, Q8_K), so a run compares tightly with llama.cpp dumps.
	 * 0 (default): exact float32 activations, the reference behaviour. */
	int ggml_act_rounding;
} infer_session_opts;

infer_session *infer_session_new(const infer_model *m, const infer_session_opts *o,
				 infer_error *err);
void infer_session_free(infer_session *s);
void infer_session_set_tap(infer_session *s, infer_tap_fn fn, void *user);
void infer_session_reset(infer_session *s); /* empty the KV cache */
int32_t infer_session_pos(const infer_session *s);
const infer_model *infer_session_model(const infer_session *s);
const char *infer_session_backend(const infer_session *s);

/* Evaluates n tokens at positions pos..pos+n-1 and appends them to the cache.
 * logits: NULL, or [n][n_vocab] when all_logits, else [n_vocab] for the last token. */
int infer_session_eval(infer_session *s, const int32_t *tokens, int32_t n,
		       float *logits, int all_logits, infer_error *err);

/* Evidence for the anti-cheat check: bytes of weights resident on the device
 * (0 on cpu) and kernel launches so far (0 on cpu). */
uint64_t infer_session_device_bytes(const infer_session *s);
uint64_t infer_session_kernel_launches(const infer_session *s);

#endif
