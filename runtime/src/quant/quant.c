/* The type table: one entry per ggml type id, describing block geometry and
 * the float conversions. infer_dequantize / infer_quantize / infer_row_size
 * consult only this table, so adding a type is one line here plus its codec.
 *
 * Plain (non-block) types are entries with a block size of 1:
 *   F32, F16, BF16 convert exactly (fp16/bf16 -> f32 is exact, subnormals kept);
 *   I8, I16, I32 convert exactly (every value is representable in float32);
 *   I64 and F64 convert with float32 rounding (round to nearest even), and
 *   F64 values beyond the float range become +-inf: a conversion of values,
 *   not a dequantization. Integer types have no quantizer (float -> int is
 *   not a storage format anyone asks this runtime for). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "quant_internal.h"

/* ---- fp16 / bf16 ------------------------------------------------------------- */

float infer_fp16_to_fp32(uint16_t h)
{
	return fp16_to_f32(h);
}

uint16_t infer_fp32_to_fp16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	uint32_t shift, mant, q, rem, half;

	x &= 0x7fffffffu;
	if (x > 0x7f800000u)
		return sign | 0x7e00u; /* NaN -> quiet NaN */
	if (x >= 0x477ff000u)          /* >= 65520 rounds to inf */
		return sign | 0x7c00u;
	if (x >= 0x38800000u) {        /* normal half: rebias, round to nearest even */
		x -= 112u << 23;
		x += 0xfffu + ((x >> 13) & 1u);
		return sign | (uint16_t)(x >> 13);
	}
	if (x <= 0x33000000u)          /* <= 2^-25: ties to even -> zero */
		return sign;
	/* Subnormal half: the value in units of 2^-24, rounded to nearest even. */
	mant = (x & 0x7fffffu) | 0x800000u;
	shift = 126 - (x >> 23);       /* 14..24 */
	q = mant >> shift;
	rem = mant & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (q & 1u)))
		q++;
	return sign | (uint16_t)q;
}

float infer_bf16_to_fp32(uint16_t h)
{
	return f32_from_bits((uint32_t)h << 16);
}

uint16_t infer_fp32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);

	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40u); /* NaN stays NaN, quiet */
	x += 0x7fffu + ((x >> 16) & 1u);
	return (uint16_t)(x >> 16);
}

/* ---- plain types ----------------------------------------------------------------- */

static int f32_to_float(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
	return 0;
}

static int f32_from_float(const float *src, void *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
	return 0;
}

/* Bulk f16: the three cases of fp16_to_f32 computed and selected without
 * branches (random-looking weights defeat branch prediction). Same bits as
 * fp16_to_f32 for every input (test_dequant checks all 65536). */
static int f16_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *p = src;

	for (int64_t i = 0; i < n; i++) {
		const uint32_t h = le16(p + 2 * i);
		const uint32_t em = h & 0x7fffu;
		const uint32_t normal = (em << 13) + (112u << 23);
		const uint32_t special = 0x7f800000u | ((em & 0x3ffu) << 13);
		const uint32_t small = f32_bits((float)em * 0x1p-24f);
		uint32_t r = em >= 0x0400u ? normal : small;

		r = em >= 0x7c00u ? special : r;
		dst[i] = f32_from_bits(((h & 0x8000u) << 16) | r);
	}
	return 0;
}

static int f16_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *p = dst;

	for (int64_t i = 0; i < n; i++)
		put_le16(p + 2 * i, infer_fp32_to_fp16(src[i]));
	return 0;
}

static int bf16_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *p = src;

	for (int64_t i = 0; i < n; i++)
		dst[i] = infer_bf16_to_fp32(le16(p + 2 * i));
	return 0;
}

static int bf16_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *p = dst;

	for (int64_t i = 0; i < n; i++)
		put_le16(p + 2 * i, infer_fp32_to_bf16(src[i]));
	return 0;
}

/* Integer and f64 elements: memcpy each one out (the source may be unaligned). */
#define PLAIN_TO_FLOAT(fname, ctype)                                   \
	static int fname(const void *src, float *dst, int64_t n)      \
	{                                                              \
		const uint8_t *p = src;                                \
		ctype v;                                               \
		for (int64_t i = 0; i < n; i++) {                      \
			memcpy(&v, p + i * (int64_t)sizeof(v), sizeof(v)); \
			dst[i] = (float)v;                             \
		}                                                      \
		return 0;                                              \
	}
