/* `infer inspect` and `infer dequant` end to end: runs the built binary
 * ($INFER_BIN_DIR/runtime/infer) on files made with the writer and on
 * hand-broken copies, and checks the JSON, the float output, the exit codes,
 * the one-line error format and that no output file is left on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "infer/gguf.h"
#include "infer/quant.h"

static char tmpdir[256], infer_bin[1024], good[512], bad[512];
static char bad_at[32]; /* the byte the error message for bad.gguf must name */

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Runs `infer ARGS > tmp/out 2> tmp/err` and returns the exit status. */
static int run(const char *args)
{
	char cmd[8192];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' %s > '%s/out' 2> '%s/err'", infer_bin, args, tmpdir, tmpdir);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *name, size_t *len)
{
	char path[512];
	FILE *fp;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* One line "error: FILE: ... at byte N\n" on stderr. */
static void check_error_line(const char *file, const char *byte)
{
	char *e = slurp("err", NULL), prefix[600], at[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	snprintf(prefix, sizeof(prefix), "error: %s: ", file);
	CU_ASSERT_EQUAL(strncmp(e, prefix, strlen(prefix)), 0);
	CU_ASSERT_PTR_NOT_NULL(strchr(e, '\n'));
	CU_ASSERT_STRING_EQUAL(strchr(e, '\n') + 1, "");
	if (byte) {
		snprintf(at, sizeof(at), " at byte %s\n", byte);
		CU_ASSERT(strlen(e) > strlen(at) && !strcmp(e + strlen(e) - strlen(at), at));
	}
	free(e);
}

static uint16_t f16s[6];
static float f32s[5] = { 1.5f, -2.0f, 0.0f, 3.25e-3f, -1e30f };
static uint8_t q8[2 * 34];

static void make_files(void)
{
	gguf_writer *w = gguf_writer_new(0);
	infer_error err;
	uint32_t many[100];
	int64_t ne_f32[1] = { 5 }, ne_f16[2] = { 3, 2 }, ne_q8[2] = { 32, 2 };
	const char *toks[2] = { "a", "b" };

	for (int i = 0; i < 100; i++)
		many[i] = (uint32_t)i;
	for (int i = 0; i < 6; i++)
		f16s[i] = infer_fp32_to_fp16(0.25f * (float)(i - 2));
	/* two Q8_0 blocks: fp16 scale then 32 int8 quants (ggml block_q8_0) */
	for (int b = 0; b < 2; b++) {
		uint16_t d = infer_fp32_to_fp16(b ? 0.5f : -0.125f);
		memcpy(q8 + 34 * b, &d, 2);
		for (int i = 0; i < 32; i++)
			q8[34 * b + 2 + i] = (uint8_t)(int8_t)(i * 7 - 100);
	}
	gguf_writer_add_str(w, "general.architecture", "llama");
	gguf_writer_add_u32(w, "llama.block_count", 2);
	gguf_writer_add_f32(w, "x.f32", 0.5f);
	gguf_writer_add_bool(w, "x.bool", 1);
	gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 2);
	gguf_writer_add_arr(w, "x.many", GGUF_VT_UINT32, many, 100);
	gguf_writer_add_tensor(w, "w.f32", INFER_TYPE_F32, 1, ne_f32, f32s, sizeof(f32s));
	gguf_writer_add_tensor(w, "w.f16", INFER_TYPE_F16, 2, ne_f16, f16s, sizeof(f16s));
	gguf_writer_add_tensor(w, "w.q8_0", INFER_TYPE_Q8_0, 2, ne_q8, q8, sizeof(q8));
	snprintf(good, sizeof(good), "%s/good.gguf", tmpdir);
	CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, good, &err), 0);
	gguf_writer_free(w);

	/* a copy with a bad tensor type id: malformed input */
	size_t len;
	char *bytes = slurp("good.gguf", &len);
	gguf_file *f = gguf_open(good, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	const gguf_tensor *t = gguf_find_tensor(f, "w.f16");
	size_t type_at = (size_t)t->info_offset + 8 + 5 + 4 + 2 * 8;
	gguf_close(f);
	CU_ASSERT_EQUAL_FATAL(bytes[type_at], INFER_TYPE_F16);
	bytes[type_at] = 4; /* removed Q4_2 */
	snprintf(bad, sizeof(bad), "%s/bad.gguf", tmpdir);
	FILE *fp = fopen(bad, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fwrite(bytes, 1, len, fp);
	fclose(fp);
	free(bytes);
	snprintf(bad_at, sizeof(bad_at), "%zu", type_at);
}

static void test_inspect_json(void)
{
	char args[2048];
	json_error_t jerr;

	snprintf(args, sizeof(args), "inspect '%s' --json", good);
	CU_ASSERT_EQUAL_FATAL(run(args), 0);
	char *out = slurp("out", NULL);
	json_t *root = json_loads(out, 0, &jerr);
	free(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(root, "version")), 3);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(root, "alignment")), 32);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(root, "data_offset")) % 32, 0);
	json_t *meta = json_object_get(root, "metadata");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(meta, "general.architecture")), "llama");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(meta, "llama.block_count")), 2);
	CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(meta, "x.f32")), 0.5, 0);
	CU_ASSERT(json_is_true(json_object_get(meta, "x.bool")));
	json_t *toks = json_object_get(meta, "tokenizer.ggml.tokens");
	CU_ASSERT(json_array_size(toks) == 2 &&
		  !strcmp(json_string_value(json_array_get(toks, 1)), "b"));
	json_t *many = json_object_get(meta, "x.many"); /* > 64 elements: summarised */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(many, "array_type")), "u32");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(many, "length")), 100);
	json_t *ts = json_object_get(root, "tensors");
	CU_ASSERT_EQUAL_FATAL(json_array_size(ts), 3);
	json_t *t = json_array_get(ts, 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(t, "name")), "w.q8_0");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(t, "type")), "q8_0");
	json_t *dims = json_object_get(t, "dims");
	CU_ASSERT(json_array_size(dims) == 2 && json_integer_value(json_array_get(dims, 0)) == 32 &&
		  json_integer_value(json_array_get(dims, 1)) == 2);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(t, "offset")), 64);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(t, "nbytes")), 68);
	json_decref(root);
}

