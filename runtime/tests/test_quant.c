/* Quantizers (float -> blocks) against ggml: the `input` tensor of every
 * golden file is quantized with our encoder and compared with ggml's
 * `blocks`. Types whose ggml encoder is a fixed formula (f16, bf16, q8_0,
 * q4_0, q4_1, q5_0, q5_1, q1_0, q2_0, mxfp4, nvfp4, tq1_0, tq2_0, q8_K) must
 * match byte for byte. The k-quant / iq4_nl encoders are our own searches:
 * for them the block match rate is reported and the round-trip error
 * dequant(quantize(x)) must stay within a bound of ggml's own error. */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/quant.h"
#include "util_dqgold.h"
#include "cunit_table.h"

static dqg_set gold;
static int gold_state;

static int skip_if_absent(void)
{
	if (gold_state == 0) {
		printf("skipped: reference set not found ");
		return 1;
	}
	CU_ASSERT_EQUAL_FATAL(gold_state, 1);
	return 0;
}

static int exact_type(uint32_t id)
{
	switch (id) {
	case INFER_TYPE_F16: case INFER_TYPE_BF16: case INFER_TYPE_Q8_0:
	case INFER_TYPE_Q4_0: case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_0:
	case INFER_TYPE_Q5_1: case INFER_TYPE_Q1_0: case INFER_TYPE_Q2_0:
	case INFER_TYPE_MXFP4: case INFER_TYPE_NVFP4: case INFER_TYPE_TQ1_0:
	case INFER_TYPE_TQ2_0: case INFER_TYPE_Q8_K:
		return 1;
	}
	return 0;
}

/* Blocks of a and b that differ. */
static int64_t blocks_differ(const uint8_t *a, const uint8_t *b, int64_t nb, uint32_t ts)
{
	int64_t bad = 0;

	for (int64_t i = 0; i < nb; i++)
		bad += memcmp(a + i * ts, b + i * ts, ts) != 0;
	return bad;
}

static double sq_err(const float *x, const float *y, int64_t n)
{
	double s = 0;

	for (int64_t i = 0; i < n; i++)
		s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
	return s;
}

/* Quantizes one file's input; fills our blocks and their dequantization. */
static int roundtrip(const dqg_entry *e, const dqg_file *f, uint8_t *q, float *y)
{
	int64_t n = f->input->n_elements;
	infer_error err;

	if (infer_quantize(e->type_id, f->input->data, q, n, e->file, &err) ||
	    infer_dequantize(e->type_id, q, y, n, e->file, &err)) {
		fprintf(stderr, "%s: %s\n", e->file, err.msg);
		return -1;
	}
	return 0;
}

static void test_exact_quantizers(void)
{
	int files = 0;

	if (skip_if_absent())
		return;
	for (int i = 0; i < gold.n; i++) {
		const dqg_entry *e = &gold.e[i];
		dqg_file f;
		uint8_t *q;
		float *y;
		int64_t bad;

		if (!e->has_input || !exact_type(e->type_id))
			continue;
		CU_ASSERT_EQUAL_FATAL(dqg_open(&gold, e, &f), 0);
		q = malloc(f.blocks->nbytes);
		y = malloc((size_t)f.input->n_elements * sizeof(float));
		CU_ASSERT_PTR_NOT_NULL_FATAL(q);
		CU_ASSERT_PTR_NOT_NULL_FATAL(y);
		CU_ASSERT_EQUAL_FATAL(roundtrip(e, &f, q, y), 0);
		bad = blocks_differ(q, f.blocks->data, (int64_t)e->n_blocks, e->type_size);
		if (bad)
			fprintf(stderr, "%s: %lld of %llu blocks differ from ggml\n", e->file,
				(long long)bad, (unsigned long long)e->n_blocks);
		CU_ASSERT_EQUAL(bad, 0);
		files++;
		free(q);
		free(y);
		dqg_close(&f);
	}
	printf("\n  %d files byte-identical to ggml's encoder ", files);
	CU_ASSERT_EQUAL(files, 14 * 7); /* 14 types x 7 distributions with input */
}

/* Own-search encoders: report the match rate; require the round-trip error
 * to be at most `slack` times ggml's error on the same input (plus a floor
 * for files where both are ~0). */
