/* The CPU ops table (backend.h) and backend dispatch: hand-computed cases,
 * the F16 fast path bit-exact against infer_fp16_to_fp32 for every finite
 * half, error paths, and with ../shared the per-kernel goldens
 * (conformance/kernels: exact double-precision references; mul_mat for every
 * weight type; the activation rounding bit-exact against ggml's in.xq). */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops_cpu.h"
#include "infer/backend.h"
#include "infer/gguf.h"
#include "infer/quant.h"
#include "util_fixture.h"

static const infer_ops *ops;

static int setup(void)
{
	infer_error err = { 0 };

	ops = infer_backend_ops("cpu", &err);
	return ops ? 0 : 1;
}

/* ---- hand-computed ------------------------------------------------------- */

static void test_backend_dispatch(void)
{
	infer_error err = { 0 };

	CU_ASSERT_STRING_EQUAL(ops->name, "cpu");
	CU_ASSERT_EQUAL(infer_backend_available("cpu", &err), 1);
	CU_ASSERT_STRING_EQUAL(infer_backend_device_name("cpu"), "cpu");
	CU_ASSERT_PTR_NULL(infer_backend_ops("tpu", &err));
	CU_ASSERT_EQUAL(err.code, INFER_E_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tpu"));
	/* cuda: either really there, or NULL with the reason (never the cpu table). */
	memset(&err, 0, sizeof(err));
	if (!infer_backend_available("cuda", &err)) {
		CU_ASSERT_EQUAL(err.code, INFER_E_NODEVICE);
		CU_ASSERT(err.msg[0] != '\0');
		CU_ASSERT_PTR_NULL(infer_backend_ops("cuda", &err));
	} else {
		CU_ASSERT_PTR_NOT_EQUAL(infer_backend_ops("cuda", &err), ops);
	}
}

static void test_rms_norm(void)
{
	const float x[4] = { 3, 4, 0, 0 }, w[2] = { 1, 2 };
	float y[4];
	infer_error err = { 0 };

	CU_ASSERT_EQUAL(ops->rms_norm_mul(x, w, y, 2, 2, 0.0f, &err), 0);
	/* rms = sqrt(12.5) */
	CU_ASSERT_DOUBLE_EQUAL(y[0], 3 / sqrt(12.5), 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(y[1], 8 / sqrt(12.5), 1e-6);
	/* All-zero row: eps keeps it finite; result 0. eps = 0 would be 0/0. */
	CU_ASSERT_EQUAL(ops->rms_norm_mul(x, w, y, 2, 2, 1e-6f, &err), 0);
	CU_ASSERT_EQUAL(y[2], 0.0f);
	CU_ASSERT_EQUAL(y[3], 0.0f);
}

static void test_rope(void)
{
	/* head_dim 4, one head, positions 0 and 1, base 1: theta_i = pos for all i. */
	float a[8] = { 1, 2, 3, 4, 1, 2, 3, 4 }, b[8];
	const int32_t pos[2] = { 0, 1 };
	infer_error err = { 0 };
	double c = cos(1.0), s = sin(1.0);

	memcpy(b, a, sizeof(a));
	CU_ASSERT_EQUAL(ops->rope(a, pos, 4, 1, 2, 4, 1.0f, 1, &err), 0);
	CU_ASSERT_EQUAL(ops->rope(b, pos, 4, 1, 2, 4, 1.0f, 0, &err), 0);
	/* position 0: unchanged */
	CU_ASSERT_EQUAL(a[0], 1.0f);
	CU_ASSERT_EQUAL(a[3], 4.0f);
	/* NEOX pairs (0,2), (1,3) */
	CU_ASSERT_DOUBLE_EQUAL(a[4], 1 * c - 3 * s, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(a[6], 1 * s + 3 * c, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(a[5], 2 * c - 4 * s, 1e-6);
	/* normal pairs (0,1), (2,3) */
	CU_ASSERT_DOUBLE_EQUAL(b[4], 1 * c - 2 * s, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(b[5], 1 * s + 2 * c, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(b[6], 3 * c - 4 * s, 1e-6);
	/* partial rotary: n_rot 2 leaves dims 2, 3 alone */
	float p[4] = { 1, 2, 3, 4 };
	CU_ASSERT_EQUAL(ops->rope(p, pos + 1, 4, 1, 1, 2, 1.0f, 1, &err), 0);
	CU_ASSERT_EQUAL(p[2], 3.0f);
	CU_ASSERT_EQUAL(p[3], 4.0f);
	CU_ASSERT_DOUBLE_EQUAL(p[0], 1 * c - 2 * s, 1e-6);
	CU_ASSERT_NOT_EQUAL(ops->rope(p, pos, 4, 1, 1, 3, 1.0f, 1, &err), 0); /* odd n_rot */
}

static void test_softmax(void)
{
	const float x[6] = { 1, 2, 3, 1, 2, 3 };
	const int32_t qp[2] = { 0, 1 }, none[1] = { -1 };
	float y[6];
	infer_error err = { 0 };

	CU_ASSERT_EQUAL(ops->softmax(x, y, 3, 2, 1.0f, qp, &err), 0);
	CU_ASSERT_EQUAL(y[0], 1.0f);
	CU_ASSERT_EQUAL(y[1], 0.0f);
	CU_ASSERT_EQUAL(y[2], 0.0f);
	CU_ASSERT_DOUBLE_EQUAL(y[3], 1 / (1 + exp(1.0)), 1e-7);
	CU_ASSERT_EQUAL(y[5], 0.0f);
	CU_ASSERT_EQUAL(ops->softmax(x, y, 3, 1, 2.0f, NULL, &err), 0);
	CU_ASSERT_DOUBLE_EQUAL(y[2], exp(6.0) / (exp(2.0) + exp(4.0) + exp(6.0)), 1e-7);
	CU_ASSERT_EQUAL(ops->softmax(x, y, 3, 1, 1.0f, none, &err), INFER_E_ARG);
}

static void test_swiglu(void)
{
	const float g[3] = { 0, 1, -30 }, u[3] = { 5, 2, 1 };
	float y[3];
	infer_error err = { 0 };

	CU_ASSERT_EQUAL(ops->swiglu(g, u, y, 3, &err), 0);
	CU_ASSERT_EQUAL(y[0], 0.0f);
	CU_ASSERT_DOUBLE_EQUAL(y[1], 2 / (1 + exp(-1.0)), 1e-6);
	CU_ASSERT(fabsf(y[2]) < 1e-11f);
}

/* One key: every query reads its value. GQA: heads 0,1 -> kv 0; 2,3 -> kv 1. */
static void test_attention(void)
{
	float q[4 * 2] = { 1, 0, 0, 1, 1, 1, -1, 0 }, k[2 * 2] = { 1, 0, 0, 1 };
	float v[2 * 2] = { 10, 20, 30, 40 }, out[4 * 2];
	float q2[2 * 1 * 2] = { 1, 0, 5, 0 }, k2[2 * 1 * 2] = { 1, 0, 1, 0 };
	float v2[2 * 1 * 2] = { 1, 2, 3, 4 }, o2[2 * 2];
	infer_error err = { 0 };

	CU_ASSERT_EQUAL(ops->attention(q, k, v, out, 2, 4, 2, 1, 1, 0, 1.0f, &err), 0);
	CU_ASSERT_EQUAL(out[0], 10.0f);
	CU_ASSERT_EQUAL(out[2], 10.0f);
	CU_ASSERT_EQUAL(out[4], 30.0f);
	CU_ASSERT_EQUAL(out[7], 40.0f);
	/* Causal: query 0 sees key 0 only; query 1 (score 5 on both keys) averages. */
	CU_ASSERT_EQUAL(ops->attention(q2, k2, v2, o2, 2, 1, 1, 2, 2, 0, 1.0f, &err), 0);
	CU_ASSERT_EQUAL(o2[0], 1.0f);
	CU_ASSERT_DOUBLE_EQUAL(o2[2], 2.0, 1e-6);
	CU_ASSERT_DOUBLE_EQUAL(o2[3], 3.0, 1e-6);
	CU_ASSERT_EQUAL(ops->attention(q2, k2, v2, o2, 2, 1, 1, 2, 1, 0, 1.0f, &err), INFER_E_ARG);
	CU_ASSERT_EQUAL(ops->attention(q, k, v, out, 2, 3, 2, 1, 1, 0, 1.0f, &err), INFER_E_ARG);
}

/* Every finite half through the mul_mat F16 path equals infer_fp16_to_fp32:
 * 1024 rows of 64 halves, multiplied by the 64 one-hot vectors. */
static void test_f16_path_bit_exact(void)
{
	enum { K = 64, M = 1024 };
	uint16_t *w = malloc(sizeof(uint16_t) * K * M);
	float *x = calloc((size_t)K * K, sizeof(float)), *y = malloc(sizeof(float) * K * M);
	infer_error err = { 0 };
	int bad = 0;

	for (int i = 0; i < K * M; i++) {
		uint16_t h = (uint16_t)i;

		w[i] = (h & 0x7c00) == 0x7c00 ? 0 : h; /* inf/NaN x 0 would be NaN */
	}
	for (int k = 0; k < K; k++)
		x[k * K + k] = 1.0f;
	CU_ASSERT_EQUAL_FATAL(ops->mul_mat(w, INFER_TYPE_F16, K, M, x, K, y, &err), 0);
	for (int m = 0; m < M; m++)
		for (int k = 0; k < K; k++) {
			float want = infer_fp16_to_fp32(w[m * K + k]), got = y[k * M + m];

			bad += memcmp(&want, &got, sizeof(float)) != 0 && !(want == 0 && got == 0);
		}
	CU_ASSERT_EQUAL(bad, 0);
	free(w), free(x), free(y);
}

static void test_mul_mat_errors(void)
{
	float w[64] = { 0 }, x[64] = { 0 }, y[4];
	infer_error err = { 0 };

	CU_ASSERT_EQUAL(ops->mul_mat(w, 4 /* removed id */, 32, 1, x, 1, y, &err), INFER_E_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "4"));
	CU_ASSERT_EQUAL(ops->mul_mat(w, INFER_TYPE_Q8_0, 33, 1, x, 1, y, &err), INFER_E_ARG);
	CU_ASSERT_EQUAL(ops->mul_mat(w, INFER_TYPE_F32, 0, 1, x, 1, y, &err), INFER_E_ARG);
	CU_ASSERT_EQUAL(ops->mul_mat(w, INFER_TYPE_F32, 2, 2, x, 1, y, &err), 0);
}

/* ---- conformance/kernels -------------------------------------------------- */

static double nmse(const float *a, const float *b, int64_t n)
{
	double num = 0, den = 0;

	for (int64_t i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return den > 0 ? num / den : num;
}

static const gguf_tensor *T(const gguf_file *f, const char *name)
{
	const gguf_tensor *t = gguf_find_tensor(f, name);

	CU_ASSERT_PTR_NOT_NULL(t);
	return t;
}

/* Every mul_mat golden: our product vs the exact one; and with activations
 * rounded as ggml does, bit-exact against ggml's own in.xq and close to
 * out.exact_qact. */
static void check_mul_mat(const gguf_file *f, const char *file, int *n_files)
{
	const gguf_tensor *w = T(f, "in.w"), *x = T(f, "in.x"), *out = T(f, "out");
	const gguf_tensor *xq = gguf_find_tensor(f, "in.xq"), *oq = gguf_find_tensor(f, "out.exact_qact");
	int64_t K = w->ne[0], M = w->ne[1], N = x->ne[1];
	float *y = malloc(sizeof(float) * M * N), *xr = malloc(sizeof(float) * K * N);
	float *xqf = malloc(sizeof(float) * K * N);
	infer_error err = { 0 };
	double e;

	CU_ASSERT_EQUAL_FATAL(ops->mul_mat(w->data, w->type, K, M, x->data, N, y, &err), 0);
	e = nmse(y, out->data, M * N);
	if (!(e < 1e-11))
		printf("\n  %s: nmse %.3g\n", file, e);
	CU_ASSERT(e < 1e-11);
	if (xq && oq) {
		CU_ASSERT_EQUAL(cpu_vec_dot_type(w->type), xq->type);
		CU_ASSERT_EQUAL_FATAL(cpu_round_activations(w->type, x->data, xr, K, N, &err), 0);
		CU_ASSERT_EQUAL_FATAL(infer_dequantize(xq->type, xq->data, xqf, K * N, "in.xq", &err), 0);
		if (memcmp(xr, xqf, sizeof(float) * K * N))
			printf("\n  %s: rounded activations differ from ggml's in.xq\n", file);
		CU_ASSERT_EQUAL(memcmp(xr, xqf, sizeof(float) * K * N), 0);
		CU_ASSERT_EQUAL(ops->mul_mat(w->data, w->type, K, M, xr, N, y, &err), 0);
		e = nmse(y, oq->data, M * N);
		if (!(e < 1e-11) && w->type != INFER_TYPE_Q4_1 && w->type != INFER_TYPE_Q5_1)
			printf("\n  %s: qact nmse %.3g\n", file, e);
		/* q4_1/q5_1: ggml's fp16-rounded block sum is not modelled (README). */
		if (w->type != INFER_TYPE_Q4_1 && w->type != INFER_TYPE_Q5_1)
			CU_ASSERT(e < 1e-11);
	}
	(*n_files)++;
	free(y), free(xr), free(xqf);
}

static void check_other(const gguf_file *f, const char *file)
{
	const gguf_tensor *out = T(f, "out");
	float *y = malloc(sizeof(float) * out->n_elements);
	infer_error err = { 0 };
	int64_t v;

	if (!strncmp(file, "rms_norm_mul.", 13)) {
		const gguf_tensor *x = T(f, "in.x");
		float eps;

		gguf_get_f32(f, "golden.eps", &eps, NULL);
		CU_ASSERT_EQUAL(ops->rms_norm_mul(x->data, T(f, "in.w")->data, y, x->ne[0], x->ne[1], eps, &err), 0);
	} else if (!strncmp(file, "rope_neox.", 10)) {
		const gguf_tensor *x = T(f, "in.x");

		memcpy(y, x->data, sizeof(float) * x->n_elements);
		CU_ASSERT_EQUAL(ops->rope(y, T(f, "in.pos")->data, x->ne[0], x->ne[1], x->ne[2], x->ne[0],
					  1e6f, 1, &err), 0);
	} else if (!strncmp(file, "softmax.", 8)) {
		const gguf_tensor *x = T(f, "in.x");
		const gguf_kv *qp = gguf_find_kv(f, "golden.query_pos");
		float scale;

		gguf_get_f32(f, "golden.scale", &scale, NULL);
		CU_ASSERT_EQUAL(ops->softmax(x->data, y, x->ne[0], x->n_elements / x->ne[0], scale,
					     qp ? qp->v.arr.data : NULL, &err), 0);
	} else if (!strncmp(file, "swiglu.", 7)) {
		CU_ASSERT_EQUAL(ops->swiglu(T(f, "in.gate")->data, T(f, "in.up")->data, y, out->n_elements, &err), 0);
	} else if (!strncmp(file, "attn_gqa.", 9)) {
		const gguf_tensor *q = T(f, "in.q"), *k = T(f, "in.k");
		float scale;

		gguf_get_f32(f, "golden.scale", &scale, NULL);
		gguf_get_int(f, "golden.first_query_pos", &v, NULL);
		CU_ASSERT_EQUAL(ops->attention(q->data, k->data, T(f, "in.v")->data, y, q->ne[0], q->ne[1],
					       k->ne[1], q->ne[2], k->ne[2], v, scale, &err), 0);
	} else {
		free(y);
		return;
	}
	{
		/* rope at positions up to 262143 loses float32 precision in the
		 * rotated values themselves (|theta| ~ 2.6e5): allow it. */
		double e = nmse(y, out->data, out->n_elements), lim = strstr(file, "poshuge") ? 1e-9 : 1e-12;

		if (!(e < lim))
			printf("\n  %s: nmse %.3g\n", file, e);
		CU_ASSERT(e < lim);
	}
	free(y);
}

static void test_conformance_kernels(void)
{
	char *dir = fx_shared("conformance/kernels");
	int n_mm = 0, n = 0;
	struct dirent *de;
	DIR *d;

	if (!dir) {
		printf("skipped: reference set not found ");
		return;
	}
	d = opendir(dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	while ((de = readdir(d))) {
		char path[1024];
		infer_error err = { 0 };
		gguf_file *f;

		if (!strstr(de->d_name, ".gguf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = gguf_open(path, &err);
		CU_ASSERT_PTR_NOT_NULL(f);
		if (!f)
			continue;
		if (!strncmp(de->d_name, "mul_mat.", 8))
			check_mul_mat(f, de->d_name, &n_mm);
		else
			check_other(f, de->d_name);
		n++;
		gguf_close(f);
	}
	closedir(d);
	free(dir);
	CU_ASSERT(n_mm >= 40); /* every weight type of the set */
	CU_ASSERT(n >= 60);
}

int main(void)
{
	CU_pSuite s;
	int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("ops_cpu", setup, NULL);
	CU_add_test(s, "backend dispatch", test_backend_dispatch);
	CU_add_test(s, "rms_norm_mul", test_rms_norm);
	CU_add_test(s, "rope NEOX, normal, partial", test_rope);
	CU_add_test(s, "softmax with causal mask", test_softmax);
	CU_add_test(s, "swiglu", test_swiglu);
	CU_add_test(s, "attention: GQA mapping, causal mask", test_attention);
	CU_add_test(s, "mul_mat F16 path bit-exact", test_f16_path_bit_exact);
	CU_add_test(s, "mul_mat errors", test_mul_mat_errors);
	CU_add_test(s, "conformance kernels (every weight type)", test_conformance_kernels);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = (int)CU_get_number_of_failures() + (int)CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
