/* The anti-cheat haiku check: a real model must run on the real runtime.
 *
 * The worker (`infer serve`, a child process on a free loopback port) is asked
 * over HTTP/SSE for a haiku about a word picked from the wall-clock minute,
 * once greedily and N times sampled with seeds derived from a fresh nonce.
 * Then, in this process, the cpu backend replays every returned sequence
 * teacher-forced and recomputes each token's raw log-probability. Pass needs
 * all five conditions:
 *   word     the word is in the greedy haiku and in >= min_word_runs samples
 *   distinct the N samples give >= N-1 different haiku
 *   replay   every streamed logprob matches the cpu within the tolerance, the
 *            greedy tokens are the cpu argmax, sampled tokens lie in the top-k,
 *            the worker's prompt tokens are ours
 *   device   on cuda: weights resident >= model tensor bytes, kernels launched
 *   detok    the streamed text is the detokenization of the streamed ids
 * A canned answer fails replay, tampered numbers fail replay, an ignored seed
 * fails distinct; harness/tests/test_haiku.c proves each against fake workers.
 *
 * Params (specs/haiku.yaml): model, words, prompt ("{word}" is replaced), chat,
 * runs, min_word_runs, max_tokens, temperature, top_k, top_p, plural, threads,
 * startup_timeout_s, request_timeout_s, infer_bin, worker_cmd (argv template
 * with {infer} {model} {backend}). Tolerance: max_abs (of the log-probabilities).
 * Env INFER_HAIKU_MINUTE (0..59) replaces the clock, for tests only; the
 * transcript says which one was used. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "haiku_worker.h"
#include "infer/backend.h"
#include "infer/model.h"
#include "infer/sampler.h"
#include "infer/session.h"
#include "infer/tokenizer.h"

#define DEFAULT_PROMPT "Write a haiku about {word}"
#define DEFAULT_TOL 1e-2

struct haiku_cfg {
	const char *model, *words, *prompt_tmpl, *infer_bin;
	int chat, plural;
	int runs, min_word_runs, max_tokens, top_k, threads;
	double temperature, top_p, startup_timeout_s, request_timeout_s, tol;
	const json_t *worker_cmd;
};

struct run {
	int greedy;
	uint64_t seed;
	struct haiku_stream s;
	float *replay;       /* cpu logprob of every returned token */
	double max_err;
	int word;            /* the word is in the text */
};

/* What failed, first reason per condition. */
struct verdict {
	char word[256], distinct[256], replay[256], device[256], detok[256];
};

struct replay_stats {
	double max_abs, sum_abs;
	long n;
	int worst_run, worst_index;
	double worst_got, worst_want;
	int argmax_mismatch, topk_violations;
};

/* ---- parameters ----------------------------------------------------------- */

static int param_bool(const struct check *c, const char *key, int dflt)
{
	const json_t *v = c->params ? json_object_get(c->params, key) : NULL;

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static void cfg_read(const struct check *c, struct haiku_cfg *g)
{
	const json_t *tol = c->tolerance ? json_object_get(c->tolerance, "max_abs") : NULL;

	g->model = check_param_str(c, "model", NULL);
	g->words = check_param_str(c, "words", NULL);
	g->prompt_tmpl = check_param_str(c, "prompt", DEFAULT_PROMPT);
	g->infer_bin = check_param_str(c, "infer_bin", NULL);
	g->chat = param_bool(c, "chat", 1);
	g->plural = param_bool(c, "plural", 0);
	g->runs = (int)check_param_int(c, "runs", 5);
	g->min_word_runs = (int)check_param_int(c, "min_word_runs", 3);
	g->max_tokens = (int)check_param_int(c, "max_tokens", 48);
	g->top_k = (int)check_param_int(c, "top_k", 40);
	g->threads = (int)check_param_int(c, "threads", 0);
	g->temperature = check_param_num(c, "temperature", 0.8);
	g->top_p = check_param_num(c, "top_p", 0.95);
	g->startup_timeout_s = check_param_num(c, "startup_timeout_s", 60.0);
	g->request_timeout_s = check_param_num(c, "request_timeout_s", 120.0);
	g->tol = json_is_number(tol) ? json_number_value(tol) : DEFAULT_TOL;
	g->worker_cmd = c->params ? json_object_get(c->params, "worker_cmd") : NULL;
}

static int want_num(const json_t *p, const char *key, int integer, double lo, double hi,
		    infer_error *err)
{
	const json_t *v = json_object_get(p, key);

	if (!v)
		return 0;
	if (integer ? !json_is_integer(v) : !json_is_number(v))
		return infer_error_set(err, INFER_E_FORMAT, -1, "params.%s must be %s", key,
				       integer ? "an integer" : "a number");
	if (json_number_value(v) < lo || json_number_value(v) > hi)
		return infer_error_set(err, INFER_E_FORMAT, -1, "params.%s = %g is out of range [%g, %g]",
				       key, json_number_value(v), lo, hi);
	return 0;
}

static const char *const known_params[] = {
	"model", "words", "prompt", "chat", "plural", "runs", "min_word_runs", "max_tokens",
	"temperature", "top_k", "top_p", "threads", "startup_timeout_s", "request_timeout_s",
	"infer_bin", "worker_cmd", NULL,
};

static int validate_keys(const json_t *params, const json_t *tolerance, infer_error *err)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)params, k, v) {
		const char *const *a = known_params;

		while (*a && strcmp(*a, k))
			a++;
		if (!*a && k[0] != '_' && strcmp(k, "entry"))
			return infer_error_set(err, INFER_E_FORMAT, -1, "unknown haiku param '%s'", k);
	}
	json_object_foreach((json_t *)tolerance, k, v) {
		if (strcmp(k, "max_abs"))
			return infer_error_set(err, INFER_E_FORMAT, -1,
					       "unknown haiku tolerance '%s' (max_abs: log-probability error)", k);
		if (!json_is_number(v) || json_number_value(v) <= 0)
			return infer_error_set(err, INFER_E_FORMAT, -1,
					       "tolerance.max_abs must be a number > 0");
	}
	return 0;
}

