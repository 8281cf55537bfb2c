/* Block decoders of every GGUF storage type the CPU backend supports, written
 * once as __host__ __device__ functions so the same source is (a) the body of
 * the dequant and fused mat-vec kernels and (b) checkable on the host against
 * the golden blocks without a GPU (kernels/selftest).
 *
 * Layouts and formulas are ggml's (src/ggml-common.h and ggml-quants.c at
 * commit d99724f2, the commit of ../shared/conformance); the CPU versions are
 * in runtime/src/quant/. Each decoder yields G consecutive elements ("a
 * group") of a block; for every quantized type G = 8 because all of them keep
 * one scale per 8 or more consecutive elements, so a group never straddles a
 * scale. Plain types (f32, f16, bf16, integers, f64) have G = 1.
 *
 * Bit-exactness: every product and sum below is the same IEEE operation, in
 * the same order, as ggml's scalar code, and on the device they are written
 * with __fmul_rn/__fadd_rn so nvcc cannot contract them into FMAs (which
 * would round differently when a product underflows). The kernels are built
 * without fast-math, so subnormals survive (no FTZ). */
#ifndef INFER_QFORMATS_CUH
#define INFER_QFORMATS_CUH

#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#define HD __host__ __device__ __forceinline__

/* Format tables of the grid i-quants and the non-linear 4-bit codebooks;
 * host: the runtime's arrays (runtime/src/quant/iq_tables.c), device: copies
 * uploaded once (dequant.cu). */
struct iq_tabs {
	const uint8_t *ksigns;    /* [128] */
	const uint64_t *iq2xxs;   /* [256] */
	const uint64_t *iq2xs;    /* [512] */
	const uint64_t *iq2s;     /* [1024] */
	const uint32_t *iq3xxs;   /* [256] */
	const uint32_t *iq3s;     /* [512] */
	const uint64_t *iq1s;     /* [2048] */
	const int8_t *iq4nl;      /* [16] */
	const int8_t *fp4;        /* [16] doubled E2M1 values (kvalues_mxfp4) */
};

/* ---- exact scalar helpers ------------------------------------------------ */

HD float fmul_x(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fmul_rn(a, b);
#else
	return a * b;
#endif
}

HD float fadd_x(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fadd_rn(a, b);
#else
	return a + b;
#endif
}

HD float fsub_x(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fsub_rn(a, b);
#else
	return a - b;
#endif
}

HD uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

HD uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

HD float bits_f32(uint32_t u)
{
#ifdef __CUDA_ARCH__
	return __uint_as_float(u);
#else
	float f;
	memcpy(&f, &u, 4);
	return f;
#endif
}

