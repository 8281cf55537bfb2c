/* Sampling from logits with a seeded PRNG: the same (logits, params, seed)
 * give the same token on every run and backend. */
#ifndef INFER_SAMPLER_H
#define INFER_SAMPLER_H

#include <stdint.h>

typedef struct infer_sampler_params {
	float temperature;    /* <= 0: greedy */
	int32_t top_k;        /* <= 0: off */
	float top_p;          /* >= 1: off */
	float min_p;          /* <= 0: off */
	float repeat_penalty; /* 1: off */
	int32_t repeat_last_n;
	uint64_t seed;
} infer_sampler_params;

void infer_sampler_params_default(infer_sampler_params *p);

typedef struct infer_sampler infer_sampler;

infer_sampler *infer_sampler_new(const infer_sampler_params *p);
void infer_sampler_free(infer_sampler *s);

/* Picks a token. logprob_raw: log-softmax of the raw logits at that token;
 * logprob_final: log-probability under the final sampling distribution. */
int32_t infer_sampler_sample(infer_sampler *s, const float *logits, int32_t n_vocab,
			     const int32_t *history, int32_t n_history,
			     float *logprob_raw, float *logprob_final);

/* For a backend that samples on its own device (kernels/sample.cu) with
 * this sampler's state: the parameters; the next uniform draw in [0, 1) --
 * the one infer_sampler_sample makes for a non-greedy pick, so call it
 * exactly when temperature > 0; and the distinct ids of the history window
 * the repetition penalty touches (ids: room for n_history; returns how
 * many, 0 when the penalty is off). */
const infer_sampler_params *infer_sampler_get_params(const infer_sampler *s);
double infer_sampler_next_unit(infer_sampler *s);
int32_t infer_sampler_penalty_ids(const infer_sampler *s, const int32_t *history,
				  int32_t n_history, int32_t n_vocab, int32_t *ids);

/* log-softmax of logits at index id (float32 inputs, double accumulation). */
float infer_logprob(const float *logits, int32_t n_vocab, int32_t id);

#endif
