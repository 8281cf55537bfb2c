/* Group decoders with wide loads for the weight types of the decode path
 * (Q8_0, Q5_0, Q4_K, Q6_K: the types of the Q8_0 and Q4_K_M mixes at the
 * Qwen2.5-0.5B shape). They yield exactly the values of the byte-wise
 * decoders in qformats.cuh (the same float operations in the same order);
 * only the loads differ: 2-, 4- and 8-byte words instead of single bytes, so
 * a group costs 4-7 loads instead of 10-20.
 *
 * Alignment: every row and block size of these types is even, so 2-byte
 * words are aligned whenever the matrix base is; q4_K blocks (144 bytes) also
 * keep 8-byte words aligned. The caller checks the base pointer (8 bytes)
 * before choosing these decoders (matvec1.cu). Little-endian words, as on
 * the device and the x86/ARM hosts the self-test runs on. */
#ifndef INFER_QFAST_CUH
#define INFER_QFAST_CUH

#include "qformats.cuh"

/* Plain loads on the device (not __ldg): the persistent decode kernel runs
 * these decoders on weights staged in shared memory. */
HD uint32_t ldw16(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
	return *(const unsigned short *)p;
#else
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
#endif
}

HD uint32_t ldw32(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
	return *(const unsigned int *)p;
#else
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
#endif
}

/* 8 bytes at p (2-byte aligned) as two little-endian words. */
HD void ld8_a2(const uint8_t *p, uint32_t *lo, uint32_t *hi)
{
	*lo = ldw16(p) | (ldw16(p + 2) << 16);
	*hi = ldw16(p + 4) | (ldw16(p + 6) << 16);
}

HD uint32_t byte_of(uint32_t lo, uint32_t hi, int i)
{
	return ((i < 4 ? lo : hi) >> (8 * (i & 3))) & 0xff;
}

/* Each fast form also has dot(b, g, x, xsum): the group's dot product with
 * x[0..8) with the block scale applied once to the sum of (integer) quant
 * times x instead of to every weight (xsum = x[0] + ... + x[7], for the
 * formats with a min). Fewer instructions per weight; the rounding differs
 * from the sum of deq(w) * x by a few ulp of the group's sum. */

/* The types with a fast form, as (type id, decoder) for switch dispatch. */
#define QFAST_TYPES(CALL) CALL(6, t_q5_0) CALL(8, t_q8_0) CALL(12, t_q4_K) CALL(14, t_q6_K)

/* Default: no fast form, the generic decoder. */
template <typename T> struct qfast {
	static constexpr bool on = false;
	static HD void deq(const uint8_t *b, int g, float *y, const iq_tabs &t)
	{
		T::deq(b, g, y, t);
	}
};

template <> struct qfast<t_q8_0> {
	static constexpr bool on = true;
	static HD void deq(const uint8_t *b, int g, float *y, const iq_tabs &)
	{
		float d = h2f((uint16_t)ldw16(b));
		uint32_t lo, hi;
		ld8_a2(b + 2 + g * 8, &lo, &hi);
		for (int i = 0; i < 8; i++)
			y[i] = fmul_x((float)(int8_t)byte_of(lo, hi, i), d);
	}
	static HD float dot(const uint8_t *b, int g, const float *x, float)
	{
		float d = h2f((uint16_t)ldw16(b)), s = 0.0f;
		uint32_t lo, hi;
		ld8_a2(b + 2 + g * 8, &lo, &hi);
		for (int i = 0; i < 8; i++)
			s = fmaf((float)(int8_t)byte_of(lo, hi, i), x[i], s);
		return d * s;
	}
};

template <> struct qfast<t_q5_0> {
	static constexpr bool on = true;
	static HD void deq(const uint8_t *b, int g, float *y, const iq_tabs &)
	{
		float d = h2f((uint16_t)ldw16(b));
		uint32_t qh = ldw16(b + 2) | (ldw16(b + 4) << 16), lo, hi;
		ld8_a2(b + 6 + (g & 1) * 8, &lo, &hi);
		int sh = (g >> 1) * 4;
		for (int i = 0; i < 8; i++) {
			int e = g * 8 + i;
			int q = (int)((byte_of(lo, hi, i) >> sh) & 0xf) | (int)(((qh >> e) & 1) << 4);
			y[i] = fmul_x((float)(q - 16), d);
		}
	}
	static HD float dot(const uint8_t *b, int g, const float *x, float)
	{
		float d = h2f((uint16_t)ldw16(b)), s = 0.0f;
		uint32_t qh = (ldw16(b + 2) | (ldw16(b + 4) << 16)) >> (g * 8), lo, hi;
		ld8_a2(b + 6 + (g & 1) * 8, &lo, &hi);
		int sh = (g >> 1) * 4;
		for (int i = 0; i < 8; i++) {
			int q = (int)((byte_of(lo, hi, i) >> sh) & 0xf) | (int)(((qh >> i) & 1) << 4);
			s = fmaf((float)(q - 16), x[i], s);
		}
		return d * s;
	}
};

