/* compare.c: every metric passes on agreeing data and FAILS on data perturbed
 * just past its limit (1 ulp under exact, NaN where finite is expected, Inf of
 * the wrong sign, an argmax swap, a top-k member replaced, ...). */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "cunit_table.h"

static cmp_tolerance tol_of(const char *json)
{
	json_error_t jerr;
	json_t *j = json_loads(json, 0, &jerr);
	cmp_tolerance t;
	infer_error err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_EQUAL_FATAL(cmp_tolerance_parse(j, &t, &err), 0);
	json_decref(j);
	return t;
}

/* Runs the comparison, checks the verdict and that `name` is (or is not) in
 * "failed"; returns the details for further checks (caller frees). */
static json_t *run(const float *a, const float *b, int64_t n, const int64_t *shape,
		   int nd, const char *tol, int want_ok, const char *name)
{
	cmp_tolerance t = tol_of(tol);
	json_t *d = NULL, *f;
	size_t i;
	int found = 0;
	char *dump;

	CU_ASSERT_EQUAL(cmp_compare(a, b, n, shape, nd, &t, &d), want_ok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	f = json_object_get(d, "failed");
	CU_ASSERT_TRUE(json_is_array(f));
	CU_ASSERT_EQUAL(json_array_size(f) == 0, want_ok);
	for (i = 0; i < json_array_size(f); i++)
		found |= !strcmp(json_string_value(json_array_get(f, i)), name ? name : "");
	CU_ASSERT_EQUAL(found, !want_ok && name);
	/* The details always serialise: no NaN/Inf numbers inside. */
	dump = json_dumps(d, 0);
	CU_ASSERT_PTR_NOT_NULL(dump);
	free(dump);
	return d;
}

static double metric(const json_t *d, const char *name)
{
	const json_t *v = json_object_get(json_object_get(d, "metrics"), name);

	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		return !strcmp(s, "inf") ? INFINITY : !strcmp(s, "-inf") ? -INFINITY : NAN;
	}
	CU_ASSERT_TRUE(json_is_number(v));
	return json_number_value(v);
}

static json_int_t worst_index(const json_t *d)
{
	return json_integer_value(json_object_get(json_object_get(d, "worst"), "index"));
}

static void test_exact(void)
{
	float b[12], a[12];
	int64_t shape[2] = { 4, 3 };
	json_t *d, *mi;
	int i;

	for (i = 0; i < 12; i++)
		b[i] = a[i] = 0.1f * (float)i - 0.3f;
	d = run(a, b, 12, shape, 2, "{\"exact\": true}", 1, NULL);
	CU_ASSERT_TRUE(json_is_null(json_object_get(d, "worst")));
	json_decref(d);

	a[6] = nextafterf(b[6], INFINITY); /* one ulp: [2, 1] */
	d = run(a, b, 12, shape, 2, "{\"exact\": true}", 0, "exact");
	CU_ASSERT_EQUAL(worst_index(d), 6);
	mi = json_object_get(json_object_get(d, "worst"), "multi_index");
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(mi, 0)), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(mi, 1)), 1);
	CU_ASSERT_EQUAL(metric(d, "mismatches"), 1);
	CU_ASSERT_EQUAL(metric(d, "max_ulp"), 1);
	json_decref(d);
}

/* The multi-index of a 3-d shape, fastest dimension first: 23 = 1 + 2*2 + 3*6. */
static void test_multi_index(void)
{
	float a[24] = { 0 }, b[24] = { 0 };
	int64_t shape[3] = { 2, 3, 4 };
	json_t *d, *mi;

	a[23] = 1;
	d = run(a, b, 24, shape, 3, "{\"exact\": true}", 0, "exact");
	mi = json_object_get(json_object_get(d, "worst"), "multi_index");
	CU_ASSERT_EQUAL(json_array_size(mi), 3);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(mi, 0)), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(mi, 1)), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(mi, 2)), 3);
	json_decref(d);
}

static void test_signed_zero(void)
{
	float b[2] = { 0.0f, 1.0f }, a[2] = { -0.0f, 1.0f };
	json_t *d;

	/* Bitwise different, numerically equal: exact fails, ulp 0 passes. */
	d = run(a, b, 2, NULL, 0, "{\"exact\": true}", 0, "exact");
	CU_ASSERT_EQUAL(worst_index(d), 0);
	json_decref(d);
	d = run(a, b, 2, NULL, 0, "{\"max_ulp\": 0}", 1, NULL);
	json_decref(d);
}