static void check_search_type(uint32_t id, double slack)
{
	int64_t match = 0, total = 0;
	double ours_all = 0, ggml_all = 0;

	for (int i = 0; i < gold.n; i++) {
		const dqg_entry *e = &gold.e[i];
		dqg_file f;
		uint8_t *q;
		float *y;
		double ours, ref, sig;
		int64_t n;

		if (e->type_id != id || !e->has_input)
			continue;
		CU_ASSERT_EQUAL_FATAL(dqg_open(&gold, e, &f), 0);
		n = f.input->n_elements;
		q = malloc(f.blocks->nbytes);
		y = malloc((size_t)n * sizeof(float));
		CU_ASSERT_PTR_NOT_NULL_FATAL(q);
		CU_ASSERT_PTR_NOT_NULL_FATAL(y);
		CU_ASSERT_EQUAL_FATAL(roundtrip(e, &f, q, y), 0);
		match += (int64_t)e->n_blocks -
			 blocks_differ(q, f.blocks->data, (int64_t)e->n_blocks, e->type_size);
		total += (int64_t)e->n_blocks;
		ours = sq_err(f.input->data, y, n);
		ref = sq_err(f.input->data, f.expected->data, n);
		sig = 0;
		for (int64_t k = 0; k < n; k++)
			sig += (double)((const float *)f.input->data)[k] * ((const float *)f.input->data)[k];
		ours_all += ours / (sig > 0 ? sig : 1);
		ggml_all += ref / (sig > 0 ? sig : 1);
		printf("\n    %-22s rel.err ours %.3e ggml %.3e", e->file,
		       sqrt(ours / (sig > 0 ? sig : 1)), sqrt(ref / (sig > 0 ? sig : 1)));
		if (!(ours <= slack * ref + 1e-12 * sig))
			fprintf(stderr, "%s: round-trip error %.4g exceeds %.1f x ggml's %.4g\n",
				e->file, ours, slack, ref);
		CU_ASSERT(ours <= slack * ref + 1e-12 * sig);
		free(q);
		free(y);
		dqg_close(&f);
	}
	printf("\n  %s: %lld/%lld blocks identical to ggml (%.1f%%), mean rel. sq. error ours %.3e ggml %.3e ",
	       infer_type_name(id), (long long)match, (long long)total,
	       total ? 100.0 * match / total : 0.0, ours_all / 7, ggml_all / 7);
	CU_ASSERT(total > 0);
}

static void test_q2_k(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_Q2_K, 1.5);
}

static void test_q3_k(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_Q3_K, 1.5);
}

static void test_iq4_xs(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_IQ4_XS, 1.5);
}

static void test_q4_k(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_Q4_K, 1.5);
}

static void test_q5_k(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_Q5_K, 1.5);
}

static void test_q6_k(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_Q6_K, 1.5);
}

static void test_iq4_nl(void)
{
	if (!skip_if_absent())
		check_search_type(INFER_TYPE_IQ4_NL, 1.5);
}

/* The byte comparison used above notices a single changed byte, and the
 * error bound notices a broken encoder (all quants zeroed). */
static void test_checks_can_fail(void)
{
	const dqg_entry *e = NULL;
	dqg_file f;
	uint8_t *q;
	float *y;

	if (skip_if_absent())
		return;
	for (int i = 0; i < gold.n && !e; i++)
		if (!strcmp(gold.e[i].file, "q4_K.gauss.gguf"))
			e = &gold.e[i];
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL_FATAL(dqg_open(&gold, e, &f), 0);
	q = malloc(f.blocks->nbytes);
	y = malloc((size_t)f.input->n_elements * sizeof(float));
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_PTR_NOT_NULL_FATAL(y);
	memcpy(q, f.blocks->data, f.blocks->nbytes);
	CU_ASSERT_EQUAL(blocks_differ(q, f.blocks->data, (int64_t)e->n_blocks, e->type_size), 0);
	q[5 * e->type_size + 100] ^= 0x10;
	CU_ASSERT_EQUAL(blocks_differ(q, f.blocks->data, (int64_t)e->n_blocks, e->type_size), 1);
	/* Zeroed quants (scales kept) decode far from the input. */
	CU_ASSERT_EQUAL(roundtrip(e, &f, q, y), 0);
	for (uint64_t b = 0; b < e->n_blocks; b++)
		memset(q + b * e->type_size + 16, 0, 128);
	infer_dequantize(e->type_id, q, y, f.input->n_elements, "x", NULL);
	CU_ASSERT(sq_err(f.input->data, y, f.input->n_elements) >
		  1.5 * sq_err(f.input->data, f.expected->data, f.input->n_elements));
	free(q);
	free(y);
	dqg_close(&f);
}

