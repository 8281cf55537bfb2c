/* kernel: one op of a backend's infer_ops (backend.h) on golden inputs
 * against a reference output (../shared/conformance/kernels).
 *
 * params: golden (the .gguf), reference (tensor to compare with, default
 * "out": the exact double-precision result rounded once to F32), op
 * (optional: must equal the golden's golden.op). The tolerance is required:
 * each spec states it and why.
 *
 * Ops: rms_norm_mul, rope_neox, softmax, swiglu, mul_mat (every N of
 * golden.n_cols), attention_gqa. Unknown op or unsupported parameters
 * (e.g. YaRN rope) are errors, never a pass.
 *
 * params: random (instead of golden): seeded inputs and a double-precision
 * reference computed in the check (kernel_random.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks/kernel_random.h"
#include "compare.h"
#include "harness.h"
#include "infer/backend.h"
#include "infer/gguf.h"
#include "infer/quant.h"

struct kctx {
	const struct check *c;
	const char *backend;
	const infer_ops *ops;
	gguf_file *f;
	cmp_tolerance tol;
	struct check_result *r;
	infer_error e;
};

/* Any numeric scalar KV as a double. */
static int kv_num(struct kctx *k, const char *key, double *out)
{
	const gguf_kv *kv = gguf_find_kv(k->f, key);

	if (!kv) {
		check_result_set(k->r, CHECK_ERROR, "golden %s has no KV %s", gguf_path(k->f), key);
		return -1;
	}
	switch (kv->type) {
	case GGUF_VT_UINT8: *out = kv->v.u8; return 0;
	case GGUF_VT_INT8: *out = kv->v.i8; return 0;
	case GGUF_VT_UINT16: *out = kv->v.u16; return 0;
	case GGUF_VT_INT16: *out = kv->v.i16; return 0;
	case GGUF_VT_UINT32: *out = kv->v.u32; return 0;
	case GGUF_VT_INT32: *out = kv->v.i32; return 0;
	case GGUF_VT_UINT64: *out = (double)kv->v.u64; return 0;
	case GGUF_VT_INT64: *out = (double)kv->v.i64; return 0;
	case GGUF_VT_FLOAT32: *out = kv->v.f32; return 0;
	case GGUF_VT_FLOAT64: *out = kv->v.f64; return 0;
	default:
		check_result_set(k->r, CHECK_ERROR, "golden %s: KV %s is not a number", gguf_path(k->f), key);
		return -1;
	}
}

static int64_t kv_int(struct kctx *k, const char *key, int *bad)
{
	double v = 0;

	if (kv_num(k, key, &v) || v != floor(v))
		*bad = 1;
	return (int64_t)v;
}

/* Integer array KV (golden.n_cols, golden.query_pos) as int32. */
static int32_t *kv_i32_array(struct kctx *k, const char *key, int64_t *n)
{
	const gguf_kv *kv = gguf_find_kv(k->f, key);
	const unsigned char *p;
	int32_t *out;
	uint64_t i;
	size_t es;

	if (!kv || kv->type != GGUF_VT_ARRAY ||
	    (kv->v.arr.type != GGUF_VT_INT32 && kv->v.arr.type != GGUF_VT_UINT32)) {
		check_result_set(k->r, CHECK_ERROR, "golden %s: KV %s must be an i32/u32 array", gguf_path(k->f), key);
		return NULL;
	}
	es = gguf_vtype_size(kv->v.arr.type);
	out = malloc((kv->v.arr.n ? kv->v.arr.n : 1) * sizeof(*out));
	if (!out)
		return NULL;
	for (i = 0, p = kv->v.arr.data; i < kv->v.arr.n; i++)
		memcpy(&out[i], p + i * es, sizeof(int32_t));
	*n = (int64_t)kv->v.arr.n;
	return out;
}

