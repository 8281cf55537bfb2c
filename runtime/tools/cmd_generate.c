/* infer generate: run a prompt through a model and stream the text.
 *
 *   infer generate -m MODEL.gguf -p PROMPT [--chat] [--n N] [--temp T]
 *                  [--top-k K] [--top-p P] [--min-p M] [--repeat-penalty R]
 *                  [--seed S] [--stop STR]... [--backend cpu|cuda]
 *                  [--threads N] [--ctx N] [--json]
 *
 * Text goes to stdout as it is produced; with --json nothing is streamed and
 * one object is printed at the end instead. Errors go to stderr. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "infer/generate.h"
#include "infer/model.h"
#include "infer/session.h"

#define MAX_STOP 16

struct gen_args {
	const char *model, *prompt, *backend;
	int chat, json;
	int32_t n, threads, ctx;
	infer_sampler_params sp;
	const char *stop[MAX_STOP];
	int n_stop;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: infer generate -m MODEL.gguf -p PROMPT [options]\n"
		"  --chat               wrap the prompt in the model's ChatML turn\n"
		"  --n N                most tokens to generate (default 128)\n"
		"  --temp T             temperature, <= 0 for greedy (default 0.8)\n"
		"  --top-k K            keep the K most likely tokens, 0 = off (default 40)\n"
		"  --top-p P            nucleus mass, 1 = off (default 0.95)\n"
		"  --min-p M            drop tokens below M * p_max, 0 = off (default 0)\n"
		"  --repeat-penalty R   penalty on recent tokens, 1 = off (default 1)\n"
		"  --seed S             PRNG seed (default 0): same seed, same tokens\n"
		"  --stop STR           stop when STR appears (repeatable, up to %d)\n"
		"  --backend cpu|cuda   (default cpu)\n"
		"  --threads N          cpu threads, 0 = all cores (default 0)\n"
		"  --ctx N              context size, 0 = the model's (default 0)\n"
		"  --json               print one JSON object instead of streaming\n",
		MAX_STOP);
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < lo || *out > hi) {
		fprintf(stderr, "error: %s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
		return -1;
	}
	return 0;
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end || *out < lo || *out > hi) {
		fprintf(stderr, "error: %s: '%s' is not an integer in [%lld, %lld]\n", opt, s, lo, hi);
		return -1;
	}
	return 0;
}

/* One option with a value; returns 0, or -1 after printing why. */
static int parse_opt(struct gen_args *a, const char *o, const char *v)
{
	double d;
	long long i;

	if (!strcmp(o, "-m") || !strcmp(o, "--model"))
		a->model = v;
	else if (!strcmp(o, "-p") || !strcmp(o, "--prompt"))
		a->prompt = v;
	else if (!strcmp(o, "--backend"))
		a->backend = v;
	else if (!strcmp(o, "--n") || !strcmp(o, "-n")) {
		if (parse_int(o, v, 0, 1 << 20, &i))
			return -1;
		a->n = (int32_t)i;
	} else if (!strcmp(o, "--temp")) {
		if (parse_num(o, v, -1e9, 1e9, &d))
			return -1;
		a->sp.temperature = (float)d;
	} else if (!strcmp(o, "--top-k")) {
		if (parse_int(o, v, 0, INT32_MAX, &i))
			return -1;
		a->sp.top_k = (int32_t)i;
	} else if (!strcmp(o, "--top-p")) {
		if (parse_num(o, v, 0, 1, &d))
			return -1;
		a->sp.top_p = (float)d;
	} else if (!strcmp(o, "--min-p")) {
		if (parse_num(o, v, 0, 1, &d))
			return -1;
		a->sp.min_p = (float)d;
	} else if (!strcmp(o, "--repeat-penalty")) {
		if (parse_num(o, v, 1e-3, 1e3, &d))
			return -1;
		a->sp.repeat_penalty = (float)d;
	} else if (!strcmp(o, "--seed")) {
		if (parse_int(o, v, 0, INT64_MAX, &i))
			return -1;
		a->sp.seed = (uint64_t)i;
	} else if (!strcmp(o, "--threads")) {
		if (parse_int(o, v, 0, 1024, &i))
			return -1;
		a->threads = (int32_t)i;
	} else if (!strcmp(o, "--ctx")) {
		if (parse_int(o, v, 0, INT32_MAX, &i))
			return -1;
		a->ctx = (int32_t)i;
	} else if (!strcmp(o, "--stop")) {
		if (a->n_stop == MAX_STOP) {
			fprintf(stderr, "error: --stop: at most %d stop strings\n", MAX_STOP);
			return -1;
		}
		a->stop[a->n_stop++] = v;
	} else {
		fprintf(stderr, "error: unknown option '%s'\n", o);
		return -1;
	}
	return 0;
}

