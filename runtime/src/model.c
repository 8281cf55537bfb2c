/* Model loading: hyper-parameters from GGUF metadata, weights bound by their
 * llama.cpp names with every shape checked before anything runs.
 *
 * Supported architectures: qwen2 (Q/K/V biases, NEOX RoPE, output usually
 * tied to token_embd) and llama (no biases, normal RoPE, rope.dimension_count,
 * untied output). Any ggml type with a dequantizer may hold any weight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/quant.h"
#include "infer/tokenizer.h"
#include "model_internal.h"

/* ---- hyper-parameters ---------------------------------------------------- */

static int arch_key(char *buf, size_t n, const char *arch, const char *key)
{
	snprintf(buf, n, "%s.%s", arch, key);
	return 0;
}

/* A required integer hyper-parameter <arch>.<key>, positive. */
static int get_hp_int(const gguf_file *f, const char *arch, const char *key, int required,
		      int32_t dflt, int32_t *out, infer_error *err)
{
	char name[128];
	int64_t v;
	int rc;

	arch_key(name, sizeof(name), arch, key);
	rc = gguf_get_int(f, name, &v, err);
	if (rc == GGUF_E_KEY && !required) {
		infer_error_clear(err);
		*out = dflt;
		return 0;
	}
	if (rc)
		return infer_error_set(err, INFER_E_MODEL, -1, "hyper-parameter %s: %s", name,
				       rc == GGUF_E_KEY ? "missing" : "not an integer");
	if (v <= 0 || v > INT32_MAX)
		return infer_error_set(err, INFER_E_MODEL, -1, "hyper-parameter %s = %lld out of range",
				       name, (long long)v);
	*out = (int32_t)v;
	return 0;
}

/* A float hyper-parameter stored as f32 (llama.cpp) or f64 (some converters). */
static int get_hp_float(const gguf_file *f, const char *arch, const char *key, int required,
			float dflt, float *out, infer_error *err)
{
	char name[128];
	const gguf_kv *kv;

	arch_key(name, sizeof(name), arch, key);
	kv = gguf_find_kv(f, name);
	if (!kv) {
		if (required)
			return infer_error_set(err, INFER_E_MODEL, -1, "hyper-parameter %s: missing",
					       name);
		*out = dflt;
		return 0;
	}
	if (kv->type == GGUF_VT_FLOAT32)
		*out = kv->v.f32;
	else if (kv->type == GGUF_VT_FLOAT64)
		*out = (float)kv->v.f64;
	else
		return infer_error_set(err, INFER_E_MODEL, (int64_t)kv->offset,
				       "hyper-parameter %s: type %s, expected float32", name,
				       gguf_vtype_name(kv->type));
	if (!(*out > 0.0f))
		return infer_error_set(err, INFER_E_MODEL, (int64_t)kv->offset,
				       "hyper-parameter %s = %g must be > 0", name, (double)*out);
	return 0;
}

static int read_arch(const gguf_file *f, infer_hparams *hp, infer_error *err)
{
	gguf_str s;

	if (gguf_get_str(f, "general.architecture", &s, err))
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "general.architecture: missing or not a string");
	if (s.len >= sizeof(hp->arch))
		return infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				       "architecture name of %llu bytes is not supported",
				       (unsigned long long)s.len);
	memcpy(hp->arch, s.data, s.len);
	hp->arch[s.len] = '\0';
	if (strcmp(hp->arch, "qwen2") && strcmp(hp->arch, "llama"))
		return infer_error_set(err, INFER_E_UNSUPPORTED, -1,
				       "architecture '%s' is not supported (qwen2, llama)", hp->arch);
	return 0;
}

