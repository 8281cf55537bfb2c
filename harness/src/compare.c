/* Comparison metrics: one pass accumulates every metric, a second pass bins
 * |a-b| into the histogram (its edges depend on max_abs), and argmax/top-k run
 * per row. Sums are in double so NMSE over 150k logits keeps its digits. The
 * only allocation is the details object handed back to the caller. */
#include "compare.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define HIST_BINS 10

/* Everything one pass over the data learns. */
struct cmp_acc {
	int64_t mismatches;      /* bitwise */
	int64_t nonfinite;       /* NaN/Inf rule violations */
	int64_t first_nonfinite; /* -1 when none */
	int64_t first_mismatch;
	int64_t worst;           /* index of max |a-b| among finite pairs, -1 when none */
	int64_t n_finite;
	double max_abs, max_rel, max_ulp;
	double sum_d2, sum_b2, sum_a2, dot;
};

struct cmp_rows {
	int64_t rows, agree;
	int64_t first_row, first_a, first_b; /* first argmax disagreement, -1 when none */
	int k;                               /* top-k: 0 when off */
	int overlap_min;
	int64_t overlap_row;
};

void cmp_tolerance_init(cmp_tolerance *t)
{
	memset(t, 0, sizeof(*t));
	t->max_abs = -1;
	t->max_rel = -1;
	t->nmse = -1;
	t->max_ulp = -1;
	t->min_cosine = -2;
}

json_t *cmp_json_number(double v)
{
	if (isnan(v))
		return json_string("nan");
	if (isinf(v))
		return json_string(v > 0 ? "inf" : "-inf");
	return json_real(v);
}

/* An integral count kept in a double (ULP distances): an integer in JSON. */
static json_t *json_count(double v)
{
	if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
		return json_integer((json_int_t)v);
	return cmp_json_number(v);
}

/* ---- tolerance ---------------------------------------------------------- */

static int tol_limit(const char *key, const json_t *v, double lo, double hi,
		     double *out, infer_error *err)
{
	double d;

	if (!json_is_number(v))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.%s: expected a number", key);
	d = json_number_value(v);
	if (!(d >= lo && d <= hi))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.%s: %g is outside [%g, %g]", key, d, lo, hi);
	*out = d;
	return 0;
}

static int tol_flag(const char *key, const json_t *v, int *out, infer_error *err)
{
	if (!json_is_boolean(v))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.%s: expected true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int tol_count(const char *key, const json_t *v, int lo, int hi, int *out,
		     infer_error *err)
{
	json_int_t i;

	if (!json_is_integer(v))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.%s: expected an integer", key);
	i = json_integer_value(v);
	if (i < lo || i > hi)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.%s: %lld is outside [%d, %d]", key,
				       (long long)i, lo, hi);
	*out = (int)i;
	return 0;
}

static int tol_key(cmp_tolerance *t, const char *key, const json_t *v, infer_error *err)
{
	if (!strcmp(key, "exact"))
		return tol_flag(key, v, &t->exact, err);
	if (!strcmp(key, "argmax"))
		return tol_flag(key, v, &t->argmax, err);
	if (!strcmp(key, "max_abs"))
		return tol_limit(key, v, 0, INFINITY, &t->max_abs, err);
	if (!strcmp(key, "max_rel"))
		return tol_limit(key, v, 0, INFINITY, &t->max_rel, err);
	if (!strcmp(key, "nmse"))
		return tol_limit(key, v, 0, INFINITY, &t->nmse, err);
	if (!strcmp(key, "max_ulp"))
		return tol_limit(key, v, 0, INFINITY, &t->max_ulp, err);
	if (!strcmp(key, "min_cosine"))
		return tol_limit(key, v, -1, 1, &t->min_cosine, err);
	if (!strcmp(key, "topk"))
		return tol_count(key, v, 1, CMP_TOPK_MAX, &t->topk, err);
	if (!strcmp(key, "topk_min"))
		return tol_count(key, v, 1, CMP_TOPK_MAX, &t->topk_min, err);
	return infer_error_set(err, INFER_E_ARG, -1,
			       "tolerance: unknown key '%s' (known: exact, max_abs, max_rel, "
			       "nmse, max_ulp, min_cosine, argmax, topk, topk_min)", key);
}

