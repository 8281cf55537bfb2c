/* report.json: the run document itself, schema in specs/README_report.md. It
 * is the one format `conform merge` reads back, so it is written losslessly. */
#include "report_internal.h"

int report_emit_json(const json_t *run, FILE *f)
{
	/* jansson keeps insertion order, so the file reads the way the document
	 * was built (schema, run, results, verdict); reals print with 17 digits
	 * and so survive a round trip bit for bit. */
	if (json_dumpf(run, f, JSON_INDENT(2)))
		return -1;
	return fputc('\n', f) == EOF ? -1 : 0;
}
