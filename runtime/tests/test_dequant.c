/* Dequantization: every file of conformance/dequant bit for bit, proof that
 * the comparison catches a flipped block bit and a 1-ulp change, q8_1 on
 * hand-built blocks, the type table, fp16/bf16 conversions, and errors for
 * unknown types (never zeros). */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/quant.h"
#include "util_dqgold.h"
#include "cunit_table.h"

static dqg_set gold;
static int gold_state; /* 1 loaded, 0 absent, -1 broken */

static uint32_t fbits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float bitsf(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* Index of the first element whose 32-bit pattern differs, -1 when equal. */
static int64_t first_diff(const float *a, const float *b, int64_t n)
{
	if (!memcmp(a, b, (size_t)n * sizeof(float)))
		return -1;
	for (int64_t i = 0; i < n; i++)
		if (fbits(a[i]) != fbits(b[i]))
			return i;
	return -1;
}

static int skip_if_absent(void)
{
	if (gold_state == 0) {
		printf("skipped: reference set not found ");
		return 1;
	}
	CU_ASSERT_EQUAL_FATAL(gold_state, 1);
	return 0;
}

/* Decodes one file and compares with expected; returns 0 when bit-exact. */
static int check_file(const dqg_entry *e, int64_t *neg_zeros, int64_t *subnormals)
{
	dqg_file f;
	infer_error err;
	int64_t n, bad;
	float *out;
	int rc = -1;

	if (dqg_open(&gold, e, &f))
		return -1;
	n = f.expected->n_elements;
	out = malloc((size_t)n * sizeof(float));
	if (!out)
		goto done;
	if (infer_dequantize(e->type_id, f.blocks->data, out, n, e->file, &err)) {
		fprintf(stderr, "%s: %s\n", e->file, err.msg);
		goto done;
	}
	bad = first_diff(out, f.expected->data, n);
	if (bad >= 0) {
		const float *x = f.expected->data;

		fprintf(stderr, "%s: element %lld (block %lld): got %a (0x%08x), expected %a (0x%08x)\n",
			e->file, (long long)bad, (long long)(bad / e->block_size), out[bad],
			fbits(out[bad]), x[bad], fbits(x[bad]));
		goto done;
	}
	*neg_zeros = *subnormals = 0;
	for (int64_t i = 0; i < n; i++) {
		*neg_zeros += fbits(out[i]) == 0x80000000u;
		*subnormals += out[i] != 0.0f && fpclassify(out[i]) == FP_SUBNORMAL;
	}
	rc = 0;
done:
	free(out);
	dqg_close(&f);
	return rc;
}

static void test_golden_all(void)
{
	int pass = 0, types_seen[INFER_TYPE_COUNT] = { 0 }, n_types = 0;

	if (skip_if_absent())
		return;
	CU_ASSERT_EQUAL(gold.n, gold.n_files);
	for (int i = 0; i < gold.n; i++) {
		const dqg_entry *e = &gold.e[i];
		const infer_type_traits *t = infer_type_traits_get(e->type_id);
		int64_t nz = -1, sub = -1;

		/* The table must agree with ggml's geometry for this type. */
		CU_ASSERT_PTR_NOT_NULL_FATAL(t);
		CU_ASSERT_STRING_EQUAL(t->name, e->type);
		CU_ASSERT_EQUAL(t->block_size, e->block_size);
		CU_ASSERT_EQUAL(t->type_size, e->type_size);
		if (check_file(e, &nz, &sub)) {
			CU_FAIL("golden file not bit-exact (see stderr)");
			continue;
		}
		/* The hazard counters of the manifest hold for our output too. */
		CU_ASSERT_EQUAL(nz, e->neg_zeros);
		CU_ASSERT_EQUAL(sub, e->subnormals);
		pass++;
		if (e->type_id < INFER_TYPE_COUNT && !types_seen[e->type_id]++)
			n_types++;
	}
	printf("\n  %d/%d files bit-exact, %d types ", pass, gold.n, n_types);
	CU_ASSERT_EQUAL(pass, gold.n);
	CU_ASSERT_EQUAL(n_types, 28); /* README: 27 to_float types + q8_K */
}

/* The first file of each type in the manifest, in manifest order. */
static const dqg_entry *file_of_type(uint32_t id, const char *dist)
{
	char want[64];

	for (int i = 0; i < gold.n; i++) {
		snprintf(want, sizeof(want), "%s.%s.gguf", gold.e[i].type, dist);
		if (gold.e[i].type_id == id && !strcmp(gold.e[i].file, want))
			return &gold.e[i];
	}
	return NULL;
}

/* Flip every bit of the first block of each type's raw file, one at a time:
 * the bit-exact comparison must report a mismatch for most of them (the bits
 * that legitimately do not matter, e.g. q8_K's bsums or nvfp4's scale bit 7,
 * are a minority). Proves the sweep above can fail. */
static void test_bitflip_detected(void)
{
	if (skip_if_absent())
		return;
	for (uint32_t id = 0; id < INFER_TYPE_COUNT; id++) {
		const dqg_entry *e = file_of_type(id, "raw");
		dqg_file f;
		int detected = 0, bits;
		float *out;
		uint8_t *blk;

		if (!e)
			continue;
		CU_ASSERT_EQUAL_FATAL(dqg_open(&gold, e, &f), 0);
		bits = 8 * (int)e->type_size;
		out = malloc(e->block_size * sizeof(float));
		blk = malloc(e->type_size);
		CU_ASSERT_PTR_NOT_NULL_FATAL(out);
		CU_ASSERT_PTR_NOT_NULL_FATAL(blk);
		for (int b = 0; b < bits; b++) {
			memcpy(blk, f.blocks->data, e->type_size);
			blk[b / 8] ^= (uint8_t)(1u << (b % 8));
			CU_ASSERT_EQUAL(infer_dequantize(id, blk, out, e->block_size, e->file, NULL), 0);
			detected += first_diff(out, f.expected->data, e->block_size) >= 0;
		}
		/* Unperturbed, the same block matches. */
		memcpy(blk, f.blocks->data, e->type_size);
		infer_dequantize(id, blk, out, e->block_size, e->file, NULL);
		CU_ASSERT_EQUAL(first_diff(out, f.expected->data, e->block_size), -1);
		if (detected * 2 < bits)
			fprintf(stderr, "%s: only %d of %d bit flips detected\n", e->file, detected, bits);
		CU_ASSERT(detected * 2 >= bits);
		free(out);
		free(blk);
		dqg_close(&f);
	}
}

/* Move one expected value by 1 ulp: the comparison reports that element. */
static void test_ulp_detected(void)
{
	const dqg_entry *e;
	dqg_file f;
	int64_t n;
	float *out, *exp;

	if (skip_if_absent())
		return;
	e = file_of_type(INFER_TYPE_Q4_K, "gauss");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL_FATAL(dqg_open(&gold, e, &f), 0);
	n = f.expected->n_elements;
	out = malloc((size_t)n * 4);
	exp = malloc((size_t)n * 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(exp);
	memcpy(exp, f.expected->data, (size_t)n * 4);
	CU_ASSERT_EQUAL(infer_dequantize(e->type_id, f.blocks->data, out, n, "t", NULL), 0);
	CU_ASSERT_EQUAL(first_diff(out, exp, n), -1);
	exp[777] = bitsf(fbits(exp[777]) + 1);
	CU_ASSERT_EQUAL(first_diff(out, exp, n), 777);
	exp[777] = f.expected->data ? ((const float *)f.expected->data)[777] : 0;
	/* Sign of zero alone is a mismatch too. */
	out[5] = 0.0f;
	exp[5] = -0.0f;
	CU_ASSERT_EQUAL(first_diff(out, exp, n), 5);
	free(out);
	free(exp);
	dqg_close(&f);
}

/* q8_1 has no golden (ggml has no dequantizer): blocks built by hand from
 * the layout d (fp16), s (fp16, ignored by decoding), qs[32] (int8). */
static void test_q8_1_hand_built(void)
{
	uint8_t blk[3 * 36];
	float out[96];
	/* d: 0.5 (0x3800), the smallest fp16 subnormal 2^-24 (0x0001), -3.0 (0xc200). */
	const uint16_t d[3] = { 0x3800, 0x0001, 0xc200 };
	const float dv[3] = { 0.5f, 0x1p-24f, -3.0f };

	memset(blk, 0, sizeof(blk));
	for (int b = 0; b < 3; b++) {
		blk[36 * b] = (uint8_t)d[b];
		blk[36 * b + 1] = (uint8_t)(d[b] >> 8);
		blk[36 * b + 2] = 0xff; /* s: garbage on purpose */
		blk[36 * b + 3] = 0x7b;
		for (int j = 0; j < 32; j++)
			blk[36 * b + 4 + j] = (uint8_t)(int8_t)(j * 8 - 128 + b);
	}
	blk[36 * 2 + 4 + 5] = 0; /* a zero quant under the negative scale */
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q8_1, blk, out, 96, "q8_1", NULL), 0);
	for (int b = 0; b < 3; b++)
		for (int j = 0; j < 32; j++) {
			int q = (int8_t)blk[36 * b + 4 + j];
			float want = (float)q * dv[b];

			CU_ASSERT_EQUAL(fbits(out[32 * b + j]), fbits(want));
		}
	/* A zero quant under a negative scale is -0.0, as in q8_0. */
	CU_ASSERT_EQUAL(fbits(out[64 + 5]), 0x80000000u);
	CU_ASSERT_EQUAL(fbits(out[31]), fbits(60.0f)); /* 120 * 0.5 */
	/* Same bytes without the s field decode identically as q8_0. */
	{
		uint8_t q80[34];
		float o2[32];

		memcpy(q80, blk, 2);
		memcpy(q80 + 2, blk + 4, 32);
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q8_0, q80, o2, 32, "q8_0", NULL), 0);
		CU_ASSERT_EQUAL(memcmp(o2, out, sizeof(o2)), 0);
	}
}

