/* The activations check kind can pass and, above all, can FAIL: a perturbed
 * golden value, two swapped prompt tokens, a moved argmax, a golden tensor no
 * tap matches, and bad params are each caught and named. The decode pass (no
 * taps, one token per eval: the product path) passes on the golden and fails
 * on its own, named as such, when only its logits are corrupted (through the
 * test seam in checks/activations.h) or the golden's continuation logits are.
 *
 * With ../shared the real transformers golden (chat-moon) is used. Without
 * it, a tiny seeded random model and a golden dumped from this runtime stand
 * in: that file is a REGRESSION BASELINE made by the code under test, used
 * here only to exercise the check's failure paths, never as a reference. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks/activations.h"
#include "harness.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/quant.h"
#include "infer/session.h"

static char model_path[512], golden_path[512];
static int from_shared;
/* The default check on the unmodified golden, run once (golden_result())
 * for the tests that read its result. */
static struct check_result golden_res;
static int golden_ran;

/* ---- a tiny model and a baseline dump when ../shared is absent ----------- */

static float frand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (float)((double)(*s >> 11) / 4503599627370496.0 - 1.0);
}

static void add_f32(gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, float base,
		    uint64_t *rng)
{
	int64_t ne[2] = { ne0, ne1 }, n = ne0 * (ne1 ? ne1 : 1);
	float *v = malloc((size_t)n * sizeof(float));

	for (int64_t i = 0; i < n; i++)
		v[i] = base + 0.3f * frand(rng);
	gguf_writer_add_tensor(w, name, INFER_TYPE_F32, ne1 ? 2 : 1, ne, v, (uint64_t)n * 4);
	free(v);
}

