/* Placeholder for the kernel check kind until its owner lands it. It never
 * passes: a kind that is not implemented is an error, not a silent pass. */
#include "harness.h"

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	check_result_set(r, CHECK_ERROR, "kind not implemented: kernel");
}

const struct check_kind check_kind_kernel = {
	.name = "kernel",
	.validate = NULL,
	.run = run,
};