/* An aligned copy of an F32 (or I32) tensor; n_expect < 0: any size. */
static void *tensor_copy(struct kctx *k, const char *name, uint32_t type, int64_t n_expect,
			 const gguf_tensor **tout)
{
	const gguf_tensor *t = gguf_find_tensor(k->f, name);
	void *p;

	if (!t || !t->data) {
		check_result_set(k->r, CHECK_ERROR, "golden %s has no tensor '%s'", gguf_path(k->f), name);
		return NULL;
	}
	if (t->type != type) {
		check_result_set(k->r, CHECK_ERROR, "golden %s: tensor '%s' has type %s, want %s", gguf_path(k->f),
				 name, infer_type_name(t->type), infer_type_name(type));
		return NULL;
	}
	/* Nothing compared would be a pass that proves nothing. */
	if (t->n_elements <= 0 || t->ne[0] <= 0) {
		check_result_set(k->r, CHECK_ERROR, "golden %s: tensor '%s' is empty", gguf_path(k->f), name);
		return NULL;
	}
	if (n_expect >= 0 && t->n_elements < n_expect) {
		check_result_set(k->r, CHECK_ERROR, "golden %s: tensor '%s' has %lld elements, need %lld",
				 gguf_path(k->f), name, (long long)t->n_elements, (long long)n_expect);
		return NULL;
	}
	p = malloc(t->nbytes ? t->nbytes : 1);
	if (!p) {
		check_result_set(k->r, CHECK_ERROR, "out of memory for tensor '%s'", name);
		return NULL;
	}
	memcpy(p, t->data, t->nbytes);
	if (tout)
		*tout = t;
	return p;
}

static float *nan_buffer(int64_t n)
{
	float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
	int64_t i;

	/* An element the backend never writes stays NaN and cannot pass. */
	for (i = 0; y && i < n; i++)
		y[i] = NAN;
	return y;
}

/* Compares y with the first n values of the reference tensor ref_name;
 * returns 1 pass, 0 fail, -1 error (r already set). */
static int compare_ref(struct kctx *k, const float *y, const char *ref_name, int64_t n, const int64_t *shape,
		       int n_dims, json_t **details)
{
	float *ref = tensor_copy(k, ref_name, INFER_TYPE_F32, n, NULL);
	int ok;

	if (!ref)
		return -1;
	ok = cmp_compare(y, ref, n, shape, n_dims, &k->tol, details);
	free(ref);
	return ok;
}

static int op_failed(struct kctx *k, const char *op)
{
	check_result_set(k->r, CHECK_ERROR, "%s %s failed: %s", k->backend, op, k->e.msg);
	return -1;
}

static int finish(struct kctx *k, int ok, json_t *details, const char *prefix)
{
	char line[600];

	if (ok < 0)
		return -1;
	k->r->details = details ? details : json_object();
	cmp_summary(k->r->details, line, sizeof(line));
	check_result_set(k->r, ok ? CHECK_PASS : CHECK_FAIL, "%s%s", prefix, line);
	return 0;
}

static int op_rms_norm(struct kctx *k, const char *ref)
{
	const gguf_tensor *tx;
	float *x = tensor_copy(k, "in.x", INFER_TYPE_F32, -1, &tx), *w = NULL, *y = NULL;
	json_t *details = NULL;
	double eps;
	int64_t d, rows;
	int ok = -1;

	if (!x || kv_num(k, "golden.eps", &eps))
		goto out;
	d = tx->ne[0];
	rows = tx->n_elements / d;
	w = tensor_copy(k, "in.w", INFER_TYPE_F32, d, NULL);
	y = nan_buffer(tx->n_elements);
	if (!w || !y)
		goto out;
	if (k->ops->rms_norm_mul(x, w, y, d, rows, (float)eps, &k->e)) {
		op_failed(k, "rms_norm_mul");
		goto out;
	}
	ok = compare_ref(k, y, ref, tx->n_elements, tx->ne, (int)tx->n_dims, &details);
	ok = finish(k, ok, details, "");
out:
	free(x);
	free(w);
	free(y);
	return ok;
}

