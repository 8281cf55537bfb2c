/* Sampler (greedy, temperature, top-k, top-p, min-p, repetition penalty,
 * seeded PRNG, logprobs) and generation (stop conditions, streaming, replay
 * of the reported logprobs). */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/generate.h"
#include "infer/model.h"
#include "infer/sampler.h"
#include "util_fixture.h"

/* log-softmax in double, written out here as the independent reference. */
static double ref_logprob(const float *l, int n, int id, double temp)
{
	double mx = -INFINITY, s = 0;

	for (int i = 0; i < n; i++)
		mx = fmax(mx, l[i] / temp);
	for (int i = 0; i < n; i++)
		s += exp(l[i] / temp - mx);
	return l[id] / temp - mx - log(s);
}

static infer_sampler *mk(float temp, int top_k, float top_p, float min_p, float rep, uint64_t seed)
{
	infer_sampler_params p;

	infer_sampler_params_default(&p);
	p.temperature = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.min_p = min_p;
	p.repeat_penalty = rep;
	p.seed = seed;
	return infer_sampler_new(&p);
}

static void test_greedy(void)
{
	const float l[5] = { 0.1f, 2.5f, -1.0f, 2.5f, 0.0f };
	infer_sampler *s = mk(0, 0, 1, 0, 1, 0);
	float lr, lf;

	CU_ASSERT_EQUAL(infer_sampler_sample(s, l, 5, NULL, 0, &lr, &lf), 1); /* first maximum */
	CU_ASSERT_DOUBLE_EQUAL(lr, ref_logprob(l, 5, 1, 1), 1e-6);
	CU_ASSERT_EQUAL(lf, 0.0f);
	infer_sampler_free(s);
}

static void test_logprob(void)
{
	float l[4] = { 10000.0f, 9999.0f, -5.0f, 0.0f };

	CU_ASSERT_DOUBLE_EQUAL(infer_logprob(l, 4, 0), ref_logprob(l, 4, 0, 1), 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(infer_logprob(l, 4, 1), ref_logprob(l, 4, 1, 1), 1e-6);
	CU_ASSERT(isfinite(infer_logprob(l, 4, 2)));
	CU_ASSERT(infer_logprob(l, 4, 4) == -INFINITY);
}

/* Same seed, same draws; other seed, other draws. */
static void test_seeded(void)
{
	float l[50];
	int a[200], b[200], c[200], differ = 0;
	infer_sampler *s1 = mk(1, 0, 1, 0, 1, 7), *s2 = mk(1, 0, 1, 0, 1, 7), *s3 = mk(1, 0, 1, 0, 1, 8);

	for (int i = 0; i < 50; i++)
		l[i] = (float)sin(i * 1.3);
	for (int i = 0; i < 200; i++) {
		a[i] = infer_sampler_sample(s1, l, 50, NULL, 0, NULL, NULL);
		b[i] = infer_sampler_sample(s2, l, 50, NULL, 0, NULL, NULL);
		c[i] = infer_sampler_sample(s3, l, 50, NULL, 0, NULL, NULL);
		differ += a[i] != c[i];
	}
	CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);
	CU_ASSERT(differ > 50);
	infer_sampler_free(s1);
	infer_sampler_free(s2);
	infer_sampler_free(s3);
}

/* Frequencies follow the (tempered) softmax; logprob_final is its log. */
static void test_distribution(void)
{
	const float l[3] = { logf(0.5f), logf(0.3f), logf(0.2f) };
	const float temps[2] = { 1.0f, 2.0f };

	for (int k = 0; k < 2; k++) {
		infer_sampler *s = mk(temps[k], 0, 1, 0, 1, 123);
		int cnt[3] = { 0 }, n = 40000;

		for (int i = 0; i < n; i++) {
			float lf, lr;
			int id = infer_sampler_sample(s, l, 3, NULL, 0, &lr, &lf);

			cnt[id]++;
			CU_ASSERT_DOUBLE_EQUAL(lf, ref_logprob(l, 3, id, temps[k]), 1e-5);
			CU_ASSERT_DOUBLE_EQUAL(lr, ref_logprob(l, 3, id, 1), 1e-5);
		}
		for (int id = 0; id < 3; id++)
			CU_ASSERT_DOUBLE_EQUAL(cnt[id] / (double)n, exp(ref_logprob(l, 3, id, temps[k])),
					       0.01);
		infer_sampler_free(s);
	}
}