/* The README's hazards on hand-built blocks (these run without the golden
 * set too). Expected values are derived from the format definitions. */
static void test_hazards(void)
{
	float out[256];

	/* mxfp4: E8M0 byte 0 is 2^-127, not zero; E2M1 code 1 is 0.5, so
	 * 0.5 * 2^-127 = 2^-128, a float32 subnormal (no flush to zero). */
	{
		uint8_t b[17] = { 0 };

		b[1] = 0x71; /* element 0: code 1 (0.5), element 16: code 7 (6.0) */
		b[2] = 0x09; /* element 1: code 9 (-0.5) */
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_MXFP4, b, out, 32, "mxfp4", NULL), 0);
		CU_ASSERT_EQUAL(fbits(out[0]), fbits(0x1p-128f));
		CU_ASSERT_EQUAL(fbits(out[16]), fbits(6.0f * 0x1p-127f));
		CU_ASSERT_EQUAL(fbits(out[1]), fbits(-0x1p-128f));
		CU_ASSERT_EQUAL(fbits(out[2]), 0); /* code 0: +0.0 */
		b[0] = 255; /* not NaN: 2^128 would overflow, so use code 1: 0.5 * 2^128 */
		b[1] = 0x01;
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_MXFP4, b, out, 32, "mxfp4", NULL), 0);
		CU_ASSERT_EQUAL(fbits(out[0]), fbits(0x1p127f));
	}
	/* nvfp4: scale byte 0x7f decodes to 0 (a negative code gives -0.0); bit 7
	 * is ignored otherwise, so 0xff is 1.875 * 2^8; 0x01 is 2^-9 (subnormal). */
	{
		uint8_t b[36] = { 0 };

		b[0] = 0x7f;
		b[1] = 0xff;
		b[2] = 0x01;
		b[3] = 0x80; /* = 0x00 with bit 7 set: zero */
		for (int s = 0; s < 4; s++)
			b[4 + 8 * s] = 0xf7; /* element 0: code 7 (6.0), element 8: code 15 (-6.0) */
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_NVFP4, b, out, 64, "nvfp4", NULL), 0);
		CU_ASSERT_EQUAL(fbits(out[0]), 0);
		CU_ASSERT_EQUAL(fbits(out[8]), 0x80000000u);
		CU_ASSERT_EQUAL(fbits(out[16]), fbits(6.0f * 1.875f * 256.0f));
		CU_ASSERT_EQUAL(fbits(out[24]), fbits(-6.0f * 1.875f * 256.0f));
		CU_ASSERT_EQUAL(fbits(out[32]), fbits(6.0f * 0x1p-9f));
		CU_ASSERT_EQUAL(fbits(out[48]), 0);
	}
	/* tq1_0: bytes >= 243 are decoded arithmetically. 255: trit k is the top
	 * base-3 digit of (255 * 3^k mod 256): 255, 253, 247, 229, 175 -> all 2. */
	{
		uint8_t b[54] = { 0 };

		b[0] = 255;
		b[1] = 243; /* 243 * 3^k mod 256: 243, 217, 139, 161, 227 -> 2, 2, 1, 1, 2 */
		b[52] = 0x00;
		b[53] = 0x3c; /* d = 1.0 */
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_TQ1_0, b, out, 256, "tq1_0", NULL), 0);
		for (int k = 0; k < 5; k++)
			CU_ASSERT_EQUAL(out[32 * k], 1.0f);
		CU_ASSERT_EQUAL(out[1], 1.0f);
		CU_ASSERT_EQUAL(out[33], 1.0f);
		CU_ASSERT_EQUAL(out[65], 0.0f);
		CU_ASSERT_EQUAL(out[97], 0.0f);
		CU_ASSERT_EQUAL(out[129], 1.0f);
		CU_ASSERT_EQUAL(out[2], -1.0f); /* byte 0: trits 0 -> -1 */
	}
	/* fp16 subnormal scale (q8_0): the smallest one, 2^-24, times -127 and
	 * times 0 under a negative subnormal scale (-0.0). */
	{
		uint8_t b[34] = { 0 };

		b[0] = 0x01;
		b[2] = (uint8_t)(int8_t)-127;
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q8_0, b, out, 32, "q8_0", NULL), 0);
		CU_ASSERT_EQUAL(fbits(out[0]), fbits(-127.0f * 0x1p-24f));
		b[1] = 0x80;
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q8_0, b, out, 32, "q8_0", NULL), 0);
		CU_ASSERT_EQUAL(fbits(out[1]), 0x80000000u);
		CU_ASSERT_EQUAL(fbits(out[0]), fbits(127.0f * 0x1p-24f));
	}
}

