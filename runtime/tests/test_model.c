/* Model loading: hyper-parameters, tensor binding for qwen2 and llama, and
 * the errors for missing / mis-shaped tensors and missing metadata. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/model.h"
#include "infer/quant.h"
#include "util_fixture.h"

/* Writes a fixture, loads it; returns the model or NULL with err filled. */
static infer_model *load_fixture(const struct fx_opts *o, infer_error *err)
{
	char *path = fx_tmp_path("model");
	infer_model *m = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	CU_ASSERT_EQUAL_FATAL(fx_write_model(path, o), 0);
	m = infer_model_load(path, err);
	unlink(path);
	free(path);
	return m;
}

static void test_qwen2_hparams(void)
{
	struct fx_opts o = { 0 };
	infer_error err = { 0 };
	infer_model *m = load_fixture(&o, &err);
	const infer_hparams *hp;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	hp = infer_model_hparams(m);
	CU_ASSERT_STRING_EQUAL(hp->arch, "qwen2");
	CU_ASSERT_EQUAL(hp->n_vocab, FX_VOCAB);
	CU_ASSERT_EQUAL(hp->n_ctx, FX_CTX);
	CU_ASSERT_EQUAL(hp->n_embd, FX_EMBD);
	CU_ASSERT_EQUAL(hp->n_layer, FX_LAYER);
	CU_ASSERT_EQUAL(hp->n_ff, FX_FF);
	CU_ASSERT_EQUAL(hp->n_head, FX_HEAD);
	CU_ASSERT_EQUAL(hp->n_head_kv, FX_HEAD_KV);
	CU_ASSERT_EQUAL(hp->head_dim, FX_HEAD_DIM);
	CU_ASSERT_EQUAL(hp->n_rot, FX_HEAD_DIM);
	CU_ASSERT_EQUAL(hp->rope_neox, 1);
	CU_ASSERT_EQUAL(hp->has_qkv_bias, 1);
	CU_ASSERT_EQUAL(hp->tied_output, 1);
	CU_ASSERT_DOUBLE_EQUAL(hp->rope_freq_base, 10000.0, 1e-3);
	CU_ASSERT_DOUBLE_EQUAL(hp->norm_eps, 1e-6, 1e-12);
	CU_ASSERT(infer_model_weight_bytes(m) > 0);
	/* No tokenizer keys in the fixture: loads anyway, tokenizer NULL. */
	CU_ASSERT_PTR_NULL(infer_model_tokenizer(m));
	infer_model_free(m);
}

static void test_llama_hparams(void)
{
	struct fx_opts o = { .arch = "llama", .untied = 1, .no_bias = 1, .n_rot = 4 };
	infer_error err = { 0 };
	infer_model *m = load_fixture(&o, &err);
	const infer_hparams *hp;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	hp = infer_model_hparams(m);
	CU_ASSERT_STRING_EQUAL(hp->arch, "llama");
	CU_ASSERT_EQUAL(hp->rope_neox, 0);
	CU_ASSERT_EQUAL(hp->has_qkv_bias, 0);
	CU_ASSERT_EQUAL(hp->tied_output, 0);
	CU_ASSERT_EQUAL(hp->n_rot, 4);
	infer_model_free(m);
}

/* Loading fails with code and a message containing every needle. */
static void expect_error(const struct fx_opts *o, int code, const char *const *needles)
{
	infer_error err = { 0 };
	infer_model *m = load_fixture(o, &err);

	CU_ASSERT_PTR_NULL(m);
	infer_model_free(m);
	CU_ASSERT_EQUAL(err.code, code);
	for (; *needles; needles++) {
		if (!strstr(err.msg, *needles))
			fprintf(stderr, "\n  message '%s' lacks '%s'\n", err.msg, *needles);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, *needles));
	}
}

static void test_missing_tensor(void)
{
	struct fx_opts o = { .drop = "blk.1.ffn_up.weight" };
	const char *needles[] = { "blk.1.ffn_up.weight", "missing", "[32, 64]", NULL };

	expect_error(&o, INFER_E_MODEL, needles);
}

static void test_missing_bias(void)
{
	struct fx_opts o = { .drop = "blk.0.attn_k.bias" };
	const char *needles[] = { "blk.0.attn_k.bias", "missing", "[16]", NULL };

	expect_error(&o, INFER_E_MODEL, needles);
}

