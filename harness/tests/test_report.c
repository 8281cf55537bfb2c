/* Report writers: all four files from one hand-built run document with
 * awkward strings. report.json round-trips exactly; report.html is
 * well-formed (xmllint) with every string escaped, self-contained, with the
 * histogram and the per-layer plot; summary.md keeps its tables intact; bad
 * documents and unwritable targets fail with a message and leave nothing. */
#include <dirent.h>
#include <sys/stat.h>

#include "report/report.h"
#include "report/report_internal.h"
#include "test_report_doc.h"

static int have_xmllint(void)
{
	return system("xmllint --version >/dev/null 2>&1") == 0;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char dir[256];

static int setup(void)
{
	json_t *run = doc_build();
	infer_error err;
	const char *d = doc_tmpdir();
	int rc;

	if (!run || !d)
		return 1;
	snprintf(dir, sizeof(dir), "%s/out/nested", d);
	rc = report_write_all(run, dir, &err);
	if (rc)
		fprintf(stderr, "report_write_all: %s\n", err.msg);
	json_decref(run);
	return rc != 0;
}

static int teardown(void)
{
	char top[256];

	snprintf(top, sizeof(top), "%s", dir);
	*strstr(top, "/out/nested") = '\0';
	doc_rmdir(top);
	return 0;
}

static char *read_out(const char *name)
{
	char path[512];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	s = doc_slurp(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	return s;
}

static void test_files(void)
{
	/* Exactly the four reports: no temp file left behind. */
	CU_ASSERT_EQUAL(count_entries(dir), 4);
}

static void test_json_roundtrip(void)
{
	char path[512];
	json_error_t jerr;
	json_t *back, *orig = doc_build();

	snprintf(path, sizeof(path), "%s/report.json", dir);
	back = json_load_file(path, 0, &jerr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_TRUE(json_equal(back, orig));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(back, "schema")),
			       "conform-report/1");
	json_decref(back);
	json_decref(orig);
}

static void test_html(void)
{
	char *html = read_out("report.html");
	char cmd[600];

	/* Well-formed XML means every string went through the escaper. */
	if (have_xmllint()) {
		snprintf(cmd, sizeof(cmd), "xmllint --noout '%s/report.html'", dir);
		CU_ASSERT_EQUAL(system(cmd), 0);
	} else {
		printf("\n  skipped: xmllint not found (apt-get install libxml2-utils)\n");
	}
	CU_ASSERT_PTR_NULL(strstr(html, SCRIPTY));
	CU_ASSERT_PTR_NULL(strstr(html, "<b>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "say \"hi\" &lt;b&gt;&amp;amp;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "\xc3\xbc \xe6\x97\xa5\xe6\x9c\xac"));
	/* Only one <script>, ours; nothing fetched from anywhere. */
	CU_ASSERT_EQUAL(doc_count(html, "<script"), 1);
	CU_ASSERT_PTR_NULL(strstr(html, "<link"));
	CU_ASSERT_PTR_NULL(strstr(html, "<img"));
	CU_ASSERT_PTR_NULL(strstr(html, " src=\""));
	CU_ASSERT_PTR_NULL(strstr(html, "https:"));
	CU_ASSERT_EQUAL(doc_count(html, "http:"), doc_count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
	/* Summary, filters, one table per suite, rows tagged for the filter. */
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "class=\"verdict fail\""));
	CU_ASSERT_EQUAL(doc_count(html, "<section class=\"suite\""), 4);
	CU_ASSERT_EQUAL(doc_count(html, "data-filter="), 4);
	CU_ASSERT_EQUAL(doc_count(html, "<tr class=\"result\" data-status=\"fail\""), 2);
	CU_ASSERT_EQUAL(doc_count(html, "<tr class=\"result\" data-status=\"skip\""), 1);
	CU_ASSERT_EQUAL(doc_count(html, "<tr class=\"result\" data-status=\"error\""), 1);
	/* Two histograms (the two compare results) and one layer plot whose
	 * divergence marker names the first tap over its limit. */
	CU_ASSERT_EQUAL(doc_count(html, "|actual &#8722; expected|"), 2);
	CU_ASSERT_EQUAL(doc_count(html, "per-layer error (log scale)"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "Divergence starts at l_out-1</span> (tap 3 of 5)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "attn&lt;&amp;&gt;-1"));
	/* The haiku transcript as key/value, multi-line text kept in <pre>. */
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "<dt>transcript</dt>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "<dt>max_logprob_diff</dt><dd>3.2e-06</dd>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "<pre>autumn leaves drifting\nsilent"));
	/* The limits a comparison broke are listed; an empty list is not. */
	CU_ASSERT_EQUAL(doc_count(html, "<dt>failed</dt>"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(html, "<dt>failed</dt><dd>[&quot;max_abs&quot;, &quot;nmse&quot;]</dd>"));
	free(html);
}

static void test_markdown(void)
{
	char *md = read_out("summary.md"), *line, *save = NULL;
	int rows = 0;

	CU_ASSERT_TRUE(!strncmp(md, "# conform: FAIL\n", 16));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "**6 checks**: 2 pass, 2 fail, 1 skip, 1 error"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| weird &amp; &lt;suite&gt; \"s\" | 2 | 0 | 0 | 1 | 1 |"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "\\| \\`tick\\` \\*star\\*"));
	CU_ASSERT_PTR_NULL(strstr(md, "<script"));
	/* Skips grouped by reason, with the count and example ids. */
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| 1 | no CUDA device: &lt;script&gt;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| `skipped/one` |"));
	/* Every table row is one line with matching ends: newlines in a message
	 * or id did not split it, and each has 5 or 6 unescaped separators. */
	for (line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != '|')
			continue;
		CU_ASSERT_EQUAL(line[strlen(line) - 1], '|');
		if (!strncmp(line, "| fail |", 8) || !strncmp(line, "| error |", 9)) {
			int seps = 0;
			char *p;

			for (p = line; *p; p++)
				seps += *p == '|' && (p == line || p[-1] != '\\');
			CU_ASSERT_EQUAL(seps, 6);
			rows++;
		}
	}
	CU_ASSERT_EQUAL(rows, 3);
	free(md);
}

