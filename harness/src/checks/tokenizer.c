/* tokenizer: token ids of the runtime's tokenizer against a vector file pair
 * in llama.cpp's layout (NAME.inp strings, NAME.out expected ids; see
 * ../shared/conformance/tokenizer/README.md). One check per vector file;
 * every string must give exactly the expected ids.
 *
 * params: vocab (GGUF with the tokenizer), inp, out (paths),
 *         parse_special (bool, required: the vectors were made with one
 *         setting and the other gives different ids), add_special (bool,
 *         default false: add BOS/EOS where the vocabulary asks).
 * The tokenizer runs on the CPU whatever the backend: the backend only
 * names the run. Details: counts, the first mismatching string and both id
 * lists, and the time to load the vocabulary. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "infer/gguf.h"
#include "infer/tokenizer.h"

static json_t *ids_json(const int32_t *ids, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_integer(ids[i]));
	return a;
}

static int bool_param(const struct check *c, const char *key, int dflt)
{
	const json_t *v = json_object_get(c->params, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The first string whose ids differ: shown in full in details. */
static void record_mismatch(json_t *d, const infer_tokvec *v, size_t i, const char *out_path,
			    const int32_t *got, size_t n_got)
{
	json_t *m = json_object();

	json_object_set_new(m, "index", json_integer((json_int_t)i));
	json_object_set_new(m, "out_line", json_integer((json_int_t)v->out_line[i]));
	json_object_set_new(m, "text", json_stringn(v->text[i], v->text_len[i]));
	json_object_set_new(m, "expected", ids_json(v->ids[i], v->n_ids[i]));
	json_object_set_new(m, "actual", ids_json(got, n_got));
	json_object_set_new(m, "file", json_string(out_path));
	json_object_set_new(d, "first_mismatch", m);
}

static void run_vectors(const struct check *c, const infer_tokenizer *t, const infer_tokvec *v,
			struct check_result *r)
{
	const char *out_path = check_param_str(c, "out", "");
	int special = bool_param(c, "parse_special", 0), add = bool_param(c, "add_special", 0);
	size_t i, pass = 0, first = (size_t)-1;

	for (i = 0; i < v->n; i++) {
		int32_t *ids = NULL;
		size_t n = 0;
		infer_error e = { 0 };

		if (infer_tokenize_ex(t, v->text[i], v->text_len[i], special, add, &ids, &n, &e)) {
			check_result_set(r, CHECK_ERROR, "%s:%zu: tokenize failed: %s", out_path,
					 v->out_line[i], e.msg);
			return;
		}
		if (n == v->n_ids[i] && (n == 0 || !memcmp(ids, v->ids[i], n * sizeof(*ids)))) {
			pass++;
		} else if (first == (size_t)-1) {
			first = i;
			record_mismatch(r->details, v, i, out_path, ids, n);
		}
		free(ids);
	}
	json_object_set_new(r->details, "n_strings", json_integer((json_int_t)v->n));
	json_object_set_new(r->details, "n_pass", json_integer((json_int_t)pass));
	json_object_set_new(r->details, "n_fail", json_integer((json_int_t)(v->n - pass)));
	if (pass == v->n) {
		check_result_set(r, CHECK_PASS, "%zu/%zu strings give exactly the expected ids", pass, v->n);
		return;
	}
	check_result_set(r, CHECK_FAIL, "%zu of %zu strings differ; first at %s:%zu (\"%.60s\")",
			 v->n - pass, v->n, out_path, v->out_line[first], v->text[first]);
}

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	const char *vocab = check_param_str(c, "vocab", NULL);
	const char *inp = check_param_str(c, "inp", NULL), *out = check_param_str(c, "out", NULL);
	infer_tokenizer *t = NULL;
	infer_tokvec v = { 0 };
	infer_error e = { 0 };
	gguf_file *f;
	double t0 = now_s();

	(void)backend;
	r->details = json_object();
	f = gguf_open(vocab, &e);
	if (f)
		t = infer_tokenizer_load(f, &e);
	if (!t) {
		check_result_set(r, CHECK_ERROR, "cannot load the tokenizer of %s: %s", vocab, e.msg);
		goto out;
	}
	json_object_set_new(r->details, "vocab_load_ms", json_real((now_s() - t0) * 1e3));
	json_object_set_new(r->details, "n_vocab", json_integer(infer_tokenizer_n_vocab(t)));
	if (infer_tokvec_load(inp, out, &v, &e)) {
		check_result_set(r, CHECK_ERROR, "bad vector files: %s", e.msg);
		goto out;
	}
	/* An empty vector set would pass without testing anything. */
	if (v.n == 0) {
		check_result_set(r, CHECK_ERROR, "%s holds no strings", inp);
		goto out;
	}
	run_vectors(c, t, &v, r);
out:
	infer_tokvec_free(&v);
	infer_tokenizer_free(t);
	gguf_close(f);
}

static int validate(const json_t *params, const json_t *tol, infer_error *err)
{
	static const char *const need[] = { "vocab", "inp", "out" };
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)params, k, v) {
		if (!strcmp(k, "parse_special") || !strcmp(k, "add_special")) {
			if (!json_is_boolean(v))
				return infer_error_set(err, INFER_E_ARG, -1, "%s: must be true or false", k);
		} else if (strcmp(k, "vocab") && strcmp(k, "inp") && strcmp(k, "out")) {
			return infer_error_set(err, INFER_E_ARG, -1,
					       "%s: unknown parameter (vocab, inp, out, parse_special, "
					       "add_special)", k);
		} else if (!json_is_string(v)) {
			return infer_error_set(err, INFER_E_ARG, -1, "%s: must be a path", k);
		}
	}
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!json_object_get(params, need[i]))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: missing (a path)", need[i]);
	if (!json_object_get(params, "parse_special"))
		return infer_error_set(err, INFER_E_ARG, -1,
				       "parse_special: missing (true or false, as the vectors were made)");
	if (tol && json_object_size(tol) > 0)
		return infer_error_set(err, INFER_E_ARG, -1,
				       "tolerance: token ids are compared exactly, none applies");
	return 0;
}

const struct check_kind check_kind_tokenizer = {
	.name = "tokenizer",
	.validate = validate,
	.run = run,
};