static void test_unknown_type_is_error(void)
{
	float out[256];
	uint8_t src[512] = { 0 };
	infer_error err;
	const uint32_t bad[] = { 4, 5, 31, 32, 33, 36, 37, 38, INFER_TYPE_COUNT, 1000, 0xffffffffu };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char id[16];

		for (int j = 0; j < 256; j++)
			out[j] = NAN;
		memset(&err, 0, sizeof(err));
		CU_ASSERT_EQUAL(infer_dequantize(bad[i], src, out, 256, "blk.3.ffn_up.weight", &err),
				INFER_E_UNSUPPORTED);
		CU_ASSERT_EQUAL(err.code, INFER_E_UNSUPPORTED);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "blk.3.ffn_up.weight"));
		snprintf(id, sizeof(id), "%u", bad[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, id));
		for (int j = 0; j < 256; j++) /* nothing written: never zeros */
			CU_ASSERT_TRUE(isnan(out[j]));
		CU_ASSERT_PTR_NULL(infer_type_traits_get(bad[i]));
		CU_ASSERT_EQUAL(infer_row_size(bad[i], 256), 0);
		CU_ASSERT_STRING_EQUAL(infer_type_name(bad[i]), "?");
	}
	/* Length not a multiple of the block size. */
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q4_K, src, out, 100, "w", &err), INFER_E_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "w"));
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q4_K, src, out, -256, "w", &err), INFER_E_ARG);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q4_K, NULL, out, 256, "w", &err), INFER_E_ARG);
	/* Known type without a quantizer. */
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_IQ2_XXS, out, src, 256, "w", &err),
			INFER_E_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "iq2_xxs"));
}