static int write_tiny_model(const char *path)
{
	gguf_writer *w = gguf_writer_new(0);
	uint64_t rng = 42;
	infer_error err = { 0 };
	char n[64];
	int rc;

	gguf_writer_add_str(w, "general.architecture", "qwen2");
	gguf_writer_add_u32(w, "qwen2.context_length", 32);
	gguf_writer_add_u32(w, "qwen2.embedding_length", 16);
	gguf_writer_add_u32(w, "qwen2.block_count", 2);
	gguf_writer_add_u32(w, "qwen2.feed_forward_length", 32);
	gguf_writer_add_u32(w, "qwen2.attention.head_count", 2);
	gguf_writer_add_u32(w, "qwen2.attention.head_count_kv", 1);
	gguf_writer_add_f32(w, "qwen2.rope.freq_base", 10000.0f);
	gguf_writer_add_f32(w, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
	add_f32(w, "token_embd.weight", 16, 40, 0, &rng);
	for (int il = 0; il < 2; il++) {
#define L(s) (snprintf(n, sizeof(n), "blk.%d." s, il), n)
		add_f32(w, L("attn_norm.weight"), 16, 0, 1, &rng);
		add_f32(w, L("attn_q.weight"), 16, 16, 0, &rng);
		add_f32(w, L("attn_k.weight"), 16, 8, 0, &rng);
		add_f32(w, L("attn_v.weight"), 16, 8, 0, &rng);
		add_f32(w, L("attn_q.bias"), 16, 0, 0, &rng);
		add_f32(w, L("attn_k.bias"), 8, 0, 0, &rng);
		add_f32(w, L("attn_v.bias"), 8, 0, 0, &rng);
		add_f32(w, L("attn_output.weight"), 16, 16, 0, &rng);
		add_f32(w, L("ffn_norm.weight"), 16, 0, 1, &rng);
		add_f32(w, L("ffn_gate.weight"), 16, 32, 0, &rng);
		add_f32(w, L("ffn_up.weight"), 16, 32, 0, &rng);
		add_f32(w, L("ffn_down.weight"), 32, 16, 0, &rng);
#undef L
	}
	add_f32(w, "output_norm.weight", 16, 0, 1, &rng);
	rc = gguf_writer_write(w, path, &err);
	gguf_writer_free(w);
	return rc;
}

struct dump {
	gguf_writer *w;
	int64_t T;
	struct { char name[64]; int64_t dim, rows; float *v; } t[64];
	int n;
};

static void dump_tap(void *user, const char *name, const float *data, int64_t n, int64_t dim)
{
	struct dump *d = user;
	int i;

	for (i = 0; i < d->n && strcmp(d->t[i].name, name); i++)
		;
	if (i == d->n) {
		snprintf(d->t[i].name, sizeof(d->t[i].name), "%s", name);
		d->t[i].dim = dim;
		d->t[i].v = malloc((size_t)(d->T * dim) * sizeof(float));
		d->n++;
	}
	memcpy(d->t[i].v + d->t[i].rows * dim, data, (size_t)(n * dim) * sizeof(float));
	d->t[i].rows += n;
}

/* llama.cpp dump layout (act.<tap>.<layer>) from this runtime: a baseline. */
static int write_baseline(const char *model, const char *out)
{
	int32_t tok[8] = { 3, 17, 5, 39, 0 }; /* prompt; the rest is greedy */
	int64_t T = 8, n_prompt = 5, V = 40, ne[2];
	struct dump d = { .T = 8 };
	infer_error err = { 0 };
	infer_model *m = infer_model_load(model, &err);
	infer_session_opts o = { .n_threads = 1 };
	infer_session *s = m ? infer_session_new(m, &o, &err) : NULL;
	float *lg = malloc(sizeof(float) * T * V);
	char gn[96];
	int rc;

	if (!s)
		return -1;
	infer_session_set_tap(s, dump_tap, &d);
	rc = infer_session_eval(s, tok, (int32_t)n_prompt, lg, 1, &err);
	for (int64_t t = n_prompt; t < T && !rc; t++) {
		const float *prev = lg + (t - 1) * V;

		tok[t] = 0;
		for (int32_t v = 1; v < V; v++)
			if (prev[v] > prev[tok[t]])
				tok[t] = v;
		rc = infer_session_eval(s, tok + t, 1, lg + t * V, 1, &err);
	}
	d.w = gguf_writer_new(0);
	gguf_writer_add_str(d.w, "golden.kind", "activations");
	gguf_writer_add_str(d.w, "golden.source", "regression baseline: this runtime (test only)");
	gguf_writer_add_u32(d.w, "golden.n_prompt", (uint32_t)n_prompt);
	ne[0] = T;
	gguf_writer_add_tensor(d.w, "tokens", INFER_TYPE_I32, 1, ne, tok, sizeof(tok));
	ne[0] = V, ne[1] = T;
	gguf_writer_add_tensor(d.w, "logits", INFER_TYPE_F32, 2, ne, lg, (uint64_t)(T * V) * 4);
	for (int i = 0; i < d.n; i++) {
		const char *dash = strrchr(d.t[i].name, '-');

		if (dash)
			snprintf(gn, sizeof(gn), "act.%.*s.%s", (int)(dash - d.t[i].name), d.t[i].name,
				 dash + 1);
		else
			snprintf(gn, sizeof(gn), "act.%s", d.t[i].name);
		ne[0] = d.t[i].dim, ne[1] = T;
		gguf_writer_add_tensor(d.w, gn, INFER_TYPE_F32, 2, ne, d.t[i].v,
				       (uint64_t)(T * d.t[i].dim) * 4);
		free(d.t[i].v);
	}
	if (!rc)
		rc = gguf_writer_write(d.w, out, &err);
	gguf_writer_free(d.w);
	free(lg);
	infer_session_free(s);
	infer_model_free(m);
	return rc;
}

static int setup(void)
{
	const char *sh = getenv("INFER_SHARED_DIR");
	struct stat st;

	snprintf(model_path, sizeof(model_path), "%s/models/haiku-qwen2-tiny-f16.gguf",
		 sh ? sh : "../shared");
	snprintf(golden_path, sizeof(golden_path), "%s/golden-ref/haiku-qwen2-tiny/chat-moon.gguf",
		 sh ? sh : "../shared");
	if (!stat(model_path, &st) && !stat(golden_path, &st)) {
		from_shared = 1;
		return 0;
	}
	printf("(../shared absent: tiny model + regression baseline) ");
	snprintf(model_path, sizeof(model_path), "/tmp/infer-test-act-model-%d.gguf", (int)getpid());
	snprintf(golden_path, sizeof(golden_path), "/tmp/infer-test-act-base-%d.gguf", (int)getpid());
	return write_tiny_model(model_path) || write_baseline(model_path, golden_path);
}

static int teardown(void)
{
	json_decref(golden_res.details);
	if (!from_shared) {
		unlink(model_path);
		unlink(golden_path);
	}
	return 0;
}

/* ---- modified copies of the golden --------------------------------------- */

enum edit { EDIT_NONE, EDIT_PERTURB, EDIT_SWAP_TOKENS, EDIT_ARGMAX, EDIT_EXTRA, EDIT_LAST_LOGITS };

/* Logits of one position * 1.01 (a 1e-4 NMSE: far over the tight limit, and
 * no argmax moves). */
static void scale_row(float *row, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		row[i] *= 1.01f;
}

/* The tensor perturbed: a mid-network hidden state. */
static const char *perturb_target(void)
{
	return from_shared ? "hidden.3" : "act.l_out.1";
}

static char *write_edited(enum edit e)
{
	static int seq;
	infer_error err = { 0 };
	gguf_file *f = gguf_open(golden_path, &err);
	gguf_writer *w = gguf_writer_new(0);
	char *out = malloc(256);
	int64_t np = 0, V = 0, T = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	snprintf(out, 256, "/tmp/infer-test-act-edit-%d-%d.gguf", (int)getpid(), seq++);
	if (!gguf_get_int(f, "n_prompt", &np, NULL))
		gguf_writer_add_u32(w, "n_prompt", (uint32_t)np);
	if (!gguf_get_int(f, "golden.n_prompt", &np, NULL))
		gguf_writer_add_u32(w, "golden.n_prompt", (uint32_t)np);
	for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);
		void *buf = malloc(t->nbytes);

		memcpy(buf, t->data, t->nbytes);
		if (e == EDIT_PERTURB && !strcmp(t->name, perturb_target()))
			((float *)buf)[t->ne[0] * 2 + 5] += 0.5f; /* token 2, element 5 */
		if (e == EDIT_SWAP_TOKENS && !strcmp(t->name, "tokens")) {
			int32_t *tk = buf, x = tk[1];

			tk[1] = tk[2], tk[2] = x;
		}
		if (!strcmp(t->name, "logits")) {
			V = t->ne[0];
			T = t->ne[1];
		}
		if (e == EDIT_ARGMAX && !strcmp(t->name, "logits"))
			((float *)buf)[t->ne[0] * 1 + 7] += 1000.0f; /* position 1 now argmaxes 7 */
		if (e == EDIT_LAST_LOGITS && !strcmp(t->name, "logits"))
			scale_row((float *)buf + t->ne[0] * (t->ne[1] - 1), t->ne[0]);
		gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, buf, t->nbytes);
		free(buf);
	}
	if (e == EDIT_EXTRA) {
		float z[4] = { 0 };
		int64_t ne = 4;

		gguf_writer_add_tensor(w, from_shared ? "hidden.99" : "act.nonsense.0", INFER_TYPE_F32,
				       1, &ne, z, sizeof(z));
	}
	CU_ASSERT(V > 0 && T > 0);
	CU_ASSERT_EQUAL_FATAL(gguf_writer_write(w, out, &err), 0);
	gguf_writer_free(w);
	gguf_close(f);
	return out;
}

