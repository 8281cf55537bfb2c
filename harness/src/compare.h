/* Comparison metrics (compare.c): exact (bitwise), max_abs, max_rel, NMSE
 * (sum (a-b)^2 / sum b^2, as llama.cpp's test-backend-ops), ULP distance,
 * cosine similarity, argmax agreement and top-k overlap for logits.
 * A tolerance is a conjunction of limits on any of them.
 *
 * Definitions (a = actual, b = expected, over pairs where both are finite):
 *   max_abs  max |a-b|
 *   max_rel  max |a-b| / |b|   (0 when a == b == 0, +inf when only b == 0)
 *   nmse     sum (a-b)^2 / sum b^2   (0 when both sums are 0, +inf when only b is 0)
 *   max_ulp  max distance between a and b on the ordered float line (+0 == -0)
 *   cosine   sum ab / sqrt(sum a^2 * sum b^2)   (1 when both are all-zero, 0 when one is)
 *   argmax   per row (shape[0] values), first index of the maximum; rows must agree
 *   top-k    per row, the k largest (ties: lower index first); overlap counted
 * Where b is NaN, a must be NaN; where b is +-Inf, a must be the same Inf; where b
 * is finite, a must be finite. Any violation fails whatever the tolerance says. */
#ifndef HARNESS_COMPARE_H
#define HARNESS_COMPARE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/error.h"

/* top-k is computed with fixed-size buffers on the stack. */
#define CMP_TOPK_MAX 256

typedef struct cmp_tolerance {
	int exact;          /* bitwise equality required */
	double max_abs;     /* < 0: not checked */
	double max_rel;
	double nmse;
	double max_ulp;
	double min_cosine;  /* < -1: not checked */
	int argmax;         /* logits: argmax of every row must agree */
	int topk;           /* logits: top-k sets must overlap in >= topk_min items; 0 off */
	int topk_min;
} cmp_tolerance;

/* Every limit off (a tolerance that only rejects NaN/Inf mismatches). */
void cmp_tolerance_init(cmp_tolerance *t);

/* Parses {exact: true, nmse: 1e-7, max_abs: 1e-4, ...}. Keys: exact, max_abs,
 * max_rel, nmse, max_ulp, min_cosine, argmax, topk, topk_min (defaults to topk).
 * Unknown keys, wrong types, negative limits, and an empty or missing object
 * (a comparison that could never fail) are errors naming the key. */
int cmp_tolerance_parse(const json_t *tol, cmp_tolerance *out, infer_error *err);

/* The limits that are on, as an object with the keys cmp_tolerance_parse takes. */
json_t *cmp_tolerance_to_json(const cmp_tolerance *t);

/* Compares n values laid out as shape[0] (contiguous) x shape[1] x ...
 * (rows = n / shape[0] for argmax/top-k; shape NULL or n_dims 0: one row of n).
 * NaN/Inf where expected is finite always fails; Inf must match in sign. A shape
 * whose product is not n, n == 0, or tol == NULL fail (reported in "failed").
 * Returns 1 when every limit holds, else 0; *details (when details != NULL)
 * receives {"metrics", "tolerance", "worst", "histogram", "failed": [...]}:
 *   metrics:   n, mismatches (bitwise), nonfinite (NaN/Inf violations), max_abs,
 *              max_rel, nmse, max_ulp, cosine, argmax_rows, argmax_agree,
 *              [topk, topk_overlap_min when top-k is on]. Values that are not
 *              finite are written as the strings "inf", "-inf", "nan".
 *   worst:     the first NaN/Inf violation, else the largest |a-b|, else the first
 *              bitwise mismatch; null when all are bitwise equal:
 *              {index, multi_index, actual, expected, abs_err, rel_err, ulp}
 *   histogram: |a-b| of finite pairs in 10 log-spaced bins: edges[11] = 0, then
 *              decades ending at the power of ten >= max_abs (1 when max_abs is 0);
 *              counts[10]; nonfinite = pairs left out.
 *   failed:    names of the metrics over their limit (plus "nonfinite", "shape",
 *              "empty", "tolerance" for the cases above).
 * Allocation: none apart from the details object. */
int cmp_compare(const float *actual, const float *expected, int64_t n,
		const int64_t *shape, int n_dims, const cmp_tolerance *tol, json_t **details);

/* "nmse 3.1e-05 > 1e-07 (worst [12,3]: 0.51 vs 0.49)" for the result message;
 * every failed metric is listed, or the checked ones with "ok" when it passed. */
void cmp_summary(const json_t *details, char *buf, size_t n);

/* A double as JSON: a real, or "inf"/"-inf"/"nan" (JSON has no such numbers). */
json_t *cmp_json_number(double v);

#endif