static int validate(const json_t *params, const json_t *tolerance, infer_error *err)
{
	const json_t *v, *runs;
	size_t i;

	if (!json_is_object(params))
		return infer_error_set(err, INFER_E_FORMAT, -1, "haiku needs params");
	if (validate_keys(params, tolerance, err))
		return err->code;
	if (!json_is_string(json_object_get(params, "model")) ||
	    !json_is_string(json_object_get(params, "words")))
		return infer_error_set(err, INFER_E_FORMAT, -1,
				       "haiku needs inputs 'model' (GGUF) and 'words' (word list)");
	v = json_object_get(params, "prompt");
	if (v && (!json_is_string(v) || !strstr(json_string_value(v), "{word}")))
		return infer_error_set(err, INFER_E_FORMAT, -1, "params.prompt must contain {word}");
	runs = json_object_get(params, "runs");
	if (want_num(params, "runs", 1, 2, 64, err) ||
	    want_num(params, "min_word_runs", 1, 0, runs ? json_number_value(runs) : 5, err) ||
	    want_num(params, "max_tokens", 1, 1, 4096, err) ||
	    want_num(params, "temperature", 0, 0.01, 10, err) ||
	    want_num(params, "top_k", 1, 0, INT_MAX, err) || want_num(params, "top_p", 0, 0.01, 1, err) ||
	    want_num(params, "threads", 1, 0, 1024, err) ||
	    want_num(params, "startup_timeout_s", 0, 0.1, 3600, err) ||
	    want_num(params, "request_timeout_s", 0, 0.1, 3600, err))
		return err->code;
	v = json_object_get(params, "worker_cmd");
	if (v) {
		if (!json_is_array(v) || json_array_size(v) == 0)
			return infer_error_set(err, INFER_E_FORMAT, -1,
					       "params.worker_cmd must be a non-empty list of strings");
		for (i = 0; i < json_array_size(v); i++)
			if (!json_is_string(json_array_get(v, i)))
				return infer_error_set(err, INFER_E_FORMAT, -1,
						       "params.worker_cmd[%zu] must be a string", i);
	}
	return 0;
}

/* ---- word, prompt, seeds -------------------------------------------------- */

/* The minute of the hour, or INFER_HAIKU_MINUTE (tests only). */
static int pick_minute(const char **source)
{
	const char *env = getenv("INFER_HAIKU_MINUTE");
	time_t t = time(NULL);
	struct tm tm;

	if (env && *env) {
		char *end;
		long m = strtol(env, &end, 10);

		if (!*end && m >= 0 && m <= 59) {
			*source = "env INFER_HAIKU_MINUTE (test override)";
			return (int)m;
		}
	}
	*source = "wall clock";
	localtime_r(&t, &tm);
	return tm.tm_min;
}

/* Line `minute` of the list (0-based; modulo the length for lists shorter
 * than 60). Returns a malloc'd word or NULL with err. */
