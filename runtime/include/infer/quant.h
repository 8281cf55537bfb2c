/* Tensor storage types (ggml type ids, as stored in GGUF tensor infos) and
 * conversion to/from float32. One table describes every type; nothing is
 * special-cased elsewhere. An unknown or unsupported type is an error naming
 * the type id: never zeros.
 *
 * to_float: every id that ggml still defines. The 28 types of
 * ../shared/conformance/dequant decode bit-exactly like ggml d99724f; q8_1
 * decodes as d * q (ggml has no q8_1 dequantizer). I8/I16/I32 convert exactly,
 * I64/F64 with float32 rounding (F64 beyond the float range -> +-inf).
 *
 * from_float: f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q1_0, q2_0, mxfp4,
 * nvfp4, tq1_0, tq2_0 and q8_K reproduce ggml's reference encoders byte for
 * byte (checked on the dequant goldens' inputs), and so does q8_1 (checked
 * with q8_0 and q8_K on the activations of the mul_mat goldens); f32 and f64 are plain copies; q2_K, q3_K, q4_K, q5_K,
 * q6_K, iq4_nl and iq4_xs are our own least-squares searches (same format,
 * other choices than ggml, round-trip error on par with ggml's on the golden
 * inputs). The grid i-quants (iq1/iq2/iq3) and the integer types
 * have no encoder (INFER_E_UNSUPPORTED). Blocks are read and written as bytes:
 * src/dst need no alignment. */
#ifndef INFER_QUANT_H
#define INFER_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"

/* ggml type ids (ggml.h, enum ggml_type). 4, 5, 31-33 and 36-38 are removed ids. */
enum infer_type {
	INFER_TYPE_F32 = 0, INFER_TYPE_F16 = 1, INFER_TYPE_Q4_0 = 2, INFER_TYPE_Q4_1 = 3,
	INFER_TYPE_Q5_0 = 6, INFER_TYPE_Q5_1 = 7, INFER_TYPE_Q8_0 = 8, INFER_TYPE_Q8_1 = 9,
	INFER_TYPE_Q2_K = 10, INFER_TYPE_Q3_K = 11, INFER_TYPE_Q4_K = 12, INFER_TYPE_Q5_K = 13,
	INFER_TYPE_Q6_K = 14, INFER_TYPE_Q8_K = 15, INFER_TYPE_IQ2_XXS = 16, INFER_TYPE_IQ2_XS = 17,
	INFER_TYPE_IQ3_XXS = 18, INFER_TYPE_IQ1_S = 19, INFER_TYPE_IQ4_NL = 20, INFER_TYPE_IQ3_S = 21,
	INFER_TYPE_IQ2_S = 22, INFER_TYPE_IQ4_XS = 23, INFER_TYPE_I8 = 24, INFER_TYPE_I16 = 25,
	INFER_TYPE_I32 = 26, INFER_TYPE_I64 = 27, INFER_TYPE_F64 = 28, INFER_TYPE_IQ1_M = 29,
	INFER_TYPE_BF16 = 30, INFER_TYPE_TQ1_0 = 34, INFER_TYPE_TQ2_0 = 35, INFER_TYPE_MXFP4 = 39,
	INFER_TYPE_NVFP4 = 40, INFER_TYPE_Q1_0 = 41, INFER_TYPE_Q2_0 = 42,
	INFER_TYPE_COUNT = 43,
};

typedef int (*infer_to_float_fn)(const void *src, float *dst, int64_t n);
typedef int (*infer_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct infer_type_traits {
	uint32_t id;
	const char *name;           /* ggml's name: "q4_K", "iq2_xxs", "bf16", ... */
	uint32_t block_size;        /* elements per block */
	uint32_t type_size;         /* bytes per block */
	infer_to_float_fn to_float; /* NULL: no dequantizer (an error, not zeros) */
	infer_from_float_fn from_float; /* NULL: no quantizer */
} infer_type_traits;

/* NULL for ids that are out of range or removed. */
const infer_type_traits *infer_type_traits_get(uint32_t id);
/* Case-insensitive ggml name ("Q4_K" == "q4_K"); NULL when unknown. */
const infer_type_traits *infer_type_by_name(const char *name);
const char *infer_type_name(uint32_t id); /* "type#<id>" style string never; returns "?" when unknown */

/* Bytes for n elements; 0 when n is not a multiple of the block size or the type is unknown. */
uint64_t infer_row_size(uint32_t type, int64_t n);

/* Dequantize n elements (a multiple of the block size). what names the tensor
 * for the error message ("blk.0.attn_q.weight"), may be NULL. */
int infer_dequantize(uint32_t type, const void *src, float *dst, int64_t n,
		     const char *what, infer_error *err);
/* Quantize n elements; INFER_E_UNSUPPORTED when the type has no quantizer. */
int infer_quantize(uint32_t type, const float *src, void *dst, int64_t n,
		   const char *what, infer_error *err);

/* Exact half/bfloat16 conversions (subnormals kept, no FTZ). */
float infer_fp16_to_fp32(uint16_t h);
uint16_t infer_fp32_to_fp16(float f); /* round to nearest even */
float infer_bf16_to_fp32(uint16_t h);
uint16_t infer_fp32_to_bf16(float f); /* round to nearest even */

#endif