/* Runs the kind on (model, golden) with the given tolerance / extra params. */
static enum check_status run_check(const char *golden, const char *tol_json, const char *extra,
				   struct check_result *r)
{
	struct check c = { 0 };
	json_error_t je;
	infer_error err = { 0 };

	c.id = "test/activations";
	c.kind = "activations";
	c.params = extra ? json_loads(extra, 0, &je) : json_object();
	json_object_set_new(c.params, "model", json_string(model_path));
	json_object_set_new(c.params, "golden", json_string(golden));
	json_object_set_new(c.params, "threads", json_integer(1));
	c.tolerance = json_loads(tol_json, 0, &je);
	CU_ASSERT_EQUAL(check_kind_activations.validate(c.params, c.tolerance, &err), 0);
	memset(r, 0, sizeof(*r));
	check_kind_activations.run(&c, "cpu", r);
	json_decref(c.params);
	json_decref(c.tolerance);
	return r->status;
}

static const char *tight = "{\"nmse\": 1e-10}";

/* Tests of the tapped pass leave the decode pass out: it is not what they
 * prove, and each run of it costs as much as the tapped pass. */
static const char *tapped_only = "{\"decode_pass\": false}";

static const struct check_result *golden_result(void)
{
	if (!golden_ran) {
		golden_ran = 1;
		run_check(golden_path, tight, NULL, &golden_res);
	}
	return &golden_res;
}

