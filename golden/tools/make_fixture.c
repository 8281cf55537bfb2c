/* make_fixture: writes a Qwen2-architecture GGUF of any shape and quant mix
 * from a seed: random but finite weights with sane scales, so a forward pass
 * produces ordinary activations. The files are test and benchmark fixtures
 * made by the project itself (never references); large ones are generated
 * on demand and never committed.
 *
 *   make_fixture -o OUT.gguf [--preset qwen2.5-0.5b|tiny] [--mix q4_k_m|TYPE]
 *                [--seed N] [--layers N] [--embd N] [--ff N] [--heads N]
 *                [--kv-heads N] [--vocab N] [--ctx N] [--untied] [--threads N]
 *
 * --mix TYPE quantizes every matrix to TYPE (q8_0, f16, bf16, f32, q4_0, ...)
 * where the row length allows it; --mix q4_k_m follows llama.cpp's
 * Q4_K_M assignment (llama_tensor_get_type): Q4_K by default, Q6_K for the
 * output / tied embedding and for attn_v and ffn_down in the "more bits"
 * layers (first and last eighth, every third in between), and where a row
 * is not a multiple of 256 the llama.cpp fallback (Q4_K -> Q5_0, Q6_K ->
 * Q8_0). Norm weights and biases stay F32. Quantization uses the runtime's
 * quantizers (infer_quantize), threaded over rows. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/gguf.h"
#include "infer/quant.h"

struct shape {
	int32_t layers, embd, ff, heads, kv_heads, vocab, ctx;
	int tied;
};

struct job {
	uint32_t type;
	int64_t K, M;
	float scale, offset;
	uint64_t seed;
	uint8_t *dst;
	uint64_t row_bytes;
	int64_t m0, m1;
	int rc;
	infer_error err;
	const char *name;
};

/* splitmix64: a seed per row, so the output does not depend on threads. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Gaussian by Box-Muller from two uniforms in (0, 1]. */
static float gauss(uint64_t *s)
{
	*s = mix(*s);
	double u = ((*s >> 11) + 1) / 9007199254740993.0;
	*s = mix(*s);
	double v = (*s >> 11) / 9007199254740992.0;
	return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	float *row = malloc((size_t)j->K * sizeof(float));

	if (!row) {
		j->rc = infer_error_set(&j->err, INFER_E_NOMEM, -1, "%s: out of memory", j->name);
		return NULL;
	}
	for (int64_t m = j->m0; m < j->m1 && !j->rc; m++) {
		uint64_t s = mix(j->seed ^ (uint64_t)m * 0x2545f4914f6cdd1dull);
		for (int64_t k = 0; k < j->K; k++)
			row[k] = j->offset + j->scale * gauss(&s);
		j->rc = infer_quantize(j->type, row, j->dst + (uint64_t)m * j->row_bytes, j->K, j->name,
				       &j->err);
	}
	free(row);
	return NULL;
}

/* Fills and quantizes an M x K tensor on n_threads threads. */
static int make_tensor(gguf_writer *w, const char *name, uint32_t type, int64_t K, int64_t M,
		       float scale, float offset, uint64_t seed, int n_threads, infer_error *err)
{
	uint64_t rb = infer_row_size(type, K);
	struct job jobs[64];
	pthread_t th[64];
	uint8_t *buf;
	int64_t ne[2] = { K, M };
	int rc = 0;

	if (!rb)
		return infer_error_set(err, INFER_E_ARG, -1, "%s: %lld columns do not fit %s blocks",
				       name, (long long)K, infer_type_name(type));
	buf = malloc(rb * (uint64_t)M);
	if (!buf)
		return infer_error_set(err, INFER_E_NOMEM, -1, "%s: out of memory", name);
	if (n_threads > 64)
		n_threads = 64;
	if (n_threads > M)
		n_threads = (int)M;
	for (int t = 0; t < n_threads; t++) {
		jobs[t] = (struct job){ type, K, M, scale, offset, seed, buf, rb,
					M * t / n_threads, M * (t + 1) / n_threads, 0, { 0 }, name };
		pthread_create(&th[t], NULL, run_job, &jobs[t]);
	}
	for (int t = 0; t < n_threads; t++) {
		pthread_join(th[t], NULL);
		if (jobs[t].rc && !rc) {
			rc = jobs[t].rc;
			*err = jobs[t].err;
		}
	}
	if (!rc && gguf_writer_add_tensor(w, name, type, M == 1 ? 1 : 2, ne, buf, rb * (uint64_t)M))
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "%s: gguf writer refused the tensor", name);
	free(buf);
	return rc;
}

