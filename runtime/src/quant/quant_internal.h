/* Block layouts of every quantized GGUF type and the per-family
 * (de)quantizers that the type table in quant.c registers.
 *
 * Layouts are those of ggml (src/ggml-common.h at commit d99724f2, the commit
 * the conformance goldens were made with). Every field is a byte array: a
 * block may start at any byte (mxfp4 blocks are 17 bytes long), multi-byte
 * fields are little-endian in the file, and reading them through le16()/le32()
 * keeps the decoders free of alignment and host byte-order assumptions.
 *
 * Conventions for all functions below: n is the element count, already
 * checked by the caller (infer_dequantize / infer_quantize) to be a
 * non-negative multiple of the type's block size; they return 0. */
#ifndef INFER_QUANT_INTERNAL_H
#define INFER_QUANT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "infer/quant.h"
#include "quant_iq.h"

#define QK_K 256 /* elements per k-quant / i-quant super-block */

static inline uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline float f32_from_bits(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Float -> int with saturation at [lo, hi]; NaN gives 0. Identity on values
 * already in range, so encoders stay byte-identical to ggml's there, but a
 * block of float32 subnormals (1 / scale = inf) cannot reach an undefined
 * float-to-int conversion. */
static inline int sat_int(float v, int lo, int hi)
{
	if (v != v)
		return 0;
	if (v <= (float)lo)
		return lo;
	if (v >= (float)hi)
		return hi;
	return (int)v;
}

/* fp16 -> float32, exact (inline: every block decoder reads fp16 scales).
 * Subnormal halves are never flushed: the goldens have subnormal scales. */
static inline float fp16_to_f32(uint16_t h)
{
	const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	const uint32_t em = h & 0x7fffu; /* exponent and mantissa */

	if (em >= 0x7c00u) /* inf / NaN keep their payload */
		return f32_from_bits(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
	if (em >= 0x0400u) /* normal: widen the fields, rebias 15 -> 127 */
		return f32_from_bits(sign | ((em << 13) + (112u << 23)));
	/* zero or subnormal: em * 2^-24 is exact in float32 */
	return f32_from_bits(sign | f32_bits((float)em * 0x1p-24f));
}

/* fp16 field -> float, exact. */
static inline float half_le(const uint8_t *p)
{
	return fp16_to_f32(le16(p));
}

/* ---- legacy 32-element blocks (legacy.c) --------------------------------- */

typedef struct {
	uint8_t d[2];   /* fp16 scale: x = d * (q - 8) */
	uint8_t qs[16]; /* byte j: element j in the low nibble, element j+16 in the high */
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "q4_0 block is 18 bytes");

typedef struct {
	uint8_t d[2];   /* fp16 scale: x = d * q + m */
	uint8_t m[2];   /* fp16 offset (the block minimum) */
	uint8_t qs[16]; /* nibbles, as in q4_0 (unsigned, no -8) */
} block_q4_1;
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 block is 20 bytes");

typedef struct {
	uint8_t d[2];   /* fp16 scale: x = d * (q - 16), q has 5 bits */
	uint8_t qh[4];  /* u32 LE: bit j is the 5th bit of element j */
	uint8_t qs[16]; /* low 4 bits, nibble order as in q4_0 */
} block_q5_0;
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 block is 22 bytes");

typedef struct {
	uint8_t d[2];   /* fp16 scale: x = d * q + m */
	uint8_t m[2];   /* fp16 offset */
	uint8_t qh[4];  /* u32 LE: bit j is the 5th bit of element j */
	uint8_t qs[16]; /* low 4 bits, nibble order as in q4_0 */
} block_q5_1;
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 block is 24 bytes");

typedef struct {
	uint8_t d[2];  /* fp16 scale: x = d * q */
	int8_t qs[32]; /* signed quants, element order */
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 block is 34 bytes");

typedef struct {
	uint8_t d[2];  /* fp16 scale: x = d * q */
	uint8_t s[2];  /* fp16 d * sum(qs): used by dot products only, not by decoding */
	int8_t qs[32]; /* signed quants, element order */
} block_q8_1;
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 block is 36 bytes");

/* ---- 1- and 2-bit legacy blocks (q1q2.c) ---------------------------------- */

typedef struct {
	uint8_t d[2];   /* fp16 scale */
	uint8_t qs[16]; /* bit j (byte j/8, bit j%8): 1 -> +d, 0 -> -d */
} block_q1_0;
_Static_assert(sizeof(block_q1_0) == 18, "q1_0 block is 18 bytes");

typedef struct {
	uint8_t d[2];   /* fp16 scale */
	uint8_t qs[16]; /* 2 bits per element, element j at bits 2*(j%4) of byte j/4: x = d * (q - 1) */
} block_q2_0;
_Static_assert(sizeof(block_q2_0) == 18, "q2_0 block is 18 bytes");

/* ---- FP4 blocks (fp4.c) ---------------------------------------------------- */

typedef struct {
	uint8_t e;      /* E8M0 shared exponent: scale 2^(e-127) */
	uint8_t qs[16]; /* E2M1 codes, nibble order as in q4_0 */
} block_mxfp4;
_Static_assert(sizeof(block_mxfp4) == 17, "mxfp4 block is 17 bytes");

typedef struct {
	uint8_t d[4];   /* UE4M3 scale of each 16-element sub-block */
	uint8_t qs[32]; /* E2M1 codes: 8 bytes per sub-block, nibble order as in q4_0 */
} block_nvfp4;
_Static_assert(sizeof(block_nvfp4) == 36, "nvfp4 block is 36 bytes");

/* ---- k-quant super-blocks of 256 (kquants.c) ------------------------------ */

typedef struct {
	uint8_t scales[16]; /* per 16 elements: low nibble scale, high nibble min */
	uint8_t qs[64];     /* 2-bit quants, 4 per byte (see dequant_q2_k) */
	uint8_t d[2];       /* fp16 super-scale of the scales */
	uint8_t dmin[2];    /* fp16 super-scale of the mins */
} block_q2_k;
_Static_assert(sizeof(block_q2_k) == 84, "q2_K block is 84 bytes");

typedef struct {
	uint8_t hmask[32];  /* third bit of each quant; set means "no -4" */
	uint8_t qs[64];     /* low 2 bits, 4 per byte */
	uint8_t scales[12]; /* 16 six-bit scales (biased by 32), packed */
	uint8_t d[2];       /* fp16 super-scale */
} block_q3_k;
_Static_assert(sizeof(block_q3_k) == 110, "q3_K block is 110 bytes");

typedef struct {
	uint8_t d[2];       /* fp16 super-scale of the 8 scales */
	uint8_t dmin[2];    /* fp16 super-scale of the 8 mins */
	uint8_t scales[12]; /* 8 six-bit scales and 8 six-bit mins, packed */
	uint8_t qs[128];    /* 4-bit quants: per 64 elements, 32 bytes low then high nibbles */
} block_q4_k;
_Static_assert(sizeof(block_q4_k) == 144, "q4_K block is 144 bytes");

typedef struct {
	uint8_t d[2];       /* fp16 super-scale of the 8 scales */
	uint8_t dmin[2];    /* fp16 super-scale of the 8 mins */
	uint8_t scales[12]; /* as in q4_K */
	uint8_t qh[32];     /* fifth bit: bit 2k / 2k+1 of byte l for chunk k */
	uint8_t qs[128];    /* low 4 bits, as in q4_K */
} block_q5_k;
_Static_assert(sizeof(block_q5_k) == 176, "q5_K block is 176 bytes");

typedef struct {
	uint8_t ql[128];   /* low 4 bits of the quants */
	uint8_t qh[64];    /* high 2 bits, 4 per byte */
	int8_t scales[16]; /* signed 8-bit scale per 16 elements */
	uint8_t d[2];      /* fp16 super-scale */
} block_q6_k;
_Static_assert(sizeof(block_q6_k) == 210, "q6_K block is 210 bytes");

typedef struct {
	uint8_t d[4];       /* float32 scale (LE bits) */
	int8_t qs[256];     /* signed quants */
	uint8_t bsums[32];  /* 16 x int16 sums of 16 quants: dot products only */
} block_q8_k;
_Static_assert(sizeof(block_q8_k) == 292, "q8_K block is 292 bytes");

/* ---- ternary (ternary.c) --------------------------------------------------- */

typedef struct {
	uint8_t qs[48]; /* 5 trits per byte, stored as ceil(v * 256 / 243) */
	uint8_t qh[4];  /* 4 trits per byte, same fixed-point encoding */
	uint8_t d[2];   /* fp16 scale: x = d * (t - 1) */
} block_tq1_0;
_Static_assert(sizeof(block_tq1_0) == 54, "tq1_0 block is 54 bytes");

typedef struct {
	uint8_t qs[64]; /* 2 bits per element: x = d * (q - 1) */
	uint8_t d[2];   /* fp16 scale */
} block_tq2_0;
_Static_assert(sizeof(block_tq2_0) == 66, "tq2_0 block is 66 bytes");

/* ---- non-linear 4-bit (iq4.c) ---------------------------------------------- */

typedef struct {
	uint8_t d[2];   /* fp16 scale: x = d * kvalues_iq4nl[q] */
	uint8_t qs[16]; /* nibble order as in q4_0 */
} block_iq4_nl;
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl block is 18 bytes");

typedef struct {
	uint8_t d[2];        /* fp16 super-scale */
	uint8_t scales_h[2]; /* u16 LE: high 2 bits of the 8 six-bit scales */
	uint8_t scales_l[4]; /* low 4 bits of the 8 scales, 2 per byte */
	uint8_t qs[128];     /* per 32 elements: 16 bytes, nibble order as in q4_0 */
} block_iq4_xs;
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs block is 136 bytes");

/* ---- grid i-quants (iq_grid.c) --------------------------------------------- */

typedef struct {
	uint8_t d[2];   /* fp16 super-scale */
	uint8_t qs[64]; /* per 32 elements: 4 grid bytes, then u32 LE of 4x7 sign bits + 4-bit scale */
} block_iq2_xxs;
_Static_assert(sizeof(block_iq2_xxs) == 66, "iq2_xxs block is 66 bytes");

typedef struct {
	uint8_t d[2];      /* fp16 super-scale */
	uint8_t qs[64];    /* 32 x u16 LE: 9-bit grid index, 7-bit sign index */
	uint8_t scales[8]; /* two 4-bit scales per 32 elements */
} block_iq2_xs;
_Static_assert(sizeof(block_iq2_xs) == 74, "iq2_xs block is 74 bytes");

typedef struct {
	uint8_t d[2];      /* fp16 super-scale */
	uint8_t qs[64];    /* 32 low bytes of the grid indices, then 32 sign bytes */
	uint8_t qh[8];     /* high 2 bits of the 4 grid indices of each 32 elements */
	uint8_t scales[8]; /* two 4-bit scales per 32 elements */
} block_iq2_s;
_Static_assert(sizeof(block_iq2_s) == 82, "iq2_s block is 82 bytes");

typedef struct {
	uint8_t d[2];   /* fp16 super-scale */
	uint8_t qs[96]; /* 64 grid indices, then 8 x u32 LE of 4x7 sign bits + 4-bit scale */
} block_iq3_xxs;
_Static_assert(sizeof(block_iq3_xxs) == 98, "iq3_xxs block is 98 bytes");

typedef struct {
	uint8_t d[2];      /* fp16 super-scale */
	uint8_t qs[64];    /* low 8 bits of the 64 grid indices */
	uint8_t qh[8];     /* ninth bit of each grid index */
	uint8_t signs[32]; /* one sign bit per element */
	uint8_t scales[4]; /* two 4-bit scales per 64 elements */
} block_iq3_s;
_Static_assert(sizeof(block_iq3_s) == 110, "iq3_s block is 110 bytes");

typedef struct {
	uint8_t d[2];   /* fp16 super-scale */
	uint8_t qs[32]; /* low 8 bits of the 32 grid indices */
	uint8_t qh[16]; /* 8 x u16 LE: 4x3 high index bits, 3-bit scale, delta sign */
} block_iq1_s;
_Static_assert(sizeof(block_iq1_s) == 50, "iq1_s block is 50 bytes");

typedef struct {
	uint8_t qs[32];     /* low 8 bits of the 32 grid indices */
	uint8_t qh[16];     /* per 8-element group: 3 high index bits + delta sign, 2 per byte */
	uint8_t scales[8];  /* 4 x u16 LE: 3-bit scales; top nibbles form the fp16 super-scale */
} block_iq1_m;
_Static_assert(sizeof(block_iq1_m) == 56, "iq1_m block is 56 bytes");

/* Constant tables of the formats (iq_tables.c, generated from ggml). */
extern const uint8_t iq_ksigns[128];
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];
extern const int8_t kvalues_iq4nl[16];
extern const int8_t kvalues_fp4[16];

/* ---- per-family entry points ------------------------------------------------ */
#define DEQ(name) int dequant_##name(const void *src, float *dst, int64_t n)
#define QNT(name) int quant_##name(const float *src, void *dst, int64_t n)

DEQ(q4_0); DEQ(q4_1); DEQ(q5_0); DEQ(q5_1); DEQ(q8_0); DEQ(q8_1); /* legacy.c */
QNT(q4_0); QNT(q4_1); QNT(q5_0); QNT(q5_1); QNT(q8_0); QNT(q8_1);
DEQ(q1_0); DEQ(q2_0); QNT(q1_0); QNT(q2_0);                       /* q1q2.c */
DEQ(mxfp4); DEQ(nvfp4); QNT(mxfp4); QNT(nvfp4);                   /* fp4.c */
DEQ(q2_k); DEQ(q3_k); DEQ(q4_k); DEQ(q5_k); DEQ(q6_k); DEQ(q8_k); /* kquants.c */
QNT(q2_k); QNT(q3_k); QNT(q4_k); QNT(q5_k); QNT(q6_k); QNT(q8_k);
DEQ(tq1_0); DEQ(tq2_0); QNT(tq1_0); QNT(tq2_0);                   /* ternary.c */
DEQ(iq4_nl); DEQ(iq4_xs); QNT(iq4_nl); QNT(iq4_xs);                          /* iq4.c */
#undef DEQ
#undef QNT

#endif
