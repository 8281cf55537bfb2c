/* The tokenizer check kind: passes on the embedded vectors (8k Qwen2
 * vocabulary, golden/conformance/tokenizer) and FAILS when the expected ids
 * are perturbed: two tokens of one expected list swapped, one id dropped.
 * The details name the first mismatching string and both id lists. Also:
 * malformed vector files and an empty set are errors, never passes, and the
 * spec-time validation rejects missing or unknown parameters. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "cunit_table.h"

static char gold[4096];

static void gold_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", gold, name);
}

/* Copies the embedded .out with one line changed by edit() into a temp file. */
static char *perturbed_out(void (*edit)(char *line, size_t cap), size_t line_no)
{
	char src[4200], line[65536], *path = strdup("/tmp/tokout_XXXXXX");
	FILE *in, *out;
	size_t n = 0;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	gold_path(src, sizeof(src), "qwen2-trunc8k-extra.out");
	in = fopen(src, "r");
	out = fdopen(fd, "w");
	CU_ASSERT_FATAL(in && out);
	while (fgets(line, sizeof(line), in)) {
		if (++n == line_no)
			edit(line, sizeof(line));
		fputs(line, out);
	}
	fclose(in);
	fclose(out);
	return path;
}

/* " a b c..." -> " b a c...": the first two ids swapped. */
static void swap_first_two(char *line, size_t cap)
{
	char a[32], b[32], rest[65536] = "";

	CU_ASSERT_FATAL(sscanf(line, " %31s %31s%65535[^\n]", a, b, rest) >= 2);
	CU_ASSERT_FATAL(strcmp(a, b) != 0); /* the swap must change the list */
	snprintf(line, cap, " %s %s%s\n", b, a, rest);
}

static void drop_last(char *line, size_t cap)
{
	char *sp = strrchr(line, ' ');

	(void)cap;
	CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
	strcpy(sp, "\n");
}

static void garble(char *line, size_t cap)
{
	snprintf(line, cap, " 12 x4\n");
}

static struct check_result run_check(const char *out_path, const char *inp_name, int special)
{
	const struct check_kind *k = check_kind_find("tokenizer");
	struct check c = { 0 };
	struct check_result r = { 0 };
	char vocab[4200], inp[4200];
	infer_error err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	gold_path(vocab, sizeof(vocab), "qwen2-trunc8k-vocab.gguf");
	gold_path(inp, sizeof(inp), inp_name);
	c.id = "tokenizer/test";
	c.kind = "tokenizer";
	c.params = json_pack("{s:s, s:s, s:s, s:b}", "vocab", vocab, "inp", inp, "out", out_path,
			     "parse_special", special);
	CU_ASSERT_EQUAL(k->validate(c.params, NULL, &err), 0);
	k->run(&c, "cpu", &r);
	json_decref(c.params);
	return r;
}

static void test_pass(void)
{
	char out[4200];
	struct check_result r;

	gold_path(out, sizeof(out), "qwen2-trunc8k-extra.out");
	r = run_check(out, "qwen2-extra.inp", 1);
	CU_ASSERT_EQUAL(r.status, CHECK_PASS);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r.details, "n_pass")), 221);
	json_decref(r.details);
}

/* Control tokens matter: the same vectors without parse_special must fail. */
static void test_fail_parse_special_off(void)
{
	char out[4200];
	struct check_result r;

	gold_path(out, sizeof(out), "qwen2-trunc8k-extra.out");
	r = run_check(out, "qwen2-extra.inp", 0);
	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	json_decref(r.details);
}

