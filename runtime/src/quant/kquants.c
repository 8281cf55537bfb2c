/* k-quants: 256-element super-blocks with per-sub-block scales that are
 * themselves quantized against fp16 super-scales (q2_K .. q6_K), plus q8_K,
 * the float-scaled 8-bit activation format of ggml's k-quant dot products.
 *
 * Decoders reproduce ggml's float operation order exactly (the goldens are
 * compared bit for bit): the sub-block scale is formed first as
 * super-scale * integer (exact), then multiplied by the quant, then the
 * min is subtracted. In q6_K the product d * sc * q can round, so the
 * grouping (d * sc) * q matters and is kept.
 *
 * The encoders (q2_K .. q6_K) are our own least-squares searches, not
 * ggml's; they are validated by round-trip error, not by matching bytes. */
#include <math.h>

#include "quant_internal.h"

/* ---- q2_K -------------------------------------------------------------------------- */

int dequant_q2_k(const void *src, float *dst, int64_t n)
{
	const block_q2_k *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);
		const float dmin = half_le(b->dmin);

		/* Two halves of 128: 32 bytes of qs each, read 4 times (2 bits per
		 * pass); each pass yields 2 sub-blocks of 16 with their own scale. */
		for (int h = 0; h < 2; h++) {
			const uint8_t *q = b->qs + 32 * h;

			for (int pass = 0; pass < 4; pass++) {
				for (int half = 0; half < 2; half++) {
					const uint8_t sc = b->scales[8 * h + 2 * pass + half];
					const float dl = d * (sc & 0x0f);
					const float ml = dmin * (sc >> 4);

					for (int l = 0; l < 16; l++)
						*dst++ = dl * ((q[16 * half + l] >> (2 * pass)) & 3) -
							 ml;
				}
			}
		}
	}
	return 0;
}

/* ---- q3_K -------------------------------------------------------------------------- */

/* Scale k (0..15): low 4 bits in scales[0..7] (nibble k/8), high 2 bits in
 * scales[8 + k%4] at bit 2*(k/4); biased by 32. */
static int q3_k_scale(const uint8_t *s, int k)
{
	int lo = k < 8 ? (s[k] & 0x0f) : (s[k - 8] >> 4);
	int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;

	return (lo | (hi << 4)) - 32;
}

int dequant_q3_k(const void *src, float *dst, int64_t n)
{
	const block_q3_k *b = src;
	int v[32];

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		/* Element 128h + 32p + l (l < 32): 2 bits at 2p of qs[32h + l],
		 * third bit p + 4h of hmask[l] (clear means -4); sub-block of 16
		 * k = 8h + 2p + l/16 has its own 6-bit scale. */
		for (int h = 0; h < 2; h++) {
			const uint8_t *q = b->qs + 32 * h;

			for (int pass = 0; pass < 4; pass++) {
				const int bit = 4 * h + pass;

				for (int l = 0; l < 32; l++)
					v[l] = ((q[l] >> (2 * pass)) & 3) - 4 +
					       4 * ((b->hmask[l] >> bit) & 1);
				for (int half = 0; half < 2; half++, dst += 16) {
					const float dl = d * q3_k_scale(b->scales, 2 * bit + half);

					for (int l = 0; l < 16; l++)
						dst[l] = dl * v[16 * half + l];
				}
			}
		}
	}
	return 0;
}

/* q2_K encoder: 16 sub-blocks of 16, x ~ (d * sc) * q - dmin * m with 4-bit
 * sc, m and 2-bit q. Our own search (fit_affine below), then the quants are
 * re-derived from the rounded scales. */