static int parse_args(struct gen_args *a, int argc, char **argv)
{
	a->n = 128;
	a->backend = "cpu";
	infer_sampler_params_default(&a->sp);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--chat"))
			a->chat = 1;
		else if (!strcmp(o, "--json"))
			a->json = 1;
		else if (i + 1 >= argc) {
			fprintf(stderr, "error: option '%s' needs a value (or is unknown)\n", o);
			return -1;
		} else if (parse_opt(a, o, argv[++i]))
			return -1;
	}
	if (!a->model || !a->prompt) {
		fprintf(stderr, "error: -m MODEL and -p PROMPT are required\n");
		return -1;
	}
	return 0;
}

static int stream_cb(void *user, const infer_gen_token *t)
{
	(void)user;
	if (t->text_len) {
		fwrite(t->text, 1, t->text_len, stdout);
		fflush(stdout);
	}
	return 0;
}

static json_t *int_array(const int32_t *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

static json_t *float_array(const float *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_real(v[i]));
	return a;
}

static void print_json(const struct gen_args *a, const infer_session *s, const infer_gen_result *r)
{
	size_t n_dec = r->n_tokens > 0 ? r->n_tokens - 1 : 0; /* the first comes from prefill */
	json_t *o = json_object(), *t = json_object();

	json_object_set_new(t, "prompt_ms", json_real(r->prompt_ms));
	json_object_set_new(t, "ttft_ms", json_real(r->ttft_ms));
	json_object_set_new(t, "gen_ms", json_real(r->gen_ms));
	json_object_set_new(t, "prompt_tok_per_s",
			    json_real(r->prompt_ms > 0 ? r->n_prompt * 1e3 / r->prompt_ms : 0));
	json_object_set_new(t, "gen_tok_per_s",
			    json_real(r->gen_ms > 0 ? n_dec * 1e3 / r->gen_ms : 0));
	json_object_set_new(o, "prompt_tokens", int_array(r->prompt_tokens, r->n_prompt));
	json_object_set_new(o, "tokens", int_array(r->tokens, r->n_tokens));
	json_object_set_new(o, "logprobs", float_array(r->logprobs, r->n_tokens));
	json_object_set_new(o, "logprobs_sampled", float_array(r->logprobs_sampled, r->n_tokens));
	json_object_set_new(o, "text", json_string(r->text ? r->text : ""));
	json_object_set_new(o, "finish_reason", json_string(r->finish_reason));
	json_object_set_new(o, "backend", json_string(infer_session_backend(s)));
	json_object_set_new(o, "seed", json_integer((json_int_t)a->sp.seed));
	json_object_set_new(o, "timings", t);
	json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
	json_decref(o);
}

/* Malformed model files are bad input (2); everything else a failure (1). */
static int exit_code(const infer_error *e)
{
	return e->code <= -100 || e->code == INFER_E_MODEL || e->code == INFER_E_UNSUPPORTED ||
		       e->code == INFER_E_ARG ? 2 : 1;
}

int cmd_generate(int argc, char **argv)
{
	struct gen_args a = { 0 };
	infer_error err = { 0 };
	infer_session_opts so = { 0 };
	infer_gen_params gp = { 0 };
	infer_gen_result res;
	infer_model *m;
	infer_session *s;
	int rc;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (parse_args(&a, argc, argv)) {
		usage(stderr);
		return 2;
	}
	m = infer_model_load(a.model, &err);
	if (!m) {
		fprintf(stderr, "error: %s: %s\n", a.model, err.msg);
		return exit_code(&err);
	}
	so.backend = a.backend;
	so.n_threads = a.threads;
	so.n_ctx = a.ctx;
	s = infer_session_new(m, &so, &err);
	if (!s) {
		fprintf(stderr, "error: %s\n", err.msg);
		infer_model_free(m);
		return err.code == INFER_E_ARG ? 2 : 1;
	}
	gp.prompt = a.prompt;
	gp.chat = a.chat;
	gp.max_tokens = a.n;
	gp.sampling = a.sp;
	gp.stop = a.stop;
	gp.n_stop = a.n_stop;
	rc = infer_generate(s, &gp, a.json ? NULL : stream_cb, NULL, &res, &err);
	if (rc) {
		fprintf(stderr, "error: generate: %s\n", err.msg);
	} else if (a.json) {
		print_json(&a, s, &res);
	} else {
		fputc('\n', stdout);
	}
	if (!rc)
		infer_gen_result_free(&res);
	infer_session_free(s);
	infer_model_free(m);
	return rc ? (err.code == INFER_E_ARG ? 2 : 1) : 0;
}