static int read_hparams(const gguf_file *f, infer_hparams *hp, infer_error *err)
{
	const char *a = hp->arch;
	int32_t key_len;
	int rc = 0;

	rc = rc ? rc : get_hp_int(f, a, "context_length", 1, 0, &hp->n_ctx, err);
	rc = rc ? rc : get_hp_int(f, a, "embedding_length", 1, 0, &hp->n_embd, err);
	rc = rc ? rc : get_hp_int(f, a, "block_count", 1, 0, &hp->n_layer, err);
	rc = rc ? rc : get_hp_int(f, a, "feed_forward_length", 1, 0, &hp->n_ff, err);
	rc = rc ? rc : get_hp_int(f, a, "attention.head_count", 1, 0, &hp->n_head, err);
	rc = rc ? rc : get_hp_int(f, a, "attention.head_count_kv", 0, hp->n_head,
				  &hp->n_head_kv, err);
	rc = rc ? rc : get_hp_float(f, a, "rope.freq_base", 0, 10000.0f, &hp->rope_freq_base,
				    err);
	rc = rc ? rc : get_hp_float(f, a, "attention.layer_norm_rms_epsilon", 1, 0.0f,
				    &hp->norm_eps, err);
	if (rc)
		return rc;
	if (hp->n_embd % hp->n_head)
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "embedding_length %d is not a multiple of head_count %d",
				       hp->n_embd, hp->n_head);
	if (hp->n_head % hp->n_head_kv)
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "head_count %d is not a multiple of head_count_kv %d",
				       hp->n_head, hp->n_head_kv);
	/* attention.key_length overrides n_embd / n_head when present. */
	rc = get_hp_int(f, a, "attention.key_length", 0, hp->n_embd / hp->n_head, &key_len, err);
	if (rc)
		return rc;
	hp->head_dim = key_len;
	rc = get_hp_int(f, a, "rope.dimension_count", 0, hp->head_dim, &hp->n_rot, err);
	if (rc)
		return rc;
	if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "%s.rope.dimension_count %d must be even and <= head dim %d", a,
				       hp->n_rot, hp->head_dim);
	hp->rope_neox = !strcmp(a, "qwen2");
	return 0;
}

/* ---- tensor binding ------------------------------------------------------ */

static void dims_str(char *buf, size_t n, const gguf_tensor *t)
{
	int w = snprintf(buf, n, "[");

	for (uint32_t i = 0; i < t->n_dims && w < (int)n; i++)
		w += snprintf(buf + w, n - w, "%s%lld", i ? ", " : "", (long long)t->ne[i]);
	if (w < (int)n)
		snprintf(buf + w, n - w, "]");
}

/* Finds name and checks it has exactly the dims ne[0..n_dims) (ggml order). */
static int find_shaped(const gguf_file *f, const char *name, uint32_t n_dims, const int64_t *ne,
		       int optional, const gguf_tensor **out, infer_error *err)
{
	const gguf_tensor *t = gguf_find_tensor(f, name);
	char want[96], got[96];
	int ok;

	*out = NULL;
	if (n_dims == 2)
		snprintf(want, sizeof(want), "[%lld, %lld]", (long long)ne[0], (long long)ne[1]);
	else
		snprintf(want, sizeof(want), "[%lld]", (long long)ne[0]);
	if (!t) {
		if (optional)
			return 0;
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "tensor '%s' missing (expected dims %s)", name, want);
	}
	/* A trailing dim of 1 is the same shape (ggml pads ne with 1). */
	ok = t->n_dims <= n_dims || (t->n_dims == 2 && n_dims == 1 && t->ne[1] == 1);
	for (uint32_t i = 0; i < GGUF_MAX_DIMS && ok; i++)
		ok = t->ne[i] == (i < n_dims ? ne[i] : 1);
	if (!ok) {
		dims_str(got, sizeof(got), t);
		return infer_error_set(err, INFER_E_MODEL, (int64_t)t->info_offset,
				       "tensor '%s': expected dims %s, found %s", name, want, got);
	}
	if (!t->data)
		return infer_error_set(err, INFER_E_MODEL, (int64_t)t->info_offset,
				       "tensor '%s': data lies outside the file", name);
	if (!infer_type_traits_get(t->type) || !infer_type_traits_get(t->type)->to_float)
		return infer_error_set(err, INFER_E_UNSUPPORTED, (int64_t)t->info_offset,
				       "tensor '%s': type id %u (%s) has no dequantizer", name,
				       t->type, infer_type_name(t->type));
	*out = t;
	return 0;
}