/* Encoders without golden input: round trip on synthetic data. */
static void test_q8_1_and_f64(void)
{
	float x[64], y[64];
	uint8_t q[2 * 36];
	double d[64];

	for (int i = 0; i < 64; i++)
		x[i] = sinf((float)i) * 3.0f;
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_Q8_1, x, q, 64, "q8_1", NULL), 0);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_Q8_1, q, y, 64, "q8_1", NULL), 0);
	for (int i = 0; i < 64; i++)
		CU_ASSERT(fabsf(x[i] - y[i]) <= 3.0f / 127 * 0.5f * 1.01f);
	/* s = fp16(d * sum(qs)) */
	{
		int sum = 0;

		for (int j = 0; j < 32; j++)
			sum += (int8_t)q[4 + j];
		float dd = infer_fp16_to_fp32((uint16_t)(q[0] | q[1] << 8));
		float s = infer_fp16_to_fp32((uint16_t)(q[2] | q[3] << 8));
		CU_ASSERT(fabsf(s - dd * sum) <= fabsf(dd * sum) * 1e-3f + 1e-6f);
	}
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_F64, x, d, 64, "f64", NULL), 0);
	CU_ASSERT_EQUAL(infer_dequantize(INFER_TYPE_F64, d, y, 64, "f64", NULL), 0);
	CU_ASSERT_EQUAL(memcmp(x, y, sizeof(x)), 0);
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_I32, x, q, 16, "i32", NULL), INFER_E_UNSUPPORTED);
}

/* Degenerate blocks through every encoder: all zeros decode to zeros; float32
 * subnormals (1 / scale overflows to inf inside the encoder) decode to small
 * finite values instead of garbage or a crash. */
static void test_degenerate_inputs(void)
{
	float x[512], y[512];
	uint8_t q[512 * 8];

	for (uint32_t id = 0; id < INFER_TYPE_COUNT; id++) {
		const infer_type_traits *t = infer_type_traits_get(id);
		int bad = 0;

		if (!t || !t->from_float || t->block_size == 1)
			continue;
		memset(x, 0, sizeof(x));
		CU_ASSERT_EQUAL(infer_quantize(id, x, q, 512, t->name, NULL), 0);
		CU_ASSERT_EQUAL(infer_dequantize(id, q, y, 512, t->name, NULL), 0);
		for (int i = 0; i < 512; i++)
			bad += y[i] != 0.0f;
		for (int i = 0; i < 512; i++)
			x[i] = (i % 3 ? 1e-40f : -3e-42f) * (float)(1 + i % 7);
		CU_ASSERT_EQUAL(infer_quantize(id, x, q, 512, t->name, NULL), 0);
		CU_ASSERT_EQUAL(infer_dequantize(id, q, y, 512, t->name, NULL), 0);
		for (int i = 0; i < 512; i++)
			bad += !isfinite(y[i]) || fabsf(y[i]) > 1e-30f;
		if (bad)
			fprintf(stderr, "%s: %d bad values on degenerate input\n", t->name, bad);
		CU_ASSERT_EQUAL(bad, 0);
	}
}

/* ggml's CPU backend quantizes matmul activations with its q8_0 / q8_1 /
 * q8_K (and f16 / bf16) encoders; the kernel goldens keep the result as
 * in.xq next to the float input in.x. Our encoders must reproduce it byte for
 * byte: a second, independent check of q8_0 / q8_K and the only one of q8_1. */