static int op_rope(struct kctx *k, const char *ref)
{
	const gguf_tensor *tx;
	float *x = tensor_copy(k, "in.x", INFER_TYPE_F32, -1, &tx);
	int32_t *pos = NULL;
	json_t *details = NULL;
	double fb, fs = 1, ext = 0, af = 1;
	int bad = 0, ok = -1;
	int64_t hd, nh, nt, nrot, mode;

	if (!x)
		goto out;
	hd = kv_int(k, "golden.head_dim", &bad);
	nh = kv_int(k, "golden.n_head", &bad);
	nrot = kv_int(k, "golden.n_dims", &bad);
	mode = kv_int(k, "golden.mode", &bad);
	if (bad || kv_num(k, "golden.freq_base", &fb))
		goto out;
	/* Scaling extensions (YaRN, linear) are not in the ops contract: refuse them. */
	if ((gguf_find_kv(k->f, "golden.freq_scale") && kv_num(k, "golden.freq_scale", &fs)) ||
	    (gguf_find_kv(k->f, "golden.ext_factor") && kv_num(k, "golden.ext_factor", &ext)) ||
	    (gguf_find_kv(k->f, "golden.attn_factor") && kv_num(k, "golden.attn_factor", &af)))
		goto out;
	if (fs != 1 || ext != 0 || af != 1 || mode != 2) {
		check_result_set(k->r, CHECK_ERROR,
				 "rope variant not supported by the ops table (mode %lld, freq_scale %g, ext_factor %g, attn_factor %g)",
				 (long long)mode, fs, ext, af);
		goto out;
	}
	if (hd <= 0 || nh <= 0 || tx->n_elements % (hd * nh)) {
		check_result_set(k->r, CHECK_ERROR, "in.x shape does not match head_dim %lld x n_head %lld",
				 (long long)hd, (long long)nh);
		goto out;
	}
	nt = tx->n_elements / (hd * nh);
	pos = tensor_copy(k, "in.pos", INFER_TYPE_I32, nt, NULL);
	if (!pos)
		goto out;
	if (k->ops->rope(x, pos, hd, nh, nt, nrot, (float)fb, 1, &k->e)) {
		op_failed(k, "rope");
		goto out;
	}
	ok = compare_ref(k, x, ref, tx->n_elements, tx->ne, (int)tx->n_dims, &details);
	ok = finish(k, ok, details, "");
out:
	free(x);
	free(pos);
	return ok;
}

static int op_softmax(struct kctx *k, const char *ref)
{
	const gguf_tensor *tx;
	float *x = tensor_copy(k, "in.x", INFER_TYPE_F32, -1, &tx), *y = NULL;
	int32_t *qp = NULL;
	json_t *details = NULL;
	double scale, max_bias = 0;
	int64_t n, rows, nq = 0;
	int ok = -1;

	if (!x || kv_num(k, "golden.scale", &scale))
		goto out;
	if (gguf_find_kv(k->f, "golden.max_bias") && (kv_num(k, "golden.max_bias", &max_bias) || max_bias != 0)) {
		check_result_set(k->r, CHECK_ERROR, "softmax with ALiBi (max_bias %g) is not in the ops table", max_bias);
		goto out;
	}
	n = tx->ne[0];
	rows = tx->n_elements / n;
	qp = kv_i32_array(k, "golden.query_pos", &nq);
	if (!qp)
		goto out;
	if (nq != rows) {
		check_result_set(k->r, CHECK_ERROR, "golden.query_pos has %lld entries for %lld rows",
				 (long long)nq, (long long)rows);
		goto out;
	}
	y = nan_buffer(tx->n_elements);
	if (!y)
		goto out;
	if (k->ops->softmax(x, y, n, rows, (float)scale, qp, &k->e)) {
		op_failed(k, "softmax");
		goto out;
	}
	ok = compare_ref(k, y, ref, tx->n_elements, tx->ne, (int)tx->n_dims, &details);
	ok = finish(k, ok, details, "");
out:
	free(x);
	free(y);
	free(qp);
	return ok;
}

static int op_swiglu(struct kctx *k, const char *ref)
{
	const gguf_tensor *tg;
	float *g = tensor_copy(k, "in.gate", INFER_TYPE_F32, -1, &tg), *u = NULL, *y = NULL;
	json_t *details = NULL;
	int ok = -1;

	if (!g)
		goto out;
	u = tensor_copy(k, "in.up", INFER_TYPE_F32, tg->n_elements, NULL);
	y = nan_buffer(tg->n_elements);
	if (!u || !y)
		goto out;
	if (k->ops->swiglu(g, u, y, tg->n_elements, &k->e)) {
		op_failed(k, "swiglu");
		goto out;
	}
	ok = compare_ref(k, y, ref, tg->n_elements, tg->ne, (int)tg->n_dims, &details);
	ok = finish(k, ok, details, "");
out:
	free(g);
	free(u);
	free(y);
	return ok;
}