static int bind_matrix(infer_model *m, const char *name, int64_t ne0, int64_t ne1,
		       infer_matrix *out, infer_error *err)
{
	const int64_t ne[2] = { ne0, ne1 };
	const gguf_tensor *t;
	int rc = find_shaped(m->gguf, name, 2, ne, 0, &t, err);

	if (rc)
		return rc;
	out->name = t->name;
	out->type = t->type;
	out->ne0 = ne0;
	out->ne1 = ne1;
	out->data = t->data;
	out->nbytes = t->nbytes;
	out->row_bytes = infer_row_size(t->type, ne0);
	if (out->row_bytes == 0)
		return infer_error_set(err, INFER_E_MODEL, (int64_t)t->info_offset,
				       "tensor '%s': row of %lld is not a whole number of %s blocks",
				       name, (long long)ne0, infer_type_name(t->type));
	m->weight_bytes += t->nbytes;
	return 0;
}

/* Vectors are converted to float32 once; an absent optional one has data NULL. */
static int bind_vector(infer_model *m, const char *name, int64_t n, int optional,
		       infer_vector *out, infer_error *err)
{
	const gguf_tensor *t;
	int rc = find_shaped(m->gguf, name, 1, &n, optional, &t, err);

	if (rc || !t)
		return rc;
	out->name = t->name;
	out->n = n;
	out->data = malloc((size_t)n * sizeof(float));
	if (!out->data)
		return infer_error_set(err, INFER_E_NOMEM, -1, "tensor '%s': out of memory", name);
	m->weight_bytes += t->nbytes;
	return infer_dequantize(t->type, t->data, out->data, n, t->name, err);
}

static int bind_layer(infer_model *m, int il, infer_error *err)
{
	const infer_hparams *hp = &m->hp;
	infer_layer *L = &m->layers[il];
	int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
	int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	char n[GGUF_NAME_MAX + 16];
	int rc = 0;

#define NAME(s) (snprintf(n, sizeof(n), "blk.%d." s, il), n)
	rc = rc ? rc : bind_vector(m, NAME("attn_norm.weight"), hp->n_embd, 0, &L->attn_norm, err);
	rc = rc ? rc : bind_matrix(m, NAME("attn_q.weight"), hp->n_embd, q_dim, &L->wq, err);
	rc = rc ? rc : bind_matrix(m, NAME("attn_k.weight"), hp->n_embd, kv_dim, &L->wk, err);
	rc = rc ? rc : bind_matrix(m, NAME("attn_v.weight"), hp->n_embd, kv_dim, &L->wv, err);
	rc = rc ? rc : bind_vector(m, NAME("attn_q.bias"), q_dim, !hp->has_qkv_bias, &L->bq, err);
	rc = rc ? rc : bind_vector(m, NAME("attn_k.bias"), kv_dim, !hp->has_qkv_bias, &L->bk, err);
	rc = rc ? rc : bind_vector(m, NAME("attn_v.bias"), kv_dim, !hp->has_qkv_bias, &L->bv, err);
	rc = rc ? rc : bind_matrix(m, NAME("attn_output.weight"), q_dim, hp->n_embd, &L->wo, err);
	rc = rc ? rc : bind_vector(m, NAME("ffn_norm.weight"), hp->n_embd, 0, &L->ffn_norm, err);
	rc = rc ? rc : bind_matrix(m, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, &L->ffn_gate,
				   err);
	rc = rc ? rc : bind_matrix(m, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, &L->ffn_up, err);
	rc = rc ? rc : bind_matrix(m, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, &L->ffn_down,
				   err);
#undef NAME
	if (rc)
		return rc;
	/* A bias set is all or nothing: a lone bias means a broken file. */
	if ((L->bq.data != NULL) != (L->bk.data != NULL) || (L->bq.data != NULL) != (L->bv.data != NULL))
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "blk.%d: attn_q/attn_k/attn_v biases must all be present or all absent",
				       il);
	return 0;
}