static void test_inspect_text_and_errors(void)
{
	char args[2048];

	snprintf(args, sizeof(args), "inspect '%s'", good);
	CU_ASSERT_EQUAL(run(args), 0);
	char *out = slurp("out", NULL);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "w.q8_0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"llama.block_count\" u32 = 2"));
	free(out);

	snprintf(args, sizeof(args), "inspect '%s' --json", bad);
	CU_ASSERT_EQUAL(run(args), 2);
	check_error_line(bad, bad_at);
	char *o = slurp("out", NULL);
	CU_ASSERT_STRING_EQUAL(o, ""); /* nothing on stdout for a malformed file */
	free(o);

	CU_ASSERT_EQUAL(run("inspect --help"), 0);
	CU_ASSERT_EQUAL(run("inspect"), 2);
	CU_ASSERT_EQUAL(run("inspect a.gguf --bogus"), 2);
}

static void check_floats(const char *tensor, const float *want, size_t n)
{
	char args[2048], out[600];
	size_t len = 0;

	snprintf(out, sizeof(out), "%s/o.f32", tmpdir);
	snprintf(args, sizeof(args), "dequant '%s' --tensor %s --out '%s'", good, tensor, out);
	CU_ASSERT_EQUAL_FATAL(run(args), 0);
	char *got = slurp("o.f32", &len);
	CU_ASSERT_EQUAL(len, n * sizeof(float));
	CU_ASSERT(got && !memcmp(got, want, n * sizeof(float)));
	free(got);
	unlink(out);
}

static void test_dequant(void)
{
	float want[64];

	check_floats("w.f32", f32s, 5);
	for (int i = 0; i < 6; i++)
		want[i] = 0.25f * (float)(i - 2); /* exact in fp16 */
	check_floats("w.f16", want, 6);
	/* Q8_0: value = d * q (ggml dequantize_row_q8_0) */
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 32; i++)
			want[32 * b + i] = (b ? 0.5f : -0.125f) * (float)(int8_t)(i * 7 - 100);
	check_floats("w.q8_0", want, 64);
}

static void test_dequant_errors(void)
{
	char args[2048], out[600];

	snprintf(out, sizeof(out), "%s/o.f32", tmpdir);
	snprintf(args, sizeof(args), "dequant '%s' --tensor w.f32 --out '%s'", bad, out);
	CU_ASSERT_EQUAL(run(args), 2);
	check_error_line(bad, bad_at);
	CU_ASSERT(!exists(out));

	snprintf(args, sizeof(args), "dequant '%s' --tensor missing --out '%s'", good, out);
	CU_ASSERT_EQUAL(run(args), 2);
	check_error_line(good, NULL);
	CU_ASSERT(!exists(out));

	/* unwritable destination: exit 1, nothing created */
	snprintf(args, sizeof(args), "dequant '%s' --tensor w.f32 --out '%s/no/dir/o.f32'", good, tmpdir);
	CU_ASSERT_EQUAL(run(args), 1);
	check_error_line(good, NULL);

	CU_ASSERT_EQUAL(run("dequant --help"), 0);
	CU_ASSERT_EQUAL(run("dequant x.gguf --tensor"), 2);
	CU_ASSERT_EQUAL(run("dequant x.gguf --out o.f32"), 2);
}

int main(void)
{
	const char *bin = getenv("INFER_BIN_DIR");
	CU_pSuite s;
	int failures;

	snprintf(infer_bin, sizeof(infer_bin), "%s/runtime/infer", bin ? bin : "build");
	if (access(infer_bin, X_OK)) {
		fprintf(stderr, "test_gguf_cli: %s not built\n", infer_bin);
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_gguf_cli.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("gguf_cli", NULL, NULL);
	CU_add_test(s, "fixtures", make_files);
	CU_add_test(s, "inspect --json: header, metadata, summarised arrays, tensors", test_inspect_json);
	CU_add_test(s, "inspect text; malformed file: exit 2, one error line with the byte", test_inspect_text_and_errors);
	CU_add_test(s, "dequant f32, f16, q8_0 to raw float32", test_dequant);
	CU_add_test(s, "dequant errors: exit codes, no output file left", test_dequant_errors);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return failures ? 1 : 0;
}