PLAIN_TO_FLOAT(i8_to_float, int8_t)
PLAIN_TO_FLOAT(i16_to_float, int16_t)
PLAIN_TO_FLOAT(i32_to_float, int32_t)
PLAIN_TO_FLOAT(i64_to_float, int64_t)
PLAIN_TO_FLOAT(f64_to_float, double)
#undef PLAIN_TO_FLOAT

static int f64_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *p = dst;

	for (int64_t i = 0; i < n; i++) {
		double v = src[i];

		memcpy(p + 8 * i, &v, sizeof(v));
	}
	return 0;
}

/* ---- the table ------------------------------------------------------------------------ */

#define T(id_, name_, bs_, ts_, to_, from_) \
	[id_] = { .id = id_, .name = name_, .block_size = bs_, .type_size = ts_, \
		  .to_float = to_, .from_float = from_ }

/* Ids absent here (4, 5, 31-33, 36-38) were removed from ggml: name NULL. */
static const infer_type_traits type_table[INFER_TYPE_COUNT] = {
	T(INFER_TYPE_F32, "f32", 1, 4, f32_to_float, f32_from_float),
	T(INFER_TYPE_F16, "f16", 1, 2, f16_to_float, f16_from_float),
	T(INFER_TYPE_Q4_0, "q4_0", 32, 18, dequant_q4_0, quant_q4_0),
	T(INFER_TYPE_Q4_1, "q4_1", 32, 20, dequant_q4_1, quant_q4_1),
	T(INFER_TYPE_Q5_0, "q5_0", 32, 22, dequant_q5_0, quant_q5_0),
	T(INFER_TYPE_Q5_1, "q5_1", 32, 24, dequant_q5_1, quant_q5_1),
	T(INFER_TYPE_Q8_0, "q8_0", 32, 34, dequant_q8_0, quant_q8_0),
	T(INFER_TYPE_Q8_1, "q8_1", 32, 36, dequant_q8_1, quant_q8_1),
	T(INFER_TYPE_Q2_K, "q2_K", 256, 84, dequant_q2_k, quant_q2_k),
	T(INFER_TYPE_Q3_K, "q3_K", 256, 110, dequant_q3_k, quant_q3_k),
	T(INFER_TYPE_Q4_K, "q4_K", 256, 144, dequant_q4_k, quant_q4_k),
	T(INFER_TYPE_Q5_K, "q5_K", 256, 176, dequant_q5_k, quant_q5_k),
	T(INFER_TYPE_Q6_K, "q6_K", 256, 210, dequant_q6_k, quant_q6_k),
	T(INFER_TYPE_Q8_K, "q8_K", 256, 292, dequant_q8_k, quant_q8_k),
	T(INFER_TYPE_IQ2_XXS, "iq2_xxs", 256, 66, dequant_iq2_xxs, NULL),
	T(INFER_TYPE_IQ2_XS, "iq2_xs", 256, 74, dequant_iq2_xs, NULL),
	T(INFER_TYPE_IQ3_XXS, "iq3_xxs", 256, 98, dequant_iq3_xxs, NULL),
	T(INFER_TYPE_IQ1_S, "iq1_s", 256, 50, dequant_iq1_s, NULL),
	T(INFER_TYPE_IQ4_NL, "iq4_nl", 32, 18, dequant_iq4_nl, quant_iq4_nl),
	T(INFER_TYPE_IQ3_S, "iq3_s", 256, 110, dequant_iq3_s, NULL),
	T(INFER_TYPE_IQ2_S, "iq2_s", 256, 82, dequant_iq2_s, NULL),
	T(INFER_TYPE_IQ4_XS, "iq4_xs", 256, 136, dequant_iq4_xs, quant_iq4_xs),
	T(INFER_TYPE_I8, "i8", 1, 1, i8_to_float, NULL),
	T(INFER_TYPE_I16, "i16", 1, 2, i16_to_float, NULL),
	T(INFER_TYPE_I32, "i32", 1, 4, i32_to_float, NULL),
	T(INFER_TYPE_I64, "i64", 1, 8, i64_to_float, NULL),
	T(INFER_TYPE_F64, "f64", 1, 8, f64_to_float, f64_from_float),
	T(INFER_TYPE_IQ1_M, "iq1_m", 256, 56, dequant_iq1_m, NULL),
	T(INFER_TYPE_BF16, "bf16", 1, 2, bf16_to_float, bf16_from_float),
	T(INFER_TYPE_TQ1_0, "tq1_0", 256, 54, dequant_tq1_0, quant_tq1_0),
	T(INFER_TYPE_TQ2_0, "tq2_0", 256, 66, dequant_tq2_0, quant_tq2_0),
	T(INFER_TYPE_MXFP4, "mxfp4", 32, 17, dequant_mxfp4, quant_mxfp4),
	T(INFER_TYPE_NVFP4, "nvfp4", 64, 36, dequant_nvfp4, quant_nvfp4),
	T(INFER_TYPE_Q1_0, "q1_0", 128, 18, dequant_q1_0, quant_q1_0),
	T(INFER_TYPE_Q2_0, "q2_0", 64, 18, dequant_q2_0, quant_q2_0),
};
#undef T