/* IEEE half -> float, exact for subnormals (hardware cvt on the device). */
HD float h2f(uint16_t h)
{
#ifdef __CUDA_ARCH__
	return __half2float(__ushort_as_half(h));
#else
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
	if (e == 0x1f)
		return bits_f32(sign | 0x7f800000u | (m << 13));
	if (e == 0) {
		if (!m)
			return bits_f32(sign);
		/* subnormal: m * 2^-24 is exact in float */
		float v = (float)m * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	return bits_f32(sign | ((e + 112) << 23) | (m << 13));
#endif
}

HD float rdh(const uint8_t *p)
{
	return h2f(rd16(p));
}

HD float bf2f(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

/* ---- traits: one struct per type ------------------------------------------
 * BS elements per block, TS bytes per block, G elements per decode call. */

#define QTYPE(NAME, BS_, TS_, G_)                                                    \
	struct NAME {                                                                \
		static constexpr int BS = BS_, TS = TS_, G = G_;                     \
		static HD void deq(const uint8_t *b, int g, float *y, const iq_tabs &t); \
	};                                                                           \
	HD void NAME::deq(const uint8_t *b, int g, float *y, const iq_tabs &t)

QTYPE(t_f32, 1, 4, 1)
{
	y[0] = bits_f32(rd32(b));
}

QTYPE(t_f16, 1, 2, 1)
{
	y[0] = rdh(b);
}

QTYPE(t_bf16, 1, 2, 1)
{
	y[0] = bf2f(rd16(b));
}

QTYPE(t_i8, 1, 1, 1)
{
	y[0] = (float)(int8_t)b[0];
}

QTYPE(t_i16, 1, 2, 1)
{
	y[0] = (float)(int16_t)rd16(b);
}

QTYPE(t_i32, 1, 4, 1)
{
	y[0] = (float)(int32_t)rd32(b);
}

QTYPE(t_i64, 1, 8, 1)
{
	uint64_t u = (uint64_t)rd32(b) | ((uint64_t)rd32(b + 4) << 32);
	y[0] = (float)(int64_t)u;
}

QTYPE(t_f64, 1, 8, 1)
{
	uint64_t u = (uint64_t)rd32(b) | ((uint64_t)rd32(b + 4) << 32);
	double v;
#ifdef __CUDA_ARCH__
	v = __longlong_as_double((long long)u);
#else
	memcpy(&v, &u, 8);
#endif
	y[0] = (float)v;
}

/* q4_0 {d; qs[16]}: byte j holds element j (low) and j+16 (high). */
QTYPE(t_q4_0, 32, 18, 8)
{
	float d = rdh(b);
	const uint8_t *qs = b + 2 + (g & 1) * 8;
	int hi = g >> 1;
	for (int i = 0; i < 8; i++) {
		int q = hi ? qs[i] >> 4 : qs[i] & 0xf;
		y[i] = fmul_x((float)(q - 8), d);
	}
}

QTYPE(t_q4_1, 32, 20, 8)
{
	float d = rdh(b), m = rdh(b + 2);
	const uint8_t *qs = b + 4 + (g & 1) * 8;
	int hi = g >> 1;
	for (int i = 0; i < 8; i++) {
		int q = hi ? qs[i] >> 4 : qs[i] & 0xf;
		y[i] = fadd_x(fmul_x((float)q, d), m);
	}
}

/* q5_0 {d; qh (u32); qs[16]}: bit e of qh is the fifth bit of element e. */
QTYPE(t_q5_0, 32, 22, 8)
{
	float d = rdh(b);
	uint32_t qh = rd32(b + 2);
	const uint8_t *qs = b + 6 + (g & 1) * 8;
	int hi = g >> 1;
	for (int i = 0; i < 8; i++) {
		int e = g * 8 + i;
		int q = (hi ? qs[i] >> 4 : qs[i] & 0xf) | (int)(((qh >> e) & 1) << 4);
		y[i] = fmul_x((float)(q - 16), d);
	}
}

QTYPE(t_q5_1, 32, 24, 8)
{
	float d = rdh(b), m = rdh(b + 2);
	uint32_t qh = rd32(b + 4);
	const uint8_t *qs = b + 8 + (g & 1) * 8;
	int hi = g >> 1;
	for (int i = 0; i < 8; i++) {
		int e = g * 8 + i;
		int q = (hi ? qs[i] >> 4 : qs[i] & 0xf) | (int)(((qh >> e) & 1) << 4);
		y[i] = fadd_x(fmul_x((float)q, d), m);
	}
}

QTYPE(t_q8_0, 32, 34, 8)
{
	float d = rdh(b);
	const int8_t *qs = (const int8_t *)(b + 2) + g * 8;
	for (int i = 0; i < 8; i++)
		y[i] = fmul_x((float)qs[i], d);
}

/* q8_1 {d; s; qs[32]}: s is only for dot products. */
QTYPE(t_q8_1, 32, 36, 8)
{
	float d = rdh(b);
	const int8_t *qs = (const int8_t *)(b + 4) + g * 8;
	for (int i = 0; i < 8; i++)
		y[i] = fmul_x((float)qs[i], d);
}

/* q1_0 {d; qs[16]}: bit e set -> +d, clear -> -d. */
QTYPE(t_q1_0, 128, 18, 8)
{
	float d = rdh(b);
	uint8_t bits = b[2 + g];
	for (int i = 0; i < 8; i++)
		y[i] = (bits >> i) & 1 ? d : -d;
}

/* q2_0 {d; qs[16]}: element e at bits 2*(e%4) of byte e/4, x = (q - 1) * d. */
QTYPE(t_q2_0, 64, 18, 8)
{
	float d = rdh(b);
	for (int i = 0; i < 8; i++) {
		int e = g * 8 + i;
		int q = (b[2 + e / 4] >> (2 * (e % 4))) & 3;
		y[i] = fmul_x((float)(q - 1), d);
	}
}

/* E8M0 exponent -> 2^(e-127) / 2 (the E2M1 table is doubled). */
HD float e8m0_half(uint8_t e)
{
	uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
	return bits_f32(bits);
}

/* UE4M3 sub-block scale, halved like e8m0_half; 0 and 0x7f decode to 0 and
 * bit 7 is ignored (as in ggml). All values are exact in float. */
HD float ue4m3_half(uint8_t x)
{
	if (x == 0 || x == 0x7f)
		return 0.0f;
	int e = (x >> 3) & 0xf, m = x & 7;
	float raw;
	if (e == 0)
		raw = (float)m * (1.0f / 512.0f);
	else
		raw = (1.0f + (float)m / 8.0f) * bits_f32((uint32_t)(e - 7 + 127) << 23);
	return raw * 0.5f;
}

QTYPE(t_mxfp4, 32, 17, 8)
{
	float d = e8m0_half(b[0]);
	const uint8_t *qs = b + 1 + (g & 1) * 8;
	int hi = g >> 1;
	for (int i = 0; i < 8; i++) {
		int q = hi ? qs[i] >> 4 : qs[i] & 0xf;
		y[i] = fmul_x((float)t.fp4[q], d);
	}
}

/* nvfp4 {d[4]; qs[32]}: sub-block s (16 elements) uses qs[8s..8s+7],
 * elements 0..7 in the low nibbles, 8..15 in the high. */
QTYPE(t_nvfp4, 64, 36, 8)
{
	int s = g >> 1, hi = g & 1;
	float d = ue4m3_half(b[s]);
	const uint8_t *qs = b + 4 + s * 8;
	for (int i = 0; i < 8; i++) {
		int q = hi ? qs[i] >> 4 : qs[i] & 0xf;
		y[i] = fmul_x((float)t.fp4[q], d);
	}
}

/* q2_K {scales[16]; qs[64]; d; dmin}: element e = 128n + 32j + 16h + l has
 * scale index 8n + 2j + h and its 2 bits at shift 2j of qs[32n + 16h + l]. */
QTYPE(t_q2_K, 256, 84, 8)
{
	float d = rdh(b + 80), dmin = rdh(b + 82);
	int e0 = g * 8, n = e0 / 128, j = (e0 % 128) / 32, h = (e0 % 32) / 16, l0 = e0 % 16;
	uint8_t sc = b[n * 8 + j * 2 + h];
	float dl = fmul_x(d, (float)(sc & 0xf)), ml = fmul_x(dmin, (float)(sc >> 4));
	const uint8_t *q = b + 16 + n * 32 + h * 16 + l0;
	for (int i = 0; i < 8; i++)
		y[i] = fsub_x(fmul_x(dl, (float)((q[i] >> (2 * j)) & 3)), ml);
}

/* The 16 six-bit scales of q3_K: low nibble from byte i%8 (high nibble when
 * i >= 8), top two bits from byte 8 + i%4 at shift 2*(i/4). */
HD int q3k_scale(const uint8_t *sc, int i)
{
	int lo = i < 8 ? sc[i] & 0xf : sc[i - 8] >> 4;
	int hi = (sc[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
	return (lo | (hi << 4)) - 32;
}

/* q3_K {hmask[32]; qs[64]; scales[12]; d}: element e = 128n + 32j + l32 has
 * low bits at shift 2j of qs[32n + l32], high bit 4n + j of hmask[l32]
 * (clear means -4), scale index 8n + 2j + l32/16. */
QTYPE(t_q3_K, 256, 110, 8)
{
	float dall = rdh(b + 108);
	int e0 = g * 8, n = e0 / 128, j = (e0 % 128) / 32, l0 = e0 % 32;
	float dl = fmul_x(dall, (float)q3k_scale(b + 96, n * 8 + j * 2 + l0 / 16));
	const uint8_t *hm = b + l0, *q = b + 32 + n * 32 + l0;
	uint8_t m = (uint8_t)(1u << (4 * n + j));
	for (int i = 0; i < 8; i++) {
		int v = ((q[i] >> (2 * j)) & 3) - ((hm[i] & m) ? 0 : 4);
		y[i] = fmul_x(dl, (float)v);
	}
}

/* Scale and min j (0..7) of q4_K/q5_K, six bits each in 12 bytes. */
HD void k4_scale_min(const uint8_t *q, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* q4_K {d; dmin; scales[12]; qs[128]}: element e = 64c + 32h + l is nibble h
 * of qs[32c + l] with scale/min 2c + h. */
QTYPE(t_q4_K, 256, 144, 8)
{
	float d = rdh(b), dmin = rdh(b + 2);
	int e0 = g * 8, c = e0 / 64, h = (e0 % 64) / 32, l0 = e0 % 32, sc, m;
	k4_scale_min(b + 4, 2 * c + h, &sc, &m);
	float dl = fmul_x(d, (float)sc), ml = fmul_x(dmin, (float)m);
	const uint8_t *q = b + 16 + c * 32 + l0;
	for (int i = 0; i < 8; i++) {
		int v = h ? q[i] >> 4 : q[i] & 0xf;
		y[i] = fsub_x(fmul_x(dl, (float)v), ml);
	}
}

/* q5_K {d; dmin; scales[12]; qh[32]; qs[128]}: as q4_K plus bit 2c + h of
 * qh[l] as the fifth bit. */
QTYPE(t_q5_K, 256, 176, 8)
{
	float d = rdh(b), dmin = rdh(b + 2);
	int e0 = g * 8, c = e0 / 64, h = (e0 % 64) / 32, l0 = e0 % 32, sc, m;
	k4_scale_min(b + 4, 2 * c + h, &sc, &m);
	float dl = fmul_x(d, (float)sc), ml = fmul_x(dmin, (float)m);
	const uint8_t *qh = b + 16 + l0, *q = b + 48 + c * 32 + l0;
	for (int i = 0; i < 8; i++) {
		int v = (h ? q[i] >> 4 : q[i] & 0xf) + ((qh[i] >> (2 * c + h)) & 1 ? 16 : 0);
		y[i] = fsub_x(fmul_x(dl, (float)v), ml);
	}
}

/* q6_K {ql[128]; qh[64]; scales[16]; d}: element e = 128n + 32k + l has low
 * nibble (k>=2: high nibble) of ql[64n + 32(k&1) + l], bits 2k.. of
 * qh[32n + l], scale 8n + 2k + l/16. */
QTYPE(t_q6_K, 256, 210, 8)
{
	float d = rdh(b + 208);
	int e0 = g * 8, n = e0 / 128, k = (e0 % 128) / 32, l0 = e0 % 32;
	const uint8_t *ql = b + n * 64 + (k & 1) * 32 + l0, *qh = b + 128 + n * 32 + l0;
	int sc = (int8_t)b[192 + n * 8 + 2 * k + l0 / 16];
	float ds = fmul_x(d, (float)sc);
	for (int i = 0; i < 8; i++) {
		int lo = k >= 2 ? ql[i] >> 4 : ql[i] & 0xf;
		int v = (lo | (((qh[i] >> (2 * k)) & 3) << 4)) - 32;
		y[i] = fmul_x(ds, (float)v);
	}
}

QTYPE(t_q8_K, 256, 292, 8)
{
	float d = bits_f32(rd32(b));
	const int8_t *qs = (const int8_t *)(b + 4) + g * 8;
	for (int i = 0; i < 8; i++)
		y[i] = fmul_x(d, (float)qs[i]);
}

/* Trit from a byte of tq1_0's base-3 fixed-point encoding, digit n. */
HD int tq1_trit(uint8_t byte, int n)
{
	const uint8_t pow3[6] = { 1, 3, 9, 27, 81, 243 };
	uint8_t q = (uint8_t)(byte * pow3[n]);
	return (int)(((uint16_t)q * 3) >> 8);
}

/* tq1_0 {qs[48]; qh[4]; d}: elements 0..159 are digit e/32 of qs[e%32],
 * 160..239 digit (e-160)/16 of qs[32 + e%16], 240..255 digit (e-240)/4 of
 * qh[e%4]. */
QTYPE(t_tq1_0, 256, 54, 8)
{
	float d = rdh(b + 52);
	for (int i = 0; i < 8; i++) {
		int e = g * 8 + i, v;
		if (e < 160)
			v = tq1_trit(b[e % 32], e / 32);
		else if (e < 240)
			v = tq1_trit(b[32 + (e - 160) % 16], (e - 160) / 16);
		else
			v = tq1_trit(b[48 + (e - 240) % 4], (e - 240) / 4);
		y[i] = fmul_x((float)(v - 1), d);
	}
}

/* tq2_0 {qs[64]; d}: element e = 128c + 32l + m at shift 2l of qs[32c + m]. */
QTYPE(t_tq2_0, 256, 66, 8)
{
	float d = rdh(b + 64);
	int e0 = g * 8, c = e0 / 128, l = (e0 % 128) / 32, m0 = e0 % 32;
	for (int i = 0; i < 8; i++) {
		int q = (b[32 * c + m0 + i] >> (2 * l)) & 3;
		y[i] = fmul_x((float)(q - 1), d);
	}
}

QTYPE(t_iq4_nl, 32, 18, 8)
{
	float d = rdh(b);
	const uint8_t *qs = b + 2 + (g & 1) * 8;
	int hi = g >> 1;
	for (int i = 0; i < 8; i++) {
		int q = hi ? qs[i] >> 4 : qs[i] & 0xf;
		y[i] = fmul_x(d, (float)t.iq4nl[q]);
	}
}

/* iq4_xs {d; scales_h; scales_l[4]; qs[128]}: 8 sub-blocks of 32 as iq4_nl
 * with six-bit scales (biased by 32). */
QTYPE(t_iq4_xs, 256, 136, 8)
{
	float d = rdh(b);
	int ib = g / 4, gg = g % 4;
	int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) | (((rd16(b + 2) >> (2 * ib)) & 3) << 4);
	float dl = fmul_x(d, (float)(ls - 32));
	const uint8_t *qs = b + 8 + ib * 16 + (gg & 1) * 8;
	int hi = gg >> 1;
	for (int i = 0; i < 8; i++) {
		int q = hi ? qs[i] >> 4 : qs[i] & 0xf;
		y[i] = fmul_x(dl, (float)t.iq4nl[q]);
	}
}

/* y[i] = db * grid byte i * sign bit i (grid entries pack bytes LE). */
HD void grid8(float db, uint64_t grid, uint8_t signs, float *y)
{
	for (int i = 0; i < 8; i++) {
		float s = (signs >> i) & 1 ? -1.0f : 1.0f;
		y[i] = fmul_x(fmul_x(db, (float)(uint8_t)(grid >> (8 * i))), s);
	}
}

/* iq2_xxs {d; qs[64]}: per 32 elements 4 grid-index bytes and a u32 of four
 * 7-bit sign indices plus a 4-bit scale. */
QTYPE(t_iq2_xxs, 256, 66, 8)
{
	float d = rdh(b);
	int ib = g / 4, l = g % 4;
	const uint8_t *q = b + 2 + 8 * ib;
	uint32_t aux = rd32(q + 4);
	float db = fmul_x(fmul_x(d, 0.5f + (float)(aux >> 28)), 0.25f);
	grid8(db, t.iq2xxs[q[l]], t.ksigns[(aux >> (7 * l)) & 127], y);
}

QTYPE(t_iq2_xs, 256, 74, 8)
{
	float d = rdh(b);
	int ib = g / 4, l = g % 4;
	uint16_t v = rd16(b + 2 + 2 * (4 * ib + l));
	uint8_t sc = b[66 + ib];
	float db = fmul_x(fmul_x(d, 0.5f + (float)(l < 2 ? sc & 0xf : sc >> 4)), 0.25f);
	grid8(db, t.iq2xs[v & 511], t.ksigns[v >> 9], y);
}

/* iq2_s {d; qs[32] + signs[32]; qh[8]; scales[8]}: 10-bit grid indices. */
QTYPE(t_iq2_s, 256, 82, 8)
{
	float d = rdh(b);
	int ib = g / 4, l = g % 4;
	const uint8_t *qs = b + 2, *qh = b + 66, *sc = b + 74;
	float db = fmul_x(fmul_x(d, 0.5f + (float)(l < 2 ? sc[ib] & 0xf : sc[ib] >> 4)), 0.25f);
	int idx = qs[4 * ib + l] | ((qh[ib] << (8 - 2 * l)) & 0x300);
	grid8(db, t.iq2s[idx], qs[32 + 4 * ib + l], y);
}

/* Two 4-value grid entries (u32 each) as one 8-value group. */
HD void grid44(float db, uint32_t g1, uint32_t g2, uint8_t signs, float *y)
{
	grid8(db, (uint64_t)g1 | ((uint64_t)g2 << 32), signs, y);
}

/* iq3_xxs {d; qs[64] grid indices; 8 x u32 sign indices + scale}. */
QTYPE(t_iq3_xxs, 256, 98, 8)
{
	float d = rdh(b);
	int ib = g / 4, l = g % 4;
	const uint8_t *qs = b + 2 + 8 * ib;
	uint32_t aux = rd32(b + 66 + 4 * ib);
	float db = fmul_x(fmul_x(d, 0.5f + (float)(aux >> 28)), 0.5f);
	grid44(db, t.iq3xxs[qs[2 * l]], t.iq3xxs[qs[2 * l + 1]], t.ksigns[(aux >> (7 * l)) & 127], y);
}

/* iq3_s {d; qs[64]; qh[8]; signs[32]; scales[4]}: 9-bit grid indices. */
QTYPE(t_iq3_s, 256, 110, 8)
{
	float d = rdh(b);
	int ib = g / 4, l = g % 4;
	const uint8_t *qs = b + 2 + 8 * ib, *qh = b + 66, *signs = b + 74, *sc = b + 106;
	int s4 = ib % 2 ? sc[ib / 2] >> 4 : sc[ib / 2] & 0xf;
	float db = fmul_x(d, (float)(1 + 2 * s4));
	int i1 = qs[2 * l] | ((qh[ib] << (8 - 2 * l)) & 256);
	int i2 = qs[2 * l + 1] | ((qh[ib] << (7 - 2 * l)) & 256);
	grid44(db, t.iq3s[i1], t.iq3s[i2], signs[4 * ib + l], y);
}

/* y[i] = dl * (grid byte i (int8) + delta). */
HD void grid1(float dl, uint64_t grid, float delta, float *y)
{
	for (int i = 0; i < 8; i++)
		y[i] = fmul_x(dl, fadd_x((float)(int8_t)(uint8_t)(grid >> (8 * i)), delta));
}

/* iq1_s {d; qs[32]; qh[8 x u16]}. */
QTYPE(t_iq1_s, 256, 50, 8)
{
	float d = rdh(b);
	int ib = g / 4, l = g % 4;
	uint16_t qh = rd16(b + 34 + 2 * ib);
	float dl = fmul_x(d, (float)(2 * ((qh >> 12) & 7) + 1));
	float delta = qh & 0x8000 ? -0.125f : 0.125f;
	int idx = b[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);
	grid1(dl, t.iq1s[idx], delta, y);
}

/* iq1_m {qs[32]; qh[16]; scales[8]}: the fp16 super-scale is the top nibble
 * of each of the four u16 scale words. */
QTYPE(t_iq1_m, 256, 56, 8)
{
	const uint8_t *qs = b + 4 * (g / 4), *qh = b + 32 + 2 * (g / 4), *scb = b + 48;
	uint16_t s0 = rd16(scb), s1 = rd16(scb + 2), s2 = rd16(scb + 4), s3 = rd16(scb + 6);
	uint16_t sw[4] = { s0, s1, s2, s3 };
	float d = h2f((uint16_t)((s0 >> 12) | ((s1 >> 8) & 0x00f0) | ((s2 >> 4) & 0x0f00) |
				 (s3 & 0xf000)));
	int ib = g / 4, l = g % 4;
	int shift = 6 * (ib % 2) + (l < 2 ? 0 : 3);
	float dl = fmul_x(d, (float)(2 * ((sw[ib / 2] >> shift) & 7) + 1));
	uint8_t h = qh[l / 2];
	int idx = qs[l] | (l % 2 ? (h << 4) & 0x700 : (h << 8) & 0x700);
	float delta = (l % 2 ? h & 0x80 : h & 0x08) ? -0.125f : 0.125f;
	grid1(dl, t.iq1s[idx], delta, y);
}

#undef QTYPE

/* The weight types (every storage type but the integer and f64 ones):
 * CALL(T) in a case per id. */
#define QTYPE_WEIGHT_CASES(CALL)                                                     \
	case 0: CALL(t_f32); break;                                                  \
	case 1: CALL(t_f16); break;                                                  \
	case 2: CALL(t_q4_0); break;                                                 \
	case 3: CALL(t_q4_1); break;                                                 \
	case 6: CALL(t_q5_0); break;                                                 \
	case 7: CALL(t_q5_1); break;                                                 \
	case 8: CALL(t_q8_0); break;                                                 \
	case 9: CALL(t_q8_1); break;                                                 \
	case 10: CALL(t_q2_K); break;                                                \
	case 11: CALL(t_q3_K); break;                                                \
	case 12: CALL(t_q4_K); break;                                                \
	case 13: CALL(t_q5_K); break;                                                \
	case 14: CALL(t_q6_K); break;                                                \
	case 15: CALL(t_q8_K); break;                                                \
	case 16: CALL(t_iq2_xxs); break;                                             \
	case 17: CALL(t_iq2_xs); break;                                              \
	case 18: CALL(t_iq3_xxs); break;                                             \
	case 19: CALL(t_iq1_s); break;                                               \
	case 20: CALL(t_iq4_nl); break;                                              \
	case 21: CALL(t_iq3_s); break;                                               \
	case 22: CALL(t_iq2_s); break;                                               \
	case 23: CALL(t_iq4_xs); break;                                              \
	case 29: CALL(t_iq1_m); break;                                               \
	case 30: CALL(t_bf16); break;                                                \
	case 34: CALL(t_tq1_0); break;                                               \
	case 35: CALL(t_tq2_0); break;                                               \
	case 39: CALL(t_mxfp4); break;                                               \
	case 40: CALL(t_nvfp4); break;                                               \
	case 41: CALL(t_q1_0); break;                                                \
	case 42: CALL(t_q2_0); break;

/* Calls CALL(Traits) for type id `type`; does nothing when the id has no
 * decoder (the caller reports it by name). */
#define QTYPE_DISPATCH(type, CALL)                                                   \
	switch (type) {                                                              \
	QTYPE_WEIGHT_CASES(CALL)                                                     \
	case 24: CALL(t_i8); break;                                                  \
	case 25: CALL(t_i16); break;                                                 \
	case 26: CALL(t_i32); break;                                                 \
	case 27: CALL(t_i64); break;                                                 \
	case 28: CALL(t_f64); break;                                                 \
	default: break;                                                              \
	}

/* The same without the integer and f64 types (never weights): used where
 * each instantiation is expensive to compile. */
#define QTYPE_DISPATCH_WEIGHTS(type, CALL)                                           \
	switch (type) {                                                              \
	QTYPE_WEIGHT_CASES(CALL)                                                     \
	default: break;                                                              \
	}

#endif
