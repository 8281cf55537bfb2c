/* Generation: prompt text -> tokens -> prefill -> sample/decode loop, with
 * text streamed to a callback as soon as it is final.
 *
 * "Final" matters for stop strings: text that could still turn out to be
 * the start of a stop string is held back until the next token decides, so
 * a client never receives bytes that are later cut off. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward.h"
#include "infer/generate.h"
#include "model_internal.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A growable byte buffer, kept NUL-terminated. */
struct buf {
	char *data;
	size_t len, cap;
};

static int buf_append(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* The state of one generation, so the loop below stays short. */
struct gen {
	infer_session *s;
	const infer_tokenizer *tok;
	const infer_gen_params *p;
	infer_gen_result *res;
	size_t cap;           /* of res->tokens / logprobs arrays */
	struct buf text;      /* everything decoded so far */
	size_t released;      /* bytes of text already given to the callback */
	infer_detok detok;
};

static int push_token(struct gen *g, int32_t id, float lp, float lps)
{
	infer_gen_result *r = g->res;

	if (r->n_tokens == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		int32_t *t = realloc(r->tokens, cap * sizeof(*t));
		float *a, *b;

		if (!t)
			return -1;
		r->tokens = t;
		a = realloc(r->logprobs, cap * sizeof(*a));
		if (!a)
			return -1;
		r->logprobs = a;
		b = realloc(r->logprobs_sampled, cap * sizeof(*b));
		if (!b)
			return -1;
		r->logprobs_sampled = b;
		g->cap = cap;
	}
	r->tokens[r->n_tokens] = id;
	r->logprobs[r->n_tokens] = lp;
	r->logprobs_sampled[r->n_tokens] = lps;
	r->n_tokens++;
	return 0;
}

/* Where the first stop string starts in text (searching from `from`), or -1. */
static long find_stop(const struct gen *g, size_t from)
{
	long best = -1;

	for (int i = 0; i < g->p->n_stop; i++) {
		const char *st = g->p->stop[i];
		const char *hit;

		if (!st || !*st)
			continue;
		hit = strstr(g->text.data + from, st);
		if (hit && (best < 0 || hit - g->text.data < best))
			best = hit - g->text.data;
	}
	return best;
}

/* Bytes at the end of text that are a proper prefix of some stop string:
 * they must wait for the next token. */
static size_t held_back(const struct gen *g)
{
	size_t hold = 0;

	for (int i = 0; i < g->p->n_stop; i++) {
		const char *st = g->p->stop[i];
		size_t sl = st ? strlen(st) : 0;

		for (size_t k = sl ? sl - 1 : 0; k > hold; k--)
			if (k <= g->text.len && !memcmp(g->text.data + g->text.len - k, st, k)) {
				hold = k;
				break;
			}
	}
	return hold;
}

/* Appends a sampled token's bytes; returns 1 when a stop string completed,
 * and points out, out_len at what may be released now. */
static int take_text(struct gen *g, int32_t id, const char **out, size_t *out_len)
{
	char piece[1024];
	int n = infer_detok_push(g->tok, &g->detok, id, piece, sizeof(piece));
	size_t search_from, upto;
	long stop;
	int hit = 0;

	if (n < 0)
		return -1;
	search_from = g->released;
	if (buf_append(&g->text, piece, (size_t)n))
		return -1;
	stop = g->p->n_stop > 0 ? find_stop(g, search_from) : -1;
	if (stop >= 0) {
		g->text.len = (size_t)stop; /* the stop string itself is not output */
		g->text.data[g->text.len] = '\0';
		upto = g->text.len;
		hit = 1;
	} else {
		upto = g->text.len - held_back(g);
	}
	*out = g->text.data + g->released;
	*out_len = upto > g->released ? upto - g->released : 0;
	g->released += *out_len;
	return hit;
}

static int tokenize_prompt(struct gen *g, infer_error *err)
{
	const infer_gen_params *p = g->p;
	char *chat = NULL;
	const char *text = p->prompt;
	size_t n_ids = 0;
	int rc;

	if (p->chat) {
		chat = infer_chat_format(g->tok, p->prompt);
		if (!chat)
			return infer_error_set(err, INFER_E_NOMEM, -1, "chat format failed");
		text = chat;
	}
	/* The chat template's control tokens are parsed; a raw prompt's are not. */
	rc = infer_tokenize(g->tok, text, strlen(text), p->chat, &g->res->prompt_tokens, &n_ids,
			    err);
	free(chat);
	if (rc)
		return rc;
	g->res->n_prompt = n_ids;
	if (n_ids == 0)
		return infer_error_set(err, INFER_E_ARG, -1, "prompt is empty after tokenization");
	return 0;
}

static int finish_text(struct gen *g, infer_gen_cb cb, void *user)
{
	char tail[16];
	int n = infer_detok_flush(&g->detok, tail, sizeof(tail));

	if (n > 0 && buf_append(&g->text, tail, (size_t)n))
		return -1;
	/* Held-back bytes that never became a stop string are real output. */
	if (cb && g->text.len > g->released) {
		infer_gen_token t = { .id = -1, .text = g->text.data + g->released,
				      .text_len = g->text.len - g->released };
		cb(user, &t);
	}
	g->released = g->text.len;
	g->res->text = g->text.data ? g->text.data : strdup("");
	g->text.data = NULL;
	return g->res->text ? 0 : -1;
}

/* The next token: on the backend's device when it samples there (the last
 * eval left the logits on it), else on the host from `logits`. */
static int sample_next(struct gen *g, infer_sampler *smp, const float *logits, int dev,
		       int32_t *id, infer_gen_token *t, infer_error *err)
{
	infer_gen_result *r = g->res;
	int32_t n_vocab = infer_session_model(g->s)->hp.n_vocab;

	if (dev)
		return infer_session_sample(g->s, smp, r->tokens, (int32_t)r->n_tokens, id,
					    &t->logprob, &t->logprob_sampled, err);
	*id = infer_sampler_sample(smp, logits, n_vocab, r->tokens, (int32_t)r->n_tokens,
				   &t->logprob, &t->logprob_sampled);
	if (*id < 0)
		return infer_error_set(err, INFER_E_NOMEM, -1, "generate: sampling failed");
	return 0;
}

int infer_generate(infer_session *s, const infer_gen_params *p, infer_gen_cb cb, void *user,
		   infer_gen_result *res, infer_error *err)
{
	const infer_model *m = infer_session_model(s);
	int32_t n_vocab = m->hp.n_vocab;
	struct gen g = { .s = s, .tok = infer_model_tokenizer(m), .p = p, .res = res };
	infer_sampler *smp = NULL;
	float *logits = NULL;
	double t0 = now_ms(), t1;
	uint64_t launches0 = infer_session_kernel_launches(s);
	/* INFER_SAMPLE_ON_HOST=1: copy the logits back and sample on the host
	 * even where the backend samples on its device (A/B measurements). */
	const char *host_env = getenv("INFER_SAMPLE_ON_HOST");
	int dev = infer_session_device_sampling(s) && !(host_env && *host_env == '1');
	int keep = dev ? INFER_EVAL_KEEP_LOGITS : 0;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	res->finish_reason = "length";
	if (!g.tok)
		return infer_error_set(err, INFER_E_TOKENIZER, -1, "model has no tokenizer: %s",
				       m->tok_err);
	if (!p->prompt || p->max_tokens < 0)
		return infer_error_set(err, INFER_E_ARG, -1, "generate: need a prompt and max_tokens >= 0");
	logits = malloc((size_t)n_vocab * sizeof(float));
	smp = infer_sampler_new(&p->sampling);
	if (!logits || !smp) {
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "generate: out of memory");
		goto out;
	}
	if ((rc = tokenize_prompt(&g, err)))
		goto out;
	infer_session_reset(s);
	if ((rc = infer_session_eval(s, res->prompt_tokens, (int32_t)res->n_prompt,
				     dev ? NULL : logits, keep, err)))
		goto out;
	t1 = now_ms();
	res->prompt_ms = t1 - t0;
	for (int32_t i = 0; i < p->max_tokens; i++) {
		infer_gen_token t = { 0 };
		int32_t id;
		int stop;

		if ((rc = sample_next(&g, smp, logits, dev, &id, &t, err)))
			goto out;
		if (push_token(&g, id, t.logprob, t.logprob_sampled)) {
			rc = infer_error_set(err, INFER_E_NOMEM, -1, "generate: sampling failed");
			goto out;
		}
		if (i == 0)
			res->ttft_ms = now_ms() - t0;
		if (infer_tokenizer_is_eog(g.tok, id)) {
			res->finish_reason = "stop";
			break;
		}
		t.id = id;
		stop = take_text(&g, id, &t.text, &t.text_len);
		if (stop < 0) {
			rc = infer_error_set(err, INFER_E_NOMEM, -1, "generate: out of memory");
			goto out;
		}
		if (cb && cb(user, &t)) {
			res->finish_reason = "cancelled";
			break;
		}
		if (stop) {
			res->finish_reason = "stop";
			break;
		}
		if (i + 1 == p->max_tokens)
			break; /* no logits needed for a token nobody samples */
		if (infer_session_pos(s) >= infer_session_n_ctx_internal(s))
			break; /* context full: "length", like max_tokens */
		if ((rc = infer_session_eval(s, &id, 1, dev ? NULL : logits, keep, err)))
			goto out;
	}
	res->gen_ms = now_ms() - t1;
	if (finish_text(&g, cb, user))
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "generate: out of memory");
out:
	res->kernel_launches = infer_session_kernel_launches(s) - launches0;
	free(g.text.data);
	free(logits);
	infer_sampler_free(smp);
	if (rc)
		infer_gen_result_free(res);
	return rc;
}

void infer_gen_result_free(infer_gen_result *res)
{
	if (!res)
		return;
	free(res->prompt_tokens);
	free(res->tokens);
	free(res->logprobs);
	free(res->logprobs_sampled);
	free(res->text);
	memset(res, 0, sizeof(*res));
}
