/* The haiku check can fail, and fails for the right reason.
 *
 * This executable is also its own fake worker: run as
 *   test_haiku --fake-worker MODE MODEL.gguf
 * it serves the real HTTP worker code (runtime/src/server.c) on a free port
 * but with an engine that cheats in one way (MODE):
 *   honest     passes the real engine through (the control: must PASS)
 *   canned     a fixed haiku that contains the word, invented logprobs
 *   tampered   real tokens, every third logprob moved by 0.1 nats
 *   sameseed   real generation but every request uses the same seed
 *   wrongtext  real tokens, one token's text replaced
 *   otherword  real generation for another prompt (a stale cached answer)
 * The check is pointed at it through params.worker_cmd, exactly as it points
 * at `infer serve`, and each cheat must fail the condition it breaks.
 * INFER_HAIKU_MINUTE pins the word so runs are reproducible. */
#include <CUnit/Basic.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "haiku_report.h"
#include "haiku_worker.h"
#include "infer/model.h"
#include "infer/server.h"
#include "infer/session.h"
#include "infer/tokenizer.h"
#include "cunit_table.h"

/* ---- the fake worker ------------------------------------------------------ */

struct cheat {
	infer_server_engine real;
	const char *mode;
	const infer_tokenizer *tok;
	infer_gen_cb cb;
	void *cb_user;
	int n;
};

/* Passes tokens on, altered as the mode says. */
static int cheat_cb(void *user, const infer_gen_token *t)
{
	struct cheat *c = user;
	infer_gen_token u = *t;

	if (t->id >= 0) {
		if (!strcmp(c->mode, "tampered") && c->n % 3 == 1)
			u.logprob += 0.1f;
		if (!strcmp(c->mode, "wrongtext") && c->n == 1) {
			u.text = " X";
			u.text_len = 2;
		}
		c->n++;
	}
	return c->cb(c->cb_user, &u);
}

/* "Write a haiku about moon" -> a haiku with "moon" and made-up numbers. */
static int canned(struct cheat *c, const infer_gen_params *p, infer_gen_cb cb, void *cb_user,
		  infer_gen_result *res, infer_error *err)
{
	const char *word = strrchr(p->prompt, ' ');
	char text[256], *chat = infer_chat_format(c->tok, p->prompt);
	int32_t *ids = NULL;
	size_t n = 0;

	memset(res, 0, sizeof(*res));
	snprintf(text, sizeof(text), "silent %s\nover the old pond\na frog jumps", word ? word + 1 : "");
	/* The prompt tokens are right: this cheat knows the tokenizer. */
	if (infer_tokenize(c->tok, chat, strlen(chat), 1, &res->prompt_tokens, &res->n_prompt, err) ||
	    infer_tokenize(c->tok, text, strlen(text), 0, &ids, &n, err)) {
		free(chat);
		return err->code;
	}
	free(chat);
	res->tokens = malloc((n + 1) * sizeof(int32_t));
	res->logprobs = malloc((n + 1) * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		infer_gen_token t = { .id = ids[i], .logprob = -0.5f, .logprob_sampled = -0.5f };

		infer_token_bytes(c->tok, ids[i], &t.text, &t.text_len);
		res->tokens[i] = ids[i];
		res->logprobs[i] = -0.5f;
		cb(cb_user, &t);
	}
	res->tokens[n] = infer_tokenizer_find(c->tok, "<|im_end|>");
	res->logprobs[n] = -0.01f;
	res->n_tokens = n + 1;
	res->text = strdup(text);
	res->finish_reason = "stop";
	free(ids);
	return 0;
}

static int cheat_generate(void *user, const infer_gen_params *p, infer_gen_cb cb, void *cb_user,
			  infer_gen_result *res, infer_error *err)
{
	struct cheat *c = user;
	infer_gen_params q = *p;
	int rc;

	if (!strcmp(c->mode, "canned"))
		return canned(c, p, cb, cb_user, res, err);
	if (!strcmp(c->mode, "sameseed"))
		q.sampling.seed = 1234;
	if (!strcmp(c->mode, "otherword"))
		q.prompt = "Write a haiku about rain";
	c->cb = cb;
	c->cb_user = cb_user;
	c->n = 0;
	rc = c->real.generate(c->real.user, &q, cheat_cb, c, res, err);
	/* The end token is reported from res, so the tampering must reach it too. */
	if (!rc && !strcmp(c->mode, "tampered"))
		for (size_t i = 1; i < res->n_tokens; i += 3)
			res->logprobs[i] += 0.1f;
	return rc;
}

