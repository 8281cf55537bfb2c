/* Merging the report.json of several runs into one run document. */
#ifndef HARNESS_MERGE_H
#define HARNESS_MERGE_H

#include <jansson.h>

#include "infer/error.h"

/* Reads DIR/report.json for each dir; NULL with err naming the file on a
 * missing or malformed report. The verdict is recomputed over all results. */
json_t *merge_reports(const char *const *dirs, int n, infer_error *err);

#endif
