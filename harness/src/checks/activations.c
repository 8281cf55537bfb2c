/* The `activations` check kind: run a model over the exact tokens of an
 * independent golden (HuggingFace transformers or llama.cpp) and compare
 * every intermediate tensor, tap by tap, plus the logits, the argmax at every
 * position and the greedy continuation.
 *
 * params:
 *   model: GGUF model file          golden: GGUF golden file
 *   max_rel: limit on max|a-b| / max|b| per tap (scale-free, so near-zero
 *            elements do not make it meaningless); default: not checked
 *   argmax: require the same argmax at every position (default true)
 *   argmax_min_margin: positions whose golden top-1/top-2 logit gap is below
 *            this are exempt (reported, never hidden) (default 0)
 *   greedy_tokens: how many continuation tokens must be reproduced greedily
 *            (default -1: all of them)
 *   threads: cpu threads (default 0 = all cores)
 *   ggml_act_rounding: round activations before each matmul as ggml's CPU
 *            backend does (cpu only; session.h), to compare with llama.cpp
 *            dumps of F16 / quantized models at tight tolerance
 *   decode_pass: also run the decode pass below (default true)
 * tolerance: {nmse: ...} (compare.h keys) for every tap and the logits.
 *
 * Golden formats (detected from the tensor names):
 *   llama.cpp dump: act.<node>.<layer> = our tap "<node>-<layer>", act.embd,
 *     act.result_norm, act.result_output; n_prompt in golden.n_prompt.
 *   transformers: hidden.0 = embd, hidden.i = l_out-(i-1), hidden.L.pre_norm =
 *     l_out-(L-1), hidden.L = result_norm; n_prompt in n_prompt.
 * Both: tokens (I32, prompt then continuation), logits F32 [n_vocab, T].
 *
 * The prompt is evaluated as one batch and the rest one token at a time, as
 * llama.cpp made its dumps, so the KV-cache decode path is what is checked.
 * Feeding the golden tokens (teacher forcing) and requiring our argmax at
 * position i to equal golden token i+1 is exactly "greedy generation gives
 * the same continuation": by induction every input we would have fed is the
 * golden one.
 *
 * A tap callback changes what a backend runs: cuda drops its captured decode
 * graph for the eager stage-by-stage path, and both backends compute logits
 * for every row. So the tapped pass alone never sees the product path. The
 * decode pass runs it as generation does, on a fresh session with no tap:
 * the prompt as one batch (logits of its last token), then every golden
 * continuation token in an eval of its own. Each step's logits must meet the
 * same tolerance (and max_rel) against the golden row of that position, with
 * the same argmax and greedy rules; details.decode_pass holds the numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks/activations.h"
#include "compare.h"
#include "harness.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/session.h"

/* ---- collecting taps ----------------------------------------------------- */

struct tap_buf {
	char name[64];
	int64_t dim;
	int64_t rows; /* filled so far */
	float *data;  /* [T][dim] */
};

struct taps {
	struct tap_buf *v;
	int n, cap;
	int64_t T;    /* tokens in the whole sequence */
	int oom;      /* a malloc failed or a tap changed its width */
};

static struct tap_buf *tap_find(struct taps *tp, const char *name)
{
	for (int i = 0; i < tp->n; i++)
		if (!strcmp(tp->v[i].name, name))
			return &tp->v[i];
	return NULL;
}

static void tap_cb(void *user, const char *name, const float *data, int64_t n, int64_t dim)
{
	struct taps *tp = user;
	struct tap_buf *b = tap_find(tp, name);

	if (!b) {
		if (tp->n == tp->cap) {
			int cap = tp->cap ? tp->cap * 2 : 128;
			struct tap_buf *v = realloc(tp->v, (size_t)cap * sizeof(*v));

			if (!v) {
				tp->oom = 1;
				return;
			}
			tp->v = v;
			tp->cap = cap;
		}
		b = &tp->v[tp->n++];
		memset(b, 0, sizeof(*b));
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->dim = dim;
		b->data = malloc((size_t)(tp->T * dim) * sizeof(float));
		if (!b->data)
			tp->oom = 1;
	}
	if (!b->data || b->dim != dim || b->rows + n > tp->T) {
		tp->oom = 1;
		return;
	}
	memcpy(b->data + b->rows * dim, data, (size_t)(n * dim) * sizeof(float));
	b->rows += n;
}

