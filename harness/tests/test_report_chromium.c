/* report.html in a real browser: headless Chromium loads the page with
 * "#selftest", the page's script exercises its own status filter and marks
 * <body>; the test fails on any console message (an uncaught exception is
 * one), on a script that did not finish, or on a failed self-test. A page with
 * a deliberate error must be caught, so the detector itself can fail.
 * Runs only where /usr/bin/chromium exists (not installed in CI: too heavy);
 * CONFORM_CHROMIUM names another binary. */
#include <sys/stat.h>

#include "report/report.h"
#include "test_report_doc.h"

static char dir[256];
static const char *chromium;

static int setup(void)
{
	const char *d = doc_tmpdir();

	chromium = getenv("CONFORM_CHROMIUM") ? getenv("CONFORM_CHROMIUM") : "/usr/bin/chromium";
	if (!d)
		return 1;
	snprintf(dir, sizeof(dir), "%s", d);
	return 0;
}

static int teardown(void)
{
	doc_rmdir(dir);
	return 0;
}

static int have_chromium(void)
{
	if (access(chromium, X_OK) == 0)
		return 1;
	printf("\n  skipped: %s not found (apt-get install chromium)\n", chromium);
	return 0;
}

/* Loads file://path#selftest; fills dom and log paths. 0 when it ran. */
static int load(const char *path, char *dom, char *log, size_t n)
{
	char cmd[2048], profile[300];

	snprintf(profile, sizeof(profile), "%s/profile-XXXXXX", dir);
	if (!mkdtemp(profile))
		return -1;
	snprintf(dom, n, "%s.dom", path);
	snprintf(log, n, "%s.log", path);
	snprintf(cmd, sizeof(cmd),
		 "timeout 60 '%s' --headless --no-sandbox --disable-gpu "
		 "--disable-background-networking --disable-component-update --disable-sync "
		 "--no-first-run --user-data-dir='%s' --enable-logging=stderr --v=0 "
		 "--dump-dom 'file://%s#selftest' >'%s' 2>'%s'",
		 chromium, profile, path, dom, log);
	return system(cmd);
}

/* Console lines Chromium logged ("...:CONSOLE:12] "Uncaught ..."), printed;
 * the page itself logs nothing, so any is a problem. */
static int console_lines(const char *log)
{
	char *s = doc_slurp(log), *line, *save = NULL;
	int n = 0;

	if (!s)
		return -1;
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, ":CONSOLE")) {
			fprintf(stderr, "\n  console: %s", line);
			n++;
		}
	}
	free(s);
	return n;
}

static void test_report_page(void)
{
	char path[300], dom[400], log[400], *s;
	json_t *run = doc_build();
	infer_error err;

	if (!have_chromium()) {
		json_decref(run);
		return;
	}
	snprintf(path, sizeof(path), "%s/report.html", dir);
	CU_ASSERT_EQUAL_FATAL(report_write_html(run, path, &err), 0);
	json_decref(run);
	CU_ASSERT_EQUAL_FATAL(load(path, dom, log, sizeof(dom)), 0);
	CU_ASSERT_EQUAL(console_lines(log), 0);
	s = doc_slurp(dom);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-js=\"ok\""));
	/* The filter showed exactly the rows of each status, then all 6. */
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-selftest=\"pass 6\""));
	if (!strstr(s, "data-selftest=\"pass 6\""))
		fprintf(stderr, "\n  body: %.300s\n", strstr(s, "<body") ? strstr(s, "<body") : s);
	/* The browser parsed the escaped text back to the original characters. */
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "matvec/q4_K \"odd\" &lt;id&gt; &amp; co"));
	free(s);
}

/* A page with an uncaught exception must be reported: the check works. */
static void test_detects_errors(void)
{
	char path[300], dom[400], log[400], *s;
	FILE *f;

	if (!have_chromium())
		return;
	snprintf(path, sizeof(path), "%s/broken.html", dir);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("<!DOCTYPE html><html><body data-js=\"off\"><script>"
	      "notDefined(); document.body.setAttribute('data-js', 'ok');</script></body></html>", f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(load(path, dom, log, sizeof(dom)), 0);
	CU_ASSERT_TRUE(console_lines(log) > 0);
	s = doc_slurp(dom);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NULL(strstr(s, "data-js=\"ok\""));
	free(s);
}

int main(void)
{
	CU_pSuite s;
	int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("report.html in chromium", setup, teardown);
	CU_add_test(s, "no console errors, filter self-test passes", test_report_page);
	CU_add_test(s, "a page with a JS error is caught", test_detects_errors);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = (int)(CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
		       CU_get_number_of_suites_failed());
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