int cmp_tolerance_parse(const json_t *tol, cmp_tolerance *out, infer_error *err)
{
	const char *key;
	json_t *v;
	cmp_tolerance t;
	int rc;

	cmp_tolerance_init(&t);
	if (!json_is_object(tol))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance: expected a mapping such as {nmse: 1e-7}");
	if (json_object_size(tol) == 0)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance: empty; name at least one limit");
	json_object_foreach((json_t *)tol, key, v) {
		rc = tol_key(&t, key, v, err);
		if (rc)
			return rc;
	}
	if (t.topk_min && !t.topk)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.topk_min: needs topk");
	if (t.topk && !t.topk_min)
		t.topk_min = t.topk;
	if (t.topk_min > t.topk)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance.topk_min: %d is more than topk %d",
				       t.topk_min, t.topk);
	if (!t.exact && !t.argmax && !t.topk && t.max_abs < 0 && t.max_rel < 0 &&
	    t.nmse < 0 && t.max_ulp < 0 && t.min_cosine < -1)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance: every limit is off (exact/argmax false); "
				       "name at least one");
	*out = t;
	return 0;
}

json_t *cmp_tolerance_to_json(const cmp_tolerance *t)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (t->exact)
		json_object_set_new(o, "exact", json_true());
	if (t->max_abs >= 0)
		json_object_set_new(o, "max_abs", json_real(t->max_abs));
	if (t->max_rel >= 0)
		json_object_set_new(o, "max_rel", json_real(t->max_rel));
	if (t->nmse >= 0)
		json_object_set_new(o, "nmse", json_real(t->nmse));
	if (t->max_ulp >= 0)
		json_object_set_new(o, "max_ulp", json_real(t->max_ulp));
	if (t->min_cosine >= -1)
		json_object_set_new(o, "min_cosine", json_real(t->min_cosine));
	if (t->argmax)
		json_object_set_new(o, "argmax", json_true());
	if (t->topk) {
		json_object_set_new(o, "topk", json_integer(t->topk));
		json_object_set_new(o, "topk_min", json_integer(t->topk_min));
	}
	return o;
}

/* ---- the element pass --------------------------------------------------- */

static uint32_t float_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Position on the ordered line of floats: adjacent floats differ by 1 and
 * +0 and -0 coincide, so the ULP distance is a plain difference. */
static int64_t float_key(uint32_t u)
{
	int64_t mag = u & 0x7fffffffu;

	return (u & 0x80000000u) ? -mag : mag;
}

/* The NaN/Inf rule for one pair where at least one side is not finite. */
static int nonfinite_ok(float a, float b)
{
	if (isnan(b))
		return isnan(a);
	if (isinf(b))
		return a == b;
	return 0; /* b finite, a not */
}

static double rel_err(double ad, float b)
{
	if (b != 0.0f)
		return ad / fabs((double)b);
	return ad == 0.0 ? 0.0 : INFINITY;
}

static void acc_pass(const float *a, const float *b, int64_t n, struct cmp_acc *s)
{
	int64_t i;

	memset(s, 0, sizeof(*s));
	s->first_nonfinite = s->first_mismatch = s->worst = -1;
	for (i = 0; i < n; i++) {
		uint32_t ua = float_bits(a[i]), ub = float_bits(b[i]);
		double d, ad, rel, ulp;

		if (ua != ub) {
			s->mismatches++;
			if (s->first_mismatch < 0)
				s->first_mismatch = i;
		}
		if (!isfinite(a[i]) || !isfinite(b[i])) {
			if (!nonfinite_ok(a[i], b[i])) {
				s->nonfinite++;
				if (s->first_nonfinite < 0)
					s->first_nonfinite = i;
			}
			continue;
		}
		s->n_finite++;
		d = (double)a[i] - (double)b[i];
		ad = fabs(d);
		if (ad > s->max_abs) {
			s->max_abs = ad;
			s->worst = i;
		}
		rel = rel_err(ad, b[i]);
		if (rel > s->max_rel)
			s->max_rel = rel;
		ulp = (double)llabs(float_key(ua) - float_key(ub));
		if (ulp > s->max_ulp)
			s->max_ulp = ulp;
		s->sum_d2 += d * d;
		s->sum_b2 += (double)b[i] * b[i];
		s->sum_a2 += (double)a[i] * a[i];
		s->dot += (double)a[i] * b[i];
	}
}

