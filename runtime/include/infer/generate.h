/* Prompt -> tokens -> streamed text, on any backend. */
#ifndef INFER_GENERATE_H
#define INFER_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"
#include "infer/sampler.h"
#include "infer/session.h"
#include "infer/tokenizer.h"

typedef struct infer_gen_params {
	const char *prompt;
	int chat;                 /* wrap prompt in the ChatML turn format */
	int32_t max_tokens;
	infer_sampler_params sampling;
	const char *const *stop;  /* stop strings, may be NULL */
	int n_stop;
} infer_gen_params;

typedef struct infer_gen_token {
	int32_t id;
	float logprob;         /* raw model distribution */
	float logprob_sampled; /* final sampling distribution */
	const char *text;      /* complete UTF-8 bytes this token released (may be empty) */
	size_t text_len;
} infer_gen_token;

/* Called once per sampled token (EOG excluded), then at most once more with
 * id = -1 carrying text released only at the end (bytes held back because
 * they could have started a stop string, or an incomplete UTF-8 tail).
 * Return non-zero to stop generation (e.g. the client went away). */
typedef int (*infer_gen_cb)(void *user, const infer_gen_token *tok);

typedef struct infer_gen_result {
	int32_t *prompt_tokens; size_t n_prompt;
	int32_t *tokens; float *logprobs; float *logprobs_sampled; size_t n_tokens;
	char *text;                /* detokenization of tokens */
	const char *finish_reason; /* "stop" (EOG or stop string), "length", "cancelled" */
	double prompt_ms, gen_ms, ttft_ms;
	uint64_t kernel_launches;  /* during this request */
} infer_gen_result;

/* Resets the session, evaluates the prompt and samples until EOG, max_tokens
 * or a stop string. */
int infer_generate(infer_session *s, const infer_gen_params *p, infer_gen_cb cb, void *user,
		   infer_gen_result *res, infer_error *err);
void infer_gen_result_free(infer_gen_result *res);

#endif