/* llama.cpp's row-length fallback for k-quants on rows not a multiple of 256. */
static uint32_t fallback(uint32_t type, int64_t K)
{
	if (K % 256 == 0)
		return type;
	switch (type) {
	case INFER_TYPE_Q4_K: return INFER_TYPE_Q5_0;
	case INFER_TYPE_Q5_K: return INFER_TYPE_Q5_1;
	case INFER_TYPE_Q6_K: return INFER_TYPE_Q8_0;
	default: return type;
	}
}

static int more_bits(int il, int n)
{
	return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

/* The type of one matrix under the mix; mix_type == UINT32_MAX means Q4_K_M. */
static uint32_t pick(uint32_t mix_type, const char *role, int il, int n_layer, int64_t K)
{
	uint32_t t = INFER_TYPE_Q4_K;

	if (mix_type != UINT32_MAX)
		return mix_type;
	if (!strcmp(role, "output"))
		t = INFER_TYPE_Q6_K;
	else if ((!strcmp(role, "attn_v") || !strcmp(role, "ffn_down")) && more_bits(il, n_layer))
		t = INFER_TYPE_Q6_K;
	return fallback(t, K);
}

static int usage(FILE *out, int code)
{
	fprintf(out,
		"usage: make_fixture -o OUT.gguf [--preset qwen2.5-0.5b|tiny] [--mix q4_k_m|TYPE]\n"
		"                    [--seed N] [--layers N] [--embd N] [--ff N] [--heads N]\n"
		"                    [--kv-heads N] [--vocab N] [--ctx N] [--untied] [--threads N]\n");
	return code;
}

static int parse_int(const char *opt, const char *v, int32_t *out)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || *end || x <= 0 || x > 1 << 30) {
		fprintf(stderr, "error: %s: '%s' is not a positive integer\n", opt, v);
		return -1;
	}
	*out = (int32_t)x;
	return 0;
}