/* One N of a mul_mat golden; returns 1/0/-1 and the comparison details. */
static int mul_mat_n(struct kctx *k, const gguf_tensor *tw, const float *x, int64_t n_cols, const char *ref,
		     json_t **details)
{
	int64_t K = tw->ne[0], M = tw->ne[1], shape[2] = { M, n_cols };
	char name[96];
	float *y = nan_buffer(M * n_cols);
	int ok;

	if (!y)
		return -1;
	if (k->ops->mul_mat(tw->data, tw->type, K, M, x, n_cols, y, &k->e)) {
		free(y);
		check_result_set(k->r, CHECK_ERROR, "%s mul_mat (%s weights, N=%lld) failed: %s", k->backend,
				 infer_type_name(tw->type), (long long)n_cols, k->e.msg);
		return -1;
	}
	/* ggml results are stored per N (out.ggml.n<N>); exact references once for all N. */
	snprintf(name, sizeof(name), "%s.n%lld", ref, (long long)n_cols);
	ok = compare_ref(k, y, gguf_find_tensor(k->f, name) ? name : ref, M * n_cols, shape, 2, details);
	free(y);
	return ok;
}

static int op_mul_mat(struct kctx *k, const char *ref)
{
	const gguf_tensor *tw = gguf_find_tensor(k->f, "in.w"), *tx;
	float *x = tensor_copy(k, "in.x", INFER_TYPE_F32, -1, &tx);
	json_t *cases = json_array(), *keep = NULL;
	int32_t *ncols = NULL;
	int64_t nn = 0, i;
	int ok = -1, all = 1;
	char prefix[64] = "";

	if (!x)
		goto out;
	if (!tw || !tw->data || tw->n_elements <= 0 || tx->ne[0] != tw->ne[0]) {
		check_result_set(k->r, CHECK_ERROR, "golden %s: in.w missing, empty, or its K differs from in.x", gguf_path(k->f));
		goto out;
	}
	ncols = kv_i32_array(k, "golden.n_cols", &nn);
	if (!ncols)
		goto out;
	for (i = 0; i < nn; i++) {
		json_t *d = NULL;
		char line[512];
		int r1;

		if (ncols[i] < 1 || ncols[i] > tx->n_elements / tx->ne[0]) {
			check_result_set(k->r, CHECK_ERROR, "golden.n_cols[%lld] = %d out of range", (long long)i, ncols[i]);
			json_decref(keep);
			keep = NULL;
			goto out;
		}
		r1 = mul_mat_n(k, tw, x, ncols[i], ref, &d);
		if (r1 < 0) {
			json_decref(d);
			json_decref(keep);
			keep = NULL;
			goto out;
		}
		cmp_summary(d, line, sizeof(line));
		json_array_append_new(cases, json_pack("{s:i, s:b, s:s, s:O?}", "n_cols", ncols[i], "pass", r1,
						       "summary", line, "metrics", json_object_get(d, "metrics")));
		/* The report shows the first failing N, else the largest. */
		if ((!r1 && all) || (all && i == nn - 1) || !keep) {
			json_decref(keep);
			keep = d;
			snprintf(prefix, sizeof(prefix), "%s N=%d: ", infer_type_name(tw->type), ncols[i]);
		} else {
			json_decref(d);
		}
		all &= r1;
	}
	if (!keep)
		keep = json_object();
	json_object_set(keep, "cases", cases);
	ok = finish(k, all, keep, prefix);
out:
	json_decref(cases);
	free(x);
	free(ncols);
	return ok;
}

static int op_attention(struct kctx *k, const char *ref)
{
	const gguf_tensor *tq;
	float *q = tensor_copy(k, "in.q", INFER_TYPE_F32, -1, &tq), *kk = NULL, *v = NULL, *y = NULL;
	json_t *details = NULL;
	int64_t hd, nh, nhk, nt, nkv, fq;
	double scale;
	int bad = 0, ok = -1;

	if (!q)
		goto out;
	hd = kv_int(k, "golden.head_dim", &bad);
	nh = kv_int(k, "golden.n_head", &bad);
	nhk = kv_int(k, "golden.n_head_kv", &bad);
	nt = kv_int(k, "golden.n_tokens", &bad);
	nkv = kv_int(k, "golden.n_kv", &bad);
	fq = kv_int(k, "golden.first_query_pos", &bad);
	if (bad || kv_num(k, "golden.scale", &scale))
		goto out;
	if (tq->n_elements != hd * nh * nt) {
		check_result_set(k->r, CHECK_ERROR, "in.q has %lld elements, params say %lld",
				 (long long)tq->n_elements, (long long)(hd * nh * nt));
		goto out;
	}
	kk = tensor_copy(k, "in.k", INFER_TYPE_F32, hd * nhk * nkv, NULL);
	v = tensor_copy(k, "in.v", INFER_TYPE_F32, hd * nhk * nkv, NULL);
	y = nan_buffer(tq->n_elements);
	if (!kk || !v || !y)
		goto out;
	if (k->ops->attention(q, kk, v, y, hd, nh, nhk, nt, nkv, fq, (float)scale, &k->e)) {
		op_failed(k, "attention");
		goto out;
	}
	ok = compare_ref(k, y, ref, tq->n_elements, tq->ne, (int)tq->n_dims, &details);
	ok = finish(k, ok, details, "");
out:
	free(q);
	free(kk);
	free(v);
	free(y);
	return ok;
}

