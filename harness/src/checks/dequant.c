/* dequant: a backend's infer_ops->dequant on golden blocks against ggml's
 * reference floats (../shared/conformance/dequant, copied to golden/).
 *
 * params: golden (the .gguf), blocks / expected (tensor names, default
 * "blocks" / "expected"). Tolerance defaults to {exact: true}: ggml's
 * dequantization is exact in binary32 up to one rounding that does not
 * depend on evaluation order (dequant README), so bit-exact is fair. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "harness.h"
#include "infer/backend.h"
#include "infer/gguf.h"
#include "infer/quant.h"

/* Checks the golden's own consistency: a malformed golden is an error, not a fail. */
static int golden_tensors(const struct check *c, gguf_file *f, const gguf_tensor **tb,
			  const gguf_tensor **te, struct check_result *r)
{
	const char *bname = check_param_str(c, "blocks", "blocks");
	const char *ename = check_param_str(c, "expected", "expected");
	uint32_t type_id;
	int i;

	*tb = gguf_find_tensor(f, bname);
	*te = gguf_find_tensor(f, ename);
	if (!*tb || !*te) {
		check_result_set(r, CHECK_ERROR, "golden %s has no tensor '%s'", gguf_path(f), *tb ? ename : bname);
		return -1;
	}
	/* Nothing compared would be a pass that proves nothing. */
	if ((*te)->n_elements <= 0) {
		check_result_set(r, CHECK_ERROR, "golden %s: '%s' is empty", gguf_path(f), ename);
		return -1;
	}
	if ((*te)->type != INFER_TYPE_F32 || !(*tb)->data || !(*te)->data) {
		check_result_set(r, CHECK_ERROR, "golden %s: '%s' must be F32 with data", gguf_path(f), ename);
		return -1;
	}
	for (i = 0; i < GGUF_MAX_DIMS; i++)
		if ((*tb)->ne[i] != (*te)->ne[i]) {
			check_result_set(r, CHECK_ERROR, "golden %s: '%s' and '%s' differ in shape (ne[%d])",
					 gguf_path(f), bname, ename, i);
			return -1;
		}
	if (gguf_get_u32(f, "golden.type_id", &type_id, NULL) == 0 && type_id != (*tb)->type) {
		check_result_set(r, CHECK_ERROR, "golden %s: golden.type_id %u but '%s' has type %u", gguf_path(f),
				 type_id, bname, (*tb)->type);
		return -1;
	}
	return 0;
}

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	const char *path = check_param_str(c, "golden", NULL);
	const json_t *tol_json = c->tolerance;
	json_t *deftol = NULL, *details = NULL;
	const gguf_tensor *tb, *te;
	const infer_ops *ops;
	infer_error e = { 0 };
	cmp_tolerance tol;
	float *got = NULL, *want = NULL;
	gguf_file *f;
	int64_t n, i;
	char line[512];

	ops = infer_backend_ops(backend, &e);
	if (!ops || !ops->dequant) {
		check_result_set(r, CHECK_ERROR, "backend %s has no dequant: %s", backend, e.msg);
		return;
	}
	f = gguf_open(path, &e);
	if (!f) {
		check_result_set(r, CHECK_ERROR, "cannot read golden %s: %s", path, e.msg);
		return;
	}
	if (golden_tensors(c, f, &tb, &te, r))
		goto out;
	if (!tol_json)
		tol_json = deftol = json_pack("{s:b}", "exact", 1);
	if (cmp_tolerance_parse(tol_json, &tol, &e)) {
		check_result_set(r, CHECK_ERROR, "bad tolerance: %s", e.msg);
		goto out;
	}
	n = te->n_elements;
	got = malloc((size_t)n * sizeof(float));
	want = malloc((size_t)n * sizeof(float));
	if (!got || !want) {
		check_result_set(r, CHECK_ERROR, "out of memory for %lld floats", (long long)n);
		goto out;
	}
	/* NaN everywhere first: an element the backend never writes cannot pass. */
	for (i = 0; i < n; i++)
		got[i] = NAN;
	memcpy(want, te->data, (size_t)n * sizeof(float));
	if (ops->dequant(tb->type, tb->data, got, n, &e)) {
		check_result_set(r, CHECK_ERROR, "%s dequant of %s (type id %u) failed: %s", backend,
				 infer_type_name(tb->type), tb->type, e.msg);
		goto out;
	}
	i = cmp_compare(got, want, n, te->ne, (int)(te->n_dims ? te->n_dims : 1), &tol, &details);
	r->details = details ? details : json_object();
	json_object_set_new(r->details, "type", json_string(infer_type_name(tb->type)));
	json_object_set_new(r->details, "n_elements", json_integer(n));
	cmp_summary(r->details, line, sizeof(line));
	check_result_set(r, i ? CHECK_PASS : CHECK_FAIL, "%s: %s", infer_type_name(tb->type), line);
out:
	free(got);
	free(want);
	json_decref(deftol);
	gguf_close(f);
}

static int validate(const json_t *params, const json_t *tol, infer_error *err)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)params, k, v) {
		if (strcmp(k, "golden") && strcmp(k, "blocks") && strcmp(k, "expected") && strcmp(k, "entry"))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: unknown parameter (golden, blocks, expected)", k);
		if (!json_is_string(v) && strcmp(k, "entry"))
			return infer_error_set(err, INFER_E_ARG, -1, "%s: must be a string", k);
	}
	if (!json_object_get(params, "golden"))
		return infer_error_set(err, INFER_E_ARG, -1, "golden: input path required");
	return 0;
}

const struct check_kind check_kind_dequant = {
	.name = "dequant",
	.validate = validate,
	.run = run,
};
