/* The CPU forward pass.
 *
 * Without reference data: the tiny fixture model against a naive
 * double-precision forward written here from the formulas (no KV cache, the
 * whole sequence recomputed for every position, like the transformers
 * goldens), for qwen2 (NEOX RoPE, biases, tied output) and llama (normal
 * RoPE on a partial rotary dimension, no biases, untied output); batch vs
 * token-by-token decode and 1 vs 3 threads must agree bit for bit.
 *
 * With ../shared: the haiku model against the transformers fp32 golden, also
 * re-laid-out as a llama model, re-typed to F32 (bit-identical logits) and
 * to every quantized type the project can write. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/model.h"
#include "infer/quant.h"
#include "infer/session.h"
#include "util_fixture.h"

/* ---- naive double-precision reference ----------------------------------- */

static double *weight(const gguf_file *f, const char *name, int64_t *n)
{
	const gguf_tensor *t = gguf_find_tensor(f, name);
	float *tmp;
	double *d;

	if (!t)
		return NULL;
	tmp = malloc((size_t)t->n_elements * sizeof(float));
	d = malloc((size_t)t->n_elements * sizeof(double));
	infer_dequantize(t->type, t->data, tmp, t->n_elements, name, NULL);
	for (int64_t i = 0; i < t->n_elements; i++)
		d[i] = tmp[i];
	free(tmp);
	if (n)
		*n = t->n_elements;
	return d;
}

static void ref_norm(const double *x, const double *w, double *y, int n, double eps)
{
	double ss = 0;

	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + eps);
	for (int i = 0; i < n; i++)
		y[i] = x[i] * ss * w[i];
}

/* y[M] = W[M][K] x[K] (+ b) */
static void ref_matvec(const double *W, const double *b, const double *x, double *y, int K, int M)
{
	for (int m = 0; m < M; m++) {
		double s = b ? b[m] : 0;

		for (int k = 0; k < K; k++)
			s += W[(int64_t)m * K + k] * x[k];
		y[m] = s;
	}
}

static void ref_rope(double *v, int pos, int hd, int n_rot, double base, int neox)
{
	for (int i = 0; i < n_rot / 2; i++) {
		double th = pos * pow(base, -2.0 * i / n_rot), c = cos(th), s = sin(th);
		int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
		double x0 = v[a], x1 = v[b];

		v[a] = x0 * c - x1 * s;
		v[b] = x0 * s + x1 * c;
	}
	(void)hd;
}