static float fit_affine(const float *x, int n, int nmax, float *a_out, float *m_out);
static float fit_symmetric(const float *x, int qmax, float *s_out);

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int quant_q2_k(const float *src, void *dst, int64_t n)
{
	block_q2_k *b = dst;
	uint8_t q[QK_K];

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float a[16], m[16], amax = 0.0f, mmax = 0.0f;

		for (int k = 0; k < 16; k++) {
			fit_affine(src + 16 * k, 16, 3, &a[k], &m[k]);
			amax = fmaxf(amax, a[k]);
			mmax = fmaxf(mmax, m[k]);
		}
		put_le16(b->d, infer_fp32_to_fp16(amax / 15.0f));
		put_le16(b->dmin, infer_fp32_to_fp16(mmax / 15.0f));
		const float d = half_le(b->d), dmin = half_le(b->dmin);

		for (int k = 0; k < 16; k++) {
			int sc = d > 0.0f ? clampi((int)lrintf(a[k] / d), 0, 15) : 0;
			int mq = dmin > 0.0f ? clampi((int)lrintf(m[k] / dmin), 0, 15) : 0;
			const float dl = d * sc, ml = dmin * mq;

			b->scales[k] = (uint8_t)(sc | (mq << 4));
			for (int l = 0; l < 16; l++)
				q[16 * k + l] = (uint8_t)(dl > 0.0f ?
					clampi((int)lrintf((src[16 * k + l] + ml) / dl), 0, 3) : 0);
		}
		/* Element 128h + 32p + 16s + l sits in qs[32h + 16s + l], bits 2p. */
		memset(b->qs, 0, sizeof(b->qs));
		for (int e = 0; e < QK_K; e++)
			b->qs[32 * (e / 128) + (e % 32)] |=
				(uint8_t)(q[e] << (2 * ((e % 128) / 32)));
	}
	return 0;
}

/* q3_K encoder: 16 sub-blocks of 16, x ~ (d * sc) * v with 6-bit signed sc
 * and v in -4..3, stored as 2 low bits in qs and the third in hmask. */
int quant_q3_k(const float *src, void *dst, int64_t n)
{
	block_q3_k *b = dst;

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float s[16], smax = 0.0f;

		for (int k = 0; k < 16; k++) {
			fit_symmetric(src + 16 * k, 4, &s[k]);
			smax = fmaxf(smax, fabsf(s[k]));
		}
		put_le16(b->d, infer_fp32_to_fp16(smax / 31.0f));
		const float d = half_le(b->d);

		memset(b->scales, 0, sizeof(b->scales));
		memset(b->qs, 0, sizeof(b->qs));
		memset(b->hmask, 0, sizeof(b->hmask));
		for (int k = 0; k < 16; k++) {
			const int sc = d > 0.0f ? clampi((int)lrintf(s[k] / d), -32, 31) : 0;
			const int u = sc + 32; /* stored biased */
			const float dl = d * sc;

			b->scales[k % 8] |= (uint8_t)((u & 0x0f) << (4 * (k / 8)));
			b->scales[8 + k % 4] |= (uint8_t)((u >> 4) << (2 * (k / 4)));
			for (int l = 0; l < 16; l++) {
				const int e = 16 * k + l;
				const int v = dl != 0.0f ?
					clampi((int)lrintf(src[e] / dl), -4, 3) : 0;
				const int w = v + 4; /* 0..7: low 2 bits + "no -4" bit */
				const int pos = 16 * ((e % 32) / 16) + l;

				b->qs[32 * (e / 128) + pos] |=
					(uint8_t)((w & 3) << (2 * ((e % 128) / 32)));
				if (w & 4)
					b->hmask[pos] |= (uint8_t)(1u << (e / 32));
			}
		}
	}
	return 0;
}

/* ---- q4_K / q5_K --------------------------------------------------------------------- */

/* 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes:
 * j < 4: low 6 bits of bytes j and j+4; j >= 4: 4 bits from byte j+4 and
 * the 2 top bits of bytes j-4 (scale) and j (min). */
static void k4_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
		*m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
	}
}

static void k4_pack_scales(const uint8_t *sc, const uint8_t *m, uint8_t *s)
{
	for (int j = 0; j < 4; j++) {
		s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
		s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
		s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
	}
}