static void test_pass(void)
{
	const struct check_result *r = golden_result();
	json_t *layers;

	CU_ASSERT_EQUAL(r->status, CHECK_PASS);
	layers = json_object_get(r->details, "layers");
	CU_ASSERT(json_array_size(layers) >= 3);
	/* Every entry carries tap, nmse, max_rel, ok, in forward order. */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(layers, 0), "tap")),
			       "embd");
	CU_ASSERT_PTR_NOT_NULL(json_object_get(json_array_get(layers, 0), "max_rel"));
	CU_ASSERT(json_is_true(json_object_get(json_array_get(layers, 0), "ok")));
}

static void test_perturbed_value_fails(void)
{
	char *g = write_edited(EDIT_PERTURB);
	struct check_result r;
	const char *tap = from_shared ? "l_out-2" : "l_out-1";

	CU_ASSERT_EQUAL(run_check(g, tight, tapped_only, &r), CHECK_FAIL);
	if (!strstr(r.message, tap))
		printf("\n  message: %s\n", r.message);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "first diverging tap"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, tap));
	json_decref(r.details);
	unlink(g);
	free(g);
}

static void test_swapped_tokens_fail(void)
{
	char *g = write_edited(EDIT_SWAP_TOKENS);
	struct check_result r;

	CU_ASSERT_EQUAL(run_check(g, tight, tapped_only, &r), CHECK_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "first diverging tap: embd"));
	json_decref(r.details);
	unlink(g);
	free(g);
}

/* A moved argmax fails even when the NMSE limit is too loose to notice. */
static void test_argmax_fails(void)
{
	char *g = write_edited(EDIT_ARGMAX);
	struct check_result r;

	CU_ASSERT_EQUAL(run_check(g, "{\"nmse\": 1e30}", tapped_only, &r), CHECK_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "argmax differs"));
	json_decref(r.details);
	/* ... unless the spec waives it explicitly. */
	CU_ASSERT_EQUAL(run_check(g, "{\"nmse\": 1e30}", "{\"argmax\": false, \"decode_pass\": false}", &r),
			CHECK_PASS);
	json_decref(r.details);
	unlink(g);
	free(g);
}

static void test_unmatched_golden_tensor_errors(void)
{
	char *g = write_edited(EDIT_EXTRA);
	struct check_result r;

	CU_ASSERT_EQUAL(run_check(g, tight, NULL, &r), CHECK_ERROR);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "matches no runtime tap"));
	json_decref(r.details);
	unlink(g);
	free(g);
}

static void test_max_rel_limit_fails(void)
{
	struct check_result r;

	CU_ASSERT_EQUAL(run_check(golden_path, tight, "{\"max_rel\": 0, \"decode_pass\": false}", &r),
			from_shared ? CHECK_FAIL : CHECK_PASS);
	json_decref(r.details);
}


/* ---- the decode pass (untapped product path) ------------------------------ */

static const json_t *dpass(const struct check_result *r, const char *key)
{
	return json_object_get(json_object_get(r->details, "decode_pass"), key);
}

static json_int_t dint(const struct check_result *r, const char *key)
{
	return json_integer_value(json_object_get(r->details, key));
}

/* Every tap and the tapped logits passed: what failed is the decode pass. */
static void assert_tapped_pass_clean(const struct check_result *r)
{
	const json_t *layers = json_object_get(r->details, "layers"), *l;
	size_t i;

	CU_ASSERT(json_array_size(layers) >= 3);
	json_array_foreach(layers, i, l)
		CU_ASSERT(json_is_true(json_object_get(l, "ok")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(r->details, "argmax"),
							   "mismatches")), 0);
	CU_ASSERT_PTR_NULL(strstr(r->message, "first diverging tap"));
}

