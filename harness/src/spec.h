/* Spec loader: YAML spec files (schema in specs/README.md) to a flat list of
 * checks. Includes, ${VAR} substitution (--set overrides), expansion over a
 * glob or a manifest and validation of every check against its kind all
 * happen here, so a spec error stops the run before any check runs. */
#ifndef HARNESS_SPEC_H
#define HARNESS_SPEC_H

#include <jansson.h>
#include <stddef.h>

#include "harness.h"
#include "infer/error.h"

struct spec {
	struct check *checks;
	size_t n_checks;
	json_t *files;  /* array: every spec file read, in load order */
	json_t *suites; /* object: suite -> {"description", "file"} */
	json_t *set;    /* the --set overrides (object VAR -> string) */
};

/* set: object of VAR -> string, may be NULL. On error returns INFER_E_FORMAT
 * (or INFER_E_IO / INFER_E_NOMEM) with "file:line:col: what" in err->msg and
 * leaves nothing allocated in *out. */
int spec_load(struct spec *out, const char *const *paths, int n_paths, const json_t *set,
	      infer_error *err);
void spec_free(struct spec *s);

/* A parameter key of a check that spec.c sets itself: when present the check
 * is reported as SKIP with this reason without running (reference data absent). */
#define SPEC_SKIP_KEY "_skip"

#endif
