/* Legacy 32-element formats: q4_0, q4_1, q5_0, q5_1, q8_0, q8_1.
 *
 * Decoding: each value is a small integer times the fp16 scale (exact in
 * float32), plus the fp16 offset for the _1 types (one rounding). Written so
 * that the float operations happen in the same order as ggml's reference
 * decoder: the goldens are compared bit for bit.
 *
 * Encoding follows ggml's reference rules (scale from the block's extreme
 * value, fp16 scale stored, quants computed with the unrounded float scale),
 * so files we write decode like files ggml writes. */
#include <math.h>

#include "quant_internal.h"

/* Element with the largest magnitude, sign kept (first one on ties). */
static float signed_absmax(const float *x, int n)
{
	float amax = 0.0f, max = 0.0f;

	for (int j = 0; j < n; j++) {
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	return max;
}

static float absmax(const float *x, int n)
{
	float amax = 0.0f;

	for (int j = 0; j < n; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	return amax;
}

/* Plain comparisons, not fminf/fmaxf: those may return either zero for
 * (+0, -0), and the sign of the stored minimum must not depend on the build.
 * First occurrence wins, as in ggml's encoder. */
static void min_max(const float *x, int n, float *mn, float *mx)
{
	*mn = x[0];
	*mx = x[0];
	for (int j = 1; j < n; j++) {
		if (x[j] < *mn)
			*mn = x[j];
		if (x[j] > *mx)
			*mx = x[j];
	}
}

/* Truncating conversion of a non-negative value with a ceiling, as the
 * reference quantizers do ("+ 0.5 then truncate" is their rounding). */
static uint8_t trunc_clamp(float v, int hi)
{
	return (uint8_t)sat_int(v, 0, hi);
}

/* ---- q4_0 -------------------------------------------------------------------- */

int dequant_q4_0(const void *src, float *dst, int64_t n)
{
	const block_q4_0 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);

		for (int j = 0; j < 16; j++) {
			dst[j] = ((b->qs[j] & 0x0f) - 8) * d;
			dst[j + 16] = ((b->qs[j] >> 4) - 8) * d;
		}
	}
	return 0;
}

int quant_q4_0(const float *src, void *dst, int64_t n)
{
	block_q4_0 *b = dst;

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		/* The extreme value maps to -8, the one level without a positive twin. */
		const float d = signed_absmax(src, 32) / -8.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(d));
		for (int j = 0; j < 16; j++) {
			uint8_t lo = trunc_clamp(src[j] * id + 8.5f, 15);
			uint8_t hi = trunc_clamp(src[j + 16] * id + 8.5f, 15);

			b->qs[j] = (uint8_t)(lo | (hi << 4));
		}
	}
	return 0;
}

/* ---- q4_1 -------------------------------------------------------------------- */

int dequant_q4_1(const void *src, float *dst, int64_t n)
{
	const block_q4_1 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);
		const float m = half_le(b->m);

		for (int j = 0; j < 16; j++) {
			dst[j] = (b->qs[j] & 0x0f) * d + m;
			dst[j + 16] = (b->qs[j] >> 4) * d + m;
		}
	}
	return 0;
}

int quant_q4_1(const float *src, void *dst, int64_t n)
{
	block_q4_1 *b = dst;

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		float mn, mx;

		min_max(src, 32, &mn, &mx);
		const float d = (mx - mn) / 15.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(d));
		put_le16(b->m, infer_fp32_to_fp16(mn));
		for (int j = 0; j < 16; j++) {
			uint8_t lo = trunc_clamp((src[j] - mn) * id + 0.5f, 15);
			uint8_t hi = trunc_clamp((src[j + 16] - mn) * id + 0.5f, 15);

			b->qs[j] = (uint8_t)(lo | (hi << 4));
		}
	}
	return 0;
}

/* ---- q5_0 / q5_1 -------------------------------------------------------------- */

