/* The CPU reference kernels: plain scalar C, float32 data, written to be read
 * beside the formula each implements (backend.h gives the contracts).
 *
 * Accuracy choices, because this backend is the reference the others are
 * judged against: matmul dots accumulate in float32 (as every fast backend
 * does, so the comparison is fair); reductions whose error would otherwise
 * grow with the row length (RMSNorm's sum of squares, softmax's sum of
 * exponentials) accumulate in double; RoPE angles are computed in double. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "infer/quant.h"
#include "ops_cpu.h"

float cpu_dot(const float *a, const float *b, int64_t n)
{
	float acc[8] = { 0 };
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		acc[i & 7] += a[i] * b[i];
	return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* F16 is the common weight type and per-element bit manipulation was most
 * of the decode time, so F16 rows are widened through a 65536-entry table.
 * The table is filled from infer_fp16_to_fp32 itself: bit-identical to
 * infer_dequantize by construction (test_ops checks it). */
static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;

static void f16_table_init(void)
{
	for (uint32_t h = 0; h < 65536; h++)
		f16_table[h] = infer_fp16_to_fp32((uint16_t)h);
}

static void f16_row(const uint8_t *src, float *dst, int64_t n)
{
	pthread_once(&f16_once, f16_table_init);
	for (int64_t i = 0; i < n; i++)
		dst[i] = f16_table[src[2 * i] | (uint32_t)src[2 * i + 1] << 8];
}

/* One weight row as float32: F32 in place, F16 via the table, the rest via
 * the quant table (quant.h). */
static const float *row_f32(const uint8_t *row, uint32_t wtype, int64_t K, float *buf,
			    const char *what, infer_error *err)
{
	if (wtype == INFER_TYPE_F32)
		return (const float *)row;
	if (wtype == INFER_TYPE_F16) {
		f16_row(row, buf, K);
		return buf;
	}
	return infer_dequantize(wtype, row, buf, K, what, err) ? NULL : buf;
}

int cpu_mul_mat_rows(const void *w, uint32_t wtype, int64_t K, int64_t M,
		     int64_t m0, int64_t m1, const float *x, int64_t N, float *y,
		     float *rowbuf, const char *what, infer_error *err)
{
	uint64_t row_bytes = infer_row_size(wtype, K);

	if (!infer_type_traits_get(wtype))
		return infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				       "%s: unsupported weight type id %u", what ? what : "mul_mat",
				       wtype);
	if (row_bytes == 0)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "%s: row of %lld elements is not a whole number of %s blocks",
				       what ? what : "mul_mat", (long long)K, infer_type_name(wtype));
	for (int64_t m = m0; m < m1; m++) {
		const uint8_t *row = (const uint8_t *)w + (uint64_t)m * row_bytes;
		const float *wr = row_f32(row, wtype, K, rowbuf, what, err);

		if (!wr)
			return err ? err->code : INFER_E_UNSUPPORTED;
		for (int64_t n = 0; n < N; n++)
			y[n * M + m] = cpu_dot(wr, x + n * K, K);
	}
	return 0;
}

uint32_t cpu_vec_dot_type(uint32_t wtype)
{
	/* From ggml-cpu's type_traits_cpu table (vec_dot_type), as listed in
	 * ../shared/conformance/kernels/README.md. */
	switch (wtype) {
	case INFER_TYPE_F16:
	case INFER_TYPE_BF16:
		return wtype;
	case INFER_TYPE_Q4_0: case INFER_TYPE_Q5_0: case INFER_TYPE_Q8_0: case INFER_TYPE_IQ4_NL:
	case INFER_TYPE_MXFP4: case INFER_TYPE_NVFP4: case INFER_TYPE_Q1_0: case INFER_TYPE_Q2_0:
		return INFER_TYPE_Q8_0;
	case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_1:
		return INFER_TYPE_Q8_1;
	case INFER_TYPE_Q2_K: case INFER_TYPE_Q3_K: case INFER_TYPE_Q4_K: case INFER_TYPE_Q5_K:
	case INFER_TYPE_Q6_K: case INFER_TYPE_IQ2_XXS: case INFER_TYPE_IQ2_XS: case INFER_TYPE_IQ3_XXS:
	case INFER_TYPE_IQ1_S: case INFER_TYPE_IQ3_S: case INFER_TYPE_IQ2_S: case INFER_TYPE_IQ4_XS:
	case INFER_TYPE_IQ1_M: case INFER_TYPE_TQ1_0: case INFER_TYPE_TQ2_0:
		return INFER_TYPE_Q8_K;
	default:
		return INFER_TYPE_F32;
	}
}