static char *pick_word(const char *path, int minute, int *line, infer_error *err)
{
	FILE *f = fopen(path, "r");
	char buf[256], *words[60];
	int n = 0;
	char *w;

	if (!f) {
		infer_error_set(err, INFER_E_IO, -1, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while (n < 60 && fgets(buf, sizeof(buf), f)) {
		size_t len = strlen(buf);

		while (len && isspace((unsigned char)buf[len - 1]))
			buf[--len] = '\0';
		if (len)
			words[n++] = strdup(buf);
	}
	fclose(f);
	if (!n) {
		infer_error_set(err, INFER_E_FORMAT, -1, "%s: no words", path);
		return NULL;
	}
	*line = minute % n;
	w = words[*line];
	for (int i = 0; i < n; i++)
		if (i != *line)
			free(words[i]);
	return w;
}

static char *fill_prompt(const char *tmpl, const char *word)
{
	size_t cap = strlen(tmpl) + 16 * strlen(word) + 1, n = 0;
	char *out = malloc(cap);
	const char *p = tmpl;

	while (out && *p) {
		if (!strncmp(p, "{word}", 6) && n + strlen(word) < cap) {
			memcpy(out + n, word, strlen(word));
			n += strlen(word);
			p += 6;
		} else if (n + 1 < cap) {
			out[n++] = *p++;
		} else {
			break;
		}
	}
	if (out)
		out[n] = '\0';
	return out;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t fresh_nonce(void)
{
	uint64_t n = 0;
	struct timespec ts;

	if (getrandom(&n, sizeof(n), 0) == (ssize_t)sizeof(n))
		return n;
	clock_gettime(CLOCK_REALTIME, &ts);
	return splitmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid());
}

static int is_word_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80;
}

/* Case-insensitive whole word; with plural, also word+"s" / word+"es". */
static int has_word(const char *text, const char *word, int plural)
{
	size_t wl = strlen(word);

	for (const char *p = text; *p; p++) {
		size_t end = wl;

		if (p != text && is_word_char((unsigned char)p[-1]))
			continue;
		if (strncasecmp(p, word, wl))
			continue;
		if (is_word_char((unsigned char)p[end]) && plural) {
			if (tolower((unsigned char)p[end]) == 's')
				end++;
			else if (!strncasecmp(p + end, "es", 2))
				end += 2;
		}
		if (!is_word_char((unsigned char)p[end]))
			return 1;
	}
	return 0;
}

/* ---- talking to the worker ------------------------------------------------ */

static int executable(const char *p)
{
	return p && access(p, X_OK) == 0;
}

/* dir + "/" + rel into out when it fits and is executable. */
static int try_bin(char *out, size_t n, const char *dir, const char *rel)
{
	size_t dl = strlen(dir), rl = strlen(rel);

	if (dl + 1 + rl + 1 > n)
		return -1;
	memcpy(out, dir, dl);
	out[dl] = '/';
	memcpy(out + dl + 1, rel, rl + 1);
	return executable(out) ? 0 : -1;
}

/* The infer binary: params.infer_bin, INFER_BIN_DIR, or next to this program. */
static int find_infer(const struct haiku_cfg *g, char *out, size_t n)
{
	const char *dir = getenv("INFER_BIN_DIR");
	char self[PATH_MAX];
	ssize_t len;

	if (g->infer_bin) {
		snprintf(out, n, "%s", g->infer_bin);
		return executable(out) ? 0 : -1;
	}
	if (dir && (!try_bin(out, n, dir, "runtime/infer") || !try_bin(out, n, dir, "infer")))
		return 0;
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		char *slash;

		self[len] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		if (!try_bin(out, n, self, "../runtime/infer") || !try_bin(out, n, self, "infer"))
			return 0;
	}
	snprintf(out, n, "infer (set params.infer_bin or INFER_BIN_DIR)");
	return -1;
}

static char *subst_arg(const char *a, const char *infer, const char *model, const char *backend)
{
	if (!strcmp(a, "{infer}"))
		return strdup(infer);
	if (!strcmp(a, "{model}"))
		return strdup(model);
	if (!strcmp(a, "{backend}"))
		return strdup(backend);
	return strdup(a);
}

/* argv for the worker (NULL-terminated, malloc'd strings). */
static char **worker_argv(const struct haiku_cfg *g, const char *infer, const char *backend)
{
	static const char *const dflt[] = { "{infer}", "serve", "-m", "{model}", "--backend",
					    "{backend}", "--host", "127.0.0.1", "--port", "0" };
	size_t n = g->worker_cmd ? json_array_size(g->worker_cmd) : sizeof(dflt) / sizeof(dflt[0]);
	char **argv = calloc(n + 3, sizeof(*argv));
	char threads[16];
	size_t i;

	if (!argv)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *a = g->worker_cmd ? json_string_value(json_array_get(g->worker_cmd, i)) : dflt[i];

		argv[i] = subst_arg(a, infer, g->model, backend);
	}
	if (!g->worker_cmd && g->threads > 0) {
		snprintf(threads, sizeof(threads), "%d", g->threads);
		argv[n++] = strdup("--threads");
		argv[n++] = strdup(threads);
	}
	return argv;
}

static void argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

