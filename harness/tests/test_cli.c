/* The conform CLI end to end: exit codes (0 pass, 1 fail/error, 2 usage or
 * spec error), reports written even when checks fail and never on a spec
 * error, cuda checks skipped with a reason where there is no GPU, --no-skip,
 * --filter, and --shard K/N + merge giving back exactly the full run. */
#include <CUnit/Basic.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "infer/backend.h"
#include "infer/gguf.h"
#include "report/report.h"

static char src_dir[1024], conform[1200], tmp_dir[64] = "/tmp/conform-cli-XXXXXX";
static char out[1 << 16];

/* Runs conform with args (shell words) from the source dir; output in out. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char args[4096], cmd[8192];
	va_list ap;
	FILE *p;
	size_t n;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' %s 2>&1", src_dir, conform, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *dir, const char *file)
{
	char p[PATH_MAX + 600];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return stat(p, &st) == 0;
}

static json_t *load_report(const char *dir)
{
	char p[PATH_MAX + 600];

	snprintf(p, sizeof(p), "%s/report.json", dir);
	return json_load_file(p, 0, NULL);
}

static size_t count_status(const json_t *doc, const char *backend, const char *status)
{
	const json_t *r;
	size_t i, n = 0;

	json_array_foreach(json_object_get(doc, "results"), i, r)
		if ((!backend || !strcmp(json_string_value(json_object_get(r, "backend")), backend)) &&
		    !strcmp(json_string_value(json_object_get(r, "status")), status))
			n++;
	return n;
}

/* Flips the lowest mantissa bit of expected[0]: one ulp. */
static int flip_expected_lsb(const char *path)
{
	gguf_file *g = gguf_open(path, NULL);
	const gguf_tensor *t = g ? gguf_find_tensor(g, "expected") : NULL;
	long off = t ? (long)(gguf_data_offset(g) + t->offset) : -1;
	unsigned char b;
	FILE *f;
	int rc = -1;

	gguf_close(g);
	if (off < 0 || !(f = fopen(path, "r+b")))
		return -1;
	if (fseek(f, off, SEEK_SET) == 0 && fread(&b, 1, 1, f) == 1) {
		b ^= 1;
		if (fseek(f, off, SEEK_SET) == 0 && fwrite(&b, 1, 1, f) == 1)
			rc = 0;
	}
	if (fclose(f))
		rc = -1;
	return rc;
}

static void write_spec(const char *name, const char *text)
{
	char p[PATH_MAX + 600];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmp_dir, name);
	f = fopen(p, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_usage(void)
{
	CU_ASSERT_EQUAL(sh("--help"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: conform run SPEC..."));
	CU_ASSERT_EQUAL(sh("%s", ""), 2);
	CU_ASSERT_EQUAL(sh("frobnicate"), 2);
	CU_ASSERT_EQUAL(sh("run"), 2);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --frobnicate"), 2);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --shard 3/2"), 2);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --shard 0/2"), 2);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --backend tpu"), 2);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --set NOEQUALS"), 2);
	CU_ASSERT_EQUAL(sh("merge %s", tmp_dir), 2); /* no --report-dir */
	CU_ASSERT_EQUAL(sh("merge /nonexistent --report-dir %s/m0", tmp_dir), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/report.json"));
	/* a malformed report is named with what is wrong, and nothing is written */
	write_spec("report.json", "{\"schema\": \"conform-report/1\", \"run\": {}, \"results\": "
				  "[{\"id\": \"x\", \"suite\": \"s\", \"backend\": \"cpu\", \"status\": \"maybe\"}]}");
	CU_ASSERT_EQUAL(sh("merge %s --report-dir %s/m1", tmp_dir, tmp_dir), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "results[0].status"));
	CU_ASSERT_FALSE(exists(tmp_dir, "m1/report.json"));
}

/* A spec error stops everything before a check runs: exit 2, no reports. */
static void test_spec_error(void)
{
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/spec-error", tmp_dir);
	CU_ASSERT_EQUAL(sh("run harness/tests/fixtures/bad_unknown_kind.yaml --report-dir %s", dir), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "harness/tests/fixtures/bad_unknown_kind.yaml:5:11: unknown check kind"));
	CU_ASSERT_FALSE(exists(dir, "report.json"));
	CU_ASSERT_EQUAL(sh("list harness/tests/fixtures/bad_yaml_syntax.yaml"), 2);
}