/* Many skips for one reason are one line with a count and example ids. */
static void test_markdown_skips(void)
{
	const char *tmp = doc_tmpdir();
	json_t *run = json_pack("{ss s{} s[] ss}", "schema", "conform-report/1", "run",
				"results", "verdict", "pass");
	char path[300], id[16], *md;
	infer_error err;
	int i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		json_array_append_new(json_object_get(run, "results"),
				      doc_result("s", id, "skip", "no cuda", NULL));
	}
	json_array_append_new(json_object_get(run, "results"),
			      doc_result("s", "other", "skip", "no model", NULL));
	snprintf(path, sizeof(path), "%s/summary.md", tmp);
	CU_ASSERT_EQUAL_FATAL(report_write_markdown(run, path, &err), 0);
	md = doc_slurp(path);
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| 5 | no cuda | `k0`, `k1`, `k2` and 2 more |\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| 1 | no model | `other` |\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "No failures."));
	free(md);
	json_decref(run);
	doc_rmdir(tmp);
}

/* A merged run holds one check per source run: JUnit names stay unique and
 * the HTML shows where each came from. */
static void test_merged_sources(void)
{
	const char *tmp = doc_tmpdir();
	json_t *run = json_pack("{ss s{} s[] ss}", "schema", "conform-report/1", "run",
				"results", "verdict", "pass");
	json_t *a = doc_result("s", "x", "pass", "ok", NULL), *b = json_deep_copy(a);
	char path[300], *s;
	infer_error err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	json_object_set_new(a, "source", json_string("runs/h100"));
	json_object_set_new(b, "source", json_string("runs/h200"));
	json_array_append_new(json_object_get(run, "results"), a);
	json_array_append_new(json_object_get(run, "results"), b);
	CU_ASSERT_EQUAL_FATAL(report_write_all(run, tmp, &err), 0);
	snprintf(path, sizeof(path), "%s/junit.xml", tmp);
	s = doc_slurp(path);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "<testcase name=\"x [runs/h100]\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "<testcase name=\"x [runs/h200]\""));
	free(s);
	snprintf(path, sizeof(path), "%s/report.html", tmp);
	s = doc_slurp(path);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-id=\"x cpu runs/h200\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "<small>runs/h100</small>"));
	free(s);
	json_decref(run);
	doc_rmdir(tmp);
}

