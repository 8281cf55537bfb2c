/* The reference forward pass of a Qwen2 / Llama decoder, float32, on the CPU.
 *
 * For a batch of n tokens at positions pos..pos+n-1 (a whole prompt, or one
 * token while decoding):
 *
 *   x = token_embd[tokens]                                   "embd"
 *   for each layer:
 *     h = rmsnorm(x) * attn_norm                             "attn_norm-N"
 *     q = Wq h + bq, k = Wk h + bk, v = Wv h + bv
 *     q, k = rope(q), rope(k)                                "Qcur-N" "Kcur-N" "Vcur-N"
 *     cache[pos..] = k, v
 *     a = softmax(q k^T / sqrt(d), causal) v  per head (GQA) "kqv_out-N"
 *     x = x + Wo a                                           "ffn_inp-N"
 *     h = rmsnorm(x) * ffn_norm                              "ffn_norm-N"
 *     g, u = Wgate h, Wup h                                  "ffn_gate-N" "ffn_up-N"
 *     s = silu(g) * u                                        "ffn_swiglu-N"
 *     x = x + Wdown s                                        "ffn_out-N" "l_out-N"
 *   x = rmsnorm(x) * output_norm                             "result_norm"
 *   logits = Woutput x                                       "result_output"
 *
 * The tap names are llama.cpp's, so a dump from llama.cpp compares tap by tap.
 * Matmuls and attention heads are split over a thread pool; everything else
 * is cheap and stays on the calling thread. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "infer/quant.h"
#include "model_internal.h"
#include "ops_cpu.h"
#include "threadpool.h"

struct cpu_state {
	const infer_model *m;
	const infer_hparams *hp;
	int32_t n_ctx;
	int64_t q_dim, kv_dim;   /* n_head * head_dim, n_head_kv * head_dim */
	float *k_cache, *v_cache; /* [n_layer][n_ctx][kv_dim] */
	tpool *pool;
	int nth;
	float *rowbuf;           /* [nth][max_k]: one dequantized weight row per thread */
	int64_t max_k;
	float *scores;           /* [nth][n_ctx]: attention scores per thread */
	int ggml_act;            /* round matmul inputs as ggml does (session.h) */
	int32_t cap;             /* tokens the activation buffers below hold */
	float *x, *h, *q, *k, *v, *a, *o, *g, *u, *s, *out;
	float *xr;               /* [cap][max_k]: rounded matmul input (ggml_act) */
	int32_t *pos;
};

/* ---- threaded kernels ---------------------------------------------------- */

struct matmul_job {
	struct cpu_state *st;
	const infer_matrix *w;
	const float *x;
	int64_t n;
	float *y;
	int rc[64];
	infer_error err[64];
};

static void matmul_worker(void *arg, int ith, int nth)
{
	struct matmul_job *j = arg;
	int64_t M = j->w->ne1;
	int64_t m0 = M * ith / nth, m1 = M * (ith + 1) / nth;

	j->rc[ith] = cpu_mul_mat_rows(j->w->data, j->w->type, j->w->ne0, M, m0, m1, j->x, j->n,
				      j->y, j->st->rowbuf + ith * j->st->max_k, j->w->name,
				      &j->err[ith]);
}

/* y[n][M] = W x[n][K], rows of W split evenly over the threads. */
static int matmul(struct cpu_state *st, const infer_matrix *w, const float *x, int64_t n,
		  float *y, infer_error *err)
{
	struct matmul_job j = { .st = st, .w = w, .x = x, .n = n, .y = y };

	if (st->ggml_act) {
		int rc = cpu_round_activations(w->type, x, st->xr, w->ne0, n, err);

		if (rc)
			return rc;
		j.x = st->xr;
	}

	tpool_run(st->pool, matmul_worker, &j);
	for (int i = 0; i < st->nth; i++) {
		if (j.rc[i]) {
			if (err)
				*err = j.err[i];
			return j.rc[i];
		}
	}
	return 0;
}

