/* Ternary formats (BitNet b1.58 / TriLM): tq1_0 packs 5 trits per byte as a
 * base-3 fixed-point fraction, tq2_0 stores 2 bits per trit.
 *
 * tq1_0 byte encoding: v = sum t_k 3^(4-k) (0..242) is stored as
 * ceil(v * 256 / 243), i.e. the fraction v / 243 in 8 bits. Trit k is read
 * back by multiplying the byte by 3^k modulo 256 (dropping the trits above)
 * and taking the top "digit" (q * 3) >> 8. That is pure arithmetic: a byte the
 * encoder never emits (>= 243) still decodes to some trit, exactly as ggml
 * does, so no 243-entry lookup table is used. */
#include <math.h>

#include "quant_internal.h"

static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };

static inline int trit(uint8_t byte, int k)
{
	uint8_t q = (uint8_t)(byte * pow3[k]);

	return ((q * 3) >> 8) - 1; /* -1, 0, 1 */
}

int dequant_tq1_0(const void *src, float *dst, int64_t n)
{
	const block_tq1_0 *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		/* qs[0..31]: 5 trits each, trit k of byte m is element 32k + m. */
		for (int k = 0; k < 5; k++)
			for (int m = 0; m < 32; m++)
				*dst++ = (float)trit(b->qs[m], k) * d;
		/* qs[32..47]: the next 80 elements, trit k of byte m is 16k + m. */
		for (int k = 0; k < 5; k++)
			for (int m = 0; m < 16; m++)
				*dst++ = (float)trit(b->qs[32 + m], k) * d;
		/* qh: the last 16, 4 trits per byte (the fifth trit is padding). */
		for (int k = 0; k < 4; k++)
			for (int m = 0; m < 4; m++)
				*dst++ = (float)trit(b->qh[m], k) * d;
	}
	return 0;
}

static inline int tern(float x, float id)
{
	return (int)lroundf(x * id) + 1; /* 0, 1, 2 */
}

/* Pack n_trits trits (most significant first, padded with zeros to 5) as
 * ceil(v * 256 / 243). */
static uint8_t pack_trits(const float *x, int stride, int n_trits, float id)
{
	unsigned v = 0;

	for (int k = 0; k < 5; k++)
		v = v * 3 + (unsigned)(k < n_trits ? tern(x[k * stride], id) : 0);
	return (uint8_t)((v * 256 + 242) / 243);
}

int quant_tq1_0(const float *src, void *dst, int64_t n)
{
	block_tq1_0 *b = dst;

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float amax = 0.0f;

		for (int j = 0; j < QK_K; j++)
			amax = fmaxf(amax, fabsf(src[j]));
		const float id = amax != 0.0f ? 1.0f / amax : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(amax));
		for (int m = 0; m < 32; m++)
			b->qs[m] = pack_trits(src + m, 32, 5, id);
		for (int m = 0; m < 16; m++)
			b->qs[32 + m] = pack_trits(src + 160 + m, 16, 5, id);
		for (int m = 0; m < 4; m++)
			b->qh[m] = pack_trits(src + 240 + m, 4, 4, id);
	}
	return 0;
}

int dequant_tq2_0(const void *src, float *dst, int64_t n)
{
	const block_tq2_0 *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		/* Per 32 bytes, 128 elements: bits 2l..2l+1 of byte m are element 32l + m. */
		for (int j = 0; j < 64; j += 32)
			for (int l = 0; l < 4; l++)
				for (int m = 0; m < 32; m++)
					*dst++ = (float)(((b->qs[j + m] >> (2 * l)) & 3) - 1) * d;
	}
	return 0;
}

int quant_tq2_0(const float *src, void *dst, int64_t n)
{
	block_tq2_0 *b = dst;

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float amax = 0.0f;

		for (int j = 0; j < QK_K; j++)
			amax = fmaxf(amax, fabsf(src[j]));
		const float id = amax != 0.0f ? 1.0f / amax : 0.0f;

		put_le16(b->d, infer_fp32_to_fp16(amax));
		for (int j = 0; j < 64; j += 32)
			for (int m = 0; m < 32; m++) {
				uint8_t q = 0;

				for (int l = 0; l < 4; l++)
					q |= (uint8_t)((tern(src[4 * j + 32 * l + m], id) & 3) << (2 * l));
				b->qs[j + m] = q;
			}
	}
	return 0;
}