static void test_type_table(void)
{
	int known = 0;

	for (uint32_t id = 0; id < INFER_TYPE_COUNT; id++) {
		const infer_type_traits *t = infer_type_traits_get(id);

		if (!t)
			continue;
		known++;
		CU_ASSERT_EQUAL(t->id, id);
		CU_ASSERT_PTR_NOT_NULL(t->to_float);
		CU_ASSERT_EQUAL(infer_type_by_name(t->name), t);
		CU_ASSERT_EQUAL(infer_row_size(id, 256LL * t->block_size), 256ULL * t->type_size);
		if (t->block_size > 1)
			CU_ASSERT_EQUAL(infer_row_size(id, t->block_size + 1), 0);
	}
	CU_ASSERT_EQUAL(known, 35); /* 43 ids minus 8 removed ones */
	CU_ASSERT_EQUAL(infer_type_by_name("Q4_K"), infer_type_traits_get(INFER_TYPE_Q4_K));
	CU_ASSERT_EQUAL(infer_type_by_name("IQ2_XXS"), infer_type_traits_get(INFER_TYPE_IQ2_XXS));
	CU_ASSERT_PTR_NULL(infer_type_by_name("q4_2"));
	CU_ASSERT_PTR_NULL(infer_type_by_name(NULL));
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_I8, 7), 7);
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_I16, 7), 14);
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_I32, 7), 28);
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_I64, 7), 56);
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_F64, 7), 56);
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_Q8_1, 64), 72);
	CU_ASSERT_EQUAL(infer_row_size(INFER_TYPE_Q4_K, -256), 0);
}