/* Logits [T][V] of the whole sequence, recomputed from scratch. */
static void ref_forward(const infer_model *m, const int32_t *tok, int T, double *logits)
{
	const infer_hparams *hp = infer_model_hparams(m);
	const gguf_file *f = infer_model_gguf(m);
	int E = hp->n_embd, F = hp->n_ff, H = hp->n_head, HK = hp->n_head_kv, D = hp->head_dim;
	int V = hp->n_vocab;
	double *x = calloc((size_t)T * E, sizeof(double)), *h = malloc(sizeof(double) * E);
	double *q = malloc(sizeof(double) * T * H * D), *k = malloc(sizeof(double) * T * HK * D);
	double *v = malloc(sizeof(double) * T * HK * D), *a = malloc(sizeof(double) * H * D);
	double *o = malloc(sizeof(double) * E), *g = malloc(sizeof(double) * F);
	double *u = malloc(sizeof(double) * F), *sc = malloc(sizeof(double) * T);
	double *emb = weight(f, "token_embd.weight", NULL);
	double *out = weight(f, "output.weight", NULL);
	char n[64];

	for (int t = 0; t < T; t++)
		memcpy(x + t * E, emb + (int64_t)tok[t] * E, sizeof(double) * E);
	for (int il = 0; il < hp->n_layer; il++) {
#define W(s) (snprintf(n, sizeof(n), "blk.%d." s, il), weight(f, n, NULL))
		double *an = W("attn_norm.weight"), *wq = W("attn_q.weight"), *wk = W("attn_k.weight");
		double *wv = W("attn_v.weight"), *bq = W("attn_q.bias"), *bk = W("attn_k.bias");
		double *bv = W("attn_v.bias"), *wo = W("attn_output.weight");
		double *fn = W("ffn_norm.weight"), *wg = W("ffn_gate.weight");
		double *wu = W("ffn_up.weight"), *wd = W("ffn_down.weight");
#undef W
		for (int t = 0; t < T; t++) {
			ref_norm(x + t * E, an, h, E, hp->norm_eps);
			ref_matvec(wq, bq, h, q + t * H * D, E, H * D);
			ref_matvec(wk, bk, h, k + t * HK * D, E, HK * D);
			ref_matvec(wv, bv, h, v + t * HK * D, E, HK * D);
			for (int hh = 0; hh < H; hh++)
				ref_rope(q + (t * H + hh) * D, t, D, hp->n_rot, hp->rope_freq_base,
					 hp->rope_neox);
			for (int hh = 0; hh < HK; hh++)
				ref_rope(k + (t * HK + hh) * D, t, D, hp->n_rot, hp->rope_freq_base,
					 hp->rope_neox);
		}
		for (int t = 0; t < T; t++) {
			for (int hh = 0; hh < H; hh++) {
				int kh = hh / (H / HK);
				double mx = -INFINITY, sum = 0;

				for (int j = 0; j <= t; j++) {
					double s = 0;

					for (int d = 0; d < D; d++)
						s += q[(t * H + hh) * D + d] * k[(j * HK + kh) * D + d];
					sc[j] = s / sqrt((double)D);
					mx = fmax(mx, sc[j]);
				}
				for (int j = 0; j <= t; j++)
					sum += (sc[j] = exp(sc[j] - mx));
				for (int d = 0; d < D; d++) {
					double s = 0;

					for (int j = 0; j <= t; j++)
						s += sc[j] / sum * v[(j * HK + kh) * D + d];
					a[hh * D + d] = s;
				}
			}
			ref_matvec(wo, NULL, a, o, H * D, E);
			for (int i = 0; i < E; i++)
				x[t * E + i] += o[i];
			ref_norm(x + t * E, fn, h, E, hp->norm_eps);
			ref_matvec(wg, NULL, h, g, E, F);
			ref_matvec(wu, NULL, h, u, E, F);
			for (int i = 0; i < F; i++)
				g[i] = g[i] / (1 + exp(-g[i])) * u[i];
			ref_matvec(wd, NULL, g, o, F, E);
			for (int i = 0; i < E; i++)
				x[t * E + i] += o[i];
		}
		free(an), free(wq), free(wk), free(wv), free(bq), free(bk), free(bv), free(wo);
		free(fn), free(wg), free(wu), free(wd);
	}
	{
		double *on = weight(f, "output_norm.weight", NULL);

		for (int t = 0; t < T; t++) {
			ref_norm(x + t * E, on, h, E, hp->norm_eps);
			ref_matvec(out ? out : emb, NULL, h, logits + (int64_t)t * V, E, V);
		}
		free(on);
	}
	free(x), free(h), free(q), free(k), free(v), free(a), free(o), free(g), free(u), free(sc);
	free(emb), free(out);
}

/* ---- helpers ------------------------------------------------------------- */

static double nmse_fd(const float *a, const double *b, int64_t n)
{
	double num = 0, den = 0;

	for (int64_t i = 0; i < n; i++) {
		num += (a[i] - b[i]) * (a[i] - b[i]);
		den += b[i] * b[i];
	}
	return num / den;
}