static void test_pass_and_cuda_skip(void)
{
	char dir[512];
	infer_error e = { 0 };
	json_t *doc;

	write_spec("pass.yaml", "suite: t\nchecks:\n"
				"  - id: t/${each.stem}\n    kind: dequant\n"
				"    expand: {glob: \"${GOLDEN}/conformance/dequant/q4_0.*.gguf\"}\n"
				"    inputs: {golden: \"${each.path}\"}\n    tolerance: {exact: true}\n");
	snprintf(dir, sizeof(dir), "%s/pass", tmp_dir);
	CU_ASSERT_EQUAL(sh("run %s/pass.yaml --set GOLDEN=%s/golden --report-dir %s", tmp_dir, src_dir, dir), 0);
	CU_ASSERT(exists(dir, "report.json") && exists(dir, "junit.xml") && exists(dir, "report.html") &&
		  exists(dir, "summary.md"));
	/* not a TTY: one plain line per result */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "PASS  t/q4_0.gauss [cpu]"));
	doc = load_report(dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(doc, "verdict")), "pass");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(doc, "results")), 16); /* 8 files x cpu, cuda */
	CU_ASSERT_EQUAL(count_status(doc, "cpu", "pass"), 8);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(doc, "run"), "started"));
	/* the document conform wrote satisfies the report writers' schema check */
	CU_ASSERT_EQUAL(report_validate(doc, &e), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(doc, "schema")), "conform-report/1");
	if (!infer_backend_available("cuda", &e)) {
		/* never a pass without a GPU: skipped, with the reason */
		CU_ASSERT_EQUAL(count_status(doc, "cuda", "skip"), 8);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "SKIP  t/q4_0.gauss [cuda]"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "unavailable"));
		/* --no-skip turns those skips into a failing verdict */
		CU_ASSERT_EQUAL(sh("run %s/pass.yaml --set GOLDEN=%s/golden --no-skip", tmp_dir, src_dir), 1);
		/* ... and --backend cpu runs only what can run */
		CU_ASSERT_EQUAL(sh("run %s/pass.yaml --set GOLDEN=%s/golden --no-skip --backend cpu", tmp_dir, src_dir),
				0);
	} else {
		CU_ASSERT_EQUAL(count_status(doc, "cuda", "pass"), 8);
	}
	json_decref(doc);
	/* filter: one id */
	CU_ASSERT_EQUAL(sh("run %s/pass.yaml --set GOLDEN=%s/golden --backend cpu --filter 't/q4_0.ra*'", tmp_dir,
			   src_dir), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "conform: 1 results: 1 pass"));
	/* a filter that selects nothing proves nothing: not a pass */
	CU_ASSERT_EQUAL(sh("run %s/pass.yaml --set GOLDEN=%s/golden --filter 'nothing*'", tmp_dir, src_dir), 1);
}

/* A failing check: exit 1, and the four reports are still written. */
static void test_fail_writes_reports(void)
{
	char dir[512], cmd[PATH_MAX * 3];
	json_t *doc;

	/* A golden whose expected floats lost one ulp at element 0 (bytes 0-3 of 'expected'). */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/bad' && cp '%s/golden/conformance/dequant/q8_0.gauss.gguf' '%s/bad/'",
		 tmp_dir, src_dir, tmp_dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	write_spec("fail.yaml", "suite: t\nbackends: [cpu]\nchecks:\n"
				"  - id: t/${each.stem}\n    kind: dequant\n    expand: {glob: bad/*.gguf}\n"
				"    inputs: {golden: \"${each.path}\"}\n"
				"  - id: t/not-a-gguf\n    kind: dequant\n    tags: [broken]\n"
				"    inputs: {golden: fail.yaml}\n");
	snprintf(dir, sizeof(dir), "%s/fail", tmp_dir);
	/* an error (the golden is not a GGUF) is not a pass: exit 1 */
	CU_ASSERT_EQUAL(sh("run %s/fail.yaml --filter 'tag:broken' --report-dir %s", tmp_dir, dir), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ERROR t/not-a-gguf [cpu]"));
	CU_ASSERT_EQUAL(sh("run %s/fail.yaml --filter 't/q8*' --report-dir %s", tmp_dir, dir), 0);
	snprintf(cmd, sizeof(cmd), "%s/bad/q8_0.gauss.gguf", tmp_dir);
	CU_ASSERT_EQUAL_FATAL(flip_expected_lsb(cmd), 0);
	CU_ASSERT_EQUAL(sh("run %s/fail.yaml --filter 't/q8*' --report-dir %s", tmp_dir, dir), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "FAIL  t/q8_0.gauss [cpu]"));
	doc = load_report(dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(doc, "verdict")), "fail");
	CU_ASSERT_EQUAL(count_status(doc, NULL, "fail"), 1);
	CU_ASSERT(exists(dir, "junit.xml") && exists(dir, "report.html") && exists(dir, "summary.md"));
	json_decref(doc);
}