static void taps_free(struct taps *tp)
{
	for (int i = 0; i < tp->n; i++)
		free(tp->v[i].data);
	free(tp->v);
}

/* ---- golden naming ------------------------------------------------------- */

/* The golden tensor holding our tap, or "" when the golden has none. */
static void golden_name(const char *tap, int llamacpp, int n_layer, char *out, size_t n)
{
	int il;
	const char *dash = strrchr(tap, '-');

	out[0] = '\0';
	if (llamacpp) {
		if (dash && dash[1] >= '0' && dash[1] <= '9')
			snprintf(out, n, "act.%.*s.%s", (int)(dash - tap), tap, dash + 1);
		else
			snprintf(out, n, "act.%s", tap);
		return;
	}
	if (!strcmp(tap, "embd"))
		snprintf(out, n, "hidden.0");
	else if (!strcmp(tap, "result_norm"))
		snprintf(out, n, "hidden.%d", n_layer);
	else if (sscanf(tap, "l_out-%d", &il) == 1 && il == n_layer - 1)
		snprintf(out, n, "hidden.%d.pre_norm", n_layer);
	else if (sscanf(tap, "l_out-%d", &il) == 1)
		snprintf(out, n, "hidden.%d", il + 1);
}

/* ---- one comparison ------------------------------------------------------ */

struct verdict {
	const char *first_bad;  /* first failing tap (points into taps) */
	char why[512];
};

static double max_abs_of(const float *v, int64_t n)
{
	double m = 0;

	for (int64_t i = 0; i < n; i++)
		if (fabs(v[i]) > m)
			m = fabs(v[i]);
	return m;
}

/* The compare.h metrics plus max_rel (scale-free, against max|b|) of one
 * tensor; *d gets cmp_compare's details. */
static int measure(const float *a, const float *b, int64_t dim, int64_t T,
		   const cmp_tolerance *tol, double max_rel_lim, double *nmse, double *max_abs,
		   double *max_rel, json_t **d)
{
	int64_t shape[2] = { dim, T };
	double scale = max_abs_of(b, dim * T);
	int ok = cmp_compare(a, b, dim * T, shape, 2, tol, d);
	json_t *met = json_object_get(*d, "metrics");

	*nmse = json_number_value(json_object_get(met, "nmse"));
	*max_abs = json_number_value(json_object_get(met, "max_abs"));
	*max_rel = scale > 0 ? *max_abs / scale : (*max_abs > 0 ? INFINITY : 0);
	if (max_rel_lim >= 0 && !(*max_rel <= max_rel_lim))
		ok = 0;
	return ok;
}

/* JSON has no inf/nan: a value that is not finite is written as 1e300. */
static double finite_or_huge(double x)
{
	return isfinite(x) ? x : 1e300;
}

/* "nmse 3e-05 > 1e-07 (...); max_rel 2e-3 limit 1e-4" for a message. */
static void describe(json_t *d, double max_rel, double max_rel_lim, char *out, size_t n)
{
	char summary[256];

	cmp_summary(d, summary, sizeof(summary));
	snprintf(out, n, "%s; max_rel %.3g%s%.3g", summary, max_rel,
		 max_rel_lim >= 0 ? " limit " : " unchecked ", max_rel_lim >= 0 ? max_rel_lim : 0.0);
}

/* Compares one tensor; appends {tap, nmse, max_rel, ok} to layers. */
static int compare_one(const char *tap, const float *a, const float *b, int64_t dim, int64_t T,
		       const cmp_tolerance *tol, double max_rel_lim, json_t *layers,
		       struct verdict *v, json_t **first_details)
{
	json_t *d = NULL;
	double nmse, max_abs, max_rel;
	int ok = measure(a, b, dim, T, tol, max_rel_lim, &nmse, &max_abs, &max_rel, &d);
	char why[400];