static void test_max_abs_rel(void)
{
	float b[4] = { 1, -2, 4, 100 }, a[4] = { 1, -2, 4, 100.5f };
	json_t *d;

	d = run(a, b, 4, NULL, 0, "{\"max_abs\": 0.5, \"max_rel\": 0.005}", 1, NULL);
	CU_ASSERT_DOUBLE_EQUAL(metric(d, "max_abs"), 0.5, 1e-12);
	CU_ASSERT_DOUBLE_EQUAL(metric(d, "max_rel"), 0.005, 1e-12);
	json_decref(d);
	d = run(a, b, 4, NULL, 0, "{\"max_abs\": 0.4}", 0, "max_abs");
	CU_ASSERT_EQUAL(worst_index(d), 3);
	json_decref(d);
	d = run(a, b, 4, NULL, 0, "{\"max_rel\": 0.004}", 0, "max_rel");
	json_decref(d);

	/* A non-zero where the reference is 0 is infinitely wrong, relatively. */
	b[0] = 0;
	a[0] = 1e-30f;
	d = run(a, b, 4, NULL, 0, "{\"max_rel\": 1e30}", 0, "max_rel");
	CU_ASSERT_TRUE(isinf(metric(d, "max_rel")));
	json_decref(d);
}

static void test_nmse(void)
{
	float b[2] = { 1, 1 }, a[2] = { 1, 2 };
	json_t *d;

	d = run(a, b, 2, NULL, 0, "{\"nmse\": 0.5}", 1, NULL);
	CU_ASSERT_DOUBLE_EQUAL(metric(d, "nmse"), 0.5, 1e-15);
	json_decref(d);
	d = run(a, b, 2, NULL, 0, "{\"nmse\": 0.49, \"max_abs\": 10}", 0, "nmse");
	json_decref(d);

	/* All-zero reference: any error is an infinite NMSE. */
	b[0] = b[1] = 0;
	d = run(a, b, 2, NULL, 0, "{\"nmse\": 1e9}", 0, "nmse");
	json_decref(d);
}

static void test_ulp(void)
{
	float b[3] = { 1.0f, -1e-45f, 3.0f }, a[3];
	float zb[1] = { -1e-45f }, za[1] = { nextafterf(nextafterf(0.0f, 1.0f), 1.0f) };
	json_t *d;

	/* Across zero: -1 denormal to +2 denormals is 3 steps (+0 == -0). */
	d = run(za, zb, 1, NULL, 0, "{\"max_ulp\": 3}", 1, NULL);
	CU_ASSERT_EQUAL(metric(d, "max_ulp"), 3);
	json_decref(d);
	d = run(za, zb, 1, NULL, 0, "{\"max_ulp\": 2}", 0, "max_ulp");
	json_decref(d);

	a[0] = nextafterf(nextafterf(1.0f, 2.0f), 2.0f);
	a[1] = 1e-45f; /* smallest denormals of opposite sign: 2 ulp apart */
	a[2] = 3.0f;
	d = run(a, b, 3, NULL, 0, "{\"max_ulp\": 2}", 1, NULL);
	CU_ASSERT_EQUAL(metric(d, "max_ulp"), 2);
	json_decref(d);
	d = run(a, b, 3, NULL, 0, "{\"max_ulp\": 1}", 0, "max_ulp");
	json_decref(d);
}

static void test_cosine(void)
{
	float b[3] = { 1, 2, 3 }, a[3] = { 2, 4, 6 }, o[3] = { 3, 0, -1 };
	json_t *d;

	/* Same direction, twice the length: cosine passes, NMSE does not. */
	d = run(a, b, 3, NULL, 0, "{\"min_cosine\": 0.9999}", 1, NULL);
	CU_ASSERT_DOUBLE_EQUAL(metric(d, "cosine"), 1.0, 1e-12);
	json_decref(d);
	d = run(a, b, 3, NULL, 0, "{\"min_cosine\": 0.9999, \"nmse\": 0.5}", 0, "nmse");
	json_decref(d);
	d = run(o, b, 3, NULL, 0, "{\"min_cosine\": 0.5}", 0, "cosine");
	CU_ASSERT_DOUBLE_EQUAL(metric(d, "cosine"), 0.0, 1e-12);
	json_decref(d);
}