static char *request_body(const struct haiku_cfg *g, const char *prompt, const struct run *r)
{
	json_t *j = json_pack("{s:s, s:b, s:i, s:f, s:i, s:f, s:f, s:f, s:I, s:b}", "prompt", prompt,
			      "chat", g->chat, "max_tokens", g->max_tokens, "temperature",
			      r->greedy ? 0.0 : g->temperature, "top_k", r->greedy ? 0 : g->top_k,
			      "top_p", r->greedy ? 1.0 : g->top_p, "min_p", 0.0, "repeat_penalty", 1.0,
			      "seed", (json_int_t)r->seed, "stream", 1);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

static int ask_worker(const struct haiku_cfg *g, const struct haiku_worker *w, const char *prompt,
		      struct run *runs, int n_runs, infer_error *err)
{
	char url[192];

	snprintf(url, sizeof(url), "%s/v1/generate", w->url);
	for (int i = 0; i < n_runs; i++) {
		char *body = request_body(g, prompt, &runs[i]);
		int rc;

		if (!body)
			return infer_error_set(err, INFER_E_NOMEM, -1, "out of memory");
		rc = haiku_http_stream(url, body, g->request_timeout_s, &runs[i].s, err);
		free(body);
		if (rc) {
			char m[sizeof(err->msg)];

			snprintf(m, sizeof(m), "run %d (%s, seed %llu): %.400s", i,
				 runs[i].greedy ? "greedy" : "sampled", (unsigned long long)runs[i].seed,
				 err->msg);
			snprintf(err->msg, sizeof(err->msg), "%s", m);
			return rc;
		}
	}
	return 0;
}

/* ---- replay --------------------------------------------------------------- */

static void note(char *slot, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void note(char *slot, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (slot[0])
		return; /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(slot, n, fmt, ap);
	va_end(ap);
}

/* Up to n-1 bytes of text on one line (newlines as " / ") for messages. */
static const char *oneline(const char *text, char *buf, size_t n)
{
	size_t k = 0;

	for (const char *p = text ? text : ""; *p && k + 4 < n; p++) {
		if (*p == '\n') {
			memcpy(buf + k, " / ", 3);
			k += 3;
		} else {
			buf[k++] = *p;
		}
	}
	buf[k] = '\0';
	return buf;
}

static int32_t argmax(const float *row, int32_t n)
{
	int32_t best = 0;

	for (int32_t i = 1; i < n; i++)
		if (row[i] > row[best])
			best = i;
	return best;
}

/* Tokens whose logit beats id's by more than margin: a sampled token must
 * have fewer than top_k of them. */
static int32_t rank_of(const float *row, int32_t n, int32_t id, float margin)
{
	int32_t r = 0;

	for (int32_t i = 0; i < n; i++)
		if (row[i] > row[id] + margin)
			r++;
	return r;
}

/* The consistency of one run's final event with its token events. */
static void check_final(const struct haiku_cfg *g, const struct run *r, int idx,
			const int32_t *prompt, size_t n_prompt, struct verdict *v)
{
	const json_t *f = r->s.final, *ids = json_object_get(f, "token_ids");
	const json_t *pids = json_object_get(f, "prompt_token_ids");
	const char *fin = json_string_value(json_object_get(f, "finish_reason"));
	size_t i;

	if (!json_is_array(ids) || json_array_size(ids) != r->s.n)
		note(v->replay, sizeof(v->replay), "run %d: final token_ids do not list the %zu streamed tokens",
		     idx, r->s.n);
	for (i = 0; json_is_array(ids) && i < json_array_size(ids) && i < r->s.n; i++)
		if (json_integer_value(json_array_get(ids, i)) != r->s.ids[i])
			note(v->replay, sizeof(v->replay), "run %d: final token_ids[%zu] differs from the stream",
			     idx, i);
	if (json_is_array(pids) && json_array_size(pids) != n_prompt)
		note(v->replay, sizeof(v->replay), "run %d: worker's prompt has %zu tokens, ours %zu", idx,
		     json_array_size(pids), n_prompt);
	for (i = 0; json_is_array(pids) && i < json_array_size(pids) && i < n_prompt; i++)
		if (json_integer_value(json_array_get(pids, i)) != prompt[i])
			note(v->replay, sizeof(v->replay), "run %d: worker's prompt token %zu is %lld, ours %d",
			     idx, i, (long long)json_integer_value(json_array_get(pids, i)), prompt[i]);
	/* "length" may also mean a full context, so its count is not checked. */
	if (!fin || (strcmp(fin, "stop") && strcmp(fin, "length")))
		note(v->replay, sizeof(v->replay), "run %d: finish_reason '%s'", idx, fin ? fin : "(none)");
	else if (r->s.n > (size_t)g->max_tokens)
		note(v->replay, sizeof(v->replay), "run %d: %zu tokens for max_tokens %d", idx, r->s.n,
		     g->max_tokens);
}

static int replay_run(infer_session *s, const struct haiku_cfg *g, struct run *r, int idx,
		      const int32_t *prompt, size_t n_prompt, struct replay_stats *st,
		      struct verdict *v, infer_error *err)
{
	const infer_tokenizer *tok = infer_model_tokenizer(infer_session_model(s));
	int32_t V = infer_model_hparams(infer_session_model(s))->n_vocab;
	size_t n = n_prompt + r->s.n;
	int32_t *seq = malloc(n * sizeof(*seq));
	float *logits = malloc(n * (size_t)V * sizeof(*logits));
	const char *fin = json_string_value(json_object_get(r->s.final, "finish_reason"));
	int rc = 0;

	r->replay = calloc(r->s.n + 1, sizeof(*r->replay));
	if (!seq || !logits || !r->replay) {
		rc = infer_error_set(err, INFER_E_NOMEM, -1, "out of memory for %zu x %d logits", n, V);
		goto out;
	}
	memcpy(seq, prompt, n_prompt * sizeof(*seq));
	for (size_t i = 0; i < r->s.n; i++) {
		if (r->s.ids[i] < 0 || r->s.ids[i] >= V) {
			note(v->replay, sizeof(v->replay), "run %d token %zu: id %d outside the vocabulary",
			     idx, i, r->s.ids[i]);
			goto out;
		}
		seq[n_prompt + i] = r->s.ids[i];
	}
	infer_session_reset(s);
	rc = infer_session_eval(s, seq, (int32_t)n, logits, 1, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < r->s.n; i++) {
		const float *row = logits + (n_prompt + i - 1) * (size_t)V;
		int32_t id = r->s.ids[i];
		double want = infer_logprob(row, V, id), e = fabs(want - r->s.logprobs[i]);

		r->replay[i] = (float)want;
		st->sum_abs += isfinite(e) ? e : 0;
		st->n++;
		if (!(e <= r->max_err)) /* NaN counts as worst */
			r->max_err = isnan(e) ? INFINITY : e;
		if (!(e <= st->max_abs)) {
			st->max_abs = isnan(e) ? INFINITY : e;
			st->worst_run = idx;
			st->worst_index = (int)i;
			st->worst_got = r->s.logprobs[i];
			st->worst_want = want;
		}
		if (!(e <= g->tol))
			note(v->replay, sizeof(v->replay),
			     "run %d token %zu (id %d): logprob %.5f, cpu replay %.5f (|err| %.3g > %g)", idx,
			     i, id, r->s.logprobs[i], want, e, g->tol);
		if (r->greedy && argmax(row, V) != id) {
			st->argmax_mismatch++;
			note(v->replay, sizeof(v->replay), "greedy token %zu is %d, cpu argmax %d", i, id,
			     argmax(row, V));
		}
		if (!r->greedy && g->top_k > 0 && rank_of(row, V, id, (float)g->tol) >= g->top_k) {
			st->topk_violations++;
			note(v->replay, sizeof(v->replay), "run %d token %zu (id %d) is outside the cpu top-%d",
			     idx, i, id, g->top_k);
		}
	}
	/* A greedy run that stopped must stop where the cpu emits end-of-generation. */
	if (r->greedy && fin && !strcmp(fin, "stop") &&
	    (r->s.n == 0 || !infer_tokenizer_is_eog(tok, r->s.ids[r->s.n - 1]))) {
		int32_t next = argmax(logits + (n - 1) * (size_t)V, V);

		if (!infer_tokenizer_is_eog(tok, next))
			note(v->replay, sizeof(v->replay),
			     "greedy run stopped after %zu tokens but the cpu continues with %d", r->s.n, next);
	}
out:
	free(seq);
	free(logits);
	return rc;
}

/* Text == detokenization of the ids (end-of-generation tokens carry no text). */
static void check_detok(const infer_tokenizer *tok, const struct run *r, int idx, struct verdict *v)
{
	int32_t *ids = malloc((r->s.n + 1) * sizeof(*ids));
	const char *final_text = json_string_value(json_object_get(r->s.final, "text"));
	size_t n = 0;
	char *d;

	char a[80], b[80];

	if (!ids) {
		note(v->detok, sizeof(v->detok), "out of memory");
		return;
	}
	for (size_t i = 0; i < r->s.n; i++)
		if (!infer_tokenizer_is_eog(tok, r->s.ids[i]))
			ids[n++] = r->s.ids[i];
	d = infer_detokenize(tok, ids, n);
	if (!d)
		note(v->detok, sizeof(v->detok), "run %d: the ids do not detokenize", idx);
	else if (strcmp(d, r->s.text ? r->s.text : ""))
		note(v->detok, sizeof(v->detok), "run %d: streamed text \"%s\" != detokenized \"%s\"",
		     idx, oneline(r->s.text, a, sizeof(a)), oneline(d, b, sizeof(b)));
	else if (!final_text || strcmp(final_text, d))
		note(v->detok, sizeof(v->detok), "run %d: final text \"%s\" != detokenized \"%s\"",
		     idx, oneline(final_text ? final_text : "(none)", a, sizeof(a)),
		     oneline(d, b, sizeof(b)));
	free(d);
	free(ids);
}

/* ---- conditions ----------------------------------------------------------- */

static void judge_words(const struct haiku_cfg *g, struct run *runs, int n, const char *word,
			int *word_runs, struct verdict *v)
{
	char buf[100];

	*word_runs = 0;
	for (int i = 0; i < n; i++) {
		runs[i].word = has_word(runs[i].s.text ? runs[i].s.text : "", word, g->plural);
		if (!runs[i].greedy)
			*word_runs += runs[i].word;
	}
	if (!runs[0].word)
		note(v->word, sizeof(v->word), "'%s' is not in the greedy haiku \"%s\"", word,
		     oneline(runs[0].s.text, buf, sizeof(buf)));
	else if (*word_runs < g->min_word_runs)
		note(v->word, sizeof(v->word), "'%s' in %d of %d sampled haiku, need %d", word, *word_runs,
		     n - 1, g->min_word_runs);
}

static int judge_distinct(struct run *runs, int n, struct verdict *v)
{
	int distinct = 0;

	for (int i = 1; i < n; i++) {
		int seen = 0;

		for (int k = 1; k < i && !seen; k++)
			seen = !strcmp(runs[i].s.text ? runs[i].s.text : "", runs[k].s.text ? runs[k].s.text : "");
		distinct += !seen;
	}
	if (distinct < n - 2)
		note(v->distinct, sizeof(v->distinct), "%d distinct haiku in %d sampled runs, need %d",
		     distinct, n - 1, n - 2);
	return distinct;
}

static void judge_device(const char *backend, const json_t *health, uint64_t model_bytes,
			 const struct run *runs, int n, struct verdict *v)
{
	json_int_t dev = json_integer_value(json_object_get(health, "weights_bytes_device"));

	if (strcmp(backend, "cuda"))
		return;
	if (dev < (json_int_t)model_bytes)
		note(v->device, sizeof(v->device), "weights on the device %lld B < model tensors %llu B",
		     (long long)dev, (unsigned long long)model_bytes);
	for (int i = 0; i < n; i++)
		if (json_integer_value(json_object_get(runs[i].s.final, "kernel_launches")) <= 0)
			note(v->device, sizeof(v->device), "run %d: no kernel launches reported", i);
}

/* ---- report --------------------------------------------------------------- */

static json_t *floats(const float *x, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; x && i < n; i++)
		json_array_append_new(a, json_real(x[i]));
	return a;
}

static json_t *ints(const int32_t *x, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(x[i]));
	return a;
}

