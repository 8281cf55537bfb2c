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

/* Bytes of (y:x) picked by the low nibbles of s (0..7 each), as the
 * device's __byte_perm without its sign-replicate mode: one PRMT. */
HD uint32_t bperm(uint32_t x, uint32_t y, uint32_t s)
{
#ifdef __CUDA_ARCH__
	return __byte_perm(x, y, s);
#else
	const uint64_t v = x | ((uint64_t)y << 32);
	uint32_t r = 0;
	for (int i = 0; i < 4; i++)
		r |= (uint32_t)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
	return r;
#endif
}

/* x rotated left by s (0..31): one funnel shift on the device. */
HD uint32_t rotl32(uint32_t x, int s)
{
#ifdef __CUDA_ARCH__
	return __funnelshift_l(x, x, s);
#else
	return (x << s) | (x >> ((32 - s) & 31));
#endif
}

/* Each fast form also has dot(b, g, x, xsum): the group's dot product with
 * x[0..8) with the block scale applied once to the sum of (integer) quant
 * times x instead of to every weight (xsum = x[0] + ... + x[7], for the
 * formats with a min). The rounding differs from the sum of deq(w) * x by a
 * few ulp of the group's sum.
 *
 * The decode mat-vec kernels are bound by instruction issue in this phase
 * (some 40 warps per SM all decoding), so dot works on 32-bit words of four
 * quants: one shift and one AND give four nibbles, the high bits of q5_0
 * and q6_K join them a word at a time, and byte_f turns each byte into a
 * float minus the format's offset with one permute and one add. */

/* Byte i (0..3) of w minus off, exactly, for base = 2^23 + off: the byte
 * spliced under the exponent of 2^23 (0x4B000000, whose mantissa unit is 1)
 * is 2^23 + byte, and subtracting base leaves byte - off with no rounding
 * (both lie in [2^23, 2^24)). On the device that is one PRMT (integer pipe)
 * and one FADD (FMA pipe). A plain (float) of a byte compiles to I2F.U8 or
 * I2F.S8 with a byte selector on sm_90, a conversion-pipe instruction (16
 * per clock per SM in the CUDA guide's throughput table, against 64 for
 * the integer pipe and 128 for FP32); the integer-pipe I2FP converts whole
 * words only and would need an extract first. The offset rides in base at
 * no cost, so no off * xsum term has to cancel against the sum. */
HD float byte_f(uint32_t w, int i, float base)
{
	return bits_f32(bperm(w, 0x4B000000u, 0x7440u | i)) - base;
}

#define QF_2P23 8388608.0f /* 2^23 */

/* s + sum over the four bytes of w of (byte i - off) times x[i]. */
HD float dot4(uint32_t w, const float *x, float base, float s)
{
	for (int i = 0; i < 4; i++)
		s = fmaf(byte_f(w, i, base), x[i], s);
	return s;
}

/* Four bits of t to bit 4 of bytes 0..3 (the fifth bits of q5_0): bits
 * 0..3 (hi = 0) or 4..7 (hi = 1) of t, the others masked off first. The
 * product is four copies of the masked t whose set bits do not overlap, so
 * there are no carries and bit b of the nibble lands on bit 8b + 4. */
HD uint32_t spread4(uint32_t t, int hi)
{
	if (hi)
		return ((t & 0xf0u) * 0x00204081u) & 0x10101010u;
	return ((t & 0x0fu) * 0x02040810u) & 0x10101010u;
}

/* The types with a fast form, as (type id, decoder) for switch dispatch. */
#define QFAST_TYPES(CALL) CALL(6, t_q5_0) CALL(8, t_q8_0) CALL(12, t_q4_K) CALL(14, t_q6_K)

/* Whether type id `type` has a fast form (the decode mat-vec's q|k|v kernel
 * and the self-test's qfast checks ask). */
