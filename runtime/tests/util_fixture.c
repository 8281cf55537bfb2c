/* Model fixtures (see util_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/quant.h"
#include "util_fixture.h"

float fx_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (float)((double)(*s >> 11) / 4503599627370496.0 - 1.0);
}

char *fx_tmp_path(const char *stem)
{
	char *p = malloc(256);
	int fd;

	if (!p)
		return NULL;
	snprintf(p, 256, "/tmp/infer-test-%s-XXXXXX", stem);
	fd = mkstemp(p);
	if (fd < 0) {
		free(p);
		return NULL;
	}
	close(fd);
	return p;
}

char *fx_shared(const char *rel)
{
	const char *dir = getenv("INFER_SHARED_DIR");
	struct stat st;
	char *p;

	if (!dir)
		dir = "../shared";
	p = malloc(strlen(dir) + strlen(rel) + 2);
	if (!p)
		return NULL;
	sprintf(p, "%s/%s", dir, rel);
	if (stat(p, &st)) {
		free(p);
		return NULL;
	}
	return p;
}

/* ---- the tiny model ------------------------------------------------------ */

static int add_weight(gguf_writer *w, const struct fx_opts *o, const char *name, int64_t ne0,
		      int64_t ne1, float scale, uint64_t *rng)
{
	int is_2d = ne1 > 0;
	uint32_t type = is_2d && o->wtype ? o->wtype : INFER_TYPE_F32;
	int64_t ne[2] = { ne0, is_2d ? ne1 : 1 };
	int64_t n = ne[0] * ne[1];
	float *v;
	void *q;
	uint64_t bytes;
	int rc;

	if (o->drop && !strcmp(o->drop, name))
		return 0;
	if (o->misshape && !strcmp(o->misshape, name)) {
		ne[0] -= 1;
		n = ne[0] * ne[1];
		type = INFER_TYPE_F32;
	}
	v = malloc((size_t)n * sizeof(float));
	bytes = infer_row_size(type, ne[0]) * (uint64_t)ne[1];
	q = malloc(bytes ? bytes : 1);
	if (!v || !q || !bytes) {
		free(v);
		free(q);
		return INFER_E_NOMEM;
	}
	for (int64_t i = 0; i < n; i++)
		v[i] = scale * fx_rand(rng);
	/* Norm weights sit around 1, as trained ones do. */
	if (strstr(name, "norm"))
		for (int64_t i = 0; i < n; i++)
			v[i] += 1.0f;
	rc = infer_quantize(type, v, q, n, name, NULL);
	if (!rc)
		rc = gguf_writer_add_tensor(w, name, type, is_2d ? 2 : 1, ne, q, bytes);
	free(v);
	free(q);
	return rc;
}

static void add_hparams(gguf_writer *w, const struct fx_opts *o, const char *arch)
{
	char k[96];

#define KEY(s) (snprintf(k, sizeof(k), "%s." s, arch), k)
#define SKIP(s) (o->drop_key && !strcmp(o->drop_key, KEY(s)))
	gguf_writer_add_str(w, "general.architecture", arch);
	if (!SKIP("context_length"))
		gguf_writer_add_u32(w, KEY("context_length"), FX_CTX);
	if (!SKIP("embedding_length"))
		gguf_writer_add_u32(w, KEY("embedding_length"), FX_EMBD);
	if (!SKIP("block_count"))
		gguf_writer_add_u32(w, KEY("block_count"), FX_LAYER);
	if (!SKIP("feed_forward_length"))
		gguf_writer_add_u32(w, KEY("feed_forward_length"), FX_FF);
	if (!SKIP("attention.head_count"))
		gguf_writer_add_u32(w, KEY("attention.head_count"), FX_HEAD);
	if (!SKIP("attention.head_count_kv"))
		gguf_writer_add_u32(w, KEY("attention.head_count_kv"), FX_HEAD_KV);
	if (!SKIP("rope.freq_base"))
		gguf_writer_add_f32(w, KEY("rope.freq_base"), 10000.0f);
	if (!SKIP("attention.layer_norm_rms_epsilon"))
		gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
	if (o->n_rot > 0)
		gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)o->n_rot);
#undef KEY
#undef SKIP
}

