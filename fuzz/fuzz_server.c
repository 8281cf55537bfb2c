/* libFuzzer target for the worker's request parser (runtime/src/server.c,
 * infer_server_parse_request): the body of POST /v1/generate or
 * /v1/completions, without HTTP. The first byte picks the route (bit 0) and
 * the engine limits (bits 1-2: n_ctx and n_vocab small or large, so range
 * checks against them are reached); the rest is the body.
 * Invariants: an accepted request has a non-empty prompt and every field
 * inside the documented range (the same ranges the 400 messages state); a
 * refused one has INFER_E_FORMAT, a message and nothing left allocated
 * (ASan's leak check). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/server.h"

#define REQUIRE(cond)                                                                     \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz_server: invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                                       \
			abort();                                                           \
		}                                                                          \
	} while (0)

static int no_generate(void *user, const infer_gen_params *p, infer_gen_cb cb, void *cb_user,
		       infer_gen_result *res, infer_error *err)
{
	return infer_error_set(err, INFER_E_ARG, -1, "the fuzzer never generates");
}

static void check_accepted(const infer_server_request *r, const infer_server_engine *e,
			   int completions)
{
	infer_gen_params p;
	const infer_sampler_params *s = &p.sampling;
	int stream = -1;

	infer_server_request_params(r, &p, &stream);
	REQUIRE(stream == 0 || stream == 1);
	REQUIRE(p.prompt && p.prompt[0]);
	REQUIRE(p.max_tokens >= 1 && p.max_tokens <= e->n_ctx);
	REQUIRE(isfinite(s->temperature) && s->temperature >= 0.0f);
	REQUIRE(s->temperature <= (completions ? 2.0f : 100.0f));
	REQUIRE(s->top_k >= 0 && s->top_k <= e->n_vocab);
	REQUIRE(isfinite(s->top_p) && s->top_p > 0.0f && s->top_p <= 1.0f);
	REQUIRE(isfinite(s->min_p) && s->min_p >= 0.0f && s->min_p <= 1.0f);
	REQUIRE(isfinite(s->repeat_penalty) && s->repeat_penalty >= 0.0f);
	REQUIRE(s->repeat_last_n >= 0 && s->repeat_last_n <= e->n_ctx);
	REQUIRE(p.n_stop >= 0 && p.n_stop <= 8);
	for (int i = 0; i < p.n_stop; i++)
		REQUIRE(p.stop[i] && p.stop[i][0] && strlen(p.stop[i]) <= 256);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	infer_server_engine e = {
		.generate = no_generate,
		.model_name = "fuzz",
		.backend = "cpu",
	};
	infer_server_request *r = (infer_server_request *)1;
	infer_error err = { 0 };
	int completions, rc;

	if (size < 1)
		return 0;
	completions = data[0] & 1;
	e.n_ctx = data[0] & 2 ? 32768 : 256; /* >= the defaults (128, 64) */
	e.n_vocab = data[0] & 4 ? 151936 : 100;
	rc = infer_server_parse_request(&e, completions, (const char *)data + 1, size - 1, &r, &err);
	if (rc) {
		REQUIRE(rc == INFER_E_FORMAT && err.code == rc && err.msg[0]);
		REQUIRE(r == NULL);
		return 0;
	}
	REQUIRE(r);
	check_accepted(r, &e, completions);
	infer_server_request_free(r);
	return 0;
}