static json_t *run_json(const struct run *r)
{
	const json_t *f = r->s.final, *t = json_object_get(f, "timings");
	char seed[24];

	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)r->seed);
	return json_pack("{s:s, s:s, s:s, s:b, s:s?, s:I, s:o, s:o, s:o, s:f, s:O?, s:f, s:I}", "kind",
			 r->greedy ? "greedy" : "sampled", "seed", seed, "text",
			 r->s.text ? r->s.text : "", "word_found", r->word, "finish_reason",
			 json_string_value(json_object_get(f, "finish_reason")), "n_tokens",
			 (json_int_t)r->s.n, "token_ids", ints(r->s.ids, r->s.n), "logprobs",
			 floats(r->s.logprobs, r->s.n), "replay_logprobs", floats(r->replay, r->s.n),
			 "replay_max_abs", r->max_err, "timings", t, "ttft_ms_client", r->s.ttft_ms,
			 "kernel_launches", json_integer_value(json_object_get(f, "kernel_launches")));
}

static double mean_of(const struct run *runs, int n, const char *key)
{
	double sum = 0;
	int k = 0;

	for (int i = 0; i < n; i++) {
		const json_t *x = json_object_get(json_object_get(runs[i].s.final, "timings"), key);

		if (json_is_number(x)) {
			sum += json_number_value(x);
			k++;
		}
	}
	return k ? sum / k : 0.0;
}