	json_array_append_new(layers, json_pack("{s:s, s:f, s:f, s:f, s:b}", "tap", tap, "nmse",
						finite_or_huge(nmse), "max_rel",
						finite_or_huge(max_rel), "max_abs",
						finite_or_huge(max_abs), "ok", ok));
	if (!ok && !v->first_bad) {
		v->first_bad = tap;
		describe(d, max_rel, max_rel_lim, why, sizeof(why));
		snprintf(v->why, sizeof(v->why), "first diverging tap: %s (%s)", tap, why);
		*first_details = d;
		json_object_set_new(*first_details, "tap", json_string(tap));
		return ok;
	}
	json_decref(d);
	return ok;
}

/* ---- argmax and greedy ---------------------------------------------------- */

static int64_t argmax_row(const float *x, int64_t n, double *margin)
{
	int64_t b = 0, s = -1;

	for (int64_t i = 1; i < n; i++) {
		if (x[i] > x[b]) {
			s = b;
			b = i;
		} else if (s < 0 || x[i] > x[s]) {
			s = i;
		}
	}
	if (margin)
		*margin = s >= 0 ? (double)x[b] - x[s] : INFINITY;
	return b;
}

struct seq_result {
	int64_t pos0; /* position of the first row (the decode pass starts late) */
	int argmax_bad, argmax_exempt, greedy_bad_at;
	json_t *mismatches;
};

static void check_sequence(const float *ours, const float *gold, const int32_t *tokens,
			   int64_t T, int64_t n_prompt, int64_t V, double min_margin,
			   int64_t greedy_n, struct seq_result *sr)
{
	sr->mismatches = json_array();
	sr->greedy_bad_at = -1;
	for (int64_t t = 0; t < T; t++) {
		double margin;
		int64_t a = argmax_row(ours + t * V, V, NULL);
		int64_t g = argmax_row(gold + t * V, V, &margin);

		if (a != g && margin < min_margin) {
			sr->argmax_exempt++;
		} else if (a != g) {
			sr->argmax_bad++;
			json_array_append_new(sr->mismatches,
					      json_pack("{s:I, s:I, s:I, s:f}", "position",
							(json_int_t)(sr->pos0 + t),
							"ours", (json_int_t)a, "golden", (json_int_t)g,
							"golden_margin", margin));
		}
		/* Position t predicts token t+1; the continuation starts at n_prompt. */
		if (t + 1 >= n_prompt && t + 1 < T && t + 1 - n_prompt < greedy_n &&
		    a != tokens[t + 1] && sr->greedy_bad_at < 0)
			sr->greedy_bad_at = (int)(t + 1 - n_prompt);
	}
}

/* ---- the check ----------------------------------------------------------- */

struct ctx {
	gguf_file *g;
	infer_model *m;
	infer_session *s;
	struct taps taps;
	float *logits;
	json_t *details;
};

static int load_golden(struct ctx *x, const char *path, const int32_t **tokens, int64_t *T,
		       int64_t *n_prompt, int *llamacpp, struct check_result *r)
{
	infer_error e = { 0 };
	const gguf_tensor *tt;
	int64_t np;

	x->g = gguf_open(path, &e);
	if (!x->g) {
		check_result_set(r, CHECK_ERROR, "golden %s: %s", path, e.msg);
		return -1;
	}
	tt = gguf_find_tensor(x->g, "tokens");
	if (!tt || tt->type != 26 /* I32 */ || tt->n_dims != 1 || tt->ne[0] < 1 || !tt->data) {
		check_result_set(r, CHECK_ERROR, "golden %s: no 1-D I32 tensor 'tokens'", path);
		return -1;
	}
	*llamacpp = gguf_find_tensor(x->g, "act.embd") != NULL;
	if (gguf_get_int(x->g, *llamacpp ? "golden.n_prompt" : "n_prompt", &np, &e) || np < 1 ||
	    np > tt->ne[0]) {
		check_result_set(r, CHECK_ERROR, "golden %s: missing or bad prompt length (%s)", path,
				 *llamacpp ? "golden.n_prompt" : "n_prompt");
		return -1;
	}
	*tokens = tt->data;
	*T = tt->ne[0];
	*n_prompt = np;
	return 0;
}

