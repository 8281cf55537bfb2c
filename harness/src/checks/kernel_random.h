/* The random-input mode of the `kernel` check (kernel_random.c): seeded
 * inputs of a stated shape, an independent double-precision reference
 * computed inside the check, and the backend's op compared against it.
 * Split out of kernel.c so tests can hand it an ops table of their own
 * (a deliberately wrong one must make the check FAIL). */
#ifndef HARNESS_KERNEL_RANDOM_H
#define HARNESS_KERNEL_RANDOM_H

#include <jansson.h>

#include "compare.h"
#include "harness.h"
#include "infer/backend.h"

/* Validates the `random` parameter object (op, seed, shape keys of the op);
 * 0 or an error naming the key. */
int kernel_random_validate(const json_t *random, infer_error *err);

/* Runs the op of `random` through ops and fills r (status, message, details). */
void kernel_random_run(const json_t *random, const infer_ops *ops, const cmp_tolerance *tol,
		       struct check_result *r);

#endif