/* Identical data has cosine exactly 1 (rounding may not push it past). */
static void test_cosine_identical(void)
{
	float x[2048];
	json_t *d;
	int i, hits = 0;

	for (i = 0; i < 2048; i++)
		x[i] = (float)((i * 7919) % 2053) * 0.37f - 300.0f;
	d = run(x, x, 2048, NULL, 0, "{\"min_cosine\": 1}", 1, NULL);
	CU_ASSERT_TRUE(metric(d, "cosine") <= 1.0);
	hits += metric(d, "cosine") == 1.0;
	CU_ASSERT_EQUAL(hits, 1);
	json_decref(d);
}

static void test_nonfinite(void)
{
	float b[4] = { 1, 2, INFINITY, NAN }, a[4] = { 1, 2, INFINITY, NAN };
	const char *loose = "{\"max_abs\": 1e30, \"nmse\": 1e30}";
	json_t *d;

	/* Matching Inf and NaN are agreement. */
	d = run(a, b, 4, NULL, 0, loose, 1, NULL);
	json_decref(d);

	a[1] = NAN; /* NaN where 2 is expected: fails whatever the tolerance */
	d = run(a, b, 4, NULL, 0, loose, 0, "nonfinite");
	CU_ASSERT_EQUAL(worst_index(d), 1);
	CU_ASSERT_EQUAL(metric(d, "nonfinite"), 1);
	json_decref(d);

	a[1] = INFINITY; /* Inf where finite is expected */
	d = run(a, b, 4, NULL, 0, loose, 0, "nonfinite");
	json_decref(d);

	a[1] = 2;
	a[2] = -INFINITY; /* Inf of the wrong sign */
	d = run(a, b, 4, NULL, 0, loose, 0, "nonfinite");
	CU_ASSERT_EQUAL(worst_index(d), 2);
	json_decref(d);

	a[2] = INFINITY;
	a[3] = 0; /* a number where the reference is NaN */
	d = run(a, b, 4, NULL, 0, loose, 0, "nonfinite");
	CU_ASSERT_EQUAL(worst_index(d), 3);
	json_decref(d);
}

static void test_argmax(void)
{
	/* Two rows of 5 logits; row 1's two best are swapped in `a`. */
	float b[10] = { 0, 5, 1, 2, 3,   9, 8, 1, 0, -1 };
	float a[10] = { 0, 5, 1, 2, 3,   8, 9, 1, 0, -1 };
	int64_t shape[2] = { 5, 2 };
	json_t *d, *fm;

	d = run(b, b, 10, shape, 2, "{\"argmax\": true}", 1, NULL);
	json_decref(d);
	d = run(a, b, 10, shape, 2, "{\"argmax\": true}", 0, "argmax");
	CU_ASSERT_EQUAL(metric(d, "argmax_rows"), 2);
	CU_ASSERT_EQUAL(metric(d, "argmax_agree"), 1);
	fm = json_object_get(json_object_get(d, "metrics"), "argmax_first_mismatch");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(fm, "row")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(fm, "actual")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(fm, "expected")), 0);
	json_decref(d);

	/* Ties resolve to the first index: a tie at 0 and 1 agrees with a
	 * reference whose maximum is at 0, not with one whose maximum is at 1. */
	a[5] = 9;
	a[6] = 9;
	d = run(a, b, 10, shape, 2, "{\"argmax\": true}", 1, NULL);
	json_decref(d);
	b[5] = 8;
	b[6] = 9;
	d = run(a, b, 10, shape, 2, "{\"argmax\": true}", 0, "argmax");
	json_decref(d);
}

static void test_topk(void)
{
	float b[8] = { 7, 6, 5, 4, 3, 2, 1, 0 };
	float a[8] = { 5, 6, 7, 4, 3, 2, 1, 0 }; /* top-3 reordered: same set */
	json_t *d;

	d = run(a, b, 8, NULL, 0, "{\"topk\": 3}", 1, NULL);
	CU_ASSERT_EQUAL(metric(d, "topk_overlap_min"), 3);
	json_decref(d);

	a[2] = 3.5f; /* index 3 (4.0) now beats index 2: overlap 2 of 3 */
	d = run(a, b, 8, NULL, 0, "{\"topk\": 3}", 0, "topk");
	CU_ASSERT_EQUAL(metric(d, "topk_overlap_min"), 2);
	json_decref(d);
	d = run(a, b, 8, NULL, 0, "{\"topk\": 3, \"topk_min\": 2}", 1, NULL);
	json_decref(d);
}