/* A session of the check's options with room for the T golden tokens. */
static infer_session *new_session(const struct check *c, const infer_model *m,
				  const char *backend, int64_t T, infer_error *e)
{
	infer_session_opts o = { .backend = backend };

	o.n_threads = (int32_t)check_param_int(c, "threads", 0);
	o.n_ctx = (int32_t)T;
	o.ggml_act_rounding = json_is_true(json_object_get(c->params, "ggml_act_rounding"));
	return infer_session_new(m, &o, e);
}

/* Prompt as one batch, then one token per eval; logits for every position. */
static int run_model(struct ctx *x, const struct check *c, const char *backend,
		     const int32_t *tokens, int64_t T, int64_t n_prompt, struct check_result *r)
{
	const char *model = check_param_str(c, "model", NULL);
	infer_error e = { 0 };
	int64_t V;

	x->m = infer_model_load(model, &e);
	if (!x->m) {
		check_result_set(r, CHECK_ERROR, "model %s: %s", model, e.msg);
		return -1;
	}
	V = infer_model_hparams(x->m)->n_vocab;
	x->s = new_session(c, x->m, backend, T, &e);
	x->logits = malloc((size_t)(T * V) * sizeof(float));
	if (!x->s || !x->logits) {
		check_result_set(r, CHECK_ERROR, "session on %s: %s", backend,
				 x->s ? "out of memory" : e.msg);
		return -1;
	}
	x->taps.T = T;
	infer_session_set_tap(x->s, tap_cb, &x->taps);
	if (infer_session_eval(x->s, tokens, (int32_t)n_prompt, x->logits, 1, &e))
		goto fail;
	for (int64_t t = n_prompt; t < T; t++)
		if (infer_session_eval(x->s, tokens + t, 1, x->logits + t * V, 1, &e))
			goto fail;
	if (x->taps.oom) {
		check_result_set(r, CHECK_ERROR, "tap collection failed (out of memory or inconsistent widths)");
		return -1;
	}
	return 0;
fail:
	check_result_set(r, CHECK_ERROR, "eval: %s", e.msg);
	return -1;
}

/* Every golden activation must have met a tap: a golden tensor nobody
 * compared would be a silent pass. */
static int unmatched_golden(struct ctx *x, int llamacpp, int n_layer, char *which, size_t n)
{
	for (int64_t i = 0; i < gguf_n_tensors(x->g); i++) {
		const char *gn = gguf_tensor_at(x->g, i)->name;
		int found = 0;

		if (strncmp(gn, llamacpp ? "act." : "hidden.", llamacpp ? 4 : 7))
			continue;
		for (int k = 0; k < x->taps.n && !found; k++) {
			char want[96];

			golden_name(x->taps.v[k].name, llamacpp, n_layer, want, sizeof(want));
			found = !strcmp(want, gn);
		}
		if (!found) {
			snprintf(which, n, "%s", gn);
			return 1;
		}
	}
	return 0;
}

static int compare_taps(struct ctx *x, const struct check *c, int llamacpp, int64_t T,
			const cmp_tolerance *tol, struct verdict *v, struct check_result *r)
{
	int n_layer = infer_model_hparams(x->m)->n_layer;
	double max_rel = check_param_num(c, "max_rel", -1);
	json_t *layers = json_array(), *first = NULL;
	char gn[96];
	int all_ok = 1;

	json_object_set_new(x->details, "layers", layers);
	for (int k = 0; k < x->taps.n; k++) {
		const struct tap_buf *b = &x->taps.v[k];
		const gguf_tensor *gt;

		golden_name(b->name, llamacpp, n_layer, gn, sizeof(gn));
		gt = gn[0] ? gguf_find_tensor(x->g, gn) : NULL;
		if (!gt)
			continue; /* this golden does not record that tap */
		if (gt->type != 0 || gt->n_elements != b->dim * T || b->rows != T || !gt->data) {
			check_result_set(r, CHECK_ERROR,
					 "golden %s holds %lld elements of type %u; tap %s gives %lld x %lld F32",
					 gn, (long long)gt->n_elements, gt->type, b->name, (long long)T,
					 (long long)b->dim);
			return -1;
		}
		all_ok &= compare_one(b->name, b->data, gt->data, b->dim, T, tol, max_rel, layers, v,
				      &first);
	}
	if (first)
		json_object_set_new(x->details, "first_failure", first);
	if (unmatched_golden(x, llamacpp, n_layer, gn, sizeof(gn))) {
		check_result_set(r, CHECK_ERROR, "golden tensor %s matches no runtime tap", gn);
		return -1;
	}
	return all_ok;
}