static int fake_worker(const char *mode, const char *model_path)
{
	infer_session_opts so = { .backend = "cpu", .n_threads = 1 };
	struct cheat c = { .mode = mode };
	infer_server_engine e;
	infer_error err = { 0 };
	infer_model *m = infer_model_load(model_path, &err);
	infer_session *s = m ? infer_session_new(m, &so, &err) : NULL;
	infer_server *srv;
	sigset_t set;
	int sig;

	if (!s) {
		fprintf(stderr, "fake worker: %s\n", err.msg);
		return 1;
	}
	infer_server_engine_session(&c.real, s, "fake");
	c.tok = infer_model_tokenizer(m);
	e = c.real;
	e.user = &c;
	e.generate = cheat_generate;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	srv = infer_server_start(&e, NULL, &err);
	if (!srv) {
		fprintf(stderr, "fake worker: %s\n", err.msg);
		return 1;
	}
	printf("fake worker (%s): listening on http://127.0.0.1:%u\n", mode,
	       (unsigned)infer_server_port(srv));
	fflush(stdout);
	sigwait(&set, &sig);
	infer_server_stop(srv);
	infer_session_free(s);
	infer_model_free(m);
	return 0;
}

/* ---- running the check ---------------------------------------------------- */

static char self[PATH_MAX], model[PATH_MAX], words[PATH_MAX];

/* A check as spec.c would build it from specs/haiku.yaml; 2 of 6 samples
 * with the word keeps a correct runtime's failure odds below 1e-4 for the
 * words these tests use (moon, morning: 19 of 20 samples on this runtime). */
static void run_check(json_t *worker_cmd, json_t *extra, struct check_result *r)
{
	struct check c = { .id = "haiku/test", .suite = "haiku", .kind = "haiku" };
	json_t *params = json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:i, s:f, s:i, s:f, s:f}", "model",
				   model, "words", words, "prompt", "Write a haiku about {word}", "chat",
				   1, "runs", 6, "min_word_runs", 2, "max_tokens", 40, "temperature",
				   0.8, "top_k", 40, "top_p", 0.95, "startup_timeout_s", 30.0);
	infer_error err = { 0 };

	if (worker_cmd)
		json_object_set_new(params, "worker_cmd", worker_cmd);
	if (extra)
		json_object_update(params, extra);
	json_decref(extra);
	c.params = params;
	c.tolerance = json_pack("{s:f}", "max_abs", 1e-2);
	memset(r, 0, sizeof(*r));
	CU_ASSERT_EQUAL(check_kind_haiku.validate(params, c.tolerance, &err), 0);
	check_kind_haiku.run(&c, "cpu", r);
	printf("\n    [%s] %s\n    ", check_status_name(r->status), r->message);
	json_decref(params);
	json_decref(c.tolerance);
}

static json_t *fake_cmd(const char *mode)
{
	return json_pack("[s, s, s, s]", self, "--fake-worker", mode, "{model}");
}

static int cond_ok(const struct check_result *r, const char *name)
{
	const json_t *c = json_object_get(json_object_get(r->details, "conditions"), name);

	return json_is_true(json_object_get(c, "ok"));
}

static const json_t *transcript(const struct check_result *r)
{
	return json_object_get(r->details, "transcript");
}

static void result_free(struct check_result *r)
{
	json_decref(r->details);
	r->details = NULL;
}

static void test_honest_passes(void)
{
	struct check_result r;
	const json_t *t;
	char *text;

	run_check(fake_cmd("honest"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_PASS);
	t = transcript(&r);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(t, "minute")), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(t, "word")), "moon");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(t, "prompt")), "Write a haiku about moon");
	CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(t, "minute_source")),
				      "INFER_HAIKU_MINUTE"));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(t, "runs")), 7);
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(json_object_get(t, "replay"), "max_abs")),
			       0.0, 1e-4);
	/* The plain-text transcript junit.xml and summary.md carry. */
	text = haiku_transcript_text(t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "word 'moon'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "run 6 sampled seed "));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "  ids: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "  cpu replay: "));
	free(text);
	CU_ASSERT_PTR_NULL(haiku_transcript_text(NULL));
	result_free(&r);
}