static void test_activation_encoders(void)
{
	const char *sh = getenv("INFER_SHARED_DIR"), *src = getenv("INFER_SOURCE_DIR");
	char dir[600], path[900];
	struct dirent *de;
	int files = 0, seen[INFER_TYPE_COUNT] = { 0 };
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/conformance/kernels", sh ? sh : "../shared");
	d = opendir(dir);
	if (!d) {
		snprintf(dir, sizeof(dir), "%s/golden/conformance/kernels", src ? src : ".");
		d = opendir(dir);
	}
	if (!d) {
		printf("skipped: reference set not found ");
		return;
	}
	while ((de = readdir(d))) {
		const gguf_tensor *x, *xq;
		gguf_file *g;
		uint8_t *q;
		infer_error err;

		if (strncmp(de->d_name, "mul_mat.", 8) || !strstr(de->d_name, ".gguf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		g = gguf_open(path, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(g);
		x = gguf_find_tensor(g, "in.x");
		xq = gguf_find_tensor(g, "in.xq");
		if (x && xq && xq->n_elements == x->n_elements) {
			q = malloc(xq->nbytes);
			CU_ASSERT_PTR_NOT_NULL_FATAL(q);
			CU_ASSERT_EQUAL(infer_quantize(xq->type, x->data, q, x->n_elements, de->d_name,
						       &err), 0);
			if (memcmp(q, xq->data, xq->nbytes))
				fprintf(stderr, "%s: our %s encoding of in.x differs from in.xq\n",
					de->d_name, infer_type_name(xq->type));
			CU_ASSERT_EQUAL(memcmp(q, xq->data, xq->nbytes), 0);
			files++;
			seen[xq->type < INFER_TYPE_COUNT ? xq->type : 0]++;
			free(q);
		}
		gguf_close(g);
	}
	closedir(d);
	printf("\n  %d files: q8_0 %d, q8_1 %d, q8_K %d, f16 %d, bf16 %d ", files,
	       seen[INFER_TYPE_Q8_0], seen[INFER_TYPE_Q8_1], seen[INFER_TYPE_Q8_K],
	       seen[INFER_TYPE_F16], seen[INFER_TYPE_BF16]);
	CU_ASSERT(seen[INFER_TYPE_Q8_1] > 0);
	CU_ASSERT(seen[INFER_TYPE_Q8_0] > 0);
	CU_ASSERT(seen[INFER_TYPE_Q8_K] > 0);
}

/* A NaN or inf in the input is an error naming the tensor and element. */
static void test_nonfinite_rejected(void)
{
	float x[256];
	uint8_t q[512];
	infer_error err;

	for (int i = 0; i < 256; i++)
		x[i] = (float)i / 256.0f;
	x[200] = NAN;
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_Q4_K, x, q, 256, "blk.0.attn_q.weight", &err),
			INFER_E_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "blk.0.attn_q.weight"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "element 200"));
	x[200] = -INFINITY;
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_Q8_0, x, q, 256, "w", &err), INFER_E_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "infinite"));
	/* f16 stores inf as inf. */
	CU_ASSERT_EQUAL(infer_quantize(INFER_TYPE_F16, x, q, 256, "w", &err), 0);
	CU_ASSERT_EQUAL(q[2 * 200] | (q[2 * 200 + 1] << 8), 0xfc00);
}

int main(void)
{
	static const struct cu_case tests[] = {
		{ "fixed-formula encoders match ggml byte for byte", test_exact_quantizers },
		{ "q2_K encoder: match rate and error bound", test_q2_k },
		{ "q3_K encoder: match rate and error bound", test_q3_k },
		{ "q4_K encoder: match rate and error bound", test_q4_k },
		{ "q5_K encoder: match rate and error bound", test_q5_k },
		{ "q6_K encoder: match rate and error bound", test_q6_k },
		{ "iq4_nl encoder: match rate and error bound", test_iq4_nl },
		{ "iq4_xs encoder: match rate and error bound", test_iq4_xs },
		{ "the checks can fail", test_checks_can_fail },
		{ "q8_1 and f64 round trip", test_q8_1_and_f64 },
		{ "NaN/inf input rejected", test_nonfinite_rejected },
		{ "zero and subnormal blocks", test_degenerate_inputs },
		{ "activation encoders match ggml's in.xq", test_activation_encoders },
	};
	int failed;

	gold_state = dqg_load(&gold);
	if (gold_state == 0)
		printf("dequant golden set not found: golden-file tests skip\n");
	failed = cu_run_table("quant", tests, sizeof(tests) / sizeof(tests[0]));
	if (failed < 0)
		return 2;
	dqg_free(&gold);
	return failed ? 1 : 0;
}