static const struct {
	const char *name;
	int (*fn)(struct kctx *k, const char *ref);
} ops_table[] = {
	{ "rms_norm_mul", op_rms_norm }, { "rope_neox", op_rope },   { "softmax", op_softmax },
	{ "swiglu", op_swiglu },	 { "mul_mat", op_mul_mat },  { "attention_gqa", op_attention },
};

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	struct kctx k = { .c = c, .backend = backend, .r = r };
	const char *path = check_param_str(c, "golden", NULL);
	const char *ref = check_param_str(c, "reference", "out");
	const char *want_op = check_param_str(c, "op", NULL);
	const json_t *random = json_object_get(c->params, "random");
	gguf_str op = { 0 };
	char opname[64];
	size_t i;

	k.ops = infer_backend_ops(backend, &k.e);
	if (!k.ops) {
		check_result_set(r, CHECK_ERROR, "backend %s: %s", backend, k.e.msg);
		return;
	}
	if (cmp_tolerance_parse(c->tolerance, &k.tol, &k.e)) {
		check_result_set(r, CHECK_ERROR, "bad tolerance: %s", k.e.msg);
		return;
	}
	if (random) {
		kernel_random_run(random, k.ops, &k.tol, r);
		return;
	}
	k.f = gguf_open(path, &k.e);
	if (!k.f) {
		check_result_set(r, CHECK_ERROR, "cannot read golden %s: %s", path, k.e.msg);
		return;
	}
	if (gguf_get_str(k.f, "golden.op", &op, &k.e) || op.len >= sizeof(opname)) {
		check_result_set(r, CHECK_ERROR, "golden %s: no golden.op string", path);
		goto out;
	}
	memcpy(opname, op.data, op.len);
	opname[op.len] = 0;
	if (want_op && strcmp(want_op, opname)) {
		check_result_set(r, CHECK_ERROR, "golden %s is op '%s', spec says '%s'", path, opname, want_op);
		goto out;
	}
	for (i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
		if (!strcmp(ops_table[i].name, opname))
			break;
	if (i == sizeof(ops_table) / sizeof(ops_table[0])) {
		check_result_set(r, CHECK_ERROR, "op '%s' has no mapping to the ops table", opname);
		goto out;
	}
	ops_table[i].fn(&k, ref);
	if (r->details)
		json_object_set_new(r->details, "op", json_string(opname));
out:
	gguf_close(k.f);
}

static int validate(const json_t *params, const json_t *tol, infer_error *err)
{
	const char *k, *op;
	json_t *v;
	size_t i;

	const json_t *random = json_object_get(params, "random");

	json_object_foreach((json_t *)params, k, v) {
		if (random && strcmp(k, "random") && strcmp(k, "entry"))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: not allowed with random (it reads no golden)", k);
		if (!random && strcmp(k, "golden") && strcmp(k, "reference") && strcmp(k, "op") && strcmp(k, "entry"))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: unknown parameter (golden, reference, op, random)", k);
		if (!random && strcmp(k, "entry") && !json_is_string(v))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: must be a string", k);
	}
	if (!tol)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance: required for kernel checks (state it and why in the spec)");
	if (random)
		return kernel_random_validate(random, err);
	if (!json_object_get(params, "golden"))
		return infer_error_set(err, INFER_E_ARG, -1, "golden: input path required (or random)");
	op = json_string_value(json_object_get(params, "op"));
	if (!op)
		return 0;
	for (i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
		if (!strcmp(ops_table[i].name, op))
			return 0;
	return infer_error_set(err, INFER_E_ARG, -1,
			       "op: unknown op '%s' (rms_norm_mul, rope_neox, softmax, swiglu, mul_mat, attention_gqa)", op);
}

const struct check_kind check_kind_kernel = {
	.name = "kernel",
	.validate = validate,
	.run = run,
};