static void test_misshaped_tensor(void)
{
	struct fx_opts o = { .misshape = "blk.0.attn_k.weight" };
	const char *needles[] = { "blk.0.attn_k.weight", "expected dims [32, 16]",
				  "found [31, 16]", NULL };

	expect_error(&o, INFER_E_MODEL, needles);
}

static void test_misshaped_norm(void)
{
	struct fx_opts o = { .misshape = "output_norm.weight" };
	const char *needles[] = { "output_norm.weight", "expected dims [32]", "found [31]", NULL };

	expect_error(&o, INFER_E_MODEL, needles);
}

static void test_missing_hparam(void)
{
	struct fx_opts o = { .drop_key = "qwen2.embedding_length" };
	const char *needles[] = { "qwen2.embedding_length", "missing", NULL };

	expect_error(&o, INFER_E_MODEL, needles);
}

static void test_unsupported_arch(void)
{
	struct fx_opts o = { .arch = "gpt2" };
	const char *needles[] = { "gpt2", "not supported", NULL };

	expect_error(&o, INFER_E_UNSUPPORTED, needles);
}

static void test_missing_file(void)
{
	infer_error err = { 0 };

	CU_ASSERT_PTR_NULL(infer_model_load("/nonexistent/model.gguf", &err));
	CU_ASSERT_NOT_EQUAL(err.code, 0);
	CU_ASSERT(err.msg[0] != '\0');
}

/* Quantized 2-D weights bind with their type kept (no conversion at load). */
static void test_quantized_weights(void)
{
	struct fx_opts o = { .wtype = INFER_TYPE_Q8_0 };
	infer_error err = { 0 };
	infer_model *m = load_fixture(&o, &err);
	const gguf_tensor *t;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	t = gguf_find_tensor(infer_model_gguf(m), "blk.0.attn_q.weight");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->type, INFER_TYPE_Q8_0);
	infer_model_free(m);
}

/* The real haiku model, against the numbers its README states. */
static void test_haiku_model(void)
{
	char *path = fx_shared("models/haiku-qwen2-tiny-f16.gguf");
	infer_error err = { 0 };
	const infer_hparams *hp;
	infer_model *m;

	if (!path) {
		printf("skipped: reference set not found ");
		return;
	}
	m = infer_model_load(path, &err);
	free(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	hp = infer_model_hparams(m);
	CU_ASSERT_EQUAL(hp->n_vocab, 4096);
	CU_ASSERT_EQUAL(hp->n_embd, 256);
	CU_ASSERT_EQUAL(hp->n_layer, 6);
	CU_ASSERT_EQUAL(hp->n_head, 8);
	CU_ASSERT_EQUAL(hp->n_head_kv, 2);
	CU_ASSERT_EQUAL(hp->head_dim, 32);
	CU_ASSERT_EQUAL(hp->n_ff, 768);
	CU_ASSERT_EQUAL(hp->n_ctx, 256);
	CU_ASSERT_DOUBLE_EQUAL(hp->rope_freq_base, 1e6, 1.0);
	CU_ASSERT_EQUAL(hp->tied_output, 1);
	CU_ASSERT_PTR_NOT_NULL(infer_model_tokenizer(m));
	infer_model_free(m);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("model", NULL, NULL);
	CU_add_test(s, "qwen2 hyper-parameters", test_qwen2_hparams);
	CU_add_test(s, "llama hyper-parameters", test_llama_hparams);
	CU_add_test(s, "missing tensor names it and its dims", test_missing_tensor);
	CU_add_test(s, "missing qwen2 bias", test_missing_bias);
	CU_add_test(s, "mis-shaped matrix names expected and actual dims", test_misshaped_tensor);
	CU_add_test(s, "mis-shaped norm", test_misshaped_norm);
	CU_add_test(s, "missing hyper-parameter names the key", test_missing_hparam);
	CU_add_test(s, "unsupported architecture", test_unsupported_arch);
	CU_add_test(s, "missing file", test_missing_file);
	CU_add_test(s, "quantized weights keep their type", test_quantized_weights);
	CU_add_test(s, "haiku model hyper-parameters", test_haiku_model);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	{
		int fails = (int)CU_get_number_of_failures();

		CU_cleanup_registry();
		return fails ? 1 : 0;
	}
}