/* A vocabulary-sized logits row: argmax and top-40 on 151936 values. */
static void test_logits_row(void)
{
	const int64_t n = 151936;
	float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
	int64_t i, best = 0;
	json_t *d;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	for (i = 0; i < n; i++) {
		a[i] = b[i] = (float)((i * 2654435761u) % 100003) * 1e-4f;
		if (b[i] > b[best])
			best = i;
	}
	d = run(a, b, n, NULL, 0, "{\"argmax\": true, \"topk\": 40, \"exact\": true}", 1, NULL);
	CU_ASSERT_EQUAL(metric(d, "topk_overlap_min"), 40);
	json_decref(d);

	a[best] = -1; /* the winner drops out of the actual top 40 */
	d = run(a, b, n, NULL, 0, "{\"argmax\": true, \"topk\": 40, \"topk_min\": 40}", 0,
		"argmax");
	CU_ASSERT_EQUAL(metric(d, "topk_overlap_min"), 39);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(d, "failed")), 2);
	CU_ASSERT_EQUAL(worst_index(d), best);
	json_decref(d);
	free(a);
	free(b);
}

static void test_histogram(void)
{
	float b[6] = { 0, 0, 0, 0, 0, 0 }, a[6] = { 0, 0.5f, 0.05f, 1e-12f, 0, NAN };
	json_t *d, *h, *e, *c;
	json_int_t sum = 0;
	size_t i;

	d = run(a, b, 6, NULL, 0, "{\"max_abs\": 1}", 0, "nonfinite");
	h = json_object_get(d, "histogram");
	e = json_object_get(h, "edges");
	c = json_object_get(h, "counts");
	CU_ASSERT_EQUAL(json_array_size(e), 11);
	CU_ASSERT_EQUAL(json_array_size(c), 10);
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_array_get(e, 0)), 0, 0);
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_array_get(e, 10)), 1, 1e-15);
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_array_get(e, 1)), 1e-9, 1e-24);
	for (i = 0; i < 10; i++)
		sum += json_integer_value(json_array_get(c, i));
	CU_ASSERT_EQUAL(sum, 5);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(c, 0)), 3); /* 0, 1e-12, 0 */
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(c, 8)), 1); /* 0.05 */
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(c, 9)), 1); /* 0.5 */
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(h, "nonfinite")), 1);
	json_decref(d);
}

static void expect_parse_error(const char *json, const char *needle)
{
	json_t *j = json_loads(json, JSON_DECODE_ANY, NULL);
	cmp_tolerance t;
	infer_error err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	infer_error_clear(&err);
	CU_ASSERT_NOT_EQUAL(cmp_tolerance_parse(j, &t, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
	json_decref(j);
}

static void test_tolerance_parse(void)
{
	cmp_tolerance t = tol_of("{\"nmse\": 1e-7, \"max_abs\": 1e-4, \"topk\": 5}");
	json_t *back;

	CU_ASSERT_DOUBLE_EQUAL(t.nmse, 1e-7, 0);
	CU_ASSERT_DOUBLE_EQUAL(t.max_abs, 1e-4, 0);
	CU_ASSERT_EQUAL(t.topk_min, 5);
	CU_ASSERT_TRUE(t.max_rel < 0 && t.min_cosine < -1 && !t.exact);
	back = cmp_tolerance_to_json(&t);
	CU_ASSERT_EQUAL(json_object_size(back), 4);
	json_decref(back);

	expect_parse_error("{\"nmes\": 1e-7}", "unknown key 'nmes'");
	expect_parse_error("{\"nmse\": \"small\"}", "tolerance.nmse");
	expect_parse_error("{\"max_abs\": -1}", "tolerance.max_abs");
	expect_parse_error("{\"min_cosine\": 1.5}", "tolerance.min_cosine");
	expect_parse_error("{\"exact\": 1}", "tolerance.exact");
	expect_parse_error("{\"topk\": 100000}", "tolerance.topk");
	expect_parse_error("{\"topk_min\": 2}", "needs topk");
	expect_parse_error("{\"topk\": 2, \"topk_min\": 3}", "more than topk");
	expect_parse_error("{}", "empty");
	expect_parse_error("{\"exact\": false}", "every limit is off");
	expect_parse_error("[1]", "expected a mapping");
}

static void test_bad_inputs(void)
{
	float a[4] = { 0 }, b[4] = { 0 };
	int64_t shape[2] = { 3, 2 };
	cmp_tolerance t = tol_of("{\"exact\": true}");
	json_t *d;
	char line[256];

	CU_ASSERT_EQUAL(cmp_compare(a, b, 4, shape, 2, &t, &d), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(d, "failed"), 0)),
			       "shape");
	cmp_summary(d, line, sizeof(line));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "shape has 6 elements, data has 4"));
	json_decref(d);
	CU_ASSERT_EQUAL(cmp_compare(a, b, 0, NULL, 0, &t, &d), 0);
	json_decref(d);
	CU_ASSERT_EQUAL(cmp_compare(a, b, 4, NULL, 0, NULL, &d), 0);
	json_decref(d);
	CU_ASSERT_EQUAL(cmp_compare(a, b, 4, NULL, 0, &t, NULL), 1);
	a[3] = 1;
	CU_ASSERT_EQUAL(cmp_compare(a, b, 4, NULL, 0, &t, NULL), 0);
}