static int compare_logits(struct ctx *x, const struct check *c, const int32_t *tokens,
			  int64_t T, int64_t n_prompt, const cmp_tolerance *tol,
			  struct verdict *v, struct check_result *r)
{
	const gguf_tensor *gl = gguf_find_tensor(x->g, "logits");
	int64_t V = infer_model_hparams(x->m)->n_vocab;
	int64_t greedy_n = check_param_int(c, "greedy_tokens", -1);
	struct seq_result sr = { 0 };
	json_t *layers = json_object_get(x->details, "layers"), *first = NULL;
	int ok;

	if (!gl || gl->type != 0 || gl->n_elements != V * T || !gl->data) {
		check_result_set(r, CHECK_ERROR, "golden has no F32 logits [%lld, %lld]", (long long)V,
				 (long long)T);
		return -1;
	}
	ok = compare_one("logits", x->logits, gl->data, V, T, tol, check_param_num(c, "max_rel", -1),
			 layers, v, &first);
	if (first)
		json_object_set_new(x->details, "first_failure", first);
	if (greedy_n < 0)
		greedy_n = T - n_prompt;
	check_sequence(x->logits, gl->data, tokens, T, n_prompt, V,
		       check_param_num(c, "argmax_min_margin", 0), greedy_n, &sr);
	json_object_set_new(x->details, "argmax",
			    json_pack("{s:I, s:i, s:i, s:o}", "positions", (json_int_t)T, "mismatches",
				      sr.argmax_bad, "exempt_small_margin", sr.argmax_exempt,
				      "mismatched", sr.mismatches));
	json_object_set_new(x->details, "greedy",
			    json_pack("{s:I, s:I, s:i}", "checked", (json_int_t)greedy_n,
				      "continuation", (json_int_t)(T - n_prompt), "first_mismatch",
				      sr.greedy_bad_at));
	if (!json_is_false(json_object_get(c->params, "argmax")) && sr.argmax_bad) {
		if (!v->first_bad) {
			v->first_bad = "argmax";
			snprintf(v->why, sizeof(v->why), "argmax differs at %d of %lld positions",
				 sr.argmax_bad, (long long)T);
		}
		ok = 0;
	}
	if (sr.greedy_bad_at >= 0) {
		if (!v->first_bad) {
			v->first_bad = "greedy";
			snprintf(v->why, sizeof(v->why), "greedy continuation differs at token %d",
				 sr.greedy_bad_at);
		}
		ok = 0;
	}
	return ok;
}

/* ---- the decode pass ------------------------------------------------------ */

/* How a decode-pass failure starts, so nobody takes it for the tapped pass. */
#define DECODE_PASS "decode pass (no taps, one token per eval)"

void (*activations_decode_hook)(float *logits, int64_t n_vocab, int64_t position);

/* The logits of positions n_prompt-1 .. T-1 ([S][V]) computed as generation
 * computes them: a fresh session with no tap, the prompt as one batch with
 * the last token's logits, then one token per eval. */
static int decode_eval(struct ctx *x, const struct check *c, const char *backend,
		       const int32_t *tokens, int64_t T, int64_t n_prompt, float *out,
		       struct check_result *r)
{
	int64_t V = infer_model_hparams(x->m)->n_vocab, S = T - n_prompt + 1;
	infer_error e = { 0 };
	infer_session *s = new_session(c, x->m, backend, T, &e);
	int rc;

	if (!s) {
		check_result_set(r, CHECK_ERROR, "decode pass: session on %s: %s", backend, e.msg);
		return -1;
	}
	rc = infer_session_eval(s, tokens, (int32_t)n_prompt, out, 0, &e);
	for (int64_t k = 1; k < S && !rc; k++)
		rc = infer_session_eval(s, tokens + n_prompt - 1 + k, 1, out + k * V, 0, &e);
	infer_session_free(s);
	if (rc) {
		check_result_set(r, CHECK_ERROR, "decode pass: eval: %s", e.msg);
		return -1;
	}
	for (int64_t k = 0; activations_decode_hook && k < S; k++)
		activations_decode_hook(out + k * V, V, n_prompt - 1 + k);
	return 0;
}