static void test_real_worker_passes(void)
{
	struct check_result r;
	const json_t *runs;

	setenv("INFER_HAIKU_MINUTE", "2", 1); /* "morning" */
	run_check(NULL, json_pack("{s:i}", "threads", 1), &r);
	setenv("INFER_HAIKU_MINUTE", "0", 1);
	CU_ASSERT_EQUAL(r.status, CHECK_PASS);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(transcript(&r), "word")), "morning");
	runs = json_object_get(transcript(&r), "runs");
	/* The greedy haiku is the transformers golden's (../shared/models/README.md). */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(runs, 0), "text")),
			       "morning\na child's arrangement\nof shells");
	result_free(&r);
}

static void test_canned_fails_replay(void)
{
	struct check_result r;

	run_check(fake_cmd("canned"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_TRUE(cond_ok(&r, "word"));   /* the canned haiku has the word ... */
	CU_ASSERT_FALSE(cond_ok(&r, "replay")); /* ... but the model never said it */
	CU_ASSERT_FALSE(cond_ok(&r, "distinct"));
	CU_ASSERT_TRUE(cond_ok(&r, "detok"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "replay:"));
	result_free(&r);
}

static void test_tampered_fails_replay(void)
{
	struct check_result r;
	const json_t *rp;

	run_check(fake_cmd("tampered"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_TRUE(cond_ok(&r, "word"));
	CU_ASSERT_TRUE(cond_ok(&r, "distinct"));
	CU_ASSERT_TRUE(cond_ok(&r, "detok"));
	CU_ASSERT_FALSE(cond_ok(&r, "replay"));
	rp = json_object_get(transcript(&r), "replay");
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(rp, "max_abs")), 0.1, 1e-3);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "cpu replay"));
	result_free(&r);
}

static void test_same_seed_fails_distinct(void)
{
	struct check_result r;

	run_check(fake_cmd("sameseed"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_FALSE(cond_ok(&r, "distinct"));
	CU_ASSERT_TRUE(cond_ok(&r, "replay"));
	CU_ASSERT_TRUE(cond_ok(&r, "detok"));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(transcript(&r), "distinct")), 1);
	result_free(&r);
}