static double nmse_of(const struct cmp_acc *s)
{
	if (s->sum_b2 > 0)
		return s->sum_d2 / s->sum_b2;
	return s->sum_d2 == 0 ? 0.0 : INFINITY;
}

static double cosine_of(const struct cmp_acc *s)
{
	double c;

	if (s->sum_a2 == 0 && s->sum_b2 == 0)
		return 1.0;
	if (s->sum_a2 == 0 || s->sum_b2 == 0)
		return 0.0;
	/* sqrt of the product: exactly sum_a2 when a == b, so identical data gives 1. */
	c = s->dot / sqrt(s->sum_a2 * s->sum_b2);
	/* Rounding can step just past +-1 for parallel vectors. */
	return c > 1 ? 1 : c < -1 ? -1 : c;
}

/* ---- histogram ---------------------------------------------------------- */

static void hist_edges(double max_abs, double edges[HIST_BINS + 1])
{
	int top = max_abs > 0 ? (int)ceil(log10(max_abs)) : 0;
	int k;

	/* ceil(log10) can land one decade low through rounding. */
	if (max_abs > pow(10.0, top))
		top++;
	edges[0] = 0;
	for (k = 1; k <= HIST_BINS; k++)
		edges[k] = pow(10.0, top + k - HIST_BINS);
}

static void hist_fill(const float *a, const float *b, int64_t n,
		      const double edges[HIST_BINS + 1], int64_t counts[HIST_BINS])
{
	int64_t i;

	memset(counts, 0, HIST_BINS * sizeof(counts[0]));
	for (i = 0; i < n; i++) {
		double e;
		int k = HIST_BINS - 1;

		if (!isfinite(a[i]) || !isfinite(b[i]))
			continue;
		e = fabs((double)a[i] - (double)b[i]);
		while (k > 0 && e < edges[k])
			k--;
		counts[k]++;
	}
}

/* ---- rows: argmax and top-k -------------------------------------------- */

static int64_t row_argmax(const float *x, int64_t len)
{
	int64_t j, best = 0;
	float bv = -INFINITY;

	for (j = 0; j < len; j++) {
		if (x[j] > bv) {
			bv = x[j];
			best = j;
		}
	}
	return best;
}

/* The k largest of x (NaN skipped), sorted descending, equal values in index
 * order: a small insertion buffer, since k is tiny next to a 150k vocabulary. */
static int row_topk(const float *x, int64_t len, int k, int64_t *idx, float *val)
{
	int64_t j;
	int m = 0, p;

	for (j = 0; j < len; j++) {
		float v = x[j];

		if (isnan(v) || (m == k && !(v > val[m - 1])))
			continue;
		p = m < k ? m++ : k - 1;
		while (p > 0 && v > val[p - 1]) {
			val[p] = val[p - 1];
			idx[p] = idx[p - 1];
			p--;
		}
		val[p] = v;
		idx[p] = j;
	}
	return m;
}

static int topk_overlap(const float *a, const float *b, int64_t len, int k)
{
	int64_t ia[CMP_TOPK_MAX], ib[CMP_TOPK_MAX];
	float va[CMP_TOPK_MAX], vb[CMP_TOPK_MAX];
	int ma, mb, i, j, common = 0;

	ma = row_topk(a, len, k, ia, va);
	mb = row_topk(b, len, k, ib, vb);
	for (i = 0; i < ma; i++) {
		for (j = 0; j < mb; j++) {
			if (ia[i] == ib[j]) {
				common++;
				break;
			}
		}
	}
	return common;
}

