/* kernel, random mode: one op of a backend's infer_ops on seeded random
 * inputs of a stated shape (Qwen2.5-0.5B's in specs/kernels.yaml), against
 * a reference computed here in double precision from the op's formula
 * (backend.h). No reference data is read, so these checks run everywhere.
 *
 * Inputs: activations, norm weights, q/k/v are N(0,1) (scaled where the
 * op needs a spread, e.g. logits). mul_mat weights are uniform floats of
 * unit variance, quantized row by row with infer_quantize; the reference dequantizes them
 * with infer_dequantize (the CPU table, bit-exact with ggml per
 * ../shared/conformance/dequant) and accumulates in double, so the only
 * error a correct backend shows is its own float arithmetic.
 *
 * Every output buffer starts as NaN (an element never written cannot
 * pass) and is followed by a guard region that must come back untouched. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks/kernel_random.h"
#include "infer/quant.h"

#define GUARD 256           /* floats after every output */
#define MAX_ELEMS (1LL << 28) /* per tensor: a typo in a shape is an error, not an OOM */
#define TWO_PI 6.283185307179586476925

struct rparams {
	const struct rop *op;
	uint64_t seed;
	uint32_t wtype;
	int64_t K, M, N, n, rows, head_dim, n_head, n_head_kv, n_tokens, n_kv, n_rot, pos0;
	double eps, freq_base, scale;
};

struct rop {
	const char *name;
	const char *keys;     /* allowed keys besides op and seed, space separated */
	const char *required; /* the ones without a default */
	int (*run)(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
		   infer_error *err);
};

/* ---- seeded normal numbers (splitmix64 + Box-Muller) ------------------- */

struct rng {
	uint64_t s;
	int have;
	double spare;
};