const infer_type_traits *infer_type_traits_get(uint32_t id)
{
	if (id >= INFER_TYPE_COUNT || !type_table[id].name)
		return NULL;
	return &type_table[id];
}

const infer_type_traits *infer_type_by_name(const char *name)
{
	if (!name)
		return NULL;
	for (uint32_t i = 0; i < INFER_TYPE_COUNT; i++)
		if (type_table[i].name && !strcasecmp(type_table[i].name, name))
			return &type_table[i];
	return NULL;
}

const char *infer_type_name(uint32_t id)
{
	const infer_type_traits *t = infer_type_traits_get(id);

	return t ? t->name : "?";
}

uint64_t infer_row_size(uint32_t type, int64_t n)
{
	const infer_type_traits *t = infer_type_traits_get(type);

	if (!t || n < 0 || n % t->block_size)
		return 0;
	/* n / block_size * type_size cannot overflow for n < 2^63 and type_size < 2^9
	 * unless n / block_size >= 2^55: refuse those instead of wrapping. */
	if ((uint64_t)(n / t->block_size) > UINT64_MAX / t->type_size)
		return 0;
	return (uint64_t)(n / t->block_size) * t->type_size;
}

/* Common argument checks; returns the traits or NULL with err filled. */
static const infer_type_traits *check_args(uint32_t type, const void *a, const void *b,
					   int64_t n, const char *what, infer_error *err,
					   int *code)
{
	const infer_type_traits *t = infer_type_traits_get(type);
	const char *w = what ? what : "(unnamed tensor)";

	if (!t) {
		*code = infer_error_set(err, INFER_E_UNSUPPORTED, -1,
					"tensor %s: unknown ggml type id %u", w, type);
		return NULL;
	}
	if (n < 0 || n % t->block_size) {
		*code = infer_error_set(err, INFER_E_ARG, -1,
					"tensor %s: %lld elements is not a multiple of the %s block size %u",
					w, (long long)n, t->name, t->block_size);
		return NULL;
	}
	if (n > 0 && (!a || !b)) {
		*code = infer_error_set(err, INFER_E_ARG, -1, "tensor %s: NULL buffer", w);
		return NULL;
	}
	return t;
}

int infer_dequantize(uint32_t type, const void *src, float *dst, int64_t n,
		     const char *what, infer_error *err)
{
	int code = 0;
	const infer_type_traits *t = check_args(type, src, dst, n, what, err, &code);

	if (!t)
		return code;
	if (!t->to_float)
		return infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				       "tensor %s: type %s (id %u) has no dequantizer",
				       what ? what : "(unnamed tensor)", t->name, type);
	return t->to_float(src, dst, n);
}

int infer_quantize(uint32_t type, const float *src, void *dst, int64_t n,
		   const char *what, infer_error *err)
{
	int code = 0;
	const infer_type_traits *t = check_args(type, src, dst, n, what, err, &code);

	if (!t)
		return code;
	if (!t->from_float)
		return infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				       "tensor %s: type %s (id %u) has no quantizer",
				       what ? what : "(unnamed tensor)", t->name, type);
	/* Block encoders derive a shared scale from each block: one NaN or inf
	 * would silently poison the whole block, so refuse it up front. Plain
	 * float types store such values as they are. */
	if (t->block_size > 1)
		for (int64_t i = 0; i < n; i++)
			if (!isfinite(src[i]))
				return infer_error_set(err, INFER_E_ARG, -1,
						       "tensor %s: element %lld is %s; cannot quantize to %s",
						       what ? what : "(unnamed tensor)", (long long)i,
						       isnan(src[i]) ? "NaN" : "infinite", t->name);
	return t->from_float(src, dst, n);
}