static void test_decode_pass_on_golden(void)
{
	const struct check_result *r = golden_result();
	json_int_t steps = dint(r, "n_tokens") - dint(r, "n_prompt") + 1;
	const json_t *worst = dpass(r, "worst"), *per_step = dpass(r, "per_step");

	CU_ASSERT_EQUAL(r->status, CHECK_PASS);
	CU_ASSERT(json_is_true(dpass(r, "ok")));
	CU_ASSERT(steps >= 2);
	CU_ASSERT_EQUAL(json_integer_value(dpass(r, "steps")), steps);
	CU_ASSERT_EQUAL(json_integer_value(dpass(r, "first_position")), dint(r, "n_prompt") - 1);
	CU_ASSERT_EQUAL((json_int_t)json_array_size(per_step), steps);
	CU_ASSERT(json_is_true(json_object_get(json_array_get(per_step, steps - 1), "ok")));
	CU_ASSERT(json_number_value(json_object_get(worst, "nmse")) >= 0);
	CU_ASSERT(json_number_value(json_object_get(worst, "nmse")) <= 1e-10);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(dpass(r, "argmax"), "mismatches")), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(dpass(r, "greedy"), "first_mismatch")), -1);
	CU_ASSERT(json_is_number(dpass(r, "max_abs_vs_tapped")));
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "decode pass: "));
}

/* The golden's token count and prompt length. */
static void golden_len(int64_t *T, int64_t *n_prompt)
{
	infer_error err = { 0 };
	gguf_file *f = gguf_open(golden_path, &err);

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	*T = gguf_find_tensor(f, "tokens")->ne[0];
	if (gguf_get_int(f, "n_prompt", n_prompt, NULL))
		CU_ASSERT_EQUAL(gguf_get_int(f, "golden.n_prompt", n_prompt, NULL), 0);
	gguf_close(f);
}

/* The hooks corrupt what the untapped path returned for one position. */
static int64_t hook_position;

static void hook_scale(float *logits, int64_t n_vocab, int64_t position)
{
	if (position == hook_position)
		scale_row(logits, n_vocab);
}

static void hook_argmax(float *logits, int64_t n_vocab, int64_t position)
{
	int64_t lo = 0;

	if (position != hook_position)
		return;
	/* The row's least likely token becomes its most likely. */
	for (int64_t i = 1; i < n_vocab; i++)
		if (logits[i] < logits[lo])
			lo = i;
	logits[lo] += 1000.0f;
}

static void test_decode_pass_perturbed_fails(void)
{
	struct check_result r;
	char want[64];
	int64_t T, n_prompt;

	/* Step 2: the second continuation token fed alone. */
	golden_len(&T, &n_prompt);
	hook_position = n_prompt + 1;
	activations_decode_hook = hook_scale;
	CU_ASSERT_EQUAL(run_check(golden_path, tight, NULL, &r), CHECK_FAIL);
	activations_decode_hook = NULL;
	assert_tapped_pass_clean(&r);
	CU_ASSERT(json_is_false(dpass(&r, "ok")));
	snprintf(want, sizeof(want), "step 2 (position %lld) logits: nmse", (long long)hook_position);
	if (!strstr(r.message, want))
		printf("\n  message: %s\n", r.message);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "decode pass"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, want));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(dpass(&r, "first_failure"), "position")),
			hook_position);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(dpass(&r, "worst"), "position")),
			hook_position);
	json_decref(r.details);
}

/* A moved argmax in the decode pass fails even under a loose NMSE limit. At
 * the last position it predicts no golden token, so only the argmax rule sees
 * it, and the spec can waive that rule as for the tapped pass. */
static void test_decode_pass_argmax_fails(void)
{
	struct check_result r;
	int64_t T, n_prompt;

	golden_len(&T, &n_prompt);
	hook_position = T - 1;
	activations_decode_hook = hook_argmax;
	CU_ASSERT_EQUAL(run_check(golden_path, "{\"nmse\": 1e30}", NULL, &r), CHECK_FAIL);
	assert_tapped_pass_clean(&r);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "decode pass"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "argmax differs at 1 of"));
	json_decref(r.details);
	CU_ASSERT_EQUAL(run_check(golden_path, "{\"nmse\": 1e30}", "{\"argmax\": false}", &r),
			CHECK_PASS);
	json_decref(r.details);
	/* One position earlier the same move breaks the greedy continuation,
	 * which no param waives. */
	hook_position--;
	CU_ASSERT_EQUAL(run_check(golden_path, "{\"nmse\": 1e30}", "{\"argmax\": false}", &r),
			CHECK_FAIL);
	activations_decode_hook = NULL;
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "decode pass"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "greedy continuation differs"));
	json_decref(r.details);
}