struct attn_job {
	struct cpu_state *st;
	const float *q, *k, *v;
	float *out;
	int64_t n, pos;
	int rc[64];
	infer_error err[64];
};

static void attn_worker(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	const infer_hparams *hp = j->st->hp;
	int64_t h0 = (int64_t)hp->n_head * ith / nth, h1 = (int64_t)hp->n_head * (ith + 1) / nth;

	j->rc[ith] = cpu_attention_heads(j->q, j->k, j->v, j->out, hp->head_dim, hp->n_head,
					 hp->n_head_kv, j->n, j->pos + j->n, j->pos,
					 1.0f / sqrtf((float)hp->head_dim), h0, h1,
					 j->st->scores + (int64_t)ith * j->st->n_ctx, &j->err[ith]);
}

static int attention(struct cpu_state *st, const float *q, const float *kc, const float *vc,
		     float *out, int64_t n, int64_t pos, infer_error *err)
{
	struct attn_job j = { .st = st, .q = q, .k = kc, .v = vc, .out = out, .n = n, .pos = pos };

	tpool_run(st->pool, attn_worker, &j);
	for (int i = 0; i < st->nth; i++) {
		if (j.rc[i]) {
			if (err)
				*err = j.err[i];
			return j.rc[i];
		}
	}
	return 0;
}

/* ---- small helpers ------------------------------------------------------- */

static void add_bias(float *y, const infer_vector *b, int64_t n)
{
	if (!b->data)
		return;
	for (int64_t t = 0; t < n; t++)
		for (int64_t i = 0; i < b->n; i++)
			y[t * b->n + i] += b->data[i];
}

static void add(float *x, const float *y, int64_t count)
{
	for (int64_t i = 0; i < count; i++)
		x[i] += y[i];
}

struct tapper {
	infer_tap_fn fn;
	void *user;
	int64_t n;
};

static void tap(const struct tapper *tp, const char *name, int il, const float *data, int64_t dim)
{
	char full[64];

	if (!tp->fn)
		return;
	if (il >= 0) {
		snprintf(full, sizeof(full), "%s-%d", name, il);
		name = full;
	}
	tp->fn(tp->user, name, data, tp->n, dim);
}