static inline bool qfast_type(uint32_t type)
{
	switch (type) {
#define QF_CASE(id, T) case id:
		QFAST_TYPES(QF_CASE)
#undef QF_CASE
		return true;
	default:
		return false;
	}
}

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
	/* Signed bytes with the sign bit flipped read as byte + 128. */
	static HD float dot(const uint8_t *b, int g, const float *x, float)
	{
		const float base = QF_2P23 + 128.0f;
		float d = h2f((uint16_t)ldw16(b));
		uint32_t lo, hi;
		ld8_a2(b + 2 + g * 8, &lo, &hi);
		float s = dot4(lo ^ 0x80808080u, x, base, 0.0f);
		return d * dot4(hi ^ 0x80808080u, x + 4, base, s);
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
	/* Words of four 5-bit quants: the nibbles, fifth bits on bit 4. */
	static HD float dot(const uint8_t *b, int g, const float *x, float)
	{
		const float base = QF_2P23 + 16.0f;
		float d = h2f((uint16_t)ldw16(b));
		uint32_t qh = (ldw16(b + 2) | (ldw16(b + 4) << 16)) >> (g * 8), lo, hi;
		ld8_a2(b + 6 + (g & 1) * 8, &lo, &hi);
		int sh = (g >> 1) * 4;
		lo = ((lo >> sh) & 0x0f0f0f0fu) | spread4(qh, 0);
		hi = ((hi >> sh) & 0x0f0f0f0fu) | spread4(qh, 1);
		float s = dot4(lo, x, base, 0.0f);
		return d * dot4(hi, x + 4, base, s);
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
		const unsigned ug = (unsigned)g;
		const int j = ug >> 2, h = j & 1, c = ug >> 3, l0 = (ug & 3) * 8;
		float dl, ml;
		scales(b, j, &dl, &ml);
		const uint8_t *q = b + 16 + c * 32 + l0;
		uint32_t lo = (ldw32(q) >> (4 * h)) & 0x0f0f0f0fu;
		uint32_t hi = (ldw32(q + 4) >> (4 * h)) & 0x0f0f0f0fu;
		float s = dot4(lo, x, QF_2P23, 0.0f);
		return dl * dot4(hi, x + 4, QF_2P23, s) - ml * xsum;
	}
	/* Scale and min of sub-block j, the values group() yields, without its
	 * branch on j < 4: consecutive lanes take consecutive groups, so j
	 * differs inside a warp and a branch (or a body duplicated per side,
	 * as nvcc does for group()'s) would run both sides. The byte picks are
	 * permutes whose selectors depend on j only, shared by every row. */
	static HD void scales(const uint8_t *b, int j, float *dlp, float *mlp)
	{
		uint32_t dd = ldw32(b), s0 = ldw32(b + 4), s1 = ldw32(b + 8), s2 = ldw32(b + 12);
		const bool lo = j < 4;
		const int jj = j & 3, sh = 8 * jj + 2, msh = lo ? 0 : 4;
		const uint32_t pick = lo ? jj : 4 + jj, ma = lo ? 63 : 15, mb = lo ? 0 : 0x30;
		// j < 4: the low 6 bits of byte j of s0 (scale) and s1 (min);
		// j >= 4: the low 4 bits from byte j - 4 of s2 (the min's in its
		// high nibble), the top 2 from the same byte of s0 (s1).
		uint32_t sc = (bperm(s0, s2, pick) & ma) | ((s0 >> sh) & mb);
		uint32_t m = ((bperm(s1, s2, pick) >> msh) & ma) | ((s1 >> sh) & mb);
		*dlp = fmul_x(h2f((uint16_t)(dd & 0xffff)), (float)sc);
		*mlp = fmul_x(h2f((uint16_t)(dd >> 16)), (float)m);
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
	/* Words of four 6-bit quants: the nibbles, 2 high bits on bits 4..5.
	 * Bits 2k..2k+1 of each qh byte reach bits 4..5 of the same byte by a
	 * rotation left by 4 - 2k (mod 32): no bit crosses a byte boundary
	 * inside the kept field, whichever the direction. */
	static HD float dot(const uint8_t *b, int g, const float *x, float)
	{
		const float base = QF_2P23 + 32.0f;
		const unsigned ug = (unsigned)g;
		const int n = ug >> 4, k = (ug >> 2) & 3, l0 = (ug & 3) * 8;
		uint32_t l_lo, l_hi, h_lo, h_hi;
		ld8_a2(b + n * 64 + (k & 1) * 32 + l0, &l_lo, &l_hi);
		ld8_a2(b + 128 + n * 32 + l0, &h_lo, &h_hi);
		const int lsh = (k >> 1) * 4, rot = (4 - 2 * k) & 31;
		const uint32_t hm = 0x03030303u << (2 * k);
		l_lo = ((l_lo >> lsh) & 0x0f0f0f0fu) | rotl32(h_lo & hm, rot);
		l_hi = ((l_hi >> lsh) & 0x0f0f0f0fu) | rotl32(h_hi & hm, rot);
		float s = dot4(l_lo, x, base, 0.0f);
		return scale(b, n, k, l0) * dot4(l_hi, x + 4, base, s);
	}
	/* Scale d * sc of the 16 elements at 128n + 32k + l0. */
	static HD float scale(const uint8_t *b, int n, int k, int l0)
	{
		float d = h2f((uint16_t)ldw16(b + 208));
		// The scale byte is signed; read through its aligned 2-byte word.
		int si = 192 + n * 8 + 2 * k + l0 / 16;
		int sc = (int)(int8_t)(ldw16(b + (si & ~1)) >> (8 * (si & 1)));
		return fmul_x(d, (float)sc);
	}
	/* The 8 signed quants of group g and their scale d * sc. */
	static HD float group(const uint8_t *b, int g, int *q)
	{
		int e0 = g * 8, n = e0 / 128, k = (e0 % 128) / 32, l0 = e0 % 32;
		uint32_t l_lo, l_hi, h_lo, h_hi;
		ld8_a2(b + n * 64 + (k & 1) * 32 + l0, &l_lo, &l_hi);
		ld8_a2(b + 128 + n * 32 + l0, &h_lo, &h_hi);
		int lsh = k >= 2 ? 4 : 0, hsh = 2 * k;
		for (int i = 0; i < 8; i++) {
			int lo = (int)((byte_of(l_lo, l_hi, i) >> lsh) & 0xf);
			int hb = (int)((byte_of(h_lo, h_hi, i) >> hsh) & 3);
			q[i] = (lo | (hb << 4)) - 32;
		}
		return scale(b, n, k, l0);
	}
};

#endif