int fx_write_model(const char *path, const struct fx_opts *o)
{
	const char *arch = o->arch ? o->arch : "qwen2";
	gguf_writer *w = gguf_writer_new(0);
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	int64_t q = FX_HEAD * FX_HEAD_DIM, kv = FX_HEAD_KV * FX_HEAD_DIM;
	infer_error err = { 0 };
	char n[64];
	int rc = 0;

	if (!w)
		return INFER_E_NOMEM;
	add_hparams(w, o, arch);
	rc = rc ? rc : add_weight(w, o, "token_embd.weight", FX_EMBD, FX_VOCAB, 1.0f, &rng);
	for (int il = 0; il < FX_LAYER && !rc; il++) {
#define L(s) (snprintf(n, sizeof(n), "blk.%d." s, il), n)
		rc = rc ? rc : add_weight(w, o, L("attn_norm.weight"), FX_EMBD, 0, 0.1f, &rng);
		rc = rc ? rc : add_weight(w, o, L("attn_q.weight"), FX_EMBD, q, 0.3f, &rng);
		rc = rc ? rc : add_weight(w, o, L("attn_k.weight"), FX_EMBD, kv, 0.3f, &rng);
		rc = rc ? rc : add_weight(w, o, L("attn_v.weight"), FX_EMBD, kv, 0.3f, &rng);
		if (!o->no_bias) {
			rc = rc ? rc : add_weight(w, o, L("attn_q.bias"), q, 0, 0.2f, &rng);
			rc = rc ? rc : add_weight(w, o, L("attn_k.bias"), kv, 0, 0.2f, &rng);
			rc = rc ? rc : add_weight(w, o, L("attn_v.bias"), kv, 0, 0.2f, &rng);
		}
		rc = rc ? rc : add_weight(w, o, L("attn_output.weight"), q, FX_EMBD, 0.3f, &rng);
		rc = rc ? rc : add_weight(w, o, L("ffn_norm.weight"), FX_EMBD, 0, 0.1f, &rng);
		rc = rc ? rc : add_weight(w, o, L("ffn_gate.weight"), FX_EMBD, FX_FF, 0.3f, &rng);
		rc = rc ? rc : add_weight(w, o, L("ffn_up.weight"), FX_EMBD, FX_FF, 0.3f, &rng);
		rc = rc ? rc : add_weight(w, o, L("ffn_down.weight"), FX_FF, FX_EMBD, 0.3f, &rng);
#undef L
	}
	rc = rc ? rc : add_weight(w, o, "output_norm.weight", FX_EMBD, 0, 0.1f, &rng);
	if (o->untied)
		rc = rc ? rc : add_weight(w, o, "output.weight", FX_EMBD, FX_VOCAB, 0.5f, &rng);
	if (!rc)
		rc = gguf_writer_write(w, path, &err);
	if (rc)
		fprintf(stderr, "fixture %s: rc %d %s\n", path, rc, err.msg);
	gguf_writer_free(w);
	return rc;
}

/* ---- converting an existing model ---------------------------------------- */

/* Copies one KV, renaming "qwen2." to "llama." when asked. */
static int copy_kv(gguf_writer *w, const gguf_kv *kv, int to_llama)
{
	char key[256], *s;
	int rc;

	snprintf(key, sizeof(key), "%.*s", (int)kv->key.len, kv->key.data);
	if (to_llama && !strncmp(key, "qwen2.", 6))
		memcpy(key, "llama.", 6); /* same length: the rest stays */
	if (kv->type == GGUF_VT_STRING) {
		if (to_llama && !strcmp(key, "general.architecture"))
			return gguf_writer_add_str(w, key, "llama");
		s = strndup(kv->v.str.data, kv->v.str.len);
		rc = s ? gguf_writer_add_str(w, key, s) : INFER_E_NOMEM;
		free(s);
		return rc;
	}
	if (kv->type != GGUF_VT_ARRAY)
		return gguf_writer_add_scalar(w, key, kv->type, &kv->v);
	if (kv->v.arr.type != GGUF_VT_STRING)
		return gguf_writer_add_arr(w, key, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n);
	{
		char **v = calloc(kv->v.arr.n ? kv->v.arr.n : 1, sizeof(char *));

		rc = v ? 0 : INFER_E_NOMEM;
		for (uint64_t i = 0; i < kv->v.arr.n && !rc; i++)
			if (!(v[i] = strndup(kv->v.arr.strs[i].data, kv->v.arr.strs[i].len)))
				rc = INFER_E_NOMEM;
		if (!rc)
			rc = gguf_writer_add_str_arr(w, key, (const char *const *)v, kv->v.arr.n);
		for (uint64_t i = 0; v && i < kv->v.arr.n; i++)
			free(v[i]);
		free(v);
		return rc;
	}
}