/* decode_pass: false turns it off, visibly (and the seam is then unused). */
static void test_decode_pass_off(void)
{
	struct check_result r;

	hook_position = 0;
	activations_decode_hook = hook_argmax;
	CU_ASSERT_EQUAL(run_check(golden_path, tight, "{\"decode_pass\": false}", &r), CHECK_PASS);
	activations_decode_hook = NULL;
	CU_ASSERT_PTR_NOT_NULL(dpass(&r, "skipped"));
	CU_ASSERT_PTR_NULL(dpass(&r, "ok"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "decode pass off"));
	json_decref(r.details);
}

/* Golden continuation logits changed: both passes see it; the decode pass
 * names the position. */
static void test_golden_last_logits_fail_both_passes(void)
{
	char *g = write_edited(EDIT_LAST_LOGITS);
	struct check_result r;

	CU_ASSERT_EQUAL(run_check(g, tight, NULL, &r), CHECK_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "first diverging tap: logits"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "; also decode pass"));
	CU_ASSERT(json_is_false(dpass(&r, "ok")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(dpass(&r, "first_failure"), "position")),
			dint(&r, "n_tokens") - 1);
	json_decref(r.details);
	unlink(g);
	free(g);
}

static void test_validate(void)
{
	json_error_t je;
	json_t *p = json_loads("{\"model\": \"m\", \"golden\": \"g\", \"bogus\": 1}", 0, &je);
	json_t *t = json_loads(tight, 0, &je), *t0 = json_object();
	infer_error err = { 0 };

	CU_ASSERT_NOT_EQUAL(check_kind_activations.validate(p, t, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bogus"));
	json_object_del(p, "bogus");
	CU_ASSERT_EQUAL(check_kind_activations.validate(p, t, &err), 0);
	json_object_set_new(p, "decode_pass", json_string("yes"));
	CU_ASSERT_NOT_EQUAL(check_kind_activations.validate(p, t, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "decode_pass"));
	json_object_set_new(p, "decode_pass", json_false());
	CU_ASSERT_EQUAL(check_kind_activations.validate(p, t, &err), 0);
	CU_ASSERT_NOT_EQUAL(check_kind_activations.validate(p, t0, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nmse"));
	json_object_del(p, "golden");
	CU_ASSERT_NOT_EQUAL(check_kind_activations.validate(p, t, &err), 0);
	json_decref(p);
	json_decref(t);
	json_decref(t0);
}

int main(void)
{
	CU_pSuite s;
	int fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("activations", setup, teardown);
	CU_add_test(s, "passes on the golden", test_pass);
	CU_add_test(s, "a perturbed golden value fails, naming the tap", test_perturbed_value_fails);
	CU_add_test(s, "two swapped prompt tokens fail at embd", test_swapped_tokens_fail);
	CU_add_test(s, "a moved argmax fails", test_argmax_fails);
	CU_add_test(s, "an unmatched golden tensor is an error", test_unmatched_golden_tensor_errors);
	CU_add_test(s, "max_rel limit is enforced", test_max_rel_limit_fails);
	CU_add_test(s, "decode pass (no taps) passes on the golden", test_decode_pass_on_golden);
	CU_add_test(s, "decode-path logits perturbed: fails in the decode pass alone",
		    test_decode_pass_perturbed_fails);
	CU_add_test(s, "decode pass: a moved argmax / greedy token fails", test_decode_pass_argmax_fails);
	CU_add_test(s, "decode_pass: false turns it off, visibly", test_decode_pass_off);
	CU_add_test(s, "golden continuation logits perturbed: both passes fail",
		    test_golden_last_logits_fail_both_passes);
	CU_add_test(s, "params are validated", test_validate);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = (int)CU_get_number_of_failures() + (int)CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