static uint64_t rng_u64(struct rng *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* (0, 1]: never 0, so log() below is finite. */
static double rng_unit(struct rng *g)
{
	return ((rng_u64(g) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static double rng_normal(struct rng *g)
{
	double r, t;

	if (g->have) {
		g->have = 0;
		return g->spare;
	}
	r = sqrt(-2.0 * log(rng_unit(g)));
	t = TWO_PI * rng_unit(g);
	g->spare = r * sin(t);
	g->have = 1;
	return r * cos(t);
}

/* Uniform on [-sqrt 3, sqrt 3): unit variance like the normals, two values
 * per draw and no libm (the LM head needs 136M weights). */
static void rng_uniform2(struct rng *g, float *a, float *b)
{
	uint64_t z = rng_u64(g);
	const double s = 1.7320508075688772 / 2147483648.0;

	*a = (float)(((double)(uint32_t)z - 2147483648.0) * s);
	*b = (float)(((double)(uint32_t)(z >> 32) - 2147483648.0) * s);
}

/* Each tensor has its own stream, so adding one does not change the others. */
static void rng_init(struct rng *g, uint64_t seed, uint64_t stream)
{
	g->s = seed * 0x2545f4914f6cdd1dULL + stream * 0x9e3779b97f4a7c15ULL;
	g->have = 0;
	rng_u64(g);
}

static float *normal_buffer(uint64_t seed, uint64_t stream, int64_t n, double mean, double sd)
{
	float *x = malloc((size_t)n * sizeof(float));
	struct rng g;
	int64_t i;

	rng_init(&g, seed, stream);
	for (i = 0; x && i < n; i++)
		x[i] = (float)(mean + sd * rng_normal(&g));
	return x;
}

/* ---- output buffers with a guard region --------------------------------- */

static const uint32_t guard_bits = 0x7fc0dead; /* a NaN no op computes */

static float *out_buffer(int64_t n)
{
	float *y = malloc((size_t)(n + GUARD) * sizeof(float));
	int64_t i;

	for (i = 0; y && i < n; i++)
		y[i] = NAN;
	for (i = 0; y && i < GUARD; i++)
		memcpy(&y[n + i], &guard_bits, 4);
	return y;
}

/* Index of the first guard float that changed, or -1. */
static int64_t guard_broken(const float *y, int64_t n)
{
	int64_t i;

	for (i = 0; i < GUARD; i++)
		if (memcmp(&y[n + i], &guard_bits, 4))
			return i;
	return -1;
}

/* ---- ops: inputs, backend call, double reference ----------------------- */

static int nomem(infer_error *err)
{
	return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
}

/* Weights are made and quantized one row at a time: the LM head (151936 x
 * 896) never exists as floats. */
static int rand_mul_mat(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
			infer_error *err)
{
	uint64_t rb = infer_row_size(p->wtype, p->K);
	unsigned char *w = malloc((size_t)(rb * p->M));
	float *x = normal_buffer(p->seed, 2, p->K * p->N, 0, 1), *row = malloc((size_t)p->K * sizeof(float));
	struct rng g;
	int64_t m, k, c;
	int rc = 0;

	*n = p->M * p->N;
	*y = out_buffer(*n);
	*ref = malloc((size_t)*n * sizeof(double));
	if (!w || !x || !row || !*y || !*ref) {
		rc = nomem(err);
		goto out;
	}
	rng_init(&g, p->seed, 1);
	for (m = 0; m < p->M && !rc; m++) {
		for (k = 0; k + 1 < p->K; k += 2)
			rng_uniform2(&g, &row[k], &row[k + 1]);
		if (k < p->K) { /* odd K (f32, f16: blocks of 1) */
			float spare;

			rng_uniform2(&g, &row[k], &spare);
		}
		rc = infer_quantize(p->wtype, row, w + m * rb, p->K, "random weight", err);
	}
	if (rc)
		goto out;
	if (ops->mul_mat(w, p->wtype, p->K, p->M, x, p->N, *y, err)) {
		rc = -1;
		goto out;
	}
	for (m = 0; m < p->M && !rc; m++) {
		rc = infer_dequantize(p->wtype, w + m * rb, row, p->K, "random weight", err);
		for (c = 0; c < p->N && !rc; c++) {
			const float *xc = x + c * p->K;
			double s = 0;

			for (k = 0; k < p->K; k++)
				s += (double)row[k] * xc[k];
			(*ref)[c * p->M + m] = s;
		}
	}
out:
	free(w);
	free(x);
	free(row);
	return rc;
}

static int rand_rms_norm(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
			 infer_error *err)
{
	float *x = normal_buffer(p->seed, 1, p->n * p->rows, 0, 1);
	float *w = normal_buffer(p->seed, 2, p->n, 0, 1);
	int64_t r, i;
	int rc = 0;

	*n = p->n * p->rows;
	*y = out_buffer(*n);
	*ref = malloc((size_t)*n * sizeof(double));
	if (!x || !w || !*y || !*ref) {
		rc = nomem(err);
		goto out;
	}
	if (ops->rms_norm_mul(x, w, *y, p->n, p->rows, (float)p->eps, err)) {
		rc = -1;
		goto out;
	}
	for (r = 0; r < p->rows; r++) {
		const float *xr = x + r * p->n;
		double ss = 0, inv;

		for (i = 0; i < p->n; i++)
			ss += (double)xr[i] * xr[i];
		/* eps is float in the ops contract: use the value the backend got. */
		inv = 1.0 / sqrt(ss / p->n + (double)(float)p->eps);
		for (i = 0; i < p->n; i++)
			(*ref)[r * p->n + i] = xr[i] * inv * w[i];
	}
out:
	free(x);
	free(w);
	return rc;
}

/* x[t][h][d]; theta = pos * base^(-2i / n_rot), pairs (i, i + n_rot/2) for
 * NEOX, (2i, 2i + 1) otherwise; dims from n_rot on pass through. */
static void rope_ref(const struct rparams *p, int neox, const float *x, const int32_t *pos, double *ref)
{
	int64_t t, h, i, half = p->n_rot / 2;
	double base = (double)(float)p->freq_base;

	for (t = 0; t < p->n_tokens; t++)
		for (h = 0; h < p->n_head; h++) {
			const float *v = x + (t * p->n_head + h) * p->head_dim;
			double *o = ref + (t * p->n_head + h) * p->head_dim;

			for (i = 0; i < p->head_dim; i++)
				o[i] = v[i];
			for (i = 0; i < half; i++) {
				double th = pos[t] * pow(base, -2.0 * (double)i / (double)p->n_rot);
				int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;

				o[a] = v[a] * cos(th) - v[b] * sin(th);
				o[b] = v[a] * sin(th) + v[b] * cos(th);
			}
		}
}

static int rand_rope(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
		     infer_error *err)
{
	int neox = !strcmp(p->op->name, "rope_neox");
	float *x;
	int32_t *pos = malloc((size_t)p->n_tokens * sizeof(int32_t));
	int64_t t;
	int rc = 0;

	*n = p->head_dim * p->n_head * p->n_tokens;
	x = normal_buffer(p->seed, 1, *n, 0, 1);
	*y = out_buffer(*n);
	*ref = malloc((size_t)*n * sizeof(double));
	if (!x || !pos || !*y || !*ref) {
		rc = nomem(err);
		goto out;
	}
	for (t = 0; t < p->n_tokens; t++)
		pos[t] = (int32_t)(p->pos0 + t);
	rope_ref(p, neox, x, pos, *ref);
	/* rope works in place: hand it the guarded buffer. */
	memcpy(*y, x, (size_t)*n * sizeof(float));
	if (ops->rope(*y, pos, p->head_dim, p->n_head, p->n_tokens, p->n_rot, (float)p->freq_base, neox, err))
		rc = -1;
out:
	free(x);
	free(pos);
	return rc;
}

/* Row r is the query at position n - rows + r of a causal prefill at the
 * end of an n-long cache: it sees keys 0..that position. */
static int rand_softmax(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
			infer_error *err)
{
	float *x = normal_buffer(p->seed, 1, p->n * p->rows, 0, 8);
	int32_t *qp = malloc((size_t)p->rows * sizeof(int32_t));
	float sc = (float)p->scale;
	int64_t r, i;
	int rc = 0;

	*n = p->n * p->rows;
	*y = out_buffer(*n);
	*ref = malloc((size_t)*n * sizeof(double));
	if (!x || !qp || !*y || !*ref) {
		rc = nomem(err);
		goto out;
	}
	for (r = 0; r < p->rows; r++)
		qp[r] = (int32_t)(p->n - p->rows + r);
	if (ops->softmax(x, *y, p->n, p->rows, sc, qp, err)) {
		rc = -1;
		goto out;
	}
	for (r = 0; r < p->rows; r++) {
		const float *xr = x + r * p->n;
		double *o = *ref + r * p->n, mx = -INFINITY, s = 0;

		for (i = 0; i <= qp[r]; i++)
			mx = fmax(mx, (double)xr[i] * sc);
		for (i = 0; i < p->n; i++) {
			o[i] = i <= qp[r] ? exp((double)xr[i] * sc - mx) : 0.0;
			s += o[i];
		}
		for (i = 0; i < p->n; i++)
			o[i] /= s;
	}
out:
	free(x);
	free(qp);
	return rc;
}

static int rand_swiglu(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
		       infer_error *err)
{
	float *g = normal_buffer(p->seed, 1, p->n, 0, 3), *u = normal_buffer(p->seed, 2, p->n, 0, 1);
	int64_t i;
	int rc = 0;

	*n = p->n;
	*y = out_buffer(*n);
	*ref = malloc((size_t)*n * sizeof(double));
	if (!g || !u || !*y || !*ref) {
		rc = nomem(err);
		goto out;
	}
	if (ops->swiglu(g, u, *y, p->n, err)) {
		rc = -1;
		goto out;
	}
	for (i = 0; i < p->n; i++)
		(*ref)[i] = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
out:
	free(g);
	free(u);
	return rc;
}

/* One query row of causal GQA attention in double. */
static void attn_row(const struct rparams *p, const float *q, const float *k, const float *v, int64_t hk,
		     int64_t last, double *s, double *o)
{
	int64_t j, d, hd = p->head_dim, stride = p->n_head_kv * hd;
	double mx = -INFINITY, sum = 0;
	float sc = (float)(1.0 / sqrt((double)hd));

	for (j = 0; j <= last; j++) {
		const float *kj = k + j * stride + hk * hd;
		double dot = 0;

		for (d = 0; d < hd; d++)
			dot += (double)q[d] * kj[d];
		s[j] = dot * sc;
		mx = fmax(mx, s[j]);
	}
	for (d = 0; d < hd; d++)
		o[d] = 0;
	for (j = 0; j <= last; j++) {
		const float *vj = v + j * stride + hk * hd;
		double e = exp(s[j] - mx);

		sum += e;
		for (d = 0; d < hd; d++)
			o[d] += e * vj[d];
	}
	for (d = 0; d < hd; d++)
		o[d] /= sum;
}

/* The n_tokens queries are the last positions of an n_kv-long cache
 * (prefill of a chunk; n_tokens = 1 is a decode step). */
static int rand_attention(const struct rparams *p, const infer_ops *ops, float **y, double **ref, int64_t *n,
			  infer_error *err)
{
	int64_t hd = p->head_dim, nkv = p->n_kv * p->n_head_kv * hd, fq = p->n_kv - p->n_tokens, t, h;
	float *q, *k = normal_buffer(p->seed, 2, nkv, 0, 1), *v = normal_buffer(p->seed, 3, nkv, 0, 1);
	double *s = malloc((size_t)p->n_kv * sizeof(double));
	int rc = 0;

	*n = hd * p->n_head * p->n_tokens;
	q = normal_buffer(p->seed, 1, *n, 0, 1);
	*y = out_buffer(*n);
	*ref = malloc((size_t)*n * sizeof(double));
	if (!q || !k || !v || !s || !*y || !*ref) {
		rc = nomem(err);
		goto out;
	}
	if (ops->attention(q, k, v, *y, hd, p->n_head, p->n_head_kv, p->n_tokens, p->n_kv, fq,
			   (float)(1.0 / sqrt((double)hd)), err)) {
		rc = -1;
		goto out;
	}
	for (t = 0; t < p->n_tokens; t++)
		for (h = 0; h < p->n_head; h++)
			attn_row(p, q + (t * p->n_head + h) * hd, k, v, h / (p->n_head / p->n_head_kv), fq + t, s,
				 *ref + (t * p->n_head + h) * hd);
out:
	free(q);
	free(k);
	free(v);
	free(s);
	return rc;
}

static const struct rop rops[] = {
	{ "mul_mat", "weight_type K M N", "weight_type K M N", rand_mul_mat },
	{ "rms_norm_mul", "n rows eps", "n rows", rand_rms_norm },
	{ "rope_neox", "head_dim n_head n_tokens n_rot freq_base pos0", "head_dim n_head n_tokens", rand_rope },
	{ "rope_norm", "head_dim n_head n_tokens n_rot freq_base pos0", "head_dim n_head n_tokens", rand_rope },
	{ "softmax", "n rows scale", "n rows", rand_softmax },
	{ "swiglu", "n", "n", rand_swiglu },
	{ "attention_gqa", "head_dim n_head n_head_kv n_tokens n_kv", "head_dim n_head n_head_kv n_tokens n_kv",
	  rand_attention },
};

#define N_ROPS (sizeof(rops) / sizeof(rops[0]))

/* ---- parameters ---------------------------------------------------------- */

/* 1 when word is one of the space-separated words of list. */
static int in_list(const char *list, const char *word)
{
	size_t n = strlen(word);

	while (*list) {
		if (!strncmp(list, word, n) && (list[n] == ' ' || !list[n]))
			return 1;
		list = strchr(list, ' ');
		if (!list)
			return 0;
		list++;
	}
	return 0;
}

static int64_t *int_slot(struct rparams *p, const char *key)
{
	static const struct { const char *name; size_t off; } slots[] = {
		{ "K", offsetof(struct rparams, K) },		{ "M", offsetof(struct rparams, M) },
		{ "N", offsetof(struct rparams, N) },		{ "n", offsetof(struct rparams, n) },
		{ "rows", offsetof(struct rparams, rows) },	{ "head_dim", offsetof(struct rparams, head_dim) },
		{ "n_head", offsetof(struct rparams, n_head) }, { "n_head_kv", offsetof(struct rparams, n_head_kv) },
		{ "n_tokens", offsetof(struct rparams, n_tokens) }, { "n_kv", offsetof(struct rparams, n_kv) },
		{ "n_rot", offsetof(struct rparams, n_rot) },	{ "pos0", offsetof(struct rparams, pos0) },
	};
	size_t i;

	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
		if (!strcmp(slots[i].name, key))
			return (int64_t *)((char *)p + slots[i].off);
	return NULL;
}

static int set_key(struct rparams *p, const char *key, const json_t *v, infer_error *err)
{
	int64_t *slot = int_slot(p, key);
	double d = json_number_value(v);

	if (!strcmp(key, "weight_type")) {
		const infer_type_traits *t = infer_type_by_name(json_string_value(v) ? json_string_value(v) : "");

		if (!t)
			return infer_error_set(err, INFER_E_ARG, -1, "random.weight_type: unknown type '%s'",
					       json_string_value(v) ? json_string_value(v) : "(not a string)");
		/* Random weights need an encoder; the grid i-quants have none. */
		if (!t->from_float || !t->to_float)
			return infer_error_set(err, INFER_E_ARG, -1,
					       "random.weight_type: %s (type id %u) has no quantizer", t->name, t->id);
		p->wtype = t->id;
		return 0;
	}
	if (!json_is_number(v))
		return infer_error_set(err, INFER_E_ARG, -1, "random.%s: must be a number", key);
	if (!slot) { /* eps, freq_base, scale */
		if (!(d > 0) || !isfinite(d))
			return infer_error_set(err, INFER_E_ARG, -1, "random.%s: must be a positive number", key);
		*(!strcmp(key, "eps") ? &p->eps : !strcmp(key, "scale") ? &p->scale : &p->freq_base) = d;
		return 0;
	}
	if (d != floor(d) || d < (strcmp(key, "pos0") ? 1 : 0) || d > (double)MAX_ELEMS)
		return infer_error_set(err, INFER_E_ARG, -1, "random.%s: must be an integer in [%d, 2^28]", key,
				       strcmp(key, "pos0") ? 1 : 0);
	*slot = (int64_t)d;
	return 0;
}

/* a * b * c > MAX_ELEMS, in double: each factor is <= 2^28, the product
 * of three could overflow int64. */
static int too_big(int64_t a, int64_t b, int64_t c)
{
	return (double)a * (double)b * (double)c > (double)MAX_ELEMS;
}

static int shape_error(infer_error *err, const char *op, const char *why)
{
	return infer_error_set(err, INFER_E_ARG, -1, "random (%s): %s", op, why);
}

/* Constraints between keys, and sizes below MAX_ELEMS. */
static int check_shape(const struct rparams *p, infer_error *err)
{
	const char *op = p->op->name;

	if (p->op->run == rand_mul_mat) {
		const infer_type_traits *t = infer_type_traits_get(p->wtype);

		if (p->K % t->block_size)
			return infer_error_set(err, INFER_E_ARG, -1,
					       "random.K: %lld is not a multiple of %s's block of %u",
					       (long long)p->K, t->name, t->block_size);
		if (too_big(p->K, p->M, 1) || too_big(p->K, p->N, 1) || too_big(p->M, p->N, 1))
			return shape_error(err, op, "K x M, K x N or M x N too large");
	}
	if (p->op->run == rand_rms_norm || p->op->run == rand_softmax) {
		if (too_big(p->n, p->rows, 1))
			return shape_error(err, op, "n x rows too large");
		if (p->op->run == rand_softmax && p->rows > p->n)
			return shape_error(err, op, "rows must be <= n (row r sees positions 0..n-rows+r)");
	}
	if (p->op->run == rand_rope) {
		if (p->n_rot % 2 || p->n_rot > p->head_dim)
			return shape_error(err, op, "n_rot must be even and <= head_dim");
		if (too_big(p->head_dim, p->n_head, p->n_tokens) || p->pos0 + p->n_tokens > INT32_MAX)
			return shape_error(err, op, "shape or positions too large");
	}
	if (p->op->run == rand_attention) {
		if (p->n_head % p->n_head_kv)
			return shape_error(err, op, "n_head must be a multiple of n_head_kv");
		if (p->n_tokens > p->n_kv)
			return shape_error(err, op, "n_tokens must be <= n_kv (queries are the last positions)");
		if (too_big(p->head_dim, p->n_head, p->n_tokens) || too_big(p->head_dim, p->n_head_kv, p->n_kv))
			return shape_error(err, op, "shape too large");
	}
	return 0;
}

static int parse(const json_t *random, struct rparams *p, infer_error *err)
{
	const char *name = json_string_value(json_object_get(random, "op")), *key, *req;
	const json_t *seed = json_object_get(random, "seed");
	json_t *v;
	size_t i;

	memset(p, 0, sizeof(*p));
	p->eps = 1e-6;        /* Qwen2's rms_norm_eps */
	p->freq_base = 1e6;   /* Qwen2's rope_theta */
	p->scale = 1.0;
	if (!json_is_object(random))
		return infer_error_set(err, INFER_E_ARG, -1, "random: must be a mapping");
	for (i = 0; name && i < N_ROPS; i++)
		if (!strcmp(rops[i].name, name))
			p->op = &rops[i];
	if (!p->op)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "random.op: unknown op '%s' (mul_mat, rms_norm_mul, rope_neox, rope_norm, softmax, swiglu, attention_gqa)",
				       name ? name : "(missing)");
	if (!json_is_integer(seed) || json_integer_value(seed) < 0)
		return infer_error_set(err, INFER_E_ARG, -1, "random.seed: required, a non-negative integer");
	p->seed = (uint64_t)json_integer_value(seed);
	json_object_foreach((json_t *)random, key, v) {
		if (!strcmp(key, "op") || !strcmp(key, "seed"))
			continue;
		if (!in_list(p->op->keys, key))
			return infer_error_set(err, INFER_E_ARG, -1, "random.%s: not a parameter of %s (op, seed, %s)",
					       key, name, p->op->keys);
		if (set_key(p, key, v, err))
			return -1;
	}
	for (req = p->op->required; *req;) {
		char k[32];
		size_t n = strcspn(req, " ");

		snprintf(k, sizeof(k), "%.*s", (int)n, req);
		if (!json_object_get(random, k))
			return infer_error_set(err, INFER_E_ARG, -1, "random.%s: required for %s", k, name);
		req += n + (req[n] == ' ');
	}
	if (!p->n_rot)
		p->n_rot = p->head_dim;
	return check_shape(p, err);
}

int kernel_random_validate(const json_t *random, infer_error *err)
{
	struct rparams p;

	return parse(random, &p, err);
}

/* ---- run ------------------------------------------------------------------ */

static void describe(const struct rparams *p, char *buf, size_t n)
{
	if (p->op->run == rand_mul_mat)
		snprintf(buf, n, "mul_mat %s K=%lld M=%lld N=%lld: ", infer_type_name(p->wtype), (long long)p->K,
			 (long long)p->M, (long long)p->N);
	else if (p->op->run == rand_attention)
		snprintf(buf, n, "attention n_tokens=%lld n_kv=%lld: ", (long long)p->n_tokens, (long long)p->n_kv);
	else
		snprintf(buf, n, "%s: ", p->op->name);
}

void kernel_random_run(const json_t *random, const infer_ops *ops, const cmp_tolerance *tol,
		       struct check_result *r)
{
	struct rparams p;
	infer_error e = { 0 };
	float *y = NULL, *expect = NULL;
	double *ref = NULL;
	json_t *details = NULL;
	int64_t n = 0, i, g;
	char prefix[160], line[600];
	int ok;

	if (parse(random, &p, &e)) {
		check_result_set(r, CHECK_ERROR, "%s", e.msg);
		return;
	}
	describe(&p, prefix, sizeof(prefix));
	if (p.op->run(&p, ops, &y, &ref, &n, &e)) {
		check_result_set(r, CHECK_ERROR, "%s%s %s failed: %s", prefix, ops->name, p.op->name, e.msg);
		goto out;
	}
	g = guard_broken(y, n);
	if (g >= 0) {
		check_result_set(r, CHECK_FAIL, "%s%s wrote past the end of its %lld-element output (guard float %lld)",
				 prefix, ops->name, (long long)n, (long long)g);
		goto out;
	}
	/* cmp_compare takes floats: the double reference is rounded once. */
	expect = malloc((size_t)n * sizeof(float));
	if (!expect) {
		check_result_set(r, CHECK_ERROR, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		expect[i] = (float)ref[i];
	ok = cmp_compare(y, expect, n, NULL, 0, tol, &details);
	r->details = details ? details : json_object();
	json_object_set_new(r->details, "op", json_string(p.op->name));
	json_object_set(r->details, "random", (json_t *)random);
	cmp_summary(r->details, line, sizeof(line));
	check_result_set(r, ok ? CHECK_PASS : CHECK_FAIL, "%s%s", prefix, line);
out:
	free(y);
	free(ref);
	free(expect);
}