static void test_plain_types(void)
{
	const int8_t i8[3] = { -128, 0, 127 };
	const int16_t i16[3] = { -32768, 1, 32767 };
	const int32_t i32[3] = { -16777217, 16777216, 7 };
	const int64_t i64[3] = { -(1LL << 40), 3, (1LL << 53) + 1 };
	const double f64[3] = { 0.1, -1e300, 1e-50 };
	float o[3];

	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_I8, i8, o, 3, "i8", NULL), 0);
	CU_ASSERT(o[0] == -128.0f && o[1] == 0.0f && o[2] == 127.0f);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_I16, i16, o, 3, "i16", NULL), 0);
	CU_ASSERT(o[0] == -32768.0f && o[1] == 1.0f && o[2] == 32767.0f);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_I32, i32, o, 3, "i32", NULL), 0);
	/* -16777217 is not a float: rounds to even, -16777216. */
	CU_ASSERT(o[0] == -16777216.0f && o[1] == 16777216.0f && o[2] == 7.0f);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_I64, i64, o, 3, "i64", NULL), 0);
	CU_ASSERT(o[0] == -0x1p40f && o[1] == 3.0f && o[2] == 0x1p53f);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_F64, f64, o, 3, "f64", NULL), 0);
	CU_ASSERT(o[0] == 0.1f && isinf(o[1]) && o[1] < 0 && o[2] == 0.0f);
}