static int bind_weights(infer_model *m, infer_error *err)
{
	infer_hparams *hp = &m->hp;
	const gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
	int rc;

	/* The vocabulary size is whatever token_embd holds (no metadata key for it). */
	if (!te)
		return infer_error_set(err, INFER_E_MODEL, -1,
				       "tensor 'token_embd.weight' missing (expected dims [%d, n_vocab])",
				       hp->n_embd);
	if (te->n_dims != 2 || te->ne[1] <= 0 || te->ne[1] > INT32_MAX)
		return infer_error_set(err, INFER_E_MODEL, (int64_t)te->info_offset,
				       "tensor 'token_embd.weight': expected dims [%d, n_vocab], found %u dims",
				       hp->n_embd, te->n_dims);
	hp->n_vocab = (int32_t)te->ne[1];
	rc = bind_matrix(m, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->tok_embd, err);
	if (rc)
		return rc;
	/* qwen2 always has Q/K/V biases; a llama file may (some fine-tunes), so
	 * the first layer decides and every layer must agree. */
	hp->has_qkv_bias = !strcmp(hp->arch, "qwen2") ||
			   gguf_find_tensor(m->gguf, "blk.0.attn_q.bias") != NULL;
	m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
	if (!m->layers)
		return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory for %d layers",
				       hp->n_layer);
	for (int il = 0; il < hp->n_layer; il++) {
		rc = bind_layer(m, il, err);
		if (rc)
			return rc;
	}
	rc = bind_vector(m, "output_norm.weight", hp->n_embd, 0, &m->output_norm, err);
	if (rc)
		return rc;
	hp->tied_output = gguf_find_tensor(m->gguf, "output.weight") == NULL;
	if (hp->tied_output) {
		m->output = m->tok_embd;
		return 0;
	}
	return bind_matrix(m, "output.weight", hp->n_embd, hp->n_vocab, &m->output, err);
}

/* ---- public -------------------------------------------------------------- */

infer_model *infer_model_load(const char *path, infer_error *err)
{
	infer_model *m = calloc(1, sizeof(*m));
	infer_error terr;

	if (!m) {
		infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		return NULL;
	}
	m->gguf = gguf_open(path, err);
	if (!m->gguf)
		goto fail;
	if (read_arch(m->gguf, &m->hp, err) || read_hparams(m->gguf, &m->hp, err) ||
	    bind_weights(m, err))
		goto fail;
	infer_error_clear(&terr);
	m->tok = infer_tokenizer_load(m->gguf, &terr);
	if (!m->tok)
		snprintf(m->tok_err, sizeof(m->tok_err), "%s", terr.msg);
	return m;
fail:
	infer_model_free(m);
	return NULL;
}

void infer_model_free(infer_model *m)
{
	if (!m)
		return;
	if (m->layers) {
		for (int il = 0; il < m->hp.n_layer; il++) {
			infer_layer *L = &m->layers[il];

			free(L->attn_norm.data);
			free(L->bq.data);
			free(L->bk.data);
			free(L->bv.data);
			free(L->ffn_norm.data);
		}
		free(m->layers);
	}
	free(m->output_norm.data);
	if (m->tok)
		infer_tokenizer_free(m->tok);
	if (m->gguf)
		gguf_close(m->gguf);
	free(m);
}

const infer_hparams *infer_model_hparams(const infer_model *m)
{
	return &m->hp;
}

const gguf_file *infer_model_gguf(const infer_model *m)
{
	return m->gguf;
}

uint64_t infer_model_weight_bytes(const infer_model *m)
{
	return m->weight_bytes;
}

const struct infer_tokenizer *infer_model_tokenizer(const infer_model *m)
{
	return m->tok;
}