static json_t *conditions_json(const struct verdict *v, const char *backend)
{
	return json_pack("{s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}}",
			 "word", "ok", !v->word[0], "why", v->word, "distinct", "ok", !v->distinct[0],
			 "why", v->distinct, "replay", "ok", !v->replay[0], "why", v->replay, "device",
			 "ok", !v->device[0], "why",
			 strcmp(backend, "cuda") ? "not applicable on cpu" : v->device, "detok", "ok",
			 !v->detok[0], "why", v->detok);
}

/* ---- the check ------------------------------------------------------------ */

struct ctx {
	struct haiku_cfg g;
	const char *backend;
	int minute, line;
	const char *minute_source;
	char *word, *prompt;
	uint64_t nonce;
	infer_model *model;
	int32_t *prompt_ids;
	size_t n_prompt;
	json_t *health;
	struct run *runs;
	int n_runs;
	struct replay_stats st;
	struct verdict v;
	int word_runs, distinct;
};

static int our_prompt_tokens(struct ctx *x, infer_error *err)
{
	const infer_tokenizer *tok = infer_model_tokenizer(x->model);
	char *text = x->g.chat ? infer_chat_format(tok, x->prompt) : strdup(x->prompt);
	int rc;

	if (!text)
		return infer_error_set(err, INFER_E_NOMEM, -1, "cannot format the prompt");
	rc = infer_tokenize(tok, text, strlen(text), x->g.chat, &x->prompt_ids, &x->n_prompt, err);
	free(text);
	return rc;
}