int cpu_round_activations(uint32_t wtype, const float *x, float *out, int64_t K, int64_t N,
			  infer_error *err)
{
	uint32_t vt = cpu_vec_dot_type(wtype);
	uint64_t bytes = infer_row_size(vt, K);
	void *q;
	int rc = 0;

	if (vt == INFER_TYPE_F32) {
		memcpy(out, x, (size_t)(K * N) * sizeof(float));
		return 0;
	}
	if (!bytes)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "activation rounding: row of %lld is not a whole number of %s blocks",
				       (long long)K, infer_type_name(vt));
	q = malloc(bytes);
	if (!q)
		return infer_error_set(err, INFER_E_NOMEM, -1, "activation rounding: out of memory");
	for (int64_t n = 0; n < N && !rc; n++) {
		rc = infer_quantize(vt, x + n * K, q, K, "activations", err);
		if (!rc)
			rc = infer_dequantize(vt, q, out + n * K, K, "activations", err);
	}
	free(q);
	return rc;
}

static int mul_mat(const void *w, uint32_t wtype, int64_t K, int64_t M, const float *x,
		   int64_t N, float *y, infer_error *err)
{
	float *rowbuf;
	int rc;

	if (K <= 0 || M <= 0 || N <= 0)
		return infer_error_set(err, INFER_E_ARG, -1, "mul_mat: bad shape K=%lld M=%lld N=%lld",
				       (long long)K, (long long)M, (long long)N);
	rowbuf = malloc((size_t)K * sizeof(float));
	if (!rowbuf)
		return infer_error_set(err, INFER_E_NOMEM, -1, "mul_mat: out of memory");
	rc = cpu_mul_mat_rows(w, wtype, K, M, 0, M, x, N, y, rowbuf, NULL, err);
	free(rowbuf);
	return rc;
}

static int dequant(uint32_t type, const void *src, float *dst, int64_t n, infer_error *err)
{
	return infer_dequantize(type, src, dst, n, NULL, err);
}

int cpu_rms_norm_mul(const float *x, const float *w, float *y, int64_t n, int64_t rows,
		     float eps, infer_error *err)
{
	if (n <= 0 || rows < 0)
		return infer_error_set(err, INFER_E_ARG, -1, "rms_norm: bad shape n=%lld rows=%lld",
				       (long long)n, (long long)rows);
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * n;
		float *yr = y + r * n;
		double ss = 0.0;

		for (int64_t i = 0; i < n; i++)
			ss += (double)xr[i] * xr[i];
		float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
		for (int64_t i = 0; i < n; i++)
			yr[i] = xr[i] * scale * w[i];
	}
	return 0;
}

/* One head's first n_rot dims, rotated by angle pos * base^(-2i/n_rot) for pair i.
 * NEOX (GPT-NeoX / HF rotate_half) pairs dim i with i + n_rot/2; the original
 * GPT-J/llama layout pairs 2i with 2i+1. */
static void rope_head(float *x, int32_t pos, int64_t n_rot, double base, int neox)
{
	int64_t half = n_rot / 2;

	for (int64_t i = 0; i < half; i++) {
		double theta = (double)pos * pow(base, -2.0 * (double)i / (double)n_rot);
		float c = (float)cos(theta), s = (float)sin(theta);
		int64_t a = neox ? i : 2 * i;
		int64_t b = neox ? i + half : 2 * i + 1;
		float x0 = x[a], x1 = x[b];

		x[a] = x0 * c - x1 * s;
		x[b] = x0 * s + x1 * c;
	}
}

int cpu_rope(float *x, const int32_t *pos, int64_t head_dim, int64_t n_heads,
	     int64_t n_tokens, int64_t n_rot, float freq_base, int neox, infer_error *err)
{
	if (n_rot <= 0 || n_rot > head_dim || n_rot % 2)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "rope: n_rot %lld must be even and in 1..head_dim %lld",
				       (long long)n_rot, (long long)head_dim);
	if (!(freq_base > 0.0f))
		return infer_error_set(err, INFER_E_ARG, -1, "rope: freq_base %g must be > 0",
				       (double)freq_base);
	for (int64_t t = 0; t < n_tokens; t++)
		for (int64_t h = 0; h < n_heads; h++)
			rope_head(x + (t * n_heads + h) * head_dim, pos[t], n_rot, freq_base, neox);
	return 0;
}

/* Softmax of one row in place, over its first n entries: subtract the max so
 * exp never overflows; sum in double. */