static void rows_pass(const float *a, const float *b, int64_t n, int64_t len,
		      int k, struct cmp_rows *r)
{
	int64_t row;

	memset(r, 0, sizeof(*r));
	r->first_row = r->first_a = r->first_b = r->overlap_row = -1;
	r->rows = n / len;
	r->k = k > len ? (int)len : k;
	r->overlap_min = r->k;
	for (row = 0; row < r->rows; row++) {
		const float *ra = a + row * len, *rb = b + row * len;
		int64_t xa = row_argmax(ra, len), xb = row_argmax(rb, len);

		if (xa == xb) {
			r->agree++;
		} else if (r->first_row < 0) {
			r->first_row = row;
			r->first_a = xa;
			r->first_b = xb;
		}
		if (r->k) {
			int ov = topk_overlap(ra, rb, len, r->k);

			if (ov < r->overlap_min || r->overlap_row < 0) {
				r->overlap_min = ov;
				r->overlap_row = row;
			}
		}
	}
}

/* ---- details ------------------------------------------------------------ */

static json_t *multi_index(int64_t i, const int64_t *shape, int n_dims)
{
	json_t *arr = json_array();
	int d;

	for (d = 0; d < n_dims; d++) {
		json_array_append_new(arr, json_integer(i % shape[d]));
		i /= shape[d];
	}
	return arr;
}

static json_t *worst_json(const float *a, const float *b, int64_t i,
			  const int64_t *shape, int n_dims)
{
	double ad, ulp = NAN;

	if (i < 0)
		return json_null();
	ad = fabs((double)a[i] - (double)b[i]);
	if (isfinite(a[i]) && isfinite(b[i]))
		ulp = (double)llabs(float_key(float_bits(a[i])) - float_key(float_bits(b[i])));
	return json_pack("{sI so so so so so so}",
			 "index", (json_int_t)i,
			 "multi_index", multi_index(i, shape, n_dims),
			 "actual", cmp_json_number(a[i]),
			 "expected", cmp_json_number(b[i]),
			 "abs_err", cmp_json_number(ad),
			 "rel_err", cmp_json_number(rel_err(ad, b[i])),
			 "ulp", json_count(ulp));
}

static json_t *hist_json(const double edges[HIST_BINS + 1],
			 const int64_t counts[HIST_BINS], int64_t nonfinite)
{
	json_t *je = json_array(), *jc = json_array();
	int k;

	for (k = 0; k <= HIST_BINS; k++)
		json_array_append_new(je, json_real(edges[k]));
	for (k = 0; k < HIST_BINS; k++)
		json_array_append_new(jc, json_integer(counts[k]));
	return json_pack("{so so sI}", "edges", je, "counts", jc,
			 "nonfinite", (json_int_t)nonfinite);
}

static json_t *metrics_json(int64_t n, const struct cmp_acc *s, const struct cmp_rows *r)
{
	json_t *m = json_object();

	json_object_set_new(m, "n", json_integer(n));
	json_object_set_new(m, "mismatches", json_integer(s->mismatches));
	json_object_set_new(m, "nonfinite", json_integer(s->nonfinite));
	json_object_set_new(m, "max_abs", cmp_json_number(s->max_abs));
	json_object_set_new(m, "max_rel", cmp_json_number(s->max_rel));
	json_object_set_new(m, "nmse", cmp_json_number(nmse_of(s)));
	json_object_set_new(m, "max_ulp", json_count(s->max_ulp));
	json_object_set_new(m, "cosine", cmp_json_number(cosine_of(s)));
	if (!r)
		return m;
	json_object_set_new(m, "argmax_rows", json_integer(r->rows));
	json_object_set_new(m, "argmax_agree", json_integer(r->agree));
	if (r->first_row >= 0)
		json_object_set_new(m, "argmax_first_mismatch",
				    json_pack("{sI sI sI}", "row", (json_int_t)r->first_row,
					      "actual", (json_int_t)r->first_a,
					      "expected", (json_int_t)r->first_b));
	if (r->k) {
		json_object_set_new(m, "topk", json_integer(r->k));
		json_object_set_new(m, "topk_overlap_min", json_integer(r->overlap_min));
		json_object_set_new(m, "topk_overlap_row", json_integer(r->overlap_row));
	}
	return m;
}

