/* q1_0 (sign bits, 128 per block) and q2_0 (2-bit, 64 per block): the
 * smallest legacy formats. Decoding is +-d resp. (q - 1) * d, exact. */
#include <math.h>

#include "quant_internal.h"

int dequant_q1_0(const void *src, float *dst, int64_t n)
{
	const block_q1_0 *b = src;

	for (int64_t i = 0; i < n / 128; i++, b++, dst += 128) {
		const float d = half_le(b->d);

		const float pm[2] = { -d, d }; /* -d, not (-1) * d: same bits, -0.0 included */

		for (int j = 0; j < 16; j++) {
			const unsigned byte = b->qs[j];

			for (int k = 0; k < 8; k++)
				dst[8 * j + k] = pm[(byte >> k) & 1];
		}
	}
	return 0;
}

/* Scale = mean magnitude; each element keeps only its sign (x >= 0 -> 1). */
int quant_q1_0(const float *src, void *dst, int64_t n)
{
	block_q1_0 *b = dst;

	for (int64_t i = 0; i < n / 128; i++, b++, src += 128) {
		float sum = 0.0f;

		for (int j = 0; j < 128; j++)
			sum += fabsf(src[j]);
		put_le16(b->d, infer_fp32_to_fp16(sum / 128.0f));
		memset(b->qs, 0, sizeof(b->qs));
		for (int j = 0; j < 128; j++)
			if (src[j] >= 0.0f)
				b->qs[j / 8] |= (uint8_t)(1u << (j % 8));
	}
	return 0;
}

int dequant_q2_0(const void *src, float *dst, int64_t n)
{
	const block_q2_0 *b = src;

	for (int64_t i = 0; i < n / 64; i++, b++, dst += 64) {
		const float d = half_le(b->d);

		for (int j = 0; j < 16; j++) {
			const unsigned byte = b->qs[j];

			for (int k = 0; k < 4; k++)
				dst[4 * j + k] = ((int)((byte >> (2 * k)) & 3) - 1) * d;
		}
	}
	return 0;
}

/* Levels -1, 0, 1, 2 times d = absmax: round(x / d) + 1, clamped to 0..3. */
int quant_q2_0(const float *src, void *dst, int64_t n)
{
	block_q2_0 *b = dst;

	for (int64_t i = 0; i < n / 64; i++, b++, src += 64) {
		float amax = 0.0f;

		for (int j = 0; j < 64; j++)
			amax = fmaxf(amax, fabsf(src[j]));
		const float id = amax > 0.0f ? 1.0f / amax : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(amax));
		memset(b->qs, 0, sizeof(b->qs));
		for (int j = 0; j < 64; j++) {
			const int q = sat_int(roundf(src[j] * id) + 1.0f, 0, 3);

			b->qs[j / 4] |= (uint8_t)(q << (2 * (j % 4)));
		}
	}
	return 0;
}