static void expect_fail(void (*edit)(char *, size_t), size_t line_no)
{
	char *out = perturbed_out(edit, line_no);
	struct check_result r = run_check(out, "qwen2-extra.inp", 1);
	json_t *m = json_object_get(r.details, "first_mismatch");

	CU_ASSERT_EQUAL(r.status, CHECK_FAIL);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r.details, "n_fail")), 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(m, "out_line")), (json_int_t)line_no);
	CU_ASSERT_TRUE(json_is_string(json_object_get(m, "text")));
	CU_ASSERT_TRUE(json_is_array(json_object_get(m, "expected")));
	CU_ASSERT_TRUE(json_array_size(json_object_get(m, "actual")) > 0);
	CU_ASSERT_FALSE(json_equal(json_object_get(m, "expected"), json_object_get(m, "actual")));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "1 of 221 strings differ"));
	json_decref(r.details);
	unlink(out);
	free(out);
}

static void test_fail_swapped(void) { expect_fail(swap_first_two, 1); }
static void test_fail_dropped(void) { expect_fail(drop_last, 100); }

static void test_error_malformed(void)
{
	char *out = perturbed_out(garble, 5);
	struct check_result r = run_check(out, "qwen2-extra.inp", 1);

	CU_ASSERT_EQUAL(r.status, CHECK_ERROR);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, ":5:"));
	json_decref(r.details);
	unlink(out);
	free(out);
}

static void test_error_empty(void)
{
	char inp[] = "/tmp/tokinp_XXXXXX", out[] = "/tmp/tokout_XXXXXX";
	int a = mkstemp(inp), b = mkstemp(out);
	const struct check_kind *k = check_kind_find("tokenizer");
	struct check c = { 0 };
	struct check_result r = { 0 };
	char vocab[4200];

	CU_ASSERT_FATAL(a >= 0 && b >= 0);
	close(a);
	close(b);
	gold_path(vocab, sizeof(vocab), "qwen2-trunc8k-vocab.gguf");
	c.params = json_pack("{s:s, s:s, s:s, s:b}", "vocab", vocab, "inp", inp, "out", out,
			     "parse_special", 0);
	k->run(&c, "cpu", &r);
	CU_ASSERT_EQUAL(r.status, CHECK_ERROR);
	json_decref(r.details);
	json_decref(c.params);
	unlink(inp);
	unlink(out);
}

static void test_validate(void)
{
	const struct check_kind *k = check_kind_find("tokenizer");
	json_t *p;
	infer_error err;

	p = json_pack("{s:s, s:s, s:s}", "vocab", "v", "inp", "i", "out", "o");
	CU_ASSERT_NOT_EQUAL(k->validate(p, NULL, &err), 0); /* parse_special is required */
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "parse_special"));
	json_decref(p);
	p = json_pack("{s:s, s:s, s:b}", "vocab", "v", "inp", "i", "parse_special", 1);
	CU_ASSERT_NOT_EQUAL(k->validate(p, NULL, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "out"));
	json_decref(p);
	p = json_pack("{s:s, s:s, s:s, s:b, s:i}", "vocab", "v", "inp", "i", "out", "o",
		      "parse_special", 1, "fuzz", 3);
	CU_ASSERT_NOT_EQUAL(k->validate(p, NULL, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "fuzz"));
	json_decref(p);
	p = json_pack("{s:s, s:s, s:s, s:s}", "vocab", "v", "inp", "i", "out", "o",
		      "parse_special", "yes");
	CU_ASSERT_NOT_EQUAL(k->validate(p, NULL, &err), 0);
	json_decref(p);
}

int main(void)
{
	static const struct cu_case tests[] = {
		{ "embedded vectors pass", test_pass },
		{ "parse_special off fails", test_fail_parse_special_off },
		{ "two ids swapped fails", test_fail_swapped },
		{ "one id dropped fails", test_fail_dropped },
		{ "malformed .out is an error naming the line", test_error_malformed },
		{ "empty vector set is an error", test_error_empty },
		{ "params validated", test_validate },
	};
	const char *src = getenv("INFER_SOURCE_DIR");
	int failed;

	snprintf(gold, sizeof(gold), "%s/golden/conformance/tokenizer", src ? src : ".");
	failed = cu_run_table("check_tokenizer", tests, sizeof(tests) / sizeof(tests[0]));
	if (failed < 0)
		return 1;
	return failed ? 1 : 0;
}