/* Appends the name of every limit the metrics break. */
static void judge(const cmp_tolerance *t, const struct cmp_acc *s,
		  const struct cmp_rows *r, json_t *failed)
{
	if (s->nonfinite)
		json_array_append_new(failed, json_string("nonfinite"));
	if (t->exact && s->mismatches)
		json_array_append_new(failed, json_string("exact"));
	if (t->max_abs >= 0 && !(s->max_abs <= t->max_abs))
		json_array_append_new(failed, json_string("max_abs"));
	if (t->max_rel >= 0 && !(s->max_rel <= t->max_rel))
		json_array_append_new(failed, json_string("max_rel"));
	if (t->nmse >= 0 && !(nmse_of(s) <= t->nmse))
		json_array_append_new(failed, json_string("nmse"));
	if (t->max_ulp >= 0 && !(s->max_ulp <= t->max_ulp))
		json_array_append_new(failed, json_string("max_ulp"));
	if (t->min_cosine >= -1 && !(cosine_of(s) >= t->min_cosine))
		json_array_append_new(failed, json_string("cosine"));
	if (t->argmax && r->agree != r->rows)
		json_array_append_new(failed, json_string("argmax"));
	if (t->topk && r->overlap_min < (t->topk_min < r->k ? t->topk_min : r->k))
		json_array_append_new(failed, json_string("topk"));
}

/* The inputs themselves are unusable: report why, compare nothing. */
static int fail_input(json_t **details, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_input(json_t **details, const char *what, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!details)
		return 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*details = json_pack("{s[s] ss}", "failed", what, "error", msg);
	return 0;
}

static int64_t shape_elems(const int64_t *shape, int n_dims)
{
	int64_t p = 1;
	int d;

	for (d = 0; d < n_dims; d++) {
		if (shape[d] <= 0 || p > INT64_MAX / shape[d])
			return -1;
		p *= shape[d];
	}
	return p;
}

int cmp_compare(const float *actual, const float *expected, int64_t n,
		const int64_t *shape, int n_dims, const cmp_tolerance *tol, json_t **details)
{
	struct cmp_acc s;
	struct cmp_rows r;
	double edges[HIST_BINS + 1];
	int64_t counts[HIST_BINS], flat_shape[1] = { n }, worst;
	json_t *failed;
	int ok;

	if (details)
		*details = NULL;
	if (!tol)
		return fail_input(details, "tolerance", "no tolerance given");
	if (n <= 0 || !actual || !expected)
		return fail_input(details, "empty", "nothing to compare (n=%lld)", (long long)n);
	if (!shape || n_dims <= 0) {
		shape = flat_shape;
		n_dims = 1;
	}
	if (shape_elems(shape, n_dims) != n)
		return fail_input(details, "shape",
				  "shape has %lld elements, data has %lld",
				  (long long)shape_elems(shape, n_dims), (long long)n);

	acc_pass(actual, expected, n, &s);
	rows_pass(actual, expected, n, shape[0], tol->topk, &r);
	failed = json_array();
	judge(tol, &s, &r, failed);
	ok = json_array_size(failed) == 0;
	if (!details) {
		json_decref(failed);
		return ok;
	}
	worst = s.first_nonfinite >= 0 ? s.first_nonfinite :
		s.worst >= 0 ? s.worst : s.first_mismatch;
	hist_edges(s.max_abs, edges);
	hist_fill(actual, expected, n, edges, counts);
	*details = json_pack("{so so so so so}",
			     "metrics", metrics_json(n, &s, &r),
			     "tolerance", cmp_tolerance_to_json(tol),
			     "worst", worst_json(actual, expected, worst, shape, n_dims),
			     "histogram", hist_json(edges, counts, n - s.n_finite),
			     "failed", failed);
	return ok;
}

/* ---- one-line summary --------------------------------------------------- */

static void fmt_value(const json_t *v, char *buf, size_t n)
{
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_number(v))
		snprintf(buf, n, "%.3g", json_number_value(v));
	else if (json_is_string(v))
		snprintf(buf, n, "%s", json_string_value(v));
	else
		snprintf(buf, n, "?");
}