template <> struct qfast<t_q4_K> {
	static constexpr bool on = true;
	static HD void deq(const uint8_t *b, int g, float *y, const iq_tabs &)
	{
		float dl, ml;
		uint32_t lo, hi;
		int h = group(b, g, &dl, &ml, &lo, &hi);
		for (int i = 0; i < 8; i++) {
			uint32_t v = (byte_of(lo, hi, i) >> (4 * h)) & 0xf;
			y[i] = fsub_x(fmul_x(dl, (float)v), ml);
		}
	}
	static HD float dot(const uint8_t *b, int g, const float *x, float xsum)
	{
		float dl, ml, s = 0.0f;
		uint32_t lo, hi;
		int h = group(b, g, &dl, &ml, &lo, &hi);
		for (int i = 0; i < 8; i++)
			s = fmaf((float)((byte_of(lo, hi, i) >> (4 * h)) & 0xf), x[i], s);
		return dl * s - ml * xsum;
	}
	/* Sub-block scale and min of group g, its 8 quant bytes; returns the
	 * nibble (0 low, 1 high). */
	static HD int group(const uint8_t *b, int g, float *dlp, float *mlp, uint32_t *lop, uint32_t *hip)
	{
		uint32_t dd = ldw32(b);
		float d = h2f((uint16_t)(dd & 0xffff)), dmin = h2f((uint16_t)(dd >> 16));
		int e0 = g * 8, c = e0 / 64, h = (e0 % 64) / 32, l0 = e0 % 32, j = 2 * c + h;
		// The 12 scale bytes as three words; k4_scale_min's byte picks.
		uint32_t s0 = ldw32(b + 4), s1 = ldw32(b + 8), s2 = ldw32(b + 12);
		int sc, m;
		if (j < 4) {
			sc = (int)((s0 >> (8 * j)) & 63);
			m = (int)((s1 >> (8 * j)) & 63);
		} else {
			uint32_t a = (s2 >> (8 * (j - 4))) & 0xff;
			sc = (int)((a & 0xf) | (((s0 >> (8 * (j - 4))) & 0xff) >> 6 << 4));
			m = (int)((a >> 4) | (((s1 >> (8 * (j - 4))) & 0xff) >> 6 << 4));
		}
		*dlp = fmul_x(d, (float)sc);
		*mlp = fmul_x(dmin, (float)m);
		const uint8_t *q = b + 16 + c * 32 + l0;
		*lop = ldw32(q);
		*hip = ldw32(q + 4);
		return h;
	}
};

template <> struct qfast<t_q6_K> {
	static constexpr bool on = true;
	static HD void deq(const uint8_t *b, int g, float *y, const iq_tabs &)
	{
		int q[8];
		float ds = group(b, g, q);
		for (int i = 0; i < 8; i++)
			y[i] = fmul_x(ds, (float)q[i]);
	}
	static HD float dot(const uint8_t *b, int g, const float *x, float)
	{
		int q[8];
		float ds = group(b, g, q), s = 0.0f;
		for (int i = 0; i < 8; i++)
			s = fmaf((float)q[i], x[i], s);
		return ds * s;
	}
	/* The 8 signed quants of group g and their scale d * sc. */
	static HD float group(const uint8_t *b, int g, int *q)
	{
		float d = h2f((uint16_t)ldw16(b + 208));
		int e0 = g * 8, n = e0 / 128, k = (e0 % 128) / 32, l0 = e0 % 32;
		uint32_t l_lo, l_hi, h_lo, h_hi;
		ld8_a2(b + n * 64 + (k & 1) * 32 + l0, &l_lo, &l_hi);
		ld8_a2(b + 128 + n * 32 + l0, &h_lo, &h_hi);
		// The scale byte is signed; read through its aligned 2-byte word.
		int si = 192 + n * 8 + 2 * k + l0 / 16;
		int sc = (int)(int8_t)(ldw16(b + (si & ~1)) >> (8 * (si & 1)));
		int lsh = k >= 2 ? 4 : 0, hsh = 2 * k;
		for (int i = 0; i < 8; i++) {
			int lo = (int)((byte_of(l_lo, l_hi, i) >> lsh) & 0xf);
			int hb = (int)((byte_of(h_lo, h_hi, i) >> hsh) & 3);
			q[i] = (lo | (hb << 4)) - 32;
		}
		return fmul_x(d, (float)sc);
	}
};

#endif