/* Each step's logits against the golden row of its position: per_step,
 * worst and first_failure go into dp; why names the first failing step. */
static int compare_steps(const float *ours, const float *gold, int64_t S, int64_t V,
			 int64_t pos0, const cmp_tolerance *tol, double max_rel_lim, json_t *dp,
			 char *why, size_t n)
{
	json_t *steps = json_array(), *d = NULL;
	int64_t worst = 0;
	double worst_nmse = -1, worst_rel = 0;
	char desc[400];
	int all_ok = 1;

	for (int64_t k = 0; k < S; k++) {
		double nmse, max_abs, max_rel;
		int ok = measure(ours + k * V, gold + k * V, V, 1, tol, max_rel_lim, &nmse, &max_abs,
				 &max_rel, &d);

		json_array_append_new(steps, json_pack("{s:I, s:I, s:f, s:f, s:f, s:b}", "step",
						       (json_int_t)k, "position", (json_int_t)(pos0 + k),
						       "nmse", finite_or_huge(nmse), "max_rel",
						       finite_or_huge(max_rel), "max_abs",
						       finite_or_huge(max_abs), "ok", ok));
		if (finite_or_huge(nmse) > worst_nmse) {
			worst = k;
			worst_nmse = finite_or_huge(nmse);
			worst_rel = finite_or_huge(max_rel);
		}
		if (ok || !all_ok) {
			json_decref(d);
			continue;
		}
		all_ok = 0;
		describe(d, max_rel, max_rel_lim, desc, sizeof(desc));
		snprintf(why, n, DECODE_PASS ": step %lld (position %lld) logits: %s", (long long)k,
			 (long long)(pos0 + k), desc);
		json_object_set_new(d, "step", json_integer(k));
		json_object_set_new(d, "position", json_integer(pos0 + k));
		json_object_set_new(dp, "first_failure", d);
	}
	json_object_set_new(dp, "per_step", steps);
	json_object_set_new(dp, "worst", json_pack("{s:I, s:I, s:f, s:f}", "step", (json_int_t)worst,
						   "position", (json_int_t)(pos0 + worst), "nmse",
						   worst_nmse, "max_rel", worst_rel));
	return all_ok;
}

/* All steps as one [V, S] tensor, aggregated as the tapped pass's logits
 * are: information beside the per-step verdict (a row's NMSE is larger than
 * a whole tensor's wherever that row's golden has less energy). */
static void all_steps(const float *ours, const float *gold, int64_t S, int64_t V,
		      const cmp_tolerance *tol, json_t *dp)
{
	json_t *d = NULL;
	double nmse, max_abs, max_rel;

	measure(ours, gold, V, S, tol, -1, &nmse, &max_abs, &max_rel, &d);
	json_decref(d);
	json_object_set_new(dp, "all_steps", json_pack("{s:f, s:f}", "nmse", finite_or_huge(nmse),
						       "max_rel", finite_or_huge(max_rel)));
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
	double m = 0;

	for (int64_t i = 0; i < n; i++)
		if (!(fabs((double)a[i] - b[i]) <= m))
			m = fabs((double)a[i] - b[i]);
	return m;
}

