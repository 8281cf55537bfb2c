/* The harness core: a check, its result, and the table of check kinds.
 *
 * A spec (YAML, read with libyaml by spec.c) becomes a list of checks. Each
 * check names a kind; the kind's run() computes a result for one backend.
 * Everything a report shows about a result lives in result->details (jansson
 * object), so report writers need no knowledge of check kinds:
 *   "metrics":   {"nmse": 1.2e-9, "max_abs": ...}      (compare.c)
 *   "tolerance": {"nmse": 1e-7, ...}
 *   "worst":     {"index": 17, "multi_index": [1, 3], "actual": 0.5, "expected": 0.49}
 *   "histogram": {"edges": [...11 values], "counts": [...10 values]}
 *   "layers":    [{"tap": "l_out-0", "nmse": ..., "max_rel": ..., "ok": true}, ...]  (activations)
 *   "transcript": {...}                                 (haiku)
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <jansson.h>
#include <stdint.h>

#include "infer/error.h"

enum check_status { CHECK_PASS = 0, CHECK_FAIL, CHECK_SKIP, CHECK_ERROR };
const char *check_status_name(enum check_status s); /* "pass", "fail", "skip", "error" */

/* One check of a loaded spec (after include/vars/expansion). */
struct check {
	char *id;          /* unique within the run, e.g. "dequant/q4_K.gauss" */
	char *suite;       /* the spec's `suite` */
	char *kind;        /* gguf_parse | dequant | kernel | activations | tokenizer | haiku */
	char *spec_file;   /* where it was defined, for messages */
	char *spec_dir;    /* relative input paths resolve against this */
	json_t *tags;      /* array of strings */
	json_t *params;    /* kind-specific parameters, paths already resolved to absolute/cwd-relative */
	json_t *tolerance; /* object, may be NULL */
	json_t *backends;  /* array of backend names this check runs on */
};

struct check_result {
	enum check_status status;
	double duration_s;
	char message[1024]; /* one line: the failing metric, the skip reason, the error */
	json_t *details;    /* object, owned */
};

/* Sets status + formatted message. */
void check_result_set(struct check_result *r, enum check_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A check kind: one file each in harness/src/checks/. */
struct check_kind {
	const char *name;
	/* Validates params at load time (before anything runs) so spec errors are
	 * reported with file:line:col; may be NULL. Return 0 or fill err. */
	int (*validate)(const json_t *params, const json_t *tolerance, infer_error *err);
	/* Runs the check on one backend and fills r (status, message, details). */
	void (*run)(const struct check *c, const char *backend, struct check_result *r);
};

/* NULL when no kind has that name. */
const struct check_kind *check_kind_find(const char *name);

/* The kinds (defined in checks/<name>.c). */
extern const struct check_kind check_kind_gguf_parse;
extern const struct check_kind check_kind_dequant;
extern const struct check_kind check_kind_kernel;
extern const struct check_kind check_kind_activations;
extern const struct check_kind check_kind_tokenizer;
extern const struct check_kind check_kind_haiku;

/* Helpers for kinds: typed parameter access with defaults. */
const char *check_param_str(const struct check *c, const char *key, const char *dflt);
double check_param_num(const struct check *c, const char *key, double dflt);
int64_t check_param_int(const struct check *c, const char *key, int64_t dflt);

#endif