static double nmse_ff(const float *a, const float *b, int64_t n)
{
	double num = 0, den = 0;

	for (int64_t i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return num / den;
}

/* Logits [T][V] from one session: prompt of n_batch tokens, then one by one. */
static float *run_logits(const infer_model *m, const int32_t *tok, int T, int n_batch, int threads)
{
	int V = infer_model_hparams(m)->n_vocab;
	infer_session_opts o = { .backend = "cpu", .n_threads = threads };
	infer_error err = { 0 };
	infer_session *s = infer_session_new(m, &o, &err);
	float *lg = malloc(sizeof(float) * T * V);

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(infer_session_eval(s, tok, n_batch, lg, 1, &err), 0);
	for (int t = n_batch; t < T; t++)
		CU_ASSERT_EQUAL(infer_session_eval(s, tok + t, 1, lg + (int64_t)t * V, 1, &err), 0);
	CU_ASSERT_EQUAL(infer_session_pos(s), T);
	infer_session_free(s);
	return lg;
}

static infer_model *fixture(const struct fx_opts *o)
{
	char *path = fx_tmp_path("fwd");
	infer_error err = { 0 };
	infer_model *m;

	CU_ASSERT_EQUAL_FATAL(fx_write_model(path, o), 0);
	m = infer_model_load(path, &err);
	if (!m)
		fprintf(stderr, "load: %s\n", err.msg);
	unlink(path);
	free(path);
	return m;
}

static const int32_t fx_tokens[] = { 1, 7, 3, 47, 0, 12, 12, 30, 5, 22, 41, 9 };
#define FX_T ((int)(sizeof(fx_tokens) / sizeof(fx_tokens[0])))

static void check_fixture(const struct fx_opts *o, double tol)
{
	infer_model *m = fixture(o);
	double *ref = malloc(sizeof(double) * FX_T * FX_VOCAB);
	float *lg;
	double e;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	ref_forward(m, fx_tokens, FX_T, ref);
	lg = run_logits(m, fx_tokens, FX_T, 5, 2);
	e = nmse_fd(lg, ref, (int64_t)FX_T * FX_VOCAB);
	if (!(e <= tol))
		fprintf(stderr, "\n  nmse %.3g > %.3g\n", e, tol);
	CU_ASSERT(e <= tol);
	free(lg);
	free(ref);
	infer_model_free(m);
}

/* ---- tests without reference data ----------------------------------------- */

static void test_qwen2_vs_reference(void)
{
	struct fx_opts o = { 0 };

	check_fixture(&o, 1e-11);
}

static void test_llama_vs_reference(void)
{
	struct fx_opts o = { .arch = "llama", .untied = 1, .no_bias = 1, .n_rot = 4 };

	check_fixture(&o, 1e-11);
}

/* Quantized weights: the reference dequantizes the same blocks, so only
 * float32 summation separates the two. */
static void test_q8_0_vs_reference(void)
{
	struct fx_opts o = { .wtype = INFER_TYPE_Q8_0 };

	check_fixture(&o, 1e-11);
}

/* The reference really catches a wrong forward: a fixture whose metadata
 * says llama (normal RoPE) compared with a NEOX reference must differ. */
static void test_reference_detects_rope_mixup(void)
{
	struct fx_opts o = { .arch = "llama" };
	infer_model *m = fixture(&o);
	double *ref = malloc(sizeof(double) * FX_T * FX_VOCAB);
	float *lg;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	/* Reference computed as if NEOX: flip the flag the reference reads. */
	((infer_hparams *)infer_model_hparams(m))->rope_neox = 1;
	ref_forward(m, fx_tokens, FX_T, ref);
	((infer_hparams *)infer_model_hparams(m))->rope_neox = 0;
	lg = run_logits(m, fx_tokens, FX_T, FX_T, 1);
	CU_ASSERT(nmse_fd(lg, ref, (int64_t)FX_T * FX_VOCAB) > 1e-6);
	free(lg);
	free(ref);
	infer_model_free(m);
}

/* The same math row by row: batch or one token at a time, 1 or 3 threads,
 * the logits are bit-identical. */
static void test_batch_decode_threads_identical(void)
{
	struct fx_opts o = { 0 };
	infer_model *m = fixture(&o);
	size_t bytes = sizeof(float) * FX_T * FX_VOCAB;
	float *a, *b, *c;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	a = run_logits(m, fx_tokens, FX_T, FX_T, 1);
	b = run_logits(m, fx_tokens, FX_T, 1, 1);
	c = run_logits(m, fx_tokens, FX_T, 4, 3);
	CU_ASSERT_EQUAL(memcmp(a, b, bytes), 0);
	CU_ASSERT_EQUAL(memcmp(a, c, bytes), 0);
	free(a), free(b), free(c);
	infer_model_free(m);
}

static int n_taps;
static void count_tap(void *user, const char *name, const float *d, int64_t n, int64_t dim)
{
	(void)user, (void)name, (void)d, (void)n, (void)dim;
	n_taps++;
}

static void test_errors_and_taps(void)
{
	struct fx_opts o = { 0 };
	infer_model *m = fixture(&o);
	infer_session_opts so = { .n_ctx = 8, .n_threads = 1 };
	infer_error err = { 0 };
	infer_session *s;
	int32_t bad = FX_VOCAB, neg = -1, eight[8] = { 0 };
	float lg[FX_VOCAB];

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	s = infer_session_new(m, &so, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(infer_session_eval(s, &bad, 1, lg, 0, &err), INFER_E_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "outside the vocabulary"));
	CU_ASSERT_EQUAL(infer_session_eval(s, &neg, 1, lg, 0, &err), INFER_E_ARG);
	CU_ASSERT_EQUAL(infer_session_eval(s, eight, 0, lg, 0, &err), INFER_E_ARG);
	infer_session_set_tap(s, count_tap, NULL);
	CU_ASSERT_EQUAL(infer_session_eval(s, eight, 8, lg, 0, &err), 0);
	/* embd + 12 per layer + result_norm + result_output */
	CU_ASSERT_EQUAL(n_taps, 1 + 12 * FX_LAYER + 2);
	CU_ASSERT_EQUAL(infer_session_eval(s, eight, 1, lg, 0, &err), INFER_E_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "context full"));
	infer_session_reset(s);
	CU_ASSERT_EQUAL(infer_session_pos(s), 0);
	CU_ASSERT_EQUAL(infer_session_eval(s, eight, 1, lg, 0, &err), 0);
	infer_session_free(s);
	so.backend = "tpu";
	CU_ASSERT_PTR_NULL(infer_session_new(m, &so, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "tpu"));
	infer_model_free(m);
}