/* The argmax and greedy rules of the tapped pass on the decode pass's rows. */
static int judge_decode_sequence(const struct check *c, const float *ours, const float *gold,
				 const int32_t *tokens, int64_t S, int64_t pos0, int64_t V,
				 int64_t greedy_n, json_t *dp, char *why, size_t n, int ok)
{
	struct seq_result sr = { .pos0 = pos0 };

	/* Row k is position pos0 + k and predicts golden token pos0 + k + 1, so
	 * the rows form a sequence whose "prompt" is one token long. */
	check_sequence(ours, gold, tokens, S, 1, V, check_param_num(c, "argmax_min_margin", 0),
		       greedy_n, &sr);
	json_object_set_new(dp, "argmax",
			    json_pack("{s:I, s:i, s:i, s:o}", "positions", (json_int_t)S, "mismatches",
				      sr.argmax_bad, "exempt_small_margin", sr.argmax_exempt,
				      "mismatched", sr.mismatches));
	json_object_set_new(dp, "greedy", json_pack("{s:I, s:i}", "checked", (json_int_t)greedy_n,
						     "first_mismatch", sr.greedy_bad_at));
	if (!json_is_false(json_object_get(c->params, "argmax")) && sr.argmax_bad) {
		if (ok)
			snprintf(why, n, DECODE_PASS ": argmax differs at %d of %lld steps",
				 sr.argmax_bad, (long long)S);
		ok = 0;
	}
	if (sr.greedy_bad_at >= 0) {
		if (ok)
			snprintf(why, n, DECODE_PASS ": greedy continuation differs at token %d",
				 sr.greedy_bad_at);
		ok = 0;
	}
	return ok;
}

/* Runs and judges the decode pass into details.decode_pass: 1 pass, 0 fail,
 * -1 error (r set). Needs the golden logits compare_logits validated. */
static int decode_pass(struct ctx *x, const struct check *c, const char *backend,
		       const int32_t *tokens, int64_t T, int64_t n_prompt,
		       const cmp_tolerance *tol, char *why, size_t n, struct check_result *r)
{
	const float *gold = gguf_find_tensor(x->g, "logits")->data;
	int64_t V = infer_model_hparams(x->m)->n_vocab, S = T - n_prompt + 1, pos0 = n_prompt - 1;
	int64_t greedy_n = check_param_int(c, "greedy_tokens", -1);
	float *ours = malloc((size_t)(S * V) * sizeof(float));
	json_t *dp;
	int ok;

	if (!ours) {
		check_result_set(r, CHECK_ERROR, "decode pass: out of memory");
		return -1;
	}
	if (decode_eval(x, c, backend, tokens, T, n_prompt, ours, r)) {
		free(ours);
		return -1;
	}
	dp = json_object();
	json_object_set_new(x->details, "decode_pass", dp);
	json_object_set_new(dp, "evals", json_string("fresh session, no tap: prompt as one batch "
						     "(last-token logits), then one token per eval"));
	json_object_set_new(dp, "steps", json_integer(S));
	json_object_set_new(dp, "first_position", json_integer(pos0));
	json_object_set_new(dp, "nmse_limit", json_real(tol->nmse));
	/* How far the product path is from the tapped one: information, not a
	 * limit (the golden is the judge); 0 where both run the same code. */
	json_object_set_new(dp, "max_abs_vs_tapped",
			    json_real(max_abs_diff(ours, x->logits + pos0 * V, S * V)));
	ok = compare_steps(ours, gold + pos0 * V, S, V, pos0, tol,
			   check_param_num(c, "max_rel", -1), dp, why, n);
	all_steps(ours, gold + pos0 * V, S, V, tol, dp);
	ok = judge_decode_sequence(c, ours, gold + pos0 * V, tokens + pos0, S, pos0, V,
				   greedy_n < 0 ? T - n_prompt : greedy_n, dp, why, n, ok);
	json_object_set_new(dp, "ok", json_boolean(ok));
	free(ours);
	return ok;
}

