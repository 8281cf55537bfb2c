/* details.transcript of the haiku check as plain text (haiku_report.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haiku_report.h"

struct text {
	char *p;
	size_t n, cap;
	int failed;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0 || t->failed)
		return;
	if (t->n + (size_t)len + 1 > t->cap) {
		size_t cap = (t->n + (size_t)len + 1) * 2;
		char *p = realloc(t->p, cap);

		if (!p) {
			t->failed = 1;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
	va_end(ap);
	t->n += (size_t)len;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "?";
}

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* A haiku on one line: its line breaks as " / ". */
static void add_haiku(struct text *t, const char *s)
{
	add(t, "\"");
	for (; *s; s++) {
		if (*s == '\n')
			add(t, " / ");
		else
			add(t, "%c", *s);
	}
	add(t, "\"");
}

static void add_run(struct text *t, size_t i, const json_t *r)
{
	const json_t *ids = json_object_get(r, "token_ids"), *lps = json_object_get(r, "logprobs");
	const json_t *rep = json_object_get(r, "replay_logprobs"), *tm = json_object_get(r, "timings");
	size_t k;

	add(t, "run %zu %s seed %s: ", i, str(r, "kind"), str(r, "seed"));
	add_haiku(t, str(r, "text"));
	add(t, "\n  word %s, %lld tokens, %s, replay max |err| %.3g, %.0f tok/s, TTFT %.1f ms, %lld kernel launches\n",
	    json_is_true(json_object_get(r, "word_found")) ? "yes" : "no",
	    (long long)json_integer_value(json_object_get(r, "n_tokens")), str(r, "finish_reason"),
	    num(r, "replay_max_abs"), num(tm, "tokens_per_s"), num(tm, "ttft_ms"),
	    (long long)json_integer_value(json_object_get(r, "kernel_launches")));
	add(t, "  ids:");
	for (k = 0; k < json_array_size(ids); k++)
		add(t, " %lld", (long long)json_integer_value(json_array_get(ids, k)));
	add(t, "\n  logprobs:");
	for (k = 0; k < json_array_size(lps); k++)
		add(t, " %.4f", json_number_value(json_array_get(lps, k)));
	add(t, "\n  cpu replay:");
	for (k = 0; k < json_array_size(rep); k++)
		add(t, " %.4f", json_number_value(json_array_get(rep, k)));
	add(t, "\n");
}

char *haiku_transcript_text(const json_t *tr)
{
	const json_t *rp = json_object_get(tr, "replay"), *dm = json_object_get(tr, "device_memory");
	const json_t *runs = json_object_get(tr, "runs"), *r;
	struct text t = { 0 };
	size_t i;

	if (!json_is_object(tr))
		return NULL;
	add(&t, "minute %lld (%s) -> word '%s' (line %lld of the list)\n",
	    (long long)json_integer_value(json_object_get(tr, "minute")), str(tr, "minute_source"),
	    str(tr, "word"), (long long)json_integer_value(json_object_get(tr, "word_line")));
	add(&t, "prompt: %s (%s), nonce %s\n", str(tr, "prompt"),
	    json_is_true(json_object_get(tr, "chat")) ? "chat" : "raw", str(tr, "nonce"));
	add(&t, "replay on cpu: max |err| %.3g, mean |err| %.3g over %lld tokens (worst: run %lld token %lld, worker %.5f vs cpu %.5f); argmax mismatches %lld, top-k violations %lld\n",
	    num(rp, "max_abs"), num(rp, "mean_abs"), (long long)json_integer_value(json_object_get(rp, "n_tokens")),
	    (long long)json_integer_value(json_object_get(rp, "worst_run")),
	    (long long)json_integer_value(json_object_get(rp, "worst_index")), num(rp, "worst_worker"),
	    num(rp, "worst_cpu"), (long long)json_integer_value(json_object_get(rp, "argmax_mismatches")),
	    (long long)json_integer_value(json_object_get(rp, "topk_violations")));
	add(&t, "mean %.0f tok/s, TTFT %.1f ms; weights on the device %lld B (model tensors %lld B)\n",
	    num(tr, "tokens_per_s"), num(tr, "ttft_ms"),
	    (long long)json_integer_value(json_object_get(dm, "weights_bytes_device")),
	    (long long)json_integer_value(json_object_get(dm, "model_weight_bytes")));
	add(&t, "word in %lld sampled haiku, %lld distinct\n",
	    (long long)json_integer_value(json_object_get(tr, "word_runs")),
	    (long long)json_integer_value(json_object_get(tr, "distinct")));
	json_array_foreach(runs, i, r)
		add_run(&t, i, r);
	if (t.failed || !t.p) {
		free(t.p);
		return NULL;
	}
	return t.p;
}