/* Tokens outside the kept set never come out; the kept ones renormalise. */
static void expect_support(infer_sampler *s, const float *l, int n, int n_keep, double temp)
{
	double z = 0;
	int seen[8] = { 0 };

	for (int i = 0; i < n_keep; i++)
		z += exp(ref_logprob(l, n, i, temp));
	for (int i = 0; i < 3000; i++) {
		float lf;
		int id = infer_sampler_sample(s, l, n, NULL, 0, NULL, &lf);

		CU_ASSERT(id >= 0 && id < n_keep);
		if (id < 0 || id >= n_keep)
			return;
		seen[id] = 1;
		CU_ASSERT_DOUBLE_EQUAL(lf, ref_logprob(l, n, id, temp) - log(z), 1e-5);
	}
	for (int i = 0; i < n_keep; i++)
		CU_ASSERT(seen[i]);
}

static void test_truncation(void)
{
	/* probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1 */
	const float l[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
	infer_sampler *s;

	s = mk(1, 2, 1, 0, 1, 1); /* top-k 2 */
	expect_support(s, l, 4, 2, 1);
	infer_sampler_free(s);
	s = mk(1, 0, 0.7f, 0, 1, 2); /* top-p: 0.5 + 0.3 >= 0.7 */
	expect_support(s, l, 4, 2, 1);
	infer_sampler_free(s);
	s = mk(1, 0, 0.85f, 0, 1, 3); /* 0.5 + 0.3 < 0.85 <= 0.95 */
	expect_support(s, l, 4, 3, 1);
	infer_sampler_free(s);
	s = mk(1, 0, 1, 0.29f, 1, 4); /* min-p: keep p >= 0.145 */
	expect_support(s, l, 4, 3, 1);
	infer_sampler_free(s);
	s = mk(1, 1, 1, 0, 1, 5); /* top-k 1 is greedy */
	expect_support(s, l, 4, 1, 1);
	infer_sampler_free(s);
}

static void test_repeat_penalty(void)
{
	const float l[3] = { 2.0f, 1.9f, -1.0f };
	const int32_t h0[1] = { 0 }, h2[3] = { 2, 2, 1 };
	infer_sampler *s = mk(0, 0, 1, 0, 2.0f, 0);
	float lr;

	/* 2.0 / 2 = 1.0 < 1.9: the repeated token loses. */
	CU_ASSERT_EQUAL(infer_sampler_sample(s, l, 3, h0, 1, &lr, NULL), 1);
	/* The raw logprob is of the raw logits, not the penalised ones. */
	CU_ASSERT_DOUBLE_EQUAL(lr, ref_logprob(l, 3, 1, 1), 1e-6);
	CU_ASSERT_EQUAL(infer_sampler_sample(s, l, 3, h2, 3, NULL, NULL), 0);
	CU_ASSERT_EQUAL(infer_sampler_sample(s, l, 3, NULL, 0, NULL, NULL), 0);
	infer_sampler_free(s);
}

static void test_bad_input(void)
{
	infer_sampler *s = mk(1, 0, 1, 0, 1, 0);
	float l[1] = { 0 };

	CU_ASSERT_EQUAL(infer_sampler_sample(s, l, 0, NULL, 0, NULL, NULL), -1);
	CU_ASSERT_EQUAL(infer_sampler_sample(s, NULL, 4, NULL, 0, NULL, NULL), -1);
	CU_ASSERT_EQUAL(infer_sampler_sample(s, l, 1, NULL, 0, NULL, NULL), 0);
	infer_sampler_free(s);
}

/* ---- generation on the haiku model --------------------------------------- */

static infer_model *model;
static infer_session *sess;

struct stream {
	char text[4096];
	size_t len;
	int calls, cancel_after;
};

static int on_token(void *user, const infer_gen_token *t)
{
	struct stream *st = user;

	if (st->len + t->text_len < sizeof(st->text)) {
		memcpy(st->text + st->len, t->text, t->text_len);
		st->len += t->text_len;
		st->text[st->len] = '\0';
	}
	return ++st->calls == st->cancel_after;
}

static int gen(const char *prompt, int chat, int n, float temp, uint64_t seed,
	       const char *stop, struct stream *st, infer_gen_result *res)
{
	infer_gen_params p = { .prompt = prompt, .chat = chat, .max_tokens = n };
	const char *stops[1] = { stop };
	infer_error err = { 0 };
	int rc;

	infer_sampler_params_default(&p.sampling);
	p.sampling.temperature = temp;
	p.sampling.seed = seed;
	if (stop) {
		p.stop = stops;
		p.n_stop = 1;
	}
	rc = infer_generate(sess, &p, on_token, st, res, &err);
	if (rc)
		fprintf(stderr, "generate: %s\n", err.msg);
	return rc;
}

static int need_model(void)
{
	if (!model) {
		printf("skipped: reference set not found ");
		return 0;
	}
	return 1;
}

static const char *moon_text = "the moon\nof a crushed beetle\nthings that don?t change";

/* Greedy = the golden continuation of transformers and llama.cpp. */
static void test_generate_greedy(void)
{
	static const int32_t want[16] = { 258, 364, 198, 274, 261, 1509, 2848, 3168,
					  198, 333, 651, 1030, 1839, 1335, 2021, 4095 };
	struct stream st = { 0 };
	infer_gen_result r;

	if (!need_model())
		return;
	CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about moon", 1, 48, 0, 0, NULL, &st, &r), 0);
	CU_ASSERT_EQUAL(r.n_prompt, 13);
	CU_ASSERT_EQUAL(r.n_tokens, 16);
	CU_ASSERT_EQUAL(memcmp(r.tokens, want, sizeof(want)), 0);
	CU_ASSERT_STRING_EQUAL(r.text, moon_text);
	CU_ASSERT_STRING_EQUAL(st.text, moon_text);
	CU_ASSERT_STRING_EQUAL(r.finish_reason, "stop");
	CU_ASSERT(r.ttft_ms > 0);
	infer_gen_result_free(&r);
}

static void test_generate_stop_and_length(void)
{
	struct stream st = { 0 }, st2 = { 0 }, st3 = { .cancel_after = 2 };
	infer_gen_result r;

	if (!need_model())
		return;
	CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about moon", 1, 48, 0, 0, "beetle", &st, &r), 0);
	CU_ASSERT_STRING_EQUAL(r.text, "the moon\nof a crushed ");
	CU_ASSERT_STRING_EQUAL(st.text, r.text); /* nothing past the stop string streamed */
	CU_ASSERT_STRING_EQUAL(r.finish_reason, "stop");
	infer_gen_result_free(&r);
	CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about moon", 1, 3, 0, 0, NULL, &st2, &r), 0);
	CU_ASSERT_EQUAL(r.n_tokens, 3);
	CU_ASSERT_STRING_EQUAL(r.finish_reason, "length");
	CU_ASSERT_STRING_EQUAL(r.text, "the moon\n");
	infer_gen_result_free(&r);
	CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about moon", 1, 48, 0, 0, NULL, &st3, &r), 0);
	CU_ASSERT_STRING_EQUAL(r.finish_reason, "cancelled");
	CU_ASSERT_EQUAL(r.n_tokens, 2);
	infer_gen_result_free(&r);
}

/* A full context ends generation like max_tokens does, not with an error. */
static void test_generate_context_full(void)
{
	infer_session_opts o = { .n_ctx = 16 };
	infer_gen_params p = { .prompt = "Write a haiku about moon", .chat = 1, .max_tokens = 100 };
	infer_error err = { 0 };
	infer_session *s;
	infer_gen_result r;

	if (!need_model())
		return;
	s = infer_session_new(model, &o, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	infer_sampler_params_default(&p.sampling);
	p.sampling.temperature = 0;
	CU_ASSERT_EQUAL_FATAL(infer_generate(s, &p, NULL, NULL, &r, &err), 0);
	CU_ASSERT_STRING_EQUAL(r.finish_reason, "length");
	CU_ASSERT_EQUAL(r.n_prompt + r.n_tokens, 17); /* 16 evaluated + the last sampled */
	CU_ASSERT_STRING_EQUAL(r.text, "the moon\nof");
	infer_gen_result_free(&r);
	infer_session_free(s);
}

/* Sampling: same seed, same haiku; other seeds, other haiku. */
static void test_generate_seeds(void)
{
	char *texts[4];
	int distinct = 0;

	if (!need_model())
		return;
	for (int i = 0; i < 4; i++) {
		struct stream st = { 0 };
		infer_gen_result r;

		CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about rain", 1, 48, 0.8f, 100 + i, NULL, &st, &r), 0);
		texts[i] = strdup(r.text);
		infer_gen_result_free(&r);
		if (i == 0) {
			struct stream st2 = { 0 };

			CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about rain", 1, 48, 0.8f, 100, NULL, &st2, &r), 0);
			CU_ASSERT_STRING_EQUAL(r.text, texts[0]);
			infer_gen_result_free(&r);
		}
	}
	for (int i = 0; i < 4; i++) {
		int dup = 0;

		for (int j = 0; j < i; j++)
			dup |= !strcmp(texts[i], texts[j]);
		distinct += !dup;
	}
	CU_ASSERT(distinct >= 2);
	for (int i = 0; i < 4; i++)
		free(texts[i]);
}

/* The anti-cheat replay: teacher-forcing prompt + tokens in a fresh session
 * gives back every reported raw logprob. */
static void test_generate_logprob_replay(void)
{
	struct stream st = { 0 };
	infer_gen_result r;
	infer_error err = { 0 };
	int32_t *seq;
	float *lg;
	size_t T;

	if (!need_model())
		return;
	CU_ASSERT_EQUAL_FATAL(gen("Write a haiku about snow", 1, 32, 0.8f, 9, NULL, &st, &r), 0);
	T = r.n_prompt + r.n_tokens;
	seq = malloc(T * sizeof(int32_t));
	lg = malloc(T * 4096 * sizeof(float));
	memcpy(seq, r.prompt_tokens, r.n_prompt * sizeof(int32_t));
	memcpy(seq + r.n_prompt, r.tokens, r.n_tokens * sizeof(int32_t));
	infer_session_reset(sess);
	CU_ASSERT_EQUAL_FATAL(infer_session_eval(sess, seq, (int32_t)T, lg, 1, &err), 0);
	for (size_t i = 0; i < r.n_tokens; i++) {
		float lp = infer_logprob(lg + (r.n_prompt + i - 1) * 4096, 4096, r.tokens[i]);

		CU_ASSERT_DOUBLE_EQUAL(lp, r.logprobs[i], 1e-5);
		CU_ASSERT(r.logprobs_sampled[i] <= 0.0f);
	}
	free(seq);
	free(lg);
	infer_gen_result_free(&r);
}

static void test_generate_without_tokenizer(void)
{
	struct fx_opts o = { 0 };
	char *path = fx_tmp_path("gen");
	infer_error err = { 0 };
	infer_model *m;
	infer_session *s;
	infer_gen_params p = { .prompt = "hi", .max_tokens = 4 };
	infer_gen_result r;

	CU_ASSERT_EQUAL_FATAL(fx_write_model(path, &o), 0);
	m = infer_model_load(path, &err);
	unlink(path);
	free(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	s = infer_session_new(m, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	infer_sampler_params_default(&p.sampling);
	CU_ASSERT_EQUAL(infer_generate(s, &p, NULL, NULL, &r, &err), INFER_E_TOKENIZER);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tokenizer"));
	infer_session_free(s);
	infer_model_free(m);
}

static int gen_setup(void)
{
	char *p = fx_shared("models/haiku-qwen2-tiny-f16.gguf");
	infer_error err = { 0 };

	if (!p)
		return 0;
	model = infer_model_load(p, &err);
	free(p);
	sess = model ? infer_session_new(model, NULL, &err) : NULL;
	return model && sess ? 0 : 1;
}

static int gen_teardown(void)
{
	infer_session_free(sess);
	infer_model_free(model);
	return 0;
}

int main(void)
{
	CU_pSuite s, g;
	int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("sampler", NULL, NULL);
	CU_add_test(s, "greedy picks the first maximum", test_greedy);
	CU_add_test(s, "log-softmax, large logits", test_logprob);
	CU_add_test(s, "seeded PRNG is deterministic", test_seeded);
	CU_add_test(s, "frequencies follow the tempered softmax", test_distribution);
	CU_add_test(s, "top-k, top-p, min-p support and renormalisation", test_truncation);
	CU_add_test(s, "repetition penalty", test_repeat_penalty);
	CU_add_test(s, "bad input", test_bad_input);
	g = CU_add_suite("generate", gen_setup, gen_teardown);
	CU_add_test(g, "greedy haiku = golden continuation", test_generate_greedy);
	CU_add_test(g, "stop string, max tokens, cancel", test_generate_stop_and_length);
	CU_add_test(g, "context full ends with length", test_generate_context_full);
	CU_add_test(g, "seeds", test_generate_seeds);
	CU_add_test(g, "logprob replay", test_generate_logprob_replay);
	CU_add_test(g, "no tokenizer is an error", test_generate_without_tokenizer);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = (int)CU_get_number_of_failures() + (int)CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
