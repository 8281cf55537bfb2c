/* Comparison metrics (compare.c): exact (bitwise), max_abs, max_rel, NMSE
 * (sum (a-b)^2 / sum b^2, as llama.cpp's test-backend-ops), ULP distance,
 * cosine similarity, argmax agreement and top-k overlap for logits.
 * A tolerance is a conjunction of limits on any of them. */
#ifndef HARNESS_COMPARE_H
#define HARNESS_COMPARE_H

#include <jansson.h>
#include <stdint.h>

#include "infer/error.h"

typedef struct cmp_tolerance {
	int exact;          /* bitwise equality required */
	double max_abs;     /* < 0: not checked */
	double max_rel;
	double nmse;
	double max_ulp;
	double min_cosine;
	int argmax;         /* logits: argmax of every row must agree */
	int topk;           /* logits: top-k sets must overlap in >= topk_min items; 0 off */
	int topk_min;
} cmp_tolerance;

/* Parses {exact: true, nmse: 1e-7, max_abs: 1e-4, ...}; unknown keys are errors. */
int cmp_tolerance_parse(const json_t *tol, cmp_tolerance *out, infer_error *err);

/* Compares n values laid out as shape[0] (contiguous) x shape[1] x ...
 * (rows = n / shape[0] for argmax/top-k). NaN/Inf where expected is finite always
 * fails; Inf must match in sign. Returns 1 when every limit holds, else 0;
 * *details receives {"metrics", "tolerance", "worst", "histogram", "failed": [...]}. */
int cmp_compare(const float *actual, const float *expected, int64_t n,
		const int64_t *shape, int n_dims, const cmp_tolerance *tol, json_t **details);

/* "nmse 3.1e-05 > 1e-07 (worst [12,3]: 0.51 vs 0.49)" for the result message. */
void cmp_summary(const json_t *details, char *buf, size_t n);

#endif
