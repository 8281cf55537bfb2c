/* `infer generate` and `infer bench` as a user runs them: exit codes, the
 * --json object, streaming text equal to the JSON text. */
#include <CUnit/Basic.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "util_fixture.h"

static char infer_bin[512];
static char *model;

/* Runs a shell command; returns its exit status and its stdout (malloc'd). */
static int run(const char *args, char **out)
{
	char cmd[2048], buf[4096];
	size_t n, len = 0;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", infer_bin, args);
	p = popen(cmd, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	*out = calloc(1, 1);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
		*out = realloc(*out, len + n + 1);
		memcpy(*out + len, buf, n);
		len += n;
		(*out)[len] = '\0';
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void)
{
	const char *bin = getenv("INFER_BIN_DIR");

	snprintf(infer_bin, sizeof(infer_bin), "%s/runtime/infer", bin ? bin : "build");
	model = fx_shared("models/haiku-qwen2-tiny-f16.gguf");
	return 0;
}

static int teardown(void)
{
	free(model);
	return 0;
}

static void test_usage_errors(void)
{
	char *out;

	CU_ASSERT_EQUAL(run("generate", &out), 2);
	free(out);
	CU_ASSERT_EQUAL(run("generate -m /nonexistent.gguf -p hi", &out), 1);
	free(out);
	CU_ASSERT_EQUAL(run("generate -m x.gguf -p hi --temp abc", &out), 2);
	free(out);
	CU_ASSERT_EQUAL(run("generate -m x.gguf -p hi --bogus 1", &out), 2);
	free(out);
	CU_ASSERT_EQUAL(run("bench", &out), 2);
	free(out);
	CU_ASSERT_EQUAL(run("bench -m x.gguf --prompt 0", &out), 2);
	free(out);
}

static void test_generate_json(void)
{
	char args[1024], *out, *stream;
	json_error_t je;
	json_t *o;

	if (!model) {
		printf("skipped: reference set not found ");
		return;
	}
	snprintf(args, sizeof(args), "generate -m %s --chat -p 'Write a haiku about moon' --temp 0 --json",
		 model);
	CU_ASSERT_EQUAL_FATAL(run(args, &out), 0);
	o = json_loads(out, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "prompt_tokens")), 13);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "tokens")), 16);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "logprobs")), 16);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "text")),
			       "the moon\nof a crushed beetle\nthings that don?t change");
	CU_ASSERT(json_is_object(json_object_get(o, "timings")));
	json_decref(o);
	free(out);
	/* Streaming prints the same text (and a final newline). */
	snprintf(args, sizeof(args), "generate -m %s --chat -p 'Write a haiku about moon' --temp 0",
		 model);
	CU_ASSERT_EQUAL_FATAL(run(args, &stream), 0);
	CU_ASSERT_STRING_EQUAL(stream, "the moon\nof a crushed beetle\nthings that don?t change\n");
	free(stream);
}

static void test_bench_json(void)
{
	char args[1024], *out;
	json_error_t je;
	json_t *o;

	if (!model) {
		printf("skipped: reference set not found ");
		return;
	}
	/* A smoke run of the benchmark's output format, not a measurement. */
	snprintf(args, sizeof(args), "bench -m %s --prompt 8 --gen 2 --threads 1 --json", model);
	CU_ASSERT_EQUAL_FATAL(run(args, &out), 0);
	o = json_loads(out, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "n_prompt")), 8);
	CU_ASSERT(json_number_value(json_object_get(o, "prefill_tok_per_s")) > 0);
	CU_ASSERT(json_number_value(json_object_get(o, "decode_tok_per_s")) > 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "backend")), "cpu");
	json_decref(o);
	free(out);
}

int main(void)
{
	CU_pSuite s;
	int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("cli", setup, teardown);
	CU_add_test(s, "usage errors exit 2, missing model 1", test_usage_errors);
	CU_add_test(s, "generate --json and streaming", test_generate_json);
	CU_add_test(s, "bench --json", test_bench_json);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = (int)CU_get_number_of_failures() + (int)CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
