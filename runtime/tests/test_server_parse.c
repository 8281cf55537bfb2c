/* infer_server_parse_request: the worker's body parser without HTTP (the
 * entry point of fuzz/fuzz_server.c). Accepted bodies give the documented
 * values and defaults; refused ones name the field and leave nothing behind
 * (this suite runs under ASan: its name contains "server"). */
#include <string.h>

#include <CUnit/Basic.h>

#include "infer/server.h"

static infer_server_engine engine = {
	.model_name = "test", .backend = "cpu", .n_ctx = 256, .n_vocab = 1000,
};

static infer_server_request *parse(int completions, const char *body, infer_error *err)
{
	infer_server_request *r = NULL;
	int rc = infer_server_parse_request(&engine, completions, body, strlen(body), &r, err);

	CU_ASSERT_EQUAL(rc == 0, r != NULL);
	return r;
}

static void test_generate_fields(void)
{
	infer_error err;
	infer_gen_params p;
	int stream = -1;
	infer_server_request *r = parse(0, "{\"prompt\":\"hi\",\"chat\":true,\"max_tokens\":9,"
				       "\"temperature\":0.5,\"top_k\":7,\"top_p\":0.5,\"seed\":3,"
				       "\"stop\":[\"a\",\"bc\"],\"stream\":true}", &err);

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	infer_server_request_params(r, &p, &stream);
	CU_ASSERT_STRING_EQUAL(p.prompt, "hi");
	CU_ASSERT(p.chat == 1 && p.max_tokens == 9 && stream == 1);
	CU_ASSERT(p.sampling.temperature == 0.5f && p.sampling.top_k == 7 && p.sampling.top_p == 0.5f);
	CU_ASSERT_EQUAL(p.sampling.seed, 3);
	CU_ASSERT_EQUAL_FATAL(p.n_stop, 2);
	CU_ASSERT_STRING_EQUAL(p.stop[0], "a");
	CU_ASSERT_STRING_EQUAL(p.stop[1], "bc");
	infer_server_request_free(r);
}

/* OpenAI's defaults: 16 tokens, temperature 1, no top-k, top-p 1. */
static void test_completions_defaults(void)
{
	infer_error err;
	infer_gen_params p;
	infer_server_request *r = parse(1, "{\"model\":\"x\",\"prompt\":[\"once\"],\"user\":\"u\"}",
				       &err);

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	infer_server_request_params(r, &p, NULL);
	CU_ASSERT_STRING_EQUAL(p.prompt, "once");
	CU_ASSERT(p.max_tokens == 16 && p.sampling.temperature == 1.0f);
	CU_ASSERT(p.sampling.top_k == 0 && p.sampling.top_p == 1.0f && p.n_stop == 0);
	infer_server_request_free(r);
}

static void test_refusals_name_the_field(void)
{
	static const struct {
		int completions;
		const char *body, *want;
	} cases[] = {
		{ 0, "{\"prompt\":", "malformed JSON" },
		{ 0, "[]", "JSON object" },
		{ 0, "{}", "prompt" },
		{ 0, "{\"prompt\":\"\"}", "prompt" },
		{ 0, "{\"prompt\":\"x\",\"max_tokens\":257}", "max_tokens" },
		{ 0, "{\"prompt\":\"x\",\"top_k\":1001}", "top_k" },
		{ 0, "{\"prompt\":\"x\",\"top_p\":0}", "top_p" },
		{ 0, "{\"prompt\":\"x\",\"stop\":[\"\"]}", "stop" },
		{ 0, "{\"prompt\":\"x\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}",
		  "stop" },
		{ 0, "{\"prompt\":\"x\",\"n\":1}", "n" },
		{ 0, "{\"prompt\":\"x\",\"prompt\":\"y\"}", "duplicate" },
		{ 1, "{\"prompt\":\"x\",\"temperature\":2.5}", "temperature" },
		{ 1, "{\"prompt\":\"x\",\"echo\":true}", "echo" },
		{ 1, "{\"prompt\":[\"a\",\"b\"]}", "prompt" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		infer_error err = { 0 };
		infer_server_request *r = parse(cases[i].completions, cases[i].body, &err);

		CU_ASSERT_PTR_NULL(r);
		CU_ASSERT_EQUAL(err.code, INFER_E_FORMAT);
		if (!strstr(err.msg, cases[i].want)) {
			fprintf(stderr, "\n  %s: '%s' does not name '%s'\n", cases[i].body, err.msg,
				cases[i].want);
			CU_FAIL("refusal does not name the field");
		}
		infer_server_request_free(r);
	}
}

int main(void)
{
	CU_pSuite s;
	int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("server_parse", NULL, NULL);
	CU_add_test(s, "generate body: every field", test_generate_fields);
	CU_add_test(s, "completions body: OpenAI defaults", test_completions_defaults);
	CU_add_test(s, "refused bodies name the field", test_refusals_name_the_field);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