/* "name value op limit" for one metric; op is the failing or passing relation. */
static int fmt_metric(const json_t *d, const char *name, int failed, char *buf, size_t n)
{
	const json_t *m = json_object_get(d, "metrics");
	const json_t *t = json_object_get(d, "tolerance");
	char v[48], l[48];

	if (!strcmp(name, "nonfinite"))
		return snprintf(buf, n, "nonfinite: %lld NaN/Inf where the reference differs",
				(long long)json_integer_value(json_object_get(m, "nonfinite")));
	if (!strcmp(name, "exact"))
		return snprintf(buf, n, "exact: %lld of %lld differ bitwise",
				(long long)json_integer_value(json_object_get(m, "mismatches")),
				(long long)json_integer_value(json_object_get(m, "n")));
	if (!strcmp(name, "argmax"))
		return snprintf(buf, n, "argmax: %lld of %lld rows agree",
				(long long)json_integer_value(json_object_get(m, "argmax_agree")),
				(long long)json_integer_value(json_object_get(m, "argmax_rows")));
	if (!strcmp(name, "topk")) {
		return snprintf(buf, n, "top-%lld overlap %lld %s %lld",
				(long long)json_integer_value(json_object_get(m, "topk")),
				(long long)json_integer_value(json_object_get(m, "topk_overlap_min")),
				failed ? "<" : ">=",
				(long long)json_integer_value(json_object_get(t, "topk_min")));
	}
	if (!strcmp(name, "cosine") || !strcmp(name, "min_cosine")) {
		fmt_value(json_object_get(m, "cosine"), v, sizeof(v));
		fmt_value(json_object_get(t, "min_cosine"), l, sizeof(l));
		return snprintf(buf, n, "cosine %s %s %s", v, failed ? "<" : ">=", l);
	}
	fmt_value(json_object_get(m, name), v, sizeof(v));
	fmt_value(json_object_get(t, name), l, sizeof(l));
	return snprintf(buf, n, "%s %s %s %s", name, v, failed ? ">" : "<=", l);
}

static size_t append(char *buf, size_t n, size_t at, const char *s)
{
	int w;

	if (at >= n)
		return at;
	w = snprintf(buf + at, n - at, "%s", s);
	return w < 0 ? at : at + (size_t)w;
}

static void fmt_worst(const json_t *w, char *buf, size_t n)
{
	const json_t *mi = json_object_get(w, "multi_index");
	char a[48], e[48];
	size_t at = 0, i;

	at = append(buf, n, at, " (worst [");
	for (i = 0; i < json_array_size(mi); i++) {
		char num[24];

		snprintf(num, sizeof(num), "%s%lld", i ? "," : "",
			 (long long)json_integer_value(json_array_get(mi, i)));
		at = append(buf, n, at, num);
	}
	fmt_value(json_object_get(w, "actual"), a, sizeof(a));
	fmt_value(json_object_get(w, "expected"), e, sizeof(e));
	at = append(buf, n, at, "]: ");
	at = append(buf, n, at, a);
	at = append(buf, n, at, " vs ");
	at = append(buf, n, at, e);
	append(buf, n, at, ")");
}

void cmp_summary(const json_t *details, char *buf, size_t n)
{
	const json_t *failed = json_object_get(details, "failed");
	const json_t *tol = json_object_get(details, "tolerance");
	const json_t *worst = json_object_get(details, "worst");
	const char *err = json_string_value(json_object_get(details, "error"));
	char part[160], w[160];
	const char *key;
	json_t *v;
	size_t at = 0, i;

	if (!n)
		return;
	buf[0] = '\0';
	if (err) {
		snprintf(buf, n, "%s", err);
		return;
	}
	if (json_array_size(failed) == 0) {
		at = append(buf, n, at, "ok:");
		json_object_foreach((json_t *)tol, key, v) {
			if (!strcmp(key, "topk_min"))
				continue;
			fmt_metric(details, key, 0, part, sizeof(part));
			at = append(buf, n, at, " ");
			at = append(buf, n, at, part);
		}
		return;
	}
	for (i = 0; i < json_array_size(failed); i++) {
		fmt_metric(details, json_string_value(json_array_get(failed, i)), 1,
			   part, sizeof(part));
		at = append(buf, n, at, i ? "; " : "");
		at = append(buf, n, at, part);
	}
	if (json_is_object(worst)) {
		fmt_worst(worst, w, sizeof(w));
		append(buf, n, at, w);
	}
}
