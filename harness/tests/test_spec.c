/* Spec loader tests: every malformed fixture (harness/tests/fixtures/bad_*.yaml)
 * is rejected with the file:line:col its first line names; the well-formed
 * fixtures load into the expected checks (includes, vars, --set, glob and
 * manifest expansion, requires); YAML scalars resolve to the right types. */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec.h"
#include "yaml_json.h"

static char fixdir[1024];

static const struct check *find_check(const struct spec *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->n_checks; i++)
		if (!strcmp(s->checks[i].id, id))
			return &s->checks[i];
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One fixture: "# expect: L:C substring" on its first line. */
static int check_bad_fixture(const char *name)
{
	char path[PATH_MAX], line[512], want[PATH_MAX + 64], sub[256], where[256], file[256];
	struct spec s;
	infer_error err = { 0 };
	int l, c, rc, ok = 1;
	char *colon;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fixdir, name);
	f = fopen(path, "r");
	if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "# expect: %255s %255[^\n]", where, sub) != 2) {
		fprintf(stderr, "\n  %s: no '# expect: [FILE:]L:C text' first line\n", name);
		if (f)
			fclose(f);
		return 0;
	}
	fclose(f);
	/* An error inside an included file names that file: "inc.yaml:4:11". */
	snprintf(file, sizeof(file), "%s", name);
	if ((colon = strstr(where, ".yaml:"))) {
		snprintf(file, sizeof(file), "%.*s", (int)(colon + 5 - where), where);
		memmove(where, colon + 6, strlen(colon + 6) + 1);
	}
	if (sscanf(where, "%d:%d", &l, &c) != 2) {
		fprintf(stderr, "\n  %s: bad expect position '%s'\n", name, where);
		return 0;
	}
	rc = spec_load(&s, (const char *const[]){ path }, 1, NULL, &err);
	if (rc == 0) {
		fprintf(stderr, "\n  %s: loaded, want an error at %d:%d\n", name, l, c);
		spec_free(&s);
		return 0;
	}
	snprintf(want, sizeof(want), "%s/%s:%d:%d: ", fixdir, file, l, c);
	if (strncmp(err.msg, want, strlen(want)) || !strstr(err.msg, sub)) {
		fprintf(stderr, "\n  %s: got '%s'\n   want '%s...%s...'\n", name, err.msg, want, sub);
		ok = 0;
	}
	for (colon = err.msg; *colon; colon++)
		if ((unsigned char)*colon < 0x20) {
			fprintf(stderr, "\n  %s: message is not one line\n", name);
			ok = 0;
			break;
		}
	if (rc != INFER_E_FORMAT) {
		fprintf(stderr, "\n  %s: code %d, want INFER_E_FORMAT\n", name, rc);
		ok = 0;
	}
	return ok;
}

static void test_bad_fixtures(void)
{
	DIR *d = opendir(fixdir);
	struct dirent *e;
	char *names[128];
	size_t n = 0, i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	while ((e = readdir(d)) && n < 128)
		if (!strncmp(e->d_name, "bad_", 4) && strstr(e->d_name, ".yaml"))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	/* The list: unknown key, wrong type, missing file, bad tolerance, unknown kind, and more. */
	CU_ASSERT(n >= 20);
	for (i = 0; i < n; i++) {
		CU_ASSERT(check_bad_fixture(names[i]));
		free(names[i]);
	}
}