/* The 5-bit values of a q5 block (0..31): nibbles plus bit j of qh. Two
 * straight loops of 16 so the compiler can vectorise them. */
static inline void q5_values(const uint8_t *qs, uint32_t qh, int *v)
{
	for (int j = 0; j < 16; j++) {
		v[j] = (qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
		v[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
	}
}

static void q5_pack(const uint8_t *q, uint8_t *qs, uint8_t *qh_bytes)
{
	uint32_t qh = 0;

	for (int j = 0; j < 16; j++) {
		qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
		qh |= (uint32_t)(q[j] >> 4) << j;
		qh |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
	}
	put_le32(qh_bytes, qh);
}

int dequant_q5_0(const void *src, float *dst, int64_t n)
{
	const block_q5_0 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);
		int v[32];

		q5_values(b->qs, le32(b->qh), v);
		for (int j = 0; j < 32; j++)
			dst[j] = (v[j] - 16) * d;
	}
	return 0;
}

int quant_q5_0(const float *src, void *dst, int64_t n)
{
	block_q5_0 *b = dst;
	uint8_t q[32];

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		const float d = signed_absmax(src, 32) / -16.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(d));
		for (int j = 0; j < 32; j++)
			q[j] = trunc_clamp(src[j] * id + 16.5f, 31);
		q5_pack(q, b->qs, b->qh);
	}
	return 0;
}

int dequant_q5_1(const void *src, float *dst, int64_t n)
{
	const block_q5_1 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);
		const float m = half_le(b->m);
		int v[32];

		q5_values(b->qs, le32(b->qh), v);
		for (int j = 0; j < 32; j++)
			dst[j] = v[j] * d + m;
	}
	return 0;
}

int quant_q5_1(const float *src, void *dst, int64_t n)
{
	block_q5_1 *b = dst;
	uint8_t q[32];

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		float mn, mx;

		min_max(src, 32, &mn, &mx);
		const float d = (mx - mn) / 31.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(d));
		put_le16(b->m, infer_fp32_to_fp16(mn));
		for (int j = 0; j < 32; j++)
			q[j] = trunc_clamp((src[j] - mn) * id + 0.5f, 31);
		q5_pack(q, b->qs, b->qh);
	}
	return 0;
}

/* ---- q8_0 / q8_1 -------------------------------------------------------------- */

int dequant_q8_0(const void *src, float *dst, int64_t n)
{
	const block_q8_0 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);

		for (int j = 0; j < 32; j++)
			dst[j] = b->qs[j] * d;
	}
	return 0;
}

/* Symmetric 8-bit: d = absmax / 127, q = round-half-away(x / d). */
static float q8_block(const float *x, int8_t *qs)
{
	const float d = absmax(x, 32) / 127.0f;
	const float id = d != 0.0f ? 1.0f / d : 0.0f;

	for (int j = 0; j < 32; j++)
		qs[j] = (int8_t)sat_int(roundf(x[j] * id), -127, 127);
	return d;
}

int quant_q8_0(const float *src, void *dst, int64_t n)
{
	block_q8_0 *b = dst;

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32)
		put_le16(b->d, infer_fp32_to_fp16(q8_block(src, b->qs)));
	return 0;
}

/* q8_1 decodes like q8_0; the s field only serves dot products. ggml has no
 * q8_1 dequantizer, so the tests check this one on hand-built blocks. */
int dequant_q8_1(const void *src, float *dst, int64_t n)
{
	const block_q8_1 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);

		for (int j = 0; j < 32; j++)
			dst[j] = b->qs[j] * d;
	}
	return 0;
}

int quant_q8_1(const float *src, void *dst, int64_t n)
{
	block_q8_1 *b = dst;

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		const float d = q8_block(src, b->qs);
		int sum = 0;

		for (int j = 0; j < 32; j++)
			sum += b->qs[j];
		put_le16(b->d, infer_fp32_to_fp16(d));
		put_le16(b->s, infer_fp32_to_fp16((float)sum * d));
	}
	return 0;
}