static void test_wrong_text_fails_detok(void)
{
	struct check_result r;

	run_check(fake_cmd("wrongtext"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_FALSE(cond_ok(&r, "detok"));
	CU_ASSERT_TRUE(cond_ok(&r, "replay"));
	result_free(&r);
}

/* A worker that answers another question (a stale cache): the word is missing
 * and the replay of our prompt does not match. */
static void test_other_word_fails_word(void)
{
	struct check_result r;

	run_check(fake_cmd("otherword"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_FALSE(cond_ok(&r, "word"));
	CU_ASSERT_FALSE(cond_ok(&r, "replay"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "not in the greedy haiku"));
	result_free(&r);
}

static void test_worker_that_dies_or_hangs(void)
{
	struct check_result r;

	run_check(json_pack("[s]", "/bin/false"), NULL, &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "exited before listening"));
	result_free(&r);
	run_check(json_pack("[s, s]", "/bin/sleep", "60"), json_pack("{s:f}", "startup_timeout_s", 0.5), &r);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "in time"));
	result_free(&r);
}

static void test_bad_params(void)
{
	infer_error err = { 0 };
	json_t *p = json_pack("{s:s, s:s, s:s}", "model", "m", "words", "w", "prompt", "no placeholder");

	CU_ASSERT_NOT_EQUAL(check_kind_haiku.validate(p, NULL, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "{word}"));
	json_object_set_new(p, "prompt", json_string("about {word}"));
	json_object_set_new(p, "runs", json_integer(1));
	CU_ASSERT_NOT_EQUAL(check_kind_haiku.validate(p, NULL, &err), 0);
	json_object_set_new(p, "runs", json_integer(5));
	json_object_set_new(p, "min_word_runs", json_integer(6));
	CU_ASSERT_NOT_EQUAL(check_kind_haiku.validate(p, NULL, &err), 0);
	json_object_del(p, "min_word_runs");
	json_object_set_new(p, "bogus", json_true());
	CU_ASSERT_NOT_EQUAL(check_kind_haiku.validate(p, NULL, &err), 0);
	json_object_del(p, "bogus");
	CU_ASSERT_EQUAL(check_kind_haiku.validate(p, NULL, &err), 0);
	json_decref(p);
}

/* ---- the SSE parser ------------------------------------------------------- */

static void test_sse_parser(void)
{
	const char *s = ": comment\r\ndata: {\"token_id\":5,\"text\":\"a\",\"logprob\":-1}\r\n\r\n"
			"data: {\"token_id\":6,\"text\":\"é\",\"logprob\":-2}\n\n"
			"data: {\"done\":true,\"finish_reason\":\"stop\"}\n\n";
	struct haiku_stream st = { .texts = json_array() };
	struct haiku_sse p = { .out = &st };
	infer_error err = { 0 };

	/* Byte by byte: events split anywhere must still parse. */
	for (size_t i = 0; i < strlen(s); i++)
		CU_ASSERT_EQUAL(haiku_sse_feed(&p, s + i, 1), 0);
	CU_ASSERT_EQUAL(haiku_sse_finish(&p, &err), 0);
	CU_ASSERT_EQUAL(st.n, 2);
	CU_ASSERT_EQUAL(st.ids[1], 6);
	CU_ASSERT_STRING_EQUAL(st.text, "aé");
	CU_ASSERT_PTR_NOT_NULL(st.final);
	free(p.buf);
	haiku_stream_free(&st);

	const char *bad[] = {
		"data: {\"token_id\":\"5\",\"text\":\"a\",\"logprob\":-1}\n\n",
		"data: [1]\n\n",
		"data: {nope\n\n",
		"data: {\"error\":{\"message\":\"boom\"}}\n\n",
		"data: {\"token_id\":5,\"text\":\"a\",\"logprob\":-1}\n\n", /* no final event */
		"data: {\"done\":true}\n\ndata: {\"token_id\":5,\"text\":\"a\",\"logprob\":-1}\n\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct haiku_stream b = { .texts = json_array() };
		struct haiku_sse q = { .out = &b };

		haiku_sse_feed(&q, bad[i], strlen(bad[i]));
		CU_ASSERT_NOT_EQUAL(haiku_sse_finish(&q, &err), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "SSE"));
		free(q.buf);
		haiku_stream_free(&b);
	}
}

static int find_paths(void)
{
	const char *src = getenv("INFER_SOURCE_DIR");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(model, sizeof(model), "%s/golden/models/haiku-qwen2-tiny-q8_0.gguf", src ? src : ".");
	snprintf(words, sizeof(words), "%s/golden/models/topic-words.txt", src ? src : ".");
	return access(model, R_OK) || access(words, R_OK) ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct cu_case tests[] = {
		{ "params are validated", test_bad_params },
		{ "SSE parser: split events, CRLF, comments, bad events", test_sse_parser },
		{ "honest fake worker passes (control)", test_honest_passes },
		{ "real infer serve passes", test_real_worker_passes },
		{ "canned haiku with the word fails replay", test_canned_fails_replay },
		{ "tampered logprobs fail replay", test_tampered_fails_replay },
		{ "same haiku for every seed fails distinct", test_same_seed_fails_distinct },
		{ "text that is not the tokens fails detok", test_wrong_text_fails_detok },
		{ "an answer about another word fails word and replay", test_other_word_fails_word },
		{ "worker that exits or never listens fails, is stopped", test_worker_that_dies_or_hangs },
	};
	int fails;

	if (argc == 4 && !strcmp(argv[1], "--fake-worker"))
		return fake_worker(argv[2], argv[3]);
	signal(SIGPIPE, SIG_IGN);
	/* The embedded model is part of the repository, so it must be here. */
	if (find_paths()) {
		fprintf(stderr, "error: golden/models not found (set INFER_SOURCE_DIR)\n");
		return 1;
	}
	setenv("INFER_HAIKU_MINUTE", "0", 1); /* "moon" */
	fails = cu_run_table("haiku", tests, sizeof(tests) / sizeof(tests[0]));
	return fails ? 1 : 0;
}