int dequant_q4_k(const void *src, float *dst, int64_t n)
{
	const block_q4_k *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);
		const float dmin = half_le(b->dmin);

		for (int c = 0; c < 4; c++) {
			const uint8_t *q = b->qs + 32 * c;
			int sc, m;

			k4_scale_min(b->scales, 2 * c, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			k4_scale_min(b->scales, 2 * c + 1, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;

			for (int l = 0; l < 32; l++)
				*dst++ = d1 * (q[l] & 0x0f) - m1;
			for (int l = 0; l < 32; l++)
				*dst++ = d2 * (q[l] >> 4) - m2;
		}
	}
	return 0;
}

int dequant_q5_k(const void *src, float *dst, int64_t n)
{
	const block_q5_k *b = src;
	int lo[32], hi[32];

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);
		const float dmin = half_le(b->dmin);

		/* Chunk c of 64: low nibbles of qs[32c + l] with bit 2c of qh[l],
		 * then high nibbles with bit 2c + 1. */
		for (int c = 0; c < 4; c++) {
			const uint8_t *q = b->qs + 32 * c;
			int sc, m;

			for (int l = 0; l < 32; l++) {
				lo[l] = (q[l] & 0x0f) + 16 * ((b->qh[l] >> (2 * c)) & 1);
				hi[l] = (q[l] >> 4) + 16 * ((b->qh[l] >> (2 * c + 1)) & 1);
			}
			k4_scale_min(b->scales, 2 * c, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			k4_scale_min(b->scales, 2 * c + 1, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;

			for (int l = 0; l < 32; l++)
				*dst++ = d1 * lo[l] - m1;
			for (int l = 0; l < 32; l++)
				*dst++ = d2 * hi[l] - m2;
		}
	}
	return 0;
}

/* Fit x ~ a * q - m over one sub-block (q in 0..nmax, a >= 0, m >= 0) by
 * trying a range of step sizes and, for each assignment, the least-squares
 * (a, m). Our own search; returns the squared error. */
static float fit_affine(const float *x, int n, int nmax, float *a_out, float *m_out)
{
	float mn = 0.0f, mx = x[0];
	float best_err = INFINITY;

	/* Comparisons, not fminf/fmaxf, so that signed zeros give the same
	 * result in every build. mn <= 0: the offset only moves the grid down. */
	for (int j = 0; j < n; j++) {
		if (x[j] < mn)
			mn = x[j];
		if (x[j] > mx)
			mx = x[j];
	}
	*a_out = 0.0f;
	*m_out = 0.0f - mn; /* +0.0, never -0.0 */
	if (!(mx > mn))
		return 0.0f;
	for (int step = -8; step <= 8; step++) {
		const float iscale = (nmax + 0.125f * step) / (mx - mn);
		float sq = 0, sqq = 0, sx = 0, sxq = 0, a, off, err = 0;

		for (int j = 0; j < n; j++) {
			float q = fminf(fmaxf(rintf((x[j] - mn) * iscale), 0.0f), (float)nmax);

			sq += q;
			sqq += q * q;
			sx += x[j];
			sxq += x[j] * q;
		}
		float det = n * sqq - sq * sq;

		if (det <= 0.0f)
			continue;
		a = (n * sxq - sq * sx) / det;
		off = (sx - a * sq) / n; /* x ~ a q + off, off = -m */
		if (off > 0.0f) {        /* m must be >= 0: refit with off = 0 */
			off = 0.0f;
			a = sxq / sqq;
		}
		if (!(a > 0.0f))
			continue;
		for (int j = 0; j < n; j++) {
			float q = fminf(fmaxf(rintf((x[j] - off) / a), 0.0f), (float)nmax);
			float e = x[j] - (a * q + off);

			err += e * e;
		}
		if (err < best_err) {
			best_err = err;
			*a_out = a;
			*m_out = 0.0f - off;
		}
	}
	return best_err;
}

static uint8_t quant6(float v, float inv)
{
	int q = (int)lrintf(v * inv);

	return (uint8_t)(q < 0 ? 0 : q > 63 ? 63 : q);
}