static void ctx_free(struct ctx *x)
{
	for (int i = 0; x->runs && i < x->n_runs; i++) {
		haiku_stream_free(&x->runs[i].s);
		free(x->runs[i].replay);
	}
	free(x->runs);
	free(x->word);
	free(x->prompt);
	free(x->prompt_ids);
	json_decref(x->health);
	if (x->model)
		infer_model_free(x->model);
}

static json_t *transcript(const struct ctx *x)
{
	json_t *runs = json_array();
	char nonce[24];

	for (int i = 0; x->runs && i < x->n_runs; i++)
		if (x->runs[i].s.final)
			json_array_append_new(runs, run_json(&x->runs[i]));
	snprintf(nonce, sizeof(nonce), "%016llx", (unsigned long long)x->nonce);
	return json_pack("{s:i, s:s, s:i, s:s?, s:s?, s:s, s:b, s:o, s:o, s:{s:f, s:f, s:I, s:i, s:i, s:f, s:f, s:i, s:i}, "
			 "s:f, s:f, s:{s:O?, s:I}, s:i, s:i}",
			 "minute", x->minute, "minute_source", x->minute_source, "word_line", x->line,
			 "word", x->word, "prompt", x->prompt, "nonce", nonce, "chat", x->g.chat,
			 "prompt_token_ids", ints(x->prompt_ids, x->n_prompt), "runs", runs, "replay",
			 "max_abs", x->st.max_abs, "mean_abs", x->st.n ? x->st.sum_abs / x->st.n : 0.0,
			 "n_tokens", (json_int_t)x->st.n, "worst_run", x->st.worst_run, "worst_index",
			 x->st.worst_index, "worst_worker", x->st.worst_got, "worst_cpu", x->st.worst_want,
			 "argmax_mismatches", x->st.argmax_mismatch, "topk_violations",
			 x->st.topk_violations, "tokens_per_s", mean_of(x->runs, x->n_runs, "tokens_per_s"),
			 "ttft_ms", mean_of(x->runs, x->n_runs, "ttft_ms"), "device_memory",
			 "weights_bytes_device", json_object_get(x->health, "weights_bytes_device"),
			 "model_weight_bytes",
			 (json_int_t)(x->model ? infer_model_weight_bytes(x->model) : 0), "word_runs",
			 x->word_runs, "distinct", x->distinct);
}

static void fill_details(struct ctx *x, struct check_result *r)
{
	json_t *d = json_object();

	json_object_set_new(d, "transcript", transcript(x));
	json_object_set_new(d, "conditions", conditions_json(&x->v, x->backend));
	json_object_set_new(d, "metrics",
			    json_pack("{s:f, s:i, s:i, s:f, s:f}", "replay_max_abs", x->st.max_abs,
				      "word_runs", x->word_runs, "distinct", x->distinct, "tokens_per_s",
				      mean_of(x->runs, x->n_runs, "tokens_per_s"), "ttft_ms",
				      mean_of(x->runs, x->n_runs, "ttft_ms")));
	json_object_set_new(d, "tolerance", json_pack("{s:f}", "max_abs", x->g.tol));
	json_decref(r->details);
	r->details = d;
}

/* Model, word, prompt, seeds: what the check needs before the worker starts. */
static int prepare(struct ctx *x, struct check_result *r)
{
	infer_error err = { 0 };

	x->minute = pick_minute(&x->minute_source);
	x->word = pick_word(x->g.words, x->minute, &x->line, &err);
	if (!x->word)
		goto fail;
	x->prompt = fill_prompt(x->g.prompt_tmpl, x->word);
	x->model = infer_model_load(x->g.model, &err);
	if (!x->model || our_prompt_tokens(x, &err))
		goto fail;
	x->n_runs = x->g.runs + 1;
	x->runs = calloc((size_t)x->n_runs, sizeof(*x->runs));
	if (!x->runs || !x->prompt)
		goto fail;
	x->nonce = fresh_nonce();
	x->runs[0].greedy = 1;
	for (int i = 1; i < x->n_runs; i++)
		x->runs[i].seed = splitmix64(x->nonce + (uint64_t)i) >> 1; /* the worker takes int64 */
	return 0;
fail:
	check_result_set(r, CHECK_ERROR, "haiku setup: %s", err.msg[0] ? err.msg : "out of memory");
	return -1;
}