/* Interleaves the rows of each head: new 2i <- old i, new 2i+1 <- old i+d/2. */
static void permute_heads(float *v, int64_t row_len, int64_t n_rows, int64_t head_dim)
{
	float *tmp = malloc((size_t)(row_len * head_dim) * sizeof(float));
	int64_t half = head_dim / 2;

	for (int64_t h = 0; h < n_rows / head_dim; h++) {
		float *base = v + h * head_dim * row_len;

		memcpy(tmp, base, (size_t)(row_len * head_dim) * sizeof(float));
		for (int64_t i = 0; i < half; i++) {
			memcpy(base + (2 * i) * row_len, tmp + i * row_len, row_len * sizeof(float));
			memcpy(base + (2 * i + 1) * row_len, tmp + (i + half) * row_len,
			       row_len * sizeof(float));
		}
	}
	free(tmp);
}

static int copy_tensor(gguf_writer *w, const gguf_tensor *t, const char *name, fx_retype_fn retype,
		       void *user, int permute, int64_t head_dim)
{
	int64_t row = t->ne[0], rows = t->n_elements / t->ne[0];
	uint32_t type = t->n_dims == 2 && retype ? retype(name, t->type, user) : t->type;
	float *v = malloc((size_t)t->n_elements * sizeof(float));
	uint64_t bytes = infer_row_size(type, row) * (uint64_t)rows;
	void *q = malloc(bytes ? bytes : 1);
	int rc;

	if (!v || !q || !bytes) {
		free(v);
		free(q);
		return INFER_E_NOMEM;
	}
	rc = infer_dequantize(t->type, t->data, v, t->n_elements, name, NULL);
	/* A bias is one row of n_head*head_dim: permute it as a column. */
	if (!rc && permute)
		permute_heads(v, t->n_dims == 2 ? row : 1, t->n_dims == 2 ? rows : row, head_dim);
	if (!rc)
		rc = infer_quantize(type, v, q, t->n_elements, name, NULL);
	if (!rc)
		rc = gguf_writer_add_tensor(w, name, type, t->n_dims, t->ne, q, bytes);
	free(v);
	free(q);
	return rc;
}

int fx_convert(const char *src, const char *dst, fx_retype_fn retype, void *user, int to_llama)
{
	infer_error err = { 0 };
	gguf_file *f = gguf_open(src, &err);
	gguf_writer *w;
	int64_t n_embd = 0, n_head = 0;
	int rc = 0;

	if (!f)
		return err.code;
	w = gguf_writer_new(gguf_alignment(f));
	gguf_get_int(f, "qwen2.embedding_length", &n_embd, NULL);
	gguf_get_int(f, "qwen2.attention.head_count", &n_head, NULL);
	for (int64_t i = 0; i < gguf_n_kv(f) && !rc; i++) {
		const gguf_kv *kv = gguf_kv_at(f, i);

		if (kv->key.len == 17 && !memcmp(kv->key.data, "general.alignment", 17))
			continue; /* the writer sets it */
		rc = copy_kv(w, kv, to_llama);
	}
	for (int64_t i = 0; i < gguf_n_tensors(f) && !rc; i++) {
		const gguf_tensor *t = gguf_tensor_at(f, i);
		int qk = strstr(t->name, "attn_q.") || strstr(t->name, "attn_k.");

		rc = copy_tensor(w, t, t->name, retype, user, to_llama && qk,
				 n_head ? n_embd / n_head : 1);
		if (!rc && to_llama && !strcmp(t->name, "token_embd.weight") &&
		    !gguf_find_tensor(f, "output.weight"))
			rc = copy_tensor(w, t, "output.weight", retype, user, 0, 1);
	}
	if (!rc)
		rc = gguf_writer_write(w, dst, &err);
	if (rc)
		fprintf(stderr, "convert %s -> %s: rc %d %s\n", src, dst, rc, err.msg);
	gguf_writer_free(w);
	gguf_close(f);
	return rc;
}