/* ---- tests against the transformers golden ------------------------------- */

struct golden {
	gguf_file *f;
	const int32_t *tok;
	const float *logits;
	int T;
};

static int open_golden(struct golden *g)
{
	char *p = fx_shared("golden-ref/haiku-qwen2-tiny/chat-moon.gguf");
	infer_error err = { 0 };

	if (!p)
		return 0;
	g->f = gguf_open(p, &err);
	free(p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->f);
	g->tok = gguf_find_tensor(g->f, "tokens")->data;
	g->T = (int)gguf_find_tensor(g->f, "tokens")->ne[0];
	g->logits = gguf_find_tensor(g->f, "logits")->data;
	return 1;
}

static infer_model *haiku(void)
{
	char *p = fx_shared("models/haiku-qwen2-tiny-f16.gguf");
	infer_error err = { 0 };
	infer_model *m = p ? infer_model_load(p, &err) : NULL;

	free(p);
	return m;
}

/* Converts the haiku model and loads the copy. */
static infer_model *haiku_converted(fx_retype_fn fn, void *user, int to_llama)
{
	char *src = fx_shared("models/haiku-qwen2-tiny-f16.gguf"), *dst = fx_tmp_path("conv");
	infer_error err = { 0 };
	infer_model *m = NULL;

	if (src && fx_convert(src, dst, fn, user, to_llama) == 0)
		m = infer_model_load(dst, &err);
	if (src && !m)
		fprintf(stderr, "converted model: %s\n", err.msg);
	unlink(dst);
	free(src);
	free(dst);
	return m;
}

static void test_haiku_vs_transformers(void)
{
	struct golden g;
	infer_model *m;
	float *lg;
	double e;

	if (!open_golden(&g)) {
		printf("skipped: reference set not found ");
		return;
	}
	m = haiku();
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	lg = run_logits(m, g.tok, g.T, 13, 0);
	e = nmse_ff(lg, g.logits, (int64_t)g.T * 4096);
	CU_ASSERT(e < 1e-10);
	/* The check must be able to fail: shifted logits are far off. */
	CU_ASSERT(nmse_ff(lg + 4096, g.logits, (int64_t)(g.T - 1) * 4096) > 1e-2);
	free(lg);
	infer_model_free(m);
	gguf_close(g.f);
}

