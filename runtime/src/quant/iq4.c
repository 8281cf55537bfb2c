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

/* Our own search for one group of 32: start with the extreme value on level
 * -127, then refit the scale by least squares for the chosen levels while
 * the error drops. Returns the scale; q receives the level indices. */
static float iq4_fit(const float *x, uint8_t *best_q)
{
	uint8_t q[32];
	float amax = 0.0f, max = 0.0f;

	for (int j = 0; j < 32; j++)
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	float d = max / -127.0f;
	float best_err = iq4_assign(x, d, best_q), best_d = d;

	for (int it = 0; it < 4 && d != 0.0f; it++) {
		float sxq = 0.0f, sqq = 0.0f;

		for (int j = 0; j < 32; j++) {
			float l = kvalues_iq4nl[best_q[j]];

			sxq += x[j] * l;
			sqq += l * l;
		}
		d = sxq / sqq;
		float err = iq4_assign(x, d, q);

		if (!(err < best_err))
			break;
		best_err = err;
		best_d = d;
		memcpy(best_q, q, sizeof(q));
	}
	return best_d;
}

static void iq4_pack(const uint8_t *q, uint8_t *qs)
{
	for (int j = 0; j < 16; j++)
		qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
}

int quant_iq4_nl(const float *src, void *dst, int64_t n)
{
	block_iq4_nl *b = dst;
	uint8_t q[32];

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		put_le16(b->d, infer_fp32_to_fp16(iq4_fit(src, q)));
		iq4_pack(q, b->qs);
	}
	return 0;
}

/* iq4_xs: the per-32 scales of iq4_fit, quantized to 6 bits (biased by 32)
 * against an fp16 super-scale; levels re-chosen for the rounded scales. */
int quant_iq4_xs(const float *src, void *dst, int64_t n)
{
	block_iq4_xs *b = dst;
	uint8_t q[32];

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float s[8], smax = 0.0f;
		uint16_t sh = 0;

		for (int ib = 0; ib < 8; ib++) {
			s[ib] = iq4_fit(src + 32 * ib, q);
			smax = fmaxf(smax, fabsf(s[ib]));
		}
		put_le16(b->d, infer_fp32_to_fp16(smax / 31.0f));
		const float d = half_le(b->d);

		memset(b->scales_l, 0, sizeof(b->scales_l));
		for (int ib = 0; ib < 8; ib++) {
			int ls = d > 0.0f ? (int)lrintf(s[ib] / d) : 0;

			ls = (ls < -32 ? -32 : ls > 31 ? 31 : ls) + 32;
			b->scales_l[ib / 2] |= (uint8_t)((ls & 0x0f) << (4 * (ib % 2)));
			sh |= (uint16_t)((ls >> 4) << (2 * ib));
			iq4_assign(src + 32 * ib, d * (ls - 32), q);
			iq4_pack(q, b->qs + 16 * ib);
		}
		put_le16(b->scales_h, sh);
	}
	return 0;
}