/* Shared q4_K / q5_K encoder: 8 sub-blocks of 32, 6-bit scales and mins
 * against fp16 d and dmin, then the quants re-derived from the decoded
 * (rounded) scales so that the stored quants fit what will be decoded. */
static void k45_block(const float *x, int nmax, uint8_t *dh, uint8_t *dminh,
		      uint8_t *scales, uint8_t *q)
{
	float a[8], m[8], amax = 0.0f, mmax = 0.0f;
	uint8_t sc[8], mq[8];

	for (int j = 0; j < 8; j++) {
		fit_affine(x + 32 * j, 32, nmax, &a[j], &m[j]);
		amax = fmaxf(amax, a[j]);
		mmax = fmaxf(mmax, m[j]);
	}
	put_le16(dh, infer_fp32_to_fp16(amax / 63.0f));
	put_le16(dminh, infer_fp32_to_fp16(mmax / 63.0f));
	const float d = half_le(dh), dmin = half_le(dminh);

	for (int j = 0; j < 8; j++) {
		sc[j] = d > 0.0f ? quant6(a[j], 1.0f / d) : 0;
		mq[j] = dmin > 0.0f ? quant6(m[j], 1.0f / dmin) : 0;
	}
	k4_pack_scales(sc, mq, scales);
	for (int j = 0; j < 8; j++) {
		const float dl = d * sc[j], ml = dmin * mq[j];

		for (int l = 0; l < 32; l++) {
			int v = dl > 0.0f ? (int)lrintf((x[32 * j + l] + ml) / dl) : 0;

			q[32 * j + l] = (uint8_t)(v < 0 ? 0 : v > nmax ? nmax : v);
		}
	}
}

int quant_q4_k(const float *src, void *dst, int64_t n)
{
	block_q4_k *b = dst;
	uint8_t q[QK_K];

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		k45_block(src, 15, b->d, b->dmin, b->scales, q);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				b->qs[32 * c + l] =
					(uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
	}
	return 0;
}

int quant_q5_k(const float *src, void *dst, int64_t n)
{
	block_q5_k *b = dst;
	uint8_t q[QK_K];

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		k45_block(src, 31, b->d, b->dmin, b->scales, q);
		memset(b->qh, 0, sizeof(b->qh));
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++) {
				uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];

				b->qs[32 * c + l] = (uint8_t)((lo & 0x0f) | ((hi & 0x0f) << 4));
				b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) |
						      ((hi >> 4) << (2 * c + 1)));
			}
	}
	return 0;
}

/* ---- q6_K ------------------------------------------------------------------------------ */

int dequant_q6_k(const void *src, float *dst, int64_t n)
{
	const block_q6_k *b = src;
	int q[128];

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = half_le(b->d);

		/* Per half of 128: ql[l] holds elements l (low nibble) and l+64
		 * (high), ql[l+32] elements l+32 and l+96; qh[l] their 2 top bits. */
		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = b->ql + 64 * h;
			const uint8_t *qh = b->qh + 32 * h;

			for (int l = 0; l < 32; l++) {
				q[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
				q[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
				q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
			}
			/* (d * sc) * q, in this order: the product can round. */
			for (int k = 0; k < 8; k++, dst += 16) {
				const float dl = d * b->scales[8 * h + k];

				for (int l = 0; l < 16; l++)
					dst[l] = dl * q[16 * k + l];
			}
		}
	}
	return 0;
}

/* Fit x ~ s * q over 16 values, q in -qmax..qmax-1: try step sizes around
 * the one that puts the extreme value on -qmax, keep the least-squares best. */
