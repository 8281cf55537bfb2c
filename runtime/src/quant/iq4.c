/* Non-linear 4-bit formats: iq4_nl (32 per block) and iq4_xs (256 per
 * super-block with 6-bit sub-scales). A nibble indexes a fixed table of 16
 * non-uniform levels; the value is scale * level, one exact product. */
#include <math.h>

#include "quant_internal.h"

/* The 16 levels (ggml ggml-common.h kvalues_iq4nl, commit d99724f2). */
const int8_t kvalues_iq4nl[16] = {
	-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

int dequant_iq4_nl(const void *src, float *dst, int64_t n)
{
	const block_iq4_nl *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = half_le(b->d);

		for (int j = 0; j < 16; j++) {
			dst[j] = d * kvalues_iq4nl[b->qs[j] & 0x0f];
			dst[j + 16] = d * kvalues_iq4nl[b->qs[j] >> 4];
		}
	}
	return 0;
}

/* Sub-scale ib (0..7) of an iq4_xs block: 4 low bits from scales_l, 2 high
 * bits from scales_h, biased by 32. */
static int iq4_xs_scale(const block_iq4_xs *b, int ib)
{
	int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
	int hi = (le16(b->scales_h) >> (2 * ib)) & 3;

	return (lo | (hi << 4)) - 32;
}

int dequant_iq4_xs(const void *src, float *dst, int64_t n)
{
	const block_iq4_xs *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		for (int ib = 0; ib < 8; ib++, dst += 32) {
			const float dl = d * iq4_xs_scale(b, ib);
			const uint8_t *qs = b->qs + 16 * ib;

			for (int j = 0; j < 16; j++) {
				dst[j] = dl * kvalues_iq4nl[qs[j] & 0x0f];
				dst[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
			}
		}
	}
	return 0;
}

static uint8_t nearest_level(float v)
{
	int best = 0;
	float best_err = fabsf(v - kvalues_iq4nl[0]);

	for (int i = 1; i < 16; i++) {
		float err = fabsf(v - kvalues_iq4nl[i]);

		if (err < best_err) {
			best = i;
			best_err = err;
		}
	}
	return (uint8_t)best;
}

/* Assign levels for scale d and return the squared error; fills q. */
static float iq4_assign(const float *x, float d, uint8_t *q)
{
	const float id = d != 0.0f ? 1.0f / d : 0.0f;
	float err = 0.0f;

	for (int j = 0; j < 32; j++) {
		q[j] = nearest_level(x[j] * id);
		float e = x[j] - d * kvalues_iq4nl[q[j]];

		err += e * e;
	}
	return err;
}

/* Our own search: start with the extreme value on level -127, then refit the
 * scale by least squares for the chosen levels while the error drops. */
int quant_iq4_nl(const float *src, void *dst, int64_t n)
{
	block_iq4_nl *b = dst;
	uint8_t q[32], best_q[32];

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		float amax = 0.0f, max = 0.0f;

		for (int j = 0; j < 32; j++)
			if (fabsf(src[j]) > amax) {
				amax = fabsf(src[j]);
				max = src[j];
			}
		float d = max / -127.0f;
		float best_err = iq4_assign(src, d, best_q), best_d = d;

		for (int it = 0; it < 4 && d != 0.0f; it++) {
			float sxq = 0.0f, sqq = 0.0f;

			for (int j = 0; j < 32; j++) {
				float l = kvalues_iq4nl[best_q[j]];

				sxq += src[j] * l;
				sqq += l * l;
			}
			d = sxq / sqq;
			float err = iq4_assign(src, d, q);

			if (!(err < best_err))
				break;
			best_err = err;
			best_d = d;
			memcpy(best_q, q, sizeof(q));
		}
		put_le16(b->d, infer_fp32_to_fp16(best_d));
		for (int j = 0; j < 16; j++)
			b->qs[j] = (uint8_t)(best_q[j] | (best_q[j + 16] << 4));
	}
	return 0;
}