static void test_haiku_as_llama(void)
{
	struct golden g;
	infer_model *m;
	float *lg;

	if (!open_golden(&g)) {
		printf("skipped: reference set not found ");
		return;
	}
	m = haiku_converted(NULL, NULL, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(infer_model_hparams(m)->arch, "llama");
	CU_ASSERT_EQUAL(infer_model_hparams(m)->rope_neox, 0);
	CU_ASSERT_EQUAL(infer_model_hparams(m)->tied_output, 0);
	lg = run_logits(m, g.tok, g.T, 13, 0);
	CU_ASSERT(nmse_ff(lg, g.logits, (int64_t)g.T * 4096) < 1e-10);
	free(lg);
	infer_model_free(m);
	gguf_close(g.f);
}

static uint32_t to_f32(const char *name, uint32_t type, void *user)
{
	(void)name, (void)type, (void)user;
	return INFER_TYPE_F32;
}

/* F16 -> F32 is exact and the matmul uses the same float values: identical bits. */
static void test_haiku_f32_identical(void)
{
	struct golden g;
	infer_model *a, *b;
	float *la, *lb;

	if (!open_golden(&g)) {
		printf("skipped: reference set not found ");
		return;
	}
	a = haiku();
	b = haiku_converted(to_f32, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	la = run_logits(a, g.tok, g.T, 13, 0);
	lb = run_logits(b, g.tok, g.T, 13, 0);
	CU_ASSERT_EQUAL(memcmp(la, lb, sizeof(float) * g.T * 4096), 0);
	free(la), free(lb);
	infer_model_free(a);
	infer_model_free(b);
	gguf_close(g.f);
}

/* Every type the project can quantize to, spread over the weights round-robin
 * (token_embd and the tied output included): loads, runs, finite logits. */
static const uint32_t quant_types[] = {
	INFER_TYPE_Q4_0, INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0,
	INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q6_K, INFER_TYPE_IQ4_NL, INFER_TYPE_BF16,
	INFER_TYPE_F16, INFER_TYPE_MXFP4, INFER_TYPE_NVFP4, INFER_TYPE_Q8_1,
};

static uint32_t round_robin(const char *name, uint32_t type, void *user)
{
	int *i = user;
	uint32_t t = quant_types[(*i)++ % (sizeof(quant_types) / sizeof(quant_types[0]))];

	(void)name, (void)type;
	return t;
}

static uint32_t to_q8_0(const char *name, uint32_t type, void *user)
{
	(void)name, (void)type, (void)user;
	return INFER_TYPE_Q8_0;
}

static void test_haiku_any_quant(void)
{
	struct golden g;
	infer_model *m;
	float *lg;
	int i = 0, finite = 1;

	if (!open_golden(&g)) {
		printf("skipped: reference set not found ");
		return;
	}
	m = haiku_converted(round_robin, &i, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	lg = run_logits(m, g.tok, g.T, 13, 0);
	for (int64_t k = 0; k < (int64_t)g.T * 4096; k++)
		finite &= isfinite(lg[k]) != 0;
	CU_ASSERT(finite);
	free(lg);
	infer_model_free(m);
	/* All Q8_0: close to the fp32 golden (weight rounding only). */
	m = haiku_converted(to_q8_0, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	lg = run_logits(m, g.tok, g.T, 13, 0);
	CU_ASSERT(nmse_ff(lg, g.logits, (int64_t)g.T * 4096) < 1e-3);
	free(lg);
	infer_model_free(m);
	gguf_close(g.f);
}

int main(void)
{
	CU_pSuite s;
	int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("forward", NULL, NULL);
	CU_add_test(s, "qwen2 fixture vs double reference", test_qwen2_vs_reference);
	CU_add_test(s, "llama fixture (partial rotary, untied) vs double reference",
		    test_llama_vs_reference);
	CU_add_test(s, "q8_0 fixture vs double reference", test_q8_0_vs_reference);
	CU_add_test(s, "reference detects a RoPE mix-up", test_reference_detects_rope_mixup);
	CU_add_test(s, "batch, decode and threads bit-identical", test_batch_decode_threads_identical);
	CU_add_test(s, "argument errors, context limit, taps", test_errors_and_taps);
	CU_add_test(s, "haiku F16 vs transformers fp32 logits", test_haiku_vs_transformers);
	CU_add_test(s, "haiku as llama (permuted Q/K, untied) vs transformers", test_haiku_as_llama);
	CU_add_test(s, "haiku F32 copy bit-identical to F16", test_haiku_f32_identical);
	CU_add_test(s, "haiku with any quant type in any weight", test_haiku_any_quant);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