static void test_good_all(void)
{
	char path[PATH_MAX], data_a[PATH_MAX];
	const struct check *c;
	struct spec s;
	infer_error err = { 0 };
	const json_t *tol;

	snprintf(path, sizeof(path), "%s/good_all.yaml", fixdir);
	CU_ASSERT_FATAL(realpath(fixdir, data_a) != NULL);
	strncat(data_a, "/data/a.bin", sizeof(data_a) - strlen(data_a) - 1);
	CU_ASSERT_EQUAL_FATAL(spec_load(&s, (const char *const[]){ path }, 1, NULL, &err), 0);
	/* inc/a, 2 glob (a.bin, b.bin; c.txt not matched), 1 manifest (match a.*), 3 absent, 1 literal,
	 * 2 tensors */
	CU_ASSERT_EQUAL(s.n_checks, 10);
	c = find_check(&s, "good/tensor/expected");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(check_param_str(c, "blocks", ""), "expected");
	CU_ASSERT_PTR_NOT_NULL(find_check(&s, "good/tensor/blocks"));
	CU_ASSERT_PTR_NULL(find_check(&s, "good/tensor/input"));
	CU_ASSERT_STRING_EQUAL(s.checks[0].id, "inc/a"); /* includes come first */

	c = find_check(&s, "inc/a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(c->suite, "inc");
	/* The includer's DATA wins over the included file's default. */
	CU_ASSERT_STRING_EQUAL(check_param_str(c, "golden", ""), data_a);
	CU_ASSERT_EQUAL(json_array_size(c->backends), 2); /* no backends: key: cpu and cuda */

	c = find_check(&s, "good/glob/a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(check_param_str(c, "golden", ""), data_a);
	CU_ASSERT_EQUAL(json_array_size(c->backends), 1);
	CU_ASSERT_PTR_NOT_NULL(find_check(&s, "good/glob/b"));
	CU_ASSERT_PTR_NULL(find_check(&s, "good/glob/c"));

	c = find_check(&s, "good/manifest/q4_0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NULL(find_check(&s, "good/manifest/q8_0")); /* match: a.* */
	CU_ASSERT_STRING_EQUAL(check_param_str(c, "golden", ""), data_a);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(c->params, "entry"), "expected")),
			       "accept");
	CU_ASSERT_EQUAL(json_array_size(c->backends), 2);

	/* requires: absent -> one stand-in check that will report the skip */
	c = find_check(&s, "good/absent/*");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL(strstr(check_param_str(c, SPEC_SKIP_KEY, ""), "reference set not found"));
	tol = json_object_get(c->tolerance, "nmse");
	CU_ASSERT(json_is_real(tol) && json_real_value(tol) == 1.0e-7); /* ${TOL} resolved as a number */

	/* stand-ins of absent sets: named by their match pattern, else numbered */
	CU_ASSERT_PTR_NOT_NULL(find_check(&s, "good/absent/softmax.*"));
	CU_ASSERT_PTR_NOT_NULL(find_check(&s, "good/absent/*#2"));
	CU_ASSERT_PTR_NOT_NULL(find_check(&s, "good/literal-dollar-$HOME"));
	CU_ASSERT_PTR_NULL(check_param_str(find_check(&s, "good/glob/a"), SPEC_SKIP_KEY, NULL));
	CU_ASSERT_EQUAL(json_array_size(s.files), 2);
	CU_ASSERT_PTR_NOT_NULL(json_object_get(s.suites, "inc"));
	spec_free(&s);
}

/* --set wins over every file's vars, down through includes. */
static void test_set_override(void)
{
	char path[PATH_MAX], inc[PATH_MAX];
	json_t *set = json_pack("{s:s}", "DATA", "/nonexistent-dir");
	struct spec s;
	infer_error err = { 0 };

	snprintf(path, sizeof(path), "%s/good_all.yaml", fixdir);
	snprintf(inc, sizeof(inc), "%s/inc_ok.yaml:10:22: input 'golden' not found: /nonexistent-dir/a.bin", fixdir);
	CU_ASSERT_NOT_EQUAL(spec_load(&s, (const char *const[]){ path }, 1, set, &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, inc);
	json_decref(set);

	set = json_pack("{s:s}", "TOL", "-1");
	CU_ASSERT_NOT_EQUAL(spec_load(&s, (const char *const[]){ path }, 1, set, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "good_all.yaml:28:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad tolerance"));
	json_decref(set);
}

static void test_missing_spec(void)
{
	struct spec s;
	infer_error err = { 0 };

	CU_ASSERT_EQUAL(spec_load(&s, (const char *const[]){ "/nonexistent/spec.yaml" }, 1, NULL, &err), INFER_E_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/spec.yaml"));
	CU_ASSERT_EQUAL(s.n_checks, 0);
	CU_ASSERT_PTR_NULL(s.checks);
}

static void test_scalar_types(void)
{
	char path[] = "/tmp/conform-test-spec-XXXXXX";
	const char *text = "i: 42\nneg: -7\nhex: 0x1f\nbig: 18446744073709551615\nf: 1.0e-7\ninf: .inf\n"
			   "t: true\nn: ~\nq: \"12\"\ns: 0731c3a8\n";
	infer_error err = { 0 };
	json_t *j;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	j = yaml_load_json(path, &err);
	unlink(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "i")), 42);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "neg")), -7);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "hex")), 31);
	/* beyond int64: kept as its digits, never rounded through a double */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "big")), "18446744073709551615");
	CU_ASSERT(json_real_value(json_object_get(j, "f")) == 1.0e-7);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "inf")), ".inf");
	CU_ASSERT(json_is_true(json_object_get(j, "t")));
	CU_ASSERT(json_is_null(json_object_get(j, "n")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "q")), "12");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "s")), "0731c3a8");
	json_decref(j);
}

int main(void)
{
	const char *src = getenv("INFER_SOURCE_DIR");
	CU_pSuite s;
	unsigned fails;

	snprintf(fixdir, sizeof(fixdir), "%s/harness/tests/fixtures", src ? src : ".");
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("spec", NULL, NULL);
	CU_add_test(s, "malformed fixtures -> file:line:col", test_bad_fixtures);
	CU_add_test(s, "includes, vars, expansion, requires", test_good_all);
	CU_add_test(s, "--set overrides through includes", test_set_override);
	CU_add_test(s, "missing spec file", test_missing_spec);
	CU_add_test(s, "YAML scalar types", test_scalar_types);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