static void expect_invalid(json_t *run, const char *needle)
{
	const char *tmp = doc_tmpdir();
	char sub[300];
	infer_error err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	snprintf(sub, sizeof(sub), "%s/reports", tmp);
	infer_error_clear(&err);
	CU_ASSERT_NOT_EQUAL(report_write_all(run, sub, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
	if (!strstr(err.msg, needle))
		fprintf(stderr, "\n  message was: %s\n", err.msg);
	/* Rejected before anything was created. */
	CU_ASSERT_EQUAL(count_entries(tmp), 0);
	doc_rmdir(tmp);
	json_decref(run);
}

static void test_invalid_documents(void)
{
	json_t *run;

	run = doc_build();
	json_object_set_new(run, "schema", json_string("conform-report/0"));
	expect_invalid(run, "schema: expected \"conform-report/1\"");

	run = doc_build();
	json_object_set_new(json_array_get(json_object_get(run, "results"), 2), "status",
			    json_string("passed"));
	expect_invalid(run, "results[2].status");

	run = doc_build();
	json_object_del(json_array_get(json_object_get(run, "results"), 1), "backend");
	expect_invalid(run, "results[1].backend: missing");

	run = doc_build();
	json_object_set_new(json_array_get(json_object_get(run, "results"), 0), "duration_s",
			    json_real(-1));
	expect_invalid(run, "results[0].duration_s");

	run = doc_build();
	json_object_set_new(run, "verdict", json_string("maybe"));
	expect_invalid(run, "verdict");

	run = doc_build();
	json_object_del(run, "results");
	expect_invalid(run, "results: missing");
}

static void test_atomic_replace(void)
{
	const char *tmp = doc_tmpdir();
	char path[300], *s;
	json_t *run = doc_build(), *bad;
	infer_error err;
	FILE *f;

	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	snprintf(path, sizeof(path), "%s/summary.md", tmp);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("old", f);
	fclose(f);

	/* A failed write (invalid document) keeps the old file as it was. */
	bad = json_deep_copy(run);
	json_object_set_new(bad, "results", json_string("nope"));
	CU_ASSERT_NOT_EQUAL(report_write_markdown(bad, path, &err), 0);
	s = doc_slurp(path);
	CU_ASSERT_STRING_EQUAL(s, "old");
	free(s);
	json_decref(bad);

	CU_ASSERT_EQUAL(report_write_markdown(run, path, &err), 0);
	s = doc_slurp(path);
	CU_ASSERT_TRUE(!strncmp(s, "# conform: FAIL", 15));
	free(s);
	CU_ASSERT_EQUAL(count_entries(tmp), 1);

	/* A target whose parent is a file: an error naming it, nothing written. */
	snprintf(path, sizeof(path), "%s/summary.md/sub", tmp);
	infer_error_clear(&err);
	CU_ASSERT_NOT_EQUAL(report_write_all(run, path, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "summary.md"));
	snprintf(path, sizeof(path), "%s/missing/report.json", tmp);
	CU_ASSERT_NOT_EQUAL(report_write_json(run, path, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot create"));
	CU_ASSERT_EQUAL(count_entries(tmp), 1);
	json_decref(run);
	doc_rmdir(tmp);
}

/* No results at all: still four valid files; an empty run is no pass. */
static void test_empty_run(void)
{
	const char *tmp = doc_tmpdir();
	json_t *run = json_pack("{ss s{} s[]}", "schema", "conform-report/1", "run", "results");
	infer_error err;
	char path[300], cmd[400], *s;

	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	CU_ASSERT_EQUAL(report_write_all(run, tmp, &err), 0);
	snprintf(path, sizeof(path), "%s/summary.md", tmp);
	s = doc_slurp(path);
	CU_ASSERT_TRUE(s && !strncmp(s, "# conform: FAIL", 15));
	free(s);
	if (have_xmllint()) {
		snprintf(cmd, sizeof(cmd), "xmllint --noout '%s/report.html'", tmp);
		CU_ASSERT_EQUAL(system(cmd), 0);
	}
	json_decref(run);
	doc_rmdir(tmp);
}

static char *escaped(const char *s, size_t len, int attr)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	report_xml_escape(f, s, len, attr);
	fclose(f);
	return out;
}

/* Bytes that are not well-formed UTF-8 never reach a parser. */
static void test_escape_utf8(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "a\xe6\x97", "a\xef\xbf\xbd\xef\xbf\xbd" },      /* truncated 3-byte */
		{ "\xc0\xafx", "\xef\xbf\xbd\xef\xbf\xbdx" },      /* overlong '/' */
		{ "\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* 3-byte overlong */
		{ "\xe6xy", "\xef\xbf\xbdxy" },                   /* lead without continuation */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xef\xbf\xbe", "\xef\xbf\xbd" },                /* U+FFFE */
		{ "\xf0\x9f\x98\x80 <&>", "\xf0\x9f\x98\x80 &lt;&amp;&gt;" }, /* emoji kept */
		{ "\x7f\x08", "\x7f\xef\xbf\xbd" },                /* DEL is XML, BS is not */
	};
	char buf[8];
	json_t *v;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = escaped(cases[i].in, strlen(cases[i].in), 0);

		CU_ASSERT_STRING_EQUAL(got, cases[i].out);
		free(got);
	}
	/* An embedded NUL (JSON "\u0000") is not an XML character either. */
	{
		char *got = escaped("a\0b", 3, 1);

		CU_ASSERT_STRING_EQUAL(got, "a\xef\xbf\xbd" "b");
		free(got);
	}
	/* Truncation for short fields cuts at a character boundary. */
	v = json_string("ab\xe6\x97\xa5\xe6\x9c\xac");
	report_fmt_value(v, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "ab\xe6\x97\xa5");
	report_fmt_value(v, buf, 4);
	CU_ASSERT_STRING_EQUAL(buf, "ab");
	json_decref(v);
}

int main(void)
{
	CU_pSuite s;
	int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("report", setup, teardown);
	CU_add_test(s, "four files, no temp left", test_files);
	CU_add_test(s, "report.json round-trips", test_json_roundtrip);
	CU_add_test(s, "report.html escaped, self-contained, plots", test_html);
	CU_add_test(s, "summary.md tables intact", test_markdown);
	CU_add_test(s, "summary.md groups skips", test_markdown_skips);
	CU_add_test(s, "merged runs keep sources apart", test_merged_sources);
	CU_add_test(s, "invalid documents write nothing", test_invalid_documents);
	CU_add_test(s, "atomic replace and unwritable targets", test_atomic_replace);
	CU_add_test(s, "empty run", test_empty_run);
	CU_add_test(s, "escaping of malformed UTF-8", test_escape_utf8);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = (int)(CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
		       CU_get_number_of_suites_failed());
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
