/* The table of check kinds and the small helpers every kind uses. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static const struct check_kind *const kinds[] = {
	&check_kind_gguf_parse,
	&check_kind_dequant,
	&check_kind_kernel,
	&check_kind_activations,
	&check_kind_tokenizer,
	&check_kind_haiku,
};

const struct check_kind *check_kind_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

const char *check_status_name(enum check_status s)
{
	switch (s) {
	case CHECK_PASS:
		return "pass";
	case CHECK_FAIL:
		return "fail";
	case CHECK_SKIP:
		return "skip";
	case CHECK_ERROR:
		return "error";
	}
	return "error";
}

void check_result_set(struct check_result *r, enum check_status s, const char *fmt, ...)
{
	va_list ap;

	r->status = s;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

static const json_t *param(const struct check *c, const char *key)
{
	if (!c->params || !json_is_object(c->params))
		return NULL;
	return json_object_get(c->params, key);
}

const char *check_param_str(const struct check *c, const char *key, const char *dflt)
{
	const json_t *v = param(c, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

double check_param_num(const struct check *c, const char *key, double dflt)
{
	const json_t *v = param(c, key);

	return json_is_number(v) ? json_number_value(v) : dflt;
}

int64_t check_param_int(const struct check *c, const char *key, int64_t dflt)
{
	const json_t *v = param(c, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	/* A YAML scalar like "4.0" loads as a real; accept it when integral. */
	if (json_is_real(v) && json_real_value(v) == (double)(int64_t)json_real_value(v))
		return (int64_t)json_real_value(v);
	return dflt;
}
