/* Placeholder for the gguf_parse check kind until its owner lands it. It never
 * passes: a kind that is not implemented is an error, not a silent pass. */
#include "harness.h"

static void run(const struct check *c, const char *backend, struct check_result *r)
{
	check_result_set(r, CHECK_ERROR, "kind not implemented: gguf_parse");
}

const struct check_kind check_kind_gguf_parse = {
	.name = "gguf_parse",
	.validate = NULL,
	.run = run,
};
