/* Microscaling FP4: mxfp4 (32 E2M1 values, one E8M0 exponent) and nvfp4
 * (64 E2M1 values, one UE4M3 scale per 16).
 *
 * ggml keeps the E2M1 values doubled (so they are integers) and halves the
 * scale instead; we do the same so that every product is the same float
 * product as in ggml: integer * power-of-two-ish scale, exact. */
#include <math.h>

#include "quant_internal.h"

/* E2M1 code -> 2 * value (OCP Microscaling spec v1.0; ggml kvalues_fp4). */
const int8_t kvalues_fp4[16] = {
	0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

/* E8M0 exponent e -> 2^(e-127) / 2. Byte 0 gives 2^-128 (a float32
 * subnormal), not zero; 255 is not treated as NaN (ggml does neither). */
static float e8m0_half(uint8_t e)
{
	if (e < 2)
		return f32_from_bits(0x00200000u << e);
	return f32_from_bits((uint32_t)(e - 1) << 23);
}

/* UE4M3 (bias 7, no sign: bit 7 ignored) -> value / 2. 0x7f (the NaN code
 * of E4M3) decodes to 0, as in ggml. Built from exact factors: no rounding. */
static float ue4m3_half(uint8_t x)
{
	int exp = (x >> 3) & 0xf;
	int man = x & 7;

	if (x == 0 || x == 0x7f)
		return 0.0f;
	if (exp == 0) /* subnormal: man * 2^-9, halved */
		return (float)man * 0x1p-10f;
	return (float)(8 + man) * f32_from_bits((uint32_t)(exp - 11 + 127) << 23);
}

/* Encoding of a positive scale as UE4M3: saturate at 448, round the
 * mantissa half up (ggml's rule, so our files decode like ggml's). */
static uint8_t fp32_to_ue4m3(float x)
{
	uint32_t bits;
	int exp, man;

	if (!(x > 0.0f))
		return 0;
	x = fminf(x, 448.0f);
	bits = f32_bits(x);
	exp = (int)((bits >> 23) & 0xff) - 127 + 7;
	if (exp <= 0) {
		int m = (int)(x * 512.0f + 0.5f);

		return (uint8_t)(m > 7 ? 7 : m);
	}
	man = (int)((bits >> 20) & 7) + (int)((bits >> 19) & 1);
	if (man > 7) {
		man = 0;
		exp++;
	}
	if (exp >= 15)
		return 0x7e; /* largest finite */
	return (uint8_t)((exp << 3) | man);
}

/* Index of the E2M1 level nearest to x at scale d (first on ties). */
static uint8_t nearest_fp4(float x, float d)
{
	int best = 0;
	float best_err = fabsf(kvalues_fp4[0] * d - x);

	for (int i = 1; i < 16; i++) {
		float err = fabsf(kvalues_fp4[i] * d - x);

		if (err < best_err) {
			best = i;
			best_err = err;
		}
	}
	return (uint8_t)best;
}

static void fp4_codes(const float *x, int n, float d, uint8_t *qs)
{
	for (int j = 0; j < n / 2; j++)
		qs[j] = (uint8_t)(nearest_fp4(x[j], d) | (nearest_fp4(x[j + n / 2], d) << 4));
}

int dequant_mxfp4(const void *src, float *dst, int64_t n)
{
	const block_mxfp4 *b = src;

	for (int64_t i = 0; i < n / 32; i++, b++, dst += 32) {
		const float d = e8m0_half(b->e);

		for (int j = 0; j < 16; j++) {
			dst[j] = kvalues_fp4[b->qs[j] & 0x0f] * d;
			dst[j + 16] = kvalues_fp4[b->qs[j] >> 4] * d;
		}
	}
	return 0;
}

int quant_mxfp4(const float *src, void *dst, int64_t n)
{
	block_mxfp4 *b = dst;

	for (int64_t i = 0; i < n / 32; i++, b++, src += 32) {
		float amax = 0.0f;

		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(src[j]));
		/* Largest E2M1 magnitude is 6 = 1.5 * 2^2: exponent floor(log2 amax) - 2. */
		b->e = amax > 0.0f ? (uint8_t)sat_int(floorf(log2f(amax)) - 2 + 127, 0, 255) : 0;
		fp4_codes(src, 32, e8m0_half(b->e), b->qs);
	}
	return 0;
}

int dequant_nvfp4(const void *src, float *dst, int64_t n)
{
	const block_nvfp4 *b = src;

	for (int64_t i = 0; i < n / 64; i++, b++) {
		for (int s = 0; s < 4; s++, dst += 16) {
			const float d = ue4m3_half(b->d[s]);
			const uint8_t *qs = b->qs + 8 * s;

			for (int j = 0; j < 8; j++) {
				dst[j] = kvalues_fp4[qs[j] & 0x0f] * d;
				dst[j + 8] = kvalues_fp4[qs[j] >> 4] * d;
			}
		}
	}
	return 0;
}

int quant_nvfp4(const float *src, void *dst, int64_t n)
{
	block_nvfp4 *b = dst;

	for (int64_t i = 0; i < n / 64; i++, b++) {
		for (int s = 0; s < 4; s++, src += 16) {
			float amax = 0.0f;

			for (int j = 0; j < 16; j++)
				amax = fmaxf(amax, fabsf(src[j]));
			/* Scale so that the sub-block maximum lands on 6 (code 7). */
			b->d[s] = fp32_to_ue4m3(amax / 6.0f);
			fp4_codes(src, 16, ue4m3_half(b->d[s]), b->qs + 8 * s);
		}
	}
	return 0;
}