/* --shard K/N slices are disjoint, cover everything, and merge back into the full run. */
/* A fresh clone has no ../shared: those suites load, skip with the reason, and pass. */
static void test_no_reference_set(void)
{
	CU_ASSERT_EQUAL(sh("run specs/kernels.yaml --set SHARED=/nonexistent"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "SKIP  kernels/softmax.* [cpu]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "skipped: reference set not found (/nonexistent/conformance/kernels"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 pass, 0 fail, 14 skip, 0 error -> pass"));
	CU_ASSERT_EQUAL(sh("run specs/kernels.yaml --set SHARED=/nonexistent --no-skip"), 1);
	CU_ASSERT_EQUAL(sh("list specs/default.yaml --set SHARED=/nonexistent"), 0);
}

static void test_shard_merge(void)
{
	char a[512], b[512], m[512];
	json_t *da, *db, *dm, *seen = json_object(), *r;
	size_t i, na, nb;

	snprintf(a, sizeof(a), "%s/shard1", tmp_dir);
	snprintf(b, sizeof(b), "%s/shard2", tmp_dir);
	snprintf(m, sizeof(m), "%s/merged", tmp_dir);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --shard 1/2 --report-dir %s", a), 0);
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --shard 2/2 --report-dir %s", b), 0);
	CU_ASSERT_EQUAL(sh("merge %s %s --report-dir %s", a, b, m), 0);
	CU_ASSERT(exists(m, "junit.xml") && exists(m, "report.html") && exists(m, "summary.md"));
	CU_ASSERT_EQUAL(sh("list specs/gguf.yaml"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n89 checks\n"));
	da = load_report(a);
	db = load_report(b);
	dm = load_report(m);
	CU_ASSERT_FATAL(da && db && dm);
	na = json_array_size(json_object_get(da, "results"));
	nb = json_array_size(json_object_get(db, "results"));
	CU_ASSERT(na > 0 && nb > 0);
	CU_ASSERT_EQUAL(na + nb, 89);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(dm, "results")), 89);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(dm, "verdict")), "pass");
	json_array_foreach(json_object_get(dm, "results"), i, r) {
		const char *id = json_string_value(json_object_get(r, "id"));

		CU_ASSERT_PTR_NULL(json_object_get(seen, id));
		json_object_set_new(seen, id, json_true());
	}
	/* the same slice every time: shard 1 again selects the same ids */
	CU_ASSERT_EQUAL(sh("run specs/gguf.yaml --shard 1/2"), 0);
	json_array_foreach(json_object_get(da, "results"), i, r) {
		char line[300];

		snprintf(line, sizeof(line), "PASS  %s [cpu]", json_string_value(json_object_get(r, "id")));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, line));
	}
	json_decref(da);
	json_decref(db);
	json_decref(dm);
	json_decref(seen);
}

int main(void)
{
	const char *src = getenv("INFER_SOURCE_DIR"), *bin = getenv("INFER_BIN_DIR");
	CU_pSuite s;
	unsigned fails;
	char cmd[200];

	snprintf(src_dir, sizeof(src_dir), "%s", src ? src : ".");
	snprintf(conform, sizeof(conform), "%s/harness/conform", bin ? bin : "build");
	if (access(conform, X_OK)) {
		fprintf(stderr, "conform binary not found at %s (set INFER_BIN_DIR)\n", conform);
		return 1;
	}
	if (!mkdtemp(tmp_dir))
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("conform CLI", NULL, NULL);
	CU_add_test(s, "usage errors exit 2", test_usage);
	CU_add_test(s, "spec error: exit 2, file:line:col, no reports", test_spec_error);
	CU_add_test(s, "pass: exit 0, four reports; cuda skipped with reason", test_pass_and_cuda_skip);
	CU_add_test(s, "fail/error: exit 1, reports still written", test_fail_writes_reports);
	CU_add_test(s, "no ../shared: skipped with the reason, not failed", test_no_reference_set);
	CU_add_test(s, "--shard K/N + merge == full run", test_shard_merge);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	/* Everything under the temp dir was made by this test. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	if (system(cmd))
		fprintf(stderr, "warning: could not remove %s\n", tmp_dir);
	return fails ? 1 : 0;
}