static int embed(struct cpu_state *st, const int32_t *tokens, int32_t n, infer_error *err)
{
	const infer_matrix *e = &st->m->tok_embd;

	for (int32_t t = 0; t < n; t++) {
		const uint8_t *row = (const uint8_t *)e->data + (uint64_t)tokens[t] * e->row_bytes;
		int rc = infer_dequantize(e->type, row, st->x + (int64_t)t * e->ne0, e->ne0, e->name,
					  err);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- one decoder layer ---------------------------------------------------- */

static int layer(struct cpu_state *st, int il, int32_t n, int32_t pos, const struct tapper *tp,
		 infer_error *err)
{
	const infer_hparams *hp = st->hp;
	const infer_layer *L = &st->m->layers[il];
	int64_t E = hp->n_embd, F = hp->n_ff;
	float *kc = st->k_cache + (int64_t)il * st->n_ctx * st->kv_dim;
	float *vc = st->v_cache + (int64_t)il * st->n_ctx * st->kv_dim;
	int rc;

	/* Attention block. */
	cpu_rms_norm_mul(st->x, L->attn_norm.data, st->h, E, n, hp->norm_eps, NULL);
	tap(tp, "attn_norm", il, st->h, E);
	if ((rc = matmul(st, &L->wq, st->h, n, st->q, err)) ||
	    (rc = matmul(st, &L->wk, st->h, n, st->k, err)) ||
	    (rc = matmul(st, &L->wv, st->h, n, st->v, err)))
		return rc;
	add_bias(st->q, &L->bq, n);
	add_bias(st->k, &L->bk, n);
	add_bias(st->v, &L->bv, n);
	cpu_rope(st->q, st->pos, hp->head_dim, hp->n_head, n, hp->n_rot, hp->rope_freq_base,
		 hp->rope_neox, NULL);
	cpu_rope(st->k, st->pos, hp->head_dim, hp->n_head_kv, n, hp->n_rot, hp->rope_freq_base,
		 hp->rope_neox, NULL);
	tap(tp, "Qcur", il, st->q, st->q_dim);
	tap(tp, "Kcur", il, st->k, st->kv_dim);
	tap(tp, "Vcur", il, st->v, st->kv_dim);
	memcpy(kc + (int64_t)pos * st->kv_dim, st->k, (size_t)(n * st->kv_dim) * sizeof(float));
	memcpy(vc + (int64_t)pos * st->kv_dim, st->v, (size_t)(n * st->kv_dim) * sizeof(float));
	if ((rc = attention(st, st->q, kc, vc, st->a, n, pos, err)))
		return rc;
	tap(tp, "kqv_out", il, st->a, st->q_dim);
	if ((rc = matmul(st, &L->wo, st->a, n, st->o, err)))
		return rc;
	add(st->x, st->o, n * E);
	tap(tp, "ffn_inp", il, st->x, E);

	/* Feed-forward block (SwiGLU). */
	cpu_rms_norm_mul(st->x, L->ffn_norm.data, st->h, E, n, hp->norm_eps, NULL);
	tap(tp, "ffn_norm", il, st->h, E);
	if ((rc = matmul(st, &L->ffn_gate, st->h, n, st->g, err)) ||
	    (rc = matmul(st, &L->ffn_up, st->h, n, st->u, err)))
		return rc;
	tap(tp, "ffn_gate", il, st->g, F);
	tap(tp, "ffn_up", il, st->u, F);
	cpu_swiglu(st->g, st->u, st->s, n * F, NULL);
	tap(tp, "ffn_swiglu", il, st->s, F);
	if ((rc = matmul(st, &L->ffn_down, st->s, n, st->o, err)))
		return rc;
	tap(tp, "ffn_out", il, st->o, E);
	add(st->x, st->o, n * E);
	tap(tp, "l_out", il, st->x, E);
	return 0;
}

/* ---- the whole pass ------------------------------------------------------ */

static int ensure_capacity(struct cpu_state *st, int32_t n, infer_error *err);

static int cpu_eval(void *state, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
		    int all_logits, infer_tap_fn tap_fn, void *tap_user, infer_error *err)
{
	struct cpu_state *st = state;
	const infer_hparams *hp = st->hp;
	struct tapper tp = { tap_fn, tap_user, n };
	int64_t E = hp->n_embd, V = hp->n_vocab;
	int rc;

	if ((rc = ensure_capacity(st, n, err)) || (rc = embed(st, tokens, n, err)))
		return rc;
	for (int32_t t = 0; t < n; t++)
		st->pos[t] = pos + t;
	tap(&tp, "embd", -1, st->x, E);
	for (int il = 0; il < hp->n_layer; il++)
		if ((rc = layer(st, il, n, pos, &tp, err)))
			return rc;
	cpu_rms_norm_mul(st->x, st->m->output_norm.data, st->h, E, n, hp->norm_eps, NULL);
	tap(&tp, "result_norm", -1, st->h, E);
	if (!logits && !tap_fn)
		return 0;
	/* Only the last token's logits are needed unless someone looks at all. */
	if (all_logits || tap_fn) {
		float *dst = logits && all_logits ? logits : st->out;

		if ((rc = matmul(st, &st->m->output, st->h, n, dst, err)))
			return rc;
		tap(&tp, "result_output", -1, dst, V);
		if (logits && !all_logits)
			memcpy(logits, dst + (int64_t)(n - 1) * V, (size_t)V * sizeof(float));
		return 0;
	}
	return matmul(st, &st->m->output, st->h + (int64_t)(n - 1) * E, 1, logits, err);
}

/* ---- state --------------------------------------------------------------- */

static void free_activations(struct cpu_state *st)
{
	float **bufs[] = { &st->x, &st->h, &st->q, &st->k, &st->v, &st->a,
			   &st->o, &st->g, &st->u, &st->s, &st->out, &st->xr };

	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
		free(*bufs[i]);
		*bufs[i] = NULL;
	}
	free(st->pos);
	st->pos = NULL;
	st->cap = 0;
}

/* Activation buffers grow to the largest batch seen (a prompt), then stay. */
static int ensure_capacity(struct cpu_state *st, int32_t n, infer_error *err)
{
	const infer_hparams *hp = st->hp;
	int64_t E = hp->n_embd, F = hp->n_ff;
	size_t f = sizeof(float);

	if (n <= st->cap)
		return 0;
	free_activations(st);
	st->x = malloc(n * E * f);
	st->h = malloc(n * E * f);
	st->q = malloc(n * st->q_dim * f);
	st->k = malloc(n * st->kv_dim * f);
	st->v = malloc(n * st->kv_dim * f);
	st->a = malloc(n * st->q_dim * f);
	st->o = malloc(n * E * f);
	st->g = malloc(n * F * f);
	st->u = malloc(n * F * f);
	st->s = malloc(n * F * f);
	st->out = malloc(n * (int64_t)hp->n_vocab * f);
	st->pos = malloc(n * sizeof(int32_t));
	st->xr = st->ggml_act ? malloc(n * st->max_k * f) : NULL;
	if (!st->x || !st->h || !st->q || !st->k || !st->v || !st->a || !st->o || !st->g ||
	    !st->u || !st->s || !st->out || !st->pos || (st->ggml_act && !st->xr)) {
		free_activations(st);
		return infer_error_set(err, INFER_E_NOMEM, -1,
				       "cpu: out of memory for activations of %d tokens", n);
	}
	st->cap = n;
	return 0;
}

static void cpu_free(void *state)
{
	struct cpu_state *st = state;

	if (!st)
		return;
	free_activations(st);
	tpool_free(st->pool);
	free(st->k_cache);
	free(st->v_cache);
	free(st->rowbuf);
	free(st->scores);
	free(st);
}

static void *cpu_init(const infer_model *m, const infer_forward_opts *o, infer_error *err)
{
	struct cpu_state *st = calloc(1, sizeof(*st));
	const infer_hparams *hp = &m->hp;
	size_t cache;

	if (!st) {
		infer_error_set(err, INFER_E_NOMEM, -1, "cpu: out of memory");
		return NULL;
	}
	st->m = m;
	st->hp = hp;
	st->n_ctx = o->n_ctx;
	st->ggml_act = o->ggml_act_rounding;
	st->q_dim = (int64_t)hp->n_head * hp->head_dim;
	st->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	st->max_k = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
	if (st->q_dim > st->max_k)
		st->max_k = st->q_dim;
	/* 64 threads is the most the job structs track; more buys nothing here. */
	st->pool = tpool_new(o->n_threads > 64 ? 64 : o->n_threads);
	if (!st->pool)
		goto nomem;
	st->nth = tpool_size(st->pool);
	cache = (size_t)hp->n_layer * (size_t)st->n_ctx * (size_t)st->kv_dim * sizeof(float);
	st->k_cache = malloc(cache);
	st->v_cache = malloc(cache);
	st->rowbuf = malloc((size_t)st->nth * (size_t)st->max_k * sizeof(float));
	st->scores = malloc((size_t)st->nth * (size_t)st->n_ctx * sizeof(float));
	if (!st->k_cache || !st->v_cache || !st->rowbuf || !st->scores)
		goto nomem;
	return st;
nomem:
	cpu_free(st);
	infer_error_set(err, INFER_E_NOMEM, -1, "cpu: out of memory for a KV cache of %d positions",
			o->n_ctx);
	return NULL;
}

const infer_forward infer_forward_cpu = {
	.backend = "cpu",
	.init = cpu_init,
	.eval = cpu_eval,
	.reset = NULL,
	.free = cpu_free,
	.device_bytes = NULL,
	.kernel_launches = NULL,
};