/* Starts the worker, runs every request and always stops the worker. */
static int converse(struct ctx *x, struct check_result *r)
{
	char infer[PATH_MAX];
	char **argv;
	struct haiku_worker w;
	infer_error err = { 0 };
	int rc;

	if (find_infer(&x->g, infer, sizeof(infer)) && !x->g.worker_cmd) {
		check_result_set(r, CHECK_ERROR, "cannot find the worker binary: %s", infer);
		return -1;
	}
	argv = worker_argv(&x->g, infer, x->backend);
	if (!argv) {
		check_result_set(r, CHECK_ERROR, "out of memory");
		return -1;
	}
	rc = haiku_worker_start(&w, argv, x->g.startup_timeout_s, &x->health, &err);
	argv_free(argv);
	if (rc) {
		check_result_set(r, CHECK_FAIL, "worker did not start: %s", err.msg);
		return -1;
	}
	rc = ask_worker(&x->g, &w, x->prompt, x->runs, x->n_runs, &err);
	if (rc) {
		char tail[300];

		haiku_worker_log_tail(&w, tail, sizeof(tail));
		check_result_set(r, CHECK_FAIL, "%s; worker log: %s", err.msg, tail);
	}
	haiku_worker_stop(&w);
	return rc ? -1 : 0;
}

static int replay_all(struct ctx *x, struct check_result *r)
{
	infer_session_opts so = { .backend = "cpu", .n_threads = x->g.threads };
	infer_error err = { 0 };
	infer_session *s = infer_session_new(x->model, &so, &err);
	const infer_tokenizer *tok = infer_model_tokenizer(x->model);

	if (!s) {
		check_result_set(r, CHECK_ERROR, "cpu replay session: %s", err.msg);
		return -1;
	}
	for (int i = 0; i < x->n_runs; i++) {
		check_final(&x->g, &x->runs[i], i, x->prompt_ids, x->n_prompt, &x->v);
		if (replay_run(s, &x->g, &x->runs[i], i, x->prompt_ids, x->n_prompt, &x->st, &x->v, &err)) {
			check_result_set(r, CHECK_ERROR, "cpu replay of run %d: %s", i, err.msg);
			infer_session_free(s);
			return -1;
		}
		check_detok(tok, &x->runs[i], i, &x->v);
	}
	infer_session_free(s);
	return 0;
}

static void verdict_message(struct ctx *x, struct check_result *r)
{
	const struct verdict *v = &x->v;
	char m[sizeof(r->message)];
	size_t n = 0;
	const char *names[] = { "word", "distinct", "replay", "device", "detok" };
	const char *why[] = { v->word, v->distinct, v->replay, v->device, v->detok };

	m[0] = '\0';
	for (int i = 0; i < 5; i++)
		if (why[i][0] && n < sizeof(m))
			n += (size_t)snprintf(m + n, sizeof(m) - n, "%s%s: %s", n ? "; " : "", names[i],
					      why[i]);
	if (m[0]) {
		check_result_set(r, CHECK_FAIL, "%s", m);
		return;
	}
	char greedy[160];

	check_result_set(r, CHECK_PASS,
			 "minute %d '%s': greedy \"%s\"; word in %d/%d samples, %d distinct; replay max |err| %.2g over %ld tokens; %.0f tok/s, TTFT %.1f ms, %lld B weights on device",
			 x->minute, x->word, oneline(x->runs[0].s.text, greedy, sizeof(greedy)),
			 x->word_runs, x->n_runs - 1, x->distinct, x->st.max_abs, x->st.n,
			 mean_of(x->runs, x->n_runs, "tokens_per_s"), mean_of(x->runs, x->n_runs, "ttft_ms"),
			 (long long)json_integer_value(json_object_get(x->health, "weights_bytes_device")));
}

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	struct ctx x = { .backend = backend };
	infer_error err = { 0 };

	cfg_read(c, &x.g);
	if (!strcmp(backend, "cuda") && !infer_backend_available("cuda", &err)) {
		check_result_set(r, CHECK_SKIP, "cuda backend not available: %s", err.msg);
		return;
	}
	if (prepare(&x, r) || converse(&x, r) || replay_all(&x, r)) {
		fill_details(&x, r);
		ctx_free(&x);
		return;
	}
	judge_words(&x.g, x.runs, x.n_runs, x.word, &x.word_runs, &x.v);
	x.distinct = judge_distinct(x.runs, x.n_runs, &x.v);
	judge_device(backend, x.health, infer_model_weight_bytes(x.model), x.runs, x.n_runs, &x.v);
	verdict_message(&x, r);
	fill_details(&x, r);
	ctx_free(&x);
}

const struct check_kind check_kind_haiku = {
	.name = "haiku",
	.validate = validate,
	.run = run,
};
