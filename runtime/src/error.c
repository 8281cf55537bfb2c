/* infer_error helpers: one place that formats error messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "infer/error.h"

int infer_error_set(infer_error *err, int code, int64_t offset, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->offset = offset;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void infer_error_clear(infer_error *err)
{
	if (!err)
		return;
	err->code = INFER_OK;
	err->offset = -1;
	err->msg[0] = '\0';
}