static int add_meta(gguf_writer *w, const struct shape *s, const char *mix_name, uint64_t seed)
{
	int rc = 0;

	rc |= gguf_writer_add_str(w, "general.architecture", "qwen2");
	rc |= gguf_writer_add_str(w, "general.name", "random qwen2 fixture (make_fixture)");
	rc |= gguf_writer_add_str(w, "golden.kind", "fixture");
	rc |= gguf_writer_add_str(w, "golden.mix", mix_name);
	rc |= gguf_writer_add_u64(w, "golden.seed", seed);
	rc |= gguf_writer_add_u32(w, "qwen2.context_length", (uint32_t)s->ctx);
	rc |= gguf_writer_add_u32(w, "qwen2.embedding_length", (uint32_t)s->embd);
	rc |= gguf_writer_add_u32(w, "qwen2.block_count", (uint32_t)s->layers);
	rc |= gguf_writer_add_u32(w, "qwen2.feed_forward_length", (uint32_t)s->ff);
	rc |= gguf_writer_add_u32(w, "qwen2.attention.head_count", (uint32_t)s->heads);
	rc |= gguf_writer_add_u32(w, "qwen2.attention.head_count_kv", (uint32_t)s->kv_heads);
	rc |= gguf_writer_add_f32(w, "qwen2.rope.freq_base", 1000000.0f);
	rc |= gguf_writer_add_f32(w, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
	return rc;
}

/* Scales: weights ~N(0, 0.02^2) (a trained model's typical init scale),
 * norm weights 1 + N(0, 0.1^2), biases N(0, 0.02^2), embeddings N(0, 1): the
 * residual stream stays O(1) through any number of layers. */
static int make_model(gguf_writer *w, const struct shape *s, uint32_t mix_type, uint64_t seed,
		      int th, infer_error *err)
{
	int64_t E = s->embd, F = s->ff, hd = s->embd / s->heads, KV = hd * s->kv_heads;
	uint64_t sd = mix(seed);
	char name[64];
	int rc;
	int n = s->layers;

#define T(nm, role, il, K, M, sc, off, vec)                                                      \
	do {                                                                                      \
		uint32_t ty = (vec) ? INFER_TYPE_F32 : pick(mix_type, role, il, n, K);            \
		sd = mix(sd);                                                                     \
		if ((rc = make_tensor(w, nm, ty, K, M, sc, off, sd, th, err)))                    \
			return rc;                                                                \
	} while (0)
	T("token_embd.weight", s->tied ? "output" : "token_embd", 0, E, s->vocab, 1.0f, 0.0f, 0);
	T("output_norm.weight", "", 0, E, 1, 0.1f, 1.0f, 1);
	if (!s->tied)
		T("output.weight", "output", 0, E, s->vocab, 0.02f, 0.0f, 0);
	for (int il = 0; il < n; il++) {
#define L(suffix, role, K, M, sc, off, vec)                                 \
	do {                                                                \
		snprintf(name, sizeof(name), "blk.%d.%s", il, suffix);      \
		T(name, role, il, K, M, sc, off, vec);                      \
	} while (0)
		L("attn_norm.weight", "", E, 1, 0.1f, 1.0f, 1);
		L("attn_q.weight", "attn_q", E, E, 0.02f, 0.0f, 0);
		L("attn_q.bias", "", E, 1, 0.02f, 0.0f, 1);
		L("attn_k.weight", "attn_k", E, KV, 0.02f, 0.0f, 0);
		L("attn_k.bias", "", KV, 1, 0.02f, 0.0f, 1);
		L("attn_v.weight", "attn_v", E, KV, 0.02f, 0.0f, 0);
		L("attn_v.bias", "", KV, 1, 0.02f, 0.0f, 1);
		L("attn_output.weight", "attn_output", E, E, 0.02f, 0.0f, 0);
		L("ffn_norm.weight", "", E, 1, 0.1f, 1.0f, 1);
		L("ffn_gate.weight", "ffn_gate", E, F, 0.02f, 0.0f, 0);
		L("ffn_up.weight", "ffn_up", E, F, 0.02f, 0.0f, 0);
		L("ffn_down.weight", "ffn_down", F, E, 0.02f, 0.0f, 0);
#undef L
	}
#undef T
	return 0;
}

int main(int argc, char **argv)
{
	struct shape s = { 24, 896, 4864, 14, 2, 151936, 32768, 1 };
	const char *out = NULL, *mix_name = "q4_k_m";
	uint64_t seed = 1;
	int32_t threads = (int32_t)sysconf(_SC_NPROCESSORS_ONLN), v;
	uint32_t mix_type = UINT32_MAX;
	infer_error err = { 0 };
	gguf_writer *w;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
		int32_t *dst = NULL;
		if (!strcmp(o, "-h") || !strcmp(o, "--help"))
			return usage(stdout, 0);
		if (!strcmp(o, "--untied")) {
			s.tied = 0;
			continue;
		}
		if (!a)
			return usage(stderr, 2);
		i++;
		if (!strcmp(o, "-o"))
			out = a;
		else if (!strcmp(o, "--mix"))
			mix_name = a;
		else if (!strcmp(o, "--seed"))
			seed = strtoull(a, NULL, 10);
		else if (!strcmp(o, "--preset") && !strcmp(a, "qwen2.5-0.5b"))
			s = (struct shape){ 24, 896, 4864, 14, 2, 151936, 32768, 1 };
		else if (!strcmp(o, "--preset") && !strcmp(a, "tiny"))
			s = (struct shape){ 2, 64, 256, 4, 2, 512, 256, 1 };
		else if (!strcmp(o, "--layers")) dst = &s.layers;
		else if (!strcmp(o, "--embd")) dst = &s.embd;
		else if (!strcmp(o, "--ff")) dst = &s.ff;
		else if (!strcmp(o, "--heads")) dst = &s.heads;
		else if (!strcmp(o, "--kv-heads")) dst = &s.kv_heads;
		else if (!strcmp(o, "--vocab")) dst = &s.vocab;
		else if (!strcmp(o, "--ctx")) dst = &s.ctx;
		else if (!strcmp(o, "--threads")) dst = &threads;
		else {
			fprintf(stderr, "error: unknown option %s %s\n", o, a);
			return usage(stderr, 2);
		}
		if (dst && parse_int(o, a, dst))
			return 2;
	}
	if (!out)
		return usage(stderr, 2);
	if (s.embd % s.heads || s.heads % s.kv_heads) {
		fprintf(stderr, "error: embd %d / heads %d / kv-heads %d do not divide\n", s.embd,
			s.heads, s.kv_heads);
		return 2;
	}
	if (strcasecmp(mix_name, "q4_k_m")) {
		const infer_type_traits *t = infer_type_by_name(mix_name);
		if (!t || !t->from_float) {
			fprintf(stderr, "error: --mix %s: not q4_k_m and not a type with a quantizer\n",
				mix_name);
			return 2;
		}
		mix_type = t->id;
	}
	(void)v;
	w = gguf_writer_new(0);
	if (!w || add_meta(w, &s, mix_name, seed)) {
		fprintf(stderr, "error: gguf writer: out of memory\n");
		gguf_writer_free(w);
		return 1;
	}
	if (make_model(w, &s, mix_type, seed, threads, &err) || gguf_writer_write(w, out, &err)) {
		fprintf(stderr, "error: %s\n", err.msg);
		gguf_writer_free(w);
		return 1;
	}
	gguf_writer_free(w);
	printf("wrote %s: qwen2 %d layers, embd %d, ff %d, heads %d/%d, vocab %d, mix %s, seed %llu\n",
	       out, s.layers, s.embd, s.ff, s.heads, s.kv_heads, s.vocab, mix_name,
	       (unsigned long long)seed);
	return 0;
}