static void test_fp16_exhaustive(void)
{
	int bad = 0;

	for (uint32_t h = 0; h < 65536; h++) {
		float f = infer_fp16_to_fp32((uint16_t)h);
		int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);

		if (is_nan) {
			bad += !isnan(f);
			continue;
		}
		/* Exact round trip for every non-NaN half, -0.0 and subnormals included. */
		bad += infer_fp32_to_fp16(f) != h;
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* The bulk F16 path agrees with the scalar one on every pattern. */
	{
		uint16_t *h = malloc(65536 * sizeof(*h));
		float *f = malloc(65536 * sizeof(*f));

		CU_ASSERT_PTR_NOT_NULL_FATAL(h);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		for (uint32_t i = 0; i < 65536; i++)
			h[i] = (uint16_t)i; /* little-endian host assumed by this test */
		CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_F16, h, f, 65536, "all", NULL), 0);
		for (uint32_t i = 0, nb = 0; i < 65536; i++) {
			nb += fbits(f[i]) != fbits(infer_fp16_to_fp32((uint16_t)i));
			if (i == 65535)
				CU_ASSERT_EQUAL(nb, 0);
		}
		free(h);
		free(f);
	}
	CU_ASSERT_EQUAL(fbits(infer_fp16_to_fp32(0x0001)), fbits(0x1p-24f));
	CU_ASSERT_EQUAL(fbits(infer_fp16_to_fp32(0x8000)), 0x80000000u);
	CU_ASSERT_EQUAL(fbits(infer_fp16_to_fp32(0x03ff)), fbits(0x3ffp-24f));
	CU_ASSERT_EQUAL(infer_fp16_to_fp32(0x7bff), 65504.0f);
	/* Rounding: ties to even, overflow to inf, underflow to (signed) zero. */
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);          /* tie, even down */
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);      /* tie, even up */
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(65519.0f), 0x7bff);
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(65520.0f), 0x7c00);
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(0x1p-25f), 0x0000);                 /* tie to 0 */
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(0x1.000002p-25f), 0x0001);
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(-0x1p-30f), 0x8000);
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(3 * 0x1p-25f), 0x0002);             /* 1.5 ulp -> 2 */
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(INFINITY), 0x7c00);
	CU_ASSERT_EQUAL(infer_fp32_to_fp16(NAN) & 0x7e00, 0x7e00);
}

static void test_bf16(void)
{
	int bad = 0;

	for (uint32_t h = 0; h < 65536; h++) {
		float f = infer_bf16_to_fp32((uint16_t)h);

		bad += fbits(f) != h << 16;
		if (!isnan(f))
			bad += infer_fp32_to_bf16(f) != h;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(infer_fp32_to_bf16(bitsf(0x3f808000u)), 0x3f80); /* tie, even down */
	CU_ASSERT_EQUAL(infer_fp32_to_bf16(bitsf(0x3f818000u)), 0x3f82); /* tie, even up */
	CU_ASSERT_EQUAL(infer_fp32_to_bf16(bitsf(0x3f808001u)), 0x3f81);
	CU_ASSERT_TRUE(isnan(infer_bf16_to_fp32(infer_fp32_to_bf16(bitsf(0x7f800001u)))));
}

int main(void)
{
	static const struct cu_case tests[] = {
		{ "every golden file bit-exact", test_golden_all },
		{ "flipped block bit is detected", test_bitflip_detected },
		{ "1-ulp and sign-of-zero changes are detected", test_ulp_detected },
		{ "q8_1 hand-built blocks", test_q8_1_hand_built },
		{ "README hazards on hand-built blocks", test_hazards },
		{ "unknown type is an error, never zeros", test_unknown_type_is_error },
		{ "type table", test_type_table },
		{ "integer and f64 types", test_plain_types },
		{ "fp16 exhaustive", test_fp16_exhaustive },
		{ "bf16 exhaustive", test_bf16 },
	};
	int failed;

	gold_state = dqg_load(&gold);
	if (gold_state == 0)
		printf("dequant golden set not found: golden-file tests skip\n");
	failed = cu_run_table("dequant", tests, sizeof(tests) / sizeof(tests[0]));
	if (failed < 0)
		return 2;
	dqg_free(&gold);
	return failed ? 1 : 0;
}
