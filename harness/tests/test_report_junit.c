/* junit.xml validates against the JUnit XSD committed in harness/tests
 * (xmllint from libxml2-utils), its counts match the results, and the awkward
 * strings come back unchanged when an XML parser reads the attributes
 * (newline, tab and CR kept; characters XML cannot carry replaced by U+FFFD).
 * A broken file is rejected, so the validation itself can fail. */
#include "report/report.h"
#include "test_report_doc.h"

static char dir[256], xml[300], xsd[512];
static int have_xmllint;

static int setup(void)
{
	const char *src = getenv("INFER_SOURCE_DIR");
	const char *d = doc_tmpdir();
	json_t *run = doc_build();
	infer_error err;
	int rc;

	if (!d || !run)
		return 1;
	snprintf(dir, sizeof(dir), "%s", d);
	snprintf(xml, sizeof(xml), "%s/junit.xml", dir);
	/* Under ctest INFER_SOURCE_DIR names the checkout; run by hand, the
	 * schema sits beside this file. */
	if (src)
		snprintf(xsd, sizeof(xsd), "%s/harness/tests/junit.xsd", src);
	else
		snprintf(xsd, sizeof(xsd), "%.*s/junit.xsd",
			 (int)(strrchr(__FILE__, '/') ? strrchr(__FILE__, '/') - __FILE__ : 1),
			 strrchr(__FILE__, '/') ? __FILE__ : ".");
	rc = report_write_junit(run, xml, &err);
	if (rc)
		fprintf(stderr, "report_write_junit: %s\n", err.msg);
	json_decref(run);
	have_xmllint = system("xmllint --version >/dev/null 2>&1") == 0;
	return rc != 0;
}

static int teardown(void)
{
	doc_rmdir(dir);
	return 0;
}

static int validate(const char *file, int quiet)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "xmllint --noout --schema '%s' '%s'%s", xsd, file,
		 quiet ? " 2>/dev/null" : "");
	return system(cmd);
}

/* The output of `xmllint --xpath EXPR xml`, one trailing newline removed. */
static char *xpath(const char *expr)
{
	char cmd[1024], *out = calloc(1, 4096);
	size_t n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "xmllint --xpath '%s' '%s'", expr, xml);
	p = popen(cmd, "r");
	if (!p || !out) {
		free(out);
		return NULL;
	}
	n = fread(out, 1, 4095, p);
	pclose(p);
	if (n && out[n - 1] == '\n')
		out[n - 1] = '\0';
	return out;
}

static void test_schema(void)
{
	if (!have_xmllint) {
		printf("\n  skipped: xmllint not found (apt-get install libxml2-utils)\n");
		return;
	}
	CU_ASSERT_EQUAL(validate(xml, 0), 0);
}

/* Files the schema must reject: proof the validation is switched on. */
static void test_schema_rejects(void)
{
	static const char *const bad[] = {
		/* testcase without a name */
		"<testsuites><testsuite name=\"s\" tests=\"1\"><testcase classname=\"c\"/>"
		"</testsuite></testsuites>",
		/* time in exponent notation */
		"<testsuites><testsuite name=\"s\" tests=\"1\"><testcase name=\"t\" time=\"1e-3\"/>"
		"</testsuite></testsuites>",
		/* two outcomes for one case */
		"<testsuites><testsuite name=\"s\" tests=\"1\"><testcase name=\"t\"><failure/>"
		"<skipped/></testcase></testsuite></testsuites>",
		/* not well-formed: raw < in an attribute */
		"<testsuites><testsuite name=\"a<b\" tests=\"0\"/></testsuites>",
	};
	char path[320];
	size_t i;
	FILE *f;

	if (!have_xmllint)
		return;
	/* The schema loads and accepts a good file, so a rejection below is the
	 * file's fault, not a missing schema. */
	CU_ASSERT_EQUAL_FATAL(validate(xml, 1), 0);
	snprintf(path, sizeof(path), "%s/bad.xml", dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fopen(path, "w");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs(bad[i], f);
		fclose(f);
		CU_ASSERT_NOT_EQUAL(validate(path, 1), 0);
	}
}

static void test_counts(void)
{
	char *s = doc_slurp(xml);

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "<testsuites name=\"conform\" tests=\"6\" failures=\"2\" "
				      "errors=\"1\" skipped=\"1\""));
	CU_ASSERT_EQUAL(doc_count(s, "<testsuite "), 4);
	CU_ASSERT_EQUAL(doc_count(s, "<testcase "), 6);
	CU_ASSERT_EQUAL(doc_count(s, "<failure "), 2);
	CU_ASSERT_EQUAL(doc_count(s, "<error "), 1);
	CU_ASSERT_EQUAL(doc_count(s, "<skipped "), 1);
	/* The failure text carries the evidence: metrics, limits, worst element. */
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "tolerance: max_abs=0.0001, nmse=1e-07"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "multi_index=[5,1]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "divergence starts at layer tap 3: l_out-1"));
	free(s);
}

/* What an XML parser reads back is the original string. */
static void test_roundtrip(void)
{
	/* AWKWARD with \x01, \x1f and U+FFFF replaced by U+FFFD. */
	static const char expect[] = "say \"hi\" <b>&amp; 'x' </testcase> ]]> | `tick` *star* \n"
		"second line\r\ttab \xef\xbf\xbd\xef\xbf\xbd ctl \xc3\xbc "
		"\xe6\x97\xa5\xe6\x9c\xac \xef\xbf\xbd end";
	char *got;

	if (!have_xmllint)
		return;
	got = xpath("string(//testcase[@classname=\"kernels.cpu\"][2]/failure/@message)");
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_STRING_EQUAL(got, expect);
	free(got);
	got = xpath("string(//testcase[@classname=\"kernels.cpu\"][2]/@name)");
	CU_ASSERT_STRING_EQUAL(got, "matvec/q4_K \"odd\" <id> & co");
	free(got);
	got = xpath("string(//skipped/@message)");
	CU_ASSERT_STRING_EQUAL(got, "no CUDA device: " SCRIPTY);
	free(got);
	got = xpath("string(//testsuite[2]/@name)");
	CU_ASSERT_STRING_EQUAL(got, "weird & <suite> \"s\"");
	free(got);
}

int main(void)
{
	CU_pSuite s;
	int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("junit", setup, teardown);
	CU_add_test(s, "junit.xml validates against junit.xsd", test_schema);
	CU_add_test(s, "schema rejects broken files", test_schema_rejects);
	CU_add_test(s, "counts and evidence", test_counts);
	CU_add_test(s, "strings survive an XML parser", test_roundtrip);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = (int)(CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
		       CU_get_number_of_suites_failed());
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