/* The result line: what failed first in each pass, or the numbers of both. */
static void verdict(struct ctx *x, int tapped_ok, const struct verdict *v, int decode_ok,
		    const char *dwhy, struct check_result *r)
{
	json_t *dp = json_object_get(x->details, "decode_pass");
	json_t *worst = json_object_get(dp, "worst");
	char dec[160];

	if (!tapped_ok) {
		check_result_set(r, CHECK_FAIL, "%s%s%s", v->why, decode_ok ? "" : "; also ",
				 decode_ok ? "" : dwhy);
		return;
	}
	if (!decode_ok) {
		check_result_set(r, CHECK_FAIL, "%s", dwhy);
		return;
	}
	if (worst)
		snprintf(dec, sizeof(dec), "decode pass: %lld steps, worst step's logits nmse %.3g (limit %.3g)",
			 (long long)json_integer_value(json_object_get(dp, "steps")),
			 json_number_value(json_object_get(worst, "nmse")),
			 json_number_value(json_object_get(dp, "nmse_limit")));
	else
		snprintf(dec, sizeof(dec), "decode pass off (decode_pass: false)");
	check_result_set(r, CHECK_PASS, "%zu tensors within tolerance; argmax and greedy match; %s",
			 json_array_size(json_object_get(x->details, "layers")), dec);
}

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	struct ctx x = { 0 };
	struct verdict v = { 0 };
	const char *golden = check_param_str(c, "golden", NULL);
	const int32_t *tokens;
	int64_t T, n_prompt;
	cmp_tolerance tol;
	infer_error e = { 0 };
	int llamacpp, taps_ok, logits_ok, decode_ok;
	char dwhy[512] = "";

	x.details = json_object();
	r->details = x.details;
	if (cmp_tolerance_parse(c->tolerance, &tol, &e)) {
		check_result_set(r, CHECK_ERROR, "tolerance: %s", e.msg);
		return;
	}
	if (load_golden(&x, golden, &tokens, &T, &n_prompt, &llamacpp, r) ||
	    run_model(&x, c, backend, tokens, T, n_prompt, r))
		goto out;
	json_object_set_new(x.details, "golden_format", json_string(llamacpp ? "llama.cpp" : "transformers"));
	json_object_set_new(x.details, "n_tokens", json_integer(T));
	json_object_set_new(x.details, "n_prompt", json_integer(n_prompt));
	taps_ok = compare_taps(&x, c, llamacpp, T, &tol, &v, r);
	if (taps_ok < 0)
		goto out;
	logits_ok = compare_logits(&x, c, tokens, T, n_prompt, &tol, &v, r);
	if (logits_ok < 0)
		goto out;
	/* One session at a time: the decode pass opens its own. */
	infer_session_free(x.s);
	x.s = NULL;
	decode_ok = 1;
	if (json_is_false(json_object_get(c->params, "decode_pass")))
		json_object_set_new(x.details, "decode_pass",
				    json_pack("{s:s}", "skipped", "decode_pass: false in the spec"));
	else if ((decode_ok = decode_pass(&x, c, backend, tokens, T, n_prompt, &tol, dwhy,
					  sizeof(dwhy), r)) < 0)
		goto out;
	verdict(&x, taps_ok && logits_ok, &v, decode_ok, dwhy, r);
out:
	taps_free(&x.taps);
	free(x.logits);
	infer_session_free(x.s);
	infer_model_free(x.m);
	if (x.g)
		gguf_close(x.g);
}

static int validate(const json_t *params, const json_t *tolerance, infer_error *err)
{
	static const char *const known[] = { "model", "golden", "max_rel", "argmax",
					     "argmax_min_margin", "greedy_tokens", "threads",
					     "ggml_act_rounding", "decode_pass", NULL };
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)params, k, v) {
		int ok = 0;

		if (k[0] == '_' || !strcmp(k, "entry"))
			continue; /* set by the loader */
		for (int i = 0; known[i] && !ok; i++)
			ok = !strcmp(k, known[i]);
		if (!ok)
			return infer_error_set(err, INFER_E_FORMAT, -1, "unknown param '%s'", k);
	}
	if (!json_is_string(json_object_get(params, "model")) ||
	    !json_is_string(json_object_get(params, "golden")))
		return infer_error_set(err, INFER_E_FORMAT, -1, "params 'model' and 'golden' (paths) are required");
	if ((v = json_object_get(params, "argmax")) && !json_is_boolean(v))
		return infer_error_set(err, INFER_E_FORMAT, -1, "param 'argmax' must be true or false");
	if ((v = json_object_get(params, "ggml_act_rounding")) && !json_is_boolean(v))
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "param 'ggml_act_rounding' must be true or false");
	if ((v = json_object_get(params, "decode_pass")) && !json_is_boolean(v))
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "param 'decode_pass' must be true or false");
	if (!tolerance || !json_object_get(tolerance, "nmse"))
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "tolerance needs 'nmse' (applied to every tap and the logits)");
	return 0;
}

const struct check_kind check_kind_activations = {
	.name = "activations",
	.validate = validate,
	.run = run,
};