static void softmax_row(float *y, int64_t n)
{
	float mx = -INFINITY;
	double sum = 0.0;

	for (int64_t i = 0; i < n; i++)
		if (y[i] > mx)
			mx = y[i];
	for (int64_t i = 0; i < n; i++) {
		y[i] = expf(y[i] - mx);
		sum += y[i];
	}
	for (int64_t i = 0; i < n; i++)
		y[i] = (float)(y[i] / sum);
}

static int softmax(const float *x, float *y, int64_t n, int64_t rows, float scale,
		   const int32_t *query_pos, infer_error *err)
{
	if (n <= 0 || rows < 0)
		return infer_error_set(err, INFER_E_ARG, -1, "softmax: bad shape n=%lld rows=%lld",
				       (long long)n, (long long)rows);
	for (int64_t r = 0; r < rows; r++) {
		/* Masked entries (i > query_pos) get probability exactly 0. */
		int64_t visible = query_pos ? query_pos[r] + 1 : n;

		if (visible < 1 || visible > n)
			visible = visible < 1 ? 0 : n;
		for (int64_t i = 0; i < n; i++)
			y[r * n + i] = i < visible ? x[r * n + i] * scale : 0.0f;
		if (visible == 0) /* every entry masked: no distribution exists */
			return infer_error_set(err, INFER_E_ARG, -1,
					       "softmax: row %lld has every entry masked", (long long)r);
		softmax_row(y + r * n, visible);
	}
	return 0;
}

int cpu_swiglu(const float *gate, const float *up, float *y, int64_t n, infer_error *err)
{
	for (int64_t i = 0; i < n; i++) {
		float g = gate[i];

		y[i] = g / (1.0f + expf(-g)) * up[i];
	}
	return 0;
}

int cpu_attention_heads(const float *q, const float *k, const float *v, float *out,
			int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
			int64_t n_kv, int64_t first_query_pos, float scale,
			int64_t h0, int64_t h1, float *scores, infer_error *err)
{
	int64_t group;

	if (n_head_kv <= 0 || n_head % n_head_kv)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "attention: n_head %lld not a multiple of n_head_kv %lld",
				       (long long)n_head, (long long)n_head_kv);
	if (first_query_pos < 0 || first_query_pos + n_tokens > n_kv)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "attention: queries at %lld..%lld need keys beyond n_kv %lld",
				       (long long)first_query_pos,
				       (long long)(first_query_pos + n_tokens - 1), (long long)n_kv);
	group = n_head / n_head_kv;
	for (int64_t t = 0; t < n_tokens; t++) {
		int64_t n_vis = first_query_pos + t + 1; /* causal: keys 0..pos */

		for (int64_t h = h0; h < h1; h++) {
			const float *qh = q + (t * n_head + h) * head_dim;
			float *oh = out + (t * n_head + h) * head_dim;
			int64_t hk = h / group;

			for (int64_t j = 0; j < n_vis; j++)
				scores[j] = cpu_dot(qh, k + (j * n_head_kv + hk) * head_dim, head_dim) *
					    scale;
			softmax_row(scores, n_vis);
			for (int64_t d = 0; d < head_dim; d++)
				oh[d] = 0.0f;
			for (int64_t j = 0; j < n_vis; j++) {
				const float *vj = v + (j * n_head_kv + hk) * head_dim;

				for (int64_t d = 0; d < head_dim; d++)
					oh[d] += scores[j] * vj[d];
			}
		}
	}
	return 0;
}

static int attention(const float *q, const float *k, const float *v, float *out,
		     int64_t head_dim, int64_t n_head, int64_t n_head_kv, int64_t n_tokens,
		     int64_t n_kv, int64_t first_query_pos, float scale, infer_error *err)
{
	float *scores;
	int rc;

	if (n_kv <= 0 || head_dim <= 0)
		return infer_error_set(err, INFER_E_ARG, -1, "attention: bad shape n_kv=%lld",
				       (long long)n_kv);
	scores = malloc((size_t)n_kv * sizeof(float));
	if (!scores)
		return infer_error_set(err, INFER_E_NOMEM, -1, "attention: out of memory");
	rc = cpu_attention_heads(q, k, v, out, head_dim, n_head, n_head_kv, n_tokens, n_kv,
				 first_query_pos, scale, 0, n_head, scores, err);
	free(scores);
	return rc;
}

const infer_ops infer_ops_cpu = {
	.name = "cpu",
	.mul_mat = mul_mat,
	.dequant = dequant,
	.rms_norm_mul = cpu_rms_norm_mul,
	.rope = cpu_rope,
	.softmax = softmax,
	.swiglu = cpu_swiglu,
	.attention = attention,
};