static void test_summary(void)
{
	float b[6] = { 1, 2, 3, 4, 5, 6 }, a[6] = { 1, 2, 3, 4, 5.5f, 6 };
	int64_t shape[2] = { 3, 2 };
	char line[256];
	json_t *d;

	d = run(a, b, 6, shape, 2, "{\"nmse\": 1e-7, \"max_abs\": 1}", 0, "nmse");
	cmp_summary(d, line, sizeof(line));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "nmse 0.00275 > 1e-07"));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "(worst [1,1]: 5.5 vs 5)"));
	CU_ASSERT_PTR_NULL(strstr(line, "max_abs"));
	json_decref(d);

	d = run(a, b, 6, shape, 2, "{\"max_abs\": 1}", 1, NULL);
	cmp_summary(d, line, sizeof(line));
	CU_ASSERT_STRING_EQUAL(line, "ok: max_abs 0.5 <= 1");
	/* A short buffer truncates, never overflows. */
	cmp_summary(d, line, 5);
	CU_ASSERT_STRING_EQUAL(line, "ok: ");
	json_decref(d);
}

static void test_json_number(void)
{
	json_t *v = cmp_json_number(INFINITY);

	CU_ASSERT_STRING_EQUAL(json_string_value(v), "inf");
	json_decref(v);
	v = cmp_json_number(-INFINITY);
	CU_ASSERT_STRING_EQUAL(json_string_value(v), "-inf");
	json_decref(v);
	v = cmp_json_number(NAN);
	CU_ASSERT_STRING_EQUAL(json_string_value(v), "nan");
	json_decref(v);
	v = cmp_json_number(0.25);
	CU_ASSERT_DOUBLE_EQUAL(json_real_value(v), 0.25, 0);
	json_decref(v);
}

int main(void)
{
	static const struct cu_case tests[] = {
		{ "exact fails on 1 ulp", test_exact },
		{ "multi-index", test_multi_index },
		{ "signed zero", test_signed_zero },
		{ "max_abs and max_rel", test_max_abs_rel },
		{ "nmse", test_nmse },
		{ "ulp distance", test_ulp },
		{ "cosine", test_cosine },
		{ "cosine of identical data", test_cosine_identical },
		{ "NaN/Inf rules", test_nonfinite },
		{ "argmax swap", test_argmax },
		{ "top-k overlap", test_topk },
		{ "vocabulary-sized row", test_logits_row },
		{ "histogram", test_histogram },
		{ "tolerance parsing", test_tolerance_parse },
		{ "bad inputs fail", test_bad_inputs },
		{ "summary line", test_summary },
		{ "json numbers", test_json_number },
	};
	int failed;

	failed = cu_run_table("compare", tests, sizeof(tests) / sizeof(tests[0]));
	if (failed < 0)
		return 2;
	return failed ? 1 : 0;
}