static float fit_symmetric(const float *x, int qmax, float *s_out)
{
	const float lo = (float)-qmax, hi = (float)(qmax - 1);
	float amax = 0.0f, max = 0.0f, best_err = INFINITY;

	for (int j = 0; j < 16; j++)
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	*s_out = 0.0f;
	if (amax == 0.0f)
		return 0.0f;
	for (int step = -8; step <= 8; step++) {
		const float iscale = -(qmax + 0.125f * step * qmax / 32.0f) / max;
		float sxq = 0, sqq = 0, sc, err = 0;

		for (int j = 0; j < 16; j++) {
			float q = fminf(fmaxf(rintf(x[j] * iscale), lo), hi);

			sxq += x[j] * q;
			sqq += q * q;
		}
		if (sqq == 0.0f)
			continue;
		sc = sxq / sqq;
		for (int j = 0; j < 16; j++) {
			float q = fminf(fmaxf(rintf(x[j] / sc), lo), hi);
			float e = x[j] - sc * q;

			err += e * e;
		}
		if (err < best_err) {
			best_err = err;
			*s_out = sc;
		}
	}
	return best_err;
}

int quant_q6_k(const float *src, void *dst, int64_t n)
{
	block_q6_k *b = dst;
	uint8_t q[QK_K];

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float s[16], smax = 0.0f;

		for (int k = 0; k < 16; k++) {
			fit_symmetric(src + 16 * k, 32, &s[k]);
			smax = fmaxf(smax, fabsf(s[k]));
		}
		put_le16(b->d, infer_fp32_to_fp16(smax / 127.0f));
		const float d = half_le(b->d);

		for (int k = 0; k < 16; k++) {
			int sc = d > 0.0f ? (int)lrintf(s[k] / d) : 0;

			sc = sc < -128 ? -128 : sc > 127 ? 127 : sc;
			b->scales[k] = (int8_t)sc;
			const float dl = d * sc;

			for (int l = 0; l < 16; l++) {
				int v = dl != 0.0f ? (int)lrintf(src[16 * k + l] / dl) : 0;

				v = v < -32 ? -32 : v > 31 ? 31 : v;
				q[16 * k + l] = (uint8_t)(v + 32);
			}
		}
		for (int h = 0; h < 2; h++) {
			uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
			const uint8_t *qq = q + 128 * h;

			for (int l = 0; l < 32; l++) {
				ql[l] = (uint8_t)((qq[l] & 0x0f) | ((qq[l + 64] & 0x0f) << 4));
				ql[l + 32] = (uint8_t)((qq[l + 32] & 0x0f) | ((qq[l + 96] & 0x0f) << 4));
				qh[l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
						  ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
			}
		}
	}
	return 0;
}

/* ---- q8_K ------------------------------------------------------------------------------ */

int dequant_q8_k(const void *src, float *dst, int64_t n)
{
	const block_q8_k *b = src;

	for (int64_t i = 0; i < n / QK_K; i++, b++) {
		const float d = f32_from_bits(le32(b->d));

		for (int j = 0; j < QK_K; j++)
			*dst++ = d * b->qs[j];
	}
	return 0;
}

/* The extreme value maps to -127 (ggml's rule: keeps +-127 symmetric);
 * d = 1 / iscale is stored as float32, with the 16 sums of 16 quants. */
int quant_q8_k(const float *src, void *dst, int64_t n)
{
	block_q8_k *b = dst;

	for (int64_t i = 0; i < n / QK_K; i++, b++, src += QK_K) {
		float amax = 0.0f, max = 0.0f;

		for (int j = 0; j < QK_K; j++)
			if (fabsf(src[j]) > amax) {
				amax = fabsf(src[j]);
				max = src[j];
			}
		memset(b, 0, sizeof(*b));
		if (amax == 0.0f)
			continue;
		const float iscale = -127.0f / max;

		for (int j = 0; j < QK_K; j++) {
			long v = lrintf(iscale * src[j]);

			b->qs[j] = (int8_t)(v > 127 ? 127 : v);
		}
		for (int k = 0; k < 16; k++) {
			int sum = 0;

			for (int l = 0; l < 16; l++)
				sum += b->qs[16 * k + l];
			put_le16(b->bsums + 2 * k, (uint16_t)(int16_t)sum);
		}
		put_le32(b->d, f32_bits(1.0f / iscale));
	}
	return 0;
}
